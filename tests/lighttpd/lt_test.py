#!/usr/bin/env python3
"""Debian's lighttpd with mod_acme against Pebble (run under tests/harness/with-pebble).

    lt_test.py http01|alpn|renew|crash|workers|eab|dns01|dns_persist|badconfig|example|metrics|failover

failover runs under with-pebble --second: acme.directory is a loopback port
nobody listens on, acme.fallback names the second Pebble, which issues.

dns01 runs under tests/dns01/with-knot --lagging-secondary and
with-pebble --dnsserver {secondary}: a wildcard certificate through the
dns01 module (DNS01_MODULE_SO) inside lighttpd, the module waiting for a
secondary that the test holds back for LAG_S seconds while lighttpd must
keep answering.

dns_persist runs under tests/dns01/with-knot and the stand-in CA
tests/integration/dns_persist_ca_standin.py (Debian's Pebble offers neither
type): a wildcard certificate over dns-account-01 through the dns01
module, then one over dns-persist-01 with no DNS module at all, on a
record the test creates once as an owner would.

Environment: MOD_ACME_SO, LIBACME_SO (built files), LIGHTTPD_BIN, and the
ACME_TEST_* variables of with-pebble (badconfig needs none of them).

lighttpd runs as on a Debian host: started as root with server.username =
"www-data", -D in the foreground, an absolute -f, -m pointing at a
directory holding links to Debian's modules plus copies of mod_acme.so and
libacme.so.1 (copies, so that www-data can load them again at a graceful
restart wherever the build tree is), HTTP on ACME_TEST_HTTP_PORT and TLS on
ACME_TEST_TLS_PORT (where Pebble validates).
"""

import glob
import json
import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

RUN_AS = "www-data"
PLACEHOLDER_CN = "mod_acme placeholder"


class Fail(Exception):
    pass


def say(msg):
    print(f"lt_test: {msg}", flush=True)


def read(path, default=""):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def pem_certs(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)


def cert_text(pem):
    r = subprocess.run(["openssl", "x509", "-noout", "-subject", "-issuer", "-serial", "-dates", "-ext",
                        "subjectAltName"], input=pem.encode(), capture_output=True, timeout=20)
    return r.stdout.decode(errors="replace")


