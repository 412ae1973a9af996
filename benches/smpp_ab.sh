#!/usr/bin/env bash
# Interleaved A/B of two gate binaries on the same data (pinned: endpoints on CPU 0,
# both gates on CPU 1, runs alternating, the side that goes first alternating too),
# for changes too small to see across separate runs on a noisy machine. Prints each
# side's median msg/s and gate CPU per message, and the rounds' paired rate ratios. NOAUDIT_B=1 runs side B without an audit file (what the audit trail costs).
# Usage: bash benches/smpp_ab.sh BIN_A BIN_B [rounds] [messages] [mix]
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2"); rounds=${3:-9}; messages=${4:-1000000}; mix=${5:-default}
cd "$(dirname "$0")/.."
source benches/smpp_bench_lib.sh
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
bench_data "$work" "$A"
gate_toml "$work" 2785 2786 "$work/audit.a.jsonl" > "$work/a.toml"
audit_b="$work/audit.b.jsonl"; [ "${NOAUDIT_B:-0}" = 1 ] && audit_b=
gate_toml "$work" 2795 2796 "$audit_b" > "$work/b.toml"
taskset -c 0 "$A" smpp-sink --listen 127.0.0.1:2786 >/dev/null 2>&1 &
taskset -c 0 "$A" smpp-sink --listen 127.0.0.1:2796 >/dev/null 2>&1 &
taskset -c 1 "$A" serve --config "$work/a.toml" >"$work/a.log" 2>&1 & pa=$!
taskset -c 1 "$B" serve --config "$work/b.toml" >"$work/b.log" 2>&1 & pb=$!
wait_port 2785; wait_port 2795
mix_shares "$mix"
for r in $(seq "$rounds"); do
  # Alternate which side goes first, so neither always runs on a warmer machine.
  order="a:2785:$pa b:2795:$pb"; [ $((r % 2)) = 0 ] && order="b:2795:$pb a:2785:$pa"
  for v in $order; do
    IFS=: read -r name port pid <<<"$v"
    before=$(cpu_ticks "/proc/$pid")
    taskset -c 0 "$A" smpp-load --target 127.0.0.1:$port --sessions 4 --window 64 --messages "$messages" \
      --consented-file "$work/consented.txt" "${shares[@]}" --json > "$work/$name.$r.json"
    echo $(($(cpu_ticks "/proc/$pid") - before)) > "$work/$name.$r.cpu"
  done
done
python3 - "$work" "$rounds" "$messages" "$(getconf CLK_TCK)" <<'PY'
import json, sys, statistics as st
d, rounds, messages, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rates = {n: [json.load(open(f"{d}/{n}.{r}.json"))["msgs_per_sec"] for r in range(1, rounds + 1)] for n in "ab"}
for name in "ab":
    cpus=[int(open(f"{d}/{name}.{r}.cpu").read())*1e6/tck/messages for r in range(1,rounds+1)]
    print(name, "rate median", round(st.median(rates[name])), "cpu us/msg median", round(st.median(cpus),3))
    print("  rates (k/s)", [round(r/1000) for r in rates[name]])
    print("  cpu us/msg ", [round(c,2) for c in cpus])
pairs = list(zip(rates["a"], rates["b"]))
print("b/a rate, median of the rounds' ratios:", round(st.median(b/a for a,b in pairs),3), " rounds where b was faster:", sum(b>a for a,b in pairs), "of", rounds)
PY
