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

/// The server. Cheap to clone: the clients are shared.
#[derive(Clone)]
pub struct FleetServer {
    molecule: Arc<Result<MoleculeClient, String>>,
    coder: Arc<Result<CoderClient, String>>,
    tool_router: ToolRouter<FleetServer>,
    /// What the tools listed are for, and which toolsets are off.
    instructions: Arc<str>,
    poll_override: Option<std::time::Duration>,
    /// The long operations started by tool calls (they outlive the calls), shared by every
    /// session.
    registry: Arc<fleet::operation::Registry>,
    /// Every tool's input properties, read once (remedies name only arguments a tool has).
    tool_properties: Arc<std::sync::OnceLock<Arc<ToolProperties>>>,
    /// The session this server answers (over HTTP each session gets its own clone): the
    /// owner of the operations it starts.
    session: Arc<str>,
    /// The latest listing of list_agents, reused by the pages that follow it for a moment.
    listing: Arc<crate::answers::ListingCache>,
}

/// Groups of tools an operator lists or leaves out (`--toolsets`, GitHub's convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toolsets {
    /// Coder workspaces: update, restart, list, show, template versions.
    pub coder: bool,
    /// Molecule provider migrations.
    pub molecule: bool,
    /// Following long operations: get, cancel, list.
    pub operations: bool,
}

impl Toolsets {
    /// Every toolset.
    pub const ALL: Toolsets = Toolsets {
        coder: true,
        molecule: true,
        operations: true,
    };
    /// The names `--toolsets` takes (beside `all`).
    pub const NAMES: [&'static str; 3] = ["coder", "molecule", "operations"];

    /// The toolsets named (each one of [`Toolsets::NAMES`] or `all`; checked by the caller).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Toolsets {
        let mut t = Toolsets {
            coder: false,
            molecule: false,
            operations: false,
        };
        for name in names {
            match name {
                "coder" => t.coder = true,
                "molecule" => t.molecule = true,
                "operations" => t.operations = true,
                _ => t = Toolsets::ALL,
            }
        }
        t
    }

    /// The names of the toolsets left out.
    fn off(&self) -> Vec<&'static str> {
        [
            (self.coder, "coder"),
            (self.molecule, "molecule"),
            (self.operations, "operations"),
        ]
        .into_iter()
        .filter(|(on, _)| !on)
        .map(|(_, name)| name)
        .collect()
    }
}

