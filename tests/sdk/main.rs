//! The SDK (the `fleet` crate) against httpmock and the in-process simulator: every endpoint, error
//! status, polling and push sequence, pre-flight and fault.
//!
//! One test binary (`cargo test --test sdk`); shared fixtures are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod busy_sdk;
mod coder_poll;
mod coder_push;
mod coder_server_side;
mod coder_server_side_run;
mod coder_update;
mod foundation_http;
mod molecule_sdk;
mod preflight_coder;
mod preflight_molecule;
mod reliability_faults;
mod sim_coder;
mod sim_molecule;
mod sim_promote;
