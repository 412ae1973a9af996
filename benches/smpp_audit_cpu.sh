#!/usr/bin/env bash
# The audit writer thread's CPU per refusal: every message refused (all-unconsented
# load through one gate binary), three rounds, plus the lines written.
# Usage: bash benches/smpp_audit_cpu.sh BIN [messages]
set -euo pipefail
BIN=$1; n=${2:-1000000}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
python3 -c "
open('$work/export.csv','w').write('iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n700001,100001,+905321000000,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n')
open('$work/c.txt','w').write('905321000000\n')"
cat > $work/g.toml <<TOML
[admin]
listen = "127.0.0.1:0"
[store]
bootstrap_csv = ["$work/export.csv"]
[policy]
max_data_age = "0s"
[log]
level = "warn"
[audit]
path = "$work/audit.jsonl"
[smpp]
listen = "127.0.0.1:2805"
upstream = "127.0.0.1:2806"
window = 256
[[smpp.accounts]]
system_id = "load"
password = "load"
iys_code = 700001
brand_code = 100001
TOML
taskset -c 0 $BIN smpp-sink --listen 127.0.0.1:2806 >/dev/null 2>&1 &
taskset -c 1 $BIN serve --config $work/g.toml > $work/log 2>&1 & pid=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/2805) 2>/dev/null && break; sleep 0.2; done
for r in 1 2 3; do
tid=$(grep -l iys-gate-audit /proc/$pid/task/*/comm | head -1 | xargs dirname)
b=$(awk '{print $14+$15}' $tid/stat); ball=$(awk '{print $14+$15}' /proc/$pid/stat)
taskset -c 0 $BIN smpp-load --target 127.0.0.1:2805 --sessions 4 --window 64 --messages $n --consented-file $work/c.txt --consented-share 0 --unconsented-share 1 --informational-share 0 --json > /dev/null
sleep 0.1
a=$(awk '{print $14+$15}' $tid/stat); aall=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "audit thread $(( (a-b)*10000000/n ))e-3 us/refusal; whole gate $(( (aall-ball)*10000000/n ))e-3 us/msg"
done
wc -l < $work/audit.jsonl
