//! Coder operations: resolve a workspace, show and list workspaces, read a template version,
//! and the stop → wait → start → wait sequences of `update_workspace` and `restart_workspace`.
//!
//! Every operation lives here once; the CLI and the MCP server call these methods, render the
//! typed [`CoderEvent`]s, and map the [`Error`]s.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde::Serialize;
use uuid::Uuid;

use super::{
    CoderClient, JobStatus, WorkspaceStatus, WorkspaceTransition,
    params::{ParameterSource, ResolvedParameter},
    types,
};
use crate::{Error, Result, operation::Control};

// ---------------------------------------------------------------------------------------------
// Workspace references
// ---------------------------------------------------------------------------------------------

/// How a user names a workspace: its UUID, `owner/name`, or a bare name (the token's own user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceRef {
    /// A workspace ID.
    Id(Uuid),
    /// `owner/name` (`owner` may be `me`).
    OwnerName {
        /// The owner's username (or `me`).
        owner: String,
        /// The workspace name.
        name: String,
    },
}

impl WorkspaceRef {
    /// Parses `UUID`, `owner/name` or `name`. Fails with [`Error::InvalidInput`] (nothing sent).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::InvalidInput(
                "the workspace is empty; give a workspace ID, owner/name, or a name of your own"
                    .into(),
            ));
        }
        if let Ok(id) = Uuid::parse_str(text) {
            return Ok(WorkspaceRef::Id(id));
        }
        let (owner, name) = match text.split_once('/') {
            Some((owner, name)) => (owner, name),
            None => ("me", text),
        };
        for (what, part) in [("owner", owner), ("name", name)] {
            let ok = !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(Error::InvalidInput(format!(
                    "{text:?} is not a workspace reference: the {what} {part:?} must be letters, \
                     digits, '-', '_' or '.'; write a workspace ID, owner/name, or a name of your own"
                )));
            }
            // `.` and `..` are dropped from a URL's path: the request would reach another
            // endpoint with the session token.
            if part == "." || part == ".." {
                return Err(Error::InvalidInput(format!(
                    "{text:?} is not a workspace reference: the {what} {part:?} is a dot segment, \
                     which would be dropped from the URL; write a workspace ID, owner/name, or a \
                     name of your own. Nothing was sent"
                )));
            }
        }
        Ok(WorkspaceRef::OwnerName {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for WorkspaceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkspaceRef::Id(id) => write!(f, "{id}"),
            WorkspaceRef::OwnerName { owner, name } if owner == "me" => f.write_str(name),
            WorkspaceRef::OwnerName { owner, name } => write!(f, "{owner}/{name}"),
        }
    }
}

impl std::str::FromStr for WorkspaceRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        WorkspaceRef::parse(s)
    }
}

/// Parses a template version ID; [`Error::InvalidInput`] (nothing sent) when it is not a UUID.
pub fn parse_template_version_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text.trim()).map_err(|_| {
        Error::InvalidInput(format!(
            "{text:?} is not a template version ID: it must be a UUID like \
             0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30 (`fleet coder show WORKSPACE` shows the current one)"
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// What is shown (serializable summaries with JSON Schemas, for CLI JSON and MCP output)
// ---------------------------------------------------------------------------------------------

/// A workspace build, as fleet shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BuildInfo {
    /// Build ID.
    pub id: Option<Uuid>,
    /// Build number (per workspace).
    pub build_number: Option<i64>,
    /// start, stop or delete.
    pub transition: Option<WorkspaceTransition>,
    /// The build's status (running, stopped, failed, …).
    pub status: Option<WorkspaceStatus>,
    /// The provisioner job's status.
    pub job_status: Option<JobStatus>,
    /// The job's error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_error: Option<String>,
    /// The template version the build used.
    pub template_version_id: Option<Uuid>,
    /// That version's name.
    pub template_version_name: Option<String>,
    /// When the build was created (RFC 3339).
    pub created_at: Option<String>,
}

impl From<&types::WorkspaceBuild> for BuildInfo {
    fn from(b: &types::WorkspaceBuild) -> Self {
        BuildInfo {
            id: b.id,
            build_number: b.build_number,
            transition: b.transition.clone(),
            status: b.status.clone(),
            job_status: b.job.as_ref().and_then(|j| j.status.clone()),
            job_error: b
                .job
                .as_ref()
                .and_then(|j| j.error.clone())
                .filter(|e| !e.is_empty()),
            template_version_id: b.template_version_id,
            template_version_name: b.template_version_name.clone(),
            created_at: b.created_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// A workspace, as fleet shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkspaceInfo {
    /// Workspace ID.
    pub id: Option<Uuid>,
    /// `owner/name`, the reference fleet commands accept.
    pub full_name: String,
    /// Workspace name.
    pub name: Option<String>,
    /// Owner's username.
    pub owner_name: Option<String>,
    /// Template ID.
    pub template_id: Option<Uuid>,
    /// Template name.
    pub template_name: Option<String>,
    /// The status of the latest build (running, stopped, …).
    pub status: Option<WorkspaceStatus>,
    /// The template version of the latest build.
    pub template_version_id: Option<Uuid>,
    /// That version's name.
    pub template_version_name: Option<String>,
    /// The template's active version.
    pub template_active_version_id: Option<Uuid>,
    /// True when the workspace is not on the template's active version.
    pub outdated: Option<bool>,
    /// The latest build.
    pub latest_build: Option<BuildInfo>,
}

impl From<&types::Workspace> for WorkspaceInfo {
    fn from(w: &types::Workspace) -> Self {
        let b = w.latest_build.as_ref();
        WorkspaceInfo {
            id: w.id,
            full_name: full_name(w),
            name: w.name.clone(),
            owner_name: w.owner_name.clone(),
            template_id: w.template_id,
            template_name: w.template_name.clone(),
            status: b.and_then(|b| b.status.clone()),
            template_version_id: b.and_then(|b| b.template_version_id),
            template_version_name: b.and_then(|b| b.template_version_name.clone()),
            template_active_version_id: w.template_active_version_id,
            outdated: w.outdated,
            latest_build: b.map(BuildInfo::from),
        }
    }
}

/// A template version, as fleet shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TemplateVersionInfo {
    /// Template version ID.
    pub id: Option<Uuid>,
    /// Its name.
    pub name: Option<String>,
    /// The template it belongs to.
    pub template_id: Option<Uuid>,
    /// True when archived (cannot be used for new builds).
    pub archived: Option<bool>,
    /// The message it was pushed with.
    pub message: Option<String>,
    /// The import job's status (a version is usable once it succeeded).
    pub job_status: Option<JobStatus>,
    /// The import job's error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_error: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
}

impl From<&types::TemplateVersion> for TemplateVersionInfo {
    fn from(v: &types::TemplateVersion) -> Self {
        TemplateVersionInfo {
            id: v.id,
            name: v.name.clone(),
            template_id: v.template_id,
            archived: v.archived,
            message: v.message.clone(),
            job_status: v.job.as_ref().and_then(|j| j.status.clone()),
            job_error: v
                .job
                .as_ref()
                .and_then(|j| j.error.clone())
                .filter(|e| !e.is_empty()),
            created_at: v.created_at.map(|t| t.to_rfc3339()),
        }
    }
}

fn full_name(w: &types::Workspace) -> String {
    match (&w.owner_name, &w.name) {
        (Some(o), Some(n)) => format!("{o}/{n}"),
        (None, Some(n)) => n.clone(),
        _ => {
            w.id.map(|i| i.to_string())
                .unwrap_or_else(|| "(unnamed)".into())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options, events, outcomes
// ---------------------------------------------------------------------------------------------

/// How often a build is checked while fleet waits for it.
///
/// Soon after the build is created, then backing off (×`factor`) up to `max`. When the
/// template says how long its builds take ([`ExpectedDuration`], from Coder's
/// `build_time_stats`), fleet also checks every `near_end` around the time the build should
/// end — from a second before its median to a second after its 95th percentile, at most
/// `near_end_window` long — so completion is noticed within about `near_end`, for a few
/// dozen more reads per build instead of a fast poll all along.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// The first check after a build is created (or found in progress).
    pub initial: Duration,
    /// The longest interval between checks.
    pub max: Duration,
    /// How much the interval grows after each check (≥ 1).
    pub factor: f64,
    /// The interval around the expected end of a build.
    pub near_end: Duration,
    /// The longest stretch checked every `near_end`.
    pub near_end_window: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            factor: 1.5,
            near_end: Duration::from_millis(100),
            near_end_window: Duration::from_secs(12),
        }
    }
}

impl PollOptions {
    fn next(&self, current: Duration) -> Duration {
        current.mul_f64(self.factor.max(1.0)).min(self.max)
    }

    /// The pause before the next check, `elapsed` after the build was created, when the
    /// backoff has reached `current`; and the backoff to carry on with.
    pub fn pause(
        &self,
        current: Duration,
        elapsed: Duration,
        expected: Option<&ExpectedDuration>,
    ) -> (Duration, Duration) {
        let near_end = self.near_end.max(Duration::from_millis(10));
        if let Some(e) = expected {
            let lead = Duration::from_secs(1);
            let from = e.p50.saturating_sub(lead);
            let until = (e.p95.max(e.p50) + lead).min(from + self.near_end_window);
            if elapsed >= from && elapsed < until {
                return (near_end, near_end);
            }
            if elapsed < from && elapsed + current > from {
                // Wake up when the window opens rather than sleep through it.
                return ((from - elapsed).max(Duration::from_millis(1)), current);
            }
        }
        (current, self.next(current))
    }
}

/// Until when, and how, a build is read while fleet waits for it.
struct Until<'a> {
    deadline: Instant,
    poll: &'a PollOptions,
    expected: Option<&'a ExpectedDuration>,
}

/// How long a template's builds of one kind take (Coder's `build_time_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ExpectedDuration {
    /// The median.
    #[serde(serialize_with = "as_millis")]
    #[schemars(with = "u64")]
    pub p50: Duration,
    /// The 95th percentile.
    #[serde(serialize_with = "as_millis")]
    #[schemars(with = "u64")]
    pub p95: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl ExpectedDuration {
    /// The template's statistics for `transition` ("start", "stop"), when it has them.
    pub fn from_template(t: &types::Template, transition: &str) -> Option<Self> {
        let stats = t.build_time_stats.as_ref()?.get(transition)?;
        let p50 = u64::try_from(stats.p50?).ok().filter(|ms| *ms > 0)?;
        let p95 = stats
            .p95
            .and_then(|ms| u64::try_from(ms).ok())
            .unwrap_or(p50)
            .max(p50);
        Some(ExpectedDuration {
            p50: Duration::from_millis(p50),
            p95: Duration::from_millis(p95),
        })
    }
}

/// Options of [`CoderClient::update_workspace`] and [`CoderClient::restart_workspace`].
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// Stop and start even when the workspace already runs the target version.
    pub force: bool,
    /// How long the stop build (and a build found in progress) may take.
    pub stop_timeout: Duration,
    /// How long the start build may take.
    pub start_timeout: Duration,
    /// How builds are polled.
    pub poll: PollOptions,
    /// How many times a 409 (a build already active) is waited out before giving up.
    pub max_conflicts: u32,
    /// Parameter values given by the caller (`--parameter NAME=VALUE`, MCP `parameters`):
    /// they win over `parameters_file`, the previous build's values and the defaults.
    pub parameters: BTreeMap<String, String>,
    /// Parameter values read from a parameters file (`--parameters-file`).
    pub parameters_file: BTreeMap<String, String>,
}

/// The default deadline of a stop build.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The default deadline of a start build.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10 * 60);

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            force: false,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            start_timeout: DEFAULT_START_TIMEOUT,
            poll: PollOptions::default(),
            max_conflicts: 3,
            parameters: BTreeMap::new(),
            parameters_file: BTreeMap::new(),
        }
    }
}

