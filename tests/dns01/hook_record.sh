#!/bin/sh
# Test hook for the dns01 module's hook back end (tests/dns01/it_dns01.c):
#
#   hook_record.sh add|del NAME VALUE
#
# appends "ACTION NAME VALUE zone=ZONE id=IDENTIFIER" to $DNS01_HOOK_LOG,
# then adds or deletes exactly that TXT record in the test's knotd with
# knsupdate and the TSIG key with-knot made. With DNS01_HOOK_FAIL set it
# prints that text and exits 3 instead (the failure path).
set -eu
action=$1 name=$2 value=$3
printf '%s %s %s zone=%s id=%s\n' "$action" "$name" "$value" \
    "${ACME_DNS01_ZONE:-}" "${ACME_DNS01_IDENTIFIER:-}" >>"$DNS01_HOOK_LOG"
if [ -n "${DNS01_HOOK_FAIL:-}" ]; then
    echo "hook_record.sh: $DNS01_HOOK_FAIL"
    exit 3
fi
case $action in
add) op="update add $name. 60 TXT \"$value\"" ;;
del) op="update delete $name. TXT \"$value\"" ;;
*)
    echo "hook_record.sh: unknown action $action" >&2
    exit 2
    ;;
esac
printf 'server %s %s\nzone %s.\n%s\nsend\n' "${DNS01_TEST_SERVER%:*}" "${DNS01_TEST_SERVER##*:}" \
    "$ACME_DNS01_ZONE" "$op" |
    knsupdate -y "$DNS01_TEST_TSIG_ALGORITHM:$DNS01_TEST_TSIG_NAME:$DNS01_TEST_TSIG_SECRET"
echo "hook_record.sh: $action $name done"
