#!/bin/bash
# bench/instr_at_scale.sh — instructions per steady-state issuance while
# the engine carries N certificates (issue 12: the same at 100 as at
# 10,000), counted by valgrind --tool=callgrind in ONE process.
#
#   bench/instr_at_scale.sh BUILD_DIR [COUNTS...]      (default: 100 1000 10000)
#
# What is counted, in both modes: issuances made while the engine manages
# N certificates (the N the process was given, every one ordered in turn,
# one order at a time), each against a fresh local Pebble (validation off,
# no rejected nonces); start-up, the account and the first issuances are
# left out, so the figure does not depend on how they are amortized. The
# figure is the instructions of every thread of the process (the engine's
# storage and transport threads too) in that window, divided by the
# issuances in it. Ratios are against the first N of the same run.
#
# MODE=last (the default): callgrind runs with --instr-atstart=no, so the
# first N-K issuances run uninstrumented (valgrind without callgrind's
# instrumentation: about twice as fast as with it). bench/issue_engine
# -K K switches instrumentation on and zeroes the counters itself when N-K
# certificates are installed, and dumps them when all N are (client
# requests at step ends: the window holds exactly the last K issuances and
# neither the status queries nor the teardown after them). K is LAST_K
# (default 200), at most N/2. Measured on a shared 2-core machine (load
# 1-2.5): an uninstrumented issuance about 0.08-0.1 s of wall time, an
# instrumented one 0.16-0.2 s (native: 0.07 s; most of it is waiting for
# Pebble); 100, 1,000 and 10,000 in one invocation 18 minutes, 10,000
# alone 16.
#
# MODE=half (the first method, kept to check the other against it): the
# whole process is instrumented; when half of the N certificates are
# installed the script asks callgrind for a dump (callgrind_control
# --dump, which zeroes the counters), and what follows — the second half
# of the issuances, and the status queries and teardown at exit — is
# divided by the number installed after the dump (the issuance under way
# at the dump, up to a second of polling late, is counted in part). It
# instruments every issuance: about twice the wall time of
# MODE=last at 10,000 (half an hour). At N = 400 both count the last 200
# issuances; they agreed within 0.4% (doc/benchmarks.md §3).
#
# The counted part of each run is copied to $BENCH_OUT/callgrind.N, kept
# with BENCH_KEEP=1 (callgrind_annotate --inclusive=yes shows what grows
# with N). Bounded: each run RUN_S (default 3600) seconds at most.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

RUN_S=${RUN_S:-3600}
MODE=${MODE:-last}
LAST_K=${LAST_K:-200}

# The last file callgrind wrote that holds a window's counts, as
# "summary" (or "totals") instructions.
cg_count() {
    sed -n 's/^summary: //p; s/^totals: //p' "$1" | head -n 1 | awk '{print $1}'
}

# ---------------------------------------------------------------- inner
# Under with-pebble: one N; prints "RESULT key=value ..." or "FAILED ...".
if [ "${1:-}" = --inner ]; then
    n=$2
    : "${ACME_TEST_DIRECTORY:?} ${BENCH_OUT:?}"
    w=$ACME_TEST_TMPDIR
    cd "$w"
    mkdir -p wr out cg
    run=("$BENCH_OUT/issue_engine" -d "$ACME_TEST_DIRECTORY" -c "$ACME_TEST_CA_FILE" -s st -w wr -o out
        -n "$n" -p c -j 1 -t "$RUN_S")
    if [ "$MODE" = last ]; then
        k=$((LAST_K < n / 2 ? LAST_K : n / 2))
        [ "$k" -ge 1 ] || { echo "FAILED n=$n: N too small for a window"; exit 0; }
        t0=$(date +%s)
        timeout -s KILL "$RUN_S" valgrind --tool=callgrind --instr-atstart=no \
            --callgrind-out-file="$w/cg/out.%p" "${run[@]}" -K "$k" >"$w/issue.log" 2>"$w/issue.err" ||
            { echo "FAILED n=$n: $(tail -n 3 "$w/issue.err" | tr '\n' ' ')"; exit 0; }
        t1=$(date +%s)
        # The window's dump is the one issue_engine asked for (a client
        # request); the file written at exit holds nothing (instrumentation
        # off again).
        dump=$(grep -l '^desc: Trigger: Client Request: issue_engine -K window' "$w"/cg/out.* | head -n 1 || true)
        got=$(sed -n 's/^window_installs=\([0-9]*\).*/\1/p' "$w/issue.log")
        secs=$(sed -n 's/.*window_seconds=\([0-9.]*\).*/\1/p' "$w/issue.log")
        if [ -z "$dump" ] || [ "${got:-0}" -lt 1 ]; then
            echo "FAILED n=$n: no window dump (installs ${got:-?})"
            exit 0
        fi
        # Kept for callgrind_annotate (BENCH_KEEP=1 keeps BENCH_OUT).
        cp "$dump" "$BENCH_OUT/callgrind.$n"
        echo "RESULT n=$n counted=$got instr=$(cg_count "$dump") run_s=$((t1 - t0)) window_s=$secs"
        exit 0
    fi
    valgrind --tool=callgrind --callgrind-out-file="$w/cg/out.%p" "${run[@]}" \
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
    # The file written at exit (out.PID, no dump number) holds what came
    # after the dump.
    last=$w/cg/out.$pid
    cp "$last" "$BENCH_OUT/callgrind.$n"
    echo "RESULT n=$n counted=$((n - dumped)) instr=$(cg_count "$last") run_s=$t window_s=-"
    exit 0
fi

# ---------------------------------------------------------------- outer
bench_setup "${1:-}"
shift
COUNTS=${*:-100 1000 10000}
case $MODE in last | half) ;; *) bench_die "MODE is last or half, not $MODE" ;; esac
command -v valgrind >/dev/null || bench_die "valgrind is not installed"
command -v callgrind_control >/dev/null || bench_die "callgrind_control is not installed"
cleanup() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $BENCH_OUT" >&2; else rm -rf "$BENCH_OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
export BENCH_OUT RUN_S MODE LAST_K
bench_cc "$BENCH_OUT/issue_engine" "$BENCH_DIR/issue_engine.c"
HARNESS=$BENCH_SRC/tests/harness/with-pebble
echo "MODE=$MODE$([ "$MODE" = last ] && echo " LAST_K=$LAST_K"), counts: $COUNTS; load: $(uptime | sed 's/.*load average: //')"
first=""
for n in $COUNTS; do
    out=$("$HARNESS" --env PEBBLE_VA_ALWAYS_VALID=1 --env PEBBLE_WFE_NONCEREJECT=0 -- "$0" --inner "$n" \
        2>"$BENCH_OUT/harness.$n.err" | grep -E '^(RESULT|FAILED)' || true)
    case $out in
    RESULT*)
        eval "$(echo "$out" | sed 's/^RESULT //; s/\([a-z_]*\)=/local_\1=/g')"
        # shellcheck disable=SC2154  # set by the eval above
        per=$(echo "$local_instr / $local_counted" | bc -l)
        [ -n "$first" ] || first=$per
        # shellcheck disable=SC2154
        printf 'N=%-6s last %d issuances: %.3f M instructions each (%.3fx the first N); run %s s, window %s s; load %s\n' \
            "$n" "$local_counted" "$(echo "$per / 1000000" | bc -l)" "$(echo "$per / $first" | bc -l)" \
            "$local_run_s" "$local_window_s" "$(uptime | sed 's/.*load average: //')"
        ;;
    *) echo "n=$n: ${out:-no result (see $BENCH_OUT/harness.$n.err)}" ;;
    esac
done
