#!/bin/bash
# --hook: a hook script that records its calls and answers dns-01 through
# pebble-challtestsrv. Checks uacme's convention: "begin" then "done" with
# METHOD TYPE IDENT TOKEN AUTH, AUTH for dns-01 = the TXT value
# (base64url SHA-256 of the key authorization); a non-zero "begin"
# declines the type and acmectl moves to the next; no done/failed for a
# declined challenge; "install" gets the files; a uacme hook that rejects
# "install" gives exit status 7 unless --no-hook-install.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export HOOK_LOG=$T/hook.log
HOOK=$T/hook
cat >"$HOOK" <<'SH'
#!/bin/bash
# The test's hook: log, then act like a DNS-only uacme hook.
printf '%s\n' "$*" >>"$HOOK_LOG"
printf 'env %s %s %s\n' "$ACMECTL_KEY_AUTH" "$UACME_AUTH" "${ACMECTL_DNS_NAME:-}" >>"$HOOK_LOG"
method=$1 type=$2 ident=$3 token=$4 auth=$5
case "$method" in
begin)
    [ "$type" = dns-01 ] || exit 1   # uacme: non-zero declines
    curl -sS --fail -X POST -d "{\"host\":\"_acme-challenge.$ident.\",\"value\":\"$auth\"}" \
        "$ACME_TEST_CHALLTESTSRV/set-txt" >/dev/null
    ;;
done | failed)
    curl -sS --fail -X POST -d "{\"host\":\"_acme-challenge.$ident.\"}" \
        "$ACME_TEST_CHALLTESTSRV/clear-txt" >/dev/null
    ;;
install)
    # install ID CHAIN KEY NAMES: the files must be there while we run.
    [ -f "$3" ] && [ -f "$4" ] && grep -q "BEGIN CERTIFICATE" "$3" && grep -q "PRIVATE KEY" "$4" ||
        { echo "install: files missing" >&2; exit 1; }
    [ "$(stat -c %a "$4")" = 600 ] || { echo "install: key not 0600" >&2; exit 1; }
    cp "$3" "$HOOK_LOG.installed.crt"
    ;;
*)
    echo "hook: invalid method $method" >&2
    exit 1
    ;;
esac
SH
chmod +x "$HOOK"

# 1. dns-01 through the hook, base name and wildcard (two TXT values on
#    one name), with install (no --out: temporary files for the hook).
expect_status 0 "$T/dns" --challenge dns-01 --hook "$HOOK" --agree-tos --json issue dns.example.com '*.dns.example.com'
python3 - "$HOOK_LOG" <<'PY' || fail "hook calls wrong: $(cat "$HOOK_LOG")"
import base64, hashlib, sys
lines = open(sys.argv[1]).read().splitlines()
calls = [l.split(" ") for l in lines if not l.startswith("env ")]
envs = [l.split(" ") for l in lines if l.startswith("env ")]
begins = [c for c in calls if c[0] == "begin"]
dones = [c for c in calls if c[0] == "done"]
assert len(begins) == 2 and len(dones) == 2, calls
assert all(len(c) == 5 and c[1] == "dns-01" and c[2] == "dns.example.com" for c in begins + dones), calls
# begin before done for each token, same arguments.
for b in begins:
    d = [c for c in dones if c[3] == b[3]]
    assert d and d[0][1:] == b[1:], (b, d)
    assert calls.index(b) < calls.index(d[0])
# AUTH = base64url(sha256(key authorization)), the TXT value.
for c, e in zip(calls, envs):
    if c[0] in ("begin", "done"):
        ka = e[1]
        want = base64.urlsafe_b64encode(hashlib.sha256(ka.encode()).digest()).decode().rstrip("=")
        assert c[4] == want and e[2] == want, (c, e)
        assert ka.startswith(c[3] + "."), "key authorization is token.thumbprint"
        assert e[3] == "_acme-challenge.dns.example.com", e
inst = [c for c in calls if c[0] == "install"]
assert len(inst) == 1 and inst[0][1] == "dns.example.com", inst
assert sorted(inst[0][4].split(",")) == ["*.dns.example.com", "dns.example.com"], inst
assert calls[-1][0] == "install", "install comes last"
PY
verify_chain "$HOOK_LOG.installed.crt"
json_check "$T/dns.stdout" 'sorted(j["certificates"][0]["names"]) == ["*.dns.example.com", "dns.example.com"]' "--json names"
pass "dns-01 via the hook: begin then done with uacme's arguments, then install"

