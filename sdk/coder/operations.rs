//! Updates, restarts, batch updates, dry runs and readiness waits started as [`Operation`]s:
//! each runs on its own task and returns a handle at once (see [`crate::operation`]); a
//! caller that simply awaits calls [`Operation::outcome`]. The functions behind them are
//! private to the crate.

use uuid::Uuid;

use super::{
    CoderClient, CoderEvent, DryRun, FleetEvent, FleetOptions, FleetReport, Readiness, ReadyEvent,
    ReadyOptions, ReadyReport, Selection, Severity, Step, TemplateVersionRef, UpdateAction,
    UpdateOptions, UpdateOutcome, UpdatePlan, WorkspaceRef,
};
use crate::{
    Error, Result,
    operation::{
        Control, Operation, OperationEvent, OperationKind, OperationOutput, Phase, TargetStatus,
    },
};

/// A running update or restart of one workspace.
pub type UpdateOperation = Operation<CoderEvent, UpdateOutcome>;
/// A running batch update (or restart) of several workspaces.
pub type BatchOperation = Operation<FleetEvent, FleetReport>;
/// A running dry run (plan) of an update or restart of one workspace.
pub type DryRunOperation = Operation<CoderEvent, DryRun>;
/// A running plan of an update or restart of one workspace (reads only).
pub type PlanOperation = Operation<CoderEvent, UpdatePlan>;
/// A running wait for a workspace's agents.
pub type ReadyOperation = Operation<ReadyEvent, ReadyReport>;

/// Where one workspace's sequence is after `event`, when the event moves it.
pub(super) fn phase_of(event: &CoderEvent) -> Option<Phase> {
    Some(match event {
        CoderEvent::Planned { .. } => Phase::Planned,
        CoderEvent::WaitingForBuildInProgress { .. } | CoderEvent::Conflict { .. } => {
            Phase::WaitingForAnotherBuild
        }
        CoderEvent::WaitingForIdle { .. } => Phase::WaitingForIdle,
        CoderEvent::UpToDate { .. } => Phase::UpToDate,
        CoderEvent::QueuedForBuild { .. } => Phase::Queued,
        CoderEvent::BuildCreated { step, .. } | CoderEvent::BuildFoundAfterError { step, .. } => {
            match step {
                Step::Stop => Phase::Stopping,
                Step::Start => Phase::Starting,
                Step::InProgress => Phase::WaitingForAnotherBuild,
            }
        }
        CoderEvent::BuildSucceeded { step, .. } => match step {
            Step::Stop => Phase::Stopped,
            Step::Start => Phase::Running,
            Step::InProgress => Phase::WaitingForAnotherBuild,
        },
        CoderEvent::Readiness(ReadyEvent::Waiting { .. }) => Phase::WaitingForAgents,
        CoderEvent::BuildStatus { .. }
        | CoderEvent::Readiness(ReadyEvent::Ended { .. })
        | CoderEvent::FellBack { .. }
        | CoderEvent::BuildLog { .. }
        | CoderEvent::LogLinesDropped { .. }
        | CoderEvent::LogsUnavailable { .. } => return None,
    })
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl OperationEvent for CoderEvent {
    fn describe(&self) -> String {
        CoderEvent::describe(self)
    }

    fn is_log_line(&self) -> bool {
        matches!(self, CoderEvent::BuildLog { .. })
    }

    fn dropped(count: u64) -> Option<Self> {
        Some(CoderEvent::LogLinesDropped { count })
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            if let CoderEvent::Planned { workspace, .. } = self {
                w.target = workspace.clone();
            }
            if let Some(phase) = phase_of(self) {
                w.phase = phase;
            }
            w.message = Some(CoderEvent::describe(self));
        }
    }
}

impl OperationOutput for UpdateOutcome {
    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.target = self.workspace.full_name.clone();
            w.phase = Phase::Done;
            w.verdict = Some(snake(&self.action));
            w.message = Some(self.message.clone());
        }
    }
}

impl OperationEvent for FleetEvent {
    fn describe(&self) -> String {
        FleetEvent::describe(self)
    }

