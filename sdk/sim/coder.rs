//! The simulated Coder deployment (`/api/v2/…`).

use std::collections::{BTreeMap, HashMap};

use axum::{
    Router,
    body::Bytes,
    extract::{
        Path, Query, State,
        ws::{
            CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
        },
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, patch, post},
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Clock, Shared, coder_error, json_response, lock, take_flaky};

#[path = "seed.rs"]
mod seed;
pub(crate) use seed::{bulk_name, seed};

/// Seconds (at speed 1) a job waits in the queue.
const PENDING_SECS: f64 = 1.0;
/// Seconds (at speed 1) a start runs.
const START_SECS: f64 = 6.0;
/// Seconds (at speed 1) a stop or delete runs.
const STOP_SECS: f64 = 4.0;
/// Seconds (at speed 1) a cancel takes.
const CANCEL_SECS: f64 = 1.0;
/// Seconds (at speed 1) an agent waits to connect before its status turns `timeout`.
const AGENT_CONNECT_TIMEOUT_SECS: f64 = 120.0;
/// How much longer every build of a slow workspace takes.
const SLOW_FACTOR: f64 = 10.0;

const ORG_ID: Uuid = Uuid::from_u128(0x5133_0000_0000_4000_8000_0000_0000_0001);

#[derive(Debug, Clone)]
struct User {
    id: Uuid,
    username: &'static str,
    name: &'static str,
}

#[derive(Debug, Clone)]
struct Template {
    id: Uuid,
    name: &'static str,
    display_name: &'static str,
    active_version_id: Uuid,
    require_active_version: bool,
    /// Seconds (at speed 1) its agents' startup scripts run after the start build ended.
    agent_ready_secs: f64,
    /// Simulated time its active version last changed (`updated_at`); seeded a week ago.
    updated: f64,
}

/// What a version's agent does once its start build has succeeded.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AgentScript {
    /// Connects; its startup script runs for the template's `agent_ready_secs`; ready.
    Ready,
    /// Connects with no startup script: ready at once.
    NoScript,
    /// Connects; its startup script fails: `start_error`.
    StartError,
    /// Never connects: `connecting`, then `timeout` after the connection timeout.
    NeverConnects,
    /// Like `Ready`, this many times slower.
    Slow(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Import {
    Done,
    Running,
}

#[derive(Debug, Clone)]
struct Param {
    name: &'static str,
    display_name: &'static str,
    description: &'static str,
    kind: &'static str,
    mutable: bool,
    required: bool,
    default: &'static str,
    options: &'static [&'static str],
    min: Option<i64>,
    max: Option<i64>,
    increasing: bool,
}

#[derive(Debug, Clone)]
struct Version {
    id: Uuid,
    template_id: Uuid,
    name: &'static str,
    message: &'static str,
    archived: bool,
    import: Import,
    /// A start on this version fails with this job error.
    start_fails: Option<&'static str>,
    /// What its agent does after a successful start.
    agent: AgentScript,
    /// Its workspaces run an external agent (Coder's `has_external_agent`).
    external_agent: bool,
    params: Vec<Param>,
}

#[derive(Debug, Clone)]
struct Workspace {
    id: Uuid,
    name: String,
    owner: Uuid,
    template_id: Uuid,
    slow: bool,
    flaky_left: u32,
    /// Its owner's name is left out of its JSON (as a careless or hostile server may do).
    owner_hidden: bool,
    /// Build ids, oldest first; never empty.
    builds: Vec<Uuid>,
    /// Who is at work in it (`last_used_at`, an AI task, prebuilt, dormant).
    at_work: AtWork,
}

/// What Coder reports about the activity in a workspace.
#[derive(Debug, Clone, Default)]
pub(crate) struct AtWork {
    /// Its activity: last used at this simulated time (in the past), or in use until then
    /// (`last_used_at` is now until that time, then stays there); `None`: never used.
    pub(crate) used: Option<Used>,
    /// `latest_app_status`: (state, message).
    pub(crate) app_status: Option<(&'static str, &'static str)>,
    /// `task_id`.
    pub(crate) task_id: Option<Uuid>,
    /// `is_prebuild`.
    pub(crate) prebuild: bool,
    /// `dormant_at` (simulated time).
    pub(crate) dormant_at: Option<f64>,
}

/// A workspace's activity over simulated time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Used {
    /// Last used at this simulated time.
    At(f64),
    /// In use until this simulated time (infinite: always).
    Until(f64),
}

#[derive(Debug, Clone)]
struct Build {
    id: Uuid,
    job_id: Uuid,
    seq: i64,
    number: i64,
    workspace_id: Uuid,
    version_id: Uuid,
    transition: &'static str,
    initiator: &'static str,
    /// Simulated time it was created.
    created: f64,
    factor: f64,
    fails: Option<&'static str>,
    canceled: Option<f64>,
    params: Vec<(String, String)>,
    /// The start the server creates after this stop succeeds (`on_success`, Coder ≥ 2.36).
    on_success: Option<OnSuccess>,
}

/// A follow-up start build asked for with `on_success`.
#[derive(Debug, Clone)]
struct OnSuccess {
    /// Pinned; `None`: the template's active version when the child is created.
    version: Option<Uuid>,
    params: Vec<(String, String)>,
}

/// A build's state at a point in time.
struct Phase {
    status: &'static str,
    job: &'static str,
    started: Option<f64>,
    completed: Option<f64>,
    updated: f64,
    error: Option<&'static str>,
}

impl Build {
    fn pending_secs(&self) -> f64 {
        PENDING_SECS * self.factor
    }

    fn run_secs(&self) -> f64 {
        (if self.transition == "start" {
            START_SECS
        } else {
            STOP_SECS
        }) * self.factor
    }

    /// When a failing build fails, relative to its run phase.
    fn fail_after(&self) -> f64 {
        self.run_secs() * 0.6
    }

    fn phase(&self, now: f64) -> Phase {
        let run_from = self.created + self.pending_secs();
        if let Some(c) = self.canceled {
            let started = (c >= run_from).then_some(run_from);
            return if now < c + CANCEL_SECS {
                Phase {
                    status: "canceling",
                    job: "canceling",
                    started,
                    completed: None,
                    updated: c,
                    error: None,
                }
            } else {
                Phase {
                    status: "canceled",
                    job: "canceled",
                    started,
                    completed: Some(c + CANCEL_SECS),
                    updated: c + CANCEL_SECS,
                    error: None,
                }
            };
        }
        if now < run_from {
            return Phase {
                status: "pending",
                job: "pending",
                started: None,
                completed: None,
                updated: self.created,
                error: None,
            };
        }
        if let Some(error) = self.fails {
            let end = run_from + self.fail_after();
            return if now < end {
                self.running(run_from)
            } else {
                Phase {
                    status: "failed",
                    job: "failed",
                    started: Some(run_from),
                    completed: Some(end),
                    updated: end,
                    error: Some(error),
                }
            };
        }
        let end = run_from + self.run_secs();
        if now < end {
            return self.running(run_from);
        }
        Phase {
            status: match self.transition {
                "start" => "running",
                "stop" => "stopped",
                _ => "deleted",
            },
            job: "succeeded",
            started: Some(run_from),
            completed: Some(end),
            updated: end,
            error: None,
        }
    }

    fn running(&self, run_from: f64) -> Phase {
        Phase {
            status: match self.transition {
                "start" => "starting",
                "stop" => "stopping",
                _ => "deleting",
            },
            job: "running",
            started: Some(run_from),
            completed: None,
            updated: run_from,
            error: None,
        }
    }

    fn is_active(&self, now: f64) -> bool {
        matches!(self.phase(now).job, "pending" | "running" | "canceling")
    }

