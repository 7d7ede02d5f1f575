//! The HTTP layer every generated client shares: the configured `reqwest::Client`, the URL
//! rules, the retry policy for reads, and the mapping of progenitor errors to [`Error`].

use std::time::Duration;

use reqwest::{
    Method, StatusCode,
    header::{HeaderMap, HeaderName, HeaderValue},
};

use crate::{Error, FieldProblem, Result, Secret, config::HttpOptions};

/// `fleet/<version>`.
pub const USER_AGENT: &str = concat!("fleet/", env!("CARGO_PKG_VERSION"));

/// How reads (GET) are retried. Nothing else is ever retried: a POST that changes state is
/// sent exactly once.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff; it doubles each retry.
    pub initial_backoff: Duration,
    /// The longest backoff, and the longest `Retry-After` honoured.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `attempt` (1-based), honouring `Retry-After` seconds.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        retry_after.unwrap_or(exp).min(self.max_backoff)
    }
}

/// Checks a base URL: it parses, is http or https, and `http://` is only for loopback unless
/// `insecure_http` is set. Returns it without a trailing slash.
pub fn check_base_url(what: &str, url: &str, insecure_http: bool) -> Result<String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        Error::InvalidInput(format!(
            "{what} {url:?} is not a URL ({e}); write it like https://host[:port]"
        ))
    })?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if !loopback && !insecure_http {
                return Err(Error::InvalidInput(format!(
                    "{what} {url} uses http:// to a host that is not loopback: tokens would \
                     cross the network in clear. Use https://, or pass --insecure-http if you \
                     really mean it"
                )));
            }
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "{what} {url:?} has scheme {other:?}; use https:// (or http:// for loopback)"
            )));
        }
    }
    if parsed.cannot_be_a_base() || parsed.host().is_none() {
        return Err(Error::InvalidInput(format!("{what} {url:?} has no host")));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// Builds the `reqwest::Client` for one API: the auth header (marked sensitive), the user
/// agent, the timeouts.
pub fn build_client(
    auth: Option<(HeaderName, String)>,
    http: &HttpOptions,
) -> Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    if let Some((name, value)) = auth {
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            Error::InvalidInput(format!(
                "the token for the {name} header has characters a header cannot carry \
                 (a newline or a control character?)"
            ))
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(USER_AGENT)
        .connect_timeout(http.connect_timeout)
        .timeout(http.request_timeout)
        .build()
        .map_err(|e| Error::Transport(format!("cannot set up the HTTP client: {e}")))
}

/// `Authorization: Bearer …`.
pub fn bearer(secret: &Secret) -> (HeaderName, String) {
    (
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", secret.expose()),
    )
}

/// Sends a request. A GET is retried with backoff on 429 (honouring `Retry-After`),
/// 502/503/504 and transport errors; any other method is sent exactly once.
///
/// An error answer whose body is not JSON is rewritten into a JSON error body carrying the
/// text, so that the status and the server's words survive the typed decoding.
pub async fn execute(
    client: &reqwest::Client,
    policy: &RetryPolicy,
    request: reqwest::Request,
) -> reqwest::Result<reqwest::Response> {
    let method = request.method().clone();
    let path = request.url().path().to_string();
    let retryable = method == Method::GET;
    let mut attempt = 0u32;
    let mut request = Some(request);
    loop {
        let this = match (&request, retryable) {
            (Some(r), true) => r.try_clone().expect("a GET has no streaming body"),
            _ => request.take().expect("sent once"),
        };
        let started = std::time::Instant::now();
        let result = client.execute(this).await;
        let elapsed = started.elapsed();
        let retry_after = match &result {
            Ok(resp) => {
                tracing::debug!(%method, %path, status = resp.status().as_u16(), ?elapsed, "http");
                if is_retryable_status(resp.status()) {
                    Some(parse_retry_after(resp.headers()))
                } else {
                    None
                }
            }
            Err(e) => {
                tracing::debug!(%method, %path, error = %e, ?elapsed, "http transport error");
                if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() {
                    Some(None)
                } else {
                    None
                }
            }
        };
        match retry_after {
            Some(after) if retryable && attempt < policy.max_retries => {
                attempt += 1;
                let wait = policy.backoff(attempt, after);
                tracing::info!(%method, %path, attempt, ?wait, "retrying a read");
                tokio::time::sleep(wait).await;
            }
            _ => return normalize_error_body(result?).await,
        }
    }
}

fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The longest part of a non-JSON error body that is shown.
const MAX_BODY_SHOWN: usize = 300;

/// A header [`execute`] adds to an error answer whose body it rewrote because it was not a
/// JSON object (a router's or a proxy's page), so that a caller can tell it from an error body
/// the API itself sent.
pub const REWRITTEN_BODY_HEADER: &str = "x-fleet-rewritten-body";

async fn normalize_error_body(resp: reqwest::Response) -> reqwest::Result<reqwest::Response> {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(resp);
    }
    let headers = resp.headers().clone();
    let version = resp.version();
    let body = resp.bytes().await?;
    let is_json_object = serde_json::from_slice::<serde_json::Value>(&body)
        .map(|v| v.is_object())
        .unwrap_or(false);
    let body = if is_json_object {
        body.to_vec()
    } else {
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        let reason = status.canonical_reason().unwrap_or("error");
        let message = if text.is_empty() {
            format!("HTTP {} {reason} with an empty body", status.as_u16())
        } else {
            let mut shown: String = text.chars().take(MAX_BODY_SHOWN).collect();
            if shown.len() < text.len() {
                shown.push('…');
            }
            format!("HTTP {} {reason}: {shown}", status.as_u16())
        };
        serde_json::to_vec(&serde_json::json!({ "message": message, "error": message }))
            .expect("a JSON object serializes")
    };
    let mut rebuilt = http::Response::builder().status(status).version(version);
    for (name, value) in headers.iter() {
        if name != reqwest::header::CONTENT_LENGTH && name != reqwest::header::CONTENT_TYPE {
            rebuilt = rebuilt.header(name, value);
        }
    }
    if !is_json_object {
        rebuilt = rebuilt.header(REWRITTEN_BODY_HEADER, "not-a-json-object");
    }
    let rebuilt = rebuilt
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("status and headers came from a valid response");
    Ok(reqwest::Response::from(rebuilt))
}

