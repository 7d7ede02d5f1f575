//! The server-side path (`on_success`, Coder ≥ 2.36) through the built `fleet` and
//! `fleet-mcp` against the simulator at both versions: which path runs and why, the POSTs
//! sent, the 403 fallback, a killed client, and the dry run.

use crate::support::handle::CoderViaHandle;
use std::time::{Duration, Instant};

use crate::support::cli::fleet;
use crate::support::mcp::fleet_mcp;
use crate::support::sim::coder_client;
use crate::support::sim::sim_with;
use fleet::{
    coder::{WorkspaceStatus, WorkspaceTransition, types},
    sim::{RunningSim, SimOptions, Simulator},
};
use serde_json::Value;
use uuid::Uuid;

async fn coder_sim(version: &str, speed: f64, can_pin: bool) -> RunningSim {
    sim_with(SimOptions {
        speed,
        coder_version: version.to_string(),
        coder_can_pin_versions: can_pin,
        ..SimOptions::default()
    })
    .await
}

/// `fleet ARGS` pointed at the simulator's Coder, with fast `--poll-*` flags (and so without
/// `FLEET_POLL_INTERVAL_MS`, which would cap them), both streams piped.
fn fleet_at(sim: &RunningSim, args: &[&str]) -> tokio::process::Command {
    fleet(args)
        .args(["--poll-initial", "10ms", "--poll-max", "50ms"])
        .default_polling()
        .coder(&sim.coder_url(), sim.tokens().coder_session_token.expose())
        .piped()
        .tokio()
}

