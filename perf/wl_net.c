/* SPDX-License-Identifier: MIT */
/* Network workloads: http_hello, tcp_echo, static_file
 * (shared/perf-workloads.md),
 * their peers and floors, and http_idle (10,000 idle keep-alive
 * connections: the server's RSS).
 *
 * The servers are child processes: the examples (examples/http_hello,
 * examples/echo_server, built by `make examples`) on every core's loop, the
 * libuv peer (perf/peer_uv_http, built by `make peers` when libuv is
 * installed), and the floors, hand-written servers forked from the harness
 * (limit_http on epoll, limit_http_uring on io_uring, perf/uring_http.c).
 * The harness reads a server's address from its first line, warms it with a
 * few short connections, drives it (wrk, or examples/tcp_client --bench: a
 * client process with loops of its own), then stops it with SIGTERM and
 * takes its CPU time from wait4's rusage: SERVER_CPU_NS_PER_OP = server
 * user+system CPU / OPS, split into SERVER_USER_NS_PER_OP and
 * SERVER_SYS_NS_PER_OP, and its context switches per op
 * (SERVER_CSW_PER_OP: on this paravirtual guest a server thread that
 * sleeps and is woken costs several microseconds, so how many requests one
 * wake-up serves matters as much as the syscalls). Each run checks its work: no non-2xx answer and no
 * socket error from wrk, every echo matched, the server exited 0.
 *
 * syscalls=1 counts the server's system calls during the load (perf stat
 * on the syscalls:sys_enter_* tracepoints, attached to the server after its
 * warm-up and detached before it stops): SYSCALLS_PER_OP= and the calls
 * that make it up, per op. Tracing costs a little CPU per call: take the
 * CPU figures from runs without it. */
#include "bench.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uring_http.h"
#include "../examples/echo.h"

/* ------------------------------------------------------------ children */

typedef struct {
  pid_t pid;
  int out; /* its stdout */
} child;

/* In a forked child: never outlive the harness. The death signal is armed
 * after the fork, so a harness that died in between (a failed run exits at
 * once) would leave the child running with the harness's stdout, and a
 * caller reading that pipe would wait forever: check the parent after
 * arming it. */
static void orphan_guard(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(1);
}

static child spawn(bench_ctx *ctx, char *const argv[]) {
  if (access(argv[0], X_OK) != 0 && strchr(argv[0], '/') != NULL)
    bench_fail(ctx, "%s: not built (run `make examples`)", argv[0]);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    bench_fail(ctx, "pipe: %s", strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    bench_fail(ctx, "fork: %s", strerror(errno));
  if (pid == 0) {
    orphan_guard(parent);
    dup2(p[1], 1);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  return (child){pid, p[0]};
}

/* Reads the child's output until EOF or `timeout` seconds; returns it
 * (malloc'd, NUL-terminated). With `line`, stops after the first line. */
static char *read_out(bench_ctx *ctx, int fd, double timeout, bool line) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  double end = bench_now() + timeout;
  for (;;) {
    double left = end - bench_now();
    if (left <= 0)
      bench_fail(ctx, "child output timed out (so far: %.*s)", (int)len, buf);
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0)
      continue;
    if (len + 4096 > cap)
      buf = realloc(buf, cap *= 2);
    ssize_t n = read(fd, buf + len, line ? 1 : cap - len - 1);
    /* EINTR with no handler of ours: kernel work queued on this task
     * (closing an io_uring does that) interrupts it once, and a recv on a
     * socket with a receive time-out then fails with EINTR instead of
     * restarting. limit_http_uring probes io_uring in a child for that
     * reason; a retry here keeps the harness robust to the rest. */
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    if (line && buf[len - 1] == '\n')
      break;
  }
  buf[len] = 0;
  return buf;
}

/* `make bench` builds the harness, not the examples: bring a make target
 * up to date (a no-op when it is), outside any outer make's jobserver. */
static void make_target(bench_ctx *ctx, const char *target) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s "
           "--no-print-directory %s >&2",
           target);
  if (system(cmd) != 0)
    bench_fail(ctx, "`make %s` failed", target);
}

static void build_examples(bench_ctx *ctx) {
  static bool done;
  if (!done)
    make_target(ctx, "examples");
  done = true;
}

static int server_start_with(bench_ctx *ctx, const char *path, long loops,
                             const char *extra, child *c) {
  char lp[32];
  snprintf(lp, sizeof lp, "%ld", loops);
  char *argv[] = {(char *)path, "--port", "0", "--loops", lp, (char *)extra,
                  NULL};
  *c = spawn(ctx, argv);
  char *l = read_out(ctx, c->out, 10, true);
  const char *p = strstr(l, "127.0.0.1:");
  if (p == NULL)
    bench_fail(ctx, "%s did not print its address: '%s'", path, l);
  int port = atoi(p + 10);
  free(l);
  return port;
}

/* server_start for a peer given as a command line (PEER_SERVER, words split
 * on spaces): the command, then --port 0 --loops N, as for the others. */
static int server_start_cmd(bench_ctx *ctx, const char *cmd, long loops,
                            child *c) {
  static char buf[1024];
  char lp[32];
  char *argv[32];
  int n = 0;
  snprintf(buf, sizeof buf, "%s", cmd);
  snprintf(lp, sizeof lp, "%ld", loops);
  for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && n < 27;
       w = strtok_r(NULL, " ", &save))
    argv[n++] = w;
  if (n == 0)
    bench_fail(ctx, "PEER_SERVER is empty");
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--loops";
  argv[n++] = lp;
  argv[n] = NULL;
  if (access(argv[0], X_OK) != 0)
    bench_skip(ctx, "%s: not built or not installed", argv[0]);
  *c = spawn(ctx, argv);
  char *l = read_out(ctx, c->out, 20, true);
  const char *p = strstr(l, "127.0.0.1:");
  if (p == NULL)
    bench_fail(ctx, "%s did not print its address: '%s'", cmd, l);
  int port = atoi(p + 10);
  free(l);
  return port;
}

