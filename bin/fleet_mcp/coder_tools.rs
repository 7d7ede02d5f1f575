//! The coder tools: update, restart, list and show workspaces ("agents"), read a template
//! version. The sequences live in `fleet::coder`; these tools parse, call, and forward events
//! as progress notifications.

use fleet::coder::{
    DEFAULT_PARALLEL, DEFAULT_READY_TIMEOUT, FleetEvent, FleetOptions, Operation, ReadyOptions,
    Selection, TemplateVersionInfo, UpdateOptions, UpdateOutcome, WorkspaceFilter, WorkspaceInfo,
    WorkspaceRef, parse_template_version_id,
};
use rmcp::{
    Json, RoleServer, handler::server::wrapper::Parameters, service::RequestContext, tool,
    tool_router,
};
use serde::Deserialize;

use crate::{
    answers::{self, AgentPage, BatchOutcome, Detail},
    operation_tools::{LongAnswer, batch_answer, wait_for},
    server::{FleetServer, Progress, tool_error},
};

/// `update_agent` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct UpdateAgentParams {
    /// The workspace: its UUID, `owner/name`, or a bare name of the token's own user
    /// (names match ignoring case).
    pub agent_name: String,
    /// The template version to run (a UUID). Leave out for the template's active version.
    #[serde(default)]
    pub template_version_id: Option<String>,
    /// Stop and start even when the workspace already runs the target version.
    #[serde(default)]
    pub force: Option<bool>,
    /// Template parameter values for the start build, {name: value} (strings; numbers,
    /// booleans and lists of strings are accepted too). They win over the previous build's
    /// values, which win over the defaults.
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// After the start, wait until every agent is connected and ready (default true); a
    /// workspace whose agents fail or are not ready in time is reported unhealthy.
    #[serde(default)]
    pub wait_ready: Option<bool>,
    /// How long the agents may take to be ready after the start, in seconds (default 600).
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    /// Seconds to wait for the outcome before answering (default 25, 0 answers at once, at most
    /// 300). A stop→start takes minutes: when it is not done by then, the answer carries
    /// operation_id and the latest step, the operation goes on, and get_operation follows it.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// true: never let Coder chain the start (on_success, Coder ≥ 2.36); fleet stops, waits and
    /// starts itself. Default false: server-side where Coder supports it.
    #[serde(default)]
    pub client_driven: Option<bool>,
}

/// `update_agents` input.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct UpdateAgentsParams {
    /// The workspaces: UUIDs, `owner/name`, or bare names of the token's own user. Give these,
    /// or all_outdated, or template (exactly one of the three).
    #[serde(default)]
    pub agent_names: Option<Vec<String>>,
    /// Every outdated workspace of the token's user (with all_owners: every one it can see).
    #[serde(default)]
    pub all_outdated: Option<bool>,
    /// The outdated workspaces of this template (by name).
    #[serde(default)]
    pub template: Option<String>,
    /// With all_outdated or template: every owner's workspaces, not only the token's user's.
    #[serde(default)]
    pub all_owners: Option<bool>,
    /// The template version to run (a UUID). Leave out for each template's active version.
    #[serde(default)]
    pub template_version_id: Option<String>,
    /// How many workspaces are updated at once (1 to 64; default 4).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Stop and start even when a workspace already runs the target version.
    #[serde(default)]
    pub force: Option<bool>,
    /// Only plan: do every read and return each workspace's plan; create no build.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Update this many workspaces first (a canary) and go on only if all of them end
    /// healthy; the rest are then not_attempted.
    #[serde(default)]
    pub canary: Option<u32>,
    /// Once this many workspaces have failed or are unhealthy, start no more (those in flight
    /// finish); the rest are not_attempted. Calling update_agents again with the same
    /// arguments resumes: workspaces already current and healthy are skipped.
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// Template parameter values for every start build, {name: value}; they win over each
    /// workspace's previous values, which win over the defaults.
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// After the start, wait until every agent is connected and ready (default true); a
    /// workspace whose agents fail or are not ready in time is reported unhealthy.
    #[serde(default)]
    pub wait_ready: Option<bool>,
    /// How long the agents may take to be ready after the start, in seconds (default 600).
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    /// Seconds to wait for the outcome before answering (default 25, 0 answers at once, at most
    /// 300). A stop→start takes minutes: when it is not done by then, the answer carries
    /// operation_id and the latest step, the operation goes on, and get_operation follows it.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// true: never let Coder chain the start (on_success, Coder ≥ 2.36); fleet stops, waits and
    /// starts itself. Default false: server-side where Coder supports it.
    #[serde(default)]
    pub client_driven: Option<bool>,
}

