#!/usr/bin/env bash
# Soak: the gate (release build) under a steady, mixed SMPP load for DURATION while
# the registry emulator injects faults on the change feeds (429/H124, 5xx, slow
# answers, garbled pages), citizens change their consents through the emulator and
# some of those changes are also pushed to the gate's webhook. Samples the gate's
# RSS and open file descriptors from /proc into a CSV in /tmp; at the end checks
#   - every submit_sm got exactly one answer (sent == answered == sum by status,
#     and the SMSC sink received exactly the answers that were ESME_ROK),
#   - memory (RssAnon) and fd count flat (see benches/soak.py for the criteria and why),
#   - no change lost: for every address changed, /v1/check answers what the
#     emulator holds, and /v1/status counts match the emulator's,
# and prints a summary table. Exit status 1 when a check fails.
#
# Usage: [BIN=gate-binary] [RATE=msgs/s] [SAMPLE=secs] [CHANGE_EVERY=secs]
#        [FAULTS="--fault-429 0.05 ..."] bash benches/soak.sh DURATION
#   DURATION: seconds, or with a unit: 300, 5m, 1h. Run it niced on a shared box:
#   nice -n 10 bash benches/soak.sh 1h
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash benches/soak.sh DURATION (e.g. 300, 5m, 1h)" >&2; exit 2; }
case "$1" in
  *h) secs=$(( ${1%h} * 3600 )) ;;
  *m) secs=$(( ${1%m} * 60 )) ;;
  *s) secs=${1%s} ;;
  *) secs=$1 ;;
esac
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 60 ] || { echo "DURATION must be at least 60 s, got $1" >&2; exit 2; }
if [ -n "${BIN:-}" ]; then bin=$(realpath "$BIN"); else
  cargo build --release --quiet
  bin="$(realpath "${CARGO_TARGET_DIR:-target}")/release/iys-gate"
fi
rate="${RATE:-100}"; sample="${SAMPLE:-10}"; change_every="${CHANGE_EVERY:-2}"
faults="${FAULTS:---fault-429 0.05 --fault-5xx 0.05 --fault-slow 0.05 --fault-slow-delay 3s --fault-garbled 0.05}"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
csv="/tmp/soak-$stamp.csv"
work=$(mktemp -d /tmp/soak.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

# Four free ports: emulator, SMPP listener, sink, admin.
read -r emu_port smpp_port sink_port admin_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

python3 benches/soak.py data "$work"
# shellcheck disable=SC2086
"$bin" registry --listen "127.0.0.1:$emu_port" --load "$work/export.csv" $faults --fault-seed 13 \
  >"$work/emulator.log" 2>&1 &
pids+=($!); emu_pid=$!
"$bin" smpp-sink --listen "127.0.0.1:$sink_port" >"$work/sink.log" 2>&1 &
pids+=($!); sink_pid=$!
cat >"$work/gate.toml" <<TOML
[admin]
listen = "127.0.0.1:$admin_port"
[[admin.tokens]]
name = "soak"
token = "soak-read-token-0123456789"
role = "read"
[store]
bootstrap_csv = ["$work/export.csv"]
snapshot_path = "$work/snapshot.bin"
persist_interval = "30s"
[policy]
max_data_age = "0s"
[registry]
base_url = "http://127.0.0.1:$emu_port"
username = "demo"
password = "demo"
poll_interval = "2s"
request_timeout = "5s"
max_backoff = "10s"
[[brands]]
iys_code = 700001
brand_code = 100001
[webhook]
secret = "soak-webhook-secret-0123456789"
[log]
level = "warn"
[smpp]
listen = "127.0.0.1:$smpp_port"
upstream = "127.0.0.1:$sink_port"
window = 256
[[smpp.accounts]]
system_id = "load"
password = "load"
iys_code = 700001
brand_code = 100001
TOML
"$bin" serve --config "$work/gate.toml" >"$work/gate.log" 2>&1 &
pids+=($!); gate_pid=$!

set +e
python3 benches/soak.py run "$work" --bin "$bin" --secs "$secs" --rate "$rate" --sample "$sample" \
  --change-every "$change_every" --csv "$csv" --gate-pid "$gate_pid" --emu-pid "$emu_pid" \
  --sink-pid "$sink_pid" --emu "http://127.0.0.1:$emu_port" --admin "http://127.0.0.1:$admin_port" \
  --smpp "127.0.0.1:$smpp_port" --faults "$faults"
status=$?
set -e
echo "samples: $csv"
if [ $status -ne 0 ]; then
  echo "--- gate log (tail)"; tail -20 "$work/gate.log"
  echo "--- emulator log (tail)"; tail -5 "$work/emulator.log"
fi
exit $status
