#!/usr/bin/env python3
"""hostile_ca_standin.py: a DELIBERATELY HOSTILE stand-in for an ACME CA.

Not a CA. It exists so that tests/hostile/it_hostile.c can show what
libacme does when a CA (or whoever holds its keys) sends what Pebble never
sends: authorizations for names nobody ordered, thousands of them,
identifiers that are paths, shell or terminal escapes, certificates with
names nobody asked for, absurd Retry-After values, problem documents with
newlines. It speaks just enough ACME (RFC 8555) for libacme to get that
far: directory, nonces, newAccount, newOrder, authorizations, challenges,
finalize, certificate. JWS signatures are not checked; payloads are read
only where the flow needs them (newOrder identifiers and "replaces", the
CSR). Certificates are signed with a throwaway CA by the openssl command.

It listens on 127.0.0.1 (port chosen by the kernel), writes its own
throwaway CA to WORKDIR/ca.pem (trust that, and only that), prints
"PORT <n>" once it serves, and exits by itself after --lifetime seconds.
Every request is appended to WORKDIR/events as one JSON line
{"scenario", "kind", "method", "path"} so a test can count polls (kind is
the path's second part, "authz", "order"...; a deactivation of an
authorization adds a second line of kind "deactivate").

Each scenario lives under its own path prefix; point the client at
https://127.0.0.1:<port>/<scenario>/dir. Scenarios:

  ok                    a correct flow: pending authorization offering
                        http-01, dns-01 and tls-alpn-01; valid once
                        answered; the certificate names exactly the order
  stuck-processing      the order stays "processing" after finalize
  order-ra-<v>          as stuck-processing, every "processing" order
                        (the answer to finalize, each poll) carries
                        Retry-After <v>
  authz-ra-<v>          the authorization stays "pending" after the answer,
                        every poll of it carries Retry-After <v>
                        (<v>: big = 4294967296, huge = 99999999999999999999,
                         neg = -5, date = a far-future HTTP-date, 1 = 1 s)
  finalize-503          finalize answers 503 serverInternal with
                        Retry-After: 4294967296
  unordered             the authorization is for evil.example
  dup2000               2000 authorizations, all for the first name
  dup2                  one authorization per name, all for the first name
  ident-dotdot          identifier "../../etc/passwd"
  ident-newline         identifier "a.example\\nb.example"
  ident-subst           identifier "$(touch pwned).example"
  ident-esc             identifier "\\x1b[31ma.example"
  ident-empty           identifier ""
  ident-long            identifier of 4000 characters
  ident-missing         no identifier member
  ident-type            identifier type "email" with the right value
  wild-flag-missing     a wildcard's base name without "wildcard": true
  wild-flag-extra       a plain name with "wildcard": true
  echo-mismatch         the order's "identifiers" echo names evil.example
  authz-switch          the authorization names evil.example once answered
  extra-san             the certificate also names evil.example
  missing-san           the certificate lacks the last ordered name
  problem-detail        newOrder is refused with a problem whose detail and
                        subproblem identifier hold a newline and ESC
  stall-neworder        the first newOrder is read and never answered (the
                        connection stays open, up to 40 s); the rest is ok
  already-replaced      newOrder with "replaces" is refused with 409
                        alreadyReplaced; without it, the ok flow
  resume-unordered      stuck-processing until GET <prefix>/flip; then the
                        order (as a resumed client sees it) is "pending"
                        again with an authorization for evil.example

Python standard library only.
"""

import argparse
import base64
import http.server
import itertools
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

RA_VALUES = {
    "big": "4294967296",
    "huge": "99999999999999999999",
    "neg": "-5",
    "date": "Fri, 01 Jan 2100 00:00:00 GMT",
    "1": "1",
}

EVIL = "evil.example"
HOSTILE_IDENTS = {
    "ident-dotdot": "../../etc/passwd",
    "ident-newline": "a.example\nb.example",
    "ident-subst": "$(touch pwned).example",
    "ident-esc": "\x1b[31ma.example",
    "ident-empty": "",
    "ident-long": "a" * 4000,
}


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def problem(kind, detail, **extra):
    d = {"type": "urn:ietf:params:acme:error:" + kind, "detail": detail}
    d.update(extra)
    return d


