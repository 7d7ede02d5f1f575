//! The Molecule control plane: the CP admin API (provider migrations) and the tenant API
//! (a workspace's current provider).

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
};

use progenitor_client::ClientInfo;

mod many;
mod operations;
mod ops;
pub use many::{
    BatchEvent, MigrationBatch, MigrationBatchRun, MigrationPlan, MigrationPlans, MigrationResult,
    MigrationRollout, MigrationStarts, MigrationVerdict, PlanEvent, PlanVerdict, PlannedMigration,
    RolloutMigration, RolloutVerdict, StartResult,
};
mod routes;
pub use operations::{
    BatchRunOperation, FollowManyOperation, FollowOperation, MigrationRun, MigrationRunEvent,
    MigrationRunOperation, PlanManyOperation, RolloutOperation,
};
pub use ops::{
    DEFAULT_MIGRATION_TIMEOUT, FromSource, MIGRATION_TIMEOUT_RANGE, MigrateRequest, MigrationEvent,
    MigrationReport, StartedMigration, TOTAL_STEPS, WaitOptions, check_workspace_id,
};

use crate::{
    Error, MoleculeConfig, Result, Secret,
    http::{self, CallContext, ServerErrorBody},
};

/// The client generated from `openapi/molecule-cp.yaml`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unused_imports, dead_code)]
pub mod cp_api {
    include!(concat!(env!("OUT_DIR"), "/molecule_cp.rs"));
}

/// The client generated from `openapi/molecule-tenant.yaml`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unused_imports, dead_code)]
pub mod tenant_api {
    include!(concat!(env!("OUT_DIR"), "/molecule_tenant.rs"));
}

crate::open_enum! {
    /// A compute provider.
    pub enum Provider {
        /// Amazon Web Services.
        Aws = "aws",
        /// Hetzner Cloud.
        Hetzner = "hetzner",
        /// Google Cloud.
        Gcp = "gcp",
    }
}

crate::open_enum! {
    /// The state of a migration. A newer control plane may add states: they are kept.
    pub enum MigrationState {
        /// Taking a snapshot of the source.
        Snapshotting = "snapshotting",
        /// The snapshot is taken.
        Snapshotted = "snapshotted",
        /// Provisioning the workspace on the target cloud.
        ProvisioningTarget = "provisioning_target",
        /// The target is up and healthy.
        TargetHealthy = "target_healthy",
        /// Cut over; retiring the source.
        RetiringSource = "retiring_source",
        /// Done: the workspace runs on the target.
        Completed = "completed",
        /// Failed before cutover: the source is still running, nothing was lost.
        Failed = "failed",
        /// Failed after the target was provisioned: the target was torn down and the
        /// workspace points at the source again.
        RolledBack = "rolled_back",
    }
}

impl MigrationState {
    /// The forward path of a migration, in order.
    pub const PATH: [MigrationState; 6] = [
        MigrationState::Snapshotting,
        MigrationState::Snapshotted,
        MigrationState::ProvisioningTarget,
        MigrationState::TargetHealthy,
        MigrationState::RetiringSource,
        MigrationState::Completed,
    ];

    /// Step k of [`MigrationState::PATH`] (1-based), for a state on the forward path.
    pub fn step(&self) -> Option<u32> {
        Self::PATH
            .iter()
            .position(|s| s == self)
            .map(|i| i as u32 + 1)
    }

    /// What the state means for the user, for the end states.
    pub fn meaning(&self) -> Option<&'static str> {
        match self {
            MigrationState::Completed => Some("the workspace now runs on the target cloud"),
            MigrationState::Failed => {
                Some("it failed before cutover: the source is still running and nothing was lost")
            }
            MigrationState::RolledBack => Some(
                "it failed after the target was provisioned: the target was torn down and the \
                 workspace points at the source again",
            ),
            _ => None,
        }
    }
}

/// One migration as the control plane reports it. Fields a newer control plane adds are
/// kept in `extra` and shown.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Migration {
    /// The state.
    pub state: MigrationState,
    /// Where the workspace is migrating from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_provider: Option<Provider>,
    /// Where the workspace is migrating to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_provider: Option<Provider>,
    /// What the control plane says about the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Any other field the control plane sent, as it came.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The CP-admin prefix of the platform's published contract (workspace-migration/v1): the
/// default, tried first.
pub const CP_ADMIN_PREFIX: &str = "/cp/admin";

