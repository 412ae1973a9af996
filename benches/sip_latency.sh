#!/usr/bin/env bash
# The SIP gate's added latency, finer than SIPp's 1 ms statistics: SIPp's
# message trace stamps every message to the microsecond, so per call the
# time from the INVITE sent to the 180 received (request and response each
# crossing the middle box once) and to the 200 is taken from it.
# Rounds alternate direct (SIPp uac -> SIPp uas) and through the gate
# (SIPp uac -> iys-gate -> SIPp uas, every INVITE judged and allowed), the
# same calls at the same rate; the medians of each round, then the median of
# the rounds, are printed, and at the end the gate's own
# iys_gate_sip_added_latency_seconds histogram (median by its buckets).
# Calls SIPp aborts are reported and left out (its built-in uac aborts a call
# when a 180 arrives after the 200: with two UDP workers the gate, like
# Kamailio with children=2, may pass a 180 and a 200 sent back to back in the
# other order; UDP promises no order and real UAs drop the late 180).
#
#   cargo build --release --bin iys-gate && bash benches/sip_latency.sh
#   ROUNDS=8 RATE=200 CALLS=2000 bash benches/sip_latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GATE_BIN=${GATE_BIN:-$ROOT/target/release/iys-gate}
ROUNDS=${ROUNDS:-6}
RATE=${RATE:-100}
CALLS=${CALLS:-1000}
UAS_PORT=${UAS_PORT:-16080}
GATE_PORT=${GATE_PORT:-16070}
ADMIN_PORT=${ADMIN_PORT:-16071}
UAC_PORT=${UAC_PORT:-16090}
command -v sipp >/dev/null || { echo "sipp missing: install sip-tester" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 1; }
[ -x "$GATE_BIN" ] || { echo "$GATE_BIN missing: cargo build --release --bin iys-gate" >&2; exit 1; }

ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT"
# shellcheck source=benches/sip_bench_setup.sh
. "$(dirname "$0")/sip_bench_setup.sh"

sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -nostdin >/dev/null 2>&1 &
PIDS+=($!)
"$GATE_BIN" serve --config "$WORK/gate.toml" >"$WORK/gate.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

round() { # target-name address round-number
  local log="$WORK/$1-$3.log"
  sipp -sn uac "$2" -i 127.0.0.1 -p "$UAC_PORT" -s 05300000001 -r "$RATE" -m "$CALLS" -nostdin \
    -trace_msg -message_file "$log" -trace_err -error_file "$WORK/$1-$3.err" \
    -timeout 120 -timeout_error >"$WORK/$1-$3.out" 2>&1 ||
    echo "round $3 ($1): SIPp reports failed calls: $(grep -c 'Aborting call' "$WORK/$1-$3.err" || true) aborted on an unexpected message" >&2
}

for r in $(seq "$ROUNDS"); do
  round direct "127.0.0.1:$UAS_PORT" "$r"
  round gate "127.0.0.1:$GATE_PORT" "$r"
done
curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" >"$WORK/metrics.txt"

python3 - "$WORK" "$ROUNDS" <<'PY'
import re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
stamp = re.compile(r"^-{40,} (\S+) (\d\d):(\d\d):(\d\d\.\d+)$")

def calls(path):
    """Per Call-ID: (INVITE sent, first 180 received, first 200 to the INVITE received), seconds."""
    t = {}
    at = None
    lines = open(path, errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        m = stamp.match(lines[i])
        if m:
            at = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            # message: direction line, empty line, start line, headers
            direction = lines[i + 1]
            start = lines[i + 3] if i + 3 < len(lines) else ""
            j = i + 4
            cid = cseq = None
            while j < len(lines) and lines[j].strip():
                low = lines[j].lower()
                if low.startswith("call-id:"):
                    cid = lines[j].split(":", 1)[1].strip()
                elif low.startswith("cseq:"):
                    cseq = lines[j].split(":", 1)[1].strip()
                j += 1
            e = t.setdefault(cid, [None, None, None])
            if "sent" in direction and start.startswith("INVITE ") and e[0] is None:
                e[0] = at
            elif "received" in direction and cseq and cseq.endswith("INVITE"):
                if start.startswith("SIP/2.0 180") and e[1] is None:
                    e[1] = at
                elif start.startswith("SIP/2.0 200") and e[2] is None:
                    e[2] = at
            i = j
        else:
            i += 1
    return [v for v in t.values() if None not in v]

res = {"direct": [], "gate": []}
print(f"{'round':>5} {'path':>6} {'calls':>6} {'INVITE->180 median':>20} {'INVITE->200 median':>20}")
for r in range(1, rounds + 1):
    for name in ("direct", "gate"):
        c = calls(f"{work}/{name}-{r}.log")
        m180 = statistics.median(b - a for a, b, _ in c) * 1e6
        m200 = statistics.median(d - a for a, _, d in c) * 1e6
        res[name].append((m180, m200))
        print(f"{r:>5} {name:>6} {len(c):>6} {m180:>17.0f} µs {m200:>17.0f} µs")
d180 = statistics.median(x for x, _ in res["direct"])
g180 = statistics.median(x for x, _ in res["gate"])
d200 = statistics.median(y for _, y in res["direct"])
g200 = statistics.median(y for _, y in res["gate"])
print(f"median of round medians: direct INVITE->180 {d180:.0f} µs, gate {g180:.0f} µs: "
      f"added {g180 - d180:.0f} µs (request and response through the gate)")
print(f"                         direct INVITE->200 {d200:.0f} µs, gate {g200:.0f} µs: added {g200 - d200:.0f} µs")

# The gate's own histogram: the median by buckets (the upper bound of the
# bucket holding the middle sample), per path.
buckets = {}
for line in open(f"{work}/metrics.txt"):
    m = re.match(r'iys_gate_sip_added_latency_seconds_bucket\{path="(\w+)",le="([^"]+)"\} (\S+)', line)
    if m:
        buckets.setdefault(m.group(1), []).append((float(m.group(2)), float(m.group(3))))
for path, bs in sorted(buckets.items()):
    bs.sort()
    total = bs[-1][1]
    if total == 0:
        continue
    med = next(le for le, n in bs if n >= total / 2)
    p99 = next(le for le, n in bs if n >= total * 0.99)
    print(f"gate histogram, {path}: {int(total)} messages, median <= {med * 1e6:.0f} µs, p99 <= {p99 * 1e6:.0f} µs")
PY