    /// The log lines written so far: (offset into the run phase, level, stage, output).
    fn log_script(&self) -> Vec<(f64, &'static str, &'static str, String)> {
        let r = self.run_secs();
        let mut lines = vec![
            (
                0.0,
                "info",
                "Setting up",
                "Provisioner daemon sim-provisioner-1 picked up the job".to_string(),
            ),
            (
                0.05 * r,
                "info",
                "Setting up",
                "Initializing Terraform".to_string(),
            ),
            (
                0.15 * r,
                "info",
                "Planning infrastructure",
                "Terraform 1.9.8".to_string(),
            ),
            (
                0.25 * r,
                "info",
                "Planning infrastructure",
                "Plan: 2 to add, 0 to change, 0 to destroy.".to_string(),
            ),
        ];
        let verb = match self.transition {
            "start" => "Starting workspace",
            "stop" => "Stopping workspace",
            _ => "Deleting workspace",
        };
        if let Some(error) = self.fails {
            let f = self.fail_after();
            lines.push((
                0.35 * r,
                "info",
                verb,
                "docker_container.workspace[0]: Creating...".to_string(),
            ));
            lines.push((f, "error", verb, format!("Error: {error}")));
            lines.push((
                f,
                "error",
                verb,
                "terraform apply: exit status 1".to_string(),
            ));
            return lines;
        }
        match self.transition {
            "start" => {
                lines.push((
                    0.35 * r,
                    "info",
                    verb,
                    "docker_volume.home: Creating...".to_string(),
                ));
                lines.push((
                    0.5 * r,
                    "info",
                    verb,
                    "docker_container.workspace[0]: Creating...".to_string(),
                ));
                lines.push((
                    0.8 * r,
                    "info",
                    verb,
                    "docker_container.workspace[0]: Creation complete after 3s".to_string(),
                ));
                lines.push((
                    0.95 * r,
                    "info",
                    "Cleaning Up",
                    "Apply complete! Resources: 2 added, 0 changed, 0 destroyed.".to_string(),
                ));
            }
            _ => {
                lines.push((
                    0.4 * r,
                    "info",
                    verb,
                    "docker_container.workspace[0]: Destroying...".to_string(),
                ));
                lines.push((
                    0.8 * r,
                    "info",
                    verb,
                    "docker_container.workspace[0]: Destruction complete after 2s".to_string(),
                ));
                lines.push((
                    0.95 * r,
                    "info",
                    "Cleaning Up",
                    "Apply complete! Resources: 0 added, 0 changed, 1 destroyed.".to_string(),
                ));
            }
        }
        lines
    }
}

pub(crate) struct CoderWorld {
    users: Vec<User>,
    templates: Vec<Template>,
    versions: Vec<Version>,
    workspaces: Vec<Workspace>,
    builds: HashMap<Uuid, Build>,
    next_seq: i64,
    /// What `GET /buildinfo` reports.
    version: String,
    /// True when the version honours `on_success` (≥ 2.36); older ones ignore it.
    on_success: bool,
    /// The session may update templates (template admin): pin the version of a follow-up
    /// build, make a version active.
    can_update_templates: bool,
    /// Stop builds with `on_success` whose follow-up is not decided yet.
    pending_chains: Vec<Uuid>,
    /// Every WebSocket is cut (no close frame) after this many messages.
    pub(crate) ws_drop_after: Option<u32>,
    /// While a build runs, its log stream also sends lines of this many bytes, flat out.
    pub(crate) log_flood_bytes: Option<usize>,
    /// The most builds that were active (pending or running) at once.
    pub(crate) max_active_builds: usize,
    /// Workspaces whose every start fails, whatever the version (a sim fault).
    start_fails: Vec<Uuid>,
}

/// How the simulated Coder deployment behaves (from [`super::SimOptions`]).
pub(crate) struct CoderSettings {
    pub(crate) version: String,
    pub(crate) can_pin: bool,
    pub(crate) ws_drop_after: Option<u32>,
    pub(crate) log_flood_bytes: Option<usize>,
}

/// `me` is alice.
fn me(world: &CoderWorld) -> &User {
    &world.users[0]
}

impl CoderWorld {
    /// Makes every start of these workspaces (`owner/name`) fail; refuses a name not seeded.
    pub(crate) fn fail_starts_of(&mut self, names: &[String]) -> crate::Result<()> {
        for full in names {
            let id = full
                .split_once('/')
                .and_then(|(owner, name)| self.workspace_id(owner, name))
                .ok_or_else(|| {
                    crate::Error::InvalidInput(format!(
                        "the simulator seeds no Coder workspace {full:?} to fail the starts of: \
                         name one as owner/name, e.g. carol/web-02"
                    ))
                })?;
            self.start_fails.push(id);
        }
        Ok(())
    }

    pub(crate) fn workspace_id(&self, owner: &str, name: &str) -> Option<Uuid> {
        let user = self.find_user(owner)?;
        self.workspaces
            .iter()
            .find(|w| w.owner == user.id && w.name == name)
            .map(|w| w.id)
    }

