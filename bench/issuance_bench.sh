#!/usr/bin/env bash
# bench/issuance_bench.sh — COUNT single-name certificates from a local
# Pebble, by libacme (engine, concurrent), libacme (acme_issue in a loop),
# uacme, lego and certbot (one process per certificate, sequential).
#
# Usage:
#   bench/issuance_bench.sh BUILD_DIR [COUNT]
#       BUILD_DIR: a built libacme meson build dir; bench/issue_seq.c and
#       bench/issue_engine.c are compiled against it with cc. issue_engine
#       only if that libacme exports acme_engine_perform (else it is left
#       out and the ratios are taken against libacme-seq).
#       COUNT: certificates per client (default 100, at most 10000).
#   Environment (all optional):
#       PEER_COUNT=COUNT  certificates for uacme, lego and certbot (certbot
#                         alone needs ~3.5 s each here); ratios are per
#                         certificate, so a smaller PEER_COUNT still compares
#       CLIENTS="libacme-engine libacme-seq uacme lego certbot"  which to run
#       ENGINE_JOBS=0     engine max_orders (0 = the engine's default)
#       BENCH_KEEP=1      keep the scratch dir
#   Needs: tests/harness/with-pebble (pebble, python3, openssl), cc,
#   pkg-config, gnutls/jansson dev files, /usr/bin/time (package `time`),
#   uacme, lego, certbot (Debian packages), unshare (util-linux) and root for
#   uacme's trust (see below). Loopback only. With COUNT=100 the whole run
#   takes about 7 minutes on 2 cores, most of it certbot.
#
# Every client gets a fresh Pebble (tests/harness/with-pebble) with
# PEBBLE_VA_ALWAYS_VALID=1 (no validation) and PEBBLE_WFE_NONCEREJECT=0 (no
# injected badNonce: this measures the happy path), http-01, P-256
# certificate keys, and publishes into a webroot directory (libacme: host
# callbacks writing the token file; uacme: a hook script; lego/certbot: their
# webroot modes). Every client trusts Pebble's listener CA and nothing else:
#   libacme  acme_client_set_ca_file
#   lego     LEGO_CA_CERTIFICATES
#   certbot  REQUESTS_CA_BUNDLE
#   uacme    has no option and libcurl-gnutls reads only the CA directory
#            /etc/ssl/certs (no env variable), so uacme runs in a private
#            mount namespace (unshare -m) where a directory holding only
#            Pebble's CA is bind-mounted on /etc/ssl/certs.
# Account registration is inside the timed run for every client. Afterwards
# each certificate is checked: it chains to Pebble's root and names the
# requested name. Per client: wall time, CPU (user+sys of the client and
# all its child processes) and peak RSS (largest single process), from
# /usr/bin/time, with ratios against libacme-engine.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------- inner
# Runs under with-pebble: one client, results to $BENCH_OUT/result.<client>.
if [ "${1:-}" = --inner ]; then
    client=$2
    : "${ACME_TEST_DIRECTORY:?} ${BENCH_OUT:?} ${COUNT:?} ${PEER_COUNT:?}"
    case $client in libacme-*) ;; *) COUNT=$PEER_COUNT ;; esac
    w=$ACME_TEST_TMPDIR
    cd "$w"
    mkdir -p wr out trust
    cp "$ACME_TEST_CA_FILE" trust/pebble-ca.pem
    export BENCH_WEBROOT=$w/wr
    res=$BENCH_OUT/result.$client
    tf=$BENCH_OUT/time.$client
    log=$BENCH_OUT/log.$client
    : >"$log"
    T=(/usr/bin/time -o "$tf" -f "%e %U %S %M")
    dir=$ACME_TEST_DIRECTORY
    ok=0
    case $client in
        libacme-engine)
            "${T[@]}" "$BENCH_OUT/issue_engine" -d "$dir" -c "$ACME_TEST_CA_FILE" -s st -w wr \
                -o out -n "$COUNT" -p e -j "${ENGINE_JOBS:-0}" >>"$log" 2>&1 && ok=1 ;;
        libacme-seq)
            "${T[@]}" "$BENCH_OUT/issue_seq" -d "$dir" -c "$ACME_TEST_CA_FILE" -s st -w wr \
                -o out -n "$COUNT" -p s >>"$log" 2>&1 && ok=1 ;;
        uacme)
            "${T[@]}" unshare -m sh -c '
                mount --bind "$1/trust" /etc/ssl/certs || exit 3
                uacme -y -c "$1/u" -a "$2" -t EC -b 256 new || exit 4
                i=1
                while [ "$i" -le "$3" ]; do
                    uacme -c "$1/u" -a "$2" -h "$4" -t EC -b 256 issue "u$i.bench.example" || exit 5
                    i=$((i + 1))
                done' uacme-run "$w" "$dir" "$COUNT" "$BENCH_OUT/uacme-hook.sh" >>"$log" 2>&1 && ok=1 ;;
        lego)
            "${T[@]}" env LEGO_CA_CERTIFICATES="$ACME_TEST_CA_FILE" sh -c '
                i=1
                while [ "$i" -le "$3" ]; do
                    lego --server "$2" --email bench@bench.example --accept-tos --path "$1/l" \
                        --key-type ec256 --http --http.webroot "$1/wr" \
                        --domains "l$i.bench.example" run || exit 5
                    i=$((i + 1))
                done' lego-run "$w" "$dir" "$COUNT" >>"$log" 2>&1 && ok=1 ;;
        certbot)
            "${T[@]}" env REQUESTS_CA_BUNDLE="$ACME_TEST_CA_FILE" sh -c '
                i=1
                while [ "$i" -le "$3" ]; do
                    certbot certonly --server "$2" --non-interactive --agree-tos \
                        --register-unsafely-without-email --config-dir "$1/cb/etc" \
                        --work-dir "$1/cb/work" --logs-dir "$1/cb/logs" \
                        --key-type ecdsa --elliptic-curve secp256r1 \
                        --webroot -w "$1/wr" -d "c$i.bench.example" || exit 5
                    i=$((i + 1))
                done' certbot-run "$w" "$dir" "$COUNT" >>"$log" 2>&1 && ok=1 ;;
        *) echo "unknown client $client" >&2; exit 2 ;;
    esac
    # Check what was issued: chains to Pebble's root, names the name.
    curl -sf --cacert "$ACME_TEST_CA_FILE" "$ACME_TEST_MGMT/roots/0" >root.pem || true
    verified=0
    for i in $(seq 1 "$COUNT"); do
        case $client in
            libacme-engine) n=e$i.bench.example; f=out/$n.crt ;;
            libacme-seq) n=s$i.bench.example; f=out/$n.crt ;;
            uacme) n=u$i.bench.example; f=u/$n/cert.pem ;;
            lego) n=l$i.bench.example; f=l/certificates/$n.crt ;;
            certbot) n=c$i.bench.example; f=cb/etc/live/$n/fullchain.pem ;;
        esac
        [ -s "$f" ] || continue
        openssl verify -CAfile root.pem -untrusted "$f" "$f" >/dev/null 2>&1 || continue
        openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:$n\$" || continue
        verified=$((verified + 1))
    done
    read -r wall user sys maxrss <"$tf" || true
    # /usr/bin/time writes "Command exited with non-zero status N" first on failure
    if [ "$ok" != 1 ]; then
        read -r wall user sys maxrss < <(tail -1 "$tf") || true
    fi
    echo "$wall $user $sys $maxrss $verified $ok" >"$res"
    exit 0
