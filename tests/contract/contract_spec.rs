//! openapi/coder.yaml agrees with Coder's own API description
//! (../shared/reference/coder-swagger-subset-2026-08.json): every operation, parameter, schema
//! and field fleet describes exists there under the same name, with the same type, format,
//! enum and reference. fleet may describe less (a subset), never something else.

use std::path::Path;

use serde_json::Value;

const REFERENCE: &str = "../shared/reference/coder-swagger-subset-2026-08.json";

/// Schemas of ours that are inline upstream: (our name, where upstream has it: a definition's
/// field, or `GET PATH CODE` for an operation's response body).
const INLINE_UPSTREAM: &[(&str, &str)] = &[
    (
        "TemplateVersionParameterType",
        "codersdk.TemplateVersionParameter.type",
    ),
    (
        "TemplateVersionsByName",
        "GET /api/v2/templates/{template}/versions/{templateversionname} 200",
    ),
];

struct Specs {
    ours: Value,
    theirs: Value,
}

fn load() -> Option<Specs> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference = root.join(REFERENCE);
    if !reference.exists() {
        eprintln!(
            "skipped: {} is not beside the repository",
            reference.display()
        );
        return None;
    }
    let ours: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(root.join("openapi/coder.yaml")).unwrap())
            .expect("coder.yaml parses");
    Some(Specs {
        ours: serde_json::to_value(ours).expect("YAML as JSON"),
        theirs: serde_json::from_str(&std::fs::read_to_string(reference).unwrap())
            .expect("the reference parses"),
    })
}

/// The schema name a `$ref` (direct or in `allOf`) points at, without prefixes.
fn ref_name(schema: &Value) -> Option<String> {
    let r = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(|a| a.as_array())
            .and_then(|a| a.iter().find_map(|s| s.get("$ref")))
    })?;
    let r = r.as_str()?;
    let name = r.rsplit('/').next()?;
    Some(
        name.trim_start_matches("codersdk.")
            .trim_start_matches("uuid.")
            .to_string(),
    )
}

fn our_schema<'a>(s: &'a Specs, name: &str) -> &'a Value {
    &s.ours["components"]["schemas"][name]
}

fn their_schema<'a>(s: &'a Specs, name: &str) -> &'a Value {
    // Coder's `uuid.NullUUID` is the one schema outside `codersdk`.
    if name == "NullUUID" {
        return &s.theirs["definitions"]["uuid.NullUUID"];
    }
    &s.theirs["definitions"][format!("codersdk.{name}")]
}

/// Compares one schema of ours with theirs at `at`, pushing every disagreement.
fn compare(s: &Specs, at: &str, ours: &Value, theirs: &Value, problems: &mut Vec<String>) {
    if theirs.is_null() {
        problems.push(format!("{at}: not in Coder's description"));
        return;
    }
    match (ref_name(ours), ref_name(theirs)) {
        (Some(a), Some(b)) if a != b => {
            problems.push(format!("{at}: refers to {a}, Coder's to {b}"));
            return;
        }
        (Some(_), Some(_)) => return, // the named schemas are compared on their own
        (Some(a), None) => {
            // Ours is named, theirs inline: the inline one must be what ours says.
            let named = our_schema(s, &a);
            if !INLINE_UPSTREAM.iter().any(|(n, _)| *n == a) {
                problems.push(format!(
                    "{at}: refers to {a}, inline in Coder's description"
                ));
            }
            compare(s, at, named, theirs, problems);
            return;
        }
        (None, Some(b)) => {
            problems.push(format!("{at}: inline, Coder's refers to {b}"));
            return;
        }
        (None, None) => {}
    }
    for key in ["type", "format", "enum"] {
        if ours.get(key) != theirs.get(key) {
            problems.push(format!(
                "{at}: {key} {} here, {} in Coder's description",
                ours.get(key).unwrap_or(&Value::Null),
                theirs.get(key).unwrap_or(&Value::Null)
            ));
        }
    }
    if let Some(items) = ours.get("items") {
        compare(s, &format!("{at}[]"), items, &theirs["items"], problems);
    }
    if let Some(extra) = ours.get("additionalProperties") {
        compare(
            s,
            &format!("{at}{{}}"),
            extra,
            &theirs["additionalProperties"],
            problems,
        );
    }
    if let Some(props) = ours.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            compare(
                s,
                &format!("{at}.{name}"),
                p,
                &theirs["properties"][name],
                problems,
            );
        }
    }
    if let Some(required) = ours.get("required").and_then(Value::as_array) {
        for r in required {
            let listed = theirs["required"].as_array().is_some_and(|t| t.contains(r));
            if !listed {
                problems.push(format!(
                    "{at}: {r} is required here, not in Coder's description"
                ));
            }
        }
    }
}

