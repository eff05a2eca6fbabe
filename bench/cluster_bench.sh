#!/bin/bash
# bench/cluster_bench.sh — what a cluster on etcd costs against one node
# with file storage (issue 13, doc/cluster.md).
#
#   bench/cluster_bench.sh BUILD_DIR [N]          (default N=1000)
#
# In one run, against one fresh local Pebble (tests/harness/with-pebble,
# validation off: PEBBLE_VA_ALWAYS_VALID=1, no rejected nonces) and one
# fresh 3-member etcd (tests/cluster/with-etcd):
#   single   one `acmectl run` node, storage in a state directory, N
#            certificates (ids f0001...), until all N are in its out-dir;
#   cluster  three `acmectl run` nodes on etcd managing the same N other
#            certificates (ids e0001...), until all N are in every node's
#            out-dir.
# Reported: orders Pebble created (should be N each), wall seconds per
# certificate, CPU seconds (user+system of the acmectl processes, from /proc) per
# certificate, and for the cluster the etcd requests per issuance (the
# members' grpc_server_handled_total, which counts every gateway request,
# summed before and after, divided by N; it includes the nodes' idle
# polling of shared challenge answers during the run); cluster figures also
# as ratios against single. Bounded by RUN_S=1800 s per phase.
#
# JOBS (default 3) bounds the orders in flight in each phase, through
# acmectl's max-orders: the single node runs JOBS at once, each cluster
# node JOBS/3 (at least 1), so both phases put the same load on Pebble.
# Pebble 2.4 deadlocks when many orders overlap (doc/benchmarks.md);
# libacme's default of 16 per process did at N=1000.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
RUN_S=${RUN_S:-1800}
JOBS=${JOBS:-3}

