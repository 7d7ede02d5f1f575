//! Pre-flight checks of an update or restart: everything Coder would refuse at start time is
//! refused before the stop build, so a workspace is never stopped and left stopped for a
//! reason fleet could have read beforehand.
//!
//! - the target template version exists, belongs to the workspace's template, is not
//!   archived, and its import succeeded (a version still importing is answered 406);
//! - the template's `require_active_version` is honoured;
//! - the start build's parameter values are resolved and checked ([`super::params`]).
//!
//! Each refusal is [`Error::Refused`]: one paragraph, reads only, nothing changed.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{CoderClient, JobStatus, params, types};
use crate::{Error, Input, Look, Remedy, Result};

/// What the pre-flight read and decided.
pub(crate) struct Checked {
    pub version: types::TemplateVersion,
    pub parameters: Vec<params::ResolvedParameter>,
    /// The workspace's template, when it was read (it says how long builds take).
    pub template: Option<types::Template>,
}

fn version_label(v: &types::TemplateVersion, id: &Uuid) -> String {
    match &v.name {
        Some(n) if !n.is_empty() => format!("{n} ({id})"),
        _ => id.to_string(),
    }
}

impl CoderClient {
    /// Runs the checks; reads only. `template` is the workspace's template when already read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn preflight(
        &self,
        ws: &types::Workspace,
        name: &str,
        target: Uuid,
        explicit_version: bool,
        restart: bool,
        template: Option<types::Template>,
        given: &BTreeMap<String, String>,
        from_file: &BTreeMap<String, String>,
        previous: &[types::WorkspaceBuildParameter],
    ) -> Result<Checked> {
        let action = if restart { "restart" } else { "update" };
        let nothing = "nothing was stopped or started (no build was created)";
        let version = match self.api().get_template_version_by_id(&target).await {
            Ok(v) => v.into_inner(),
            Err(e) => {
                return Err(
                    match self.error(format!("reading template version {target}"), e) {
                        Error::NotFound { .. } => Error::advised(
                            Error::Refused(format!(
                                "fleet refused to {action} {name}: template version {target} does not exist (or \
                                 the token cannot see it); {nothing}"
                            )),
                            vec![Remedy::Look {
                                at: Look::Workspace {
                                    workspace: Some(name.to_string()),
                                },
                            }],
                        ),
                        other => other,
                    },
                );
            }
        };
        let label = version_label(&version, &target);
        let template_name = ws
            .template_name
            .clone()
            .unwrap_or_else(|| "its template".into());
        if let (Some(vt), Some(wt)) = (version.template_id, ws.template_id) {
            if vt != wt {
                return Err(Error::Refused(format!(
                    "fleet refused to {action} {name}: template version {label} belongs to template {vt}, \
                     not to {template_name} ({wt}), the template of {name}; {nothing}. Pick a version of \
                     {template_name}, or leave the version out to use its active version"
                )));
            }
        }
        if version.archived == Some(true) {
            let refusal = Error::Refused(format!(
                "fleet refused to {action} {name}: template version {label} is archived and Coder refuses \
                 builds on archived versions; {nothing}"
            ));
            return Err(Error::advised(
                refusal,
                if restart {
                    vec![Remedy::UpdateToActive {
                        workspace: name.to_string(),
                    }]
                } else {
                    vec![
                        Remedy::Give {
                            input: Input::TemplateVersion,
                            value: None,
                        },
                        Remedy::LeaveOut {
                            input: Input::TemplateVersion,
                        },
                    ]
                },
            ));
        }
        if let Some(job) = version.job.as_ref().and_then(|j| j.status.clone()) {
            let job_error = version
                .job
                .as_ref()
                .and_then(|j| j.error.clone())
                .filter(|e| !e.trim().is_empty())
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            match job {
                JobStatus::Succeeded => {}
                JobStatus::Pending | JobStatus::Running => {
                    return Err(Error::advised(
                        Error::Refused(format!(
                            "fleet refused to {action} {name}: template version {label} is still importing \
                             (its import job is {job}) and Coder would refuse the start build (406); {nothing}. \
                             Wait until the import succeeded, then try again"
                        )),
                        vec![Remedy::Look {
                            at: Look::TemplateVersion { id: target },
                        }],
                    ));
                }
                other => {
                    return Err(Error::Refused(format!(
                        "fleet refused to {action} {name}: the import of template version {label} ended \
                         {other}{job_error}, so it cannot be built; {nothing}. Fix the template and push a new \
                         version, or pick another one"
                    )));
                }
            }
        }
        // require_active_version: read the template unless the workspace says it is not set.
        let template = match template {
            Some(t) => Some(t),
            None if ws.template_require_active_version != Some(false) => match ws.template_id {
                Some(tid) => Some(
                    self.api()
                        .get_template_settings_by_id(&tid)
                        .await
                        .map_err(|e| self.error(format!("reading template {tid}"), e))?
                        .into_inner(),
                ),
                None => None,
            },
            None => None,
        };
        if let Some(t) = &template {
            let required = t.require_active_version == Some(true);
            if let (true, Some(active)) = (required, t.active_version_id) {
                if active != target {
                    let tname = t.name.clone().unwrap_or_else(|| template_name.clone());
                    let why = format!(
                        "template {tname} requires its active version ({active}) for every start, and Coder \
                         would refuse a start on {label} (403)"
                    );
                    let to_active = Remedy::UpdateToActive {
                        workspace: name.to_string(),
                    };
                    return Err(if restart || !explicit_version {
                        Error::advised(
                            Error::Refused(format!(
                                "fleet refused to restart {name}: it runs {label}, but {why}; {nothing}"
                            )),
                            vec![to_active],
                        )
                    } else {
                        Error::advised(
                            Error::Refused(format!(
                                "fleet refused to update {name} to {label}: {why}; {nothing}"
                            )),
                            vec![to_active],
                        )
                    });
                }
            }
        }
        let rich = self
            .api()
            .get_rich_parameters_by_template_version(&target)
            .await
            .map_err(|e| {
                self.error(
                    format!("reading the parameters of template version {target}"),
                    e,
                )
            })?
            .into_inner();
        let parameters = params::resolve_parameters(&rich, given, from_file, previous)
            .map_err(|problems| params::refusal(action, name, &label, &problems))?;
        Ok(Checked {
            version,
            parameters,
            template,
        })
    }
}
