//! The MCP server: one struct holding the configured clients, the tool routers of each
//! control plane combined, tool errors and progress notifications.

use std::sync::Arc;

use fleet::{CoderConfig, MoleculeConfig, coder::CoderClient, molecule::MoleculeClient};
use rmcp::{
    ErrorData, Peer, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::ToolCallContext},
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
        ErrorCode, GetTaskParams, GetTaskResult, Implementation, JsonObject,
        ProgressNotificationParam, ProgressToken, ServerCapabilities, ServerConfig, Tool,
        UpdateTaskParams,
    },
    service::RequestContext,
    tool_handler,
};
use serde_json::Value;
use tokio::sync::mpsc;

/// The server. Cheap to clone: the clients are shared.
#[derive(Clone)]
pub struct FleetServer {
    molecule: Arc<Result<MoleculeClient, String>>,
    coder: Arc<Result<CoderClient, String>>,
    tool_router: ToolRouter<FleetServer>,
    poll_override: Option<std::time::Duration>,
    /// The long operations started by tool calls (they outlive the calls).
    registry: Arc<fleet::operation::Registry>,
    /// The latest listing of list_agents, reused by the pages that follow it for a moment.
    listing: Arc<crate::answers::ListingCache>,
}

const INSTRUCTIONS: &str = "\
fleet operates cloud workspaces on two control planes.
Molecule: migrate a workspace's compute provider across clouds (aws, hetzner, gcp) and follow the \
migration; a migration mutates two clouds and needs confirm=true. Check the status first.
Coder: update a workspace (agent) to a template version and restart it; list and show workspaces.
Long tools (update_agent, restart_agent, update_agents, wait_for_workspace_migration) wait at most \
wait_seconds (default 25) and then answer: with the outcome when done, else with operation_id and the latest \
step; the operation goes on, follow it with get_operation (list_operations lists them, cancel_operation \
cancels one gracefully). They send progress notifications when the request carries a progress token. \
Cancelling a request only stops the waiting: a workspace being stopped is always started again. \
Clients that declare the tasks extension (io.modelcontextprotocol/tasks) get a task for each long tool \
instead: its id is the operation_id; tasks/get follows it to the tool's result, tasks/cancel cancels it gracefully.";

impl FleetServer {
    /// Builds the server from whatever is configured. A control plane that is not configured
    /// keeps its tools listed; calling them answers a tool error naming the variables to set.
    pub fn new(molecule: &MoleculeConfig, coder: &CoderConfig, read_only: bool) -> Self {
        let mut tool_router =
            Self::molecule_router() + Self::coder_router() + Self::operation_router();
        // Output schemas keep their types, not the prose (hosts do not show them to a model).
        for route in tool_router.map.values_mut() {
            if let Some(schema) = route.attr.output_schema.as_mut() {
                crate::answers::lean_schema(Arc::make_mut(schema));
            }
        }
        if read_only {
            for tool in tool_router.list_all() {
                let read_only_tool = tool
                    .annotations
                    .as_ref()
                    .and_then(|a| a.read_only_hint)
                    .unwrap_or(false);
                if !read_only_tool {
                    tool_router.remove_route(&tool.name);
                }
            }
        }
        // Every configured token: none ever leaves the process, whichever control plane
        // echoes it and whatever carries it (result, error, progress, log line).
        [
            &molecule.cp_admin_token,
            &molecule.org_api_key,
            &coder.session_token,
        ]
        .into_iter()
        .flatten()
        .for_each(crate::safe_text::never_print);
        FleetServer {
            molecule: Arc::new(MoleculeClient::new(molecule).map_err(|e| message(&e))),
            coder: Arc::new(CoderClient::new(coder).map_err(|e| message(&e))),
            tool_router,
            poll_override: fleet::config::poll_interval_from_env(),
            registry: Arc::new(fleet::operation::Registry::default()),
            listing: Arc::new(crate::answers::ListingCache::from_env()),
        }
    }

    /// The long operations started by tool calls.
    pub fn registry(&self) -> &fleet::operation::Registry {
        &self.registry
    }

    /// The latest listing of list_agents (see [`crate::answers::ListingCache`]).
    pub fn listing(&self) -> &crate::answers::ListingCache {
        &self.listing
    }

    /// Sets the longest pause between two status reads (the simulator scales it to its speed).
    pub fn with_poll_override(mut self, interval: Option<std::time::Duration>) -> Self {
        if self.poll_override.is_none() {
            self.poll_override = interval;
        }
        self
    }

    /// The longest pause between two status reads, when something overrides the defaults.
    pub fn poll_override(&self) -> Option<std::time::Duration> {
        self.poll_override
    }

