//! Following a migration started as an [`Operation`] (see [`crate::operation`]).

use super::{
    BatchEvent, MigrateRequest, MigrationBatch, MigrationBatchRun, MigrationEvent, MigrationPlans,
    MigrationReport, MigrationRollout, MoleculeClient, PlanEvent, StartedMigration, WaitOptions,
};
use crate::{
    operation::{
        Operation, OperationEvent, OperationKind, OperationOutput, Phase, Severity, TargetStatus,
    },
    rollout::RolloutOptions,
};

/// A running follow of one workspace's migration.
pub type FollowOperation = Operation<MigrationEvent, MigrationReport>;
/// A migration being started, then followed.
pub type MigrationRunOperation = Operation<MigrationRunEvent, MigrationRun>;
/// A running migration rollout over several workspaces.
pub type RolloutOperation = Operation<BatchEvent, MigrationRollout>;
/// Several migrations being started, then followed.
pub type BatchRunOperation = Operation<BatchEvent, MigrationBatchRun>;
/// The migrations of several workspaces being read or followed.
pub type FollowManyOperation = Operation<BatchEvent, MigrationBatch>;
/// The migrations of several workspaces being planned (a dry run: reads only).
pub type PlanManyOperation = Operation<PlanEvent, MigrationPlans>;

fn snake<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl OperationEvent for BatchEvent {
    fn describe(&self) -> String {
        match self {
            BatchEvent::State {
                workspace_id,
                event,
            } => format!("[{workspace_id}] {}", event.describe()),
            BatchEvent::Started { result } => {
                format!("[{}] {}", result.workspace_id, result.message)
            }
            BatchEvent::Finished {
                done,
                total,
                result,
            } => format!(
                "[{}] {} ({done}/{total} done): {}",
                result.workspace_id,
                snake(&result.verdict),
                result.message
            ),
        }
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        match self {
            BatchEvent::State {
                workspace_id,
                event,
            } => {
                if let Some(w) = workspaces.iter_mut().find(|w| w.target == *workspace_id) {
                    w.phase = Phase::Migration(event.state.to_string());
                    w.message = Some(event.report.message.clone());
                }
            }
            BatchEvent::Started { result } => {
                if let Some(w) = workspaces
                    .iter_mut()
                    .find(|w| w.target == result.workspace_id)
                {
                    if result.started.is_none() {
                        w.phase = Phase::Done;
                        w.verdict = Some(result.error_kind.clone().unwrap_or_default());
                    }
                    w.message = Some(result.message.clone());
                }
            }
            BatchEvent::Finished { result, .. } => {
                if let Some(w) = workspaces
                    .iter_mut()
                    .find(|w| w.target == result.workspace_id)
                {
                    w.phase = Phase::Done;
                    w.verdict = Some(snake(&result.verdict));
                    w.message = Some(result.message.clone());
                }
            }
        }
    }
}

impl OperationEvent for PlanEvent {
    fn describe(&self) -> String {
        format!(
            "[{}] {} ({}/{} planned): {}",
            self.result.workspace_id,
            snake(&self.result.verdict),
            self.done,
            self.total,
            self.result.message
        )
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        // The results come in the order given: the done-th target is this one (a workspace
        // named twice has two rows).
        if let Some(w) = workspaces.get_mut(self.done - 1) {
            w.phase = Phase::Done;
            w.verdict = Some(snake(&self.result.verdict));
            w.message = Some(self.result.message.clone());
        }
    }
}

impl OperationOutput for MigrationPlans {
    fn ended_well(&self) -> bool {
        self.worst == Severity::Ok
    }

    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        *workspaces = self
            .results
            .iter()
            .map(|r| TargetStatus {
                target: r.workspace_id.clone(),
                phase: Phase::Done,
                verdict: Some(snake(&r.verdict)),
                message: Some(r.message.clone()),
            })
            .collect();
    }
}

impl OperationOutput for MigrationRollout {
    fn ended_well(&self) -> bool {
        self.all_completed()
    }

    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        *workspaces = self
            .results
            .iter()
            .map(|r| TargetStatus {
                target: r.workspace_id.clone(),
                phase: Phase::Done,
                verdict: Some(snake(&r.verdict)),
                message: Some(r.message.clone()),
            })
            .collect();
    }
}

/// A step of a migration started and followed ([`MoleculeClient::start_migration`]).
#[derive(Debug, Clone)]
pub enum MigrationRunEvent {
    /// The control plane accepted the start.
    Started(StartedMigration),
    /// The migration's state changed.
    State(MigrationEvent),
}

