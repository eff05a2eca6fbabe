#!/bin/bash
# acmectl run hosting the HAProxy module (modules/haproxy) against a real
# HAProxy 2.6 running examples/haproxy.cfg, and Pebble:
#
#   a.test already has a (self-signed) certificate, b.test has none.
#   One configuration file, two [certificate] sections: both are issued by
#   http-01 through HAProxy's map, served by the same HAProxy process (no
#   reload), written to cert-dir (0600) and out-dir, b.test added to the
#   crt-list; nothing is left in the map. SIGTERM: exit 0, promptly.
#
# Uses tests/haproxy/lib.sh for HAProxy (start, stop, what it serves).
# Needs HAPROXY (the binary), HAP_MODULE, HAP_SRC, HAP_EXAMPLE; without a
# haproxy binary the test is skipped (exit 77).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -z "${HAPROXY:-}" ] || [ ! -x "$HAPROXY" ]; then
    echo "run_haproxy: SKIP: haproxy is not installed (Debian package haproxy)" >&2
    exit 77
fi
: "${HAP_MODULE:?}" "${HAP_SRC:?}" "${HAP_EXAMPLE:?}"
export TEST_NAME=run_haproxy
# shellcheck source=tests/haproxy/lib.sh disable=SC1091
. "$HAP_SRC/lib.sh"
. "$(dirname "$0")/run_lib.sh"
trap 'run_cleanup; hap_stop' EXIT

make_config
self_signed a.test "$CERTS/a.test.pem"
echo "$CERTS/a.test.pem" >"$CRT_LIST"
OLD=$(file_sha1 "$CERTS/a.test.pem")
hap_start
FIRST_PID=$HAP_PID
expect_served a.test "$OLD" "before"

CONF=$T/run.conf
STATUS=$T/status.json
run_global "$CONF" <<EOF
# No http-port: HAProxy has port 80, the module answers http-01 in it.
challenge = http-01
out-dir = $T/out
status-file = $STATUS

[module haproxy]
path = $HAP_MODULE
socket = $SOCK
map = $MAP
alpn-crt-list = $ALPN_LIST
cert-dir = $CERTS
crt-list = $CRT_LIST
timeout = 2000

[certificate a.test]
names = a.test

[certificate b.test]
names = b.test
EOF
run_start "$CONF"
wait_status "$STATUS" 'len(s) == 2 and all(c["state"] == "valid" for c in s)' "a.test and b.test"
wait_log "haproxy: certificate b.test installed: HAProxy serves it" "b.test installed (the module's own line, from its thread)"
grep -q "http-01 for a.test: handed to module haproxy" "$RUN_LOG" || { run_dump; fail "a.test's challenge did not go through the module"; }
grep -q "module haproxy (haproxy): answers http-01, tls-alpn-01; installs certificates" "$RUN_LOG" ||
    { run_dump; fail "the module's abilities are not reported"; }

FPA=$(file_sha1 "$CERTS/a.test.pem")
FPB=$(file_sha1 "$CERTS/b.test.pem")
[ -n "$FPA" ] && [ "$FPA" != "$OLD" ] || fail "no new certificate for a.test on disk"
[ -n "$FPB" ] || fail "no certificate for b.test on disk"
expect_served a.test "$FPA" "a.test after issuance"
expect_served b.test "$FPB" "b.test after issuance"
[ "$(file_sha1 "$T/out/a.test.crt")" = "$FPA" ] || fail "out-dir has not the certificate HAProxy serves"
[ "$(stat -c %a "$CERTS/a.test.pem")" = 600 ] || fail "the certificate file is not 0600"
grep -qx "$CERTS/b.test.pem" "$CRT_LIST" || fail "b.test is not in the crt-list file: $(cat "$CRT_LIST")"
if [ "$HAP_PID" != "$FIRST_PID" ] || ! kill -0 "$FIRST_PID"; then fail "HAProxy was restarted"; fi
[ "$(grep -c '^---- start' "$W/haproxy.log")" = 1 ] || fail "HAProxy was started more than once"
expect_clean "after issuance"
pass "issued through HAProxy's map, served without a reload, on disk"

run_stop
kill -0 "$FIRST_PID" || fail "HAProxy is gone"
expect_served a.test "$FPA" "after acmectl stopped"
pass "SIGTERM: exit 0; HAProxy keeps serving"
echo "run_haproxy: PASS"
