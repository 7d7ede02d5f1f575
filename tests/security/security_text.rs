//! Server text never controls the terminal, and no token leaves the process by any channel.
//!
//! Loopback fakes of Coder and the Molecule CP answer with hostile text (ESC sequences that
//! retitle the window, clear the screen or plant an OSC 8 link, a CR that overwrites the line,
//! bidi overrides, C1 controls, DEL) and echo tokens holding `"` and `\`. The built `fleet` must
//! show that text with its control characters escaped visibly, in text, JSON and log lines; the
//! built `fleet-mcp` must send no token in any message, progress notifications included.

use crate::support::coder as support;

use std::{
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use httpmock::prelude::*;
use rmcp::{
    ClientHandler, RoleClient,
    model::{
        CallToolRequestParams, ClientRequest, ProgressNotificationParam, Request, ServerResult,
    },
    service::{NotificationContext, PeerRequestOptions},
};
use serde_json::{Value, json};
use support::{TOKEN, V1, V2, WS, build, running_on, workspace};

use crate::support::cli::fleet;
use crate::support::mcp::fleet_mcp;

/// Text a template author or a hostile server could send: a window-title change, a screen
/// clear, an OSC 8 hyperlink, a CR overwrite forging a verdict, a bidi override, a C1 CSI, DEL.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}]8;;https://evil.example/\u{1b}\\click\u{1b}]8;;\u{1b}\\\rOK: updated\u{202e}exe.txt\u{2066}x\u{2069}\u{9b}31m\u{7f}end";

/// A CP admin token with the characters JSON and `Debug` escape.
const QUOTED_TOKEN: &str = r#"cp-"quoted"\back\slash-token-9f3"#;

/// Asserts that `text` holds no character that can act on a terminal or reorder text, checked
/// byte by byte and character by character (independently of fleet's own predicate).
fn assert_inert(what: &str, text: &str) {
    for (i, c) in text.char_indices() {
        let code = c as u32;
        let bad = (code < 0x20 && c != '\n' && c != '\t')
            || (0x7f..=0x9f).contains(&code)
            || matches!(code, 0x61c | 0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069);
        assert!(
            !bad,
            "{what}: raw U+{code:04X} at byte {i}: {:?}",
            &text[i.saturating_sub(40)..(i + 40).min(text.len())]
        );
    }
}

/// Asserts that the hostile text is shown, its controls made visible.
fn assert_shown_escaped(what: &str, text: &str) {
    for visible in [
        r"\x1b]0;pwned\x07",
        r"\x1b[2J",
        r"\x1b]8;;https://evil.example/",
        r"\rOK: updated",
        r"\u{202e}exe.txt\u{2066}x\u{2069}",
        r"\u{9b}31m\x7fend",
    ] {
        assert!(
            text.contains(visible),
            "{what} should show {visible}: {text}"
        );
    }
}

fn output(mut cmd: Command) -> (Option<i32>, String, String) {
    let out: Output = cmd.stdin(Stdio::null()).output().expect("fleet runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn coder_fleet(server: &MockServer, args: &[&str]) -> Command {
    fleet(args).coder(&server.base_url(), TOKEN).command()
}

fn molecule_fleet(server: &MockServer, token: &str, args: &[&str]) -> Command {
    fleet(args).molecule(&server.base_url(), token).command()
}

/// A Coder whose workspace, template, version names and job error are hostile.
async fn hostile_coder() -> MockServer {
    let server = MockServer::start_async().await;
    let mut failed = build(
        support::START_BUILD,
        8,
        "start",
        "failed",
        "failed",
        V1,
        Some(HOSTILE),
    );
    failed["template_version_name"] = json!(HOSTILE);
    let mut ws = workspace(failed);
    ws["name"] = json!(format!("dev{HOSTILE}"));
    ws["template_name"] = json!(HOSTILE);
    let list = json!({"workspaces": [ws.clone(), running_on(V2)], "count": 2});
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v2/workspaces/{WS}"));
            then.status(200).json_body(ws);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v2/workspaces");
            then.status(200).json_body(list);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v2/templateversions/{V2}"));
            then.status(200).json_body(json!({
                "id": V2, "name": HOSTILE, "template_id": support::TEMPLATE, "archived": false,
                "message": HOSTILE,
                "job": {"id": "77777777-7777-4777-8777-777777777777", "status": "failed", "error": HOSTILE}
            }));
        })
        .await;
    server
}

