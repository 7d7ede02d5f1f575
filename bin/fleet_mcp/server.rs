//! The MCP server: one struct holding the configured clients, the tool routers of each
//! control plane combined, tool errors and progress notifications.

use std::sync::Arc;

use fleet::{CoderConfig, MoleculeConfig, coder::CoderClient, molecule::MoleculeClient};
use rmcp::{
    Peer, RoleServer, ServerHandler,
    handler::server::router::tool::ToolRouter,
    model::{
        Implementation, ProgressNotificationParam, ProgressToken, ServerCapabilities, ServerConfig,
    },
    tool_handler,
};
use tokio::sync::mpsc;

/// The server. Cheap to clone: the clients are shared.
#[derive(Clone)]
pub struct FleetServer {
    molecule: Arc<Result<MoleculeClient, String>>,
    coder: Arc<Result<CoderClient, String>>,
    tool_router: ToolRouter<FleetServer>,
    poll_override: Option<std::time::Duration>,
}

const INSTRUCTIONS: &str = "\
fleet operates cloud workspaces on two control planes.
Molecule: migrate a workspace's compute provider across clouds (aws, hetzner, gcp) and follow the \
migration; a migration mutates two clouds and needs confirm=true. Check the status first.
Coder: update a workspace (agent) to a template version and restart it; list and show workspaces.
Long operations send progress notifications when the request carries a progress token, and honour \
cancellation (the remote operation itself is never cancelled silently).";

impl FleetServer {
    /// Builds the server from whatever is configured. A control plane that is not configured
    /// keeps its tools listed; calling them answers a tool error naming the variables to set.
    pub fn new(molecule: &MoleculeConfig, coder: &CoderConfig, read_only: bool) -> Self {
        let mut tool_router = Self::molecule_router() + Self::coder_router();
        if read_only {
            for tool in tool_router.list_all() {
                let read_only_tool = tool
                    .annotations
                    .as_ref()
                    .and_then(|a| a.read_only_hint)
                    .unwrap_or(false);
                if !read_only_tool {
                    tool_router.remove_route(&tool.name);
                }
            }
        }
        FleetServer {
            molecule: Arc::new(MoleculeClient::new(molecule).map_err(|e| e.to_string())),
            coder: Arc::new(CoderClient::new(coder).map_err(|e| e.to_string())),
            tool_router,
            poll_override: fleet::config::poll_interval_from_env(),
        }
    }

    /// Sets the longest pause between two status reads (the simulator scales it to its speed).
    pub fn with_poll_override(mut self, interval: Option<std::time::Duration>) -> Self {
        if self.poll_override.is_none() {
            self.poll_override = interval;
        }
        self
    }

    /// The longest pause between two status reads, when something overrides the defaults.
    pub fn poll_override(&self) -> Option<std::time::Duration> {
        self.poll_override
    }

    /// The Molecule client, or the tool error that says how to configure it.
    pub fn molecule(&self) -> Result<&MoleculeClient, String> {
        self.molecule.as_ref().as_ref().map_err(Clone::clone)
    }

    /// The Coder client, or the tool error that says how to configure it.
    pub fn coder(&self) -> Result<&CoderClient, String> {
        self.coder.as_ref().as_ref().map_err(Clone::clone)
    }
}

/// The text of a tool error: the kind, then the library's message (the server's words).
pub fn tool_error(e: fleet::Error) -> String {
    format!("{}: {e}", e.kind())
}

/// Sends progress notifications in order, when the client asked for them (sent a token).
pub struct Progress {
    tx: Option<mpsc::UnboundedSender<(f64, Option<f64>, String)>>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts forwarding; without a progress token, notifications are dropped.
    pub fn new(peer: Peer<RoleServer>, token: Option<ProgressToken>) -> Self {
        let Some(token) = token else {
            return Progress {
                tx: None,
                forwarder: None,
            };
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<(f64, Option<f64>, String)>();
        let forwarder = tokio::spawn(async move {
            while let Some((progress, total, message)) = rx.recv().await {
                let mut param =
                    ProgressNotificationParam::new(token.clone(), progress).with_message(message);
                if let Some(total) = total {
                    param = param.with_total(total);
                }
                if peer.notify_progress(param).await.is_err() {
                    break;
                }
            }
        });
        Progress {
            tx: Some(tx),
            forwarder: Some(forwarder),
        }
    }

    /// Sends what is still queued, so that every notification goes out before the tool's
    /// result (a client ignores progress for a request it has answered). Gives up after 5 s
    /// if the client does not read.
    pub async fn flush(mut self) {
        self.tx = None;
        if let Some(forwarder) = self.forwarder.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), forwarder).await;
        }
    }

    /// Queues one notification. `progress` must increase from one call to the next.
    pub fn send(&self, progress: f64, total: Option<f64>, message: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((progress, total, message.into()));
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for FleetServer {
    fn get_info(&self) -> ServerConfig {
        let mut implementation = Implementation::from_build_env();
        implementation.name = "fleet-mcp".into();
        implementation.version = env!("CARGO_PKG_VERSION").into();
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(implementation)
            .with_instructions(INSTRUCTIONS)
    }
}
