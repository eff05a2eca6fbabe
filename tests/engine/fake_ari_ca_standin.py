#!/usr/bin/env python3
"""fake_ari_ca_standin.py: a STAND-IN for a CA's ARI (RFC 9773) endpoint.

Not a CA. Debian's Pebble (2.4) has no renewalInfo endpoint and no
profiles, so the engine tests put this HTTPS proxy in front of the
harness's Pebble. It:

  * forwards every request to Pebble unchanged, Host header included, so
    Pebble builds every URL it hands out (and checks every JWS "url")
    against the stand-in's address: the client only ever talks to us;
  * adds "renewalInfo" to Pebble's directory, and "meta.profiles" when the
    control file has "profiles" and Pebble lists none (a newer Pebble
    lists its own; those stay, as they are the only ones it accepts);
  * answers GET <renewalInfo>/<certID> itself with a suggestedWindow and a
    Retry-After header ("retry_after", seconds). The window: the control
    file's "windows"[certID] if any; else, with "near_window", for the
    FIRST certID this stand-in ever saw and from its on_get-th GET on, a
    window from the moment of that GET to `length` s later (fixed once
    served) - "renew now-ish", whenever the client happens to ask, so the
    test does not depend on how long the client waits between GETs (RFC
    9773 §4.3 lets it raise a short Retry-After to a minute); else
    "default_window"; else 60-61 days ahead (not due);
  * rejects the first "reject_replaces" newOrder requests that carry
    "replaces" with 409 urn:ietf:params:acme:error:alreadyReplaced (RFC 9773
    §5: what a CA answers when the certificate was already replaced),
    with a fresh Replay-Nonce from Pebble so the client can go on;
  * with "paused": [names], answers a newOrder naming one of them the way
    Let's Encrypt answers for an identifier it paused for this account
    after too many failed validations (Pebble 2.4 has no such pause):
    429 urn:ietf:params:acme:error:rateLimited, detail "Your account is
    temporarily prevented from requesting certificates for <name> and
    possibly others. Please visit: <unpause URL>", no Retry-After (only
    the admin's visit lifts it); the test lifts it by rewriting the file;
  * with "refuse": {name: {"type", "status", "detail"?, "retry_after"?}},
    answers a newOrder naming name with that problem (and Retry-After):
    a CA's policy refusal (rejectedIdentifier) or rate limit, which
    Pebble 2.4 cannot be made to send for chosen names;
  * appends one JSON line per request to --events:
      {"t": <unix time>, "method", "path", "kind", "status",
       "cert_id"?, "replaces"?, "profile"?, "identifiers"?, "problem"?}
    kind: directory | renewalInfo | newOrder | other; the first line,
    {"kind": "upstream", "profiles": [names] or null}, says which profiles
    Pebble itself lists.

The control file (JSON) is re-read on every request, so the test changes
behaviour by replacing it (atomically, by rename):
  {"retry_after": 3,
   "windows": {"<certID>": {"start": "<RFC 3339>", "end": "<RFC 3339>"}},
   "near_window": {"on_get": 2, "length": 2},
   "default_window": {...},
   "reject_replaces": 1,
   "paused": ["name.example"],
   "refuse": {"name.example": {"type": "rejectedIdentifier", "status": 400}},
   "profiles": {"shortlived": "..."}}

JWS signatures are not checked (Pebble does that); only newOrder payloads
are decoded, read-only. Prints "PORT <n>" on stdout once listening on
127.0.0.1, exits by itself after --lifetime seconds. Standard library only.
"""

import argparse
import base64
import datetime
import http.client
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
              "te", "trailer", "upgrade", "content-length"}


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class Upstream:
    """Pebble, as the harness started it."""

    def __init__(self, directory_url, ca_file):
        u = urllib.parse.urlsplit(directory_url)
        self.host, self.port = u.hostname, u.port or 443
        self.dir_path = u.path or "/"
        self.ctx = ssl.create_default_context(cafile=ca_file)
        status, _, body = self.request("GET", self.dir_path, {}, None)
        if status != 200:
            raise SystemExit(f"upstream directory answered {status}")
        d = json.loads(body)
        # A current Pebble lists its own profiles; they are the only ones it
        # accepts, so the stand-in must not advertise others in front of it.
        self.profiles = (d.get("meta") or {}).get("profiles") or None
        self.new_order_path = urllib.parse.urlsplit(d["newOrder"]).path
        self.new_nonce_path = urllib.parse.urlsplit(d["newNonce"]).path

    def request(self, method, path, headers, body):
        # One connection per request: simple, and Pebble is on loopback.
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
        # RFC 8555 section 6.1: every request carries a User-Agent, and newer
        # Pebble refuses one without. The client's own is forwarded as is;
        # the stand-in's own requests (directory, nonce) name the stand-in.
        if not any(k.lower() == "user-agent" for k in headers):
            headers = dict(headers, **{"User-Agent": "libacme-test-ari-standin"})
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            conn.close()

    def fresh_nonce(self):
        _, headers, _ = self.request("HEAD", self.new_nonce_path, {}, None)
        for k, v in headers:
            if k.lower() == "replay-nonce":
                return v
        return None


