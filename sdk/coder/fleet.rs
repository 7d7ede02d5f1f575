//! Fleet-scale Coder operations: update (or restart) many workspaces at once, and plan an
//! update without changing anything (`--dry-run`).
//!
//! [`CoderClient::start_update_many`] selects the targets ([`Selection`]), runs each workspace's own
//! stop → start sequence ([`CoderClient::start_plan_update`] then [`CoderClient::start_run_plan`]) with at
//! most [`FleetOptions::parallel`] workspaces in flight, reports every step as a
//! [`FleetEvent`] tagged with its workspace, and ends each workspace in a [`Verdict`]. A
//! workspace named twice (by name and by ID, say) is updated once: two builds never run at
//! once on one workspace.
//!
//! [`CoderClient::start_dry_run`] does every read an update needs and returns a [`DryRun`]: the
//! builds that would be created, in order, with the target version and the parameter values.
//! It never sends a POST or a PATCH.

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde::Serialize;
use uuid::Uuid;

use super::{
    CoderClient, CoderEvent, PlannedBuild, Readiness, ReadyOptions, ReadyReport, Step,
    TemplateVersionRef, UpdateAction, UpdateOptions, UpdateOutcome, UpdatePlan, WorkspaceRef,
    WorkspaceStatus, types,
};
use crate::{
    Error, Input, Remedy, Result,
    operation::{Aftermath, Control, FollowStep, ms},
    rollout::{self, Halt, HaltReason, Judgement, RolloutOptions},
};

/// The most workspaces fleet updates at once: the end of [`RolloutOptions::PARALLEL_RANGE`].
pub const MAX_PARALLEL: usize = *RolloutOptions::PARALLEL_RANGE.end();
/// How many workspaces are updated at once unless told otherwise: the rollouts' one default.
pub const DEFAULT_PARALLEL: usize = RolloutOptions::DEFAULT_PARALLEL;

/// Which workspaces an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These workspaces (IDs, `owner/name`, or names of the token's own user).
    Named(Vec<WorkspaceRef>),
    /// Every workspace that is not on its template's active version: the token's user's own,
    /// or every workspace the token can see with `all_owners`.
    AllOutdated {
        /// Every owner's workspaces, not only the token's user's.
        all_owners: bool,
    },
    /// The outdated workspaces of one template (by name, ignoring case).
    Template {
        /// The template's name.
        name: String,
        /// Every owner's workspaces, not only the token's user's.
        all_owners: bool,
    },
}

impl Selection {
    /// The selection a caller asked for: named workspaces, `all_outdated`, or a `template`
    /// (exactly one), with `all_owners` only beside the last two. Nothing is sent.
    pub fn choose(
        named: Vec<WorkspaceRef>,
        all_outdated: bool,
        template: Option<String>,
        all_owners: bool,
    ) -> Result<Selection> {
        let template = template.filter(|t| !t.trim().is_empty());
        let given = usize::from(!named.is_empty())
            + usize::from(all_outdated)
            + usize::from(template.is_some());
        if given != 1 {
            return Err(Error::advised(
                Error::InvalidInput(
                    "the workspaces are chosen one way: by name, all outdated workspaces, or a \
                     template's workspaces; nothing was sent"
                        .into(),
                ),
                vec![Remedy::GiveOneOf {
                    inputs: vec![Input::Workspaces, Input::AllOutdated, Input::Template],
                }],
            ));
        }
        let selection = match (all_outdated, template) {
            (true, _) => Selection::AllOutdated { all_owners },
            (false, Some(name)) => Selection::Template { name, all_owners },
            (false, None) if all_owners => {
                return Err(Error::advised(
                    Error::InvalidInput(
                        "all owners goes with all outdated workspaces or a template, not with \
                         names; nothing was sent"
                            .into(),
                    ),
                    vec![Remedy::LeaveOut {
                        input: Input::AllOwners,
                    }],
                ));
            }
            (false, None) => Selection::Named(named),
        };
        selection.check()?;
        Ok(selection)
    }

    /// Checks what needs no server. [`Error::InvalidInput`] (nothing sent) otherwise.
    pub fn check(&self) -> Result<()> {
        match self {
            Selection::Named(refs) if refs.is_empty() => Err(Error::advised(
                Error::InvalidInput("no workspace given; nothing was sent".into()),
                vec![Remedy::GiveOneOf {
                    inputs: vec![Input::Workspaces, Input::AllOutdated, Input::Template],
                }],
            )),
            Selection::Template { name, .. } => {
                let ok = !name.trim().is_empty()
                    && name
                        .trim()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if ok {
                    Ok(())
                } else {
                    Err(Error::InvalidInput(format!(
                        "{name:?} is not a template name: letters, digits, '-', '_' or '.'; \
                         nothing was sent"
                    )))
                }
            }
            _ => Ok(()),
        }
    }

