//! Live build logs: `GET /workspacebuilds/{id}/logs?follow=true` (a WebSocket carrying one
//! `ProvisionerJobLog` per message, closed by the server when the job ends).
//!
//! [`BuildLogs`] yields the lines in order, each once: when the connection drops it reconnects
//! with `after=<last id>` and skips any line it has already given. A close by the server is
//! confirmed with one read of the build (a proxy may close a socket too): if the job has not
//! ended, it reconnects.

use std::time::Duration;

use uuid::Uuid;

use super::{
    CoderClient, types,
    wait::build_ended,
    ws::{Read, Socket, read_json},
};
use crate::{Error, Result};

/// The most bytes of one build log line (its text, and its stage) fleet keeps: a longer one is
/// cut where it is decoded, before it becomes an event, is stored or sent anywhere, and says
/// how many bytes were cut. A hostile or broken server may send lines of megabytes.
pub const LOG_LINE_MAX_BYTES: usize = 4 << 10;

/// `text` cut to [`LOG_LINE_MAX_BYTES`] (at a character boundary), ending with a marker that
/// says how many bytes were cut; as it is when it fits. The result never holds the memory of
/// the long text.
pub fn cut_log_line(text: String) -> String {
    cut_to(text, LOG_LINE_MAX_BYTES)
}

/// The most bytes of a line's level or source that is not one Coder lists.
const LOG_WORD_MAX_BYTES: usize = 64;

fn cut_to(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    let mut kept = String::with_capacity(end + 48);
    kept.push_str(&text[..end]);
    kept.push_str(&format!(" … [{cut} more bytes cut]"));
    kept
}

/// How [`BuildLogs`] follows a build.
#[derive(Debug, Clone)]
pub struct LogFollowOptions {
    /// How many times a dropped or unopenable connection is re-opened before giving up.
    pub max_reconnects: u32,
    /// The pause before a reconnect (doubling each time, at most 5 s).
    pub reconnect_backoff: Duration,
    /// Confirm a close with one read of the build (reconnect when the job has not ended).
    pub confirm_end: bool,
}

impl Default for LogFollowOptions {
    fn default() -> Self {
        LogFollowOptions {
            max_reconnects: 5,
            reconnect_backoff: Duration::from_millis(200),
            confirm_end: true,
        }
    }
}

/// The log lines of one build, as they are written. Made by [`CoderClient::follow_build_logs`];
/// it connects on the first [`BuildLogs::next`].
pub struct BuildLogs {
    client: CoderClient,
    build_id: Uuid,
    options: LogFollowOptions,
    socket: Option<Socket>,
    last_id: Option<i64>,
    failures: u32,
    connections: u32,
    reconnects: u32,
    done: bool,
    final_build: Option<types::WorkspaceBuild>,
}

impl std::fmt::Debug for BuildLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildLogs")
            .field("build_id", &self.build_id)
            .field("last_id", &self.last_id)
            .field("connections", &self.connections)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl CoderClient {
    /// Follows the logs of build `build_id`, from the line after `after` (a log id) or from
    /// the start. Nothing is sent until [`BuildLogs::next`].
    pub fn follow_build_logs(
        &self,
        build_id: Uuid,
        after: Option<i64>,
        options: LogFollowOptions,
    ) -> BuildLogs {
        BuildLogs {
            client: self.clone(),
            build_id,
            options,
            socket: None,
            last_id: after,
            failures: 0,
            connections: 0,
            reconnects: 0,
            done: false,
            final_build: None,
        }
    }
}

