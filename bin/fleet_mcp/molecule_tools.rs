//! The molecule tools: start a compute-provider migration, read it, follow it.

use std::time::Duration;

use fleet::{
    Error, ReadBack,
    molecule::{MigrateRequest, MigrationReport, Provider, StartedMigration, WaitOptions},
};
use rmcp::{
    Json, RoleServer, handler::server::wrapper::Parameters, service::RequestContext, tool,
    tool_router,
};

use fleet::{
    molecule::{BatchEvent, FollowOperation, MigrationEvent},
    operation::{OperationKind, OperationState},
};

use crate::{
    answers::BatchOutcome,
    operation_tools::{LongAnswer, batch_answer, wait_for},
    server::{FleetServer, Progress, tool_error},
};

/// A compute provider: aws (Amazon Web Services), hetzner (Hetzner Cloud), gcp (Google Cloud).
// No doc comments on the variants: they would turn the schema's plain `enum` into `oneOf`.
#[derive(Debug, Clone, Copy, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderArg {
    #[allow(missing_docs)]
    Aws,
    #[allow(missing_docs)]
    Hetzner,
    #[allow(missing_docs)]
    Gcp,
}

impl From<ProviderArg> for Provider {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Aws => Provider::Aws,
            ProviderArg::Hetzner => Provider::Hetzner,
            ProviderArg::Gcp => Provider::Gcp,
        }
    }
}

/// Input of `migrate_workspace_provider`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct MigrateParams {
    /// The workspace id.
    pub workspace_id: String,
    /// The target provider.
    pub to: ProviderArg,
    /// The source provider. Omit it to read the workspace's current provider from the tenant API.
    #[serde(default)]
    pub from: Option<ProviderArg>,
    /// Must be true: a migration mutates two clouds. Ask the user before setting it.
    #[serde(default)]
    pub confirm: Option<bool>,
    /// The source instance id; required when the source is hetzner or gcp.
    #[serde(default)]
    pub from_instance_id: Option<String>,
    /// Optional: the workspace's organization id, sent as org_id.
    #[serde(default)]
    pub org_id: Option<String>,
    /// Optional: the runtime for the target.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Optional: environment variables for the target, name → value.
    #[serde(default)]
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// Optional: the image for the target.
    #[serde(default)]
    pub image: Option<String>,
}

/// Input of `migrate_workspaces`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct MigrateManyParams {
    /// The workspace ids (each migrated once; a workspace named twice is refused).
    pub workspace_ids: Vec<String>,
    /// The target provider.
    pub to: ProviderArg,
    /// The source provider of every workspace. Omit it to read each one's current provider
    /// from the tenant API. Sources other than aws need a per-workspace instance id: use
    /// migrate_workspace_provider for those.
    #[serde(default)]
    pub from: Option<ProviderArg>,
    /// Must be true: migrations mutate two clouds each. Ask the user before setting it.
    #[serde(default)]
    pub confirm: Option<bool>,
    /// Migrate this many workspaces first; start the rest only once all of them reached
    /// completed.
    #[serde(default)]
    pub canary: Option<u32>,
    /// Once this many migrations ended failed or rolled_back (or timed out), start no more.
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// How many migrations run at once (1 to 64; default 4).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Seconds to wait for the outcome before answering (default 25, 0 answers at once, at most
    /// 300). Migrations take 15–20 minutes each: the answer then carries operation_id, and
    /// get_operation follows the rollout.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Input of the tools that take only a workspace.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct WorkspaceParams {
    /// The workspace id.
    pub workspace_id: String,
}

/// Input of `wait_for_workspace_migration`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct WaitParams {
    /// The workspace id.
    pub workspace_id: String,
    /// Seconds to wait before answering (default 25, 0 answers at once, at most 300). A
    /// migration takes 15–20 minutes: while it goes on the answer is still_running with an
    /// operation_id; call again (or get_operation) to keep following it.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// Older name of wait_seconds (1 to 3600), for hosts that wait longer. wait_seconds wins.
    #[serde(default)]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u64>,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitOutcome {
    /// The migration completed: the workspace runs on the target.
    Completed,
    /// The migration ended without completing (failed, rolled_back or an unknown end state).
    EndedInFailure,
    /// The workspace has never been migrated.
    NeverMigrated,
    /// The wait timed out; the migration is still running. Call again to keep following it.
    StillRunning,
}

