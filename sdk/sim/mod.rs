//! An in-memory simulator of both control planes, served on loopback.
//!
//! It speaks the contracts in `openapi/` — the Molecule CP admin API, the Molecule tenant API
//! and the Coder subset — with the same status codes, error bodies and auth checks, so the
//! SDK, the CLI and the MCP server can be tried and tested without credentials.
//!
//! Where things are on the bound address `http://ADDR`:
//!
//! | API                | base URL (what to configure) | auth                                          |
//! |--------------------|------------------------------|-----------------------------------------------|
//! | Molecule CP admin  | `http://ADDR`                | `Authorization: Bearer sim-cp-admin-token`    |
//! | Molecule tenant    | `http://ADDR/tenant`         | `Authorization: Bearer sim-org-api-key`       |
//! | Coder              | `http://ADDR` (`/api/v2/…`)  | `Coder-Session-Token: sim-coder-session-token`|
//!
//! Choices where the contract is silent (close to the real servers, stated here):
//! - CP `POST …/migrate-provider` also answers 400 when `from` is not the workspace's current
//!   provider, and 403 to the tenant key (not an admin token).
//! - Coder build logs: `after`/`before` compare against the log `id` (what the real server
//!   does). With any `follow` parameter the answer is a WebSocket (one `ProvisionerJobLog` per
//!   message, closed when the job ends); without a WebSocket handshake it is 426.
//! - Coder `GET /api/v2/workspaces/{id}/watch-ws`: a WebSocket sending
//!   `{type: "data", data: <Workspace>}` on each change and `{type: "ping"}` every 5 s.
//! - Coder `GET /api/v2/buildinfo` (public) reports [`SimOptions::coder_version`]. From v2.36.0
//!   a stop build may carry `on_success`: 400 unless the build is a stop without `dry_run`,
//!   `orphan` or `state`, or when its transition is not `start`; 403 "Unauthorized to queue
//!   follow-up workspace build." when it pins a version and
//!   [`SimOptions::coder_can_pin_versions`] is false (checked when the stop is created:
//!   nothing is created). When the stop succeeds the start is created at that instant, as the
//!   workspace's next latest build with the build number + 2 (not + 1), on the pinned version
//!   or the template's active version at that time, with the listed parameters over the
//!   previous build's; a start the checks refuse is never created and the workspace stays
//!   stopped. An older version ignores `on_success` and only stops.
//! - Coder start builds carry one resource with one agent `main`: `connecting`/`created`
//!   while the build runs, `connected` and `starting` when it ends, `ready` after the
//!   template's startup-script time (1 s; `web`: 3 s), scaled by the speed and the
//!   workspace's slowness. The `web` template's versions break the agent on purpose (see
//!   `fleet sim --help`'s table): `start_error`, never connecting (`timeout` after 120 s), 20x slower,
//!   no startup script (ready at once), `has_external_agent`.
//! - Coder templates: `GET /api/v2/organizations/{org}/templates/{name}` takes the
//!   organization by ID, by name (`coder`) or as `default`; `…/versions/{name}/previous` is the
//!   version created just before (204 for the first). `PATCH /api/v2/templates/{id}/versions`
//!   `{"id"}` makes a version active and answers 200 `{message}`, checked in Coder's order:
//!   404 unknown version, 400 a version of another template, 403 not imported, 400 archived,
//!   then 403 "Forbidden." when [`SimOptions::coder_can_pin_versions`] is false (`me` is no
//!   template admin; `GET /users/me` lists the `template-admin` role otherwise). From then
//!   on the template's workspaces are `outdated` unless on that version, `on_success`
//!   children without a pinned version build it, and so does a start of a template that
//!   requires the active version. A plain start without a version builds the previous
//!   build's version, as Coder's API does (its `coder start` and autostart pass the active
//!   version themselves).
//! - Coder: a `stop` of a workspace that is already stopped answers 400 (validation on
//!   `transition`); a `start` with an older version on a template that requires the active
//!   version answers 403 "cannot use non-active version"; a `start` without a version builds
//!   the active version on such a template, the previous build's version otherwise.
//!
//! Time is simulated: every duration (a migration's steps, a build's phases) is divided by
//! [`SimOptions::speed`]. State is computed from the clock when it is read, so nothing runs
//! in the background and a simulator left alone costs nothing.
//!
//! ```no_run
//! # async fn demo() -> fleet::Result<()> {
//! use fleet::sim::{SimOptions, Simulator};
//! let sim = Simulator::start(SimOptions { speed: 100.0, ..SimOptions::default() }).await?;
//! let molecule = fleet::molecule::MoleculeClient::new(&sim.molecule_config())?;
//! let coder = fleet::coder::CoderClient::new(&sim.coder_config())?;
//! # let _ = (molecule, coder);
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

