//! Long tools answer inside a host's timeout: each starts an SDK operation, waits at most
//! `wait_seconds` (streaming progress meanwhile), then answers with the outcome, or with the
//! operation's id and where it stands. `get_operation`, `cancel_operation` and
//! `list_operations` follow them. A client's cancellation (a host timeout) only detaches: the
//! operation goes on; it never stops a stop→start sequence midway.

use std::{sync::Arc, time::Duration};

use fleet::operation::{
    AnyOperation, Operation, OperationEvent, OperationKind, OperationOutput, OperationSnapshot,
    OperationState, Reservation, wait_until_done,
};
use rmcp::{
    Json, RoleServer, handler::server::wrapper::Parameters, service::RequestContext, tool,
    tool_router,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answers::{self, BatchOutcome, Detail, OperationLine, RowsPage};
use crate::server::{FleetServer, Progress, input_schema, output_schema, tool_error};

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
    /// Follow it with get_operation, cancel it with cancel_operation.
    pub operation_id: String,
    pub operation_state: OperationState,
    /// True when the operation has ended and the outcome's fields are present.
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_step: Option<String>,
    /// While it goes on: counts, the workspaces that need attention, one page of them.
    #[serde(flatten)]
    pub progress: Option<RowsPage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// The outcome's fields, once done.
    #[serde(flatten)]
    pub outcome: Option<T>,
}

impl<T> LongAnswer<T> {
    /// The same answer with its outcome shaped by `f` (given the operation id).
    pub fn map_outcome<U>(self, f: impl FnOnce(&str, T) -> U) -> LongAnswer<U> {
        let outcome = self.outcome.map(|t| f(&self.operation_id, t));
        LongAnswer {
            operation_id: self.operation_id,
            operation_state: self.operation_state,
            done: self.done,
            latest_step: self.latest_step,
            progress: self.progress,
            follow: self.follow,
            truncated: self.truncated,
            outcome,
        }
    }
}

/// A batch report (update_agents, migrate_workspaces) as an answer: figures, counts, the
/// results that need attention, the first page of results.
pub fn batch_answer<T: Serialize>(operation_id: &str, report: T) -> BatchOutcome {
    let value = serde_json::to_value(&report).unwrap_or(Value::Null);
    answers::batch_outcome(
        operation_id,
        &value,
        0,
        answers::DEFAULT_LIMIT as usize,
        answers::budget() - 400,
    )
}

/// Where an operation that goes on stands, compact.
fn progress_of(snapshot: &OperationSnapshot) -> (RowsPage, Option<String>) {
    answers::rows_page(
        snapshot,
        None,
        0,
        answers::DEFAULT_LIMIT as usize,
        answers::budget() - 600,
    )
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
                progress: None,
                follow: None,
                truncated: None,
                outcome: Some(t),
            })),
            Some(Err(e)) => Err(format!("{} (operation {})", tool_error(e), op.id())),
            None => {
                let (rows, truncated) = progress_of(&snapshot);
                Ok(Json(LongAnswer {
                    operation_id: op.id().to_string(),
                    operation_state: snapshot.state,
                    done: false,
                    latest_step: snapshot
                        .latest_step
                        .as_deref()
                        .map(|s| answers::clip(s, 300)),
                    progress: Some(rows),
                    follow: Some(follow_text(op.id())),
                    truncated,
                    outcome: None,
                }))
            }
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
    pub operation_id: String,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub detail: Option<Detail>,
}

/// `cancel_operation` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOperationParams {
    pub operation_id: String,
}

/// `list_operations` input.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOperationsParams {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// An operation's error, once it ended in one.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OperationError {
    /// invalid_input, timeout, interrupted, operation_failed, …
    pub kind: String,
    pub message: String,
}

/// Where an operation stands: a summary first, then one page of its workspaces.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OperationReport {
    pub id: String,
    pub kind: OperationKind,
    pub state: OperationState,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_step: Option<String>,
    pub events: u64,
    pub started_at: String,
    pub elapsed_ms: u64,
    pub target_count: usize,
    /// The first few targets.
    pub targets: Vec<String>,
    #[serde(flatten)]
    pub rows: RowsPage,
    /// Once done: the outcome (a batch's figures; the whole outcome of one workspace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
    /// With detail "full": one page of the whole per-workspace results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
}

/// How a report pages: where it starts, how many rows, which detail.
struct Paging {
    start: usize,
    limit: usize,
    detail: Detail,
}

impl Paging {
    fn first() -> Self {
        Paging {
            start: 0,
            limit: answers::DEFAULT_LIMIT as usize,
            detail: Detail::Compact,
        }
    }
}

