//! `fleet molecule …`: start a compute-provider migration and follow it.

use std::time::Duration;

use clap::{Args, Subcommand};
use fleet::text::escape_one_line;
use fleet::{
    Error, ReadBack,
    molecule::{
        BatchEvent, MigrateRequest, MigrationBatch, MigrationEvent, MigrationPlan, MigrationReport,
        MigrationRunEvent, MigrationStarts, MoleculeClient, Provider, RouteChoice,
        StartedMigration, WaitOptions,
    },
    rollout::RolloutOptions,
};

use crate::{
    cli::{self, GlobalOpts, OutputFormat},
    command::{CommandLine, NameKind, Printed},
    follow::follow,
    out,
    render::{ManyEvent, ManyShown, ManyTargets, OneTarget, Shown, TargetEvent},
};

const MIGRATE_HELP: &str = "\
A migration snapshots the workspace on its source cloud, provisions it on the target cloud,
waits until it is healthy, cuts over and retires the source. It mutates two clouds and takes
15–20 minutes; one migration per workspace at a time.

Without --confirm, fleet asks you to type the workspace id (on a terminal) or refuses with
exit code 2, having sent nothing. Without --from, the current provider is read from the
tenant API (MOLECULE_API_URL, MOLECULE_ORG_API_KEY); so is the source instance id a migration
away from hetzner or gcp needs, without --from-instance-id (the output says where each came
from). A workspace id the control plane or the tenant API does not know exits 2, with the
closest id the tenant API lists.

