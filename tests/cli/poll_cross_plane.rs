//! One poller for both planes: a status read that fails with the same HTTP status is treated
//! the same way while `fleet` waits for a Molecule migration and for a Coder build — read
//! again (transport, 429, 500, 502, 503, 504) or the end of the wait (anything else). Through
//! the built binary against httpmock.

use crate::support::coder as support;

use crate::support::cli::{Run, fleet};
use httpmock::{
    Method::{GET, POST},
    Mock, MockServer,
};
use serde_json::{Value, json};
use support::*;

const CP_TOKEN: &str = "poll-cross-plane-cp-token";

/// `run`, once no token has leaked into its output.
fn no_token_leaked(run: Run) -> Run {
    for t in [CP_TOKEN, TOKEN] {
        assert!(
            !run.stdout.contains(t) && !run.stderr.contains(t),
            "a token leaked"
        );
    }
    run
}

/// `failures` answers of `status` to GET `path`, then `ok`.
async fn failing_then<'a>(
    server: &'a MockServer,
    path: &str,
    status: u16,
    failures: usize,
    ok: Value,
) -> (Mock<'a>, Mock<'a>) {
    let p = path.to_string();
    let failing = server
        .mock_async(move |when, then| {
            when.method(GET).path(p);
            then.status(status)
                .json_body(json!({"error": "status read failed", "message": "status read failed"}));
        })
        .await;
    failing.up_to_n_times_async(failures).await;
    let p = path.to_string();
    let answer = server
        .mock_async(move |when, then| {
            when.method(GET).path(p);
            then.status(200).json_body(ok);
        })
        .await;
    (failing, answer)
}

/// Follows a migration whose status reads first fail with `status`: (exit code, reads).
async fn molecule_wait(status: u16, failures: usize) -> (i32, usize, Run) {
    let server = MockServer::start_async().await;
    let (failing, answer) = failing_then(
        &server,
        "/cp/admin/workspaces/ws-1/migrate-provider",
        status,
        failures,
        json!({"migration": {"state": "completed", "from_provider": "aws", "to_provider": "hetzner"}, "terminal": true}),
    )
    .await;
    let env = [
        ("MOLECULE_CP_URL", server.base_url()),
        ("MOLECULE_CP_ADMIN_PREFIX", "/cp/admin".to_string()),
        ("CP_ADMIN_API_TOKEN", CP_TOKEN.to_string()),
    ];
    let run = no_token_leaked(
        fleet(&[
            "molecule",
            "migration-status",
            "ws-1",
            "--wait",
            "--timeout",
            "60s",
        ])
        .vars(&env)
        .run(),
    );
    let reads = failing.calls_async().await + answer.calls_async().await;
    (run.code, reads, run)
}

/// Updates alice/dev while the stop build's status reads first fail with `status`.
async fn coder_wait(status: u16, failures: usize) -> (i32, usize, Run) {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    for (path, body) in [
        (
            "/api/v2/users/alice/workspace/dev".to_string(),
            running_on(V1),
        ),
        (format!("/api/v2/templates/{TEMPLATE}"), template()),
        (
            format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
            params(),
        ),
        (
            format!("/api/v2/workspaces/{WS}"),
            workspace(build(
                STOP_BUILD,
                8,
                "stop",
                "stopped",
                "succeeded",
                V1,
                None,
            )),
        ),
        (
            format!("/api/v2/workspacebuilds/{START_BUILD}"),
            build(START_BUILD, 9, "start", "running", "succeeded", V2, None),
        ),
    ] {
        server
            .mock_async(move |when, then| {
                when.method(GET).path(path);
                then.status(200).json_body(body);
            })
            .await;
    }
    for (transition, answer) in [
        (
            "stop",
            build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
        ),
        (
            "start",
            build(START_BUILD, 9, "start", "pending", "pending", V2, None),
        ),
    ] {
        server
            .mock_async(move |when, then| {
                when.method(POST)
                    .path(format!("/api/v2/workspaces/{WS}/builds"))
                    .json_body_includes(json!({"transition": transition}).to_string());
                then.status(201).json_body(answer);
            })
            .await;
    }
    let (failing, answer) = failing_then(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        status,
        failures,
        build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
    )
    .await;
    let env = [
        ("CODER_URL", server.base_url()),
        ("CODER_SESSION_TOKEN", TOKEN.to_string()),
    ];
    let run = no_token_leaked(fleet(&["coder", "update", "alice/dev"]).vars(&env).run());
    let reads = failing.calls_async().await + answer.calls_async().await;
    (run.code, reads, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_planes_read_again_after_the_same_transient_statuses() {
    // 500 is not retried by the HTTP layer, so the poller itself reads again; 503 is retried
    // there first (the failures are absorbed below the poller on both planes alike).
    for status in [500, 503] {
        let (m_code, m_reads, m) = molecule_wait(status, 2).await;
        let (c_code, c_reads, c) = coder_wait(status, 2).await;
        assert_eq!(m_code, 0, "molecule, {status}: {}\n{}", m.stdout, m.stderr);
        assert_eq!(c_code, 0, "coder, {status}: {}\n{}", c.stdout, c.stderr);
        assert_eq!(
            m_reads, 3,
            "molecule, {status}: two failures, then the answer"
        );
        assert_eq!(c_reads, 3, "coder, {status}: two failures, then the answer");
        assert!(
            m.stdout.contains("completed"),
            "molecule, {status}: {}",
            m.stdout
        );
        assert!(
            c.stdout.contains("updated"),
            "coder, {status}: {}",
            c.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_planes_end_the_wait_at_once_on_the_same_other_statuses() {
    for status in [400, 422] {
        let (m_code, m_reads, m) = molecule_wait(status, 5).await;
        let (c_code, c_reads, c) = coder_wait(status, 5).await;
        assert_eq!(m_code, 1, "molecule, {status}: {}", m.stderr);
        assert_eq!(c_code, 1, "coder, {status}: {}", c.stderr);
        assert_eq!(m_reads, 1, "molecule, {status}: not read again");
        assert_eq!(c_reads, 1, "coder, {status}: not read again");
        assert!(
            m.stderr.contains("status read failed"),
            "molecule, {status}: the server's words: {}",
            m.stderr
        );
        assert!(
            c.stderr.contains("status read failed"),
            "coder, {status}: the server's words: {}",
            c.stderr
        );
    }
}