    /// The listing a selection by query stands for (`None` for named workspaces).
    pub fn filter(&self) -> Option<super::WorkspaceFilter> {
        let owner = |all_owners: bool| (!all_owners).then(|| "me".to_string());
        match self {
            Selection::Named(_) => None,
            Selection::AllOutdated { all_owners } => Some(super::WorkspaceFilter {
                owner: owner(*all_owners),
                outdated: Some(true),
                ..Default::default()
            }),
            Selection::Template { name, all_owners } => Some(super::WorkspaceFilter {
                owner: owner(*all_owners),
                template: Some(name.trim().to_string()),
                outdated: Some(true),
                ..Default::default()
            }),
        }
    }

    fn query(&self) -> Option<String> {
        let owner = |all: bool| if all { "" } else { "owner:me " };
        match self {
            Selection::Named(_) => None,
            Selection::AllOutdated { all_owners } => {
                Some(format!("{}outdated:true", owner(*all_owners)))
            }
            Selection::Template { name, all_owners } => Some(format!(
                "{}template:{} outdated:true",
                owner(*all_owners),
                name.trim()
            )),
        }
    }
}

/// What to do to each workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchAction {
    /// Update to this template version, or to the template's active version.
    Update {
        /// The target version; `None` for each template's active version.
        template_version: Option<TemplateVersionRef>,
    },
    /// Restart on the version it runs.
    Restart,
}

/// Options of [`CoderClient::start_update_many`].
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Update or restart.
    pub action: BatchAction,
    /// At most this many workspaces in flight (1 ..= [`MAX_PARALLEL`]).
    pub parallel: usize,
    /// Deadlines, polling, force: the same for every workspace.
    pub update: UpdateOptions,
    /// Plan only: every read, no change.
    pub dry_run: bool,
    /// Update this many workspaces first; go on only if all of them end healthy (0: none).
    pub canary: usize,
    /// Once this many workspaces have failed or are unhealthy, start no more.
    pub max_failures: Option<usize>,
    /// After each start, wait for the agents (`None`: do not wait).
    pub ready: Option<ReadyOptions>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            action: BatchAction::Update {
                template_version: None,
            },
            parallel: DEFAULT_PARALLEL,
            update: UpdateOptions::default(),
            dry_run: false,
            canary: 0,
            max_failures: None,
            ready: Some(ReadyOptions::default()),
        }
    }
}

impl FleetOptions {
    /// Checks the options against their ranges (the rollout controls', the ready timeout's):
    /// [`Error::InvalidInput`] (nothing sent) otherwise, naming the input and its range.
    pub fn check(&self) -> Result<()> {
        self.rollout().check()?;
        if let Some(ready) = &self.ready {
            ready.check()?;
        }
        Ok(())
    }

