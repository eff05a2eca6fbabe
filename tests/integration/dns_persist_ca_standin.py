#!/usr/bin/env python3
"""dns_persist_ca_standin.py: a STAND-IN ACME CA for dns-persist-01 and dns-account-01.

    dns_persist_ca_standin.py --dnsserver HOST:PORT [--issuer-domain NAME]...
                              [--types dns-persist-01,dns-account-01]
                              [--hashed-accounturi] -- CMD [ARGS...]

Debian's Pebble (2.4) offers neither challenge type, so the tests of those
types run against this small CA instead. It is a test server, not a CA:
everything lives in memory, on 127.0.0.1, for the life of CMD. It follows
draft-ietf-acme-dns-persist and draft-ietf-acme-dns-account-label as
current Pebble and Boulder validate them:

  * RFC 8555 flow: directory (meta.issuerDomainNames, draft-ietf-acme-dns-
    persist -02 §3.2), newNonce, newAccount (onlyReturnExisting too),
    newOrder, authorizations, challenges, finalize, certificate. JWS are
    verified (ES256/ES384/RS256/EdDSA, nonce once, "url" = the request URL,
    kid = a known account); CSRs are verified and must name exactly the
    order's identifiers.
  * Every authorization offers the --types (default both), in that order.
    dns-persist-01 has "issuer-domain-names" (the --issuer-domain values,
    default "standin.acme.test") and no token, as Let's Encrypt sends it.
  * Validation really asks DNS: a TXT query over UDP (TCP when truncated) to
    --dnsserver, no recursion needed (knotd on loopback is authoritative):
      dns-persist-01  _validation-persist.<name>: some record must parse
                      (issuer-domain-name; tag=value...; case-insensitive
                      tags, unknown tags ignored, a repeated known tag or
                      a part without "=" makes that record malformed), name
                      one of the issuer domain names (case and trailing dot
                      ignored), have accounturi = the account URL exactly,
                      policy=wildcard for a wildcard's authorization, and a
                      persistUntil (base 10) not in the past; the
                      authorization then expires no later than persistUntil.
                      With --hashed-accounturi (draft -02) the directory
                      advertises meta.accountHashPrefix and accounturi
                      must instead be <prefix>sha-256/<base64url of
                      SHA-256(len(name) || name || thumbprint || account
                      URL)>, or the same with name "*"; the plain account
                      URL is then refused, as draft -02 says.
      dns-account-01  _<label>._acme-challenge.<name>, label = "_" +
                      base32(SHA-256(account URL)[:10]) lowercase, must hold
                      base64url(SHA-256(token "." thumbprint)).
    A failure makes the challenge, authorization and order invalid with an
    urn:ietf:params:acme:error:unauthorized (or :dns when the query fails)
    problem whose detail says what was found, as Pebble does.
  * Certificates are really issued: a throwaway root signs an intermediate
    that signs the leaf (the CSR's key, the order's names); the chain is
    leaf + intermediate.

CMD sees the variables tests/harness/with-pebble gives, as far as they apply:
  ACME_TEST_DIRECTORY   https://127.0.0.1:P/dir
  ACME_TEST_CA_FILE     PEM of the CA of the HTTPS listener
  ACME_TEST_MGMT        https://127.0.0.1:P/mgmt (GET /roots/0: the issuing root)
  ACME_TEST_TMPDIR      fresh scratch directory, removed afterwards
  ACME_TEST_ISSUER_DOMAIN  the first issuer domain name
  ACME_TEST_STANDIN_LOG    one JSON line per validation: {"type", "name",
                           "record", "ok", "detail"}
  ACME_TEST_ACCOUNT_HASH_PREFIX  with --hashed-accounturi: the prefix; else empty
The exit status is CMD's (2 when the stand-in could not start). Needs
python3-cryptography.
"""

import argparse
import base64
import datetime
import hashlib
import http.server
import itertools
import json
import os
import secrets
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

