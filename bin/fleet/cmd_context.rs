//! `fleet context`: named contexts in the config file (like kubectl's), and what each value
//! in use is and where it came from.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use fleet::{
    Error,
    context::{self, CoderContext, Context, MoleculeContext, Resolver},
};

use crate::{
    cli::{self, GlobalOpts, OutputFormat},
    out,
};

/// `fleet context` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContextCmd {
    /// Save a context: where each control plane is and where its tokens come from (a file,
    /// an environment variable, `coder login`); never a token itself.
    ///
    /// Takes the global options --coder-url, --coder-session-token-file, --molecule-cp-url,
    /// --cp-admin-prefix, --cp-admin-token-file, --molecule-api-url and
    /// --molecule-org-api-key-file, plus the options below. Replaces a context of that name.
    Add(AddArgs),
    /// List the contexts (* marks the current one).
    List,
    /// Make a context the current one.
    Use {
        /// The context.
        name: String,
    },
    /// Show each value in use (of the given context, else the one in use) and where it came
    /// from; tokens are shown as their source and a fingerprint, never their value.
    Show {
        /// The context (default: the one in use).
        name: Option<String>,
    },
    /// Remove a context.
    Remove {
        /// The context.
        name: String,
    },
}

/// `fleet context add` arguments.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The context's name (letters, digits, '-', '_', '.').
    pub name: String,

    /// Coder: use what `coder login` stored (its URL unless --coder-url is given, and its
    /// session).
    #[arg(long, conflicts_with_all = ["coder_session_token_env"])]
    pub coder_login: bool,

    /// Coder: read the session token from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub coder_session_token_env: Option<String>,

    /// Molecule: read the CP admin token from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub cp_admin_token_env: Option<String>,

    /// Molecule: read the tenant API key from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub molecule_org_api_key_env: Option<String>,

    /// Also make it the current context.
    #[arg(long = "use")]
    pub make_current: bool,
}

/// Runs a `fleet context` command; returns the exit code.
pub fn run(cmd: ContextCmd, global: &GlobalOpts) -> fleet::Result<i32> {
    let path = context::config_path().ok_or_else(|| {
        Error::InvalidInput(
            "cannot tell where the config file is: set HOME, XDG_CONFIG_HOME or FLEET_CONFIG"
                .into(),
        )
    })?;
    match cmd {
        ContextCmd::Add(args) => add(args, global, &path),
        ContextCmd::List => list(global, &path),
        ContextCmd::Use { name } => {
            let mut file = context::load(&path)?;
            if !file.contexts.contains_key(&name) {
                return Err(unknown(&name, &file));
            }
            file.current_context = Some(name.clone());
            context::save(&path, &file)?;
            done(global, &format!("Now using context {name}."), &name);
            Ok(0)
        }
        ContextCmd::Remove { name } => {
            let mut file = context::load(&path)?;
            if file.contexts.remove(&name).is_none() {
                return Err(unknown(&name, &file));
            }
            if file.current_context.as_deref() == Some(name.as_str()) {
                file.current_context = None;
            }
            context::save(&path, &file)?;
            done(global, &format!("Removed context {name}."), &name);
            Ok(0)
        }
        ContextCmd::Show { name } => show(name, global),
    }
}

fn unknown(name: &str, file: &context::ConfigFile) -> Error {
    let names: Vec<&str> = file.contexts.keys().map(String::as_str).collect();
    Error::InvalidInput(format!(
        "there is no context named {name:?}; {}",
        if names.is_empty() {
            "there are no contexts yet (add one with `fleet context add NAME`)".to_string()
        } else {
            format!("the contexts are: {}", names.join(", "))
        }
    ))
}

fn done(global: &GlobalOpts, text: &str, name: &str) {
    if global.output == OutputFormat::Json {
        out::json(&serde_json::json!({ "ok": true, "context": name }));
    } else {
        out::line(text);
    }
}

/// An absolute path (a context is used from any directory).
fn absolute(path: &Path) -> fleet::Result<PathBuf> {
    std::path::absolute(path).map_err(|e| {
        Error::InvalidInput(format!("cannot resolve the path {}: {e}", path.display()))
    })
}

