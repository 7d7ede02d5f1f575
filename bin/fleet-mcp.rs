//! `fleet-mcp`: the MCP server of fleet, for AI agents (stdio).
#![forbid(unsafe_code)]

#[path = "shared/advice.rs"]
mod advice;
#[path = "fleet_mcp/answers.rs"]
mod answers;
#[path = "fleet_mcp/coder_tools.rs"]
mod coder_tools;
#[path = "shared/config_text.rs"]
#[allow(dead_code)]
mod config_text;
#[path = "fleet_mcp/http.rs"]
mod http;
#[path = "fleet_mcp/molecule_tools.rs"]
mod molecule_tools;
#[path = "fleet_mcp/operation_tools.rs"]
mod operation_tools;
#[path = "fleet_mcp/redact.rs"]
mod redact;
#[path = "shared/safe_text.rs"]
mod safe_text;
#[path = "fleet_mcp/server.rs"]
mod server;
#[path = "fleet_mcp/task_tools.rs"]
mod task_tools;

use clap::Parser;
use fleet::{CoderConfig, MoleculeConfig};
use rmcp::ServiceExt;

/// The MCP server of fleet: Molecule provider migrations and Coder workspace updates as tools
/// for AI agents. Speaks MCP over stdio. Configured like `fleet`: the environment
/// (MOLECULE_CP_URL, CP_ADMIN_API_TOKEN, MOLECULE_API_URL, MOLECULE_ORG_API_KEY, CODER_URL,
/// CODER_SESSION_TOKEN), then a context (--context, FLEET_CONTEXT, the current context of
/// `fleet context`), then what `coder login` stored. It lists the tools of the control planes
/// configured (see --toolsets); with nothing configured it lists them all, and they answer
/// with an error naming the variables to set.
/// `fleet-mcp --check` runs `fleet doctor`'s checks and exits, to try a host configuration
/// from a terminal.
///
/// With --http ADDR it serves the streamable HTTP transport at http://ADDR/mcp instead, plus
/// GET /health. A bearer token (--http-token-file, or FLEET_MCP_HTTP_TOKEN) is required unless
/// ADDR is loopback; when set, every request but /health must carry it. Requests from a browser
/// page (with an Origin header) are refused unless the page's host is an allowed host or its
/// origin is given with --allowed-origin. Connections that do not send their headers in time are
/// closed, and connections and sessions are capped (see the --http-* flags).
#[derive(Debug, Parser)]
#[command(name = "fleet-mcp", version, max_term_width = 100)]
struct Args {
    /// List and allow only read-only tools.
    #[arg(long)]
    read_only: bool,

