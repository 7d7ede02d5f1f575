//! Long tools answer inside a host's timeout: each starts an SDK operation, waits at most
//! `wait_seconds` (streaming progress meanwhile), then answers with the outcome, or with the
//! operation's id and where it stands. `get_operation`, `cancel_operation` and
//! `list_operations` follow them. A client's cancellation (a host timeout) only detaches: the
//! operation goes on; it never stops a stop→start sequence midway.

use std::{sync::Arc, time::Duration};

use fleet::operation::{
    AnyOperation, Operation, OperationEvent, OperationOutput, OperationSnapshot, OperationState,
    Reservation, TargetStatus, wait_until_done,
};
use rmcp::{
    Json, RoleServer, handler::server::wrapper::Parameters, service::RequestContext, tool,
    tool_router,
};
use serde::{Deserialize, Serialize};

use crate::server::{FleetServer, Progress, tool_error};

/// How long a long tool waits unless told (the SDK's [`fleet::rollout::DEFAULT_WAIT`]).
pub const DEFAULT_WAIT_SECONDS: u64 = fleet::rollout::DEFAULT_WAIT.as_secs();

/// The wait a call asked for; out of range ([`fleet::rollout::WAIT_RANGE`]) is invalid input
/// (nothing started).
pub fn wait_for(seconds: Option<u64>) -> Result<Duration, String> {
    match seconds {
        None => Ok(fleet::rollout::DEFAULT_WAIT),
        Some(s) => fleet::rollout::check_wait(Duration::from_secs(s)).map_err(tool_error),
    }
}

/// What a long tool answers: the outcome once the operation ended, else where it stands.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LongAnswer<T> {
    /// The operation's id: follow it with get_operation, cancel it with cancel_operation.
    pub operation_id: String,
    /// Where the operation stands (succeeded, failed, … once done; running or cancelling
    /// while it goes on).
    pub operation_state: OperationState,
    /// True when the operation has ended and the outcome's fields are present.
    pub done: bool,
    /// While it goes on: its latest step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_step: Option<String>,
    /// While it goes on: where each workspace stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<Vec<TargetStatus>>,
    /// While it goes on: how to follow it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    /// The outcome's fields, once done.
    #[serde(flatten)]
    pub outcome: Option<T>,
}

pub(crate) fn follow_text(id: &str) -> String {
    format!(
        "the operation goes on in fleet-mcp: call get_operation {{\"operation_id\": \"{id}\", \
         \"wait_seconds\": {DEFAULT_WAIT_SECONDS}}} until done is true (cancel_operation stops it \
         gracefully: nothing new starts, a stopped workspace is started again)"
    )
}

impl FleetServer {
    /// Registers `op`, waits at most `wait` for it (streaming its events as progress), and
    /// answers with its outcome or with where it stands. A cancelled request detaches.
    pub async fn answer_within<Ev, T>(
        &self,
        op: Operation<Ev, T>,
        wait: Duration,
        ctx: &RequestContext<RoleServer>,
        mut to_progress: impl FnMut(&Progress, &Ev) + Send,
    ) -> Result<Json<LongAnswer<T>>, String>
    where
        Ev: OperationEvent,
        T: OperationOutput + Serialize,
    {
        let progress = Progress::new(ctx.peer.clone(), ctx.meta.get_progress_token());
        // A cancelled request (a host's timeout) only stops the waiting.
        let result = op
            .watch_until(Some(wait), ctx.ct.cancelled(), |e| {
                to_progress(&progress, &e)
            })
            .await;
        progress.flush().await;
        let snapshot = op.snapshot();
        match result {
            Some(Ok(t)) => Ok(Json(LongAnswer {
                operation_id: op.id().to_string(),
                operation_state: snapshot.state,
                done: true,
                latest_step: None,
                workspaces: None,
                follow: None,
                outcome: Some(t),
            })),
            Some(Err(e)) => Err(format!("{} (operation {})", tool_error(e), op.id())),
            None => Ok(Json(LongAnswer {
                operation_id: op.id().to_string(),
                operation_state: snapshot.state,
                done: false,
                latest_step: snapshot.latest_step.clone(),
                workspaces: Some(snapshot.workspaces.clone()),
                follow: Some(follow_text(op.id())),
                outcome: None,
            })),
        }
    }

    /// A place for one more unfinished operation, taken before starting it; a tool error
    /// (nothing started) when `--max-operations` have not finished.
    pub fn reserve_operation(&self) -> Result<Reservation, String> {
        self.registry().reserve().map_err(|e| {
            format!(
                "{} (list_operations shows this session's; cancel_operation cancels one)",
                tool_error(e)
            )
        })
    }

    /// Registers an operation started with `slot`, as this session's, so that get_operation
    /// can find it.
    pub fn register<Ev, T>(&self, slot: Reservation, op: &Operation<Ev, T>)
    where
        Ev: OperationEvent,
        T: OperationOutput + Serialize,
    {
        self.registry()
            .insert_reserved(slot, self.session(), Arc::new(op.clone()));
    }
}

