#!/bin/bash
# Issue 4, test 4: SIGKILL at random points of an issuance, then restart.
#
#   tests/harness/with-pebble -- tests/engine/crash_test.sh ENGINE_HOST [RUNS]
#
# ENGINE_HOST is tests/engine/engine_host (built). RUNS defaults to
# $CRASH_RUNS or 20; $CRASH_SEED fixes the random kill points (printed, so
# a failing run can be replayed).
#
# 1. Three undisturbed issuances on a scratch state dir measure how long a
#    whole issuance takes (process start until installed; the slowest,
#    plus 30 ms for exec, plus 10 %): N ms.
# 2. RUNS times, on ONE state dir, with a new name each time (a name whose
#    certificate is already stored has no issuance left to interrupt):
#      start engine_host, sleep a random 0..N ms, kill -9 it;
#      check nothing stored is corrupt (every .json parses, every PEM in a
#      .pem or inside a .json parses with certtool) - temp files may exist
#      right after a kill;
#      restart it on the same state dir and let it finish (exit 0, prints
#      SERIAL <id> <hex>);
#      check again, now also: no temp file (*~*) is left, exactly one
#      account, its URL the same as after the first run;
#      if the kill came after the log said "order: <url> created" and
#      before the certificate was stored: the restart logged
#      "resuming order <url>" for that same URL and created no other order
#      (unless it logged the resumed order as invalid: a kill between
#      asking the CA to validate and the validation itself takes the
#      responder away, and then a new order is the right thing - counted
#      and reported);
#      if the certificate was already stored at the kill: the restart
#      installed that very certificate (same serial), no new order.
# 3. Every final serial is "Valid" at Pebble (management interface).
# A run that breaks a promise is reported and the next run goes on (a new
# name); the test fails at the end if any did, naming the runs.
set -u

host=${1:?usage: crash_test.sh ENGINE_HOST [RUNS]}
runs=${2:-${CRASH_RUNS:-20}}
: "${ACME_TEST_TMPDIR:?run this under tests/harness/with-pebble}"
command -v python3 >/dev/null || { echo "crash_test: python3 not found" >&2; exit 2; }
command -v certtool >/dev/null || { echo "crash_test: certtool not found (gnutls-bin)" >&2; exit 2; }

work=$ACME_TEST_TMPDIR/crash
state=$work/state
mkdir -p "$work"
seed=${CRASH_SEED:-$(( $$ ^ $(date +%s) ))}
RANDOM=$seed

say() { echo "crash_test: $*" >&2; }
# fail: the test cannot go on. problem: this run broke a promise; note it,
# go on with the next run (a new name), fail at the end - one problem must
# not hide the others.
fail() {
    say "FAIL: $*"
    exit 1
}
problems=0
problem() {
    say "PROBLEM: $*"
    problems=$((problems + 1))
    run_ok=0
}
now_ms() { date +%s%3N; }

# ------------------------------------------------------------------ checker
# check_state DIR MODE: MODE "after-kill" tolerates temp files, "final"
# does not - but reports each one once: a temp file seen by an earlier
# check (listed in $work/temps-seen) is counted there, not again. Prints
# the account URL on stdout.
check_state() {
    python3 - "$1" "$2" "$work/temps-seen" <<'PY'
import json, os, re, subprocess, sys, tempfile

root, mode, seen_file = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    seen = set(open(seen_file).read().split())
except OSError:
    seen = set()
problems, accounts = [], []
PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)