    /// The toolsets to list, comma-separated: coder, molecule, operations (or all). Default: the
    /// toolsets of the control planes configured, plus operations; all of them under --sim or
    /// when nothing is configured.
    #[arg(long, env = "FLEET_MCP_TOOLSETS", value_name = "LIST", value_delimiter = ',',
          value_parser = parse_toolset)]
    toolsets: Vec<String>,

    /// Allow http:// to a host that is not loopback (tokens would cross the network in clear).
    #[arg(long)]
    insecure_http: bool,

    /// Use this context of fleet's config file (`fleet context list`) [env: FLEET_CONTEXT;
    /// default: the current context]. Tokens stay out of the host's configuration.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,

    /// Check each configured control plane like `fleet doctor` (it answers, the token is
    /// accepted, whose it is), print what works and exit: 0 all work, 1 one does not, 2
    /// nothing is configured.
    #[arg(long, conflicts_with_all = ["http", "sim"])]
    check: bool,

    /// Serve MCP over streamable HTTP at this address (e.g. 127.0.0.1:8080) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,

    /// File holding the bearer token HTTP clients must send (required unless ADDR is loopback).
    #[arg(long, value_name = "PATH", requires = "http")]
    http_token_file: Option<std::path::PathBuf>,

    /// A host name HTTP clients reach the server by (repeatable; checked against the Host header).
    #[arg(long = "allowed-host", value_name = "HOST", requires = "http",
          value_parser = http::parse_allowed_host)]
    allowed_hosts: Vec<String>,

    /// A browser origin allowed to call the server (repeatable; e.g. https://app.example:443).
    /// Pages served by an allowed host (loopback names on a loopback ADDR, --allowed-host) are
    /// allowed already; requests without an Origin header (not from a browser) always are.
    #[arg(long = "allowed-origin", value_name = "ORIGIN", requires = "http",
          value_parser = parse_origin)]
    allowed_origins: Vec<String>,

    /// Open HTTP connections at most. At the cap the oldest connection that is not sending a
    /// response (half-open or idle) is dropped to make room; if all are answering, new ones wait.
    #[arg(long, default_value_t = 256, value_name = "N", requires = "http",
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    http_max_connections: u32,

    /// Open MCP sessions at most; an initialize beyond answers 503 until one closes or expires.
    #[arg(long, default_value_t = 64, value_name = "N", requires = "http",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    http_max_sessions: u32,

    /// Time a client has to send a request's headers (also how long an idle connection is kept).
    #[arg(long, default_value = "5s", value_name = "DURATION", requires = "http",
          value_parser = parse_duration)]
    http_header_timeout: std::time::Duration,

    /// An MCP session without any request for this long is closed (the client initializes anew).
    #[arg(long, default_value = "10m", value_name = "DURATION", requires = "http",
          value_parser = parse_duration)]
    http_session_idle: std::time::Duration,

    /// Serve against the built-in simulator (started in-process on a free loopback port) instead
    /// of real control planes: no credentials needed, nothing real is touched.
    #[arg(long)]
    sim: bool,

    /// With --sim: how much faster than real time the simulator runs (60: a migration takes ~16 s).
    #[arg(long, default_value_t = 60.0, value_name = "X", requires = "sim")]
    sim_speed: f64,

    /// With --sim: which CP-admin route layouts the simulator serves (cp-admin, api-v1, both,
    /// none).
    #[arg(long, default_value = "both", value_name = "LAYOUT", requires = "sim", value_parser = parse_layout)]
    sim_cp_admin_layout: SimLayout,
    /// On exit (stdin closed, SIGTERM, Ctrl-C) with operations in flight: how long to wait for
    /// them to finish gracefully (every stop→start already begun is completed) before leaving
    /// the rest as it is and logging what was left.
    #[arg(long, value_name = "DURATION", default_value = "10m", env = "FLEET_MCP_SHUTDOWN_GRACE", value_parser = parse_grace)]
    shutdown_grace: std::time::Duration,

    /// Builds in flight at once across every operation (a workspace's stop→start holds one
    /// place from its first build to its end); the others wait their turn, shown as queued.
    #[arg(long, default_value_t = fleet::operation::OperationLimits::default().max_in_flight_builds as u64,
          value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_in_flight_builds: u64,

    /// Operations that have not finished, at most; a long tool called beyond answers a tool
    /// error and starts nothing.
    #[arg(long, default_value_t = fleet::operation::OperationLimits::default().max_operations as u64,
          value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_operations: u64,

    /// Log level of fleet's diagnostics on stderr (stdout carries the protocol): error, warn,
    /// info, debug, trace or off. Other crates log warnings and errors.
    #[arg(
        long,
        default_value = "warn",
        env = "FLEET_LOG_LEVEL",
        value_name = "LEVEL"
    )]
    log_level: tracing::level_filters::LevelFilter,
}

/// Parses a duration like `5s`, `500ms` or `10m`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a duration must be longer than zero".into()),
        Err(e) => Err(format!("{e}; write a duration like 5s, 500ms or 10m")),
    }
}

/// Checks a toolset name given with --toolsets.
fn parse_toolset(s: &str) -> Result<String, String> {
    let name = s.trim().to_ascii_lowercase();
    if name == "all" || server::Toolsets::NAMES.contains(&name.as_str()) {
        return Ok(name);
    }
    Err(format!(
        "unknown toolset {s:?}: the toolsets are {} (or all), e.g. --toolsets coder,operations",
        server::Toolsets::NAMES.join(", ")
    ))
}

/// The toolsets listed: those asked for; else those of the control planes configured (any of
/// their variables set) plus operations; all of them under --sim or when nothing is configured,
/// so that the tools' errors still teach the setup.
fn toolsets(args: &Args, molecule: &MoleculeConfig, coder: &CoderConfig) -> server::Toolsets {
    if !args.toolsets.is_empty() {
        return server::Toolsets::from_names(args.toolsets.iter().map(String::as_str));
    }
    let molecule_set = MoleculeConfig::cp_url_from_env().is_some()
        || molecule.cp_admin_token.is_some()
        || molecule.api_url.is_some()
        || molecule.org_api_key.is_some();
    let coder_set = coder.url.is_some() || coder.session_token.is_some();
    if args.sim || !(molecule_set || coder_set) {
        return server::Toolsets::ALL;
    }
    server::Toolsets {
        coder: coder_set,
        molecule: molecule_set,
        operations: true,
    }
}

