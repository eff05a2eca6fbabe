#!/bin/bash
# examples/uv_host against the harness's Pebble: two certificates issued by a
# libuv loop that drives the engine through the socket and timer callbacks
# only, installed through an install callback answering ACME_E_PENDING
# (files written on libuv's thread pool, then acme_engine_done). Asserts:
# both certificates are in OUT_DIR and verify against Pebble's root with the
# right names and keys, the key files are 0600, no temporary file is left,
# and the loop exits by itself once they are installed (the wake-up after
# acme_engine_done and the unwatch of every descriptor) — a hang fails at
# the 120 s timeout, a late exit (more than 2 s after the last done) too.
#
#   with-pebble -- uv_host_test.sh path/to/uv_host
set -euo pipefail

exe=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

base=${ACME_TEST_TMPDIR:-${TMPDIR:-/tmp}}
work=$(mktemp -d "$base/uv_host.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/out"
curl -sS --fail --cacert "$ACME_TEST_CA_FILE" "$ACME_TEST_MGMT/roots/0" > "$work/root.pem"

names=(uv-a.example uv-b.example)
start=$(date +%s)
rc=0
timeout 120 "$exe" -d "$ACME_TEST_DIRECTORY" -c "$ACME_TEST_CA_FILE" -s "$work/state" -o "$work/out" \
    -p "$ACME_TEST_HTTP_PORT" "${names[@]}" > "$work/stdout" 2> "$work/stderr" || rc=$?
cat "$work/stdout"
if [ "$rc" -ne 0 ]; then
    tail -n 40 "$work/stderr" >&2
    [ "$rc" -eq 124 ] && fail "uv_host's loop did not exit within 120 s"
    fail "uv_host exited with status $rc"
fi
grep -q '^uv_host: loop exited: every certificate installed;' "$work/stdout" ||
    fail "uv_host did not say every certificate was installed"
line=$(grep '^uv_host: loop exited' "$work/stdout")
sockets=$(sed -E 's/.* ([0-9]+) socket and ([0-9]+) timer callbacks.*/\1/' <<<"$line")
timers=$(sed -E 's/.* ([0-9]+) socket and ([0-9]+) timer callbacks.*/\2/' <<<"$line")
[ "$sockets" -gt 2 ] || fail "only $sockets socket callbacks: the CA's sockets did not go through them"
[ "$timers" -gt 0 ] || fail "no timer callback"
# Without the wake-up a loop sleeps on after done() until some unrelated
# timer of libcurl's (10 s here) fires: the exit must follow done() at once.
after=$(sed -E 's/.*; ([0-9]+) ms after the last acme_engine_done$/\1/' <<<"$line")
[ "$after" -lt 2000 ] || fail "the loop exited $after ms after the last acme_engine_done: done() did not wake it"

for n in "${names[@]}"; do
    crt=$work/out/$n.crt key=$work/out/$n.key
    [ -s "$crt" ] && [ -s "$key" ] || fail "$n: no certificate or key in OUT_DIR"
    [ "$(stat -c %a "$key")" = 600 ] || fail "$n: key mode $(stat -c %a "$key"), not 600"
    openssl verify -CAfile "$work/root.pem" -untrusted "$crt" "$crt" > /dev/null ||
        fail "$n: the chain does not verify against Pebble's root"
    san=$(openssl x509 -in "$crt" -noout -ext subjectAltName)
    grep -q "DNS:$n\$" <<<"$san" || fail "$n: names are $san"
    [ "$(openssl x509 -in "$crt" -noout -pubkey)" = "$(openssl pkey -in "$key" -pubout)" ] ||
        fail "$n: the key does not match the certificate"
    grep -q "^uv_host: installed $n " "$work/stdout" || fail "$n: install never finished"
done
for f in "$work/out"/*.tmp; do
    [ -e "$f" ] && fail "a temporary file was left in OUT_DIR: $f"
done
echo "ok: uv_host issued ${#names[@]} certificates in $(( $(date +%s) - start )) s through $sockets socket and $timers timer callbacks, and its loop exited"
echo PASS
