# Shared by the SMPP bench scripts (sourced, not run): the consent data, the
# gate's config, waiting for a port, and CPU time read from /proc.

# bench_data DIR BIN: DIR/consented.txt (16 384 numbers with consent for the
# load account's brand, 700001/100001), DIR/export.csv (their ONAY records) and
# DIR/more.csv (a million generated tuples of other brands, so the store is not
# trivially small).
bench_data() {
  python3 - "$1" <<'PY'
import sys
d = sys.argv[1]
with open(f"{d}/consented.txt", "w") as f, open(f"{d}/export.csv", "w") as c:
    c.write("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n")
    for i in range(16384):
        n = f"90532{1000000 + i * 37:07d}"
        f.write(n + "\n")
        c.write(f"700001,100001,+{n},BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n")
PY
  "$2" gen --tuples 1000000 --brands 100 --seed 1 --out "$1/more.csv" 2>/dev/null
}

# gate_toml DIR LISTEN_PORT UPSTREAM_PORT AUDIT_FILE: the gate's config for
# bench_data's files and the load account, on stdout; no audit when
# AUDIT_FILE is empty.
gate_toml() {
  cat <<TOML
[admin]
listen = "127.0.0.1:0"
[store]
bootstrap_csv = ["$1/export.csv", "$1/more.csv"]
[policy]
max_data_age = "0s"
[log]
level = "warn"
$([ -n "$4" ] && printf '[audit]\npath = "%s"\n' "$4")
[smpp]
listen = "127.0.0.1:$2"
upstream = "127.0.0.1:$3"
window = 256
[[smpp.accounts]]
system_id = "load"
password = "load"
iys_code = 700001
brand_code = 100001
TOML
}

# wait_port PORT: until something listens there (at most 30 s).
wait_port() {
  for _ in $(seq 150); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.2; done
}

# cpu_ticks PATH: CPU time (clock ticks, user + system) of /proc/PID or
# /proc/PID/task/TID so far.
cpu_ticks() { awk '{print $14 + $15}' "$1/stat"; }

# cpu_busy_idle: each CPU's busy and idle clock ticks so far, one line per CPU
# ("cpuN BUSY IDLE"; busy counts user, nice, system, irq and softirq).
cpu_busy_idle() { awk '/^cpu[0-9]+ / {print $1, $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat; }

# mix_shares MIX: the load generator's share flags for a named mix, in the
# array `shares` ("all-consented", "all-refused", or the generator's default).
mix_shares() {
  case "$1" in
    all-consented) shares=(--consented-share 1 --unconsented-share 0 --informational-share 0) ;;
    all-refused) shares=(--consented-share 0 --unconsented-share 1 --informational-share 0) ;;
    *) shares=() ;;
  esac
}
