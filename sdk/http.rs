//! The HTTP layer every generated client shares: the configured `reqwest::Client`, the URL
//! rules, the retry policy for reads, and the mapping of progenitor errors to [`Error`].

use std::{fmt, sync::Arc, time::Duration};

use reqwest::{
    Method, StatusCode, Url,
    header::{HeaderMap, HeaderName, HeaderValue},
};

use crate::{Error, FieldProblem, Result, Secret, config::HttpOptions};

/// `fleet/<version>`.
pub const USER_AGENT: &str = concat!("fleet/", env!("CARGO_PKG_VERSION"));

pub use crate::config::{DEFAULT_MAX_IN_FLIGHT, RetryPolicy};

/// What every generated client carries for its `exec` hook ([`execute`]): how reads are
/// retried, and the bound on requests in flight ([`HttpOptions::max_in_flight`]), shared by
/// the clones of it (give one to every generated client over the same `reqwest::Client`).
#[derive(Debug, Clone)]
pub struct Calls {
    /// How GETs are retried.
    pub retry: RetryPolicy,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Calls {
    /// The retry policy and the bound of `http`.
    pub fn new(http: &HttpOptions) -> Self {
        Calls {
            retry: http.retry.clone(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(http.max_in_flight.max(1))),
        }
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
            if !is_loopback(&parsed) && !insecure_http {
                return Err(Error::advised(
                    Error::InvalidInput(format!(
                        "{what} {url} uses http:// to a host that is not loopback: tokens would \
                         cross the network in clear. Use https://"
                    )),
                    vec![crate::Remedy::AllowInsecureHttp],
                ));
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

/// True when the URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // Only the name itself: a resolver may send `x.localhost` to DNS.
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Builds the `reqwest::Client` for the API at `base_url` (checked by [`check_base_url`]):
/// the auth header (marked sensitive), the user agent, the timeouts.
///
/// The client follows no redirect by itself: reqwest would carry a custom credential header
/// such as `Coder-Session-Token` to any other origin, even over http. [`execute`] follows a
/// redirect only for a read and only within the origin. A loopback base URL never goes
/// through a proxy from `HTTP(S)_PROXY`/`ALL_PROXY`, so the plain-http exception for
/// loopback cannot carry a token across the network.
pub fn build_client(
    base_url: &str,
    auth: Option<(HeaderName, String)>,
    http: &HttpOptions,
) -> Result<reqwest::Client> {
    let base = Url::parse(base_url).map_err(|e| {
        Error::InvalidInput(format!(
            "{base_url:?} is not a URL ({e}); write it like https://host[:port]"
        ))
    })?;
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
    // The process's one TLS setup (crate::tls), offering HTTP/2 and HTTP/1.1 as reqwest's own
    // would.
    let tls = crate::tls::client_config(&[b"h2", b"http/1.1"])
        .map_err(|e| Error::Transport(format!("cannot set up TLS: {e}")))?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .default_headers(headers)
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(http.connect_timeout)
        .timeout(http.request_timeout)
        // No more idle connections kept than requests can be in flight.
        .pool_max_idle_per_host(http.max_in_flight.max(1));
    if is_loopback(&base) {
        builder = builder.no_proxy();
    }
    builder
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

/// The largest answer body read from a successful call. The largest legitimate answer is a
/// page of 100 Coder workspaces: 0.12 MiB from the simulator and, with several agents and
/// many apps per workspace, a few MiB on a real deployment; 16 MiB leaves ample margin and
/// bounds the memory a misbehaving server or proxy can make fleet use.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The most of an error answer that is read (only its first few hundred characters are shown).
pub const MAX_ERROR_ANSWER_BYTES: usize = 64 * 1024;

/// How long a call goes unanswered before fleet says that it is waiting, and for whom.
pub const SLOW_ANSWER_NOTICE: Duration = Duration::from_secs(3);

/// Same-origin redirects followed for one read.
const MAX_REDIRECTS: u32 = 5;

/// Retries of a read after it timed out. A server that let a whole request timeout pass
/// rarely answers the next one: retrying it as often as a refused connection or a 503 (which
/// heal in seconds) left a hung server silent for 5 × 30 s. One retry keeps the benefit for a
/// single lost answer; waits for a build or a migration read again on their own anyway.
pub const MAX_TIMEOUT_RETRIES: u32 = 1;

/// A successful answer larger than [`MAX_ANSWER_BYTES`]: fleet stopped reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTooLarge {
    /// The server (`host[:port]`).
    pub host: String,
    /// The answer's HTTP status.
    pub status: u16,
    /// The limit that was passed.
    pub limit: usize,
    /// The size the server announced in `Content-Length`, if it did.
    pub announced: Option<u64>,
}

impl fmt::Display for AnswerTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = self.limit / (1024 * 1024);
        match self.announced {
            Some(n) => write!(
                f,
                "the answer from {} announces {n} bytes, more than the {mib} MiB fleet reads",
                self.host
            )?,
            None => write!(
                f,
                "the answer from {} went on past the {mib} MiB fleet reads",
                self.host
            )?,
        }
        f.write_str(
            "; fleet stopped reading it. No answer fleet expects is that large: is something \
             other than the API answering at that address (a proxy, a download)?",
        )
    }
}

impl std::error::Error for AnswerTooLarge {}

/// `host[:port]` of a URL: what fleet names when it talks about a server, never the path or
/// the query (which may carry ids or secrets).
pub fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => "the server".to_string(),
    }
}

