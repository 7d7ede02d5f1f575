//! MCP `update_agents` as a rollout (rmcp client over the built `fleet-mcp`'s stdio, against
//! the simulator): the same verdicts as the CLI for a canary on a broken version, the halt and
//! the workspaces not attempted in the result, nothing beyond the canary touched; and
//! `update_agent` on a version whose agent never connects is a tool error naming the agent.

use std::time::Duration;

use crate::support::mcp::mcp_on;
use fleet::sim::{SimOptions, Simulator};
use rmcp::{
    RoleClient,
    model::{CallToolRequestParams, CallToolResult},
    service::RunningService,
};
use serde_json::{Value, json};

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().unwrap().clone());
    tokio::time::timeout(Duration::from_secs(60), client.call_tool(params))
        .await
        .expect("answered within a minute")
        .expect("the call is answered")
}

fn text_of(result: &CallToolResult) -> String {
    serde_json::to_string(&result.content).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_agents_with_a_canary_on_a_broken_version_reports_the_cli_verdicts() {
    let sim = Simulator::start(SimOptions {
        speed: 100.0,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let broken = sim.coder_version_id("web", "v3-start-error").unwrap();
    let client = mcp_on(&sim).await;
    let names: Vec<String> = (1..=4).map(|n| format!("carol/web-{n:02}")).collect();
    let result = call(
        &client,
        "update_agents",
        json!({
            "agent_names": names,
            "template_version_id": broken.to_string(),
            "canary": 1,
            "parallel": 2,
            "wait_seconds": 50,
        }),
    )
    .await;
    let report = result
        .structured_content
        .as_ref()
        .unwrap_or_else(|| panic!("structured output: {}", text_of(&result)));
    let verdicts: Vec<(&str, &str)> = report["results"]
        .as_array()
        .expect("the report itself (done within wait_seconds)")
        .iter()
        .map(|r| {
            (
                r["workspace"].as_str().unwrap(),
                r["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("carol/web-01", "unhealthy"),
            ("carol/web-02", "not_attempted"),
            ("carol/web-03", "not_attempted"),
            ("carol/web-04", "not_attempted"),
        ]
    );
    assert_eq!(report["halt"]["reason"], "canary_failed");
    assert_eq!(report["halt"]["not_attempted"], json!(names[1..].to_vec()));
    let reason = report["results"][0]["message"].as_str().unwrap();
    assert!(
        reason.contains("agent main") && reason.contains("start_error"),
        "{reason}"
    );
    for n in &names[1..] {
        assert_eq!(
            sim.coder_build_history(n),
            [("start".to_string(), "v1".to_string())],
            "{n} untouched"
        );
    }

    // One workspace, an agent that never connects: a tool error naming the agent and why.
    let never = sim.coder_version_id("web", "v4-never-connects").unwrap();
    let result = call(
        &client,
        "update_agent",
        json!({
            "agent_name": "carol/web-05",
            "template_version_id": never.to_string(),
            "wait_seconds": 50,
        }),
    )
    .await;
    assert_eq!(result.is_error, Some(true), "{}", text_of(&result));
    let text = text_of(&result);
    assert!(
        text.contains("agent main")
            && text.contains("timeout")
            && text.contains("too long to connect"),
        "{text}"
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_workspaces_runs_the_same_engine_a_failed_canary_starts_no_other() {
    let sim = Simulator::start(SimOptions {
        speed: 2000.0,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let client = mcp_on(&sim).await;
    // Without confirm: refused, nothing sent.
    let result = call(
        &client,
        "migrate_workspaces",
        json!({"workspace_ids": ["ws-fails-migration", "ws-aws-demo"], "to": "gcp", "from": "aws"}),
    )
    .await;
    assert_eq!(result.is_error, Some(true), "{}", text_of(&result));
    assert!(text_of(&result).contains("confirm"), "{}", text_of(&result));
    let result = call(
        &client,
        "migrate_workspaces",
        json!({
            "workspace_ids": ["ws-fails-migration", "ws-aws-demo"],
            "to": "gcp",
            "from": "aws",
            "confirm": true,
            "canary": 1,
            "wait_seconds": 50,
        }),
    )
    .await;
    let report = result
        .structured_content
        .as_ref()
        .unwrap_or_else(|| panic!("structured output: {}", text_of(&result)));
    assert_eq!(report["done"], true, "{report}");
    let verdicts: Vec<(&str, &str)> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                // Compact rows name the workspace the same way on both planes.
                r["workspace"].as_str().unwrap(),
                r["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("ws-fails-migration", "failed"),
            ("ws-aws-demo", "not_attempted")
        ]
    );
    assert_eq!(report["halt"]["reason"], "canary_failed");
    let posts_to_demo = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains("ws-aws-demo"))
        .count();
    assert_eq!(posts_to_demo, 0, "nothing beyond the canary");
    client.cancel().await.ok();
}
