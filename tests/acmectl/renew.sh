#!/bin/bash
# renew: with nothing due it does nothing and exits 0; --force issues
# again (a new certificate, new files in --out); an id can be named.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=$T/out
expect_status 0 "$T/issue1" --challenge http-01 --agree-tos --out "$OUT" issue renew-a.example.com
expect_status 0 "$T/issue2" --challenge http-01 --out "$OUT" issue renew-b.example.com
serial_a=$(leaf_serial "$OUT/renew-a.example.com.crt")
serial_b=$(leaf_serial "$OUT/renew-b.example.com.crt")

expect_status 0 "$T/renew" --out "$OUT" --json renew
json_check "$T/renew.stdout" 'j["ok"] is True and len(j["certificates"]) == 2' "renew --json"
json_check "$T/renew.stdout" 'all(c["renewed"] is False for c in j["certificates"])' "nothing renewed"
json_check "$T/renew.stdout" 'sorted(c["id"] for c in j["certificates"]) == ["renew-a.example.com", "renew-b.example.com"]' "ids"
grep -q "not due" "$T/renew.stderr" || fail "renew did not say why nothing happened"
grep -q "responder listening" "$T/renew.stderr" && fail "renew with nothing due bound a port"
[ "$(leaf_serial "$OUT/renew-a.example.com.crt")" = "$serial_a" ] || fail "renew (not due) replaced a certificate"
pass "renew with nothing due: exit 0, nothing issued, no port bound"

expect_status 0 "$T/force" --challenge http-01 --out "$OUT" --json renew --force renew-a.example.com
json_check "$T/force.stdout" 'len(j["certificates"]) == 1 and j["certificates"][0]["renewed"] is True' "renew --force one id"
new_a=$(leaf_serial "$OUT/renew-a.example.com.crt")
[ "$new_a" != "$serial_a" ] || fail "renew --force left the old certificate in --out"
[ "$(leaf_serial "$OUT/renew-b.example.com.crt")" = "$serial_b" ] || fail "renew --force ID touched another certificate"
verify_chain "$OUT/renew-a.example.com.crt"
pass "renew --force ID issues that one again"

expect_status 0 "$T/forceall" --out "$OUT" --json renew --force
json_check "$T/forceall.stdout" 'len(j["certificates"]) == 2 and all(c["renewed"] for c in j["certificates"])' "renew --force all"
pass "renew --force issues everything again"

expect_status 1 "$T/badid" renew ../x
expect_status 5 "$T/noid" renew no-such.example.com
grep -q 'no stored certificate' "$T/noid.stderr" || fail "unknown id not explained: $(cat "$T/noid.stderr")"
pass "bad and unknown ids"
echo "renew: PASS"