    fn is_log_line(&self) -> bool {
        matches!(
            self,
            FleetEvent::Step {
                step: CoderEvent::BuildLog { .. },
                ..
            }
        )
    }

    fn dropped(count: u64) -> Option<Self> {
        Some(FleetEvent::LogLinesDropped { count })
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        match self {
            FleetEvent::Selected { workspaces: names } => {
                *workspaces = names
                    .iter()
                    .map(|n| TargetStatus {
                        target: n.clone(),
                        phase: Phase::Queued,
                        verdict: None,
                        message: None,
                    })
                    .collect();
            }
            FleetEvent::Began { index, .. } => {
                if let Some(w) = workspaces.get_mut(*index) {
                    w.phase = Phase::Planning;
                }
            }
            FleetEvent::Step { index, step, .. } => {
                if let Some(w) = workspaces.get_mut(*index) {
                    if let Some(phase) = phase_of(step) {
                        w.phase = phase;
                    }
                    w.message = Some(step.describe());
                }
            }
            FleetEvent::Finished { index, result, .. } => {
                if let Some(w) = workspaces.get_mut(*index) {
                    w.phase = Phase::Done;
                    w.verdict = Some(snake(&result.verdict));
                    w.message = Some(result.message.clone());
                }
            }
            FleetEvent::LogLinesDropped { .. } => {}
            FleetEvent::Halted { halt } => {
                for w in workspaces
                    .iter_mut()
                    .filter(|w| halt.not_attempted.contains(&w.target))
                {
                    w.phase = Phase::Done;
                    w.verdict = Some("not_attempted".into());
                    w.message = Some(format!(
                        "not attempted: the rollout halted ({})",
                        halt.reason
                    ));
                }
            }
        }
    }
}

impl OperationOutput for FleetReport {
    fn ended_well(&self) -> bool {
        self.worst == Severity::Ok
    }

    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        *workspaces = self
            .results
            .iter()
            .map(|r| TargetStatus {
                target: r.workspace.clone(),
                phase: Phase::Done,
                verdict: Some(snake(&r.verdict)),
                message: Some(r.message.clone()),
            })
            .collect();
    }
}

impl OperationOutput for DryRun {
    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.target = self.workspace.clone();
            w.phase = Phase::Done;
            w.verdict = Some("planned".into());
            w.message = Some(self.summary.clone());
        }
    }
}

impl OperationOutput for UpdatePlan {
    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.phase = Phase::Done;
            w.verdict = Some("planned".into());
        }
    }
}

impl OperationEvent for ReadyEvent {
    fn describe(&self) -> String {
        ReadyEvent::describe(self)
    }

    fn apply(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            if matches!(self, ReadyEvent::Waiting { .. }) {
                w.phase = Phase::WaitingForAgents;
            }
            w.message = Some(ReadyEvent::describe(self));
        }
    }
}

impl OperationOutput for ReadyReport {
    fn ended_well(&self) -> bool {
        self.readiness != Readiness::Unhealthy
    }

    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.phase = Phase::Done;
            w.verdict = Some(snake(&self.readiness));
            w.message = Some(self.reason.clone());
        }
    }
}

/// The targets a selection names, for the operation's snapshot before they are resolved.
fn selection_targets(selection: &Selection) -> Vec<String> {
    match selection {
        Selection::Named(refs) => refs.iter().map(|r| r.to_string()).collect(),
        Selection::AllOutdated { all_owners } => vec![if *all_owners {
            "every outdated workspace (all owners)".into()
        } else {
            "every outdated workspace of the token's user".into()
        }],
        Selection::Template { name, all_owners } => vec![format!(
            "the outdated workspaces of template {}{}",
            name.trim(),
            if *all_owners { " (all owners)" } else { "" }
        )],
    }
}

