//! How `fleet` and `fleet-mcp` say where each setting came from and what `fleet doctor`
//! found: sources, warnings, the doctor's verdicts and advice (in `fleet`'s flags and
//! commands, which `fleet-mcp --check` prints to a terminal too).

use fleet::{
    context::{self, CoderSettings, MoleculeSettings, Resolver, Source, TokenSetting, Warning},
    doctor::{self, Check, DoctorOptions, Problem},
};

/// A word as a POSIX shell reads it: as it is when safe, else single-quoted.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.=/:,@+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// From now on never prints any token the settings hold (both binaries, before any output).
pub fn never_print_tokens(coder: &CoderSettings, molecule: &MoleculeSettings) {
    for t in [
        &coder.session_token,
        &molecule.cp_admin_token,
        &molecule.org_api_key,
    ]
    .into_iter()
    .flatten()
    {
        crate::safe_text::never_print(&t.value);
    }
}

/// A warning in words.
pub fn warning_text(w: &Warning) -> String {
    match w {
        Warning::ReadableByOthers { path, mode } => {
            let p = shell_word(&path.display().to_string());
            format!(
                "the token file {} can be read by other users (mode {mode:04o}): run `chmod 600 {p}`",
                path.display()
            )
        }
        Warning::Unresolved { message } => message.clone(),
        Warning::CoderLoginOtherUrl { login_url, url } => format!(
            "`coder login` stored a session for {login_url}, not for {url}: it is not sent there"
        ),
        _ => "see `fleet context show`".into(),
    }
}

/// Where a value came from, in `fleet`'s words (`flag` is the option that gives it).
pub fn source_text(source: &Source, flag: &str) -> String {
    match source {
        Source::Given => flag.to_string(),
        Source::GivenFile { path } => format!("{flag}-file {}", path.display()),
        Source::Env { var } => format!("${var}"),
        Source::Context { context } => format!("context {context}"),
        Source::ContextFile { context, path } => {
            format!("file {} (context {context})", path.display())
        }
        Source::ContextEnv { context, var } => format!("${var} (context {context})"),
        Source::CoderLogin { path, context } => format!(
            "coder login ({}){}",
            path.display(),
            context
                .as_ref()
                .map(|c| format!(", context {c}"))
                .unwrap_or_default()
        ),
        Source::Default => "the default".to_string(),
        _ => "elsewhere".to_string(),
    }
}

/// A token's source and fingerprint (never the token).
pub fn token_text(t: &TokenSetting, flag: &str) -> String {
    format!(
        "from {} (sha256 {}…)",
        source_text(&t.source, flag),
        fleet::context::fingerprint(&t.value)
    )
}

/// The lines that say which context is in use and where each value came from (shared with
/// `fleet doctor`).
pub fn describe(
    resolver: &Resolver,
    coder: &context::CoderSettings,
    molecule: &context::MoleculeSettings,
) -> Vec<String> {
    let mut lines = Vec::new();
    let file = resolver
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(none: HOME is not set)".into());
    match resolver.chosen() {
        Some(c) => lines.push(format!(
            "Context: {} ({}) from {file}",
            c.name,
            match c.by {
                context::ChosenBy::Given => "--context",
                context::ChosenBy::Env => "$FLEET_CONTEXT",
                _ => "current context",
            }
        )),
        None => lines.push(format!("Context: none (config file {file})")),
    }
    lines.push("Coder".into());
    match &coder.url {
        Some(u) => lines.push(format!(
            "  URL            {}  (from {})",
            u.value,
            source_text(&u.source, "--coder-url")
        )),
        None => lines.push("  URL            not set".into()),
    }
    match &coder.session_token {
        Some(t) => lines.push(format!(
            "  session token  {}",
            token_text(t, "--coder-session-token")
        )),
        None => lines.push("  session token  not set".into()),
    }
    if let Some(d) = &coder.login_dir {
        lines.push(format!("  coder login    {}", d.display()));
    }
    lines.push("Molecule".into());
    lines.push(format!(
        "  CP admin URL   {}  (from {})",
        molecule.cp_url.value,
        source_text(&molecule.cp_url.source, "--molecule-cp-url")
    ));
    if let Some(p) = &molecule.cp_admin_prefix {
        lines.push(format!(
            "  route prefix   {}  (from {})",
            p.value,
            source_text(&p.source, "--cp-admin-prefix")
        ));
    }
    match &molecule.cp_admin_token {
        Some(t) => lines.push(format!(
            "  CP admin token {}",
            token_text(t, "--cp-admin-token")
        )),
        None => lines.push("  CP admin token not set".into()),
    }
    match &molecule.api_url {
        Some(u) => lines.push(format!(
            "  tenant URL     {}  (from {})",
            u.value,
            source_text(&u.source, "--molecule-api-url")
        )),
        None => lines.push("  tenant URL     not set".into()),
    }
    if let Some(t) = &molecule.org_api_key {
        lines.push(format!(
            "  tenant API key {}",
            token_text(t, "--molecule-org-api-key")
        ));
    }
    lines
}

