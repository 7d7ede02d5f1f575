//! Global options, configuration from flags and environment, exit codes, error rendering.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum, parser::ValueSource};
use fleet::{
    CoderConfig, Error, HttpOptions, MoleculeConfig, Secret,
    context::{CoderSettings, Given, MoleculeSettings, Resolver, Warning},
    operation::Severity,
};

pub use crate::config_text::{shell_word, source_text, token_text, warning_text};
use crate::{
    command::{CommandLine, NameKind, Printed},
    out,
};
use fleet::text::escape_one_line;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    // Text for people; progress on stderr.
    Text,
    // One JSON document on stdout for programs; no progress display.
    Json,
}

/// How much is logged to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    // Nothing.
    Off,
    // Errors only.
    Error,
    // Warnings and errors (the default).
    Warn,
    // What fleet is doing.
    Info,
    // Every HTTP request (method, path, status, time; never a token).
    Debug,
    // Everything.
    Trace,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// text (the default: for people, progress on stderr) or json (one document on stdout)
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text, env = "FLEET_OUTPUT", value_name = "FORMAT", hide_possible_values = true, hide_default_value = true, help_heading = "Output")]
    pub output: OutputFormat,

    /// On stderr: off, error, warn (the default), info (what fleet does, and why), debug, trace
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Warn, env = "FLEET_LOG_LEVEL", value_name = "LEVEL", hide_possible_values = true, hide_default_value = true, help_heading = "Output")]
    pub log_level: LogLevel,

    /// Molecule CP admin API base URL [default: CP_API_URL, else https://api.moleculesai.app].
    #[arg(
        long,
        global = true,
        env = "MOLECULE_CP_URL",
        value_name = "URL",
        help_heading = "Molecule"
    )]
    pub molecule_cp_url: Option<String>,

    /// The CP-admin route prefix: /cp/admin (the published contract) or /api/v1/admin (what
    /// the platform's management server calls). Unset: /cp/admin, or /api/v1/admin when a GET
    /// finds no route at /cp/admin (never a POST to an unconfirmed route).
    #[arg(
        long,
        global = true,
        env = "MOLECULE_CP_ADMIN_PREFIX",
        value_name = "PREFIX",
        help_heading = "Molecule"
    )]
    pub cp_admin_prefix: Option<String>,

    /// CP admin API token. Prefer the environment or --cp-admin-token-file: a flag is visible
    /// to other users of the machine.
    #[arg(
        long,
        global = true,
        env = "CP_ADMIN_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Molecule"
    )]
    pub cp_admin_token: Option<String>,

    /// Read the CP admin API token from a file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "cp_admin_token",
        help_heading = "Molecule"
    )]
    pub cp_admin_token_file: Option<PathBuf>,

    /// Molecule tenant API base URL (used to look up a workspace's provider).
    #[arg(
        long,
        global = true,
        env = "MOLECULE_API_URL",
        value_name = "URL",
        help_heading = "Molecule"
    )]
    pub molecule_api_url: Option<String>,

    /// Molecule tenant API key. Prefer the environment or --molecule-org-api-key-file.
    #[arg(
        long,
        global = true,
        env = "MOLECULE_ORG_API_KEY",
        hide_env_values = true,
        value_name = "KEY",
        help_heading = "Molecule"
    )]
    pub molecule_org_api_key: Option<String>,

    /// Read the Molecule tenant API key from a file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "molecule_org_api_key",
        help_heading = "Molecule"
    )]
    pub molecule_org_api_key_file: Option<PathBuf>,

    /// Coder deployment URL (without /api/v2).
    #[arg(
        long,
        global = true,
        env = "CODER_URL",
        value_name = "URL",
        help_heading = "Coder"
    )]
    pub coder_url: Option<String>,

    /// Coder session token. Prefer the environment or --coder-session-token-file.
    #[arg(
        long,
        global = true,
        env = "CODER_SESSION_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Coder"
    )]
    pub coder_session_token: Option<String>,

    /// Read the Coder session token from a file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "coder_session_token",
        help_heading = "Coder"
    )]
    pub coder_session_token_file: Option<PathBuf>,

    /// Use this context of the config file (`fleet context list`) [env: FLEET_CONTEXT; default:
    /// the config file's current context].
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Allow http:// to a host that is not loopback (tokens would cross the network in clear).
    #[arg(long, global = true)]
    pub insecure_http: bool,

    /// Run against the built-in simulator: start it in-process on a free loopback port and
    /// point every client at it. No credentials needed; nothing real is touched.
    #[arg(long, global = true, help_heading = "Simulator")]
    pub sim: bool,

    /// With --sim: how much faster than real time the simulator runs (a migration takes
    /// ~16 minutes at 1, ~16 s at 60).
    #[arg(long, global = true, default_value_t = 60.0, value_name = "X", value_parser = parse_speed, help_heading = "Simulator")]
    pub sim_speed: f64,

    /// With --sim: also seed N outdated Coder workspaces alice/bulk-0001… and N Molecule
    /// workspaces ws-bulk-0001… (fleet-scale runs and benchmarks).
    #[arg(
        long,
        global = true,
        default_value_t = 0,
        value_name = "N",
        help_heading = "Simulator"
    )]
    pub sim_bulk: usize,

    /// With --sim: which CP-admin route layouts the simulator serves.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = SimCpAdminLayout::Both,
        value_name = "LAYOUT",
        help_heading = "Simulator"
    )]
    pub sim_cp_admin_layout: SimCpAdminLayout,

    /// Set by --sim: the simulator's configurations, used instead of flags and environment.
    #[arg(skip)]
    pub sim_configs: Option<(MoleculeConfig, CoderConfig)>,

    /// Set by --sim: the longest pause between two status reads, scaled to the simulator's speed.
    #[arg(skip)]
    pub sim_poll: Option<Duration>,

    /// The ids of the options given on the command line (the rest came from the environment
    /// or their defaults).
    #[arg(skip)]
    pub command_line: Vec<&'static str>,

    /// The config file and the context in use, read once (see [`GlobalOpts::resolve`]).
    #[arg(skip)]
    pub resolver: Option<Resolver>,

    #[arg(skip)]
    coder_settings: std::sync::OnceLock<Result<CoderSettings, Error>>,

    #[arg(skip)]
    molecule_settings: std::sync::OnceLock<Result<MoleculeSettings, Error>>,
}

