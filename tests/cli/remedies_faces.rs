//! The SDK says what a caller can do about a refusal as a fact (a typed remedy: give this
//! input, leave it out, update to the active version, read this); each face words it. Through
//! the built `fleet` and `fleet-mcp` against the simulator: the same refusal reads as flags and
//! commands in the CLI and as tool arguments and tool calls in MCP, neither face shows the
//! other's words, and nothing reached the simulator that changes state.

use crate::support::cli::{fleet, fleet_output_on};
use crate::support::mcp::{fleet_mcp, mcp_on};
use crate::support::sim::sim;
use rmcp::{
    RoleClient,
    model::{CallToolRequestParams, CallToolResult},
    service::RunningService,
};
use serde_json::{Value, json};

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> String {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().expect("object").clone());
    let r: CallToolResult = client.call_tool(params).await.expect("the call answers");
    assert_eq!(r.is_error, Some(true), "{tool} {args}: {r:?}");
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// No CLI words in an MCP answer.
fn assert_mcp_words(text: &str) {
    for cli in [" --", "`fleet ", "fleet coder", "fleet molecule"] {
        assert!(
            !text.contains(cli),
            "MCP text shows the CLI's {cli:?}: {text}"
        );
    }
}

/// No MCP words in CLI output.
fn assert_cli_words(text: &str) {
    for mcp in [
        "MCP",
        "call again",
        "update_agent",
        "list_agents",
        "show_agent",
    ] {
        assert!(!text.contains(mcp), "CLI text shows MCP's {mcp:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_refusal_says_what_to_do_in_the_words_of_its_face() {
    let sim = sim(2000.0).await;
    let v = |t: &str, n: &str| sim.coder_version_id(t, n).unwrap().to_string();
    let (archived, importing) = (
        v("docker-dev", "v0-archived"),
        v("docker-dev", "v4-importing"),
    );
    let client = mcp_on(&sim).await;

    // (CLI args, CLI advice, MCP tool, MCP args, MCP advice)
    let cases: Vec<(Vec<&str>, String, &str, Value, String)> = vec![
        (
            vec![
                "coder",
                "update",
                "alice/dev",
                "--template-version",
                &archived,
            ],
            "To go on, pass --template-version ID, or leave --template-version out.".into(),
            "update_agent",
            json!({"agent_name": "alice/dev", "template_version_id": archived}),
            "To go on, call again with template_version_id, or call again without \
             template_version_id."
                .into(),
        ),
        (
            vec!["coder", "restart", "alice/secure-shell"],
            "To go on, update it to the active version instead: `fleet coder update -- \
             alice/secure-shell`."
                .into(),
            "restart_agent",
            json!({"agent_name": "alice/secure-shell"}),
            "To go on, update it to the active version instead: call update_agent \
             {\"agent_name\":\"alice/secure-shell\"}."
                .into(),
        ),
        (
            vec![
                "coder",
                "update",
                "alice/dev",
                "--template-version",
                &importing,
            ],
            format!(
                "To go on, run `fleet coder template-version -- {importing}` to see its import \
                 job."
            ),
            "update_agent",
            json!({"agent_name": "alice/dev", "template_version_id": importing}),
            format!(
                "To go on, call get_template_version {{\"template_version_id\":\"{importing}\"}} \
                 to see its import job."
            ),
        ),
        (
            vec!["coder", "update", "alice/nope"],
            "To go on, run `fleet coder list` to see the workspaces.".into(),
            "update_agent",
            json!({"agent_name": "alice/nope"}),
            "To go on, call list_agents to see the workspaces.".into(),
        ),
        (
            vec!["coder", "update", "alice/dev", "--parameter", "cpu=32"],
            "To go on, pass --parameter NAME=VALUE (or --parameters-file FILE).".into(),
            "update_agent",
            json!({"agent_name": "alice/dev", "parameters": {"cpu": 32}}),
            "To go on, call again with parameters {\"NAME\": \"VALUE\"}.".into(),
        ),
        (
            vec![
                "molecule",
                "migrate-provider",
                "ws-aws-demo",
                "--to",
                "hetzner",
            ],
            // The CLI asks at a terminal and refuses on its own without one.
            "Nothing was sent. Add --confirm".into(),
            "migrate_workspace_provider",
            json!({"workspace_id": "ws-aws-demo", "to": "hetzner"}),
            "To go on, call again with confirm: true once you mean it.".into(),
        ),
        (
            vec![
                "molecule",
                "migrate-provider",
                "ws-gcp-demo",
                "--from",
                "aws",
                "--to",
                "hetzner",
                "--confirm",
            ],
            "To go on, pass --from gcp, or leave --from out.".into(),
            "migrate_workspace_provider",
            json!({"workspace_id": "ws-gcp-demo", "from": "aws", "to": "hetzner", "confirm": true}),
            "To go on, call again with {\"from\":\"gcp\"}, or call again without from.".into(),
        ),
        (
            vec!["coder", "update", "alice/dev", "--all-owners"],
            "To go on, leave --all-owners out.".into(),
            "update_agents",
            json!({"agent_names": ["alice/dev"], "all_owners": true}),
            "To go on, call again without all_owners.".into(),
        ),
    ];
    for (args, cli_advice, tool, tool_args, mcp_advice) in cases {
        let out = fleet_output_on(&sim, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        // A refusal, invalid input or a workspace that does not exist (issue 27: was 1) exits 2.
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&cli_advice),
            "{args:?}: {cli_advice:?} missing: {err}"
        );
        assert_cli_words(&err);

        let text = call(&client, tool, tool_args.clone()).await;
        assert!(
            text.contains(&mcp_advice),
            "{tool} {tool_args}: {mcp_advice:?} missing: {text}"
        );
        assert_mcp_words(&text);
    }
    // A batch with no selection (the CLI's parser already requires one).
    let text = call(&client, "update_agents", json!({})).await;
    assert!(
        text.contains("To go on, give exactly one of: agent_names, all_outdated: true, template."),
        "{text}"
    );
    assert_mcp_words(&text);
    client.cancel().await.ok();

    // Nothing that changes state reached the simulator.
    let posts: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.clone())
        .collect();
    assert!(posts.is_empty(), "{posts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_carries_the_remedies_as_facts_beside_the_worded_message() {
    let sim = sim(2000.0).await;
    let out = fleet_output_on(
        &sim,
        &[
            "-o",
            "json",
            "molecule",
            "migrate-provider",
            "ws-gcp-demo",
            "--from",
            "aws",
            "--to",
            "hetzner",
            "--confirm",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["error"]["kind"], "refused", "{v}");
    assert_eq!(
        v["error"]["remedies"],
        json!([
            {"remedy": "give", "input": "from", "value": "gcp"},
            {"remedy": "leave_out", "input": "from"}
        ]),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with("To go on, pass --from gcp, or leave --from out."),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_configuration_names_the_variables_and_in_the_cli_its_flags() {
    // No Molecule configuration at all: the CLI adds the flag that stands for the variable;
    // fleet-mcp (configured from its environment only) names the variable alone.
    let out = fleet(&["molecule", "migration-status", "ws-1"])
        .env("MOLECULE_CP_URL", "http://127.0.0.1:9")
        .output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("set CP_ADMIN_API_TOKEN (or pass --cp-admin-token-file PATH)"),
        "{err}"
    );

    let client = fleet_mcp(&[])
        .env("MOLECULE_CP_URL", "http://127.0.0.1:9")
        .connect()
        .await;
    let text = call(
        &client,
        "get_workspace_migration_status",
        json!({"workspace_id": "ws-1"}),
    )
    .await;
    assert!(text.contains("set CP_ADMIN_API_TOKEN"), "{text}");
    assert_mcp_words(&text);
    client.cancel().await.ok();
}

/// An operation followed with get_operation ends in the same words as the tool would have
/// answered: the error's message, what to do about it, in tool calls.
#[tokio::test(flavor = "multi_thread")]
async fn get_operation_words_an_ended_operation_s_error_like_the_tool() {
    let sim = sim(2000.0).await;
    let client = mcp_on(&sim).await;
    let params = CallToolRequestParams::new("restart_agent".to_string()).with_arguments(
        json!({"agent_name": "alice/secure-shell", "wait_seconds": 0})
            .as_object()
            .unwrap()
            .clone(),
    );
    let r = client.call_tool(params).await.expect("answers");
    assert_ne!(
        r.is_error,
        Some(true),
        "wait_seconds 0 answers at once: {r:?}"
    );
    let started = r.structured_content.clone().expect("structured");
    let id = started["operation_id"]
        .as_str()
        .expect("an operation id")
        .to_string();
    let params = CallToolRequestParams::new("get_operation".to_string()).with_arguments(
        json!({"operation_id": id, "wait_seconds": 20})
            .as_object()
            .unwrap()
            .clone(),
    );
    let r = client.call_tool(params).await.expect("answers");
    let v = r.structured_content.clone().expect("structured");
    assert_eq!(v["error"]["kind"], "refused", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with(
            "To go on, update it to the active version instead: call update_agent \
             {\"agent_name\":\"alice/secure-shell\"}."
        ),
        "{message}"
    );
    assert_mcp_words(message);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_tenant_api_a_gcp_source_needs_its_instance_id_in_each_face_s_words() {
    // Issue 27: with the tenant API configured, the instance id is read from it (no remedy);
    // without it, each face names its own input, and a tool without that input says which
    // tool has it.
    let sim = sim(2000.0).await;
    let no_tenant: Vec<(String, String)> = sim
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| k != "MOLECULE_API_URL" && k != "MOLECULE_ORG_API_KEY")
        .collect();
    let out = fleet(&[
        "molecule",
        "migrate-provider",
        "ws-gcp-demo",
        "--from",
        "gcp",
        "--to",
        "aws",
        "--confirm",
    ])
    .envs(no_tenant.iter().cloned())
    .output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("To go on, pass --from-instance-id <ID> (one workspace per command)."),
        "{err}"
    );
    assert_cli_words(&err);

    let client = fleet_mcp(&[])
        .envs(no_tenant.iter().cloned())
        .connect()
        .await;
    let text = call(
        &client,
        "migrate_workspace_provider",
        json!({"workspace_id": "ws-gcp-demo", "from": "gcp", "to": "aws", "confirm": true}),
    )
    .await;
    assert!(
        text.contains("To go on, call again with from_instance_id."),
        "{text}"
    );
    assert_mcp_words(&text);
    // migrate_workspaces has no from_instance_id: its answer must not ask for one.
    let r: CallToolResult = client
        .call_tool(
            CallToolRequestParams::new("migrate_workspaces").with_arguments(
                json!({"workspace_ids": ["ws-gcp-demo"], "from": "gcp", "to": "aws", "confirm": true})
                    .as_object()
                    .expect("object")
                    .clone(),
            ),
        )
        .await
        .expect("answers");
    let text = serde_json::to_string(&r).expect("json");
    assert!(
        !text.contains("call again with from_instance_id"),
        "migrate_workspaces has no such argument: {text}"
    );
    assert!(text.contains("migrate_workspace_provider"), "{text}");
    client.cancel().await.ok();
}

/// One rule per input: a rollout control out of range is refused by both faces, on both
/// planes, with the same words from the SDK (the input, the value, the range) and the remedy
/// in each face's names; nothing clamps it and nothing is sent (not even a read).
#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_control_out_of_range_is_refused_by_both_faces_on_both_planes_having_sent_nothing()
 {
    let sim = sim(2000.0).await;
    let same_words = "parallel 500 is out of range: it must be 1 to 64; nothing was sent";
    // The CLI: exit 2, the flag and its range.
    for args in [
        vec![
            "coder",
            "update",
            "--parallel",
            "500",
            "--",
            "dev",
            "api-server",
        ],
        vec![
            "molecule",
            "migrate-provider",
            "--to",
            "hetzner",
            "--confirm",
            "--wait",
            "--parallel",
            "500",
            "--",
            "ws-aws-demo",
            "ws-flaky",
        ],
    ] {
        let out = fleet_output_on(&sim, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(same_words), "{args:?}: {stderr}");
        assert!(
            stderr.contains("To go on, pass --parallel from 1 to 64."),
            "{args:?}: {stderr}"
        );
        assert_cli_words(&stderr);
    }
    let out = fleet_output_on(&sim, &["coder", "update", "dev", "--ready-timeout", "48h"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ready timeout 2days is out of range: it must be 1s to 1day")
            && stderr.contains("pass --ready-timeout from 1s to 1day"),
        "{stderr}"
    );
    // MCP: isError, the argument and its range; the migration is not clamped and started.
    let client = mcp_on(&sim).await;
    for (tool, args) in [
        (
            "update_agents",
            json!({"agent_names": ["dev", "api-server"], "parallel": 500}),
        ),
        (
            "migrate_workspaces",
            json!({"workspace_ids": ["ws-aws-demo", "ws-flaky"], "to": "hetzner", "from": "aws",
                   "confirm": true, "parallel": 500}),
        ),
    ] {
        let text = call(&client, tool, args).await;
        assert!(text.contains(same_words), "{tool}: {text}");
        assert!(
            text.contains("To go on, call again with parallel from 1 to 64."),
            "{tool}: {text}"
        );
        assert_mcp_words(&text);
    }
    for (args, words, remedy) in [
        (
            json!({"agent_name": "dev", "ready_timeout_seconds": 0}),
            "ready timeout 0s is out of range: it must be 1s to 1day",
            "call again with ready_timeout_seconds from 1 to 86400",
        ),
        (
            json!({"agent_name": "dev", "wait_seconds": 301}),
            "wait 5m 1s is out of range: it must be 0s to 5m",
            "call again with wait_seconds from 0 to 300",
        ),
    ] {
        let text = call(&client, "update_agent", args).await;
        assert!(
            text.contains(words) && text.contains(remedy),
            "update_agent: {text}"
        );
    }
    let _ = client.cancel().await;
    assert_eq!(
        sim.requests().len(),
        0,
        "nothing was sent: {:?}",
        sim.requests()
    );
}

/// How long a migration is followed (`--timeout`, fleet-mcp's `timeout_seconds`) has one range,
/// the SDK's: out of it, both faces refuse with the same words and their own name for the
/// input; nothing is clamped (an hour at most, never a silent cut) and nothing is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_migration_timeout_out_of_range_is_refused_by_both_faces_having_sent_nothing() {
    let sim = sim(2000.0).await;
    let same_words = "migration timeout 2h is out of range: it must be 1s to 1h; nothing was sent";
    for args in [
        vec![
            "molecule",
            "migration-status",
            "ws-aws-demo",
            "--wait",
            "--timeout",
            "2h",
        ],
        vec![
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "--to",
            "hetzner",
            "--confirm",
            "--wait",
            "--timeout",
            "2h",
        ],
    ] {
        let out = fleet_output_on(&sim, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(same_words), "{args:?}: {stderr}");
        assert!(
            stderr.contains("To go on, pass --timeout from 1s to 1h."),
            "{args:?}: {stderr}"
        );
        assert_cli_words(&stderr);
    }
    let client = mcp_on(&sim).await;
    for (seconds, words) in [
        (7200, same_words),
        (
            0,
            "migration timeout 0s is out of range: it must be 1s to 1h; nothing was sent",
        ),
    ] {
        let text = call(
            &client,
            "wait_for_workspace_migration",
            json!({"workspace_id": "ws-aws-demo", "timeout_seconds": seconds}),
        )
        .await;
        assert!(text.contains(words), "{seconds}: {text}");
        assert!(
            text.contains("To go on, call again with timeout_seconds from 1 to 3600."),
            "{seconds}: {text}"
        );
        assert_mcp_words(&text);
    }
    let _ = client.cancel().await;
    assert_eq!(
        sim.requests().len(),
        0,
        "nothing was sent: {:?}",
        sim.requests()
    );
}

/// http:// to a host that is not loopback is refused before anything is sent; the SDK states
/// the remedy (allow insecure http) and each face words it: the CLI as its flag, fleet-mcp as
/// the flag it is started with.
#[tokio::test(flavor = "multi_thread")]
async fn plain_http_off_loopback_is_refused_with_each_face_s_way_to_allow_it() {
    // A name under .invalid never resolves: nothing could be sent even if the check failed.
    let url = "http://coder.invalid";
    let out = fleet(&["coder", "list"]).coder(url, "t").output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("tokens would cross the network in clear")
            && err.contains("To go on, pass --insecure-http if you really mean it."),
        "{err}"
    );
    assert_cli_words(&err);

    let client = fleet_mcp(&[]).coder(url, "t").connect().await;
    let text = call(&client, "list_agents", json!({})).await;
    assert!(
        text.contains("tokens would cross the network in clear")
            && text
                .contains("To go on, start fleet-mcp with --insecure-http if you really mean it."),
        "{text}"
    );
    assert!(!text.contains("pass --"), "{text}");
    client.cancel().await.ok();
}
