#!/usr/bin/env bash
# SIP end to end, one run, same machine, same scenario (SIPp's built-in uac:
# INVITE, 180, 200, ACK, BYE, 200; the far end benches/sip/uas_bench.xml
# answers 10 ms after ringing) at stepped call rates through:
#   direct   SIPp uac -> SIPp uas
#   kamailio SIPp uac -> Kamailio forward() (stateless, deploy/kamailio/forward.cfg) -> SIPp uas
#   gate     SIPp uac -> iys-gate stateless proxy (every INVITE judged) -> SIPp uas
# For each: the highest rate with no failed call and no retransmission, and
# the median INVITE->200 time at each rate (SIPp -trace_rtt; SIPp's clock
# has a 1 ms resolution, and the far end's 10 ms ringing is included).
#
#   cargo build --release --bin iys-gate && bash benches/sip_e2e.sh
#   RATES="500 1000 2000" SECS=10 bash benches/sip_e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GATE_BIN=${GATE_BIN:-$ROOT/target/release/iys-gate}
RATES=${RATES:-"500 1000 2000 3000 4000"}
SECS=${SECS:-10}
TARGETS=${TARGETS:-"direct kamailio gate"}
UAS_PORT=15080
KAM_PORT=15090
GATE_PORT=15070
command -v sipp >/dev/null || { echo "sipp missing: install sip-tester" >&2; exit 1; }
[ -x "$GATE_BIN" ] || { echo "$GATE_BIN missing: cargo build --release --bin iys-gate" >&2; exit 1; }

# shellcheck source=benches/sip_bench_setup.sh
. "$(dirname "$0")/sip_bench_setup.sh"
[ -n "${KEEP:-}" ] && trap - EXIT && echo "work dir: $WORK"

# Starts the middle box (not in a subshell: PIDS must be kept) and sets ADDR.
start_middle() {
  case "$1" in
    direct) ADDR="127.0.0.1:$UAS_PORT" ;;
    kamailio)
      kamailio -f "$ROOT/deploy/kamailio/forward.cfg" -DD -E -A "LISTEN=udp:127.0.0.1:$KAM_PORT" \
        -A 'NEXT_IP="127.0.0.1"' -A "NEXT_PORT=$UAS_PORT" -P "$WORK/kam.pid" >"$WORK/kamailio.log" 2>&1 &
      PIDS+=($!)
      ADDR="127.0.0.1:$KAM_PORT" ;;
    gate)
      "$GATE_BIN" serve --config "$WORK/gate.toml" >"$WORK/gate.log" 2>&1 &
      PIDS+=($!)
      ADDR="127.0.0.1:$GATE_PORT" ;;
  esac
}

stop_middle() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

# column NAME from the last line of a SIPp statistics file
stat() {
  awk -F';' -v want="$2" 'NR==1 { for (i=1;i<=NF;i++) if ($i==want) c=i } END { print $c }' "$1"
}

printf "%-9s %6s %9s %7s %8s %10s\n" target rate completed failed retrans median_ms
for t in $TARGETS; do
  best=0
  for r in $RATES; do
    start_middle "$t"
    addr=$ADDR
    sleep 1
    run="$WORK/$t-$r"; mkdir -p "$run"; cd "$run"
    sipp -sf "$ROOT/benches/sip/uas_bench.xml" -i 127.0.0.1 -p $UAS_PORT -nostdin >/dev/null 2>&1 &
    uas=$!
    sleep 0.5
    calls=$((r * SECS))
    ok=0
    sipp -sn uac "$addr" -i 127.0.0.1 -s 05300000001 -r "$r" -m "$calls" -l $((r * 4)) \
      -nostdin -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1 -trace_err \
      -timeout $((SECS + 40)) -timeout_error >/dev/null 2>&1 || ok=$?
    kill $uas 2>/dev/null || true; wait $uas 2>/dev/null || true
    stop_middle
    cd "$ROOT"
    done_calls=$(stat "$run/stat.csv" "SuccessfulCall(C)")
    failed=$(stat "$run/stat.csv" "FailedCall(C)")
    retrans=$(stat "$run/stat.csv" "Retransmissions(C)")
    median=$(cat "$run"/uac_*_rtt.csv 2>/dev/null | awk -F';' 'NR>1 && $2+0==$2 { print $2 }' | sort -n | awk '{ a[NR]=$1 } END { if (NR) printf "%.3f", a[int((NR+1)/2)]; else print "-" }')
    printf "%-9s %6s %9s %7s %8s %10s\n" "$t" "$r" "$done_calls" "$failed" "$retrans" "$median"
    if [ "$ok" = 0 ] && [ "$failed" = 0 ] && [ "$retrans" = 0 ] && [ "$done_calls" = "$calls" ]; then best=$r; else break; fi
  done
  echo "$t: highest clean rate $best calls/s"
done
