//! The coder tools: update, restart, list and show workspaces ("agents"), read a template
//! version. The sequences live in `fleet::coder`; these tools parse, call, and forward events
//! as progress notifications.

use fleet::coder::{
    DEFAULT_PARALLEL, DEFAULT_READY_TIMEOUT, DryRun, FleetEvent, FleetOptions, FleetReport,
    Operation, ReadyOptions, Selection, TemplateVersionInfo, TemplateVersionRef, UpdateOptions,
    UpdateOutcome, WorkspaceInfo, WorkspaceList, WorkspaceRef,
};
use rmcp::{
    Json, RoleServer, handler::server::wrapper::Parameters, service::RequestContext, tool,
    tool_router,
};
use serde::{Deserialize, Serialize};

use crate::{
    operation_tools::{DEFAULT_WAIT_SECONDS, LongAnswer, wait_for},
    server::{FleetServer, Progress, tool_error},
};

/// `update_agent` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgentParams {
    /// UUID, owner/name, or your own workspace's name.
    pub agent_name: String,
    /// Version name (in the workspace's template) or UUID; default: the active one.
    #[serde(default)]
    pub template_version_id: Option<String>,
    /// Restart even if already on the target.
    #[serde(default)]
    pub force: Option<bool>,
    /// Template parameter values {name: value} (default: the previous build's).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// Wait for the agents to be ready (default true).
    #[serde(default)]
    pub wait_ready: Option<bool>,
    /// Default 600.
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    /// Max wait before answering (default 25, max 300).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// true: never Coder's on_success.
    #[serde(default)]
    pub client_driven: Option<bool>,
    /// Only the plan; nothing changed.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// `update_agents` input.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgentsParams {
    /// UUIDs, owner/name, or your own workspaces' names.
    #[serde(default)]
    pub agent_names: Option<Vec<String>>,
    /// All your outdated workspaces.
    #[serde(default)]
    pub all_outdated: Option<bool>,
    /// This template's outdated workspaces.
    #[serde(default)]
    pub template: Option<String>,
    /// Everyone's, not only yours.
    #[serde(default)]
    pub all_owners: Option<bool>,
    /// Version name (in the workspace's template) or UUID; default: the active one.
    #[serde(default)]
    pub template_version_id: Option<String>,
    /// 1-64, default 4.
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Restart even those already on the target.
    #[serde(default)]
    pub force: Option<bool>,
    /// Update this many first; go on only if all end healthy.
    #[serde(default)]
    pub canary: Option<u32>,
    /// Start no more after this many failures.
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// Template parameter values {name: value} (default: the previous build's).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// Wait for the agents to be ready (default true).
    #[serde(default)]
    pub wait_ready: Option<bool>,
    /// Default 600.
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    /// Max wait before answering (default 25, max 300).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// true: never Coder's on_success.
    #[serde(default)]
    pub client_driven: Option<bool>,
    /// Only the plan; nothing changed.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// `restart_agent` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartAgentParams {
    /// UUID, owner/name, or your own workspace's name.
    pub agent_name: String,
    /// Template parameter values {name: value} (default: the previous build's).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// Wait for the agents to be ready (default true).
    #[serde(default)]
    pub wait_ready: Option<bool>,
    /// Default 600.
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    /// Max wait before answering (default 25, max 300).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// true: never Coder's on_success.
    #[serde(default)]
    pub client_driven: Option<bool>,
    /// Only the plan; nothing changed.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// What update_agent and restart_agent answer: the plan on a dry run, else the run (its
/// outcome, or the operation to follow).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AgentAnswer {
    /// dry_run: what would be done, found with reads only (nothing was changed, no operation
    /// was started): the builds in order, the path and why, each parameter value and its source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
    /// The run, when it was not a dry run.
    #[serde(flatten)]
    pub run: Option<LongAnswer<UpdateOutcome>>,
}

/// The answer of a run (not a dry run).
fn ran(Json(run): Json<LongAnswer<UpdateOutcome>>) -> Json<AgentAnswer> {
    Json(AgentAnswer {
        dry_run: None,
        run: Some(run),
    })
}

