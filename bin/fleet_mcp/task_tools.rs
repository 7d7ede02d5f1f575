//! The MCP tasks extension (`io.modelcontextprotocol/tasks`, protocol 2026-07-28): when the
//! client declares it, the long tools (`update_agent`, `restart_agent`, `update_agents`,
//! `wait_for_workspace_migration`) answer with a task instead of waiting. A task IS the
//! operation the call started: its id is the operation's id, and `tasks/get` / `tasks/cancel`
//! read and cancel the operation in the one registry that `get_operation` and
//! `cancel_operation` use too (no second store, no second lifecycle).
//!
//! - `tasks/get`: `working` while the operation runs (status message: its latest step);
//!   `completed` with the same result the tool answers once done (isError when it ended in an
//!   error); `cancelled` when a cancel ended it (every stop already under way was followed
//!   by its start; the status message says what it finished).
//! - `tasks/cancel`: a graceful cancel of the operation: nothing new starts, nothing is left
//!   stopped. The task settles once the operation has finished what was in flight.
//! - A client that does not declare the extension gets the tools' usual answers.

use std::time::Duration;

use fleet::operation::{AnyOperation, OperationKind, OperationState};
use rmcp::{
    ErrorData, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult,
        DetailedTask, JsonObject, Task, TaskPayload, TaskStatus,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::operation_tools::{LongAnswer, batch_answer, follow_text};
use crate::server::{FleetServer, tool_error};

/// The tools that run as tasks when the client opts in.
pub const TASK_TOOLS: [&str; 4] = [
    "update_agent",
    "restart_agent",
    "update_agents",
    "wait_for_workspace_migration",
];

/// How often a client is asked to poll `tasks/get`.
const POLL_INTERVAL_MS: u64 = 2_000;

/// True when this call runs as a task: a long tool, and a request whose own capabilities
/// (`_meta`, as the extension's revision 2026-07-28 signals it) declare the extension.
///
/// A declaration made only at `initialize` does not count: MCP Inspector 2.12 declares the
/// extension there but cannot read a task answer ("declares an output schema but returned no
/// structured content"), so a session-level declaration keeps the usual answers, which every
/// client understands (they answer within `wait_seconds` and name the operation to follow).
pub fn runs_as_task(request: &CallToolRequestParams, ctx: &RequestContext<RoleServer>) -> bool {
    TASK_TOOLS.contains(&request.name.as_ref())
        && ctx
            .meta
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn unknown_task(id: &str) -> ErrorData {
    ErrorData::invalid_params(
        format!(
            "no task {:?} in this fleet-mcp (a task is one of its operations: finished ones are \
             kept for an hour, a restarted fleet-mcp forgets them)",
            id.trim()
        ),
        None,
    )
}

impl FleetServer {
    /// Starts the long tool's operation (the tool itself, told not to wait) and answers with
    /// its task; a call that ends at once (bad input, an operation already done) answers as
    /// usual.
    pub(crate) async fn call_as_task(
        &self,
        mut request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        request
            .arguments
            .get_or_insert_with(JsonObject::new)
            .insert("wait_seconds".into(), json!(0));
        let answer = self.call_tool_checked(request, ctx).await?;
        let CallToolResponse::Complete(result) = &answer else {
            return Ok(answer);
        };
        let op = result
            .structured_content
            .as_ref()
            .and_then(|s| s.get("operation_id"))
            .and_then(Value::as_str)
            .and_then(|id| self.registry().get(id));
        match op {
            Some(op) if result.is_error != Some(true) && !op.snapshot().done => Ok(
                CallToolResponse::Task(CreateTaskResult::new(self.task_of(op.as_ref()).task)),
            ),
            _ => Ok(answer),
        }
    }

    /// `tasks/get`: the operation behind the task, as a task.
    pub(crate) fn get_task_of(&self, task_id: &str) -> Result<DetailedTask, ErrorData> {
        let op = self
            .registry()
            .get(task_id)
            .ok_or_else(|| unknown_task(task_id))?;
        Ok(self.task_of(op.as_ref()))
    }

    /// `tasks/cancel`: a graceful cancel of the operation behind the task.
    pub(crate) async fn cancel_task_of(&self, task_id: &str) -> Result<(), ErrorData> {
        let op = self
            .registry()
            .get(task_id)
            .ok_or_else(|| unknown_task(task_id))?;
        op.cancel();
        // Let an operation that only needed the word end before acknowledging.
        fleet::operation::wait_until_done(op.as_ref(), Duration::from_millis(200)).await;
        Ok(())
    }

    fn task_of(&self, op: &dyn AnyOperation) -> DetailedTask {
        let snapshot = op.snapshot();
        let mut task = Task::new(
            snapshot.id.clone(),
            TaskStatus::Working,
            snapshot.started_at.clone(),
            now(),
        );
        // Running operations are kept as long as they run, finished ones for an hour.
        task.ttl_ms = None;
        task.poll_interval_ms = Some(POLL_INTERVAL_MS);
        task.status_message = snapshot.latest_step.clone();
        let payload = match snapshot.state {
            _ if !snapshot.done => TaskPayload::Working,
            OperationState::Cancelled | OperationState::Aborted => {
                if let Some(Err(e)) = op.outcome_json() {
                    task.status_message = Some(tool_error(e));
                }
                TaskPayload::Cancelled
            }
            _ => TaskPayload::Completed {
                result: self.final_result(op),
            },
        };
        DetailedTask::new(task, payload)
    }

    /// What the tool answers once its operation is done, as a JSON object.
    fn final_result(&self, op: &dyn AnyOperation) -> JsonObject {
        let snapshot = op.snapshot();
        let result = match op.kind() {
            OperationKind::FollowMigration => self.migration_answer(op),
            _ => match op.outcome_json() {
                Some(Ok(outcome)) => {
                    let outcome = if crate::answers::is_batch(snapshot.kind) {
                        serde_json::to_value(batch_answer(&snapshot.id, outcome))
                            .unwrap_or(Value::Null)
                    } else {
                        outcome
                    };
                    let answer = LongAnswer {
                        operation_id: snapshot.id.clone(),
                        operation_state: snapshot.state,
                        done: true,
                        latest_step: None,
                        progress: None,
                        follow: None,
                        truncated: None,
                        outcome: Some(outcome),
                    };
                    structured(serde_json::to_value(&answer).unwrap_or(Value::Null))
                }
                Some(Err(e)) => Err(format!("{} (operation {})", tool_error(e), snapshot.id)),
                None => Err(format!(
                    "operation {} has not ended; {}",
                    snapshot.id,
                    follow_text(&snapshot.id)
                )),
            },
        };
        let result = match result {
            Ok(r) => r,
            Err(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
        };
        match serde_json::to_value(crate::answers::guard(self.redacted(result))) {
            Ok(Value::Object(o)) => o,
            _ => JsonObject::new(),
        }
    }
}

/// A result with structured content and the same JSON as text (as rmcp's `Json` answers).
pub(crate) fn structured(value: Value) -> Result<CallToolResult, String> {
    Ok(CallToolResult::structured(value))
}
