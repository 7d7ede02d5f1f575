//! Ready, not only built: after a start build succeeds, wait until the workspace works.
//!
//! A start build that succeeds does not prove the workspace works: its agent may never
//! connect, or its startup script may fail. [`CoderClient::start_wait_until_ready`] reads the start
//! build (`GET /workspacebuilds/{id}`, the same `resources[].agents[]` as the workspace's
//! `latest_build`) until every agent is `connected` with
//! `lifecycle_state` `ready` (and not `health.healthy = false`), or one of them shows it never
//! will, or the bound passes. It reports facts ([`ReadyReport`]): each agent's name, status,
//! lifecycle state and `health.reason`, and what is wrong with it ([`AgentProblem`]).
//!
//! - Unhealthy: a `start_error` or `start_timeout` lifecycle, an agent status `timeout`, a
//!   ready agent with `health.healthy = false`, or no readiness within the bound.
//! - An agent without a startup script becomes ready as soon as it connects (Coder moves its
//!   lifecycle to `ready` at once); nothing here waits for a script that does not exist.
//! - A build with `has_external_agent` runs an agent fleet does not manage: it is not waited
//!   for, and the report says so ([`Readiness::NotWaited`]).

use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

use super::{
    AgentLifecycle, AgentStatus, CoderClient, PollOptions, WorkspaceStatus, WorkspaceTransition,
    types,
};
use crate::{
    Result,
    operation::{Control, ms},
};

/// How long fleet waits for a started workspace's agents unless told otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The ready timeouts fleet takes: at least a second, at most a day.
pub const READY_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 60 * 60);

/// How [`CoderClient::start_wait_until_ready`] waits.
#[derive(Debug, Clone)]
pub struct ReadyOptions {
    /// The bound: past it, the workspace counts as unhealthy.
    pub timeout: Duration,
    /// How often the workspace is read when it is polled.
    pub poll: PollOptions,
    /// Follow the workspace's `watch-ws` (the agents arrive with each pushed update), with a
    /// slow read as a safety net; polling when it cannot open or drops. False: poll only.
    pub push: bool,
}

impl Default for ReadyOptions {
    fn default() -> Self {
        ReadyOptions {
            timeout: DEFAULT_READY_TIMEOUT,
            poll: PollOptions::default(),
            push: true,
        }
    }
}

/// While pushes come: the first safety-net read of the build after this long, then every
/// [`PUSH_SAFETY_MAX`] (the pace of the build log streams' safety net, `push.rs`).
const PUSH_SAFETY_FIRST: Duration = Duration::from_secs(10);
/// The longest pause between two safety-net reads while pushes come.
const PUSH_SAFETY_MAX: Duration = Duration::from_secs(30);

impl ReadyOptions {
    /// A ready timeout, when it is in [`READY_TIMEOUT_RANGE`] (whole seconds count).
    pub fn check_timeout(timeout: Duration) -> Result<Duration> {
        crate::rollout::within_duration(crate::Input::ReadyTimeout, timeout, &READY_TIMEOUT_RANGE)
    }

    /// Checks the timeout against [`READY_TIMEOUT_RANGE`].
    pub fn check(&self) -> Result<()> {
        Self::check_timeout(self.timeout).map(|_| ())
    }
}

/// Whether a started workspace works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Every agent is connected and ready (or the workspace has no agent).
    Ready,
    /// An agent failed, timed out, reports itself unhealthy, or was not ready in time.
    Unhealthy,
    /// Not waited for: the workspace runs an external agent (`has_external_agent`).
    NotWaited,
    /// The wait was cancelled before the agents were ready: not confirmed either way.
    Interrupted,
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Readiness::Ready => "ready",
            Readiness::Unhealthy => "unhealthy",
            Readiness::NotWaited => "not waited for",
            Readiness::Interrupted => "not confirmed (interrupted)",
        })
    }
}

/// What is wrong with one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentProblem {
    /// Lifecycle `start_error`: its startup script failed.
    StartError,
    /// Lifecycle `start_timeout`: its startup script took too long.
    StartTimeout,
    /// Status `timeout`: it did not connect in time.
    ConnectionTimeout,
    /// Ready, but `health.healthy` is false.
    Unhealthy,
    /// Not ready within the bound.
    NotReadyInTime,
}

