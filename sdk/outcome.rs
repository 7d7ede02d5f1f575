//! What an operation (or one workspace of it) leaves behind and how bad its ending is: facts
//! the SDK states and each face words (the CLI as commands and exit codes, fleet-mcp as tool
//! calls). A floor below `error.rs` and `operation.rs`, which both use it; it uses neither.
//! [`Severity::of`] (from an error) is defined in `error.rs`.

use serde::Serialize;

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