/// Which build of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A build that was already in progress (not created by fleet).
    InProgress,
    /// The stop build.
    Stop,
    /// The start build.
    Start,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::InProgress => "build in progress",
            Step::Stop => "stop",
            Step::Start => "start",
        })
    }
}

/// What happens during an update or a restart, one event per step.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CoderEvent {
    /// The workspace and the target version are known.
    Planned {
        /// `owner/name`.
        workspace: String,
        /// Its status before anything was done.
        status: Option<WorkspaceStatus>,
        /// The version it runs.
        current_version_id: Option<Uuid>,
        /// The version it will run.
        target_version_id: Uuid,
        /// True when the target is the template's active version (no version was given).
        target_is_active_version: bool,
        /// Parameter values carried over from the previous build.
        parameters_carried: usize,
        /// The version it runs, as people read it (`v2 (uuid)`).
        current_version: String,
        /// The version it will run, as people read it.
        target_version: String,
    },
    /// A build is already in progress; fleet waits for it first.
    WaitingForBuildInProgress {
        /// Its ID.
        build_id: Option<Uuid>,
        /// Its transition.
        transition: Option<WorkspaceTransition>,
        /// Its status.
        status: Option<WorkspaceStatus>,
    },
    /// Coder answered 409 (another build became active); fleet waits for it, then goes on.
    Conflict {
        /// Which build fleet tried to create.
        step: Step,
        /// The server's words.
        message: String,
    },
    /// Nothing to do: the workspace already runs the target version.
    UpToDate {
        /// The version it runs.
        template_version_id: Uuid,
    },
    /// fleet created a build.
    BuildCreated {
        /// Stop or start.
        step: Step,
        /// The build's ID.
        build_id: Option<Uuid>,
        /// Its number.
        build_number: Option<i64>,
        /// The version it builds.
        template_version_id: Option<Uuid>,
    },
    /// A build POST failed (a server error, a reset, a timeout), but reading the workspace
    /// again found the build: fleet follows it (it never POSTs twice).
    BuildFoundAfterError {
        /// Stop or start.
        step: Step,
        /// The build found.
        build_id: Option<Uuid>,
        /// What the POST answered.
        error: String,
    },
    /// A build's status changed.
    BuildStatus {
        /// Which build.
        step: Step,
        /// The build's ID.
        build_id: Option<Uuid>,
        /// The build's status.
        status: Option<WorkspaceStatus>,
        /// The job's status.
        job_status: Option<JobStatus>,
        /// The job's place in the provisioner queue, while queued.
        queue_position: Option<i64>,
        /// Milliseconds since fleet started waiting for this build.
        elapsed_ms: u64,
    },
    /// A build ended well.
    BuildSucceeded {
        /// Which build.
        step: Step,
        /// The build's ID.
        build_id: Option<Uuid>,
        /// Its final status (stopped, running).
        status: Option<WorkspaceStatus>,
        /// Milliseconds it took (from fleet's first look).
        elapsed_ms: u64,
    },
    /// After the start: how the wait for the workspace's agents goes (see `coder::ready`).
    Readiness(super::ReadyEvent),
}

