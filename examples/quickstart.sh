#!/bin/bash
# Quickstart: from a fresh Debian 12 machine to a real certificate issued by
# a local ACME CA (Pebble), in one command:
#
#   bash examples/quickstart.sh            # as root, or a user with sudo
#   bash examples/quickstart.sh --no-apt   # packages already installed
#
# 1. apt-get installs the packages listed in .ci/packages.txt (all but the
#    CI-only ones): compiler, meson, the three libraries, Pebble, openssl...
# 2. meson setup build && meson compile -C build
# 3. tests/harness/with-pebble starts a throwaway Pebble on loopback; inside
#    it, build/examples/acmectl/acmectl registers an account, answers
#    http-01 with libacme's built-in responder and obtains a certificate for
#    quickstart.example (the harness's DNS resolves every name to
#    127.0.0.1). Its subject, issuer, names and expiry are printed, then the
#    harness stops Pebble. (examples/issue_cert.c does the same in ~100
#    lines of embedding code; the tests build and run it too.)
#
# The certificate and key are left in build/quickstart/ to look at; they are
# signed by a CA that existed only for this run.
set -euo pipefail

cd "$(dirname "$0")/.."
top=$PWD
name=quickstart.example

apt=1
for arg in "$@"; do
    case $arg in
    --no-apt) apt=0 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "quickstart: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { printf '\n==> %s\n' "$*"; }

if [ "$apt" = 1 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "quickstart: installing packages needs root: run as root or install sudo" >&2
        exit 1
    fi
    # The one package list (shared with .ci/run); [ci] lines are CI-only.
    mapfile -t packages < <(sed -e 's/#.*//' .ci/packages.txt | awk 'NF && $2 != "[ci]" { print $1 }')
    say "installing: ${packages[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

say "building libacme (meson setup build && meson compile -C build)"
meson setup build
meson compile -C build

out=$top/build/quickstart
rm -rf "$out"
mkdir -p "$out"

say "issuing a certificate for $name from a throwaway local Pebble"
# Single quotes on purpose: the ACME_TEST_* variables are set by the harness.
# shellcheck disable=SC2016
tests/harness/with-pebble -- bash -c '
    set -euo pipefail
    echo "Pebble directory: $ACME_TEST_DIRECTORY"
    "$0" --directory "$ACME_TEST_DIRECTORY" --ca-file "$ACME_TEST_CA_FILE" \
         --state-dir "$ACME_TEST_TMPDIR/state" --agree-tos --challenge http-01 \
         --http-port "$ACME_TEST_HTTP_PORT" --bind 127.0.0.1 --out "$1" issue "$2"
    echo
    echo "The certificate, as openssl reads it:"
    openssl x509 -in "$1/$2.crt" -noout -subject -issuer -ext subjectAltName -enddate
' "$top/build/examples/acmectl/acmectl" "$out" "$name"

say "done: $out/$name.crt and $out/$name.key (Pebble has been stopped)"
echo "Next: meson test -C build --print-errorlogs   (the test suite; see README.md)"
