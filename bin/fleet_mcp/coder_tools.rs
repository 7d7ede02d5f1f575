//! The coder tools: update, restart, list and show workspaces ("agents"), read a template
//! version. The sequences live in `fleet::coder`; these tools parse, call, and forward events
//! as progress notifications.

use fleet::coder::{
    BatchAction, BusyRules, DEFAULT_CANARY, DEFAULT_PARALLEL, DEFAULT_READY_TIMEOUT, DryRun,
    FleetEvent, FleetOptions, PromoteEvent, PromoteOptions, PromoteReport, PromoteRequest,
    ReadyOptions, Selection, TemplateOverview, TemplateVersionInfo, TemplateVersionRef,
    UpdateOptions, UpdateOutcome, WorkspaceFilter, WorkspaceInfo, WorkspaceRef,
};
use rmcp::{
    Json, RoleServer, handler::server::wrapper::Parameters, service::RequestContext, tool,
    tool_router,
};
use serde::{Deserialize, Serialize};

use crate::{
    answers::{self, AgentPage, BatchOutcome, Detail, ResultRow},
    operation_tools::{DEFAULT_WAIT_SECONDS, LongAnswer, batch_answer, wait_for},
    server::{FleetServer, Progress, input_schema, output_schema, tool_error},
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
    /// Parameter values {name: value} (default: the previous build's).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub wait_ready: Option<bool>,
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    #[serde(default)]
    pub client_driven: Option<bool>,
    #[serde(default)]
    pub idle_for_seconds: Option<u64>,
    #[serde(default)]
    pub include_busy: Option<bool>,
    #[serde(default)]
    pub include_prebuilds: Option<bool>,
    #[serde(default)]
    pub wait_for_idle_seconds: Option<u64>,
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
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Restart even those already on the target.
    #[serde(default)]
    pub force: Option<bool>,
    #[serde(default)]
    pub canary: Option<u32>,
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// Parameter values {name: value} (default: the previous build's).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub wait_ready: Option<bool>,
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    #[serde(default)]
    pub client_driven: Option<bool>,
    #[serde(default)]
    pub idle_for_seconds: Option<u64>,
    #[serde(default)]
    pub include_busy: Option<bool>,
    #[serde(default)]
    pub include_prebuilds: Option<bool>,
    #[serde(default)]
    pub wait_for_idle_seconds: Option<u64>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// `restart_agent` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartAgentParams {
    /// UUID, owner/name, or your own workspace's name.
    pub agent_name: String,
    /// Parameter values {name: value} (default: the previous build's).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub wait_ready: Option<bool>,
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    #[serde(default)]
    pub client_driven: Option<bool>,
    #[serde(default)]
    pub idle_for_seconds: Option<u64>,
    #[serde(default)]
    pub include_busy: Option<bool>,
    #[serde(default)]
    pub include_prebuilds: Option<bool>,
    #[serde(default)]
    pub wait_for_idle_seconds: Option<u64>,
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
    // Typed in Rust; in the output schema an object (its fields are the CLI's --dry-run plan):
    // the full schema of a plan tripled the size of the tool list.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
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
/// The busy rules from a tool's four arguments.
fn busy_rules(
    idle_for_seconds: Option<u64>,
    include_busy: Option<bool>,
    include_prebuilds: Option<bool>,
    wait_for_idle_seconds: Option<u64>,
) -> BusyRules {
    BusyRules {
        idle_for: idle_for_seconds
            .map(std::time::Duration::from_secs)
            .unwrap_or(fleet::coder::DEFAULT_IDLE_FOR),
        include_busy: include_busy.unwrap_or(false),
        include_prebuilds: include_prebuilds.unwrap_or(false),
        wait_for_idle: wait_for_idle_seconds
            .filter(|s| *s > 0)
            .map(std::time::Duration::from_secs),
    }
}

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
    #[serde(default)]
    pub name_prefix: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub detail: Option<Detail>,
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

/// `get_template` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateParams {
    pub template: String,
}

