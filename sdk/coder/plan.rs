//! Planning an update or restart: the workspace, the target version, the parameters and
//! the builds to run, read without changing anything.

use serde::Serialize;
use uuid::Uuid;

use super::server_side::ServerSideStart;
use super::{
    CoderClient, TemplateVersionRef, WorkspaceStatus, WorkspaceTransition,
    params::{ParameterSource, ResolvedParameter},
    types,
};
use super::{
    model::{
        CoderEvent, RunPath, TemplateVersionInfo, UpdateOptions, WorkspaceInfo, WorkspaceRef,
        append, full_name, no_id, nothing_changed_interrupt,
    },
    wait::{ExpectedDuration, OthersBuild, build_ended, cancellable},
};
use crate::{Error, Result, operation::Control};
use futures::FutureExt;

/// The name alone, else the UUID, else "unknown": what a line that also carries the IDs
/// elsewhere (JSON, the plan) shows.
pub(super) fn short_version_label(name: Option<&str>, id: Option<Uuid>) -> String {
    match (name.filter(|n| !n.is_empty()), id) {
        (Some(n), _) => n.to_string(),
        (None, Some(id)) => id.to_string(),
        (None, None) => "unknown".into(),
    }
}

/// `name (uuid)`, the UUID alone, or "unknown".
pub(super) fn version_label(name: Option<&str>, id: Option<Uuid>) -> String {
    match (name.filter(|n| !n.is_empty()), id) {
        (Some(n), Some(id)) => format!("{n} ({id})"),
        (Some(n), None) => n.to_string(),
        (None, Some(id)) => id.to_string(),
        (None, None) => "unknown".into(),
    }
}

/// A build a plan would create, in order.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlannedBuild {
    /// stop or start.
    pub transition: WorkspaceTransition,
    /// The template version a start build would use (a stop build keeps the current one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_version_id: Option<Uuid>,
    /// How many parameter values a start build would send.
    pub parameter_values: usize,
}

/// A planned update or restart: everything read before anything is changed.
///
/// [`CoderClient::start_plan_update`] only reads, and it runs the pre-flight checks (target version
/// usable, `require_active_version`, parameter values): a plan exists only when Coder is
/// expected to accept both builds. [`CoderClient::start_run_plan`] sends exactly
/// [`UpdatePlan::parameters`]. Serialized (e.g. for a dry run), the workspace is shown as a
/// [`WorkspaceInfo`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UpdatePlan {
    /// The workspace (re-read after any build found in progress ended).
    #[serde(serialize_with = "serialize_workspace")]
    #[schemars(with = "WorkspaceInfo")]
    pub workspace: types::Workspace,
    /// The version the start build will use.
    pub target_version_id: Uuid,
    /// The target version, as read by the pre-flight check.
    pub target_version: TemplateVersionInfo,
    /// True when the target is the template's active version (none was given).
    pub target_is_active_version: bool,
    /// True for a restart (same version), false for an update.
    pub restart: bool,
    /// The parameter values the start build sends, each with where it came from.
    pub parameters: Vec<ResolvedParameter>,
    /// Which way the run goes from stopped to started.
    pub path: RunPath,
    /// Why that path, in a sentence (the server's version, `client_driven`, a start alone).
    pub path_reason: String,
    /// On the server-side path: the start the stop build asks the server to create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_side_start: Option<ServerSideStart>,
    /// How long the template's stop builds take, when Coder says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_stop: Option<ExpectedDuration>,
    /// How long the template's start builds take, when Coder says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_start: Option<ExpectedDuration>,
}

pub(super) fn serialize_workspace<S: serde::Serializer>(
    ws: &types::Workspace,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    WorkspaceInfo::from(ws).serialize(s)
}

impl UpdatePlan {
    /// The target version as people read it: `v3 (uuid)`, or the UUID when it has no name.
    pub fn target_label(&self) -> String {
        version_label(
            self.target_version.name.as_deref(),
            Some(self.target_version_id),
        )
    }

    /// The version the workspace runs now, as people read it.
    pub fn current_label(&self) -> String {
        let latest = self.workspace.latest_build.as_ref();
        version_label(
            latest.and_then(|b| b.template_version_name.as_deref()),
            latest.and_then(|b| b.template_version_id),
        )
    }

