//! The Molecule SDK operations against httpmock: validation (nothing sent), the exact POST,
//! every error status, polling sequences, timeout, cancellation, never migrated, and the
//! tenant lookup of `from`.

use crate::support::handle::MoleculeViaHandle;
use std::time::Duration;

use fleet::{
    Error, HttpOptions, MoleculeConfig, Secret,
    http::RetryPolicy,
    molecule::{
        FromSource, MigrateRequest, MigrationEvent, MigrationState, MoleculeClient, PlanVerdict,
        Provider, WaitOptions,
    },
};
use httpmock::prelude::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const CP_TOKEN: &str = "cp-secret-token-123";
const ORG_KEY: &str = "org-secret-key-456";
const MIGRATE_PATH: &str = "/cp/admin/workspaces/ws-1/migrate-provider";

fn http_options() -> HttpOptions {
    HttpOptions {
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        },
        request_timeout: Duration::from_secs(5),
        ..HttpOptions::default()
    }
}

fn client(cp: &MockServer, tenant: Option<&MockServer>) -> MoleculeClient {
    MoleculeClient::new(&MoleculeConfig {
        cp_url: cp.base_url(),
        cp_admin_prefix: None,
        cp_admin_token: Some(Secret::new(CP_TOKEN)),
        api_url: tenant.map(|t| t.base_url()),
        org_api_key: tenant.map(|_| Secret::new(ORG_KEY)),
        http: http_options(),
    })
    .expect("client")
}

fn fast_wait(timeout: Duration) -> WaitOptions {
    WaitOptions {
        timeout,
        poll: fleet::poll::PollOptions::backoff(
            Duration::from_millis(5),
            Duration::from_millis(20),
            2.0,
        ),
        not_found_grace: Duration::ZERO,
    }
}

fn request(from: Option<Provider>, to: Provider) -> MigrateRequest {
    MigrateRequest {
        from,
        confirm: true,
        ..MigrateRequest::new("ws-1", to)
    }
}

/// A mock that answers any request: registered last, it counts what nothing else matched.
/// The pre-flight status read: no migration yet (404), for any workspace.
async fn never_migrated(server: &MockServer) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(GET).path_includes("/migrate-provider");
            then.status(404).json_body(json!({"error": "no migration"}));
        })
        .await
}

async fn catch_all(server: &MockServer) -> httpmock::Mock<'_> {
    server
        .mock_async(|_when, then| {
            then.status(599).body("unexpected request");
        })
        .await
}

fn status_body(state: &str, terminal: bool) -> Value {
    json!({
        "migration": {"state": state, "from_provider": "aws", "to_provider": "hetzner", "detail": format!("now {state}")},
        "terminal": terminal,
    })
}

#[tokio::test]
async fn every_validation_rule_sends_nothing() {
    let cp = MockServer::start_async().await;
    let tenant = MockServer::start_async().await;
    let any_cp = catch_all(&cp).await;
    let any_tenant = catch_all(&tenant).await;
    let c = client(&cp, Some(&tenant));

    let cases: Vec<(MigrateRequest, &str)> = vec![
        (
            MigrateRequest {
                workspace_id: "  ".into(),
                ..request(Some(Provider::Aws), Provider::Hetzner)
            },
            "workspace id is empty",
        ),
        (
            MigrateRequest {
                workspace_id: "a/b".into(),
                ..request(Some(Provider::Aws), Provider::Hetzner)
            },
            "'/'",
        ),
        (
            request(Some(Provider::Aws), Provider::from("azure")),
            "to \"azure\" is not a provider",
        ),
        (
            request(Some(Provider::from("azure")), Provider::Aws),
            "from \"azure\" is not a provider",
        ),
        (
            request(Some(Provider::Gcp), Provider::Gcp),
            "from and to are both gcp",
        ),
        (
            MigrateRequest {
                from_instance_id: Some("  ".into()),
                ..request(Some(Provider::Gcp), Provider::Aws)
            },
            "instance id",
        ),
        (
            MigrateRequest {
                confirm: false,
                ..request(Some(Provider::Aws), Provider::Hetzner)
            },
            "needs explicit confirmation",
        ),
        // Even when `from` would be looked up, an unconfirmed request reads nothing either.
        (
            MigrateRequest {
                confirm: false,
                ..request(None, Provider::Hetzner)
            },
            "mutates two clouds",
        ),
    ];
    for (req, expected) in cases {
        match c.migrate_provider(&req).await {
            Err(e) if matches!(e.root(), Error::InvalidInput(_)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(expected),
                    "{msg:?} should contain {expected:?}"
                );
                // Facts only: the flag or tool argument to give is a remedy each face words.
                assert!(
                    !msg.contains("--") && !msg.contains("MCP") && !msg.contains("fleet molecule"),
                    "{msg}"
                );
                assert!(
                    msg.contains("nothing was sent") || msg.contains("Nothing was sent"),
                    "{msg}"
                );
            }
            other => panic!("{req:?}: expected InvalidInput, got {other:?}"),
        }
    }
    // A source that is not aws needs its instance id: without the tenant API (which knows
    // it, see from_instance_id_is_read_from_the_tenant_api) it must be given.
    let without_tenant = client(&cp, None);
    let err = without_tenant
        .migrate_provider(&request(Some(Provider::Hetzner), Provider::Aws))
        .await
        .expect_err("needs an instance id");
    assert!(
        matches!(err.root(), Error::InvalidInput(m) if m.contains("needs the source instance id") && m.contains("nothing was sent")),
        "{err:?}"
    );
    any_cp.assert_calls_async(0).await;
    any_tenant.assert_calls_async(0).await;
}

