/* SPDX-License-Identifier: MIT */
/* Subprocesses (pipes both ways, exit codes, kill, wait time-out, the
 * resource warning, from a runtime loop's thread; the shell form;
 * communicate with 10 MiB each way, some pipes or none, its time-out and
 * its cancellation; the cwd and envp options) and UDP datagrams
 * (request/response, recv time-out). */
#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
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
static void warn_sink(void *arg, int level, const char *logger,
                      const char *msg) {
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
  cor_log_set_sink(warn_sink, NULL);
  cor_process_free(p);
  cor_log_set_sink(sink, NULL); /* logcap's, as the group set it */
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

/* ------------------------------------------------------------ shell */

static int shell_main(void *arg, void **res) {
  cor_subprocess_opts o = {.stdout_mode = COR_STDIO_PIPE,
                           .stderr_mode = COR_STDIO_PIPE};
  cor_process_t *p;
  cor_bytes_t out = {0}, err = {0};
  int st = -1;
  /* a pipeline and an expansion: the shell's own work */
  assert_int_equal(cor_subprocess_shell("printf 'b\\na\\nc\\n' | sort | "
                                        "tr a-z A-Z; echo $((40 + 2))",
                                        &o, &p),
                   0);
  assert_true(cor_process_pid(p) > 0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &err, 10), 0);
  assert_int_equal(out.len, 9);
  assert_string_equal(out.data, "A\nB\nC\n42\n");
  assert_null(err.data);
  assert_int_equal(err.len, 0);
  assert_int_equal(cor_process_wait(p, 0, &st), 0); /* exited: at once */
  assert_int_equal(st, 0);
  cor_process_free(p);

  /* the exit status */
  assert_int_equal(cor_subprocess_shell("exit 3", NULL, &p), 0);
  assert_int_equal(cor_process_wait(p, 10, &st), 0);
  assert_int_equal(st, 3);
  cor_process_free(p);

  /* a syntax error: the shell says so on stderr and exits 2 (POSIX: > 0;
   * dash and bash both use 2) */
  assert_int_equal(cor_subprocess_shell("if then fi (", &o, &p), 0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &err, 10), 0);
  assert_int_equal(out.len, 0);
  assert_true(err.len > 0);
  assert_int_equal(strlen(err.data), err.len); /* NUL-terminated */
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  assert_int_equal(st, 2);
  cor_process_free(p);

  /* an unknown command is the shell's 127, not a spawn error */
  assert_int_equal(cor_subprocess_shell("no-such-program-corio 2>/dev/null",
                                        NULL, &p),
                   0);
  assert_int_equal(cor_process_wait(p, 10, &st), 0);
  assert_int_equal(st, 127);
  cor_process_free(p);

  /* the options are exec's: a bad mode is refused the same way */
  cor_subprocess_opts bad = {.stdout_mode = COR_STDIO_STDOUT};
  assert_int_equal(cor_subprocess_shell("true", &bad, &p), -EINVAL);
  assert_int_equal(cor_subprocess_shell(NULL, NULL, &p), -EINVAL);
  free(err.data);
  return 0;
}

static void test_shell(void **state) {
  recs_clear();
  assert_int_equal(cor_run(shell_main, NULL, NULL), 0);
  EXPECT_RECORDS(2, COR_LOG_ERROR, "cor_subprocess_shell(): invalid argument");
}

/* ------------------------------------------------------------ communicate */

static char *pattern(size_t n) {
  char *b = malloc(n);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++)
    b[i] = (char)(i * 7 + i / 4096);
  return b;
}

static const cor_subprocess_opts all_pipes = {.stdin_mode = COR_STDIO_PIPE,
                                              .stdout_mode = COR_STDIO_PIPE,
                                              .stderr_mode = COR_STDIO_PIPE};

