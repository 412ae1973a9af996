# Shared by the SMTP policy bench scripts (sourced, not run): the consent data
# and the gate's config.

# policy_data DIR BIN: DIR/export.csv with EPOSTA consent (ONAY) for brand
# 700001/100001 for 16 384 addresses (u<N>@example.com, listed in
# DIR/consented.txt), for rcpt@example.com and 2rcpt..100rcpt@example.com
# (the addresses smtp-source makes), a withdrawal (RET) for 4 096 more
# (w<N>@example.com); DIR/mixed.txt: 3 consented, 1 unconsented, 1 withdrawn
# in turn; DIR/more.csv: a million generated tuples of other brands, so the
# store is not trivially small.
policy_data() {
  python3 - "$1" <<'PY'
import sys
d = sys.argv[1]
head = "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n"
row = "700001,100001,{},BIREYSEL,EPOSTA,{},2024-01-01 10:00:00,HS_WEB,,\n"
with open(f"{d}/export.csv", "w") as c, open(f"{d}/consented.txt", "w") as f, open(f"{d}/mixed.txt", "w") as m:
    c.write(head)
    for i in range(16384):
        a = f"u{i}@example.com"
        f.write(a + "\n")
        c.write(row.format(a, "ONAY"))
    for i in range(4096):
        c.write(row.format(f"w{i}@example.com", "RET"))
    c.write(row.format("rcpt@example.com", "ONAY"))
    for i in range(2, 101):
        c.write(row.format(f"{i}rcpt@example.com", "ONAY"))
    for i in range(4096):
        for a in (f"u{3 * i}@example.com", f"u{3 * i + 1}@example.com", f"u{3 * i + 2}@example.com",
                  f"nobody{i}@example.com", f"w{i}@example.com"):
            m.write(a + "\n")
PY
  "$2" gen --tuples 1000000 --brands 100 --seed 1 --out "$1/more.csv" 2>/dev/null
}

# policy_toml DIR LISTEN_PORT AUDIT_FILE: the gate's config (policy service
# only, the account "shop" for senders at shop.example) on stdout; no audit
# when AUDIT_FILE is empty.
policy_toml() {
  cat <<TOML
[admin]
listen = "127.0.0.1:0"
[store]
bootstrap_csv = ["$1/export.csv", "$1/more.csv"]
[policy]
max_data_age = "0s"
[log]
level = "warn"
$([ -n "$3" ] && printf '[audit]\npath = "%s"\n' "$3")
[smtp.policy]
listen = "127.0.0.1:$2"
max_connections = 4096
[[smtp.accounts]]
name = "shop"
iys_code = 700001
brand_code = 100001
senders = ["shop.example"]
TOML
}

# wait_port PORT: until something listens there (at most 30 s).
wait_port() {
  for _ in $(seq 150); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.2; done
  echo "nothing listens on $1" >&2; return 1
}

# cpu_ticks PID: CPU time (clock ticks, user + system) of the process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
