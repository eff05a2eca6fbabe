#!/bin/bash
# CA failover on a cluster: three `acmectl run` nodes on one 3-member etcd
# with two CAs, [global] directory (a port bound, never listening: every
# connection refused) and [ca backup] (a second, independent Pebble).
# Four certificates managed by all three: each moves to backup on every
# node, and the order lock, one per certificate for the whole CA list,
# lets exactly one node order it there: exactly four orders in the second
# Pebble's log, every node installs the same four, and every node's
# status says they are at "backup".
set -euo pipefail
. "$(dirname "$0")/cluster_lib.sh"
: "${ACME_TEST_DIRECTORY2:?run under tests/harness/with-pebble --second}"
N=4

# Bound and never listening: refused at once, as a CA that is down. Killed
# with the balancers at exit (cluster_lib.sh cleanup).
python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True); time.sleep(900)' \
    >"$T/dead.port" 2>/dev/null </dev/null &
LB_PIDS+=($!)
wait_for "a bound, non-listening port" 10 test -s "$T/dead.port"
read -r DEAD <"$T/dead.port"
certs() {
    for i in $(seq -w 1 $N); do
        printf '[certificate f%s]\nnames = f%s.cluster.test\n\n' "$i" "$i"
    done
    printf '[ca backup]\ndirectory = %s\nca-file = %s\n\n' "$ACME_TEST_DIRECTORY2" "$ACME_TEST_CA_FILE"
}
for n in 1 2 3; do
    certs | node_conf "$n"
    sed -i "s|^directory = $ACME_TEST_DIRECTORY\$|directory = https://127.0.0.1:$DEAD/dir|" "$T/n$n/run.conf"
done
lb_start
lb_route "1 2 3"
for n in 1 2 3; do node_start "$n"; done
t0=$SECONDS
for i in $(seq -w 1 $N); do
    wait_for "f$i on every node" 180 all_have "f$i"
done
say "$N certificates from the fallback CA on all 3 nodes in $((SECONDS - t0)) s"
orders=$(grep -c "Added order" "$ACME_TEST_PEBBLE2_LOG" || true)
[ "$orders" -eq $N ] || fail "the fallback Pebble created $orders orders for $N certificates"
for i in $(seq -w 1 $N); do
    cmp -s "$T/n1/out/f$i.crt" "$T/n2/out/f$i.crt" && cmp -s "$T/n1/out/f$i.crt" "$T/n3/out/f$i.crt" ||
        fail "f$i differs between nodes"
done
at_backup() {
    python3 - "$T/n$1/status.json" "$N" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cs = d["certificates"] if isinstance(d, dict) else d
ok = len(cs) == int(sys.argv[2]) and all(c.get("ca") == "backup" and c.get("state") == "valid" for c in cs)
sys.exit(0 if ok else 1)
PY
}
for n in 1 2 3; do
    wait_for "node $n status: every certificate valid at backup" 30 at_backup "$n"
done
pass "$N certificates, $orders orders at the fallback CA over 3 nodes, the same on every node, status at backup"
say PASS
