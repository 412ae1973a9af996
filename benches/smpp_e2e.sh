#!/usr/bin/env bash
# End-to-end SMPP throughput: load generator → sink SMSC, three ways, interleaved
# in one run so the shared machine's noise hits all three alike:
#   direct  load → sink
#   relay   load → plain TCP relay (parses nothing) → sink
#   gate    load → iys-gate (decodes, decides, forwards) → sink
# Usage: [PIN=1] [BIN=gate-binary] bash benches/smpp_e2e.sh [rounds] [messages] [mix]
#   mix: "all-consented" (every message looked up and forwarded; default) or
#        "default" (60% consented, 20% unconsented, 20% informational)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"; messages="${2:-200000}"; mix="${3:-all-consented}"
# PIN=1: the endpoints (load generator and sink) share CPU 0 and the proxy (relay
# or gate) has CPU 1, as when the gate runs on its own cores in production.
if [ "${PIN:-0}" = 1 ]; then ends="taskset -c 0"; proxy="taskset -c 1"; else ends=""; proxy=""; fi
# BIN=path: run that gate binary (an older build, for a before/after on the
# same machine state) instead of building this tree.
if [ -n "${BIN:-}" ]; then bin=$(realpath "$BIN"); else
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/iys-gate"
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

source benches/smpp_bench_lib.sh
bench_data "$work" "$bin"
gate_toml "$work" 2785 2786 "$work/audit.jsonl" > "$work/gate.toml"
$ends $bin smpp-sink --listen 127.0.0.1:2786 >/dev/null 2>&1 &
$proxy $bin smpp-relay --listen 127.0.0.1:2787 --upstream 127.0.0.1:2786 >/dev/null 2>&1 &
relay_pid=$!
$proxy $bin serve --config "$work/gate.toml" >"$work/gate.log" 2>&1 &
gate_pid=$!
wait_port 2785
mix_shares "$mix"
for r in $(seq "$rounds"); do
  for path in direct:2786 relay:2787 gate:2785; do
    name=${path%%:*}; port=${path##*:}
    case $name in relay) pid=$relay_pid ;; gate) pid=$gate_pid ;; *) pid= ;; esac
    before=$([ -n "$pid" ] && cpu_ticks "/proc/$pid" || echo 0)
    cpus_before=$(cpu_busy_idle)
    $ends $bin smpp-load --target 127.0.0.1:$port --sessions 4 --window 64 --messages "$messages" \
      --consented-file "$work/consented.txt" "${shares[@]}" --json > "$work/$name.$r.json"
    after=$([ -n "$pid" ] && cpu_ticks "/proc/$pid" || echo 0)
    echo $((after - before)) > "$work/$name.$r.cpu"
    printf '%s\n%s\n' "$cpus_before" "$(cpu_busy_idle)" > "$work/$name.$r.cpus"
  done
done
python3 - "$work" "$rounds" "$messages" "$(getconf CLK_TCK)" <<'PY'
import json, sys, statistics as st
d, rounds, messages, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
res = {}
for name in ["direct", "relay", "gate"]:
    runs = [json.load(open(f"{d}/{name}.{r}.json")) for r in range(1, rounds + 1)]
    res[name] = dict(rate=st.median(x["msgs_per_sec"] for x in runs),
                     p50=st.median(x["latency_us"]["p50"] for x in runs),
                     p99=st.median(x["latency_us"]["p99"] for x in runs),
                     statuses=runs[-1]["statuses"],
                     cpu_us=st.median(int(open(f"{d}/{name}.{r}.cpu").read()) for r in range(1, rounds + 1)) * 1e6 / tck / messages)
def busy(name, r, cpu):
    lines = open(f"{d}/{name}.{r}.cpus").read().split("\n")
    (b0, i0), (b1, i1) = [[int(x) for x in l.split()[1:]] for l in lines if l.startswith(f"cpu{cpu} ")]
    return 100 * (b1 - b0) / max(1, (b1 - b0) + (i1 - i0))
for name, r in res.items():
    r["busy"] = [st.median(busy(name, k, c) for k in range(1, rounds + 1)) for c in (0, 1)]
    r["ratios"] = [json.load(open(f"{d}/{name}.{k}.json"))["msgs_per_sec"] / json.load(open(f"{d}/direct.{k}.json"))["msgs_per_sec"] for k in range(1, rounds + 1)]
for name, r in res.items():
    cpu = f"  proxy CPU {r['cpu_us']:.2f} us/msg" if name != "direct" else ""
    print(f"{name:6} median {r['rate']:>10.0f} msg/s  p50 {r['p50']:>6} us  p99 {r['p99']:>7} us{cpu}  CPU0/CPU1 busy {r['busy'][0]:.0f}/{r['busy'][1]:.0f} %  statuses {r['statuses']}")
print(f"gate/direct {res['gate']['rate'] / res['direct']['rate']:.2f}   relay/direct {res['relay']['rate'] / res['direct']['rate']:.2f}   gate/relay {res['gate']['rate'] / res['relay']['rate']:.2f}")
print(f"same-round ratios, median: gate/direct {st.median(res['gate']['ratios']):.2f} (rounds {' '.join(f'{x:.2f}' for x in res['gate']['ratios'])})   relay/direct {st.median(res['relay']['ratios']):.2f}")
print(f"added median latency: gate {res['gate']['p50'] - res['direct']['p50']} us, relay {res['relay']['p50'] - res['direct']['p50']} us")
PY
sleep 0.2
echo "audit lines written by the gate: $(wc -l < "$work/audit.jsonl")"
