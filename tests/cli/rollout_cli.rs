//! Rollouts with health gates through the built `fleet` binary against the simulator (in this
//! process, so its build history can be read): a canary on a broken version halts with nothing
//! beyond the canary touched, `--max-failures` stops new starts, a re-run resumes, readiness is
//! waited for (and its bound honoured at a slow speed), external agents are not waited for.

use std::time::Duration;

use crate::support::cli::{assert_columns_line_up, fleet, fleet_on};
use crate::support::sim::sim;
use fleet::{
    coder::{CoderClient, WorkspaceTransition, build_request},
    sim::RunningSim,
};
use serde_json::Value;

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

fn web(n: usize) -> String {
    format!("carol/web-{n:02}")
}

/// The seeded history of a web workspace: one start on v1.
fn untouched() -> Vec<(String, String)> {
    pairs(&[("start", "v1")])
}

fn version(sim: &RunningSim, name: &str) -> String {
    sim.coder_version_id("web", name)
        .expect("seeded version")
        .to_string()
}

fn result_of<'a>(report: &'a Value, workspace: &str) -> &'a Value {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["workspace"] == workspace)
        .unwrap_or_else(|| panic!("{workspace} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_on_a_broken_version_halts_with_nothing_beyond_the_canary_touched() {
    let sim = sim(100.0).await;
    let broken = version(&sim, "v3-start-error");
    let names: Vec<String> = (1..=6).map(web).collect();
    let mut args: Vec<&str> = vec!["coder", "update"];
    args.extend(names.iter().map(String::as_str));
    args.extend([
        "--template-version",
        &broken,
        "--canary",
        "1",
        "--parallel",
        "3",
        "-o",
        "json",
    ]);
    let run = fleet_on(&sim, &args, 90).await;
    assert_eq!(run.code, 1, "an unhealthy canary → exit 1\n{}", run.stderr);
    let report = run.json();
    let mut expected = vec![(web(1), "unhealthy".to_string())];
    expected.extend((2..=6).map(|n| (web(n), "not_attempted".to_string())));
    assert_eq!(verdicts(&report), expected);
    let canary = result_of(&report, &web(1));
    let message = canary["message"].as_str().unwrap();
    assert!(
        message.contains("agent main") && message.contains("start_error"),
        "the reason names the agent and its state: {message}"
    );
    assert_eq!(canary["ready"]["readiness"], "unhealthy");
    assert_eq!(canary["ready"]["agents"][0]["problem"], "start_error");
    assert!(canary["stop_ms"].as_u64().is_some() && canary["start_ms"].as_u64().is_some());
    assert_eq!(report["halt"]["reason"], "canary_failed");
    assert_eq!(
        report["halt"]["not_attempted"],
        serde_json::json!(names[1..].to_vec())
    );
    let resume = report["resume_command"].as_str().expect("a resume command");
    assert!(
        resume.starts_with("fleet coder update --template-version ")
            && resume.contains(&format!("--template-version {broken}"))
            && resume.contains("--canary 1")
            && resume.contains(" -- carol/web-01 carol/web-02 "),
        "{resume}"
    );
    // The canary was stopped and started on the broken version; nobody else was touched.
    assert_eq!(
        sim.coder_build_history(&web(1)),
        pairs(&[("start", "v1"), ("stop", "v1"), ("start", "v3-start-error")])
    );
    for n in 2..=6 {
        assert_eq!(sim.coder_build_history(&web(n)), untouched(), "{}", web(n));
    }

    // The table says the same, and colours nothing when stdout is not a terminal.
    let mut args: Vec<&str> = vec!["coder", "update", "carol/web-01", "carol/web-02"];
    args.extend(["--template-version", &broken, "--canary", "1"]);
    let run = fleet_on(&sim, &args, 90).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour codes: {}",
        run.stdout
    );
    assert!(run.stdout.contains("VERDICT"), "{}", run.stdout);
    // "v1 → v3-start-error" is wider than VERSION: the columns after it stay in line.
    assert_eq!(assert_columns_line_up(&run.stdout, "WORKSPACE ", 3), 2);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("carol/web-01") && l.contains("unhealthy")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("carol/web-02") && l.contains("not attempted")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Rollout halted"), "{}", run.stdout);
    assert!(run.stdout.contains("To resume"), "{}", run.stdout);
    assert_eq!(sim.coder_build_history(&web(2)), untouched());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_failures_two_on_a_mixed_fleet_stops_at_two() {
    let sim = sim(100.0).await;
    // carol's web template now points at the broken version; docker-dev stays good.
    assert!(sim.set_coder_active_version("web", "v3-start-error"));
    let api_server = sim.coder_workspace_id("alice/api-server").unwrap();
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "alice/dev",
            "carol/web-01",
            "alice/current",
            "carol/web-02",
            "carol/web-03",
            "alice/api-server",
            "carol/web-04",
            "--parallel",
            "1",
            "--max-failures",
            "2",
            "-o",
            "json",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        verdicts(&report),
        pairs(&[
            ("alice/dev", "updated"),
            ("carol/web-01", "unhealthy"),
            ("alice/current", "already_current"),
            ("carol/web-02", "unhealthy"),
            ("carol/web-03", "not_attempted"),
            ("alice/api-server", "not_attempted"),
            ("carol/web-04", "not_attempted"),
        ])
    );
    assert_eq!(report["halt"]["reason"], "max_failures");
    assert_eq!(report["halt"]["failures"], 2);
    let dev = result_of(&report, "alice/dev");
    assert_eq!(dev["ready"]["readiness"], "ready");
    assert!(dev["ready_ms"].as_u64().is_some(), "{dev}");
    assert_eq!(sim.coder_build_history("carol/web-03"), untouched());
    assert_eq!(sim.coder_build_history("carol/web-04"), untouched());
    assert_eq!(
        sim.count_requests("POST", &format!("/api/v2/workspaces/{api_server}/builds")),
        0,
        "a workspace not attempted gets no build"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_resumes_skipping_current_healthy_workspaces_and_starting_a_left_stopped_one() {
    let sim = sim(100.0).await;
    let good = version(&sim, "v2");
    let first: Vec<String> = (1..=4).map(web).collect();
    let mut args: Vec<&str> = vec!["coder", "update"];
    args.extend(first.iter().map(String::as_str));
    args.extend(["--template-version", &good, "--canary", "1", "-o", "json"]);
    let run = fleet_on(&sim, &args, 90).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(verdicts(&run.json()).iter().all(|(_, v)| v == "updated"));

    // carol/web-05 is left stopped (as an interrupted run would leave it).
    let coder = CoderClient::new(&sim.coder_config()).unwrap();
    let id = sim.coder_workspace_id(&web(5)).unwrap();
    coder
        .api()
        .create_workspace_build(&id, &build_request(WorkspaceTransition::Stop))
        .await
        .expect("the stop is accepted");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let all: Vec<String> = (1..=6).map(web).collect();
    let mut args: Vec<&str> = vec!["coder", "update"];
    args.extend(all.iter().map(String::as_str));
    args.extend(["--template-version", &good, "--canary", "1", "-o", "json"]);
    let run = fleet_on(&sim, &args, 90).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let mut expected: Vec<(String, String)> = (1..=4)
        .map(|n| (web(n), "already_current".to_string()))
        .collect();
    expected.push((web(5), "updated".into()));
    expected.push((web(6), "updated".into()));
    assert_eq!(verdicts(&report), expected);
    for n in 1..=4 {
        assert_eq!(
            sim.coder_build_history(&web(n)),
            pairs(&[("start", "v1"), ("stop", "v1"), ("start", "v2")]),
            "{} was skipped",
            web(n)
        );
    }
    assert_eq!(
        sim.coder_build_history(&web(5)),
        pairs(&[("start", "v1"), ("stop", "v1"), ("start", "v2")]),
        "the stopped one is only started"
    );
    assert_eq!(result_of(&report, &web(5))["stop_ms"], Value::Null);
    assert!(report.get("halt").is_none(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_slow_speed_the_ready_bound_is_honoured_and_an_external_agent_is_not_waited_for() {
    // At speed 10 a stop takes 0.5 s, a start 0.7 s; v5-slow-ready's agent needs 6 s more.
    let sim = sim(10.0).await;
    let slow = version(&sim, "v5-slow-ready");
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "carol/web-07",
            "--template-version",
            &slow,
            "--ready-timeout",
            "1s",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 1, "not ready in time → exit 1\n{}", run.stderr);
    assert!(
        run.stderr.contains("not ready within 1s")
            && run.stderr.contains("agent main: connected/starting"),
        "{}",
        run.stderr
    );
    // The same without waiting: updated.
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "carol/web-08",
            "--template-version",
            &slow,
            "--no-wait-ready",
            "-o",
            "json",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["action"], "updated");
    // An external agent is not waited for, and the output says so.
    let external = version(&sim, "v7-external");
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "carol/web-06",
            "--template-version",
            &external,
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("external agent") && run.stdout.contains("not waited for"),
        "{}",
        run.stdout
    );
    // An agent without a startup script is ready once it connects.
    let no_script = version(&sim, "v6-no-script");
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "carol/web-05",
            "carol/web-04",
            "--template-version",
            &no_script,
            "-o",
            "json",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        result_of(&report, "carol/web-05")["ready"]["readiness"],
        "ready"
    );
}

#[test]
fn on_a_terminal_only_the_verdict_word_is_coloured_and_no_color_turns_it_off() {
    // The simulator's ids are fixed: web v3-start-error.
    let args = [
        "--sim",
        "--sim-speed",
        "100",
        "coder",
        "update",
        "carol/web-01",
        "carol/web-02",
        "--template-version",
        "51330000-0000-4000-8000-000000000332",
        "--canary",
        "1",
    ];
    let (code, output) = fleet(&args).under_pty(0, "-");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("\x1b[31munhealthy\x1b[0m"), "{output:?}");
    assert!(
        output.contains("\x1b[33mnot attempted\x1b[0m"),
        "{output:?}"
    );
    // The server's words (the reason) are never inside a colour.
    let row = output
        .lines()
        .find(|l| l.starts_with("carol/web-01") && l.contains("unhealthy"))
        .expect("a row for the canary");
    assert_eq!(row.matches("\x1b[").count(), 2, "{row:?}");
    let (code, output) = fleet(&args).env("NO_COLOR", "1").under_pty(0, "-");
    assert_eq!(code, 1, "{output}");
    assert!(
        !output.contains("\x1b[31m") && !output.contains("\x1b[33m"),
        "{output:?}"
    );
    assert!(output.contains("unhealthy"), "{output}");
}

