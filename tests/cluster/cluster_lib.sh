# shellcheck shell=bash
# Helpers for the cluster tests: three `acmectl run` nodes on one etcd
# (tests/cluster/with-etcd) and one Pebble (tests/harness/with-pebble), with
# tests/cluster/lb.py in front of their built-in responders on the ports
# Pebble validates on. Sourced by a script that gets acmectl as $1.
#
#   node_conf N < [certificate] sections     write $T/nN/run.conf
#   node_start N / node_stop N               start in the background / SIGTERM
#   node_hup N                               SIGHUP (re-read run.conf)
#   lock_holder CERT-ID                      the node number holding its lock, or ""
#   wait_for WHAT SECONDS CMD...             poll CMD until it succeeds
#   stored_chain CERT-ID                     the chain stored in etcd for it

ACMECTL=${1:?usage: $0 /path/to/acmectl}
: "${ACME_TEST_DIRECTORY:?run under tests/harness/with-pebble}"
: "${ETCD_TEST_ENDPOINTS:?run under tests/cluster/with-etcd}"
T=$ACME_TEST_TMPDIR
HERE=$(cd "$(dirname "$0")" && pwd)
TEST_NAME=$(basename "$0" .sh)
PREFIX=/libacme/
LOCK_TTL=6
export ETCDCTL_API=3

say() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }
pass() { printf '%s: ok: %s\n' "$TEST_NAME" "$*" >&2; }
dump() {
    for n in 1 2 3; do
        [ -f "$T/n$n/log" ] || continue
        echo "---- node $n log (tail) ----" >&2
        tail -n 40 "$T/n$n/log" >&2
    done
}
fail() {
    printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2
    dump
    if [ -n "${CLUSTER_TEST_GDB:-}" ] && command -v gdb >/dev/null; then
        for n in 1 2 3; do
            [ -n "${NODE_PID[$n]:-}" ] || continue
            echo "---- node $n threads ----" >&2
            gdb -q -batch -p "${NODE_PID[$n]}" -ex "thread apply all bt 12" 2>&1 | grep -E "^#|^Thread" >&2 || true
        done
    fi
    exit 1
}

etcdctl_() { etcdctl --endpoints "$ETCD_TEST_ENDPOINTS" --command-timeout=3s "$@"; }

# Six free ports: the nodes' http-01 and tls-alpn-01 responders.
read -r H1 H2 H3 A1 A2 A3 < <(python3 - <<'EOF'
import socket
ss = []
for _ in range(6):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
)
HPORT=("" "$H1" "$H2" "$H3")
APORT=("" "$A1" "$A2" "$A3")
NODE_PID=("" "" "" "")
LB_PIDS=()

lb_start() {
    python3 "$HERE/lb.py" --listen "$ACME_TEST_HTTP_PORT" --backends "$H1,$H2,$H3" \
        --control "$T/lb-http.ctl" --log "$T/lb-http.log" &
    LB_PIDS+=($!)
    python3 "$HERE/lb.py" --listen "$ACME_TEST_TLS_PORT" --backends "$A1,$A2,$A3" \
        --control "$T/lb-alpn.ctl" --log "$T/lb-alpn.log" &
    LB_PIDS+=($!)
    # Listening before any node orders: a validation before it would be refused.
    wait_for "the load balancer listening" 20 lb_listening
}
lb_listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$ACME_TEST_HTTP_PORT") 2>/dev/null &&
        (exec 3<>"/dev/tcp/127.0.0.1/$ACME_TEST_TLS_PORT") 2>/dev/null
}
# lb_route "2 3 delay=2": which nodes the validator may reach, for both.
lb_route() {
    echo "$1" >"$T/lb-http.ctl"
    echo "$1" >"$T/lb-alpn.ctl"
}

cleanup() {
    for n in 1 2 3; do
        pid=${NODE_PID[$n]}
        [ -n "$pid" ] || continue
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 1
    for n in 1 2 3; do
        pid=${NODE_PID[$n]}
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    done
    for pid in "${LB_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

node_conf() {
    local n=$1
    mkdir -p "$T/n$n"
    {
        echo "[global]"
        echo "directory = $ACME_TEST_DIRECTORY"
        echo "ca-file = $ACME_TEST_CA_FILE"
        echo "state-dir = $T/n$n/state"
        echo "agree-tos = yes"
        echo "contact = mailto:ops@example.com"
        echo "bind = 127.0.0.1"
        echo "retry-min = 1"
        echo "retry-max = 2"
        echo "http-port = ${HPORT[$n]}"
        echo "tls-port = ${APORT[$n]}"
        echo "challenge = http-01"
        echo "out-dir = $T/n$n/out"
        echo "status-file = $T/n$n/status.json"
        echo "storage = etcd"
        echo "etcd-endpoints = $ETCD_TEST_ENDPOINTS"
        echo "etcd-node-name = n$n"
        echo "etcd-lock-ttl = $LOCK_TTL"
        echo "cluster-poll = 2"
        echo
        cat
    } >"$T/n$n/run.conf"
}

node_start() {
    local n=$1
    "$ACMECTL" run "$T/n$n/run.conf" 2>>"$T/n$n/log" &
    NODE_PID[$n]=$!
}

node_hup() { kill -HUP "${NODE_PID[$1]}"; }

node_stop() {
    local n=$1 pid=${NODE_PID[$1]}
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    NODE_PID[$n]=""
}

wait_for() {
    local what=$1 secs=$2
    shift 2
    local end=$((SECONDS + secs))
    until "$@" 2>/dev/null; do
        [ "$SECONDS" -lt "$end" ] || fail "$what: not within $secs s"
        sleep 0.2
    done
}

# The node ("1".."3") whose lease holds the order lock of cert-id, or "".
lock_holder() {
    etcdctl_ get --prefix "$PREFIX.locks/" 2>/dev/null |
        awk -v id="$1" 'f { if (match($0, /^n[0-9]/)) print substr($0, 2, 1); f = 0; next }
                        index($0, ".order." id) && substr($0, length($0) - length(id) - 6) == ".order." id { f = 1 }'
}

stored_chain() {
    local key
    key=$(etcdctl_ get --prefix "$PREFIX" --keys-only | grep "/certs/$1/cert.json$" | head -n1)
    [ -n "$key" ] || return 1
    etcdctl_ get "$key" --print-value-only | python3 -c 'import json,sys; print(json.load(sys.stdin)["chain"])'
}

# out-dir of node n has cert-id's pair.
has_cert() { [ -s "$T/n$1/out/$2.crt" ] && [ -s "$T/n$1/out/$2.key" ]; }
all_have() {
    local id=$1 n
    for n in 1 2 3; do
        [ -n "${NODE_PID[$n]}" ] || continue
        has_cert "$n" "$id" || return 1
    done
}

# Lines of Pebble's log with this text ("Added order": an order created).
pebble_count() { grep -c "$1" "$ACME_TEST_PEBBLE_LOG" || true; }

account_stored() { etcdctl_ get --prefix "$PREFIX" --keys-only | grep -q '/account/account.json$'; }
locked() { [ -n "$(lock_holder "$1")" ]; }
# The lock of cert-id is held by another node than $2 (or the work is done).
taken_over() {
    local x
    x=$(lock_holder "$1")
    { [ -n "$x" ] && [ "$x" != "$2" ]; } || all_have "$1"
}
stored() { stored_chain "$1" | grep -q BEGIN; }
