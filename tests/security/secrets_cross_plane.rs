//! A control plane that echoes another plane's token (a proxy, a misconfigured server): the
//! token is still never printed by `fleet` nor returned by `fleet-mcp`.

use std::{
    io::{BufRead, BufReader, Write},
    process::Stdio,
};

use crate::support::cli::fleet;
use crate::support::mcp::fleet_mcp;

use httpmock::prelude::*;
use serde_json::json;

const CODER_MARKER: &str = "coder-XPLANE-b81f0c";
const ORG_MARKER: &str = "org-XPLANE-77aa21";

async fn echoing_cp() -> MockServer {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path_includes("/cp/admin/");
            then.status(500).json_body(json!({
                "error": format!("upstream said: coder token {CODER_MARKER}, org key {ORG_MARKER}")
            }));
        })
        .await;
    server
}

#[tokio::test]
async fn fleet_never_prints_another_planes_token() {
    let server = echoing_cp().await;
    let out = fleet(&[
        "--log-level",
        "trace",
        "molecule",
        "migration-status",
        "ws-1",
    ])
    .molecule(&server.base_url(), "cp-token")
    .env("CODER_SESSION_TOKEN", CODER_MARKER)
    .env("MOLECULE_ORG_API_KEY", ORG_MARKER)
    .output();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("upstream said"),
        "the server's words are shown: {all}"
    );
    assert!(all.contains("<redacted>"), "{all}");
    assert!(
        !all.contains(CODER_MARKER) && !all.contains(ORG_MARKER),
        "{all}"
    );
}

#[tokio::test]
async fn fleet_mcp_never_returns_another_planes_token() {
    let server = echoing_cp().await;
    let mut child = fleet_mcp(&[])
        .molecule(&server.base_url(), "cp-token")
        .coder("http://127.0.0.1:9", CODER_MARKER)
        .env("MOLECULE_ORG_API_KEY", ORG_MARKER)
        .std_command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fleet-mcp starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    for line in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "get_workspace_migration_status", "arguments": {"workspace_id": "ws-1"}}}),
    ] {
        writeln!(stdin, "{line}").expect("write");
    }
    let answer = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("\"id\":2"))
            .expect("an answer to the call")
    })
    .await
    .expect("joined");
    drop(stdin);
    let _ = child.kill();
    let output = child.wait_with_output().expect("exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(answer.contains("\"isError\":true"), "{answer}");
    assert!(
        answer.contains("upstream said") && answer.contains("<redacted>"),
        "{answer}"
    );
    for text in [answer.as_str(), &stderr] {
        assert!(
            !text.contains(CODER_MARKER) && !text.contains(ORG_MARKER),
            "{text}"
        );
    }
}
