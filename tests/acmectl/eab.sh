#!/bin/bash
# External account binding (harness --eab: Pebble requires it): without
# --eab-kid/--eab-hmac-key an account error (2) that says what is missing;
# with them the account is created and issuing works.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${ACME_TEST_EAB_KID:?run under with-pebble --eab}"

expect_status 2 "$T/noeab" --agree-tos --json account update
grep -qi "external account binding" "$T/noeab.stderr" || fail "the missing EAB is not explained: $(cat "$T/noeab.stderr")"
json_check "$T/noeab.stdout" 'j["error"]["code"] == "account"' "--json account error"
pass "no EAB: exit 2, explained"

expect_status 1 "$T/half" --eab-kid "$ACME_TEST_EAB_KID" issue x.example.com
pass "--eab-kid without --eab-hmac-key: usage error"

expect_status 0 "$T/issue" --agree-tos --eab-kid "$ACME_TEST_EAB_KID" --eab-hmac-key "$ACME_TEST_EAB_HMAC" \
    --challenge http-01 --json issue eab.example.com
json_check "$T/issue.stdout" 'j["certificates"][0]["id"] == "eab.example.com"' "issued with EAB"
expect_status 0 "$T/again" --challenge http-01 issue eab2.example.com
pass "with EAB: account created, and later runs need no EAB"
echo "eab: PASS"
