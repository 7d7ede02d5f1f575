//! Live build logs and completion by push (WebSockets), through the SDK against the simulator
//! and small loopback servers: lines in order without duplicates across forced reconnects,
//! the watch's fallback to polling, the session token and the message cap.

use std::time::{Duration, Instant};

use crate::support::sim::coder_client;
use fleet::{
    CoderConfig, Secret,
    coder::{
        CoderClient, LogFollowOptions, WatchNote, WatchOptions, WorkspaceStatus,
        WorkspaceTransition, build_request, types,
    },
    sim::{RunningSim, SimOptions, Simulator},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn sim_with(speed: f64, ws_drop_after: Option<u32>) -> RunningSim {
    Simulator::start(SimOptions {
        speed,
        ws_drop_after,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts")
}

/// Starts alice/api-server (stopped, v1) and returns the start build.
async fn start_api_server(sim: &RunningSim, c: &CoderClient) -> (Uuid, types::WorkspaceBuild) {
    let id = sim.coder_workspace_id("alice/api-server").expect("seeded");
    let b = c
        .api()
        .create_workspace_build(&id, &build_request(WorkspaceTransition::Start))
        .await
        .expect("the start is accepted")
        .into_inner();
    (id, b)
}

async fn all_lines_by_get(c: &CoderClient, build: Uuid) -> Vec<i64> {
    c.api()
        .get_workspace_build_logs(&build.to_string(), None, None, None)
        .await
        .expect("logs")
        .into_inner()
        .iter()
        .map(|l| l.id.expect("an id"))
        .collect()
}

async fn follow_all(c: &CoderClient, build: Uuid) -> (Vec<types::ProvisionerJobLog>, u32, u32) {
    let mut logs = c.follow_build_logs(
        build,
        None,
        LogFollowOptions {
            reconnect_backoff: Duration::from_millis(10),
            max_reconnects: 20,
            ..LogFollowOptions::default()
        },
    );
    let mut lines = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(20);
    while let Some(line) = tokio::time::timeout_at(give_up.into(), logs.next())
        .await
        .expect("the log stream ends when the job ends")
    {
        lines.push(line.expect("a line"));
    }
    let final_build = logs.final_build().expect("the end was confirmed");
    assert_eq!(final_build.status, Some(WorkspaceStatus::Running));
    (lines, logs.connections(), logs.reconnects())
}

#[tokio::test]
async fn build_logs_arrive_live_in_order_and_the_stream_ends_with_the_job() {
    let s = sim_with(10.0, None).await;
    let c = coder_client(&s);
    let (_, build) = start_api_server(&s, &c).await;
    let build_id = build.id.expect("an id");
    let started = Instant::now();
    let (lines, connections, reconnects) = follow_all(&c, build_id).await;
    // A start takes 7 s at speed 1: 0.7 s here. The stream followed it, not a replay.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((connections, reconnects), (1, 0));
    let ids: Vec<i64> = lines.iter().map(|l| l.id.unwrap()).collect();
    assert_eq!(
        ids,
        all_lines_by_get(&c, build_id).await,
        "every line, once, in order"
    );
    assert!(
        lines
            .last()
            .and_then(|l| l.output.as_deref())
            .is_some_and(|o| o.contains("Apply complete")),
        "{lines:?}"
    );
    // Exactly one socket and one confirming GET: far fewer requests than polling.
    let path = format!("/api/v2/workspacebuilds/{build_id}/logs");
    assert_eq!(s.count_requests("GET", &path), 1 + 1);
}

#[tokio::test]
async fn a_forced_reconnect_loses_no_line_and_repeats_none() {
    // Every socket is cut after 3 messages: 8 lines need several connections.
    let s = sim_with(10.0, Some(3)).await;
    let c = coder_client(&s);
    let (_, build) = start_api_server(&s, &c).await;
    let build_id = build.id.expect("an id");
    let (lines, connections, reconnects) = follow_all(&c, build_id).await;
    assert!(
        reconnects >= 2 && connections == reconnects + 1,
        "{connections} {reconnects}"
    );
    let ids: Vec<i64> = lines.iter().map(|l| l.id.unwrap()).collect();
    assert_eq!(ids, all_lines_by_get(&c, build_id).await);
    // The reconnects resumed with after=<last id>.
    let resumed = s
        .requests()
        .iter()
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("after=")))
        .count();
    assert_eq!(resumed as u32, reconnects);
}

#[tokio::test]
async fn following_a_finished_build_gives_its_lines_and_ends() {
    let s = sim_with(50.0, None).await;
    let c = coder_client(&s);
    let (_, build) = start_api_server(&s, &c).await;
    let build_id = build.id.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await; // 7 s / 50 = 140 ms
    let mut logs = c.follow_build_logs(build_id, None, LogFollowOptions::default());
    let mut n = 0;
    while let Some(l) = logs.next().await {
        l.expect("a line");
        n += 1;
    }
    assert_eq!(n, all_lines_by_get(&c, build_id).await.len());
    // Resuming after the last id gives nothing more.
    let mut again = c.follow_build_logs(build_id, logs.last_id(), LogFollowOptions::default());
    assert!(again.next().await.is_none());
}

#[tokio::test]
async fn the_socket_carries_the_session_token_and_a_wrong_one_is_refused() {
    let s = sim_with(50.0, None).await;
    let c = coder_client(&s);
    let (_, build) = start_api_server(&s, &c).await;
    let wrong = CoderClient::new(&CoderConfig {
        url: Some(s.coder_url()),
        session_token: Some(Secret::new("not-the-session-token")),
        http: fleet::HttpOptions::default(),
    })
    .unwrap();
    let mut logs = wrong.follow_build_logs(build.id.unwrap(), None, LogFollowOptions::default());
    let err = logs.next().await.expect("an answer").expect_err("refused");
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(!err.to_string().contains("not-the-session-token"));
    assert!(logs.next().await.is_none(), "an error ends the stream");
    // An unknown build: 404, at once (not retried).
    let mut missing = c.follow_build_logs(Uuid::new_v4(), None, LogFollowOptions::default());
    let err = missing.next().await.unwrap().expect_err("404");
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn completion_is_noticed_by_push_with_no_polling() {
    let s = sim_with(20.0, None).await;
    let c = coder_client(&s);
    let (id, build) = start_api_server(&s, &c).await;
    let mut states = Vec::new();
    let end = c
        .wait_for_workspace(
            &id,
            |w| {
                let b = w.latest_build.as_ref().unwrap();
                b.id == build.id && b.status == Some(WorkspaceStatus::Running)
            },
            &WatchOptions::default(),
            Instant::now() + Duration::from_secs(20),
            &CancellationToken::new(),
            |note| {
                if let WatchNote::Snapshot(ws) = note {
                    states.push(ws.latest_build.unwrap().status.unwrap().to_string());
                }
            },
        )
        .await
        .expect("the wait reads");
    assert!(end.workspace.is_some() && !end.timed_out, "{end:?}");
    assert_eq!(end.polled, 0);
    assert!(end.fell_back.is_none());
    assert!(states.contains(&"starting".to_string()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("running"));
    let path = format!("/api/v2/workspaces/{id}");
    assert_eq!(s.count_requests("GET", &path), 0, "no GET of the workspace");
    // The agent is not ready when the build ends; a later push says so.
    let agent =
        |w: &types::Workspace| w.latest_build.as_ref().unwrap().resources[0].agents[0].clone();
    let ws = end.workspace.unwrap();
    assert_eq!(
        agent(&ws).status.map(|s| s.to_string()).as_deref(),
        Some("connected")
    );
    let ready = c
        .wait_for_workspace(
            &id,
            |w| agent(w).lifecycle_state.map(|l| l.to_string()).as_deref() == Some("ready"),
            &WatchOptions::default(),
            Instant::now() + Duration::from_secs(5),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap();
    assert!(ready.workspace.is_some(), "the agent became ready");
}

#[tokio::test]
async fn a_dropped_watch_falls_back_to_polling_and_loses_no_state() {
    // The watch is cut after its first message (the initial snapshot).
    let s = sim_with(20.0, Some(1)).await;
    let c = coder_client(&s);
    let (id, build) = start_api_server(&s, &c).await;
    let mut fell_back = Vec::new();
    let end = c
        .wait_for_workspace(
            &id,
            |w| {
                let b = w.latest_build.as_ref().unwrap();
                b.id == build.id && b.status == Some(WorkspaceStatus::Running)
            },
            &WatchOptions::default(),
            Instant::now() + Duration::from_secs(20),
            &CancellationToken::new(),
            |note| {
                if let WatchNote::FellBackToPolling { reason } = note {
                    fell_back.push(reason);
                }
            },
        )
        .await
        .expect("the wait reads");
    assert!(end.workspace.is_some(), "{end:?}");
    assert_eq!(end.pushed, 1);
    assert!(end.polled >= 1);
    assert_eq!(fell_back.len(), 1, "{fell_back:?}");
    assert!(
        fell_back[0].contains("dropped"),
        "the reason is told: {fell_back:?}"
    );

    // A server without watch-ws (here: a plain HTTP server answering 404): polling from the
    // start, and the reason says the watch could not be opened.
    let server = httpmock::MockServer::start_async().await;
    let ws = Uuid::new_v4();
    server
        .mock_async(|when, then| {
            when.method(httpmock::Method::GET)
                .path(format!("/api/v2/workspaces/{ws}"));
            then.status(200).json_body(serde_json::json!({
                "id": ws, "latest_build": {"status": "running", "job": {"status": "succeeded"}},
            }));
        })
        .await;
    let mc = CoderClient::new(&CoderConfig {
        url: Some(server.base_url()),
        session_token: Some(Secret::new("mock-session-token")),
        http: fleet::HttpOptions::default(),
    })
    .unwrap();
    let end = mc
        .wait_for_workspace(
            &ws,
            |w| w.latest_build.as_ref().unwrap().status == Some(WorkspaceStatus::Running),
            &WatchOptions::default(),
            Instant::now() + Duration::from_secs(5),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap();
    assert!(end.workspace.is_some());
    assert_eq!((end.pushed, end.polled), (0, 1));
    assert!(
        end.fell_back
            .as_deref()
            .is_some_and(|r| r.contains("could not be opened")),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_message_over_the_cap_ends_the_stream_with_an_error() {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    // A server that sends one 5 MiB message on the logs socket.
    let app = axum::Router::new().route(
        "/api/v2/workspacebuilds/{id}/logs",
        axum::routing::get(|upgrade: WebSocketUpgrade| async move {
            upgrade.on_upgrade(|mut socket| async move {
                let big = format!(
                    "{{\"id\":1,\"output\":\"{}\"}}",
                    "x".repeat(fleet::coder::WS_MAX_MESSAGE_BYTES + 1024)
                );
                let _ = socket.send(Message::Text(big.into())).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let c = CoderClient::new(&CoderConfig {
        url: Some(format!("http://{addr}")),
        session_token: Some(Secret::new("mock-session-token")),
        http: fleet::HttpOptions::default(),
    })
    .unwrap();
    let mut logs = c.follow_build_logs(
        Uuid::new_v4(),
        None,
        LogFollowOptions {
            max_reconnects: 1,
            reconnect_backoff: Duration::from_millis(5),
            ..LogFollowOptions::default()
        },
    );
    let got = tokio::time::timeout(Duration::from_secs(10), logs.next())
        .await
        .expect("an answer");
    let err = got.expect("an item").expect_err("too big");
    assert!(err.to_string().contains("dropped"), "{err}");
}

// ---- hostile build logs: memory stays bounded in bytes ---------------------------------------

/// A simulator whose build logs also flood lines of `line_bytes` while a build runs.
async fn flooding_sim(speed: f64, line_bytes: usize) -> RunningSim {
    Simulator::start(SimOptions {
        speed,
        log_flood_bytes: Some(line_bytes),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts")
}

/// What tests/pty/measure.py saw of one run of `fleet ARGS` under a pseudo-terminal read at
/// `rate` bytes a second (0: as fast as it comes).
struct Measured {
    code: i64,
    peak_kib: u64,
    seconds: f64,
    cut: u64,
    dropped: Vec<u64>,
    tail: String,
}

async fn fleet_on_a_terminal(sim: &RunningSim, rate: u64, args: &[&str]) -> Measured {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty/measure.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script)
        .arg(rate.to_string())
        .args(["--", env!("CARGO_BIN_EXE_fleet")])
        .args(args)
        .env_remove("CODER_CONFIG_DIR")
        .env_remove("FLEET_CONTEXT")
        .envs(sim.env_vars());
    let out = cmd.output().await.expect("python3 runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "one JSON line ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Measured {
        code: v["code"].as_i64().unwrap_or(-1),
        peak_kib: v["peak_kib"].as_u64().unwrap_or(u64::MAX),
        seconds: v["seconds"].as_f64().unwrap_or(f64::MAX),
        cut: v["cut"].as_u64().unwrap_or(0),
        dropped: v["dropped"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n.as_u64()).collect())
            .unwrap_or_default(),
        tail: v["tail"].as_str().unwrap_or_default().to_string(),
    }
}

/// The longest log line a server can send inside fleet's WebSocket message cap.
const HUGE_LINE: usize = fleet::coder::WS_MAX_MESSAGE_BYTES - 512;

/// The target: peak RSS at most 128 MB.
const PEAK_KIB_LIMIT: u64 = 128 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_a_terminal_with_4_mib_log_lines_stays_small_and_ends_with_the_build() {
    // A restart takes ~6 s at speed 2; every line the server sends in between is 4 MiB.
    let sim = flooding_sim(2.0, HUGE_LINE).await;
    let run = fleet_on_a_terminal(&sim, 0, &["coder", "restart", "alice/dev", "--logs"]).await;
    eprintln!(
        "4 MiB lines, terminal read at full speed: peak {} KiB in {:.1} s, {} cut lines shown",
        run.peak_kib, run.seconds, run.cut
    );
    assert_eq!(run.code, 0, "{}", run.tail);
    assert!(run.tail.contains("alice/dev restarted"), "{}", run.tail);
    assert!(run.cut > 0, "the long lines are shown cut, saying so");
    assert!(run.peak_kib <= PEAK_KIB_LIMIT, "peak {} KiB", run.peak_kib);
    assert!(
        run.seconds < 30.0,
        "it ends with the build: {} s",
        run.seconds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_4_mib_log_lines_on_a_slow_terminal_stays_small() {
    // The terminal is read at 1 MiB/s (a slow SSH session): fleet blocks on its writes.
    let sim = flooding_sim(2.0, HUGE_LINE).await;
    let run =
        fleet_on_a_terminal(&sim, 1 << 20, &["coder", "restart", "alice/dev", "--logs"]).await;
    eprintln!(
        "4 MiB lines, terminal read at 1 MiB/s: peak {} KiB in {:.1} s, {} cut lines shown",
        run.peak_kib, run.seconds, run.cut
    );
    assert_eq!(run.code, 0, "{}", run.tail);
    assert!(run.tail.contains("alice/dev restarted"), "{}", run.tail);
    assert!(run.cut > 0);
    assert!(run.peak_kib <= PEAK_KIB_LIMIT, "peak {} KiB", run.peak_kib);
    assert!(
        run.seconds < 30.0,
        "it ends with the build: {} s",
        run.seconds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_terminal_loses_log_lines_and_is_told_how_many_never_the_outcome() {
    // Small lines, faster than a terminal read at 256 KiB/s can show them.
    let sim = flooding_sim(2.0, 150).await;
    let run = fleet_on_a_terminal(
        &sim,
        256 << 10,
        &["coder", "restart", "alice/dev", "--logs"],
    )
    .await;
    let lost: u64 = run.dropped.iter().sum();
    eprintln!(
        "150-byte lines, terminal read at 256 KiB/s: peak {} KiB in {:.1} s, {} notes of {lost} \
         dropped lines",
        run.peak_kib,
        run.seconds,
        run.dropped.len()
    );
    assert_eq!(run.code, 0, "{}", run.tail);
    assert!(run.tail.contains("alice/dev restarted"), "{}", run.tail);
    assert!(run.tail.contains("took"), "the whole outcome: {}", run.tail);
    assert!(!run.dropped.is_empty() && lost > 0, "told what was dropped");
    assert!(run.peak_kib <= PEAK_KIB_LIMIT, "peak {} KiB", run.peak_kib);
    assert!(
        run.seconds < 30.0,
        "it ends with the build: {} s",
        run.seconds
    );
}

/// Updates alice/dev with readiness (the default): the outcome's message, how many times the
/// agents were seen not ready yet, and the requests sent from the build's POST on (the POST
/// excluded).
async fn update_with_readiness(s: &RunningSim) -> (String, usize, Vec<(String, String)>) {
    use fleet::coder::{CoderEvent, ReadyEvent, UpdateOptions, WorkspaceRef};
    let c = coder_client(s);
    let op = c.start_update(
        WorkspaceRef::parse("alice/dev").expect("a name"),
        None,
        UpdateOptions::default(),
    );
    let mut events = op.events();
    let mut waiting = 0;
    while let Ok(e) = events.recv().await {
        if let CoderEvent::Readiness(ReadyEvent::Waiting { .. }) = e {
            waiting += 1;
        }
    }
    let message = op.outcome().await.expect("updated and ready").message;
    let log: Vec<(String, String)> = s
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .skip_while(|(m, _)| m != "POST")
        .skip(1)
        .collect();
    (message, waiting, log)
}

#[tokio::test]
async fn readiness_is_noticed_by_push_in_at_most_6_requests() {
    // Speed 4: the agent is ready about 0.25 s after the start build, so it is seen starting
    // first and its readiness arrives by a later push.
    let s = sim_with(4.0, None).await;
    let (message, waiting, log) = update_with_readiness(&s).await;
    assert!(
        message.contains("ready: 1 agent(s) connected and ready"),
        "{message}"
    );
    assert!(
        waiting >= 1,
        "the agent was seen not ready first: {message}"
    );
    let watch = log
        .iter()
        .position(|(_, p)| p.ends_with("/watch-ws"))
        .unwrap_or_else(|| panic!("readiness followed watch-ws: {log:?}"));
    // After the watch opened, no read at all: the agents came with the pushes.
    assert_eq!(
        log.len(),
        watch + 1,
        "no request after the watch opened: {log:?}"
    );
    // Both builds (2 log streams + 3 reads) and readiness (1 watch): 6, from 12 by polling.
    assert!(log.len() <= 6, "{} requests: {log:?}", log.len());
}

#[tokio::test]
async fn readiness_falls_back_to_polling_when_the_watch_drops() {
    // Every WebSocket drops after its first message: the watch gives the agent as it was
    // (not ready yet), then drops; readiness reads the build by its id from then on.
    let s = sim_with(4.0, Some(1)).await;
    let (message, waiting, log) = update_with_readiness(&s).await;
    assert!(
        message.contains("ready: 1 agent(s) connected and ready"),
        "{message}"
    );
    assert!(
        waiting >= 1,
        "the agent was seen not ready first: {message}"
    );
    let watch = log
        .iter()
        .position(|(_, p)| p.ends_with("/watch-ws"))
        .unwrap_or_else(|| panic!("the watch was tried: {log:?}"));
    let reads_after = log[watch + 1..]
        .iter()
        .filter(|(m, p)| {
            m == "GET" && p.starts_with("/api/v2/workspacebuilds/") && !p.ends_with("/logs")
        })
        .count();
    assert!(
        reads_after >= 1,
        "polled by the build's id after the drop: {log:?}"
    );
    assert_eq!(
        log.iter().filter(|(_, p)| p.ends_with("/watch-ws")).count(),
        1,
        "a dropped watch is not reopened in a loop: {log:?}"
    );
}
