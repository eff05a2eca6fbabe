#!/usr/bin/env python3
"""Three real lighttpd processes (Debian's binary) with mod_acme on one
3-member etcd (acme.storage = "etcd") and one Pebble, behind
tests/cluster/lb.py on the ports Pebble validates on:

  1. the same 20 certificates configured on all three: exactly one order
     (and one finalization) per certificate at Pebble, counted in Pebble's
     log; every lighttpd serves every certificate (openssl s_client with
     the name as SNI, verified against Pebble's root, the same leaf on all
     three, a fresh order's certificate and not mod_acme's placeholder);
     validations reached all three;
  2. validations routed only to the hosts that did not publish: lighttpd 1
     alone gets one more certificate over http-01, then one over
     tls-alpn-01, while the balancer sends the validator to lighttpd 2 and
     3 only; both are issued (so 2 and 3 answered from what lighttpd 1 put
     into etcd) and no validation reached lighttpd 1;
  3. every status page says etcd answers (storage_error null);
  4. CA failover on the cluster (acme.fallback with acme.storage =
     "etcd"): four new certificates, the first CA down, the second Pebble
     issues: exactly one order per certificate at it over the three
     hosts, every host serves each (the same leaf, verified against the
     second Pebble's root), every status says the certificate is at
     "backup".

    with-pebble --second -- with-etcd -- python3 lt_cluster.py

Environment: MOD_ACME_SO, LIBACME_SO, LIGHTTPD_BIN, the ACME_TEST_* of
with-pebble and ETCD_TEST_ENDPOINTS of with-etcd. Needs root: lighttpd
starts as root and drops to www-data, as on a Debian host."""

import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

N = 20
HERE = os.path.dirname(os.path.abspath(__file__))
# The helpers of the single-host lighttpd tests, not a copy of them.
sys.path.insert(0, os.path.join(HERE, "..", "lighttpd"))
from lt_test import PLACEHOLDER_CN, RUN_AS, Fail, cert_text, norm, pem_certs, read  # noqa: E402
sys.path.insert(0, HERE)
import clusterlib  # noqa: E402
from clusterlib import free_ports, listening  # noqa: E402


def say(msg):
    print(f"lt_cluster: {msg}", flush=True)


def wait_for(cond, timeout, what, nodes=()):
    def dead():
        return next((f"lighttpd {n.i} exited (status {n.proc.returncode})" for n in nodes if not n.alive()), None)
    return clusterlib.wait_for(cond, timeout, what, dead, Fail)


