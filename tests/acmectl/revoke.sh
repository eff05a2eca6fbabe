#!/bin/bash
# revoke: by the account key, and with --key by the certificate's key;
# Pebble's management interface then reports the serial as Revoked.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

status_of() {
    curl -sS --cacert "$ACME_TEST_CA_FILE" "$ACME_TEST_MGMT/cert-status-by-serial/$1"
}

OUT=$T/out
expect_status 0 "$T/issue" --challenge http-01 --agree-tos --out "$OUT" issue revoke.example.com
serial=$(leaf_serial "$OUT/revoke.example.com.crt")
status_of "$serial" | grep -q '"Status": *"Valid"' || fail "Pebble does not know $serial as valid: $(status_of "$serial")"

expect_status 0 "$T/revoke" --json revoke "$OUT/revoke.example.com.crt" --reason superseded
json_check "$T/revoke.stdout" 'j["ok"] is True and j["command"] == "revoke"' "revoke --json"
status_of "$serial" | grep -q '"Status": *"Revoked"' || fail "not revoked: $(status_of "$serial")"
pass "revoked with the account key"

expect_status 6 "$T/again" --json revoke "$OUT/revoke.example.com.crt"
json_check "$T/again.stdout" '"alreadyRevoked" in j["error"]["problem"]["type"]' "second revoke"
pass "revoking twice: the CA's alreadyRevoked, exit 6"

expect_status 0 "$T/issue2" --challenge http-01 --out "$OUT" issue revoke2.example.com
serial2=$(leaf_serial "$OUT/revoke2.example.com.crt")
# A state dir without any account: the certificate key alone signs.
expect_status 0 "$T/bykey" --state-dir "$T/empty-state" revoke "$OUT/revoke2.example.com.crt" \
    --key "$OUT/revoke2.example.com.key" --reason 1
status_of "$serial2" | grep -q '"Status": *"Revoked"' || fail "not revoked by key: $(status_of "$serial2")"
pass "revoked with the certificate key, no account"

expect_status 1 "$T/wrongkey" revoke "$OUT/revoke.example.com.crt" --key "$OUT/revoke2.example.com.key"
expect_status 1 "$T/badreason" revoke "$OUT/revoke.example.com.crt" --reason 2
expect_status 1 "$T/nofile" revoke "$T/missing.crt"
pass "wrong key, reason 2 and a missing file are usage errors"
echo "revoke: PASS"
