//! The simulated Molecule control plane: CP admin (`/cp/admin/workspaces/{id}/…` and/or
//! `/api/v1/admin/workspaces/{id}/…`, see [`CpAdminLayout`]) and the tenant API
//! (`/tenant/workspaces/{id}`).

use std::collections::BTreeMap;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::get,
};
use serde_json::{Value, json};

use super::{
    Clock, CpAdminLayout, Shared, SimFaults, json_response, lock, molecule_error, take_flaky,
};

const PROVIDERS: [&str; 3] = ["aws", "hetzner", "gcp"];

/// How a seeded workspace's migrations go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completes,
    Fails,
    RollsBack,
    NewState,
}

#[derive(Debug, Clone)]
struct Step {
    state: &'static str,
    secs: f64,
    detail: String,
}

#[derive(Debug, Clone)]
struct MigrationRun {
    from: String,
    to: String,
    /// Simulated time it started.
    started: f64,
    steps: Vec<Step>,
    end_state: &'static str,
    end_detail: String,
    target_instance_id: String,
}

/// A migration's state at a point in time.
struct Snapshot<'a> {
    state: &'a str,
    detail: &'a str,
    updated: f64,
    terminal: bool,
}

impl MigrationRun {
    fn at(&self, now: f64) -> Snapshot<'_> {
        let mut t = self.started;
        for step in &self.steps {
            if now < t + step.secs {
                return Snapshot {
                    state: step.state,
                    detail: &step.detail,
                    updated: t,
                    terminal: false,
                };
            }
            t += step.secs;
        }
        Snapshot {
            state: self.end_state,
            detail: &self.end_detail,
            updated: t,
            terminal: true,
        }
    }

    fn to_json(&self, clock: &Clock, now: f64) -> Value {
        let s = self.at(now);
        json!({
            "migration": {
                "state": s.state,
                "from_provider": self.from,
                "to_provider": self.to,
                "detail": s.detail,
                "started_at": clock.stamp(self.started),
                "updated_at": clock.stamp(s.updated),
            },
            "terminal": s.terminal,
        })
    }
}

#[derive(Debug, Clone)]
struct MoleculeWorkspace {
    id: String,
    name: String,
    provider: String,
    instance_id: String,
    outcome: Outcome,
    flaky_left: u32,
    migration: Option<MigrationRun>,
}

impl MoleculeWorkspace {
    /// Where the workspace runs now: the target once a migration completed.
    fn current(&self, now: f64) -> (&str, &str) {
        match &self.migration {
            Some(run) if run.at(now).state == "completed" => (&run.to, &run.target_instance_id),
            _ => (&self.provider, &self.instance_id),
        }
    }

    /// Folds a finished migration into the workspace (before a new one starts).
    fn settle(&mut self, now: f64) {
        if let Some(run) = &self.migration {
            if run.at(now).state == "completed" {
                self.provider = run.to.clone();
                self.instance_id = run.target_instance_id.clone();
            }
        }
    }

    fn plan(&self, from: &str, to: &str, started: f64) -> MigrationRun {
        let mut steps = vec![
            Step {
                state: "snapshotting",
                secs: 180.0,
                detail: format!("snapshotting {} on {from}", self.instance_id),
            },
            Step {
                state: "snapshotted",
                secs: 30.0,
                detail: "snapshot taken; copying it to the target cloud".into(),
            },
            Step {
                state: "provisioning_target",
                secs: 420.0,
                detail: format!("provisioning the workspace on {to}"),
            },
        ];
        let target_instance_id = match to {
            "aws" => format!("i-0{:016x}", fxhash(&self.id, started)),
            "hetzner" => format!("hz-{}", fxhash(&self.id, started) % 10_000_000),
            _ => format!("gce-{}", fxhash(&self.id, started) % 10_000_000_000),
        };
        let (end_state, end_detail) = match self.outcome {
            Outcome::Fails => {
                // Fails half-way through provisioning: before cutover.
                if let Some(last) = steps.last_mut() {
                    last.secs = 210.0;
                }
                (
                    "failed",
                    format!(
                        "provisioning on {to} failed: quota exceeded for instance type; the \
                         source on {from} is still running, nothing was lost"
                    ),
                )
            }
            Outcome::RollsBack => {
                steps.push(Step {
                    state: "target_healthy",
                    secs: 120.0,
                    detail: format!("the target on {to} is healthy; cutting over"),
                });
                steps.push(Step {
                    state: "retiring_source",
                    secs: 60.0,
                    detail: "cutover health check failing; rolling back".into(),
                });
                (
                    "rolled_back",
                    format!(
                        "the cutover health check failed: the target on {to} was torn down and \
                         the workspace points at {from} again"
                    ),
                )
            }
            Outcome::Completes | Outcome::NewState => {
                steps.push(Step {
                    state: "target_healthy",
                    secs: 120.0,
                    detail: format!("the target on {to} is healthy; cutting over"),
                });
                if self.outcome == Outcome::NewState {
                    steps.push(Step {
                        state: "verifying_target",
                        secs: 60.0,
                        detail: "verifying the target's data against the snapshot".into(),
                    });
                }
                steps.push(Step {
                    state: "retiring_source",
                    secs: 240.0,
                    detail: format!("cut over to {to}; retiring {} on {from}", self.instance_id),
                });
                (
                    "completed",
                    format!("the workspace now runs on {to} ({target_instance_id})"),
                )
            }
        };
        MigrationRun {
            from: from.to_string(),
            to: to.to_string(),
            started,
            steps,
            end_state,
            end_detail,
            target_instance_id,
        }
    }
}

