//! `fleet-mcp` configured by a context instead of tokens in the host's configuration:
//! `--context NAME` and `FLEET_CONTEXT` (a fresh HOME and XDG_CONFIG_HOME per test), an
//! unknown context refused at start, and `fleet-mcp --check` (the doctor's checks).

use std::{path::Path, process::Stdio};

use crate::support::mcp::{FleetMcp, fleet_mcp};
use crate::support::sim::sim;
use fleet::sim::{CODER_SESSION_TOKEN, RunningSim};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

/// A fresh home whose config file has the context `sim` (Coder: the simulator, the token
/// from a 0600 file) and `broken` (the token from an unset variable).
fn home_with_context(sim: &RunningSim) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let token = home.path().join("coder-token");
    std::fs::write(&token, CODER_SESSION_TOKEN).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = home.path().join("xdg/fleet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[contexts.sim.coder]\nurl = \"{}\"\nsession-token-file = \"{}\"\n\n\
             [contexts.broken.coder]\nurl = \"{}\"\nsession-token-env = \"UNSET_TOKEN_VAR\"\n",
            sim.coder_url(),
            token.display(),
            sim.coder_url()
        ),
    )
    .unwrap();
    home
}

/// `fleet-mcp args` (a clean environment) in the fresh `home`, with `env` set.
fn fleet_mcp_in(home: &Path, args: &[&str], env: &[(&str, &str)]) -> FleetMcp {
    fleet_mcp(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg"))
        .envs(env.iter().copied())
}

async fn list_agents(mcp: FleetMcp) -> Value {
    let client = mcp.connect().await;
    let r = client
        .call_tool(
            CallToolRequestParams::new("list_agents")
                .with_arguments(json!({}).as_object().expect("an object").clone()),
        )
        .await
        .expect("answered");
    client.cancel().await.unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    r.structured_content.expect("structured")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mcp_context_answers_list_agents_without_tokens_in_its_configuration() {
    let sim = sim(2000.0).await;
    let home = home_with_context(&sim);
    let by_flag = list_agents(fleet_mcp_in(home.path(), &["--context", "sim"], &[])).await;
    assert!(by_flag.to_string().contains("alice/dev"), "{by_flag}");
    let by_env = list_agents(fleet_mcp_in(home.path(), &[], &[("FLEET_CONTEXT", "sim")])).await;
    assert!(by_env.to_string().contains("alice/dev"), "{by_env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mcp_refuses_an_unknown_context_at_start() {
    let sim = sim(2000.0).await;
    let home = home_with_context(&sim);
    sim.clear_requests();
    for (args, env) in [
        (vec!["--context", "nope"], vec![]),
        (vec![], vec![("FLEET_CONTEXT", "nope")]),
    ] {
        let out = fleet_mcp_in(home.path(), &args, &env)
            .command()
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("broken, sim"),
            "lists the contexts: {stderr}"
        );
    }
    assert!(sim.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mcp_check_runs_the_doctors_checks_and_exits() {
    let sim = sim(2000.0).await;
    let home = home_with_context(&sim);
    let run = |args: Vec<&'static str>| {
        let mut cmd = fleet_mcp_in(home.path(), &args, &[]).command();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        async move {
            let out = cmd.output().await.unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, stdout, stderr) = run(vec!["--check", "--context", "sim"]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("Coder: works") && stdout.contains("alice"),
        "{stdout}"
    );
    assert!(!stdout.contains(CODER_SESSION_TOKEN), "{stdout}");
    let (code, stdout, stderr) = run(vec!["--check"]).await;
    assert_eq!(code, Some(2), "nothing configured: {stdout}{stderr}");
    // A token that cannot be got: --check reports it and fails the plane (exit 1); serving
    // refuses to start (exit 2).
    let (code, stdout, stderr) = run(vec!["--check", "--context", "broken"]).await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("UNSET_TOKEN_VAR"), "{stderr}");
    assert!(stdout.contains("no session token"), "{stdout}");
    let (code, _, stderr) = run(vec!["--context", "broken"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("UNSET_TOKEN_VAR"), "{stderr}");
}
