//! Progressive delivery of a template version: canaries first, promote only what is healthy,
//! roll out the rest, roll a failed canary back.
//!
//! [`CoderClient::start_promote`] runs, as one [`Operation`]:
//! 1. **pre-flight** (reads only): the version exists, belongs to the template, is imported and
//!    not archived; every workspace that will move passes the update's own pre-flight on it
//!    (parameters included). A refusal changes nothing.
//! 2. **canary**: [`PromoteOptions::canary`] running workspaces of the template that nobody is
//!    at work in (or the ones named) are updated to the version, pinned, and must end healthy.
//! 3. **promotion**: only then the version becomes the template's active one (`PATCH`).
//! 4. **rollout**: the template's other workspaces that do not run it, through the one rollout
//!    engine (parallel, failure budget, readiness; a re-run resumes).
//! 5. **rollback**: a canary that failed is updated back to the version it ran before; nothing
//!    is promoted and no other workspace is touched.
//!
//! [`CoderClient::start_plan_promote`] does step 1 and returns the [`PromotePlan`];
//! [`CoderClient::start_rollback`] restores a template's previous active version and takes
//! the workspaces a promotion moved back. Each report records, per workspace, the version it
//! came from ([`MovedWorkspace`]): what a rollback needs.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use uuid::Uuid;

use super::{
    BatchAction, BusyReason, CoderClient, FleetEvent, FleetOptions, FleetReport, ReadyOptions,
    Selection, Severity, TemplateVersionRef, UpdateOptions, Verdict, WorkspaceRef, WorkspaceResult,
    WorkspaceStatus,
    templates::{NotPromotable, VersionName},
    types,
};
use crate::{
    Error, Input, Remedy, Result,
    operation::{
        Control, Operation, OperationEvent, OperationKind, OperationOutput, Phase, TargetStatus, ms,
    },
};

/// How many canaries a promotion tries unless told.
pub const DEFAULT_CANARY: usize = 1;

/// What to promote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoteRequest {
    /// The template: its name (case does not matter) or ID.
    pub template: String,
    /// The version to make active: its name within the template, or its ID.
    pub version: TemplateVersionRef,
    /// The canaries, named (empty: fleet chooses [`PromoteOptions::canary`] of them).
    pub canary_workspaces: Vec<WorkspaceRef>,
}

/// How a promotion runs.
#[derive(Debug, Clone)]
pub struct PromoteOptions {
    /// How many canaries fleet chooses when none are named (0: promote without canaries).
    /// Its range is the rollouts' ([`crate::rollout::RolloutOptions::CANARY_RANGE`]).
    pub canary: usize,
    /// At most this many workspaces in flight (canaries, rollout, rollback).
    pub parallel: usize,
    /// The rollout after the promotion starts no more workspaces once this many failed.
    pub max_failures: Option<usize>,
    /// Deadlines, polling, parameters, who is at work: the same for every workspace.
    pub update: UpdateOptions,
    /// After each start, wait for the agents (`None`: a built workspace counts as healthy).
    pub ready: Option<ReadyOptions>,
    /// Update a failed canary back to the version it ran before (false: leave it for
    /// inspection).
    pub rollback: bool,
    /// Plan only: the reads, no change.
    pub dry_run: bool,
}

impl Default for PromoteOptions {
    fn default() -> Self {
        PromoteOptions {
            canary: DEFAULT_CANARY,
            parallel: super::DEFAULT_PARALLEL,
            max_failures: None,
            update: UpdateOptions::default(),
            ready: Some(ReadyOptions::default()),
            rollback: true,
            dry_run: false,
        }
    }
}

impl PromoteOptions {
    /// The batch options of one phase: the version pinned, the rollout controls and
    /// readiness; `max_failures` only where it applies.
    fn batch(&self, version: Uuid, max_failures: Option<usize>, dry_run: bool) -> FleetOptions {
        FleetOptions {
            action: BatchAction::Update {
                template_version: Some(TemplateVersionRef::Id(version)),
            },
            parallel: self.parallel,
            update: self.update.clone(),
            dry_run,
            canary: 0,
            max_failures,
            ready: self.ready.clone(),
        }
    }

    /// Checks every control against its one range (the rollouts', the ready timeout's):
    /// [`Error::InvalidInput`], nothing sent.
    pub fn check(&self) -> Result<()> {
        FleetOptions {
            canary: self.canary,
            ..self.batch(Uuid::nil(), self.max_failures, true)
        }
        .check()
    }
}

/// The phases of a promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromotePhase {
    /// Reads: the version, the workspaces, each one's pre-flight.
    Preflight,
    /// The canaries are updated to the version.
    Canary,
    /// The version is made the template's active one.
    Promotion,
    /// The other workspaces are updated.
    Rollout,
    /// Workspaces are taken back to the version they ran before.
    Rollback,
}

impl std::fmt::Display for PromotePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PromotePhase::Preflight => "pre-flight",
            PromotePhase::Canary => "canary",
            PromotePhase::Promotion => "promotion",
            PromotePhase::Rollout => "rollout",
            PromotePhase::Rollback => "rollback",
        })
    }
}

/// One workspace of a plan.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlannedWorkspace {
    /// `owner/name`.
    pub workspace: String,
    /// Its ID.
    pub workspace_id: Uuid,
    /// Its status now.
    pub status: Option<WorkspaceStatus>,
    /// The version it runs now.
    pub from: Option<VersionName>,
    /// Why it will be left alone (someone is at work in it), when it will.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy: Option<BusyReason>,
}

/// How the canaries were chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CanaryChoice {
    /// The caller named them.
    Named,
    /// fleet chose running workspaces nobody is at work in, by name; `asked` were asked for.
    Chosen {
        /// How many were asked for.
        asked: usize,
    },
    /// None: the version is already the active one (a re-run resumes the rollout).
    AlreadyActive,
    /// None: no canary was asked for.
    NoneAsked,
    /// None: no running workspace of the template nobody is at work in.
    NoCandidate,
}

