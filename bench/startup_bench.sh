#!/bin/bash
# bench/startup_bench.sh — start-up of one engine with N stored, valid
# certificates (issue 12: 100,000 installed within 30 s, no step over
# 10 ms, at most 2 KB of memory per certificate above the empty engine).
#
#   bench/startup_bench.sh BUILD_DIR [COUNTS...]      (default: 1000 10000 100000)
#
# For each N, against a fresh local Pebble (tests/harness/with-pebble):
#   1. bench/issue_engine issues ONE real certificate (s1.bench.example);
#   2. bench/stored_fill writes N-1 more stored certificates next to it
#      (after step 3)
#      (s2..sN, the same layout, key and params an issuance stores; signed
#      by a bench CA, since ordering 100,000 from Pebble 2.4 is not what is
#      measured — see stored_fill.c);
#   3. the empty engine: issue_engine -n 1 on that state, before the fill
#      (one stored certificate), its peak RSS is the baseline;
#   4. start-up: issue_engine -n N -m on the same state: every certificate
#      loaded and handed to the host's install (-m: the host keeps it in
#      memory, writes nothing), run until idle; "ordered=0" checks that
#      nothing was ordered (orders counted beyond the empty engine's: both
#      restore s1's one real order from its stored numbers).
# Reported per N: start-up wall, CPU per certificate, longest step (wall,
# and the CPU time of the longest-CPU step: a loaded machine deschedules a
# step now and then, which shows as wall well above CPU), peak
# RSS and KB per certificate above the empty engine; ratios against the
# smallest N of the run. Bounded: each start-up at most 600 s (the loop's
# bound in issue_engine). Results in $BENCH_OUT/startup.tsv (BENCH_KEEP=1).
set -euo pipefail

. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------- inner
if [ "${1:-}" = --inner ]; then
    n=$2
    : "${ACME_TEST_DIRECTORY:?} ${BENCH_OUT:?}"
    w=$ACME_TEST_TMPDIR
    cd "$w"
    mkdir -p wr out
    run() { "$BENCH_OUT/issue_engine" -d "$ACME_TEST_DIRECTORY" -c "$ACME_TEST_CA_FILE" -s st -w wr -o out -p s -m -j 1 "$@"; }
    run -n 1 >"$w/first.log" 2>&1 || { echo "FAILED n=$n first issuance: $(tail -n 3 "$w/first.log" | tr '\n' ' ')"; exit 0; }
    ca=$(dirname "$(dirname "$(find st -path '*/certs/s1.bench.example/cert.json' | head -n 1)")")
    ca=$(dirname "$ca")
    [ -d "$ca/certs" ] || { echo "FAILED n=$n: no stored certificate after the first issuance"; exit 0; }
    tf0=$w/time.empty
    /usr/bin/time -o "$tf0" -f "%e %U %S %M" "$BENCH_OUT/issue_engine" -d "$ACME_TEST_DIRECTORY" \
        -c "$ACME_TEST_CA_FILE" -s st -w wr -o out -p s -m -j 1 -n 1 >"$w/empty.log" 2>&1 ||
        { echo "FAILED n=$n empty engine: $(tail -n 3 "$w/empty.log" | tr '\n' ' ')"; exit 0; }
    read -r _ _ _ m0 <"$tf0"
    # Filled after the empty engine ran: its baseline is an engine with one
    # certificate stored, not one that lists N stored keys at start.
    fill=$("$BENCH_OUT/stored_fill" "$ca" s1.bench.example s "$n") || { echo "FAILED n=$n fill"; exit 0; }
    tf=$w/time.start
    /usr/bin/time -o "$tf" -f "%e %U %S %M" "$BENCH_OUT/issue_engine" -d "$ACME_TEST_DIRECTORY" \
        -c "$ACME_TEST_CA_FILE" -s st -w wr -o out -p s -m -j 1 -n "$n" >"$w/start.log" 2>&1 ||
        { echo "FAILED n=$n start-up: $(tail -n 3 "$w/start.log" | tr '\n' ' ')"; exit 0; }
    read -r e u s m <"$tf"
    line=$(grep '^issued=' "$w/start.log" | tail -n 1)
    installed=$(echo "$line" | sed -n 's/.*issued=\([0-9]*\).*/\1/p')
    # issue_engine's "ordered" is the orders of each certificate's life
    # (restored from storage): s1's real issuance counts in both runs, so
    # what start-up ordered is the difference.
    ordered=$(echo "$line" | sed -n 's/.*ordered=\([0-9]*\).*/\1/p')
    ordered0=$(grep '^issued=' "$w/empty.log" | tail -n 1 | sed -n 's/.*ordered=\([0-9]*\).*/\1/p')
    ordered=$((ordered - ordered0))
    step=$(echo "$line" | sed -n 's/.*longest_step_us=\([0-9]*\).*/\1/p')
    stepc=$(echo "$line" | sed -n 's/.*longest_step_cpu_us=\([0-9]*\).*/\1/p')
    waited=$(echo "$line" | sed -n 's/.*steps_waited=\([0-9]*\).*/\1/p')
    steps=$(echo "$line" | sed -n 's/.* steps=\([0-9]*\).*/\1/p')
    echo "RESULT n=$n installed=$installed ordered=$ordered wall=$e user=$u sys=$s rss_kb=$m empty_rss_kb=$m0 step_us=$step step_cpu_us=$stepc steps=${steps:-0} waited=${waited:-0} $fill"
    exit 0