/// The id of bulk workspace `i` (1-based): `ws-bulk-0001`; more digits past 9999.
pub(crate) fn bulk_id(i: usize) -> String {
    format!("ws-bulk-{i:04}")
}

/// A small deterministic hash for instance ids.
fn fxhash(id: &str, t: f64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes().chain(t.to_bits().to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) struct MoleculeWorld {
    workspaces: BTreeMap<String, MoleculeWorkspace>,
}

pub(crate) fn seed(clock: &Clock, faults: &SimFaults, bulk: usize) -> MoleculeWorld {
    let rows: [(&str, &str, &str, &str, Outcome); 9] = [
        (
            "ws-aws-demo",
            "demo on aws",
            "aws",
            "i-0a1b2c3d4e5f60718",
            Outcome::Completes,
        ),
        (
            "ws-hetzner-demo",
            "demo on hetzner",
            "hetzner",
            "hz-4217781",
            Outcome::Completes,
        ),
        (
            "ws-gcp-demo",
            "demo on gcp",
            "gcp",
            "gce-7730118842",
            Outcome::Completes,
        ),
        (
            "ws-migrated",
            "already migrated",
            "aws",
            "i-0c0ffee000000042",
            Outcome::Completes,
        ),
        (
            "ws-migrating",
            "migration in progress",
            "aws",
            "i-0feedc0ffee000001",
            Outcome::Completes,
        ),
        (
            "ws-fails-migration",
            "migration fails",
            "aws",
            "i-0badbadbad0000001",
            Outcome::Fails,
        ),
        (
            "ws-rolls-back",
            "migration rolls back",
            "hetzner",
            "hz-9000001",
            Outcome::RollsBack,
        ),
        (
            "ws-new-state",
            "reports a newer state",
            "gcp",
            "gce-1000000001",
            Outcome::NewState,
        ),
        (
            "ws-flaky",
            "first reads answer 503",
            "aws",
            "i-0f1a4e0000000001",
            Outcome::Completes,
        ),
    ];
    let mut workspaces = BTreeMap::new();
    for (id, name, provider, instance, outcome) in rows {
        let flaky_left = if id == "ws-flaky" {
            faults.flaky_gets
        } else {
            0
        };
        workspaces.insert(
            id.to_string(),
            MoleculeWorkspace {
                id: id.to_string(),
                name: name.to_string(),
                provider: provider.into(),
                instance_id: instance.into(),
                outcome,
                flaky_left,
                migration: None,
            },
        );
    }
    // ws-migrated: an aws→gcp migration that completed two days ago.
    if let Some(ws) = workspaces.get_mut("ws-migrated") {
        let mut run = ws.plan("aws", "gcp", 0.0);
        run.target_instance_id = "gce-5519027731".into();
        run.end_detail = "the workspace now runs on gcp (gce-5519027731)".into();
        let total: f64 = run.steps.iter().map(|s| s.secs).sum();
        run.started = -2.0 * 86_400.0 * clock.speed - total;
        ws.migration = Some(run);
    }
    // ws-migrating: an aws→hetzner migration started a minute ago (simulated).
    if let Some(ws) = workspaces.get_mut("ws-migrating") {
        ws.migration = Some(ws.plan("aws", "hetzner", -60.0));
    }
    // Bulk workspaces for fleet-scale runs: ws-bulk-0001…, on aws, migrating normally.
    for i in 1..=bulk {
        let id = bulk_id(i);
        workspaces.insert(
            id.clone(),
            MoleculeWorkspace {
                name: format!("bulk workspace {i}"),
                instance_id: format!("i-0b{i:015x}"),
                id,
                provider: "aws".into(),
                outcome: Outcome::Completes,
                flaky_left: 0,
                migration: None,
            },
        );
    }
    MoleculeWorld { workspaces }
}

pub(crate) fn routes(layout: CpAdminLayout) -> Router<Shared> {
    let mut router = Router::new();
    for prefix in layout.prefixes() {
        router = router
            .route(
                &format!("{prefix}/workspaces/{{id}}/migrate-provider"),
                get(migration_status).post(migrate_provider),
            )
            .route(
                &format!("{prefix}/workspaces/{{id}}/migration-status"),
                get(migration_status),
            );
    }
    router
        .route("/tenant/workspaces", get(tenant_workspaces))
        .route("/tenant/workspaces/{id}", get(tenant_workspace))
}

fn bad_request(error: &str, detail: &str) -> Response {
    molecule_error(StatusCode::BAD_REQUEST, error, Some(detail))
}

fn unknown_workspace(id: &str) -> Response {
    molecule_error(
        StatusCode::NOT_FOUND,
        "workspace not found",
        Some(&format!("no workspace with id {id:?}")),
    )
}

fn flaky_503() -> Response {
    molecule_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "service temporarily unavailable",
        Some("simulated transient fault; try again"),
    )
}

