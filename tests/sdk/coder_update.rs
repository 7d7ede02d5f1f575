//! SDK: the update and restart sequences against httpmock (order, bodies, errors, deadlines).

use crate::support::coder as support;
use crate::support::handle::CoderViaHandle;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fleet::{
    Error,
    coder::{CoderEvent, Step, UpdateAction, WorkspaceRef},
};
use httpmock::{Method::GET, Method::POST, Mock, MockServer};
use serde_json::{Value, json};
use support::*;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type Events = Arc<Mutex<Vec<CoderEvent>>>;

fn recorder() -> (Events, impl FnMut(CoderEvent) + Send) {
    let events: Events = Arc::default();
    let e = events.clone();
    (events, move |ev| e.lock().unwrap().push(ev))
}

fn kinds(events: &Events) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            CoderEvent::Planned { .. } => "planned".to_string(),
            CoderEvent::WaitingForBuildInProgress { .. } => "waiting_in_progress".into(),
            CoderEvent::WaitingForIdle { .. } => "waiting_for_idle".into(),
            CoderEvent::Conflict { step, .. } => format!("conflict:{step}"),
            CoderEvent::UpToDate { .. } => "up_to_date".into(),
            CoderEvent::BuildCreated { step, .. } => format!("created:{step}"),
            CoderEvent::BuildFoundAfterError { step, .. } => format!("found:{step}"),
            CoderEvent::BuildStatus { step, status, .. } => {
                format!(
                    "status:{step}:{}",
                    status.as_ref().map(|s| s.to_string()).unwrap_or_default()
                )
            }
            CoderEvent::BuildSucceeded { step, .. } => format!("done:{step}"),
            CoderEvent::Readiness(_) => "readiness".into(),
            CoderEvent::FellBack { .. } => "fell_back".into(),
            CoderEvent::BuildLog { .. } => "log".into(),
            CoderEvent::LogsUnavailable { .. } => "logs_unavailable".into(),
            CoderEvent::QueuedForBuild { .. } => "queued".into(),
            CoderEvent::LogLinesDropped { .. } => "dropped".into(),
        })
        .collect()
}

/// The error says, as a fact, that alice/dev is left stopped and an update to V2 finishes it.
fn assert_left_stopped_to_v2(err: &Error) {
    match err.aftermath() {
        Some(fleet::operation::Aftermath::LeftStopped {
            finish:
                fleet::operation::FinishStep::Update {
                    workspace,
                    template_version_id,
                    ..
                },
        }) => {
            assert_eq!(workspace, "alice/dev");
            assert_eq!(template_version_id.to_string(), V2);
        }
        other => panic!("expected left stopped with an update to finish it, got {other:?}: {err}"),
    }
}

fn alice_dev() -> WorkspaceRef {
    WorkspaceRef::parse("alice/dev").unwrap()
}

/// The standard stop → stopped → start → running answers.
async fn stop_and_start<'a>(server: &'a MockServer, version: &str) -> (Mock<'a>, Mock<'a>) {
    let stop = mock_stop_created(server).await;
    mock_get_seq(
        server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        vec![
            stop_build("stopping", "running"),
            stop_build("stopped", "succeeded"),
        ],
    )
    .await;
    let start = mock_post_build(
        server,
        start_body(version),
        201,
        start_build(version, "pending", "pending"),
    )
    .await;
    mock_get_seq(
        server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        vec![
            start_build(version, "starting", "running"),
            start_build(version, "running", "succeeded"),
        ],
    )
    .await;
    (stop, start)
}

#[tokio::test]
async fn update_stops_waits_then_starts_on_the_active_version_with_the_previous_parameters() {
    let server = MockServer::start_async().await;
    let DevReads {
        template: tmpl,
        parameters: prm,
        ..
    } = mock_dev_reads(&server, running_on(V1)).await;
    let (stop, start) = stop_and_start(&server, V2).await;

    let (events, on_event) = recorder();
    let out = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            on_event,
        )
        .await
        .expect("update succeeds");

    assert_eq!(out.action, UpdateAction::Updated);
    assert_eq!(out.previous_version_id, Some(Uuid::parse_str(V1).unwrap()));
    assert_eq!(out.template_version_id, Uuid::parse_str(V2).unwrap());
    assert_eq!(out.builds.len(), 2);
    assert_eq!(out.workspace.outdated, Some(false));
    assert_eq!(
        out.workspace
            .status
            .as_ref()
            .map(|s| s.to_string())
            .as_deref(),
        Some("running")
    );
    // The exact order: stop, wait until stopped, then start, wait until running.
    assert_eq!(
        kinds(&events),
        vec![
            "planned",
            "created:stop",
            "status:stop:stopping",
            "status:stop:stopped",
            "done:stop",
            "created:start",
            "status:start:starting",
            "status:start:running",
            "done:start",
        ]
    );
    match &events.lock().unwrap()[0] {
        CoderEvent::Planned {
            target_is_active_version,
            parameters_carried,
            ..
        } => {
            assert!(*target_is_active_version);
            assert_eq!(*parameters_carried, 2);
        }
        other => panic!("first event {other:?}"),
    }
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
    tmpl.assert_calls_async(1).await;
    prm.assert_calls_async(1).await;
}

