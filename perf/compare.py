#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`make bench-compare`: corio beside libuv, Tokio, asyncio, uvloop and nginx.

Runs every workload each runtime can express (the peers are perf/peers/*,
each its own program, never linked with corio), interleaved round by round:
round r runs every row once for every runtime, in an order rotated by r, so
a machine that slows down part-way slows every runtime alike. Then prints a
table of medians with corio / best peer per row, writes CSVs and draws a PNG
(gnuplot) of every runtime per row normalised to the best peer (lower is
faster; the best peer is 1). It says what it skipped and why.

    ROUNDS=5 (default)   rounds; ROUNDS=1 for a quick look
    ONLY=regex           only the rows whose name matches (e.g. ONLY=post)
    D=5                  seconds of load per network run (wrk, tcp_client)
    OUT=perf/compare-out where the CSVs and the PNG go

Standard library only; the machine's floors (`perf/bench limits`) and its
CPU model and kernel are printed first and kept in the CSV.
"""
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
PY = "/usr/bin/python3"  # Debian's: python3-uvloop is installed for it
BENCH = "perf/bench"
UV = "perf/peers/libuv/peer_uv_micro"
TOKIO = "perf/peers/tokio/target/release/corio-peer-tokio"
ASY = "perf/peers/asyncio/peer_asyncio.py"
NGX = "perf/peers/nginx/peer_nginx.py"

ROUNDS = int(os.environ.get("ROUNDS", "5"))
ONLY = os.environ.get("ONLY", "")
D = os.environ.get("D", "5")
OUT = os.environ.get("OUT", "perf/compare-out")
RUN_TIMEOUT = 300


def peer_server(cmd):
    return {"PEER_SERVER": cmd}


# Each row: (name, metric, {runtime: (argv, extra env)}). metric is the
# output field compared (lower is better for every one used here).
# Counts: the Python peers run ~100x slower per operation, so they run
# fewer operations; NS_PER_OP compares as it is.
def rows():
    net = "D=" + D
    return [
        ("threadsafe_post P=1", "NS_PER_OP", {
            "corio": ([BENCH, "threadsafe_post", "P=1"], {}),
            "libuv": ([UV, "threadsafe_post", "P=1"], {}),
            "tokio": ([TOKIO, "threadsafe_post", "P=1"], {}),
            "tokio-mpsc": ([TOKIO, "threadsafe_post", "P=1", "via=mpsc"], {}),
            "asyncio": ([PY, ASY, "threadsafe_post", "P=1", "M=100000"], {}),
            "uvloop": ([PY, ASY, "--uvloop", "threadsafe_post", "P=1", "M=100000"], {}),
        }),
        ("threadsafe_post P=4", "NS_PER_OP", {
            "corio": ([BENCH, "threadsafe_post", "P=4"], {}),
            "libuv": ([UV, "threadsafe_post", "P=4"], {}),
            "tokio": ([TOKIO, "threadsafe_post", "P=4", "M=250000"], {}),
            "tokio-mpsc": ([TOKIO, "threadsafe_post", "P=4", "M=250000", "via=mpsc"], {}),
            "asyncio": ([PY, ASY, "threadsafe_post", "P=4", "M=25000"], {}),
            "uvloop": ([PY, ASY, "--uvloop", "threadsafe_post", "P=4", "M=25000"], {}),
        }),
        ("local_callbacks", "NS_PER_OP", {
            "corio": ([BENCH, "local_callbacks"], {}),
            "libuv": ([UV, "local_callbacks"], {}),
            "tokio": ([TOKIO, "local_callbacks", "N=1000000"], {}),
            "asyncio": ([PY, ASY, "local_callbacks"], {}),
            "uvloop": ([PY, ASY, "--uvloop", "local_callbacks"], {}),
        }),
        ("task_switch", "NS_PER_OP", {
            "corio": ([BENCH, "task_switch"], {}),
            "tokio": ([TOKIO, "task_switch"], {}),
            "asyncio": ([PY, ASY, "task_switch", "K=200"], {}),
            "uvloop": ([PY, ASY, "--uvloop", "task_switch", "K=200"], {}),
        }),
        ("spawn_await", "NS_PER_OP", {
            "corio": ([BENCH, "spawn_await"], {}),
            "tokio": ([TOKIO, "spawn_await"], {}),
            "asyncio": ([PY, ASY, "spawn_await", "N=100000"], {}),
            "uvloop": ([PY, ASY, "--uvloop", "spawn_await", "N=100000"], {}),
        }),
        # ns per request = 1 / req/s; SERVER_CPU_NS_PER_OP is the server's own
        # CPU per request (the load generator shares the 2 cores).
        ("http_hello", "NS_PER_OP", http_runtimes(net)),
        ("http_hello server CPU", "SERVER_CPU_NS_PER_OP", None),  # same runs
        ("tcp_echo", "NS_PER_OP", {
            "corio": ([BENCH, "tcp_echo", net], {}),
            "tokio": ([BENCH, "peer_echo", net], peer_server(TOKIO + " echo")),
            "asyncio": ([BENCH, "peer_echo", net], peer_server(PY + " " + ASY + " echo")),
            "uvloop": ([BENCH, "peer_echo", net],
                       peer_server(PY + " " + ASY + " --uvloop echo")),
        }),
        ("tcp_echo server CPU", "SERVER_CPU_NS_PER_OP", None),
    ]


def http_runtimes(net):
    return {
        "corio": ([BENCH, "http_hello", net], {}),
        "libuv": ([BENCH, "peer_uv_http", net], {}),
        "tokio": ([BENCH, "peer_http", net], peer_server(TOKIO + " http")),
        "asyncio": ([BENCH, "peer_http", net], peer_server(PY + " " + ASY + " http")),
        "uvloop": ([BENCH, "peer_http", net], peer_server(PY + " " + ASY + " --uvloop http")),
        "nginx": ([BENCH, "peer_http", net], peer_server(PY + " " + NGX)),
    }


# What cannot run here, and why (None: it can).
def why_not(runtime, argv):
    have_uvloop = subprocess.run([PY, "-c", "import uvloop"], capture_output=True).returncode == 0
    if runtime == "libuv":
        prog = "perf/peer_uv_http" if "peer_uv_http" in argv else argv[0]
        if not os.access(prog, os.X_OK):
            return prog + " not built (Debian libuv1-dev missing?)"
    if runtime.startswith("tokio") and not os.access(TOKIO, os.X_OK):
        return "Tokio peer not built (Debian librust-tokio-dev, cargo missing?)"
    if runtime in ("asyncio", "uvloop") and not os.access(PY, os.X_OK):
        return "/usr/bin/python3 missing"
    if runtime == "uvloop" and not have_uvloop:
        return "uvloop missing (Debian python3-uvloop)"
    if runtime == "nginx" and not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        return "nginx missing (Debian nginx-light)"
    if "http_hello" in argv or "peer_http" in argv or "peer_uv_http" in argv:
        if not shutil.which("wrk"):
            return "wrk missing (Debian wrk)"
    return None


# The workloads a runtime cannot express (said once, in the skip list).
CANNOT = [
    ("task_switch", "libuv", "no tasks (callbacks only)"),
    ("spawn_await", "libuv", "no tasks (callbacks only)"),
    ("tcp_echo", "libuv", "no libuv echo peer written yet"),
    ("tcp_echo", "nginx", "nginx is an HTTP server (its stream module is not in nginx-light)"),
    ("task_switch", "nginx", "a server, not a runtime"),
    ("spawn_await", "nginx", "a server, not a runtime"),
    ("local_callbacks", "nginx", "a server, not a runtime"),
    ("threadsafe_post", "nginx", "a server, not a runtime"),
    ("local_callbacks", "tokio-mpsc", "tokio-mpsc is threadsafe_post's channel variant only"),
]


def parse(line):
    out = {}
    for tok in line.split():
        k, eq, v = tok.partition("=")
        if eq:
            out[k] = v
    return out


def run(argv, env):
    e = dict(os.environ)
    e.update(env)
    try:
        p = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % RUN_TIMEOUT
    fig = [line for line in p.stdout.splitlines() if line.startswith("WORKLOAD=")]
    if p.returncode == 77:
        return None, "skipped: " + p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "skipped"
    if p.returncode != 0 or not fig:
        last = p.stderr.strip().splitlines()[-1:] or [""]
        return None, "FAILED (exit %d) %s" % (p.returncode, last[0])
    return parse(fig[-1]), None


def fmt(v):
    if v is None:
        return "-"
    if v >= 10000:
        return "%.0f" % v
    if v >= 100:
        return "%.1f" % v
    return "%.2f" % v


def main():
    os.makedirs(OUT, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    print("== this machine (perf/bench limits)", flush=True)
    lim = subprocess.run([BENCH, "limits"], capture_output=True, text=True)
    sys.stdout.write(lim.stdout)
    machine = lim.stdout.splitlines()[0] if lim.stdout else "MACHINE unknown"
    if lim.returncode != 0:
        print("compare: perf/bench limits failed: " + lim.stderr.strip())
    ncpu = os.cpu_count() or 1
    print("note: %d CPUs; figures from a machine shared with other work swing: "
          "read ratios within one run, not absolute values across runs" % ncpu)

    table = rows()
    if ONLY:
        table = [r for r in table if re.search(ONLY, r[0])]
    skips = []
    for name, _, rts in table:
        if rts is None:
            continue
        for rt, (argv, _) in list(rts.items()):
            w = why_not(rt, argv)
            if w:
                skips.append("%s / %s: %s" % (name, rt, w))
                del rts[rt]
    for name, _, _ in table:
        for w, rt, why in CANNOT:
            if name.startswith(w):
                skips.append("%s / %s: cannot express it: %s" % (name, rt, why))

    raw = []  # (round, row, runtime, fields)
    results = {}  # (row, runtime) -> [fields]
    failures = []
    runnable = [(n, m, r) for n, m, r in table if r]
    for rnd in range(ROUNDS):
        print("== round %d of %d" % (rnd + 1, ROUNDS), flush=True)
        for name, metric, rts in runnable:
            names = list(rts)
            k = rnd % len(names)
            for rt in names[k:] + names[:k]:
                argv, env = rts[rt]
                f, err = run(argv, env)
                if f is None:
                    failures.append("round %d %s / %s: %s" % (rnd + 1, name, rt, err))
                    print("  %-22s %-11s %s" % (name, rt, err), flush=True)
                    continue
                raw.append((rnd + 1, name, rt, f))
                results.setdefault((name, rt), []).append(f)
                print("  %-22s %-11s %s ns/op%s" % (
                    name, rt, f.get("NS_PER_OP"),
                    "  server CPU %s ns/op" % f["SERVER_CPU_NS_PER_OP"]
                    if "SERVER_CPU_NS_PER_OP" in f else ""), flush=True)

    # Medians per row and runtime; the "server CPU" rows read the runs of
    # the row above them.
    runtimes = ["corio", "libuv", "tokio", "tokio-mpsc", "asyncio", "uvloop", "nginx"]
    med = {}
    for name, metric, rts in table:
        src = name.replace(" server CPU", "")
        for rt in runtimes:
            vals = [float(f[metric]) for f in results.get((src, rt), []) if metric in f]
            if vals:
                med[(name, rt)] = (statistics.median(vals), len(vals))

    print()
    print("medians of %d interleaved round%s; ns per op (per request / message "
          "for the network rows), lower is better" % (ROUNDS, "s" if ROUNDS != 1 else ""))
    hdr = "%-24s" % "workload" + "".join("%12s" % r for r in runtimes) + "  %-18s %s" % ("best peer", "corio/best")
    print(hdr)
    print("-" * len(hdr))
    summary = []
    for name, _, _ in table:
        vals = {rt: med[(name, rt)][0] for rt in runtimes if (name, rt) in med}
        if not vals:
            continue
        peers = {rt: v for rt, v in vals.items() if rt != "corio"}
        best = min(peers, key=peers.get) if peers else None
        ratio = vals["corio"] / peers[best] if best and "corio" in vals else None
        line = "%-24s" % name + "".join("%12s" % fmt(vals.get(rt)) for rt in runtimes)
        line += "  %-18s %s" % ("%s %s" % (best, fmt(peers[best])) if best else "-",
                                "%.2fx" % ratio if ratio else "-")
        print(line)
        summary.append((name, vals, best, ratio))
    if any(n.startswith("http_hello") for n, _, _ in table):
        rps = {rt: statistics.median([float(f["REQ_PER_S"]) for f in results[("http_hello", rt)]])
               for rt in runtimes if ("http_hello", rt) in results}
        if rps:
            print("http_hello req/s: " + ", ".join("%s %.0f" % (k, v) for k, v in rps.items()))
    if skips:
        print("\nskipped:")
        for s in skips:
            print("  " + s)
    if failures:
        print("\nfailed runs (no figure):")
        for s in failures:
            print("  " + s)

    raw_csv = os.path.join(OUT, "compare-%s-runs.csv" % stamp)
    with open(raw_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["machine", machine])
        w.writerow(["round", "workload", "runtime", "ns_per_op", "server_cpu_ns_per_op", "line"])
        for rnd, name, rt, fl in raw:
            w.writerow([rnd, name, rt, fl.get("NS_PER_OP"), fl.get("SERVER_CPU_NS_PER_OP", ""),
                        " ".join("%s=%s" % kv for kv in fl.items())])
    med_csv = os.path.join(OUT, "compare-%s-medians.csv" % stamp)
    with open(med_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload"] + runtimes + ["best_peer", "corio_over_best"])
        for name, vals, best, ratio in summary:
            w.writerow([name] + [vals.get(rt, "") for rt in runtimes] +
                       [best or "", "%.3f" % ratio if ratio else ""])
    print("\nCSV: %s, %s" % (raw_csv, med_csv))
    png = os.path.join(OUT, "compare-%s.png" % stamp)
    if chart(summary, runtimes, machine, png):
        shutil.copyfile(png, os.path.join(OUT, "compare-latest.png"))
        print("chart: %s (and compare-latest.png)" % png)
    return 1 if failures else 0


def chart(summary, runtimes, machine, png):
    gp = shutil.which("gnuplot")
    if not gp:
        print("chart: skipped: gnuplot missing (Debian gnuplot-nox)")
        return False
    used = [rt for rt in runtimes if any(rt in v for _, v, _, _ in summary)]
    dat = png[:-4] + ".dat"
    with open(dat, "w") as f:
        f.write("# workload " + " ".join(used) + "\n")
        for name, vals, best, _ in summary:
            if not best:
                continue
            b = vals[best]
            f.write('"%s" ' % name.replace(" server CPU", "\\nserver CPU").replace("threadsafe_post ", "threadsafe_post\\n")
                    + " ".join("%.4f" % (vals[rt] / b) if rt in vals else "NaN" for rt in used) + "\n")
    model = re.search(r'CPU_MODEL="([^"]*)"', machine)
    title = "corio and its peers, time per op / best peer's (lower is faster; best peer = 1)"
    sub = "%s, %s, %s" % (model.group(1) if model else "?", time.strftime("%Y-%m-%d", time.gmtime()),
                          "ROUNDS=%d" % ROUNDS)
    colors = ["#d62728", "#1f77b4", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#9467bd"]
    plot = ", ".join(
        "'%s' using %d:xtic(1) title '%s' lc rgb '%s'" % (dat, i + 2, rt, colors[runtimes.index(rt)])
        for i, rt in enumerate(used))
    script = """
set terminal pngcairo size 1400,700 font 'Sans,11'
set output '%s'
set title "%s\\n{/*0.8 %s}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set logscale y 10
set yrange [0.1:*]
set ylabel 'time per op / best peer (log)'
set grid ytics
set key outside right top
set xtics font ',10' noenhanced
set key noenhanced
set bmargin 4
set xrange [-0.6:*]
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb 'black'
plot %s
""" % (png, title, sub, plot)
    p = subprocess.run([gp], input=script, text=True, capture_output=True)
    if p.returncode != 0 or not os.path.exists(png):
        # pngcairo may be absent: try the plain png terminal
        script = script.replace("pngcairo size 1400,700 font 'Sans,11'", "png size 1400,700")
        p = subprocess.run([gp], input=script, text=True, capture_output=True)
    if p.returncode != 0:
        print("chart: gnuplot failed: " + p.stderr.strip()[:500])
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
