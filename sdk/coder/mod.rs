//! Coder: workspaces, builds, templates and template versions (`/api/v2`).

use crate::{
    CoderConfig, Error, FieldProblem, Result, Secret,
    http::{self, CallContext, ServerErrorBody},
};

/// The client generated from `openapi/coder.yaml`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unused_imports, dead_code)]
pub mod api {
    include!(concat!(env!("OUT_DIR"), "/coder.rs"));
}

pub use api::types;

mod busy;
mod fleet;
mod logs;
mod model;
mod operations;
mod plan;
mod promote;
mod push;
mod ready;
mod run;
mod server_features;
mod server_side;
mod templates;
mod versions;
mod wait;
mod watch;
mod ws;
pub use crate::outcome::BusyReason;
pub use busy::{AppStatusState, NullUuid, busy_reason};
pub use fleet::{
    BatchAction, DEFAULT_PARALLEL, DryRun, FleetEvent, FleetOptions, FleetReport, MAX_PARALLEL,
    Selection, Severity, Verdict, WorkspaceResult,
};
pub use logs::{BuildLogs, LOG_LINE_MAX_BYTES, LogFollowOptions, cut_log_line};
pub use operations::{
    BatchOperation, DryRunOperation, PlanOperation, ReadyOperation, UpdateOperation,
};
pub use ready::{
    AgentProblem, AgentReadiness, DEFAULT_READY_TIMEOUT, READY_TIMEOUT_RANGE, Readiness,
    ReadyEvent, ReadyOptions, ReadyReport,
};
pub use server_features::{ON_SUCCESS_SINCE, ServerFeatures, ServerVersion};
pub use server_side::{FollowUp, ServerSideStart, ServerSideStop, build_request, is_follow_up_of};
pub use watch::{WatchEnd, WatchEvent, WatchNote, WatchOptions, WorkspaceWatch};
pub use ws::WS_MAX_MESSAGE_BYTES;
mod params;
mod preflight;
pub use model::{
    BuildInfo, BusyRules, CoderEvent, DEFAULT_FOLLOW_UP_BOUND, DEFAULT_IDLE_FOR,
    DEFAULT_START_TIMEOUT, DEFAULT_STOP_TIMEOUT, Step, TemplateVersionInfo, UpdateAction,
    UpdateOptions, UpdateOutcome, WorkspaceInfo, WorkspaceList, WorkspaceRef,
    parse_template_version_id,
};
pub use model::{Fallback, LOG_LINES_SHOWN, ListScope, PAGES_AT_ONCE, RunPath, WorkspaceFilter};
pub use params::{
    ParameterProblem, ParameterSource, ResolvedParameter, allowed_values,
    parameter_value_from_json, parameters_from_json, parse_parameter_assignment,
    parse_parameters_file, resolve_parameters,
};
pub use plan::{PlannedBuild, UpdatePlan};
pub use promote::{
    CanaryChoice, DEFAULT_CANARY, MovedWorkspace, PlannedWorkspace, PromoteEvent, PromoteOperation,
    PromoteOptions, PromoteOutcome, PromotePermission, PromotePhase, PromotePlan,
    PromotePlanOperation, PromoteReport, PromoteRequest, RollbackOperation, RollbackReport,
    RollbackRequest,
};
pub use templates::{NotPromotable, TemplateOverview, VersionName};
pub use versions::{
    TemplateVersionRef, TemplateVersions, TemplateVersionsByName, VERSION_NAME_MAX, VersionRow,
};
pub use wait::{ExpectedDuration, PollOptions};

crate::open_enum! {
    /// A build's status (codersdk.WorkspaceStatus).
    pub enum WorkspaceStatus {
        /// Queued.
        Pending = "pending",
        /// Starting.
        Starting = "starting",
        /// Running.
        Running = "running",
        /// Stopping.
        Stopping = "stopping",
        /// Stopped.
        Stopped = "stopped",
        /// The build failed.
        Failed = "failed",
        /// Being canceled.
        Canceling = "canceling",
        /// Canceled.
        Canceled = "canceled",
        /// Being deleted.
        Deleting = "deleting",
        /// Deleted.
        Deleted = "deleted",
    }
}

impl WorkspaceStatus {
    /// True while a build is still in progress.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            WorkspaceStatus::Pending
                | WorkspaceStatus::Starting
                | WorkspaceStatus::Stopping
                | WorkspaceStatus::Canceling
                | WorkspaceStatus::Deleting
        )
    }
}

crate::open_enum! {
    /// A build's transition (codersdk.WorkspaceTransition).
    pub enum WorkspaceTransition {
        /// Start the workspace.
        Start = "start",
        /// Stop the workspace.
        Stop = "stop",
        /// Delete the workspace.
        Delete = "delete",
    }
}

