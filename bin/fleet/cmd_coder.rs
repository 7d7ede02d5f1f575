//! `fleet coder …`: update and restart workspaces onto template versions; show and list them.
//!
//! Everything that talks to Coder is in `fleet::coder`; this file parses, calls, renders.

use std::time::Duration;

use clap::{Args, Subcommand};
use fleet::coder::{
    CoderClient, CoderEvent, PollOptions, Step, UpdateOptions, UpdateOutcome, WorkspaceInfo,
    WorkspaceRef,
};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    cli::{self, GlobalOpts, OutputFormat},
    out,
};

const UPDATE_HELP: &str = "\
What it does:
  1. finds the workspace (UUID, owner/name, or a name of your own; names ignore case)
  2. waits for a build already in progress, if any
  3. picks the target: --template-version, or the template's active version
  4. if it already runs the target: nothing to do (unless --force)
  5. stops it and waits until it is stopped (a failed stop never goes on to the start)
  6. starts it on the target version with the resolved parameter values, waits until it
     runs

Before anything is stopped (pre-flight; a refusal exits 2 and changes nothing): the target
version must exist, belong to the workspace's template, not be archived and be imported; a
template that requires its active version is honoured; each parameter value is resolved —
--parameter, then --parameters-file, then the previous build's value (not for ephemeral
parameters), then the default — and checked against the version's rules (type, options,
min/max, regex, monotonic, immutable).

A build that fails ends the command with the job's error and the last lines of its log.
Interrupted (Ctrl-C) or past a deadline between the stop and the start, the workspace is
left stopped and fleet prints the exact command that finishes the job.

Exit codes: 0 updated or already up to date · 1 a build failed or Coder refused · 2 invalid
input, not configured, or refused by the pre-flight (nothing changed) · 3 timed out (a build may still be running) ·
130 interrupted

Examples:
  fleet coder update dev                          # your workspace `dev`, to the active version
  fleet coder update alice/dev --template-version 0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30
  fleet coder update 5f1c…-uuid --force --start-timeout 20m
  fleet coder update alice/dev --parameter cpu=8 --parameter dotfiles_uri=https://…
  fleet coder update alice/dev --parameters-file params.yaml
  fleet coder update alice/dev -o json            # only the final result, as JSON";

const RESTART_HELP: &str = "\
Stops the workspace (if it runs), waits, starts it again on the same template version with
the same parameter values, and waits until it runs.

Examples:
  fleet coder restart dev
  fleet coder restart alice/dev --start-timeout 20m -o json";

/// `fleet coder` subcommands.
#[derive(Debug, Subcommand)]
pub enum CoderCmd {
    /// Update a workspace to a template version (default: the template's active version):
    /// stop, wait, start on the new version, wait.
    #[command(after_help = UPDATE_HELP)]
    Update(UpdateArgs),

    /// Restart a workspace on the version it runs: stop, wait, start, wait.
    #[command(after_help = RESTART_HELP)]
    Restart(RestartArgs),

    /// Show a workspace: status, template, version, whether it is outdated.
    #[command(
        after_help = "Examples:\n  fleet coder show dev\n  fleet coder show alice/dev -o json"
    )]
    Show {
        /// The workspace: its UUID, owner/name, or a name of your own (case-insensitive).
        #[arg(value_name = "WORKSPACE", value_parser = parse_workspace)]
        workspace: WorkspaceRef,
    },

    /// List the workspaces the token can see.
    #[command(after_help = "Examples:\n  fleet coder list\n  fleet coder list --outdated -o json")]
    List {
        /// Only workspaces that are not on their template's active version.
        #[arg(long)]
        outdated: bool,
    },

    /// Show a template version: name, template, import status, archived.
    #[command(
        name = "template-version",
        after_help = "Example:\n  fleet coder template-version 0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30"
    )]
    TemplateVersion {
        /// The template version's UUID.
        #[arg(value_name = "UUID", value_parser = parse_uuid)]
        id: Uuid,
    },
}

/// Deadlines and polling shared by update and restart.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// How long the stop build may take (and a build found in progress).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "5m")]
    stop_timeout: Duration,

    /// How long the start build may take.
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "10m")]
    start_timeout: Duration,

    /// First check of a build after it is created (then backing off).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "100ms", hide = true)]
    poll_initial: Duration,

    /// Longest interval between checks of a build.
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "2s", hide = true)]
    poll_max: Duration,
}

/// `fleet coder update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The workspace: its UUID, owner/name, or a name of your own (case-insensitive).
    #[arg(value_name = "WORKSPACE", value_parser = parse_workspace)]
    workspace: WorkspaceRef,

    /// The template version to run (default: the template's active version).
    #[arg(long, value_name = "UUID", value_parser = parse_uuid)]
    template_version: Option<Uuid>,

    /// Stop and start even when the workspace already runs the target version.
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    params: ParamArgs,

    #[command(flatten)]
    wait: WaitArgs,
}

