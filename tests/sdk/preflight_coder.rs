//! Coder pre-flight against httpmock: every refusal is `Error::Refused` and sends no build;
//! the start build sends exactly the resolved values; precedence given > file > previous > default.

use crate::support::coder as support;
use crate::support::handle::CoderViaHandle;

use std::collections::BTreeMap;

use fleet::{
    Error,
    coder::{
        ParameterSource, UpdateOptions, WorkspaceRef, parse_parameters_file, resolve_parameters,
        types,
    },
};
use httpmock::{Method::GET, Method::POST, Mock, MockServer};
use serde_json::{Value, json};
use support::*;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn get<'a>(server: &'a MockServer, path: &str, body: Value) -> Mock<'a> {
    let path = path.to_string();
    server
        .mock_async(move |when, then| {
            when.method(GET).path(path);
            then.status(200).json_body(body);
        })
        .await
}

/// Every POST (builds): counted to prove none was sent.
async fn any_post(server: &MockServer) -> Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(POST);
            then.status(500)
                .json_body(json!({"message": "no build expected"}));
        })
        .await
}

fn rich() -> Value {
    json!([
        {"name": "region", "type": "string", "mutable": false, "required": false, "default_value": "us-east",
         "options": [{"name": "US East", "value": "us-east"}, {"name": "EU West", "value": "eu-west"}]},
        {"name": "cpu", "type": "number", "mutable": true, "required": false, "default_value": "2",
         "validation_min": 1, "validation_max": 16},
        {"name": "disk_gb", "type": "number", "mutable": true, "required": false, "default_value": "20",
         "validation_min": 10, "validation_max": 500, "validation_monotonic": "increasing"},
        {"name": "hostname", "type": "string", "mutable": true, "required": false, "default_value": "box",
         "validation_regex": "^[a-z][a-z0-9-]*$", "validation_error": "lowercase letters, digits and '-'"},
        {"name": "gpu", "type": "bool", "mutable": true, "required": false, "default_value": "false"},
        {"name": "tags", "type": "list(string)", "mutable": true, "required": false, "default_value": "[]"},
        {"name": "token", "type": "string", "mutable": true, "required": false, "default_value": "",
         "ephemeral": true},
        {"name": "project", "type": "string", "mutable": true, "required": true}
    ])
}

fn previous() -> Value {
    json!([
        {"name": "region", "value": "eu-west"}, {"name": "cpu", "value": "4"},
        {"name": "disk_gb", "value": "40"}, {"name": "token", "value": "old-secret"},
        {"name": "project", "value": "apollo"}, {"name": "gone", "value": "x"}
    ])
}

/// alice/dev running V1; target V2 (active); version, rich params and previous params mocked.
async fn setup(server: &MockServer, version: Value, rich_params: Value) {
    get(server, "/api/v2/users/alice/workspace/dev", running_on(V1)).await;
    get(server, &format!("/api/v2/templates/{TEMPLATE}"), template()).await;
    get(
        server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        previous(),
    )
    .await;
    get(server, &format!("/api/v2/templateversions/{V2}"), version).await;
    get(
        server,
        &format!("/api/v2/templateversions/{V2}/rich-parameters"),
        rich_params,
    )
    .await;
}

fn opts(given: &[(&str, &str)]) -> UpdateOptions {
    let mut o = fast_options();
    o.parameters = given
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    o
}

async fn update(
    server: &MockServer,
    version: Option<&str>,
    options: &UpdateOptions,
) -> fleet::Result<fleet::coder::UpdateOutcome> {
    client(&server.base_url())
        .update_via_handle(
            &WorkspaceRef::parse("alice/dev").unwrap(),
            version.map(|v| Uuid::parse_str(v).unwrap()),
            options,
            &CancellationToken::new(),
            |_| {},
        )
        .await
}

