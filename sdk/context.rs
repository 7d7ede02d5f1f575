//! Where each setting comes from: what the caller gave, the environment, a named context of
//! the config file, and what `coder login` stored — in that order of precedence.
//!
//! A context never holds a token: it names where one comes from (a file, an environment
//! variable, Coder's login). Every resolved value carries its [`Source`], so that a face can
//! say where it came from; a token's value is never part of a source.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    CoderConfig, Error, HttpOptions, MoleculeConfig, Result, Secret,
    config::{CP_ADMIN_PREFIX_VAR, DEFAULT_MOLECULE_CP_URL},
};

/// The variable naming another config file.
pub const CONFIG_VAR: &str = "FLEET_CONFIG";
/// The variable choosing a context.
pub const CONTEXT_VAR: &str = "FLEET_CONTEXT";
/// Coder's own variable for its config directory (where `coder login` writes).
pub const CODER_CONFIG_DIR_VAR: &str = "CODER_CONFIG_DIR";

/// The most bytes read from the config file or from Coder's `url` file.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
const MAX_URL_BYTES: u64 = 8 * 1024;

/// The config file: named contexts and the one in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// The context used when none is chosen otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// The contexts by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contexts: BTreeMap<String, Context>,
}

/// A named context: where each control plane is and where its tokens come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Context {
    /// Coder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coder: Option<CoderContext>,
    /// Molecule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub molecule: Option<MoleculeContext>,
}

/// Coder in a context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CoderContext {
    /// Deployment URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file holding the session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_file: Option<PathBuf>,
    /// An environment variable holding the session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_env: Option<String>,
    /// Use what `coder login` stored (its URL when none is given here, and its session).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub login: bool,
}

/// Molecule in a context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MoleculeContext {
    /// CP admin API base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cp_url: Option<String>,
    /// CP-admin route prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cp_admin_prefix: Option<String>,
    /// A file holding the CP admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cp_admin_token_file: Option<PathBuf>,
    /// An environment variable holding the CP admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cp_admin_token_env: Option<String>,
    /// Tenant API base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// A file holding the tenant API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_api_key_file: Option<PathBuf>,
    /// An environment variable holding the tenant API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_api_key_env: Option<String>,
}

impl Context {
    /// Checks what a context may hold: names, URLs, at most one source per token, variable
    /// names that are variable names.
    pub fn validate(&self, name: &str) -> Result<()> {
        check_context_name(name)?;
        let bad = |what: String| Err(Error::InvalidInput(format!("context {name:?}: {what}")));
        if let Some(c) = &self.coder {
            if let Some(u) = &c.url {
                check_url(u).or_else(|e| bad(format!("the Coder URL: {e}")))?;
            }
            let sources = [
                c.session_token_file.is_some(),
                c.session_token_env.is_some(),
            ]
            .into_iter()
            .filter(|b| *b)
            .count();
            if sources > 1 {
                return bad(
                    "the Coder session token comes from a file or a variable, not both".into(),
                );
            }
            if let Some(v) = &c.session_token_env {
                check_var_name(v).or_else(&bad)?;
            }
        }
        if let Some(m) = &self.molecule {
            for u in [&m.cp_url, &m.api_url].into_iter().flatten() {
                check_url(u).or_else(|e| bad(format!("the Molecule URL: {e}")))?;
            }
            if m.cp_admin_token_file.is_some() && m.cp_admin_token_env.is_some() {
                return bad("the CP admin token comes from a file or a variable, not both".into());
            }
            if m.org_api_key_file.is_some() && m.org_api_key_env.is_some() {
                return bad("the tenant API key comes from a file or a variable, not both".into());
            }
            for v in [&m.cp_admin_token_env, &m.org_api_key_env]
                .into_iter()
                .flatten()
            {
                check_var_name(v).or_else(&bad)?;
            }
        }
        Ok(())
    }
}

/// Checks a context name: letters, digits, `-`, `_`, `.`; 1 to 64 characters.
pub fn check_context_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{name:?} is not a context name: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn check_var_name(v: &str) -> std::result::Result<(), String> {
    let mut chars = v.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not an environment variable name (letters, digits and '_')"
        ))
    }
}

