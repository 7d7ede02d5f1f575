//! The SDK's busy rule against httpmock (issue 25): a workspace someone else used recently,
//! with an AI task working, prebuilt or dormant is left alone with a typed reason and no POST;
//! the caller's own workspace in use is not busy (an AI task in it is); a stopped workspace
//! has nobody at work in it; a task's message from a server is escaped and bounded.

use httpmock::{Method::GET, Method::POST, MockServer};
use serde_json::{Value, json};

use crate::support::coder::*;
use fleet::coder::{BusyReason, BusyRules, UpdateOptions, WorkspaceRef};

const ME: &str = "66666666-6666-4666-8666-666666666666";
const BOB: &str = "99999999-9999-4999-8999-999999999999";

fn now_minus(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339()
}

/// Mocks the reads of an update of `ws` and a POST that must not be called; returns the POST's
/// mock and the `users/me` mock.
async fn serve(server: &MockServer, ws: Value) -> (httpmock::Mock<'_>, httpmock::Mock<'_>) {
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v2/workspaces/{WS}"));
            then.status(200).json_body(ws);
        })
        .await;
    let me = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v2/users/me");
            then.status(200).json_body(json!({
                "id": ME, "username": "alice", "email": "alice@example.com",
                "created_at": "2026-01-01T00:00:00Z"
            }));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v2/templates/{TEMPLATE}"));
            then.status(200).json_body(template());
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"));
            then.status(200).json_body(params());
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v2/buildinfo");
            then.status(200).json_body(json!({"version": "v2.35.0"}));
        })
        .await;
    mock_preflight(server).await;
    let post = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{WS}/builds"));
            then.status(500);
        })
        .await;
    (post, me)
}

fn ws_with(fields: Value) -> Value {
    let mut ws = running_on(V1);
    for (k, v) in fields.as_object().unwrap() {
        ws[k] = v.clone();
    }
    ws
}

async fn update(server: &MockServer, options: &UpdateOptions) -> fleet::Result<()> {
    let client = client(&server.base_url());
    // The SDK's one public way: start the operation, await its outcome.
    client
        .start_update(WorkspaceRef::parse(WS).unwrap(), None, options.clone())
        .outcome()
        .await
        .map(|_| ())
}

fn busy_of(e: &fleet::Error) -> BusyReason {
    match e.root() {
        fleet::Error::Busy { reason, .. } => reason.clone(),
        other => panic!("not a busy refusal: {other:?}"),
    }
}

#[tokio::test]
async fn each_reason_is_a_typed_refusal_with_no_post() {
    let cases = [
        (
            json!({"owner_id": BOB, "owner_name": "bob", "last_used_at": now_minus(120)}),
            "in_use",
            "in use (last used 2 min ago by bob)",
        ),
        (
            json!({"latest_app_status": {"state": "working", "message": "Refactoring the billing module"},
                   "task_id": "7d6c6f2e-8f2a-4a55-9e0b-0d7c1f1a2b3c"}),
            "task_working",
            "an AI task is working in it (\"Refactoring the billing module\")",
        ),
        (
            json!({"is_prebuild": true, "owner_name": "prebuilds"}),
            "prebuild",
            "a prebuilt workspace",
        ),
        (
            json!({"dormant_at": "2026-11-30T08:00:00Z"}),
            "dormant",
            "dormant since 2026-11-30 08:00 UTC",
        ),
    ];
    for (fields, kind, text) in cases {
        let server = MockServer::start_async().await;
        let (post, _) = serve(&server, ws_with(fields)).await;
        let e = update(&server, &fast_options()).await.expect_err(kind);
        let reason = busy_of(&e);
        assert_eq!(reason.kind(), kind);
        assert!(e.to_string().contains(text), "{kind}: {e}");
        assert!(e.nothing_changed(), "{kind}");
        assert_eq!(e.kind(), "skipped");
        assert!(!e.remedies().is_empty(), "{kind}: says what to give");
        post.assert_calls_async(0).await;
    }
}

