/* SPDX-License-Identifier: MIT */
/* The examples, built (`make examples`, in this suite's flavour) and run:
 * each server is started, talked to over loopback, sent SIGTERM (or
 * SIGINT) and must exit 0 within a few seconds, live clients or not. */
#include "testutil.h"
#include "tlscert.h"

#include <corio.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define FLAVOUR "asan"
#define EXDIR "build-asan/examples/"
#elif defined(__SANITIZE_THREAD__)
#define FLAVOUR "tsan"
#define EXDIR "build-tsan/examples/"
#else
#define FLAVOUR ""
#define EXDIR "examples/"
#endif

static int built = -1;

static int build_examples(void **state) {
  if (access("Makefile", R_OK) != 0 || access("examples/echo_server.c", R_OK))
    return 0; /* not at the project root: the tests skip */
  /* A make of our own, not part of the outer one's jobserver. */
  int rc = system("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s "
                  "--no-print-directory SAN=" FLAVOUR " examples >&2");
  built = rc == 0;
  return 0;
}

#define NEED_BUILT()                                                           \
  do {                                                                         \
    TEST_SKIP_IF(built < 0, "not run from the project root");                  \
    assert_int_equal(built, 1);                                                \
  } while (0)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
  pid_t pid;
  int out;
} proc;

static proc start(char *const argv[]) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no server */
    dup2(p[1], 1);
    execv(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  return (proc){pid, p[0]};
}

/* Reads from fd until `until` appears or EOF or timeout; returns what was
 * read (static buffer). */
static const char *read_until(int fd, const char *until, double timeout) {
  static char buf[8192];
  size_t len = 0;
  double end = now() + timeout;
  buf[0] = 0;
  while (len < sizeof buf - 1 && now() < end) {
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, 100) <= 0)
      continue;
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = 0;
    if (until && strstr(buf, until))
      break;
  }
  return buf;
}

static int start_server(const char *name, proc *pr) {
  char path[128];
  snprintf(path, sizeof path, EXDIR "%s", name);
  char *argv[] = {path, "--port", "0", "--loops", "2", NULL};
  *pr = start(argv);
  const char *l = read_until(pr->out, "\n", 20);
  const char *p = strstr(l, "127.0.0.1:");
  if (p == NULL)
    fail_msg("%s printed no address: '%s'", name, l);
  return atoi(p + 10);
}

