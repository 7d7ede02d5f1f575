#!/usr/bin/env bash
# A second real MCP client: the MCP Inspector CLI (npm @modelcontextprotocol/inspector 2.x,
# installed into a throwaway folder) drives the built fleet-mcp against its simulator.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/fleet-mcp"
[ -x "$bin" ] || cargo build --locked --bin fleet-mcp
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
inspector="${FLEET_CI_NPM:-/nonexistent}/inspector/node_modules/.bin/mcp-inspector"
if [ ! -x "$inspector" ]; then
  (cd "$dir" && npm install --silent --no-audit --no-fund '@modelcontextprotocol/inspector@2' >/dev/null 2>&1) \
    || (cd "$dir" && npm install --no-audit --no-fund '@modelcontextprotocol/inspector@2')
  inspector="$dir/node_modules/.bin/mcp-inspector"
fi

call() { timeout 120 "$inspector" --cli "$@" -- "$bin" --sim --sim-speed 300 2>/dev/null; }

call --method tools/list > "$dir/tools.json"
python3 - "$dir/tools.json" <<'PY'
import json, sys
tools = {t["name"]: t for t in json.load(open(sys.argv[1]))["tools"]}
need = {"migrate_workspace_provider", "get_workspace_migration_status", "wait_for_workspace_migration",
        "update_agent", "restart_agent", "list_agents", "show_agent", "get_template_version"}
assert need <= set(tools), f"missing tools: {need - set(tools)}"
for name, t in tools.items():
    assert t["inputSchema"]["type"] == "object", name
    assert t.get("outputSchema", {}).get("type") == "object", f"{name} has no output schema"
    assert "readOnlyHint" in t.get("annotations", {}), f"{name} has no annotations"
print(f"inspector: tools/list ok ({len(tools)} tools, schemas and annotations)")
PY

call --method tools/call --tool-name get_workspace_migration_status \
  --tool-args-json '{"workspace_id":"ws-migrated"}' > "$dir/status.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["structuredContent"]["migrated"] is True, d; print("inspector: get_workspace_migration_status ok")' "$dir/status.json"

# Without confirm, a migration is a tool error (the Inspector exits 5 on isError).
set +e
call --method tools/call --tool-name migrate_workspace_provider \
  --tool-args-json '{"workspace_id":"ws-aws-demo","to":"gcp"}' > "$dir/refused.json"
code=$?
set -e
[ "$code" = 5 ] || { echo "inspector: migrate without confirm exited $code, expected 5 (tool error)"; cat "$dir/refused.json"; exit 1; }
grep -q confirm "$dir/refused.json" || { echo "inspector: the refusal does not name confirm"; exit 1; }
echo "inspector: migrate_workspace_provider without confirm is a tool error"

call --method tools/call --tool-name update_agent --tool-args-json '{"agent_name":"alice/dev"}' > "$dir/update.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d.get("isError"), d; assert "updated" in json.dumps(d["structuredContent"]), d; print("inspector: update_agent ok")' "$dir/update.json"