    /// The Molecule client, or the tool error that says how to configure it.
    pub fn molecule(&self) -> Result<&MoleculeClient, String> {
        self.molecule.as_ref().as_ref().map_err(Clone::clone)
    }

    /// The Coder client, or the tool error that says how to configure it.
    pub fn coder(&self) -> Result<&CoderClient, String> {
        self.coder.as_ref().as_ref().map_err(Clone::clone)
    }
}

/// The tool argument that gives an input.
fn argument(input: fleet::Input) -> &'static str {
    use fleet::Input;
    match input {
        Input::Confirm => "confirm: true",
        Input::From => "from (aws, hetzner or gcp)",
        Input::FromInstanceId => "from_instance_id",
        Input::Env => "env {\"NAME\": \"VALUE\"}",
        Input::TemplateVersion => "template_version_id",
        Input::Parameters => "parameters {\"NAME\": \"VALUE\"}",
        Input::Workspaces => "agent_names",
        Input::AllOutdated => "all_outdated: true",
        Input::Template => "template",
        Input::AllOwners => "all_owners",
        Input::Parallel => "parallel",
        _ => "the missing argument (see the tool's input schema)",
    }
}

/// The bare name of an input's tool argument.
fn argument_name(input: fleet::Input) -> &'static str {
    let full = argument(input);
    full.split([' ', ':']).next().unwrap_or(full)
}

/// One remedy as a clause of a sentence, in fleet-mcp's words (tool arguments, tool calls).
fn remedy_clause(remedy: &fleet::Remedy) -> String {
    use fleet::{Input, Look, Remedy};
    match remedy {
        Remedy::Give {
            input: Input::Confirm,
            ..
        } => "call again with confirm: true once you mean it".into(),
        Remedy::Give { input, value } => match value {
            Some(v) => format!(
                "call again with {}",
                serde_json::json!({ argument_name(*input): v })
            ),
            None => format!("call again with {}", argument(*input)),
        },
        Remedy::GiveOneOf { inputs } => {
            let names: Vec<&str> = inputs.iter().map(|i| argument(*i)).collect();
            format!("give exactly one of: {}", names.join(", "))
        }
        Remedy::LeaveOut { input } => {
            format!("call again without {}", argument_name(*input))
        }
        Remedy::UpdateToActive { workspace } => format!(
            "update it to the active version instead: call update_agent {}",
            serde_json::json!({ "agent_name": workspace })
        ),
        Remedy::Configure { variable, values } => format!(
            "set {variable} in fleet-mcp's environment{} and start it again",
            values
                .as_deref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        ),
        Remedy::Look { at } => match at {
            Look::Workspaces => "call list_agents to see the workspaces".into(),
            Look::Workspace { workspace } => format!(
                "call show_agent {} to see the versions it runs and its template's active version",
                match workspace {
                    Some(w) => serde_json::json!({ "agent_name": w }).to_string(),
                    None => "on a workspace of the template".into(),
                }
            ),
            Look::TemplateVersion { id } => format!(
                "call get_template_version {} to see its import job",
                serde_json::json!({ "template_version_id": id })
            ),
            _ => "see the tools' descriptions".into(),
        },
        _ => "see the tools' descriptions".into(),
    }
}

/// An error's message in fleet-mcp's words: the library's message, then what to do about it.
pub fn message(e: &fleet::Error) -> String {
    crate::advice::advised(&e.to_string(), e.remedies(), remedy_clause)
}

/// The text of a tool error: the kind, then [`error_text`].
pub fn tool_error(e: fleet::Error) -> String {
    format!("{}: {}", e.kind(), error_text(&e))
}

/// An error in fleet-mcp's words: the library's message (the server's words) and what to do
/// about it, then the tool call that finishes or follows what it left behind.
pub fn error_text(e: &fleet::Error) -> String {
    let next = next_call(e);
    let message = message(e);
    let stop = if next.is_empty() || message.ends_with('.') {
        ""
    } else {
        "."
    };
    format!("{message}{stop}{next}")
}

