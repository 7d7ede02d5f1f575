//! The built `fleet-mcp --sim --http 127.0.0.1:0` under attack by a client without a token
//! (issue 11 item 7): half-open connections beyond the connection cap neither lock out `/health`
//! nor a real MCP `initialize`, and are closed after the header timeout; a request from a foreign
//! browser origin is refused (403) and opens no session, an allowed or absent Origin works;
//! sessions are capped (503 beyond) and expire when idle.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::mcp::{McpHttp, fleet_mcp};

/// `fleet-mcp --sim` serving streamable HTTP on a free loopback port, with `flags`.
async fn start(flags: &[&str]) -> McpHttp {
    fleet_mcp(&["--sim"]).args(flags).serve_http().await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"security-test","version":"1"}}}"#;

/// Sends `initialize` (with `origin` if given): the status, the session id and the body.
async fn initialize(server: &McpHttp, origin: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = server
        .post(INITIALIZE, None)
        .timeout(Duration::from_secs(10));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.expect("initialize is answered");
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    (status, session, response.text().await.unwrap())
}

/// `initialize` answered with a session and a real InitializeResult from fleet-mcp.
async fn initialize_ok(server: &McpHttp, origin: Option<&str>) -> String {
    let (status, session, body) = initialize(server, origin).await;
    assert_eq!(status, 200, "initialize (Origin {origin:?}): {body}");
    assert!(
        body.contains("\"protocolVersion\"") && body.contains("fleet"),
        "an InitializeResult from fleet-mcp: {body}"
    );
    let session = session.expect("initialize opens a session");
    // Finish the handshake as a client does.
    let done = server
        .post(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            None,
        )
        .timeout(Duration::from_secs(10))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(done.status().is_success(), "initialized: {}", done.status());
    session
}

/// `tools/list` in a session: the HTTP status and the body.
async fn tools_list(server: &McpHttp, session: &str) -> (u16, String) {
    let response = server
        .post(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
            None,
        )
        .timeout(Duration::from_secs(10))
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn health_within(server: &McpHttp, limit: Duration) -> Duration {
    let started = Instant::now();
    let response = client()
        .get(format!("http://{}/health", server.addr))
        .timeout(limit)
        .send()
        .await
        .unwrap_or_else(|e| panic!("/health did not answer within {limit:?}: {e}"));
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("\"ok\""));
    started.elapsed()
}

/// Opens a connection and sends a request line but never finishes the headers.
async fn half_open(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    stream
}

