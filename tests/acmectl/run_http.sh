#!/bin/bash
# acmectl run with only the built-in http-01 responder: two certificates
# from one configuration file, written to out-dir; the status file; the
# status on SIGUSR1; SIGHUP with a broken file (kept running) and with a
# third certificate (issued); SIGTERM: exit 0 and the port free; a
# restart installs the stored certificates without ordering again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/run_lib.sh"
trap run_cleanup EXIT

OUT=$T/out
CONF=$T/run.conf
STATUS=$T/status/status.json
mkdir -p "$T/status"
write_conf() {
    run_global "$CONF" <<EOF
http-port = $ACME_TEST_HTTP_PORT   # the built-in http-01 responder
challenge = http-01, dns-01        # dns-01: nothing answers it, dropped with a warning
out-dir = $OUT
status-file = $STATUS

[certificate www]
names = www.run.example run.example

[certificate]
names = api.run.example
key-type = ec-384
EOF
}
write_conf
run_start "$CONF"
wait_status "$STATUS" 'len(s) == 2 and all(c["state"] == "valid" for c in s)' "two certificates"
wait_log "api.run.example: wrote" "the second certificate written to out-dir"
for id in www api.run.example; do
    [ -s "$OUT/$id.crt" ] && [ -s "$OUT/$id.key" ] || { run_dump; fail "no $OUT/$id.crt/.key"; }
    [ "$(file_mode "$OUT/$id.key")" = 600 ] || fail "$id.key mode is $(file_mode "$OUT/$id.key")"
    verify_chain "$OUT/$id.crt"
done
openssl x509 -in "$OUT/www.crt" -noout -ext subjectAltName | grep -q "DNS:run.example" ||
    fail "www.crt lacks run.example"
openssl x509 -in "$OUT/api.run.example.crt" -noout -text | grep -q "384 bit" ||
    fail "api.run.example.crt is not an EC P-384 certificate (key-type)"
grep -q "dns-01 dropped from the challenge list" "$RUN_LOG" || { run_dump; fail "no warning for dns-01"; }
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z acmectl\[[0-9]+\]: ' "$RUN_LOG" ||
    { run_dump; fail "log lines carry no time stamp"; }
python3 - "$STATUS" <<'EOF' || fail "status-file content: $(cat "$STATUS")"
import json, sys
s = {c["id"]: c for c in json.load(open(sys.argv[1]))}
assert set(s) == {"www", "api.run.example"}, s
assert sorted(s["www"]["names"]) == ["run.example", "www.run.example"], s
assert all(c["not_after"] and c["next_renewal"] and c["last_error"] is None for c in s.values()), s
EOF
pass "two certificates from one file: issued, written to out-dir, in the status file"

kill -USR1 "$RUN_PID"
wait_log '^\[\{"id":' "SIGUSR1 prints the status JSON"
pass "SIGUSR1 prints the status"

# SIGHUP with a file that does not parse: refused, the daemon goes on.
cp "$CONF" "$CONF.good"
printf '[certificate bad]\nnames = ok.example\nfrobnicate = 1\n' >>"$CONF"
kill -HUP "$RUN_PID"
wait_log "SIGHUP: .*run.conf:[0-9]+: frobnicate: unknown key.*keeping the running configuration" "a bad SIGHUP"
kill -0 "$RUN_PID" || fail "acmectl run died on a bad configuration"
# SIGHUP with a third certificate: restarted with it; the first two are
# not ordered again.
cp "$CONF.good" "$CONF"
printf '\n[certificate third]\nnames = third.run.example\n' >>"$CONF"
kill -HUP "$RUN_PID"
wait_status "$STATUS" 'len(s) == 3 and all(c["state"] == "valid" for c in s)' "three certificates after SIGHUP"
[ -s "$OUT/third.crt" ] || fail "no third.crt after SIGHUP"
[ "$(grep -c "order: .* created" "$RUN_LOG")" = 3 ] ||
    { run_dump; fail "expected 3 orders in all (2 + 1 after SIGHUP)"; }
pass "SIGHUP: a bad file is refused and the daemon keeps running; a new certificate is issued"

SERIAL=$(leaf_serial "$OUT/www.crt")
run_stop
python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$ACME_TEST_HTTP_PORT" ||
    fail "the http-01 port is still taken after acmectl run stopped"
pass "SIGTERM: exit 0, port free"

# A restart: the stored certificates are installed, nothing is ordered.
rm -f "$OUT"/*
run_start "$CONF"
wait_status "$STATUS" 'len(s) == 3 and all(c["state"] == "valid" for c in s)' "after a restart"
for _ in $(seq 50); do [ -s "$OUT/third.crt" ] && break; sleep 0.1; done
[ "$(leaf_serial "$OUT/www.crt")" = "$SERIAL" ] || fail "www was ordered again after a restart"
grep -q "order: " "$RUN_LOG" && { run_dump; fail "a restart placed an order"; }
run_stop
pass "a restart installs the stored certificates without ordering"
echo "run_http: PASS"
