//! Templates as a promotion needs them: a template by name within its organization, its active
//! version, its versions newest first, and making a version the active one (`PATCH
//! /templates/{id}/versions`, which needs template-admin permission).

use serde::Serialize;
use uuid::Uuid;

use super::{CoderClient, TemplateVersionRef, types};
use crate::{Error, Result};

/// A version of a template, as a promotion names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct VersionName {
    /// Its ID.
    pub id: Uuid,
    /// Its name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl VersionName {
    /// Its name, else its ID.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.to_string())
    }
}

impl std::fmt::Display for VersionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::text::escape_one_line(&self.label()))
    }
}

/// A template, its active version and its newest versions: enough to decide what to promote.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TemplateOverview {
    /// The template's name.
    pub template: String,
    /// Its ID.
    pub template_id: Uuid,
    /// Its organization.
    pub organization_id: Option<Uuid>,
    /// The version every start that does not pin one builds.
    pub active_version: Option<VersionName>,
    /// True when workspaces must run the active version.
    pub require_active_version: bool,
    /// Its newest versions (at most as many as asked for), newest first.
    pub newest_versions: Vec<super::VersionRow>,
    /// How many versions it has in all (archived ones included).
    pub versions_total: usize,
}

/// Why a version cannot be promoted: facts, each face words them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotPromotable {
    /// The version belongs to another template.
    OtherTemplate {
        /// The template it belongs to.
        template_id: Option<Uuid>,
    },
    /// Its import job has not succeeded (still running, failed or canceled).
    NotImported {
        /// The import job's status.
        job_status: Option<String>,
        /// The import job's error, when it failed.
        job_error: Option<String>,
    },
    /// It is archived.
    Archived,
}

impl std::fmt::Display for NotPromotable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotPromotable::OtherTemplate { template_id } => write!(
                f,
                "it belongs to another template ({})",
                template_id.map_or_else(|| "unknown".into(), |t| t.to_string())
            ),
            NotPromotable::NotImported {
                job_status,
                job_error,
            } => {
                write!(
                    f,
                    "its import has not succeeded (job {})",
                    job_status.as_deref().unwrap_or("unknown")
                )?;
                if let Some(e) = job_error.as_deref().filter(|e| !e.is_empty()) {
                    write!(f, ": {}", crate::text::escape_one_line(e))?;
                }
                Ok(())
            }
            NotPromotable::Archived => f.write_str("it is archived"),
        }
    }
}

impl CoderClient {
    /// A template by name within an organization (`GET
    /// /organizations/{org}/templates/{name}`); `None` when there is none by that name.
    pub async fn template_in_organization(
        &self,
        organization_id: &Uuid,
        name: &str,
    ) -> Result<Option<types::Template>> {
        match self
            .api()
            .get_templates_by_organization_and_template_name(organization_id, name)
            .await
        {
            Ok(t) => Ok(Some(t.into_inner())),
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => Ok(None),
            Err(e) => Err(self.error(format!("reading template {name:?}"), e)),
        }
    }

    /// A template (by name or ID), its active version and its `newest` newest versions.
    pub async fn template_overview(
        &self,
        template: &str,
        newest: usize,
    ) -> Result<TemplateOverview> {
        let listed = self.template_versions(template).await?;
        let t = self.template(&listed.template_id).await?;
        let active_version = listed.active_version_id.map(|id| VersionName {
            id,
            name: listed
                .versions
                .iter()
                .find(|v| v.id == Some(id))
                .map(|v| v.name.clone()),
        });
        Ok(TemplateOverview {
            template: listed.template,
            template_id: listed.template_id,
            organization_id: t.organization_id,
            active_version,
            require_active_version: t.require_active_version.unwrap_or(false),
            versions_total: listed.versions.len(),
            newest_versions: listed.versions.into_iter().take(newest).collect(),
        })
    }

    /// The version `version` names within template `template`, read in full, with the reasons
    /// it cannot be made active (none: it can).
    pub async fn promotable_version(
        &self,
        template: &types::Template,
        version: &TemplateVersionRef,
    ) -> Result<(types::TemplateVersion, Vec<NotPromotable>)> {
        let template_id = template.id.ok_or_else(super::model::no_id)?;
        let template_name = template
            .name
            .clone()
            .unwrap_or_else(|| template_id.to_string());
        let id = self
            .resolve_template_version(&template_id, &template_name, version)
            .await?;
        let v = match self.api().get_template_version_by_id(&id).await {
            Ok(v) => v.into_inner(),
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => {
                return Err(Error::InvalidInput(format!(
                    "template {template_name} has no version {id}"
                )));
            }
            Err(e) => return Err(self.error(format!("reading template version {id}"), e)),
        };
        let mut why = Vec::new();
        if v.template_id != Some(template_id) {
            why.push(NotPromotable::OtherTemplate {
                template_id: v.template_id,
            });
        }
        let job = v.job.as_ref();
        let status = job.and_then(|j| j.status.as_ref());
        if status != Some(&super::JobStatus::Succeeded) {
            why.push(NotPromotable::NotImported {
                job_status: status.map(|s| s.to_string()),
                job_error: job.and_then(|j| j.error.clone()),
            });
        }
        if v.archived == Some(true) {
            why.push(NotPromotable::Archived);
        }
        Ok((v, why))
    }

    /// Makes `version` the active version of `template_id` (`PATCH
    /// /templates/{id}/versions`): from then on every start that does not pin a version builds
    /// it. Sent once, never retried. A 403 is [`Error::Unauthorized`] saying that the session
    /// lacks template-admin permission; an answer that never came back is checked by reading
    /// the template again, and the error says what is true.
    pub async fn set_active_version(
        &self,
        template_id: &Uuid,
        template_name: &str,
        version: &VersionName,
    ) -> Result<()> {
        let version_id = &version.id;
        let body = types::UpdateActiveTemplateVersion { id: *version_id };
        match self
            .api()
            .update_active_template_version_by_template_id(template_id, &body)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 403) => {
                let words = self.error("", e).to_string();
                Err(Error::Unauthorized {
                    status: 403,
                    message: format!(
                        "Coder refused to make version {version} the active version of \
                         template {template_name}: the session lacks template-admin permission \
                         (403{}); the template was not changed",
                        server_part(&words)
                    ),
                })
            }
            Err(e) if e.status().is_none() => {
                let sent = self.error(
                    format!("making version {version} active on template {template_name}"),
                    e,
                );
                // The answer never came: read what is true, never send it again blindly.
                match self.template(template_id).await {
                    Ok(t) if t.active_version_id == Some(*version_id) => Ok(()),
                    Ok(_) => Err(super::model::append(
                        sent,
                        "read again, the template's active version is unchanged",
                    )),
                    Err(_) => Err(super::model::append(
                        sent,
                        "whether the template's active version changed is unknown: read the \
                         template to find out",
                    )),
                }
            }
            Err(e) => Err(self.error(
                format!("making version {version} active on template {template_name}"),
                e,
            )),
        }
    }
}

/// `: the server's words` when there are any.
fn server_part(words: &str) -> String {
    let words = words.trim().trim_start_matches(':').trim();
    if words.is_empty() {
        String::new()
    } else {
        format!(": {}", crate::text::escape_one_line(words))
    }
}
