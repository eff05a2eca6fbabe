#!/usr/bin/env bash
# Failure cases: each must end in a clear error, with the old certificate
# still served and still on disk. Real HAProxy 2.6, real Pebble.
#
#  1. the admin socket does not exist
#  2. the map is not referenced by haproxy.cfg
#  3. permission denied: a socket at level user (HAProxy refuses
#     certificate commands); and, when not root, a socket file we may not
#     write to (root passes file permissions: the unit test covers it)
#  4. a certificate whose key does not match: HAProxy's commit refuses it
#     and the transaction is aborted
#  5. the same, for the certificate HAProxy already serves (no commit is
#     sent): the module's own check refuses to write it to disk
#  6. a transaction someone else left open: no certificate is set into it
set -eu
export TEST_NAME=it_haproxy_failures
# shellcheck source=tests/haproxy/lib.sh disable=SC1091
. "$HAP_SRC/lib.sh"
need

make_config
self_signed a.test "$CERTS/a.test.pem"
echo "$CERTS/a.test.pem" > "$CRT_LIST"
OLD=$(file_sha1 "$CERTS/a.test.pem")
hap_start
CONF="$W/module.conf"

# Nothing changed for a.test: served and on disk as $1, crt-list as before.
expect_kept() {
    expect_served a.test "$1" "$2"
    [ "$(file_sha1 "$CERTS/a.test.pem")" = "$1" ] || fail "$2: the file on disk changed"
    [ "$(cat "$CRT_LIST")" = "$CERTS/a.test.pem" ] || fail "$2: the crt-list file changed: $(cat "$CRT_LIST")"
    expect_clean "$2"
}

# 1 -----------------------------------------------------------------------
module_conf "$CONF" "socket=$W/run/nope.sock"
run_host "$W/state1" "$CONF" --challenge http-01 a.test
expect_error "socket missing" "ERROR publish a.test" "$W/run/nope.sock" "No such file" "stats socket"
expect_kept "$OLD" "socket missing"
say "ok: 1. socket missing"

# 2 -----------------------------------------------------------------------
: > "$W/etc/acme/other.map"
module_conf "$CONF" "map=$W/etc/acme/other.map"
run_host "$W/state2" "$CONF" --challenge http-01 a.test
expect_error "map not referenced" "ERROR publish a.test" "Unknown map identifier" "referenced by haproxy.cfg"
expect_kept "$OLD" "map not referenced"
say "ok: 2. map not referenced"

# 3 -----------------------------------------------------------------------
# HAProxy 2.6 lets level user change maps, so the order goes through and
# the install is refused.
module_conf "$CONF" "socket=$USER_SOCK"
run_host "$W/state3" "$CONF" --challenge http-01 a.test
expect_error "socket at level user" "ERROR install a.test" "level admin"
expect_kept "$OLD" "socket at level user"
if [ "$(id -u)" != 0 ]; then
    chmod 000 "$SOCK"
    module_conf "$CONF"
    run_host "$W/state3b" "$CONF" --challenge http-01 a.test
    chmod 600 "$SOCK"
    expect_error "socket not writable" "ERROR publish a.test" "Permission denied" "write access"
    expect_kept "$OLD" "socket not writable"
else
    say "running as root: the socket file permission case is left to test_hap_sock"
fi
say "ok: 3. permission denied"

# 4 -----------------------------------------------------------------------
module_conf "$CONF"
STATE="$W/state"
run_host "$STATE" "$CONF" --challenge http-01 a.test
expect_ok "issuing a.test"
FP1=$(installed_sha1 a.test)
[ -n "$FP1" ] || fail "no certificate for a.test"
expect_served a.test "$FP1" "issued"
cp "$CERTS/a.test.pem" "$W/a.good.pem"
CERT_JSON=$(ls "$STATE"/*/certs/a.test/cert.json)
cp "$CERT_JSON" "$W/cert.json.good"

# tamper CHAIN_FILE KEY_FILE: the stored certificate gets that chain and key.
tamper() {
    "$PY" - "$CERT_JSON" "$1" "$2" <<'EOF'
import json, sys
path, chain, key = sys.argv[1:]
with open(path) as f:
    o = json.load(f)
if chain != "-":
    o["chain"] = open(chain).read()
o["key"] = open(key).read()
with open(path, "w") as f:
    json.dump(o, f)
EOF
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/other.key" 2>/dev/null
self_signed a.test "$W/x.pem"
openssl x509 -in "$W/x.pem" -out "$W/x.crt"
tamper "$W/x.crt" "$W/other.key"
run_host "$STATE" "$CONF" --install-stored a.test
expect_error "mismatched key" "ERROR install a.test" "inconsistencies between private key and certificate" \
    "transaction aborted"
expect_served a.test "$FP1" "mismatched key"
cmp -s "$CERTS/a.test.pem" "$W/a.good.pem" || fail "mismatched key: the file on disk changed"
expect_clean "mismatched key"
say "ok: 4. mismatched key refused by HAProxy's commit, transaction aborted"

# 5 -----------------------------------------------------------------------
cp "$W/cert.json.good" "$CERT_JSON"
tamper - "$W/other.key"
run_host "$STATE" "$CONF" --install-stored a.test
expect_error "mismatched key, served certificate" "ERROR install a.test" "does not belong to the certificate" \
    "nothing written"
expect_served a.test "$FP1" "mismatched key, served certificate"
cmp -s "$CERTS/a.test.pem" "$W/a.good.pem" || fail "mismatched key, served certificate: the file on disk changed"
say "ok: 5. mismatched key for the served certificate refused before the disk"

# 6 -----------------------------------------------------------------------
cp "$W/cert.json.good" "$CERT_JSON"
self_signed other.test "$W/other.test.pem"
hapctl "new ssl cert $W/foreign.pem" | grep -q "New empty" || fail "new ssl cert"
hapctl "set ssl cert $W/foreign.pem" "$W/other.test.pem" | grep -q "Transaction created" || fail "set ssl cert"
# A new certificate for a.test (the stored one is served already).
run_host "$STATE" "$CONF" --challenge http-01 --max-age 1 a.test
expect_error "foreign transaction" "ERROR install a.test" "open certificate transaction for $W/foreign.pem"
hapctl "show ssl cert" | grep -qx "\*$W/foreign.pem" || fail "the foreign transaction was touched: $(hapctl "show ssl cert")"
hapctl "abort ssl cert $W/foreign.pem" | grep -q "aborted" || fail "abort ssl cert"
expect_served a.test "$FP1" "foreign transaction"
cmp -s "$CERTS/a.test.pem" "$W/a.good.pem" || fail "foreign transaction: the file on disk changed"
say "ok: 6. a transaction someone else opened is left alone"

say "PASS"