--dry-run does every read the migration needs (the source provider from the tenant API when
--from is not given, the workspace's current migration) and prints the plan: from where to
where, and whether the control plane would refuse it now. It sends no POST, so it needs no
--confirm.

Several workspaces: name several ids. Every request is checked first; then the migrations are
started one after another (each POST once; one refused does not stop the others), and with
--wait followed concurrently, ending in a table. --from-instance-id names one source instance,
so it takes one workspace (each workspace's own is read from the tenant API). Without --confirm, fleet asks you to type how many workspaces to
migrate. The exit code is the worst workspace's (130 > 3 > 1 > 2 > 0): one refused by the
pre-flight checks exits 2 in a batch as on its own.

A rollout: with --wait, --canary N migrates the first N first and starts the rest only once
all N reached completed; --max-failures K starts no more once K ended failed or rolled_back
(or timed out); --parallel P (default 4) migrations run at once, with or without the other
two. A table gives one row per workspace; the workspaces not attempted are listed with the
command that resumes. Without any of the three, --wait starts every migration, then follows
them all.

--org-id, --runtime, --env NAME=VALUE (repeatable) and --image are sent only when given.

The CP-admin routes are under /cp/admin (the published contract) or /api/v1/admin (what the
platform's management server calls): --cp-admin-prefix / MOLECULE_CP_ADMIN_PREFIX picks one;
unset, the status read before the start finds the one the control plane serves (never a POST
to a route no GET confirmed). --dry-run and --log-level info say which is used.

If the control plane gives no clear answer to the POST (a 5xx, a reset, a timeout), fleet does
not send it again: it reads the migration back and says whether one is running now (and how
to follow it) or that nothing was started; exit code 1 either way.

Ctrl-C (as for Coder): the first lets a start under way get its answer, starts no more and
stops following (the migrations go on; fleet prints how to follow them); the second leaves at
once, saying which start may have begun (exit 130).

Exit codes: 0 started (or, with --wait, completed) · 1 the control plane refused, the start is
unconfirmed, or the migration failed / rolled back · 2 invalid input, not confirmed, unknown
workspace or refused by a pre-flight check, also for --dry-run (nothing changed) · 3 timed out waiting (the migration goes on) · 130 interrupted (the migration goes on)

Examples:
  fleet molecule migrate-provider ws-aws-demo --to hetzner --from aws --confirm
  fleet molecule migrate-provider ws-gcp-demo --to aws --from-instance-id gce-7730118842 --confirm
  fleet molecule migrate-provider ws-hetzner-demo --to gcp --confirm --wait --timeout 25m -o json
  fleet molecule migrate-provider ws-aws-demo --to gcp --dry-run      # the plan; nothing sent
  fleet molecule migrate-provider ws-aws-demo ws-hetzner-demo --to gcp --confirm --wait";

const STATUS_HELP: &str = "\
States: snapshotting → snapshotted → provisioning_target → target_healthy → retiring_source →
completed; also final: failed (before cutover: the source is still running, nothing was lost)
and rolled_back (the target was torn down; the workspace points at the source again).

Several workspace ids are read (or, with --wait, followed) concurrently; each ends in a
verdict and a summary table follows. The exit code is the worst workspace's, in this order:
130 interrupted > 3 timed out > 1 failed > 2 not found > 0 ok. A timeout outranks a failure
because a migration still running has no outcome yet: a script must look again (the failures are in
the table either way).

Exit codes: 0 read (or, with --wait, completed; also when never migrated) · 1 the API refused,
or with --wait the migration failed / rolled back · 2 no such workspace (the control plane's
\"workspace not found\", or a workspace the tenant API does not know) · 3 timed out waiting ·
130 interrupted

Examples:
  fleet molecule migration-status ws-migrated
  fleet molecule migration-status ws-migrating --wait --timeout 20m
  fleet molecule migration-status ws-migrated -o json
  fleet molecule migration-status ws-migrated ws-migrating --wait";

/// `fleet molecule` subcommands.
// Parsed once per run: the size of the arguments does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// The workspace ids (several are started one after another).
    #[arg(value_name = "WORKSPACE_ID", required = true, num_args = 1..)]
    workspace_ids: Vec<String>,

    /// The target provider.
    #[arg(long, value_name = "P", value_parser = ["aws", "hetzner", "gcp"])]
    to: String,

    /// The source provider (default: read from the tenant API).
    #[arg(long, value_name = "P", value_parser = ["aws", "hetzner", "gcp"])]
    from: Option<String>,

    /// The source instance id of a hetzner or gcp source (default: read from the tenant API).
    #[arg(long, value_name = "ID")]
    from_instance_id: Option<String>,

    /// The workspace's organization, sent as org_id (only when given).
    #[arg(long, value_name = "ID")]
    org_id: Option<String>,

    /// The runtime for the target, sent as runtime (only when given).
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<String>,

    /// An environment variable for the target, NAME=VALUE (repeatable; sent as env only when
    /// given).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env_pair)]
    env: Vec<(String, String)>,

    /// The image for the target, sent as image (only when given).
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,

    /// Confirm the migration (it mutates two clouds). Without it fleet asks on a terminal,
    /// and refuses otherwise.
    #[arg(long)]
    confirm: bool,

    /// Follow the migration to its end.
    #[arg(long, conflicts_with = "dry_run")]
    wait: bool,

    /// With --wait: how long to wait, 1s to 1h (like 90s, 20m).
    #[arg(long, value_name = "DURATION", value_parser = parse_migration_timeout, default_value = DEFAULT_TIMEOUT.as_str(), requires = "wait")]
    timeout: Duration,

    /// Print the plan (source, target, the current migration) after the reads it needs; send
    /// no POST. Needs no --confirm: it changes nothing.
    #[arg(long)]
    dry_run: bool,

    /// A rollout over several workspaces: migrate the first N first, and start the rest only
    /// once all N reached `completed`. Needs --wait.
    #[arg(long, value_name = "N", requires = "wait", value_parser = parse_canary)]
    canary: Option<usize>,

    /// A rollout over several workspaces: once K migrations ended failed or rolled_back (or
    /// timed out), start no more; the rest are listed as not attempted. Needs --wait.
    #[arg(long, value_name = "K", requires = "wait", value_parser = parse_max_failures)]
    max_failures: Option<usize>,

    /// A rollout over several workspaces: at most P migrations in flight (started and not yet
    /// ended; default 4), with or without --canary and --max-failures. Needs --wait.
    #[arg(long, value_name = "P", requires = "wait", value_parser = parse_parallel)]
    parallel: Option<usize>,
}

/// `--timeout`'s default, the SDK's [`fleet::molecule::DEFAULT_MIGRATION_TIMEOUT`] in words
/// (`30m`).
static DEFAULT_TIMEOUT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| cli::duration_words(fleet::molecule::DEFAULT_MIGRATION_TIMEOUT));

/// `--timeout`: a duration within the SDK's [`fleet::molecule::MIGRATION_TIMEOUT_RANGE`].
fn parse_migration_timeout(s: &str) -> Result<Duration, String> {
    let d = cli::parse_duration(s)?;
    WaitOptions::check_timeout(d).map_err(|e| cli::message(&e))
}

fn parse_parallel(s: &str) -> Result<usize, String> {
    cli::parse_count(s, RolloutOptions::check_parallel)
}

fn parse_canary(s: &str) -> Result<usize, String> {
    cli::parse_count(s, RolloutOptions::check_canary)
}

fn parse_max_failures(s: &str) -> Result<usize, String> {
    cli::parse_count(s, RolloutOptions::check_max_failures)
}

impl MigrateArgs {
    /// The rollout controls given; the one default for the rest.
    fn rollout(&self) -> RolloutOptions {
        RolloutOptions {
            parallel: self.parallel.unwrap_or(RolloutOptions::DEFAULT_PARALLEL),
            canary: self.canary.unwrap_or(0),
            max_failures: self.max_failures,
        }
    }

    /// Any rollout control given: the batch runs as a rollout.
    fn is_rollout(&self) -> bool {
        self.canary.is_some() || self.max_failures.is_some() || self.parallel.is_some()
    }
}

/// `fleet molecule migration-status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The workspace ids (several are read, or followed, concurrently).
    #[arg(value_name = "WORKSPACE_ID", required = true, num_args = 1..)]
    workspace_ids: Vec<String>,

    /// Follow the migration to its end.
    #[arg(long)]
    wait: bool,

    /// With --wait: how long to wait, 1s to 1h (like 90s, 20m).
    #[arg(long, value_name = "DURATION", value_parser = parse_migration_timeout, default_value = DEFAULT_TIMEOUT.as_str(), requires = "wait")]
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
    options.poll = options.poll.with_interval_cap(global.poll_override());
    options
}

/// Parses `--env NAME=VALUE` (the SDK checks the name).
fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "{s:?} is not NAME=VALUE; write e.g. --env LOG_LEVEL=debug"
        )),
    }
}