/// Runs an update that must be refused before any build, and returns the message.
async fn refused(given: &[(&str, &str)], version: Value, rich_params: Value) -> String {
    let server = MockServer::start_async().await;
    setup(&server, version, rich_params).await;
    let posts = any_post(&server).await;
    let err = update(&server, None, &opts(given)).await.unwrap_err();
    posts.assert_calls_async(0).await;
    match err.root() {
        Error::Refused(m) => m.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn each_bad_value_is_refused_naming_the_parameter_and_what_is_allowed_without_a_build() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &[("cpu", "32")],
            &["\"cpu\"", "above the maximum 16", "from 1 to 16"],
        ),
        (&[("cpu", "0")], &["\"cpu\"", "below the minimum 1"]),
        (&[("cpu", "many")], &["\"cpu\"", "not a whole number"]),
        (
            &[("region", "mars")],
            &["\"region\"", "not one of the options", "us-east, eu-west"],
        ),
        (
            &[("region", "us-east")],
            &["\"region\"", "immutable", "\"eu-west\""],
        ),
        (
            &[("disk_gb", "30")],
            &["\"disk_gb\"", "previous value 40", "can only grow"],
        ),
        (
            &[("hostname", "Bad_Name")],
            &["\"hostname\"", "regular expression", "lowercase letters"],
        ),
        (&[("gpu", "maybe")], &["\"gpu\"", "not true or false"]),
        (
            &[("tags", "a,b")],
            &["\"tags\"", "not a JSON list of strings"],
        ),
        (
            &[("nope", "1")],
            &["\"nope\"", "no such parameter", "region, cpu, disk_gb"],
        ),
    ];
    for (given, expected) in cases {
        let m = refused(given, version(V2), rich()).await;
        for e in *expected {
            assert!(m.contains(e), "{given:?}: {e:?} missing from: {m}");
        }
        assert!(m.contains("nothing was stopped or started"), "{m}");
    }
}

#[tokio::test]
async fn a_required_parameter_without_a_value_is_refused() {
    let mut params = rich();
    params
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "team", "type": "string", "mutable": true, "required": true}));
    let m = refused(&[], version(V2), params).await;
    assert!(m.contains("\"team\"") && m.contains("required"), "{m}");
}

#[tokio::test]
async fn an_unusable_target_version_is_refused_before_any_build() {
    let mut archived = version(V2);
    archived["archived"] = json!(true);
    let mut importing = version(V2);
    importing["job"]["status"] = json!("running");
    let mut failed = version(V2);
    failed["job"]["status"] = json!("failed");
    failed["job"]["error"] = json!("terraform init failed");
    let mut foreign = version(V2);
    foreign["template_id"] = json!("99999999-9999-4999-8999-999999999999");
    for (v, expected) in [
        (archived, "is archived"),
        (importing, "still importing"),
        (failed, "terraform init failed"),
        (foreign, "belongs to template 99999999"),
    ] {
        let m = refused(&[], v, rich()).await;
        assert!(m.contains(expected), "{expected}: {m}");
    }
}

#[tokio::test]
async fn a_missing_target_version_is_refused() {
    let server = MockServer::start_async().await;
    setup(&server, version(V2), rich()).await;
    let posts = any_post(&server).await;
    let missing = "33333333-3333-4333-8333-333333333339";
    let err = update(&server, Some(missing), &opts(&[]))
        .await
        .unwrap_err();
    posts.assert_calls_async(0).await;
    assert!(
        matches!(err.root(), Error::Refused(m) if m.contains("does not exist") && m.contains(missing)),
        "{err:?}"
    );
}

#[tokio::test]
async fn require_active_version_refuses_an_explicit_older_version() {
    let server = MockServer::start_async().await;
    let mut ws = running_on(V2);
    ws["template_require_active_version"] = json!(true);
    get(&server, "/api/v2/users/alice/workspace/dev", ws).await;
    let mut t = template();
    t["require_active_version"] = json!(true);
    get(&server, &format!("/api/v2/templates/{TEMPLATE}"), t).await;
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
        params(),
    )
    .await;
    get(
        &server,
        &format!("/api/v2/templateversions/{V1}"),
        version(V1),
    )
    .await;
    let posts = any_post(&server).await;
    let err = update(&server, Some(V1), &opts(&[])).await.unwrap_err();
    posts.assert_calls_async(0).await;
    assert!(
        matches!(err.root(), Error::Refused(m) if m.contains("requires its active version") && m.contains(V2)),
        "{err:?}"
    );
    assert_eq!(
        err.remedies(),
        [fleet::Remedy::UpdateToActive {
            workspace: "alice/dev".into()
        }]
    );
    assert_eq!(fleet_exit_kind(&err), "refused");
}

