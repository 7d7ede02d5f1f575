//! What works, plane by plane: each configured control plane answers, its TLS verifies, its
//! token is accepted, and who it is. Only reads are sent; each check is time-bounded, so a
//! server that hangs is named instead of waited on.

use std::time::Duration;

use serde::Serialize;

use crate::{
    Error, HttpOptions,
    coder::CoderClient,
    context::{CoderSettings, MoleculeSettings},
    molecule::MoleculeClient,
};

/// The workspace id the Molecule checks read: made up, so that the answer is "never migrated"
/// (404) or "no such workspace", and nothing real is touched.
pub const PROBE_WORKSPACE: &str = "fleet-doctor-probe-00000000";

/// How a doctor runs.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The most time one check may take.
    pub check_timeout: Duration,
    /// HTTP settings (the timeouts are capped by `check_timeout`).
    pub http: HttpOptions,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            check_timeout: Duration::from_secs(10),
            http: HttpOptions::default(),
        }
    }
}

/// What is wrong, as a fact a face turns into advice.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// A URL or a token is missing.
    NotConfigured {
        /// What is missing (`url`, `session_token`, `cp_admin_token`, `org_api_key`).
        missing: String,
    },
    /// The server refused the token (401) or its permission (403).
    TokenRefused {
        /// 401 or 403.
        status: u16,
    },
    /// The server could not be reached.
    Unreachable,
    /// The TLS certificate did not verify.
    Tls,
    /// No answer within the bound.
    TimedOut {
        /// The bound, in seconds.
        after_secs: f64,
    },
    /// The server answered with an unexpected status.
    Status {
        /// The status.
        status: u16,
    },
    /// Something else (the detail says).
    Other,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked (`server`, `token`, `cp_admin`, `tenant`).
    pub name: &'static str,
    /// True when it passed.
    pub ok: bool,
    /// What was found (or what went wrong), in a sentence.
    pub detail: String,
    /// What is wrong, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// The URL checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Check {
    fn ok(name: &'static str, url: Option<&str>, detail: impl Into<String>) -> Self {
        Check {
            name,
            ok: true,
            detail: detail.into(),
            problem: None,
            url: url.map(str::to_string),
        }
    }

    fn failed(name: &'static str, url: Option<&str>, detail: String, problem: Problem) -> Self {
        Check {
            name,
            ok: false,
            detail,
            problem: Some(problem),
            url: url.map(str::to_string),
        }
    }
}

/// Who a Coder session token belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct CoderIdentity {
    /// The username.
    pub username: String,
    /// Site-wide role names.
    pub roles: Vec<String>,
}

/// The Coder plane's report.
#[derive(Debug, Clone, Serialize)]
pub struct CoderReport {
    /// True when a URL or token is configured.
    pub configured: bool,
    /// True when every check passed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The server version, when read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// True when the server chains a stop build into a start (`on_success`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<bool>,
    /// Who the token is, when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<CoderIdentity>,
    /// Whether `watch-ws` (the WebSocket fleet follows workspaces by) opens, when a workspace
    /// the token sees could be tried. Without it fleet polls, so this never fails the plane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websockets: Option<WebSockets>,
}

/// What the WebSocket check found.
#[derive(Debug, Clone, Serialize)]
pub struct WebSockets {
    /// True when the upgrade succeeded.
    pub available: bool,
    /// The workspace tried, or why none was, or why the upgrade failed.
    pub detail: String,
}

/// The Molecule plane's report.
#[derive(Debug, Clone, Serialize)]
pub struct MoleculeReport {
    /// True when the CP admin API has a token or a URL other than the default.
    pub configured: bool,
    /// True when every check passed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The CP-admin route prefix found (`/cp/admin`, `/api/v1/admin`), when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cp_admin_prefix: Option<String>,
}

/// Classifies an error of a check.
fn problem_of(e: &Error) -> Problem {
    match e.root() {
        Error::Unauthorized { status, .. } => Problem::TokenRefused { status: *status },
        Error::Transport(m) => {
            let m = m.to_ascii_lowercase();
            if m.contains("certificate") || m.contains("tls") || m.contains("handshake") {
                Problem::Tls
            } else {
                Problem::Unreachable
            }
        }
        Error::Timeout { .. } => Problem::TimedOut { after_secs: 0.0 },
        Error::Api { status, .. } => Problem::Status { status: *status },
        _ => Problem::Other,
    }
}

/// Runs `f` within the bound; a check that does not end in time is a [`Problem::TimedOut`].
async fn bounded<T>(
    bound: Duration,
    f: impl std::future::Future<Output = crate::Result<T>>,
) -> std::result::Result<T, (String, Problem)> {
    match tokio::time::timeout(bound, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let mut p = problem_of(&e);
            if let Problem::TimedOut { after_secs } = &mut p {
                *after_secs = bound.as_secs_f64();
            }
            Err((e.to_string(), p))
        }
        Err(_) => Err((
            format!("no answer within {}s", bound.as_secs_f64()),
            Problem::TimedOut {
                after_secs: bound.as_secs_f64(),
            },
        )),
    }
}