static int server_start(bench_ctx *ctx, const char *path, long loops,
                        child *c) {
  return server_start_with(ctx, path, loops, NULL, c);
}

static void server_stop(bench_ctx *ctx, child *c, struct rusage *ru) {
  kill(c->pid, SIGTERM);
  int st = 0;
  double end = bench_now() + 20;
  for (;;) {
    pid_t r = wait4(c->pid, &st, WNOHANG, ru);
    if (r == c->pid)
      break;
    if (bench_now() > end) {
      kill(c->pid, SIGKILL);
      bench_fail(ctx, "server did not stop within 20 s of SIGTERM");
    }
    usleep(2000);
  }
  if (c->out >= 0)
    close(c->out);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    bench_fail(ctx, "server exited badly (status 0x%x)", st);
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static const char GET[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

static char http_err[256]; /* why http_once failed */

/* One request/response on fd; false when the answer is not a 200 with the
 * hello body (the reason in http_err). */
static bool http_once(int fd) {
  if (send(fd, GET, sizeof GET - 1, MSG_NOSIGNAL) != (ssize_t)sizeof GET - 1) {
    snprintf(http_err, sizeof http_err, "send: %s", strerror(errno));
    return false;
  }
  char buf[1024];
  size_t len = 0;
  while (len < sizeof buf - 1) {
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (n < 0 && errno == EINTR)
      continue; /* see the comment in read_out */
    if (n <= 0) {
      snprintf(http_err, sizeof http_err, "recv: %s after %zu bytes",
               n == 0 ? "EOF" : strerror(errno), len);
      return false;
    }
    len += (size_t)n;
    buf[len] = 0;
    if (strstr(buf, "\r\n\r\nhello, world\n")) {
      snprintf(http_err, sizeof http_err, "answer: %.64s", buf);
      return strncmp(buf, "HTTP/1.1 200", 12) == 0;
    }
  }
  snprintf(http_err, sizeof http_err, "no hello body in %.64s", buf);
  return false;
}

/* A few short connections so every loop of the server starts warm. */
static void warm_http(bench_ctx *ctx, int port) {
  for (int i = 0; i < 16; i++) {
    int fd = connect_to(port);
    if (fd < 0)
      bench_fail(ctx, "warm-up connection %d: connect: %s", i, strerror(errno));
    if (!http_once(fd))
      bench_fail(ctx, "warm-up request %d failed (%s)", i, http_err);
    close(fd);
  }
}

/* ------------------------------------------------------------ syscalls */

typedef struct {
  pid_t pid; /* perf stat, 0 when not counting */
  char path[64];
} sys_trace;

/* With syscalls=1: starts counting pid's system calls (every thread). */
static void trace_start(bench_ctx *ctx, sys_trace *t, pid_t pid) {
  t->pid = 0;
  if (!bench_param_long(ctx, "syscalls", 0))
    return;
  if (system("perf stat -e 'syscalls:sys_enter_getppid' -- true "
             ">/dev/null 2>&1") != 0)
    bench_skip(ctx, "syscalls=1 needs `perf` (Debian linux-perf) and access "
                    "to the syscalls:* tracepoints");
  snprintf(t->path, sizeof t->path, "/tmp/corio-bench-sys.%d", (int)getpid());
  char ps[16];
  snprintf(ps, sizeof ps, "%d", (int)pid);
  char *argv[] = {"perf", "stat", "-x,", "-e", "syscalls:sys_enter_*",
                  "-p",   ps,     "-o",  t->path, NULL};
  child p = spawn(ctx, argv);
  close(p.out);
  t->pid = p.pid;
  usleep(1000000); /* perf opens ~360 events per thread before counting */
}

typedef struct {
  char name[40];
  unsigned long long n;
} sys_count;

static int by_count(const void *a, const void *b) {
  const sys_count *x = a, *y = b;
  return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->name, y->name);
}

/* Stops counting; appends " SYSCALLS_PER_OP=x SYSCALLS=name:x,..." (the
 * calls above 0.001 per op, most frequent first) to out. */
static void trace_stop(bench_ctx *ctx, sys_trace *t, uint64_t ops, char *out,
                       size_t len) {
  out[0] = 0;
  if (t->pid == 0)
    return;
  kill(t->pid, SIGINT);
  int st;
  waitpid(t->pid, &st, 0);
  FILE *f = fopen(t->path, "r");
  if (f == NULL)
    bench_fail(ctx, "perf stat left no output (%s)", t->path);
  sys_count cs[512];
  size_t n = 0;
  unsigned long long total = 0;
  char line[256];
  while (fgets(line, sizeof line, f) && n < 512) {
    unsigned long long v;
    char *ev = strstr(line, "syscalls:sys_enter_");
    if (ev == NULL || sscanf(line, "%llu,", &v) != 1 || v == 0)
      continue; /* comments, "<not counted>", zeros */
    ev += strlen("syscalls:sys_enter_");
    size_t k = strcspn(ev, ",");
    snprintf(cs[n].name, sizeof cs[n].name, "%.*s", (int)k, ev);
    cs[n++].n = v;
    total += v;
  }
  fclose(f);
  unlink(t->path);
  if (total == 0)
    bench_fail(ctx, "perf stat counted no system call of the server");
  qsort(cs, n, sizeof *cs, by_count);
  size_t o = (size_t)snprintf(out, len, " SYSCALLS_PER_OP=%.3f SYSCALLS=",
                              (double)total / (double)ops);
  for (size_t i = 0; i < n && o < len; i++) {
    double per = (double)cs[i].n / (double)ops;
    if (per < 0.001)
      break;
    o += (size_t)snprintf(out + o, len - o, "%s%s:%.3f", i ? "," : "",
                          cs[i].name, per);
  }
}

/* ------------------------------------------------------------ reporting */

static void report_server(bench_ctx *ctx, uint64_t ops, double secs,
                          const char *rate, double p99,
                          const struct rusage *ru, const char *sys) {
  double user = (ru->ru_utime.tv_sec * 1e9 + ru->ru_utime.tv_usec * 1e3);
  double system_ = (ru->ru_stime.tv_sec * 1e9 + ru->ru_stime.tv_usec * 1e3);
  bench_report(ctx, ops, secs,
               " %s=%.0f P99_US=%.0f SERVER_CPU_NS_PER_OP=%.0f"
               " SERVER_USER_NS_PER_OP=%.0f SERVER_SYS_NS_PER_OP=%.0f"
               " SERVER_CSW_PER_OP=%.3f SERVER_RSS_KB=%ld%s",
               rate, (double)ops / secs, p99, (user + system_) / (double)ops,
               user / (double)ops, system_ / (double)ops,
               (double)(ru->ru_nvcsw + ru->ru_nivcsw) / (double)ops,
               ru->ru_maxrss, sys);
}

/* ------------------------------------------------------------ wrk */

static double parse_lat_us(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (strncmp(end, "us", 2) == 0)
    return v;
  if (strncmp(end, "ms", 2) == 0)
    return v * 1e3;
  if (strncmp(end, "s", 1) == 0)
    return v * 1e6;
  return v;
}

/* The http workloads' one load: `wrk -tT -cC -dDs --latency` against the
 * server at port (pid srv, warmed already), counted with syscalls=1; then
 * the server is stopped and the figure reported. Fails on any wrk error. */
static void drive_http_path(bench_ctx *ctx, int port, child *srv,
                            const char *path, unsigned long long body);

static void drive_http(bench_ctx *ctx, int port, child *srv) {
  drive_http_path(ctx, port, srv, "/", 0);
}

/* As drive_http, for `path`; with body > 0 the bytes wrk read must cover
 * every request's body (no short answer counted as a request). */
static void drive_http_path(bench_ctx *ctx, int port, child *srv,
                            const char *path, unsigned long long body) {
  long c = bench_param_long(ctx, "C", 100);
  long d = bench_param_long(ctx, "D", 10);
  long t = bench_param_long(ctx, "T", 2);
  sys_trace tr;
  trace_start(ctx, &tr, srv->pid);
  char cs[16], ds[16], ts[16], url[128];
  snprintf(cs, sizeof cs, "-c%ld", c);
  snprintf(ds, sizeof ds, "-d%lds", d);
  snprintf(ts, sizeof ts, "-t%ld", t);
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  char *argv[] = {"wrk", ts, cs, ds, "--latency", url, NULL};
  child w = spawn(ctx, argv);
  char *out = read_out(ctx, w.out, (double)d + 30, false);
  int st;
  waitpid(w.pid, &st, 0);
  close(w.out);
  const char *p = strstr(out, " requests in ");
  unsigned long long reqs = 0;
  if (p != NULL) {
    const char *q = p;
    while (q > out && q[-1] >= '0' && q[-1] <= '9')
      q--;
    reqs = strtoull(q, NULL, 10);
  }
  char sys[512];
  trace_stop(ctx, &tr, reqs ? reqs : 1, sys, sizeof sys);
  struct rusage ru;
  server_stop(ctx, srv, &ru);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    bench_fail(ctx, "wrk failed (status 0x%x): %s", st, out);
  if (p == NULL)
    bench_fail(ctx, "cannot parse wrk's output: %s", out);
  double secs = strtod(p + strlen(" requests in "), NULL);
  if ((p = strstr(out, "Non-2xx or 3xx responses:")) != NULL &&
      atol(p + strlen("Non-2xx or 3xx responses:")) != 0)
    bench_fail(ctx, "non-2xx responses: %s", out);
  if (strstr(out, "Socket errors:") != NULL)
    bench_fail(ctx, "socket errors: %s", out);
  if (body > 0) {
    /* "N requests in 10.00s, 6.10GB read": at least N * body bytes */
    const char *rd = strstr(strstr(out, " requests in "), "s, ");
    double v = rd ? strtod(rd + 3, (char **)&rd) : 0;
    double unit = !rd                        ? 0
                  : strncmp(rd, "GB", 2) == 0 ? 1024.0 * 1024 * 1024
                  : strncmp(rd, "MB", 2) == 0 ? 1024.0 * 1024
                  : strncmp(rd, "KB", 2) == 0 ? 1024.0
                                              : 1;
    /* wrk prints 2 decimals: allow for its rounding */
    if (v * unit < (double)reqs * (double)body * 0.99)
      bench_fail(ctx, "wrk read less than %llu requests x %llu bytes: %s",
                 reqs, body, out);
  }
  double p99 = -1;
  if ((p = strstr(out, "     99%")) != NULL)
    p99 = parse_lat_us(p + 8 + strspn(p + 8, " "));
  if (reqs == 0 || secs <= 0 || p99 < 0)
    bench_fail(ctx, "cannot parse wrk's output: %s", out);
  free(out);
  report_server(ctx, reqs, secs, "REQ_PER_S", p99, &ru, sys);
}

/* The corio servers' (and tcp_client's) back-end for socket streams,
 * through the environment they inherit: uring=1 (default: as the library
 * chooses, io_uring where the kernel allows it) or uring=0 (CORIO_IO=epoll);
 * coalesce_us=N sets CORIO_IO_COALESCE_US (0: the library's default; -1:
 * none). */
static void apply_io(bench_ctx *ctx) {
  if (bench_param_long(ctx, "uring", 1) == 0)
    setenv("CORIO_IO", "epoll", 1);
  else
    unsetenv("CORIO_IO");
  long us = bench_param_long(ctx, "coalesce_us", 0);
  if (us != 0) { /* negative: no coalescing */
    char b[32];
    snprintf(b, sizeof b, "%ld", us);
    setenv("CORIO_IO_COALESCE_US", b, 1);
  } else {
    unsetenv("CORIO_IO_COALESCE_US");
  }
}

/* ------------------------------------------------------------ http_hello */

static int wl_http_hello(bench_ctx *ctx) {
  long loops = bench_param_long(ctx, "loops", 0);
  apply_io(ctx);
  build_examples(ctx);
  child srv;
  /* proto=1: the same server on a protocol (callbacks, no task per
   * connection: examples/http_hello --proto) */
  int port = server_start_with(ctx, "examples/http_hello", loops,
                               bench_param_long(ctx, "proto", 0) ? "--proto"
                                                                 : NULL,
                               &srv);
  warm_http(ctx, port);
  drive_http(ctx, port, &srv);
  return 0;
}
BENCH_WORKLOAD(http_hello, wl_http_hello,
               "C=100,D=10,T=2,loops=0,uring=1,coalesce_us=0,syscalls=0,proto=0")

/* ------------------------------------------------------------ the libuv peer */

/* peer_uv_http: the same server written on libuv (perf/peer_uv_http.c:
 * one pinned loop per CPU, SO_REUSEPORT, uv_try_write), the same load. */
static int wl_peer_uv_http(bench_ctx *ctx) {
  long loops = bench_param_long(ctx, "loops", 0);
  if (system("pkg-config --exists libuv") != 0)
    bench_skip(ctx, "libuv is not installed (Debian libuv1-dev; "
                    ".ci/deps.sh installs it)");
  make_target(ctx, "peers");
  if (access("perf/peer_uv_http", X_OK) != 0)
    bench_skip(ctx, "perf/peer_uv_http was not built");
  child srv;
  int port = server_start(ctx, "perf/peer_uv_http", loops, &srv);
  warm_http(ctx, port);
  drive_http(ctx, port, &srv);
  return 0;
}
BENCH_WORKLOAD(peer_uv_http, wl_peer_uv_http,
               "C=100,D=10,T=2,loops=0,syscalls=0")

/* peer_http: any other peer of http_hello (Tokio, asyncio, uvloop, nginx:
 * perf/peers/, driven by perf/compare.py), named by the environment:
 * PEER_SERVER="perf/peers/tokio/target/release/corio-peer-tokio http". The
 * command gets --port 0 --loops N, prints "... 127.0.0.1:PORT ..." once it
 * listens, and exits 0 on SIGTERM (its CPU time, children included, comes
 * from wait4). Same warm-up, load and checks as http_hello. */
static int wl_peer_http(bench_ctx *ctx) {
  long loops = bench_param_long(ctx, "loops", 0);
  const char *cmd = getenv("PEER_SERVER");
  if (cmd == NULL || cmd[0] == 0)
    bench_skip(ctx, "PEER_SERVER is not set (perf/compare.py sets it)");
  child srv;
  int port = server_start_cmd(ctx, cmd, loops, &srv);
  warm_http(ctx, port);
  drive_http(ctx, port, &srv);
  return 0;
}
BENCH_WORKLOAD(peer_http, wl_peer_http, "C=100,D=10,T=2,loops=0,syscalls=0")

/* ------------------------------------------------------------ the floors */

/* A floor server: `loops` listeners on one port (SO_REUSEPORT, bound here
 * so the port is known), then a forked child that runs start(lfds, n, cfg)
 * (which starts its threads) and waits for SIGTERM. Returns the port. */
typedef void (*floor_start)(int *lfds, long n, const void *cfg);

static int floor_fork(bench_ctx *ctx, long loops, floor_start start,
                      const void *cfg, child *srv) {
  if (loops <= 0) {
    cpu_set_t cs;
    loops = sched_getaffinity(0, sizeof cs, &cs) == 0 ? CPU_COUNT(&cs) : 1;
  }
  int port = 0;
  int *ls = calloc((size_t)loops, sizeof *ls);
  for (long i = 0; i < loops; i++) {
    int one = 1;
    ls[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(ls[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (bind(ls[i], (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(ls[i], 4096) != 0)
      bench_fail(ctx, "floor listener: %s", strerror(errno));
    socklen_t al = sizeof a;
    getsockname(ls[i], (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
  }
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    bench_fail(ctx, "fork: %s", strerror(errno));
  if (pid == 0) {
    orphan_guard(parent);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    start(ls, loops, cfg);
    int sig;
    sigwait(&stop, &sig);
    _exit(0);
  }
  for (long i = 0; i < loops; i++)
    close(ls[i]);
  free(ls);
  *srv = (child){pid, -1};
  return port;
}

/* limit_http: the same requests answered by the least a readiness server
 * can do per request (one recv, one send, a shared epoll_wait), hand-written
 * on plain epoll with one thread per core and SO_REUSEPORT, in a forked
 * child, driven by the same wrk command: http_hello's figures read as a
 * ratio to it. Pipelined requests in one read are answered with one send. */
static const char FLOOR_RESP[] = "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 13\r\n"
                                 "\r\n"
                                 "hello, world\n";

static void *floor_thread(void *arg) {
  int l = (int)(intptr_t)arg;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  struct epoll_event evs[256];
  static _Thread_local char buf[16384], out[16384];
  int one = 1;
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        int c;
        while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event e = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP,
                                  .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
        }
        continue;
      }
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r <= 0) {
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
          close(fd);
        continue;
      }
      size_t ol = 0;
      for (char *p = buf; (p = memmem(p, (size_t)(buf + r - p), "\r\n\r\n", 4));
           p += 4) {
        if (ol + sizeof FLOOR_RESP > sizeof out)
          break;
        memcpy(out + ol, FLOOR_RESP, sizeof FLOOR_RESP - 1);
        ol += sizeof FLOOR_RESP - 1;
      }
      if (ol)
        send(fd, out, ol, MSG_NOSIGNAL);
    }
  }
  return NULL;
}

static void epoll_floor_start(int *lfds, long n, const void *cfg) {
  (void)cfg;
  for (long i = 0; i < n; i++) {
    pthread_t th;
    pthread_create(&th, NULL, floor_thread, (void *)(intptr_t)lfds[i]);
  }
}

static int wl_limit_http(bench_ctx *ctx) {
  long loops = bench_param_long(ctx, "loops", 0);
  child srv;
  int port = floor_fork(ctx, loops, epoll_floor_start, NULL, &srv);
  warm_http(ctx, port);
  drive_http(ctx, port, &srv);
  return 0;
}
BENCH_WORKLOAD(limit_http, wl_limit_http, "C=100,D=10,T=2,loops=0,syscalls=0")

/* limit_http_uring: the io_uring floor (perf/uring_http.c), same load. Not
 * an io_uring backend of corio: it says what one could reach here. */
typedef struct {
  bool multishot, defer;
  unsigned batch, batch_us, minwait_us;
} uring_cfg;

static void uring_floor_start(int *lfds, long n, const void *cfg) {
  const uring_cfg *u = cfg;
  for (long i = 0; i < n; i++) {
    uring_http_args *a = malloc(sizeof *a);
    a->lfd = lfds[i];
    a->multishot = u->multishot;
    a->defer = u->defer;
    a->batch = u->batch;
    a->batch_us = u->batch_us;
    a->minwait_us = u->minwait_us;
    pthread_t th;
    pthread_create(&th, NULL, uring_http_thread, a);
  }
}

static int wl_limit_http_uring(bench_ctx *ctx) {
  long loops = bench_param_long(ctx, "loops", 0);
  uring_cfg u = {bench_param_long(ctx, "multishot", 1) != 0,
                 bench_param_long(ctx, "defer", 1) != 0,
                 (unsigned)bench_param_long(ctx, "batch", 1),
                 (unsigned)bench_param_long(ctx, "batch_us", 100),
                 (unsigned)bench_param_long(ctx, "minwait", 0)};
  if (u.batch == 0)
    bench_fail(ctx, "batch=0: at least one completion per wait");
  /* Probed in a child: a ring closed in the harness would interrupt its
   * next blocking recv (see read_out). */
  int pp[2];
  if (pipe(pp) != 0)
    bench_fail(ctx, "pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    char why[256] = "";
    int rc = uring_http_probe(why, sizeof why);
    ssize_t w = write(pp[1], why, strlen(why));
    (void)w;
    _exit(rc == 0 ? 0 : 1);
  }
  close(pp[1]);
  char why[256] = "";
  ssize_t got = pid > 0 ? read(pp[0], why, sizeof why - 1) : -1;
  why[got > 0 ? got : 0] = 0;
  close(pp[0]);
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
      WEXITSTATUS(st) != 0)
    bench_skip(ctx, "io_uring is not available here (%s)",
               why[0] ? why : "probe failed");
  child srv;
  int port = floor_fork(ctx, loops, uring_floor_start, &u, &srv);
  warm_http(ctx, port);
  drive_http(ctx, port, &srv);
  return 0;
}
BENCH_WORKLOAD(limit_http_uring, wl_limit_http_uring,
               "C=100,D=10,T=2,loops=0,multishot=1,defer=1,batch=1,"
               "batch_us=100,minwait=0,syscalls=0")

/* ------------------------------------------------------------ static_file */

/* static_file: examples/static_server serving one file of `size` bytes
 * (64 KiB) from a fresh temporary root, under the http load (wrk asks for
 * that file on every request); peer_nginx_static: Debian's nginx serving
 * the same file the same way (sendfile on), for the ratio in one run. */
typedef struct {
  char dir[64];  /* the temporary directory: root/ and nginx's prefix */
  char root[96];
} static_root;

static void static_root_make(bench_ctx *ctx, static_root *sr, long size) {
  snprintf(sr->dir, sizeof sr->dir, "/tmp/corio-bench-static.XXXXXX");
  if (mkdtemp(sr->dir) == NULL)
    bench_fail(ctx, "mkdtemp: %s", strerror(errno));
  /* nginx's workers run as nobody when the harness is root: readable */
  chmod(sr->dir, 0755);
  snprintf(sr->root, sizeof sr->root, "%s/root", sr->dir);
  if (mkdir(sr->root, 0755) != 0)
    bench_fail(ctx, "mkdir %s: %s", sr->root, strerror(errno));
  char path[160];
  snprintf(path, sizeof path, "%s/file.bin", sr->root);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    bench_fail(ctx, "%s: %s", path, strerror(errno));
  char buf[4096];
  for (long done = 0; done < size;) {
    for (size_t i = 0; i < sizeof buf; i++)
      buf[i] = (char)('a' + (done + (long)i) % 26);
    size_t k = size - done < (long)sizeof buf ? (size_t)(size - done)
                                              : sizeof buf;
    if (write(fd, buf, k) != (ssize_t)k)
      bench_fail(ctx, "write %s: %s", path, strerror(errno));
    done += (long)k;
  }
  close(fd);
}

static void static_root_remove(static_root *sr) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", sr->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", sr->dir);
}

