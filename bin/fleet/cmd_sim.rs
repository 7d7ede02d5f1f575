//! `fleet sim`: serve the built-in simulator of both control planes until Ctrl-C.

use std::net::SocketAddr;

use clap::Args;
use fleet::{
    Error,
    sim::{SEED_TABLE, SimFaults, SimOptions, Simulator},
};

use crate::{
    cli::{GlobalOpts, OutputFormat, SimCpAdminLayout},
    command::{CommandLine, NameKind},
    out,
};

/// `fleet sim` arguments.
#[derive(Debug, Args)]
#[command(
    about = "Serve a simulator of the Molecule CP, the Molecule tenant API and Coder, in memory",
    long_about = "Serve a simulator of the Molecule CP admin API, the Molecule tenant API and \
                  Coder, in memory, on loopback, until Ctrl-C. It speaks the contracts in openapi/ \
                  (status codes, error bodies, auth checks) with seeded workspaces and faults on \
                  demand, so every fleet command can be tried without credentials. It prints the \
                  environment variables to export.",
    after_help = SEED_TABLE
)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// How much faster than real time (1 = realistic: a migration takes ~16 minutes;
    /// 100 = seconds). The global --sim-speed (default 60) is for the simulator --sim starts
    /// inside another command: it is refused here.
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::parse_speed, value_name = "X")]
    pub speed: f64,

    /// The first N reads of ws-flaky and alice/flaky answer 503.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub flaky_gets: u32,

    /// Every Nth GET to any API answers 503 (a flaky network).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub every_nth_get_503: Option<u32>,

    /// Also seed N outdated Coder workspaces alice/bulk-0001… and N Molecule workspaces
    /// ws-bulk-0001… (fleet-scale runs and benchmarks).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub bulk_workspaces: usize,

    /// Which CP-admin route layouts to serve: cp-admin (/cp/admin/…, the published contract),
    /// api-v1 (/api/v1/admin/…, what the platform's management server calls), both, or none.
    #[arg(long, value_enum, default_value_t = SimCpAdminLayout::Both, value_name = "LAYOUT")]
    pub cp_admin_layout: SimCpAdminLayout,

    /// Answer POST …/migrate-provider with 503 "migrator not configured".
    #[arg(long)]
    pub migrator_unconfigured: bool,

    /// The Coder version GET /api/v2/buildinfo reports (2.35.0 serves the old behaviour:
    /// on_success is ignored; from 2.36.0 a stop build may carry on_success).
    #[arg(long, default_value = fleet::sim::DEFAULT_CODER_VERSION, value_name = "VERSION")]
    pub coder_version: String,

    /// The Coder session may not update templates: an on_success that pins a template
    /// version answers 403.
    #[arg(long)]
    pub coder_no_template_update: bool,

    /// Cut every WebSocket (build logs, watch-ws) after N messages, without a close frame.
    #[arg(long, value_name = "N")]
    pub ws_drop_after: Option<u32>,

    /// A hostile build log: while a build runs, its live log also sends lines of N bytes,
    /// as fast as the client reads them.
    #[arg(long, value_name = "N")]
    pub log_flood_bytes: Option<usize>,

    /// Listen on an address that is not loopback. The simulator's tokens are public: anyone
    /// who can reach it can use it.
    #[arg(long)]
    pub allow_non_loopback: bool,
}

/// `2.35.0` → `v2.35.0`: the form Coder reports (anything else is served as given).
fn coder_version_text(given: &str) -> String {
    let given = given.trim();
    if given.starts_with(|c: char| c.is_ascii_digit()) {
        format!("v{given}")
    } else {
        given.to_string()
    }
}

/// The one `fleet context add sim …` that saves the simulator as a context: its URLs, and the
/// variables its tokens are exported in (a context never holds a token).
fn context_add_command(sim: &fleet::sim::RunningSim) -> String {
    format!(
        "fleet context add sim --coder-url {} --coder-session-token-env CODER_SESSION_TOKEN \
         --molecule-cp-url {} --cp-admin-token-env CP_ADMIN_API_TOKEN --molecule-api-url {} \
         --molecule-org-api-key-env MOLECULE_ORG_API_KEY",
        crate::cli::shell_word(&sim.coder_url()),
        crate::cli::shell_word(&sim.cp_url()),
        crate::cli::shell_word(&sim.tenant_url()),
    )
}