impl std::fmt::Display for AgentProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgentProblem::StartError => "its startup script failed",
            AgentProblem::StartTimeout => "its startup script timed out",
            AgentProblem::ConnectionTimeout => "it did not connect in time",
            AgentProblem::Unhealthy => "it reports itself unhealthy",
            AgentProblem::NotReadyInTime => "not ready in time",
        })
    }
}

/// One agent as fleet last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AgentReadiness {
    /// The agent's name.
    pub name: String,
    /// Its connection status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
    /// Its lifecycle state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_state: Option<AgentLifecycle>,
    /// `health.healthy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// `health.reason`, when the server gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// What is wrong with it, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<AgentProblem>,
}

impl AgentReadiness {
    fn from_agent(a: &types::WorkspaceAgent) -> Self {
        let health = a.health.as_ref();
        AgentReadiness {
            name: a.name.clone().unwrap_or_else(|| "(unnamed)".into()),
            status: a.status.clone(),
            lifecycle_state: a.lifecycle_state.clone(),
            healthy: health.and_then(|h| h.healthy),
            health_reason: health
                .and_then(|h| h.reason.clone())
                .filter(|r| !r.is_empty()),
            problem: None,
        }
    }

    fn is_ready(&self) -> bool {
        self.status == Some(AgentStatus::Connected)
            && self.lifecycle_state == Some(AgentLifecycle::Ready)
            && self.healthy != Some(false)
    }

    /// A problem that waiting longer will not cure.
    fn final_problem(&self) -> Option<AgentProblem> {
        match (&self.lifecycle_state, &self.status) {
            (Some(AgentLifecycle::StartError), _) => Some(AgentProblem::StartError),
            (Some(AgentLifecycle::StartTimeout), _) => Some(AgentProblem::StartTimeout),
            (_, Some(AgentStatus::Timeout)) => Some(AgentProblem::ConnectionTimeout),
            (Some(AgentLifecycle::Ready), Some(AgentStatus::Connected))
                if self.healthy == Some(false) =>
            {
                Some(AgentProblem::Unhealthy)
            }
            _ => None,
        }
    }

    /// `agent main: start_error (its startup script failed; health: …)`.
    pub fn describe(&self) -> String {
        let state = format!(
            "{}/{}",
            self.status
                .as_ref()
                .map_or("unknown".into(), |s| s.to_string()),
            self.lifecycle_state
                .as_ref()
                .map_or("unknown".into(), |s| s.to_string())
        );
        let mut words = format!("agent {}: {state}", self.name);
        let mut why = Vec::new();
        if let Some(p) = self.problem {
            why.push(p.to_string());
        }
        if let Some(r) = &self.health_reason {
            why.push(format!("health: {r}"));
        }
        if !why.is_empty() {
            words.push_str(&format!(" ({})", why.join("; ")));
        }
        words
    }
}

/// How a wait for readiness ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ReadyReport {
    /// Whether the workspace works.
    pub readiness: Readiness,
    /// Every agent, as last seen.
    pub agents: Vec<AgentReadiness>,
    /// The build runs an external agent (not waited for).
    pub has_external_agent: bool,
    /// One sentence for people.
    pub reason: String,
    /// Milliseconds fleet waited.
    pub elapsed_ms: u64,
}

/// A step of a wait for readiness (carried by `CoderEvent::Readiness`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "readiness_event", rename_all = "snake_case")]
pub enum ReadyEvent {
    /// fleet waits for the agents; this is how they stand (sent when it changes).
    Waiting {
        /// Every agent.
        agents: Vec<AgentReadiness>,
        /// Milliseconds since the wait began.
        elapsed_ms: u64,
    },
    /// The wait ended.
    Ended {
        /// How.
        report: ReadyReport,
    },
}

