//! The built `fleet` binary: `fleet molecule migrate-provider` and `migration-status` against
//! httpmock: output, exit codes and the requests actually sent.

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use crate::support::cli::fleet;
use httpmock::prelude::*;
use serde_json::{Value, json};

const CP_TOKEN: &str = "cp-cli-secret-789";
const MIGRATE_PATH: &str = "/cp/admin/workspaces/ws-1/migrate-provider";

/// `fleet` (a clean environment) pointed at the control plane `server`.
fn fleet_at(server: &MockServer) -> Command {
    fleet(&[]).molecule(&server.base_url(), CP_TOKEN).command()
}

fn run(server: &MockServer, args: &[&str]) -> Output {
    fleet_at(server).args(args).output().expect("fleet runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn catch_all(server: &MockServer) -> httpmock::Mock<'_> {
    server.mock(|_when, then| {
        then.status(599).body("unexpected request");
    })
}

fn status_body(state: &str, terminal: bool) -> Value {
    json!({
        "migration": {"state": state, "from_provider": "aws", "to_provider": "hetzner", "detail": format!("now {state}")},
        "terminal": terminal,
    })
}

/// The pre-flight read: the control plane's own 404, "never migrated".
fn never_migrated_mock(server: &MockServer) -> httpmock::Mock<'_> {
    server.mock(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(404).json_body(json!({"error": "no migration"}));
    })
}

fn started_mock(server: &MockServer) -> httpmock::Mock<'_> {
    server.mock(|when, then| {
        when.method(POST)
            .path(MIGRATE_PATH)
            .header("authorization", format!("Bearer {CP_TOKEN}"))
            .json_body(json!({"from": "aws", "to": "hetzner", "confirm": true}));
        then.status(202).json_body(json!({
            "status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"
        }));
    })
}

/// One GET answer per entry; each serves `times` reads, the last serves the rest.
fn sequence<'a>(
    server: &'a MockServer,
    answers: &[(u16, Value, usize)],
) -> Vec<httpmock::Mock<'a>> {
    let mut mocks = Vec::new();
    for (i, (status, body, times)) in answers.iter().enumerate() {
        let mock = server.mock(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(*status).json_body(body.clone());
        });
        if i + 1 < answers.len() {
            mock.up_to_n_times(*times);
        }
        mocks.push(mock);
    }
    mocks
}