impl CoderEvent {
    /// One line for people.
    pub fn describe(&self) -> String {
        let s = |o: &Option<WorkspaceStatus>| {
            o.as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        match self {
            CoderEvent::Planned {
                workspace,
                status,
                target_is_active_version,
                parameters_carried,
                current_version,
                target_version,
                ..
            } => format!(
                "{workspace} is {} on version {current_version}; target version {target_version}{}; {parameters_carried} parameter value(s) carried over",
                s(status),
                if *target_is_active_version {
                    " (the template's active version)"
                } else {
                    ""
                },
            ),
            CoderEvent::WaitingForBuildInProgress {
                build_id,
                transition,
                status,
            } => format!(
                "a {} build{} is already {}; waiting for it first",
                transition
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "".into()),
                build_id.map(|b| format!(" ({b})")).unwrap_or_default(),
                s(status)
            ),
            CoderEvent::Conflict { step, message } => {
                format!(
                    "Coder refused the {step} build because another build is active ({message}); waiting for it"
                )
            }
            CoderEvent::UpToDate {
                template_version_id,
            } => {
                format!(
                    "already running version {template_version_id}: nothing to do (use force to restart anyway)"
                )
            }
            CoderEvent::BuildCreated {
                step,
                build_id,
                build_number,
                ..
            } => format!(
                "{step} build{} created{}",
                build_number.map(|n| format!(" #{n}")).unwrap_or_default(),
                build_id.map(|b| format!(" ({b})")).unwrap_or_default()
            ),
            CoderEvent::BuildFoundAfterError {
                step,
                build_id,
                error,
            } => format!(
                "creating the {step} build failed ({error}), but Coder created it{}: following it",
                build_id.map(|b| format!(" ({b})")).unwrap_or_default()
            ),
            CoderEvent::BuildStatus {
                step,
                status,
                job_status,
                queue_position,
                elapsed_ms,
                ..
            } => format!(
                "{step} build: {} (job {}{}) after {:.1}s",
                s(status),
                job_status
                    .as_ref()
                    .map(|j| j.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                queue_position
                    .filter(|p| *p > 0)
                    .map(|p| format!(", queue position {p}"))
                    .unwrap_or_default(),
                *elapsed_ms as f64 / 1000.0
            ),
            CoderEvent::BuildSucceeded {
                step,
                status,
                elapsed_ms,
                ..
            } => {
                format!(
                    "{step} build done: {} in {:.1}s",
                    s(status),
                    *elapsed_ms as f64 / 1000.0
                )
            }
            CoderEvent::Readiness(e) => e.describe(),
        }
    }
}

/// What an update or restart did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateAction {
    /// Stopped and started on the target version.
    Updated,
    /// Stopped and started on the same version.
    Restarted,
    /// It was stopped; started on the target version.
    Started,
    /// Already running the target version; nothing was done.
    UpToDate,
}

/// The result of [`CoderClient::update_workspace`] / [`CoderClient::restart_workspace`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UpdateOutcome {
    /// What was done.
    pub action: UpdateAction,
    /// One sentence for people.
    pub message: String,
    /// The workspace as it is now.
    pub workspace: WorkspaceInfo,
    /// The version it ran before.
    pub previous_version_id: Option<Uuid>,
    /// The version it runs now.
    pub template_version_id: Uuid,
    /// The builds fleet created, in order.
    pub builds: Vec<BuildInfo>,
    /// Milliseconds from the first request to the end.
    pub elapsed_ms: u64,
}

/// A list of workspaces.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkspaceList {
    /// How many are listed.
    pub count: usize,
    /// The workspaces.
    pub workspaces: Vec<WorkspaceInfo>,
}

/// `name (uuid)`, the UUID alone, or "unknown".
fn version_label(name: Option<&str>, id: Option<Uuid>) -> String {
    match (name.filter(|n| !n.is_empty()), id) {
        (Some(n), Some(id)) => format!("{n} ({id})"),
        (Some(n), None) => n.to_string(),
        (None, Some(id)) => id.to_string(),
        (None, None) => "unknown".into(),
    }
}

/// A build a plan would create, in order.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlannedBuild {
    /// stop or start.
    pub transition: WorkspaceTransition,
    /// The template version a start build would use (a stop build keeps the current one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_version_id: Option<Uuid>,
    /// How many parameter values a start build would send.
    pub parameter_values: usize,
}

/// A planned update or restart: everything read before anything is changed.
///
/// [`CoderClient::plan_update`] only reads, and it runs the pre-flight checks (target version
/// usable, `require_active_version`, parameter values): a plan exists only when Coder is
/// expected to accept both builds. [`CoderClient::run_plan`] sends exactly
/// [`UpdatePlan::parameters`]. Serialized (e.g. for a dry run), the workspace is shown as a
/// [`WorkspaceInfo`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UpdatePlan {
    /// The workspace (re-read after any build found in progress ended).
    #[serde(serialize_with = "serialize_workspace")]
    #[schemars(with = "WorkspaceInfo")]
    pub workspace: types::Workspace,
    /// The version the start build will use.
    pub target_version_id: Uuid,
    /// The target version, as read by the pre-flight check.
    pub target_version: TemplateVersionInfo,
    /// True when the target is the template's active version (none was given).
    pub target_is_active_version: bool,
    /// True for a restart (same version), false for an update.
    pub restart: bool,
    /// The parameter values the start build sends, each with where it came from.
    pub parameters: Vec<ResolvedParameter>,
    /// How long the template's stop builds take, when Coder says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_stop: Option<ExpectedDuration>,
    /// How long the template's start builds take, when Coder says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_start: Option<ExpectedDuration>,
}

fn serialize_workspace<S: serde::Serializer>(
    ws: &types::Workspace,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    WorkspaceInfo::from(ws).serialize(s)
}

impl UpdatePlan {
    /// The target version as people read it: `v3 (uuid)`, or the UUID when it has no name.
    pub fn target_label(&self) -> String {
        version_label(
            self.target_version.name.as_deref(),
            Some(self.target_version_id),
        )
    }

    /// The version the workspace runs now, as people read it.
    pub fn current_label(&self) -> String {
        let latest = self.workspace.latest_build.as_ref();
        version_label(
            latest.and_then(|b| b.template_version_name.as_deref()),
            latest.and_then(|b| b.template_version_id),
        )
    }

    /// The builds this plan needs, in order — the one rule both [`CoderClient::run_plan`] and a
    /// dry run follow: none when the workspace already runs the target version (and neither
    /// `restart` nor `force` asks for more); a start alone when it is stopped; otherwise a stop,
    /// then a start. A deleted workspace, or one in a state fleet does not know, is refused.
    pub fn builds(&self, force: bool) -> Result<Vec<PlannedBuild>> {
        let name = full_name(&self.workspace);
        let latest = self.workspace.latest_build.clone().unwrap_or_default();
        match &latest.status {
            Some(WorkspaceStatus::Deleted | WorkspaceStatus::Deleting) => {
                return Err(Error::Refused(format!(
                    "workspace {name} is deleted; there is nothing to start"
                )));
            }
            Some(WorkspaceStatus::Other(s)) => {
                return Err(Error::Refused(format!(
                    "workspace {name} is in a state fleet does not know ({s:?}); nothing was \
                     changed. Check it in Coder, then try again"
                )));
            }
            _ => {}
        }
        let on_target = latest.template_version_id == Some(self.target_version_id);
        if latest.status == Some(WorkspaceStatus::Running) && on_target && !self.restart && !force {
            return Ok(vec![]);
        }
        let start = PlannedBuild {
            transition: WorkspaceTransition::Start,
            template_version_id: Some(self.target_version_id),
            parameter_values: self.parameters.len(),
        };
        if latest.status == Some(WorkspaceStatus::Stopped) {
            return Ok(vec![start]);
        }
        let stop = PlannedBuild {
            transition: WorkspaceTransition::Stop,
            template_version_id: None,
            parameter_values: 0,
        };
        Ok(vec![stop, start])
    }