/// Whether the session may make a version active, as far as its site roles tell (`GET
/// /users/me`). Coder answers the PATCH with 403 without template-admin permission; an
/// organization role may grant it too, which the site roles do not show, so only a role that
/// grants it is certain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PromotePermission {
    /// A site role grants it (`owner` or `template-admin`).
    Granted {
        /// The role.
        role: String,
    },
    /// No site role grants it: unless an organization role does, Coder will refuse the
    /// promotion (403) after the canaries.
    Unconfirmed {
        /// The session's site roles.
        roles: Vec<String>,
    },
    /// The session's roles could not be read.
    Unknown,
}

/// What a promotion would do, found with reads only.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PromotePlan {
    /// The template's name.
    pub template: String,
    /// Its ID.
    pub template_id: Uuid,
    /// The version to promote.
    pub version: VersionName,
    /// The template's active version now (what a rollback restores).
    pub active_version: Option<VersionName>,
    /// True when the version is already the active one: no canary, no promotion; the
    /// rollout resumes.
    pub already_active: bool,
    /// The canaries, in order.
    pub canaries: Vec<PlannedWorkspace>,
    /// How they were chosen.
    pub canary_choice: CanaryChoice,
    /// Running workspaces passed over as canaries because someone is at work in them.
    pub passed_over: Vec<PlannedWorkspace>,
    /// The workspaces updated after the promotion, in order.
    pub rest: Vec<PlannedWorkspace>,
    /// Workspaces the update's pre-flight refuses on this version (nothing changed): any
    /// refuses the whole promotion.
    pub refusals: Vec<WorkspaceResult>,
    /// Why the version itself cannot be made active (empty: it can).
    pub not_promotable: Vec<NotPromotable>,
    /// Whether the session may make it active, as its site roles tell.
    pub permission: PromotePermission,
}

impl PromotePlan {
    /// True when the promotion would be refused (nothing would be changed).
    pub fn refused(&self) -> bool {
        !self.refusals.is_empty() || !self.not_promotable.is_empty()
    }

    /// One paragraph for people: why it is refused, when it is.
    pub fn refusal_text(&self) -> Option<String> {
        if !self.refused() {
            return None;
        }
        let mut why: Vec<String> = self
            .not_promotable
            .iter()
            .map(|n| format!("version {} cannot be made active: {n}", self.version))
            .collect();
        // A few in full; the report lists every one.
        const SHOWN: usize = 3;
        for r in self.refusals.iter().take(SHOWN) {
            why.push(format!(
                "{}: {}",
                crate::text::escape_one_line(&r.workspace),
                r.message
            ));
        }
        if self.refusals.len() > SHOWN {
            why.push(format!(
                "and {} more workspace(s) refused (the report lists each)",
                self.refusals.len() - SHOWN
            ));
        }
        Some(format!(
            "fleet refused to promote {} on template {}: {}; nothing was changed",
            self.version,
            crate::text::escape_one_line(&self.template),
            why.join("; ")
        ))
    }
}

/// A workspace a promotion (or rollback) moved, and the version it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct MovedWorkspace {
    /// `owner/name`.
    pub workspace: String,
    /// Its ID.
    pub workspace_id: Option<Uuid>,
    /// The version it ran before.
    pub from: Option<VersionName>,
    /// The phase that moved it.
    pub phase: PromotePhase,
    /// How that phase ended for it.
    pub verdict: Verdict,
    /// True once a rollback took it back to `from`.
    pub rolled_back: bool,
}

/// How a promotion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromoteOutcome {
    /// Dry run: the plan, nothing changed.
    Planned,
    /// Refused by the pre-flight: nothing changed.
    Refused,
    /// A canary did not end healthy: nothing promoted, no other workspace touched (the
    /// canaries rolled back unless told otherwise).
    CanaryFailed,
    /// Coder refused to make the version active (or the call failed): the canaries are left
    /// on the new version.
    PromotionFailed,
    /// Promoted; the rollout ran (its report says how each workspace ended).
    Promoted,
    /// Interrupted before the promotion: nothing promoted.
    InterruptedBeforePromotion,
}

/// What happens during a promotion or a rollback.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PromoteEvent {
    /// The pre-flight ended: the plan.
    Planned {
        /// The template.
        template: String,
        /// The version.
        version: VersionName,
        /// The canaries chosen (or named), `owner/name`.
        canaries: Vec<String>,
        /// Passed over as canaries: someone is at work in them.
        passed_over: Vec<String>,
        /// The workspaces updated after the promotion, `owner/name`.
        rest: Vec<String>,
    },
    /// A phase began, on these workspaces.
    PhaseBegan {
        /// The phase.
        phase: PromotePhase,
        /// `owner/name` of each workspace it covers (none for the promotion).
        workspaces: Vec<String>,
    },
    /// A step of one workspace in a phase.
    Workspace {
        /// The phase.
        phase: PromotePhase,
        /// What happened.
        step: FleetEvent,
    },
    /// The version is now the template's active one.
    Promoted {
        /// The template.
        template: String,
        /// The version made active.
        version: VersionName,
        /// The version active before.
        previous: Option<VersionName>,
    },
    /// The version was not made active: Coder refused or the call failed.
    PromotionFailed {
        /// What Coder said.
        message: String,
    },
    /// The pre-flight checked one more workspace that will move (reads only: the version,
    /// its parameters for that workspace): `checked` of `total` so far.
    PreflightChecked {
        /// `owner/name` of the one checked last.
        workspace: String,
        /// How many are checked (this one included).
        checked: usize,
        /// How many the pre-flight checks.
        total: usize,
    },
    /// The reader fell behind: this many events (log lines first) were dropped.
    LogLinesDropped {
        /// How many.
        count: u64,
    },
}

impl PromoteEvent {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            PromoteEvent::Planned {
                template,
                version,
                canaries,
                passed_over,
                rest,
            } => {
                let mut s = format!(
                    "plan for {version} on template {template}: canaries {}; then {} more",
                    if canaries.is_empty() {
                        "none".into()
                    } else {
                        canaries.join(", ")
                    },
                    rest.len()
                );
                if !passed_over.is_empty() {
                    s.push_str(&format!(
                        " (passed over, someone at work: {})",
                        passed_over.join(", ")
                    ));
                }
                s
            }
            PromoteEvent::PhaseBegan { phase, workspaces } if workspaces.is_empty() => {
                format!("{phase}")
            }
            PromoteEvent::PhaseBegan { phase, workspaces } => {
                format!("{phase}: {}", workspaces.join(", "))
            }
            PromoteEvent::Workspace { phase, step } => format!("{phase} {}", step.describe()),
            PromoteEvent::Promoted {
                template,
                version,
                previous,
            } => format!(
                "promoted: {version} is the active version of template {template}{}",
                previous
                    .as_ref()
                    .map(|p| format!(" (was {p})"))
                    .unwrap_or_default()
            ),
            PromoteEvent::PromotionFailed { message } => {
                format!("promotion failed: {message}")
            }
            PromoteEvent::PreflightChecked {
                workspace,
                checked,
                total,
            } => format!("pre-flight: checked {checked} of {total} ({workspace})"),
            PromoteEvent::LogLinesDropped { count } => {
                format!("{count} log line(s) dropped: they came faster than they were read")
            }
        }
    }
}

