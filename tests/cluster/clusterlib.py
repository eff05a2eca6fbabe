"""What the Python cluster tests (lt_cluster.py, hap_cluster.py) share:
loopback ports and waiting for a condition while watching the processes
a test started."""

import socket
import subprocess
import time


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound together, released)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(cond, timeout, what, dead=None, fail=RuntimeError, interval=0.3):
    """cond()'s first true value within timeout seconds. dead() names a
    process that exited (the wait is then pointless), or returns None;
    fail is the exception the test reports."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        why = dead() if dead else None
        if why:
            raise fail(f"{why} while waiting for {what}")
        try:
            v = cond()
            if v:
                return v
        except (OSError, ValueError, subprocess.SubprocessError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise fail(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last})" if last else ""))