/// The ids of the global options that configure a control plane or pick a context.
const CONFIG_IDS: [&str; 11] = [
    "context",
    "coder_url",
    "coder_session_token",
    "coder_session_token_file",
    "molecule_cp_url",
    "cp_admin_prefix",
    "cp_admin_token",
    "cp_admin_token_file",
    "molecule_api_url",
    "molecule_org_api_key",
    "molecule_org_api_key_file",
];

/// True when the option `id` was given on the command line (in any subcommand).
pub fn on_command_line(m: &clap::ArgMatches, id: &str) -> bool {
    if let Ok(Some(_)) = m.try_get_raw(id) {
        if m.value_source(id) == Some(ValueSource::CommandLine) {
            return true;
        }
    }
    m.subcommand()
        .is_some_and(|(_, sub)| on_command_line(sub, id))
}

/// The CP-admin route layouts a simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimCpAdminLayout {
    /// Only /cp/admin/… (the published contract).
    CpAdmin,
    /// Only /api/v1/admin/… (what the platform's management server calls).
    ApiV1,
    /// Both.
    Both,
    /// Neither (every CP-admin route answers a router's 404).
    None,
}

#[cfg(feature = "sim")]
impl From<SimCpAdminLayout> for fleet::sim::CpAdminLayout {
    fn from(l: SimCpAdminLayout) -> Self {
        match l {
            SimCpAdminLayout::CpAdmin => fleet::sim::CpAdminLayout::CpAdmin,
            SimCpAdminLayout::ApiV1 => fleet::sim::CpAdminLayout::ApiV1,
            SimCpAdminLayout::Both => fleet::sim::CpAdminLayout::Both,
            SimCpAdminLayout::None => fleet::sim::CpAdminLayout::None,
        }
    }
}

