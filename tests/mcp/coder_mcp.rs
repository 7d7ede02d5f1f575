//! The built `fleet-mcp` driven by a real MCP client (rmcp over child-process stdio):
//! the coder tools, their annotations and output schemas, progress notifications, errors.

use crate::support::coder as support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use httpmock::{Method::POST, MockServer};
use rmcp::{
    ClientHandler, RoleClient,
    model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam},
    service::{NotificationContext, RunningService},
};
use serde_json::{Value, json};
use support::*;

use crate::support::mcp::{call_tool, call_tool_with_progress, fleet_mcp, text_of};

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

async fn connect(
    server: &MockServer,
    extra: &[&str],
) -> (RunningService<RoleClient, Client>, Client) {
    let handler = Client::default();
    let running = fleet_mcp(extra)
        .coder(&server.base_url(), TOKEN)
        .connect_with(handler.clone())
        .await;
    (running, handler)
}

async fn call(
    client: &RunningService<RoleClient, Client>,
    tool: &str,
    args: Value,
    progress: bool,
) -> CallToolResult {
    if progress {
        call_tool_with_progress(client, tool, args, 7).await
    } else {
        call_tool(client, tool, args).await
    }
}

#[tokio::test]
async fn tools_are_listed_with_annotations_and_output_schemas() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    let (client, _) = connect(&server, &[]).await;
    let tools = client.list_all_tools().await.unwrap();
    for (name, read_only, destructive) in [
        ("update_agent", false, true),
        ("restart_agent", false, true),
        ("list_agents", true, false),
        ("show_agent", true, false),
        ("get_template_version", true, false),
    ] {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} is listed"));
        let a = tool.annotations.as_ref().expect("annotations");
        assert_eq!(a.read_only_hint, Some(read_only), "{name}");
        assert_eq!(a.destructive_hint, Some(destructive), "{name}");
        assert!(
            a.idempotent_hint.is_some() && a.open_world_hint == Some(true),
            "{name}"
        );
        assert!(tool.output_schema.is_some(), "{name} has an output schema");
        assert!(
            tool.description.as_deref().unwrap_or("").len() > 60,
            "{name} is described"
        );
    }
    let update = tools.iter().find(|t| t.name == "update_agent").unwrap();
    let props = &update.input_schema["properties"];
    assert!(
        props.get("agent_name").is_some()
            && props.get("template_version_id").is_some()
            && props.get("force").is_some()
            && props.get("wait_seconds").is_some()
    );
    for (name, read_only) in [
        ("get_operation", true),
        ("list_operations", true),
        ("cancel_operation", false),
    ] {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} is listed"));
        let a = tool.annotations.as_ref().expect("annotations");
        assert_eq!(a.read_only_hint, Some(read_only), "{name}");
        assert_eq!(a.destructive_hint, Some(false), "{name}");
        assert!(tool.output_schema.is_some(), "{name} has an output schema");
    }
    client.cancel().await.unwrap();

    // --read-only keeps only the read-only ones.
    let (client, _) = connect(&server, &["--read-only"]).await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        names.contains(&"list_agents".to_string()) && names.contains(&"show_agent".to_string())
    );
    assert!(
        !names.contains(&"update_agent".to_string())
            && !names.contains(&"restart_agent".to_string()),
        "{names:?}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn update_agent_sends_progress_and_returns_structured_output() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        "/api/v2/users/me/workspace/dev",
        200,
        running_on(V1),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
    let stop = mock_post_build(
        &server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
    )
    .await;
    let start = mock_post_build(&server, json!({"transition": "start", "template_version_id": V2, "rich_parameter_values": params()}), 201, build(START_BUILD, 9, "start", "pending", "pending", V2, None))
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        200,
        build(START_BUILD, 9, "start", "running", "succeeded", V2, None),
    )
    .await;

    let (client, handler) = connect(&server, &[]).await;
    let r = call(
        &client,
        "update_agent",
        json!({"agent_name": "dev", "template_version_id": V2}),
        true,
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let out = r.structured_content.clone().expect("structured output");
    assert_eq!(out["action"], "updated");
    assert_eq!(out["template_version_id"], V2);
    assert_eq!(out["workspace"]["full_name"], "alice/dev");
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;

    // Notifications are forwarded in order; give the last ones a moment to arrive.
    let began = Instant::now();
    while handler.progress.lock().unwrap().len() < 7 && began.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut progress = handler.progress.lock().unwrap().clone();
    // rmcp's client runs each notification handler in its own task, so the handler may see
    // them out of wire order (tests/mcp-clients/drive.py checks the wire order with the
    // Python client). Order by progress; the values must still be distinct.
    progress.sort_by(|a, b| a.progress.total_cmp(&b.progress));
    let messages: Vec<String> = progress
        .iter()
        .map(|p| p.message.clone().unwrap_or_default())
        .collect();
    assert!(progress.len() >= 7, "{messages:?}");
    assert!(
        progress.windows(2).all(|w| w[0].progress < w[1].progress),
        "progress increases"
    );
    let tokens: Vec<_> = progress.iter().map(|p| p.progress_token.clone()).collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    let stop_at = messages
        .iter()
        .position(|m| m.starts_with("stop build #8 created"))
        .expect("stop event");
    let start_at = messages
        .iter()
        .position(|m| m.starts_with("start build #9 created"))
        .expect("start event");
    assert!(stop_at < start_at, "{messages:?}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn errors_are_tool_errors_with_the_reason() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        "/api/v2/users/me/workspace/ghost",
        404,
        json!({"message": "not found"}),
    )
    .await;
    mock_get(
        &server,
        "/api/v2/workspaces",
        200,
        json!({"workspaces": [], "count": 0}),
    )
    .await;
    let any_post = server
        .mock_async(|when, then| {
            when.method(POST);
            then.status(500);
        })
        .await;
    let (client, _) = connect(&server, &[]).await;

    let r = call(&client, "show_agent", json!({"agent_name": "ghost"}), false).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("not_found: no workspace ghost"),
        "{}",
        text_of(&r)
    );

    let r = call(
        &client,
        "update_agent",
        // Not "latest": a version name is valid since issue 27 item 5 (resolved after the
        // workspace is read); this is neither a name nor a UUID.
        json!({"agent_name": "dev", "template_version_id": "latest!"}),
        false,
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("invalid_input"), "{}", text_of(&r));

    let r = call(
        &client,
        "get_template_version",
        json!({"template_version_id": "nope"}),
        false,
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    any_post.assert_calls_async(0).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn read_tools_return_structured_output() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    let mut fresh = running_on(V2);
    fresh["name"] = json!("fresh");
    mock_get(
        &server,
        "/api/v2/workspaces",
        200,
        json!({"workspaces": [running_on(V1), fresh], "count": 2}),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspaces/{WS}"),
        200,
        running_on(V1),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/templateversions/{V2}"),
        200,
        json!({"id": V2, "name": "v2", "job": {"status": "succeeded"}}),
    )
    .await;
    let (client, _) = connect(&server, &[]).await;

    let r = call(&client, "list_agents", json!({"outdated": true}), false).await;
    let out = r.structured_content.expect("structured");
    assert_eq!(out["count"], 1);
    assert_eq!(out["workspaces"][0]["full_name"], "alice/dev");

    let r = call(&client, "show_agent", json!({"agent_name": WS}), false).await;
    assert_eq!(r.structured_content.expect("structured")["outdated"], true);

    let r = call(
        &client,
        "get_template_version",
        json!({"template_version_id": V2}),
        false,
    )
    .await;
    assert_eq!(
        r.structured_content.expect("structured")["job_status"],
        "succeeded"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_tool_is_not_configured_without_coder_variables() {
    let client = fleet_mcp(&[]).connect_with(Client::default()).await;
    let r = call(&client, "list_agents", json!({}), false).await;
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("CODER_URL"), "{}", text_of(&r));
    client.cancel().await.unwrap();
}

/// alice's `dev` on V1, read as `me/dev`, with its previous parameters.
async fn mock_dev(server: &MockServer) {
    mock_preflight(server).await;
    mock_get(
        server,
        "/api/v2/users/me/workspace/dev",
        200,
        running_on(V1),
    )
    .await;
    mock_get(
        server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_request_detaches_and_the_update_goes_on_to_the_start() {
    use rmcp::model::{CallToolRequest, ClientRequest};
    use rmcp::service::PeerRequestOptions;

    let server = MockServer::start_async().await;
    mock_dev(&server).await;
    let stop = mock_post_build(
        &server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    // The stop takes a few reads, long enough for the host to give up during it.
    for _ in 0..15 {
        mock_get(
            &server,
            &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
            200,
            build(STOP_BUILD, 8, "stop", "stopping", "running", V1, None),
        )
        .await
        .up_to_n_times_async(1)
        .await;
    }
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
    )
    .await;
    let start = mock_post_build(&server, json!({"transition": "start", "template_version_id": V2, "rich_parameter_values": params()}), 201, build(START_BUILD, 9, "start", "pending", "pending", V2, None))
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        200,
        build(START_BUILD, 9, "start", "running", "succeeded", V2, None),
    )
    .await;

    let (client, _) = connect(&server, &[]).await;
    let params = CallToolRequestParams::new("update_agent").with_arguments(
        json!({"agent_name": "dev", "template_version_id": V2})
            .as_object()
            .unwrap()
            .clone(),
    );
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let began = Instant::now();
    while stop.calls_async().await == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the stop build was never requested"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The host gives up during the stop (notifications/cancelled).
    handle
        .cancel(Some("the host timed out".into()))
        .await
        .unwrap();
    let listed = call(&client, "list_operations", json!({}), false).await;
    let ops = listed.structured_content.expect("structured");
    assert_eq!(ops["count"], 1, "{ops}");
    let id = ops["operations"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(ops["operations"][0]["kind"], "update");
    // get_operation follows it to its end: the stop is followed by its start.
    let mut report = Value::Null;
    for _ in 0..20 {
        let r = call(
            &client,
            "get_operation",
            json!({"operation_id": id, "wait_seconds": 2}),
            false,
        )
        .await;
        report = r.structured_content.expect("structured");
        if report["done"] == json!(true) {
            break;
        }
    }
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(report["workspaces"][0]["verdict"], "updated", "{report}");
    assert_eq!(report["outcome"]["action"], "updated", "{report}");
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_long_tool_answers_within_wait_seconds_and_cancel_operation_is_graceful() {
    let server = MockServer::start_async().await;
    mock_dev(&server).await;
    let stop = mock_post_build(
        &server,
        json!({"transition": "stop"}),
        201,
        build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None),
    )
    .await;
    // A stop that does not end while the test looks.
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        200,
        build(STOP_BUILD, 8, "stop", "stopping", "running", V1, None),
    )
    .await;
    let (client, _) = connect(&server, &[]).await;
    let began = Instant::now();
    let r = call(
        &client,
        "update_agent",
        json!({"agent_name": "dev", "template_version_id": V2, "wait_seconds": 1}),
        false,
    )
    .await;
    assert!(began.elapsed() < Duration::from_secs(5));
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let v = r.structured_content.expect("structured");
    assert_eq!(v["done"], false, "{v}");
    assert_eq!(v["operation_state"], "running", "{v}");
    assert!(v["follow"].as_str().unwrap().contains("get_operation"));
    assert_eq!(v["workspaces"][0]["phase"], "stopping", "{v}");
    let id = v["operation_id"].as_str().unwrap();

    // Graceful: the stop under way is not abandoned; it would be followed by its start.
    let r = call(
        &client,
        "cancel_operation",
        json!({"operation_id": id}),
        false,
    )
    .await;
    let v = r.structured_content.expect("structured");
    assert_eq!(v["state"], "cancelling", "{v}");
    assert_eq!(v["done"], false, "{v}");

    // Out of range, and an unknown id: tool errors.
    let r = call(
        &client,
        "update_agent",
        json!({"agent_name": "dev", "wait_seconds": 301}),
        false,
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("wait_seconds"), "{}", text_of(&r));
    let r = call(
        &client,
        "get_operation",
        json!({"operation_id": "op-nope"}),
        false,
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("list_operations"), "{}", text_of(&r));
    stop.assert_calls_async(1).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn update_agent_dry_run_reads_and_stops_nothing() {
    let server = MockServer::start_async().await;
    mock_preflight(&server).await;
    mock_get(
        &server,
        "/api/v2/users/me/workspace/dev-box",
        200,
        running_on(V1),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        200,
        params(),
    )
    .await;
    mock_get(
        &server,
        &format!("/api/v2/templates/{TEMPLATE}"),
        200,
        template(),
    )
    .await;
    let mut changes = Vec::new();
    for method in [
        POST,
        httpmock::Method::PATCH,
        httpmock::Method::PUT,
        httpmock::Method::DELETE,
    ] {
        changes.push(
            server
                .mock_async(move |when, then| {
                    when.method(method);
                    then.status(500)
                        .json_body(json!({"message": "a dry run sent a change"}));
                })
                .await,
        );
    }
    let (client, _) = connect(&server, &[]).await;
    // The call of issue 20, which used to run a real stop → start.
    for (tool, args) in [
        (
            "update_agent",
            json!({"agent_name": "dev-box", "dry_run": true}),
        ),
        (
            "update_agent",
            json!({"agent_name": "dev-box", "template_version_id": V2, "dry_run": true}),
        ),
        (
            "restart_agent",
            json!({"agent_name": "dev-box", "dry_run": true}),
        ),
    ] {
        let r = call(&client, tool, args.clone(), false).await;
        assert_ne!(r.is_error, Some(true), "{tool} {args}: {}", text_of(&r));
        let out = r.structured_content.clone().expect("structured output");
        let plan = &out["dry_run"];
        assert!(
            plan["summary"]
                .as_str()
                .unwrap()
                .contains("would be stopped, then started"),
            "{out}"
        );
        assert_eq!(plan["builds"][0]["transition"], "stop", "{out}");
        assert_eq!(plan["builds"][1]["transition"], "start", "{out}");
        assert!(out.get("operation_id").is_none(), "no operation: {out}");
    }
    for m in &changes {
        m.assert_calls_async(0).await;
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn no_such_workspace_is_a_tool_error_with_a_suggestion_and_its_own_verdict() {
    // Issue 27 item 3, the MCP face: fleet-mcp serving its own simulator.
    let client = fleet_mcp(&["--sim", "--sim-speed", "2000"])
        .connect_with(Client::default())
        .await;
    let r = call(
        &client,
        "update_agent",
        json!({"agent_name": "alice/dve"}),
        false,
    )
    .await;
    assert_eq!(r.is_error, Some(true), "{r:?}");
    let text = text_of(&r);
    assert!(text.contains("not_found: no workspace alice/dve"), "{text}");
    assert!(text.contains("did you mean alice/dev?"), "{text}");
    assert!(text.contains("call list_agents"), "{text}");
    let r = call(
        &client,
        "update_agents",
        json!({"agent_names": ["alice/current", "alice/dve"], "dry_run": true}),
        false,
    )
    .await;
    let v = r.structured_content.clone().expect("structured");
    let verdicts: Vec<&str> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["verdict"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(verdicts, ["already_current", "not_found"], "{v}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn template_versions_are_taken_by_name() {
    // Issue 27 item 5, the MCP face: a version name is resolved in the workspace's template.
    let client = fleet_mcp(&["--sim", "--sim-speed", "2000"])
        .connect_with(Client::default())
        .await;
    let r = call(
        &client,
        "update_agent",
        json!({"agent_name": "alice/dev", "template_version_id": "v1", "dry_run": true}),
        false,
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let plan = serde_json::to_string(&r.structured_content).unwrap();
    assert!(
        plan.contains("51330000-0000-4000-8000-000000000301"),
        "{plan}"
    );
    let r = call(
        &client,
        "update_agent",
        json!({"agent_name": "alice/dev", "template_version_id": "v33", "dry_run": true}),
        false,
    )
    .await;
    assert_eq!(r.is_error, Some(true), "{r:?}");
    let text = text_of(&r);
    assert!(
        text.contains("invalid_input: template docker-dev has no version named"),
        "{text}"
    );
    assert!(text.contains("did you mean v3?"), "{text}");
    let r = call(
        &client,
        "get_template_version",
        json!({"template_version_id": "v2", "template": "docker-dev"}),
        false,
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(r.structured_content.expect("structured")["name"], "v2");
    client.cancel().await.ok();
}

#[tokio::test]
async fn fleet_mcp_help_lists_every_tool_and_one_host_configuration() {
    // Issue 27 item 8: the help names what the server offers and how a host runs it.
    let out = fleet_mcp(&["--help"]).output();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let client = fleet_mcp(&["--sim"]).connect_with(Client::default()).await;
    let names = tool_names(&client).await;
    assert!(names.len() >= 13, "{names:?}");
    for name in &names {
        assert!(
            help.contains(name.as_str()),
            "{name} is not in fleet-mcp --help:\n{help}"
        );
    }
    assert_eq!(help.matches("mcpServers").count(), 1, "{help}");
    assert!(help.contains(r#""command": "fleet-mcp""#), "{help}");
    client.cancel().await.ok();
}

async fn tool_names(client: &RunningService<RoleClient, Client>) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

fn instructions(client: &RunningService<RoleClient, Client>) -> String {
    client
        .peer_info()
        .and_then(|i| i.instructions.clone())
        .unwrap_or_default()
}

const CODER_TOOLS: [&str; 8] = [
    "get_template",
    "get_template_version",
    "list_agents",
    "promote_template_version",
    "restart_agent",
    "show_agent",
    "update_agent",
    "update_agents",
];
const OPERATION_TOOLS: [&str; 3] = ["cancel_operation", "get_operation", "list_operations"];
const WRITE_TOOLS: [&str; 7] = [
    "update_agent",
    "restart_agent",
    "update_agents",
    "promote_template_version",
    "migrate_workspace_provider",
    "migrate_workspaces",
    "cancel_operation",
];

#[tokio::test]
async fn toolsets_follow_the_configuration_and_the_flags() {
    let server = MockServer::start_async().await;
    // Only Coder is configured: the coder and operations toolsets, no molecule tools.
    let (client, _) = connect(&server, &[]).await;
    let mut want: Vec<&str> = CODER_TOOLS
        .iter()
        .chain(&OPERATION_TOOLS)
        .copied()
        .collect();
    want.sort();
    assert_eq!(tool_names(&client).await, want);
    let text = instructions(&client);
    assert!(text.contains("Toolsets off: molecule."), "{text}");
    assert!(
        text.contains("--toolsets coder,molecule,operations"),
        "{text}"
    );
    assert!(text.contains("FLEET_MCP_TOOLSETS"), "{text}");
    assert!(!text.contains("migrate_workspace_provider"), "{text}");
    client.cancel().await.unwrap();

    // --toolsets picks them (the flag wins over the configuration).
    let (client, _) = connect(&server, &["--toolsets", "operations"]).await;
    assert_eq!(tool_names(&client).await, OPERATION_TOOLS);
    let text = instructions(&client);
    assert!(text.contains("Toolsets off: coder, molecule."), "{text}");
    client.cancel().await.unwrap();
    let (client, _) = connect(&server, &["--toolsets", "molecule,operations"]).await;
    let names = tool_names(&client).await;
    assert!(
        names.contains(&"migrate_workspaces".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"list_agents".to_string()), "{names:?}");
    client.cancel().await.unwrap();

    // --read-only: only tools that read, and the instructions describe no write tool.
    let (client, _) = connect(&server, &["--read-only", "--toolsets", "all"]).await;
    let names = tool_names(&client).await;
    let text = instructions(&client);
    for w in WRITE_TOOLS {
        assert!(!names.contains(&w.to_string()), "{w} listed: {names:?}");
        assert!(!text.contains(w), "the instructions name {w}: {text}");
    }
    assert!(
        !text.contains("dry_run") && !text.contains("confirm"),
        "{text}"
    );
    assert!(text.contains("Read-only mode"), "{text}");
    assert!(names.contains(&"wait_for_workspace_migration".to_string()));
    client.cancel().await.unwrap();

    // Nothing configured: every tool, so that each error teaches the setup.
    let client = fleet_mcp(&[]).connect_with(Client::default()).await;
    assert_eq!(tool_names(&client).await.len(), 15);
    assert!(!instructions(&client).contains("Toolsets off"));
    client.cancel().await.unwrap();

    // An unknown toolset is refused at start (exit 2), naming the valid ones.
    for (flag, env) in [(Some("coder,nope"), None), (None, Some("operation"))] {
        let mut mcp = fleet_mcp(&[]).env("CODER_URL", server.base_url());
        if let Some(f) = flag {
            mcp = mcp.args(["--toolsets", f]);
        }
        if let Some(e) = env {
            mcp = mcp.env("FLEET_MCP_TOOLSETS", e);
        }
        let out = mcp.output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("unknown toolset") && stderr.contains("coder, molecule, operations"),
            "{stderr}"
        );
    }
}

/// A log level fleet-mcp does not know is refused at start (exit 2), by flag or by
/// FLEET_LOG_LEVEL, never ignored (it used to become part of a filter directive, and a bad one
/// was dropped in silence); a known one gets past the flag to the next check.
#[tokio::test]
async fn an_unknown_log_level_is_refused_at_start() {
    for mcp in [
        fleet_mcp(&["--log-level", "verbose"]),
        fleet_mcp(&[]).env("FLEET_LOG_LEVEL", "warn,rmcp=trace"),
    ] {
        let out = mcp.output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--log-level"), "{stderr}");
    }
    let server = MockServer::start_async().await;
    let out = fleet_mcp(&["--log-level", "debug", "--toolsets", "nope"])
        .env("CODER_URL", server.base_url())
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown toolset"), "{stderr}");
}
