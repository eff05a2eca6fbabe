#!/bin/bash
# acmectl with dns-persist-01 and dns-account-01 against the stand-in CA
# (tests/integration/dns_persist_ca_standin.py, which validates through a
# real knotd: tests/dns01/with-knot):
#   * `acmectl dns-persist NAME` prints the record to create and says DNS
#     does not answer it yet (exit 3); the record, created with knsupdate,
#     is then reported in place (exit 0); a wrong one is reported wrong;
#   * `acmectl issue --challenge dns-persist-01` with no DNS access at all
#     issues on that record, and again (the renewal needs no DNS change);
#   * `acmectl issue --challenge dns-account-01 --dns-provider` (the dns01
#     module, RFC 2136) issues, publishing at the account's label;
#   * `acmectl run` with `challenge = dns-persist-01` and no module issues.
# Under the stand-in's --hashed-accounturi (draft -02) only the first three,
# with the hashed accounturi computed here.
#   with-knot -- dns_persist_ca_standin.py --dnsserver {primary} -- acmectl_dns_persist.sh ACMECTL MODULE
set -euo pipefail
ACMECTL=${1:?usage: $0 ACMECTL DNS01_MODULE}
MODULE=${2:?usage: $0 ACMECTL DNS01_MODULE}
: "${DNS01_TEST_SERVER:?run under tests/dns01/with-knot}"
: "${ACME_TEST_DIRECTORY:?run under tests/integration/dns_persist_ca_standin.py}"
T=$ACME_TEST_TMPDIR
Z=$DNS01_TEST_ZONE
fail() { echo "acmectl_dns_persist: FAIL: $*" >&2; exit 1; }
host=${DNS01_TEST_SERVER%:*}
port=${DNS01_TEST_SERVER##*:}

nsupdate() {
    { echo "server $host $port"; echo "zone $Z."; cat; echo send; } |
        knsupdate -y "$DNS01_TEST_TSIG_ALGORITHM:$DNS01_TEST_TSIG_NAME:$DNS01_TEST_TSIG_SECRET"
}

actl() {
    "$ACMECTL" --directory "$ACME_TEST_DIRECTORY" --ca-file "$ACME_TEST_CA_FILE" \
        --state-dir "$T/state" --agree-tos "$@"
}

# 1. the record to create, not there yet
set +e
out=$(actl dns-persist "dev.$Z" --resolver "$DNS01_TEST_SERVER")
st=$?
set -e
[ "$st" = 3 ] || fail "dns-persist without a record: exit $st, want 3"
acct=$(actl account show | sed -n 's/^account: \(https:[^ ]*\)$/\1/p')
[ -n "$acct" ] || fail "account show printed no account URL"
line=$(printf '%s\n' "$out" | grep '^_validation-persist\.')
want="_validation-persist.dev.$Z. IN TXT \"$ACME_TEST_ISSUER_DOMAIN; accounturi="
case "$line" in "$want"https://*'"') ;; *) fail "dns-persist printed: $line" ;; esac
value=${line#*IN TXT \"}
value=${value%\"}
printf '%s\n' "$out" | grep -q "no TXT record" || fail "dns-persist did not say the record is missing: $out"
if [ -n "${ACME_TEST_ACCOUNT_HASH_PREFIX:-}" ]; then
    thumb=$(actl account show | sed -n 's/^key thumbprint: \(.*\)$/\1/p')
    [ -n "$thumb" ] || fail "account show printed no key thumbprint"
    # draft -02 §4.1, computed independently of libacme
    expect=$(python3 -c 'import base64,hashlib,sys
p,d,t,u=sys.argv[1:]
h=hashlib.sha256(bytes([len(d)])+d.encode()+t.encode()+u.encode()).digest()
print(p+"sha-256/"+base64.urlsafe_b64encode(h).rstrip(b"=").decode())' \
        "$ACME_TEST_ACCOUNT_HASH_PREFIX" "dev.$Z" "$thumb" "$acct")
    [ "$value" = "$ACME_TEST_ISSUER_DOMAIN; accounturi=$expect" ] || fail "record \"$value\", want hashed $expect"
else
    [ "$value" = "$ACME_TEST_ISSUER_DOMAIN; accounturi=$acct" ] || fail "record \"$value\" for account $acct"
fi

# 2. a wrong record (another CA) is reported wrong, then the right one in place
printf 'add _validation-persist.dev.%s. 60 TXT "other-ca.example; accounturi=%s"\n' "$Z" "${value#*accounturi=}" | nsupdate
set +e
out=$(actl dns-persist "dev.$Z" --resolver "$DNS01_TEST_SERVER")
st=$?
set -e
[ "$st" = 3 ] || fail "dns-persist with a wrong record: exit $st, want 3"
printf '%s\n' "$out" | grep -q "another CA" || fail "dns-persist did not say the record names another CA: $out"
printf 'del _validation-persist.dev.%s. TXT\nadd _validation-persist.dev.%s. 60 TXT "%s"\n' "$Z" "$Z" "$value" | nsupdate
out=$(actl dns-persist "dev.$Z" --resolver "$DNS01_TEST_SERVER") || fail "dns-persist with the record: $out"
printf '%s\n' "$out" | grep -q "in place" || fail "dns-persist did not report the record in place: $out"
# a wildcard asks for policy=wildcard
set +e
out=$(actl dns-persist "*.dev.$Z" --resolver "$DNS01_TEST_SERVER" --persist-until 4102444800)
st=$?
set -e
[ "$st" = 3 ] || fail "dns-persist *.dev: exit $st, want 3"
printf '%s\n' "$out" | grep -q "policy=wildcard; persistUntil=4102444800\"" || fail "wildcard record: $out"

# 3. issue on the record, no DNS credentials anywhere; twice
actl --challenge dns-persist-01 --out "$T/out" issue "dev.$Z" || fail "issue with dns-persist-01"
openssl x509 -in "$T/out/dev.$Z.crt" -noout -ext subjectAltName | grep -q "DNS:dev\.$Z" || fail "certificate names"
actl --challenge dns-persist-01 renew --force "dev.$Z" || fail "renew with dns-persist-01"
if [ -n "${ACME_TEST_ACCOUNT_HASH_PREFIX:-}" ]; then
    echo "acmectl_dns_persist: ok (hashed accounturi): dns-persist printed and checked the record, issue/renew on it"
    exit 0
fi

# 4. dns-account-01 through the module
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
actl --challenge dns-account-01 --dns-provider "$MODULE" --dns-config "$conf" --out "$T/out" issue "acct.$Z" \
    || fail "issue with dns-account-01"
[ -s "$T/out/acct.$Z.crt" ] || fail "no certificate for acct.$Z"

# 5. acmectl run, dns-persist-01 and nothing else
mkdir -p "$T/run-out"
cat >"$T/run.conf" <<RUN
[global]
directory = $ACME_TEST_DIRECTORY
ca-file = $ACME_TEST_CA_FILE
state-dir = $T/state
agree-tos = yes
challenge = dns-persist-01
out-dir = $T/run-out

[certificate]
names = dev.$Z
RUN
"$ACMECTL" --status-file "$T/status.json" run "$T/run.conf" >"$T/run.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
    [ -s "$T/run-out/dev.$Z.crt" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
[ -s "$T/run-out/dev.$Z.crt" ] || { cat "$T/run.log" >&2; fail "acmectl run did not issue with dns-persist-01"; }
echo "acmectl_dns_persist: ok: dns-persist (record printed and checked), issue/renew on it, dns-account-01 via the module, run"