/// The request for one workspace from the command line.
fn request_for(workspace_id: &str, args: &MigrateArgs) -> fleet::Result<MigrateRequest> {
    let mut env = std::collections::BTreeMap::new();
    for (name, value) in &args.env {
        if env.insert(name.clone(), value.clone()).is_some() {
            return Err(Error::InvalidInput(format!(
                "--env {name} is given twice: give each variable once; nothing was sent"
            )));
        }
    }
    Ok(MigrateRequest {
        from: args.from.as_deref().map(Provider::from),
        from_instance_id: args.from_instance_id.clone(),
        confirm: args.confirm,
        org_id: args.org_id.clone(),
        runtime: args.runtime.clone(),
        env,
        image: args.image.clone(),
        ..MigrateRequest::new(workspace_id.trim(), Provider::from(args.to.as_str()))
    })
}

/// The command to run next after a POST without a clear answer ([`Error::Unconfirmed`]).
fn next_step(found: ReadBack, workspace_id: &str) -> String {
    match found {
        ReadBack::UnderWay => {
            cli::migration_status_command(workspace_id, true).sentence("to follow it")
        }
        ReadBack::NothingStarted => "Run the same command again to start it.".into(),
        ReadBack::AlreadyEnded | ReadBack::Unknown => {
            cli::migration_status_command(workspace_id, false).sentence("to check it")
        }
    }
}

