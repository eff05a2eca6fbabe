#!/usr/bin/env python3
"""Three real HAProxy processes (Debian's 2.6, examples/haproxy.cfg) and
three `acmectl run` nodes hosting the HAProxy module, on one 3-member etcd
([global] storage = etcd, and the module's own etcd-endpoints) and one
Pebble. tests/cluster/lb.py on the port Pebble validates http-01 on
spreads the validations over the three HAProxy:

  1. the same 20 certificates on all three nodes: exactly one order (and
     one finalization) per certificate at Pebble, counted in Pebble's log;
  2. every HAProxy serves every certificate (a TLS handshake with the name
     as SNI on each HAProxy, verified against Pebble's root, the same leaf
     on all three), whichever node ordered it;
  3. validations reached more than one HAProxy (each certificate is
     ordered by one node only, so a HAProxy answered from what another
     node published), and afterwards no answer is left in any map;
  4. validations sent only to HAProxy 2 and 3: node 1 alone gets a
     certificate over http-01 and one over tls-alpn-01;
  5. HAProxy 3 stopped while its node runs: node 1's publish fails and
     says why, nothing is finalized; HAProxy 3 started again serves the
     certificates from disk, and the order goes through.

    with-pebble -- with-etcd -- python3 hap_cluster.py ACMECTL

Environment: HAPROXY, HAP_MODULE, HAP_EXAMPLE (examples/haproxy.cfg), the
ACME_TEST_* of with-pebble and ETCD_TEST_ENDPOINTS of with-etcd.
HAP_CLUSTER_N (default 20) sets the number of certificates; HAP_CLUSTER_KEEP=DIR
keeps every log there."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

N = int(os.environ.get("HAP_CLUSTER_N", "20"))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clusterlib  # noqa: E402
from clusterlib import free_ports, listening  # noqa: E402,F401


class Fail(Exception):
    pass


def say(msg):
    print(f"{time.strftime('%H:%M:%S')} hap_cluster: {msg}", flush=True)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_for(cond, timeout, what, procs=()):
    def dead():
        return next((f"{p.name} exited (status {p.proc.returncode})" for p in procs
                     if p.proc is not None and not p.alive()), None)
    return clusterlib.wait_for(cond, timeout, what, dead, Fail, 0.2)


def hapctl(sock, cmd):
    """One runtime-API command; HAProxy's reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(sock)
        s.sendall((cmd + "\n").encode())
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    finally:
        s.close()
    return out.decode(errors="replace")