fi

# ---------------------------------------------------------------- outer
bench_setup "${1:-}"
COUNT=${2:-100}
[[ "$COUNT" =~ ^[0-9]+$ ]] && [ "$COUNT" -ge 1 ] && [ "$COUNT" -le 10000 ] || bench_die "COUNT must be 1..10000"
PEER_COUNT=${PEER_COUNT:-$COUNT}
[[ "$PEER_COUNT" =~ ^[0-9]+$ ]] && [ "$PEER_COUNT" -ge 1 ] && [ "$PEER_COUNT" -le 10000 ] || bench_die "PEER_COUNT must be 1..10000"
CLIENTS=${CLIENTS:-"libacme-engine libacme-seq uacme lego certbot"}
WITH_PEBBLE="$BENCH_SRC/tests/harness/with-pebble"
[ -x "$WITH_PEBBLE" ] || WITH_PEBBLE="$BENCH_DIR/../tests/harness/with-pebble"
[ -x /usr/bin/time ] || bench_die "/usr/bin/time missing (apt-get install time)"
cleanup() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $BENCH_OUT" >&2; else rm -rf "$BENCH_OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "building bench programs against $BENCH_BUILD ..."
bench_cc "$BENCH_OUT/issue_seq" "$BENCH_DIR/issue_seq.c"
HAVE_ENGINE=0
# (nm's output captured first: grep -q closing the pipe early + pipefail)
SYMS=$(nm -D "$BENCH_LIB/libacme.so" 2>/dev/null || true)
if grep -Eq ' T acme_engine_perform(@|$)' <<<"$SYMS"; then
    bench_cc "$BENCH_OUT/issue_engine" "$BENCH_DIR/issue_engine.c" && HAVE_ENGINE=1