/// Runs `fleet ARGS -o json`: (exit code, the JSON document, stderr).
async fn run_json(sim: &RunningSim, args: &[&str]) -> (i32, Value, String) {
    let out = fleet_at(sim, args)
        .args(["-o", "json"])
        .output()
        .await
        .expect("fleet runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON on stdout ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), v, stderr)
}

fn build_posts(sim: &RunningSim, ws: Uuid) -> Vec<u16> {
    let path = format!("/api/v2/workspaces/{ws}/builds");
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .map(|r| r.status)
        .collect()
}

async fn latest(sim: &RunningSim, ws: Uuid) -> types::WorkspaceBuild {
    coder_client(sim)
        .api()
        .get_workspace_metadata_by_id(&ws)
        .await
        .expect("the workspace reads")
        .into_inner()
        .latest_build
        .expect("a latest build")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_2_36_is_server_side_one_post_and_reports_the_version_used() {
    let sim = coder_sim("v2.36.1+sim", 20.0, true).await;
    let ws = sim.coder_workspace_id("alice/dev").unwrap();
    let v3 = sim.coder_version_id("docker-dev", "v3").unwrap();
    let (code, v, stderr) = run_json(&sim, &["coder", "update", "alice/dev"]).await;
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert_eq!(v["path"], "server-side", "{v}");
    assert!(
        v["path_reason"]
            .as_str()
            .unwrap()
            .contains("supports on_success"),
        "{v}"
    );
    assert!(v.get("fallback").is_none(), "{v}");
    assert_eq!(v["template_version_id"], v3.to_string(), "{v}");
    assert_eq!(v["workspace"]["status"], "running", "{v}");
    let builds = v["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 2, "{v}");
    assert_eq!(builds[0]["transition"], "stop");
    assert_eq!(builds[1]["transition"], "start");
    // The server created the start: its number is not the stop's + 1 in the simulator.
    assert_eq!(
        builds[1]["build_number"].as_i64().unwrap(),
        builds[0]["build_number"].as_i64().unwrap() + 2,
        "{v}"
    );
    assert_eq!(build_posts(&sim, ws), vec![201], "one POST: the stop");
    let b = latest(&sim, ws).await;
    assert_eq!(b.status, Some(WorkspaceStatus::Running));
    assert_eq!(b.template_version_id, Some(v3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_2_35_is_client_driven_and_says_why() {
    let sim = coder_sim("v2.35.0", 20.0, true).await;
    let ws = sim.coder_workspace_id("alice/dev").unwrap();
    let (code, v, stderr) = run_json(&sim, &["coder", "update", "alice/dev"]).await;
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert_eq!(v["path"], "client-driven", "{v}");
    assert!(
        v["path_reason"]
            .as_str()
            .unwrap()
            .contains("older than v2.36.0"),
        "{v}"
    );
    assert_eq!(
        build_posts(&sim, ws),
        vec![201, 201],
        "stop and start POSTed"
    );
    assert_eq!(
        latest(&sim, ws).await.status,
        Some(WorkspaceStatus::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_driven_forces_the_old_path_on_2_36() {
    let sim = coder_sim("v2.36.1+sim", 20.0, true).await;
    let ws = sim.coder_workspace_id("alice/dev").unwrap();
    let (code, v, stderr) =
        run_json(&sim, &["coder", "update", "alice/dev", "--client-driven"]).await;
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert_eq!(v["path"], "client-driven", "{v}");
    assert!(
        v["path_reason"].as_str().unwrap().contains("asked for"),
        "{v}"
    );
    assert_eq!(build_posts(&sim, ws), vec![201, 201]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_version_without_permission_falls_back_to_client_driven_and_says_so() {
    let sim = coder_sim("v2.36.1+sim", 20.0, false).await;
    let ws = sim.coder_workspace_id("alice/dev").unwrap();
    let v1 = sim.coder_version_id("docker-dev", "v1").unwrap();
    let (code, v, stderr) = run_json(
        &sim,
        &[
            "coder",
            "update",
            "alice/dev",
            "--template-version",
            &v1.to_string(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert_eq!(v["path"], "client-driven", "{v}");
    assert_eq!(v["fallback"]["cause"], "pin_refused", "{v}");
    assert!(
        v["fallback"]["message"]
            .as_str()
            .unwrap()
            .contains("Unauthorized to queue follow-up workspace build"),
        "{v}"
    );
    assert_eq!(v["template_version_id"], v1.to_string());
    // The refused stop created nothing; then the plain stop and the start.
    assert_eq!(build_posts(&sim, ws), vec![403, 201, 201]);
    let b = latest(&sim, ws).await;
    assert_eq!(b.status, Some(WorkspaceStatus::Running));
    assert_eq!(b.template_version_id, Some(v1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_off_the_active_version_pins_it_and_keeps_it() {
    let sim = coder_sim("v2.36.1+sim", 20.0, true).await;
    let ws = sim.coder_workspace_id("alice/dev").unwrap();
    let v2 = sim.coder_version_id("docker-dev", "v2").unwrap();
    let (code, v, stderr) = run_json(&sim, &["coder", "restart", "alice/dev"]).await;
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert_eq!(v["action"], "restarted", "{v}");
    assert_eq!(v["path"], "server-side", "{v}");
    assert!(v["path_reason"].as_str().unwrap().contains("pinned"), "{v}");
    assert_eq!(v["template_version_id"], v2.to_string(), "{v}");
    assert_eq!(build_posts(&sim, ws), vec![201]);
    assert_eq!(latest(&sim, ws).await.template_version_id, Some(v2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_shows_the_path_and_why() {
    let sim = coder_sim("v2.36.1+sim", 20.0, true).await;
    let ws = sim.coder_workspace_id("alice/dev").unwrap();
    let (code, v, _) = run_json(&sim, &["coder", "update", "alice/dev", "--dry-run"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["plan"]["path"], "server-side", "{v}");
    assert!(v["plan"]["server_side_start"].is_object(), "{v}");
    // The update goes to the active version: the version is left out of on_success.
    assert!(
        v["plan"]["server_side_start"]["template_version_id"].is_null(),
        "{v}"
    );
    let out = fleet_at(&sim, &["coder", "update", "alice/dev", "--dry-run"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("path:    server-side ("), "{text}");
    assert!(text.contains("carries on_success"), "{text}");
    let old = self::coder_sim("v2.35.0", 20.0, true).await;
    let (_, v, _) = run_json(&old, &["coder", "restart", "alice/dev", "--dry-run"]).await;
    assert_eq!(v["plan"]["path"], "client-driven", "{v}");
    assert!(build_posts(&sim, ws).is_empty(), "a dry run POSTs nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_during_a_server_side_restart_still_ends_running_on_the_target() {
    // Slow enough that the kill lands while the stop runs.
    let sim = coder_sim("v2.36.1+sim", 2.0, true).await;
    let ws = sim.coder_workspace_id("alice/dev").unwrap();
    let v2 = sim.coder_version_id("docker-dev", "v2").unwrap();
    let mut child = fleet_at(&sim, &["coder", "restart", "alice/dev"])
        .spawn()
        .expect("fleet starts");
    let began = Instant::now();
    while build_posts(&sim, ws).is_empty() {
        assert!(began.elapsed() < Duration::from_secs(20), "no stop POSTed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.expect("fleet is killed");
    let stop = latest(&sim, ws).await;
    assert_eq!(stop.transition, Some(WorkspaceTransition::Stop));
    assert!(
        matches!(
            stop.status,
            Some(WorkspaceStatus::Pending | WorkspaceStatus::Stopping)
        ),
        "killed during the stop: {:?}",
        stop.status
    );
    // Nobody is left to start it: the server does.
    let began = Instant::now();
    loop {
        let b = latest(&sim, ws).await;
        if b.status == Some(WorkspaceStatus::Running) {
            assert_eq!(b.transition, Some(WorkspaceTransition::Start));
            assert_eq!(b.template_version_id, Some(v2), "on the version it ran");
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "still {:?}",
            b.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(build_posts(&sim, ws), vec![201], "only the stop was POSTed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mcp_reports_the_path_and_client_driven_forces_the_old_one() {
    use rmcp::model::CallToolRequestParams;
    let sim = coder_sim("v2.36.1+sim", 20.0, true).await;
    let client = fleet_mcp(&[])
        .coder(&sim.coder_url(), sim.tokens().coder_session_token.expose())
        .poll_interval_ms(50)
        .connect()
        .await;
    for (name, client_driven, path, posts) in [
        ("alice/dev", false, "server-side", 1),
        ("bob/dev", true, "client-driven", 2),
    ] {
        let args = serde_json::json!({"agent_name": name, "client_driven": client_driven, "wait_seconds": 50});
        let r = client
            .call_tool(
                CallToolRequestParams::new("update_agent")
                    .with_arguments(args.as_object().unwrap().clone()),
            )
            .await
            .expect("answered");
        let out = r.structured_content.expect("structured output");
        assert_eq!(out["done"], true, "{out}");
        assert_eq!(out["path"], path, "{out}");
        assert_eq!(out["action"], "updated", "{out}");
        let ws = sim.coder_workspace_id(name).unwrap();
        assert_eq!(build_posts(&sim, ws).len(), posts, "{name}");
    }
    client.cancel().await.ok();
}

/// The log lines of a build, as a GET (not followed) answers them.
async fn log_lines(sim: &RunningSim, build: &str) -> Vec<String> {
    coder_client(sim)
        .api()
        .get_workspace_build_logs(build, None, None, None)
        .await
        .expect("the logs read")
        .into_inner()
        .into_iter()
        .filter_map(|l| l.output)
        .filter(|o| !o.trim().is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_show_live_in_order_without_duplicates_across_dropped_sockets_at_a_slow_speed() {
    // Every socket is cut after 3 messages: the stream reconnects with after= each time.
    let sim = Simulator::start(SimOptions {
        speed: 2.0,
        ws_drop_after: Some(3),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let out = fleet_at(
        &sim,
        &["coder", "restart", "alice/dev", "--logs", "-o", "json"],
    )
    .output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"], "server-side", "{v}");
    let mut expected = Vec::new();
    for b in v["builds"].as_array().unwrap() {
        expected.extend(log_lines(&sim, b["id"].as_str().unwrap()).await);
    }
    assert!(expected.len() > 6, "{expected:?}");
    let shown: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  | "))
        .map(str::to_string)
        .collect();
    assert_eq!(shown, expected, "every line once, in order:\n{stderr}");
    // --no-logs: none shown.
    let out = fleet_at(&sim, &["coder", "restart", "alice/dev", "--no-logs"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("  | "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_end_is_noticed_by_push_with_few_reads() {
    use fleet::coder::UpdateOptions;
    let sim = coder_sim("v2.36.1+sim", 5.0, true).await;
    let c = coder_client(&sim);
    let ws = sim.coder_workspace_id("bob/dev").unwrap();
    let reads = |sim: &RunningSim| {
        sim.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/api/v2/workspacebuilds/"))
            .filter(|r| !r.path.ends_with("/logs") && !r.path.ends_with("/parameters"))
            .count()
    };
    let mut events = Vec::new();
    let outcome = c
        .update_via_handle(
            &fleet::coder::WorkspaceRef::parse("bob/dev").unwrap(),
            None,
            &UpdateOptions::default(),
            &tokio_util::sync::CancellationToken::new(),
            |e| events.push(e),
        )
        .await
        .expect("updated");
    assert_eq!(outcome.builds.len(), 2);
    let logs = events
        .iter()
        .filter(|e| matches!(e, fleet::coder::CoderEvent::BuildLog { .. }))
        .count();
    assert!(logs > 6, "log lines arrive as events: {logs}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, fleet::coder::CoderEvent::LogsUnavailable { .. })),
        "the streams held"
    );
    // Default polling reads a build ~10 times in the ~2.5 s the two builds take at speed 5;
    // by push each end costs one confirming read, plus the slow safety net.
    let n = reads(&sim);
    assert!(n <= 6, "{n} build reads for 2 builds");
    let _ = ws;
}

#[derive(Clone, Default)]
struct ProgressClient {
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl rmcp::ClientHandler for ProgressClient {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        if let Some(m) = params.message {
            self.messages.lock().unwrap().push(m);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_progress_carries_the_build_log_lines() {
    use rmcp::model::{CallToolRequestParams, NumberOrString, ProgressToken, RequestMetaObject};
    let sim = coder_sim("v2.36.1+sim", 10.0, true).await;
    let handler = ProgressClient::default();
    let client = fleet_mcp(&[])
        .coder(&sim.coder_url(), sim.tokens().coder_session_token.expose())
        .connect_with(handler.clone())
        .await;
    let args = serde_json::json!({"agent_name": "alice/dev", "wait_seconds": 50});
    let mut params = CallToolRequestParams::new("restart_agent")
        .with_arguments(args.as_object().unwrap().clone());
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::Number(1),
    )));
    let r = client.call_tool(params).await.expect("answered");
    let out = r.structured_content.expect("structured output");
    assert_eq!(out["done"], true, "{out}");
    let messages = handler.messages.lock().unwrap().clone();
    let logs: Vec<&String> = messages
        .iter()
        .filter(|m| m.contains("build log: "))
        .collect();
    assert!(
        logs.iter().any(|m| m.contains("Apply complete!")),
        "{messages:#?}"
    );
    client.cancel().await.ok();
}