impl OperationEvent for PromoteEvent {
    fn describe(&self) -> String {
        PromoteEvent::describe(self)
    }

    fn is_log_line(&self) -> bool {
        matches!(self, PromoteEvent::Workspace { step, .. } if step.is_log_line())
    }

    fn dropped(count: u64) -> Option<Self> {
        Some(PromoteEvent::LogLinesDropped { count })
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        let entry = |workspaces: &mut Vec<TargetStatus>, name: &str| -> usize {
            match workspaces.iter().position(|w| w.target == name) {
                Some(i) => i,
                None => {
                    workspaces.push(TargetStatus {
                        target: name.to_string(),
                        phase: Phase::Waiting,
                        verdict: None,
                        message: None,
                    });
                    workspaces.len() - 1
                }
            }
        };
        match self {
            // The template stood for the targets until they were known.
            PromoteEvent::Planned { canaries, rest, .. } => {
                *workspaces = canaries
                    .iter()
                    .chain(rest)
                    .map(|n| TargetStatus {
                        target: n.clone(),
                        phase: Phase::Waiting,
                        verdict: None,
                        message: None,
                    })
                    .collect();
            }
            PromoteEvent::PhaseBegan {
                workspaces: names, ..
            } => {
                for n in names {
                    let i = entry(workspaces, n);
                    workspaces[i].phase = Phase::Queued;
                    workspaces[i].verdict = None;
                }
            }
            PromoteEvent::Workspace { phase, step: event } => match event {
                FleetEvent::Step {
                    workspace, step, ..
                } => {
                    let i = entry(workspaces, workspace);
                    if let Some(p) = super::operations::phase_of(step) {
                        workspaces[i].phase = p;
                    }
                    workspaces[i].message = Some(format!("{phase}: {}", step.describe()));
                }
                FleetEvent::Began { workspace, .. } => {
                    let i = entry(workspaces, workspace);
                    workspaces[i].phase = Phase::Planning;
                }
                FleetEvent::Finished { result, .. } => {
                    let i = entry(workspaces, &result.workspace);
                    workspaces[i].phase = Phase::Done;
                    workspaces[i].verdict = Some(verdict_word(result.verdict));
                    workspaces[i].message = Some(format!("{phase}: {}", result.message));
                }
                FleetEvent::Halted { halt } => {
                    for n in &halt.not_attempted {
                        let i = entry(workspaces, n);
                        workspaces[i].phase = Phase::Done;
                        workspaces[i].verdict = Some("not_attempted".into());
                    }
                }
                FleetEvent::Selected { .. } | FleetEvent::LogLinesDropped { .. } => {}
            },
            PromoteEvent::Promoted { .. }
            | PromoteEvent::PromotionFailed { .. }
            | PromoteEvent::PreflightChecked { .. }
            | PromoteEvent::LogLinesDropped { .. } => {}
        }
    }
}

fn verdict_word(v: Verdict) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => v.to_string(),
    }
}

/// The result of [`CoderClient::start_promote`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PromoteReport {
    /// How it ended.
    pub outcome: PromoteOutcome,
    /// True once the version is the template's active one (by this run or before it).
    pub promoted: bool,
    /// True on a dry run (nothing was changed).
    pub dry_run: bool,
    /// The plan the pre-flight made.
    pub plan: PromotePlan,
    /// How the canaries ended, when they ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<FleetReport>,
    /// What Coder said when the version was not made active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_error: Option<String>,
    /// How the rollout after the promotion ended, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<FleetReport>,
    /// How the rollback of failed canaries ended, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<FleetReport>,
    /// Every workspace this run moved off its version, with the version it came from.
    pub moved: Vec<MovedWorkspace>,
    /// One paragraph for people: what happened and what is left.
    pub message: String,
    /// The worst ending (a face maps it to its words: an exit code, a tool error).
    pub worst: Severity,
    /// Milliseconds from the first request to the end.
    pub elapsed_ms: u64,
}

impl PromoteReport {
    /// The moved workspaces still on the new version (not rolled back), grouped by the
    /// version each came from: what a rollback takes back, group by group.
    pub fn to_roll_back(&self) -> BTreeMap<Uuid, (VersionName, Vec<String>)> {
        let mut groups: BTreeMap<Uuid, (VersionName, Vec<String>)> = BTreeMap::new();
        for m in self.moved.iter().filter(|m| !m.rolled_back) {
            if let Some(from) = &m.from {
                groups
                    .entry(from.id)
                    .or_insert_with(|| (from.clone(), Vec::new()))
                    .1
                    .push(m.workspace.clone());
            }
        }
        groups
    }
}

fn finish_rows(workspaces: &mut Vec<TargetStatus>, reports: &[&FleetReport]) {
    for r in reports.iter().flat_map(|r| &r.results) {
        let i = match workspaces.iter().position(|w| w.target == r.workspace) {
            Some(i) => i,
            None => {
                workspaces.push(TargetStatus {
                    target: r.workspace.clone(),
                    phase: Phase::Done,
                    verdict: None,
                    message: None,
                });
                workspaces.len() - 1
            }
        };
        workspaces[i].phase = Phase::Done;
        workspaces[i].verdict = Some(verdict_word(r.verdict));
        workspaces[i].message = Some(r.message.clone());
    }
}