    pub(crate) fn build_history(&self, owner: &str, name: &str) -> Vec<(String, String)> {
        let Some(id) = self.workspace_id(owner, name) else {
            return Vec::new();
        };
        let ws = self.workspaces.iter().find(|w| w.id == id);
        ws.map(|w| {
            w.builds
                .iter()
                .filter_map(|b| self.builds.get(b))
                .map(|b| {
                    (
                        b.transition.to_string(),
                        self.version(b.version_id)
                            .map(|v| v.name.to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    }

    pub(crate) fn version_id(&self, template: &str, version: &str) -> Option<Uuid> {
        let t = self.templates.iter().find(|t| t.name == template)?;
        self.versions
            .iter()
            .find(|v| v.template_id == t.id && v.name == version)
            .map(|v| v.id)
    }

    pub(crate) fn rename_workspace(
        &mut self,
        owner: &str,
        name: &str,
        new_name: &str,
        hide_owner: bool,
    ) -> bool {
        let Some(id) = self.workspace_id(owner, name) else {
            return false;
        };
        match self.workspaces.iter_mut().find(|w| w.id == id) {
            Some(w) => {
                w.name = new_name.to_string();
                w.owner_hidden = hide_owner;
                true
            }
            None => false,
        }
    }

    pub(crate) fn set_active_version(&mut self, template: &str, version: &str) -> bool {
        let Some(v) = self.version_id(template, version) else {
            return false;
        };
        match self.templates.iter_mut().find(|t| t.name == template) {
            Some(t) => {
                t.active_version_id = v;
                true
            }
            None => false,
        }
    }

    /// Makes version `version_id` the active version of template `template_id` at simulated
    /// time `now`, checked as Coder's `PATCH /templates/{id}/versions` checks it (in its order:
    /// the version exists, belongs to the template, was imported, is not archived; the
    /// permission is checked at the write).
    fn promote(&mut self, template_id: Uuid, version_id: Uuid, now: f64) -> Result<(), Response> {
        let Some(version) = self.version(version_id) else {
            return Err(coder_error(
                StatusCode::NOT_FOUND,
                "Template version not found.",
                None,
            ));
        };
        if version.template_id != template_id {
            return Err(coder_error(
                StatusCode::BAD_REQUEST,
                "The provided template version doesn't belong to the specified template.",
                None,
            ));
        }
        if version.import != Import::Done {
            return Err(coder_error(
                StatusCode::FORBIDDEN,
                "Only versions that have been built successfully can be promoted.",
                Some("Attempted to promote a version with a running build"),
            ));
        }
        if version.archived {
            return Err(coder_error(
                StatusCode::BAD_REQUEST,
                "The provided template version is archived.",
                None,
            ));
        }
        if !self.can_update_templates {
            return Err(coder_error(
                StatusCode::FORBIDDEN,
                "Forbidden.",
                Some(
                    "updating the active template version needs permission to update the template (template admin)",
                ),
            ));
        }
        match self.templates.iter_mut().find(|t| t.id == template_id) {
            Some(t) => {
                t.active_version_id = version_id;
                t.updated = now;
                Ok(())
            }
            None => Err(not_found()),
        }
    }

    fn find_user(&self, key: &str) -> Option<&User> {
        if key == "me" {
            return Some(me(self));
        }
        let id = Uuid::parse_str(key).ok();
        self.users
            .iter()
            .find(|u| Some(u.id) == id || u.username.eq_ignore_ascii_case(key))
    }

    fn user(&self, id: Uuid) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    fn template(&self, id: Uuid) -> Option<&Template> {
        self.templates.iter().find(|t| t.id == id)
    }

    fn version(&self, id: Uuid) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    fn latest(&self, ws: &Workspace) -> Option<&Build> {
        ws.builds.last().and_then(|id| self.builds.get(id))
    }

    /// Counts the builds active at `at` (a build was just created then) into the high-water
    /// mark.
    fn note_active_builds(&mut self, at: f64) {
        let active = self
            .builds
            .values()
            .filter(|b| b.created <= at && b.is_active(at))
            .count();
        self.max_active_builds = self.max_active_builds.max(active);
    }

    fn next_seq(&mut self) -> i64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Creates the follow-up start builds whose stop has succeeded by `now`, as of the moment
    /// the stop ended (state is computed from the clock, so this runs before every read).
    /// A child the checks refuse is never created: the workspace stays stopped.
    fn materialize(&mut self, now: f64) {
        if self.pending_chains.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending_chains);
        for parent_id in pending {
            let Some(parent) = self.builds.get(&parent_id).cloned() else {
                continue;
            };
            let phase = parent.phase(now);
            if matches!(phase.job, "pending" | "running" | "canceling") {
                self.pending_chains.push(parent_id);
                continue;
            }
            let (Some(on), "succeeded", Some(at)) =
                (parent.on_success.clone(), phase.job, phase.completed)
            else {
                continue; // a failed or canceled stop queues nothing
            };
            let Some(ws) = self
                .workspaces
                .iter()
                .find(|w| w.id == parent.workspace_id)
                .cloned()
            else {
                continue;
            };
            if self.latest(&ws).map(|b| b.id) != Some(parent.id) {
                continue; // another build came first
            }
            let Some(template) = self.template(ws.template_id).cloned() else {
                continue;
            };
            // Without a pinned version: the template's active version when the child runs.
            let version = on.version.unwrap_or(template.active_version_id);
            match self.new_build(&ws, &parent, "start", Some(version), &on.params, at) {
                Ok(mut child) => {
                    // Not always + 1: clients must find the child as the next latest build.
                    child.number = parent.number + 2;
                    if let Some(w) = self.workspaces.iter_mut().find(|w| w.id == ws.id) {
                        w.builds.push(child.id);
                    }
                    self.builds.insert(child.id, child);
                    self.note_active_builds(at);
                }
                Err(refused) => {
                    tracing::info!(
                        workspace = %ws.name,
                        status = refused.status().as_u16(),
                        "simulator: the follow-up start build was refused at creation; the workspace stays stopped"
                    );
                }
            }
        }
    }

    /// A new build of `ws` after `latest`, checked the way Coder checks a build request:
    /// the version (exists, belongs to the template, not archived when named, imported,
    /// active when the template requires it) and, for a start, the parameters.
    #[allow(clippy::too_many_arguments)]
    fn new_build(
        &mut self,
        ws: &Workspace,
        latest: &Build,
        transition: &'static str,
        version_given: Option<Uuid>,
        given: &[(String, String)],
        now: f64,
    ) -> Result<Build, Response> {
        let Some(template) = self.template(ws.template_id).cloned() else {
            return Err(not_found());
        };
        let version_id = match version_given {
            Some(v) => v,
            None if transition == "start" && template.require_active_version => {
                template.active_version_id
            }
            None => latest.version_id,
        };
        let Some(version) = self.version(version_id).cloned() else {
            return Err(with_validations(
                StatusCode::BAD_REQUEST,
                "Template version not found.",
                &[(
                    "template_version_id".into(),
                    format!("no template version {version_id}"),
                )],
            ));
        };
        if version.template_id != ws.template_id {
            return Err(with_validations(
                StatusCode::BAD_REQUEST,
                "Template version not found.",
                &[(
                    "template_version_id".into(),
                    format!(
                        "template version {} does not belong to template {}",
                        version.name, template.name
                    ),
                )],
            ));
        }
        if version.archived && version_given.is_some() {
            return Err(with_validations(
                StatusCode::BAD_REQUEST,
                "The provided template version is archived.",
                &[(
                    "template_version_id".into(),
                    format!("{} is archived", version.name),
                )],
            ));
        }
        if version.import != Import::Done {
            return Err(coder_error(
                StatusCode::NOT_ACCEPTABLE,
                "The provided template version is still importing.",
                Some(&format!(
                    "template version {} has not finished importing; try again later",
                    version.name
                )),
            ));
        }
        if transition == "start"
            && template.require_active_version
            && version.id != template.active_version_id
        {
            return Err(coder_error(
                StatusCode::FORBIDDEN,
                "cannot use non-active version",
                Some(&format!(
                    "the template {} requires the active version; build with {}",
                    template.name, template.active_version_id
                )),
            ));
        }
        let params = if transition == "start" {
            match resolve_params(&version, &latest.params, given) {
                Ok(p) => p,
                Err(problems) => {
                    return Err(with_validations(
                        StatusCode::BAD_REQUEST,
                        "Unable to validate parameters.",
                        &problems,
                    ));
                }
            }
        } else {
            latest.params.clone()
        };
        let seq = self.next_seq();
        Ok(Build {
            id: Uuid::new_v4(),
            job_id: Uuid::new_v4(),
            seq,
            number: latest.number + 1,
            workspace_id: ws.id,
            version_id: version.id,
            transition,
            initiator: "alice",
            created: now,
            factor: if ws.slow { SLOW_FACTOR } else { 1.0 },
            fails: if transition == "start" && self.start_fails.contains(&ws.id) {
                Some(super::WORKSPACE_START_FAULT)
            } else if transition == "start" {
                version.start_fails
            } else {
                None
            },
            canceled: None,
            params,
            on_success: None,
        })
    }

    fn build_json(&self, b: &Build, clock: &Clock, now: f64) -> Value {
        let p = b.phase(now);
        let ws = self.workspaces.iter().find(|w| w.id == b.workspace_id);
        let owner = ws.and_then(|w| self.user(w.owner)).map(|u| u.username);
        let mut job = json!({
            "id": b.job_id,
            "status": p.job,
            "created_at": clock.stamp(b.created),
            "queue_position": 0,
            "queue_size": 0,
        });
        if let Some(t) = p.started {
            job["started_at"] = json!(clock.stamp(t));
        }
        if let Some(t) = p.completed {
            job["completed_at"] = json!(clock.stamp(t));
        }
        if let Some(t) = b.canceled {
            job["canceled_at"] = json!(clock.stamp(t));
        }
        if let Some(e) = p.error {
            job["error"] = json!(e);
        }
        let resources = self.resources_json(b, clock, now);
        json!({
            "id": b.id,
            "build_number": b.number,
            "workspace_id": b.workspace_id,
            "workspace_name": ws.map(|w| w.name.as_str()),
            "workspace_owner_name": owner,
            "template_version_id": b.version_id,
            "template_version_name": self.version(b.version_id).map(|v| v.name),
            "transition": b.transition,
            "status": p.status,
            "reason": "initiator",
            "initiator_name": b.initiator,
            "job": job,
            "resources": resources,
            "has_external_agent": self.version(b.version_id).is_some_and(|v| v.external_agent),
            "created_at": clock.stamp(b.created),
            "updated_at": clock.stamp(p.updated),
        })
    }

    /// A start build's resource and its agent `main`: `connecting`/`created` while the build
    /// runs; when it ends, what the version's [`AgentScript`] says: `connected`/`starting`,
    /// then `ready` after the template's `agent_ready_secs` (at once without a startup script,
    /// `start_error` when the script fails), or `connecting` until the connection timeout and
    /// then `timeout`. Every duration is scaled by the workspace's slowness. A stop (or a
    /// failed start) has no agent.
    fn resources_json(&self, b: &Build, clock: &Clock, now: f64) -> Value {
        if b.transition != "start" {
            return json!([]);
        }
        let p = b.phase(now);
        if matches!(p.job, "failed" | "canceled" | "canceling") {
            return json!([]);
        }
        let resource_id =
            Uuid::from_u128(b.id.as_u128() ^ 0x0000_0000_0000_0000_0000_0000_00a1_0001);
        let agent_id = Uuid::from_u128(b.id.as_u128() ^ 0x0000_0000_0000_0000_0000_0000_00a1_0002);
        let version = self.version(b.version_id);
        let script = version.map_or(AgentScript::Ready, |v| v.agent);
        let script_secs = version
            .and_then(|v| self.template(v.template_id))
            .map_or(1.0, |t| t.agent_ready_secs)
            * b.factor;
        let ended = p.completed.filter(|_| p.job == "succeeded");
        let connected_at = ended.filter(|_| script != AgentScript::NeverConnects);
        // When the startup script ends (ready or start_error).
        let script_end = connected_at.map(|t| {
            t + match script {
                AgentScript::NoScript => 0.0,
                AgentScript::Slow(f) => script_secs * f,
                _ => script_secs,
            }
        });
        let timed_out_at = ended
            .filter(|_| script == AgentScript::NeverConnects)
            .map(|t| t + AGENT_CONNECT_TIMEOUT_SECS * b.factor);
        let script_over = script_end.is_some_and(|r| now >= r);
        let (status, lifecycle, health) = match (connected_at, timed_out_at) {
            (Some(_), _) if script_over && script == AgentScript::StartError => {
                ("connected", "start_error", json!({ "healthy": true }))
            }
            (Some(_), _) if script_over => ("connected", "ready", json!({ "healthy": true })),
            (Some(_), _) => ("connected", "starting", json!({ "healthy": true })),
            (None, Some(t)) if now >= t => (
                "timeout",
                "created",
                json!({ "healthy": false, "reason": "agent is taking too long to connect" }),
            ),
            _ => (
                "connecting",
                "created",
                json!({ "healthy": false, "reason": "agent has not yet connected" }),
            ),
        };
        let ready_at = script_end.filter(|_| script != AgentScript::StartError);
        let changed_at = [connected_at, script_end, timed_out_at]
            .into_iter()
            .flatten()
            .filter(|t| now >= *t)
            .fold(b.created, f64::max);
        let mut agent = json!({
            "id": agent_id,
            "name": "main",
            "resource_id": resource_id,
            "status": status,
            "lifecycle_state": lifecycle,
            "health": health,
            "connection_timeout_seconds": AGENT_CONNECT_TIMEOUT_SECS as i64,
            "troubleshooting_url": "https://coder.com/docs/admin/templates/troubleshooting",
            "version": "v2.36.1",
            "operating_system": "linux",
            "architecture": "amd64",
            "created_at": clock.stamp(b.created),
            "updated_at": clock.stamp(changed_at),
        });
        if let Some(t) = connected_at {
            agent["first_connected_at"] = json!(clock.stamp(t));
            agent["last_connected_at"] = json!(clock.stamp(t));
            agent["started_at"] = json!(clock.stamp(t));
        }
        if let Some(r) = ready_at.filter(|r| now >= *r) {
            agent["ready_at"] = json!(clock.stamp(r));
        }
        json!([{
            "id": resource_id,
            "job_id": b.job_id,
            "name": "workspace",
            "type": "docker_container",
            "hide": false,
            "workspace_transition": "start",
            "agents": [agent],
            "created_at": clock.stamp(b.created),
        }])
    }

    fn workspace_json(&self, ws: &Workspace, clock: &Clock, now: f64) -> Value {
        let template = self.template(ws.template_id);
        let latest = self.latest(ws);
        let active = template.map(|t| t.active_version_id);
        let outdated = self.outdated_of(ws);
        json!({
            "id": ws.id,
            "name": ws.name,
            "owner_id": ws.owner,
            "owner_name": self.user(ws.owner).filter(|_| !ws.owner_hidden).map(|u| u.username),
            "organization_id": ORG_ID,
            "template_id": ws.template_id,
            "template_name": template.map(|t| t.name),
            "template_display_name": template.map(|t| t.display_name),
            "template_active_version_id": active,
            "template_require_active_version": template.is_some_and(|t| t.require_active_version),
            "outdated": outdated,
            "latest_build": latest.map(|b| self.build_json(b, clock, now)),
            "last_used_at": ws.at_work.used.map(|u| clock.stamp(match u {
                Used::At(t) => t,
                Used::Until(t) => now.min(t),
            })),
            "latest_app_status": ws.at_work.app_status.map(|(state, message)| json!({
                "id": Uuid::from_u128(ws.id.as_u128() ^ 0xA9),
                "state": state,
                "message": message,
                "workspace_id": ws.id,
                "created_at": clock.stamp(now - 60.0),
            })),
            "task_id": ws.at_work.task_id,
            "is_prebuild": ws.at_work.prebuild,
            "dormant_at": ws.at_work.dormant_at.map(|t| clock.stamp(t)),
            "created_at": clock.stamp(-30.0 * 86_400.0 * clock.speed),
            "updated_at": clock.stamp(latest.map_or(0.0, |b| b.phase(now).updated)),
        })
    }

    /// True when the workspace's latest build is not on its template's active version.
    fn outdated_of(&self, ws: &Workspace) -> bool {
        let active = self.template(ws.template_id).map(|t| t.active_version_id);
        self.latest(ws)
            .is_some_and(|b| Some(b.version_id) != active)
    }

    fn status_of(&self, ws: &Workspace, now: f64) -> &'static str {
        self.latest(ws).map_or("pending", |b| b.phase(now).status)
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v2/buildinfo", get(build_info))
        .route("/api/v2/workspaces/{workspace}/watch-ws", get(watch_ws))
        .route("/api/v2/workspaces", get(list_workspaces))
        .route("/api/v2/workspaces/{workspace}", get(get_workspace))
        .route("/api/v2/workspaces/{workspace}/builds", post(create_build))
        .route("/api/v2/users/{user}", get(get_user))
        .route(
            "/api/v2/users/{user}/workspace/{name}",
            get(get_workspace_by_name),
        )
        .route("/api/v2/workspacebuilds/{build}", get(get_build))
        .route(
            "/api/v2/workspacebuilds/{build}/cancel",
            patch(cancel_build),
        )
        .route("/api/v2/workspacebuilds/{build}/logs", get(build_logs))
        .route(
            "/api/v2/workspacebuilds/{build}/parameters",
            get(build_parameters),
        )
        .route("/api/v2/templates", get(list_templates))
        .route("/api/v2/templates/{template}", get(get_template))
        .route(
            "/api/v2/templates/{template}/versions",
            get(list_versions).patch(promote_version),
        )
        .route(
            "/api/v2/organizations/{organization}/templates/{templatename}",
            get(get_template_by_name),
        )
        .route(
            "/api/v2/organizations/{organization}/templates/{templatename}/versions/{name}/previous",
            get(get_previous_version),
        )
        .route(
            "/api/v2/templates/{template}/versions/{name}",
            get(get_version_by_name),
        )
        .route("/api/v2/templateversions/{version}", get(get_version))
        .route(
            "/api/v2/templateversions/{version}/rich-parameters",
            get(rich_parameters),
        )
}

/// The world as of now: locked, with the follow-up builds that are due created.
fn world(state: &Shared) -> std::sync::MutexGuard<'_, CoderWorld> {
    let mut world = lock(&state.coder);
    world.materialize(state.clock.now());
    world
}

fn not_found() -> Response {
    coder_error(
        StatusCode::NOT_FOUND,
        "Resource not found or you do not have access to this resource",
        None,
    )
}

fn invalid_uuid(what: &str, value: &str) -> Response {
    coder_error(
        StatusCode::BAD_REQUEST,
        &format!("Invalid UUID {value:?}."),
        Some(&format!("the {what} must be a UUID")),
    )
}

fn with_validations(
    status: StatusCode,
    message: &str,
    validations: &[(String, String)],
) -> Response {
    let list: Vec<Value> = validations
        .iter()
        .map(|(field, detail)| json!({ "field": field, "detail": detail }))
        .collect();
    json_response(status, json!({ "message": message, "validations": list }))
}

fn flaky_503() -> Response {
    coder_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service temporarily unavailable.",
        Some("simulated transient fault; try again"),
    )
}

fn parse_id(what: &str, value: &str) -> Result<Uuid, Response> {
    Uuid::parse_str(value).map_err(|_| invalid_uuid(what, value))
}

/// A request body that must be a JSON object, or Coder's 400 for one that is not (with
/// `detail`, when given).
fn json_object(body: &[u8], detail: Option<&str>) -> Result<Value, Response> {
    match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(coder_error(
            StatusCode::BAD_REQUEST,
            "Request body must be valid JSON.",
            detail,
        )),
    }
}

async fn get_user(State(state): State<Shared>, Path(user): Path<String>) -> Response {
    let world = world(&state);
    // `me` (alice) is a template admin unless the session may not update templates.
    let roles = |u: &User| {
        if u.id == me(&world).id && world.can_update_templates {
            json!([
                {"name": "member", "display_name": "Member"},
                {"name": "template-admin", "display_name": "Template Admin"},
            ])
        } else {
            json!([{"name": "member", "display_name": "Member"}])
        }
    };
    match world.find_user(&user) {
        None => not_found(),
        Some(u) => json_response(
            StatusCode::OK,
            json!({
                "id": u.id,
                "username": u.username,
                "name": u.name,
                "email": format!("{}@example.com", u.username),
                "created_at": state.clock.stamp(-90.0 * 86_400.0 * state.clock.speed),
                "status": "active",
                "roles": roles(u),
            }),
        ),
    }
}

fn answer_workspace(state: &Shared, world: &mut CoderWorld, index: Option<usize>) -> Response {
    let Some(i) = index else { return not_found() };
    if take_flaky(&mut world.workspaces[i].flaky_left) {
        return flaky_503();
    }
    let now = state.clock.now();
    json_response(
        StatusCode::OK,
        world.workspace_json(&world.workspaces[i], &state.clock, now),
    )
}

async fn get_workspace(State(state): State<Shared>, Path(ws): Path<String>) -> Response {
    let id = match parse_id("workspace id", &ws) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut world = world(&state);
    let index = world.workspaces.iter().position(|w| w.id == id);
    answer_workspace(&state, &mut world, index)
}

async fn get_workspace_by_name(
    State(state): State<Shared>,
    Path((user, name)): Path<(String, String)>,
) -> Response {
    let mut world = world(&state);
    let Some(owner) = world.find_user(&user).map(|u| u.id) else {
        return not_found();
    };
    let index = world
        .workspaces
        .iter()
        .position(|w| w.owner == owner && w.name == name);
    answer_workspace(&state, &mut world, index)
}

async fn list_workspaces(
    State(state): State<Shared>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let world = world(&state);
    let now = state.clock.now();
    let mut filters: Vec<(String, String)> = Vec::new();
    for term in query
        .get("q")
        .map(String::as_str)
        .unwrap_or("")
        .split_whitespace()
    {
        let (key, value) = term.split_once(':').unwrap_or(("name", term));
        let key = key.to_ascii_lowercase();
        if !matches!(
            key.as_str(),
            "owner" | "name" | "template" | "status" | "outdated"
        ) {
            return with_validations(
                StatusCode::BAD_REQUEST,
                "Invalid workspace search query.",
                &[("q".into(), format!("{key:?} is not a valid query param"))],
            );
        }
        filters.push((key, value.trim_matches('"').to_string()));
    }
    let mut owner_ids = Vec::new();
    for (key, value) in &filters {
        if key == "owner" {
            match world.find_user(value) {
                Some(u) => owner_ids.push(u.id),
                // An unknown owner matches nothing.
                None => owner_ids.push(Uuid::nil()),
            }
        }
    }
    // Filtering reads only the fields it needs; the JSON is built for the page alone, so a
    // page costs time in proportion to the page, not to the fleet.
    let lowered: Vec<(String, String)> = filters
        .iter()
        .map(|(k, v)| (k.clone(), v.to_lowercase()))
        .collect();
    let matches: Vec<&Workspace> = world
        .workspaces
        .iter()
        .filter(|ws| {
            lowered.iter().all(|(key, value)| match key.as_str() {
                "owner" => owner_ids.contains(&ws.owner),
                "name" => ws.name.to_lowercase().contains(value.as_str()),
                "template" => world
                    .template(ws.template_id)
                    .is_some_and(|t| t.name.eq_ignore_ascii_case(value)),
                "status" => world.status_of(ws, now).eq_ignore_ascii_case(value),
                "outdated" => Some(world.outdated_of(ws)) == value.parse::<bool>().ok(),
                _ => true,
            })
        })
        .collect();
    let count = matches.len();
    let offset = query
        .get("offset")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = query
        .get("limit")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let page: Vec<Value> = matches
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|ws| world.workspace_json(ws, &state.clock, now))
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "workspaces": page, "count": count }),
    )
}

