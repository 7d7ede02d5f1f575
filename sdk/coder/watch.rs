//! Completion noticed by push: `GET /workspaces/{id}/watch-ws`, a WebSocket sending
//! `{type: "data", data: <Workspace>}` on each change (and `ping`s).
//!
//! [`WorkspaceWatch`] is the raw stream of snapshots. [`CoderClient::wait_for_workspace`] is
//! what a run uses: it follows the pushes until a condition holds and, when the socket cannot
//! be opened or drops, carries on by polling `GET /workspaces/{id}` — reading at once, so no
//! state is lost between the last push and the first poll.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    CoderClient, PollOptions, ServerSentEventType, types,
    ws::{Read, Socket, read_json},
};
use crate::Result;

/// One event of a [`WorkspaceWatch`].
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// The whole workspace, as it is now.
    Snapshot(Box<types::Workspace>),
    /// The socket closed or failed; nothing more comes from this watch.
    Dropped {
        /// Why.
        reason: String,
    },
}

/// The snapshots of one workspace, pushed by the server. Made by
/// [`CoderClient::watch_workspace`].
pub struct WorkspaceWatch {
    socket: Option<Socket>,
    workspace_id: Uuid,
}

impl std::fmt::Debug for WorkspaceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceWatch")
            .field("workspace_id", &self.workspace_id)
            .field("open", &self.socket.is_some())
            .finish()
    }
}

impl WorkspaceWatch {
    /// The next snapshot, or [`WatchEvent::Dropped`] (then forever). Pings are answered and
    /// skipped; an `error` message ends the watch. Cancel-safe.
    pub async fn next(&mut self) -> WatchEvent {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                return WatchEvent::Dropped {
                    reason: "the watch has ended".into(),
                };
            };
            let dropped = |reason: String| WatchEvent::Dropped { reason };
            let event = match read_json::<types::ServerSentEvent>(socket).await {
                Read::Message(e) => e,
                Read::Unreadable(reason) => {
                    tracing::warn!(workspace = %self.workspace_id, %reason, "a watch-ws message could not be read; skipped");
                    continue;
                }
                Read::Closed => {
                    self.socket = None;
                    return dropped("the server closed the watch".into());
                }
                Read::Dropped(reason) => {
                    self.socket = None;
                    return dropped(format!("the watch connection dropped: {reason}"));
                }
            };
            match event.type_ {
                Some(ServerSentEventType::Data) => {
                    let data = event.data.unwrap_or_default();
                    match serde_json::from_value::<types::Workspace>(data) {
                        Ok(ws) => return WatchEvent::Snapshot(Box::new(ws)),
                        Err(e) => {
                            tracing::warn!(workspace = %self.workspace_id, error = %e, "a watch-ws workspace could not be read; skipped");
                        }
                    }
                }
                Some(ServerSentEventType::Error) => {
                    self.socket = None;
                    let said = event
                        .data
                        .map(|d| match d {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        })
                        .unwrap_or_default();
                    return dropped(format!("the server reported an error on the watch: {said}"));
                }
                // ping, or a kind this version of fleet does not know
                _ => {}
            }
        }
    }
}

/// How [`CoderClient::wait_for_workspace`] follows a workspace.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Polling, when pushes are not available (or `no_push`).
    pub poll: PollOptions,
    /// Poll only (no WebSocket).
    pub no_push: bool,
}

/// What [`CoderClient::wait_for_workspace`] tells on the way.
#[derive(Debug, Clone)]
pub enum WatchNote {
    /// A state of the workspace (each distinct latest-build status once, pushed or polled).
    Snapshot(Box<types::Workspace>),
    /// Pushes are not (or no longer) available: fleet polls from now on.
    FellBackToPolling {
        /// Why.
        reason: String,
    },
}

/// Where [`CoderClient::wait_for_workspace`] ended, and what it cost.
#[derive(Debug, Clone)]
pub struct WatchEnd {
    /// The workspace that met the condition; `None` when the deadline passed or the caller
    /// cancelled first (see `timed_out` / `cancelled`).
    pub workspace: Option<Box<types::Workspace>>,
    /// The last workspace seen.
    pub last_seen: Option<Box<types::Workspace>>,
    /// The deadline passed first.
    pub timed_out: bool,
    /// The caller cancelled first.
    pub cancelled: bool,
    /// Snapshots received by push.
    pub pushed: u32,
    /// GETs sent while polling.
    pub polled: u32,
    /// Why fleet fell back to polling, if it did.
    pub fell_back: Option<String>,
}