fi

# ---------------------------------------------------------------- outer
bench_setup "${1:-}"
shift
COUNTS=${*:-1000 10000 100000}
cleanup() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $BENCH_OUT" >&2; else rm -rf "$BENCH_OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
export BENCH_OUT

echo "building bench/issue_engine.c and bench/stored_fill.c against $BENCH_BUILD ..."
bench_cc "$BENCH_OUT/issue_engine" "$BENCH_DIR/issue_engine.c"
bench_cc "$BENCH_OUT/stored_fill" "$BENCH_DIR/stored_fill.c"
HARNESS=$BENCH_SRC/tests/harness/with-pebble
PEBBLE_ENV=(--env PEBBLE_VA_ALWAYS_VALID=1 --env PEBBLE_WFE_NONCEREJECT=0)

tsv=$BENCH_OUT/startup.tsv
printf 'n\tinstalled\tordered\twall_s\tcpu_s\trss_kb\tempty_rss_kb\tstep_us\tstep_cpu_us\tsteps\twaited\n' >"$tsv"
for n in $COUNTS; do
    out=$("$HARNESS" "${PEBBLE_ENV[@]}" -- "$0" --inner "$n" 2>"$BENCH_OUT/harness.$n.err" | grep -E '^(RESULT|FAILED)' || true)
    echo "n=$n: ${out:-no result (see $BENCH_OUT/harness.$n.err)}"
    case $out in RESULT*) ;; *) continue ;; esac
    eval "$(echo "$out" | sed 's/^RESULT //; s/\([a-z_0-9]*\)=/local_\1=/g')"
    # shellcheck disable=SC2154  # set by the eval above
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$local_n" "$local_installed" "$local_ordered" "$local_wall" \
        "$(echo "$local_user $local_sys" | awk '{print $1 + $2}')" "$local_rss_kb" "$local_empty_rss_kb" \
        "$local_step_us" "$local_step_cpu_us" "$local_steps" "$local_waited" >>"$tsv"
done

echo
echo "== start-up with N stored certificates (ratios against the smallest N of this run)"
awk -F'\t' 'NR == 1 { next }
    NR == 2 { bc = $5 / $1 }
    { printf "N=%-7s installed %-7s ordered %s  start-up %6.2f s  CPU/cert %.3f ms (%.2fx)  longest step %5.1f ms wall, %4.1f ms CPU, %s of %s steps blocked  peak RSS %6.1f MB, %.2f KB/cert above the empty engine (%.1f MB)\n",
          $1, $2, $3, $4, 1000 * $5 / $1, ($5 / $1) / bc, $8 / 1000, $9 / 1000, $11, $10, $6 / 1024, ($6 - $7) / ($1 > 1 ? $1 - 1 : 1), $7 / 1024 }' "$tsv"
