//! The built `fleet-mcp` binary driven by a real MCP client (rmcp over stdio and HTTP): tools,
//! long operations, tasks, answers at fleet scale.
//!
//! One test binary (`cargo test --test mcp`); shared fixtures are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod busy_mcp;
mod coder_mcp;
mod contexts_mcp;
mod mcp_tasks;
mod molecule_mcp;
mod reliability_mcp;
mod rollout_mcp;
mod scale_mcp;
