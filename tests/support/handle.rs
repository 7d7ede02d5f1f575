//! Driving the SDK's long operations through their handles ([`fleet::operation::Operation`]),
//! the SDK's one public way to run them: a test starts the operation (`start_*`), and
//! [`drive`] hands each event to a closure, aborts the operation when a token is cancelled
//! (what a token meant to the callback functions the handle replaced), and returns the
//! outcome. The `*_via_handle` methods are that, for the tests written against the old
//! `async fn`s' arguments.

use std::future::Future;

use fleet::{
    coder::{
        CoderClient, CoderEvent, FleetEvent, FleetOptions, FleetReport, ReadyEvent, ReadyOptions,
        ReadyReport, Selection, UpdateOptions, UpdateOutcome, WorkspaceRef,
    },
    molecule::{MigrationEvent, MigrationReport, MoleculeClient, WaitOptions},
    operation::{Operation, OperationEvent, OperationOutput},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Hands every event of `op` to `on_event` until it ends; cancelling `cancel` aborts it (one
/// already cancelled aborts it before it has run). Returns its outcome.
pub async fn drive<Ev: OperationEvent, T: OperationOutput>(
    op: &Operation<Ev, T>,
    cancel: &CancellationToken,
    on_event: impl FnMut(Ev),
) -> fleet::Result<T> {
    if cancel.is_cancelled() {
        op.abort();
    }
    let aborter = {
        let (op, cancel) = (op.clone(), cancel.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            op.abort();
        })
    };
    let result = match op.watch_until(None, std::future::pending(), on_event).await {
        Some(result) => result,
        None => op.outcome().await,
    };
    aborter.abort();
    result
}

/// Coder's long operations, started and driven through their handles.
pub trait CoderViaHandle {
    /// `start_update_ready(…, None)` (no readiness wait), driven.
    fn update_via_handle(
        &self,
        r: &WorkspaceRef,
        template_version: Option<Uuid>,
        options: &UpdateOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(CoderEvent) + Send,
    ) -> impl Future<Output = fleet::Result<UpdateOutcome>> + Send;
    /// `start_restart_ready(…, None)`, driven.
    fn restart_via_handle(
        &self,
        r: &WorkspaceRef,
        options: &UpdateOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(CoderEvent) + Send,
    ) -> impl Future<Output = fleet::Result<UpdateOutcome>> + Send;
    /// `start_update_many`, driven.
    fn update_many_via_handle(
        &self,
        selection: &Selection,
        options: &FleetOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(FleetEvent) + Send,
    ) -> impl Future<Output = fleet::Result<FleetReport>> + Send;
    /// `start_wait_until_ready`, driven.
    fn ready_via_handle(
        &self,
        build_id: &Uuid,
        options: &ReadyOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(ReadyEvent) + Send,
    ) -> impl Future<Output = fleet::Result<ReadyReport>> + Send;
}

impl CoderViaHandle for CoderClient {
    fn update_via_handle(
        &self,
        r: &WorkspaceRef,
        template_version: Option<Uuid>,
        options: &UpdateOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(CoderEvent) + Send,
    ) -> impl Future<Output = fleet::Result<UpdateOutcome>> + Send {
        let op = self.start_update_ready(
            r.clone(),
            template_version.map(Into::into),
            options.clone(),
            None,
        );
        let cancel = cancel.clone();
        async move { drive(&op, &cancel, on_event).await }
    }

    fn restart_via_handle(
        &self,
        r: &WorkspaceRef,
        options: &UpdateOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(CoderEvent) + Send,
    ) -> impl Future<Output = fleet::Result<UpdateOutcome>> + Send {
        let op = self.start_restart_ready(r.clone(), options.clone(), None);
        let cancel = cancel.clone();
        async move { drive(&op, &cancel, on_event).await }
    }

    fn update_many_via_handle(
        &self,
        selection: &Selection,
        options: &FleetOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(FleetEvent) + Send,
    ) -> impl Future<Output = fleet::Result<FleetReport>> + Send {
        let op = self.start_update_many(selection.clone(), options.clone());
        let cancel = cancel.clone();
        async move { drive(&op, &cancel, on_event).await }
    }

    fn ready_via_handle(
        &self,
        build_id: &Uuid,
        options: &ReadyOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(ReadyEvent) + Send,
    ) -> impl Future<Output = fleet::Result<ReadyReport>> + Send {
        let op = self.start_wait_until_ready(build_id.to_string(), *build_id, options.clone());
        let cancel = cancel.clone();
        async move { drive(&op, &cancel, on_event).await }
    }
}

/// Molecule's long operations, started and driven through their handles.
pub trait MoleculeViaHandle {
    /// `start_follow_migration`, driven.
    fn wait_for_migration_via_handle(
        &self,
        workspace_id: &str,
        options: &WaitOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(MigrationEvent) + Send,
    ) -> impl Future<Output = fleet::Result<MigrationReport>> + Send;
}

impl MoleculeViaHandle for MoleculeClient {
    fn wait_for_migration_via_handle(
        &self,
        workspace_id: &str,
        options: &WaitOptions,
        cancel: &CancellationToken,
        on_event: impl FnMut(MigrationEvent) + Send,
    ) -> impl Future<Output = fleet::Result<MigrationReport>> + Send {
        let op = self.start_follow_migration(workspace_id.to_string(), options.clone());
        let cancel = cancel.clone();
        async move { drive(&op, &cancel, on_event).await }
    }
}