    /// The rollout controls.
    pub fn rollout(&self) -> RolloutOptions {
        RolloutOptions {
            parallel: self.parallel,
            canary: self.canary,
            max_failures: self.max_failures,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dry run
// ---------------------------------------------------------------------------------------------

/// What an update or restart would do, found with reads only.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DryRun {
    /// `owner/name`.
    pub workspace: String,
    /// Its status now.
    pub status: Option<WorkspaceStatus>,
    /// The version it runs now.
    pub current_version_id: Option<Uuid>,
    /// That version's name, when known.
    pub current_version_name: Option<String>,
    /// The version it would run.
    pub target_version_id: Uuid,
    /// That version's name, when it could be read.
    pub target_version_name: Option<String>,
    /// The builds that would be created, in this order (empty: nothing would be done).
    pub builds: Vec<PlannedBuild>,
    /// One sentence for people.
    pub summary: String,
    /// Everything `plan_update` read (the same plan a real update carries out).
    pub plan: UpdatePlan,
}

impl DryRun {
    /// True when the update would change nothing.
    pub fn is_noop(&self) -> bool {
        self.builds.is_empty()
    }
}

/// The builds [`CoderClient::start_run_plan`] would create for `plan`, in order, or the refusal it
/// would answer. Mirrors `run_plan`'s decisions: deleted or unknown status → refused; running
/// on the target (an update without force) → nothing; stopped → start only; else stop, start.
fn workspace_label(w: &types::Workspace) -> String {
    super::WorkspaceInfo::from(w).full_name
}

impl CoderClient {
    /// Plans an update (or with `restart`, a restart) and says what it would do, changing
    /// nothing: resolves the workspace, waits for a build already in progress, reads the target
    /// version (and its name) and the previous build's parameter values. Sends GETs only.
    pub(crate) async fn dry_run(
        &self,
        r: &WorkspaceRef,
        template_version: Option<TemplateVersionRef>,
        restart: bool,
        options: &UpdateOptions,
        cancel: &Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<DryRun> {
        // A dry run never waits for anyone to become idle: it says who would be skipped.
        let mut options = options.clone();
        options.busy.wait_for_idle = None;
        let options = &options;
        let plan = self
            .plan_update(r, template_version, restart, options, cancel, on_event)
            .await?;
        self.describe_plan(plan, options.force).await
    }

    async fn describe_plan(&self, plan: UpdatePlan, force: bool) -> Result<DryRun> {
        let builds = plan.builds(force)?;
        let latest = plan.workspace.latest_build.clone().unwrap_or_default();
        let current_version_id = latest.template_version_id;
        // The pre-flight read the target version: its name is in the plan.
        let target_version_name = plan.target_version.name.clone();
        let name = workspace_label(&plan.workspace);
        // The name alone: the plan's target line gives the ID.
        let target = super::plan::short_version_label(
            plan.target_version.name.as_deref(),
            Some(plan.target_version_id),
        );
        let summary = match builds.len() {
            0 => format!("{name} already runs {target}: nothing would be done"),
            1 => format!(
                "{name} is stopped: one start build on {target} with {} parameter value(s)",
                plan.parameters.len()
            ),
            _ => format!(
                "{name} would be stopped, then started on {target} with {} parameter value(s)",
                plan.parameters.len()
            ),
        };
        Ok(DryRun {
            workspace: name,
            status: latest.status.clone(),
            current_version_id,
            current_version_name: latest.template_version_name.clone(),
            target_version_id: plan.target_version_id,
            target_version_name,
            builds,
            summary,
            plan,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Many workspaces
// ---------------------------------------------------------------------------------------------

/// How one workspace ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Stopped (if it ran) and started on the target version.
    Updated,
    /// Stopped and started on the same version.
    Restarted,
    /// It already ran the target version: nothing was done.
    AlreadyCurrent,
    /// Dry run: the plan says builds would be created (nothing was changed).
    WouldChange,
    /// Something failed (the reason says what and what to do).
    Failed,
    /// Started on the target, but its agents are not healthy (the reason names the agent,
    /// its state and its `health.reason`).
    Unhealthy,
    /// Not attempted: the rollout halted first (a canary failed, the failure budget was used
    /// up). Nothing was changed; a re-run resumes.
    NotAttempted,
    /// A pre-flight check refused it (or its input was invalid): nothing was changed.
    Refused,
    /// No such workspace (or the token cannot see it): nothing was changed.
    NotFound,
    /// fleet stopped it and did not start it: `aftermath.finish` finishes the job.
    LeftStopped,
    /// A deadline passed; a build may still be running.
    TimedOut,
    /// Interrupted (Ctrl-C or a cancelled request); the message says the state left.
    Interrupted,
    /// Not started at all (interrupted before fleet got to it): nothing was changed.
    NotStarted,
    /// Left alone: someone (or an AI task) is at work in it, or it is prebuilt or dormant
    /// (`skipped` says which). Nothing was changed; neither a failure nor "not attempted".
    Skipped,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Updated => "updated",
            Verdict::Restarted => "restarted",
            Verdict::AlreadyCurrent => "already current",
            Verdict::WouldChange => "would change",
            Verdict::Failed => "failed",
            Verdict::Unhealthy => "unhealthy",
            Verdict::NotAttempted => "not attempted",
            Verdict::Refused => "refused",
            Verdict::NotFound => "not found",
            Verdict::LeftStopped => "left stopped",
            Verdict::TimedOut => "timed out",
            Verdict::Interrupted => "interrupted",
            Verdict::NotStarted => "not started",
            Verdict::Skipped => "skipped",
        })
    }
}

pub use crate::operation::Severity;

/// How one workspace of a batch ended.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkspaceResult {
    /// `owner/name` (or the reference as given, when it could not be resolved).
    pub workspace: String,
    /// Its ID, when known.
    pub workspace_id: Option<Uuid>,
    /// How it ended.
    pub verdict: Verdict,
    /// How bad that is.
    pub severity: Severity,
    /// One sentence for people: what was done, or why it failed and what to do.
    pub message: String,
    /// The error's kind when it failed (as in `fleet::Error::kind`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Why it was left alone, when it was ([`Verdict::Skipped`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<super::BusyReason>,
    /// What the caller can do about the error, when it says (a face renders it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remedies: Vec<crate::Remedy>,
    /// What is left: nothing changed, finished, left stopped (with the step that finishes
    /// the job), or still running (with what to follow).
    pub aftermath: Aftermath,
    /// The version it ran before.
    pub from_version_id: Option<Uuid>,
    /// That version's name.
    pub from_version_name: Option<String>,
    /// The version it runs (or would run) now.
    pub to_version_id: Option<Uuid>,
    /// That version's name, when known.
    pub to_version_name: Option<String>,
    /// The full outcome, when the sequence ended well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<UpdateOutcome>,
    /// The plan, on a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
    /// Milliseconds the stop build took, when there was one.
    pub stop_ms: Option<u64>,
    /// Milliseconds the start build took, when there was one.
    pub start_ms: Option<u64>,
    /// Milliseconds fleet waited for the agents, when it did.
    pub ready_ms: Option<u64>,
    /// How the wait for the agents ended, when fleet waited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadyReport>,
    /// Milliseconds this workspace took.
    pub elapsed_ms: u64,
}

/// What happens during [`CoderClient::start_update_many`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FleetEvent {
    /// The targets are known (in this order; `index` below refers to it).
    Selected {
        /// `owner/name` of each target.
        workspaces: Vec<String>,
    },
    /// fleet began working on a workspace.
    Began {
        /// Its place in `Selected.workspaces`.
        index: usize,
        /// `owner/name`.
        workspace: String,
    },
    /// A step of one workspace's sequence.
    Step {
        /// Its place in `Selected.workspaces`.
        index: usize,
        /// `owner/name`.
        workspace: String,
        /// What happened.
        step: CoderEvent,
    },
    /// A workspace ended.
    Finished {
        /// Its place in `Selected.workspaces`.
        index: usize,
        /// How many have ended so far (this one included).
        done: usize,
        /// How many there are.
        total: usize,
        /// How it ended.
        result: Box<WorkspaceResult>,
    },
    /// The reader fell behind the events: this many of them (log lines first) were dropped
    /// and not given to it. No workspace's state is affected.
    LogLinesDropped {
        /// How many events were dropped.
        count: u64,
    },
    /// The rollout started no more workspaces (those in flight finished).
    Halted {
        /// Why, and the workspaces not attempted.
        halt: Halt,
    },
}

impl FleetEvent {
    /// One line for people, prefixed with the workspace.
    pub fn describe(&self) -> String {
        match self {
            FleetEvent::Selected { workspaces } => {
                format!(
                    "{} workspace(s): {}",
                    workspaces.len(),
                    workspaces.join(", ")
                )
            }
            FleetEvent::Began { workspace, .. } => format!("[{workspace}] reading"),
            FleetEvent::Step {
                workspace, step, ..
            } => format!("[{workspace}] {}", step.describe()),
            FleetEvent::Finished {
                done,
                total,
                result,
                ..
            } if result.verdict == Verdict::WouldChange => format!(
                // The plan itself is in the result (the CLI prints it once).
                "[{}] {} ({done}/{total} done)",
                result.workspace, result.verdict
            ),
            FleetEvent::Finished {
                done,
                total,
                result,
                ..
            } => format!(
                "[{}] {} ({done}/{total} done): {}",
                result.workspace, result.verdict, result.message
            ),
            FleetEvent::LogLinesDropped { count } => {
                format!("{count} log line(s) dropped: they came faster than they were read")
            }
            FleetEvent::Halted { halt } => format!(
                "rollout halted ({}, {} failure(s)): {} workspace(s) not attempted: {}",
                halt.reason,
                halt.failures,
                halt.not_attempted.len(),
                halt.not_attempted.join(", ")
            ),
        }
    }
}

/// The result of [`CoderClient::start_update_many`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FleetReport {
    /// True on a dry run (nothing was changed).
    pub dry_run: bool,
    /// How many workspaces were selected.
    pub total: usize,
    /// How many ended well (updated, restarted, already current, or planned).
    pub succeeded: usize,
    /// How many did not (neither succeeded nor skipped).
    pub failed: usize,
    /// How many were left alone because someone is at work in them (or prebuilt, dormant).
    pub skipped: usize,
    /// The worst ending (its exit code is the command's).
    pub worst: Severity,
    /// One result per workspace, in selection order.
    pub results: Vec<WorkspaceResult>,
    /// Why the rollout started no more workspaces, and which it did not attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt: Option<Halt>,
    /// For a selection by query (all outdated, a template): whose workspaces it covered and
    /// how many every owner has in the same scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<super::ListScope>,
    /// The canary size it ran with.
    pub canary: usize,
    /// The failure budget it ran with.
    pub max_failures: Option<usize>,
    /// Milliseconds from the first request to the end.
    pub elapsed_ms: u64,
}