// Handlers answer early with a ready `Response` as the error: it is what axum serves.
#![allow(clippy::result_large_err)]

mod coder;
mod molecule;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{CoderConfig, Error, HttpOptions, MoleculeConfig, Result, Secret};

/// The CP admin token the simulator accepts (`CP_ADMIN_API_TOKEN`).
pub const CP_ADMIN_TOKEN: &str = "sim-cp-admin-token";
/// The tenant API key the simulator accepts (`MOLECULE_ORG_API_KEY`).
pub const ORG_API_KEY: &str = "sim-org-api-key";
/// The Coder session token the simulator accepts (`CODER_SESSION_TOKEN`).
pub const CODER_SESSION_TOKEN: &str = "sim-coder-session-token";
/// The path prefix of the Molecule tenant API (`MOLECULE_API_URL` = `http://ADDR/tenant`).
pub const TENANT_PREFIX: &str = "/tenant";

/// The most bulk workspaces [`SimOptions::bulk_workspaces`] seeds (per control plane).
pub const MAX_BULK_WORKSPACES: usize = 100_000;

/// The name of the `i`-th (1-based) bulk Coder workspace, owned by alice: `bulk-0001`.
pub fn bulk_coder_workspace(i: usize) -> String {
    coder::bulk_name(i)
}

/// The id of the `i`-th (1-based) bulk Molecule workspace: `ws-bulk-0001`.
pub fn bulk_molecule_workspace(i: usize) -> String {
    molecule::bulk_id(i)
}

/// What the simulator does wrong on purpose, beyond the seeded workspaces that fail.
#[derive(Debug, Clone)]
pub struct SimFaults {
    /// The first N reads of `ws-flaky` (Molecule) and of `alice/flaky` (Coder) answer 503.
    pub flaky_gets: u32,
    /// Every Nth GET to any API answers 503 (none when `None`).
    pub every_nth_get_503: Option<u32>,
    /// The CP answers `POST …/migrate-provider` with 503 "migrator not configured".
    pub migrator_unconfigured: bool,
    /// Coder workspaces (`owner/name`) whose every start build fails, whatever the version
    /// (the job ends `failed` with [`WORKSPACE_START_FAULT`]): a good version that still fails
    /// on some workspaces, to exercise failure budgets. A name the simulator does not seed
    /// is refused when it starts.
    pub coder_start_fails: Vec<String>,
}

/// The job error of a start on a workspace named in [`SimFaults::coder_start_fails`].
pub const WORKSPACE_START_FAULT: &str =
    "creating container: no space left on device (this workspace's node; sim fault)";

impl Default for SimFaults {
    fn default() -> Self {
        SimFaults {
            flaky_gets: 2,
            every_nth_get_503: None,
            migrator_unconfigured: false,
            coder_start_fails: Vec::new(),
        }
    }
}

/// Which CP-admin route layouts the simulated control plane serves. Two are in the wild:
/// `/cp/admin/…` (the published contract) and `/api/v1/admin/…` (what the platform's
/// management server calls). A layout not served answers like a router: `404 page not found`
/// in plain text, not the control plane's JSON error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpAdminLayout {
    /// Only `/cp/admin/workspaces/{id}/…`.
    CpAdmin,
    /// Only `/api/v1/admin/workspaces/{id}/…`.
    ApiV1,
    /// Both (the default).
    #[default]
    Both,
    /// Neither: every CP-admin route answers 404 (to try what fleet says then).
    None,
}

