#!/usr/bin/env bash
# Policy service throughput on one core: the load generator (smtp-policy-load,
# CPU 0) with many persistent connections against the gate's policy service
# (CPU 1), interleaved with the same load against the trivial always-DUNNO
# server (--serve-dunno, CPU 1), which shows what the load generator itself can
# drive. Also reports the gate's CPU time per request, which holds even when
# the load generator, not the gate, is the limit.
# Usage: [BIN=gate-binary] [MIX=consented|mixed] [PIPELINE=1] [CONNECTIONS=64]
#        bash benches/smtp_policy_load.sh [rounds] [seconds]
#   MIX=consented: every request is looked up and allowed (DUNNO; default);
#   MIX=mixed: 3 consented, 1 unconsented, 1 withdrawn in turn (2 of 5
#   refused and audited to a file).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; seconds="${2:-10}"
mix="${MIX:-consented}"; pipeline="${PIPELINE:-1}"; conns="${CONNECTIONS:-64}"
if [ -n "${BIN:-}" ]; then bin=$(realpath "$BIN"); else
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/iys-gate"
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
source benches/smtp_policy_bench_lib.sh
policy_data "$work" "$bin"
audit=""; [ "$mix" = mixed ] && audit="$work/audit.jsonl"
policy_toml "$work" 10140 "$audit" > "$work/gate.toml"
taskset -c 1 "$bin" serve --config "$work/gate.toml" > "$work/gate.log" 2>&1 &
gate_pid=$!
taskset -c 1 "$bin" smtp-policy-load --serve-dunno 127.0.0.1:10141 2> "$work/dunno.log" &
dunno_pid=$!
wait_port 10140; wait_port 10141
recipients="$work/consented.txt"; [ "$mix" = mixed ] && recipients="$work/mixed.txt"
# The load generator's own CPU time (user, system), when GNU time is there.
timer=""
[ -x /usr/bin/time ] && timer="/usr/bin/time -f %U_%S -o"
for r in $(seq "$rounds"); do
  for side in gate:10140:$gate_pid dunno:10141:$dunno_pid; do
    IFS=: read -r name port pid <<< "$side"
    before=$(cpu_ticks "$pid")
    $timer ${timer:+"$work/$name.$r.load"} taskset -c 0 "$bin" smtp-policy-load --target 127.0.0.1:$port --connections "$conns" \
      --pipeline "$pipeline" --warmup 1s --duration "${seconds}s" \
      --recipient-file "$recipients" --json > "$work/$name.$r.json"
    [ -n "$timer" ] || echo "0 0" > "$work/$name.$r.load"
    echo $(( $(cpu_ticks "$pid") - before )) > "$work/$name.$r.cpu"
  done
done
python3 - "$work" "$rounds" "$seconds" "$(getconf CLK_TCK)" "$mix" "$pipeline" "$conns" <<'PY'
import json, sys, statistics as st
d, rounds, secs, tck, mix, pipeline, conns = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:]
print(f"policy service, {conns} connections, pipeline {pipeline}, mix {mix}, {rounds} interleaved rounds of {secs:.0f}s (load on CPU 0, server on CPU 1)")
for name in ["gate", "dunno"]:
    runs = [json.load(open(f"{d}/{name}.{r}.json")) for r in range(1, rounds + 1)]
    cpu = [int(open(f"{d}/{name}.{r}.cpu").read()) / tck for r in range(1, rounds + 1)]
    # CPU seconds over the whole load run (warm-up included), per request answered in it.
    per_req = [c / (x["requests"] * (secs + 1) / secs) * 1e6 for c, x in zip(cpu, runs)]
    util = [c / (secs + 1) for c in cpu]
    rates = " ".join("%.0f" % x["per_second"] for x in runs)
    print(f"  {name:6s} rate {rates}/s, median {st.median(x['per_second'] for x in runs):.0f}/s;"
          f" p50 {st.median(x['latency_p50_us'] for x in runs):.0f}us p99 {st.median(x['latency_p99_us'] for x in runs):.0f}us;"
          f" server CPU {st.median(util):.2f} of a core, {st.median(per_req):.2f}us per request"
          f" (= {1e6 / st.median(per_req):.0f}/s per core); answers {runs[-1]['answers']}")
    load = [sum(map(float, open(f"{d}/{name}.{r}.load").read().replace("_", " ").split())) for r in range(1, rounds + 1)]
    if any(load):
        lper = [c / (x["requests"] * (secs + 1) / secs) * 1e6 for c, x in zip(load, runs)]
        print(f"         load generator CPU {st.median(c / (secs + 1) for c in load):.2f} of a core,"
              f" {st.median(lper):.2f}us per request (= {1e6 / st.median(lper):.0f}/s per core)")
PY