    /// The builds this plan needs, in order — the one rule both [`CoderClient::start_run_plan`] and a
    /// dry run follow: none when the workspace already runs the target version (and neither
    /// `restart` nor `force` asks for more); a start alone when it is stopped; otherwise a stop,
    /// then a start. A deleted workspace, or one in a state fleet does not know, is refused.
    pub fn builds(&self, force: bool) -> Result<Vec<PlannedBuild>> {
        let name = full_name(&self.workspace);
        let latest = self.workspace.latest_build.clone().unwrap_or_default();
        match &latest.status {
            Some(WorkspaceStatus::Deleted | WorkspaceStatus::Deleting) => {
                return Err(Error::Refused(format!(
                    "workspace {name} is deleted; there is nothing to start"
                )));
            }
            Some(WorkspaceStatus::Other(s)) => {
                return Err(Error::Refused(format!(
                    "workspace {name} is in a state fleet does not know ({s:?}); nothing was \
                     changed. Check it in Coder, then try again"
                )));
            }
            _ => {}
        }
        let on_target = latest.template_version_id == Some(self.target_version_id);
        if latest.status == Some(WorkspaceStatus::Running) && on_target && !self.restart && !force {
            return Ok(vec![]);
        }
        let start = PlannedBuild {
            transition: WorkspaceTransition::Start,
            template_version_id: Some(self.target_version_id),
            parameter_values: self.parameters.len(),
        };
        if latest.status == Some(WorkspaceStatus::Stopped) {
            return Ok(vec![start]);
        }
        let stop = PlannedBuild {
            transition: WorkspaceTransition::Stop,
            template_version_id: None,
            parameter_values: 0,
        };
        Ok(vec![stop, start])
    }

    pub(super) fn workspace_id(&self) -> Result<Uuid> {
        self.workspace.id.ok_or_else(|| Error::Api {
            status: 200,
            message: "Coder answered a workspace without an id".into(),
            validations: vec![],
        })
    }

    pub(super) fn current_version(&self) -> Option<Uuid> {
        self.workspace
            .latest_build
            .as_ref()
            .and_then(|b| b.template_version_id)
    }

    /// The operation that finishes the job if it is left half-way (with the parameter values
    /// the caller gave).
    pub fn finish_step(&self) -> crate::operation::FinishStep {
        let workspace = full_name(&self.workspace);
        let parameters = self
            .parameters
            .iter()
            .filter(|p| matches!(p.source, ParameterSource::Given | ParameterSource::File))
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        if self.restart {
            crate::operation::FinishStep::Restart {
                workspace,
                parameters,
            }
        } else {
            crate::operation::FinishStep::Update {
                workspace,
                template_version_id: self.target_version_id,
                parameters,
            }
        }
    }

    /// The workspace is left stopped: what finishes the job.
    pub(super) fn left_stopped(&self) -> crate::operation::Aftermath {
        crate::operation::Aftermath::LeftStopped {
            finish: self.finish_step(),
        }
    }

    /// A build still runs on the server: what to follow.
    pub(super) fn still_running(&self) -> crate::operation::Aftermath {
        crate::operation::Aftermath::StillRunning {
            follow: crate::operation::FollowStep::CoderWorkspace {
                workspace: full_name(&self.workspace),
            },
        }
    }

