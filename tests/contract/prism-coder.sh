#!/usr/bin/env bash
# Contract test: the `fleet coder` commands against Stoplight Prism serving Coder's own API
# description as of 2026-08 (../shared/reference/coder-swagger-subset-2026-08.json; its paths
# already start with /api/v2, so they are served as they are).
#
# Fails when
#   - Prism logs a request violation (a request fleet sent breaks Coder's description: wrong
#     path parameter format, body, enum, missing Coder-Session-Token → 422/401), or
#   - fleet cannot parse a response Prism generated from the description, or
#   - a read command fails, or an update ends in a way that is not a plain answer.
#
# Prism answers random data (--dynamic), so an update walks a random path: a build in progress,
# a pre-flight refusal, a stop that fails, … Each CLI run must end with one of the documented
# exit codes 0/1/2/3 and never a parse failure. The build requests are sent by
# tests/contract_prism.rs (the SDK's run_plan on plans made from Prism's answers); over all runs
# at least one POST …/builds must have been sent (and accepted), so their bodies are checked too.
#
# Usage: tests/contract/prism-coder.sh        (from the repository root)
# Env:   FLEET_BIN   a built fleet binary (default: cargo build --bin fleet)
#        PRISM_DIR   a directory with @stoplight/prism-cli installed (default: npm installs it
#                    into a throwaway directory)
#        PRISM_PORT  the port (default: a random free one)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
reference="$root/../shared/reference/coder-swagger-subset-2026-08.json"
[ -f "$reference" ] || { echo "prism-coder: $reference not found" >&2; exit 1; }

work="$(mktemp -d)"
prism_pid=""
cleanup() {
  if [ -n "$prism_pid" ]; then kill "$prism_pid" 2>/dev/null || true; wait "$prism_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---- fleet ------------------------------------------------------------------------------
if [ -z "${FLEET_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet --bin fleet)
  FLEET_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/fleet"
fi
[ -x "$FLEET_BIN" ] || { echo "prism-coder: no fleet binary at $FLEET_BIN" >&2; exit 1; }

# ---- Prism ------------------------------------------------------------------------------
if [ -z "${PRISM_DIR:-}" ] && [ -x "${FLEET_CI_NPM:-/nonexistent}/prism/node_modules/.bin/prism" ]; then
  PRISM_DIR="$FLEET_CI_NPM/prism"
fi
if [ -z "${PRISM_DIR:-}" ]; then
  PRISM_DIR="$work/prism"
  mkdir -p "$PRISM_DIR"
  echo "prism-coder: installing @stoplight/prism-cli@5 into a throwaway directory" >&2
  npm install --prefix "$PRISM_DIR" --no-audit --no-fund --loglevel=error @stoplight/prism-cli@5 >&2
fi
prism="$PRISM_DIR/node_modules/.bin/prism"
[ -x "$prism" ] || { echo "prism-coder: no prism at $prism" >&2; exit 1; }

spec="$reference"

port="${PRISM_PORT:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}"
log="$work/prism.log"
"$prism" mock "$spec" -h 127.0.0.1 -p "$port" --dynamic >"$log" 2>&1 &
prism_pid=$!
for _ in $(seq 1 150); do
  grep -q "Prism is listening" "$log" && break
  kill -0 "$prism_pid" 2>/dev/null || { cat "$log" >&2; echo "prism-coder: prism did not start" >&2; exit 1; }
  sleep 0.2
done
grep -q "Prism is listening" "$log" || { cat "$log" >&2; echo "prism-coder: prism did not start in time" >&2; exit 1; }

# ---- fleet coder against Prism ----------------------------------------------------------
export CODER_URL="http://127.0.0.1:$port" CODER_SESSION_TOKEN="prism-contract-token"
unset FLEET_OUTPUT FLEET_LOG_LEVEL
failures=0
out="$work/out" err="$work/err"
id="0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30"

check() { # check NAME ALLOWED_CODES -- fleet args…
  local name="$1" allowed="$2"; shift 3
  local code=0
  "$FLEET_BIN" "$@" >"$out" 2>"$err" || code=$?
  if ! [[ " $allowed " == *" $code "* ]]; then
    echo "FAIL $name: exit $code (allowed: $allowed)" >&2; sed 's/^/  | /' "$err" >&2; failures=$((failures + 1)); return
  fi
  if grep -q "could not be read" "$out" "$err"; then
    echo "FAIL $name: fleet could not parse a response" >&2; sed 's/^/  | /' "$err" >&2; failures=$((failures + 1)); return
  fi
  echo "ok   $name (exit $code)" >&2
}

check "show by UUID"          "0" -- coder show "$id" -o json
check "show owner/name"       "0" -- coder show alice/dev -o json
check "show bare name"        "0" -- coder show dev
check "list"                  "0" -- coder list -o json
check "list --outdated"       "0" -- coder list --outdated
check "template-version"      "0" -- coder template-version "$id" -o json
for i in $(seq 1 8); do
  check "update --force #$i"  "0 1 2 3" -- coder update alice/dev --force \
    --stop-timeout 3s --start-timeout 3s --poll-initial 5ms --poll-max 20ms
done
check "update --template-version" "0 1 2 3" -- coder update "$id" --template-version "$id" \
  --stop-timeout 3s --start-timeout 3s --poll-initial 5ms --poll-max 20ms
check "restart"               "0 1 2 3" -- coder restart alice/dev \
  --stop-timeout 3s --start-timeout 3s --poll-initial 5ms --poll-max 20ms

# The pre-flight refuses Prism's random versions (they never belong to the random workspace's
# template), so the CLI's updates above stop before any build. The stop and start requests
# fleet builds are sent by the SDK's real run_plan, with plans made from Prism's answers; the
# server-side restart (a stop carrying on_success) and GET /buildinfo by the SDK's blocks.
if (cd "$root" && cargo test --quiet --locked --test contract contract_prism -- --ignored --nocapture --test-threads 1) \
    >"$work/sdk.out" 2>&1; then
  echo "ok   run_plan against Prism ($(grep -o 'ended: .*' "$work/sdk.out" || true))" >&2
else
  echo "FAIL run_plan against Prism" >&2; sed 's/^/  | /' "$work/sdk.out" >&2; failures=$((failures + 1))
fi

# ---- Prism's verdict --------------------------------------------------------------------
if grep -E "did not pass the validation rules|Request terminated with error|UNPROCESSABLE_ENTITY|status code 422|status code 401" "$log" >&2; then
  echo "FAIL prism logged a request violation (above); full log follows" >&2
  grep -E "HTTP SERVER|VALIDATOR" "$log" | grep -B2 -A2 -E "did not pass|error" >&2 || true
  failures=$((failures + 1))
fi
posts=$(grep -cE "\[HTTP SERVER\] post /api/v2/workspaces/[^ ]+/builds .*Request received" "$log" || true)
requests=$(grep -c "Request received" "$log" || true)
echo "prism-coder: $requests requests, $posts build creations (POST …/builds), all checked by Prism" >&2
if [ "$posts" -lt 1 ]; then
  echo "FAIL no build was created: the build request bodies were not checked" >&2
  failures=$((failures + 1))
fi

if [ "$failures" -gt 0 ]; then
  echo "prism-coder: $failures failure(s)" >&2
  exit 1
fi
echo "prism-coder: ok" >&2