fn state_key(ws: &types::Workspace) -> (Option<Uuid>, Option<String>, Option<String>) {
    let b = ws.latest_build.as_ref();
    (
        b.and_then(|b| b.id),
        b.and_then(|b| b.status.as_ref().map(|s| s.to_string())),
        b.and_then(|b| {
            b.job
                .as_ref()
                .and_then(|j| j.status.as_ref().map(|s| s.to_string()))
        }),
    )
}

impl CoderClient {
    /// Opens `watch-ws` for a workspace. An error means pushes are not available here
    /// (an older server, a proxy that refuses WebSockets, …): poll instead.
    pub async fn watch_workspace(&self, workspace_id: &Uuid) -> Result<WorkspaceWatch> {
        let socket = self
            .open_socket(&format!("/workspaces/{workspace_id}/watch-ws"))
            .await?;
        Ok(WorkspaceWatch {
            socket: Some(socket),
            workspace_id: *workspace_id,
        })
    }

    /// Follows a workspace until `done` holds for it, or `deadline`, or `cancel`: by push
    /// (`watch-ws`) while it works, by polling `GET /workspaces/{id}` otherwise. A read error
    /// while polling is returned (reads are already retried).
    pub async fn wait_for_workspace(
        &self,
        workspace_id: &Uuid,
        mut done: impl FnMut(&types::Workspace) -> bool + Send,
        options: &WatchOptions,
        deadline: Instant,
        cancel: &CancellationToken,
        mut on_note: impl FnMut(WatchNote) + Send,
    ) -> Result<WatchEnd> {
        let mut end = WatchEnd {
            workspace: None,
            last_seen: None,
            timed_out: false,
            cancelled: false,
            pushed: 0,
            polled: 0,
            fell_back: None,
        };
        let mut last_key = None;
        let mut seen = |ws: &types::Workspace,
                        end: &mut WatchEnd,
                        on_note: &mut (dyn FnMut(WatchNote) + Send)| {
            let key = state_key(ws);
            if last_key.as_ref() != Some(&key) {
                last_key = Some(key);
                on_note(WatchNote::Snapshot(Box::new(ws.clone())));
            }
            end.last_seen = Some(Box::new(ws.clone()));
        };

        // ---- push ---------------------------------------------------------------------------
        let fall_back_reason = if options.no_push {
            "pushes are turned off".to_string()
        } else {
            match self.watch_workspace(workspace_id).await {
                Err(e) => format!("the workspace watch could not be opened: {e}"),
                Ok(mut watch) => loop {
                    let event = tokio::select! {
                        _ = cancel.cancelled() => { end.cancelled = true; return Ok(end); }
                        _ = tokio::time::sleep_until(deadline.into()) => { end.timed_out = true; return Ok(end); }
                        e = watch.next() => e,
                    };
                    match event {
                        WatchEvent::Snapshot(ws) => {
                            end.pushed += 1;
                            seen(&ws, &mut end, &mut on_note);
                            if done(&ws) {
                                end.workspace = Some(ws);
                                return Ok(end);
                            }
                        }
                        WatchEvent::Dropped { reason } => break reason,
                    }
                },
            }
        };
        on_note(WatchNote::FellBackToPolling {
            reason: fall_back_reason.clone(),
        });
        end.fell_back = Some(fall_back_reason);

        // ---- poll ---------------------------------------------------------------------------
        let started = Instant::now();
        let mut backoff = options.poll.initial;
        loop {
            if cancel.is_cancelled() {
                end.cancelled = true;
                return Ok(end);
            }
            end.polled += 1;
            let ws = self.read_workspace(workspace_id).await?;
            seen(&ws, &mut end, &mut on_note);
            if done(&ws) {
                end.workspace = Some(Box::new(ws));
                return Ok(end);
            }
            let now = Instant::now();
            if now >= deadline {
                end.timed_out = true;
                return Ok(end);
            }
            let (pause, next) = options.poll.pause(backoff, started.elapsed(), None);
            backoff = next;
            let pause = pause
                .max(Duration::from_millis(1))
                .min(deadline.saturating_duration_since(now));
            tokio::select! {
                _ = cancel.cancelled() => { end.cancelled = true; return Ok(end); }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
