#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""corio's perf workloads on Python's asyncio, or on uvloop (--uvloop),
never linked with corio; see perf/peers/asyncio/README.md.

    peer_asyncio.py [--uvloop] threadsafe_post P=1 M=100000
    peer_asyncio.py [--uvloop] local_callbacks N=1000000
    peer_asyncio.py [--uvloop] task_switch T=1000 K=200
    peer_asyncio.py [--uvloop] spawn_await N=100000
    peer_asyncio.py [--uvloop] http --port 0 --loops N   (perf/bench peer_http)
    peer_asyncio.py [--uvloop] echo --port 0 --loops N   (perf/bench peer_echo)

Each workload checks it lost no work (exit 1, no figure, otherwise) and
prints the harness's line with PEER=asyncio or PEER=uvloop. Default counts
are smaller than corio's (Python is ~100x slower per operation); NS_PER_OP
compares as it is. The servers run one process per loop (one loop per CPU,
each with its own SO_REUSEPORT listener), as Python servers are deployed.
"""
import asyncio
import os
import signal
import socket
import sys
import threading
import time

PEER = "asyncio"


def fail(msg):
    print("peer_asyncio: FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


class Params:
    def __init__(self, args):
        self.given = {}
        self.order = []
        for a in args:
            k, eq, v = a.partition("=")
            if not eq:
                print("peer_asyncio: '%s' is not k=v" % a, file=sys.stderr)
                sys.exit(2)
            self.given[k] = v

    def long(self, k, d):
        try:
            v = int(self.given.get(k, d))
        except ValueError:
            print("peer_asyncio: %s is not a number" % k, file=sys.stderr)
            sys.exit(2)
        self.order.append("%s=%d" % (k, v))
        return v

    def report(self, name, ops, secs):
        print("WORKLOAD=%s PARAMS=%s OPS=%d SECONDS=%.6f NS_PER_OP=%.2f PEER=%s"
              % (name, ",".join(self.order), ops, secs, secs * 1e9 / ops, PEER),
              flush=True)


def new_loop():
    if PEER == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def threadsafe_post(p):
    np_, m = p.long("P", 1), p.long("M", 100000)
    loop = new_loop()
    total = np_ * m
    last = [0] * np_
    state = {"count": 0, "bad": 0, "t_end": 0.0}
    done = loop.create_future()

    def cb(i, s):
        if last[i] + 1 != s:
            state["bad"] += 1
        last[i] = s
        state["count"] += 1
        if state["count"] == total:
            state["t_end"] = time.perf_counter()
            done.set_result(None)

    barrier = threading.Barrier(np_ + 1)

    def producer(i):
        post = loop.call_soon_threadsafe
        barrier.wait()
        for s in range(1, m + 1):
            post(cb, i, s)

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(np_)]
    for t in threads:
        t.start()
    t0 = [0.0]

    async def main():
        barrier.wait()  # the loop is running: release the producers
        t0[0] = time.perf_counter()
        await asyncio.wait_for(done, 300)

    loop.run_until_complete(main())
    for t in threads:
        t.join()
    loop.close()
    if state["count"] != total or state["bad"]:
        fail("%d of %d ran, %d out of order" % (state["count"], total, state["bad"]))
    p.report("threadsafe_post", total, state["t_end"] - t0[0])


def local_callbacks(p):
    n = p.long("N", 1000000)
    loop = new_loop()
    chains = min(64, n)
    st = {"sched": 0, "ran": 0, "bad": 0}

    def step(chain):
        if st["ran"] % chains != chain:
            st["bad"] += 1
        st["ran"] += 1
        if st["sched"] < n:
            st["sched"] += 1
            loop.call_soon(step, chain)
        elif st["ran"] == n:
            loop.stop()

    t0 = time.perf_counter()
    for c in range(chains):
        st["sched"] += 1
        loop.call_soon(step, c)
    loop.run_forever()
    secs = time.perf_counter() - t0
    loop.close()
    if st["ran"] != n or st["bad"]:
        fail("%d of %d ran, %d out of order" % (st["ran"], n, st["bad"]))
    p.report("local_callbacks", n, secs)


def task_switch(p):
    t, k = p.long("T", 1000), p.long("K", 200)
    loop = new_loop()
    done = [0]

    async def worker():
        for _ in range(k):
            await asyncio.sleep(0)
            done[0] += 1

    async def main():
        await asyncio.gather(*[worker() for _ in range(t)])

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    secs = time.perf_counter() - t0
    loop.close()
    if done[0] != t * k:
        fail("lost yields")
    p.report("task_switch", t * k, secs)


def spawn_await(p):
    n = p.long("N", 100000)
    loop = new_loop()

    async def child(i):
        return i + 1

    async def main():
        ok = 0
        for i in range(n):
            ok += await asyncio.ensure_future(child(i)) == i + 1
        return ok

    t0 = time.perf_counter()
    ok = loop.run_until_complete(main())
    secs = time.perf_counter() - t0
    loop.close()
    if ok != n:
        fail("a child returned the wrong value")
    p.report("spawn_await", n, secs)


OK = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
      b"\r\nhello, world\n")
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Http(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr
        self.buf = b""
        sock = tr.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        heads = buf.split(b"\r\n\r\n")
        self.buf = heads.pop()  # the incomplete rest
        if heads:
            for h in heads:
                if not h.startswith(b"GET "):
                    self.tr.write(BAD)
                    self.tr.close()
                    return
            self.tr.write(OK * len(heads))
        if len(self.buf) > 8192:
            self.tr.close()


class Echo(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr
        sock = tr.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.tr.write(data)


def serve_child(sock, proto):
    loop = new_loop()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_until_complete(loop.create_server(proto, sock=sock, backlog=4096))
    loop.run_forever()
    os._exit(0)


def server(args, proto):
    port, loops = 0, 0
    it = iter(args)
    for a in it:
        if a == "--port":
            port = int(next(it))
        elif a == "--loops":
            loops = int(next(it))
        else:
            fail("unknown argument " + a)
    if loops <= 0:
        loops = len(os.sched_getaffinity(0))
    socks = []
    for _ in range(loops):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", port))
        port = s.getsockname()[1]
        s.listen(4096)
        socks.append(s)
    pids = []
    for s in socks:
        pid = os.fork()
        if pid == 0:
            for o in socks:
                if o is not s:
                    o.close()
            serve_child(s, proto)
        pids.append(pid)
    for s in socks:
        s.close()
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    print("listening on 127.0.0.1:%d (%d loops)" % (port, loops), flush=True)
    while not stop:
        time.sleep(0.05)
    bad = 0
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        _, st = os.waitpid(pid, 0)
        bad += st != 0
    sys.exit(1 if bad else 0)


def main():
    global PEER
    args = sys.argv[1:]
    if args and args[0] == "--uvloop":
        PEER = "uvloop"
        args = args[1:]
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("peer_asyncio: SKIPPED: uvloop is not installed (Debian python3-uvloop)",
                  file=sys.stderr)
            sys.exit(77)
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    w, rest = args[0], args[1:]
    table = {"threadsafe_post": threadsafe_post, "local_callbacks": local_callbacks,
             "task_switch": task_switch, "spawn_await": spawn_await}
    if w in table:
        table[w](Params(rest))
    elif w == "http":
        server(rest, Http)
    elif w == "echo":
        server(rest, Echo)
    else:
        print("peer_asyncio: unknown workload '%s'" % w, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