    fn workspace_id(&self) -> Result<Uuid> {
        self.workspace.id.ok_or_else(|| Error::Api {
            status: 200,
            message: "Coder answered a workspace without an id".into(),
            validations: vec![],
        })
    }

    fn current_version(&self) -> Option<Uuid> {
        self.workspace
            .latest_build
            .as_ref()
            .and_then(|b| b.template_version_id)
    }

    /// The operation that finishes the job if it is left half-way (with the parameter values
    /// the caller gave).
    pub fn finish_step(&self) -> crate::operation::FinishStep {
        let workspace = full_name(&self.workspace);
        let parameters = self
            .parameters
            .iter()
            .filter(|p| matches!(p.source, ParameterSource::Given | ParameterSource::File))
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        if self.restart {
            crate::operation::FinishStep::Restart {
                workspace,
                parameters,
            }
        } else {
            crate::operation::FinishStep::Update {
                workspace,
                template_version_id: self.target_version_id,
                parameters,
            }
        }
    }

    /// The workspace is left stopped: what finishes the job.
    fn left_stopped(&self) -> crate::operation::Aftermath {
        crate::operation::Aftermath::LeftStopped {
            finish: self.finish_step(),
        }
    }

    /// A build still runs on the server: what to follow.
    fn still_running(&self) -> crate::operation::Aftermath {
        crate::operation::Aftermath::StillRunning {
            follow: crate::operation::FollowStep::CoderWorkspace {
                workspace: full_name(&self.workspace),
            },
        }
    }

