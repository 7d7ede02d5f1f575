//! Provider migrations: start one ([`MoleculeClient::migrate_provider`]), read the latest
//! ([`MoleculeClient::migration_status`]) and follow one to its end
//! ([`MoleculeClient::start_follow_migration`]).
//!
//! Every rule lives here once; the CLI and the MCP server only render what comes back.

use std::{
    collections::BTreeMap,
    ops::RangeInclusive,
    time::{Duration, Instant},
};

use progenitor_client::ClientInfo;

use super::{
    Migration, MigrationState, MoleculeClient, Provider, cp_api, pick_cp_admin_layout,
    routes::{StatusAnswer, has_cp_error_body},
};
use crate::{
    Error, Input, ReadBack, Remedy, Result,
    operation::{Aftermath, Control, FollowStep},
    poll::{PollOptions, Polled, Poller},
};

/// The number of steps on the forward path (`snapshotting` … `completed`).
pub const TOTAL_STEPS: u32 = MigrationState::PATH.len() as u32;

/// What to start: a migration of `workspace_id` from `from` (looked up when `None`) to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrateRequest {
    /// The workspace.
    pub workspace_id: String,
    /// The target provider.
    pub to: Provider,
    /// The source provider; `None` reads it from the tenant API.
    pub from: Option<Provider>,
    /// The source instance id; required when the source is not aws.
    pub from_instance_id: Option<String>,
    /// Must be true: a migration mutates two clouds.
    pub confirm: bool,
    /// The workspace's organization, sent as `org_id` when given.
    pub org_id: Option<String>,
    /// The runtime for the target, sent as `runtime` when given.
    pub runtime: Option<String>,
    /// Environment variables for the target (name → value), sent as `env` when not empty.
    pub env: BTreeMap<String, String>,
    /// The image for the target, sent as `image` when given.
    pub image: Option<String>,
}

impl MigrateRequest {
    /// A request to migrate `workspace_id` to `to`, from the provider the tenant API reports,
    /// not yet confirmed.
    pub fn new(workspace_id: impl Into<String>, to: Provider) -> Self {
        MigrateRequest {
            workspace_id: workspace_id.into(),
            to,
            from: None,
            from_instance_id: None,
            confirm: false,
            org_id: None,
            runtime: None,
            env: BTreeMap::new(),
            image: None,
        }
    }

    /// Checks every rule that does not need a server, except `confirm` (so that a CLI can
    /// check the input before asking a person to confirm). Sends nothing.
    pub fn check(&self) -> Result<()> {
        check_workspace_id(&self.workspace_id)?;
        check_known("to", &self.to)?;
        if let Some(from) = &self.from {
            check_known("from", from)?;
            // The source instance id of a source that is not aws may still come from the
            // tenant API: that rule is checked by the client, which knows whether it can.
            check_differs(from, &self.to, "")?;
        }
        if self
            .from_instance_id
            .as_deref()
            .is_some_and(|i| i.trim().is_empty())
        {
            return Err(Error::InvalidInput(
                "the source instance id is empty: leave it out (fleet reads it from the tenant \
                 API when it needs one) or give one; nothing was sent"
                    .into(),
            ));
        }
        if let Some(i) = &self.from_instance_id {
            check_text("the source instance id", i)?;
        }
        for (field, value) in [
            ("org_id", &self.org_id),
            ("runtime", &self.runtime),
            ("image", &self.image),
        ] {
            if let Some(v) = value {
                check_text(field, v)?;
            }
        }
        for (name, value) in &self.env {
            check_env(name, value)?;
        }
        Ok(())
    }

    /// Checks every rule that does not need a server, `confirm` included. Sends nothing.
    pub fn validate(&self) -> Result<()> {
        self.check()?;
        if !self.confirm {
            return Err(Error::advised(
                Error::InvalidInput(format!(
                    "a migration of workspace {} needs explicit confirmation: it snapshots the \
                     workspace, provisions it on {}, cuts over and retires the source (it \
                     mutates two clouds and takes 15–20 minutes). Nothing was sent",
                    self.workspace_id.trim(),
                    self.to
                )),
                vec![Remedy::Give {
                    input: Input::Confirm,
                    value: None,
                }],
            ));
        }
        Ok(())
    }

    /// The optional fields as they are sent (trimmed; `None` when not given).
    pub(super) fn optional_fields(&self) -> (Option<String>, Option<String>, Option<String>) {
        let t = |v: &Option<String>| v.as_deref().map(|s| s.trim().to_string());
        (t(&self.org_id), t(&self.runtime), t(&self.image))
    }

    pub(super) fn instance_id(&self) -> Option<&str> {
        self.from_instance_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// Checks a workspace id before it goes into a URL: not empty, not a dot segment, no `/`, `\`,
/// `%` or control character. [`Error::InvalidInput`] (nothing sent) otherwise.
pub fn check_workspace_id(id: &str) -> Result<()> {
    let id = id.trim();
    if id.is_empty() {
        return Err(Error::InvalidInput(
            "the workspace id is empty; nothing was sent".into(),
        ));
    }
    // A `.` or `..` segment is normalised away by the URL parser (and `%2e` is read as a dot,
    // `\` as a `/`): the request would reach another endpoint with the admin token.
    if id == "." || id == ".." {
        return Err(Error::InvalidInput(format!(
            "the workspace id {id:?} is a dot segment: it would be dropped from the URL and the \
             request would reach another endpoint; give the workspace's id. Nothing was sent"
        )));
    }
    if id
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | '%'))
    {
        return Err(Error::InvalidInput(format!(
            "the workspace id {id:?} has a '/', '\\', '%' or a control character, which would \
             change the URL's path; give the workspace's id. Nothing was sent"
        )));
    }
    Ok(())
}