/// (name, value) pairs: parameters, or (field, problem) validations.
type Pairs = Vec<(String, String)>;

/// Validates and resolves the parameters of a new build.
fn resolve_params(
    version: &Version,
    previous: &[(String, String)],
    given: &[(String, String)],
) -> Result<Pairs, Pairs> {
    let mut problems = Vec::new();
    for (name, _) in given {
        if !version.params.iter().any(|p| p.name == name) {
            problems.push((
                name.clone(),
                format!(
                    "parameter {name:?} is not present in the template version {}",
                    version.name
                ),
            ));
        }
    }
    let mut resolved = Vec::new();
    for param in &version.params {
        let prev = previous
            .iter()
            .find(|(n, _)| n == param.name)
            .map(|(_, v)| v.clone());
        let new = given
            .iter()
            .find(|(n, _)| n == param.name)
            .map(|(_, v)| v.clone());
        if let Some(value) = &new {
            if !param.mutable && prev.as_ref().is_some_and(|p| p != value) {
                problems.push((
                    param.name.to_string(),
                    format!(
                        "parameter {:?} is immutable and cannot be updated",
                        param.name
                    ),
                ));
                continue;
            }
            if !param.options.is_empty() && !param.options.contains(&value.as_str()) {
                problems.push((
                    param.name.to_string(),
                    format!("{value:?} is not one of {}", param.options.join(", ")),
                ));
                continue;
            }
            if param.kind == "number" {
                let Ok(n) = value.parse::<i64>() else {
                    problems.push((param.name.to_string(), format!("{value:?} is not a number")));
                    continue;
                };
                if param.min.is_some_and(|m| n < m) || param.max.is_some_and(|m| n > m) {
                    problems.push((
                        param.name.to_string(),
                        format!(
                            "value must be between {} and {}",
                            param.min.unwrap_or(i64::MIN),
                            param.max.unwrap_or(i64::MAX)
                        ),
                    ));
                    continue;
                }
                let before = prev.as_deref().and_then(|p| p.parse::<i64>().ok());
                if param.increasing && before.is_some_and(|b| n < b) {
                    problems.push((
                        param.name.to_string(),
                        format!(
                            "value must be equal or greater than the previous value {}",
                            before.unwrap_or_default()
                        ),
                    ));
                    continue;
                }
            }
        }
        match new
            .or(prev)
            .or_else(|| (!param.required).then(|| param.default.to_string()))
        {
            Some(value) => resolved.push((param.name.to_string(), value)),
            None => problems.push((
                param.name.to_string(),
                "required parameter not provided".into(),
            )),
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(problems)
    }
}

async fn create_build(
    State(state): State<Shared>,
    Path(ws): Path<String>,
    body: Bytes,
) -> Response {
    let ws_id = match parse_id("workspace id", &ws) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let body = match json_object(&body, None) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let transition = match body.get("transition").and_then(Value::as_str) {
        Some("start") => "start",
        Some("stop") => "stop",
        Some("delete") => "delete",
        other => {
            return with_validations(
                StatusCode::BAD_REQUEST,
                "Validation failed.",
                &[(
                    "transition".into(),
                    format!(
                        "{:?} is not a valid transition: start, stop or delete",
                        other.unwrap_or("")
                    ),
                )],
            );
        }
    };
    let version_given = match body.get("template_version_id") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
            Some(id) => Some(id),
            None => {
                return with_validations(
                    StatusCode::BAD_REQUEST,
                    "Validation failed.",
                    &[("template_version_id".into(), "must be a UUID".into())],
                );
            }
        },
    };
    let mut given = Vec::new();
    if let Some(list) = body.get("rich_parameter_values").and_then(Value::as_array) {
        for item in list {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            let value = item
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default();
            given.push((name.to_string(), value.to_string()));
        }
    }

    let now = state.clock.now();
    let mut world = world(&state);
    let on_success = if world.on_success {
        match parse_on_success(&body, transition, world.can_update_templates) {
            Ok(o) => o,
            Err(refused) => return refused,
        }
    } else {
        None // an older server ignores fields it does not know: it only stops
    };
    let Some(wi) = world.workspaces.iter().position(|w| w.id == ws_id) else {
        return not_found();
    };
    let ws = world.workspaces[wi].clone();
    let Some(latest) = world.latest(&ws).cloned() else {
        return not_found();
    };
    if latest.is_active(now) {
        return coder_error(
            StatusCode::CONFLICT,
            "A workspace build is already active.",
            Some(&format!(
                "build #{} is {}",
                latest.number,
                latest.phase(now).status
            )),
        );
    }
    if transition == "stop"
        && version_given.is_none()
        && latest.transition == "stop"
        && latest.phase(now).status == "stopped"
    {
        return with_validations(
            StatusCode::BAD_REQUEST,
            "Validation failed.",
            &[(
                "transition".into(),
                "the workspace is already stopped".into(),
            )],
        );
    }
    let mut build = match world.new_build(&ws, &latest, transition, version_given, &given, now) {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if on_success.is_some() {
        build.on_success = on_success;
        world.pending_chains.push(build.id);
    }
    let answer = world.build_json(&build, &state.clock, now);
    world.workspaces[wi].builds.push(build.id);
    world.builds.insert(build.id, build);
    world.note_active_builds(now);
    json_response(StatusCode::CREATED, answer)
}

