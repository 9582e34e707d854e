#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in fuzz/ and runs each one
# briefly from its seeds (fuzz/seeds/<target>), failing on any crash, failed
# property or hang. Skips (exit 0) where no nightly toolchain exists.
#
#   fuzz/smoke.sh                  # every target
#   fuzz/smoke.sh verify ijson     # some targets
#
# FUZZ_SMOKE_RUNS (default 500000) and FUZZ_SMOKE_SECS (default 10) bound
# each target's run, whichever comes first. FUZZ_SANITIZER (default none)
# is cargo-fuzz's --sanitizer: the crates under test forbid unsafe code, and
# without AddressSanitizer the cold build takes half the time and `verify`
# runs four times as many inputs; debug assertions and overflow checks stay
# on. The long runs and their counts are in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "skipping fuzz smoke: no nightly toolchain"
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Outside the clone, apart from the stable builds (other flags, nightly).
export CARGO_TARGET_DIR="${MARQUEE_FUZZ_TARGET_DIR:-/var/cache/marquee-fuzz-target}"
export CARGO_TERM_COLOR=never
runs="${FUZZ_SMOKE_RUNS:-500000}"
secs="${FUZZ_SMOKE_SECS:-10}"
sanitizer="${FUZZ_SANITIZER:-none}"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "== fuzz smoke: building ${#targets[@]} targets"
start=$SECONDS
cargo +nightly fuzz build --sanitizer "$sanitizer"
echo "fuzz build: $((SECONDS - start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  corpus="$work/$t"
  mkdir -p "$corpus"
  if [ -d "fuzz/seeds/$t" ]; then
    cp "fuzz/seeds/$t"/* "$corpus"/
  fi
  log="$work/$t.log"
  if ! cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "$corpus" -- \
    -runs="$runs" -max_total_time="$secs" -timeout=10 \
    </dev/null >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz smoke: $t FAILED (input above, and in fuzz/artifacts/$t/)"
    exit 1
  fi
  echo "fuzz smoke $t: $(grep -E '^Done [0-9]+ runs' "$log" || echo 'done')"
done
echo "fuzz smoke: ${#targets[@]} targets passed in $((SECONDS - start)) s"