/// Where a redirect from `from` to `location` may be followed: `Ok(target)` when the target
/// has the same origin (scheme, host and port; so never an https→http downgrade), otherwise
/// `Err` with the target resolved as far as it can be (for the message).
pub fn same_origin_redirect(from: &Url, location: &str) -> std::result::Result<Url, String> {
    let target = from
        .join(location.trim())
        .map_err(|_| location.to_string())?;
    let same = target.scheme() == from.scheme()
        && target.host_str() == from.host_str()
        && target.port_or_known_default() == from.port_or_known_default();
    if same {
        Ok(target)
    } else {
        Err(target.to_string())
    }
}

/// Sends a request. A GET is retried with backoff on 429 (honouring `Retry-After`),
/// 502/503/504 and transport errors (after a timeout at most [`MAX_TIMEOUT_RETRIES`] times);
/// any other method is sent exactly once. At most [`HttpOptions::max_in_flight`] requests of
/// one client are in flight at once; the others wait their turn (counted in the time after
/// which fleet says it is waiting).
///
/// Every answer body is read here, bounded: a successful one up to [`MAX_ANSWER_BYTES`]
/// (beyond that the body reads as an [`AnswerTooLarge`] error), an error one up to
/// [`MAX_ERROR_ANSWER_BYTES`] (the rest is dropped). A redirect is followed only for a GET and
/// only within the origin; any other comes back as the 3xx answer, its `Location` made
/// absolute, for [`map_error`] to explain. A call unanswered after [`SLOW_ANSWER_NOTICE`]
/// and every retry are logged at warn level, naming the host.
///
/// An error answer whose body is not JSON is rewritten into a JSON error body carrying the
/// text, so that the status and the server's words survive the typed decoding.
pub async fn execute(
    client: &reqwest::Client,
    calls: &Calls,
    request: reqwest::Request,
) -> reqwest::Result<reqwest::Response> {
    let policy = &calls.retry;
    let method = request.method().clone();
    let path = request.url().path().to_string();
    let host = host_of(request.url());
    let retryable = method == Method::GET;
    let mut attempt = 0u32;
    let mut redirects = 0u32;
    let mut timeouts = 0u32;
    let mut said_waiting = false;
    let mut request = Some(request);
    loop {
        let this = match (&request, retryable) {
            (Some(r), true) => r.try_clone().expect("a GET has no streaming body"),
            _ => request.take().expect("sent once"),
        };
        let url = this.url().clone();
        let started = std::time::Instant::now();
        let result = notice_if_slow(
            async {
                // A permit per attempt, never held across a backoff; the semaphore is never
                // closed.
                let _permit = calls.in_flight.acquire().await.ok();
                send_bounded(client, this, &host).await
            },
            &method,
            &host,
            &mut said_waiting,
        )
        .await;
        let elapsed = started.elapsed();
        let retry_after = match &result {
            Ok(resp) => {
                tracing::debug!(%method, %path, status = resp.status().as_u16(), ?elapsed, "http");
                if retryable && redirects < MAX_REDIRECTS {
                    if let Some(next) = followable_redirect(resp, &url) {
                        redirects += 1;
                        tracing::debug!(%method, from = %url.path(), to = %next.path(), "following a same-origin redirect");
                        let mut next_request = request
                            .as_ref()
                            .and_then(|r| r.try_clone())
                            .expect("a GET has no streaming body");
                        *next_request.url_mut() = next;
                        request = Some(next_request);
                        continue;
                    }
                }
                if is_retryable_status(resp.status()) {
                    Some(parse_retry_after(resp.headers()))
                } else {
                    None
                }
            }
            Err(e) => {
                tracing::debug!(%method, %path, error = %e, ?elapsed, "http transport error");
                if e.is_timeout() {
                    timeouts += 1;
                }
                if timeouts > MAX_TIMEOUT_RETRIES || certificate_refused(e) {
                    // The same certificate would come back.
                    None
                } else if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() {
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
                let why = match &result {
                    Ok(resp) => format!("{host} answered HTTP {}", resp.status().as_u16()),
                    Err(e) if e.is_timeout() => format!("{host} did not answer in time"),
                    Err(e) if e.is_connect() => format!("cannot connect to {host}"),
                    Err(_) => format!("the connection to {host} failed"),
                };
                tracing::warn!(
                    %host, %method, attempt, ?wait,
                    "{why}; trying again in {} ms (retry {attempt})",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
            _ => return finish(result?, &url).await,
        }
    }
}

/// Awaits `call`; when it takes longer than [`SLOW_ANSWER_NOTICE`], says once (per
/// [`execute`]) that fleet is waiting for `host`.
async fn notice_if_slow<T>(
    call: impl std::future::Future<Output = T>,
    method: &Method,
    host: &str,
    said: &mut bool,
) -> T {
    if *said {
        return call.await;
    }
    tokio::pin!(call);
    tokio::select! {
        out = &mut call => out,
        () = tokio::time::sleep(SLOW_ANSWER_NOTICE) => {
            *said = true;
            tracing::warn!(
                %host, %method, waited_s = SLOW_ANSWER_NOTICE.as_secs(),
                "waiting for {host} to answer ({} s so far)",
                SLOW_ANSWER_NOTICE.as_secs()
            );
            call.await
        }
    }
}

/// The target of a redirect that [`execute`] follows (a same-origin one), if `resp` is one.
fn followable_redirect(resp: &reqwest::Response, from: &Url) -> Option<Url> {
    if !resp.status().is_redirection() {
        return None;
    }
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    same_origin_redirect(from, location).ok()
}

/// Sends one request and reads its whole answer into memory, bounded (see [`execute`]).
async fn send_bounded(
    client: &reqwest::Client,
    request: reqwest::Request,
    host: &str,
) -> reqwest::Result<reqwest::Response> {
    let mut resp = client.execute(request).await?;
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    let success = status.is_success();
    let limit = if success {
        MAX_ANSWER_BYTES
    } else {
        MAX_ERROR_ANSWER_BYTES
    };
    let too_large = |announced| {
        reqwest::Body::wrap(FailingBody(Some(AnswerTooLarge {
            host: host.to_string(),
            status: status.as_u16(),
            limit,
            announced,
        })))
    };
    let announced = resp.content_length();
    if success && announced.is_some_and(|n| n > limit as u64) {
        return Ok(rebuild(&resp, too_large(announced)));
    }
    let mut body = Vec::with_capacity(announced.unwrap_or(0).min(limit as u64) as usize);
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            if success {
                return Ok(rebuild(&resp, too_large(None)));
            }
            // Enough of an error answer to show; the rest is not read.
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(rebuild(&resp, body.into()))
}

/// A response with `resp`'s status and headers and another body.
fn rebuild(resp: &reqwest::Response, body: reqwest::Body) -> reqwest::Response {
    let mut rebuilt = http::Response::builder()
        .status(resp.status())
        .version(resp.version());
    for (name, value) in resp.headers() {
        if name != reqwest::header::CONTENT_LENGTH && name != reqwest::header::TRANSFER_ENCODING {
            rebuilt = rebuilt.header(name, value);
        }
    }
    reqwest::Response::from(
        rebuilt
            .body(body)
            .expect("status and headers came from a valid response"),
    )
}

/// A body whose first read fails with [`AnswerTooLarge`], so that the generated client reports
/// a body error (which [`map_error`] recognises) instead of decoding a truncated answer.
struct FailingBody(Option<AnswerTooLarge>);

impl http_body::Body for FailingBody {
    type Data = bytes::Bytes;
    type Error = AnswerTooLarge;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Self::Data>, Self::Error>>>
    {
        std::task::Poll::Ready(self.get_mut().0.take().map(Err))
    }
}

/// The last step of [`execute`]: a redirect's `Location` made absolute, a non-JSON error body
/// made JSON.
async fn finish(resp: reqwest::Response, url: &Url) -> reqwest::Result<reqwest::Response> {
    let mut resp = resp;
    if resp.status().is_redirection() {
        let absolute = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l.trim()).ok())
            .and_then(|u| HeaderValue::from_str(u.as_str()).ok());
        if let Some(absolute) = absolute {
            resp.headers_mut()
                .insert(reqwest::header::LOCATION, absolute);
        }
        return Ok(resp);
    }
    normalize_error_body(resp).await
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
    // Already in memory and bounded by `send_bounded`.
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
        // A server's own header of that name would make its JSON error look rewritten.
        if name != reqwest::header::CONTENT_LENGTH
            && name != reqwest::header::CONTENT_TYPE
            && name.as_str() != REWRITTEN_BODY_HEADER
        {
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
        impl progenitor_client::ClientHooks<$crate::http::Calls> for $client {
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
    /// The variable that holds the API's base URL, for the hint on a redirect.
    pub url_var: &'static str,
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
        P::UnexpectedResponse(resp) if resp.status().is_redirection() => Error::Api {
            status: resp.status().as_u16(),
            message: scrub(
                &redirect_refused(action, resp.status().as_u16(), resp.headers(), ctx),
                ctx.secrets,
            ),
            validations: vec![],
        },
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
            if let Some(big) = find_source::<AnswerTooLarge>(&e) {
                return Error::Api {
                    status: big.status,
                    message: scrub(&format!("{action}: {big}"), ctx.secrets),
                    validations: vec![],
                };
            }
            let what = if e.is_timeout() {
                "the server did not answer in time"
            } else if certificate_refused(&e) {
                "the server's TLS certificate did not verify against the system's root \
                 certificates (a private CA: point SSL_CERT_FILE at its certificate)"
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

/// The error for a redirect that [`execute`] did not follow.
fn redirect_refused(
    action: &str,
    status: u16,
    headers: &HeaderMap,
    ctx: &CallContext<'_>,
) -> String {
    let target = headers
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(shown_location)
        .unwrap_or_else(|| "an address it does not name".to_string());
    format!(
        "{action}: {} at {} redirects (HTTP {status}) to {target}; fleet follows a redirect only \
         for a read and only to the same origin, since {} would go along to the other address. \
         If the API is really served there, set {} to it",
        ctx.api, ctx.url_var, ctx.token_var, ctx.url_var
    )
}

/// A redirect target as shown: scheme, host, port and path; the query and fragment (which
/// may carry single-use codes) are left out, and a long path is cut.
fn shown_location(location: &str) -> String {
    const MAX_SHOWN: usize = 120;
    let mut shown = match Url::parse(location) {
        Ok(url) => {
            let mut s = format!("{}://{}{}", url.scheme(), host_of(&url), url.path());
            if url.query().is_some() || url.fragment().is_some() {
                s.push_str("?…");
            }
            s
        }
        Err(_) => location.chars().filter(|c| !c.is_control()).collect(),
    };
    if shown.chars().count() > MAX_SHOWN {
        shown = shown.chars().take(MAX_SHOWN).collect::<String>() + "…";
    }
    shown
}

/// Whether `e` happened because a server's certificate did not verify.
fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        find_source::<rustls::Error>(e),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// The first error of type `T` in `e`'s chain of sources, looking inside `io::Error`s too
/// (the TLS stream carries rustls's error in one, and an `io::Error`'s `source()` skips the
/// error it wraps).
fn find_source<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => err.source(),
        };
    }
    None
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