async fn migrate_provider(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if state.faults.migrator_unconfigured {
        return molecule_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "migrator not configured",
            Some("this control plane has no cross-cloud migrator (simulated fault)"),
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("invalid request body", "the body must be a JSON object"),
        Err(e) => return bad_request("invalid request body", &format!("not JSON: {e}")),
    };
    if body.get("confirm") != Some(&Value::Bool(true)) {
        return bad_request(
            "confirmation required",
            "a migration mutates two clouds: send \"confirm\": true",
        );
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let Some(to) = text("to") else {
        return bad_request(
            "invalid provider",
            "\"to\" is required: one of aws, hetzner, gcp",
        );
    };
    let Some(from) = text("from") else {
        return bad_request(
            "invalid provider",
            "\"from\" is required: one of aws, hetzner, gcp",
        );
    };
    for (field, value) in [("from", &from), ("to", &to)] {
        if !PROVIDERS.contains(&value.as_str()) {
            return bad_request(
                &format!("invalid provider {value:?}"),
                &format!("\"{field}\" must be one of aws, hetzner, gcp"),
            );
        }
    }
    if from == to {
        return bad_request(
            "from and to are the same",
            &format!("the workspace is already on {to}"),
        );
    }
    let instance = text("from_instance_id").filter(|s| !s.trim().is_empty());
    if from != "aws" && instance.is_none() {
        return bad_request(
            "from_instance_id required",
            &format!("from_instance_id is required when migrating from {from}"),
        );
    }
    let now = state.clock.now();
    let mut world = lock(&state.molecule);
    let Some(ws) = world.workspaces.get_mut(id.as_str()) else {
        return unknown_workspace(&id);
    };
    if let Some(run) = &ws.migration {
        let s = run.at(now);
        if !s.terminal {
            return molecule_error(
                StatusCode::CONFLICT,
                "migration already in progress",
                Some(&format!(
                    "a migration {}→{} is in state {}",
                    run.from, run.to, s.state
                )),
            );
        }
    }
    ws.settle(now);
    if ws.provider != from {
        return bad_request(
            "from does not match the workspace",
            &format!("workspace {id} runs on {}, not {from}", ws.provider),
        );
    }
    ws.migration = Some(ws.plan(&from, &to, now));
    json_response(
        StatusCode::ACCEPTED,
        json!({
            "status": "migration_started",
            "workspace_id": id,
            "from": from,
            "to": to,
            "note": "a migration takes 15-20 minutes; poll GET …/migration-status",
        }),
    )
}

async fn migration_status(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let now = state.clock.now();
    let mut world = lock(&state.molecule);
    let Some(ws) = world.workspaces.get_mut(id.as_str()) else {
        return unknown_workspace(&id);
    };
    if take_flaky(&mut ws.flaky_left) {
        return flaky_503();
    }
    match &ws.migration {
        None => molecule_error(
            StatusCode::NOT_FOUND,
            "no migration",
            Some(&format!("workspace {id} has never been migrated")),
        ),
        Some(run) => json_response(StatusCode::OK, run.to_json(&state.clock, now)),
    }
}

/// The tenant API's workspace list (`GET /tenant/workspaces`): id, name, status, provider.
async fn tenant_workspaces(State(state): State<Shared>) -> Response {
    let now = state.clock.now();
    let world = lock(&state.molecule);
    let rows: Vec<Value> = world
        .workspaces
        .values()
        .map(|ws| tenant_json(ws, now))
        .collect();
    json_response(StatusCode::OK, Value::Array(rows))
}

/// A workspace as the tenant API shows it.
fn tenant_json(ws: &MoleculeWorkspace, now: f64) -> Value {
    let (provider, instance) = ws.current(now);
    let migrating = ws.migration.as_ref().is_some_and(|r| !r.at(now).terminal);
    json!({
        "id": ws.id,
        "name": ws.name,
        "status": if migrating { "migrating" } else { "running" },
        "compute": { "provider": provider, "instance_id": instance },
    })
}

async fn tenant_workspace(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let now = state.clock.now();
    let mut world = lock(&state.molecule);
    let Some(ws) = world.workspaces.get_mut(id.as_str()) else {
        return unknown_workspace(&id);
    };
    if take_flaky(&mut ws.flaky_left) {
        return flaky_503();
    }
    json_response(StatusCode::OK, tenant_json(ws, now))
}