async fn migrate_provider(args: MigrateArgs, global: &GlobalOpts) -> fleet::Result<i32> {
    if args.workspace_ids.len() > 1 {
        return migrate_provider_many(args, global).await;
    }
    let workspace_id = args.workspace_ids.first().cloned().unwrap_or_default();
    let request = request_for(&workspace_id, &args)?;
    // Everything that needs no server first: nobody is asked to confirm a request that
    // cannot be sent.
    request.check()?;
    let config = global.molecule_config()?;
    let client = MoleculeClient::new(&config)?;
    if args.dry_run {
        let plan = client.plan_migration(&request).await?;
        match global.output {
            OutputFormat::Json => out::json(&plan),
            OutputFormat::Text => print_plan(&plan),
        }
        // As the real run would: 2 when the control plane would refuse it now.
        return Ok(plan_code(&plan));
    }
    let mut request = request;
    if !request.confirm {
        request.confirm = confirm_interactively(&request).await?;
    }
    let json = global.output == OutputFormat::Json;
    if !args.wait {
        // One POST, never retried: nothing to follow.
        let started = client
            .migrate_provider(&request)
            .await
            .map_err(|e| e.with_next_step(|found| next_step(found, &request.workspace_id)))?;
        if json {
            out::json(&started);
        } else {
            out::line(started_text(&started));
            out::line(
                cli::migration_status_command(&started.workspace_id, true).sentence("to follow it"),
            );
        }
        return Ok(0);
    }
    let workspace_id = request.workspace_id.clone();
    let op = client.start_migration(request, wait_options(args.timeout, global));
    let mut display = migration_display(global.output);
    let run = follow(&op, &mut display)
        .await
        .map_err(|e| e.with_next_step(|found| next_step(found, &workspace_id)))?;
    if json {
        out::json(&run);
    } else {
        print_report(&run.status);
    }
    Ok(0)
}

async fn migrate_provider_many(args: MigrateArgs, global: &GlobalOpts) -> fleet::Result<i32> {
    if args.from_instance_id.is_some() {
        return Err(Error::InvalidInput(
            "--from-instance-id names one source instance: give one workspace with it (a \
             source that is not aws needs its own instance id per workspace); nothing was sent"
                .into(),
        ));
    }
    let requests = args
        .workspace_ids
        .iter()
        .map(|id| request_for(id, &args).map(|r| MigrateRequest { confirm: true, ..r }))
        .collect::<fleet::Result<Vec<MigrateRequest>>>()?;
    // Everything that needs no server first, for every workspace.
    for r in &requests {
        r.check()?;
    }
    let config = global.molecule_config()?;
    let client = MoleculeClient::new(&config)?;
    // What depends on the configuration too (without the tenant API: --from, and the
    // instance id of a source that is not aws), for every workspace before any request.
    for r in &requests {
        client.check_request(r)?;
    }
    if args.dry_run {
        // Each plan (reads only), `--parallel` at once; as before, a workspace that cannot be
        // planned fails the dry run with its error (the first one, in the order given).
        let planned = client
            .start_plan_migrations(requests, args.rollout())
            .outcome()
            .await?;
        if let Some(e) = planned.first_error() {
            return Err(e.clone());
        }
        let plans: Vec<&MigrationPlan> = planned.plans().unwrap_or_default();
        match global.output {
            OutputFormat::Json => out::json(&plans),
            OutputFormat::Text => plans.iter().copied().for_each(print_plan),
        }
        return Ok(plans.iter().copied().map(plan_code).max().unwrap_or(0));
    }
    if !args.confirm {
        confirm_many_interactively(&requests).await?;
    }
    if args.is_rollout() {
        return migrate_rollout(&client, &requests, &args, global).await;
    }
    let wait = args.wait.then(|| wait_options(args.timeout, global));
    let op = client.start_migrate_many(requests.clone(), wait, MAX_CONCURRENT_STATUS);
    let mut display = batch_display(global.output, requests.len(), args.wait);
    let run = follow(&op, &mut display).await?;
    let json = global.output == OutputFormat::Json;
    let starts = run.starts;
    let started = starts.started_ids();
    let batch = run.status;
    let code = cli::code(run.worst);
    if json {
        out::json(&serde_json::json!({
            "starts": starts_json(&starts),
            "status": batch.as_ref().map(batch_json),
            "exit_code": code,
        }));
    } else {
        if let Some(b) = &batch {
            print_batch(b);
        } else if !started.is_empty() {
            out::line(
                CommandLine::new(&["molecule", "migration-status"])
                    .flag("--wait")
                    .needs_names()
                    .names(
                        started.iter().map(String::as_str),
                        NameKind::MoleculeWorkspace,
                    )
                    .build()
                    .sentence("to follow them"),
            );
        }
        let refused = starts.results.len() - started.len();
        if refused > 0 {
            out::line(format!(
                "{} of {} migration(s) were not started (see above)",
                refused,
                starts.results.len()
            ));
        }
    }
    Ok(code)
}

