//! The foundation, against real HTTP on loopback (httpmock): each API's auth header, the
//! mapping of every error status to the right error variant with the server's words, tokens
//! never in an error, unknown enum values and fields tolerated, reads retried and writes not.

use std::time::Duration;

use fleet::{
    CoderConfig, Error, HttpOptions, MoleculeConfig, Secret,
    coder::{CoderClient, JobStatus, WorkspaceStatus},
    http::RetryPolicy,
    molecule::{MigrationState, MoleculeClient, Provider},
};
use httpmock::prelude::*;
use serde_json::json;

const CP_TOKEN: &str = "cp-MARKER-7f3a9c";
const ORG_KEY: &str = "org-MARKER-51be02";
const CODER_TOKEN: &str = "coder-MARKER-d41d8c";

fn fast_http() -> HttpOptions {
    HttpOptions {
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        ..HttpOptions::default()
    }
}

fn molecule(server: &MockServer) -> MoleculeClient {
    MoleculeClient::new(&MoleculeConfig {
        cp_url: server.base_url(),
        cp_admin_prefix: None,
        cp_admin_token: Some(Secret::new(CP_TOKEN)),
        api_url: Some(format!("{}/tenant", server.base_url())),
        org_api_key: Some(Secret::new(ORG_KEY)),
        http: fast_http(),
    })
    .expect("configured")
}

fn coder(server: &MockServer) -> CoderClient {
    CoderClient::new(&CoderConfig {
        url: Some(server.base_url()),
        session_token: Some(Secret::new(CODER_TOKEN)),
        http: fast_http(),
    })
    .expect("configured")
}

fn assert_no_token(text: &str) {
    for marker in [CP_TOKEN, ORG_KEY, CODER_TOKEN] {
        assert!(!text.contains(marker), "a token leaked into: {text}");
    }
}

fn status_body(state: &str) -> serde_json::Value {
    json!({"migration": {"state": state, "from_provider": "aws", "to_provider": "hetzner", "detail": null}, "terminal": false})
}

#[tokio::test]
async fn each_api_sends_its_own_auth_header() {
    let server = MockServer::start_async().await;
    let cp = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-1/migrate-provider")
                .header("authorization", format!("Bearer {CP_TOKEN}"))
                .header_exists("user-agent");
            then.status(200).json_body(status_body("snapshotting"));
        })
        .await;
    let tenant = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/tenant/workspaces/ws-1")
                .header("authorization", format!("Bearer {ORG_KEY}"));
            then.status(200)
                .json_body(json!({"id": "ws-1", "compute": {"provider": "gcp"}}));
        })
        .await;
    let coder_mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v2/users/me")
                .header("coder-session-token", CODER_TOKEN)
                .header_missing("authorization");
            then.status(200).json_body(json!({
                "id": "0b3c8c5e-4f43-4a1e-9e0a-8b7e3f1d2c11", "username": "alice",
                "email": "alice@example.com", "created_at": "2026-01-02T03:04:05Z"
            }));
        })
        .await;

    let m = molecule(&server);
    let status = m
        .cp()
        .get_migration_status(&"ws-1".parse().expect("id"))
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.migration.state, MigrationState::Snapshotting);
    let ws = m
        .tenant()
        .expect("tenant configured")
        .get_workspace(&"ws-1".parse().expect("id"))
        .await
        .expect("ws")
        .into_inner();
    assert_eq!(ws.compute.and_then(|c| c.provider).as_deref(), Some("gcp"));
    let c = coder(&server);
    let me = c
        .api()
        .get_user_by_name("me")
        .await
        .expect("me")
        .into_inner();
    assert_eq!(me.username, "alice");

    cp.assert_calls_async(1).await;
    tenant.assert_calls_async(1).await;
    coder_mock.assert_calls_async(1).await;
}

#[tokio::test]
async fn the_user_agent_names_fleet_and_its_version() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .header("user-agent", format!("fleet/{}", env!("CARGO_PKG_VERSION")));
            then.status(200).json_body(status_body("completed"));
        })
        .await;
    molecule(&server)
        .cp()
        .get_migration_status(&"ws-1".parse().expect("id"))
        .await
        .expect("status");
    mock.assert_calls_async(1).await;
}

