//! `fleet`: migrate Molecule workspaces across clouds, update and restart Coder workspaces.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[path = "shared/advice.rs"]
mod advice;
#[path = "fleet/cli.rs"]
mod cli;
#[path = "fleet/cmd_coder.rs"]
mod cmd_coder;
#[path = "fleet/cmd_context.rs"]
mod cmd_context;
#[path = "fleet/cmd_doctor.rs"]
mod cmd_doctor;
#[path = "fleet/cmd_molecule.rs"]
mod cmd_molecule;
#[path = "fleet/cmd_promote.rs"]
mod cmd_promote;
#[cfg(feature = "sim")]
#[path = "fleet/cmd_sim.rs"]
mod cmd_sim;
#[cfg(not(feature = "sim"))]
#[path = "fleet/cmd_no_sim.rs"]
mod cmd_sim;
#[path = "fleet/command.rs"]
mod command;
#[path = "shared/config_text.rs"]
mod config_text;
#[path = "fleet/follow.rs"]
mod follow;
#[path = "fleet/out.rs"]
mod out;
#[path = "fleet/render.rs"]
mod render;
#[path = "shared/safe_text.rs"]
mod safe_text;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use cli::{GlobalOpts, LogLevel};

const AFTER_HELP: &str = "\
Configuration (flags, then the environment, then the context in use, then `coder login`):
  fleet context add NAME …, fleet context use NAME, --context NAME or FLEET_CONTEXT;
  FLEET_CONFIG  the config file (default $XDG_CONFIG_HOME/fleet/config.toml)
  MOLECULE_CP_URL       CP admin API base URL (default https://api.moleculesai.app)
  CP_ADMIN_API_TOKEN    CP admin API token
  MOLECULE_API_URL      tenant API base URL (to look up a workspace's provider)
  MOLECULE_ORG_API_KEY  tenant API key
  CODER_URL             Coder deployment URL
  CODER_SESSION_TOKEN   Coder session token

Exit codes:
  0 success · 1 the remote operation failed or the API refused · 2 invalid usage or input,
  or refused by a pre-flight check (nothing was changed) · 3 timed out waiting (the
  operation may still be running) · 130 interrupted

Examples:
  fleet molecule migrate-provider ws-aws-demo --to hetzner --confirm --wait
  fleet molecule migration-status ws-aws-demo
  fleet coder update alice/dev
  fleet coder list --outdated -o json";

/// Operate fleets of cloud workspaces: migrate Molecule workspaces across clouds (AWS,
/// Hetzner, GCP) and update or restart Coder workspaces onto new template versions.
#[derive(Debug, Parser)]
#[command(name = "fleet", version, after_help = AFTER_HELP, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Molecule control plane: migrate a workspace's compute provider and follow it.
    #[command(subcommand)]
    Molecule(cmd_molecule::MoleculeCmd),

    /// Coder: update and restart workspaces onto template versions.
    #[command(subcommand)]
    Coder(cmd_coder::CoderCmd),

    /// Named contexts: where each control plane is and where its tokens come from.
    #[command(subcommand)]
    Context(cmd_context::ContextCmd),

    /// Check each configured control plane: it answers, TLS verifies, the token is accepted.
    ///
    /// For the context in use, or the environment: Coder's version, on_success and watch-ws,
    /// whose the token is (username, roles); Molecule's CP admin API and route layout, and
    /// the tenant API when configured; where each value came from. Only reads; each check is
    /// bounded by --timeout. Exit 0 when every configured plane works, 1 when one does not,
    /// 2 when nothing is configured.
    Doctor(cmd_doctor::DoctorArgs),

    /// Serve a simulator of both control planes in memory (seeded workspaces, faults on demand).
    Sim(cmd_sim::SimArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `fleet completions bash > ~/.local/share/bash-completion/completions/fleet`
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What a subcommand's help says about the options it does not show.
const GLOBAL_OPTIONS_NOTE: &str =
    "Global options (control planes, tokens, --context, --sim): see `fleet --help`.";

/// The global options a subcommand's help leaves out: those under the Molecule, Coder and
/// Simulator headings, --context and --insecure-http (-o and --log-level stay). They are accepted everywhere and shown
/// once, by `fleet --help`, so that a subcommand's help leads with its own options.
fn connection_ids(cmd: &clap::Command) -> Vec<clap::Id> {
    cmd.get_arguments()
        .filter(|a| a.is_global_set())
        .filter(|a| {
            a.get_help_heading()
                .is_some_and(|h| ["Molecule", "Coder", "Simulator"].contains(&h))
                || ["context", "insecure_http"].contains(&a.get_id().as_str())
        })
        .map(|a| a.get_id().clone())
        .collect()
}

fn hide_connection_options(sub: clap::Command, ids: &[clap::Id]) -> clap::Command {
    // In place (mut_args, mut_subcommands): the command is built, its argument index stays.
    let note = match sub.get_after_help() {
        Some(text) => format!("{text}\n\n{GLOBAL_OPTIONS_NOTE}"),
        None => GLOBAL_OPTIONS_NOTE.to_string(),
    };
    sub.after_help(note)
        .mut_args(|a| {
            if ids.contains(a.get_id()) {
                a.hide(true)
            } else {
                a
            }
        })
        .mut_subcommands(|c| hide_connection_options(c, ids))
}

/// The command line as parsed and as its help shows it (completions use [`Cli::command`],
/// which completes every option everywhere).
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    let ids = connection_ids(&cmd);
    cmd.mut_subcommands(|c| {
        if c.get_name() == "help" {
            c
        } else {
            hide_connection_options(c, &ids)
        }
    })
}

fn main() {
    let matches = command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if matches!(cli.command, Command::Sim(_)) {
        // `fleet sim` is the simulator: --speed, --bulk-workspaces and --cp-admin-layout set
        // it. The global --sim options start one inside another command; here they would be
        // silently ignored, so they are refused.
        for (id, flag, instead) in [
            ("sim", "--sim", "`fleet sim` is the simulator already"),
            ("sim_speed", "--sim-speed", "use --speed"),
            ("sim_bulk", "--sim-bulk", "use --bulk-workspaces"),
            (
                "sim_cp_admin_layout",
                "--sim-cp-admin-layout",
                "use --cp-admin-layout",
            ),
        ] {
            if cli::on_command_line(&matches, id) {
                command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!("{flag} does not apply to `fleet sim`: {instead}"),
                    )
                    .exit();
            }
        }
    }
    cli.global.note_command_line(&matches);
    init_logging(cli.global.log_level);
    cli::warn_tokens_on_command_line(&matches);
    // `fleet sim` talks to no control plane and prints its own public test tokens, which the
    // environment may hold from an earlier `export`.
    if !matches!(cli.command, Command::Sim(_)) {
        cli.global.never_print_tokens();
    }

    if let Command::Completions { shell } = &cli.command {
        let mut cmd = Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(*shell, &mut cmd, "fleet", &mut buf);
        out::line(String::from_utf8_lossy(&buf).trim_end());
        return;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out::err(format!("error: cannot start the async runtime: {e}"));
            std::process::exit(1);
        }
    };
    let format = cli.global.output;
    let code = runtime.block_on(async move {
        let mut cli = cli;
        // The config file and the context in use are read before anything is sent: an unknown
        // context or a malformed file stops here.
        if !cli.global.sim
            && matches!(
                cli.command,
                Command::Molecule(_) | Command::Coder(_) | Command::Doctor(_)
            )
        {
            if let Err(e) = cli.global.resolve() {
                return cli::report_error(&e, format);
            }
        }
        // --sim: the simulator runs in this process for as long as the command does.
        let _sim = if cli.global.sim && !matches!(cli.command, Command::Sim(_)) {
            match start_sim(&mut cli.global).await {
                Ok(sim) => Some(sim),
                Err(e) => return cli::report_error(&e, format),
            }
        } else {
            None
        };
        let result = match cli.command {
            Command::Molecule(cmd) => cmd_molecule::run(cmd, &cli.global).await,
            Command::Coder(cmd) => cmd_coder::run(cmd, &cli.global).await,
            Command::Context(cmd) => cmd_context::run(cmd, &cli.global),
            Command::Doctor(args) => cmd_doctor::run(args, &cli.global).await,
            Command::Sim(args) => cmd_sim::run(args, &cli.global).await,
            Command::Completions { .. } => Ok(0),
        };
        match result {
            Ok(code) => code,
            Err(e) => cli::report_error(&e, format),
        }
    });
    // Do not wait for lingering background reads on the way out.
    runtime.shutdown_background();
    std::process::exit(code);
}