/// The caller's parameter values; invalid input is a tool error (nothing sent).
fn given_parameters(
    p: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    match p {
        Some(map) => fleet::coder::parameters_from_json(map).map_err(tool_error),
        None => Ok(Default::default()),
    }
}

/// `show_agent` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentParams {
    /// UUID, owner/name, or your own workspace's name.
    pub agent_name: String,
}

/// `list_agents` input.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListAgentsParams {
    /// Only the outdated ones.
    #[serde(default)]
    pub outdated: Option<bool>,
}

/// `get_template_version` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateVersionParams {
    /// The version's UUID, or its name with `template`.
    pub template_version_id: String,
    /// The template (name or UUID) a version name belongs to.
    #[serde(default)]
    pub template: Option<String>,
}

fn forward() -> impl FnMut(&Progress, &fleet::coder::CoderEvent) + Send {
    use fleet::coder::CoderEvent;
    let mut n = 0.0;
    move |progress, event| {
        n += 1.0;
        // Log lines are coalesced (the latest, at most a few a second); steps all go out.
        if matches!(
            event,
            CoderEvent::BuildLog { .. } | CoderEvent::LogLinesDropped { .. }
        ) {
            progress.send_line(n, None, event.describe());
        } else {
            progress.send(n, None, event.describe());
        }
    }
}

/// One progress stream for a batch: `progress` counts the workspaces done (plus a fraction
/// that grows with each step, so that it always increases), `total` is their count, the
/// message is the latest step of one workspace.
fn forward_batch() -> impl FnMut(&Progress, &FleetEvent) + Send {
    use fleet::coder::CoderEvent;
    let mut total = None;
    let mut done = 0usize;
    let mut steps = 0u32;
    move |progress, event| {
        match event {
            FleetEvent::Selected { workspaces } => total = Some(workspaces.len() as f64),
            FleetEvent::Finished { done: n, .. } => {
                done = *n;
                steps = 0;
            }
            _ => steps += 1,
        }
        let fraction = f64::from(steps) / (f64::from(steps) + 1.0);
        // Log lines are coalesced (the latest, at most a few a second); steps all go out.
        if matches!(
            event,
            FleetEvent::Step {
                step: CoderEvent::BuildLog { .. } | CoderEvent::LogLinesDropped { .. },
                ..
            } | FleetEvent::LogLinesDropped { .. }
        ) {
            progress.send_line(done as f64 + fraction, total, event.describe());
        } else {
            progress.send(done as f64 + fraction, total, event.describe());
        }
    }
}

