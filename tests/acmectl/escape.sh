#!/bin/bash
# Terminal injection: text from the CA (a problem detail, a subproblem's
# identifier, the terms of service URL, an account's contacts) with raw
# ESC sequences, BEL, CR/LF and DEL must reach acmectl's stdout and stderr
# escaped (\x1b, \x0d, \x0a, \x7f), never raw; --json carries it JSON-escaped
# and intact. Pebble quotes such bytes itself, so the CA here is
# hostile_ca_standin.py (it sends only this fault). Runs under with-pebble
# for the scratch directory and lib.sh; Pebble itself is not used.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || { echo "escape: openssl not found, skipping"; exit 77; }

# A throwaway CA and a certificate for 127.0.0.1 for the stand-in.
C=$T/standin
mkdir -p "$C"
ecparam=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ecparam[@]}" -keyout "$C/ca.key" -out "$C/ca.pem" -days 2 -subj /CN=standin-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1 ||
    fail "openssl: cannot make the stand-in's CA"
openssl req -new "${ecparam[@]}" -keyout "$C/srv.key" -out "$C/srv.csr" -subj /CN=127.0.0.1 >/dev/null 2>&1 ||
    fail "openssl: cannot make the stand-in's key"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$C/ext.cnf"
openssl x509 -req -in "$C/srv.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -set_serial 0x51a7d1 -days 2 \
    -extfile "$C/ext.cnf" -out "$C/srv.pem" >/dev/null 2>&1 || fail "openssl: cannot sign the stand-in's certificate"

python3 "$(dirname "$0")/hostile_ca_standin.py" "$C/srv.pem" "$C/srv.key" "$C/port" 2>"$C/standin.log" &
STANDIN=$!
trap 'kill $STANDIN 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$C/port" ] && break; sleep 0.05; done
[ -s "$C/port" ] || fail "the stand-in did not start: $(cat "$C/standin.log")"
BASE=https://127.0.0.1:$(cat "$C/port")

# acmectl against the stand-in in MODE, with a state directory per mode.
hostile() {
    local want=$1 out=$2 mode=$3
    shift 3
    local rc=0
    "$ACMECTL" --directory "$BASE/$mode/dir" --ca-file "$C/ca.pem" --state-dir "$T/state-$mode" "$@" \
        >"$out.stdout" 2>"$out.stderr" || rc=$?
    [ "$rc" -eq "$want" ] || { cat "$out.stdout" "$out.stderr" >&2; fail "acmectl $* ($mode) exited $rc, expected $want"; }
}

# No byte below 0x20 but the line ends, no DEL, no line that the CA forged;
# and the hostile text did arrive (escaped), so the check is not vacuous.
no_raw_controls() {
    local file=$1 what=$2
    python3 - "$file" "$what" <<'PY' || fail "$what: $(cat -v "$file")"
import sys
data = open(sys.argv[1], "rb").read()
bad = sorted({b for b in data if (b < 0x20 and b != 0x0a) or b == 0x7f})
if bad:
    sys.exit(f"{sys.argv[2]}: raw control bytes {[hex(b) for b in bad]} in the output")
if any(l.startswith(b"acmectl: FAKE") for l in data.split(b"\n")):
    sys.exit(f"{sys.argv[2]}: the CA forged a line of its own")
if b"\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x0aacmectl: FAKE line\\x7f" not in data:
    sys.exit(f"{sys.argv[2]}: the hostile text is not in the output, escaped")
PY
}

# 1. An account whose contact carries controls: account update (makes the
#    key; the stand-in "finds" an account for it), then show, for a person.
hostile 0 "$T/make" show account update
no_raw_controls "$T/make.stdout" "account update (stdout)"
hostile 0 "$T/show" show account show
no_raw_controls "$T/show.stdout" "account show (stdout)"
grep -q '^contact: mailto:admin@example.org\\x1b\[2J' "$T/show.stdout" || fail "the contact line is missing: $(cat -v "$T/show.stdout")"
pass "account show: the CA's contact is escaped"

# 2. The same with --json: escaped by the JSON encoder, intact once decoded.
hostile 0 "$T/showj" show --json account show
python3 - "$T/showj.stdout" <<'PY' || fail "--json account show: $(cat -v "$T/showj.stdout")"
import json, sys
raw = open(sys.argv[1], "rb").read()
assert not [b for b in raw if (b < 0x20 and b != 0x0a) or b == 0x7f], "raw control bytes in --json output"
j = json.loads(raw)
want = "mailto:admin@example.org\x1b[2J\x1b]0;pwned\x07\r\nacmectl: FAKE line\x7f"
assert j["account"]["contacts"] == [want], j["account"]["contacts"]
PY
pass "--json account show: JSON-escaped, the contact intact"

# 3. A problem document with controls in its detail, a subproblem's detail
#    and its identifier: the error lines on stderr (and -v: libacme's log
#    lines as progress lines).
hostile 6 "$T/prob" problem -v account update
no_raw_controls "$T/prob.stderr" "a hostile problem document (stderr)"
grep -q 'for dns x.example\\x1b' "$T/prob.stderr" || fail "the subproblem's identifier is missing: $(cat -v "$T/prob.stderr")"
hostile 6 "$T/probj" problem --json account update
no_raw_controls "$T/probj.stderr" "a hostile problem document (stderr, --json)"
python3 - "$T/probj.stdout" <<'PY' || fail "--json problem: $(cat -v "$T/probj.stdout")"
import json, sys
raw = open(sys.argv[1], "rb").read()
assert not [b for b in raw if (b < 0x20 and b != 0x0a) or b == 0x7f], "raw control bytes in --json output"
j = json.loads(raw)
assert j["error"]["problem"]["detail"].startswith("refused\x1b[2J"), j["error"]["problem"]
assert j["error"]["problem"]["subproblems"][0]["identifier"]["value"].startswith("x.example\x1b"), j
PY
pass "a problem document with controls: escaped on stderr, intact in --json"

# 4. Terms of service whose URL carries controls, not agreed to: acmectl's
#    own sentence (naming --agree-tos, not libacme's agree_tos) quotes the
#    URL escaped.
hostile 2 "$T/tos" tos account update
no_raw_controls "$T/tos.stderr" "terms of service (stderr)"
grep -q -- "--agree-tos" "$T/tos.stderr" || fail "--agree-tos is not named: $(cat -v "$T/tos.stderr")"
if grep -q "agree_tos" "$T/tos.stderr"; then fail "libacme's field name agree_tos reached acmectl's user"; fi
pass "terms of service URL with controls: escaped, --agree-tos named"
echo "escape: PASS"