impl CpAdminLayout {
    /// The prefixes served.
    pub fn prefixes(self) -> &'static [&'static str] {
        use crate::molecule::{API_V1_ADMIN_PREFIX, CP_ADMIN_PREFIX};
        match self {
            CpAdminLayout::CpAdmin => &[CP_ADMIN_PREFIX],
            CpAdminLayout::ApiV1 => &[API_V1_ADMIN_PREFIX],
            CpAdminLayout::Both => &[CP_ADMIN_PREFIX, API_V1_ADMIN_PREFIX],
            CpAdminLayout::None => &[],
        }
    }

    /// Parses `cp-admin`, `api-v1`, `both` or `none`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "cp-admin" => Ok(CpAdminLayout::CpAdmin),
            "api-v1" => Ok(CpAdminLayout::ApiV1),
            "both" => Ok(CpAdminLayout::Both),
            "none" => Ok(CpAdminLayout::None),
            other => Err(Error::InvalidInput(format!(
                "{other:?} is not a CP-admin layout: use cp-admin, api-v1, both or none"
            ))),
        }
    }
}

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// How much faster than real time: 1 is realistic (a migration takes ~16 minutes), 100
    /// turns minutes into seconds. Must be a positive number.
    pub speed: f64,
    /// Faults on demand.
    pub faults: SimFaults,
    /// Extra workspaces for fleet-scale runs (benchmarks): N outdated Coder workspaces
    /// `alice/bulk-0001`… (docker-dev v2, running) and N Molecule workspaces
    /// `ws-bulk-0001`… (on aws, migrating normally). Default 0.
    pub bulk_workspaces: usize,
    /// The version Coder's `GET /api/v2/buildinfo` reports. From v2.36.0 on (and for a
    /// `v0.0.0-devel` build) a stop build's `on_success` is honoured; an older version ignores
    /// it and only stops. Default [`DEFAULT_CODER_VERSION`].
    pub coder_version: String,
    /// The Coder session may update templates (`me` is a template admin): it may pin the
    /// version of an `on_success` follow-up build and make a version active
    /// (`PATCH /templates/{id}/versions`); without it both answer 403 and nothing changes.
    /// Default true.
    pub coder_can_pin_versions: bool,
    /// Cut every WebSocket (build logs, watch-ws) after this many messages, without a close
    /// frame, to exercise reconnects and fallbacks. Default `None`.
    pub ws_drop_after: Option<u32>,
    /// A hostile build log: while a build runs, its live log stream also sends lines of this
    /// many bytes, as fast as the client reads them (to measure what a client holds).
    /// Default `None`.
    pub log_flood_bytes: Option<usize>,
    /// The CP-admin route layouts served. Default both.
    pub cp_admin_layout: CpAdminLayout,
}

/// The Coder version the simulator reports unless told otherwise.
pub const DEFAULT_CODER_VERSION: &str = "v2.36.1+sim";

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            speed: 1.0,
            faults: SimFaults::default(),
            bulk_workspaces: 0,
            coder_version: DEFAULT_CODER_VERSION.to_string(),
            coder_can_pin_versions: true,
            ws_drop_after: None,
            log_flood_bytes: None,
            cp_admin_layout: CpAdminLayout::default(),
        }
    }
}

/// The tokens a simulator accepts.
#[derive(Debug, Clone)]
pub struct SimTokens {
    /// `CP_ADMIN_API_TOKEN`.
    pub cp_admin_token: Secret,
    /// `MOLECULE_ORG_API_KEY`.
    pub org_api_key: Secret,
    /// `CODER_SESSION_TOKEN`.
    pub coder_session_token: Secret,
}

