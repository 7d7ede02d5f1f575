//! Workspaces someone is at work in (issue 25), through the built `fleet` binary against the
//! simulator started in this process (its request log shows what was sent): each reason is
//! skipped with no POST for that workspace and its reason in text and JSON; the caller's own
//! workspace in use is not busy; --include-busy and --include-prebuilds; --wait-for-idle; a
//! rollout with canary and --max-failures that skips some and counts only real failures; the
//! resume command covers the skipped ones; a single skipped workspace exits 2.

use crate::support::cli::fleet_on;
use crate::support::sim::sim;
use fleet::sim::RunningSim;
use serde_json::Value;

fn builds_of(sim: &RunningSim, workspace: &str) -> usize {
    let id = sim.coder_workspace_id(workspace).expect("seeded");
    sim.count_requests("POST", &format!("/api/v2/workspaces/{id}/builds"))
}

fn result<'a>(report: &'a Value, workspace: &str) -> &'a Value {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["workspace"] == workspace)
        .unwrap_or_else(|| panic!("{workspace} in {report:#}"))
}

const SKIPPED: [(&str, &str); 5] = [
    ("bob/typing", "in_use"),
    ("bob/pairing", "in_use"),
    ("bob/ai-task", "task_working"),
    ("bob/asleep", "dormant"),
    ("prebuilds/prebuilt-01", "prebuild"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reason_is_skipped_with_no_post_and_its_reason_in_json_and_text() {
    let sim = sim(100.0).await;
    let args = ["coder", "update", "--template", "team-dev", "--all-owners"];
    let run = fleet_on(&sim, &[&args[..], &["-o", "json"]].concat(), 90).await;
    assert_eq!(run.code, 0, "skipped is not a failure\n{}", run.stderr);
    let report = run.json();
    assert_eq!(result(&report, "bob/idle-box")["verdict"], "updated");
    for (workspace, kind) in SKIPPED {
        let r = result(&report, workspace);
        assert_eq!(r["verdict"], "skipped", "{r:#}");
        assert_eq!(r["skipped"]["kind"], kind, "{r:#}");
        assert_eq!(r["aftermath"]["kind"], "nothing_changed", "{r:#}");
        assert_eq!(builds_of(&sim, workspace), 0, "no build for {workspace}");
    }
    assert_eq!(
        builds_of(&sim, "bob/idle-box"),
        1,
        "one stop with on_success"
    );
    let typing = result(&report, "bob/typing");
    let message = typing["message"].as_str().unwrap();
    assert!(
        message.starts_with("in use (last used ") && message.contains(" ago by bob)"),
        "{message}"
    );
    assert_eq!(typing["skipped"]["owner"], "bob");
    assert!(
        result(&report, "bob/ai-task")["message"]
            .as_str()
            .unwrap()
            .contains("an AI task is working in it (\"Refactoring the billing module\")")
    );
    assert_eq!(
        (&report["skipped"], &report["failed"], &report["succeeded"]),
        (&Value::from(5), &Value::from(0), &Value::from(1))
    );
    assert_eq!(
        report["resume_command"], "fleet coder update --template team-dev --all-owners",
        "{report:#}"
    );

    // The same in text, on a fresh simulator.
    let sim = self::sim(100.0).await;
    let run = fleet_on(&sim, &args, 90).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for needle in [
        "bob/typing: skipped — in use (last used ",
        "bob/ai-task: skipped — an AI task is working in it (\"Refactoring the billing module\")",
        "bob/asleep: skipped — dormant since ",
        "prebuilds/prebuilt-01: skipped — a prebuilt workspace",
        "To go on, pass --include-prebuilds.",
        "To go on, pass --wait-for-idle DURATION, or pass --include-busy.",
        "5 workspace(s) skipped, left alone: 2 in use by someone else, 1 with an AI task working, \
         1 dormant, 1 prebuilt.",
        "To pick them up later, run `fleet coder update --template team-dev --all-owners`",
        "6 workspace(s): 1 updated, 5 skipped",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} in:\n{}",
            run.stdout
        );
    }

    // The dry run says the same, and sends nothing that changes anything.
    sim.clear_requests();
    let run = fleet_on(
        &sim,
        &[&args[..], &["--dry-run", "-o", "json"]].concat(),
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    for (workspace, kind) in SKIPPED {
        assert_eq!(result(&report, workspace)["skipped"]["kind"], kind);
    }
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        sim.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_busy_workspace_exits_2_says_why_and_what_to_pass() {
    let sim = sim(100.0).await;
    for (workspace, why, pass) in [
        ("bob/typing", "in use (last used ", "--include-busy"),
        (
            "bob/ai-task",
            "an AI task is working in it (\"Refactoring the billing module\")",
            "--wait-for-idle DURATION",
        ),
        ("bob/asleep", "dormant since ", "--include-busy"),
        (
            "prebuilds/prebuilt-01",
            "a prebuilt workspace",
            "--include-prebuilds",
        ),
    ] {
        let run = fleet_on(&sim, &["coder", "update", workspace], 90).await;
        assert_eq!(run.code, 2, "{workspace}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("{workspace} skipped: {why}"))
                && run.stderr.contains("nothing was changed")
                && run.stderr.contains(pass),
            "{workspace}: {}",
            run.stderr
        );
        assert_eq!(builds_of(&sim, workspace), 0, "{workspace}");
    }
    let run = fleet_on(&sim, &["coder", "restart", "bob/typing", "-o", "json"], 90).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "skipped");
    assert_eq!(error["nothing_changed"], true);
    assert_eq!(builds_of(&sim, "bob/typing"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn your_own_workspace_in_use_is_not_busy() {
    let sim = sim(100.0).await;
    let run = fleet_on(&sim, &["coder", "restart", "alice/notes", "-o", "json"], 90).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(builds_of(&sim, "alice/notes") >= 1);
    // It was asked who the token is: that is how alice/notes is known to be alice's.
    assert!(sim.count_requests("GET", "/api/v2/users/me") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_busy_updates_them_and_prebuilds_still_need_their_own_flag() {
    let sim = sim(100.0).await;
    let args = ["coder", "update", "--template", "team-dev", "--all-owners"];
    let run = fleet_on(
        &sim,
        &[
            &args[..],
            &["--include-busy", "--parallel", "8", "-o", "json"],
        ]
        .concat(),
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    for workspace in ["bob/typing", "bob/pairing", "bob/ai-task", "bob/asleep"] {
        assert_eq!(
            result(&report, workspace)["verdict"],
            "updated",
            "{workspace}"
        );
        assert!(builds_of(&sim, workspace) >= 1, "{workspace}");
    }
    assert_eq!(
        result(&report, "prebuilds/prebuilt-01")["skipped"]["kind"],
        "prebuild"
    );
    assert_eq!(builds_of(&sim, "prebuilds/prebuilt-01"), 0);
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "prebuilds/prebuilt-01",
            "--include-prebuilds",
            "-o",
            "json",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(builds_of(&sim, "prebuilds/prebuilt-01") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_idle_updates_one_that_goes_idle_and_skips_one_that_does_not() {
    // At speed 600, bob/typing stops typing 1 s (real) after the start; bob/pairing never.
    let sim = sim(600.0).await;
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "bob/pairing",
            "bob/typing",
            "--idle-for",
            "2s",
            "--wait-for-idle",
            "8s",
            "-o",
            "json",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(result(&report, "bob/typing")["verdict"], "updated");
    assert!(builds_of(&sim, "bob/typing") >= 1);
    let pairing = result(&report, "bob/pairing");
    assert_eq!(pairing["verdict"], "skipped", "{pairing:#}");
    assert!(
        pairing["message"]
            .as_str()
            .unwrap()
            .contains("after waiting 8s for it to become idle"),
        "{pairing:#}"
    );
    assert!(pairing["elapsed_ms"].as_u64().unwrap() >= 8_000);
    assert_eq!(builds_of(&sim, "bob/pairing"), 0);
    assert!(
        report["resume_command"]
            .as_str()
            .unwrap()
            .contains("--idle-for 2s --wait-for-idle 8s"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_with_canary_and_max_failures_skips_some_and_counts_only_real_failures() {
    let sim = sim(100.0).await;
    // One at a time: alice/dev is the canary (the busy ones go last), alice/ml-notebook
    // fails (broken-start), then two are skipped. Counted as failures, the skips would use up
    // the budget of 2 and halt the rollout before bob/ai-task.
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "bob/typing",
            "alice/dev",
            "alice/ml-notebook",
            "bob/ai-task",
            "bob/idle-box",
            "--canary",
            "1",
            "--max-failures",
            "2",
            "--parallel",
            "1",
            "-o",
            "json",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 1, "one real failure\n{}", run.stderr);
    let report = run.json();
    let order: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["workspace"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "alice/dev",
            "alice/ml-notebook",
            "bob/idle-box",
            "bob/typing",
            "bob/ai-task"
        ]
    );
    assert_eq!(result(&report, "alice/dev")["verdict"], "updated");
    assert_eq!(result(&report, "alice/ml-notebook")["verdict"], "failed");
    assert_eq!(result(&report, "bob/idle-box")["verdict"], "updated");
    assert_eq!(result(&report, "bob/typing")["verdict"], "skipped");
    assert_eq!(result(&report, "bob/ai-task")["verdict"], "skipped");
    assert!(report["halt"].is_null(), "{report:#}");
    assert_eq!(
        (&report["failed"], &report["skipped"]),
        (&Value::from(1), &Value::from(2))
    );
    // A busy canary does not fail the canary: the rest goes on.
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "bob/pairing",
            "bob/asleep",
            "--canary",
            "1",
            "-o",
            "json",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert!(report["halt"].is_null(), "{report:#}");
    assert_eq!(report["skipped"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_command_covers_the_skipped_ones() {
    let sim = sim(100.0).await;
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "restart",
            "alice/notes",
            "bob/typing",
            "bob/asleep",
            "-o",
            "json",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(result(&report, "alice/notes")["verdict"], "restarted");
    assert_eq!(
        report["resume_command"], "fleet coder restart -- bob/typing bob/asleep",
        "{report:#}"
    );
    let run = fleet_on(&sim, &["coder", "restart", "alice/notes", "bob/typing"], 90).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("To pick them up later, run `fleet coder restart -- bob/typing`"),
        "{}",
        run.stdout
    );
}