impl ReadyEvent {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            // No clock here: a progress display shows its own (issue 27 item 7).
            ReadyEvent::Waiting { agents, .. } => format!(
                "waiting for the agents: {}",
                if agents.is_empty() {
                    "none yet".to_string()
                } else {
                    agents
                        .iter()
                        .map(AgentReadiness::describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            ReadyEvent::Ended { report } => report.reason.clone(),
        }
    }
}

/// Where a workspace stands, read once.
enum Assessment {
    Ready,
    Unhealthy(String),
    External,
    Pending,
}

fn agents_of(build: &types::WorkspaceBuild) -> Vec<AgentReadiness> {
    build
        .resources
        .iter()
        .flat_map(|r| r.agents.iter())
        .map(AgentReadiness::from_agent)
        .collect()
}

fn assess(build: &types::WorkspaceBuild, agents: &mut [AgentReadiness]) -> Assessment {
    if build.has_external_agent == Some(true) {
        return Assessment::External;
    }
    let running = build.transition == Some(WorkspaceTransition::Start)
        && build.status == Some(WorkspaceStatus::Running);
    if !running && !build.status.as_ref().is_some_and(|s| s.is_active()) {
        return Assessment::Unhealthy(format!(
            "the workspace is not running (build: {} {})",
            build
                .transition
                .as_ref()
                .map_or("unknown".into(), |t| t.to_string()),
            build
                .status
                .as_ref()
                .map_or("unknown".into(), |s| s.to_string())
        ));
    }
    let mut bad = Vec::new();
    for a in agents.iter_mut() {
        a.problem = a.final_problem();
        if a.problem.is_some() {
            bad.push(a.describe());
        }
    }
    if !bad.is_empty() {
        return Assessment::Unhealthy(bad.join("; "));
    }
    if running && agents.iter().all(AgentReadiness::is_ready) {
        Assessment::Ready
    } else {
        Assessment::Pending
    }
}

impl CoderClient {
    /// Waits until the agents of start build `build_id` are connected and ready, one of them
    /// shows it never will, or `options.timeout` passes (then it is [`Readiness::Unhealthy`],
    /// each agent not ready marked [`AgentProblem::NotReadyInTime`]). Reads
    /// `GET /workspacebuilds/{id}` once, then follows the workspace's `watch-ws` when
    /// `options.push` (see [`CoderClient::wait_until_ready_of`]). A cancel (graceful or not)
    /// ends the wait at once with [`Readiness::Interrupted`]: waiting changes nothing, so there
    /// is nothing to finish. Fails only when the workspace cannot be read.
    pub(crate) async fn wait_until_ready(
        &self,
        build_id: &Uuid,
        options: &ReadyOptions,
        control: &Control,
        on_event: &mut (dyn FnMut(ReadyEvent) + Send),
    ) -> Result<ReadyReport> {
        self.wait_until_ready_of(None, build_id, options, control, on_event)
            .await
    }

