//! What an operation (or one workspace of it) leaves behind, how bad its ending is and why a
//! workspace was left alone ([`BusyReason`]; the rule is in `coder/busy.rs`): facts the SDK
//! states and each face words (the CLI as commands and exit codes, fleet-mcp as tool calls). A floor below `error.rs` and `operation.rs`, which both use it; it uses neither.
//! [`Severity::of`] (from an error) is defined in `error.rs`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// What an operation (or one workspace of it) leaves behind. The SDK states the fact; the CLI
/// renders it as a command line, fleet-mcp as a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Aftermath {
    /// Nothing was changed.
    NothingChanged,
    /// The work is done (or needed no change).
    Finished,
    /// The workspace is left stopped: `finish` finishes the job.
    LeftStopped {
        /// The operation that finishes the job.
        finish: FinishStep,
    },
    /// Something still runs on the server (a build, a migration): follow it.
    StillRunning {
        /// What to follow.
        follow: FollowStep,
    },
    /// It ended in a failure after a change (a build failed): the message says the state.
    Unknown,
}

/// How bad an ending is, from best to worst: ok, refused (nothing was changed), failed,
/// timed out (something may still be running, look again), interrupted. A batch ends as its
/// worst workspace (its maximum). The same on both planes; the faces map it to their words
/// (the CLI to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Done, or nothing to do.
    Ok,
    /// Refused before anything was changed (a pre-flight check, invalid input).
    Refused,
    /// Failed, or left stopped.
    Failed,
    /// A deadline passed.
    TimedOut,
    /// Interrupted.
    Interrupted,
}

/// The operation that finishes a job left half-way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum FinishStep {
    /// Update the workspace to this version (it waits for a build in progress first).
    Update {
        /// `owner/name`.
        workspace: String,
        /// The target version.
        template_version_id: uuid::Uuid,
        /// The parameter values the caller gave (the others are carried over again).
        parameters: std::collections::BTreeMap<String, String>,
    },
    /// Restart the workspace.
    Restart {
        /// `owner/name`.
        workspace: String,
        /// The parameter values the caller gave.
        parameters: std::collections::BTreeMap<String, String>,
    },
}

/// What to follow when something still runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum FollowStep {
    /// A Coder workspace's latest build.
    CoderWorkspace {
        /// `owner/name`.
        workspace: String,
    },
    /// A Molecule workspace's migration.
    Migration {
        /// The workspace id.
        workspace_id: String,
    },
}

/// Why fleet left a workspace alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusyReason {
    /// Someone else used it within the idle bound.
    InUse {
        /// Its owner (who used it).
        owner: String,
        /// When Coder last saw activity (`last_used_at`).
        last_used_at: DateTime<Utc>,
        /// How long before the check that was, in seconds.
        ago_seconds: u64,
    },
    /// An AI task is working in it.
    TaskWorking {
        /// The task's status message (at most 200 bytes, as the server sent it).
        message: String,
        /// The task, when Coder says.
        #[serde(skip_serializing_if = "Option::is_none")]
        task_id: Option<Uuid>,
    },
    /// A prebuilt workspace: Coder's reconciler updates it.
    Prebuild,
    /// Dormant: not accessible, awaiting deletion.
    Dormant {
        /// Since when.
        since: DateTime<Utc>,
    },
}

impl BusyReason {
    /// A short stable name (`in_use`, `task_working`, `prebuild`, `dormant`).
    pub fn kind(&self) -> &'static str {
        match self {
            BusyReason::InUse { .. } => "in_use",
            BusyReason::TaskWorking { .. } => "task_working",
            BusyReason::Prebuild => "prebuild",
            BusyReason::Dormant { .. } => "dormant",
        }
    }

    /// True when waiting may end it (someone stops working); false for prebuilt and dormant.
    pub fn may_end(&self) -> bool {
        matches!(
            self,
            BusyReason::InUse { .. } | BusyReason::TaskWorking { .. }
        )
    }
}

/// "2 min", "45 s", "3 h 5 min", "2 d".
fn ago(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 if secs % 3600 >= 60 => {
            format!("{} h {} min", secs / 3600, (secs % 3600) / 60)
        }
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

impl std::fmt::Display for BusyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusyReason::InUse {
                owner, ago_seconds, ..
            } => write!(
                f,
                "in use (last used {} ago by {})",
                ago(*ago_seconds),
                crate::text::escape_one_line(owner)
            ),
            BusyReason::TaskWorking { message, .. } if message.trim().is_empty() => {
                f.write_str("an AI task is working in it")
            }
            BusyReason::TaskWorking { message, .. } => write!(
                f,
                "an AI task is working in it (\"{}\")",
                crate::text::escape_one_line(message.trim())
            ),
            BusyReason::Prebuild => {
                f.write_str("a prebuilt workspace (Coder's prebuild reconciler updates it)")
            }
            BusyReason::Dormant { since } => write!(
                f,
                "dormant since {} (not accessible, awaiting deletion)",
                since.format("%Y-%m-%d %H:%M UTC")
            ),
        }
    }
}
