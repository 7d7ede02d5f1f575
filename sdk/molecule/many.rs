//! Several Molecule workspaces at once: read (or follow) the migrations of many workspaces
//! concurrently ([`MoleculeClient::start_follow_many`]), and plan a migration without
//! starting it ([`MoleculeClient::plan_migration`], the dry run: reads only, no POST).

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde::Serialize;

use super::{
    CpAdminRoute, FromSource, MigrateRequest, MigrationEvent, MigrationReport, MoleculeClient,
    Provider, StartedMigration, WaitOptions, ops::check_workspace_id,
};
use crate::{
    Error, Result,
    operation::{Control, Severity, ms},
};

/// How one workspace's migration ended (or was read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationVerdict {
    /// Read (without waiting): the report says where it is.
    Read,
    /// Completed (with waiting).
    Completed,
    /// Never migrated (the control plane has no migration for it).
    NeverMigrated,
    /// No such workspace (the control plane or the tenant API does not know it).
    NotFound,
    /// Ended `failed`, `rolled_back` or an unknown end state; or the read failed.
    Failed,
    /// Still running when the deadline passed (it goes on on the server).
    TimedOut,
    /// Interrupted while waiting (it goes on on the server).
    Interrupted,
}

/// One workspace of [`MoleculeClient::start_follow_many`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrationResult {
    /// The workspace.
    pub workspace_id: String,
    /// How it ended.
    pub verdict: MigrationVerdict,
    /// One sentence for people.
    pub message: String,
    /// The last state seen, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The latest report, when one was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<MigrationReport>,
    /// The error's kind when it did not end well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// What the caller can do about the error, when it says (a face renders it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remedies: Vec<crate::Remedy>,
}

/// The result of [`MoleculeClient::start_follow_many`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrationBatch {
    /// True when fleet waited for every migration to end.
    pub waited: bool,
    /// One result per workspace, in the order given (duplicates removed).
    pub results: Vec<MigrationResult>,
    /// How bad the worst ending is: interrupted > timed out > failed > ok.
    ///
    /// A timeout outranks a failure: a migration still running has no outcome yet, so a script
    /// must look again; the failures are listed in `results` either way.
    pub worst: Severity,
    /// Milliseconds from the first request to the end.
    pub elapsed_ms: u64,
}

/// A step of [`MoleculeClient::start_follow_many`], tagged with its workspace.
#[derive(Debug, Clone)]
pub enum BatchEvent {
    /// A migration's state changed.
    State {
        /// The workspace.
        workspace_id: String,
        /// What changed.
        event: MigrationEvent,
    },
    /// A migration of a batch was started (or refused) by [`MoleculeClient::start_migrate_many`].
    Started {
        /// How its start went.
        result: StartResult,
    },
    /// A workspace ended.
    Finished {
        /// How many have ended (this one included).
        done: usize,
        /// How many there are.
        total: usize,
        /// How it ended.
        result: MigrationResult,
    },
}

impl MigrationVerdict {
    /// How bad this ending is (the one taxonomy of both planes).
    pub fn severity(self) -> Severity {
        match self {
            MigrationVerdict::Read
            | MigrationVerdict::Completed
            | MigrationVerdict::NeverMigrated => Severity::Ok,
            MigrationVerdict::NotFound => Severity::Refused,
            MigrationVerdict::Failed => Severity::Failed,
            MigrationVerdict::TimedOut => Severity::TimedOut,
            MigrationVerdict::Interrupted => Severity::Interrupted,
        }
    }
}

/// The migration state an error says it saw last (a timeout, an interruption) or ended in.
fn error_state(e: &Error) -> Option<String> {
    match e.root() {
        Error::Timeout { last_state, .. } | Error::Interrupted { last_state, .. } => {
            last_state.clone()
        }
        Error::OperationFailed { final_state, .. } => final_state.clone(),
        _ => None,
    }
}

