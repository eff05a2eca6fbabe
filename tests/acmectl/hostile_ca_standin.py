#!/usr/bin/env python3
"""A stand-in for a hostile ACME CA, for the one fault a real CA (Pebble)
cannot be made to produce: text with raw terminal controls (ESC
sequences, BEL, CR/LF, DEL) in a problem detail, an identifier, the terms
of service URL and an account's contacts. Pebble quotes such bytes (Go's
%q) before they reach the client, so acmectl's own escaping could not be
tested against it.

    hostile_ca_standin.py CERT KEY PORTFILE

Listens on 127.0.0.1 (a free port, written to PORTFILE) with HTTPS. The
first path segment of the directory URL picks the behaviour:

    /show/dir     account lookup finds an account whose contacts carry controls
    /problem/dir  every account request gets a problem document with controls
    /tos/dir      no account exists; the terms of service URL carries controls

It speaks only as much ACME as account lookup and registration need and
checks no signature: it exists to send hostile text, not to be a CA.
"""
import base64
import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ESC [2J clears a screen, ESC ]0;...BEL sets a window title, CR and LF
# forge lines, DEL rubs out.
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\r\nacmectl: FAKE line\x7f"


def b64url_json(s):
    s += "=" * (-len(s) % 4)
    return json.loads(base64.urlsafe_b64decode(s.encode()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("standin: " + (fmt % args) + "\n")

    def base(self):
        return "https://127.0.0.1:%d" % self.server.server_address[1]

    def send(self, status, body=None, ctype="application/json", headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Replay-Nonce", base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def mode(self):
        return self.path.strip("/").split("/")[0]

    def do_HEAD(self):
        self.send(200 if self.path.endswith("/nonce") else 404)

    def do_GET(self):
        m, b = self.mode(), self.base()
        if self.path.endswith("/dir"):
            d = {"newNonce": f"{b}/{m}/nonce", "newAccount": f"{b}/{m}/acct",
                 "newOrder": f"{b}/{m}/order", "revokeCert": f"{b}/{m}/revoke",
                 "keyChange": f"{b}/{m}/key-change"}
            if m == "tos":
                d["meta"] = {"termsOfService": f"{b}/terms{HOSTILE}"}
            self.send(200, d)
        elif self.path.endswith("/nonce"):
            self.send(204)
        else:
            self.send(404)

    def problem(self, status, body):
        self.send(status, body, ctype="application/problem+json")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        jws = json.loads(self.rfile.read(n) or b"{}")
        try:
            payload = b64url_json(jws.get("payload", "")) if jws.get("payload") else {}
        except ValueError:
            payload = {}
        m, b = self.mode(), self.base()
        if not self.path.endswith("/acct"):
            self.problem(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": "not here"})
        elif m == "show":
            self.send(200, {"status": "valid", "contact": ["mailto:admin@example.org" + HOSTILE]},
                      headers=[("Location", f"{b}/show/acct/1")])
        elif m == "problem":
            self.problem(403, {
                "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                "detail": "refused" + HOSTILE,
                "subproblems": [{
                    "type": "urn:ietf:params:acme:error:caa",
                    "detail": "sub" + HOSTILE,
                    "identifier": {"type": "dns", "value": "x.example" + HOSTILE},
                }],
            })
        elif payload.get("onlyReturnExisting"):
            self.problem(400, {"type": "urn:ietf:params:acme:error:accountDoesNotExist",
                               "detail": "no account" + HOSTILE})
        else:
            self.problem(403, {"type": "urn:ietf:params:acme:error:userActionRequired",
                               "detail": "terms" + HOSTILE})


def main():
    cert, key, portfile = sys.argv[1:4]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()


if __name__ == "__main__":
    main()