#[cfg(not(feature = "sim"))]
async fn start_sim(_global: &mut GlobalOpts) -> fleet::Result<()> {
    Err(cmd_sim::no_sim())
}

#[cfg(feature = "sim")]
async fn start_sim(global: &mut GlobalOpts) -> fleet::Result<fleet::sim::RunningSim> {
    let sim = fleet::sim::Simulator::start(fleet::sim::SimOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        speed: global.sim_speed,
        bulk_workspaces: global.sim_bulk,
        cp_admin_layout: global.sim_cp_admin_layout.into(),
        ..fleet::sim::SimOptions::default()
    })
    .await?;
    tracing::info!(addr = %sim.addr(), speed = sim.speed(), "simulator started");
    if global.output == cli::OutputFormat::Text {
        out::err(format!(
            "(simulator at {} running {}x real time: nothing real is touched)",
            sim.base_url(),
            sim.speed()
        ));
    }
    global.sim_configs = Some((sim.molecule_config(), sim.coder_config()));
    global.sim_poll = Some(sim.poll_interval());
    Ok(sim)
}

fn init_logging(level: LogLevel) {
    let filter = match level {
        LogLevel::Off => "off",
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    // Our own crate at the chosen level; dependencies one notch quieter unless trace. The
    // TLS verifier's own error line says again what the command's error says.
    let directive = match level {
        // Dependencies stay at info even then: their trace output is wire-level detail.
        LogLevel::Trace => "info,fleet=trace".to_string(),
        _ => format!("warn,fleet={filter},rustls_platform_verifier=off"),
    };
    let _ = tracing_subscriber::fmt()
        // Redacted and escaped like every other line; no colour codes, so that nothing in a
        // log line needs a raw control character.
        .with_writer(out::log_writer)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(directive))
        .with_target(false)
        .try_init();
}
