//! Help a person reads (issue 27 item 8): every example in every `--help`, and the "Then try"
//! lines `fleet sim` prints, run as written off a terminal; a subcommand's help leads with its
//! own options and fits a screen; nothing is wrapped mid-phrase.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::{Duration, Instant},
};

use crate::support::cli::fleet;

fn help(path: &[&str]) -> String {
    let out = fleet(&[])
        .command()
        .args(path)
        .arg("--help")
        .output()
        .expect("fleet runs");
    assert_eq!(out.status.code(), Some(0), "{path:?} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names under "Commands:" in a help text (clap's `help` left out).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A name at two spaces; a wrapped description is indented further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect()
}

/// Every command path and its `--help`, from `fleet` down.
fn every_help() -> Vec<(Vec<String>, String)> {
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut all = Vec::new();
    while let Some(path) = todo.pop() {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&refs);
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        all.push((path, text));
    }
    all
}

/// The example lines of a help text: the indented `fleet …` lines after an "Example:" or
/// "Examples:" line, up to the next blank line, without their `# comments`.
fn examples(help: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Example") {
            inside = true;
            continue;
        }
        if line.trim().is_empty() {
            inside = false;
            continue;
        }
        if inside {
            let command = line.split(" # ").next().unwrap_or_default().trim();
            assert!(
                command.starts_with("fleet "),
                "an example line that is not a whole command (cut by wrapping?): {line:?}\n{help}"
            );
            found.push(command.to_string());
        }
    }
    found
}

/// Runs `fleet ARGS` against a fresh simulator (`--sim`), in `dir`; (exit code, stderr).
fn run_against_sim(command: &str, dir: &std::path::Path) -> (i32, String) {
    assert!(
        !command.contains(['"', '\'', '…', '$']),
        "an example must run as written, without placeholders or quoting: {command}"
    );
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let mut child = fleet(&[])
        .command()
        .current_dir(dir)
        .args(["--sim", "--sim-speed", "2000"])
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fleet runs");
    let stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("{command}: still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, reader.join().unwrap_or_default())
}

/// An example must not end in a usage error or a refusal (exit 2): 0, or 1 where the example
/// shows a remote failure the simulator is seeded to give.
fn assert_runs(command: &str, dir: &std::path::Path) {
    let (code, stderr) = run_against_sim(command, dir);
    assert!(
        code == 0 || code == 1,
        "{command}: exit {code} (an example must run as written off a terminal)\n{stderr}"
    );
    assert!(
        !stderr.contains("Usage:"),
        "{command}: a usage error\n{stderr}"
    );
}

#[test]
fn every_example_in_every_help_runs_as_written_against_the_simulator() {
    let dir = tempfile::tempdir().expect("a directory");
    // The file the `--parameters-file` example names.
    std::fs::write(dir.path().join("params.yaml"), "cpu: 8\n").expect("params.yaml");
    let mut count = 0;
    for (path, text) in every_help() {
        for example in examples(&text) {
            assert_runs(&example, dir.path());
            count += 1;
        }
        if path.len() == 2
            && path[0] == "coder"
            && ["update", "restart"].contains(&path[1].as_str())
        {
            assert!(!examples(&text).is_empty(), "{path:?} has examples");
        }
    }
    assert!(count >= 25, "only {count} examples found");
}

#[test]
fn the_then_try_lines_of_fleet_sim_run_as_written() {
    let mut child = fleet(&["sim", "--listen", "127.0.0.1:0", "--speed", "2000"])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fleet sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut tries = Vec::new();
    for line in lines.by_ref() {
        if let Some(c) = line.strip_prefix("Then try: ") {
            tries.push(c.trim().to_string());
        } else if !tries.is_empty() {
            let c = line.split("   (").next().unwrap_or_default().trim();
            tries.push(c.to_string());
            break;
        }
    }
    child.kill().ok();
    child.wait().ok();
    assert_eq!(tries.len(), 2, "{tries:?}");
    let dir = tempfile::tempdir().expect("a directory");
    for command in &tries {
        assert_runs(command, dir.path());
    }
}

#[test]
fn a_subcommand_help_leads_with_its_own_options_and_fits_a_screen() {
    let list = help(&["coder", "list"]);
    let lines = list.lines().count();
    assert!(lines <= 40, "coder list --help is {lines} lines:\n{list}");
    // Its own options come first; the connection options are shown once, by `fleet --help`.
    let options = list.find("\nOptions:").expect("Options");
    assert!(
        list[options..]
            .trim_start()
            .starts_with("Options:\n      --outdated"),
        "{list}"
    );
    for other in [
        "--coder-url",
        "--molecule-cp-url",
        "--cp-admin-token",
        "--sim-speed",
    ] {
        assert!(
            !list.contains(other),
            "{other} in coder list --help:\n{list}"
        );
    }
    assert!(list.contains("see `fleet --help`"), "{list}");
    let top = help(&[]);
    for flag in [
        "--coder-url",
        "--molecule-cp-url",
        "--context",
        "--sim-speed",
    ] {
        let shown = top
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{flag} ")))
            .count();
        assert_eq!(shown, 1, "{flag} in fleet --help:\n{top}");
    }
    let update = help(&["coder", "update"]);
    assert!(!update.contains("--molecule-cp-url"), "{update}");
    // Exit codes are not wrapped mid-phrase (was "(each\nworkspace's\nstate is said)").
    assert!(
        update.contains("130 interrupted (each workspace's state is said)"),
        "{update}"
    );
}

#[test]
fn fleet_sim_offers_one_speed_and_refuses_the_global_sim_options() {
    let sim = help(&["sim"]);
    assert!(sim.contains("--speed"), "{sim}");
    // One speed is offered; the help says why the other is not.
    for global in [
        "--sim ",
        "--sim-speed",
        "--sim-bulk",
        "--sim-cp-admin-layout",
    ] {
        let offered = sim.lines().any(|l| l.trim_start().starts_with(global));
        assert!(!offered, "{global} offered by fleet sim --help:\n{sim}");
    }
    assert!(sim.contains("--sim-speed (default 60)"), "{sim}");
    assert!(sim.contains("refused here"), "{sim}");
    for (flag, instead) in [
        ("--sim-speed=5", "use --speed"),
        ("--sim", "the simulator already"),
    ] {
        let out = fleet(&[])
            .command()
            .args(["sim", flag, "--listen", "127.0.0.1:0"])
            .output()
            .expect("fleet runs");
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not apply to `fleet sim`"), "{err}");
        assert!(err.contains(instead), "{err}");
    }
}