static int big_main(void *arg, void **res) {
  size_t n = (size_t)test_scale(10 << 20, 2 << 20);
  char *in = pattern(n);
  cor_process_t *p;
  cor_bytes_t out = {0}, err = {0};
  int st = -1;
  /* 10 MiB each way through cat: far beyond what the pipes hold, so cat
   * blocks on stdout unless it is read while stdin is still written */
  const char *cat[] = {"cat", NULL};
  assert_int_equal(cor_subprocess_exec(cat, &all_pipes, &p), 0);
  assert_int_equal(cor_process_communicate(p, in, n, &out, &err, 60), 0);
  assert_int_equal(out.len, n);
  assert_memory_equal(out.data, in, n);
  assert_null(err.data);
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  assert_int_equal(st, 0);
  cor_process_free(p);

  /* a child that fills stderr (and stdout) before it reads any input */
  char cmd[160];
  size_t en = (size_t)test_scale(4 << 20, 1 << 20);
  snprintf(cmd, sizeof cmd,
           "head -c %zu /dev/zero >&2; head -c %zu /dev/zero; exec cat", en,
           en);
  assert_int_equal(cor_subprocess_shell(cmd, &all_pipes, &p), 0);
  assert_int_equal(cor_process_communicate(p, in, n, &out, &err, 60), 0);
  assert_int_equal(err.len, en);
  for (size_t i = 0; i < en; i++)
    if (((char *)err.data)[i] != 0)
      fail_msg("stderr byte %zu is not 0", i);
  assert_int_equal(out.len, en + n);
  for (size_t i = 0; i < en; i++)
    if (((char *)out.data)[i] != 0)
      fail_msg("stdout byte %zu is not 0", i);
  assert_memory_equal((char *)out.data + en, in, n);
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  assert_int_equal(st, 0);
  cor_process_free(p);
  free(out.data);
  free(err.data);
  free(in);
  return 0;
}

static void test_communicate_10mib(void **state) {
  assert_int_equal(cor_run(big_main, NULL, NULL), 0);
}

static int some_main(void *arg, void **res) {
  cor_process_t *p;
  cor_bytes_t out = {0}, err = {0};
  int st = -1;
  /* in only: the child checks what it got */
  cor_subprocess_opts in_only = {.stdin_mode = COR_STDIO_PIPE};
  assert_int_equal(
      cor_subprocess_shell("test \"$(cat)\" = 'hello world'", &in_only, &p), 0);
  assert_int_equal(cor_process_communicate(p, "hello world", 11, NULL, NULL, 10),
                   0);
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  assert_int_equal(st, 0);
  cor_process_free(p);

  /* out only; err given for a stderr not piped: left empty, and the
   * earlier buffer it held is freed (as cor_bytes_set) */
  cor_subprocess_opts out_only = {.stdout_mode = COR_STDIO_PIPE,
                                  .stderr_mode = COR_STDIO_DEVNULL};
  assert_int_equal(cor_bytes_set(&err, "old", 3), 0);
  assert_int_equal(cor_subprocess_shell("echo out; echo err >&2", &out_only, &p),
                   0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &err, 10), 0);
  assert_string_equal(out.data, "out\n");
  assert_null(err.data);
  assert_int_equal(err.len, 0);
  cor_process_free(p);

  /* none: no pipe at all, just the wait */
  assert_int_equal(cor_subprocess_shell("exit 5", NULL, &p), 0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &err, 10), 0);
  assert_null(out.data);
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  assert_int_equal(st, 5);
  cor_process_free(p);

  /* a piped stdout with a NULL out is still read (and dropped): a child
   * writing more than the pipe holds does not hang */
  assert_int_equal(
      cor_subprocess_shell("head -c 1000000 /dev/zero", &out_only, &p), 0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, NULL, NULL, 10), 0);
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  assert_int_equal(st, 0);
  cor_process_free(p);

  /* a child that exits without reading its input: not an error */
  size_t n = 1 << 20;
  char *in = pattern(n);
  assert_int_equal(cor_subprocess_shell("exit 4", &all_pipes, &p), 0);
  assert_int_equal(cor_process_communicate(p, in, n, &out, &err, 10), 0);
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  assert_int_equal(st, 4);
  assert_null(out.data);
  cor_process_free(p);

  /* input for a child whose stdin is not a pipe; a NaN time-out */
  assert_int_equal(cor_subprocess_shell("true", &out_only, &p), 0);
  assert_int_equal(cor_process_communicate(p, "x", 1, &out, &err, 10), -EINVAL);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &err, NAN),
                   -EINVAL);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &out, 10),
                   -EINVAL);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &err, 10), 0);
  cor_process_free(p);

  /* stdin closed by the caller first: the input cannot be sent */
  assert_int_equal(cor_subprocess_shell("cat", &all_pipes, &p), 0);
  assert_int_equal(cor_stream_close(cor_process_stdin(p)), 0);
  assert_int_equal(cor_process_communicate(p, "x", 1, &out, &err, 10),
                   COR_ECLOSED);
  /* with nothing to send it is fine: cat sees the end and exits */
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &err, 10), 0);
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  assert_int_equal(st, 0);
  cor_process_free(p);
  free(in);
  free(out.data);
  free(err.data);
  return 0;
}

