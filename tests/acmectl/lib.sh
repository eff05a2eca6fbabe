# shellcheck shell=bash
# Shared helpers for the acmectl tests. Sourced by each test script, which
# runs under tests/harness/with-pebble with the acmectl binary as $1.
#
# Every test gets its own state directory under ACME_TEST_TMPDIR and runs
# acmectl with the harness's ports on 127.0.0.1 only.

ACMECTL=${1:?usage: $0 /path/to/acmectl}
: "${ACME_TEST_DIRECTORY:?run this under tests/harness/with-pebble}"
T=$ACME_TEST_TMPDIR
STATE=$T/state
TEST_NAME=$(basename "$0" .sh)

say() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }
fail() {
    printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2
    exit 1
}
pass() { printf '%s: ok: %s\n' "$TEST_NAME" "$*" >&2; }

# acmectl with the harness's CA, trust, ports and a private state dir.
ACTL=("$ACMECTL" --directory "$ACME_TEST_DIRECTORY" --ca-file "$ACME_TEST_CA_FILE"
      --state-dir "$STATE" --http-port "$ACME_TEST_HTTP_PORT"
      --tls-port "$ACME_TEST_TLS_PORT" --bind 127.0.0.1)
actl() { "${ACTL[@]}" "$@"; }

# Run acmectl, keep stdout/stderr in files, and check the exit status.
#   expect_status WANT OUTPREFIX acmectl-args...
expect_status() {
    local want=$1 out=$2
    shift 2
    local rc=0
    actl "$@" >"$out.stdout" 2>"$out.stderr" || rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "---- stdout ----" >&2
        cat "$out.stdout" >&2
        echo "---- stderr ----" >&2
        cat "$out.stderr" >&2
        fail "acmectl $* exited $rc, expected $want"
    fi
}

# A JSON document on stdout: evaluate a Python expression over it (as j).
json_check() {
    local file=$1 expr=$2 what=$3
    python3 - "$file" "$expr" <<'EOF' || fail "$what: $expr does not hold for $(cat "$file")"
import json, sys
with open(sys.argv[1]) as f:
    j = json.load(f)
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}

# Pebble's root (its roots change every run), fetched over the management
# interface with the harness's trust.
pebble_root() {
    curl -sS --fail --cacert "$ACME_TEST_CA_FILE" "$ACME_TEST_MGMT/roots/0" -o "$T/pebble-root.pem" ||
        fail "cannot fetch Pebble's root from $ACME_TEST_MGMT/roots/0"
    echo "$T/pebble-root.pem"
}

# The chain file verifies up to Pebble's root.
verify_chain() {
    local chain=$1 root
    root=$(pebble_root)
    if command -v certtool >/dev/null 2>&1; then
        certtool --verify --load-ca-certificate "$root" --infile "$chain" >"$T/verify.out" 2>&1 ||
            { cat "$T/verify.out" >&2; fail "certtool: $chain does not verify against Pebble's root"; }
    else
        openssl verify -CAfile "$root" -untrusted "$chain" "$chain" >"$T/verify.out" 2>&1 ||
            { cat "$T/verify.out" >&2; fail "openssl: $chain does not verify against Pebble's root"; }
    fi
}

# The leaf's serial number in lower-case hex without separators.
leaf_serial() {
    python3 - "$1" <<'EOF'
import re, subprocess, sys
pem = open(sys.argv[1]).read()
leaf = pem[:pem.index("-----END CERTIFICATE-----") + 25]
try:
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=leaf, text=True,
                         capture_output=True, check=True).stdout
    print(out.strip().split("=", 1)[1].lower().lstrip("0") or "0")
except (FileNotFoundError, subprocess.CalledProcessError):
    out = subprocess.run(["certtool", "-i"], input=leaf, text=True, capture_output=True,
                         check=True).stdout
    m = re.search(r"Serial Number \(hex\): ([0-9a-fA-F]+)", out)
    print(m.group(1).lower().lstrip("0") or "0")
EOF
}

file_mode() { stat -c %a "$1"; }
