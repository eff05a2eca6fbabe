#!/bin/sh
# fetch-lighttpd-src.sh DIR — put a configured lighttpd source tree that
# matches the INSTALLED Debian lighttpd under DIR, for building mod_acme.
#
#   modules/lighttpd/fetch-lighttpd-src.sh /tmp/lighttpd-src
#   meson setup build -Dlighttpd_src="$(modules/lighttpd/fetch-lighttpd-src.sh /tmp/lighttpd-src)"
#
# lighttpd installs no headers, and the layout of its structs depends on
# config.h, so the module must be compiled against the same source the
# binary was built from, configured the same way. This script:
#   1. reads the installed lighttpd version (dpkg-query);
#   2. if apt has no source entries, adds them by copying the system's own
#      Debian entries with "Types: deb-src" (deb822) or "deb-src" (one-line
#      form) into /etc/apt/sources.list.d/libacme-deb-src.*, then runs
#      apt-get update;
#   3. installs what configure needs (libpcre2-dev, dpkg-dev, pkg-config,
#      gcc, make) when missing;
#   4. runs "apt-get source lighttpd=<version>" in DIR and then ONLY the
#      autotools ./configure in the unpacked tree (no make). The autotools
#      config.h carries LIGHTTPD_VERSION_ID 0x10445 for 1.4.69, which is
#      what Debian's binary checks; lighttpd's meson setup writes a wrong
#      value (0x10469) and must not be used.
# Prints the absolute path of the configured tree on stdout (everything
# else goes to stderr). Idempotent: a tree already configured for the
# installed version is reused at once. Steps 2 and 3 need root.
set -eu

prog=fetch-lighttpd-src
say() { echo "$prog: $*" >&2; }
die() { say "$*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DIR"
dir=$1

full=$(dpkg-query -W -f='${Version}' lighttpd 2>/dev/null || true)
[ -n "$full" ] || die "lighttpd is not installed (apt-get install lighttpd lighttpd-mod-openssl)"
# 1.4.69-1 -> 1.4.69 (drop the epoch and the Debian revision)
upstream=${full#*:}
upstream=${upstream%-*}
tree=$dir/lighttpd-$upstream

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
tree=$dir/lighttpd-$upstream
stamp=$tree/.libacme-configured

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$full" ] && [ -f "$tree/config.h" ]; then
    echo "$tree"
    exit 0
fi

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (or do it by hand, then run this again)"
}

# ---- 2. source entries ----------------------------------------------------
have_src() {
    grep -Eqs '^[[:space:]]*Types:.*deb-src' /etc/apt/sources.list.d/*.sources 2>/dev/null && return 0
    grep -Eqs '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null && return 0
    return 1
}

if ! have_src; then
    need_root "adding deb-src entries"
    added=no
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        case $f in *libacme-deb-src*) continue ;; esac
        grep -Eqs '^[[:space:]]*Types:.*\bdeb\b' "$f" || continue
        # Same stanzas (URIs, suites, components, keyring), source type.
        sed -E 's/^([[:space:]]*Types:).*/\1 deb-src/' "$f" >> /etc/apt/sources.list.d/libacme-deb-src.sources
        added=yes
    done
    if [ -f /etc/apt/sources.list ] && grep -Eqs '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list; then
        sed -nE 's/^[[:space:]]*deb([[:space:]])/deb-src\1/p' /etc/apt/sources.list > /etc/apt/sources.list.d/libacme-deb-src.list
        added=yes
    fi
    [ $added = yes ] || die "found no Debian 'deb' entry in /etc/apt to copy as deb-src"
    say "added deb-src entries (copies of the system's entries); running apt-get update"
    apt-get update -q >&2 || die "apt-get update failed"
    have_src || die "still no deb-src entries after copying"
fi

# ---- 3. tools -------------------------------------------------------------
missing=
dpkg-query -W -f='${Status}' libpcre2-dev 2>/dev/null | grep -q 'ok installed' || missing="$missing libpcre2-dev"
command -v dpkg-source >/dev/null 2>&1 || missing="$missing dpkg-dev"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
if [ -n "$missing" ]; then
    need_root "installing$missing"
    say "installing$missing"
    # shellcheck disable=SC2086 # a list of package names, split on purpose
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2 \
        || die "apt-get install$missing failed"
fi

# ---- 4. source + configure ------------------------------------------------
if [ ! -f "$tree/configure" ]; then
    rm -rf "$tree"
    say "apt-get source lighttpd=$full into $dir"
    # apt-get source may warn when run as root (unsandboxed download): harmless.
    (cd "$dir" && apt-get source -q "lighttpd=$full" >&2) || {
        # The list may be stale: refresh once and retry.
        need_root "apt-get update"
        apt-get update -q >&2 || true
        (cd "$dir" && apt-get source -q "lighttpd=$full" >&2) || die "apt-get source lighttpd=$full failed"
    }
    [ -f "$tree/configure" ] || die "apt-get source did not unpack $tree/configure"
fi

say "configuring $tree (autotools ./configure only)"
(cd "$tree" && ./configure -q --with-pcre2 >"$tree/.libacme-configure.log" 2>&1) || {
    tail -n 30 "$tree/.libacme-configure.log" >&2
    die "./configure failed (log: $tree/.libacme-configure.log)"
}
[ -f "$tree/config.h" ] || die "./configure wrote no config.h"
grep -q 'define HAVE_PCRE2_H' "$tree/config.h" || die "config.h lacks HAVE_PCRE2_H (is libpcre2-dev installed?)"
echo "$full" > "$stamp"
echo "$tree"
