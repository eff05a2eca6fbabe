#!/bin/bash
# The installed-tree test: "a program built only from the installed headers
# and pkg-config obtains a certificate".
#
#   run.sh MESON BUILD_DIR SOURCE_DIR WITH_PEBBLE SANITIZE
#
# 1. `meson install --destdir` the build under test into a temporary tree.
# 2. Check the layout the installed libacme.pc describes: headers, the
#    libacme.so -> libacme.so.1 -> libacme.so.1.x.y links, SONAME libacme.so.1.
# 3. Compile every installed header alone, then tests/install/consumer.c with $CC and nothing but
#    `pkg-config --cflags --libs libacme` (PKG_CONFIG_PATH and
#    PKG_CONFIG_SYSROOT_DIR pointing into the tree), strict C11, -Werror.
#    pkg-config --cflags must carry nothing but the include directory (no
#    gnutls/p11-kit flags); --static --libs must still name the libraries.
#    Every exported function has an installed man page that man renders,
#    and every example of doc/ and the man pages compiles (and, if it is a
#    program, links) against the installed tree (tests/doc/check-man.py
#    --extract).
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

for tool in pkg-config readelf perl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install pkg-config binutils perl)"
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

step "every installed header compiles on its own"
# A consumer may include any one header first and alone (<acme/etcd.h>
# for a cluster host, <acme/engine.h>...): each brings what it needs.
nhdr=0
cflags_alone=$(pkg-config --cflags libacme)
for h in "$dest$includedir"/acme/*.h; do
    printf '#include <acme/%s>\nint main(void) { return 0; }\n' "${h##*/}" >"$tmp/alone.c"
    # shellcheck disable=SC2086
    $cc -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only "$tmp/alone.c" $cflags_alone ||
        die "acme/${h##*/} does not compile on its own from the installed tree"
    nhdr=$((nhdr + 1))
done
[ -f "$dest$includedir/acme/etcd.h" ] || die "acme/etcd.h (the etcd storage API) is not installed"
echo "$nhdr headers compile alone (acme/etcd.h among them)"

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

step "pkg-config --cflags carries no dependency's flags"
# No public header includes gnutls, jansson or libcurl: a consumer must not
# get their include paths (gnutls brings p11-kit's) in its compile line.
for flag in $cflags; do
    [ "$flag" = "-I$dest$includedir" ] ||
        die "pkg-config --cflags libacme has '$flag'; only -I$includedir belongs there (no public header includes gnutls/p11-kit/jansson/curl): keep them in Requires.internal / Libs.private"
done
case " $cflags " in *gnutls*|*p11-kit*) die "pkg-config --cflags libacme names gnutls or p11-kit: $cflags" ;; esac
static_libs=$(pkg-config --static --libs libacme)
for lib in -lgnutls -ljansson -lcurl; do
    case " $static_libs " in *" $lib "*) ;; *) die "pkg-config --static --libs libacme lacks $lib, so static linking breaks: $static_libs" ;; esac
done
echo "cflags: $cflags; static libs include gnutls, jansson, curl"

step "every exported function has an installed man page"
man3=$(find "$dest" -type d -path '*/man/man3' | head -n 1)
[ -n "$man3" ] || die "no man/man3 directory installed under $dest"
[ -f "$man3/libacme.3" ] || die "libacme.3 is not installed in $man3"
[ -f "${man3%/man3}/man1/acmectl.1" ] || die "acmectl.1 is not installed in ${man3%/man3}/man1"
funcs=$(perl -0777 -ne 's{/\*.*?\*/}{ }gs; s{^[ \t]*#[^\n]*}{}mg; while (/\bACME_EXPORT\b[^;{}()]*?\b([A-Za-z_]\w*)\s*\(/g) { print "$1\n" }' \
    "$dest$includedir"/acme/*.h | sort -u)
nfunc=0
for f in $funcs; do
    [ -f "$man3/$f.3" ] || die "no installed man page $man3/$f.3 for the exported function $f"
    nfunc=$((nfunc + 1))
done
if command -v man >/dev/null 2>&1; then
    # Through man itself, so the ".so" aliases of grouped pages resolve as
    # a user's `man acme_challenge_token` would.
    for f in $funcs; do
        out=$(MANWIDTH=80 man -M "${man3%/man3}" -P cat 3 "$f" 2>&1) ||
            die "man 3 $f fails from the installed tree: $out"
        grep -q "$f" <<<"$out" || die "man 3 $f does not mention $f"
    done
    echo "$nfunc functions: each has a page, and man renders it from $man3"
else
    echo "$nfunc functions: each has a page in $man3 (man not installed: not rendered)"
fi

step "every example in doc/ and the man pages compiles against the installed tree"
command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install python3)"
python3 "$src/tests/doc/check-man.py" "$src" --extract "$tmp/examples" || die "extracting the examples failed"
nex=0
while read -r file kind; do
    obj=$tmp/examples/${file%.c}
    if [ "$kind" = main ]; then
        # shellcheck disable=SC2086
        $cc -std=c11 -Wall -Wextra -Wpedantic -Werror "${san[@]}" -o "$obj" "$tmp/examples/$file" $cflags $libs ||
            die "$(head -n 1 "$tmp/examples/$file") does not compile and link against the installed tree"
    else
        # shellcheck disable=SC2086
        $cc -std=c11 -Wall -Wextra -Wpedantic -Werror "${san[@]}" -fPIC -c -o "$obj.o" "$tmp/examples/$file" $cflags ||
            die "$(head -n 1 "$tmp/examples/$file") does not compile against the installed tree"
    fi
    nex=$((nex + 1))
done <"$tmp/examples/examples.list"
[ "$nex" -gt 0 ] || die "no examples found"
echo "$nex examples compile against the installed headers (programs also link)"

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