fn check_url(u: &str) -> std::result::Result<(), String> {
    match url::Url::parse(u.trim()) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        Ok(_) => Err(format!("{u:?} is not an http(s) URL")),
        Err(e) => Err(format!("{u:?} is not a URL ({e})")),
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// Given by the caller directly (the CLI: a command-line option).
    Given,
    /// Read from a file the caller named.
    GivenFile {
        /// The file.
        path: PathBuf,
    },
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
    /// Written in a context.
    Context {
        /// The context.
        context: String,
    },
    /// Read from a file a context names.
    ContextFile {
        /// The context.
        context: String,
        /// The file.
        path: PathBuf,
    },
    /// An environment variable a context names.
    ContextEnv {
        /// The context.
        context: String,
        /// The variable.
        var: String,
    },
    /// What `coder login` stored, in this file; `context` when a context asked for it.
    CoderLogin {
        /// The file (`url` or `session` in Coder's config directory).
        path: PathBuf,
        /// The context that asked for it, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// The built-in default.
    Default,
}

/// A value and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Setting<T> {
    /// The value (a token's is never serialized: see [`TokenSetting`]).
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

/// A token and where it came from. Serializes as its source and fingerprint only.
#[derive(Debug, Clone)]
pub struct TokenSetting {
    /// The token.
    pub value: Secret,
    /// Where it came from.
    pub source: Source,
}

impl Serialize for TokenSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("TokenSetting", 2)?;
        st.serialize_field("source", &self.source)?;
        st.serialize_field("fingerprint", &fingerprint(&self.value))?;
        st.end()
    }
}

/// The first 8 hex digits of a token's SHA-256: enough to tell two tokens apart, nothing to
/// recover one from.
pub fn fingerprint(secret: &Secret) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.expose().as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Something a face should tell the user; nothing stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "warning", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Warning {
    /// A token file that the group or others may read (ssh refuses such keys; fleet warns).
    ReadableByOthers {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `coder login` stored a session for another deployment than the URL in use: the
    /// session is not sent there.
    CoderLoginOtherUrl {
        /// The URL `coder login` stored.
        login_url: String,
        /// The URL in use.
        url: String,
    },
    /// A token that could not be got (a lenient [`Resolver`] only): why.
    Unresolved {
        /// Why.
        message: String,
    },
}

/// What the caller gave directly (the CLI: command-line options); each wins over the rest.
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// The context to use.
    pub context: Option<String>,
    /// Coder URL.
    pub coder_url: Option<String>,
    /// Coder session token.
    pub coder_session_token: Option<Secret>,
    /// A file holding the Coder session token.
    pub coder_session_token_file: Option<PathBuf>,
    /// CP admin API base URL.
    pub molecule_cp_url: Option<String>,
    /// CP-admin route prefix.
    pub cp_admin_prefix: Option<String>,
    /// CP admin token.
    pub cp_admin_token: Option<Secret>,
    /// A file holding the CP admin token.
    pub cp_admin_token_file: Option<PathBuf>,
    /// Tenant API base URL.
    pub molecule_api_url: Option<String>,
    /// Tenant API key.
    pub org_api_key: Option<Secret>,
    /// A file holding the tenant API key.
    pub org_api_key_file: Option<PathBuf>,
}

/// How the context in use was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChosenBy {
    /// The caller named it.
    Given,
    /// `FLEET_CONTEXT`.
    Env,
    /// The config file's `current-context`.
    Current,
}

/// The context in use.
#[derive(Debug, Clone, Serialize)]
pub struct Chosen {
    /// Its name.
    pub name: String,
    /// How it was chosen.
    pub by: ChosenBy,
    #[serde(skip)]
    context: Context,
}

/// The config file's location.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = env(CONFIG_VAR) {
        return Some(PathBuf::from(p));
    }
    xdg_config_home().map(|d| d.join("fleet").join("config.toml"))
}

/// `$XDG_CONFIG_HOME` (absolute), else `$HOME/.config`. Without either variable there is no
/// user configuration: a process started with an empty environment reads none (as Coder's
/// own CLI, which needs `HOME`).
fn xdg_config_home() -> Option<PathBuf> {
    if let Some(x) = env("XDG_CONFIG_HOME").map(PathBuf::from) {
        if x.is_absolute() {
            return Some(x);
        }
    }
    env("HOME").map(|h| PathBuf::from(h).join(".config"))
}