/// Reads `on_success` the way Coder ≥ 2.36 does: only on a `stop`, without `dry_run`,
/// `orphan` or `state` (400); its transition must be `start`; pinning a version needs
/// template-update permission (403, nothing created).
fn parse_on_success(
    body: &Value,
    transition: &str,
    can_pin: bool,
) -> Result<Option<OnSuccess>, Response> {
    let on = match body.get("on_success") {
        None | Some(Value::Null) => return Ok(None),
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            return Err(with_validations(
                StatusCode::BAD_REQUEST,
                "Validation failed.",
                &[("on_success".into(), "must be an object".into())],
            ));
        }
    };
    let invalid = |detail: &str| {
        Err(with_validations(
            StatusCode::BAD_REQUEST,
            "Invalid on_success request.",
            &[("on_success".into(), detail.to_string())],
        ))
    };
    if transition != "stop" {
        return invalid("on_success is only supported on a stop build");
    }
    let set = |key: &str| match body.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    for key in ["dry_run", "orphan", "state"] {
        if set(key) {
            return invalid(&format!("on_success cannot be combined with {key}"));
        }
    }
    if on.get("transition").and_then(Value::as_str) != Some("start") {
        return invalid("on_success.transition must be \"start\"");
    }
    let version = match on.get("template_version_id") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
            Some(id) => Some(id),
            None => return invalid("on_success.template_version_id must be a UUID"),
        },
    };
    if version.is_some() && !can_pin {
        return Err(coder_error(
            StatusCode::FORBIDDEN,
            "Unauthorized to queue follow-up workspace build.",
            Some("pinning template_version_id needs permission to update the template"),
        ));
    }
    let params = on
        .get("rich_parameter_values")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|item| {
                    let field = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
                    (field("name").to_string(), field("value").to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(OnSuccess { version, params }))
}