/// A migration started and followed to its end ([`MoleculeClient::start_migration`]).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct MigrationRun {
    /// What the control plane answered to the start.
    #[serde(rename = "migration_started")]
    pub started: StartedMigration,
    /// How it ended.
    pub status: MigrationReport,
}

impl OperationEvent for MigrationRunEvent {
    fn describe(&self) -> String {
        match self {
            MigrationRunEvent::Started(s) => format!(
                "migration of workspace {} from {} to {} started",
                s.workspace_id, s.from, s.to
            ),
            MigrationRunEvent::State(e) => e.describe(),
        }
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        match self {
            MigrationRunEvent::Started(_) => {
                if let Some(w) = workspaces.first_mut() {
                    w.message = Some(self.describe());
                }
            }
            MigrationRunEvent::State(e) => e.apply(workspaces),
        }
    }
}

impl OperationOutput for MigrationRun {
    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        self.status.finish(workspaces)
    }
}

impl OperationOutput for MigrationBatchRun {
    fn ended_well(&self) -> bool {
        self.worst == Severity::Ok
    }

    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(status) = &self.status {
            status.finish(workspaces);
        }
        for r in self.starts.results.iter().filter(|r| r.started.is_none()) {
            if let Some(w) = workspaces.iter_mut().find(|w| w.target == r.workspace_id) {
                w.phase = Phase::Done;
                w.verdict = Some(r.error_kind.clone().unwrap_or_default());
                w.message = Some(r.message.clone());
            }
        }
    }
}

impl OperationOutput for MigrationBatch {
    fn ended_well(&self) -> bool {
        self.worst == Severity::Ok
    }

    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        for r in &self.results {
            if let Some(w) = workspaces.iter_mut().find(|w| w.target == r.workspace_id) {
                w.phase = Phase::Done;
                w.verdict = Some(snake(&r.verdict));
                w.message = Some(r.message.clone());
            }
        }
    }
}

impl OperationEvent for MigrationEvent {
    fn describe(&self) -> String {
        MigrationEvent::describe(self)
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.phase = Phase::Migration(self.state.to_string());
            w.message = Some(self.report.message.clone());
        }
    }
}

impl OperationOutput for MigrationReport {
    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.phase = Phase::Done;
            w.verdict = Some(
                if self.migrated {
                    "completed"
                } else {
                    "never_migrated"
                }
                .into(),
            );
            w.message = Some(self.message.clone());
        }
    }
}

impl MoleculeClient {
    /// Migrates several workspaces under the rollout controls of [`crate::rollout`], as an
    /// operation, and returns its handle at once: at most `rollout.parallel` at once, each one
    /// started (its pre-flight, one POST, never retried) and followed to its end; with a
    /// canary, the first migrations must reach `completed` before any other starts; a
    /// migration ending `failed` or `rolled_back` counts against `rollout.max_failures`.
    /// Every request is checked first (nothing is sent otherwise). Cancelling it starts no
    /// more migrations and stops following; the ones started go on on the control plane.
    /// The outcome's `worst` is the severity a face maps to its words.
    pub fn start_migrate_rollout(
        &self,
        requests: Vec<MigrateRequest>,
        wait: WaitOptions,
        rollout: RolloutOptions,
    ) -> RolloutOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::MigrationRollout,
            requests
                .iter()
                .map(|r| r.workspace_id.trim().to_string())
                .collect(),
            move |control, sink| async move {
                client
                    .migrate_rollout(&requests, &wait, &rollout, &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }

    /// Plans the migrations of several workspaces without starting any (a dry run), as an
    /// operation, and returns its handle at once: [`MoleculeClient::plan_migration`] for each
    /// (GETs only, never a POST), at most `rollout.parallel` at once (its canary and failure
    /// budget do not apply: nothing is changed). The outcome has one plan or refusal per
    /// workspace, in the order given: one that cannot be planned does not hide the others'.
    pub fn start_plan_migrations(
        &self,
        requests: Vec<MigrateRequest>,
        rollout: RolloutOptions,
    ) -> PlanManyOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::MigrationRollout,
            requests
                .iter()
                .map(|r| r.workspace_id.trim().to_string())
                .collect(),
            move |control, sink| async move {
                client
                    .plan_migrations(&requests, rollout.parallel, &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }

    /// Starts a migration ([`MoleculeClient::migrate_provider`]: its pre-flight, one POST,
    /// never retried) and follows it to its end ([`MoleculeClient::start_follow_migration`]), as
    /// one operation; returns its handle at once.
    ///
    /// A graceful cancel lets a POST under way get its answer, then stops (following, or
    /// before it): the migration goes on on the control plane, and the error says how to
    /// follow it. An abort leaves at once, even a POST that has not been answered: the error
    /// says the migration may have started and how to look.
    pub fn start_migration(
        &self,
        request: MigrateRequest,
        wait: WaitOptions,
    ) -> MigrationRunOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::Migrate,
            vec![request.workspace_id.trim().to_string()],
            move |control, sink| async move {
                let workspace_id = request.workspace_id.trim().to_string();
                let started = tokio::select! {
                    biased;
                    r = client.migrate_provider(&request) => r?,
                    _ = control.aborted() => {
                        return Err(super::ops::still_migrating(
                            &workspace_id,
                            crate::Error::Interrupted {
                                message: format!(
                                    "left before the control plane answered the start of the \
                                     migration of workspace {workspace_id}: it may have started"
                                ),
                                last_state: None,
                            },
                        ));
                    }
                };
                sink.emit(MigrationRunEvent::Started(started.clone()));
                if control.is_cancelled() {
                    return Err(super::ops::interrupted(&started.workspace_id, None));
                }
                let mut options = wait;
                // The control plane may take a moment to show a migration it just accepted.
                options.not_found_grace = std::time::Duration::from_secs(30).min(options.timeout);
                let status = client
                    .wait_for_migration(&started.workspace_id, &options, &control, &mut |e| {
                        sink.emit(MigrationRunEvent::State(e))
                    })
                    .await?;
                Ok(MigrationRun { started, status })
            },
        )
    }