async fn cp_error_for(status: u16, body: serde_json::Value) -> Error {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/cp/admin/workspaces/ws-9/migrate-provider");
            then.status(status).json_body(body);
        })
        .await;
    let m = molecule(&server);
    let req = fleet::molecule::cp_api::types::MigrateProviderRequest {
        from: Provider::Aws,
        to: Provider::Hetzner,
        confirm: true,
        from_instance_id: None,
        env: Default::default(),
        image: None,
        runtime: None,
        org_id: None,
    };
    let err = m
        .cp()
        .migrate_provider(&"ws-9".parse().expect("id"), &req)
        .await
        .expect_err("an error status");
    m.cp_error("starting the migration of ws-9", err)
}

#[tokio::test]
async fn each_cp_error_status_maps_to_its_variant_with_the_servers_words() {
    let e = cp_error_for(400, json!({"error": "confirm must be true"})).await;
    assert!(matches!(e, Error::Api { status: 400, .. }), "{e:?}");
    assert!(e.to_string().contains("confirm must be true"), "{e}");

    for status in [401, 403] {
        let e = cp_error_for(status, json!({"error": "invalid admin token"})).await;
        assert!(
            matches!(e, Error::Unauthorized { status: s, .. } if s == status),
            "{e:?}"
        );
        assert!(e.to_string().contains("invalid admin token"), "{e}");
        assert!(
            e.to_string().contains("CP_ADMIN_API_TOKEN"),
            "the hint names the variable: {e}"
        );
    }

    let e = cp_error_for(404, json!({"error": "workspace not found"})).await;
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("workspace not found"), "{e}");

    let e = cp_error_for(
        409,
        json!({"error": "migration already in progress", "detail": "state=provisioning_target"}),
    )
    .await;
    assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
    assert!(
        e.to_string().contains("migration already in progress"),
        "{e}"
    );
    assert!(
        e.to_string().contains("state=provisioning_target"),
        "detail is shown: {e}"
    );

    let e = cp_error_for(503, json!({"error": "migrator not configured"})).await;
    assert!(matches!(e, Error::Api { status: 503, .. }), "{e:?}");
    assert!(e.to_string().contains("migrator not configured"), "{e}");
}

#[tokio::test]
async fn coder_errors_carry_message_detail_and_validations() {
    let server = MockServer::start_async().await;
    let ws = "7a1c1a53-1e6a-4a76-a3b4-0b2bb6a1a001";
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{ws}/builds"));
            then.status(400).json_body(json!({
                "message": "Invalid build request",
                "detail": "parameter validation failed",
                "validations": [{"field": "region", "detail": "must be one of eu, us"}]
            }));
        })
        .await;
    let c = coder(&server);
    let body = fleet::coder::types::CreateWorkspaceBuildRequest {
        transition: fleet::coder::WorkspaceTransition::Start,
        template_version_id: None,
        rich_parameter_values: vec![],
        dry_run: None,
        ..fleet::coder::build_request(fleet::coder::WorkspaceTransition::Start)
    };
    let err = c
        .api()
        .create_workspace_build(&ws.parse().expect("uuid"), &body)
        .await
        .expect_err("400");
    let e = c.error("starting the workspace", err);
    match &e {
        Error::Api {
            status,
            validations,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(validations.len(), 1);
            assert_eq!(validations[0].field, "region");
        }
        other => panic!("expected Api, got {other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("Invalid build request") && text.contains("parameter validation failed"),
        "{text}"
    );
    assert!(text.contains("region: must be one of eu, us"), "{text}");
}

#[tokio::test]
async fn a_non_json_error_body_keeps_its_status_and_text() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-1/migrate-provider");
            then.status(500).body("<html>upstream exploded</html>");
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(500);
        })
        .await;
    let m = molecule(&server);
    let e = m.cp_error(
        "reading",
        m.cp()
            .get_migration_status(&"ws-1".parse().expect("id"))
            .await
            .expect_err("500"),
    );
    assert!(matches!(e, Error::Api { status: 500, .. }), "{e:?}");
    assert!(e.to_string().contains("upstream exploded"), "{e}");
    let e = m.cp_error(
        "reading",
        m.cp()
            .get_migration_status(&"ws-2".parse().expect("id"))
            .await
            .expect_err("500"),
    );
    assert!(matches!(e, Error::Api { status: 500, .. }), "{e:?}");
    assert!(e.to_string().contains("empty body"), "{e}");
}