impl OperationOutput for PromoteReport {
    fn ended_well(&self) -> bool {
        self.worst == Severity::Ok
    }

    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        let reports: Vec<&FleetReport> = [&self.canary, &self.rollback, &self.rollout]
            .into_iter()
            .flatten()
            .collect();
        finish_rows(workspaces, &reports);
        // The ones no phase reached: planned (a dry run), refused, or never begun.
        let verdict = match self.outcome {
            PromoteOutcome::Planned => "planned",
            PromoteOutcome::Refused => "refused",
            _ => "not_started",
        };
        for w in workspaces.iter_mut().filter(|w| w.verdict.is_none()) {
            w.phase = Phase::Done;
            w.verdict = Some(verdict.into());
            if self.outcome != PromoteOutcome::Planned {
                w.message = Some(self.message.clone());
            }
        }
    }
}

impl OperationOutput for PromotePlan {
    fn ended_well(&self) -> bool {
        !self.refused()
    }
}

/// One workspace of the template, as read.
fn planned(w: &types::Workspace, busy: Option<BusyReason>) -> Option<PlannedWorkspace> {
    let latest = w.latest_build.as_ref();
    Some(PlannedWorkspace {
        workspace: super::model::full_name(w),
        workspace_id: w.id?,
        status: latest.and_then(|b| b.status.clone()),
        from: latest.and_then(|b| {
            b.template_version_id.map(|id| VersionName {
                id,
                name: b.template_version_name.clone(),
            })
        }),
        busy,
    })
}

fn ids(ws: &[PlannedWorkspace]) -> Vec<WorkspaceRef> {
    ws.iter()
        .map(|w| WorkspaceRef::Id(w.workspace_id))
        .collect()
}

fn names(ws: &[PlannedWorkspace]) -> Vec<String> {
    ws.iter().map(|w| w.workspace.clone()).collect()
}

/// True when the result says the workspace was changed (a build was created).
fn changed(r: &WorkspaceResult) -> bool {
    !matches!(
        r.verdict,
        Verdict::AlreadyCurrent
            | Verdict::WouldChange
            | Verdict::NotAttempted
            | Verdict::Refused
            | Verdict::NotFound
            | Verdict::NotStarted
            | Verdict::Skipped
    ) && r.aftermath != crate::operation::Aftermath::NothingChanged
}

/// True when a canary's result proves the version healthy on it.
fn healthy(r: &WorkspaceResult) -> bool {
    r.severity == Severity::Ok && matches!(r.verdict, Verdict::Updated | Verdict::AlreadyCurrent)
}

fn moved_of(report: &FleetReport, phase: PromotePhase, version: Uuid) -> Vec<MovedWorkspace> {
    report
        .results
        .iter()
        .filter(|r| changed(r) && r.from_version_id != Some(version))
        .map(|r| MovedWorkspace {
            workspace: r.workspace.clone(),
            workspace_id: r.workspace_id,
            from: r.from_version_id.map(|id| VersionName {
                id,
                name: r.from_version_name.clone(),
            }),
            phase,
            verdict: r.verdict,
            rolled_back: false,
        })
        .collect()
}

fn interrupted_before_anything(what: &str) -> Error {
    Error::Interrupted {
        message: format!("interrupted {what}; nothing was changed"),
        last_state: None,
    }
}

