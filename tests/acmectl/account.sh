#!/bin/bash
# account show|update|deactivate|rollover, and the account exit status.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

expect_status 2 "$T/none" --json account show
json_check "$T/none.stdout" 'j["error"]["code"] == "account"' "no account yet"
grep -q "account update --agree-tos" "$T/none.stderr" || fail "no hint how to create the account"
pass "account show without an account: exit 2 with a hint"

# Pebble has terms of service: without --agree-tos nothing is created.
expect_status 2 "$T/notos" --json issue tos.example.com
grep -qi "terms of service" "$T/notos.stderr" || fail "the missing --agree-tos is not explained: $(cat "$T/notos.stderr")"
pass "issue without --agree-tos: exit 2"

expect_status 0 "$T/create" --agree-tos --contact mailto:one@example.com account update
expect_status 0 "$T/show" --json account show
json_check "$T/show.stdout" 'j["account"]["contacts"] == ["mailto:one@example.com"]' "contact at creation"
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["account"]["url"])' "$T/show.stdout")

expect_status 0 "$T/upd" --contact mailto:two@example.com --contact mailto:three@example.com account update
expect_status 0 "$T/show2" --json account show
json_check "$T/show2.stdout" 'j["account"]["contacts"] == ["mailto:two@example.com", "mailto:three@example.com"]' "updated contacts"
expect_status 1 "$T/nothing" account update
pass "account update creates, then replaces contacts"

thumb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["account"]["thumbprint"])' "$T/show2.stdout")
expect_status 0 "$T/roll" --account-key-type ec-384 account rollover
expect_status 0 "$T/show3" --json account show
json_check "$T/show3.stdout" "j['account']['url'] == '$url' and j['account']['thumbprint'] != '$thumb'" "rollover keeps the URL, changes the key"
expect_status 0 "$T/afterroll" --challenge http-01 issue afterroll.example.com
pass "rollover: same account, new key, still issues"

expect_status 1 "$T/noyes" account deactivate
expect_status 0 "$T/deact" --yes --json account deactivate
json_check "$T/deact.stdout" 'j["account"]["status"] == "deactivated"' "deactivated"
expect_status 2 "$T/dead" --challenge http-01 issue dead.example.com
pass "deactivate needs --yes; afterwards issuing is an account error (2)"

expect_status 1 "$T/sub" account frob
echo "account: PASS"
