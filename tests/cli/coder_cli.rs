//! The built `fleet` binary: `fleet coder …` output, exit codes and the requests it sends.

use crate::support::coder as support;

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use httpmock::{Method::POST, Mock, MockServer};
use serde_json::{Value, json};
use support::*;

use crate::support::cli::fleet;

/// `fleet args` (a clean environment) pointed at the Coder `server`.
fn fleet_at(server: &MockServer, args: &[&str]) -> Command {
    fleet(args).coder(&server.base_url(), TOKEN).command()
}

fn run(server: &MockServer, args: &[&str]) -> (i32, String, String) {
    let out: Output = fleet_at(server, args).output().expect("fleet runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token leaked"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

async fn any_request(server: &MockServer) -> Mock<'_> {
    server
        .mock_async(|_when, then| {
            then.status(500)
                .json_body(json!({"message": "no request was expected"}));
        })
        .await
}

const FAST: [&str; 4] = ["--poll-initial", "5ms", "--poll-max", "20ms"];

async fn happy_update(server: &MockServer) -> (Mock<'_>, Mock<'_>) {
    mock_get(
        server,
        "/api/v2/users/alice/workspace/dev",
        200,
        running_on(V1),
    )
    .await;
    mock_get(
        server,
        &format!("/api/v2/templates/{TEMPLATE}"),
        200,
        template(),
    )
    .await;
    mock_get(
        server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
    let stop = mock_post_build(
        server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    mock_get(
        server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
    )
    .await;
    let start = mock_post_build(server, json!({"transition": "start", "template_version_id": V2, "rich_parameter_values": params()}), 201, build(START_BUILD, 9, "start", "pending", "pending", V2, None))
    .await;
    mock_get(
        server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        200,
        build(START_BUILD, 9, "start", "running", "succeeded", V2, None),
    )
    .await;
    (stop, start)
}

#[tokio::test]
async fn update_prints_progress_lines_and_the_result() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    let (stop, start) = happy_update(&server).await;
    let mut args = vec!["coder", "update", "alice/dev"];
    args.extend(FAST);
    let (code, stdout, stderr) = run(&server, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "alice/dev updated from version v1 ({V1}) to v2 ({V2}) and running"
        )),
        "{stdout}"
    );
    // Not a terminal: plain progress lines on stderr, in order.
    let created_stop = stderr.find("stop build #8 created").expect(&stderr);
    let created_start = stderr.find("start build #9 created").expect(&stderr);
    assert!(created_stop < created_start, "{stderr}");
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn update_with_json_output_prints_only_the_final_json() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    happy_update(&server).await;
    let mut args = vec!["coder", "update", "alice/dev", "-o", "json"];
    args.extend(FAST);
    let (code, stdout, stderr) = run(&server, &args);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(v["action"], "updated");
    assert_eq!(v["template_version_id"], V2);
    assert_eq!(v["builds"].as_array().unwrap().len(), 2);
    assert!(
        stderr.trim().is_empty(),
        "no progress with -o json: {stderr}"
    );
}

