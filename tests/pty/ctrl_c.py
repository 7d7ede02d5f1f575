"""Runs a command under a pseudo-terminal, as a person would, and presses Ctrl-C.

Usage: python3 ctrl_c.py PRESSES WAIT_FOR -- COMMAND ARGS...
Waits until the output shows WAIT_FOR, then types Ctrl-C (the terminal turns it into SIGINT
for the foreground process), PRESSES times, 0.5 s apart. Prints one JSON line:
{"code": exit code, "output": everything the terminal showed}.
"""
import json
import os
import pty
import select
import sys
import time

presses = int(sys.argv[1])
wait_for = sys.argv[2].encode()
command = sys.argv[sys.argv.index("--") + 1:]

pid, fd = pty.fork()
if pid == 0:
    os.execvp(command[0], command)

output = b""
pressed = 0
next_press = None
deadline = time.time() + 120
while time.time() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.05)
    if ready:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    now = time.time()
    if pressed < presses:
        if next_press is None and wait_for in output:
            next_press = now + 0.2
        if next_press is not None and now >= next_press:
            os.write(fd, b"\x03")
            pressed += 1
            next_press = now + 0.5
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"code": code, "pressed": pressed, "output": output.decode("utf-8", "replace")}))
