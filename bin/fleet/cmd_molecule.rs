//! `fleet molecule …`: start a compute-provider migration and follow it.

use std::time::Duration;

use clap::{Args, Subcommand};
use fleet::{
    Error,
    molecule::{
        MigrateRequest, MigrationEvent, MigrationReport, MoleculeClient, Provider,
        StartedMigration, WaitOptions,
    },
};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::{
    cli::{self, GlobalOpts, OutputFormat},
    out,
};

const MIGRATE_HELP: &str = "\
A migration snapshots the workspace on its source cloud, provisions it on the target cloud,
waits until it is healthy, cuts over and retires the source. It mutates two clouds and takes
15–20 minutes; one migration per workspace at a time.

Without --confirm, fleet asks you to type the workspace id (on a terminal) or refuses with
exit code 2, having sent nothing. Without --from, the current provider is read from the
tenant API (MOLECULE_API_URL, MOLECULE_ORG_API_KEY).

Exit codes: 0 started (or, with --wait, completed) · 1 the control plane refused, or the
migration failed / rolled back · 2 invalid input or not confirmed (nothing sent) · 3 timed
out waiting (the migration goes on) · 130 interrupted (the migration goes on)

Examples:
  fleet molecule migrate-provider ws-123 --to hetzner --from aws --confirm
  fleet molecule migrate-provider ws-123 --to aws --from gcp --from-instance-id 4711 --confirm --wait
  fleet molecule migrate-provider ws-123 --to gcp --confirm --wait --timeout 25m -o json";

const STATUS_HELP: &str = "\
States: snapshotting → snapshotted → provisioning_target → target_healthy → retiring_source →
completed; also final: failed (before cutover: the source is still running, nothing was lost)
and rolled_back (the target was torn down; the workspace points at the source again).

Exit codes: 0 read (or, with --wait, completed; also when never migrated) · 1 the API refused,
or with --wait the migration failed / rolled back · 3 timed out waiting · 130 interrupted

Examples:
  fleet molecule migration-status ws-123
  fleet molecule migration-status ws-123 --wait --timeout 20m
  fleet molecule migration-status ws-123 -o json";

/// `fleet molecule` subcommands.
#[derive(Debug, Subcommand)]
pub enum MoleculeCmd {
    /// Start migrating a workspace's compute provider (aws, hetzner, gcp); optionally follow it.
    #[command(after_help = MIGRATE_HELP)]
    MigrateProvider(MigrateArgs),

    /// Show a workspace's latest migration; optionally follow it to its end.
    #[command(after_help = STATUS_HELP)]
    MigrationStatus(StatusArgs),
}

/// `fleet molecule migrate-provider`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The workspace id.
    #[arg(value_name = "WORKSPACE_ID")]
    workspace_id: String,

    /// The target provider.
    #[arg(long, value_name = "P", value_parser = ["aws", "hetzner", "gcp"])]
    to: String,

    /// The source provider (default: read from the tenant API).
    #[arg(long, value_name = "P", value_parser = ["aws", "hetzner", "gcp"])]
    from: Option<String>,

    /// The source instance id (required when the source is hetzner or gcp).
    #[arg(long, value_name = "ID")]
    from_instance_id: Option<String>,

    /// Confirm the migration (it mutates two clouds). Without it fleet asks on a terminal,
    /// and refuses otherwise.
    #[arg(long)]
    confirm: bool,

    /// Follow the migration to its end.
    #[arg(long)]
    wait: bool,

    /// With --wait: how long to wait (like 90s, 20m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "30m", requires = "wait")]
    timeout: Duration,
}

/// `fleet molecule migration-status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The workspace id.
    #[arg(value_name = "WORKSPACE_ID")]
    workspace_id: String,

    /// Follow the migration to its end.
    #[arg(long)]
    wait: bool,

    /// With --wait: how long to wait (like 90s, 20m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration, default_value = "30m", requires = "wait")]
    timeout: Duration,
}

/// Runs a `fleet molecule` subcommand; returns the exit code.
pub async fn run(cmd: MoleculeCmd, global: &GlobalOpts) -> fleet::Result<i32> {
    match cmd {
        MoleculeCmd::MigrateProvider(args) => migrate_provider(args, global).await,
        MoleculeCmd::MigrationStatus(args) => migration_status(args, global).await,
    }
}

/// Poll timings: the defaults, unless --sim or FLEET_POLL_INTERVAL_MS override them.
fn wait_options(timeout: Duration, global: &GlobalOpts) -> WaitOptions {
    let mut options = WaitOptions {
        timeout,
        ..WaitOptions::default()
    };
    if let Some(interval) = global.poll_override() {
        options.initial_interval = options.initial_interval.min(interval);
        options.max_interval = interval;
    }
    options
}

