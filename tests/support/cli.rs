//! Running the built `fleet`: one typed [`Run`], and one way to run it against the in-process
//! simulator with a clean environment.

use std::time::Duration;

use fleet::sim::RunningSim;
use serde_json::Value;

use super::reliability::MARKERS;

/// The poll interval (`FLEET_POLL_INTERVAL_MS`) every run against the simulator gets, so that
/// a wait on a fast simulator ends in milliseconds.
pub const POLL_INTERVAL_MS: &str = "20";

/// What a run of `fleet` left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code and both streams of a finished process.
    pub fn from_output(out: &std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The whole output, for messages.
    pub fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// stdout parsed as JSON; panics with both streams when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }

    /// The first token marker found anywhere in the output, if any.
    pub fn leaks(&self) -> Option<&'static str> {
        MARKERS
            .into_iter()
            .find(|m| self.stdout.contains(m) || self.stderr.contains(m))
    }
}

/// Runs `fleet args` against `sim`: the environment cleared (so no user configuration, no
/// HOME), then the simulator's variables and [`POLL_INTERVAL_MS`]; stdin closed. Panics when
/// it has not ended within `within_secs` seconds.
pub async fn fleet_on(sim: &RunningSim, args: &[&str], within_secs: u64) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleet"));
    cmd.args(args)
        .env_clear()
        .envs(sim.env_vars())
        .env("FLEET_POLL_INTERVAL_MS", POLL_INTERVAL_MS)
        .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(within_secs), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("fleet ends within {within_secs} s"))
        .expect("fleet runs");
    Run::from_output(&out)
}

/// [`fleet_on`] for a synchronous test: the same clean environment, the raw `Output`.
pub fn fleet_output_on(sim: &RunningSim, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fleet"))
        .env_clear()
        .envs(sim.env_vars())
        .env("FLEET_POLL_INTERVAL_MS", POLL_INTERVAL_MS)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("fleet runs")
}
