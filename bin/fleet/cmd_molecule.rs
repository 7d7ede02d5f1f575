//! `fleet molecule …`.

use clap::Subcommand;

use crate::cli::GlobalOpts;

/// `fleet molecule` subcommands.
#[derive(Debug, Subcommand)]
pub enum MoleculeCmd {}

/// Runs a `fleet molecule` subcommand; returns the exit code.
pub async fn run(cmd: MoleculeCmd, _global: &GlobalOpts) -> fleet::Result<i32> {
    match cmd {}
}