/// A target: what the user named, and what it resolved to.
struct Target {
    label: String,
    workspace: Result<types::Workspace>,
    /// When `workspace` was read.
    read_at: Instant,
}

/// How old a workspace read by the selection may be and still be planned from. The first
/// workspaces of a batch begin at once and reuse the read (no second GET each); one that begins
/// later in a long rollout is read again, since its state may have changed since the listing.
const REUSE_READ_FOR: Duration = Duration::from_secs(30);

impl CoderClient {
    /// The workspaces a selection names, resolved (reads only). A name that cannot be resolved
    /// stays in the list with its error; a workspace named twice is kept once.
    async fn select(&self, selection: &Selection, parallel: usize) -> Result<Vec<Target>> {
        let targets: Vec<Target> = match selection {
            Selection::Named(refs) => {
                futures::stream::iter(refs.iter().cloned())
                    .map(|r| async move {
                        Target {
                            label: r.to_string(),
                            workspace: self.resolve_workspace(&r).await,
                            read_at: Instant::now(),
                        }
                    })
                    .buffered(parallel)
                    .collect()
                    .await
            }
            _ => {
                let q = selection.query().unwrap_or_default();
                let template = match selection {
                    Selection::Template { name, .. } => Some(name.trim().to_string()),
                    _ => None,
                };
                self.search_workspaces(&q)
                    .await?
                    .into_iter()
                    // The server filters too; these checks keep the meaning if one does not.
                    .filter(|w| w.outdated == Some(true))
                    .filter(|w| {
                        template.as_deref().is_none_or(|t| {
                            w.template_name
                                .as_deref()
                                .is_some_and(|n| n.eq_ignore_ascii_case(t))
                        })
                    })
                    .map(|w| Target {
                        label: workspace_label(&w),
                        workspace: Ok(w),
                        read_at: Instant::now(),
                    })
                    .collect()
            }
        };
        let mut seen_ids = HashSet::new();
        let mut seen_labels = HashSet::new();
        Ok(targets
            .into_iter()
            .filter(|t| match &t.workspace {
                Ok(w) => w.id.is_none_or(|id| seen_ids.insert(id)),
                Err(_) => seen_labels.insert(t.label.clone()),
            })
            .map(|mut t| {
                if let Ok(w) = &t.workspace {
                    t.label = workspace_label(w);
                }
                t
            })
            .collect())
    }