impl CoderClient {
    /// Updates a workspace to `template_version` (or the template's active version), as an
    /// operation, and returns its handle at once: waits for a build in progress, stops the
    /// workspace if it runs, then starts it on the target version with the previous build's
    /// parameter values, and waits until it runs; then it waits for the agents with the
    /// default bound (see [`CoderClient::start_update_ready`]). Must be called inside a Tokio
    /// runtime.
    ///
    /// On Coder ≥ 2.36 the stop carries `on_success` and the server starts the workspace
    /// itself (see [`super::UpdatePlan::path`]). Running on the target version already:
    /// nothing is done (unless `options.force`). A stop that fails is never followed by a
    /// start.
    pub fn start_update(
        &self,
        workspace: WorkspaceRef,
        template_version: Option<TemplateVersionRef>,
        options: UpdateOptions,
    ) -> UpdateOperation {
        self.start_update_ready(
            workspace,
            template_version,
            options,
            Some(ReadyOptions::default()),
        )
    }

    /// [`CoderClient::start_update`], waiting for the agents as `ready` says (`None`: not at
    /// all). A workspace whose agents are not healthy ends in [`Error::OperationFailed`]
    /// (final state `unhealthy`) naming each agent, its state and its `health.reason`.
    pub fn start_update_ready(
        &self,
        workspace: WorkspaceRef,
        template_version: Option<TemplateVersionRef>,
        options: UpdateOptions,
        ready: Option<ReadyOptions>,
    ) -> UpdateOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::Update,
            vec![workspace.to_string()],
            move |control, sink| async move {
                // The bound is checked before anything is sent; no push here without push there.
                ready.as_ref().map(ReadyOptions::check).transpose()?;
                let ready = ready.map(|r| ReadyOptions {
                    push: r.push && options.push,
                    ..r
                });
                let outcome = client
                    .update_workspace(&workspace, template_version, &options, &control, &mut |e| {
                        sink.emit(e)
                    })
                    .await?;
                client
                    .then_ready(outcome, ready.as_ref(), &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }

    /// Restarts a workspace as an operation and returns its handle at once: stops it (if it
    /// runs), then starts it on the same version with the same parameter values, waits until
    /// it runs, then for the agents with the default bound.
    pub fn start_restart(
        &self,
        workspace: WorkspaceRef,
        options: UpdateOptions,
    ) -> UpdateOperation {
        self.start_restart_ready(workspace, options, Some(ReadyOptions::default()))
    }

    /// [`CoderClient::start_restart`], waiting for the agents as `ready` says.
    pub fn start_restart_ready(
        &self,
        workspace: WorkspaceRef,
        options: UpdateOptions,
        ready: Option<ReadyOptions>,
    ) -> UpdateOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::Restart,
            vec![workspace.to_string()],
            move |control, sink| async move {
                ready.as_ref().map(ReadyOptions::check).transpose()?;
                let ready = ready.map(|r| ReadyOptions {
                    push: r.push && options.push,
                    ..r
                });
                let outcome = client
                    .restart_workspace(&workspace, &options, &control, &mut |e| sink.emit(e))
                    .await?;
                client
                    .then_ready(outcome, ready.as_ref(), &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }

    /// After an update or restart ended well: waits for the agents and says how it went in
    /// the outcome's message; unhealthy agents turn it into [`Error::OperationFailed`].
    async fn then_ready(
        &self,
        mut outcome: UpdateOutcome,
        ready: Option<&ReadyOptions>,
        control: &Control,
        emit: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<UpdateOutcome> {
        // Nothing was started when it was already current: there is nothing new to wait for.
        let start = outcome.builds.last().and_then(|b| b.id);
        let (Some(ready), Some(id), false) =
            (ready, start, outcome.action == UpdateAction::UpToDate)
        else {
            return Ok(outcome);
        };
        if control.is_cancelled() {
            outcome.message = format!(
                "{}; readiness not confirmed: interrupted before the agents were checked",
                outcome.message
            );
            return Ok(outcome);
        }
        let report = self
            .wait_until_ready_of(outcome.workspace.id, &id, ready, control, &mut |e| {
                emit(CoderEvent::Readiness(e))
            })
            .await?;
        match report.readiness {
            Readiness::Unhealthy => Err(Error::OperationFailed {
                message: format!("{}; but {}", outcome.message, report.reason),
                final_state: Some("unhealthy".into()),
            }),
            _ => {
                outcome.message = format!("{}; {}", outcome.message, report.reason);
                Ok(outcome)
            }
        }
    }

    /// Plans an update (or with `restart`, a restart) of one workspace as an operation and
    /// returns its handle at once: it says what it would do, changing nothing (GETs only).
    /// A cancel (graceful or not) stops it at once.
    pub fn start_dry_run(
        &self,
        workspace: WorkspaceRef,
        template_version: Option<TemplateVersionRef>,
        restart: bool,
        options: UpdateOptions,
    ) -> DryRunOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::DryRun,
            vec![workspace.to_string()],
            move |control, sink| async move {
                client
                    .dry_run(
                        &workspace,
                        template_version,
                        restart,
                        &options,
                        &control,
                        &mut |e| sink.emit(e),
                    )
                    .await
            },
        )
    }

    /// Reads everything an update (or, with `restart`, a restart) needs, changing nothing, as
    /// an operation, and returns its handle at once: the workspace (waiting first for a build
    /// in progress), the target version (the given one, the template's active version, or for
    /// a restart the current one) and the previous build's parameter values. The plan can be
    /// looked at, then carried out with [`CoderClient::start_run_plan`].
    pub fn start_plan_update(
        &self,
        workspace: WorkspaceRef,
        template_version: Option<TemplateVersionRef>,
        restart: bool,
        options: UpdateOptions,
    ) -> PlanOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::DryRun,
            vec![workspace.to_string()],
            move |control, sink| async move {
                client
                    .plan_update(
                        &workspace,
                        template_version,
                        restart,
                        &options,
                        &control,
                        &mut |e| sink.emit(e),
                    )
                    .await
            },
        )
    }

    /// Carries out a plan ([`CoderClient::start_plan_update`]) as an operation and returns its
    /// handle at once: its builds ([`UpdatePlan::builds`]) walked in order by one build
    /// runner. On the server-side path the stop carries `on_success` and the start is the one
    /// the server creates; when Coder refuses to pin the version (403) or creates no start
    /// within [`UpdateOptions::follow_up_bound`], fleet goes on client-driven and says why
    /// ([`CoderEvent::FellBack`], [`UpdateOutcome::fallback`]). Does not wait for the agents.
    pub fn start_run_plan(&self, plan: UpdatePlan, options: UpdateOptions) -> UpdateOperation {
        let client = self.clone();
        let kind = if plan.restart {
            OperationKind::Restart
        } else {
            OperationKind::Update
        };
        Operation::spawn(
            kind,
            vec![super::model::full_name(&plan.workspace)],
            move |control, sink| async move {
                client
                    .run_plan(
                        &plan,
                        &options,
                        &control,
                        &mut |e| sink.emit(e),
                        std::time::Instant::now(),
                    )
                    .await
            },
        )
    }

    /// Waits for the agents of start build `build_id` as an operation (see
    /// [`ReadyOptions`]) and returns its handle at once; `target` names the workspace in the
    /// snapshot. Waiting changes nothing: a cancel ends it at once, `interrupted`.
    pub fn start_wait_until_ready(
        &self,
        target: String,
        build_id: Uuid,
        options: ReadyOptions,
    ) -> ReadyOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::Readiness,
            vec![target],
            move |control, sink| async move {
                client
                    .wait_until_ready(&build_id, &options, &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }

    /// Updates (or restarts) many workspaces as an operation and returns its handle at once:
    /// at most `options.parallel` at once; each workspace's own sequence is the one of
    /// [`CoderClient::start_update`]. One workspace failing does not stop the others. With
    /// `options.dry_run` only reads are sent.
    ///
    /// Fails as a whole only before anything is changed: invalid input
    /// ([`Error::InvalidInput`], nothing sent) or the listing of a selection failing.
    /// Otherwise every workspace ends in a [`super::WorkspaceResult`]; cancelling ends the ones
    /// in flight as their sequences say (the message tells the state left) and starts no
    /// others; the report's `worst` is the severity a face maps to its words.
    pub fn start_update_many(&self, selection: Selection, options: FleetOptions) -> BatchOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::BatchUpdate,
            selection_targets(&selection),
            move |control, sink| async move {
                client
                    .update_many(&selection, &options, &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }
}