#[tokio::test]
async fn post_body_and_bearer_header_are_exact() {
    let cp = MockServer::start_async().await;
    never_migrated(&cp).await;
    let post = cp
        .mock_async(|when, then| {
            when.method(POST)
                .path(MIGRATE_PATH)
                .header("authorization", format!("Bearer {CP_TOKEN}"))
                .header("content-type", "application/json")
                .json_body(json!({"from": "aws", "to": "hetzner", "confirm": true}));
            then.status(202).json_body(json!({
                "status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner", "note": "takes 15-20 min"
            }));
        })
        .await;
    let with_instance = cp
        .mock_async(|when, then| {
            when.method(POST)
                .path("/cp/admin/workspaces/ws-2/migrate-provider")
                .header("authorization", format!("Bearer {CP_TOKEN}"))
                .json_body(json!({"from": "gcp", "to": "aws", "confirm": true, "from_instance_id": "inst-9"}));
            then.status(202).json_body(json!({
                "status": "migration_started", "workspace_id": "ws-2", "from": "gcp", "to": "aws"
            }));
        })
        .await;
    let any = catch_all(&cp).await;
    let c = client(&cp, None);

    let started = c
        .migrate_provider(&request(Some(Provider::Aws), Provider::Hetzner))
        .await
        .expect("started");
    assert_eq!(started.workspace_id, "ws-1");
    assert_eq!(started.from, Provider::Aws);
    assert_eq!(started.to, Provider::Hetzner);
    assert_eq!(started.from_source, FromSource::Given);
    assert_eq!(started.status, "migration_started");
    assert_eq!(started.note.as_deref(), Some("takes 15-20 min"));
    assert_eq!(
        serde_json::to_value(&started).unwrap()["from_source"],
        "given"
    );

    let req = MigrateRequest {
        workspace_id: "ws-2".into(),
        from_instance_id: Some(" inst-9 ".into()),
        ..request(Some(Provider::Gcp), Provider::Aws)
    };
    c.migrate_provider(&req)
        .await
        .expect("started with instance id");
    post.assert_calls_async(1).await;
    with_instance.assert_calls_async(1).await;
    any.assert_calls_async(0).await;
}

async fn start_with_error(status: u16, body: Value) -> (Error, usize) {
    let cp = MockServer::start_async().await;
    // The pre-flight read finds none; the POST's answer is what is tested.
    never_migrated(&cp).await.up_to_n_times_async(1).await;
    let post = cp
        .mock_async(|when, then| {
            when.method(POST).path(MIGRATE_PATH);
            then.status(status).json_body(body);
        })
        .await;
    let get = cp
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(200)
                .json_body(status_body("provisioning_target", false));
        })
        .await;
    let c = client(&cp, None);
    let err = c
        .migrate_provider(&request(Some(Provider::Aws), Provider::Hetzner))
        .await
        .expect_err("an error status");
    post.assert_calls_async(1).await; // never retried, whatever the status
    let gets = get.calls_async().await;
    (err, gets)
}