/// Parses a simulator speed factor (a positive number).
pub fn parse_speed(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!(
            "{s:?} is not a positive number; write e.g. 1, 10 or 100"
        )),
    }
}

/// Tokens given as flags, to warn about (they show in `ps`).
pub fn warn_tokens_on_command_line(matches: &clap::ArgMatches) {
    fn find(m: &clap::ArgMatches, id: &str) -> Option<ValueSource> {
        if let Ok(Some(_)) = m.try_get_raw(id) {
            if let Some(src) = m.value_source(id) {
                if src == ValueSource::CommandLine {
                    return Some(src);
                }
            }
        }
        m.subcommand().and_then(|(_, sub)| find(sub, id))
    }
    for (id, flag, var) in [
        ("cp_admin_token", "--cp-admin-token", "CP_ADMIN_API_TOKEN"),
        (
            "molecule_org_api_key",
            "--molecule-org-api-key",
            "MOLECULE_ORG_API_KEY",
        ),
        (
            "coder_session_token",
            "--coder-session-token",
            "CODER_SESSION_TOKEN",
        ),
    ] {
        if find(matches, id).is_some() {
            out::err(format!(
                "warning: {flag} is visible to other users of this machine (ps, shell history); \
                 prefer {var} or {flag}-file"
            ));
        }
    }
}

impl GlobalOpts {
    fn http(&self) -> HttpOptions {
        HttpOptions {
            insecure_http: self.insecure_http,
            ..HttpOptions::default()
        }
    }

    /// Registers every token given by flag or environment with the output, so that none is
    /// ever printed, whichever control plane echoes it (tokens from files are registered when
    /// they are read).
    pub fn never_print_tokens(&self) {
        for token in [
            &self.cp_admin_token,
            &self.molecule_org_api_key,
            &self.coder_session_token,
        ]
        .into_iter()
        .flatten()
        {
            out::never_print(&Secret::new(token.as_str()));
        }
    }

    /// The longest pause between two status reads, when something overrides the defaults
    /// (--sim scales it to the simulator's speed; FLEET_POLL_INTERVAL_MS sets it).
    pub fn poll_override(&self) -> Option<Duration> {
        fleet::config::poll_interval_from_env().or(self.sim_poll)
    }

    /// Notes which configuration options came from the command line.
    pub fn note_command_line(&mut self, matches: &clap::ArgMatches) {
        self.command_line = CONFIG_IDS
            .into_iter()
            .filter(|id| on_command_line(matches, id))
            .collect();
    }

    fn given_here(&self, id: &str) -> bool {
        self.command_line.contains(&id)
    }

    /// What the command line gave (values clap took from the environment are left to the
    /// library, which reads the environment itself and says so).
    pub fn given(&self) -> Given {
        let pick = |id: &str, v: &Option<String>| {
            if self.given_here(id) { v.clone() } else { None }
        };
        let secret = |id: &str, v: &Option<String>| pick(id, v).map(Secret::new);
        Given {
            context: self.context.clone(),
            coder_url: pick("coder_url", &self.coder_url),
            coder_session_token: secret("coder_session_token", &self.coder_session_token),
            coder_session_token_file: self.coder_session_token_file.clone(),
            molecule_cp_url: pick("molecule_cp_url", &self.molecule_cp_url),
            cp_admin_prefix: pick("cp_admin_prefix", &self.cp_admin_prefix),
            cp_admin_token: secret("cp_admin_token", &self.cp_admin_token),
            cp_admin_token_file: self.cp_admin_token_file.clone(),
            molecule_api_url: pick("molecule_api_url", &self.molecule_api_url),
            org_api_key: secret("molecule_org_api_key", &self.molecule_org_api_key),
            org_api_key_file: self.molecule_org_api_key_file.clone(),
        }
    }

    /// Reads the config file and picks the context, once: an unknown context or a malformed
    /// file is refused here, before any request.
    pub fn resolve(&mut self) -> Result<&Resolver, Error> {
        if self.resolver.is_none() {
            self.resolver = Some(Resolver::new(self.given())?);
        }
        Ok(self.resolver.as_ref().expect("just set"))
    }