/// The CP-admin prefix the platform's own management server calls: tried when the default
/// has no route (a 404 that is not the control plane's error body).
pub const API_V1_ADMIN_PREFIX: &str = "/api/v1/admin";

/// What picks the CP-admin route layout: the remedy of an error about the layout.
pub fn pick_cp_admin_layout() -> crate::Remedy {
    crate::Remedy::Configure {
        variable: "MOLECULE_CP_ADMIN_PREFIX".into(),
        values: Some(format!("{CP_ADMIN_PREFIX} or {API_V1_ADMIN_PREFIX}")),
    }
}

/// How the CP-admin route layout in use was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteChoice {
    /// Set by configuration (`MOLECULE_CP_ADMIN_PREFIX`).
    Configured,
    /// The contract's `/cp/admin`: a GET was answered there.
    Default,
    /// `/api/v1/admin`: the contract's `/cp/admin` answered a 404 without the control plane's
    /// error body (no such route), and a GET was answered here.
    Discovered,
    /// Not known yet: no GET has been answered on any layout.
    Unconfirmed,
}

/// The CP-admin route layout fleet uses (or would use) for a control plane.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct CpAdminRoute {
    /// The path prefix: `/cp/admin`, `/api/v1/admin`, or the configured one.
    pub prefix: String,
    /// The base the CP-admin paths are appended to (`MOLECULE_CP_URL` + prefix).
    pub base_url: String,
    /// How it was chosen.
    pub choice: RouteChoice,
}

/// One CP-admin route layout: its prefix and the generated client whose base carries it.
#[derive(Clone)]
struct CpRoute {
    prefix: String,
    client: cp_api::Client,
}

/// A configured client for the Molecule APIs.
#[derive(Clone)]
pub struct MoleculeClient {
    /// The candidate layouts, in the order they are tried: one when the prefix is configured,
    /// else the contract's and the management server's.
    routes: Arc<[CpRoute]>,
    /// True when the prefix was configured (no discovery).
    configured: bool,
    /// The index in `routes` of the layout a GET confirmed (shared by clones).
    confirmed: Arc<OnceLock<usize>>,
    /// Held while a first read looks for the layout, so that concurrent reads wait for it.
    discovering: Arc<tokio::sync::Mutex<()>>,
    tenant: Option<tenant_api::Client>,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for MoleculeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoleculeClient")
            .field("cp_url", &self.cp().baseurl())
            .field(
                "tenant_url",
                &self.tenant.as_ref().map(|t| t.baseurl().to_string()),
            )
            .finish_non_exhaustive()
    }
}

/// The variables that configure the CP admin API.
pub const CP_VARS: &[&str] = &["CP_ADMIN_API_TOKEN"];

/// Checks a configured CP-admin prefix and writes it as `/a/b` (`/` alone: no prefix).
fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim().trim_matches('/');
    let bad = |why: &str| {
        Error::advised(
            Error::InvalidInput(format!(
                "the CP-admin prefix {prefix:?} {why}: write a path like /cp/admin or /api/v1/admin"
            )),
            vec![pick_cp_admin_layout()],
        )
    };
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(bad("has an empty, '.' or '..' segment"));
        }
        if segment
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '%' | '\\'))
        {
            return Err(bad("has a character a path prefix cannot carry"));
        }
    }
    Ok(format!("/{trimmed}"))
}

