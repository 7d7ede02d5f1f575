//! Benchmarks that need the SDK (run by `bench/run.sh`; not part of `cargo test` or CI).
//!
//! ```text
//! fleet-bench detect [--coder N] [--molecule N] [--coder-poll-max-ms MS] [--molecule-poll-max-ms MS]
//!     Completion detection with the SDK's default polling options against in-process
//!     simulators: the delay from the instant the simulator makes a build / migration terminal
//!     (its `job.completed_at` / `updated_at`) to the SDK noticing it, and GETs per wait.
//!     `--updates N` (default 0) also reports the requests one update of a workspace costs
//!     from its POST on (GETs and WebSocket opens): builds by push or polling, readiness by
//!     push, by polling or not waited for (`requests_per_update`).
//! fleet-bench update --workspaces N --parallel P      (CODER_URL, CODER_SESSION_TOKEN)
//!     Updates alice/bulk-0001…N with CoderClient::update_workspace, P at a time.
//! fleet-bench waits --count N                          (MOLECULE_CP_URL, CP_ADMIN_API_TOKEN)
//!     Starts N migrations (ws-bulk-0001…N), then waits for all of them at once in this
//!     process; reports VmHWM.
//! ```
//! Each prints one JSON object per result on stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    str::FromStr,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use fleet::{
    CoderConfig, HttpOptions, MoleculeConfig, Secret,
    coder::{CoderClient, CoderEvent, PollOptions, Step, UpdateOptions, WorkspaceRef},
    molecule::{MigrateRequest, MoleculeClient, Provider, WaitOptions},
    sim::{SimOptions, Simulator, bulk_coder_workspace, bulk_molecule_workspace},
};
use futures::StreamExt;
use serde_json::{Value, json};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match args.first().map(String::as_str) {
            Some("detect") => detect(&args[1..]).await,
            Some("update") => update(&args[1..]).await,
            Some("waits") => waits(&args[1..]).await,
            _ => Err(
                "usage: fleet-bench detect|update|waits [options] (see bench/fleet_bench.rs)"
                    .into(),
            ),
        }
    });
    if let Err(e) = result {
        eprintln!("fleet-bench: {e}");
        std::process::exit(1);
    }
}

fn opt<T: FromStr>(args: &[String], name: &str, default: T) -> Res<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a valid value").into()),
    }
}

fn env(name: &str) -> Res<String> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({
        "n": v.len(),
        "median": pct(&v, 50.0),
        "p99": pct(&v, 99.0),
        "min": v.first(),
        "max": v.last(),
    })
}