fn error_result(workspace_id: &str, e: &Error) -> MigrationResult {
    let verdict = match e.root() {
        Error::Timeout { .. } => MigrationVerdict::TimedOut,
        Error::Interrupted { .. } => MigrationVerdict::Interrupted,
        Error::UnknownWorkspace { .. } => MigrationVerdict::NotFound,
        _ => MigrationVerdict::Failed,
    };
    MigrationResult {
        workspace_id: workspace_id.to_string(),
        verdict,
        message: e.to_string(),
        state: error_state(e),
        report: None,
        error_kind: Some(e.kind().to_string()),
        remedies: e.remedies().to_vec(),
    }
}

fn report_result(report: MigrationReport, waited: bool) -> MigrationResult {
    let verdict = if !report.migrated {
        MigrationVerdict::NeverMigrated
    } else if waited {
        MigrationVerdict::Completed
    } else {
        MigrationVerdict::Read
    };
    MigrationResult {
        workspace_id: report.workspace_id.clone(),
        verdict,
        message: report.message.clone(),
        state: report.state().map(|s| s.to_string()),
        report: Some(report),
        error_kind: None,
        remedies: Vec::new(),
    }
}

impl MoleculeClient {
    /// Reads the latest migration of several workspaces, or with `wait` follows all of them
    /// to their ends concurrently (at most `concurrency` at once; every id is checked before
    /// any request). Duplicate ids are read once. Each workspace ends in a [`MigrationResult`];
    /// the batch's exit code is the worst.
    pub(crate) async fn migration_status_many(
        &self,
        workspace_ids: &[String],
        wait: Option<&WaitOptions>,
        concurrency: usize,
        cancel: &Control,
        on_event: &mut (dyn FnMut(BatchEvent) + Send),
    ) -> Result<MigrationBatch> {
        if workspace_ids.is_empty() {
            return Err(Error::InvalidInput(
                "no workspace id given; nothing was sent".into(),
            ));
        }
        for id in workspace_ids {
            check_workspace_id(id)?;
        }
        let mut seen = HashSet::new();
        let ids: Vec<String> = workspace_ids
            .iter()
            .map(|i| i.trim().to_string())
            .filter(|i| seen.insert(i.clone()))
            .collect();
        let started = Instant::now();
        let total = ids.len();
        let sink = &crate::rollout::BatchSink::new(on_event);
        let emit = &|e: BatchEvent| sink.emit(e);
        let mut results: Vec<(usize, MigrationResult)> =
            futures::stream::iter(ids.into_iter().enumerate())
                .map(|(index, id)| async move {
                    let result = match wait {
                        None => tokio::select! {
                            _ = cancel.cancelled() => error_result(&id, &Error::Interrupted {
                                message: format!("interrupted before the migration of workspace {id} was read"),
                                last_state: None,
                            }),
                            r = self.migration_status(&id) => match r {
                                Ok(report) => report_result(report, false),
                                Err(e) => error_result(&id, &e),
                            },
                        },
                        Some(options) => {
                            let r = self
                                .wait_for_migration(&id, options, cancel, &mut |event| {
                                    emit(BatchEvent::State {
                                        workspace_id: id.clone(),
                                        event,
                                    })
                                })
                                .await;
                            match r {
                                Ok(report) => report_result(report, true),
                                Err(e) => error_result(&id, &e),
                            }
                        }
                    };
                    emit(BatchEvent::Finished {
                        done: sink.one_done(),
                        total,
                        result: result.clone(),
                    });
                    (index, result)
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        results.sort_by_key(|(i, _)| *i);
        let results: Vec<MigrationResult> = results.into_iter().map(|(_, r)| r).collect();
        Ok(MigrationBatch {
            waited: wait.is_some(),
            worst: results
                .iter()
                .map(|r| r.verdict.severity())
                .max()
                .unwrap_or(Severity::Ok),
            results,
            elapsed_ms: ms(started.elapsed()),
        })
    }

    /// Plans a migration without starting it (a dry run): checks the request (`confirm` is not
    /// needed: nothing is sent that changes anything), reads the source provider from the
    /// tenant API when `from` is not given, and reads the workspace's current migration. Sends
    /// GETs only.
    pub async fn plan_migration(&self, request: &MigrateRequest) -> Result<MigrationPlan> {
        request.check()?;
        let workspace_id = request.workspace_id.trim().to_string();
        self.check_without_tenant(request)?;
        let super::ops::Source {
            from,
            from_source,
            instance_id: instance,
            instance_source,
        } = self.resolve_source(request).await?;
        // resolve_source read the tenant API (when configured): the workspace exists there.
        let current = self.read_migration(&workspace_id, false).await?;
        let blocked = (current.migrated && !current.terminal).then(|| {
            format!(
                "a migration of workspace {workspace_id} is already in progress ({}): the \
                 control plane would refuse a new one (409) until it ends",
                current
                    .state()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown state".into())
            )
        });
        let route = self.cp_admin_route();
        let (org_id, runtime, image) = request.optional_fields();
        let summary = match &blocked {
            Some(b) => format!("would NOT start: {b}"),
            None => format!(
                "would migrate workspace {workspace_id} from {from}{} to {}{}: POST \
                 {}/workspaces/{workspace_id}/migrate-provider, then (when asked to wait) follow \
                 it to its end (15–20 minutes)",
                match from_source {
                    FromSource::Given => "",
                    FromSource::LookedUp => " (read from the tenant API)",
                },
                request.to,
                instance
                    .as_deref()
                    .map(|i| format!(
                        " (source instance {i}{})",
                        match instance_source {
                            Some(FromSource::LookedUp) => ", read from the tenant API",
                            _ => "",
                        }
                    ))
                    .unwrap_or_default(),
                route.base_url
            ),
        };
        Ok(MigrationPlan {
            workspace_id,
            from,
            from_source,
            to: request.to.clone(),
            from_instance_id: instance,
            from_instance_id_source: instance_source,
            org_id,
            runtime,
            env: request.env.clone(),
            image,
            route,
            current,
            blocked,
            summary,
        })
    }
}

/// What a migration would do, found with reads only.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrationPlan {
    /// The workspace.
    pub workspace_id: String,
    /// The source provider.
    pub from: Provider,
    /// Whether `from` was given or read from the tenant API.
    pub from_source: FromSource,
    /// The target provider.
    pub to: Provider,
    /// The source instance id that would be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_instance_id: Option<String>,
    /// Whether `from_instance_id` was given or read from the tenant API
    /// (`compute.instance_id`), when one would be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_instance_id_source: Option<FromSource>,
    /// The organization that would be sent (`org_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The runtime that would be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The environment variables that would be sent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The image that would be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The CP-admin route layout the POST would go to, and how it was chosen.
    pub route: CpAdminRoute,
    /// The workspace's latest migration now.
    pub current: MigrationReport,
    /// Why the control plane would refuse it now, if it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// One sentence for people.
    pub summary: String,
}

/// How the start of one migration in a batch went.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StartResult {
    /// The workspace.
    pub workspace_id: String,
    /// What the control plane answered, when it started the migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<StartedMigration>,
    /// The error's kind (as `fleet::Error::kind`), when it was not started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// What the caller can do about the error, when it says (a face renders it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remedies: Vec<crate::Remedy>,
    /// When the POST got no clear answer: what reading the migration back found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_back: Option<crate::ReadBack>,
    /// What happened, in words.
    pub message: String,
}

