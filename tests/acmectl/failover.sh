#!/bin/bash
# failover (issue 14 part 3): --directory given twice. The first CA is a
# loopback port nobody listens on, so `issue` fails over to the second
# Pebble (with-pebble --second); the state directory says which CA issued
# and why; a later `renew --force` goes straight to that CA; a failure that
# is ours (a validation that cannot work) does not fail over; and the
# first real Pebble, once stopped, is replaced by the second on renewal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${ACME_TEST_DIRECTORY2:?run this under with-pebble --second}"

# A free port, closed again: connections to it are refused.
DOWN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DOWN="https://127.0.0.1:$DOWN_PORT/dir"
OUT=$T/out

two() {  # acmectl with CA list: $1 $2 directories, then the arguments
    local d1=$1 d2=$2
    shift 2
    "$ACMECTL" --directory "$d1" --directory "$d2" --ca-file "$ACME_TEST_CA_FILE" --state-dir "$STATE" \
        --http-port "$ACME_TEST_HTTP_PORT" --tls-port "$ACME_TEST_TLS_PORT" --bind 127.0.0.1 "$@"
}
root2() {
    curl -sS --fail --cacert "$ACME_TEST_CA_FILE" "$ACME_TEST_MGMT2/roots/0" -o "$T/root2.pem" ||
        fail "cannot fetch the second Pebble's root"
    echo "$T/root2.pem"
}
verify_with() {  # chain root
    certtool --verify --load-ca-certificate "$2" --infile "$1" >"$T/verify.out" 2>&1
}
record() { cat "$STATE/failover/$1.json"; }

rc=0
two "$DOWN" "$ACME_TEST_DIRECTORY2" --challenge http-01 --agree-tos --out "$OUT" issue fo.example.com \
    >"$T/issue.stdout" 2>"$T/issue.stderr" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/issue.stderr" >&2; fail "issue with the first CA down exited $rc"; }
verify_with "$OUT/fo.example.com.crt" "$(root2)" || fail "the certificate is not from the second Pebble"
json_check "$STATE/failover/fo.example.com.json" 'j["ca"] == "ca2" and j["failover"] is True and "CA ca1: " in j["reason"] and "could not reach" in j["reason"]' "failover record"
grep -q "fo.example.com comes from ca2" "$T/issue.stderr" || fail "issue did not say which CA issued: $(cat "$T/issue.stderr")"
pass "first CA down: the second issued; state says ca2 and why ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason"][:80])' "$STATE/failover/fo.example.com.json")...)"

serial=$(leaf_serial "$OUT/fo.example.com.crt")
start=$(date +%s)
two "$DOWN" "$ACME_TEST_DIRECTORY2" --out "$OUT" --json renew --force fo.example.com \
    >"$T/renew.stdout" 2>"$T/renew.stderr" || { cat "$T/renew.stderr" >&2; fail "renew --force failed"; }
took=$(( $(date +%s) - start ))
json_check "$T/renew.stdout" 'j["certificates"][0]["renewed"] is True' "renewed"
[ "$(leaf_serial "$OUT/fo.example.com.crt")" != "$serial" ] || fail "renew --force left the old certificate"
verify_with "$OUT/fo.example.com.crt" "$(root2)" || fail "the renewal is not from the second Pebble"
[ "$took" -lt 6 ] || fail "renew took $took s: it tried the down CA first (its retries take 7 s)"
json_check "$STATE/failover/fo.example.com.json" 'j["ca"] == "ca2"' "choice kept"
pass "a new run renews at the CA chosen before, at once (${took} s)"

# Renewing everything lists the certificates of every CA.
two "$DOWN" "$ACME_TEST_DIRECTORY2" --json renew >"$T/all.stdout" 2>"$T/all.stderr" ||
    { cat "$T/all.stderr" >&2; fail "renew (all) failed"; }
json_check "$T/all.stdout" '[c["id"] for c in j["certificates"]] == ["fo.example.com"]' "renew lists the second CA's certificates"
pass "renew without ids finds the certificate at the second CA"

# Ours to fix: validation cannot work (a port nobody serves): no failover.
rc=0
"$ACMECTL" --directory "$ACME_TEST_DIRECTORY" --directory "$ACME_TEST_DIRECTORY2" --ca-file "$ACME_TEST_CA_FILE" \
    --state-dir "$STATE" --http-port "$DOWN_PORT" --bind 127.0.0.1 --challenge http-01 --agree-tos \
    issue ours.example.com >"$T/ours.stdout" 2>"$T/ours.stderr" || rc=$?
[ "$rc" -ne 0 ] || fail "issued although validation cannot reach the responder"
grep -q "not a failure another CA can help with" "$T/ours.stderr" ||
    fail "the error does not say why the next CA was not tried: $(cat "$T/ours.stderr")"
[ ! -e "$STATE/failover/ours.example.com.json" ] || fail "a choice was stored for a failed issue"
pass "a failed validation stays at the first CA (exit $rc)"

# The first real Pebble issues, then stops: the renewal moves to the second.
two "$ACME_TEST_DIRECTORY" "$ACME_TEST_DIRECTORY2" --challenge http-01 --agree-tos --out "$OUT" issue one.example.com \
    >"$T/one.stdout" 2>"$T/one.stderr" || { cat "$T/one.stderr" >&2; fail "issue at the first Pebble failed"; }
verify_chain "$OUT/one.example.com.crt"
json_check "$STATE/failover/one.example.com.json" 'j["ca"] == "ca1" and j["failover"] is False' "first CA record"
kill "$ACME_TEST_PEBBLE_PID"
for _ in $(seq 50); do kill -0 "$ACME_TEST_PEBBLE_PID" 2>/dev/null || break; sleep 0.1; done
two "$ACME_TEST_DIRECTORY" "$ACME_TEST_DIRECTORY2" --out "$OUT" renew --force one.example.com \
    >"$T/one-renew.stdout" 2>"$T/one-renew.stderr" || { cat "$T/one-renew.stderr" >&2; fail "no failover renewal"; }
verify_with "$OUT/one.example.com.crt" "$(root2)" || fail "the renewal is not from the second Pebble"
json_check "$STATE/failover/one.example.com.json" 'j["ca"] == "ca2" and j["failover"] is True and "CA ca1: " in j["reason"]' "failover on renewal"
pass "first Pebble stopped: renew --force issued at the second"

rc=0
two "$ACME_TEST_DIRECTORY" "$ACME_TEST_DIRECTORY2" account show >"$T/acct.stdout" 2>"$T/acct.stderr" || rc=$?
[ "$rc" -eq 1 ] && grep -q "only issue and renew" "$T/acct.stderr" || fail "account with two --directory: exit $rc"
pass "other commands refuse a second --directory"
echo "failover: PASS"
