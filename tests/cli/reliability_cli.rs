//! The built `fleet` with every token set to a distinct marker: no command or error path, at
//! `--log-level trace`, ever prints a marker. Tokens from files work; a token given as a flag
//! works and warns. Ctrl-C during each kind of wait exits 130, says what was left behind and
//! never cancels the remote operation.

use crate::support::coder;
use crate::support::reliability as support;

use std::time::{Duration, Instant};

use httpmock::{
    Method::{GET, POST},
    MockServer,
};
use serde_json::json;
use support::*;

fn env_for(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MOLECULE_CP_URL", base.to_string()),
        ("CP_ADMIN_API_TOKEN", CP_MARKER.to_string()),
        ("MOLECULE_API_URL", base.to_string()),
        ("MOLECULE_ORG_API_KEY", ORG_MARKER.to_string()),
        ("CODER_URL", base.to_string()),
        ("CODER_SESSION_TOKEN", CODER_MARKER.to_string()),
    ]
}

/// Every command, with arguments that pass validation.
fn commands() -> Vec<Vec<&'static str>> {
    let fast = [
        "--poll-initial",
        "5ms",
        "--poll-max",
        "20ms",
        "--stop-timeout",
        "5s",
        "--start-timeout",
        "5s",
    ];
    let mut update = vec!["coder", "update", "alice/dev"];
    update.extend(fast);
    let mut restart = vec!["coder", "restart", "alice/dev"];
    restart.extend(fast);
    vec![
        vec![
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
        ],
        vec![
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "hetzner",
            "--confirm",
            "--wait",
            "--timeout",
            "1s",
        ],
        vec!["molecule", "migration-status", "ws-1"],
        vec![
            "molecule",
            "migration-status",
            "ws-1",
            "--wait",
            "--timeout",
            "1s",
        ],
        update,
        restart,
        vec!["coder", "show", "alice/dev"],
        vec!["coder", "list"],
        vec!["coder", "list", "--outdated"],
        vec!["coder", "template-version", coder::V2],
    ]
}