/// Several migrations under the rollout controls (--canary, --max-failures, --parallel): each
/// started and followed to its end; a table (or JSON) with one row per workspace, the halt
/// and the command that resumes. Ctrl-C: crate::follow's policy (starts no more; the ones
/// followed go on).
async fn migrate_rollout(
    client: &MoleculeClient,
    requests: &[MigrateRequest],
    args: &MigrateArgs,
    global: &GlobalOpts,
) -> fleet::Result<i32> {
    let rollout = args.rollout();
    let options = wait_options(args.timeout, global);
    let op = client.start_migrate_rollout(requests.to_vec(), options, rollout);
    let mut display = batch_display(global.output, requests.len(), true);
    let result = follow(&op, &mut display).await;
    let report = result?;
    let resume = report.halt.as_ref().map(|_| resume_command(args, &report));
    let resume = resume.as_ref();
    let code = cli::code(report.worst);
    if global.output == OutputFormat::Json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(r) = resume {
            r.put_json(&mut v, "resume_command");
        }
        v["exit_code"] = code.into();
        out::json(&v);
        return Ok(code);
    }
    let width = report
        .results
        .iter()
        .map(|r| r.workspace_id.len())
        .max()
        .unwrap_or(9)
        .max(9);
    out::line(format!(
        "{:<width$}  {:<13}  {:<18}  {:>8}  REASON",
        "WORKSPACE", "VERDICT", "FROM → TO", "TIME"
    ));
    for r in &report.results {
        let tone = match r.verdict {
            fleet::molecule::RolloutVerdict::Completed => out::Tone::Good,
            fleet::molecule::RolloutVerdict::Failed | fleet::molecule::RolloutVerdict::TimedOut => {
                out::Tone::Bad
            }
            _ => out::Tone::Neutral,
        };
        let from = r.from.as_ref().map_or("?".to_string(), |p| p.to_string());
        out::row_with_verdict(
            &format!("{:<width$}  ", r.workspace_id),
            &r.verdict.to_string(),
            13,
            tone,
            &format!(
                "  {:<18}  {:>8}  {}",
                format!("{from} → {}", r.to),
                format!("{:.1}s", r.elapsed_ms as f64 / 1000.0),
                r.message.lines().next().unwrap_or("")
            ),
        );
    }
    if let Some(halt) = &report.halt {
        crate::cli::print_halt(
            halt,
            "the workspaces not completed, after fixing the cause",
            resume,
        );
    }
    Ok(code)
}

/// The command that resumes a halted migration rollout: the workspaces not completed (a
/// completed one runs on the target already), with the same options.
fn resume_command(args: &MigrateArgs, report: &fleet::molecule::MigrationRollout) -> Printed {
    let mut c = CommandLine::new(&["molecule", "migrate-provider"]);
    c.option("--to", &args.to);
    if let Some(f) = &args.from {
        c.option("--from", f);
    }
    c.flag("--confirm").flag("--wait");
    if let Some(n) = args.canary {
        c.option("--canary", &n.to_string());
    }
    if let Some(k) = args.max_failures {
        c.option("--max-failures", &k.to_string());
    }
    c.option("--parallel", &args.rollout().parallel.to_string());
    c.needs_names().names(
        report
            .results
            .iter()
            .filter(|r| r.verdict != fleet::molecule::RolloutVerdict::Completed)
            .map(|r| r.workspace_id.as_str()),
        NameKind::MoleculeWorkspace,
    );
    c.build()
}

/// One line typed by the person at the terminal.
async fn read_answer() -> fleet::Result<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| Error::InvalidInput(format!("cannot read the confirmation: {e}")))?
    .map_err(|e| Error::InvalidInput(format!("cannot read the confirmation: {e}")))
}