/* A few short connections, each asking for the file once: the answer must
 * be a 200 with `size` bytes of body. */
static void warm_static(bench_ctx *ctx, int port, long size) {
  static const char req[] = "GET /file.bin HTTP/1.1\r\nHost: bench\r\n\r\n";
  char *buf = malloc((size_t)size + 4096);
  for (int i = 0; i < 16; i++) {
    int fd = connect_to(port);
    if (fd < 0)
      bench_fail(ctx, "warm-up connection %d: connect: %s", i, strerror(errno));
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)sizeof req - 1)
      bench_fail(ctx, "warm-up send: %s", strerror(errno));
    size_t len = 0, want = 0;
    for (;;) {
      ssize_t n = recv(fd, buf + len, (size_t)size + 4095 - len, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        bench_fail(ctx, "warm-up request %d: %s after %zu bytes", i,
                   n == 0 ? "EOF" : strerror(errno), len);
      len += (size_t)n;
      buf[len] = 0;
      char *h = strstr(buf, "\r\n\r\n");
      if (h != NULL && want == 0) {
        if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
          bench_fail(ctx, "warm-up answer: %.80s", buf);
        want = (size_t)(h + 4 - buf) + (size_t)size;
      }
      if (want && len >= want)
        break;
    }
    close(fd);
  }
  free(buf);
}

