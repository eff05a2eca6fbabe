#!/bin/bash
# acmectl run with bad configuration files: exit status 1 (usage) and a
# message naming FILE:LINE: KEY, before anything is sent to the CA (the
# state directory gets no account). A certificate nothing here can
# answer: exit status 3, also before anything is sent. With HAP_MODULE
# (the HAProxy module) set, a key the module refuses is blamed on its line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/run_lib.sh"

CONF=$T/bad.conf

# expect_bad WANT-STATUS TEXT... : run $CONF, expect the status and every TEXT on stderr.
expect_bad() {
    local want=$1 rc=0
    shift
    timeout 20 "$ACMECTL" run "$CONF" >"$T/bad.stdout" 2>"$T/bad.stderr" || rc=$?
    if [ "$rc" -ne "$want" ]; then
        cat -n "$CONF" >&2
        cat "$T/bad.stderr" >&2
        fail "exit status $rc, expected $want"
    fi
    local t
    for t in "$@"; do
        grep -qF -- "$t" "$T/bad.stderr" || { cat -n "$CONF" >&2; cat "$T/bad.stderr" >&2; fail "stderr lacks \"$t\""; }
    done
    [ ! -s "$T/bad.stdout" ] || fail "something on stdout: $(cat "$T/bad.stdout")"
    pass "$(head -n 1 "$T/bad.stderr")"
}

# 1. An unknown key in [global].
run_global "$CONF" <<'EOF'
http-prot = 80
EOF
expect_bad 1 "$CONF:11: http-prot: unknown key in [global]"

# 2. A value out of range, after a comment and a blank line.
run_global "$CONF" <<'EOF'

# the responder
http-port = 99999   # too big
EOF
expect_bad 1 "$CONF:13: http-port: \"99999\": give a number from 1 to 65535"

# 3. A key given twice.
run_global "$CONF" <<'EOF'
key-type = ec-256
key-type = ec-384
EOF
expect_bad 1 "$CONF:12: key-type: given twice in this section (first on line 11)"

# 4. A certificate without names; a bad name; a wildcard with nothing for dns-01.
run_global "$CONF" <<'EOF'
http-port = 80
[certificate www]
key-type = ec-384
EOF
expect_bad 1 "$CONF:12: [certificate www] has no names"
run_global "$CONF" <<'EOF'
http-port = 80
[certificate www]
names = www.example.com bad_name.example.com
EOF
expect_bad 1 "$CONF:13: names: " "bad_name.example.com"
run_global "$CONF" <<EOF
http-port = $ACME_TEST_HTTP_PORT
[certificate wild]
names = *.wild.example.com
EOF
expect_bad 3 "$CONF:12: [certificate wild]: names: a wildcard needs dns-01"
if ls "$STATE"/*/account/account.json >/dev/null 2>&1; then fail "an account was created"; fi

# 5. Syntax: no '=', no section, an unknown section, a module without path.
printf 'directory https://x.example/dir\n' >"$CONF"
expect_bad 1 "$CONF:1: \"directory https://x.example/dir\" is not key = value"
printf '# nothing yet\ndirectory = https://x.example/dir\n' >"$CONF"
expect_bad 1 "$CONF:2: directory: outside a section"
run_global "$CONF" <<'EOF'
[modul haproxy]
EOF
expect_bad 1 "$CONF:11: unknown section [modul]"
run_global "$CONF" <<'EOF'
[module haproxy]
socket = /run/haproxy/admin.sock
[certificate]
names = a.example.com
EOF
expect_bad 1 "$CONF:11: [module haproxy] has no path"
run_global "$CONF" <<'EOF'
[module dns]
path = /nonexistent/acme_dns01.so
EOF
expect_bad 1 "$CONF:12: path: /nonexistent/acme_dns01.so: No such file or directory"
# A bare name would be dlopen()'s to look up: refused, not searched for.
run_global "$CONF" <<'EOF'
[module dns]
path = acme_dns01.so
EOF
expect_bad 1 "$CONF:12: path: \"acme_dns01.so\": give the module's path (an absolute path, or ./acme_dns01.so): a bare name would be searched for in the dynamic linker's path"

# 6. Missing directory, missing file, options that belong in the file.
printf '[global]\nhttp-port = 80\n[certificate]\nnames = a.example.com\n' >"$CONF"
expect_bad 1 "$CONF:1: directory: missing"
rc=0
"$ACMECTL" run "$T/nonexistent.conf" 2>"$T/bad.stderr" || rc=$?
[ "$rc" = 1 ] && grep -qF "$T/nonexistent.conf: No such file or directory" "$T/bad.stderr" ||
    fail "a missing file: exit $rc: $(cat "$T/bad.stderr")"
rc=0
"$ACMECTL" --directory "$ACME_TEST_DIRECTORY" run "$CONF" 2>"$T/bad.stderr" || rc=$?
[ "$rc" = 1 ] && grep -qF "not --directory" "$T/bad.stderr" ||
    fail "--directory with run: exit $rc: $(cat "$T/bad.stderr")"
pass "a missing file and an option for the file are usage errors"

# 7. A module refuses one of its keys: blamed on that key's line.
if [ -n "${HAP_MODULE:-}" ]; then
    run_global "$CONF" <<EOF
http-port = $ACME_TEST_HTTP_PORT

[module haproxy]
path = $HAP_MODULE
socket = $T/admin.sock
map = $T/challenges.map
cert-dir = $T/certs
cert-mode = 0777
[certificate]
names = a.example.com
EOF
    expect_bad 1 "$CONF:18: [module haproxy]: module haproxy: configuration refused: cert-mode"
else
    say "HAP_MODULE not set: the module-key case is skipped"
fi

# 8. Nothing can answer: http-01 only, and no http-port.
run_global "$CONF" <<'EOF'
challenge = http-01
[certificate]
names = a.example.com
EOF
expect_bad 3 "$CONF:12: [certificate]: challenge: none of its challenge types can be answered here"

# 9. A status file that cannot be written: storage, before the account.
run_global "$CONF" <<EOF
http-port = $ACME_TEST_HTTP_PORT
status-file = $T/no/such/dir/status.json
[certificate]
names = a.example.com
EOF
expect_bad 5 "$CONF: status-file $T/no/such/dir/status.json: No such file or directory"
if ls "$STATE"/*/account/account.json >/dev/null 2>&1; then fail "an account was created"; fi
echo "run_config: PASS"
