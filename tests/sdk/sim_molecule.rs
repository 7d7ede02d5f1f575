//! The simulator speaks openapi/molecule-cp.yaml and openapi/molecule-tenant.yaml: driven
//! here with the generated clients only.

use std::time::{Duration, Instant};

use crate::support::sim::molecule_client;
use crate::support::sim::sim;
use fleet::{
    MoleculeConfig, Secret,
    molecule::{
        MigrationState, MoleculeClient, Provider,
        cp_api::types::{ErrorBody, MigrateProviderRequest, MigrationStatus},
    },
    sim::{SimFaults, SimOptions, Simulator},
};

fn request(from: Provider, to: Provider, instance: Option<&str>) -> MigrateProviderRequest {
    MigrateProviderRequest {
        confirm: true,
        env: Default::default(),
        from,
        from_instance_id: instance.map(str::to_string),
        image: None,
        org_id: None,
        runtime: None,
        to,
    }
}

/// The status and body of a declared error answer.
fn error_of(err: progenitor_client::Error<ErrorBody>) -> (u16, ErrorBody) {
    match err {
        progenitor_client::Error::ErrorResponse(rv) => (rv.status().as_u16(), rv.into_inner()),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

async fn status(m: &MoleculeClient, id: &str) -> MigrationStatus {
    m.cp()
        .get_migration_status(&id.parse().expect("an id"))
        .await
        .expect("a migration status")
        .into_inner()
}

/// Polls until the migration is terminal; returns the distinct states seen, in order.
async fn follow(
    m: &MoleculeClient,
    id: &str,
    limit: Duration,
) -> (Vec<MigrationState>, MigrationStatus) {
    let deadline = Instant::now() + limit;
    let mut seen: Vec<MigrationState> = Vec::new();
    loop {
        let s = status(m, id).await;
        if seen.last() != Some(&s.migration.state) {
            seen.push(s.migration.state.clone());
        }
        if s.terminal {
            return (seen, s);
        }
        assert!(
            Instant::now() < deadline,
            "{id}: not terminal after {limit:?}; seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401_and_an_org_key_gets_403() {
    let sim = sim(1.0).await;
    let id = "ws-aws-demo".parse().expect("an id");
    for token in [Some("not-the-token"), None] {
        let cfg = MoleculeConfig {
            cp_admin_token: Some(Secret::new(token.unwrap_or(fleet::sim::ORG_API_KEY))),
            ..sim.molecule_config()
        };
        let m = MoleculeClient::new(&cfg).expect("client");
        let (code, body) = error_of(m.cp().get_migration_status(&id).await.expect_err("refused"));
        if token.is_some() {
            assert_eq!(code, 401);
            assert_eq!(body.error.as_deref(), Some("invalid admin token"));
        } else {
            assert_eq!(code, 403, "the tenant key is not an admin token");
        }
    }
    // No header at all.
    let raw = reqwest::get(format!(
        "{}/cp/admin/workspaces/ws-aws-demo/migration-status",
        sim.cp_url()
    ))
    .await
    .expect("an answer");
    assert_eq!(raw.status().as_u16(), 401);
    let body: serde_json::Value = raw.json().await.expect("a JSON body");
    assert_eq!(body["error"], "missing admin token");

    // The tenant API checks its own key.
    let cfg = MoleculeConfig {
        org_api_key: Some(Secret::new("wrong")),
        ..sim.molecule_config()
    };
    let m = MoleculeClient::new(&cfg).expect("client");
    let tenant = m.tenant().expect("tenant configured");
    let err = tenant
        .get_workspace(&"ws-aws-demo".parse().expect("id"))
        .await
        .expect_err("refused");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(
        sim.count_requests("GET", "/tenant/workspaces/ws-aws-demo"),
        1
    );
}

#[tokio::test]
async fn a_migration_walks_every_state_and_moves_the_workspace() {
    let sim = sim(300.0).await;
    let m = molecule_client(&sim);
    let tenant = m.tenant().expect("tenant configured");
    let ws = tenant
        .get_workspace(&"ws-aws-demo".parse().expect("id"))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(ws.compute.and_then(|c| c.provider).as_deref(), Some("aws"));

    let started = m
        .cp()
        .migrate_provider(
            &"ws-aws-demo".parse().expect("id"),
            &request(Provider::Aws, Provider::Hetzner, None),
        )
        .await
        .expect("202");
    assert_eq!(started.status().as_u16(), 202);
    let started = started.into_inner();
    assert_eq!(started.status, "migration_started");
    assert_eq!(
        (started.workspace_id.as_str(), started.from, started.to),
        ("ws-aws-demo", Provider::Aws, Provider::Hetzner)
    );

    let (seen, last) = follow(&m, "ws-aws-demo", Duration::from_secs(20)).await;
    assert_eq!(seen, MigrationState::PATH.to_vec(), "every state, in order");
    assert_eq!(last.migration.from_provider, Some(Provider::Aws));
    assert_eq!(last.migration.to_provider, Some(Provider::Hetzner));
    assert!(
        last.migration.extra.contains_key("started_at")
            && last.migration.extra.contains_key("updated_at")
    );
    assert!(
        last.migration
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("hetzner"))
    );

    // The alias answers the same.
    let alias = m
        .cp()
        .get_migration_status_alias(&"ws-aws-demo".parse().expect("id"))
        .await
        .expect("alias")
        .into_inner();
    assert_eq!(
        (alias.migration, alias.terminal),
        (last.migration.clone(), last.terminal)
    );

    // The tenant API now reports the target.
    let ws = tenant
        .get_workspace(&"ws-aws-demo".parse().expect("id"))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(
        ws.compute.and_then(|c| c.provider).as_deref(),
        Some("hetzner")
    );

    // And the workspace can migrate back from where it is now.
    let again = m
        .cp()
        .migrate_provider(
            &"ws-aws-demo".parse().expect("id"),
            &request(Provider::Hetzner, Provider::Aws, Some("hz-1")),
        )
        .await;
    assert!(
        again.is_ok(),
        "a new migration from the new provider is accepted: {again:?}"
    );
}

#[tokio::test]
async fn faults_fail_roll_back_and_report_an_unknown_state() {
    let sim = sim(2000.0).await;
    let m = molecule_client(&sim);

    m.cp()
        .migrate_provider(
            &"ws-fails-migration".parse().expect("id"),
            &request(Provider::Aws, Provider::Gcp, None),
        )
        .await
        .expect("started");
    let (seen, last) = follow(&m, "ws-fails-migration", Duration::from_secs(20)).await;
    assert_eq!(last.migration.state, MigrationState::Failed);
    assert!(
        !seen.contains(&MigrationState::TargetHealthy),
        "fails before cutover: {seen:?}"
    );
    assert!(
        last.migration
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("still running"))
    );

    m.cp()
        .migrate_provider(
            &"ws-rolls-back".parse().expect("id"),
            &request(Provider::Hetzner, Provider::Aws, Some("hz-9000001")),
        )
        .await
        .expect("started");
    let (seen, last) = follow(&m, "ws-rolls-back", Duration::from_secs(20)).await;
    assert_eq!(last.migration.state, MigrationState::RolledBack);
    assert!(
        seen.contains(&MigrationState::TargetHealthy),
        "rolls back after the target was up: {seen:?}"
    );
    let ws = m
        .tenant()
        .expect("tenant")
        .get_workspace(&"ws-rolls-back".parse().expect("id"))
        .await
        .expect("read");
    assert_eq!(
        ws.into_inner().compute.and_then(|c| c.provider).as_deref(),
        Some("hetzner"),
        "a rolled-back workspace stays on its source"
    );

    // Slower, to see the short unknown state (60 simulated seconds = 120 ms).
    let sim = self::sim(500.0).await;
    let m = molecule_client(&sim);
    m.cp()
        .migrate_provider(
            &"ws-new-state".parse().expect("id"),
            &request(Provider::Gcp, Provider::Aws, Some("gce-1")),
        )
        .await
        .expect("started");
    let (seen, last) = follow(&m, "ws-new-state", Duration::from_secs(20)).await;
    assert_eq!(last.migration.state, MigrationState::Completed);
    let unknown = MigrationState::Other("verifying_target".into());
    let at = seen
        .iter()
        .position(|s| *s == unknown)
        .expect("the unknown state is reported and kept");
    assert_eq!(seen[at - 1], MigrationState::TargetHealthy);
    assert_eq!(seen[at + 1], MigrationState::RetiringSource);
}

#[tokio::test]
async fn a_second_migration_while_one_runs_gets_409() {
    let sim = sim(1.0).await;
    let m = molecule_client(&sim);
    let id = "ws-gcp-demo".parse().expect("id");
    let body = request(Provider::Gcp, Provider::Aws, Some("gce-7730118842"));
    m.cp()
        .migrate_provider(&id, &body)
        .await
        .expect("the first is accepted");
    let (code, err) = error_of(
        m.cp()
            .migrate_provider(&id, &body)
            .await
            .expect_err("the second is refused"),
    );
    assert_eq!(code, 409);
    assert_eq!(err.error.as_deref(), Some("migration already in progress"));
    assert!(
        err.detail
            .as_deref()
            .is_some_and(|d| d.contains("snapshotting"))
    );
    let mapped = m.cp_error(
        "starting",
        m.cp()
            .migrate_provider(&id, &body)
            .await
            .expect_err("refused"),
    );
    assert!(
        matches!(mapped, fleet::Error::Conflict { .. }),
        "{mapped:?}"
    );

    // A migration seeded in progress refuses too.
    let (code, _) = error_of(
        m.cp()
            .migrate_provider(
                &"ws-migrating".parse().expect("id"),
                &request(Provider::Aws, Provider::Gcp, None),
            )
            .await
            .expect_err("refused"),
    );
    assert_eq!(code, 409);
    assert_eq!(
        sim.count_requests("POST", "/cp/admin/workspaces/ws-gcp-demo/migrate-provider"),
        3
    );
}

#[tokio::test]
async fn bad_requests_get_400_404_with_the_servers_words() {
    let sim = sim(1.0).await;
    let m = molecule_client(&sim);
    let id = "ws-hetzner-demo".parse().expect("id");
    let cases: Vec<(MigrateProviderRequest, &str)> = vec![
        (
            MigrateProviderRequest {
                confirm: false,
                ..request(Provider::Hetzner, Provider::Aws, Some("hz-4217781"))
            },
            "confirmation required",
        ),
        (
            request(Provider::Hetzner, Provider::Hetzner, Some("hz-4217781")),
            "from and to are the same",
        ),
        (
            request(Provider::Hetzner, Provider::Aws, None),
            "from_instance_id required",
        ),
        (
            request(
                Provider::Hetzner,
                Provider::Other("azure".into()),
                Some("hz-4217781"),
            ),
            "invalid provider \"azure\"",
        ),
        (
            request(Provider::Gcp, Provider::Aws, Some("gce-1")),
            "from does not match the workspace",
        ),
    ];
    for (body, words) in cases {
        let (code, err) = error_of(
            m.cp()
                .migrate_provider(&id, &body)
                .await
                .expect_err("refused"),
        );
        assert_eq!((code, err.error.as_deref()), (400, Some(words)));
        assert!(err.detail.is_some());
    }
    let (code, err) = error_of(
        m.cp()
            .migrate_provider(
                &"ws-nope".parse().expect("id"),
                &request(Provider::Aws, Provider::Gcp, None),
            )
            .await
            .expect_err("refused"),
    );
    assert_eq!(
        (code, err.error.as_deref()),
        (404, Some("workspace not found"))
    );

    // Never migrated: 404, an answer.
    let (code, err) = error_of(
        m.cp()
            .get_migration_status(&"ws-hetzner-demo".parse().expect("id"))
            .await
            .expect_err("404"),
    );
    assert_eq!((code, err.error.as_deref()), (404, Some("no migration")));
    // An already migrated workspace reports its completed migration.
    let done = status(&m, "ws-migrated").await;
    assert!(done.terminal);
    assert_eq!(done.migration.state, MigrationState::Completed);
}

#[tokio::test]
async fn transient_503s_are_served_and_retried_reads_get_through() {
    let sim = Simulator::start(SimOptions {
        faults: SimFaults {
            flaky_gets: 2,
            every_nth_get_503: None,
            migrator_unconfigured: true,
            ..SimFaults::default()
        },
        ..SimOptions::default()
    })
    .await
    .expect("starts");
    // Without retries, the first two reads of ws-flaky answer 503.
    let mut cfg = sim.molecule_config();
    cfg.http.retry.max_retries = 0;
    let no_retry = MoleculeClient::new(&cfg).expect("client");
    let tenant = no_retry.tenant().expect("tenant");
    let id = "ws-flaky".parse().expect("id");
    for _ in 0..2 {
        let err = tenant.get_workspace(&id).await.expect_err("503");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    }
    assert!(
        tenant.get_workspace(&id).await.is_ok(),
        "the third read gets through"
    );

    // The migrator fault: POST answers 503 with the CP's words.
    let (code, err) = error_of(
        no_retry
            .cp()
            .migrate_provider(
                &"ws-aws-demo".parse().expect("id"),
                &request(Provider::Aws, Provider::Gcp, None),
            )
            .await
            .expect_err("503"),
    );
    assert_eq!(
        (code, err.error.as_deref()),
        (503, Some("migrator not configured"))
    );

    // Every Nth GET: the SDK's GET retries ride over it.
    let sim = Simulator::start(SimOptions {
        faults: SimFaults {
            flaky_gets: 0,
            every_nth_get_503: Some(2),
            migrator_unconfigured: false,
            ..SimFaults::default()
        },
        ..SimOptions::default()
    })
    .await
    .expect("starts");
    let mut cfg = sim.molecule_config();
    cfg.http.retry.initial_backoff = Duration::from_millis(1);
    let m = MoleculeClient::new(&cfg).expect("client");
    for _ in 0..3 {
        status(&m, "ws-migrated").await;
    }
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![200, 503, 200, 503, 200],
        "every second GET answered 503 and was retried"
    );
}
