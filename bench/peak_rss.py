#!/usr/bin/env python3
"""Runs a command; prints one JSON object: wall time, peak RSS (ru_maxrss of that child) and
exit code, merged with the last JSON object the command printed on stdout, if any.

usage: peak_rss.py [--label KEY=VALUE]... -- CMD ARGS...
"""

import json
import os
import subprocess
import sys
import time


def main():
    argv = sys.argv[1:]
    labels = {}
    while argv and argv[0] == "--label":
        key, _, value = argv[1].partition("=")
        labels[key] = value
        argv = argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    result = {}
    for line in out.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                pass
    if not isinstance(result, dict):
        result = {"output": result}
    result.update(labels)
    result["wall_s"] = result.get("wall_s", wall)
    result["process_wall_s"] = wall
    result["peak_rss_kb"] = usage.ru_maxrss
    result["rc"] = os.waitstatus_to_exitcode(status)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
