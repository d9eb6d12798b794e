/* SPDX-License-Identifier: MIT */
/* Resource warnings (asyncio's ResourceWarning) and the reports at exit.
 *
 * A stream, server or executor freed without being closed, a datagram
 * endpoint still open when its loop goes, and, at exit, whatever was never
 * released: coroutines made outside any loop and never consumed, loops not
 * closed, and the streams, endpoints, servers and executors still open.
 * Each test checks the records the "corio" logger received (level, text,
 * and this file's name and line where a site is shown), in debug mode and
 * out of it. The reports at exit run in a child: this binary started
 * again with the scenario's name, its stderr read back. */
#include "testutil.h"

#include <corio.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define F "tests/test_resource.c"

/* ------------------------------------------------------------ capture */

#include "logcap.h"

/* "created at tests/test_resource.c:123>" */
static const char *created(int line) {
  char *b = at_buf[at_i++ & 7];
  snprintf(b, 128, " created at " F ":%d>", line);
  return b;
}

/* The debug-only parts of a report. */
static void expect_no_debug_parts(void) {
  EXPECT_NONE("created at");
  EXPECT_NONE("Object allocated at");
}

/* A loopback listener connections complete against (through its backlog,
 * nobody accepts). */
static int listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0);
  socklen_t l = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return fd;
}

static bool fd_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

/* ------------------------------------------------------------ streams */

static int conn_line;
static int lport;
static cor_exception_context hctx;
static char hmsg[4096], hrepr[1024], hfile[256];
static int handled;
static void handler(cor_loop_t *loop, const cor_exception_context *ctx,
                    void *arg) {
  (void)loop;
  (void)arg;
  handled++;
  hctx = *ctx;
  snprintf(hmsg, sizeof hmsg, "%s", ctx->message ? ctx->message : "");
  snprintf(hrepr, sizeof hrepr, "%s", ctx->object_repr ? ctx->object_repr : "");
  snprintf(hfile, sizeof hfile, "%s", ctx->file ? ctx->file : "");
  /* and the default one too, so the test can read the record */
  cor_loop_default_exception_handler(loop, ctx);
}

static int stream_main(void *arg, void **r) {
  (void)r;
  char port[16];
  snprintf(port, sizeof port, "%d", lport);
  cor_stream_t *s = NULL;
  conn_line = __LINE__; int rc = cor_open_connection("127.0.0.1", port, &s);
  assert_int_equal(rc, 0);
  int fd = cor_stream_fd(s);
  if (arg) /* a handler on the loop: it gets the report */
    cor_loop_set_exception_handler(cor_get_running_loop(), handler, NULL);
  cor_stream_free(s); /* never closed */
  assert_false(fd_open(fd)); /* closed all the same */
  return 0;
}

static void unclosed_stream(bool debug, bool with_handler) {
  int lfd = listener(&lport);
  cor_run_opts o = {.debug = debug};
  handled = 0;
  assert_int_equal(
      cor_run(stream_main, with_handler ? (void *)1 : NULL, &o), 0);
  close(lfd);
  char want[128];
  snprintf(want, sizeof want, "unclosed stream <Stream fd=");
  char peer[64];
  snprintf(peer, sizeof peer, " peer=127.0.0.1:%d local=127.0.0.1:", lport);
  EXPECT(COR_LOG_WARNING, want, peer, " buffered=0 write_buffered=0");
  if (debug) {
    EXPECT(COR_LOG_WARNING, "unclosed stream <Stream fd=", created(conn_line),
           "\nObject allocated at (most recent call last):\n");
    EXPECT(COR_LOG_WARNING, "unclosed stream",
           frame(conn_line, "stream_main"), NULL);
  } else {
    expect_no_debug_parts();
  }
  if (with_handler) {
    assert_int_equal(handled, 1);
    assert_int_equal(hctx.level, COR_LOG_WARNING);
    assert_non_null(strstr(hmsg, "unclosed stream <Stream fd="));
    assert_true(strncmp(hrepr, "<Stream fd=", 11) == 0);
    if (debug) { /* the site, for handlers */
      assert_string_equal(hfile, F);
      assert_int_equal(hctx.line, conn_line);
    } else {
      assert_string_equal(hfile, "");
    }
  }
}

