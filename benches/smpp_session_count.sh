#!/usr/bin/env bash
# Instructions per message in the gate's SMPP session tasks (decode, decide,
# forward, bookkeeping; not the kernel, not the audit writer), counted by
# valgrind's callgrind over a load-generator run: the figure that repeats on a
# noisy machine, for A/Bs of changes to the session loop that end-to-end
# timing cannot resolve.
#   bash benches/smpp_session_count.sh [messages] [gate binary]
# Slow: the gate loads the bench data under valgrind first (about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-200000}
cargo build --release --quiet
bin=$(realpath "${2:-${CARGO_TARGET_DIR:-target}/release/iys-gate}")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
source benches/smpp_bench_lib.sh
bench_data "$work" "$bin"
gate_toml "$work" 2805 2806 "$work/audit.jsonl" > "$work/gate.toml"
"$bin" smpp-sink --listen 127.0.0.1:2806 >/dev/null 2>&1 &
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" --collect-atstart=no \
  --toggle-collect='*proxy*session*run*' "$bin" serve --config "$work/gate.toml" >"$work/gate.log" 2>&1 &
gate=$!
for _ in $(seq 600); do (echo > /dev/tcp/127.0.0.1/2805) 2>/dev/null && break; sleep 0.5; done
"$bin" smpp-load --target 127.0.0.1:2805 --sessions 4 --window 64 --messages "$messages" \
  --consented-file "$work/consented.txt" --json > "$work/load.json"
kill -INT "$gate"; wait "$gate" || true
total=$(callgrind_annotate "$work/cg.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
awk -v t="$total" -v n="$messages" 'BEGIN { printf "session tasks: %.0f instructions per message (default mix, %d messages)\n", t / n, n }'
echo "top functions (exclusive):"
callgrind_annotate "$work/cg.out" 2>/dev/null | sed -n '/file:function/,$p' | sed -n '3,12p' | cut -c1-150