fn find_build(world: &CoderWorld, raw: &str) -> Result<Build, Response> {
    let id = parse_id("workspace build id", raw)?;
    world.builds.get(&id).cloned().ok_or_else(not_found)
}

async fn get_build(State(state): State<Shared>, Path(build): Path<String>) -> Response {
    let world = world(&state);
    match find_build(&world, &build) {
        Ok(b) => json_response(
            StatusCode::OK,
            world.build_json(&b, &state.clock, state.clock.now()),
        ),
        Err(r) => r,
    }
}

async fn cancel_build(State(state): State<Shared>, Path(build): Path<String>) -> Response {
    let now = state.clock.now();
    let mut world = world(&state);
    let b = match find_build(&world, &build) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match b.phase(now).job {
        "pending" | "running" => {
            if let Some(stored) = world.builds.get_mut(&b.id) {
                stored.canceled = Some(now);
            }
            json_response(
                StatusCode::OK,
                json!({ "message": "Job has been marked as canceled..." }),
            )
        }
        "canceling" | "canceled" => coder_error(
            StatusCode::BAD_REQUEST,
            "Job has already been marked as canceled!",
            None,
        ),
        _ => coder_error(StatusCode::BAD_REQUEST, "Job has already completed!", None),
    }
}

/// The log lines of build `b` written by `now`, with ids in `(after, before)`.
fn log_lines(
    b: &Build,
    clock: &Clock,
    now: f64,
    after: Option<i64>,
    before: Option<i64>,
) -> Vec<Value> {
    let run_from = b.created + b.pending_secs();
    let until = match b.canceled {
        Some(c) => c.min(now),
        None => now,
    };
    let wanted = |id: i64| after.is_none_or(|a| id > a) && before.is_none_or(|bf| id < bf);
    let mut lines: Vec<Value> = Vec::new();
    for (i, (offset, level, stage, output)) in b.log_script().into_iter().enumerate() {
        let at = run_from + offset;
        if at > until {
            break;
        }
        // Log ids are unique across builds and increase in time, like Coder's.
        let log_id = b.seq * 1000 + i as i64 + 1;
        if !wanted(log_id) {
            continue;
        }
        lines.push(json!({
            "id": log_id,
            "created_at": clock.stamp(at),
            "log_level": level,
            "log_source": "provisioner",
            "stage": stage,
            "output": output,
        }));
    }
    if let Some(c) = b.canceled {
        let log_id = b.seq * 1000 + 999;
        if now >= c && wanted(log_id) {
            lines.push(json!({
                "id": log_id,
                "created_at": clock.stamp(c),
                "log_level": "warn",
                "log_source": "provisioner_daemon",
                "stage": "Cleaning Up",
                "output": "the job was canceled",
            }));
        }
    }
    lines
}

