//! Security of the HTTP layer, through the built `fleet` binary against loopback fakes:
//! no credential reaches another origin (redirects, proxies), answers are bounded in size and
//! memory, and a server that does not answer is named on stderr within seconds.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::support::cli::fleet;
use fleet::{
    CoderConfig, Error, HttpOptions, Secret,
    coder::{CoderClient, WorkspaceRef},
    http::{RetryPolicy, same_origin_redirect},
    sim::{SimOptions, Simulator},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const TOKEN: &str = "coder-token-sec-7f3a9c";
const CP_TOKEN: &str = "cp-admin-token-sec-b81e";
const SHOW_PATH: &str = "/api/v2/users/alice/workspace/dev";

/// How a fake answers one request.
#[derive(Clone)]
enum Answer {
    /// A complete answer: status, extra headers, JSON body.
    Json(u16, Vec<(String, String)>, String),
    /// `200` announcing a 2 GB body, then zeros for as long as the client reads.
    Announce2G,
    /// An endless chunked body with this status.
    EndlessChunked(u16),
    /// Nothing at all: the connection stays open, unanswered.
    Hang,
    /// Headers announcing 100 bytes, 10 of them, then nothing.
    StallBody,
}

/// Every request head (request line and headers) a fake received, in order.
type Heads = Arc<Mutex<Vec<String>>>;

/// A loopback HTTP/1.1 fake on `ip`, answering each request with `route(head)`.
async fn fake(
    ip: &str,
    route: impl Fn(&str) -> Answer + Send + Sync + 'static,
) -> (SocketAddr, Heads) {
    let listener = TcpListener::bind((ip, 0))
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("addr");
    let heads: Heads = Arc::default();
    let route = Arc::new(route);
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let route = route.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let _ = serve(stream, &*route, &seen).await;
            });
        }
    });
    (addr, heads)
}

async fn serve(
    mut stream: TcpStream,
    route: &(dyn Fn(&str) -> Answer + Send + Sync),
    seen: &Heads,
) -> std::io::Result<()> {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await? == 0 {
                return Ok(());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        seen.lock().unwrap().push(head.clone());
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        match route(&head) {
            Answer::Json(status, headers, body) => {
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&body);
                stream.write_all(out.as_bytes()).await?;
            }
            Answer::Announce2G => {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2000000000\r\n\r\n",
                    )
                    .await?;
                let zeros = vec![b' '; 64 * 1024];
                loop {
                    stream.write_all(&zeros).await?;
                }
            }
            Answer::EndlessChunked(status) => {
                stream
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await?;
                let mut chunk = b"10000\r\n".to_vec();
                chunk.extend(std::iter::repeat_n(b'A', 0x10000));
                chunk.extend(b"\r\n");
                loop {
                    stream.write_all(&chunk).await?;
                }
            }
            Answer::Hang => {
                // Hold the connection until the client goes.
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
                return Ok(());
            }
            Answer::StallBody => {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\": \"x",
                    )
                    .await?;
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
                return Ok(());
            }
        }
    }
}

/// A second loopback address, so that "another origin" is another host; where it cannot be
/// bound, 127.0.0.1 on another port (another origin all the same).
async fn other_ip() -> &'static str {
    match TcpListener::bind(("127.0.0.2", 0)).await {
        Ok(_) => "127.0.0.2",
        Err(_) => "127.0.0.1",
    }
}

/// The request line of a head (`GET /path HTTP/1.1`).
fn request_line(head: &str) -> &str {
    head.lines().next().unwrap_or_default()
}

fn path_of(head: &str) -> String {
    request_line(head)
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn coder_env(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CODER_URL", base.to_string()),
        ("CODER_SESSION_TOKEN", TOKEN.to_string()),
    ]
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    /// The child's peak resident set, from the kernel (getrusage of the waited-for child).
    peak_rss_kib: u64,
    took: Duration,
}