/// Runs `command` (a line fleet printed) in a POSIX shell whose only `fleet` is a stand-in that
/// records its argv; returns the argv after `fleet`.
fn argv_of_printed(command: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("argv");
    let stand_in = dir.path().join("fleet");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", dir.path())
        .status()
        .expect("sh runs");
    assert!(status.success(), "{command}");
    let bytes = std::fs::read(&record).expect("the stand-in ran");
    bytes
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// The names after `--` of a printed command's argv, checked: the words before `--` are
/// exactly fleet's own (`before`: subcommands, flags and their values), none holds a server's
/// name, and no name after `--` starts with `-`.
fn names_after_double_dash(argv: &[String], before: &[&str], server_names: &[&str]) -> Vec<String> {
    let dash = argv
        .iter()
        .position(|w| w == "--")
        .unwrap_or_else(|| panic!("no `--` in {argv:?}"));
    assert_eq!(argv[..dash], *before, "{argv:?}");
    for w in &argv[..dash] {
        assert!(
            !server_names.iter().any(|n| w.contains(n)),
            "a server-chosen word before `--`: {w:?} in {argv:?}"
        );
    }
    let names = argv[dash + 1..].to_vec();
    assert!(names.iter().all(|n| !n.starts_with('-')), "{argv:?}");
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_command_puts_server_names_after_double_dash_and_leaves_out_hostile_ones() {
    let sim = sim(100.0).await;
    let broken = version(&sim, "v3-start-error");
    // carol/web-01 runs the version whose agents fail: restarting it is an unhealthy canary.
    let run = fleet_on(
        &sim,
        &[
            "coder",
            "update",
            "carol/web-01",
            "--template-version",
            &broken,
            "--no-wait-ready",
        ],
        90,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ids: Vec<String> = (2..=4)
        .map(|n| sim.coder_workspace_id(&web(n)).unwrap().to_string())
        .collect();
    // The server renames two of the workspaces not attempted, and leaves their owner out, so
    // that it reports them by these bare names: one an option that would send the session
    // token to another server, one with a line break that forges a line of fleet's own.
    const OPTION: &str = "--coder-url=http://127.0.0.1:18999";
    const SPOOF: &str = "web-04\nalice/dev restarted on version v9";
    assert!(sim.rename_coder_workspace(&web(3), OPTION, true));
    assert!(sim.rename_coder_workspace(&web(4), SPOOF, true));
    let hostile = [OPTION, SPOOF];

    let mut args = vec!["coder", "restart", "--canary", "1", "--max-failures", "1"];
    args.push("carol/web-01");
    args.extend(ids.iter().map(String::as_str));
    let mut json_args = args.clone();
    json_args.extend(["-o", "json"]);
    let run = fleet_on(&sim, &json_args, 90).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        report["halt"]["not_attempted"],
        serde_json::json!([web(2), OPTION, SPOOF]),
        "{report}"
    );
    let resume = report["resume_command"].as_str().expect("a resume command");
    let argv = argv_of_printed(resume);
    let flags_first = ["coder", "restart", "--canary", "1", "--max-failures", "1"];
    assert_eq!(
        names_after_double_dash(&argv, &flags_first, &hostile),
        [web(2)],
        "{resume}"
    );
    let left_out = report["resume_command_left_out"]
        .as_array()
        .expect("what was left out");
    let words: Vec<&str> = left_out.iter().filter_map(|l| l["word"].as_str()).collect();
    assert_eq!(words, hostile, "{report}");
    assert!(
        left_out[0]["reason"]
            .as_str()
            .unwrap()
            .contains("starts with '-'"),
        "{report}"
    );
    assert!(
        left_out[1]["reason"]
            .as_str()
            .unwrap()
            .contains("line break"),
        "{report}"
    );

    // The printed argv is one the real fleet takes: flags first, `--`, then the name (with
    // --dry-run added among the flags, so that nothing changes).
    let mut dry = argv.clone();
    let dash = dry.iter().position(|w| w == "--").unwrap();
    dry.insert(dash, "--dry-run".into());
    dry.splice(dash..dash, ["-o".to_string(), "json".to_string()]);
    let dry_args: Vec<&str> = dry.iter().map(String::as_str).collect();
    let planned = fleet_on(&sim, &dry_args, 90).await;
    assert_eq!(planned.code, 0, "{dry:?}: {}", planned.stderr);
    let plan = planned.json();
    assert_eq!(plan["workspace"], web(2), "{dry:?}: {plan}");
    assert_eq!(plan["builds"].as_array().map(Vec::len), Some(2), "{plan}");
    assert_eq!(sim.coder_build_history(&web(2)), untouched());

    // The same in text: the resume line is one line, its command takes the names after `--`,
    // and it says what it left out and why; no line of the report is forged.
    let run = fleet_on(&sim, &args, 90).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("To resume"))
        .unwrap_or_else(|| panic!("a resume line: {}", run.stdout));
    let command = line.split('`').nth(1).expect("the command in backquotes");
    let argv = argv_of_printed(command);
    assert_eq!(
        names_after_double_dash(&argv, &flags_first, &hostile),
        [web(2)],
        "{line}"
    );
    assert!(
        line.contains("left out of the command")
            && line.contains("\"--coder-url=http://127.0.0.1:18999\" (it starts with '-'")
            && line.contains("\"web-04\\nalice/dev restarted on version v9\" (it holds"),
        "{line}"
    );
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.starts_with("alice/dev restarted")),
        "a server's line break started a line:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(
            |l| l.starts_with("web-04\\nalice/dev restarted on version v9  ")
                && l.contains("not attempted")
        ),
        "the row stays one line:\n{}",
        run.stdout
    );
    sim.shutdown().await;
}