impl CoderClient {
    /// The pre-flight of a promotion: reads only (see the module's documentation).
    pub(crate) async fn plan_promote(
        &self,
        request: &PromoteRequest,
        options: &PromoteOptions,
        control: &Control,
        emit: &mut (dyn FnMut(PromoteEvent) + Send),
    ) -> Result<PromotePlan> {
        options.check()?;
        let template = self.find_template(&request.template).await?;
        let template_id = template.id.ok_or_else(super::model::no_id)?;
        let template_name = template
            .name
            .clone()
            .unwrap_or_else(|| template_id.to_string());
        let (version, not_promotable) =
            self.promotable_version(&template, &request.version).await?;
        let version_id = version.id.ok_or_else(super::model::no_id)?;
        let version = VersionName {
            id: version_id,
            name: version.name.clone(),
        };
        let active_version = match template.active_version_id {
            Some(id) if id == version_id => Some(version.clone()),
            Some(id) => Some(VersionName {
                id,
                name: self.template_version(&id).await.ok().and_then(|v| v.name),
            }),
            None => None,
        };
        let already_active = template.active_version_id == Some(version_id);
        if control.is_cancelled() {
            return Err(interrupted_before_anything("during the pre-flight"));
        }
        // Every workspace of the template, every owner's: a promotion moves them all.
        let all = self
            .search_workspaces(&format!("template:{template_name}"))
            .await?
            .into_iter()
            .filter(|w| w.template_id == Some(template_id))
            .collect::<Vec<_>>();
        let on_version = |w: &types::Workspace| {
            w.latest_build.as_ref().and_then(|b| b.template_version_id) == Some(version_id)
        };
        let deleted = |w: &types::Workspace| {
            w.latest_build
                .as_ref()
                .and_then(|b| b.status.as_ref())
                .is_some_and(|s| matches!(s, WorkspaceStatus::Deleted | WorkspaceStatus::Deleting))
        };
        let mut moving: Vec<(types::Workspace, Option<BusyReason>)> = Vec::new();
        for w in all.into_iter().filter(|w| !deleted(w) && !on_version(w)) {
            let busy = self.busy_reason(&w, &options.update.busy).await;
            moving.push((w, busy));
        }
        moving.sort_by_key(|(w, _)| super::model::full_name(w));

        let mut passed_over = Vec::new();
        let (canaries, canary_choice) = if already_active {
            (Vec::new(), CanaryChoice::AlreadyActive)
        } else if !request.canary_workspaces.is_empty() {
            let mut named = Vec::new();
            for r in &request.canary_workspaces {
                let w = self.resolve_workspace(r).await?;
                if w.template_id != Some(template_id) {
                    return Err(Error::Refused(format!(
                        "canary {} is a workspace of template {}, not of {template_name}; \
                         nothing was changed",
                        super::model::full_name(&w),
                        w.template_name.as_deref().unwrap_or("another template")
                    )));
                }
                let busy = self.busy_reason(&w, &options.update.busy).await;
                if let Some(p) = planned(&w, busy) {
                    if !named
                        .iter()
                        .any(|n: &PlannedWorkspace| n.workspace_id == p.workspace_id)
                    {
                        named.push(p);
                    }
                }
            }
            (named, CanaryChoice::Named)
        } else if options.canary == 0 {
            (Vec::new(), CanaryChoice::NoneAsked)
        } else {
            let mut chosen = Vec::new();
            for (w, busy) in &moving {
                let running = w
                    .latest_build
                    .as_ref()
                    .and_then(|b| b.status.as_ref())
                    .is_some_and(|s| *s == WorkspaceStatus::Running);
                if !running {
                    continue;
                }
                match busy {
                    Some(_) => passed_over.extend(planned(w, busy.clone())),
                    None if chosen.len() < options.canary => chosen.extend(planned(w, None)),
                    None => {}
                }
            }
            if chosen.is_empty() && !moving.is_empty() {
                return Err(Error::advised(
                    Error::Refused(format!(
                        "fleet refused to promote {version} on template {template_name}: none of \
                         its {} workspace(s) to move is running and free of anyone at work, so \
                         no canary can try the version first; nothing was changed",
                        moving.len()
                    )),
                    vec![
                        Remedy::Give {
                            input: Input::Workspaces,
                            value: None,
                        },
                        Remedy::Give {
                            input: Input::Canary,
                            value: Some("0".into()),
                        },
                    ],
                ));
            }
            let choice = if chosen.is_empty() {
                CanaryChoice::NoCandidate
            } else {
                CanaryChoice::Chosen {
                    asked: options.canary,
                }
            };
            (chosen, choice)
        };
        let rest: Vec<PlannedWorkspace> = moving
            .iter()
            .filter(|(w, _)| !canaries.iter().any(|c| Some(c.workspace_id) == w.id))
            .filter_map(|(w, busy)| planned(w, busy.clone()))
            .collect();

        // Each workspace that will move passes the update's own pre-flight on the version
        // (parameters included): reads only.
        let mut refusals = Vec::new();
        let targets: Vec<WorkspaceRef> = ids(&canaries).into_iter().chain(ids(&rest)).collect();
        if !targets.is_empty() && not_promotable.is_empty() {
            let selection = Selection::Named(targets);
            let batch = options.batch(version_id, None, true);
            // A large template takes a while (a few reads per workspace): say how far it got.
            let mut progress = |e: FleetEvent| {
                if let FleetEvent::Finished {
                    done,
                    total,
                    result,
                    ..
                } = e
                {
                    emit(PromoteEvent::PreflightChecked {
                        workspace: result.workspace,
                        checked: done,
                        total,
                    });
                }
            };
            let checked = tokio::select! {
                _ = control.cancelled() => {
                    return Err(interrupted_before_anything("during the pre-flight"));
                }
                r = self.update_many(&selection, &batch, control, &mut progress) => r?,
            };
            refusals = checked
                .results
                .into_iter()
                .filter(|r| r.severity != Severity::Ok && r.verdict != Verdict::Skipped)
                .collect();
        }
        let permission = if already_active {
            PromotePermission::Unknown
        } else {
            self.promote_permission().await
        };
        let plan = PromotePlan {
            permission,
            template: template_name,
            template_id,
            version,
            active_version,
            already_active,
            canaries,
            canary_choice,
            passed_over,
            rest,
            refusals,
            not_promotable,
        };
        emit(PromoteEvent::Planned {
            template: plan.template.clone(),
            version: plan.version.clone(),
            canaries: names(&plan.canaries),
            passed_over: names(&plan.passed_over),
            rest: names(&plan.rest),
        });
        Ok(plan)
    }

    /// Whether the session's site roles grant making a version active (reads `users/me`).
    async fn promote_permission(&self) -> PromotePermission {
        let Ok(user) = self.api().get_user_by_name("me").await else {
            return PromotePermission::Unknown;
        };
        let roles: Vec<String> = user
            .into_inner()
            .roles
            .iter()
            .filter_map(|r| r.name.clone())
            .collect();
        match roles
            .iter()
            .find(|r| matches!(r.as_str(), "owner" | "template-admin"))
        {
            Some(role) => PromotePermission::Granted { role: role.clone() },
            None => PromotePermission::Unconfirmed { roles },
        }
    }

    /// One phase over `workspaces` through the batch engine, its events tagged.
    async fn phase(
        &self,
        phase: PromotePhase,
        workspaces: &[PlannedWorkspace],
        options: FleetOptions,
        control: &Control,
        emit: &mut (dyn FnMut(PromoteEvent) + Send),
    ) -> Result<FleetReport> {
        emit(PromoteEvent::PhaseBegan {
            phase,
            workspaces: names(workspaces),
        });
        self.update_many(
            &Selection::Named(ids(workspaces)),
            &options,
            control,
            &mut |step| emit(PromoteEvent::Workspace { phase, step }),
        )
        .await
    }

