//! Template versions by name: the one resolver every face uses (a version NAME is looked up
//! within the workspace's template, an ID is used as it is) and the listing of a template's
//! versions.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CoderClient, types};
use crate::{Error, Result};

/// The longest template version name fleet accepts (Coder's own limit is 64).
pub const VERSION_NAME_MAX: usize = 64;

/// The most versions of one template fleet lists (pages of [`VERSIONS_PAGE`]).
const VERSIONS_MAX: usize = 10_000;
const VERSIONS_PAGE: i64 = 100;

/// What `GET /templates/{id}/versions/{name}` answers. Coder's description says an array of
/// versions; the server sends one object. Either reads.
#[derive(Debug, Clone, Default)]
pub struct TemplateVersionsByName(pub Vec<types::TemplateVersion>);

impl<'de> Deserialize<'de> for TemplateVersionsByName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            Many(Vec<types::TemplateVersion>),
            One(Box<types::TemplateVersion>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::Many(v) => TemplateVersionsByName(v),
            OneOrMany::One(v) => TemplateVersionsByName(vec![*v]),
        })
    }
}

impl std::fmt::Display for TemplateVersionsByName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().filter_map(|v| v.name.as_deref()).collect();
        f.write_str(&names.join(", "))
    }
}

/// A template version as a user names it: its ID, or its name within a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TemplateVersionRef {
    /// A template version ID.
    Id(Uuid),
    /// A version name, resolved within the workspace's template.
    Name(String),
}

impl TemplateVersionRef {
    /// Reads a template version ID (a UUID) or name; [`Error::InvalidInput`] (nothing sent)
    /// when it is neither.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Ok(id) = Uuid::parse_str(text) {
            return Ok(TemplateVersionRef::Id(id));
        }
        // Begins like a UUID (8 hex digits and a dash) but is not one: a mistyped or cut ID,
        // not a name.
        let uuid_like = text.len() > 9
            && text.as_bytes()[..8].iter().all(u8::is_ascii_hexdigit)
            && text.as_bytes()[8] == b'-';
        if uuid_like {
            return Err(Error::InvalidInput(format!(
                "{:?} is not a template version ID: a UUID is 32 hex digits in groups of \
                 8-4-4-4-12, like 0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30",
                short(text, 80)
            )));
        }
        let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if text.is_empty() || text.len() > VERSION_NAME_MAX || !text.chars().all(fine) {
            return Err(Error::InvalidInput(format!(
                "{:?} is not a template version: give its name (letters, digits, '-', '_' or \
                 '.', at most {VERSION_NAME_MAX}; like v3) or its ID (a UUID)",
                short(text, 80)
            )));
        }
        Ok(TemplateVersionRef::Name(text.to_string()))
    }

    /// The ID, when the user gave one.
    pub fn id(&self) -> Option<Uuid> {
        match self {
            TemplateVersionRef::Id(id) => Some(*id),
            TemplateVersionRef::Name(_) => None,
        }
    }
}

impl std::fmt::Display for TemplateVersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateVersionRef::Id(id) => write!(f, "{id}"),
            TemplateVersionRef::Name(n) => f.write_str(n),
        }
    }
}

impl std::str::FromStr for TemplateVersionRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TemplateVersionRef::parse(s)
    }
}

impl From<Uuid> for TemplateVersionRef {
    fn from(id: Uuid) -> Self {
        TemplateVersionRef::Id(id)
    }
}

/// One version of a template, as `fleet coder versions` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VersionRow {
    /// Its name (what `--template-version` takes).
    pub name: String,
    /// Its ID.
    pub id: Option<Uuid>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// True for the template's active version (what an update builds by default).
    pub active: bool,
    /// True when archived (no new builds).
    pub archived: bool,
}

/// A template's versions, newest first.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TemplateVersions {
    /// The template's name.
    pub template: String,
    /// The template's ID.
    pub template_id: Uuid,
    /// Its active version's ID.
    pub active_version_id: Option<Uuid>,
    /// Its versions, newest first (archived ones included).
    pub versions: Vec<VersionRow>,
}