def certtool_ok(block, kind, where):
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(block + "\n")
        path = f.name
    try:
        opt = "--certificate-info" if kind == "CERTIFICATE" else "--key-info"
        r = subprocess.run(["certtool", opt, "--infile", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            problems.append(f"{where}: certtool cannot parse a {kind}: "
                            + r.stderr.decode(errors="replace").strip()[:200])
    finally:
        os.unlink(path)

def check_pem_text(text, where, required):
    blocks = list(PEM.finditer(text))
    if required and not blocks:
        problems.append(f"{where}: no PEM block")
    for m in blocks:
        kind = m.group(1)
        if kind == "CERTIFICATE" or kind.endswith("PRIVATE KEY"):
            certtool_ok(m.group(0), kind, where)

def strings_in(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from strings_in(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings_in(x)

for d, dirs, files in os.walk(root):
    for name in files:
        p = os.path.join(d, name)
        rel = os.path.relpath(p, root)
        # .locks/guard~ is the file storage's permanent lock guard, not a
        # temporary file (doc/storage.md).
        if "~" in name and rel != os.path.join(".locks", "guard~"):
            if mode == "final" and rel not in seen:
                problems.append(f"{rel}: temporary file left behind (not removed by the restart)")
                with open(seen_file, "a") as f:
                    f.write(rel + "\n")
            continue
        if name.endswith(".json"):
            try:
                with open(p) as f:
                    v = json.load(f)
            except (ValueError, UnicodeDecodeError) as e:
                problems.append(f"{rel}: not JSON: {e}")
                continue
            for s in strings_in(v):
                if "-----BEGIN" in s:
                    check_pem_text(s, rel, True)
            if name == "account.json" and os.path.basename(d) == "account":
                accounts.append(v.get("url") if isinstance(v, dict) else None)
        elif name.endswith(".pem"):
            with open(p, errors="replace") as f:
                check_pem_text(f.read(), rel, True)

if len(accounts) > 1:
    problems.append(f"{len(accounts)} account.json files: {accounts}")
for p in problems:
    print("crash_test: state: " + p, file=sys.stderr)
print(accounts[0] if accounts and accounts[0] else "")
sys.exit(1 if problems else 0)
PY
}

# The serial of the certificate stored for NAME (lower-case hex, no
# leading zeros), or nothing.
stored_serial() {
    python3 - "$state" "$1" <<'PY'
import glob, json, re, subprocess, sys
root, name = sys.argv[1], sys.argv[2]
for p in glob.glob(f"{root}/*/certs/{name}/cert.json"):
    try:
        chain = json.load(open(p))["chain"]
    except (OSError, ValueError, KeyError):
        continue
    leaf = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", chain, re.S)
    if not leaf:
        continue
    out = subprocess.run(["certtool", "--certificate-info"], input=leaf.group(0).encode(),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode()
    m = re.search(r"Serial Number \(hex\): ([0-9a-fA-F]+)", out)
    if m:
        print(m.group(1).lower().lstrip("0") or "0")
PY
}

pebble_status() {
    python3 - "$1" <<'PY'
import json, os, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=os.environ["ACME_TEST_CA_FILE"])
url = os.environ["ACME_TEST_MGMT"] + "/cert-status-by-serial/" + sys.argv[1]
try:
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        print(json.load(r).get("Status", "?"))
except Exception as e:
    print(f"error: {e}")
PY
}

# The URL of the last "order: <url> created" line of a log, or nothing.
last_created() {
    grep -oE 'order: https://[^ ]+ created' "$1" | tail -n 1 | sed -E 's/^order: ([^ ]+) created$/\1/'
}

# ------------------------------------------------------------------ 1. measure
# The runs find the account already there, so the time that matters is
# that of an issuance on a state dir with an account: the second of two.
say "seed $seed, $runs runs"
# engine_host says when everything was installed (ISSUED_AFTER_MS, from
# the start of its main); what it does after that (verifying, tearing down)
# is no issuance and no kill target. 30 ms more cover exec and start-up.
# Issuance times vary (key generation, Pebble's goroutines): the slowest
# of three, the first of which also registers the account.
issued=0
for m in 1 2 3; do
    t0=$(now_ms)
    "$host" "$work/measure-state" "measure$m.example" >"$work/measure$m.out" 2>"$work/measure$m.err" ||
        { tail -n 40 "$work/measure$m.err" >&2; fail "the undisturbed issuance $m failed"; }
    t1=$(now_ms)
    ms=$(awk '$1 == "ISSUED_AFTER_MS" {print $2}' "$work/measure$m.out")
    [ -n "$ms" ] || fail "engine_host did not print ISSUED_AFTER_MS"
    say "undisturbed issuance $m: installed ${ms} ms after start, process exited after $(( t1 - t0 )) ms"
    [ "$ms" -gt "$issued" ] && issued=$ms
done
N=$(( (issued + 30) * 11 / 10 ))
say "kills at 0..${N} ms after start"

# ------------------------------------------------------------------ 2. runs
account=""
killed=0 after_created=0 resumed=0 stored_at_kill=0 new_after_invalid=0 finished_first=0
bad_runs=""
declare -a serials names
for i in $(seq 1 "$runs"); do
    name=$(printf 'crash%02d.example' "$i")
    d=$work/run$i
    mkdir -p "$d"
    delay=$(( (RANDOM * 32768 + RANDOM) % (N + 1) ))
    run_ok=1

    "$host" "$state" "$name" >"$d/a.out" 2>"$d/a.err" &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    if [ "$rc" -eq 137 ]; then
        killed=$((killed + 1))
        how="killed at ${delay} ms"
    elif [ "$rc" -eq 0 ]; then
        finished_first=$((finished_first + 1))
        how="finished before the kill at ${delay} ms"
    else
        tail -n 30 "$d/a.err" >&2
        problem "run $i: engine_host exited $rc before the kill at ${delay} ms"
        how="exited $rc"
    fi

    check_state "$state" after-kill >/dev/null ||
        problem "run $i ($how): corrupt state right after the kill (see above)"
    created=$(last_created "$d/a.err")
    was_stored=$(stored_serial "$name")

    timeout 180 "$host" "$state" "$name" >"$d/b.out" 2>"$d/b.err"
    rc=$?
    serial=$(awk -v n="$name" '$1 == "SERIAL" && $2 == n {print $3}' "$d/b.out")
    if [ "$rc" -ne 0 ] || [ -z "$serial" ]; then
        tail -n 40 "$d/b.err" >&2
        problem "run $i ($how): the restart exited $rc without installing $name"
    fi

    url=$(check_state "$state" final) ||
        problem "run $i ($how): bad state after the restart (see above)"
    if [ -z "$url" ]; then
        problem "run $i: no account URL stored"
    elif [ -z "$account" ]; then
        account=$url
    elif [ "$url" != "$account" ]; then
        problem "run $i: the account URL changed: $account -> $url (a second account)"
    fi

    new_orders=$(grep -cE 'order: https://[^ ]+ created' "$d/b.err")
    if [ -n "$was_stored" ]; then
        # The certificate was stored before the kill: the restart installs it.
        stored_at_kill=$((stored_at_kill + 1))
        [ "$serial" = "$was_stored" ] ||
            problem "run $i ($how): stored serial $was_stored, the restart installed ${serial:-nothing}"
        [ "$new_orders" -eq 0 ] ||
            problem "run $i ($how): the certificate was stored, yet the restart created an order"
        note="certificate already stored"
    elif [ -n "$created" ]; then
        after_created=$((after_created + 1))
        note="killed after order $created was created"
        if ! grep -qF "resuming order $created" "$d/b.err"; then
            grep -E 'order' "$d/b.err" | tail -n 10 >&2
            problem "run $i ($how): killed after 'order: $created created'; the restart did not" \
                "log 'resuming order $created'"
        else
            resumed=$((resumed + 1))
            note="resumed $created"
        fi
        if [ "$new_orders" -gt 0 ]; then
            if grep -qiE 'invalid' "$d/b.err"; then
                new_after_invalid=$((new_after_invalid + 1))
                note="$note; it was invalid, ordered again"
            else
                grep -E 'order' "$d/b.err" | tail -n 10 >&2
                problem "run $i ($how): an order ($created) was in flight, yet the restart" \
                    "created a new one without the old one being invalid"
            fi
        fi
    else
        note="killed before any order was created"
    fi
    serials[$i]=$serial
    names[$i]=$name
    [ "$run_ok" -eq 1 ] || bad_runs="$bad_runs $i"
    say "run $i/$runs: $how; $note; serial ${serial:-none}$([ "$run_ok" -eq 1 ] || echo '; PROBLEM')"
done

# ------------------------------------------------------------------ 3. at the CA
for i in $(seq 1 "$runs"); do
    [ -n "${serials[$i]}" ] || continue
    st=$(pebble_status "${serials[$i]}")
    [ "$st" = "Valid" ] || problem "${names[$i]}: serial ${serials[$i]} is '$st' at Pebble"
done
temps=$(find "$state" -name '*~*' ! -path '*/.locks/guard~')
[ -z "$temps" ] || problem "temporary files left at the end: $temps"

say "summary: $runs runs; $killed killed ($after_created after an order was created, $resumed" \
    "resumed it, $new_after_invalid needed a new order after the resumed one was invalid," \
    "$stored_at_kill with the certificate already stored); $finished_first finished before" \
    "the kill; one account: ${account:-none}"
[ "$killed" -gt 0 ] || problem "no run was actually killed (N=${N} ms too small?)"
if [ "$problems" -gt 0 ]; then
    say "FAIL: $problems problem(s), in run(s):${bad_runs:- (none: see above)}; logs of run i:" \
        "\$ACME_TEST_TMPDIR/crash/run<i>/{a,b}.{out,err} (keep them with WITH_PEBBLE_KEEP=1)"
    exit 1
fi
say "PASS"
exit 0