crate::open_enum! {
    /// A provisioner job's status (codersdk.ProvisionerJobStatus).
    pub enum JobStatus {
        /// Queued.
        Pending = "pending",
        /// Running.
        Running = "running",
        /// Succeeded.
        Succeeded = "succeeded",
        /// Being canceled.
        Canceling = "canceling",
        /// Canceled.
        Canceled = "canceled",
        /// Failed.
        Failed = "failed",
        /// Unknown to Coder itself.
        Unknown = "unknown",
    }
}

crate::open_enum! {
    /// A provisioner job's error code (codersdk.JobErrorCode).
    pub enum JobErrorCode {
        /// The template needs variables that were not given.
        RequiredTemplateVariables = "REQUIRED_TEMPLATE_VARIABLES",
        /// The owner's quota does not allow the build.
        InsufficientQuota = "INSUFFICIENT_QUOTA",
    }
}

crate::open_enum! {
    /// Why a build was started (codersdk.BuildReason).
    pub enum BuildReason {
        /// A user or API client.
        Initiator = "initiator",
        /// The autostart schedule.
        Autostart = "autostart",
        /// The autostop schedule.
        Autostop = "autostop",
        /// The workspace went dormant.
        Dormancy = "dormancy",
        /// The dashboard.
        Dashboard = "dashboard",
        /// The CLI.
        Cli = "cli",
        /// An SSH connection.
        SshConnection = "ssh_connection",
        /// A VS Code connection.
        VscodeConnection = "vscode_connection",
        /// A JetBrains connection.
        JetbrainsConnection = "jetbrains_connection",
        /// A task paused on its own.
        TaskAutoPause = "task_auto_pause",
        /// A task paused by hand.
        TaskManualPause = "task_manual_pause",
        /// A task resumed.
        TaskResume = "task_resume",
    }
}

crate::open_enum! {
    /// A workspace agent's connection status (codersdk.WorkspaceAgentStatus).
    pub enum AgentStatus {
        /// Not connected yet.
        Connecting = "connecting",
        /// Connected.
        Connected = "connected",
        /// Was connected, lost the connection.
        Disconnected = "disconnected",
        /// Did not connect in time.
        Timeout = "timeout",
    }
}

crate::open_enum! {
    /// A workspace agent's lifecycle (codersdk.WorkspaceAgentLifecycle).
    pub enum AgentLifecycle {
        /// Created, not started.
        Created = "created",
        /// Running its startup scripts.
        Starting = "starting",
        /// Its startup scripts took too long.
        StartTimeout = "start_timeout",
        /// Its startup scripts failed.
        StartError = "start_error",
        /// Ready.
        Ready = "ready",
        /// Running its shutdown scripts.
        ShuttingDown = "shutting_down",
        /// Its shutdown scripts took too long.
        ShutdownTimeout = "shutdown_timeout",
        /// Its shutdown scripts failed.
        ShutdownError = "shutdown_error",
        /// Off.
        Off = "off",
    }
}

crate::open_enum! {
    /// The kind of a `watch-ws` message (codersdk.ServerSentEventType).
    pub enum ServerSentEventType {
        /// A keep-alive.
        Ping = "ping",
        /// `data` carries the whole workspace.
        Data = "data",
        /// `data` carries an error.
        Error = "error",
    }
}

crate::open_enum! {
    /// A build log line's level (codersdk.LogLevel).
    pub enum LogLevel {
        /// Trace.
        Trace = "trace",
        /// Debug.
        Debug = "debug",
        /// Info.
        Info = "info",
        /// Warning.
        Warn = "warn",
        /// Error.
        Error = "error",
    }
}

crate::open_enum! {
    /// Where a build log line came from (codersdk.LogSource).
    pub enum LogSource {
        /// The provisioner daemon.
        ProvisionerDaemon = "provisioner_daemon",
        /// The provisioner.
        Provisioner = "provisioner",
    }
}

crate::open_enum! {
    /// A parameter's monotonic validation (codersdk.ValidationMonotonicOrder).
    pub enum MonotonicOrder {
        /// New values must be ≥ the previous one.
        Increasing = "increasing",
        /// New values must be ≤ the previous one.
        Decreasing = "decreasing",
    }
}

crate::open_enum! {
    /// A template parameter's type.
    pub enum ParameterType {
        /// A string.
        String = "string",
        /// A number.
        Number = "number",
        /// true or false.
        Bool = "bool",
        /// A JSON list of strings.
        ListOfString = "list(string)",
    }
}

/// The variables that configure Coder.
pub const CODER_VARS: &[&str] = &["CODER_URL", "CODER_SESSION_TOKEN"];

