//! The Molecule control plane: the CP admin API (provider migrations) and the tenant API
//! (a workspace's current provider).

use std::collections::BTreeMap;

use progenitor_client::ClientInfo;

mod many;
mod operations;
mod ops;
pub use many::{
    BatchEvent, MigrationBatch, MigrationPlan, MigrationResult, MigrationStarts, MigrationVerdict,
    StartResult, worst_exit_code,
};
pub use operations::FollowOperation;
pub use ops::{
    FromSource, MigrateRequest, MigrationEvent, MigrationReport, StartedMigration, TOTAL_STEPS,
    WaitOptions,
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

/// A configured client for the Molecule APIs.
#[derive(Clone)]
pub struct MoleculeClient {
    cp: cp_api::Client,
    tenant: Option<tenant_api::Client>,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for MoleculeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoleculeClient")
            .field("cp_url", &self.cp.baseurl())
            .field(
                "tenant_url",
                &self.tenant.as_ref().map(|t| t.baseurl().to_string()),
            )
            .finish_non_exhaustive()
    }
}

/// The variables that configure the CP admin API.
pub const CP_VARS: &[&str] = &["CP_ADMIN_API_TOKEN"];

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
                flag: Some("--cp-admin-token-file"),
            })?;
        let cp_url =
            http::check_base_url("MOLECULE_CP_URL", &config.cp_url, config.http.insecure_http)?;
        let cp_http = http::build_client(Some(http::bearer(&token)), &config.http)?;
        let cp = cp_api::Client::new_with_client(&cp_url, cp_http, config.http.retry.clone());
        let mut secrets = vec![token];
        let tenant = match (&config.api_url, &config.org_api_key) {
            (Some(url), Some(key)) if !key.is_empty() => {
                let url = http::check_base_url("MOLECULE_API_URL", url, config.http.insecure_http)?;
                let client = http::build_client(Some(http::bearer(key)), &config.http)?;
                secrets.push(key.clone());
                Some(tenant_api::Client::new_with_client(
                    &url,
                    client,
                    config.http.retry.clone(),
                ))
            }
            _ => None,
        };
        Ok(MoleculeClient {
            cp,
            tenant,
            secrets,
        })
    }

    /// The generated CP admin client.
    pub fn cp(&self) -> &cp_api::Client {
        &self.cp
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
