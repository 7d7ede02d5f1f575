//! Running the built `fleet`: one way to start it with a clean environment ([`fleet`], a small
//! builder for what a test adds), and one typed [`Run`] of what it left behind.

use std::{ffi::OsStr, process::Stdio, time::Duration};

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

/// The built `fleet` about to run with `args` and a clean environment: every variable cleared
/// (so no user configuration, no HOME, no proxy) but PATH, then [`POLL_INTERVAL_MS`]; stdin
/// closed. Add what the test points it at ([`Fleet::sim`], [`Fleet::coder`],
/// [`Fleet::molecule`], [`Fleet::env`]), then run it ([`Fleet::output`], [`Fleet::run`],
/// [`Fleet::run_within`]) or take the command ([`Fleet::command`], [`Fleet::tokio`]) to drive it.
pub fn fleet(args: &[&str]) -> Fleet {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fleet"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLEET_POLL_INTERVAL_MS", POLL_INTERVAL_MS)
        .stdin(Stdio::null());
    Fleet { cmd }
}

/// A run of `fleet` being set up: see [`fleet`].
#[derive(Debug)]
pub struct Fleet {
    cmd: std::process::Command,
}

impl Fleet {
    /// More arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Fleet {
        self.cmd.args(args);
        self
    }

    /// One more variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Fleet {
        self.cmd.env(key, value);
        self
    }

    /// More variables.
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Fleet {
        self.cmd.envs(vars);
        self
    }

    /// The variables of a list such as `[("CODER_URL", url)]`.
    pub fn vars(self, vars: &[(&str, String)]) -> Fleet {
        self.envs(vars.iter().map(|(k, v)| (*k, v)))
    }

    /// Without the variable `key`.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Fleet {
        self.cmd.env_remove(key);
        self
    }

    /// Pointed at the simulator `sim`: both planes, its URLs and tokens.
    pub fn sim(self, sim: &RunningSim) -> Fleet {
        self.envs(sim.env_vars())
    }

    /// Pointed at a Coder at `url` with `session_token`.
    pub fn coder(self, url: &str, session_token: &str) -> Fleet {
        self.env("CODER_URL", url)
            .env("CODER_SESSION_TOKEN", session_token)
    }

    /// Pointed at a Molecule control plane at `cp_url` with `admin_token`.
    pub fn molecule(self, cp_url: &str, admin_token: &str) -> Fleet {
        self.env("MOLECULE_CP_URL", cp_url)
            .env("CP_ADMIN_API_TOKEN", admin_token)
    }

    /// Another poll interval than [`POLL_INTERVAL_MS`] (a test that needs another pace says so).
    pub fn poll_interval_ms(self, ms: u64) -> Fleet {
        self.env("FLEET_POLL_INTERVAL_MS", ms.to_string())
    }

    /// No `FLEET_POLL_INTERVAL_MS`: the polling a user gets (its defaults, or `--poll-*` flags).
    pub fn default_polling(self) -> Fleet {
        self.env_remove("FLEET_POLL_INTERVAL_MS")
    }

    /// stdin from `stdin` instead of closed.
    pub fn stdin(mut self, stdin: Stdio) -> Fleet {
        self.cmd.stdin(stdin);
        self
    }

    /// stdout and stderr piped (for a child the test reads while it runs).
    pub fn piped(mut self) -> Fleet {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self
    }

    /// The command, to spawn and drive.
    pub fn command(self) -> std::process::Command {
        self.cmd
    }

    /// The command for tokio, to spawn and drive.
    pub fn tokio(self) -> tokio::process::Command {
        tokio::process::Command::from(self.cmd)
    }

    /// Runs it under a pseudo-terminal, as a person would (tests/pty/ctrl_c.py, with this
    /// environment), and presses Ctrl-C `presses` times once the terminal shows `wait_for`
    /// (0.5 s apart): the exit code and everything the terminal showed.
    pub fn under_pty(self, presses: u32, wait_for: &str) -> (i64, String) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty/ctrl_c.py");
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(script)
            .arg(presses.to_string())
            .arg(wait_for)
            .arg("--")
            .arg(self.cmd.get_program())
            .args(self.cmd.get_args())
            .env_clear();
        for (key, value) in self.cmd.get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        let out = cmd.output().expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        assert_eq!(v["pressed"].as_u64(), Some(u64::from(presses)), "{v}");
        (
            v["code"].as_i64().unwrap_or(-1),
            v["output"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Runs it to its end: the raw output.
    pub fn output(mut self) -> std::process::Output {
        self.cmd.output().expect("fleet runs")
    }

    /// Runs it to its end: the exit code and both streams.
    pub fn run(self) -> Run {
        Run::from_output(&self.output())
    }

    /// Runs it to its end without blocking the runtime; panics when it has not ended within
    /// `within_secs` seconds.
    pub async fn run_within(self, within_secs: u64) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(within_secs), self.tokio().output())
            .await
            .unwrap_or_else(|_| panic!("fleet ends within {within_secs} s"))
            .expect("fleet runs");
        Run::from_output(&out)
    }
}

/// Runs `fleet args` against `sim` (see [`fleet`]). Panics when it has not ended within
/// `within_secs` seconds.
pub async fn fleet_on(sim: &RunningSim, args: &[&str], within_secs: u64) -> Run {
    fleet(args).sim(sim).run_within(within_secs).await
}

/// [`fleet_on`] for a synchronous test: the same clean environment, the raw `Output`.
pub fn fleet_output_on(sim: &RunningSim, args: &[&str]) -> std::process::Output {
    fleet(args).sim(sim).output()
}

/// Asserts that the table in `stdout` whose header line starts with `first_header` (e.g.
/// `"PHASE "`) lines up: its first `left` columns are left-aligned (every cell starts where
/// its header does), the others right-aligned (every cell ends where its header does), and
/// every row is as long as the header. Widths are in characters; a header word is one that
/// follows two spaces. Returns how many rows it checked (those up to the first empty line).
pub fn assert_columns_line_up(stdout: &str, first_header: &str, left: usize) -> usize {
    let lines: Vec<Vec<char>> = stdout.lines().map(|l| l.chars().collect()).collect();
    let first: Vec<char> = first_header.chars().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&first))
        .unwrap_or_else(|| panic!("a table headed {first_header:?}:\n{stdout}"));
    let header = &lines[at];
    let blank = |l: &[char], i: usize| l.get(i).is_none_or(|c| *c == ' ');
    // Each header word: (first, last) column.
    let mut words = Vec::new();
    for i in 0..header.len() {
        if header[i] != ' ' && (i == 0 || (i >= 2 && blank(header, i - 1) && blank(header, i - 2)))
        {
            let end = (i..header.len())
                .find(|&j| blank(header, j + 1) && blank(header, j + 2))
                .unwrap_or(header.len() - 1);
            words.push((i, end));
        }
    }
    let header_text: String = header.iter().collect();
    let rows: Vec<&Vec<char>> = lines[at + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(!rows.is_empty(), "rows under the header:\n{stdout}");
    for row in &rows {
        let text: String = row.iter().collect();
        assert_eq!(
            row.len(),
            header.len(),
            "as long as the header:\n{header_text}\n{text}"
        );
        for (n, &(start, end)) in words.iter().enumerate() {
            let lined_up = if n < left {
                !blank(row, start) && (start == 0 || blank(row, start - 1))
            } else {
                !blank(row, end) && blank(row, end + 1)
            };
            assert!(
                lined_up,
                "column {n} under its header:\n{header_text}\n{text}"
            );
        }
    }
    rows.len()
}
