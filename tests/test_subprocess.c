/* SPDX-License-Identifier: MIT */
/* Subprocesses (pipes both ways, exit codes, kill, wait time-out, the
 * resource warning, from a runtime loop's thread) and UDP datagrams
 * (request/response, recv time-out). */
#include "testutil.h"

#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ pipes */

typedef struct {
  cor_stream_t *in;
  size_t n;
} feeder;

static int feed(void *arg, void **res) {
  feeder *f = arg;
  static char chunk[8192];
  for (size_t i = 0; i < sizeof chunk; i++)
    chunk[i] = (char)('a' + i % 26);
  size_t sent = 0;
  while (sent < f->n) {
    size_t k = f->n - sent < sizeof chunk ? f->n - sent : sizeof chunk;
    int rc = cor_stream_write(f->in, chunk, k);
    if (rc == 0)
      rc = cor_stream_drain(f->in);
    if (rc != 0)
      return rc;
    sent += k;
  }
  cor_stream_close(f->in);
  return cor_stream_wait_closed(f->in);
}

static int cat_main(void *arg, void **res) {
  const char *argv[] = {"cat", NULL};
  cor_subprocess_opts o = {.stdin_mode = COR_STDIO_PIPE,
                           .stdout_mode = COR_STDIO_PIPE};
  cor_process_t *p;
  assert_int_equal(cor_subprocess_exec(argv, &o, &p), 0);
  assert_true(cor_process_pid(p) > 0);
  assert_null(cor_process_stderr(p));
  /* more than the pipes hold, both ways at once */
  feeder f = {cor_process_stdin(p), (size_t)test_scale(4 << 20, 1 << 20)};
  cor_task_t *t = cor_create_task(NULL, cor_coro(feed, &f), "feeder");
  size_t got = 0;
  bool same = true;
  static char buf[16384];
  for (;;) {
    ssize_t n = cor_stream_read(cor_process_stdout(p), buf, sizeof buf);
    assert_true(n >= 0);
    if (n == 0)
      break;
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != (char)('a' + (got + (size_t)i) % 8192 % 26))
        same = false;
    got += (size_t)n;
  }
  assert_int_equal(cor_await_task(t, NULL), 0);
  cor_release(t);
  assert_int_equal(got, f.n);
  assert_true(same);
  int st = -1;
  assert_int_equal(cor_process_wait(p, 5, &st), 0);
  assert_int_equal(st, 0);
  cor_process_free(p);
  return 0;
}

static void test_pipes_both_ways(void **state) {
  assert_int_equal(cor_run(cat_main, NULL, NULL), 0);
}

/* ------------------------------------------------------------ codes */

static int codes_main(void *arg, void **res) {
  cor_process_t *p;
  int st = 0;
  const char *exit3[] = {"sh", "-c", "exit 3", NULL};
  assert_int_equal(cor_subprocess_exec(exit3, NULL, &p), 0);
  assert_int_equal(cor_process_wait(p, 5, &st), 0);
  assert_int_equal(st, 3);
  assert_int_equal(cor_process_wait(p, 5, &st), 0); /* again: at once */
  assert_int_equal(cor_process_kill(p, SIGTERM), -ESRCH);
  cor_process_free(p);

  /* stderr into stdout; stdin from /dev/null */
  const char *both[] = {"sh", "-c", "cat; echo out; echo err >&2", NULL};
  cor_subprocess_opts o = {.stdin_mode = COR_STDIO_DEVNULL,
                           .stdout_mode = COR_STDIO_PIPE,
                           .stderr_mode = COR_STDIO_STDOUT};
  assert_int_equal(cor_subprocess_exec(both, &o, &p), 0);
  char buf[64];
  size_t len = 0;
  for (;;) {
    ssize_t n = cor_stream_read(cor_process_stdout(p), buf + len,
                                sizeof buf - 1 - len);
    assert_true(n >= 0);
    if (n == 0)
      break;
    len += (size_t)n;
  }
  buf[len] = 0;
  assert_string_equal(buf, "out\nerr\n");
  assert_int_equal(cor_process_wait(p, 5, &st), 0);
  assert_int_equal(st, 0);
  cor_process_free(p);

  /* separate stderr pipe */
  o.stderr_mode = COR_STDIO_PIPE;
  assert_int_equal(cor_subprocess_exec(both, &o, &p), 0);
  assert_int_equal(cor_stream_readline(cor_process_stderr(p), buf, sizeof buf),
                   4);
  assert_memory_equal(buf, "err\n", 4);
  assert_int_equal(cor_stream_readline(cor_process_stdout(p), buf, sizeof buf),
                   4);
  assert_memory_equal(buf, "out\n", 4);
  assert_int_equal(cor_process_wait(p, 5, &st), 0);
  cor_process_free(p);

  /* no such program: reported by exec */
  const char *none[] = {"/nonexistent/program", NULL};
  assert_int_equal(cor_subprocess_exec(none, NULL, &p), -ENOENT);
  const char *none2[] = {"no-such-program-corio", NULL};
  assert_int_equal(cor_subprocess_exec(none2, NULL, &p), -ENOENT);
  return 0;
}

static void test_exit_codes(void **state) {
  assert_int_equal(cor_run(codes_main, NULL, NULL), 0);
}

/* ------------------------------------------------------------ kill */