#[tokio::test]
async fn start_400_shows_the_servers_words() {
    let (err, gets) = start_with_error(
        400,
        json!({"error": "confirm must be true", "detail": "field confirm"}),
    )
    .await;
    match &err {
        Error::Api {
            status: 400,
            message,
            ..
        } => {
            assert!(
                message.contains("confirm must be true (field confirm)"),
                "{message}"
            );
            assert!(message.contains("ws-1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gets, 0);
}

#[tokio::test]
async fn start_401_names_the_token_variable_and_never_the_token() {
    let (err, _) = start_with_error(401, json!({"error": format!("bad token {CP_TOKEN}")})).await;
    match &err {
        Error::Unauthorized {
            status: 401,
            message,
        } => {
            assert!(message.contains("CP_ADMIN_API_TOKEN"), "{message}");
            assert!(!message.contains(CP_TOKEN), "token leaked: {message}");
            assert!(message.contains("bad token <redacted>"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn start_404_is_an_unknown_workspace_and_nothing_changed() {
    // Issue 27: the contract's 404 "workspace not found" is the same answer as an unknown id
    // anywhere else (kind not_found, nothing changed), no longer a plain failure.
    let (err, _) = start_with_error(404, json!({"error": "workspace not found"})).await;
    match &err {
        Error::UnknownWorkspace { message, .. } => {
            assert!(message.contains("workspace not found"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), "not_found");
    assert!(err.nothing_changed());
}

#[tokio::test]
async fn the_two_404s_of_the_status_read_are_told_apart_by_the_error_body() {
    let cp = MockServer::start_async().await;
    let tenant = MockServer::start_async().await;
    cp.mock_async(|when, then| {
        when.method(GET)
            .path("/cp/admin/workspaces/ws-dmeo/migrate-provider");
        then.status(404)
            .json_body(json!({"error": "workspace not found", "detail": "no workspace ws-dmeo"}));
    })
    .await;
    cp.mock_async(|when, then| {
        when.method(GET)
            .path("/cp/admin/workspaces/ws-gone/migrate-provider");
        then.status(404).json_body(json!({"error": "no migration"}));
    })
    .await;
    tenant
        .mock_async(|when, then| {
            when.method(GET).path("/workspaces");
            then.status(200)
                .json_body(json!([{"id": "ws-demo"}, {"id": "ws-other"}]));
        })
        .await;
    tenant
        .mock_async(|when, then| {
            when.method(GET).path("/workspaces/ws-gone");
            then.status(404)
                .json_body(json!({"error": "workspace not found"}));
        })
        .await;
    let c = client(&cp, Some(&tenant));
    // The control plane says the workspace does not exist: an error, with a suggestion.
    let err = c.migration_status("ws-dmeo").await.expect_err("unknown");
    assert_eq!(err.kind(), "not_found");
    assert!(err.nothing_changed());
    assert_eq!(err.did_you_mean(), Some("ws-demo"));
    assert!(err.to_string().ends_with("did you mean ws-demo?"), "{err}");
    // "No migration", but the tenant API does not know the workspace either: unknown.
    let err = c.migration_status("ws-gone").await.expect_err("unknown");
    assert!(
        matches!(err.root(), Error::UnknownWorkspace { .. }),
        "{err:?}"
    );
    // Without the tenant API, "no migration" stays the answer "never migrated".
    let report = client(&cp, None)
        .migration_status("ws-gone")
        .await
        .expect("never migrated");
    assert!(!report.migrated);
}

#[tokio::test]
async fn from_instance_id_is_read_from_the_tenant_api_when_not_given() {
    let cp = MockServer::start_async().await;
    never_migrated(&cp).await;
    let tenant = MockServer::start_async().await;
    tenant
        .mock_async(|when, then| {
            when.method(GET).path("/workspaces/ws-1");
            then.status(200).json_body(
                json!({"id": "ws-1", "compute": {"provider": "gcp", "instance_id": "gce-42"}}),
            );
        })
        .await;
    let post = cp
        .mock_async(|when, then| {
            when.method(POST).path(MIGRATE_PATH).json_body(
                json!({"from": "gcp", "to": "aws", "confirm": true, "from_instance_id": "gce-42"}),
            );
            then.status(202).json_body(json!({
                "status": "migration_started", "workspace_id": "ws-1", "from": "gcp", "to": "aws"
            }));
        })
        .await;
    let any = catch_all(&cp).await;
    let c = client(&cp, Some(&tenant));
    let started = c
        .migrate_provider(&request(None, Provider::Aws))
        .await
        .expect("started with the instance id read");
    assert_eq!(started.from_instance_id.as_deref(), Some("gce-42"));
    assert_eq!(started.from_instance_id_source, Some(FromSource::LookedUp));
    let v = serde_json::to_value(&started).unwrap();
    assert_eq!(v["from_instance_id_source"], "looked_up");
    // The dry run says the same, and sends no POST.
    let plan = c
        .plan_migration(&request(Some(Provider::Gcp), Provider::Aws))
        .await
        .expect("plan");
    assert_eq!(plan.from_instance_id.as_deref(), Some("gce-42"));
    assert_eq!(plan.from_instance_id_source, Some(FromSource::LookedUp));
    post.assert_calls_async(1).await;
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn start_409_says_a_migration_is_running_and_carries_its_state() {
    let (err, gets) =
        start_with_error(409, json!({"error": "migration already in progress"})).await;
    assert_eq!(
        err.aftermath(),
        Some(&still_migrating("ws-1")),
        "the migration already running is a fact to follow: {err:?}"
    );
    assert_no_command_line(&err);
    match err.root() {
        Error::Conflict {
            message,
            current_state,
        } => {
            assert!(
                message.contains("migration already in progress"),
                "{message}"
            );
            assert!(message.contains("already running"), "{message}");
            assert!(
                message.contains("provisioning_target (step 3 of 6)"),
                "{message}"
            );
            assert_eq!(current_state.as_deref(), Some("provisioning_target"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gets, 1, "the state of the running migration is read once");
}

#[tokio::test]
async fn start_503_is_sent_once_with_the_servers_words() {
    let (err, _) = start_with_error(503, json!({"error": "migrator not configured"})).await;
    match &err {
        Error::Api {
            status: 503,
            message,
            ..
        } => assert!(message.contains("migrator not configured"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A text body survives too. A 503 that is not the control plane's own error body (a
    // proxy's page) leaves open whether it started: the migration is read back, not re-sent.
    let cp = MockServer::start_async().await;
    never_migrated(&cp).await;
    let post = cp
        .mock_async(|when, then| {
            when.method(POST).path(MIGRATE_PATH);
            then.status(503).body("upstream migrator offline");
        })
        .await;
    let err = client(&cp, None)
        .migrate_provider(&request(Some(Provider::Aws), Provider::Gcp))
        .await
        .expect_err("503");
    assert!(
        err.to_string().contains("upstream migrator offline"),
        "{err}"
    );
    assert!(
        matches!(
            err,
            Error::Unconfirmed {
                found: fleet::ReadBack::NothingStarted,
                ..
            }
        ),
        "{err:?}"
    );
    post.assert_calls_async(1).await;
}

#[tokio::test]
async fn status_never_migrated_is_an_answer() {
    let cp = MockServer::start_async().await;
    let get = cp
        .mock_async(|when, then| {
            when.method(GET)
                .path(MIGRATE_PATH)
                .header("authorization", format!("Bearer {CP_TOKEN}"));
            then.status(404)
                .json_body(json!({"error": "no migration for workspace"}));
        })
        .await;
    let c = client(&cp, None);
    let report = c.migration_status("ws-1").await.expect("an answer");
    assert!(!report.migrated);
    assert!(report.migration.is_none());
    assert!(
        report.message.contains("never been migrated"),
        "{}",
        report.message
    );
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["migrated"], false);
    assert_eq!(v["workspace_id"], "ws-1");

    let waited = c
        .wait_for_migration_via_handle(
            "ws-1",
            &fast_wait(Duration::from_secs(5)),
            &CancellationToken::new(),
            |_| panic!("no event for a workspace never migrated"),
        )
        .await
        .expect("never migrated is an answer");
    assert!(!waited.migrated);
    get.assert_calls_async(2).await;
}

#[tokio::test]
async fn status_keeps_unknown_states_and_fields() {
    let cp = MockServer::start_async().await;
    cp.mock_async(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(200).json_body(json!({
            "migration": {"state": "draining_dns", "to_provider": "oracle", "detail": null, "eta_seconds": 42},
            "terminal": false,
        }));
    })
    .await;
    let report = client(&cp, None)
        .migration_status("ws-1")
        .await
        .expect("status");
    let m = report.migration.as_ref().expect("migration");
    assert_eq!(m.state, MigrationState::Other("draining_dns".into()));
    assert_eq!(m.to_provider, Some(Provider::Other("oracle".into())));
    assert_eq!(m.extra.get("eta_seconds"), Some(&json!(42)));
    assert_eq!(report.step, None);
    assert!(
        report.message.contains("draining_dns"),
        "{}",
        report.message
    );
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["migration"]["state"], "draining_dns");
    assert_eq!(v["migration"]["eta_seconds"], 42);
}

/// Registers one answer per entry; each serves `times` reads, the last one serves the rest.
async fn sequence<'a>(
    server: &'a MockServer,
    answers: &[(u16, Value, usize)],
) -> Vec<httpmock::Mock<'a>> {
    let mut mocks = Vec::new();
    for (i, (status, body, times)) in answers.iter().enumerate() {
        let body = body.clone();
        let status = *status;
        let mock = server
            .mock_async(|when, then| {
                when.method(GET).path(MIGRATE_PATH);
                then.status(status).json_body(body);
            })
            .await;
        if i + 1 < answers.len() {
            mock.up_to_n_times_async(*times).await;
        }
        mocks.push(mock);
    }
    mocks
}

#[tokio::test]
async fn wait_reports_every_state_once_through_to_completed() {
    let cp = MockServer::start_async().await;
    let mut unknown = status_body("warming_caches", false);
    unknown["migration"]["cache_gb"] = json!(12);
    let mocks = sequence(
        &cp,
        &[
            (200, status_body("snapshotting", false), 3),
            (200, status_body("snapshotted", false), 1),
            (503, json!({"error": "briefly unavailable"}), 3), // outlasts the HTTP retries once
            (200, status_body("provisioning_target", false), 2),
            (200, unknown, 1),
            (200, status_body("target_healthy", false), 1),
            (200, status_body("retiring_source", false), 2),
            (200, status_body("completed", true), 1),
        ],
    )
    .await;
    let c = client(&cp, None);
    let mut events: Vec<MigrationEvent> = Vec::new();
    let report = c
        .wait_for_migration_via_handle(
            "ws-1",
            &fast_wait(Duration::from_secs(20)),
            &CancellationToken::new(),
            |e| events.push(e),
        )
        .await
        .expect("completed");
    assert!(report.terminal);
    assert_eq!(report.state(), Some(&MigrationState::Completed));
    assert_eq!(
        report.meaning.as_deref(),
        Some("the workspace now runs on the target cloud")
    );
    let seen: Vec<(String, Option<u32>)> = events
        .iter()
        .map(|e| (e.state.to_string(), e.step))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("snapshotting".to_string(), Some(1)),
            ("snapshotted".to_string(), Some(2)),
            ("provisioning_target".to_string(), Some(3)),
            ("warming_caches".to_string(), None),
            ("target_healthy".to_string(), Some(4)),
            ("retiring_source".to_string(), Some(5)),
            ("completed".to_string(), Some(6)),
        ]
    );
    assert!(events.iter().all(|e| e.total_steps == 6));
    assert_eq!(events[0].detail.as_deref(), Some("now snapshotting"));
    assert_eq!(
        events[3]
            .report
            .migration
            .as_ref()
            .unwrap()
            .extra
            .get("cache_gb"),
        Some(&json!(12))
    );
    assert!(events.windows(2).all(|w| w[0].elapsed <= w[1].elapsed));
    assert!(events.last().unwrap().terminal && !events[0].terminal);
    // Every answer was used: the wait kept polling through the 503s.
    for m in &mocks[..mocks.len() - 1] {
        assert!(m.calls_async().await >= 1);
    }
    mocks[2].assert_calls_async(3).await;
}

#[tokio::test]
async fn wait_failed_and_rolled_back_say_what_they_mean() {
    for (state, expected) in [
        ("failed", "the source is still running and nothing was lost"),
        (
            "rolled_back",
            "the target was torn down and the workspace points at the source again",
        ),
    ] {
        let cp = MockServer::start_async().await;
        sequence(
            &cp,
            &[
                (200, status_body("target_healthy", false), 1),
                (200, status_body(state, true), 1),
            ],
        )
        .await;
        let mut states = Vec::new();
        let err = client(&cp, None)
            .wait_for_migration_via_handle(
                "ws-1",
                &fast_wait(Duration::from_secs(10)),
                &CancellationToken::new(),
                |e| states.push(e.state.to_string()),
            )
            .await
            .expect_err("an end in failure");
        match &err {
            Error::OperationFailed {
                message,
                final_state,
            } => {
                assert!(message.contains(expected), "{message}");
                assert!(
                    message.contains(&format!("now {state}")),
                    "the server's detail: {message}"
                );
                assert_eq!(final_state.as_deref(), Some(state));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            states,
            vec!["target_healthy".to_string(), state.to_string()]
        );
    }
}

#[tokio::test]
async fn wait_trusts_terminal_from_the_server() {
    let cp = MockServer::start_async().await;
    // "completed" but not terminal yet: keep waiting; an unknown terminal state is not success.
    sequence(
        &cp,
        &[
            (200, status_body("completed", false), 2),
            (200, status_body("archived", true), 1),
        ],
    )
    .await;
    let err = client(&cp, None)
        .wait_for_migration_via_handle(
            "ws-1",
            &fast_wait(Duration::from_secs(10)),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("unknown end state");
    match err {
        Error::OperationFailed {
            message,
            final_state,
        } => {
            assert_eq!(final_state.as_deref(), Some("archived"));
            assert!(message.contains("does not know"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wait_times_out_with_the_last_state() {
    let cp = MockServer::start_async().await;
    let get = cp
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(200)
                .json_body(status_body("provisioning_target", false));
        })
        .await;
    let started = std::time::Instant::now();
    let mut events = 0;
    let err = client(&cp, None)
        .wait_for_migration_via_handle(
            "ws-1",
            &fast_wait(Duration::from_millis(300)),
            &CancellationToken::new(),
            |_| events += 1,
        )
        .await
        .expect_err("timeout");
    let took = started.elapsed();
    // The SDK states the fact (the migration still runs: follow it); the faces word it.
    assert_eq!(err.kind(), "timeout");
    assert_eq!(err.aftermath(), Some(&still_migrating("ws-1")), "{err:?}");
    assert_no_command_line(&err);
    match err.root() {
        Error::Timeout {
            message,
            waited,
            last_state,
        } => {
            assert_eq!(last_state.as_deref(), Some("provisioning_target"));
            assert!(*waited >= Duration::from_millis(300), "{waited:?}");
            assert!(message.contains("continues on the server"), "{message}");
            assert!(
                message.contains("provisioning_target (step 3 of 6)"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(events, 1, "one state, reported once");
    assert!(get.calls_async().await >= 3, "polled more than once");
}

#[tokio::test]
async fn wait_backs_off_gradually() {
    let cp = MockServer::start_async().await;
    let get = cp
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(200)
                .json_body(status_body("snapshotting", false));
        })
        .await;
    let options = WaitOptions {
        timeout: Duration::from_millis(700),
        poll: fleet::poll::PollOptions::backoff(
            Duration::from_millis(20),
            Duration::from_millis(160),
            2.0,
        ),
        not_found_grace: Duration::ZERO,
    };
    let _ = client(&cp, None)
        .wait_for_migration_via_handle("ws-1", &options, &CancellationToken::new(), |_| {})
        .await;
    // 20+40+80+160+160+160 ≈ 620 ms: about 7 reads; fixed 20 ms polling would make ~30.
    let calls = get.calls_async().await;
    assert!((5..=10).contains(&calls), "{calls} reads in 700 ms");
}

#[tokio::test]
async fn wait_can_be_cancelled_and_says_the_migration_goes_on() {
    let cp = MockServer::start_async().await;
    cp.mock_async(|when, then| {
        when.method(GET).path(MIGRATE_PATH);
        then.status(200)
            .json_body(status_body("retiring_source", false));
    })
    .await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        trigger.cancel();
    });
    let err = client(&cp, None)
        .wait_for_migration_via_handle("ws-1", &fast_wait(Duration::from_secs(30)), &cancel, |_| {})
        .await
        .expect_err("interrupted");
    assert_eq!(err.aftermath(), Some(&still_migrating("ws-1")), "{err:?}");
    assert_no_command_line(&err);
    match err.root() {
        Error::Interrupted {
            message,
            last_state,
        } => {
            assert_eq!(last_state.as_deref(), Some("retiring_source"));
            assert!(message.contains("continues on the server"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wait_stops_on_auth_errors() {
    let cp = MockServer::start_async().await;
    let get = cp
        .mock_async(|when, then| {
            when.method(GET).path(MIGRATE_PATH);
            then.status(403).json_body(json!({"error": "forbidden"}));
        })
        .await;
    let err = client(&cp, None)
        .wait_for_migration_via_handle(
            "ws-1",
            &fast_wait(Duration::from_secs(10)),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .expect_err("403");
    assert!(
        matches!(err, Error::Unauthorized { status: 403, .. }),
        "{err:?}"
    );
    get.assert_calls_async(1).await;
}

async fn start_with_tenant_answer(
    tenant_body: Value,
    expected_from: &str,
    extra: Option<&str>,
) -> fleet::Result<fleet::molecule::StartedMigration> {
    let cp = MockServer::start_async().await;
    never_migrated(&cp).await;
    let tenant = MockServer::start_async().await;
    let lookup = tenant
        .mock_async(|when, then| {
            when.method(GET)
                .path("/workspaces/ws-1")
                .header("authorization", format!("Bearer {ORG_KEY}"));
            then.status(200).json_body(tenant_body);
        })
        .await;
    let mut body = json!({"from": expected_from, "to": "aws", "confirm": true});
    if let Some(id) = extra {
        body["from_instance_id"] = json!(id);
    }
    let post = cp
        .mock_async(|when, then| {
            when.method(POST).path(MIGRATE_PATH).header("authorization", format!("Bearer {CP_TOKEN}")).json_body(body);
            then.status(202).json_body(json!({
                "status": "migration_started", "workspace_id": "ws-1", "from": expected_from, "to": "aws"
            }));
        })
        .await;
    let any = catch_all(&cp).await;
    let req = MigrateRequest {
        from_instance_id: extra.map(str::to_string),
        ..request(None, Provider::Aws)
    };
    let result = client(&cp, Some(&tenant)).migrate_provider(&req).await;
    lookup.assert_calls_async(1).await;
    post.assert_calls_async(if result.is_ok() { 1 } else { 0 })
        .await;
    any.assert_calls_async(0).await;
    result
}

#[tokio::test]
async fn from_is_looked_up_in_all_three_places() {
    let started = start_with_tenant_answer(
        json!({"id": "ws-1", "compute": {"provider": "gcp"}, "provider": "hetzner", "compute_provider": "hetzner"}),
        "gcp",
        Some("inst-1"),
    )
    .await
    .expect("compute.provider");
    assert_eq!(started.from, Provider::Gcp);
    assert_eq!(started.from_source, FromSource::LookedUp);
    assert_eq!(
        serde_json::to_value(&started).unwrap()["from_source"],
        "looked_up"
    );

    let started = start_with_tenant_answer(
        json!({"id": "ws-1", "compute": null, "provider": "hetzner"}),
        "hetzner",
        Some("h-7"),
    )
    .await
    .expect("provider");
    assert_eq!(started.from, Provider::Hetzner);

    let started = start_with_tenant_answer(
        json!({"id": "ws-1", "compute_provider": "gcp"}),
        "gcp",
        Some("g-2"),
    )
    .await
    .expect("compute_provider");
    assert_eq!(started.from_source, FromSource::LookedUp);
}

#[tokio::test]
async fn looked_up_from_is_checked_before_the_post() {
    // Looked up hetzner, no instance id: refused, nothing started.
    let err =
        start_with_tenant_answer(json!({"compute": {"provider": "hetzner"}}), "hetzner", None)
            .await
            .expect_err("needs an instance id");
    assert!(
        matches!(err.root(), Error::Refused(m) if m.contains("needs the source instance id") && m.contains("runs on hetzner")),
        "{err:?}"
    );
    assert_eq!(
        err.remedies(),
        [fleet::Remedy::Give {
            input: fleet::Input::FromInstanceId,
            value: None
        }]
    );
    // Looked up the target itself.
    let err = start_with_tenant_answer(json!({"compute": {"provider": "aws"}}), "aws", None)
        .await
        .expect_err("same provider");
    assert!(
        matches!(&err, Error::Refused(m) if m.contains("both aws")),
        "{err:?}"
    );
    // No provider anywhere.
    let err = start_with_tenant_answer(json!({"id": "ws-1", "compute": {}}), "aws", None)
        .await
        .expect_err("no provider");
    assert!(
        matches!(err.root(), Error::Refused(m) if m.contains("reports no provider")),
        "{err:?}"
    );
    assert_eq!(
        err.remedies(),
        [fleet::Remedy::Give {
            input: fleet::Input::From,
            value: None
        }]
    );
    // A provider fleet does not know.
    let err = start_with_tenant_answer(json!({"provider": "azure"}), "aws", None)
        .await
        .expect_err("unknown provider");
    assert!(
        matches!(&err, Error::Refused(m) if m.contains("\"azure\"")),
        "{err:?}"
    );
}

#[tokio::test]
async fn without_a_tenant_api_the_error_says_pass_from() {
    let cp = MockServer::start_async().await;
    let any = catch_all(&cp).await;
    let err = client(&cp, None)
        .migrate_provider(&request(None, Provider::Hetzner))
        .await
        .expect_err("not configured");
    assert!(matches!(err.root(), Error::NotConfigured { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("MOLECULE_API_URL") && msg.contains("MOLECULE_ORG_API_KEY"),
        "{msg}"
    );
    // Or give the source provider: a remedy, worded by each face.
    assert_eq!(
        err.remedies(),
        [fleet::Remedy::Give {
            input: fleet::Input::From,
            value: None
        }]
    );
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn tenant_errors_keep_the_servers_words() {
    let cp = MockServer::start_async().await;
    let tenant = MockServer::start_async().await;
    tenant
        .mock_async(|when, then| {
            when.method(GET).path("/workspaces/ws-1");
            then.status(401)
                .json_body(json!({"error": "invalid org key"}));
        })
        .await;
    never_migrated(&cp).await; // the pre-flight read; `any` proves no POST
    let any = catch_all(&cp).await;
    let err = client(&cp, Some(&tenant))
        .migrate_provider(&request(None, Provider::Hetzner))
        .await
        .expect_err("401");
    let msg = err.to_string();
    assert!(matches!(err, Error::Unauthorized { status: 401, .. }));
    assert!(
        msg.contains("invalid org key") && msg.contains("MOLECULE_ORG_API_KEY"),
        "{msg}"
    );
    assert!(!msg.contains(ORG_KEY));
    any.assert_calls_async(0).await;
}

/// The typed aftermath of a migration that still runs on the server.
fn still_migrating(workspace_id: &str) -> fleet::operation::Aftermath {
    fleet::operation::Aftermath::StillRunning {
        follow: fleet::operation::FollowStep::Migration {
            workspace_id: workspace_id.to_string(),
        },
    }
}

/// The SDK's words carry no face's words: no command line, no MCP tool call.
fn assert_no_command_line(err: &Error) {
    let text = err.to_string();
    for face in [
        "fleet molecule",
        "migration-status",
        "--wait",
        "MCP",
        "wait_for_workspace_migration",
    ] {
        assert!(!text.contains(face), "{face:?} in the SDK error: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Several migrations started, then followed, as one operation (the handle)
// ---------------------------------------------------------------------------------------------

/// Starts of ws-1, ws-2 (answered after `second_delay`) and ws-3, each never migrated before.
async fn three_starts(server: &MockServer, second_delay: Duration) -> [httpmock::Mock<'_>; 3] {
    never_migrated(server).await;
    let mut mocks = Vec::new();
    for (id, delay) in [
        ("ws-1", Duration::ZERO),
        ("ws-2", second_delay),
        ("ws-3", Duration::ZERO),
    ] {
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(POST)
                        .path(format!("/cp/admin/workspaces/{id}/migrate-provider"));
                    then.status(202).delay(delay).json_body(json!({
                        "status": "migration_started", "workspace_id": id, "from": "aws",
                        "to": "hetzner"
                    }));
                })
                .await,
        );
    }
    let [a, b, c]: [httpmock::Mock<'_>; 3] = mocks.try_into().ok().expect("three mocks");
    [a, b, c]
}

fn three_requests() -> Vec<MigrateRequest> {
    ["ws-1", "ws-2", "ws-3"]
        .into_iter()
        .map(|id| MigrateRequest {
            from: Some(Provider::Aws),
            confirm: true,
            ..MigrateRequest::new(id, Provider::Hetzner)
        })
        .collect()
}

/// Runs the batch, calling `stop` on the operation once ws-1's start is reported; returns the
/// workspaces each `Started` event named, in order, and the outcome.
async fn batch_stopped_after_the_first_start(
    server: &MockServer,
    stop: fn(&fleet::molecule::BatchRunOperation),
) -> (
    Vec<String>,
    fleet::Result<fleet::molecule::MigrationBatchRun>,
) {
    let op = client(server, None).start_migrate_many(
        three_requests(),
        Some(fast_wait(Duration::from_secs(5))),
        4,
    );
    let mut started = Vec::new();
    let outcome = op
        .watch_until(None, std::future::pending(), |e| {
            if let fleet::molecule::BatchEvent::Started { result } = e {
                if started.is_empty() {
                    stop(&op);
                }
                started.push(result.workspace_id);
            }
        })
        .await
        .expect("it ends");
    (started, outcome)
}

#[tokio::test]
async fn a_graceful_cancel_of_a_batch_lets_the_start_under_way_be_answered_and_starts_no_more() {
    let server = MockServer::start_async().await;
    let [first, second, third] = three_starts(&server, Duration::from_millis(300)).await;
    let (started, outcome) = batch_stopped_after_the_first_start(&server, |op| op.cancel()).await;
    let run = outcome.expect("a batch ends in results");
    assert_eq!(started, ["ws-1", "ws-2", "ws-3"], "one event per start");
    let r = &run.starts.results;
    assert!(r[0].started.is_some() && r[1].started.is_some(), "{r:?}");
    assert_eq!(r[2].error_kind.as_deref(), Some("interrupted"), "{r:?}");
    assert!(r[2].message.contains("not started"), "{r:?}");
    // Interrupted: not followed, and the severity says so.
    assert!(run.status.is_none());
    assert_eq!(run.worst, fleet::operation::Severity::Interrupted);
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(0).await;
}

#[tokio::test]
async fn an_abort_of_a_batch_leaves_the_start_under_way_and_says_it_may_have_started() {
    let server = MockServer::start_async().await;
    let [first, second, third] = three_starts(&server, Duration::from_secs(5)).await;
    let began = std::time::Instant::now();
    let (started, outcome) = batch_stopped_after_the_first_start(&server, |op| op.abort()).await;
    assert!(began.elapsed() < Duration::from_secs(4), "it left at once");
    let run = outcome.expect("a batch ends in results");
    assert_eq!(started, ["ws-1", "ws-2", "ws-3"]);
    let r = &run.starts.results;
    assert!(r[0].started.is_some(), "{r:?}");
    assert!(r[1].started.is_none(), "{r:?}");
    assert!(r[1].message.contains("may have started"), "{r:?}");
    assert_eq!(r[1].read_back, Some(fleet::ReadBack::Unknown), "{r:?}");
    assert_eq!(run.worst, fleet::operation::Severity::Interrupted);
    first.assert_calls_async(1).await;
    // Left during its pre-flight reads or its POST: sent at most once, never again; the
    // third never.
    assert!(second.calls_async().await <= 1);
    third.assert_calls_async(0).await;
}

#[tokio::test]
async fn planning_several_gives_each_plan_or_refusal_in_order_and_sends_only_gets() {
    let cp = MockServer::start_async().await;
    let status_reads = never_migrated(&cp).await;
    let tenant = MockServer::start_async().await;
    let mut known = Vec::new();
    for id in ["ws-1", "ws-3"] {
        known.push(
            tenant
                .mock_async(|when, then| {
                    when.method(GET).path(format!("/workspaces/{id}"));
                    then.status(200)
                        .json_body(json!({"id": id, "compute": {"provider": "aws"}}));
                })
                .await,
        );
    }
    tenant
        .mock_async(|when, then| {
            when.method(GET).path("/workspaces/ws-2");
            then.status(404)
                .json_body(json!({"error": "workspace not found"}));
        })
        .await;
    // Anything but a GET, on either server (the unknown one's error may read the tenant's
    // list for a suggestion: a GET too).
    let mut changes = Vec::new();
    for server in [&cp, &tenant] {
        for method in [POST, PUT, PATCH, DELETE] {
            changes.push(
                server
                    .mock_async(|when, then| {
                        when.method(method);
                        then.status(599).body("unexpected request");
                    })
                    .await,
            );
        }
    }
    let requests: Vec<MigrateRequest> = ["ws-1", "ws-2", "ws-3"]
        .into_iter()
        .map(|id| MigrateRequest::new(id, Provider::Hetzner))
        .collect();
    let op = client(&cp, Some(&tenant)).start_plan_migrations(
        requests,
        fleet::rollout::RolloutOptions {
            parallel: 3,
            canary: 0,
            max_failures: None,
        },
    );
    let plans = op.outcome().await.expect("planned");
    let ids: Vec<&str> = plans
        .results
        .iter()
        .map(|r| r.workspace_id.as_str())
        .collect();
    assert_eq!(ids, ["ws-1", "ws-2", "ws-3"], "in the order given");
    let verdicts: Vec<PlanVerdict> = plans.results.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        [
            PlanVerdict::WouldMigrate,
            PlanVerdict::Refused,
            PlanVerdict::WouldMigrate
        ],
        "one unknown workspace hides no other plan"
    );
    let refused = &plans.results[1];
    assert!(refused.plan.is_none());
    assert!(refused.message.contains("ws-2"), "{}", refused.message);
    assert_eq!(
        plans.first_error().map(|e| e.kind()),
        refused.error_kind.as_deref()
    );
    let plan = plans.results[2].plan.as_ref().expect("its plan");
    assert_eq!(plan.from, Provider::Aws);
    assert_eq!(plan.from_source, FromSource::LookedUp);
    assert!(plans.plans().is_none(), "not every workspace was planned");
    assert_eq!(plans.worst, fleet::operation::Severity::Refused);
    assert!(plans.dry_run);
    // The operation's rows carry each verdict.
    let rows: Vec<Option<String>> = op
        .snapshot()
        .workspaces
        .into_iter()
        .map(|w| w.verdict)
        .collect();
    assert_eq!(
        rows,
        [
            Some("would_migrate".to_string()),
            Some("refused".to_string()),
            Some("would_migrate".to_string())
        ]
    );
    // Reads only: the status of the two known ones; no POST, PUT, PATCH or DELETE.
    status_reads.assert_calls_async(2).await;
    for m in known {
        m.assert_calls_async(1).await;
    }
    for m in changes {
        m.assert_calls_async(0).await;
    }
}
