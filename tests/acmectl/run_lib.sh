# shellcheck shell=bash
# Helpers for the `acmectl run` tests, sourced after lib.sh.
#
#   run_global FILE [key = value lines on stdin]   [global] for the harness's CA
#   run_start CONF [acmectl options]                start it in the background ($RUN_PID,
#                                                   stderr in $RUN_LOG)
#   wait_status FILE EXPR WHAT [SECONDS]            poll the status file until the
#                                                   Python expression over it (as s) holds
#   run_stop                                        SIGTERM, expect exit 0 within 10 s

RUN_PID=""
RUN_N=0

# The [global] section every run test shares, then whatever is on stdin.
run_global() {
    {
        echo "# written by tests/acmectl/run_lib.sh"
        echo "[global]"
        echo "directory = $ACME_TEST_DIRECTORY"
        echo "ca-file = $ACME_TEST_CA_FILE"
        echo "state-dir = $STATE"
        echo "agree-tos = yes"
        echo "contact = mailto:ops@example.com"
        echo "bind = 127.0.0.1"
        echo "retry-min = 1"
        echo "retry-max = 5"
        cat
    } >"$1"
}

run_start() {
    local conf=$1
    shift
    RUN_N=$((RUN_N + 1))
    RUN_LOG=$T/run-$RUN_N.log
    "$ACMECTL" "$@" run "$conf" 2>"$RUN_LOG" &
    RUN_PID=$!
}

run_dump() {
    echo "---- acmectl run's log ($RUN_LOG) ----" >&2
    tail -n 60 "$RUN_LOG" >&2
}

run_cleanup() {
    if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
        kill -TERM "$RUN_PID" 2>/dev/null || true
        sleep 1
        kill -KILL "$RUN_PID" 2>/dev/null || true
    fi
}

wait_status() {
    local file=$1 expr=$2 what=$3 secs=${4:-90}
    if ! python3 - "$file" "$expr" "$secs" "$RUN_PID" <<'EOF'; then
import json, os, sys, time
path, expr, secs, pid = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
deadline = time.time() + secs
last = None
while time.time() < deadline:
    try:
        with open(path) as f:
            s = json.load(f)
        last = s
        if eval(expr):
            sys.exit(0)
    except (OSError, ValueError):
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        print("acmectl run exited; status was: %s" % json.dumps(last), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.2)
print("status after %d s: %s" % (secs, json.dumps(last)), file=sys.stderr)
sys.exit(1)
EOF
        run_dump
        fail "$what: $expr never held"
    fi
}

# SIGTERM: a clean stop, exit status 0, promptly.
run_stop() {
    local rc=0 t0
    t0=$(date +%s)
    kill -TERM "$RUN_PID"
    wait "$RUN_PID" || rc=$?
    local took=$(($(date +%s) - t0))
    RUN_PID=""
    if [ "$rc" -ne 0 ]; then
        run_dump
        fail "acmectl run exited $rc after SIGTERM, expected 0"
    fi
    [ "$took" -le 10 ] || fail "acmectl run took $took s to stop after SIGTERM"
    grep -q "shutting down" "$RUN_LOG" || { run_dump; fail "no shutdown message"; }
}

# Wait until the log has a line matching the regex (grep -E).
wait_log() {
    local re=$1 what=$2 secs=${3:-30}
    for _ in $(seq $((secs * 10))); do
        grep -Eq -- "$re" "$RUN_LOG" && return 0
        sleep 0.1
    done
    run_dump
    fail "$what: no line matching /$re/ in the log"
}