    /// Runs a promotion (see the module's documentation).
    pub(crate) async fn promote(
        &self,
        request: &PromoteRequest,
        options: &PromoteOptions,
        control: &Control,
        emit: &mut (dyn FnMut(PromoteEvent) + Send),
    ) -> Result<PromoteReport> {
        let started = Instant::now();
        let plan = self.plan_promote(request, options, control, emit).await?;
        let version_id = plan.version.id;
        let mut report = PromoteReport {
            outcome: PromoteOutcome::Planned,
            promoted: plan.already_active,
            dry_run: options.dry_run,
            plan,
            canary: None,
            promotion_error: None,
            rollout: None,
            rollback: None,
            moved: Vec::new(),
            message: String::new(),
            worst: Severity::Ok,
            elapsed_ms: 0,
        };
        let version = report.plan.version.clone();
        let template = crate::text::escape_one_line(&report.plan.template).into_owned();
        if let Some(why) = report.plan.refusal_text() {
            report.outcome = PromoteOutcome::Refused;
            report.worst = Severity::Refused;
            report.message = why;
            report.elapsed_ms = ms(started.elapsed());
            return Ok(report);
        }
        if options.dry_run {
            report.message = format!(
                "dry run: {} canary(ies), then {version} {} on template {template}, then {} more \
                 workspace(s); nothing was changed",
                report.plan.canaries.len(),
                if report.plan.already_active {
                    "already active"
                } else {
                    "made active"
                },
                report.plan.rest.len()
            );
            report.elapsed_ms = ms(started.elapsed());
            return Ok(report);
        }
        if control.is_cancelled() {
            return Err(interrupted_before_anything("before the canaries"));
        }

        // Canaries.
        if !report.plan.already_active && !report.plan.canaries.is_empty() {
            let canaries = report.plan.canaries.clone();
            let canary = self
                .phase(
                    PromotePhase::Canary,
                    &canaries,
                    options.batch(version_id, None, false),
                    control,
                    emit,
                )
                .await?;
            report
                .moved
                .extend(moved_of(&canary, PromotePhase::Canary, version_id));
            let all_healthy =
                canary.results.len() == canaries.len() && canary.results.iter().all(healthy);
            let canary_worst = canary.worst;
            report.canary = Some(canary);
            if control.is_cancelled() {
                report.outcome = PromoteOutcome::InterruptedBeforePromotion;
                report.worst = Severity::Interrupted;
                report.message = format!(
                    "interrupted before the promotion: {version} was not made active on template \
                     {template}; {}",
                    moved_text(&report.moved, "left on the new version")
                );
                report.elapsed_ms = ms(started.elapsed());
                return Ok(report);
            }
            if !all_healthy {
                let failed: Vec<String> = report
                    .canary
                    .iter()
                    .flat_map(|c| &c.results)
                    .filter(|r| !healthy(r))
                    .map(|r| {
                        // A result's message names its workspace when it is the update's own
                        // sentence; said once.
                        if r.message.contains(r.workspace.as_str()) {
                            r.message.clone()
                        } else {
                            format!(
                                "{} {}: {}",
                                crate::text::escape_one_line(&r.workspace),
                                r.verdict,
                                r.message
                            )
                        }
                    })
                    .collect();
                report.outcome = PromoteOutcome::CanaryFailed;
                report.worst = canary_worst.max(Severity::Failed);
                let mut message = format!(
                    "canary failed, {version} was not made active on template {template} and no \
                     other workspace was touched: {}",
                    failed.join("; ")
                );
                if options.rollback {
                    let rolled = self
                        .roll_back_moved(&mut report, options, control, emit)
                        .await;
                    message.push_str(&format!("; {rolled}"));
                } else if !report.moved.is_empty() {
                    message.push_str(&format!(
                        "; {}",
                        moved_text(&report.moved, "left on the new version for inspection")
                    ));
                }
                report.message = message;
                report.elapsed_ms = ms(started.elapsed());
                return Ok(report);
            }
        }

        // Promotion.
        if !report.plan.already_active {
            if control.is_cancelled() {
                report.outcome = PromoteOutcome::InterruptedBeforePromotion;
                report.worst = Severity::Interrupted;
                report.message = format!(
                    "interrupted before the promotion: {version} was not made active on template \
                     {template}; {}",
                    moved_text(&report.moved, "left on the new version")
                );
                report.elapsed_ms = ms(started.elapsed());
                return Ok(report);
            }
            emit(PromoteEvent::PhaseBegan {
                phase: PromotePhase::Promotion,
                workspaces: Vec::new(),
            });
            match self
                .set_active_version(&report.plan.template_id, &template, &version)
                .await
            {
                Ok(()) => {
                    report.promoted = true;
                    emit(PromoteEvent::Promoted {
                        template: template.clone(),
                        version: version.clone(),
                        previous: report.plan.active_version.clone(),
                    });
                }
                Err(e) => {
                    emit(PromoteEvent::PromotionFailed {
                        message: e.to_string(),
                    });
                    report.outcome = PromoteOutcome::PromotionFailed;
                    report.worst = Severity::of(&e).max(Severity::Failed);
                    report.promotion_error = Some(e.to_string());
                    report.message = format!(
                        "{e}; {}",
                        moved_text(&report.moved, "left on the new version")
                    );
                    report.elapsed_ms = ms(started.elapsed());
                    return Ok(report);
                }
            }
        }

        // Rollout.
        report.outcome = PromoteOutcome::Promoted;
        let rest = report.plan.rest.clone();
        if !rest.is_empty() {
            let rollout = self
                .phase(
                    PromotePhase::Rollout,
                    &rest,
                    options.batch(version_id, options.max_failures, false),
                    control,
                    emit,
                )
                .await?;
            report
                .moved
                .extend(moved_of(&rollout, PromotePhase::Rollout, version_id));
            report.worst = rollout.worst;
            // The report's `failed` counts the ones a halt left alone too: say them apart.
            let not_attempted = rollout.halt.as_ref().map_or(0, |h| h.not_attempted.len());
            report.message = format!(
                "{version} is the active version of template {template}; rollout: {} of {} \
                 updated, {} failed, {} skipped{}",
                rollout.succeeded,
                rollout.total,
                rollout.failed.saturating_sub(not_attempted),
                rollout.skipped,
                rollout
                    .halt
                    .as_ref()
                    .map(|h| format!(
                        "; halted ({}): {} not attempted",
                        h.reason,
                        h.not_attempted.len()
                    ))
                    .unwrap_or_default()
            );
            report.rollout = Some(rollout);
        } else {
            report.message = format!(
                "{version} is the active version of template {template}; no other workspace to \
                 update"
            );
        }
        report.elapsed_ms = ms(started.elapsed());
        Ok(report)
    }

