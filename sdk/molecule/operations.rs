//! Following a migration started as an [`Operation`] (see [`crate::operation`]).

use super::{MigrationEvent, MigrationReport, MoleculeClient, WaitOptions};
use crate::operation::{Operation, OperationEvent, OperationKind, OperationOutput, TargetStatus};

/// A running follow of one workspace's migration.
pub type FollowOperation = Operation<MigrationEvent, MigrationReport>;

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