class Proc:
    proc = None
    name = "?"
    log = ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Haproxy(Proc):
    def __init__(self, i, top, http_port, tls_port):
        self.i = i
        self.name = f"HAProxy {i}"
        self.w = os.path.join(top, f"h{i}")
        self.http_port, self.tls_port = http_port, tls_port
        self.sock = f"{self.w}/run/admin.sock"
        self.map = f"{self.w}/etc/acme/challenges.map"
        self.alpn_list = f"{self.w}/etc/acme/acme-tls.crt-list"
        self.crt_list = f"{self.w}/etc/certs.crt-list"
        self.certs = f"{self.w}/etc/certs"
        self.cfg = f"{self.w}/haproxy.cfg"
        self.log = f"{self.w}/haproxy.log"
        for d in ("run", "etc/acme", "etc/certs"):
            os.makedirs(os.path.join(self.w, d), 0o700)
        self.make_config()

    def make_config(self):
        """examples/haproxy.cfg with only what a test must change replaced
        (as tests/haproxy/lib.sh does for one HAProxy): paths, ports,
        abns names unique to this HAProxy, no user/group/syslog."""
        text = read(os.environ["HAP_EXAMPLE"])
        if not text:
            raise Fail("cannot read HAP_EXAMPLE " + os.environ["HAP_EXAMPLE"])
        uniq = f"hapc-{os.getpid()}-{self.i}"
        text = re.sub(r"(?m)^[ \t]*(log|user|group)[ \t].*\n", "", text)
        text = text.replace("/run/haproxy/admin.sock", self.sock).replace("/etc/haproxy/", self.w + "/etc/")
        text = re.sub(r"(?m)^([ \t]*bind) :80$", rf"\1 127.0.0.1:{self.http_port}", text)
        text = re.sub(r"(?m)^([ \t]*bind) :443$", rf"\1 127.0.0.1:{self.tls_port}", text)
        text = text.replace("abns@haproxy-", f"abns@{uniq}-")
        for want in (f"stats socket {self.sock} ", f"bind 127.0.0.1:{self.http_port}",
                     f"bind 127.0.0.1:{self.tls_port}", f"map({self.map})", f"crt-list {self.crt_list} ",
                     f"crt-list {self.alpn_list} strict-sni", f"abns@{uniq}-https"):
            if want not in text:
                raise Fail(f"examples/haproxy.cfg changed: no \"{want}\" after the replacements")
        if re.search(r"/etc/haproxy|/run/haproxy|bind :|abns@haproxy-", text):
            raise Fail("examples/haproxy.cfg has paths or binds this test does not know how to move")
        with open(self.cfg, "w") as f:
            f.write(text)
        open(self.map, "w").close()
        open(self.alpn_list, "w").close()
        # The normal TLS bind needs one certificate to start (doc/haproxy.md).
        ph = f"{self.certs}/placeholder.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "3", "-subj", "/CN=placeholder", "-keyout", ph + ".key", "-out",
                        ph + ".crt"], check=True, capture_output=True)
        with open(ph, "w") as f:
            f.write(read(ph + ".crt") + read(ph + ".key"))
        os.chmod(ph, 0o600)
        os.unlink(ph + ".key")
        os.unlink(ph + ".crt")
        with open(self.crt_list, "w") as f:
            f.write(ph + "\n")

    def start(self):
        r = subprocess.run([os.environ["HAPROXY"], "-c", "-f", self.cfg], capture_output=True)
        if r.returncode:
            raise Fail(f"haproxy -c refused {self.cfg}: {r.stdout.decode()}{r.stderr.decode()}")
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([os.environ["HAPROXY"], "-f", self.cfg, "-db"], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out)
        out.close()
        wait_for(lambda: os.path.exists(self.sock) and "Pid:" in hapctl(self.sock, "show info"), 10,
                 f"{self.name} answering on its admin socket", [self])

    def served(self, name, ctx):
        """The DER leaf this HAProxy serves for SNI name, verified against
        Pebble's root and for that name; None when it serves another."""
        try:
            with socket.create_connection(("127.0.0.1", self.tls_port), timeout=5) as s:
                with ctx.wrap_socket(s, server_hostname=name) as t:
                    return t.getpeercert(binary_form=True)
        except ssl.SSLCertVerificationError:
            return None

    def alpn_entries(self):
        return [ln for ln in hapctl(self.sock, f"show ssl crt-list {self.alpn_list}").splitlines()
                if ln.strip() and not ln.startswith("#")]

    def map_entries(self):
        return [ln for ln in hapctl(self.sock, f"show map {self.map}").splitlines() if ln.startswith("0x")]


