//! `fleet coder …`: update and restart workspaces onto template versions; show and list them.
//!
//! Everything that talks to Coder is in `fleet::coder`; this file parses, calls, renders.

use std::{sync::LazyLock, time::Duration};

use clap::{ArgGroup, Args, Subcommand};
use fleet::text::escape_one_line;
use fleet::{
    coder::{
        BatchAction, CoderClient, CoderEvent, DEFAULT_PARALLEL, DryRun, FleetEvent, FleetOptions,
        FleetReport, PollOptions, ReadyOptions, Selection, Severity, Step, TemplateVersionRef,
        UpdateOptions, UpdateOutcome, Verdict, WorkspaceInfo, WorkspaceRef,
    },
    operation::Aftermath,
    rollout::RolloutOptions,
};
use uuid::Uuid;

use crate::{
    cli::{self, GlobalOpts, OutputFormat},
    command::{CommandLine, NameKind, Printed},
    follow::follow,
    out,
    render::{ManyEvent, ManyShown, ManyTargets, OneTarget, Shown, TargetEvent},
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
  7. waits until its agents are connected and ready (--ready-timeout, default 10m;
     --no-wait-ready skips it): an agent whose startup script fails (start_error,
     start_timeout), that never connects (timeout), reports itself unhealthy or is not ready
     in time makes the workspace unhealthy, named with the agent, its state and health
     reason; an external agent (has_external_agent) is not waited for

Before anything is stopped (pre-flight; a refusal exits 2 and changes nothing): the target
version must exist, belong to the workspace's template, not be archived and be imported; a
template that requires its active version is honoured; each parameter value is resolved —
--parameter, then --parameters-file, then the previous build's value (not for ephemeral
parameters), then the default — and checked against the version's rules (type, options,
min/max, regex, monotonic, immutable).

A build that fails ends the command with the job's error and the last lines of its log.
Past a deadline between the stop and the start, the workspace is left stopped and fleet
prints the exact command that finishes the job. Ctrl-C: the first finishes the stop→start in
flight and starts nothing new (a batch begins no more workspaces); the second leaves
everything as it is, says what is left and the command that finishes it (exit 130).

Many workspaces: name several, or select them with --all-outdated (your outdated workspaces;
with --all-owners every outdated workspace the token can see) or --template NAME (the
outdated workspaces of that template). Up to --parallel workspaces are updated at once; each
one still goes stop → start on its own, and one failing does not stop the others. Each ends
in a verdict (updated · already current · failed, with the reason · unhealthy · not attempted
· left stopped, with the command that finishes it); a table sums them up with the stop,
start and ready durations. The exit code is the worst workspace's.

Rollout controls: --canary N updates the first N first and goes on only if all of them end
healthy; --max-failures K starts no more once K failed or are unhealthy (those in flight
finish). The summary lists the workspaces not attempted and the command that resumes: a
re-run skips the workspaces already current and healthy and starts one left stopped.

Someone at work: a workspace of someone else's used within --idle-for (default 30m; Coder's
last_used_at), one with an AI task working (latest_app_status), a prebuilt or a dormant one
is skipped with its reason (a batch still exits 0; one named workspace exits 2).
--include-busy updates them anyway (prebuilt ones need --include-prebuilds); --wait-for-idle
DURATION waits for them to become idle. The resume command covers the skipped ones.

--dry-run does every read the update needs (workspace, target version, previous parameter
values) and prints the plan — which builds in which order, which version, which parameter
values — without creating any build.

