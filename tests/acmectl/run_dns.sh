#!/bin/bash
# acmectl run with the dns01 module as a [module] (hook back end writing
# to pebble-challtestsrv): the module's hooks run on libacme's module thread
# while the loop goes on.
#
#  1. a wildcard and its base name issued by dns-01 through the module.
#  2. SIGTERM while the module is publishing (the hook sleeps): acmectl
#     waits for that call, takes the record down again, exits 0.
#  3. the next start resumes the interrupted order and finishes it.
# DNS01_MODULE is the built acme_dns01.so; without it the test is skipped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/run_lib.sh"
trap run_cleanup EXIT

if [ -z "${DNS01_MODULE:-}" ] || [ ! -f "$DNS01_MODULE" ]; then
    echo "run_dns: SKIP: the dns01 module (acme_dns01) is not built" >&2
    exit 77
fi

export HOOK_LOG=$T/dns-hook.log SLOW=$T/slow
HOOK=$T/dns-hook
cat >"$HOOK" <<'SH'
#!/bin/sh
set -eu
printf '%s %s %s\n' "$1" "$2" "$3" >>"$HOOK_LOG"
if [ "$1" = add ] && [ -e "$SLOW" ]; then touch "$SLOW.started"; sleep 3; fi
case $1 in
add) curl -sS --fail -X POST -d "{\"host\":\"$2.\",\"value\":\"$3\"}" "$ACME_TEST_CHALLTESTSRV/set-txt" ;;
del) curl -sS --fail -X POST -d "{\"host\":\"$2.\"}" "$ACME_TEST_CHALLTESTSRV/clear-txt" ;;
esac
SH
chmod +x "$HOOK"

CONF=$T/run.conf
STATUS=$T/status.json
write_conf() {
    run_global "$CONF" <<EOF
status-file = $STATUS
challenge = dns-01

[module dns]
path = $DNS01_MODULE
backend = hook
command = $HOOK
resolver = $ACME_TEST_DNS
zone = example.com
nameservers = $ACME_TEST_DNS
propagation-timeout = 20
propagation-interval = 100

[certificate wild]
names = *.rw.example.com rw.example.com
EOF
    cat >>"$CONF"
}

# 1 --------------------------------------------------------------------------
write_conf </dev/null
run_start "$CONF"
wait_status "$STATUS" 'len(s) == 1 and s[0]["state"] == "valid"' "the wildcard"
grep -q "dns-01 for \*.rw.example.com: handed to module dns" "$RUN_LOG" || { run_dump; fail "not published by the module"; }
[ "$(grep -c '^add ' "$HOOK_LOG")" = 2 ] && [ "$(grep -c '^del ' "$HOOK_LOG")" = 2 ] ||
    fail "the hook's calls: $(cat "$HOOK_LOG")"
run_stop
pass "a wildcard and its base name by dns-01 through [module dns]"

# 2 --------------------------------------------------------------------------
: >"$HOOK_LOG"
touch "$SLOW"
write_conf <<'EOF'

[certificate slow]
names = slow.example.com
EOF
run_start "$CONF"
for _ in $(seq 100); do [ -e "$SLOW.started" ] && break; sleep 0.1; done
[ -e "$SLOW.started" ] || { run_dump; fail "the slow publish never started"; }
run_stop
grep -q "waiting for module dns to finish its call in progress" "$RUN_LOG" || { run_dump; fail "no word of the running call"; }
grep -q "took down 1 challenge(s)" "$RUN_LOG" || { run_dump; fail "the published record was not taken down"; }
python3 - "$HOOK_LOG" <<'EOF' || fail "the hook's calls around SIGTERM: $(cat "$HOOK_LOG")"
import sys
calls = [l.split()[:2] for l in open(sys.argv[1]).read().splitlines()]
assert calls == [["add", "_acme-challenge.slow.example.com"], ["del", "_acme-challenge.slow.example.com"]], calls
EOF
pass "SIGTERM during a module's publish: waits for it, takes the record down, exit 0"

# 3 --------------------------------------------------------------------------
rm -f "$SLOW" "$SLOW.started"
run_start "$CONF"
wait_status "$STATUS" 'len(s) == 2 and all(c["state"] == "valid" for c in s)' "slow after a restart"
grep -q "resuming" "$RUN_LOG" || { run_dump; fail "the interrupted order was not resumed"; }
run_stop
pass "the next start resumes the interrupted order"
echo "run_dns: PASS"
