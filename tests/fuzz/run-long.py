#!/usr/bin/env python3
"""Run the libFuzzer targets for a long time, fairly, on a shared machine.

    tests/fuzz/run-long.py --build build-fuzz-lf --work /tmp/fuzz-work \\
        --cpu-minutes 10 --deadline-minutes 60 [TARGET...]

Each target (default: every fuzz_* libFuzzer binary in BUILD/tests/fuzz)
runs at nice 19 in slices of --slice-cpu CPU seconds, round-robin, at most
--jobs at a time, until it has had --cpu-minutes of CPU or the deadline
passes; so when the machine is busy every target still gets the same
share. CPU time (not wall time) is what is measured: the process's own
utime + stime. New inputs go to WORK/TARGET/corpus (the committed corpus
tests/fuzz/corpus/TARGET is read, never written); crashes, leaks and
timeouts to WORK/TARGET/ as libFuzzer names them. tests/fuzz/TARGET.dict,
where there is one, is passed as the libFuzzer dictionary. At the end it prints,
per target: CPU seconds, executions (libFuzzer's final stats, summed over
slices), slices, and the artifacts found.
"""
import argparse
import glob
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cpu-minutes", type=float, default=10)
    ap.add_argument("--deadline-minutes", type=float, default=60)
    ap.add_argument("--slice-cpu", type=float, default=90)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=10, help="libFuzzer -timeout (s) per input")
    ap.add_argument("targets", nargs="*")
    a = ap.parse_args()

    bins = sorted(glob.glob(os.path.join(a.build, "tests", "fuzz", "fuzz_*")))
    names = [os.path.basename(b)[5:] for b in bins
             if os.access(b, os.X_OK) and os.path.isfile(b)
             and not re.search(r"_(corpus|check|pebble)$", b)]
    if a.targets:
        names = [n for n in names if n in a.targets]
    if not names:
        sys.exit("no libFuzzer targets found (configure with CC=clang -Dfuzz=true)")
    deadline = time.time() + a.deadline_minutes * 60
    goal = a.cpu_minutes * 60
    st = {n: {"cpu": 0.0, "execs": 0, "slices": 0} for n in names}
    for n in names:
        os.makedirs(os.path.join(a.work, n, "corpus"), exist_ok=True)
    running = {}  # name -> (Popen, log path, cpu at last poll)

    def start(n):
        d = os.path.join(a.work, n)
        log = os.path.join(d, f"slice-{st[n]['slices']:03d}.log")
        cmd = ["nice", "-n", "19", os.path.join(a.build, "tests", "fuzz", "fuzz_" + n),
               f"-timeout={a.timeout}", "-rss_limit_mb=2048", "-print_final_stats=1",
               f"-max_total_time={int(max(60, deadline - time.time()))}",
               f"-artifact_prefix={d}/"]
        if os.path.exists(os.path.join(HERE, n + ".dict")):
            cmd.append("-dict=" + os.path.join(HERE, n + ".dict"))
        cmd += [os.path.join(d, "corpus"), os.path.join(HERE, "corpus", n)]
        p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        running[n] = (p, log, 0.0)
        st[n]["slices"] += 1

    def finish(n):
        p, log, last = running.pop(n)
        st[n]["cpu"] += last
        with open(log, errors="replace") as f:
            m = re.findall(r"stat::number_of_executed_units:\s*(\d+)", f.read())
        if m:
            st[n]["execs"] += int(m[-1])

    while True:
        now = time.time()
        for n, (p, log, last) in list(running.items()):
            # nice(1) execs the fuzzer, so the pid is the fuzzer's.
            c = cpu_seconds(p.pid)
            if c is not None:
                running[n] = (p, log, c)
            if p.poll() is not None:
                finish(n)
            elif c is not None and (c >= a.slice_cpu or st[n]["cpu"] + c >= goal or now >= deadline):
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                finish(n)
        if now >= deadline and not running:
            break
        if now < deadline:
            # The target with the least CPU so far goes next.
            waiting = sorted((st[n]["cpu"], n) for n in names if n not in running and st[n]["cpu"] < goal)
            while waiting and len(running) < a.jobs:
                start(waiting.pop(0)[1])
        if not running and all(st[n]["cpu"] >= goal for n in names):
            break
        time.sleep(2)

    print(f"{'target':14} {'cpu-s':>7} {'execs':>11} {'slices':>6}  artifacts")
    for n in names:
        arts = sorted(os.path.basename(x) for x in glob.glob(os.path.join(a.work, n, "*-*"))
                      if re.match(r"(crash|leak|timeout|oom|slow-unit)-", os.path.basename(x)))
        print(f"{n:14} {st[n]['cpu']:7.0f} {st[n]['execs']:11d} {st[n]['slices']:6d}  {' '.join(arts) or '-'}")


if __name__ == "__main__":
    main()
