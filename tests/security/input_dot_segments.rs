//! Ids and names that would change a URL's path (`.`, `..`, `../dev`, `./x`, `%2e`, a
//! backslash, a slash) are invalid input on both planes: through the built `fleet` (exit 2,
//! one reason) and `fleet-mcp` (a tool error), with zero requests sent — a catch-all mock
//! counts every request, whatever its path.

use crate::support::cli::fleet;
use crate::support::mcp::fleet_mcp;

use httpmock::prelude::*;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

const BAD_MOLECULE_IDS: [&str; 10] = [
    ".",
    "..",
    " .. ",
    "../dev",
    "./x",
    "%2e%2e",
    "%2E",
    "ws\\..\\admin",
    "..\\admin",
    "ws-1/..",
];

const BAD_CODER_REFS: [&str; 11] = [
    ".",
    "..",
    "alice/..",
    "alice/.",
    "../dev",
    "./x",
    "%2e%2e",
    "alice/%2e%2e",
    "alice\\..",
    "../..",
    "alice/../bob",
];

fn env(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MOLECULE_CP_URL", base.to_string()),
        ("CP_ADMIN_API_TOKEN", "dot-test-cp-token".into()),
        ("MOLECULE_API_URL", base.to_string()),
        ("MOLECULE_ORG_API_KEY", "dot-test-org-key".into()),
        ("CODER_URL", base.to_string()),
        ("CODER_SESSION_TOKEN", "dot-test-coder-token".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_dot_segments_on_both_planes_and_sends_nothing() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_when, then| {
            then.status(599).body("no request was expected");
        })
        .await;
    let mut cases: Vec<Vec<String>> = Vec::new();
    for id in BAD_MOLECULE_IDS {
        for args in [
            vec![
                "molecule",
                "migrate-provider",
                id,
                "--to",
                "hetzner",
                "--from",
                "aws",
                "--confirm",
            ],
            vec![
                "molecule",
                "migrate-provider",
                id,
                "--to",
                "gcp",
                "--dry-run",
            ],
            vec![
                "molecule",
                "migrate-provider",
                "ws-ok",
                id,
                "--to",
                "hetzner",
                "--confirm",
            ],
            vec!["molecule", "migration-status", id],
            vec!["molecule", "migration-status", id, "--wait"],
            vec!["molecule", "migration-status", "ws-ok", id],
        ] {
            cases.push(args.into_iter().map(String::from).collect());
        }
    }
    for r in BAD_CODER_REFS {
        for args in [
            vec!["coder", "show", r],
            vec!["coder", "update", r],
            vec!["coder", "restart", r],
        ] {
            cases.push(args.into_iter().map(String::from).collect());
        }
    }
    for args in &cases {
        let out = fleet(&[])
            .args(args)
            .vars(&env(&server.base_url()))
            .output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: one reason: {stderr}");
        assert_eq!(
            any.calls_async().await,
            0,
            "{args:?} sent a request: {stderr}"
        );
    }
    eprintln!(
        "dot-segment cases through fleet: {}, requests: 0",
        cases.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_tools_refuse_dot_segments_and_send_nothing() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_when, then| {
            then.status(599).body("no request was expected");
        })
        .await;
    let client = fleet_mcp(&[])
        .vars(&env(&server.base_url()))
        .connect()
        .await;
    let mut calls = Vec::new();
    for id in BAD_MOLECULE_IDS {
        calls.push((
            "migrate_workspace_provider",
            json!({"workspace_id": id, "to": "hetzner", "from": "aws", "confirm": true}),
        ));
        calls.push((
            "get_workspace_migration_status",
            json!({"workspace_id": id}),
        ));
        calls.push((
            "wait_for_workspace_migration",
            json!({"workspace_id": id, "timeout_seconds": 5}),
        ));
    }
    for r in BAD_CODER_REFS {
        calls.push(("show_agent", json!({"agent_name": r})));
        calls.push(("update_agent", json!({"agent_name": r})));
        calls.push(("restart_agent", json!({"agent_name": r})));
        calls.push(("update_agents", json!({"agent_names": ["alice/dev", r]})));
    }
    for (tool, args) in &calls {
        let r = client
            .call_tool(
                CallToolRequestParams::new(*tool).with_arguments(args.as_object().unwrap().clone()),
            )
            .await;
        match r {
            Ok(r) => {
                assert_eq!(r.is_error, Some(true), "{tool} {args}: {r:?}");
                let v = serde_json::to_value(&r).unwrap();
                let t = v["content"][0]["text"].as_str().unwrap_or_default();
                assert!(t.starts_with("invalid_input:"), "{tool} {args}: {t}");
            }
            Err(e) => panic!("{tool} {args}: a protocol error instead of a tool error: {e}"),
        }
        assert_eq!(any.calls_async().await, 0, "{tool} {args} sent a request");
    }
    eprintln!(
        "dot-segment cases through fleet-mcp: {}, requests: 0",
        calls.len()
    );
    client.cancel().await.ok();
}
