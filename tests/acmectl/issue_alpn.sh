#!/bin/bash
# issue with the built-in tls-alpn-01 responder only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

expect_status 0 "$T/issue" --challenge tls-alpn-01 --agree-tos --out "$T/out" --json issue alpn.example.org
grep -q "tls-alpn-01 for alpn.example.org: valid" "$T/issue.stderr" || fail "tls-alpn-01 was not the challenge used"
grep -q "http-01 responder" "$T/issue.stderr" && fail "an http-01 responder was started though --challenge excludes it"
verify_chain "$T/out/alpn.example.org.crt"
json_check "$T/issue.stdout" 'j["certificates"][0]["names"] == ["alpn.example.org"]' "--json names"
pass "tls-alpn-01 issuance"

# An IP identifier (RFC 8738) over the same responder.
expect_status 0 "$T/ip" --challenge tls-alpn-01 --out "$T/out" --json issue 127.0.0.1
json_check "$T/ip.stdout" 'j["certificates"][0]["names"] == ["127.0.0.1"]' "--json names (IP)"
pass "tls-alpn-01 for an IP address"
echo "issue_alpn: PASS"
