# shellcheck shell=bash
# bench/lib.sh — shared helpers for the bench scripts (sourced, not run).
#
# bench_setup BUILD_DIR   sets BENCH_BUILD (absolute), BENCH_SRC (the source
#                         tree that build dir was configured from, read from
#                         meson-info; falls back to this checkout), BENCH_LIB
#                         (the directory holding libacme.so) and BENCH_OUT (a
#                         fresh private directory for binaries and scratch,
#                         removed on exit unless BENCH_KEEP=1).
# bench_cc OUT SRC...     compiles a bench program against that build tree
#                         (headers from BENCH_SRC/include, libacme from
#                         BENCH_LIB with an rpath), plus gnutls/jansson.
# vm_hwm_kb PID...        sum of VmHWM (peak RSS, kB) of the given processes.
# ratio A B               A/B with 2 decimals, "-" when either is missing or 0.

bench_die() { echo "$(basename "$0"): $*" >&2; exit 1; }

bench_setup() {
    [ -n "$1" ] || bench_die "usage: $0 BUILD_DIR (a configured and built libacme meson build dir)"
    BENCH_BUILD=$(cd "$1" 2>/dev/null && pwd) || bench_die "no such build dir: $1"
    BENCH_LIB="$BENCH_BUILD/libacme"
    [ -e "$BENCH_LIB/libacme.so" ] || bench_die "$BENCH_LIB/libacme.so missing: run ninja -C $1 first"
    BENCH_SRC=""
    if [ -f "$BENCH_BUILD/meson-info/meson-info.json" ]; then
        BENCH_SRC=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
            "$BENCH_BUILD/meson-info/meson-info.json" 2>/dev/null || true)
    fi
    [ -n "$BENCH_SRC" ] && [ -d "$BENCH_SRC/include/acme" ] || BENCH_SRC=$(cd "$(dirname "$0")/.." && pwd)
    # shellcheck disable=SC2034 # BENCH_OUT and BENCH_DIR are for the scripts that source this
    BENCH_OUT=$(mktemp -d "${TMPDIR:-/tmp}/libacme-bench.XXXXXX") || bench_die "mktemp failed"
    # shellcheck disable=SC2034
    BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
}

bench_cc() {
    out=$1; shift
    # shellcheck disable=SC2046
    cc -std=c11 -O2 -g -Wall -Wextra -D_GNU_SOURCE -pthread \
        -I"$BENCH_SRC/include" -I"$BENCH_BUILD/include" \
        -o "$out" "$@" \
        -L"$BENCH_LIB" -Wl,-rpath,"$BENCH_LIB" -lacme \
        $(pkg-config --cflags --libs gnutls jansson) \
        || bench_die "compiling $out failed"
}

vm_hwm_kb() {
    total=0
    for p in "$@"; do
        v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        [ -n "$v" ] && total=$((total + v))
    done
    echo "$total"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
