#!/bin/bash
# bench/metrics_bench.sh — the CPU cost of one metrics scrape
# (acme_engine_metrics, issue 14 part 5) at N managed certificates, as a
# ratio against acme_engine_status_json() of the same engine in the same
# run: the status text acmectl run's status-file and mod_acme's status
# page already build after every step.
#
#   bench/metrics_bench.sh BUILD_DIR [N...]      (default: 100 1000 10000)
#
# No network, no CA: the certificates are declared only (each with two
# names), so every entry has the same fields either way.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_setup "${1:-}"
shift || true
counts=("$@")
[ "${#counts[@]}" -gt 0 ] || counts=(100 1000 10000)
trap '[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$BENCH_OUT"' EXIT
bench_cc "$BENCH_OUT/metrics_cost" "$BENCH_DIR/metrics_cost.c"
printf '%8s %12s %12s %8s %12s\n' N "status µs" "metrics µs" "ratio" "bytes"
for n in "${counts[@]}"; do
    rounds=$((200000 / n))
    [ "$rounds" -ge 5 ] || rounds=5
    rm -rf "$BENCH_OUT/state"
    read -r _ s m b < <("$BENCH_OUT/metrics_cost" "$BENCH_OUT/state" "$n" "$rounds")
    printf '%8s %12s %12s %8s %12s\n' "$n" "$s" "$m" "$(ratio "$m" "$s")" "$b"
done