    fn resolver(&self) -> Result<Resolver, Error> {
        match &self.resolver {
            Some(r) => Ok(r.clone()),
            None => Resolver::new(self.given()),
        }
    }

    /// Coder's settings with their sources (resolved once; warnings printed once).
    pub fn coder_settings(&self) -> Result<CoderSettings, Error> {
        self.coder_settings
            .get_or_init(|| {
                let settings = self.resolver()?.coder()?;
                if let Some(t) = &settings.session_token {
                    out::never_print(&t.value);
                }
                print_warnings(&settings.warnings);
                if let Some(u) = &settings.url {
                    tracing::info!(
                        "Coder URL {} from {}",
                        u.value,
                        source_text(&u.source, "--coder-url")
                    );
                }
                if let Some(t) = &settings.session_token {
                    tracing::info!(
                        "Coder session token {}",
                        token_text(t, "--coder-session-token")
                    );
                }
                Ok(settings)
            })
            .clone()
    }

    /// Molecule's settings with their sources (resolved once; warnings printed once).
    pub fn molecule_settings(&self) -> Result<MoleculeSettings, Error> {
        self.molecule_settings
            .get_or_init(|| {
                let settings = self.resolver()?.molecule()?;
                for t in [&settings.cp_admin_token, &settings.org_api_key]
                    .into_iter()
                    .flatten()
                {
                    out::never_print(&t.value);
                }
                print_warnings(&settings.warnings);
                tracing::info!(
                    "Molecule CP URL {} from {}",
                    settings.cp_url.value,
                    source_text(&settings.cp_url.source, "--molecule-cp-url")
                );
                if let Some(t) = &settings.cp_admin_token {
                    tracing::info!("CP admin token {}", token_text(t, "--cp-admin-token"));
                }
                if let Some(u) = &settings.api_url {
                    tracing::info!(
                        "Molecule tenant API URL {} from {}",
                        u.value,
                        source_text(&u.source, "--molecule-api-url")
                    );
                }
                if let Some(t) = &settings.org_api_key {
                    tracing::info!("tenant API key {}", token_text(t, "--molecule-org-api-key"));
                }
                Ok(settings)
            })
            .clone()
    }

    /// The Molecule configuration: flags, environment, the context in use.
    pub fn molecule_config(&self) -> Result<MoleculeConfig, Error> {
        if let Some((molecule, _)) = &self.sim_configs {
            let prefix = self
                .cp_admin_prefix
                .clone()
                .filter(|s| !s.trim().is_empty());
            return Ok(MoleculeConfig {
                cp_admin_prefix: prefix,
                ..molecule.clone()
            });
        }
        Ok(self.molecule_settings()?.config(self.http()))
    }

    /// The Coder configuration: flags, environment, the context in use, `coder login`.
    pub fn coder_config(&self) -> Result<CoderConfig, Error> {
        if let Some((_, coder)) = &self.sim_configs {
            return Ok(coder.clone());
        }
        Ok(self.coder_settings()?.config(self.http()))
    }
}

/// Prints what the user should know about the configuration (nothing stops).
pub fn print_warnings(warnings: &[Warning]) {
    for w in warnings {
        out::err(format!("warning: {}", warning_text(w)));
    }
}

/// A whole number (a count) for a flag, checked by the SDK's rule for it (`check` says the
/// range, in the words both faces share).
pub fn parse_count(s: &str, check: fn(usize) -> fleet::Result<usize>) -> Result<usize, String> {
    let n = s
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    check(n).map_err(|e| message(&e))
}

