#!/bin/bash
# External account binding (harness --eab: Pebble requires it): without
# the EAB options an account error (2) that names acmectl's options (not
# libacme's eab_kid/eab_hmac_key); the HMAC key from --eab-hmac-key-file,
# from $ACMECTL_EAB_HMAC_KEY and from --eab-hmac-key each create an
# account and issue; the key is never in acmectl's command line or
# environment (/proc/PID/cmdline, /proc/PID/environ, ps) while a hook runs,
# nor in the hook's environment; the bare option and a key file others can
# read are warned about.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${ACME_TEST_EAB_KID:?run under with-pebble --eab}"
# The harness exports the key; acmectl's environment must not hold it
# here, or the checks below would find the harness's copy.
EAB_HMAC=$ACME_TEST_EAB_HMAC
unset ACME_TEST_EAB_HMAC

expect_status 2 "$T/noeab" --agree-tos --json account update
grep -qi "external account binding" "$T/noeab.stderr" || fail "the missing EAB is not explained: $(cat "$T/noeab.stderr")"
grep -q -- "--eab-kid KID with --eab-hmac-key-file FILE" "$T/noeab.stderr" ||
    fail "acmectl's EAB options are not named: $(cat "$T/noeab.stderr")"
if grep -Eq "eab_kid|eab_hmac_key" "$T/noeab.stderr" "$T/noeab.stdout"; then
    fail "libacme's field names reached acmectl's user: $(cat "$T/noeab.stderr")"
fi
json_check "$T/noeab.stdout" 'j["error"]["code"] == "account" and "--eab-kid" in j["error"]["message"]' "--json account error"
pass "no EAB: exit 2, explained with acmectl's options"

expect_status 1 "$T/half" --eab-kid "$ACME_TEST_EAB_KID" issue x.example.com
grep -q -- "--eab-hmac-key-file" "$T/half.stderr" || fail "--eab-kid alone: the key options are not named"
printf '%s\n' "$EAB_HMAC" >"$T/eab.key"
chmod 600 "$T/eab.key"
expect_status 1 "$T/both" --eab-kid "$ACME_TEST_EAB_KID" --eab-hmac-key-file "$T/eab.key" \
    --eab-hmac-key "$EAB_HMAC" issue x.example.com
expect_status 1 "$T/nofile" --eab-kid "$ACME_TEST_EAB_KID" --eab-hmac-key-file "$T/no-such-file" issue x.example.com
grep -q "no-such-file" "$T/nofile.stderr" || fail "a missing key file is not named"
expect_status 1 "$T/nokid" --eab-hmac-key-file "$T/eab.key" issue x.example.com
pass "incomplete or conflicting EAB options: usage errors"

# A dns-01 hook (through challtestsrv) that, while acmectl waits for it,
# looks for the HMAC key in acmectl's command line and environment, in
# what ps shows, and in its own environment. It reads the key from a file:
# passing it in a variable would put it in acmectl's environment.
export EAB_KEY_PATH=$T/eab.key EAB_SEEN=$T/seen
cat >"$T/hook" <<'SH'
#!/bin/bash
method=$1 type=$2 ident=$3 auth=$5
case "$method" in
begin)
    [ "$type" = dns-01 ] || exit 1
    key=$(cat "$EAB_KEY_PATH")
    where=""
    tr '\0' ' ' <"/proc/$PPID/cmdline" | grep -qF -- "$key" && where="$where cmdline"
    tr '\0' '\n' <"/proc/$PPID/environ" | grep -qF -- "$key" && where="$where environ"
    ps -o args= -p "$PPID" | grep -qF -- "$key" && where="$where ps"
    env | grep -qF -- "$key" && where="$where hook-env"
    # Proof the check looked at acmectl: its command line names the kid.
    tr '\0' ' ' <"/proc/$PPID/cmdline" | grep -qF -- "--eab-kid" || where="$where not-acmectl"
    echo "${where:-clean}" >>"$EAB_SEEN"
    curl -sS --fail -X POST -d "{\"host\":\"_acme-challenge.$ident.\",\"value\":\"$auth\"}" \
        "$ACME_TEST_CHALLTESTSRV/set-txt" >/dev/null
    ;;