/// An optional text field: not blank, no control characters.
fn check_text(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::InvalidInput(format!(
            "{field} is empty: leave it out, or give a value; nothing was sent"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "{field} {value:?} has a control character; nothing was sent"
        )));
    }
    Ok(())
}

/// One `env` entry: the name of an environment variable (letters, digits, `_`, not starting
/// with a digit) and a value without NUL.
fn check_env(name: &str, value: &str) -> Result<()> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(Error::advised(
            Error::InvalidInput(format!(
                "env name {name:?} is not an environment variable name: use letters, digits and \
                 '_', not starting with a digit; nothing was sent"
            )),
            vec![Remedy::Give {
                input: Input::Env,
                value: None,
            }],
        ));
    }
    if value.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "the value of env {name} has a NUL character; nothing was sent"
        )));
    }
    Ok(())
}

fn check_known(field: &str, provider: &Provider) -> Result<()> {
    if provider.is_unknown() {
        return Err(Error::InvalidInput(format!(
            "{field} {:?} is not a provider fleet can migrate with: use one of {}; nothing was sent",
            provider.as_str(),
            Provider::KNOWN.join(", ")
        )));
    }
    Ok(())
}

/// A migration moves a workspace to another provider.
fn check_differs(from: &Provider, to: &Provider, how: &str) -> Result<()> {
    if from == to {
        return Err(Error::InvalidInput(format!(
            "from and to are both {to}{how}: a migration moves a workspace to another \
             provider; nothing was sent"
        )));
    }
    Ok(())
}

/// The rules tying the source to the target. `how` says where `from` came from, for messages.
/// `why` says why fleet has no instance id (what it read, or that it could not read it).
fn check_source(
    from: &Provider,
    to: &Provider,
    instance_id: Option<&str>,
    how: &str,
    why: &str,
) -> Result<()> {
    check_differs(from, to, how)?;
    if *from != Provider::Aws && instance_id.is_none() {
        return Err(Error::advised(
            Error::InvalidInput(format!(
                "the source provider is {from}{how}: the control plane needs the source instance \
                 id for a {from} source, and {why}; nothing was sent"
            )),
            vec![Remedy::Give {
                input: Input::FromInstanceId,
                value: None,
            }],
        ));
    }
    Ok(())
}

/// What the tenant API reports about a workspace.
#[derive(Debug, Clone, Default)]
pub(super) struct TenantFacts {
    /// `compute.provider` (older servers: `provider`, `compute_provider`).
    pub(super) provider: Option<Provider>,
    /// `compute.instance_id`.
    pub(super) instance_id: Option<String>,
}

/// The source of a migration, resolved: the provider and the source instance id, and where
/// each came from.
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub(super) from: Provider,
    pub(super) from_source: FromSource,
    pub(super) instance_id: Option<String>,
    pub(super) instance_source: Option<FromSource>,
}

/// The tenant API answered for the workspace but named no provider.
fn no_provider_reported(workspace_id: &str) -> Error {
    Error::advised(
        Error::Refused(format!(
            "the tenant API reports no provider for workspace {workspace_id} (none at \
             compute.provider, provider or compute_provider); nothing was changed"
        )),
        vec![Remedy::Give {
            input: Input::From,
            value: None,
        }],
    )
}

/// Whether `from` was given by the caller or read from the tenant API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FromSource {
    /// The caller gave it.
    Given,
    /// fleet read it from the tenant API (`GET /workspaces/{id}`).
    LookedUp,
}

/// The control plane accepted the migration (202).
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct StartedMigration {
    /// The workspace.
    pub workspace_id: String,
    /// The source provider.
    pub from: Provider,
    /// Whether `from` was given or looked up through the tenant API.
    pub from_source: FromSource,
    /// The target provider.
    pub to: Provider,
    /// The source instance id sent (`from_instance_id`), when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_instance_id: Option<String>,
    /// Whether `from_instance_id` was given or read from the tenant API
    /// (`compute.instance_id`), when one was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_instance_id_source: Option<FromSource>,
    /// The control plane's status word (`migration_started`).
    pub status: String,
    /// A note from the control plane, if any, without what it says about polling the
    /// migration-status endpoint (fleet follows a migration itself: each face says how).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The latest migration of a workspace, or the answer that it was never migrated.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct MigrationReport {
    /// The workspace.
    pub workspace_id: String,
    /// False when the workspace has never been migrated (the control plane answered 404).
    pub migrated: bool,
    /// The latest migration, as the control plane reports it (unknown fields kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
    /// True when the migration has ended (the control plane's word, authoritative).
    pub terminal: bool,
    /// Step k of `total_steps` when the state is on the forward path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The number of steps on the forward path.
    pub total_steps: u32,
    /// What an end state means for the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
    /// One sentence for people.
    pub message: String,
}

impl MigrationReport {
    fn never_migrated(workspace_id: &str, server_said: &str) -> Self {
        MigrationReport {
            workspace_id: workspace_id.to_string(),
            migrated: false,
            migration: None,
            terminal: false,
            step: None,
            total_steps: TOTAL_STEPS,
            meaning: None,
            message: format!(
                "workspace {workspace_id} has never been migrated (the control plane has no \
                 migration for it: {server_said})"
            ),
        }
    }