#[tokio::test]
async fn a_malformed_uuid_exits_2_before_any_request() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    let any = any_request(&server).await;
    let (code, _, stderr) = run(
        &server,
        &[
            "coder",
            "update",
            "alice/dev",
            "--template-version",
            "v2/latest",
        ],
    );
    // Issue 27 item 5: a version NAME is accepted now (was "must be a UUID"); what is
    // neither a name nor a UUID is still refused before any request.
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a template version"), "{stderr}");
    let (code, _, _) = run(&server, &["coder", "template-version", "nope"]);
    assert_eq!(code, 2);
    let (code, _, stderr) = run(&server, &["coder", "show", "a/b/c"]);
    assert_eq!(code, 2, "{stderr}");
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn not_configured_exits_2_and_names_the_variables() {
    let out = fleet(&["coder", "show", "dev"]).output();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CODER_URL") && stderr.contains("CODER_SESSION_TOKEN"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_failed_stop_exits_1_with_the_job_error_and_sends_no_start() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        "/api/v2/users/alice/workspace/dev",
        200,
        running_on(V1),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/templates/{TEMPLATE}"),
        200,
        template(),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
    mock_post_build(
        &server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        build(
            STOP_BUILD,
            8,
            "stop",
            "failed",
            "failed",
            V1,
            Some("provider crashed"),
        ),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}/logs"),
        200,
        json!([{"output": "panic: provider crashed"}]),
    )
    .await;
    let start = server
        .mock_async(|when, then| {
            when.method(POST).body_includes("\"start\"");
            then.status(500);
        })
        .await;
    let mut args = vec!["coder", "update", "alice/dev", "-o", "json"];
    args.extend(FAST);
    let (code, stdout, stderr) = run(&server, &args);
    assert_eq!(code, 1, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("JSON error");
    assert_eq!(v["error"]["kind"], "operation_failed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("panic: provider crashed")
    );
    assert!(stderr.contains("provider crashed"), "{stderr}");
    start.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_stop_past_its_deadline_exits_3_and_says_how_to_finish() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        "/api/v2/users/alice/workspace/dev",
        200,
        running_on(V1),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/templates/{TEMPLATE}"),
        200,
        template(),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
    mock_post_build(
        &server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        build(STOP_BUILD, 8, "stop", "stopping", "running", V1, None),
    )
    .await;
    let mut args = vec!["coder", "update", "alice/dev", "--stop-timeout", "300ms"];
    args.extend(FAST);
    let (code, _, stderr) = run(&server, &args);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("left stopped"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "fleet coder update --template-version {V2} -- alice/dev"
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn two_ctrl_c_exit_130_and_say_what_state_was_left() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        "/api/v2/users/alice/workspace/dev",
        200,
        running_on(V1),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/templates/{TEMPLATE}"),
        200,
        template(),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
    let stop = mock_post_build(
        &server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        build(STOP_BUILD, 8, "stop", "stopping", "running", V1, None),
    )
    .await;
    let mut args = vec!["coder", "update", "alice/dev"];
    args.extend(FAST);
    let child = fleet_at(&server, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while stop.calls_async().await == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the stop build was never requested"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first Ctrl-C is graceful: the stop under way (here: one that never ends) would be
    // followed by its start. The second leaves it as it is.
    for _ in 0..2 {
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("finishing the in-flight stop→start of alice/dev"),
        "{stderr}"
    );
    assert!(stderr.contains("left stopped"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "fleet coder update --template-version {V2} -- alice/dev"
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn show_list_and_template_version() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        running_on(V1),
    )
    .await;
    let mut fresh = running_on(V2);
    fresh["name"] = json!("fresh");
    mock_get(
        &server,
        "/api/v2/workspaces",
        200,
        json!({"workspaces": [running_on(V1), fresh], "count": 2}),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/templateversions/{V2}"),
        200,
        json!({"id": V2, "name": "v2", "template_id": TEMPLATE, "archived": false, "job": {"status": "succeeded"}}),
    )
    .await;

    let (code, stdout, stderr) = run(&server, &["coder", "show", WS, "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["full_name"], "alice/dev");
    assert_eq!(v["outdated"], true);
    assert_eq!(v["status"], "running");

    let (code, stdout, _) = run(&server, &["coder", "show", WS]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("workspace:       alice/dev") && stdout.contains("outdated:        true"),
        "{stdout}"
    );

    let (code, stdout, _) = run(&server, &["coder", "list", "--outdated"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("alice/dev") && !stdout.contains("alice/fresh"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&server, &["coder", "list", "-o", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["count"], 2);

    let (code, stdout, _) = run(&server, &["coder", "template-version", V2]);
    assert_eq!(code, 0);
    assert!(stdout.contains("import job:  succeeded"), "{stdout}");
}

#[test]
fn help_has_examples() {
    let out = fleet(&["coder", "update", "--help"]).output();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "--template-version",
        "--stop-timeout",
        "--start-timeout",
        "--force",
        "Examples:",
        "left stopped",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

/// The built `fleet` against its own simulator (`--sim`): alice/dev, alice/current, …
fn sim_run(args: &[&str]) -> (i32, String, String) {
    let out = fleet(&["--sim", "--sim-speed", "2000"]).args(args).output();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_update_says_what_will_happen_in_one_short_line_and_the_path_once() {
    // Issue 27 item 7 (was ~300 characters of nested parentheses, repeated at the end).
    let (code, stdout, stderr) = sim_run(&["coder", "update", "alice/dev"]);
    assert_eq!(code, 0, "{stderr}");
    let first = stderr
        .lines()
        .find(|l| l.starts_with("alice/dev"))
        .unwrap_or_else(|| panic!("no plan line: {stderr}"));
    assert!(first.chars().count() <= 120, "{first}");
    assert!(
        first.starts_with(
            "alice/dev: v2 → v3 (the template's active version), running; server-side"
        ),
        "{first}"
    );
    let all = format!("{stderr}{stdout}");
    assert_eq!(all.matches("supports on_success").count(), 1, "{all}");
    assert!(
        stdout.contains("  path: server-side (Coder v2.36.1 supports on_success"),
        "{stdout}"
    );
    // One clock: a build's status lines carry none, its end says how long it took.
    for line in stderr.lines().filter(|l| l.contains(" build: ")) {
        assert!(!line.contains(" after "), "{line}");
    }
    assert!(stderr.contains("stop build done: stopped in "), "{stderr}");
    // In full at --log-level info, and in JSON.
    let (code, _, stderr) = sim_run(&["--log-level", "info", "coder", "update", "alice/dev"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("path=server-side reason=Coder v2.36.1 supports on_success"),
        "{stderr}"
    );
    let (_, stdout, _) = sim_run(&["-o", "json", "coder", "update", "alice/dev"]);
    let v: Value = serde_json::from_str(&stdout).expect("json");
    assert!(
        v["path_reason"]
            .as_str()
            .is_some_and(|r| r.contains("supports on_success") && r.contains("active version")),
        "{v}"
    );
}

#[test]
fn a_dry_run_of_six_workspaces_prints_each_plan_once() {
    // Issue 27 item 7: was 87 lines, each plan 3 times (the plan line, the verdict line with
    // the plan's summary, the plan).
    let (code, stdout, stderr) = sim_run(&["coder", "update", "--all-outdated", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let all = format!("{stderr}{stdout}");
    for ws in [
        "alice/dev",
        "alice/secure-shell",
        "alice/ml-notebook",
        "alice/slow-box",
        "alice/flaky",
    ] {
        let plan = format!("{ws} would be stopped, then started on");
        assert_eq!(all.matches(&plan).count(), 1, "{plan}:\n{all}");
    }
    assert_eq!(
        all.matches("alice/api-server is stopped: one start build")
            .count(),
        1,
        "{all}"
    );
    assert!(!stderr.contains("carried over"), "{stderr}");
    let lines = all.lines().count();
    assert!(lines <= 82, "{lines} lines:\n{all}");
}

#[test]
fn template_versions_by_name_are_listed_resolved_and_suggested() {
    // Issue 27 item 5: `fleet coder versions TEMPLATE` lists them (template by name, any case).
    let (code, stdout, stderr) = sim_run(&["coder", "versions", "docker-dev"]);
    assert_eq!(code, 0, "{stderr}");
    let header = stdout.lines().next().unwrap_or_default();
    for column in ["NAME", "ID", "CREATED", "ACTIVE", "ARCHIVED"] {
        assert!(header.contains(column), "{stdout}");
    }
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {stdout}"))
            .to_string()
    };
    assert!(row("v3").trim_end().ends_with("yes"), "{stdout}");
    assert!(row("v0-archived").trim_end().ends_with("yes"), "{stdout}");
    assert!(!row("v1").contains("yes"), "{stdout}");
    let (code, stdout, stderr) = sim_run(&["-o", "json", "coder", "versions", "DOCKER-DEV"]);
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(listed["template"], "docker-dev");
    let versions = listed["versions"].as_array().expect("versions");
    let active: Vec<&str> = versions
        .iter()
        .filter(|v| v["active"] == true)
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(active, ["v3"], "{stdout}");
    for v in versions {
        for key in ["name", "id", "created_at", "active", "archived"] {
            assert!(!v[key].is_null(), "{key} missing: {v}");
        }
    }
    let v1_id = versions
        .iter()
        .find(|v| v["name"] == "v1")
        .expect("v1 listed")["id"]
        .clone();
    // A mistyped template: exit 2 with the closest name.
    let (code, _, stderr) = sim_run(&["coder", "versions", "dockr-dev"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean docker-dev?"), "{stderr}");

    // --template-version takes the name, resolved in the workspace's template.
    let (code, stdout, stderr) = sim_run(&[
        "-o",
        "json",
        "coder",
        "update",
        "alice/dev",
        "--template-version",
        "v1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let done: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(done["template_version_id"], v1_id, "{stdout}");
    // An unknown name: exit 2, nothing changed, the template's closest version named.
    let (code, stdout, stderr) = sim_run(&[
        "-o",
        "json",
        "coder",
        "update",
        "alice/dev",
        "--template-version",
        "v33",
    ]);
    assert_eq!(code, 2, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["error"]["nothing_changed"], true, "{stdout}");
    assert!(
        stderr.contains(r#"template docker-dev has no version named "v33"; did you mean v3?"#),
        "{stderr}"
    );
    // In a batch, each workspace resolves the name in its own template.
    let (code, stdout, stderr) = sim_run(&[
        "-o",
        "json",
        "coder",
        "update",
        "alice/dev",
        "alice/api-server",
        "--template-version",
        "v2",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("51330000-0000-4000-8000-000000000302"),
        "{stdout}"
    );
    // template-version takes a name with --template; without it, exit 2 before any request.
    let (code, stdout, stderr) = sim_run(&[
        "-o",
        "json",
        "coder",
        "template-version",
        "v2",
        "--template",
        "docker-dev",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["name"], "v2");
    let (code, _, stderr) = sim_run(&["coder", "template-version", "v2"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("say which template"), "{stderr}");
}

#[test]
fn no_such_workspace_exits_2_nothing_changed_with_a_suggestion_alone_or_in_a_batch() {
    // Issue 27 item 3: the same rule as Molecule's (was exit 1, nothing_changed false, and
    // `failed` in a batch).
    let (code, stdout, stderr) = sim_run(&["-o", "json", "coder", "update", "alice/dve"]);
    assert_eq!(code, 2, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["error"]["kind"], "not_found");
    assert_eq!(v["error"]["nothing_changed"], true);
    assert_eq!(v["error"]["did_you_mean"], "alice/dev");
    assert!(
        stderr.contains("did you mean alice/dev? To go on, run `fleet coder list`"),
        "{stderr}"
    );
    // A mistyped owner: the closest among every workspace the token can see.
    let (code, _, stderr) = sim_run(&["coder", "show", "alcie/dev"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean alice/dev?"), "{stderr}");
    // Nothing close: no suggestion, same exit code.
    let (code, _, stderr) = sim_run(&["coder", "update", "alice/zzzzzzzz"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("did you mean"), "{stderr}");
    // In a batch: its own verdict, and the batch exits 2 (the other is already current).
    let (code, stdout, stderr) = sim_run(&[
        "-o",
        "json",
        "coder",
        "update",
        "alice/current",
        "alice/dve",
    ]);
    assert_eq!(code, 2, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("json");
    let verdicts: Vec<&str> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["verdict"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(verdicts, ["already_current", "not_found"], "{stdout}");
}

#[tokio::test]
async fn a_finish_command_never_carries_a_server_name_fleet_would_refuse() {
    // The server calls the workspace by an option's name (and leaves its owner out): the
    // command that finishes the job must not hand it to fleet as an option.
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    let mut ws = running_on(V1);
    ws["name"] = json!("--coder-url=http://127.0.0.1:18999");
    ws.as_object_mut().unwrap().remove("owner_name");
    mock_get(&server, "/api/v2/users/alice/workspace/dev", 200, ws).await;
    mock_get(
        &server,
        &format!("/api/v2/templates/{TEMPLATE}"),
        200,
        template(),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
    mock_post_build(
        &server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        build(STOP_BUILD, 8, "stop", "stopping", "running", V1, None),
    )
    .await;
    let mut args = vec!["coder", "update", "alice/dev", "--stop-timeout", "300ms"];
    args.extend(FAST);
    let (code, _, stderr) = run(&server, &args);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("left stopped"), "{stderr}");
    assert!(
        stderr.contains(
            "No command is shown to finish the job: left out of the command: \
             \"--coder-url=http://127.0.0.1:18999\" (it starts with '-'"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("fleet coder update"), "{stderr}");

    args.extend(["-o", "json"]);
    let (code, stdout, stderr) = run(&server, &args);
    assert_eq!(code, 3, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("JSON error");
    assert!(v["error"].get("finish_command").is_none(), "{v}");
    assert_eq!(
        v["error"]["finish_command_left_out"][0]["word"], "--coder-url=http://127.0.0.1:18999",
        "{v}"
    );
}

#[test]
fn list_and_update_say_their_scope_and_list_takes_the_same_selection() {
    // Issue 27 item 6: `coder list --outdated` showed every owner's (bob's included) while
    // `update --all-outdated` planned 6 (yours), and neither said so. (13 with every owner's
    // since the seed holds the team-dev workspaces of issue 25.)
    let (code, stdout, stderr) = sim_run(&["coder", "list", "--outdated"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("6 of your outdated workspaces; 13 with --all-owners"),
        "{stderr}"
    );
    assert!(!stdout.contains("bob/"), "{stdout}");
    let (code, stdout, stderr) = sim_run(&["coder", "list", "--outdated", "--all-owners"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("bob/dev"), "{stdout}");
    assert!(
        stderr.contains("13 outdated workspaces of every owner"),
        "{stderr}"
    );
    let (code, stdout, stderr) = sim_run(&["coder", "update", "--all-outdated", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Selected 6 of your outdated workspaces; 13 with --all-owners."),
        "{stdout}"
    );
    // --owner and --template, as JSON with the scope as facts.
    let (code, stdout, stderr) = sim_run(&[
        "-o",
        "json",
        "coder",
        "list",
        "--owner",
        "bob",
        "--template",
        "docker-dev",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("json");
    let names: Vec<&str> = v["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .map(|w| w["full_name"].as_str().unwrap_or_default())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("bob/")),
        "{names:?}"
    );
    assert_eq!(v["scope"]["owner"], "bob");
    assert_eq!(v["scope"]["template"], "docker-dev");
    assert_eq!(v["scope"]["count"], names.len());
    // One owner or all, not both: exit 2, nothing sent.
    let (code, _, stderr) = sim_run(&["coder", "list", "--owner", "bob", "--all-owners"]);
    assert_eq!(code, 2, "{stderr}");
}