/// `restart_agent` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RestartAgentParams {
    /// The workspace: its UUID, `owner/name`, or a bare name of the token's own user
    /// (names match ignoring case).
    pub agent_name: String,
    /// Template parameter values for the start build, {name: value} (strings; numbers,
    /// booleans and lists of strings are accepted too). They win over the previous build's
    /// values, which win over the defaults.
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// After the start, wait until every agent is connected and ready (default true); a
    /// workspace whose agents fail or are not ready in time is reported unhealthy.
    #[serde(default)]
    pub wait_ready: Option<bool>,
    /// How long the agents may take to be ready after the start, in seconds (default 600).
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    /// Seconds to wait for the outcome before answering (default 25, 0 answers at once, at most
    /// 300). A stop→start takes minutes: when it is not done by then, the answer carries
    /// operation_id and the latest step, the operation goes on, and get_operation follows it.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// true: never let Coder chain the start (on_success, Coder ≥ 2.36); fleet stops, waits and
    /// starts itself. Default false: server-side where Coder supports it.
    #[serde(default)]
    pub client_driven: Option<bool>,
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
pub struct AgentParams {
    /// The workspace: its UUID, `owner/name`, or a bare name of the token's own user
    /// (names match ignoring case).
    pub agent_name: String,
}

/// `list_agents` input.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct ListAgentsParams {
    /// true: only outdated workspaces; false: only current ones.
    #[serde(default)]
    pub outdated: Option<bool>,
    /// Only this status of the latest build (running, stopped, failed, …).
    #[serde(default)]
    pub status: Option<String>,
    /// Only this template (by name).
    #[serde(default)]
    pub template: Option<String>,
    /// Only this owner (a username, or me).
    #[serde(default)]
    pub owner: Option<String>,
    /// Only names starting with this (ignoring case).
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Workspaces per page (default 50, at most 200).
    #[serde(default)]
    pub limit: Option<u32>,
    /// next_cursor of the previous page (same filters).
    #[serde(default)]
    pub cursor: Option<String>,
    /// "full": every field of each workspace (ids, latest build); default "compact".
    #[serde(default)]
    pub detail: Option<Detail>,
}

/// `get_template_version` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TemplateVersionParams {
    /// The template version's UUID.
    pub template_version_id: String,
}

fn forward() -> impl FnMut(&Progress, &fleet::coder::CoderEvent) + Send {
    let mut n = 0.0;
    move |progress, event| {
        n += 1.0;
        progress.send(n, None, event.describe());
    }
}

/// One progress stream for a batch: `progress` counts the workspaces done (plus a fraction
/// that grows with each step, so that it always increases), `total` is their count, the
/// message is the latest step of one workspace.
fn forward_batch() -> impl FnMut(&Progress, &FleetEvent) + Send {
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
        progress.send(done as f64 + fraction, total, event.describe());
    }
}

