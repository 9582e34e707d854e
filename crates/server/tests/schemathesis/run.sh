#!/usr/bin/env bash
# Property-based API test (called from .ci/run): schemathesis, pinned in
# requirements.txt, generates requests for every operation of the live
# server's own /openapi.json and checks each answer: no 5xx, a documented
# status, the documented content type, a body that matches its schema.
#
# The server is $MARQUEE_BIN (the debug binary `cargo test` built) on a free
# port with a temporary data dir, an organization and an enterprise key.
# Exits non-zero on any failure; the server's log is printed then.
#
# Knobs: SCHEMATHESIS_MAX_EXAMPLES (default 10 per operation),
# MARQUEE_SCHEMATHESIS_VENV (default /var/cache/marquee-venv-schemathesis),
# MARQUEE_SCHEMATHESIS_DATABASE_URL (a PostgreSQL URL: run against the
# PostgreSQL store, in a fresh schema, instead of SQLite).
# SCHEMATHESIS_WORKERS (default 1: with 2, Python 3.11's `ast` module,
# which Hypothesis calls to describe its filters, can fail with
# "SystemError: AST constructor recursion depth mismatch" when two threads
# parse at once; one worker is also no slower here).
# Excluded, and why: see README, "OpenAPI".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"

MARQUEE_BIN="${MARQUEE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/marquee}"
if [ ! -x "$MARQUEE_BIN" ]; then
  echo "schemathesis: marquee binary not found at $MARQUEE_BIN (cargo build -p marquee-server, or set MARQUEE_BIN)" >&2
  exit 1
fi
venv="${MARQUEE_SCHEMATHESIS_VENV:-/var/cache/marquee-venv-schemathesis}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-10}"

# The venv, outside the clone: (re)built only when requirements.txt changed.
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "== schemathesis: creating $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$venv/.requirements.sha256"
fi

data="$(mktemp -d "${TMPDIR:-/tmp}/marquee-schemathesis.XXXXXX")"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin="schemathesis-admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$data"
  if [ -n "${MARQUEE_SCHEMATHESIS_DATABASE_URL:-}" ] && command -v psql >/dev/null; then
    psql "$MARQUEE_SCHEMATHESIS_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS mq_schemathesis_$port CASCADE" \
      >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# The enterprise rate is raised so the run tests the API, not the limiter
# (429 is documented and would pass, but would hide the operations behind it).
store=()
if [ -n "${MARQUEE_SCHEMATHESIS_DATABASE_URL:-}" ]; then
  store=(--database "$MARQUEE_SCHEMATHESIS_DATABASE_URL" --database-schema "mq_schemathesis_$port"
    --server-secret "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')")
  echo "== schemathesis: against PostgreSQL (schema mq_schemathesis_$port)"
fi
MARQUEE_LOG=warn NO_COLOR=1 "$MARQUEE_BIN" serve \
  --listen "127.0.0.1:$port" --data-dir "$data/data" --admin-token "$admin" \
  --rate-limit-enterprise 1000000 "${store[@]}" >"$data/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  curl -fsS "$base/ping" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$data/server.log"; echo "schemathesis: marquee exited" >&2; exit 1; }
  sleep 0.1
done

org="$(curl -fsS -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"name":"schemathesis","profiles":["revolution","eventium"]}' "$base/admin/v1/orgs" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
key="$(curl -fsS -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"tier":"enterprise","name":"schemathesis"}' "$base/admin/v1/orgs/$org/keys" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run() {
  # The key goes in x-api-key (which API-key auth reads first), the admin
  # token in Authorization (which only the admin API reads).
  "$venv/bin/schemathesis" run "$base/openapi.json" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --request-timeout 20 \
    --workers "${SCHEMATHESIS_WORKERS:-1}" \
    --suppress-health-check all \
    --warnings off \
    -H "x-api-key: $key" -H "Authorization: Bearer $admin" \
    --exclude-operation-id stream_sse \
    "$@"
}
status=0
# The admin operations run last, apart: a stateful chain there can revoke
# the key the first run uses.
echo "== schemathesis: the native and platform APIs ($max_examples examples per operation)"
run --exclude-tag admin || status=$?
echo "== schemathesis: the admin API"
run --include-tag admin || status=$?
if [ "$status" -ne 0 ]; then
  echo "== marquee log"
  tail -n 200 "$data/server.log"
fi
exit "$status"
