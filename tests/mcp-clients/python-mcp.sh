#!/usr/bin/env bash
# A real MCP client (the Python `mcp` package from PyPI, in a throwaway venv) drives the built
# fleet-mcp against its built-in simulator: stdio, --read-only and streamable HTTP.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${CARGO_TARGET_DIR:-target}/debug/fleet-mcp"
[ -x "$bin" ] || cargo build --locked --bin fleet-mcp
if [ -n "${FLEET_CI_VENV:-}" ] && "$FLEET_CI_VENV/bin/python" -c 'import mcp' 2>/dev/null; then
  venv="$FLEET_CI_VENV"
else
  venv=$(mktemp -d)
  trap 'rm -rf "$venv"' EXIT
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'mcp>=1.20,<2'
fi
FLEET_MCP_BIN="$bin" timeout 300 "$venv/bin/python" tests/mcp-clients/drive.py
