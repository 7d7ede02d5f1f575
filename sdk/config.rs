//! Configuration: endpoints, tokens, timeouts. Flags override environment variables.

use std::{path::Path, time::Duration};

pub use crate::secret::Secret;
use crate::{Error, Result};

/// Reading a token from a file lives here, above the file reader and the error type; the
/// token itself is a floor type (`secret.rs`) that the redactor in `text.rs` uses too.
impl Secret {
    /// Reads a token from a file (first line, trimmed), at most
    /// [`TOKEN_FILE_MAX_BYTES`](crate::files::TOKEN_FILE_MAX_BYTES) within a few seconds (see
    /// [`crate::files`]).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::files::read_input_file(
            path,
            "the token file",
            crate::files::TOKEN_FILE_MAX_BYTES,
        )?;
        let secret = Secret::new(text.lines().next().unwrap_or_default());
        if secret.is_empty() {
            return Err(Error::InvalidInput(format!(
                "the token file {} is empty",
                path.display()
            )));
        }
        Ok(secret)
    }
}

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

/// The default of [`HttpOptions::max_in_flight`]: twice the most workspaces a batch runs at
/// once, so that a batch never waits for it; a few MiB of connections at most.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// HTTP settings shared by every client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one request, from sending to the whole answer.
    pub request_timeout: Duration,
    /// Allow `http://` to a host that is not loopback (tokens would cross the network in clear).
    pub insecure_http: bool,
    /// How GETs are retried.
    pub retry: RetryPolicy,
    /// The most requests one API's client has in flight at once (each HTTP/1.1 request holds
    /// a connection of its own); further requests wait for one to end. Bounds the connections
    /// and their buffers however many waits share the client and however slowly the server
    /// answers. At least 1.
    pub max_in_flight: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            insecure_http: false,
            retry: RetryPolicy::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Where the Molecule APIs are and how to authenticate.
#[derive(Debug, Clone)]
pub struct MoleculeConfig {
    /// CP admin API base URL (`MOLECULE_CP_URL`, else `CP_API_URL`, the name the platform's
    /// own management server reads).
    pub cp_url: String,
    /// The path prefix of the CP-admin routes (`MOLECULE_CP_ADMIN_PREFIX`), like `/cp/admin`
    /// or `/api/v1/admin`. `None`: the contract's `/cp/admin`, and when that route does not
    /// exist (a 404 that is not the control plane's error body) `/api/v1/admin`, found with
    /// a GET before anything is sent that changes state.
    pub cp_admin_prefix: Option<String>,
    /// CP admin token (`CP_ADMIN_API_TOKEN`).
    pub cp_admin_token: Option<Secret>,
    /// Tenant API base URL (`MOLECULE_API_URL`), used to look up a workspace's provider.
    pub api_url: Option<String>,
    /// Tenant API key (`MOLECULE_ORG_API_KEY`).
    pub org_api_key: Option<Secret>,
    /// HTTP settings.
    pub http: HttpOptions,
}

/// The default CP admin API base URL.
pub const DEFAULT_MOLECULE_CP_URL: &str = "https://api.moleculesai.app";

impl Default for MoleculeConfig {
    fn default() -> Self {
        MoleculeConfig {
            cp_url: DEFAULT_MOLECULE_CP_URL.to_string(),
            cp_admin_prefix: None,
            cp_admin_token: None,
            api_url: None,
            org_api_key: None,
            http: HttpOptions::default(),
        }
    }
}

impl MoleculeConfig {
    /// Reads `MOLECULE_CP_URL` (else `CP_API_URL`), `MOLECULE_CP_ADMIN_PREFIX`,
    /// `CP_ADMIN_API_TOKEN`, `MOLECULE_API_URL`, `MOLECULE_ORG_API_KEY`.
    pub fn from_env() -> Self {
        MoleculeConfig {
            cp_url: Self::cp_url_from_env().unwrap_or_else(|| DEFAULT_MOLECULE_CP_URL.to_string()),
            cp_admin_prefix: env(CP_ADMIN_PREFIX_VAR),
            cp_admin_token: env("CP_ADMIN_API_TOKEN").map(Secret::new),
            api_url: env("MOLECULE_API_URL"),
            org_api_key: env("MOLECULE_ORG_API_KEY").map(Secret::new),
            http: HttpOptions::default(),
        }
    }

    /// The CP admin API base URL from the environment: `MOLECULE_CP_URL`, else `CP_API_URL`
    /// (the name the platform's own management server reads, so that its users keep their
    /// environment).
    pub fn cp_url_from_env() -> Option<String> {
        env("MOLECULE_CP_URL").or_else(|| env("CP_API_URL"))
    }
}

/// The variable that sets [`MoleculeConfig::cp_admin_prefix`].
pub const CP_ADMIN_PREFIX_VAR: &str = "MOLECULE_CP_ADMIN_PREFIX";

/// Where Coder is and how to authenticate.
#[derive(Debug, Clone, Default)]
pub struct CoderConfig {
    /// Deployment URL (`CODER_URL`), without `/api/v2`.
    pub url: Option<String>,
    /// Session token (`CODER_SESSION_TOKEN`).
    pub session_token: Option<Secret>,
    /// HTTP settings.
    pub http: HttpOptions,
}

impl CoderConfig {
    /// Reads `CODER_URL` and `CODER_SESSION_TOKEN`.
    pub fn from_env() -> Self {
        CoderConfig {
            url: env("CODER_URL"),
            session_token: env("CODER_SESSION_TOKEN").map(Secret::new),
            http: HttpOptions::default(),
        }
    }
}

/// `FLEET_POLL_INTERVAL_MS`: the longest pause between two status reads while waiting for a
/// build or a migration, overriding the defaults (for tests and simulators). Unset, zero or
/// not a number: no override.
pub fn poll_interval_from_env() -> Option<Duration> {
    env("FLEET_POLL_INTERVAL_MS")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
