"""Drive the built fleet-mcp with the Python `mcp` client (a real MCP client, PyPI `mcp<2`).

Over stdio against `fleet-mcp --sim`: list the tools (names, input and output schemas,
annotations) and call each one, including a whole migration and a whole update with
progress notifications received. Then --read-only, and the streamable HTTP transport with
its bearer token. Exits non-zero on the first broken expectation.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

FLEET_MCP = os.environ.get("FLEET_MCP_BIN", "target/debug/fleet-mcp")
EXPECTED = {
    "migrate_workspace_provider": "destructive",
    "get_workspace_migration_status": "read_only",
    "wait_for_workspace_migration": "read_only",
    "update_agent": "destructive",
    "update_agents": "destructive",
    "restart_agent": "destructive",
    "list_agents": "read_only",
    "show_agent": "read_only",
    "get_template_version": "read_only",
    "get_template": "read_only",
    "promote_template_version": "destructive",
}
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def structured(result):
    check(not result.isError, f"tool call succeeded: {result.content}")
    check(result.structuredContent is not None, "structured output is present")
    return result.structuredContent


def error_text(result):
    check(result.isError, f"tool call is a tool error: {result.content}")
    return " ".join(c.text for c in result.content if getattr(c, "text", None))


def server(*extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODER_", "MOLECULE_", "CP_"))}
    return StdioServerParameters(command=FLEET_MCP, args=["--sim", "--sim-speed", "300", *extra], env=env)


async def stdio_session():
    async with stdio_client(server()) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.serverInfo.name == "fleet-mcp", f"server name: {init.serverInfo.name}")

            tools = {t.name: t for t in (await session.list_tools()).tools}
            missing = set(EXPECTED) - set(tools)
            check(not missing, f"tools listed: missing {missing}")
            for name, tool in tools.items():
                check(tool.description and len(tool.description) > 40, f"{name} has a description")
                check(tool.inputSchema.get("type") == "object", f"{name} input schema is an object")
                check(tool.outputSchema and tool.outputSchema.get("type") == "object", f"{name} has an output schema")
                a = tool.annotations
                check(a is not None, f"{name} has annotations")
                kind = EXPECTED.get(name)
                if kind == "read_only":
                    check(a.readOnlyHint is True, f"{name} is read-only")
                elif kind == "destructive":
                    check(a.readOnlyHint is not True and a.destructiveHint is True, f"{name} is destructive")
            to_enum = tools["migrate_workspace_provider"].inputSchema
            check("hetzner" in json.dumps(to_enum), "the provider enum is in the input schema")

            # Closed argument lists: a guessed argument is refused by name on every tool, and
            # nothing runs (alice/dev is still outdated below).
            for name, tool in tools.items():
                check(tool.inputSchema.get("additionalProperties") is False, f"{name}: closed input schema")
                msg = error_text(await session.call_tool(name, {"dry_run_please": True}))
                check("`dry_run_please`" in msg, f"{name} names the unknown argument: {msg}")
                for arg in tool.inputSchema.get("properties", {}):
                    check(arg in msg, f"{name} lists its argument {arg}: {msg}")
            msg = error_text(await session.call_tool("update_agent", {"agent_name": "alice/dev", "dry_run_please": True}))
            check("did you mean `dry_run`" in msg, f"the closest name is suggested: {msg}")
            # dry_run answers the plan and stops nothing.
            plan = structured(await session.call_tool("update_agent", {"agent_name": "alice/dev", "dry_run": True}))
            check("would be stopped" in plan["dry_run"]["summary"], f"update_agent dry run: {plan}")
            plan = structured(await session.call_tool(
                "migrate_workspace_provider", {"workspace_id": "ws-aws-demo", "to": "gcp", "confirm": True, "dry_run": True}))
            check(plan["dry_run"]["from"] == "aws" and "status" not in plan, f"a migration dry run starts nothing: {plan}")
            ws = structured(await session.call_tool("show_agent", {"agent_name": "alice/dev"}))
            check(ws["outdated"] is True and ws["status"] == "running", f"the dry runs changed nothing: {ws}")
            s = structured(await session.call_tool("get_workspace_migration_status", {"workspace_id": "ws-aws-demo"}))
            check(s.get("migrated") is False, f"no migration was started: {s}")

            # Molecule: status, refusal without confirm, a whole migration with progress.
            s = structured(await session.call_tool("get_workspace_migration_status", {"workspace_id": "ws-migrated"}))
            check(s.get("migrated") is True, f"ws-migrated was migrated: {s}")
            msg = error_text(await session.call_tool(
                "migrate_workspace_provider", {"workspace_id": "ws-aws-demo", "to": "gcp"}))
            check("confirm" in msg, f"refusal names confirm: {msg}")
            s = structured(await session.call_tool(
                "migrate_workspace_provider", {"workspace_id": "ws-aws-demo", "to": "gcp", "confirm": True}))
            check(s.get("status") == "migration_started" or "workspace_id" in json.dumps(s), f"started: {s}")
            progress = []

            async def on_progress(p, total, message):
                progress.append((p, total, message))

            s = structured(await session.call_tool(
                "wait_for_workspace_migration", {"workspace_id": "ws-aws-demo", "timeout_seconds": 120},
                progress_callback=on_progress))
            check("completed" in json.dumps(s), f"migration completed: {s}")
            check(len(progress) >= 3, f"progress notifications during the migration: {progress}")
            check(all(a[0] < b[0] for a, b in zip(progress, progress[1:])), f"progress increases: {progress}")

            # Coder: list, show, template version, a whole update and a restart with progress.
            s = structured(await session.call_tool("list_agents", {"outdated": True}))
            names = [w.get("full_name") for w in s["workspaces"]]
            check("alice/dev" in names, f"alice/dev is outdated: {names}")
            ws = structured(await session.call_tool("show_agent", {"agent_name": "alice/dev"}))
            tv = structured(await session.call_tool(
                "get_template_version", {"template_version_id": ws["template_active_version_id"]}))
            check(tv["id"] == ws["template_active_version_id"], "template version read")
            progress.clear()
            s = structured(await session.call_tool("update_agent", {"agent_name": "alice/dev"},
                                                   progress_callback=on_progress))
            check("updated" in json.dumps(s), f"update result: {s}")
            check(len(progress) >= 4, f"progress notifications during the update: {progress}")
            after = structured(await session.call_tool("show_agent", {"agent_name": "alice/dev"}))
            check(after["outdated"] is False, "alice/dev is up to date after the update")
            progress.clear()
            structured(await session.call_tool("restart_agent", {"agent_name": "alice/dev"},
                                               progress_callback=on_progress))
            check(len(progress) >= 4, f"progress notifications during the restart: {progress}")
            # Several at once: a dry run first (only reads), then two updates in parallel.
            plan = structured(await session.call_tool("update_agents", {"all_outdated": True, "dry_run": True}))
            check("alice/api-server" in json.dumps(plan), f"the dry run lists alice/api-server: {plan}")
            progress.clear()
            s = structured(await session.call_tool(
                "update_agents", {"agent_names": ["alice/api-server", "bob/dev"], "parallel": 2},
                progress_callback=on_progress))
            check(json.dumps(s).count("updated") >= 2, f"both updated: {s}")
            check(progress and progress[-1][0] == 2 and progress[-1][1] == 2, f"update_agents progress: {progress}")
            # A promotion: the template's versions, a dry run (nothing changes), then the real
            # run: canary, promotion, rollout, followed with get_operation.
            t = structured(await session.call_tool("get_template", {"template": "shop"}))
            check(t["active_version"] == "v1" and t["newest_versions"][0]["name"] == "v3-start-error",
                  f"get_template: {t}")
            plan = structured(await session.call_tool(
                "promote_template_version", {"template": "shop", "version": "v2", "dry_run": True}))
            check(plan["outcome"] == "planned" and plan["rest"] == 3, f"promotion dry run: {plan}")
            msg = error_text(await session.call_tool("promote_template_version", {"template": "shop", "version": "v2"}))
            check("confirm" in msg, f"a promotion needs confirm: {msg}")
            progress.clear()
            s = structured(await session.call_tool(
                "promote_template_version",
                {"template": "shop", "version": "v2", "confirm": True, "wait_seconds": 1},
                progress_callback=on_progress))
            op = s["operation_id"]
            for _ in range(20):
                s = structured(await session.call_tool("get_operation", {"operation_id": op, "wait_seconds": 10}))
                if s["done"]:
                    break
            check(s["done"] and s["outcome"]["outcome"] == "promoted", f"promoted: {s}")
            t = structured(await session.call_tool("get_template", {"template": "shop"}))
            check(t["active_version"] == "v2", f"v2 is active: {t}")
            msg = error_text(await session.call_tool("show_agent", {"agent_name": "alice/nope"}))
            check("not_found" in msg or "not found" in msg.lower(), f"unknown agent: {msg}")
            for name in tools:
                if name not in EXPECTED:
                    print(f"(not driven here: {name})")


async def read_only_session():
    async with stdio_client(server("--read-only")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            check(all(t.annotations.readOnlyHint for t in tools.values()), "--read-only lists only read-only tools")
            check("update_agent" not in tools and "migrate_workspace_provider" not in tools, "destructive tools hidden")
            try:
                result = await session.call_tool("update_agent", {"agent_name": "alice/dev"})
                check(result.isError, "a hidden tool cannot be called")
            except McpError as e:
                check("not found" in str(e), f"a hidden tool cannot be called: {e}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def http_session():
    port = free_port()
    token = "http-test-token-5a1f"
    env = dict(os.environ, FLEET_MCP_HTTP_TOKEN=token)
    proc = subprocess.Popen([FLEET_MCP, "--sim", "--http", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                health = json.loads(urllib.request.urlopen(f"{base}/health", timeout=1).read())
                break
            except OSError:
                time.sleep(0.1)
        else:
            check(False, "fleet-mcp --http answers /health")
        check(health.get("status") == "ok", f"/health: {health}")
        try:
            urllib.request.urlopen(urllib.request.Request(f"{base}/mcp", data=b"{}", method="POST",
                                                          headers={"content-type": "application/json"}), timeout=5)
            check(False, "a request without the token is refused")
        except urllib.error.HTTPError as e:
            check(e.code == 401, f"no token: 401 (got {e.code})")
        async with streamablehttp_client(f"{base}/mcp", headers={"Authorization": f"Bearer {token}"}) as (r, w, _):
            async with ClientSession(r, w) as session:
                await session.initialize()
                tools = (await session.list_tools()).tools
                check(len(tools) >= len(EXPECTED), "tools over HTTP")
                s = structured(await session.call_tool("list_agents", {}))
                check(s["count"] >= 1, "list_agents over HTTP")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def main():
    t0 = time.monotonic()
    await stdio_session()
    await read_only_session()
    await http_session()
    print(f"python mcp client: {checks} checks passed in {time.monotonic() - t0:.1f}s")


asyncio.run(main())
