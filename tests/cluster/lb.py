#!/usr/bin/env python3
"""A TCP load balancer for the cluster tests: what sits in front of a
cluster of web servers, so that the CA's validation connection may reach
any node, not only the one that published the answer.

    lb.py --listen PORT --backends P1,P2,P3 --control FILE --log FILE

Listens on 127.0.0.1:PORT; every connection goes to the next backend
(127.0.0.1:Pi) in turn among those allowed by FILE, which holds backend
numbers (1-based, separated by spaces), optionally "delay=SECONDS" (wait
that long before connecting: an order then stays pending long enough for a
test to kill its node), and is read again for every connection (all
backends when absent). A backend that refuses the connection is skipped,
as a load balancer's health check would. One line per connection is
appended to the log: "<backend number>". Bytes are copied both ways until either side
closes. Loopback only."""
import argparse
import asyncio


async def pipe(r, w):
    try:
        while True:
            b = await r.read(65536)
            if not b:
                break
            w.write(b)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            w.close()
        except Exception:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--backends", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    backends = [int(p) for p in a.backends.split(",")]
    turn = [0]

    def control():
        ok, delay = [], 0.0
        try:
            with open(a.control) as f:
                for w in f.read().split():
                    if w.startswith("delay="):
                        delay = float(w[6:])
                    elif 1 <= int(w) <= len(backends):
                        ok.append(int(w))
        except (OSError, ValueError):
            pass
        return ok or list(range(1, len(backends) + 1)), delay

    async def handle(cr, cw):
        ok, delay = control()
        if delay:
            await asyncio.sleep(delay)
        for _ in range(len(ok)):
            n = ok[turn[0] % len(ok)]
            turn[0] += 1
            try:
                br, bw = await asyncio.open_connection("127.0.0.1", backends[n - 1])
            except OSError:
                continue
            with open(a.log, "a") as f:
                f.write("%d\n" % n)
            await asyncio.gather(pipe(cr, bw), pipe(br, cw))
            return
        cw.close()

    async def serve():
        srv = await asyncio.start_server(handle, "127.0.0.1", a.listen)
        async with srv:
            await srv.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
