#!/usr/bin/env bash
# The audit writer thread's CPU per refusal: every message refused (all-unconsented
# load through one gate binary), three rounds, plus the lines written.
# Usage: bash benches/smpp_audit_cpu.sh BIN [messages]
set -euo pipefail
BIN=$(realpath "$1"); n=${2:-1000000}
cd "$(dirname "$0")/.."
source benches/smpp_bench_lib.sh
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
bench_data "$work" "$BIN"
gate_toml "$work" 2805 2806 "$work/audit.jsonl" > "$work/g.toml"
taskset -c 0 "$BIN" smpp-sink --listen 127.0.0.1:2806 >/dev/null 2>&1 &
taskset -c 1 "$BIN" serve --config "$work/g.toml" > "$work/log" 2>&1 & pid=$!
wait_port 2805
mix_shares all-refused
tck=$(getconf CLK_TCK)
for _ in 1 2 3; do
  tid=$(dirname "$(grep -l iys-gate-audit /proc/$pid/task/*/comm | head -1)")
  b=$(cpu_ticks "$tid"); ball=$(cpu_ticks "/proc/$pid")
  taskset -c 0 "$BIN" smpp-load --target 127.0.0.1:2805 --sessions 4 --window 64 --messages "$n" \
    --consented-file "$work/consented.txt" "${shares[@]}" --json > /dev/null
  sleep 0.1
  a=$(cpu_ticks "$tid"); aall=$(cpu_ticks "/proc/$pid")
  python3 -c "print(f'audit thread {($a-$b)*1e6/$tck/$n:.2f} us/refusal; whole gate {($aall-$ball)*1e6/$tck/$n:.2f} us/msg')"
done
echo "audit lines written: $(wc -l < "$work/audit.jsonl")"