static void test_unclosed_stream(void **state) {
  (void)state;
  unclosed_stream(false, false);
  nrec = 0;
  unclosed_stream(false, true);
}
static void test_unclosed_stream_debug(void **state) {
  (void)state;
  unclosed_stream(true, false);
  nrec = 0;
  unclosed_stream(true, true);
}

/* A pipe wrapped with cor_stream_from_fd, freed unclosed; then one closed
 * first, which says nothing. */
/* noinline: the backtrace names this function */
static __attribute__((noinline)) void stream_from_fd(bool debug) {
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *l = cor_loop_new(&o);
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  int line = __LINE__; cor_stream_t *s = cor_stream_from_fd(l, p[0]);
  assert_non_null(s);
  cor_stream_free(s);
  char want[128];
  snprintf(want, sizeof want, "unclosed stream <Stream fd=%d pipe ", p[0]);
  EXPECT(COR_LOG_WARNING, want, "buffered=0 write_buffered=0", NULL);
  if (debug)
    EXPECT(COR_LOG_WARNING, want, created(line),
           frame(line, "stream_from_fd"));
  else
    expect_no_debug_parts();
  nrec = 0;
  s = cor_stream_from_fd(l, p[1]);
  assert_int_equal(cor_stream_close(s), 0);
  cor_stream_free(s);
  assert_int_equal(nrec, 0);
  cor_loop_close(l);
  cor_release(l);
}

static void test_stream_from_fd(void **state) {
  (void)state;
  stream_from_fd(false);
  nrec = 0;
  stream_from_fd(true);
}

/* ------------------------------------------------------------ servers */

static int idle_handler(void *arg, void **r) {
  (void)arg;
  (void)r;
  return 0;
}

static int srv_line;
static int server_main(void *arg, void **r) {
  (void)arg;
  (void)r;
  cor_server_opts o = {0};
  srv_line = __LINE__; cor_server_t *srv = cor_start_server(NULL, &o, idle_handler);
  assert_non_null(srv);
  *(int *)arg = cor_server_port(srv);
  cor_server_free(srv); /* never closed */
  /* A closed one says nothing. */
  srv = cor_start_server(NULL, &o, idle_handler);
  assert_int_equal(cor_server_close(srv), 0);
  cor_server_free(srv);
  return 0;
}

static void unclosed_server(bool debug) {
  cor_run_opts o = {.debug = debug};
  int port = 0;
  assert_int_equal(cor_run(server_main, &port, &o), 0);
  char want[128];
  snprintf(want, sizeof want,
           "unclosed server <Server sockets=[127.0.0.1:%d] connections=0", port);
  EXPECT(COR_LOG_WARNING, want, NULL, NULL);
  if (debug)
    EXPECT(COR_LOG_WARNING, want, created(srv_line),
           frame(srv_line, "server_main"));
  else
    expect_no_debug_parts();
  int n = 0;
  for (int i = 0; i < nrec; i++)
    n += strstr(recs[i].msg, "unclosed server") != NULL;
  assert_int_equal(n, 1);
}

static void test_unclosed_server(void **state) {
  (void)state;
  unclosed_server(false);
  nrec = 0;
  unclosed_server(true);
}

/* A runtime server: one listener per loop, all on one port. */
static void test_unclosed_runtime_server(void **state) {
  (void)state;
  cor_runtime_opts ro = {.nloops = 2, .pin = -1};
  cor_runtime_t *rt = cor_runtime_new(&ro);
  assert_non_null(rt);
  cor_server_opts o = {0};
  cor_server_t *srv = cor_runtime_start_server(rt, &o, idle_handler);
  assert_non_null(srv);
  int port = cor_server_port(srv);
  cor_server_free(srv);
  char want[128];
  snprintf(want, sizeof want,
           "unclosed server <Server sockets=[127.0.0.1:%d, 127.0.0.1:%d] "
           "connections=0>",
           port, port);
  EXPECT(COR_LOG_WARNING, want, NULL, NULL);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  cor_release(rt);
}

/* ------------------------------------------------------------ datagrams */

/* An endpoint is freed by its close, so the trap is a loop that goes with
 * the endpoint still open: that is a child scenario (the endpoint is then
 * leaked). Here: closing says nothing. */