/// Asks a person to type how many workspaces to migrate.
async fn confirm_many_interactively(requests: &[MigrateRequest]) -> fleet::Result<()> {
    let n = requests.len();
    if !cli::interactive() {
        return Err(Error::InvalidInput(format!(
            "refusing to migrate {n} workspaces without --confirm: a migration mutates two \
             clouds and nobody is at a terminal to confirm it. Nothing was sent. Add --confirm"
        )));
    }
    let ids: Vec<&str> = requests.iter().map(|r| r.workspace_id.as_str()).collect();
    out::err(format!(
        "This migrates {n} workspaces ({}) to {}: each is snapshotted, provisioned on {}, cut \
         over and its source retired (15–20 minutes each, two clouds change).",
        ids.join(", "),
        requests[0].to,
        requests[0].to
    ));
    out::prompt(format!("Type the number of workspaces ({n}) to confirm: "));
    let answer = read_answer().await?;
    if answer.trim() != n.to_string() {
        return Err(Error::InvalidInput(format!(
            "the answer did not match {n}: nothing was sent"
        )));
    }
    Ok(())
}

async fn migration_status(args: StatusArgs, global: &GlobalOpts) -> fleet::Result<i32> {
    if args.workspace_ids.len() > 1 {
        return migration_status_many(args, global).await;
    }
    let workspace_id = args.workspace_ids.first().cloned().unwrap_or_default();
    let config = global.molecule_config()?;
    let client = MoleculeClient::new(&config)?;
    let report = if args.wait {
        let op = client.start_follow_migration(workspace_id, wait_options(args.timeout, global));
        follow(&op, &mut migration_display(global.output)).await?
    } else {
        client.migration_status(&workspace_id).await?
    };
    if global.output == OutputFormat::Json {
        out::json(&report);
    } else {
        print_report(&report);
    }
    Ok(0)
}

/// At most this many migrations are read or followed at once.
const MAX_CONCURRENT_STATUS: usize = 256;

async fn migration_status_many(args: StatusArgs, global: &GlobalOpts) -> fleet::Result<i32> {
    // Every id is checked by the SDK before any request.
    let config = global.molecule_config()?;
    let client = MoleculeClient::new(&config)?;
    let options = wait_options(args.timeout, global);
    let op = client.start_follow_many(
        args.workspace_ids.clone(),
        args.wait.then_some(options),
        MAX_CONCURRENT_STATUS,
    );
    let mut display = batch_display(global.output, args.workspace_ids.len(), args.wait);
    let batch = follow(&op, &mut display).await;
    let batch = batch?;
    match global.output {
        OutputFormat::Json => out::json(&batch_json(&batch)),
        OutputFormat::Text => print_batch(&batch),
    }
    Ok(cli::code(batch.worst))
}

/// The starts of a batch as JSON, with the exit code their worst ending has on its own.
fn starts_json(starts: &MigrationStarts) -> serde_json::Value {
    let mut v = serde_json::to_value(starts).unwrap_or_default();
    v["exit_code"] = cli::code(starts.worst).into();
    v
}

/// A batch as JSON, with the exit codes (the batch's and each workspace's on its own).
fn batch_json(batch: &MigrationBatch) -> serde_json::Value {
    let mut v = serde_json::to_value(batch).unwrap_or_default();
    v["exit_code"] = cli::code(batch.worst).into();
    if let Some(rows) = v["results"].as_array_mut() {
        for (row, r) in rows.iter_mut().zip(&batch.results) {
            row["exit_code"] = cli::code(r.verdict.severity()).into();
        }
    }
    v
}

fn print_batch(b: &MigrationBatch) {
    let width = b
        .results
        .iter()
        .map(|r| r.workspace_id.len())
        .max()
        .unwrap_or(9)
        .max(12);
    out::line(format!(
        "{:<width$}  {:<14}  {:<22}  ROUTE",
        "WORKSPACE_ID", "VERDICT", "STATE"
    ));
    for r in &b.results {
        let verdict = serde_json::to_value(r.verdict)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_default();
        let route = r
            .report
            .as_ref()
            .and_then(|rep| rep.migration.as_ref())
            .map(|m| {
                format!(
                    "{} → {}",
                    m.from_provider
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "?".into()),
                    m.to_provider
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "?".into())
                )
            })
            .unwrap_or_else(|| "-".into());
        out::line(format!(
            "{:<width$}  {:<14}  {:<22}  {route}",
            r.workspace_id,
            verdict,
            r.state.as_deref().unwrap_or("-"),
        ));
    }
    out::line("");
    for r in &b.results {
        out::line(format!(
            "{}: {}",
            r.workspace_id,
            crate::cli::advised(&r.message, &r.remedies)
        ));
    }
}