static int wait_exit(pid_t pid, double timeout) {
  double end = now() + timeout;
  int st;
  while (now() < end) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usleep(5000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void send_all(int fd, const char *s) {
  size_t n = strlen(s);
  assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Receives until `count` occurrences of `needle` arrived (or EOF). */
static const char *recv_count(int fd, const char *needle, int count) {
  static char buf[16384];
  size_t len = 0;
  buf[0] = 0;
  for (;;) {
    int k = 0;
    for (const char *p = buf; (p = strstr(p, needle)); p += strlen(needle))
      k++;
    if (k >= count || len >= sizeof buf - 1)
      break;
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = 0;
  }
  return buf;
}

/* ------------------------------------------------------------ echo */

static void test_echo_server(void **state) {
  NEED_BUILT();
  proc pr;
  int port = start_server("echo_server", &pr);
  int fds[8];
  for (int i = 0; i < 8; i++) {
    fds[i] = dial(port);
    char msg[32], got[32] = {0};
    snprintf(msg, sizeof msg, "hello %d\n", i);
    send_all(fds[i], msg);
    assert_int_equal(recv(fds[i], got, strlen(msg), MSG_WAITALL),
                     (ssize_t)strlen(msg));
    assert_string_equal(got, msg);
  }
  for (int i = 0; i < 4; i++)
    close(fds[i]);
  /* the other four stay connected through the shutdown */
  kill(pr.pid, SIGTERM);
  assert_int_equal(wait_exit(pr.pid, 10), 0);
  for (int i = 4; i < 8; i++) {
    char b[4];
    assert_int_equal(recv(fds[i], b, sizeof b, 0), 0); /* closed */
    close(fds[i]);
  }
  close(pr.out);
}

static void test_tcp_client(void **state) {
  NEED_BUILT();
  proc srv;
  int port = start_server("echo_server", &srv);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  char *argv[] = {EXDIR "tcp_client", "--port", ps, "one", "two words", NULL};
  proc cl = start(argv);
  const char *out = read_until(cl.out, NULL, 20);
  assert_int_equal(wait_exit(cl.pid, 10), 0);
  assert_string_equal(out, "one\ntwo words\n");
  close(cl.out);
  /* the load generator mode, briefly (1 s: its clock starts before the
   * connections are made, which takes long under TSan on a loaded box) */
  char *argv2[] = {EXDIR "tcp_client", "--port", ps, "--bench", "8", "1",
                   "--loops", "2", NULL};
  cl = start(argv2);
  out = read_until(cl.out, NULL, 30);
  assert_int_equal(wait_exit(cl.pid, 30), 0);
  assert_non_null(strstr(out, "ERRORS=0 MISMATCHES=0"));
  unsigned long msgs = 0;
  assert_int_equal(sscanf(out, "MESSAGES=%lu", &msgs), 1);
  assert_true(msgs > 0);
  close(cl.out);
  kill(srv.pid, SIGINT); /* SIGINT stops it as cleanly */
  assert_int_equal(wait_exit(srv.pid, 10), 0);
  close(srv.out);
}

/* ------------------------------------------------------------ http */

static const char OKHEAD[] = "HTTP/1.1 200 OK\r\n";
static const char BODY[] = "\r\n\r\nhello, world\n";

static void test_http_hello(void **state) {
  NEED_BUILT();
  proc pr;
  int port = start_server("http_hello", &pr);
  /* keep-alive: two requests on one connection */
  int fd = dial(port);
  for (int i = 0; i < 2; i++) {
    send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const char *r = recv_count(fd, "hello, world\n", 1);
    assert_memory_equal(r, OKHEAD, strlen(OKHEAD));
    assert_non_null(strstr(r, "Content-Length: 13\r\n"));
    assert_non_null(strstr(r, BODY));
  }
  /* pipelined: three in one packet, three answers in order */
  send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n");
  const char *r = recv_count(fd, "HTTP/1.1 ", 3);
  const char *a = strstr(r, "HTTP/1.1 200");
  const char *b = strstr(r, "HTTP/1.1 404");
  assert_non_null(a);
  assert_non_null(b);
  assert_true(a < b);
  assert_non_null(strstr(b, "HTTP/1.1 200"));
  /* split across packets */
  send_all(fd, "GET / HT");
  usleep(20000);
  send_all(fd, "TP/1.1\r\nHost: x\r\n\r");
  usleep(20000);
  send_all(fd, "\n");
  r = recv_count(fd, "hello, world\n", 1);
  assert_non_null(strstr(r, BODY));
  /* malformed: 400 and the connection is closed */
  send_all(fd, "GARBAGE\r\n\r\n");
  r = recv_count(fd, "never", 1); /* reads to EOF */
  assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
  close(fd);
  /* more malformed heads */
  const char *bad[] = {
      "GET / HTTP/1.1\r\n\r\n",                        /* no Host */
      "GET / HTTP/2.7\r\nHost: x\r\n\r\n",             /* version */
      "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",            /* double space */
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",              /* no colon */
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: z\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    fd = dial(port);
    send_all(fd, bad[i]);
    r = recv_count(fd, "never", 1);
    if (strstr(r, "HTTP/1.1 400 ") != r)
      fail_msg("request %zu: got '%s'", i, r);
    close(fd);
  }
  /* HTTP/1.0 without keep-alive: answered, then closed */
  fd = dial(port);
  send_all(fd, "GET / HTTP/1.0\r\n\r\n");
  r = recv_count(fd, "never", 1);
  assert_non_null(strstr(r, "Connection: close\r\n"));
  assert_non_null(strstr(r, BODY));
  close(fd);
  /* a keep-alive client still connected at SIGTERM */
  fd = dial(port);
  send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  recv_count(fd, "hello, world\n", 1);
  kill(pr.pid, SIGTERM);
  assert_int_equal(wait_exit(pr.pid, 10), 0);
  close(fd);
  close(pr.out);
}

/* ------------------------------------------------------------ static_server */

/* Reads one response: head and Content-Length bytes of body into a static
 * buffer; *body points at the body, *blen its length. Returns the head. */
static const char *recv_response(int fd, const char **body, size_t *blen) {
  static char buf[1 << 16];
  size_t len = 0;
  char *hend = NULL;
  while (hend == NULL) {
    assert_true(len < sizeof buf - 1);
    ssize_t n = recv(fd, buf + len, 1, 0); /* byte by byte: no over-read */
    if (n <= 0)
      fail_msg("EOF or error in a head (got '%.*s')", (int)len, buf);
    len += (size_t)n;
    buf[len] = 0;
    hend = strstr(buf, "\r\n\r\n");
  }
  const char *cl = strcasestr(buf, "\r\nContent-Length: ");
  assert_non_null(cl);
  size_t want = strtoul(cl + 18, NULL, 10);
  *body = hend + 4;
  *blen = want;
  return buf;
}

static void read_body(int fd, char *dst, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = recv(fd, dst + got, n - got, 0);
    if (k <= 0)
      fail_msg("body ended after %zu of %zu bytes", got, n);
    got += (size_t)k;
  }
}

static void write_file(const char *path, const char *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, n), (ssize_t)n);
  close(fd);
}

