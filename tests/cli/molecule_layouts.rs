//! The CP-admin route layouts (`/cp/admin/…`, `/api/v1/admin/…`) through the built `fleet` and
//! `fleet-mcp`: against the simulator serving each layout (its request log shows the URLs
//! called), and against httpmock for the answers the simulator does not give. Discovery never
//! sends a POST to a route no GET confirmed; "neither" is a clear exit-1 error naming both URLs;
//! `MOLECULE_CP_ADMIN_PREFIX` / `--cp-admin-prefix` pick a layout; `CP_API_URL` stands in for
//! `MOLECULE_CP_URL`; the optional request fields are sent only when given.

use std::{
    io::{BufRead, BufReader},
    process::{Output, Stdio},
};

use crate::support::cli::fleet;
use crate::support::mcp::fleet_mcp;
use crate::support::sim::sim_with;
use fleet::sim::{CpAdminLayout, RequestRecord, RunningSim, SimOptions};
use httpmock::prelude::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const CP: &str = "/cp/admin";
const V1: &str = "/api/v1/admin";

async fn sim_in(layout: CpAdminLayout) -> RunningSim {
    sim_with(SimOptions {
        speed: 3000.0,
        cp_admin_layout: layout,
        ..SimOptions::default()
    })
    .await
}

fn sim_env(sim: &RunningSim) -> Vec<(&'static str, String)> {
    sim.env_vars()
        .into_iter()
        .filter(|(k, _)| k.starts_with("MOLECULE") || k.starts_with("CP_"))
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The CP-admin requests the simulator answered: (method, path).
fn cp_requests(sim: &RunningSim) -> Vec<(String, String)> {
    sim.requests()
        .into_iter()
        .filter(|r: &RequestRecord| r.path.starts_with(CP) || r.path.starts_with(V1))
        .map(|r| (r.method, r.path))
        .collect()
}

/// Every POST went to a prefix on which an earlier GET was answered by the control plane (not
/// the router's 404).
fn assert_posts_confirmed(sim: &RunningSim, served: &[&str]) {
    let log = sim.requests();
    for (i, r) in log.iter().enumerate() {
        if r.method != "POST" {
            continue;
        }
        let prefix = if r.path.starts_with(V1) { V1 } else { CP };
        assert!(
            served.contains(&prefix),
            "a POST went to {} which this simulator does not serve: {log:?}",
            r.path
        );
        assert!(
            log[..i]
                .iter()
                .any(|g| g.method == "GET" && g.path.starts_with(prefix)),
            "the POST to {} was not preceded by a GET on {prefix}: {log:?}",
            r.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_layout_gets_its_own_urls_and_a_post_only_after_a_get_confirmed_it() {
    for (layout, served, posts_to) in [
        (CpAdminLayout::CpAdmin, vec![CP], CP),
        (CpAdminLayout::ApiV1, vec![V1], V1),
        (CpAdminLayout::Both, vec![CP, V1], CP),
    ] {
        let sim = sim_in(layout).await;
        let env = sim_env(&sim);
        let out = fleet(&[
            "--log-level",
            "info",
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "--to",
            "hetzner",
            "--confirm",
            "--wait",
        ])
        .vars(&env)
        .output();
        assert_eq!(out.status.code(), Some(0), "{layout:?}: {}", show(&out));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("answered on {posts_to}")),
            "{layout:?}: the layout in use is said at info level: {stderr}"
        );
        let reqs = cp_requests(&sim);
        let posts: Vec<&(String, String)> = reqs.iter().filter(|(m, _)| m == "POST").collect();
        assert_eq!(
            posts,
            vec![&(
                "POST".to_string(),
                format!("{posts_to}/workspaces/ws-aws-demo/migrate-provider")
            )],
            "{layout:?}: one POST, on the layout served: {reqs:?}"
        );
        assert_posts_confirmed(&sim, &served);
        // After the layout is known, every read (the wait included) stays on it.
        let first_on_layout = reqs
            .iter()
            .position(|(_, p)| p.starts_with(posts_to))
            .expect("a request on the layout");
        assert!(
            reqs[first_on_layout..]
                .iter()
                .all(|(_, p)| p.starts_with(posts_to)),
            "{layout:?}: {reqs:?}"
        );
        if layout == CpAdminLayout::ApiV1 {
            // One GET found /cp/admin missing; nothing else went there.
            assert_eq!(
                reqs.iter().filter(|(_, p)| p.starts_with(CP)).count(),
                1,
                "{reqs:?}"
            );
        } else {
            assert!(
                !reqs.iter().any(|(_, p)| p.starts_with(V1)),
                "{layout:?}: the contract's layout answered, so no other was tried: {reqs:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_layout_is_an_exit_1_error_naming_both_urls_and_the_setting() {
    let sim = sim_in(CpAdminLayout::None).await;
    let env = sim_env(&sim);
    for args in [
        &[
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "--to",
            "hetzner",
            "--from",
            "aws",
            "--confirm",
        ][..],
        &["molecule", "migration-status", "ws-aws-demo"][..],
        &[
            "molecule",
            "migrate-provider",
            "ws-aws-demo",
            "--to",
            "gcp",
            "--dry-run",
        ][..],
    ] {
        let out = fleet(args).vars(&env).output();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", show(&out));
        let stderr = text(&out.stderr);
        let base = sim.cp_url();
        for url in [
            format!("{base}{CP}/workspaces/ws-aws-demo/migrate-provider"),
            format!("{base}{V1}/workspaces/ws-aws-demo/migrate-provider"),
        ] {
            assert!(stderr.contains(&url), "{args:?}: names {url}: {stderr}");
        }
        assert!(
            stderr.contains("MOLECULE_CP_ADMIN_PREFIX") && stderr.contains("--cp-admin-prefix"),
            "{args:?}: names the setting: {stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{stderr}"
        );
    }
    assert!(
        !sim.requests().iter().any(|r| r.method == "POST"),
        "no POST: {:?}",
        sim.requests()
    );
    // JSON output: the same error, as a document.
    let out = fleet(&["-o", "json", "molecule", "migration-status", "ws-aws-demo"])
        .vars(&env)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["error"]["exit_code"], 1);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("neither"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_several_workspaces_and_several_starts_use_the_found_layout() {
    let sim = sim_in(CpAdminLayout::ApiV1).await;
    let env = sim_env(&sim);
    let out = fleet(&[
        "molecule",
        "migration-status",
        "ws-migrated",
        "ws-migrating",
        "ws-aws-demo",
        "ws-rolls-back",
    ])
    .vars(&env)
    .output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let reqs = cp_requests(&sim);
    // The first read finds the layout; the others wait for it instead of probing too.
    assert_eq!(
        reqs.iter().filter(|(_, p)| p.starts_with(CP)).count(),
        1,
        "{reqs:?}"
    );
    assert_eq!(
        reqs.iter().filter(|(_, p)| p.starts_with(V1)).count(),
        4,
        "{reqs:?}"
    );
    sim.clear_requests();
    let out = fleet(&[
        "molecule",
        "migrate-provider",
        "ws-aws-demo",
        "ws-fails-migration",
        "--to",
        "gcp",
        "--from",
        "aws",
        "--confirm",
    ])
    .vars(&env)
    .output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let posts: Vec<String> = cp_requests(&sim)
        .into_iter()
        .filter(|(m, _)| m == "POST")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        posts,
        vec![
            format!("{V1}/workspaces/ws-aws-demo/migrate-provider"),
            format!("{V1}/workspaces/ws-fails-migration/migrate-provider"),
        ]
    );
    assert_posts_confirmed(&sim, &[V1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_says_which_layout_and_sends_no_post() {
    let sim = sim_in(CpAdminLayout::ApiV1).await;
    let env = sim_env(&sim);
    let args = [
        "molecule",
        "migrate-provider",
        "ws-aws-demo",
        "--to",
        "gcp",
        "--dry-run",
    ];
    let out = fleet(&args).vars(&env).output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "POST {}{V1}/workspaces/ws-aws-demo/migrate-provider",
            sim.cp_url()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("route:") && stdout.contains("/cp/admin has no such route"),
        "{stdout}"
    );
    let mut json_args = vec!["-o", "json"];
    json_args.extend_from_slice(&args);
    let out = fleet(&json_args).vars(&env).output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["route"]["prefix"], V1, "{v}");
    assert_eq!(v["route"]["choice"], "discovered", "{v}");
    assert!(!sim.requests().iter().any(|r| r.method == "POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_prefix_is_used_alone() {
    let sim = sim_in(CpAdminLayout::ApiV1).await;
    // The flag: straight to /api/v1/admin, /cp/admin never asked.
    let out = fleet(&[
        "--cp-admin-prefix",
        "/api/v1/admin/",
        "molecule",
        "migrate-provider",
        "ws-aws-demo",
        "--to",
        "hetzner",
        "--from",
        "aws",
        "--confirm",
    ])
    .vars(&sim_env(&sim))
    .output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let reqs = cp_requests(&sim);
    assert!(reqs.iter().all(|(_, p)| p.starts_with(V1)), "{reqs:?}");
    assert!(reqs.iter().any(|(m, _)| m == "POST"), "{reqs:?}");
    // The variable, naming a layout this control plane does not serve: exit 1 naming that
    // URL and the setting; no discovery, no POST.
    sim.clear_requests();
    let mut env = sim_env(&sim);
    env.push(("MOLECULE_CP_ADMIN_PREFIX", "/cp/admin".into()));
    let out = fleet(&[
        "molecule",
        "migrate-provider",
        "ws-gcp-demo",
        "--to",
        "hetzner",
        "--from",
        "gcp",
        "--from-instance-id",
        "gce-7730118842",
        "--confirm",
    ])
    .vars(&env)
    .output();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}{CP}/workspaces/ws-gcp-demo/migrate-provider",
            sim.cp_url()
        )) && stderr.contains("MOLECULE_CP_ADMIN_PREFIX"),
        "{stderr}"
    );
    let reqs = cp_requests(&sim);
    assert_eq!(
        reqs,
        vec![(
            "GET".to_string(),
            format!("{CP}/workspaces/ws-gcp-demo/migrate-provider")
        )],
        "one GET, no POST, no other layout"
    );
    // A prefix with a dot segment is invalid input: exit 2, nothing sent.
    sim.clear_requests();
    let out = fleet(&[
        "--cp-admin-prefix",
        "/cp/../admin",
        "molecule",
        "migration-status",
        "ws-aws-demo",
    ])
    .vars(&sim_env(&sim))
    .output();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(cp_requests(&sim).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_api_url_stands_in_for_molecule_cp_url() {
    let sim = sim_in(CpAdminLayout::Both).await;
    let mut env: Vec<(&str, String)> = sim_env(&sim)
        .into_iter()
        .filter(|(k, _)| *k != "MOLECULE_CP_URL")
        .collect();
    env.push(("CP_API_URL", sim.cp_url()));
    let out = fleet(&["molecule", "migration-status", "ws-migrated"])
        .vars(&env)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("completed"), "{}", show(&out));
    // MOLECULE_CP_URL wins over CP_API_URL.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut env = sim_env(&sim);
    env.push(("CP_API_URL", dead));
    let out = fleet(&["molecule", "migration-status", "ws-migrated"])
        .vars(&env)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_sim_serves_the_layout_asked_for() {
    for (layout, ok) in [("api-v1", true), ("none", false)] {
        let mut child = fleet(&[
            "-o",
            "json",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "100",
            "--cp-admin-layout",
            layout,
        ])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fleet sim starts");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut doc = String::new();
        let info: Value = loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).expect("read") > 0, "{doc}");
            doc.push_str(&line);
            if let Ok(v) = serde_json::from_str::<Value>(&doc) {
                break v;
            }
        };
        let expected: Vec<&str> = if ok { vec![V1] } else { vec![] };
        assert_eq!(info["cp_admin_prefixes"], json!(expected), "{info}");
        let env: Vec<(&str, String)> = info["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| {
                (
                    match k.as_str() {
                        "MOLECULE_CP_URL" => "MOLECULE_CP_URL",
                        "CP_ADMIN_API_TOKEN" => "CP_ADMIN_API_TOKEN",
                        _ => "IGNORED",
                    },
                    v.as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let out = fleet(&["molecule", "migration-status", "ws-migrated"])
            .vars(&env)
            .output();
        child.kill().ok();
        child.wait().ok();
        if ok {
            assert_eq!(out.status.code(), Some(0), "{layout}: {}", show(&out));
            assert!(text(&out.stdout).contains("completed"), "{}", show(&out));
        } else {
            assert_eq!(out.status.code(), Some(1), "{layout}: {}", show(&out));
            assert!(text(&out.stderr).contains("neither"), "{}", show(&out));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mcp_finds_the_layout_and_says_when_there_is_none() {
    for (layout, ok) in [("api-v1", true), ("none", false)] {
        let client = fleet_mcp(&[
            "--sim",
            "--sim-speed",
            "100",
            "--sim-cp-admin-layout",
            layout,
        ])
        .connect()
        .await;
        let r = client
            .call_tool(
                CallToolRequestParams::new("migrate_workspace_provider").with_arguments(
                    json!({"workspace_id": "ws-aws-demo", "to": "hetzner", "confirm": true})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            )
            .await
            .expect("tools/call answered");
        let v = serde_json::to_value(&r).unwrap();
        if ok {
            assert_ne!(r.is_error, Some(true), "{v}");
            assert_eq!(
                r.structured_content.as_ref().unwrap()["status"],
                "migration_started",
                "{v}"
            );
        } else {
            assert_eq!(r.is_error, Some(true), "{v}");
            let t = v["content"][0]["text"].as_str().unwrap_or_default();
            assert!(
                t.contains("/cp/admin/workspaces/ws-aws-demo/migrate-provider")
                    && t.contains("/api/v1/admin/workspaces/ws-aws-demo/migrate-provider")
                    && t.contains("MOLECULE_CP_ADMIN_PREFIX"),
                "{t}"
            );
        }
        client.cancel().await.ok();
    }
}

// ---------------------------------------------------------------------------------------------
// httpmock: answers the simulator does not give
// ---------------------------------------------------------------------------------------------

fn mock_env(server: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("MOLECULE_CP_URL", server.base_url()),
        ("CP_ADMIN_API_TOKEN", "layout-test-token-1234".into()),
    ]
}

const MIGRATE: [&str; 8] = [
    "molecule",
    "migrate-provider",
    "ws-1",
    "--to",
    "hetzner",
    "--from",
    "aws",
    "--confirm",
];

async fn posts_on_both(server: &MockServer) -> (httpmock::Mock<'_>, httpmock::Mock<'_>) {
    let mut mocks = Vec::new();
    for prefix in [CP, V1] {
        mocks.push(
            server
                .mock_async(move |when, then| {
                    when.method(POST)
                        .path(format!("{prefix}/workspaces/ws-1/migrate-provider"));
                    then.status(202).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"}));
                })
                .await,
        );
    }
    let v1 = mocks.pop().unwrap();
    (mocks.pop().unwrap(), v1)
}

async fn get_answers(server: &MockServer, prefix: &'static str, status: u16, body: &'static str) {
    server
        .mock_async(move |when, then| {
            when.method(GET)
                .path(format!("{prefix}/workspaces/ws-1/migrate-provider"));
            then.status(status)
                .header("content-type", "application/json")
                .body(body);
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_that_confirms_nothing_means_no_post_anywhere() {
    // /cp/admin has no route; /api/v1/admin answers, but not with the control plane's body
    // (a proxy's 500): nothing confirms it, so nothing is POSTed anywhere.
    let server = MockServer::start_async().await;
    get_answers(&server, CP, 404, "404 page not found").await;
    get_answers(&server, V1, 500, "<html>upstream error</html>").await;
    let (cp_post, v1_post) = posts_on_both(&server).await;
    let out = fleet(&MIGRATE).vars(&mock_env(&server)).output();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("upstream error") && stderr.contains("no migration was started"),
        "{stderr}"
    );
    cp_post.assert_calls_async(0).await;
    v1_post.assert_calls_async(0).await;

    // A proxy's 502 on the contract's layout is not a missing route: the other layout is not
    // tried, and nothing is POSTed.
    let server = MockServer::start_async().await;
    get_answers(&server, CP, 502, "Bad Gateway").await;
    let v1_get = server
        .mock_async(|when, then| {
            when.method(GET).path_includes(V1);
            then.status(404).json_body(json!({"error": "no migration"}));
        })
        .await;
    let (cp_post, v1_post) = posts_on_both(&server).await;
    let out = fleet(&MIGRATE).vars(&mock_env(&server)).output();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    v1_get.assert_calls_async(0).await;
    cp_post.assert_calls_async(0).await;
    v1_post.assert_calls_async(0).await;

    // A JSON 404 that is not the control plane's body (a framework's {"message": …}) is a
    // missing route; the control plane's own 404 on /api/v1/admin confirms that layout.
    let server = MockServer::start_async().await;
    get_answers(&server, CP, 404, r#"{"message":"Not Found"}"#).await;
    get_answers(&server, V1, 404, r#"{"error":"no migration"}"#).await;
    let (cp_post, v1_post) = posts_on_both(&server).await;
    let out = fleet(&MIGRATE).vars(&mock_env(&server)).output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    cp_post.assert_calls_async(0).await;
    v1_post.assert_calls_async(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_fields_are_sent_only_when_given() {
    let server = MockServer::start_async().await;
    get_answers(&server, CP, 404, r#"{"error":"no migration"}"#).await;
    // Exact bodies: without the flags, no optional field at all (not even a null).
    let bare = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/cp/admin/workspaces/ws-1/migrate-provider")
                .json_body(json!({"from": "aws", "to": "hetzner", "confirm": true}));
            then.status(202).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"}));
        })
        .await;
    let full = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/cp/admin/workspaces/ws-1/migrate-provider")
                .json_body(json!({
                    "from": "aws", "to": "hetzner", "confirm": true,
                    "org_id": "org-7", "runtime": "docker", "image": "ghcr.io/acme/ws:2",
                    "env": {"LOG_LEVEL": "debug", "OPTS": "a=b c"}
                }));
            then.status(202).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"}));
        })
        .await;
    let out = fleet(&MIGRATE).vars(&mock_env(&server)).output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    bare.assert_calls_async(1).await;
    let mut args = MIGRATE.to_vec();
    args.extend_from_slice(&[
        "--org-id",
        "org-7",
        "--runtime",
        "docker",
        "--image",
        "ghcr.io/acme/ws:2",
        "--env",
        "LOG_LEVEL=debug",
        "--env",
        "OPTS=a=b c",
    ]);
    let out = fleet(&args).vars(&mock_env(&server)).output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    full.assert_calls_async(1).await;
    bare.assert_calls_async(1).await;

    // The dry run shows them and the command that would send them.
    let mut dry = args.clone();
    dry.retain(|a| *a != "--confirm");
    dry.push("--dry-run");
    let out = fleet(&dry).vars(&mock_env(&server)).output();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("runtime:  docker")
            && stdout.contains("env:      OPTS=a=b c")
            && stdout.contains("--org-id org-7"),
        "{stdout}"
    );

    // Bad values: exit 2, nothing sent.
    for bad in [
        &["--env", "1BAD=x"][..],
        &["--env", "NOEQUALS"][..],
        &["--env", "A=1", "--env", "A=2"][..],
        &["--runtime", " "][..],
        &["--org-id", "org\u{7}"][..],
    ] {
        let mut a = MIGRATE.to_vec();
        a.extend_from_slice(bad);
        let out = fleet(&a).vars(&mock_env(&server)).output();
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", show(&out));
    }
    full.assert_calls_async(1).await;
    bare.assert_calls_async(1).await;

    // MCP: the same fields, the same exact bodies.
    let client = fleet_mcp(&[]).vars(&mock_env(&server)).connect().await;
    for (args, mock) in [
        (
            json!({"workspace_id": "ws-1", "to": "hetzner", "from": "aws", "confirm": true}),
            &bare,
        ),
        (
            json!({"workspace_id": "ws-1", "to": "hetzner", "from": "aws", "confirm": true,
                   "org_id": "org-7", "runtime": "docker", "image": "ghcr.io/acme/ws:2",
                   "env": {"LOG_LEVEL": "debug", "OPTS": "a=b c"}}),
            &full,
        ),
    ] {
        let r = client
            .call_tool(
                CallToolRequestParams::new("migrate_workspace_provider")
                    .with_arguments(args.as_object().unwrap().clone()),
            )
            .await
            .expect("tools/call answered");
        assert_ne!(r.is_error, Some(true), "{args}: {r:?}");
        mock.assert_calls_async(2).await;
    }
    client.cancel().await.ok();
}
