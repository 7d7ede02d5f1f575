//! Following a migration started as an [`Operation`] (see [`crate::operation`]).

use super::{
    BatchEvent, MigrateRequest, MigrationEvent, MigrationReport, MigrationRollout, MoleculeClient,
    WaitOptions,
};
use crate::{
    operation::{Operation, OperationEvent, OperationKind, OperationOutput, TargetStatus},
    rollout::RolloutOptions,
};

/// A running follow of one workspace's migration.
pub type FollowOperation = Operation<MigrationEvent, MigrationReport>;
/// A running migration rollout over several workspaces.
pub type RolloutOperation = Operation<BatchEvent, MigrationRollout>;

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
                    w.phase = event.state.to_string();
                    w.message = Some(event.report.message.clone());
                }
            }
            BatchEvent::Finished { result, .. } => {
                if let Some(w) = workspaces
                    .iter_mut()
                    .find(|w| w.target == result.workspace_id)
                {
                    w.phase = "done".into();
                    w.verdict = Some(snake(&result.verdict));
                    w.message = Some(result.message.clone());
                }
            }
        }
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
                phase: "done".into(),
                verdict: Some(snake(&r.verdict)),
                message: Some(r.message.clone()),
            })
            .collect();
    }
}

impl OperationEvent for MigrationEvent {
    fn describe(&self) -> String {
        MigrationEvent::describe(self)
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.phase = self.state.to_string();
            w.message = Some(self.report.message.clone());
        }
    }
}

impl OperationOutput for MigrationReport {
    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.phase = "done".into();
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
    /// Starts [`MoleculeClient::migrate_rollout`] as an operation and returns its handle at
    /// once. Cancelling it starts no more migrations; the ones started go on on the control
    /// plane.
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
                    .migrate_rollout(&requests, &wait, &rollout, &control, |e| sink.emit(e))
                    .await
            },
        )
    }

    /// Starts [`MoleculeClient::wait_for_migration`] as an operation and returns its handle at
    /// once. Cancelling it (gracefully or not) stops following; the migration goes on on the
    /// control plane.
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
                    .wait_for_migration(&workspace_id, &options, &control, |e| sink.emit(e))
                    .await
            },
        )
    }
}
