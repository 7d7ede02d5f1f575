//! The built `fleet-mcp` driven by a real MCP client (rmcp over child-process stdio): the
//! three Molecule tools, their schemas and annotations, progress notifications, cancellation.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use httpmock::prelude::*;
use rmcp::{
    ClientHandler, RoleClient,
    model::{
        CallToolRequestParams, CallToolResult, ClientRequest, ProgressNotificationParam, Request,
        ServerResult,
    },
    service::{NotificationContext, PeerRequestOptions, RunningService},
};
use serde_json::{Value, json};

use crate::support::mcp::{call_tool, fleet_mcp};

const CP_TOKEN: &str = "cp-mcp-secret-321";
const MIGRATE_PATH: &str = "/cp/admin/workspaces/ws-1/migrate-provider";

/// A client that keeps every progress notification it receives.
#[derive(Clone, Default)]
struct Collector {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Collector {
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
    configured: bool,
) -> (RunningService<RoleClient, Collector>, Collector) {
    let mut mcp = fleet_mcp(&[]).env("MOLECULE_CP_URL", server.base_url());
    if configured {
        mcp = mcp.env("CP_ADMIN_API_TOKEN", CP_TOKEN);
    }
    let collector = Collector::default();
    let client = mcp.connect_with(collector.clone()).await;
    (client, collector)
}

async fn call(
    client: &RunningService<RoleClient, Collector>,
    name: &'static str,
    args: Value,
) -> CallToolResult {
    call_tool(client, name, args).await
}

fn error_text(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "expected a tool error: {r:?}");
    let v = serde_json::to_value(r).unwrap();
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn structured(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "unexpected tool error: {r:?}");
    r.structured_content.clone().expect("structured content")
}

fn status_body(state: &str, terminal: bool) -> Value {
    json!({
        "migration": {"state": state, "from_provider": "aws", "to_provider": "hetzner", "detail": format!("now {state}")},
        "terminal": terminal,
    })
}

