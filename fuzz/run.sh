#!/usr/bin/env bash
# Run every fuzz target for a short while (default 60 s each):
#   bash fuzz/run.sh [seconds]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz passes nightly-only
# sanitizer flags; on a stable toolchain RUSTC_BOOTSTRAP=1 lets them through.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
for target in csv_row address registry_json snapshot_file smpp_decode sip_scan sip_uri; do
  echo "== $target ($secs s)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=4096
done