fn add(args: AddArgs, global: &GlobalOpts, path: &Path) -> fleet::Result<i32> {
    for (id, flag, instead) in [
        (
            "coder_session_token",
            "--coder-session-token",
            "--coder-session-token-file PATH or --coder-session-token-env VAR",
        ),
        (
            "cp_admin_token",
            "--cp-admin-token",
            "--cp-admin-token-file PATH or --cp-admin-token-env VAR",
        ),
        (
            "molecule_org_api_key",
            "--molecule-org-api-key",
            "--molecule-org-api-key-file PATH or --molecule-org-api-key-env VAR",
        ),
    ] {
        if global.command_line.contains(&id) {
            return Err(Error::InvalidInput(format!(
                "a context never holds a token: instead of {flag}, pass {instead}; nothing was saved"
            )));
        }
    }
    if args.coder_login && global.coder_session_token_file.is_some() {
        return Err(Error::InvalidInput(
            "--coder-login and --coder-session-token-file both name the Coder session token: \
             pass one; nothing was saved"
                .into(),
        ));
    }
    let given = |id: &str, v: &Option<String>| {
        if global.command_line.contains(&id) {
            v.clone().filter(|s| !s.trim().is_empty())
        } else {
            None
        }
    };
    let file_of = |p: &Option<PathBuf>| p.as_deref().map(absolute).transpose();
    let coder = CoderContext {
        url: given("coder_url", &global.coder_url),
        session_token_file: file_of(&global.coder_session_token_file)?,
        session_token_env: args.coder_session_token_env.clone(),
        login: args.coder_login,
    };
    let molecule = MoleculeContext {
        cp_url: given("molecule_cp_url", &global.molecule_cp_url),
        cp_admin_prefix: given("cp_admin_prefix", &global.cp_admin_prefix),
        cp_admin_token_file: file_of(&global.cp_admin_token_file)?,
        cp_admin_token_env: args.cp_admin_token_env.clone(),
        api_url: given("molecule_api_url", &global.molecule_api_url),
        org_api_key_file: file_of(&global.molecule_org_api_key_file)?,
        org_api_key_env: args.molecule_org_api_key_env.clone(),
    };
    let ctx = Context {
        coder: (coder != CoderContext::default()).then_some(coder),
        molecule: (molecule != MoleculeContext::default()).then_some(molecule),
    };
    if ctx == Context::default() {
        return Err(Error::InvalidInput(format!(
            "the context {:?} would configure nothing: pass e.g. --coder-login, --coder-url URL \
             with --coder-session-token-file PATH, or --molecule-cp-url URL with \
             --cp-admin-token-file PATH; nothing was saved",
            args.name
        )));
    }
    ctx.validate(&args.name)?;
    // Token files are checked now, so that a typo shows at once (and a loose mode warns).
    let mut warnings = Vec::new();
    for f in [
        ctx.coder
            .as_ref()
            .and_then(|c| c.session_token_file.as_ref()),
        ctx.molecule
            .as_ref()
            .and_then(|m| m.cp_admin_token_file.as_ref()),
        ctx.molecule
            .as_ref()
            .and_then(|m| m.org_api_key_file.as_ref()),
    ]
    .into_iter()
    .flatten()
    {
        fleet::Secret::from_file(f)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(f) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    warnings.push(context::Warning::ReadableByOthers {
                        path: f.clone(),
                        mode,
                    });
                }
            }
        }
    }
    cli::print_warnings(&warnings);
    if args.coder_login {
        match context::coder_config_dir() {
            Some(dir) if dir.join("session").is_file() => {}
            Some(dir) => out::err(format!(
                "warning: {} holds no `coder login` session yet: run `coder login URL` before using this context",
                dir.display()
            )),
            None => out::err(
                "warning: Coder's config directory is unknown (no HOME, no CODER_CONFIG_DIR): \
                 this context finds no `coder login` session here",
            ),
        }
    }
    let mut file = context::load(path)?;
    let replaced = file.contexts.insert(args.name.clone(), ctx).is_some();
    if args.make_current || file.current_context.is_none() && file.contexts.len() == 1 {
        file.current_context = Some(args.name.clone());
    }
    context::save(path, &file)?;
    let current = file.current_context.as_deref() == Some(args.name.as_str());
    done(
        global,
        &format!(
            "{} context {} in {}{}.",
            if replaced { "Replaced" } else { "Saved" },
            args.name,
            path.display(),
            if current {
                " (the current context)"
            } else {
                ""
            }
        ),
        &args.name,
    );
    Ok(0)
}

fn list(global: &GlobalOpts, path: &Path) -> fleet::Result<i32> {
    let file = context::load(path)?;
    let current = file.current_context.as_deref();
    if global.output == OutputFormat::Json {
        out::json(&serde_json::json!({
            "config_file": path,
            "current_context": current,
            "contexts": file.contexts,
        }));
        return Ok(0);
    }
    if file.contexts.is_empty() {
        out::line(format!(
            "No contexts in {} (add one with `fleet context add NAME`).",
            path.display()
        ));
        return Ok(0);
    }
    for (name, ctx) in &file.contexts {
        let mut planes = Vec::new();
        if let Some(c) = &ctx.coder {
            planes.push(format!(
                "coder {}",
                c.url
                    .as_deref()
                    .unwrap_or(if c.login { "(coder login)" } else { "-" })
            ));
        }
        if let Some(m) = &ctx.molecule {
            planes.push(format!(
                "molecule {}",
                m.cp_url.as_deref().unwrap_or(context_default_cp())
            ));
        }
        let mark = if current == Some(name.as_str()) {
            "*"
        } else {
            " "
        };
        out::line(format!("{mark} {name}  {}", planes.join("  ")));
    }
    Ok(0)
}

fn context_default_cp() -> &'static str {
    fleet::config::DEFAULT_MOLECULE_CP_URL
}

fn show(name: Option<String>, global: &GlobalOpts) -> fleet::Result<i32> {
    let mut given = global.given();
    if name.is_some() {
        given.context = name;
    }
    let resolver = Resolver::new(given)?.lenient();
    let coder = resolver.coder()?;
    let molecule = resolver.molecule()?;
    if global.output == OutputFormat::Json {
        out::json(&serde_json::json!({
            "config_file": resolver.path(),
            "context": resolver.chosen(),
            "coder": coder,
            "molecule": molecule,
        }));
        return Ok(0);
    }
    cli::print_warnings(&coder.warnings);
    cli::print_warnings(&molecule.warnings);
    for line in crate::config_text::describe(&resolver, &coder, &molecule) {
        out::line(line);
    }
    Ok(0)
}