Exit codes: 0 updated, already up to date or (in a batch) skipped · 1 a build failed, a workspace is unhealthy or
Coder refused (any workspace) · 2 invalid input, not configured, or refused by the pre-flight
checks (nothing changed) · 3 timed out (a build may still be running) ·
130 interrupted (each workspace's state is said)

Examples:
  fleet coder update dev                          # your workspace `dev`, to the active version
  fleet coder update alice/dev --template-version v3    # by name (`fleet coder versions`) or ID
  fleet coder update 51330000-0000-4000-8000-000000000402 --force --start-timeout 20m
  fleet coder update alice/dev --parameter cpu=8 --parameter dotfiles_uri=https://x.test/dots
  fleet coder update alice/dev --parameters-file params.yaml
  fleet coder update alice/dev -o json            # only the final result, as JSON
  fleet coder update dev api-server bob/dev --parallel 2
  fleet coder update --all-outdated --dry-run     # what would change, nothing is
  fleet coder update --template docker-dev --all-owners --parallel 8
  fleet coder update --template web --all-owners --canary 2 --max-failures 3 --parallel 10
  fleet coder update bob/typing --idle-for 20s --wait-for-idle 1m";

const RESTART_HELP: &str = "\
Stops the workspace (if it runs), waits, starts it again on the same template version with
the same parameter values, and waits until it runs.

Several workspaces are restarted --parallel at a time, each ending in a verdict.
--dry-run prints the plan (reads only, no build is created).

Examples:
  fleet coder restart dev
  fleet coder restart alice/dev --start-timeout 20m -o json
  fleet coder restart dev api-server --parallel 2
  fleet coder restart dev --dry-run";

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

    /// Promote a template version progressively: canaries first, make it active only when
    /// they are healthy, then update the rest; a failed canary is rolled back.
    #[command(after_help = crate::cmd_promote::PROMOTE_HELP)]
    Promote(crate::cmd_promote::PromoteArgs),

    /// Roll a template back: make the previous version active again, then take the
    /// workspaces on the version rolled back from back to it.
    #[command(after_help = crate::cmd_promote::ROLLBACK_HELP)]
    Rollback(crate::cmd_promote::RollbackArgs),

    /// Show a workspace: status, template, version, whether it is outdated.
    #[command(
        after_help = "Examples:\n  fleet coder show dev\n  fleet coder show alice/dev -o json"
    )]
    Show {
        /// The workspace: its UUID, owner/name, or a name of your own (case-insensitive).
        #[arg(value_name = "WORKSPACE", value_parser = parse_workspace)]
        workspace: WorkspaceRef,
    },

    /// List your workspaces (or one owner's, or every owner's), as `update` selects them.
    #[command(
        after_help = "Like `update --all-outdated`, it covers your own workspaces unless told \
otherwise, and says how many every owner has.\n\nExamples:\n  fleet coder list\n  fleet coder list \
--outdated --all-owners -o json\n  fleet coder list --owner bob --template docker-dev"
    )]
    List {
        /// Only workspaces that are not on their template's active version.
        #[arg(long)]
        outdated: bool,

        /// Every owner's workspaces the token can see, not only yours.
        #[arg(long, conflicts_with = "owner")]
        all_owners: bool,

        /// One owner's workspaces (`me`: yours, the default).
        #[arg(long, value_name = "USER")]
        owner: Option<String>,

        /// One template's workspaces (by name).
        #[arg(long, value_name = "NAME")]
        template: Option<String>,
    },

    /// List a template's versions, newest first: name, ID, created, active, archived.
    #[command(
        after_help = "The names are what `update --template-version` takes.\n\nExamples:\n  fleet \
coder versions docker-dev\n  fleet coder versions docker-dev -o json"
    )]
    Versions {
        /// The template: its name (case-insensitive) or ID.
        #[arg(value_name = "TEMPLATE")]
        template: String,
    },

    /// Show a template version: name, template, import status, archived.
    #[command(
        name = "template-version",
        after_help = "Examples:\n  fleet coder template-version v2 --template docker-dev\n  fleet coder \
template-version 0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30"
    )]
    TemplateVersion {
        /// The version: its UUID, or its name with --template.
        #[arg(value_name = "VERSION", value_parser = parse_version)]
        version_ref: TemplateVersionRef,

        /// The template (name or ID) a version name belongs to.
        #[arg(long, value_name = "TEMPLATE")]
        template: Option<String>,
    },
}

/// The SDK's timeout defaults in the words `--help` shows (`5m`, `10m`): each default lives in
/// the SDK once ([`fleet::coder::DEFAULT_STOP_TIMEOUT`], [`fleet::coder::DEFAULT_START_TIMEOUT`],
/// [`fleet::coder::DEFAULT_READY_TIMEOUT`]).
static STOP_TIMEOUT: LazyLock<String> =
    LazyLock::new(|| cli::duration_words(fleet::coder::DEFAULT_STOP_TIMEOUT));
static START_TIMEOUT: LazyLock<String> =
    LazyLock::new(|| cli::duration_words(fleet::coder::DEFAULT_START_TIMEOUT));
static READY_TIMEOUT: LazyLock<String> =
    LazyLock::new(|| cli::duration_words(fleet::coder::DEFAULT_READY_TIMEOUT));

/// Deadlines and polling shared by update and restart.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// How long the stop build may take (and a build found in progress).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = STOP_TIMEOUT.as_str())]
    stop_timeout: Duration,

    /// How long the start build may take.
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = START_TIMEOUT.as_str())]
    start_timeout: Duration,

    /// First check of a build after it is created (then backing off).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "100ms", hide = true)]
    poll_initial: Duration,

    /// Longest interval between checks of a build.
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "2s", hide = true)]
    poll_max: Duration,

    /// After the start: how long the agents may take to be connected and ready; past it the
    /// workspace counts as unhealthy.
    #[arg(long, value_name = "DURATION", value_parser = parse_ready_timeout, default_value = READY_TIMEOUT.as_str())]
    pub(crate) ready_timeout: Duration,

    /// Do not wait for the agents after the start (a built workspace counts as updated).
    #[arg(long, conflicts_with = "ready_timeout")]
    pub(crate) no_wait_ready: bool,

    /// Stop, wait, start and wait from fleet, even on Coder ≥ 2.36 (where by default the stop
    /// carries on_success and Coder starts the workspace itself).
    #[arg(long)]
    pub(crate) client_driven: bool,

    /// Show each build's log live, under the progress display (default: on a terminal, with
    /// text output).
    #[arg(long, overrides_with = "no_logs")]
    logs: bool,

    /// Do not show the build logs live (a failed build still ends with its log tail).
    #[arg(long, overrides_with = "logs")]
    no_logs: bool,

    /// On the server-side path: how long to wait after the stop for the start build Coder
    /// creates before fleet starts the workspace itself.
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "30s", hide = true)]
    follow_up_bound: Duration,
}

/// How many at once, and dry runs: shared by update and restart.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// With several workspaces: how many are updated at once (each one still stop → start).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARALLEL, value_parser = parse_parallel)]
    parallel: usize,

    /// Print the plan (builds in order, version, parameter values) after every read it needs;
    /// create no build.
    #[arg(long)]
    dry_run: bool,

    /// With several workspaces: update the first N first, and go on only if all N end
    /// healthy.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = parse_canary)]
    canary: usize,

    /// With several workspaces: once K have failed or are unhealthy, start no more (those in
    /// flight finish); the rest are listed as not attempted, with the command that resumes.
    #[arg(long, value_name = "K", value_parser = parse_max_failures)]
    max_failures: Option<usize>,
}

