//! The built `fleet-mcp` driven by rmcp's own client over stdio (a child process).

use fleet::sim::RunningSim;
use rmcp::{
    ClientHandler, RoleClient, ServiceExt, service::RunningService, transport::TokioChildProcess,
};

use super::cli::POLL_INTERVAL_MS;

/// `fleet-mcp` against `sim`: the environment cleared (no user configuration), then the
/// simulator's variables and `FLEET_POLL_INTERVAL_MS`.
pub fn mcp_command_on(sim: &RunningSim) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleet-mcp"));
    cmd.env_clear()
        .envs(sim.env_vars())
        .env("FLEET_POLL_INTERVAL_MS", POLL_INTERVAL_MS);
    cmd
}

/// `handler` connected to the `fleet-mcp` that `cmd` starts, once the MCP handshake is done.
pub async fn serve<H: ClientHandler>(
    handler: H,
    cmd: tokio::process::Command,
) -> RunningService<RoleClient, H> {
    handler
        .serve(TokioChildProcess::new(cmd).expect("fleet-mcp starts"))
        .await
        .expect("MCP handshake")
}

/// The plain rmcp client connected to `fleet-mcp` against `sim`.
pub async fn mcp_on(sim: &RunningSim) -> RunningService<RoleClient, ()> {
    serve((), mcp_command_on(sim)).await
}
