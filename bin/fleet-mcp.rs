//! `fleet-mcp`: the MCP server of fleet, for AI agents (stdio).
#![forbid(unsafe_code)]

#[path = "fleet_mcp/coder_tools.rs"]
mod coder_tools;
#[path = "fleet_mcp/http.rs"]
mod http;
#[path = "fleet_mcp/molecule_tools.rs"]
mod molecule_tools;
#[path = "fleet_mcp/operation_tools.rs"]
mod operation_tools;
#[path = "fleet_mcp/server.rs"]
mod server;

use clap::Parser;
use fleet::{CoderConfig, MoleculeConfig};
use rmcp::ServiceExt;

/// The MCP server of fleet: Molecule provider migrations and Coder workspace updates as tools
/// for AI agents. Speaks MCP over stdio. Configured from the environment (MOLECULE_CP_URL,
/// CP_ADMIN_API_TOKEN, MOLECULE_API_URL, MOLECULE_ORG_API_KEY, CODER_URL, CODER_SESSION_TOKEN);
/// a control plane left unconfigured keeps its tools listed, and they answer with an error
/// naming the variables to set.
///
/// With --http ADDR it serves the streamable HTTP transport at http://ADDR/mcp instead, plus
/// GET /health. A bearer token (--http-token-file, or FLEET_MCP_HTTP_TOKEN) is required unless
/// ADDR is loopback; when set, every request but /health must carry it.
#[derive(Debug, Parser)]
#[command(name = "fleet-mcp", version, max_term_width = 100)]
struct Args {
    /// List and allow only read-only tools.
    #[arg(long)]
    read_only: bool,

    /// Allow http:// to a host that is not loopback (tokens would cross the network in clear).
    #[arg(long)]
    insecure_http: bool,

    /// Serve MCP over streamable HTTP at this address (e.g. 127.0.0.1:8080) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,

    /// File holding the bearer token HTTP clients must send (required unless ADDR is loopback).
    #[arg(long, value_name = "PATH", requires = "http")]
    http_token_file: Option<std::path::PathBuf>,

    /// A host name HTTP clients reach the server by (repeatable; checked against the Host header).
    #[arg(long = "allowed-host", value_name = "HOST", requires = "http")]
    allowed_hosts: Vec<String>,

    /// Serve against the built-in simulator (started in-process on a free loopback port) instead
    /// of real control planes: no credentials needed, nothing real is touched.
    #[arg(long)]
    sim: bool,

    /// With --sim: how much faster than real time the simulator runs (60: a migration takes ~16 s).
    #[arg(long, default_value_t = 60.0, value_name = "X", requires = "sim")]
    sim_speed: f64,

    /// On exit (stdin closed, SIGTERM, Ctrl-C) with operations in flight: how long to wait for
    /// them to finish gracefully (every stop→start already begun is completed) before leaving
    /// the rest as it is and logging what was left.
    #[arg(long, value_name = "DURATION", default_value = "10m", env = "FLEET_MCP_SHUTDOWN_GRACE", value_parser = parse_grace)]
    shutdown_grace: std::time::Duration,

    /// Log level for diagnostics on stderr (stdout carries the protocol).
    #[arg(long, default_value = "warn", env = "FLEET_LOG_LEVEL")]
    log_level: String,
}

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
    let served = http::serve(
        server.clone(),
        addr,
        token,
        args.allowed_hosts.clone(),
        shutdown,
    )
    .await;
    finish_operations(&server, args.shutdown_grace).await;
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fleet-mcp: error: cannot serve HTTP on {addr}: {e}");
            1
        }
    }
}

fn main() {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "warn,fleet={}",
            args.log_level
        )))
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the async runtime starts");
    let code = runtime.block_on(async move {
        let mut molecule = MoleculeConfig::from_env();
        molecule.http.insecure_http = args.insecure_http;
        let mut coder = CoderConfig::from_env();
        coder.http.insecure_http = args.insecure_http;
        // --sim: the simulator lives as long as the server does.
        let mut _sim = None;
        let mut poll = None;
        if args.sim {
            if !(args.sim_speed.is_finite() && args.sim_speed > 0.0) {
                eprintln!("fleet-mcp: error: --sim-speed must be a positive number");
                return 2;
            }
            match fleet::sim::Simulator::start(fleet::sim::SimOptions {
                speed: args.sim_speed,
                ..fleet::sim::SimOptions::default()
            })
            .await
            {
                Ok(sim) => {
                    molecule = sim.molecule_config();
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
        let server =
            server::FleetServer::new(&molecule, &coder, args.read_only).with_poll_override(poll);
        if let Some(addr) = args.http {
            return serve_http(server, addr, &args).await;
        }
        let grace = args.shutdown_grace;
        match server.clone().serve(rmcp::transport::stdio()).await {
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