/// One request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Binds, seeds the data and serves until the returned [`RunningSim`] is shut down or
    /// dropped. Must be called inside a Tokio runtime.
    pub async fn start(options: SimOptions) -> Result<RunningSim> {
        if options.bulk_workspaces > MAX_BULK_WORKSPACES {
            return Err(Error::InvalidInput(format!(
                "the simulator seeds at most {MAX_BULK_WORKSPACES} bulk workspaces, not {}",
                options.bulk_workspaces
            )));
        }
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(Error::InvalidInput(format!(
                "the simulator speed must be a positive number, not {}",
                options.speed
            )));
        }
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| {
                Error::Transport(format!(
                    "the simulator cannot listen on {}: {e}",
                    options.listen
                ))
            })?;
        let addr = listener.local_addr().map_err(|e| {
            Error::Transport(format!("the simulator's listening address is unknown: {e}"))
        })?;
        let clock = Clock {
            start: Instant::now(),
            start_wall: Utc::now(),
            speed: options.speed,
        };
        let mut coder_world = coder::seed(
            &clock,
            &options.faults,
            options.bulk_workspaces,
            coder::CoderSettings {
                version: options.coder_version.clone(),
                can_pin: options.coder_can_pin_versions,
                ws_drop_after: options.ws_drop_after,
                log_flood_bytes: options.log_flood_bytes,
            },
        );
        coder_world.fail_starts_of(&options.faults.coder_start_fails)?;
        let state = Arc::new(SimState {
            molecule: Mutex::new(molecule::seed(
                &clock,
                &options.faults,
                options.bulk_workspaces,
            )),
            coder: Mutex::new(coder_world),
            log: Mutex::new(Vec::new()),
            gets: Mutex::new(0),
            clock,
            faults: options.faults.clone(),
        });
        let router = Router::new()
            .merge(molecule::routes(options.cp_admin_layout))
            .merge(coder::routes())
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(state.clone(), gatekeeper))
            .with_state(state.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        tracing::info!(%addr, speed = options.speed, "simulator listening");
        Ok(RunningSim {
            addr,
            tokens: SimTokens {
                cp_admin_token: Secret::new(CP_ADMIN_TOKEN),
                org_api_key: Secret::new(ORG_API_KEY),
                coder_session_token: Secret::new(CODER_SESSION_TOKEN),
            },
            state,
            shutdown,
            task: Some(task),
        })
    }
}

/// A simulator that is serving. Dropping it stops the server.
pub struct RunningSim {
    addr: SocketAddr,
    tokens: SimTokens,
    state: Arc<SimState>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("addr", &self.addr)
            .field("speed", &self.state.clock.speed)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CP admin API base URL (`MOLECULE_CP_URL`).
    pub fn cp_url(&self) -> String {
        self.base_url()
    }

    /// The tenant API base URL (`MOLECULE_API_URL`).
    pub fn tenant_url(&self) -> String {
        format!("{}{TENANT_PREFIX}", self.base_url())
    }

    /// The Coder deployment URL (`CODER_URL`).
    pub fn coder_url(&self) -> String {
        self.base_url()
    }

    /// The tokens it accepts.
    pub fn tokens(&self) -> &SimTokens {
        &self.tokens
    }

    /// The speed factor.
    pub fn speed(&self) -> f64 {
        self.state.clock.speed
    }

