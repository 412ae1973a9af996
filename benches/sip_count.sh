#!/usr/bin/env bash
# Instructions per SIP message (valgrind's cachegrind), for A/Bs of the
# proxy's per-message work that timing on a shared machine cannot resolve.
#   bash benches/sip_count.sh [iterations]
#   PROFILE=forward bash benches/sip_count.sh   # also: callgrind, by function
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
cargo bench --bench sip_count --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/sip_count-* | grep -v '\.d$' | head -1)
count() {
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*I *refs: *//p' | tr -d ,
}
base=$(count none "$n")
for op in ${OPS:-scan forward forward_cached refuse response}; do
  total=$(count "$op" "$n")
  awk -v op="$op" -v t="$total" -v b="$base" -v n="$n" 'BEGIN { printf "%-15s %8.1f instructions/message\n", op, (t - b) / n }'
done
if [ -n "${PROFILE:-}" ]; then
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$PROFILE" "$n" >/dev/null 2>&1
  callgrind_annotate --inclusive=no "$out" 2>/dev/null | head -45
  rm -f "$out"
fi
