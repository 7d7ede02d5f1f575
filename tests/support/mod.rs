//! Fixtures shared by every test binary, each held once: the in-process simulator and SDK
//! clients for it (`sim`), running the built `fleet` in a clean environment, its `Run` and the
//! pty driver (`cli`), `fleet-mcp` over stdio and over HTTP (`mcp`), Coder JSON bodies, fast
//! options and httpmock mocks (`coder`), driving SDK operations (`handle`), the reliability
//! checks (`reliability`).
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod coder;
pub mod handle;
pub mod mcp;
pub mod reliability;
pub mod sim;

/// The variables through which `fleet` and `fleet-mcp` find a user's own configuration (the
/// config file and its contexts, what `coder login` stored). A test that does not clear the
/// environment removes them, so that a developer's own contexts or `coder login` never change
/// its results; without HOME and XDG_CONFIG_HOME fleet reads no user configuration.
pub const USER_CONFIG_VARS: [&str; 5] = [
    "HOME",
    "XDG_CONFIG_HOME",
    "CODER_CONFIG_DIR",
    "FLEET_CONFIG",
    "FLEET_CONTEXT",
];

/// `cmd` without the variables of [`USER_CONFIG_VARS`].
pub fn no_user_config(mut cmd: std::process::Command) -> std::process::Command {
    for var in USER_CONFIG_VARS {
        cmd.env_remove(var);
    }
    cmd
}
