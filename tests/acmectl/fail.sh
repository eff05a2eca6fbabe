#!/bin/bash
# Failures a person must be able to act on:
#  - a failing http-01 challenge (files written to a --webroot that no
#    server serves: nothing listens on the port Pebble connects to) exits
#    with 3 and names the identifier, the type and the CA's problem type;
#  - bad names ("../etc", "a b", ...) are refused before any network call;
#  - an unreachable CA is a network error (4); dns-01 without a hook and
#    other option mistakes are usage errors (1).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Nothing listens on ACME_TEST_HTTP_PORT in this test.
mkdir -p "$T/unserved"
expect_status 3 "$T/chal" --challenge http-01 --webroot "$T/unserved" --agree-tos --json issue nobody-serves.example.com
grep -q "nobody-serves.example.com" "$T/chal.stderr" || fail "the identifier is not named: $(cat "$T/chal.stderr")"
grep -q "http-01" "$T/chal.stderr" || fail "the challenge type is not named"
grep -q "urn:ietf:params:acme:error:" "$T/chal.stderr" || fail "the CA's problem type is not shown"
grep -q "check that" "$T/chal.stderr" || fail "no hint what to check"
json_check "$T/chal.stdout" 'j["ok"] is False and j["error"]["code"] == "challenge-failed" and j["error"]["exitStatus"] == 3' "--json error"
json_check "$T/chal.stdout" 'j["error"]["problem"]["type"].startswith("urn:ietf:params:acme:error:")' "--json problem type"
json_check "$T/chal.stdout" '"nobody-serves.example.com" in j["error"]["message"] and "http-01" in j["error"]["message"]' "--json message"
[ -z "$(ls -A "$T/unserved")" ] || fail "the webroot was not cleaned up after the failure: $(find "$T/unserved")"
pass "failed challenge: exit 3, identifier + type + problem named, webroot cleaned"

# Refused before any network call: the directory below has no server, so
# reaching the network would give 4, not 1; and no state is created.
NOWHERE=https://127.0.0.1:9/dir
for bad in "../etc" "a b" "foo/bar" "-x.example.com" "x..example.com" "trailing.dot." "ünï.example" ""; do
    rc=0
    "$ACMECTL" --directory "$NOWHERE" --state-dir "$T/never" issue "$bad" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
    [ "$rc" = 1 ] || fail "name '$bad': exit $rc, expected 1: $(cat "$T/bad.err")"
    grep -q "error:" "$T/bad.err" || fail "name '$bad': no error message"
done
[ ! -e "$T/never" ] || fail "a refused name still created the state directory"
pass "bad names refused before any network call"

# Without the harness's --directory: a second --directory would be a CA to
# fail over to, not a replacement.
rc=0
"$ACMECTL" --directory "$NOWHERE" --state-dir "$T/unreach-state" --json issue ok.example.com \
    >"$T/unreach.stdout" 2>"$T/unreach.stderr" || rc=$?
[ "$rc" = 4 ] || fail "unreachable CA: exit $rc, expected 4: $(cat "$T/unreach.stderr")"
json_check "$T/unreach.stdout" 'j["error"]["code"] == "network"' "network error code"
pass "unreachable CA: exit 4"

expect_status 1 "$T/dnsnohook" --challenge dns-01 issue x.example.com
grep -Eq "needs --dns-provider .* or --hook" "$T/dnsnohook.stderr" || fail "dns-01 without a DNS provider or hook not explained"
expect_status 1 "$T/wild" issue '*.wild.example.com'
grep -q "wildcard needs dns-01" "$T/wild.stderr" || fail "a wildcard without a hook is not explained"
expect_status 1 "$T/badchal" --challenge smtp-01 issue x.example.com
expect_status 1 "$T/nowebroot" --challenge http-01 --webroot "$T/no-such-dir" issue x.example.com
grep -q "order: .* created" "$T/nowebroot.stderr" && fail "an order was placed for a missing --webroot"
expect_status 1 "$T/badport" --http-port 70000 issue x.example.com
expect_status 1 "$T/http" --directory http://127.0.0.1:1/dir issue x.example.com
expect_status 1 "$T/nocmd" frobnicate
expect_status 1 "$T/twice" issue x.example.com X.example.com
pass "usage errors exit 1"

