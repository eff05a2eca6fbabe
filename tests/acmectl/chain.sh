#!/bin/bash
# --preferred-chain (harness: PEBBLE_ALTERNATE_ROOTS=1, so Pebble offers
# an alternate chain to another root): the chain asked for by its root's
# name is the one written and reported; without the option, the default.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

root_cn() {
    curl -sS --fail --cacert "$ACME_TEST_CA_FILE" "$ACME_TEST_MGMT/roots/$1" |
        python3 -c '
import re, subprocess, sys
pem = sys.stdin.read()
try:
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline"], input=pem,
                         text=True, capture_output=True, check=True).stdout
    print(re.search(r"commonName\s*=\s*(.+)", out).group(1).strip())
except FileNotFoundError:
    out = subprocess.run(["certtool", "-i"], input=pem, text=True, capture_output=True, check=True).stdout
    print(re.search(r"Subject: .*CN=([^,\n]+)", out).group(1).strip())
'
}
default_root=$(root_cn 0)
alt_root=$(root_cn 1)
[ -n "$alt_root" ] && [ "$alt_root" != "$default_root" ] || fail "Pebble offers no alternate root"

expect_status 0 "$T/default" --challenge http-01 --agree-tos --json issue chain-default.example.com
json_check "$T/default.stdout" "j['certificates'][0]['issuer'] == '$default_root'" "default chain"

expect_status 0 "$T/alt" --challenge http-01 --preferred-chain "$alt_root" --out "$T/out" --json \
    issue chain-alt.example.com
json_check "$T/alt.stdout" "j['certificates'][0]['issuer'] == '$alt_root'" "preferred chain"
pass "--preferred-chain picks the alternate chain ($alt_root)"
echo "chain: PASS"
