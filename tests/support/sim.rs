//! The in-process simulator, started once per test, and SDK clients pointed at it.
//!
//! `sim(speed)` is the plain simulator (default Coder version and options); `sim_with` takes any
//! [`SimOptions`] (a Coder version, bulk workspaces, a CP admin layout, faults). `speed` is the
//! simulator's time factor: 2,000 turns a build of seconds into milliseconds.

use fleet::coder::CoderClient;
use fleet::molecule::MoleculeClient;
use fleet::sim::{RunningSim, SimOptions, Simulator};

/// The simulator with default options at `speed`.
pub async fn sim(speed: f64) -> RunningSim {
    sim_with(SimOptions {
        speed,
        ..SimOptions::default()
    })
    .await
}

/// The simulator with `options`.
pub async fn sim_with(options: SimOptions) -> RunningSim {
    Simulator::start(options)
        .await
        .expect("the simulator starts")
}

/// A Coder client for `sim`, with the simulator's URL and token.
pub fn coder_client(sim: &RunningSim) -> CoderClient {
    CoderClient::new(&sim.coder_config()).expect("a Coder client for the simulator")
}

/// A Molecule client for `sim`, with the simulator's CP URL, admin token and tenant.
pub fn molecule_client(sim: &RunningSim) -> MoleculeClient {
    MoleculeClient::new(&sim.molecule_config()).expect("a Molecule client for the simulator")
}

/// The requests `sim` answered that change something (anything but GET), in order, as
/// `METHOD /path`: what a test of a dry run, a refusal or a read-only command expects empty.
pub fn changes(sim: &RunningSim) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}
