//! Ctrl-C under a real terminal (a pseudo-terminal driven by python3's pty module), the
//! Terraform way: the first Ctrl-C finishes the in-flight stop→start and says so; the second
//! leaves everything as it is, says what is left and the command that finishes it, exit 130.

use std::process::Command;

use serde_json::Value;

/// Runs `fleet ARGS` under a pty, presses Ctrl-C `presses` times once `wait_for` shows.
fn under_pty(presses: u32, wait_for: &str, args: &[&str]) -> (i64, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty/ctrl_c.py");
    let mut cmd = Command::new("python3");
    for var in crate::support::USER_CONFIG_VARS {
        cmd.env_remove(var);
    }
    let out = cmd
        .arg(script)
        .arg(presses.to_string())
        .arg(wait_for)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_fleet"))
        .args(args)
        .env_remove("CODER_URL")
        .env_remove("CODER_SESSION_TOKEN")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(v["pressed"].as_u64(), Some(u64::from(presses)), "{v}");
    (
        v["code"].as_i64().unwrap_or(-1),
        v["output"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn one_ctrl_c_during_the_stop_finishes_the_update_and_the_workspace_runs() {
    let (code, output) = under_pty(
        1,
        "stop build",
        &["--sim", "--sim-speed", "2", "coder", "update", "alice/dev"],
    );
    assert!(
        output.contains("finishing the in-flight stop→start of alice/dev"),
        "{output}"
    );
    assert!(
        output.contains("Ctrl-C again to leave it as it is"),
        "{output}"
    );
    assert!(output.contains("and running"), "{output}");
    assert_eq!(code, 0, "{output}");
}

#[test]
fn two_ctrl_c_leave_the_workspace_stopped_exit_130_and_say_how_to_finish() {
    // Client-driven: nobody but fleet would start it again.
    let (code, output) = under_pty(
        2,
        "stop build",
        &[
            "--sim",
            "--sim-speed",
            "1",
            "coder",
            "update",
            "alice/dev",
            "--client-driven",
        ],
    );
    assert_eq!(code, 130, "{output}");
    assert!(output.contains("leaving everything as it is"), "{output}");
    assert!(output.contains("left stopped"), "{output}");
    assert!(
        output.contains("fleet coder update --template-version")
            && output.contains(" -- alice/dev`"),
        "{output}"
    );
}

#[test]
fn two_ctrl_c_during_a_server_side_stop_exit_130_and_say_the_server_starts_it() {
    // Server-side (the simulator reports Coder v2.36.1): the stop carries on_success, so
    // leaving it as it is still ends with the workspace started by Coder.
    let (code, output) = under_pty(
        2,
        "stop build",
        &["--sim", "--sim-speed", "1", "coder", "update", "alice/dev"],
    );
    assert_eq!(code, 130, "{output}");
    assert!(output.contains("server-side"), "{output}");
    assert!(output.contains("leaving everything as it is"), "{output}");
    assert!(
        output.contains("the server starts it again once the stop has ended"),
        "{output}"
    );
    assert!(!output.contains("left stopped"), "{output}");
    assert!(
        output.contains("To follow it, run `fleet coder show -- alice/dev`"),
        "{output}"
    );
}

#[test]
fn one_ctrl_c_in_a_batch_starts_no_more_workspaces() {
    let (code, output) = under_pty(
        1,
        "stop build",
        &[
            "--sim",
            "--sim-speed",
            "2",
            "coder",
            "update",
            "alice/dev",
            "bob/dev",
            "--parallel",
            "1",
        ],
    );
    assert!(output.contains("starting no more workspaces"), "{output}");
    assert!(
        output.contains("finishing the in-flight stop→start of alice/dev"),
        "{output}"
    );
    let table = output.split("WORKSPACE").last().unwrap_or_default();
    assert!(table.contains("alice/dev"), "{output}");
    assert!(table.contains("updated"), "{output}");
    assert!(table.contains("not started"), "{output}");
    assert_eq!(code, 130, "{output}");
}