fn fleet_exit_kind(e: &Error) -> &'static str {
    e.kind()
}

#[tokio::test]
async fn the_start_build_sends_exactly_the_resolved_values() {
    let server = MockServer::start_async().await;
    setup(&server, version(V2), rich()).await;
    let stop = server
        .mock_async(|when, then| {
            when.method(POST).body_includes("\"transition\":\"stop\"");
            then.status(201)
                .json_body(build(STOP_BUILD, 8, "stop", "pending", "pending", V1, None));
        })
        .await;
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{STOP_BUILD}"),
        build(STOP_BUILD, 8, "stop", "stopped", "succeeded", V1, None),
    )
    .await;
    // given > previous > default; the ephemeral token is not carried over; `gone` (not in
    // V2) is dropped.
    let expected = json!({
        "transition": "start", "template_version_id": V2,
        "rich_parameter_values": [
            {"name": "region", "value": "eu-west"}, {"name": "cpu", "value": "8"},
            {"name": "disk_gb", "value": "40"}, {"name": "hostname", "value": "box"},
            {"name": "gpu", "value": "false"}, {"name": "tags", "value": "[\"a\"]"},
            {"name": "token", "value": ""}, {"name": "project", "value": "apollo"}
        ]
    });
    let start = server
        .mock_async(|when, then| {
            when.method(POST).json_body(expected);
            then.status(201).json_body(build(
                START_BUILD,
                9,
                "start",
                "pending",
                "pending",
                V2,
                None,
            ));
        })
        .await;
    get(
        &server,
        &format!("/api/v2/workspacebuilds/{START_BUILD}"),
        build(START_BUILD, 9, "start", "running", "succeeded", V2, None),
    )
    .await;
    let mut o = opts(&[("cpu", "8")]);
    o.parameters_file = BTreeMap::from([
        ("cpu".to_string(), "3".to_string()),
        ("tags".to_string(), "[\"a\"]".to_string()),
    ]);
    let out = update(&server, None, &o).await.expect("update succeeds");
    stop.assert_calls_async(1).await;
    start.assert_calls_async(1).await;
    assert_eq!(out.template_version_id.to_string(), V2);
}

