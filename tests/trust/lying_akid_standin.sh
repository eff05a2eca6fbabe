#!/bin/sh
# A TLS stand-in for the lying-AKID case (doc/api.md, "Trust on small
# devices"): gnutls-serv on a free loopback port serving only a leaf whose
# Authority Key Identifier claims the harness's real listener root but
# which another key signed. Runs under tests/harness/with-pebble (for
# ACME_TEST_CA_FILE, the real root), then runs CMD with the URL added:
#
#     lying_akid_standin.sh CERTMAKER -- CMD ARGS...   (CMD ARGS... https://127.0.0.1:PORT/dir)
#
# Pebble 2.4 cannot serve such a chain, hence the stand-in: it speaks only
# TLS (and gnutls-serv's HTTP page); the client must refuse it during the
# handshake, before any ACME request.
set -eu
maker=$1; shift
[ "$1" = "--" ] && shift
dir=$ACME_TEST_TMPDIR/lying
mkdir -p "$dir"
"$maker" "$ACME_TEST_CA_FILE" "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
gnutls-serv --http --port "$port" --x509certfile "$dir/leaf.pem" --x509keyfile "$dir/leaf.key" \
    >"$dir/serv.log" 2>&1 &
srv=$!
trap 'kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true' EXIT
# Up when it accepts a TCP connection (at most 10 s).
i=0
until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.5)" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$srv" 2>/dev/null; then
        echo "lying_akid_standin: gnutls-serv did not start:" >&2
        cat "$dir/serv.log" >&2
        exit 2
    fi
    sleep 0.1
done
"$@" "https://127.0.0.1:$port/dir"
