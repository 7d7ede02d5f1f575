//! The Coder model fleet works with: how a workspace is named and read, what an update is
//! asked to do ([`UpdateOptions`]), what it reports ([`CoderEvent`], [`UpdateOutcome`]).

use std::{collections::BTreeMap, time::Duration};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use uuid::Uuid;

use super::{CoderClient, JobStatus, WorkspaceStatus, WorkspaceTransition, types};
use crate::{Error, Look, Remedy, Result, poll::PollOptions};

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
        Error::advised(
            Error::InvalidInput(format!(
                "{text:?} is not a template version ID: it must be a UUID like \
                 0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30"
            )),
            vec![Remedy::Look {
                at: Look::Workspace { workspace: None },
            }],
        )
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

pub(super) fn full_name(w: &types::Workspace) -> String {
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

/// Options of [`CoderClient::start_update`] and [`CoderClient::start_restart`].
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
    /// Never let the server chain the start (`on_success`), even on Coder ≥ 2.36: stop, wait,
    /// start, wait from the client.
    pub client_driven: bool,
    /// On the server-side path: how long fleet waits, after the stop succeeded, for the start
    /// build the server creates before it starts the workspace itself.
    pub follow_up_bound: Duration,
    /// Notice a build's end by push (its live log stream, which also gives
    /// [`CoderEvent::BuildLog`]s), with slow polling as a safety net; false: poll only.
    pub push: bool,
    /// When a workspace counts as in use and is left alone (someone else's recent activity,
    /// an AI task working, prebuilt, dormant), and whether to wait for it.
    pub busy: BusyRules,
}

/// How long a workspace of someone else's must have been unused to count as idle (default).
pub const DEFAULT_IDLE_FOR: Duration = Duration::from_secs(30 * 60);

/// When a workspace counts as in use, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyRules {
    /// Someone else's workspace used within this long is in use.
    pub idle_for: Duration,
    /// Update workspaces in use, with an AI task working, or dormant anyway.
    pub include_busy: bool,
    /// Update prebuilt workspaces too.
    pub include_prebuilds: bool,
    /// Wait up to this long (from when fleet gets to it) for a workspace in use or with a task
    /// working to become idle, re-reading it with backoff; `None`: skip it at once.
    pub wait_for_idle: Option<Duration>,
}

impl Default for BusyRules {
    fn default() -> Self {
        BusyRules {
            idle_for: DEFAULT_IDLE_FOR,
            include_busy: false,
            include_prebuilds: false,
            wait_for_idle: None,
        }
    }
}

/// The default deadline of a stop build.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long fleet waits, after the stop succeeded, for the server to create the follow-up
/// start build before it starts the workspace itself.
pub const DEFAULT_FOLLOW_UP_BOUND: Duration = Duration::from_secs(30);
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
            client_driven: false,
            follow_up_bound: DEFAULT_FOLLOW_UP_BOUND,
            push: true,
            busy: BusyRules::default(),
        }
    }
}

/// Which way a run goes from stopped to started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunPath {
    /// One stop build carrying `on_success`: the server starts the workspace itself (Coder ≥
    /// 2.36), so no client going away can leave it stopped.
    ServerSide,
    /// fleet stops, waits, starts and waits.
    ClientDriven,
}

impl std::fmt::Display for RunPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunPath::ServerSide => "server-side",
            RunPath::ClientDriven => "client-driven",
        })
    }
}

/// Why a run planned server-side went on client-driven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Fallback {
    /// Coder refused to pin the version of the follow-up start (403: the session lacks
    /// template-update permission). Nothing was created; fleet stopped and started it.
    PinRefused {
        /// The server's words.
        message: String,
    },
    /// The stop succeeded but no start build appeared within the bound (a child refused at
    /// creation is never created): fleet started the workspace itself.
    NoFollowUp {
        /// How long fleet looked, in milliseconds.
        waited_ms: u64,
    },
    /// Another build became the latest one after the stop (someone else acted): fleet went on
    /// from what it found.
    Superseded {
        /// That build.
        build_id: Option<Uuid>,
        /// Its transition.
        transition: Option<WorkspaceTransition>,
        /// Its status.
        status: Option<WorkspaceStatus>,
    },
}