fn report(op: &dyn AnyOperation, paging: &Paging) -> OperationReport {
    let snapshot = op.snapshot();
    let (outcome, error) = match op.outcome_json() {
        Some(Ok(v)) => (Some(v), None),
        Some(Err(e)) => (
            None,
            Some(OperationError {
                kind: e.kind().to_string(),
                message: answers::clip(
                    &crate::server::error_text_as(crate::server::tool_of(op.kind()), &e),
                    1_500,
                ),
            }),
        ),
        None => (None, None),
    };
    let follow = (!snapshot.done).then(|| follow_text(&snapshot.id));
    let batch = answers::is_batch(snapshot.kind);
    let mut budget = answers::budget() - 500;
    // A batch's outcome: its figures (its rows are the workspaces below).
    let shown_outcome = outcome.as_ref().map(|o| {
        if batch {
            let mut v = serde_json::to_value(answers::batch_outcome(&snapshot.id, o, 0, 0, 400))
                .unwrap_or(Value::Null);
            if let Some(m) = v.as_object_mut() {
                for k in ["results", "attention", "next_cursor", "truncated", "counts"] {
                    m.remove(k);
                }
            }
            v
        } else if snapshot.kind == OperationKind::Promote {
            // A promotion's report holds whole batch reports: compact, as its tool answers.
            serde_json::to_value(crate::coder_tools::promote_outcome(&snapshot.id, o))
                .unwrap_or(Value::Null)
        } else {
            o.clone()
        }
    });
    budget = budget.saturating_sub(answers::cost(&shown_outcome) + answers::cost(&error));
    let mut notes = Vec::new();
    let (rows, results) = match (paging.detail, &outcome) {
        (Detail::Full, Some(o)) if batch => {
            let (results, next, cut) =
                answers::full_results(&snapshot.id, o, paging.start, paging.limit, budget);
            if cut {
                notes.push(format!(
                    "the page of results was cut at {} to stay within {} tokens",
                    results.len(),
                    answers::MAX_ANSWER_TOKENS
                ));
            }
            let (mut rows, _) = answers::rows_page(&snapshot, Some(o), 0, 0, 300);
            rows.next_cursor = next;
            (rows, Some(results))
        }
        _ => {
            let (rows, note) = answers::rows_page(
                &snapshot,
                outcome.as_ref(),
                paging.start,
                paging.limit,
                budget,
            );
            notes.extend(note);
            (rows, None)
        }
    };
    OperationReport {
        id: snapshot.id.clone(),
        kind: snapshot.kind,
        state: snapshot.state,
        done: snapshot.done,
        latest_step: snapshot
            .latest_step
            .as_deref()
            .map(|s| answers::clip(s, 300)),
        events: snapshot.events,
        started_at: snapshot.started_at.clone(),
        elapsed_ms: snapshot.elapsed_ms,
        target_count: snapshot.targets.len(),
        targets: snapshot
            .targets
            .iter()
            .take(answers::TARGETS_SHOWN)
            .map(|t| answers::clip(t, 120))
            .collect(),
        rows,
        outcome: shown_outcome,
        results,
        error,
        follow,
        truncated: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// `list_operations` output: one line per operation, never its per-workspace rows.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OperationList {
    /// All of them (every page).
    pub count: usize,
    /// Running ones and those that ended in the last hour, oldest first: one page.
    pub operations: Vec<OperationLine>,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[tool_router(router = operation_router, vis = "pub(crate)")]
impl FleetServer {
    #[tool(
        name = "get_operation",
        description = "Where a long operation stands (operation_id from update_agent, restart_agent, update_agents, promote_template_version, migrate_workspaces or wait_for_workspace_migration): state, latest step, counts, the workspaces needing attention, a page of workspaces (cursor, limit), and once done its outcome or error. detail=\"full\" pages whole results (plans, builds). wait_seconds waits for the end first.",
        input_schema = input_schema::<GetOperationParams>(),
        output_schema = output_schema::<OperationReport>(),
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
        answers::page_limit(p.limit)?;
        answers::row_start(op.id(), p.cursor.as_deref(), p.detail.unwrap_or_default())?;
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
        let paging = Paging {
            start: answers::row_start(op.id(), p.cursor.as_deref(), p.detail.unwrap_or_default())?,
            limit: answers::page_limit(p.limit)?,
            detail: p.detail.unwrap_or_default(),
        };
        Ok(Json(report(op.as_ref(), &paging)))
    }

    #[tool(
        name = "cancel_operation",
        description = "Cancel a long operation gracefully: nothing new starts and a workspace already stopped is started again (migrations already started go on). Follow it with get_operation.",
        input_schema = input_schema::<CancelOperationParams>(),
        output_schema = output_schema::<OperationReport>(),
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
        Ok(Json(report(op.as_ref(), &Paging::first())))
    }

    #[tool(
        name = "list_operations",
        description = "List the long operations this session started (running, or ended in the last hour), one line each with counts; limit and cursor page.",
        input_schema = input_schema::<ListOperationsParams>(),
        output_schema = output_schema::<OperationList>(),
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
        Parameters(p): Parameters<ListOperationsParams>,
    ) -> Result<Json<OperationList>, String> {
        let limit = answers::page_limit(p.limit)?;
        let lines: Vec<OperationLine> = self
            .registry()
            .list_of(self.session())
            .iter()
            .map(|op| OperationLine::from(&op.snapshot()))
            .collect();
        let count = lines.len();
        let (operations, next_cursor) =
            answers::operation_lines(lines, limit, p.cursor.as_deref())?;
        Ok(Json(OperationList {
            count,
            operations,
            next_cursor,
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