/// Runs `cmd` to its end under a small python3 wrapper that reports the child's peak RSS as
/// the kernel counted it (`ru_maxrss` of the reaped child).
async fn run(cmd: Command) -> Run {
    const WRAPPER: &str = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL)\n\
        sys.stderr.write('\\nPEAK_RSS_KIB=%d EXIT=%d\\n' % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode))\n";
    let mut wrapped = Command::new("python3");
    wrapped.arg("-c").arg(WRAPPER).arg(cmd.get_program());
    wrapped.args(cmd.get_args());
    wrapped.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    // python3 itself may come from PATH only.
    let began = Instant::now();
    let out = tokio::task::spawn_blocking(move || wrapped.output())
        .await
        .expect("join")
        .expect("python3 and fleet run");
    let took = began.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let (stderr, tail) = stderr
        .rsplit_once("\nPEAK_RSS_KIB=")
        .unwrap_or_else(|| panic!("the wrapper reported: {stderr}"));
    let (rss, code) = tail.trim().split_once(" EXIT=").expect("wrapper line");
    let run = Run {
        code: code.trim().parse().expect("exit code"),
        stdout,
        stderr: stderr.to_string(),
        peak_rss_kib: rss.parse().expect("rss"),
        took,
    };
    assert!(
        !run.stdout.contains(TOKEN)
            && !run.stderr.contains(TOKEN)
            && !run.stdout.contains(CP_TOKEN)
            && !run.stderr.contains(CP_TOKEN),
        "a token leaked: {}{}",
        run.stdout,
        run.stderr
    );
    run
}

// ---- 1. No credential leaves its origin ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_is_not_followed_and_says_which_variable_to_set() {
    let (other, other_heads) =
        fake(other_ip().await, |_| Answer::Json(200, vec![], "{}".into())).await;
    for status in [301u16, 302, 303, 307, 308] {
        let target = format!("http://{other}/login?state=abc123");
        let (origin, origin_heads) = fake("127.0.0.1", move |_| {
            Answer::Json(
                status,
                vec![("location".into(), target.clone())],
                "{}".into(),
            )
        })
        .await;
        let r = run(fleet(&["coder", "show", "alice/dev"])
            .vars(&coder_env(&format!("http://{origin}")))
            .command())
        .await;
        assert_eq!(r.code, 1, "{status}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("http://{other}/login"))
                && r.stderr.contains("set CODER_URL to it")
                && r.stderr.contains(&format!("HTTP {status}")),
            "{status}: the message names the target and the variable: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("abc123"),
            "{status}: the target's query is not shown: {}",
            r.stderr
        );
        assert_eq!(
            origin_heads.lock().unwrap().len(),
            1,
            "{status}: one request"
        );
    }
    assert!(
        other_heads.lock().unwrap().is_empty(),
        "the other origin received nothing: {:?}",
        other_heads.lock().unwrap()
    );

    // The Molecule CP admin API: the message names its variable.
    let target = format!("http://{other}/sso");
    let (origin, _) = fake("127.0.0.1", move |_| {
        Answer::Json(302, vec![("location".into(), target.clone())], "{}".into())
    })
    .await;
    let r = run(fleet(&["molecule", "migration-status", "ws-1"])
        .vars(&[
            ("MOLECULE_CP_URL", format!("http://{origin}")),
            ("CP_ADMIN_API_TOKEN", CP_TOKEN.to_string()),
        ])
        .command())
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("set MOLECULE_CP_URL to it"),
        "{}",
        r.stderr
    );
    assert!(other_heads.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_origin_redirect_of_a_read_is_followed_with_the_token() {
    let (origin, heads) = fake("127.0.0.1", |head| {
        if path_of(head) == SHOW_PATH {
            Answer::Json(
                307,
                vec![("location".into(), "/api/v2/moved/dev".into())],
                String::new(),
            )
        } else {
            Answer::Json(
                404,
                vec![],
                r#"{"message": "workspace moved-dev-gone not found"}"#.into(),
            )
        }
    })
    .await;
    let r = run(fleet(&["coder", "show", "alice/dev"])
        .vars(&coder_env(&format!("http://{origin}")))
        .command())
    .await;
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("moved-dev-gone"),
        "the redirect was followed: {}",
        r.stderr
    );
    let heads = heads.lock().unwrap();
    assert!(heads.len() >= 2, "{heads:?}");
    assert_eq!(path_of(&heads[1]), "/api/v2/moved/dev");
    assert!(
        heads[1]
            .to_ascii_lowercase()
            .contains(&format!("coder-session-token: {TOKEN}")),
        "the same origin gets the token: {}",
        heads[1]
    );
}