/// The server's instructions: what the listed tools are for (in --read-only mode, only the
/// ones that read), how long tools answer, and which toolsets are off and how to turn them on.
fn instructions(toolsets: Toolsets, read_only: bool) -> String {
    let mut text = String::from("fleet operates cloud workspaces on two control planes.\n");
    if toolsets.coder {
        text.push_str(if read_only {
            "Coder: list_agents, show_agent, get_template_version and get_template read \
             workspaces (agents) and templates.\n"
        } else {
            "Coder: list_agents, show_agent, get_template_version and get_template read \
             workspaces (agents) and templates; update_agent, restart_agent and update_agents \
             stop and start them (destructive); promote_template_version makes a template \
             version active once canaries of it end healthy, then updates the rest \
             (destructive, needs confirm=true: ask the user first).\n"
        });
    }
    if toolsets.molecule {
        text.push_str(if read_only {
            "Molecule: get_workspace_migration_status reads a workspace's compute-provider \
             migration, wait_for_workspace_migration follows it.\n"
        } else {
            "Molecule: migrate_workspace_provider and migrate_workspaces move workspaces across \
             clouds (aws, hetzner, gcp); a migration mutates two clouds and needs confirm=true: \
             ask the user first. get_workspace_migration_status reads one, \
             wait_for_workspace_migration follows it.\n"
        });
    }
    if !read_only && (toolsets.coder || toolsets.molecule) {
        text.push_str(
            "Every destructive tool takes dry_run=true: it answers the plan (the reads, the path, \
             each value and its source) and changes nothing.\n",
        );
    }
    let mut long: Vec<&str> = Vec::new();
    if toolsets.coder && !read_only {
        long.extend([
            "update_agent",
            "restart_agent",
            "update_agents",
            "promote_template_version",
        ]);
    }
    if toolsets.molecule {
        if !read_only {
            long.push("migrate_workspaces");
        }
        long.push("wait_for_workspace_migration");
    }
    let stops = toolsets.coder && !read_only;
    if !long.is_empty() {
        let follow = match (toolsets.operations, read_only) {
            (false, _) => "",
            (true, true) => ": follow it with get_operation (list_operations lists them)",
            (true, false) => {
                ": follow it with get_operation (list_operations lists them; cancel_operation \
                 cancels one gracefully: nothing new starts)"
            }
        };
        text.push_str(&format!(
            "Long tools ({}) wait at most wait_seconds (default 25) and then answer: with the \
             outcome when done, else with operation_id and the latest step; the operation goes \
             on{follow}. Progress notifications are sent when the request carries a progress \
             token. Cancelling a request only stops the waiting{}. Clients that declare the \
             tasks extension (io.modelcontextprotocol/tasks) get a task from {} instead: its id \
             is the operation_id.\n",
            long.join(", "),
            if stops {
                ": a workspace being stopped is always started again"
            } else {
                ""
            },
            long.iter()
                .filter(|t| crate::task_tools::TASK_TOOLS.contains(t))
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    // What the shared arguments mean, said once here rather than in every input schema.
    text.push_str(
        "Shared arguments (integers are never negative): wait_seconds is how long a call waits \
         before answering (default 25; \
         get_operation 0; at most 300). Lists page: limit (default 50, at most 200), cursor = \
         the previous answer's next_cursor; detail=\"full\" gives whole records instead of \
         compact rows. Ids: workspace_id(s) are Molecule workspace ids, operation_id comes from \
         a long tool's answer.\n",
    );
    if !read_only && (toolsets.coder || toolsets.molecule) {
        text.push_str(
            "Rollouts (update_agents, migrate_workspaces): parallel workspaces at once (1-64, \
             default 4); canary=N runs N first and starts the rest only if all end healthy \
             (completed, for migrations); max_failures=K starts no more after K failures.\n",
        );
    }
    if !read_only && toolsets.coder {
        text.push_str(
            "Coder starts wait for the agents to be ready (wait_ready, default true; \
             ready_timeout_seconds, default 600). Workspaces someone is at work in are skipped \
             with the reason: used by someone else within idle_for_seconds (default 1800), an AI \
             task working, a prebuild, dormant. include_busy (include_prebuilds for prebuilds) \
             updates them anyway; wait_for_idle_seconds waits that long for them. \
             client_driven=true: fleet stops and starts itself instead of Coder's on_success.\n",
        );
    }
    text.push_str(
        "Arguments are closed: an argument a tool does not list is refused by name, and nothing \
         is sent.\n",
    );
    if read_only {
        text.push_str("Read-only mode: only the tools that read are listed.\n");
    }
    let off = toolsets.off();
    if !off.is_empty() {
        text.push_str(&format!(
            "Toolsets off: {}. To turn them on, start fleet-mcp with --toolsets {} (or set \
             FLEET_MCP_TOOLSETS); by default a control plane's toolset is on once its variables \
             are set.\n",
            off.join(", "),
            Toolsets::NAMES.join(",")
        ));
    }
    text
}

impl FleetServer {
    /// The tools of each toolset, by name (what `fleet-mcp --help` lists).
    pub fn tool_names() -> Vec<(&'static str, Vec<String>)> {
        let names = |router: ToolRouter<FleetServer>| {
            let mut names: Vec<String> = router
                .list_all()
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            names.sort();
            names
        };
        vec![
            ("molecule", names(Self::molecule_router())),
            ("coder", names(Self::coder_router())),
            ("operations", names(Self::operation_router())),
        ]
    }

    /// Builds the server from whatever is configured, listing the tools of `toolsets`. A
    /// control plane that is not configured but listed keeps its tools; calling them answers a
    /// tool error naming the variables to set.
    pub fn new(
        molecule: &MoleculeConfig,
        coder: &CoderConfig,
        read_only: bool,
        toolsets: Toolsets,
    ) -> Self {
        let mut tool_router = ToolRouter::new();
        if toolsets.molecule {
            tool_router += Self::molecule_router();
        }
        if toolsets.coder {
            tool_router += Self::coder_router();
        }
        if toolsets.operations {
            tool_router += Self::operation_router();
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
            instructions: Arc::from(instructions(toolsets, read_only)),
            poll_override: fleet::config::poll_interval_from_env(),
            registry: Arc::new(fleet::operation::Registry::default()),
            tool_properties: Arc::default(),
            session: new_session(),
            listing: Arc::new(crate::answers::ListingCache::from_env()),
        }
    }

    /// The server with these limits on operations and builds (fleet-mcp's flags).
    pub fn with_limits(mut self, limits: &fleet::operation::OperationLimits) -> Self {
        self.registry = Arc::new(fleet::operation::Registry::with_limits(limits));
        self.coder = Arc::new(
            self.coder
                .as_ref()
                .clone()
                .map(|c| c.with_build_limit(limits.max_in_flight_builds)),
        );
        self
    }

    /// A clone for a new session (same clients and operations, its own owner id): it lists
    /// only the operations it started.
    pub fn for_new_session(&self) -> Self {
        FleetServer {
            session: new_session(),
            ..self.clone()
        }
    }

    /// The session this server answers.
    pub fn session(&self) -> &str {
        &self.session
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

/// A tool's input schema (of its `Parameters<T>`), lean for a model's context
/// ([`lean_schema`]). Every `#[tool]` names its own, `input_schema = input_schema::<T>()`, and
/// [`output_schema`]: rmcp's default keeps two raw copies of each schema in caches that live
/// as long as the process (1.2 MB of fleet-mcp's resident memory, bench/README.md).
pub(crate) fn input_schema<T: schemars::JsonSchema>() -> Arc<JsonObject> {
    let mut schema = generated::<T>(schemars::generate::SchemaSettings::draft2020_12());
    // A tool's arguments are an object, as MCP requires (a wrong type is a bug in fleet-mcp).
    assert_eq!(
        schema.get("type"),
        Some(&Value::from("object")),
        "the arguments of a tool are an object: {}",
        std::any::type_name::<T>()
    );
    lean_schema(&mut schema, Face::Input);
    Arc::new(schema)
}

/// A tool's output schema (of its `Json<T>`): what `T` serializes to, lean ([`lean_schema`]).
pub(crate) fn output_schema<T: schemars::JsonSchema>() -> Arc<JsonObject> {
    let settings = schemars::generate::SchemaSettings::draft2020_12().for_serialize();
    let mut schema = generated::<T>(settings);
    lean_schema(&mut schema, Face::Output);
    Arc::new(schema)
}

/// The schema of `T` as a JSON object, without the type's own name and doc (the tool's
/// description says what it is).
fn generated<T: schemars::JsonSchema>(settings: schemars::generate::SchemaSettings) -> JsonObject {
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut object = match Value::from(schema) {
        Value::Object(object) => object,
        // `true` or `false`: a type no tool has (a bug in fleet-mcp).
        other => panic!("the schema of {} is {other}", std::any::type_name::<T>()),
    };
    object.remove("title");
    object.remove("description");
    object
}

/// Which side of a tool a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Face {
    /// The arguments: the part a host shows its model. The prose stays; an optional argument
    /// is typed as its value (leaving it out is how it is not given), `$ref`s are inlined and
    /// integer `format`s go. What the schema accepts does not widen.
    Input,
    /// The answer: a host does not show it to its model and the tool's description already
    /// says what the fields mean. Types, enums and structure stay (`null` where a field may be
    /// null); descriptions, titles, examples and formats go.
    Output,
}

/// A tool's schema made lean for a model's context, on either face: no `$schema`, no
/// `default: null`, no `additionalProperties: true` (leaving it out says the same), and what
/// [`Face`] says of each. Property names are data, not keywords: a property called
/// `description` or `format` stays.
fn lean_schema(schema: &mut JsonObject, face: Face) {
    schema.remove("$schema");
    // Input schemas inline their definitions; output schemas keep them shared.
    let defs = match face {
        Face::Input => schema.remove("$defs"),
        Face::Output => None,
    };
    lean_node(schema, face, defs.as_ref(), 0);
}

/// How deep `$ref`s are inlined (a type that contains itself stops here).
const LEAN_DEPTH: u32 = 16;

fn lean_node(o: &mut JsonObject, face: Face, defs: Option<&Value>, depth: u32) {
    if o.get("default").is_some_and(Value::is_null) {
        o.remove("default");
    }
    // A map of any values: `true` is what leaving it out says.
    if o.get("additionalProperties") == Some(&Value::Bool(true)) {
        o.remove("additionalProperties");
    }
    match face {
        Face::Input => lean_input(o, defs, depth),
        Face::Output => lean_output(o),
    }
    // Inlining could go on forever in a type that contains itself; an output is a finite tree.
    if face == Face::Input && depth >= LEAN_DEPTH {
        return;
    }
    for (key, v) in o.iter_mut() {
        match v {
            // The values of these maps are schemas; their keys are names.
            Value::Object(map)
                if matches!(key.as_str(), "properties" | "$defs" | "patternProperties") =>
            {
                for v in map.values_mut() {
                    if let Value::Object(inner) = v {
                        lean_node(inner, face, defs, depth + 1);
                    }
                }
            }
            Value::Object(inner) => lean_node(inner, face, defs, depth + 1),
            Value::Array(items) => {
                for i in items {
                    if let Value::Object(inner) = i {
                        lean_node(inner, face, defs, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

fn lean_input(o: &mut JsonObject, defs: Option<&Value>, depth: u32) {
    if matches!(
        o.get("format").and_then(Value::as_str),
        Some("uint" | "uint8" | "uint16" | "uint32" | "uint64" | "int32" | "int64" | "double")
    ) {
        o.remove("format");
    }
    // Every integer argument of fleet-mcp is unsigned: the `minimum: 0` schemars gives each
    // one is said once in the instructions, and still checked (see `mismatch`).
    let integer = match o.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    if integer && o.get("minimum").and_then(Value::as_f64) == Some(0.0) {
        o.remove("minimum");
    }
    // ["boolean", "null"] → "boolean".
    if let Some(Value::Array(types)) = o.get("type") {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if kept.len() == 1 {
            o.insert("type".into(), kept[0].clone());
        }
    }
    // anyOf [X, {type: null}] → X (beside this property's own description).
    if let Some(Value::Array(any)) = o.get("anyOf") {
        let kept: Vec<Value> = any
            .iter()
            .filter(|a| a.get("type") != Some(&Value::String("null".into())))
            .cloned()
            .collect();
        if kept.len() == 1 {
            o.remove("anyOf");
            if let Value::Object(inner) = &kept[0] {
                for (k, v) in inner {
                    o.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    if depth < LEAN_DEPTH {
        if let Some(name) = o
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            if let Some(Value::Object(def)) = defs.and_then(|d| d.get(name)) {
                o.remove("$ref");
                for (k, v) in def {
                    // The property's own description wins over the type's.
                    o.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
}

fn lean_output(o: &mut JsonObject) {
    o.remove("description");
    o.remove("title");
    o.remove("examples");
    // uuid, int64, date-time: the type says enough for an output.
    if o.get("format").is_some_and(Value::is_string) {
        o.remove("format");
    }
    // A documented enum comes as oneOf [{const, type}, …]: without the prose, an enum says it.
    let constants: Option<Vec<Value>> = o.get("oneOf").and_then(Value::as_array).and_then(|a| {
        a.iter()
            .map(|v| {
                let v = v.as_object()?;
                let plain = v
                    .keys()
                    .all(|k| matches!(k.as_str(), "const" | "type" | "description"))
                    && v.get("type").and_then(Value::as_str) == Some("string");
                plain.then(|| v.get("const").cloned()).flatten()
            })
            .collect()
    });
    if let Some(constants) = constants {
        o.remove("oneOf");
        o.insert("type".into(), Value::String("string".into()));
        o.insert("enum".into(), Value::Array(constants));
    }
}

fn new_session() -> Arc<str> {
    uuid::Uuid::new_v4().simple().to_string().into()
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
        Input::IncludeBusy => "include_busy: true",
        Input::IncludePrebuilds => "include_prebuilds: true",
        Input::WaitForIdle => "wait_for_idle_seconds",
        Input::Canary => "canary",
        Input::MaxFailures => "max_failures",
        Input::ReadyTimeout => "ready_timeout_seconds",
        Input::Wait => "wait_seconds",
        Input::MigrationTimeout => "timeout_seconds",
        _ => "the missing argument (see the tool's input schema)",
    }
}

/// The bare name of an input's tool argument.
fn argument_name(input: fleet::Input) -> &'static str {
    let full = argument(input);
    full.split([' ', ':']).next().unwrap_or(full)
}

/// The input properties of every tool, and the tool being called: a remedy names only an
/// argument that tool has (see [`remedy_clause`]).
#[derive(Debug, Clone)]
pub(crate) struct ToolInputs {
    /// The tool being called.
    tool: String,
    /// Every tool's name and input properties.
    all: Arc<ToolProperties>,
}

/// Every tool's name and the names of its input properties.
type ToolProperties = Vec<(String, Vec<String>)>;

impl ToolInputs {
    fn properties_of(&self, tool: &str) -> &[String] {
        self.all
            .iter()
            .find(|(name, _)| name == tool)
            .map(|(_, p)| p.as_slice())
            .unwrap_or(&[])
    }

    /// `None` when the tool being called has the argument; else how to give it anyway.
    fn missing(&self, argument: &str) -> Option<String> {
        if self.properties_of(&self.tool).iter().any(|p| p == argument) {
            return None;
        }
        let others: Vec<&str> = self
            .all
            .iter()
            .filter(|(_, props)| props.iter().any(|p| p == argument))
            .map(|(name, _)| name.as_str())
            .collect();
        Some(if others.is_empty() {
            format!("{} has no {argument} argument", self.tool)
        } else {
            format!(
                "{} has no {argument} argument: call {} with {argument} (one workspace each)",
                self.tool,
                others.join(" or ")
            )
        })
    }
}

tokio::task_local! {
    /// The tool whose call is being answered, set around each call.
    static TOOL_INPUTS: ToolInputs;
}

/// The tool being called, when a call is being answered.
fn current_tool() -> Option<ToolInputs> {
    TOOL_INPUTS.try_with(Clone::clone).ok()
}

/// The tool whose answer an operation of `kind` is (get_operation and the tasks words an
/// ended operation's error as that tool would).
pub(crate) fn tool_of(kind: fleet::operation::OperationKind) -> &'static str {
    use fleet::operation::OperationKind as K;
    match kind {
        K::Update => "update_agent",
        K::Restart => "restart_agent",
        K::BatchUpdate => "update_agents",
        K::FollowMigration => "wait_for_workspace_migration",
        K::MigrationRollout => "migrate_workspaces",
        // Not started by a tool of fleet-mcp today; the nearest tool's words.
        K::Migrate => "migrate_workspace_provider",
        K::FollowMigrations => "wait_for_workspace_migration",
        K::DryRun | K::Readiness => "update_agent",
        K::Promote | K::Rollback => "promote_template_version",
    }
}

/// [`error_text`] as `tool` would word it (its arguments), while another tool's call (or no
/// call) is being answered.
pub(crate) fn error_text_as(tool: &str, e: &fleet::Error) -> String {
    match current_tool() {
        Some(current) => TOOL_INPUTS.sync_scope(
            ToolInputs {
                tool: tool.to_string(),
                all: current.all,
            },
            || error_text(e),
        ),
        None => error_text(e),
    }
}

/// Every tool's name and input properties.
fn tool_properties(tools: &[Tool]) -> ToolProperties {
    tools
        .iter()
        .map(|t| {
            let props = t
                .input_schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            (t.name.to_string(), props)
        })
        .collect()
}

/// One remedy as a clause of a sentence, in fleet-mcp's words (tool arguments, tool calls),
/// for the tool being called (when a call is being answered): an input that tool does not
/// take is said so, with the tools that take it.
fn remedy_clause(remedy: &fleet::Remedy) -> String {
    remedy_clause_for(remedy, current_tool().as_ref())
}

fn remedy_clause_for(remedy: &fleet::Remedy, tool: Option<&ToolInputs>) -> String {
    use fleet::{Input, Look, Remedy};
    let missing = |input: &Input| tool.and_then(|t| t.missing(argument_name(*input)));
    match remedy {
        Remedy::Give { input, .. }
        | Remedy::LeaveOut { input }
        | Remedy::GiveWithin { input, .. }
            if missing(input).is_some() =>
        {
            missing(input).unwrap_or_default()
        }
        Remedy::GiveOneOf { inputs } if inputs.iter().any(|i| missing(i).is_some()) => {
            let (have, lack): (Vec<&Input>, Vec<&Input>) =
                inputs.iter().partition(|i| missing(i).is_none());
            let mut clause = String::new();
            if !have.is_empty() {
                let names: Vec<&str> = have.iter().map(|i| argument(**i)).collect();
                clause.push_str(&format!("give exactly one of: {}", names.join(", ")));
            }
            for i in lack {
                if !clause.is_empty() {
                    clause.push_str("; ");
                }
                clause.push_str(&missing(i).unwrap_or_default());
            }
            clause
        }
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
        Remedy::AllowInsecureHttp => {
            "start fleet-mcp with --insecure-http if you really mean it".into()
        }
        // Seconds for a duration: the tool arguments say `_seconds`.
        Remedy::GiveWithin { input, min, max } => {
            format!(
                "call again with {} from {min} to {max}",
                argument_name(*input)
            )
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

/// The least time between two progress notifications of one call that carry a log line: at
/// most 4 a second, each with the latest line (the ones in between are coalesced, never
/// queued).
pub const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// The most steps (a build created, a status change: a handful per build) waiting to be
/// sent; past it the oldest waiting step is dropped.
const MAX_PENDING_STEPS: usize = 32;

/// One notification: progress, total, message.
type Note = (f64, Option<f64>, String);

/// What waits to be sent, and whether the call has answered.
#[derive(Default)]
struct Pending {
    steps: std::collections::VecDeque<Note>,
    line: Option<Note>,
    closed: bool,
}

/// What the caller and the forwarder share: a few steps and one line, never a growing queue.
#[derive(Default)]
struct Slot {
    pending: std::sync::Mutex<Pending>,
    changed: tokio::sync::Notify,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    /// The next notification to send, waiting for one; None once the call has answered and
    /// everything was sent. A line waits out [`PROGRESS_INTERVAL`] after the previous line,
    /// unless the call has answered.
    async fn next(&self, line_at: tokio::time::Instant) -> Option<(Note, bool)> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait_line = {
                let mut p = self.lock();
                if let Some(step_at) = p.steps.front().map(|s| s.0) {
                    // The line just before a step goes out first (the last line of a build
                    // says how it ended), then the step.
                    if let Some(line) = p.line.take_if(|l| l.0 < step_at) {
                        return Some((line, false));
                    }
                    return p.steps.pop_front().map(|step| (step, false));
                }
                match p.line.take() {
                    Some(line) if p.closed || tokio::time::Instant::now() >= line_at => {
                        return Some((line, true));
                    }
                    Some(line) => {
                        p.line = Some(line);
                        true
                    }
                    None if p.closed => return None,
                    None => false,
                }
            };
            if wait_line {
                tokio::select! {
                    _ = tokio::time::sleep_until(line_at) => {}
                    _ = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// Sends progress notifications in order, when the client asked for them (sent a token).
/// Steps go out as they come, each after the latest log line before it; other log lines at
/// most one per [`PROGRESS_INTERVAL`], each the latest. Only a few steps and one line wait to be sent, so a client (or a transport) slower
/// than a flood of log lines costs a few messages of memory, not a queue.
pub struct Progress {
    slot: Option<Arc<Slot>>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts forwarding; without a progress token, notifications are dropped.
    pub fn new(peer: Peer<RoleServer>, token: Option<ProgressToken>) -> Self {
        let Some(token) = token else {
            return Progress {
                slot: None,
                forwarder: None,
            };
        };
        let slot = Arc::new(Slot::default());
        let shared = slot.clone();
        let forwarder = tokio::spawn(async move {
            let mut line_at = tokio::time::Instant::now();
            while let Some(((progress, total, message), line)) = shared.next(line_at).await {
                if line {
                    line_at = tokio::time::Instant::now() + PROGRESS_INTERVAL;
                }
                let mut param =
                    ProgressNotificationParam::new(token.clone(), progress).with_message(message);
                if let Some(total) = total {
                    param = param.with_total(total);
                }
                if peer.notify_progress(param).await.is_err() {
                    return;
                }
            }
        });
        Progress {
            slot: Some(slot),
            forwarder: Some(forwarder),
        }
    }

    /// Sends what still waits, so that it goes out before the tool's result (a client ignores
    /// progress for a request it has answered). Gives up after 5 s if the client does not
    /// read.
    pub async fn flush(mut self) {
        if let Some(slot) = self.slot.take() {
            slot.close();
        }
        if let Some(forwarder) = self.forwarder.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), forwarder).await;
        }
    }

    /// Queues one step (a build created, a state change). `progress` must increase from one
    /// call to the next.
    pub fn send(&self, progress: f64, total: Option<f64>, message: impl Into<String>) {
        if let Some(slot) = &self.slot {
            let message = crate::safe_text::redacted(&message.into()).into_owned();
            {
                let mut p = slot.lock();
                if p.steps.len() >= MAX_PENDING_STEPS {
                    p.steps.pop_front();
                }
                p.steps.push_back((progress, total, message));
            }
            slot.changed.notify_waiters();
        }
    }

    /// Sets the latest log line (it replaces a line not sent yet: lines are coalesced).
    /// `progress` must increase from one call to the next.
    pub fn send_line(&self, progress: f64, total: Option<f64>, message: impl Into<String>) {
        if let Some(slot) = &self.slot {
            let message = crate::safe_text::redacted(&message.into()).into_owned();
            slot.lock().line = Some((progress, total, message));
            slot.changed.notify_waiters();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A call dropped on the way (never flushed): send what waits, then stop.
        if let Some(slot) = self.slot.take() {
            slot.close();
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
        .with_instructions(self.instructions.to_string())
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
        // A closed argument list: an argument the tool does not know (a guess, a typo) is
        // refused before the tool runs, so nothing is read or sent.
        if let Some(refusal) = tool
            .as_ref()
            .and_then(|t| unknown_arguments(t, arguments.as_ref()))
        {
            return Ok(refusal.into());
        }
        let inputs = ToolInputs {
            tool: request.name.to_string(),
            all: self
                .tool_properties
                .get_or_init(|| Arc::new(tool_properties(&self.tool_router.list_all())))
                .clone(),
        };
        let tcc = ToolCallContext::new(self, request, context);
        let result = TOOL_INPUTS.scope(inputs, self.tool_router.call(tcc)).await;
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

/// The tool error for arguments `tool` does not take (None when every one is known): each
/// unknown name, the closest valid one, and the valid ones.
fn unknown_arguments(tool: &Tool, arguments: Option<&JsonObject>) -> Option<CallToolResult> {
    let valid: Vec<&str> = tool
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let unknown: Vec<&str> = arguments?
        .keys()
        .map(String::as_str)
        .filter(|k| !valid.contains(k))
        .collect();
    if unknown.is_empty() {
        return None;
    }
    let named: Vec<String> = unknown
        .iter()
        .take(8)
        .map(|k| {
            let shown = describe_name(k);
            match closest(k, &valid) {
                Some(c) => format!("`{shown}` (did you mean `{c}`?)"),
                None => format!("`{shown}`"),
            }
        })
        .collect();
    let more = match unknown.len().saturating_sub(named.len()) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let valid_list = if valid.is_empty() {
        "none: call it with {}".to_string()
    } else {
        valid.join(", ")
    };
    Some(CallToolResult::error(vec![ContentBlock::text(format!(
        "invalid_input: {} does not take the argument{} {}{more}; nothing was read or sent. Its \
         arguments: {valid_list}",
        tool.name,
        if unknown.len() == 1 { "" } else { "s" },
        named.join(", "),
    ))]))
}

/// An argument name as given, cut short and with control characters escaped (a hostile
/// name must not fill the answer or forge lines).
fn describe_name(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(60)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().count() > 60 {
        shown.push('…');
    }
    shown
}

/// The valid name closest to `given`: the same once case and `_`/`-` are ignored, else one
/// that contains it or is contained in it, else the nearest by edit distance (when near).
fn closest<'a>(given: &str, valid: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let g = norm(given);
    if g.is_empty() || g.chars().count() > 200 {
        return None;
    }
    if let Some(v) = valid.iter().find(|v| norm(v) == g) {
        return Some(v);
    }
    let containing = valid
        .iter()
        .filter(|v| {
            let n = norm(v);
            n.len() >= 3 && g.len() >= 3 && (n.contains(&g) || g.contains(&n))
        })
        .min_by_key(|v| norm(v).len().abs_diff(g.len()));
    if let Some(v) = containing {
        return Some(v);
    }
    valid
        .iter()
        .map(|v| (edit_distance(&g, &norm(v)), *v))
        .filter(|(d, v)| *d <= 2.max(v.len().max(g.len()) / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (row[j] + 1)
                .min(here + 1)
                .min(previous + usize::from(ca != *cb));
            previous = here;
        }
    }
    row[b.len()]
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
        // An integer argument is never negative (its `minimum: 0` is left out of the schema).
        let min = prop
            .get("minimum")
            .and_then(Value::as_f64)
            .or_else(|| types.contains(&"integer").then_some(0.0));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tool names its own schemas (`input_schema = input_schema::<T>()`, the same for
    /// the output): one held by the router alone, none kept in rmcp's caches besides.
    #[test]
    fn every_tool_schema_is_held_by_the_router_alone() {
        for router in [
            FleetServer::molecule_router(),
            FleetServer::coder_router(),
            FleetServer::operation_router(),
        ] {
            for route in router {
                let tool = &route.attr;
                assert_eq!(
                    Arc::strong_count(&tool.input_schema),
                    1,
                    "{}: add `input_schema = input_schema::<T>()` to its #[tool]",
                    tool.name
                );
                let output = tool
                    .output_schema
                    .as_ref()
                    .expect("every tool answers JSON");
                assert_eq!(
                    Arc::strong_count(output),
                    1,
                    "{}: add `output_schema = output_schema::<T>()` to its #[tool]",
                    tool.name
                );
                assert!(!tool.input_schema.contains_key("$schema"), "{}", tool.name);
            }
        }
    }

    /// Issue 27: every remedy rendered for a tool names an argument that tool's input schema
    /// has, or says it has none and which tools do; over every typed input and every tool.
    #[test]
    fn every_remedy_names_an_argument_of_the_tool_it_is_rendered_for() {
        let server = FleetServer::new(
            &MoleculeConfig::default(),
            &CoderConfig::default(),
            false,
            Toolsets::ALL,
        );
        let tools = server.tool_router.list_all();
        assert!(tools.len() >= 10, "{} tools", tools.len());
        let all = Arc::new(tool_properties(&tools));
        let mut checked = 0;
        for (tool, props) in all.iter() {
            let inputs = ToolInputs {
                tool: tool.clone(),
                all: all.clone(),
            };
            for input in fleet::Input::ALL {
                let name = argument_name(*input);
                for remedy in [
                    fleet::Remedy::Give {
                        input: *input,
                        value: None,
                    },
                    fleet::Remedy::Give {
                        input: *input,
                        value: Some("v".into()),
                    },
                    fleet::Remedy::LeaveOut { input: *input },
                    fleet::Remedy::GiveOneOf {
                        inputs: vec![*input],
                    },
                    fleet::Remedy::GiveWithin {
                        input: *input,
                        min: 1,
                        max: 2,
                    },
                ] {
                    let clause = remedy_clause_for(&remedy, Some(&inputs));
                    let has = props.iter().any(|p| p == name);
                    if has {
                        assert!(clause.contains(name), "{tool} {remedy:?}: {clause}");
                        assert!(!clause.contains("has no"), "{tool} {remedy:?}: {clause}");
                    } else {
                        assert!(
                            clause.contains(&format!("{tool} has no {name} argument")),
                            "{tool} lacks {name}, yet: {clause}"
                        );
                        assert!(
                            !clause.contains("call again with")
                                || !clause.contains(&format!("call again with {name}")),
                            "{tool} {remedy:?}: {clause}"
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, tools.len() * fleet::Input::ALL.len() * 5);
        // The case of the issue: migrate_workspaces takes no from_instance_id.
        let inputs = ToolInputs {
            tool: "migrate_workspaces".into(),
            all,
        };
        let clause = remedy_clause_for(
            &fleet::Remedy::Give {
                input: fleet::Input::FromInstanceId,
                value: None,
            },
            Some(&inputs),
        );
        assert!(
            clause.contains("call migrate_workspace_provider with from_instance_id"),
            "{clause}"
        );
    }
}