/// How the starts of a batch of migrations went.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrationStarts {
    /// One result per workspace, in the order given.
    pub results: Vec<StartResult>,
    /// How bad the worst start went: ok when every migration was started; interrupted when
    /// some were not started because of a cancel; else the worst error's
    /// ([`Severity::of`]: refused by a pre-flight check, or failed).
    pub worst: Severity,
}

impl MigrationStarts {
    /// The workspaces whose migration was started.
    pub fn started_ids(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.started.is_some())
            .map(|r| r.workspace_id.clone())
            .collect()
    }
}

impl MoleculeClient {
    /// Starts several migrations, one after another. Every request is checked first (invalid
    /// input, a workspace named twice: nothing is sent); then each goes through
    /// [`MoleculeClient::migrate_provider`] — its pre-flight, one POST, never retried. One that
    /// is refused or fails does not stop the others; cancelling starts no more.
    pub(crate) async fn migrate_many(
        &self,
        requests: &[MigrateRequest],
        cancel: &Control,
        on_event: &mut (dyn FnMut(BatchEvent) + Send),
    ) -> Result<MigrationStarts> {
        if requests.is_empty() {
            return Err(Error::InvalidInput(
                "no workspace id given; nothing was sent".into(),
            ));
        }
        let mut seen = HashSet::new();
        for r in requests {
            r.validate()?;
            if !seen.insert(r.workspace_id.trim().to_string()) {
                return Err(Error::InvalidInput(format!(
                    "workspace {} is named twice: one migration per workspace at a time; nothing \
                     was sent",
                    r.workspace_id.trim()
                )));
            }
        }
        let mut results: Vec<StartResult> = Vec::with_capacity(requests.len());
        let mut worst = Severity::Ok;
        for r in requests {
            let workspace_id = r.workspace_id.trim().to_string();
            let result = if cancel.is_cancelled() {
                worst = worst.max(Severity::Interrupted);
                StartResult {
                    workspace_id,
                    started: None,
                    error_kind: Some("interrupted".into()),
                    remedies: Vec::new(),
                    read_back: None,
                    message: "not started: interrupted before its turn".into(),
                }
            } else {
                let answered = tokio::select! {
                    biased;
                    r = self.migrate_provider(r) => Some(r),
                    _ = cancel.aborted() => None,
                };
                match answered {
                    None => {
                        worst = worst.max(Severity::Interrupted);
                        StartResult {
                            workspace_id,
                            started: None,
                            error_kind: Some("interrupted".into()),
                            remedies: Vec::new(),
                            read_back: Some(crate::ReadBack::Unknown),
                            message: "left before the control plane answered its start: the \
                                      migration may have started"
                                .into(),
                        }
                    }
                    Some(Ok(started)) => StartResult {
                        message: format!(
                            "migration from {} to {} started",
                            started.from, started.to
                        ),
                        workspace_id,
                        started: Some(started),
                        error_kind: None,
                        remedies: Vec::new(),
                        read_back: None,
                    },
                    Some(Err(e)) => {
                        worst = worst.max(Severity::of(&e));
                        StartResult {
                            workspace_id,
                            started: None,
                            error_kind: Some(e.kind().to_string()),
                            remedies: e.remedies().to_vec(),
                            read_back: match &e {
                                Error::Unconfirmed { found, .. } => Some(*found),
                                _ => None,
                            },
                            message: e.to_string(),
                        }
                    }
                }
            };
            on_event(BatchEvent::Started {
                result: result.clone(),
            });
            results.push(result);
        }
        Ok(MigrationStarts { results, worst })
    }

