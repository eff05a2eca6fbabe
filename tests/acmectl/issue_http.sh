#!/bin/bash
# issue with the built-in http-01 responder: --out files (key 0600, chain
# verifying to Pebble's root), --json naming the certificate, progress on
# stderr with the time since start, and `account show` afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=$T/out
expect_status 0 "$T/issue" --challenge http-01 --agree-tos --contact mailto:ops@example.com \
    --out "$OUT" --json issue www.example.com example.com

[ -s "$OUT/www.example.com.crt" ] || fail "no chain file"
[ -s "$OUT/www.example.com.key" ] || fail "no key file"
[ "$(file_mode "$OUT/www.example.com.key")" = 600 ] || fail "key mode is $(file_mode "$OUT/www.example.com.key")"
[ "$(file_mode "$OUT/www.example.com.crt")" = 644 ] || fail "chain mode is $(file_mode "$OUT/www.example.com.crt")"
grep -q "PRIVATE KEY" "$OUT/www.example.com.key" || fail "key file holds no private key"
[ "$(grep -c 'BEGIN CERTIFICATE' "$OUT/www.example.com.crt")" -ge 2 ] || fail "chain file holds no chain"
for f in "$OUT"/.[!.]* "$OUT"/..?*; do
    [ -e "$f" ] && fail "temporary files left in --out: $(ls -A "$OUT")"
done
verify_chain "$OUT/www.example.com.crt"
pass "--out files written, key 0600, chain verifies"

json_check "$T/issue.stdout" 'j["ok"] is True and j["command"] == "issue"' "--json"
json_check "$T/issue.stdout" 'j["certificates"][0]["id"] == "www.example.com"' "--json id"
json_check "$T/issue.stdout" 'sorted(j["certificates"][0]["names"]) == ["example.com", "www.example.com"]' "--json names"
json_check "$T/issue.stdout" 'j["certificates"][0]["notAfter"].endswith("Z") and j["certificates"][0]["issuer"]' "--json notAfter/issuer"
json_check "$T/issue.stdout" "j['certificates'][0]['files'] == {'chain': '$OUT/www.example.com.crt', 'key': '$OUT/www.example.com.key'}" "--json files"
pass "--json result parses and names the certificate"

grep -Eq '^\[ *[0-9]+\.[0-9]{3}s\] .*http-01 for www.example.com' "$T/issue.stderr" ||
    fail "no timed progress naming the challenge on stderr: $(cat "$T/issue.stderr")"
pass "progress on stderr"

expect_status 0 "$T/show" account show
grep -q "^account: https://" "$T/show.stdout" || fail "account show printed no URL: $(cat "$T/show.stdout")"
grep -q "^contact: mailto:ops@example.com" "$T/show.stdout" || fail "account show lacks the contact"
expect_status 0 "$T/showj" --json account show
json_check "$T/showj.stdout" 'j["account"]["url"].startswith("https://") and j["account"]["status"] == "valid"' "account show --json"
pass "account show prints the URL"

# Nothing may stay published or listening: the port is free again.
python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$ACME_TEST_HTTP_PORT" ||
    fail "the http-01 port is still taken after acmectl exited"
echo "issue_http: PASS"