#[tokio::test]
async fn coder_names_and_job_errors_are_shown_with_controls_escaped() {
    let server = hostile_coder().await;
    for args in [
        vec!["coder", "show", WS],
        vec!["coder", "list"],
        vec!["coder", "template-version", V2],
    ] {
        let (code, stdout, stderr) = output(coder_fleet(&server, &args));
        let what = args.join(" ");
        assert_eq!(code, Some(0), "{what}: {stderr}");
        assert_inert(&what, &stdout);
        assert_inert(&what, &stderr);
        assert_shown_escaped(&what, &stdout);
    }
}

#[tokio::test]
async fn coder_json_output_carries_the_text_as_json_escapes_only() {
    let server = hostile_coder().await;
    let (code, stdout, stderr) = output(coder_fleet(&server, &["coder", "show", WS, "-o", "json"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_inert("show -o json", &stdout);
    // The same value comes back when the JSON is read: nothing is lost, only escaped.
    let v: Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert_eq!(
        v["full_name"],
        json!(format!("alice/dev{HOSTILE}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(r"\u001b]0;pwned\u0007") && stdout.contains(r"\u202e"),
        "{stdout}"
    );
}

/// A CP whose migration status, provider names and detail are hostile and echo the token, and
/// whose errors come as plain text.
async fn hostile_cp(echoed: &str) -> MockServer {
    let server = MockServer::start_async().await;
    let body = json!({
        "migration": {
            "state": format!("provisioning_target{HOSTILE}"),
            "from_provider": format!("aws{HOSTILE}"),
            "to_provider": "hetzner",
            "detail": format!("{HOSTILE} token={echoed}"),
        },
        "terminal": true,
    });
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-1/migrate-provider");
            then.status(200).json_body(body);
        })
        .await;
    let plain = format!("bad gateway {HOSTILE} token={echoed}");
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(400)
                .header("content-type", "text/plain")
                .body(plain);
        })
        .await;
    server
}