/// Serves until Ctrl-C; returns the exit code.
pub async fn run(args: SimArgs, global: &GlobalOpts) -> fleet::Result<i32> {
    if !args.listen.ip().is_loopback() {
        if !args.allow_non_loopback {
            return Err(Error::Refused(format!(
                "{} is not a loopback address: the simulator accepts well-known tokens, so \
                 anyone who can reach it could use it. Listen on 127.0.0.1, or pass \
                 --allow-non-loopback if you really mean it",
                args.listen
            )));
        }
        out::err(format!(
            "warning: the simulator listens on {} with public tokens: anyone who can reach it can use it",
            args.listen
        ));
    }
    let sim = Simulator::start(SimOptions {
        listen: args.listen,
        speed: args.speed,
        faults: SimFaults {
            flaky_gets: args.flaky_gets,
            every_nth_get_503: args.every_nth_get_503,
            migrator_unconfigured: args.migrator_unconfigured,
        },
        bulk_workspaces: args.bulk_workspaces,
        coder_version: coder_version_text(&args.coder_version),
        coder_can_pin_versions: !args.coder_no_template_update,
        ws_drop_after: args.ws_drop_after,
        log_flood_bytes: args.log_flood_bytes,
        cp_admin_layout: args.cp_admin_layout.into(),
    })
    .await?;
    let vars = sim.env_vars();
    let layout = fleet::sim::CpAdminLayout::from(args.cp_admin_layout);
    if global.output == OutputFormat::Json {
        let env: serde_json::Map<String, serde_json::Value> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().into()))
            .collect();
        out::json(&serde_json::json!({
            "context_add": context_add_command(&sim),
            "listening": sim.base_url(),
            "speed": sim.speed(),
            "cp_url": sim.cp_url(),
            "cp_admin_prefixes": layout.prefixes(),
            "tenant_url": sim.tenant_url(),
            "coder_url": sim.coder_url(),
            "env": env,
        }));
    } else {
        out::line(format!(
            "fleet simulator listening on {} (speed x{}); Ctrl-C stops it.",
            sim.base_url(),
            sim.speed()
        ));
        if layout.prefixes().is_empty() {
            out::line("  Molecule CP admin  (no CP-admin routes: every one answers 404)");
        }
        for prefix in layout.prefixes() {
            out::line(format!(
                "  Molecule CP admin  {}{prefix}/workspaces/{{id}}/migrate-provider",
                sim.cp_url()
            ));
        }
        out::line(format!(
            "  Molecule tenant    {}/workspaces/{{id}}",
            sim.tenant_url()
        ));
        out::line(format!("  Coder              {}/api/v2", sim.coder_url()));
        out::line("");
        out::line("Point fleet at it (these are the simulator's own test tokens):");
        let exports: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out::line(format!("export {}", exports.join(" ")));
        out::line("");
        out::line("Or save it as a context (the tokens stay in the variables above):");
        out::line(context_add_command(&sim));
        out::line("");
        let migrate = CommandLine::new(&["molecule", "migrate-provider"])
            .option("--to", "hetzner")
            .flag("--confirm")
            .flag("--wait")
            .name("ws-aws-demo", NameKind::MoleculeWorkspace)
            .build();
        let update = CommandLine::new(&["coder", "update"])
            .name("alice/dev", NameKind::CoderWorkspace)
            .build();
        out::line(format!("Then try: {}", migrate.command.unwrap_or_default()));
        out::line(format!(
            "          {}   (see `fleet sim --help` for the seed)",
            update.command.unwrap_or_default()
        ));
    }
    if tokio::signal::ctrl_c().await.is_err() {
        out::err("warning: cannot listen for Ctrl-C; stop the simulator by ending the process");
        std::future::pending::<()>().await;
    }
    out::err("stopping the simulator");
    sim.shutdown().await;
    Ok(0)
}