/// Coder's config directory: `CODER_CONFIG_DIR`, else `coderv2` in the platform's
/// configuration directory (`~/.config` on Linux, `~/Library/Application Support` on macOS).
pub fn coder_config_dir() -> Option<PathBuf> {
    if let Some(d) = env(CODER_CONFIG_DIR_VAR) {
        return Some(PathBuf::from(d));
    }
    if env("HOME").is_none() && env("XDG_CONFIG_HOME").is_none() {
        return None;
    }
    dirs::config_dir().map(|d| d.join("coderv2"))
}

/// Reads the config file at `path`: an empty one when there is none. A malformed file is an
/// error naming the file and the line.
pub fn load(path: &Path) -> Result<ConfigFile> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => {
            return Err(Error::InvalidInput(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| {
            Error::InvalidInput(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::InvalidInput(format!(
            "the config file {} is larger than {} bytes",
            path.display(),
            MAX_CONFIG_BYTES
        )));
    }
    let parsed: ConfigFile = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| {
            let before = &text.as_bytes()[..s.start.min(text.len())];
            before.iter().filter(|b| **b == b'\n').count() + 1
        });
        Error::InvalidInput(format!(
            "the config file {}{} is malformed: {}{}",
            path.display(),
            line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            e.message(),
            if e.message().contains("token`") {
                " (a context never holds a token: name a file or a variable)"
            } else {
                ""
            }
        ))
    })?;
    for (name, context) in &parsed.contexts {
        context
            .validate(name)
            .map_err(|e| Error::InvalidInput(format!("the config file {}: {e}", path.display())))?;
    }
    Ok(parsed)
}

/// Writes the config file atomically with mode 0600: a temporary file in the same
/// directory, flushed to disk, renamed over the old one.
pub fn save(path: &Path, config: &ConfigFile) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        Error::InvalidInput(format!("cannot {what} {}: {e}", path.display()))
    };
    let text = toml::to_string_pretty(config)
        .map_err(|e| Error::InvalidInput(format!("cannot write the config: {e}")))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|e| fail("create the directory of", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    Ok(())
}

/// The settings of both planes, resolved once per command: the config file and the context
/// in use are read (an unknown context is refused before anything is sent).
#[derive(Debug, Clone)]
pub struct Resolver {
    given: Given,
    path: Option<PathBuf>,
    file: ConfigFile,
    chosen: Option<Chosen>,
    lenient: bool,
}

impl Resolver {
    /// Reads the config file and picks the context: the given one, else `FLEET_CONTEXT`,
    /// else the file's `current-context`. A context that does not exist is refused, listing
    /// those that do.
    pub fn new(given: Given) -> Result<Self> {
        let path = config_path();
        let file = match &path {
            Some(p) => load(p)?,
            None => ConfigFile::default(),
        };
        let wanted = match (&given.context, env(CONTEXT_VAR)) {
            (Some(n), _) if !n.trim().is_empty() => Some((n.trim().to_string(), ChosenBy::Given)),
            (_, Some(n)) => Some((n.trim().to_string(), ChosenBy::Env)),
            _ => file.current_context.clone().map(|n| (n, ChosenBy::Current)),
        };
        let chosen = match wanted {
            None => None,
            Some((name, by)) => match file.contexts.get(&name) {
                Some(c) => Some(Chosen {
                    name,
                    by,
                    context: c.clone(),
                }),
                None => {
                    return Err(unknown_context(&name, by, path.as_deref(), &file));
                }
            },
        };
        Ok(Resolver {
            given,
            path,
            file,
            chosen,
            lenient: false,
        })
    }

    /// A resolver that reports a token it cannot get (a file that cannot be read, a variable
    /// that is not set, no `coder login` session) as [`Warning::Unresolved`] and leaves the
    /// token unset, instead of failing: for showing and checking a configuration.
    pub fn lenient(mut self) -> Self {
        self.lenient = true;
        self
    }