/// The doctor's findings, for the CLI and `fleet-mcp --check`.
pub struct Findings {
    pub coder_settings: CoderSettings,
    pub molecule_settings: MoleculeSettings,
    pub coder: doctor::CoderReport,
    pub molecule: doctor::MoleculeReport,
}

impl Findings {
    /// 0 every configured plane works · 1 one does not · 2 nothing is configured.
    pub fn exit_code(&self) -> i32 {
        if !self.coder.configured && !self.molecule.configured {
            2
        } else if (self.coder.configured && !self.coder.ok)
            || (self.molecule.configured && !self.molecule.ok)
        {
            1
        } else {
            0
        }
    }
}

/// Runs every check of the configured planes (reads only).
pub async fn examine(
    coder_settings: CoderSettings,
    molecule_settings: MoleculeSettings,
    options: &DoctorOptions,
) -> Findings {
    let (coder, molecule) = tokio::join!(
        doctor::check_coder(&coder_settings, options),
        doctor::check_molecule(&molecule_settings, options)
    );
    Findings {
        coder_settings,
        molecule_settings,
        coder,
        molecule,
    }
}

/// The verdict lines: each plane, each check, what to do.
pub fn report_lines(f: &Findings) -> Vec<String> {
    let mut lines = Vec::new();
    let mut plane = |name: &str,
                     configured: bool,
                     ok: bool,
                     checks: &[Check],
                     extra: Option<String>,
                     advice: Vec<String>| {
        if !configured {
            lines.push(format!("{name}: not configured"));
            return;
        }
        lines.push(format!("{name}: {}", if ok { "works" } else { "FAILED" }));
        for c in checks {
            lines.push(format!(
                "  {:<10}{}  {}",
                c.name,
                if c.ok { "ok    " } else { "FAILED" },
                c.detail
            ));
        }
        lines.extend(extra);
        for a in advice {
            lines.push(format!("  → {a}"));
        }
    };
    plane(
        "Coder",
        f.coder.configured,
        f.coder.ok,
        &f.coder.checks,
        f.coder.websockets.as_ref().map(|w| {
            format!(
                "  {:<10}{}  {}",
                "websocket",
                if w.available { "ok    " } else { "no    " },
                w.detail
            )
        }),
        advice(&f.coder.checks, &f.coder_settings, None),
    );
    plane(
        "Molecule",
        f.molecule.configured,
        f.molecule.ok,
        &f.molecule.checks,
        None,
        advice(
            &f.molecule.checks,
            &f.coder_settings,
            Some(&f.molecule_settings),
        ),
    );
    if !f.coder.configured && !f.molecule.configured {
        lines.push(
            "Nothing is configured: run `coder login` (fleet uses what it stored), or save a \
             context with `fleet context add NAME …`, or set CODER_URL and CODER_SESSION_TOKEN \
             / MOLECULE_CP_URL and CP_ADMIN_API_TOKEN."
                .into(),
        );
    }
    lines
}