class Node:
    def __init__(self, i, top, moddir, http_port, tls_port, ca_file, root):
        self.i = i
        self.base = os.path.join(top, f"lt{i}")
        os.makedirs(os.path.join(self.base, "www"), 0o755)
        os.makedirs(os.path.join(self.base, "logs"), 0o755)
        pw = pwd.getpwnam(RUN_AS)
        os.chown(os.path.join(self.base, "logs"), pw.pw_uid, pw.pw_gid)
        with open(os.path.join(self.base, "www", "index.html"), "w") as f:
            f.write(f"hello from lighttpd {i}\n")
        self.moddir = moddir
        self.http_port = http_port
        self.tls_port = tls_port
        self.ca_file = ca_file
        self.root = root
        self.certs = os.path.join(self.base, "certs")
        self.errlog = os.path.join(self.base, "logs", "error.log")
        self.conf = os.path.join(self.base, "lighttpd.conf")
        self.proc = None

    def pemfile(self, cid):
        return f"{self.certs}/{cid}.pem"

    def config(self, certs, challenge=None, directory=None, extra=()):
        """certs: [(cert id, name)]; the first goes into the global scope
        (mod_openssl wants a global ssl.pemfile), the others into
        $HTTP["host"] blocks: lighttpd picks their ssl.pemfile by SNI."""
        endpoints = os.environ["ETCD_TEST_ENDPOINTS"].split(",")
        lines = [
            'server.modules = ("mod_acme", "mod_openssl", "mod_staticfile")',
            f'server.document-root = "{self.base}/www"',
            'server.bind = "127.0.0.1"',
            f"server.port = {self.http_port}",
            f'server.username = "{RUN_AS}"',
            f'server.groupname = "{RUN_AS}"',
            f'server.errorlog = "{self.errlog}"',
            'server.feature-flags += ("server.graceful-restart-bg" => "enable")',
            'mimetype.assign = (".html" => "text/html")',
            f'$SERVER["socket"] == "127.0.0.1:{self.tls_port}" {{', '    ssl.engine = "enable"', "}",
            f'ssl.acme-tls-1 = "{self.base}/alpn"',
            f'acme.directory = "{directory or os.environ["ACME_TEST_DIRECTORY"]}"',
            f'acme.ca-file = "{self.ca_file}"',
            f'acme.state-dir = "{self.base}/state"',
            'acme.contact = ("admin@example.org")',
            'acme.agree-tos = "enable"',
            'acme.status-url = "/.acme-status"',
            'acme.retry-seconds = 2',
            'acme.log-level = "debug"',
            'acme.storage = "etcd"',
            "acme.etcd-endpoints = (" + ", ".join(f'"{e}"' for e in endpoints) + ")",
            f'acme.etcd-node-name = "lt{self.i}"',
            'acme.etcd-lock-ttl = 6',
            'acme.etcd-poll-seconds = 2',
            # Pebble 2.4 deadlocks when many orders overlap
            # (doc/benchmarks.md): at most 6 at once over the three.
            'acme.max-orders = 2',
        ]
        lines += list(extra)
        if challenge:
            lines.append("acme.challenge = (" + ", ".join(f'"{c}"' for c in challenge) + ")")
        first = True
        for cid, name in certs:
            if first:
                lines += [f'ssl.pemfile = "{self.pemfile(cid)}"', f'acme.domains = ("{name}")']
                first = False
            else:
                lines += [f'$HTTP["host"] == "{name}" {{', f'    ssl.pemfile = "{self.pemfile(cid)}"',
                          f'    acme.domains = ("{name}")', "}"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = self.moddir
        err = open(os.path.join(self.base, "logs", "stderr.log"), "ab")
        self.proc = subprocess.Popen([os.environ["LIGHTTPD_BIN"], "-D", "-f", self.conf, "-m", self.moddir],
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                                     start_new_session=True)
        err.close()
        say(f"lighttpd {self.i} started (pid {self.proc.pid}, HTTP {self.http_port}, TLS {self.tls_port})")
        wait_for(lambda: self.port_open(self.http_port) and self.port_open(self.tls_port), 30,
                 f"lighttpd {self.i} listening", [self])

    def port_open(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        """Graceful restart: the configuration is read again.

        With server.graceful-restart-bg lighttpd re-execs itself in the
        same pid (after mod_acme's own restart, say); until the new image
        has set its handlers, SIGUSR1 has its default action and kills
        it (seen: status -10). So wait until the pid catches SIGUSR1."""
        def catches_usr1():
            try:
                with open(f"/proc/{self.proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("SigCgt:"):
                            return int(line.split()[1], 16) >> (signal.SIGUSR1 - 1) & 1
            except OSError:
                pass
            return False
        wait_for(catches_usr1, 30, f"lighttpd {self.i} handling SIGUSR1", [self])
        os.kill(self.proc.pid, signal.SIGUSR1)

    def stop(self):
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                pass
        # A graceful-restart-bg old generation may live on in the group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def served(self, sni, root=None):
        """The leaf this lighttpd serves for sni, if it verifies against
        Pebble's root (or root) and is not the placeholder; else None."""
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.tls_port}", "-servername", sni,
                            "-showcerts", "-CAfile", root or self.root], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=20)
        out = r.stdout.decode(errors="replace")
        certs = pem_certs(out)
        m = re.search(r"Verify return code: (\d+)", out)
        if not certs or not m or m.group(1) != "0":
            return None
        text = cert_text(certs[0])
        if PLACEHOLDER_CN in text or f"DNS:{sni}" not in text:
            return None
        return certs[0]

    def file_issued(self, cid):
        certs = pem_certs(read(self.pemfile(cid)))
        return bool(certs) and PLACEHOLDER_CN not in cert_text(certs[0])

    def status(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/.acme-status")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())

    def log_tail(self):
        lines = [ln for ln in read(self.errlog).splitlines() if "debug:" not in ln]
        return (f"---- lighttpd {self.i} stderr ----\n" + read(os.path.join(self.base, "logs", "stderr.log"))[-2000:] +
                f"\n---- lighttpd {self.i} error log (tail, without debug lines) ----\n" + "\n".join(lines[-40:]))


def pebble_count(text, log="ACME_TEST_PEBBLE_LOG"):
    return read(os.environ[log]).count(text)


def main():
    if os.geteuid() != 0:
        say("SKIP: needs root (lighttpd starts as root and drops to www-data)")
        return 77
    top = os.environ["ACME_TEST_TMPDIR"]
    for d in (top, os.path.dirname(top)):
        os.chmod(d, os.stat(d).st_mode | 0o001)  # www-data traverses
    moddir = os.path.join(top, "modules")
    os.mkdir(moddir, 0o755)
    for so in glob.glob("/usr/lib/lighttpd/*.so"):
        os.symlink(so, os.path.join(moddir, os.path.basename(so)))
    shutil.copy(os.environ["MOD_ACME_SO"], os.path.join(moddir, "mod_acme.so"))
    shutil.copy(os.environ["LIBACME_SO"], os.path.join(moddir, "libacme.so.1"))
    ca_file = os.path.join(top, "pebble-listener-ca.pem")
    shutil.copy(os.environ["ACME_TEST_CA_FILE"], ca_file)
    os.chmod(ca_file, 0o644)
    ctx = ssl.create_default_context(cafile=os.environ["ACME_TEST_CA_FILE"])
    with urllib.request.urlopen(os.environ["ACME_TEST_MGMT"] + "/roots/0", context=ctx, timeout=10) as r:
        root_pem = r.read().decode()
    root = os.path.join(top, "pebble-root.pem")
    with open(root, "w") as f:
        f.write(root_pem)

    ports = free_ports(6)
    nodes = [Node(i + 1, top, moddir, ports[i], ports[3 + i], ca_file, root) for i in range(3)]
    lbs = []
    for kind, listen, back in (("http", os.environ["ACME_TEST_HTTP_PORT"], ports[0:3]),
                               ("alpn", os.environ["ACME_TEST_TLS_PORT"], ports[3:6])):
        lbs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "lb.py"), "--listen", listen,
                                     "--backends", ",".join(str(p) for p in back),
                                     "--control", os.path.join(top, f"lb-{kind}.ctl"),
                                     "--log", os.path.join(top, f"lb-{kind}.log")]))

    # The balancer first: a validation before it listens is refused.
    wait_for(lambda: listening(int(os.environ["ACME_TEST_HTTP_PORT"])) and
             listening(int(os.environ["ACME_TEST_TLS_PORT"])), 20, "the load balancer listening")

    def route(which):
        for kind in ("http", "alpn"):
            with open(os.path.join(top, f"lb-{kind}.ctl"), "w") as f:
                f.write(which + "\n")

    def lb_log(kind):
        return read(os.path.join(top, f"lb-{kind}.log")).split()

    def clear_lb_logs():
        for kind in ("http", "alpn"):
            open(os.path.join(top, f"lb-{kind}.log"), "w").close()

    certs = [(f"c{i:02d}.cluster.test", f"c{i:02d}.cluster.test") for i in range(1, N + 1)]
    try:
        # ---- 1. the same 20 certificates on all three -------------------
        # lighttpd 1 first, with one certificate: the account is made once
        # and the others find it in etcd (doc/cluster.md: a first node
        # before the rest). The balancer sends the validator only to hosts
        # that are up, as its health check would.
        route("1")
        nodes[0].config(certs[:1])
        nodes[0].start()
        wait_for(lambda: nodes[0].file_issued(certs[0][0]), 60, "the first certificate on lighttpd 1", nodes[:1])
        for n in nodes:
            n.config(certs)
        nodes[1].start()
        nodes[2].start()
        # Into rotation once ready (the engine runs: it has joined the
        # cluster and loaded the others' answers), as a health check would:
        # a validation sent to a host still starting finds no answer and
        # kills its order (seen: 22 orders for 20).
        def ready(n):
            try:
                st = n.status()
            except (OSError, ValueError):
                return False
            return bool(st.get("pid") and st.get("certificates"))
        for n in nodes[1:]:
            wait_for(lambda: ready(n), 60, f"lighttpd {n.i} ready", nodes)
        route("1 2 3")
        nodes[0].reload()
        t0 = time.monotonic()
        for cid, _ in certs:
            wait_for(lambda: all(n.file_issued(cid) for n in nodes), 240, f"{cid} installed on every lighttpd",
                     nodes)
        say(f"{N} certificates installed on all 3 lighttpd in {time.monotonic() - t0:.0f} s")
        orders, finals = pebble_count("Added order"), pebble_count("Processing finalization")
        if orders != N or finals != N:
            raise Fail(f"Pebble created {orders} orders and finalized {finals} for {N} certificates")
        for cid, name in certs:
            leaves = [wait_for(lambda: n.served(name), 30, f"lighttpd {n.i} serving {name}", nodes) for n in nodes]
            if len({norm(x) for x in leaves}) != 1:
                raise Fail(f"{name}: the three lighttpd serve different certificates")
        hits = lb_log("http")
        for i in ("1", "2", "3"):
            if i not in hits:
                raise Fail(f"no http-01 validation reached lighttpd {i} ({hits})")
        say(f"ok: {N} certificates, {orders} orders and {finals} finalizations at Pebble; every lighttpd serves "
            f"each one (the same leaf); validations reached all three "
            f"({', '.join(f'{i}: {hits.count(i)}' for i in ('1', '2', '3'))})")

        # ---- 2. validations only to the hosts that did not publish ------
        route("2 3")
        clear_lb_logs()
        solo_http = ("solo-http.cluster.test", "solo-http.cluster.test")
        nodes[0].config(certs + [solo_http], challenge=["http-01"])
        nodes[0].reload()
        wait_for(lambda: nodes[0].served(solo_http[1]), 90, "solo-http issued by lighttpd 1 (http-01)", nodes)
        solo_alpn = ("solo-alpn.cluster.test", "solo-alpn.cluster.test")
        nodes[0].config(certs + [solo_http, solo_alpn], challenge=["tls-alpn-01"])
        nodes[0].reload()
        wait_for(lambda: nodes[0].served(solo_alpn[1]), 90, "solo-alpn issued by lighttpd 1 (tls-alpn-01)", nodes)
        http_hits, alpn_hits = lb_log("http"), lb_log("alpn")
        if "1" in http_hits or "1" in alpn_hits:
            raise Fail(f"a validation reached lighttpd 1 (http {http_hits}, tls {alpn_hits})")
        if not http_hits or not alpn_hits:
            raise Fail(f"a validation did not go through the balancer (http {http_hits}, tls {alpn_hits})")
        say(f"ok: http-01 and tls-alpn-01 answered by lighttpd 2 and 3 for what lighttpd 1 published "
            f"(http {len(http_hits)}, tls {len(alpn_hits)} connections)")
        route("1 2 3")
        orders = pebble_count("Added order")
        if orders != N + 2:
            raise Fail(f"Pebble created {orders} orders for {N + 2} certificates")

        # ---- 3. the status pages -----------------------------------------
        for n in nodes:
            # After a graceful restart the page says "starting" until the
            # new generation's engine wrote its first status.
            st = wait_for(lambda: (lambda s: s if s.get("pid") and s.get("certificates") else None)(n.status()), 30,
                          f"lighttpd {n.i} status page", nodes)
            if "storage_error" not in st or st["storage_error"] is not None:
                raise Fail(f"lighttpd {n.i} status: storage_error {st.get('storage_error')!r}, want null")
        say("ok: every status page says etcd answers (storage_error null)")

        # ---- 4. CA failover on the cluster -------------------------------
        # The first CA is a port bound but never listening (refused at
        # once); the second Pebble issues. The order lock is one per
        # certificate for the whole CA list, so the three hosts place one
        # order per certificate between them, wherever each one is.
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        with urllib.request.urlopen(os.environ["ACME_TEST_MGMT2"] + "/roots/0", context=ctx, timeout=10) as r:
            root2 = os.path.join(top, "pebble2-root.pem")
            with open(root2, "w") as f:
                f.write(r.read().decode())
        fo = [(f"f{i:02d}.cluster.test", f"f{i:02d}.cluster.test") for i in range(1, 5)]
        for n in nodes:
            n.config(fo, directory=f"https://127.0.0.1:{dead.getsockname()[1]}/dir",
                     extra=[f'acme.fallback = ("backup" => "{os.environ["ACME_TEST_DIRECTORY2"]}")'])
        for n in nodes:
            n.reload()
        t0 = time.monotonic()
        for cid, _ in fo:
            wait_for(lambda: all(n.file_issued(cid) for n in nodes), 180, f"{cid} (at the fallback CA) installed on "
                     "every lighttpd", nodes)
        orders2 = pebble_count("Added order", "ACME_TEST_PEBBLE2_LOG")
        if orders2 != len(fo):
            raise Fail(f"the fallback Pebble created {orders2} orders for {len(fo)} certificates")
        for cid, name in fo:
            leaves = [wait_for(lambda: n.served(name, root2), 30, f"lighttpd {n.i} serving {name} from the fallback",
                               nodes) for n in nodes]
            if len({norm(x) for x in leaves}) != 1:
                raise Fail(f"{name}: the three lighttpd serve different certificates")
        for n in nodes:
            st = wait_for(lambda: (lambda s: s if len(s.get("certificates", [])) == len(fo) and
                                   all(c.get("ca") == "backup" and c.get("state") == "valid"
                                       for c in s["certificates"]) else None)(n.status()), 30,
                          f"lighttpd {n.i} status: every certificate valid at backup", nodes)
        dead.close()
        say(f"ok: CA failover on etcd: {len(fo)} certificates at the fallback CA in {time.monotonic() - t0:.0f} s, "
            f"{orders2} orders there, the same leaf on all three")
        say("PASS")
        return 0
    except Fail as e:
        say(f"FAIL: {e}")
        for n in nodes:
            print(n.log_tail(), flush=True)
        keep = os.environ.get("LT_CLUSTER_KEEP")
        if keep:  # whole logs for a closer look
            os.makedirs(keep, exist_ok=True)
            for n in nodes:
                shutil.copy(n.errlog, os.path.join(keep, f"lt{n.i}.log"))
            shutil.copy(os.environ["ACME_TEST_PEBBLE_LOG"], os.path.join(keep, "pebble.log"))
        return 1
    finally:
        for n in nodes:
            n.stop()
        for p in lbs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    sys.exit(main())