    fn soften(
        &self,
        r: Result<Option<TokenSetting>>,
        warnings: &mut Vec<Warning>,
    ) -> Result<Option<TokenSetting>> {
        match r {
            Err(e) if self.lenient => {
                warnings.push(Warning::Unresolved {
                    message: e.to_string(),
                });
                Ok(None)
            }
            other => other,
        }
    }

    /// The config file's location.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The config file as read.
    pub fn file(&self) -> &ConfigFile {
        &self.file
    }

    /// The context in use.
    pub fn chosen(&self) -> Option<&Chosen> {
        self.chosen.as_ref()
    }

    /// The Coder settings: URL and session token, each with its source.
    pub fn coder(&self) -> Result<CoderSettings> {
        let mut warnings = Vec::new();
        let ctx = self
            .chosen
            .as_ref()
            .and_then(|c| c.context.coder.as_ref().map(|cc| (c.name.clone(), cc)));
        let login_dir = coder_config_dir();
        let login_wanted = ctx.as_ref().is_some_and(|(_, c)| c.login);
        let login_ctx = ctx
            .as_ref()
            .filter(|(_, c)| c.login)
            .map(|(n, _)| n.clone());
        // The URL: given, environment, context, coder login.
        let mut url = if let Some(u) = nonempty(&self.given.coder_url) {
            Some(Setting {
                value: u,
                source: Source::Given,
            })
        } else if let Some(u) = env("CODER_URL") {
            Some(Setting {
                value: u,
                source: Source::Env {
                    var: "CODER_URL".into(),
                },
            })
        } else if let Some((name, u)) = ctx
            .as_ref()
            .and_then(|(n, c)| nonempty(&c.url).map(|u| (n.clone(), u)))
        {
            Some(Setting {
                value: u,
                source: Source::Context { context: name },
            })
        } else {
            None
        };
        let login_url = login_dir
            .as_ref()
            .and_then(|d| read_login_url(&d.join("url")));
        if url.is_none() {
            if let (Some(d), Some(u)) = (&login_dir, &login_url) {
                url = Some(Setting {
                    value: u.clone(),
                    source: Source::CoderLogin {
                        path: d.join("url"),
                        context: login_ctx.clone(),
                    },
                });
            }
        }
        // The token: given, environment, context, coder login (only for its own URL).
        let resolved = (|| -> Result<Option<TokenSetting>> {
            Ok(
                if let Some(t) = given_token(
                    &self.given.coder_session_token,
                    &self.given.coder_session_token_file,
                    &mut warnings,
                )? {
                    Some(t)
                } else if let Some(t) = env("CODER_SESSION_TOKEN") {
                    Some(TokenSetting {
                        value: Secret::new(t),
                        source: Source::Env {
                            var: "CODER_SESSION_TOKEN".into(),
                        },
                    })
                } else if let Some(t) = match &ctx {
                    Some((name, c)) => context_token(
                        name,
                        "the Coder session token",
                        &c.session_token_file,
                        &c.session_token_env,
                        &mut warnings,
                    )?,
                    None => None,
                } {
                    Some(t)
                } else {
                    let session = login_dir.as_ref().map(|d| d.join("session"));
                    match (&session, &login_url, &url) {
                        (Some(path), Some(lu), Some(u)) if path.exists() => {
                            if same_url(lu, &u.value) {
                                check_mode(path, &mut warnings);
                                Some(TokenSetting {
                                    value: Secret::from_file(path)?,
                                    source: Source::CoderLogin {
                                        path: path.clone(),
                                        context: login_ctx.clone(),
                                    },
                                })
                            } else {
                                warnings.push(Warning::CoderLoginOtherUrl {
                                    login_url: lu.clone(),
                                    url: u.value.clone(),
                                });
                                None
                            }
                        }
                        _ => None,
                    }
                },
            )
        })();
        let token = self.soften(resolved, &mut warnings)?;
        let other_url = warnings
            .iter()
            .any(|w| matches!(w, Warning::CoderLoginOtherUrl { .. }));
        if login_wanted && token.is_none() && !other_url {
            let dir = login_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "Coder's config directory".into());
            let e = Error::InvalidInput(format!(
                "the context {:?} uses what `coder login` stored, but {dir} holds no session: run `coder login`",
                login_ctx.unwrap_or_default()
            ));
            self.soften(Err(e), &mut warnings)?;
        }
        Ok(CoderSettings {
            url,
            session_token: token,
            login_dir,
            warnings,
        })
    }

    /// The Molecule settings, each with its source.
    pub fn molecule(&self) -> Result<MoleculeSettings> {
        let mut warnings = Vec::new();
        let ctx = self
            .chosen
            .as_ref()
            .and_then(|c| c.context.molecule.as_ref().map(|m| (c.name.clone(), m)));
        let pick = |given: &Option<String>,
                    vars: &[&str],
                    in_ctx: Option<(&String, &Option<String>)>|
         -> Option<Setting<String>> {
            if let Some(v) = nonempty(given) {
                return Some(Setting {
                    value: v,
                    source: Source::Given,
                });
            }
            for var in vars {
                if let Some(v) = env(var) {
                    return Some(Setting {
                        value: v,
                        source: Source::Env {
                            var: (*var).to_string(),
                        },
                    });
                }
            }
            let (name, value) = in_ctx?;
            nonempty(value).map(|v| Setting {
                value: v,
                source: Source::Context {
                    context: name.clone(),
                },
            })
        };
        let cp_url = pick(
            &self.given.molecule_cp_url,
            &["MOLECULE_CP_URL", "CP_API_URL"],
            ctx.as_ref().map(|(n, m)| (n, &m.cp_url)),
        )
        .unwrap_or(Setting {
            value: DEFAULT_MOLECULE_CP_URL.to_string(),
            source: Source::Default,
        });
        let cp_admin_prefix = pick(
            &self.given.cp_admin_prefix,
            &[CP_ADMIN_PREFIX_VAR],
            ctx.as_ref().map(|(n, m)| (n, &m.cp_admin_prefix)),
        );
        let api_url = pick(
            &self.given.molecule_api_url,
            &["MOLECULE_API_URL"],
            ctx.as_ref().map(|(n, m)| (n, &m.api_url)),
        );
        let token = |given: &Option<Secret>,
                     given_file: &Option<PathBuf>,
                     var: &str,
                     what: &str,
                     file: fn(&MoleculeContext) -> &Option<PathBuf>,
                     env_of: fn(&MoleculeContext) -> &Option<String>,
                     warnings: &mut Vec<Warning>|
         -> Result<Option<TokenSetting>> {
            if let Some(t) = given_token(given, given_file, warnings)? {
                return Ok(Some(t));
            }
            if let Some(t) = env(var) {
                return Ok(Some(TokenSetting {
                    value: Secret::new(t),
                    source: Source::Env { var: var.into() },
                }));
            }
            match &ctx {
                Some((name, m)) => context_token(name, what, file(m), env_of(m), warnings),
                None => Ok(None),
            }
        };
        let cp_admin_token = token(
            &self.given.cp_admin_token,
            &self.given.cp_admin_token_file,
            "CP_ADMIN_API_TOKEN",
            "the CP admin token",
            |m| &m.cp_admin_token_file,
            |m| &m.cp_admin_token_env,
            &mut warnings,
        );
        let cp_admin_token = self.soften(cp_admin_token, &mut warnings)?;
        let org_api_key = token(
            &self.given.org_api_key,
            &self.given.org_api_key_file,
            "MOLECULE_ORG_API_KEY",
            "the tenant API key",
            |m| &m.org_api_key_file,
            |m| &m.org_api_key_env,
            &mut warnings,
        );
        let org_api_key = self.soften(org_api_key, &mut warnings)?;
        Ok(MoleculeSettings {
            cp_url,
            cp_admin_prefix,
            cp_admin_token,
            api_url,
            org_api_key,
            warnings,
        })
    }
}

