#!/bin/bash
# acmectl run with a module on libacme's module thread
# (acme_module_set_engine): testmod_slow (testmod_slow.c) answers dns-01
# through pebble-challtestsrv, with a wait that blocks until this script
# releases it, and fails bad.mod.example on purpose.
#
#  1. while the module's wait for slow.mod.example blocks, the http-01
#     certificate is issued (the loop is not stalled); released, the slow
#     one is issued after it.
#  2. the failing challenge: the module's own sentence is in acmectl's log
#     and in the status file's last_error, not a generic error.
#  3. SIGTERM with a wait blocked: the wait gives up, the record is taken
#     down, exit 0 promptly.
# SLOW_MODULE is the built testmod_slow.so.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/run_lib.sh"
trap run_cleanup EXIT

if [ -z "${SLOW_MODULE:-}" ] || [ ! -f "$SLOW_MODULE" ]; then
    echo "run_module: SKIP: testmod_slow is not built" >&2
    exit 77
fi

CONF=$T/run.conf
STATUS=$T/status.json
RELEASE=$T/release
SENTENCE="testslow: the TXT record _acme-challenge.bad.mod.example never showed at the test's nameserver (this module fails bad.mod.example on purpose)"
write_conf() {
    run_global "$CONF" <<EOF
status-file = $STATUS
http-port = $ACME_TEST_HTTP_PORT

[module slow]
path = $SLOW_MODULE
challtestsrv = $ACME_TEST_CHALLTESTSRV
release-file = $RELEASE
fail = bad.mod.example

[certificate fast]
names = fast.mod.example
challenge = http-01

[certificate slow]
names = slow.mod.example
challenge = dns-01
EOF
    cat >>"$CONF"
}
# The state of the certificate whose first name is $1, from the status file.
state_of() {
    python3 - "$STATUS" "$1" <<'EOF'
import json, sys
for c in json.load(open(sys.argv[1])):
    if c["names"][0] == sys.argv[2]:
        print(c["state"], c.get("waiting_on"))
EOF
}

# 1 --------------------------------------------------------------------------
write_conf </dev/null
t0=$(date +%s.%N)
run_start "$CONF"
for _ in $(seq 600); do [ -e "$RELEASE.waiting" ] && break; sleep 0.1; done
[ -e "$RELEASE.waiting" ] || { run_dump; fail "the module's wait for slow.mod.example never started"; }
t_wait=$(date +%s.%N)
wait_status "$STATUS" 'any(c["names"][0] == "fast.mod.example" and c["state"] == "valid" for c in s)' \
    "fast.mod.example by http-01 while the module waits" 60
t_fast=$(date +%s.%N)
[ ! -e "$RELEASE" ] || fail "released too early"
st=$(state_of slow.mod.example)
[ "$st" = "ordering host" ] || { run_dump; fail "slow.mod.example while its wait blocks: '$st', expected 'ordering host'"; }
grep -q "dns-01 for slow.mod.example: handed to module slow" "$RUN_LOG" || { run_dump; fail "not handed to the module"; }
touch "$RELEASE"
wait_status "$STATUS" 'all(c["state"] == "valid" for c in s)' "slow.mod.example after the release" 60
t_slow=$(date +%s.%N)
grep -q "slow: wait-done slow.mod.example" "$RUN_LOG" || { run_dump; fail "the module's log lines did not reach acmectl's log"; }
python3 - "$t0" "$t_wait" "$t_fast" "$t_slow" <<'EOF'
import sys
t0, w, f, s = map(float, sys.argv[1:])
print("run_module: wait started %.2f s after start; http-01 certificate valid %.2f s later (wait still blocked); "
      "slow one valid %.2f s after the release" % (w - t0, f - w, s - f))
EOF
run_stop
grep -o "longest engine step: [0-9.]* ms" "$RUN_LOG" || true
pass "http-01 issued while the module's wait blocked; the slow dns-01 one after its release"

# 2 --------------------------------------------------------------------------
write_conf <<'EOF'

[certificate bad]
names = bad.mod.example
challenge = dns-01
EOF
run_start "$CONF"
wait_status "$STATUS" 'any(c["names"][0] == "bad.mod.example" and c["last_error"] for c in s)' "bad.mod.example fails" 60
python3 - "$STATUS" "$SENTENCE" <<'EOF' || { run_dump; fail "the status does not carry the module's sentence"; }
import json, sys
s, want = json.load(open(sys.argv[1])), sys.argv[2]
bad = [c for c in s if c["names"][0] == "bad.mod.example"][0]
assert bad["state"] in ("waiting", "failed", "ordering"), bad
assert want in bad["last_error"], "last_error: %r" % bad["last_error"]
print("run_module: status last_error: %s" % bad["last_error"])
EOF
grep -qF "$SENTENCE" "$RUN_LOG" || { run_dump; fail "the log lacks the module's sentence"; }
grep -F "engine: bad failed" "$RUN_LOG" | grep -qF "$SENTENCE" ||
    { run_dump; fail "the engine's failure line lacks the module's sentence"; }
grep -q "slow: cleanup bad.mod.example" "$RUN_LOG" || { run_dump; fail "the failed wait's record was not removed"; }
run_stop
pass "a failing module: its own sentence in the log and in the status"

# 3 --------------------------------------------------------------------------
rm -f "$RELEASE" "$RELEASE.waiting"
write_conf <<'EOF'

[certificate slow2]
names = slow2.mod.example
challenge = dns-01
EOF
run_start "$CONF"
for _ in $(seq 600); do [ -e "$RELEASE.waiting" ] && break; sleep 0.1; done
[ -e "$RELEASE.waiting" ] || { run_dump; fail "the wait never started"; }
run_stop
grep -q "waiting for module slow to finish" "$RUN_LOG" || { run_dump; fail "no word of the module's call"; }
grep -q "took down 1 challenge(s)" "$RUN_LOG" || { run_dump; fail "the record was not taken down"; }
grep -q "cleanup slow2.mod.example" "$RUN_LOG" || { run_dump; fail "no cleanup of slow2's record"; }
pass "SIGTERM with a module's wait blocked: it gives up, the record is taken down, exit 0"
echo "run_module: PASS"