#[test]
fn every_schema_and_field_is_coders() {
    let Some(s) = load() else { return };
    let mut problems = Vec::new();
    for (name, schema) in s.ours["components"]["schemas"].as_object().unwrap() {
        let theirs = match INLINE_UPSTREAM.iter().find(|(n, _)| n == name) {
            Some((_, path)) => match path.strip_prefix("GET ") {
                Some(op) => {
                    let (path, code) = op.rsplit_once(' ').unwrap();
                    s.theirs["paths"][path]["get"]["responses"][code]["schema"].clone()
                }
                None => {
                    let (def, field) = path.rsplit_once('.').unwrap();
                    s.theirs["definitions"][def]["properties"][field].clone()
                }
            },
            None => their_schema(&s, name).clone(),
        };
        compare(&s, name, schema, &theirs, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "coder.yaml disagrees:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_operation_and_parameter_is_coders() {
    let Some(s) = load() else { return };
    let mut problems = Vec::new();
    let base = s.ours["servers"][0]["url"].as_str().unwrap();
    assert_eq!(base, "/api/v2");
    for (path, item) in s.ours["paths"].as_object().unwrap() {
        let full = format!("{base}{path}");
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{} {full}", method.to_uppercase());
            let theirs = &s.theirs["paths"][&full][method];
            if theirs.is_null() {
                problems.push(format!("{at}: not in Coder's description"));
                continue;
            }
            if op["operationId"] != theirs["operationId"] {
                problems.push(format!(
                    "{at}: operationId {} here, {} in Coder's",
                    op["operationId"], theirs["operationId"]
                ));
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let p = match p.get("$ref").and_then(Value::as_str) {
                    Some(r) => &s.ours["components"]["parameters"][r.rsplit('/').next().unwrap()],
                    None => p,
                };
                let name = p["name"].as_str().unwrap();
                let tp = theirs["parameters"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|t| t["name"] == name && t["in"] == p["in"]));
                let Some(tp) = tp else {
                    problems.push(format!("{at}: parameter {name} is not Coder's"));
                    continue;
                };
                if p.get("required").and_then(Value::as_bool).unwrap_or(false)
                    != tp.get("required").and_then(Value::as_bool).unwrap_or(false)
                {
                    problems.push(format!("{at}: parameter {name}: required differs"));
                }
                for key in ["type", "format", "enum"] {
                    if p["schema"].get(key) != tp.get(key) {
                        problems.push(format!("{at}: parameter {name}: {key} differs"));
                    }
                }
            }
            if let Some(body) = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|o| Value::Object(o.clone()))
            {
                let tb = theirs["parameters"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|t| t["in"] == "body"))
                    .map(|t| t["schema"].clone())
                    .unwrap_or(Value::Null);
                compare(&s, &format!("{at} body"), &body, &tb, &mut problems);
            }
            // Every success Coder lists is ours too, with the same body.
            for (code, resp) in theirs["responses"].as_object().unwrap() {
                let ours = &op["responses"][code]["content"]["application/json"]["schema"];
                if op["responses"][code].is_null() {
                    problems.push(format!("{at}: Coder answers {code}, not described here"));
                } else if !resp["schema"].is_null() {
                    compare(
                        &s,
                        &format!("{at} {code}"),
                        ours,
                        &resp["schema"],
                        &mut problems,
                    );
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "coder.yaml disagrees:\n{}",
        problems.join("\n")
    );
}