def norm(pem):
    """The DER bytes (as base64 text) of a PEM certificate: compare certificates, not spacing."""
    return "".join(pem.strip().splitlines()[1:-1])


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Env:
    """Directories, the modules dir, Pebble's roots, and one lighttpd."""

    def __init__(self, scenario, need_pebble=True):
        self.scenario = scenario
        top = os.environ.get("ACME_TEST_TMPDIR") or tempfile.mkdtemp(prefix="lt-test.")
        self.own_top = "ACME_TEST_TMPDIR" not in os.environ
        # www-data must reach the files: let it traverse (not list) the parents.
        for d in (top, os.path.dirname(top)):
            st = os.stat(d)
            os.chmod(d, st.st_mode | 0o001)
        self.top = top
        self.base = os.path.join(top, "lt")
        os.mkdir(self.base, 0o755)
        self.pw = pwd.getpwnam(RUN_AS)
        self.moddir = os.path.join(self.base, "modules")
        os.mkdir(self.moddir, 0o755)
        for so in glob.glob("/usr/lib/lighttpd/*.so"):
            os.symlink(so, os.path.join(self.moddir, os.path.basename(so)))
        shutil.copy(os.environ["MOD_ACME_SO"], os.path.join(self.moddir, "mod_acme.so"))
        shutil.copy(os.environ["LIBACME_SO"], os.path.join(self.moddir, "libacme.so.1"))
        for d in ("www", "logs"):
            os.mkdir(os.path.join(self.base, d), 0o755)
        os.chown(os.path.join(self.base, "logs"), self.pw.pw_uid, self.pw.pw_gid)
        with open(os.path.join(self.base, "www", "index.html"), "w") as f:
            f.write("hello from lighttpd\n")
        self.certs = os.path.join(self.base, "certs")  # made by mod_acme
        self.state = os.path.join(self.base, "state")  # made by mod_acme
        self.alpn = os.path.join(self.base, "alpn")    # made by mod_acme
        self.proc = None
        self.errlog = os.path.join(self.base, "logs", "error.log")
        self.runs = 0
        self.stderr_path = os.path.join(self.base, "logs", "stderr-0.log")
        if need_pebble:
            # The stand-in CA validates over DNS only: any free ports do.
            self.http_port = int(os.environ.get("ACME_TEST_HTTP_PORT") or free_port())
            self.tls_port = int(os.environ.get("ACME_TEST_TLS_PORT") or free_port())
            self.directory = os.environ["ACME_TEST_DIRECTORY"]
            self.ca_file = os.path.join(self.base, "pebble-listener-ca.pem")
            shutil.copy(os.environ["ACME_TEST_CA_FILE"], self.ca_file)
            os.chmod(self.ca_file, 0o644)
            ctx = ssl.create_default_context(cafile=os.environ["ACME_TEST_CA_FILE"])
            with urllib.request.urlopen(os.environ["ACME_TEST_MGMT"] + "/roots/0", context=ctx, timeout=10) as r:
                root = r.read().decode()
            self.root = os.path.join(self.base, "pebble-root.pem")
            with open(self.root, "w") as f:
                f.write(root)
        else:
            self.http_port, self.tls_port = 1, 2  # never listened on: lighttpd must not start
            self.directory = "https://127.0.0.1:9/dir"
            self.ca_file = None

    # ---- config ----

    def config(self, name, challenge=None, alpn=False, privkey=True, workers=0, extra="", modules=None,
               state_dir=None, pemfile=True, domains=None):
        mods = modules or ["mod_acme", "mod_openssl", "mod_staticfile"]
        lines = [
            "server.modules = (" + ", ".join(f'"{m}"' for m in mods) + ")",
            f'server.document-root = "{self.base}/www"',
            'server.bind = "127.0.0.1"',
            f"server.port = {self.http_port}",
            f'server.username = "{RUN_AS}"',
            f'server.groupname = "{RUN_AS}"',
            f'server.pid-file = "{self.base}/lighttpd.pid"',
            f'server.errorlog = "{self.errlog}"',
            'mimetype.assign = (".html" => "text/html")',
        ]
        if workers:
            lines.append(f"server.max-worker = {workers}")
        # Only ssl.engine in the socket block: it inherits every ssl.* of the
        # global scope (mod_openssl wants ssl.pemfile beside any other ssl.*).
        lines += [f'$SERVER["socket"] == "127.0.0.1:{self.tls_port}" {{', '    ssl.engine = "enable"', "}"]
        if alpn:
            lines.append(f'ssl.acme-tls-1 = "{self.alpn}"')
        if pemfile:
            lines.append(f'ssl.pemfile = "{self.certs}/{name}.pem"')
            if privkey:
                lines.append(f'ssl.privkey = "{self.certs}/{name}.key"')
        lines += [
            f'acme.directory = "{self.directory}"',
            f'acme.state-dir = "{state_dir or self.state}"',
            'acme.contact = ("admin@example.org")',
            'acme.agree-tos = "enable"',
            "acme.domains = (" + ", ".join(f'"{d}"' for d in (domains or [name])) + ")",
            'acme.status-url = "/.acme-status"',
            'acme.retry-seconds = 5',
            'acme.log-level = "debug"',
            '$HTTP["host"] == "denied.test" {',
            '    acme.status-allow = ("192.0.2.0/24")',
            '}',
        ]
        if self.ca_file:
            lines.append(f'acme.ca-file = "{self.ca_file}"')
        if challenge:
            lines.append("acme.challenge = (" + ", ".join(f'"{c}"' for c in challenge) + ")")
        lines.append(extra)
        self.conf = os.path.join(self.base, "lighttpd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.name = name
        self.pemfile = f"{self.certs}/{name}.pem"
        self.privkey = f"{self.certs}/{name}.key" if privkey else None

    # ---- process ----

    def start(self):
        self.runs += 1
        self.stderr_path = os.path.join(self.base, "logs", f"stderr-{self.runs}.log")
        self.log_mark = os.path.getsize(self.errlog) if os.path.exists(self.errlog) else 0
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = self.moddir
        with open(self.stderr_path, "wb") as err:
            # Own session: with server.max-worker, a graceful restart sends
            # SIGINT to lighttpd's whole process group.
            self.proc = subprocess.Popen([os.environ["LIGHTTPD_BIN"], "-D", "-f", self.conf, "-m", self.moddir],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                                         start_new_session=True)
        say(f"lighttpd started (pid {self.proc.pid}, run {self.runs})")
        self.wait_for(lambda: self.port_open(self.http_port) and self.port_open(self.tls_port), 20,
                      "lighttpd listening")

    def port_open(self, port):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Signal lighttpd's whole process group, also when the main process
        is gone: a forked old generation (server.graceful-restart-bg) or
        workers may outlive it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def run_log(self):
        """The error log written since the last start."""
        with open(self.errlog, "rb") as f:
            f.seek(self.log_mark)
            return f.read().decode(errors="replace")

    def diagnostics(self):
        out = ["---- lighttpd stderr ----", read(self.stderr_path)[-3000:],
               "---- lighttpd error log (tail) ----", read(self.errlog)[-6000:]]
        return "\n".join(out)

    def wait_for(self, cond, timeout, what, every=0.2):
        deadline = time.monotonic() + timeout
        last_exc = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise Fail(f"lighttpd exited (status {self.proc.returncode}) while waiting for {what}")
            try:
                v = cond()
                if v:
                    return v
            except (OSError, ValueError, subprocess.SubprocessError, KeyError) as e:
                last_exc = e
            time.sleep(every)
        raise Fail(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))

    # ---- clients ----

    def s_client(self, sni, alpn=None, port=None):
        """(leaf PEM, verify code) as openssl s_client sees them."""
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port or self.tls_port}", "-servername", sni,
                "-showcerts", "-CAfile", self.root]
        if alpn:
            args += ["-alpn", alpn]
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        out = r.stdout.decode(errors="replace")
        certs = pem_certs(out)
        m = re.search(r"Verify return code: (\d+)", out)
        return (certs[0] if certs else None), (int(m.group(1)) if m else -1)

    def http(self, path, host=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        if host:
            req.add_header("Host", host)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def status(self):
        code, body = self.http("/.acme-status")
        if code != 200:
            raise Fail(f"status page answered {code}: {body[:200]}")
        return json.loads(body)

    def file_leaf(self):
        certs = pem_certs(read(self.pemfile))
        return certs[0] if certs else None

    def served_issued(self):
        """The leaf served to normal clients, once it is Pebble's and verifies."""
        leaf, code = self.s_client(self.name)
        if leaf and code == 0 and PLACEHOLDER_CN not in cert_text(leaf):
            return leaf
        return None

    def restarts_asked(self):
        return read(self.errlog).count("asking lighttpd for a graceful restart")


# ---------------------------------------------------------------- checks

def check_common_after_issue(env, leaf, pid):
    if norm(leaf) != norm(env.file_leaf() or ""):
        raise Fail("the certificate served is not the one in ssl.pemfile")
    if env.proc.pid != pid or not env.alive():
        raise Fail("lighttpd's pid changed: the restart was not graceful")
    # The key: owned by the user lighttpd runs as, 0600.
    keyfile = env.privkey or env.pemfile
    st = os.stat(keyfile)
    if st.st_uid != env.pw.pw_uid or (st.st_mode & 0o777) != 0o600:
        raise Fail(f"{keyfile}: owner {st.st_uid} mode {oct(st.st_mode & 0o777)}, "
                   f"want {env.pw.pw_uid} and 0600")
    # A restarted engine shows a stored certificate as valid at once and
    # plans its renewal once it has the directory (and the CA's ARI
    # window): next_renewal is null until then.
    s = env.wait_for(lambda: (lambda s: s if s["certificates"] and s["certificates"][0]["state"] == "valid" and
                              s["certificates"][0]["next_renewal"] else None)(env.status()), 20,
                     "status: valid, renewal planned")
    c = s["certificates"][0]
    if c["names"] != [env.name] or not c["not_after"] or c["not_after"] < time.time() or not c["next_renewal"]:
        raise Fail(f"status does not describe the certificate: {c}")
    if c["last_error"] is not None:
        raise Fail(f"status shows an error: {c['last_error']}")
    # Unknown tokens are 404, answered from memory.
    code, _ = env.http("/.well-known/acme-challenge/no-such-token")
    if code != 404:
        raise Fail(f"unknown http-01 token answered {code}, want 404")
    # The status page is not for everyone.
    code, _ = env.http("/.acme-status", host="denied.test")
    if code != 403:
        raise Fail(f"status page with acme.status-allow not matching answered {code}, want 403")
    # Normal content still served.
    code, body = env.http("/index.html")
    if code != 200 or "hello" not in body:
        raise Fail(f"normal request answered {code}")
    return s


def no_restart_loop(env, settle=6):
    n = env.restarts_asked()
    time.sleep(settle)
    if not env.alive():
        raise Fail("lighttpd died after the restart")
    m = env.restarts_asked()
    if m != n:
        raise Fail(f"mod_acme keeps restarting lighttpd ({n} -> {m} restarts in {settle} s)")
    return m


# Parts of a tick (macme_tick.c) that must never wait: mod_acme's own
# handovers and descriptors. Reported, not checked: "engine"
# (acme_engine_step: the storage thread's lock handover in store_async.c,
# issue 11) and "status" (1-2 ticks in about a third of the runs: malloc
# waiting for the C library's arena lock, doc/lighttpd.md).
MODULE_PARTS = ("installs", "cluster", "restart", "fd_sync")


def report_steps(env):
    """The longest engine step of every generation (one per graceful
    restart: the module logs it when it asks for the restart) and of the
    one running now, how many ticks waited in a syscall or on a lock
    (voluntary context switches) and in which part of the tick: wall time
    beyond CPU in a tick that did not wait is the scheduler's. Fails when
    a part of the tick that is mod_acme's own waited."""
    log = read(env.errlog)
    runs, waited_in = [], {}
    for m in re.finditer(
            r"longest engine step in this run: (\d+) us; with fd sync (\d+) us, (\d+) us of CPU; (\d+) of (\d+) "
            r"ticks waited(?:: ([a-z_0-9, ]+))?\)", log):
        runs.append(tuple(int(x) for x in m.groups()[:5]))
        for part in filter(None, (m.group(6) or "").split(", ")):
            name, n = part.rsplit(" ", 1)
            waited_in[name] = waited_in.get(name, 0) + int(n)
    s = env.status()
    runs.append((s["longest_step_us"], s["longest_tick_us"], s["longest_tick_cpu_us"], s["ticks_waited"],
                 s["ticks"]))
    for name, n in s["ticks_waited_in"].items():
        if n:
            waited_in[name] = waited_in.get(name, 0) + n
    worst = max(runs)
    say(f"MEASURED longest engine step inside lighttpd: {worst[0]} us (whole tick {worst[1]} us, "
        f"{max(r[2] for r in runs)} us of CPU at most); ticks that waited: {sum(r[3] for r in runs)} of "
        f"{sum(r[4] for r in runs)}"
        + (" (in " + ", ".join(f"{k} {v}" for k, v in sorted(waited_in.items())) + ")" if waited_in else "")
        + "; per generation: " + ", ".join(f"{r[0]}/{r[2]}" for r in runs) + " (wall/CPU us)"
        + f"; now: longest tick {s['longest_tick_us']} us, preempted {s['longest_tick_preempted']} time(s), "
        f"last wait {s['last_wait']}")
    # A read the engine's memory could not answer waits inside the step
    # for the storage thread, behind every queued write and fsync
    # (acme.log-level "debug" logs it): an issuance makes none.
    sync_reads = [l for l in log.splitlines() if "the step waits for the table" in l]
    if sync_reads:
        raise Fail(f"{len(sync_reads)} reads inside engine steps waited for the storage table:\n"
                   + "\n".join(sync_reads[-5:]))
    own = {k: v for k, v in waited_in.items() if k in MODULE_PARTS}
    if own:
        ticks = [l for l in log.splitlines() if re.search(r"tick \d+ took .* wait\(s\) in ", l)]
        raise Fail(f"ticks waited in mod_acme's own parts of the tick: {own} (the loop blocked there):\n"
                   + "\n".join(ticks[-10:]))


# ---------------------------------------------------------------- scenarios

def sc_http01(env):
    env.config("lt-http.example")   # no ssl.acme-tls-1: http-01 only
    env.start()
    pid = env.proc.pid
    first = env.file_leaf()
    if not first:
        raise Fail("no placeholder in ssl.pemfile at start")
    say("placeholder at start: " + cert_text(first).splitlines()[0])
    leaf = env.wait_for(env.served_issued, 90, "the issued certificate on the TLS port")
    say("served after the graceful restart:\n" + cert_text(leaf))
    s = check_common_after_issue(env, leaf, pid)
    log = read(env.errlog)
    if "published http-01" not in log:
        raise Fail("no http-01 challenge was published")
    asked = no_restart_loop(env)
    if asked != 1:
        raise Fail(f"{asked} graceful restarts asked, want exactly 1")
    # gnutls-cli sees the same certificate.
    if shutil.which("gnutls-cli"):
        r = subprocess.run(["gnutls-cli", "--print-cert", f"--x509cafile={env.root}", f"--sni-hostname={env.name}",
                            "-p", str(env.tls_port), "127.0.0.1", f"--verify-hostname={env.name}"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        got = pem_certs(r.stdout.decode(errors="replace"))
        if not got or norm(got[0]) != norm(leaf):
            raise Fail("gnutls-cli does not see the issued certificate:\n" + r.stdout.decode(errors="replace")[-1500:])
        say("gnutls-cli sees the issued certificate too")
    report_steps(env)


def make_selfsigned(cn, key_path, crt_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key_path, "-out", crt_path, "-days", "1", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=DNS:{cn}"], check=True, capture_output=True, timeout=30)


def sc_alpn(env):
    # tls-alpn-01 only, through lighttpd's own ssl.acme-tls-1; key inside the pemfile.
    env.config("lt-alpn.example", challenge=["tls-alpn-01"], alpn=True, privkey=False)
    env.start()
    pid = env.proc.pid
    st = os.stat(env.alpn)
    if st.st_uid != env.pw.pw_uid:
        raise Fail("mod_acme did not give the ssl.acme-tls-1 directory to www-data")
    # lighttpd itself: an acme-tls/1 handshake gets <dir>/<SNI>.crt.pem, a
    # normal one keeps ssl.pemfile.
    probe = "probe.test"
    k, c = os.path.join(env.alpn, probe + ".key.pem"), os.path.join(env.alpn, probe + ".crt.pem")
    make_selfsigned("probe.test", k, c)
    for p in (k, c):
        os.chown(p, env.pw.pw_uid, env.pw.pw_gid)
    got, _ = env.s_client(probe, alpn="acme-tls/1")
    if not got or norm(got) != norm(pem_certs(read(c))[0]):
        raise Fail("an acme-tls/1 client does not get the certificate from ssl.acme-tls-1")
    got, _ = env.s_client(probe)
    if not got or norm(got) == norm(pem_certs(read(c))[0]):
        raise Fail("a normal client gets the acme-tls/1 certificate")
    os.unlink(c)
    os.unlink(k)
    say("ssl.acme-tls-1 answers acme-tls/1 clients only")

    leaf = env.wait_for(env.served_issued, 90, "the issued certificate on the TLS port")
    say("served after the graceful restart:\n" + cert_text(leaf))
    check_common_after_issue(env, leaf, pid)
    log = read(env.errlog)
    if "published tls-alpn-01" not in log or "published http-01" in log:
        raise Fail("the certificate was not validated by tls-alpn-01 alone")
    left = os.listdir(env.alpn)
    if left:
        raise Fail(f"challenge files left in ssl.acme-tls-1: {left}")
    # Normal clients still get the normal (issued) certificate after all this.
    got, code = env.s_client(env.name)
    if code != 0 or norm(got) != norm(leaf):
        raise Fail("a normal client does not get the issued certificate")
    no_restart_loop(env)
    report_steps(env)


def sc_renew(env):
    # Also: restarts with server.graceful-restart-bg (the old generation
    # keeps serving in a fork()ed child while lighttpd re-executes itself,
    # already as www-data: the pid file must be www-data's).
    env.config("lt-renew.example", extra='acme.renew-after-seconds = 20\n'
               'server.feature-flags += ("server.graceful-restart-bg" => "enable")')
    pidfile = os.path.join(env.base, "lighttpd.pid")
    open(pidfile, "w").close()
    os.chown(pidfile, env.pw.pw_uid, env.pw.pw_gid)
    env.start()
    pid = env.proc.pid
    first = env.wait_for(env.served_issued, 90, "the first issued certificate")
    say("first certificate:\n" + cert_text(first))
    second = env.wait_for(lambda: (lambda l: l if l and norm(l) != norm(first) else None)(env.served_issued()), 150,
                          "a renewed certificate, without anyone asking")
    say("renewed certificate:\n" + cert_text(second))
    check_common_after_issue(env, second, pid)
    if env.restarts_asked() < 2:
        raise Fail("expected at least two graceful restarts")
    report_steps(env)


def sc_crash(env):
    # Kill -9 as soon as the challenge is published: the order is in flight
    # (Pebble waits 0-3 s before it validates). Should Pebble have waited 0 s
    # and the order finished before the kill, try again with another name.
    for attempt in range(1, 4):
        env.config(f"lt-crash{attempt}.example")
        env.start()
        placeholder = env.file_leaf()
        env.wait_for(lambda: "published http-01" in env.run_log(), 60, "the challenge to be published", every=0.01)
        env.stop(signal.SIGKILL)
        if norm(env.file_leaf()) == norm(placeholder):
            say(f"lighttpd killed with SIGKILL in the middle of the order (attempt {attempt})")
            break
        say(f"attempt {attempt}: the order finished before the kill; once more with another name")
    else:
        raise Fail("three times the order finished before lighttpd could be killed")
    env.start()
    pid = env.proc.pid
    leaf = env.wait_for(env.served_issued, 120, "the issued certificate after the restart")
    second_run = env.run_log()
    if "resuming order" not in second_run:
        raise Fail("the second run did not resume the saved order")
    say("the saved order was resumed" +
        (" (it had turned invalid; a new one was placed)" if "placing a new one" in second_run else " and completed"))
    check_common_after_issue(env, leaf, pid)
    no_restart_loop(env)
    report_steps(env)


def sc_eab(env):
    # The CA requires external account binding (with-pebble --eab).
    kid, hmac = os.environ["ACME_TEST_EAB_KID"], os.environ["ACME_TEST_EAB_HMAC"]
    # First without it: the engine's account step fails, lighttpd serves
    # on, and the status page says why (the engine retries with back-off).
    env.config("lt-eab.example")
    env.start()
    s = env.wait_for(lambda: (lambda s: s if s["account"] == "failed" else None)(env.status()), 30,
                     "status: account failed")
    if "external account binding" not in (s["account_error"] or ""):
        raise Fail(f"the account error does not name external account binding: {s['account_error']!r}")
    say(f"account without EAB: {s['account']}: {s['account_error']}")
    code, body = env.http("/index.html")
    if code != 200:
        raise Fail(f"lighttpd answered {code} while the account was refused")
    log = env.run_log()
    if "account at " not in log or "the engine tries again with back-off" not in log:
        raise Fail("the refused account is not in the error log")
    # Day one has no key and no account: that is not an error, and the
    # lookup's "no such account" is followed by the reason (EAB), not
    # shown as one of its own.
    for noise in ("ERROR: account: no account key stored", "ERROR: account lookup"):
        if noise in log:
            raise Fail(f"the error log has a misleading {noise!r}:\n{log[-2000:]}")
    env.stop()
    env.config("lt-eab.example", extra=f'acme.eab-kid = "{kid}"\nacme.eab-hmac-key = "{hmac}"')
    env.start()
    pid = env.proc.pid
    leaf = env.wait_for(env.served_issued, 90, "the issued certificate (account bound with EAB)")
    check_common_after_issue(env, leaf, pid)
    if env.status()["account"] != "ready":
        raise Fail("account not ready")
    report_steps(env)


def sc_workers(env):
    env.config("lt-workers.example", workers=2)
    env.start()
    pid = env.proc.pid
    leaf = env.wait_for(env.served_issued, 90, "the issued certificate with server.max-worker = 2")
    say("served with 2 workers:\n" + cert_text(leaf))
    check_common_after_issue(env, leaf, pid)
    # Any worker answers the status page with the leader's view.
    pids = {env.status()["pid"] for _ in range(6)}
    if len(pids) != 1:
        raise Fail(f"more than one engine: {pids}")
    no_restart_loop(env)
    report_steps(env)


def cert_epoch(pem, which):
    """notBefore / notAfter ("startdate" / "enddate") of a PEM certificate, Unix seconds."""
    import datetime
    r = subprocess.run(["openssl", "x509", "-noout", "-" + which], input=pem.encode(), capture_output=True,
                       timeout=20, check=True)
    text = r.stdout.decode().strip().split("=", 1)[1]
    t = datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp())


def parse_prometheus(text):
    """{'name{labels}': value} of a text exposition 0.0.4; every sample must
    follow its family's # HELP and # TYPE lines."""
    if text and not text.endswith("\n"):
        raise Fail("the exposition does not end with a newline")
    samples, helps, types = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            types[line.split()[2]] = line.split()[3]
        else:
            m = re.fullmatch(r'(acme_[a-z_]+)(\{[^}]*\})? (-?[0-9]+)', line)
            if not m:
                raise Fail(f"not a sample line: {line!r}")
            if m.group(1) not in helps or m.group(1) not in types:
                raise Fail(f"no HELP/TYPE before {line!r}")
            samples[m.group(1) + (m.group(2) or "")] = int(m.group(3))
    return samples


def sc_metrics(env):
    """The status URL's ?format=prometheus, from every worker (issue 14 part 5)."""
    env.config("lt-metrics.example", workers=2)
    env.start()
    pid = env.proc.pid
    leaf = env.wait_for(env.served_issued, 90, "the issued certificate")
    check_common_after_issue(env, leaf, pid)
    not_after, not_before = cert_epoch(leaf, "enddate"), cert_epoch(leaf, "startdate")
    cid = env.status()["certificates"][0]["id"]

    def scrape():
        req = urllib.request.Request(f"http://127.0.0.1:{env.http_port}/.acme-status?x=1&format=prometheus")
        with urllib.request.urlopen(req, timeout=10) as r:
            ctype = r.headers.get("Content-Type", "")
            if not ctype.startswith("text/plain; version=0.0.4"):
                raise Fail(f"Content-Type {ctype!r}")
            return parse_prometheus(r.read().decode())

    def valid_in(m):
        return m.get(f'acme_certificate_state{{id="{cid}",state="valid"}}') == 1 and m

    m = env.wait_for(lambda: valid_in(scrape()), 20, "metrics: state valid")
    say(f"metrics: {len(m)} samples")
    want = {
        "acme_certificates_managed": 1,
        f'acme_certificate_info{{id="{cid}",names="lt-metrics.example"}}': 1,
        f'acme_certificate_not_after_timestamp_seconds{{id="{cid}"}}': not_after,
        f'acme_certificate_state{{id="{cid}",state="ordering"}}': 0,
        f'acme_certificate_consecutive_failures{{id="{cid}"}}': 0,
    }
    for k, v in want.items():
        if m.get(k) != v:
            raise Fail(f"metrics: {k} is {m.get(k)}, want {v} (served certificate notAfter {not_after})")
    nr = m.get(f'acme_certificate_next_renewal_timestamp_seconds{{id="{cid}"}}')
    if nr is None or not not_before < nr < not_after:
        raise Fail(f"metrics: next renewal {nr} outside the certificate's lifetime [{not_before}, {not_after}]")
    # Every worker answers with the one engine's view.
    for _ in range(6):
        if scrape() != m:
            raise Fail("a worker answered other metrics")
    # The JSON page is still what the URL gives without the parameter,
    # and the parameter alone (no other query) works too.
    if "certificates" not in env.status():
        raise Fail("the status URL without ?format=prometheus is no longer JSON")
    code, body = env.http("/.acme-status?format=prometheus")
    if code != 200 or parse_prometheus(body).get("acme_certificates_managed") != 1:
        raise Fail(f"?format=prometheus alone answered {code}")
    code, _ = env.http("/.acme-status?format=prometheus", host="denied.test")
    if code != 403:
        raise Fail(f"metrics with acme.status-allow not matching answered {code}, want 403")
    say(f"metrics: notAfter {not_after} as served, renewal at {nr}, same from every worker, 403 where denied")


def sc_badconfig(env):
    def refuses(label, expect, relative=False, **kw):
        env.config("lt-bad.example", **kw)
        if os.path.exists(env.errlog):
            os.unlink(env.errlog)
        conf = os.path.basename(env.conf) if relative else env.conf
        r = subprocess.run([os.environ["LIGHTTPD_BIN"], "-D", "-f", conf, "-m", env.moddir],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30, cwd=env.base,
                           env=dict(os.environ, LD_LIBRARY_PATH=env.moddir), start_new_session=True)
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace") + read(env.errlog)
        if r.returncode == 0:
            raise Fail(f"{label}: lighttpd started (exit 0); output:\n{out}")
        if expect not in out:
            raise Fail(f"{label}: lighttpd refused, but without naming {expect!r}:\n{out}")
        line = next((l for l in out.splitlines() if expect in l), "")
        say(f"{label}: refused -> {line.strip()}")

    refuses("unknown challenge type", "acme.challenge", challenge=["http-02"])
    refuses("dns-01 without a DNS module", "set acme.dns-module", challenge=["dns-01"])
    refuses("dns-account-01 without a DNS module", "acme.challenge: dns-account-01 needs a DNS module: set "
            "acme.dns-module", challenge=["dns-account-01"])
    refuses("a wildcard without a DNS module", "the wildcard \"*.lt-bad.example\" needs dns-01",
            domains=["*.lt-bad.example"])
    refuses("a relative DNS module path", "acme.dns-module \"acme_dns01.so\" must be an absolute path",
            extra='acme.dns-module = "acme_dns01.so"')
    refuses("tls-alpn-01 without ssl.acme-tls-1", "ssl.acme-tls-1", challenge=["tls-alpn-01"])
    locked = os.path.join(env.base, "locked-state")
    os.mkdir(locked, 0o700)  # root's, www-data cannot enter it
    refuses("unreadable state dir", "acme.state-dir", state_dir=locked)
    # (With no file at all mod_openssl stops first, with its own message.)
    os.makedirs(env.certs, exist_ok=True)
    make_selfsigned("lt-bad.example", os.path.join(env.certs, "lt-bad.example.key"),
                    os.path.join(env.certs, "lt-bad.example.pem"))
    refuses("mod_acme after mod_openssl", "server.modules", modules=["mod_openssl", "mod_acme"])
    refuses("no ssl.pemfile", "ssl.pemfile", pemfile=False)
    refuses("bad key type", "acme.key-type", extra='acme.key-type = "dsa-512"')
    refuses("unknown storage", "acme.storage: \"consul\"", extra='acme.storage = "consul"')
    refuses("etcd without endpoints", "needs acme.etcd-endpoints", extra='acme.storage = "etcd"')
    refuses("etcd keys without etcd storage", "acme.storage is not \"etcd\"",
            extra='acme.etcd-endpoints = ("http://127.0.0.1:2379")')
    refuses("relative -f", "absolute -f", relative=True)
    refuses("server.chroot", "server.chroot", extra=f'server.chroot = "{env.base}"')
    refuses("a fallback CA over http", "acme.fallback", extra='acme.fallback = ("b" => "http://127.0.0.1:9/dir")')
    refuses("EAB for an unknown fallback", "acme.fallback-eab",
            extra='acme.fallback = ("b" => "https://127.0.0.1:9/dir")\nacme.fallback-eab = ("c" => "kid:key")')


def sc_example(env):
    """examples/lighttpd.conf, with its paths and ports moved into a temp
    dir, passes lighttpd's own config test with mod_acme loaded."""
    src = read(os.environ["EXAMPLE_CONF"])
    if not src:
        raise Fail("no examples/lighttpd.conf (EXAMPLE_CONF)")
    b = env.base
    for old, new in (("/etc/lighttpd/acme", f"{b}/certs"), ("/var/lib/lighttpd", f"{b}/var"),
                     ("/var/www/html", f"{b}/www"), ("/run/lighttpd.pid", f"{b}/lighttpd.pid"),
                     ("/var/log/lighttpd/error.log", env.errlog)):
        src = src.replace(old, new)
    src = re.sub(r"server\.port\s*=\s*80\b", "server.port = 0", src)
    src = src.replace('"socket" == ":443"', '"socket" == "127.0.0.1:0"')
    conf = os.path.join(b, "example.conf")
    with open(conf, "w") as f:
        f.write(src)
    r = subprocess.run([os.environ["LIGHTTPD_BIN"], "-tt", "-f", conf, "-m", env.moddir],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                       env=dict(os.environ, LD_LIBRARY_PATH=env.moddir), start_new_session=True)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace") + read(env.errlog)
    if r.returncode != 0:
        raise Fail(f"lighttpd -tt rejects the example config:\n{out}")
    for name in ("example.org", "shop.example.net"):
        for ext in ("pem", "key"):
            if not os.path.exists(f"{b}/certs/{name}.{ext}"):
                raise Fail(f"no placeholder {name}.{ext} after lighttpd -tt:\n{out}")
    say("examples/lighttpd.conf passes lighttpd -tt; placeholders written for both sites")


LAG_S = 3.0


def kdig_txt(server, name):
    host, port = server.rsplit(":", 1)
    r = subprocess.run(["kdig", f"@{host}", "-p", port, "+short", "+norecurse", "TXT", name],
                       capture_output=True, timeout=10)
    return [l.strip('"') for l in r.stdout.decode().split()] if r.returncode == 0 else []


def dns01_module_conf(env):
    """The dns01 module (DNS01_MODULE_SO, copied where www-data can load it)
    as acme.dns-module, RFC 2136 + TSIG to with-knot's primary."""
    so = os.path.join(env.moddir, "acme_dns01.so")
    shutil.copy(os.environ["DNS01_MODULE_SO"], so)
    primary = os.environ["DNS01_TEST_SERVER"]
    cfg = {
        "backend": "rfc2136", "server": primary, "resolver": primary,
        "nameserver-port": os.environ["DNS01_TEST_PORT"],
        "tsig-key-name": os.environ["DNS01_TEST_TSIG_NAME"],
        "tsig-algorithm": os.environ["DNS01_TEST_TSIG_ALGORITHM"],
        "tsig-secret": os.environ["DNS01_TEST_TSIG_SECRET"],
        "ttl": "5", "propagation-timeout": "60", "propagation-interval": "100", "dns-timeout": "1000",
    }
    return (f'acme.dns-module = "{so}"\n' + "acme.dns-module-config = (" +
            ", ".join(f'"{k}" => "{v}"' for k, v in cfg.items()) + ")")


def sc_dns01(env):
    """A wildcard certificate through acme.dns-module (the dns01 module,
    RFC 2136 + TSIG to knot). The base name goes by http-01, the wildcard
    by dns-01. Pebble asks only the secondary, which the test holds back:
    the module's wait must run off lighttpd's loop for LAG_S seconds while
    lighttpd answers requests and the engine steps stay short."""
    if os.environ.get("DNS01_TEST_LAGGING") != "1":
        raise Fail("run under tests/dns01/with-knot --lagging-secondary")
    primary, secondary = os.environ["DNS01_TEST_SERVER"], os.environ["DNS01_TEST_SECONDARY"]
    extra = dns01_module_conf(env)
    # The zone's apex: it has an A record of its own. (A name below it
    # would lose the zone's *.acme.test A the moment its _acme-challenge
    # TXT exists: an empty non-terminal is not covered by a wildcard.)
    base = "acme.test"
    env.config("lt-wild", domains=["*." + base, base], extra=extra)
    env.name = "www." + base   # the SNI a client sends: covered by the wildcard
    env.start()
    pid = env.proc.pid
    challenge = "_acme-challenge." + base

    # The value reaches the primary; the secondary lags until told.
    t_primary = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not t_primary:
        if not env.alive():
            raise Fail("lighttpd exited")
        if kdig_txt(primary, challenge):
            t_primary = time.monotonic()
        time.sleep(0.05)
    if not t_primary:
        raise Fail(f"no TXT for {challenge} at the primary within 90 s")
    if kdig_txt(secondary, challenge):
        raise Fail("the secondary has the value already: it is not lagging")
    # While the module waits, lighttpd serves: every request answers fast.
    worst = 0.0
    n = 0
    while time.monotonic() - t_primary < LAG_S:
        t0 = time.monotonic()
        code, body = env.http("/index.html")
        worst = max(worst, time.monotonic() - t0)
        n += 1
        if code != 200 or "hello" not in body:
            raise Fail(f"lighttpd answered {code} while the DNS module waited")
        time.sleep(0.05)
    if env.file_leaf() and PLACEHOLDER_CN not in cert_text(env.file_leaf()):
        raise Fail("a certificate was issued before the secondary had the value")
    say(f"while the module waited for the secondary: {n} requests, slowest {worst * 1000:.1f} ms")
    if worst > 1.0:
        raise Fail(f"lighttpd took {worst:.2f} s to answer while the DNS module waited: its loop is blocked")
    subprocess.run([os.environ["DNS01_TEST_KNOTC"], "-s", os.environ["DNS01_TEST_SECONDARY_SOCKET"], "zone-refresh",
                    os.environ["DNS01_TEST_ZONE"] + "."], check=True, capture_output=True, timeout=20)
    say("secondary refreshed")

    leaf = env.wait_for(env.served_issued, 90, "the wildcard certificate on the TLS port")
    text = cert_text(leaf)
    say("served after the graceful restart:\n" + text)
    if "DNS:*.acme.test" not in text or "DNS:acme.test" not in text:
        raise Fail("the served certificate does not name *.acme.test and acme.test")
    # Another name under the wildcard gets the same certificate, verified.
    other, code = env.s_client("anything.acme.test")
    if code != 0 or norm(other) != norm(leaf):
        raise Fail("a second name under the wildcard does not get the issued certificate")
    if norm(leaf) != norm(env.file_leaf() or ""):
        raise Fail("the certificate served is not the one in ssl.pemfile")
    if env.proc.pid != pid or not env.alive():
        raise Fail("lighttpd's pid changed: the restart was not graceful")
    log = read(env.errlog)
    for want in ("module dns01 loaded from", "dns01: waiting for _acme-challenge.acme.test TXT",
                 "dns01: ns2.acme.test", "TXT is visible at every authoritative server", "published http-01"):
        if want not in log:
            raise Fail(f"the log lacks {want!r}")
    s = env.wait_for(lambda: (lambda s: s if s["certificates"] and s["certificates"][0]["state"] == "valid" else None)(
        env.status()), 20, "status: valid")
    c = s["certificates"][0]
    if c["id"] != "_.acme.test" or c["names"] != ["*.acme.test", "acme.test"]:
        raise Fail(f"status does not describe the wildcard certificate: {c}")
    if s.get("dns_module_error") is not None:
        raise Fail(f"the status page shows a DNS module error: {s['dns_module_error']}")
    # The record is taken down once validated (the secondary follows on refresh).
    env.wait_for(lambda: not kdig_txt(primary, challenge), 20, "the TXT record removed at the primary")
    no_restart_loop(env)
    for line in re.findall(r"a step took \d+ us \(\d+ us of CPU\)", read(env.errlog)):
        say("over 5 ms: " + line)
    report_steps(env)


def standin_validations(kind):
    """The stand-in CA's validations of one type: [(name, ok, record)]."""
    out = []
    for line in read(os.environ["ACME_TEST_STANDIN_LOG"]).splitlines():
        v = json.loads(line)
        if v.get("type") == kind:
            out.append((v.get("name"), v.get("ok"), v.get("record")))
    return out


def sc_dns_persist(env):
    """mod_acme with the two DNS types made for many accounts and for devices
    without DNS credentials, against the stand-in CA (validating through knot).
    1. dns-account-01 through acme.dns-module: the record goes to the
       account's own label, a wildcard certificate is served.
    2. dns-persist-01 with no DNS module: the owner created
       _validation-persist.<name> once (here: knsupdate, with the account
       URL mod_acme logged); mod_acme publishes nothing and is served a
       certificate."""
    for v in ("DNS01_TEST_SERVER", "ACME_TEST_STANDIN_LOG"):
        if not os.environ.get(v):
            raise Fail("run under tests/dns01/with-knot and tests/integration/dns_persist_ca_standin.py")
    zone = os.environ["DNS01_TEST_ZONE"]
    primary = os.environ["DNS01_TEST_SERVER"]
    extra = dns01_module_conf(env)

    # ---- 1. dns-account-01, a wildcard, through the module
    base = "lt-acct." + zone
    env.config("lt-acct", domains=["*." + base, base], challenge=["dns-account-01"], extra=extra)
    env.name = "www." + base
    env.start()
    leaf = env.wait_for(env.served_issued, 90, "the dns-account-01 certificate on the TLS port")
    text = cert_text(leaf)
    if f"DNS:*.{base}" not in text or f"DNS:{base}" not in text:
        raise Fail(f"the served certificate does not name *.{base} and {base}:\n{text}")
    got = standin_validations("dns-account-01")
    if not any(ok for _, ok, _ in got) or not all(ok for _, ok, _ in got):
        raise Fail(f"the stand-in's dns-account-01 validations: {got}")
    labels = [n for n, _, _ in got]
    say(f"dns-account-01 validated at {labels}")
    if not all(n.startswith("_") and ("._acme-challenge." + base) in n for n in labels):
        raise Fail(f"dns-account-01 was not validated at an account label: {labels}")
    log = env.run_log()
    m = re.search(r"account at \S+: (https://\S+)", log)
    if not m:
        raise Fail("mod_acme did not log its account URL")
    account = m.group(1)
    env.stop()

    # ---- 2. dns-persist-01, no DNS module: the owner's record only
    name = "lt-persist." + zone
    record = f"{os.environ['ACME_TEST_ISSUER_DOMAIN']}; accounturi={account}"
    host, port = primary.rsplit(":", 1)
    upd = (f"server {host} {port}\nzone {zone}.\n"
           f'add _validation-persist.{name}. 60 TXT "{record}"\nsend\n')
    r = subprocess.run(["knsupdate", "-y", f"{os.environ['DNS01_TEST_TSIG_ALGORITHM']}:"
                        f"{os.environ['DNS01_TEST_TSIG_NAME']}:{os.environ['DNS01_TEST_TSIG_SECRET']}"],
                       input=upd.encode(), capture_output=True, timeout=20)
    if r.returncode != 0:
        raise Fail("knsupdate: " + r.stderr.decode(errors="replace"))
    env.config("lt-persist", domains=[name], challenge=["dns-persist-01"])
    env.start()
    leaf = env.wait_for(env.served_issued, 90, "the dns-persist-01 certificate on the TLS port")
    if f"DNS:{name}" not in cert_text(leaf):
        raise Fail(f"the served certificate does not name {name}")
    got = [g for g in standin_validations("dns-persist-01") if g[0] == "_validation-persist." + name]
    if not got or not all(ok for _, ok, _ in got):
        raise Fail(f"the stand-in's dns-persist-01 validations of {name}: {got}")
    log = env.run_log()
    if f"dns-persist-01 for {name}: relying on the TXT record at _validation-persist.{name}" not in log:
        raise Fail("mod_acme did not say it relies on the owner's record")
    if "module dns01 loaded" in log:
        raise Fail("a DNS module was loaded for dns-persist-01 although none is configured")
    # The owner's record stays: mod_acme never removes it.
    if not kdig_txt(primary, "_validation-persist." + name):
        raise Fail("the owner's _validation-persist record is gone")
    s = env.wait_for(lambda: (lambda s: s if s["certificates"] and s["certificates"][0]["state"] == "valid" else None)(
        env.status()), 20, "status: valid")
    if s["certificates"][0]["id"] != name:
        raise Fail(f"status does not describe {name}: {s['certificates'][0]}")
    report_steps(env)


def sc_failover(env):
    # CA failover (issue 14 part 3): the first CA is down, the second Pebble issues.
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))   # bound, never listening: connections are refused
    env.directory = f"https://127.0.0.1:{sock.getsockname()[1]}/dir"
    ctx = ssl.create_default_context(cafile=os.environ["ACME_TEST_CA_FILE"])
    with urllib.request.urlopen(os.environ["ACME_TEST_MGMT2"] + "/roots/0", context=ctx, timeout=10) as r:
        root2 = r.read().decode()
    env.root = os.path.join(env.base, "pebble2-root.pem")
    with open(env.root, "w") as f:
        f.write(root2)   # served_issued verifies against the second Pebble's root
    env.config("lt-failover.example",
               extra=f'acme.fallback = ("backup" => "{os.environ["ACME_TEST_DIRECTORY2"]}")')
    env.start()
    pid = env.proc.pid
    leaf = env.wait_for(env.served_issued, 90, "the certificate from the fallback CA")
    say("served, issued by the second Pebble:\n" + cert_text(leaf))
    s = check_common_after_issue(env, leaf, pid)
    c = s["certificates"][0]
    if c.get("ca") != "backup" or "CA primary: " not in (c.get("ca_reason") or ""):
        raise Fail(f"status does not say the certificate moved to backup and why: {c}")
    if [x["name"] for x in s.get("cas", [])] != ["primary", "backup"]:
        raise Fail(f"status lists the CAs as {s.get('cas')}")
    if "moves to CA backup" not in read(env.errlog):
        raise Fail("the move is not in the error log")
    say("status: " + json.dumps(c)[:300])
    # A restart keeps the choice: the stored certificate, at backup, nothing moved again.
    env.stop()
    moves = read(env.errlog).count("moves to CA")
    env.start()
    s = env.wait_for(lambda: (lambda s: s if s["certificates"] and s["certificates"][0].get("ca") == "backup"
                                        and s["certificates"][0]["state"] == "valid" else None)(env.status()),
                     30, "status after the restart: valid at backup")
    again = env.wait_for(env.served_issued, 30, "the certificate after the restart")
    if norm(again) != norm(leaf):
        raise Fail("the restart served another certificate")
    time.sleep(3)
    if read(env.errlog).count("moves to CA") != moves:
        raise Fail("the restart moved the certificate again")
    sock.close()
    report_steps(env)


SCENARIOS = {"dns01": sc_dns01, "dns_persist": sc_dns_persist, "http01": sc_http01, "alpn": sc_alpn,
             "renew": sc_renew, "crash": sc_crash, "workers": sc_workers, "eab": sc_eab, "badconfig": sc_badconfig,
             "example": sc_example, "metrics": sc_metrics, "failover": sc_failover}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print("usage: lt_test.py " + "|".join(SCENARIOS), file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        say("SKIP: needs root (lighttpd starts as root and drops to www-data)")
        return 77
    scenario = sys.argv[1]
    env = Env(scenario, need_pebble=scenario not in ("badconfig", "example"))
    try:
        SCENARIOS[scenario](env)
        say(f"{scenario}: PASS")
        return 0
    except Fail as e:
        say(f"{scenario}: FAIL: {e}")
        print(env.diagnostics(), file=sys.stderr)
        return 1
    finally:
        env.stop()
        if env.own_top:
            shutil.rmtree(env.top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