class PKI:
    """A throwaway CA (openssl command), the TLS certificate of the
    stand-in, and the signing of CSRs into leaf certificates."""

    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(prefix="pki-", dir=workdir)
        self.serial = itertools.count(0x1000)
        self.lock = threading.Lock()
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.ca_pem = os.path.join(workdir, "ca.pem")
        self.run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.ca_key, "-out", self.ca_pem, "-subj", "/CN=hostile stand-in CA",
                 "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.tls_key = os.path.join(self.dir, "tls.key")
        csr = os.path.join(self.dir, "tls.csr")
        self.run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.tls_key, "-out", csr, "-subj", "/CN=127.0.0.1")
        self.tls_pem = self.sign(csr, ["IP:127.0.0.1"], inform="PEM", server=True)

    def run(self, *args):
        r = subprocess.run(["openssl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode:
            raise SystemExit("openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")))

    def sign(self, csr_path, sans, inform="DER", server=False):
        with self.lock:
            n = next(self.serial)
        ext = os.path.join(self.dir, "ext-%d" % n)
        out = os.path.join(self.dir, "cert-%d.pem" % n)
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n")
            f.write("keyUsage=critical,digitalSignature\n")
            f.write("extendedKeyUsage=serverAuth\n")
            if sans:
                f.write("subjectAltName=" + ",".join(sans) + "\n")
        self.run("x509", "-req", "-inform", inform, "-in", csr_path, "-CA", self.ca_pem,
                 "-CAkey", self.ca_key, "-set_serial", str(n), "-days", "2", "-extfile", ext,
                 "-out", out)
        if server:
            return out
        with open(out) as f:
            leaf = f.read()
        with open(self.ca_pem) as f:
            return leaf + f.read()

    def issue(self, csr_der, names):
        fd, path = tempfile.mkstemp(dir=self.dir, suffix=".csr")
        with os.fdopen(fd, "wb") as f:
            f.write(csr_der)
        sans = []
        for n in names:
            try:
                socket.inet_pton(socket.AF_INET6 if ":" in n else socket.AF_INET, n)
                sans.append("IP:" + n)
            except OSError:
                sans.append("DNS:" + n)
        return self.sign(path, sans)


