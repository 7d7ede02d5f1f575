//! Server-side restart (`on_success`, Coder ≥ 2.36) and the server's version, through the SDK
//! against the simulator (both versions) and httpmock (the exact request bodies).

use std::time::{Duration, Instant};

use crate::support::sim::coder_client;
use crate::support::sim::{sim, sim_with};
use fleet::{
    coder::{
        CoderClient, FollowUp, ServerFeatures, ServerSideStart, ServerSideStop, UpdateOptions,
        UpdatePlan, WatchOptions, WorkspaceRef, WorkspaceStatus, WorkspaceTransition,
        build_request, is_follow_up_of, types,
    },
    sim::SimOptions,
};
use httpmock::prelude::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn plan(c: &CoderClient, name: &str, version: Option<Uuid>, restart: bool) -> UpdatePlan {
    let op = c.start_plan_update(
        WorkspaceRef::parse(name).expect("a reference"),
        version.map(Into::into),
        restart,
        UpdateOptions::default(),
    );
    crate::support::handle::drive(&op, &CancellationToken::new(), |_| {})
        .await
        .expect("a plan")
}

async fn read(c: &CoderClient, id: &Uuid) -> types::Workspace {
    c.api()
        .get_workspace_metadata_by_id(id)
        .await
        .expect("the workspace reads")
        .into_inner()
}

fn latest(ws: &types::Workspace) -> types::WorkspaceBuild {
    ws.latest_build.clone().expect("a latest build")
}

fn ended(ws: &types::Workspace) -> bool {
    latest(ws)
        .status
        .is_some_and(|s| !s.is_active() && !s.is_unknown())
}

