#!/usr/bin/env python3
"""fault_acme_server.py: a DELIBERATELY FAULTY stand-in for an ACME server.

This is not a CA and not an ACME implementation. It exists only so that
tests/integration/it_bad_input.c can show libacme answers that Pebble never
produces. It listens on 127.0.0.1 (port chosen by the kernel), prints
"PORT <n>" on stdout once it serves, and exits by itself after --lifetime
seconds. Python standard library only.

Every fault lives under its own path prefix; the client is pointed at
https://127.0.0.1:<port>/<fault>/dir:

  malformed        directory body is not JSON
  no-newNonce      directory without newNonce (also no-newAccount, no-newOrder)
  html             a valid directory body served as text/html
  oversize         a valid directory padded to 64 KiB (client caps lower)
  huge             a valid directory padded to 2 MiB (over the 1 MiB default)
  oversize-chunked as oversize, chunked with no Content-Length (the cap must
                   hold while streaming, not only against a declared length)
  truncated        Content-Length promises more than is sent, then close
  redirect-http    302 to an http:// URL
  redirect-https   302 to https://.../mismatch/dir (a working directory)
  redirect-loop    302 to itself, forever
  mismatch         a tiny ACME flow (nonce, account, order with an already
                   valid authorization, finalize, certificate) whose
                   certificate is the fixed one given with --mismatch-chain,
                   which does NOT belong to the key in the client's CSR.

JWS bodies are not verified; only newOrder's payload is read, to echo the
identifiers back.
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
import sys
import threading

MISSING_FAULTS = ("newNonce", "newAccount", "newOrder")


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class State:
    def __init__(self, chain_pem):
        self.chain_pem = chain_pem
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.orders = {}  # id -> {"identifiers": [...], "finalized": bool}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as a real ACME server
    server_version = "fault-acme-stand-in"

    # ------------------------------------------------------------ plumbing

    def log_message(self, fmt, *args):
        sys.stderr.write("fault_acme_server: " + (fmt % args) + "\n")

    @property
    def base(self):
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def send(self, status, body=b"", ctype="application/json", headers=None, length=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Replay-Nonce", secrets.token_urlsafe(16))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=None):
        self.send(status, json.dumps(obj), headers=headers)

    def directory(self, prefix, drop=None, pad=0):
        d = {
            "newNonce": f"{self.base}/{prefix}/new-nonce",
            "newAccount": f"{self.base}/{prefix}/new-account",
            "newOrder": f"{self.base}/{prefix}/new-order",
            "revokeCert": f"{self.base}/{prefix}/revoke-cert",
            "keyChange": f"{self.base}/{prefix}/key-change",
            "meta": {"website": "https://fault.invalid/not-a-ca"},
        }
        if drop:
            del d[drop]
        if pad:
            d["meta"]["padding"] = "x" * pad
        return d

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # ------------------------------------------------------------ routing

    def do_HEAD(self):
        self.route()

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def route(self):
        body = self.read_body() if self.command == "POST" else b""
        parts = self.path.strip("/").split("/")
        fault, rest = parts[0], parts[1:]
        if fault == "mismatch":
            return self.mismatch(rest, body)
        if rest != ["dir"]:
            return self.send_json(404, {"type": "urn:ietf:params:acme:error:malformed",
                                        "detail": "fault stand-in: no such resource"})
        if fault == "malformed":
            return self.send(200, '{"newNonce": "https://127.0.0.1/x", "newAccount": ')
        if fault.startswith("no-") and fault[3:] in MISSING_FAULTS:
            return self.send_json(200, self.directory(fault, drop=fault[3:]))
        if fault == "html":
            return self.send(200, json.dumps(self.directory("mismatch")), ctype="text/html")
        if fault == "oversize":
            return self.send_json(200, self.directory("mismatch", pad=64 * 1024))
        if fault == "oversize-chunked":
            return self.chunked(json.dumps(self.directory("mismatch", pad=64 * 1024)).encode())
        if fault == "huge":
            return self.send_json(200, self.directory("mismatch", pad=2 * 1024 * 1024))
        if fault == "truncated":
            return self.truncated()
        if fault == "redirect-http":
            return self.send(302, headers={
                "Location": f"http://127.0.0.1:{self.server.server_address[1]}/mismatch/dir"})
        if fault == "redirect-https":
            return self.send(302, headers={"Location": f"{self.base}/mismatch/dir"})
        if fault == "redirect-loop":
            return self.send(302, headers={"Location": f"{self.base}/redirect-loop/dir"})
        return self.send_json(404, {"type": "urn:ietf:params:acme:error:malformed",
                                    "detail": f"fault stand-in: unknown fault {fault!r}"})

    def chunked(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Replay-Nonce", secrets.token_urlsafe(16))
        self.end_headers()
        try:
            for i in range(0, len(body), 4096):
                piece = body[i:i + 4096]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client stopped reading at its cap: expected
        self.close_connection = True

    def truncated(self):
        """Promise 4096 bytes, send the start of a directory, end the TLS
        session cleanly (close_notify) and close: a short body, not a TLS
        failure."""
        start = json.dumps(self.directory("mismatch")).encode()[:100]
        self.send(200, start, length=4096)
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.settimeout(2)
            self.connection.unwrap()
        except (OSError, ValueError, ssl.SSLError):
            pass

    # ------------------------------------------------------------ tiny flow

    def mismatch(self, rest, body):
        st = self.server.state
        u = f"{self.base}/mismatch"
        what = rest[0] if rest else ""
        ident = rest[1] if len(rest) > 1 else ""
        if what == "dir":
            return self.send_json(200, self.directory("mismatch"))
        if what == "new-nonce":
            return self.send(200 if self.command == "HEAD" else 204, ctype="text/plain")
        if self.command != "POST":
            return self.send_json(405, {"type": "urn:ietf:params:acme:error:malformed",
                                        "detail": "fault stand-in: POST only"})
        if what == "new-account":
            return self.send_json(201, {"status": "valid", "contact": [],
                                        "orders": f"{u}/orders/1"},
                                  headers={"Location": f"{u}/acct/1"})
        if what == "acct":
            return self.send_json(200, {"status": "valid", "contact": [],
                                        "orders": f"{u}/orders/1"})
        if what == "new-order":
            try:
                payload = json.loads(b64url_decode(json.loads(body)["payload"]))
                identifiers = payload["identifiers"]
            except (ValueError, KeyError, TypeError):
                return self.send_json(400, {"type": "urn:ietf:params:acme:error:malformed",
                                            "detail": "fault stand-in: unreadable newOrder"})
            with st.lock:
                oid = next(st.ids)
                st.orders[oid] = {"identifiers": identifiers, "finalized": False}
            return self.send_json(201, self.order(oid), headers={"Location": f"{u}/order/{oid}"})
        if what in ("order", "finalize", "authz", "chall", "cert"):
            try:
                oid = int(ident.split("-")[0])
                order = st.orders[oid]
            except (ValueError, KeyError):
                return self.send_json(404, {"type": "urn:ietf:params:acme:error:malformed",
                                            "detail": "fault stand-in: no such order"})
            if what == "order":
                return self.send_json(200, self.order(oid))
            if what == "finalize":
                order["finalized"] = True
                return self.send_json(200, self.order(oid),
                                      headers={"Location": f"{u}/order/{oid}"})
            if what in ("authz", "chall"):
                i = int(ident.split("-")[1])
                ch = {"type": "http-01", "status": "valid", "url": f"{u}/chall/{oid}-{i}",
                      "token": "fault-stand-in-token_0123456789"}
                if what == "chall":
                    return self.send_json(200, ch)
                return self.send_json(200, {
                    "status": "valid", "identifier": order["identifiers"][i],
                    "expires": "2099-01-01T00:00:00Z", "challenges": [ch]})
            # The certificate: fixed, and not for the CSR's key.
            return self.send(200, st.chain_pem, ctype="application/pem-certificate-chain")
        if what in ("revoke-cert", "key-change"):
            return self.send(200, ctype="text/plain")
        return self.send_json(404, {"type": "urn:ietf:params:acme:error:malformed",
                                    "detail": "fault stand-in: no such resource"})

    def order(self, oid):
        o = self.server.state.orders[oid]
        u = f"{self.base}/mismatch"
        d = {
            "status": "valid" if o["finalized"] else "ready",
            "expires": "2099-01-01T00:00:00Z",
            "identifiers": o["identifiers"],
            "authorizations": [f"{u}/authz/{oid}-{i}" for i in range(len(o["identifiers"]))],
            "finalize": f"{u}/finalize/{oid}",
        }
        if o["finalized"]:
            d["certificate"] = f"{u}/cert/{oid}"
        return d


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cert", required=True, help="server certificate PEM (for 127.0.0.1)")
    ap.add_argument("--key", required=True, help="its private key PEM")
    ap.add_argument("--mismatch-chain", required=True,
                    help="PEM chain served as the 'issued' certificate in the mismatch flow")
    ap.add_argument("--lifetime", type=float, default=240.0,
                    help="exit after this many seconds whatever happens")
    args = ap.parse_args()

    with open(args.mismatch_chain) as f:
        chain = f.read()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)

    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = State(chain)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)

    # Never outlive the test, even if nobody stops us.
    t = threading.Timer(args.lifetime, lambda: os._exit(3))
    t.daemon = True
    t.start()

    print(f"PORT {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