    /// Starts several migrations one after another ([`MoleculeClient::migrate_many`]'s
    /// rules), then with `wait` follows the ones started to their ends, at most `concurrency`
    /// at once: the CLI's "start all, then follow" as one run. A cancel (graceful or not)
    /// starts no more and stops following; the migrations started go on on the control plane.
    pub(crate) async fn migrate_many_and_follow(
        &self,
        requests: &[MigrateRequest],
        wait: Option<&WaitOptions>,
        concurrency: usize,
        control: &Control,
        on_event: &mut (dyn FnMut(BatchEvent) + Send),
    ) -> Result<MigrationBatchRun> {
        let starts = self.migrate_many(requests, control, on_event).await?;
        let started = starts.started_ids();
        let status = match wait {
            Some(options) if !started.is_empty() && !control.is_cancelled() => {
                let mut options = options.clone();
                // The control plane may take a moment to show a migration it just accepted.
                options.not_found_grace = Duration::from_secs(30).min(options.timeout);
                Some(
                    self.migration_status_many(
                        &started,
                        Some(&options),
                        concurrency,
                        control,
                        on_event,
                    )
                    .await?,
                )
            }
            _ => None,
        };
        let mut worst = starts
            .worst
            .max(status.as_ref().map_or(Severity::Ok, |b| b.worst));
        if wait.is_some() && control.is_cancelled() {
            // Asked to follow, and interrupted before the end: as a Coder batch.
            worst = worst.max(Severity::Interrupted);
        }
        Ok(MigrationBatchRun {
            starts,
            status,
            worst,
        })
    }
}

