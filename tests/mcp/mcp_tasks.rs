//! The MCP tasks extension through the built `fleet-mcp --sim` and rmcp's client, which
//! declares `io.modelcontextprotocol/tasks`: a long tool answers with a task at once; the
//! task is the operation (same id, get_operation sees it); `tasks/get` follows it to the
//! tool's result; `tasks/cancel` cancels gracefully (the stop under way is followed by its
//! start: nothing is left stopped). A client that does not opt in gets the usual answers.

use std::time::{Duration, Instant};

use rmcp::{
    RoleClient,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
        ClientCapabilities, ClientConfig, GetTaskParams, Implementation, RequestMetaObject,
        TaskPayload, TaskStatus,
    },
    service::RunningService,
};
use serde_json::{Value, json};

use crate::support::mcp::fleet_mcp;

async fn connect<C: rmcp::ClientHandler>(handler: C) -> RunningService<RoleClient, C> {
    // Speed 2: a stop takes a few seconds, long enough to cancel during it; polled at the
    // simulator's own pace for that speed, not the tests' fast one.
    fleet_mcp(&["--sim", "--sim-speed", "2"])
        .default_polling()
        .connect_with(handler)
        .await
}

fn with_tasks() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::builder().enable_tasks().build(),
        Implementation::from_build_env(),
    )
}

fn params(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string()).with_arguments(args.as_object().unwrap().clone())
}

/// A call whose own capabilities (`_meta`) declare the tasks extension, as a client of the
/// extension's revision (2026-07-28) signals it per request.
fn task_params(name: &str, args: Value) -> CallToolRequestParams {
    let mut meta = RequestMetaObject::default();
    meta.set_client_capabilities(ClientCapabilities::builder().enable_tasks().build());
    let mut p = params(name, args);
    p.meta = Some(meta);
    p
}

async fn tool(
    client: &RunningService<RoleClient, impl rmcp::ClientHandler>,
    name: &str,
    args: Value,
) -> Value {
    let r = client
        .call_tool(params(name, args))
        .await
        .expect("answered");
    assert_ne!(r.is_error, Some(true), "{name}: {:?}", r.content);
    r.structured_content.expect("structured")
}