#[tokio::test]
async fn update_to_an_explicit_version_does_not_read_the_template() {
    let server = MockServer::start_async().await;
    // Already on the active version V2; the explicit target V1 is a downgrade.
    let DevReads { template: tmpl, .. } = mock_dev_reads(&server, running_on(V2)).await;
    // stop_and_start answers builds of V1 for the stop; the start must carry V1.
    let (stop, start) = stop_and_start(&server, V1).await;

    let out = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            Some(Uuid::parse_str(V1).unwrap()),
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect("update succeeds");
    assert_eq!(out.template_version_id.to_string(), V1);
    assert_eq!(out.action, UpdateAction::Updated);
    tmpl.assert_calls_async(0).await;
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn already_running_the_target_does_nothing_unless_forced() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V2)).await;
    let any_stop = mock_any_post(&server, "stop").await;
    let any_start = mock_any_post(&server, "start").await;

    let (events, on_event) = recorder();
    let out = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            on_event,
        )
        .await
        .expect("nothing to do is a success");
    assert_eq!(out.action, UpdateAction::UpToDate);
    assert!(out.message.contains("nothing to do"), "{}", out.message);
    assert!(out.builds.is_empty());
    assert_eq!(kinds(&events), vec!["planned", "up_to_date"]);
    any_stop.assert_calls_async(0).await;
    any_start.assert_calls_async(0).await;

    // --force: the same workspace is stopped and started.
    any_stop.delete_async().await;
    any_start.delete_async().await;
    let (stop, start) = stop_and_start(&server, V2).await;
    let mut options = fast_options();
    options.force = true;
    let out = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &options,
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect("forced update succeeds");
    assert_eq!(out.action, UpdateAction::Updated);
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_build_in_progress_is_waited_for_first() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    // Someone else's start build is still running when fleet arrives.
    let busy = workspace(build(
        OTHER_BUILD,
        7,
        "start",
        "starting",
        "running",
        V1,
        None,
    ));
    mock_get(&server, "/api/v2/users/alice/workspace/dev", 200, busy).await;
    let other = mock_get_seq(
        &server,
        &format!("/api/v2/workspacebuilds/{OTHER_BUILD}"),
        vec![
            build(OTHER_BUILD, 7, "start", "starting", "running", V1, None),
            build(OTHER_BUILD, 7, "start", "running", "succeeded", V1, None),
        ],
    )
    .await;
    let reread = mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        workspace(build(
            OTHER_BUILD,
            7,
            "start",
            "running",
            "succeeded",
            V1,
            None,
        )),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/templates/{TEMPLATE}"),
        200,
        template(),
    )
    .await;
    // The parameters come from the build that just ended.
    let prm = mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{OTHER_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
    let (stop, start) = stop_and_start(&server, V2).await;

    let (events, on_event) = recorder();
    client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            on_event,
        )
        .await
        .expect("update succeeds");
    let k = kinds(&events);
    assert_eq!(k[0], "waiting_in_progress");
    let planned = k.iter().position(|e| e == "planned").unwrap();
    let created_stop = k.iter().position(|e| e == "created:stop").unwrap();
    assert!(
        k[..planned].contains(&"done:build in progress".to_string()),
        "{k:?}"
    );
    assert!(planned < created_stop);
    assert_eq!(other[1].calls_async().await, 1);
    reread.assert_calls_async(1).await;
    prm.assert_calls_async(1).await;
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_failed_stop_is_never_followed_by_a_start() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let stop = mock_stop_created(&server).await;
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
            Some("terraform destroy: volume is busy"),
        ),
    )
    .await;
    let logs = mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}/logs"),
        200,
        json!([
            {"id": 1, "log_level": "info", "stage": "Stopping", "output": "docker_container.ws: Destroying..."},
            {"id": 2, "log_level": "error", "stage": "Stopping", "output": "Error: volume dev-home is in use"}
        ]),
    )
    .await;
    let any_start = mock_any_post(&server, "start").await;

    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("the stop failed");
    let Error::OperationFailed {
        message,
        final_state,
    } = err.root()
    else {
        panic!("{err:?}")
    };
    assert_eq!(final_state.as_deref(), Some("failed"));
    assert!(
        message.contains("terraform destroy: volume is busy"),
        "{message}"
    );
    assert!(
        message.contains("Error: volume dev-home is in use"),
        "{message}"
    );
    assert!(message.contains("NOT started"), "{message}");
    stop.assert_calls_async(1).await;
    logs.assert_calls_async(1).await;
    any_start.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_failed_start_reports_the_job_error_and_the_last_log_lines() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    mock_stop_created(&server).await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        stop_build("stopped", "succeeded"),
    )
    .await;
    let start = mock_post_build(
        &server,
        start_body(V2),
        201,
        start_build(V2, "pending", "pending"),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        200,
        build(
            START_BUILD,
            9,
            "start",
            "failed",
            "failed",
            V2,
            Some("image ghcr.io/acme/dev:2 not found"),
        ),
    )
    .await;
    let lines: Vec<Value> = (1..=30)
        .map(|i| json!({"id": i, "output": format!("log line {i:02}")}))
        .collect();
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}/logs"),
        200,
        Value::Array(lines),
    )
    .await;

    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("the start failed");
    let Error::OperationFailed { message, .. } = err.root() else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("the start build #9 of alice/dev ended failed"),
        "{message}"
    );
    assert!(
        message.contains("image ghcr.io/acme/dev:2 not found"),
        "{message}"
    );
    assert!(
        message.contains("log line 30") && message.contains("log line 11"),
        "{message}"
    );
    assert!(
        !message.contains("log line 10"),
        "only the last 20 lines: {message}"
    );
    assert_left_stopped_to_v2(&err);
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_409_on_the_stop_waits_for_the_active_build_then_goes_on() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let refused = mock_post_build(
        &server,
        stop_body(),
        409,
        json!({"message": "A workspace build is already active."}),
    )
    .await;
    refused.up_to_n_times_async(1).await;
    // Someone else's stop build is active; it ends stopped, so fleet goes straight to the start.
    mock_get_seq(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        vec![
            workspace(build(
                OTHER_BUILD,
                8,
                "stop",
                "stopping",
                "running",
                V1,
                None,
            )),
            workspace(build(
                OTHER_BUILD,
                8,
                "stop",
                "stopped",
                "succeeded",
                V1,
                None,
            )),
        ],
    )
    .await;
    mock_get_seq(
        &server,
        &format!("/api/v2/workspacebuilds/{OTHER_BUILD}"),
        vec![build(
            OTHER_BUILD,
            8,
            "stop",
            "stopped",
            "succeeded",
            V1,
            None,
        )],
    )
    .await;
    let (stop, start) = stop_and_start(&server, V2).await;

    let (events, on_event) = recorder();
    let out = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            on_event,
        )
        .await
        .expect("update succeeds after waiting out the conflict");
    assert_eq!(
        out.builds.len(),
        1,
        "only fleet's start build: {:?}",
        out.builds
    );
    assert!(kinds(&events).contains(&"conflict:stop".to_string()));
    refused.assert_calls_async(1).await;
    stop.assert_calls_async(0).await; // the 409 answered the one stop fleet sent
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_409_with_no_active_build_is_reported_and_nothing_is_started() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let refused = mock_post_build(
        &server,
        stop_body(),
        409,
        json!({"message": "A workspace build is already active."}),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        running_on(V1),
    )
    .await;
    let any_start = mock_any_post(&server, "start").await;

    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("conflict");
    let Error::Conflict {
        message,
        current_state,
    } = err.root()
    else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("A workspace build is already active"),
        "{message}"
    );
    assert!(message.contains("Nothing was changed"), "{message}");
    assert_eq!(current_state.as_deref(), Some("running"));
    refused.assert_calls_async(1).await; // a POST is never retried blindly
    any_start.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_build_in_progress_that_outlasts_the_deadline_is_still_running_and_nothing_is_sent() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    // Someone else's start build is still running when fleet arrives, and stays so.
    let starting = build(OTHER_BUILD, 7, "start", "starting", "running", V1, None);
    mock_get(
        &server,
        "/api/v2/users/alice/workspace/dev",
        200,
        workspace(starting.clone()),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{OTHER_BUILD}"),
        200,
        starting,
    )
    .await;
    let any_stop = mock_any_post(&server, "stop").await;
    let any_start = mock_any_post(&server, "start").await;
    let mut options = fast_options();
    options.stop_timeout = Duration::from_millis(200);
    options.start_timeout = Duration::from_millis(300);

    let began = Instant::now();
    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &options,
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("deadline");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    let Error::Timeout {
        message,
        last_state,
        ..
    } = err.root()
    else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with("a start build already in progress on alice/dev did not end within "),
        "{message}"
    );
    assert!(
        message.ends_with("; nothing was changed by fleet. Try again once it has ended"),
        "{message}"
    );
    assert_eq!(last_state.as_deref(), Some("starting"));
    // The build is someone else's and goes on: follow the workspace.
    assert_eq!(
        err.aftermath(),
        Some(&fleet::operation::Aftermath::StillRunning {
            follow: fleet::operation::FollowStep::CoderWorkspace {
                workspace: "alice/dev".into()
            }
        })
    );
    any_stop.assert_calls_async(0).await;
    any_start.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_409_whose_active_build_outlasts_the_deadline_says_nothing_was_changed() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let refused = mock_post_build(
        &server,
        stop_body(),
        409,
        json!({"message": "A workspace build is already active."}),
    )
    .await;
    // Someone else's stop build is active and does not end within the stop timeout.
    let stopping = build(OTHER_BUILD, 8, "stop", "stopping", "running", V1, None);
    mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        workspace(stopping.clone()),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{OTHER_BUILD}"),
        200,
        stopping,
    )
    .await;
    let any_start = mock_any_post(&server, "start").await;
    let mut options = fast_options();
    options.stop_timeout = Duration::from_millis(300);

    let (events, on_event) = recorder();
    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &options,
            &CancellationToken::new(),
            on_event,
        )
        .await
        .expect_err("deadline");
    let Error::Timeout {
        message,
        last_state,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with(
            "another build of alice/dev that blocked the stop build did not end within "
        ),
        "{message}"
    );
    assert!(
        message.ends_with(". Nothing was changed by fleet."),
        "{message}"
    );
    assert_eq!(last_state.as_deref(), Some("stopping"));
    assert!(kinds(&events).contains(&"conflict:stop".to_string()));
    refused.assert_calls_async(1).await; // a POST is never retried blindly
    any_start.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_400_with_validations_on_the_start_says_the_workspace_is_left_stopped() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    mock_stop_created(&server).await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        stop_build("stopped", "succeeded"),
    )
    .await;
    let start = mock_post_build(
        &server,
        start_body(V2),
        400,
        json!({"message": "Invalid build parameters.", "validations": [{"field": "cpu", "detail": "value 4 is above the maximum 2"}]}),
    )
    .await;

    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("refused");
    let Error::Api {
        status,
        message,
        validations,
    } = err.root()
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 400);
    assert_eq!(validations.len(), 1);
    assert_eq!(validations[0].field, "cpu");
    assert!(
        message.contains("value 4 is above the maximum 2"),
        "{message}"
    );
    assert!(message.contains("left stopped"), "{message}");
    assert_left_stopped_to_v2(&err);
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn an_unknown_name_is_not_found_and_nothing_is_sent() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        "/api/v2/users/me/workspace/nope",
        404,
        json!({"message": "Resource not found or you do not have access to this resource"}),
    )
    .await;
    let search = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v2/workspaces")
                .query_param("q", "owner:me name:nope");
            then.status(200)
                .json_body(json!({"workspaces": [], "count": 0}));
        })
        .await;
    let any = server
        .mock_async(|when, then| {
            when.method(POST);
            then.status(500);
        })
        .await;
    let err = client(&server.base_url())
        .update_via_handle(
            &WorkspaceRef::parse("nope").unwrap(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("not found");
    // Issue 27: the one answer for "no such workspace" on both planes (was NotFound, which
    // did not say that nothing was changed).
    let Error::UnknownWorkspace { message, .. } = err.root() else {
        panic!("{err:?}")
    };
    assert!(message.contains("no workspace nope"), "{message}");
    assert_eq!(err.kind(), "not_found");
    assert!(err.nothing_changed());
    // The SDK says what to read as a fact; the faces name their command or tool.
    assert!(!message.contains("fleet coder"), "{message}");
    assert_eq!(
        err.remedies(),
        [fleet::Remedy::Look {
            at: fleet::Look::Workspaces
        }]
    );
    search.assert_calls_async(1).await;
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn names_match_ignoring_case() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        "/api/v2/users/alice/workspace/DEV",
        404,
        json!({"message": "not found"}),
    )
    .await;
    let mut devbox = running_on(V1);
    devbox["name"] = json!("devbox");
    devbox["id"] = json!("77777777-7777-4777-8777-777777777777");
    let search = server
        .mock_async(move |when, then| {
            when.method(GET)
                .path("/api/v2/workspaces")
                .query_param("q", "owner:alice name:DEV");
            then.status(200)
                .json_body(json!({"workspaces": [devbox, running_on(V1)], "count": 2}));
        })
        .await;
    let ws = client(&server.base_url())
        .show_workspace(&WorkspaceRef::parse("alice/DEV").unwrap())
        .await
        .expect("found ignoring case");
    assert_eq!(ws.full_name, "alice/dev");
    assert_eq!(ws.id.unwrap().to_string(), WS);
    search.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_deadline_between_stop_and_start_says_left_stopped_and_how_to_finish() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    mock_stop_created(&server).await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        stop_build("stopping", "running"),
    )
    .await;
    let any_start = mock_any_post(&server, "start").await;
    let mut options = fast_options();
    options.stop_timeout = Duration::from_millis(300);

    let began = Instant::now();
    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &options,
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("deadline");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    let Error::Timeout {
        message,
        last_state,
        ..
    } = err.root()
    else {
        panic!("{err:?}")
    };
    assert_eq!(last_state.as_deref(), Some("stopping"));
    assert!(message.contains("left stopped"), "{message}");
    assert_left_stopped_to_v2(&err);
    any_start.assert_calls_async(0).await;
}