/// How starting several migrations and following them went
/// ([`MoleculeClient::start_migrate_many`]).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrationBatchRun {
    /// How each start went.
    pub starts: MigrationStarts,
    /// How the migrations started were followed; `None` when not asked to wait, when none was
    /// started, or when it was cancelled before following.
    pub status: Option<MigrationBatch>,
    /// The worse of the starts' and the follow's worst.
    pub worst: Severity,
}

// ---------------------------------------------------------------------------------------------
// Rollouts: migrations under the rollout engine's controls
// ---------------------------------------------------------------------------------------------

/// How one migration of a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutVerdict {
    /// Started and followed to `completed`.
    Completed,
    /// Ended `failed`, `rolled_back` or another end state that is not `completed`; or the
    /// control plane refused the start after a change elsewhere (an API error).
    Failed,
    /// A pre-flight check refused it (a migration already running, invalid input): nothing
    /// was changed.
    Refused,
    /// No such workspace (the control plane or the tenant API does not know it): nothing was
    /// changed.
    NotFound,
    /// Still running when the deadline passed (it goes on on the control plane).
    TimedOut,
    /// Interrupted while following (it goes on on the control plane).
    Interrupted,
    /// Not attempted: the rollout halted first (nothing was sent for it).
    NotAttempted,
}

impl std::fmt::Display for RolloutVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RolloutVerdict::Completed => "completed",
            RolloutVerdict::Failed => "failed",
            RolloutVerdict::Refused => "refused",
            RolloutVerdict::NotFound => "not found",
            RolloutVerdict::TimedOut => "timed out",
            RolloutVerdict::Interrupted => "interrupted",
            RolloutVerdict::NotAttempted => "not attempted",
        })
    }
}

/// One workspace of [`MoleculeClient::start_migrate_rollout`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RolloutMigration {
    /// The workspace.
    pub workspace_id: String,
    /// How it ended.
    pub verdict: RolloutVerdict,
    /// The source provider, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Provider>,
    /// The target provider.
    pub to: Provider,
    /// The last state seen (`completed`, `failed`, `rolled_back`, …), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// One sentence for people: what happened, or why it failed.
    pub message: String,
    /// The error's kind when it did not end well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// What the caller can do about the error, when it says (a face renders it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remedies: Vec<crate::Remedy>,
    /// Milliseconds this workspace took.
    pub elapsed_ms: u64,
}

/// The result of [`MoleculeClient::start_migrate_rollout`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrationRollout {
    /// One result per workspace, in the order given.
    pub results: Vec<RolloutMigration>,
    /// Why the rollout started no more migrations, and which it did not attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt: Option<crate::rollout::Halt>,
    /// How bad it ended, the fact a face maps to its words (the CLI to its exit code), as a
    /// Coder batch's `worst`: ok when every migration completed; refused when none was
    /// changed (each refused, not found or not attempted); interrupted when it was cancelled;
    /// failed otherwise.
    pub worst: Severity,
    /// Milliseconds from the first request to the end.
    pub elapsed_ms: u64,
}

impl MigrationRollout {
    /// True when every migration completed.
    pub fn all_completed(&self) -> bool {
        self.results
            .iter()
            .all(|r| r.verdict == RolloutVerdict::Completed)
    }
}

