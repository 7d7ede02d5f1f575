//! `fleet-mcp`: the MCP server of fleet, for AI agents (stdio).
#![forbid(unsafe_code)]

#[path = "fleet_mcp/coder_tools.rs"]
mod coder_tools;
#[path = "fleet_mcp/molecule_tools.rs"]
mod molecule_tools;
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
#[derive(Debug, Parser)]
#[command(name = "fleet-mcp", version, max_term_width = 100)]
struct Args {
    /// List and allow only read-only tools.
    #[arg(long)]
    read_only: bool,

    /// Allow http:// to a host that is not loopback (tokens would cross the network in clear).
    #[arg(long)]
    insecure_http: bool,

    /// Log level for diagnostics on stderr (stdout carries the protocol).
    #[arg(long, default_value = "warn", env = "FLEET_LOG_LEVEL")]
    log_level: String,
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
        let server = server::FleetServer::new(&molecule, &coder, args.read_only);
        match server.serve(rmcp::transport::stdio()).await {
            Ok(running) => match running.waiting().await {
                Ok(_) => 0,
                Err(e) => {
                    tracing::error!("the MCP session ended with an error: {e}");
                    1
                }
            },
            Err(e) => {
                tracing::error!("cannot start the MCP session: {e}");
                1
            }
        }
    });
    runtime.shutdown_background();
    std::process::exit(code);
}