/// The check's bound ends a request that hangs: the request's own timeout is set just past
/// it, so that a hanging server is named once instead of retried at the bound. Reads are
/// retried once at most.
/// An https URL whose request failed before any answer while its port accepts TCP: the TLS
/// handshake (certificate, or not TLS at all) is what failed, not the network.
async fn refine(url: &str, problem: Problem, bound: Duration) -> Problem {
    if problem != Problem::Unreachable {
        return problem;
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return problem;
    };
    if parsed.scheme() != "https" {
        return problem;
    }
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return problem;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    match tokio::time::timeout(bound, tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => Problem::Tls,
        _ => problem,
    }
}

fn http(options: &DoctorOptions) -> HttpOptions {
    HttpOptions {
        connect_timeout: options.http.connect_timeout.min(options.check_timeout),
        request_timeout: options.check_timeout + Duration::from_secs(1),
        // One retry for a blip; a diagnosis reports what it sees rather than waiting it out.
        retry: crate::http::RetryPolicy {
            max_retries: options.http.retry.max_retries.min(1),
            ..options.http.retry.clone()
        },
        ..options.http.clone()
    }
}

/// Checks Coder: the server answers (`GET /buildinfo`: version, `on_success`), TLS verifies,
/// the token is accepted and whose it is (`GET /users/me`). Only reads.
pub async fn check_coder(settings: &CoderSettings, options: &DoctorOptions) -> CoderReport {
    let mut report = CoderReport {
        configured: settings.configured(),
        ok: false,
        checks: Vec::new(),
        version: None,
        on_success: None,
        identity: None,
        websockets: None,
    };
    if !report.configured {
        return report;
    }
    let url = settings.url.as_ref().map(|u| u.value.clone());
    let Some(url) = url else {
        report.checks.push(Check::failed(
            "server",
            None,
            "no Coder URL is set".into(),
            Problem::NotConfigured {
                missing: "url".into(),
            },
        ));
        return report;
    };
    if settings.session_token.is_none() {
        report.checks.push(Check::failed(
            "token",
            Some(&url),
            "no Coder session token is set".into(),
            Problem::NotConfigured {
                missing: "session_token".into(),
            },
        ));
        return report;
    }
    let client = match CoderClient::new(&settings.config(http(options))) {
        Ok(c) => c,
        Err(e) => {
            let p = problem_of(&e);
            report
                .checks
                .push(Check::failed("server", Some(&url), e.to_string(), p));
            return report;
        }
    };
    match bounded(options.check_timeout, client.server_features()).await {
        Ok(f) => {
            report.version = Some(f.version_text.clone());
            report.on_success = Some(f.on_success);
            let tls = if client.url().starts_with("https://") {
                "TLS verified; "
            } else {
                ""
            };
            report.checks.push(Check::ok(
                "server",
                Some(client.url()),
                format!(
                    "answers: {tls}Coder {}; {}",
                    f.version_text, f.on_success_reason
                ),
            ));
        }
        Err((detail, p)) => {
            let p = refine(client.url(), p, options.check_timeout).await;
            report
                .checks
                .push(Check::failed("server", Some(client.url()), detail, p));
            return report;
        }
    }
    let me = async {
        client
            .api()
            .get_user_by_name("me")
            .await
            .map(|r| r.into_inner())
            .map_err(|e| client.error("reading who the session token is (GET /users/me)", e))
    };
    match bounded(options.check_timeout, me).await {
        Ok(user) => {
            let roles: Vec<String> = user.roles.iter().filter_map(|r| r.name.clone()).collect();
            report.checks.push(Check::ok(
                "token",
                Some(client.url()),
                format!(
                    "accepted: {}{}",
                    user.username,
                    if roles.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", roles.join(", "))
                    }
                ),
            ));
            report.identity = Some(CoderIdentity {
                username: user.username.clone(),
                roles,
            });
        }
        Err((detail, p)) => {
            report
                .checks
                .push(Check::failed("token", Some(client.url()), detail, p));
        }
    }
    report.ok = report.checks.iter().all(|c| c.ok);
    if report.ok {
        report.websockets = Some(check_websockets(&client, options.check_timeout).await);
    }
    report
}

