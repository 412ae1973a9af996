# Sourced by benches/sip_e2e.sh and benches/sip_latency.sh: the work folder
# (removed on exit with every process in PIDS), the İYS export with the one
# consented ARAMA number, and the gate's config: the SIP proxy on
# 127.0.0.1:$GATE_PORT in front of the UAS on $UAS_PORT, the admin API on
# ${ADMIN_LISTEN:-127.0.0.1:0}.
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cat > "$WORK/export.csv" <<CSV
iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess
700001,100001,05300000001,BIREYSEL,ARAMA,ONAY,2024-01-01 10:00:00,HS_CAGRI_MERKEZI,,
CSV
cat > "$WORK/gate.toml" <<TOML
[admin]
listen = "${ADMIN_LISTEN:-127.0.0.1:0}"
[store]
bootstrap_csv = ["$WORK/export.csv"]
[policy]
max_data_age = "1h"
[log]
level = "warn"
[[brands]]
iys_code = 700001
brand_code = 100001
[sip]
listen_udp = "127.0.0.1:$GATE_PORT"
next_hop = "127.0.0.1:$UAS_PORT"
[[sip.trunks]]
name = "bench"
networks = ["127.0.0.1/32"]
iys_code = 700001
brand_code = 100001
TOML