/// Waits (by push, falling back to polls) until the workspace's latest build is `id` and ended.
async fn wait_build_end(c: &CoderClient, ws: &Uuid, build: Option<Uuid>) -> types::Workspace {
    let end = c
        .wait_for_workspace(
            ws,
            |w| latest(w).id == build && ended(w),
            &WatchOptions::default(),
            Instant::now() + Duration::from_secs(20),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect("the wait reads");
    *end.workspace.expect("the build ended in time")
}

#[tokio::test]
async fn buildinfo_tells_whether_on_success_is_honoured() {
    let new = sim(100.0).await;
    let f = coder_client(&new)
        .server_features()
        .await
        .expect("buildinfo");
    assert_eq!(f.version_text, fleet::sim::DEFAULT_CODER_VERSION);
    assert!(f.on_success, "{f:?}");
    let old = sim_with(SimOptions {
        coder_version: "v2.35.0".into(),
        ..SimOptions::default()
    })
    .await;
    let f = coder_client(&old)
        .server_features()
        .await
        .expect("buildinfo");
    assert!(!f.on_success);
    assert!(f.on_success_reason.contains("older than v2.36.0"), "{f:?}");
    // buildinfo is public: read without the session token header succeeds.
    let r = reqwest::get(format!("{}/api/v2/buildinfo", old.base_url()))
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_simulator_refuses_what_coder_refuses_with_on_success() {
    let s = sim(100.0).await;
    let c = coder_client(&s);
    let id = s.coder_workspace_id("alice/dev").expect("seeded");
    let on = types::CreateWorkspaceBuildOnSuccessRequest {
        transition: WorkspaceTransition::Start,
        template_version_id: None,
        template_version_preset_id: None,
        rich_parameter_values: vec![],
    };
    let with = |transition, tweak: &dyn Fn(&mut types::CreateWorkspaceBuildRequest)| {
        let mut b = types::CreateWorkspaceBuildRequest {
            on_success: Some(on.clone()),
            ..build_request(transition)
        };
        tweak(&mut b);
        b
    };
    let cases = [
        ("a start parent", with(WorkspaceTransition::Start, &|_| {})),
        (
            "dry_run",
            with(WorkspaceTransition::Stop, &|b| b.dry_run = Some(true)),
        ),
        (
            "orphan",
            with(WorkspaceTransition::Stop, &|b| b.orphan = Some(true)),
        ),
        (
            "state",
            with(WorkspaceTransition::Stop, &|b| b.state = vec![1, 2]),
        ),
        (
            "a stop child",
            with(WorkspaceTransition::Stop, &|b| {
                b.on_success.as_mut().unwrap().transition = WorkspaceTransition::Stop
            }),
        ),
    ];
    for (what, body) in cases {
        let err = c
            .api()
            .create_workspace_build(&id, &body)
            .await
            .expect_err(what);
        assert_eq!(
            err.status().map(|s| s.as_u16()),
            Some(400),
            "{what}: {err:?}"
        );
    }
    assert_eq!(
        latest(&read(&c, &id).await).status,
        Some(WorkspaceStatus::Running),
        "nothing was built"
    );
    // An old server ignores the field it does not know: the same request is an ordinary stop.
    let old = sim_with(SimOptions {
        coder_version: "2.35.0".into(),
        speed: 100.0,
        ..SimOptions::default()
    })
    .await;
    let oc = coder_client(&old);
    let oid = old.coder_workspace_id("alice/dev").expect("seeded");
    let body = with(WorkspaceTransition::Stop, &|b| b.dry_run = Some(true));
    let b = oc
        .api()
        .create_workspace_build(&oid, &body)
        .await
        .expect("an old server ignores on_success")
        .into_inner();
    assert_eq!(b.transition, Some(WorkspaceTransition::Stop));
}

#[tokio::test]
async fn a_server_side_restart_keeps_the_version_and_the_child_is_the_next_latest_build() {
    let s = sim(50.0).await;
    let c = coder_client(&s);
    let id = s.coder_workspace_id("alice/dev").expect("seeded");
    let v2 = s.coder_version_id("docker-dev", "v2").expect("v2");
    let p = plan(&c, "alice/dev", None, true).await;
    let start = ServerSideStart::for_plan(&p);
    assert_eq!(
        start.template_version_id,
        Some(v2),
        "a restart on a version that is not the active one pins it: {}",
        start.version_reason
    );
    let parent = match c
        .create_server_side_stop(&id, &start)
        .await
        .expect("created")
    {
        ServerSideStop::Created(b) => *b,
        other => panic!("{other:?}"),
    };
    assert_eq!(parent.transition, Some(WorkspaceTransition::Stop));
    // The server creates the child at the instant the stop succeeds: a client may never see
    // the stopped parent as the latest build. Wait for either.
    c.wait_for_workspace(
        &id,
        |w| {
            let b = latest(w);
            (b.id == parent.id && ended(w)) || is_follow_up_of(&parent, &b)
        },
        &WatchOptions::default(),
        Instant::now() + Duration::from_secs(20),
        &CancellationToken::new(),
        |_| {},
    )
    .await
    .expect("reads")
    .workspace
    .expect("the stop ended in time");
    let child = match c
        .find_follow_up_build(
            &id,
            &parent,
            Duration::from_secs(5),
            Duration::from_millis(20),
            &CancellationToken::new(),
        )
        .await
        .expect("reads")
    {
        FollowUp::Found(b) => *b,
        other => panic!("no follow-up: {other:?}"),
    };
    assert_eq!(child.transition, Some(WorkspaceTransition::Start));
    assert_eq!(child.template_version_id, Some(v2));
    assert_eq!(
        child.build_number,
        parent.build_number.map(|n| n + 2),
        "the simulator numbers the child + 2 so that clients cannot assume + 1"
    );
    let done = wait_build_end(&c, &id, child.id).await;
    assert_eq!(latest(&done).status, Some(WorkspaceStatus::Running));
    // The previous build's parameters were kept.
    let params = c
        .api()
        .get_build_parameters_for_workspace_build(&child.id.unwrap().to_string())
        .await
        .expect("parameters")
        .into_inner();
    assert!(
        params
            .iter()
            .any(|p| p.name.as_deref() == Some("region") && p.value.as_deref() == Some("eu-west"))
    );
}

#[tokio::test]
async fn an_update_to_the_active_version_leaves_it_out_and_the_child_reports_what_it_used() {
    let s = sim(50.0).await;
    let c = coder_client(&s);
    let id = s.coder_workspace_id("bob/dev").expect("seeded");
    let v3 = s.coder_version_id("docker-dev", "v3").expect("v3");
    let p = plan(&c, "bob/dev", None, false).await;
    let start = ServerSideStart::for_plan(&p);
    assert_eq!(start.template_version_id, None, "{}", start.version_reason);
    let ServerSideStop::Created(parent) = c.create_server_side_stop(&id, &start).await.unwrap()
    else {
        panic!("not created")
    };
    // A killed client: nobody follows the run. The server starts the workspace anyway.
    drop(c);
    let c = coder_client(&s);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ws = read(&c, &id).await;
        let b = latest(&ws);
        if b.id != parent.id && b.status == Some(WorkspaceStatus::Running) {
            assert_eq!(b.template_version_id, Some(v3), "the version really used");
            assert_eq!(ws.outdated, Some(false));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workspace never ran again: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn a_child_refused_at_creation_is_never_created_and_the_workspace_stays_stopped() {
    let s = sim(50.0).await;
    let c = coder_client(&s);
    let id = s.coder_workspace_id("alice/dev").expect("seeded");
    // Planned for v3 (active) with v3's parameters; the admin makes v1 active meanwhile, so
    // the child (not pinned) is built on v1, which has no disk_gb: refused at creation.
    let p = plan(&c, "alice/dev", None, false).await;
    let start = ServerSideStart::for_plan(&p);
    assert!(
        start
            .rich_parameter_values
            .iter()
            .any(|p| p.name.as_deref() == Some("disk_gb"))
    );
    let ServerSideStop::Created(parent) = c.create_server_side_stop(&id, &start).await.unwrap()
    else {
        panic!("not created")
    };
    assert!(s.set_coder_active_version("docker-dev", "v1"));
    wait_build_end(&c, &id, parent.id).await;
    let t = Instant::now();
    let found = c
        .find_follow_up_build(
            &id,
            &parent,
            Duration::from_millis(300),
            Duration::from_millis(20),
            &CancellationToken::new(),
        )
        .await
        .expect("reads");
    let FollowUp::NotCreated { waited, latest } = found else {
        panic!("{found:?}")
    };
    assert!(waited >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(3));
    let latest = latest.expect("the parent");
    assert_eq!(latest.id, parent.id);
    assert_eq!(latest.status, Some(WorkspaceStatus::Stopped));
}

#[tokio::test]
async fn pinning_without_template_update_permission_is_refused_and_nothing_is_created() {
    let s = sim_with(SimOptions {
        speed: 50.0,
        coder_can_pin_versions: false,
        ..SimOptions::default()
    })
    .await;
    let c = coder_client(&s);
    let id = s.coder_workspace_id("alice/dev").expect("seeded");
    let before = latest(&read(&c, &id).await);
    let p = plan(&c, "alice/dev", None, true).await;
    let start = ServerSideStart::for_plan(&p);
    assert!(start.template_version_id.is_some());
    match c
        .create_server_side_stop(&id, &start)
        .await
        .expect("an answer")
    {
        ServerSideStop::PinRefused { message } => {
            assert!(
                message.contains("Unauthorized to queue follow-up workspace build."),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        latest(&read(&c, &id).await).id,
        before.id,
        "nothing was built"
    );
    // Not pinned (an update to the active version): accepted without the permission.
    let p = plan(&c, "alice/dev", None, false).await;
    let start = ServerSideStart::for_plan(&p);
    assert!(matches!(
        c.create_server_side_stop(&id, &start).await,
        Ok(ServerSideStop::Created(_))
    ));
}

#[tokio::test]
async fn an_old_server_only_stops() {
    let s = sim_with(SimOptions {
        speed: 50.0,
        coder_version: "v2.35.3+abc".into(),
        ..SimOptions::default()
    })
    .await;
    let c = coder_client(&s);
    let id = s.coder_workspace_id("alice/dev").expect("seeded");
    let p = plan(&c, "alice/dev", None, false).await;
    let ServerSideStop::Created(parent) = c
        .create_server_side_stop(&id, &ServerSideStart::for_plan(&p))
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    wait_build_end(&c, &id, parent.id).await;
    let found = c
        .find_follow_up_build(
            &id,
            &parent,
            Duration::from_millis(200),
            Duration::from_millis(20),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(matches!(found, FollowUp::NotCreated { .. }), "{found:?}");
    assert_eq!(
        latest(&read(&c, &id).await).status,
        Some(WorkspaceStatus::Stopped)
    );
}

// ---- the request bodies, exactly (httpmock) --------------------------------------------------

fn mock_client(server: &MockServer) -> CoderClient {
    CoderClient::new(&fleet::CoderConfig {
        url: Some(server.base_url()),
        session_token: Some(fleet::Secret::new("mock-session-token")),
        http: fleet::HttpOptions::default(),
    })
    .expect("a client")
}

fn build_json(id: Uuid, number: i64, transition: &str, status: &str) -> serde_json::Value {
    json!({
        "id": id, "build_number": number, "transition": transition, "status": status,
        "job": {"status": if status == "stopped" || status == "running" { "succeeded" } else { "running" }},
        "created_at": "2026-08-22T10:00:00Z",
    })
}

#[tokio::test]
async fn the_stop_request_carries_on_success_as_the_rules_say() {
    let server = MockServer::start_async().await;
    let c = mock_client(&server);
    let ws = Uuid::new_v4();
    let v = Uuid::new_v4();
    let parent = Uuid::new_v4();
    let pinned = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{ws}/builds"))
                .header("coder-session-token", "mock-session-token")
                .json_body(json!({
                    "transition": "stop",
                    "on_success": {
                        "transition": "start",
                        "template_version_id": v,
                        "rich_parameter_values": [{"name": "region", "value": "eu-west"}],
                    },
                }));
            then.status(201)
                .json_body(build_json(parent, 8, "stop", "stopping"));
        })
        .await;
    let start = ServerSideStart {
        template_version_id: Some(v),
        version_reason: String::new(),
        rich_parameter_values: vec![types::WorkspaceBuildParameter {
            name: Some("region".into()),
            value: Some("eu-west".into()),
        }],
    };
    let got = c.create_server_side_stop(&ws, &start).await.expect("201");
    assert!(matches!(got, ServerSideStop::Created(b) if b.id == Some(parent)));
    pinned.assert_async().await;

    // The active version: template_version_id left out, no parameters → none sent.
    let active = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{ws}/builds"))
                .json_body(json!({"transition": "stop", "on_success": {"transition": "start"}}));
            then.status(200)
                .json_body(build_json(parent, 8, "stop", "stopping"));
        })
        .await;
    let start = ServerSideStart {
        template_version_id: None,
        version_reason: String::new(),
        rich_parameter_values: vec![],
    };
    assert!(matches!(
        c.create_server_side_stop(&ws, &start).await,
        Ok(ServerSideStop::Created(_))
    ));
    active.assert_async().await;
}

#[tokio::test]
async fn a_403_on_a_pinned_version_is_a_fact_and_without_a_pin_an_error() {
    let server = MockServer::start_async().await;
    let c = mock_client(&server);
    let ws = Uuid::new_v4();
    let post = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{ws}/builds"));
            then.status(403)
                .json_body(json!({"message": "Unauthorized to queue follow-up workspace build."}));
        })
        .await;
    let mut start = ServerSideStart {
        template_version_id: Some(Uuid::new_v4()),
        version_reason: String::new(),
        rich_parameter_values: vec![],
    };
    match c.create_server_side_stop(&ws, &start).await {
        Ok(ServerSideStop::PinRefused { message }) => {
            assert!(
                message.contains("Unauthorized to queue follow-up"),
                "{message}"
            );
            assert!(!message.contains("mock-session-token"));
        }
        other => panic!("{other:?}"),
    }
    start.template_version_id = None;
    let err = c
        .create_server_side_stop(&ws, &start)
        .await
        .expect_err("a 403 without a pin is an error");
    assert_eq!(err.status(), Some(403));
    post.assert_calls_async(2).await; // each POST sent once, never retried
}

#[tokio::test]
async fn the_follow_up_is_found_by_being_the_next_latest_start_not_by_number_plus_one() {
    let server = MockServer::start_async().await;
    let c = mock_client(&server);
    let ws = Uuid::new_v4();
    let parent_id = Uuid::new_v4();
    let child_id = Uuid::new_v4();
    let parent: types::WorkspaceBuild =
        serde_json::from_value(build_json(parent_id, 8, "stop", "stopped")).unwrap();
    // First two reads: the parent is still the latest; then the child, numbered 11.
    let first = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v2/workspaces/{ws}"));
            then.status(200).json_body(
                json!({"id": ws, "latest_build": build_json(parent_id, 8, "stop", "stopped")}),
            );
        })
        .await;
    let found = c
        .find_follow_up_build(
            &ws,
            &parent,
            Duration::from_millis(60),
            Duration::from_millis(10),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(matches!(found, FollowUp::NotCreated { .. }), "{found:?}");
    assert!(first.calls_async().await >= 2);
    first.delete_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v2/workspaces/{ws}"));
            then.status(200).json_body(
                json!({"id": ws, "latest_build": build_json(child_id, 11, "start", "starting")}),
            );
        })
        .await;
    let found = c
        .find_follow_up_build(
            &ws,
            &parent,
            Duration::from_secs(1),
            Duration::from_millis(10),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&found, FollowUp::Found(b) if b.id == Some(child_id)),
        "{found:?}"
    );
}