/// `get_operation` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetOperationParams {
    /// From a long tool's answer.
    pub operation_id: String,
    /// Wait for its end first (default 0, max 300).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// `cancel_operation` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOperationParams {
    /// The operation's id.
    pub operation_id: String,
}

/// `list_operations` input.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOperationsParams {}

/// An operation's error, once it ended in one.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OperationError {
    /// The error's kind (invalid_input, timeout, interrupted, operation_failed, …).
    pub kind: String,
    /// What happened, what is left, and what to do.
    pub message: String,
}

/// Where an operation stands, with its outcome once it ended.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OperationReport {
    /// The snapshot: id, kind, targets, state, latest step, one entry per workspace.
    #[serde(flatten)]
    pub snapshot: OperationSnapshot,
    /// The outcome (the same fields the long tool answers when done), once it ended well
    /// or with per-workspace verdicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
    /// The error, when it ended in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// While it goes on: how to follow it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
}

fn report(op: &dyn AnyOperation) -> OperationReport {
    let snapshot = op.snapshot();
    let (outcome, error) = match op.outcome_json() {
        Some(Ok(v)) => (Some(v), None),
        Some(Err(e)) => (
            None,
            Some(OperationError {
                kind: e.kind().to_string(),
                message: crate::server::error_text_as(crate::server::tool_of(op.kind()), &e),
            }),
        ),
        None => (None, None),
    };
    let follow = (!snapshot.done).then(|| follow_text(&snapshot.id));
    OperationReport {
        snapshot,
        outcome,
        error,
        follow,
    }
}

/// `list_operations` output.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OperationList {
    /// How many are listed.
    pub count: usize,
    /// The operations (running ones, and those that ended in the last hour), oldest first.
    pub operations: Vec<OperationSnapshot>,
}

#[tool_router(router = operation_router, vis = "pub(crate)")]
impl FleetServer {
    #[tool(
        name = "get_operation",
        description = "Where a long operation stands (operation_id from update_agent, restart_agent, update_agents, migrate_workspaces or wait_for_workspace_migration): state, latest step, each workspace, and once done its outcome or error. wait_seconds waits for the end first.",
        annotations(
            title = "Get a long operation",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_operation(
        &self,
        Parameters(p): Parameters<GetOperationParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<OperationReport>, String> {
        let wait = wait_for(Some(p.wait_seconds.unwrap_or(0)))?;
        let op = self.operation(&p.operation_id)?;
        if !wait.is_zero() {
            let progress = Progress::new(ctx.peer.clone(), ctx.meta.get_progress_token());
            let mut watch = op.watch();
            let mut n = 0.0;
            let mut last = None;
            let waiting = async {
                loop {
                    let s = watch.borrow_and_update().clone();
                    if s.latest_step != last {
                        n += 1.0;
                        if let Some(step) = &s.latest_step {
                            // The latest step (often a log line): coalesced, a few a second.
                            progress.send_line(n, None, step.clone());
                        }
                        last = s.latest_step.clone();
                    }
                    if s.done || watch.changed().await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = waiting => {}
                _ = tokio::time::sleep(wait) => {}
                _ = ctx.ct.cancelled() => {}
            }
            progress.flush().await;
        }
        Ok(Json(report(op.as_ref())))
    }

    #[tool(
        name = "cancel_operation",
        description = "Cancel a long operation gracefully: nothing new starts and a workspace already stopped is started again (migrations already started go on). Follow it with get_operation.",
        annotations(
            title = "Cancel a long operation",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn cancel_operation(
        &self,
        Parameters(p): Parameters<CancelOperationParams>,
    ) -> Result<Json<OperationReport>, String> {
        let op = self.operation(&p.operation_id)?;
        op.cancel();
        // Let an operation that only needed the word end before answering.
        wait_until_done(op.as_ref(), Duration::from_millis(200)).await;
        Ok(Json(report(op.as_ref())))
    }

    #[tool(
        name = "list_operations",
        description = "List the long operations this session started (running, or ended in the last hour): id, kind, state, latest step.",
        annotations(
            title = "List long operations",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_operations(
        &self,
        Parameters(_): Parameters<ListOperationsParams>,
    ) -> Result<Json<OperationList>, String> {
        let operations: Vec<OperationSnapshot> = self
            .registry()
            .list_of(self.session())
            .iter()
            .map(|op| op.snapshot())
            .collect();
        Ok(Json(OperationList {
            count: operations.len(),
            operations,
        }))
    }
}

impl FleetServer {
    fn operation(&self, id: &str) -> Result<Arc<dyn AnyOperation>, String> {
        self.registry().get(id).ok_or_else(|| {
            tool_error(fleet::Error::NotFound {
                message: format!(
                    "no operation {:?} in this fleet-mcp (finished operations are kept for an hour; \
                     a restarted fleet-mcp forgets them): list_operations shows the ones this session started",
                    id.trim()
                ),
            })
        })
    }
}
