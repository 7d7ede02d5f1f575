//! The migration POST without a clear answer (a 500, a reset connection), through the built
//! `fleet` and `fleet-mcp`: the POST is never sent again; the migration is read back and the
//! output says what is true — "may have started: it is now in state X; follow it with …" or
//! "no migration is running: nothing was started". Exit code 1 either way: the control plane
//! did not confirm the start, and the message says what to do next.

use std::{
    process::Output,
    sync::{Arc, Mutex},
};

use crate::support::cli::fleet;
use crate::support::mcp::fleet_mcp;
use httpmock::prelude::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "unclear-post-token-5150";
const PATH: &str = "/cp/admin/workspaces/ws-1/migrate-provider";
const MIGRATE: [&str; 8] = [
    "molecule",
    "migrate-provider",
    "ws-1",
    "--to",
    "hetzner",
    "--from",
    "aws",
    "--confirm",
];

fn running() -> Value {
    json!({
        "migration": {"state": "snapshotting", "from_provider": "aws", "to_provider": "hetzner", "detail": "snapshotting i-1"},
        "terminal": false,
    })
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Pre-flight: never migrated (once); after that, `after` answers the reads.
async fn status_then(server: &MockServer, after: Option<Value>) {
    server
        .mock_async(|when, then| {
            when.method(GET).path(PATH);
            then.status(404).json_body(json!({"error": "no migration"}));
        })
        .await
        .up_to_n_times_async(1)
        .await;
    if let Some(body) = after {
        server
            .mock_async(move |when, then| {
                when.method(GET).path(PATH);
                then.status(200).json_body(body);
            })
            .await;
    } else {
        server
            .mock_async(|when, then| {
                when.method(GET).path(PATH);
                then.status(404).json_body(json!({"error": "no migration"}));
            })
            .await;
    }
}

async fn post_500(server: &MockServer) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(POST).path(PATH);
            then.status(500)
                .json_body(json!({"error": "internal error", "detail": "db timeout"}));
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_while_the_migration_runs_says_it_may_have_started_and_how_to_follow() {
    let server = MockServer::start_async().await;
    status_then(&server, Some(running())).await;
    let post = post_500(&server).await;
    let out = fleet(&MIGRATE).molecule(&server.base_url(), TOKEN).output();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("internal error (db timeout)")
            && stderr.contains("may have started")
            && stderr.contains("snapshotting")
            && stderr
                .contains("To follow it, run `fleet molecule migration-status --wait -- ws-1`"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN));
    post.assert_calls_async(1).await;

    // The same with JSON output (a fresh server: its pre-flight sees no migration again).
    let server = MockServer::start_async().await;
    status_then(&server, Some(running())).await;
    let post = post_500(&server).await;
    let mut json_args = vec!["-o", "json"];
    json_args.extend_from_slice(&MIGRATE);
    let out = fleet(&json_args)
        .molecule(&server.base_url(), TOKEN)
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["error"]["kind"], "unconfirmed", "{v}");
    assert_eq!(v["error"]["found"], "under_way", "{v}");
    assert_eq!(v["error"]["current_state"], "snapshotting", "{v}");
    assert_eq!(v["error"]["nothing_changed"], false, "{v}");
    post.assert_calls_async(1).await; // never re-sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_with_no_migration_afterwards_says_nothing_was_started() {
    let server = MockServer::start_async().await;
    status_then(&server, None).await;
    let post = post_500(&server).await;
    let mut args = vec!["-o", "json"];
    args.extend_from_slice(&MIGRATE);
    let out = fleet(&args).molecule(&server.base_url(), TOKEN).output();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["error"]["found"], "nothing_started", "{v}");
    assert_eq!(v["error"]["nothing_changed"], true, "{v}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("no migration is running")
            && stderr.contains("nothing was started")
            && stderr.contains("Run the same command again"),
        "{stderr}"
    );
    post.assert_calls_async(1).await;
}