#[tokio::test]
async fn a_token_echoed_by_a_server_never_reaches_an_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/cp/admin/workspaces/ws-1/migrate-provider");
            then.status(401).json_body(json!({"error": format!("token {CP_TOKEN} is revoked"), "detail": format!("org key {ORG_KEY}")}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v2/users/me");
            then.status(500)
                .body(format!("panic: bad token {CODER_TOKEN}"));
        })
        .await;
    let m = molecule(&server);
    let e = m.cp_error(
        "reading",
        m.cp()
            .get_migration_status(&"ws-1".parse().expect("id"))
            .await
            .expect_err("401"),
    );
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("is revoked"),
        "the server's words are kept: {text}"
    );
    assert_no_token(&text);

    let c = coder(&server);
    let e = c.error(
        "reading me",
        c.api().get_user_by_name("me").await.expect_err("500"),
    );
    let text = format!("{e} {e:?}");
    assert!(text.contains("bad token"), "{text}");
    assert_no_token(&text);

    // Debug of the clients and configs never shows a token either.
    let cfg = MoleculeConfig {
        cp_admin_token: Some(Secret::new(CP_TOKEN)),
        org_api_key: Some(Secret::new(ORG_KEY)),
        ..MoleculeConfig::default()
    };
    assert_no_token(&format!("{cfg:?} {m:?} {c:?}"));
}

#[tokio::test]
async fn unknown_enum_values_and_extra_fields_parse() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/cp/admin/workspaces/ws-1/migrate-provider");
            then.status(200).json_body(json!({
                "migration": {"state": "verifying_target", "from_provider": "aws", "to_provider": "azure",
                              "detail": "checking", "eta_seconds": 42},
                "terminal": false, "server_version": "9.9"
            }));
        })
        .await;
    let build = "3e4b1f7a-9c1d-4d84-8e35-1f5a7c3b2d10";
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v2/workspacebuilds/{build}"));
            then.status(200).json_body(json!({
                "id": build, "status": "hibernating", "transition": "suspend",
                "job": {"status": "queued_elsewhere", "error": "", "brand_new_field": [1, 2]},
                "another_new_field": {"x": 1}
            }));
        })
        .await;
    let m = molecule(&server);
    let status = m
        .cp()
        .get_migration_status(&"ws-1".parse().expect("id"))
        .await
        .expect("parses")
        .into_inner();
    assert_eq!(
        status.migration.state,
        MigrationState::Other("verifying_target".into())
    );
    assert_eq!(status.migration.state.to_string(), "verifying_target");
    assert_eq!(
        status.migration.to_provider,
        Some(Provider::Other("azure".into()))
    );
    assert_eq!(
        status.migration.extra.get("eta_seconds"),
        Some(&json!(42)),
        "unknown fields are kept"
    );

    let c = coder(&server);
    let b = c
        .api()
        .get_workspace_build(build)
        .await
        .expect("parses")
        .into_inner();
    assert_eq!(b.status, Some(WorkspaceStatus::Other("hibernating".into())));
    assert_eq!(
        b.job.and_then(|j| j.status),
        Some(JobStatus::Other("queued_elsewhere".into()))
    );
}