#[tokio::test]
async fn your_own_workspace_in_use_is_not_busy_but_an_ai_task_in_it_is() {
    // Yours, used a second ago: the update goes on (to the POST, which answers 500 here).
    let server = MockServer::start_async().await;
    let (post, me) = serve(
        &server,
        ws_with(json!({"owner_id": ME, "last_used_at": now_minus(1)})),
    )
    .await;
    let e = update(&server, &fast_options())
        .await
        .expect_err("the POST fails");
    assert!(
        !matches!(e.root(), fleet::Error::Busy { .. }),
        "not busy: {e}"
    );
    assert!(post.calls_async().await >= 1, "the stop was sent");
    assert!(me.calls_async().await >= 1, "users/me was read");

    // Yours, with an AI task working: left alone.
    let server = MockServer::start_async().await;
    let (post, _) = serve(
        &server,
        ws_with(json!({"owner_id": ME, "last_used_at": now_minus(1),
                       "latest_app_status": {"state": "working", "message": "tests"}})),
    )
    .await;
    let e = update(&server, &fast_options()).await.expect_err("busy");
    assert_eq!(busy_of(&e).kind(), "task_working");
    post.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_stopped_workspace_has_nobody_at_work_and_old_use_is_idle() {
    for ws in [
        // Stopped, used a second ago by bob, a task's stale "working".
        workspace(build(
            PREV_BUILD,
            7,
            "stop",
            "stopped",
            "succeeded",
            V1,
            None,
        )),
        // Running, bob's last use 31 minutes ago.
        ws_with(json!({"owner_id": BOB, "last_used_at": now_minus(31 * 60)})),
    ] {
        let mut ws = ws;
        if ws["latest_build"]["status"] == "stopped" {
            ws["owner_id"] = json!(BOB);
            ws["last_used_at"] = json!(now_minus(1));
            ws["latest_app_status"] = json!({"state": "working", "message": "stale"});
        }
        let server = MockServer::start_async().await;
        let (post, me) = serve(&server, ws).await;
        let e = update(&server, &fast_options())
            .await
            .expect_err("the POST fails");
        assert!(!matches!(e.root(), fleet::Error::Busy { .. }), "{e}");
        assert!(post.calls_async().await >= 1);
        assert_eq!(me.calls_async().await, 0, "who you are did not matter");
    }
}

#[tokio::test]
async fn include_busy_and_a_short_idle_for_go_on_a_task_message_is_escaped_and_bounded() {
    let hostile = format!("line one\nline two\x1b[31m red{}", "x".repeat(5_000));
    let server = MockServer::start_async().await;
    let (post, _) = serve(
        &server,
        ws_with(json!({"latest_app_status": {"state": "working", "message": hostile}})),
    )
    .await;
    let e = update(&server, &fast_options()).await.expect_err("busy");
    let text = e.to_string();
    assert!(!text.contains('\n') && !text.contains('\x1b'), "{text:?}");
    assert!(text.contains("line one\\nline two"), "{text}");
    assert!(text.len() < 600, "bounded: {} bytes", text.len());
    post.assert_calls_async(0).await;

    let options = UpdateOptions {
        busy: BusyRules {
            include_busy: true,
            ..BusyRules::default()
        },
        ..fast_options()
    };
    update(&server, &options).await.expect_err("the POST fails");
    assert!(post.calls_async().await >= 1, "--include-busy goes on");

    // Someone else's use 2 minutes ago is idle under a 1-minute bound.
    let server = MockServer::start_async().await;
    let (post, _) = serve(
        &server,
        ws_with(json!({"owner_id": BOB, "owner_name": "bob", "last_used_at": now_minus(120)})),
    )
    .await;
    let options = UpdateOptions {
        busy: BusyRules {
            idle_for: std::time::Duration::from_secs(60),
            ..BusyRules::default()
        },
        ..fast_options()
    };
    update(&server, &options).await.expect_err("the POST fails");
    assert!(post.calls_async().await >= 1);
}
