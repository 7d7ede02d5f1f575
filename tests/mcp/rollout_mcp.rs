//! MCP `update_agents` as a rollout (rmcp client over the built `fleet-mcp`'s stdio, against
//! the simulator): the same verdicts as the CLI for a canary on a broken version, the halt and
//! the workspaces not attempted in the result, nothing beyond the canary touched; and
//! `update_agent` on a version whose agent never connects is a tool error naming the agent.

use crate::support::mcp::{call_tool, mcp_on, text_of};
use crate::support::sim::changes;
use fleet::sim::{SimOptions, Simulator};
use serde_json::{Value, json};

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
    let result = call_tool(
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
    let result = call_tool(
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
    let result = call_tool(
        &client,
        "migrate_workspaces",
        json!({"workspace_ids": ["ws-fails-migration", "ws-aws-demo"], "to": "gcp", "from": "aws"}),
    )
    .await;
    assert_eq!(result.is_error, Some(true), "{}", text_of(&result));
    assert!(text_of(&result).contains("confirm"), "{}", text_of(&result));
    let result = call_tool(
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

async fn shop_sim() -> fleet::sim::RunningSim {
    Simulator::start(SimOptions {
        speed: 200.0,
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_template_shows_the_active_version_and_the_newest_ones_by_name() {
    let sim = shop_sim().await;
    let client = mcp_on(&sim).await;
    let result = call_tool(&client, "get_template", json!({"template": "shop"})).await;
    let t = result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("structured output: {}", text_of(&result)));
    assert_eq!(t["template"], "shop", "{t}");
    assert_eq!(t["active_version"], "v1", "{t}");
    assert_eq!(t["versions_total"], 3, "{t}");
    let newest: Vec<(&str, bool)> = t["newest_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap(),
                v["active"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        newest,
        [("v3-start-error", false), ("v2", false), ("v1", true)],
        "newest first: {t}"
    );
    assert!(
        !text_of(&result).contains("51330000"),
        "names, not UUIDs: {t}"
    );
    let docker = call_tool(&client, "get_template", json!({"template": "docker-dev"})).await;
    let docker = docker.structured_content.unwrap();
    assert_eq!(docker["versions_total"], 5, "archived included: {docker}");
    assert_eq!(docker["active_version"], "v3", "{docker}");
    let archived = &docker["newest_versions"][4];
    assert_eq!(
        (&archived["name"], &archived["archived"]),
        (&json!("v0-archived"), &json!(true)),
        "{docker}"
    );
    sim.clear_requests();
    for bad in [
        json!({"template": " "}),
        json!({"template": "shop", "newest": 3}),
    ] {
        let r = call_tool(&client, "get_template", bad.clone()).await;
        assert_eq!(r.is_error, Some(true), "{bad}: {}", text_of(&r));
        assert!(text_of(&r).contains("nothing was"), "{}", text_of(&r));
    }
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
    let r = call_tool(&client, "get_template", json!({"template": "nope"})).await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_template_version_dry_run_changes_nothing_and_a_run_needs_confirm() {
    let sim = shop_sim().await;
    let client = mcp_on(&sim).await;
    sim.clear_requests();
    // Without confirm (and not a dry run): refused, nothing sent.
    let r = call_tool(
        &client,
        "promote_template_version",
        json!({"template": "shop", "version": "v2"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("confirm"), "{}", text_of(&r));
    // A negative count is refused by name, though the schema leaves out `minimum: 0`.
    let r = call_tool(
        &client,
        "promote_template_version",
        json!({"template": "shop", "version": "v2", "dry_run": true, "canary": -1}),
    )
    .await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(
        text_of(&r).contains("`canary` must be a number from 0"),
        "{}",
        text_of(&r)
    );
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());

    let result = call_tool(
        &client,
        "promote_template_version",
        json!({"template": "shop", "version": "v2", "dry_run": true, "wait_seconds": 50}),
    )
    .await;
    let a = result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("structured output: {}", text_of(&result)));
    assert_eq!(a["done"], true, "{a}");
    assert_eq!(a["outcome"], "planned", "{a}");
    assert_eq!(
        (&a["dry_run"], &a["promoted"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(a["version"], "v2");
    assert_eq!(a["active_before"], "v1");
    assert_eq!(a["canaries"].as_array().unwrap().len(), 1, "{a}");
    assert_eq!(a["rest"], 3, "{a}");
    assert_eq!(a["permission"], "granted", "{a}");
    assert!(a["operation_id"].is_string(), "{a}");
    assert!(
        changes(&sim).is_empty(),
        "a dry run sends no state-changing request: {:?}",
        changes(&sim)
    );
    let t = call_tool(&client, "get_template", json!({"template": "shop"})).await;
    assert_eq!(t.structured_content.unwrap()["active_version"], "v1");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_template_version_runs_and_get_operation_follows_it_to_the_end() {
    let sim = shop_sim().await;
    let client = mcp_on(&sim).await;
    sim.clear_requests();
    // wait_seconds 0: the operation id at once, followed with get_operation.
    let started = call_tool(
        &client,
        "promote_template_version",
        json!({"template": "shop", "version": "v2", "confirm": true, "wait_seconds": 0}),
    )
    .await;
    let started = started
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("structured output: {}", text_of(&started)));
    let id = started["operation_id"].as_str().expect("an operation id");
    let mut report = Value::Null;
    for _ in 0..10 {
        let r = call_tool(
            &client,
            "get_operation",
            json!({"operation_id": id, "wait_seconds": 30}),
        )
        .await;
        report = r
            .structured_content
            .clone()
            .unwrap_or_else(|| panic!("structured output: {}", text_of(&r)));
        if report["done"] == true {
            break;
        }
    }
    assert_eq!(report["done"], true, "{report}");
    assert_eq!(report["kind"], "promote", "{report}");
    let outcome = &report["outcome"];
    assert_eq!(outcome["outcome"], "promoted", "{report}");
    assert_eq!(outcome["promoted"], true);
    assert_eq!(outcome["canary_phase"]["counts"]["updated"], 1, "{report}");
    assert_eq!(outcome["rollout"]["counts"]["updated"], 3, "{report}");
    assert_eq!(outcome["moved_count"], 4, "{report}");
    // Bounded: the compact outcome, never the whole batch reports.
    assert!(outcome.get("plan").is_none() && outcome.get("rest").is_some_and(|r| r == 3));
    let t = call_tool(&client, "get_template", json!({"template": "shop"})).await;
    assert_eq!(t.structured_content.unwrap()["active_version"], "v2");
    // The PATCH came after the canary's start and before any other workspace's build.
    let changed = changes(&sim);
    let patch = changed
        .iter()
        .position(|c| c.starts_with("PATCH /api/v2/templates/"))
        .unwrap_or_else(|| panic!("one PATCH: {changed:?}"));
    let builds: Vec<usize> = changed
        .iter()
        .enumerate()
        .filter(|(_, c)| c.starts_with("POST") && c.ends_with("/builds"))
        .map(|(i, _)| i)
        .collect();
    assert!(builds.len() >= 4, "{changed:?}");
    assert!(builds[0] < patch, "a canary build first: {changed:?}");
    assert!(
        builds.iter().filter(|b| **b > patch).count() >= 3,
        "the rest after the PATCH: {changed:?}"
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_template_version_of_a_bad_version_rolls_the_canary_back_and_promotes_nothing() {
    let sim = shop_sim().await;
    let client = mcp_on(&sim).await;
    sim.clear_requests();
    let result = call_tool(
        &client,
        "promote_template_version",
        json!({"template": "shop", "version": "v3-start-error", "confirm": true,
               "wait_seconds": 50}),
    )
    .await;
    let a = result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("structured output: {}", text_of(&result)));
    assert_eq!(a["done"], true, "{a}");
    assert_eq!(a["outcome"], "canary_failed", "{a}");
    assert_eq!(a["promoted"], false);
    let canaries = a["canaries"].as_array().unwrap();
    assert_eq!(canaries.len(), 1, "{a}");
    let canary = canaries[0].as_str().unwrap().to_string();
    let attention = a["canary_phase"]["attention"].to_string();
    assert!(attention.contains("start_error"), "the agent's error: {a}");
    assert!(a["rollback"]["counts"].is_object(), "{a}");
    assert_eq!(a["moved_count"], 0, "rolled back: {a}");
    let changed = changes(&sim);
    assert!(
        !changed.iter().any(|c| c.starts_with("PATCH")),
        "no PATCH: {changed:?}"
    );
    for other in (1..=4).map(|i| format!("carol/shop-{i:02}")) {
        if other != canary {
            assert_eq!(
                sim.coder_build_history(&other).len(),
                1,
                "{other} untouched"
            );
        }
    }
    let history = sim.coder_build_history(&canary);
    assert_eq!(
        history.last(),
        Some(&("start".to_string(), "v1".to_string())),
        "back on v1: {history:?}"
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_template_version_without_template_admin_leaves_the_canary_and_says_so() {
    let sim = Simulator::start(SimOptions {
        speed: 200.0,
        coder_can_pin_versions: false,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let client = mcp_on(&sim).await;
    // The dry run says it first: no role of this session grants the promotion.
    let plan = call_tool(
        &client,
        "promote_template_version",
        json!({"template": "shop", "version": "v2", "dry_run": true, "wait_seconds": 50}),
    )
    .await;
    let plan = plan.structured_content.expect("structured");
    assert_eq!(plan["permission"], "unconfirmed", "{plan}");
    let result = call_tool(
        &client,
        "promote_template_version",
        json!({"template": "shop", "version": "v2", "confirm": true, "wait_seconds": 50}),
    )
    .await;
    let a = result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("structured output: {}", text_of(&result)));
    assert_eq!(a["done"], true, "{a}");
    assert_eq!(a["outcome"], "promotion_failed", "{a}");
    assert_eq!(a["promoted"], false);
    assert!(
        a["promotion_error"]
            .as_str()
            .is_some_and(|e| e.contains("403") && e.contains("template-admin")),
        "{a}"
    );
    // The canary stays on v2 and the answer names it; nothing else moved.
    assert_eq!(a["moved_count"], 1, "{a}");
    assert_eq!(a["moved"], a["canaries"], "{a}");
    assert!(a.get("rollout").is_none(), "{a}");
    let t = call_tool(&client, "get_template", json!({"template": "shop"})).await;
    assert_eq!(t.structured_content.unwrap()["active_version"], "v1");
    client.cancel().await.ok();
}
