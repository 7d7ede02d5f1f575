//! `update_agents` through a real MCP client (rmcp over the built `fleet-mcp`'s stdio) against
//! the simulator: verdicts per workspace, one progress stream (workspaces done of total),
//! dry runs that change nothing, invalid input, annotations.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fleet::sim::{RunningSim, SimOptions, Simulator};
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResult, NumberOrString, ProgressNotificationParam,
        ProgressToken, RequestMetaObject,
    },
    service::{NotificationContext, RunningService},
    transport::TokioChildProcess,
};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Client {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

async fn connect(sim: &RunningSim) -> (RunningService<RoleClient, Client>, Client) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleet-mcp"));
    cmd.env_clear()
        .envs(sim.env_vars())
        .env("FLEET_POLL_INTERVAL_MS", "20");
    let transport = TokioChildProcess::new(cmd).expect("fleet-mcp starts");
    let handler = Client::default();
    let running = handler
        .clone()
        .serve(transport)
        .await
        .expect("MCP handshake");
    (running, handler)
}

async fn call(client: &RunningService<RoleClient, Client>, args: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new("update_agents".to_string())
        .with_arguments(args.as_object().unwrap().clone());
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::Number(11),
    )));
    tokio::time::timeout(Duration::from_secs(60), client.call_tool(params))
        .await
        .expect("answered within a minute")
        .expect("the call is answered")
}

fn verdicts(result: &CallToolResult) -> Vec<(String, String)> {
    let report = result
        .structured_content
        .as_ref()
        .expect("structured output");
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["workspace"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn text_of(r: &CallToolResult) -> String {
    serde_json::to_string(&r.content).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_agents_updates_several_with_verdicts_and_one_progress_stream() {
    let sim = Simulator::start(SimOptions {
        speed: 100.0,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, handler) = connect(&sim).await;

    let tools = client.list_all_tools().await.expect("tools/list");
    let tool = tools
        .iter()
        .find(|t| t.name == "update_agents")
        .expect("update_agents is listed");
    let a = tool.annotations.as_ref().expect("annotations");
    assert_eq!(a.destructive_hint, Some(true));
    assert_eq!(a.read_only_hint, Some(false));
    let schema =
        serde_json::to_value(tool.output_schema.as_ref().expect("an output schema")).unwrap();
    assert!(schema.to_string().contains("verdict"), "{schema}");

    let result = call(
        &client,
        json!({"agent_names": ["dev", "ml-notebook", "api-server"], "parallel": 2}),
    )
    .await;
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    assert_eq!(
        verdicts(&result),
        [
            ("alice/dev".to_string(), "updated".to_string()),
            ("alice/ml-notebook".to_string(), "failed".to_string()),
            ("alice/api-server".to_string(), "updated".to_string()),
        ]
    );
    let report = result.structured_content.as_ref().unwrap();
    assert_eq!(report["failed"], 1);
    assert!(
        report["results"][1]["message"]
            .as_str()
            .unwrap()
            .contains("cuda-13-broken")
    );

    // Notifications may trail the answer a little.
    let began = Instant::now();
    loop {
        let done = handler
            .progress
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.progress >= 3.0);
        if done || began.elapsed() > Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // rmcp's client may hand notifications to the handler out of order: sort them by value.
    // The server sends strictly increasing values, so no two may be equal.
    let mut progress = handler.progress.lock().unwrap().clone();
    progress.sort_by(|a, b| a.progress.total_cmp(&b.progress));
    let messages: Vec<String> = progress.iter().filter_map(|p| p.message.clone()).collect();
    assert!(progress.len() >= 6, "{messages:?}");
    assert!(
        progress.windows(2).all(|w| w[0].progress < w[1].progress),
        "progress values are distinct (strictly increasing as sent): {:?}",
        progress.iter().map(|p| p.progress).collect::<Vec<_>>()
    );
    assert!(
        progress
            .iter()
            .all(|p| p.total.is_none() || p.total == Some(3.0))
    );
    assert!(
        progress.iter().skip(1).all(|p| p.total == Some(3.0)),
        "total = count"
    );
    assert_eq!(progress.last().unwrap().progress, 3.0, "ends at 3 of 3");
    assert!(
        progress
            .iter()
            .all(|p| p.progress_token == progress[0].progress_token),
        "one stream"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("[alice/dev] stop build")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("[alice/ml-notebook] failed")),
        "{messages:?}"
    );

    // A dry run over a selection: plans, no change.
    sim.clear_requests();
    let result = call(&client, json!({"all_outdated": true, "dry_run": true})).await;
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    // dev and api-server are current now; ml-notebook's failed build is on the active version.
    let v = verdicts(&result);
    let names: Vec<&str> = v.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(
        names,
        ["alice/secure-shell", "alice/slow-box", "alice/flaky"]
    );
    assert!(v.iter().all(|(_, v)| v == "would_change"), "{v:?}");
    let report = result.structured_content.as_ref().unwrap();
    assert_eq!(
        report["results"][0]["dry_run"]["builds"][0]["transition"],
        "stop"
    );
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "dry run: GETs only"
    );

    // Invalid input: a tool error, nothing sent.
    sim.clear_requests();
    for args in [
        json!({}),
        json!({"agent_names": ["dev"], "all_outdated": true}),
        json!({"agent_names": ["dev"], "parallel": 0}),
        json!({"template": "docker-dev", "parallel": 1000}),
        json!({"agent_names": ["bad/name/x"]}),
    ] {
        let result = call(&client, args.clone()).await;
        assert_eq!(result.is_error, Some(true), "{args}");
        assert!(
            text_of(&result).contains("invalid_input"),
            "{args}: {}",
            text_of(&result)
        );
    }
    assert_eq!(sim.requests().len(), 0, "nothing sent");
    client.cancel().await.ok();
}

// ---- hostile build logs: fleet-mcp's memory stays bounded, progress is coalesced -------------

/// fleet-mcp against `sim`, and its process id (to read its peak memory).
async fn connect_measured(sim: &RunningSim) -> (RunningService<RoleClient, Client>, Client, u32) {
    connect_measured_with(sim, &[], 20).await
}

/// fleet-mcp `args` against `sim`, polling at most every `poll_ms`, and its process id.
async fn connect_measured_with(
    sim: &RunningSim,
    args: &[&str],
    poll_ms: u64,
) -> (RunningService<RoleClient, Client>, Client, u32) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleet-mcp"));
    cmd.args(args)
        .env_clear()
        .envs(sim.env_vars())
        .env("FLEET_POLL_INTERVAL_MS", poll_ms.to_string());
    let transport = TokioChildProcess::new(cmd).expect("fleet-mcp starts");
    let pid = transport.id().expect("a process id");
    let handler = Client::default();
    let running = handler
        .clone()
        .serve(transport)
        .await
        .expect("MCP handshake");
    (running, handler, pid)
}

/// The peak resident memory of process `pid` so far (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .expect("VmHWM in /proc/PID/status")
}