impl CoderClient {
    /// A template named by the user: its ID, or its name (case does not matter) among the
    /// templates the session can see. An unknown name is [`Error::InvalidInput`] with the
    /// closest name, when one is close.
    pub async fn find_template(&self, template: &str) -> Result<types::Template> {
        let typed = template.trim();
        if let Ok(id) = Uuid::parse_str(typed) {
            return self.template(&id).await;
        }
        let all = self
            .api()
            .get_all_templates()
            .await
            .map_err(|e| self.error("listing templates", e))?
            .into_inner();
        if let Some(t) = all.iter().find(|t| {
            t.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(typed))
        }) {
            return Ok(t.clone());
        }
        let names: Vec<&str> = all.iter().filter_map(|t| t.name.as_deref()).collect();
        let hint = match crate::text::closest(typed, names.iter().copied()) {
            Some(n) => format!("; did you mean {n}?"),
            None if names.is_empty() => "; the session sees no template".into(),
            None => format!("; templates: {}", list_some(&names)),
        };
        Err(Error::InvalidInput(format!(
            "no template is named {:?}{hint}",
            short(typed, 80)
        )))
    }

    /// Every version of a template (archived ones included), newest first.
    pub async fn list_template_versions(
        &self,
        template_id: &Uuid,
    ) -> Result<Vec<types::TemplateVersion>> {
        let mut all: Vec<types::TemplateVersion> = Vec::new();
        let mut after: Option<Uuid> = None;
        loop {
            let page = self
                .api()
                .list_template_versions_by_template_id(
                    template_id,
                    after.as_ref(),
                    Some(true),
                    Some(VERSIONS_PAGE),
                )
                .await
                .map_err(|e| {
                    self.error(format!("listing the versions of template {template_id}"), e)
                })?
                .into_inner();
            let full = page.len() as i64 >= VERSIONS_PAGE;
            let last = page.last().and_then(|v| v.id);
            all.extend(page);
            match last {
                Some(id) if full && all.len() < VERSIONS_MAX && after != Some(id) => {
                    after = Some(id)
                }
                _ => break,
            }
        }
        // Coder lists oldest first; show the newest first.
        all.sort_by_key(|v| std::cmp::Reverse(v.created_at));
        Ok(all)
    }

    /// A template (by ID or name) and its versions: what `fleet coder versions` shows.
    pub async fn template_versions(&self, template: &str) -> Result<TemplateVersions> {
        let t = self.find_template(template).await?;
        let template_id = t.id.ok_or_else(super::model::no_id)?;
        let versions = self.list_template_versions(&template_id).await?;
        Ok(TemplateVersions {
            template: t.name.clone().unwrap_or_else(|| template_id.to_string()),
            template_id,
            active_version_id: t.active_version_id,
            versions: versions
                .iter()
                .map(|v| VersionRow {
                    name: v.name.clone().unwrap_or_default(),
                    id: v.id,
                    created_at: v.created_at.map(|c| c.to_rfc3339()),
                    active: v.id.is_some() && v.id == t.active_version_id,
                    archived: v.archived.unwrap_or(false),
                })
                .collect(),
        })
    }

    /// The ID of the template version `version` names for a workspace of template
    /// `template_id` (`template_name` words the errors): an ID as it is, a name looked up
    /// within that template. An unknown name is [`Error::InvalidInput`] (nothing changed)
    /// with the closest of the template's version names.
    pub async fn resolve_template_version(
        &self,
        template_id: &Uuid,
        template_name: &str,
        version: &TemplateVersionRef,
    ) -> Result<Uuid> {
        let name = match version {
            TemplateVersionRef::Id(id) => return Ok(*id),
            TemplateVersionRef::Name(name) => name,
        };
        match self
            .api()
            .get_template_version_by_template_id_and_name(template_id, name)
            .await
        {
            Ok(found) => {
                let found = found.into_inner();
                found
                    .0
                    .iter()
                    .find(|v| v.name.as_deref() == Some(name.as_str()))
                    .or(found.0.first())
                    .and_then(|v| v.id)
                    .ok_or_else(super::model::no_id)
            }
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => {
                let names: Vec<String> = self
                    .list_template_versions(template_id)
                    .await
                    .map(|vs| vs.into_iter().filter_map(|v| v.name).collect())
                    .unwrap_or_default();
                let hint = match crate::text::closest(name, names.iter().map(String::as_str)) {
                    Some(n) => format!("; did you mean {n}?"),
                    None if names.is_empty() => String::new(),
                    None => {
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        format!("; its versions: {}", list_some(&names))
                    }
                };
                Err(Error::InvalidInput(format!(
                    "template {template_name} has no version named {name:?}{hint}"
                )))
            }
            Err(e) => Err(self.error(
                format!("reading version {name:?} of template {template_name}"),
                e,
            )),
        }
    }
}

impl CoderClient {
    /// A template version by ID, or by name within `template` (a template's name or ID). A
    /// name without a template is [`Error::InvalidInput`] (nothing sent).
    pub async fn find_template_version(
        &self,
        template: Option<&str>,
        version: &TemplateVersionRef,
    ) -> Result<super::TemplateVersionInfo> {
        let id = match (version, template.map(str::trim).filter(|t| !t.is_empty())) {
            (TemplateVersionRef::Id(id), _) => *id,
            (TemplateVersionRef::Name(name), None) => {
                return Err(Error::InvalidInput(format!(
                    "version {name:?} is a name: say which template it belongs to, or give the \
                     version's ID"
                )));
            }
            (name, Some(template)) => {
                let t = self.find_template(template).await?;
                let template_id = t.id.ok_or_else(super::model::no_id)?;
                let template_name = t.name.unwrap_or_else(|| template_id.to_string());
                self.resolve_template_version(&template_id, &template_name, name)
                    .await?
            }
        };
        self.template_version(&id).await
    }
}

/// Up to 10 names, then how many more.
fn list_some(names: &[&str]) -> String {
    const SHOWN: usize = 10;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| short(n, 64))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// `text` on one line (controls escaped), at most `max` characters.
fn short(text: &str, max: usize) -> String {
    let line = crate::text::escape_one_line(text);
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_a_name_or_an_id_and_a_cut_id_is_neither() {
        let id = "0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30";
        assert_eq!(
            TemplateVersionRef::parse(id).unwrap(),
            TemplateVersionRef::Id(Uuid::parse_str(id).unwrap())
        );
        assert_eq!(
            TemplateVersionRef::parse(" v3 ").unwrap(),
            TemplateVersionRef::Name("v3".into())
        );
        for bad in [
            "",
            "v2 latest!",
            "a/b",
            "0b7a8f54-3c1d-4e8b-9a51",
            "0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a3g",
            "名前ü",
            "ü8f54-3c1d",
            &"v".repeat(VERSION_NAME_MAX + 1),
        ] {
            assert!(
                matches!(TemplateVersionRef::parse(bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_version_by_name_reads_as_one_object_or_an_array() {
        let one: TemplateVersionsByName =
            serde_json::from_str(r#"{"id":"0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30","name":"v3"}"#)
                .unwrap();
        assert_eq!(one.0.len(), 1);
        let many: TemplateVersionsByName =
            serde_json::from_str(r#"[{"name":"v3"},{"name":"v3"}]"#).unwrap();
        assert_eq!(many.0.len(), 2);
        assert_eq!(many.to_string(), "v3, v3");
    }
}