impl MoleculeClient {
    /// Migrates several workspaces under the rollout controls of [`crate::rollout`]: at most
    /// `rollout.parallel` at once, each one started (its pre-flight, one POST, never retried)
    /// and followed to its end; with a canary, the first migrations must reach `completed`
    /// before any other starts; a migration ending `failed` or `rolled_back` counts against
    /// `rollout.max_failures`. Cancelling starts no more (the ones followed go on on the
    /// control plane). Every request is checked first (nothing is sent otherwise).
    pub(crate) async fn migrate_rollout(
        &self,
        requests: &[MigrateRequest],
        wait: &WaitOptions,
        rollout: &crate::rollout::RolloutOptions,
        control: &Control,
        on_event: &mut (dyn FnMut(BatchEvent) + Send),
    ) -> Result<MigrationRollout> {
        use crate::rollout::{HaltReason, Judgement};
        if requests.is_empty() {
            return Err(Error::InvalidInput(
                "no workspace id given; nothing was sent".into(),
            ));
        }
        rollout.check()?;
        let mut seen = HashSet::new();
        for r in requests {
            r.validate()?;
            if !seen.insert(r.workspace_id.trim().to_string()) {
                return Err(Error::InvalidInput(format!(
                    "workspace {} is named twice: one migration per workspace at a time; nothing \
                     was sent",
                    r.workspace_id.trim()
                )));
            }
        }
        let started = Instant::now();
        let total = requests.len();
        let sink = &crate::rollout::BatchSink::new(on_event);
        let emit = &|e: BatchEvent| sink.emit(e);
        let run = crate::rollout::run(
            requests.iter().collect(),
            rollout,
            control,
            |r: &&MigrateRequest| r.workspace_id.trim().to_string(),
            |_, r: &MigrateRequest| async move {
                let result = self.migrate_and_follow(r, wait, control, emit).await;
                emit(BatchEvent::Finished {
                    done: sink.one_done(),
                    total,
                    result: MigrationResult {
                        workspace_id: result.workspace_id.clone(),
                        verdict: match result.verdict {
                            RolloutVerdict::Completed => MigrationVerdict::Completed,
                            RolloutVerdict::TimedOut => MigrationVerdict::TimedOut,
                            RolloutVerdict::Interrupted => MigrationVerdict::Interrupted,
                            RolloutVerdict::NotFound => MigrationVerdict::NotFound,
                            _ => MigrationVerdict::Failed,
                        },
                        message: result.message.clone(),
                        state: result.state.clone(),
                        report: None,
                        error_kind: result.error_kind.clone(),
                        remedies: result.remedies.clone(),
                    },
                });
                result
            },
            |r: &RolloutMigration| match r.verdict {
                RolloutVerdict::Completed => Judgement::Ok,
                RolloutVerdict::Failed | RolloutVerdict::TimedOut => Judgement::Failure,
                _ => Judgement::Neutral,
            },
            |_, r: &MigrateRequest, why| RolloutMigration {
                workspace_id: r.workspace_id.trim().to_string(),
                verdict: if why == HaltReason::Cancelled {
                    RolloutVerdict::Interrupted
                } else {
                    RolloutVerdict::NotAttempted
                },
                from: r.from.clone(),
                to: r.to.clone(),
                state: None,
                message: format!("not started: the rollout halted ({why}); nothing was sent"),
                error_kind: None,
                remedies: Vec::new(),
                elapsed_ms: 0,
            },
        )
        .await;
        let worst = if run
            .results
            .iter()
            .all(|r| r.verdict == RolloutVerdict::Completed)
        {
            Severity::Ok
        } else if run.results.iter().all(|r| {
            matches!(
                r.verdict,
                RolloutVerdict::Refused | RolloutVerdict::NotFound | RolloutVerdict::NotAttempted
            )
        }) {
            Severity::Refused
        } else if control.is_cancelled() {
            Severity::Interrupted
        } else {
            Severity::Failed
        };
        Ok(MigrationRollout {
            results: run.results,
            halt: run.halt,
            worst,
            elapsed_ms: ms(started.elapsed()),
        })
    }