static int wl_static_file(bench_ctx *ctx) {
  long loops = bench_param_long(ctx, "loops", 0);
  long size = bench_param_long(ctx, "size", 65536);
  if (size < 1)
    bench_fail(ctx, "size >= 1");
  apply_io(ctx);
  build_examples(ctx);
  static_root sr;
  static_root_make(ctx, &sr, size);
  char lp[32];
  snprintf(lp, sizeof lp, "%ld", loops);
  char *argv[] = {"examples/static_server", "--port", "0", "--loops", lp,
                  sr.root, NULL};
  child srv = spawn(ctx, argv);
  char *l = read_out(ctx, srv.out, 10, true);
  const char *p = strstr(l, "127.0.0.1:");
  if (p == NULL)
    bench_fail(ctx, "static_server did not print its address: '%s'", l);
  int port = atoi(p + 10);
  free(l);
  warm_static(ctx, port, size);
  drive_http_path(ctx, port, &srv, "/file.bin", (unsigned long long)size);
  static_root_remove(&sr);
  return 0;
}
BENCH_WORKLOAD(static_file, wl_static_file,
               "C=100,D=10,T=2,loops=0,size=65536,uring=1,coalesce_us=0,"
               "syscalls=0")

/* Debian's nginx (nginx-light), or NULL. */
static const char *nginx_path(void) {
  static const char *const where[] = {"/usr/sbin/nginx", "/usr/local/sbin/nginx",
                                      "/usr/bin/nginx"};
  for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
    if (access(where[i], X_OK) == 0)
      return where[i];
  return NULL;
}