/// This process's memory counters from /proc (kB): (VmRSS, VmHWM).
fn memory_kb() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn ms_between(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    (later - earlier).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// Speeds spread evenly (in a shuffled order) over [lo, hi], so that terminal instants fall at
/// every phase of the polling schedule.
fn spread(i: usize, n: usize, lo: f64, hi: f64) -> f64 {
    let frac = ((i as f64 + 0.5) / n as f64 + 0.618_034 * i as f64).fract();
    lo + (hi - lo) * frac
}

// ---- completion detection --------------------------------------------------------------------

async fn detect(args: &[String]) -> Res<()> {
    let coder_n: usize = opt(args, "--coder", 24)?;
    let molecule_n: usize = opt(args, "--molecule", 24)?;
    let coder_poll_max: Option<u64> =
        opt(args, "--coder-poll-max-ms", 0).map(|v| (v > 0).then_some(v))?;
    let molecule_poll_max: Option<u64> =
        opt(args, "--molecule-poll-max-ms", 0).map(|v| (v > 0).then_some(v))?;

    let mut poll = PollOptions::default();
    if let Some(ms) = coder_poll_max {
        poll.max = Duration::from_millis(ms);
    }
    let mut wait = WaitOptions::default();
    if let Some(ms) = molecule_poll_max {
        wait.poll.max = Duration::from_millis(ms);
    }

    let coder_push: bool = opt(args, "--coder-push", 0usize)? == 1;
    let coder = futures::future::join_all((0..coder_n).map(|i| {
        // Builds of 5 to 10 s (start) and 3.6 to 7 s (stop): real time, what Coder takes.
        let speed = spread(i, coder_n, 0.7, 1.4);
        detect_coder(speed, poll.clone(), coder_push)
    }));
    let molecule = futures::future::join_all((0..molecule_n).map(|i| {
        // Migrations of 25 to 50 s: long past the point where polling reaches its cap, like
        // the real 15–20 minutes.
        let speed = spread(i, molecule_n, 20.0, 40.0);
        detect_molecule(speed, wait.clone())
    }));
    let updates_n: usize = opt(args, "--updates", 0)?;
    // (builds by push, readiness: none / by push / by polling)
    const MODES: [(bool, Option<bool>); 5] = [
        (true, Some(true)),
        (true, Some(false)),
        (true, None),
        (false, Some(false)),
        (false, None),
    ];
    let per_update = futures::future::join_all(
        MODES
            .into_iter()
            .flat_map(|mode| (0..updates_n).map(move |i| (mode, i)))
            .map(|((push, ready), i)| {
                let speed = spread(i, updates_n, 0.7, 1.4);
                let poll = poll.clone();
                async move {
                    (
                        push,
                        ready,
                        requests_per_update(speed, poll, push, ready).await,
                    )
                }
            }),
    );
    let (coder, molecule, per_update) = tokio::join!(coder, molecule, per_update);
    for want in MODES.into_iter().filter(|_| updates_n > 0) {
        let mut counts = Vec::new();
        for (push, ready, r) in &per_update {
            if (*push, *ready) == want {
                counts.push(*r.as_ref().map_err(|e| e.to_string())? as f64);
            }
        }
        println!(
            "{}",
            json!({
                "bench": "requests_per_update",
                "builds": if want.0 { "push" } else { "polling" },
                "readiness": match want.1 { None => "none", Some(true) => "push", Some(false) => "polling" },
                "requests": summary(counts),
            })
        );
    }

    let mut lat = Vec::new();
    let mut gets = Vec::new();
    for r in coder {
        for (l, g) in r? {
            lat.push(l);
            gets.push(g as f64);
        }
    }
    println!(
        "{}",
        json!({
            "bench": if coder_push { "detect_coder_push" } else { "detect_coder" },
            "poll": {"initial_ms": poll.initial.as_millis() as u64, "max_ms": poll.max.as_millis() as u64, "factor": poll.factor},
            "latency_ms": summary(lat),
            "gets_per_wait": summary(gets),
        })
    );
    let mut lat = Vec::new();
    let mut gets = Vec::new();
    for r in molecule {
        let (l, g) = r?;
        lat.push(l);
        gets.push(g as f64);
    }
    println!(
        "{}",
        json!({
            "bench": "detect_molecule",
            "poll": {"initial_ms": wait.poll.initial.as_millis() as u64, "max_ms": wait.poll.max.as_millis() as u64},
            "latency_ms": summary(lat),
            "gets_per_wait": summary(gets),
        })
    );
    Ok(())
}

/// One update (stop + start) of a bulk workspace: per build, (detection delay in ms, requests
/// for that build: its GETs, plus with `push` the log stream's WebSocket opens).
async fn detect_coder(speed: f64, poll: PollOptions, push: bool) -> Res<Vec<(f64, usize)>> {
    let sim = Simulator::start(SimOptions {
        speed,
        bulk_workspaces: 1,
        ..SimOptions::default()
    })
    .await?;
    let client = CoderClient::new(&sim.coder_config())?;
    let target = WorkspaceRef::parse(&format!("alice/{}", bulk_coder_workspace(1)))?;
    let options = UpdateOptions {
        poll,
        push,
        ..UpdateOptions::default()
    };
    let mut seen: Vec<(Step, uuid::Uuid, DateTime<Utc>)> = Vec::new();
    let op = client.start_update_ready(target.clone(), None, options.clone(), None);
    op.watch_until(None, std::future::pending(), |ev| {
        if let CoderEvent::BuildSucceeded {
            step,
            build_id: Some(id),
            ..
        } = ev
        {
            seen.push((step, id, Utc::now()));
        }
    })
    .await;
    op.outcome().await?;
    let mut out = Vec::new();
    for (_step, id, noticed) in seen {
        let gets = sim.count_requests("GET", &format!("/api/v2/workspacebuilds/{id}"))
            + sim.count_requests("GET", &format!("/api/v2/workspacebuilds/{id}/logs"));
        let build = client
            .api()
            .get_workspace_build(&id.to_string())
            .await
            .map_err(|e| format!("reading build {id}: {e}"))?
            .into_inner();
        let completed = serde_json::to_value(&build)?
            .pointer("/job/completed_at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .ok_or("the build has no job.completed_at")?
            .with_timezone(&Utc);
        out.push((ms_between(noticed, completed), gets));
    }
    sim.shutdown().await;
    Ok(out)
}

/// One update of a bulk workspace (`push` or polling, with or without the wait for its
/// agents): the requests from its POST on, the POST excluded (GETs and WebSocket opens, from
/// the simulator's request log).
async fn requests_per_update(
    speed: f64,
    poll: PollOptions,
    push: bool,
    ready: Option<bool>,
) -> Res<usize> {
    let sim = Simulator::start(SimOptions {
        speed,
        bulk_workspaces: 1,
        ..SimOptions::default()
    })
    .await?;
    let client = CoderClient::new(&sim.coder_config())?;
    let target = WorkspaceRef::parse(&format!("alice/{}", bulk_coder_workspace(1)))?;
    let options = UpdateOptions {
        poll: poll.clone(),
        push,
        ..UpdateOptions::default()
    };
    let ready = ready.map(|ready_push| fleet::coder::ReadyOptions {
        poll,
        push: ready_push,
        ..fleet::coder::ReadyOptions::default()
    });
    client
        .start_update_ready(target, None, options, ready)
        .outcome()
        .await?;
    let n = sim
        .requests()
        .into_iter()
        .skip_while(|r| r.method != "POST")
        .skip(1)
        .count();
    sim.shutdown().await;
    Ok(n)
}

/// One migration of a bulk workspace: (detection delay in ms, GETs of its status).
async fn detect_molecule(speed: f64, wait: WaitOptions) -> Res<(f64, usize)> {
    let sim = Simulator::start(SimOptions {
        speed,
        bulk_workspaces: 1,
        ..SimOptions::default()
    })
    .await?;
    let client = MoleculeClient::new(&sim.molecule_config())?;
    let id = bulk_molecule_workspace(1);
    client
        .migrate_provider(&MigrateRequest {
            from: Some(Provider::Aws),
            confirm: true,
            ..MigrateRequest::new(id.clone(), Provider::Hetzner)
        })
        .await?;
    let report = client
        .start_follow_migration(id.clone(), wait.clone())
        .outcome()
        .await?;
    let noticed = Utc::now();
    let ended = report
        .migration
        .as_ref()
        .and_then(|m| m.extra.get("updated_at"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .ok_or("the migration has no updated_at")?
        .with_timezone(&Utc);
    let gets = sim.count_requests(
        "GET",
        &format!("/cp/admin/workspaces/{id}/migrate-provider"),
    ) + sim.count_requests(
        "GET",
        &format!("/cp/admin/workspaces/{id}/migration-status"),
    );
    sim.shutdown().await;
    Ok((ms_between(noticed, ended), gets))
}

// ---- fleet-scale update ----------------------------------------------------------------------

async fn update(args: &[String]) -> Res<()> {
    let n: usize = opt(args, "--workspaces", 500)?;
    let parallel: usize = opt(args, "--parallel", 10)?;
    let config = CoderConfig {
        url: Some(env("CODER_URL")?),
        session_token: Some(Secret::new(env("CODER_SESSION_TOKEN")?)),
        http: HttpOptions::default(),
    };
    let client = CoderClient::new(&config)?;
    let options = UpdateOptions::default();
    let began = Instant::now();
    let results: Vec<bool> = futures::stream::iter(1..=n)
        .map(|i| {
            let client = &client;
            let options = &options;
            async move {
                let target = WorkspaceRef::parse(&format!("alice/{}", bulk_coder_workspace(i)))?;
                client
                    .start_update_ready(target, None, options.clone(), None)
                    .outcome()
                    .await
                    .map_err(|e| {
                        eprintln!("fleet-bench: {}: {e}", bulk_coder_workspace(i));
                        e
                    })
            }
        })
        .buffer_unordered(parallel.max(1))
        .map(|r: fleet::Result<_>| r.is_ok())
        .collect()
        .await;
    let wall = began.elapsed();
    let (_, hwm) = memory_kb();
    println!(
        "{}",
        json!({
            "bench": "update",
            "path": "sdk",
            "workspaces": n,
            "parallel": parallel,
            "ok": results.iter().filter(|ok| **ok).count(),
            "failed": results.iter().filter(|ok| !**ok).count(),
            "wall_s": wall.as_secs_f64(),
            "peak_rss_kb": hwm,
        })
    );
    Ok(())
}

// ---- many concurrent waits -------------------------------------------------------------------

async fn waits(args: &[String]) -> Res<()> {
    let n: usize = opt(args, "--count", 10_000)?;
    let config = MoleculeConfig {
        cp_url: env("MOLECULE_CP_URL")?,
        cp_admin_prefix: std::env::var("MOLECULE_CP_ADMIN_PREFIX").ok(),
        cp_admin_token: Some(Secret::new(env("CP_ADMIN_API_TOKEN")?)),
        api_url: None,
        org_api_key: None,
        http: HttpOptions::default(),
    };
    let client = MoleculeClient::new(&config)?;
    let (_, hwm_idle) = memory_kb();

    // Start the migrations (64 POSTs in flight), then wait for all of them at once.
    let started: Vec<fleet::Result<_>> = futures::stream::iter(1..=n)
        .map(|i| {
            let client = &client;
            async move {
                client
                    .migrate_provider(&MigrateRequest {
                        from: Some(Provider::Aws),
                        confirm: true,
                        ..MigrateRequest::new(bulk_molecule_workspace(i), Provider::Hetzner)
                    })
                    .await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    if let Some(Err(e)) = started.iter().find(|r| r.is_err()) {
        return Err(format!("starting the migrations: {e}").into());
    }
    let (_, hwm_started) = memory_kb();

    let began = Instant::now();
    let tasks: Vec<_> = (1..=n)
        .map(|i| {
            let op =
                client.start_follow_migration(bulk_molecule_workspace(i), WaitOptions::default());
            tokio::spawn(async move { op.outcome().await })
        })
        .collect();
    // Sample the resident set while every wait is in flight.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_waiting, _) = memory_kb();
    let mut ok = 0usize;
    let mut failed = 0usize;
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => ok += 1,
            _ => failed += 1,
        }
    }
    let (_, hwm) = memory_kb();
    println!(
        "{}",
        json!({
            "bench": "waits",
            "count": n,
            "ok": ok,
            "failed": failed,
            "wall_s": began.elapsed().as_secs_f64(),
            "hwm_idle_kb": hwm_idle,
            "hwm_after_posts_kb": hwm_started,
            "rss_while_waiting_kb": rss_waiting,
            "peak_rss_kb": hwm,
        })
    );
    Ok(())
}
