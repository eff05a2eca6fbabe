#!/bin/bash
# bench/trust_bench.sh — the cost of one fresh connection to the ACME
# server under each trust setting (doc/api.md, "Trust on small devices"):
# a pinned root, the trust-anchor lookup cold (failed handshake, lookup,
# verification, retry) and warm (bound root), and the system bundle with
# the lookup behind it. Ratios against the pinned root of the same run.
#
#   bench/trust_bench.sh BUILD_DIR [COUNT]        (default 40 connections per mode)
#
# Against a local Pebble (tests/harness/with-pebble), loopback only.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_setup "${1:-}"
count=${2:-40}
trap '[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$BENCH_OUT"' EXIT
bench_cc "$BENCH_OUT/trust_connect" "$BENCH_DIR/trust_connect.c"
"$BENCH_SRC/tests/harness/with-pebble" -- "$BENCH_OUT/trust_connect" "$count" >"$BENCH_OUT/out.txt"
base_cpu=$(awk '$1 == "pinned" { print $2 }' "$BENCH_OUT/out.txt")
base_wall=$(awk '$1 == "pinned" { print $3 }' "$BENCH_OUT/out.txt")
printf '%-15s %10s %10s %9s %9s %8s\n' mode "CPU ms" "wall ms" "CPU x" "wall x" lookups
while read -r mode cpu wall n; do
    printf '%-15s %10s %10s %9s %9s %8s\n' "$mode" "$cpu" "$wall" "$(ratio "$cpu" "$base_cpu")" \
        "$(ratio "$wall" "$base_wall")" "$n"
done <"$BENCH_OUT/out.txt"
