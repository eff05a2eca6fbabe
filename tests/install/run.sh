#!/bin/bash
# The installed-tree test: "a program built only from the installed headers
# and pkg-config obtains a certificate".
#
#   run.sh MESON BUILD_DIR SOURCE_DIR WITH_PEBBLE SANITIZE
#
# 1. `meson install --destdir` the build under test into a temporary tree.
# 2. Check the layout the installed libacme.pc describes: headers, the
#    libacme.so -> libacme.so.1 -> libacme.so.1.x.y links, SONAME libacme.so.1.
# 3. Compile tests/install/consumer.c with $CC and nothing but
#    `pkg-config --cflags --libs libacme` (PKG_CONFIG_PATH and
#    PKG_CONFIG_SYSROOT_DIR pointing into the tree), strict C11, -Werror.
# 4. Run it under tests/harness/with-pebble with LD_LIBRARY_PATH pointing
#    into the tree; it must obtain a certificate for consumer.example, and
#    the chain it wrote must name consumer.example (checked with openssl or
#    certtool, not by libacme).
#
# SANITIZE is the build's b_sanitize ("none" or e.g. "address,undefined"):
# a sanitized libacme.so can only be loaded by a sanitized program, so the
# consumer is compiled with the same -fsanitize flags.
set -euo pipefail

if [ $# -ne 5 ]; then
    echo "usage: $0 MESON BUILD_DIR SOURCE_DIR WITH_PEBBLE SANITIZE" >&2
    exit 2
fi
meson=$1 build=$2 src=$3 with_pebble=$4 sanitize=$5
cc=${CC:-cc}

step() { printf '\n== install test: %s\n' "$*"; }
die() { printf 'install test: FAIL: %s\n' "$*" >&2; exit 1; }

for tool in pkg-config readelf; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install pkg-config binutils)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libacme-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

step "meson install --destdir $dest"
"$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; die "meson install failed"; }

pcfile=$(find "$dest" -name libacme.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pcfile" ] || die "no pkgconfig/libacme.pc installed under $dest"
echo "installed $pcfile"
sed 's/^/  | /' "$pcfile"

export PKG_CONFIG_PATH=${pcfile%/libacme.pc}
export PKG_CONFIG_SYSROOT_DIR=$dest
# Keep -I/usr/include and -L/usr/lib (a --prefix=/usr build): without these,
# pkg-config drops them before prefixing the sysroot.
export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1

step "the tree matches libacme.pc"
# The variables as written in the .pc (no sysroot applied to --variable).
includedir=$(PKG_CONFIG_SYSROOT_DIR='' pkg-config --variable=includedir libacme)
libdir=$(PKG_CONFIG_SYSROOT_DIR='' pkg-config --variable=libdir libacme)
version=$(pkg-config --modversion libacme)
case $includedir in /*) ;; *) die "includedir in libacme.pc is not absolute: $includedir" ;; esac
case $libdir in /*) ;; *) die "libdir in libacme.pc is not absolute: $libdir" ;; esac
[ "$PKG_CONFIG_PATH" = "$dest$libdir/pkgconfig" ] ||
    die "libacme.pc is installed in $PKG_CONFIG_PATH, not in its own libdir $libdir/pkgconfig"
for h in "$src"/include/acme/*.h; do
    [ -f "$dest$includedir/acme/${h##*/}" ] || die "header acme/${h##*/} not installed in $includedir/acme"
done
echo "headers: $(cd "$dest$includedir/acme" && echo *.h)"
real=$dest$libdir/libacme.so.$version
if [ ! -f "$real" ] || [ -L "$real" ]; then
    die "$libdir/libacme.so.$version is not installed (as a file)"
fi
[ "$(readlink "$dest$libdir/libacme.so.1")" = "libacme.so.$version" ] ||
    die "$libdir/libacme.so.1 is not a link to libacme.so.$version"
[ "$(readlink "$dest$libdir/libacme.so")" = "libacme.so.1" ] ||
    die "$libdir/libacme.so (the link-time name) is not a link to libacme.so.1"
soname=$(readelf -d "$real" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "libacme.so.1" ] || die "SONAME is '$soname', want libacme.so.1"
echo "libacme.so.$version: SONAME $soname"

step "compile consumer.c from the installed tree"
cflags=$(pkg-config --cflags libacme)
libs=$(pkg-config --libs libacme)
echo "pkg-config --cflags: $cflags"
echo "pkg-config --libs:   $libs"
case " $cflags " in *" -I$dest$includedir "*) ;; *) die "pkg-config --cflags does not point into the installed tree" ;; esac
case " $libs " in *" -L$dest$libdir "*) ;; *) die "pkg-config --libs does not point into the installed tree" ;; esac
san=()
if [ -n "$sanitize" ] && [ "$sanitize" != none ]; then
    san=("-fsanitize=$sanitize")
fi
# $cc, $cflags and $libs are word lists by design (e.g. CC="ccache gcc").
# shellcheck disable=SC2086
$cc -std=c11 -Wall -Wextra -Wpedantic -Werror "${san[@]}" -o "$tmp/consumer" \
    "$src/tests/install/consumer.c" $cflags $libs ||
    die "consumer.c does not compile against the installed headers with $cc"
readelf -d "$tmp/consumer" | grep -q 'NEEDED.*\[libacme\.so\.1\]' ||
    die "consumer does not record NEEDED libacme.so.1"

# Only the installed tree (meson test would point it at the build tree).
export LD_LIBRARY_PATH=$dest$libdir
loaded=$(ldd "$tmp/consumer" | awk '$1 == "libacme.so.1" { print $3 }')
[ "$loaded" = "$dest$libdir/libacme.so.1" ] ||
    die "consumer would load libacme.so.1 from '$loaded', not from the installed tree"
echo "consumer loads $loaded"

step "consumer obtains a certificate from Pebble"
"$with_pebble" -- "$tmp/consumer" "$tmp/chain.pem" || die "consumer failed (status $?)"

step "the chain names consumer.example (checked without libacme)"
if command -v openssl >/dev/null 2>&1; then
    leaf=$(openssl x509 -in "$tmp/chain.pem" -noout -subject -ext subjectAltName) ||
        die "openssl cannot read the chain's leaf"
elif command -v certtool >/dev/null 2>&1; then
    leaf=$(certtool -i --infile "$tmp/chain.pem") || die "certtool cannot read the chain's leaf"
else
    die "neither openssl nor certtool found to check the chain"
fi
printf '%s\n' "$leaf" | grep -Eq 'DNS:consumer\.example|DNSname: consumer\.example' ||
    { printf '%s\n' "$leaf" >&2; die "the leaf does not name consumer.example"; }
printf '%s\n' "$leaf" | sed 's/^/  | /'
echo
echo "PASS: installed libacme $version: consumer built from headers + pkg-config obtained a certificate"