/// Polls `tasks/get` until the task is terminal; returns it with the status messages seen.
async fn until_terminal(
    client: &RunningService<RoleClient, ClientConfig>,
    id: &str,
) -> (rmcp::model::DetailedTask, Vec<String>) {
    let began = Instant::now();
    let mut messages = Vec::new();
    loop {
        let t = client
            .get_task(GetTaskParams::new(id.to_string()))
            .await
            .expect("tasks/get")
            .task;
        if let Some(m) = &t.task.status_message {
            if messages.last() != Some(m) {
                messages.push(m.clone());
            }
        }
        if t.status().is_terminal() {
            return (t, messages);
        }
        assert_eq!(t.status(), TaskStatus::Working);
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "task {id} did not end: {messages:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn task_of(
    client: &RunningService<RoleClient, ClientConfig>,
    name: &str,
    args: Value,
) -> String {
    let began = Instant::now();
    let response = client
        .call_tool_once(task_params(name, args))
        .await
        .expect("tools/call");
    let CallToolResponse::Task(created) = response else {
        panic!("{name}: expected a task, got {response:?}")
    };
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "a task is created at once"
    );
    assert_eq!(created.task.status, TaskStatus::Working);
    assert!(created.task.poll_interval_ms.is_some());
    created.task.task_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_tools_run_as_tasks_backed_by_their_operations() {
    let client = connect(with_tasks()).await;

    // update_agent: a task at once, followed by tasks/get to the tool's own result.
    let id = task_of(&client, "update_agent", json!({"agent_name": "alice/dev"})).await;
    assert!(id.starts_with("op-"), "the task is the operation: {id}");
    let op = tool(&client, "get_operation", json!({"operation_id": id})).await;
    assert_eq!(op["kind"], "update", "{op}");
    assert_eq!(op["targets"], json!(["alice/dev"]), "{op}");
    let (done, messages) = until_terminal(&client, &id).await;
    assert!(
        !messages.is_empty(),
        "status messages carry the latest step"
    );
    let TaskPayload::Completed { result } = done.payload else {
        panic!("{:?}", done.payload)
    };
    let result: CallToolResult = serde_json::from_value(Value::Object(result)).unwrap();
    assert_ne!(result.is_error, Some(true), "{:?}", result.content);
    let s = result.structured_content.expect("structured");
    assert_eq!(s["operation_id"], id.as_str());
    assert_eq!(s["done"], true);
    assert_eq!(s["action"], "updated", "{s}");
    let op = tool(&client, "get_operation", json!({"operation_id": id})).await;
    assert_eq!(op["state"], "succeeded", "{op}");
    let shown = tool(&client, "show_agent", json!({"agent_name": "alice/dev"})).await;
    assert_eq!(shown["status"], "running", "{shown}");
    assert_eq!(shown["outdated"], false, "{shown}");

    // restart_agent, cancelled during its stop: the stop is followed by its start.
    let id = task_of(&client, "restart_agent", json!({"agent_name": "bob/dev"})).await;
    let began = Instant::now();
    loop {
        let op = tool(&client, "get_operation", json!({"operation_id": id})).await;
        if op["workspaces"][0]["phase"] == "stopping" {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the stop did not begin: {op}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .cancel_task(CancelTaskParams::new(id.clone()))
        .await
        .expect("tasks/cancel");
    let op = tool(&client, "get_operation", json!({"operation_id": id})).await;
    assert!(
        op["state"] == "cancelling" || op["done"] == true,
        "the task's cancel cancels the operation: {op}"
    );
    // The stop under way is followed by its start, so the restart ends complete: the task
    // settles completed (the extension lets a cancelled task end so), with the tool's result.
    let (done, messages) = until_terminal(&client, &id).await;
    let TaskPayload::Completed { result } = done.payload else {
        panic!("{:?} {messages:?}", done.payload)
    };
    let s = serde_json::from_value::<CallToolResult>(Value::Object(result))
        .unwrap()
        .structured_content
        .expect("structured");
    assert_eq!(s["action"], "restarted", "{s}");
    let shown = tool(&client, "show_agent", json!({"agent_name": "bob/dev"})).await;
    assert_eq!(
        shown["status"], "running",
        "nothing is left stopped: {shown}"
    );

    // A batch cancelled during its first stop starts nothing new: that workspace is started
    // again, the next one never begins, and the task settles cancelled.
    let id = task_of(
        &client,
        "update_agents",
        json!({"agent_names": ["alice/current", "alice/secure-shell"], "force": true, "parallel": 1}),
    )
    .await;
    let began = Instant::now();
    loop {
        let op = tool(&client, "get_operation", json!({"operation_id": id})).await;
        if op["workspaces"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["phase"] == "stopping"))
        {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "no stop: {op}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .cancel_task(CancelTaskParams::new(id.clone()))
        .await
        .expect("tasks/cancel");
    let (done, messages) = until_terminal(&client, &id).await;
    assert_eq!(done.status(), TaskStatus::Cancelled, "{messages:?}");
    let op = tool(&client, "get_operation", json!({"operation_id": id})).await;
    assert_eq!(op["state"], "cancelled", "{op}");
    let verdicts: Vec<(String, String)> = op["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["target"].as_str().unwrap().to_string(),
                w["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        verdicts.contains(&("alice/secure-shell".into(), "not_started".into())),
        "{verdicts:?}"
    );
    for name in ["alice/current", "alice/secure-shell"] {
        let shown = tool(&client, "show_agent", json!({"agent_name": name})).await;
        assert_eq!(
            shown["status"], "running",
            "{name} is not left stopped: {shown}"
        );
    }

    // Bad input: no task, the usual tool error (nothing started).
    let response = client
        .call_tool_once(task_params(
            "update_agent",
            json!({"agent_name": "no such/one/x"}),
        ))
        .await
        .expect("tools/call");
    let CallToolResponse::Complete(r) = response else {
        panic!("{response:?}")
    };
    assert_eq!(r.is_error, Some(true));

    // An unknown task id is an error, not a hang.
    assert!(
        client
            .get_task(GetTaskParams::new("op-000000000000".to_string()))
            .await
            .is_err()
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_extension_gets_the_usual_answers() {
    let client = connect(()).await;
    let s = tool(
        &client,
        "restart_agent",
        json!({"agent_name": "alice/dev", "wait_seconds": 0}),
    )
    .await;
    assert_eq!(s["done"], false, "{s}");
    let id = s["operation_id"]
        .as_str()
        .expect("an operation id")
        .to_string();
    let op = tool(
        &client,
        "get_operation",
        json!({"operation_id": id, "wait_seconds": 60}),
    )
    .await;
    assert_eq!(op["state"], "succeeded", "{op}");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_made_only_at_initialize_gets_the_usual_answers() {
    // As MCP Inspector 2.12 does: the extension in the initialize capabilities, and a
    // tools/call without per-request capabilities. It cannot read a task answer, so it gets
    // the tool's own answer.
    let client = connect(with_tasks()).await;
    let response = client
        .call_tool_once(params(
            "restart_agent",
            json!({"agent_name": "alice/dev", "wait_seconds": 60}),
        ))
        .await
        .expect("tools/call");
    let CallToolResponse::Complete(r) = response else {
        panic!("expected the usual answer, got {response:?}")
    };
    assert_ne!(r.is_error, Some(true), "{:?}", r.content);
    let s = r.structured_content.expect("structured");
    assert_eq!(s["done"], true, "{s}");
    client.cancel().await.ok();
}
