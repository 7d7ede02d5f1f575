//! `fleet sim`: serve the built-in simulator of both control planes until Ctrl-C.

use std::net::SocketAddr;

use clap::Args;
use fleet::{
    Error,
    sim::{SimFaults, SimOptions, Simulator},
};

use crate::{
    cli::{GlobalOpts, OutputFormat, SimCpAdminLayout},
    command::{CommandLine, NameKind},
    out,
};

/// `fleet sim` arguments.
/// The seeded data and the faults, as a table for `fleet sim --help` (the data itself is
/// `fleet::sim`'s seed: keep the two in step).
const SEED_TABLE: &str = "\
Tokens: CP_ADMIN_API_TOKEN=sim-cp-admin-token  MOLECULE_ORG_API_KEY=sim-org-api-key
        CODER_SESSION_TOKEN=sim-coder-session-token   (anything else gets 401)
URLs:   MOLECULE_CP_URL=http://ADDR  MOLECULE_API_URL=http://ADDR/tenant  CODER_URL=http://ADDR
CP-admin routes under /cp/admin and /api/v1/admin (--cp-admin-layout picks: cp-admin, api-v1,
both, none; a layout not served answers a router's plain-text 404)

Molecule workspaces (id: provider, instance id — behaviour):
  ws-aws-demo          aws      i-0a1b2c3d4e5f60718    migrates normally
  ws-hetzner-demo      hetzner  hz-4217781             migrates normally
  ws-gcp-demo          gcp      gce-7730118842         migrates normally
  ws-migrated          gcp      gce-5519027731         already migrated aws→gcp (completed)
  ws-migrating         aws      i-0feedc0ffee000001    a migration to hetzner is in progress (409)
  ws-fails-migration   aws      i-0badbadbad0000001    ends `failed` in provisioning_target
  ws-rolls-back        hetzner  hz-9000001             ends `rolled_back` after target_healthy
  ws-new-state         gcp      gce-1000000001         passes an unknown state `verifying_target`
  ws-flaky             aws      i-0f1a4e0000000001     its first N reads answer 503 (--flaky-gets)
A migration takes ~16.5 min at speed 1: snapshotting 3m, snapshotted 30s, provisioning_target 7m,
target_healthy 2m, retiring_source 4m → completed (the workspace then runs on the target).

Coder (you are `me` = alice, GET /api/v2/users/me; other owners: bob, carol, and Coder's
`prebuilds` system user). Templates and versions:
  docker-dev   v0-archived (archived) · v1 · v2 · v3 (active) · v4-importing (406: never imported)
  k8s-secure   2024-06 · 2024-09 (active)         require_active_version: older versions get 403
  gpu-ml       v1 · broken-start (active)         a start on broken-start fails (job error + logs)
  web          v1 (active) · v2 · v3-start-error · v4-never-connects · v5-slow-ready ·
               v6-no-script · v7-external         builds always succeed; the agents differ:
               v3 startup script fails (start_error) · v4 never connects (timeout after 120s) ·
               v5 ready after 60s · v6 ready when connected · v7 has_external_agent
  team-dev     v1 · v2 (active)                   workspaces someone is at work in (below)
  shop         v1 (active) · v2 · v3-start-error  for promotions: v2 and v3 are unpublished;
               v2 is good (agents get ready) · v3's startup script fails (start_error)
Templates by name: GET /api/v2/organizations/coder/templates/NAME. PATCH
/api/v2/templates/ID/versions {\"id\"} makes a version active (me is a template admin;
--coder-no-template-update: 403)
Workspaces (owner/name: template version, status):
  alice/dev           docker-dev v2, running   outdated; params region=eu-west cpu=4 dotfiles_uri
  alice/api-server    docker-dev v1, stopped   outdated
  alice/current       docker-dev v3, running   up to date
  alice/secure-shell  k8s-secure 2024-06, running  outdated, template requires the active version
  alice/ml-notebook   gpu-ml v1, running       outdated; updating it fails (broken-start)
  alice/slow-box      docker-dev v2, running   every build takes 10x longer
  alice/flaky         docker-dev v2, running   its first N reads answer 503 (--flaky-gets)
  bob/dev             docker-dev v2, running   outdated
  bob/data-pipeline   docker-dev v3, stopped   up to date
  carol/web-01…08     web v1, running          up to date (a rollout fleet)
  carol/shop-01…04    shop v1, running         up to date (canaries and rollout of a promotion)
Someone at work (team-dev v1, running, outdated; fleet leaves them alone unless told
otherwise; last_used_at follows the activity):
  bob/typing          in use: last_used_at is now until 600 simulated s (10 min), then stops
  bob/pairing         in use all the time (never goes idle)
  bob/ai-task         an AI task working: latest_app_status working \"Refactoring the billing
                      module\", task_id set; last used a day ago
  bob/idle-box        last used 2 days ago: idle, updated
  bob/asleep          dormant (dormant_at set)
  prebuilds/prebuilt-01  a prebuilt workspace (is_prebuild)
  alice/notes         team-dev v2 (up to date), yours, in use all the time (yours: not busy)
  alice/bulk-0001…    docker-dev v2, running   outdated; only with --bulk-workspaces N
                                               (and ws-bulk-0001… on aws for Molecule)
A build takes ~7 s (start) or ~5 s (stop) at speed 1: pending 1s, then starting/stopping with
logs, then running/stopped. Agents then connect and run their startup script: ready 1 s later
(web: 3 s). Parameters: region (immutable), cpu (1-16), dotfiles_uri, disk_gb
(v3: 10-500, increasing only), gpu_type (t4|a100), namespace (immutable).";

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

    /// Every start of these Coder workspaces fails, whatever the version (e.g. carol/web-03:
    /// a good version that still fails somewhere, for --max-failures).
    #[arg(long, value_name = "OWNER/NAME", value_delimiter = ',')]
    pub coder_start_fails: Vec<String>,

    /// The Coder version GET /api/v2/buildinfo reports (2.35.0 serves the old behaviour:
    /// on_success is ignored; from 2.36.0 a stop build may carry on_success).
    #[arg(long, default_value = fleet::sim::DEFAULT_CODER_VERSION, value_name = "VERSION")]
    pub coder_version: String,

    /// The Coder session may not update templates (no template admin): an on_success that
    /// pins a template version, and making a version active, answer 403.
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
            coder_start_fails: args.coder_start_fails.clone(),
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