static int free_port(bench_ctx *ctx) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &al) != 0)
    bench_fail(ctx, "no free port: %s", strerror(errno));
  close(fd);
  return ntohs(a.sin_port);
}

/* peer_nginx_static: nginx in the foreground (daemon off) with a master
 * and one worker per core (the master is the harness's child; it reaps
 * its workers at SIGTERM, so wait4's rusage covers them), a generated
 * minimal config under a temporary prefix: sendfile on, access_log off,
 * keep-alive without a request limit, workers pinned (worker_cpu_affinity
 * auto, as corio pins its loops), open_file_cache off unless
 * open_file_cache=1 (nginx's default: open, fstat and close per request). */
static int wl_peer_nginx_static(bench_ctx *ctx) {
  long loops = bench_param_long(ctx, "loops", 0);
  long size = bench_param_long(ctx, "size", 65536);
  long ofc = bench_param_long(ctx, "open_file_cache", 0);
  const char *ngx = nginx_path();
  if (ngx == NULL)
    bench_skip(ctx, "nginx is not installed (Debian nginx-light; "
                    ".ci/deps.sh installs it)");
  if (size < 1)
    bench_fail(ctx, "size >= 1");
  if (bench_param_long(ctx, "syscalls", 0))
    bench_skip(ctx, "syscalls=1 attaches to the harness's child, nginx's "
                    "master, not to its worker processes");
  if (loops <= 0) {
    cpu_set_t cs;
    loops = sched_getaffinity(0, sizeof cs, &cs) == 0 ? CPU_COUNT(&cs) : 1;
  }
  static_root sr;
  static_root_make(ctx, &sr, size);
  int port = free_port(ctx);
  char conf[160], errlog[160];
  snprintf(conf, sizeof conf, "%s/nginx.conf", sr.dir);
  snprintf(errlog, sizeof errlog, "%s/error.log", sr.dir);
  FILE *f = fopen(conf, "w");
  if (f == NULL)
    bench_fail(ctx, "%s: %s", conf, strerror(errno));
  fprintf(f,
          "worker_processes %ld;\n"
          "worker_cpu_affinity auto;\n"
          "daemon off;\n"
          "master_process on;\n"
          "pid %s/nginx.pid;\n"
          "error_log %s warn;\n"
          "events { worker_connections 4096; }\n"
          "http {\n"
          "  access_log off;\n"
          "  sendfile on;\n"
          "  keepalive_requests 100000000;\n"
          "  keepalive_timeout 60s;\n"
          "  client_body_temp_path %s/body;\n"
          "  proxy_temp_path %s/proxy;\n"
          "  fastcgi_temp_path %s/fastcgi;\n"
          "  uwsgi_temp_path %s/uwsgi;\n"
          "  scgi_temp_path %s/scgi;\n"
          "  default_type application/octet-stream;\n"
          "%s"
          "  server {\n"
          "    listen 127.0.0.1:%d;\n"
          "    root %s;\n"
          "  }\n"
          "}\n",
          loops, sr.dir, errlog, sr.dir, sr.dir, sr.dir, sr.dir, sr.dir,
          ofc ? "  open_file_cache max=64 inactive=60s;\n"
                "  open_file_cache_valid 1s;\n"
              : "",
          port, sr.root);
  fclose(f);
  char *argv[] = {(char *)ngx, "-p", sr.dir, "-c", conf, "-e", errlog, NULL};
  child srv = spawn(ctx, argv);
  /* nginx prints nothing: wait until it accepts */
  double end = bench_now() + 10;
  for (;;) {
    int fd = connect_to(port);
    if (fd >= 0) {
      close(fd);
      break;
    }
    int st;
    if (waitpid(srv.pid, &st, WNOHANG) == srv.pid)
      bench_fail(ctx, "nginx exited at start (status 0x%x); see %s", st,
                 errlog);
    if (bench_now() > end) {
      kill(srv.pid, SIGKILL);
      bench_fail(ctx, "nginx does not accept on port %d; see %s", port,
                 errlog);
    }
    usleep(20000);
  }
  warm_static(ctx, port, size);
  drive_http_path(ctx, port, &srv, "/file.bin", (unsigned long long)size);
  static_root_remove(&sr);
  return 0;
}
BENCH_WORKLOAD(peer_nginx_static, wl_peer_nginx_static,
               "C=100,D=10,T=2,loops=0,size=65536,open_file_cache=0,"
               "syscalls=0")