/// `fleet coder restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The workspace: its UUID, owner/name, or a name of your own (case-insensitive).
    #[arg(value_name = "WORKSPACE", value_parser = parse_workspace)]
    workspace: WorkspaceRef,

    #[command(flatten)]
    params: ParamArgs,

    #[command(flatten)]
    wait: WaitArgs,
}

/// Template parameter values for the start build.
#[derive(Debug, Args)]
pub struct ParamArgs {
    /// A template parameter value for the start build, NAME=VALUE (repeatable). Wins over
    /// --parameters-file, the previous build's value and the default.
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    parameter: Vec<(String, String)>,

    /// A YAML or JSON map of parameter values (`cpu: 8`). Wins over the previous build's
    /// values and the defaults.
    #[arg(long, value_name = "FILE")]
    parameters_file: Option<std::path::PathBuf>,
}

impl ParamArgs {
    /// Reads the values into `options`; a bad file is invalid input (nothing sent).
    fn apply(&self, options: &mut UpdateOptions) -> fleet::Result<()> {
        if let Some(path) = &self.parameters_file {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                fleet::Error::InvalidInput(format!(
                    "cannot read the parameters file {origin}: {e}; nothing was sent"
                ))
            })?;
            options.parameters_file = fleet::coder::parse_parameters_file(&text, &origin)?;
        }
        options.parameters = self.parameter.iter().cloned().collect();
        Ok(())
    }
}

fn parse_assignment(s: &str) -> Result<(String, String), String> {
    fleet::coder::parse_parameter_assignment(s).map_err(|e| e.to_string())
}

fn parse_workspace(s: &str) -> Result<WorkspaceRef, String> {
    WorkspaceRef::parse(s).map_err(|e| e.to_string())
}

fn parse_uuid(s: &str) -> Result<Uuid, String> {
    fleet::coder::parse_template_version_id(s).map_err(|e| e.to_string())
}

impl WaitArgs {
    fn options(&self, force: bool, global: &GlobalOpts) -> UpdateOptions {
        let (initial, max) = match global.poll_override() {
            Some(interval) => (self.poll_initial.min(interval), interval),
            None => (self.poll_initial, self.poll_max.max(self.poll_initial)),
        };
        UpdateOptions {
            force,
            stop_timeout: self.stop_timeout,
            start_timeout: self.start_timeout,
            poll: PollOptions {
                initial,
                max,
                ..PollOptions::default()
            },
            ..UpdateOptions::default()
        }
    }
}

/// Runs a `fleet coder` subcommand; returns the exit code.
pub async fn run(cmd: CoderCmd, global: &GlobalOpts) -> fleet::Result<i32> {
    let client = CoderClient::new(&global.coder_config()?)?;
    let format = global.output;
    match cmd {
        CoderCmd::Update(args) => {
            let mut options = args.wait.options(args.force, global);
            args.params.apply(&mut options)?;
            let (cancel, _guard) = cancel_on_ctrl_c();
            let mut progress = Progress::new(format);
            let outcome = client
                .update_workspace(
                    &args.workspace,
                    args.template_version,
                    &options,
                    &cancel,
                    |e| progress.event(e),
                )
                .await;
            progress.finish();
            print_outcome(&outcome?, format);
        }
        CoderCmd::Restart(args) => {
            let mut options = args.wait.options(true, global);
            args.params.apply(&mut options)?;
            let (cancel, _guard) = cancel_on_ctrl_c();
            let mut progress = Progress::new(format);
            let outcome = client
                .restart_workspace(&args.workspace, &options, &cancel, |e| progress.event(e))
                .await;
            progress.finish();
            print_outcome(&outcome?, format);
        }
        CoderCmd::Show { workspace } => {
            let ws = client.show_workspace(&workspace).await?;
            match format {
                OutputFormat::Json => out::json(&ws),
                OutputFormat::Text => print_workspace(&ws),
            }
        }
        CoderCmd::List { outdated } => {
            let list = client.list_workspaces(outdated).await?;
            match format {
                OutputFormat::Json => out::json(&list),
                OutputFormat::Text => print_list(&list.workspaces, outdated),
            }
        }
        CoderCmd::TemplateVersion { id } => {
            let v = client.template_version(&id).await?;
            match format {
                OutputFormat::Json => out::json(&v),
                OutputFormat::Text => {
                    out::line(format!("id:          {}", opt(&v.id)));
                    out::line(format!("name:        {}", opt(&v.name)));
                    out::line(format!("template:    {}", opt(&v.template_id)));
                    out::line(format!("import job:  {}", opt(&v.job_status)));
                    if let Some(e) = &v.job_error {
                        out::line(format!("job error:   {e}"));
                    }
                    out::line(format!("archived:    {}", opt(&v.archived)));
                    out::line(format!("created:     {}", opt(&v.created_at)));
                    if let Some(m) = v.message.as_deref().filter(|m| !m.is_empty()) {
                        out::line(format!("message:     {m}"));
                    }
                }
            }
        }
    }
    Ok(0)
}

