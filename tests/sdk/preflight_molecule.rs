//! Molecule pre-flight against httpmock: an unknown workspace, a disagreeing --from and a
//! migration already running are refused (exit 2 semantics: `Error::Refused`) with no POST.

use std::time::Duration;

use fleet::{
    Error, HttpOptions, MoleculeConfig, Secret,
    molecule::{MigrateRequest, MoleculeClient, Provider},
};
use httpmock::{Method::GET, Method::POST, Mock, MockServer};
use serde_json::json;

const PATH: &str = "/cp/admin/workspaces/ws-1/migrate-provider";

fn client(cp: &MockServer, tenant: Option<&MockServer>) -> MoleculeClient {
    let mut http = HttpOptions::default();
    http.retry.initial_backoff = Duration::from_millis(5);
    http.retry.max_backoff = Duration::from_millis(20);
    MoleculeClient::new(&MoleculeConfig {
        cp_url: cp.base_url(),
        cp_admin_prefix: None,
        cp_admin_token: Some(Secret::new("cp-token")),
        api_url: tenant.map(|t| t.base_url()),
        org_api_key: tenant.map(|_| Secret::new("org-key")),
        http,
    })
    .expect("client")
}

fn request(from: Option<Provider>) -> MigrateRequest {
    let mut r = MigrateRequest::new("ws-1", Provider::Hetzner);
    r.from = from;
    r.confirm = true;
    r
}

async fn posts(cp: &MockServer) -> Mock<'_> {
    cp.mock_async(|when, then| {
        when.method(POST);
        then.status(202).json_body(json!({"status": "migration_started", "workspace_id": "ws-1", "from": "aws", "to": "hetzner"}));
    })
    .await
}

async fn status(cp: &MockServer, code: u16, state: &str, terminal: bool) {
    let state = state.to_string();
    cp.mock_async(move |when, then| {
        when.method(GET).path(PATH);
        if code == 200 {
            then.status(200).json_body(json!({
                "migration": {"state": state, "from_provider": "aws", "to_provider": "hetzner"},
                "terminal": terminal
            }));
        } else {
            then.status(code)
                .json_body(json!({"error": "no migration"}));
        }
    })
    .await;
}

async fn tenant_says(tenant: &MockServer, code: u16, provider: &str) {
    let provider = provider.to_string();
    tenant
        .mock_async(move |when, then| {
            when.method(GET).path("/workspaces/ws-1");
            if code == 200 {
                then.status(200)
                    .json_body(json!({"id": "ws-1", "compute": {"provider": provider}}));
            } else {
                then.status(code)
                    .json_body(json!({"error": "workspace not found"}));
            }
        })
        .await;
}

fn refused(r: fleet::Result<fleet::molecule::StartedMigration>) -> String {
    match &r {
        Err(e) => match e.root() {
            Error::Refused(m) => m.clone(),
            other => panic!("expected a refusal, got {other:?}"),
        },
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_from_that_disagrees_with_the_tenant_is_refused_naming_both() {
    let (cp, tenant) = (
        MockServer::start_async().await,
        MockServer::start_async().await,
    );
    status(&cp, 404, "", false).await;
    tenant_says(&tenant, 200, "gcp").await;
    let post = posts(&cp).await;
    let m = refused(
        client(&cp, Some(&tenant))
            .migrate_provider(&request(Some(Provider::Aws)))
            .await,
    );
    assert!(
        m.contains("source provider given is aws") && m.contains("runs on gcp"),
        "{m}"
    );
    assert!(m.contains("nothing was changed"), "{m}");
    post.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_workspace_the_tenant_does_not_know_is_refused() {
    // Issue 27: the one answer for "no such workspace" (was a plain refusal): kind
    // not_found, nothing changed, no POST.
    for from in [Some(Provider::Aws), None] {
        let (cp, tenant) = (
            MockServer::start_async().await,
            MockServer::start_async().await,
        );
        status(&cp, 404, "", false).await;
        tenant_says(&tenant, 404, "").await;
        let post = posts(&cp).await;
        let r = client(&cp, Some(&tenant))
            .migrate_provider(&request(from.clone()))
            .await;
        let Err(e) = &r else { panic!("{r:?}") };
        let Error::UnknownWorkspace { message: m, .. } = e.root() else {
            panic!("expected an unknown workspace, got {e:?}")
        };
        assert!(
            m.contains("does not know it") && m.contains("ws-1"),
            "{from:?}: {m}"
        );
        assert_eq!(e.kind(), "not_found");
        assert!(e.nothing_changed());
        post.assert_calls_async(0).await;
    }
}

#[tokio::test]
async fn a_migration_already_running_is_reported_with_its_state_instead_of_posting() {
    let cp = MockServer::start_async().await;
    status(&cp, 200, "provisioning_target", false).await;
    let post = posts(&cp).await;
    let r = client(&cp, None)
        .migrate_provider(&request(Some(Provider::Aws)))
        .await;
    // The SDK states what to follow; the faces word it (a command line, a tool call).
    let left = r.as_ref().err().and_then(|e| e.aftermath()).cloned();
    let m = refused(r);
    assert!(
        m.contains("already running") && m.contains("provisioning_target"),
        "{m}"
    );
    assert_eq!(
        left,
        Some(fleet::operation::Aftermath::StillRunning {
            follow: fleet::operation::FollowStep::Migration {
                workspace_id: "ws-1".into()
            }
        }),
        "says what to follow: {m}"
    );
    assert!(
        !m.contains("fleet molecule"),
        "no command line in the SDK: {m}"
    );
    post.assert_calls_async(0).await;
}

#[tokio::test]
async fn an_ended_migration_and_an_agreeing_tenant_let_the_post_through() {
    let (cp, tenant) = (
        MockServer::start_async().await,
        MockServer::start_async().await,
    );
    status(&cp, 200, "completed", true).await;
    tenant_says(&tenant, 200, "aws").await;
    let post = posts(&cp).await;
    let started = client(&cp, Some(&tenant))
        .migrate_provider(&request(Some(Provider::Aws)))
        .await
        .expect("started");
    assert_eq!(started.from, Provider::Aws);
    post.assert_calls_async(1).await;
}
