#!/bin/bash
# issue with --webroot, the files served by a real web server (lighttpd
# from Debian; python3's http.server when lighttpd is not installed) on
# the port Pebble validates http-01 on. Afterwards nothing acmectl created
# under the webroot is left, and what was there before is untouched.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# As root, lighttpd drops to nobody: then the challenge file is only
# served if acmectl made it (and its directories) world-readable, which is
# the point of the 0644 rule. nobody cannot enter the harness's private
# tmp dir, so the webroot is a separate 0755 directory then.
WEB=$T/www
LOGS=$T
AS_NOBODY=0
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && getent group nogroup >/dev/null 2>&1; then
    WEB=$(mktemp -d /tmp/acmectl-webroot.XXXXXX)
    chmod 755 "$WEB"
    LOGS=$(mktemp -d /tmp/acmectl-weblog.XXXXXX) # lighttpd opens its log as nobody
    chown nobody:nogroup "$LOGS"
    AS_NOBODY=1
fi
mkdir -p "$WEB/.well-known"
echo hello >"$WEB/index.html"
echo keep >"$WEB/.well-known/security.txt"

SERVER_PID=
stop_server() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; true; }
cleanup() {
    stop_server
    if [ "$AS_NOBODY" = 1 ]; then
        rm -rf "$WEB" "$LOGS"
    fi
}
trap cleanup EXIT

LIGHTTPD=$(command -v lighttpd || true)
[ -z "$LIGHTTPD" ] && [ -x /usr/sbin/lighttpd ] && LIGHTTPD=/usr/sbin/lighttpd
if [ -n "$LIGHTTPD" ]; then
    cat >"$T/lighttpd.conf" <<CONF
server.document-root = "$WEB"
server.bind = "127.0.0.1"
server.port = $ACME_TEST_HTTP_PORT
index-file.names = ("index.html")
accesslog.filename = "$LOGS/lighttpd.access.log"
server.modules = ("mod_accesslog")
CONF
    if [ "$AS_NOBODY" = 1 ]; then
        printf 'server.username = "nobody"\nserver.groupname = "nogroup"\n' >>"$T/lighttpd.conf"
    fi
    "$LIGHTTPD" -D -f "$T/lighttpd.conf" >"$T/lighttpd.out" 2>&1 &
    SERVER_PID=$!
    say "serving $WEB with lighttpd on 127.0.0.1:$ACME_TEST_HTTP_PORT"
else
    say "lighttpd not installed (apt-get install lighttpd); using python3 -m http.server"
    python3 -m http.server --bind 127.0.0.1 --directory "$WEB" "$ACME_TEST_HTTP_PORT" >"$T/http.out" 2>&1 &
    SERVER_PID=$!
fi
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$ACME_TEST_HTTP_PORT/" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$T"/lighttpd.out "$T"/http.out 2>/dev/null >&2 || true; fail "the web server exited"; }
    sleep 0.1
done
[ "$(curl -s "http://127.0.0.1:$ACME_TEST_HTTP_PORT/index.html")" = hello ] || fail "the web server does not serve $WEB"

expect_status 0 "$T/issue" --challenge http-01 --webroot "$WEB" --agree-tos --out "$T/out" --json \
    issue web.example.net web2.example.net
verify_chain "$T/out/web.example.net.crt"
grep -q "wrote $WEB/.well-known/acme-challenge/" "$T/issue.stderr" || fail "no challenge file was written"
grep -q "http-01 responder" "$T/issue.stderr" && fail "the built-in responder was started despite --webroot"
pass "issued through --webroot served by a web server"
if [ -n "$LIGHTTPD" ]; then
    stop_server # lighttpd buffers its access log until it stops
    SERVER_PID=
    grep -q 'GET /.well-known/acme-challenge/[A-Za-z0-9_-]* HTTP/1.[01]" 200' "$LOGS/lighttpd.access.log" ||
        fail "lighttpd did not serve the challenge: $(cat "$LOGS/lighttpd.access.log")"
    if [ "$AS_NOBODY" = 1 ]; then
        pass "served by lighttpd running as nobody (files are world-readable)"
    fi
fi

[ ! -e "$WEB/.well-known/acme-challenge" ] || fail "acme-challenge/ left behind: $(ls -la "$WEB/.well-known/acme-challenge")"
[ "$(cat "$WEB/.well-known/security.txt")" = keep ] || fail ".well-known/security.txt was touched"
[ "$(cat "$WEB/index.html")" = hello ] || fail "index.html was touched"
pass "challenge files and the directory acmectl created are gone; the rest is untouched"

echo "issue_webroot: PASS"