    fn from_status(workspace_id: &str, status: cp_api::types::MigrationStatus) -> Self {
        let m = status.migration;
        let step = m.state.step();
        let meaning = if status.terminal {
            m.state.meaning().map(str::to_string)
        } else {
            None
        };
        let route = match (&m.from_provider, &m.to_provider) {
            (Some(f), Some(t)) => format!(" from {f} to {t}"),
            (None, Some(t)) => format!(" to {t}"),
            _ => String::new(),
        };
        let mut message = format!(
            "migration of workspace {workspace_id}{route}: {}",
            describe_state(&m.state, step)
        );
        match (&meaning, status.terminal) {
            (Some(meaning), _) => message.push_str(&format!(" — {meaning}")),
            (None, true) => message.push_str(" (ended)"),
            (None, false) => message.push_str(" (in progress)"),
        }
        if let Some(detail) = m.detail.as_deref().filter(|d| !d.trim().is_empty()) {
            message.push_str(&format!(". Detail: {detail}"));
        }
        MigrationReport {
            workspace_id: workspace_id.to_string(),
            migrated: true,
            terminal: status.terminal,
            step,
            total_steps: TOTAL_STEPS,
            meaning,
            message,
            migration: Some(m),
        }
    }

    /// The state of the migration, when there is one.
    pub fn state(&self) -> Option<&MigrationState> {
        self.migration.as_ref().map(|m| &m.state)
    }
}

fn describe_state(state: &MigrationState, step: Option<u32>) -> String {
    match step {
        Some(k) => format!("{state} (step {k} of {TOTAL_STEPS})"),
        None if state.is_unknown() => {
            format!("{state} (a state this version of fleet does not know)")
        }
        None => state.to_string(),
    }
}

/// A change seen while following a migration. Each state is reported once, when it is first
/// seen.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationEvent {
    /// The new state (unknown states are kept as they came).
    pub state: MigrationState,
    /// Step k of [`TOTAL_STEPS`] when the state is on the forward path.
    pub step: Option<u32>,
    /// The number of steps on the forward path.
    pub total_steps: u32,
    /// What the control plane says about the step.
    pub detail: Option<String>,
    /// True when the control plane says the migration has ended.
    pub terminal: bool,
    /// Time since waiting started.
    pub elapsed: Duration,
    /// The whole report behind the event.
    pub report: MigrationReport,
}

impl MigrationEvent {
    /// The state as people read it: `provisioning_target — <detail>`, marking a state this
    /// version of fleet does not know.
    pub fn state_text(&self) -> String {
        let unknown = if self.state.is_unknown() {
            " (unknown state)"
        } else {
            ""
        };
        let detail = self
            .detail
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| format!(" — {d}"))
            .unwrap_or_default();
        format!("{}{unknown}{detail}", self.state)
    }

    /// One line for people: `step 3/6 provisioning_target — <detail>`.
    pub fn describe(&self) -> String {
        match self.step {
            Some(k) => format!("step {k}/{} {}", self.total_steps, self.state_text()),
            None => self.state_text(),
        }
    }
}

/// How [`MoleculeClient::start_follow_migration`] polls.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up (with [`Error::Timeout`]) after this long. The migration goes on.
    pub timeout: Duration,
    /// When to read the status (the one poller of both planes, [`crate::poll`]): its
    /// backoff, its interval cap and how long transient read failures are tolerated.
    pub poll: PollOptions,
    /// For this long after waiting starts, a 404 ("never migrated") means the migration was
    /// just started and is not visible yet: keep polling. Zero answers "never migrated" at once.
    pub not_found_grace: Duration,
}

/// How long fleet follows a migration unless told: the control plane's own handler limit.
pub const DEFAULT_MIGRATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The follow timeouts a caller may give: at least a second, at most an hour (a migration takes
/// 15 to 20 minutes, and the control plane's watchdog marks one stale after 45).
pub const MIGRATION_TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60 * 60);

impl WaitOptions {
    /// A follow timeout, when it is in [`MIGRATION_TIMEOUT_RANGE`]; otherwise
    /// [`Error::out_of_range`] for [`Input::MigrationTimeout`] (nothing was sent).
    pub fn check_timeout(timeout: Duration) -> Result<Duration> {
        crate::rollout::within_duration(Input::MigrationTimeout, timeout, &MIGRATION_TIMEOUT_RANGE)
    }
}

impl Default for WaitOptions {
    /// [`DEFAULT_MIGRATION_TIMEOUT`], 250 ms doubling to 5 s.
    fn default() -> Self {
        WaitOptions {
            timeout: DEFAULT_MIGRATION_TIMEOUT,
            poll: PollOptions::backoff(Duration::from_millis(250), Duration::from_secs(5), 2.0),
            not_found_grace: Duration::ZERO,
        }
    }
}

/// `error`, with the fact that the migration of `workspace_id` still runs on the server
/// (the faces say how to follow it: a command line, a tool call).
pub(crate) fn still_migrating(workspace_id: &str, error: Error) -> Error {
    Error::left(
        error,
        Aftermath::StillRunning {
            follow: FollowStep::Migration {
                workspace_id: workspace_id.to_string(),
            },
        },
    )
}

