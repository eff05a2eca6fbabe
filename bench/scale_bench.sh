#!/bin/bash
# bench/scale_bench.sh — how the engine's cost grows with the number of
# certificates it carries (issue 12).
#
#   bench/scale_bench.sh BUILD_DIR [COUNTS...]      (default: 100 1000 10000)
#
# For each count N, against a fresh local Pebble (tests/harness/with-pebble,
# validation off: PEBBLE_VA_ALWAYS_VALID=1, no rejected nonces), one
# process (bench/issue_engine.c) issues N single-name certificates through
# one engine, then a second process starts an engine on the same state
# directory with the N certificates stored and runs until every one is
# installed (start-up). Reported per N: wall and CPU per certificate, peak
# RSS, the longest acme_engine_step, start-up wall time, RSS per stored
# certificate; and every figure as a ratio against the smallest N of the
# same run (flat cost = 1.00). For the longest step of each issuance run
# also what it was doing: its CPU time, its wait for a core (runqueue:
# the machine, not the engine), voluntary and involuntary context
# switches, major faults, when it ran; and how many steps took over 10 ms
# of wall time, of CPU, and of wall time less that wait. Run by hand,
# issue_engine also prints on stderr the CLOCK_MONOTONIC start of its five
# steps of most CPU, to cut a perf profile (perf record -k CLOCK_MONOTONIC)
# to them (doc/benchmarks.md §3). Then valgrind --tool=callgrind counts the
# instructions of an issuance of C1 and of C2 certificates (default 50 and
# 100; CALLGRIND_COUNTS="50 100"): (I(C2) - I(C1)) / (C2 - C1) is the cost
# of one steady-state issuance, start-up and account excluded.
#
# Pebble 2.4 deadlocks under this load now and then: its Authz handler
# holds an authorization's lock while it takes the store's read lock, while
# newOrder (FindValidAuthorization) holds the store's read lock and waits
# for that authorization; a waiting store writer (AddCertificate, from a
# finalize) then blocks both (seen in a goroutine dump, doc/benchmarks.md).
# Every request to Pebble hangs from then on, whatever the client; at
# 1,000 certificates and 16 orders at once it happened in about one run of
# two, at 10,000 in every run. So the engine runs one order at a time
# (JOBS=1, issue_engine -j): no two requests meet inside Pebble, and what
# is measured is the engine's cost per certificate as the number it carries
# grows, which does not depend on how many orders overlap. JOBS=16 measures
# the overlapped engine; then the script sees a run stop making progress
# (no new certificate for STALL_S=20 s), says so, and tries that N again
# on a new Pebble (3 tries).
#
# Bounded: each run at most RUN_S=900 s (also issue_engine's own bound, -t;
# its default of 600 s is about what 10,000 issuances take one at a time). Results also go to
# $BENCH_OUT/scale.tsv (kept with BENCH_KEEP=1).
set -euo pipefail

. "$(dirname "$0")/lib.sh"

STALL_S=${STALL_S:-20}
JOBS=${JOBS:-1}
RUN_S=${RUN_S:-900}

# ---------------------------------------------------------------- inner
# Under with-pebble: one N; prints "RESULT key=value ..." or "STALLED ...".
if [ "${1:-}" = --inner ]; then
    n=$2
    : "${ACME_TEST_DIRECTORY:?} ${BENCH_OUT:?}"
    w=$ACME_TEST_TMPDIR
    cd "$w"
    mkdir -p wr out
    tf=$w/time.issue
    /usr/bin/time -o "$tf" -f "%e %U %S %M" "$BENCH_OUT/issue_engine" -d "$ACME_TEST_DIRECTORY" \
        -c "$ACME_TEST_CA_FILE" -s st -w wr -o out -n "$n" -p s -j "$JOBS" -t "$RUN_S" >"$w/issue.log" 2>&1 &
    pid=$!
    last=-1 still=0 t=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        t=$((t + 1))
        c=$(find out -name '*.crt' 2>/dev/null | wc -l)
        if [ "$c" = "$last" ]; then still=$((still + 1)); else still=0 last=$c; fi
        if [ "$still" -ge "$STALL_S" ] || [ "$t" -ge "$RUN_S" ]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            echo "STALLED n=$n at $c certificates after ${t} s (no progress for ${still} s)"
            exit 0
        fi
    done
    if ! wait "$pid"; then
        echo "FAILED n=$n: $(tail -n 3 "$w/issue.log" | tr '\n' ' ')"
        exit 0
    fi
    read -r e u s m <"$tf"
    step=$(sed -n 's/.*longest_step_us=\([0-9]*\).*/\1/p' "$w/issue.log" | tail -n 1)
    # What the longest step (wall) did: its CPU time, its wait for a core
    # (runqueue), context switches (voluntary: it waited; involuntary: a
    # core was taken), major faults, the certificates installed by then;
    # and the steps over 10 ms (wall, CPU, wall less the runqueue wait).
    detail=$(grep -E '^step_wall_us=[0-9]+ ' "$w/issue.log" | tail -n 1 || true)
    # Start-up: the same certificates, stored and valid; no order is placed.
    tf2=$w/time.start
    /usr/bin/time -o "$tf2" -f "%e %U %S %M" "$BENCH_OUT/issue_engine" -d "$ACME_TEST_DIRECTORY" \
        -c "$ACME_TEST_CA_FILE" -s st -w wr -o out2 -n "$n" -p s -j "$JOBS" -t "$RUN_S" >"$w/start.log" 2>&1 ||
        { echo "FAILED n=$n start-up: $(tail -n 3 "$w/start.log" | tr '\n' ' ')"; exit 0; }
    read -r e2 u2 s2 m2 <"$tf2"
    step2=$(sed -n 's/.*longest_step_us=\([0-9]*\).*/\1/p' "$w/start.log" | tail -n 1)
    echo "RESULT n=$n wall=$e user=$u sys=$s rss_kb=$m step_us=${step:-0} start_wall=$e2 start_cpu=$(echo "$u2 $s2" | awk '{print $1 + $2}') start_rss_kb=$m2 start_step_us=${step2:-0} ${detail:-step_cpu_us=0}"
    exit 0