    /// Takes every moved workspace back to the version it came from (grouped by version);
    /// marks them rolled back; returns one sentence.
    async fn roll_back_moved(
        &self,
        report: &mut PromoteReport,
        options: &PromoteOptions,
        control: &Control,
        emit: &mut (dyn FnMut(PromoteEvent) + Send),
    ) -> String {
        let groups = report.to_roll_back();
        if groups.is_empty() {
            return "no canary was changed, so none was rolled back".into();
        }
        let mut merged: Option<FleetReport> = None;
        for (from_id, (_from, workspaces)) in &groups {
            let targets: Vec<PlannedWorkspace> = report
                .moved
                .iter()
                .filter(|m| workspaces.contains(&m.workspace))
                .filter_map(|m| {
                    Some(PlannedWorkspace {
                        workspace: m.workspace.clone(),
                        workspace_id: m.workspace_id?,
                        status: None,
                        from: None,
                        busy: None,
                    })
                })
                .collect();
            // A rollback takes back what fleet itself changed: nobody's activity holds it up.
            let mut opts = options.clone();
            opts.update.busy.include_busy = true;
            opts.update.busy.wait_for_idle = None;
            // Pinning the old version: the workspace's own parameter values carry over.
            let result = self
                .phase(
                    PromotePhase::Rollback,
                    &targets,
                    opts.batch(*from_id, None, false),
                    control,
                    emit,
                )
                .await;
            match result {
                Ok(r) => {
                    for res in r.results.iter().filter(|r| r.severity == Severity::Ok) {
                        if let Some(m) = report
                            .moved
                            .iter_mut()
                            .find(|m| m.workspace == res.workspace)
                        {
                            m.rolled_back = true;
                        }
                    }
                    merged = Some(match merged.take() {
                        None => r,
                        Some(mut all) => {
                            all.total += r.total;
                            all.succeeded += r.succeeded;
                            all.failed += r.failed;
                            all.skipped += r.skipped;
                            all.worst = all.worst.max(r.worst);
                            all.results.extend(r.results);
                            all.elapsed_ms += r.elapsed_ms;
                            all
                        }
                    });
                }
                Err(e) => {
                    report.worst = report.worst.max(Severity::of(&e));
                }
            }
        }
        let back: Vec<String> = report
            .moved
            .iter()
            .filter(|m| m.rolled_back)
            .map(|m| {
                format!(
                    "{} (to {})",
                    crate::text::escape_one_line(&m.workspace),
                    m.from
                        .as_ref()
                        .map_or_else(|| "?".into(), |f| f.to_string())
                )
            })
            .collect();
        let not_back: Vec<String> = report
            .moved
            .iter()
            .filter(|m| !m.rolled_back)
            .map(|m| crate::text::escape_one_line(&m.workspace).into_owned())
            .collect();
        if let Some(r) = &merged {
            report.worst = report.worst.max(r.worst);
        }
        report.rollback = merged;
        let mut s = format!(
            "rolled back: {}",
            if back.is_empty() {
                "none".into()
            } else {
                back.join(", ")
            }
        );
        if !not_back.is_empty() {
            s.push_str(&format!(
                "; the rollback did not end well for: {}",
                not_back.join(", ")
            ));
        }
        s
    }
}

/// "alice/a (from v1) left on the new version", or that none was changed.
fn moved_text(moved: &[MovedWorkspace], left: &str) -> String {
    let still: Vec<String> = moved
        .iter()
        .filter(|m| !m.rolled_back)
        .map(|m| {
            format!(
                "{} (from {})",
                crate::text::escape_one_line(&m.workspace),
                m.from
                    .as_ref()
                    .map_or_else(|| "?".into(), |f| f.to_string())
            )
        })
        .collect();
    if still.is_empty() {
        "no workspace was changed".into()
    } else {
        format!("{} {left}", still.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Rollback
// ---------------------------------------------------------------------------------------------

/// What to roll back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest {
    /// The template: its name or ID.
    pub template: String,
    /// The version to go back to (default: the newest imported, unarchived version created
    /// before the active one).
    pub to_version: Option<TemplateVersionRef>,
    /// The workspaces to take back (empty: every workspace of the template that runs the
    /// active version, when that is not `to_version`).
    pub workspaces: Vec<WorkspaceRef>,
}

/// The result of [`CoderClient::start_rollback`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RollbackReport {
    /// The template.
    pub template: String,
    /// Its ID.
    pub template_id: Uuid,
    /// The version it goes back to.
    pub to: VersionName,
    /// The template's active version before (the one rolled back from, when it is not `to`).
    pub active_before: Option<VersionName>,
    /// True when this run made `to` the active version again.
    pub restored_active: bool,
    /// True on a dry run (nothing was changed).
    pub dry_run: bool,
    /// The workspaces taken back (or, on a dry run, that would be).
    pub workspaces: Vec<PlannedWorkspace>,
    /// How their updates ended, when they ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<FleetReport>,
    /// One paragraph for people.
    pub message: String,
    /// The worst ending.
    pub worst: Severity,
    /// Milliseconds from the first request to the end.
    pub elapsed_ms: u64,
}

impl OperationOutput for RollbackReport {
    fn ended_well(&self) -> bool {
        self.worst == Severity::Ok
    }

    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        let reports: Vec<&FleetReport> = self.rollout.iter().collect();
        finish_rows(workspaces, &reports);
    }
}

