//! The simulator's template routes against Coder's own API description
//! (../shared/reference/coder-swagger-subset-2026-08.json): every route it serves there is an
//! operation of the description, every success status is one the description lists, and every
//! field it answers is a field of the described schema, with its type, format and enum. Errors
//! carry Coder's `{message, detail?, validations?}`. The simulator may answer less, never
//! something else.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::sim::sim;

const REFERENCE: &str = "../shared/reference/coder-swagger-subset-2026-08.json";

fn reference() -> Option<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE);
    if !path.exists() {
        eprintln!("skipped: {} is not beside the repository", path.display());
        return None;
    }
    Some(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("it parses"))
}

/// The definition a schema refers to (directly or through `allOf`), or the schema itself.
fn resolve<'a>(theirs: &'a Value, schema: &'a Value) -> &'a Value {
    let r = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find_map(|s| s.get("$ref")))
    });
    match r.and_then(Value::as_str) {
        Some(r) => &theirs["definitions"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

/// Pushes every way `value` is not `schema`'s.
fn conforms(theirs: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let enumerated = schema.get("enum").and_then(Value::as_array);
    let schema = resolve(theirs, schema);
    if schema.is_null() {
        problems.push(format!("{at}: not in Coder's description"));
        return;
    }
    if let (Some(allowed), Some(s)) = (
        enumerated.or_else(|| schema.get("enum").and_then(Value::as_array)),
        value.as_str(),
    ) && !allowed.iter().any(|a| a == s)
    {
        problems.push(format!("{at}: {s:?} is not one of {allowed:?}"));
    }
    let kind = schema.get("type").and_then(Value::as_str);
    match (kind, value) {
        (Some("object") | None, Value::Object(fields)) => {
            let props = &schema["properties"];
            for (name, v) in fields {
                let p = &props[name];
                let p = if p.is_null() {
                    &schema["additionalProperties"]
                } else {
                    p
                };
                if p.is_null() {
                    problems.push(format!("{at}.{name}: not a field of Coder's schema"));
                    continue;
                }
                conforms(theirs, p, v, &format!("{at}.{name}"), problems);
            }
        }
        (Some("array"), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                conforms(theirs, &schema["items"], v, &format!("{at}[{i}]"), problems);
            }
        }
        (Some("string"), Value::String(s)) => match schema.get("format").and_then(Value::as_str) {
            Some("uuid") if uuid::Uuid::parse_str(s).is_err() => {
                problems.push(format!("{at}: {s:?} is not a UUID"));
            }
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
                problems.push(format!("{at}: {s:?} is not a date-time"));
            }
            _ => {}
        },
        (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        (Some("number"), Value::Number(_)) | (Some("boolean"), Value::Bool(_)) => {}
        (kind, v) => problems.push(format!("{at}: {v} is not of type {kind:?}")),
    }
}

#[tokio::test]
async fn the_simulators_template_answers_are_coders() {
    let Some(theirs) = reference() else { return };
    // The check itself sees a wrong answer: an invented field, a bad UUID, a wrong type, an
    // unknown enum value.
    let mut seen = Vec::new();
    conforms(
        &theirs,
        &json!({"$ref": "#/definitions/codersdk.TemplateVersion"}),
        &json!({"id": "v2", "bogus": 1, "archived": "no", "job": {"status": "done"}}),
        "probe",
        &mut seen,
    );
    assert_eq!(seen.len(), 4, "{seen:?}");
    let sim = sim(1.0).await;
    let http = reqwest::Client::new();
    let template = |name: &str| {
        let http = http.clone();
        let url = format!(
            "{}/api/v2/organizations/coder/templates/{name}",
            sim.coder_url()
        );
        async move {
            let t: Value = http
                .get(url)
                .header("Coder-Session-Token", fleet::sim::CODER_SESSION_TOKEN)
                .send()
                .await
                .expect("an answer")
                .json()
                .await
                .expect("JSON");
            t["id"].as_str().expect("an id").to_string()
        }
    };
    let shop = template("shop").await;
    let docker = template("docker-dev").await;
    let v2 = sim.coder_version_id("shop", "v2").unwrap().to_string();
    let archived = sim
        .coder_version_id("docker-dev", "v0-archived")
        .unwrap()
        .to_string();
    let other = sim
        .coder_version_id("docker-dev", "v1")
        .unwrap()
        .to_string();
    let org = "51330000-0000-4000-8000-000000000001";
    let version_paths = "/api/v2/templates/{template}/versions";
    // (method, the description's path, the path sent, body, the status expected)
    let calls: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        (
            "get",
            "/api/v2/templates",
            "/api/v2/templates".into(),
            None,
            200,
        ),
        (
            "get",
            "/api/v2/templates/{template}",
            format!("/api/v2/templates/{shop}"),
            None,
            200,
        ),
        (
            "get",
            "/api/v2/organizations/{organization}/templates/{templatename}",
            format!("/api/v2/organizations/{org}/templates/shop"),
            None,
            200,
        ),
        (
            "get",
            "/api/v2/organizations/{organization}/templates/{templatename}",
            "/api/v2/organizations/coder/templates/nope".into(),
            None,
            404,
        ),
        (
            "get",
            version_paths,
            format!("/api/v2/templates/{docker}/versions?include_archived=true&limit=10"),
            None,
            200,
        ),
        (
            "get",
            "/api/v2/templates/{template}/versions/{templateversionname}",
            format!("/api/v2/templates/{shop}/versions/v3-start-error"),
            None,
            200,
        ),
        (
            "get",
            "/api/v2/organizations/{organization}/templates/{templatename}/versions/{templateversionname}/previous",
            format!("/api/v2/organizations/{org}/templates/shop/versions/v2/previous"),
            None,
            200,
        ),
        (
            "get",
            "/api/v2/organizations/{organization}/templates/{templatename}/versions/{templateversionname}/previous",
            "/api/v2/organizations/coder/templates/shop/versions/v1/previous".into(),
            None,
            204,
        ),
        (
            "patch",
            version_paths,
            format!("/api/v2/templates/{shop}/versions"),
            Some(json!({ "id": other })),
            400,
        ),
        (
            "patch",
            version_paths,
            format!("/api/v2/templates/{docker}/versions"),
            Some(json!({ "id": archived })),
            400,
        ),
        (
            "patch",
            version_paths,
            format!("/api/v2/templates/{shop}/versions"),
            Some(json!({})),
            400,
        ),
        (
            "patch",
            version_paths,
            format!("/api/v2/templates/{shop}/versions"),
            Some(json!({ "id": v2 })),
            200,
        ),
    ];
    let mut problems = Vec::new();
    for (method, described, path, body, expected) in calls {
        let op = &theirs["paths"][described][method];
        let at = format!("{} {path}", method.to_uppercase());
        if op.is_null() {
            problems.push(format!("{at}: {described} is not in Coder's description"));
            continue;
        }
        let mut req = http
            .request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{path}", sim.coder_url()),
            )
            .header("Coder-Session-Token", fleet::sim::CODER_SESSION_TOKEN);
        if let Some(b) = &body {
            // The request body is the described one.
            let described_body = op["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["in"] == "body"))
                .map(|p| p["schema"].clone())
                .unwrap_or(Value::Null);
            conforms(
                &theirs,
                &described_body,
                b,
                &format!("{at} body"),
                &mut problems,
            );
            req = req.json(b);
        }
        let resp = req.send().await.expect("an answer");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        if status != expected {
            problems.push(format!("{at}: {status}, expected {expected}: {text}"));
            continue;
        }
        if status >= 400 {
            let err: Value = serde_json::from_str(&text).expect("a JSON error");
            assert!(err["message"].is_string(), "{at}: {err}");
            conforms(
                &theirs,
                &json!({"$ref": "#/definitions/codersdk.Response"}),
                &err,
                &at,
                &mut problems,
            );
            continue;
        }
        let Some(described) = op["responses"][status.to_string()].as_object() else {
            problems.push(format!("{at}: Coder's description lists no {status}"));
            continue;
        };
        match described.get("schema") {
            None => assert!(text.is_empty(), "{at}: {status} without a body: {text}"),
            Some(schema) => {
                let value: Value = serde_json::from_str(&text).expect("JSON");
                // The one known difference (reference/README.md): a version by name is one
                // object where the description says an array of them.
                let value = if described_is_array(schema) && value.is_object() {
                    assert!(path.contains("/versions/"), "{at}: an object: {value}");
                    json!([value])
                } else {
                    value
                };
                conforms(&theirs, schema, &value, &at, &mut problems);
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the simulator disagrees with Coder's description:\n{}",
        problems.join("\n")
    );
}

fn described_is_array(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("array")
}
