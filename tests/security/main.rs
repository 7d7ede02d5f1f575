//! Hostile servers and inputs: redirects, huge bodies, hostile text, secrets never printed,
//! fleet-mcp's HTTP transport.
//!
//! One test binary (`cargo test --test security`); shared fixtures are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod input_dot_segments;
mod reliability_input;
mod secrets_cross_plane;
mod security_http;
mod security_mcp_http;
mod security_text;
mod tls;
