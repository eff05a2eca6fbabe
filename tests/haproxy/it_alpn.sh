#!/usr/bin/env bash
# tls-alpn-01 through the splitter of examples/haproxy.cfg, for a name
# that already has a certificate (the case where a challenge certificate
# in the normal crt-list would be shadowed). Real HAProxy 2.6, real Pebble.
#
#  1. before: acme-tls/1 for a.test finds no certificate (strict-sni, empty
#     list); a normal client gets a.test's certificate.
#  2. with a challenge certificate published by hand (the commands the
#     module sends), an acme-tls/1 client gets it and a normal client still
#     gets a.test's own certificate. It stays behind as a stale one (a
#     crash, say) that the module must replace.
#  3. issue a.test by tls-alpn-01: served at once, on disk; the challenge
#     certificate and its crt-list line are gone afterwards.
set -eu
export TEST_NAME=it_haproxy_alpn
# shellcheck source=tests/haproxy/lib.sh disable=SC1091
. "$HAP_SRC/lib.sh"
need

make_config
self_signed a.test "$CERTS/a.test.pem"
echo "$CERTS/a.test.pem" > "$CRT_LIST"
OLD=$(file_sha1 "$CERTS/a.test.pem")
hap_start
CONF="$W/module.conf"
module_conf "$CONF"
STATE="$W/state"

# What an acme-tls/1 client for $1 gets (empty if the handshake fails).
alpn_sha1() {
    openssl s_client -connect "127.0.0.1:$T_PORT" -servername "$1" -alpn acme-tls/1 </dev/null 2>/dev/null \
        | openssl x509 -noout -fingerprint -sha1 2>/dev/null | sed 's/.*=//; s/://g'
}

# 1 -----------------------------------------------------------------------
[ -z "$(alpn_sha1 a.test)" ] || fail "an acme-tls/1 client got a certificate before any challenge"
expect_served a.test "$OLD" "before"
say "ok: 1. acme-tls/1 finds nothing; normal clients get a.test's certificate"

# 2 -----------------------------------------------------------------------
# Publish a challenge certificate by hand through the same commands the
# module uses, then look at both sides of the splitter.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=a.test" \
    -addext "subjectAltName=DNS:a.test" -keyout "$W/ch.key" -out "$W/ch.crt" 2>/dev/null
cat "$W/ch.crt" "$W/ch.key" > "$W/ch.pem"
CH=$(file_sha1 "$W/ch.pem")
hapctl "new ssl cert /acme-tls-alpn-01/a.test.pem" | grep -q "New empty" || fail "new ssl cert"
hapctl "set ssl cert /acme-tls-alpn-01/a.test.pem" "$W/ch.pem" | grep -q "Transaction created" || fail "set ssl cert"
hapctl "commit ssl cert /acme-tls-alpn-01/a.test.pem" | grep -q "Success!" || fail "commit ssl cert"
echo "/acme-tls-alpn-01/a.test.pem a.test" > "$W/line"
hapctl "add ssl crt-list $ALPN_LIST" "$W/line" | grep -q "Success!" || fail "add ssl crt-list"
[ "$(alpn_sha1 a.test)" = "$CH" ] || fail "an acme-tls/1 client did not get the challenge certificate"
expect_served a.test "$OLD" "while a challenge certificate is up"
say "ok: 2. the challenge certificate goes to acme-tls/1 clients only"
# The module must clean up after this stale one (an earlier crash, say).

# 3 -----------------------------------------------------------------------
run_host "$STATE" "$CONF" --challenge tls-alpn-01 a.test
expect_ok "issuing a.test by tls-alpn-01"
grep -q "publishing tls-alpn-01 for a.test" "$HOST_LOG" || fail "the order did not use tls-alpn-01"
FP=$(installed_sha1 a.test)
if [ -z "$FP" ] || [ "$FP" = "$OLD" ]; then fail "no new certificate for a.test"; fi
expect_served a.test "$FP" "after issuance"
[ "$(file_sha1 "$CERTS/a.test.pem")" = "$FP" ] || fail "the new certificate is not on disk"
expect_clean "after issuance"
hapctl "show ssl cert" | grep -q acme-tls-alpn-01 && fail "challenge certificates left in HAProxy: $(hapctl "show ssl cert")"
[ -z "$(alpn_sha1 a.test)" ] || fail "acme-tls/1 still answers for a.test"
say "ok: 3. issued through the acme-tls/1 bind; normal certificate replaced, challenge gone"

say "PASS"
