//! Completion noticed by push, with live build logs: a layer around the polling wait
//! (`wait.rs`), which it does not change.
//!
//! While a build runs, fleet follows its log stream (`/workspacebuilds/{id}/logs?follow=true`,
//! see [`super::BuildLogs`]): each line becomes a [`CoderEvent::BuildLog`], and the stream's
//! close — confirmed with one read of the build — says the build has ended, one round trip
//! after the server marked it. Meanwhile the polling wait runs too, at a slow pace (a safety
//! net that costs a read per build only when it runs longer than 10 s). If the stream cannot be opened or keeps dropping,
//! fleet says so ([`CoderEvent::LogsUnavailable`]) and polls at the usual pace from then on:
//! the build is read by its id, so no state is lost.

use std::{sync::Mutex, time::Instant};

use super::{CoderClient, LogFollowOptions, types};
use super::{
    model::{CoderEvent, Step, ms},
    wait::{Until, WaitEnd, build_failed},
};
use crate::{Result, operation::Control, poll::PollOptions};

/// How many times a dropped log stream is re-opened before fleet polls instead.
const LOG_RECONNECTS: u32 = 3;

/// How long the last log lines may take once polling saw the build's end.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The polling pace while the log stream is open: a safety net, not the way the end is seen
/// (with the default polling, a first read after 10 s, then every 30 s at most: a stream that
/// stalls without closing is noticed that late, and a build that ends sooner costs no read
/// but the one that confirms its end).
fn safety_net(poll: &PollOptions) -> PollOptions {
    PollOptions {
        initial: poll.max.saturating_mul(5),
        max: poll.max.saturating_mul(15),
        near_end: poll.max.saturating_mul(15),
        ..poll.clone()
    }
}

/// Where the log stream ended.
enum Pushed {
    /// The job ended: the build as read when the close was confirmed.
    Ended(Box<types::WorkspaceBuild>),
    /// The stream could not be opened or kept dropping.
    Lost(String),
}

impl CoderClient {
    /// Waits for a build like [`CoderClient::wait_for_build`] (same ends, same events), noticing
    /// its end by push and giving its log lines as [`CoderEvent::BuildLog`] when `push` is on.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn wait_for_build_pushed(
        &self,
        build: &types::WorkspaceBuild,
        step: Step,
        until: Until<'_>,
        control: &Control,
        graceful_ends_it: bool,
        push: bool,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<WaitEnd> {
        let Some(build_id) = build.id.filter(|_| push) else {
            return self
                .wait_for_build(build, step, until, control, graceful_ends_it, on_event)
                .await;
        };
        let began = Instant::now();
        let lost = {
            let sink = Mutex::new(&mut *on_event);
            let emit = |e: CoderEvent| {
                if let Ok(mut f) = sink.lock() {
                    (*f)(e)
                }
            };
            let slow = safety_net(until.poll);
            let mut logs = self.follow_build_logs(
                build_id,
                None,
                LogFollowOptions {
                    max_reconnects: LOG_RECONNECTS,
                    ..LogFollowOptions::default()
                },
            );
            let pushed = async {
                loop {
                    match logs.next().await {
                        Some(Ok(line)) => {
                            let output = line.output.unwrap_or_default();
                            if output.trim().is_empty() {
                                continue;
                            }
                            emit(CoderEvent::BuildLog {
                                step,
                                build_id: Some(build_id),
                                log_id: line.id,
                                level: line.log_level,
                                stage: line.stage,
                                output,
                            });
                        }
                        Some(Err(e)) => return Pushed::Lost(e.to_string()),
                        None => {
                            return match logs.final_build() {
                                Some(b) => Pushed::Ended(Box::new(b.clone())),
                                None => Pushed::Lost("the log stream ended unconfirmed".into()),
                            };
                        }
                    }
                }
            };
            let mut poll_events = |e: CoderEvent| emit(e);
            let polled = self.wait_for_build(
                build,
                step,
                Until {
                    deadline: until.deadline,
                    poll: &slow,
                    expected: None,
                },
                control,
                graceful_ends_it,
                &mut poll_events,
            );
            tokio::pin!(pushed);
            tokio::select! {
                r = polled => {
                    // The safety net saw the end first: the stream closes right after the
                    // job, give it a moment to deliver the last lines.
                    if matches!(r, Ok(WaitEnd::Done(_))) {
                        let _ = tokio::time::timeout(DRAIN, &mut pushed).await;
                    }
                    return r;
                }
                p = &mut pushed => match p {
                    Pushed::Ended(b) => {
                        emit(CoderEvent::BuildStatus {
                            step,
                            build_id: b.id,
                            status: b.status.clone(),
                            job_status: b.job.as_ref().and_then(|j| j.status.clone()),
                            queue_position: None,
                            elapsed_ms: ms(began.elapsed()),
                        });
                        if !build_failed(&b) {
                            emit(CoderEvent::BuildSucceeded {
                                step,
                                build_id: b.id,
                                status: b.status.clone(),
                                elapsed_ms: ms(began.elapsed()),
                            });
                        }
                        return Ok(WaitEnd::Done(*b));
                    }
                    Pushed::Lost(reason) => reason,
                },
            }
        };
        on_event(CoderEvent::LogsUnavailable { step, reason: lost });
        self.wait_for_build(build, step, until, control, graceful_ends_it, on_event)
            .await
    }
}
