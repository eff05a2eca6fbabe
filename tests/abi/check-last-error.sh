#!/bin/sh
# Every public function that takes an acme_client or an acme_engine must
# clear the client's last error on entry (acme_client_last_error never
# shows an earlier call's sentence). tests/modules/test_last_error.c
# checks that call by call; this script fails when a public function of
# that kind is missing from its walk, so a new one cannot be forgotten.
#
#   tests/abi/check-last-error.sh include/acme tests/modules/test_last_error.c
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 HEADER_DIR WALK_TEST_C" >&2
    exit 2
fi
hdr_dir=$1
walk=$2

# Exempt, with the reason: these make or end the handle, so there is no
# earlier sentence to show (new) or nothing to read it from (free).
# acme_ca_list_add hands the client over to the list, and
# acme_ca_list_engine_new makes the engine (the list's own last error
# speaks for both: acme_ca_list_last_error).
exempt="acme_client_new acme_client_free acme_engine_free acme_ca_list_add acme_ca_list_engine_new"

missing=0
for fn in $(perl -0777 -ne '
        s{/\*.*?\*/}{}gs; s{^\s*#.*$}{}mg;
        while (/ACME_EXPORT\s+[^;{]*?\b(acme_\w+)\s*\(([^)]*)\)/gs) {
            my ($n, $a) = ($1, $2);
            # a non-const client or engine among the parameters
            print "$n\n" if $a =~ /(^|,)\s*(struct\s+)?acme_(client|engine)\s*\*/;
        }' "$hdr_dir"/*.h | sort -u); do
    case " $exempt " in
    *" $fn "*) continue ;;
    esac
    if ! grep -Eq "(^|[^A-Za-z0-9_])WALK\\($fn," "$walk"; then
        echo "check-last-error: $fn takes a client or an engine but is not in $walk's walk" >&2
        missing=1
    fi
done
if [ "$missing" -ne 0 ]; then
    echo "check-last-error: add a WALK(...) line for each (and clear the last error on entry)" >&2
    exit 1
fi
echo "check-last-error: every public call on a client or an engine is walked"