/// Checks an origin given with --allowed-origin: `scheme://host[:port]`, nothing more.
fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim();
    let uri: ::http::Uri = s.parse().map_err(|_| format!("{s:?} is not an origin"))?;
    let plain = uri.scheme().is_some()
        && uri.authority().is_some()
        && matches!(
            uri.path_and_query().map(|p| p.as_str()),
            None | Some("" | "/")
        );
    if !plain || s.ends_with('/') {
        return Err(format!(
            "{s:?} is not an origin: write scheme://host[:port], e.g. https://app.example:443"
        ));
    }
    Ok(s.to_string())
}

#[cfg(feature = "sim")]
type SimLayout = fleet::sim::CpAdminLayout;
#[cfg(not(feature = "sim"))]
type SimLayout = String;

#[cfg(feature = "sim")]
fn parse_layout(s: &str) -> Result<SimLayout, String> {
    fleet::sim::CpAdminLayout::parse(s).map_err(|e| e.to_string())
}

#[cfg(not(feature = "sim"))]
fn parse_layout(s: &str) -> Result<SimLayout, String> {
    Ok(s.to_string())
}

/// Why --sim is refused by a build without the simulator, and how to get one.
#[cfg(not(feature = "sim"))]
const NO_SIM: &str = "this fleet-mcp was built without the simulator (the cargo feature `sim`, \
on by default): rebuild it with default features (`cargo build`, `cargo install fleet`) or with \
`--features sim`, or point it at real control planes";

fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}; write a duration like 90s, 10m or 0s"))
}

/// Resolves on SIGTERM (and never where there is no such signal).
async fn sigterm() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