static int warned;
static void sink(void *arg, int level, const char *logger, const char *msg) {
  if (level == COR_LOG_WARNING && strstr(msg, "still running"))
    warned++;
}

static int kill_main(void *arg, void **res) {
  const char *argv[] = {"sleep", "10", NULL};
  cor_process_t *p;
  assert_int_equal(cor_subprocess_exec(argv, NULL, &p), 0);
  int st = 0;
  assert_int_equal(cor_process_wait(p, 0.05, &st), -ETIMEDOUT);
  assert_int_equal(cor_process_kill(p, SIGKILL), 0);
  assert_int_equal(cor_process_wait(p, 5, &st), 0);
  assert_int_equal(st, -SIGKILL);
  cor_process_free(p);

  /* freed while running: one WARNING; the child is ours to reap here */
  assert_int_equal(cor_subprocess_exec(argv, NULL, &p), 0);
  int pid = cor_process_pid(p);
  cor_log_set_sink(sink, NULL);
  cor_process_free(p);
  cor_log_set_sink(NULL, NULL);
  assert_int_equal(warned, 1);
  kill(pid, SIGKILL);
  assert_int_equal(waitpid(pid, NULL, 0), pid);
  return 0;
}

static void test_kill_and_warning(void **state) {
  assert_int_equal(cor_run(kill_main, NULL, NULL), 0);
}

/* ------------------------------------------------------------ runtime */

static int rt_child(void *arg, void **res) {
  const char *argv[] = {"sh", "-c", "read x; echo got:$x; exit 7", NULL};
  cor_subprocess_opts o = {.stdin_mode = COR_STDIO_PIPE,
                           .stdout_mode = COR_STDIO_PIPE};
  cor_process_t *p;
  int rc = cor_subprocess_exec(argv, &o, &p);
  if (rc != 0)
    return rc;
  cor_stream_write(cor_process_stdin(p), "hi\n", 3);
  char buf[32];
  ssize_t n = cor_stream_readline(cor_process_stdout(p), buf, sizeof buf);
  int st = -1;
  rc = cor_process_wait(p, 5, &st);
  cor_process_free(p);
  if (rc != 0)
    return rc;
  if (n != 7 || memcmp(buf, "got:hi\n", 7) != 0 || st != 7)
    return -EPROTO;
  return 0;
}

static void test_from_runtime_loop(void **state) {
  cor_runtime_opts ro = {.nloops = 2};
  cor_runtime_t *rt = cor_runtime_new(&ro);
  assert_non_null(rt);
  for (unsigned i = 0; i < 2; i++) {
    cor_cfuture_t *cf =
        cor_runtime_spawn_on(rt, i, cor_coro(rt_child, NULL), "child");
    assert_non_null(cf);
    assert_int_equal(cor_cfuture_result(cf, 10, NULL), 0);
    cor_release(cf);
  }
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  cor_release(rt);
}

/* ------------------------------------------------------------ datagrams */

static int udp_server(void *arg, void **res) {
  cor_datagram_t *d = arg;
  for (int i = 0; i < 3; i++) {
    char buf[512];
    struct sockaddr_storage from;
    unsigned fl = sizeof from;
    ssize_t n = cor_datagram_recv(d, buf, sizeof buf, (struct sockaddr *)&from,
                                  &fl, 5);
    if (n < 0)
      return (int)n;
    buf[0] = 'R';
    int rc = cor_datagram_send(d, buf, (size_t)n, (struct sockaddr *)&from, fl);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int udp_main(void *arg, void **res) {
  cor_datagram_opts so = {.local_host = "127.0.0.1", .local_port = 0};
  cor_datagram_t *srv = cor_open_datagram(NULL, &so);
  assert_non_null(srv);
  int port = cor_datagram_port(srv);
  assert_true(port > 0);
  cor_task_t *t = cor_create_task(NULL, cor_coro(udp_server, srv), "udp");
  cor_datagram_opts co = {.remote_host = "127.0.0.1", .remote_port = port};
  cor_datagram_t *cl = cor_open_datagram(NULL, &co);
  assert_non_null(cl);
  for (int i = 0; i < 3; i++) {
    char q[32], a[32];
    int len = snprintf(q, sizeof q, "Query %d", i);
    assert_int_equal(cor_datagram_send(cl, q, (size_t)len, NULL, 0), 0);
    ssize_t n = cor_datagram_recv(cl, a, sizeof a, NULL, NULL, 5);
    assert_int_equal(n, len);
    assert_int_equal(a[0], 'R');
    assert_memory_equal(a + 1, q + 1, (size_t)len - 1);
  }
  assert_int_equal(cor_await_task(t, NULL), 0);
  cor_release(t);
  /* nobody answers: the time-out */
  char a[8];
  assert_int_equal(cor_datagram_recv(cl, a, sizeof a, NULL, NULL, 0.05),
                   -ETIMEDOUT);
  cor_datagram_close(cl);
  cor_datagram_close(srv);
  cor_datagram_free(cl);
  cor_datagram_free(srv);
  return 0;
}

static void test_datagram(void **state) {
  assert_int_equal(cor_run(udp_main, NULL, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipes_both_ways),
      cmocka_unit_test(test_exit_codes),
      cmocka_unit_test(test_kill_and_warning),
      cmocka_unit_test(test_from_runtime_loop),
      cmocka_unit_test(test_datagram),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
