#!/usr/bin/env bash
# Interleaved A/B of two gate binaries on the same data (pinned: endpoints on CPU 0,
# both gates on CPU 1, runs alternating), for changes too small to see across
# separate runs on a noisy machine. Prints each side's median msg/s and gate CPU per
# message. NOAUDIT_B=1 runs side B without an audit file (what the audit trail costs).
# Usage: bash benches/smpp_ab.sh BIN_A BIN_B [rounds] [messages] [mix]
set -euo pipefail
A=$1; B=$2; rounds=${3:-9}; messages=${4:-1000000}; mix=${5:-default}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
with open(f"{d}/consented.txt", "w") as f, open(f"{d}/export.csv", "w") as c:
    c.write("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n")
    for i in range(16384):
        n = f"90532{1000000 + i * 37:07d}"
        f.write(n + "\n")
        c.write(f"700001,100001,+{n},BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n")
PY
$A gen --tuples 1000000 --brands 100 --seed 1 --out "$work/more.csv" 2>/dev/null
for v in a:2785:2786 b:2795:2796; do
IFS=: read name port up <<<"$v"
cat > "$work/$name.toml" <<TOML
[admin]
listen = "127.0.0.1:0"
[store]
bootstrap_csv = ["$work/export.csv", "$work/more.csv"]
[policy]
max_data_age = "0s"
[log]
level = "warn"
$( [ "$name" = b ] && [ "${NOAUDIT_B:-0}" = 1 ] || printf '[audit]\npath = "%s"\n' "$work/audit.$name.jsonl")
[smpp]
listen = "127.0.0.1:$port"
upstream = "127.0.0.1:$up"
window = 256
[[smpp.accounts]]
system_id = "load"
password = "load"
iys_code = 700001
brand_code = 100001
TOML
taskset -c 0 $A smpp-sink --listen 127.0.0.1:$up >/dev/null 2>&1 &
done
taskset -c 1 $A serve --config "$work/a.toml" >"$work/a.log" 2>&1 & pa=$!
taskset -c 1 $B serve --config "$work/b.toml" >"$work/b.log" 2>&1 & pb=$!
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for p in 2785 2795; do for _ in $(seq 150); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.2; done; done
case "$mix" in all-consented) shares=(--consented-share 1 --unconsented-share 0 --informational-share 0) ;; *) shares=() ;; esac
for r in $(seq "$rounds"); do
  for v in a:2785:$pa b:2795:$pb; do
    IFS=: read name port pid <<<"$v"
    before=$(cpu_ticks $pid)
    taskset -c 0 $A smpp-load --target 127.0.0.1:$port --sessions 4 --window 64 --messages "$messages" --consented-file "$work/consented.txt" "${shares[@]}" --json > "$work/$name.$r.json"
    after=$(cpu_ticks $pid); echo $((after-before)) > "$work/$name.$r.cpu"
  done
done
python3 - "$work" "$rounds" "$messages" "$(getconf CLK_TCK)" <<'PY'
import json, sys, statistics as st
d, rounds, messages, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for name in "ab":
    rates=[json.load(open(f"{d}/{name}.{r}.json"))["msgs_per_sec"] for r in range(1,rounds+1)]
    cpus=[int(open(f"{d}/{name}.{r}.cpu").read())*1e6/tck/messages for r in range(1,rounds+1)]
    print(name, "rate", round(st.median(rates)), "cpu us/msg median", round(st.median(cpus),3), "all", [round(c,2) for c in cpus])
PY
