//! SDK: update and restart on the server-side path against httpmock — the exact request
//! bodies (on_success present or absent, the version pinned or left out), the 403 fallback and
//! the fallback when Coder creates no start build.

use crate::support::coder as support;
use crate::support::handle::CoderViaHandle;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use fleet::coder::{
    CoderEvent, Fallback, RunPath, Step, UpdateAction, UpdateOptions, WorkspaceRef,
};
use httpmock::{Method::GET, Method::POST, Mock, MockServer};
use serde_json::{Value, json};
use support::*;
use tokio_util::sync::CancellationToken;

async fn get<'a>(server: &'a MockServer, path: &str, body: Value) -> Mock<'a> {
    let path = path.to_string();
    server
        .mock_async(move |when, then| {
            when.method(GET).path(path);
            then.status(200).json_body(body);
        })
        .await
}

async fn post_build<'a>(
    server: &'a MockServer,
    body: Value,
    status: u16,
    answer: Value,
) -> Mock<'a> {
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{WS}/builds"))
                .json_body(body);
            then.status(status).json_body(answer);
        })
        .await
}

/// Any build POST whose body includes `text` (to prove it was never sent).
async fn post_including<'a>(server: &'a MockServer, text: &str) -> Mock<'a> {
    let text = text.to_string();
    server
        .mock_async(move |when, then| {
            when.method(POST).body_includes(text);
            then.status(500)
                .json_body(json!({"message": "unexpected build"}));
        })
        .await
}

/// The reads every plan does: the workspace (running on `on`), template, parameters,
/// pre-flight, and the server's version.
async fn base(server: &MockServer, on: &str, coder_version: &str) {
    mock_preflight(server).await;
    get(server, "/api/v2/users/alice/workspace/dev", running_on(on)).await;
    get(server, &format!("/api/v2/templates/{TEMPLATE}"), template()).await;
    get(
        server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        params(),
    )
    .await;
    get(
        server,
        "/api/v2/buildinfo",
        json!({"version": coder_version, "external_url": "https://coder.example"}),
    )
    .await;
}

fn on_success_stop(version: Option<&str>) -> Value {
    let mut start = json!({"transition": "start", "rich_parameter_values": params()});
    if let Some(v) = version {
        start["template_version_id"] = json!(v);
    }
    json!({"transition": "stop", "on_success": start})
}

fn start_body(version: &str) -> Value {
    json!({"transition": "start", "template_version_id": version, "rich_parameter_values": params()})
}

type Events = Arc<Mutex<Vec<CoderEvent>>>;

fn recorder() -> (Events, impl FnMut(CoderEvent) + Send) {
    let events: Events = Arc::default();
    let e = events.clone();
    (events, move |ev| e.lock().unwrap().push(ev))
}

fn options() -> UpdateOptions {
    UpdateOptions {
        follow_up_bound: Duration::from_millis(150),
        ..fast_options()
    }
}

fn dev() -> WorkspaceRef {
    WorkspaceRef::parse("alice/dev").unwrap()
}

#[tokio::test]
async fn on_2_36_an_update_to_the_active_version_sends_one_stop_with_on_success_and_no_version() {
    let server = MockServer::start_async().await;
    base(&server, V1, "v2.36.0+abc1234").await;
    let stop = post_build(
        &server,
        on_success_stop(None),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    let no_start = post_including(&server, "\"transition\":\"start\"").await;
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
    )
    .await;
    // The child: the workspace's next latest build, number 10 (not 9).
    get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        workspace(build(
            START_BUILD,
            10,
            "start",
            "pending",
            "pending",
            V2,
            None,
        )),
    )
    .await;
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        build(START_BUILD, 10, "start", "running", "succeeded", V2, None),
    )
    .await;
    let (events, on_event) = recorder();
    let outcome = support::client(&server.base_url())
        .update_via_handle(
            &dev(),
            None,
            &options(),
            &CancellationToken::new(),
            on_event,
        )
        .await
        .expect("the update succeeds");
    stop.assert_calls_async(1).await;
    no_start.assert_calls_async(0).await;
    assert_eq!(outcome.action, UpdateAction::Updated);
    assert_eq!(outcome.path, RunPath::ServerSide);
    assert!(outcome.fallback.is_none());
    assert_eq!(outcome.template_version_id.to_string(), V2);
    assert_eq!(outcome.builds.len(), 2);
    let by_server: Vec<bool> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            CoderEvent::BuildCreated {
                step: Step::Start,
                by_server,
                ..
            } => Some(*by_server),
            _ => None,
        })
        .collect();
    assert_eq!(by_server, vec![true], "the start was created by the server");
}