    /// The longest pause between two status reads that still sees every state this simulator
    /// walks through: 5 s of real time scaled by the speed, never less than 50 ms.
    pub fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64((5.0 / self.speed()).clamp(0.05, 5.0))
    }

    /// A Molecule configuration (CP admin and tenant) pointing at the simulator.
    pub fn molecule_config(&self) -> MoleculeConfig {
        MoleculeConfig {
            cp_url: self.cp_url(),
            cp_admin_prefix: None,
            cp_admin_token: Some(self.tokens.cp_admin_token.clone()),
            api_url: Some(self.tenant_url()),
            org_api_key: Some(self.tokens.org_api_key.clone()),
            http: HttpOptions::default(),
        }
    }

    /// A Coder configuration pointing at the simulator.
    pub fn coder_config(&self) -> CoderConfig {
        CoderConfig {
            url: Some(self.coder_url()),
            session_token: Some(self.tokens.coder_session_token.clone()),
            http: HttpOptions::default(),
        }
    }

    /// The environment variables that point `fleet` and `fleet-mcp` at the simulator, tokens
    /// included (they are the simulator's own, public, test tokens).
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MOLECULE_CP_URL", self.cp_url()),
            ("CP_ADMIN_API_TOKEN", CP_ADMIN_TOKEN.to_string()),
            ("MOLECULE_API_URL", self.tenant_url()),
            ("MOLECULE_ORG_API_KEY", ORG_API_KEY.to_string()),
            ("CODER_URL", self.coder_url()),
            ("CODER_SESSION_TOKEN", CODER_SESSION_TOKEN.to_string()),
        ]
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state.log).clone()
    }

    /// How many requests had this method and exactly this path.
    pub fn count_requests(&self, method: &str, path: &str) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .count()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
    }

    /// The Coder id of a seeded workspace, by `owner/name` (e.g. `alice/dev`).
    pub fn coder_workspace_id(&self, owner_and_name: &str) -> Option<uuid::Uuid> {
        let (owner, name) = owner_and_name.split_once('/')?;
        lock(&self.state.coder).workspace_id(owner, name)
    }

    /// The Coder id of a template version, by template and version name (e.g. `docker-dev`, `v3`).
    pub fn coder_version_id(&self, template: &str, version: &str) -> Option<uuid::Uuid> {
        lock(&self.state.coder).version_id(template, version)
    }

    /// Makes `version` the active version of Coder template `template` (by names, e.g.
    /// `docker-dev`, `v2`): what a template admin does while fleet runs. False when either is
    /// unknown.
    pub fn set_coder_active_version(&self, template: &str, version: &str) -> bool {
        lock(&self.state.coder).set_active_version(template, version)
    }

    /// Gives a seeded Coder workspace (`owner/name`) another name, taken as it is (no check:
    /// what a hostile or careless server could answer); with `hide_owner`, its owner's name is
    /// left out of its JSON from then on, so that clients know it by the bare name. Find it by
    /// its id afterwards. False when it is unknown.
    pub fn rename_coder_workspace(
        &self,
        owner_and_name: &str,
        new_name: &str,
        hide_owner: bool,
    ) -> bool {
        let Some((owner, name)) = owner_and_name.split_once('/') else {
            return false;
        };
        lock(&self.state.coder).rename_workspace(owner, name, new_name, hide_owner)
    }

    /// The builds of a seeded Coder workspace (`owner/name`), oldest first, as
    /// `(transition, version name)`: what a test checks to see whether a rollout touched it.
    pub fn coder_build_history(&self, owner_and_name: &str) -> Vec<(String, String)> {
        let Some((owner, name)) = owner_and_name.split_once('/') else {
            return Vec::new();
        };
        lock(&self.state.coder).build_history(owner, name)
    }

    /// The most Coder builds that were active (pending or running) at once so far.
    pub fn coder_max_active_builds(&self) -> usize {
        lock(&self.state.coder).max_active_builds
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Simulated time: seconds since the simulator started, scaled by the speed.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    start: Instant,
    start_wall: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    /// Simulated seconds since the start.
    pub(crate) fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.speed
    }

    /// The wall-clock time at which simulated time `t` happens (or happened).
    pub(crate) fn wall(&self, t: f64) -> DateTime<Utc> {
        let real_ms = (t / self.speed * 1000.0).round();
        let real_ms = if real_ms.is_finite() {
            real_ms.clamp(-1e15, 1e15) as i64
        } else {
            0
        };
        self.start_wall + chrono::Duration::milliseconds(real_ms)
    }

    /// RFC 3339 text of [`Clock::wall`].
    pub(crate) fn stamp(&self, t: f64) -> String {
        self.wall(t)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

pub(crate) struct SimState {
    molecule: Mutex<molecule::MoleculeWorld>,
    coder: Mutex<coder::CoderWorld>,
    log: Mutex<Vec<RequestRecord>>,
    gets: Mutex<u64>,
    clock: Clock,
    faults: SimFaults,
}

pub(crate) type Shared = Arc<SimState>;

/// A poisoned lock still holds usable data: a panic in one handler must not take the
/// simulator down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which API a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plane {
    Cp,
    Tenant,
    Coder,
    Unknown,
}

fn plane(path: &str) -> Plane {
    if path.starts_with("/cp/") || path.starts_with("/api/v1/admin/") {
        Plane::Cp
    } else if path == TENANT_PREFIX || path.starts_with("/tenant/") {
        Plane::Tenant
    } else if path.starts_with("/api/") {
        Plane::Coder
    } else {
        Plane::Unknown
    }
}

