//! Helpers shared by the reliability tests: running the built `fleet` with a list of variables,
//! checking stderr for a single reason, counting requests.
#![allow(dead_code)]

use std::{io::Write, process::Command};

use super::cli::fleet;

/// Distinct markers used as tokens: none may ever be printed.
pub const CP_MARKER: &str = "CPMARKER-7f3a9c1e-admin";
pub const ORG_MARKER: &str = "ORGMARKER-91bc55d2-tenant";
pub const CODER_MARKER: &str = "CODERMARKER-4d2e8b07-session";
pub const MARKERS: [&str; 3] = [CP_MARKER, ORG_MARKER, CODER_MARKER];

pub use super::cli::Run;

/// `fleet` with a clean environment (see [`super::cli::fleet`]) and `env` set; stdout and
/// stderr piped.
pub fn fleet_cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    fleet(args).envs(env.iter().copied()).piped().command()
}

/// Runs `fleet` to its end.
pub fn run_fleet(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = fleet_cmd(args, env).output().expect("fleet runs");
    Run::from_output(&out)
}

/// Asserts the run failed the way bad input must: exit 2, exactly one `error:` line on
/// stderr, no panic, no backtrace.
pub fn assert_one_reason(case: &str, run: &Run) {
    assert_eq!(run.code, 2, "case {case}: {}", run.show());
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "case {case}: exactly one `error:` line expected: {}",
        run.show()
    );
    assert!(
        errors[0].trim().len() > "error: ".len() + 10,
        "case {case}: the reason says something: {}",
        run.show()
    );
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(
            !run.stderr.contains(bad),
            "case {case}: {bad} on stderr: {}",
            run.show()
        );
    }
}

/// A file holding `content` (kept alive by the returned handle).
pub fn token_file(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(content.as_bytes()).expect("write token file");
    f
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}
