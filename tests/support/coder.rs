//! Fixtures shared by the coder tests: Coder JSON bodies, fast options, and httpmock mocks of
//! the Coder endpoints an update reads and writes (each `mock_*` checks the session token).
#![allow(dead_code)]

use std::time::Duration;

use httpmock::{
    Method::{GET, POST},
    Mock, MockServer,
};
use serde_json::{Value, json};

pub const WS: &str = "11111111-1111-4111-8111-111111111111";
pub const TEMPLATE: &str = "22222222-2222-4222-8222-222222222222";
pub const V1: &str = "33333333-3333-4333-8333-333333333331";
pub const V2: &str = "33333333-3333-4333-8333-333333333332";
pub const PREV_BUILD: &str = "44444444-4444-4444-8444-444444444440";
pub const STOP_BUILD: &str = "44444444-4444-4444-8444-444444444441";
pub const START_BUILD: &str = "44444444-4444-4444-8444-444444444442";
pub const OTHER_BUILD: &str = "44444444-4444-4444-8444-444444444443";
pub const TOKEN: &str = "s3cr3t-session-token";

/// A build. `job` is the job status; `error` its error.
pub fn build(
    id: &str,
    number: i64,
    transition: &str,
    status: &str,
    job: &str,
    version: &str,
    error: Option<&str>,
) -> Value {
    let mut b = json!({
        "id": id,
        "build_number": number,
        "workspace_id": WS,
        "workspace_name": "dev",
        "workspace_owner_name": "alice",
        "template_version_id": version,
        "template_version_name": if version == V1 { "v1" } else { "v2" },
        "transition": transition,
        "status": status,
        "reason": "initiator",
        "created_at": "2026-11-02T10:00:00Z",
        "job": {"id": "55555555-5555-4555-8555-555555555555", "status": job, "queue_position": 0}
    });
    if let Some(e) = error {
        b["job"]["error"] = json!(e);
    }
    b
}

/// The workspace alice/dev with a latest build.
pub fn workspace(latest: Value) -> Value {
    json!({
        "id": WS,
        "name": "dev",
        "owner_name": "alice",
        "owner_id": "66666666-6666-4666-8666-666666666666",
        "template_id": TEMPLATE,
        "template_name": "docker",
        "template_active_version_id": V2,
        "template_require_active_version": false,
        "outdated": latest["template_version_id"] != json!(V2),
        "latest_build": latest,
    })
}

pub fn running_on(version: &str) -> Value {
    workspace(build(
        PREV_BUILD,
        7,
        "start",
        "running",
        "succeeded",
        version,
        None,
    ))
}

pub fn template() -> Value {
    json!({"id": TEMPLATE, "name": "docker", "active_version_id": V2, "require_active_version": false})
}

pub fn params() -> Value {
    json!([{"name": "region", "value": "eu-west"}, {"name": "cpu", "value": "4"}])
}

/// Polling fast enough for tests.
pub fn fast_options() -> fleet::coder::UpdateOptions {
    fleet::coder::UpdateOptions {
        force: false,
        stop_timeout: Duration::from_secs(10),
        start_timeout: Duration::from_secs(10),
        poll: fleet::coder::PollOptions {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            factor: 1.5,
            near_end: Duration::from_millis(5),
            near_end_window: Duration::from_secs(1),
            ..fleet::coder::PollOptions::default()
        },
        max_conflicts: 3,
        ..fleet::coder::UpdateOptions::default()
    }
}

/// A template version of the workspace's template, imported.
pub fn version(id: &str) -> Value {
    json!({"id": id, "name": if id == V1 { "v1" } else { "v2" }, "template_id": TEMPLATE,
           "archived": false, "job": {"id": "77777777-7777-4777-8777-777777777777", "status": "succeeded"}})
}

/// The rich parameters of V1 and V2: region (immutable, options), cpu (number 1-16).
pub fn rich_parameters() -> Value {
    json!([
        {"name": "region", "type": "string", "mutable": false, "required": false, "default_value": "us-east",
         "options": [{"name": "US East", "value": "us-east"}, {"name": "EU West", "value": "eu-west"}]},
        {"name": "cpu", "type": "number", "mutable": true, "required": false, "default_value": "2",
         "validation_min": 1, "validation_max": 16}
    ])
}

/// The reads of the pre-flight check for V1 and V2 (version, rich parameters).
pub async fn mock_preflight(server: &httpmock::MockServer) {
    for v in [V1, V2] {
        server
            .mock_async(|when, then| {
                when.method(httpmock::Method::GET)
                    .path(format!("/api/v2/templateversions/{v}"));
                then.status(200).json_body(version(v));
            })
            .await;
        server
            .mock_async(|when, then| {
                when.method(httpmock::Method::GET)
                    .path(format!("/api/v2/templateversions/{v}/rich-parameters"));
                then.status(200).json_body(rich_parameters());
            })
            .await;
    }
}

