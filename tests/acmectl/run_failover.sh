#!/bin/bash
# acmectl run with [ca NAME] sections (issue 14 part 3), two Pebbles
# (with-pebble --second): [global]'s directory is a loopback port nobody
# listens on, [ca backup] the second Pebble. The certificate moves to
# backup and is issued there; the status file names the CA and the
# reason; a restart manages it at backup (installed, no new order); bad
# [ca] sections are refused with their line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/run_lib.sh"
trap run_cleanup EXIT
: "${ACME_TEST_DIRECTORY2:?run this under with-pebble --second}"

DOWN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
OUT=$T/out
CONF=$T/run.conf
STATUS=$T/status.json
ACME_TEST_DIRECTORY="https://127.0.0.1:$DOWN_PORT/dir" run_global "$CONF" <<EOF
http-port = $ACME_TEST_HTTP_PORT
challenge = http-01
out-dir = $OUT
status-file = $STATUS

[ca backup]
directory = $ACME_TEST_DIRECTORY2

[certificate www]
names = www.fo.example
EOF
run_start "$CONF"
wait_status "$STATUS" 'len(s) == 1 and s[0]["state"] == "valid" and s[0]["ca"] == "backup"' "issued at backup" 60
python3 - "$STATUS" <<'PY' || fail "status: $(cat "$STATUS")"
import json, sys
c = json.load(open(sys.argv[1]))[0]
assert "CA default: " in c["ca_reason"] and "could not reach" in c["ca_reason"], c
PY
curl -sS --fail --cacert "$ACME_TEST_CA_FILE" "$ACME_TEST_MGMT2/roots/0" -o "$T/root2.pem"
certtool --verify --load-ca-certificate "$T/root2.pem" --infile "$OUT/www.crt" >"$T/verify.out" 2>&1 ||
    { cat "$T/verify.out" >&2; fail "www.crt is not from the second Pebble"; }
json_check "$STATE/failover/www.json" 'j["ca"] == "backup" and j["failover"] is True' "stored choice"
grep -q "moves to CA backup" "$RUN_LOG" || { run_dump; fail "the move is not logged"; }
run_stop
pass "[global] CA down: moved to [ca backup], issued there; status says so"

serial=$(leaf_serial "$OUT/www.crt")
run_start "$CONF"
wait_status "$STATUS" 'len(s) == 1 and s[0]["state"] == "valid" and s[0]["ca"] == "backup" and s[0]["ca_reason"]' "restart at backup" 20
wait_log "www: wrote" "the stored certificate installed after the restart"
sleep 2
grep -q "moves to CA" "$RUN_LOG" && { run_dump; fail "the restart moved the certificate again"; }
grep -q "order for www.fo.example" "$RUN_LOG" && { run_dump; fail "the restart ordered again"; }
[ "$(leaf_serial "$OUT/www.crt")" = "$serial" ] || fail "the restart replaced the certificate"
run_stop
pass "restart: managed at backup, the stored certificate installed, nothing ordered"

for bad in "[ca]" "[ca a b]" "[ca x]
ca-file = /nonexistent" "[ca y]
directory = http://127.0.0.1:1/dir"; do
    printf '[global]\ndirectory = %s\nstate-dir = %s\n%s\n' "$ACME_TEST_DIRECTORY2" "$STATE" "$bad" >"$T/bad.conf"
    rc=0
    "$ACMECTL" run "$T/bad.conf" >/dev/null 2>"$T/bad.err" || rc=$?
    { [ "$rc" -eq 1 ] && grep -Eq "bad.conf:[0-9]+: " "$T/bad.err"; } ||
        fail "bad [ca] section accepted or unexplained ($rc): $bad: $(cat "$T/bad.err")"
done
pass "bad [ca] sections are refused with their line"
echo "run_failover: PASS"