static void test_datagram_closed_quiet(void **state) {
  (void)state;
  cor_loop_t *l = cor_loop_new(NULL);
  cor_datagram_opts o = {.local_host = "127.0.0.1",
                         .remote_host = "127.0.0.1",
                         .remote_port = 9};
  cor_datagram_t *d = cor_open_datagram(l, &o);
  assert_non_null(d);
  cor_datagram_close(d);
  cor_datagram_free(d);
  cor_loop_close(l);
  cor_release(l);
  assert_int_equal(nrec, 0);
}

/* ------------------------------------------------------------ executors */

static int slow_job(void *arg, void **r) {
  (void)arg;
  struct timespec ts = {0, 50 * 1000000};
  nanosleep(&ts, NULL);
  *r = (void *)7;
  return 0;
}

static __attribute__((noinline)) void unclosed_executor(bool debug) {
  if (debug) /* made on no loop: debug mode is CORIO_DEBUG's */
    setenv("CORIO_DEBUG", "1", 1);
  cor_thread_pool_opts o = {.max_workers = 2, .name_prefix = "tp-test"};
  int line = __LINE__; cor_executor_t *ex = cor_thread_pool_new(&o);
  assert_non_null(ex);
  /* A job still running when the last reference goes: it finishes, and
   * the workers leave (nothing hangs). */
  cor_cfuture_t *cf = cor_executor_submit(ex, slow_job, NULL);
  assert_non_null(cf);
  cor_release(ex);
  EXPECT(COR_LOG_WARNING,
         "unclosed executor <ThreadPoolExecutor max_workers=2 threads=",
         "name='tp-test'", NULL);
  if (debug)
    EXPECT(COR_LOG_WARNING, "unclosed executor <ThreadPoolExecutor",
           created(line), frame(line, "unclosed_executor"));
  else
    expect_no_debug_parts();
  void *res = NULL;
  assert_int_equal(cor_cfuture_result(cf, 10, &res), 0);
  assert_ptr_equal(res, (void *)7);
  cor_release(cf);

  nrec = 0;
  cor_process_pool_opts po = {.max_workers = 1};
  line = __LINE__; ex = cor_process_pool_new(&po);
  assert_non_null(ex);
  cor_release(ex);
  EXPECT(COR_LOG_WARNING,
         "unclosed executor <ProcessPoolExecutor max_workers=1 queued=0 "
         "job_timeout=0",
         NULL, NULL);
  if (debug)
    EXPECT(COR_LOG_WARNING, "<ProcessPoolExecutor", created(line),
           frame(line, "unclosed_executor"));
  else
    expect_no_debug_parts();

  /* Shut down first: nothing to say. */
  nrec = 0;
  ex = cor_thread_pool_new(&o);
  assert_int_equal(cor_executor_shutdown(ex, true, false), 0);
  cor_release(ex);
  assert_int_equal(nrec, 0);
  unsetenv("CORIO_DEBUG");
}

static void test_unclosed_executor(void **state) {
  (void)state;
  unclosed_executor(false);
  nrec = 0;
  unclosed_executor(true);
}

/* Made inside a debug loop's task: that loop's mode decides. */
static int exec_line;
static int exec_main(void *arg, void **r) {
  (void)arg;
  (void)r;
  exec_line = __LINE__; cor_executor_t *ex = cor_thread_pool_new(NULL);
  cor_release(ex);
  return 0;
}
static void test_unclosed_executor_debug_loop(void **state) {
  (void)state;
  cor_run_opts o = {.debug = true};
  assert_int_equal(cor_run(exec_main, NULL, &o), 0);
  EXPECT(COR_LOG_WARNING, "unclosed executor <ThreadPoolExecutor ",
         created(exec_line), frame(exec_line, "exec_main"));
  /* And out of debug mode: no site. */
  nrec = 0;
  assert_int_equal(cor_run(exec_main, NULL, NULL), 0);
  EXPECT(COR_LOG_WARNING, "unclosed executor <ThreadPoolExecutor ", NULL, NULL);
  expect_no_debug_parts();
}

/* The loop's default pool is the loop's: cor_run shuts it down, and it is
 * never reported. */
