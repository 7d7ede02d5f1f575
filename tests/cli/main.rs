//! The built `fleet` binary against httpmock or the simulator: output, exit codes, requests
//! actually sent, interrupts, rollouts.
//!
//! One test binary (`cargo test --test cli`); shared fixtures are in `tests/support/`.

#[path = "../support/mod.rs"]
mod support;

mod busy_cli;
mod coder_cli;
mod coder_server_side_cli;
mod contexts_cli;
mod e2e_sim;
mod help_cli;
mod interrupts_cli;
mod molecule_batch;
mod molecule_cli;
mod molecule_layouts;
mod molecule_unclear_post;
mod poll_cross_plane;
mod preflight_cli;
mod promote_cli;
mod reliability_cli;
mod remedies_faces;
mod rollout_cli;
mod rollout_molecule;
mod scale_cli;
mod sim_cli;
