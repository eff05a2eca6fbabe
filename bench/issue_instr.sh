#!/usr/bin/env bash
# bench/issue_instr.sh — instructions per acme_issue() of two libacme builds,
# counted by valgrind --tool=callgrind in the same run: did a change make the
# blocking path heavier? (Issue 11: acme_issue became the engine of one.)
#
# Usage:
#   bench/issue_instr.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR [N1 N2]
#       Two built libacme meson build dirs (same buildtype). bench/issue_seq.c
#       is compiled against each; for each, a fresh Pebble (no validation, no
#       injected badNonce) and issue_seq under callgrind for N1 and for N2
#       certificates (default 1 and 6). Printed per build: the whole run at
#       N1 (start-up, account, first issuance) and the steady-state cost of
#       one issuance, (I(N2) - I(N1)) / (N2 - N1); then AFTER / BEFORE.
#   Needs valgrind, tests/harness/with-pebble, cc, pkg-config. Loopback only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# -ge 2 ] || bench_die "usage: $0 BEFORE_BUILD_DIR AFTER_BUILD_DIR [N1 N2]"
command -v valgrind >/dev/null || bench_die "valgrind is not installed"
N1=${3:-1} N2=${4:-6}
HARNESS=$(cd "$(dirname "$0")/.." && pwd)/tests/harness/with-pebble
PEBBLE_ENV=(--env PEBBLE_VA_ALWAYS_VALID=1 --env PEBBLE_WFE_NONCEREJECT=0)

count() { # BINARY N -> instructions of one run
    "$HARNESS" "${PEBBLE_ENV[@]}" -- sh -c 'cd "$ACME_TEST_TMPDIR" && mkdir -p wr out &&
        valgrind --tool=callgrind --callgrind-out-file="$ACME_TEST_TMPDIR/cg.out" "$1" \
          -d "$ACME_TEST_DIRECTORY" -c "$ACME_TEST_CA_FILE" -s st -w wr -o out -n "$2" -p c \
          >"$ACME_TEST_TMPDIR/cg.stdout" 2>"$ACME_TEST_TMPDIR/cg.err" ||
          { cat "$ACME_TEST_TMPDIR/cg.err" >&2; exit 1; }
        sed -n "s/^summary: //p" "$ACME_TEST_TMPDIR/cg.out"' _ "$1" "$2" | tail -n 1
}

declare -A FIRST STEADY
for side in before after; do
    dir=$1
    [ "$side" = after ] && dir=$2
    bench_setup "$dir"
    bench_cc "$BENCH_OUT/issue_seq" "$BENCH_DIR/issue_seq.c"
    i1=$(count "$BENCH_OUT/issue_seq" "$N1")
    i2=$(count "$BENCH_OUT/issue_seq" "$N2")
    [ -n "$i1" ] && [ -n "$i2" ] || bench_die "$side: callgrind gave no count"
    FIRST[$side]=$i1
    STEADY[$side]=$(( (i2 - i1) / (N2 - N1) ))
    printf '%-6s %s: %d certificate(s) %.2f M instructions; one more issuance %.2f M\n' "$side" "$dir" \
        "$N1" "$(echo "$i1 / 1000000" | bc -l)" "$(echo "${STEADY[$side]} / 1000000" | bc -l)"
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$BENCH_OUT"
done
printf 'after/before: first run %.3f, steady-state issuance %.3f\n' \
    "$(echo "${FIRST[after]} / ${FIRST[before]}" | bc -l)" "$(echo "${STEADY[after]} / ${STEADY[before]}" | bc -l)"