/* ------------------------------------------------------------ tcp_echo */

/* tcp_echo against examples/echo_server, or (as_peer: peer_echo) against the
 * server PEER_SERVER names, as peer_http does. */
static int echo_run(bench_ctx *ctx, bool as_peer) {
  long c = bench_param_long(ctx, "C", 100);
  long d = bench_param_long(ctx, "D", 10);
  long loops = bench_param_long(ctx, "loops", 0);
  long cloops = bench_param_long(ctx, "client_loops", 0);
  const char *peer = NULL;
  if (as_peer) {
    peer = getenv("PEER_SERVER");
    if (peer == NULL || peer[0] == 0)
      bench_skip(ctx, "PEER_SERVER is not set (perf/compare.py sets it)");
  } else {
    apply_io(ctx);
  }
  build_examples(ctx);
  child srv;
  int port = peer ? server_start_cmd(ctx, peer, loops, &srv)
                  : server_start(ctx, "examples/echo_server", loops, &srv);
  for (int i = 0; i < 16; i++) { /* warm-up */
    int fd = connect_to(port);
    char b[8];
    if (fd < 0 || send(fd, "warm", 4, MSG_NOSIGNAL) != 4 ||
        recv(fd, b, 4, MSG_WAITALL) != 4)
      bench_fail(ctx, "warm-up echo failed");
    close(fd);
  }
  sys_trace tr;
  trace_start(ctx, &tr, srv.pid);
  char ps[16], cs[16], ds[16], ls[16];
  snprintf(ps, sizeof ps, "%d", port);
  snprintf(cs, sizeof cs, "%ld", c);
  snprintf(ds, sizeof ds, "%ld", d);
  snprintf(ls, sizeof ls, "%ld", cloops);
  char *argv[] = {"examples/tcp_client", "--port", ps,   "--bench", cs,
                  ds,                    "--loops", ls, NULL};
  double t0 = bench_now();
  child cl = spawn(ctx, argv);
  char *out = read_out(ctx, cl.out, (double)d + 60, false);
  int st;
  waitpid(cl.pid, &st, 0);
  double secs = bench_now() - t0;
  close(cl.out);
  unsigned long msgs = 0, errs = 1, mism = 1;
  int p99 = -1;
  const char *p = strstr(out, "MESSAGES=");
  if (p == NULL || sscanf(p, "MESSAGES=%lu ERRORS=%lu MISMATCHES=%lu P99_US=%d",
                          &msgs, &errs, &mism, &p99) != 4)
    msgs = 0;
  char sys[512];
  trace_stop(ctx, &tr, msgs ? msgs : 1, sys, sizeof sys);
  struct rusage ru;
  server_stop(ctx, &srv, &ru);
  if (p == NULL || p99 < 0)
    bench_fail(ctx, "cannot parse the client's output: '%s'", out);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || errs || mism || msgs == 0)
    bench_fail(ctx, "lost work: %s (client status 0x%x)", out, st);
  free(out);
  if (secs > (double)d)
    secs = (double)d; /* the client's measured phase */
  report_server(ctx, msgs, secs, "MSG_PER_S", p99, &ru, sys);
  return 0;
}
static int wl_tcp_echo(bench_ctx *ctx) { return echo_run(ctx, false); }
static int wl_peer_echo(bench_ctx *ctx) { return echo_run(ctx, true); }
BENCH_WORKLOAD(peer_echo, wl_peer_echo,
               "C=100,D=10,loops=0,client_loops=0,syscalls=0")
