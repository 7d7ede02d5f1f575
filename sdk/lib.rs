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
//! ```
//! use fleet::{
//!     coder::{CoderClient, UpdateOptions, WorkspaceRef},
//!     molecule::{MigrateRequest, MoleculeClient, Provider, WaitOptions},
//!     sim::{SimOptions, Simulator},
//! };
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> fleet::Result<()> {
//! // The built-in simulator stands in for the real control planes here; for real ones use
//! // `MoleculeConfig::from_env()` and `CoderConfig::from_env()`.
//! let sim = Simulator::start(SimOptions { speed: 2000.0, ..SimOptions::default() }).await?;
//! let cancel = CancellationToken::new();
//!
//! // Molecule: migrate a workspace to Hetzner (its current provider is looked up) and follow it.
//! let molecule = MoleculeClient::new(&sim.molecule_config())?;
//! let mut request = MigrateRequest::new("ws-aws-demo", Provider::Hetzner);
//! request.confirm = true; // a migration mutates two clouds
//! molecule.migrate_provider(&request).await?;
//! let report = molecule
//!     .wait_for_migration("ws-aws-demo", &WaitOptions::default(), &cancel, |event| {
//!         println!("{}", event.state);
//!     })
//!     .await?;
//! assert!(report.terminal);
//!
//! // Coder: update alice's `dev` workspace to its template's active version and restart it.
//! let coder = CoderClient::new(&sim.coder_config())?;
//! let workspace = WorkspaceRef::parse("alice/dev")?;
//! let outcome = coder
//!     .update_workspace(&workspace, None, &UpdateOptions::default(), &cancel, |event| {
//!         println!("{}", event.describe());
//!     })
//!     .await?;
//! println!("{outcome:?}");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod open_enum;

pub mod coder;
pub mod config;
pub mod context;
pub mod doctor;
mod error;
pub mod files;
pub mod http;
pub mod molecule;
pub mod operation;
pub mod outcome;
pub mod poll;
pub mod rollout;
#[cfg(feature = "sim")]
pub mod sim;
pub mod text;

pub use config::{CoderConfig, HttpOptions, MoleculeConfig, Secret};
pub use error::{Error, FieldProblem, Input, Look, ReadBack, Remedy, Result};
