//! The molecule tools.

use rmcp::tool_router;

use crate::server::FleetServer;

#[tool_router(router = molecule_router, vis = "pub(crate)", allow_empty)]
impl FleetServer {}
