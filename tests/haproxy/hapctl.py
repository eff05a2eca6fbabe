#!/usr/bin/env python3
"""hapctl.py SOCKET COMMAND [PAYLOAD_FILE]: one HAProxy runtime-API command.

Prints HAProxy's reply. With PAYLOAD_FILE the command is sent in the
`<command> <<` form followed by the file and an empty line. Exit 0 when a
reply came, 1 when the socket could not be reached (message on stderr).
Test helper for tests/haproxy: independent of the module's own client."""
import socket
import sys


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    data = argv[2]
    if len(argv) == 4:
        with open(argv[3]) as f:
            payload = "".join(l for l in f.read().splitlines(True) if l.strip())
        data += " <<\n" + payload + ("" if payload.endswith("\n") else "\n") + "\n"
    else:
        data += "\n"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(argv[1])
        s.sendall(data.encode())
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError as e:
        sys.stderr.write(f"hapctl: {argv[1]}: {e}\n")
        return 1
    finally:
        s.close()
    sys.stdout.write(out.replace(b"\0", b" ").decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