/// The newest versions `get_template` shows.
const NEWEST: usize = 10;
/// The longest name (template, version, workspace) an answer shows, in characters.
const NAME_MAX: usize = 120;

/// What `get_template` answers: the active version and the newest ones, by name.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TemplateAnswer {
    pub template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_version: Option<String>,
    pub require_active_version: bool,
    /// Archived ones included.
    pub versions_total: usize,
    /// Newest first.
    pub newest_versions: Vec<VersionLine>,
}

/// One version, compact.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct VersionLine {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub active: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

fn template_answer(o: TemplateOverview) -> TemplateAnswer {
    TemplateAnswer {
        template: answers::clip(&o.template, NAME_MAX),
        active_version: o
            .active_version
            .map(|v| answers::clip(&v.label(), NAME_MAX)),
        require_active_version: o.require_active_version,
        versions_total: o.versions_total,
        newest_versions: o
            .newest_versions
            .into_iter()
            .map(|v| VersionLine {
                name: answers::clip(&v.name, NAME_MAX),
                created_at: v.created_at.map(|c| answers::clip(&c, 40)),
                active: v.active,
                archived: v.archived,
            })
            .collect(),
    }
}

/// `promote_template_version` input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteParams {
    pub template: String,
    pub version: String,
    #[serde(default)]
    pub confirm: Option<bool>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Default 1.
    #[serde(default)]
    pub canary: Option<u32>,
    #[serde(default)]
    pub parallel: Option<u32>,
    #[serde(default)]
    pub max_failures: Option<u32>,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// The rows that need attention a phase of a promotion shows; the others are counted.
const PHASE_ATTENTION: usize = 5;
/// The names a promotion's answer lists (canaries, workspaces moved).
const NAMES_SHOWN: usize = 10;

/// One phase of a promotion (canary, rollout, rollback), compact.
#[derive(Debug, Serialize)]
pub struct PhaseAnswer {
    /// Workspaces by verdict.
    pub counts: std::collections::BTreeMap<String, usize>,
    /// The first ones that need attention, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<ResultRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt: Option<answers::HaltSummary>,
}

/// What a promotion answers once done (get_operation too): how it ended, the plan in names
/// and counts, each phase's counts and the workspaces that need attention.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PromoteAnswer {
    /// planned, refused, canary_failed, promotion_failed, promoted,
    /// interrupted_before_promotion.
    pub outcome: String,
    /// True once the version is the template's active one.
    pub promoted: bool,
    pub dry_run: bool,
    pub template: String,
    pub version: String,
    /// The active version before (what a rollback restores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_before: Option<String>,
    /// The first canaries.
    pub canaries: Vec<String>,
    /// Running workspaces passed over as canaries: someone is at work in them.
    pub passed_over: usize,
    /// Workspaces updated after the promotion.
    pub rest: usize,
    /// Whether the session's roles grant making a version active: granted, unconfirmed (no
    /// site role does: Coder answers 403 after the canaries unless an organization role
    /// does), unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    // The phases and rows are plain objects in the output schema (their rows are
    // update_agents'): their full schemas would grow the tool list by a kilobyte. Objects, not
    // `true` (any value): MCP clients refuse a boolean schema for a property.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub refusals: Vec<ResultRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub canary_phase: Option<PhaseAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub rollout: Option<PhaseAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub rollback: Option<PhaseAnswer>,
    /// The first workspaces this run moved to the version and left there (not rolled back):
    /// what a rollback takes back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<String>,
    pub moved_count: usize,
    pub message: String,
    pub worst: String,
    pub elapsed_ms: u64,
}

fn names_of(list: Option<&serde_json::Value>, key: &str) -> Vec<String> {
    list.and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|w| w.get(key).and_then(serde_json::Value::as_str))
                .take(NAMES_SHOWN)
                .map(|n| answers::clip(n, NAME_MAX))
                .collect()
        })
        .unwrap_or_default()
}

fn count_of(list: Option<&serde_json::Value>) -> usize {
    list.and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len)
}