/// restart_agent alice/dev with a progress token, waiting for the outcome: the answer, how
/// long it took, and the progress notifications it sent.
async fn restart_with_progress(
    client: &RunningService<RoleClient, Client>,
    handler: &Client,
) -> (CallToolResult, f64, Vec<ProgressNotificationParam>) {
    let mut params = CallToolRequestParams::new("restart_agent".to_string()).with_arguments(
        json!({"agent_name": "dev", "wait_seconds": 60})
            .as_object()
            .unwrap()
            .clone(),
    );
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::Number(21),
    )));
    let began = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(90), client.call_tool(params))
        .await
        .expect("answered")
        .expect("the call is answered");
    let seconds = began.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let progress = handler.progress.lock().unwrap().clone();
    (result, seconds, progress)
}

/// Log-line notifications: at most 4 a second (one every 250 ms), plus the line just before
/// each step, plus a little slack for the first and the last.
fn assert_coalesced(progress: &[ProgressNotificationParam], seconds: f64) {
    let is_line = |p: &&ProgressNotificationParam| {
        p.message
            .as_deref()
            .is_some_and(|m| m.contains("build log:") || m.contains("dropped"))
    };
    let lines = progress.iter().filter(is_line).count();
    let steps = progress.len() - lines;
    assert!(lines > 0, "the latest lines are sent");
    let most = (seconds * 4.0).ceil() as usize + steps + 4;
    assert!(
        lines <= most,
        "{lines} log notifications and {steps} steps in {seconds:.1} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mcp_with_a_progress_token_and_4_mib_log_lines_stays_small() {
    let sim = Simulator::start(SimOptions {
        speed: 2.0,
        log_flood_bytes: Some(fleet::coder::WS_MAX_MESSAGE_BYTES - 512),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, handler, pid) = connect_measured(&sim).await;
    let (result, seconds, progress) = restart_with_progress(&client, &handler).await;
    let peak = peak_kib(pid);
    eprintln!(
        "fleet-mcp, 4 MiB lines, progress token: peak {peak} KiB, {} notifications in {seconds:.1} s",
        progress.len()
    );
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    let answer = result.structured_content.as_ref().expect("structured");
    assert_eq!(answer["done"], true, "it ends with the build: {answer}");
    assert_eq!(answer["operation_state"], "succeeded");
    assert!(seconds < 30.0, "{seconds} s");
    assert!(peak <= 128 * 1024, "peak {peak} KiB");
    assert_coalesced(&progress, seconds);
    assert!(
        progress
            .iter()
            .filter_map(|p| p.message.as_deref())
            .any(|m| m.contains("more bytes cut]") && m.len() < 8 << 10),
        "a line is sent cut, saying so"
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mcp_under_a_flood_of_small_log_lines_for_half_a_minute_stays_small() {
    // A restart of alice/dev takes ~27 s at speed 0.45: 150-byte lines flat out all along.
    let sim = Simulator::start(SimOptions {
        speed: 0.45,
        log_flood_bytes: Some(150),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, handler, pid) = connect_measured(&sim).await;
    let (result, seconds, progress) = restart_with_progress(&client, &handler).await;
    let peak = peak_kib(pid);
    eprintln!(
        "fleet-mcp, 150-byte flood: peak {peak} KiB, {} notifications in {seconds:.1} s",
        progress.len()
    );
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    let answer = result.structured_content.as_ref().expect("structured");
    assert_eq!(answer["done"], true, "it ends with the build: {answer}");
    assert!(seconds >= 20.0, "the flood lasted {seconds} s");
    assert!(peak <= 128 * 1024, "peak {peak} KiB");
    assert_coalesced(&progress, seconds);
    client.cancel().await.ok();
}

/// Calls any tool (no progress token).
async fn call_tool(
    client: &RunningService<RoleClient, Client>,
    tool: &str,
    args: Value,
) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().unwrap().clone());
    tokio::time::timeout(Duration::from_secs(60), client.call_tool(params))
        .await
        .expect("answered within a minute")
        .expect("the call is answered")
}

/// The requests that change state (anything but GET), as "METHOD path".
fn changes(sim: &RunningSim) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| !r.method.eq_ignore_ascii_case("GET"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_destructive_tool_takes_dry_run_and_sends_only_reads() {
    let sim = Simulator::start(SimOptions {
        speed: 100.0,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, _) = connect(&sim).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let destructive: Vec<String> = tools
        .iter()
        .filter(|t| t.annotations.as_ref().and_then(|a| a.destructive_hint) == Some(true))
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(destructive.len(), 5, "{destructive:?}");
    for name in &destructive {
        let tool = tools.iter().find(|t| &t.name == name).unwrap();
        assert!(
            tool.input_schema["properties"].get("dry_run").is_some(),
            "{name} takes dry_run"
        );
    }
    let before = sim.coder_build_history("alice/dev");
    sim.clear_requests();
    // confirm: true next to dry_run: a dry run still starts nothing.
    let calls = [
        (
            "update_agent",
            json!({"agent_name": "alice/dev", "dry_run": true}),
        ),
        (
            "restart_agent",
            json!({"agent_name": "alice/dev", "dry_run": true}),
        ),
        (
            "update_agents",
            json!({"agent_names": ["alice/dev", "alice/api-server"], "dry_run": true}),
        ),
        (
            "migrate_workspace_provider",
            json!({"workspace_id": "ws-aws-demo", "to": "gcp", "confirm": true, "dry_run": true}),
        ),
        (
            "migrate_workspace_provider",
            json!({"workspace_id": "ws-aws-demo", "to": "hetzner", "dry_run": true}),
        ),
        (
            "migrate_workspaces",
            json!({"workspace_ids": ["ws-aws-demo", "ws-migrating"], "from": "aws", "to": "hetzner", "confirm": true, "dry_run": true}),
        ),
    ];
    for (tool, args) in calls {
        let r = call_tool(&client, tool, args.clone()).await;
        assert_ne!(r.is_error, Some(true), "{tool} {args}: {}", text_of(&r));
        let answer = r.structured_content.clone().expect("structured content");
        let plan = match tool {
            "update_agents" => answer["results"][0]["dry_run"].clone(),
            "migrate_workspaces" => answer["dry_run"][1].clone(),
            _ => answer["dry_run"].clone(),
        };
        assert!(
            plan["summary"]
                .as_str()
                .is_some_and(|s| s.contains("would")),
            "{tool} answers the plan: {answer}"
        );
        match tool {
            "update_agent" | "restart_agent" | "update_agents" => {
                // The path and each value's source, as the CLI's --dry-run shows them.
                assert!(plan["plan"]["path"].is_string(), "{plan}");
                assert!(
                    plan["plan"]["parameters"][0]["source"].is_string(),
                    "{plan}"
                );
                assert_eq!(plan["builds"][0]["transition"], json!("stop"), "{plan}");
            }
            _ => {
                assert!(plan["from_source"].is_string(), "{plan}");
                assert!(plan["route"]["base_url"].is_string(), "{plan}");
            }
        }
        assert!(answer.get("operation_id").is_none() || tool == "update_agents");
        assert_eq!(changes(&sim), Vec::<String>::new(), "{tool} sent a change");
    }
    assert!(!sim.requests().is_empty(), "the dry runs read");
    assert_eq!(sim.coder_build_history("alice/dev"), before);
    // A dry run on a migration tool needs no confirm, and a real call still does.
    let r = call_tool(
        &client,
        "migrate_workspace_provider",
        json!({"workspace_id": "ws-aws-demo", "to": "gcp"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("confirm"), "{}", text_of(&r));
    assert_eq!(changes(&sim), Vec::<String>::new());
}

// ---- caps: builds in flight across all operations, unfinished operations --------------------

/// `restart_agent NAME` with wait_seconds 0: it answers at once with its operation.
async fn restart_now(peer: &rmcp::Peer<RoleClient>, name: &str) -> CallToolResult {
    let params = CallToolRequestParams::new("restart_agent".to_string()).with_arguments(
        json!({"agent_name": name, "wait_seconds": 0})
            .as_object()
            .unwrap()
            .clone(),
    );
    tokio::time::timeout(Duration::from_secs(60), peer.call_tool(params))
        .await
        .expect("answered within a minute")
        .expect("the call is answered")
}

async fn tool(client: &RunningService<RoleClient, Client>, name: &str, args: Value) -> Value {
    let params = CallToolRequestParams::new(name.to_string())
        .with_arguments(args.as_object().unwrap().clone());
    let r = client.call_tool(params).await.expect("answered");
    assert_ne!(r.is_error, Some(true), "{name}: {}", text_of(&r));
    r.structured_content.expect("structured")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_restarts_keep_at_most_64_builds_in_flight_the_rest_queued() {
    let sim = Simulator::start(SimOptions {
        speed: 10.0,
        bulk_workspaces: 300,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, _handler, pid) =
        connect_measured_with(&sim, &["--max-operations", "1000"], 200).await;
    let began = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 1..=300 {
        let peer = client.peer().clone();
        calls.spawn(async move { restart_now(&peer, &format!("bulk-{i:04}")).await });
    }
    let mut ids = Vec::new();
    while let Some(r) = calls.join_next().await {
        let r = r.expect("the call task");
        assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
        let answer = r.structured_content.expect("structured");
        ids.push(answer["operation_id"].as_str().unwrap().to_string());
    }
    let started = began.elapsed();
    assert_eq!(ids.len(), 300);

    // While they run: the work beyond the limit waits, shown as queued. (Finished ones are
    // pruned beyond the 200 kept: what the list holds is this session's, all done at the end.)
    let mut queued_seen = 0;
    let mut all_done = false;
    while began.elapsed() < Duration::from_secs(90) {
        let list = tool(&client, "list_operations", json!({})).await;
        let ops = list["operations"].as_array().unwrap();
        assert!(
            ops.iter()
                .all(|o| ids.iter().any(|id| o["id"] == id.as_str())),
            "only this session's operations"
        );
        let queued = ops
            .iter()
            .filter(|o| o["workspaces"][0]["phase"] == "queued")
            .count();
        queued_seen = queued_seen.max(queued);
        if ops.iter().all(|o| o["done"] == true) {
            let states: Vec<&Value> = ops.iter().map(|o| &o["state"]).collect();
            assert!(states.iter().all(|s| *s == "succeeded"), "{states:?}");
            all_done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The simulator's view: every workspace was stopped and started again.
    for i in 1..=300 {
        let history = sim.coder_build_history(&format!("alice/bulk-{i:04}"));
        let transitions: Vec<&str> = history.iter().map(|(t, _)| t.as_str()).collect();
        assert!(
            transitions.ends_with(&["stop", "start"]),
            "bulk-{i:04}: {transitions:?}"
        );
    }
    let peak = peak_kib(pid);
    let most = sim.coder_max_active_builds();
    eprintln!(
        "300 concurrent restarts: answered in {:.1} s, done in {:.1} s, at most {most} builds \
         active at once, at most {queued_seen} queued at a look, fleet-mcp peak {peak} KiB",
        started.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    assert!(all_done, "every restart ended");
    assert!(most <= 64, "{most} builds were active at once");
    assert!(most >= 32, "the restarts ran side by side ({most} at most)");
    assert!(
        queued_seen > 0,
        "the work beyond the limit showed as queued"
    );
    assert!(peak <= 128 * 1024, "peak {peak} KiB");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_operations_a_new_operation_is_refused_and_nothing_is_started() {
    let sim = Simulator::start(SimOptions {
        speed: 5.0,
        bulk_workspaces: 4,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, _handler, _pid) =
        connect_measured_with(&sim, &["--max-operations", "3"], 50).await;
    let peer = client.peer().clone();
    let mut ids = Vec::new();
    for name in ["bulk-0001", "bulk-0002", "bulk-0003"] {
        let r = restart_now(&peer, name).await;
        assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
        ids.push(r.structured_content.unwrap()["operation_id"].clone());
    }
    let fourth = sim.coder_workspace_id("alice/bulk-0004").unwrap();
    let r = restart_now(&peer, "bulk-0004").await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    let text = text_of(&r);
    assert!(
        text.contains("3 operations have not finished yet"),
        "{text}"
    );
    assert!(text.contains("nothing was started"), "{text}");
    assert!(text.contains("list_operations"), "{text}");
    let touched = |sim: &RunningSim| {
        sim.requests()
            .iter()
            .any(|q| q.path.contains(&fourth.to_string()) && q.method == "POST")
    };
    assert!(!touched(&sim), "nothing was sent for the refused one");

    // Once they have ended, there is room again.
    for id in &ids {
        let report = tool(
            &client,
            "get_operation",
            json!({"operation_id": id, "wait_seconds": 60}),
        )
        .await;
        assert_eq!(report["done"], true, "{report}");
    }
    let r = restart_now(&peer, "bulk-0004").await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_restart_shows_as_queued_and_cancelling_it_changes_nothing() {
    let sim = Simulator::start(SimOptions {
        speed: 2.0,
        bulk_workspaces: 2,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, _handler, _pid) =
        connect_measured_with(&sim, &["--max-in-flight-builds", "1"], 50).await;
    let peer = client.peer().clone();
    let first = restart_now(&peer, "bulk-0001").await;
    let first = first.structured_content.unwrap()["operation_id"].clone();
    // Let the first take the only place (planned, then its stop build).
    let began = Instant::now();
    while sim.coder_build_history("alice/bulk-0001").len() < 2
        && began.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = restart_now(&peer, "bulk-0002").await;
    let second = second.structured_content.unwrap()["operation_id"].clone();
    let mut phase = Value::Null;
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(10) {
        let report = tool(&client, "get_operation", json!({"operation_id": second})).await;
        phase = report["workspaces"][0]["phase"].clone();
        if phase == "queued" {
            assert!(
                report["latest_step"]
                    .as_str()
                    .unwrap()
                    .contains("the most builds allowed at once (1) are in flight"),
                "{report}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(phase, "queued", "the second waits its turn");
    let before = sim.coder_build_history("alice/bulk-0002").len();
    let cancelled = tool(&client, "cancel_operation", json!({"operation_id": second})).await;
    let report = tool(
        &client,
        "get_operation",
        json!({"operation_id": second, "wait_seconds": 10}),
    )
    .await;
    assert_eq!(report["state"], "cancelled", "{cancelled} {report}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before anything was changed"),
        "{report}"
    );
    let report = tool(
        &client,
        "get_operation",
        json!({"operation_id": first, "wait_seconds": 30}),
    )
    .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(
        sim.coder_build_history("alice/bulk-0002").len(),
        before,
        "no build for the cancelled one"
    );
    client.cancel().await.ok();
}