/// Routes a generated client's requests through [`execute`] (reads retried, writes sent once).
macro_rules! retrying_client {
    ($client:ty) => {
        impl progenitor_client::ClientHooks<$crate::http::RetryPolicy> for $client {
            async fn exec(
                &self,
                request: reqwest::Request,
                _info: &progenitor_client::OperationInfo,
            ) -> reqwest::Result<reqwest::Response> {
                use progenitor_client::ClientInfo;
                $crate::http::execute(self.client(), self.inner(), request).await
            }
        }
    };
}
pub(crate) use retrying_client;

/// A server's message and detail as one text: `message (detail)`, either alone, or empty.
pub fn server_words(message: Option<&str>, detail: Option<&str>) -> String {
    match (
        message.filter(|s| !s.is_empty()),
        detail.filter(|s| !s.is_empty()),
    ) {
        (Some(m), Some(d)) => format!("{m} ({d})"),
        (Some(m), None) => m.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => String::new(),
    }
}

/// An error body of one of the specs.
pub trait ServerErrorBody {
    /// The server's words (message and detail).
    fn message(&self) -> String;
    /// Field-level problems, if the server listed any.
    fn validations(&self) -> Vec<FieldProblem> {
        Vec::new()
    }
}

/// Context for turning a failed call into an [`Error`].
pub struct CallContext<'a> {
    /// What fleet was doing ("reading workspace ws-1").
    pub action: String,
    /// The API, for the hint on 401/403 ("the CP admin API").
    pub api: &'static str,
    /// The variable that holds the API's token, for the hint on 401/403.
    pub token_var: &'static str,
    /// Every configured secret, scrubbed from any text a server sent.
    pub secrets: &'a [&'a Secret],
}

/// Replaces every configured secret in `text` with `<redacted>`.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.is_redactable() {
            out = out.replace(s.expose(), "<redacted>");
        }
    }
    out
}

/// Maps a progenitor error to the library's [`Error`].
pub fn map_error<E: ServerErrorBody>(
    err: progenitor_client::Error<E>,
    ctx: &CallContext<'_>,
) -> Error {
    use progenitor_client::Error as P;
    let action = &ctx.action;
    match err {
        P::ErrorResponse(rv) => {
            let status = rv.status().as_u16();
            let body = rv.into_inner();
            let said = scrub(&body.message(), ctx.secrets);
            let said = if said.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                said
            };
            let validations: Vec<FieldProblem> = body
                .validations()
                .into_iter()
                .map(|v| FieldProblem {
                    field: scrub(&v.field, ctx.secrets),
                    detail: scrub(&v.detail, ctx.secrets),
                })
                .collect();
            from_status(status, format!("{action}: {said}"), validations, ctx)
        }
        P::UnexpectedResponse(resp) => {
            let status = resp.status().as_u16();
            from_status(
                status,
                format!("{action}: unexpected HTTP {status}"),
                vec![],
                ctx,
            )
        }
        P::InvalidResponsePayload(bytes, e) => {
            let text = String::from_utf8_lossy(&bytes);
            let mut shown: String = text.chars().take(MAX_BODY_SHOWN).collect();
            if shown.len() < text.len() {
                shown.push('…');
            }
            Error::Api {
                status: 200,
                message: scrub(
                    &format!("{action}: the server's answer could not be read ({e}): {shown}"),
                    ctx.secrets,
                ),
                validations: vec![],
            }
        }
        P::CommunicationError(e) | P::ResponseBodyError(e) | P::InvalidUpgrade(e) => {
            let what = if e.is_timeout() {
                "the server did not answer in time"
            } else if e.is_connect() {
                "cannot connect to the server"
            } else {
                "the connection failed"
            };
            Error::Transport(scrub(
                &format!("{action}: {what}: {}", error_chain(&e)),
                ctx.secrets,
            ))
        }
        P::InvalidRequest(msg) => {
            Error::InvalidInput(scrub(&format!("{action}: {msg}"), ctx.secrets))
        }
        P::Custom(msg) => Error::Transport(scrub(&format!("{action}: {msg}"), ctx.secrets)),
    }
}

fn from_status(
    status: u16,
    message: String,
    validations: Vec<FieldProblem>,
    ctx: &CallContext<'_>,
) -> Error {
    match status {
        401 | 403 => Error::Unauthorized {
            status,
            message: format!(
                "{message} (HTTP {status}: check {} for {})",
                ctx.token_var, ctx.api
            ),
        },
        404 => Error::NotFound { message },
        409 => Error::Conflict {
            message,
            current_state: None,
        },
        _ => {
            let mut message = message;
            for v in &validations {
                message.push_str(&format!("\n  - {}: {}", v.field, v.detail));
            }
            Error::Api {
                status,
                message,
                validations,
            }
        }
    }
}

/// The error and its sources, joined.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
