#!/usr/bin/env bash
# Benchmarks of fleet, on demand (not part of CI or `cargo test`). Prints one table at the end.
#
#   bash bench/run.sh                 # everything (~6 minutes on 2 cores)
#   BENCH_QUICK=1 bash bench/run.sh   # smaller numbers, for a smoke run
#
# Knobs: BENCH_UPDATE_N (500), BENCH_PARALLEL ("10 50"), BENCH_SPEED (6: a build takes ~1 s),
# BENCH_READY_MODES ("0 1": each update run without and with the wait for the agents),
# BENCH_WAITS (10000), BENCH_DETECT ("24 24": coder updates, migrations), BENCH_RUNS (300),
# BENCH_LIST_N (5000: fleet coder list, list_agents walk), BENCH_ANSWERS_N (1500: token figures),
# BENCH_PYTHON (a python with tiktoken + bpe-openai, for the token figures).
# Needs: cargo, python3, hyperfine (apt-get install hyperfine; else a Python loop is used).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if [[ -n "${BENCH_QUICK:-}" ]]; then
  : "${BENCH_UPDATE_N:=100}" "${BENCH_PARALLEL:=50}" "${BENCH_WAITS:=2000}" "${BENCH_DETECT:=8 8}" "${BENCH_RUNS:=100}"
fi
UPDATE_N="${BENCH_UPDATE_N:-500}"
PARALLEL="${BENCH_PARALLEL:-10 50}"
SPEED="${BENCH_SPEED:-6}"
WAITS="${BENCH_WAITS:-10000}"
read -r DETECT_CODER DETECT_MOLECULE <<<"${BENCH_DETECT:-24 24}"
DETECT_UPDATES="${BENCH_DETECT_UPDATES:-8}"
RUNS="${BENCH_RUNS:-300}"