/// Runs `args` at trace level, in text and JSON, and checks no marker is printed.
fn check_no_leak(what: &str, args: &[&str], env: &[(&str, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut last = None;
    for format in ["text", "json"] {
        let mut all = vec!["--log-level", "trace", "-o", format];
        all.extend(args);
        let run = run_fleet(&all, &env);
        assert_eq!(
            run.leaks(),
            None,
            "{what}: {args:?} -o {format} printed a token: {}",
            run.show()
        );
        assert!(!run.stderr.contains("panicked"), "{what}: {}", run.show());
        last = Some(run);
    }
    last.expect("ran")
}

/// A mock server answering every path a command uses with success.
async fn happy_server() -> MockServer {
    use coder::*;
    let server = MockServer::start_async().await;
    let s = &server;
    let get = |path: String, body: serde_json::Value| async move {
        s.mock_async(move |when, then| {
            when.method(GET).path(path);
            then.status(200).json_body(body);
        })
        .await;
    };
    get(
        "/workspaces/ws-1".into(),
        json!({"id": "ws-1", "compute": {"provider": "aws"}}),
    )
    .await;
    get(
        "/cp/admin/workspaces/ws-1/migrate-provider".into(),
        json!({"migration": {"state": "completed", "from_provider": "aws", "to_provider": "hetzner", "detail": "done"}, "terminal": true}),
    )
    .await;
    get(
        "/cp/admin/workspaces/ws-1/migration-status".into(),
        json!({"migration": {"state": "completed", "from_provider": "aws", "to_provider": "hetzner", "detail": "done"}, "terminal": true}),
    )
    .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/cp/admin/workspaces/ws-1/migrate-provider");
            then.status(202).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"}));
        })
        .await;
    get("/api/v2/users/alice/workspace/dev".into(), running_on(V1)).await;
    get(format!("/api/v2/workspaces/{WS}"), running_on(V1)).await;
    get(
        "/api/v2/workspaces".into(),
        json!({"workspaces": [running_on(V1)], "count": 1}),
    )
    .await;
    get(format!("/api/v2/templates/{TEMPLATE}"), template()).await;
    get(
        format!("/api/v2/templateversions/{V2}"),
        json!({"id": V2, "name": "v2", "template_id": TEMPLATE, "job": {"status": "succeeded"}}),
    )
    .await;
    get(
        format!("/api/v2/templateversions/{V1}"),
        json!({"id": V1, "name": "v1", "template_id": TEMPLATE, "job": {"status": "succeeded"}}),
    )
    .await;
    get(
        format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        params(),
    )
    .await;
    get(
        format!("/api/v2/templateversions/{V2}/rich-parameters"),
        json!([]),
    )
    .await;
    get(
        format!("/api/v2/templateversions/{V1}/rich-parameters"),
        json!([]),
    )
    .await;
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{WS}/builds"))
                .json_body_includes(r#"{"transition":"stop"}"#);
            then.status(201)
                .json_body(build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{WS}/builds"))
                .json_body_includes(r#"{"transition":"start"}"#);
            then.status(201).json_body(build(
                START_BUILD,
                9,
                "start",
                "pending",
                "pending",
                V2,
                None,
            ));
        })
        .await;
    get(
        format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
    )
    .await;
    get(
        format!("/api/v2/workspacebuilds/{START_BUILD}"),
        build(START_BUILD, 9, "start", "running", "succeeded", V2, None),
    )
    .await;
    server
}

/// A server whose every answer is `status` with a body that echoes the tokens it was sent
/// (`tokens`: those of the control plane it plays).
async fn echo_server(status: u16, json_body: bool, tokens: &[&str]) -> MockServer {
    let server = MockServer::start_async().await;
    let text = format!("you sent {}; Bearer {}", tokens.join(" and "), tokens[0]);
    server
        .mock_async(move |_when, then| {
            let then = then.status(status);
            if json_body {
                then.json_body(json!({"message": text, "error": text, "detail": text, "validations": [{"field": text, "detail": text}]}));
            } else {
                then.body(text);
            }
        })
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_ever_printed_on_success() {
    let server = happy_server().await;
    let env = env_for(&server.base_url());
    let mut ok = 0;
    for args in commands() {
        let run = check_no_leak("success", &args, &env);
        assert_eq!(
            run.code,
            0,
            "{args:?} succeeds against the mock: {}",
            run.show()
        );
        ok += 1;
    }
    // The request log at trace level names requests but no header value.
    eprintln!("success paths checked: {ok} commands × 2 formats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_ever_printed_on_errors_that_echo_it() {
    for (status, json_body) in [
        (401, true),
        (401, false),
        (403, true),
        (500, true),
        (500, false),
        (400, true),
        (409, true),
        (404, false),
    ] {
        let molecule = echo_server(status, json_body, &[CP_MARKER, ORG_MARKER]).await;
        let coder = echo_server(status, json_body, &[CODER_MARKER]).await;
        let mut env = env_for(&molecule.base_url());
        env.retain(|(k, _)| *k != "CODER_URL");
        env.push(("CODER_URL", coder.base_url()));
        for args in commands() {
            let run = check_no_leak(&format!("HTTP {status}"), &args, &env);
            // (404 on a migration status is an answer: never migrated, exit 0.)
            if status != 404 {
                assert_ne!(
                    run.code,
                    0,
                    "{args:?} against HTTP {status}: {}",
                    run.show()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_ever_printed_on_transport_errors_invalid_input_or_missing_config() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    let env = env_for(&base);
    // Each command retries its reads against the closed port for seconds: run them side by
    // side (each check is its own process), the assertions are per command as before.
    std::thread::scope(|scope| {
        for args in commands() {
            let env = &env;
            scope.spawn(move || {
                let run = check_no_leak("transport error", &args, env);
                // A failed read is exit 1; a wait that never sees a state ends at its
                // deadline: 3. (A migrate that must look up its source fails before it
                // starts: 1.)
                let expected: &[i32] = if args.contains(&"--wait") {
                    &[1, 3]
                } else {
                    &[1]
                };
                assert!(
                    expected.contains(&run.code),
                    "{args:?} with nothing listening: {}",
                    run.show()
                );
            });
        }
    });
    // Invalid input.
    for args in [
        vec![
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "aws",
            "--from",
            "aws",
            "--confirm",
        ],
        vec!["coder", "template-version", "nope"],
        vec!["coder", "show", "a b"],
        vec!["-o", "yaml", "coder", "list"],
    ] {
        let run = check_no_leak("invalid input", &args, &env);
        assert_eq!(run.code, 2, "{}", run.show());
    }
    // Not configured: only tokens, no URLs (Coder), or URLs that are refused.
    let tokens_only: Vec<(&str, String)> = env
        .iter()
        .filter(|(k, _)| !k.ends_with("_URL"))
        .cloned()
        .collect();
    for args in [vec!["coder", "list"], vec!["coder", "show", "dev"]] {
        let run = check_no_leak("not configured", &args, &tokens_only);
        assert_eq!(run.code, 2, "{}", run.show());
    }
    let mut insecure = env.clone();
    insecure.retain(|(k, _)| !k.ends_with("_URL"));
    insecure.push(("MOLECULE_CP_URL", "http://cp.example.com".into()));
    insecure.push(("CODER_URL", "http://coder.example.com".into()));
    for args in commands() {
        let run = check_no_leak("insecure URL", &args, &insecure);
        assert_eq!(run.code, 2, "{}", run.show());
    }
}

#[test]
fn no_token_ever_printed_by_help_version_completions_or_sim() {
    let env = env_for("https://cp.example.com");
    for args in [
        vec!["--help"],
        vec!["--version"],
        vec!["molecule", "--help"],
        vec!["molecule", "migrate-provider", "--help"],
        vec!["molecule", "migration-status", "--help"],
        vec!["coder", "--help"],
        vec!["coder", "update", "--help"],
        vec!["coder", "restart", "--help"],
        vec!["coder", "show", "--help"],
        vec!["coder", "list", "--help"],
        vec!["coder", "template-version", "--help"],
        vec!["sim", "--help"],
        vec!["completions", "bash"],
    ] {
        let run = check_no_leak("help", &args, &env);
        assert_eq!(run.code, 0, "{args:?}: {}", run.show());
    }
    // --sim ignores the configured tokens and never shows them.
    for args in [
        vec!["--sim", "--sim-speed", "600", "coder", "list"],
        vec!["--sim", "--sim-speed", "600", "coder", "show", "alice/dev"],
        vec![
            "--sim",
            "--sim-speed",
            "600",
            "molecule",
            "migration-status",
            "ws-1",
        ],
    ] {
        let run = check_no_leak("--sim", &args, &env);
        // ws-1 is not a simulated workspace: exit 2, not found (issue 27; was 0).
        assert!(matches!(run.code, 0..=2), "{args:?}: {}", run.show());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_files_work_and_flags_warn() {
    let server = MockServer::start_async().await;
    let cp = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-1/migrate-provider")
                .header("authorization", format!("Bearer {CP_MARKER}"));
            then.status(404)
                .json_body(json!({"error": "never migrated"}));
        })
        .await;
    let cp_alias = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-1/migration-status")
                .header("authorization", format!("Bearer {CP_MARKER}"));
            then.status(404)
                .json_body(json!({"error": "never migrated"}));
        })
        .await;
    let tenant = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/workspaces/ws-1")
                .header("authorization", format!("Bearer {ORG_MARKER}"));
            then.status(200)
                .json_body(json!({"compute": {"provider": "aws"}}));
        })
        .await;
    let migrate = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/cp/admin/workspaces/ws-1/migrate-provider")
                .header("authorization", format!("Bearer {CP_MARKER}"))
                .json_body_includes(r#"{"from":"aws"}"#);
            then.status(202).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "gcp"}));
        })
        .await;
    let coder_list = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v2/workspaces")
                .header("coder-session-token", CODER_MARKER);
            then.status(200)
                .json_body(json!({"workspaces": [], "count": 0}));
        })
        .await;
    let base = server.base_url();
    let cp_file = token_file(&format!("{CP_MARKER}\n"));
    let org_file = token_file(&format!("  {ORG_MARKER}  \n"));
    let coder_file = token_file(CODER_MARKER);
    let urls = [
        ("MOLECULE_CP_URL", base.as_str()),
        ("MOLECULE_API_URL", base.as_str()),
        ("CODER_URL", base.as_str()),
    ];

    // From files: no warning.
    let p = |f: &tempfile::NamedTempFile| f.path().to_str().unwrap().to_string();
    let (cpf, orgf, coderf) = (p(&cp_file), p(&org_file), p(&coder_file));
    let run = run_fleet(
        &[
            "--log-level",
            "trace",
            "--cp-admin-token-file",
            &cpf,
            "--molecule-org-api-key-file",
            &orgf,
            "molecule",
            "migrate-provider",
            "ws-1",
            "--to",
            "gcp",
            "--confirm",
        ],
        &urls,
    );
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(!run.stderr.contains("warning"), "{}", run.show());
    assert_eq!(run.leaks(), None);
    let run = run_fleet(
        &[
            "--log-level",
            "trace",
            "--coder-session-token-file",
            &coderf,
            "coder",
            "list",
        ],
        &urls,
    );
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(!run.stderr.contains("warning"), "{}", run.show());
    assert_eq!(run.leaks(), None);
    let run = run_fleet(
        &[
            "--cp-admin-token-file",
            &cpf,
            "molecule",
            "migration-status",
            "ws-1",
        ],
        &urls,
    );
    assert_eq!(run.code, 0, "never migrated is an answer: {}", run.show());

    // From the environment: no warning either.
    let mut env = urls.to_vec();
    env.push(("CODER_SESSION_TOKEN", CODER_MARKER));
    let run = run_fleet(&["coder", "list"], &env);
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(!run.stderr.contains("warning"), "{}", run.show());

    // As flags: it works, and warns (without echoing the token).
    for (args, flag) in [
        (
            vec!["--coder-session-token", CODER_MARKER, "coder", "list"],
            "--coder-session-token",
        ),
        (
            vec![
                "--cp-admin-token",
                CP_MARKER,
                "molecule",
                "migration-status",
                "ws-1",
            ],
            "--cp-admin-token",
        ),
        (
            vec![
                "--cp-admin-token",
                CP_MARKER,
                "--molecule-org-api-key",
                ORG_MARKER,
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "gcp",
                "--confirm",
            ],
            "--molecule-org-api-key",
        ),
    ] {
        let run = run_fleet(&args, &urls);
        assert_eq!(run.code, 0, "{}", run.show());
        assert!(
            run.stderr.lines().any(|l| l.starts_with("warning:")
                && l.contains(flag)
                && l.contains("visible to other users")),
            "{flag} warns: {}",
            run.show()
        );
        assert_eq!(run.leaks(), None, "{}", run.show());
    }
    assert_eq!(migrate.calls_async().await, 2);
    assert_eq!(tenant.calls_async().await, 2);
    // Two requests per `coder list` (issue 27): the list, and the count of every owner's.
    assert_eq!(coder_list.calls_async().await, 6);
    // Two status reads, plus the pre-flight status read before each of the two migrations.
    assert_eq!(cp.calls_async().await + cp_alias.calls_async().await, 4);
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C during each kind of wait
// ---------------------------------------------------------------------------------------------