    /// The values the start build sends, as Coder takes them.
    pub fn build_parameters(&self) -> Vec<types::WorkspaceBuildParameter> {
        self.parameters
            .iter()
            .map(|p| types::WorkspaceBuildParameter {
                name: Some(p.name.clone()),
                value: Some(p.value.clone()),
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// How many log lines a failed build's error carries.
pub const LOG_LINES_SHOWN: usize = 20;

/// What a read after a failed build POST found.
enum AfterFailedPost {
    /// The build exists: follow it.
    Created(Box<types::WorkspaceBuild>),
    /// No new build: the POST did nothing.
    NotCreated(Box<types::Workspace>),
    /// The read failed too: it cannot be told.
    Unknown(Error),
}

/// Where a wait ended.
enum WaitEnd {
    Done(types::WorkspaceBuild),
    TimedOut(Option<types::WorkspaceBuild>, Duration),
    Cancelled(Option<types::WorkspaceBuild>),
}

fn status_of(b: &types::WorkspaceBuild) -> String {
    b.status
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// True when a build has ended (its job is done, or its status is not an in-progress one).
pub(super) fn build_ended(b: &types::WorkspaceBuild) -> bool {
    match b.job.as_ref().and_then(|j| j.status.as_ref()) {
        Some(JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled) => true,
        Some(JobStatus::Pending | JobStatus::Running | JobStatus::Canceling) => false,
        _ => match &b.status {
            Some(s) => !s.is_active() && !s.is_unknown(),
            None => false,
        },
    }
}

fn build_failed(b: &types::WorkspaceBuild) -> bool {
    matches!(
        b.job.as_ref().and_then(|j| j.status.as_ref()),
        Some(JobStatus::Failed | JobStatus::Canceled)
    ) || matches!(
        b.status,
        Some(WorkspaceStatus::Failed | WorkspaceStatus::Canceled)
    )
}

impl CoderClient {
    /// Finds a workspace: by ID, or by `owner/name` (exact lookup first, then a search that
    /// matches the name ignoring case).
    pub async fn resolve_workspace(&self, r: &WorkspaceRef) -> Result<types::Workspace> {
        match r {
            WorkspaceRef::Id(id) => self
                .api()
                .get_workspace_metadata_by_id(id)
                .await
                .map(|r| r.into_inner())
                .map_err(|e| match self.error(format!("reading workspace {id}"), e) {
                    Error::NotFound { .. } => Error::NotFound {
                        message: format!(
                            "no workspace with ID {id} (or the token cannot see it); `fleet coder list` shows the workspaces"
                        ),
                    },
                    other => other,
                }),
            WorkspaceRef::OwnerName { owner, name } => {
                match self.api().get_workspace_metadata_by_user_and_workspace_name(owner, name).await {
                    Ok(ws) => return Ok(ws.into_inner()),
                    Err(e) => match self.error(format!("reading workspace {r}"), e) {
                        Error::NotFound { .. } => {}
                        other => return Err(other),
                    },
                }
                // Names are matched ignoring case: search, then pick the exact match.
                let q = format!("owner:{owner} name:{name}");
                let list = self
                    .api()
                    .list_workspaces(Some(100), None, Some(&q))
                    .await
                    .map_err(|e| self.error(format!("searching for workspace {r}"), e))?
                    .into_inner();
                let matches: Vec<types::Workspace> = list
                    .workspaces
                    .into_iter()
                    .filter(|w| w.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                    .filter(|w| {
                        owner == "me"
                            || w.owner_name.as_deref().is_none_or(|o| o.eq_ignore_ascii_case(owner))
                    })
                    .collect();
                match matches.len() {
                    1 => Ok(matches.into_iter().next().expect("one match")),
                    0 => Err(Error::NotFound {
                        message: format!(
                            "no workspace {r} (names are matched ignoring case{}); `fleet coder list` shows the workspaces",
                            if owner == "me" { "; a bare name means one of your own, write owner/name for another user's" } else { "" }
                        ),
                    }),
                    _ => Err(Error::Refused(format!(
                        "{r} matches several workspaces ignoring case: {}; name one by its ID",
                        matches
                            .iter()
                            .map(|w| format!("{} ({})", full_name(w), w.id.map(|i| i.to_string()).unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
        }
    }

    /// Shows one workspace.
    pub async fn show_workspace(&self, r: &WorkspaceRef) -> Result<WorkspaceInfo> {
        Ok(WorkspaceInfo::from(&self.resolve_workspace(r).await?))
    }

    /// Lists the workspaces the token can see; with `outdated_only`, those not on their
    /// template's active version.
    pub async fn list_workspaces(&self, outdated_only: bool) -> Result<WorkspaceList> {
        const PAGE: i64 = 100;
        const MAX_PAGES: i64 = 100;
        let mut workspaces = Vec::new();
        for page in 0..MAX_PAGES {
            let resp = self
                .api()
                .list_workspaces(Some(PAGE), Some(page * PAGE), None)
                .await
                .map_err(|e| self.error("listing workspaces", e))?
                .into_inner();
            let got = resp.workspaces.len() as i64;
            workspaces.extend(resp.workspaces);
            let total = resp.count.unwrap_or(0);
            if got < PAGE || (workspaces.len() as i64) >= total {
                break;
            }
        }
        let workspaces: Vec<WorkspaceInfo> = workspaces
            .iter()
            .filter(|w| !outdated_only || w.outdated == Some(true))
            .map(WorkspaceInfo::from)
            .collect();
        Ok(WorkspaceList {
            count: workspaces.len(),
            workspaces,
        })
    }

    /// Reads a template version.
    pub async fn template_version(&self, id: &Uuid) -> Result<TemplateVersionInfo> {
        let v = self
            .api()
            .get_template_version_by_id(id)
            .await
            .map_err(|e| self.error(format!("reading template version {id}"), e))?
            .into_inner();
        Ok(TemplateVersionInfo::from(&v))
    }

    async fn template(&self, template_id: &Uuid) -> Result<types::Template> {
        self.api()
            .get_template_settings_by_id(template_id)
            .await
            .map(|t| t.into_inner())
            .map_err(|e| self.error(format!("reading template {template_id}"), e))
    }

    /// The template's active version.
    pub async fn active_version(&self, template_id: &Uuid) -> Result<Uuid> {
        let t = self.template(template_id).await?;
        t.active_version_id.ok_or_else(|| {
            Error::Refused(format!(
                "template {} has no active version; pass a template version explicitly",
                t.name.unwrap_or_else(|| template_id.to_string())
            ))
        })
    }

    /// Reads everything an update (or, with `restart`, a restart) needs, changing nothing:
    /// the workspace (waiting first for a build in progress), the target version (the given
    /// one, the template's active version, or for a restart the current one) and the previous
    /// build's parameter values.
    pub async fn plan_update(
        &self,
        r: &WorkspaceRef,
        template_version: Option<Uuid>,
        restart: bool,
        options: &UpdateOptions,
        cancel: impl Into<Control>,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<UpdatePlan> {
        let control: Control = cancel.into();
        let cancel = &control;
        let mut ws = cancellable(cancel, self.resolve_workspace(r), || {
            nothing_changed_interrupt(r)
        })
        .await?;
        if let Some(build) = ws.latest_build.clone().filter(|b| !build_ended(b)) {
            on_event(CoderEvent::WaitingForBuildInProgress {
                build_id: build.id,
                transition: build.transition.clone(),
                status: build.status.clone(),
            });
            let deadline = Instant::now() + options.stop_timeout.max(options.start_timeout);
            match self
                .wait_for_build(
                    &build,
                    Step::InProgress,
                    Until {
                        deadline,
                        poll: &options.poll,
                        expected: None,
                    },
                    cancel,
                    true,
                    on_event,
                )
                .await?
            {
                WaitEnd::Done(_) => {}
                WaitEnd::TimedOut(last, waited) => {
                    return Err(Error::Timeout {
                        message: format!(
                            "a {} build already in progress on {r} did not end within {}; nothing was changed. \
                             Try again later, or check it with `fleet coder show {r}`",
                            build
                                .transition
                                .as_ref()
                                .map(|t| t.to_string())
                                .unwrap_or_default(),
                            humantime::format_duration(round(waited))
                        ),
                        waited,
                        last_state: last.as_ref().map(status_of),
                    });
                }
                WaitEnd::Cancelled(_) => return Err(nothing_changed_interrupt(r)),
            }
            let id = ws.id.ok_or_else(no_id)?;
            ws = cancellable(cancel, self.read_workspace(&id), || {
                nothing_changed_interrupt(r)
            })
            .await?;
        }
        let latest = ws.latest_build.clone().unwrap_or_default();
        let current_version = latest.template_version_id;
        let mut template = None;
        let (target_version_id, target_is_active_version) = if restart {
            let v = current_version.ok_or_else(|| Error::Api {
                status: 200,
                message: format!("Coder did not say which template version {r} runs; cannot restart it on the same version"),
                validations: vec![],
            })?;
            (v, false)
        } else if let Some(v) = template_version {
            (v, false)
        } else {
            let template_id = ws.template_id.ok_or_else(|| Error::Api {
                status: 200,
                message: format!(
                    "Coder did not say which template {r} uses; pass --template-version"
                ),
                validations: vec![],
            })?;
            let t = cancellable(cancel, self.template(&template_id), || {
                nothing_changed_interrupt(r)
            })
            .await?;
            let v = t.active_version_id.ok_or_else(|| {
                Error::Refused(format!(
                    "template {} has no active version; pass a template version explicitly",
                    t.name.clone().unwrap_or_else(|| template_id.to_string())
                ))
            })?;
            template = Some(t);
            (v, true)
        };
        let previous = match latest.id {
            Some(build_id) => cancellable(
                cancel,
                async {
                    self.api()
                        .get_build_parameters_for_workspace_build(&build_id.to_string())
                        .await
                        .map(|p| p.into_inner())
                        .map_err(|e| {
                            self.error(format!("reading the parameters of build {build_id}"), e)
                        })
                },
                || nothing_changed_interrupt(r),
            )
            .await?
            .into_iter()
            .filter(|p| p.name.as_deref().is_some_and(|n| !n.is_empty()))
            .collect(),
            None => Vec::new(),
        };
        let name = full_name(&ws);
        let checked = cancellable(
            cancel,
            self.preflight(
                &ws,
                &name,
                target_version_id,
                template_version.is_some(),
                restart,
                template,
                &options.parameters,
                &options.parameters_file,
                &previous,
            ),
            || nothing_changed_interrupt(r),
        )
        .await?;
        let plan = UpdatePlan {
            workspace: ws,
            target_version_id,
            target_version: TemplateVersionInfo::from(&checked.version),
            target_is_active_version,
            restart,
            parameters: checked.parameters,
            expected_stop: checked
                .template
                .as_ref()
                .and_then(|t| ExpectedDuration::from_template(t, "stop")),
            expected_start: checked
                .template
                .as_ref()
                .and_then(|t| ExpectedDuration::from_template(t, "start")),
        };
        on_event(CoderEvent::Planned {
            workspace: full_name(&plan.workspace),
            status: latest.status.clone(),
            current_version_id: current_version,
            target_version_id,
            target_is_active_version,
            parameters_carried: plan
                .parameters
                .iter()
                .filter(|p| p.source == ParameterSource::PreviousBuild)
                .count(),
            current_version: plan.current_label(),
            target_version: plan.target_label(),
        });
        Ok(plan)
    }

    /// Updates a workspace to `template_version` (or the template's active version): waits for
    /// a build in progress, stops the workspace if it runs, then starts it on the target version
    /// with the previous build's parameter values, and waits until it runs.
    ///
    /// Running on the target version already: nothing is done (unless `options.force`).
    /// A stop that fails is never followed by a start.
    pub async fn update_workspace(
        &self,
        r: &WorkspaceRef,
        template_version: Option<Uuid>,
        options: &UpdateOptions,
        cancel: impl Into<Control>,
        mut on_event: impl FnMut(CoderEvent) + Send,
    ) -> Result<UpdateOutcome> {
        let control: Control = cancel.into();
        let started = Instant::now();
        let plan = self
            .plan_update(r, template_version, false, options, &control, &mut on_event)
            .await?;
        self.run_plan(&plan, options, &control, &mut on_event, started)
            .await
    }

    /// Restarts a workspace: stops it (if it runs), then starts it on the same version with the
    /// same parameter values, and waits until it runs.
    pub async fn restart_workspace(
        &self,
        r: &WorkspaceRef,
        options: &UpdateOptions,
        cancel: impl Into<Control>,
        mut on_event: impl FnMut(CoderEvent) + Send,
    ) -> Result<UpdateOutcome> {
        let control: Control = cancel.into();
        let started = Instant::now();
        let plan = self
            .plan_update(r, None, true, options, &control, &mut on_event)
            .await?;
        self.run_plan(&plan, options, &control, &mut on_event, started)
            .await
    }

    /// Carries out a plan: stop (when needed), wait, start on the target version, wait.
    pub async fn run_plan(
        &self,
        plan: &UpdatePlan,
        options: &UpdateOptions,
        cancel: impl Into<Control>,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
        started: Instant,
    ) -> Result<UpdateOutcome> {
        let control: Control = cancel.into();
        let cancel = &control;
        let ws_id = plan.workspace_id()?;
        let name = full_name(&plan.workspace);
        let previous_version_id = plan.current_version();
        let planned = plan.builds(options.force)?;
        if planned.is_empty() {
            on_event(CoderEvent::UpToDate {
                template_version_id: plan.target_version_id,
            });
            return Ok(UpdateOutcome {
                action: UpdateAction::UpToDate,
                message: format!(
                    "{name} already runs version {}: nothing to do (pass --force to stop and start it anyway)",
                    plan.target_label()
                ),
                workspace: WorkspaceInfo::from(&plan.workspace),
                previous_version_id,
                template_version_id: plan.target_version_id,
                builds: vec![],
                elapsed_ms: ms(started.elapsed()),
            });
        }

        let mut builds = Vec::new();
        let mut conflicts = 0u32;
        // A start alone: the workspace is stopped already.
        let mut stopped = planned.len() == 1;
        // The latest build known: a build with another id after a failed POST is a new one.
        let mut known_build = plan.workspace.latest_build.as_ref().and_then(|b| b.id);

        // ---- stop ---------------------------------------------------------------------------
        while !stopped {
            // Nothing is changed yet: any cancel (graceful or abort) ends it here.
            if cancel.is_cancelled() {
                return Err(nothing_changed_interrupt(&name));
            }
            let body = types::CreateWorkspaceBuildRequest {
                dry_run: None,
                rich_parameter_values: vec![],
                template_version_id: None,
                transition: WorkspaceTransition::Stop,
                ..super::build_request(WorkspaceTransition::Stop)
            };
            let build = match self.api().create_workspace_build(&ws_id, &body).await {
                Ok(b) => b.into_inner(),
                Err(e) => match self.error(format!("creating the stop build of {name}"), e) {
                    Error::Conflict { message, .. } => {
                        conflicts += 1;
                        let ws = self
                            .wait_out_conflict(
                                plan,
                                Step::Stop,
                                &message,
                                conflicts,
                                options,
                                cancel,
                                on_event,
                                false,
                            )
                            .await?;
                        known_build = ws.latest_build.as_ref().and_then(|b| b.id);
                        let s = ws.latest_build.as_ref().and_then(|b| b.status.clone());
                        stopped = s == Some(WorkspaceStatus::Stopped);
                        continue;
                    }
                    other if definite_refusal(&other) => return Err(other),
                    // The answer does not say whether the build exists: read, never re-POST.
                    other => match self
                        .look_after_failed_post(&ws_id, known_build, WorkspaceTransition::Stop)
                        .await
                    {
                        AfterFailedPost::Created(b) => {
                            on_event(CoderEvent::BuildFoundAfterError {
                                step: Step::Stop,
                                build_id: b.id,
                                error: other.to_string(),
                            });
                            *b
                        }
                        AfterFailedPost::NotCreated(ws) => {
                            return Err(append(
                                other,
                                &format!(
                                    "fleet read {name} again: no stop build was created and it is {}; nothing was changed",
                                    ws.latest_build
                                        .as_ref()
                                        .map(status_of)
                                        .unwrap_or_else(|| "unknown".into())
                                ),
                            ));
                        }
                        AfterFailedPost::Unknown(read) => {
                            return Err(Error::left(
                                append(
                                    other,
                                    &format!(
                                        "fleet could not tell whether the stop build was created (reading {name} again \
                                         failed: {read}); if {name} is stopping or stopped, finish the job"
                                    ),
                                ),
                                plan.left_stopped(),
                            ));
                        }
                    },
                },
            };
            on_event(CoderEvent::BuildCreated {
                step: Step::Stop,
                build_id: build.id,
                build_number: build.build_number,
                template_version_id: build.template_version_id,
            });
            let deadline = Instant::now() + options.stop_timeout;
            let end = self
                .wait_for_build(
                    &build,
                    Step::Stop,
                    Until {
                        deadline,
                        poll: &options.poll,
                        expected: plan.expected_stop.as_ref(),
                    },
                    cancel,
                    false,
                    on_event,
                )
                .await?;
            let done = match end {
                WaitEnd::Done(b) => b,
                WaitEnd::TimedOut(last, waited) => {
                    return Err(Error::left(
                        Error::Timeout {
                            message: format!(
                                "the stop build of {name} did not end within {} (last status: {}). The workspace is \
                                 being stopped and will be left stopped: nothing was started (finishing the job \
                                 waits for the stop first)",
                                humantime::format_duration(round(waited)),
                                last.as_ref()
                                    .map(status_of)
                                    .unwrap_or_else(|| "unknown".into()),
                            ),
                            waited,
                            last_state: last.as_ref().map(status_of),
                        },
                        plan.left_stopped(),
                    ));
                }
                WaitEnd::Cancelled(last) => {
                    return Err(Error::left(
                        Error::Interrupted {
                            message: format!(
                                "interrupted while {name} was stopping (status: {}). The stop build goes on and the \
                                 workspace will be left stopped: nothing was started",
                                last.as_ref()
                                    .map(status_of)
                                    .unwrap_or_else(|| "unknown".into()),
                            ),
                            last_state: last.as_ref().map(status_of),
                        },
                        plan.left_stopped(),
                    ));
                }
            };
            builds.push(BuildInfo::from(&done));
            if build_failed(&done) || done.status != Some(WorkspaceStatus::Stopped) {
                return Err(self.failed_build_error(&done, Step::Stop, plan).await);
            }
            known_build = done.id.or(known_build);
            stopped = true;
        }

        // ---- start --------------------------------------------------------------------------
        // A graceful cancel does not end it here: a stop is always followed by its start.
        let mut started_build = None;
        while started_build.is_none() {
            if cancel.is_aborted() {
                return Err(Error::left(
                    Error::Interrupted {
                        message: format!(
                            "interrupted: {name} is left stopped (nothing was started)"
                        ),
                        last_state: Some("stopped".into()),
                    },
                    plan.left_stopped(),
                ));
            }
            let body = types::CreateWorkspaceBuildRequest {
                dry_run: None,
                rich_parameter_values: plan.build_parameters(),
                template_version_id: Some(plan.target_version_id),
                transition: WorkspaceTransition::Start,
                ..super::build_request(WorkspaceTransition::Start)
            };
            match self.api().create_workspace_build(&ws_id, &body).await {
                Ok(b) => started_build = Some(b.into_inner()),
                Err(e) => match self.error(format!("creating the start build of {name}"), e) {
                    Error::Conflict { message, .. } => {
                        conflicts += 1;
                        let ws = self
                            .wait_out_conflict(
                                plan,
                                Step::Start,
                                &message,
                                conflicts,
                                options,
                                cancel,
                                on_event,
                                true,
                            )
                            .await?;
                        let b = ws.latest_build.clone().unwrap_or_default();
                        known_build = b.id.or(known_build);
                        if b.status == Some(WorkspaceStatus::Running)
                            && b.template_version_id == Some(plan.target_version_id)
                        {
                            // Someone else started it on the target version meanwhile.
                            started_build = Some(b);
                        } else if b.status != Some(WorkspaceStatus::Stopped) {
                            return Err(Error::Conflict {
                                message: format!(
                                    "{message}. Another build changed {name} while fleet was updating it; it is now {}. \
                                     Check it with `fleet coder show {name}`",
                                    status_of(&b)
                                ),
                                current_state: Some(status_of(&b)),
                            });
                        }
                        continue;
                    }
                    other if definite_refusal(&other) => {
                        return Err(left_stopped(other, &name, plan));
                    }
                    // The answer does not say whether the build exists: read, never re-POST.
                    other => match self
                        .look_after_failed_post(&ws_id, known_build, WorkspaceTransition::Start)
                        .await
                    {
                        AfterFailedPost::Created(b) => {
                            on_event(CoderEvent::BuildFoundAfterError {
                                step: Step::Start,
                                build_id: b.id,
                                error: other.to_string(),
                            });
                            started_build = Some(*b);
                            continue;
                        }
                        AfterFailedPost::NotCreated(_) => {
                            return Err(left_stopped(other, &name, plan));
                        }
                        AfterFailedPost::Unknown(read) => {
                            return Err(Error::left(
                                append(
                                    other,
                                    &format!(
                                        "The start build may or may not have been created (reading {name} again failed: \
                                         {read}); {name} may be left stopped: check it, and finish the job if it is stopped"
                                    ),
                                ),
                                plan.left_stopped(),
                            ));
                        }
                    },
                },
            }
        }
        let build = started_build.expect("set above");
        on_event(CoderEvent::BuildCreated {
            step: Step::Start,
            build_id: build.id,
            build_number: build.build_number,
            template_version_id: build.template_version_id,
        });
        let deadline = Instant::now() + options.start_timeout;
        let done = match self
            .wait_for_build(
                &build,
                Step::Start,
                Until {
                    deadline,
                    poll: &options.poll,
                    expected: plan.expected_start.as_ref(),
                },
                cancel,
                false,
                on_event,
            )
            .await?
        {
            WaitEnd::Done(b) => b,
            WaitEnd::TimedOut(last, waited) => {
                return Err(Error::left(
                    Error::Timeout {
                        message: format!(
                            "the start build of {name} did not end within {} (last status: {}). It may still \
                             finish: follow the workspace; if the start failed, finish the job",
                            humantime::format_duration(round(waited)),
                            last.as_ref()
                                .map(status_of)
                                .unwrap_or_else(|| "unknown".into()),
                        ),
                        waited,
                        last_state: last.as_ref().map(status_of),
                    },
                    plan.still_running(),
                ));
            }
            WaitEnd::Cancelled(last) => {
                return Err(Error::left(
                    Error::Interrupted {
                        message: format!(
                            "interrupted while {name} was starting (status: {}). The start build goes on on the \
                             server",
                            last.as_ref()
                                .map(status_of)
                                .unwrap_or_else(|| "unknown".into()),
                        ),
                        last_state: last.as_ref().map(status_of),
                    },
                    plan.still_running(),
                ));
            }
        };
        builds.push(BuildInfo::from(&done));
        if build_failed(&done) || done.status != Some(WorkspaceStatus::Running) {
            return Err(self.failed_build_error(&done, Step::Start, plan).await);
        }
        let mut ws = plan.workspace.clone();
        ws.latest_build = Some(done);
        if !plan.restart {
            ws.outdated = ws
                .template_active_version_id
                .map(|a| a != plan.target_version_id);
        }
        let action = if plan.restart {
            UpdateAction::Restarted
        } else if planned.len() == 1 {
            UpdateAction::Started
        } else {
            UpdateAction::Updated
        };
        let message = match action {
            UpdateAction::Restarted => {
                format!("{name} restarted on version {}", plan.target_label())
            }
            UpdateAction::Started => format!(
                "{name} was stopped; started on version {}",
                plan.target_label()
            ),
            _ => format!(
                "{name} updated from version {} to {} and running",
                plan.current_label(),
                plan.target_label()
            ),
        };
        Ok(UpdateOutcome {
            action,
            message,
            workspace: WorkspaceInfo::from(&ws),
            previous_version_id,
            template_version_id: plan.target_version_id,
            builds,
            elapsed_ms: ms(started.elapsed()),
        })
    }

    /// After a build POST that failed (a status other than 409, a reset, a timeout): reads the
    /// workspace to find out whether the build was created anyway. Never POSTs again.
    async fn look_after_failed_post(
        &self,
        ws_id: &Uuid,
        known_build: Option<Uuid>,
        transition: WorkspaceTransition,
    ) -> AfterFailedPost {
        match self.read_workspace(ws_id).await {
            Ok(ws) => match ws.latest_build.clone() {
                Some(b)
                    if b.id.is_some()
                        && b.id != known_build
                        && b.transition == Some(transition.clone()) =>
                {
                    tracing::warn!(workspace = %ws_id, build = ?b.id, "the build POST failed, but the build was created; following it");
                    AfterFailedPost::Created(Box::new(b))
                }
                _ => AfterFailedPost::NotCreated(Box::new(ws)),
            },
            Err(e) => AfterFailedPost::Unknown(e),
        }
    }

    async fn read_workspace(&self, id: &Uuid) -> Result<types::Workspace> {
        self.api()
            .get_workspace_metadata_by_id(id)
            .await
            .map(|w| w.into_inner())
            .map_err(|e| self.error(format!("reading workspace {id}"), e))
    }

    /// After a 409: re-reads the workspace and waits for the active build, if any.
    #[allow(clippy::too_many_arguments)]
    async fn wait_out_conflict(
        &self,
        plan: &UpdatePlan,
        step: Step,
        message: &str,
        conflicts: u32,
        options: &UpdateOptions,
        cancel: &Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
        after_stop: bool,
    ) -> Result<types::Workspace> {
        let name = full_name(&plan.workspace);
        let ws_id = plan.workspace_id()?;
        let ws = self.read_workspace(&ws_id).await?;
        let active = ws.latest_build.clone().filter(|b| !build_ended(b));
        let state = ws.latest_build.as_ref().map(status_of);
        let left = if after_stop {
            format!(" {name} is left stopped.")
        } else {
            " Nothing was changed by fleet.".to_string()
        };
        // After the stop, what is left is a stopped workspace: say what finishes the job.
        let with_left = |e: Error| {
            if after_stop {
                Error::left(e, plan.left_stopped())
            } else {
                e
            }
        };
        let Some(build) = active.filter(|_| conflicts <= options.max_conflicts) else {
            return Err(with_left(Error::Conflict {
                message: format!(
                    "{message}. Coder refused the {step} build of {name} {conflicts} time(s) because another build is active \
                     (workspace status: {}).{left}",
                    state.clone().unwrap_or_else(|| "unknown".into())
                ),
                current_state: state,
            }));
        };
        on_event(CoderEvent::Conflict {
            step,
            message: message.to_string(),
        });
        let deadline = Instant::now()
            + if after_stop {
                options.start_timeout
            } else {
                options.stop_timeout
            };
        match self
            .wait_for_build(
                &build,
                Step::InProgress,
                Until {
                    deadline,
                    poll: &options.poll,
                    expected: None,
                },
                cancel,
                // Before the stop nothing was changed: a graceful cancel may end the wait.
                !after_stop,
                on_event,
            )
            .await?
        {
            WaitEnd::Done(_) => self.read_workspace(&ws_id).await,
            WaitEnd::TimedOut(last, waited) => Err(with_left(Error::Timeout {
                message: format!(
                    "another build of {name} that blocked the {step} build did not end within {}.{left}",
                    humantime::format_duration(round(waited))
                ),
                waited,
                last_state: last.as_ref().map(status_of),
            })),
            WaitEnd::Cancelled(last) => Err(with_left(Error::Interrupted {
                message: format!("interrupted while waiting for another build of {name}.{left}"),
                last_state: last.as_ref().map(status_of),
            })),
        }
    }

    /// Polls a build until it ends, the deadline passes or the caller cancels: first soon after
    /// it was created, then backing off up to `poll.max`. Reads are retried by the HTTP layer.
    async fn wait_for_build(
        &self,
        build: &types::WorkspaceBuild,
        step: Step,
        until: Until<'_>,
        control: &Control,
        graceful_ends_it: bool,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<WaitEnd> {
        // A graceful cancel ends only a wait during which fleet has changed nothing; a stop
        // under way is followed by its start, a start by its end. An abort ends any wait.
        let stop_waiting = async {
            if graceful_ends_it {
                control.cancelled().await
            } else {
                control.aborted().await
            }
        };
        tokio::pin!(stop_waiting);
        let Until {
            deadline,
            poll,
            expected,
        } = until;
        let began = Instant::now();
        let Some(id) = build.id else {
            return Err(no_id());
        };
        let id_text = id.to_string();
        let mut last: Option<types::WorkspaceBuild> = None;
        let mut seen: Option<(Option<WorkspaceStatus>, Option<JobStatus>)> = None;
        let mut interval = poll.initial;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(WaitEnd::TimedOut(last, began.elapsed()));
            }
            let (pause, next) = poll.pause(interval, began.elapsed(), expected);
            interval = next;
            let sleep = pause.min(deadline - now);
            tokio::select! {
                _ = &mut stop_waiting => return Ok(WaitEnd::Cancelled(last)),
                _ = tokio::time::sleep(sleep) => {}
            }
            if Instant::now() >= deadline {
                return Ok(WaitEnd::TimedOut(last, began.elapsed()));
            }
            let read = tokio::select! {
                _ = &mut stop_waiting => return Ok(WaitEnd::Cancelled(last)),
                r = self.api().get_workspace_build(&id_text) => r,
            };
            let b = read
                .map_err(|e| self.error(format!("reading the {step} build {id}"), e))?
                .into_inner();
            let key = (
                b.status.clone(),
                b.job.as_ref().and_then(|j| j.status.clone()),
            );
            if seen.as_ref() != Some(&key) {
                on_event(CoderEvent::BuildStatus {
                    step,
                    build_id: b.id,
                    status: key.0.clone(),
                    job_status: key.1.clone(),
                    queue_position: b.job.as_ref().and_then(|j| j.queue_position),
                    elapsed_ms: ms(began.elapsed()),
                });
                seen = Some(key);
            }
            if build_ended(&b) {
                if !build_failed(&b) {
                    on_event(CoderEvent::BuildSucceeded {
                        step,
                        build_id: b.id,
                        status: b.status.clone(),
                        elapsed_ms: ms(began.elapsed()),
                    });
                }
                return Ok(WaitEnd::Done(b));
            }
            last = Some(b);
        }
    }

    /// The error for a build that ended failed or canceled: the job's error, the last lines of
    /// its log, the state the workspace is left in and what to do next.
    async fn failed_build_error(
        &self,
        b: &types::WorkspaceBuild,
        step: Step,
        plan: &UpdatePlan,
    ) -> Error {
        let name = full_name(&plan.workspace);
        let job_error = b
            .job
            .as_ref()
            .and_then(|j| j.error.clone())
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "Coder gave no error message".into());
        let logs = match b.id {
            Some(id) => match self
                .api()
                .get_workspace_build_logs(&id.to_string(), None, None, None)
                .await
            {
                Ok(lines) => {
                    let lines: Vec<String> = lines
                        .into_inner()
                        .into_iter()
                        .filter_map(|l| l.output)
                        .filter(|o| !o.trim().is_empty())
                        .collect();
                    let skip = lines.len().saturating_sub(LOG_LINES_SHOWN);
                    if lines.is_empty() {
                        "\nThe build log is empty.".to_string()
                    } else {
                        format!(
                            "\nLast lines of the build log:\n{}",
                            lines[skip..]
                                .iter()
                                .map(|l| format!("  | {l}"))
                                .collect::<Vec<_>>()
                                .join("\n")
                        )
                    }
                }
                Err(e) => format!(
                    "\n(The build log could not be read: {})",
                    self.error("reading the build log", e)
                ),
            },
            None => String::new(),
        };
        let number = b.build_number.map(|n| format!(" #{n}")).unwrap_or_default();
        let state = status_of(b);
        let next = match step {
            Step::Stop => format!(
                "The workspace was NOT started (its status is {state}). Look at the log above, fix the cause, then finish the job"
            ),
            _ => format!(
                "The workspace is left {state}. Look at the log above, fix the cause (template or parameters), then finish the job"
            ),
        };
        Error::left(
            Error::OperationFailed {
                message: format!(
                    "the {step} build{number} of {name} ended {state}: {job_error}{logs}\n{next}"
                ),
                final_state: Some(state),
            },
            plan.left_stopped(),
        )
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(ms(d))
}

fn no_id() -> Error {
    Error::Api {
        status: 200,
        message: "Coder answered without an id where one is required".into(),
        validations: vec![],
    }
}

fn nothing_changed_interrupt(what: &impl std::fmt::Display) -> Error {
    Error::Interrupted {
        message: format!("interrupted before anything was changed on {what}"),
        last_state: None,
    }
}

/// Coder refused the request before creating anything (a 4xx other than 408 and 429):
/// nothing to look for.
fn definite_refusal(e: &Error) -> bool {
    match e {
        Error::Api { status, .. } => (400..500).contains(status) && !matches!(status, 408 | 429),
        Error::Unauthorized { .. } | Error::NotFound { .. } | Error::InvalidInput(_) => true,
        _ => false,
    }
}

/// The error with one more sentence: what fleet found out, and what to do.
fn append(e: Error, text: &str) -> Error {
    let join = |m: String| {
        let m = m.trim_end().trim_end_matches('.').to_string();
        format!("{m}. {text}")
    };
    match e {
        Error::Api {
            status,
            message,
            validations,
        } => Error::Api {
            status,
            message: join(message),
            validations,
        },
        Error::Transport(message) => Error::Transport(join(message)),
        Error::NotFound { message } => Error::NotFound {
            message: join(message),
        },
        Error::Unauthorized { status, message } => Error::Unauthorized {
            status,
            message: join(message),
        },
        Error::Timeout {
            message,
            waited,
            last_state,
        } => Error::Timeout {
            message: join(message),
            waited,
            last_state,
        },
        other => other,
    }
}

/// The start build could not be created after the stop succeeded: say so.
fn left_stopped(e: Error, name: &str, plan: &UpdatePlan) -> Error {
    let tail = format!(
        "The stop succeeded but the start was refused, so {name} is left stopped; finish the job \
         once the cause is fixed"
    );
    let e = match e {
        Error::Api {
            status,
            message,
            validations,
        } => Error::Api {
            status,
            message: format!("{message}\n{tail}"),
            validations,
        },
        other => append(other, &tail),
    };
    Error::left(e, plan.left_stopped())
}

async fn cancellable<T>(
    cancel: &Control,
    fut: impl std::future::Future<Output = Result<T>>,
    on_cancel: impl FnOnce() -> Error,
) -> Result<T> {
    tokio::select! {
        _ = cancel.cancelled() => Err(on_cancel()),
        r = fut => r,
    }
}