# ---------------------------------------------------------------- inner
if [ "${1:-}" = --inner ]; then
    acmectl=$2 n=$3 jobs=$4
    node_jobs=$((jobs / 3))
    [ "$node_jobs" -ge 1 ] || node_jobs=1
    : "${ACME_TEST_DIRECTORY:?}" "${ETCD_TEST_ENDPOINTS:?}"
    w=$ACME_TEST_TMPDIR
    ports() { python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'; }
    read -r p0 p1 p2 p3 < <(ports)
    conf() { # conf NAME PORT STORAGE-LINES ID-PREFIX
        {
            echo "[global]"
            echo "directory = $ACME_TEST_DIRECTORY"
            echo "ca-file = $ACME_TEST_CA_FILE"
            echo "state-dir = $w/$1/state"
            echo "agree-tos = yes"
            echo "bind = 127.0.0.1"
            echo "http-port = $2"
            echo "challenge = http-01"
            echo "retry-min = 1"
            echo "retry-max = 2"
            echo "out-dir = $w/$1/out"
            echo "log-level = warning"
            printf '%b\n' "$3"
            for i in $(seq -f %04g 1 "$n"); do
                printf '[certificate %s%s]\nnames = %s%s.bench.test\n' "$4" "$i" "$4" "$i"
            done
        } >"$w/$1.conf"
        mkdir -p "$w/$1"
    }
    count_out() { find "$w/$1/out" -maxdepth 1 -name '*.crt' 2>/dev/null | wc -l; }
    etcd_reqs() {
        local sum=0 u v
        for u in ${ETCD_TEST_ENDPOINTS//,/ }; do
            v=$(curl -s "$u/metrics" | awk '/^grpc_server_handled_total/ { s += $2 } END { printf "%d", s }')
            sum=$((sum + ${v:-0}))
        done
        echo "$sum"
    }
    start() { # start NAME -> pid in $started
        "$acmectl" run "$w/$1.conf" 2>"$w/$1.log" &
        started=$!
    }
    # user + system seconds of a running process, all its threads.
    cpu_of() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
    stop_all() {
        for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
        for p in "$@"; do wait "$p" 2>/dev/null || true; done
    }
    now() { date +%s.%N; }

    # single node, file storage
    conf single "$p0" "storage = file\nmax-orders = $jobs" f
    o0=$(grep -c "Added order" "$ACME_TEST_PEBBLE_LOG" || true)
    t0=$(now)
    start single
    pid=$started
    end=$((SECONDS + RUN_S))
    while [ "$(count_out single)" -lt "$n" ]; do
        [ "$SECONDS" -lt "$end" ] || { echo "STALLED single at $(count_out single)/$n" >&2; stop_all "$pid"; exit 1; }
        sleep 0.5
    done
    t1=$(now)
    s_cpu=$(cpu_of "$pid")
    stop_all "$pid"
    o1=$(grep -c "Added order" "$ACME_TEST_PEBBLE_LOG" || true)
    s_wall=$(echo "$t1 - $t0" | bc -l)
    s_orders=$((o1 - o0))

    # three nodes on etcd: node a first (the account), then b and c
    cl="storage = etcd\netcd-endpoints = $ETCD_TEST_ENDPOINTS\netcd-lock-ttl = 10\ncluster-poll = 5\nmax-orders = $node_jobs"
    conf a "$p1" "$cl\netcd-node-name = a" e
    conf b "$p2" "$cl\netcd-node-name = b" e
    conf c "$p3" "$cl\netcd-node-name = c" e
    r0=$(etcd_reqs)
    t0=$(now)
    start a
    pa=$started
    until etcdctl --endpoints "$ETCD_TEST_ENDPOINTS" get --prefix /libacme/ --keys-only 2>/dev/null |
        grep -q '/account/account.json$'; do
        sleep 0.1
    done
    start b
    pb=$started
    start c
    pc=$started
    end=$((SECONDS + RUN_S))
    while [ "$(count_out a)" -lt "$n" ] || [ "$(count_out b)" -lt "$n" ] || [ "$(count_out c)" -lt "$n" ]; do
        [ "$SECONDS" -lt "$end" ] || {
            echo "STALLED cluster at $(count_out a)/$(count_out b)/$(count_out c) of $n" >&2
            stop_all "$pa" "$pb" "$pc"
            exit 1
        }
        sleep 0.5
    done
    t1=$(now)
    r1=$(etcd_reqs)
    c_cpu=$(echo "$(cpu_of "$pa") + $(cpu_of "$pb") + $(cpu_of "$pc")" | bc -l)
    stop_all "$pa" "$pb" "$pc"
    o2=$(grep -c "Added order" "$ACME_TEST_PEBBLE_LOG" || true)
    c_wall=$(echo "$t1 - $t0" | bc -l)
    echo "RESULT n=$n jobs=$jobs node_jobs=$node_jobs s_orders=$s_orders s_wall=$s_wall s_cpu=$s_cpu c_orders=$((o2 - o1)) c_wall=$c_wall c_cpu=$c_cpu" \
         "etcd_reqs=$((r1 - r0))"
    exit 0
fi

# ---------------------------------------------------------------- outer
bench_setup "${1:-}"
n=${2:-1000}
acmectl=$BENCH_BUILD/examples/acmectl/acmectl
[ -x "$acmectl" ] || bench_die "$acmectl missing: build first"
command -v etcd >/dev/null || bench_die "etcd missing (Debian: etcd-server)"
command -v bc >/dev/null || bench_die "bc missing"
"$BENCH_SRC/tests/harness/with-pebble" --env PEBBLE_VA_ALWAYS_VALID=1 --env PEBBLE_WFE_NONCEREJECT=0 -- \
    "$BENCH_SRC/tests/cluster/with-etcd" -- bash "$0" --inner "$acmectl" "$n" "$JOBS" >"$BENCH_OUT/run.out" ||
    { cat "$BENCH_OUT/run.out" >&2; bench_die "the run failed"; }
out=$(grep '^RESULT' "$BENCH_OUT/run.out") || bench_die "no result"
echo "$out"
python3 - "$out" <<'EOF'
import sys
kv = dict(x.split("=", 1) for x in sys.argv[1].split()[1:])
n = int(kv["n"])
sw, sc = float(kv["s_wall"]) / n, float(kv["s_cpu"]) / n
cw, cc = float(kv["c_wall"]) / n, float(kv["c_cpu"]) / n
print("N = %d certificates; orders at once: single %s, cluster %s per node" % (n, kv["jobs"], kv["node_jobs"]))
print("%-34s %12s %12s %8s" % ("", "single/file", "3 x etcd", "ratio"))
print("%-34s %12s %12s" % ("orders Pebble created", kv["s_orders"], kv["c_orders"]))
print("%-34s %12.4f %12.4f %8.2f" % ("wall s per certificate", sw, cw, cw / sw))
print("%-34s %12.4f %12.4f %8.2f" % ("CPU s per certificate (all nodes)", sc, cc, cc / sc))
print("%-34s %12s %12.1f" % ("etcd requests per issuance", "-", int(kv["etcd_reqs"]) / n))
EOF
