//! Fleet-scale operations through the built `fleet` binary against the simulator (started in
//! this process so its request log can be read): several workspaces with `--parallel`,
//! `--all-outdated`, `--template`, dry runs that send no POST/PATCH, migration-status over
//! several workspaces with `--wait`, exit codes, Ctrl-C.

use crate::support::handle::CoderViaHandle;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::cli::{fleet, fleet_on};
use crate::support::sim::{changes, sim_with};
use fleet::{
    coder::{CoderClient, FleetEvent, FleetOptions, Selection, UpdateOptions, WorkspaceRef},
    molecule::{MigrateRequest, MoleculeClient, Provider},
    sim::{RunningSim, SimOptions},
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

async fn old_coder_sim(speed: f64) -> RunningSim {
    sim_with(SimOptions {
        speed,
        // A Coder older than on_success: the client-driven stop → start, whose two POSTs per
        // workspace and left-stopped verdicts these batch tests count (the server-side path
        // has its own tests in coder_server_side_cli.rs).
        coder_version: "v2.35.0".into(),
        ..SimOptions::default()
    })
    .await
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["workspace"].as_str().unwrap_or("").to_string(),
                r["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn builds_of(sim: &RunningSim, workspace: &str) -> usize {
    let id = sim.coder_workspace_id(workspace).expect("seeded");
    sim.count_requests("POST", &format!("/api/v2/workspaces/{id}/builds"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workspaces_in_parallel_each_end_in_a_verdict_and_one_failure_is_exit_1() {
    let sim = old_coder_sim(100.0).await;
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "dev",
            "api-server",
            "ml-notebook",
            "current",
            "--parallel",
            "2",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 1, "one failed → exit 1\n{}", run.stderr);
    assert!(
        run.stderr.is_empty() || !run.stderr.contains("[alice/"),
        "-o json: no progress lines: {}",
        run.stderr
    );
    let report = run.json();
    assert_eq!(
        verdicts(&report),
        pairs(&[
            ("alice/dev", "updated"),
            ("alice/api-server", "updated"),
            ("alice/ml-notebook", "failed"),
            ("alice/current", "already_current"),
        ])
    );
    assert_eq!(report["total"], 4);
    assert_eq!(report["succeeded"], 3);
    assert_eq!(report["failed"], 1);
    let failed = &report["results"][2];
    let reason = failed["message"].as_str().unwrap_or("");
    assert!(
        reason.contains("cuda-13-broken"),
        "the job's error is the reason: {reason}"
    );
    assert_eq!(failed["error_kind"], "operation_failed");
    // Each workspace: stop then start (api-server was stopped: start only); current: nothing.
    assert_eq!(builds_of(&sim, "alice/dev"), 2);
    assert_eq!(builds_of(&sim, "alice/api-server"), 1);
    assert_eq!(builds_of(&sim, "alice/ml-notebook"), 2);
    assert_eq!(builds_of(&sim, "alice/current"), 0);
    // The others were not touched.
    assert_eq!(builds_of(&sim, "bob/dev"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_output_has_progress_lines_a_table_and_the_verdicts() {
    let sim = old_coder_sim(100.0).await;
    let run = fleet_on(
        &sim,
        &["coder", "update", "dev", "ml-notebook", "--parallel", "2"],
        60,
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    // Plain progress lines on stderr (not a terminal), each tagged with its workspace.
    assert!(
        run.stderr.contains("[alice/dev] stop build"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("[alice/ml-notebook] start build"),
        "{}",
        run.stderr
    );
    // The table, then the reason of the failure and the total.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("WORKSPACE"), "{}", run.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("alice/dev") && l.contains("updated") && l.contains("v2 → v3")),
        "{}",
        run.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("alice/ml-notebook")
            && l.contains("failed")
            && l.contains("v1 → broken-start")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("alice/ml-notebook: failed — the start build"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2 workspace(s): 1 updated, 1 failed"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_outdated_selects_your_outdated_workspaces_and_all_owners_everyones() {
    let sim = old_coder_sim(100.0).await;
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "--all-outdated",
            "--dry-run",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let names: Vec<String> = verdicts(&report).into_iter().map(|(w, _)| w).collect();
    assert_eq!(
        names,
        [
            "alice/dev",
            "alice/api-server",
            "alice/secure-shell",
            "alice/ml-notebook",
            "alice/slow-box",
            "alice/flaky"
        ]
    );
    assert!(verdicts(&report).iter().all(|(_, v)| v == "would_change"));
    assert_eq!(report["dry_run"], true);
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "--all-outdated",
            "--all-owners",
            "--dry-run",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<String> = verdicts(&run.json()).into_iter().map(|(w, _)| w).collect();
    assert!(names.contains(&"bob/dev".to_string()), "{names:?}");
    assert!(!names.contains(&"alice/current".to_string()), "{names:?}");
    assert!(
        !names.contains(&"bob/data-pipeline".to_string()),
        "up to date: {names:?}"
    );
    assert_eq!(
        changes(&sim),
        Vec::<String>::new(),
        "dry runs change nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_selects_the_outdated_workspaces_of_that_template_and_updates_them() {
    let sim = old_coder_sim(100.0).await;
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "--template",
            "docker-dev",
            "--dry-run",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<String> = verdicts(&run.json()).into_iter().map(|(w, _)| w).collect();
    assert_eq!(
        names,
        [
            "alice/dev",
            "alice/api-server",
            "alice/slow-box",
            "alice/flaky"
        ]
    );
    // A real run on another template.
    let run = fleet_on(
        &sim,
        &["coder", "update", "--template", "k8s-secure", "-o", "json"],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        verdicts(&run.json()),
        pairs(&[("alice/secure-shell", "updated")])
    );
    assert_eq!(builds_of(&sim, "alice/secure-shell"), 2);
    assert_eq!(
        changes(&sim).len(),
        2,
        "only secure-shell's stop and start: {:?}",
        changes(&sim)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_send_no_post_or_patch_and_print_the_plan() {
    let sim = old_coder_sim(100.0).await;
    // update, single: the plan as JSON, builds in order, parameters.
    let run = fleet_on(
        &sim,
        &["coder", "update", "dev", "--dry-run", "-o", "json"],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = run.json();
    let steps: Vec<&str> = plan["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["transition"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["stop", "start"]);
    let v3 = sim
        .coder_version_id("docker-dev", "v3")
        .unwrap()
        .to_string();
    assert_eq!(plan["target_version_id"], v3.as_str());
    assert_eq!(plan["target_version_name"], "v3");
    assert_eq!(plan["plan"]["target_version_id"], v3.as_str());
    assert_eq!(plan["plan"]["parameters"][0]["name"], "region");
    assert_eq!(plan["plan"]["parameters"][0]["value"], "eu-west");
    // update, single, text: which builds, which version, which values.
    let run = fleet_on(&sim, &["coder", "update", "api-server", "--dry-run"], 60).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Dry run (nothing was changed)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1. start build on v3"),
        "stopped: start only\n{}",
        run.stdout
    );
    assert!(!run.stdout.contains("stop build"), "{}", run.stdout);
    assert!(run.stdout.contains("region = us-east"), "{}", run.stdout);
    // Already current: nothing would be done.
    let run = fleet_on(
        &sim,
        &["coder", "update", "current", "--dry-run", "-o", "json"],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["builds"], serde_json::json!([]));
    // restart, single and many.
    let run = fleet_on(
        &sim,
        &["coder", "restart", "dev", "--dry-run", "-o", "json"],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["plan"]["restart"], true);
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "restart",
            "dev",
            "current",
            "--dry-run",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        verdicts(&run.json()),
        pairs(&[
            ("alice/dev", "would_change"),
            ("alice/current", "would_change")
        ])
    );
    // update, many.
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "dev",
            "current",
            "api-server",
            "--dry-run",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("Dry run, nothing changed: 3 workspace(s)"),
        "{}",
        run.stdout
    );
    // migrate, single: the source is looked up, the current migration read.
    let run = fleet_on(
        &sim,
        &[
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "--to",
            "gcp",
            "--dry-run",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(
        run.code, 0,
        "no --confirm needed for a dry run: {}",
        run.stderr
    );
    let plan = run.json();
    assert_eq!(plan["from"], "aws");
    assert_eq!(plan["from_source"], "looked_up");
    assert_eq!(plan["to"], "gcp");
    assert_eq!(plan["current"]["migrated"], false);
    assert!(plan.get("blocked").is_none(), "{plan}");
    // migrate while one is running: the plan says the control plane would refuse.
    let run = fleet_on(
        &sim,
        &[
            "molecule",
            "migrate-provider",
            "ws-migrating",
            "--to",
            "gcp",
            "--dry-run",
        ],
        60,
    )
    .await;
    // Issue 27: exits as the real run would (its pre-flight refuses: 2; was 0).
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.contains("would NOT start"), "{}", run.stdout);
    assert!(sim.count_requests("GET", "/tenant/workspaces/ws-migrating") >= 1);
    assert_eq!(
        changes(&sim),
        Vec::<String>::new(),
        "no POST or PATCH at all"
    );
    // A real run afterwards does what the plan said: stop, then start.
    let run = fleet_on(&sim, &["coder", "update", "dev", "-o", "json"], 60).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(builds_of(&sim, "alice/dev"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_exits_2_having_sent_nothing() {
    let sim = old_coder_sim(100.0).await;
    for args in [
        vec!["coder", "update", "dev", "api-server", "--parallel", "0"],
        vec!["coder", "update", "dev", "--parallel", "65"],
        vec!["coder", "update", "--all-outdated", "dev"],
        vec![
            "coder",
            "update",
            "--template",
            "docker-dev",
            "--all-outdated",
        ],
        vec!["coder", "update"],
        vec!["coder", "update", "dev", "bad/name/x"],
        vec!["coder", "update", "dev", "api-server", "--all-owners"],
        vec!["coder", "update", "--template", "no such"],
        vec![
            "molecule",
            "migration-status",
            "ws-aws-demo",
            "a/b",
            "--wait",
        ],
    ] {
        let run = fleet_on(&sim, &args, 60).await;
        assert_eq!(run.code, 2, "{args:?}: {}\n{}", run.stdout, run.stderr);
    }
    assert_eq!(
        sim.requests().len(),
        0,
        "nothing was sent: {:?}",
        sim.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_status_over_several_workspaces_waits_for_all_and_exits_with_the_worst() {
    let sim = old_coder_sim(600.0).await;
    let molecule = MoleculeClient::new(&sim.molecule_config()).unwrap();
    let mut start = MigrateRequest::new("ws-fails-migration", Provider::Gcp);
    start.from = Some(Provider::Aws);
    start.confirm = true;
    molecule.migrate_provider(&start).await.expect("started");
    let run = fleet_on(
        &sim,
        &[
            "molecule",
            "migration-status",
            "ws-migrating",
            "ws-fails-migration",
            "ws-migrated",
            "ws-aws-demo",
            "ws-migrating",
            "--wait",
            "--timeout",
            "30s",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 1, "one failed → 1\n{}", run.stderr);
    let batch = run.json();
    let got: Vec<(String, String)> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["workspace_id"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        pairs(&[
            ("ws-migrating", "completed"),
            ("ws-fails-migration", "failed"),
            ("ws-migrated", "completed"),
            ("ws-aws-demo", "never_migrated"),
        ]),
        "duplicates read once"
    );
    assert_eq!(batch["results"][1]["state"], "failed");
    assert_eq!(batch["exit_code"], 1);
    // Text: a table and each workspace's sentence.
    let run = fleet_on(
        &sim,
        &["molecule", "migration-status", "ws-migrated", "ws-aws-demo"],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("WORKSPACE_ID"), "{}", run.stdout);
    assert!(run.stdout.contains("never migrated"), "{}", run.stdout);
    assert!(run.stdout.contains("aws → gcp"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_outranks_a_failure_in_the_exit_code() {
    // At 20x a migration takes ~50 s: one second of waiting times out.
    let sim = old_coder_sim(20.0).await;
    let molecule = MoleculeClient::new(&sim.molecule_config()).unwrap();
    let mut start = MigrateRequest::new("ws-aws-demo", Provider::Hetzner);
    start.from = Some(Provider::Aws);
    start.confirm = true;
    molecule.migrate_provider(&start).await.expect("started");
    let run = fleet_on(
        &sim,
        &[
            "molecule",
            "migration-status",
            "ws-aws-demo",
            "ws-migrated",
            "--wait",
            "--timeout",
            "1s",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let batch = run.json();
    assert_eq!(batch["results"][0]["verdict"], "timed_out");
    assert_eq!(batch["results"][1]["verdict"], "completed");
    assert_eq!(batch["results"][0]["exit_code"], 3, "{batch}");
    assert_eq!(batch["results"][1]["exit_code"], 0, "{batch}");
    assert_eq!(batch["exit_code"], 3, "{batch}");
    // The SDK orders the typed endings; the CLI maps the worst to its exit code.
    use fleet::operation::Severity::*;
    assert_eq!(
        [Ok, Failed, TimedOut, Failed].into_iter().max(),
        Some(TimedOut)
    );
    assert_eq!(
        [Failed, Interrupted, TimedOut].into_iter().max(),
        Some(Interrupted)
    );
    assert_eq!([Ok, Refused, Failed].into_iter().max(), Some(Failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_keeps_at_most_parallel_workspaces_in_flight_and_never_one_twice() {
    let sim = old_coder_sim(100.0).await;
    let coder = CoderClient::new(&sim.coder_config()).unwrap();
    let dev_id = sim.coder_workspace_id("alice/dev").unwrap();
    let refs: Vec<WorkspaceRef> = [
        "dev",
        "alice/dev",
        &dev_id.to_string(),
        "api-server",
        "slow-box",
        "flaky",
        "bob/dev",
    ]
    .iter()
    .map(|r| WorkspaceRef::parse(r).unwrap())
    .collect();
    let mut update = UpdateOptions::default();
    update.poll.initial = Duration::from_millis(10);
    update.poll.max = Duration::from_millis(20);
    let options = FleetOptions {
        parallel: 2,
        update,
        ..FleetOptions::default()
    };
    let state = Arc::new(Mutex::new((0usize, 0usize, Vec::<String>::new())));
    let s = state.clone();
    let report = coder
        .update_many_via_handle(
            &Selection::Named(refs),
            &options,
            &CancellationToken::new(),
            move |e| {
                let mut g = s.lock().unwrap();
                match e {
                    FleetEvent::Began { workspace, .. } => {
                        g.0 += 1;
                        g.1 = g.1.max(g.0);
                        g.2.push(workspace);
                    }
                    FleetEvent::Finished { .. } => g.0 -= 1,
                    _ => {}
                }
            },
        )
        .await
        .expect("a report");
    let (_, max_in_flight, began) = state.lock().unwrap().clone();
    assert_eq!(max_in_flight, 2, "parallel 2");
    assert_eq!(
        report.total, 5,
        "alice/dev named three ways is updated once"
    );
    assert_eq!(began.iter().filter(|w| *w == "alice/dev").count(), 1);
    assert_eq!(builds_of(&sim, "alice/dev"), 2);
    assert_eq!(report.failed, 0, "{:?}", report.results);
}

/// Runs a batch update of slow-box, dev, api-server and flaky (one at a time) against `sim`,
/// presses Ctrl-C `presses` times once slow-box's stop build exists, returns (exit code, report).
#[cfg(unix)]
async fn batch_interrupted(sim: &fleet::sim::RunningSim, presses: u32) -> (Option<i32>, Value) {
    let mut cmd = fleet(&[
        "coder",
        "update",
        "slow-box",
        "dev",
        "api-server",
        "flaky",
        "--parallel",
        "1",
        "-o",
        "json",
    ])
    .sim(sim)
    .piped()
    .tokio();
    let child = cmd.spawn().expect("fleet starts");
    let pid = child.id().expect("a pid");
    // Wait until slow-box's stop build exists.
    let slow = sim.coder_workspace_id("alice/slow-box").unwrap();
    let path = format!("/api/v2/workspaces/{slow}/builds");
    let began = std::time::Instant::now();
    while sim.count_requests("POST", &path) == 0 && began.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.count_requests("POST", &path), 1, "the stop was created");
    for _ in 0..presses {
        let kill = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(kill.success());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .expect("fleet ends after Ctrl-C")
        .expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).expect("the final JSON");
    (out.status.code(), report)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ctrl_c_finishes_the_in_flight_workspace_and_starts_no_other() {
    // slow-box builds take 10x longer: at 10x a stop takes ~5 s, a start ~7 s.
    let sim = old_coder_sim(10.0).await;
    let (code, report) = batch_interrupted(&sim, 1).await;
    assert_eq!(code, Some(130), "{report}");
    assert_eq!(
        verdicts(&report),
        pairs(&[
            ("alice/slow-box", "updated"),
            ("alice/dev", "not_started"),
            ("alice/api-server", "not_started"),
            ("alice/flaky", "not_started"),
        ])
    );
    assert_eq!(
        builds_of(&sim, "alice/slow-box"),
        2,
        "stopped, then started"
    );
    assert_eq!(
        builds_of(&sim, "alice/dev"),
        0,
        "nothing started after Ctrl-C"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ctrl_c_exit_130_and_say_each_in_flight_workspace_state() {
    let sim = old_coder_sim(10.0).await;
    let (code, report) = batch_interrupted(&sim, 2).await;
    assert_eq!(code, Some(130), "{report}");
    assert_eq!(
        verdicts(&report),
        pairs(&[
            ("alice/slow-box", "left_stopped"),
            ("alice/dev", "not_started"),
            ("alice/api-server", "not_started"),
            ("alice/flaky", "not_started"),
        ])
    );
    let slow_box = &report["results"][0];
    assert!(
        slow_box["message"]
            .as_str()
            .unwrap()
            .contains("left stopped"),
        "{slow_box}"
    );
    assert!(
        slow_box["finish_command"]
            .as_str()
            .unwrap()
            .starts_with("fleet coder update --template-version ")
            && slow_box["finish_command"]
                .as_str()
                .unwrap()
                .ends_with(" -- alice/slow-box"),
        "{slow_box}"
    );
    assert_eq!(
        builds_of(&sim, "alice/dev"),
        0,
        "nothing started after Ctrl-C"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_plans_from_the_workspaces_its_selection_read_without_reading_each_again() {
    let sim = old_coder_sim(100.0).await;
    sim.clear_requests();
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "--all-outdated",
            "--dry-run",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<String> = verdicts(&run.json()).into_iter().map(|(w, _)| w).collect();
    assert!(names.len() >= 5, "{names:?}");
    assert!(
        sim.count_requests("GET", "/api/v2/workspaces") >= 1,
        "the selection lists the workspaces"
    );
    for name in &names {
        let id = sim.coder_workspace_id(name).expect("a seeded workspace");
        assert_eq!(
            sim.count_requests("GET", &format!("/api/v2/workspaces/{id}")),
            0,
            "{name} was read by the listing and planned from that read"
        );
    }
}

/// `fleet coder list` fetches the pages after the first at once: ten pages that each take
/// 400 ms end in well under the 4 s they would take one after another; each page is asked for
/// once and the list is whole and in Coder's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coder_list_fetches_the_pages_after_the_first_concurrently() {
    let server = httpmock::MockServer::start_async().await;
    let workspace = |i: usize| {
        serde_json::json!({
            "id": format!("00000000-0000-4000-8000-{i:012}"),
            "name": format!("ws-{i:04}"),
            "owner_name": "alice",
            "template_name": "docker",
            "outdated": false,
        })
    };
    let mut pages = Vec::new();
    for page in 0..10usize {
        let body = serde_json::json!({
            "workspaces": (page * 100..page * 100 + 100).map(workspace).collect::<Vec<_>>(),
            "count": 1000,
        });
        pages.push(
            server
                .mock_async(|when, then| {
                    when.method("GET")
                        .path("/api/v2/workspaces")
                        .query_param("offset", (page * 100).to_string());
                    then.status(200)
                        .delay(Duration::from_millis(400))
                        .json_body(body);
                })
                .await,
        );
    }
    let began = std::time::Instant::now();
    let out = fleet(&["-o", "json", "coder", "list"])
        .coder(&server.base_url(), "list-test-token")
        .tokio()
        .output()
        .await
        .expect("fleet runs");
    let took = began.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = v["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["full_name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..1000).map(|i| format!("alice/ws-{i:04}")).collect();
    assert_eq!(names, expected, "whole, once each, in order");
    for page in &pages {
        page.assert_calls_async(1).await;
    }
    // First page 0.4 s, then the other nine at once: ~0.8 s; one after another: 4 s.
    assert!(took < Duration::from_millis(2_500), "took {took:?}");
}