fn token_where(t: Option<&TokenSetting>, flag: &str) -> String {
    t.map(|t| token_text(t, flag))
        .unwrap_or_else(|| "(not set)".into())
}

/// What to do about each failed check, in `fleet`'s words. `molecule` is set for the
/// Molecule plane.
pub fn advice(
    checks: &[Check],
    coder: &CoderSettings,
    molecule: Option<&MoleculeSettings>,
) -> Vec<String> {
    let mut out = Vec::new();
    for c in checks.iter().filter(|c| !c.ok) {
        let (token, source, flag) = match (molecule, c.name) {
            (None, _) => (
                "the Coder session token",
                token_where(coder.session_token.as_ref(), "--coder-session-token"),
                "--coder-url",
            ),
            (Some(m), "tenant") => (
                "the tenant API key",
                token_where(m.org_api_key.as_ref(), "--molecule-org-api-key"),
                "--molecule-api-url",
            ),
            (Some(m), _) => (
                "the CP admin token",
                token_where(m.cp_admin_token.as_ref(), "--cp-admin-token"),
                "--molecule-cp-url",
            ),
        };
        let url = c.url.as_deref().unwrap_or("the server");
        let text = match &c.problem {
            Some(Problem::TokenRefused { status: 401 }) => format!(
                "the token was refused (401): {token} {source} is wrong or expired; replace it{}",
                if molecule.is_none() {
                    " (`coder login` again, or `coder tokens create`)"
                } else {
                    ""
                }
            ),
            Some(Problem::TokenRefused { status }) => format!(
                "the token was accepted but may not do this ({status}): use {token} of an account with the rights"
            ),
            Some(Problem::TimedOut { after_secs }) => format!(
                "{url} did not answer within {after_secs}s: check the URL ({}) and that the server is up",
                url_source(c, coder, molecule, flag)
            ),
            Some(Problem::Unreachable) => format!(
                "{url} could not be reached: check the URL ({}) and the network",
                url_source(c, coder, molecule, flag)
            ),
            Some(Problem::Tls) => format!(
                "the TLS handshake with {url} failed (its certificate did not verify, or it does \
                 not speak TLS there): check the URL (https or http, the port) and the \
                 machine's CA certificates (a private CA: SSL_CERT_FILE=/path/to/ca.pem)"
            ),
            Some(Problem::NotConfigured { missing }) => match missing.as_str() {
                "session_token" => "no session token: run `coder login`, set CODER_SESSION_TOKEN, or pass --coder-session-token-file PATH (or save it in a context)".into(),
                "url" => "no URL: set CODER_URL or pass --coder-url URL (or save it in a context)".into(),
                "cp_admin_token" => "no CP admin token: set CP_ADMIN_API_TOKEN or pass --cp-admin-token-file PATH (or save it in a context)".into(),
                "org_api_key" => "no tenant API key: set MOLECULE_ORG_API_KEY or pass --molecule-org-api-key-file PATH".into(),
                other => format!("{other} is not set"),
            },
            Some(Problem::Status { status }) => format!(
                "{url} answered {status}: check the URL ({})",
                url_source(c, coder, molecule, flag)
            ),
            _ => format!("see the detail above ({})", c.name),
        };
        out.push(text);
    }
    out
}

fn url_source(
    c: &Check,
    coder: &CoderSettings,
    molecule: Option<&MoleculeSettings>,
    flag: &str,
) -> String {
    let source: Option<&Source> = match (molecule, c.name) {
        (None, _) => coder.url.as_ref().map(|u| &u.source),
        (Some(m), "tenant") => m.api_url.as_ref().map(|u| &u.source),
        (Some(m), _) => Some(&m.cp_url.source),
    };
    source
        .map(|s| format!("from {}", source_text(s, flag)))
        .unwrap_or_else(|| "not set".into())
}
