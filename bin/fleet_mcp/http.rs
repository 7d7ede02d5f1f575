//! `fleet-mcp --http ADDR`: the streamable HTTP transport, with a bearer token and `/health`.
//!
//! Hardened against a client without a token exhausting the server: headers must arrive within
//! a deadline, connections and MCP sessions are capped, idle sessions expire, and the `Host` and
//! `Origin` headers are checked (DNS rebinding, cross-origin browser requests).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{Request, State},
    http::{Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::Stream;
use hyper_util::rt::{TokioIo, TokioTimer};
use rmcp::{
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
    transport::{
        common::server_side_http::ServerSseMessage,
        streamable_http_server::{
            SessionId, StreamableHttpServerConfig, StreamableHttpService,
            session::{
                SessionManager,
                local::{LocalSessionManager, LocalSessionManagerError},
            },
        },
    },
};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::{redact::RedactingSessions, server::FleetServer};

/// Limits of the HTTP transport (flags of `fleet-mcp`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open TCP connections at most; beyond, the oldest connection that is not sending a
    /// response is dropped to make room, else the new one waits.
    pub max_connections: usize,
    /// Open MCP sessions at most; an `initialize` beyond answers 503.
    pub max_sessions: usize,
    /// A client must finish sending a request's headers within this time (also the idle time
    /// of a kept-alive connection).
    pub header_timeout: Duration,
    /// An MCP session without any request for this long is closed.
    pub session_idle: Duration,
}

/// Who may call, and from where.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The bearer token every request but `/health` must carry, if set.
    pub token: Option<String>,
    /// Host names (or `host:port`) clients reach the server by, besides loopback names.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed besides those whose host is an allowed host.
    pub allowed_origins: Vec<String>,
}

/// Serves MCP at `http://ADDR/mcp` until `shutdown` fires. Every request but `GET /health`
/// needs `Authorization: Bearer <token>` when a token is set.
pub async fn serve(
    server: FleetServer,
    addr: SocketAddr,
    access: Access,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    config.cancellation_token = shutdown.child_token();
    if !addr.ip().is_loopback() {
        // DNS-rebinding protection matters for loopback; elsewhere the bearer token guards,
        // and the operator may name the hosts it is reached by.
        config.allowed_hosts = access.allowed_hosts;
    } else {
        config.allowed_hosts.extend(access.allowed_hosts);
    }
    // The MCP transport requires Origin to be checked: a request without one (not from a
    // browser) passes; one from a browser passes only from a page served by an allowed host.
    config.allowed_origins = origins_of_hosts(&config.allowed_hosts);
    config.allowed_origins.extend(access.allowed_origins);
    let config = config.enforce_origin_validation();

    let sessions = Arc::new(CappedSessions::new(
        limits.max_sessions,
        limits.session_idle,
    ));
    let mcp = StreamableHttpService::new(
        // Each session its own server clone: it owns the operations it starts.
        move || Ok(server.for_new_session()),
        // Every session's outgoing messages are redacted (see redact.rs).
        Arc::new(RedactingSessions(sessions.clone())),
        config,
    );
    let token = Arc::new(access.token);
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn(session_closed))
        .layer(middleware::from_fn_with_state(sessions, sessions_full))
        .layer(middleware::from_fn_with_state(token, require_bearer))
        .route("/health", get(health));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    eprintln!("fleet-mcp: serving MCP at http://{local}/mcp (health: http://{local}/health)");
    serve_connections(listener, app, &limits, shutdown).await;
    Ok(())
}

/// `http://HOST:*` and `https://HOST:*` for every allowed host (its port only, if it names one).
fn origins_of_hosts(hosts: &[String]) -> Vec<String> {
    let mut origins = Vec::new();
    for host in hosts {
        let host = host.trim();
        // A bare IPv6 address needs brackets in an origin.
        let host = if host.contains(':')
            && !host.starts_with('[')
            && host.parse::<std::net::Ipv6Addr>().is_ok()
        {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let has_port = host
            .parse::<axum::http::uri::Authority>()
            .is_ok_and(|a| a.port_u16().is_some());
        for scheme in ["http", "https"] {
            origins.push(if has_port {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}:*")
            });
        }
    }
    origins
}

