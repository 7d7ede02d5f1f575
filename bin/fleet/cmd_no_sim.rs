//! `fleet sim` and `--sim` in a build without the simulator (the cargo feature `sim` is off):
//! they say how to get it.

use clap::Args;
use fleet::Error;

use crate::cli::GlobalOpts;

/// `fleet sim` arguments (none in this build: the simulator is not in it).
#[derive(Debug, Args)]
#[command(
    about = "Serve a simulator of both control planes (not in this build: rebuild with the `sim` feature)"
)]
pub struct SimArgs {
    /// Whatever was given; this build has no simulator to give it to.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

/// The error for `fleet sim` and `--sim` in this build: what is missing and how to get it.
pub fn no_sim() -> Error {
    Error::InvalidInput(
        "this fleet was built without the simulator (the cargo feature `sim`, on by default): \
         rebuild it with default features (`cargo build`, `cargo install fleet`) or with \
         `--features sim`, or point it at real control planes"
            .into(),
    )
}

/// `fleet sim` in this build.
pub async fn run(_args: SimArgs, _global: &GlobalOpts) -> fleet::Result<i32> {
    Err(no_sim())
}
