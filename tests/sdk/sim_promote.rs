//! The simulator's template routes for a promotion (issue 26): a template by name, its
//! versions, `PATCH /templates/{id}/versions` and what a promotion changes afterwards. Driven
//! with raw HTTP: these are the answers any client gets, whatever its generated types.

use std::time::{Duration, Instant};

use crate::support::sim::{sim, sim_with};
use fleet::sim::{RunningSim, SimOptions};
use serde_json::{Value, json};

/// The simulator's organization ID (Coder's default organization).
const ORG_ID: &str = "51330000-0000-4000-8000-000000000001";

struct Coder<'a> {
    sim: &'a RunningSim,
    http: reqwest::Client,
}

impl<'a> Coder<'a> {
    fn new(sim: &'a RunningSim) -> Self {
        Coder {
            sim,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.coder_url()))
            .header("Coder-Session-Token", fleet::sim::CODER_SESSION_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the simulator answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON ({e}): {text}"))
        };
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn patch_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let resp = self
            .http
            .patch(format!("{}{path}", self.sim.coder_url()))
            .header("Coder-Session-Token", fleet::sim::CODER_SESSION_TOKEN)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the simulator answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON"))
    }

    async fn promote(&self, template: &str, version: Value) -> (u16, Value) {
        self.send(
            reqwest::Method::PATCH,
            &format!("/api/v2/templates/{template}/versions"),
            Some(json!({ "id": version })),
        )
        .await
    }

    async fn template(&self, name: &str) -> Value {
        let (code, t) = self
            .get(&format!("/api/v2/organizations/coder/templates/{name}"))
            .await;
        assert_eq!(code, 200, "{t}");
        t
    }

    /// The agent of `owner/name`'s latest build, once the build ended and the agent's
    /// lifecycle left `created`/`starting`; with the build.
    async fn settled(&self, owner_and_name: &str, limit: Duration) -> (Value, Value) {
        let (owner, name) = owner_and_name.split_once('/').expect("owner/name");
        let deadline = Instant::now() + limit;
        loop {
            let (code, ws) = self
                .get(&format!("/api/v2/users/{owner}/workspace/{name}"))
                .await;
            assert_eq!(code, 200, "{ws}");
            let build = ws["latest_build"].clone();
            let agent = build["resources"][0]["agents"][0].clone();
            let lifecycle = agent["lifecycle_state"].as_str().unwrap_or("");
            let job = build["job"]["status"].as_str().unwrap_or("");
            if job == "failed"
                || (job == "succeeded" && !matches!(lifecycle, "created" | "starting"))
            {
                return (build, agent);
            }
            assert!(
                Instant::now() < deadline,
                "{owner_and_name} did not settle: {build}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn build(&self, owner_and_name: &str, body: Value) -> Value {
        let id = self.sim.coder_workspace_id(owner_and_name).expect("seeded");
        let (code, b) = self
            .send(
                reqwest::Method::POST,
                &format!("/api/v2/workspaces/{id}/builds"),
                Some(body),
            )
            .await;
        assert_eq!(code, 201, "{b}");
        b
    }
}

fn id_of(sim: &RunningSim, template: &str, version: &str) -> String {
    sim.coder_version_id(template, version)
        .expect("a seeded version")
        .to_string()
}

#[tokio::test]
async fn a_template_by_name_takes_the_organization_by_id_or_name() {
    let sim = sim(1.0).await;
    let c = Coder::new(&sim);
    let shop = c.template("shop").await;
    assert_eq!(shop["name"], "shop");
    assert_eq!(
        shop["active_version_id"],
        json!(id_of(&sim, "shop", "v1")),
        "v1 is published; v2 and v3-start-error are not"
    );
    assert_eq!(shop["organization_name"], "coder");
    let by_id = c
        .get(&format!(
            "/api/v2/templates/{}",
            shop["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_id, (200, shop.clone()), "the same template by ID");
    for org in [ORG_ID, "default", "coder"] {
        let (code, t) = c
            .get(&format!("/api/v2/organizations/{org}/templates/shop"))
            .await;
        assert_eq!((code, &t["id"]), (200, &shop["id"]), "{org}");
    }
    for path in [
        "/api/v2/organizations/acme/templates/shop",
        "/api/v2/organizations/coder/templates/nope",
    ] {
        let (code, err) = c.get(path).await;
        assert_eq!(code, 404, "{path}: {err}");
        assert!(err["message"].is_string(), "{err}");
    }
    // The version before one, by names; 204 for the first.
    let (code, before) = c
        .get("/api/v2/organizations/coder/templates/shop/versions/v2/previous")
        .await;
    assert_eq!((code, &before["name"]), (200, &json!("v1")), "{before}");
    let (code, none) = c
        .get("/api/v2/organizations/coder/templates/shop/versions/v1/previous")
        .await;
    assert_eq!((code, none), (204, Value::Null));
    let (code, _) = c
        .get("/api/v2/organizations/coder/templates/shop/versions/v9/previous")
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn the_versions_show_what_a_promotion_needs() {
    let sim = sim(1.0).await;
    let c = Coder::new(&sim);
    let shop = c.template("shop").await;
    let id = shop["id"].as_str().unwrap();
    let (code, list) = c.get(&format!("/api/v2/templates/{id}/versions")).await;
    assert_eq!(code, 200, "{list}");
    let list = list.as_array().expect("an array").clone();
    let names: Vec<&str> = list.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, ["v1", "v2", "v3-start-error"], "oldest first");
    let mut created = Vec::new();
    for v in &list {
        assert_eq!(v["template_id"], shop["id"], "{v}");
        assert_eq!(v["job"]["status"], "succeeded", "imported: {v}");
        assert_eq!(v["archived"], false, "{v}");
        let at = v["created_at"].as_str().expect("created_at");
        created.push(chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339"));
    }
    assert!(created.windows(2).all(|w| w[0] < w[1]), "{created:?}");
    let (code, v2) = c.get(&format!("/api/v2/templates/{id}/versions/v2")).await;
    assert_eq!((code, &v2["id"]), (200, &json!(id_of(&sim, "shop", "v2"))));
    // The archived and the importing versions of docker-dev, as a promotion's pre-flight sees
    // them.
    let docker = c.template("docker-dev").await;
    let docker = docker["id"].as_str().unwrap();
    let (_, all) = c
        .get(&format!(
            "/api/v2/templates/{docker}/versions?include_archived=true"
        ))
        .await;
    let find = |name: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} listed: {all}"))
    };
    assert_eq!(find("v0-archived")["archived"], true);
    assert_eq!(find("v4-importing")["job"]["status"], "running");
}

#[tokio::test]
async fn a_promotion_is_refused_as_coder_refuses_it_and_changes_nothing() {
    let sim = sim(1.0).await;
    let c = Coder::new(&sim);
    let shop = c.template("shop").await;
    let shop_id = shop["id"].as_str().unwrap().to_string();
    let docker = c.template("docker-dev").await;
    let docker_id = docker["id"].as_str().unwrap().to_string();
    let refusals = [
        (
            shop_id.clone(),
            json!(id_of(&sim, "docker-dev", "v1")),
            400,
            "doesn't belong to the specified template",
        ),
        (
            shop_id.clone(),
            json!("51330000-0000-4000-8000-00000000ffff"),
            404,
            "Template version not found.",
        ),
        (
            docker_id.clone(),
            json!(id_of(&sim, "docker-dev", "v0-archived")),
            400,
            "archived",
        ),
        (
            docker_id.clone(),
            json!(id_of(&sim, "docker-dev", "v4-importing")),
            403,
            "built successfully",
        ),
        (shop_id.clone(), Value::Null, 400, "Validation failed."),
        (shop_id.clone(), json!("v2"), 400, "valid JSON"),
        (
            "51330000-0000-4000-8000-00000000fffe".to_string(),
            json!(id_of(&sim, "shop", "v2")),
            404,
            "not found",
        ),
        (
            "shop".to_string(),
            json!(id_of(&sim, "shop", "v2")),
            400,
            "Invalid UUID",
        ),
    ];
    for (template, version, status, says) in refusals {
        let (code, err) = c.promote(&template, version.clone()).await;
        assert_eq!(code, status, "{template} {version}: {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| m.contains(says)),
            "{template} {version}: {err}"
        );
    }
    let (code, err) = c
        .patch_raw(
            &format!("/api/v2/templates/{shop_id}/versions"),
            "{not json",
        )
        .await;
    assert_eq!(code, 400, "{err}");
    assert_eq!(
        c.template("shop").await["active_version_id"],
        shop["active_version_id"]
    );
    assert_eq!(
        c.template("docker-dev").await["active_version_id"],
        docker["active_version_id"]
    );
    let (_, outdated) = c
        .get("/api/v2/workspaces?q=template:shop%20outdated:true")
        .await;
    assert_eq!(outdated["count"], 0, "nothing changed: {outdated}");
}

#[tokio::test]
async fn a_promotion_makes_the_version_active_for_every_start_that_does_not_pin_one() {
    let sim = sim(500.0).await;
    let c = Coder::new(&sim);
    let before = c.template("shop").await;
    let id = before["id"].as_str().unwrap().to_string();
    let v2 = id_of(&sim, "shop", "v2");

    // The canaries a promotion runs first: pinned builds of the unpublished versions. v2's
    // agent gets ready; v3-start-error's ends start_error (its readiness fails).
    c.build("carol/shop-01", json!({"transition": "stop"}))
        .await;
    c.settled("carol/shop-01", Duration::from_secs(20)).await;
    c.build(
        "carol/shop-01",
        json!({"transition": "start", "template_version_id": v2}),
    )
    .await;
    let (build, agent) = c.settled("carol/shop-01", Duration::from_secs(20)).await;
    assert_eq!(build["template_version_name"], "v2");
    assert_eq!(agent["lifecycle_state"], "ready", "{agent}");
    c.build("carol/shop-04", json!({"transition": "stop"}))
        .await;
    c.settled("carol/shop-04", Duration::from_secs(20)).await;
    c.build(
        "carol/shop-04",
        json!({"transition": "start", "template_version_id": id_of(&sim, "shop", "v3-start-error")}),
    )
    .await;
    let (build, agent) = c.settled("carol/shop-04", Duration::from_secs(20)).await;
    assert_eq!(
        (&build["job"]["status"], &build["status"]),
        (&json!("succeeded"), &json!("running")),
        "the bad version builds fine: {build}"
    );
    assert_eq!(agent["lifecycle_state"], "start_error", "{agent}");
    assert_eq!(
        c.template("shop").await["active_version_id"],
        before["active_version_id"],
        "pinned builds promote nothing"
    );

    let (code, answer) = c.promote(&id, json!(v2)).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["message"], "Updated the active template version!");
    let after = c.template("shop").await;
    assert_eq!(after["active_version_id"], json!(v2));
    assert_ne!(
        after["updated_at"], before["updated_at"],
        "updated_at moves"
    );
    // Promoting the active version again is accepted, as Coder does.
    assert_eq!(c.promote(&id, json!(v2)).await.0, 200);

    // Every workspace not on v2 is outdated now, and says so.
    let (_, outdated) = c
        .get("/api/v2/workspaces?q=template:shop%20outdated:true")
        .await;
    let names: Vec<&str> = outdated["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, ["shop-02", "shop-03", "shop-04"], "{outdated}");

    // A stop whose on_success start pins nothing: the server's start builds the new active
    // version.
    let stop = c
        .build(
            "carol/shop-02",
            json!({"transition": "stop", "on_success": {"transition": "start"}}),
        )
        .await;
    assert_eq!(stop["template_version_name"], "v1");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The simulator creates the follow-up when it is read after the stop ended.
        c.get("/api/v2/users/carol/workspace/shop-02").await;
        let history = sim.coder_build_history("carol/shop-02");
        if history.len() == 3 {
            assert_eq!(history[2], ("start".to_string(), "v2".to_string()));
            break;
        }
        assert!(Instant::now() < deadline, "no follow-up start: {history:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (build, agent) = c.settled("carol/shop-02", Duration::from_secs(20)).await;
    assert_eq!(build["template_version_name"], "v2");
    assert_eq!(agent["lifecycle_state"], "ready");
    // The promotion itself built nothing.
    assert_eq!(
        sim.coder_build_history("carol/shop-03"),
        [("start".to_string(), "v1".to_string())],
        "untouched"
    );
}

#[tokio::test]
async fn without_template_admin_a_promotion_answers_403_and_changes_nothing() {
    let admin = sim(1.0).await;
    let (code, me) = Coder::new(&admin).get("/api/v2/users/me").await;
    assert_eq!(code, 200);
    assert!(
        me["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "template-admin"),
        "{me}"
    );

    let sim = sim_with(SimOptions {
        coder_can_pin_versions: false,
        ..SimOptions::default()
    })
    .await;
    let c = Coder::new(&sim);
    let (_, me) = c.get("/api/v2/users/me").await;
    assert!(
        !me["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "template-admin"),
        "{me}"
    );
    let before = c.template("shop").await;
    let (code, err) = c
        .promote(
            before["id"].as_str().unwrap(),
            json!(id_of(&sim, "shop", "v2")),
        )
        .await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(err["message"], "Forbidden.");
    assert!(
        err["detail"]
            .as_str()
            .is_some_and(|d| d.contains("template")),
        "{err}"
    );
    assert_eq!(c.template("shop").await, before, "nothing changed");
    // The checks before the write still answer first, as Coder's handler does.
    let (code, _) = c
        .promote(
            before["id"].as_str().unwrap(),
            json!(id_of(&sim, "docker-dev", "v2")),
        )
        .await;
    assert_eq!(code, 400);
}