/// Output of `wait_for_workspace_migration`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct WaitResult {
    /// How the wait ended.
    pub outcome: WaitOutcome,
    /// What happened, and what to do next.
    pub message: String,
    /// Seconds waited.
    pub waited_seconds: f64,
    /// The final (or latest) status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<MigrationReport>,
    /// The operation following the migration in fleet-mcp (get_operation follows it too).
    pub operation_id: String,
    /// Where that operation stands.
    pub operation_state: OperationState,
}

/// The tool to call next after a POST without a clear answer ([`Error::Unconfirmed`]).
fn with_next_call(e: Error, workspace_id: &str) -> Error {
    e.with_next_step(|found| match found {
        ReadBack::UnderWay => format!(
            "Follow it with wait_for_workspace_migration (workspace_id {workspace_id:?}); do not \
             call migrate_workspace_provider again"
        ),
        ReadBack::NothingStarted => {
            "Calling migrate_workspace_provider again would start it.".into()
        }
        ReadBack::AlreadyEnded | ReadBack::Unknown => format!(
            "Check it with get_workspace_migration_status (workspace_id {workspace_id:?}) before \
             calling migrate_workspace_provider again"
        ),
    })
}

const MAX_WAIT: u64 = 3600;

#[tool_router(router = molecule_router, vis = "pub(crate)")]
impl FleetServer {
    #[tool(
        description = "Start migrating a Molecule workspace's compute provider across clouds (aws, hetzner, gcp). \
A migration snapshots the workspace on its source cloud, provisions it on the target, waits until it is healthy, \
cuts over and retires the source: it mutates two clouds and takes 15-20 minutes; one migration per workspace at a time. \
Requires confirm=true: ask the user first. `from` defaults to the workspace's current provider (read from the tenant API); \
from_instance_id is required when the source is hetzner or gcp. org_id, runtime, env and image are sent only when given. \
Returns at once; follow with wait_for_workspace_migration. If the control plane gives no clear answer, the tool does not \
send it again: it reads the migration back and says whether one is running.",
        annotations(
            title = "Migrate workspace provider",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn migrate_workspace_provider(
        &self,
        Parameters(p): Parameters<MigrateParams>,
    ) -> Result<Json<StartedMigration>, String> {
        let request = MigrateRequest {
            from: p.from.map(Into::into),
            from_instance_id: p.from_instance_id,
            confirm: p.confirm.unwrap_or(false),
            org_id: p.org_id,
            runtime: p.runtime,
            env: p.env.unwrap_or_default(),
            image: p.image,
            ..MigrateRequest::new(p.workspace_id, p.to.into())
        };
        // Input and confirmation are checked before the configuration: a model learns what
        // is wrong with its call even on an unconfigured server. Nothing is sent.
        request.validate().map_err(tool_error)?;
        let client = self.molecule()?;
        client
            .migrate_provider(&request)
            .await
            .map(Json)
            .map_err(|e| tool_error(with_next_call(e, request.workspace_id.trim())))
    }

    #[tool(
        description = "Migrate several Molecule workspaces' compute provider as a rollout: each migration is \
started (its pre-flight, one POST, never sent twice) and followed to its end, at most `parallel` at once. canary=N \
migrates the first N first and starts the rest only once all N reached completed; max_failures=K starts no more once \
K ended failed or rolled_back (or timed out). Requires confirm=true: ask the user first. Answers counts by \
verdict (completed, failed, refused, timed_out, interrupted, not_attempted), the ones that need attention, one page \
of results (get_operation pages the rest) and `halt` (why it stopped, the first workspaces not attempted); calling again with the workspaces not completed resumes. Takes 15-20 minutes per \
migration: waits at most wait_seconds (default 25), then answers with the result or with operation_id (get_operation \
follows it; cancel_operation starts no more migrations, the ones started go on).",
        annotations(
            title = "Migrate several workspaces (rollout)",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn migrate_workspaces(
        &self,
        Parameters(p): Parameters<MigrateManyParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<LongAnswer<BatchOutcome>>, String> {
        let requests: Vec<MigrateRequest> = p
            .workspace_ids
            .iter()
            .map(|id| MigrateRequest {
                from: p.from.map(Into::into),
                confirm: p.confirm.unwrap_or(false),
                ..MigrateRequest::new(id.clone(), p.to.into())
            })
            .collect();
        if requests.is_empty() {
            return Err(tool_error(Error::InvalidInput(
                "workspace_ids is empty: name at least one workspace; nothing was sent".into(),
            )));
        }
        for r in &requests {
            r.validate().map_err(tool_error)?;
        }
        let rollout = fleet::rollout::RolloutOptions {
            parallel: p.parallel.unwrap_or(4).clamp(1, 64) as usize,
            canary: p.canary.unwrap_or(0) as usize,
            max_failures: p.max_failures.map(|k| k as usize),
        };
        rollout.check().map_err(tool_error)?;
        let wait = wait_for(p.wait_seconds)?;
        let client = self.molecule()?;
        let mut options = WaitOptions::default();
        options.poll = options.poll.with_interval_cap(self.poll_override());
        let op = client.start_migrate_rollout(requests, options, rollout);
        self.register(&op);
        let mut n = 0.0;
        let Json(answer) = self
            .answer_within(op, wait, &context, move |progress, event: &BatchEvent| {
                n += 1.0;
                progress.send(n, None, fleet::operation::OperationEvent::describe(event));
            })
            .await?;
        Ok(Json(answer.map_outcome(batch_answer)))
    }

    #[tool(
        description = "Read a Molecule workspace's latest compute-provider migration: state (snapshotting → snapshotted → \
provisioning_target → target_healthy → retiring_source → completed; or failed / rolled_back), step k of n, detail, \
whether it has ended, and what an end state means. A workspace never migrated answers migrated=false.",
        annotations(
            title = "Get workspace migration status",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_workspace_migration_status(
        &self,
        Parameters(p): Parameters<WorkspaceParams>,
    ) -> Result<Json<MigrationReport>, String> {
        let client = self.molecule()?;
        client
            .migration_status(&p.workspace_id)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        description = "Follow a Molecule workspace's compute-provider migration: waits at most wait_seconds (default 25, \
at most 300) for it to end, then answers. Sends a progress notification on each state change when the request has a \
progress token. Returns the final or latest status with an outcome: completed, ended_in_failure (with what it means \
for the user), never_migrated, or still_running (call again: fleet-mcp keeps following it, operation_id names the \
follow for get_operation). Cancelling stops the wait only; the migration goes on.",
        annotations(
            title = "Wait for workspace migration",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn wait_for_workspace_migration(
        &self,
        Parameters(p): Parameters<WaitParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<WaitResult>, String> {
        let wait = match (p.wait_seconds, p.timeout_seconds) {
            (Some(w), _) => wait_for(Some(w))?,
            (None, Some(t)) if t == 0 || t > MAX_WAIT => {
                return Err(tool_error(Error::InvalidInput(format!(
                    "timeout_seconds must be between 1 and {MAX_WAIT} (got {t}); use wait_seconds \
                     (0 to 300) and call again to keep following"
                ))));
            }
            (None, Some(t)) => Duration::from_secs(t),
            (None, None) => wait_for(None)?,
        };
        fleet::molecule::MigrateRequest::new(p.workspace_id.clone(), Provider::Aws)
            .check()
            .map_err(tool_error)?;
        let client = self.molecule()?;
        let workspace_id = p.workspace_id.trim().to_string();
        let targets = vec![workspace_id.clone()];
        // Follow the running follow of this workspace, if there is one; else start one.
        let running = self
            .registry()
            .running(OperationKind::FollowMigration, &targets)
            .and_then(|op| op.as_any().downcast_ref::<FollowOperation>().cloned());
        let op = match running {
            Some(op) => op,
            None => {
                let mut options = WaitOptions::default();
                options.poll = options.poll.with_interval_cap(self.poll_override());
                let op = client.start_follow_migration(workspace_id.clone(), options);
                self.register(&op);
                op
            }
        };
        let progress = Progress::new(context.peer.clone(), context.meta.get_progress_token());
        let started = std::time::Instant::now();
        let mut latest: Option<MigrationReport> = None;
        let mut sent = 0.0;
        let mut show = |event: MigrationEvent| {
            // Progress must increase: the step on the forward path, else half a step more.
            let value = event
                .step
                .map(f64::from)
                .filter(|s| *s > sent)
                .unwrap_or(sent + 0.5);
            sent = value;
            progress.send(
                value,
                Some(f64::from(event.total_steps)),
                format!("{} ({}s)", event.describe(), event.elapsed.as_secs()),
            );
            latest = Some(event.report);
        };
        let result = op
            .watch_until(Some(wait), context.ct.cancelled(), &mut show)
            .await;
        progress.flush().await;
        if latest.is_none() && result.is_none() {
            // Joined a follow under way: its latest state.
            latest = client.migration_status(&workspace_id).await.ok();
        }
        wait_answer(
            &op,
            &workspace_id,
            result,
            latest,
            started.elapsed().as_secs_f64(),
        )
        .map(Json)
    }
}

/// What wait_for_workspace_migration answers: the outcome once the follow `op` ended
/// (`result`), else where the migration stands (`latest`).
fn wait_answer(
    op: &FollowOperation,
    workspace_id: &str,
    result: Option<fleet::Result<MigrationReport>>,
    latest: Option<MigrationReport>,
    waited_seconds: f64,
) -> Result<WaitResult, String> {
    let snapshot = op.snapshot();
    let operation_id = snapshot.id.clone();
    let answer = |outcome, message, status| {
        Ok(WaitResult {
            outcome,
            message,
            waited_seconds,
            status,
            operation_id: operation_id.clone(),
            operation_state: snapshot.state,
        })
    };
    match result {
        None => answer(
            WaitOutcome::StillRunning,
            format!(
                "the migration of workspace {workspace_id} is still running ({}); it continues on the server \
                 and fleet-mcp keeps following it: call wait_for_workspace_migration again, or get_operation \
                 {{\"operation_id\": \"{operation_id}\"}}",
                snapshot
                    .latest_step
                    .as_deref()
                    .unwrap_or("no state seen yet")
            ),
            latest,
        ),
        Some(Ok(report)) if !report.migrated => answer(
            WaitOutcome::NeverMigrated,
            report.message.clone(),
            Some(report),
        ),
        Some(Ok(report)) => answer(WaitOutcome::Completed, report.message.clone(), Some(report)),
        Some(Err(e)) => match e.root() {
            Error::OperationFailed { message, .. } => {
                answer(WaitOutcome::EndedInFailure, message.clone(), latest)
            }
            Error::Timeout { message, .. } => answer(
                WaitOutcome::StillRunning,
                format!("{message}.{}", crate::server::next_call(&e)),
                latest,
            ),
            _ => Err(tool_error(e)),
        },
    }
}

impl FleetServer {
    /// The answer of wait_for_workspace_migration once the follow `op` has ended (for the
    /// task that ran it).
    pub(crate) fn migration_answer(
        &self,
        op: &dyn fleet::operation::AnyOperation,
    ) -> Result<rmcp::model::CallToolResult, String> {
        let Some(follow) = op.as_any().downcast_ref::<FollowOperation>() else {
            return Err(format!("operation {} is not a migration follow", op.id()));
        };
        let workspace_id = follow.targets().first().cloned().unwrap_or_default();
        // Its end state is in the outcome (a report, or the error that says what it means).
        let latest = None;
        let waited = op.snapshot().elapsed_ms as f64 / 1000.0;
        let answer = wait_answer(follow, &workspace_id, follow.try_outcome(), latest, waited)?;
        crate::task_tools::structured(serde_json::to_value(answer).unwrap_or_default())
    }
}
