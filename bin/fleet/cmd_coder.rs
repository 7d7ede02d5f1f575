//! `fleet coder …`.

use clap::Subcommand;

use crate::cli::GlobalOpts;

/// `fleet coder` subcommands.
#[derive(Debug, Subcommand)]
pub enum CoderCmd {}

/// Runs a `fleet coder` subcommand; returns the exit code.
pub async fn run(cmd: CoderCmd, _global: &GlobalOpts) -> fleet::Result<i32> {
    match cmd {}
}