/// A configured Coder client.
#[derive(Clone)]
pub struct CoderClient {
    api: api::Client,
    url: String,
    secrets: Vec<Secret>,
    /// The session token, for the WebSocket handshakes (sdk/coder/ws.rs).
    token: Secret,
    /// The HTTP settings the client was built with (the WebSockets use the same).
    http: crate::HttpOptions,
    /// What the server supports, read once (`GET /buildinfo`) and shared by the clones.
    features: std::sync::Arc<tokio::sync::OnceCell<ServerFeatures>>,
    /// Builds in flight at once across every clone, when limited
    /// ([`CoderClient::with_build_limit`]).
    build_slots: Option<BuildSlots>,
    /// The caller's user id, read once (`GET /users/me`) when a busy check needs it.
    me: std::sync::Arc<tokio::sync::OnceCell<uuid::Uuid>>,
}

/// The builds a client (and its clones) may have in flight at once.
#[derive(Debug, Clone)]
struct BuildSlots {
    semaphore: std::sync::Arc<tokio::sync::Semaphore>,
    limit: usize,
}

impl std::fmt::Debug for CoderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoderClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl CoderClient {
    /// Builds the client; `CODER_URL` and `CODER_SESSION_TOKEN` are both required.
    pub fn new(config: &CoderConfig) -> Result<Self> {
        let not_configured = Error::NotConfigured {
            plane: "Coder",
            vars: CODER_VARS,
        };
        let (Some(url), Some(token)) = (
            &config.url,
            config.session_token.as_ref().filter(|t| !t.is_empty()),
        ) else {
            return Err(not_configured);
        };
        let url = http::check_base_url("CODER_URL", url, config.http.insecure_http)?;
        let name = reqwest::header::HeaderName::from_static("coder-session-token");
        let client =
            http::build_client(&url, Some((name, token.expose().to_string())), &config.http)?;
        let api = api::Client::new_with_client(
            &format!("{url}/api/v2"),
            client,
            http::Calls::new(&config.http),
        );
        Ok(CoderClient {
            api,
            url,
            secrets: vec![token.clone()],
            token: token.clone(),
            http: config.http.clone(),
            features: Default::default(),
            build_slots: None,
            me: Default::default(),
        })
    }

    /// Lets at most `limit` workspaces of this client and its clones have builds in flight at
    /// once (a workspace's stop→start holds one place from its first build to its end); the
    /// others wait their turn after planning, saying so ([`CoderEvent::QueuedForBuild`]).
    /// A server running operations for many callers sets it (see
    /// [`crate::operation::OperationLimits`]).
    pub fn with_build_limit(mut self, limit: usize) -> Self {
        let limit = limit.max(1);
        self.build_slots = Some(BuildSlots {
            semaphore: std::sync::Arc::new(tokio::sync::Semaphore::new(limit)),
            limit,
        });
        self
    }

    /// Waits for a place among the builds in flight (none needed when not limited); says so
    /// while it waits. Cancelled while waiting: nothing was changed.
    pub(crate) async fn build_slot(
        &self,
        what: &str,
        control: &crate::operation::Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>> {
        let Some(slots) = &self.build_slots else {
            return Ok(None);
        };
        if let Ok(permit) = slots.semaphore.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        on_event(CoderEvent::QueuedForBuild { limit: slots.limit });
        tokio::select! {
            permit = slots.semaphore.clone().acquire_owned() => Ok(permit.ok()),
            _ = control.cancelled() => Err(model::nothing_changed_interrupt(&what)),
        }
    }

    /// The generated client.
    pub fn api(&self) -> &api::Client {
        &self.api
    }

    /// The deployment URL (without `/api/v2`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Maps a failed call to an [`Error`], scrubbing the token.
    pub fn error<E: ServerErrorBody>(
        &self,
        action: impl Into<String>,
        err: progenitor_client::Error<E>,
    ) -> Error {
        let secrets: Vec<&Secret> = self.secrets.iter().collect();
        http::map_error(
            err,
            &CallContext {
                action: action.into(),
                api: "Coder",
                token_var: "CODER_SESSION_TOKEN",
                url_var: "CODER_URL",
                secrets: &secrets,
            },
        )
    }
}

http::retrying_client!(api::Client);

impl ServerErrorBody for types::Response {
    fn message(&self) -> String {
        http::server_words(self.message.as_deref(), self.detail.as_deref())
    }

    fn validations(&self) -> Vec<FieldProblem> {
        self.validations
            .iter()
            .map(|v| FieldProblem {
                field: v.field.clone(),
                detail: v.detail.clone(),
            })
            .collect()
    }
}
