//! The Coder contract: `openapi/coder.yaml` against Coder's own API description, and the
//! SDK against Stoplight Prism (run by tests/contract/prism-coder.sh).
//!
//! One test binary (`cargo test --test contract`); shared fixtures are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod contract_prism;
mod contract_sim;
mod contract_spec;