OUT="$(mktemp -d "${TMPDIR:-/tmp}/fleet-bench.XXXXXX")"
SIM_PID=""
cleanup() { if [[ -n "$SIM_PID" ]]; then kill -INT "$SIM_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

log() { echo "== $*" >&2; }

log "building release binaries and the bench program (cargo --release)"
cargo build --release --bins --quiet
BENCH_EXE="$(cargo bench --bench fleet-bench --no-run --message-format=json --quiet \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "fleet-bench":
        print(m["executable"])')"
FLEET="$CARGO_TARGET_DIR/release/fleet"
FLEET_MCP="$CARGO_TARGET_DIR/release/fleet-mcp"
echo "{\"bench\": \"machine\", \"cores\": $(nproc), \"binary_kb\": $(( $(stat -c %s "$FLEET") / 1024 )), \"mcp_binary_kb\": $(( $(stat -c %s "$FLEET_MCP") / 1024 ))}" >"$OUT/machine.json"

# 1. cold start ---------------------------------------------------------------------------------
for what in --help --version; do
  log "cold start: fleet $what ($RUNS runs)"
  if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$OUT/start$what.json" "$FLEET $what" >/dev/null 2>&1
  else
    python3 - "$FLEET" "$what" "$RUNS" "$OUT/start$what.json" <<'EOF'
import json, subprocess, sys, time
exe, arg, runs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
times = []
for _ in range(runs + 20):
    t0 = time.perf_counter()
    subprocess.run([exe, arg], stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - t0)
json.dump({"results": [{"times": times[20:]}]}, open(out, "w"))
EOF
  fi
done

# 2. fleet-mcp -------------------------------------------------------------------------------------
log "fleet-mcp: start to tools/list, RSS, 1000 sequential tools/list"
python3 bench/mcp_bench.py "$FLEET_MCP" --starts 30 --calls 1000 >"$OUT/mcp.json"

# 3. completion detection ------------------------------------------------------------------------
log "completion detection with default polling ($DETECT_CODER Coder updates, $DETECT_MOLECULE migrations)"
"$BENCH_EXE" detect --coder "$DETECT_CODER" --molecule "$DETECT_MOLECULE" >"$OUT/detect.jsonl"
log "completion detection by push: the build's log stream ($DETECT_CODER Coder updates)"
"$BENCH_EXE" detect --coder "$DETECT_CODER" --molecule 0 --coder-push 1 | grep detect_coder_push >>"$OUT/detect.jsonl"
log "requests per update, with and without readiness, push against polling ($DETECT_UPDATES updates per mode)"
"$BENCH_EXE" detect --coder 0 --molecule 0 --updates "$DETECT_UPDATES" | grep requests_per_update >>"$OUT/detect.jsonl"

# A simulator in its own process, so that the measured process holds only the client.
start_sim() { # speed bulk
  "$FLEET" -o json sim --listen 127.0.0.1:0 --speed "$1" --bulk-workspaces "$2" >"$OUT/sim.json" 2>/dev/null &
  SIM_PID=$!
  for _ in $(seq 100); do [[ -s "$OUT/sim.json" ]] && break; sleep 0.1; done
  eval "$(python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
print("\n".join(f"export {k}={v}" for k, v in d["env"].items()))' "$OUT/sim.json")"
}
stop_sim() { kill -INT "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""; }

# 4. fleet-scale update ---------------------------------------------------------------------------
update_help="$("$FLEET" coder update --help 2>&1 || true)"
if grep -q -- "--parallel" <<<"$update_help"; then PATH_USED=cli; else PATH_USED=sdk; fi
# Each size twice: without the readiness wait (stop + start, the earlier figures) and with it
# (the default since the rollout work: stop + start + the agents ready).
if grep -q -- "--no-wait-ready" <<<"$update_help"; then READY_MODES="${BENCH_READY_MODES:-0 1}"; else READY_MODES=0; fi
for p in $PARALLEL; do
  for ready in $READY_MODES; do
  log "update $UPDATE_N workspaces, --parallel $p, speed x$SPEED, readiness $ready (path: $PATH_USED)"
  start_sim "$SPEED" "$UPDATE_N"
  if [[ "$PATH_USED" == cli ]]; then
    mapfile -t names < <(python3 -c "import sys; [print(f'alice/bulk-{i:04}') for i in range(1, int(sys.argv[1]) + 1)]" "$UPDATE_N")
    no_wait=(); [[ "$ready" == 0 && "$READY_MODES" != 0 ]] && no_wait=(--no-wait-ready)
    python3 bench/peak_rss.py --label bench=update --label path=cli --label "parallel=$p" --label "workspaces=$UPDATE_N" --label "ready=$ready" -- \
      "$FLEET" -o json coder update "${names[@]}" --parallel "$p" "${no_wait[@]}" >>"$OUT/update.jsonl" || true
  else
    python3 bench/peak_rss.py -- "$BENCH_EXE" update --workspaces "$UPDATE_N" --parallel "$p" >>"$OUT/update.jsonl"
  fi
  stop_sim
  done
done

# 5. many concurrent waits ------------------------------------------------------------------------
log "$WAITS concurrent migration waits in one process"
start_sim 60 "$WAITS"
python3 bench/peak_rss.py -- "$BENCH_EXE" waits --count "$WAITS" >"$OUT/waits.json"
stop_sim

# 6. listing at fleet scale, and what the answers cost an agent ------------------------------------
LIST_N="${BENCH_LIST_N:-5000}"
log "fleet coder list over $LIST_N simulated workspaces (5 runs)"
start_sim 60 "$LIST_N"
python3 - "$FLEET" "$LIST_N" >"$OUT/list.json" <<'EOF'
import json, subprocess, sys, time
exe, n = sys.argv[1], int(sys.argv[2])
times, lines = [], 0
for _ in range(5):
    t0 = time.perf_counter()
    out = subprocess.run([exe, "coder", "list"], capture_output=True, check=True).stdout
    times.append(time.perf_counter() - t0)
    lines = out.count(b"\n")
json.dump({"bench": "coder_list", "workspaces": n, "times_s": times, "lines": lines}, sys.stdout)
EOF
stop_sim
# Token counts need tiktoken and bpe-openai: BENCH_PYTHON names a venv's python that has them.
ANSWERS_N="${BENCH_ANSWERS_N:-1500}"
log "fleet-mcp answers at $ANSWERS_N workspaces (tokens), list_agents walk over $LIST_N"
"${BENCH_PYTHON:-python3}" bench/mcp_answers.py "$FLEET" "$FLEET_MCP" --workspaces "$ANSWERS_N" \
  --counter ../shared/tools/count_tokens.py >"$OUT/answers.json" || log "answers: skipped (see above)"
python3 bench/mcp_answers.py "$FLEET" "$FLEET_MCP" --workspaces "$LIST_N" --walk-only >"$OUT/walk.json"

python3 bench/table.py "$OUT" "$SPEED"
log "raw results: $OUT"
