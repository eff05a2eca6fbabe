#!/usr/bin/env bash
# http-01 through HAProxy's map, hot install, restart, a new name at run
# time, and a HAProxy that is down at install time. Real HAProxy 2.6 with
# examples/haproxy.cfg, real Pebble (tests/harness/with-pebble).
#
#  1. a.test already has a (self-signed) certificate; issue one through the
#     map: served at once, same HAProxy process, on disk 0600, map empty.
#  2. renew it (max age): the served certificate changes without a reload.
#  3. restart HAProxy: the renewed one is still served (from disk).
#  4. b.test, a name HAProxy does not serve: new ssl cert + add ssl
#     crt-list, served at once and after a restart (crt-list file updated).
#  5. HAProxy stopped during install: a clear error, and the certificate is
#     on disk so that the next start serves it.
set -eu
export TEST_NAME=it_haproxy_http01
# shellcheck source=tests/haproxy/lib.sh disable=SC1091
. "$HAP_SRC/lib.sh"
need

make_config
self_signed a.test "$CERTS/a.test.pem"
echo "$CERTS/a.test.pem" > "$CRT_LIST"
OLD=$(file_sha1 "$CERTS/a.test.pem")
hap_start
FIRST_PID=$HAP_PID
expect_served a.test "$OLD" "before"
CONF="$W/module.conf"
module_conf "$CONF"
STATE="$W/state"

# 1 -----------------------------------------------------------------------
run_host "$STATE" "$CONF" --challenge http-01 a.test
expect_ok "issuing a.test by http-01"
grep -q "publishing http-01 for a.test" "$HOST_LOG" || fail "the order did not use http-01"
FP1=$(installed_sha1 a.test)
if [ -z "$FP1" ] || [ "$FP1" = "$OLD" ]; then fail "no new certificate for a.test"; fi
expect_served a.test "$FP1" "after issuance"
[ "$(file_sha1 "$CERTS/a.test.pem")" = "$FP1" ] || fail "the file on disk is not the new certificate"
[ "$(stat -c %a "$CERTS/a.test.pem")" = 600 ] || fail "the certificate file is not 0600"
grep -q 'PRIVATE KEY' "$CERTS/a.test.pem" || fail "no key in the certificate file"
if find "$CERTS" -name '.*' -type f | grep -q .; then fail "temporary files left in $CERTS"; fi
[ "$(grep -c . "$CRT_LIST")" = 1 ] || fail "the crt-list file changed for a name it already had: $(cat "$CRT_LIST")"
kill -0 "$FIRST_PID" || fail "HAProxy is gone"
expect_clean "after issuance"
say "ok: 1. issued through the map and served at once"

# 2 -----------------------------------------------------------------------
sleep 2
run_host "$STATE" "$CONF" --challenge http-01 --max-age 1 a.test
expect_ok "renewing a.test"
FP2=$(installed_sha1 a.test)
if [ -z "$FP2" ] || [ "$FP2" = "$FP1" ]; then fail "the renewal installed no new certificate"; fi
expect_served a.test "$FP2" "after renewal"
if [ "$HAP_PID" != "$FIRST_PID" ] || ! kill -0 "$FIRST_PID"; then fail "HAProxy was restarted"; fi
grep -c '^---- start' "$W/haproxy.log" | grep -qx 1 || fail "HAProxy was started more than once"
[ "$(file_sha1 "$CERTS/a.test.pem")" = "$FP2" ] || fail "the renewed certificate is not on disk"
expect_clean "after renewal"
say "ok: 2. renewed certificate served without a reload ($FP1 -> $FP2)"

# 3 -----------------------------------------------------------------------
hap_restart
expect_served a.test "$FP2" "after a restart"
say "ok: 3. after a restart HAProxy still serves the renewed certificate"

# 4 -----------------------------------------------------------------------
run_host "$STATE" "$CONF" --challenge http-01 b.test
expect_ok "issuing b.test"
FPB=$(installed_sha1 b.test)
[ -n "$FPB" ] || fail "no certificate for b.test"
expect_served b.test "$FPB" "new name at run time"
expect_served a.test "$FP2" "a.test next to the new name"
grep -qx "$CERTS/b.test.pem" "$CRT_LIST" || fail "b.test is not in the crt-list file: $(cat "$CRT_LIST")"
hapctl "show ssl crt-list $CRT_LIST" | grep -q "^$CERTS/b.test.pem" || fail "b.test is not in HAProxy's crt-list"
hap_restart
expect_served b.test "$FPB" "new name after a restart"
expect_served a.test "$FP2" "a.test after the second restart"
say "ok: 4. a new name added at run time is served, also after a restart"

# 5 -----------------------------------------------------------------------
run_host "$STATE" "$CONF" --challenge http-01 --no-install c.test
expect_ok "issuing c.test without installing"
FPC=$(installed_sha1 c.test)
[ -n "$FPC" ] || fail "no certificate for c.test"
[ -e "$CERTS/c.test.pem" ] && fail "c.test was installed despite --no-install"
hap_stop
run_host "$STATE" "$CONF" --install-stored c.test
expect_error "install while HAProxy is down" "ERROR install c.test" "$SOCK" "written to $CERTS/c.test.pem" \
    "next start"
[ "$(file_sha1 "$CERTS/c.test.pem")" = "$FPC" ] || fail "c.test is not on disk"
grep -qx "$CERTS/c.test.pem" "$CRT_LIST" || fail "c.test is not in the crt-list file"
hap_start
expect_served c.test "$FPC" "c.test after HAProxy came back"
expect_served a.test "$FP2" "a.test after HAProxy came back"
say "ok: 5. HAProxy down: clear error, certificate on disk, served at the next start"

say "PASS"
