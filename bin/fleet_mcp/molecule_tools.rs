//! The molecule tools: start a compute-provider migration, read it, follow it.

use std::time::Duration;

use fleet::{
    Error, ReadBack,
    molecule::{
        MIGRATION_TIMEOUT_RANGE, MigrateRequest, MigrationPlan, MigrationReport, Provider,
        StartedMigration, WaitOptions,
    },
};
use rmcp::{
    Json, RoleServer, handler::server::wrapper::Parameters, service::RequestContext, tool,
    tool_router,
};

use fleet::{
    molecule::{BatchEvent, FollowOperation, MigrationEvent, PlanEvent},
    operation::{OperationKind, OperationState},
};

use crate::{
    answers::BatchOutcome,
    operation_tools::{LongAnswer, batch_answer, wait_for},
    server::{FleetServer, Progress, input_schema, output_schema, tool_error},
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
#[serde(deny_unknown_fields)]
pub struct MigrateParams {
    pub workspace_id: String,
    pub to: ProviderArg,
    /// Source provider (default: the current one).
    #[serde(default)]
    pub from: Option<ProviderArg>,
    #[serde(default)]
    pub confirm: Option<bool>,
    /// Hetzner/gcp source's instance id (default: from the tenant API).
    #[serde(default)]
    pub from_instance_id: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub runtime: Option<String>,
    /// Target env {name: value}.
    #[serde(default)]
    pub env: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// Input of `migrate_workspaces`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateManyParams {
    pub workspace_ids: Vec<String>,
    pub to: ProviderArg,
    /// Source of all (default: each one's current).
    #[serde(default)]
    pub from: Option<ProviderArg>,
    #[serde(default)]
    pub confirm: Option<bool>,
    #[serde(default)]
    pub canary: Option<u32>,
    #[serde(default)]
    pub max_failures: Option<u32>,
    #[serde(default)]
    pub parallel: Option<u32>,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// What migrate_workspace_provider answers: the plan on a dry run, else what the control
/// plane answered.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct MigrateAnswer {
    /// dry_run: what would be sent, found with reads only (nothing was started).
    #[serde(skip_serializing_if = "Option::is_none")]
    // Typed in Rust; in the output schema an object (its fields are the CLI's --dry-run plan):
    // the full schema of a plan tripled the size of the tool list.
    #[schemars(with = "Option<serde_json::Value>")]
    pub dry_run: Option<MigrationPlan>,
    /// The migration started, when it was not a dry run.
    #[serde(flatten)]
    pub started: Option<StartedMigration>,
}

/// Input of the tools that take only a workspace.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceParams {
    pub workspace_id: String,
}

/// Input of `wait_for_workspace_migration`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    pub workspace_id: String,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// Older name of wait_seconds (1-3600).
    #[serde(default)]
    #[schemars(range(
        min = MIGRATION_TIMEOUT_RANGE.start().as_secs(),
        max = MIGRATION_TIMEOUT_RANGE.end().as_secs()
    ))]
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