fn short(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

impl MoleculeClient {
    /// Starts a provider migration.
    ///
    /// Every rule is checked before any request ([`MigrateRequest::validate`]). When `from`
    /// is not given it is read from the tenant API (`compute.provider`, else `provider`, else
    /// `compute_provider`); the result says which. The POST is sent once and never retried,
    /// and only to the configured CP-admin layout or one the pre-flight GET confirmed.
    /// A 409 becomes [`Error::Conflict`] carrying the state of the migration already running.
    /// An answer that leaves open whether it started (a status other than the contract's
    /// refusals with the control plane's error body, a reset or a timeout after sending)
    /// becomes [`Error::Unconfirmed`]: the migration is read back and `found` says what is true.
    pub async fn migrate_provider(&self, request: &MigrateRequest) -> Result<StartedMigration> {
        request.validate()?;
        let workspace_id = request.workspace_id.trim();
        self.check_without_tenant(request)?;
        // Pre-flight, first: a migration in progress also explains a provider in flux. It
        // also finds the CP-admin route layout the POST goes to.
        let before = self.refuse_if_migrating(workspace_id).await?;
        let Source {
            from,
            from_source,
            instance_id,
            instance_source,
        } = self.resolve_source(request).await?;
        let cp = self.cp_for_post().ok_or_else(|| {
            Error::advised(
                Error::Refused(format!(
                    "fleet refused to start a migration of workspace {workspace_id}: no GET has \
                     confirmed the control plane's CP-admin route yet, and fleet never sends a \
                     POST to a route it guessed; nothing was changed (no migration was started). \
                     Try again, or pick the layout"
                )),
                vec![pick_cp_admin_layout()],
            )
        })?;
        let id: cp_api::types::MigrateProviderId = workspace_id
            .parse()
            .map_err(|e| Error::InvalidInput(format!("workspace id {workspace_id:?}: {e}")))?;
        let (org_id, runtime, image) = request.optional_fields();
        let body = cp_api::types::MigrateProviderRequest {
            confirm: true,
            env: request
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            from: from.clone(),
            from_instance_id: instance_id.clone(),
            image,
            org_id,
            runtime,
            to: request.to.clone(),
        };
        tracing::info!(workspace_id, %from, to = %request.to, route = %cp.baseurl(), "starting a provider migration");
        let action = format!(
            "starting the migration of workspace {workspace_id} from {from} to {}",
            request.to
        );
        match cp.migrate_provider(&id, &body).await {
            Ok(rv) => {
                let started = rv.into_inner();
                Ok(StartedMigration {
                    workspace_id: started.workspace_id,
                    from: started.from,
                    from_source,
                    to: started.to,
                    from_instance_id: instance_id,
                    from_instance_id_source: instance_source,
                    status: started.status,
                    note: started.note.as_deref().and_then(without_polling_advice),
                })
            }
            Err(e) => {
                let clear = clear_refusal(&e);
                let unknown = super::routes::is_unknown_workspace(&e);
                match self.cp_error(action, e) {
                    Error::Conflict { message, .. } => {
                        Err(self.conflict(workspace_id, message).await)
                    }
                    Error::NotFound { message } if unknown => Err(self
                        .unknown_workspace(
                            workspace_id,
                            format!(
                                "no workspace {workspace_id}: the control plane does not know it ({message}); nothing was changed (no migration was started)"
                            ),
                        )
                        .await),
                    other if clear => Err(other),
                    // No clear answer: the control plane may have started it. Never send it
                    // again; read the migration back and say what is true.
                    other => Err(self.read_back(workspace_id, other, before.as_ref()).await),
                }
            }
        }
    }

    /// Every rule that needs no request ([`MigrateRequest::validate`], and what depends on
    /// what is configured: without the tenant API, `from` must be given, and so must the
    /// instance id of a source that is not aws). Sends nothing.
    pub fn check_request(&self, request: &MigrateRequest) -> Result<()> {
        request.validate()?;
        self.check_without_tenant(request)
    }

    /// [`MoleculeClient::check_request`] for a dry run: the same rules, but `confirm` is not
    /// needed (nothing that changes anything would be sent). Sends nothing.
    pub fn check_plan_request(&self, request: &MigrateRequest) -> Result<()> {
        request.check()?;
        self.check_without_tenant(request)
    }

    /// The rules that need no request but do depend on what is configured: without the
    /// tenant API, `from` must be given, and so must the instance id of a source that is not
    /// aws. Sends nothing.
    pub(super) fn check_without_tenant(&self, request: &MigrateRequest) -> Result<()> {
        if self.tenant().is_some() {
            return Ok(());
        }
        match &request.from {
            None => Err(self.no_tenant_for_from()),
            Some(from) => check_source(
                from,
                &request.to,
                request.instance_id(),
                "",
                "the tenant API, which reports it, is not configured",
            ),
        }
    }

    /// After a POST without a clear answer: reads the migration again (never re-sending the
    /// POST) and reports what is true now as [`Error::Unconfirmed`].
    async fn read_back(
        &self,
        workspace_id: &str,
        answer: Error,
        before: Option<&MigrationReport>,
    ) -> Error {
        let answer = answer.to_string();
        let answer = answer.trim_end_matches('.');
        let sent = "fleet did not send it again and read the migration back";
        match self.migration_status(workspace_id).await {
            Ok(now) if now.migrated && !now.terminal => Error::Unconfirmed {
                message: format!(
                    "{answer}. {sent}: the control plane may have started it — {}. Do not start \
                     it again",
                    now.message
                ),
                found: ReadBack::UnderWay,
                current_state: now.state().map(|s| s.to_string()),
            },
            Ok(now) if before.is_some_and(|b| b.migration == now.migration) => {
                let latest = if now.migrated {
                    format!(" (the latest one is unchanged: {})", now.message)
                } else {
                    " (the workspace has never been migrated)".to_string()
                };
                Error::Unconfirmed {
                    message: format!(
                        "{answer}. {sent}: no migration is running{latest}, so nothing was \
                         started"
                    ),
                    found: ReadBack::NothingStarted,
                    current_state: now.state().map(|s| s.to_string()),
                }
            }
            Ok(now) if !now.migrated => Error::Unconfirmed {
                message: format!(
                    "{answer}. {sent}: no migration is running (the workspace has never been \
                     migrated), so nothing was started"
                ),
                found: ReadBack::NothingStarted,
                current_state: None,
            },
            Ok(now) => Error::Unconfirmed {
                message: format!(
                    "{answer}. {sent}: no migration is running now; the latest one{} ended: {}",
                    if before.is_some() {
                        ", not the one seen before the request,"
                    } else {
                        ""
                    },
                    now.message
                ),
                found: ReadBack::AlreadyEnded,
                current_state: now.state().map(|s| s.to_string()),
            },
            Err(e) => Error::Unconfirmed {
                message: format!(
                    "{answer}. fleet did not send it again; reading the migration back failed \
                     too ({e}), so it may or may not have started: check the workspace's \
                     migration before starting it again"
                ),
                found: ReadBack::Unknown,
                current_state: None,
            },
        }
    }

    /// The source of a request: the provider and the source instance id, as given or read
    /// from the tenant API, checked against the target (reads only). Shared by
    /// [`MoleculeClient::migrate_provider`] and the dry run.
    pub(super) async fn resolve_source(&self, request: &MigrateRequest) -> Result<Source> {
        let workspace_id = request.workspace_id.trim();
        // When the tenant API is configured it is read once: the workspace must exist there,
        // and it knows the provider and the instance.
        let facts = match self.tenant() {
            Some(_) => Some(self.tenant_facts(workspace_id).await?),
            None => None,
        };
        let (from, from_source) = match &request.from {
            Some(from) => {
                // Pre-flight: the workspace must run on the provider the caller says it runs on.
                if let Some(reported) = facts.as_ref().and_then(|f| f.provider.clone()) {
                    if reported != *from {
                        return Err(Error::advised(
                            Error::Refused(format!(
                                "fleet refused to migrate workspace {workspace_id}: the source provider given is {from}, but the tenant API says it runs on {reported}; nothing was changed (no migration was started). Check the workspace",
                                reported = reported.as_str()
                            )),
                            vec![
                                Remedy::Give {
                                    input: Input::From,
                                    value: Some(reported.as_str().to_string()),
                                },
                                Remedy::LeaveOut { input: Input::From },
                            ],
                        ));
                    }
                }
                (from.clone(), FromSource::Given)
            }
            None => {
                let Some(facts) = &facts else {
                    return Err(self.no_tenant_for_from());
                };
                let Some(from) = facts.provider.clone() else {
                    return Err(no_provider_reported(workspace_id));
                };
                if from.is_unknown() {
                    return Err(Error::Refused(format!(
                        "the tenant API says workspace {workspace_id} runs on {:?}, which is not \
                         a provider fleet can migrate from ({}); nothing was changed",
                        from.as_str(),
                        Provider::KNOWN.join(", ")
                    )));
                }
                (from, FromSource::LookedUp)
            }
        };
        let (instance_id, instance_source) = match request.instance_id() {
            Some(given) => (Some(given.to_string()), Some(FromSource::Given)),
            // aws needs none (the control plane finds the instance from its tags).
            None if from == Provider::Aws => (None, None),
            None => match facts.as_ref().and_then(|f| f.instance_id.clone()) {
                Some(read) => (Some(read), Some(FromSource::LookedUp)),
                None => (None, None),
            },
        };
        let how = match from_source {
            FromSource::LookedUp => {
                format!(" (read from the tenant API: workspace {workspace_id} runs on {from})")
            }
            FromSource::Given => String::new(),
        };
        let why = if facts.is_some() {
            "the tenant API reports none for the workspace (no compute.instance_id)"
        } else {
            "the tenant API, which reports it, is not configured"
        };
        check_source(&from, &request.to, instance_id.as_deref(), &how, why).map_err(|e| {
            // A read was sent, so this is a refusal; what to do about it stays.
            let refusal = Error::Refused(
                e.to_string()
                    .replace("nothing was sent", "nothing was changed"),
            );
            Error::advised(refusal, e.remedies().to_vec())
        })?;
        if let Some(FromSource::LookedUp) = instance_source {
            tracing::info!(
                workspace_id,
                from_instance_id = instance_id.as_deref().unwrap_or_default(),
                "the source instance id was read from the tenant API (compute.instance_id)"
            );
        }
        Ok(Source {
            from,
            from_source,
            instance_id,
            instance_source,
        })
    }

    /// The error for a request that needs the tenant API when it is not configured.
    fn no_tenant_for_from(&self) -> Error {
        Error::advised(
            Error::NotConfigured {
                plane: "the Molecule tenant API (needed to look up the workspace's current \
                        provider when the source provider is not given)",
                vars: &["MOLECULE_API_URL", "MOLECULE_ORG_API_KEY"],
            },
            vec![Remedy::Give {
                input: Input::From,
                value: None,
            }],
        )
    }

    /// A 409 on start: say a migration is already running and read its state.
    async fn conflict(&self, workspace_id: &str, server_message: String) -> Error {
        let (current, seen) = match self.migration_status(workspace_id).await {
            Ok(report) if report.migrated => {
                let state = report.state().map(|s| s.to_string());
                (state, format!(" Its current state: {}.", report.message))
            }
            Ok(_) => (None, String::new()),
            Err(e) => (None, format!(" (its state could not be read: {e})")),
        };
        still_migrating(
            workspace_id,
            Error::Conflict {
                message: format!(
                    "{server_message}. A migration of workspace {workspace_id} is already running: \
                     one migration per workspace at a time, nothing new was started.{seen}"
                ),
                current_state: current,
            },
        )
    }

    /// Pre-flight: a migration already running (its status is not terminal) is reported with
    /// its state as [`Error::Refused`] (nothing was sent) instead of a 409 after the POST.
    /// The control plane stays the authority: the POST's own 409 is still handled.
    /// Returns what it read (`None` when the read failed), to compare with after the POST.
    ///
    /// A status that cannot be read does not block when the CP-admin prefix is configured
    /// (the POST's own 409 still guards against a second migration). Without a configured
    /// prefix this read is also what confirms the route layout: then a failed read, a refused
    /// credential or a layout that has no route ends the start here (no POST).
    async fn refuse_if_migrating(&self, workspace_id: &str) -> Result<Option<MigrationReport>> {
        // The tenant API (when configured) is read next by resolve_source: it confirms the
        // workspace exists.
        let report = match self.read_migration(workspace_id, false).await {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.root(),
                    Error::Unauthorized { .. }
                        | Error::NotConfigured { .. }
                        | Error::UnknownWorkspace { .. }
                        | Error::InvalidInput(_)
                        | Error::Api { status: 404, .. }
                ) =>
            {
                return Err(e);
            }
            Err(e) if self.cp_for_post().is_none() => {
                // The read's own error (its kind and exit code), saying what was not done.
                let note = "; this read is what confirms the control plane's CP-admin route, and \
                            fleet never sends a POST to a route it guessed, so no migration was \
                            started. Try again, or pick the layout";
                let noted = match e {
                    e @ (Error::Transport(_) | Error::Api { .. }) => {
                        e.map_message(|m| format!("{m}{note}"))
                    }
                    other => Error::Refused(format!(
                        "fleet refused to start a migration of workspace {workspace_id}: {other}{note}"
                    )),
                };
                return Err(Error::advised(noted, vec![pick_cp_admin_layout()]));
            }
            Err(e) => {
                tracing::warn!(workspace_id, error = %e, "pre-flight: the migration status could not be read; going on");
                return Ok(None);
            }
        };
        if report.migrated && !report.terminal {
            return Err(still_migrating(
                workspace_id,
                Error::Refused(format!(
                    "fleet refused to start a migration of workspace {workspace_id}: one is already running ({}); one migration per workspace at a time, so nothing was changed (no migration was started)",
                    report.message,
                )),
            ));
        }
        Ok(Some(report))
    }

    /// What the tenant API reports about a workspace. A workspace the tenant API does not
    /// know is [`Error::UnknownWorkspace`] (nothing was changed).
    pub(super) async fn tenant_facts(&self, workspace_id: &str) -> Result<TenantFacts> {
        check_workspace_id(workspace_id)?;
        let workspace_id = workspace_id.trim();
        let tenant = self.tenant().ok_or_else(|| self.no_tenant_for_from())?;
        let id: super::tenant_api::types::GetWorkspaceId = workspace_id
            .parse()
            .map_err(|e| Error::InvalidInput(format!("workspace id {workspace_id:?}: {e}")))?;
        let ws = match tenant.get_workspace(&id).await {
            Ok(ws) => ws.into_inner(),
            Err(e) => {
                return Err(
                    match self.tenant_error(format!("looking up workspace {workspace_id}"), e) {
                        Error::NotFound { message } => {
                            self.unknown_workspace(
                                workspace_id,
                                format!(
                                    "no workspace {workspace_id}: the tenant API does not know it ({message}); nothing was changed. Check the workspace id (the tenant API and the control plane must be the same organization)"
                                ),
                            )
                            .await
                        }
                        other => other,
                    },
                );
            }
        };
        let text = |v: Option<String>| {
            v.map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty() && !p.chars().any(char::is_control))
        };
        let compute = ws.compute.unwrap_or_default();
        Ok(TenantFacts {
            provider: text(compute.provider)
                .or(text(ws.provider))
                .or(text(ws.compute_provider))
                .map(Provider::from),
            instance_id: text(compute.instance_id),
        })
    }

    /// The provider the tenant API reports for a workspace.
    pub async fn current_provider(&self, workspace_id: &str) -> Result<Provider> {
        let workspace_id = workspace_id.trim();
        match self.tenant_facts(workspace_id).await?.provider {
            Some(p) => Ok(p),
            None => Err(no_provider_reported(workspace_id)),
        }
    }

    /// [`Error::UnknownWorkspace`] for `workspace_id`, with the closest id the tenant API
    /// lists when one is close. The contract has no list on the CP admin API: without the
    /// tenant API configured (or when its list cannot be read) there is no suggestion.
    pub(super) async fn unknown_workspace(&self, workspace_id: &str, message: String) -> Error {
        let ids = self.tenant_workspace_ids().await;
        Error::unknown_workspace(message, workspace_id, ids.iter().map(String::as_str))
    }

    /// The workspace ids the tenant API lists (`GET /workspaces`, optional in the contract):
    /// empty when it is not configured or the list cannot be read. Its size is bounded by the
    /// HTTP layer's cap on a body.
    async fn tenant_workspace_ids(&self) -> Vec<String> {
        let Some(tenant) = self.tenant() else {
            return Vec::new();
        };
        match tenant.list_workspaces().await {
            Ok(list) => list.into_inner().into_iter().filter_map(|w| w.id).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "the tenant API's workspace list could not be read: no suggestion");
                Vec::new()
            }
        }
    }

    /// Where the tenant API is configured, confirms that a workspace the control plane says
    /// was never migrated exists. Only the tenant API's own 404 (its JSON error body) counts;
    /// any other failure leaves the answer as it is.
    async fn confirm_exists(&self, workspace_id: &str) -> Result<()> {
        let Some(tenant) = self.tenant() else {
            return Ok(());
        };
        let Ok(id) = workspace_id.parse::<super::tenant_api::types::GetWorkspaceId>() else {
            return Ok(());
        };
        match tenant.get_workspace(&id).await {
            Ok(_) => Ok(()),
            Err(progenitor_client::Error::ErrorResponse(rv))
                if rv.status().as_u16() == 404
                    && rv
                        .headers()
                        .get(crate::http::REWRITTEN_BODY_HEADER)
                        .is_none()
                    && rv.error.as_deref().is_some_and(|e| !e.trim().is_empty()) =>
            {
                let said = crate::http::server_words(rv.error.as_deref(), rv.detail.as_deref());
                Err(self
                    .unknown_workspace(
                        workspace_id,
                        format!(
                            "no workspace {workspace_id}: the control plane has no migration for it and the tenant API does not know it ({said}); nothing was changed"
                        ),
                    )
                    .await)
            }
            Err(e) => {
                tracing::debug!(workspace_id, error = %e, "the tenant API could not confirm the workspace; keeping the control plane's answer");
                Ok(())
            }
        }
    }

    /// The workspace's latest migration. A 404 with the control plane's error body is the
    /// answer "never migrated", not an error. On the first read the CP-admin route layout is
    /// found (see [`MoleculeClient::cp_admin_route`]).
    pub async fn migration_status(&self, workspace_id: &str) -> Result<MigrationReport> {
        self.read_migration(workspace_id, true).await
    }

    /// [`MoleculeClient::migration_status`]; `confirm` asks the tenant API whether a workspace
    /// never migrated exists (left out where the caller reads the tenant API anyway).
    pub(super) async fn read_migration(
        &self,
        workspace_id: &str,
        confirm: bool,
    ) -> Result<MigrationReport> {
        check_workspace_id(workspace_id)?;
        let workspace_id = workspace_id.trim();
        Ok(match self.read_status(workspace_id).await? {
            StatusAnswer::Status(status) => MigrationReport::from_status(workspace_id, status),
            StatusAnswer::NeverMigrated(message) => {
                if confirm {
                    self.confirm_exists(workspace_id).await?;
                }
                MigrationReport::never_migrated(workspace_id, &message)
            }
            StatusAnswer::UnknownWorkspace(message) => {
                return Err(self
                    .unknown_workspace(
                        workspace_id,
                        format!(
                            "no workspace {workspace_id}: the control plane does not know it ({message}); nothing was changed"
                        ),
                    )
                    .await);
            }
        })
    }

    /// Follows a workspace's migration until the control plane says it ended (`terminal`).
    ///
    /// Each state is reported once through `on_event`. Reads at once, then backs off (see
    /// [`WaitOptions`]), with the one poller of both planes ([`crate::poll`]): reads that fail
    /// for a transient reason (transport, 429, 500, 502/503/504) do not end the wait, unless
    /// they keep failing for the poller's `failing_limit`; other errors do.
    ///
    /// - `completed` → `Ok(report)`; never migrated (404 past `not_found_grace`) → `Ok` with
    ///   `migrated: false`.
    /// - `failed`, `rolled_back` (or an unknown end state) → [`Error::OperationFailed`],
    ///   saying what the end state means for the user.
    /// - past the deadline → [`Error::Timeout`] with the last state; cancelled →
    ///   [`Error::Interrupted`]. In both cases the migration goes on on the server.
    pub(crate) async fn wait_for_migration(
        &self,
        workspace_id: &str,
        options: &WaitOptions,
        control: &Control,
        on_event: &mut (dyn FnMut(MigrationEvent) + Send),
    ) -> Result<MigrationReport> {
        let control = control.clone();
        check_workspace_id(workspace_id)?;
        let workspace_id = workspace_id.trim();
        let deadline = Instant::now() + options.timeout;
        let mut poller = Poller::new(&options.poll, deadline, &control).read_at_once();
        let mut last_state: Option<MigrationState> = None;
        loop {
            let report = match poller.next(|| self.migration_status(workspace_id)).await? {
                Polled::Read(report) => report,
                Polled::TimedOut => {
                    return Err(timed_out(
                        workspace_id,
                        poller.elapsed(),
                        last_state.as_ref(),
                        poller.last_problem(),
                    ));
                }
                Polled::Cancelled => return Err(interrupted(workspace_id, last_state.as_ref())),
            };
            if !report.migrated {
                if poller.elapsed() >= options.not_found_grace {
                    return Ok(report);
                }
                poller.note_problem("the control plane does not show the migration yet");
                continue;
            }
            let state = report
                .state()
                .cloned()
                .unwrap_or(MigrationState::Other(String::new()));
            if last_state.as_ref() != Some(&state) {
                last_state = Some(state.clone());
                let detail = report.migration.as_ref().and_then(|m| m.detail.clone());
                on_event(MigrationEvent {
                    step: state.step(),
                    total_steps: TOTAL_STEPS,
                    detail,
                    terminal: report.terminal,
                    elapsed: poller.elapsed(),
                    state: state.clone(),
                    report: report.clone(),
                });
            }
            if report.terminal {
                return end_state(workspace_id, report, &state);
            }
        }
    }
}

