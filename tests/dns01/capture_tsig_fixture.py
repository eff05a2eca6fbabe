#!/usr/bin/env python3
"""Capture TSIG-signed RFC 2136 updates made by knsupdate, and knotd's
signed answers, as C arrays for tests/dns01/test_tsig.c.

Run under with-knot with the fixture key (the same key test_tsig.c uses):

  tests/dns01/with-knot --tsig-name libacme-fixture. \\
      --tsig-secret bGliYWNtZSBkbnMwMSBUU0lHIGZpeHR1cmUga2V5ISE= \\
      -- tests/dns01/capture_tsig_fixture.py add > add.h
  (and "del" for a delete; --tsig-algorithm hmac-sha512 for SHA-512;
  "badsig" signs an add with another secret and keeps knotd's refusal)

It relays one UDP exchange between knsupdate and the primary knotd
(127.0.0.1 only) and prints both datagrams. knsupdate checks the answer's
signature itself, so its exit status 0 also vouches for knotd's MAC.
"""

import os
import socket
import subprocess
import sys
import threading

NAME = "_acme-challenge.host.acme.test."
VALUE = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"


def relay(sock, upstream, got):
    data, client = sock.recvfrom(65535)
    got["request"] = data
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
        up.settimeout(5)
        up.sendto(data, upstream)
        answer = up.recv(65535)
    got["answer"] = answer
    sock.sendto(answer, client)


def c_array(name, data):
    lines = [f"static const uint8_t {name}[{len(data)}] = {{"]
    for i in range(0, len(data), 12):
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in data[i:i + 12]) + ",")
    lines.append("};")
    return "\n".join(lines)


def main():
    op = sys.argv[1] if len(sys.argv) > 1 else "add"
    host, port = os.environ["DNS01_TEST_SERVER"].rsplit(":", 1)
    alg = os.environ["DNS01_TEST_TSIG_ALGORITHM"]
    secret = os.environ["DNS01_TEST_TSIG_SECRET"]
    if op == "badsig":  # a different secret under the same key name
        secret = "d3Jvbmcgc2VjcmV0IGZvciB0aGUgZml4dHVyZSBrZXk="
    key = f"{alg}:{os.environ['DNS01_TEST_TSIG_NAME']}:{secret}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    got = {}
    t = threading.Thread(target=relay, args=(sock, (host, int(port)), got))
    t.start()
    script = (f"server 127.0.0.1 {sock.getsockname()[1]}\nzone acme.test.\n"
              + (f"update add {NAME} 60 TXT \"{VALUE}\"\n" if op != "del"
                 else f"update delete {NAME} TXT \"{VALUE}\"\n")
              + "send\n")
    r = subprocess.run(["knsupdate", "-y", key], input=script.encode(), stdout=sys.stderr,
                       timeout=20)
    t.join(10)
    if (r.returncode != 0) != (op == "badsig") or "answer" not in got:
        sys.exit(f"knsupdate exited with {r.returncode}")
    tag = f"{op}_{alg.replace('hmac-', '')}"
    print(f"/* knsupdate -y {alg}:{os.environ['DNS01_TEST_TSIG_NAME']}:<fixture secret>, "
          f"\"update {'delete' if op == 'del' else 'add'} {NAME} ...\"{' (wrong secret)' if op == 'badsig' else ''} */")
    print(c_array(f"{tag}_request", got["request"]))
    print(c_array(f"{tag}_answer", got["answer"]))


if __name__ == "__main__":
    main()