#[tokio::test]
async fn tools_have_enums_output_schemas_and_annotations() {
    let server = MockServer::start_async().await;
    let (client, _) = connect(&server, true).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let find = |name: &str| {
        tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };

    let migrate = find("migrate_workspace_provider");
    let a = migrate.annotations.clone().expect("annotations");
    assert_eq!(
        (a.read_only_hint, a.destructive_hint, a.idempotent_hint),
        (Some(false), Some(true), Some(false))
    );
    let schema = Value::Object((*migrate.input_schema).clone());
    let text = schema.to_string();
    assert!(text.contains(r#""enum":["aws","hetzner","gcp"]"#), "{text}");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        required.contains(&"workspace_id")
            && required.contains(&"to")
            && !required.contains(&"confirm"),
        "{required:?}"
    );
    assert!(migrate.output_schema.is_some());
    assert!(
        migrate
            .description
            .as_deref()
            .unwrap()
            .contains("confirm=true")
    );

    for name in [
        "get_workspace_migration_status",
        "wait_for_workspace_migration",
    ] {
        let t = find(name);
        let a = t.annotations.clone().expect("annotations");
        assert_eq!(a.read_only_hint, Some(true), "{name}");
        assert_eq!(a.destructive_hint, Some(false), "{name}");
        assert!(t.output_schema.is_some(), "{name}");
    }
    client.cancel().await.ok();
}

#[tokio::test]
async fn read_only_mode_hides_the_migration_tool() {
    let server = MockServer::start_async().await;
    let client = fleet_mcp(&["--read-only"])
        .molecule(&server.base_url(), CP_TOKEN)
        .connect_with(Collector::default())
        .await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        !names.contains(&"migrate_workspace_provider".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"get_workspace_migration_status".to_string()),
        "{names:?}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn migrate_without_confirm_explains_and_sends_nothing() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_w, then| {
            then.status(599);
        })
        .await;
    let (client, _) = connect(&server, true).await;
    let r = call(
        &client,
        "migrate_workspace_provider",
        json!({"workspace_id": "ws-1", "to": "hetzner", "from": "aws"}),
    )
    .await;
    let text = error_text(&r);
    assert!(
        text.contains("confirm")
            && text.contains("provisions it on hetzner")
            && text.contains("two clouds"),
        "{text}"
    );
    let r = call(
        &client,
        "migrate_workspace_provider",
        json!({"workspace_id": "ws-1", "to": "aws", "from": "gcp", "confirm": true}),
    )
    .await;
    assert!(error_text(&r).contains("from_instance_id"));
    any.assert_calls_async(0).await;
    // An enum value outside the schema is refused by the server, never sent either.
    let bad = client
        .call_tool(
            CallToolRequestParams::new("migrate_workspace_provider").with_arguments(
                json!({"workspace_id": "ws-1", "to": "azure", "confirm": true})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    // A tool error or an invalid-params protocol error: either way, never a success.
    if let Ok(r) = bad {
        assert_eq!(r.is_error, Some(true), "{r:?}");
    }
    any.assert_calls_async(0).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn migrate_with_confirm_starts_and_reports_errors_in_the_servers_words() {
    let server = MockServer::start_async().await;
    // The pre-flight read: the control plane's own 404, never migrated.
    server
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(404).json_body(json!({"error": "no migration"}));
        })
        .await;
    let post = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(MIGRATE_PATH)
                .header("authorization", format!("Bearer {CP_TOKEN}"))
                .json_body(json!({"from": "aws", "to": "hetzner", "confirm": true}));
            then.status(202).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"}));
        })
        .await;
    let conflict = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(409)
                .json_body(json!({"error": "a migration is in progress"}));
        })
        .await;
    // The pre-flight read finds none (404); one starts between it and the POST.
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(404).json_body(json!({"error": "no migration"}));
        })
        .await
        .up_to_n_times_async(1)
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(200)
                .json_body(status_body("target_healthy", false));
        })
        .await;
    let (client, _) = connect(&server, true).await;
    let r = call(
        &client,
        "migrate_workspace_provider",
        json!({"workspace_id": "ws-1", "to": "hetzner", "from": "aws", "confirm": true}),
    )
    .await;
    let v = structured(&r);
    assert_eq!(v["status"], "migration_started");
    assert_eq!(v["from_source"], "given");
    post.assert_calls_async(1).await;

    let r = call(
        &client,
        "migrate_workspace_provider",
        json!({"workspace_id": "ws-2", "to": "hetzner", "from": "aws", "confirm": true}),
    )
    .await;
    let text = error_text(&r);
    assert!(
        text.starts_with("conflict:")
            && text.contains("a migration is in progress")
            && text.contains("target_healthy"),
        "{text}"
    );
    conflict.assert_calls_async(1).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn status_tool_answers_never_migrated_and_in_progress() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(404).json_body(json!({"error": "no migration"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(200)
                .json_body(status_body("snapshotted", false));
        })
        .await;
    let (client, _) = connect(&server, true).await;
    let v = structured(
        &call(
            &client,
            "get_workspace_migration_status",
            json!({"workspace_id": "ws-1"}),
        )
        .await,
    );
    assert_eq!(v["migrated"], false);
    let v = structured(
        &call(
            &client,
            "get_workspace_migration_status",
            json!({"workspace_id": "ws-2"}),
        )
        .await,
    );
    assert_eq!(v["migrated"], true);
    assert_eq!(v["migration"]["state"], "snapshotted");
    assert_eq!(v["step"], 2);
    assert_eq!(v["terminal"], false);
    client.cancel().await.ok();
}