    /// [`CoderClient::wait_until_ready`] for a start build of workspace `workspace_id`, when
    /// the caller knows it. With `options.push`, the agents' lifecycle and connection arrive
    /// with each update `watch-ws` pushes (its first message is the workspace as it is: no
    /// read comes first); a read of the build by its id is the safety net (after 10 s, then
    /// every 30 s at most) and, when the socket cannot open, drops or shows a newer
    /// build, the fallback: polling as `options.poll` says, reading at once, so no state is
    /// lost between the last push and the first read. Without `workspace_id` the first read
    /// of the build gives it.
    pub(crate) async fn wait_until_ready_of(
        &self,
        workspace_id: Option<Uuid>,
        build_id: &Uuid,
        options: &ReadyOptions,
        control: &Control,
        on_event: &mut (dyn FnMut(ReadyEvent) + Send),
    ) -> Result<ReadyReport> {
        let began = Instant::now();
        let deadline = began + options.timeout;
        let id_text = build_id.to_string();
        let mut backoff = options.poll.initial;
        let mut last_seen: Option<Vec<AgentReadiness>> = None;
        let mut workspace_id = workspace_id;
        // Push: the watch while it works; whether it was tried (once: a watch that could not
        // open or dropped leaves polling in charge); the pause before the next safety read.
        let mut watch: Option<super::WorkspaceWatch> = None;
        let mut push_tried = !options.push;
        let mut safety = PUSH_SAFETY_FIRST;
        let report =
            |readiness, agents: Vec<AgentReadiness>, external, reason: String| ReadyReport {
                readiness,
                agents,
                has_external_agent: external,
                reason,
                elapsed_ms: ms(began.elapsed()),
            };
        let end = loop {
            if control.is_cancelled() {
                break report(
                    Readiness::Interrupted,
                    last_seen.unwrap_or_default(),
                    false,
                    "readiness not confirmed: interrupted while waiting for the agents".into(),
                );
            }
            // With a workspace known and pushes wanted, the watch opens before any read.
            if !push_tried && let Some(ws) = workspace_id {
                push_tried = true;
                match self.watch_workspace(&ws).await {
                    Ok(w) => watch = Some(w),
                    Err(e) => tracing::info!(
                        workspace = %ws, error = %e,
                        "the workspace watch could not be opened: polling for readiness"
                    ),
                }
            }
            let pushed = match watch.as_mut() {
                None => None,
                Some(w) => {
                    let pause = safety.min(deadline.saturating_duration_since(Instant::now()));
                    tokio::select! {
                        _ = control.cancelled() => continue,
                        _ = tokio::time::sleep(pause) => {
                            // The safety net: read the build (below), keep watching.
                            safety = (safety * 2).min(PUSH_SAFETY_MAX);
                            None
                        }
                        event = w.next() => match event {
                            super::WatchEvent::Snapshot(ws) => match ws.latest_build {
                                Some(b) if b.id == Some(*build_id) => Some(b),
                                // A newer build: this one is read by its id from now on.
                                _ => {
                                    tracing::info!(build = %build_id, "the watched workspace shows another build: polling for readiness");
                                    watch = None;
                                    None
                                }
                            },
                            super::WatchEvent::Dropped { reason } => {
                                tracing::info!(build = %build_id, %reason, "the workspace watch dropped: polling for readiness");
                                watch = None;
                                None
                            }
                        },
                    }
                }
            };
            let build = match pushed {
                Some(b) => b,
                None => tokio::select! {
                    _ = control.cancelled() => continue,
                    b = self.api().get_workspace_build(&id_text) => b
                        .map(|b| b.into_inner())
                        .map_err(|e| self.error(format!("reading build {build_id}"), e))?,
                },
            };
            if workspace_id.is_none() {
                workspace_id = build.workspace_id;
            }
            let mut agents = agents_of(&build);
            match assess(&build, &mut agents) {
                Assessment::External => {
                    break report(
                        Readiness::NotWaited,
                        agents,
                        true,
                        "it runs an external agent (has_external_agent): readiness not waited for"
                            .into(),
                    );
                }
                Assessment::Ready => {
                    let reason = if agents.is_empty() {
                        "running; it has no agent to wait for".to_string()
                    } else {
                        format!(
                            "ready: {} agent(s) connected and ready after {:.1}s",
                            agents.len(),
                            began.elapsed().as_secs_f64()
                        )
                    };
                    break report(Readiness::Ready, agents, false, reason);
                }
                Assessment::Unhealthy(why) => {
                    break report(
                        Readiness::Unhealthy,
                        agents,
                        false,
                        format!("unhealthy: {why}"),
                    );
                }
                Assessment::Pending => {}
            }
            if last_seen.as_ref() != Some(&agents) {
                on_event(ReadyEvent::Waiting {
                    agents: agents.clone(),
                    elapsed_ms: ms(began.elapsed()),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                for a in agents.iter_mut().filter(|a| !a.is_ready()) {
                    a.problem = Some(AgentProblem::NotReadyInTime);
                }
                let pending: Vec<String> = agents
                    .iter()
                    .filter(|a| a.problem.is_some())
                    .map(AgentReadiness::describe)
                    .collect();
                let why = if pending.is_empty() {
                    "the workspace was not running".to_string()
                } else {
                    pending.join("; ")
                };
                break report(
                    Readiness::Unhealthy,
                    agents,
                    false,
                    format!(
                        "unhealthy: not ready within {}: {why}",
                        humantime::format_duration(options.timeout)
                    ),
                );
            }
            last_seen = Some(agents);
            // Pushes come by themselves (or the watch is about to open): no pause.
            if watch.is_some() || (!push_tried && workspace_id.is_some()) {
                continue;
            }
            let (pause, next) = options.poll.pause(backoff, began.elapsed(), None);
            backoff = next;
            let pause = pause.min(deadline.saturating_duration_since(now));
            tokio::select! {
                _ = control.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        };
        on_event(ReadyEvent::Ended {
            report: end.clone(),
        });
        Ok(end)
    }
}
