#!/bin/bash
# --out on a disk that is nearly full: the new chain cannot be written, and
# the old key + chain pair must stay exactly as it was (before, the new key
# was written first and the old chain stayed: a pair the web server refuses).
#
# The --out directory is a 256 KiB tmpfs in a private mount namespace
# (unshare -m, so no mount outlives the test); it is filled until exactly
# one page is free: enough for the new key's temporary file, not for the
# chain's. Pebble issues a chain longer than a page (PEBBLE_CHAIN_LENGTH in
# meson.build), so even the page the old key frees once the new key is
# renamed over it would not hold the new chain: the case where writing the
# two files one after the other ends in a mismatched pair.
# Needs root (CI runs as root); skipped (77) otherwise.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -z "${ACMECTL_TEST_MOUNT_NS:-}" ]; then
    if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
        say "skipped: mounting a small tmpfs needs root and unshare -m"
        exit 77
    fi
    exec unshare -m --propagation private env ACMECTL_TEST_MOUNT_NS=1 bash "$0" "$@"
fi

OUT=$T/out
ID=full.example.com
mkdir -p "$OUT"
mount -t tmpfs -o size=256k,mode=0755 tmpfs "$OUT" || { say "skipped: cannot mount a tmpfs here"; exit 77; }
trap 'umount "$OUT" 2>/dev/null || true' EXIT

expect_status 0 "$T/first" --challenge http-01 --agree-tos --out "$OUT" issue "$ID"
cp "$OUT/$ID.key" "$T/old.key"
cp "$OUT/$ID.crt" "$T/old.crt"

# The public key of a PEM private key, and of a chain's leaf.
pub_of_key() { python3 - "$1" <<'PY'
import subprocess, sys
try:
    print(subprocess.run(["openssl", "pkey", "-in", sys.argv[1], "-pubout"], capture_output=True, text=True, check=True).stdout)
except FileNotFoundError:
    out = subprocess.run(["certtool", "--load-privkey", sys.argv[1], "--pubkey-info"], capture_output=True, text=True, check=True).stdout
    print(out[out.index("-----BEGIN PUBLIC KEY-----"):])
PY
}
pub_of_chain() { python3 - "$1" <<'PY'
import subprocess, sys
pem = open(sys.argv[1]).read()
leaf = pem[:pem.index("-----END CERTIFICATE-----") + 25] + "\n"
try:
    print(subprocess.run(["openssl", "x509", "-noout", "-pubkey"], input=leaf, capture_output=True, text=True, check=True).stdout)
except FileNotFoundError:
    out = subprocess.run(["certtool", "--pubkey-info"], input=leaf, capture_output=True, text=True, check=True).stdout
    print(out[out.index("-----BEGIN PUBLIC KEY-----"):])
PY
}
[ "$(pub_of_key "$OUT/$ID.key")" = "$(pub_of_chain "$OUT/$ID.crt")" ] || fail "the first pair does not match"
[ "$(stat -c %s "$OUT/$ID.key")" -le 4096 ] || fail "the key is larger than the page left free below"
[ "$(stat -c %s "$OUT/$ID.crt")" -gt 4096 ] || fail "the chain fits one page: run under with-pebble --env PEBBLE_CHAIN_LENGTH=5"

# Fill the tmpfs, then free exactly one page.
dd if=/dev/zero of="$OUT/filler" bs=4096 >/dev/null 2>&1 || true
truncate -s -4096 "$OUT/filler"
say "tmpfs: $(df -B1 --output=avail "$OUT" | tail -1) bytes free"

expect_status 5 "$T/second" --challenge http-01 --out "$OUT" renew --force "$ID"
grep -q "cannot write $OUT/$ID.crt: No space left on device; the old key and certificate are unchanged" "$T/second.stderr" ||
    fail "the full disk is not explained: $(cat "$T/second.stderr")"
grep -q "stored in the state directory" "$T/second.stderr" || fail "no word that the new certificate is kept"
cmp -s "$OUT/$ID.key" "$T/old.key" || fail "the key in --out changed although its chain could not be written"
cmp -s "$OUT/$ID.crt" "$T/old.crt" || fail "the chain in --out changed"
[ "$(pub_of_key "$OUT/$ID.key")" = "$(pub_of_chain "$OUT/$ID.crt")" ] || fail "the pair on disk does not match"
for f in "$OUT"/* "$OUT"/.[!.]* "$OUT"/..?*; do
    [ -e "$f" ] || continue
    case ${f##*/} in "$ID.key"|"$ID.crt"|filler) ;; *) fail "temporary files left in --out: $(ls -A "$OUT")" ;; esac
done
pass "a full disk: exit 5, explained, the old key and chain byte-identical and matching"

# With room again, the stored certificate goes out as a matching pair.
rm "$OUT/filler"
expect_status 0 "$T/third" --challenge http-01 --out "$OUT" renew --force "$ID"
cmp -s "$OUT/$ID.key" "$T/old.key" && fail "the key was not replaced once there was room"
[ "$(pub_of_key "$OUT/$ID.key")" = "$(pub_of_chain "$OUT/$ID.crt")" ] || fail "the new pair does not match"
pass "with room again, a new matching pair is written"

echo "out_full_disk: PASS"