/// Waits until the server closes `stream` (EOF or reset); `None` if still open at `deadline`.
async fn closed_by_server(stream: &mut TcpStream, deadline: Instant) -> Option<Instant> {
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            // hyper may answer 408 before closing; read on to the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_beyond_the_cap_lock_out_nobody_and_are_closed_after_the_header_timeout()
 {
    let server = start(&[
        "--http-max-connections",
        "64",
        "--http-header-timeout",
        "3s",
    ])
    .await;
    // 300 connections that never finish their headers: far beyond the cap of 64.
    let mut attackers = Vec::new();
    for _ in 0..300 {
        attackers.push(half_open(&server.addr).await);
    }
    let opened = Instant::now();

    // /health and a real MCP client still get in, well before any header timeout frees a place.
    let waited = health_within(&server, Duration::from_secs(2)).await;
    assert!(waited < Duration::from_secs(2), "/health took {waited:?}");
    let started = Instant::now();
    let session = initialize_ok(&server, None).await;
    let (status, tools) = tools_list(&server, &session).await;
    assert_eq!(status, 200, "tools/list: {tools}");
    assert!(tools.contains("update_agent"), "tools/list: {tools}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the MCP client waited {:?} for a place",
        started.elapsed()
    );
    assert!(
        opened.elapsed() < Duration::from_secs(3),
        "all of that happened before the header timeout ({:?})",
        opened.elapsed()
    );

    // Every half-open connection is closed by the server: the oldest ones at once to make room,
    // the rest when the 3 s header timeout ends. None is held longer.
    let deadline = opened + Duration::from_secs(3 + 4);
    let mut still_open = 0;
    let mut last_close = opened;
    for stream in &mut attackers {
        match closed_by_server(stream, deadline).await {
            Some(at) => last_close = last_close.max(at),
            None => still_open += 1,
        }
    }
    assert_eq!(
        still_open, 0,
        "half-open connections still open 7 s after they were opened"
    );
    assert!(
        last_close.duration_since(opened) >= Duration::from_millis(2500),
        "the last ones are closed by the header timeout (3 s), not earlier: {:?}",
        last_close.duration_since(opened)
    );
    // The server is still fine afterwards.
    health_within(&server, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_its_headers_is_closed_after_the_header_timeout() {
    let server = start(&["--http-header-timeout", "1s"]).await;
    let mut stream = half_open(&server.addr).await;
    let opened = Instant::now();
    let closed = closed_by_server(&mut stream, opened + Duration::from_secs(5))
        .await
        .expect("the server closes a half-open connection");
    let after = closed.duration_since(opened);
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(3),
        "closed after {after:?}, expected about 1 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_without_a_session_and_allowed_or_absent_origins_work() {
    let server = start(&["--allowed-origin", "https://app.example:8443"]).await;
    for foreign in [
        "http://evil.example",
        "https://evil.example:8443",
        "https://app.example",
        "http://app.example:8443",
        "null",
    ] {
        let (status, session, body) = initialize(&server, Some(foreign)).await;
        assert_eq!(status, 403, "Origin {foreign}: {body}");
        assert_eq!(session, None, "Origin {foreign} opened a session");
    }
    // A foreign origin cannot use a session someone else opened either.
    let session = initialize_ok(&server, None).await;
    let response = server
        .post(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
            None,
        )
        .timeout(Duration::from_secs(10))
        .header("mcp-session-id", &session)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // No Origin (not a browser), a page on a loopback name, and the configured origin: allowed.
    for allowed in [
        None,
        Some("http://localhost:5173"),
        Some("http://127.0.0.1:8080"),
        Some("https://app.example:8443"),
    ] {
        initialize_ok(&server, allowed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_and_a_closed_one_makes_room() {
    let server = start(&["--http-max-sessions", "2"]).await;
    let first = initialize_ok(&server, None).await;
    let _second = initialize_ok(&server, None).await;
    let (status, session, body) = initialize(&server, None).await;
    assert_eq!(status, 503, "a third session: {body}");
    assert_eq!(session, None);
    assert!(body.contains("too many open MCP sessions (2)"), "{body}");
    // /health is not a session.
    health_within(&server, Duration::from_secs(2)).await;

    let closed = client()
        .delete(format!("http://{}/mcp", server.addr))
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    // Issue 27: 200 or 204, as the Python `mcp` client expects (rmcp's own answer is 202).
    assert!(
        matches!(closed.status().as_u16(), 200 | 204),
        "DELETE: {}",
        closed.status()
    );
    initialize_ok(&server, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_and_a_used_one_does_not() {
    let server = start(&["--http-session-idle", "1500ms", "--http-max-sessions", "2"]).await;
    let idle = initialize_ok(&server, None).await;
    let used = initialize_ok(&server, None).await;
    // Use one session every half second for 3 s; leave the other alone.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, body) = tools_list(&server, &used).await;
        assert_eq!(status, 200, "a session in use stays open: {body}");
    }
    let (status, body) = tools_list(&server, &idle).await;
    assert_eq!(
        status, 404,
        "an idle session is gone after 1.5 s (the client must initialize anew): {body}"
    );
    // Its place is free again: a new session fits under the cap of 2.
    initialize_ok(&server, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_is_not_dropped_to_make_room() {
    let server = start(&[
        "--http-max-connections",
        "16",
        "--http-header-timeout",
        "20s",
    ])
    .await;
    let session = initialize_ok(&server, None).await;
    // The session's standalone event stream (GET /mcp): a response that lasts.
    let mut events = client()
        .get(format!("http://{}/mcp", server.addr))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);

    // A flood of half-open connections, far beyond the cap of 16.
    let mut attackers = Vec::new();
    for _ in 0..100 {
        attackers.push(half_open(&server.addr).await);
    }
    health_within(&server, Duration::from_secs(2)).await;

    // The event stream is still open: nothing ends it within a second.
    let still_open = loop {
        match tokio::time::timeout(Duration::from_secs(1), events.chunk()).await {
            Err(_) => break true,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) | Ok(Err(_)) => break false,
        }
    };
    assert!(still_open, "the event stream was dropped to make room");
    // Most half-open connections made room for others and are gone long before the 20 s timeout.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut closed = 0;
    for stream in &mut attackers {
        if closed_by_server(stream, deadline).await.is_some() {
            closed += 1;
        }
    }
    assert!(
        closed >= 100 - 16,
        "only {closed} of 100 half-open connections were dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_is_not_held_up_by_half_open_connections() {
    let mut server = start(&["--http-header-timeout", "60s"]).await;
    let _attackers = [half_open(&server.addr).await, half_open(&server.addr).await];
    let pid = server.child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .expect("fleet-mcp exits within 5 s of Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// A token file in a fresh directory (the directory is kept with it).
fn token_file(token: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_accepted_in_any_case_and_a_wrong_token_is_not() {
    let (_dir, path) = token_file("s3cret-http-token");
    let server = start(&["--http-token-file", &path]).await;
    let status = |auth: &'static str| {
        let request = server
            .post(INITIALIZE, None)
            .timeout(Duration::from_secs(10))
            .header("authorization", auth);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // RFC 9110 §11.1: the scheme is case-insensitive.
    for auth in [
        "Bearer s3cret-http-token",
        "bearer s3cret-http-token",
        "BEARER s3cret-http-token",
    ] {
        assert_eq!(status(auth).await, 200, "{auth}");
    }
    for auth in [
        "bearer wrong-token",
        "Basic s3cret-http-token",
        "s3cret-http-token",
        "bearers3cret-http-token",
    ] {
        assert_eq!(status(auth).await, 401, "{auth}");
    }
    let none = server
        .post(INITIALIZE, None)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_that_would_match_nothing_is_refused_at_start() {
    for host in ["*", "", "http://evil.example", ".example"] {
        let out = fleet_mcp(&["--sim", "--http", "127.0.0.1:0", "--allowed-host", host])
            .command()
            .stdin(Stdio::null())
            .output();
        let out = tokio::time::timeout(Duration::from_secs(30), out)
            .await
            .expect("fleet-mcp refuses at once")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{host:?}: {stderr}");
        assert!(
            stderr.contains("is not a host name")
                && stderr.contains("mcp.example.com:8443")
                && !stderr.contains("serving MCP"),
            "{host:?}: {stderr}"
        );
    }
    // A host name as clients send it is accepted, and the server serves.
    let server = start(&["--allowed-host", "mcp.example.com:8443"]).await;
    initialize_ok(&server, None).await;
}

/// `tools/call NAME ARGS` in a session: the HTTP status and the body.
async fn call_tool(
    server: &McpHttp,
    session: &str,
    name: &str,
    arguments: serde_json::Value,
) -> (u16, String) {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}
    });
    let response = server
        .post(&body.to_string(), None)
        .timeout(Duration::from_secs(10))
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The operation ids (`op-` and 32 hex digits) in a body.
fn operation_ids(body: &str) -> Vec<String> {
    let mut ids: Vec<String> = body
        .match_indices("op-")
        .map(|(i, _)| &body[i + 3..])
        .filter(|rest| rest.len() >= 32 && rest[..32].bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|rest| format!("op-{}", &rest[..32]))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_cannot_list_the_first_ones_operations_but_follows_one_by_its_exact_id() {
    // Speed 1: a restart takes ~15 s, still running while the sessions look at it.
    let server = start(&["--sim-speed", "1"]).await;
    let a = initialize_ok(&server, None).await;
    let b = initialize_ok(&server, None).await;
    assert_ne!(a, b);

    let (status, body) = call_tool(
        &server,
        &a,
        "restart_agent",
        serde_json::json!({"agent_name": "dev", "wait_seconds": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ids = operation_ids(&body);
    assert_eq!(
        ids.len(),
        1,
        "one operation id, 32 hex digits (128 bits): {body}"
    );
    let id = &ids[0];

    // Its own session lists it; the other does not.
    let (_, mine) = call_tool(&server, &a, "list_operations", serde_json::json!({})).await;
    assert_eq!(operation_ids(&mine), vec![id.to_string()], "{mine}");
    let (_, theirs) = call_tool(&server, &b, "list_operations", serde_json::json!({})).await;
    assert!(operation_ids(&theirs).is_empty(), "{theirs}");
    assert!(theirs.contains(r#"\"count\":0"#), "{theirs}");

    // tasks/list does not exist in this protocol revision (rmcp 3.9 routes tasks/get, update
    // and cancel only): it shows the other session nothing either.
    let tasks = server
        .post(
            r#"{"jsonrpc":"2.0","id":4,"method":"tasks/list","params":{}}"#,
            None,
        )
        .timeout(Duration::from_secs(10))
        .header("mcp-session-id", &b)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(operation_ids(&tasks).is_empty(), "{tasks}");

    // The exact id works from any session (a host that reconnected follows what it started).
    let (_, got) = call_tool(
        &server,
        &b,
        "get_operation",
        serde_json::json!({"operation_id": id}),
    )
    .await;
    assert!(got.contains(r#"\"kind\":\"restart\""#), "{got}");
    assert!(!got.contains(r#""isError":true"#), "{got}");
    let (_, cancelled) = call_tool(
        &server,
        &b,
        "cancel_operation",
        serde_json::json!({"operation_id": id}),
    )
    .await;
    assert!(
        cancelled.contains(r#"\"state\":\"cancelling\""#)
            || cancelled.contains(r#"\"state\":\"cancelled\""#),
        "{cancelled}"
    );
    // A guessed id finds nothing.
    let (_, guessed) = call_tool(
        &server,
        &b,
        "get_operation",
        serde_json::json!({"operation_id": format!(
            "{}{}",
            &id[..id.len() - 1],
            if id.ends_with('0') { '1' } else { '0' }
        )}),
    )
    .await;
    assert!(guessed.contains(r#""isError":true"#), "{guessed}");
}