    /// Every workspace matching a Coder search query, all pages.
    pub(super) async fn search_workspaces(&self, q: &str) -> Result<Vec<types::Workspace>> {
        self.all_workspaces(Some(q), "listing workspaces").await
    }

    /// Updates (or restarts) many workspaces, at most `options.parallel` at once; each
    /// workspace's own sequence is the one of [`CoderClient::start_update`] (stop, wait,
    /// start, wait; a failed stop never goes on to the start). One workspace failing does not
    /// stop the others. With `options.dry_run` only reads are sent.
    ///
    /// Fails as a whole only before anything is changed: invalid input ([`Error::InvalidInput`],
    /// nothing sent) or the listing of a selection failing. Otherwise every workspace ends in
    /// a [`WorkspaceResult`]; cancelling ends the ones in flight as their sequences say (the
    /// message tells the state left) and starts no others.
    pub(crate) async fn update_many(
        &self,
        selection: &Selection,
        options: &FleetOptions,
        cancel: &Control,
        on_event: &mut (dyn FnMut(FleetEvent) + Send),
    ) -> Result<FleetReport> {
        selection.check()?;
        options.check()?;
        // A dry run never waits for anyone: it says who would be skipped.
        let mut planned_options;
        let options = if options.dry_run {
            planned_options = options.clone();
            planned_options.update.busy.wait_for_idle = None;
            &planned_options
        } else {
            options
        };
        let started = Instant::now();
        let sink = &rollout::BatchSink::new(on_event);
        let emit = |e: FleetEvent| sink.emit(e);
        let targets = tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Interrupted {
                message: "interrupted while selecting the workspaces; nothing was changed".into(),
                last_state: None,
            }),
            t = self.select(selection, options.parallel) => t?,
        };
        // Workspaces someone is at work in go last: the others are not held up by them (and
        // with a wait for idle, they have had the longest to become idle when fleet gets to
        // them). Their own check (and wait) is made when fleet gets to each.
        let mut busy = Vec::with_capacity(targets.len());
        for t in &targets {
            busy.push(match &t.workspace {
                Ok(w) => self.busy_reason(w, &options.update.busy).await.is_some(),
                Err(_) => false,
            });
        }
        let (idle, busy): (Vec<_>, Vec<_>) =
            targets.into_iter().zip(busy).partition(|(_, busy)| !*busy);
        let targets: Vec<Target> = idle.into_iter().chain(busy).map(|(t, _)| t).collect();
        let total = targets.len();
        let scope = match selection.filter() {
            Some(filter) => Some(self.scope_of(&filter, total).await),
            None => None,
        };
        emit(FleetEvent::Selected {
            workspaces: targets.iter().map(|t| t.label.clone()).collect(),
        });
        let emit = &emit;
        let run = rollout::run(
            targets,
            &options.rollout(),
            cancel,
            |t: &Target| t.label.clone(),
            |index, target| async move {
                let result = self.run_one(index, target, options, cancel, emit).await;
                emit(FleetEvent::Finished {
                    index,
                    done: sink.one_done(),
                    total,
                    result: Box::new(result.clone()),
                });
                result
            },
            |r: &WorkspaceResult| match (r.verdict, r.severity) {
                (Verdict::Skipped, _) => Judgement::Skipped,
                (_, Severity::Ok) => Judgement::Ok,
                (Verdict::Interrupted | Verdict::NotStarted, _) => Judgement::Neutral,
                (_, Severity::Refused) => Judgement::Neutral,
                _ => Judgement::Failure,
            },
            |_, target, why| not_attempted(target, why),
        )
        .await;
        if let Some(halt) = &run.halt {
            emit(FleetEvent::Halted { halt: halt.clone() });
        }
        let results = run.results;
        let skipped = results
            .iter()
            .filter(|r| r.verdict == Verdict::Skipped)
            .count();
        let succeeded = results
            .iter()
            .filter(|r| r.severity == Severity::Ok && r.verdict != Verdict::Skipped)
            .count();
        Ok(FleetReport {
            dry_run: options.dry_run,
            total,
            succeeded,
            failed: total - succeeded - skipped,
            skipped,
            worst: results
                .iter()
                .map(|r| r.severity)
                .max()
                .unwrap_or(Severity::Ok),
            results,
            halt: run.halt,
            scope,
            canary: options.canary,
            max_failures: options.max_failures,
            elapsed_ms: ms(started.elapsed()),
        })
    }

    async fn run_one(
        &self,
        index: usize,
        target: Target,
        options: &FleetOptions,
        cancel: &Control,
        emit: &(dyn Fn(FleetEvent) + Sync),
    ) -> WorkspaceResult {
        let began = Instant::now();
        let label = target.label.clone();
        let mut result = WorkspaceResult {
            workspace: label.clone(),
            workspace_id: target.workspace.as_ref().ok().and_then(|w| w.id),
            verdict: Verdict::Failed,
            severity: Severity::Failed,
            message: String::new(),
            error_kind: None,
            skipped: None,
            remedies: Vec::new(),
            aftermath: Aftermath::NothingChanged,
            from_version_id: target
                .workspace
                .as_ref()
                .ok()
                .and_then(|w| w.latest_build.as_ref())
                .and_then(|b| b.template_version_id),
            from_version_name: target
                .workspace
                .as_ref()
                .ok()
                .and_then(|w| w.latest_build.as_ref())
                .and_then(|b| b.template_version_name.clone()),
            to_version_id: None,
            to_version_name: None,
            outcome: None,
            dry_run: None,
            stop_ms: None,
            start_ms: None,
            ready_ms: None,
            ready: None,
            elapsed_ms: 0,
        };
        if cancel.is_cancelled() {
            result.verdict = Verdict::NotStarted;
            result.severity = Severity::Interrupted;
            result.message =
                format!("interrupted before fleet got to {label}: nothing was changed");
            return result;
        }
        let ws = match target.workspace {
            Ok(ws) => ws,
            Err(e) => return failed(result, &e, None, began),
        };
        let Some(id) = ws.id else {
            let e = Error::Api {
                status: 200,
                message: format!("Coder listed {label} without an id"),
                validations: vec![],
            };
            return failed(result, &e, None, began);
        };
        emit(FleetEvent::Began {
            index,
            workspace: label.clone(),
        });
        // What happened so far, to say whether a failure left the workspace stopped.
        #[derive(Default)]
        struct Seen {
            stop_created: bool,
            stop_done: bool,
            start_created: bool,
            stop_ms: Option<u64>,
            start_ms: Option<u64>,
        }
        let seen = Mutex::new(Seen::default());
        let mut on_step = |step: CoderEvent| {
            if let Ok(mut s) = seen.lock() {
                match &step {
                    CoderEvent::BuildCreated {
                        step: Step::Stop, ..
                    }
                    | CoderEvent::BuildFoundAfterError {
                        step: Step::Stop, ..
                    } => s.stop_created = true,
                    CoderEvent::BuildSucceeded {
                        step: Step::Stop,
                        elapsed_ms,
                        ..
                    } => {
                        s.stop_done = true;
                        s.stop_ms = Some(*elapsed_ms);
                    }
                    CoderEvent::BuildSucceeded {
                        step: Step::Start,
                        elapsed_ms,
                        ..
                    } => s.start_ms = Some(*elapsed_ms),
                    CoderEvent::BuildCreated {
                        step: Step::Start, ..
                    }
                    | CoderEvent::BuildFoundAfterError {
                        step: Step::Start, ..
                    } => s.start_created = true,
                    _ => {}
                }
            }
            // A dry run's plan is its result: its Planned step would say it a second time
            // (issue 27 item 7).
            if options.dry_run && matches!(step, CoderEvent::Planned { .. }) {
                return;
            }
            emit(FleetEvent::Step {
                index,
                workspace: label.clone(),
                step,
            });
        };
        let (template_version, restart) = match &options.action {
            BatchAction::Update { template_version } => (template_version.clone(), false),
            BatchAction::Restart => (None, true),
        };
        let r = WorkspaceRef::Id(id);
        let planned = if target.read_at.elapsed() <= REUSE_READ_FOR {
            self.plan_resolved(
                &r,
                ws,
                template_version,
                restart,
                &options.update,
                cancel,
                &mut on_step,
            )
            .await
        } else {
            self.plan_update(
                &r,
                template_version,
                restart,
                &options.update,
                cancel,
                &mut on_step,
            )
            .await
        };
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => match e.root() {
                Error::Busy { reason, waited, .. } => {
                    result.verdict = Verdict::Skipped;
                    result.severity = Severity::Ok;
                    result.skipped = Some(reason.clone());
                    result.message = format!("{reason}{waited}; nothing was changed");
                    result.error_kind = Some(e.kind().to_string());
                    result.remedies = e.remedies().to_vec();
                    result.aftermath = Aftermath::NothingChanged;
                    result.elapsed_ms = ms(began.elapsed());
                    return result;
                }
                _ => return failed(result, &e, None, began),
            },
        };
        result.to_version_id = Some(plan.target_version_id);
        if options.dry_run {
            return match self.describe_plan(plan, options.update.force).await {
                Ok(d) => {
                    result.verdict = if d.is_noop() {
                        Verdict::AlreadyCurrent
                    } else {
                        Verdict::WouldChange
                    };
                    result.severity = Severity::Ok;
                    result.message = d.summary.clone();
                    result.to_version_name = d.target_version_name.clone();
                    result.dry_run = Some(d);
                    result.elapsed_ms = ms(began.elapsed());
                    result
                }
                Err(e) => failed(result, &e, None, began),
            };
        }
        let finish = plan.finish_step();
        let run = self
            .run_plan(&plan, &options.update, cancel, &mut on_step, began)
            .await;
        if let Ok(s) = seen.lock() {
            result.stop_ms = s.stop_ms;
            result.start_ms = s.start_ms;
        }
        match run {
            Ok(outcome) => {
                result.verdict = match outcome.action {
                    UpdateAction::UpToDate => Verdict::AlreadyCurrent,
                    UpdateAction::Restarted => Verdict::Restarted,
                    UpdateAction::Updated | UpdateAction::Started => Verdict::Updated,
                };
                result.severity = Severity::Ok;
                result.aftermath = Aftermath::Finished;
                result.message = outcome.message.clone();
                result.to_version_name = outcome.workspace.template_version_name.clone();
                result.outcome = Some(outcome);
                // The start fleet created; for a workspace already current, its latest build
                // (a re-run checks that it is healthy, not only current).
                let build_id = match &result.outcome {
                    Some(o) if o.action == UpdateAction::UpToDate => {
                        plan.workspace.latest_build.as_ref().and_then(|b| b.id)
                    }
                    Some(o) => o.builds.last().and_then(|b| b.id),
                    None => None,
                };
                if let (Some(ready), Some(build_id)) = (&options.ready, build_id) {
                    let ready = ReadyOptions {
                        push: ready.push && options.update.push,
                        ..ready.clone()
                    };
                    let waited = self
                        .wait_until_ready_of(
                            plan.workspace.id,
                            &build_id,
                            &ready,
                            cancel,
                            &mut |e| on_step(CoderEvent::Readiness(e)),
                        )
                        .await;
                    match waited {
                        Ok(report) => judge_readiness(&mut result, report),
                        Err(e) => {
                            result.severity = Severity::Failed;
                            result.verdict = Verdict::Failed;
                            result.error_kind = Some(e.kind().to_string());
                            result.remedies = e.remedies().to_vec();
                            result.aftermath = Aftermath::Unknown;
                            result.message = format!(
                                "{}; but its agents could not be read: {e}",
                                result.message
                            );
                        }
                    }
                }
                result.elapsed_ms = ms(began.elapsed());
                result
            }
            Err(e) => {
                let s = seen
                    .lock()
                    .map(|s| (s.stop_created, s.stop_done, s.start_created));
                let (stop_created, stop_done, start_created) = s.unwrap_or((false, false, false));
                // fleet stopped it (or its stop goes on) and nothing was started.
                let stop_goes_on =
                    stop_created && matches!(e, Error::Timeout { .. } | Error::Interrupted { .. });
                let left_stopped = (stop_done || stop_goes_on) && !start_created;
                // Only the name is missing: a failed read leaves it out.
                if let Ok(v) = self.template_version(&plan.target_version_id).await {
                    result.to_version_name = v.name;
                }
                failed(result, &e, left_stopped.then_some(finish), began)
            }
        }
    }
}

