#!/usr/bin/env bash
# End-to-end SMTP hop throughput and latency: Postfix's smtp-source → smtp-sink,
# three ways, interleaved round by round so the shared machine's noise hits
# all three alike:
#   direct  smtp-source → smtp-sink
#   relay   smtp-source → plain TCP relay (iys-gate smpp-relay; parses nothing) → smtp-sink
#   gate    smtp-source → iys-gate SMTP hop (parses, decides per RCPT, relays) → smtp-sink
# Every message goes to the consented demo@example.com, so each one is judged
# and relayed. smtp-source opens a connection per message unless KEEP=1 (-d).
# Latency: a Python client on one persistent connection sends LAT messages
# (MAIL, RCPT, DATA pipelined, then the text) and times each from MAIL to the
# final reply; medians per path, and the gate's added median over direct.
# Usage: [PIN=1] [KEEP=1] [BIN=gate-binary] bash benches/smtp_hop_e2e.sh [rounds] [messages] [sessions]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"; messages="${2:-20000}"; sessions="${3:-20}"; lat="${LAT:-2000}"
for b in smtp-source smtp-sink; do
  command -v $b >/dev/null || [ -x /usr/sbin/$b ] || { echo "$b missing: install postfix" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"
# PIN=1: the endpoints (source and sink) share CPU 0 and the hop (relay or
# gate) has CPU 1.
if [ "${PIN:-0}" = 1 ]; then ends="taskset -c 0"; proxy="taskset -c 1"; else ends=""; proxy=""; fi
keep=""; [ "${KEEP:-0}" = 1 ] && keep="-d"
if [ -n "${BIN:-}" ]; then bin=$(realpath "$BIN"); else
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/iys-gate"
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
sink=2825; relay=2827; gate=2826
cat > "$work/export.csv" <<CSV
iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess
700001,100001,demo@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,
CSV
cat > "$work/gate.toml" <<TOML
[admin]
listen = "127.0.0.1:0"
[store]
bootstrap_csv = ["$work/export.csv"]
[policy]
max_data_age = "0s"
[log]
level = "warn"
[smtp]
[[smtp.accounts]]
name = "shop"
iys_code = 700001
brand_code = 100001
senders = ["shop.example"]
[smtp.hop]
listen = "127.0.0.1:$gate"
next_hop = "127.0.0.1:$sink"
next_hop_starttls = false
max_connections = 2000
TOML
wait_port() {
  for _ in $(seq 150); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.2; done
  echo "nothing listens on $1" >&2; exit 1
}
$ends smtp-sink -u nobody -m 1000 127.0.0.1:$sink 1000 >/dev/null 2>&1 &
wait_port $sink
$proxy "$bin" smpp-relay --listen 127.0.0.1:$relay --upstream 127.0.0.1:$sink >/dev/null 2>&1 &
relay_pid=$!
$proxy "$bin" serve --config "$work/gate.toml" >"$work/gate.log" 2>&1 &
gate_pid=$!
# CPU time (clock ticks, user + system) of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_port $relay; wait_port $gate

cat > "$work/lat.py" <<'PY'
import socket, sys, time, statistics
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(30)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if not l: raise SystemExit("closed")
        if l[3:4] != b"-": return l
reply(); s.sendall(b"EHLO bench.example\r\n"); reply()
msg = b"From: news@shop.example\r\nTo: demo@example.com\r\nSubject: latency\r\n\r\n" + b"x" * 70 + b"\r\n" + b".\r\n"
ts = []
deadline = time.time() + 60
for i in range(n):
    t = time.perf_counter()
    s.sendall(b"MAIL FROM:<news@shop.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n")
    for _ in range(3):
        r = reply()
    assert r.startswith(b"354"), r
    s.sendall(msg)
    r = reply()
    assert r.startswith(b"250"), r
    ts.append(time.perf_counter() - t)
    if time.time() > deadline: break
s.sendall(b"QUIT\r\n")
print(statistics.median(ts) * 1e6)
PY

for r in $(seq "$rounds"); do
  for path in direct:$sink relay:$relay gate:$gate; do
    name=${path%%:*}; port=${path##*:}
    case $name in relay) pid=$relay_pid ;; gate) pid=$gate_pid ;; *) pid= ;; esac
    before=$([ -n "$pid" ] && cpu_ticks $pid || echo 0)
    start=$(date +%s.%N)
    timeout 300 $ends smtp-source $keep -s "$sessions" -m "$messages" -f news@shop.example \
      -t demo@example.com -M bench.example 127.0.0.1:$port
    end=$(date +%s.%N)
    echo "$start $end" > "$work/$name.$r.time"
    after=$([ -n "$pid" ] && cpu_ticks $pid || echo 0)
    echo $((after - before)) > "$work/$name.$r.cpu"
    timeout 120 $ends python3 "$work/lat.py" "$port" "$lat" > "$work/$name.$r.lat"
  done
done
python3 - "$work" "$rounds" "$messages" "$(getconf CLK_TCK)" <<'PY'
import sys, statistics as st
d, rounds, messages, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
res = {}
for name in ["direct", "relay", "gate"]:
    rates, lats = [], []
    for r in range(1, rounds + 1):
        a, b = map(float, open(f"{d}/{name}.{r}.time").read().split())
        rates.append(messages / (b - a))
        lats.append(float(open(f"{d}/{name}.{r}.lat").read()))
    res[name] = (rates, lats)
    cpu = st.median(int(open(f"{d}/{name}.{r}.cpu").read()) for r in range(1, rounds + 1)) * 1e6 / tck / messages
    print(f"{name:6} msgs/s median {st.median(rates):8.0f}  runs {' '.join(f'{x:.0f}' for x in rates)}"
          f"  | median latency {st.median(lats):7.1f} us  runs {' '.join(f'{x:.0f}' for x in lats)}"
          + (f"  | hop CPU {cpu:.1f} us/msg" if name != "direct" else ""))
g, dr, rl = (st.median(res[n][0]) for n in ["gate", "direct", "relay"])
same = [res["gate"][0][i] / res["direct"][0][i] for i in range(rounds)]
print(f"gate/direct {g/dr:.2f} (same-round median {st.median(same):.2f}, runs {' '.join(f'{x:.2f}' for x in same)}); gate/relay {g/rl:.2f}")
added = [res["gate"][1][i] - res["direct"][1][i] for i in range(rounds)]
print(f"gate added median latency over direct: {st.median(added):.1f} us (same-round, runs {' '.join(f'{x:.0f}' for x in added)})")
PY
