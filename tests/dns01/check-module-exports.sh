#!/bin/sh
# The dns01 module must export acme_module_entry and nothing else
# (modules/dns01/dns01.map, -fvisibility=hidden), and say which libraries
# it needs: libacme's public ABI, gnutls, libcurl, jansson.
#
#   tests/dns01/check-module-exports.sh path/to/acme_dns01.so
set -eu
module=$1
exports=$(nm -D --defined-only "$module" | awk '$2 ~ /^[TDBRVWi]$/ { print $3 }' | sort)
if [ "$exports" != "acme_module_entry" ]; then
    echo "check-module-exports: $module exports:" >&2
    echo "$exports" >&2
    echo "check-module-exports: want exactly acme_module_entry" >&2
    exit 1
fi
needed=$(readelf -d "$module" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for lib in libacme.so.1 libgnutls.so.30; do
    case " $(echo "$needed" | tr '\n' ' ') " in
    *" $lib "*) ;;
    *)
        echo "check-module-exports: $module does not record NEEDED $lib" >&2
        exit 1
        ;;
    esac
done
echo "$module: exports acme_module_entry only; needs $(echo "$needed" | tr '\n' ' ')"