static void test_static_server(void **state) {
  NEED_BUILT();
  char root[] = "/tmp/corio-static-XXXXXX";
  assert_non_null(mkdtemp(root));
  char path[256];
  snprintf(path, sizeof path, "%s/hello.txt", root);
  write_file(path, "hello, file\n", 12);
  snprintf(path, sizeof path, "%s/index.html", root);
  write_file(path, "<p>index</p>\n", 13);
  snprintf(path, sizeof path, "%s/sub", root);
  assert_int_equal(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/escape", root);
  assert_int_equal(symlink("/etc/hostname", path), 0);
  /* larger than any socket buffer here: 8 MiB */
  size_t bign = 8u << 20;
  char *big = malloc(bign);
  for (size_t i = 0; i < bign; i++)
    big[i] = (char)(i * 7 + (i >> 13));
  snprintf(path, sizeof path, "%s/big.bin", root);
  write_file(path, big, bign);

  char *argv[] = {EXDIR "static_server", "--port", "0", "--loops", "2",
                  root, NULL};
  proc pr = start(argv);
  const char *l = read_until(pr.out, "\n", 20);
  const char *p = strstr(l, "127.0.0.1:");
  if (p == NULL)
    fail_msg("static_server printed no address: '%s'", l);
  int port = atoi(p + 10);

  /* keep-alive: every request below on one connection */
  int fd = dial(port);
  const char *body;
  size_t blen;
  char got[256];
  send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  const char *h = recv_response(fd, &body, &blen);
  assert_memory_equal(h, "HTTP/1.1 200 OK\r\n", 17);
  assert_non_null(strstr(h, "Content-Type: text/plain\r\n"));
  assert_int_equal(blen, 12);
  read_body(fd, got, blen);
  assert_memory_equal(got, "hello, file\n", 12);
  /* HEAD: the same head, no body (the next answer follows at once) */
  send_all(fd, "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  h = recv_response(fd, &body, &blen);
  assert_memory_equal(h, "HTTP/1.1 200 OK\r\n", 17);
  assert_int_equal(blen, 12);
  /* ranges */
  struct {
    const char *range, *status, *crange, *body;
  } rs[] = {
      {"bytes=0-4", "206", "bytes 0-4/12", "hello"},
      {"bytes=7-", "206", "bytes 7-11/12", "file\n"},
      {"bytes=-5", "206", "bytes 7-11/12", "file\n"},
      {"bytes=7-100", "206", "bytes 7-11/12", "file\n"},
      {"bytes=-100", "206", "bytes 0-11/12", "hello, file\n"},
      {"bytes=12-", "416", "bytes */12", NULL},
      {"bytes=-0", "416", "bytes */12", NULL},
      {"bytes=5-2", "200", NULL, "hello, file\n"},     /* invalid: ignored */
      {"bytes=0-1,3-4", "200", NULL, "hello, file\n"}, /* several: ignored */
  };
  for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
    char req[256];
    snprintf(req, sizeof req,
             "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: %s\r\n\r\n",
             rs[i].range);
    send_all(fd, req);
    h = recv_response(fd, &body, &blen);
    char want[64];
    snprintf(want, sizeof want, "HTTP/1.1 %s ", rs[i].status);
    if (strncmp(h, want, strlen(want)) != 0)
      fail_msg("range %s: got '%s'", rs[i].range, h);
    if (rs[i].crange) {
      snprintf(want, sizeof want, "Content-Range: %s\r\n", rs[i].crange);
      if (strstr(h, want) == NULL)
        fail_msg("range %s: no '%s' in '%s'", rs[i].range, want, h);
    }
    read_body(fd, got, blen);
    if (rs[i].body) {
      assert_int_equal(blen, strlen(rs[i].body));
      assert_memory_equal(got, rs[i].body, blen);
    }
  }
  /* missing files, escapes, other methods: answered, connection kept */
  struct {
    const char *req, *status;
  } es[] = {
      {"GET /nope.txt HTTP/1.1\r\nHost: x\r\n\r\n", "404"},
      {"GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n", "404"}, /* no index.html */
      {"GET /sub HTTP/1.1\r\nHost: x\r\n\r\n", "403"},  /* a directory */
      {"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "403"},
      {"GET /sub/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "403"},
      {"GET /escape HTTP/1.1\r\nHost: x\r\n\r\n", "403"}, /* symlink out */
      {"GET //etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "404"}, /* in root */
      {"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
      {"GET http://x/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
      {"DELETE /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", "405"},
      {"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
       "405"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "200"}, /* index.html */
  };
  for (size_t i = 0; i < sizeof es / sizeof es[0]; i++) {
    send_all(fd, es[i].req);
    h = recv_response(fd, &body, &blen);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %s ", es[i].status);
    if (strncmp(h, want, strlen(want)) != 0)
      fail_msg("request %zu: got '%s'", i, h);
    if (strcmp(es[i].status, "405") == 0)
      assert_non_null(strstr(h, "Allow: GET, HEAD\r\n"));
    read_body(fd, got, blen);
  }
  assert_memory_equal(got, "<p>index</p>\n", 13);
  /* pipelined: three requests in one packet, answered in order */
  send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
  const char *codes[] = {"200", "404", "200"};
  for (int i = 0; i < 3; i++) {
    h = recv_response(fd, &body, &blen);
    assert_memory_equal(h + 9, codes[i], 3);
    read_body(fd, got, blen);
  }
  assert_memory_equal(got, "<p>index</p>\n", 13);
  /* a file larger than the socket buffers, read slowly, then another
   * request on the same connection */
  /* Smaller than the file, but above loopback's 64 KiB segment: a buffer
   * below one segment never opens a full window, and the sender falls back
   * to zero-window probes with back-off (minutes for 8 MiB). */
  int small = 256 << 10;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  send_all(fd, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  h = recv_response(fd, &body, &blen);
  assert_memory_equal(h, "HTTP/1.1 200 OK\r\n", 17);
  assert_int_equal(blen, bign);
  char *rb = malloc(bign);
  size_t off = 0;
  double t0 = now();
  while (off < bign) {
    size_t chunk = off < (1u << 20) ? 16384 : bign - off; /* slow, then all */
    read_body(fd, rb + off, chunk);
    off += chunk;
    if (off < (1u << 20))
      usleep(2000);
  }
  assert_true(now() - t0 > 0.05);
  assert_memory_equal(rb, big, bign);
  /* a range from its middle */
  send_all(fd, "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=5000000-5000099"
               "\r\n\r\n");
  h = recv_response(fd, &body, &blen);
  assert_memory_equal(h, "HTTP/1.1 206 ", 13);
  assert_int_equal(blen, 100);
  read_body(fd, rb, 100);
  assert_memory_equal(rb, big + 5000000, 100);
  /* replaced on disk: the new bytes within a few seconds */
  snprintf(path, sizeof path, "%s/hello.txt.new", root);
  write_file(path, "HELLO, FILE!\n", 13);
  char path2[256];
  snprintf(path2, sizeof path2, "%s/hello.txt", root);
  assert_int_equal(rename(path, path2), 0);
  bool fresh = false;
  for (double end = now() + 5; !fresh && now() < end;) {
    send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    h = recv_response(fd, &body, &blen);
    read_body(fd, got, blen);
    fresh = blen == 13 && memcmp(got, "HELLO, FILE!\n", 13) == 0;
    if (!fresh) {
      assert_int_equal(blen, 12); /* the old file, whole */
      usleep(100000);
    }
  }
  assert_true(fresh);
  close(fd);
  /* a head above the limit: 431 and closed */
  fd = dial(port);
  char *huge = malloc(16384);
  memset(huge, 'a', 16383);
  huge[16383] = 0;
  memcpy(huge, "GET / HTTP/1.1\r\nX-Big: ", 23);
  send(fd, huge, 16383, MSG_NOSIGNAL);
  const char *r = recv_count(fd, "never", 1);
  assert_non_null(strstr(r, "HTTP/1.1 431 "));
  close(fd);
  free(huge);
  /* HTTP/1.0: closed after the answer */
  fd = dial(port);
  send_all(fd, "GET /hello.txt HTTP/1.0\r\n\r\n");
  r = recv_count(fd, "never", 1);
  assert_non_null(strstr(r, "Connection: close\r\n"));
  assert_non_null(strstr(r, "HELLO, FILE!\n"));
  close(fd);
  /* malformed: 400 and closed */
  fd = dial(port);
  send_all(fd, "GARBAGE\r\n\r\n");
  r = recv_count(fd, "never", 1);
  assert_non_null(strstr(r, "HTTP/1.1 400 "));
  close(fd);
  /* a client mid-download at SIGTERM */
  fd = dial(port);
  send_all(fd, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  recv_response(fd, &body, &blen);
  kill(pr.pid, SIGTERM);
  assert_int_equal(wait_exit(pr.pid, 10), 0);
  close(fd);
  close(pr.out);
  free(rb);
  free(big);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ subprocess */

static void test_subprocess_example(void **state) {
  NEED_BUILT();
  char *argv[] = {EXDIR "subprocess", NULL};
  proc pr = start(argv);
  const char *out = read_until(pr.out, NULL, 20);
  assert_int_equal(wait_exit(pr.pid, 20), 0);
  assert_non_null(strstr(out, "sorted: apple\nsorted: fig\nsorted: pear\n"));
  assert_non_null(strstr(out, "sh exited with 3\n"));
  assert_non_null(strstr(out, "sleep ended with -9"));
  close(pr.out);
}

/* ------------------------------------------------------------ workers, pipeline */

/* Plain threads into the runtime: every answer arrived (the sum of k*k for
 * k < 100). */
static void test_workers_example(void **state) {
  NEED_BUILT();
  char *argv[] = {EXDIR "workers", NULL};
  proc pr = start(argv);
  const char *out = read_until(pr.out, "total", 30);
  assert_int_equal(wait_exit(pr.pid, 30), 0);
  assert_non_null(strstr(out, "worker 3: 25 answers"));
  assert_non_null(strstr(out, "total 328350"));
  close(pr.out);
}

/* Queue, semaphore, lock and task group on one loop: every item through,
 * once. */
static void test_pipeline_example(void **state) {
  NEED_BUILT();
  char *argv[] = {EXDIR "pipeline", NULL};
  proc pr = start(argv);
  const char *out = read_until(pr.out, "expected", 30);
  assert_int_equal(wait_exit(pr.pid, 30), 0);
  assert_non_null(
      strstr(out, "200 items through 3 consumers, total 20100 (expected 20100)"));
  close(pr.out);
}

/* ------------------------------------------------------------ https */

/* The TLS client against http_hello speaking HTTPS: verified with the
 * certificate as its CA, refused without it. */
static void test_https_get_example(void **state) {
  NEED_BUILT();
  char dir[] = "/tmp/corio_ex_tls_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cert[64], key[64];
  snprintf(cert, sizeof cert, "%s/c.pem", dir);
  snprintf(key, sizeof key, "%s/k.pem", dir);
  make_cert(cert, key);
  char *sargv[] = {EXDIR "http_hello", "--port", "0", "--loops", "1",
                   "--cert", cert, "--key", key, NULL};
  proc srv = start(sargv);
  const char *l = read_until(srv.out, "\n", 20);
  const char *p = strstr(l, "127.0.0.1:");
  assert_non_null(p);
  char port[16];
  snprintf(port, sizeof port, "%d", atoi(p + 10));
  char *cargv[] = {EXDIR "https_get", "--ca", cert, "localhost", port, "/",
                   NULL};
  proc cl = start(cargv);
  const char *out = read_until(cl.out, "hello, world", 20);
  assert_int_equal(wait_exit(cl.pid, 20), 0);
  assert_non_null(strstr(out, "TLSv1.3"));
  assert_non_null(strstr(out, "verified=1"));
  assert_non_null(strstr(out, "HTTP/1.1 200"));
  assert_non_null(strstr(out, "hello, world"));
  close(cl.out);
  /* Not trusted: the system store does not know this certificate. */
  char *bargv[] = {EXDIR "https_get", "localhost", port, "/", NULL};
  proc bad = start(bargv);
  (void)read_until(bad.out, NULL, 20);
  assert_int_equal(wait_exit(bad.pid, 20), 1);
  close(bad.out);
  kill(srv.pid, SIGTERM);
  assert_int_equal(wait_exit(srv.pid, 10), 0);
  close(srv.out);
  unlink(cert);
  unlink(key);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_https_get_example),
      cmocka_unit_test(test_workers_example),
      cmocka_unit_test(test_pipeline_example),
      cmocka_unit_test(test_echo_server),
      cmocka_unit_test(test_tcp_client),
      cmocka_unit_test(test_http_hello),
      cmocka_unit_test(test_static_server),
      cmocka_unit_test(test_subprocess_example),
  };
  return cmocka_run_group_tests(tests, build_examples, NULL);
}
