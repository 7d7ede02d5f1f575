#!/usr/bin/env python3
"""fleet-mcp over stdio with a raw JSON-RPC client (no MCP library in the way).

Measures, for `fleet-mcp` with no configuration (tools/list needs none), or with the variables
given by `--env NAME=VALUE` (repeatable: how it runs for real, e.g. CODER_URL and
CODER_SESSION_TOKEN; nothing is contacted before a tool call):
  - process start -> the answer to tools/list (initialize, initialized, tools/list), N starts;
  - VmRSS / VmHWM of the server right after that answer (read from /proc/PID/status);
  - CALLS sequential tools/list requests on one connection: per-call latency.
Prints one JSON object.

usage: mcp_bench.py PATH/TO/fleet-mcp [--starts N] [--calls N] [--env NAME=VALUE ...]
"""

import json
import os
import subprocess
import sys
import time


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    rank = max(1, min(len(v), int(-(-p * len(v) // 100))))
    return v[rank - 1]


def memory_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


class Server:
    def __init__(self, path, extra_env=None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MOLECULE_", "CP_ADMIN", "CODER_"))}
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env)
        self.next_id = 0

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, method, params=None):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"fleet-mcp closed stdout during {method}")
            answer = json.loads(line)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def handshake(self):
        self.request("initialize", {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "fleet-bench", "version": "0"},
        })
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    path = sys.argv[1]
    starts = int(sys.argv[sys.argv.index("--starts") + 1]) if "--starts" in sys.argv else 30
    calls = int(sys.argv[sys.argv.index("--calls") + 1]) if "--calls" in sys.argv else 1000
    extra_env = dict(
        sys.argv[i + 1].split("=", 1) for i, a in enumerate(sys.argv) if a == "--env"
    )

    start_ms, rss, hwm, tools = [], [], [], 0
    for _ in range(starts):
        t0 = time.perf_counter()
        s = Server(path, extra_env)
        s.handshake()
        result = s.request("tools/list")
        start_ms.append((time.perf_counter() - t0) * 1000)
        mem = memory_kb(s.proc.pid)
        rss.append(mem["VmRSS"])
        hwm.append(mem["VmHWM"])
        tools = len(result.get("tools", []))
        s.close()

    s = Server(path, extra_env)
    s.handshake()
    s.request("tools/list")
    lat = []
    for _ in range(calls):
        t0 = time.perf_counter()
        s.request("tools/list")
        lat.append((time.perf_counter() - t0) * 1000)
    after = memory_kb(s.proc.pid)
    s.close()

    print(json.dumps({
        "bench": "mcp",
        "tools": tools,
        "start_to_tools_list_ms": {"n": starts, "median": pct(start_ms, 50), "p99": pct(start_ms, 99)},
        "rss_kb_after_tools_list": {"median": pct(rss, 50), "max": max(rss)},
        "hwm_kb_after_tools_list": {"median": pct(hwm, 50), "max": max(hwm)},
        "tools_list_ms": {"n": calls, "median": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat)},
        "rss_kb_after_calls": after["VmRSS"],
        "hwm_kb_after_calls": after["VmHWM"],
    }))


if __name__ == "__main__":
    main()