/// On the way out: every operation still running is cancelled gracefully (each stop→start
/// already begun is completed), waited for at most `grace`, and what did not end is left as
/// it is and logged.
async fn finish_operations(server: &server::FleetServer, grace: std::time::Duration) {
    let running = server.registry().in_flight();
    if running.is_empty() {
        return;
    }
    tracing::warn!(
        "exiting with {} operation(s) in flight: finishing every stop→start already begun (at most {}) and starting nothing new: {}",
        running.len(),
        humantime::format_duration(grace),
        running
            .iter()
            .map(|op| format!("{} ({} of {})", op.id(), op.kind(), op.targets().join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let left = server.registry().drain(grace).await;
    for op in &running {
        let s = op.snapshot();
        if !left.iter().any(|l| l.id == s.id) {
            tracing::warn!(operation = %s.id, state = %s.state, "finished before exiting: {}", s.latest_step.unwrap_or_default());
        }
    }
    for s in left {
        let workspaces = s
            .workspaces
            .iter()
            .map(|w| {
                format!(
                    "{} {}{}",
                    w.target,
                    w.phase,
                    w.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        tracing::error!(operation = %s.id, state = %s.state, "left as it was after {}: {workspaces}", humantime::format_duration(grace));
    }
}

/// The HTTP token: from --http-token-file, else FLEET_MCP_HTTP_TOKEN.
fn http_token(args: &Args) -> Result<Option<String>, String> {
    if let Some(path) = &args.http_token_file {
        return fleet::Secret::from_file(path)
            .map(|s| Some(s.expose().to_string()))
            .map_err(|e| e.to_string());
    }
    Ok(std::env::var("FLEET_MCP_HTTP_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

async fn serve_http(server: server::FleetServer, addr: std::net::SocketAddr, args: &Args) -> i32 {
    let token = match http_token(args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fleet-mcp: error: {e}");
            return 2;
        }
    };
    if let Some(token) = &token {
        safe_text::never_print(&fleet::Secret::new(token.as_str()));
    }
    if token.is_none() && !addr.ip().is_loopback() {
        eprintln!(
            "fleet-mcp: error: --http {addr} is not a loopback address: set a bearer token with --http-token-file \
             or FLEET_MCP_HTTP_TOKEN, so that only your clients can call the tools"
        );
        return 2;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm() => {}
        }
        on_signal.cancel();
    });
    let access = http::Access {
        token,
        allowed_hosts: args.allowed_hosts.clone(),
        allowed_origins: args.allowed_origins.clone(),
    };
    let limits = http::Limits {
        max_connections: args.http_max_connections as usize,
        max_sessions: args.http_max_sessions as usize,
        header_timeout: args.http_header_timeout,
        session_idle: args.http_session_idle,
    };
    let served = http::serve(server.clone(), addr, access, limits, shutdown).await;
    finish_operations(&server, args.shutdown_grace).await;
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fleet-mcp: error: cannot serve HTTP on {addr}: {e}");
            1
        }
    }
}

/// The configurations from the environment, the context in use and what `coder login` stored
/// (an unknown context or a malformed config file stops here, before any request); with
/// --check, the doctor's checks instead, and their exit code.
async fn configure(
    args: &Args,
    http: fleet::HttpOptions,
) -> Result<(MoleculeConfig, CoderConfig), i32> {
    // The environment, the context in use, what `coder login` stored: an unknown context
    // or a malformed config file stops here, before any request.
    let settings = fleet::context::Resolver::new(fleet::context::Given {
        context: args.context.clone(),
        ..Default::default()
    })
    // --check shows a token it cannot get as a failed check, like `fleet doctor`.
    .map(|r| if args.check { r.lenient() } else { r })
    .and_then(|r| Ok((r.clone(), r.coder()?, r.molecule()?)));
    let (resolver, coder_settings, molecule_settings) = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleet-mcp: error: {}", safe_text::safe(&e.to_string()));
            return Err(2);
        }
    };
    config_text::never_print_tokens(&coder_settings, &molecule_settings);
    for w in coder_settings
        .warnings
        .iter()
        .chain(&molecule_settings.warnings)
    {
        eprintln!("fleet-mcp: warning: {}", config_text::warning_text(w));
    }
    if args.check {
        let options = fleet::doctor::DoctorOptions {
            http: http.clone(),
            ..Default::default()
        };
        let findings = config_text::examine(coder_settings, molecule_settings, &options).await;
        let mut lines = config_text::describe(
            &resolver,
            &findings.coder_settings,
            &findings.molecule_settings,
        );
        lines.push(String::new());
        lines.extend(config_text::report_lines(&findings));
        // A closed pipe (`fleet-mcp --check | head -1`) ends the output, never the process.
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            use std::io::Write;
            if writeln!(stdout, "{}", safe_text::safe(&line)).is_err() {
                break;
            }
        }
        return Err(findings.exit_code());
    }
    for line in config_text::describe(&resolver, &coder_settings, &molecule_settings) {
        tracing::info!("{line}");
    }
    Ok((
        molecule_settings.config(http.clone()),
        coder_settings.config(http),
    ))
}

/// What `fleet-mcp --help` ends with: the tools of each toolset and one host configuration.
fn after_help() -> String {
    let mut text = String::from("Tools (by toolset):\n");
    for (toolset, names) in server::FleetServer::tool_names() {
        let mut line = format!("  {toolset:<11}");
        for (i, name) in names.iter().enumerate() {
            let piece = if i + 1 < names.len() {
                format!("{name}, ")
            } else {
                name.clone()
            };
            if line.len() + piece.len() > 96 {
                text.push_str(line.trim_end());
                text.push('\n');
                line = " ".repeat(13);
            }
            line.push_str(&piece);
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(
        "\nA host configuration (Claude Desktop's claude_desktop_config.json, Cursor's \
         .cursor/mcp.json;\nthe context names where the tokens come from, none is in the file):\n  \
         {\"mcpServers\": {\"fleet\": {\"command\": \"fleet-mcp\", \"args\": [\"--context\", \"prod\"]}}}\n\n\
         Try it from a terminal first: fleet-mcp --context prod --check",
    );
    text
}

fn main() {
    use clap::{CommandFactory, FromArgMatches};
    // The help's tool list is built only for --help: it generates every tool's schema.
    let matches = match Args::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            Args::command().after_help(after_help()).get_matches()
        }
        Err(e) => e.exit(),
    };
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    {
        use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};
        // Warnings from every crate, fleet's own at --log-level. A fixed filter, not an
        // EnvFilter: no directive parsing (and its regex engine) before the first answer.
        let filter = Targets::new()
            .with_default(tracing::level_filters::LevelFilter::WARN)
            .with_target("fleet", args.log_level)
            .with_target("fleet_mcp", args.log_level)
            // Its error line says again what the tool error says.
            .with_target(
                "rustls_platform_verifier",
                tracing::level_filters::LevelFilter::OFF,
            );
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    // Log lines are redacted and their control characters escaped, like every
                    // message.
                    .with_writer(safe_text::log_writer)
                    .with_ansi(false),
            )
            .with(filter)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the async runtime starts");
    let code = runtime.block_on(async move {
        let http = fleet::HttpOptions {
            insecure_http: args.insecure_http,
            ..fleet::HttpOptions::default()
        };
        // --sim serves the simulator whatever the user's own configuration says.
        #[cfg_attr(not(feature = "sim"), allow(unused_mut))]
        let (mut molecule, mut coder) = if args.sim {
            (
                MoleculeConfig {
                    http: http.clone(),
                    ..MoleculeConfig::from_env()
                },
                CoderConfig {
                    http: http.clone(),
                    ..CoderConfig::from_env()
                },
            )
        } else {
            match configure(&args, http.clone()).await {
                Ok(configs) => configs,
                Err(code) => return code,
            }
        };
        let toolsets = toolsets(&args, &molecule, &coder);
        // --sim: the simulator lives as long as the server does.
        #[cfg(feature = "sim")]
        let mut _sim = None;
        #[cfg_attr(not(feature = "sim"), allow(unused_mut))]
        let mut poll = None;
        #[cfg(not(feature = "sim"))]
        if args.sim {
            let _ = (&args.sim_speed, &args.sim_cp_admin_layout);
            eprintln!("fleet-mcp: error: {NO_SIM}");
            return 2;
        }
        #[cfg(feature = "sim")]
        if args.sim {
            if !(args.sim_speed.is_finite() && args.sim_speed > 0.0) {
                eprintln!("fleet-mcp: error: --sim-speed must be a positive number");
                return 2;
            }
            match fleet::sim::Simulator::start(fleet::sim::SimOptions {
                speed: args.sim_speed,
                cp_admin_layout: args.sim_cp_admin_layout,
                ..fleet::sim::SimOptions::default()
            })
            .await
            {
                Ok(sim) => {
                    molecule = MoleculeConfig {
                        // MOLECULE_CP_ADMIN_PREFIX still picks a layout against the simulator.
                        cp_admin_prefix: molecule.cp_admin_prefix.clone(),
                        ..sim.molecule_config()
                    };
                    coder = sim.coder_config();
                    poll = Some(sim.poll_interval());
                    tracing::info!(addr = %sim.addr(), "simulator started");
                    _sim = Some(sim);
                }
                Err(e) => {
                    eprintln!("fleet-mcp: error: cannot start the simulator: {e}");
                    return 1;
                }
            }
        }
        let limits = fleet::operation::OperationLimits {
            max_in_flight_builds: args.max_in_flight_builds as usize,
            max_operations: args.max_operations as usize,
            ..fleet::operation::OperationLimits::default()
        };
        let server = server::FleetServer::new(&molecule, &coder, args.read_only, toolsets)
            .with_poll_override(poll)
            .with_limits(&limits);
        if let Some(addr) = args.http {
            return serve_http(server, addr, &args).await;
        }
        // Pipes (how hosts start a stdio server) are driven by the runtime's reactor: no
        // hand-off to a blocking thread per message, no blocking threads at all for the
        // protocol (anything else falls back to tokio's blocking stdin/stdout).
        let stdio = rmcp::transport::IntoTransport::<rmcp::RoleServer, _, _>::into_transport(
            rmcp::transport::stdio_pipes(),
        );
        let grace = args.shutdown_grace;
        match server.clone().serve(redact::Redacting(stdio)).await {
            Ok(running) => {
                let session = running.cancellation_token();
                let code = tokio::select! {
                    ended = running.waiting() => match ended {
                        Ok(_) => 0,
                        Err(e) => {
                            tracing::error!("the MCP session ended with an error: {e}");
                            1
                        }
                    },
                    _ = sigterm() => {
                        session.cancel();
                        0
                    }
                };
                finish_operations(&server, grace).await;
                code
            }
            Err(e) => {
                tracing::error!("cannot start the MCP session: {e}");
                1
            }
        }
    });
    runtime.shutdown_background();
    std::process::exit(code);
}