/// The exit code of a dry run: the one the real run would have before sending anything (2
/// when the control plane would refuse it now, else 0).
fn plan_code(p: &MigrationPlan) -> i32 {
    use fleet::operation::Severity;
    cli::code(if p.blocked.is_some() {
        Severity::Refused
    } else {
        Severity::Ok
    })
}

fn print_plan(p: &MigrationPlan) {
    out::line(format!(
        "Dry run (nothing was sent that changes anything): {}",
        p.summary
    ));
    out::line(format!(
        "  from:     {}{}",
        p.from,
        match p.from_source {
            fleet::molecule::FromSource::Given => "",
            fleet::molecule::FromSource::LookedUp => " (read from the tenant API)",
        }
    ));
    out::line(format!("  to:       {}", p.to));
    if let Some(i) = &p.from_instance_id {
        out::line(format!(
            "  instance: {i}{}",
            match p.from_instance_id_source {
                Some(fleet::molecule::FromSource::LookedUp) =>
                    " (read from the tenant API: compute.instance_id)",
                _ => "",
            }
        ));
    }
    for (name, value) in [
        ("org_id:  ", &p.org_id),
        ("runtime: ", &p.runtime),
        ("image:   ", &p.image),
    ] {
        if let Some(v) = value {
            out::line(format!("  {name} {v}"));
        }
    }
    for (name, value) in &p.env {
        out::line(format!("  env:      {name}={value}"));
    }
    out::line(format!(
        "  route:    {} ({})",
        p.route.base_url,
        match p.route.choice {
            RouteChoice::Configured => "the configured CP-admin prefix",
            RouteChoice::Default => "the /cp/admin layout: the control plane answered there",
            RouteChoice::Discovered =>
                "the /api/v1/admin layout: /cp/admin has no such route, this one answered",
            RouteChoice::Unconfirmed => "not confirmed by a GET",
        }
    ));
    out::line(format!("  now:      {}", p.current.message));
    if p.blocked.is_none() {
        let mut c = CommandLine::new(&["molecule", "migrate-provider"]);
        c.option("--to", &p.to.to_string())
            .option("--from", &p.from.to_string());
        for (flag, value) in [
            ("--from-instance-id", &p.from_instance_id),
            ("--org-id", &p.org_id),
            ("--runtime", &p.runtime),
            ("--image", &p.image),
        ] {
            if let Some(v) = value {
                c.option(flag, v);
            }
        }
        for (name, value) in &p.env {
            c.option("--env", &format!("{name}={value}"));
        }
        c.flag("--confirm")
            .needs_names()
            .name(&p.workspace_id, NameKind::MoleculeWorkspace);
        out::line(format!("  {}", c.build().sentence("to start it")));
    }
}

impl ManyEvent for BatchEvent {
    fn shown(&self) -> ManyShown {
        match self {
            BatchEvent::Started { result } => ManyShown::Note {
                one_fewer: result.started.is_none(),
            },
            BatchEvent::State { workspace_id, .. } => ManyShown::Step {
                key: workspace_id.clone(),
                label: workspace_id.clone(),
            },
            BatchEvent::Finished { done, result, .. } => ManyShown::Finished {
                key: result.workspace_id.clone(),
                label: result.workspace_id.clone(),
                done: *done,
                last: None,
            },
        }
    }

    fn text(&self) -> String {
        match self {
            BatchEvent::Started { result } => start_line(result),
            BatchEvent::State { event, .. } => state_line(event),
            BatchEvent::Finished { result, .. } => {
                escape_one_line(result.message.lines().next().unwrap_or("")).into_owned()
            }
        }
    }