/// The accept loop: each connection is served by hyper with a header-read deadline; at most
/// `max_connections` are open. At the cap, the oldest connection that is not sending a response
/// (one that never finished a request, or sits idle) is dropped for the newcomer, so a flood of
/// silent connections cannot lock out `/health` or real clients; if every connection is
/// answering, the newcomer waits for one to close.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Slots::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let http = Arc::new(http);
    loop {
        let permit = tokio::select! {
            permit = slots.acquire() => permit,
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let slot = slots.admit(permit);
        tokio::spawn(serve_connection(
            stream,
            app.clone(),
            http.clone(),
            slot,
            shutdown.clone(),
        ));
    }
    // Let open connections finish (each gets a second), then exit.
    let _ = tokio::time::timeout(Duration::from_secs(2), slots.all_closed()).await;
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    slot: Slot,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let answering = slot.answering.clone();
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let app = app.clone();
        let answering = answering.clone();
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await?;
            // From the response's head to its last byte, the connection is doing real work.
            let guard = Answering::start(answering);
            Ok::<_, std::convert::Infallible>(response.map(|inner| TrackedBody {
                inner,
                _answering: guard,
            }))
        }
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = slot.evicted.cancelled() => {}
        () = shutdown.cancelled() => {
            // Finish the response under way (sessions end with the same token), briefly: a
            // half-open connection must not hold up the exit.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
    drop(slot);
}

/// Counts a response in progress on its connection for as long as it lives.
struct Answering(Arc<AtomicUsize>);

impl Answering {
    fn start(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Answering(count)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its connection marked as answering until it is sent or dropped.
struct TrackedBody {
    inner: axum::body::Body,
    _answering: Answering,
}

impl hyper::body::Body for TrackedBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The open connections, so that an idle one can make room for a newcomer.
struct Slots {
    max: usize,
    permits: Arc<tokio::sync::Semaphore>,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, (Arc<AtomicUsize>, CancellationToken)>>,
}

/// One open connection; closing it (drop) frees its place.
struct Slot {
    id: u64,
    answering: Arc<AtomicUsize>,
    evicted: CancellationToken,
    slots: Arc<Slots>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.open().remove(&self.id);
    }
}

impl Slots {
    fn new(max: usize) -> Self {
        Slots {
            max,
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, (Arc<AtomicUsize>, CancellationToken)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for the next connection: a free one, else one taken from the oldest connection
    /// not answering anything, else the first one freed.
    async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return permit;
            }
            self.evict_oldest_idle();
            // Connections keep changing between answering and idle: look again now and then.
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => {
                    return permit.expect("the semaphore is never closed");
                }
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Drops the oldest idle connection, unless one is being dropped already.
    fn evict_oldest_idle(&self) {
        let open = self.open();
        if open.values().any(|(_, evict)| evict.is_cancelled()) {
            return;
        }
        let oldest_idle = open
            .iter()
            .filter(|(_, (answering, _))| answering.load(Ordering::Relaxed) == 0)
            .min_by_key(|(id, _)| **id);
        if let Some((_, (_, evict))) = oldest_idle {
            evict.cancel();
        }
    }

    fn admit(self: &Arc<Self>, permit: tokio::sync::OwnedSemaphorePermit) -> Slot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let answering = Arc::new(AtomicUsize::new(0));
        let evicted = CancellationToken::new();
        self.open().insert(id, (answering.clone(), evicted.clone()));
        Slot {
            id,
            answering,
            evicted,
            slots: self.clone(),
            _permit: permit,
        }
    }

    async fn all_closed(&self) {
        let _ = self.permits.acquire_many(self.max as u32).await;
    }
}

/// rmcp's in-memory sessions (closed after `idle` without a request), at most `max` at a time.
struct CappedSessions {
    inner: LocalSessionManager,
    max: usize,
    creating: tokio::sync::Mutex<()>,
    refused: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
enum SessionLimitError {
    #[error(
        "too many open MCP sessions ({0}); close one (HTTP DELETE) or wait for idle ones to expire"
    )]
    Full(usize),
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

impl CappedSessions {
    fn new(max: usize, idle: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        CappedSessions {
            inner,
            max,
            creating: tokio::sync::Mutex::new(()),
            refused: AtomicU64::new(0),
        }
    }
}

impl SessionManager for CappedSessions {
    type Error = SessionLimitError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        if self.inner.sessions.read().await.len() >= self.max {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(SessionLimitError::Full(self.max));
        }
        Ok(self.inner.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }
}

/// rmcp answers a refused session with a 500; say what it is: 503, try again later.
async fn sessions_full(
    State(sessions): State<Arc<CappedSessions>>,
    request: Request,
    next: Next,
) -> Response {
    let may_create =
        request.method() == Method::POST && !request.headers().contains_key("mcp-session-id");
    let refused_before = sessions.refused.load(Ordering::Relaxed);
    let response = next.run(request).await;
    if may_create
        && response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && sessions.refused.load(Ordering::Relaxed) > refused_before
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "30")],
            format!("{}\n", SessionLimitError::Full(sessions.max)),
        )
            .into_response();
    }
    response
}