class State:
    def __init__(self, pki, events):
        self.pki = pki
        self.events = events
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.orders = {}
        self.flipped = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile-ca-stand-in"

    def log_message(self, fmt, *args):
        pass  # every request is in the events file

    @property
    def st(self):
        return self.server.state

    def base(self, scen):
        return "https://127.0.0.1:%d/%s" % (self.server.server_address[1], scen)

    def event(self, scen, kind):
        with self.st.lock:
            with open(self.st.events, "a") as f:
                f.write(json.dumps({"scenario": scen, "kind": kind, "method": self.command,
                                    "path": self.path}) + "\n")

    def send(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Replay-Nonce", secrets.token_urlsafe(16))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=None):
        ctype = "application/problem+json" if status >= 400 else "application/json"
        self.send(status, json.dumps(obj), ctype=ctype, headers=headers)

    def do_HEAD(self):
        self.route()

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def payload(self, body):
        try:
            p = json.loads(body)["payload"]
            return json.loads(b64url_decode(p)) if p else None
        except (ValueError, KeyError, TypeError):
            return None

    def route(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        parts = self.path.strip("/").split("/")
        scen, what = parts[0], (parts[1] if len(parts) > 1 else "")
        arg = parts[2] if len(parts) > 2 else ""
        self.event(scen, what)
        u = self.base(scen)
        if what == "dir":
            return self.send_json(200, {
                "newNonce": u + "/new-nonce", "newAccount": u + "/new-account",
                "newOrder": u + "/new-order", "revokeCert": u + "/revoke-cert",
                "keyChange": u + "/key-change",
                "meta": {"website": "https://hostile.invalid/not-a-ca"}})
        if what == "new-nonce":
            return self.send(200 if self.command == "HEAD" else 204, ctype="text/plain")
        if what == "flip":
            with self.st.lock:
                self.st.flipped.add(scen)
            return self.send(200, "flipped\n", ctype="text/plain")
        if self.command != "POST":
            return self.send_json(405, problem("malformed", "hostile stand-in: POST only"))
        if what in ("new-account", "acct"):
            return self.send_json(200 if what == "acct" else 201,
                                  {"status": "valid", "contact": [], "orders": u + "/orders/1"},
                                  headers={"Location": u + "/acct/1"})
        if what == "new-order":
            return self.new_order(scen, u, self.payload(body))
        try:
            oid = int(arg.split("-")[0])
            order = self.st.orders[oid]
        except (ValueError, KeyError):
            return self.send_json(404, problem("malformed", "hostile stand-in: no such order"))
        if what == "order":
            return self.send_order(oid, 200)
        if what == "authz":
            p = self.payload(body)
            if isinstance(p, dict) and p.get("status") == "deactivated":
                self.event(scen, "deactivate")
            return self.send_authz(order, arg)
        if what == "chall":
            i = int(arg.split("-")[1])
            order["answered"].add(i)
            return self.send_json(200, {"type": arg.split("-")[2], "status": "processing",
                                        "url": u + "/chall/" + arg, "token": order["tokens"][i]})
        if what == "finalize":
            return self.finalize(oid, order, self.payload(body))
        if what == "cert":
            return self.send(200, order["chain"], ctype="application/pem-certificate-chain")
        return self.send_json(404, problem("malformed", "hostile stand-in: no such resource"))

    # ------------------------------------------------------------ order

    def new_order(self, scen, u, payload):
        if not payload or not isinstance(payload.get("identifiers"), list):
            return self.send_json(400, problem("malformed", "hostile stand-in: unreadable newOrder"))
        if scen == "problem-detail":
            return self.send_json(400, problem(
                "rejectedIdentifier", "line one\nline two \x1b[2J\x1b[31mred\x7f",
                status=400, subproblems=[problem("rejectedIdentifier", "sub\r\ndetail",
                                                 identifier={"type": "dns", "value": "x\n\x1bexample"})]))
        if scen == "stall-neworder":
            with self.st.lock:
                first = "stall-neworder" not in self.st.flipped
                self.st.flipped.add("stall-neworder")
            if first:
                # A request the server took and never answers, on a
                # connection that stays open (the other requests, on
                # other connections, are answered): wait until the client
                # gives up and closes it, at most 40 s.
                self.event(scen, "stalled")
                self.connection.settimeout(40)
                try:
                    self.connection.recv(1)
                except OSError:
                    pass
                self.close_connection = True
                return None
        if scen == "already-replaced" and "replaces" in payload:
            return self.send_json(409, problem("alreadyReplaced",
                                               "hostile stand-in: the certificate was already replaced"))
        idents = payload["identifiers"]
        with self.st.lock:
            oid = next(self.st.ids)
            self.st.orders[oid] = {"scen": scen, "u": u, "identifiers": idents, "finalized": False,
                                   "answered": set(), "chain": None,
                                   "tokens": [secrets.token_urlsafe(32) for _ in idents]}
        return self.send_order(oid, 201)

    def order_obj(self, oid):
        o = self.st.orders[oid]
        scen, u, idents = o["scen"], o["u"], o["identifiers"]
        flipped = scen == "resume-unordered" and scen in self.st.flipped
        if o["finalized"] and not flipped:
            stuck = scen in ("stuck-processing", "resume-unordered") or scen.startswith("order-ra-")
            status = "processing" if stuck else "valid"
        elif len(o["answered"]) >= len(idents) and not flipped:
            status = "ready"
        else:
            status = "pending"
        n = 2000 if scen == "dup2000" else len(idents)
        d = {"status": status, "expires": "2099-01-01T00:00:00Z",
             "identifiers": ([{"type": "dns", "value": EVIL}] + idents[1:]) if scen == "echo-mismatch"
             else idents,
             "authorizations": ["%s/authz/%d-%d" % (u, oid, i) for i in range(n)],
             "finalize": "%s/finalize/%d" % (u, oid)}
        if flipped:
            d["authorizations"] = ["%s/authz/%d-flipped" % (u, oid)]
        if status == "valid":
            d["certificate"] = "%s/cert/%d" % (u, oid)
        return d

    def send_order(self, oid, code):
        o = self.st.orders[oid]
        headers = {"Location": "%s/order/%d" % (o["u"], oid)}
        d = self.order_obj(oid)
        scen = o["scen"]
        if scen.startswith("order-ra-") and d["status"] == "processing":
            headers["Retry-After"] = RA_VALUES[scen[len("order-ra-"):]]
        self.send_json(code, d, headers=headers)

    # ------------------------------------------------------------ authorizations

    def send_authz(self, order, arg):
        scen, u = order["scen"], order["u"]
        bits = arg.split("-")
        oid = int(bits[0])
        if bits[1] == "flipped":
            i, ident = 0, {"type": "dns", "value": EVIL}
        else:
            i = int(bits[1])
            if scen in ("dup2000", "dup2"):
                i = 0
            ident = dict(order["identifiers"][i])
        value = ident.get("value", "")
        wildcard = value.startswith("*.")
        if wildcard:
            ident["value"] = value[2:]
        if scen == "unordered" or (scen == "authz-switch" and i in order["answered"]):
            ident["value"] = EVIL
        if scen in HOSTILE_IDENTS:
            ident["value"] = HOSTILE_IDENTS[scen]
        if scen == "ident-type":
            ident["type"] = "email"
        answered = i in order["answered"] and bits[1] != "flipped"
        stays = scen.startswith("authz-ra-") or scen == "authz-switch"
        status = "valid" if answered and not stays else "pending"
        chals = []
        for t in ("http-01", "dns-01", "tls-alpn-01"):
            chals.append({"type": t, "url": "%s/chall/%d-%d-%s" % (u, oid, i, t),
                          "token": order["tokens"][i],
                          "status": ("valid" if status == "valid" else
                                     "processing" if answered else "pending")})
        a = {"status": status, "expires": "2099-01-01T00:00:00Z", "identifier": ident,
             "challenges": chals}
        if scen == "ident-missing":
            del a["identifier"]
        if (wildcard and scen != "wild-flag-missing") or scen == "wild-flag-extra":
            a["wildcard"] = True
        headers = {}
        if scen.startswith("authz-ra-") and answered:
            headers["Retry-After"] = RA_VALUES[scen[len("authz-ra-"):]]
        self.send_json(200, a, headers=headers)

    # ------------------------------------------------------------ finalize

    def finalize(self, oid, order, payload):
        scen = order["scen"]
        if scen == "finalize-503":
            return self.send_json(503, problem("serverInternal", "hostile stand-in: come back in 136 years"),
                                  headers={"Retry-After": RA_VALUES["big"]})
        try:
            csr = b64url_decode(payload["csr"])
        except (TypeError, KeyError, ValueError):
            return self.send_json(400, problem("badCSR", "hostile stand-in: unreadable CSR"))
        names = [i["value"] for i in order["identifiers"]]
        if scen == "extra-san":
            names.append(EVIL)
        if scen == "missing-san":
            names = names[:-1]
        order["chain"] = self.st.pki.issue(csr, names)
        order["finalized"] = True
        return self.send_order(oid, 200)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, help="an empty directory for ca.pem, events, keys")
    ap.add_argument("--lifetime", type=float, default=60.0,
                    help="exit after this many seconds whatever happens")
    args = ap.parse_args()

    pki = PKI(args.workdir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.tls_pem, pki.tls_key)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = State(pki, os.path.join(args.workdir, "events"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)

    # Never outlive the test, even if nobody stops us.
    t = threading.Timer(args.lifetime, lambda: os._exit(3))
    t.daemon = True
    t.start()

    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