    fn line(&self) -> Option<String> {
        Some(match self {
            BatchEvent::Started { result } => start_line(result),
            BatchEvent::State {
                workspace_id,
                event,
            } => format!("[{workspace_id}] {}", state_line(event)),
            BatchEvent::Finished {
                done,
                total,
                result,
            } => format!(
                "[{}] ended ({done}/{total}): {}",
                result.workspace_id,
                result.message.lines().next().unwrap_or("")
            ),
        })
    }
}

/// Several migrations' renderer: with `wait`, bars on a terminal (one line per workspace and
/// a total of `count`); else lines.
fn batch_display(format: OutputFormat, count: usize, wait: bool) -> ManyTargets {
    ManyTargets::new(format, false, wait).with_total(count)
}

/// How the start of one migration of a batch went, in one line (and what to do next when its
/// answer was unclear).
fn start_line(r: &fleet::molecule::StartResult) -> String {
    let next = r
        .read_back
        .map(|found| format!(". {}", next_step(found, &r.workspace_id)))
        .unwrap_or_default();
    format!(
        "[{}] {}{next}",
        r.workspace_id,
        crate::cli::advised(&r.message, &r.remedies)
    )
}

/// One progress line: the control plane's words (its state, detail) with any line break
/// escaped, so that they cannot start a line of their own.
fn state_line(event: &MigrationEvent) -> String {
    format!(
        "[{:>5}s] {}",
        event.elapsed.as_secs(),
        escape_one_line(&event.describe())
    )
}

fn started_text(s: &StartedMigration) -> String {
    use fleet::molecule::FromSource::{Given, LookedUp};
    let how = match (
        s.from_source,
        &s.from_instance_id,
        s.from_instance_id_source,
    ) {
        (LookedUp, Some(i), Some(LookedUp)) => {
            format!(" (source and instance {i} read from the tenant API)")
        }
        (LookedUp, Some(i), _) => format!(" (source read from the tenant API; instance {i})"),
        (LookedUp, None, _) => " (source read from the tenant API)".to_string(),
        (Given, Some(i), Some(LookedUp)) => {
            format!(" (instance {i} read from the tenant API)")
        }
        (Given, Some(i), _) => format!(" (instance {i})"),
        (Given, None, _) => String::new(),
    };
    let note = s
        .note
        .as_deref()
        .map(|n| format!(" Note: {}", escape_one_line(n)))
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
    let answer = read_answer().await?;
    if answer.trim() != id {
        return Err(Error::InvalidInput(format!(
            "the answer did not match {id}: nothing was sent"
        )));
    }
    Ok(true)
}

impl TargetEvent for MigrationEvent {
    fn shown(&self) -> Shown {
        Shown::Steps {
            step: self.step,
            of: self.total_steps,
        }
    }

    fn text(&self) -> String {
        out::shown(&escape_one_line(&self.state_text()))
    }

    fn line(&self) -> String {
        state_line(self)
    }
}

impl TargetEvent for MigrationRunEvent {
    fn shown(&self) -> Shown {
        match self {
            MigrationRunEvent::Started(_) => Shown::Above,
            MigrationRunEvent::State(e) => e.shown(),
        }
    }

    fn text(&self) -> String {
        match self {
            MigrationRunEvent::Started(s) => started_text(s),
            MigrationRunEvent::State(e) => e.text(),
        }
    }

    fn line(&self) -> String {
        match self {
            MigrationRunEvent::Started(s) => started_text(s),
            MigrationRunEvent::State(e) => e.line(),
        }
    }
}

/// One target's renderer for a migration: a bar of its steps on a terminal.
fn migration_display(format: OutputFormat) -> OneTarget {
    OneTarget::new(format, false)
        .with_steps(fleet::molecule::TOTAL_STEPS, "waiting for the first status")
}

fn print_report(report: &MigrationReport) {
    if !report.migrated {
        out::line(format!(
            "Workspace {} has never been migrated.",
            report.workspace_id
        ));
        return;
    }
    // One sentence: the control plane's detail in it is shown with any line break escaped.
    out::line(escape_one_line(&capitalize(&report.message)));
    if let Some(m) = &report.migration {
        for (key, value) in &m.extra {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out::line(format!(
                "  {}: {}",
                escape_one_line(key),
                escape_one_line(&value)
            ));
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