#[tokio::test]
async fn buildinfo_versions_from_a_real_looking_server() {
    let server = MockServer::start_async().await;
    let c = mock_client(&server);
    let m = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v2/buildinfo");
            then.status(200)
                .json_body(json!({"version": "v0.0.0-devel+5a1b2c3", "external_url": "x"}));
        })
        .await;
    let f = c.server_features().await.unwrap();
    assert!(f.on_success && f.version.as_ref().unwrap().is_devel());
    m.delete_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v2/buildinfo");
            then.status(200)
                .json_body(json!({"version": "v2.36.0-rc.1+5a1b2c3"}));
        })
        .await;
    let f: ServerFeatures = c.server_features().await.unwrap();
    assert!(!f.on_success, "an rc comes before its release");
}

// ---- `fleet sim` serves the old behaviour on demand ------------------------------------------

#[tokio::test]
async fn fleet_sim_coder_version_serves_an_old_server() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = crate::support::cli::fleet(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--speed",
        "100",
        "--coder-version",
        "2.35.0",
        "-o",
        "json",
    ])
    .command()
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("fleet sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The JSON may span lines: read until it parses.
    let mut text = String::new();
    let mut parsed = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        text.push_str(&line);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            parsed = Some(v);
            break;
        }
    }
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let v = parsed.expect("fleet sim prints where it listens, as JSON");
        let url = v["coder_url"].as_str().expect("coder_url").to_string();
        let c = CoderClient::new(&fleet::CoderConfig {
            url: Some(url),
            session_token: Some(fleet::Secret::new(fleet::sim::CODER_SESSION_TOKEN)),
            http: fleet::HttpOptions::default(),
        })
        .unwrap();
        let f = c.server_features().await.expect("buildinfo");
        assert_eq!(f.version_text, "v2.35.0");
        assert!(!f.on_success);
    }))
    .await;
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