impl BuildLogs {
    /// The next line, in order and never twice; `None` once the job has ended and every line
    /// was given (or after an error that ended the stream).
    ///
    /// An `Err` ends the stream: the socket could not be opened (the caller falls back to
    /// reading the logs with GETs, or to polling) or kept dropping. Cancel-safe: dropping the
    /// future loses no line.
    pub async fn next(&mut self) -> Option<Result<types::ProvisionerJobLog>> {
        loop {
            if self.done {
                return None;
            }
            let Some(socket) = self.socket.as_mut() else {
                let mut path = format!("/workspacebuilds/{}/logs?follow=true", self.build_id);
                if let Some(after) = self.last_id {
                    path.push_str(&format!("&after={after}"));
                }
                match self.client.open_socket(&path).await {
                    Ok(s) => {
                        self.connections += 1;
                        if self.connections > 1 {
                            self.reconnects += 1;
                        }
                        self.socket = Some(s);
                    }
                    Err(e) => {
                        let transient = matches!(e, Error::Transport(_))
                            || e.status().is_some_and(|s| s >= 500);
                        if !transient || !self.may_retry().await {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                continue;
            };
            match read_json::<types::ProvisionerJobLog>(socket).await {
                Read::Message(mut line) => {
                    self.failures = 0;
                    line.output = line.output.map(cut_log_line);
                    line.stage = line.stage.map(cut_log_line);
                    if let Some(super::LogLevel::Other(word)) = &mut line.log_level {
                        *word = cut_to(std::mem::take(word), LOG_WORD_MAX_BYTES);
                    }
                    if let Some(super::LogSource::Other(word)) = &mut line.log_source {
                        *word = cut_to(std::mem::take(word), LOG_WORD_MAX_BYTES);
                    }
                    if let (Some(id), Some(last)) = (line.id, self.last_id) {
                        if id <= last {
                            continue; // given already (a server resent it after a reconnect)
                        }
                    }
                    if line.id.is_some() {
                        self.last_id = line.id;
                    }
                    return Some(Ok(line));
                }
                Read::Unreadable(reason) => {
                    tracing::warn!(build = %self.build_id, %reason, "a build log message could not be read; skipped");
                }
                Read::Closed => {
                    self.socket = None;
                    if !self.options.confirm_end {
                        self.done = true;
                        return None;
                    }
                    match self.read_build().await {
                        Ok(b) if build_ended(&b) => {
                            self.final_build = Some(b);
                            self.done = true;
                            return None;
                        }
                        Ok(_) => {
                            tracing::info!(build = %self.build_id, "the log stream closed before the job ended; reconnecting");
                            if !self.may_retry().await {
                                self.done = true;
                                return Some(Err(Error::Transport(format!(
                                    "the log stream of build {} kept closing before the job ended",
                                    self.build_id
                                ))));
                            }
                        }
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                Read::Dropped(reason) => {
                    self.socket = None;
                    tracing::info!(build = %self.build_id, %reason, "the log stream dropped; reconnecting");
                    if !self.may_retry().await {
                        self.done = true;
                        return Some(Err(Error::Transport(format!(
                            "the log stream of build {} dropped and could not be re-opened \
                             ({} attempts): {reason}",
                            self.build_id, self.options.max_reconnects
                        ))));
                    }
                }
            }
        }
    }

    /// Counts a failure and sleeps before the next attempt; false when the budget is spent.
    async fn may_retry(&mut self) -> bool {
        self.failures += 1;
        if self.failures > self.options.max_reconnects {
            return false;
        }
        let pause = self
            .options
            .reconnect_backoff
            .saturating_mul(1 << (self.failures - 1).min(8))
            .min(Duration::from_secs(5));
        tokio::time::sleep(pause).await;
        true
    }

    async fn read_build(&self) -> Result<types::WorkspaceBuild> {
        let id = self.build_id.to_string();
        self.client
            .api()
            .get_workspace_build(&id)
            .await
            .map(|b| b.into_inner())
            .map_err(|e| self.client.error(format!("reading build {id}"), e))
    }

    /// The id of the last line given (pass it as `after` to resume elsewhere).
    pub fn last_id(&self) -> Option<i64> {
        self.last_id
    }

    /// How many sockets were opened.
    pub fn connections(&self) -> u32 {
        self.connections
    }

    /// How many of them were re-opened after a drop or an early close.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// The build as read when the end was confirmed (with `confirm_end`): its status and job
    /// error, without another request.
    pub fn final_build(&self) -> Option<&types::WorkspaceBuild> {
        self.final_build.as_ref()
    }
}
