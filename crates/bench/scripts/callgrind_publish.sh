#!/bin/bash
# Instructions for N sequential fan_checkin publishes under callgrind (repeatable on a noisy
# machine). usage: callgrind_publish.sh NAME N plain|typed [vary]   (typed: the org enables
# revolution; vary: a distinct fan_id per publish, so the attendance engine counts every scan)
# Per publish = (total(N) - total(0)) / N; see BENCHMARKS.md "Schema validation at publish".
mkdir -p "${OUT:-/tmp/marquee-callgrind}"
# usage: run.sh NAME N KEYKIND
set -e
B=${MARQUEE_BIN:-target/release/marquee}
D=${OUT:-/tmp/marquee-callgrind}/data-$1; rm -rf $D; mkdir -p $D
ORG=$($B org create bench --data-dir $D --json $( [ "$3" = typed ] && echo --profile revolution ) | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
KEY=$($B key create --org $ORG --tier enterprise --data-dir $D --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])')
PORT=$((7600 + RANDOM % 300))
MARQUEE_LOG=warn valgrind --tool=callgrind --callgrind-out-file=${OUT:-/tmp/marquee-callgrind}/cg.$1 $B serve --listen 127.0.0.1:$PORT --data-dir $D > ${OUT:-/tmp/marquee-callgrind}/log.$1 2>&1 &
VP=$!
python3 "$(dirname "$0")"/callgrind_drive.py $PORT $KEY $2 $4
kill -TERM $VP; wait $VP || true
grep -h "summary:" ${OUT:-/tmp/marquee-callgrind}/cg.$1* | awk '{s+=$2} END {print "'$1'", s}'
