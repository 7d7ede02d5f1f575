#!/usr/bin/env bash
# The SDK builds without its default features: no simulator (`sim`), so no axum, hyper server
# or tower for an SDK user who does not want them. Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked --lib --no-default-features
# And axum is really out of the SDK's tree without the feature.
if cargo tree --locked --no-default-features -e normal --prefix none | grep -q '^axum '; then
  echo "axum is still in the SDK's dependency tree without the sim feature" >&2
  exit 1
fi
echo "cargo build --lib --no-default-features: ok (no axum)"
