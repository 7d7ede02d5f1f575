//! End to end: every `fleet` command, run as a user would, against a `fleet sim` process.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Child, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

use crate::support::cli::fleet;

/// A `fleet sim` process; killed on drop.
struct Sim {
    child: Child,
    env: BTreeMap<String, String>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(speed: &str) -> Sim {
    let mut child = fleet(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--speed",
        speed,
        "-o",
        "json",
    ])
    .command()
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("fleet sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    // Read the JSON document it prints, then keep draining stdout so the pipe stays open.
    std::thread::spawn(move || {
        let mut doc = String::new();
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent {
                doc.push_str(&line);
                doc.push('\n');
                if line == "}" {
                    let _ = tx.send(std::mem::take(&mut doc));
                    sent = true;
                }
            }
        }
    });
    let doc = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("fleet sim prints where it listens");
    let json: Value = serde_json::from_str(&doc).expect("JSON");
    let env = json["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
        .collect();
    Sim { child, env }
}

impl Sim {
    /// `fleet args` (a clean environment) pointed at this simulator.
    fn run(&self, args: &[&str]) -> Output {
        fleet(args).envs(&self.env).output()
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn molecule_commands_end_to_end() {
    let sim = start_sim("400");

    // Never migrated: exit 0 and says so.
    let out = sim.run(&[
        "molecule",
        "migration-status",
        "ws-hetzner-demo",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(json(&out)["migrated"], false);

    // Without --confirm and without a terminal: refused, nothing started.
    let out = sim.run(&[
        "molecule",
        "migrate-provider",
        "ws-hetzner-demo",
        "--to",
        "gcp",
    ]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("--confirm"));
    let out = sim.run(&[
        "molecule",
        "migration-status",
        "ws-hetzner-demo",
        "-o",
        "json",
    ]);
    assert_eq!(json(&out)["migrated"], false, "nothing was started");

    // A whole migration, followed to its end; the source provider is looked up.
    let out = sim.run(&[
        "molecule",
        "migrate-provider",
        "ws-hetzner-demo",
        "--to",
        "gcp",
        "--from-instance-id",
        "hz-4217781",
        "--confirm",
        "--wait",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("completed"), "{stdout}");
    for state in [
        "snapshotting",
        "provisioning_target",
        "retiring_source",
        "completed",
    ] {
        assert!(
            stderr.contains(state) || stdout.contains(state),
            "progress shows {state}: {stderr}"
        );
    }
    let out = sim.run(&[
        "molecule",
        "migration-status",
        "ws-hetzner-demo",
        "-o",
        "json",
    ]);
    let status = json(&out);
    assert_eq!(status["migration"]["state"], "completed", "{status}");
    assert_eq!(status["migration"]["to_provider"], "gcp");

    // The end states that are failures exit 1 and say what they mean.
    let out = sim.run(&[
        "molecule",
        "migrate-provider",
        "ws-rolls-back",
        "--to",
        "aws",
        "--from-instance-id",
        "hz-9000001",
        "--confirm",
        "--wait",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("rolled_back"),
        "{stdout}\n{stderr}"
    );

    // Started without --wait: exit 0 at once. A second start while it runs is refused with
    // its state; a wait shorter than the migration times out (exit 3) and it goes on.
    let start = [
        "molecule",
        "migrate-provider",
        "ws-aws-demo",
        "--to",
        "hetzner",
        "--confirm",
    ];
    let out = sim.run(&start);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = sim.run(&start);
    assert_ne!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).1.contains("already"), "{:?}", text(&out));
    let out = sim.run(&[
        "molecule",
        "migration-status",
        "ws-aws-demo",
        "--wait",
        "--timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    let out = sim.run(&[
        "molecule",
        "migration-status",
        "ws-aws-demo",
        "--wait",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(json(&out)["migration"]["state"], "completed");
}

#[test]
fn coder_commands_end_to_end() {
    let sim = start_sim("400");

    // Issue 27: `coder list` covers your own workspaces like `update`; --all-owners every
    // owner's (it listed every owner's by default).
    let out = sim.run(&["coder", "list", "--all-owners"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("alice/dev") && stdout.contains("bob/dev"),
        "{stdout}"
    );

    let out = sim.run(&["coder", "list", "--outdated", "-o", "json"]);
    let list = json(&out);
    let names: Vec<&str> = list["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .map(|w| w["full_name"].as_str().expect("full_name"))
        .collect();
    assert!(names.contains(&"alice/dev"), "{names:?}");
    assert!(
        !names.contains(&"alice/current"),
        "up to date is not listed: {names:?}"
    );

    // show by bare name (case-insensitive), owner/name and UUID agree.
    let by_name = json(&sim.run(&["coder", "show", "DEV", "-o", "json"]));
    let by_owner = json(&sim.run(&["coder", "show", "alice/dev", "-o", "json"]));
    let id = by_owner["id"].as_str().expect("id").to_string();
    let by_id = json(&sim.run(&["coder", "show", &id, "-o", "json"]));
    assert_eq!(by_name["id"], by_owner["id"]);
    assert_eq!(by_id["full_name"], "alice/dev");
    let active = by_id["template_active_version_id"]
        .as_str()
        .expect("active")
        .to_string();

    let out = sim.run(&["coder", "template-version", &active, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(json(&out)["id"], active.as_str());

    // Update onto the active version: stop, start, running, no longer outdated.
    let out = sim.run(&["coder", "update", "alice/dev"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("stop build") && stderr.contains("start build"),
        "{stderr}"
    );
    let after = json(&sim.run(&["coder", "show", "alice/dev", "-o", "json"]));
    assert_eq!(after["outdated"], false, "{after}");
    assert_eq!(after["template_version_id"], active.as_str());
    assert_eq!(after["status"], "running");

    // Again: nothing to do, said plainly.
    let out = sim.run(&["coder", "update", "alice/dev", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let outcome = json(&out);
    assert_eq!(outcome["action"], "up_to_date", "{outcome}");

    // Restart keeps the version.
    let out = sim.run(&["coder", "restart", "alice/dev", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let again = json(&sim.run(&["coder", "show", "alice/dev", "-o", "json"]));
    assert_eq!(again["template_version_id"], active.as_str());
    assert_ne!(
        again["latest_build"]["id"], after["latest_build"]["id"],
        "a new build ran"
    );

    // A version whose start fails: exit 1 with the job's error.
    let out = sim.run(&["coder", "update", "alice/ml-notebook"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.to_lowercase().contains("fail"), "{stderr}");

    // Unknown workspace: exit 2 (not found, nothing changed; issue 27: was 1), one clear line.
    let out = sim.run(&["coder", "show", "alice/no-such-thing"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
}

#[test]
fn completions_and_help() {
    for shell in ["bash", "zsh", "fish"] {
        let out = fleet(&["completions", shell]).output();
        assert_eq!(out.status.code(), Some(0));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("migrate-provider") && script.contains("coder"),
            "{shell}"
        );
    }
    let out = fleet(&["--help"]).output();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "CP_ADMIN_API_TOKEN",
        "CODER_SESSION_TOKEN",
        "Exit codes",
        "--sim",
        "Examples",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}");
    }
    let out = fleet(&["--version"]).output();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("fleet {}", env!("CARGO_PKG_VERSION"))
    );
}