/// A Molecule error body `{"error", "detail"?}`.
pub(crate) fn molecule_error(status: StatusCode, error: &str, detail: Option<&str>) -> Response {
    let mut body = json!({ "error": error });
    if let Some(d) = detail {
        body["detail"] = json!(d);
    }
    json_response(status, body)
}

/// A Coder error body `{"message", "detail"?, "validations"?}`.
pub(crate) fn coder_error(status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    let mut body = json!({ "message": message });
    if let Some(d) = detail {
        body["detail"] = json!(d);
    }
    json_response(status, body)
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error_for(plane: Plane, status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    match plane {
        Plane::Coder => coder_error(status, message, detail),
        _ => molecule_error(status, message, detail),
    }
}

async fn not_found(req: Request) -> Response {
    let path = req.uri().path().to_string();
    if plane(&path) == Plane::Cp {
        // The control plane's router: a plain-text page, not its JSON error body.
        return (
            StatusCode::NOT_FOUND,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            "404 page not found\n",
        )
            .into_response();
    }
    error_for(
        plane(&path),
        StatusCode::NOT_FOUND,
        "not found",
        Some(&format!(
            "the simulator serves no route {} {path}",
            req.method()
        )),
    )
}

/// Checks the token for the path's API, applies the every-Nth-GET fault, and records the
/// request and its answer.
async fn gatekeeper(State(state): State<Shared>, req: Request<Body>, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let which = plane(&path);
    // Coder's build info is public (clients read it before they log in).
    let public = path == "/api/v2/buildinfo";
    let response = match check_auth(which, req.headers())
        .or_else(|denied| if public { Ok(()) } else { Err(denied) })
    {
        Err(denied) => denied,
        Ok(()) => {
            let inject = method == Method::GET
                && state.faults.every_nth_get_503.is_some_and(|n| {
                    let mut gets = lock(&state.gets);
                    *gets += 1;
                    n > 0 && *gets % u64::from(n) == 0
                });
            if inject {
                error_for(
                    which,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service temporarily unavailable",
                    Some("simulated fault: every Nth GET answers 503; try again"),
                )
            } else {
                next.run(req).await
            }
        }
    };
    lock(&state.log).push(RequestRecord {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

fn check_auth(which: Plane, headers: &HeaderMap) -> std::result::Result<(), Response> {
    let bearer = || {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
    };
    match which {
        Plane::Cp => match bearer() {
            None => Err(molecule_error(
                StatusCode::UNAUTHORIZED,
                "missing admin token",
                Some("send Authorization: Bearer <CP_ADMIN_API_TOKEN>"),
            )),
            Some(CP_ADMIN_TOKEN) => Ok(()),
            Some(ORG_API_KEY) => Err(molecule_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                Some("an organization API key cannot use the admin API"),
            )),
            Some(_) => Err(molecule_error(
                StatusCode::UNAUTHORIZED,
                "invalid admin token",
                None,
            )),
        },
        Plane::Tenant => match bearer() {
            None => Err(molecule_error(
                StatusCode::UNAUTHORIZED,
                "missing API key",
                Some("send Authorization: Bearer <MOLECULE_ORG_API_KEY>"),
            )),
            Some(ORG_API_KEY) => Ok(()),
            Some(_) => Err(molecule_error(
                StatusCode::UNAUTHORIZED,
                "invalid API key",
                None,
            )),
        },
        Plane::Coder => match headers
            .get("coder-session-token")
            .and_then(|v| v.to_str().ok())
        {
            None => Err(coder_error(
                StatusCode::UNAUTHORIZED,
                "You must be logged in to use this endpoint.",
                Some("Coder-Session-Token header is missing"),
            )),
            Some(CODER_SESSION_TOKEN) => Ok(()),
            Some(_) => Err(coder_error(
                StatusCode::UNAUTHORIZED,
                "You are signed out or your session has expired. Please sign in again to continue.",
                Some("the session token is invalid"),
            )),
        },
        Plane::Unknown => Ok(()),
    }
}

/// A transient 503 for a flaky resource, counted down per resource.
pub(crate) fn take_flaky(left: &mut u32) -> bool {
    if *left > 0 {
        *left -= 1;
        true
    } else {
        false
    }
}