#[tool_router(router = coder_router, vis = "pub(crate)")]
impl FleetServer {
    #[tool(
        name = "update_agent",
        description = "Update one Coder workspace to a template version (default: the active one) and restart it. Destructive (stops it); a bad version or parameter value is refused before anything stops. dry_run=true: the plan only. Answers within wait_seconds with the outcome, else an operation_id for get_operation.",
        annotations(
            title = "Update a Coder workspace to a template version",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn update_agent(
        &self,
        Parameters(p): Parameters<UpdateAgentParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<AgentAnswer>, String> {
        let workspace = WorkspaceRef::parse(&p.agent_name).map_err(tool_error)?;
        let version = p
            .template_version_id
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(TemplateVersionRef::parse)
            .transpose()
            .map_err(tool_error)?;
        let client = self.coder()?;
        let options = UpdateOptions {
            force: p.force.unwrap_or(false),
            parameters: given_parameters(p.parameters.as_ref())?,
            client_driven: p.client_driven.unwrap_or(false),
            ..self.update_options()
        };
        let wait = wait_for(p.wait_seconds)?;
        let ready = self.ready_options(p.wait_ready, p.ready_timeout_seconds)?;
        if p.dry_run.unwrap_or(false) {
            return self
                .plan_only(&workspace, version, false, &options, wait, &ctx)
                .await;
        }
        let slot = self.reserve_operation()?;
        let op = client.start_update_ready(workspace, version, options, ready);
        self.register(slot, &op);
        self.answer_within(op, wait, &ctx, forward()).await.map(ran)
    }

    #[tool(
        name = "update_agents",
        description = "Update many Coder workspaces to the active version (or template_version_id), `parallel` at once; choose them with one of agent_names, all_outdated, template. Destructive. A verdict per workspace. canary=N goes on only if the first N end healthy; max_failures=K starts no more after K failures; the same call again resumes. dry_run=true: each plan only. Answers within wait_seconds, else an operation_id for get_operation.",
        annotations(
            title = "Update many Coder workspaces",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn update_agents(
        &self,
        Parameters(p): Parameters<UpdateAgentsParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<LongAnswer<FleetReport>>, String> {
        let names = p
            .agent_names
            .iter()
            .flatten()
            .map(|n| WorkspaceRef::parse(n))
            .collect::<fleet::Result<Vec<_>>>()
            .map_err(tool_error)?;
        let selection = Selection::choose(
            names,
            p.all_outdated.unwrap_or(false),
            p.template.clone(),
            p.all_owners.unwrap_or(false),
        )
        .map_err(tool_error)?;
        let version = p
            .template_version_id
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(TemplateVersionRef::parse)
            .transpose()
            .map_err(tool_error)?;
        let parallel = p.parallel.unwrap_or(DEFAULT_PARALLEL as u32) as usize;
        let client = self.coder()?;
        let options = FleetOptions {
            operation: Operation::Update {
                template_version: version,
            },
            parallel,
            update: UpdateOptions {
                force: p.force.unwrap_or(false),
                parameters: given_parameters(p.parameters.as_ref())?,
                client_driven: p.client_driven.unwrap_or(false),
                ..self.update_options()
            },
            dry_run: p.dry_run.unwrap_or(false),
            canary: p.canary.unwrap_or(0) as usize,
            max_failures: p.max_failures.map(|k| k as usize),
            ready: self.ready_options(p.wait_ready, p.ready_timeout_seconds)?,
        };
        let wait = wait_for(p.wait_seconds)?;
        options.check().map_err(tool_error)?;
        let slot = self.reserve_operation()?;
        let op = client.start_update_many(selection, options);
        self.register(slot, &op);
        self.answer_within(op, wait, &ctx, forward_batch()).await
    }

    #[tool(
        name = "restart_agent",
        description = "Restart one Coder workspace on the version it runs. Destructive (stops it). dry_run=true: the plan only. Answers within wait_seconds with the outcome, else an operation_id for get_operation.",
        annotations(
            title = "Restart a Coder workspace",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn restart_agent(
        &self,
        Parameters(p): Parameters<RestartAgentParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<AgentAnswer>, String> {
        let workspace = WorkspaceRef::parse(&p.agent_name).map_err(tool_error)?;
        let options = UpdateOptions {
            parameters: given_parameters(p.parameters.as_ref())?,
            client_driven: p.client_driven.unwrap_or(false),
            ..self.update_options()
        };
        let client = self.coder()?;
        let wait = wait_for(p.wait_seconds)?;
        let ready = self.ready_options(p.wait_ready, p.ready_timeout_seconds)?;
        if p.dry_run.unwrap_or(false) {
            return self
                .plan_only(&workspace, None, true, &options, wait, &ctx)
                .await;
        }
        let slot = self.reserve_operation()?;
        let op = client.start_restart_ready(workspace, options, ready);
        self.register(slot, &op);
        self.answer_within(op, wait, &ctx, forward()).await.map(ran)
    }

    #[tool(
        name = "list_agents",
        description = "List the Coder workspaces the token can see: status, template, version, outdated (not on the template's active version).",
        annotations(
            title = "List Coder workspaces",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_agents(
        &self,
        Parameters(p): Parameters<ListAgentsParams>,
    ) -> Result<Json<WorkspaceList>, String> {
        let client = self.coder()?;
        client
            .list_workspaces(p.outdated.unwrap_or(false))
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "show_agent",
        description = "Show one Coder workspace: status, template, the version it runs and the active one, outdated, latest build.",
        annotations(
            title = "Show a Coder workspace",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn show_agent(
        &self,
        Parameters(p): Parameters<AgentParams>,
    ) -> Result<Json<WorkspaceInfo>, String> {
        let workspace = WorkspaceRef::parse(&p.agent_name).map_err(tool_error)?;
        let client = self.coder()?;
        client
            .show_workspace(&workspace)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "get_template_version",
        description = "Show a Coder template version (UUID, or name with template): name, template, import job status (usable once succeeded), archived.",
        annotations(
            title = "Show a Coder template version",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_template_version(
        &self,
        Parameters(p): Parameters<TemplateVersionParams>,
    ) -> Result<Json<TemplateVersionInfo>, String> {
        let version = TemplateVersionRef::parse(&p.template_version_id).map_err(tool_error)?;
        let client = self.coder()?;
        client
            .find_template_version(p.template.as_deref(), &version)
            .await
            .map(Json)
            .map_err(tool_error)
    }
}

impl FleetServer {
    /// A dry run of update_agent or restart_agent: the SDK's plan (the CLI's `--dry-run`),
    /// reads only. It waits for a build already in progress, at most `wait` (the default
    /// wait when 0); past that, or when the request is cancelled, it answers a tool error and
    /// nothing is left behind.
    async fn plan_only(
        &self,
        workspace: &WorkspaceRef,
        version: Option<TemplateVersionRef>,
        restart: bool,
        options: &UpdateOptions,
        wait: std::time::Duration,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Json<AgentAnswer>, String> {
        let client = self.coder()?;
        let limit = if wait.is_zero() {
            std::time::Duration::from_secs(DEFAULT_WAIT_SECONDS)
        } else {
            wait
        };
        let progress = Progress::new(ctx.peer.clone(), ctx.meta.get_progress_token());
        let mut to_progress = forward();
        let mut on_event = |e| to_progress(&progress, &e);
        let cancel = tokio_util::sync::CancellationToken::new();
        let planned = tokio::select! {
            plan = client.dry_run(workspace, version, restart, options, &cancel, &mut on_event) => {
                Some(plan)
            }
            _ = tokio::time::sleep(limit) => None,
            _ = ctx.ct.cancelled() => None,
        };
        progress.flush().await;
        match planned {
            Some(plan) => Ok(Json(AgentAnswer {
                dry_run: Some(plan.map_err(tool_error)?),
                run: None,
            })),
            None => Err(tool_error(fleet::Error::Timeout {
                message: format!(
                    "the dry run did not finish within {} s (it waits for a build already in \
                     progress on the workspace); nothing was changed. Call show_agent to see \
                     the build, or call again with a longer wait_seconds",
                    limit.as_secs()
                ),
                waited: limit,
                last_state: None,
            })),
        }
    }

    /// How the agents are waited for after a start: `None` with wait_ready=false.
    fn ready_options(
        &self,
        wait_ready: Option<bool>,
        timeout_seconds: Option<u64>,
    ) -> Result<Option<ReadyOptions>, String> {
        if !wait_ready.unwrap_or(true) {
            return Ok(None);
        }
        let timeout = match timeout_seconds {
            None => DEFAULT_READY_TIMEOUT,
            Some(0) => {
                return Err(tool_error(fleet::Error::InvalidInput(
                    "ready_timeout_seconds must be at least 1 (or wait_ready=false not to wait); \
                     nothing was sent"
                        .into(),
                )));
            }
            Some(s) => std::time::Duration::from_secs(s),
        };
        Ok(Some(ReadyOptions {
            timeout,
            poll: self.update_options().poll,
        }))
    }

    /// The default deadlines, with the poller paced when something sets it (the simulator).
    fn update_options(&self) -> UpdateOptions {
        let mut options = UpdateOptions::default();
        options.poll = options.poll.with_interval_cap(self.poll_override());
        options
    }
}
