#!/usr/bin/env python3
"""fake_acmedns_api.py: a stand-in for the acme-dns HTTP API, for tests only.

    tests/dns01/fake_acmedns_api.py -- CMD [ARGS...]

It is NOT acme-dns. It speaks acme-dns's documented API (the project's
README: POST /register, POST /update with X-Api-User / X-Api-Key, "txt"
exactly 43 characters, the two most recent values kept per subdomain) over
HTTPS on 127.0.0.1, with a throwaway CA made here, and instead of serving
DNS itself it writes each subdomain's TXT records into the test's knotd
with knsupdate (TSIG), under auth.acme.test. -- so the module's propagation
check and Pebble see them like any other record. Run it under with-knot.

CMD sees, besides what it already had:
  ACMEDNS_TEST_API      https://127.0.0.1:P
  ACMEDNS_TEST_CA_FILE  the CA that signed the listener's certificate
  ACMEDNS_TEST_STATE    a JSON file rewritten after every request:
                        {"registrations": N, "updates": [{"subdomain", "txt"}],
                         "refused": N, "accounts": {username: fulldomain}}
  ACMEDNS_TEST_ZONE     auth.acme.test

Only the Python standard library, openssl and knsupdate are used; only
127.0.0.1 is contacted. Exit status: CMD's (2 if the server could not start).
"""

import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROG = "fake_acmedns_api"
AUTH_ZONE = "auth.acme.test"

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = fake acme-dns API test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
"""


def say(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def run(args):
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stdout.decode(errors='replace')}")


def make_certs(d):
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF)
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    srv, srv_key, csr = (os.path.join(d, n) for n in ("server.pem", "server.key", "server.csr"))
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", "-config", cnf, "-extensions", "v3_ca", *newkey,
         "-keyout", ca_key, "-out", ca, "-days", "2", "-sha256"])
    run(["openssl", "req", "-new", "-config", cnf, "-subj", "/CN=localhost", *newkey,
         "-keyout", srv_key, "-out", csr])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-set_serial", "0x" + secrets.token_hex(8), "-days", "2", "-sha256",
         "-extfile", cnf, "-extensions", "v3_server", "-out", srv])
    return ca, srv, srv_key


class State:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.accounts = {}      # username -> {password, subdomain, fulldomain}
        self.txt = {}           # subdomain -> [older, newer]
        self.registrations = 0
        self.updates = []
        self.refused = 0
        self.save()

    def save(self):
        data = {"registrations": self.registrations, "updates": self.updates,
                "refused": self.refused,
                "accounts": {u: a["fulldomain"] for u, a in self.accounts.items()}}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)


def set_txt(fulldomain, values):
    """Make fulldomain's TXT RRset exactly values, in knotd."""
    host, port = os.environ["DNS01_TEST_SERVER"].rsplit(":", 1)
    key = ":".join((os.environ["DNS01_TEST_TSIG_ALGORITHM"], os.environ["DNS01_TEST_TSIG_NAME"],
                    os.environ["DNS01_TEST_TSIG_SECRET"]))
    script = f"server {host} {port}\nzone {os.environ['DNS01_TEST_ZONE']}.\n"
    script += f"update delete {fulldomain}. TXT\n"
    for v in values:
        script += f"update add {fulldomain}. 1 TXT \"{v}\"\n"
    script += "send\n"
    r = subprocess.run(["knsupdate", "-y", key], input=script.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    if r.returncode != 0:
        raise RuntimeError("knsupdate: " + r.stdout.decode(errors="replace"))


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-acme-dns-api"

        def log_message(self, fmt, *args):
            say("%s %s" % (self.address_string(), fmt % args))

        def reply(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self):
            if self.path == "/health":
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self):
            raw = self.body()
            with state.lock:
                if self.path == "/register":
                    self.register(raw)
                elif self.path == "/update":
                    self.update(raw)
                else:
                    self.reply(404, {"error": "not_found"})
                state.save()

        def register(self, raw):
            allow = []
            if raw.strip():
                try:
                    allow = json.loads(raw).get("allowfrom", [])
                except (ValueError, AttributeError):
                    return self.reply(400, {"error": "malformed_json_payload"})
            sub = str(uuid.uuid4())
            user = str(uuid.uuid4())
            acct = {"password": secrets.token_urlsafe(30)[:40], "subdomain": sub,
                    "fulldomain": f"{sub}.{AUTH_ZONE}"}
            state.accounts[user] = acct
            state.registrations += 1
            self.reply(201, {"username": user, "password": acct["password"],
                             "fulldomain": acct["fulldomain"], "subdomain": sub,
                             "allowfrom": allow})

        def update(self, raw):
            user = self.headers.get("X-Api-User", "")
            key = self.headers.get("X-Api-Key", "")
            acct = state.accounts.get(user)
            if not acct or not secrets.compare_digest(acct["password"], key):
                state.refused += 1
                return self.reply(401, {"error": "forbidden"})
            try:
                req = json.loads(raw)
                sub, txt = req["subdomain"], req["txt"]
            except (ValueError, KeyError, TypeError):
                return self.reply(400, {"error": "malformed_json_payload"})
            if sub != acct["subdomain"]:
                state.refused += 1
                return self.reply(401, {"error": "forbidden"})
            if not isinstance(txt, str) or len(txt) != 43:
                return self.reply(400, {"error": "bad_txt"})
            # acme-dns keeps the two most recent values.
            values = (state.txt.get(sub, []) + [txt])[-2:]
            try:
                set_txt(acct["fulldomain"], values)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                say(str(e))
                return self.reply(500, {"error": "dns_update_failed"})
            state.txt[sub] = values
            state.updates.append({"subdomain": sub, "txt": txt})
            self.reply(200, {"txt": txt})

    return Handler


def main(argv):
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        say("usage: fake_acmedns_api.py -- CMD [ARGS...]")
        return 2
    for v in ("DNS01_TEST_SERVER", "DNS01_TEST_ZONE", "DNS01_TEST_TSIG_SECRET"):
        if not os.environ.get(v):
            say(f"{v} is not set: run under tests/dns01/with-knot")
            return 2
    tmp = tempfile.mkdtemp(prefix="fake-acmedns.")
    httpd = None
    child = None
    try:
        try:
            ca, cert, key = make_certs(tmp)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            say(f"cannot make certificates: {e}")
            return 2
        state = State(os.path.join(tmp, "state.json"))
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        t = threading.Thread(target=httpd.serve_forever, daemon=True)
        t.start()
        env = dict(os.environ)
        env.update({
            "ACMEDNS_TEST_API": f"https://127.0.0.1:{httpd.server_address[1]}",
            "ACMEDNS_TEST_CA_FILE": ca,
            "ACMEDNS_TEST_STATE": state.path,
            "ACMEDNS_TEST_ZONE": AUTH_ZONE,
        })

        def forward(signum, _frame):
            if child is not None and child.poll() is None:
                child.send_signal(signum)

        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, forward)
        try:
            child = subprocess.Popen(argv, env=env)
        except OSError as e:
            say(f"cannot run {argv[0]!r}: {e.strerror}")
            return 127
        rc = child.wait()
        return 128 - rc if rc < 0 else rc
    finally:
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