    /// The values the start build sends, as Coder takes them.
    pub fn build_parameters(&self) -> Vec<types::WorkspaceBuildParameter> {
        self.parameters
            .iter()
            .map(|p| types::WorkspaceBuildParameter {
                name: Some(p.name.clone()),
                value: Some(p.value.clone()),
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// Lives beside the plan it reads, so server_side.rs (the requests) never imports the plan.
impl ServerSideStart {
    /// The follow-up start of a plan: the version is left out for an update to the template's
    /// active version (the child reports the version it really used), and pinned for a version
    /// the caller named, and for a restart on a version that is not the active one (a restart
    /// keeps the version the workspace runs; Coder's own `coder restart` leaves it out and so
    /// updates as a side effect, fleet does not). The parameters are the plan's.
    pub fn for_plan(plan: &UpdatePlan) -> Self {
        let active = plan.workspace.template_active_version_id;
        let (pin, reason) = if plan.restart {
            if active == Some(plan.target_version_id) {
                (
                    None,
                    "a restart on the template's active version pins no version".to_string(),
                )
            } else {
                (
                    Some(plan.target_version_id),
                    "a restart keeps the version the workspace runs, which is not the template's \
                     active one, so it is pinned"
                        .to_string(),
                )
            }
        } else if plan.target_is_active_version {
            (
                None,
                "the start builds the template's active version at that time, so none is \
                 pinned"
                    .to_string(),
            )
        } else {
            (
                Some(plan.target_version_id),
                "the start is pinned to the version named".to_string(),
            )
        };
        ServerSideStart {
            template_version_id: pin,
            version_reason: reason,
            rich_parameter_values: plan.build_parameters(),
        }
    }
}

impl CoderClient {
    /// Reads everything an update (or, with `restart`, a restart) needs, changing nothing:
    /// the workspace (waiting first for a build in progress), the target version (the given
    /// one, the template's active version, or for a restart the current one) and the previous
    /// build's parameter values.
    pub(crate) async fn plan_update(
        &self,
        r: &WorkspaceRef,
        template_version: Option<TemplateVersionRef>,
        restart: bool,
        options: &UpdateOptions,
        control: &Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<UpdatePlan> {
        let control = control.clone();
        let ws = cancellable(&control, self.resolve_workspace(r), || {
            nothing_changed_interrupt(r)
        })
        .await?;
        self.plan_resolved(
            r,
            ws,
            template_version,
            restart,
            options,
            &control,
            on_event,
        )
        .await
    }

    /// [`CoderClient::start_plan_update`] for a workspace already read (`ws`, as `r` named it): the
    /// batch plans with the workspace its selection just read instead of reading it again.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn plan_resolved(
        &self,
        r: &WorkspaceRef,
        mut ws: types::Workspace,
        template_version: Option<TemplateVersionRef>,
        restart: bool,
        options: &UpdateOptions,
        cancel: &Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<UpdatePlan> {
        // Someone at work in it, a prebuilt or a dormant workspace: left alone (or waited for)
        // before anything else is read.
        let label = r.to_string();
        ws = self
            .leave_alone_if_busy(ws, &label, &options.busy, &options.poll, cancel, on_event)
            .await?;
        if let Some(build) = ws.latest_build.clone().filter(|b| !build_ended(b)) {
            on_event(CoderEvent::WaitingForBuildInProgress {
                build_id: build.id,
                transition: build.transition.clone(),
                status: build.status.clone(),
            });
            let transition = build.transition.as_ref().map(|t| t.to_string());
            let waited = self
                .wait_for_someone_elses_build(
                    &build,
                    &format!(
                        "a {} build already in progress on {r}",
                        transition.unwrap_or_default()
                    ),
                    "; nothing was changed by fleet. Try again once it has ended",
                    options.stop_timeout.max(options.start_timeout),
                    options,
                    cancel,
                    true,
                    on_event,
                )
                .await?;
            match waited {
                OthersBuild::Ended => {}
                // The build is someone else's and goes on: a fact the faces word.
                OthersBuild::TimedOut(e) => {
                    return Err(Error::left(
                        e,
                        crate::operation::Aftermath::StillRunning {
                            follow: crate::operation::FollowStep::CoderWorkspace {
                                workspace: full_name(&ws),
                            },
                        },
                    ));
                }
                OthersBuild::Cancelled(_) => return Err(nothing_changed_interrupt(r)),
            }
            let id = ws.id.ok_or_else(no_id)?;
            ws = cancellable(cancel, self.read_workspace(&id), || {
                nothing_changed_interrupt(r)
            })
            .await?;
        }
        let latest = ws.latest_build.clone().unwrap_or_default();
        let current_version = latest.template_version_id;
        let mut template = None;
        let (target_version_id, target_is_active_version) = if restart {
            let v = current_version.ok_or_else(|| Error::Api {
                status: 200,
                message: format!("Coder did not say which template version {r} runs; cannot restart it on the same version"),
                validations: vec![],
            })?;
            (v, false)
        } else if let Some(v) = template_version.clone() {
            let id = match (v, ws.template_id) {
                (TemplateVersionRef::Id(id), _) => id,
                (name, Some(template_id)) => {
                    let template_name = ws
                        .template_name
                        .clone()
                        .unwrap_or_else(|| template_id.to_string());
                    cancellable(
                        cancel,
                        self.resolve_template_version(&template_id, &template_name, &name),
                        || nothing_changed_interrupt(r),
                    )
                    .await?
                }
                (name, None) => {
                    return Err(Error::Api {
                        status: 200,
                        message: format!(
                            "Coder did not say which template {r} uses, so version {name} cannot \
                             be looked up by name; give the version's ID"
                        ),
                        validations: vec![],
                    });
                }
            };
            (id, false)
        } else {
            let template_id = ws.template_id.ok_or_else(|| Error::Api {
                status: 200,
                message: format!(
                    "Coder did not say which template {r} uses; name the template version to run"
                ),
                validations: vec![],
            })?;
            let t = cancellable(cancel, self.template(&template_id), || {
                nothing_changed_interrupt(r)
            })
            .await?;
            let v = t.active_version_id.ok_or_else(|| {
                Error::Refused(format!(
                    "template {} has no active version; pass a template version explicitly",
                    t.name.clone().unwrap_or_else(|| template_id.to_string())
                ))
            })?;
            template = Some(t);
            (v, true)
        };
        let previous = match latest.id {
            Some(build_id) => cancellable(
                cancel,
                async {
                    self.api()
                        .get_build_parameters_for_workspace_build(&build_id.to_string())
                        .await
                        .map(|p| p.into_inner())
                        .map_err(|e| {
                            self.error(format!("reading the parameters of build {build_id}"), e)
                        })
                },
                || nothing_changed_interrupt(r),
            )
            .await?
            .into_iter()
            .filter(|p| p.name.as_deref().is_some_and(|n| !n.is_empty()))
            .collect(),
            None => Vec::new(),
        };
        let name = full_name(&ws);
        let checked = cancellable(
            cancel,
            self.preflight(
                &ws,
                &name,
                target_version_id,
                template_version.is_some(),
                restart,
                template,
                &options.parameters,
                &options.parameters_file,
                &previous,
            ),
            || nothing_changed_interrupt(r),
        )
        .await?;
        let mut plan = UpdatePlan {
            workspace: ws,
            target_version_id,
            target_version: TemplateVersionInfo::from(&checked.version),
            target_is_active_version,
            restart,
            parameters: checked.parameters,
            path: RunPath::ClientDriven,
            path_reason: String::new(),
            server_side_start: None,
            expected_stop: checked
                .template
                .as_ref()
                .and_then(|t| ExpectedDuration::from_template(t, "stop")),
            expected_start: checked
                .template
                .as_ref()
                .and_then(|t| ExpectedDuration::from_template(t, "start")),
        };
        let stop_planned = plan.builds(options.force).is_ok_and(|b| b.len() == 2);
        let (path, reason) = if options.client_driven {
            (
                RunPath::ClientDriven,
                "the client-driven path was asked for".to_string(),
            )
        } else if !stop_planned {
            (
                RunPath::ClientDriven,
                "no stop is needed, so there is nothing for the server to chain".to_string(),
            )
        } else {
            let features = cancellable(cancel, self.features_once().map(Ok), || {
                nothing_changed_interrupt(r)
            })
            .await?;
            if features.on_success {
                (RunPath::ServerSide, features.on_success_reason)
            } else {
                (RunPath::ClientDriven, features.on_success_reason)
            }
        };
        plan.path = path;
        plan.path_reason = reason;
        if path == RunPath::ServerSide {
            let start = ServerSideStart::for_plan(&plan);
            plan.path_reason = format!("{}; {}", plan.path_reason, start.version_reason);
            plan.server_side_start = Some(start);
        }
        tracing::info!(
            workspace = %full_name(&plan.workspace),
            path = %plan.path,
            reason = %plan.path_reason,
            "the path from stopped to started"
        );
        on_event(CoderEvent::Planned {
            path: plan.path,
            path_reason: plan.path_reason.clone(),
            workspace: full_name(&plan.workspace),
            status: latest.status.clone(),
            current_version_id: current_version,
            target_version_id,
            target_is_active_version,
            parameters_carried: plan
                .parameters
                .iter()
                .filter(|p| p.source == ParameterSource::PreviousBuild)
                .count(),
            current_version: short_version_label(
                latest.template_version_name.as_deref(),
                latest.template_version_id,
            ),
            target_version: short_version_label(
                plan.target_version.name.as_deref(),
                Some(plan.target_version_id),
            ),
        });
        Ok(plan)
    }
}

/// The start build could not be created after the stop succeeded: say so.
pub(super) fn left_stopped(e: Error, name: &str, plan: &UpdatePlan) -> Error {
    let tail = format!(
        "The stop succeeded but the start was refused, so {name} is left stopped; finish the job \
         once the cause is fixed"
    );
    let e = match e {
        e @ Error::Api { .. } => e.map_message(|m| format!("{m}\n{tail}")),
        other => append(other, &tail),
    };
    Error::left(e, plan.left_stopped())
}
