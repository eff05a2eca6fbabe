# shellcheck shell=bash
# Shared by the tests/haproxy scripts (sourced; bash). Each script runs
# under tests/harness/with-pebble and gets from meson:
#   HAP_MODULE   the built acme_haproxy.so
#   HAP_HOST     the built haproxy_host
#   HAPROXY      the haproxy binary (Debian's 2.6)
#   HAP_SRC      this directory (hapctl.py), HAP_EXAMPLE the shipped examples/haproxy.cfg
#
# The HAProxy under test runs examples/haproxy.cfg itself, with only what
# a test must change replaced: paths under $W, the two ports Pebble
# validates on, abns names unique to this run, no user/group/syslog, and a
# second admin socket at level user for the permission test.

set -u

W="$ACME_TEST_TMPDIR/hap"
H_PORT="$ACME_TEST_HTTP_PORT"
T_PORT="$ACME_TEST_TLS_PORT"
CFG="$W/haproxy.cfg"
SOCK="$W/run/admin.sock"
USER_SOCK="$W/run/user.sock"
MAP="$W/etc/acme/challenges.map"
ALPN_LIST="$W/etc/acme/acme-tls.crt-list"
CRT_LIST="$W/etc/certs.crt-list"
CERTS="$W/etc/certs"
HAP_PID=""
# The system's python3 when there is one: a version manager's shim can
# take seconds to start, and hapctl runs often.
PY=$(command -v /usr/bin/python3 || command -v python3 || echo python3)
TEST_NAME="${TEST_NAME:-haproxy}"
N_HOST=0

say() { printf '%s %s: %s\n' "$(date +%T.%2N)" "$TEST_NAME" "$*" >&2; }

fail() {
    say "FAIL: $*"
    if [ -f "$W/haproxy.log" ]; then
        say "---- last lines of HAProxy's log"
        tail -n 15 "$W/haproxy.log" >&2
    fi
    exit 1
}

cleanup() {
    hap_stop
}
trap cleanup EXIT

need() {
    for v in HAP_MODULE HAP_HOST HAPROXY HAP_SRC HAP_EXAMPLE; do
        eval "val=\${$v:-}"
        [ -n "$val" ] || fail "$v is not set (run through meson test)"
    done
    for t in openssl python3; do
        command -v "$t" >/dev/null || fail "$t is needed"
    done
}

# ---- HAProxy --------------------------------------------------------------

# The example configuration, made runnable here. Every replacement is
# checked, so a change to the example that breaks the test set-up fails
# loudly instead of testing something else.
make_config() {
    mkdir -p "$W/run" "$W/etc/acme" "$CERTS"
    local uniq
    uniq="hapt-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
    sed -E \
        -e '/^[[:space:]]*(log|user|group)[[:space:]]/d' \
        -e "s#/run/haproxy/admin.sock#$SOCK#" \
        -e "s#/etc/haproxy/#$W/etc/#g" \
        -e "s#^([[:space:]]*bind) :80\$#\\1 127.0.0.1:$H_PORT#" \
        -e "s#^([[:space:]]*bind) :443\$#\\1 127.0.0.1:$T_PORT#" \
        -e "s#abns@haproxy-#abns@$uniq-#g" \
        "$HAP_EXAMPLE" > "$CFG.tmp" || fail "cannot read $HAP_EXAMPLE"
    # The permission test's socket, right after the admin one.
    sed -i -E "s#^([[:space:]]*stats socket $SOCK .*)\$#\\1\\n    stats socket $USER_SOCK mode 600 level user#" "$CFG.tmp"
    for want in "stats socket $SOCK " "stats socket $USER_SOCK " "bind 127.0.0.1:$H_PORT" \
                "bind 127.0.0.1:$T_PORT" "map($MAP)" "crt-list $ALPN_LIST strict-sni alpn acme-tls/1" \
                "crt-list $CRT_LIST " "abns@$uniq-acme-tls" "abns@$uniq-https"; do
        grep -qF -- "$want" "$CFG.tmp" || fail "examples/haproxy.cfg changed: no \"$want\" after the replacements"
    done
    if grep -nE '/etc/haproxy|/run/haproxy|bind :|abns@haproxy-' "$CFG.tmp" >&2; then
        fail "examples/haproxy.cfg has paths or binds the test does not know how to move"
    fi
    mv "$CFG.tmp" "$CFG"
    : > "$MAP"
    : > "$ALPN_LIST"
    [ -f "$CRT_LIST" ] || : > "$CRT_LIST"
}

# In the foreground (-db) in the background of this script: its pid is ours.
hap_start() {
    "$HAPROXY" -c -f "$CFG" >"$W/check.log" 2>&1 || { cat "$W/check.log" >&2; fail "haproxy -c refused the configuration"; }
    rm -f "$SOCK" "$USER_SOCK"
    echo "---- start $(date +%T)" >> "$W/haproxy.log"
    "$HAPROXY" -f "$CFG" -db >> "$W/haproxy.log" 2>&1 &
    HAP_PID=$!
    local _
    for _ in $(seq 1 100); do
        if [ -S "$SOCK" ] && "$PY" "$HAP_SRC/hapctl.py" "$SOCK" "show info" 2>/dev/null | grep -q '^Pid:'; then
            return 0
        fi
        kill -0 "$HAP_PID" 2>/dev/null || fail "HAProxy exited at start"
        sleep 0.1
    done
    fail "HAProxy did not answer on $SOCK in 10 s"
}

