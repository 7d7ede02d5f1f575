//! `fleet-mcp --http ADDR`: the streamable HTTP transport, with a bearer token and `/health`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;

use crate::{redact::RedactingSessions, server::FleetServer};

/// Serves MCP at `http://ADDR/mcp` until `shutdown` fires. Every request but `GET /health`
/// needs `Authorization: Bearer <token>` when a token is set.
pub async fn serve(
    server: FleetServer,
    addr: SocketAddr,
    token: Option<String>,
    allowed_hosts: Vec<String>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    config.cancellation_token = shutdown.child_token();
    if !addr.ip().is_loopback() {
        // DNS-rebinding protection matters for loopback; elsewhere the bearer token guards,
        // and the operator may name the hosts it is reached by.
        config.allowed_hosts = allowed_hosts;
    } else if !allowed_hosts.is_empty() {
        config.allowed_hosts.extend(allowed_hosts);
    }
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        // Every session's outgoing messages are redacted (see redact.rs).
        std::sync::Arc::new(RedactingSessions(LocalSessionManager::default())),
        config,
    );
    let token = Arc::new(token);
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(token, require_bearer))
        .route("/health", get(health));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    eprintln!("fleet-mcp: serving MCP at http://{local}/mcp (health: http://{local}/health)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
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
            .and_then(|v| v.strip_prefix("Bearer "))
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
