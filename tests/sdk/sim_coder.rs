//! The simulator speaks openapi/coder.yaml: driven here with the generated client only.

use std::time::{Duration, Instant};

use crate::support::sim::coder_client;
use crate::support::sim::sim;
use fleet::{
    CoderConfig, Secret,
    coder::{
        CoderClient, JobStatus, LogLevel, WorkspaceStatus, WorkspaceTransition,
        types::{
            CreateWorkspaceBuildRequest, Response as CoderError, WorkspaceBuild,
            WorkspaceBuildParameter,
        },
    },
    sim::{RunningSim, SimFaults, SimOptions, Simulator},
};
use uuid::Uuid;

fn error_of(err: progenitor_client::Error<CoderError>) -> (u16, CoderError) {
    match err {
        progenitor_client::Error::ErrorResponse(rv) => (rv.status().as_u16(), rv.into_inner()),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

fn build(
    transition: WorkspaceTransition,
    version: Option<Uuid>,
    params: &[(&str, &str)],
) -> CreateWorkspaceBuildRequest {
    CreateWorkspaceBuildRequest {
        dry_run: None,
        rich_parameter_values: params
            .iter()
            .map(|(n, v)| WorkspaceBuildParameter {
                name: Some(n.to_string()),
                value: Some(v.to_string()),
            })
            .collect(),
        template_version_id: version,
        ..fleet::coder::build_request(transition)
    }
}

fn ws_id(sim: &RunningSim, name: &str) -> Uuid {
    sim.coder_workspace_id(name).expect("a seeded workspace")
}

/// Polls a build until its job ends; returns the distinct statuses seen and the last build,
/// and checks the logs only ever grow.
async fn follow(
    c: &CoderClient,
    id: Uuid,
    limit: Duration,
) -> (Vec<WorkspaceStatus>, WorkspaceBuild, usize) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut logs = 0;
    loop {
        let b = c
            .api()
            .get_workspace_build(&id.to_string())
            .await
            .expect("a build")
            .into_inner();
        let now = c
            .api()
            .get_workspace_build_logs(&id.to_string(), None, None, None)
            .await
            .expect("logs")
            .into_inner()
            .len();
        assert!(now >= logs, "logs only grow: {now} < {logs}");
        logs = now;
        let status = b.status.clone().expect("a status");
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if !status.is_active() {
            return (seen, b, logs);
        }
        assert!(
            Instant::now() < deadline,
            "build {id} still {status:?} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401() {
    let sim = sim(1.0).await;
    let cfg = CoderConfig {
        session_token: Some(Secret::new("nope")),
        ..sim.coder_config()
    };
    let c = CoderClient::new(&cfg).expect("client");
    let (code, err) = error_of(c.api().get_user_by_name("me").await.expect_err("401"));
    assert_eq!(code, 401);
    assert!(err.message.is_some_and(|m| m.contains("sign in")));
    assert!(matches!(
        c.error(
            "reading me",
            c.api().get_user_by_name("me").await.expect_err("401")
        ),
        fleet::Error::Unauthorized { .. }
    ));
    let raw = reqwest::get(format!("{}/api/v2/users/me", sim.coder_url()))
        .await
        .expect("an answer");
    assert_eq!(raw.status().as_u16(), 401);
    let body: serde_json::Value = raw.json().await.expect("JSON");
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn reads_users_workspaces_templates_versions_and_parameters() {
    let sim = sim(1.0).await;
    let c = coder_client(&sim);
    let api = c.api();
    let me = api.get_user_by_name("me").await.expect("me").into_inner();
    assert_eq!(me.username, "alice");
    assert_eq!(
        api.get_user_by_name("bob")
            .await
            .expect("bob")
            .into_inner()
            .username,
        "bob"
    );
    assert_eq!(
        api.get_user_by_name(&me.id.to_string())
            .await
            .expect("by id")
            .into_inner()
            .id,
        me.id
    );
    let (code, _) = error_of(api.get_user_by_name("nobody").await.expect_err("404"));
    assert_eq!(code, 404);

    let mine = api
        .list_workspaces(None, None, Some("owner:me"))
        .await
        .expect("list")
        .into_inner();
    // 7, and alice/notes (team-dev, the workspaces someone is at work in).
    assert_eq!(mine.count, Some(8));
    assert!(
        mine.workspaces
            .iter()
            .all(|w| w.owner_name.as_deref() == Some("alice"))
    );
    let dev = api
        .list_workspaces(None, None, Some("owner:me name:DE"))
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = dev
        .workspaces
        .iter()
        .filter_map(|w| w.name.clone())
        .collect();
    assert_eq!(names, vec!["dev"], "name matches partially, ignoring case");
    let outdated = api
        .list_workspaces(None, None, Some("outdated:true"))
        .await
        .expect("list")
        .into_inner();
    assert!(outdated.workspaces.iter().all(|w| w.outdated == Some(true)));
    // 7, and the 6 outdated team-dev workspaces someone may be at work in.
    assert_eq!(outdated.count, Some(13));
    let ml = api
        .list_workspaces(None, None, Some("template:gpu-ml"))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(ml.count, Some(1));
    let page = api
        .list_workspaces(Some(2), Some(1), None)
        .await
        .expect("list")
        .into_inner();
    // 9 seeded workspaces plus carol's 8 web workspaces (the rollout fleet), the 7
    // team-dev workspaces someone may be at work in and carol's 4 shop workspaces (the
    // promotion fleet).
    assert_eq!((page.count, page.workspaces.len()), (Some(28), 2));
    let (code, err) = error_of(
        api.list_workspaces(None, None, Some("colour:blue"))
            .await
            .expect_err("400"),
    );
    assert_eq!(code, 400);
    assert_eq!(err.validations.first().map(|v| v.field.as_str()), Some("q"));

    let ws = api
        .get_workspace_metadata_by_user_and_workspace_name("me", "dev")
        .await
        .expect("ws")
        .into_inner();
    assert_eq!(ws.id, Some(ws_id(&sim, "alice/dev")));
    assert_eq!(ws.outdated, Some(true));
    let latest = ws.latest_build.expect("a latest build");
    assert_eq!(latest.status, Some(WorkspaceStatus::Running));
    assert_eq!(latest.template_version_name.as_deref(), Some("v2"));
    let by_id = api
        .get_workspace_metadata_by_id(&ws.id.expect("id"))
        .await
        .expect("by id")
        .into_inner();
    assert_eq!(by_id.name.as_deref(), Some("dev"));
    let (code, _) = error_of(
        api.get_workspace_metadata_by_user_and_workspace_name("bob", "nope")
            .await
            .expect_err("404"),
    );
    assert_eq!(code, 404);

    let template = api
        .get_template_settings_by_id(&ws.template_id.expect("template"))
        .await
        .expect("t")
        .into_inner();
    assert_eq!(
        template.active_version_id,
        sim.coder_version_id("docker-dev", "v3")
    );
    assert_eq!(template.require_active_version, Some(false));
    let v3 = api
        .get_template_version_by_id(&template.active_version_id.expect("v"))
        .await
        .expect("v3")
        .into_inner();
    assert_eq!(v3.job.and_then(|j| j.status), Some(JobStatus::Succeeded));
    let importing = sim
        .coder_version_id("docker-dev", "v4-importing")
        .expect("seeded");
    let v4 = api
        .get_template_version_by_id(&importing)
        .await
        .expect("v4")
        .into_inner();
    assert_eq!(v4.job.and_then(|j| j.status), Some(JobStatus::Running));
    let archived = sim
        .coder_version_id("docker-dev", "v0-archived")
        .expect("seeded");
    assert_eq!(
        api.get_template_version_by_id(&archived)
            .await
            .expect("v0")
            .into_inner()
            .archived,
        Some(true)
    );

    let params = api
        .get_rich_parameters_by_template_version(&v3.id.expect("id"))
        .await
        .expect("p")
        .into_inner();
    let names: Vec<_> = params.iter().filter_map(|p| p.name.clone()).collect();
    assert_eq!(names, vec!["region", "cpu", "dotfiles_uri", "disk_gb"]);
    assert_eq!(params[0].mutable, Some(false));
    assert_eq!(params[0].options.len(), 3);
    assert_eq!(
        (params[3].validation_min, params[3].validation_max),
        (Some(10), Some(500))
    );

    let prev = api
        .get_build_parameters_for_workspace_build(&latest.id.expect("id").to_string())
        .await
        .expect("params")
        .into_inner();
    assert!(
        prev.iter()
            .any(|p| p.name.as_deref() == Some("region") && p.value.as_deref() == Some("eu-west"))
    );

    let secure = api
        .get_workspace_metadata_by_user_and_workspace_name("alice", "secure-shell")
        .await
        .expect("ws");
    assert_eq!(
        secure.into_inner().template_require_active_version,
        Some(true)
    );
}

#[tokio::test]
async fn stop_then_start_on_the_new_version_walks_the_states_with_logs_and_parameters() {
    // Speed 20: pending lasts 50 ms, starting 300 ms: enough to see every status.
    let sim = sim(20.0).await;
    let c = coder_client(&sim);
    let id = ws_id(&sim, "alice/dev");
    let v3 = sim.coder_version_id("docker-dev", "v3").expect("v3");

    let stop = c
        .api()
        .create_workspace_build(&id, &build(WorkspaceTransition::Stop, None, &[]))
        .await
        .expect("201");
    assert_eq!(stop.status().as_u16(), 201);
    let stop = stop.into_inner();
    assert_eq!(stop.status, Some(WorkspaceStatus::Pending));
    assert_eq!(stop.build_number, Some(8));
    let (seen, done, logs) = follow(&c, stop.id.expect("id"), Duration::from_secs(10)).await;
    assert_eq!(
        seen,
        vec![
            WorkspaceStatus::Pending,
            WorkspaceStatus::Stopping,
            WorkspaceStatus::Stopped
        ]
    );
    assert_eq!(done.job.and_then(|j| j.status), Some(JobStatus::Succeeded));
    assert!(logs >= 5, "a stop writes logs: {logs}");

    let start = c
        .api()
        .create_workspace_build(
            &id,
            &build(WorkspaceTransition::Start, Some(v3), &[("cpu", "6")]),
        )
        .await
        .expect("201")
        .into_inner();
    let (seen, done, logs) = follow(&c, start.id.expect("id"), Duration::from_secs(10)).await;
    assert_eq!(
        seen,
        vec![
            WorkspaceStatus::Pending,
            WorkspaceStatus::Starting,
            WorkspaceStatus::Running
        ]
    );
    assert_eq!(done.template_version_id, Some(v3));
    assert!(logs >= 6, "a start writes logs: {logs}");

    let params = c
        .api()
        .get_build_parameters_for_workspace_build(&start.id.expect("id").to_string())
        .await
        .expect("params")
        .into_inner();
    let pairs: Vec<(String, String)> = params
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.value.unwrap_or_default()))
        .collect();
    let want = |n: &str, v: &str| (n.to_string(), v.to_string());
    assert_eq!(
        pairs,
        vec![
            want("region", "eu-west"),
            want("cpu", "6"),
            want("dotfiles_uri", "https://github.com/alice/dotfiles"),
            want("disk_gb", "20")
        ],
        "kept, given, kept, the new parameter's default"
    );

    let ws = c
        .api()
        .get_workspace_metadata_by_id(&id)
        .await
        .expect("ws")
        .into_inner();
    assert_eq!(ws.outdated, Some(false), "running the active version");
    assert_eq!(
        ws.latest_build.and_then(|b| b.template_version_id),
        Some(v3)
    );

    // Logs after a given id only return the newer lines.
    let all = c
        .api()
        .get_workspace_build_logs(&start.id.expect("id").to_string(), None, None, None)
        .await
        .expect("logs")
        .into_inner();
    let third = all[2].id.expect("log id");
    let newer = c
        .api()
        .get_workspace_build_logs(&start.id.expect("id").to_string(), Some(third), None, None)
        .await
        .expect("logs")
        .into_inner();
    assert_eq!(newer.len(), all.len() - 3);
}

#[tokio::test]
async fn refusals_409_406_403_and_400_with_validations() {
    let sim = sim(1.0).await;
    let c = coder_client(&sim);
    let api = c.api();

    // 409: a second build while one is active (speed 1: the first one is still pending).
    let dev = ws_id(&sim, "alice/dev");
    api.create_workspace_build(&dev, &build(WorkspaceTransition::Stop, None, &[]))
        .await
        .expect("first");
    let (code, err) = error_of(
        api.create_workspace_build(&dev, &build(WorkspaceTransition::Start, None, &[]))
            .await
            .expect_err("409"),
    );
    assert_eq!(code, 409);
    assert!(err.message.is_some_and(|m| m.contains("already active")));
    assert!(matches!(
        c.error(
            "starting",
            api.create_workspace_build(&dev, &build(WorkspaceTransition::Stop, None, &[]))
                .await
                .expect_err("409")
        ),
        fleet::Error::Conflict { .. }
    ));

    // 406: a version still importing.
    let stopped = ws_id(&sim, "alice/api-server");
    let importing = sim.coder_version_id("docker-dev", "v4-importing");
    let (code, _) = error_of(
        api.create_workspace_build(&stopped, &build(WorkspaceTransition::Start, importing, &[]))
            .await
            .expect_err("406"),
    );
    assert_eq!(code, 406);

    // 400 with validations: an unknown version, an immutable parameter, a bad transition,
    // stopping a stopped workspace, a value out of range.
    let cases: Vec<(CreateWorkspaceBuildRequest, &str)> = vec![
        (
            build(WorkspaceTransition::Start, Some(Uuid::new_v4()), &[]),
            "template_version_id",
        ),
        (
            build(
                WorkspaceTransition::Start,
                sim.coder_version_id("gpu-ml", "v1"),
                &[],
            ),
            "template_version_id",
        ),
        (
            build(WorkspaceTransition::Start, None, &[("region", "eu-west")]),
            "region",
        ),
        (
            build(WorkspaceTransition::Start, None, &[("cpu", "64")]),
            "cpu",
        ),
        (
            build(WorkspaceTransition::Start, None, &[("colour", "blue")]),
            "colour",
        ),
        (
            build(WorkspaceTransition::Other("reboot".into()), None, &[]),
            "transition",
        ),
        (build(WorkspaceTransition::Stop, None, &[]), "transition"),
        (
            build(
                WorkspaceTransition::Start,
                sim.coder_version_id("docker-dev", "v0-archived"),
                &[],
            ),
            "template_version_id",
        ),
    ];
    for (body, field) in cases {
        let (code, err) = error_of(
            api.create_workspace_build(&stopped, &body)
                .await
                .expect_err("400"),
        );
        assert_eq!(code, 400, "{body:?}");
        assert!(
            err.validations.iter().any(|v| v.field == field),
            "{field}: {err:?}"
        );
    }

    // 403: a template that requires the active version refuses an older one.
    let sim_fast = Simulator::start(SimOptions {
        speed: 200.0,
        ..SimOptions::default()
    })
    .await
    .expect("starts");
    let fast = coder_client(&sim_fast);
    let secure = ws_id(&sim_fast, "alice/secure-shell");
    let stop = fast
        .api()
        .create_workspace_build(&secure, &build(WorkspaceTransition::Stop, None, &[]))
        .await
        .expect("stop")
        .into_inner();
    follow(&fast, stop.id.expect("id"), Duration::from_secs(10)).await;
    let old = sim_fast.coder_version_id("k8s-secure", "2024-06");
    let (code, _) = error_of(
        fast.api()
            .create_workspace_build(&secure, &build(WorkspaceTransition::Start, old, &[]))
            .await
            .expect_err("403"),
    );
    assert_eq!(code, 403);
    // Without a version, a start uses the active one.
    let start = fast
        .api()
        .create_workspace_build(&secure, &build(WorkspaceTransition::Start, None, &[]))
        .await
        .expect("start")
        .into_inner();
    assert_eq!(
        start.template_version_id,
        sim_fast.coder_version_id("k8s-secure", "2024-09")
    );
}

#[tokio::test]
async fn a_broken_version_fails_its_start_with_an_error_and_error_logs() {
    let sim = sim(100.0).await;
    let c = coder_client(&sim);
    let id = ws_id(&sim, "alice/ml-notebook");
    let stop = c
        .api()
        .create_workspace_build(&id, &build(WorkspaceTransition::Stop, None, &[]))
        .await
        .expect("stop");
    follow(
        &c,
        stop.into_inner().id.expect("id"),
        Duration::from_secs(10),
    )
    .await;
    let broken = sim.coder_version_id("gpu-ml", "broken-start");
    let start = c
        .api()
        .create_workspace_build(&id, &build(WorkspaceTransition::Start, broken, &[]))
        .await
        .expect("accepted")
        .into_inner();
    let (seen, done, _) = follow(&c, start.id.expect("id"), Duration::from_secs(10)).await;
    assert_eq!(seen.last(), Some(&WorkspaceStatus::Failed));
    let job = done.job.expect("a job");
    assert_eq!(job.status, Some(JobStatus::Failed));
    assert!(job.error.is_some_and(|e| e.contains("not found")));
    let logs = c
        .api()
        .get_workspace_build_logs(&start.id.expect("id").to_string(), None, None, None)
        .await
        .expect("logs")
        .into_inner();
    assert!(logs.iter().any(|l| l.log_level == Some(LogLevel::Error)));
    let ws = c
        .api()
        .get_workspace_metadata_by_id(&id)
        .await
        .expect("ws")
        .into_inner();
    assert_eq!(
        ws.latest_build.and_then(|b| b.status),
        Some(WorkspaceStatus::Failed)
    );
}

#[tokio::test]
async fn a_slow_build_can_be_canceled() {
    let sim = sim(20.0).await;
    let c = coder_client(&sim);
    let id = ws_id(&sim, "alice/slow-box");
    let stop = c
        .api()
        .create_workspace_build(&id, &build(WorkspaceTransition::Stop, None, &[]))
        .await
        .expect("stop")
        .into_inner();
    let bid = stop.id.expect("id").to_string();
    // 10x slower: after 0.6 s (12 simulated seconds) a normal stop would be done.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let b = c
        .api()
        .get_workspace_build(&bid)
        .await
        .expect("build")
        .into_inner();
    assert_eq!(b.status, Some(WorkspaceStatus::Stopping));
    let ok = c
        .api()
        .cancel_workspace_build(&bid, None)
        .await
        .expect("canceled")
        .into_inner();
    assert!(ok.message.is_some());
    let (seen, done, _) = follow(&c, stop.id.expect("id"), Duration::from_secs(10)).await;
    assert_eq!(seen.first(), Some(&WorkspaceStatus::Canceling));
    assert_eq!(done.status, Some(WorkspaceStatus::Canceled));
    assert_eq!(done.job.and_then(|j| j.status), Some(JobStatus::Canceled));
    let (code, _) = error_of(
        c.api()
            .cancel_workspace_build(&bid, None)
            .await
            .expect_err("400"),
    );
    assert_eq!(code, 400);
}

#[tokio::test]
async fn transient_503s_on_the_flaky_workspace() {
    let sim = Simulator::start(SimOptions {
        faults: SimFaults {
            flaky_gets: 2,
            ..SimFaults::default()
        },
        ..SimOptions::default()
    })
    .await
    .expect("starts");
    let mut cfg = sim.coder_config();
    cfg.http.retry.max_retries = 0;
    let c = CoderClient::new(&cfg).expect("client");
    for _ in 0..2 {
        let (code, err) = error_of(
            c.api()
                .get_workspace_metadata_by_user_and_workspace_name("me", "flaky")
                .await
                .expect_err("503"),
        );
        assert_eq!(code, 503);
        assert!(err.message.is_some());
    }
    assert!(
        c.api()
            .get_workspace_metadata_by_user_and_workspace_name("me", "flaky")
            .await
            .is_ok()
    );
    assert_eq!(
        sim.count_requests("GET", "/api/v2/users/me/workspace/flaky"),
        3
    );

    // With the SDK's read retries, a fresh simulator's flaky workspace reads fine.
    let sim = Simulator::start(SimOptions::default())
        .await
        .expect("starts");
    let mut cfg = sim.coder_config();
    cfg.http.retry.initial_backoff = Duration::from_millis(1);
    let c = CoderClient::new(&cfg).expect("client");
    let id = ws_id(&sim, "alice/flaky");
    assert!(c.api().get_workspace_metadata_by_id(&id).await.is_ok());
    let path = format!("/api/v2/workspaces/{id}");
    let statuses: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![503, 503, 200]);
}

#[tokio::test]
async fn shutdown_is_prompt_even_with_open_connections() {
    let sim = sim(1.0).await;
    let mut cfg = sim.coder_config();
    cfg.http.retry.max_retries = 0;
    let c = CoderClient::new(&cfg).expect("client");
    c.api().get_user_by_name("me").await.expect("me");
    assert_eq!(sim.count_requests("GET", "/api/v2/users/me"), 1);
    tokio::time::timeout(Duration::from_secs(5), sim.shutdown())
        .await
        .expect("shutdown does not wait for the idle keep-alive connection");
    assert!(
        c.api().get_user_by_name("me").await.is_err(),
        "nothing answers any more"
    );
}

#[tokio::test]
async fn a_start_fault_names_seeded_workspaces_only() {
    let refused = Simulator::start(SimOptions {
        faults: SimFaults {
            coder_start_fails: vec!["carol/web-99".into()],
            ..SimFaults::default()
        },
        ..SimOptions::default()
    })
    .await
    .map(|_| ())
    .expect_err("an unknown workspace is refused");
    assert!(
        matches!(&refused, fleet::Error::InvalidInput(m) if m.contains("\"carol/web-99\"")),
        "{refused:?}"
    );
}