fn unknown_context(name: &str, by: ChosenBy, path: Option<&Path>, file: &ConfigFile) -> Error {
    let names: Vec<&str> = file.contexts.keys().map(String::as_str).collect();
    let how = match by {
        ChosenBy::Given => String::new(),
        ChosenBy::Env => format!(" (from {CONTEXT_VAR})"),
        ChosenBy::Current => " (the config file's current-context)".to_string(),
    };
    let place = path
        .map(|p| format!(" in {}", p.display()))
        .unwrap_or_default();
    let existing = if names.is_empty() {
        "there are no contexts yet".to_string()
    } else {
        format!("the contexts are: {}", names.join(", "))
    };
    Error::InvalidInput(format!(
        "there is no context named {name:?}{how}{place}; {existing}; nothing was sent"
    ))
}

/// Coder's resolved settings.
#[derive(Debug, Clone, Serialize)]
pub struct CoderSettings {
    /// The deployment URL.
    pub url: Option<Setting<String>>,
    /// The session token.
    pub session_token: Option<TokenSetting>,
    /// Coder's config directory looked at (`coder login`'s files), if any.
    pub login_dir: Option<PathBuf>,
    /// What to tell the user.
    pub warnings: Vec<Warning>,
}

impl CoderSettings {
    /// The client configuration.
    pub fn config(&self, http: HttpOptions) -> CoderConfig {
        CoderConfig {
            url: self.url.as_ref().map(|u| u.value.clone()),
            session_token: self.session_token.as_ref().map(|t| t.value.clone()),
            http,
        }
    }

