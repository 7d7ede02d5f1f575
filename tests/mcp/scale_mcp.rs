//! `update_agents` through a real MCP client (rmcp over the built `fleet-mcp`'s stdio) against
//! the simulator: verdicts per workspace, one progress stream (workspaces done of total),
//! dry runs that change nothing, invalid input, annotations.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::support::mcp::{call_tool, call_tool_with_progress, fleet_mcp, text_of};
use crate::support::sim::changes;
use fleet::sim::{RunningSim, SimOptions, Simulator};
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{CallToolResult, ProgressNotificationParam},
    service::{NotificationContext, RunningService},
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
    let handler = Client::default();
    let running = fleet_mcp(&[]).sim(sim).connect_with(handler.clone()).await;
    (running, handler)
}

async fn call(client: &RunningService<RoleClient, Client>, args: Value) -> CallToolResult {
    call_tool_with_progress(client, "update_agents", args, 11).await
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
    // Output schemas keep their types without prose: no descriptions (the tool's description
    // says what the fields mean), no $schema on every schema, no default: null.
    let mut output_bytes = 0;
    for t in &tools {
        let schema =
            serde_json::to_value(t.output_schema.as_ref().expect("an output schema")).unwrap();
        let text = schema.to_string();
        output_bytes += text.len();
        assert!(!text.contains("\"$schema\""), "{}: {text}", t.name);
        assert!(!text.contains("\"default\":null"), "{}: {text}", t.name);
        fn has_prose(v: &Value) -> bool {
            match v {
                Value::Object(o) => o.iter().any(|(k, v)| {
                    (k == "description" || k == "title") && v.is_string()
                        || if k == "properties" {
                            v.as_object().is_some_and(|p| p.values().any(has_prose))
                        } else {
                            has_prose(v)
                        }
                }),
                Value::Array(a) => a.iter().any(has_prose),
                _ => false,
            }
        }
        assert!(!has_prose(&schema), "{}: {text}", t.name);
        // Every property is a schema object: MCP clients (the conformance suite among them)
        // refuse a boolean schema such as `true` there.
        fn boolean_property(v: &Value) -> bool {
            match v {
                Value::Object(o) => o.iter().any(|(k, v)| {
                    if k == "properties" {
                        v.as_object().is_some_and(|p| {
                            p.values().any(|p| p.is_boolean() || boolean_property(p))
                        })
                    } else {
                        boolean_property(v)
                    }
                }),
                Value::Array(a) => a.iter().any(boolean_property),
                _ => false,
            }
        }
        assert!(!boolean_property(&schema), "{}: {text}", t.name);
        assert!(text.contains("\"type\""), "{}: types stay: {text}", t.name);
    }
    // 78 KB with the prose; 22 KB without.
    assert!(
        output_bytes < 25_000,
        "output schemas: {output_bytes} bytes"
    );

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
    // The answer is compact; the plans themselves are behind get_operation's detail "full".
    let report = result.structured_content.as_ref().unwrap();
    assert!(report["results"][0].get("dry_run").is_none(), "{report}");
    let full = call_tool(
        &client,
        "get_operation",
        json!({"operation_id": report["operation_id"], "detail": "full"}),
    )
    .await;
    let full = full.structured_content.expect("structured");
    assert_eq!(
        full["results"][0]["dry_run"]["builds"][0]["transition"], "stop",
        "{full}"
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
    let transport = fleet_mcp(args)
        .sim(sim)
        .poll_interval_ms(poll_ms)
        .transport();
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
    let began = Instant::now();
    let result = call_tool_with_progress(
        client,
        "restart_agent",
        json!({"agent_name": "dev", "wait_seconds": 60}),
        21,
    )
    .await;
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
    assert_eq!(destructive.len(), 6, "{destructive:?}");
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
        (
            "promote_template_version",
            json!({"template": "shop", "version": "v2", "confirm": true, "dry_run": true, "wait_seconds": 50}),
        ),
    ];
    for (tool, args) in calls {
        let r = call_tool(&client, tool, args.clone()).await;
        assert_ne!(r.is_error, Some(true), "{tool} {args}: {}", text_of(&r));
        let answer = r.structured_content.clone().expect("structured content");
        if tool == "promote_template_version" {
            // Its plan: the canaries, then the promotion, then the rest, as names and counts.
            assert_eq!(answer["outcome"], json!("planned"), "{answer}");
            assert_eq!(
                answer["canaries"].as_array().map(Vec::len),
                Some(1),
                "{answer}"
            );
            assert_eq!(changes(&sim), Vec::<String>::new(), "{tool} sent a change");
            continue;
        }
        let plan = match tool {
            // A batch answers compact rows; its plans are behind get_operation detail=full.
            "update_agents" => {
                assert_eq!(answer["dry_run"], json!(true), "{answer}");
                assert_eq!(answer["counts"]["would_change"], json!(2), "{answer}");
                let full = call_tool(
                    &client,
                    "get_operation",
                    json!({"operation_id": answer["operation_id"], "detail": "full"}),
                )
                .await;
                let full = full.structured_content.expect("structured content");
                full["results"][0]["dry_run"].clone()
            }
            "migrate_workspaces" => {
                assert_eq!(answer["dry_run"], json!(true), "{answer}");
                assert_eq!(answer["counts"]["would_migrate"], json!(1), "{answer}");
                assert_eq!(answer["counts"]["blocked"], json!(1), "{answer}");
                let full = call_tool(
                    &client,
                    "get_operation",
                    json!({"operation_id": answer["operation_id"], "detail": "full"}),
                )
                .await;
                let full = full.structured_content.expect("structured content");
                full["results"][1]["plan"].clone()
            }
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
        assert!(
            answer.get("operation_id").is_none()
                || matches!(tool, "update_agents" | "migrate_workspaces")
        );
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
    call_tool(
        peer,
        "restart_agent",
        json!({"agent_name": name, "wait_seconds": 0}),
    )
    .await
}

async fn tool(client: &RunningService<RoleClient, Client>, name: &str, args: Value) -> Value {
    let r = call_tool(client, name, args).await;
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
        // Every page of this session's operations (one line each, with counts by phase).
        let mut ops: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut args = json!({"limit": 200});
            if let Some(c) = &cursor {
                args["cursor"] = json!(c);
            }
            let list = tool(&client, "list_operations", args).await;
            ops.extend(list["operations"].as_array().unwrap().iter().cloned());
            match list["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert!(
            ops.iter()
                .all(|o| ids.iter().any(|id| o["id"] == id.as_str())),
            "only this session's operations"
        );
        let queued = ops
            .iter()
            .filter(|o| o["counts"]["queued"].as_u64().unwrap_or(0) > 0)
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

// ---------------------------------------------------------------------------------------------
// Answers at fleet scale: every answer within an agent's context, lists that page exactly once
// ---------------------------------------------------------------------------------------------

/// The bound of every tool result (its text and its structuredContent each), in o200k tokens.
const MAX_ANSWER_TOKENS: usize = 5_000;

/// o200k token counts of `texts`, by the shared counter (`shared/tools/count_tokens.py`) run
/// with FLEET_TEST_PYTHON (else python3). None when its modules are missing, outside CI; under
/// CI=true a missing counter fails the test.
fn count_tokens(texts: &[String]) -> Option<Vec<usize>> {
    let counter = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/tools/count_tokens.py")
        .canonicalize()
        .ok();
    let python = std::env::var("FLEET_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let script = "import json, sys\n\
        sys.path.insert(0, sys.argv[1])\n\
        import count_tokens\n\
        print(json.dumps([count_tokens.count(t) for t in json.load(sys.stdin)]))\n";
    let run = counter.as_ref().and_then(|c| {
        let mut child = std::process::Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(c.parent().unwrap())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(serde_json::to_string(texts).unwrap().as_bytes())
            .ok()?;
        child.wait_with_output().ok()
    });
    match run {
        Some(out) if out.status.success() => {
            Some(serde_json::from_slice(&out.stdout).expect("the counter prints a JSON list"))
        }
        other => {
            let why = match (&counter, other) {
                (None, _) => "shared/tools/count_tokens.py is missing".to_string(),
                (_, None) => format!("{python} does not run"),
                (_, Some(out)) => String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            assert!(
                !ci,
                "the token counter must run under CI (pip install tiktoken bpe-openai; \
                 FLEET_TEST_PYTHON names the venv's python): {why}"
            );
            eprintln!("SKIPPED token counts: {why}");
            None
        }
    }
}

/// fleet-mcp against `sim`, every list_agents page listed afresh (no reuse of the latest
/// listing), so that states change between the pages of a walk.
async fn connect_fresh(sim: &RunningSim) -> (RunningService<RoleClient, Client>, Client) {
    let handler = Client::default();
    let running = fleet_mcp(&[])
        .sim(sim)
        .env("FLEET_MCP_LIST_REUSE_MS", "0")
        .connect_with(handler.clone())
        .await;
    (running, handler)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_stays_within_5000_tokens_over_2000_workspaces() {
    let sim = Simulator::start(SimOptions {
        speed: 200.0,
        bulk_workspaces: 2_000,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, _) = connect(&sim).await;
    let mut answers: Vec<(String, CallToolResult)> = Vec::new();
    let mut ask = async |label: &str, name: &str, args: Value| {
        let r = call_tool(&client, name, args).await;
        answers.push((label.to_string(), r.clone()));
        r
    };
    let first = ask("list_agents", "list_agents", json!({})).await;
    let s = first.structured_content.clone().expect("structured");
    assert!(s["count"].as_u64().unwrap() >= 2_000, "{s}");
    assert_eq!(s["workspaces"].as_array().unwrap().len(), 50, "{s}");
    assert!(s["next_cursor"].is_string(), "{s}");
    assert!(
        !s.to_string().contains("template_active_version_id"),
        "compact rows carry no UUIDs: {s}"
    );
    ask(
        "list_agents limit 200",
        "list_agents",
        json!({"limit": 200}),
    )
    .await;
    let full = ask(
        "list_agents full",
        "list_agents",
        json!({"limit": 200, "detail": "full"}),
    )
    .await;
    let full = full.structured_content.expect("structured");
    assert!(full["truncated"].is_string(), "a full page is cut: {full}");
    assert!(full["workspaces"][0]["latest_build"].is_object(), "{full}");
    ask(
        "list_agents filtered",
        "list_agents",
        json!({"outdated": true, "owner": "alice", "name_prefix": "bulk-1", "status": "running"}),
    )
    .await;
    ask(
        "show_agent",
        "show_agent",
        json!({"agent_name": "alice/bulk-0001"}),
    )
    .await;
    let plan = ask(
        "update_agents dry run",
        "update_agents",
        json!({"all_outdated": true, "all_owners": true, "dry_run": true, "wait_seconds": 170}),
    )
    .await;
    let plan = plan.structured_content.expect("structured");
    assert_eq!(plan["done"], true, "the plan is done: {plan}");
    assert!(plan["total"].as_u64().unwrap() >= 2_000, "{plan}");
    assert!(
        plan["counts"]["would_change"].as_u64().unwrap() >= 2_000,
        "{plan}"
    );
    assert!(plan["next_cursor"].is_string(), "{plan}");
    let id = plan["operation_id"].as_str().unwrap().to_string();
    let page = ask(
        "get_operation of the plan",
        "get_operation",
        json!({"operation_id": id}),
    )
    .await;
    let cursor = page.structured_content.as_ref().unwrap()["next_cursor"].clone();
    assert!(cursor.is_string(), "{:?}", page.structured_content);
    ask(
        "get_operation page 2",
        "get_operation",
        json!({"operation_id": id, "cursor": cursor, "limit": 200}),
    )
    .await;
    ask(
        "get_operation detail full",
        "get_operation",
        json!({"operation_id": id, "detail": "full", "limit": 200}),
    )
    .await;
    ask(
        "get_template",
        "get_template",
        json!({"template": "docker-dev"}),
    )
    .await;
    // A promotion's plan over the whole fleet: counts and names, never a row per workspace.
    let promo = ask(
        "promote_template_version dry run",
        "promote_template_version",
        json!({"template": "docker-dev", "version": "v3", "dry_run": true, "wait_seconds": 170}),
    )
    .await;
    let promo = promo.structured_content.expect("structured");
    assert_eq!(promo["done"], true, "{promo}");
    assert!(promo["rest"].as_u64().unwrap() >= 2_000, "{promo}");
    ask(
        "get_operation of the promotion plan",
        "get_operation",
        json!({"operation_id": promo["operation_id"]}),
    )
    .await;
    let run = ask(
        "update_agents at wait_seconds",
        "update_agents",
        json!({"all_outdated": true, "all_owners": true, "parallel": 32, "wait_seconds": 2}),
    )
    .await;
    let run = run.structured_content.expect("structured");
    let run_id = run["operation_id"].as_str().unwrap().to_string();
    ask(
        "get_operation of the run",
        "get_operation",
        json!({"operation_id": run_id}),
    )
    .await;
    ask(
        "cancel_operation",
        "cancel_operation",
        json!({"operation_id": run_id}),
    )
    .await;
    ask("list_operations", "list_operations", json!({})).await;
    let ids: Vec<String> = (1..=300).map(|i| format!("ws-bulk-{i:04}")).collect();
    ask(
        "migrate_workspaces",
        "migrate_workspaces",
        json!({"workspace_ids": ids, "to": "hetzner", "confirm": true, "parallel": 64, "wait_seconds": 2}),
    )
    .await;
    ask(
        "a refused call",
        "update_agent",
        json!({"agent_name": "alice/no-such-workspace"}),
    )
    .await;
    let listed = ask("list_operations after", "list_operations", json!({})).await;
    // list_operations pages too: one operation a page, each once.
    let count = listed.structured_content.unwrap()["count"]
        .as_u64()
        .unwrap() as usize;
    assert!(count >= 3, "{count}");
    let mut ids = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut args = json!({"limit": 1});
        if !cursor.is_null() {
            args["cursor"] = cursor.clone();
        }
        let page = call_tool(&client, "list_operations", args).await;
        let page = page.structured_content.expect("structured");
        let ops = page["operations"].as_array().unwrap();
        assert_eq!(ops.len(), 1, "{page}");
        assert!(
            ops[0].get("workspaces").is_none(),
            "one line, no rows: {page}"
        );
        ids.push(ops[0]["id"].as_str().unwrap().to_string());
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (count, count), "{ids:?}");

    let mut texts = Vec::new();
    for (_, r) in &answers {
        let text: String = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        texts.push(text);
        texts.push(
            r.structured_content
                .as_ref()
                .map(|s| serde_json::to_string(s).unwrap())
                .unwrap_or_default(),
        );
    }
    let Some(counts) = count_tokens(&texts) else {
        return;
    };
    let mut report = Vec::new();
    for (i, (label, _)) in answers.iter().enumerate() {
        let (t, s) = (counts[2 * i], counts[2 * i + 1]);
        report.push(format!("{label}: text {t}, structured {s}"));
    }
    eprintln!("{}", report.join("\n"));
    for (i, (label, r)) in answers.iter().enumerate() {
        let (t, s) = (counts[2 * i], counts[2 * i + 1]);
        assert!(
            t <= MAX_ANSWER_TOKENS && s <= MAX_ANSWER_TOKENS,
            "{label}: text {t} tokens, structuredContent {s} tokens (bound {MAX_ANSWER_TOKENS})"
        );
        assert!(t > 0, "{label}: an answer has a text block");
        if let Some(structured) = &r.structured_content {
            // The text block carries the same compact answer.
            let text = texts[2 * i].as_str();
            assert_eq!(
                serde_json::from_str::<Value>(text).ok().as_ref(),
                Some(structured),
                "{label}: the text block is the structured answer"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_list_agents_sees_every_workspace_once_while_a_rollout_changes_states() {
    let sim = Simulator::start(SimOptions {
        speed: 100.0,
        bulk_workspaces: 2_000,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, _) = connect_fresh(&sim).await;
    let expected = call_tool(&client, "list_agents", json!({"limit": 1})).await;
    let total = expected.structured_content.unwrap()["count"]
        .as_u64()
        .unwrap() as usize;
    assert!(total >= 2_000);
    let run = call_tool(
        &client,
        "update_agents",
        json!({"all_outdated": true, "all_owners": true, "parallel": 32, "wait_seconds": 1}),
    )
    .await;
    let run = run.structured_content.expect("structured");
    assert_eq!(run["done"], false, "the rollout goes on: {run}");
    let id = run["operation_id"].as_str().unwrap().to_string();
    // The operation's events only grow: more of them after the walk means it moved on.
    let events = async |client: &RunningService<RoleClient, Client>| -> u64 {
        let op = call_tool(client, "get_operation", json!({"operation_id": id})).await;
        op.structured_content.unwrap()["events"].as_u64().unwrap()
    };
    let before = events(&client).await;
    let mut seen: Vec<String> = Vec::new();
    let mut statuses = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"limit": 100});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = call_tool(&client, "list_agents", args).await;
        assert_ne!(page.is_error, Some(true), "{}", text_of(&page));
        let page = page.structured_content.unwrap();
        for w in page["workspaces"].as_array().unwrap() {
            seen.push(w["full_name"].as_str().unwrap().to_string());
            statuses.insert(w["status"].as_str().unwrap_or("").to_string());
        }
        pages += 1;
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
        // Give the rollout time to move workspaces between pages.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = events(&client).await;
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a workspace was listed twice");
    assert_eq!(seen.len(), total, "every workspace once ({pages} pages)");
    let keys: Vec<String> = seen.iter().map(|s| s.to_lowercase()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted by owner/name");
    assert!(
        after > before,
        "the rollout went on during the walk ({before} -> {after} events)"
    );
    assert!(
        statuses.len() > 1,
        "the walk saw workspaces in several states: {statuses:?}"
    );
    // A cursor for other filters is refused, nothing sent.
    let first = call_tool(&client, "list_agents", json!({"limit": 5})).await;
    let c = first.structured_content.unwrap()["next_cursor"].clone();
    sim.clear_requests();
    let refused = call_tool(
        &client,
        "list_agents",
        json!({"cursor": c, "outdated": true}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text_of(&refused).contains("cursor"),
        "{}",
        text_of(&refused)
    );
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.path.trim_end_matches('/') != "/api/v2/workspaces"),
        "nothing listed for a refused cursor"
    );
    call_tool(&client, "cancel_operation", json!({"operation_id": id})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_are_cut_to_the_bound_and_say_so() {
    // A Coder whose workspaces carry huge names in hard-to-tokenize scripts and huge errors.
    let server = httpmock::MockServer::start_async().await;
    let cjk: String = (0..2_000)
        .map(|i| char::from_u32(0x4e00 + (i * 7919) % 20_000).unwrap())
        .collect();
    let astral: String = (0..1_000)
        .map(|i| char::from_u32(0x1_0000 + (i * 104_729) % 0xf_0000).unwrap_or('x'))
        .collect();
    let printable: String = (0..3_000)
        .map(|i| char::from(b'!' + ((i * 37) % 94) as u8))
        .collect();
    let error: String = printable.repeat(2);
    let workspace = |i: usize| {
        json!({
            "id": format!("00000000-0000-4000-8000-{i:012}"),
            "name": format!("{printable}{i}"),
            "owner_name": cjk,
            "template_name": astral,
            "template_active_version_id": "11111111-1111-4111-8111-111111111111",
            "outdated": true,
            "latest_build": {
                "id": format!("22222222-2222-4222-8222-{i:012}"),
                "build_number": 1,
                "transition": "start",
                "status": "failed",
                "job": {"status": "failed", "error": error},
                "template_version_id": "33333333-3333-4333-8333-333333333333",
                "template_version_name": cjk,
            },
        })
    };
    let all: Vec<Value> = (0..150).map(workspace).collect();
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v2/workspaces");
            then.status(200)
                .json_body(json!({"workspaces": all, "count": 150}));
        })
        .await;
    let one = workspace(7);
    server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v2/workspaces/00000000-0000-4000-8000-000000000007");
            then.status(200).json_body(one);
        })
        .await;
    let client = fleet_mcp(&[])
        .coder(&server.base_url(), "hostile-test-token")
        .connect_with(Client::default())
        .await;
    let mut answers = Vec::new();
    for (name, args) in [
        ("list_agents", json!({})),
        ("list_agents", json!({"limit": 200, "detail": "full"})),
        (
            "show_agent",
            json!({"agent_name": "00000000-0000-4000-8000-000000000007"}),
        ),
    ] {
        let r = call_tool(&client, name, args).await;
        assert_ne!(r.is_error, Some(true), "{name}: {}", text_of(&r));
        let s = r.structured_content.clone().expect("structured");
        answers.push((name, s));
    }
    // Each says what was cut and how to go on.
    for (name, s) in &answers {
        let text = s.to_string();
        assert!(
            s.get("truncated").is_some() || text.contains('…'),
            "{name}: a cut answer says so: {}",
            &text[..text.len().min(400)]
        );
    }
    assert!(answers[0].1["next_cursor"].is_string(), "the list goes on");
    let texts: Vec<String> = answers.iter().map(|(_, s)| s.to_string()).collect();
    let Some(counts) = count_tokens(&texts) else {
        return;
    };
    for ((name, _), n) in answers.iter().zip(counts) {
        eprintln!("hostile {name}: {n} tokens");
        assert!(n <= MAX_ANSWER_TOKENS, "{name}: {n} tokens");
    }
}

/// The text and the structuredContent of each answer, each at most [`MAX_ANSWER_TOKENS`] by the
/// shared counter (when it runs here; counted in one run of it).
fn assert_within_bound(answers: &[(String, CallToolResult)]) {
    let texts: Vec<String> = answers
        .iter()
        .flat_map(|(_, r)| {
            [
                text_of(r),
                serde_json::to_string(r.structured_content.as_ref().expect("structured")).unwrap(),
            ]
        })
        .collect();
    if let Some(counts) = count_tokens(&texts) {
        for (i, n) in counts.into_iter().enumerate() {
            let what = ["text", "structuredContent"][i % 2];
            assert!(
                n <= MAX_ANSWER_TOKENS,
                "{}: its {what} is {n} tokens, over {MAX_ANSWER_TOKENS}",
                answers[i / 2].0
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_workspaces_dry_run_over_300_workspaces_answers_a_summary_and_pages_each_plan_once()
{
    let sim = Simulator::start(SimOptions {
        speed: 200.0,
        bulk_workspaces: 300,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let (client, _) = connect(&sim).await;
    // 300 that would migrate; late in the list, one the control plane would refuse (a
    // migration in progress) and one unknown: both must lead the answer, and hide no plan.
    let mut ids: Vec<String> = (1..=300).map(fleet::sim::bulk_molecule_workspace).collect();
    ids.insert(250, "ws-migrating".into());
    ids.insert(280, "ws-no-such-workspace".into());
    let r = call_tool(
        &client,
        "migrate_workspaces",
        json!({"workspace_ids": ids, "to": "hetzner", "dry_run": true, "parallel": 16, "wait_seconds": 120}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let mut answers = vec![("migrate_workspaces dry run".to_string(), r.clone())];
    let s = r.structured_content.clone().expect("structured");
    assert_eq!(s["done"], true, "{s}");
    assert_eq!(s["dry_run"], true, "{s}");
    assert_eq!(s["total"], json!(302), "{s}");
    assert_eq!(s["counts"]["would_migrate"], json!(300), "{s}");
    assert_eq!(s["counts"]["blocked"], json!(1), "{s}");
    assert_eq!(s["counts"]["refused"], json!(1), "{s}");
    let attention: Vec<&str> = s["attention"]
        .as_array()
        .expect("the rows needing attention")
        .iter()
        .map(|a| a["workspace"].as_str().unwrap())
        .collect();
    assert_eq!(attention, ["ws-migrating", "ws-no-such-workspace"], "{s}");
    assert!(
        s["attention"][1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ws-no-such-workspace")),
        "the refusal says why: {s}"
    );
    let first = &s["results"][0];
    assert_eq!(first["workspace"], json!(ids[0]), "{s}");
    assert_eq!(first["verdict"], json!("would_migrate"), "{s}");
    assert_eq!(
        (&first["from"], &first["to"]),
        (&json!("aws"), &json!("hetzner"))
    );
    assert!(
        first["message"]
            .as_str()
            .is_some_and(|m| m.contains("POST")),
        "what would be sent, in a few words: {s}"
    );
    let page = s["results"].as_array().unwrap().len();
    assert!(page > 0 && page < ids.len(), "a page of rows: {page}");
    assert!(s["next_cursor"].is_string(), "{s}");
    assert!(
        !s.to_string().contains("\"route\""),
        "the plans are not inline: {s}"
    );
    assert_eq!(
        changes(&sim),
        Vec::<String>::new(),
        "a dry run sent a change"
    );
    let id = s["operation_id"]
        .as_str()
        .expect("an operation id")
        .to_string();

    // get_operation pages the compact rows: every workspace once, in the order given.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut args = json!({"operation_id": id, "limit": 100});
        if !cursor.is_null() {
            args["cursor"] = cursor.clone();
        }
        let r = call_tool(&client, "get_operation", args).await;
        assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
        answers.push(("get_operation of the dry run".into(), r.clone()));
        let s = r.structured_content.expect("structured");
        for w in s["workspaces"].as_array().expect("a page of workspaces") {
            seen.push(w["target"].as_str().unwrap().to_string());
        }
        cursor = s["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, ids, "each workspace once, in order");

    // detail="full": each whole plan (or refusal) once.
    let mut plans: Vec<String> = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let mut args = json!({"operation_id": id, "detail": "full", "limit": 100});
        if !cursor.is_null() {
            args["cursor"] = cursor.clone();
        }
        let r = call_tool(&client, "get_operation", args).await;
        assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
        answers.push(("get_operation detail=full of the dry run".into(), r.clone()));
        let s = r.structured_content.expect("structured");
        for p in s["results"].as_array().expect("a page of whole results") {
            let w = p["workspace_id"].as_str().unwrap().to_string();
            match w.as_str() {
                "ws-no-such-workspace" => {
                    assert_eq!(p["verdict"], json!("refused"), "{p}");
                    assert!(p["plan"].is_null(), "{p}");
                }
                "ws-migrating" => {
                    assert_eq!(p["verdict"], json!("blocked"), "{p}");
                    assert!(p["plan"]["blocked"].is_string(), "{p}");
                }
                _ => {
                    assert_eq!(p["verdict"], json!("would_migrate"), "{p}");
                    assert!(p["plan"]["route"]["base_url"].is_string(), "{p}");
                    assert_eq!(p["plan"]["from_source"], json!("looked_up"), "{p}");
                }
            }
            plans.push(w);
        }
        pages += 1;
        cursor = s["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(plans, ids, "each plan once, in order");
    assert!(pages > 1, "the full plans page");
    assert_eq!(changes(&sim), Vec::<String>::new(), "paging sent a change");
    assert_within_bound(&answers);
    client.cancel().await.ok();
}
