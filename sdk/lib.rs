//! # fleet
//!
//! Operate fleets of cloud workspaces on two control planes:
//!
//! - [`molecule`]: migrate a workspace's compute provider across clouds (AWS ↔ Hetzner ↔ GCP)
//!   on the Molecule control plane, and follow the migration to its end.
//! - [`coder`]: update a Coder workspace to a new template version and restart it.
//!
//! The typed clients are generated at build time by progenitor from the OpenAPI specs in
//! `openapi/`; the operations on top (validation, waiting, backoff, deadlines) live here once
//! and are shared by the `fleet` CLI and the `fleet-mcp` MCP server.
//!
//! ```no_run
//! use fleet::{CoderConfig, MoleculeConfig, coder::CoderClient, molecule::MoleculeClient};
//!
//! # async fn demo() -> fleet::Result<()> {
//! // Reads MOLECULE_CP_URL and CP_ADMIN_API_TOKEN (and the tenant API, if set).
//! let molecule = MoleculeClient::new(&MoleculeConfig::from_env())?;
//! let status = molecule.cp().get_migration_status("ws-123").await;
//! println!("{:?}", status.map(|s| s.into_inner().migration.state));
//!
//! // Reads CODER_URL and CODER_SESSION_TOKEN.
//! let coder = CoderClient::new(&CoderConfig::from_env())?;
//! let me = coder.api().get_user_by_name("me").await.map_err(|e| coder.error("reading me", e))?;
//! println!("signed in as {}", me.username);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod open_enum;

pub mod coder;
pub mod config;
mod error;
pub mod http;
pub mod molecule;
pub mod sim;

pub use config::{CoderConfig, HttpOptions, MoleculeConfig, Secret};
pub use error::{Error, FieldProblem, Result};