/// The tool call that finishes or follows what an error left behind (` To finish the job,
/// call …`, ` Follow it with …`), or nothing.
pub fn next_call(e: &fleet::Error) -> String {
    use fleet::operation::{Aftermath, FinishStep, FollowStep};
    match e.aftermath() {
        Some(Aftermath::LeftStopped { finish }) => {
            let (tool, args) = match finish {
                FinishStep::Update {
                    workspace,
                    template_version_id,
                    parameters,
                } => (
                    "update_agent",
                    serde_json::json!({"agent_name": workspace, "template_version_id": template_version_id, "parameters": parameters}),
                ),
                FinishStep::Restart {
                    workspace,
                    parameters,
                } => (
                    "restart_agent",
                    serde_json::json!({"agent_name": workspace, "parameters": parameters}),
                ),
            };
            format!(" To finish the job, call {tool} {args}")
        }
        Some(Aftermath::StillRunning { follow }) => match follow {
            FollowStep::CoderWorkspace { workspace } => {
                format!(
                    " Follow it with show_agent {}",
                    serde_json::json!({"agent_name": workspace})
                )
            }
            FollowStep::Migration { workspace_id } => format!(
                " Follow it with wait_for_workspace_migration {}",
                serde_json::json!({"workspace_id": workspace_id})
            ),
        },
        _ => String::new(),
    }
}

/// Sends progress notifications in order, when the client asked for them (sent a token).
pub struct Progress {
    tx: Option<mpsc::UnboundedSender<(f64, Option<f64>, String)>>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts forwarding; without a progress token, notifications are dropped.
    pub fn new(peer: Peer<RoleServer>, token: Option<ProgressToken>) -> Self {
        let Some(token) = token else {
            return Progress {
                tx: None,
                forwarder: None,
            };
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<(f64, Option<f64>, String)>();
        let forwarder = tokio::spawn(async move {
            while let Some((progress, total, message)) = rx.recv().await {
                let mut param =
                    ProgressNotificationParam::new(token.clone(), progress).with_message(message);
                if let Some(total) = total {
                    param = param.with_total(total);
                }
                if peer.notify_progress(param).await.is_err() {
                    break;
                }
            }
        });
        Progress {
            tx: Some(tx),
            forwarder: Some(forwarder),
        }
    }

    /// Sends what is still queued, so that every notification goes out before the tool's
    /// result (a client ignores progress for a request it has answered). Gives up after 5 s
    /// if the client does not read.
    pub async fn flush(mut self) {
        self.tx = None;
        if let Some(forwarder) = self.forwarder.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), forwarder).await;
        }
    }

    /// Queues one notification. `progress` must increase from one call to the next.
    pub fn send(&self, progress: f64, total: Option<f64>, message: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let message = crate::safe_text::redacted(&message.into()).into_owned();
            let _ = tx.send((progress, total, message));
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for FleetServer {
    /// Routes a call to its tool. Arguments that do not fit the tool's input schema (a wrong
    /// type, a missing field, an unknown provider) answer a tool error (isError: true) that
    /// names the bad argument, whichever way rmcp reported it; an unknown tool name stays a
    /// protocol error (-32602), as the MCP specification lists it. No configured token is ever
    /// in a result, whichever control plane echoed it.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let result = if crate::task_tools::runs_as_task(&request, &context) {
            self.call_as_task(request, context).await
        } else {
            self.call_tool_checked(request, context).await
        };
        match result {
            // Every answer within the bound of an agent's context (see answers.rs).
            Ok(CallToolResponse::Complete(r)) => Ok(CallToolResponse::Complete(
                crate::answers::guard(self.redacted(r)),
            )),
            other => other,
        }
    }

    fn get_info(&self) -> ServerConfig {
        let mut implementation = Implementation::from_build_env();
        implementation.name = "fleet-mcp".into();
        implementation.version = env!("CARGO_PKG_VERSION").into();
        // The tasks extension: long tools run as tasks for clients that declare it.
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(implementation)
        .with_instructions(INSTRUCTIONS)
    }

    /// `tasks/get`: a task is a long tool's operation (see task_tools).
    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.get_task_of(&request.task_id).map(GetTaskResult::new)
    }

    /// `tasks/update`: fleet's tasks never ask for input; responses are ignored.
    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.get_task_of(&request.task_id).map(|_| ())
    }

    /// `tasks/cancel`: a graceful cancel of the task's operation.
    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.cancel_task_of(&request.task_id).await
    }
}

impl FleetServer {
    /// Calls the tool; arguments that do not fit its schema become a tool error naming them.
    pub(crate) async fn call_tool_checked(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = self.tool_router.get(&request.name).cloned();
        let arguments = request.arguments.clone();
        let tcc = ToolCallContext::new(self, request, context);
        let result = self.tool_router.call(tcc).await;
        let Some(tool) = tool else { return result };
        match result {
            Err(e) if e.code == ErrorCode::INVALID_PARAMS && e.message.starts_with(BAD_ARGS) => {
                Ok(bad_arguments(&tool, arguments.as_ref(), &e.message).into())
            }
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => {
                let text = r
                    .content
                    .first()
                    .and_then(|c| c.as_text())
                    .map(|t| t.text.clone())
                    .unwrap_or_default();
                if text.starts_with(BAD_ARGS) {
                    Ok(bad_arguments(&tool, arguments.as_ref(), &text).into())
                } else {
                    Ok(CallToolResponse::Complete(r))
                }
            }
            other => other,
        }
    }