/// Folds the wait for the agents into a workspace's result: unhealthy is a failure of its own
/// (the build succeeded; the workspace does not work).
fn judge_readiness(result: &mut WorkspaceResult, report: ReadyReport) {
    result.ready_ms = Some(report.elapsed_ms);
    match report.readiness {
        Readiness::Ready => {}
        Readiness::Unhealthy => {
            result.verdict = Verdict::Unhealthy;
            result.severity = Severity::Failed;
            result.error_kind = Some("unhealthy".into());
            result.aftermath = Aftermath::Unknown;
            result.message = format!("{}; but {}", result.message, report.reason);
        }
        Readiness::NotWaited | Readiness::Interrupted => {
            result.message = format!("{}; {}", result.message, report.reason);
        }
    }
    result.ready = Some(report);
}

/// The result of a workspace the rollout did not attempt.
fn not_attempted(target: Target, why: HaltReason) -> WorkspaceResult {
    let latest = target
        .workspace
        .as_ref()
        .ok()
        .and_then(|w| w.latest_build.as_ref());
    let (verdict, severity, message) = match why {
        HaltReason::Cancelled => (
            Verdict::NotStarted,
            Severity::Interrupted,
            format!(
                "interrupted before fleet got to {}: nothing was changed",
                target.label
            ),
        ),
        _ => (
            Verdict::NotAttempted,
            Severity::Refused,
            format!(
                "not attempted: the rollout halted ({why}); nothing was changed, a re-run \
                 resumes"
            ),
        ),
    };
    WorkspaceResult {
        workspace: target.label.clone(),
        workspace_id: target.workspace.as_ref().ok().and_then(|w| w.id),
        verdict,
        severity,
        message,
        error_kind: None,
        skipped: None,
        remedies: Vec::new(),
        aftermath: Aftermath::NothingChanged,
        from_version_id: latest.and_then(|b| b.template_version_id),
        from_version_name: latest.and_then(|b| b.template_version_name.clone()),
        to_version_id: None,
        to_version_name: None,
        outcome: None,
        dry_run: None,
        stop_ms: None,
        start_ms: None,
        ready_ms: None,
        ready: None,
        elapsed_ms: 0,
    }
}