/// Opens `watch-ws` of one workspace the token sees (a read; closed at once).
async fn check_websockets(client: &CoderClient, bound: Duration) -> WebSockets {
    let first = async {
        client
            .api()
            .list_workspaces(Some(1), Some(0), None)
            .await
            .map(|r| r.into_inner())
            .map_err(|e| client.error("listing one workspace", e))
    };
    let workspace = match bounded(bound, first).await {
        Ok(list) => list.workspaces.into_iter().next(),
        Err((detail, _)) => {
            return WebSockets {
                available: false,
                detail: format!("not tried: {detail}"),
            };
        }
    };
    let Some(id) = workspace.as_ref().and_then(|w| w.id) else {
        return WebSockets {
            available: false,
            detail: "not tried: the token sees no workspace".into(),
        };
    };
    let name = workspace
        .as_ref()
        .and_then(|w| w.name.clone())
        .unwrap_or_else(|| id.to_string());
    match bounded(bound, client.watch_workspace(&id)).await {
        Ok(_watch) => WebSockets {
            available: true,
            detail: format!("watch-ws opened (workspace {name})"),
        },
        Err((detail, _)) => WebSockets {
            available: false,
            detail: format!("watch-ws did not open ({detail}); fleet polls instead"),
        },
    }
}

/// Checks Molecule: the CP admin API answers and accepts the token (a status read of a
/// made-up workspace: "never migrated" proves both, and finds the route layout), then the
/// tenant API if configured (a read of a made-up workspace: "not found" proves the key was
/// accepted). Only reads.
pub async fn check_molecule(
    settings: &MoleculeSettings,
    options: &DoctorOptions,
) -> MoleculeReport {
    let mut report = MoleculeReport {
        configured: settings.configured(),
        ok: false,
        checks: Vec::new(),
        cp_admin_prefix: None,
    };
    if !report.configured {
        return report;
    }
    let cp_url = settings.cp_url.value.clone();
    if settings.cp_admin_token.is_none() {
        report.checks.push(Check::failed(
            "cp_admin",
            Some(&cp_url),
            "no CP admin token is set".into(),
            Problem::NotConfigured {
                missing: "cp_admin_token".into(),
            },
        ));
    } else {
        match MoleculeClient::new(&settings.config(http(options))) {
            Err(e) => {
                let p = problem_of(&e);
                report
                    .checks
                    .push(Check::failed("cp_admin", Some(&cp_url), e.to_string(), p));
            }
            Ok(client) => {
                let probe = async {
                    match client.migration_status(PROBE_WORKSPACE).await {
                        // The control plane's own "no such workspace": it answered, on this
                        // route, and took the token.
                        Err(e) if matches!(e.root(), Error::UnknownWorkspace { .. }) => Ok(()),
                        other => other.map(|_| ()),
                    }
                };
                match bounded(options.check_timeout, probe).await {
                    Ok(_) => {
                        let route = client.cp_admin_route();
                        report.cp_admin_prefix = Some(route.prefix.clone());
                        report.checks.push(Check::ok(
                            "cp_admin",
                            Some(&cp_url),
                            format!("answers and accepted the token; routes at {}", route.prefix),
                        ));
                    }
                    Err((detail, p)) => {
                        let p = refine(&cp_url, p, options.check_timeout).await;
                        report
                            .checks
                            .push(Check::failed("cp_admin", Some(&cp_url), detail, p))
                    }
                }
                if let Some(api_url) = settings.api_url.as_ref().map(|u| u.value.clone()) {
                    report
                        .checks
                        .push(check_tenant(&client, &api_url, settings, options).await);
                }
            }
        }
    }
    report.ok = !report.checks.is_empty() && report.checks.iter().all(|c| c.ok);
    report
}

async fn check_tenant(
    client: &MoleculeClient,
    api_url: &str,
    settings: &MoleculeSettings,
    options: &DoctorOptions,
) -> Check {
    if settings.org_api_key.is_none() {
        return Check::failed(
            "tenant",
            Some(api_url),
            "no tenant API key is set".into(),
            Problem::NotConfigured {
                missing: "org_api_key".into(),
            },
        );
    }
    match tokio::time::timeout(
        options.check_timeout,
        client.current_provider(PROBE_WORKSPACE),
    )
    .await
    {
        // A made-up workspace: "not found" (or no provider) means the key was accepted.
        Ok(Ok(_)) => Check::ok("tenant", Some(api_url), "answers and accepted the key"),
        Ok(Err(e))
            if matches!(
                e.root(),
                Error::NotFound { .. } | Error::UnknownWorkspace { .. } | Error::Refused(_)
            ) =>
        {
            Check::ok("tenant", Some(api_url), "answers and accepted the key")
        }
        Ok(Err(e)) => {
            let p = refine(api_url, problem_of(&e), options.check_timeout).await;
            Check::failed("tenant", Some(api_url), e.to_string(), p)
        }
        Err(_) => Check::failed(
            "tenant",
            Some(api_url),
            format!("no answer within {}s", options.check_timeout.as_secs_f64()),
            Problem::TimedOut {
                after_secs: options.check_timeout.as_secs_f64(),
            },
        ),
    }
}