# 2. The hook declines http-01: the order goes on with dns-01. A state
# dir of its own: with the one above, the per-CA challenge history (dns-01
# worked) would rightly put dns-01 first and http-01 would never be offered.
: >"$HOOK_LOG"
expect_status 0 "$T/decline" --state-dir "$T/state-decline" --agree-tos --challenge http-01,dns-01 \
    --hook "$HOOK" --no-hook-install issue decline.example.com
python3 - "$HOOK_LOG" <<'PY' || fail "hook calls after a decline wrong: $(cat "$HOOK_LOG")"
import sys
calls = [l.split(" ")[:3] for l in open(sys.argv[1]).read().splitlines() if not l.startswith("env ")]
assert calls == [["begin", "http-01", "decline.example.com"],
                 ["begin", "dns-01", "decline.example.com"],
                 ["done", "dns-01", "decline.example.com"]], calls
PY
grep -q "declined http-01" "$T/decline.stderr" || fail "the decline was not reported"
pass "a declined http-01 falls back to dns-01 in the same order; no done/failed for the declined one"

# 3. A uacme hook rejects "install": exit status 7, certificate stored.
: >"$HOOK_LOG"
cat >"$T/uacme-hook" <<'SH'
#!/bin/sh
[ $# -eq 5 ] || exit 85
case "$1" in
begin) [ "$2" = dns-01 ] || exit 1
       curl -sS --fail -X POST -d "{\"host\":\"_acme-challenge.$3.\",\"value\":\"$5\"}" "$ACME_TEST_CHALLTESTSRV/set-txt" >/dev/null ;;
done|failed) curl -sS --fail -X POST -d "{\"host\":\"_acme-challenge.$3.\"}" "$ACME_TEST_CHALLTESTSRV/clear-txt" >/dev/null ;;
*) echo "$0: invalid method" >&2; exit 1 ;;
esac
SH
chmod +x "$T/uacme-hook"
expect_status 7 "$T/uinst" --challenge dns-01 --hook "$T/uacme-hook" --json issue uacme.example.com
grep -q -- "--no-hook-install" "$T/uinst.stderr" || fail "the install failure does not point to --no-hook-install"
json_check "$T/uinst.stdout" 'j["ok"] is False and j["error"]["code"] == "install-failed" and j["error"]["exitStatus"] == 7' "--json install error"
expect_status 0 "$T/urenew" --json renew uacme.example.com
json_check "$T/urenew.stdout" 'j["certificates"][0]["renewed"] is False' "stored despite the failed install"
expect_status 0 "$T/uok" --challenge dns-01 --hook "$T/uacme-hook" --no-hook-install issue uacme2.example.com
pass "a uacme hook: install rejected -> exit 7 (stored); fine with --no-hook-install"
# 4. Interrupted (SIGTERM) while the hook publishes: acmectl waits for the
#    hook, then takes the challenge down ("failed") and exits 128+15.
: >"$HOOK_LOG"
cat >"$T/slow-hook" <<'SH'
#!/bin/bash
printf '%s\n' "$*" >>"$HOOK_LOG"
[ "$1" = begin ] && { touch "$HOOK_LOG.started"; sleep 2; }
exit 0
SH
chmod +x "$T/slow-hook"
rc=0
"${ACTL[@]}" --challenge dns-01 --hook "$T/slow-hook" --no-hook-install issue slow.example.com \
    >"$T/int.stdout" 2>"$T/int.stderr" &
pid=$!
for _ in $(seq 100); do [ -e "$HOOK_LOG.started" ] && break; sleep 0.1; done
[ -e "$HOOK_LOG.started" ] || fail "the slow hook never started"
kill -TERM "$pid"
wait "$pid" || rc=$?
[ "$rc" = 143 ] || fail "interrupted acmectl exited $rc, expected 143: $(cat "$T/int.stderr")"
python3 - "$HOOK_LOG" <<'PY' || fail "calls around the interrupt wrong: $(cat "$HOOK_LOG")"
import sys
calls = [l.split(" ")[:3] for l in open(sys.argv[1]).read().splitlines()]
assert calls == [["begin", "dns-01", "slow.example.com"], ["failed", "dns-01", "slow.example.com"]], calls
PY
grep -q "took down 1 challenge" "$T/int.stderr" || fail "the interrupt clean-up was not reported"
pass "SIGTERM during begin: waits for the hook, then 'failed', exit 143"
echo "hook: PASS"