/// Who is at work: shared by update and restart.
#[derive(Debug, Args)]
pub struct BusyArgs {
    /// Someone else's workspace used within this long is in use and left alone (Coder's
    /// last_used_at, from SSH, apps and port forwards, about a minute late).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "30m")]
    idle_for: Duration,

    /// Update workspaces in use, with an AI task working, or dormant anyway.
    #[arg(long)]
    include_busy: bool,

    /// Update prebuilt workspaces too (Coder's reconciler otherwise updates them).
    #[arg(long)]
    include_prebuilds: bool,

    /// Wait up to DURATION (from when fleet gets to it) for a workspace in use or with an AI
    /// task working to become idle, then update it; still busy then: skipped.
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, conflicts_with = "include_busy")]
    wait_for_idle: Option<Duration>,
}

impl BusyArgs {
    pub(crate) fn rules(&self) -> fleet::coder::BusyRules {
        fleet::coder::BusyRules {
            idle_for: self.idle_for,
            include_busy: self.include_busy,
            include_prebuilds: self.include_prebuilds,
            wait_for_idle: self.wait_for_idle,
        }
    }

    /// The flags that reproduce these rules, for a printed command.
    pub(crate) fn put(&self, c: &mut CommandLine) {
        if self.idle_for != fleet::coder::DEFAULT_IDLE_FOR {
            c.option("--idle-for", &cli::duration_words(self.idle_for));
        }
        if self.include_busy {
            c.flag("--include-busy");
        }
        if self.include_prebuilds {
            c.flag("--include-prebuilds");
        }
        if let Some(w) = self.wait_for_idle {
            c.option("--wait-for-idle", &cli::duration_words(w));
        }
    }
}

pub(crate) fn parse_max_failures(s: &str) -> Result<usize, String> {
    cli::parse_count(s, RolloutOptions::check_max_failures)
}

pub(crate) fn parse_canary(s: &str) -> Result<usize, String> {
    cli::parse_count(s, RolloutOptions::check_canary)
}

fn parse_ready_timeout(s: &str) -> Result<Duration, String> {
    let d = cli::parse_duration(s)?;
    ReadyOptions::check_timeout(d).map_err(|e| cli::message(&e))
}

/// `fleet coder update`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("targets").required(true).args(["workspaces", "all_outdated", "template"])))]
pub struct UpdateArgs {
    /// The workspaces: UUIDs, owner/name, or names of your own (case-insensitive).
    #[arg(value_name = "WORKSPACE", value_parser = parse_workspace, num_args = 1..)]
    workspaces: Vec<WorkspaceRef>,

    /// Every outdated workspace of yours (with --all-owners: every one the token can see).
    #[arg(long, conflicts_with_all = ["workspaces", "template"])]
    all_outdated: bool,

    /// The outdated workspaces of this template (yours; with --all-owners: everyone's).
    #[arg(long, value_name = "NAME", conflicts_with = "workspaces")]
    template: Option<String>,

    /// With --all-outdated or --template: every owner's workspaces, not only yours.
    #[arg(long)]
    all_owners: bool,

    /// The template version to run: its name (in each workspace's template) or its ID.
    /// Default: the template's active one. `fleet coder versions TEMPLATE` lists them.
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    template_version: Option<TemplateVersionRef>,

    /// Stop and start even when the workspace already runs the target version.
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    batch: BatchArgs,

    #[command(flatten)]
    busy: BusyArgs,

    #[command(flatten)]
    params: ParamArgs,

    #[command(flatten)]
    wait: WaitArgs,
}

/// `fleet coder restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The workspaces: UUIDs, owner/name, or names of your own (case-insensitive).
    #[arg(value_name = "WORKSPACE", value_parser = parse_workspace, required = true, num_args = 1..)]
    workspaces: Vec<WorkspaceRef>,

    #[command(flatten)]
    batch: BatchArgs,

    #[command(flatten)]
    busy: BusyArgs,

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
    pub(crate) parameter: Vec<(String, String)>,

    /// A YAML or JSON map of parameter values (`cpu: 8`). Wins over the previous build's
    /// values and the defaults.
    #[arg(long, value_name = "FILE")]
    parameters_file: Option<std::path::PathBuf>,
}

impl ParamArgs {
    /// Reads the values into `options`; a bad file is invalid input (nothing sent).
    pub(crate) fn apply(&self, options: &mut UpdateOptions) -> fleet::Result<()> {
        if let Some(path) = &self.parameters_file {
            let origin = path.display().to_string();
            let text = fleet::files::read_input_file(
                path,
                "the parameters file",
                fleet::files::PARAMETERS_FILE_MAX_BYTES,
            )?;
            options.parameters_file = fleet::coder::parse_parameters_file(&text, &origin)?;
        }
        options.parameters = self.parameter.iter().cloned().collect();
        Ok(())
    }
}

fn parse_assignment(s: &str) -> Result<(String, String), String> {
    fleet::coder::parse_parameter_assignment(s).map_err(|e| crate::cli::message(&e))
}

