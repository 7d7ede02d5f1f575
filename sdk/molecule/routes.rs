//! Which CP-admin route layout a control plane serves (`/cp/admin/…` or `/api/v1/admin/…`),
//! found on the safe read: the migration-status GET fleet sends before any start.
//!
//! A 404 whose body is not the control plane's JSON error body (`{"error": …}`) is a router's
//! "no such route", not "never migrated": fleet then tries the other layout's GET and keeps
//! the first layout that answers. A POST only ever goes to the configured layout or to one a
//! GET confirmed.

use progenitor_client::ClientInfo;

use super::{
    MoleculeClient,
    cp_api::{self, types::ErrorBody},
    pick_cp_admin_layout,
};
use crate::{Error, Result, http::REWRITTEN_BODY_HEADER};

/// What the status GET answered, on the layout that answered it.
pub(super) enum StatusAnswer {
    /// The latest migration.
    Status(cp_api::types::MigrationStatus),
    /// The control plane's own 404: the workspace was never migrated. Its words.
    NeverMigrated(String),
    /// The control plane's own 404 saying the workspace does not exist. Its words.
    UnknownWorkspace(String),
}

/// True when the control plane's error words say the workspace itself does not exist
/// ("workspace not found"), as opposed to "no migration" for a workspace that exists: the
/// contract answers 404 for both.
pub(super) fn says_unknown_workspace(error: &str) -> bool {
    let e = error.to_lowercase();
    [
        "workspace not found",
        "unknown workspace",
        "no such workspace",
        "workspace does not exist",
    ]
    .iter()
    .any(|p| e.contains(p))
}

/// True when an error answer is the control plane's own 404 saying the workspace does not
/// exist.
pub(super) fn is_unknown_workspace(e: &progenitor_client::Error<ErrorBody>) -> bool {
    matches!(e, progenitor_client::Error::ErrorResponse(rv)
        if rv.status().as_u16() == 404
            && has_cp_error_body(rv)
            && rv.error.as_deref().is_some_and(says_unknown_workspace))
}

/// What one answer says about the route it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteEvidence {
    /// A 404 without the control plane's error body: no such route.
    NoRoute,
    /// A handler of the control plane answered there (a 2xx, or its JSON error body).
    Served,
    /// Nothing can be told (a transport failure, a proxy's page, a refused credential).
    Unknown,
}

/// True when an error answer carries the control plane's own JSON error body (`{"error": …}`),
/// not a router's or a proxy's page.
pub(super) fn has_cp_error_body(rv: &progenitor_client::ResponseValue<ErrorBody>) -> bool {
    rv.headers().get(REWRITTEN_BODY_HEADER).is_none()
        && rv.error.as_deref().is_some_and(|e| !e.trim().is_empty())
}

fn evidence(e: &progenitor_client::Error<ErrorBody>) -> RouteEvidence {
    use progenitor_client::Error as P;
    match e {
        P::ErrorResponse(rv) => {
            let status = rv.status().as_u16();
            let cp_body = has_cp_error_body(rv);
            if status == 404 && !cp_body {
                RouteEvidence::NoRoute
            } else if cp_body && !matches!(status, 401 | 403) {
                // An auth layer may answer for any path under a prefix: not evidence of a route.
                RouteEvidence::Served
            } else {
                RouteEvidence::Unknown
            }
        }
        // A success status whose body could not be read: a handler answered.
        P::InvalidResponsePayload(..) => RouteEvidence::Served,
        _ => RouteEvidence::Unknown,
    }
}

impl MoleculeClient {
    /// Reads a workspace's latest migration on the layout in use; on the first read (no layout
    /// configured or confirmed yet) it tries `/cp/admin`, then `/api/v1/admin` when the first
    /// has no such route, and keeps the first that answers. Concurrent first reads wait for
    /// one another, so that the layout is found once.
    pub(super) async fn read_status(&self, workspace_id: &str) -> Result<StatusAnswer> {
        if let Some(i) = self.known_route() {
            return self.read_on(&[i], workspace_id).await;
        }
        let _discovering = self.discovering.lock().await;
        if let Some(i) = self.known_route() {
            return self.read_on(&[i], workspace_id).await;
        }
        let all: Vec<usize> = (0..self.routes.len()).collect();
        self.read_on(&all, workspace_id).await
    }

