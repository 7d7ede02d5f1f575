//! `fleet coder promote` and `fleet coder rollback` through the built binary, against the
//! simulator's web fleet (carol/web-01 … 08, template `web`, active v1; v2 good, v3-start-error
//! breaks every agent once started).
//!
//! A recording front on loopback stands between fleet and the simulator: it keeps every
//! request in order (method and path), so a test checks the ORDER of what was sent, and it
//! answers `PATCH /api/v2/templates/{id}/versions` as Coder does (making the version active in
//! the simulator) or with Coder's 403; every other request goes to the simulator as it is.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, response::IntoResponse};
use fleet::sim::RunningSim;
use serde_json::{Value, json};

use crate::support::cli::{POLL_INTERVAL_MS, Run};
use crate::support::sim::sim;

/// How the front answers the PATCH that makes a version active.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Patch {
    /// As Coder does: 200, and the version is the template's active one from then on.
    Allow,
    /// Coder's answer to a session without template-admin permission.
    Forbid,
}

struct FrontState {
    sim: Arc<RunningSim>,
    patch: Patch,
    log: Mutex<Vec<(String, String)>>,
    http: reqwest::Client,
}

struct Front {
    url: String,
    state: Arc<FrontState>,
}

impl Front {
    /// Every request so far, in order, as `METHOD /path`.
    fn log(&self) -> Vec<String> {
        self.state
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }

    fn clear(&self) {
        self.state.log.lock().unwrap().clear();
    }

    fn env(&self) -> Vec<(String, String)> {
        self.state
            .sim
            .env_vars()
            .into_iter()
            .map(|(k, v)| {
                let v = if k == "CODER_URL" {
                    self.url.clone()
                } else {
                    v
                };
                (k.to_string(), v)
            })
            .collect()
    }
}