impl MoleculeClient {
    /// Builds the clients. The CP admin token is required; the tenant API is optional (it is
    /// only used to look up a workspace's current provider).
    pub fn new(config: &MoleculeConfig) -> Result<Self> {
        let token = config
            .cp_admin_token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or(Error::NotConfigured {
                plane: "the Molecule CP admin API",
                vars: CP_VARS,
            })?;
        let cp_url =
            http::check_base_url("MOLECULE_CP_URL", &config.cp_url, config.http.insecure_http)?;
        let prefixes = match &config.cp_admin_prefix {
            Some(p) => vec![normalize_prefix(p)?],
            None => vec![CP_ADMIN_PREFIX.to_string(), API_V1_ADMIN_PREFIX.to_string()],
        };
        let cp_http = http::build_client(&cp_url, Some(http::bearer(&token)), &config.http)?;
        // Both layouts' clients share one connection pool, so one bound.
        let cp_calls = http::Calls::new(&config.http);
        let routes: Vec<CpRoute> = prefixes
            .into_iter()
            .map(|prefix| CpRoute {
                client: cp_api::Client::new_with_client(
                    &format!("{cp_url}{prefix}"),
                    cp_http.clone(),
                    cp_calls.clone(),
                ),
                prefix,
            })
            .collect();
        let mut secrets = vec![token];
        let tenant = match (&config.api_url, &config.org_api_key) {
            (Some(url), Some(key)) if !key.is_empty() => {
                let url = http::check_base_url("MOLECULE_API_URL", url, config.http.insecure_http)?;
                let client = http::build_client(&url, Some(http::bearer(key)), &config.http)?;
                secrets.push(key.clone());
                Some(tenant_api::Client::new_with_client(
                    &url,
                    client,
                    http::Calls::new(&config.http),
                ))
            }
            _ => None,
        };
        Ok(MoleculeClient {
            routes: routes.into(),
            configured: config.cp_admin_prefix.is_some(),
            confirmed: Arc::new(OnceLock::new()),
            discovering: Arc::new(tokio::sync::Mutex::new(())),
            tenant,
            secrets,
        })
    }

    /// The generated CP admin client of the layout in use: the confirmed one, else the
    /// configured one, else the contract's `/cp/admin`. Its base URL carries the prefix.
    pub fn cp(&self) -> &cp_api::Client {
        &self.routes[self.confirmed.get().copied().unwrap_or(0)].client
    }

    /// The CP-admin route layout in use, and how it was chosen.
    pub fn cp_admin_route(&self) -> CpAdminRoute {
        let index = self.confirmed.get().copied();
        let route = &self.routes[index.unwrap_or(0)];
        let choice = match (self.configured, index) {
            (true, _) => RouteChoice::Configured,
            (false, Some(0)) => RouteChoice::Default,
            (false, Some(_)) => RouteChoice::Discovered,
            (false, None) => RouteChoice::Unconfirmed,
        };
        CpAdminRoute {
            prefix: route.prefix.clone(),
            base_url: route.client.baseurl().to_string(),
            choice,
        }
    }

    /// The generated CP admin client a request that changes state may go to: the configured
    /// layout, or the one a GET confirmed. `None` before any GET confirmed one: fleet never
    /// sends a POST to a route it guessed.
    pub(crate) fn cp_for_post(&self) -> Option<&cp_api::Client> {
        if self.configured {
            return Some(&self.routes[0].client);
        }
        self.confirmed.get().map(|i| &self.routes[*i].client)
    }

    /// The generated tenant client, when `MOLECULE_API_URL` and `MOLECULE_ORG_API_KEY` are set.
    pub fn tenant(&self) -> Option<&tenant_api::Client> {
        self.tenant.as_ref()
    }

    /// Maps a failed CP admin call to an [`Error`], scrubbing every token.
    pub fn cp_error<E: ServerErrorBody>(
        &self,
        action: impl Into<String>,
        err: progenitor_client::Error<E>,
    ) -> Error {
        let secrets: Vec<&Secret> = self.secrets.iter().collect();
        http::map_error(
            err,
            &CallContext {
                action: action.into(),
                api: "the Molecule CP admin API",
                token_var: "CP_ADMIN_API_TOKEN",
                url_var: "MOLECULE_CP_URL",
                secrets: &secrets,
            },
        )
    }

    /// Maps a failed tenant call to an [`Error`], scrubbing every token.
    pub fn tenant_error<E: ServerErrorBody>(
        &self,
        action: impl Into<String>,
        err: progenitor_client::Error<E>,
    ) -> Error {
        let secrets: Vec<&Secret> = self.secrets.iter().collect();
        http::map_error(
            err,
            &CallContext {
                action: action.into(),
                api: "the Molecule tenant API",
                token_var: "MOLECULE_ORG_API_KEY",
                url_var: "MOLECULE_API_URL",
                secrets: &secrets,
            },
        )
    }
}

http::retrying_client!(cp_api::Client);

http::retrying_client!(tenant_api::Client);

impl ServerErrorBody for cp_api::types::ErrorBody {
    fn message(&self) -> String {
        http::server_words(self.error.as_deref(), self.detail.as_deref())
    }
}

impl ServerErrorBody for tenant_api::types::ErrorBody {
    fn message(&self) -> String {
        http::server_words(self.error.as_deref(), self.detail.as_deref())
    }
}
