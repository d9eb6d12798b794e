#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""http_hello's nginx peer (Debian nginx-light), never linked with corio; see
perf/peers/nginx/README.md. Driven by `perf/bench peer_http` as
PEER_SERVER="/usr/bin/python3 perf/peers/nginx/peer_nginx.py":

    peer_nginx.py --port 0 --loops N

Writes a configuration into a temporary directory (N worker processes, one
SO_REUSEPORT listener each, keep-alive without a request limit, no access
log, `return 200 "hello, world\\n"` as text/plain), runs nginx in the
foreground as its child, prints "listening on 127.0.0.1:PORT" once nginx
accepts, and on SIGTERM stops nginx (fast shutdown), waits for it and exits
0 when nginx did: the harness reads the CPU time of this process and its
waited-for children (the master, which waits for its workers) from wait4.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONF = """
worker_processes {loops};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location = / {{
            default_type text/plain;
            return 200 "hello, world\\n";
        }}
        location / {{ return 404; }}
    }}
}}
"""


def main():
    port, loops = 0, 0
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--port":
            port = int(next(it))
        elif a == "--loops":
            loops = int(next(it))
        else:
            print("peer_nginx: unknown argument " + a, file=sys.stderr)
            sys.exit(2)
    if not os.access(NGINX, os.X_OK):
        print("peer_nginx: SKIPPED: nginx is not installed (Debian nginx-light)",
              file=sys.stderr)
        sys.exit(77)
    if loops <= 0:
        loops = len(os.sched_getaffinity(0))
    if port == 0:  # nginx cannot listen on port 0: take a free one
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    d = tempfile.mkdtemp(prefix="corio-nginx-")
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(CONF.format(loops=loops, d=d, port=port))
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    p = subprocess.Popen([NGINX, "-p", d, "-e", d + "/error.log", "-c", d + "/nginx.conf"])
    end = time.time() + 10
    while time.time() < end:
        if p.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.02)
    else:
        p.kill()
    if p.poll() is not None:
        sys.stderr.write(open(d + "/error.log").read())
        shutil.rmtree(d, ignore_errors=True)
        print("peer_nginx: nginx did not start", file=sys.stderr)
        sys.exit(1)
    print("listening on 127.0.0.1:%d (%d workers)" % (port, loops), flush=True)
    while not stop:
        time.sleep(0.05)
    p.terminate()
    rc = p.wait()
    shutil.rmtree(d, ignore_errors=True)
    sys.exit(0 if rc == 0 else 1)


if __name__ == "__main__":
    main()