#[tokio::test]
async fn molecule_status_error_bodies_and_log_lines_are_escaped_and_redacted() {
    let server = hostile_cp(QUOTED_TOKEN).await;
    let (code, stdout, stderr) = output(molecule_fleet(
        &server,
        QUOTED_TOKEN,
        &[
            "--log-level",
            "trace",
            "molecule",
            "migration-status",
            "ws-1",
        ],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    assert_inert("status stdout", &stdout);
    assert_inert("status log lines", &stderr);
    assert_shown_escaped("status", &stdout);
    assert!(stdout.contains("token=<redacted>"), "{stdout}");

    let (code, stdout, stderr) = output(molecule_fleet(
        &server,
        QUOTED_TOKEN,
        &[
            "--log-level",
            "trace",
            "molecule",
            "migration-status",
            "ws-2",
        ],
    ));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_inert("error stdout", &stdout);
    assert_inert("error stderr", &stderr);
    assert_shown_escaped("a plain-text error body", &stderr);
    for text in [&stdout, &stderr] {
        assert!(!text.contains("quoted"), "the token leaked: {text}");
    }
}

#[tokio::test]
async fn a_token_with_quotes_and_backslashes_is_redacted_in_json_output() {
    let server = hostile_cp(QUOTED_TOKEN).await;
    let (code, stdout, stderr) = output(molecule_fleet(
        &server,
        QUOTED_TOKEN,
        &["-o", "json", "molecule", "migration-status", "ws-1"],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("quoted") && !text.contains("slash-token"),
            "the token leaked: {text}"
        );
    }
    let v: Value = serde_json::from_str(&stdout).expect("valid JSON");
    let detail = v["migration"]["detail"]
        .as_str()
        .expect("detail")
        .to_string();
    assert!(detail.ends_with("token=<redacted>"), "{stdout}");
    assert!(
        detail.starts_with(HOSTILE),
        "the JSON value is kept whole: {detail:?}"
    );
    assert_inert("status -o json", &stdout);
}

/// An MCP client that keeps every progress notification.
#[derive(Clone, Default)]
struct Collector {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Collector {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

/// A CP following a migration whose detail and error echo the CP token and the org key.
async fn echoing_migration() -> MockServer {
    let server = MockServer::start_async().await;
    let path = "/cp/admin/workspaces/ws-1/migrate-provider";
    for (state, terminal) in [("snapshotting", false), ("provisioning_target", false)] {
        let body = json!({
            "migration": {"state": state, "from_provider": "aws", "to_provider": "hetzner",
                          "detail": format!("{state}: token={QUOTED_TOKEN} org=org-key-1c9e0a")},
            "terminal": terminal,
        });
        server
            .mock_async(|when, then| {
                when.method(GET).path(path);
                then.status(200).json_body(body);
            })
            .await
            .up_to_n_times_async(1)
            .await;
    }
    server
        .mock_async(|when, then| {
            when.method(GET).path(path);
            then.status(200).json_body(json!({
                "migration": {"state": "failed", "from_provider": "aws", "to_provider": "hetzner",
                              "error": format!("gave up, token={QUOTED_TOKEN}")},
                "terminal": true,
            }));
        })
        .await;
    server
}

#[tokio::test]
async fn fleet_mcp_sends_no_token_in_progress_notifications_or_results() {
    let server = echoing_migration().await;

    let collector = Collector::default();
    let (client, log) = fleet_mcp(&[])
        .molecule(&server.base_url(), QUOTED_TOKEN)
        .env("MOLECULE_ORG_API_KEY", "org-key-1c9e0a")
        .env("FLEET_LOG_LEVEL", "trace")
        .connect_logged(collector.clone())
        .await;
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("wait_for_workspace_migration").with_arguments(
            json!({"workspace_id": "ws-1", "timeout_seconds": 30})
                .as_object()
                .unwrap()
                .clone(),
        ),
    ));
    // send_cancellable_request sends a progress token with the call.
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .expect("sent");
    let response = handle.await_response().await.expect("answered");
    let ServerResult::CallToolResult(result) = response else {
        panic!("{response:?}")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while collector.progress.lock().unwrap().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.cancel().await.ok();
    let log = tokio::time::timeout(Duration::from_secs(10), log)
        .await
        .expect("fleet-mcp exits")
        .expect("joined");
    assert!(log.contains("DEBUG"), "the trace log was read: {log}");

    let progress = collector.progress.lock().unwrap().clone();
    assert!(progress.len() >= 3, "{progress:#?}");
    let messages: Vec<String> = progress
        .iter()
        .map(|p| p.message.clone().unwrap_or_default())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("snapshotting: token=<redacted> org=<redacted>")),
        "the server's words are kept, the tokens replaced: {messages:#?}"
    );
    let result_text = serde_json::to_string(&result).unwrap();
    assert!(result_text.contains("token=<redacted>"), "{result_text}");
    for text in messages.iter().chain([&result_text, &log]) {
        assert!(
            !text.contains("quoted") && !text.contains("slash-token") && !text.contains("1c9e0a"),
            "a token leaked: {text}"
        );
    }
}

/// The same over the streamable HTTP transport, read as raw bytes off the wire.
#[tokio::test]
async fn fleet_mcp_over_http_sends_no_token_in_any_message() {
    let server = echoing_migration().await;
    let mut mcp = fleet_mcp(&[])
        .molecule(&server.base_url(), QUOTED_TOKEN)
        .env("MOLECULE_ORG_API_KEY", "org-key-1c9e0a")
        .serve_http()
        .await;
    let (session, _) = mcp.initialize().await;
    let call = mcp
        .post(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "wait_for_workspace_migration",
                "arguments": {"workspace_id": "ws-1", "timeout_seconds": 30},
                "_meta": {"progressToken": "p-1"}}})
            .to_string(),
            Some(&session),
        )
        .send()
        .await
        .expect("tools/call");
    assert!(call.status().is_success(), "{call:?}");
    let wire = tokio::time::timeout(Duration::from_secs(20), call.text())
        .await
        .expect("the call ends")
        .expect("a body");
    assert!(
        wire.contains("notifications/progress")
            && wire.contains("snapshotting: token=<redacted> org=<redacted>"),
        "progress notifications keep the server's words, tokens replaced: {wire}"
    );
    assert!(wire.contains("\"id\":2"), "the answer came: {wire}");
    assert!(
        !wire.contains("quoted") && !wire.contains("slash-token") && !wire.contains("1c9e0a"),
        "a token leaked: {wire}"
    );
    let _ = mcp.child.kill().await;
}

