//! Running a plan: its builds walked by one build runner ([`CoderClient::start_run_plan`]), on the
//! server-side path (one stop carrying `on_success`, the server starts the workspace) or the
//! client-driven one (stop, wait, start, wait), including what an ambiguous build POST left
//! behind.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{
    CoderClient, FollowUp, TemplateVersionRef, WorkspaceStatus, WorkspaceTransition, types,
};
use super::{
    model::{
        BuildInfo, CoderEvent, Fallback, LOG_LINES_SHOWN, RunPath, Step, UpdateAction,
        UpdateOptions, UpdateOutcome, WorkspaceInfo, WorkspaceRef, append, full_name, ms,
        nothing_changed_interrupt, round,
    },
    plan::{UpdatePlan, left_stopped},
    wait::{OthersBuild, Until, WaitEnd, build_ended, build_failed, status_of},
};
use crate::{Error, Result, operation::Control};

/// What a read after a failed build POST found.
pub(super) enum AfterFailedPost {
    /// The build exists: follow it.
    Created(Box<types::WorkspaceBuild>),
    /// No new build: the POST did nothing.
    NotCreated(Box<types::Workspace>),
    /// The read failed too: it cannot be told.
    Unknown(Error),
}

/// Where posting one build of the plan ended.
enum Posted {
    /// The build to follow: created by the POST, found after an ambiguous answer, or (for the
    /// start) another client's start on the target version found after a 409.
    Build(Box<types::WorkspaceBuild>),
    /// A 409 was waited out and the workspace is already where the build would bring it (a
    /// stop found the workspace stopped): nothing to create.
    NotNeeded,
    /// Coder refused to pin the version of the `on_success` start (403): nothing was created.
    PinRefused(String),
}

/// What the runner knows while it walks a plan's builds.
struct Runner<'a> {
    plan: &'a UpdatePlan,
    options: &'a UpdateOptions,
    control: &'a Control,
    name: String,
    ws_id: Uuid,
    /// 409s waited out so far.
    conflicts: u32,
    /// The latest build known: a build with another id after a failed POST is a new one.
    known_build: Option<Uuid>,
    /// The builds followed to their end, in order.
    builds: Vec<BuildInfo>,
    /// True once a stop carrying `on_success` exists: the server starts the workspace after
    /// it, so a stop left behind is not "left stopped".
    server_starts_it: bool,
    /// Follow builds by push (their log streams), polling as a safety net.
    push: bool,
}

impl Runner<'_> {
    /// What an interrupted or timed-out build leaves: a stop (client-driven) leaves the
    /// workspace stopped; a start, or a stop the server follows with its start, goes on.
    fn left_by(&self, step: Step) -> crate::operation::Aftermath {
        if step == Step::Stop && !self.server_starts_it {
            self.plan.left_stopped()
        } else {
            self.plan.still_running()
        }
    }
}

