//! `fleet molecule migrate-provider` as a rollout through the built binary against the
//! simulator: the same engine as Coder's. A canary migration that ends `failed` starts nothing
//! else; `--max-failures 1` stops new starts after the first failure; completed ones count.

use crate::support::cli::fleet_on;
use crate::support::sim::sim_with;
use fleet::sim::{RunningSim, SimOptions};
use serde_json::Value;

async fn bulk_sim() -> RunningSim {
    sim_with(SimOptions {
        speed: 2000.0,
        bulk_workspaces: 3,
        ..SimOptions::default()
    })
    .await
}

fn posted(sim: &RunningSim, workspace: &str) -> usize {
    sim.requests()
        .into_iter()
        .filter(|r| r.method.eq_ignore_ascii_case("POST") && r.path.contains(workspace))
        .count()
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["workspace_id"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_canary_migration_starts_no_other_and_the_budget_stops_new_starts() {
    let sim = bulk_sim().await;
    let run = fleet_on(
        &sim,
        &[
            "molecule",
            "migrate-provider",
            "ws-fails-migration",
            "ws-aws-demo",
            "ws-bulk-0001",
            "--to",
            "gcp",
            "--from",
            "aws",
            "--confirm",
            "--wait",
            "--canary",
            "1",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    let (code, report, stderr) = (run.code, run.json(), run.stderr.clone());
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        verdicts(&report),
        pairs(&[
            ("ws-fails-migration", "failed"),
            ("ws-aws-demo", "not_attempted"),
            ("ws-bulk-0001", "not_attempted"),
        ])
    );
    assert_eq!(report["results"][0]["state"], "failed");
    assert_eq!(report["halt"]["reason"], "canary_failed");
    assert_eq!(posted(&sim, "ws-fails-migration"), 1);
    assert_eq!(posted(&sim, "ws-aws-demo"), 0, "nothing beyond the canary");
    assert_eq!(posted(&sim, "ws-bulk-0001"), 0);
    let resume = report["resume_command"].as_str().expect("resume command");
    assert!(
        resume.ends_with(" -- ws-fails-migration ws-aws-demo ws-bulk-0001")
            && resume.contains("--canary 1"),
        "{resume}"
    );

    // A good canary lets the rest go; one failure with --max-failures 1 starts no more.
    let run = fleet_on(
        &sim,
        &[
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "ws-bulk-0002",
            "ws-fails-migration",
            "ws-bulk-0003",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
            "--wait",
            "--canary",
            "1",
            "--max-failures",
            "1",
            "--parallel",
            "1",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    let (code, report, stderr) = (run.code, run.json(), run.stderr.clone());
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        verdicts(&report),
        pairs(&[
            ("ws-aws-demo", "completed"),
            ("ws-bulk-0002", "completed"),
            ("ws-fails-migration", "failed"),
            ("ws-bulk-0003", "not_attempted"),
        ])
    );
    assert_eq!(report["halt"]["reason"], "max_failures");
    assert_eq!(posted(&sim, "ws-bulk-0003"), 0);
    let resume = report["resume_command"].as_str().unwrap();
    assert!(
        resume.contains("migrate-provider --to ")
            && resume.ends_with(" -- ws-fails-migration ws-bulk-0003"),
        "only the ones not completed: {resume}"
    );
    // The real fleet takes the printed argv (flags, `--`, the ids): with --dry-run put among
    // the flags (instead of --wait, which a dry run refuses) it plans exactly those two and
    // changes nothing.
    let mut argv: Vec<&str> = resume
        .split(' ')
        .skip(1)
        .filter(|w| *w != "--wait")
        .collect();
    let dash = argv.iter().position(|w| *w == "--").expect("a `--`");
    argv.splice(dash..dash, ["--dry-run", "-o", "json"]);
    let before = sim.requests().len();
    let run = fleet_on(&sim, &argv, 60).await;
    let (code, plans, stderr) = (run.code, run.json(), run.stderr.clone());
    assert_eq!(code, 0, "{argv:?}: {stderr}");
    let planned: Vec<&str> = plans
        .as_array()
        .expect("one plan per workspace")
        .iter()
        .filter_map(|p| p["workspace_id"].as_str())
        .collect();
    assert_eq!(planned, ["ws-fails-migration", "ws-bulk-0003"], "{plans}");
    assert!(
        sim.requests()[before..]
            .iter()
            .all(|r| r.method.eq_ignore_ascii_case("GET")),
        "a dry run only reads"
    );
}

/// `--parallel` means the same with or without `--canary`: alone, it makes the batch a
/// rollout with at most P migrations in flight (it used to be ignored: every migration was
/// started at once). With P = 1 the second POST comes only once the first migration ended.
#[tokio::test]
async fn parallel_alone_bounds_the_migrations_in_flight() {
    let sim = bulk_sim().await;
    let run = fleet_on(
        &sim,
        &[
            "molecule",
            "migrate-provider",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
            "--wait",
            "--parallel",
            "1",
            "-o",
            "json",
            "--",
            "ws-bulk-0001",
            "ws-bulk-0002",
        ],
        60,
    )
    .await;
    let (code, report, stderr) = (run.code, run.json(), run.stderr.clone());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        verdicts(&report),
        pairs(&[("ws-bulk-0001", "completed"), ("ws-bulk-0002", "completed")])
    );
    let log = sim.requests();
    let second_post = log
        .iter()
        .position(|r| r.method == "POST" && r.path.contains("ws-bulk-0002"))
        .expect("the second migration was started");
    let first_reads: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| r.method == "GET" && r.path.contains("ws-bulk-0001/migra"))
        .map(|(i, _)| i)
        .collect();
    assert!(
        first_reads.last().is_some_and(|last| *last < second_post),
        "the first migration was followed to its end before the second started: {log:?}"
    );
}