#[tokio::test]
async fn interrupted_after_the_stop_says_left_stopped_and_how_to_finish() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    mock_stop_created(&server).await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        stop_build("stopping", "running"),
    )
    .await;
    let any_start = mock_any_post(&server, "start").await;
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let err = client(&server.base_url())
        .update_via_handle(&alice_dev(), None, &fast_options(), &cancel, move |e| {
            if matches!(
                e,
                CoderEvent::BuildCreated {
                    step: Step::Stop,
                    ..
                }
            ) {
                c.cancel();
            }
        })
        .await
        .expect_err("interrupted");
    let Error::Interrupted { message, .. } = err.root() else {
        panic!("{err:?}")
    };
    assert!(message.contains("left stopped"), "{message}");
    assert_left_stopped_to_v2(&err);
    any_start.assert_calls_async(0).await;
}

#[tokio::test]
async fn restart_stops_then_starts_on_the_same_version() {
    let server = MockServer::start_async().await;
    let DevReads { template: tmpl, .. } = mock_dev_reads(&server, running_on(V1)).await;
    let (stop, start) = stop_and_start(&server, V1).await;
    let out = client(&server.base_url())
        .restart_via_handle(
            &alice_dev(),
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect("restart succeeds");
    assert_eq!(out.action, UpdateAction::Restarted);
    assert_eq!(out.template_version_id.to_string(), V1);
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
    tmpl.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_stopped_workspace_is_only_started() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    let stopped = workspace(build(
        PREV_BUILD,
        7,
        "stop",
        "stopped",
        "succeeded",
        V1,
        None,
    ));
    mock_get(&server, "/api/v2/users/me/workspace/dev", 200, stopped).await;
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
    let (stop, start) = stop_and_start(&server, V2).await;
    let out = client(&server.base_url())
        .update_via_handle(
            &WorkspaceRef::parse("dev").unwrap(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect("started");
    assert_eq!(out.action, UpdateAction::Started);
    stop.assert_calls_async(0).await;
    start.assert_calls_async(1).await;
}

/// With the default polling (first check 100 ms after creation, backing off to 2 s), builds
/// that end quickly are noticed well under a second after they end.
#[tokio::test]
async fn completion_is_noticed_quickly_with_default_polling() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    stop_and_start(&server, V2).await;
    let began = Instant::now();
    client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fleet::coder::UpdateOptions::default(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect("update succeeds");
    let took = began.elapsed();
    // Two polls per build at 100 ms and 150 ms: about 0.5 s in all.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[test]
fn workspace_references_parse_before_anything_is_sent() {
    assert_eq!(
        WorkspaceRef::parse(WS).unwrap(),
        WorkspaceRef::Id(Uuid::parse_str(WS).unwrap())
    );
    assert_eq!(
        WorkspaceRef::parse("alice/dev").unwrap(),
        WorkspaceRef::OwnerName {
            owner: "alice".into(),
            name: "dev".into()
        }
    );
    assert_eq!(
        WorkspaceRef::parse("dev").unwrap(),
        WorkspaceRef::OwnerName {
            owner: "me".into(),
            name: "dev".into()
        }
    );
    for bad in ["", "a/b/c", "/dev", "alice/", "dev box", "alice/dev?x=1"] {
        assert!(
            matches!(WorkspaceRef::parse(bad), Err(Error::InvalidInput(_))),
            "{bad:?}"
        );
    }
    // The error carries what to read for a valid ID (a remedy); its kind is invalid input.
    let e = fleet::coder::parse_template_version_id("v2").unwrap_err();
    assert!(matches!(e.root(), Error::InvalidInput(_)), "{e:?}");
    assert!(!e.remedies().is_empty(), "{e:?}");
}

// ---- a build POST with an ambiguous answer: read again, never POST twice (issue 11 item 4) ----

#[tokio::test]
async fn a_stop_post_answered_500_whose_build_exists_is_followed_and_the_update_goes_on() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let stop = mock_post_build(
        &server,
        stop_body(),
        500,
        json!({"message": "Internal error creating workspace build."}),
    )
    .await;
    // The read after the failed POST: Coder did create the stop build.
    let reread = mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        workspace(stop_build("stopping", "running")),
    )
    .await;
    mock_build_seq(
        &server,
        STOP_BUILD,
        vec![stop_build("stopped", "succeeded")],
    )
    .await;
    let start = mock_post_build(
        &server,
        start_body(V2),
        201,
        start_build(V2, "pending", "pending"),
    )
    .await;
    mock_build_seq(
        &server,
        START_BUILD,
        vec![start_build(V2, "running", "succeeded")],
    )
    .await;

    let (events, on_event) = recorder();
    let out = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            on_event,
        )
        .await
        .expect("the update goes on with the stop build Coder created");
    assert_eq!(out.action, UpdateAction::Updated);
    let k = kinds(&events);
    assert!(k.contains(&"found:stop".to_string()), "{k:?}");
    assert!(k.contains(&"done:start".to_string()), "{k:?}");
    stop.assert_calls_async(1).await;
    reread.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_stop_post_answered_500_without_a_build_says_nothing_was_changed() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let stop = mock_post_build(
        &server,
        stop_body(),
        500,
        json!({"message": "database is down"}),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        running_on(V1),
    )
    .await;
    let any_start = mock_any_post(&server, "start").await;
    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("the stop was not created");
    let Error::Api {
        status, message, ..
    } = err.root()
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 500);
    assert!(message.contains("database is down"), "{message}");
    assert!(message.contains("no stop build was created"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    stop.assert_calls_async(1).await;
    any_start.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_start_post_answered_500_whose_build_exists_is_followed_not_called_left_stopped() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    mock_stop_created(&server).await;
    mock_build_seq(
        &server,
        STOP_BUILD,
        vec![stop_build("stopped", "succeeded")],
    )
    .await;
    let start = mock_post_build(
        &server,
        start_body(V2),
        500,
        json!({"message": "Internal error."}),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        workspace(start_build(V2, "starting", "running")),
    )
    .await;
    mock_build_seq(
        &server,
        START_BUILD,
        vec![
            start_build(V2, "starting", "running"),
            start_build(V2, "running", "succeeded"),
        ],
    )
    .await;
    let (events, on_event) = recorder();
    let out = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            on_event,
        )
        .await
        .expect("the start build Coder created is followed to its end");
    assert_eq!(out.action, UpdateAction::Updated);
    assert!(kinds(&events).contains(&"found:start".to_string()));
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_start_post_answered_503_without_a_build_says_left_stopped_and_how_to_finish() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    mock_stop_created(&server).await;
    mock_build_seq(
        &server,
        STOP_BUILD,
        vec![stop_build("stopped", "succeeded")],
    )
    .await;
    let start = mock_post_build(
        &server,
        start_body(V2),
        503,
        json!({"message": "provisioners are down"}),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        workspace(stop_build("stopped", "succeeded")),
    )
    .await;
    let err = client(&server.base_url())
        .update_via_handle(
            &alice_dev(),
            None,
            &fast_options(),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("left stopped");
    let message = err.to_string();
    assert!(message.contains("provisioners are down"), "{message}");
    assert!(message.contains("left stopped"), "{message}");
    start.assert_calls_async(1).await;
}

// ---- operations: graceful cancel finishes the stop→start, abort leaves it -------------------

#[tokio::test]
async fn a_graceful_cancel_during_the_stop_still_starts_the_workspace() {
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let (stop, start) = stop_and_start(&server, V2).await;
    let op = client(&server.base_url()).start_update(alice_dev(), None, fast_options());
    let mut events = op.events();
    // Cancel as soon as the stop build exists.
    loop {
        match events.recv().await.expect("events") {
            CoderEvent::BuildCreated {
                step: Step::Stop, ..
            } => break,
            _ => continue,
        }
    }
    op.cancel();
    assert_eq!(
        op.snapshot().state,
        fleet::operation::OperationState::Cancelling
    );
    let out = op
        .outcome()
        .await
        .expect("the stop is followed by its start");
    assert_eq!(out.action, UpdateAction::Updated);
    assert_eq!(
        out.workspace
            .status
            .as_ref()
            .map(|s| s.to_string())
            .as_deref(),
        Some("running")
    );
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
    let snapshot = op.snapshot();
    assert!(snapshot.done);
    assert_eq!(snapshot.workspaces[0].verdict.as_deref(), Some("updated"));
}

#[tokio::test]
async fn a_graceful_cancel_before_the_stop_changes_nothing_and_an_abort_leaves_it_stopped() {
    // Graceful, before anything was sent: nothing is stopped.
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let any_stop = mock_any_post(&server, "stop").await;
    let op = client(&server.base_url()).start_update(alice_dev(), None, fast_options());
    op.cancel();
    let err = op.outcome().await.expect_err("cancelled");
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    assert!(
        err.to_string().contains("before anything was changed"),
        "{err}"
    );
    any_stop.assert_calls_async(0).await;

    // Abort during a stop that never ends: left as it is, and said so.
    let server = MockServer::start_async().await;
    mock_dev_reads(&server, running_on(V1)).await;
    let stop = mock_stop_created(&server).await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        stop_build("stopping", "running"),
    )
    .await;
    let any_start = mock_any_post(&server, "start").await;
    let op = client(&server.base_url()).start_update(alice_dev(), None, fast_options());
    let mut events = op.events();
    while !matches!(
        events.recv().await.expect("events"),
        CoderEvent::BuildCreated {
            step: Step::Stop,
            ..
        }
    ) {}
    op.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!op.is_done(), "a graceful cancel waits for the stop to end");
    op.abort();
    let err = op.outcome().await.expect_err("aborted");
    assert!(err.to_string().contains("left stopped"), "{err}");
    assert_eq!(
        op.snapshot().state,
        fleet::operation::OperationState::Aborted
    );
    stop.assert_calls_async(1).await;
    any_start.assert_calls_async(0).await;
}

