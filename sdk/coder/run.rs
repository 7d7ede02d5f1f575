//! Running a plan: the stop → wait → start → wait sequence of `update_workspace` and
//! `restart_workspace`, including what an ambiguous build POST left behind.

use std::time::Instant;

use uuid::Uuid;

use super::{CoderClient, WorkspaceStatus, WorkspaceTransition, types};
use super::{model::*, plan::*, wait::*};
use crate::{Error, Result, operation::Control};

/// How many log lines a failed build's error carries.
pub const LOG_LINES_SHOWN: usize = 20;

/// What a read after a failed build POST found.
pub(super) enum AfterFailedPost {
    /// The build exists: follow it.
    Created(Box<types::WorkspaceBuild>),
    /// No new build: the POST did nothing.
    NotCreated(Box<types::Workspace>),
    /// The read failed too: it cannot be told.
    Unknown(Error),
}

impl CoderClient {
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
    pub(super) async fn look_after_failed_post(
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
}

pub(super) fn nothing_changed_interrupt(what: &impl std::fmt::Display) -> Error {
    Error::Interrupted {
        message: format!("interrupted before anything was changed on {what}"),
        last_state: None,
    }
}

/// Coder refused the request before creating anything (a 4xx other than 408 and 429):
/// nothing to look for.
pub(super) fn definite_refusal(e: &Error) -> bool {
    match e {
        Error::Api { status, .. } => (400..500).contains(status) && !matches!(status, 408 | 429),
        Error::Unauthorized { .. } | Error::NotFound { .. } | Error::InvalidInput(_) => true,
        _ => false,
    }
}

/// The error with one more sentence: what fleet found out, and what to do.
pub(super) fn append(e: Error, text: &str) -> Error {
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
pub(super) fn left_stopped(e: Error, name: &str, plan: &UpdatePlan) -> Error {
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