impl Fallback {
    /// One sentence for people.
    pub fn describe(&self) -> String {
        match self {
            Fallback::PinRefused { message } => format!(
                "Coder refused to pin the version of the start it would chain ({message}); going on \
                 client-driven: stop, then start from fleet"
            ),
            Fallback::NoFollowUp { waited_ms } => format!(
                "the stop succeeded but Coder created no start build within {:.1}s; fleet starts the \
                 workspace itself",
                *waited_ms as f64 / 1000.0
            ),
            Fallback::Superseded {
                transition, status, ..
            } => format!(
                "after the stop another build became the latest one ({} {}); fleet goes on from there",
                transition
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                status.as_ref().map(|s| s.to_string()).unwrap_or_default()
            ),
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
        /// The version it runs, as people read it: its name (`v2`), else its ID.
        current_version: String,
        /// The version it will run, as people read it: its name, else its ID.
        target_version: String,
        /// Which way it goes from stopped to started.
        path: RunPath,
        /// Why that path, in a sentence.
        path_reason: String,
    },
    /// One line of a build's log, as the server wrote it (live, in order, each once).
    BuildLog {
        /// Which build.
        step: Step,
        /// The build's ID.
        build_id: Option<Uuid>,
        /// The line's id (increasing).
        log_id: Option<i64>,
        /// Its level.
        level: Option<super::LogLevel>,
        /// The stage it belongs to ("Planning infrastructure", …).
        stage: Option<String>,
        /// The text (the server's words: escape before showing).
        output: String,
    },
    /// The server runs as many builds at once as it allows (`limit`): this workspace waits
    /// its turn, nothing changed yet.
    QueuedForBuild {
        /// Builds in flight at once, at most.
        limit: usize,
    },
    /// The reader fell behind the events: this many of them (log lines first) were dropped
    /// and not given to it. The operation's state is not affected.
    LogLinesDropped {
        /// How many events were dropped.
        count: u64,
    },
    /// The live log stream of a build could not be opened or kept dropping: fleet notices the
    /// build's end by polling instead (no state is lost).
    LogsUnavailable {
        /// Which build.
        step: Step,
        /// Why.
        reason: String,
    },
    /// The server-side path could not be kept: fleet goes on client-driven.
    FellBack {
        /// Why.
        fallback: Fallback,
    },
    /// Someone (or an AI task) is at work in the workspace; fleet waits for it to be idle.
    WaitingForIdle {
        /// Why it is busy now.
        reason: super::BusyReason,
        /// How long fleet waits at most, in milliseconds.
        wait_ms: u64,
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
        /// True when the server created it (the start chained by `on_success`), not fleet.
        by_server: bool,
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
            // One short line; the path's reason is in the summary, at --log-level info and in
            // JSON (issue 27 item 7).
            CoderEvent::Planned {
                workspace,
                status,
                current_version_id,
                target_version_id,
                target_is_active_version,
                parameters_carried,
                current_version,
                target_version,
                path,
                ..
            } => format!(
                "{workspace}: {}{}, {}; {path}; {parameters_carried} parameter value(s) carried over",
                if *current_version_id == Some(*target_version_id) {
                    format!("stays on {target_version}")
                } else {
                    format!("{current_version} → {target_version}")
                },
                if *target_is_active_version {
                    " (the template's active version)"
                } else {
                    ""
                },
                s(status),
            ),
            CoderEvent::FellBack { fallback } => fallback.describe(),
            CoderEvent::BuildLog { step, output, .. } => format!("{step} build log: {output}"),
            CoderEvent::QueuedForBuild { limit } => format!(
                "queued: the most builds allowed at once ({limit}) are in flight; it starts \
                 when one ends"
            ),
            CoderEvent::LogLinesDropped { count } => {
                format!("{count} log line(s) dropped: they came faster than they were read")
            }
            CoderEvent::LogsUnavailable { step, reason } => format!(
                "the live log of the {step} build is not available ({reason}); polling instead"
            ),
            CoderEvent::WaitingForIdle { reason, wait_ms } => format!(
                "{reason}: waiting up to {:.0}s for it to become idle",
                *wait_ms as f64 / 1000.0
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
                format!("already running version {template_version_id}: nothing to do")
            }
            CoderEvent::BuildCreated {
                step,
                build_id,
                build_number,
                by_server,
                ..
            } => format!(
                "{step} build{} created{}{}",
                build_number.map(|n| format!(" #{n}")).unwrap_or_default(),
                build_id.map(|b| format!(" ({b})")).unwrap_or_default(),
                if *by_server {
                    " by the server (on_success)"
                } else {
                    ""
                }
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
                ..
            } => format!(
                // No clock: a progress display shows its own, and the build's end says how
                // long it took (issue 27 item 7: two clocks disagreed).
                "{step} build: {} (job {}{})",
                s(status),
                job_status
                    .as_ref()
                    .map(|j| j.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                queue_position
                    .filter(|p| *p > 0)
                    .map(|p| format!(", queue position {p}"))
                    .unwrap_or_default(),
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

/// The result of [`CoderClient::start_update`] / [`CoderClient::start_restart`].
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
    /// The builds of the run, in order (a start the server chained included).
    pub builds: Vec<BuildInfo>,
    /// Which way it went from stopped to started (after a fallback: client-driven).
    pub path: RunPath,
    /// Why that path was planned, in a sentence.
    pub path_reason: String,
    /// Why a run planned server-side went on client-driven, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
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
    /// Which workspaces the list covers, and how many every owner has in the same scope
    /// (see [`CoderClient::list_workspaces_in`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ListScope>,
}

/// Which workspaces a listing or a selection covered, and how many every owner has in the
/// same scope: a list of one's own outdated workspaces and a rollout over every owner's do
/// not disagree in silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ListScope {
    /// Whose workspaces: `me` (the token's user), an owner's name; `None`: every owner's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The template, when limited to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Only outdated workspaces.
    pub outdated_only: bool,
    /// How many are in the scope.
    pub count: usize,
    /// How many every owner has in the same scope, when the scope is one owner's and the
    /// server said (`count` of the same search without the owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_owners_count: Option<usize>,
}

/// How many pages of a listing are fetched at once, after the first.
pub const PAGES_AT_ONCE: usize = 16;

/// Which workspaces a listing (or the selection of a rollout) covers: the CLI's `coder list`
/// and the MCP server's `list_agents` alike. Every field given narrows it; the default covers
/// every workspace the token can see. Coder applies the filters; fleet checks the name prefix
/// (Coder matches names partially), and the template and `outdated` again (a server may
/// ignore a filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceFilter {
    /// Only this owner's workspaces: a username, or `me` (the token's user). `None`: every
    /// owner's the token can see.
    pub owner: Option<String>,
    /// Only the workspaces of this template (by name, ignoring case).
    pub template: Option<String>,
    /// Only outdated (`true`: not on their template's active version) or only current
    /// (`false`) workspaces.
    pub outdated: Option<bool>,
    /// Only workspaces whose latest build has this status (running, stopped, failed, …).
    pub status: Option<String>,
    /// Only workspaces whose name starts with this (ignoring case).
    pub name_prefix: Option<String>,
}

/// The longest value a filter takes (names in Coder are far shorter).
const FILTER_VALUE_MAX: usize = 256;

impl WorkspaceFilter {
    /// Every value given, by what it is: a name of letters, digits, '-', '_' or '.' (what
    /// Coder's names are made of, and what its search syntax carries as it is).
    fn values(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("an owner name", self.owner.as_deref()),
            ("a template name", self.template.as_deref()),
            ("a build status", self.status.as_deref()),
            ("a workspace name prefix", self.name_prefix.as_deref()),
        ]
    }

    /// Checks what needs no server. [`Error::InvalidInput`] (nothing sent) otherwise.
    pub fn check(&self) -> Result<()> {
        for (what, value) in self.values() {
            let Some(v) = value else { continue };
            let v = v.trim();
            if v.is_empty()
                || v.len() > FILTER_VALUE_MAX
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(Error::InvalidInput(format!(
                    "{:?} is not {what}: letters, digits, '-', '_' or '.'; nothing was sent",
                    v.chars().take(60).collect::<String>()
                )));
            }
        }
        Ok(())
    }