static void test_communicate_some_pipes(void **state) {
  recs_clear();
  assert_int_equal(cor_run(some_main, NULL, NULL), 0);
  EXPECT_RECORDS(3, COR_LOG_ERROR, "cor_process_communicate(): invalid argument");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int timeout_main(void *arg, void **res) {
  cor_process_t *p;
  cor_bytes_t out = {0}, err = {0};
  int st = -1;
  assert_int_equal(
      cor_subprocess_shell("echo early; exec sleep 10", &all_pipes, &p), 0);
  double t0 = now_s();
  assert_int_equal(cor_process_communicate(p, "in", 2, &out, &err, 1),
                   -ETIMEDOUT);
  double took = now_s() - t0;
  assert_true(took >= 0.95 && took < 4);
  /* what was read so far is kept */
  assert_string_equal(out.data, "early\n");
  /* not killed: it still runs */
  assert_int_equal(cor_process_kill(p, 0), 0);
  assert_int_equal(cor_process_wait(p, 0, &st), -ETIMEDOUT);
  /* a time-out of 0 does not wait */
  t0 = now_s();
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, &err, 0),
                   -ETIMEDOUT);
  assert_true(now_s() - t0 < 1);
  assert_int_equal(cor_process_kill(p, SIGKILL), 0);
  assert_int_equal(cor_process_wait(p, 10, &st), 0);
  assert_int_equal(st, -SIGKILL);
  cor_process_free(p);
  free(out.data);
  free(err.data);
  return 0;
}

static void test_communicate_timeout(void **state) {
  assert_int_equal(cor_run(timeout_main, NULL, NULL), 0);
}

typedef struct {
  cor_process_t *p;
  cor_bytes_t out;
  int rc;
  bool started;
} comm_job;

static int comm_body(void *arg, void **res) {
  comm_job *j = arg;
  j->started = true;
  j->rc = cor_process_communicate(j->p, "x", 1, &j->out, NULL, COR_FOREVER);
  return j->rc;
}

static int cancel_main(void *arg, void **res) {
  comm_job j = {.rc = 1};
  /* the marker file says the child wrote its line */
  char mark[64], cmd[128];
  snprintf(mark, sizeof mark, "/tmp/corio-comm-cancel-%d", (int)getpid());
  snprintf(cmd, sizeof cmd, "echo early; : > %s; exec sleep 10", mark);
  assert_int_equal(cor_subprocess_shell(cmd, &all_pipes, &j.p), 0);
  cor_task_t *t = cor_create_task(NULL, cor_coro(comm_body, &j), "comm");
  assert_non_null(t);
  for (int i = 0; i < 1000 && (access(mark, F_OK) != 0 || !j.started); i++)
    assert_int_equal(cor_sleep(0.01), 0);
  assert_int_equal(unlink(mark), 0);
  /* the line is in the pipe: let the reader take it, then only the cancel
   * can end the call */
  assert_int_equal(cor_sleep(0.1), 0);
  assert_int_equal(j.rc, 1);
  assert_int_equal(cor_task_cancel(t, NULL), 0);
  assert_int_equal(cor_await_task(t, NULL), -ECANCELED);
  assert_true(cor_future_cancelled(cor_task_future(t)));
  cor_release(t);
  assert_int_equal(j.rc, -ECANCELED);
  assert_string_equal(j.out.data, "early\n");
  int st = -1;
  assert_int_equal(cor_process_wait(j.p, 0, &st), -ETIMEDOUT); /* running */
  assert_int_equal(cor_process_kill(j.p, SIGKILL), 0);
  assert_int_equal(cor_process_wait(j.p, 10, &st), 0);
  assert_int_equal(st, -SIGKILL);
  cor_process_free(j.p);
  free(j.out.data);
  return 0;
}