BENCH_WORKLOAD(tcp_echo, wl_tcp_echo,
               "C=100,D=10,loops=0,client_loops=0,uring=1,coalesce_us=0,"
               "syscalls=0")

/* ------------------------------------------------------------ http_idle */

static long rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = atol(line + 6);
  if (f)
    fclose(f);
  return kb;
}

static int wl_http_idle(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 10000);
  long loops = bench_param_long(ctx, "loops", 0);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max < (rlim_t)n + 64)
    bench_fail(ctx, "RLIMIT_NOFILE hard limit %lu < N + 64",
               (unsigned long)rl.rlim_max);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  apply_io(ctx);
  build_examples(ctx);
  child srv;
  int port = server_start(ctx, "examples/http_hello", loops, &srv);
  warm_http(ctx, port);
  long base = rss_kb(srv.pid);
  int *fds = malloc((size_t)n * sizeof *fds);
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    fds[i] = connect_to(port);
    if (fds[i] < 0 || !http_once(fds[i]))
      bench_fail(ctx, "connection %ld: request failed", i);
  }
  double secs = bench_now() - t0;
  usleep(200000);
  long rss = rss_kb(srv.pid);
  /* still alive: each answers once more */
  for (long i = 0; i < n; i += n / 10 > 0 ? n / 10 : 1)
    if (!http_once(fds[i]))
      bench_fail(ctx, "idle connection %ld did not answer", i);
  for (long i = 0; i < n; i++)
    close(fds[i]);
  free(fds);
  struct rusage ru;
  server_stop(ctx, &srv, &ru);
  bench_report(ctx, (uint64_t)n, secs,
               " RSS_KB=%ld RSS_BASE_KB=%ld KB_PER_CONN=%.1f", rss, base,
               (double)(rss - base) / (double)n);
  return 0;
}
BENCH_WORKLOAD(http_idle, wl_http_idle, "N=10000,loops=0,uring=1,coalesce_us=0")

