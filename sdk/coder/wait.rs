//! Waiting for builds: polling with backoff and a near-end window, waiting out a build
//! already in progress (409), and turning a failed build into an error with its log tail.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{CoderClient, JobStatus, WorkspaceStatus, types};
use super::{model::*, plan::*, run::*};
use crate::{
    Error, Result,
    operation::Control,
    poll::{Polled, Poller},
};

pub use crate::poll::{ExpectedDuration, PollOptions};

/// Until when, and how, a build is read while fleet waits for it.
pub(super) struct Until<'a> {
    pub(super) deadline: Instant,
    pub(super) poll: &'a PollOptions,
    pub(super) expected: Option<&'a ExpectedDuration>,
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

/// Where a wait ended.
pub(super) enum WaitEnd {
    Done(types::WorkspaceBuild),
    TimedOut(Option<types::WorkspaceBuild>, Duration),
    Cancelled(Option<types::WorkspaceBuild>),
}

/// Where waiting for a build fleet did not create ended.
pub(super) enum OthersBuild {
    /// It ended.
    Ended,
    /// It still ran at the deadline: the timeout.
    TimedOut(Error),
    /// The caller cancelled; the state seen last.
    Cancelled(Option<String>),
}

pub(super) fn status_of(b: &types::WorkspaceBuild) -> String {
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

pub(super) fn build_failed(b: &types::WorkspaceBuild) -> bool {
    matches!(
        b.job.as_ref().and_then(|j| j.status.as_ref()),
        Some(JobStatus::Failed | JobStatus::Canceled)
    ) || matches!(
        b.status,
        Some(WorkspaceStatus::Failed | WorkspaceStatus::Canceled)
    )
}

impl CoderClient {
    pub(super) async fn read_workspace(&self, id: &Uuid) -> Result<types::Workspace> {
        self.api()
            .get_workspace_metadata_by_id(id)
            .await
            .map(|w| w.into_inner())
            .map_err(|e| self.error(format!("reading workspace {id}"), e))
    }

    /// After a 409: re-reads the workspace and waits for the active build, if any.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn wait_out_conflict(
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
        let timeout = if after_stop {
            options.start_timeout
        } else {
            options.stop_timeout
        };
        let waited = self
            .wait_for_someone_elses_build(
                &build,
                &format!("another build of {name} that blocked the {step} build"),
                &format!(".{left}"),
                timeout,
                options,
                cancel,
                // Before the stop nothing was changed: a graceful cancel may end the wait.
                !after_stop,
                on_event,
            )
            .await?;
        match waited {
            OthersBuild::Ended => self.read_workspace(&ws_id).await,
            OthersBuild::TimedOut(e) => Err(with_left(e)),
            OthersBuild::Cancelled(last_state) => Err(with_left(Error::Interrupted {
                message: format!("interrupted while waiting for another build of {name}.{left}"),
                last_state,
            })),
        }
    }

    /// Waits up to `timeout` for a build fleet did not create to end: one found in progress
    /// before planning, or the one behind a 409. A build still running then is an
    /// [`Error::Timeout`] ("`what` did not end within …`then`") for the caller to say what
    /// is left; a cancel hands back the state seen last.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn wait_for_someone_elses_build(
        &self,
        build: &types::WorkspaceBuild,
        what: &str,
        then: &str,
        timeout: Duration,
        options: &UpdateOptions,
        control: &Control,
        graceful_ends_it: bool,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<OthersBuild> {
        let until = Until {
            deadline: Instant::now() + timeout,
            poll: &options.poll,
            expected: None,
        };
        let end = self
            .wait_for_build(
                build,
                Step::InProgress,
                until,
                control,
                graceful_ends_it,
                on_event,
            )
            .await?;
        Ok(match end {
            WaitEnd::Done(_) => OthersBuild::Ended,
            WaitEnd::TimedOut(last, waited) => OthersBuild::TimedOut(Error::Timeout {
                message: format!(
                    "{what} did not end within {}{then}",
                    humantime::format_duration(round(waited))
                ),
                waited,
                last_state: last.as_ref().map(status_of),
            }),
            WaitEnd::Cancelled(last) => OthersBuild::Cancelled(last.as_ref().map(status_of)),
        })
    }

    /// Polls a build until it ends, the deadline passes or the caller cancels, with the one
    /// poller of both planes ([`crate::poll`]): first soon after it was created, then backing
    /// off; transient read failures do not end the wait.
    pub(super) async fn wait_for_build(
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
        let Until {
            deadline,
            poll,
            expected,
        } = until;
        let Some(id) = build.id else {
            return Err(no_id());
        };
        let id_text = id.to_string();
        let mut poller = Poller::new(poll, deadline, control)
            .expecting(expected.copied())
            .stop_on_abort_only(!graceful_ends_it);
        let mut last: Option<types::WorkspaceBuild> = None;
        let mut seen: Option<(Option<WorkspaceStatus>, Option<JobStatus>)> = None;
        loop {
            let read = poller
                .next(|| async {
                    self.api()
                        .get_workspace_build(&id_text)
                        .await
                        .map(|b| b.into_inner())
                        .map_err(|e| self.error(format!("reading the {step} build {id}"), e))
                })
                .await?;
            let b = match read {
                Polled::Read(b) => b,
                Polled::TimedOut => return Ok(WaitEnd::TimedOut(last, poller.elapsed())),
                Polled::Cancelled => return Ok(WaitEnd::Cancelled(last)),
            };
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
                    elapsed_ms: ms(poller.elapsed()),
                });
                seen = Some(key);
            }
            if build_ended(&b) {
                if !build_failed(&b) {
                    on_event(CoderEvent::BuildSucceeded {
                        step,
                        build_id: b.id,
                        status: b.status.clone(),
                        elapsed_ms: ms(poller.elapsed()),
                    });
                }
                return Ok(WaitEnd::Done(b));
            }
            last = Some(b);
        }
    }

    /// The error for a build that ended failed or canceled: the job's error, the last lines of
    /// its log, the state the workspace is left in and what to do next.
    pub(super) async fn failed_build_error(
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
                        .map(super::cut_log_line)
                        .collect();
                    let skip = lines.len().saturating_sub(LOG_LINES_SHOWN);
                    if lines.is_empty() {
                        "\nThe build log is empty.".to_string()
                    } else {
                        format!(
                            "\nLast lines of the build log:\n{}",
                            lines[skip..]
                                .iter()
                                // One log line, one line: a line break inside
                                // it is shown escaped, never as a line of its own.
                                .map(|l| format!("  | {}", crate::text::escape_one_line(l)))
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

pub(super) async fn cancellable<T>(
    cancel: &Control,
    fut: impl std::future::Future<Output = Result<T>>,
    on_cancel: impl FnOnce() -> Error,
) -> Result<T> {
    tokio::select! {
        _ = cancel.cancelled() => Err(on_cancel()),
        r = fut => r,
    }
}
