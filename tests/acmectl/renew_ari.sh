#!/bin/bash
# renew_ari: `acmectl renew` (cron's renewal) follows the CA's ARI window
# (RFC 9773) and sends "replaces": the blocking acme_renew is the engine
# run to completion, so it has the engine's renewal rules.
#
# The CA is tests/engine/fake_ari_ca_standin.py in front of the harness's
# Pebble (Debian's Pebble 2.4 has no renewalInfo). Checked:
#  - a far window (the stand-in's default, two months ahead): not renewed,
#    "not due", exit 0, and acmectl asked renewalInfo for the certificate;
#  - a window set to open a few seconds later: still not renewed before it
#    opens;
#  - once it is open: renewed, and the renewal newOrder carries replaces =
#    the old certificate's certID; the stand-in refuses that first one (409
#    alreadyReplaced), acmectl orders again without it and succeeds;
#  - the new certificate gets its own (far) window: not due again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
STANDIN=${STANDIN:?set STANDIN to tests/engine/fake_ari_ca_standin.py}

# The stand-in's own TLS certificate for 127.0.0.1 (self-signed; trusted
# by acmectl as its only anchor).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=ARI stand-in (not a CA)" -addext "subjectAltName=IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$T/standin.key" -out "$T/standin.pem" 2>"$T/openssl.err" ||
    { cat "$T/openssl.err" >&2; fail "openssl could not make the stand-in's certificate"; }
CTL=$T/control.json
EVENTS=$T/events.jsonl
set_control() { printf '%s' "$1" >"$CTL.tmp" && mv "$CTL.tmp" "$CTL"; }
set_control '{"retry_after": 3, "reject_replaces": 1}'
python3 "$STANDIN" --upstream "$ACME_TEST_DIRECTORY" --upstream-ca "$ACME_TEST_CA_FILE" \
    --cert "$T/standin.pem" --key "$T/standin.key" --control "$CTL" --events "$EVENTS" \
    --lifetime 280 >"$T/standin.out" 2>"$T/standin.err" &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q '^PORT ' "$T/standin.out" 2>/dev/null && break
    sleep 0.1
done
PORT=$(sed -n 's/^PORT //p' "$T/standin.out")
[ -n "$PORT" ] || { cat "$T/standin.err" >&2; fail "the ARI stand-in did not start"; }
# shellcheck disable=SC2034 # lib.sh's actl runs ACTL
ACTL=("$ACMECTL" --directory "https://127.0.0.1:$PORT/dir" --ca-file "$T/standin.pem"
      --state-dir "$STATE" --http-port "$ACME_TEST_HTTP_PORT"
      --tls-port "$ACME_TEST_TLS_PORT" --bind 127.0.0.1)

# What the stand-in saw, as a Python expression over its events (ev).
events_check() {
    python3 - "$EVENTS" "$1" <<'PY' || fail "$2: $1 does not hold; events: $(grep -v '"other"' "$EVENTS")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
gets = [e for e in ev if e.get("kind") == "renewalInfo"]
# Pebble refuses a nonce now and then (badNonce, 400) and the client
# rightly sends the order again: a refused nonce is not an order.
orders = [e for e in ev if e.get("kind") == "newOrder" and e.get("status") != 400]
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

OUT=$T/out
NAME=ari-renew.example.com
expect_status 0 "$T/issue" --challenge http-01 --agree-tos --out "$OUT" issue $NAME
serial0=$(leaf_serial "$OUT/$NAME.crt")
events_check 'len(orders) == 1 and "replaces" not in orders[0]' "the first order replaces nothing"

# 1. The far window.
expect_status 0 "$T/renew1" --out "$OUT" --json renew
json_check "$T/renew1.stdout" 'j["ok"] is True and j["certificates"][0]["renewed"] is False' "far window: not renewed"
grep -q "not due" "$T/renew1.stderr" || fail "renew did not say it is not due: $(cat "$T/renew1.stderr")"
events_check 'len(gets) == 1 and len(orders) == 1' "one renewalInfo GET, no order"
CERTID=$(python3 -c 'import json,sys; print([e for e in map(json.loads, open(sys.argv[1])) if e.get("kind") == "renewalInfo"][0]["cert_id"])' "$EVENTS")
[ "$(leaf_serial "$OUT/$NAME.crt")" = "$serial0" ] || fail "renew (far window) replaced the certificate"
pass "far ARI window: nothing renewed (certID $CERTID)"

# 2. A window opening in 4 s: not yet.
OPEN=$(( $(date +%s) + 4 ))
win() { python3 -c 'import datetime,sys; print(datetime.datetime.fromtimestamp(int(sys.argv[1]), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))' "$1"; }
set_control "{\"retry_after\": 3, \"reject_replaces\": 1, \"windows\": {\"$CERTID\": {\"start\": \"$(win $OPEN)\", \"end\": \"$(win $((OPEN + 3600)))\"}}}"
expect_status 0 "$T/renew2" --out "$OUT" --json renew
json_check "$T/renew2.stdout" 'j["certificates"][0]["renewed"] is False' "window not open yet: not renewed"
grep -q "not due" "$T/renew2.stderr" || fail "renew before the window did not say it is not due"
[ "$(date +%s)" -lt "$OPEN" ] || fail "the machine was too slow: the window opened during the check"
events_check 'len(gets) == 2 and len(orders) == 1' "no order before the window opens"
pass "window not open yet: nothing renewed"

# 3. Open: renewed, with replaces (refused once, then ordered without).
while [ "$(date +%s)" -lt "$OPEN" ]; do sleep 0.2; done
expect_status 0 "$T/renew3" --out "$OUT" --json renew
json_check "$T/renew3.stdout" 'j["ok"] is True and j["certificates"][0]["renewed"] is True' "open window: renewed"
serial1=$(leaf_serial "$OUT/$NAME.crt")
[ "$serial1" != "$serial0" ] || fail "renewed, but --out still has the old certificate"
verify_chain "$OUT/$NAME.crt"
events_check "len(gets) == 3 and len(orders) == 3" "one renewalInfo GET and two newOrders more"
events_check "orders[1].get('replaces') == '$CERTID' and orders[1].get('status') == 409" "the renewal order replaces $CERTID (refused by the stand-in)"
events_check "'replaces' not in orders[2] and orders[2].get('status') == 201" "after the refusal, ordered again without replaces"
pass "open window: renewed, replaces=$CERTID sent, refusal handled"

# 4. The new certificate has its own, far window.
expect_status 0 "$T/renew4" --out "$OUT" --json renew
json_check "$T/renew4.stdout" 'j["certificates"][0]["renewed"] is False' "the new certificate: not renewed"
events_check "len(gets) == 4 and gets[3]['cert_id'] != '$CERTID' and len(orders) == 3" "the new certificate asked under its own certID, no order"
[ "$(leaf_serial "$OUT/$NAME.crt")" = "$serial1" ] || fail "the new certificate was replaced"
pass "renewed certificate: not due under its own window"
echo "renew_ari: PASS"