    /// The layout that is settled: configured, or confirmed by a GET.
    fn known_route(&self) -> Option<usize> {
        if self.configured {
            Some(0)
        } else {
            self.confirmed.get().copied()
        }
    }

    /// The URL of the status GET on layout `i`.
    fn status_url(&self, i: usize, workspace_id: &str) -> String {
        format!(
            "{}/workspaces/{}/migrate-provider",
            self.routes[i].client.baseurl(),
            progenitor_client::encode_path(workspace_id)
        )
    }

    async fn read_on(&self, order: &[usize], workspace_id: &str) -> Result<StatusAnswer> {
        let id: cp_api::types::GetMigrationStatusId = workspace_id
            .parse()
            .map_err(|e| Error::InvalidInput(format!("workspace id {workspace_id:?}: {e}")))?;
        let mut no_route: Vec<String> = Vec::new();
        for (n, &i) in order.iter().enumerate() {
            let err = match self.routes[i].client.get_migration_status(&id).await {
                Ok(rv) => {
                    self.confirm(i, &no_route);
                    return Ok(StatusAnswer::Status(rv.into_inner()));
                }
                Err(e) => e,
            };
            match evidence(&err) {
                RouteEvidence::NoRoute => {
                    let url = self.status_url(i, workspace_id);
                    if let Some(&next) = order.get(n + 1) {
                        tracing::info!(
                            "GET {url} answered 404 without the control plane's error body (no \
                             such route); trying the {} layout",
                            self.routes[next].prefix
                        );
                    }
                    no_route.push(url);
                    continue;
                }
                RouteEvidence::Served => self.confirm(i, &no_route),
                RouteEvidence::Unknown => {}
            }
            let unknown = is_unknown_workspace(&err);
            return match self.cp_error(
                format!("reading the migration of workspace {workspace_id}"),
                err,
            ) {
                Error::NotFound { message } if unknown => {
                    Ok(StatusAnswer::UnknownWorkspace(message))
                }
                Error::NotFound { message } => Ok(StatusAnswer::NeverMigrated(message)),
                other => Err(other),
            };
        }
        Err(self.no_route(&no_route))
    }

    /// Keeps layout `i` for every later request (the first confirmation wins).
    fn confirm(&self, i: usize, no_route: &[String]) {
        if self.configured || self.confirmed.set(i).is_err() {
            return;
        }
        let prefix = &self.routes[i].prefix;
        if no_route.is_empty() {
            tracing::info!(
                prefix = prefix.as_str(),
                "the control plane answered on {prefix}: using the CP-admin routes there"
            );
        } else {
            tracing::info!(
                prefix = prefix.as_str(),
                "the control plane answered on {prefix} ({} had no such route): using the \
                 CP-admin routes there",
                no_route.join(", ")
            );
        }
    }

    /// No layout answered: the error names every URL tried and the setting that picks one.
    fn no_route(&self, urls: &[String]) -> Error {
        let tried = urls
            .iter()
            .map(|u| format!("GET {u}"))
            .collect::<Vec<_>>()
            .join(" and ");
        let message = if urls.len() > 1 {
            format!(
                "the Molecule control plane serves neither CP-admin route layout: {tried} both \
                 answered 404 without the control plane's error body (no such route). fleet \
                 sends nothing that changes state to a route no GET confirmed. Check \
                 MOLECULE_CP_URL, or pick the layout"
            )
        } else {
            let how = if self.configured {
                "the configured CP-admin prefix"
            } else {
                "the CP-admin layout in use"
            };
            format!(
                "the Molecule control plane has no route at {tried}: it answered 404 without \
                 the control plane's error body (no such route). Check MOLECULE_CP_URL and {how} \
                 (left unset, fleet tries /cp/admin, then /api/v1/admin)"
            )
        };
        Error::advised(
            Error::Api {
                status: 404,
                message,
                validations: vec![],
            },
            vec![pick_cp_admin_layout()],
        )
    }
}