PROG = "dns_persist_ca_standin"
ERR = "urn:ietf:params:acme:error:"


def say(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- DNS: one TXT question, answered by the authoritative server --------

def dns_txt(server, name, timeout=3.0):
    """The TXT records at name (each one's strings joined), or raise OSError/ValueError."""
    host, port = server.rsplit(":", 1)
    qid = secrets.randbelow(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 16, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (host, int(port)))
        while True:
            resp, _ = s.recvfrom(65535)
            if len(resp) >= 2 and struct.unpack(">H", resp[:2])[0] == qid:
                break
    if struct.unpack(">H", resp[2:4])[0] & 0x0200:  # truncated: ask again over TCP
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(struct.pack(">H", len(q)) + q)
            want = struct.unpack(">H", s.recv(2))[0]
            resp = b""
            while len(resp) < want:
                chunk = s.recv(want - len(resp))
                if not chunk:
                    raise ValueError("short TCP answer")
                resp += chunk
    flags = struct.unpack(">H", resp[2:4])[0]
    rcode = flags & 15
    if rcode == 3:
        return []  # NXDOMAIN: no record
    if rcode != 0:
        raise ValueError(f"DNS rcode {rcode}")
    qd, an = struct.unpack(">HH", resp[4:8])

    def skip_name(i):
        while True:
            ln = resp[i]
            if ln & 0xC0 == 0xC0:
                return i + 2
            if ln == 0:
                return i + 1
            i += 1 + ln

    i = 12
    for _ in range(qd):
        i = skip_name(i) + 4
    out = []
    for _ in range(an):
        i = skip_name(i)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", resp[i:i + 10])
        i += 10
        rdata = resp[i:i + rdlen]
        i += rdlen
        if rtype != 16:
            continue
        parts, j = [], 0
        while j < len(rdata):
            ln = rdata[j]
            parts.append(rdata[j + 1:j + 1 + ln].decode("utf-8", "replace"))
            j += 1 + ln
        out.append("".join(parts))
    return out


# ---- dns-persist-01 records (as current Pebble parses them) -------------

class Malformed(Exception):
    pass


def parse_persist(record):
    parts = record.split(";")
    issuer = parts[0].strip().lower().rstrip(".")
    if not issuer:
        raise Malformed("missing issuer-domain-name")
    params = {}
    for p in parts[1:]:
        p = p.strip()
        if not p:
            continue
        if "=" not in p:
            raise Malformed(f"parameter without '=': {p!r}")
        tag, val = p.split("=", 1)
        tag, val = tag.strip().lower(), val.strip()
        if tag in params:
            raise Malformed(f"duplicate parameter {tag!r}")
        params[tag] = val
    if not params.get("accounturi"):
        raise Malformed("missing mandatory accounturi parameter")
    until = params.get("persistuntil")
    if until is not None:
        if not until.isdigit():
            raise Malformed(f"malformed persistUntil timestamp {until!r}")
        until = int(until)
    return issuer, params["accounturi"], params.get("policy", "").lower(), until


def hashed_uri(prefix, domain, thumb, url):
    d = domain.encode()
    digest = hashlib.sha256(bytes([len(d)]) + d + thumb.encode() + url.encode()).digest()
    return f"{prefix}sha-256/{b64u(digest)}"


def account_label(url):
    return "_" + base64.b32encode(hashlib.sha256(url.encode()).digest()[:10]).decode().lower()


# ---- keys and certificates ----------------------------------------------

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn, signer=None, signer_key=None, days=3650):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name(cn))
         .issuer_name(signer.subject if signer else name(cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                      content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if signer:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
                            critical=False)
    return b.sign(signer_key or key, hashes.SHA256()), key


def make_leaf(public_key, names, ca, ca_key, days=7, server_auth_ip=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = []
    for n in names:
        if n.replace(".", "").isdigit():
            import ipaddress
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        else:
            sans.append(x509.DNSName(n))
    b = (x509.CertificateBuilder().subject_name(x509.Name([]) if len(names[0]) > 64 else name(names[0]))
         .issuer_name(ca.subject).public_key(public_key).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.SubjectAlternativeName(sans), critical=False)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    return b.sign(ca_key, hashes.SHA256())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# ---- JWS -----------------------------------------------------------------

def jwk_key(jwk):
    kty = jwk.get("kty")
    if kty == "EC":
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[jwk["crv"]]
        x, y = (int.from_bytes(b64u_dec(jwk[k]), "big") for k in ("x", "y"))
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    if kty == "RSA":
        n, e = (int.from_bytes(b64u_dec(jwk[k]), "big") for k in ("n", "e"))
        return rsa.RSAPublicNumbers(e, n).public_key()
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(b64u_dec(jwk["x"]))
    raise ValueError(f"unsupported JWK kty {kty}")


def thumbprint(jwk):
    req = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    txt = json.dumps({k: jwk[k] for k in req}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(txt.encode()).digest())


def verify(key, alg, signing_input, sig):
    if alg in ("ES256", "ES384"):
        half = len(sig) // 2
        der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
        key.verify(der, signing_input, ec.ECDSA(hashes.SHA256() if alg == "ES256" else hashes.SHA384()))
    elif alg == "RS256":
        key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "EdDSA":
        key.verify(sig, signing_input)
    else:
        raise InvalidSignature(alg)


class Problem(Exception):
    def __init__(self, status, kind, detail):
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


# ---- the CA ----------------------------------------------------------------

class CA:
    def __init__(self, args, log_path):
        self.args = args
        self.lock = threading.RLock()
        self.ids = itertools.count(1)
        self.nonces = set()
        self.accounts = {}      # id -> {"jwk", "thumb", "status", "contact"}
        self.by_thumb = {}
        self.orders, self.authzs, self.chals, self.certs = {}, {}, {}, {}
        self.root, self.root_key = make_ca("dns-persist stand-in root")
        self.inter, self.inter_key = make_ca("dns-persist stand-in intermediate", self.root, self.root_key)
        self.log_path = log_path
        self.base = None

    def nonce(self):
        n = b64u(secrets.token_bytes(16))
        with self.lock:
            self.nonces.add(n)
        return n

    def log(self, ev):
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(ev) + "\n")

    def url(self, path):
        return self.base + path

    def acct_url(self, aid):
        return self.url(f"/acct/{aid}")

    # -- validation --

    def validate(self, chal):
        authz = self.authzs[chal["authz"]]
        acct_url = self.acct_url(authz["account"])
        ident = authz["identifier"]["value"]
        wildcard = authz.get("wildcard", False)
        ctype = chal["type"]
        until_min = None
        try:
            if ctype == "dns-persist-01":
                qname = f"_validation-persist.{ident}"
                txts = dns_txt(self.args.dnsserver, qname)
                detail, ok = None, False
                if not txts:
                    detail = f"No TXT record found for DNS-PERSIST-01 challenge at {qname}"
                for t in txts:
                    try:
                        issuer, acct, policy, until = parse_persist(t)
                    except Malformed as e:
                        detail = detail or f"malformed record {t!r}: {e}"
                        continue
                    names = chal.get("issuer-domain-names") or chal.get("issuerDomainNames")
                    if issuer not in names:
                        detail = f"issuer-domain-name {issuer!r} is not one of {names}"
                    elif acct not in self.accepted_accounturis(authz["account"], ident):
                        detail = (f"accounturi mismatch: expected {self.accepted_accounturis(authz['account'], ident)[0]!r}, "
                                  f"got {acct!r}")
                    elif wildcard and policy != "wildcard":
                        detail = f"policy mismatch: expected \"wildcard\", got {policy!r}"
                    elif until is not None and time.time() > until:
                        detail = f"validation time is after persistUntil {rfc3339(until)}"
                    else:
                        ok = True
                        until_min = until
                        break
                if not ok and txts and detail:
                    detail = f"No valid dns-persist-01 record found for this challenge ({detail})"
            else:
                label = account_label(acct_url)
                qname = f"{label}._acme-challenge.{ident}"
                txts = dns_txt(self.args.dnsserver, qname)
                acct = self.accounts[authz["account"]]
                want = b64u(hashlib.sha256(f"{chal['token']}.{acct['thumb']}".encode()).digest())
                ok = want in txts
                detail = None if ok else (f"No TXT record found for DNS-ACCOUNT-01 challenge at {qname}" if not txts
                                          else f"Incorrect TXT record {txts[0]!r} found at {qname}")
            kind = "unauthorized"
        except (OSError, ValueError) as e:
            qname, txts, ok, kind = qname, [], False, "dns"
            detail = f"Retrieving TXT records for {ctype} challenge: {e}"
        self.log({"type": ctype, "name": qname, "records": txts, "ok": ok, "detail": detail})
        with self.lock:
            chal["validated"] = rfc3339(time.time())
            if ok:
                chal["status"] = "valid"
                authz["status"] = "valid"
                exp = time.time() + 3600
                if until_min is not None:
                    exp = min(exp, until_min)  # draft §4.1 item 5: never beyond persistUntil
                authz["expires"] = rfc3339(exp)
            else:
                chal["status"] = "invalid"
                chal["error"] = {"type": ERR + kind, "detail": detail, "status": 403}
                authz["status"] = "invalid"
                order = self.orders[authz["order"]]
                order["status"] = "invalid"
                order["error"] = chal["error"]
            self.update_order(self.orders[authz["order"]])

    def hash_prefix(self):
        return self.url("/account-hash/") if self.args.hashed_accounturi else None

    def accepted_accounturis(self, aid, ident):
        """What a record's accounturi may say for this account and name."""
        url = self.acct_url(aid)
        if not self.args.hashed_accounturi:
            return [url]
        thumb = self.accounts[aid]["thumb"]
        return [hashed_uri(self.hash_prefix(), ident, thumb, url), hashed_uri(self.hash_prefix(), "*", thumb, url)]

    def update_order(self, order):
        if order["status"] == "pending" and all(self.authzs[a]["status"] == "valid" for a in order["authzs"]):
            order["status"] = "ready"

    # -- JSON views --

    def chal_json(self, c):
        out = {k: c[k] for k in ("type", "url", "status") if k in c}
        for k in ("token", "issuer-domain-names", "issuerDomainNames", "validated", "error"):
            if k in c:
                out[k] = c[k]
        return out

    def authz_json(self, a):
        out = {"identifier": a["identifier"], "status": a["status"], "expires": a["expires"],
               "challenges": [self.chal_json(self.chals[c]) for c in a["chals"]]}
        if a.get("wildcard"):
            out["wildcard"] = True
        return out

    def order_json(self, o):
        out = {"status": o["status"], "expires": o["expires"], "identifiers": o["identifiers"],
               "authorizations": [self.url(f"/authz/{a}") for a in o["authzs"]],
               "finalize": self.url(f"/finalize/{o['id']}")}
        if "cert" in o:
            out["certificate"] = self.url(f"/cert/{o['cert']}")
        if "error" in o:
            out["error"] = o["error"]
        return out


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    @property
    def ca(self):
        return self.server.ca

    def reply(self, status, body, ctype="application/json", headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Replay-Nonce", self.ca.nonce())
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def problem(self, p):
        self.reply(p.status, {"type": ERR + p.kind, "detail": p.detail, "status": p.status},
                   "application/problem+json")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        ca = self.ca
        if self.path == "/dir":
            meta = {"issuerDomainNames": ca.args.issuer_domain, "caaIdentities": ca.args.issuer_domain}
            if ca.hash_prefix():
                meta["accountHashPrefix"] = ca.hash_prefix()
            self.reply(200, {"newNonce": ca.url("/nonce"), "newAccount": ca.url("/new-acct"),
                             "newOrder": ca.url("/new-order"), "revokeCert": ca.url("/revoke"),
                             "keyChange": ca.url("/key-change"), "meta": meta})
        elif self.path == "/nonce":
            self.reply(200 if self.command == "HEAD" else 204, b"")
        elif self.path == "/mgmt/roots/0":
            self.reply(200, pem(ca.root).encode(), "application/pem-certificate-chain")
        else:
            self.reply(405, {"type": ERR + "malformed", "detail": "use POST", "status": 405},
                       "application/problem+json")

    def read_jws(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/jose+json":
            raise Problem(415, "malformed", "Content-Type must be application/jose+json")
        try:
            jws = json.loads(raw)
            prot = json.loads(b64u_dec(jws["protected"]))
            sig = b64u_dec(jws["signature"])
        except (ValueError, KeyError, TypeError):
            raise Problem(400, "malformed", "the body is not a flattened JWS")
        ca = self.ca
        with ca.lock:
            if prot.get("nonce") not in ca.nonces:
                raise Problem(400, "badNonce", "JWS has an invalid anti-replay nonce")
            ca.nonces.discard(prot["nonce"])
        if prot.get("url") != ca.url(self.path):
            raise Problem(401, "unauthorized", f"JWS url {prot.get('url')!r} is not {ca.url(self.path)!r}")
        if ("jwk" in prot) == ("kid" in prot):
            raise Problem(400, "malformed", "JWS needs exactly one of jwk and kid")
        aid = None
        if "jwk" in prot:
            jwk = prot["jwk"]
        else:
            kid = prot["kid"]
            aid = next((a for a in ca.accounts if ca.acct_url(a) == kid), None)
            if aid is None:
                raise Problem(400, "accountDoesNotExist", f"no account {kid}")
            jwk = ca.accounts[aid]["jwk"]
        try:
            verify(jwk_key(jwk), prot.get("alg"), (jws["protected"] + "." + jws["payload"]).encode(), sig)
        except (InvalidSignature, ValueError, KeyError) as e:
            raise Problem(400, "badSignatureAlgorithm" if isinstance(e, KeyError) else "malformed",
                          f"JWS signature does not verify ({prot.get('alg')})")
        payload = None if jws["payload"] == "" else json.loads(b64u_dec(jws["payload"]))
        return prot, jwk, aid, payload

    def do_POST(self):
        try:
            self.route()
        except Problem as p:
            self.problem(p)

    def route(self):
        ca = self.ca
        prot, jwk, aid, payload = self.read_jws()
        path = self.path
        if path == "/new-acct":
            thumb = thumbprint(jwk)
            with ca.lock:
                existing = ca.by_thumb.get(thumb)
                if existing is None:
                    if payload and payload.get("onlyReturnExisting"):
                        raise Problem(400, "accountDoesNotExist", "no account for this key")
                    existing = next(ca.ids)
                    ca.accounts[existing] = {"jwk": jwk, "thumb": thumb, "status": "valid",
                                             "contact": (payload or {}).get("contact", [])}
                    ca.by_thumb[thumb] = existing
                    status = 201
                else:
                    status = 200
                a = ca.accounts[existing]
            self.reply(status, {"status": a["status"], "contact": a["contact"],
                                "orders": ca.url(f"/orders/{existing}")},
                       headers=[("Location", ca.acct_url(existing))])
            return
        if aid is None:
            raise Problem(400, "malformed", "this request needs a kid")
        if path == f"/acct/{aid}":
            a = ca.accounts[aid]
            if payload and payload.get("status") == "deactivated":
                a["status"] = "deactivated"
            if payload and "contact" in payload:
                a["contact"] = payload["contact"]
            self.reply(200, {"status": a["status"], "contact": a["contact"],
                             "orders": ca.url(f"/orders/{aid}")})
        elif path == "/new-order":
            self.new_order(aid, payload or {})
        elif path.startswith("/order/"):
            o = self.owned(ca.orders, path[7:], aid)
            self.reply(200, ca.order_json(o))
        elif path.startswith("/authz/"):
            a = self.owned(ca.authzs, path[7:], aid)
            if payload and payload.get("status") == "deactivated":
                with ca.lock:
                    a["status"] = "deactivated"
            self.reply(200, ca.authz_json(a))
        elif path.startswith("/chall/"):
            c = ca.chals.get(path[7:])
            if not c or ca.authzs[c["authz"]]["account"] != aid:
                raise Problem(404, "malformed", "no such challenge")
            authz = ca.authzs[c["authz"]]
            if payload is not None and c["status"] == "pending" and authz["status"] == "pending":
                with ca.lock:
                    c["status"] = "processing"
                threading.Thread(target=ca.validate, args=(c,), daemon=True).start()
            self.reply(200, ca.chal_json(c), headers=[("Link", f"<{ca.url('/authz/' + c['authz'])}>;rel=\"up\"")])
        elif path.startswith("/finalize/"):
            self.finalize(self.owned(ca.orders, path[10:], aid), payload or {})
        elif path.startswith("/cert/"):
            cert = ca.certs.get(path[6:])
            if not cert or cert["account"] != aid:
                raise Problem(404, "malformed", "no such certificate")
            self.reply(200, cert["chain"].encode(), "application/pem-certificate-chain")
        else:
            raise Problem(404, "malformed", f"nothing at {path}")

    def owned(self, table, key, aid):
        obj = table.get(key)
        if not obj or obj["account"] != aid:
            raise Problem(404, "malformed", "no such object")
        return obj

    def new_order(self, aid, payload):
        ca = self.ca
        idents = payload.get("identifiers")
        if not isinstance(idents, list) or not idents:
            raise Problem(400, "malformed", "newOrder needs identifiers")
        oid = str(next(ca.ids))
        exp = rfc3339(time.time() + 3600)
        order = {"id": oid, "account": aid, "status": "pending", "expires": exp, "identifiers": idents,
                 "authzs": []}
        with ca.lock:
            for ident in idents:
                if ident.get("type") != "dns" or not isinstance(ident.get("value"), str):
                    raise Problem(400, "rejectedIdentifier", "only dns identifiers here")
                value, wild = ident["value"].lower(), ident["value"].startswith("*.")
                base = value[2:] if wild else value
                azid = str(next(ca.ids))
                authz = {"id": azid, "account": aid, "order": oid, "status": "pending", "expires": exp,
                         "identifier": {"type": "dns", "value": base}, "wildcard": wild, "chals": []}
                for t in ca.args.types:
                    cid = str(next(ca.ids))
                    c = {"type": t, "url": ca.url(f"/chall/{cid}"), "status": "pending", "authz": azid}
                    if t == "dns-persist-01":
                        # draft -02 renamed the member; -00/-01 and Pebble use the dashed one.
                        key = "issuerDomainNames" if ca.args.hashed_accounturi else "issuer-domain-names"
                        c[key] = list(ca.args.issuer_domain)
                    else:
                        c["token"] = b64u(secrets.token_bytes(32))
                    ca.chals[cid] = c
                    authz["chals"].append(cid)
                ca.authzs[azid] = authz
                order["authzs"].append(azid)
            ca.orders[oid] = order
        self.reply(201, ca.order_json(order), headers=[("Location", ca.url(f"/order/{oid}"))])

    def finalize(self, order, payload):
        ca = self.ca
        with ca.lock:
            ca.update_order(order)
            if order["status"] != "ready":
                raise Problem(403, "orderNotReady", f"order is {order['status']}, not ready")
        try:
            csr = x509.load_der_x509_csr(b64u_dec(payload["csr"]))
        except (KeyError, ValueError, TypeError):
            raise Problem(400, "badCSR", "the CSR does not parse")
        if not csr.is_signature_valid:
            raise Problem(400, "badCSR", "the CSR signature does not verify")
        try:
            sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = sorted(n.lower() for n in sans.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = []
        want = sorted(i["value"].lower() for i in order["identifiers"])
        if names != want:
            raise Problem(400, "badCSR", f"the CSR names {names}, the order {want}")
        leaf = make_leaf(csr.public_key(), [i["value"] for i in order["identifiers"]], ca.inter, ca.inter_key)
        cid = str(next(ca.ids))
        with ca.lock:
            ca.certs[cid] = {"account": order["account"], "chain": pem(leaf) + pem(ca.inter)}
            order["cert"] = cid
            order["status"] = "valid"
        self.reply(200, ca.order_json(order), headers=[("Location", ca.url(f"/order/{order['id']}"))])


def listener_tls(tmp):
    """A CA and a 127.0.0.1 certificate for the HTTPS listener."""
    ca, ca_key = make_ca("dns-persist stand-in listener CA")
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = {k: os.path.join(tmp, k) for k in ("ca.pem", "cert.pem", "key.pem")}
    with open(paths["ca.pem"], "w") as f:
        f.write(pem(ca))
    with open(paths["cert.pem"], "w") as f:
        f.write(pem(cert))
    with open(paths["key.pem"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def main():
    ap = argparse.ArgumentParser(prog=PROG)
    ap.add_argument("--dnsserver", required=True, help="HOST:PORT the validator asks (loopback)")
    ap.add_argument("--issuer-domain", action="append", default=None)
    ap.add_argument("--types", default="dns-persist-01,dns-account-01")
    ap.add_argument("--hashed-accounturi", action="store_true",
                    help="draft -02: advertise accountHashPrefix, accept only hashed accounturi values")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    args.issuer_domain = args.issuer_domain or ["standin.acme.test"]
    args.types = [t for t in args.types.split(",") if t]
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command")
    if not args.dnsserver.startswith("127."):
        ap.error("--dnsserver must be on loopback")
    tmp = tempfile.mkdtemp(prefix="dnspersist-standin-")
    try:
        paths = listener_tls(tmp)
        scratch = os.path.join(tmp, "scratch")
        os.mkdir(scratch)
        ca = CA(args, os.path.join(tmp, "validations.jsonl"))
        srv = Server(("127.0.0.1", 0), Handler)
        srv.ca = ca
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(paths["cert.pem"], paths["key.pem"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        port = srv.server_address[1]
        ca.base = f"https://127.0.0.1:{port}"
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        open(ca.log_path, "w").close()
        env = dict(os.environ)
        env.update({"ACME_TEST_DIRECTORY": ca.url("/dir"), "ACME_TEST_CA_FILE": paths["ca.pem"],
                    "ACME_TEST_MGMT": ca.url("/mgmt"), "ACME_TEST_TMPDIR": scratch,
                    "ACME_TEST_ISSUER_DOMAIN": args.issuer_domain[0],
                    "ACME_TEST_STANDIN_LOG": ca.log_path,
                    "ACME_TEST_ACCOUNT_HASH_PREFIX": ca.hash_prefix() or ""})
        say(f"serving {ca.url('/dir')}, validating through {args.dnsserver}")
        rc = subprocess.call(cmd, env=env)
        if rc != 0:
            with open(ca.log_path) as f:
                for line in f.readlines()[-10:]:
                    say("validation: " + line.rstrip())
        srv.shutdown()
        return rc
    except Exception as e:  # noqa: BLE001 - the harness must say why it could not start
        say(f"could not run: {e}")
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