async fn answer(
    State(state): State<Arc<FrontState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    state
        .log
        .lock()
        .unwrap()
        .push((method.to_string(), path.clone()));
    let is_patch = method == axum::http::Method::PATCH
        && path.starts_with("/api/v2/templates/")
        && path.ends_with("/versions");
    if is_patch {
        return match state.patch {
            Patch::Forbid => (
                axum::http::StatusCode::FORBIDDEN,
                axum::Json(json!({"message": "Forbidden.", "detail": "You do not have permission to update this template."})),
            )
                .into_response(),
            Patch::Allow => {
                let id: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let id = id["id"].as_str().unwrap_or_default().to_string();
                let name = ["v1", "v2", "v3-start-error"]
                    .into_iter()
                    .find(|n| state.sim.coder_version_id("web", n).map(|v| v.to_string()) == Some(id.clone()));
                match name {
                    Some(n) if state.sim.set_coder_active_version("web", n) => {
                        axum::Json(json!({"message": "Updated the active template version!"}))
                            .into_response()
                    }
                    _ => (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"message": "Invalid template version."})),
                    )
                        .into_response(),
                }
            }
        };
    }
    // A WebSocket (build logs, watch-ws) is not carried: fleet falls back to polling.
    if headers.contains_key("upgrade") {
        return (axum::http::StatusCode::NOT_FOUND, "no WebSocket here").into_response();
    }
    let url = format!(
        "{}{}",
        state.sim.coder_url(),
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut request = state.http.request(method, url).body(body);
    for name in ["coder-session-token", "content-type", "accept"] {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v);
        }
    }
    match request.send().await {
        Ok(r) => {
            let status = r.status();
            let content_type = r.headers().get("content-type").cloned();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            if let Some(ct) = content_type {
                response.headers_mut().insert("content-type", ct);
            }
            response
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn front(sim: Arc<RunningSim>, patch: Patch) -> Front {
    let state = Arc::new(FrontState {
        sim,
        patch,
        log: Mutex::new(Vec::new()),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Front { url, state }
}

fn fleet_cmd(front: &Front, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleet"));
    cmd.args(args)
        .env_clear()
        .envs(front.env())
        .env("FLEET_POLL_INTERVAL_MS", POLL_INTERVAL_MS)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

async fn fleet(front: &Front, args: &[&str]) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(120), fleet_cmd(front, args).output())
        .await
        .expect("fleet ends within 120 s")
        .expect("fleet runs");
    Run::from_output(&out)
}

fn web(n: usize) -> String {
    format!("carol/web-{n:02}")
}

fn history(sim: &RunningSim, n: usize) -> Vec<(String, String)> {
    sim.coder_build_history(&web(n))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `POST /api/v2/workspaces/{id}/builds` of a web workspace.
fn build_post(sim: &RunningSim, n: usize) -> String {
    format!(
        "POST /api/v2/workspaces/{}/builds",
        sim.coder_workspace_id(&web(n)).expect("seeded")
    )
}

fn position(log: &[String], what: &str) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(what))
        .map(|(i, _)| i)
        .collect()
}

fn state_changing(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|l| !l.starts_with("GET "))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_goes_to_the_canary_first_is_promoted_only_then_and_rolls_back_after() {
    let sim = Arc::new(sim(100.0).await);
    let front = front(sim.clone(), Patch::Allow).await;
    let run = fleet(
        &front,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v2",
            "--parallel",
            "4",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.show());
    let report = run.json();
    assert_eq!(report["outcome"], "promoted", "{report}");
    assert_eq!(report["promoted"], true);
    assert_eq!(report["plan"]["canaries"][0]["workspace"], web(1));
    assert_eq!(report["plan"]["canary_choice"]["kind"], "chosen");
    assert_eq!(report["canary"]["results"][0]["verdict"], "updated");
    assert_eq!(report["rollout"]["total"], 7);
    assert_eq!(report["rollout"]["succeeded"], 7);
    // Per workspace, the version it came from.
    let moved = report["moved"].as_array().expect("moved");
    assert_eq!(moved.len(), 8);
    assert!(moved.iter().all(|m| m["from"]["name"] == "v1"), "{report}");
    assert_eq!(
        report["rollback_commands"],
        json!(["fleet coder rollback --to-version v1 -- web"])
    );

    // The order: the canary's builds, then (its agents healthy) the PATCH, then the others.
    let log = front.log();
    let patch = position(&log, "PATCH /api/v2/templates/");
    assert_eq!(patch.len(), 1, "one PATCH: {log:#?}");
    let canary_posts = position(&log, &build_post(&sim, 1));
    assert!(
        !canary_posts.is_empty() && canary_posts.iter().all(|i| *i < patch[0]),
        "{log:#?}"
    );
    // The canary's readiness was read after its start and before the PATCH.
    let canary_id = sim.coder_workspace_id(&web(1)).unwrap();
    let reads = position(&log, &format!("GET /api/v2/workspaces/{canary_id}"));
    assert!(
        reads
            .iter()
            .any(|i| *i > *canary_posts.last().unwrap() && *i < patch[0]),
        "{log:#?}"
    );
    for n in 2..=8 {
        let posts = position(&log, &build_post(&sim, n));
        assert!(!posts.is_empty(), "{} updated: {log:#?}", web(n));
        assert!(
            posts.iter().all(|i| *i > patch[0]),
            "{} after the PATCH: {log:#?}",
            web(n)
        );
        assert_eq!(history(&sim, n).last().unwrap().1, "v2");
    }

    // Rollback: the template's previous version is made active first, then the workspaces.
    front.clear();
    let run = fleet(&front, &["coder", "rollback", "web", "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.show());
    let back = run.json();
    assert_eq!(back["to"]["name"], "v1", "{back}");
    assert_eq!(back["restored_active"], true);
    assert_eq!(back["rollout"]["succeeded"], 8, "{back}");
    let log = front.log();
    let patch = position(&log, "PATCH ");
    let posts = position(&log, "POST ");
    assert_eq!(patch.len(), 1, "{log:#?}");
    assert!(posts.iter().all(|p| *p > patch[0]), "{log:#?}");
    for n in 1..=8 {
        assert_eq!(
            history(&sim, n).last().unwrap(),
            &("start".into(), "v1".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_fails_readiness_is_rolled_back_nothing_promoted_nobody_else_touched() {
    let sim = Arc::new(sim(100.0).await);
    let front = front(sim.clone(), Patch::Allow).await;
    let run = fleet(
        &front,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v3-start-error",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.show());
    let report = run.json();
    assert_eq!(report["outcome"], "canary_failed", "{report}");
    assert_eq!(report["promoted"], false);
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("start_error") && message.contains("rolled back: carol/web-01 (to v1)"),
        "the agent's error and what was rolled back: {message}"
    );
    assert_eq!(report["moved"][0]["rolled_back"], true);
    assert_eq!(report["rollback_commands"], json!([]));
    let log = front.log();
    assert!(position(&log, "PATCH ").is_empty(), "no PATCH: {log:#?}");
    assert_eq!(
        history(&sim, 1),
        pairs(&[
            ("start", "v1"),
            ("stop", "v1"),
            ("start", "v3-start-error"),
            ("stop", "v3-start-error"),
            ("start", "v1"),
        ])
    );
    for n in 2..=8 {
        assert_eq!(history(&sim, n), pairs(&[("start", "v1")]), "{}", web(n));
    }

    // --no-rollback leaves the canary as it is, and prints how to take it back.
    let run = fleet(
        &front,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v3-start-error",
            "--no-rollback",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.show());
    assert!(
        run.stdout
            .contains("fleet coder rollback --to-version v1 --workspaces carol/web-01 -- web"),
        "{}",
        run.show()
    );
    assert_eq!(history(&sim, 1).last().unwrap().1, "v3-start-error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_on_the_promotion_leaves_the_canary_on_the_new_version_and_says_how_to_go_back() {
    let sim = Arc::new(sim(100.0).await);
    let front = front(sim.clone(), Patch::Forbid).await;
    let run = fleet(&front, &["coder", "promote", "web", "--version", "v2"]).await;
    assert_eq!(run.code, 1, "{}", run.show());
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("template-admin permission"), "{text}");
    assert!(
        text.contains("carol/web-01 (from v1) left on the new version"),
        "{text}"
    );
    let command = "fleet coder rollback --to-version v1 --workspaces carol/web-01 -- web";
    assert!(run.stdout.contains(command), "{}", run.show());
    assert_eq!(history(&sim, 1).last().unwrap().1, "v2");
    for n in 2..=8 {
        assert_eq!(history(&sim, n), pairs(&[("start", "v1")]), "{}", web(n));
    }

    // The printed command takes the canary back; the template was never changed, so no PATCH.
    front.clear();
    let words: Vec<&str> = command.split(' ').skip(1).collect();
    let run = fleet(&front, &words).await;
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(
        position(&front.log(), "PATCH ").is_empty(),
        "{:#?}",
        front.log()
    );
    assert_eq!(
        history(&sim, 1).last().unwrap(),
        &("start".into(), "v1".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_the_plan_and_sends_no_state_changing_request() {
    let sim = Arc::new(sim(100.0).await);
    let front = front(sim.clone(), Patch::Allow).await;
    let run = fleet(
        &front,
        &[
            "coder",
            "promote",
            "web",
            "--version",
            "v2",
            "--canary",
            "2",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(
        run.stdout.contains("1. canaries (chosen")
            && run
                .stdout
                .contains("carol/web-01 (on v1), carol/web-02 (on v1)")
            && run
                .stdout
                .contains("2. promotion: v2 becomes the active version")
            && run.stdout.contains("3. rollout: 6 workspace(s)"),
        "{}",
        run.show()
    );
    assert!(
        state_changing(&front.log()).is_empty(),
        "{:#?}",
        front.log()
    );

    // A version that does not exist: exit 2, reads only.
    front.clear();
    let run = fleet(&front, &["coder", "promote", "web", "--version", "v9"]).await;
    assert_eq!(run.code, 2, "{}", run.show());
    assert!(
        run.stderr.contains("no version named \"v9\""),
        "{}",
        run.show()
    );
    assert!(
        state_changing(&front.log()).is_empty(),
        "{:#?}",
        front.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_before_the_promotion_never_promotes() {
    // Slow enough that the canary is still under way when Ctrl-C comes.
    let sim = Arc::new(sim(4.0).await);
    let front = front(sim.clone(), Patch::Allow).await;
    let child = fleet_cmd(&front, &["coder", "promote", "web", "--version", "v2"])
        .spawn()
        .expect("fleet starts");
    let pid = child.id().expect("pid");
    let canary_post = build_post(&sim, 1);
    let began = std::time::Instant::now();
    while !front.log().iter().any(|l| *l == canary_post) {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the canary began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("fleet ends")
        .expect("fleet runs");
    let run = Run::from_output(&out);
    assert_eq!(run.code, 130, "{}", run.show());
    assert!(run.stderr.contains("Interrupt received"), "{}", run.show());
    assert!(
        run.stdout.contains("interrupted before the promotion"),
        "{}",
        run.show()
    );
    assert!(
        position(&front.log(), "PATCH ").is_empty(),
        "{:#?}",
        front.log()
    );
    for n in 2..=8 {
        assert_eq!(history(&sim, n), pairs(&[("start", "v1")]), "{}", web(n));
    }
}