/// `GET /workspacebuilds/{id}/logs`: JSON, or with any `follow` parameter a WebSocket (one
/// `ProvisionerJobLog` per message, `after=` resumes, closed when the job ends), as Coder.
async fn build_logs(
    State(state): State<Shared>,
    Path(build): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = upgrade.ok();
    let world = world(&state);
    let b = match find_build(&world, &build) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let after = query.get("after").and_then(|s| s.parse::<i64>().ok());
    let before = query.get("before").and_then(|s| s.parse::<i64>().ok());
    if query.contains_key("follow") {
        let Some(upgrade) = upgrade else {
            return coder_error(
                StatusCode::UPGRADE_REQUIRED,
                "follow upgrades to a WebSocket.",
                Some("send a WebSocket handshake, or leave out follow for a JSON answer"),
            );
        };
        let drop_after = world.ws_drop_after;
        let flood = world.log_flood_bytes.map(flood_frame);
        drop(world);
        return upgrade
            .on_upgrade(move |socket| stream_logs(socket, state, b.id, after, drop_after, flood));
    }
    json_response(
        StatusCode::OK,
        Value::Array(log_lines(
            &b,
            &state.clock,
            state.clock.now(),
            after,
            before,
        )),
    )
}

/// How often a simulated WebSocket looks for news (real time).
const WS_TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// Sends one JSON frame and counts it. False when the socket is gone, or when `drop_after`
/// frames were sent already: then the stream is cut without a close frame (a simulated
/// network fault).
async fn send_frame(
    socket: &mut WebSocket,
    frame: &Value,
    sent: &mut u32,
    drop_after: Option<u32>,
) -> bool {
    if drop_after.is_some_and(|n| *sent >= n) {
        return false;
    }
    if socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .is_err()
    {
        return false;
    }
    *sent += 1;
    true
}

/// One line of a flooding build log (`--log-flood-bytes`): `bytes` of text, no id (so that
/// the build's own lines still come in order).
fn flood_frame(bytes: usize) -> axum::extract::ws::Utf8Bytes {
    json!({
        "log_level": "info",
        "log_source": "provisioner",
        "stage": "Flooding",
        "output": "x".repeat(bytes.max(1)),
    })
    .to_string()
    .into()
}

async fn stream_logs(
    mut socket: WebSocket,
    state: Shared,
    build_id: Uuid,
    mut after: Option<i64>,
    drop_after: Option<u32>,
    flood: Option<axum::extract::ws::Utf8Bytes>,
) {
    let mut sent = 0u32;
    loop {
        let (lines, ended) = {
            let world = world(&state);
            let Some(b) = world.builds.get(&build_id) else {
                return;
            };
            let now = state.clock.now();
            (
                log_lines(b, &state.clock, now, after, None),
                !b.is_active(now),
            )
        };
        for line in lines {
            if !send_frame(&mut socket, &line, &mut sent, drop_after).await {
                return;
            }
            after = line["id"].as_i64().or(after);
        }
        if ended {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: axum::extract::ws::close_code::NORMAL,
                    reason: "".into(),
                })))
                .await;
            return;
        }
        match &flood {
            // Until the next look: flood lines as fast as the client takes them.
            Some(frame) => {
                let until = tokio::time::Instant::now() + WS_TICK;
                while tokio::time::Instant::now() < until {
                    // Never cut a send short: a frame written halfway breaks the stream.
                    if socket.send(Message::Text(frame.clone())).await.is_err() {
                        return;
                    }
                }
            }
            None => tokio::time::sleep(WS_TICK).await,
        }
    }
}

/// `GET /workspaces/{id}/watch-ws`: `{type: "data", data: <Workspace>}` on each change, and a
/// `ping` every few seconds, as Coder.
async fn watch_ws(
    State(state): State<Shared>,
    Path(ws): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = upgrade.ok();
    let id = match parse_id("workspace id", &ws) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let drop_after = {
        let world = world(&state);
        if !world.workspaces.iter().any(|w| w.id == id) {
            return not_found();
        }
        world.ws_drop_after
    };
    let Some(upgrade) = upgrade else {
        return coder_error(
            StatusCode::UPGRADE_REQUIRED,
            "watch-ws is a WebSocket.",
            Some("send a WebSocket handshake"),
        );
    };
    upgrade.on_upgrade(move |socket| stream_workspace(socket, state, id, drop_after))
}

