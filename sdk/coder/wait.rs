//! Waiting for builds: polling with backoff and a near-end window, waiting out a build
//! already in progress (409), and turning a failed build into an error with its log tail.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::model::{CoderEvent, Step, UpdateOptions, ms, no_id, round};
use super::{CoderClient, JobStatus, WorkspaceStatus, types};
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
