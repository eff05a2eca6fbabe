#!/bin/bash
# acmectl run's metrics (issue 14 part 5): metrics-listen on a loopback
# port the kernel picks (the log line says which), scraped with curl;
# metrics-file written atomically. The issued certificate's series match
# the certificate on disk: notAfter to the second, state "valid", no
# failures, one attempt, a renewal time inside its lifetime, a recent last
# success; every sample follows its family's HELP and TYPE lines. Other
# paths get 404; an idle client does not block the scrapes. Bad settings
# (a non-loopback address, a name, a bad port) are refused with FILE:LINE
# before anything is sent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/run_lib.sh"
trap run_cleanup EXIT

OUT=$T/out
CONF=$T/run.conf
STATUS=$T/status.json
PROM=$T/metrics/acme.prom
mkdir -p "$T/metrics"
run_global "$CONF" <<CONF
http-port = $ACME_TEST_HTTP_PORT
out-dir = $OUT
status-file = $STATUS
metrics-listen = 127.0.0.1:0
metrics-file = $PROM

[certificate www]
names = www.metrics.example
CONF
run_start "$CONF"
wait_status "$STATUS" 'len(s) == 1 and s[0]["state"] == "valid"' "www issued"
wait_log "metrics on http://127\.0\.0\.1:[0-9]+/metrics" "the metrics address in the log"
URL=$(grep -Eo "http://127\.0\.0\.1:[0-9]+/metrics" "$RUN_LOG" | head -n 1)
PORT=${URL#http://127.0.0.1:}
PORT=${PORT%/metrics}
[ "$PORT" != 0 ] || fail "the log names port 0, not the bound port"

curl -sS --fail --max-time 10 -D "$T/scrape.head" -o "$T/scrape.txt" "$URL" || { run_dump; fail "curl $URL failed"; }
grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/scrape.head" ||
    fail "Content-Type: $(grep -i content-type "$T/scrape.head")"

# notBefore / notAfter of www.crt as Unix seconds.
cert_time() {
    python3 - "$1" "$2" <<'PY'
import datetime, subprocess, sys
out = subprocess.run(["openssl", "x509", "-in", sys.argv[1], "-noout", "-" + sys.argv[2]], check=True,
                     capture_output=True, text=True).stdout.strip().split("=", 1)[1]
t = datetime.datetime.strptime(out, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=datetime.timezone.utc)
print(int(t.timestamp()))
PY
}
NOT_AFTER=$(cert_time "$OUT/www.crt" enddate)
NOT_BEFORE=$(cert_time "$OUT/www.crt" startdate)

check_metrics() {
    python3 - "$1" "$NOT_AFTER" "$NOT_BEFORE" <<'PY' || { cat "$1" >&2; fail "$2: the metrics do not match the certificate"; }
import re, sys, time
text = open(sys.argv[1]).read()
not_after, not_before = int(sys.argv[2]), int(sys.argv[3])
assert text.endswith("\n")
samples, helps, types = {}, set(), {}
for line in text.splitlines():
    if line.startswith("# HELP "):
        helps.add(line.split()[2])
    elif line.startswith("# TYPE "):
        _, _, name, kind = line.split()
        types[name] = kind
    else:
        m = re.fullmatch(r'(acme_[a-z_]+)(\{[^}]*\})? (-?[0-9]+)', line)
        assert m, line
        assert m.group(1) in helps and m.group(1) in types, "no HELP/TYPE before " + line
        samples[m.group(1) + (m.group(2) or "")] = int(m.group(3))
def get(name, labels):
    return samples[name + "{" + labels + "}"]
assert samples["acme_certificates_managed"] == 1, samples
assert get("acme_certificate_info", 'id="www",names="www.metrics.example"') == 1
assert get("acme_certificate_not_after_timestamp_seconds", 'id="www"') == not_after, (samples, not_after)
assert get("acme_certificate_state", 'id="www",state="valid"') == 1
assert get("acme_certificate_state", 'id="www",state="ordering"') == 0
assert get("acme_certificate_consecutive_failures", 'id="www"') == 0
assert get("acme_certificate_attempts_total", 'id="www"') == 1
assert types["acme_certificate_attempts_total"] == "counter"
nr = get("acme_certificate_next_renewal_timestamp_seconds", 'id="www"')
assert not_before < nr < not_after, (nr, not_before, not_after)
ls = get("acme_certificate_last_success_timestamp_seconds", 'id="www"')
assert abs(ls - time.time()) < 300, ls
PY
}
check_metrics "$T/scrape.txt" "the scrape"
pass "curl $URL: text 0.0.4, notAfter $NOT_AFTER as in www.crt, state valid, renewal inside the lifetime"

for _ in $(seq 50); do
    [ -s "$PROM" ] && grep -q 'state="valid"} 1' "$PROM" && break
    sleep 0.1
done
check_metrics "$PROM" "metrics-file"
[ "$(file_mode "$PROM")" = 644 ] || fail "metrics-file mode $(file_mode "$PROM")"
[ "$(find "$T/metrics" -mindepth 1 | wc -l)" = 1 ] || fail "a temporary file left: $(ls -a "$T/metrics")"
pass "metrics-file holds the same series (mode 644, nothing else in its directory)"

code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$PORT/other")
[ "$code" = 404 ] || fail "GET /other answered $code, expected 404"
# Clients that connect and send nothing hold neither the daemon nor the
# next scrape: it is answered while they wait, and SIGUSR1 still works.
python3 -c "import socket,sys,time; s=[socket.create_connection(('127.0.0.1', int(sys.argv[1]))) for _ in range(3)]; time.sleep(3)" "$PORT" &
IDLE=$!
sleep 0.3
t0=$(date +%s%N)
curl -sS --fail --max-time 10 -o /dev/null "$URL" || fail "a scrape beside idle clients failed"
ms=$((($(date +%s%N) - t0) / 1000000))
kill -USR1 "$RUN_PID"
wait_log '^\[\{"id":' "SIGUSR1 answered while idle clients hold connections" 2
wait "$IDLE"
[ "$ms" -lt 1000 ] || fail "a scrape beside three idle clients took $ms ms"
pass "other paths: 404; a scrape beside three idle clients took $ms ms; the loop kept answering signals"

run_stop

# Refused before anything is sent: exit status 1, FILE:LINE: KEY.
for bad in "0.0.0.0:9465" "192.0.2.1:9465" "localhost:9465" "127.0.0.1:99999" "127.0.0.1" "[::]:9465"; do
    run_global "$T/bad.conf" <<CONF
http-port = $ACME_TEST_HTTP_PORT
metrics-listen = $bad

[certificate]
names = bad.metrics.example
CONF
    rc=0
    timeout 20 "$ACMECTL" run "$T/bad.conf" 2>"$T/bad.err" || rc=$?
    [ "$rc" = 1 ] || { cat "$T/bad.err" >&2; fail "metrics-listen = $bad: exit $rc, expected 1"; }
    grep -q "bad.conf:[0-9]*: metrics-listen: " "$T/bad.err" ||
        { cat "$T/bad.err" >&2; fail "no FILE:LINE: metrics-listen for $bad"; }
done
pass "metrics-listen: a non-loopback address, a name, a bad port are refused with FILE:LINE"
