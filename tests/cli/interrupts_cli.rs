//! Ctrl-C under a real terminal (a pseudo-terminal driven by python3's pty module), the
//! Terraform way: the first Ctrl-C finishes the in-flight stop→start and says so; the second
//! leaves everything as it is, says what is left and the command that finishes it, exit 130.

use crate::support::cli::fleet;

#[test]
fn one_ctrl_c_during_the_stop_finishes_the_update_and_the_workspace_runs() {
    let (code, output) = fleet(&["--sim", "--sim-speed", "2", "coder", "update", "alice/dev"])
        .under_pty(1, "stop build");
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
    let (code, output) = fleet(&[
        "--sim",
        "--sim-speed",
        "1",
        "coder",
        "update",
        "alice/dev",
        "--client-driven",
    ])
    .under_pty(2, "stop build");
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
    let (code, output) = fleet(&["--sim", "--sim-speed", "1", "coder", "update", "alice/dev"])
        .under_pty(2, "stop build");
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
    let (code, output) = fleet(&[
        "--sim",
        "--sim-speed",
        "2",
        "coder",
        "update",
        "alice/dev",
        "bob/dev",
        "--parallel",
        "1",
    ])
    .under_pty(1, "stop build");
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

// ---------------------------------------------------------------------------------------------
// Molecule: the same policy. A migration's in-flight work is its start (one POST, never
// retried): the first Ctrl-C lets it get its answer, then follows no more (the control plane
// goes on) and says how to follow; the second leaves at once, saying it may have started.
// ---------------------------------------------------------------------------------------------

const CP_TOKEN: &str = "cp-pty-secret-123";

fn molecule_env(server: &httpmock::MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("MOLECULE_CP_URL", server.base_url()),
        ("CP_ADMIN_API_TOKEN", CP_TOKEN.to_string()),
    ]
}

/// Workspace `id` was never migrated (the pre-flight read), and its start is answered 202
/// after `delay`.
fn slow_start<'a>(
    server: &'a httpmock::MockServer,
    id: &str,
    delay: std::time::Duration,
) -> httpmock::Mock<'a> {
    use httpmock::Method::{GET, POST};
    let path = format!("/cp/admin/workspaces/{id}/migrate-provider");
    server.mock(|when, then| {
        when.method(GET).path(path.clone());
        then.status(404)
            .json_body(serde_json::json!({"error": "no migration"}));
    });
    server.mock(|when, then| {
        when.method(POST).path(path);
        then.status(202).delay(delay).json_body(serde_json::json!({
            "status": "migration_started", "workspace_id": id, "from": "aws", "to": "hetzner"
        }));
    })
}

const MIGRATE: [&str; 7] = [
    "molecule",
    "migrate-provider",
    "--to",
    "hetzner",
    "--from",
    "aws",
    "--confirm",
];

#[test]
fn one_ctrl_c_during_a_migration_start_lets_it_be_answered_then_follows_no_more() {
    let server = httpmock::MockServer::start();
    let post = slow_start(&server, "ws-1", std::time::Duration::from_secs(2));
    let mut args = MIGRATE.to_vec();
    args.extend(["--wait", "ws-1"]);
    let (code, output) = fleet(&args)
        .vars(&molecule_env(&server))
        .under_pty(1, "waiting for the first status");
    assert!(
        output.contains("Interrupt received: letting the start under way get its answer"),
        "{output}"
    );
    // The POST under way got its answer; nothing was left half-known.
    assert_eq!(post.calls(), 1, "{output}");
    assert!(
        output.contains("Migration of workspace ws-1 from aws to hetzner started"),
        "{output}"
    );
    assert!(output.contains("continues on the server"), "{output}");
    assert!(
        output.contains("fleet molecule migration-status --wait -- ws-1"),
        "{output}"
    );
    assert_eq!(code, 130, "{output}");
}

#[test]
fn two_ctrl_c_during_a_migration_start_leave_at_once_and_say_it_may_have_started() {
    let server = httpmock::MockServer::start();
    let post = slow_start(&server, "ws-1", std::time::Duration::from_secs(10));
    let mut args = MIGRATE.to_vec();
    args.extend(["--wait", "ws-1"]);
    let began = std::time::Instant::now();
    let (code, output) = fleet(&args)
        .vars(&molecule_env(&server))
        .under_pty(2, "waiting for the first status");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(9),
        "left before the answer: {output}"
    );
    assert_eq!(code, 130, "{output}");
    assert!(
        output.contains("Second interrupt: leaving everything as it is now"),
        "{output}"
    );
    assert!(output.contains("may have started"), "{output}");
    assert!(!output.contains("hetzner started"), "{output}");
    assert!(
        output.contains("fleet molecule migration-status --wait -- ws-1"),
        "{output}"
    );
    // Sent once, never again.
    assert_eq!(post.calls(), 1, "{output}");
}

#[test]
fn one_ctrl_c_in_a_molecule_batch_starts_no_more_lets_the_start_under_way_end_and_exits_130() {
    let server = httpmock::MockServer::start();
    let first = slow_start(&server, "ws-1", std::time::Duration::ZERO);
    let second = slow_start(&server, "ws-2", std::time::Duration::from_secs(2));
    let third = slow_start(&server, "ws-3", std::time::Duration::ZERO);
    let mut args = MIGRATE.to_vec();
    args.extend(["--wait", "ws-1", "ws-2", "ws-3"]);
    let (code, output) = fleet(&args)
        .vars(&molecule_env(&server))
        .under_pty(1, "[ws-1] migration from aws to hetzner started");
    assert!(
        output.contains("Interrupt received: starting no more migrations"),
        "{output}"
    );
    assert_eq!((first.calls(), second.calls()), (1, 1), "{output}");
    assert!(
        output.contains("[ws-2] migration from aws to hetzner started"),
        "{output}"
    );
    // Nothing new starts once interrupted.
    assert_eq!(third.calls(), 0, "{output}");
    assert!(
        output.contains("[ws-3] not started: interrupted before its turn"),
        "{output}"
    );
    assert!(
        output.contains("fleet molecule migration-status --wait -- ws-1 ws-2"),
        "{output}"
    );
    assert_eq!(code, 130, "{output}");
}

#[test]
fn two_ctrl_c_in_a_molecule_batch_leave_the_start_under_way_and_say_how_to_check_it() {
    let server = httpmock::MockServer::start();
    let first = slow_start(&server, "ws-1", std::time::Duration::ZERO);
    let second = slow_start(&server, "ws-2", std::time::Duration::from_secs(10));
    let mut args = MIGRATE.to_vec();
    args.extend(["--wait", "ws-1", "ws-2"]);
    let began = std::time::Instant::now();
    let (code, output) = fleet(&args)
        .vars(&molecule_env(&server))
        .under_pty(2, "[ws-1] migration from aws to hetzner started");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(9),
        "left before the answer: {output}"
    );
    assert_eq!(code, 130, "{output}");
    assert!(
        output.contains("Second interrupt: leaving everything as it is now"),
        "{output}"
    );
    assert!(
        output.contains("[ws-2] left before the control plane answered its start"),
        "{output}"
    );
    assert!(
        output.contains("fleet molecule migration-status -- ws-2"),
        "{output}"
    );
    assert!(
        output.contains("fleet molecule migration-status --wait -- ws-1"),
        "{output}"
    );
    assert_eq!((first.calls(), second.calls()), (1, 1), "{output}");
}