class Node(Proc):
    def __init__(self, i, top, hap, acmectl):
        self.i = i
        self.name = f"acmectl node {i}"
        self.base = os.path.join(top, f"n{i}")
        os.makedirs(self.base, 0o700)
        self.hap = hap
        self.acmectl = acmectl
        self.conf = f"{self.base}/run.conf"
        self.status = f"{self.base}/status.json"
        self.log = f"{self.base}/log"

    def config(self, cert_ids, solo=()):
        eps = " ".join(os.environ["ETCD_TEST_ENDPOINTS"].split(","))
        h = self.hap
        lines = [
            "[global]",
            f"directory = {os.environ['ACME_TEST_DIRECTORY']}",
            f"ca-file = {os.environ['ACME_TEST_CA_FILE']}",
            f"state-dir = {self.base}/state",
            "agree-tos = yes",
            "contact = mailto:ops@example.com",
            "retry-min = 1",
            "retry-max = 2",
            # No http-port: HAProxy has the port, the module answers in its map.
            "challenge = http-01",
            f"status-file = {self.status}",
            "log-level = debug",
            "storage = etcd",
            f"etcd-endpoints = {eps}",
            f"etcd-node-name = n{self.i}",
            "etcd-lock-ttl = 6",
            "cluster-poll = 1",
            # Pebble 2.4 deadlocks when many orders overlap
            # (doc/benchmarks.md): at most 6 at once over the three.
            "max-orders = 2",
            "",
            "[module haproxy]",
            f"path = {os.environ['HAP_MODULE']}",
            f"socket = {h.sock}",
            f"map = {h.map}",
            f"alpn-crt-list = {h.alpn_list}",
            f"cert-dir = {h.certs}",
            f"crt-list = {h.crt_list}",
            "timeout = 2000",
            f"etcd-endpoints = {eps}",
            f"etcd-node-name = hap{self.i}",
            "",
        ]
        for cid in cert_ids:
            lines += [f"[certificate {cid}]", f"names = {cid}", ""]
        for cid, challenge in solo:
            lines += [f"[certificate {cid}]", f"names = {cid}", f"challenge = {challenge}", ""]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))

    def start(self):
        err = open(self.log, "ab")
        self.proc = subprocess.Popen([self.acmectl, "run", self.conf], stdin=subprocess.DEVNULL, stdout=err,
                                     stderr=err)
        err.close()
        say(f"{self.name} started (pid {self.proc.pid})")

    def hup(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def ready(self):
        return os.path.getsize(self.status) > 0 if os.path.exists(self.status) else False


def pebble_count(text):
    return read(os.environ["ACME_TEST_PEBBLE_LOG"]).count(text)


def account_stored():
    r = subprocess.run(["etcdctl", "--endpoints", os.environ["ETCD_TEST_ENDPOINTS"], "--command-timeout=3s", "get",
                        "--prefix", "/libacme/", "--keys-only"], capture_output=True, env=dict(os.environ,
                                                                                          ETCDCTL_API="3"))
    return r.returncode == 0 and "/account/account.json" in r.stdout.decode()


def tail(path, n=40, drop_debug=True):
    lines = read(path).splitlines()
    if drop_debug:
        lines = [ln for ln in lines if "debug" not in ln.lower()]
    return "\n".join(lines[-n:])


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    acmectl = sys.argv[1]
    for v in ("HAPROXY", "HAP_MODULE", "HAP_EXAMPLE", "ACME_TEST_DIRECTORY", "ETCD_TEST_ENDPOINTS"):
        if not os.environ.get(v):
            say(f"FAIL: {v} is not set (run through meson test)")
            return 1
    top = os.environ["ACME_TEST_TMPDIR"]
    ctx0 = ssl.create_default_context(cafile=os.environ["ACME_TEST_CA_FILE"])
    with urllib.request.urlopen(os.environ["ACME_TEST_MGMT"] + "/roots/0", context=ctx0, timeout=10) as r:
        root_pem = r.read().decode()
    verify = ssl.create_default_context(cadata=root_pem)

    ports = free_ports(6)
    haps = [Haproxy(i + 1, top, ports[i], ports[3 + i]) for i in range(3)]
    nodes = [Node(i + 1, top, haps[i], acmectl) for i in range(3)]
    lbs = []
    for kind, listen, back in (("http", os.environ["ACME_TEST_HTTP_PORT"], [h.http_port for h in haps]),
                               ("alpn", os.environ["ACME_TEST_TLS_PORT"], [h.tls_port for h in haps])):
        lbs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "lb.py"), "--listen", listen,
                                     "--backends", ",".join(str(p) for p in back),
                                     "--control", os.path.join(top, f"lb-{kind}.ctl"),
                                     "--log", os.path.join(top, f"lb-{kind}.log")]))

    def route(which):
        for kind in ("http", "alpn"):
            with open(os.path.join(top, f"lb-{kind}.ctl"), "w") as f:
                f.write(which + "\n")

    def lb_hits(kind):
        return read(os.path.join(top, f"lb-{kind}.log")).split()

    cert_ids = [f"c{i:02d}.hapcluster.test" for i in range(1, N + 1)]
    everything = haps + nodes
    try:
        wait_for(lambda: listening(int(os.environ["ACME_TEST_HTTP_PORT"])) and
                 listening(int(os.environ["ACME_TEST_TLS_PORT"])), 20, "the load balancer listening")
        for h in haps:
            h.start()
        say("3 HAProxy running: HTTP " + ", ".join(str(h.http_port) for h in haps) + "; TLS " +
            ", ".join(str(h.tls_port) for h in haps))
        for n in nodes:
            n.config(cert_ids)
        # Node 1 first, so the account is made once (doc/cluster.md); a
        # HAProxy joins the balancer's rotation once its node is ready (the
        # module has joined the cluster and loaded the answers there), as
        # a health check would keep it out before.
        route("1")
        t0 = time.monotonic()
        nodes[0].start()
        wait_for(account_stored, 60, "node 1 storing the account in etcd", everything)
        nodes[1].start()
        nodes[2].start()
        wait_for(lambda: nodes[1].ready() and nodes[2].ready(), 60, "nodes 2 and 3 ready", everything)
        route("1 2 3")

        # ---- every HAProxy serves every certificate ----------------------
        leaves = {}
        deadline = time.monotonic() + 90
        for cid in cert_ids:
            for h in haps:
                left = max(1, deadline - time.monotonic())
                leaves[(cid, h.i)] = wait_for(lambda: h.served(cid, verify), left, f"{h.name} serving {cid}",
                                              everything)
        took = time.monotonic() - t0
        say(f"{N} certificates served by all 3 HAProxy {took:.1f} s after node 1 started")
        for cid in cert_ids:
            if len({leaves[(cid, h.i)] for h in haps}) != 1:
                raise Fail(f"{cid}: the three HAProxy serve different certificates")
            for h in haps:
                if not os.path.exists(f"{h.certs}/{cid}.pem") or (os.stat(f"{h.certs}/{cid}.pem").st_mode & 0o777) \
                        != 0o600:
                    raise Fail(f"{h.name}: {h.certs}/{cid}.pem missing or not 0600")
                if f"{h.certs}/{cid}.pem" not in read(h.crt_list).split():
                    raise Fail(f"{h.name}: {cid} is not in the crt-list file (a restart would not serve it)")

        # ---- exactly one order per certificate -------------------------------
        orders, finals = pebble_count("Added order"), pebble_count("Processing finalization")
        if orders != N or finals != N:
            raise Fail(f"Pebble created {orders} orders and finalized {finals} for {N} certificates")

        # ---- validations reached several HAProxy; nothing left behind --------
        hits = lb_hits("http")
        reached = sorted(set(hits))
        if len(reached) < 2:
            raise Fail(f"the validations reached HAProxy {reached} only ({len(hits)} connections): not a cluster test")
        wait_for(lambda: not any(h.map_entries() for h in haps), 10, "every map empty after the validations",
                 everything)
        for n in nodes:
            text = read(n.log)
            if "did not reach every node's HAProxy" in text:
                raise Fail(f"{n.name}: a publish timed out waiting for the other HAProxy")
        shared = sum(read(n.log).count("cluster: http-01 token") for n in nodes)
        say(f"ok: {N} certificates, {orders} orders and {finals} finalizations at Pebble; every HAProxy serves "
            f"each one (the same leaf, on disk 0600, in its crt-list); validations reached HAProxy "
            f"{', '.join(f'{i}: {hits.count(i)}' for i in ('1', '2', '3'))}; {shared} answers loaded into maps "
            f"from etcd; every map empty afterwards")

        # ---- validations only to the HAProxy whose node did not publish -----
        # Node 1 alone gets two more certificates, one over http-01 and one
        # over tls-alpn-01, while the balancer sends the validator to
        # HAProxy 2 and 3 only: both are issued only if those answered from
        # what node 1 put into etcd.
        route("2 3")
        for kind in ("http", "alpn"):
            open(os.path.join(top, f"lb-{kind}.log"), "w").close()
        solo = [("solo-http.hapcluster.test", "http-01"), ("solo-alpn.hapcluster.test", "tls-alpn-01")]
        nodes[0].config(cert_ids, solo)
        nodes[0].hup()
        for cid, _ in solo:
            wait_for(lambda: haps[0].served(cid, verify), 30, f"HAProxy 1 serving {cid}", everything)
        http_hits, alpn_hits = lb_hits("http"), lb_hits("alpn")
        if "1" in http_hits or "1" in alpn_hits:
            raise Fail(f"a validation reached HAProxy 1 (http {http_hits}, tls {alpn_hits})")
        if not http_hits or not alpn_hits:
            raise Fail(f"a validation did not go through the balancer (http {http_hits}, tls {alpn_hits})")
        orders = pebble_count("Added order")
        if orders != N + 2:
            raise Fail(f"Pebble created {orders} orders for {N + 2} certificates")
        wait_for(lambda: not any(h.map_entries() or h.alpn_entries() for h in haps), 10,
                 "no answer left in any HAProxy", everything)
        say(f"ok: http-01 and tls-alpn-01 answered by HAProxy 2 and 3 for what node 1 published "
            f"(http {len(http_hits)}, tls {len(alpn_hits)} connections); nothing left in any HAProxy")

        # ---- one HAProxy down: every publish waits for it, then recovers -----
        # While HAProxy 3 is stopped and its node still runs, node 3 cannot
        # take the answers, so node 1's publish fails with a sentence that
        # says so (and the CA is not asked); HAProxy 3 started again serves
        # the certificates from disk and takes the answers, and the order
        # goes through.
        haps[2].stop()
        route("1 2")
        down = "solo-down.hapcluster.test"
        solo.append((down, "http-01"))
        mark = len(read(nodes[0].log))
        nodes[0].config(cert_ids, solo)
        nodes[0].hup()
        wait_for(lambda: "did not reach every node's HAProxy" in read(nodes[0].log)[mark:], 30,
                 "node 1 saying that its answer did not reach HAProxy 3", nodes + haps[:2])
        if "could not be put into the map" not in read(nodes[2].log):
            raise Fail("node 3 did not say why HAProxy 3 takes no answers")
        if pebble_count("Processing finalization") != N + 2:
            raise Fail("a certificate was finalized while HAProxy 3 was down")
        haps[2].start()
        if haps[2].served(cert_ids[0], verify) != leaves[(cert_ids[0], 1)]:
            raise Fail(f"HAProxy 3 restarted does not serve {cert_ids[0]} from disk")
        route("1 2 3")
        wait_for(lambda: haps[0].served(down, verify), 30, f"HAProxy 1 serving {down} once HAProxy 3 is back",
                 everything)
        say(f"ok: with HAProxy 3 down node 1's publish failed and said so; HAProxy 3 restarted serves from disk, "
            f"takes the answers again, and {down} was issued")
        say(f"PASS in {time.monotonic() - t0:.1f} s")
        return 0
    except Fail as e:
        say(f"FAIL: {e}")
        for p in everything:
            print(f"---- {p.name}: {p.log} (tail, without debug lines) ----\n{tail(p.log)}", flush=True)
        return 1
    finally:
        for n in nodes:
            n.stop()
        for h in haps:
            h.stop()
        keep = os.environ.get("HAP_CLUSTER_KEEP")
        if keep:  # whole logs for a closer look
            os.makedirs(keep, exist_ok=True)
            for p in everything:
                subprocess.run(["cp", p.log, os.path.join(keep, p.name.replace(" ", "_") + ".log")])
            subprocess.run(["cp", os.environ["ACME_TEST_PEBBLE_LOG"], os.path.join(keep, "pebble.log")])
        for p in lbs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    sys.exit(main())