    async fn migrate_and_follow(
        &self,
        request: &MigrateRequest,
        wait: &WaitOptions,
        control: &crate::operation::Control,
        emit: &(dyn Fn(BatchEvent) + Sync),
    ) -> RolloutMigration {
        let began = Instant::now();
        let id = request.workspace_id.trim().to_string();
        let mut result = RolloutMigration {
            workspace_id: id.clone(),
            verdict: RolloutVerdict::Failed,
            from: request.from.clone(),
            to: request.to.clone(),
            state: None,
            message: String::new(),
            error_kind: None,
            remedies: Vec::new(),
            elapsed_ms: 0,
        };
        let fail = |mut result: RolloutMigration, e: &Error| {
            result.verdict = match e.root() {
                Error::Timeout { .. } => RolloutVerdict::TimedOut,
                Error::Interrupted { .. } => RolloutVerdict::Interrupted,
                // Sent without a clear answer: not a refusal, whatever reading back found.
                Error::Unconfirmed { .. } => RolloutVerdict::Failed,
                Error::UnknownWorkspace { .. } => RolloutVerdict::NotFound,
                e if e.nothing_changed() => RolloutVerdict::Refused,
                Error::Conflict { .. } => RolloutVerdict::Refused,
                _ => RolloutVerdict::Failed,
            };
            result.state = error_state(e);
            result.message = e.to_string();
            result.error_kind = Some(e.kind().to_string());
            result.remedies = e.remedies().to_vec();
            result.elapsed_ms = ms(began.elapsed());
            result
        };
        let started = match self.migrate_provider(request).await {
            Ok(s) => s,
            Err(e) => return fail(result, &e),
        };
        result.from = Some(started.from.clone());
        // The control plane may take a moment to show a migration it just accepted.
        let mut options = wait.clone();
        options.not_found_grace = options
            .not_found_grace
            .max(Duration::from_secs(30).min(options.timeout));
        let followed = self
            .wait_for_migration(&id, &options, control, &mut |event| {
                emit(BatchEvent::State {
                    workspace_id: id.clone(),
                    event,
                })
            })
            .await;
        match followed {
            Ok(report) => {
                result.verdict = RolloutVerdict::Completed;
                result.state = report.state().map(|s| s.to_string());
                result.message = report.message.clone();
                result.elapsed_ms = ms(began.elapsed());
                result
            }
            Err(e) => fail(result, &e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dry runs over several workspaces: each plan, or why it could not be planned
// ---------------------------------------------------------------------------------------------

/// What the migration of one workspace would do ([`MoleculeClient::start_plan_migrations`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanVerdict {
    /// It would start: the plan says what would be sent.
    WouldMigrate,
    /// The control plane would refuse it now (a migration of it is already in progress).
    Blocked,
    /// It could not be planned: a check or a read refused it (the message says why).
    Refused,
}

/// One workspace of [`MoleculeClient::start_plan_migrations`]: its plan, or its refusal.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlannedMigration {
    /// The workspace.
    pub workspace_id: String,
    /// What would happen.
    pub verdict: PlanVerdict,
    /// The source provider, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Provider>,
    /// The target provider.
    pub to: Provider,
    /// A few words: what would be sent, why it would be refused, or why it was not planned.
    pub message: String,
    /// The error's kind, when it could not be planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// What the caller can do about the error, when it says (a face renders it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remedies: Vec<crate::Remedy>,
    /// The whole plan, when it could be planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<MigrationPlan>,
    /// The error itself, when it could not be planned (for a face that reports it as is).
    #[serde(skip)]
    #[schemars(skip)]
    pub error: Option<Error>,
}

/// The result of [`MoleculeClient::start_plan_migrations`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrationPlans {
    /// Always true: nothing was sent that changes anything.
    pub dry_run: bool,
    /// One per workspace, in the order given.
    pub results: Vec<PlannedMigration>,
    /// ok when every migration would start; refused when one would be refused (blocked, or
    /// refused by a check); else the worst error's ([`Severity::of`]).
    pub worst: Severity,
    /// Milliseconds from the first request to the end.
    pub elapsed_ms: u64,
}

impl MigrationPlans {
    /// The first workspace's error, in the order given, when one could not be planned.
    pub fn first_error(&self) -> Option<&Error> {
        self.results.iter().find_map(|r| r.error.as_ref())
    }