static int default_pool_main(void *arg, void **r) {
  (void)arg;
  (void)r;
  cor_future_t *f =
      cor_run_in_executor(cor_get_running_loop(), NULL, slow_job, NULL);
  void *res = NULL;
  int rc = cor_await(f, &res);
  cor_release(f);
  return rc;
}
static void test_default_pool_quiet(void **state) {
  (void)state;
  assert_int_equal(cor_run(default_pool_main, NULL, NULL), 0);
  assert_int_equal(nrec, 0);
}

/* ------------------------------------------------------------ at exit */

/* The child side: each scenario leaves something behind and returns from
 * main (exit runs the report). The lines the parent expects are the
 * LINE_* values below, printed by the child on stdout first. */

static int never_awaited(void *arg, void **r) {
  (void)arg;
  (void)r;
  return 0;
}
static int nothing(void *arg, void **r) {
  (void)arg;
  (void)r;
  return 0;
}

static __attribute__((noinline)) int child_coro(void) {
  /* Consumed in every way a loop-less coroutine can be: none reported. */
  cor_loop_t *l = cor_loop_new(NULL);
  cor_task_t *t = cor_create_task(l, cor_coro(nothing, NULL), NULL);
  cor_loop_run_until_complete(l, cor_task_future(t));
  cor_release(t);
  cor_coro_close(cor_coro(nothing, NULL));
  cor_runtime_opts ro = {.nloops = 1, .pin = -1};
  cor_runtime_t *rt = cor_runtime_new(&ro);
  cor_cfuture_t *cf = cor_runtime_spawn(rt, cor_coro(nothing, NULL), NULL);
  cor_cfuture_result(cf, 10, NULL);
  cor_release(cf);
  cf = cor_run_coroutine_threadsafe(cor_coro(nothing, NULL),
                                    cor_runtime_loop(rt, 0));
  cor_cfuture_result(cf, 10, NULL);
  cor_release(cf);
  cor_runtime_shutdown(rt, 5);
  cor_release(rt);
  cor_run(nothing, NULL, NULL);
  cor_loop_close(l);
  cor_release(l);
  /* And one that never is. */
  int line = __LINE__; cor_coro(never_awaited, NULL);
  printf("LINE %d\n", line);
  return 0;
}

static __attribute__((noinline)) int child_leak(void) {
  int lines[5];
  lines[0] = __LINE__; cor_loop_t *l = cor_loop_new(NULL);
  int sp[2];
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
  lines[1] = __LINE__; cor_stream_t *s = cor_stream_from_fd(l, sp[0]);
  cor_datagram_opts dopt = {.local_host = "127.0.0.1"};
  lines[2] = __LINE__; cor_datagram_t *d = cor_open_datagram(l, &dopt);
  cor_server_opts so = {0};
  lines[3] = __LINE__; cor_server_t *srv = cor_start_server(l, &so, idle_handler);
  cor_thread_pool_opts to = {.max_workers = 3};
  lines[4] = __LINE__; cor_executor_t *ex = cor_thread_pool_new(&to);
  /* Closed ones are not reported. */
  cor_stream_close(cor_stream_from_fd(l, sp[1]));
  cor_executor_t *ex2 = cor_thread_pool_new(NULL);
  cor_executor_shutdown(ex2, true, false);
  if (!s || !d || !srv || !ex)
    return 1;
  printf("LINE %d %d %d %d %d PORT %d DPORT %d\n", lines[0], lines[1],
         lines[2], lines[3], lines[4], cor_server_port(srv),
         cor_datagram_port(d));
  return 0;
}

/* Streams and endpoints of a loop freed while they are open: reported as
 * the loop goes (cor_run frees it), not at exit. */
static int leak_in_run(void *arg, void **r) {
  (void)arg;
  (void)r;
  cor_datagram_opts dopt = {.local_host = "127.0.0.1"};
  cor_datagram_t *d = cor_open_datagram(NULL, &dopt);
  printf("DPORT %d\n", cor_datagram_port(d));
  fflush(stdout);
  return 0;
}
static int child_loop_free(void) {
  cor_run(leak_in_run, NULL, NULL);
  fprintf(stderr, "RUN DONE\n");
  return 0;
}