#[tokio::test]
async fn the_plan_says_where_each_value_came_from_and_serializes() {
    let server = MockServer::start_async().await;
    setup(&server, version(V2), rich()).await;
    let posts = any_post(&server).await;
    let mut o = opts(&[("cpu", "8")]);
    o.parameters_file = BTreeMap::from([("hostname".to_string(), "web-1".to_string())]);
    let op = client(&server.base_url()).start_plan_update(
        WorkspaceRef::parse("alice/dev").unwrap(),
        None,
        false,
        o,
    );
    let plan = crate::support::handle::drive(&op, &CancellationToken::new(), |_| {})
        .await
        .expect("plan");
    posts.assert_calls_async(0).await;
    let v = serde_json::to_value(&plan).unwrap();
    let src = |name: &str| {
        v["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| (p["value"].clone(), p["source"].clone()))
            .unwrap()
    };
    assert_eq!(src("cpu"), (json!("8"), json!("given")));
    assert_eq!(src("hostname"), (json!("web-1"), json!("file")));
    assert_eq!(src("region"), (json!("eu-west"), json!("previous_build")));
    assert_eq!(src("gpu"), (json!("false"), json!("default")));
    assert_eq!(src("token"), (json!(""), json!("default")));
    assert_eq!(v["workspace"]["full_name"], "alice/dev");
    assert_eq!(v["target_version"]["name"], "v2");
    let schema = schemars::schema_for!(fleet::coder::UpdatePlan);
    assert!(
        serde_json::to_string(&schema)
            .unwrap()
            .contains("previous_build")
    );
}

#[test]
fn resolution_precedence_is_given_then_file_then_previous_then_default() {
    let params: Vec<types::TemplateVersionParameter> = serde_json::from_value(rich()).unwrap();
    let previous: Vec<types::WorkspaceBuildParameter> = serde_json::from_value(previous()).unwrap();
    let given = BTreeMap::from([("cpu".to_string(), "8".to_string())]);
    let file = BTreeMap::from([
        ("cpu".to_string(), "6".to_string()),
        ("disk_gb".to_string(), "50".to_string()),
    ]);
    let r = resolve_parameters(&params, &given, &file, &previous).unwrap();
    let get = |n: &str| r.iter().find(|p| p.name == n).unwrap();
    assert_eq!(
        (get("cpu").value.as_str(), get("cpu").source),
        ("8", ParameterSource::Given)
    );
    assert_eq!(
        (get("disk_gb").value.as_str(), get("disk_gb").source),
        ("50", ParameterSource::File)
    );
    assert_eq!(get("region").source, ParameterSource::PreviousBuild);
    assert_eq!(get("hostname").source, ParameterSource::Default);
    assert_eq!(get("token").source, ParameterSource::Default, "ephemeral");
    assert_eq!(get("token").previous_value.as_deref(), Some("old-secret"));
    assert!(r.iter().all(|p| p.name != "gone"));
}

#[test]
fn parameters_files_are_read_as_yaml_or_json() {
    let yaml = "cpu: 8\nregion: eu-west\ngpu: true\ntags:\n  - a\n  - b\n";
    let m = parse_parameters_file(yaml, "p.yaml").unwrap();
    assert_eq!(m["cpu"], "8");
    assert_eq!(m["gpu"], "true");
    assert_eq!(m["tags"], "[\"a\",\"b\"]");
    let m = parse_parameters_file(r#"{"cpu": 8, "region": "eu-west"}"#, "p.json").unwrap();
    assert_eq!(m["cpu"], "8");
    assert_eq!(m["region"], "eu-west");
    for (text, origin) in [
        ("[1, 2]", "p.yaml"),
        ("{not json", "p.json"),
        ("cpu: {a: 1}", "p.yml"),
    ] {
        assert!(
            matches!(
                parse_parameters_file(text, origin),
                Err(Error::InvalidInput(_))
            ),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_version_name_resolves_whether_coder_answers_one_object_or_an_array() {
    // Issue 27 item 5: Coder's description says the by-name endpoint answers an array; the
    // server answers one object. Both resolve; an unknown name is invalid input with the
    // template's closest version.
    use fleet::coder::TemplateVersionRef;
    let template = Uuid::parse_str("aaaaaaaa-0000-4000-8000-000000000001").unwrap();
    let v3 = Uuid::parse_str("aaaaaaaa-0000-4000-8000-000000000003").unwrap();
    let v4 = Uuid::parse_str("aaaaaaaa-0000-4000-8000-000000000004").unwrap();
    let server = MockServer::start_async().await;
    let base = format!("/api/v2/templates/{template}/versions");
    get(
        &server,
        &format!("{base}/v3"),
        json!({"id": v3, "name": "v3"}),
    )
    .await;
    get(
        &server,
        &format!("{base}/v4"),
        json!([{"id": v4, "name": "v4"}]),
    )
    .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("{base}/v33"));
            then.status(404)
                .json_body(json!({"message": "No template version found by name \"v33\"."}));
        })
        .await;
    let list = get(
        &server,
        &base,
        json!([{"id": v3, "name": "v3"}, {"id": v4, "name": "v4"}]),
    )
    .await;
    let c = client(&server.base_url());
    let name = |n: &str| TemplateVersionRef::parse(n).unwrap();
    assert_eq!(
        c.resolve_template_version(&template, "web", &name("v3"))
            .await
            .unwrap(),
        v3
    );
    assert_eq!(
        c.resolve_template_version(&template, "web", &name("v4"))
            .await
            .unwrap(),
        v4
    );
    // An ID is used as it is: nothing is asked.
    assert_eq!(
        c.resolve_template_version(&template, "web", &TemplateVersionRef::Id(v4))
            .await
            .unwrap(),
        v4
    );
    list.assert_calls_async(0).await;
    match c
        .resolve_template_version(&template, "web", &name("v33"))
        .await
    {
        Err(Error::InvalidInput(m)) => {
            assert!(
                m.contains(r#"template web has no version named "v33"; did you mean v3?"#),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    list.assert_calls_async(1).await;
}

// ---------------------------------------------------------------------------------------------
// Promotion of a template version: the PATCH that makes it active, and the pre-flight
// ---------------------------------------------------------------------------------------------

/// A 403 on `PATCH /templates/{id}/versions` is a typed permission error (template-admin),
/// with Coder's words; the PATCH is sent once, with the version's id, and never again.
#[tokio::test]
async fn a_403_on_making_a_version_active_is_a_permission_error_sent_once() {
    let server = MockServer::start_async().await;
    let patch = server
        .mock_async(|when, then| {
            when.method(httpmock::Method::PATCH)
                .path(format!("/api/v2/templates/{TEMPLATE}/versions"))
                .header("coder-session-token", TOKEN)
                .json_body(json!({"id": V2}));
            then.status(403)
                .json_body(json!({"message": "Forbidden.", "detail": "no template admin"}));
        })
        .await;
    let version = fleet::coder::VersionName {
        id: Uuid::parse_str(V2).unwrap(),
        name: Some("v2".into()),
    };
    let e = client(&server.base_url())
        .set_active_version(&Uuid::parse_str(TEMPLATE).unwrap(), "docker", &version)
        .await
        .expect_err("a 403");
    match &e {
        Error::Unauthorized {
            status: 403,
            message,
        } => {
            assert!(message.contains("template-admin permission"), "{message}");
            assert!(
                message.contains("no template admin"),
                "Coder's words: {message}"
            );
            assert!(
                message.contains("v2") && message.contains("docker"),
                "{message}"
            );
            assert!(
                message.contains("the template was not changed"),
                "{message}"
            );
        }
        other => panic!("a typed 403, not {other:?}"),
    }
    patch.assert_calls_async(1).await;
}

/// An answer that never comes back is not sent again: the template is read, and the error
/// says what is true (here: unchanged).
#[tokio::test]
async fn a_promotion_without_an_answer_is_read_back_never_resent() {
    let server = MockServer::start_async().await;
    let patch = server
        .mock_async(|when, then| {
            when.method(httpmock::Method::PATCH)
                .path(format!("/api/v2/templates/{TEMPLATE}/versions"));
            then.status(200)
                .json_body(json!({"message": "ok"}))
                .delay(std::time::Duration::from_secs(5));
        })
        .await;
    let read = get(
        &server,
        &format!("/api/v2/templates/{TEMPLATE}"),
        template(),
    )
    .await;
    let http = fleet::HttpOptions {
        request_timeout: std::time::Duration::from_millis(300),
        ..fleet::HttpOptions::default()
    };
    let client = fleet::coder::CoderClient::new(&fleet::CoderConfig {
        url: Some(server.base_url()),
        session_token: Some(fleet::Secret::new(TOKEN)),
        http,
    })
    .expect("client");
    let version = fleet::coder::VersionName {
        id: Uuid::parse_str(V1).unwrap(),
        name: Some("v1".into()),
    };
    let e = client
        .set_active_version(&Uuid::parse_str(TEMPLATE).unwrap(), "docker", &version)
        .await
        .expect_err("no answer");
    assert!(e.to_string().contains("active version is unchanged"), "{e}");
    patch.assert_calls_async(1).await;
    assert!(read.calls_async().await >= 1);
}

/// A version that cannot be made active (archived) is refused by the pre-flight: the report
/// says why, nothing but reads reached the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_an_archived_version_is_refused_with_reads_only() {
    let sim = crate::support::sim::sim(100.0).await;
    let client = crate::support::sim::coder_client(&sim);
    let request = fleet::coder::PromoteRequest {
        template: "docker-dev".into(),
        version: fleet::coder::TemplateVersionRef::parse("v0-archived").unwrap(),
        canary_workspaces: vec![],
    };
    let report = client
        .start_promote(request, fleet::coder::PromoteOptions::default())
        .outcome()
        .await
        .expect("a report");
    assert_eq!(report.outcome, fleet::coder::PromoteOutcome::Refused);
    assert_eq!(report.worst, fleet::coder::Severity::Refused);
    assert_eq!(
        report.plan.not_promotable,
        vec![fleet::coder::NotPromotable::Archived]
    );
    assert!(report.message.contains("archived"), "{}", report.message);
    let changes = crate::support::sim::changes(&sim);
    assert!(changes.is_empty(), "{changes:?}");
}

/// Through the handle: the typed events say the phases in order (the plan, canary, promotion,
/// rollout), the PATCH comes after the canary's events, and the snapshot ends with a verdict
/// per workspace (what get_operation shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_reports_its_phases_in_order_through_the_handle() {
    use fleet::coder::{PromoteEvent, PromotePhase};
    let sim = crate::support::sim::sim(200.0).await;
    let client = crate::support::sim::coder_client(&sim);
    let request = fleet::coder::PromoteRequest {
        template: "web".into(),
        version: fleet::coder::TemplateVersionRef::parse("v2").unwrap(),
        canary_workspaces: vec![],
    };
    let op = client.start_promote(request, fleet::coder::PromoteOptions::default());
    assert_eq!(op.kind(), fleet::operation::OperationKind::Promote);
    let mut seen: Vec<String> = Vec::new();
    // The pre-flight's count, (checked, total, workspace), and whether the plan had come.
    let mut checks: Vec<(usize, usize, String, bool)> = Vec::new();
    let report = crate::support::handle::drive(&op, &CancellationToken::new(), |e| {
        let word = match &e {
            PromoteEvent::PreflightChecked {
                workspace,
                checked,
                total,
            } => {
                let planned = seen.iter().any(|w| w.starts_with("planned"));
                checks.push((*checked, *total, workspace.clone(), planned));
                return;
            }
            PromoteEvent::Planned { canaries, .. } => format!("planned {}", canaries.join(",")),
            PromoteEvent::PhaseBegan { phase, .. } => format!("began {phase}"),
            PromoteEvent::Promoted { version, .. } => format!("promoted {version}"),
            PromoteEvent::Workspace {
                phase: PromotePhase::Canary,
                ..
            } => "canary step".into(),
            _ => return,
        };
        if seen.last() != Some(&word) {
            seen.push(word);
        }
    })
    .await
    .expect("a report");
    assert_eq!(
        seen,
        [
            "planned carol/web-01",
            "began canary",
            "canary step",
            "began promotion",
            "promoted v2",
            "began rollout"
        ],
        "{seen:?}"
    );
    // The pre-flight counted every workspace that moves, one by one, before the plan.
    assert_eq!(
        checks.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
        (1..=8).map(|n| (n, 8)).collect::<Vec<_>>(),
        "{checks:?}"
    );
    assert!(checks.iter().all(|c| !c.3), "before the plan: {checks:?}");
    let mut names: Vec<&str> = checks.iter().map(|c| c.2.as_str()).collect();
    names.sort();
    let web: Vec<String> = (1..=8).map(|n| format!("carol/web-{n:02}")).collect();
    assert_eq!(names, web, "{checks:?}");
    assert_eq!(report.outcome, fleet::coder::PromoteOutcome::Promoted);
    assert_eq!(report.worst, fleet::coder::Severity::Ok);
    let snapshot = op.snapshot();
    assert_eq!(snapshot.workspaces.len(), 8, "{snapshot:?}");
    assert!(
        snapshot
            .workspaces
            .iter()
            .all(|w| w.verdict.as_deref() == Some("updated")),
        "{snapshot:?}"
    );
}