pub(crate) fn parse_workspace(s: &str) -> Result<WorkspaceRef, String> {
    WorkspaceRef::parse(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_parallel(s: &str) -> Result<usize, String> {
    cli::parse_count(s, RolloutOptions::check_parallel)
}

pub(crate) fn parse_version(s: &str) -> Result<TemplateVersionRef, String> {
    TemplateVersionRef::parse(s).map_err(|e| crate::cli::message(&e))
}

impl WaitArgs {
    /// Whether build logs are shown: the flags, else on a terminal with text output.
    pub(crate) fn show_logs(&self, format: OutputFormat) -> bool {
        if self.logs {
            true
        } else if self.no_logs {
            false
        } else {
            format == OutputFormat::Text && cli::stderr_is_terminal()
        }
    }

    pub(crate) fn options(&self, force: bool, global: &GlobalOpts) -> UpdateOptions {
        UpdateOptions {
            force,
            stop_timeout: self.stop_timeout,
            start_timeout: self.start_timeout,
            poll: PollOptions {
                initial: self.poll_initial,
                max: self.poll_max.max(self.poll_initial),
                ..PollOptions::default()
            }
            .with_interval_cap(global.poll_override()),
            client_driven: self.client_driven,
            follow_up_bound: self.follow_up_bound,
            ..UpdateOptions::default()
        }
    }

    /// How the agents are waited for after the start (`None` with --no-wait-ready).
    pub(crate) fn ready(&self, update: &UpdateOptions) -> Option<ReadyOptions> {
        (!self.no_wait_ready).then(|| ReadyOptions {
            timeout: self.ready_timeout,
            poll: update.poll.clone(),
            push: update.push,
        })
    }
}

/// Runs a `fleet coder` subcommand; returns the exit code.
pub async fn run(cmd: CoderCmd, global: &GlobalOpts) -> fleet::Result<i32> {
    let client = CoderClient::new(&global.coder_config()?)?;
    let format = global.output;
    match cmd {
        CoderCmd::Update(args) => {
            let mut options = args.wait.options(args.force, global);
            options.busy = args.busy.rules();
            args.params.apply(&mut options)?;
            let selection = Selection::choose(
                args.workspaces.clone(),
                args.all_outdated,
                args.template.clone(),
                args.all_owners,
            )?;
            let action = BatchAction::Update {
                template_version: args.template_version.clone(),
            };
            let ready = args.wait.ready(&options);
            let resume = Resume {
                command: "update",
                selection: selection.clone(),
                template_version: args.template_version.clone(),
                force: args.force,
                wait: &args.wait,
                batch: &args.batch,
                busy: &args.busy,
                parameters: &args.params.parameter,
            };
            let logs = args.wait.show_logs(format);
            return run_selection(
                &client,
                selection,
                action,
                options,
                ready,
                &args.batch,
                format,
                &resume,
                logs,
            )
            .await;
        }
        CoderCmd::Restart(args) => {
            let mut options = args.wait.options(true, global);
            options.busy = args.busy.rules();
            args.params.apply(&mut options)?;
            let selection = Selection::Named(args.workspaces.clone());
            let ready = args.wait.ready(&options);
            let resume = Resume {
                command: "restart",
                selection: selection.clone(),
                template_version: None,
                force: false,
                wait: &args.wait,
                batch: &args.batch,
                busy: &args.busy,
                parameters: &args.params.parameter,
            };
            let logs = args.wait.show_logs(format);
            return run_selection(
                &client,
                selection,
                BatchAction::Restart,
                options,
                ready,
                &args.batch,
                format,
                &resume,
                logs,
            )
            .await;
        }
        CoderCmd::Promote(args) => {
            return crate::cmd_promote::promote(&client, args, global).await;
        }
        CoderCmd::Rollback(args) => {
            return crate::cmd_promote::rollback(&client, args, global).await;
        }
        CoderCmd::Show { workspace } => {
            let ws = client.show_workspace(&workspace).await?;
            match format {
                OutputFormat::Json => out::json(&ws),
                OutputFormat::Text => print_workspace(&ws),
            }
        }
        CoderCmd::List {
            outdated,
            all_owners,
            owner,
            template,
        } => {
            // Yours unless told otherwise (clap refuses --owner beside --all-owners).
            let filter = fleet::coder::WorkspaceFilter {
                owner: (!all_owners).then(|| owner.unwrap_or_else(|| "me".into())),
                template,
                outdated: outdated.then_some(true),
                ..Default::default()
            };
            let list = client.list_workspaces_in(&filter).await?;
            match format {
                OutputFormat::Json => out::json(&list),
                OutputFormat::Text => {
                    print_list(&list.workspaces, outdated);
                    if let Some(scope) = &list.scope {
                        out::err(scope_line(scope));
                    }
                }
            }
        }
        CoderCmd::Versions { template } => {
            let listed = client.template_versions(&template).await?;
            match format {
                OutputFormat::Json => out::json(&listed),
                OutputFormat::Text => print_versions(&listed),
            }
        }
        CoderCmd::TemplateVersion {
            version_ref,
            template,
        } => {
            let v = client
                .find_template_version(template.as_deref(), &version_ref)
                .await?;
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

/// One workspace keeps the single-workspace output; several (or a selection) go through the
/// batch; --dry-run prints the plan. Each runs as an SDK operation followed by
/// [`crate::follow::follow`]: the first Ctrl-C cancels gracefully (nothing new starts, a stop
/// under way is followed by its start), the second leaves everything as it is (exit 130, with
/// what is left and how to finish it).
#[allow(clippy::too_many_arguments)]
async fn run_selection(
    client: &CoderClient,
    selection: Selection,
    action: BatchAction,
    options: UpdateOptions,
    ready: Option<ReadyOptions>,
    batch: &BatchArgs,
    format: OutputFormat,
    resume: &Resume<'_>,
    logs: bool,
) -> fleet::Result<i32> {
    let single = match &selection {
        Selection::Named(refs) if refs.len() == 1 => refs.first().cloned(),
        _ => None,
    };
    if let Some(workspace) = single {
        let (version, restart) = match action.clone() {
            BatchAction::Update { template_version } => (template_version, false),
            BatchAction::Restart => (None, true),
        };
        let mut progress = OneTarget::new(format, logs);
        if batch.dry_run {
            let op = client.start_dry_run(workspace, version, restart, options);
            let plan = follow(&op, &mut progress).await?;
            match format {
                OutputFormat::Json => out::json(&plan),
                OutputFormat::Text => print_dry_run(&plan),
            }
            return Ok(0);
        }
        let op = if restart {
            client.start_restart_ready(workspace, options, ready)
        } else {
            client.start_update_ready(workspace, version, options, ready)
        };
        let outcome = follow(&op, &mut progress).await;
        print_outcome(&outcome?, format);
        return Ok(0);
    }
    let fleet_options = FleetOptions {
        action,
        parallel: batch.parallel,
        update: options,
        dry_run: batch.dry_run,
        canary: batch.canary,
        max_failures: batch.max_failures,
        ready,
    };
    let mut progress = ManyTargets::new(format, logs, true);
    let op = client.start_update_many(selection, fleet_options);
    let report = follow(&op, &mut progress).await?;
    // A halted rollout, or workspaces left alone, are resumed by the command it prints.
    let resume =
        (report.halt.is_some() || report.skipped > 0).then(|| resume.command_line(&report));
    match format {
        OutputFormat::Json => out::json(&with_commands(&report, resume.as_ref())),
        OutputFormat::Text => print_report(&report, resume.as_ref()),
    }
    Ok(cli::batch_exit_code(&report))
}

/// The report as JSON, each result left half-way with the command line that finishes it
/// (`finish_command`) or follows it (`follow_command`).
fn with_commands(report: &FleetReport, resume: Option<&Printed>) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    if let Some(resume) = resume {
        resume.put_json(&mut v, "resume_command");
    }
    if let Some(results) = v["results"].as_array_mut() {
        for (json, r) in results.iter_mut().zip(&report.results) {
            match &r.aftermath {
                Aftermath::LeftStopped { finish } => {
                    cli::finish_command(finish).put_json(json, "finish_command");
                }
                Aftermath::StillRunning { follow } => {
                    cli::follow_command(follow).put_json(json, "follow_command");
                }
                _ => {}
            }
        }
    }
    v
}

fn version_text(name: &Option<String>, id: &Option<Uuid>) -> String {
    match (name, id) {
        (Some(n), Some(i)) => format!("{n} ({i})"),
        (Some(n), None) => n.clone(),
        (None, Some(i)) => i.to_string(),
        (None, None) => "-".into(),
    }
}

fn print_dry_run(d: &DryRun) {
    out::line(format!("Dry run (nothing was changed): {}", d.summary));
    out::line(format!(
        "  now:     {} on {}",
        opt(&d.status),
        version_text(&d.current_version_name, &d.current_version_id)
    ));
    out::line(format!(
        "  target:  {}{}",
        version_text(&d.target_version_name, &Some(d.target_version_id)),
        if d.plan.target_is_active_version {
            " (the template's active version)"
        } else {
            ""
        }
    ));
    if d.builds.is_empty() {
        out::line("  builds:  none");
    } else {
        out::line(format!(
            "  path:    {} ({})",
            d.plan.path, d.plan.path_reason
        ));
        if let Some(s) = &d.plan.server_side_start {
            out::line(format!(
                "           the stop build carries on_success: Coder starts it {}",
                match s.template_version_id {
                    Some(v) => format!("on {v} (pinned)"),
                    None => "on the template's active version at that time".into(),
                }
            ));
        }
    }
    for (i, b) in d.builds.iter().enumerate() {
        out::line(format!(
            "  {}. {} build{}",
            i + 1,
            b.transition,
            b.template_version_id
                .map(|v| format!(
                    " on {} with {} parameter value(s)",
                    version_text(&d.target_version_name, &Some(v)),
                    b.parameter_values
                ))
                .unwrap_or_default()
        ));
    }
    if !d.builds.is_empty() {
        for p in &d.plan.parameters {
            let was = match &p.previous_value {
                Some(prev) if *prev != p.value => format!(", was {prev}"),
                _ => String::new(),
            };
            out::line(format!(
                "     {} = {}  ({}{was})",
                p.name, p.value, p.source
            ));
        }
    }
}

/// `fleet coder versions`: one row per version, then which one is active.
fn print_versions(listed: &fleet::coder::TemplateVersions) {
    let created = |c: &Option<String>| {
        c.as_deref()
            .map(|c| c.get(..16).unwrap_or(c).replace('T', " "))
            .unwrap_or_else(|| "-".into())
    };
    let name_width = listed
        .versions
        .iter()
        .map(|v| v.name.chars().count().min(40))
        .max()
        .unwrap_or(4)
        .max(4);
    out::line(format!(
        "{:<name_width$}  {:<36}  {:<16}  {:<6}  ARCHIVED",
        "NAME", "ID", "CREATED", "ACTIVE"
    ));
    for v in &listed.versions {
        out::line(format!(
            "{:<name_width$}  {:<36}  {:<16}  {:<6}  {}",
            escape_one_line(&v.name),
            opt(&v.id),
            created(&v.created_at),
            if v.active { "yes" } else { "" },
            if v.archived { "yes" } else { "" },
        ));
    }
    out::err(format!(
        "{} version(s) of template {}",
        listed.versions.len(),
        escape_one_line(&listed.template)
    ));
}

/// What a re-run needs: the command as given, for the line that resumes a halted rollout.
struct Resume<'a> {
    command: &'static str,
    selection: Selection,
    template_version: Option<TemplateVersionRef>,
    force: bool,
    wait: &'a WaitArgs,
    batch: &'a BatchArgs,
    busy: &'a BusyArgs,
    parameters: &'a [(String, String)],
}

impl Resume<'_> {
    /// The command that resumes: the same command again (an update skips the workspaces that
    /// are already current and healthy and starts one left stopped); a restart, on the
    /// workspaces not attempted and those skipped only.
    fn command_line(&self, report: &FleetReport) -> Printed {
        let mut c = CommandLine::new(&["coder", self.command]);
        match &self.selection {
            Selection::Named(_) if self.command == "restart" => {
                let not_attempted = report.halt.iter().flat_map(|h| &h.not_attempted);
                let skipped = report
                    .results
                    .iter()
                    .filter(|r| r.verdict == Verdict::Skipped)
                    .map(|r| &r.workspace);
                c.needs_names().names(
                    not_attempted.chain(skipped).map(String::as_str),
                    NameKind::CoderWorkspace,
                );
            }
            Selection::Named(refs) => {
                for r in refs {
                    c.name(&r.to_string(), NameKind::CoderWorkspace);
                }
            }
            Selection::AllOutdated { all_owners } => {
                c.flag("--all-outdated");
                if *all_owners {
                    c.flag("--all-owners");
                }
            }
            Selection::Template { name, all_owners } => {
                c.option("--template", name.trim());
                if *all_owners {
                    c.flag("--all-owners");
                }
            }
        }
        if let Some(v) = &self.template_version {
            c.option("--template-version", &v.to_string());
        }
        if self.force {
            c.flag("--force");
        }
        for (k, v) in self.parameters {
            c.option("--parameter", &format!("{k}={v}"));
        }
        if self.batch.parallel != DEFAULT_PARALLEL {
            c.option("--parallel", &self.batch.parallel.to_string());
        }
        if self.batch.canary > 0 {
            c.option("--canary", &self.batch.canary.to_string());
        }
        if let Some(k) = self.batch.max_failures {
            c.option("--max-failures", &k.to_string());
        }
        self.busy.put(&mut c);
        if self.wait.client_driven {
            c.flag("--client-driven");
        }
        if self.wait.no_wait_ready {
            c.flag("--no-wait-ready");
        } else if self.wait.ready_timeout != fleet::coder::DEFAULT_READY_TIMEOUT {
            c.option(
                "--ready-timeout",
                &cli::duration_words(self.wait.ready_timeout),
            );
        }
        c.build()
    }
}

pub(crate) fn tone(v: Verdict) -> out::Tone {
    match v {
        Verdict::Updated | Verdict::Restarted | Verdict::AlreadyCurrent | Verdict::WouldChange => {
            out::Tone::Good
        }
        Verdict::Failed | Verdict::Unhealthy | Verdict::LeftStopped | Verdict::TimedOut => {
            out::Tone::Bad
        }
        _ => out::Tone::Neutral,
    }
}

/// "2 in use, 1 with an AI task working, …": why the skipped workspaces were left alone.
fn skipped_why(r: &FleetReport) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for reason in r.results.iter().filter_map(|w| w.skipped.as_ref()) {
        let why = match reason {
            fleet::coder::BusyReason::InUse { .. } => "in use by someone else",
            fleet::coder::BusyReason::TaskWorking { .. } => "with an AI task working",
            fleet::coder::BusyReason::Prebuild => "prebuilt",
            fleet::coder::BusyReason::Dormant { .. } => "dormant",
        };
        match counts.iter_mut().find(|(w, _)| *w == why) {
            Some((_, n)) => *n += 1,
            None => counts.push((why, 1)),
        }
    }
    counts
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn secs(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0))
}