    /// True when a URL or a token is set.
    pub fn configured(&self) -> bool {
        self.url.is_some() || self.session_token.is_some()
    }
}

/// Molecule's resolved settings.
#[derive(Debug, Clone, Serialize)]
pub struct MoleculeSettings {
    /// CP admin API base URL.
    pub cp_url: Setting<String>,
    /// The CP-admin route prefix.
    pub cp_admin_prefix: Option<Setting<String>>,
    /// The CP admin token.
    pub cp_admin_token: Option<TokenSetting>,
    /// The tenant API base URL.
    pub api_url: Option<Setting<String>>,
    /// The tenant API key.
    pub org_api_key: Option<TokenSetting>,
    /// What to tell the user.
    pub warnings: Vec<Warning>,
}

impl MoleculeSettings {
    /// The client configuration.
    pub fn config(&self, http: HttpOptions) -> MoleculeConfig {
        MoleculeConfig {
            cp_url: self.cp_url.value.clone(),
            cp_admin_prefix: self.cp_admin_prefix.as_ref().map(|p| p.value.clone()),
            cp_admin_token: self.cp_admin_token.as_ref().map(|t| t.value.clone()),
            api_url: self.api_url.as_ref().map(|u| u.value.clone()),
            org_api_key: self.org_api_key.as_ref().map(|t| t.value.clone()),
            http,
        }
    }

    /// True when the CP admin API has a token, or a URL other than the default.
    pub fn configured(&self) -> bool {
        self.cp_admin_token.is_some() || self.cp_url.source != Source::Default
    }
}

fn given_token(
    value: &Option<Secret>,
    file: &Option<PathBuf>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<TokenSetting>> {
    if let Some(path) = file {
        check_mode(path, warnings);
        return Ok(Some(TokenSetting {
            value: Secret::from_file(path)?,
            source: Source::GivenFile { path: path.clone() },
        }));
    }
    Ok(value
        .clone()
        .filter(|s| !s.is_empty())
        .map(|value| TokenSetting {
            value,
            source: Source::Given,
        }))
}

fn context_token(
    context: &str,
    what: &str,
    file: &Option<PathBuf>,
    var: &Option<String>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<TokenSetting>> {
    if let Some(path) = file {
        check_mode(path, warnings);
        return Ok(Some(TokenSetting {
            value: Secret::from_file(path)?,
            source: Source::ContextFile {
                context: context.into(),
                path: path.clone(),
            },
        }));
    }
    if let Some(var) = var {
        return match env(var) {
            Some(t) => Ok(Some(TokenSetting {
                value: Secret::new(t),
                source: Source::ContextEnv {
                    context: context.into(),
                    var: var.clone(),
                },
            })),
            None => Err(Error::InvalidInput(format!(
                "the context {context:?} reads {what} from the environment variable {var}, \
                 which is not set: set it, or change the context; nothing was sent"
            ))),
        };
    }
    Ok(None)
}

/// Warns about a token file the group or others may read.
fn check_mode(path: &Path, warnings: &mut Vec<Warning>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                warnings.push(Warning::ReadableByOthers {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, warnings);
}

/// Reads `coder login`'s `url` file (first line, trimmed); `None` when absent or empty.
fn read_login_url(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_URL_BYTES).read_to_string(&mut text).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
