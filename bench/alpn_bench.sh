#!/usr/bin/env bash
# bench/alpn_bench.sh — libacme's tls-alpn-01 responder against ualpn (uacme).
#
# Usage:
#   bench/alpn_bench.sh BUILD_DIR
#       BUILD_DIR: a built libacme meson build dir (e.g. meson setup /tmp/b &&
#       ninja -C /tmp/b); the bench programs are compiled against it with cc
#       (headers of the source tree it was configured from, its libacme.so).
#   Environment (all optional):
#       DURATION=5        seconds measured per cell (after 0.5 s warm-up)
#       ROUNDS=3          rounds; a cell's figure is the median over rounds
#       CONCS="1 6 32"    concurrent validators (columns)
#       UALPN_WORKERS="1 2"  ualpn worker processes to measure (2 = its default)
#       BENCH_KEEP=1      keep the scratch dir (logs, binaries)
#   Needs: cc, pkg-config, gnutls and jansson dev files, python3, ualpn
#   (apt-get install uacme). Everything listens on 127.0.0.1 (kernel-chosen
#   free ports) and is stopped at the end, also on failure or Ctrl-C.
#
# What is measured. Both servers serve ONE challenge for the same name with
# an ECDSA P-256 certificate: libacme through bench/alpn_server (a tiny host
# of include/acme/responder.h, acme_responder_start_thread, max_connections
# 64, certificate made in-process with gnutls), ualpn through its documented
# control interface ("auth NAME DIGEST" piped to `ualpn -s SOCK`; ualpn makes
# its own P-256 certificate). The load generator bench/alpn_load opens C
# concurrent validator-like connections (ALPN acme-tls/1, SNI = the name, full
# handshake, certificate and acmeIdentifier checked, read until
# close_notify, close) for DURATION seconds. Each cell starts a fresh server,
# so its peak RSS is that run's own. Per cell:
#   hs/s     handshakes per second completed in the window (median of rounds)
#   peak kB  VmHWM of the server, summed over its processes (ualpn: master +
#            workers; shared library pages count once per process), max of rounds
#   cpu us/hs  server CPU time (user+sys, all its processes) per handshake
# and the ratios libacme/ualpn. The load generator runs on the same 2 cores,
# so these are figures for this machine only; compare ratios, not absolutes.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_setup "${1:-}"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONCS=${CONCS:-"1 6 32"}
UALPN_WORKERS=${UALPN_WORKERS:-"1 2"}
NAME=alpn-bench.example
KEY_AUTH="benchtoken0123456789_-abcdefghijklmnopqrstu.thumbprintABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"
UALPN=${UALPN:-$(command -v ualpn || true)}

[ -n "$UALPN" ] || bench_die "ualpn not found (apt-get install uacme)"
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] || bench_die "ROUNDS must be 1..20"
awk -v d="$DURATION" 'BEGIN { exit !(d > 0 && d <= 120) }' || bench_die "DURATION must be in (0, 120]"

SRV_PIDS=""      # every process of the running server
SRV_MAIN=""      # the one to signal
cleanup() {
    stop_server || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "kept $BENCH_OUT" >&2
    else
        rm -rf "$BENCH_OUT"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "building bench programs against $BENCH_BUILD ..."
bench_cc "$BENCH_OUT/alpn_server" "$BENCH_DIR/alpn_server.c"
bench_cc "$BENCH_OUT/alpn_load" "$BENCH_DIR/alpn_load.c"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Sum of utime+stime (clock ticks) of the given processes.
cpu_ticks() {
    local t=0 p v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || true)
        [ -n "$v" ] && t=$((t + v))
    done
    echo "$t"
}

stop_server() {
    [ -n "$SRV_MAIN" ] || return 0
    kill -TERM "$SRV_MAIN" 2>/dev/null || true
    local p alive
    for _ in $(seq 1 50); do
        alive=""
        for p in $SRV_PIDS; do
            kill -0 "$p" 2>/dev/null && alive="$alive $p"
        done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for p in $SRV_PIDS; do
        kill -KILL "$p" 2>/dev/null || true
    done
    wait "$SRV_MAIN" 2>/dev/null || true
    SRV_MAIN=""
    SRV_PIDS=""
}

