#!/usr/bin/env bash
# Instructions per operation of the SMPP codec (valgrind's cachegrind), for A/Bs of
# codec changes that timing on a shared machine cannot resolve.
#   bash benches/smpp_codec_count.sh [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
cargo bench --bench smpp_codec_count --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/smpp_codec_count-* | grep -v '\.d$' | head -1)
count() {
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*I *refs: *//p' | tr -d ,
}
base=$(count none "$n")
for op in ${OPS:-view_and_forward gate_view decode decode_bytes encode}; do
  total=$(count "$op" "$n")
  awk -v op="$op" -v t="$total" -v b="$base" -v n="$n" 'BEGIN { printf "%-18s %8.1f instructions/op\n", op, (t - b) / n }'
done
