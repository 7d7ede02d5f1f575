//! The built `fleet` and `fleet-mcp` against the simulator: each pre-flight refusal exits 2
//! (MCP: a tool error) and the simulator saw no build and no migration POST; parameters from
//! flags, YAML and JSON files and MCP arguments reach the start build.

use crate::support::cli::fleet_output_on;
use crate::support::mcp::mcp_on;
use crate::support::sim::sim;
use fleet::{
    coder::{CoderClient, WorkspaceRef},
    sim::{RunningSim, SimOptions, Simulator},
};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Value, json};

fn builds_path(sim: &RunningSim, ws: &str) -> String {
    format!(
        "/api/v2/workspaces/{}/builds",
        sim.coder_workspace_id(ws).expect("seeded")
    )
}

fn posts(sim: &RunningSim) -> usize {
    sim.requests().iter().filter(|r| r.method == "POST").count()
}

/// The previous (latest) build's parameter values of a workspace, as Coder reports them.
async fn current_params(sim: &RunningSim, ws: &str) -> Vec<(String, String)> {
    let c = CoderClient::new(&sim.coder_config()).unwrap();
    let w = c
        .resolve_workspace(&WorkspaceRef::parse(ws).unwrap())
        .await
        .unwrap();
    let id = w.latest_build.unwrap().id.unwrap().to_string();
    c.api()
        .get_build_parameters_for_workspace_build(&id)
        .await
        .unwrap()
        .into_inner()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.value.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_exits_2_and_the_simulator_saw_no_build() {
    let sim = sim(2000.0).await;
    let v = |t: &str, n: &str| sim.coder_version_id(t, n).unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["alice/dev".into(), "--parameter".into(), "cpu=32".into()],
            "\"cpu\"",
        ),
        (
            vec![
                "alice/dev".into(),
                "--parameter".into(),
                "region=us-east".into(),
            ],
            "immutable",
        ),
        (
            vec!["alice/dev".into(), "--parameter".into(), "nope=1".into()],
            "region, cpu, dotfiles_uri",
        ),
        (
            vec![
                "alice/current".into(),
                "--force".into(),
                "--parameter".into(),
                "disk_gb=20".into(),
            ],
            "can only grow",
        ),
        (
            vec![
                "alice/dev".into(),
                "--template-version".into(),
                v("docker-dev", "v0-archived"),
            ],
            "archived",
        ),
        (
            vec![
                "alice/dev".into(),
                "--template-version".into(),
                v("docker-dev", "v4-importing"),
            ],
            "still importing",
        ),
        (
            vec![
                "alice/dev".into(),
                "--template-version".into(),
                v("gpu-ml", "v1"),
            ],
            "belongs to template",
        ),
        (
            vec![
                "alice/secure-shell".into(),
                "--template-version".into(),
                v("k8s-secure", "2024-06"),
            ],
            "requires its active version",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["coder", "update"];
        full.extend(args.iter().map(String::as_str));
        let out = fleet_output_on(&sim, &full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: {expected:?} missing: {err}"
        );
    }
    let out = fleet_output_on(&sim, &["coder", "restart", "alice/secure-shell"]);
    assert_eq!(out.status.code(), Some(2));
    for ws in ["alice/dev", "alice/current", "alice/secure-shell"] {
        assert_eq!(
            sim.count_requests("POST", &builds_path(&sim, ws)),
            0,
            "{ws}"
        );
    }

    // Molecule: a running migration and a disagreeing --from: no POST. At real-time speed, so
    // that ws-migrating is still running (at 2000x its migration ends half a second after the
    // simulator starts, before the Coder cases above are done).
    let msim = Simulator::start(SimOptions::default())
        .await
        .expect("simulator");
    let out = fleet_output_on(
        &msim,
        &[
            "molecule",
            "migrate-provider",
            "ws-migrating",
            "--to",
            "gcp",
            "--confirm",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("already running"), "{err}");
    let out = fleet_output_on(
        &msim,
        &[
            "molecule",
            "migrate-provider",
            "ws-gcp-demo",
            "--from",
            "aws",
            "--to",
            "hetzner",
            "--confirm",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("given is aws")
            && err.contains("runs on gcp")
            && err.contains("To go on, pass --from gcp, or leave --from out."),
        "{err}"
    );
    let out = fleet_output_on(
        &msim,
        &[
            "molecule",
            "migrate-provider",
            "ws-nobody",
            "--from",
            "aws",
            "--to",
            "hetzner",
            "--confirm",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(posts(&msim), 0, "no migration POST reached the simulator");
    assert_eq!(posts(&sim), 0, "no POST of any kind reached the simulator");
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_and_files_reach_the_start_build_flag_first() {
    let sim = sim(2000.0).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("params.yaml");
    std::fs::write(&yaml, "cpu: 6\ndotfiles_uri: https://example.com/dots\n").unwrap();
    let out = fleet_output_on(
        &sim,
        &[
            "coder",
            "update",
            "alice/dev",
            "--parameters-file",
            yaml.to_str().unwrap(),
            "--parameter",
            "cpu=8",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = current_params(&sim, "alice/dev").await;
    assert!(p.contains(&("cpu".into(), "8".into())), "{p:?}");
    assert!(
        p.contains(&("dotfiles_uri".into(), "https://example.com/dots".into())),
        "{p:?}"
    );
    assert!(
        p.contains(&("region".into(), "eu-west".into())),
        "previous: {p:?}"
    );
    assert!(
        p.contains(&("disk_gb".into(), "20".into())),
        "default: {p:?}"
    );

    let json = dir.path().join("params.json");
    std::fs::write(&json, r#"{"cpu": 3}"#).unwrap();
    let out = fleet_output_on(
        &sim,
        &[
            "coder",
            "restart",
            "bob/dev",
            "--parameters-file",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = current_params(&sim, "bob/dev").await;
    assert!(p.contains(&("cpu".into(), "3".into())), "{p:?}");
}

fn error_text(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "{r:?}");
    serde_json::to_value(&r.content).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_update_agent_refuses_and_then_succeeds_with_parameters() {
    let sim = sim(2000.0).await;
    let client = mcp_on(&sim).await;
    let call = |args: Value, tool: &'static str| {
        let params = CallToolRequestParams::new(tool.to_string())
            .with_arguments(args.as_object().unwrap().clone());
        client.call_tool(params)
    };
    let r = call(
        json!({"agent_name": "alice/dev", "parameters": {"cpu": 32}}),
        "update_agent",
    )
    .await
    .unwrap();
    let text = error_text(&r);
    assert!(
        text.contains("\\\"cpu\\\"") && text.contains("from 1 to 16"),
        "{text}"
    );
    let r = call(
        json!({"agent_name": "alice/dev", "parameters": {"gpu": "x"}}),
        "restart_agent",
    )
    .await
    .unwrap();
    assert!(error_text(&r).contains("no such parameter"));
    assert_eq!(
        sim.count_requests("POST", &builds_path(&sim, "alice/dev")),
        0
    );

    let r = call(
        json!({"agent_name": "alice/dev", "parameters": {"cpu": 12}}),
        "update_agent",
    )
    .await
    .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let p = current_params(&sim, "alice/dev").await;
    assert!(p.contains(&("cpu".into(), "12".into())), "{p:?}");
    client.cancel().await.ok();
}