#[tokio::test]
async fn a_restart_off_the_active_version_pins_it_and_a_403_falls_back_to_client_driven() {
    let server = MockServer::start_async().await;
    // Runs V1; V2 is active: a restart pins V1.
    base(&server, V1, "v2.37.2").await;
    let pinned = post_build(
        &server,
        on_success_stop(Some(V1)),
        403,
        json!({"message": "Unauthorized to queue follow-up workspace build."}),
    )
    .await;
    let plain_stop = post_build(
        &server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    let start = post_build(
        &server,
        start_body(V1),
        201,
        build(START_BUILD, 9, "start", "pending", "pending", V1, None),
    )
    .await;
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
    )
    .await;
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        build(START_BUILD, 9, "start", "running", "succeeded", V1, None),
    )
    .await;
    let (events, on_event) = recorder();
    let outcome = support::client(&server.base_url())
        .restart_via_handle(&dev(), &options(), &CancellationToken::new(), on_event)
        .await
        .expect("the restart succeeds client-driven");
    pinned.assert_calls_async(1).await;
    plain_stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
    assert_eq!(outcome.action, UpdateAction::Restarted);
    assert_eq!(outcome.path, RunPath::ClientDriven);
    match &outcome.fallback {
        Some(Fallback::PinRefused { message }) => {
            assert!(
                message.contains("Unauthorized to queue follow-up"),
                "{message}"
            )
        }
        other => panic!("expected a pin refusal, got {other:?}"),
    }
    assert_eq!(outcome.template_version_id.to_string(), V1);
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, CoderEvent::FellBack { .. }))
    );
}

#[tokio::test]
async fn no_start_build_within_the_bound_and_fleet_starts_it_itself_and_says_why() {
    let server = MockServer::start_async().await;
    base(&server, V1, "v2.36.0").await;
    post_build(
        &server,
        on_success_stop(None),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    let stopped = build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None);
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        stopped.clone(),
    )
    .await;
    // The server never creates the child: the stop stays the latest build.
    let looks = get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        workspace(stopped),
    )
    .await;
    let start = post_build(
        &server,
        start_body(V2),
        201,
        build(START_BUILD, 9, "start", "pending", "pending", V2, None),
    )
    .await;
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        build(START_BUILD, 9, "start", "running", "succeeded", V2, None),
    )
    .await;
    let outcome = support::client(&server.base_url())
        .update_via_handle(&dev(), None, &options(), &CancellationToken::new(), |_| {})
        .await
        .expect("fleet starts it itself");
    start.assert_calls_async(1).await;
    assert!(looks.calls_async().await >= 2, "fleet looked for the child");
    assert_eq!(outcome.path, RunPath::ClientDriven);
    match outcome.fallback {
        Some(Fallback::NoFollowUp { waited_ms }) => assert!(waited_ms >= 150, "{waited_ms}"),
        other => panic!("expected no follow-up, got {other:?}"),
    }
    assert_eq!(outcome.workspace.status.unwrap().to_string(), "running");
}

#[tokio::test]
async fn an_older_server_gets_a_plain_stop_and_no_on_success() {
    for (version, why) in [
        ("v2.35.9+abc", "older than v2.36.0"),
        ("v2.36.0-rc.1+abc", "older than v2.36.0"),
    ] {
        let server = MockServer::start_async().await;
        let with_on_success = post_including(&server, "on_success").await;
        base(&server, V1, version).await;
        let stop = post_build(
            &server,
            json!({"transition": "stop"}),
            201,
            build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
        )
        .await;
        let start = post_build(
            &server,
            start_body(V2),
            201,
            build(START_BUILD, 9, "start", "pending", "pending", V2, None),
        )
        .await;
        get(
            &server,
            &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
            build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
        )
        .await;
        get(
            &server,
            &format!("/api/v2/workspacebuilds/{START_BUILD}"),
            build(START_BUILD, 9, "start", "running", "succeeded", V2, None),
        )
        .await;
        let outcome = support::client(&server.base_url())
            .update_via_handle(&dev(), None, &options(), &CancellationToken::new(), |_| {})
            .await
            .expect("the update succeeds");
        with_on_success.assert_calls_async(0).await;
        stop.assert_calls_async(1).await;
        start.assert_calls_async(1).await;
        assert_eq!(outcome.path, RunPath::ClientDriven, "{version}");
        assert!(outcome.path_reason.contains(why), "{}", outcome.path_reason);
    }
}