fi
cat >"$BENCH_OUT/uacme-hook.sh" <<'EOF'
#!/bin/sh
# uacme challenge hook: http-01 into $BENCH_WEBROOT (uacme.sh, in short)
d="$BENCH_WEBROOT/.well-known/acme-challenge"
case "$1" in
    begin) [ "$2" = http-01 ] || exit 1; mkdir -p "$d" && printf %s "$5" >"$d/$4" ;;
    done|failed) rm -f "$d/$4" ;;
    *) exit 1 ;;
esac
EOF
chmod +x "$BENCH_OUT/uacme-hook.sh"

export BENCH_OUT COUNT PEER_COUNT ENGINE_JOBS
count_of() { case $1 in libacme-*) echo "$COUNT" ;; *) echo "$PEER_COUNT" ;; esac; }
RUN=""
for c in $CLIENTS; do
    case $c in
        libacme-engine) [ "$HAVE_ENGINE" = 1 ] || { echo "libacme-engine: skipped (this libacme has no acme_engine_perform yet)"; continue; } ;;
        libacme-seq) ;;
        uacme|lego|certbot) command -v "$c" >/dev/null || { echo "$c: skipped (not installed)"; continue; } ;;
        *) bench_die "unknown client $c" ;;
    esac
    RUN="$RUN $c"
done

echo "issuance: $COUNT single-name certificates per libacme client, $PEER_COUNT per peer; fresh Pebble each, validation off"
echo "libacme: $BENCH_BUILD ($(cd "$BENCH_SRC" && git describe --always --dirty 2>/dev/null || echo unknown))"
for c in $RUN; do
    case $c in
        uacme) echo "uacme:   $(uacme -V 2>&1 | head -1)" ;;
        lego) echo "lego:    $(lego --version 2>&1 | head -1) (Debian $(dpkg-query -W -f '${Version}' lego 2>/dev/null))" ;;
        certbot) echo "certbot: $(certbot --version 2>&1 | head -1)" ;;
    esac
done
echo "pebble:  Debian $(dpkg-query -W -f '${Version}' pebble 2>/dev/null)"
for c in $RUN; do
    printf '  running %-15s ... ' "$c"
    "$WITH_PEBBLE" --env PEBBLE_VA_ALWAYS_VALID=1 --env PEBBLE_WFE_NONCEREJECT=0 -- \
        "$0" --inner "$c" >"$BENCH_OUT/harness.$c" 2>&1 || true
    if [ -s "$BENCH_OUT/result.$c" ]; then
        read -r wall user sys rss verified ok <"$BENCH_OUT/result.$c"
        echo "done: ${wall}s, $verified/$(count_of "$c") verified$([ "$ok" = 1 ] || echo ", CLIENT FAILED")"
        [ "$ok" = 1 ] || tail -5 "$BENCH_OUT/log.$c" | sed 's/^/    /'
    else
        echo "no result"; tail -5 "$BENCH_OUT/harness.$c" | sed 's/^/    /'
    fi
done

REF=libacme-engine
[ -s "$BENCH_OUT/result.$REF" ] || REF=libacme-seq
# per certificate: wall ms, cpu ms
per_cert() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.1f", a * 1000 / n }'; }
echo
printf '%-16s %8s %8s %8s %8s %9s %9s | %8s %8s %8s\n' client "wall s" "cpu s" "peak MB" issued "wall ms/c" "cpu ms/c" "wall/ref" "cpu/ref" "rss/ref"
rwc="" rcc="" rm=""
if [ -s "$BENCH_OUT/result.$REF" ]; then
    read -r rw ru rs rm _ <"$BENCH_OUT/result.$REF"
    rwc=$(per_cert "$rw" "$(count_of "$REF")")
    rcc=$(per_cert "$(awk -v u="$ru" -v s="$rs" 'BEGIN { print u + s }')" "$(count_of "$REF")")
fi
for c in $RUN; do
    [ -s "$BENCH_OUT/result.$c" ] || { printf '%-16s %8s\n' "$c" "no result"; continue; }
    read -r wall user sys rss verified ok <"$BENCH_OUT/result.$c"
    n=$(count_of "$c")
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    wc_=$(per_cert "$wall" "$n")
    cc_=$(per_cert "$cpu" "$n")
    printf '%-16s %8s %8s %8s %8s %9s %9s | %8s %8s %8s\n' "$c" "$wall" "$cpu" \
        "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')" "$verified/$n" "$wc_" "$cc_" \
        "$(ratio "$wc_" "$rwc")" "$(ratio "$cc_" "$rcc")" "$(ratio "$rss" "$rm")"
done
echo "(ratios: client / $REF, per certificate; cpu = user+sys of the client and"
echo " its children; peak MB = the largest single process's max RSS)"