fn text_at(v: &serde_json::Value, path: &[&str], max: usize) -> Option<String> {
    let mut at = v;
    for key in path {
        at = at.get(key)?;
    }
    match at {
        serde_json::Value::String(s) => Some(answers::clip(s, max)),
        serde_json::Value::Null => None,
        other => Some(answers::clip(&other.to_string(), max)),
    }
}

/// A phase's batch report, compact: counts, the first results that need attention, the halt.
fn phase_answer(operation_id: &str, report: &serde_json::Value) -> Option<PhaseAnswer> {
    if report.is_null() {
        return None;
    }
    let b = answers::batch_outcome(operation_id, report, 0, 0, 1_200);
    Some(PhaseAnswer {
        counts: b.counts,
        attention: b.attention.into_iter().take(PHASE_ATTENTION).collect(),
        halt: b.halt,
    })
}

/// A promotion's report (typed, or as get_operation holds it: JSON), compact and bounded
/// whatever the fleet's size.
pub(crate) fn promote_outcome(operation_id: &str, report: &serde_json::Value) -> PromoteAnswer {
    let plan = &report["plan"];
    let version_label = |v: &serde_json::Value| {
        text_at(v, &["name"], NAME_MAX).or_else(|| text_at(v, &["id"], NAME_MAX))
    };
    let moved: Vec<&serde_json::Value> = report["moved"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|w| w["rolled_back"] != serde_json::Value::Bool(true))
                .collect()
        })
        .unwrap_or_default();
    let refusals = answers::batch_outcome(
        operation_id,
        &serde_json::json!({ "results": plan["refusals"] }),
        0,
        0,
        1_200,
    )
    .attention
    .into_iter()
    .take(PHASE_ATTENTION)
    .collect();
    PromoteAnswer {
        outcome: text_at(report, &["outcome"], 40).unwrap_or_default(),
        promoted: report["promoted"].as_bool().unwrap_or(false),
        dry_run: report["dry_run"].as_bool().unwrap_or(false),
        template: text_at(plan, &["template"], NAME_MAX).unwrap_or_default(),
        version: version_label(&plan["version"]).unwrap_or_default(),
        active_before: version_label(&plan["active_version"]),
        canaries: names_of(plan.get("canaries"), "workspace"),
        passed_over: count_of(plan.get("passed_over")),
        rest: count_of(plan.get("rest")),
        permission: text_at(plan, &["permission", "kind"], 40),
        refusals,
        canary_phase: phase_answer(operation_id, &report["canary"]),
        promotion_error: text_at(report, &["promotion_error"], 600),
        rollout: phase_answer(operation_id, &report["rollout"]),
        rollback: phase_answer(operation_id, &report["rollback"]),
        moved: moved
            .iter()
            .filter_map(|w| w["workspace"].as_str())
            .take(NAMES_SHOWN)
            .map(|n| answers::clip(n, NAME_MAX))
            .collect(),
        moved_count: moved.len(),
        message: text_at(report, &["message"], 1_500).unwrap_or_default(),
        worst: text_at(report, &["worst"], 40).unwrap_or_default(),
        elapsed_ms: report["elapsed_ms"].as_u64().unwrap_or(0),
    }
}

fn promote_answer(operation_id: &str, report: PromoteReport) -> PromoteAnswer {
    promote_outcome(
        operation_id,
        &serde_json::to_value(&report).unwrap_or(serde_json::Value::Null),
    )
}