impl CoderClient {
    /// Updates a workspace to `template_version` (or the template's active version): waits for
    /// a build in progress, stops the workspace if it runs, then starts it on the target version
    /// with the previous build's parameter values, and waits until it runs.
    ///
    /// On Coder ≥ 2.36 the stop carries `on_success` and the server starts the workspace
    /// itself (see [`UpdatePlan::path`]). Running on the target version already: nothing is
    /// done (unless `options.force`). A stop that fails is never followed by a start.
    pub(crate) async fn update_workspace(
        &self,
        r: &WorkspaceRef,
        template_version: Option<TemplateVersionRef>,
        options: &UpdateOptions,
        control: &Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<UpdateOutcome> {
        self.plan_and_run(
            r,
            template_version,
            false,
            options,
            control.clone(),
            on_event,
        )
        .await
    }

    /// Restarts a workspace: stops it (if it runs), then starts it on the same version with the
    /// same parameter values, and waits until it runs.
    pub(crate) async fn restart_workspace(
        &self,
        r: &WorkspaceRef,
        options: &UpdateOptions,
        control: &Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<UpdateOutcome> {
        self.plan_and_run(r, None, true, options, control.clone(), on_event)
            .await
    }

    /// [`CoderClient::start_plan_update`], then [`CoderClient::start_run_plan`]: an update, or with
    /// `restart` a restart on the current version.
    async fn plan_and_run(
        &self,
        r: &WorkspaceRef,
        template_version: Option<TemplateVersionRef>,
        restart: bool,
        options: &UpdateOptions,
        control: Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<UpdateOutcome> {
        let started = Instant::now();
        let plan = self
            .plan_update(r, template_version, restart, options, &control, on_event)
            .await?;
        self.run_plan(&plan, options, &control, on_event, started)
            .await
    }

    /// Carries out a plan: its builds ([`UpdatePlan::builds`]) walked in order by one build
    /// runner. On the server-side path the stop carries `on_success` and the start is the one
    /// the server creates; when Coder refuses to pin the version (403) or creates no start
    /// within [`UpdateOptions::follow_up_bound`], fleet goes on client-driven and says why
    /// ([`CoderEvent::FellBack`], [`UpdateOutcome::fallback`]).
    pub(crate) async fn run_plan(
        &self,
        plan: &UpdatePlan,
        options: &UpdateOptions,
        control: &Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
        started: Instant,
    ) -> Result<UpdateOutcome> {
        let control = control.clone();
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
                    "{name} already runs version {}: nothing to do",
                    plan.target_label()
                ),
                workspace: WorkspaceInfo::from(&plan.workspace),
                previous_version_id,
                template_version_id: plan.target_version_id,
                builds: vec![],
                path: plan.path,
                path_reason: plan.path_reason.clone(),
                fallback: None,
                elapsed_ms: ms(started.elapsed()),
            });
        }
        // A place among the builds in flight, held until this sequence ends.
        let _slot = self.build_slot(&name, &control, on_event).await?;
        let mut run = Runner {
            plan,
            options,
            control: &control,
            ws_id: plan.workspace_id()?,
            name: name.clone(),
            conflicts: 0,
            known_build: plan.workspace.latest_build.as_ref().and_then(|b| b.id),
            builds: Vec::new(),
            server_starts_it: false,
            // Only where the server answered buildinfo: a server (or a stand-in) that does not
            // is polled as before.
            push: options.push && !self.features_once().await.version_text.is_empty(),
        };
        // The start the server is asked to create, while that path holds.
        let mut server_side = plan.server_side_start.clone();
        let mut fallback = None;
        let mut parent = None;
        let mut child = None;
        for build in &planned {
            let step = match build.transition {
                WorkspaceTransition::Stop => Step::Stop,
                _ => Step::Start,
            };
            if step == Step::Start {
                if let (Some(_), Some(parent)) = (&server_side, &parent) {
                    match self.find_server_start(&mut run, parent, on_event).await? {
                        Ok(b) => child = Some(b),
                        Err(why) => {
                            on_event(CoderEvent::FellBack {
                                fallback: why.clone(),
                            });
                            fallback = Some(why);
                            server_side = None;
                        }
                    }
                }
            }
            let to_follow = match child.take() {
                Some(b) => b,
                None => {
                    let body = match (step, &server_side) {
                        (Step::Stop, Some(s)) => s.stop_request(),
                        (Step::Stop, None) => super::build_request(WorkspaceTransition::Stop),
                        _ => types::CreateWorkspaceBuildRequest {
                            rich_parameter_values: plan.build_parameters(),
                            template_version_id: Some(plan.target_version_id),
                            ..super::build_request(WorkspaceTransition::Start)
                        },
                    };
                    let mut posted = self.post_build(&mut run, step, &body, on_event).await?;
                    if let Posted::PinRefused(message) = posted {
                        // Nothing was created: the same stop without on_success, client-driven.
                        let why = Fallback::PinRefused { message };
                        on_event(CoderEvent::FellBack {
                            fallback: why.clone(),
                        });
                        fallback = Some(why);
                        server_side = None;
                        let body = super::build_request(WorkspaceTransition::Stop);
                        posted = self.post_build(&mut run, step, &body, on_event).await?;
                    }
                    match posted {
                        Posted::Build(b) => *b,
                        Posted::NotNeeded => {
                            // Stopped by another build: the server was asked nothing.
                            server_side = None;
                            continue;
                        }
                        Posted::PinRefused(message) => {
                            return Err(Error::Unauthorized {
                                status: 403,
                                message,
                            });
                        }
                    }
                }
            };
            run.server_starts_it = step == Step::Stop && server_side.is_some();
            let done = self
                .follow_build(&mut run, step, to_follow, on_event)
                .await?;
            if step == Step::Stop {
                parent = Some(done);
            } else {
                child = Some(done);
            }
        }
        let done = child.ok_or_else(|| Error::Api {
            status: 200,
            message: format!("the plan of {name} ended without a start build"),
            validations: vec![],
        })?;
        let used_version = done.template_version_id.unwrap_or(plan.target_version_id);
        let mut ws = plan.workspace.clone();
        ws.latest_build = Some(done);
        ws.outdated = ws.template_active_version_id.map(|a| a != used_version);
        let action = if plan.restart {
            UpdateAction::Restarted
        } else if planned.len() == 1 {
            UpdateAction::Started
        } else {
            UpdateAction::Updated
        };
        let used_label = if used_version == plan.target_version_id {
            plan.target_label()
        } else {
            super::plan::version_label(
                ws.latest_build
                    .as_ref()
                    .and_then(|b| b.template_version_name.as_deref()),
                Some(used_version),
            )
        };
        let message = match action {
            UpdateAction::Restarted => format!("{name} restarted on version {used_label}"),
            UpdateAction::Started => format!("{name} was stopped; started on version {used_label}"),
            _ => format!(
                "{name} updated from version {} to {used_label} and running",
                plan.current_label(),
            ),
        };
        let path = if server_side.is_some() {
            RunPath::ServerSide
        } else {
            RunPath::ClientDriven
        };
        Ok(UpdateOutcome {
            action,
            message,
            workspace: WorkspaceInfo::from(&ws),
            previous_version_id,
            template_version_id: used_version,
            builds: run.builds,
            path,
            path_reason: plan.path_reason.clone(),
            fallback,
            elapsed_ms: ms(started.elapsed()),
        })
    }

    /// Creates one build of the plan (one POST, never repeated blindly): a 409 is waited out
    /// (up to `max_conflicts`); an answer that does not say whether the build exists is
    /// followed by a read of the workspace, never by a second POST.
    async fn post_build(
        &self,
        run: &mut Runner<'_>,
        step: Step,
        body: &types::CreateWorkspaceBuildRequest,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<Posted> {
        let (plan, name) = (run.plan, run.name.clone());
        let after_stop = step == Step::Start;
        let pinned_follow_up = body
            .on_success
            .as_ref()
            .is_some_and(|s| s.template_version_id.is_some());
        loop {
            if step == Step::Stop && run.control.is_cancelled() {
                // Nothing is changed yet: any cancel (graceful or abort) ends it here.
                return Err(nothing_changed_interrupt(&name));
            }
            if step == Step::Start && run.control.is_aborted() {
                // A graceful cancel does not end it here: a stop is always followed by its start.
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
            let error = match self.api().create_workspace_build(&run.ws_id, body).await {
                Ok(b) => {
                    let b = b.into_inner();
                    emit_created(on_event, step, &b, false);
                    return Ok(Posted::Build(Box::new(b)));
                }
                Err(e) => self.error(format!("creating the {step} build of {name}"), e),
            };
            match error {
                Error::Unauthorized {
                    status: 403,
                    message,
                } if pinned_follow_up => return Ok(Posted::PinRefused(message)),
                Error::Conflict { message, .. } => {
                    run.conflicts += 1;
                    let ws = self
                        .wait_out_conflict(
                            plan,
                            step,
                            &message,
                            run.conflicts,
                            run.options,
                            run.control,
                            on_event,
                            after_stop,
                        )
                        .await?;
                    let b = ws.latest_build.clone().unwrap_or_default();
                    run.known_build = b.id.or(run.known_build);
                    match step {
                        Step::Stop if b.status == Some(WorkspaceStatus::Stopped) => {
                            return Ok(Posted::NotNeeded);
                        }
                        Step::Start
                            if b.status == Some(WorkspaceStatus::Running)
                                && b.template_version_id == Some(plan.target_version_id) =>
                        {
                            // Someone else started it on the target version meanwhile.
                            emit_created(on_event, step, &b, false);
                            return Ok(Posted::Build(Box::new(b)));
                        }
                        Step::Start if b.status != Some(WorkspaceStatus::Stopped) => {
                            return Err(Error::Conflict {
                                message: format!(
                                    "{message}. Another build changed {name} while fleet was updating it; it is now {}",
                                    status_of(&b)
                                ),
                                current_state: Some(status_of(&b)),
                            });
                        }
                        _ => continue,
                    }
                }
                other if definite_refusal(&other) => {
                    return Err(match step {
                        Step::Start => left_stopped(other, &name, plan),
                        _ => other,
                    });
                }
                // The answer does not say whether the build exists: read, never re-POST.
                other => {
                    let transition = body.transition.clone();
                    match self
                        .look_after_failed_post(&run.ws_id, run.known_build, transition)
                        .await
                    {
                        AfterFailedPost::Created(b) => {
                            on_event(CoderEvent::BuildFoundAfterError {
                                step,
                                build_id: b.id,
                                error: other.to_string(),
                            });
                            emit_created(on_event, step, &b, false);
                            return Ok(Posted::Build(b));
                        }
                        AfterFailedPost::NotCreated(ws) if step == Step::Stop => {
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
                        AfterFailedPost::NotCreated(_) => {
                            return Err(left_stopped(other, &name, plan));
                        }
                        AfterFailedPost::Unknown(read) => {
                            let said = match step {
                                Step::Stop => format!(
                                    "fleet could not tell whether the stop build was created (reading {name} again \
                                     failed: {read}); if {name} is stopping or stopped, finish the job"
                                ),
                                _ => format!(
                                    "The start build may or may not have been created (reading {name} again failed: \
                                     {read}); {name} may be left stopped: check it, and finish the job if it is stopped"
                                ),
                            };
                            return Err(Error::left(append(other, &said), plan.left_stopped()));
                        }
                    }
                }
            }
        }
    }

    /// Follows one build to its end: it must end in the status its transition aims at
    /// (stopped, running), else the job error and the log tail end the run.
    async fn follow_build(
        &self,
        run: &mut Runner<'_>,
        step: Step,
        build: types::WorkspaceBuild,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<types::WorkspaceBuild> {
        let (plan, name) = (run.plan, run.name.clone());
        let (timeout, expected, aim) = match step {
            Step::Stop => (
                run.options.stop_timeout,
                plan.expected_stop.as_ref(),
                WorkspaceStatus::Stopped,
            ),
            _ => (
                run.options.start_timeout,
                plan.expected_start.as_ref(),
                WorkspaceStatus::Running,
            ),
        };
        let what_goes_on = match step {
            Step::Stop if run.server_starts_it => {
                "the server starts it again once the stop has ended (on_success)".to_string()
            }
            Step::Stop => {
                "the workspace will be left stopped: nothing was started (finishing the job waits \
                 for the stop first)"
                    .to_string()
            }
            _ => "it may still finish: follow the workspace; if the start failed, finish the job"
                .to_string(),
        };
        let end = self
            .wait_for_build_pushed(
                &build,
                step,
                Until {
                    deadline: Instant::now() + timeout,
                    poll: &run.options.poll,
                    expected,
                },
                run.control,
                false,
                run.push,
                on_event,
            )
            .await?;
        let last_status = |last: &Option<types::WorkspaceBuild>| {
            last.as_ref()
                .map(status_of)
                .unwrap_or_else(|| "unknown".into())
        };
        let done = match end {
            WaitEnd::Done(b) => b,
            WaitEnd::TimedOut(last, waited) => {
                return Err(Error::left(
                    Error::Timeout {
                        message: format!(
                            "the {step} build of {name} did not end within {} (last status: {}). The build goes on \
                             on the server; {what_goes_on}",
                            humantime::format_duration(round(waited)),
                            last_status(&last),
                        ),
                        waited,
                        last_state: last.as_ref().map(status_of),
                    },
                    run.left_by(step),
                ));
            }
            WaitEnd::Cancelled(last) => {
                return Err(Error::left(
                    Error::Interrupted {
                        message: format!(
                            "interrupted while the {step} build of {name} ran (status: {}). The build goes on on \
                             the server; {what_goes_on}",
                            last_status(&last),
                        ),
                        last_state: last.as_ref().map(status_of),
                    },
                    run.left_by(step),
                ));
            }
        };
        run.builds.push(BuildInfo::from(&done));
        if build_failed(&done) || done.status.as_ref() != Some(&aim) {
            return Err(self.failed_build_error(&done, step, plan).await);
        }
        run.known_build = done.id.or(run.known_build);
        Ok(done)
    }

    /// After a stop carrying `on_success` succeeded: the start build the server created, or
    /// why fleet has to start the workspace itself.
    async fn find_server_start(
        &self,
        run: &mut Runner<'_>,
        parent: &types::WorkspaceBuild,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<std::result::Result<types::WorkspaceBuild, Fallback>> {
        let bound = run.options.follow_up_bound;
        let interval = run.options.poll.max.min(Duration::from_millis(500));
        let never = tokio_util::sync::CancellationToken::new();
        let found = tokio::select! {
            // A graceful cancel does not stop the look: the stop is followed by its start.
            _ = run.control.aborted() => FollowUp::Cancelled,
            f = self.find_follow_up_build(
                &run.ws_id,
                parent,
                bound,
                interval,
                &never,
            ) => f?,
        };
        match found {
            FollowUp::Found(b) => {
                emit_created(on_event, Step::Start, &b, true);
                Ok(Ok(*b))
            }
            FollowUp::NotCreated { waited, .. } => Ok(Err(Fallback::NoFollowUp {
                waited_ms: ms(waited),
            })),
            FollowUp::Superseded(b) => {
                run.known_build = b.id.or(run.known_build);
                Ok(Err(Fallback::Superseded {
                    build_id: b.id,
                    transition: b.transition.clone(),
                    status: b.status.clone(),
                }))
            }
            FollowUp::Cancelled => Err(Error::left(
                Error::Interrupted {
                    message: format!(
                        "interrupted after {} was stopped, while fleet looked for the start build the server \
                         creates (on_success); the server starts it on its own",
                        run.name
                    ),
                    last_state: Some("stopped".into()),
                },
                run.plan.still_running(),
            )),
        }
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

/// Coder refused the request before creating anything (a 4xx other than 408 and 429):
/// nothing to look for.
pub(super) fn definite_refusal(e: &Error) -> bool {
    match e {
        Error::Api { status, .. } => (400..500).contains(status) && !matches!(status, 408 | 429),
        Error::Unauthorized { .. }
        | Error::NotFound { .. }
        | Error::UnknownWorkspace { .. }
        | Error::InvalidInput(_) => true,
        _ => false,
    }
}

/// Says a build exists: created by fleet, found after an error, or created by the server.
fn emit_created(
    on_event: &mut (dyn FnMut(CoderEvent) + Send),
    step: Step,
    b: &types::WorkspaceBuild,
    by_server: bool,
) {
    on_event(CoderEvent::BuildCreated {
        step,
        build_id: b.id,
        build_number: b.build_number,
        template_version_id: b.template_version_id,
        by_server,
    });
}
