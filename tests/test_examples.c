/* SPDX-License-Identifier: MIT */
/* The examples, built (`make examples`, in this suite's flavour) and run:
 * each server is started, talked to over loopback, sent SIGTERM (or
 * SIGINT) and must exit 0 within a few seconds, live clients or not. */
#include "testutil.h"

#include <corio.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_workers_example),
      cmocka_unit_test(test_pipeline_example),
      cmocka_unit_test(test_echo_server),
      cmocka_unit_test(test_tcp_client),
      cmocka_unit_test(test_http_hello),
      cmocka_unit_test(test_subprocess_example),
  };
  return cmocka_run_group_tests(tests, build_examples, NULL);
}