/// A duration in the words `--help` and the command lines fleet prints use (`5m`, `1h 30m`):
/// the inverse of [`parse_duration`].
pub fn duration_words(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses a duration like `90s`, `20m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}; write a duration like 90s, 20m or 1h30m"))?;
    if d.is_zero() {
        return Err("a duration must be longer than zero".into());
    }
    Ok(d)
}

/// The exit code of a typed ending, the one mapping of single and batch runs on both planes
/// (see DESIGN.md and `--help`): 0 ok · 2 refused before anything was changed (pre-flight,
/// invalid input, not configured) · 1 failed · 3 timed out · 130 interrupted. A batch exits
/// with its worst ending's code (130 > 3 > 1 > 2 > 0).
pub fn code(severity: Severity) -> i32 {
    match severity {
        Severity::Ok => 0,
        Severity::Refused => 2,
        Severity::Failed => 1,
        Severity::TimedOut => 3,
        Severity::Interrupted => 130,
    }
}

/// The exit code for an error.
pub fn exit_code(e: &Error) -> i32 {
    code(Severity::of(e))
}

/// The exit code of a Coder batch: its worst workspace's.
pub fn batch_exit_code(report: &fleet::coder::FleetReport) -> i32 {
    code(report.worst)
}

/// The command line that finishes a job left half-way.
pub fn finish_command(step: &fleet::operation::FinishStep) -> Printed {
    use fleet::operation::FinishStep;
    let (mut c, workspace, parameters) = match step {
        FinishStep::Update {
            workspace,
            template_version_id,
            parameters,
        } => {
            let mut c = CommandLine::new(&["coder", "update"]);
            c.option("--template-version", &template_version_id.to_string());
            (c, workspace, parameters)
        }
        FinishStep::Restart {
            workspace,
            parameters,
        } => (
            CommandLine::new(&["coder", "restart"]),
            workspace,
            parameters,
        ),
    };
    for (k, v) in parameters {
        c.option("--parameter", &format!("{k}={v}"));
    }
    c.needs_names()
        .name(workspace, NameKind::CoderWorkspace)
        .build()
}

/// The command line that follows something still running.
pub fn follow_command(step: &fleet::operation::FollowStep) -> Printed {
    use fleet::operation::FollowStep;
    match step {
        FollowStep::CoderWorkspace { workspace } => CommandLine::new(&["coder", "show"])
            .needs_names()
            .name(workspace, NameKind::CoderWorkspace)
            .build(),
        FollowStep::Migration { workspace_id } => migration_status_command(workspace_id, true),
    }
}

/// `fleet molecule migration-status [--wait] -- ID`.
pub fn migration_status_command(workspace_id: &str, wait: bool) -> Printed {
    let mut c = CommandLine::new(&["molecule", "migration-status"]);
    if wait {
        c.flag("--wait");
    }
    c.needs_names()
        .name(workspace_id, NameKind::MoleculeWorkspace)
        .build()
}

/// The flag (or argument) of `fleet` that gives an input.
fn flag(input: fleet::Input) -> &'static str {
    use fleet::Input;
    match input {
        Input::Confirm => "--confirm",
        Input::From => "--from <aws|hetzner|gcp>",
        Input::FromInstanceId => "--from-instance-id <ID> (one workspace per command)",
        Input::Env => "--env NAME=VALUE",
        Input::TemplateVersion => "--template-version ID",
        Input::Parameters => "--parameter NAME=VALUE (or --parameters-file FILE)",
        Input::Workspaces => "workspace names",
        Input::AllOutdated => "--all-outdated",
        Input::Template => "--template NAME",
        Input::AllOwners => "--all-owners",
        Input::Parallel => "--parallel N",
        Input::IncludeBusy => "--include-busy",
        Input::IncludePrebuilds => "--include-prebuilds",
        Input::WaitForIdle => "--wait-for-idle DURATION",
        Input::Canary => "--canary N",
        Input::MaxFailures => "--max-failures K",
        Input::ReadyTimeout => "--ready-timeout DURATION",
        Input::MigrationTimeout => "--timeout DURATION",
        _ => "the missing input (see --help)",
    }
}

/// The bare flag of an input, without its placeholder (`--from`).
fn flag_name(input: fleet::Input) -> &'static str {
    let full = flag(input);
    full.split(' ').next().unwrap_or(full)
}

/// The flag of `fleet` that does what a configuration variable does.
fn config_flag(variable: &str) -> Option<&'static str> {
    Some(match variable {
        "MOLECULE_CP_URL" | "CP_API_URL" => "--molecule-cp-url URL",
        "MOLECULE_CP_ADMIN_PREFIX" => "--cp-admin-prefix PREFIX",
        "CP_ADMIN_API_TOKEN" => "--cp-admin-token-file PATH",
        "MOLECULE_API_URL" => "--molecule-api-url URL",
        "MOLECULE_ORG_API_KEY" => "--molecule-org-api-key-file PATH",
        "CODER_URL" => "--coder-url URL",
        "CODER_SESSION_TOKEN" => "--coder-session-token-file PATH",
        _ => return None,
    })
}

/// One remedy as a clause of a sentence, in `fleet`'s words (flags and commands).
fn remedy_clause(remedy: &fleet::Remedy) -> String {
    use fleet::{Input, Look, Remedy};
    match remedy {
        Remedy::Give {
            input: Input::Confirm,
            ..
        } => "pass --confirm once you mean it".into(),
        Remedy::Give { input, value } => match value {
            // `--flag VALUE`: the flag's own placeholder is replaced by the value.
            Some(v) => match crate::command::option_words(flag_name(*input), v) {
                Ok(words) => format!("pass {words}"),
                Err(_) => format!("pass {}", flag(*input)),
            },
            None => format!("pass {}", flag(*input)),
        },
        Remedy::GiveOneOf { inputs } => {
            let names: Vec<&str> = inputs.iter().map(|i| flag(*i)).collect();
            format!("give exactly one of: {}", names.join(", "))
        }
        Remedy::LeaveOut { input } => format!("leave {} out", flag_name(*input)),
        Remedy::AllowInsecureHttp => "pass --insecure-http if you really mean it".into(),
        Remedy::GiveWithin { input, min, max } => {
            let say = |v: u64| match input.is_seconds() {
                true => duration_words(std::time::Duration::from_secs(v)),
                false => v.to_string(),
            };
            format!(
                "pass {} from {} to {}",
                flag_name(*input),
                say(*min),
                say(*max)
            )
        }
        Remedy::Configure { variable, values } => {
            let mut clause = format!("set {variable}");
            if let Some(flag) = config_flag(variable) {
                clause.push_str(&format!(" or pass {flag}"));
            }
            if let Some(values) = values {
                clause.push_str(&format!(" ({values})"));
            }
            clause
        }
        Remedy::UpdateToActive { workspace } => format!(
            "update it to the active version instead: {}",
            command_for(&["coder", "update"], Some(workspace))
        ),
        Remedy::Look { at } => match at {
            Look::Workspaces => format!(
                "run {} to see the workspaces",
                command_for(&["coder", "list"], None)
            ),
            Look::Workspace { workspace } => format!(
                "run {} to see the versions it runs and its template's active version",
                command_for(&["coder", "show"], Some(workspace.as_deref().unwrap_or("")))
            ),
            Look::TemplateVersion { id } => format!(
                "run {} to see its import job",
                command_for(&["coder", "template-version"], Some(&id.to_string()))
            ),
            _ => "see --help".into(),
        },
        _ => "see --help".into(),
    }
}

/// A command inside advice, in backquotes: `fleet SUBCOMMAND -- NAME` with a name fleet
/// accepts, else with the placeholder `WORKSPACE` and the reason the name is left out.
fn command_for(subcommand: &[&'static str], name: Option<&str>) -> String {
    let Some(name) = name else {
        return format!(
            "`{}`",
            CommandLine::new(subcommand)
                .build()
                .command
                .unwrap_or_default()
        );
    };
    let printed = CommandLine::new(subcommand)
        .name(name, NameKind::CoderWorkspace)
        .build();
    let command = printed.command.clone().unwrap_or_default();
    if name.is_empty() {
        return format!("`{command} -- WORKSPACE`");
    }
    match printed.left_out.is_empty() {
        true => format!("`{command}`"),
        false => format!("`{command} -- WORKSPACE` ({})", printed.left_out_text()),
    }
}

/// A message followed by what to do about it in `fleet`'s words (`To go on, pass --confirm
/// once you mean it.`), when the remedies say.
pub fn advised(message: &str, remedies: &[fleet::Remedy]) -> String {
    crate::advice::advised(message, remedies, remedy_clause)
}

/// An error's message in `fleet`'s words: the library's message (with the flags that stand
/// for the variables a missing configuration names), then what to do about it.
pub fn message(e: &Error) -> String {
    let mut text = e.to_string();
    if let Error::NotConfigured { vars, .. } = e.root() {
        let flags: Vec<&str> = vars.iter().filter_map(|v| config_flag(v)).collect();
        if !flags.is_empty() {
            text.push_str(&format!(" (or pass {})", flags.join(" and ")));
        }
    }
    advised(&text, e.remedies())
}

/// Prints why a rollout halted and what it did not attempt, then the command that resumes
/// it (`resumes` says what a re-run does), on either plane.
pub fn print_halt(halt: &fleet::rollout::Halt, resumes: &str, resume: Option<&Printed>) {
    out::line("");
    out::line(format!(
        "Rollout halted: {} ({} failure(s)); {} workspace(s) not attempted: {}",
        halt.reason,
        halt.failures,
        halt.not_attempted.len(),
        halt.not_attempted
            .iter()
            .map(|n| escape_one_line(n))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(command) = resume {
        out::line(command.sentence(&format!("to resume ({resumes})")));
    }
}

/// Prints an error the way the output format asks, and returns its exit code.
pub fn report_error(e: &Error, format: OutputFormat) -> i32 {
    let code = exit_code(e);
    if format == OutputFormat::Json {
        let mut body = serde_json::json!({
            "kind": e.kind(),
            "message": message(e),
            "exit_code": code,
            "nothing_changed": e.nothing_changed(),
        });
        if let Some(status) = e.status() {
            body["status"] = status.into();
        }
        if !e.remedies().is_empty() {
            body["remedies"] = serde_json::json!(e.remedies());
        }
        if let Some(name) = e.did_you_mean() {
            body["did_you_mean"] = name.into();
        }
        match aftermath_line(e) {
            Some(AftermathLine::Finish(c)) => c.put_json(&mut body, "finish_command"),
            Some(AftermathLine::Follow(c)) => c.put_json(&mut body, "follow_command"),
            None => {}
        }
        match e.root() {
            Error::Timeout { last_state, .. } | Error::Interrupted { last_state, .. } => {
                body["last_state"] = serde_json::json!(last_state)
            }
            Error::OperationFailed { final_state, .. } => {
                body["final_state"] = serde_json::json!(final_state)
            }
            Error::Conflict { current_state, .. } => {
                body["current_state"] = serde_json::json!(current_state)
            }
            Error::Unconfirmed {
                found,
                current_state,
                ..
            } => {
                body["found"] = serde_json::json!(found);
                body["current_state"] = serde_json::json!(current_state);
            }
            Error::Api { validations, .. } if !validations.is_empty() => {
                body["validations"] = serde_json::json!(validations)
            }
            _ => {}
        }
        out::json(&serde_json::json!({ "error": body }));
    }
    out::err(format!("error: {}", message(e)));
    match aftermath_line(e) {
        Some(AftermathLine::Finish(c)) => out::err(c.sentence("to finish the job")),
        Some(AftermathLine::Follow(c)) => out::err(c.sentence("to follow it")),
        None => {}
    }
    code
}

enum AftermathLine {
    Finish(Printed),
    Follow(Printed),
}

/// The command that finishes or follows what an error left behind, when it says.
fn aftermath_line(e: &Error) -> Option<AftermathLine> {
    match e.aftermath()? {
        fleet::operation::Aftermath::LeftStopped { finish } => {
            Some(AftermathLine::Finish(finish_command(finish)))
        }
        fleet::operation::Aftermath::StillRunning { follow } => {
            Some(AftermathLine::Follow(follow_command(follow)))
        }
        _ => None,
    }
}

/// True when stdin and stderr are a terminal (a person can answer a prompt, see progress).
pub fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// True when stderr is a terminal (a live progress display makes sense).
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
