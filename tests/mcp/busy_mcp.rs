//! Workspaces someone is at work in (issue 25), through the built `fleet-mcp` with rmcp's
//! client against the simulator: update_agents answers skipped rows with their reason and
//! sends no POST for them; update_agent and restart_agent on a busy workspace are tool errors
//! naming the reason and the arguments that go on; include_busy, include_prebuilds,
//! idle_for_seconds and wait_for_idle_seconds are taken.

use crate::support::mcp::{call_tool, mcp_on, text_of};
use crate::support::sim::sim;
use fleet::sim::RunningSim;
use serde_json::{Value, json};

fn builds_of(sim: &RunningSim, workspace: &str) -> usize {
    let id = sim.coder_workspace_id(workspace).expect("seeded");
    sim.count_requests("POST", &format!("/api/v2/workspaces/{id}/builds"))
}

fn row<'a>(report: &'a Value, workspace: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("the report: {report:#}"))
        .iter()
        .find(|r| r["workspace"] == workspace)
        .unwrap_or_else(|| panic!("{workspace} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_agents_answers_skipped_rows_with_their_reason_and_sends_nothing_for_them() {
    let sim = sim(100.0).await;
    let client = mcp_on(&sim).await;
    let result = call_tool(
        &client,
        "update_agents",
        json!({"template": "team-dev", "all_owners": true, "wait_seconds": 50}),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    let report = result.structured_content.clone().expect("structured");
    assert_eq!(row(&report, "bob/idle-box")["verdict"], "updated");
    for (workspace, kind, words) in [
        ("bob/typing", "in_use", "in use (last used "),
        ("bob/pairing", "in_use", " ago by bob)"),
        (
            "bob/ai-task",
            "task_working",
            "an AI task is working in it (\"Refactoring the billing module\")",
        ),
        ("bob/asleep", "dormant", "dormant since "),
        ("prebuilds/prebuilt-01", "prebuild", "a prebuilt workspace"),
    ] {
        let r = row(&report, workspace);
        assert_eq!(r["verdict"], "skipped", "{r:#}");
        // The compact row names the reason's kind; the message says it in words.
        assert_eq!(r["skipped"], kind, "{r:#}");
        assert!(r["message"].as_str().unwrap().contains(words), "{r:#}");
        assert_eq!(builds_of(&sim, workspace), 0, "{workspace}");
    }
    assert_eq!(report["skipped"], 5);
    assert_eq!(report["failed"], 0);

    // include_busy updates them; the prebuilt one still needs include_prebuilds.
    let result = call_tool(
        &client,
        "update_agents",
        json!({"agent_names": ["bob/typing", "prebuilds/prebuilt-01"], "include_busy": true,
               "wait_seconds": 50}),
    )
    .await;
    let report = result.structured_content.clone().expect("structured");
    assert_eq!(
        row(&report, "bob/typing")["verdict"],
        "updated",
        "{report:#}"
    );
    assert_eq!(row(&report, "prebuilds/prebuilt-01")["verdict"], "skipped");
    let result = call_tool(
        &client,
        "update_agents",
        json!({"agent_names": ["prebuilds/prebuilt-01"], "include_prebuilds": true,
               "wait_seconds": 50}),
    )
    .await;
    let report = result.structured_content.clone().expect("structured");
    assert_eq!(
        row(&report, "prebuilds/prebuilt-01")["verdict"],
        "updated",
        "{report:#}"
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_agent_and_restart_agent_on_a_busy_workspace_say_why_and_what_to_pass() {
    let sim = sim(600.0).await;
    let client = mcp_on(&sim).await;
    for tool in ["update_agent", "restart_agent"] {
        let result = call_tool(&client, tool, json!({"agent_name": "bob/pairing"})).await;
        assert_eq!(result.is_error, Some(true), "{tool}: {}", text_of(&result));
        let text = text_of(&result);
        assert!(
            text.contains("bob/pairing skipped: in use (last used ")
                && text.contains("wait_for_idle_seconds")
                && text.contains("include_busy"),
            "{tool}: {text}"
        );
    }
    assert_eq!(builds_of(&sim, "bob/pairing"), 0);
    // bob/typing goes quiet 1 s (real) after the start: waited for, then updated.
    let result = call_tool(
        &client,
        "update_agent",
        json!({"agent_name": "bob/typing", "idle_for_seconds": 2, "wait_for_idle_seconds": 20,
               "wait_seconds": 50}),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    assert!(builds_of(&sim, "bob/typing") >= 1);
    client.cancel().await.ok();
}