/// Starts `fleet`, waits until `ready` says the wait is under way, sends SIGINT `presses` times
/// (300 ms apart), returns the run.
async fn interrupt_when(
    args: &[&str],
    env: &[(&str, &str)],
    presses: u32,
    ready: impl AsyncFn() -> bool,
) -> Run {
    let child = fleet_cmd(args, env).spawn().expect("fleet starts");
    let began = Instant::now();
    while !ready().await {
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "the wait never began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..presses {
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_migration_wait_exits_130_and_leaves_it_running() {
    let server = MockServer::start_async().await;
    let post = server
        .mock_async(|when, then| {
            when.method(POST).path("/cp/admin/workspaces/ws-1/migrate-provider");
            then.status(202).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"}));
        })
        .await;
    // The pre-flight read before the POST finds no migration running (once); then the one
    // fleet started is seen in progress.
    let preflight = server
        .mock_async(|when, then| {
            when.method(GET).path_includes("/cp/admin/workspaces/ws-1/");
            then.status(404)
                .json_body(json!({"error": "never migrated"}));
        })
        .await;
    preflight.up_to_n_times_async(1).await;
    let status = server
        .mock_async(|when, then| {
            when.method(GET).path_includes("/cp/admin/workspaces/ws-1/");
            then.status(200).json_body(json!({"migration": {"state": "provisioning_target", "from_provider": "aws", "to_provider": "hetzner", "detail": "booting"}, "terminal": false}));
        })
        .await;
    let other = server
        .mock_async(|_when, then| {
            then.status(500).json_body(json!({"error": "unexpected"}));
        })
        .await;
    let base = server.base_url();
    let env = [
        ("MOLECULE_CP_URL", base.as_str()),
        ("CP_ADMIN_API_TOKEN", CP_MARKER),
    ];
    // Started by fleet, then followed.
    let run = interrupt_when(
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
        ],
        &env,
        1,
        async || status.calls_async().await >= 2,
    )
    .await;
    assert_eq!(run.code, 130, "{}", run.show());
    assert!(
        run.stderr.contains("provisioning_target"),
        "the state left behind: {}",
        run.show()
    );
    assert_eq!(
        post.calls_async().await,
        1,
        "the migration was started exactly once"
    );
    // Only followed.
    let before = status.calls_async().await;
    let run = interrupt_when(
        &[
            "molecule",
            "migration-status",
            "ws-1",
            "--wait",
            "-o",
            "json",
        ],
        &env,
        1,
        async || status.calls_async().await >= before + 2,
    )
    .await;
    assert_eq!(run.code, 130, "{}", run.show());
    let v: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{}", run.show()));
    assert_eq!(v["error"]["kind"], "interrupted", "{}", run.show());
    assert!(run.stdout.contains("provisioning_target"), "{}", run.show());
    assert!(run.stderr.contains("provisioning_target"), "{}", run.show());
    assert_eq!(post.calls_async().await, 1, "no other POST");
    assert_eq!(
        other.calls_async().await,
        0,
        "nothing else (no cancel) was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_coder_stop_and_start_waits_exits_130_and_cancels_nothing() {
    use coder::*;
    for stuck_in_stop in [true, false] {
        let server = MockServer::start_async().await;
        let s = &server;
        let get = |path: String, body: serde_json::Value| async move {
            s.mock_async(move |when, then| {
                when.method(GET).path(path);
                then.status(200).json_body(body);
            })
            .await
        };
        get("/api/v2/users/alice/workspace/dev".into(), running_on(V1)).await;
        // A server older than on_success: the client-driven stop → start, which fleet ends.
        get(
            "/api/v2/buildinfo".into(),
            json!({"version": "v2.35.0+abc"}),
        )
        .await;
        get(format!("/api/v2/templates/{TEMPLATE}"), template()).await;
        get(format!("/api/v2/templateversions/{V2}"), json!({"id": V2, "name": "v2", "template_id": TEMPLATE, "job": {"status": "succeeded"}})).await;
        get(
            format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
            params(),
        )
        .await;
        get(
            format!("/api/v2/templateversions/{V2}/rich-parameters"),
            json!([]),
        )
        .await;
        let stop_post = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path(format!("/api/v2/workspaces/{WS}/builds"))
                    .json_body_includes(r#"{"transition":"stop"}"#);
                then.status(201)
                    .json_body(build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None));
            })
            .await;
        let start_post = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path(format!("/api/v2/workspaces/{WS}/builds"))
                    .json_body_includes(r#"{"transition":"start"}"#);
                then.status(201).json_body(build(
                    START_BUILD,
                    9,
                    "start",
                    "pending",
                    "pending",
                    V2,
                    None,
                ));
            })
            .await;
        let stop_status = if stuck_in_stop {
            build(STOP_BUILD, 8, "stop", "stopping", "running", V1, None)
        } else {
            build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None)
        };
        let stop_get = get(format!("/api/v2/workspacebuilds/{STOP_BUILD}"), stop_status).await;
        let start_get = get(
            format!("/api/v2/workspacebuilds/{START_BUILD}"),
            build(START_BUILD, 9, "start", "starting", "running", V2, None),
        )
        .await;
        // The live log stream (a WebSocket httpmock cannot serve): refused, so fleet polls.
        let logs = server
            .mock_async(|when, then| {
                when.method(GET).path_includes("/logs");
                then.status(404)
                    .json_body(json!({"message": "no WebSocket here"}));
            })
            .await;
        // Registered last: counts anything else (a cancel, a stray POST).
        let other = server
            .mock_async(|_when, then| {
                then.status(500).json_body(json!({"message": "unexpected"}));
            })
            .await;
        let watched = if stuck_in_stop { &stop_get } else { &start_get };
        let base = server.base_url();
        let env = [
            ("CODER_URL", base.as_str()),
            ("CODER_SESSION_TOKEN", CODER_MARKER),
        ];
        let run = interrupt_when(
            &[
                "coder",
                "update",
                "alice/dev",
                "--poll-initial",
                "5ms",
                "--poll-max",
                "20ms",
            ],
            &env,
            // The first Ctrl-C finishes the stop→start under way (here one that never ends);
            // the second leaves it as it is.
            2,
            async || watched.calls_async().await >= 2,
        )
        .await;
        let which = if stuck_in_stop { "stop" } else { "start" };
        assert_eq!(run.code, 130, "{which}: {}", run.show());
        assert_eq!(run.leaks(), None);
        let expect_state = if stuck_in_stop {
            "stopping"
        } else {
            "starting"
        };
        assert!(
            run.stderr.contains(expect_state),
            "{which}: the state left behind: {}",
            run.show()
        );
        assert_eq!(stop_post.calls_async().await, 1, "{which}: one stop");
        assert_eq!(
            start_post.calls_async().await,
            if stuck_in_stop { 0 } else { 1 },
            "{which}: starts"
        );
        assert_eq!(
            other.calls_async().await,
            0,
            "{which}: nothing cancelled, nothing else sent"
        );
        assert!(
            logs.calls_async().await >= 1,
            "{which}: the log stream was tried"
        );
    }
}