    /// The plans, in the order given, when every workspace could be planned.
    pub fn plans(&self) -> Option<Vec<&MigrationPlan>> {
        self.results.iter().map(|r| r.plan.as_ref()).collect()
    }
}

/// A step of [`MoleculeClient::start_plan_migrations`]: one workspace planned.
#[derive(Debug, Clone)]
pub struct PlanEvent {
    /// How many have been planned (this one included).
    pub done: usize,
    /// How many there are.
    pub total: usize,
    /// Its plan, or its refusal.
    pub result: PlannedMigration,
}

impl PlannedMigration {
    fn of(request: &MigrateRequest, planned: Result<MigrationPlan>) -> Self {
        let workspace_id = request.workspace_id.trim().to_string();
        match planned {
            Ok(plan) => {
                let (verdict, message) = match &plan.blocked {
                    Some(b) => (PlanVerdict::Blocked, b.clone()),
                    None => (
                        PlanVerdict::WouldMigrate,
                        format!(
                            "would POST migrate-provider{}{}",
                            match plan.from_source {
                                FromSource::Given => "",
                                FromSource::LookedUp => " (from read from the tenant API)",
                            },
                            plan.from_instance_id
                                .as_deref()
                                .map(|i| format!(", source instance {i}"))
                                .unwrap_or_default()
                        ),
                    ),
                };
                PlannedMigration {
                    workspace_id,
                    verdict,
                    from: Some(plan.from.clone()),
                    to: plan.to.clone(),
                    message,
                    error_kind: None,
                    remedies: Vec::new(),
                    plan: Some(plan),
                    error: None,
                }
            }
            Err(e) => PlannedMigration {
                workspace_id,
                verdict: PlanVerdict::Refused,
                from: request.from.clone(),
                to: request.to.clone(),
                message: e.to_string(),
                error_kind: Some(e.kind().to_string()),
                remedies: e.remedies().to_vec(),
                plan: None,
                error: Some(e),
            },
        }
    }

    fn severity(&self) -> Severity {
        match (&self.error, self.verdict) {
            (Some(e), _) => Severity::of(e),
            (None, PlanVerdict::WouldMigrate) => Severity::Ok,
            (None, _) => Severity::Refused,
        }
    }
}

impl MoleculeClient {
    /// Plans the migrations of several workspaces without starting any (a dry run over many):
    /// [`MoleculeClient::plan_migration`] for each, at most `parallel` at once, GETs only.
    /// One workspace that cannot be planned does not hide the others' plans: each gets its
    /// plan or its refusal, in the order given. Cancelling plans no more.
    pub(crate) async fn plan_migrations(
        &self,
        requests: &[MigrateRequest],
        parallel: usize,
        control: &Control,
        on_event: &mut (dyn FnMut(PlanEvent) + Send),
    ) -> Result<MigrationPlans> {
        if requests.is_empty() {
            return Err(Error::InvalidInput(
                "no workspace id given; nothing was sent".into(),
            ));
        }
        let started = Instant::now();
        let total = requests.len();
        // Owned requests: a future that borrows its item trips the stream's lifetimes.
        let mut planned = futures::stream::iter(requests.iter().cloned())
            .map(|r| async move {
                let answered = if control.is_cancelled() {
                    None
                } else {
                    tokio::select! {
                        biased;
                        p = self.plan_migration(&r) => Some(p),
                        _ = control.aborted() => None,
                    }
                };
                let planned = answered.unwrap_or_else(|| {
                    Err(Error::Interrupted {
                        last_state: None,
                        message: "not planned: interrupted before its turn".into(),
                    })
                });
                PlannedMigration::of(&r, planned)
            })
            .buffered(parallel.max(1));
        let mut results = Vec::with_capacity(total);
        while let Some(result) = planned.next().await {
            on_event(PlanEvent {
                done: results.len() + 1,
                total,
                result: result.clone(),
            });
            results.push(result);
        }
        Ok(MigrationPlans {
            dry_run: true,
            worst: results
                .iter()
                .map(PlannedMigration::severity)
                .max()
                .unwrap_or(Severity::Ok),
            results,
            elapsed_ms: ms(started.elapsed()),
        })
    }
}
