#!/bin/bash
# acmectl with the dns01 module's RFC 2136 back end against a real knotd
# (tests/dns01/with-knot) and a real Pebble that resolves through it: a
# name, then a wildcard with its base name; afterwards no _acme-challenge
# TXT record is left on either authoritative server.
#   with-knot -- with-pebble --dnsserver {primary} -- acmectl_rfc2136.sh ACMECTL MODULE
set -euo pipefail
ACMECTL=${1:?usage: $0 ACMECTL DNS01_MODULE}
MODULE=${2:?usage: $0 ACMECTL DNS01_MODULE}
: "${DNS01_TEST_SERVER:?run under tests/dns01/with-knot}"
: "${ACME_TEST_DIRECTORY:?run under tests/harness/with-pebble}"
T=$ACME_TEST_TMPDIR
fail() { echo "acmectl_rfc2136: FAIL: $*" >&2; exit 1; }

conf=$T/dns01.conf
umask 077
cat >"$conf" <<CONF
backend = rfc2136
server = $DNS01_TEST_SERVER
tsig-key-name = $DNS01_TEST_TSIG_NAME
tsig-algorithm = $DNS01_TEST_TSIG_ALGORITHM
tsig-secret = $DNS01_TEST_TSIG_SECRET
ttl = 5
resolver = $DNS01_TEST_SERVER
nameserver-port = $DNS01_TEST_PORT
propagation-timeout = 30
propagation-interval = 100
CONF

actl() {
    "$ACMECTL" --directory "$ACME_TEST_DIRECTORY" --ca-file "$ACME_TEST_CA_FILE" \
        --state-dir "$T/state" --agree-tos --dns-provider "$MODULE" --dns-config "$conf" \
        --challenge dns-01 --out "$T/out" "$@"
}

actl issue "www.$DNS01_TEST_ZONE" || fail "issue www.$DNS01_TEST_ZONE"
actl issue "*.$DNS01_TEST_ZONE" "$DNS01_TEST_ZONE" || fail "issue the wildcard and its base name"

for id in "www.$DNS01_TEST_ZONE" "_.$DNS01_TEST_ZONE"; do
    [ -s "$T/out/$id.crt" ] || fail "no certificate $T/out/$id.crt"
done
openssl x509 -in "$T/out/_.$DNS01_TEST_ZONE.crt" -noout -ext subjectAltName | grep -q "DNS:\*\.$DNS01_TEST_ZONE" \
    || fail "the wildcard certificate does not name *.$DNS01_TEST_ZONE"

# Nothing left behind, at either server. The removal reaches the
# secondary by zone transfer, a moment after the primary: wait for it, a
# bounded 10 s.
port=${DNS01_TEST_PORT}
for server in 127.0.0.1 127.0.0.2; do
    for name in "_acme-challenge.www.$DNS01_TEST_ZONE" "_acme-challenge.$DNS01_TEST_ZONE"; do
        for _ in $(seq 100); do
            left=$(kdig +short -p "$port" @"$server" "$name" TXT)
            [ -z "$left" ] && break
            sleep 0.1
        done
        [ -z "$left" ] || fail "$server still answers $name TXT after 10 s: $left"
    done
done
echo "acmectl_rfc2136: ok: acmectl --dns-provider (RFC 2136 + TSIG) issued a name and a wildcard; no TXT left"
