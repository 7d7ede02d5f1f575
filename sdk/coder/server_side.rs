//! Server-side restart (Coder ≥ 2.36): one stop build carrying `on_success`, after which the
//! server creates the start build itself, so no client can leave the workspace stopped by
//! going away.
//!
//! The rules (`../shared/reference/README.md`):
//! - the parent build is a `stop`, without `dry_run`, `orphan` or `state` (else 400);
//! - without `template_version_id` the child build uses the template's active version at the
//!   time it runs; pinning one needs template-update permission (else 403 "Unauthorized to
//!   queue follow-up workspace build.", and nothing was created);
//! - parameters not listed fall back to the previous build's values;
//! - a child refused at creation is never created (the workspace stays stopped);
//! - the child's build number is not always the parent's + 1: it is found as the workspace's
//!   next latest build.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{CoderClient, WorkspaceTransition, types};
use crate::{Error, Result};

/// A build request with only its transition set; fill in the rest with struct update syntax
/// (`CreateWorkspaceBuildRequest { template_version_id: …, ..build_request(Start) }`).
pub fn build_request(transition: WorkspaceTransition) -> types::CreateWorkspaceBuildRequest {
    types::CreateWorkspaceBuildRequest {
        dry_run: None,
        log_level: None,
        on_success: None,
        orphan: None,
        reason: None,
        rich_parameter_values: vec![],
        state: vec![],
        template_version_id: None,
        template_version_preset_id: None,
        transition,
    }
}

/// The start build the server is asked to create after the stop (`on_success`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ServerSideStart {
    /// The version to pin, or `None` for the template's active version at the time the child
    /// build runs. Pinning needs template-update permission.
    pub template_version_id: Option<Uuid>,
    /// Why the version is pinned or left out, in a sentence a person reads.
    pub version_reason: String,
    /// The parameter values the child build gets (unlisted ones keep the previous build's).
    #[schemars(with = "Vec<(String, String)>")]
    #[serde(serialize_with = "serialize_params")]
    pub rich_parameter_values: Vec<types::WorkspaceBuildParameter>,
}

fn serialize_params<S: serde::Serializer>(
    params: &[types::WorkspaceBuildParameter],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(params.len()))?;
    for p in params {
        seq.serialize_element(&(
            p.name.as_deref().unwrap_or(""),
            p.value.as_deref().unwrap_or(""),
        ))?;
    }
    seq.end()
}

impl ServerSideStart {
    /// The stop build carrying this start as `on_success` (nothing else set: `dry_run`,
    /// `orphan` and `state` would be refused).
    pub fn stop_request(&self) -> types::CreateWorkspaceBuildRequest {
        types::CreateWorkspaceBuildRequest {
            on_success: Some(types::CreateWorkspaceBuildOnSuccessRequest {
                transition: WorkspaceTransition::Start,
                template_version_id: self.template_version_id,
                template_version_preset_id: None,
                rich_parameter_values: self.rich_parameter_values.clone(),
            }),
            ..build_request(WorkspaceTransition::Stop)
        }
    }
}

/// What came of asking for a server-side restart.
#[derive(Debug, Clone)]
pub enum ServerSideStop {
    /// The stop build was created; the server creates the start after it succeeds.
    Created(Box<types::WorkspaceBuild>),
    /// The server refused to pin the version (403: the session lacks template-update
    /// permission). Nothing was created: fall back to the client-driven sequence and say so.
    PinRefused {
        /// The server's words.
        message: String,
    },
}

/// Where the search for the follow-up start build ended.
#[derive(Debug, Clone)]
pub enum FollowUp {
    /// The start build the server created (read its `template_version_id` for the version it
    /// really used).
    Found(Box<types::WorkspaceBuild>),
    /// None appeared within the bound after the stop succeeded (a child refused at creation is
    /// never created): the workspace is left stopped. Start it yourself and say why.
    NotCreated {
        /// How long fleet looked.
        waited: Duration,
        /// The workspace's latest build at the end (the parent, normally).
        latest: Option<Box<types::WorkspaceBuild>>,
    },
    /// Another build that is not the follow-up became the latest one (someone else acted).
    Superseded(Box<types::WorkspaceBuild>),
    /// The caller cancelled while fleet was looking.
    Cancelled,
}

/// True when `candidate` can be the start build the server created after `parent`: another
/// build, a `start`, with a higher build number (not necessarily + 1) and created no earlier.
pub fn is_follow_up_of(parent: &types::WorkspaceBuild, candidate: &types::WorkspaceBuild) -> bool {
    let other = match (parent.id, candidate.id) {
        (Some(p), Some(c)) => p != c,
        _ => false,
    };
    let later_number = match (parent.build_number, candidate.build_number) {
        (Some(p), Some(c)) => c > p,
        _ => true,
    };
    let not_earlier = match (parent.created_at, candidate.created_at) {
        (Some(p), Some(c)) => c >= p,
        _ => true,
    };
    other && later_number && not_earlier && candidate.transition == Some(WorkspaceTransition::Start)
}

impl CoderClient {
    /// Creates the stop build of `workspace_id` carrying `start` as `on_success` (one POST,
    /// never retried). Only for a server whose [`super::ServerFeatures::on_success`] is true:
    /// an older one accepts the field and only stops.
    ///
    /// A 403 while a version is pinned is [`ServerSideStop::PinRefused`]; every other refusal
    /// (409 a build is active, 400, …) is the usual [`Error`].
    pub async fn create_server_side_stop(
        &self,
        workspace_id: &Uuid,
        start: &ServerSideStart,
    ) -> Result<ServerSideStop> {
        let body = start.stop_request();
        match self.api().create_workspace_build(workspace_id, &body).await {
            Ok(b) => Ok(ServerSideStop::Created(Box::new(b.into_inner()))),
            Err(e) => match self.error(
                format!("creating the stop build (with on_success) of workspace {workspace_id}"),
                e,
            ) {
                Error::Unauthorized {
                    status: 403,
                    message,
                } if start.template_version_id.is_some() => {
                    Ok(ServerSideStop::PinRefused { message })
                }
                other => Err(other),
            },
        }
    }

    /// Looks for the start build the server creates after `parent` (a stop with
    /// `on_success` that has succeeded): reads the workspace every `interval` until its latest
    /// build [`is_follow_up_of`] the parent, for at most `bound`. The first read is immediate.
    pub async fn find_follow_up_build(
        &self,
        workspace_id: &Uuid,
        parent: &types::WorkspaceBuild,
        bound: Duration,
        interval: Duration,
        cancel: &CancellationToken,
    ) -> Result<FollowUp> {
        let started = Instant::now();
        loop {
            let ws = self.read_workspace(workspace_id).await?;
            let latest = ws.latest_build;
            if let Some(b) = &latest {
                if is_follow_up_of(parent, b) {
                    return Ok(FollowUp::Found(Box::new(b.clone())));
                }
                if b.id.is_some() && b.id != parent.id {
                    return Ok(FollowUp::Superseded(Box::new(b.clone())));
                }
            }
            let waited = started.elapsed();
            if waited >= bound {
                return Ok(FollowUp::NotCreated {
                    waited,
                    latest: latest.map(Box::new),
                });
            }
            let pause = interval.max(Duration::from_millis(5)).min(bound - waited);
            tokio::select! {
                _ = cancel.cancelled() => return Ok(FollowUp::Cancelled),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
