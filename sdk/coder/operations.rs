//! Updates, restarts and batch updates started as [`Operation`]s: each runs on its own task
//! and returns a handle at once (see [`crate::operation`]). The `async fn`s
//! ([`CoderClient::update_workspace`], …) stay for callers that simply await.

use super::{
    CoderClient, CoderEvent, FleetEvent, FleetOptions, FleetReport, Readiness, ReadyEvent,
    ReadyOptions, Selection, Severity, Step, TemplateVersionRef, UpdateAction, UpdateOptions,
    UpdateOutcome, WorkspaceRef,
};
use crate::{
    Error, Result,
    operation::{Control, Operation, OperationEvent, OperationKind, OperationOutput, TargetStatus},
};

/// A running update or restart of one workspace.
pub type UpdateOperation = Operation<CoderEvent, UpdateOutcome>;
/// A running batch update (or restart) of several workspaces.
pub type BatchOperation = Operation<FleetEvent, FleetReport>;

/// Where one workspace's sequence is after `event`, when the event moves it.
fn phase_of(event: &CoderEvent) -> Option<&'static str> {
    Some(match event {
        CoderEvent::Planned { .. } => "planned",
        CoderEvent::WaitingForBuildInProgress { .. } | CoderEvent::Conflict { .. } => {
            "waiting_for_another_build"
        }
        CoderEvent::UpToDate { .. } => "up_to_date",
        CoderEvent::QueuedForBuild { .. } => "queued",
        CoderEvent::BuildCreated { step, .. } | CoderEvent::BuildFoundAfterError { step, .. } => {
            match step {
                Step::Stop => "stopping",
                Step::Start => "starting",
                Step::InProgress => "waiting_for_another_build",
            }
        }
        CoderEvent::BuildSucceeded { step, .. } => match step {
            Step::Stop => "stopped",
            Step::Start => "running",
            Step::InProgress => "waiting_for_another_build",
        },
        CoderEvent::Readiness(ReadyEvent::Waiting { .. }) => "waiting_for_agents",
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
                w.phase = phase.into();
            }
            w.message = Some(CoderEvent::describe(self));
        }
    }
}

impl OperationOutput for UpdateOutcome {
    fn finish(&self, workspaces: &mut Vec<TargetStatus>) {
        if let Some(w) = workspaces.first_mut() {
            w.target = self.workspace.full_name.clone();
            w.phase = "done".into();
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
                        phase: "queued".into(),
                        verdict: None,
                        message: None,
                    })
                    .collect();
            }
            FleetEvent::Began { index, .. } => {
                if let Some(w) = workspaces.get_mut(*index) {
                    w.phase = "planning".into();
                }
            }
            FleetEvent::Step { index, step, .. } => {
                if let Some(w) = workspaces.get_mut(*index) {
                    if let Some(phase) = phase_of(step) {
                        w.phase = phase.into();
                    }
                    w.message = Some(step.describe());
                }
            }
            FleetEvent::Finished { index, result, .. } => {
                if let Some(w) = workspaces.get_mut(*index) {
                    w.phase = "done".into();
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
                    w.phase = "done".into();
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
                phase: "done".into(),
                verdict: Some(snake(&r.verdict)),
                message: Some(r.message.clone()),
            })
            .collect();
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
    /// Starts [`CoderClient::update_workspace`] as an operation and returns its handle at once;
    /// after the start it waits for the agents with the default bound (see
    /// [`CoderClient::start_update_ready`]). Must be called inside a Tokio runtime.
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
                let emit = |e| sink.emit(e);
                let outcome = client
                    .update_workspace(&workspace, template_version, &options, &control, emit)
                    .await?;
                client
                    .then_ready(outcome, ready.as_ref(), &control, &mut |e| sink.emit(e))
                    .await
            },
        )
    }

    /// Starts [`CoderClient::restart_workspace`] as an operation and returns its handle at once;
    /// it waits for the agents with the default bound.
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
                let outcome = client
                    .restart_workspace(&workspace, &options, &control, |e| sink.emit(e))
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
            .wait_until_ready(&id, ready, control, &mut |e| emit(CoderEvent::Readiness(e)))
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

    /// Starts [`CoderClient::update_many`] as an operation and returns its handle at once.
    pub fn start_update_many(&self, selection: Selection, options: FleetOptions) -> BatchOperation {
        let client = self.clone();
        Operation::spawn(
            OperationKind::BatchUpdate,
            selection_targets(&selection),
            move |control, sink| async move {
                client
                    .update_many(&selection, &options, &control, |e| sink.emit(e))
                    .await
            },
        )
    }
}
