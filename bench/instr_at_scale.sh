#!/bin/bash
# bench/instr_at_scale.sh — instructions per steady-state issuance while
# the engine carries N certificates (issue 12: the same at 100 as at
# 10,000), counted by valgrind --tool=callgrind in ONE process.
#
#   bench/instr_at_scale.sh BUILD_DIR [COUNTS...]      (default: 100 1000)
#
# For each N, against a fresh local Pebble (validation off, no rejected
# nonces), bench/issue_engine issues N certificates one order at a time
# under callgrind. When half of them are installed the script asks
# callgrind for a dump (callgrind_control --dump), which also zeroes the
# counters; what the process does after it — the second half of the
# issuances, with N certificates managed — is divided by the number issued
# after the dump. Start-up, the account and the first half are left out,
# so the figure does not depend on how they are amortized.
# Under callgrind an issuance takes about 50x its normal time: N = 10,000
# takes hours; 1,000 about ten minutes. Bounded: each run RUN_S (default
# 3600) seconds at most.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

RUN_S=${RUN_S:-3600}

if [ "${1:-}" = --inner ]; then
    n=$2
    : "${ACME_TEST_DIRECTORY:?} ${BENCH_OUT:?}"
    w=$ACME_TEST_TMPDIR
    cd "$w"
    mkdir -p wr out cg
    valgrind --tool=callgrind --callgrind-out-file="$w/cg/out.%p" "$BENCH_OUT/issue_engine" \
        -d "$ACME_TEST_DIRECTORY" -c "$ACME_TEST_CA_FILE" -s st -w wr -o out -n "$n" -p c -j 1 \
        >"$w/issue.log" 2>"$w/issue.err" &
    pid=$!
    half=$((n / 2)) dumped="" t=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        t=$((t + 1))
        if [ "$t" -ge "$RUN_S" ]; then
            kill "$pid" 2>/dev/null || true
            echo "FAILED n=$n: still running after $RUN_S s"
            exit 0
        fi
        if [ -z "$dumped" ]; then
            c=$(find out -name '*.crt' | wc -l)
            if [ "$c" -ge "$half" ]; then
                callgrind_control --dump "$pid" >/dev/null 2>&1 || true
                dumped=$c
            fi
        fi
    done
    wait "$pid" || { echo "FAILED n=$n: $(tail -n 3 "$w/issue.err" | tr '\n' ' ')"; exit 0; }
    [ -n "$dumped" ] || { echo "FAILED n=$n: finished before the dump"; exit 0; }
    # The last file written holds what came after the dump.
    last=$(ls -t "$w"/cg/out.* | head -n 1)
    after=$(sed -n 's/^summary: //p' "$last" | tail -n 1)
    [ -n "$after" ] || after=$(sed -n 's/^totals: //p' "$last" | tail -n 1)
    echo "RESULT n=$n dumped_at=$dumped after=$after"
    exit 0
fi

bench_setup "${1:-}"
shift
COUNTS=${*:-100 1000}
command -v valgrind >/dev/null || bench_die "valgrind is not installed"
command -v callgrind_control >/dev/null || bench_die "callgrind_control is not installed"
cleanup() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $BENCH_OUT" >&2; else rm -rf "$BENCH_OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
export BENCH_OUT RUN_S
bench_cc "$BENCH_OUT/issue_engine" "$BENCH_DIR/issue_engine.c"
HARNESS=$BENCH_SRC/tests/harness/with-pebble
first=""
for n in $COUNTS; do
    out=$("$HARNESS" --env PEBBLE_VA_ALWAYS_VALID=1 --env PEBBLE_WFE_NONCEREJECT=0 -- "$0" --inner "$n" \
        2>"$BENCH_OUT/harness.$n.err" | grep -E '^(RESULT|FAILED)' || true)
    case $out in
    RESULT*)
        eval "$(echo "$out" | sed 's/^RESULT //; s/\([a-z_]*\)=/local_\1=/g')"
        # shellcheck disable=SC2154  # set by the eval above
        per=$(echo "$local_after / ($local_n - $local_dumped_at)" | bc -l)
        [ -n "$first" ] || first=$per
        printf 'N=%-6s %d issuances after the dump: %.2f M instructions each (%.2fx the first N)\n' \
            "$n" "$((local_n - local_dumped_at))" "$(echo "$per / 1000000" | bc -l)" "$(echo "$per / $first" | bc -l)"
        ;;
    *) echo "n=$n: ${out:-no result (see $BENCH_OUT/harness.$n.err)}" ;;
    esac
done