/// On a terminal, the progress bar shows the server's words escaped too (indicatif draws them
/// itself; fleet hands it escaped text and a terminal that escapes whatever else it draws).
/// The terminal is a pseudo-terminal from Python's `pty` module.
#[tokio::test]
async fn the_progress_bar_on_a_terminal_shows_server_text_escaped() {
    let server = MockServer::start_async().await;
    let path = "/cp/admin/workspaces/ws-1/migrate-provider";
    let status = |terminal: bool| {
        let state = if terminal {
            "completed"
        } else {
            "provisioning_target"
        };
        json!({
            "migration": {"state": state, "from_provider": "aws",
                          "to_provider": "hetzner", "detail": format!("{HOSTILE} token={QUOTED_TOKEN}")},
            "terminal": terminal,
        })
    };
    server
        .mock_async(|when, then| {
            when.method(GET).path(path);
            then.status(200).json_body(status(false));
        })
        .await
        .up_to_n_times_async(4)
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(path);
            then.status(200).json_body(status(true));
        })
        .await;
    // The environment fleet gets elsewhere, handed to python3, which starts fleet on a pty.
    let mut cmd = Command::new("python3");
    cmd.env_clear();
    for (k, v) in molecule_fleet(&server, QUOTED_TOKEN, &[]).get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.env("FLEET_POLL_INTERVAL_MS", "150").args([
        "-c",
        "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))",
        env!("CARGO_BIN_EXE_fleet"),
        "molecule",
        "migration-status",
        "ws-1",
        "--wait",
    ]);
    let (code, screen, stderr) = output(cmd);
    assert_eq!(code, Some(0), "{screen}{stderr}");
    assert_shown_escaped("the progress bar", &screen);
    // indicatif moves the cursor with CSI sequences and returns with CR on its own; none of
    // the server's sequences reaches the terminal raw.
    for raw in [
        "\u{1b}]",
        "\u{1b}[2J",
        "\u{7}",
        "\u{202e}",
        "\u{2066}",
        "\u{9b}",
        "\u{7f}",
    ] {
        assert!(
            !screen.contains(raw),
            "raw {raw:?} reached the terminal: {screen:?}"
        );
    }
    assert!(
        !screen.contains("quoted") && screen.contains("token=<redacted>"),
        "{screen:?}"
    );
}

/// Server text that forges a line of fleet's own after a line break: `\n`, `\r\n`, and the
/// Unicode line and paragraph separators.
const FORGED: &str =
    "ok\nalice/dev restarted on version v9\r\nalice/dev: updated\u{2028}x\u{2029}y";

