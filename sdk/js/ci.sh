#!/usr/bin/env bash
# The JS SDK's CI step (called from .ci/run): dependencies from the lockfile,
# then `npm test` (build + node's test runner against the real marquee binary).
# Exits non-zero on any failure; prints node's test summary.
set -euo pipefail
cd "$(dirname "$0")"

# The binary under test: MARQUEE_BIN, else the cargo target dir's debug build.
export MARQUEE_BIN="${MARQUEE_BIN:-${CARGO_TARGET_DIR:-$(cd ../.. && pwd)/target}/debug/marquee}"
if [ ! -x "$MARQUEE_BIN" ]; then
  echo "sdk/js: marquee binary not found at $MARQUEE_BIN (cargo build -p marquee-server, or set MARQUEE_BIN)" >&2
  exit 1
fi

# npm ci only when node_modules is missing or older than the lockfile.
if [ ! -d node_modules/typescript ] || [ ! -d node_modules/ws ] \
  || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci (sdk/js)"
  npm ci --no-audit --no-fund
fi

echo "== npm test (sdk/js, MARQUEE_BIN=$MARQUEE_BIN)"
# node --test with the spec reporter: failures, then the summary (tests / pass / fail / duration).
npm test --silent
