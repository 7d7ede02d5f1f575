#!/usr/bin/env python3
"""What fleet-mcp's answers cost an agent, at fleet scale (issue 20's table).

Starts `fleet sim --bulk-workspaces N`, then `fleet-mcp` against it (raw JSON-RPC over stdio),
and measures in o200k tokens (shared/tools/count_tokens.py; needs tiktoken and bpe-openai):
  - tools/list: bytes, and the model-visible part (name, description, inputSchema);
  - list_agents (first page), update_agents dry run of all outdated, get_operation of it,
    an update_agents run answered at wait_seconds, cancel_operation of it, list_operations;
    each answer's text block and structuredContent;
  - the time of a paged walk through list_agents over every workspace (each seen once?).
Prints one JSON object.

usage: mcp_answers.py FLEET FLEET_MCP [--workspaces N] [--counter PATH/count_tokens.py]
"""

import argparse
import json
import os
import subprocess
import sys
import time


def load_counter(path):
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    import count_tokens  # noqa: E402

    return count_tokens.count


class Mcp:
    def __init__(self, exe, env):
        self.proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, method, params=None):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"fleet-mcp closed stdout during {method}")
            msg = json.loads(line)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"], len(line)

    def call(self, name, args):
        result, _ = self.request("tools/call", {"name": name, "arguments": args})
        return result

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def walk(mcp):
    """Every workspace through list_agents' pages (limit 200): time, pages, each seen once?"""
    t0 = time.perf_counter()
    seen, cursor, pages = [], None, 0
    while True:
        args = {"limit": 200}
        if cursor:
            args["cursor"] = cursor
        s = mcp.call("list_agents", args)["structuredContent"]
        seen += [w["full_name"] for w in s["workspaces"]]
        pages += 1
        cursor = s.get("next_cursor")
        if not cursor:
            break
    return {"seconds": round(time.perf_counter() - t0, 3), "pages": pages,
            "seen": len(seen), "distinct": len(set(seen))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fleet")
    ap.add_argument("fleet_mcp")
    ap.add_argument("--workspaces", type=int, default=1500)
    ap.add_argument("--walk-only", action="store_true", help="only the paged list_agents walk")
    ap.add_argument("--counter", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "tools", "count_tokens.py"))
    a = ap.parse_args()
    count = None if a.walk_only else load_counter(a.counter)
    sim = subprocess.Popen([a.fleet, "-o", "json", "sim", "--listen", "127.0.0.1:0", "--speed", "60",
                            "--bulk-workspaces", str(a.workspaces)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        buf = b""
        while True:
            buf += sim.stdout.read1(65536)
            try:
                info = json.loads(buf)
                break
            except ValueError:
                continue
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOLECULE_", "CP_", "CODER_"))}
        env.update(info["env"])
        env["FLEET_POLL_INTERVAL_MS"] = "200"
        out = {"bench": "mcp_answers", "workspaces": a.workspaces}
        mcp = Mcp(a.fleet_mcp, env)
        tools, size = mcp.request("tools/list")
        visible = [{"name": t["name"], "description": t.get("description", ""),
                    "inputSchema": t.get("inputSchema")} for t in tools["tools"]]
        if a.walk_only:
            out["list_agents_walk"] = walk(mcp)
            mcp.close()
            print(json.dumps(out))
            return
        out["tools_list_bytes"] = size
        out["definitions_tokens"] = count(visible)

        def measure(label, result):
            text = "".join(c.get("text", "") for c in result.get("content", []))
            out[label] = {"text_tokens": count(text),
                          "structured_tokens": count(result.get("structuredContent") or ""),
                          "is_error": bool(result.get("isError"))}
            return result.get("structuredContent") or {}

        measure("list_agents", mcp.call("list_agents", {}))
        out["list_agents_walk"] = walk(mcp)
        plan = measure("update_agents_dry_run", mcp.call(
            "update_agents", {"all_outdated": True, "all_owners": True, "dry_run": True,
                              "wait_seconds": 120}))
        measure("get_operation_of_plan", mcp.call("get_operation", {"operation_id": plan["operation_id"]}))
        run = measure("update_agents_at_wait_seconds", mcp.call(
            "update_agents", {"all_outdated": True, "all_owners": True, "parallel": 16,
                              "wait_seconds": 5}))
        measure("cancel_operation", mcp.call("cancel_operation", {"operation_id": run["operation_id"]}))
        measure("list_operations", mcp.call("list_operations", {}))
        mcp.close()
        print(json.dumps(out))
    finally:
        sim.terminate()
        sim.wait(timeout=30)


if __name__ == "__main__":
    main()
