#!/usr/bin/env python3
"""Write the seed corpus of tests/fuzz/fuzz_dns_parse.c into
tests/fuzz/corpus/dns_parse/: real knotd answers (captured on loopback) and a
few hand-made hostile messages. Run under with-knot:

    tests/dns01/with-knot -- tests/dns01/make_fuzz_corpus.py tests/fuzz/corpus/dns_parse

The files are committed; this script says where they came from. Three
more seeds are the TSIG fixtures of tsig_fixtures.h as binary files
(knsupdate-update-tsig.bin, knot-update-answer-tsig.bin,
knot-badsig-answer.bin).
"""

import os
import secrets
import socket
import struct
import subprocess
import sys


def qname(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(server, name, qtype, rd=False, tcp=False):
    host, port = server.rsplit(":", 1)
    qid = secrets.randbits(16)
    q = struct.pack(">HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, 0) + qname(name) + \
        struct.pack(">HH", qtype, 1)
    if tcp:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            s.sendall(struct.pack(">H", len(q)) + q)
            n = struct.unpack(">H", s.recv(2))[0]
            data = b""
            while len(data) < n:
                data += s.recv(n - len(data))
            return data
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(q, (host, int(port)))
        return s.recv(65535)


def knsupdate(lines):
    host, port = os.environ["DNS01_TEST_SERVER"].rsplit(":", 1)
    key = ":".join((os.environ["DNS01_TEST_TSIG_ALGORITHM"], os.environ["DNS01_TEST_TSIG_NAME"],
                    os.environ["DNS01_TEST_TSIG_SECRET"]))
    script = f"server {host} {port}\nzone acme.test.\n{lines}\nsend\n"
    subprocess.run(["knsupdate", "-y", key], input=script.encode(), check=True)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    primary = os.environ["DNS01_TEST_SERVER"]
    knsupdate("update add _acme-challenge.c.acme.test. 60 CNAME t.acme.test.\n"
              "update add t.acme.test. 60 TXT \"LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\"\n"
              "update add t.acme.test. 60 TXT \"two\" \"strings\"\n"
              + "".join(f"update add big.acme.test. 60 TXT \"{'x' * 200}{i:03d}\"\n" for i in range(40)))
    seeds = {
        "knot-soa-nodata.bin": query(primary, "_acme-challenge.h.acme.test", 6, rd=True),
        "knot-ns-glue.bin": query(primary, "acme.test", 2, rd=True),
        "knot-txt-cname.bin": query(primary, "_acme-challenge.c.acme.test", 16),
        "knot-refused.bin": query(primary, "elsewhere.example", 6, rd=True),
        "knot-txt-truncated.bin": query(primary, "big.acme.test", 16),
        "knot-txt-big-tcp.bin": query(primary, "big.acme.test", 16, tcp=True),
        "knot-soa-answer.bin": query(primary, "acme.test", 6),
    }
    hdr = struct.pack(">HHHHHH", 1, 0x8000, 1, 0, 0, 0)
    seeds.update({
        # 12: a pointer to itself
        "loop-self.bin": hdr + b"\xc0\x0c\x00\x01\x00\x01",
        # 12: "a" + pointer to 16; 16: "b" + pointer to 12
        "loop-two.bin": hdr + b"\x01a\xc0\x10\x01b\xc0\x0c\x00\x01\x00\x01",
        # a forward pointer
        "pointer-forward.bin": hdr + b"\xc0\x0e\x01a\x00\x00\x01\x00\x01",
        # a reserved label type
        "label-0x40.bin": hdr + b"\x41a\x00\x00\x01\x00\x01",
        # counts far larger than the message
        "counts-huge.bin": struct.pack(">HHHHHH", 1, 0x8000, 0xffff, 0xffff, 0xffff, 0xffff),
    })
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main()