// ---- an operation's events are bounded in bytes ---------------------------------------------

/// A stand-in event: a 4 KiB log line, or a step.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Line(u32),
    Step(u32),
    Dropped(u64),
}

impl fleet::operation::OperationEvent for Ev {
    fn describe(&self) -> String {
        match self {
            // As long as the longest line fleet keeps.
            Ev::Line(i) => format!("{i:05}{}", "x".repeat(fleet::coder::LOG_LINE_MAX_BYTES)),
            Ev::Step(i) => format!("step {i}"),
            Ev::Dropped(n) => format!("{n} dropped"),
        }
    }
    fn apply(&self, _: &mut Vec<fleet::operation::TargetStatus>) {}
    fn is_log_line(&self) -> bool {
        matches!(self, Ev::Line(_))
    }
    fn dropped(count: u64) -> Option<Self> {
        Some(Ev::Dropped(count))
    }
}

#[derive(Debug, Clone)]
struct Done;

impl fleet::operation::OperationOutput for Done {}

#[tokio::test]
async fn a_reader_that_falls_behind_loses_the_oldest_log_lines_is_told_how_many_and_keeps_the_steps()
 {
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let op = fleet::operation::Operation::<Ev, Done>::spawn(
        fleet::operation::OperationKind::Restart,
        vec!["alice/dev".into()],
        |_control, sink| async move {
            sink.emit(Ev::Step(1));
            for i in 0..10_000 {
                sink.emit(Ev::Line(i));
            }
            sink.emit(Ev::Step(2));
            let _ = wait.await;
            Ok(Done)
        },
    );
    // The first reader reads from the start, but only once 40 MB of lines were sent.
    let mut events = op.events();
    let began = Instant::now();
    while op.snapshot().events < 10_002 && began.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut seen = Vec::new();
    loop {
        match events.try_recv() {
            Ok(e) => seen.push(e),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                seen.push(Ev::Dropped(n))
            }
            Err(_) => break,
        }
    }
    let lines = seen.iter().filter(|e| matches!(e, Ev::Line(_))).count() as u64;
    let dropped: u64 = seen
        .iter()
        .map(|e| if let Ev::Dropped(n) = e { *n } else { 0 })
        .sum();
    assert_eq!(seen.first(), Some(&Ev::Step(1)), "steps are kept");
    assert_eq!(seen.last(), Some(&Ev::Step(2)), "the newest event is kept");
    assert_eq!(
        lines + dropped,
        10_000,
        "every line is given or counted as dropped"
    );
    // 256 KiB held at most: about 60 of the 4 KiB lines, the newest.
    assert!((16..=64).contains(&lines), "{lines} lines held");
    assert!(seen.contains(&Ev::Line(9_999)));
    let _ = go.send(());
    op.outcome().await.expect("it ends");
    // The end: the reader is told the stream is over.
    assert!(matches!(
        events.recv().await,
        Err(tokio::sync::broadcast::error::RecvError::Closed)
    ));
}