async fn migrate_provider(args: MigrateArgs, global: &GlobalOpts) -> fleet::Result<i32> {
    let request = MigrateRequest {
        workspace_id: args.workspace_id.trim().to_string(),
        to: Provider::from(args.to.as_str()),
        from: args.from.as_deref().map(Provider::from),
        from_instance_id: args.from_instance_id.clone(),
        confirm: args.confirm,
    };
    // Everything that needs no server first: nobody is asked to confirm a request that
    // cannot be sent.
    request.check()?;
    let config = global.molecule_config()?;
    let client = MoleculeClient::new(&config)?;
    let mut request = request;
    if !request.confirm {
        request.confirm = confirm_interactively(&request).await?;
    }
    let started = client.migrate_provider(&request).await?;
    let json = global.output == OutputFormat::Json;
    if !args.wait {
        if json {
            out::json(&started);
        } else {
            out::line(started_text(&started));
            out::line(format!(
                "Follow it: fleet molecule migration-status {} --wait",
                started.workspace_id
            ));
        }
        return Ok(0);
    }
    if !json {
        out::err(started_text(&started));
    }
    let mut options = wait_options(args.timeout, global);
    // The control plane may take a moment to show a migration it just accepted.
    options.not_found_grace = Duration::from_secs(30).min(args.timeout);
    let report = follow(&client, &started.workspace_id, &options, global.output).await?;
    if json {
        out::json(&serde_json::json!({ "migration_started": started, "status": report }));
    } else {
        print_report(&report);
    }
    Ok(0)
}

async fn migration_status(args: StatusArgs, global: &GlobalOpts) -> fleet::Result<i32> {
    let config = global.molecule_config()?;
    let client = MoleculeClient::new(&config)?;
    let report = if args.wait {
        follow(
            &client,
            &args.workspace_id,
            &wait_options(args.timeout, global),
            global.output,
        )
        .await?
    } else {
        client.migration_status(&args.workspace_id).await?
    };
    if global.output == OutputFormat::Json {
        out::json(&report);
    } else {
        print_report(&report);
    }
    Ok(0)
}

fn started_text(s: &StartedMigration) -> String {
    let how = match s.from_source {
        fleet::molecule::FromSource::Given => "",
        fleet::molecule::FromSource::LookedUp => " (source read from the tenant API)",
    };
    let note = s
        .note
        .as_deref()
        .map(|n| format!(" Note: {n}"))
        .unwrap_or_default();
    format!(
        "Migration of workspace {} from {}{how} to {} started ({}).{note}",
        s.workspace_id, s.from, s.to, s.status
    )
}

/// Asks a person to type the workspace id; refuses when nobody can answer.
async fn confirm_interactively(request: &MigrateRequest) -> fleet::Result<bool> {
    let id = request.workspace_id.clone();
    if !cli::interactive() {
        return Err(Error::InvalidInput(format!(
            "refusing to migrate workspace {id} without --confirm: a migration mutates two \
             clouds and nobody is at a terminal to confirm it. Nothing was sent. Add --confirm"
        )));
    }
    let from = request
        .from
        .as_ref()
        .map(|f| f.to_string())
        .unwrap_or_else(|| "its current provider".into());
    out::err(format!(
        "This migrates workspace {id} from {from} to {}: it snapshots the workspace, provisions \
         it on {}, cuts over and retires the source (15–20 minutes, two clouds change).",
        request.to, request.to
    ));
    out::prompt(format!("Type the workspace id ({id}) to confirm: "));
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| Error::InvalidInput(format!("cannot read the confirmation: {e}")))?
    .map_err(|e| Error::InvalidInput(format!("cannot read the confirmation: {e}")))?;
    if answer.trim() != id {
        return Err(Error::InvalidInput(format!(
            "the answer did not match {id}: nothing was sent"
        )));
    }
    Ok(true)
}

/// Waits for the migration, drawing progress on stderr, and handling Ctrl-C.
async fn follow(
    client: &MoleculeClient,
    workspace_id: &str,
    options: &WaitOptions,
    format: OutputFormat,
) -> fleet::Result<MigrationReport> {
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let mut display = Display::new(format);
    let result = client
        .wait_for_migration(workspace_id, options, &cancel, |event| display.show(&event))
        .await;
    watcher.abort();
    display.finish();
    result
}

/// How progress is drawn: a bar on a terminal, lines otherwise, nothing with `-o json`.
enum Display {
    Bar(ProgressBar),
    Lines,
    Quiet,
}

impl Display {
    fn new(format: OutputFormat) -> Self {
        if format == OutputFormat::Json {
            return Display::Quiet;
        }
        if !cli::stderr_is_terminal() {
            return Display::Lines;
        }
        let bar = ProgressBar::new(u64::from(fleet::molecule::TOTAL_STEPS));
        let style =
            ProgressStyle::with_template("{spinner} [{bar:24}] step {pos}/{len} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message("waiting for the first status");
        bar.enable_steady_tick(Duration::from_millis(200));
        Display::Bar(bar)
    }

    fn show(&mut self, event: &MigrationEvent) {
        let detail = event
            .detail
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| format!(" — {d}"))
            .unwrap_or_default();
        let unknown = if event.state.is_unknown() {
            " (unknown state)"
        } else {
            ""
        };
        match self {
            Display::Bar(bar) => {
                if let Some(step) = event.step {
                    bar.set_position(u64::from(step));
                }
                bar.set_message(format!("{}{unknown}{detail}", event.state));
            }
            Display::Lines => {
                let step = match event.step {
                    Some(k) => format!("step {k}/{} ", event.total_steps),
                    None => String::new(),
                };
                out::err(format!(
                    "[{:>5}s] {step}{}{unknown}{detail}",
                    event.elapsed.as_secs(),
                    event.state
                ));
            }
            Display::Quiet => {}
        }
    }

    fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn print_report(report: &MigrationReport) {
    if !report.migrated {
        out::line(format!(
            "Workspace {} has never been migrated.",
            report.workspace_id
        ));
        return;
    }
    out::line(capitalize(&report.message));
    if let Some(m) = &report.migration {
        for (key, value) in &m.extra {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out::line(format!("  {key}: {value}"));
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
