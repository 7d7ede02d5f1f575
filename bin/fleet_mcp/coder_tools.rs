//! The coder tools.

use rmcp::tool_router;

use crate::server::FleetServer;

#[tool_router(router = coder_router, vis = "pub(crate)", allow_empty)]
impl FleetServer {}