done | failed)
    curl -sS --fail -X POST -d "{\"host\":\"_acme-challenge.$ident.\"}" "$ACME_TEST_CHALLTESTSRV/clear-txt" >/dev/null
    ;;
esac
SH
chmod +x "$T/hook"

seen_clean() {
    local what=$1
    [ -s "$EAB_SEEN" ] || fail "$what: the hook did not run"
    [ "$(sort -u "$EAB_SEEN")" = clean ] || fail "$what: the HMAC key was visible: $(cat "$EAB_SEEN")"
    : >"$EAB_SEEN"
}

# 1. --eab-hmac-key-file: a new account, nothing visible, no warning.
expect_status 0 "$T/file" --state-dir "$T/state-file" --agree-tos --eab-kid "$ACME_TEST_EAB_KID" \
    --eab-hmac-key-file "$T/eab.key" --challenge dns-01 --hook "$T/hook" --no-hook-install --json issue eab-file.example.com
json_check "$T/file.stdout" 'j["certificates"][0]["id"] == "eab-file.example.com"' "issued with --eab-hmac-key-file"
seen_clean "--eab-hmac-key-file"
if grep -q "warning: --eab-hmac-key" "$T/file.stderr"; then fail "a 0600 key file was warned about"; fi
pass "--eab-hmac-key-file: account created and issued; the key in no command line or environment"

# 2. $ACMECTL_EAB_HMAC_KEY: the same; the variable is not passed on.
rc=0
ACMECTL_EAB_HMAC_KEY=$EAB_HMAC actl --state-dir "$T/state-env" --agree-tos --eab-kid "$ACME_TEST_EAB_KID" \
    --challenge dns-01 --hook "$T/hook" --no-hook-install --json issue eab-env.example.com \
    >"$T/env.stdout" 2>"$T/env.stderr" || rc=$?
[ "$rc" = 0 ] || { cat "$T/env.stderr" >&2; fail "ACMECTL_EAB_HMAC_KEY: exit $rc"; }
json_check "$T/env.stdout" 'j["certificates"][0]["id"] == "eab-env.example.com"' "issued with ACMECTL_EAB_HMAC_KEY"
seen_clean "ACMECTL_EAB_HMAC_KEY"
pass "ACMECTL_EAB_HMAC_KEY: account created and issued; taken out of the environment"

# 3. --eab-hmac-key: works, with a warning that names the safer forms; the
#    argv copy is overwritten once read (the warning stays: before that,
#    ps could see it).
expect_status 0 "$T/issue" --agree-tos --eab-kid "$ACME_TEST_EAB_KID" --eab-hmac-key "$EAB_HMAC" \
    --challenge dns-01 --hook "$T/hook" --no-hook-install --json issue eab.example.com
json_check "$T/issue.stdout" 'j["certificates"][0]["id"] == "eab.example.com"' "issued with EAB"
grep -q "warning: --eab-hmac-key puts the key on the command line.*--eab-hmac-key-file FILE or ACMECTL_EAB_HMAC_KEY" \
    "$T/issue.stderr" || fail "the bare option is not warned about: $(cat "$T/issue.stderr")"
seen_clean "--eab-hmac-key (after parsing)"
expect_status 0 "$T/again" --challenge http-01 issue eab2.example.com
pass "--eab-hmac-key: works with a warning; later runs need no EAB"

# 4. A key file others can read: a warning naming the file and chmod 600.
chmod 644 "$T/eab.key"
expect_status 0 "$T/open" --state-dir "$T/state-open" --agree-tos --eab-kid "$ACME_TEST_EAB_KID" \
    --eab-hmac-key-file "$T/eab.key" account update
grep -q "warning: --eab-hmac-key-file $T/eab.key can be read by group or others (mode 0644); chmod 600 $T/eab.key" \
    "$T/open.stderr" || fail "a 0644 key file is not warned about: $(cat "$T/open.stderr")"
pass "a key file others can read: warned, with chmod 600"
echo "eab: PASS"
