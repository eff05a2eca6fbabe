#!/bin/bash
# acmectl --dns-provider with the dns01 module (modules/dns01, backend =
# hook): a wildcard and its base name without --hook; the hook sets the
# TXT records in pebble-challtestsrv and removes them; the module's
# propagation check asks challtestsrv's DNS (ACME_TEST_DNS). Then renew
# --force through the module, and the usage errors around the options.
# DNS01_MODULE is the built acme_dns01.so; without it the test is skipped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -z "${DNS01_MODULE:-}" ] || [ ! -f "$DNS01_MODULE" ]; then
    echo "dns_provider: SKIP: the dns01 module (acme_dns01) is not built" >&2
    exit 77
fi

export HOOK_LOG=$T/dns-hook.log
HOOK=$T/dns-hook
cat >"$HOOK" <<'SH'
#!/bin/sh
# The dns01 module's hook back end: add|del NAME VALUE.
set -eu
printf '%s %s %s id=%s\n' "$1" "$2" "$3" "${ACME_DNS01_IDENTIFIER:-}" >>"$HOOK_LOG"
case $1 in
add) curl -sS --fail -X POST -d "{\"host\":\"$2.\",\"value\":\"$3\"}" "$ACME_TEST_CHALLTESTSRV/set-txt" ;;
# challtestsrv can only clear every value of a name: fine here, the CA is
# done with both when the first is removed.
del) curl -sS --fail -X POST -d "{\"host\":\"$2.\"}" "$ACME_TEST_CHALLTESTSRV/clear-txt" ;;
*) echo "unknown action $1"; exit 2 ;;
esac
SH
chmod +x "$HOOK"

DNSCONF=$T/dns01.conf
cat >"$DNSCONF" <<EOF
# the dns01 module's settings (doc/dns01.md)
backend = hook
command = $HOOK
hook-timeout = 20
# challtestsrv answers every name: the zone is given, not looked for, and
# it is the one "authoritative" server the propagation check asks.
resolver = $ACME_TEST_DNS
zone = example.com
nameservers = $ACME_TEST_DNS
propagation-timeout = 20
propagation-interval = 100
EOF

# 1. A wildcard and its base name, dns-01 only through the module.
expect_status 0 "$T/wild" --dns-provider "$DNS01_MODULE" --dns-config "$DNSCONF" --challenge dns-01 \
    --agree-tos --out "$T/out" --json issue '*.wild.example.com' wild.example.com
json_check "$T/wild.stdout" 'sorted(j["certificates"][0]["names"]) == ["*.wild.example.com", "wild.example.com"]' "names"
verify_chain "$T/out/_.wild.example.com.crt"
python3 - "$HOOK_LOG" <<'EOF' || fail "the hook's calls: $(cat "$HOOK_LOG")"
import sys
calls = [l.split() for l in open(sys.argv[1]).read().splitlines()]
adds = [c for c in calls if c[0] == "add"]
dels = [c for c in calls if c[0] == "del"]
assert len(adds) == 2 and len(dels) == 2, calls
assert all(c[1] == "_acme-challenge.wild.example.com" and c[3] == "id=wild.example.com" for c in calls), calls
assert adds[0][2] != adds[1][2], "two different TXT values"
assert sorted(c[2] for c in dels) == sorted(c[2] for c in adds), "each value removed"
assert calls.index(adds[1]) < calls.index(dels[0]), "both published before either is removed"
EOF
grep -q "dns-01 through the module dns01" "$T/wild.stderr" || fail "no word of the module on stderr"
grep -q "visible at every authoritative server" "$T/wild.stderr" ||
    fail "the module's propagation check did not run: $(cat "$T/wild.stderr")"
pass "a wildcard and its base name through --dns-provider (hook back end), no --hook"

# 2. renew --force through the module: the challenge types stored with the
#    certificate (dns-01) are answered by the module again.
: >"$HOOK_LOG"
expect_status 0 "$T/renew" --dns-provider "$DNS01_MODULE" --dns-config "$DNSCONF" --json renew --force
json_check "$T/renew.stdout" 'j["certificates"][0]["renewed"] is True' "renewed"
# At least one: Pebble may hand back an authorization that is still valid
# (seen under ASan's slower timing), and a valid one needs no challenge.
adds=$(grep -c '^add ' "$HOOK_LOG" || true)
[ "$adds" -ge 1 ] || fail "renew did not publish through the module: $(cat "$HOOK_LOG")"
[ "$(grep -c '^del ' "$HOOK_LOG" || true)" = "$adds" ] || fail "renew: every add needs its del: $(cat "$HOOK_LOG")"
pass "renew --force through --dns-provider"

# 3. Usage errors, before anything is sent.
expect_status 1 "$T/u1" --dns-config "$DNSCONF" issue x.example.com
grep -q -- "--dns-config goes with --dns-provider" "$T/u1.stderr" || fail "u1: $(cat "$T/u1.stderr")"
printf 'backend = hook\ncommand = %s\nfrobnicate = 1\n' "$HOOK" >"$T/bad.conf"
expect_status 1 "$T/u2" --dns-provider "$DNS01_MODULE" --dns-config "$T/bad.conf" --challenge dns-01 issue y.example.com
grep -q "frobnicate" "$T/u2.stderr" || fail "the module's refusal does not name the key: $(cat "$T/u2.stderr")"
expect_status 1 "$T/u3" --challenge dns-01 issue z.example.com
grep -q -- "--dns-provider" "$T/u3.stderr" || fail "dns-01 without a provider does not point to --dns-provider"
expect_status 1 "$T/u4" --dns-provider "$DNS01_MODULE" account show
grep -q -- "--dns-provider is for issue and renew" "$T/u4.stderr" || fail "u4: $(cat "$T/u4.stderr")"
if [ -n "${HAP_MODULE:-}" ]; then
    printf 'socket = /nonexistent.sock\nmap = /x.map\ncert-dir = %s\n' "$T" >"$T/hap.conf"
    expect_status 1 "$T/u5" --dns-provider "$HAP_MODULE" --dns-config "$T/hap.conf" --challenge dns-01 \
        issue w.example.com
    grep -q "does not answer dns-01" "$T/u5.stderr" || fail "u5: $(cat "$T/u5.stderr")"
fi
pass "usage errors: --dns-config alone, a key the module refuses, dns-01 without a provider"
echo "dns_provider: PASS"
