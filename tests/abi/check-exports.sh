#!/bin/sh
# The ABI gate: the dynamic symbols libacme.so exports must be exactly the
# functions the public headers declare with ACME_EXPORT — no more (an
# internal helper leaking out becomes ABI forever), no fewer (a declared
# function missing from the library breaks programs at load time).
#
#   tests/abi/check-exports.sh path/to/libacme.so include/acme
#
# Run by `meson test --suite abi`. Needs nm (binutils) and perl.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 LIBACME_SO HEADER_DIR" >&2
    exit 2
fi
lib=$1
hdr_dir=$2

for tool in nm perl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check-exports: $tool not found (apt-get install binutils perl)" >&2
        exit 2
    fi
done
if [ ! -f "$lib" ]; then
    echo "check-exports: no library at $lib" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Declared: every "ACME_EXPORT <type> name(" in the headers, comments and
# preprocessor lines removed, declarations spanning lines joined.
set -- "$hdr_dir"/*.h
if [ ! -f "$1" ]; then
    echo "check-exports: no headers in $hdr_dir" >&2
    exit 2
fi
perl -0777 -ne '
    s{/\*.*?\*/}{ }gs;          # block comments
    s{//[^\n]*}{}g;             # line comments
    s{^[ \t]*#[^\n]*(?:\\\n[^\n]*)*}{}mg;   # preprocessor lines
    while (/\bACME_EXPORT\b([^;{}()]*?)\b([A-Za-z_][A-Za-z0-9_]*)\s*\(/g) {
        print "$2\n";
    }
' "$@" | LC_ALL=C sort -u >"$tmp/declared"

# Exported: defined dynamic symbols, version suffix stripped. The version
# node itself (an absolute symbol named like LIBACME_1.0) is not a symbol
# a program can call and is left out.
nm -D --defined-only "$lib" >"$tmp/nm.out"
awk '$2 != "A" { n = $3; sub(/@.*/, "", n); print n }' "$tmp/nm.out" |
    LC_ALL=C sort -u >"$tmp/exported"
# Exported but not a function (data, TLS, ...): also a leak.
awk '$2 != "A" && $2 != "T" && $2 != "i" { n = $3; sub(/@.*/, "", n); print n " (" $2 ")" }' \
    "$tmp/nm.out" | LC_ALL=C sort -u >"$tmp/nonfunc"
# Exported without a version node from libacme.map.
awk '$2 != "A" && $3 !~ /@@?LIBACME_/ { print $3 }' "$tmp/nm.out" |
    LC_ALL=C sort -u >"$tmp/unversioned"

declared_n=$(wc -l <"$tmp/declared")
exported_n=$(wc -l <"$tmp/exported")
LC_ALL=C comm -13 "$tmp/declared" "$tmp/exported" >"$tmp/extra"
LC_ALL=C comm -23 "$tmp/declared" "$tmp/exported" >"$tmp/missing"

status=0
if [ "$declared_n" -eq 0 ]; then
    echo "FAIL: found no ACME_EXPORT declarations in $hdr_dir" >&2
    status=1
fi
if [ -s "$tmp/extra" ]; then
    echo "FAIL: exported by $lib but declared ACME_EXPORT in no public header:" >&2
    sed 's/^/  + /' "$tmp/extra" >&2
    status=1
fi
if [ -s "$tmp/missing" ]; then
    echo "FAIL: declared ACME_EXPORT in $hdr_dir but not exported by $lib:" >&2
    sed 's/^/  - /' "$tmp/missing" >&2
    status=1
fi
if [ -s "$tmp/nonfunc" ]; then
    echo "FAIL: exported symbols that are not functions:" >&2
    sed 's/^/  ! /' "$tmp/nonfunc" >&2
    status=1
fi
if [ -s "$tmp/unversioned" ]; then
    echo "FAIL: exported symbols without a LIBACME_* version (see libacme/libacme.map):" >&2
    sed 's/^/  ? /' "$tmp/unversioned" >&2
    status=1
fi
if [ $status -eq 0 ]; then
    echo "ok: $exported_n exported symbols = $declared_n ACME_EXPORT declarations"
fi
exit $status