static void test_communicate_cancel(void **state) {
  assert_int_equal(cor_run(cancel_main, NULL, NULL), 0);
}

/* ------------------------------------------------------------ cwd, envp */

static int cwd_env_main(void *arg, void **res) {
  cor_process_t *p;
  cor_bytes_t out = {0};
  int st = -1;
  char tmpl[] = "/tmp/corio-cwd-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  char *real = realpath(tmpl, NULL);
  assert_non_null(real);
  char want[PATH_MAX + 2];
  snprintf(want, sizeof want, "%s\n", real);

  /* cwd, for exec and for the shell */
  cor_subprocess_opts o = {.stdout_mode = COR_STDIO_PIPE, .cwd = tmpl};
  const char *pwd[] = {"pwd", "-P", NULL};
  assert_int_equal(cor_subprocess_exec(pwd, &o, &p), 0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, NULL, 10), 0);
  assert_string_equal(out.data, want);
  cor_process_free(p);
  assert_int_equal(cor_subprocess_shell("pwd -P", &o, &p), 0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, NULL, 10), 0);
  assert_string_equal(out.data, want);
  cor_process_free(p);
  /* without cwd: the parent's */
  char here[PATH_MAX];
  assert_non_null(getcwd(here, sizeof here));
  snprintf(want, sizeof want, "%s\n", here);
  o.cwd = NULL;
  assert_int_equal(cor_subprocess_exec(pwd, &o, &p), 0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, NULL, 10), 0);
  assert_string_equal(out.data, want);
  cor_process_free(p);
  /* a cwd that does not exist fails the spawn */
  o.cwd = "/nonexistent/corio-dir";
  assert_int_equal(cor_subprocess_exec(pwd, &o, &p), -ENOENT);
  o.cwd = NULL;
  assert_int_equal(rmdir(tmpl), 0);
  free(real);

  /* envp: the child sees exactly it, not the parent's environment */
  assert_int_equal(setenv("COR_PARENT_VAR", "parent", 1), 0);
  const char *env[] = {"env", NULL};
  char *const envp[] = {"COR_TEST_VAR=hello world", "COR_OTHER=2", NULL};
  o.envp = envp;
  assert_int_equal(cor_subprocess_exec(env, &o, &p), 0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, NULL, 10), 0);
  assert_string_equal(out.data, "COR_TEST_VAR=hello world\nCOR_OTHER=2\n");
  cor_process_free(p);
  assert_int_equal(
      cor_subprocess_shell("echo \"$COR_TEST_VAR/${COR_PARENT_VAR-unset}\"",
                           &o, &p),
      0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, NULL, 10), 0);
  assert_string_equal(out.data, "hello world/unset\n");
  cor_process_wait(p, 0, &st);
  assert_int_equal(st, 0);
  cor_process_free(p);
  /* without envp: the parent's */
  o.envp = NULL;
  assert_int_equal(
      cor_subprocess_shell("echo \"${COR_TEST_VAR-unset}/$COR_PARENT_VAR\"",
                           &o, &p),
      0);
  assert_int_equal(cor_process_communicate(p, NULL, 0, &out, NULL, 10), 0);
  assert_string_equal(out.data, "unset/parent\n");
  cor_process_free(p);
  unsetenv("COR_PARENT_VAR");
  free(out.data);
  return 0;
}

static void test_cwd_and_envp(void **state) {
  assert_int_equal(cor_run(cwd_env_main, NULL, NULL), 0);
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
      cmocka_unit_test(test_shell),
      cmocka_unit_test(test_communicate_10mib),
      cmocka_unit_test(test_communicate_some_pipes),
      cmocka_unit_test(test_communicate_timeout),
      cmocka_unit_test(test_communicate_cancel),
      cmocka_unit_test(test_cwd_and_envp),
      cmocka_unit_test(test_datagram),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