    /// The result with every configured token replaced by `<redacted>` (the transport redacts
    /// every message again; this keeps a result clean whatever carries it).
    pub(crate) fn redacted(&self, result: CallToolResult) -> CallToolResult {
        crate::safe_text::with_redactor(|r| r.redact_serde(result)).unwrap_or_else(|| {
            CallToolResult::error(vec![ContentBlock::text(
                "the result held a token and was withheld",
            )])
        })
    }
}

/// How rmcp begins the message of arguments that failed to deserialize.
const BAD_ARGS: &str = "failed to deserialize parameters:";

/// The tool error for arguments that do not fit `tool`'s input schema: which argument, what
/// was expected, and serde's own words.
fn bad_arguments(
    tool: &Tool,
    arguments: Option<&JsonObject>,
    serde_message: &str,
) -> CallToolResult {
    let said = serde_message.trim_start_matches(BAD_ARGS).trim();
    let problem =
        argument_problem(&tool.input_schema, arguments).unwrap_or_else(|| said.to_string());
    CallToolResult::error(vec![ContentBlock::text(format!(
        "invalid_input: invalid arguments for {}: {problem} ({said}). Nothing was sent; see the \
         tool's input schema",
        tool.name
    ))])
}

/// The first argument that does not fit the schema, said in words naming it in backticks.
fn argument_problem(schema: &JsonObject, arguments: Option<&JsonObject>) -> Option<String> {
    let empty = JsonObject::new();
    let arguments = arguments.unwrap_or(&empty);
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !arguments.contains_key(name) {
                return Some(format!("the argument `{name}` is required"));
            }
        }
    }
    let properties = properties?;
    for (name, value) in arguments {
        if let Some(expected) = properties
            .get(name)
            .and_then(|p| mismatch(p, value, schema, 0))
        {
            return Some(format!(
                "the argument `{name}` must be {expected}, not {}",
                describe(value)
            ));
        }
    }
    None
}

/// What `value` should have been, when it does not fit `prop` (None: it fits, or unknown).
fn mismatch(prop: &Value, value: &Value, root: &JsonObject, depth: u32) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let prop = prop.as_object()?;
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next()?;
        let target = ["$defs", "definitions"]
            .iter()
            .find_map(|d| root.get(*d)?.get(name))?;
        return mismatch(target, value, root, depth + 1);
    }
    if let Some(options) = prop.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            let names: Vec<String> = options.iter().map(Value::to_string).collect();
            return Some(format!("one of {}", names.join(", ")));
        }
    }
    if let Some(c) = prop.get("const") {
        if c != value {
            return Some(c.to_string());
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = prop.get(key).and_then(Value::as_array) {
            let misses: Vec<String> = alternatives
                .iter()
                .filter_map(|a| mismatch(a, value, root, depth + 1))
                .collect();
            if misses.len() == alternatives.len() && !misses.is_empty() {
                return Some(misses.join(" or "));
            }
        }
    }
    let types: Vec<&str> = match prop.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| fits_type(t, value)) {
        let article = |t: &&str| match *t {
            "integer" => "an integer",
            "array" => "an array",
            "object" => "an object",
            "null" => "null",
            "boolean" => "a boolean",
            "number" => "a number",
            _ => "a string",
        };
        return Some(types.iter().map(article).collect::<Vec<_>>().join(" or "));
    }
    if let (Some(items), Some(values)) = (prop.get("items"), value.as_array()) {
        for (i, item) in values.iter().enumerate() {
            if let Some(expected) = mismatch(items, item, root, depth + 1) {
                return Some(format!(
                    "a list whose items are each {expected} (item {} is {})",
                    i + 1,
                    describe(item)
                ));
            }
        }
    }
    if let Some(n) = value.as_f64() {
        let min = prop.get("minimum").and_then(Value::as_f64);
        let max = prop.get("maximum").and_then(Value::as_f64);
        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
            return Some(format!(
                "a number from {} to {}",
                min.map(|m| m.to_string()).unwrap_or_else(|| "-∞".into()),
                max.map(|m| m.to_string()).unwrap_or_else(|| "∞".into())
            ));
        }
    }
    None
}

fn fits_type(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// A short description of a JSON value (never all of a huge one).
fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => "the boolean",
        Value::Number(_) => "the number",
        Value::String(_) => "the string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let text = v.to_string();
    let mut shown: String = text.chars().take(60).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{kind} {shown}")
}