    /// Starts several migrations one after another as an operation and returns its handle
    /// at once; with `wait`, then follows the ones started to their ends (at most
    /// `concurrency` at once), as one operation. Every request is checked first (nothing is
    /// sent otherwise); each start is one POST, never retried; one refused does not stop the
    /// others. Cancelling it (gracefully or not) starts no more and stops following: the
    /// migrations started go on on the control plane.
    pub fn start_migrate_many(
        &self,
        requests: Vec<MigrateRequest>,
        wait: Option<WaitOptions>,
        concurrency: usize,
    ) -> BatchRunOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::MigrationRollout,
            requests
                .iter()
                .map(|r| r.workspace_id.trim().to_string())
                .collect(),
            move |control, sink| async move {
                client
                    .migrate_many_and_follow(
                        &requests,
                        wait.as_ref(),
                        concurrency,
                        &control,
                        &mut |e| sink.emit(e),
                    )
                    .await
            },
        )
    }

    /// Reads the latest migration of several workspaces as an operation, or with `wait`
    /// follows all of them to their ends (at most `concurrency` at once; every id is checked
    /// before any request; duplicates are read once). Cancelling it stops reading and
    /// following; the migrations go on on the control plane.
    pub fn start_follow_many(
        &self,
        workspace_ids: Vec<String>,
        wait: Option<WaitOptions>,
        concurrency: usize,
    ) -> FollowManyOperation {
        let client = self.clone();
        let mut seen = std::collections::HashSet::new();
        let targets: Vec<String> = workspace_ids
            .iter()
            .map(|i| i.trim().to_string())
            .filter(|i| seen.insert(i.clone()))
            .collect();
        Operation::spawn(
            OperationKind::FollowMigrations,
            targets,
            move |control, sink| async move {
                client
                    .migration_status_many(
                        &workspace_ids,
                        wait.as_ref(),
                        concurrency,
                        &control,
                        &mut |e| sink.emit(e),
                    )
                    .await
            },
        )
    }

    /// Follows a workspace's migration until the control plane says it ended (`terminal`), as
    /// an operation, and returns its handle at once. Each state is one event.
    ///
    /// - `completed` → the report; never migrated (404 past `not_found_grace`) → a report
    ///   with `migrated: false`.
    /// - `failed`, `rolled_back` (or an unknown end state) → [`crate::Error::OperationFailed`],
    ///   saying what the end state means for the user.
    /// - past the deadline → [`crate::Error::Timeout`] with the last state; cancelled
    ///   (gracefully or not) → [`crate::Error::Interrupted`]. In both cases the migration goes
    ///   on on the control plane.
    pub fn start_follow_migration(
        &self,
        workspace_id: String,
        options: WaitOptions,
    ) -> FollowOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::FollowMigration,
            vec![workspace_id.trim().to_string()],
            move |control, sink| async move {
                client
                    .wait_for_migration(&workspace_id, &options, &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }
}