#[tokio::test]
async fn unconfigured_server_names_the_variables() {
    let server = MockServer::start_async().await;
    let (client, _) = connect(&server, false).await;
    let text = error_text(
        &call(
            &client,
            "get_workspace_migration_status",
            json!({"workspace_id": "ws-1"}),
        )
        .await,
    );
    assert!(text.contains("CP_ADMIN_API_TOKEN"), "{text}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn wait_sends_progress_on_each_state_change_and_returns_the_final_status() {
    let server = MockServer::start_async().await;
    let answers = [
        ("snapshotting", 3),
        ("snapshotted", 1),
        ("provisioning_target", 2),
        ("warming_caches", 1),
        ("target_healthy", 1),
        ("retiring_source", 1),
    ];
    for (state, times) in answers {
        let m = server
            .mock_async(|when, then| {
                when.method(GET).path(MIGRATE_PATH);
                then.status(200).json_body(status_body(state, false));
            })
            .await;
        m.up_to_n_times_async(times).await;
    }
    server
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(200).json_body(status_body("completed", true));
        })
        .await;
    let (client, collector) = connect(&server, true).await;
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("wait_for_workspace_migration").with_arguments(
            json!({"workspace_id": "ws-1", "timeout_seconds": 30})
                .as_object()
                .unwrap()
                .clone(),
        ),
    ));
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .expect("sent");
    let response = handle.await_response().await.expect("answered");
    let ServerResult::CallToolResult(result) = response else {
        panic!("{response:?}")
    };
    let v = structured(&result);
    assert_eq!(v["outcome"], "completed");
    assert_eq!(v["status"]["migration"]["state"], "completed");

    // Notifications may trail the response by a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while collector.progress.lock().unwrap().len() < 7 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut progress = collector.progress.lock().unwrap().clone();
    // rmcp's client runs each notification handler in its own task, so the handler may see
    // them out of wire order (tests/mcp-clients/drive.py checks the wire order with the
    // Python client). Order by progress; the values must still be distinct.
    progress.sort_by(|a, b| a.progress.total_cmp(&b.progress));
    let messages: Vec<String> = progress
        .iter()
        .map(|p| p.message.clone().unwrap_or_default())
        .collect();
    assert_eq!(progress.len(), 7, "{messages:#?}");
    let expected = [
        "snapshotting",
        "snapshotted",
        "provisioning_target",
        "warming_caches",
        "target_healthy",
        "retiring_source",
        "completed",
    ];
    for (m, state) in messages.iter().zip(expected) {
        assert!(m.contains(state), "{m} should name {state}");
    }
    assert!(
        messages[2].starts_with("step 3/6 provisioning_target — now provisioning_target"),
        "{}",
        messages[2]
    );
    assert!(
        progress.windows(2).all(|w| w[0].progress < w[1].progress),
        "progress increases"
    );
    assert!(progress.iter().all(|p| p.total == Some(6.0)));
    assert_eq!(progress.last().unwrap().progress, 6.0);
    client.cancel().await.ok();
}