/// A result's VERSION cell, on one line: `from → to`, or the one version when it did not
/// change.
pub(crate) fn version_cell(w: &fleet::coder::WorkspaceResult) -> String {
    let to = w
        .to_version_name
        .clone()
        .or_else(|| w.to_version_id.map(|v| v.to_string()));
    let version = match (&w.from_version_name, to) {
        (Some(f), Some(t)) if *f == t => f.clone(),
        (f, Some(t)) => format!("{} → {t}", f.clone().unwrap_or_else(|| "?".into())),
        (Some(f), None) => f.clone(),
        (None, None) => "-".into(),
    };
    escape_one_line(&version).into_owned()
}

/// How wide a column is: its widest cell or its header, in characters.
pub(crate) fn column_width<'a>(cells: impl IntoIterator<Item = &'a str>, header: &str) -> usize {
    cells
        .into_iter()
        .map(|c| c.chars().count())
        .chain([header.chars().count()])
        .max()
        .unwrap_or(0)
}

fn print_report(r: &FleetReport, resume: Option<&Printed>) {
    // A row is one line: the server's names and versions are shown with any line break
    // escaped, and the columns are as wide as what is shown.
    let names: Vec<String> = r
        .results
        .iter()
        .map(|w| escape_one_line(&w.workspace).into_owned())
        .collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    // The VERSION column too is as wide as its widest cell: a long version name must not push
    // the columns after it out of line.
    let versions: Vec<String> = r.results.iter().map(version_cell).collect();
    let version_w = column_width(versions.iter().map(String::as_str), "VERSION");
    out::line(format!(
        "{:<width$}  {:<15}  {:<version_w$}  {:>7}  {:>7}  {:>7}  {:>7}",
        "WORKSPACE", "VERDICT", "VERSION", "STOP", "START", "READY", "TOTAL"
    ));
    for ((w, name), version) in r.results.iter().zip(&names).zip(&versions) {
        let total = (w.verdict != Verdict::NotAttempted).then_some(w.elapsed_ms);
        out::row_with_verdict(
            &format!("{name:<width$}  "),
            &w.verdict.to_string(),
            15,
            tone(w.verdict),
            &format!(
                "  {version:<version_w$}  {:>7}  {:>7}  {:>7}  {:>7}",
                secs(w.stop_ms),
                secs(w.start_ms),
                secs(w.ready_ms),
                secs(total)
            ),
        );
    }
    for w in &r.results {
        match w.verdict {
            Verdict::WouldChange => {
                if let Some(d) = &w.dry_run {
                    out::line("");
                    print_dry_run(d);
                }
            }
            Verdict::Updated | Verdict::Restarted | Verdict::AlreadyCurrent => {
                if let Some(ready) = w.ready.as_ref().filter(|r| r.has_external_agent) {
                    out::line("");
                    out::line(format!(
                        "{}: {}",
                        escape_one_line(&w.workspace),
                        ready.reason
                    ));
                }
            }
            Verdict::NotAttempted => {}
            _ => {
                out::line("");
                out::line(format!(
                    "{}: {} — {}",
                    escape_one_line(&w.workspace),
                    w.verdict,
                    crate::cli::advised(&w.message, &w.remedies)
                ));
                match &w.aftermath {
                    Aftermath::LeftStopped { finish } => {
                        out::line(format!(
                            "  {}",
                            cli::finish_command(finish).sentence("to finish it")
                        ));
                    }
                    Aftermath::StillRunning { follow } => {
                        out::line(format!(
                            "  {}",
                            cli::follow_command(follow).sentence("to follow it")
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    let mut counts: Vec<(Verdict, usize)> = Vec::new();
    for w in &r.results {
        match counts.iter_mut().find(|(v, _)| *v == w.verdict) {
            Some((_, n)) => *n += 1,
            None => counts.push((w.verdict, 1)),
        }
    }
    if let Some(halt) = &r.halt {
        crate::cli::print_halt(
            halt,
            "workspaces already current and healthy are skipped",
            resume,
        );
    }
    if r.skipped > 0 {
        out::line("");
        out::line(format!(
            "{} workspace(s) {}skipped, left alone: {}.",
            r.skipped,
            if r.dry_run { "would be " } else { "" },
            skipped_why(r)
        ));
        if let (Some(command), None) = (resume, &r.halt) {
            out::line(command.sentence("to pick them up later"));
        }
    }
    out::line("");
    out::line(format!(
        "{}{} workspace(s): {} (took {:.1}s){}",
        if r.dry_run {
            "Dry run, nothing changed: "
        } else {
            ""
        },
        r.total,
        if counts.is_empty() {
            "nothing selected".to_string()
        } else {
            counts
                .iter()
                .map(|(v, n)| format!("{n} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        r.elapsed_ms as f64 / 1000.0,
        match r.worst {
            Severity::Interrupted => " — interrupted",
            _ => "",
        }
    ));
    if let Some(scope) = &r.scope {
        out::line(format!("Selected {}.", scope_line(scope)));
    }
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
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
            if o.action == fleet::coder::UpdateAction::UpToDate {
                out::line("  (pass --force to stop and start it anyway)");
            }
            for b in &o.builds {
                out::line(format!(
                    "  build #{} {}: {}",
                    opt(&b.build_number),
                    opt(&b.transition),
                    opt(&b.status)
                ));
            }
            out::line(format!("  path: {} ({})", o.path, o.path_reason));
            if let Some(f) = &o.fallback {
                out::line(format!("  fell back: {}", f.describe()));
            }
            out::line(format!("  took {:.1}s", o.elapsed_ms as f64 / 1000.0));
        }
    }
}

fn print_workspace(ws: &WorkspaceInfo) {
    // One field a line: the server's names are shown with any line break escaped.
    let one = |v: String| escape_one_line(&v).into_owned();
    out::line(format!("workspace:       {}", one(ws.full_name.clone())));
    out::line(format!("id:              {}", opt(&ws.id)));
    out::line(format!("status:          {}", opt(&ws.status)));
    out::line(format!(
        "template:        {} ({})",
        one(opt(&ws.template_name)),
        opt(&ws.template_id)
    ));
    out::line(format!(
        "version:         {} ({})",
        one(opt(&ws.template_version_name)),
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

/// Whose workspaces a list or a selection covered, in `fleet`'s words: "6 of your outdated
/// workspaces; 7 with --all-owners".
fn scope_line(scope: &fleet::coder::ListScope) -> String {
    let what = format!(
        "{}workspace{}{}",
        if scope.outdated_only { "outdated " } else { "" },
        if scope.count == 1 { "" } else { "s" },
        scope
            .template
            .as_deref()
            .map(|t| format!(" of template {t}"))
            .unwrap_or_default()
    );
    let whose = match scope.owner.as_deref() {
        Some("me") => format!("{} of your {what}", scope.count),
        Some(owner) => format!("{} of {owner}'s {what}", scope.count),
        None => format!("{} {what} of every owner", scope.count),
    };
    match scope.all_owners_count {
        Some(all) if scope.owner.is_some() => format!("{whose}; {all} with --all-owners"),
        _ => whose,
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
    let names: Vec<String> = list
        .iter()
        .map(|w| escape_one_line(&w.full_name).into_owned())
        .collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    out::line(format!(
        "{:<width$}  {:<10}  {:<20}  {:<8}  VERSION",
        "WORKSPACE", "STATUS", "TEMPLATE", "OUTDATED"
    ));
    for (w, name) in list.iter().zip(&names) {
        out::line(format!(
            "{:<width$}  {:<10}  {:<20}  {:<8}  {}",
            name,
            opt(&w.status),
            escape_one_line(&opt(&w.template_name)),
            match w.outdated {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            escape_one_line(
                &w.template_version_name
                    .clone()
                    .or_else(|| w.template_version_id.map(|v| v.to_string()))
                    .unwrap_or_else(|| "-".into())
            ),
        ));
    }
}

/// A progress line as drawn: one line whatever the server's words in it hold, redacted and
/// escaped.
fn one_line(text: &str) -> String {
    out::shown(&escape_one_line(text))
}

impl TargetEvent for CoderEvent {
    fn shown(&self) -> Shown {
        match self {
            CoderEvent::BuildLog { output, .. } => Shown::Log(output.clone()),
            CoderEvent::LogLinesDropped { count } => Shown::Dropped(*count),
            CoderEvent::BuildCreated { step, .. }
            | CoderEvent::BuildFoundAfterError { step, .. } => Shown::Begin {
                label: match step {
                    Step::Stop => "stop",
                    Step::Start => "start",
                    Step::InProgress => "waiting",
                },
                again: false,
            },
            CoderEvent::WaitingForBuildInProgress { .. }
            | CoderEvent::Conflict { .. }
            | CoderEvent::WaitingForIdle { .. } => Shown::Begin {
                label: "waiting",
                again: false,
            },
            CoderEvent::BuildStatus { .. } => Shown::Update,
            CoderEvent::BuildSucceeded { .. }
            | CoderEvent::Readiness(fleet::coder::ReadyEvent::Ended { .. }) => Shown::End,
            CoderEvent::Planned { .. }
            | CoderEvent::QueuedForBuild { .. }
            | CoderEvent::UpToDate { .. }
            | CoderEvent::LogsUnavailable { .. }
            | CoderEvent::FellBack { .. } => Shown::Line,
            CoderEvent::Readiness(fleet::coder::ReadyEvent::Waiting { .. }) => Shown::Begin {
                label: "ready",
                again: true,
            },
        }
    }

    fn text(&self) -> String {
        one_line(&self.describe())
    }
}

impl ManyEvent for FleetEvent {
    fn shown(&self) -> ManyShown {
        match self {
            FleetEvent::Selected { workspaces } => ManyShown::Total(workspaces.len()),
            FleetEvent::Began { index, workspace } => ManyShown::Begin {
                key: index.to_string(),
                label: workspace.clone(),
            },
            FleetEvent::Step {
                step: CoderEvent::BuildLog { .. },
                ..
            } => ManyShown::Log,
            FleetEvent::Step {
                index, workspace, ..
            } => ManyShown::Step {
                key: index.to_string(),
                label: workspace.clone(),
            },
            FleetEvent::Finished {
                index,
                done,
                result,
                ..
            } => ManyShown::Finished {
                key: index.to_string(),
                label: result.workspace.clone(),
                done: *done,
                last: Some(format!(
                    "last: {} {}",
                    escape_one_line(&result.workspace),
                    result.verdict
                )),
            },
            FleetEvent::LogLinesDropped { count } => ManyShown::Dropped(*count),
            FleetEvent::Halted { .. } => ManyShown::Note { one_fewer: false },
        }
    }

    fn text(&self) -> String {
        match self {
            FleetEvent::Step { step, .. } => escape_one_line(&step.describe()).into_owned(),
            FleetEvent::Finished { result, .. } => format!(
                "{}: {}",
                result.verdict,
                escape_one_line(first_line(&result.message))
            ),
            _ => escape_one_line(&self.describe()).into_owned(),
        }
    }

    fn line(&self) -> Option<String> {
        match self {
            FleetEvent::Began { .. } => None,
            // A workspace's result may span lines (a build's error and log tail); every other
            // event is one line, whatever the server's names and log lines hold.
            FleetEvent::Finished {
                done,
                total,
                result,
                ..
            } => {
                // A dry run's plan is printed once, on stdout (issue 27 item 7).
                let message = if result.verdict == Verdict::WouldChange {
                    String::new()
                } else {
                    format!(": {}", result.message)
                };
                Some(format!(
                    "[{}] {} ({done}/{total}){message}",
                    escape_one_line(&result.workspace),
                    result.verdict,
                ))
            }
            _ => Some(escape_one_line(&self.describe()).into_owned()),
        }
    }
}