async fn stream_workspace(mut socket: WebSocket, state: Shared, id: Uuid, drop_after: Option<u32>) {
    const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let mut last: Option<Value> = None;
    let mut sent = 0u32;
    let mut last_ping = std::time::Instant::now();
    loop {
        let snapshot = {
            let world = world(&state);
            let Some(ws) = world.workspaces.iter().find(|w| w.id == id) else {
                return;
            };
            world.workspace_json(ws, &state.clock, state.clock.now())
        };
        let mut messages = Vec::new();
        if last.as_ref() != Some(&snapshot) {
            messages.push(json!({ "type": "data", "data": snapshot }));
            last = Some(snapshot);
        }
        if last_ping.elapsed() >= PING_EVERY {
            messages.push(json!({ "type": "ping" }));
            last_ping = std::time::Instant::now();
        }
        for m in messages {
            if !send_frame(&mut socket, &m, &mut sent, drop_after).await {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(WS_TICK) => {}
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn build_info(State(state): State<Shared>) -> Response {
    let world = world(&state);
    let version = world.version.clone();
    let commit = version.split('+').nth(1).unwrap_or("sim");
    json_response(
        StatusCode::OK,
        json!({
            "version": version,
            "external_url": format!("https://github.com/coder/coder/commit/{commit}"),
            "dashboard_url": "",
            "deployment_id": ORG_ID,
            "agent_api_version": "2.5",
            "provisioner_api_version": "1.9",
            "upgrade_message": "",
            "telemetry": false,
            "workspace_proxy": false,
        }),
    )
}

async fn build_parameters(State(state): State<Shared>, Path(build): Path<String>) -> Response {
    let world = world(&state);
    match find_build(&world, &build) {
        Ok(b) => json_response(
            StatusCode::OK,
            Value::Array(
                b.params
                    .iter()
                    .map(|(n, v)| json!({ "name": n, "value": v }))
                    .collect(),
            ),
        ),
        Err(r) => r,
    }
}

async fn get_template(State(state): State<Shared>, Path(template): Path<String>) -> Response {
    let id = match parse_id("template id", &template) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let world = world(&state);
    let Some(t) = world.template(id) else {
        return not_found();
    };
    json_response(StatusCode::OK, template_json(t, &state.clock))
}

/// The one organization: Coder's default, `coder`.
const ORG_NAME: &str = "coder";

/// True when `key` names the organization as Coder's organization parameter does: its ID,
/// its name, or `default` (the default organization).
fn is_our_org(key: &str) -> bool {
    Uuid::parse_str(key).ok() == Some(ORG_ID)
        || key.eq_ignore_ascii_case(ORG_NAME)
        || key == "default"
}

/// `GET /organizations/{organization}/templates/{templatename}`: a template by name, the
/// organization by ID or name.
async fn get_template_by_name(
    State(state): State<Shared>,
    Path((org, name)): Path<(String, String)>,
) -> Response {
    if !is_our_org(&org) {
        return not_found();
    }
    let world = world(&state);
    match world.templates.iter().find(|t| t.name == name) {
        Some(t) => json_response(StatusCode::OK, template_json(t, &state.clock)),
        None => not_found(),
    }
}

/// `GET /organizations/{organization}/templates/{templatename}/versions/{name}/previous`:
/// the version of the template created just before that one; 204 when it is the first.
async fn get_previous_version(
    State(state): State<Shared>,
    Path((org, template, name)): Path<(String, String, String)>,
) -> Response {
    if !is_our_org(&org) {
        return not_found();
    }
    let world = world(&state);
    let Some(t) = world.templates.iter().find(|t| t.name == template) else {
        return not_found();
    };
    let mine: Vec<&Version> = world
        .versions
        .iter()
        .filter(|v| v.template_id == t.id)
        .collect();
    match mine.iter().position(|v| v.name == name) {
        None => coder_error(
            StatusCode::NOT_FOUND,
            &format!("No template version found by name \"{name}\"."),
            None,
        ),
        Some(0) => StatusCode::NO_CONTENT.into_response(),
        Some(i) => json_response(
            StatusCode::OK,
            version_json(&world, mine[i - 1], &state.clock),
        ),
    }
}

/// `PATCH /templates/{id}/versions` `{"id": VERSION}`: makes that version the template's
/// active version (template admin), answered like Coder: 200 `{message}`; 400 for a body
/// that is not JSON or has no `id`, a version of another template or an archived one; 404
/// for an unknown template or version; 403 for a version that was not imported, or when the
/// session may not update templates ([`super::SimOptions::coder_can_pin_versions`]).
async fn promote_version(
    State(state): State<Shared>,
    Path(template): Path<String>,
    body: Bytes,
) -> Response {
    let id = match parse_id("template id", &template) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let body = match json_object(&body, Some("send {\"id\": \"<template version id>\"}")) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let version = match body.get("id") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
            Some(id) => Some(id),
            None => {
                return coder_error(
                    StatusCode::BAD_REQUEST,
                    "Request body must be valid JSON.",
                    Some("id must be a UUID"),
                );
            }
        },
    };
    let Some(version) = version.filter(|v| !v.is_nil()) else {
        return with_validations(
            StatusCode::BAD_REQUEST,
            "Validation failed.",
            &[(
                "id".into(),
                "Validation failed for tag \"required\" with value: \"00000000-0000-0000-0000-000000000000\""
                    .into(),
            )],
        );
    };
    let now = state.clock.now();
    let mut world = world(&state);
    if world.template(id).is_none() {
        return not_found();
    }
    match world.promote(id, version, now) {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({ "message": "Updated the active template version!" }),
        ),
        Err(refused) => refused,
    }
}

fn template_json(t: &Template, clock: &Clock) -> serde_json::Value {
    let created = -30.0 * 86_400.0 * clock.speed;
    json!({
        "id": t.id,
        "name": t.name,
        "display_name": t.display_name,
        "description": "",
        "icon": "",
        "organization_id": ORG_ID,
        "organization_name": ORG_NAME,
        "organization_display_name": "Coder",
        "provisioner": "terraform",
        "active_version_id": t.active_version_id,
        "require_active_version": t.require_active_version,
        "deprecated": false,
        "deprecation_message": "",
        "allow_user_cancel_workspace_jobs": true,
        "build_time_stats": build_time_stats(clock.speed),
        "created_at": clock.stamp(created),
        "updated_at": clock.stamp(t.updated),
    })
}

/// `GET /templates`: every template.
async fn list_templates(State(state): State<Shared>) -> Response {
    let world = world(&state);
    let all: Vec<_> = world
        .templates
        .iter()
        .map(|t| template_json(t, &state.clock))
        .collect();
    json_response(StatusCode::OK, json!(all))
}

#[derive(Debug, serde::Deserialize)]
struct VersionsQuery {
    after_id: Option<Uuid>,
    include_archived: Option<bool>,
    limit: Option<usize>,
}

/// `GET /templates/{id}/versions`: its versions, oldest first, paged like Coder's.
async fn list_versions(
    State(state): State<Shared>,
    Path(template): Path<String>,
    axum::extract::Query(q): axum::extract::Query<VersionsQuery>,
) -> Response {
    let id = match parse_id("template id", &template) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let world = world(&state);
    if world.template(id).is_none() {
        return not_found();
    }
    let mine: Vec<&Version> = world
        .versions
        .iter()
        .filter(|v| v.template_id == id)
        .filter(|v| q.include_archived.unwrap_or(false) || !v.archived)
        .collect();
    let start = match q.after_id {
        Some(after) => match mine.iter().position(|v| v.id == after) {
            Some(i) => i + 1,
            None => return not_found(),
        },
        None => 0,
    };
    let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let page: Vec<_> = mine
        .iter()
        .skip(start)
        .take(limit)
        .map(|v| version_json(&world, v, &state.clock))
        .collect();
    json_response(StatusCode::OK, json!(page))
}

/// `GET /templates/{id}/versions/{name}`: one version object (as the real server answers).
async fn get_version_by_name(
    State(state): State<Shared>,
    Path((template, name)): Path<(String, String)>,
) -> Response {
    let id = match parse_id("template id", &template) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let world = world(&state);
    match world
        .versions
        .iter()
        .find(|v| v.template_id == id && v.name == name)
    {
        Some(v) => json_response(StatusCode::OK, version_json(&world, v, &state.clock)),
        None => coder_error(
            StatusCode::NOT_FOUND,
            &format!("No template version found by name \"{name}\"."),
            None,
        ),
    }
}

/// The template's build durations as Coder reports them (milliseconds of real time): what a
/// build of a workspace that is not slow takes at this speed.
fn build_time_stats(speed: f64) -> serde_json::Value {
    let ms = |secs: f64| ((PENDING_SECS + secs) / speed * 1000.0).round() as i64;
    json!({
        "start": {"p50": ms(START_SECS), "p95": ms(START_SECS)},
        "stop": {"p50": ms(STOP_SECS), "p95": ms(STOP_SECS)},
        "delete": {"p50": ms(STOP_SECS), "p95": ms(STOP_SECS)},
    })
}

async fn get_version(State(state): State<Shared>, Path(version): Path<String>) -> Response {
    let id = match parse_id("template version id", &version) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let world = world(&state);
    let Some(v) = world.version(id) else {
        return not_found();
    };
    json_response(StatusCode::OK, version_json(&world, v, &state.clock))
}

/// A version as Coder shows it; the later a version is seeded, the later it was created (a
/// day apart, the newest a day old).
fn version_json(world: &CoderWorld, v: &Version, clock: &super::Clock) -> serde_json::Value {
    let position = world
        .versions
        .iter()
        .filter(|o| o.template_id == v.template_id)
        .position(|o| o.id == v.id)
        .unwrap_or(0);
    let count = world
        .versions
        .iter()
        .filter(|o| o.template_id == v.template_id)
        .count();
    let days_ago = (count - position) as f64;
    let created = -days_ago * 86_400.0 * clock.speed;
    let mut job = json!({
        "id": Uuid::from_u128(v.id.as_u128() ^ 0xffff),
        "status": if v.import == Import::Done { "succeeded" } else { "running" },
        "created_at": clock.stamp(created),
        "started_at": clock.stamp(created),
        "queue_position": 0,
        "queue_size": 0,
    });
    if v.import == Import::Done {
        job["completed_at"] = json!(clock.stamp(created + 30.0));
    }
    json!({
        "id": v.id,
        "name": v.name,
        "template_id": v.template_id,
        "organization_id": ORG_ID,
        "archived": v.archived,
        "message": v.message,
        "readme": "",
        "warnings": [],
        "created_by": { "id": me(world).id, "username": me(world).username },
        "job": job,
        "created_at": clock.stamp(created),
        "updated_at": clock.stamp(created),
    })
}

async fn rich_parameters(State(state): State<Shared>, Path(version): Path<String>) -> Response {
    let id = match parse_id("template version id", &version) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let world = world(&state);
    let Some(v) = world.version(id) else {
        return not_found();
    };
    let params: Vec<Value> = v
        .params
        .iter()
        .map(|p| {
            let mut j = json!({
                "name": p.name,
                "display_name": p.display_name,
                "description": p.description,
                "description_plaintext": p.description,
                "type": p.kind,
                "mutable": p.mutable,
                "ephemeral": false,
                "required": p.required,
                "default_value": p.default,
                "icon": "",
                "options": p.options.iter().map(|o| json!({
                    "name": o, "description": "", "value": o, "icon": "",
                })).collect::<Vec<_>>(),
                "validation_error": "",
                "validation_regex": "",
            });
            if let Some(m) = p.min {
                j["validation_min"] = json!(m);
            }
            if let Some(m) = p.max {
                j["validation_max"] = json!(m);
            }
            if p.increasing {
                j["validation_monotonic"] = json!("increasing");
            }
            j
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(params))
}