/// One filter for both faces (the CLI's `coder list`, the MCP server's `list_agents`): each
/// field narrows the same way, the scope is said the same way, and a value Coder's search
/// cannot carry is refused before anything is sent.
#[tokio::test]
async fn one_workspace_filter_narrows_the_listing_and_refuses_what_search_cannot_carry() {
    let server = MockServer::start_async().await;
    let ws = |name: &str, template: &str, outdated: bool| {
        json!({"id": Uuid::new_v4(), "name": name, "owner_name": "alice",
               "template_name": template, "outdated": outdated})
    };
    let search = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v2/workspaces").query_param(
                "q",
                "owner:me template:Docker status:running name:DE outdated:true",
            );
            // A server that ignored part of the query: fleet keeps the meaning itself.
            then.status(200).json_body(json!({"workspaces": [
                ws("dev", "docker", true),
                ws("desk", "docker", false),
                ws("dev-gpu", "gpu", true),
                ws("web", "docker", true),
            ], "count": 4}));
        })
        .await;
    let all_owners = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v2/workspaces")
                .query_param("q", "template:Docker status:running name:DE outdated:true");
            then.status(200)
                .json_body(json!({"workspaces": [], "count": 9}));
        })
        .await;
    let filter = fleet::coder::WorkspaceFilter {
        owner: Some("me".into()),
        template: Some("Docker".into()),
        outdated: Some(true),
        status: Some("running".into()),
        name_prefix: Some("DE".into()),
    };
    let c = client(&server.base_url());
    let list = c.list_workspaces_in(&filter).await.expect("listed");
    let names: Vec<&str> = list
        .workspaces
        .iter()
        .filter_map(|w| w.name.as_deref())
        .collect();
    assert_eq!(names, ["dev"], "{list:?}");
    let scope = list.scope.expect("a scope");
    assert_eq!(scope.owner.as_deref(), Some("me"));
    assert_eq!(scope.all_owners_count, Some(9));
    assert!(scope.outdated_only);
    search.assert_calls_async(1).await;
    all_owners.assert_calls_async(1).await;

    let any = server
        .mock_async(|_, then| {
            then.status(500);
        })
        .await;
    for bad in ["bob smith", "a:b", "x\"y", "", "  "] {
        for filter in [
            fleet::coder::WorkspaceFilter {
                owner: Some(bad.into()),
                ..Default::default()
            },
            fleet::coder::WorkspaceFilter {
                name_prefix: Some(bad.into()),
                ..Default::default()
            },
        ] {
            let err = c.list_workspaces_matching(&filter).await.expect_err(bad);
            assert!(
                matches!(err.root(), Error::InvalidInput(_)),
                "{bad:?}: {err:?}"
            );
            assert!(err.to_string().contains("nothing was sent"), "{err}");
        }
    }
    search.assert_calls_async(1).await;
    all_owners.assert_calls_async(1).await;
    any.assert_calls_async(0).await;
}