#[tokio::test]
async fn wait_returns_failure_meaning_and_still_running() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(200).json_body(status_body("rolled_back", true));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(200)
                .json_body(status_body("provisioning_target", false));
        })
        .await;
    let (client, _) = connect(&server, true).await;
    let v = structured(
        &call(
            &client,
            "wait_for_workspace_migration",
            json!({"workspace_id": "ws-1"}),
        )
        .await,
    );
    assert_eq!(v["outcome"], "ended_in_failure");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("target was torn down"),
        "{v}"
    );
    assert_eq!(v["status"]["migration"]["state"], "rolled_back");

    let v = structured(
        &call(
            &client,
            "wait_for_workspace_migration",
            json!({"workspace_id": "ws-2", "timeout_seconds": 1}),
        )
        .await,
    );
    assert_eq!(v["outcome"], "still_running");
    assert_eq!(v["status"]["migration"]["state"], "provisioning_target");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("continues on the server"),
        "{v}"
    );

    let text = error_text(
        &call(
            &client,
            "wait_for_workspace_migration",
            json!({"workspace_id": "ws-2", "timeout_seconds": 99999}),
        )
        .await,
    );
    assert!(text.contains("timeout_seconds"), "{text}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn cancelling_the_wait_detaches_and_cancel_operation_ends_the_follow() {
    let server = MockServer::start_async().await;
    let get = server
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(200)
                .json_body(status_body("snapshotting", false));
        })
        .await;
    let (client, _) = connect(&server, true).await;
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("wait_for_workspace_migration").with_arguments(
            json!({"workspace_id": "ws-1", "timeout_seconds": 60})
                .as_object()
                .unwrap()
                .clone(),
        ),
    ));
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .expect("sent");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get.calls_async().await < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle
        .cancel(Some("user stopped".into()))
        .await
        .expect("cancelled");
    // A host's cancellation only detaches: fleet-mcp goes on following the migration, and
    // list_operations / get_operation show it.
    let listed = client
        .call_tool(CallToolRequestParams::new("list_operations"))
        .await
        .expect("answered");
    let ops = listed.structured_content.expect("structured");
    assert_eq!(ops["count"], 1, "{ops}");
    assert_eq!(ops["operations"][0]["kind"], "follow_migration", "{ops}");
    assert_eq!(ops["operations"][0]["done"], false, "{ops}");
    // One line per operation: counts by phase, never per-workspace rows.
    assert_eq!(ops["operations"][0]["counts"]["snapshotting"], 1, "{ops}");
    assert!(ops["operations"][0].get("workspaces").is_none(), "{ops}");
    let before = get.calls_async().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        get.calls_async().await > before,
        "the follow goes on after the cancellation"
    );
    // cancel_operation ends the follow (the migration itself goes on on the server).
    let id = ops["operations"][0]["id"].as_str().unwrap().to_string();
    let cancelled = client
        .call_tool(
            CallToolRequestParams::new("cancel_operation")
                .with_arguments(json!({"operation_id": id}).as_object().unwrap().clone()),
        )
        .await
        .expect("answered");
    let v = cancelled.structured_content.expect("structured");
    assert_eq!(v["state"], "cancelled", "{v}");
    client.cancel().await.ok();
}

/// fleet-mcp serving its own simulator (`--sim`): both Molecule APIs, the tenant API included.
async fn connect_sim() -> RunningService<RoleClient, Collector> {
    fleet_mcp(&["--sim"])
        .connect_with(Collector::default())
        .await
}

#[tokio::test]
async fn an_unknown_workspace_is_a_tool_error_with_a_suggestion_and_no_poll_advice() {
    // Issue 27 items 1 and 10.
    let client = connect_sim().await;
    let r = call(
        &client,
        "get_workspace_migration_status",
        json!({"workspace_id": "ws-aws-dmeo"}),
    )
    .await;
    let text = error_text(&r);
    assert!(text.starts_with("not_found: "), "{text}");
    assert!(text.contains("did you mean ws-aws-demo?"), "{text}");
    // A workspace that exists and was never migrated is still an answer.
    let v = structured(
        &call(
            &client,
            "get_workspace_migration_status",
            json!({"workspace_id": "ws-aws-demo"}),
        )
        .await,
    );
    assert_eq!(v["migrated"], false);
    // The start's answer does not tell the model to poll the control plane's GET; the
    // source instance id of a gcp workspace is read from the tenant API.
    let r = call(
        &client,
        "migrate_workspace_provider",
        json!({"workspace_id": "ws-gcp-demo", "to": "aws", "confirm": true}),
    )
    .await;
    let v = structured(&r);
    assert_eq!(v["from_instance_id_source"], "looked_up", "{v}");
    let all = serde_json::to_string(&r).unwrap();
    assert!(!all.to_lowercase().contains("poll"), "{all}");
    // get_operation names every kind of long operation.
    let tools = client.list_all_tools().await.expect("tools/list");
    let get_operation = tools
        .iter()
        .find(|t| t.name == "get_operation")
        .expect("get_operation");
    let description = get_operation.description.as_deref().unwrap_or_default();
    for kind in [
        "update_agent",
        "restart_agent",
        "update_agents",
        "wait_for_workspace_migration",
        "migrate_workspaces",
    ] {
        assert!(description.contains(kind), "{kind}: {description}");
    }
    client.cancel().await.ok();
}
