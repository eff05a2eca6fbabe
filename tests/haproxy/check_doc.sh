#!/bin/sh
# doc/haproxy.md shows the full HAProxy configuration; the tests run
# examples/haproxy.cfg. They must be the same text: this compares the
# fenced block after the "full config" marker with the file.
#   check_doc.sh doc/haproxy.md examples/haproxy.cfg
set -eu
doc="$1"
cfg="$2"
tmp="${TMPDIR:-/tmp}/check_doc.$$"
trap 'rm -f "$tmp"' EXIT
awk '
    /<!-- full config: examples\/haproxy.cfg -->/ { armed = 1; next }
    armed && !inside && /^```/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }
' "$doc" > "$tmp"
if [ ! -s "$tmp" ]; then
    echo "check_doc: no full config block after the marker in $doc" >&2
    exit 1
fi
if ! diff -u "$cfg" "$tmp" >&2; then
    echo "check_doc: the configuration in $doc differs from $cfg (above: - file, + doc)" >&2
    exit 1
fi
echo "check_doc: $doc shows $cfg exactly"
