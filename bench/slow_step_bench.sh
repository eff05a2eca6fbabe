#!/usr/bin/env bash
# bench/slow_step_bench.sh — the longest engine step while COUNT
# certificates are issued through a host transport that adds 100 ms per
# request and a storage table that takes 20 ms per write (issue 11), as a
# ratio against the same run with zero-delay tables (bench/slow_step.c).
#
# Usage:
#   bench/slow_step_bench.sh BUILD_DIR [COUNT]
#       BUILD_DIR: a built libacme meson build dir; bench/slow_step.c and
#       tests/engine/slow_tables.c are compiled against it with cc.
#       COUNT: certificates per pass (default 50).
#   Environment: TRANSPORT_MS (100), STORE_MS (20), BENCH_KEEP=1.
#   Needs: tests/harness/with-pebble (pebble, python3, openssl), cc,
#   pkg-config, gnutls/jansson/libcurl dev files. Loopback only.
# One Pebble for both passes, PEBBLE_VA_ALWAYS_VALID=1 (no validation: the
# host's publish serves nothing) and PEBBLE_WFE_NONCEREJECT=0.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

bench_setup "${1:-}"
COUNT=${2:-50}
TRANSPORT_MS=${TRANSPORT_MS:-100}
STORE_MS=${STORE_MS:-20}
[ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$BENCH_OUT"' EXIT

# shellcheck disable=SC2046
bench_cc "$BENCH_OUT/slow_step" "$BENCH_DIR/slow_step.c" "$BENCH_SRC/tests/engine/slow_tables.c" \
    -I"$BENCH_SRC/tests/engine" $(pkg-config --cflags --libs libcurl)

WITH_PEBBLE="$BENCH_SRC/tests/harness/with-pebble"
[ -x "$WITH_PEBBLE" ] || WITH_PEBBLE="$BENCH_DIR/../tests/harness/with-pebble"

"$WITH_PEBBLE" --env PEBBLE_VA_ALWAYS_VALID=1 --env PEBBLE_WFE_NONCEREJECT=0 -- \
    bash -c '"$1" -d "$ACME_TEST_DIRECTORY" -c "$ACME_TEST_CA_FILE" -n "$2" -t "$3" -s "$4"' _ \
    "$BENCH_OUT/slow_step" "$COUNT" "$TRANSPORT_MS" "$STORE_MS" | tee "$BENCH_OUT/result"

field() { sed -n "s/^pass=$1 .*\\b$2=\\([0-9.]*\\).*/\\1/p" "$BENCH_OUT/result"; }
echo
echo "| pass | transport ms | storage ms | certs | wall s | steps | longest step µs | p99 µs | median µs |"
echo "|---|---|---|---|---|---|---|---|---|"
for p in zero slow; do
    echo "| $p | $(field $p transport_ms) | $(field $p store_ms) | $(field $p certs) | $(field $p wall_s) |" \
         "$(field $p steps) | $(field $p longest_step_us) | $(field $p p99_step_us) | $(field $p median_step_us) |"
done
echo
echo "longest step, slow / zero: $(ratio "$(field slow longest_step_us)" "$(field zero longest_step_us)")"
echo "p99 step, slow / zero: $(ratio "$(field slow p99_step_us)" "$(field zero p99_step_us)")"
