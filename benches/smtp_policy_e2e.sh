#!/usr/bin/env bash
# What asking the gate costs Postfix: smtp-source → Postfix → smtp-sink, with
# one Postfix (run from a temp folder, queue on tmpfs when /dev/shm exists)
# and three smtpd listeners that differ only in smtpd_recipient_restrictions:
#   gate   check_policy_service inet:<the gate's policy service>
#   dunno  check_policy_service inet:<a trivial always-DUNNO server>
#          (smtp-policy-load --serve-dunno)
#   none   no policy service
# run interleaved (gate dunno none, dunno none gate, none gate dunno, ...) so
# the shared machine's noise and any order effect hit all alike. Every recipient has consent, so the gate
# answers DUNNO like the trivial server and Postfix does the same work.
# Each run: smtp-source sends M messages of R recipients over S sessions; the
# accept rate is messages / smtp-source's wall time; then the queue is
# drained to the sink before the next run (its time is reported too).
# Usage: [BIN=gate-binary] bash benches/smtp_policy_e2e.sh [rounds] [messages] [recipients] [sessions]
# Bounded: about rounds * 3 * (send + drain) seconds, each drain at most 120 s.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"; messages="${2:-2000}"; rcpts="${3:-5}"; sessions="${4:-20}"
for b in /usr/sbin/postfix /usr/sbin/smtp-source /usr/sbin/smtp-sink /usr/sbin/postqueue; do
  [ -x "$b" ] || { echo "$b missing: install postfix (bash .ci/run does)" >&2; exit 1; }
done
if [ -n "${BIN:-}" ]; then bin=$(realpath "$BIN"); else
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/iys-gate"
fi
base=/tmp; [ -d /dev/shm ] && base=/dev/shm
work=$(mktemp -d -p "$base" iys-policy-e2e.XXXXXX)
chmod 755 "$work"
cleanup() {
  /usr/sbin/postfix -c "$work/pf/etc" stop >/dev/null 2>&1 || true
  kill $(jobs -p) 2>/dev/null || true
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT
source benches/smtp_policy_bench_lib.sh
policy_data "$work" "$bin"
policy_toml "$work" 10150 "" > "$work/gate.toml"
"$bin" serve --config "$work/gate.toml" > "$work/gate.log" 2>&1 &
gate_pid=$!
"$bin" smtp-policy-load --serve-dunno 127.0.0.1:10151 2> "$work/dunno.log" &
dunno_pid=$!
smtp-sink -u postfix 127.0.0.1:10152 1024 > "$work/sink.log" 2>&1 &
wait_port 10150; wait_port 10151; wait_port 10152

pf="$work/pf"
mkdir -p "$pf/etc" "$pf/queue" "$pf/data"
chmod 755 "$pf" "$pf/etc" "$pf/queue"
chown postfix "$pf/data"
cat > "$pf/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.example
mydomain = example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:10152
alias_maps =
alias_database =
biff = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = $pf
maillog_file = $pf/maillog
default_process_limit = 200
smtp_destination_concurrency_limit = 40
EOF
rr() { echo "smtpd_recipient_restrictions=$1permit_mynetworks,reject_unauth_destination"; }
cat > "$pf/etc/master.cf" <<EOF
127.0.0.1:10153 inet n - n - - smtpd -o $(rr check_policy_service,inet:127.0.0.1:10150,)
127.0.0.1:10154 inet n - n - - smtpd -o $(rr check_policy_service,inet:127.0.0.1:10151,)
127.0.0.1:10155 inet n - n - - smtpd -o $(rr "")
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
/usr/sbin/postfix -c "$pf/etc" start >/dev/null 2>&1 || { cat "$pf/maillog" >&2; exit 1; }
wait_port 10153; wait_port 10154; wait_port 10155

drain() {
  for _ in $(seq 600); do
    /usr/sbin/postqueue -c "$pf/etc" -p 2>/dev/null | grep -q "Mail queue is empty" && return
    sleep 0.2
  done
  echo "queue not drained in 120 s" >&2
}
now() { date +%s.%N; }
# pf_cpu: CPU clock ticks Postfix has used so far: the master, its live
# children, and (cutime, cstime) the children it has reaped.
pf_cpu() {
  local m; m=$(tr -d ' ' < "$pf/queue/pid/master.pid")
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$m/stat"
    for c in $(pgrep -P "$m"); do awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true; done
  } | awk '{s += $1} END {print s}'
}
# Warm up every path once (smtpd processes, policy connections).
for port in 10153 10154 10155; do
  smtp-source -s "$sessions" -m 200 -r "$rcpts" -f news@shop.example -t rcpt@example.com 127.0.0.1:$port
done
drain
sides=(gate:10153 dunno:10154 none:10155)
for r in $(seq "$rounds"); do
  # Each round starts with the next variant, so none always runs first.
  k=$(( (r - 1) % 3 ))
  for side in "${sides[@]:k}" "${sides[@]:0:k}"; do
    name=${side%%:*}; port=${side##*:}
    c0=$(pf_cpu)
    t0=$(now)
    smtp-source -s "$sessions" -m "$messages" -r "$rcpts" -f news@shop.example -t rcpt@example.com 127.0.0.1:$port
    t1=$(now)
    drain
    t2=$(now)
    echo "$t0 $t1 $t2" > "$work/$name.$r.t"
    echo $(( $(pf_cpu) - c0 )) > "$work/$name.$r.cpu"
  done
done
rejects=$(grep -c "reject:" "$pf/maillog" || true)
python3 - "$work" "$rounds" "$messages" "$rcpts" "$sessions" "$rejects" "$(getconf CLK_TCK)" <<'PY'
import sys, statistics as st
d, rounds, messages, rcpts, sessions, rejects, tck = sys.argv[1], *map(int, sys.argv[2:])
print(f"smtp-source -s {sessions} -m {messages} -r {rcpts} -> Postfix -> smtp-sink, {rounds} interleaved rounds; rejects logged: {rejects}")
rate, cpus = {}, {}
for name in ["gate", "dunno", "none"]:
    t = [tuple(map(float, open(f"{d}/{name}.{r}.t").read().split())) for r in range(1, rounds + 1)]
    acc = [messages / (b - a) for a, b, c in t]
    e2e = [messages / (c - a) for a, b, c in t]
    rate[name] = acc
    cpus[name] = cpu = [int(open(f"{d}/{name}.{r}.cpu").read()) / tck / messages * 1e6 for r in range(1, rounds + 1)]
    rates = " ".join("%.0f" % x for x in acc)
    print(f"  {name:5s} accepted msgs/s {rates} median {st.median(acc):.0f}"
          f" ({st.median(acc) * rcpts:.0f} recipients/s); to the sink {st.median(e2e):.0f} msgs/s;"
          f" Postfix CPU per message (receive, queue, deliver) median {st.median(cpu):.0f}us")
ratios = [g / x for g, x in zip(rate["gate"], rate["dunno"])]
print(f"  gate/dunno per round {' '.join(f'{x:.3f}' for x in ratios)}; median {st.median(ratios):.3f};"
      f" ratio of medians {st.median(rate['gate']) / st.median(rate['dunno']):.3f}")
ratios = [g / x for g, x in zip(cpus["gate"], cpus["dunno"])]
print(f"  Postfix CPU per message gate/dunno per round {' '.join(f'{x:.3f}' for x in ratios)}; median {st.median(ratios):.3f}")
ratios = [g / x for g, x in zip(rate["gate"], rate["none"])]
print(f"  gate/none  per round {' '.join(f'{x:.3f}' for x in ratios)}; median {st.median(ratios):.3f}")
PY