hap_stop() {
    if [ -n "$HAP_PID" ]; then
        kill "$HAP_PID" 2>/dev/null || true
        wait "$HAP_PID" 2>/dev/null || true
        HAP_PID=""
    fi
}

hap_restart() {
    hap_stop
    hap_start
}

hapctl() {
    "$PY" "$HAP_SRC/hapctl.py" "$SOCK" "$@"
}

# ---- certificates -----------------------------------------------------------

# SHA-1 of a PEM file's first certificate: upper-case hex, no colons.
file_sha1() {
    openssl x509 -in "$1" -noout -fingerprint -sha1 2>/dev/null | sed 's/.*=//; s/://g'
}

# SHA-1 of what a normal TLS client gets for SNI $1 on the TLS port.
served_sha1() {
    openssl s_client -connect "127.0.0.1:$T_PORT" -servername "$1" </dev/null 2>/dev/null \
        | openssl x509 -noout -fingerprint -sha1 2>/dev/null | sed 's/.*=//; s/://g'
}

# A self-signed P-256 certificate + key for name $1 in file $2: "a
# certificate the site already has".
self_signed() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 \
        -subj "/CN=$1" -addext "subjectAltName=DNS:$1" -keyout "$W/ss.key" -out "$W/ss.crt" 2>/dev/null \
        || fail "openssl could not make a self-signed certificate"
    cat "$W/ss.crt" "$W/ss.key" > "$2"
    chmod 600 "$2"
    rm -f "$W/ss.key" "$W/ss.crt"
}

# ---- the host -----------------------------------------------------------------

# module_conf FILE [key=value...]: the module's configuration for this
# HAProxy, with overrides.
module_conf() {
    local f="$1"
    shift
    {
        echo "# written by tests/haproxy/lib.sh"
        echo "socket = $SOCK"
        echo "map = $MAP"
        echo "alpn-crt-list = $ALPN_LIST"
        echo "cert-dir = $CERTS"
        echo "crt-list = $CRT_LIST"
        echo "timeout = 2000"
    } > "$f"
    local kv k
    for kv in "$@"; do
        k="${kv%%=*}"
        sed -i "/^$k = /d" "$f"
        echo "$k = ${kv#*=}" >> "$f"
    done
}

# run_host STATE CONF [haproxy_host options and names]: output in $OUT
# (stdout) and $W/host-N.log (stderr); status in $RC.
run_host() {
    local state="$1" conf="$2"
    shift 2
    N_HOST=$((N_HOST + 1))
    local log="$W/host-$N_HOST.log"
    set +e
    OUT=$("$HAP_HOST" --state "$state" --module "$HAP_MODULE" --config "$conf" "$@" 2>"$log")
    RC=$?
    set -e
    HOST_LOG="$log"
    printf '%s\n' "$OUT" | sed "s/^/  host: /" >&2
}

host_failed_tail() {
    say "---- the host's log ($HOST_LOG)"
    tail -n 25 "$HOST_LOG" >&2
}

expect_ok() {
    [ "$RC" -eq 0 ] || { host_failed_tail; fail "$1: haproxy_host exited $RC"; }
}

# expect_error WHAT TEXT...: the host failed, and its ERROR line has every TEXT.
expect_error() {
    local what="$1"
    shift
    [ "$RC" -ne 0 ] || fail "$what: haproxy_host succeeded but should have failed"
    local line
    line=$(printf '%s\n' "$OUT" | grep '^ERROR ' | head -n 1)
    [ -n "$line" ] || { host_failed_tail; fail "$what: no ERROR line"; }
    local t
    for t in "$@"; do
        printf '%s' "$line" | grep -qF -- "$t" || { host_failed_tail; fail "$what: the error does not say \"$t\": $line"; }
    done
    say "ok: $what: ${line#ERROR }"
}

# The SHA-1 the host printed for certificate id $1.
installed_sha1() {
    printf '%s\n' "$OUT" | awk -v id="$1" '$1 == "INSTALLED" && $2 == id { print $3 }' | tail -n 1
}

expect_served() {
    local name="$1" want="$2" what="$3" got
    got=$(served_sha1 "$name")
    [ -n "$got" ] || fail "$what: no certificate served for $name"
    [ "$got" = "$want" ] || fail "$what: $name serves $got, expected $want"
}

# No challenge left behind: the map and the acme-tls/1 list are empty, no
# certificate transaction is open.
expect_clean() {
    local what="$1"
    hapctl "show map $MAP" | grep -q '^0x' && fail "$what: entries left in the map: $(hapctl "show map $MAP")"
    hapctl "show ssl crt-list $ALPN_LIST" | grep -v '^#' | grep -q . && fail "$what: challenge certificates left in $ALPN_LIST"
    hapctl "show ssl cert" | grep -q '^# transaction' && fail "$what: a certificate transaction is open: $(hapctl "show ssl cert")"
    return 0
}