#[tool_router(router = molecule_router, vis = "pub(crate)")]
impl FleetServer {
    #[tool(
        description = "Start migrating one Molecule workspace to another cloud (snapshot, provision, cut over, retire the source; 15-20 min). Destructive: needs confirm=true (ask the user first). dry_run=true: the plan only, no confirm needed. Source and its instance id default to the tenant API's. Answers at once; follow with wait_for_workspace_migration.",
        input_schema = input_schema::<MigrateParams>(),
        output_schema = output_schema::<MigrateAnswer>(),
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
    ) -> Result<Json<MigrateAnswer>, String> {
        let dry_run = p.dry_run.unwrap_or(false);
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
        if dry_run {
            // The CLI's --dry-run: reads only, confirm not needed, never a POST.
            let client = self.molecule()?;
            let plan = client.plan_migration(&request).await.map_err(tool_error)?;
            return Ok(Json(MigrateAnswer {
                dry_run: Some(plan),
                started: None,
            }));
        }
        // Input and confirmation are checked before the configuration: a model learns what
        // is wrong with its call even on an unconfigured server. Nothing is sent.
        request.validate().map_err(tool_error)?;
        let client = self.molecule()?;
        client
            .migrate_provider(&request)
            .await
            .map(|started| {
                Json(MigrateAnswer {
                    dry_run: None,
                    started: Some(started),
                })
            })
            .map_err(|e| tool_error(with_next_call(e, request.workspace_id.trim())))
    }

    #[tool(
        description = "Migrate several Molecule workspaces to another cloud as a rollout, `parallel` at once. Destructive: needs confirm=true (ask the user first). canary=N goes on once the first N completed; max_failures=K starts no more after K failures; calling again resumes. dry_run=true: each plan only. Answers within wait_seconds (else an operation_id): counts, the workspaces needing attention, a page of rows (get_operation pages the rest).",
        input_schema = input_schema::<MigrateManyParams>(),
        output_schema = output_schema::<LongAnswer<BatchOutcome>>(),
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
        let dry_run = p.dry_run.unwrap_or(false);
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
            if dry_run {
                r.check().map_err(tool_error)?;
            } else {
                r.validate().map_err(tool_error)?;
            }
        }
        // Out of range is refused (below), never clamped.
        let rollout = fleet::rollout::RolloutOptions {
            parallel: p
                .parallel
                .map_or(fleet::rollout::RolloutOptions::DEFAULT_PARALLEL, |n| {
                    n as usize
                }),
            canary: p.canary.unwrap_or(0) as usize,
            max_failures: p.max_failures.map(|k| k as usize),
        };
        rollout.check().map_err(tool_error)?;
        let wait = wait_for(p.wait_seconds)?;
        let client = self.molecule()?;
        if dry_run {
            // The CLI's --dry-run as an operation: each plan or its refusal (reads only, never
            // a POST), `parallel` at once, in the order given; answered as a batch's summary
            // (get_operation pages the rest; detail="full": the plans).
            for r in &requests {
                client.check_plan_request(r).map_err(tool_error)?;
            }
            let slot = self.reserve_operation()?;
            let op = client.start_plan_migrations(requests, rollout);
            self.register(slot, &op);
            let Json(answer) = self
                .answer_within(op, wait, &context, move |progress, event: &PlanEvent| {
                    progress.send(
                        event.done as f64,
                        Some(event.total as f64),
                        fleet::operation::OperationEvent::describe(event),
                    );
                })
                .await?;
            return Ok(Json(answer.map_outcome(batch_answer)));
        }
        for r in &requests {
            client.check_request(r).map_err(tool_error)?;
        }
        let mut options = WaitOptions::default();
        options.poll = options.poll.with_interval_cap(self.poll_override());
        let slot = self.reserve_operation()?;
        let op = client.start_migrate_rollout(requests, options, rollout);
        self.register(slot, &op);
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
        description = "Read a Molecule workspace's latest migration: state, step k of n, detail, whether it ended and what that means (migrated=false: never migrated).",
        input_schema = input_schema::<WorkspaceParams>(),
        output_schema = output_schema::<MigrationReport>(),
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
        description = "Follow a Molecule workspace's migration until it ends or wait_seconds pass, then answer its status: completed, ended_in_failure, never_migrated or still_running (call again). Cancelling stops only the wait.",
        input_schema = input_schema::<WaitParams>(),
        output_schema = output_schema::<WaitResult>(),
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
            (None, Some(t)) => {
                WaitOptions::check_timeout(Duration::from_secs(t)).map_err(tool_error)?
            }
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
            .running_of(self.session(), OperationKind::FollowMigration, &targets)
            .and_then(|op| op.as_any().downcast_ref::<FollowOperation>().cloned());
        let op = match running {
            Some(op) => op,
            None => {
                let mut options = WaitOptions::default();
                options.poll = options.poll.with_interval_cap(self.poll_override());
                let slot = self.reserve_operation()?;
                let op = client.start_follow_migration(workspace_id.clone(), options);
                self.register(slot, &op);
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