/* exit() from a task of a running loop: that loop is this thread's, so its
 * streams are read and reported. */
static int exit_in_task(void *arg, void **r) {
  (void)arg;
  (void)r;
  int sp[2];
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
  cor_stream_from_fd(NULL, sp[0]);
  fflush(stdout);
  exit(0);
}
static int child_exit_in_task(void) { return cor_run(exit_in_task, NULL, NULL); }

/* What a parent made is not reported by its forked child. */
static int child_fork(void) {
  cor_thread_pool_new(NULL);
  cor_coro(never_awaited, NULL);
  cor_loop_new(NULL);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    cor_executor_t *mine = cor_thread_pool_new(NULL); /* the child's own */
    (void)mine;
    fprintf(stderr, "CHILD EXITS\n");
    exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  fprintf(stderr, "PARENT EXITS\n");
  return 0;
}

/* Counted objects never released (core/object.c's census): 1,000 futures
 * leaked, 500 released (not reported). cor_run's debug option or
 * CORIO_DEBUG turns the census on; without either nothing is reported. */
static __attribute__((noinline)) int leak_futures(void *arg, void **r) {
  (void)arg;
  (void)r;
  for (int i = 0; i < 500; i++)
    cor_release(cor_future_new(NULL));
  printf("LINE %d\n", __LINE__ + 2);
  for (int i = 0; i < 1000; i++)
    if (cor_future_new(NULL) == NULL) /* never released */
      return -ENOMEM;
  cor_lock_t *lk = cor_lock_new(NULL); /* never released either */
  return lk ? 0 : -ENOMEM;
}
static int child_futures(bool debug_opt) {
  cor_run_opts o = {.debug = debug_opt};
  int rc = cor_run(leak_futures, NULL, &o);
  fprintf(stderr, "RUN DONE\n");
  return rc;
}

static int run_child_mode(const char *mode) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(mode, "coro") == 0)
    return child_coro();
  if (strcmp(mode, "leak") == 0)
    return child_leak();
  if (strcmp(mode, "loop_free") == 0)
    return child_loop_free();
  if (strcmp(mode, "exit_in_task") == 0)
    return child_exit_in_task();
  if (strcmp(mode, "fork") == 0)
    return child_fork();
  if (strcmp(mode, "futures") == 0)
    return child_futures(false);
  if (strcmp(mode, "futures_opt") == 0)
    return child_futures(true);
  return 2;
}

/* The parent side: runs this binary with `mode`, CORIO_DEBUG set or not;
 * stdout and stderr come back in two buffers. The child leaks on purpose:
 * LeakSanitizer is told not to fail it. */
static char cout[16384], cerr[65536];

static void drain(int fd, char *buf, size_t cap, size_t *len) {
  ssize_t n = read(fd, buf + *len, cap - 1 - *len);
  if (n > 0) {
    *len += (size_t)n;
    buf[*len] = 0;
  }
}