/// A cancellation token cancelled by Ctrl-C; the guard stops listening when dropped.
fn cancel_on_ctrl_c() -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let task = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    (cancel, task)
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

fn print_outcome(o: &UpdateOutcome, format: OutputFormat) {
    match format {
        OutputFormat::Json => out::json(o),
        OutputFormat::Text => {
            out::line(&o.message);
            for b in &o.builds {
                out::line(format!(
                    "  build #{} {}: {}",
                    opt(&b.build_number),
                    opt(&b.transition),
                    opt(&b.status)
                ));
            }
            out::line(format!("  took {:.1}s", o.elapsed_ms as f64 / 1000.0));
        }
    }
}

fn print_workspace(ws: &WorkspaceInfo) {
    out::line(format!("workspace:       {}", ws.full_name));
    out::line(format!("id:              {}", opt(&ws.id)));
    out::line(format!("status:          {}", opt(&ws.status)));
    out::line(format!(
        "template:        {} ({})",
        opt(&ws.template_name),
        opt(&ws.template_id)
    ));
    out::line(format!(
        "version:         {} ({})",
        opt(&ws.template_version_name),
        opt(&ws.template_version_id)
    ));
    out::line(format!(
        "active version:  {}",
        opt(&ws.template_active_version_id)
    ));
    out::line(format!("outdated:        {}", opt(&ws.outdated)));
    if let Some(b) = &ws.latest_build {
        out::line(format!(
            "latest build:    #{} {} {} (job {})",
            opt(&b.build_number),
            opt(&b.transition),
            opt(&b.status),
            opt(&b.job_status)
        ));
        if let Some(e) = &b.job_error {
            out::line(format!("build error:     {e}"));
        }
    }
}

fn print_list(list: &[WorkspaceInfo], outdated: bool) {
    if list.is_empty() {
        out::err(if outdated {
            "no outdated workspaces"
        } else {
            "no workspaces"
        });
        return;
    }
    let width = list
        .iter()
        .map(|w| w.full_name.len())
        .max()
        .unwrap_or(9)
        .max(9);
    out::line(format!(
        "{:<width$}  {:<10}  {:<20}  {:<8}  VERSION",
        "WORKSPACE", "STATUS", "TEMPLATE", "OUTDATED"
    ));
    for w in list {
        out::line(format!(
            "{:<width$}  {:<10}  {:<20}  {:<8}  {}",
            w.full_name,
            opt(&w.status),
            opt(&w.template_name),
            match w.outdated {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            w.template_version_name
                .clone()
                .or_else(|| w.template_version_id.map(|v| v.to_string()))
                .unwrap_or_else(|| "-".into()),
        ));
    }
}

/// Draws the events: a spinner per build on a terminal, plain lines on stderr otherwise,
/// nothing with `-o json`.
struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
}

#[derive(PartialEq, Eq)]
enum Mode {
    Quiet,
    Lines,
    Bars,
}

impl Progress {
    fn new(format: OutputFormat) -> Self {
        let mode = match format {
            OutputFormat::Json => Mode::Quiet,
            OutputFormat::Text if cli::stderr_is_terminal() => Mode::Bars,
            OutputFormat::Text => Mode::Lines,
        };
        Progress { mode, bar: None }
    }

    fn event(&mut self, e: CoderEvent) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => out::err(e.describe()),
            Mode::Bars => self.draw(e),
        }
    }

    fn draw(&mut self, e: CoderEvent) {
        match &e {
            CoderEvent::BuildCreated { step, .. } => {
                self.finish();
                self.bar = Some(spinner(format!("{}", StepLabel(*step))));
                if let Some(bar) = &self.bar {
                    bar.set_message(e.describe());
                }
            }
            CoderEvent::WaitingForBuildInProgress { .. } | CoderEvent::Conflict { .. } => {
                self.finish();
                let bar = spinner("waiting".into());
                bar.set_message(e.describe());
                self.bar = Some(bar);
            }
            CoderEvent::BuildStatus { .. } => match &self.bar {
                Some(bar) => bar.set_message(e.describe()),
                None => out::err(e.describe()),
            },
            CoderEvent::BuildSucceeded { .. } => match self.bar.take() {
                Some(bar) => bar.finish_with_message(e.describe()),
                None => out::err(e.describe()),
            },
            CoderEvent::Planned { .. } | CoderEvent::UpToDate { .. } => {
                self.finish();
                out::err(e.describe());
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

struct StepLabel(Step);

impl std::fmt::Display for StepLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Step::Stop => "stop",
            Step::Start => "start",
            Step::InProgress => "waiting",
        })
    }
}

fn spinner(prefix: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix:>7} [{elapsed}] {wide_msg}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(prefix);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