# libacme's sentences name its API (agree_tos, eab_kid, acme_cert_load());
# acmectl must name its own options instead.
expect_status 2 "$T/notos" --state-dir "$T/state-notos" --json account update
grep -q "terms of service (.\+) must be agreed to before an account is created: read them, then run again with --agree-tos" \
    "$T/notos.stderr" || fail "the missing --agree-tos is not said in acmectl's words: $(cat "$T/notos.stderr")"
if grep -q "agree_tos" "$T/notos.stderr" "$T/notos.stdout"; then fail "libacme's agree_tos reached acmectl's user"; fi
json_check "$T/notos.stdout" '"--agree-tos" in j["error"]["message"]' "--json: --agree-tos named"
cat >"$T/noinstall-hook" <<'SH'
#!/bin/sh
# dns-01 through challtestsrv; "install" fails, as a uacme hook's would.
case "$1" in
begin) [ "$2" = dns-01 ] || exit 1
       curl -sS --fail -X POST -d "{\"host\":\"_acme-challenge.$3.\",\"value\":\"$5\"}" "$ACME_TEST_CHALLTESTSRV/set-txt" >/dev/null ;;
done|failed) curl -sS --fail -X POST -d "{\"host\":\"_acme-challenge.$3.\"}" "$ACME_TEST_CHALLTESTSRV/clear-txt" >/dev/null ;;
*) exit 1 ;;
esac
SH
chmod +x "$T/noinstall-hook"
expect_status 7 "$T/inst" --agree-tos --challenge dns-01 --hook "$T/noinstall-hook" --json issue inst.example.com
grep -qF 'install it again with `acmectl renew --force inst.example.com`' "$T/inst.stderr" ||
    fail "the failed install does not name acmectl renew --force: $(cat "$T/inst.stderr")"
if grep -q "acme_cert_load" "$T/inst.stderr" "$T/inst.stdout"; then fail "libacme's acme_cert_load() reached acmectl's user"; fi
json_check "$T/inst.stdout" '"acmectl renew --force inst.example.com" in j["error"]["message"]' "--json: renew --force named"
pass "terms not agreed, install failed: acmectl's options named, not libacme's API"

# A profile the CA does not offer is the CA refusing (6), and no order is
# placed. Pebble 2.4 offers none; a newer Pebble lists some (among them
# "shortlived"), so the name asked for is one no CA lists.
expect_status 6 "$T/profile" --challenge http-01 --profile no-such-profile-xyz issue profile.example.com
grep -q "profile" "$T/profile.stderr" || fail "the profile refusal is not explained"
grep -q "order: .* created" "$T/profile.stderr" && fail "an order was placed for an unknown profile"
pass "a profile the CA does not offer: exit 6 before ordering"

# Another acmectl on the same state directory: exit 5, nothing sent.
mkdir -p "$STATE"
flock "$STATE/acmectl.lock" sleep 3 &
LOCKER=$!
sleep 0.3
expect_status 5 "$T/locked" account show
grep -q "another acmectl" "$T/locked.stderr" || fail "the lock is not explained: $(cat "$T/locked.stderr")"
wait "$LOCKER"
pass "a busy state directory: exit 5"

# A port that cannot be bound drops that type; with nothing left, exit 3.
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)' \
    "$ACME_TEST_HTTP_PORT" &
BLOCKER=$!
trap 'kill $BLOCKER 2>/dev/null || true' EXIT
sleep 0.5
expect_status 3 "$T/busy" --challenge http-01 issue busy.example.com
grep -q "cannot listen" "$T/busy.stderr" || fail "busy port not explained: $(cat "$T/busy.stderr")"
grep -qi "in use" "$T/busy.stderr" || fail "the reason (address in use) is not given"
pass "busy port: explained, exit 3 before ordering"
echo "fail: PASS"