impl CoderClient {
    pub(crate) async fn rollback(
        &self,
        request: &RollbackRequest,
        options: &PromoteOptions,
        control: &Control,
        emit: &mut (dyn FnMut(PromoteEvent) + Send),
    ) -> Result<RollbackReport> {
        options.check()?;
        let started = Instant::now();
        let template = self.find_template(&request.template).await?;
        let template_id = template.id.ok_or_else(super::model::no_id)?;
        let template_name = template
            .name
            .clone()
            .unwrap_or_else(|| template_id.to_string());
        let shown = crate::text::escape_one_line(&template_name).into_owned();
        let versions = self.list_template_versions(&template_id).await?;
        let name_of = |id: Uuid| VersionName {
            id,
            name: versions
                .iter()
                .find(|v| v.id == Some(id))
                .and_then(|v| v.name.clone()),
        };
        let active_before = template.active_version_id.map(name_of);
        let to_id = match &request.to_version {
            Some(v) => {
                let (v, why) = self.promotable_version(&template, v).await?;
                let id = v.id.ok_or_else(super::model::no_id)?;
                if !why.is_empty() {
                    let why: Vec<String> = why.iter().map(|w| w.to_string()).collect();
                    return Err(Error::Refused(format!(
                        "fleet refused to roll template {shown} back to {}: {}; nothing was changed",
                        name_of(id),
                        why.join("; ")
                    )));
                }
                id
            }
            None => {
                // Newest first: the first usable version created before the active one.
                let active_at = versions
                    .iter()
                    .find(|v| v.id.is_some() && v.id == template.active_version_id)
                    .and_then(|v| v.created_at);
                let usable = |v: &&types::TemplateVersion| {
                    v.archived != Some(true)
                        && v.id != template.active_version_id
                        && v.job
                            .as_ref()
                            .and_then(|j| j.status.as_ref())
                            .is_some_and(|s| *s == super::JobStatus::Succeeded)
                        && match (active_at, v.created_at) {
                            (Some(a), Some(c)) => c < a,
                            _ => false,
                        }
                };
                match versions.iter().find(usable).and_then(|v| v.id) {
                    Some(id) => id,
                    None => {
                        return Err(Error::advised(
                            Error::Refused(format!(
                                "template {shown} has no imported, unarchived version older than \
                                 its active one to roll back to; nothing was changed"
                            )),
                            vec![Remedy::Give {
                                input: Input::TemplateVersion,
                                value: None,
                            }],
                        ));
                    }
                }
            }
        };
        let to = name_of(to_id);
        // The workspaces: the named ones, or every one on the version rolled back from.
        let workspaces: Vec<PlannedWorkspace> = if request.workspaces.is_empty() {
            match template.active_version_id.filter(|a| *a != to_id) {
                Some(from) => {
                    let mut all: Vec<PlannedWorkspace> = self
                        .search_workspaces(&format!("template:{template_name}"))
                        .await?
                        .iter()
                        .filter(|w| w.template_id == Some(template_id))
                        .filter(|w| {
                            w.latest_build.as_ref().and_then(|b| b.template_version_id)
                                == Some(from)
                        })
                        .filter_map(|w| planned(w, None))
                        .collect();
                    all.sort_by(|a, b| a.workspace.cmp(&b.workspace));
                    all
                }
                None => Vec::new(),
            }
        } else {
            let mut named = Vec::new();
            for r in &request.workspaces {
                let w = self.resolve_workspace(r).await?;
                if w.template_id != Some(template_id) {
                    return Err(Error::Refused(format!(
                        "{} is a workspace of template {}, not of {shown}; nothing was changed",
                        super::model::full_name(&w),
                        w.template_name.as_deref().unwrap_or("another template")
                    )));
                }
                named.extend(planned(&w, None));
            }
            named
        };
        let mut report = RollbackReport {
            template: template_name.clone(),
            template_id,
            to: to.clone(),
            active_before: active_before.clone(),
            restored_active: false,
            dry_run: options.dry_run,
            workspaces: workspaces.clone(),
            rollout: None,
            message: String::new(),
            worst: Severity::Ok,
            elapsed_ms: 0,
        };
        let needs_patch = template.active_version_id != Some(to_id);
        if options.dry_run {
            report.message = format!(
                "dry run: {}then {} workspace(s) back to {to}; nothing was changed",
                if needs_patch {
                    format!("{to} made the active version of template {shown} again, ")
                } else {
                    String::new()
                },
                workspaces.len()
            );
            report.elapsed_ms = ms(started.elapsed());
            return Ok(report);
        }
        if control.is_cancelled() {
            return Err(interrupted_before_anything("before the rollback"));
        }
        // The template first: starts stop building the bad version.
        if needs_patch {
            emit(PromoteEvent::PhaseBegan {
                phase: PromotePhase::Promotion,
                workspaces: Vec::new(),
            });
            if let Err(e) = self.set_active_version(&template_id, &shown, &to).await {
                emit(PromoteEvent::PromotionFailed {
                    message: e.to_string(),
                });
                return Err(e);
            }
            report.restored_active = true;
            emit(PromoteEvent::Promoted {
                template: shown.clone(),
                version: to.clone(),
                previous: active_before.clone(),
            });
        }
        if !workspaces.is_empty() && !control.is_cancelled() {
            let mut opts = options.clone();
            opts.update.busy.include_busy = true;
            opts.update.busy.wait_for_idle = None;
            let r = self
                .phase(
                    PromotePhase::Rollback,
                    &workspaces,
                    opts.batch(to_id, options.max_failures, false),
                    control,
                    emit,
                )
                .await?;
            report.worst = r.worst;
            report.message = format!(
                "{}{} of {} workspace(s) back on {to}",
                if report.restored_active {
                    format!("{to} is the active version of template {shown} again; ")
                } else {
                    String::new()
                },
                r.succeeded,
                r.total
            );
            report.rollout = Some(r);
        } else {
            report.message = format!(
                "{}no workspace to take back",
                if report.restored_active {
                    format!("{to} is the active version of template {shown} again; ")
                } else {
                    String::new()
                }
            );
        }
        report.elapsed_ms = ms(started.elapsed());
        Ok(report)
    }
}

// ---------------------------------------------------------------------------------------------
// The handles
// ---------------------------------------------------------------------------------------------

/// A running promotion.
pub type PromoteOperation = Operation<PromoteEvent, PromoteReport>;
/// A running plan of a promotion (reads only).
pub type PromotePlanOperation = Operation<PromoteEvent, PromotePlan>;
/// A running rollback.
pub type RollbackOperation = Operation<PromoteEvent, RollbackReport>;

impl CoderClient {
    /// Promotes a template version progressively, as an operation, and returns its handle at
    /// once: pre-flight, canaries, promotion only when every canary is healthy, rollout of the
    /// rest, rollback of a failed canary (see the module's documentation). With
    /// `options.dry_run` only reads are sent and the report carries the plan.
    ///
    /// A graceful cancel before the promotion never promotes; after it, the rollout starts no
    /// more workspaces. Fails as a whole only before anything is changed (invalid input, an
    /// unknown template or version, a listing that failed); otherwise the report says how it
    /// ended ([`PromoteReport::outcome`], [`PromoteReport::worst`]).
    pub fn start_promote(
        &self,
        request: PromoteRequest,
        options: PromoteOptions,
    ) -> PromoteOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::Promote,
            vec![request.template.clone()],
            move |control, sink| async move {
                client
                    .promote(&request, &options, &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }

    /// The pre-flight of a promotion alone, as an operation: the [`PromotePlan`] (reads only).
    pub fn start_plan_promote(
        &self,
        request: PromoteRequest,
        options: PromoteOptions,
    ) -> PromotePlanOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::DryRun,
            vec![request.template.clone()],
            move |control, sink| async move {
                client
                    .plan_promote(&request, &options, &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }

    /// Rolls a template back, as an operation: makes `to_version` (default: the version
    /// before the active one) active again first, so that starts stop building the bad one,
    /// then updates the workspaces back to it (the named ones, or every one on the version
    /// rolled back from). `options.canary` and `options.rollback` do not apply.
    pub fn start_rollback(
        &self,
        request: RollbackRequest,
        options: PromoteOptions,
    ) -> RollbackOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::Rollback,
            vec![request.template.clone()],
            move |control, sink| async move {
                client
                    .rollback(&request, &options, &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }
}