/// A front for the simulator that answers the build POST with 307 to another origin.
async fn sim_front(sim_base: String, redirect_to: String) -> SocketAddr {
    let forward = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let forward = forward.clone();
        let sim_base = sim_base.clone();
        let redirect_to = redirect_to.clone();
        async move {
            let (parts, body) = req.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            if parts.method == axum::http::Method::POST && parts.uri.path().ends_with("/builds") {
                return axum::response::Response::builder()
                    .status(307)
                    .header("location", format!("{redirect_to}{path}"))
                    .body(axum::body::Body::empty())
                    .unwrap();
            }
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let answer = forward
                .request(parts.method, format!("{sim_base}{path}"))
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .expect("the simulator answers");
            let mut out = axum::response::Response::builder().status(answer.status());
            for (k, v) in answer.headers() {
                out = out.header(k, v);
            }
            out.body(axum::body::Body::from(answer.bytes().await.unwrap()))
                .unwrap()
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_307_on_the_build_post_sends_neither_the_body_nor_the_token_elsewhere() {
    let sim = Simulator::start(SimOptions {
        speed: 1000.0,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    let (other, other_heads) =
        fake(other_ip().await, |_| Answer::Json(201, vec![], "{}".into())).await;
    let front = sim_front(sim.base_url(), format!("http://{other}")).await;
    let token = sim.tokens().coder_session_token.expose().to_string();
    let r = run(fleet(&["coder", "restart", "alice/dev"])
        .vars(&[
            ("CODER_URL", format!("http://{front}")),
            ("CODER_SESSION_TOKEN", token),
        ])
        .command())
    .await;
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("HTTP 307") && r.stderr.contains(&other.to_string()),
        "says where the POST was redirected: {}",
        r.stderr
    );
    assert!(
        other_heads.lock().unwrap().is_empty(),
        "the other origin received nothing: {:?}",
        other_heads.lock().unwrap()
    );
    assert!(
        sim.requests()
            .iter()
            .all(|r| !(r.method == "POST" && r.path.ends_with("/builds"))),
        "no build was created"
    );
}

#[test]
fn the_redirect_policy_follows_only_the_same_origin_and_never_downgrades() {
    let from = reqwest::Url::parse("https://coder.example.com/api/v2/users/me").unwrap();
    let follows = |loc: &str| same_origin_redirect(&from, loc);
    assert_eq!(
        follows("/api/v2/users/me/").unwrap().as_str(),
        "https://coder.example.com/api/v2/users/me/"
    );
    assert!(follows("https://coder.example.com:443/x").is_ok());
    for refused in [
        "http://coder.example.com/api/v2/users/me", // https → http downgrade
        "http://coder.example.com:443/x",
        "https://coder.example.com:8443/x",
        "https://idp.example.com/login",
        "//idp.example.com/login",
        "https://coder.example.com.evil.test/",
    ] {
        assert!(follows(refused).is_err(), "{refused} is refused");
    }
    let plain = reqwest::Url::parse("http://127.0.0.1:7080/api/v2/x").unwrap();
    assert!(same_origin_redirect(&plain, "https://127.0.0.1:7080/x").is_err());
    assert!(same_origin_redirect(&plain, "http://127.0.0.2:7080/x").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_from_the_environment_is_not_used_for_a_loopback_url() {
    let (proxy, proxy_heads) = fake("127.0.0.1", |_| {
        Answer::Json(502, vec![], r#"{"message": "via the proxy"}"#.into())
    })
    .await;
    let (origin, origin_heads) = fake("127.0.0.1", |_| {
        Answer::Json(404, vec![], r#"{"message": "no workspace dev"}"#.into())
    })
    .await;
    let proxy_url = format!("http://{proxy}");
    let mut env = coder_env(&format!("http://{origin}"));
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        env.push((var, proxy_url.clone()));
    }
    let r = run(fleet(&["coder", "show", "alice/dev"]).vars(&env).command()).await;
    assert!(
        r.stderr.contains("no workspace dev"),
        "the loopback server answered: {}",
        r.stderr
    );
    assert!(
        proxy_heads.lock().unwrap().is_empty(),
        "the proxy received nothing: {:?}",
        proxy_heads.lock().unwrap()
    );
    assert!(!origin_heads.lock().unwrap().is_empty());
}

// ---- 3. Bounded answers --------------------------------------------------------------------

/// The peak RSS allowed while refusing a huge answer: the 16 MiB cap plus the binary's own
/// footprint, far below the gigabytes an unbounded read reaches.
const PEAK_RSS_BOUND_KIB: u64 = 96 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_endless_answers_end_in_a_clear_error_with_bounded_memory() {
    // A baseline: the same command against a small, normal error answer.
    let (small, _) = fake("127.0.0.1", |_| {
        Answer::Json(404, vec![], r#"{"message": "no such workspace"}"#.into())
    })
    .await;
    let baseline = run(fleet(&["coder", "show", "alice/dev"])
        .vars(&coder_env(&format!("http://{small}")))
        .command())
    .await;
    assert_eq!(baseline.code, 1, "{}", baseline.stderr);

    let cases = [
        (
            "2 GB Content-Length",
            Answer::Announce2G,
            "announces 2000000000 bytes",
        ),
        (
            "endless chunked 200",
            Answer::EndlessChunked(200),
            "went on past the 16 MiB",
        ),
        (
            "endless chunked 500",
            Answer::EndlessChunked(500),
            "HTTP 500 Internal Server Error: AAAA",
        ),
    ];
    let mut measured = vec![format!(
        "baseline peak {} KiB in {:?}",
        baseline.peak_rss_kib, baseline.took
    )];
    for (name, answer, says) in cases {
        let (addr, _) = fake("127.0.0.1", move |_| answer.clone()).await;
        let r = run(fleet(&["coder", "show", "alice/dev"])
            .vars(&coder_env(&format!("http://{addr}")))
            .command())
        .await;
        measured.push(format!(
            "{name}: peak {} KiB in {:?}",
            r.peak_rss_kib, r.took
        ));
        assert_eq!(r.code, 1, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{name}: {}", r.stderr);
        assert!(
            r.stderr.len() < 2000,
            "{name}: the error is short: {} bytes",
            r.stderr.len()
        );
        assert!(
            r.peak_rss_kib < PEAK_RSS_BOUND_KIB,
            "{name}: peak RSS {} KiB",
            r.peak_rss_kib
        );
        assert!(
            r.took < Duration::from_secs(20),
            "{name}: took {:?}",
            r.took
        );
    }
    println!("{}", measured.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_hits_the_request_timeout() {
    let (addr, heads) = fake("127.0.0.1", |_| Answer::StallBody).await;
    let client = CoderClient::new(&CoderConfig {
        url: Some(format!("http://{addr}")),
        session_token: Some(Secret::new(TOKEN)),
        http: HttpOptions {
            request_timeout: Duration::from_millis(300),
            retry: RetryPolicy {
                max_retries: 1,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(10),
            },
            ..HttpOptions::default()
        },
    })
    .expect("client");
    let began = Instant::now();
    let e = client
        .show_workspace(&WorkspaceRef::parse("alice/dev").unwrap())
        .await
        .expect_err("the body never comes");
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(e.to_string().contains("did not answer in time"), "{e}");
    assert_eq!(heads.lock().unwrap().len(), 2, "tried, then retried once");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
}

// ---- 8. A server that does not answer is named ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_is_named_on_stderr_within_seconds() {
    let (addr, _) = fake("127.0.0.1", |_| Answer::Hang).await;
    let mut child = fleet(&["coder", "show", "alice/dev"])
        .vars(&coder_env(&format!("http://{addr}")))
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fleet starts");
    let began = Instant::now();
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let host = addr.to_string();
    let mut notice = None;
    while began.elapsed() < Duration::from_secs(10) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("waiting") && line.contains(&host) => {
                notice = Some((line, began.elapsed()));
                break;
            }
            _ => {}
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let (line, after) = notice.expect("a notice naming the host within 10 s");
    println!("first notice after {after:?}: {line}");
    assert!(after < Duration::from_secs(6), "{after:?}");
    assert!(
        !line.contains(TOKEN) && !line.contains("alice"),
        "names the host only, not the path: {line}"
    );
}

// ---- 9. Many reads at once share a bounded number of connections ----------------------------

/// Each HTTP/1.1 request in flight holds a connection with its buffers (~25 kB): without a
/// bound, thousands of waits on a slow server meant thousands of connections (10,000 waits
/// measured 335 MB). A client keeps at most `max_in_flight` requests in flight; the others
/// wait their turn, and every read still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_reads_at_once_share_a_bounded_number_of_connections() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    #[derive(Default)]
    struct Counts {
        open: AtomicUsize,
        most_open: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        answered: AtomicUsize,
    }
    fn raise(now: &AtomicUsize, most: &AtomicUsize) {
        most.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
    }

    // A slow control plane: every status read takes 40 ms and answers "never migrated".
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counts = Arc::new(Counts::default());
    let server_counts = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counts = server_counts.clone();
            raise(&counts.open, &counts.most_open);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while let Ok(1) = stream.read(&mut byte).await {
                    head.push(byte[0]);
                    if !head.ends_with(b"\r\n\r\n") {
                        continue;
                    }
                    head.clear();
                    raise(&counts.in_flight, &counts.most_in_flight);
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    let body = r#"{"error": "workspace was never migrated"}"#;
                    let answer = format!(
                        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    counts.in_flight.fetch_sub(1, SeqCst);
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                    counts.answered.fetch_add(1, SeqCst);
                }
                counts.open.fetch_sub(1, SeqCst);
            });
        }
    });

    let client = fleet::molecule::MoleculeClient::new(&fleet::MoleculeConfig {
        cp_url: format!("http://{addr}"),
        cp_admin_prefix: Some("/cp/admin".into()),
        cp_admin_token: Some(Secret::new(CP_TOKEN)),
        api_url: None,
        org_api_key: None,
        http: HttpOptions {
            max_in_flight: 4,
            ..HttpOptions::default()
        },
    })
    .expect("client");
    let reads = (1..=40).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.migration_status(&format!("ws-{i}")).await })
    });
    for read in futures::future::join_all(reads).await {
        let report = read.expect("task").expect("every read gets its answer");
        assert!(!report.migrated);
    }
    let (most_in_flight, most_open) = (
        counts.most_in_flight.load(SeqCst),
        counts.most_open.load(SeqCst),
    );
    println!("most in flight {most_in_flight}, most connections open {most_open}");
    assert_eq!(counts.answered.load(SeqCst), 40);
    assert!(most_in_flight <= 4, "{most_in_flight} requests in flight");
    // In flight plus at most as many idle ones kept for reuse.
    assert!(most_open <= 8, "{most_open} connections open at once");
}