/// rmcp answers a session's `DELETE` with 202; the session is closed by then, and clients
/// (the Python `mcp` package) expect 200 or 204 and log a failure otherwise: answer 204.
async fn session_closed(request: Request, next: Next) -> Response {
    let delete = request.method() == Method::DELETE;
    let response = next.run(request).await;
    if delete && response.status() == StatusCode::ACCEPTED {
        return StatusCode::NO_CONTENT.into_response();
    }
    response
}

async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"status\":\"ok\",\"name\":\"fleet-mcp\",\"version\":\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        ),
    )
}

async fn require_bearer(
    State(token): State<Arc<Option<String>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = token.as_ref() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The token of an `Authorization` value in the Bearer scheme. The scheme's name is
/// case-insensitive (RFC 9110 §11.1: `bearer`, `BEARER` are `Bearer`), and one or more spaces
/// separate it from the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Checks a host given with `--allowed-host`: what a client puts in the `Host` header, a DNS
/// name or an IP address, with a port or without (`mcp.example.com`, `mcp.example.com:8443`,
/// `10.0.0.5`, `[::1]:8931`). A scheme, a path, a wildcard, an empty name or a leading dot
/// would match no Host header at all, so they are refused at start.
pub fn parse_allowed_host(s: &str) -> Result<String, String> {
    const LOOKS_LIKE: &str = "give the host name clients reach the server by, as in their Host \
         header: a DNS name or an IP address, with an optional port (mcp.example.com, \
         mcp.example.com:8443, 10.0.0.5, [::1]:8931); no scheme, path, wildcard or leading dot";
    let host = s.trim();
    let refuse = |why: &str| Err(format!("{s:?} is not a host name: {why}; {LOOKS_LIKE}"));
    if host.is_empty() {
        return refuse("it is empty");
    }
    if host.contains("://") || host.contains('/') {
        return refuse("it has a scheme or a path");
    }
    if host.contains('*') {
        return refuse("wildcards are not supported");
    }
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(host.to_string());
    }
    // `[v6]` or `[v6]:port`
    if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return refuse("an IPv6 address in brackets lacks its ']'");
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return refuse("the part in brackets is not an IPv6 address");
        }
        return match after {
            "" => Ok(host.to_string()),
            p if p.strip_prefix(':').is_some_and(valid_port) => Ok(host.to_string()),
            _ => refuse("what follows the brackets is not :PORT"),
        };
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if valid_port(port) => name,
        Some(_) => return refuse("what follows ':' is not a port (1-65535)"),
        None => host,
    };
    if name.starts_with('.') {
        return refuse("it starts with a dot");
    }
    let labels_ok = name.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !labels_ok || name.len() > 253 {
        return refuse("it is not a DNS name (labels of letters, digits and '-', joined by dots)");
    }
    Ok(host.to_string())
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, origins_of_hosts, parse_allowed_host};

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k"] {
            assert_eq!(bearer_token(v), Some("t0k"), "{v}");
        }
        for v in ["Basic t0k", "Bearert0k", "t0k", ""] {
            assert_eq!(bearer_token(v), None, "{v}");
        }
    }

    #[test]
    fn allowed_hosts_are_host_names_or_addresses() {
        for ok in [
            "localhost",
            "mcp.example.com",
            "mcp.example.com:8443",
            "10.0.0.5",
            "10.0.0.5:80",
            "::1",
            "[::1]",
            "[::1]:8931",
        ] {
            assert_eq!(parse_allowed_host(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "*",
            "",
            "  ",
            "http://evil.example",
            ".example",
            "*.example",
            "evil.example/path",
            "evil.example:0",
            "evil.example:http",
            "-evil.example",
            "evil..example",
            "[::1",
            "[nope]",
        ] {
            let e = parse_allowed_host(bad).unwrap_err();
            assert!(e.contains("mcp.example.com:8443"), "{bad}: {e}");
        }
    }

    #[test]
    fn origins_follow_the_allowed_hosts() {
        let hosts = ["localhost", "::1", "mcp.example:8443"].map(String::from);
        assert_eq!(
            origins_of_hosts(&hosts),
            [
                "http://localhost:*",
                "https://localhost:*",
                "http://[::1]:*",
                "https://[::1]:*",
                "http://mcp.example:8443",
                "https://mcp.example:8443",
            ]
        );
    }
}
