//! Contract check of the build requests fleet sends, against Stoplight Prism serving Coder's
//! own API description. Run by tests/contract/prism-coder.sh (which starts Prism and sets
//! CODER_URL); ignored in a plain `cargo test`, which has no Prism.
//!
//! Prism answers random data, so fleet's pre-flight (rightly) refuses the CLI's updates there:
//! a random template version never belongs to the random workspace's template. Here the plan
//! is made from Prism's answers directly and carried out by the real `run_plan`, so that the
//! stop and start requests fleet builds reach Prism's validator.

use std::time::Duration;

use fleet::{
    CoderConfig, HttpOptions, Secret,
    coder::{
        CoderClient, CoderEvent, ParameterSource, PollOptions, ResolvedParameter, Step,
        UpdateOptions, UpdatePlan, WorkspaceRef, WorkspaceStatus,
    },
};
use tokio_util::sync::CancellationToken;

#[tokio::test]
#[ignore = "needs Prism: run by tests/contract/prism-coder.sh"]
async fn the_build_requests_fleet_sends_pass_prism() {
    let url = std::env::var("CODER_URL").expect("CODER_URL points at Prism");
    let client = CoderClient::new(&CoderConfig {
        url: Some(url),
        session_token: Some(Secret::new("prism-contract-token")),
        http: HttpOptions {
            request_timeout: Duration::from_secs(5),
            ..HttpOptions::default()
        },
    })
    .expect("configured");
    let options = UpdateOptions {
        force: true,
        stop_timeout: Duration::from_secs(2),
        start_timeout: Duration::from_secs(2),
        poll: PollOptions {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            near_end: Duration::from_millis(5),
            ..PollOptions::default()
        },
        ..UpdateOptions::default()
    };
    let workspace = WorkspaceRef::parse("alice/dev").expect("a reference");
    let mut ended = Vec::new();
    let mut starts_sent = 0;
    for i in 0..12 {
        let mut ws = client
            .resolve_workspace(&workspace)
            .await
            .expect("Prism's workspace parses");
        if i % 2 == 0 {
            // Half the plans start a stopped workspace, so that start requests (version and
            // parameter values) are sent whatever Prism's random stop builds do.
            if let Some(b) = ws.latest_build.as_mut() {
                b.status = Some(WorkspaceStatus::Stopped);
            }
        }
        let target = ws
            .template_active_version_id
            .unwrap_or_else(uuid::Uuid::new_v4);
        let version = client
            .api()
            .get_template_version_by_id(&target)
            .await
            .expect("Prism's template version parses")
            .into_inner();
        let plan = UpdatePlan {
            target_version_id: target,
            target_version: (&version).into(),
            target_is_active_version: true,
            restart: false,
            parameters: vec![ResolvedParameter {
                name: "region".into(),
                value: "eu-west".into(),
                source: ParameterSource::Given,
                previous_value: None,
            }],
            path: fleet::coder::RunPath::ClientDriven,
            path_reason: "the contract test walks the client-driven builds".into(),
            server_side_start: None,
            expected_stop: None,
            expected_start: None,
            workspace: ws,
        };
        let op = client.start_run_plan(plan, options.clone());
        let result = crate::support::handle::drive(&op, &CancellationToken::new(), |e| {
            if let CoderEvent::BuildCreated {
                step: Step::Start, ..
            } = e
            {
                starts_sent += 1;
            }
        })
        .await;
        // Random answers walk random paths; what matters is that no answer failed to parse and
        // Prism accepted every request (the script reads its log).
        if let Err(e) = &result {
            assert!(
                !e.to_string().contains("could not be read"),
                "a Prism answer did not parse: {e}"
            );
        }
        ended.push(
            result
                .map(|o| format!("{:?}", o.action))
                .unwrap_or_else(|e| e.kind().to_string()),
        );
    }
    eprintln!("run_plan against Prism ended: {ended:?}");
    assert!(starts_sent >= 1, "no start build was sent: {ended:?}");
}

#[tokio::test]
#[ignore = "needs Prism: run by tests/contract/prism-coder.sh"]
async fn the_server_side_restart_requests_pass_prism() {
    use fleet::coder::{ServerSideStart, ServerSideStop, types::WorkspaceBuildParameter};
    let url = std::env::var("CODER_URL").expect("CODER_URL points at Prism");
    let client = CoderClient::new(&CoderConfig {
        url: Some(url),
        session_token: Some(Secret::new("prism-contract-token")),
        http: HttpOptions {
            request_timeout: Duration::from_secs(5),
            ..HttpOptions::default()
        },
    })
    .expect("configured");
    let features = client
        .server_features()
        .await
        .expect("Prism's buildinfo parses");
    eprintln!("buildinfo: {features:?}");
    let ws = uuid::Uuid::new_v4();
    let mut created = 0;
    for pin in [None, Some(uuid::Uuid::new_v4())] {
        let start = ServerSideStart {
            template_version_id: pin,
            version_reason: String::new(),
            rich_parameter_values: vec![WorkspaceBuildParameter {
                name: Some("region".into()),
                value: Some("eu-west".into()),
            }],
        };
        match client.create_server_side_stop(&ws, &start).await {
            Ok(ServerSideStop::Created(parent)) => {
                created += 1;
                // Prism's random workspace is no follow-up: this only checks the reads.
                let found = client
                    .find_follow_up_build(
                        &ws,
                        &parent,
                        Duration::from_millis(30),
                        Duration::from_millis(10),
                        &CancellationToken::new(),
                    )
                    .await;
                assert!(found.is_ok(), "{found:?}");
            }
            other => panic!("Prism refused the stop with on_success: {other:?}"),
        }
    }
    assert_eq!(created, 2);
}
