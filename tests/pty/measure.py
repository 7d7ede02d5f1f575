"""Runs a command under a pseudo-terminal, reads what it shows at a given pace, and measures
its peak memory.

Usage: python3 measure.py READ_BYTES_PER_SECOND -- COMMAND ARGS...
READ_BYTES_PER_SECOND 0 reads as fast as the terminal gives; otherwise the terminal is read
at most that fast (a slow SSH session: the command blocks on its writes in between).
Prints one JSON line: {"code": exit code, "peak_kib": peak resident memory in KiB (the larger
of the last VmHWM read from /proc/PID/status and the child's ru_maxrss), "seconds": how long it
ran, "shown": how many bytes the terminal showed, "cut": how many cut lines it showed ("bytes
cut"), "dropped": the dropped-lines notes it showed, as [count, ...], "head": its first 4 KiB,
"tail": its last 4 KiB}.
"""
import json
import os
import pty
import re
import select
import sys
import time

rate = int(sys.argv[1])
command = sys.argv[sys.argv.index("--") + 1:]


def vm_hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


began = time.time()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(command[0], command)

head = b""
tail = b""
shown = 0
cut = 0
dropped = []
carry = b""
hwm = 0
deadline = began + 120
next_probe = 0.0
status = None
rusage = None
while time.time() < deadline:
    now = time.time()
    if now >= next_probe:
        hwm = max(hwm, vm_hwm(pid))
        next_probe = now + 0.05
    ready, _, _ = select.select([fd], [], [], 0.05)
    if ready:
        want = 65536 if rate == 0 else max(1, rate // 20)
        try:
            chunk = os.read(fd, want)
        except OSError:
            chunk = b""
        if not chunk:
            break
        shown += len(chunk)
        # Count the notes that end in this chunk (one may have begun in the previous one).
        text = carry + chunk
        for m in re.finditer(rb"more bytes cut\]|(\d+) log line\(s\) dropped", text):
            if m.end() > len(carry):
                if m.group(1) is None:
                    cut += 1
                else:
                    dropped.append(int(m.group(1)))
        carry = text[-64:]
        if len(head) < 4096:
            head += chunk[: 4096 - len(head)]
        tail = (tail + chunk)[-4096:]
        if rate:
            time.sleep(len(chunk) / rate)
_, status, rusage = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({
    "code": code,
    "peak_kib": max(hwm, rusage.ru_maxrss),
    "seconds": round(time.time() - began, 2),
    "shown": shown,
    "cut": cut,
    "dropped": dropped,
    "head": head.decode("utf-8", "replace"),
    "tail": tail.decode("utf-8", "replace"),
}))
