//! What the Coder server can do, from `GET /api/v2/buildinfo`.
//!
//! The version looks like `v2.36.0+abc1234`, `v2.36.0-rc.1+abc1234` or, for a development
//! build, `v0.0.0-devel+abc1234`. What follows `+` is dropped and the rest compared as semver
//! (a release candidate comes before its release: `v2.36.0-rc.1` < `v2.36.0`).
//!
//! A development build (`v0.0.0-devel`) is treated as the newest version, as Coder's own CLI
//! does (its `buildinfo.IsDev`): it is built from Coder's main branch, which has every
//! released feature. A version that does not parse supports nothing new: fleet then takes
//! the path every server supports (client-driven stop and start).

use serde::Serialize;

use super::CoderClient;
use crate::Result;

/// The first Coder release that honours `on_success` on a stop build (released 2026-08-04).
/// Older servers ignore the field and only stop the workspace.
pub const ON_SUCCESS_SINCE: (u64, u64, u64) = (2, 36, 0);

/// A Coder server version (semver, without the `+build` part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ServerVersion {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// The pre-release part (`rc.1`, `devel`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
}

impl ServerVersion {
    /// Parses `v2.36.0+abc`, `2.36.0`, `v2.36.0-rc.1`, `v0.0.0-devel+abc`. `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split('+').next()?;
        let (numbers, pre) = match core.split_once('-') {
            Some((n, p)) if !p.is_empty() => (n, Some(p.to_string())),
            Some(_) => return None,
            None => (core, None),
        };
        let mut parts = numbers.split('.');
        let mut next = || -> Option<u64> {
            let p = parts.next()?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let (major, minor, patch) = (next()?, next()?, next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(ServerVersion {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// True for a development build (`v0.0.0-devel…`), which Coder's own CLI treats as the
    /// newest version.
    pub fn is_devel(&self) -> bool {
        self.pre.as_deref().is_some_and(|p| p.starts_with("devel"))
    }

    /// True when this version is at least `major.minor.patch` (a pre-release comes before its
    /// release; a development build is newer than every release).
    pub fn at_least(&self, (major, minor, patch): (u64, u64, u64)) -> bool {
        if self.is_devel() {
            return true;
        }
        match (self.major, self.minor, self.patch).cmp(&(major, minor, patch)) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => self.pre.is_none(),
            std::cmp::Ordering::Less => false,
        }
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        Ok(())
    }
}

/// What a Coder server supports, read from `GET /api/v2/buildinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ServerFeatures {
    /// The version as the server reports it (`v2.36.0+abc1234`); empty when it sent none.
    pub version_text: String,
    /// The parsed version, when it parses.
    pub version: Option<ServerVersion>,
    /// True when a stop build may carry `on_success` (Coder ≥ 2.36, or a development build).
    pub on_success: bool,
    /// Why `on_success` is or is not used, in a sentence a person reads
    /// ("Coder v2.35.2 is older than v2.36.0, which added on_success").
    pub on_success_reason: String,
}

impl ServerFeatures {
    /// The features of a server reporting `version` (as `buildinfo` sends it).
    pub fn from_version(version: &str) -> Self {
        let parsed = ServerVersion::parse(version);
        let (major, minor, patch) = ON_SUCCESS_SINCE;
        let since = format!("v{major}.{minor}.{patch}");
        let (on_success, reason) = match &parsed {
            None => (
                false,
                format!(
                    "the Coder version {version:?} cannot be read; on_success needs {since}, so \
                     fleet stops and starts the workspace itself"
                ),
            ),
            Some(v) if v.is_devel() => (
                true,
                format!("Coder {v} is a development build (treated as the newest version)"),
            ),
            Some(v) if v.at_least(ON_SUCCESS_SINCE) => (
                true,
                format!("Coder {v} supports on_success, added in {since}"),
            ),
            Some(v) => (
                false,
                format!("Coder {v} is older than {since}, which added on_success"),
            ),
        };
        ServerFeatures {
            version_text: version.to_string(),
            version: parsed,
            on_success,
            on_success_reason: reason,
        }
    }
}

impl CoderClient {
    /// Reads `GET /api/v2/buildinfo` and says what the server supports. One GET, retried like
    /// every read.
    pub async fn server_features(&self) -> Result<ServerFeatures> {
        let info = self
            .api()
            .build_info()
            .await
            .map_err(|e| self.error("reading the Coder version (GET /buildinfo)", e))?
            .into_inner();
        Ok(ServerFeatures::from_version(
            info.version.as_deref().unwrap_or(""),
        ))
    }

    /// What the server supports, read once per client (and its clones): a `buildinfo` that
    /// cannot be read supports nothing new, and says why.
    pub async fn features_once(&self) -> ServerFeatures {
        self.features
            .get_or_init(|| async {
                match self.server_features().await {
                    Ok(f) => f,
                    Err(e) => ServerFeatures {
                        version_text: String::new(),
                        version: None,
                        on_success: false,
                        on_success_reason: format!(
                            "the Coder version could not be read ({e}); on_success needs v{}.{}.{}, so \
                             fleet stops and starts the workspace itself",
                            ON_SUCCESS_SINCE.0, ON_SUCCESS_SINCE.1, ON_SUCCESS_SINCE.2
                        ),
                    },
                }
            })
            .await
            .clone()
    }

    /// The server's version, when it reports one that parses.
    pub async fn server_version(&self) -> Result<Option<ServerVersion>> {
        Ok(self.server_features().await?.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare_as_semver_without_build_metadata() {
        let v = ServerVersion::parse("v2.36.0+abc1234").expect("parses");
        assert_eq!(
            (v.major, v.minor, v.patch, v.pre.as_deref()),
            (2, 36, 0, None)
        );
        assert!(v.at_least(ON_SUCCESS_SINCE));
        assert!(
            ServerVersion::parse("2.37.1")
                .unwrap()
                .at_least(ON_SUCCESS_SINCE)
        );
        assert!(
            ServerVersion::parse("v3.0.0")
                .unwrap()
                .at_least(ON_SUCCESS_SINCE)
        );
        assert!(
            !ServerVersion::parse("v2.35.9+x")
                .unwrap()
                .at_least(ON_SUCCESS_SINCE)
        );
        let rc = ServerVersion::parse("v2.36.0-rc.2+deadbeef").unwrap();
        assert_eq!(rc.pre.as_deref(), Some("rc.2"));
        assert!(
            !rc.at_least(ON_SUCCESS_SINCE),
            "an rc comes before its release"
        );
        assert!(
            ServerVersion::parse("v2.36.1-rc.0")
                .unwrap()
                .at_least(ON_SUCCESS_SINCE)
        );
        let dev = ServerVersion::parse("v0.0.0-devel+5a1b2c3").unwrap();
        assert!(dev.is_devel() && dev.at_least(ON_SUCCESS_SINCE));
        for bad in [
            "",
            "v",
            "2.36",
            "v2.36.x",
            "v2.36.0.1",
            "latest",
            "v2.36.0-",
        ] {
            assert_eq!(ServerVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn features_say_why() {
        let old = ServerFeatures::from_version("v2.35.2+abc");
        assert!(!old.on_success);
        assert!(old.on_success_reason.contains("older than v2.36.0"));
        assert!(ServerFeatures::from_version("v2.36.0+abc").on_success);
        assert!(ServerFeatures::from_version("v0.0.0-devel+abc").on_success);
        let odd = ServerFeatures::from_version("nightly");
        assert!(!odd.on_success && odd.version.is_none());
    }
}
