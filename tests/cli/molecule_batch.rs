//! `fleet molecule migrate-provider` over several workspaces, through the built binary against
//! the simulator (in this process, so its request log can be counted): every request checked
//! before the first is sent, each POST once, one refused does not stop the others, --wait
//! follows all, dry runs and refusals send no POST.

use crate::support::cli::{Run, fleet_on};
use crate::support::sim::sim;
use fleet::sim::RunningSim;
use serde_json::Value;

fn posts(sim: &RunningSim) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method.eq_ignore_ascii_case("POST"))
        .map(|r| r.path)
        .collect()
}

#[tokio::test]
async fn several_are_started_once_each_and_followed_one_refused_does_not_stop_the_others() {
    let sim = sim(400.0).await;
    let Run {
        code,
        stdout,
        stderr,
    } = fleet_on(
        &sim,
        &[
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "ws-migrating",
            "ws-flaky",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
            "--wait",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    // One refused by the pre-flight check (a migration already running) exits 2, as it would
    // on its own: one exit-code taxonomy for single and batch runs.
    assert_eq!(code, 2, "one was refused: {stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("one JSON document");
    let starts = v["starts"]["results"].as_array().expect("starts");
    let by_id = |id: &str| starts.iter().find(|r| r["workspace_id"] == id).expect(id);
    assert!(by_id("ws-aws-demo")["started"].is_object(), "{v}");
    assert!(by_id("ws-flaky")["started"].is_object(), "{v}");
    assert_eq!(by_id("ws-migrating")["error_kind"], "refused", "{v}");
    let followed = v["status"]["results"].as_array().expect("followed");
    assert_eq!(followed.len(), 2, "{v}");
    assert!(followed.iter().all(|r| r["verdict"] == "completed"), "{v}");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["starts"]["exit_code"], 2, "{v}");
    assert_eq!(v["status"]["exit_code"], 0, "{v}");
    // One POST per started migration; the refused one was never POSTed.
    let mut sent = posts(&sim);
    sent.sort();
    assert_eq!(
        sent,
        [
            "/cp/admin/workspaces/ws-aws-demo/migrate-provider",
            "/cp/admin/workspaces/ws-flaky/migrate-provider"
        ]
    );
}

#[tokio::test]
async fn a_dry_run_of_several_plans_each_and_sends_no_post() {
    let sim = sim(400.0).await;
    let Run {
        code,
        stdout,
        stderr,
    } = fleet_on(
        &sim,
        &[
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "ws-migrating",
            "--to",
            "gcp",
            "--dry-run",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    // Issue 27: a dry run exits as the real run would: ws-migrating would be refused (2).
    assert_eq!(code, 2, "{stderr}");
    let plans: Value = serde_json::from_str(&stdout).expect("JSON");
    let plans = plans.as_array().expect("one plan per workspace");
    assert_eq!(plans.len(), 2);
    assert_eq!(plans[0]["workspace_id"], "ws-aws-demo");
    assert!(plans[0]["blocked"].is_null(), "{stdout}");
    assert!(
        plans[1]["blocked"].is_string(),
        "ws-migrating is in progress: {stdout}"
    );
    assert!(posts(&sim).is_empty());
}

#[tokio::test]
async fn a_dry_run_of_several_with_an_unknown_workspace_fails_with_its_error_and_sends_no_post() {
    // The plans are made concurrently now; the CLI still answers as it did: the first
    // workspace that cannot be planned fails the dry run with its error, and no plan is printed.
    let sim = sim(400.0).await;
    let Run {
        code,
        stdout,
        stderr,
    } = fleet_on(
        &sim,
        &[
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "ws-no-such-workspace",
            "ws-migrating",
            "--to",
            "gcp",
            "--dry-run",
            "-o",
            "json",
        ],
        60,
    )
    .await;
    assert_eq!(code, 2, "refused, nothing changed: {stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(!v.is_array(), "no plan printed: {stdout}");
    assert_eq!(v["error"]["kind"], "not_found", "{stdout}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ws-no-such-workspace")),
        "{stdout}"
    );
    assert!(posts(&sim).is_empty());
}

#[tokio::test]
async fn refusals_before_anything_is_sent() {
    let sim = sim(400.0).await;
    let cases: [&[&str]; 4] = [
        // No --confirm and no terminal.
        &["ws-aws-demo", "ws-flaky", "--to", "gcp"],
        // One instance id cannot name two sources.
        &[
            "ws-aws-demo",
            "ws-flaky",
            "--to",
            "gcp",
            "--from",
            "hetzner",
            "--from-instance-id",
            "hz-1",
            "--confirm",
        ],
        // A workspace named twice.
        &[
            "ws-aws-demo",
            "ws-aws-demo",
            "--to",
            "gcp",
            "--from",
            "aws",
            "--confirm",
        ],
        // One bad request stops all: same from and to.
        &[
            "ws-aws-demo",
            "ws-flaky",
            "--to",
            "aws",
            "--from",
            "aws",
            "--confirm",
        ],
    ];
    for case in cases {
        let mut args = vec!["molecule", "migrate-provider"];
        args.extend_from_slice(case);
        let Run { code, stderr, .. } = fleet_on(&sim, &args, 60).await;
        assert_eq!(code, 2, "{case:?}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{case:?}: {stderr}"
        );
        assert!(posts(&sim).is_empty(), "{case:?} sent a POST");
    }
    assert!(
        sim.requests().is_empty(),
        "nothing at all was sent: {:?}",
        sim.requests()
    );
}