/// Asserts no line of `text` is one the server forged, and the break shows escaped.
fn assert_not_forged(what: &str, text: &str) {
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '|', '[']);
        assert!(
            !line.starts_with("alice/dev restarted") && !line.starts_with("alice/dev: updated"),
            "{what}: a server's line break started a line: {text}"
        );
    }
    assert!(
        !text.contains('\u{2028}') && !text.contains('\u{2029}'),
        "{what}: a raw line separator: {text:?}"
    );
    assert!(
        text.contains(
            r"ok\nalice/dev restarted on version v9\r\nalice/dev: updated\u{2028}x\u{2029}y"
        ),
        "{what}: the text, its breaks escaped: {text}"
    );
}

#[tokio::test]
async fn line_breaks_in_server_text_cannot_forge_a_line_of_fleets_own() {
    // A workspace name, a template name and version, a job error's log line.
    let server = MockServer::start_async().await;
    support::mock_preflight(&server).await;
    let mut ws = workspace(build(
        support::PREV_BUILD,
        7,
        "start",
        "running",
        "succeeded",
        V1,
        None,
    ));
    ws["name"] = json!(FORGED);
    ws["template_name"] = json!(FORGED);
    ws["latest_build"]["template_version_name"] = json!(FORGED);
    let dev = running_on(V1);
    for (path, body) in [
        (format!("/api/v2/workspaces/{WS}"), ws.clone()),
        (
            "/api/v2/workspaces".to_string(),
            json!({"workspaces": [ws.clone()], "count": 1}),
        ),
        ("/api/v2/users/alice/workspace/dev".to_string(), dev),
        (
            format!("/api/v2/templates/{}", support::TEMPLATE),
            support::template(),
        ),
        (
            format!("/api/v2/workspacebuilds/{}/parameters", support::PREV_BUILD),
            support::params(),
        ),
        (
            format!("/api/v2/workspacebuilds/{}", support::STOP_BUILD),
            build(
                support::STOP_BUILD,
                8,
                "stop",
                "failed",
                "failed",
                V1,
                Some("crashed"),
            ),
        ),
        (
            format!("/api/v2/workspacebuilds/{}/logs", support::STOP_BUILD),
            json!([{"output": FORGED}]),
        ),
    ] {
        server
            .mock_async(|when, then| {
                when.method(GET).path(path);
                then.status(200).json_body(body);
            })
            .await;
    }
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{WS}/builds"))
                .body_includes("\"stop\"");
            then.status(201).json_body(build(
                support::STOP_BUILD,
                8,
                "stop",
                "pending",
                "pending",
                V1,
                None,
            ));
        })
        .await;
    for args in [vec!["coder", "show", WS], vec!["coder", "list"]] {
        let (code, stdout, stderr) = output(coder_fleet(&server, &args));
        let what = args.join(" ");
        assert_eq!(code, Some(0), "{what}: {stderr}");
        assert_not_forged(&what, &stdout);
    }
    // A failed stop ends with the last lines of its log: each one line.
    let (code, stdout, stderr) = output(coder_fleet(
        &server,
        &[
            "coder",
            "update",
            "alice/dev",
            "--client-driven",
            "--no-logs",
            "--poll-initial",
            "5ms",
            "--poll-max",
            "20ms",
        ],
    ));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("crashed"), "{stderr}");
    assert_not_forged("a failed build's log tail", &stderr);

    // A migration's detail, followed line by line (stderr is not a terminal).
    let cp = MockServer::start_async().await;
    cp.mock_async(|when, then| {
        when.method(GET)
            .path("/cp/admin/workspaces/ws-1/migrate-provider");
        then.status(200).json_body(json!({
            "migration": {"state": "completed", "from_provider": "aws",
                          "to_provider": "hetzner", "detail": FORGED},
            "terminal": true,
        }));
    })
    .await;
    let (code, stdout, stderr) = output(molecule_fleet(
        &cp,
        QUOTED_TOKEN,
        &["molecule", "migration-status", "ws-1", "--wait"],
    ));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_not_forged("a migration followed", &format!("{stdout}{stderr}"));
}