fn failed(
    mut result: WorkspaceResult,
    e: &Error,
    left_stopped: Option<crate::operation::FinishStep>,
    began: Instant,
) -> WorkspaceResult {
    result.severity = Severity::of(e);
    let left_stopped = left_stopped.filter(|_| {
        e.aftermath()
            .is_none_or(|a| matches!(a, Aftermath::LeftStopped { .. }))
    });
    let stopped_by_fleet = left_stopped.is_some()
        || (matches!(e.aftermath(), Some(Aftermath::LeftStopped { .. }))
            && !matches!(e.root(), Error::OperationFailed { .. }));
    result.verdict = match (stopped_by_fleet, result.severity) {
        (true, _) => Verdict::LeftStopped,
        (false, Severity::TimedOut) => Verdict::TimedOut,
        (false, Severity::Interrupted) => Verdict::Interrupted,
        (false, Severity::Refused) if matches!(e.root(), Error::UnknownWorkspace { .. }) => {
            Verdict::NotFound
        }
        (false, Severity::Refused) => Verdict::Refused,
        _ => Verdict::Failed,
    };
    result.message = e.to_string();
    result.error_kind = Some(e.kind().to_string());
    result.remedies = e.remedies().to_vec();
    result.aftermath = match (e.aftermath(), left_stopped) {
        (Some(a), _) => a.clone(),
        (None, Some(finish)) => Aftermath::LeftStopped { finish },
        (None, None) if result.severity == Severity::Refused => Aftermath::NothingChanged,
        (None, None) => match e.root() {
            Error::Timeout { .. } | Error::Interrupted { .. } | Error::Transport(_) => {
                Aftermath::StillRunning {
                    follow: FollowStep::CoderWorkspace {
                        workspace: result.workspace.clone(),
                    },
                }
            }
            _ => Aftermath::Unknown,
        },
    };
    result.elapsed_ms = ms(began.elapsed());
    result
}
