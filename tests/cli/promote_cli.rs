//! `fleet coder promote` and `fleet coder rollback` through the built binary, against the
//! simulator's web fleet (carol/web-01 … 08, template `web`, active v1; v2 good, v3-start-error
//! breaks every agent once started). The simulator keeps every request in order, so a test
//! checks the ORDER of what was sent; `coder_can_pin_versions: false` is a session without
//! template-admin permission (Coder answers the PATCH with 403).

use std::time::Duration;

use fleet::sim::{RunningSim, SimFaults, SimOptions, WORKSPACE_START_FAULT};
use serde_json::json;

use crate::support::cli::{Run, assert_columns_line_up, fleet, fleet_on};
use crate::support::sim::{changes, sim, sim_with};

/// Every request the simulator answered so far, in order, as `METHOD /path`.
fn sent(sim: &RunningSim) -> Vec<String> {
    sim.requests()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn on_sim(sim: &RunningSim, args: &[&str]) -> Run {
    fleet_on(sim, args, 120).await
}

fn web(n: usize) -> String {
    format!("carol/web-{n:02}")
}

fn history(sim: &RunningSim, n: usize) -> Vec<(String, String)> {
    sim.coder_build_history(&web(n))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `POST /api/v2/workspaces/{id}/builds` of a web workspace.
fn build_post(sim: &RunningSim, n: usize) -> String {
    format!(
        "POST /api/v2/workspaces/{}/builds",
        sim.coder_workspace_id(&web(n)).expect("seeded")
    )
}

fn position(log: &[String], what: &str) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(what))
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_goes_to_the_canary_first_is_promoted_only_then_and_rolls_back_after() {
    let sim = sim(100.0).await;
    let run = on_sim(
        &sim,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v2",
            "--parallel",
            "4",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.show());
    let report = run.json();
    assert_eq!(report["outcome"], "promoted", "{report}");
    // -o json: no progress at all, the pre-flight's count included.
    assert!(!run.stderr.contains("pre-flight"), "{}", run.show());
    assert_eq!(report["promoted"], true);
    assert_eq!(report["plan"]["canaries"][0]["workspace"], web(1));
    assert_eq!(report["plan"]["canary_choice"]["kind"], "chosen");
    assert_eq!(
        report["plan"]["permission"],
        json!({"kind": "granted", "role": "template-admin"})
    );
    assert_eq!(report["canary"]["results"][0]["verdict"], "updated");
    assert_eq!(report["rollout"]["total"], 7);
    assert_eq!(report["rollout"]["succeeded"], 7);
    // Per workspace, the version it came from.
    let moved = report["moved"].as_array().expect("moved");
    assert_eq!(moved.len(), 8);
    assert!(moved.iter().all(|m| m["from"]["name"] == "v1"), "{report}");
    assert_eq!(
        report["rollback_commands"],
        json!(["fleet coder rollback --to-version v1 -- web"])
    );

    // The order: the canary's builds, then (its agents healthy) the PATCH, then the others.
    let log = sent(&sim);
    let patch = position(&log, "PATCH /api/v2/templates/");
    assert_eq!(patch.len(), 1, "one PATCH: {log:#?}");
    let canary_posts = position(&log, &build_post(&sim, 1));
    assert!(
        !canary_posts.is_empty() && canary_posts.iter().all(|i| *i < patch[0]),
        "{log:#?}"
    );
    // The canary's readiness was read after its start and before the PATCH.
    let canary_id = sim.coder_workspace_id(&web(1)).unwrap();
    let reads = position(&log, &format!("GET /api/v2/workspaces/{canary_id}"));
    assert!(
        reads
            .iter()
            .any(|i| *i > *canary_posts.last().unwrap() && *i < patch[0]),
        "{log:#?}"
    );
    for n in 2..=8 {
        let posts = position(&log, &build_post(&sim, n));
        assert!(!posts.is_empty(), "{} updated: {log:#?}", web(n));
        assert!(
            posts.iter().all(|i| *i > patch[0]),
            "{} after the PATCH: {log:#?}",
            web(n)
        );
        assert_eq!(history(&sim, n).last().unwrap().1, "v2");
    }

    // A re-run resumes: the version is active and everybody runs it, so nothing is sent
    // but reads (no canary, no PATCH).
    sim.clear_requests();
    let run = on_sim(
        &sim,
        &["coder", "promote", "web", "--version", "v2", "-o", "json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.show());
    let again = run.json();
    assert_eq!(again["plan"]["already_active"], true, "{again}");
    assert_eq!(again["plan"]["canary_choice"]["kind"], "already_active");
    assert!(changes(&sim).is_empty(), "{:#?}", sent(&sim));

    // Rollback: the template's previous version is made active first, then the workspaces.
    sim.clear_requests();
    let run = on_sim(&sim, &["coder", "rollback", "web", "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.show());
    let back = run.json();
    assert_eq!(back["to"]["name"], "v1", "{back}");
    assert_eq!(back["restored_active"], true);
    assert_eq!(back["rollout"]["succeeded"], 8, "{back}");
    let log = sent(&sim);
    let patch = position(&log, "PATCH ");
    let posts = position(&log, "POST ");
    assert_eq!(patch.len(), 1, "{log:#?}");
    assert!(posts.iter().all(|p| *p > patch[0]), "{log:#?}");
    for n in 1..=8 {
        assert_eq!(
            history(&sim, n).last().unwrap(),
            &("start".into(), "v1".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_fails_readiness_is_rolled_back_nothing_promoted_nobody_else_touched() {
    let sim = sim(100.0).await;
    let run = on_sim(
        &sim,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v3-start-error",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.show());
    let report = run.json();
    assert_eq!(report["outcome"], "canary_failed", "{report}");
    assert_eq!(report["promoted"], false);
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("start_error") && message.contains("rolled back: carol/web-01 (to v1)"),
        "the agent's error and what was rolled back: {message}"
    );
    let (failed, _) = message.split_once("; rolled back").unwrap();
    assert_eq!(
        failed.matches("carol/web-01").count(),
        1,
        "the canary named once in what failed: {message}"
    );
    assert_eq!(report["moved"][0]["rolled_back"], true);
    assert_eq!(report["rollback_commands"], json!([]));
    let log = sent(&sim);
    assert!(position(&log, "PATCH ").is_empty(), "no PATCH: {log:#?}");
    assert_eq!(
        history(&sim, 1),
        pairs(&[
            ("start", "v1"),
            ("stop", "v1"),
            ("start", "v3-start-error"),
            ("stop", "v3-start-error"),
            ("start", "v1"),
        ])
    );
    for n in 2..=8 {
        assert_eq!(history(&sim, n), pairs(&[("start", "v1")]), "{}", web(n));
    }

    // --no-rollback leaves the canary as it is, and prints how to take it back.
    let run = on_sim(
        &sim,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v3-start-error",
            "--no-rollback",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.show());
    assert!(
        run.stdout
            .contains("fleet coder rollback --to-version v1 --workspaces carol/web-01 -- web"),
        "{}",
        run.show()
    );
    assert_eq!(history(&sim, 1).last().unwrap().1, "v3-start-error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_on_the_promotion_leaves_the_canary_on_the_new_version_and_says_how_to_go_back() {
    let sim = sim_with(SimOptions {
        speed: 100.0,
        coder_can_pin_versions: false,
        ..SimOptions::default()
    })
    .await;
    let run = on_sim(&sim, &["coder", "promote", "web", "--version", "v2"]).await;
    assert_eq!(run.code, 1, "{}", run.show());
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("template-admin permission"), "{text}");
    // The plan said so before the canary, from the session's site roles.
    assert!(
        run.stdout.contains(
            "warning: the session's site roles (member) do not include owner or template-admin"
        ),
        "{}",
        run.show()
    );
    assert!(
        text.contains("carol/web-01 (from v1) left on the new version"),
        "{text}"
    );
    let command = "fleet coder rollback --to-version v1 --workspaces carol/web-01 -- web";
    assert!(run.stdout.contains(command), "{}", run.show());
    assert_eq!(history(&sim, 1).last().unwrap().1, "v2");
    for n in 2..=8 {
        assert_eq!(history(&sim, n), pairs(&[("start", "v1")]), "{}", web(n));
    }

    // The printed command takes the canary back; the template was never changed, so no PATCH.
    sim.clear_requests();
    let words: Vec<&str> = command.split(' ').skip(1).collect();
    let run = on_sim(&sim, &words).await;
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(
        position(&sent(&sim), "PATCH ").is_empty(),
        "{:#?}",
        sent(&sim)
    );
    assert_eq!(
        history(&sim, 1).last().unwrap(),
        &("start".into(), "v1".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_the_plan_and_sends_no_state_changing_request() {
    let sim = sim(100.0).await;
    let run = on_sim(
        &sim,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v2",
            "--canary",
            "2",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(
        run.stdout.contains("1. canaries (chosen")
            && run
                .stdout
                .contains("carol/web-01 (on v1), carol/web-02 (on v1)")
            && run
                .stdout
                .contains("2. promotion: v2 becomes the active version")
            && run.stdout.contains("3. rollout: 6 workspace(s)"),
        "{}",
        run.show()
    );
    assert!(changes(&sim).is_empty(), "{:#?}", sent(&sim));
    // The pre-flight said how far it got, on stderr: the 8 workspaces that move.
    assert!(
        run.stderr.contains("pre-flight: checking 1 of 8…")
            && run.stderr.contains("pre-flight: checked 8 of 8"),
        "{}",
        run.show()
    );
    assert!(!run.stdout.contains("pre-flight:"), "{}", run.show());

    // A parameter value the version refuses: the pre-flight refuses the whole promotion,
    // exit 2, reads only.
    sim.clear_requests();
    let run = on_sim(
        &sim,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v2",
            "--parameter",
            "region=mars",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.show());
    assert!(
        run.stdout.contains("refused") && run.stdout.contains("region"),
        "{}",
        run.show()
    );
    assert!(changes(&sim).is_empty(), "{:#?}", sent(&sim));

    // A canary of another template, and a template that does not exist: exit 2, reads only.
    sim.clear_requests();
    let run = on_sim(
        &sim,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v2",
            "--canary-workspaces",
            "alice/dev",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.show());
    assert!(run.stderr.contains("not of web"), "{}", run.show());
    let run = on_sim(&sim, &["coder", "promote", "wbe", "--version", "v2"]).await;
    assert_eq!(run.code, 2, "{}", run.show());
    assert!(run.stderr.contains("did you mean web?"), "{}", run.show());
    assert!(changes(&sim).is_empty(), "{:#?}", sent(&sim));

    // A version that does not exist: exit 2, reads only.
    sim.clear_requests();
    let run = on_sim(&sim, &["coder", "promote", "web", "--version", "v9"]).await;
    assert_eq!(run.code, 2, "{}", run.show());
    assert!(
        run.stderr.contains("no version named \"v9\""),
        "{}",
        run.show()
    );
    assert!(changes(&sim).is_empty(), "{:#?}", sent(&sim));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_before_the_promotion_never_promotes() {
    // Slow enough that the canary is still under way when Ctrl-C comes.
    let sim = sim(4.0).await;
    let child = fleet(&["coder", "promote", "web", "--version", "v2"])
        .sim(&sim)
        .piped()
        .tokio()
        .spawn()
        .expect("fleet starts");
    let pid = child.id().expect("pid");
    let canary_post = build_post(&sim, 1);
    let began = std::time::Instant::now();
    while !sent(&sim).contains(&canary_post) {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the canary began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("fleet ends")
        .expect("fleet runs");
    let run = Run::from_output(&out);
    assert_eq!(run.code, 130, "{}", run.show());
    assert!(run.stderr.contains("Interrupt received"), "{}", run.show());
    assert!(
        run.stdout.contains("interrupted before the promotion"),
        "{}",
        run.show()
    );
    assert!(
        position(&sent(&sim), "PATCH ").is_empty(),
        "{:#?}",
        sent(&sim)
    );
    for n in 2..=8 {
        assert_eq!(history(&sim, n), pairs(&[("start", "v1")]), "{}", web(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_hits_its_failure_budget_after_the_promotion_exits_1_and_says_it_was_promoted()
 {
    // v2 is good (the canary web-01 ends healthy), but every start of web-03 fails whatever
    // the version: one at a time with a budget of one failure, the rollout stops there.
    let sim = sim_with(SimOptions {
        speed: 100.0,
        faults: SimFaults {
            coder_start_fails: vec![web(3)],
            ..SimFaults::default()
        },
        ..SimOptions::default()
    })
    .await;
    let run = on_sim(
        &sim,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v2",
            "--parallel",
            "1",
            "--max-failures",
            "1",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.show());

    // The canary was healthy, then the PATCH, then the rollout.
    let log = sent(&sim);
    let patch = position(&log, "PATCH /api/v2/templates/");
    assert_eq!(patch.len(), 1, "one PATCH: {log:#?}");
    assert!(
        position(&log, &build_post(&sim, 1))
            .iter()
            .all(|i| *i < patch[0]),
        "{log:#?}"
    );
    assert_eq!(
        history(&sim, 1).last().unwrap(),
        &("start".into(), "v2".into())
    );
    assert_eq!(
        history(&sim, 2).last().unwrap(),
        &("start".into(), "v2".into())
    );
    let failed = position(&log, &build_post(&sim, 3));
    assert!(!failed.is_empty(), "web-03 was tried: {log:#?}");
    assert!(failed.iter().all(|i| *i > patch[0]), "{log:#?}");
    // The budget was hit on web-03: nothing started after it.
    for n in 4..=8 {
        assert_eq!(history(&sim, n), pairs(&[("start", "v1")]), "{}", web(n));
        assert!(position(&log, &build_post(&sim, n)).is_empty(), "{log:#?}");
    }

    // The report says the template WAS promoted, which workspace failed and why, what was
    // not attempted, and how to take everything back.
    let out = &run.stdout;
    assert!(out.lines().any(|l| l == "promoted"), "{}", run.show());
    assert!(
        out.contains("v2 is the active version of template web"),
        "{}",
        run.show()
    );
    assert!(
        out.lines().any(|l| l.starts_with("rollout")
            && l.contains("carol/web-03")
            && l.contains("failed")),
        "{}",
        run.show()
    );
    assert!(
        out.contains("carol/web-03: failed — ") && out.contains(WORKSPACE_START_FAULT),
        "{}",
        run.show()
    );
    assert!(
        out.contains(
            "v2 is the active version of template web; rollout: 1 of 7 updated, 1 failed, 0 \
             skipped; halted (the failure budget was used up): 5 not attempted"
        ),
        "{}",
        run.show()
    );
    assert!(
        out.contains("fleet coder rollback --to-version v1 --parallel 1 -- web"),
        "{}",
        run.show()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_name_wider_than_its_header_keeps_the_report_columns_aligned() {
    // The README's quickstart: shop's bad version, "v1 → v3-start-error" is wider than
    // VERSION; the canary row and the rollback row line up under the header.
    let sim = sim(100.0).await;
    let run = on_sim(
        &sim,
        &["coder", "promote", "shop", "--version", "v3-start-error"],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.show());
    assert!(
        run.stdout.contains("v1 → v3-start-error") && run.stdout.contains("v3-start-error → v1"),
        "{}",
        run.show()
    );
    assert_eq!(
        assert_columns_line_up(&run.stdout, "PHASE ", 4),
        2,
        "{}",
        run.show()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_with_no_older_version_names_a_flag_rollback_takes() {
    // The README's `fleet coder rollback web` on a fresh simulator: nothing was promoted, so
    // there is no older version to go back to. Refused (exit 2, reads only), and the advice
    // names a flag that `fleet coder rollback` accepts.
    let sim = sim(100.0).await;
    let run = on_sim(&sim, &["coder", "rollback", "web"]).await;
    assert_eq!(run.code, 2, "{}", run.show());
    assert!(
        run.stderr
            .contains("no imported, unarchived version older than its active one")
            && run.stderr.contains("pass --template-version ID"),
        "{}",
        run.show()
    );
    assert!(changes(&sim).is_empty(), "{:#?}", sent(&sim));

    // Following the advice works: v1 is already active and web-01 runs it.
    let run = on_sim(
        &sim,
        &[
            "coder",
            "rollback",
            "web",
            "--template-version",
            "v1",
            "--workspaces",
            "carol/web-01",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.show());
    let back = run.json();
    assert_eq!(back["to"]["name"], "v1", "{back}");
    assert_eq!(history(&sim, 1), pairs(&[("start", "v1")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_flight_of_a_large_template_counts_in_a_dozen_lines_at_most() {
    // 40 bulk workspaces of docker-dev (on v2) and its own: the dry run's pre-flight checks
    // every one that moves to v3; without a terminal it says so at the first, at each tenth
    // and at the last.
    let sim = sim_with(SimOptions {
        speed: 100.0,
        bulk_workspaces: 40,
        ..SimOptions::default()
    })
    .await;
    let run = on_sim(
        &sim,
        &[
            "coder",
            "promote",
            "docker-dev",
            "--version",
            "v3",
            "--dry-run",
        ],
    )
    .await;
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("pre-flight: "))
        .collect();
    let last = lines.last().copied().unwrap_or_default();
    let total: usize = last
        .strip_prefix("pre-flight: checked ")
        .and_then(|rest| rest.split(" of ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the last line says all were checked: {}", run.show()));
    assert!(total >= 40, "{}", run.show());
    assert_eq!(last, format!("pre-flight: checked {total} of {total}"));
    assert_eq!(lines[0], format!("pre-flight: checking 1 of {total}…"));
    assert!(lines.len() <= 12, "{lines:#?}");
    assert!(changes(&sim).is_empty(), "{:#?}", sent(&sim));
}