#[tool_router(router = coder_router, vis = "pub(crate)")]
impl FleetServer {
    #[tool(
        name = "update_agent",
        description = "Update a Coder workspace (agent) to a template version and restart it: waits for a build in \
progress, stops the workspace, waits until it is stopped, starts it on the target version, and waits until it runs. \
Target: template_version_id, or the template's active version when left out. Parameter values: `parameters` \
{name: value}, else the previous build's value (not for ephemeral parameters), else the default. Before anything \
is stopped, fleet refuses (tool error, nothing changed) a version that does not exist, belongs to another template, \
is archived or still importing, a non-active version when the template requires the active one, an unknown \
parameter name, and a value Coder would refuse (type, options, min/max, regex, monotonic, immutable). If the workspace already runs the target version nothing is done (pass force=true to restart anyway). A failed \
stop is never followed by a start; a failed build returns the job's error and the last lines of its log. After the \
start it waits until every agent is connected and ready (wait_ready=false skips it): an agent whose startup script \
fails, that never connects or is not ready within ready_timeout_seconds (default 600) makes it a tool error naming \
the agent, its state and health reason; an external agent is not waited for. Takes \
minutes: waits at most wait_seconds (default 25) and then answers with the outcome, or with operation_id and the \
latest step while it goes on (follow it with get_operation). Sends progress notifications. Cancelling the request only \
stops the waiting: a stopped workspace is always started again (cancel_operation cancels gracefully). On Coder \
≥ 2.36 the stop carries on_success and Coder starts the workspace itself (path \"server-side\" in the outcome; \
client_driven=true forces the old stop-then-start path); the outcome says which path ran and why.",
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
    ) -> Result<Json<LongAnswer<UpdateOutcome>>, String> {
        let workspace = WorkspaceRef::parse(&p.agent_name).map_err(tool_error)?;
        let version = p
            .template_version_id
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(parse_template_version_id)
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
        let op = client.start_update_ready(workspace, version, options, ready);
        self.register(&op);
        self.answer_within(op, wait, &ctx, forward()).await
    }

    #[tool(
        name = "update_agents",
        description = "Update many Coder workspaces (agents) to their template's active version (or \
template_version_id), several at once. Select them with agent_names (a list), all_outdated=true (the token's user's \
outdated workspaces; all_owners=true for everyone's) or template (that template's outdated workspaces) — exactly one. \
At most `parallel` (default 4, max 64) are in flight; each one goes stop → start on its own (a failed stop never \
goes on to the start) and one failing does not stop the others. Answers counts by verdict, the workspaces that \
need attention, then one page of results (get_operation pages the rest). Verdicts: updated, \
already_current, refused (nothing changed), failed (with the reason), unhealthy (built, but an agent failed its \
startup script, never connected, reports itself unhealthy or was not ready within ready_timeout_seconds; the \
reason names the agent, its state and its health reason), left_stopped (its row's next names the update_agent or \
restart_agent call that finishes it), timed_out, interrupted, not_started, not_attempted (the rollout halted first). \
After each start fleet waits for the agents (wait_ready=false skips it; workspaces with an external agent are not \
waited for and the result says so). Rollout controls: canary=N updates N workspaces first and goes on only if all end \
healthy; max_failures=K starts no more once K failed or are unhealthy; `halt` then says why and counts the workspaces \
not attempted, and calling update_agents again with the same arguments resumes (current, healthy workspaces are \
skipped; one left stopped is started). \
dry_run=true only reads and plans each workspace (get_operation detail=\"full\" shows the plans: which builds, \
which version, which parameter values). Progress \
notifications: progress = workspaces done, total = count, message = the latest step of one workspace. Waits at most \
wait_seconds (default 25), then answers with the report, or with operation_id while it goes on (get_operation follows \
it, cancel_operation starts no more workspaces and finishes the in-flight ones).",
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
    ) -> Result<Json<LongAnswer<BatchOutcome>>, String> {
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
            .map(parse_template_version_id)
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
        let op = client.start_update_many(selection, options);
        self.register(&op);
        let Json(answer) = self.answer_within(op, wait, &ctx, forward_batch()).await?;
        Ok(Json(answer.map_outcome(batch_answer)))
    }

    #[tool(
        name = "restart_agent",
        description = "Restart a Coder workspace (agent) on the template version it runs: stop, wait until stopped, \
start with the same parameter values (or those given in `parameters` {name: value}), wait until it runs. The same \
pre-flight checks as update_agent refuse, before anything is stopped, what Coder would refuse at start. Takes \
minutes: waits at most wait_seconds (default 25), then answers with the outcome or with operation_id (follow it with \
get_operation); sends progress notifications. On Coder ≥ 2.36 Coder starts it again itself (on_success; the \
version is pinned when it is not the active one); client_driven=true forces stop-then-start from fleet.",
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
    ) -> Result<Json<LongAnswer<UpdateOutcome>>, String> {
        let workspace = WorkspaceRef::parse(&p.agent_name).map_err(tool_error)?;
        let options = UpdateOptions {
            parameters: given_parameters(p.parameters.as_ref())?,
            client_driven: p.client_driven.unwrap_or(false),
            ..self.update_options()
        };
        let client = self.coder()?;
        let wait = wait_for(p.wait_seconds)?;
        let ready = self.ready_options(p.wait_ready, p.ready_timeout_seconds)?;
        let op = client.start_restart_ready(workspace, options, ready);
        self.register(&op);
        self.answer_within(op, wait, &ctx, forward()).await
    }

    #[tool(
        name = "list_agents",
        description = "List the Coder workspaces (agents) the token can see, sorted by owner/name, one page at a \
time: full_name, status, template, version and whether each is outdated (not on its template's active version). \
Filters: outdated, status, template, owner, name_prefix. limit (default 50, at most 200); pass next_cursor as cursor \
for the next page (every workspace comes exactly once, even while states change). detail=\"full\" or show_agent \
gives whole records.",
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
    ) -> Result<Json<AgentPage>, String> {
        let limit = answers::page_limit(p.limit)?;
        let detail = p.detail.unwrap_or_default();
        let outdated = p.outdated.map(|o| o.to_string());
        let scope = answers::agent_scope([
            outdated.as_deref(),
            p.status.as_deref(),
            p.template.as_deref(),
            p.owner.as_deref(),
            p.name_prefix.as_deref(),
            Some(if detail == Detail::Full { "full" } else { "" }),
        ]);
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        // A malformed cursor is refused before anything is sent.
        answers::agent_page(&[], &scope, limit, p.cursor.as_deref(), detail)?;
        let key: Vec<String> = scope.iter().map(|s| s.to_string()).collect();
        let cursor = p.cursor.as_deref().filter(|c| !c.trim().is_empty());
        let recent = cursor.and_then(|_| self.listing().recent(&key));
        let workspaces = match recent {
            Some(w) => w,
            None => {
                let filter = WorkspaceFilter {
                    outdated: p.outdated,
                    status: p.status.clone(),
                    template: p.template.clone(),
                    owner: p.owner.clone(),
                    name_prefix: p.name_prefix.clone(),
                };
                let client = self.coder()?;
                let mut list = client
                    .list_workspaces_matching(&filter)
                    .await
                    .map_err(tool_error)?
                    .workspaces;
                answers::sort_listing(&mut list);
                let list = std::sync::Arc::new(list);
                self.listing().keep(key, list.clone());
                list
            }
        };
        answers::agent_page(&workspaces, &scope, limit, cursor, detail).map(Json)
    }

    #[tool(
        name = "show_agent",
        description = "Show one Coder workspace (agent): status, template, the version it runs, the template's \
active version, whether it is outdated, and its latest build.",
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
        description = "Show a Coder template version by UUID: name, template, import job status (usable once it \
succeeded), archived.",
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
        let id = parse_template_version_id(&p.template_version_id).map_err(tool_error)?;
        let client = self.coder()?;
        client
            .template_version(&id)
            .await
            .map(Json)
            .map_err(tool_error)
    }
}

impl FleetServer {
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