fi

# ---------------------------------------------------------------- outer
bench_setup "${1:-}"
shift
COUNTS=${*:-100 1000 10000}
cleanup() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $BENCH_OUT" >&2; else rm -rf "$BENCH_OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
export BENCH_OUT STALL_S RUN_S JOBS

echo "building bench/issue_engine.c against $BENCH_BUILD ..."
bench_cc "$BENCH_OUT/issue_engine" "$BENCH_DIR/issue_engine.c"
HARNESS=$BENCH_SRC/tests/harness/with-pebble
PEBBLE_ENV=(--env PEBBLE_VA_ALWAYS_VALID=1 --env PEBBLE_WFE_NONCEREJECT=0)

tsv=$BENCH_OUT/scale.tsv
: >"$BENCH_OUT/steps.txt"
printf 'n\twall_s\tcpu_s\trss_kb\tstep_us\tstart_wall_s\tstart_cpu_s\tstart_rss_kb\tstart_step_us\n' >"$tsv"
for n in $COUNTS; do
    got=""
    for try in 1 2 3; do
        out=$("$HARNESS" "${PEBBLE_ENV[@]}" -- "$0" --inner "$n" 2>"$BENCH_OUT/harness.$n.$try.err" | grep -E '^(RESULT|STALLED|FAILED)' || true)
        echo "n=$n try $try: ${out:-no result (see $BENCH_OUT/harness.$n.$try.err)}"
        case $out in RESULT*) got=$out; break ;; esac
    done
    [ -n "$got" ] || continue
    eval "$(echo "$got" | sed 's/^RESULT //; s/\([a-z_0-9]*\)=/local_\1=/g')"
    # shellcheck disable=SC2154  # set by the eval above
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$local_n" "$local_wall" \
        "$(echo "$local_user $local_sys" | awk '{print $1 + $2}')" "$local_rss_kb" "$local_step_us" \
        "$local_start_wall" "$local_start_cpu" "$local_start_rss_kb" "$local_start_step_us" >>"$tsv"
    # shellcheck disable=SC2154
    printf 'N=%-7s longest step %.1f ms wall: %.1f ms CPU, %.1f ms waiting for a core; %s voluntary / %s involuntary context switches, %s major faults, at %s installed; steps over 10 ms: %s wall, %s CPU, %s wall less the wait for a core\n' \
        "$local_n" "$(echo "${local_step_wall_us:-0} / 1000" | bc -l)" "$(echo "${local_step_cpu_us:-0} / 1000" | bc -l)" \
        "$(echo "${local_step_runq_us:-0} / 1000" | bc -l)" \
        "${local_step_vcsw:-?}" "${local_step_ivcsw:-?}" "${local_step_majflt:-?}" "${local_step_at:-?}" \
        "${local_over10_wall:-?}" "${local_over10_cpu:-?}" "${local_over10_less_runq:-?}" >>"$BENCH_OUT/steps.txt"
done

echo
echo "== the engine at N certificates (ratios against the smallest N of this run)"
awk -F'\t' 'NR == 1 { next }
    NR == 2 { bw = $2 / $1; bc = $3 / $1; bs = $7 / $1 }
    { printf "N=%-7s wall/cert %6.2f ms (%.2fx)  CPU/cert %6.2f ms (%.2fx)  peak RSS %7.1f MB  longest step %6.1f ms  start-up %6.2f s, CPU/cert %.3f ms (%.2fx), RSS %.2f KB/cert, longest step %.1f ms\n",
          $1, 1000 * $2 / $1, ($2 / $1) / bw, 1000 * $3 / $1, ($3 / $1) / bc, $4 / 1024, $5 / 1000,
          $6, 1000 * $7 / $1, ($7 / $1) / bs, $8 / $1, $9 / 1000 }' "$tsv"
echo
echo "== the longest step of each issuance run (wall), and the steps over 10 ms"
cat "$BENCH_OUT/steps.txt"

# ---------------------------------------------------------------- instructions
if command -v valgrind >/dev/null; then
    read -r c1 c2 <<<"${CALLGRIND_COUNTS:-50 100}"
    cg() {
        "$HARNESS" "${PEBBLE_ENV[@]}" -- sh -c 'cd "$ACME_TEST_TMPDIR" && mkdir -p wr out &&
            valgrind --tool=callgrind --callgrind-out-file="$ACME_TEST_TMPDIR/cg.out" "$1" \
              -d "$ACME_TEST_DIRECTORY" -c "$ACME_TEST_CA_FILE" -s st -w wr -o out -n "$2" -p c -j 1 \
              >/dev/null 2>"$ACME_TEST_TMPDIR/cg.err"; sed -n "s/^summary: //p" "$ACME_TEST_TMPDIR/cg.out"' \
            _ "$BENCH_OUT/issue_engine" "$1" 2>/dev/null | tail -n 1
    }
    i1=$(cg "$c1") i2=$(cg "$c2")
    echo
    echo "== instructions (callgrind): $c1 certificates $i1, $c2 certificates $i2"
    awk -v a="$i1" -v b="$i2" -v c1="$c1" -v c2="$c2" 'BEGIN {
        if (a > 0 && b > a) printf "steady-state issuance: %.2f M instructions\n", (b - a) / (c2 - c1) / 1e6 }'
fi