#[tokio::test]
async fn reads_are_retried_and_writes_are_sent_once() {
    let server = MockServer::start_async().await;
    let flaky = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-1/migrate-provider");
            then.status(503)
                .header("retry-after", "0")
                .json_body(json!({"error": "busy"}));
        })
        .await;
    let m = molecule(&server);
    // Four 503s in a row exhaust the 3 retries: the error is the server's.
    let e = m.cp_error(
        "reading",
        m.cp()
            .get_migration_status(&"ws-1".parse().expect("id"))
            .await
            .expect_err("503"),
    );
    assert!(matches!(e, Error::Api { status: 503, .. }), "{e:?}");
    flaky.assert_calls_async(4).await;
    flaky.delete_async().await;

    // 502 once, then 200: one retry and success.
    let once = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(502).body("bad gateway");
        })
        .await;
    let client = m.clone();
    let call = tokio::spawn(async move {
        client
            .cp()
            .get_migration_status(&"ws-2".parse().expect("id"))
            .await
    });
    // Let the first attempt fail, then answer 200.
    while once.calls_async().await == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    once.delete_async().await;
    let ok = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/cp/admin/workspaces/ws-2/migrate-provider");
            then.status(200).json_body(status_body("snapshotted"));
        })
        .await;
    let status = call
        .await
        .expect("joined")
        .expect("retried to success")
        .into_inner();
    assert_eq!(status.migration.state, MigrationState::Snapshotted);
    ok.assert_calls_async(1).await;

    // A POST answered 503 is not retried.
    let post = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/cp/admin/workspaces/ws-3/migrate-provider");
            then.status(503)
                .json_body(json!({"error": "migrator not configured"}));
        })
        .await;
    let req = fleet::molecule::cp_api::types::MigrateProviderRequest {
        from: Provider::Aws,
        to: Provider::Gcp,
        confirm: true,
        from_instance_id: None,
        env: Default::default(),
        image: None,
        runtime: None,
        org_id: None,
    };
    m.cp()
        .migrate_provider(&"ws-3".parse().expect("id"), &req)
        .await
        .expect_err("503");
    post.assert_calls_async(1).await;
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let m = MoleculeClient::new(&MoleculeConfig {
        cp_url: format!("http://127.0.0.1:{port}"),
        cp_admin_prefix: None,
        cp_admin_token: Some(Secret::new(CP_TOKEN)),
        http: fast_http(),
        ..MoleculeConfig::default()
    })
    .expect("configured");
    let e = m.cp_error(
        "reading",
        m.cp()
            .get_migration_status(&"ws-1".parse().expect("id"))
            .await
            .expect_err("refused"),
    );
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert_no_token(&format!("{e} {e:?}"));
}

#[test]
fn configuration_errors_say_what_to_set() {
    let e = MoleculeClient::new(&MoleculeConfig::default()).expect_err("no token");
    assert!(matches!(e, Error::NotConfigured { .. }));
    assert!(e.to_string().contains("CP_ADMIN_API_TOKEN"), "{e}");
    let e = CoderClient::new(&CoderConfig::default()).expect_err("nothing set");
    assert!(
        e.to_string().contains("CODER_URL") && e.to_string().contains("CODER_SESSION_TOKEN"),
        "{e}"
    );

    // http:// is for loopback only, unless asked for.
    let cfg = |url: &str, insecure| CoderConfig {
        url: Some(url.into()),
        session_token: Some(Secret::new(CODER_TOKEN)),
        http: HttpOptions {
            insecure_http: insecure,
            ..HttpOptions::default()
        },
    };
    let e = CoderClient::new(&cfg("http://coder.example.com", false)).expect_err("refused");
    // The SDK states the remedy as a fact; each face words it (the CLI's flag is not here).
    assert!(
        matches!(e.root(), Error::InvalidInput(_))
            && e.remedies() == [fleet::Remedy::AllowInsecureHttp]
            && !e.to_string().contains("--"),
        "{e:?}"
    );
    CoderClient::new(&cfg("http://coder.example.com", true)).expect("allowed when asked");
    CoderClient::new(&cfg("http://127.0.0.1:3000", false)).expect("loopback");
    CoderClient::new(&cfg("http://localhost:3000", false)).expect("localhost");
    CoderClient::new(&cfg("http://[::1]:3000", false)).expect("ipv6 loopback");
    CoderClient::new(&cfg("https://coder.example.com/", false)).expect("https");
    let e = CoderClient::new(&cfg("ftp://x", false)).expect_err("scheme");
    assert!(e.to_string().contains("https://"), "{e}");
    let e = CoderClient::new(&cfg("not a url", false)).expect_err("garbage");
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
}