static int run_child(const char *mode, bool debug) {
  int po[2], pe[2];
  assert_int_equal(pipe2(po, O_CLOEXEC), 0);
  assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(po[1], 1);
    dup2(pe[1], 2);
    if (debug)
      setenv("CORIO_DEBUG", "1", 1);
    else
      unsetenv("CORIO_DEBUG");
    const char *a = getenv("ASAN_OPTIONS");
    char asan[512];
    snprintf(asan, sizeof asan, "%s%sdetect_leaks=0", a ? a : "",
             a && a[0] ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    char *argv[] = {"/proc/self/exe", "--child", (char *)mode, NULL};
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  close(po[1]);
  close(pe[1]);
  size_t ol = 0, el = 0;
  cout[0] = cerr[0] = 0;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  bool oe = false, ee = false;
  while (!(oe && ee)) {
    struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    poll(pf, 2, 100);
    if (pf[0].revents) {
      size_t before = ol;
      drain(po[0], cout, sizeof cout, &ol);
      oe = ol == before;
    }
    if (pf[1].revents) {
      size_t before = el;
      drain(pe[0], cerr, sizeof cerr, &el);
      ee = el == before;
    }
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec > 30)
      break;
  }
  close(po[0]);
  close(pe[0]);
  int st;
  if (waitpid(pid, &st, WNOHANG) == 0) {
    struct timespec ts = {0, 100000000};
    for (int i = 0; i < 100 && waitpid(pid, &st, WNOHANG) == 0; i++)
      nanosleep(&ts, NULL);
    if (waitpid(pid, &st, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
    }
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    print_message("child %s: status %d\nstdout:\n%s\nstderr:\n%s\n", mode, st,
                  cout, cerr);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

#define HAS(s)                                                                 \
  do {                                                                         \
    if (strstr(cerr, (s)) == NULL)                                             \
      print_message("missing: %s\nstderr:\n%s\n", (s), cerr);                 \
    assert_non_null(strstr(cerr, (s)));                                        \
  } while (0)
#define HAS_NOT(s)                                                             \
  do {                                                                         \
    if (strstr(cerr, (s)) != NULL)                                             \
      print_message("unexpected: %s\nstderr:\n%s\n", (s), cerr);              \
    assert_null(strstr(cerr, (s)));                                            \
  } while (0)

static void coro_at_exit(bool debug) {
  assert_int_equal(run_child("coro", debug), 0);
  int line = 0;
  assert_int_equal(sscanf(cout, "LINE %d", &line), 1);
  char want[256];
  snprintf(want, sizeof want,
           "WARNING:corio:%s: RuntimeWarning: coroutine 'never_awaited' was "
           "never awaited",
           at(line));
  HAS(want);
  /* Only that one: every consumed one was taken off the list. */
  assert_int_equal(count(cerr, "was never awaited"), 1);
  if (debug) {
    snprintf(want, sizeof want,
             "was never awaited\nCoroutine created at (most recent call "
             "last)\n");
    HAS(want);
    HAS(frame(line, "child_coro"));
  } else {
    HAS_NOT("Coroutine created at");
  }
}

static void test_coro_at_exit(void **state) {
  (void)state;
  coro_at_exit(false);
}
static void test_coro_at_exit_debug(void **state) {
  (void)state;
  coro_at_exit(true);
}

static void leak_at_exit(bool debug) {
  assert_int_equal(run_child("leak", debug), 0);
  int ln[5], port, dport;
  assert_int_equal(sscanf(cout, "LINE %d %d %d %d %d PORT %d DPORT %d", &ln[0],
                          &ln[1], &ln[2], &ln[3], &ln[4], &port, &dport),
                   7);
  char want[256];
  snprintf(want, sizeof want,
           "WARNING:corio:unclosed event loop <Loop running=false "
           "closed=false debug=%s>",
           debug ? "true" : "false");
  HAS(want);
  HAS("WARNING:corio:unclosed stream <Stream fd=");
  snprintf(want, sizeof want,
           "WARNING:corio:unclosed datagram endpoint <Datagram fd=%s",
           "");
  HAS(want);
  snprintf(want, sizeof want, " local=127.0.0.1:%d", dport);
  HAS(want);
  snprintf(want, sizeof want,
           "WARNING:corio:unclosed server <Server sockets=[127.0.0.1:%d] "
           "connections=0",
           port);
  HAS(want);
  HAS("WARNING:corio:unclosed executor <ThreadPoolExecutor max_workers=3 ");
  /* One of each: the closed stream and the shut-down pool are quiet. */
  assert_int_equal(count(cerr, "unclosed stream"), 1);
  assert_int_equal(count(cerr, "unclosed executor"), 1);
  assert_int_equal(count(cerr, "unclosed"), 5);
  if (debug) {
    snprintf(want, sizeof want,
             "debug=true>\nObject allocated at (most recent call last):\n");
    HAS(want); /* the loop's */
    HAS(frame(ln[0], "child_leak"));
    for (int i = 1; i < 5; i++) {
      HAS(created(ln[i]));
      HAS(frame(ln[i], "child_leak"));
    }
  } else {
    HAS_NOT("created at");
    HAS_NOT("Object allocated at");
  }
}

static void test_leak_at_exit(void **state) {
  (void)state;
  leak_at_exit(false);
}
static void test_leak_at_exit_debug(void **state) {
  (void)state;
  leak_at_exit(true);
}

static void test_loop_freed_with_endpoint_open(void **state) {
  (void)state;
  assert_int_equal(run_child("loop_free", false), 0);
  int dport = 0;
  assert_int_equal(sscanf(cout, "DPORT %d", &dport), 1);
  char want[128];
  snprintf(want, sizeof want,
           "WARNING:corio:unclosed datagram endpoint <Datagram fd=");
  HAS(want);
  /* Reported when cor_run freed the loop, before main went on. */
  HAS("RUN DONE");
  assert_true(strstr(cerr, want) < strstr(cerr, "RUN DONE"));
  snprintf(want, sizeof want, " local=127.0.0.1:%d>", dport);
  HAS(want);
  assert_int_equal(count(cerr, "unclosed"), 1);
}

static void test_exit_in_task(void **state) {
  (void)state;
  assert_int_equal(run_child("exit_in_task", false), 0);
  HAS("WARNING:corio:unclosed event loop <Loop running=true closed=false "
      "debug=false>");
  HAS("WARNING:corio:unclosed stream <Stream fd=");
  assert_int_equal(count(cerr, "unclosed"), 2);
}

static void test_fork_child_quiet(void **state) {
  (void)state;
  assert_int_equal(run_child("fork", false), 0);
  /* The forked child reported its own pool only; the parent its three. */
  char *c = strstr(cerr, "CHILD EXITS\n");
  char *p = strstr(cerr, "PARENT EXITS\n");
  assert_non_null(c);
  assert_non_null(p);
  assert_true(c < p);
  *p = 0; /* what comes before is the child's exit */
  assert_int_equal(count(c, "unclosed executor"), 1);
  assert_int_equal(count(c, "was never awaited"), 0);
  assert_int_equal(count(c, "unclosed event loop"), 0);
  p += strlen("PARENT EXITS\n");
  assert_int_equal(count(p, "unclosed executor"), 1);
  assert_int_equal(count(p, "was never awaited"), 1);
  assert_int_equal(count(p, "unclosed event loop"), 1);
}

/* Debug mode (CORIO_DEBUG, or a loop's debug option): at exit, after the
 * program's own output, each type of counted object never released with its
 * count and where it was made. */
static void futures_at_exit(const char *mode, bool env) {
  assert_int_equal(run_child(mode, env), 0);
  int line = 0;
  assert_int_equal(sscanf(cout, "LINE %d", &line), 1);
  char want[256];
  snprintf(want, sizeof want,
           "WARNING:corio:1000 futures never released (cor_release), created "
           "at:\n  1000 at " F ":%d in leak_futures\n",
           line);
  HAS(want);
  HAS("WARNING:corio:1 lock never released (cor_release), created at:\n  1 at " F ":");
  /* The futures hold their loop: it is never freed either; counted when
   * CORIO_DEBUG was set before it was made (the census counts what is made
   * once debug mode is on: a loop's debug option starts it after the loop
   * itself was made). */
  if (env)
    HAS("WARNING:corio:1 loop never released (cor_release)");
  assert_int_equal(count(cerr, "never released"), env ? 3 : 2);
  assert_true(strstr(cerr, "RUN DONE") < strstr(cerr, "never released"));
}
static void test_unreleased_debug_env(void **state) {
  (void)state;
  futures_at_exit("futures", true);
}
static void test_unreleased_debug_loop(void **state) {
  (void)state;
  futures_at_exit("futures_opt", false);
}
static void test_unreleased_quiet(void **state) {
  (void)state;
  assert_int_equal(run_child("futures", false), 0);
  HAS("RUN DONE");
  HAS_NOT("never released");
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0)
    return run_child_mode(argv[2]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unclosed_stream, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unclosed_stream_debug, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_stream_from_fd, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unclosed_server, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unclosed_runtime_server, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_datagram_closed_quiet, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unclosed_executor, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unclosed_executor_debug_loop, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_default_pool_quiet, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_coro_at_exit, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_coro_at_exit_debug, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_leak_at_exit, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_leak_at_exit_debug, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unreleased_debug_env, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unreleased_debug_loop, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unreleased_quiet, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_loop_freed_with_endpoint_open, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_exit_in_task, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_fork_child_quiet, logcap_setup, logcap_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