class State:
    def __init__(self, args, upstream):
        self.args = args
        self.upstream = upstream
        self.lock = threading.Lock()
        self.rejected = 0
        self.first_cert = None     # the first certID asked about
        self.gets = {}             # certID -> renewalInfo GETs so far
        self.near = None           # the near window, once served

    def control(self):
        try:
            with open(self.args.control) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def event(self, ev):
        ev["t"] = time.time()
        with self.lock:
            with open(self.args.events, "a") as f:
                f.write(json.dumps(ev, sort_keys=True) + "\n")
                f.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive, like a real ACME server
    server_version = "fake-ari-ca-standin"

    def log_message(self, fmt, *args):
        sys.stderr.write("fake_ari_ca_standin: " + (fmt % args) + "\n")

    def setup(self):
        self.request.settimeout(60)
        self.request.do_handshake()
        super().setup()

    @property
    def st(self):
        return self.server.state

    def reply(self, status, body, headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else None

    def forward(self, body):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        status, rheaders, rbody = self.st.upstream.request(self.command, self.path, headers, body)
        return status, [(k, v) for k, v in rheaders if k.lower() not in HOP_BY_HOP], rbody

    # ---------------------------------------------------------------- verbs

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        try:
            self.dispatch()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def dispatch(self):
        path = urllib.parse.urlsplit(self.path).path
        body = self.read_body()
        base = f"https://{self.headers.get('Host') or '127.0.0.1'}"
        ctl = self.st.control()

        if self.command == "GET" and path.startswith("/renewal-info/"):
            return self.renewal_info(path[len("/renewal-info/"):], ctl)

        if self.command == "POST" and path == self.st.upstream.new_order_path:
            if self.new_order(body, ctl):
                return

        status, headers, rbody = self.forward(body)

        if self.command == "GET" and path == self.st.upstream.dir_path and status == 200:
            d = json.loads(rbody)
            d["renewalInfo"] = base + "/renewal-info"
            if "profiles" in ctl and not self.st.upstream.profiles:
                d.setdefault("meta", {})["profiles"] = ctl["profiles"]
            rbody = json.dumps(d, indent=2).encode()
            self.st.event({"method": "GET", "path": path, "kind": "directory", "status": status})
        elif not (self.command == "POST" and path == self.st.upstream.new_order_path):
            self.st.event({"method": self.command, "path": path, "kind": "other",
                           "status": status})
        else:
            ev = dict(self.last_order, status=status)
            if status >= 400:
                # Which problem: a badNonce answer is a retry to come, not
                # an order (Pebble rejects 5 % of good nonces by default).
                try:
                    ev["problem"] = json.loads(rbody).get("type")
                except (ValueError, AttributeError):
                    pass
            self.st.event(ev)
        self.reply(status, rbody, headers)

    def renewal_info(self, cert_id, ctl):
        retry_after = ctl.get("retry_after", 21600)
        ev = {"method": "GET", "path": self.path, "kind": "renewalInfo", "cert_id": cert_id,
              "retry_after": retry_after}
        parts = cert_id.split(".")
        if len(parts) != 2 or not all(parts):
            ev["status"] = 400
            self.st.event(ev)
            return self.reply(400, {"type": "urn:ietf:params:acme:error:malformed",
                                    "detail": f"not a certID: {cert_id!r}", "status": 400},
                              [("Content-Type", "application/problem+json")])
        now = time.time()
        near = ctl.get("near_window")
        with self.st.lock:
            if self.st.first_cert is None:
                self.st.first_cert = cert_id
            n = self.st.gets[cert_id] = self.st.gets.get(cert_id, 0) + 1
            win = (ctl.get("windows") or {}).get(cert_id)
            if not win and near and cert_id == self.st.first_cert and n >= near.get("on_get", 1):
                if self.st.near is None:
                    # Whole seconds (RFC 3339 without fractions): start at
                    # or before this GET, end `length` s after it at least.
                    start, end = int(now), int(now) + 1 + int(near.get("length", 2))
                    self.st.near = {"start": rfc3339(start), "end": rfc3339(end)}
                    ev.update(near=True, near_start=start, near_end=end)
                win = self.st.near
        if not win:
            win = ctl.get("default_window") or {"start": rfc3339(now + 60 * 86400),
                                                 "end": rfc3339(now + 61 * 86400)}
        ev.update(status=200, window=win, get_number=n)
        self.st.event(ev)
        self.reply(200, {"suggestedWindow": win},
                   [("Content-Type", "application/json"), ("Retry-After", str(retry_after))])

    def new_order(self, body, ctl):
        """Record a newOrder; answer it ourselves (True) when it must be
        rejected, else leave it to the forwarder (False)."""
        payload = {}
        try:
            jws = json.loads(body)
            payload = json.loads(b64url_decode(jws["payload"]))
        except (ValueError, KeyError, TypeError):
            pass
        ev = {"method": "POST", "path": self.path, "kind": "newOrder",
              "identifiers": [i.get("value") for i in payload.get("identifiers", [])
                              if isinstance(i, dict)]}
        for k in ("replaces", "profile"):
            if k in payload:
                ev[k] = payload[k]
        self.last_order = ev
        refuse = ctl.get("refuse") or {}
        refused = [n for n in ev["identifiers"] if n in refuse]
        if refused:
            # A CA's policy or limits saying no to this order (RFC 8555
            # §6.7 rejectedIdentifier, rateLimited with Retry-After §6.6).
            r = refuse[refused[0]]
            nonce = self.st.upstream.fresh_nonce()
            ptype = "urn:ietf:params:acme:error:" + r.get("type", "rejectedIdentifier")
            status = int(r.get("status", 400))
            ev["status"] = status
            ev["problem"] = ptype
            self.st.event(ev)
            headers = [("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")]
            if nonce:
                headers.append(("Replay-Nonce", nonce))
            if "retry_after" in r:
                headers.append(("Retry-After", str(int(r["retry_after"]))))
            self.reply(status, {"type": ptype, "status": status,
                                "detail": r.get("detail", f"policy forbids issuing for {refused[0]}")},
                       headers)
            return True
        paused = [n for n in ev["identifiers"] if n in (ctl.get("paused") or [])]
        if paused:
            nonce = self.st.upstream.fresh_nonce()
            ev["status"] = 429
            ev["problem"] = "urn:ietf:params:acme:error:rateLimited"
            self.st.event(ev)
            headers = [("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")]
            if nonce:
                headers.append(("Replay-Nonce", nonce))
            host = self.headers.get("Host") or "127.0.0.1"
            self.reply(429, {"type": "urn:ietf:params:acme:error:rateLimited",
                             "detail": f"Your account is temporarily prevented from requesting "
                                       f"certificates for {paused[0]} and possibly others. Please visit: "
                                       f"https://{host}/sfe/v1/unpause?jwt=standin.{paused[0]}",
                             "status": 429}, headers)
            return True
        with self.st.lock:
            reject = "replaces" in payload and self.st.rejected < int(ctl.get("reject_replaces", 0))
            if reject:
                self.st.rejected += 1
        if not reject:
            return False
        nonce = self.st.upstream.fresh_nonce()
        ev["status"] = 409
        self.st.event(ev)
        headers = [("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")]
        if nonce:
            headers.append(("Replay-Nonce", nonce))
        self.reply(409, {"type": "urn:ietf:params:acme:error:alreadyReplaced",
                         "detail": f"certificate {payload['replaces']} was already replaced "
                                   "(stand-in: rejecting the first order that says so)",
                         "status": 409}, headers)
        return True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        # The TLS handshake runs in the connection's thread (Handler.setup),
        # not in the accept loop: one slow client must not stall the others.
        sock, addr = self.socket.accept()
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="Pebble's directory URL")
    ap.add_argument("--upstream-ca", required=True, help="CA file for Pebble's listener")
    ap.add_argument("--cert", required=True, help="our certificate PEM (for 127.0.0.1)")
    ap.add_argument("--key", required=True, help="its private key PEM")
    ap.add_argument("--control", required=True, help="control JSON, re-read per request")
    ap.add_argument("--events", required=True, help="JSON lines of what we saw")
    ap.add_argument("--lifetime", type=float, default=600.0,
                    help="exit after this many seconds (never outlive a test)")
    args = ap.parse_args()

    upstream = Upstream(args.upstream, args.upstream_ca)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = State(args, upstream)
    srv.state.event({"kind": "upstream",
                     "profiles": sorted(upstream.profiles) if upstream.profiles else None})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.tls = ctx
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