/// A promotion's events as progress: every step; log lines and the pre-flight's count
/// coalesced.
fn forward_promote() -> impl FnMut(&Progress, &PromoteEvent) + Send {
    use fleet::coder::CoderEvent;
    let mut n = 0.0;
    move |progress, event| {
        n += 1.0;
        let line = matches!(
            event,
            PromoteEvent::LogLinesDropped { .. }
                | PromoteEvent::PreflightChecked { .. }
                | PromoteEvent::Workspace {
                    step: FleetEvent::Step {
                        step: CoderEvent::BuildLog { .. } | CoderEvent::LogLinesDropped { .. },
                        ..
                    } | FleetEvent::LogLinesDropped { .. },
                    ..
                }
        );
        if line {
            progress.send_line(n, None, event.describe());
        } else {
            progress.send(n, None, event.describe());
        }
    }
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
        description = "Update one Coder workspace to a template version and restart it. Destructive; bad input is refused before anything stops; a busy one is skipped. dry_run=true: the plan only. Answers within wait_seconds, else an operation_id.",
        input_schema = input_schema::<UpdateAgentParams>(),
        output_schema = output_schema::<AgentAnswer>(),
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
            busy: busy_rules(
                p.idle_for_seconds,
                p.include_busy,
                p.include_prebuilds,
                p.wait_for_idle_seconds,
            ),
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
        description = "Update many Coder workspaces to the active version (or template_version_id), `parallel` at once; choose them with one of agent_names, all_outdated, template. Destructive. Busy ones are skipped. canary=N goes on only if the first N end healthy; max_failures=K starts no more after K failures; the same call again resumes. Answers within wait_seconds (else an operation_id): counts by verdict, the rows needing attention, a page of rows (get_operation pages the rest; detail=\"full\": plans). dry_run=true: plans only.",
        input_schema = input_schema::<UpdateAgentsParams>(),
        output_schema = output_schema::<LongAnswer<BatchOutcome>>(),
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
            .map(TemplateVersionRef::parse)
            .transpose()
            .map_err(tool_error)?;
        let parallel = p.parallel.unwrap_or(DEFAULT_PARALLEL as u32) as usize;
        let client = self.coder()?;
        let options = FleetOptions {
            action: BatchAction::Update {
                template_version: version,
            },
            parallel,
            update: UpdateOptions {
                force: p.force.unwrap_or(false),
                parameters: given_parameters(p.parameters.as_ref())?,
                client_driven: p.client_driven.unwrap_or(false),
                busy: busy_rules(
                    p.idle_for_seconds,
                    p.include_busy,
                    p.include_prebuilds,
                    p.wait_for_idle_seconds,
                ),
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
        let Json(answer) = self.answer_within(op, wait, &ctx, forward_batch()).await?;
        Ok(Json(answer.map_outcome(batch_answer)))
    }

    #[tool(
        name = "restart_agent",
        description = "Restart one Coder workspace on the version it runs. Destructive; a busy one is skipped. dry_run=true: the plan only. Answers within wait_seconds, else an operation_id.",
        input_schema = input_schema::<RestartAgentParams>(),
        output_schema = output_schema::<AgentAnswer>(),
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
            busy: busy_rules(
                p.idle_for_seconds,
                p.include_busy,
                p.include_prebuilds,
                p.wait_for_idle_seconds,
            ),
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
        description = "List Coder workspaces, sorted by owner/name, a page at a time: full_name, status, template, version, outdated. Filters: outdated, status, template, owner, name_prefix. limit (default 50, max 200); pass next_cursor as cursor. detail=\"full\" or show_agent: whole records.",
        input_schema = input_schema::<ListAgentsParams>(),
        output_schema = output_schema::<AgentPage>(),
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
                // An empty argument is one not given (agents send "" for "any").
                let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
                let filter = WorkspaceFilter {
                    outdated: p.outdated,
                    status: given(&p.status),
                    template: given(&p.template),
                    owner: given(&p.owner),
                    name_prefix: given(&p.name_prefix),
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
        description = "Show one Coder workspace: status, template, its version and the active one, latest build.",
        input_schema = input_schema::<AgentParams>(),
        output_schema = output_schema::<WorkspaceInfo>(),
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
        description = "Show a Coder template version: name, template, import job status (usable once succeeded), archived.",
        input_schema = input_schema::<TemplateVersionParams>(),
        output_schema = output_schema::<TemplateVersionInfo>(),
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

    #[tool(
        name = "get_template",
        description = "Show a Coder template (name or UUID): its active version and 10 newest versions.",
        input_schema = input_schema::<TemplateParams>(),
        output_schema = output_schema::<TemplateAnswer>(),
        annotations(
            title = "Show a Coder template",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_template(
        &self,
        Parameters(p): Parameters<TemplateParams>,
    ) -> Result<Json<TemplateAnswer>, String> {
        let template = p.template.trim();
        if template.is_empty() {
            return Err(
                "invalid_input: template is empty: give a template's name or UUID; nothing was \
                 sent"
                    .to_string(),
            );
        }
        let client = self.coder()?;
        client
            .template_overview(template, NEWEST)
            .await
            .map(|o| Json(template_answer(o)))
            .map_err(tool_error)
    }

    #[tool(
        name = "promote_template_version",
        description = "Promote a Coder template version: update `canary` idle running workspaces to it; only if all end healthy, make it active and update the rest; a failed canary is rolled back. Destructive: needs confirm=true. dry_run=true: the plan only. Answers within wait_seconds, else an operation_id.",
        input_schema = input_schema::<PromoteParams>(),
        output_schema = output_schema::<LongAnswer<PromoteAnswer>>(),
        annotations(
            title = "Promote a Coder template version with canaries",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn promote_template_version(
        &self,
        Parameters(p): Parameters<PromoteParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<LongAnswer<PromoteAnswer>>, String> {
        let template = p.template.trim().to_string();
        if template.is_empty() {
            return Err(
                "invalid_input: template is empty: give a template's name or UUID; nothing was \
                 sent"
                    .to_string(),
            );
        }
        let version = TemplateVersionRef::parse(&p.version).map_err(tool_error)?;
        let dry_run = p.dry_run.unwrap_or(false);
        let options = PromoteOptions {
            canary: p.canary.map_or(DEFAULT_CANARY, |c| c as usize),
            parallel: p.parallel.unwrap_or(DEFAULT_PARALLEL as u32) as usize,
            max_failures: p.max_failures.map(|k| k as usize),
            update: self.update_options(),
            ready: self.ready_options(Some(true), None)?,
            rollback: true,
            dry_run,
        };
        options.check().map_err(tool_error)?;
        let wait = wait_for(p.wait_seconds)?;
        // Input and confirmation are checked before the configuration: nothing is sent.
        if !dry_run && !p.confirm.unwrap_or(false) {
            return Err(tool_error(fleet::Error::advised(
                fleet::Error::InvalidInput(format!(
                    "promoting {} on template {template} needs explicit confirmation: it updates \
                     canary workspaces (stop, start), then makes the version the one every start \
                     builds and updates the template's other workspaces. Nothing was sent",
                    p.version.trim()
                )),
                vec![fleet::Remedy::Give {
                    input: fleet::Input::Confirm,
                    value: None,
                }],
            )));
        }
        let client = self.coder()?;
        let slot = self.reserve_operation()?;
        let op = client.start_promote(
            PromoteRequest {
                template,
                version,
                canary_workspaces: Vec::new(),
            },
            options,
        );
        self.register(slot, &op);
        let Json(answer) = self
            .answer_within(op, wait, &ctx, forward_promote())
            .await?;
        Ok(Json(answer.map_outcome(promote_answer)))
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
        let op = client.start_dry_run(workspace.clone(), version, restart, options.clone());
        let planned = op
            .watch_until(Some(limit), ctx.ct.cancelled(), |e| {
                to_progress(&progress, &e)
            })
            .await;
        if planned.is_none() {
            // Reads only: nothing is left behind.
            op.abort();
        }
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
            Some(s) => ReadyOptions::check_timeout(std::time::Duration::from_secs(s))
                .map_err(tool_error)?,
        };
        Ok(Some(ReadyOptions {
            timeout,
            poll: self.update_options().poll,
            ..ReadyOptions::default()
        }))
    }

    /// The default deadlines, with the poller paced when something sets it (the simulator).
    fn update_options(&self) -> UpdateOptions {
        let mut options = UpdateOptions::default();
        options.poll = options.poll.with_interval_cap(self.poll_override());
        options
    }
}
