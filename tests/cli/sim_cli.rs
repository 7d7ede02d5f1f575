//! `fleet sim`: the built binary serves, prints what to export, and refuses a public address.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::Duration,
};

use crate::support::cli::fleet;
use fleet::{CoderConfig, MoleculeConfig, Secret, coder::CoderClient, molecule::MoleculeClient};

#[test]
fn refuses_a_non_loopback_address_and_a_bad_speed() {
    let out = fleet(&["sim", "--listen", "0.0.0.0:0"]).output();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--allow-non-loopback"),
        "{err}"
    );

    let out = fleet(&["sim", "--speed", "0"]).output();
    assert_eq!(out.status.code(), Some(2));

    let help = fleet(&["sim", "--help"]).output();
    let help = String::from_utf8_lossy(&help.stdout);
    for name in [
        "ws-fails-migration",
        "ws-rolls-back",
        "broken-start",
        "alice/slow-box",
        "--flaky-gets",
    ] {
        assert!(help.contains(name), "--help documents {name}");
    }
}

#[test]
fn the_help_shows_the_promotion_seed_and_the_permission_switch() {
    let help = fleet(&["sim", "--help"]).output();
    let help = String::from_utf8_lossy(&help.stdout);
    for name in [
        "shop         v1 (active) · v2 · v3-start-error",
        "carol/shop-01…04",
        "/api/v2/organizations/coder/templates/NAME",
        "PATCH",
        "--coder-no-template-update",
    ] {
        assert!(help.contains(name), "--help documents {name}: {help}");
    }
}

#[tokio::test]
async fn serves_and_prints_the_exports_that_work() {
    let mut child = fleet(&["sim", "--listen", "127.0.0.1:0", "--speed", "100"])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fleet sim starts");
    let stdout = child.stdout.take().expect("stdout");
    // Keep reading stdout to its end: a closed pipe would end the simulator.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("export ") {
                let _ = tx.send(line);
            }
        }
    });
    let exports = rx.recv_timeout(Duration::from_secs(20)).ok();
    let result = std::panic::AssertUnwindSafe(async {
        let exports = exports.expect("an export line");
        let var = |name: &str| {
            exports
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} is exported: {exports}"))
                .to_string()
        };
        let molecule = MoleculeClient::new(&MoleculeConfig {
            cp_url: var("MOLECULE_CP_URL"),
            cp_admin_token: Some(Secret::new(var("CP_ADMIN_API_TOKEN"))),
            api_url: Some(var("MOLECULE_API_URL")),
            org_api_key: Some(Secret::new(var("MOLECULE_ORG_API_KEY"))),
            ..MoleculeConfig::default()
        })
        .expect("client");
        let status = molecule
            .cp()
            .get_migration_status(&"ws-migrated".parse().expect("id"))
            .await
            .expect("the CP answers with the exported token");
        assert!(status.into_inner().terminal);
        let tenant = molecule.tenant().expect("tenant");
        tenant
            .get_workspace(&"ws-gcp-demo".parse().expect("id"))
            .await
            .expect("the tenant API answers with the exported key");
        let coder = CoderClient::new(&CoderConfig {
            url: Some(var("CODER_URL")),
            session_token: Some(Secret::new(var("CODER_SESSION_TOKEN"))),
            ..CoderConfig::default()
        })
        .expect("client");
        let me = coder
            .api()
            .get_user_by_name("me")
            .await
            .expect("Coder answers")
            .into_inner();
        assert_eq!(me.username, "alice");
    });
    let outcome = futures::FutureExt::catch_unwind(result).await;
    // Stop the child we started, whatever happened.
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn prints_its_own_tokens_even_when_the_environment_holds_them() {
    // After `export …` from an earlier `fleet sim`, the environment holds the simulator's
    // tokens; the output redaction of configured tokens must not blank the new exports.
    let mut child = fleet(&["-o", "json", "sim", "--listen", "127.0.0.1:0"])
        .env("CP_ADMIN_API_TOKEN", "sim-cp-admin-token")
        .env("CODER_SESSION_TOKEN", "sim-coder-session-token")
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fleet sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let doc: String = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take_while(|l| l != "}")
        .collect::<Vec<_>>()
        .join("\n");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        doc.contains("\"CP_ADMIN_API_TOKEN\": \"sim-cp-admin-token\""),
        "{doc}"
    );
    assert!(
        doc.contains("\"CODER_SESSION_TOKEN\": \"sim-coder-session-token\""),
        "{doc}"
    );
    assert!(!doc.contains("<redacted>"), "{doc}");
}