#[test]
fn without_confirm_and_no_terminal_exits_2_naming_confirm_and_sends_nothing() {
    let server = MockServer::start();
    let any = catch_all(&server);
    let out = run(
        &server,
        &[
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "--from",
            "aws",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("--confirm") && err.contains("Nothing was sent"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    any.assert_calls(0);

    // Also without --from: not even the tenant API is read.
    let out = fleet_at(&server)
        .env("MOLECULE_API_URL", server.base_url())
        .env("MOLECULE_ORG_API_KEY", "k")
        .args([
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(v["error"]["kind"], "invalid_input");
    assert_eq!(v["error"]["nothing_changed"], true);
    any.assert_calls(0);
}

#[test]
fn invalid_input_exits_2_and_sends_nothing() {
    let server = MockServer::start();
    let any = catch_all(&server);
    for (args, expected) in [
        (vec!["--to", "azure", "--from", "aws"], "azure"),
        (vec!["--to", "gcp", "--from", "gcp"], "both gcp"),
        (
            vec!["--to", "aws", "--from", "hetzner"],
            "--from-instance-id",
        ),
        (
            vec!["--to", "aws", "--from", "aws", "--timeout", "20m"],
            "--wait",
        ),
        (
            vec![
                "--to",
                "aws",
                "--from",
                "gcp",
                "--from-instance-id",
                "i",
                "--wait",
                "--timeout",
                "soon",
            ],
            "duration",
        ),
    ] {
        let mut full = vec!["molecule", "migrate-provider", "ws-1", "--confirm"];
        full.extend(args.iter().copied());
        let out = run(&server, &full);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{full:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expected),
            "{full:?}: {}",
            text(&out.stderr)
        );
    }
    any.assert_calls(0);
}

#[test]
fn not_configured_exits_2() {
    let server = MockServer::start();
    let any = catch_all(&server);
    let out = fleet_at(&server)
        .env_remove("CP_ADMIN_API_TOKEN")
        .args(["molecule", "migration-status", "ws-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("CP_ADMIN_API_TOKEN"));
    any.assert_calls(0);
}

#[test]
fn migrate_with_confirm_prints_what_started() {
    let server = MockServer::start();
    never_migrated_mock(&server);
    let post = started_mock(&server);
    let out = run(
        &server,
        &[
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Migration of workspace ws-1 from aws to hetzner started"),
        "{stdout}"
    );
    assert!(
        stdout.contains("migration-status --wait -- ws-1"),
        "{stdout}"
    );

    let out = run(
        &server,
        &[
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["from_source"], "given");
    assert_eq!(v["status"], "migration_started");
    post.assert_calls(2);
    assert!(!text(&out.stderr).contains(CP_TOKEN));
}

#[test]
fn migrate_and_wait_json_prints_only_the_final_document() {
    let server = MockServer::start();
    let post = started_mock(&server);
    sequence(
        &server,
        &[
            (404, json!({"error": "no migration yet"}), 1), // not visible yet right after the POST
            (200, status_body("snapshotting", false), 2),
            (200, status_body("provisioning_target", false), 1),
            (200, status_body("completed", true), 1),
        ],
    );
    let out = run(
        &server,
        &[
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
            "--wait",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value =
        serde_json::from_slice(&out.stdout).expect("exactly one JSON document on stdout");
    assert_eq!(v["migration_started"]["workspace_id"], "ws-1");
    assert_eq!(v["status"]["migration"]["state"], "completed");
    assert_eq!(v["status"]["terminal"], true);
    assert_eq!(v["status"]["step"], 6);
    assert!(
        text(&out.stderr).trim().is_empty(),
        "no progress with -o json: {}",
        text(&out.stderr)
    );
    post.assert_calls(1);
}

#[test]
fn wait_without_a_terminal_prints_plain_progress_lines() {
    let server = MockServer::start();
    sequence(
        &server,
        &[
            (200, status_body("snapshotting", false), 2),
            (200, status_body("snapshotted", false), 1),
            (200, status_body("provisioning_target", false), 1),
            (200, status_body("warming_caches", false), 1),
            (200, status_body("target_healthy", false), 1),
            (200, status_body("retiring_source", false), 1),
            (200, status_body("completed", true), 1),
        ],
    );
    let out = run(
        &server,
        &[
            "molecule",
            "migration-status",
            "ws-1",
            "--wait",
            "--timeout",
            "30s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 7, "{err}");
    assert!(
        lines[0].contains("step 1/6 snapshotting — now snapshotting"),
        "{err}"
    );
    assert!(lines[2].contains("step 3/6 provisioning_target"), "{err}");
    assert!(lines[3].contains("warming_caches (unknown state)"), "{err}");
    assert!(lines[6].contains("step 6/6 completed"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no terminal escapes when not a terminal"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("completed (step 6 of 6) — the workspace now runs on the target cloud"),
        "{stdout}"
    );
}

#[test]
fn failed_and_rolled_back_exit_1_and_say_what_they_mean() {
    for (state, expected) in [
        ("failed", "source is still running"),
        ("rolled_back", "target was torn down"),
    ] {
        let server = MockServer::start();
        sequence(
            &server,
            &[
                (200, status_body("target_healthy", false), 1),
                (200, status_body(state, true), 1),
            ],
        );
        let out = run(&server, &["molecule", "migration-status", "ws-1", "--wait"]);
        assert_eq!(out.status.code(), Some(1), "{state}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(expected),
            "{}",
            text(&out.stderr)
        );

        let out = run(
            &server,
            &[
                "molecule",
                "migration-status",
                "ws-1",
                "--wait",
                "-o",
                "json",
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["error"]["kind"], "operation_failed");
        assert_eq!(v["error"]["final_state"], state);
    }
}

#[test]
fn timeout_exits_3_with_the_last_state() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(200)
            .json_body(status_body("provisioning_target", false));
    });
    let started = std::time::Instant::now();
    let out = run(
        &server,
        &[
            "molecule",
            "migration-status",
            "ws-1",
            "--wait",
            "--timeout",
            "1s",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(10));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["kind"], "timeout");
    assert_eq!(v["error"]["last_state"], "provisioning_target");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("continues on the server")
    );
    // The SDK says the migration still runs; the CLI words it as the command that follows it.
    assert_eq!(
        v["error"]["follow_command"],
        "fleet molecule migration-status --wait -- ws-1"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("To follow it, run `fleet molecule migration-status --wait -- ws-1`"),
        "{err}"
    );
}

#[test]
fn never_migrated_exits_0_with_a_clear_answer() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(404).json_body(json!({"error": "no migration"}));
    });
    let out = run(&server, &["molecule", "migration-status", "ws-1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        "Workspace ws-1 has never been migrated."
    );
    for args in [
        vec!["molecule", "migration-status", "ws-1", "-o", "json"],
        vec![
            "molecule",
            "migration-status",
            "ws-1",
            "--wait",
            "-o",
            "json",
        ],
    ] {
        let out = run(&server, &args);
        assert_eq!(out.status.code(), Some(0));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["migrated"], false);
        assert_eq!(v["workspace_id"], "ws-1");
    }
}

#[test]
fn status_shows_unknown_states_and_fields() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(200).json_body(json!({
            "migration": {"state": "draining_dns", "from_provider": "aws", "to_provider": "gcp", "eta_seconds": 90},
            "terminal": false,
        }));
    });
    let out = run(&server, &["molecule", "migration-status", "ws-1"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("draining_dns (a state this version of fleet does not know)"),
        "{stdout}"
    );
    assert!(stdout.contains("eta_seconds: 90"), "{stdout}");
}

#[test]
fn conflict_exits_1_with_the_running_state() {
    // The pre-flight read finds no migration (404); one starts between it and the POST.
    let server = MockServer::start();
    let first = server.mock(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(404).json_body(json!({"error": "no migration"}));
    });
    first.up_to_n_times(1);
    let post = server.mock(|when, then| {
        when.method(POST).path(MIGRATE_PATH);
        then.status(409)
            .json_body(json!({"error": "migration in progress"}));
    });
    server.mock(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(200)
            .json_body(status_body("snapshotted", false));
    });
    let out = run(
        &server,
        &[
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["kind"], "conflict");
    assert_eq!(v["error"]["current_state"], "snapshotted");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already running")
    );
    post.assert_calls(1);
}

#[test]
fn api_refusal_exits_1_without_leaking_the_token() {
    let server = MockServer::start();
    never_migrated_mock(&server);
    server.mock(|when, then| {
        when.method(POST).path(MIGRATE_PATH);
        then.status(401)
            .json_body(json!({"error": format!("token {CP_TOKEN} rejected")}));
    });
    let out = run(
        &server,
        &[
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains("rejected") && all.contains("CP_ADMIN_API_TOKEN"),
        "{all}"
    );
    assert!(!all.contains(CP_TOKEN), "{all}");
}

#[test]
fn ctrl_c_exits_130_and_says_the_migration_goes_on() {
    let server = MockServer::start();
    let get = server.mock(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(200)
            .json_body(status_body("retiring_source", false));
    });
    let child = fleet_at(&server)
        .args(["molecule", "migration-status", "ws-1", "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until it is polling, then interrupt it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get.calls() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("exit");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("continues on the server") && err.contains("retiring_source"),
        "{err}"
    );
    assert!(
        err.contains("fleet molecule migration-status --wait -- ws-1"),
        "{err}"
    );
}

#[test]
fn help_has_examples() {
    let server = MockServer::start();
    // The examples name the simulator's workspaces (issue 27 item 8: they run as written,
    // tests/cli/help_cli.rs), no longer ws-123.
    for (sub, example) in [
        ("migrate-provider", "ws-aws-demo"),
        ("migration-status", "ws-migrated"),
    ] {
        let out = run(&server, &["molecule", sub, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        assert!(
            help.contains("Examples:") && help.contains(&format!("fleet molecule {sub} {example}")),
            "{help}"
        );
        assert!(help.contains("Exit codes"), "{help}");
    }
}

#[test]
fn a_follow_command_never_carries_a_workspace_id_the_server_chose_that_fleet_would_refuse() {
    // The control plane answers the start with another workspace id: an option that would
    // send the admin token to another server if a shell passed it to fleet.
    let server = MockServer::start();
    never_migrated_mock(&server);
    server.mock(|when, then| {
        when.method(POST).path(MIGRATE_PATH);
        then.status(202).json_body(json!({
            "status": "migration_started",
            "workspace_id": "--molecule-cp-url=http://127.0.0.1:18999",
            "from": "aws", "to": "hetzner"
        }));
    });
    let out = run(
        &server,
        &[
            "molecule",
            "migrate-provider",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
            "--",
            "ws-1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let follow = stdout
        .lines()
        .find(|l| l.contains("to follow it"))
        .unwrap_or_else(|| panic!("a line about following it: {stdout}"));
    assert!(
        follow.starts_with(
            "No command is shown to follow it: left out of the command: \
             \"--molecule-cp-url=http://127.0.0.1:18999\" (it starts with '-'"
        ),
        "{follow}"
    );
    assert!(!follow.contains('`'), "no command to paste: {follow}");
}

/// The built `fleet` against its own simulator (`--sim`): both Molecule APIs, the tenant API
/// included, seeded with ws-aws-demo, ws-gcp-demo, ws-migrating, …
fn sim_run(args: &[&str]) -> Output {
    fleet(&["--sim"]).args(args).output()
}

#[test]
fn a_mistyped_workspace_id_is_an_error_with_a_suggestion_not_never_migrated() {
    // Issue 27 item 1: the control plane's 404 "workspace not found" is not its 404 "no
    // migration": an unknown id exits 2 (nothing changed) and suggests the closest id.
    let out = sim_run(&["molecule", "migration-status", "ws-aws-dmeo"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(err.contains("did you mean ws-aws-demo?"), "{err}");
    assert!(!err.contains("never been migrated"), "{err}");

    let out = sim_run(&["-o", "json", "molecule", "migration-status", "ws-aws-dmeo"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["kind"], "not_found");
    assert_eq!(v["error"]["nothing_changed"], true);
    assert_eq!(v["error"]["did_you_mean"], "ws-aws-demo");

    // A start for the same typo: refused the same way, nothing started.
    let out = sim_run(&[
        "molecule",
        "migrate-provider",
        "ws-aws-dmeo",
        "--to",
        "gcp",
        "--confirm",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("did you mean ws-aws-demo?"));

    // In a batch, its own verdict and exit 2; the real workspace is read as before.
    let out = sim_run(&[
        "-o",
        "json",
        "molecule",
        "migration-status",
        "ws-aws-demo",
        "ws-aws-dmeo",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["results"][0]["verdict"], "never_migrated");
    assert_eq!(v["results"][1]["verdict"], "not_found");

    // A workspace that exists and was never migrated is still the answer, exit 0.
    let out = sim_run(&["molecule", "migration-status", "ws-aws-demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("never been migrated"));
}

#[test]
fn a_migration_away_from_gcp_reads_the_instance_id_from_the_tenant_api() {
    // Issue 27 item 2: the tenant API's compute.instance_id is the from_instance_id, and the
    // output says where it came from.
    let out = sim_run(&[
        "--log-level",
        "info",
        "molecule",
        "migrate-provider",
        "ws-gcp-demo",
        "--to",
        "aws",
        "--dry-run",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("instance: gce-7730118842 (read from the tenant API"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("read from the tenant API (compute.instance_id)"),
        "{}",
        text(&out.stderr)
    );

    let out = sim_run(&[
        "-o",
        "json",
        "molecule",
        "migrate-provider",
        "ws-gcp-demo",
        "--to",
        "aws",
        "--confirm",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["from_instance_id"], "gce-7730118842");
    assert_eq!(v["from_instance_id_source"], "looked_up");

    // A rollout away from gcp and hetzner: each workspace its own instance id.
    let out = sim_run(&[
        "--sim-speed",
        "2000",
        "-o",
        "json",
        "molecule",
        "migrate-provider",
        "ws-gcp-demo",
        "ws-hetzner-demo",
        "--to",
        "aws",
        "--confirm",
        "--wait",
        "--max-failures",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    for row in v["results"].as_array().expect("results") {
        assert_eq!(row["verdict"], "completed", "{row}");
    }
}

#[test]
fn a_dry_run_exits_as_the_real_run_would() {
    // Issue 27 item 4: a dry run the control plane would refuse (a migration in progress:
    // 409) exits 2 like the real run's pre-flight refusal; one it would accept exits 0.
    let out = sim_run(&[
        "molecule",
        "migrate-provider",
        "ws-migrating",
        "--to",
        "gcp",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("would NOT start"));
    let real = sim_run(&[
        "molecule",
        "migrate-provider",
        "ws-migrating",
        "--to",
        "gcp",
        "--confirm",
    ]);
    assert_eq!(real.status.code(), Some(2), "{}", text(&real.stderr));
    let out = sim_run(&[
        "molecule",
        "migrate-provider",
        "ws-aws-demo",
        "ws-migrating",
        "--to",
        "gcp",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = sim_run(&[
        "molecule",
        "migrate-provider",
        "ws-aws-demo",
        "--to",
        "gcp",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
