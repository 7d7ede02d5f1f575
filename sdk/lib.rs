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
//!     operation::OperationEvent,
//!     sim::{SimOptions, Simulator},
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> fleet::Result<()> {
//! // The built-in simulator stands in for the real control planes here; for real ones use
//! // `MoleculeConfig::from_env()` and `CoderConfig::from_env()`.
//! let sim = Simulator::start(SimOptions { speed: 2000.0, ..SimOptions::default() }).await?;
//!
//! // Every long operation starts as an `Operation` handle (see `fleet::operation`): an id, a
//! // snapshot, typed events, `cancel()` (graceful) and `abort()`, and the outcome. Dropping
//! // the handle never stops the operation.
//!
//! // Molecule: migrate a workspace to Hetzner (its current provider is looked up) and follow
//! // it, as one operation, printing its events.
//! let molecule = MoleculeClient::new(&sim.molecule_config())?;
//! let mut request = MigrateRequest::new("ws-aws-demo", Provider::Hetzner);
//! request.confirm = true; // a migration mutates two clouds
//! let op = molecule.start_migration(request, WaitOptions::default());
//! let mut events = op.events();
//! while let Ok(event) = events.recv().await {
//!     println!("{}", event.describe());
//! }
//! let run = op.outcome().await?;
//! assert!(run.status.terminal);
//!
//! // Coder: update alice's `dev` workspace to its template's active version, restart it and
//! // wait for its agents. A caller that only wants the result awaits the outcome (as a plain
//! // `async fn`).
//! let coder = CoderClient::new(&sim.coder_config())?;
//! let workspace = WorkspaceRef::parse("alice/dev")?;
//! let op = coder.start_update(workspace, None, UpdateOptions::default());
//! println!("{} {}", op.id(), op.snapshot().state);
//! let outcome = op.outcome().await?;
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
mod secret;
#[cfg(feature = "sim")]
pub mod sim;
pub mod text;
mod tls;

pub use config::{CoderConfig, HttpOptions, MoleculeConfig};
pub use error::{Error, FieldProblem, Input, Look, ReadBack, Remedy, Result};
pub use secret::Secret;
