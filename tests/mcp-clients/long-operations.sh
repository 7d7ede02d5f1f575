#!/usr/bin/env bash
# A stand-in MCP host (the TypeScript SDK's client, npm @modelcontextprotocol/sdk, installed
# into a throwaway folder) with short request timeouts drives the built fleet-mcp against a
# slow simulator: long tools answer inside the timeout, a host timeout leaves nothing stopped,
# get_operation follows each operation to its end, an exit finishes what is in flight (~1.5 min).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="$(pwd)/${CARGO_TARGET_DIR:-target}/debug"
[ -x "$target/fleet-mcp" ] && [ -x "$target/fleet" ] || cargo build --locked --bins
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dir="$tmp"
if [ -d "${FLEET_CI_NPM:-/nonexistent}/sdk/node_modules/@modelcontextprotocol/sdk" ]; then
  dir="$FLEET_CI_NPM/sdk"
else
  (cd "$dir" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund '@modelcontextprotocol/sdk@1' >/dev/null 2>&1) \
    || (cd "$dir" && npm install --no-audit --no-fund '@modelcontextprotocol/sdk@1')
fi
cp tests/mcp-clients/long-operations.mjs "$dir/"
timeout 240 node "$dir/long-operations.mjs" "$target/fleet-mcp" "$target/fleet"