/// A raw server: GETs answer never-migrated first, then `after`; a POST is read whole and its
/// connection closed without a word (a reset as the client sees it). Records request lines.
async fn resetting_server(after: Value) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = seen.clone();
            let after = after.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                let head_end = loop {
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                };
                let head = String::from_utf8_lossy(&got[..head_end]).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while got.len() < head_end + length {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                let gets_before = {
                    let mut l = log.lock().unwrap();
                    let n = l.iter().filter(|x| x.starts_with("GET")).count();
                    l.push(line.clone());
                    n
                };
                if line.starts_with("POST") {
                    drop(sock);
                    return;
                }
                let (status, body) = if gets_before == 0 {
                    ("404 Not Found", json!({"error": "no migration"}))
                } else {
                    ("200 OK", after)
                };
                let body = body.to_string();
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.flush().await;
            });
        }
    });
    (format!("http://{addr}"), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_post_is_read_back_never_resent() {
    let (base, log) = resetting_server(running()).await;
    let out = fleet(&MIGRATE).molecule(&base, TOKEN).output();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("may have started")
            && stderr
                .contains("To follow it, run `fleet molecule migration-status --wait -- ws-1`"),
        "{stderr}"
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("POST")).count(),
        1,
        "{log:?}"
    );
    assert!(
        log.last().is_some_and(|l| l.starts_with("GET")),
        "the last request reads the migration back: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_names_the_tool_to_follow_with() {
    let server = MockServer::start_async().await;
    status_then(&server, Some(running())).await;
    let post = post_500(&server).await;
    let client = fleet_mcp(&[])
        .molecule(&server.base_url(), TOKEN)
        .connect()
        .await;
    let r = client
        .call_tool(
            CallToolRequestParams::new("migrate_workspace_provider").with_arguments(
                json!({"workspace_id": "ws-1", "to": "hetzner", "from": "aws", "confirm": true})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .expect("tools/call answered");
    assert_eq!(r.is_error, Some(true), "{r:?}");
    let v = serde_json::to_value(&r).unwrap();
    let t = v["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        t.starts_with("unconfirmed:")
            && t.contains("may have started")
            && t.contains("wait_for_workspace_migration")
            && !t.contains("fleet molecule"),
        "{t}"
    );
    post.assert_calls_async(1).await;
    client.cancel().await.ok();
}

/// One exit-code taxonomy for single and batch runs: a start the control plane did not confirm
/// exits 1 on its own (above) and so inside a batch, even when reading back found nothing
/// started (it was sent, not refused before sending, which would be 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_batch_an_unconfirmed_start_exits_1_as_it_does_alone() {
    let server = MockServer::start_async().await;
    status_then(&server, None).await;
    let post = post_500(&server).await;
    const OTHER: &str = "/cp/admin/workspaces/ws-2/migrate-provider";
    server
        .mock_async(|when, then| {
            when.method(GET).path(OTHER);
            then.status(404).json_body(json!({"error": "no migration"}));
        })
        .await;
    let other_post = server
        .mock_async(|when, then| {
            when.method(POST).path(OTHER);
            then.status(202).json_body(json!({
                "status": "migration_started", "workspace_id": "ws-2", "from": "aws", "to": "hetzner"
            }));
        })
        .await;
    let out = fleet(&[
        "-o",
        "json",
        "molecule",
        "migrate-provider",
        "ws-1",
        "ws-2",
        "--to",
        "hetzner",
        "--from",
        "aws",
        "--confirm",
    ])
    .molecule(&server.base_url(), TOKEN)
    .output();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["exit_code"], 1, "{v}");
    assert_eq!(v["starts"]["worst"], "failed", "{v}");
    let results = v["starts"]["results"].as_array().expect("results");
    let ws1 = results
        .iter()
        .find(|r| r["workspace_id"] == "ws-1")
        .expect("ws-1");
    assert_eq!(ws1["read_back"], "nothing_started", "{v}");
    post.assert_calls_async(1).await;
    other_post.assert_calls_async(1).await;
}
