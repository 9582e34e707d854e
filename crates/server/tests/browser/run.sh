#!/usr/bin/env bash
# Browser tests of /dashboard: Debian's headless Chromium driven by
# Playwright for Python, against the marquee binary at $MARQUEE_BIN (this
# script builds nothing). Starts the server on a free port with a temporary
# data dir and a loopback webhook allowance, runs pytest, and leaves
# screenshots and the server log in $MARQUEE_BROWSER_ARTIFACTS (default
# /var/cache/marquee-browser-artifacts, outside the clone).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
echo "== dashboard browser tests (headless Chromium, Playwright)"
here="$(cd "$(dirname "$0")" && pwd)"
: "${MARQUEE_BIN:?set MARQUEE_BIN to the marquee binary, e.g. \$CARGO_TARGET_DIR/debug/marquee}"
[ -x "$MARQUEE_BIN" ] || { echo "browser tests: no executable at MARQUEE_BIN=$MARQUEE_BIN" >&2; exit 1; }

# The system browser (Debian's package; Playwright downloads none).
export MARQUEE_CHROMIUM="${MARQUEE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$MARQUEE_CHROMIUM" ]; then
  echo "== apt-get install chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# The venv, from the pinned requirements; reused while they are unchanged.
venv="${MARQUEE_BROWSER_VENV:-/var/cache/marquee-venv-browser}"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "== venv $venv"
  python3 -m venv "$venv"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$venv/.requirements.sha256"
fi

artifacts="${MARQUEE_BROWSER_ARTIFACTS:-/var/cache/marquee-browser-artifacts}"
rm -rf "$artifacts" && mkdir -p "$artifacts"
export MARQUEE_BROWSER_ARTIFACTS="$artifacts"

data="$(mktemp -d)"
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export MARQUEE_TEST_URL="http://127.0.0.1:$port"
export MARQUEE_TEST_ADMIN_TOKEN="browser-test-admin-$$"
# One retry an hour: the tests see the first failure, then their own resend.
MARQUEE_LOG="${MARQUEE_LOG:-info}" NO_COLOR=1 "$MARQUEE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" \
  --admin-token "$MARQUEE_TEST_ADMIN_TOKEN" --allow-private-endpoints --retry-schedule 0s,1h \
  >"$artifacts/server.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 200); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]+'/readyz', timeout=1)" "$MARQUEE_TEST_URL" 2>/dev/null; then break; fi
  kill -0 "$server" 2>/dev/null || { echo "marquee exited:" >&2; cat "$artifacts/server.log" >&2; exit 1; }
  sleep 0.1
done

cd "$here"
"$venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
echo "browser test artifacts (screenshots, server log): $artifacts"