pub fn client(base_url: &str) -> fleet::coder::CoderClient {
    let mut http = fleet::HttpOptions::default();
    http.retry.initial_backoff = Duration::from_millis(5);
    http.retry.max_backoff = Duration::from_millis(20);
    fleet::coder::CoderClient::new(&fleet::CoderConfig {
        url: Some(base_url.to_string()),
        session_token: Some(fleet::Secret::new(TOKEN)),
        http,
    })
    .expect("client")
}

/// GET `path` with the session token, answered `status` with `body`.
pub async fn mock_get<'a>(
    server: &'a MockServer,
    path: &str,
    status: u16,
    body: Value,
) -> Mock<'a> {
    let path = path.to_string();
    server
        .mock_async(move |when, then| {
            when.method(GET)
                .path(path)
                .header("coder-session-token", TOKEN);
            then.status(status).json_body(body);
        })
        .await
}

/// GET `path` answered with `bodies` in order; the last answer repeats.
pub async fn mock_get_seq<'a>(
    server: &'a MockServer,
    path: &str,
    bodies: Vec<Value>,
) -> Vec<Mock<'a>> {
    let n = bodies.len();
    let mut mocks = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let m = mock_get(server, path, 200, body).await;
        if i + 1 < n {
            m.up_to_n_times_async(1).await;
        }
        mocks.push(m);
    }
    mocks
}

/// The build `id` read (GET /workspacebuilds/{id}) answered with `bodies` in order; the last
/// answer repeats.
pub async fn mock_build_seq<'a>(
    server: &'a MockServer,
    id: &str,
    bodies: Vec<Value>,
) -> Vec<Mock<'a>> {
    mock_get_seq(server, &format!("/api/v2/workspacebuilds/{id}"), bodies).await
}

/// A build POST for alice/dev whose JSON body is exactly `body`, answered `status` with
/// `answer`.
pub async fn mock_post_build<'a>(
    server: &'a MockServer,
    body: Value,
    status: u16,
    answer: Value,
) -> Mock<'a> {
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path(format!("/api/v2/workspaces/{WS}/builds"))
                .header("coder-session-token", TOKEN)
                .json_body(body);
            then.status(status).json_body(answer);
        })
        .await
}

/// Any POST with a given transition, answered 500 (to prove one was never sent).
pub async fn mock_any_post<'a>(server: &'a MockServer, transition: &str) -> Mock<'a> {
    let t = format!("\"transition\":\"{transition}\"");
    server
        .mock_async(move |when, then| {
            when.method(POST).body_includes(t);
            then.status(500)
                .json_body(json!({"message": "unexpected build"}));
        })
        .await
}

/// The body of a stop build request.
pub fn stop_body() -> Value {
    json!({"transition": "stop"})
}

/// The body of a start build request on `version` with the previous parameters.
pub fn start_body(version: &str) -> Value {
    json!({"transition": "start", "template_version_id": version, "rich_parameter_values": params()})
}

/// The stop build (number 8, of V1) in `status`, its job in `job`.
pub fn stop_build(status: &str, job: &str) -> Value {
    build(STOP_BUILD, 8, "stop", status, job, V1, None)
}

/// The start build (number 9, of `version`) in `status`, its job in `job`.
pub fn start_build(version: &str, status: &str, job: &str) -> Value {
    build(START_BUILD, 9, "start", status, job, version, None)
}

/// The stop POST answered 201 with the stop build, pending.
pub async fn mock_stop_created(server: &MockServer) -> Mock<'_> {
    mock_post_build(server, stop_body(), 201, stop_build("pending", "pending")).await
}

/// The mocks of the reads an update of alice/dev makes before it sends anything.
pub struct DevReads<'a> {
    /// GET /users/alice/workspace/dev
    pub workspace: Mock<'a>,
    /// GET /templates/{TEMPLATE}
    pub template: Mock<'a>,
    /// GET /workspacebuilds/{PREV_BUILD}/parameters
    pub parameters: Mock<'a>,
}

/// Every read an update of alice/dev makes: the pre-flight's (V1 and V2, see
/// [`mock_preflight`]), alice/dev answered `dev` (for example [`running_on`]), its template
/// and the previous build's parameters.
pub async fn mock_dev_reads(server: &MockServer, dev: Value) -> DevReads<'_> {
    mock_preflight(server).await;
    DevReads {
        workspace: mock_get(server, "/api/v2/users/alice/workspace/dev", 200, dev).await,
        template: mock_get(
            server,
            &format!("/api/v2/templates/{TEMPLATE}"),
            200,
            template(),
        )
        .await,
        parameters: mock_get(
            server,
            &format!("/api/v2/workspacebuilds/{PREV_BUILD}/parameters"),
            200,
            params(),
        )
        .await,
    }
}