/* ------------------------------------------------------------ posts_under_load */

/* How long a post from a plain thread waits for a loop that is busy with
 * network load and gathers its completions into batches (io_uring
 * coalescing, cor_loop_opts.io_coalesce_seconds). This process runs an echo
 * server on a runtime (one loop per core); examples/tcp_client loads it
 * with C connections for D seconds; meanwhile this thread makes
 * run_coroutine_threadsafe round trips into the loops, one every gap_us
 * microseconds (a sporadic post, the kind coalescing can hold), and times
 * each. OPS = round trips; POST_P50_US / POST_P99_US / POST_MAX_US. Compare
 * coalesce_us=-1 (no coalescing) and uring=0 (epoll). */
static int pl_add_one(void *arg, void **res) {
  *res = (char *)arg + 1;
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int wl_posts_under_load(bench_ctx *ctx) {
  long c = bench_param_long(ctx, "C", 100);
  long d = bench_param_long(ctx, "D", 5);
  long gap = bench_param_long(ctx, "gap_us", 200);
  long loops = bench_param_long(ctx, "loops", 0);
  if (c < 1 || d < 2 || gap < 0 || loops < 0)
    bench_fail(ctx, "C >= 1, D >= 2 (posts run for D - 1 s); gap_us, loops >= 0");
  apply_io(ctx);
  build_examples(ctx);
  cor_runtime_opts ro = {.nloops = (unsigned)loops};
  cor_runtime_t *rt = cor_runtime_new(&ro);
  if (rt == NULL)
    bench_fail(ctx, "cor_runtime_new: %s", strerror(errno));
  cor_server_opts so = {.host = "127.0.0.1"};
  cor_server_t *srv = cor_runtime_start_server(rt, &so, echo_connection);
  if (srv == NULL)
    bench_fail(ctx, "cor_runtime_start_server: %s", strerror(errno));
  char ps[24], cs[24], ds[24];
  snprintf(ps, sizeof ps, "%d", cor_server_port(srv));
  snprintf(cs, sizeof cs, "%ld", c);
  snprintf(ds, sizeof ds, "%ld", d);
  char *argv[] = {"examples/tcp_client", "--port", ps, "--bench", cs, ds, NULL};
  child cl = spawn(ctx, argv);
  usleep(300000); /* the load is up */
  unsigned nl = cor_runtime_nloops(rt);
  size_t cap = (size_t)(d * 1000000 / (gap > 0 ? gap : 1)) + 16, n = 0;
  uint64_t *lat = malloc(cap * sizeof *lat);
  uint64_t end = bench_now_ns() + (uint64_t)(d - 1) * 1000000000ull;
  double t0 = bench_now();
  long wrong = 0;
  while (bench_now_ns() < end && n < cap) {
    uint64_t a = bench_now_ns();
    void *r = NULL;
    cor_cfuture_t *cf = cor_run_coroutine_threadsafe(
        cor_coro(pl_add_one, (void *)(uintptr_t)n), cor_runtime_loop(rt, (unsigned)(n % nl)));
    if (cf == NULL || cor_cfuture_result(cf, 5.0, &r) != 0 ||
        r != (char *)(uintptr_t)n + 1)
      wrong++;
    if (cf)
      cor_release(cf);
    lat[n++] = bench_now_ns() - a;
    if (gap > 0)
      usleep((useconds_t)gap);
  }
  double secs = bench_now() - t0;
  char *out = read_out(ctx, cl.out, (double)d + 60, false);
  int st;
  waitpid(cl.pid, &st, 0);
  close(cl.out);
  unsigned long msgs = 0, errs = 1, mism = 1;
  int p99 = -1;
  const char *p = strstr(out, "MESSAGES=");
  if (p == NULL || sscanf(p, "MESSAGES=%lu ERRORS=%lu MISMATCHES=%lu P99_US=%d",
                          &msgs, &errs, &mism, &p99) != 4 ||
      !WIFEXITED(st) || WEXITSTATUS(st) != 0 || errs || mism || msgs == 0)
    bench_fail(ctx, "the load lost work: %s (client status 0x%x)", out, st);
  free(out);
  cor_server_close(srv);
  cor_server_wait_closed(srv, 5.0);
  cor_server_free(srv);
  cor_runtime_shutdown(rt, 5.0);
  cor_release(rt);
  if (wrong || n == 0)
    bench_fail(ctx, "%ld of %zu round trips failed or returned a wrong value",
               wrong, n);
  qsort(lat, n, sizeof *lat, cmp_u64);
  bench_report(ctx, n, secs,
               " POST_P50_US=%.1f POST_P99_US=%.1f POST_MAX_US=%.1f"
               " LOAD_MSG_PER_S=%.0f",
               lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, lat[n - 1] / 1e3,
               (double)msgs / (double)d);
  free(lat);
  return 0;
}
BENCH_WORKLOAD(posts_under_load, wl_posts_under_load,
               "C=100,D=5,gap_us=200,loops=0,uring=1,coalesce_us=0")