    /// The owner the listing covers: `me`, a name, or `None` for every owner.
    pub fn owner(&self) -> Option<String> {
        self.owner.as_deref().map(|o| o.trim().to_string())
    }

    /// Coder's search query for it (after [`WorkspaceFilter::check`]), with the owner or
    /// without it (how many every owner has in the same scope).
    pub(crate) fn query(&self, with_owner: bool) -> String {
        let mut terms = Vec::new();
        let owner = if with_owner {
            self.owner.as_deref()
        } else {
            None
        };
        for (key, value) in [
            ("owner", owner),
            ("template", self.template.as_deref()),
            ("status", self.status.as_deref()),
            ("name", self.name_prefix.as_deref()),
        ] {
            if let Some(v) = value {
                terms.push(format!("{key}:{}", v.trim()));
            }
        }
        if let Some(o) = self.outdated {
            terms.push(format!("outdated:{o}"));
        }
        terms.join(" ")
    }

    /// True when `w` passes the filters Coder cannot apply exactly (the name prefix) and the
    /// ones a server may ignore (`outdated`, the template).
    pub fn admits(&self, w: &types::Workspace) -> bool {
        let prefix_ok = match self.name_prefix.as_deref().map(str::trim) {
            Some(p) => w.name.as_deref().is_some_and(|n| {
                n.get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p))
            }),
            None => true,
        };
        let outdated_ok = self
            .outdated
            .is_none_or(|o| w.outdated.unwrap_or(false) == o);
        let template_ok = self.template.as_deref().is_none_or(|t| {
            w.template_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(t.trim()))
        });
        prefix_ok && outdated_ok && template_ok
    }
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
                    // An ID has no near miss worth suggesting.
                    Error::NotFound { .. } => Error::advised(
                        Error::UnknownWorkspace {
                            message: format!(
                                "no workspace with ID {id} (or the token cannot see it); nothing \
                                 was changed"
                            ),
                            did_you_mean: None,
                        },
                        vec![Remedy::Look {
                            at: Look::Workspaces,
                        }],
                    ),
                    other => other,
                }),
            WorkspaceRef::OwnerName { owner, name } => {
                match self
                    .api()
                    .get_workspace_metadata_by_user_and_workspace_name(owner, name)
                    .await
                {
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
                    .filter(|w| {
                        w.name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    })
                    .filter(|w| {
                        owner == "me"
                            || w.owner_name
                                .as_deref()
                                .is_none_or(|o| o.eq_ignore_ascii_case(owner))
                    })
                    .collect();
                match matches.len() {
                    1 => Ok(matches.into_iter().next().expect("one match")),
                    0 => {
                        let message = format!(
                            "no workspace {r} (names are matched ignoring case{}); nothing was changed",
                            if owner == "me" {
                                "; a bare name means one of your own, write owner/name for another user's"
                            } else {
                                ""
                            }
                        );
                        let suggestion = self.closest_workspace(owner, name).await;
                        let did_you_mean = suggestion.clone();
                        let message = match &suggestion {
                            Some(s) => format!("{message}; did you mean {s}?"),
                            None => message,
                        };
                        Err(Error::advised(
                            Error::UnknownWorkspace {
                                message,
                                did_you_mean,
                            },
                            vec![Remedy::Look {
                                at: Look::Workspaces,
                            }],
                        ))
                    }
                    _ => Err(Error::Refused(format!(
                        "{r} matches several workspaces ignoring case: {}; name one by its ID",
                        matches
                            .iter()
                            .map(|w| format!(
                                "{} ({})",
                                full_name(w),
                                w.id.map(|i| i.to_string()).unwrap_or_default()
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
        }
    }

    /// The workspace (`owner/name`) closest to a name that matched none, by edit distance
    /// (see [`crate::text::closest`]): among the owner's workspaces first, then among all
    /// those the token can see (one page each). Best effort: `None` when nothing is close or
    /// the list cannot be read.
    async fn closest_workspace(&self, owner: &str, name: &str) -> Option<String> {
        const PAGE: i64 = 100;
        let owners = self
            .api()
            .list_workspaces(Some(PAGE), None, Some(&format!("owner:{owner}")))
            .await
            .map(|l| l.into_inner().workspaces)
            .unwrap_or_default();
        let names = owners.iter().filter_map(|w| w.name.as_deref());
        if let Some(near) = crate::text::closest(name, names) {
            return owners
                .iter()
                .find(|w| w.name.as_deref() == Some(near.as_str()))
                .map(full_name);
        }
        if owner == "me" {
            return None;
        }
        let all = self
            .api()
            .list_workspaces(Some(PAGE), None, None)
            .await
            .map(|l| l.into_inner().workspaces)
            .unwrap_or_default();
        let full: Vec<String> = all.iter().map(full_name).collect();
        crate::text::closest(&format!("{owner}/{name}"), full.iter().map(String::as_str))
    }

    /// Shows one workspace.
    pub async fn show_workspace(&self, r: &WorkspaceRef) -> Result<WorkspaceInfo> {
        Ok(WorkspaceInfo::from(&self.resolve_workspace(r).await?))
    }

    /// Lists the workspaces the token can see; with `outdated_only`, those not on their
    /// template's active version.
    pub async fn list_workspaces(&self, outdated_only: bool) -> Result<WorkspaceList> {
        let filter = WorkspaceFilter {
            outdated: outdated_only.then_some(true),
            ..WorkspaceFilter::default()
        };
        self.list_workspaces_matching(&filter).await
    }

    /// Lists the workspaces the token can see that match `filter` (Coder filters on its side;
    /// the name prefix is checked here), in Coder's order.
    pub async fn list_workspaces_matching(
        &self,
        filter: &WorkspaceFilter,
    ) -> Result<WorkspaceList> {
        filter.check()?;
        let q = filter.query(true);
        let all = self
            .all_workspaces(
                Some(q.as_str()).filter(|q| !q.is_empty()),
                "listing workspaces",
            )
            .await?;
        let workspaces: Vec<WorkspaceInfo> = all
            .iter()
            .filter(|w| filter.admits(w))
            .map(WorkspaceInfo::from)
            .collect();
        Ok(WorkspaceList {
            count: workspaces.len(),
            workspaces,
            scope: None,
        })
    }

    /// [`CoderClient::list_workspaces_matching`], and the scope it covers: with one owner's
    /// workspaces, how many every owner has in the same scope.
    pub async fn list_workspaces_in(&self, filter: &WorkspaceFilter) -> Result<WorkspaceList> {
        let mut list = self.list_workspaces_matching(filter).await?;
        list.scope = Some(self.scope_of(filter, list.count).await);
        Ok(list)
    }

    /// The scope of a listing or selection of `count` workspaces; for one owner's, how many
    /// every owner has (one more search, one row, its `count`; left out when it fails).
    pub(crate) async fn scope_of(&self, filter: &WorkspaceFilter, count: usize) -> ListScope {
        let owner = filter.owner();
        let all_owners_count = match &owner {
            None => None,
            Some(_) => self
                .api()
                .list_workspaces(Some(1), None, Some(&filter.query(false)))
                .await
                .ok()
                .and_then(|r| r.into_inner().count)
                .and_then(|c| usize::try_from(c).ok()),
        };
        ListScope {
            owner,
            template: filter.template.as_ref().map(|t| t.trim().to_string()),
            outdated_only: filter.outdated == Some(true),
            count,
            all_owners_count,
        }
    }

    /// Every workspace matching the Coder search query `q` (every one without), all pages. The
    /// first page tells how many there are; the others are then fetched concurrently (at most
    /// [`PAGES_AT_ONCE`], within the client's bound on requests in flight). A workspace seen
    /// twice (it moved in Coder's order between two pages) is kept once.
    pub(super) async fn all_workspaces(
        &self,
        q: Option<&str>,
        what: &str,
    ) -> Result<Vec<types::Workspace>> {
        const PAGE: i64 = 100;
        const MAX_PAGES: i64 = 1000;
        let page = |n: i64| async move {
            self.api()
                .list_workspaces(Some(PAGE), Some(n * PAGE), q)
                .await
                .map(|r| r.into_inner())
                .map_err(|e| {
                    self.error(
                        match q {
                            Some(q) => format!("{what} ({q})"),
                            None => what.to_string(),
                        },
                        e,
                    )
                })
        };
        let first = page(0).await?;
        let mut total = first.count.unwrap_or(0).max(0);
        let mut last_full = first.workspaces.len() as i64 >= PAGE;
        let mut all = first.workspaces;
        let pages = ((total + PAGE - 1) / PAGE).clamp(1, MAX_PAGES);
        let mut next = 1;
        if last_full && pages > 1 {
            let rest: Vec<types::WorkspacesResponse> = futures::stream::iter(1..pages)
                .map(page)
                .buffered(PAGES_AT_ONCE)
                .try_collect()
                .await?;
            next = pages;
            for r in rest {
                last_full = r.workspaces.len() as i64 >= PAGE;
                total = total.max(r.count.unwrap_or(0));
                all.extend(r.workspaces);
            }
        }
        // The fleet grew while it was listed: the rest, one page after another.
        while last_full && (all.len() as i64) < total && next < MAX_PAGES {
            let r = page(next).await?;
            next += 1;
            last_full = r.workspaces.len() as i64 >= PAGE;
            total = total.max(r.count.unwrap_or(0));
            all.extend(r.workspaces);
        }
        let mut seen = std::collections::HashSet::new();
        all.retain(|w| w.id.is_none_or(|id| seen.insert((id, full_name(w)))));
        Ok(all)
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

    pub(super) async fn template(&self, template_id: &Uuid) -> Result<types::Template> {
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
}

pub(super) use crate::operation::ms;

pub(super) fn round(d: Duration) -> Duration {
    Duration::from_millis(ms(d))
}

pub(super) fn no_id() -> Error {
    Error::Api {
        status: 200,
        message: "Coder answered without an id where one is required".into(),
        validations: vec![],
    }
}

/// How many log lines a failed build's error carries.
pub const LOG_LINES_SHOWN: usize = 20;

pub(super) fn nothing_changed_interrupt(what: &impl std::fmt::Display) -> Error {
    Error::Interrupted {
        message: format!("interrupted before anything was changed on {what}"),
        last_state: None,
    }
}

/// The error with one more sentence: what fleet found out, and what to do.
pub(super) fn append(e: Error, text: &str) -> Error {
    e.map_message(|m| format!("{}. {text}", m.trim_end().trim_end_matches('.')))
}
