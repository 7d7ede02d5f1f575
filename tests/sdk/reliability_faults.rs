//! Server faults through the SDK: error statuses with and without bodies, non-JSON and
//! truncated bodies, a slow server, connection refused, connections reset in the middle of a
//! wait, 429 with Retry-After, unknown enum values and extra fields. Each gives a clear error
//! or is tolerated as designed; GETs are retried with bounded backoff (attempts counted);
//! every POST is sent exactly once (counted).

use crate::support::coder;
use crate::support::handle::{CoderViaHandle, MoleculeViaHandle};

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fleet::{
    Error, HttpOptions, MoleculeConfig, ReadBack, Secret,
    molecule::{MigrateRequest, MoleculeClient, Provider, WaitOptions},
};
use httpmock::{
    Method::{GET, POST},
    MockServer,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "fault-test-cp-token-5521";
const STATUS_PATH: &str = "/cp/admin/workspaces/ws-1/";
const MIGRATE_PATH: &str = "/cp/admin/workspaces/ws-1/migrate-provider";

fn http(request_timeout: Duration) -> HttpOptions {
    let mut http = HttpOptions {
        request_timeout,
        connect_timeout: Duration::from_secs(2),
        ..HttpOptions::default()
    };
    http.retry.max_retries = 3;
    http.retry.initial_backoff = Duration::from_millis(10);
    http.retry.max_backoff = Duration::from_millis(40);
    http
}

/// A client with the CP-admin prefix configured: the faults here are about answers, retries
/// and POSTs sent once, so a pre-flight read that fails does not block the POST (without a
/// configured prefix it would: the read is what confirms the route layout; see
/// tests/molecule_layouts.rs).
fn molecule(base: &str, http: HttpOptions) -> MoleculeClient {
    MoleculeClient::new(&MoleculeConfig {
        cp_url: base.to_string(),
        cp_admin_prefix: Some("/cp/admin".into()),
        cp_admin_token: Some(Secret::new(TOKEN)),
        api_url: None,
        org_api_key: None,
        http,
    })
    .expect("client")
}

fn request() -> MigrateRequest {
    MigrateRequest {
        from: Some(Provider::from("aws")),
        confirm: true,
        ..MigrateRequest::new("ws-1", Provider::from("hetzner"))
    }
}

fn fast_wait(timeout: Duration) -> WaitOptions {
    WaitOptions {
        timeout,
        poll: fleet::poll::PollOptions::backoff(
            Duration::from_millis(5),
            Duration::from_millis(20),
            2.0,
        ),
        not_found_grace: Duration::ZERO,
    }
}

fn status_body(state: &str, terminal: bool) -> serde_json::Value {
    json!({"migration": {"state": state, "from_provider": "aws", "to_provider": "hetzner", "detail": "d"}, "terminal": terminal})
}

/// What one faulty answer looks like, for a GET and a POST.
struct Fault {
    name: &'static str,
    status: u16,
    body: Option<&'static str>,
    header: Option<(&'static str, &'static str)>,
    /// The error message must contain this.
    says: &'static str,
    /// GET is retried (status 429/502/503/504).
    retried: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_answer_is_clear_gets_retry_boundedly_posts_go_once() {
    let faults = [
        Fault {
            name: "500 with a JSON body",
            status: 500,
            body: Some(r#"{"error":"migrator crashed","detail":"disk full"}"#),
            header: Some(("content-type", "application/json")),
            says: "migrator crashed",
            retried: false,
        },
        Fault {
            name: "500 without a body",
            status: 500,
            body: None,
            header: None,
            says: "500",
            retried: false,
        },
        Fault {
            name: "500 with an HTML body",
            status: 500,
            body: Some("<html><body>Internal Server Error from nginx</body></html>"),
            header: Some(("content-type", "text/html")),
            says: "nginx",
            retried: false,
        },
        Fault {
            name: "500 with JSON that is not an object",
            status: 500,
            body: Some(r#"["oops"]"#),
            header: Some(("content-type", "application/json")),
            says: "oops",
            retried: false,
        },
        Fault {
            name: "502 from a proxy",
            status: 502,
            body: Some("Bad Gateway"),
            header: None,
            says: "Bad Gateway",
            retried: true,
        },
        Fault {
            name: "503 not configured",
            status: 503,
            body: Some(r#"{"error":"migrator not configured"}"#),
            header: Some(("content-type", "application/json")),
            says: "migrator not configured",
            retried: true,
        },
        Fault {
            name: "504 gateway timeout, empty",
            status: 504,
            body: None,
            header: None,
            says: "504",
            retried: true,
        },
        Fault {
            name: "429 with Retry-After 0",
            status: 429,
            body: Some("slow down"),
            header: Some(("retry-after", "0")),
            says: "slow down",
            retried: true,
        },
        Fault {
            name: "400 with a truncated JSON body",
            status: 400,
            body: Some(r#"{"error":"bad fr"#),
            header: Some(("content-type", "application/json")),
            says: "bad fr",
            retried: false,
        },
        Fault {
            name: "418 unknown status",
            status: 418,
            body: Some("teapot"),
            header: None,
            says: "418",
            retried: false,
        },
    ];
    let mut requests = 0usize;
    for f in &faults {
        let server = MockServer::start_async().await;
        let get = server
            .mock_async(|when, then| {
                when.method(GET).path_includes(STATUS_PATH);
                let mut then = then.status(f.status);
                if let Some((k, v)) = f.header {
                    then = then.header(k, v);
                }
                if let Some(b) = f.body {
                    then.body(b);
                }
            })
            .await;
        let post = server
            .mock_async(|when, then| {
                when.method(POST).path(MIGRATE_PATH);
                let mut then = then.status(f.status);
                if let Some((k, v)) = f.header {
                    then = then.header(k, v);
                }
                if let Some(b) = f.body {
                    then.body(b);
                }
            })
            .await;
        let client = molecule(&server.base_url(), http(Duration::from_secs(5)));

        let began = Instant::now();
        let e = client.migration_status("ws-1").await.expect_err(f.name);
        let took = began.elapsed();
        let text = e.to_string();
        assert!(
            text.contains(f.says),
            "{}: GET error says {:?}: {text}",
            f.name,
            f.says
        );
        assert!(!text.contains(TOKEN));
        assert!(text.len() < 600, "{}: one readable message: {text}", f.name);
        let attempts = get.calls_async().await;
        assert_eq!(
            attempts,
            if f.retried { 4 } else { 1 },
            "{}: GET attempts",
            f.name
        );
        assert!(
            took < Duration::from_secs(2),
            "{}: bounded backoff: {took:?}",
            f.name
        );
        assert_eq!(e.status(), Some(f.status), "{}: {e:?}", f.name);

        let e = client.migrate_provider(&request()).await.expect_err(f.name);
        assert!(
            e.to_string().contains(f.says),
            "{}: POST error: {e}",
            f.name
        );
        assert_eq!(
            post.calls_async().await,
            1,
            "{}: a POST is sent exactly once",
            f.name
        );
        requests += attempts + 1;
    }
    eprintln!(
        "error answers: {} faults, {requests} requests counted",
        faults.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_that_fails_twice_then_answers_succeeds_after_three_attempts() {
    let server = MockServer::start_async().await;
    let flaky = server
        .mock_async(|when, then| {
            when.method(GET).path_includes(STATUS_PATH);
            then.status(503).body("warming up");
        })
        .await;
    // httpmock matches the earliest mock first; once `flaky` has answered twice it is
    // deleted and the good answer takes over.
    let client = molecule(&server.base_url(), http(Duration::from_secs(5)));
    let c = client.clone();
    let poller = tokio::spawn(async move { c.migration_status("ws-1").await });
    while flaky.calls_async().await < 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    flaky.delete_async().await;
    let good = server
        .mock_async(|when, then| {
            when.method(GET).path_includes(STATUS_PATH);
            then.status(200).json_body(status_body("completed", true));
        })
        .await;
    let report = poller.await.unwrap().expect("the third attempt succeeds");
    assert!(report.terminal);
    assert_eq!(good.calls_async().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_cannot_be_read_on_a_200_are_clear_errors() {
    for (name, body, says) in [
        (
            "truncated JSON",
            r#"{"migration": {"state": "snapshot"#,
            "could not be read",
        ),
        ("not JSON", "<html>maintenance</html>", "maintenance"),
        ("empty", "", "could not be read"),
        (
            "wrong shape",
            r#"{"migration": 42, "terminal": "yes"}"#,
            "could not be read",
        ),
    ] {
        let server = MockServer::start_async().await;
        let get = server
            .mock_async(|when, then| {
                when.method(GET).path_includes(STATUS_PATH);
                then.status(200)
                    .header("content-type", "application/json")
                    .body(body);
            })
            .await;
        let post = server
            .mock_async(|when, then| {
                when.method(POST).path(MIGRATE_PATH);
                then.status(202)
                    .header("content-type", "application/json")
                    .body(body);
            })
            .await;
        let client = molecule(&server.base_url(), http(Duration::from_secs(5)));
        let e = client.migration_status("ws-1").await.expect_err(name);
        assert!(e.to_string().contains(says), "{name}: {e}");
        assert_eq!(
            get.calls_async().await,
            1,
            "{name}: a bad 200 is not retried"
        );
        let e = client.migrate_provider(&request()).await.expect_err(name);
        assert!(
            e.to_string().contains("could not be read") || e.to_string().contains(says),
            "{name}: {e}"
        );
        assert_eq!(post.calls_async().await, 1, "{name}: the POST went once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_slower_than_the_request_timeout() {
    let server = MockServer::start_async().await;
    let get = server
        .mock_async(|when, then| {
            when.method(GET).path_includes(STATUS_PATH);
            then.status(200)
                .delay(Duration::from_millis(1500))
                .json_body(status_body("snapshotting", false));
        })
        .await;
    let post = server
        .mock_async(|when, then| {
            when.method(POST).path(MIGRATE_PATH);
            then.status(202).delay(Duration::from_millis(1500)).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"}));
        })
        .await;
    let client = molecule(&server.base_url(), http(Duration::from_millis(150)));
    let began = Instant::now();
    let e = client
        .migration_status("ws-1")
        .await
        .expect_err("times out");
    let took = began.elapsed();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(e.to_string().contains("did not answer in time"), "{e}");
    // A timed-out read is retried once only (fleet::http::MAX_TIMEOUT_RETRIES), not as often
    // as a refused connection: a server that let a whole timeout pass rarely answers the next.
    assert_eq!(get.calls_async().await, 2, "a slow GET is retried once");
    // 2 × 150 ms plus backoff, well under the server's 1.5 s delay.
    assert!(took < Duration::from_millis(1500), "bounded: {took:?}");

    let e = client
        .migrate_provider(&request())
        .await
        .expect_err("times out");
    // A POST that timed out may have started the migration: it is read back, not resent.
    assert!(
        matches!(
            e,
            Error::Unconfirmed {
                found: ReadBack::Unknown,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("did not answer in time"), "{e}");
    assert_eq!(post.calls_async().await, 1, "a slow POST is never resent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_clear_transport_error_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = molecule(
        &format!("http://127.0.0.1:{port}"),
        http(Duration::from_secs(5)),
    );
    let began = Instant::now();
    let e = client.migration_status("ws-1").await.expect_err("refused");
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let e = client
        .migrate_provider(&request())
        .await
        .expect_err("refused");
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    // A wait on a dead server ends at its deadline with the reason, not a hang.
    let began = Instant::now();
    let e = client
        .wait_for_migration_via_handle(
            "ws-1",
            &fast_wait(Duration::from_millis(500)),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("times out");
    assert!(matches!(e.root(), Error::Timeout { .. }), "{e:?}");
    assert!(
        e.to_string().contains("cannot connect"),
        "the last problem is said: {e}"
    );
    assert!(began.elapsed() < Duration::from_secs(3));
}

/// How a raw server treats connection number n (0-based).
#[derive(Clone, Copy, Debug)]
enum Conn {
    Answer(&'static str, bool),
    /// Accept, then close without a word (a reset as the client sees it).
    Drop,
    /// Read the request, send half the headers, close.
    HalfHeaders,
    /// Send the headers and half the body, close.
    HalfBody,
}

/// A raw HTTP server following `script` (the last entry repeats). Counts connections.
async fn raw_server(script: Vec<Conn>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = c.fetch_add(1, Ordering::SeqCst);
            let what = script[n.min(script.len() - 1)];
            tokio::spawn(async move {
                if let Conn::Drop = what {
                    drop(sock);
                    return;
                }
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                let reply = match what {
                    Conn::Answer(state, terminal) => {
                        let body = status_body(state, terminal).to_string();
                        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                    }
                    Conn::HalfHeaders => "HTTP/1.1 200 OK\r\ncontent-ty".to_string(),
                    Conn::HalfBody => {
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\nconnection: close\r\n\r\n{\"migration\": {\"st".to_string()
                    }
                    Conn::Drop => unreachable!(),
                };
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.flush().await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_in_the_middle_of_a_wait_are_survived() {
    use Conn::*;
    let script = vec![
        Answer("snapshotting", false),
        Drop,
        Drop,
        Answer("provisioning_target", false),
        HalfHeaders,
        HalfBody,
        Drop,
        Answer("target_healthy", false),
        Drop,
        Answer("completed", true),
    ];
    let connections = script.len();
    let (base, count) = raw_server(script).await;
    let client = molecule(&base, http(Duration::from_secs(2)));
    let mut seen = Vec::new();
    let report = client
        .wait_for_migration_via_handle(
            "ws-1",
            &fast_wait(Duration::from_secs(10)),
            &CancellationToken::new(),
            |e| seen.push(e.state.to_string()),
        )
        .await
        .expect("the wait survives resets and ends completed");
    assert!(report.terminal);
    assert_eq!(
        seen,
        [
            "snapshotting",
            "provisioning_target",
            "target_healthy",
            "completed"
        ]
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        connections,
        "every scripted connection was used, no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_mid_wait_ends_the_wait_at_its_deadline_with_the_last_state() {
    let (base, count) = raw_server(vec![Conn::Answer("retiring_source", false), Conn::Drop]).await;
    let client = molecule(&base, http(Duration::from_secs(2)));
    let began = Instant::now();
    let e = client
        .wait_for_migration_via_handle(
            "ws-1",
            &fast_wait(Duration::from_millis(600)),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("times out");
    let Error::Timeout { last_state, .. } = e.root() else {
        panic!("{e:?}")
    };
    assert_eq!(last_state.as_deref(), Some("retiring_source"), "{e}");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert!(count.load(Ordering::SeqCst) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_connection_resets_is_not_resent() {
    for fault in [Conn::Drop, Conn::HalfHeaders, Conn::HalfBody] {
        // The pre-flight status read finds the last migration ended; then the POST meets the
        // fault; reading the migration back finds the same ended one: nothing was started.
        let (base, count) = raw_server(vec![
            Conn::Answer("completed", true),
            fault,
            Conn::Answer("completed", true),
        ])
        .await;
        let client = molecule(&base, http(Duration::from_secs(2)));
        let e = client
            .migrate_provider(&request())
            .await
            .expect_err("reset");
        assert!(
            matches!(
                e,
                Error::Unconfirmed {
                    found: ReadBack::NothingStarted,
                    ..
                }
            ),
            "{fault:?}: {e:?}"
        );
        assert!(e.to_string().contains("nothing was started"), "{e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "{fault:?}: one read, one connection for the POST, one read back; no resend"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_within_bounds() {
    let server = MockServer::start_async().await;
    let limited = server
        .mock_async(|when, then| {
            when.method(GET).path_includes(STATUS_PATH);
            then.status(429)
                .header("retry-after", "1")
                .body("rate limited");
        })
        .await;
    let mut h = http(Duration::from_secs(5));
    h.retry.max_retries = 1;
    h.retry.max_backoff = Duration::from_secs(5);
    let client = molecule(&server.base_url(), h);
    let began = Instant::now();
    let e = client
        .migration_status("ws-1")
        .await
        .expect_err("still limited");
    let took = began.elapsed();
    assert_eq!(limited.calls_async().await, 2);
    assert!(
        took >= Duration::from_millis(950),
        "Retry-After: 1 waited a second: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "and not much more: {took:?}"
    );
    assert_eq!(e.status(), Some(429));

    // A Retry-After longer than the policy allows is capped at max_backoff.
    let server = MockServer::start_async().await;
    let limited = server
        .mock_async(|when, then| {
            when.method(GET).path_includes(STATUS_PATH);
            then.status(429)
                .header("retry-after", "3600")
                .body("come back in an hour");
        })
        .await;
    let client = molecule(&server.base_url(), http(Duration::from_secs(5)));
    let began = Instant::now();
    client.migration_status("ws-1").await.expect_err("limited");
    assert_eq!(limited.calls_async().await, 4);
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "capped: {:?}",
        began.elapsed()
    );

    // A POST answered 429 is not retried, whatever Retry-After says.
    let post = server
        .mock_async(|when, then| {
            when.method(POST).path(MIGRATE_PATH);
            then.status(429)
                .header("retry-after", "0")
                .body("rate limited");
        })
        .await;
    let e = client
        .migrate_provider(&request())
        .await
        .expect_err("limited");
    assert_eq!(e.status(), Some(429), "{e:?}");
    assert_eq!(post.calls_async().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_states_and_extra_fields_are_kept_not_failures() {
    let server = MockServer::start_async().await;
    let in_progress = server
        .mock_async(|when, then| {
            when.method(GET).path_includes(STATUS_PATH);
            then.status(200).json_body(json!({
                "migration": {"state": "defragmenting", "from_provider": "aws", "to_provider": "azure",
                              "detail": "new", "eta_seconds": 42, "nested": {"a": [1, 2]}},
                "terminal": false, "server_version": "9.9"
            }));
        })
        .await;
    let post = server
        .mock_async(|when, then| {
            when.method(POST).path(MIGRATE_PATH);
            then.status(202).json_body(json!({"status": "migration_queued", "workspace_id": "ws-1", "from": "aws", "to": "hetzner", "queue_position": 3}));
        })
        .await;
    let client = molecule(&server.base_url(), http(Duration::from_secs(5)));
    let report = client
        .migration_status("ws-1")
        .await
        .expect("unknown values are tolerated");
    let m = report.migration.as_ref().expect("migration");
    assert!(m.state.is_unknown());
    assert_eq!(m.state.to_string(), "defragmenting");
    assert_eq!(
        m.to_provider.as_ref().map(|p| p.to_string()).as_deref(),
        Some("azure")
    );
    assert_eq!(m.extra["eta_seconds"], json!(42));
    assert!(!report.terminal);
    // A migration in progress (even in a state fleet does not know) is refused up front;
    // once it has ended, a new one starts and the 202's extra fields are tolerated.
    let e = client
        .migrate_provider(&request())
        .await
        .expect_err("refused while one runs");
    assert!(
        matches!(e.root(), Error::Refused(_)) && e.to_string().contains("defragmenting"),
        "{e}"
    );
    assert_eq!(post.calls_async().await, 0);
    in_progress.delete_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path_includes(STATUS_PATH);
            then.status(200).json_body(json!({
                "migration": {"state": "defragmented", "from_provider": "aws", "to_provider": "azure"},
                "terminal": true, "server_version": "9.9"
            }));
        })
        .await;
    let started = client
        .migrate_provider(&request())
        .await
        .expect("extra fields are tolerated");
    assert_eq!(started.status, "migration_queued");
    assert_eq!(post.calls_async().await, 1);

    // Coder: unknown statuses, transitions and job states, extra fields.
    use coder::*;
    let cserver = MockServer::start_async().await;
    let mut ws = running_on(V1);
    ws["latest_build"]["status"] = json!("hibernating");
    ws["latest_build"]["transition"] = json!("archive");
    ws["latest_build"]["job"]["status"] = json!("paused");
    ws["latest_build"]["brand_new"] = json!({"x": 1});
    ws["automatic_updates"] = json!("always");
    let list_ws = ws.clone();
    cserver
        .mock_async(move |when, then| {
            when.method(GET).path(format!("/api/v2/workspaces/{WS}"));
            then.status(200).json_body(ws);
        })
        .await;
    cserver
        .mock_async(move |when, then| {
            when.method(GET).path("/api/v2/workspaces");
            then.status(200)
                .json_body(json!({"workspaces": [list_ws], "count": 1, "cursor": "abc"}));
        })
        .await;
    let c = coder::client(&cserver.base_url());
    let r = fleet::coder::WorkspaceRef::parse(WS).unwrap();
    let info = c
        .show_workspace(&r)
        .await
        .expect("unknown values are tolerated");
    let b = info.latest_build.as_ref().expect("build");
    assert_eq!(
        b.status.as_ref().map(|s| s.to_string()).as_deref(),
        Some("hibernating")
    );
    assert_eq!(
        b.job_status.as_ref().map(|s| s.to_string()).as_deref(),
        Some("paused")
    );
    let list = c
        .list_workspaces(false)
        .await
        .expect("list tolerates them too");
    assert_eq!(list.workspaces.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coder_build_posts_go_once_whatever_the_fault() {
    use coder::*;
    for (status, body) in [
        (500, "boom"),
        (502, "bad gateway"),
        (503, "unavailable"),
        (429, "slow down"),
    ] {
        let server = MockServer::start_async().await;
        let s = &server;
        let get = |path: String, body: serde_json::Value| async move {
            s.mock_async(move |when, then| {
                when.method(GET).path(path);
                then.status(200).json_body(body);
            })
            .await
        };
        get(format!("/api/v2/workspaces/{WS}"), running_on(V1)).await;
        get(format!("/api/v2/templates/{TEMPLATE}"), template()).await;
        get(format!("/api/v2/templateversions/{V2}"), json!({"id": V2, "name": "v2", "template_id": TEMPLATE, "job": {"status": "succeeded"}})).await;
        get(
            format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
            params(),
        )
        .await;
        get(
            format!("/api/v2/templateversions/{V2}/rich-parameters"),
            json!([]),
        )
        .await;
        let posts = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path(format!("/api/v2/workspaces/{WS}/builds"));
                then.status(status).header("retry-after", "0").body(body);
            })
            .await;
        let c = coder::client(&server.base_url());
        let r = fleet::coder::WorkspaceRef::parse(WS).unwrap();
        let e = c
            .update_via_handle(&r, None, &fast_options(), &CancellationToken::new(), |_| {})
            .await
            .expect_err("the stop is refused");
        assert!(e.to_string().contains(body), "{status}: {e}");
        assert_eq!(
            posts.calls_async().await,
            1,
            "{status}: the stop build POST went once; no start"
        );
    }
}