/// The control plane's note without its clauses (split at `;` or `. `) about polling the
/// migration status (`poll GET …/migration-status`): a caller of fleet follows a migration
/// with fleet, not with raw GETs. `None` when nothing else is left.
fn without_polling_advice(note: &str) -> Option<String> {
    let note = note.replace(". ", ";");
    let kept: Vec<&str> = note
        .split(';')
        .map(|c| c.trim().trim_end_matches('.'))
        .filter(|c| !c.is_empty())
        .filter(|c| {
            let c = c.to_lowercase();
            !(c.contains("poll")
                || c.contains("migration-status")
                || c.contains("migrate-provider"))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// True when an answer to the migration POST says for sure that nothing was started: one of
/// the statuses the contract lists for it (400 bad input, 401/403 auth, 404 unknown workspace,
/// 409 already running, 503 migrator not configured) with the control plane's own JSON error
/// body; a 429 (a rate limit refuses before anything runs); or a connection that could not be
/// opened (the request never left). Any other answer (another status, a proxy's page, a reset
/// or a timeout after the request was sent, a success that cannot be read) leaves open whether
/// the migration started.
fn clear_refusal(e: &progenitor_client::Error<cp_api::types::ErrorBody>) -> bool {
    use progenitor_client::Error as P;
    match e {
        P::ErrorResponse(rv) => match rv.status().as_u16() {
            429 => true,
            400 | 401 | 403 | 404 | 409 | 503 => has_cp_error_body(rv),
            _ => false,
        },
        P::CommunicationError(e) => e.is_connect(),
        _ => false,
    }
}

fn end_state(
    workspace_id: &str,
    report: MigrationReport,
    state: &MigrationState,
) -> Result<MigrationReport> {
    if *state == MigrationState::Completed {
        return Ok(report);
    }
    let detail = report
        .migration
        .as_ref()
        .and_then(|m| m.detail.as_deref())
        .filter(|d| !d.trim().is_empty())
        .map(|d| format!(" The control plane says: {d}."))
        .unwrap_or_default();
    let meaning = match state.meaning() {
        Some(m) => format!(": {m}."),
        None => ", an end state this version of fleet does not know: check the workspace's \
                 migration status before trying again."
            .to_string(),
    };
    Err(Error::OperationFailed {
        message: format!(
            "the migration of workspace {workspace_id} ended in state {state}{meaning}{detail}"
        ),
        final_state: Some(state.to_string()),
    })
}

fn timed_out(
    workspace_id: &str,
    waited: Duration,
    last: Option<&MigrationState>,
    problem: Option<&str>,
) -> Error {
    let seen = match last {
        Some(s) => format!("its last state was {}", describe_state(s, s.step())),
        None => "no state was seen yet".to_string(),
    };
    let problem = problem
        .map(|p| format!(" (last read: {p})"))
        .unwrap_or_default();
    still_migrating(
        workspace_id,
        Error::Timeout {
            message: format!(
                "stopped waiting for the migration of workspace {workspace_id} after {}: \
                 {seen}{problem}. The migration continues on the server",
                short(waited),
            ),
            waited,
            last_state: last.map(|s| s.to_string()),
        },
    )
}

pub(crate) fn interrupted(workspace_id: &str, last: Option<&MigrationState>) -> Error {
    let seen = match last {
        Some(s) => format!(" (last state: {})", describe_state(s, s.step())),
        None => String::new(),
    };
    still_migrating(
        workspace_id,
        Error::Interrupted {
            message: format!(
                "stopped following the migration of workspace {workspace_id}{seen}. The \
                 migration continues on the server"
            ),
            last_state: last.map(|s| s.to_string()),
        },
    )
}

#[cfg(test)]
mod note_tests {
    use super::without_polling_advice;

    #[test]
    fn the_advice_to_poll_is_left_out_and_the_rest_kept() {
        assert_eq!(
            without_polling_advice("a migration takes 15-20 minutes; poll GET …/migration-status")
                .as_deref(),
            Some("a migration takes 15-20 minutes")
        );
        assert_eq!(
            without_polling_advice("Poll GET /cp/admin/workspaces/x/migrate-provider"),
            None
        );
        assert_eq!(
            without_polling_advice("quota is low on hetzner").as_deref(),
            Some("quota is low on hetzner")
        );
    }
}