probe() { # port: one validation must succeed
    "$BENCH_OUT/alpn_load" -p "$1" -s "$NAME" -k "$KEY_AUTH" -c 1 -n 1 -t 3000 >/dev/null
}

start_libacme() {
    local out="$BENCH_OUT/alpn_server.out"
    : >"$out"
    "$BENCH_OUT/alpn_server" -n "$NAME" -k "$KEY_AUTH" -b 127.0.0.1 -p 0 -m 64 \
        </dev/null >"$out" 2>&1 &
    SRV_MAIN=$!
    SRV_PIDS=$SRV_MAIN
    for _ in $(seq 1 50); do
        SRV_PORT=$(sed -n 's/^ready port=//p' "$out")
        [ -n "$SRV_PORT" ] && break
        kill -0 "$SRV_MAIN" 2>/dev/null || bench_die "alpn_server died: $(cat "$out")"
        sleep 0.1
    done
    [ -n "$SRV_PORT" ] || bench_die "alpn_server not ready after 5 s"
    probe "$SRV_PORT" || bench_die "libacme responder failed the probe validation"
}

start_ualpn() { # workers
    local w=$1 d="$BENCH_OUT/ualpn" n reply digest
    mkdir -p "$d"
    rm -f "$d/sock" "$d/pid"
    SRV_PORT=$(free_port)
    # -c: the backend for non-acme-tls/1 traffic (never used here: nothing
    # listens on 127.0.0.1:9); -P 0: no PROXY header.
    "$UALPN" -b "127.0.0.1@$SRV_PORT" -c 127.0.0.1@9 -P 0 -n "$w" -m 10 \
        -p "$d/pid" -s "$d/sock" -l "$d/log" </dev/null >>"$d/stderr" 2>&1 &
    SRV_MAIN=$!
    SRV_PIDS=$SRV_MAIN
    for _ in $(seq 1 50); do
        n=$(pgrep -P "$SRV_MAIN" | wc -l || true)
        [ -S "$d/sock" ] && [ "$n" -ge "$w" ] && break
        kill -0 "$SRV_MAIN" 2>/dev/null || bench_die "ualpn died: $(tail -5 "$d/log" "$d/stderr" 2>/dev/null)"
        sleep 0.1
    done
    SRV_PIDS="$SRV_MAIN $(pgrep -P "$SRV_MAIN" | tr '\n' ' ')"
    digest=$(python3 -c 'import base64,hashlib,sys; print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).decode().rstrip("="))' "$KEY_AUTH")
    # ualpn's client mode prints OK/ERR; its exit status is 1 even after OK
    # (1.7.4), so the reply is what is checked.
    reply=$(echo "auth $NAME $digest" | "$UALPN" -s "$d/sock" 2>&1 || true)
    [ "$reply" = OK ] || bench_die "ualpn auth failed: $reply"
    probe "$SRV_PORT" || bench_die "ualpn failed the probe validation"
}

# results[server,conc,round]
declare -A RATE PEAK CPU P99 ERR UNCLEAN TLS
SERVERS="libacme"
for w in $UALPN_WORKERS; do SERVERS="$SERVERS ualpn-n$w"; done

run_cell() { # server conc round
    local s=$1 c=$2 r=$3 line t0 t1 hs
    case $s in
        libacme) start_libacme ;;
        ualpn-n*) start_ualpn "${s#ualpn-n}" ;;
    esac
    t0=$(cpu_ticks $SRV_PIDS)
    line=$("$BENCH_OUT/alpn_load" -p "$SRV_PORT" -s "$NAME" -k "$KEY_AUTH" -c "$c" \
        -d "$DURATION" -w 0.5 -t 10000 2>>"$BENCH_OUT/load.err" || true)
    t1=$(cpu_ticks $SRV_PIDS)
    PEAK[$s,$c,$r]=$(vm_hwm_kb $SRV_PIDS)
    stop_server
    hs=$(sed -n 's/.*handshakes=\([0-9]*\).*/\1/p' <<<"$line")
    RATE[$s,$c,$r]=$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$line")
    ERR[$s,$c,$r]=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
    UNCLEAN[$s,$c,$r]=$(sed -n 's/.*unclean=\([0-9]*\).*/\1/p' <<<"$line")
    P99[$s,$c,$r]=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
    [ -z "${TLS[$s]:-}" ] && TLS[$s]=$(sed -n 's/.*tls=//p' <<<"$line")
    # ticks are 1/100 s: CPU microseconds per handshake
    CPU[$s,$c,$r]=$(awk -v a="$t0" -v b="$t1" -v h="${hs:-0}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (h > 0) printf "%.0f", (b - a) * 1e6 / hz / (h * 1.0); else print "-" }')
    printf '  round %d  %-9s c=%-3s %8s hs/s  peak %6s kB  cpu %5s us/hs  p99 %7s ms  errors %s unclean %s\n' \
        "$r" "$s" "$c" "${RATE[$s,$c,$r]:--}" "${PEAK[$s,$c,$r]}" "${CPU[$s,$c,$r]}" \
        "${P99[$s,$c,$r]:--}" "${ERR[$s,$c,$r]:--}" "${UNCLEAN[$s,$c,$r]:--}"
}

median() { tr ' ' '\n' | grep -v '^-*$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { tr ' ' '\n' | grep -v '^-*$' | sort -g | tail -1; }

echo "tls-alpn-01 responders: ${DURATION}s per cell, $ROUNDS round(s), concurrency: $CONCS"
echo "libacme: $BENCH_BUILD ($(cd "$BENCH_SRC" && git describe --always --dirty 2>/dev/null || echo unknown))"
echo "ualpn:   $("$UALPN" -V 2>&1 | head -1)"
for r in $(seq 1 "$ROUNDS"); do
    for c in $CONCS; do
        for s in $SERVERS; do
            run_cell "$s" "$c" "$r"
        done
    done
done

collect() { # array server conc -> values over rounds
    local -n arr=$1
    local r out=""
    for r in $(seq 1 "$ROUNDS"); do out="$out ${arr[$2,$3,$r]:--}"; done
    echo "$out"
}

echo
for s in $SERVERS; do echo "TLS negotiated with $s: ${TLS[$s]:--}"; done
printf '%-28s' "concurrent validators"
for c in $CONCS; do printf '%12s' "$c"; done
echo
row() { # label array server reducer
    printf '%-28s' "$1"
    for c in $CONCS; do printf '%12s' "$(collect "$2" "$3" "$c" | $4)"; done
    echo
}
ratio_row() { # label array peer reducer
    printf '%-28s' "$1"
    for c in $CONCS; do
        printf '%12s' "$(ratio "$(collect "$2" libacme "$c" | $4)" "$(collect "$2" "$3" "$c" | $4)")"
    done
    echo
}
for s in $SERVERS; do row "$s hs/s" RATE "$s" median; done
for s in $SERVERS; do [ "$s" = libacme ] || ratio_row "ratio libacme/$s hs/s" RATE "$s" median; done
for s in $SERVERS; do row "$s peak kB" PEAK "$s" maxof; done
for s in $SERVERS; do [ "$s" = libacme ] || ratio_row "ratio libacme/$s peak" PEAK "$s" maxof; done
for s in $SERVERS; do row "$s cpu us/hs" CPU "$s" median; done
for s in $SERVERS; do [ "$s" = libacme ] || ratio_row "ratio libacme/$s cpu/hs" CPU "$s" median; done
for s in $SERVERS; do row "$s p99 ms" P99 "$s" median; done
sumof() { tr ' ' '\n' | grep -v '^-*$' | awk '{ t += $1 } END { print t + 0 }'; }
for s in $SERVERS; do row "$s no close_notify" UNCLEAN "$s" sumof; done
tot_err=0
for s in $SERVERS; do for c in $CONCS; do for r in $(seq 1 "$ROUNDS"); do
    tot_err=$((tot_err + ${ERR[$s,$c,$r]:-1}))
done; done; done
echo "errors in all cells: $tot_err"
[ -s "$BENCH_OUT/load.err" ] && { echo "first load generator messages:"; head -5 "$BENCH_OUT/load.err"; }
exit 0
