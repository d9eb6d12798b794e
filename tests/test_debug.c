/* SPDX-License-Identifier: MIT */
/* Debug mode and diagnostics: the traps of "Developing with asyncio" in C.
 * Each test triggers a trap and checks the records the "corio" logger
 * received (level, text, and this file's name and line), in debug mode and
 * out of it. */
#include "testutil.h"

#include <corio.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define F "tests/test_debug.c"

/* ------------------------------------------------------------ capture */

#include "logcap.h"


static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ turning on */

static void test_turning_on(void **state) {
  (void)state;
  cor_loop_t *l = cor_loop_new(NULL);
  assert_false(cor_loop_get_debug(l));
  assert_int_equal(cor_loop_set_debug(l, true), 0);
  assert_true(cor_loop_get_debug(l));
  assert_int_equal(cor_loop_set_debug(l, false), 0);
  assert_false(cor_loop_get_debug(l));
  assert_true(cor_loop_get_slow_callback_duration(l) == 0.1);
  assert_int_equal(cor_loop_set_slow_callback_duration(l, -1), -EINVAL);
  cor_loop_close(l);
  cor_release(l);
  setenv("CORIO_DEBUG", "1", 1);
  l = cor_loop_new(NULL);
  assert_true(cor_loop_get_debug(l));
  cor_loop_close(l);
  cor_release(l);
  unsetenv("CORIO_DEBUG");
  cor_loop_opts o = {.debug = true};
  l = cor_loop_new(&o);
  assert_true(cor_loop_get_debug(l));
  cor_loop_close(l);
  cor_release(l);
  /* Debug mode leaves the logger's level alone. */
  assert_int_equal(cor_log_get_level(), COR_LOG_INFO);
}

/* ------------------------------------------------------------ seeds */

/* Seed 1: async def test(): ...; async def main(): test() */
static int never_line;
static int test_coro(void *arg, void **r) { return 0; }
static int main_never(void *arg, void **r) {
  never_line = __LINE__; cor_coro(test_coro, NULL);
  return 0;
}

static void never_awaited(bool debug) {
  cor_run_opts o = {.debug = debug};
  assert_int_equal(cor_run(main_never, NULL, &o), 0);
  EXPECT(COR_LOG_WARNING, at(never_line),
         ": RuntimeWarning: coroutine 'test_coro' was never awaited", NULL);
  if (debug)
    EXPECT(COR_LOG_WARNING, "Coroutine created at (most recent call last)\n",
           frame(never_line, "main_never"), NULL);
  else
    EXPECT_NONE("Coroutine created at");
}
static void test_never_awaited(void **state) {
  (void)state;
  never_awaited(false);
}
static void test_never_awaited_debug(void **state) {
  (void)state;
  never_awaited(true);
}

/* Seed 2: async def bug(): raise Exception("not consumed") */
static int bug_fail_line, bug_create_line;
static int bug(void *arg, void **r) {
  bug_fail_line = __LINE__; return cor_fail(-EIO, "not consumed");
}
static int main_bug(void *arg, void **r) {
  bug_create_line = __LINE__; cor_task_t *t = cor_create_task(NULL, cor_coro(bug, NULL), NULL);
  cor_release(t);
  return 0;
}

static void never_retrieved(bool debug) {
  cor_run_opts o = {.debug = debug};
  assert_int_equal(cor_run(main_bug, NULL, &o), 0);
  char tb[200];
  snprintf(tb, sizeof tb,
           "Traceback (most recent call last):\n  File \"" F "\", line %d\n"
           "EIO: not consumed",
           bug_fail_line);
  EXPECT(COR_LOG_ERROR, "Task exception was never retrieved\nfuture: <Task "
                        "finished name='Task-",
         "coro=<bug() done, defined at " F ":", tb);
  EXPECT(COR_LOG_ERROR, "exception=EIO('not consumed')", NULL, NULL);
  if (debug) {
    EXPECT(COR_LOG_ERROR,
           "source_traceback: Object created at (most recent call last):\n",
           frame(bug_create_line, "main_bug"), NULL);
    EXPECT(COR_LOG_ERROR, "exception=EIO('not consumed') created at ",
           at(bug_create_line), NULL);
  } else {
    EXPECT_NONE("source_traceback");
  }
}
static void test_never_retrieved(void **state) {
  (void)state;
  never_retrieved(false);
}
static void test_never_retrieved_debug(void **state) {
  (void)state;
  never_retrieved(true);
}

static void future_never_retrieved(bool debug) {
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *l = cor_loop_new(&o);
  int line = __LINE__; cor_future_t *f = cor_future_new(l);
  cor_future_set_error(f, -EPIPE, "boom");
  cor_release(f);
  EXPECT(COR_LOG_ERROR,
         "Future exception was never retrieved\nfuture: <Future finished "
         "exception=EPIPE('boom')",
         NULL, NULL);
  if (debug)
    EXPECT(COR_LOG_ERROR, at(line), frame(line, "future_never_retrieved"),
           "source_traceback: Object created at");
  else
    EXPECT_NONE("created at");
  cor_loop_close(l);
  cor_release(l);
}
static void test_future_never_retrieved(void **state) {
  (void)state;
  future_never_retrieved(false);
  nrec = 0;
  future_never_retrieved(true);
}

/* Pending task destroyed: kill_me awaits a future nobody completes. */
static volatile int no_tail;
static int kill_await_line, kill_create_line;
static int kill_me(void *arg, void **r) {
  /* Not a tail call: the await must return here to name this line. */
  kill_await_line = __LINE__; int rc = cor_await(arg, NULL);
  no_tail = rc;
  return rc;
}
static void stop_cb(void *l) { cor_loop_stop(l); }

static void pending_destroyed(bool debug) {
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *l = cor_loop_new(&o);
  cor_future_t *f = cor_future_new(l);
  kill_create_line = __LINE__; cor_task_t *t = cor_create_task(l, cor_coro(kill_me, f), "killme");
  cor_release(t);
  cor_call_later(l, 0.01, stop_cb, l, NULL);
  cor_loop_run_forever(l);
  cor_loop_close(l);
  char want[300];
  snprintf(want, sizeof want,
           "task: <Task pending name='killme' coro=<kill_me() running at %s> "
           "wait_for=<Future pending cb=[<wakeup killme>]",
           at(kill_await_line));
  EXPECT(COR_LOG_ERROR, "Task was destroyed but it is pending!\n", want, NULL);
  if (debug)
    EXPECT(COR_LOG_ERROR, "source_traceback: Object created at",
           frame(kill_create_line, "pending_destroyed"),
           at(kill_create_line));
  else
    EXPECT_NONE("source_traceback");
  cor_release(f);
  cor_release(l);
}
static void test_pending_destroyed(void **state) {
  (void)state;
  pending_destroyed(false);
  nrec = 0;
  pending_destroyed(true);
}

/* ------------------------------------------------------------ handler */

static int handled;
static cor_exception_context last;
static char last_msg[200];
static void handler(cor_loop_t *loop, const cor_exception_context *ctx,
                    void *arg) {
  handled++;
  last = *ctx;
  snprintf(last_msg, sizeof last_msg, "%s", ctx->message);
  *(cor_loop_t **)arg = loop;
}

static void test_exception_handler(void **state) {
  (void)state;
  cor_loop_t *l = cor_loop_new(NULL), *seen = NULL;
  assert_int_equal(cor_loop_set_exception_handler(l, handler, &seen), 0);
  cor_future_t *f = cor_future_new(l);
  cor_future_set_error(f, -EIO, "x");
  cor_release(f);
  assert_int_equal(handled, 1);
  assert_ptr_equal(seen, l);
  assert_string_equal(last_msg, "Future exception was never retrieved");
  assert_int_equal(last.code, -EIO);
  assert_string_equal(last.object_key, "future");
  assert_int_equal(nrec, 0); /* the handler replaced the default */
  /* The default handler, called by hand, logs at ERROR. */
  cor_exception_context c = {.message = "custom", .code = -EPIPE};
  cor_loop_default_exception_handler(l, &c);
  EXPECT(COR_LOG_ERROR, "custom\nEPIPE: ", NULL, NULL);
  assert_int_equal(cor_loop_set_exception_handler(l, NULL, NULL), 0);
  cor_loop_call_exception_handler(l, &c);
  assert_int_equal(handled, 1);
  assert_int_equal(nrec, 2);
  cor_loop_close(l);
  cor_release(l);
}

/* ------------------------------------------------------------ slow */

static void slow_cb(void *arg) { sleep_ms(60); }
static int slow_task(void *arg, void **r) {
  sleep_ms(60);
  return 0;
}

static void slow_callbacks(bool debug) {
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *l = cor_loop_new(&o);
  assert_int_equal(cor_loop_set_slow_callback_duration(l, 0.03), 0);
  int line = __LINE__; cor_call_soon(l, slow_cb, NULL, NULL);
  cor_task_t *t = cor_create_task(l, cor_coro(slow_task, NULL), "slowpoke");
  cor_loop_run_until_complete(l, cor_task_future(t));
  cor_release(t);
  if (debug) {
    char want[200];
    snprintf(want, sizeof want, "Executing <Handle slow_cb() created at %s> took 0.0",
             at(line));
    EXPECT(COR_LOG_WARNING, want, " seconds", NULL);
    EXPECT(COR_LOG_WARNING, "Executing <Task ", "name='slowpoke' coro=<slow_task()",
           " seconds");
  } else {
    EXPECT_NONE("Executing");
  }
  cor_loop_close(l);
  cor_release(l);
}
static void test_slow_callbacks(void **state) {
  (void)state;
  slow_callbacks(false);
  slow_callbacks(true);
}

/* ------------------------------------------------------------ unclosed */

static void test_unclosed_loop(void **state) {
  (void)state;
  cor_loop_t *l = cor_loop_new(NULL);
  cor_release(l);
  EXPECT(COR_LOG_WARNING,
         "unclosed event loop <Loop running=false closed=false debug=false>",
         NULL, NULL);
  EXPECT_NONE("allocated at");
  nrec = 0;
  cor_loop_opts o = {.debug = true};
  int line = __LINE__; l = cor_loop_new(&o);
  cor_release(l);
  EXPECT(COR_LOG_WARNING,
         "unclosed event loop <Loop running=false closed=false debug=true>\n"
         "Object allocated at (most recent call last):",
         frame(line, "test_unclosed_loop"), NULL);
}

/* ------------------------------------------------------------ runner */

typedef struct {
  cor_loop_t *loop;
  pthread_t th;
  int started;
} runner;

static void mark_started(void *arg) {
  __atomic_store_n(&((runner *)arg)->started, 1, __ATOMIC_RELEASE);
}
static void *run_loop(void *arg) {
  runner *r = arg;
  cor_call_soon(r->loop, mark_started, r, NULL);
  cor_loop_run_forever(r->loop);
  return NULL;
}
static void runner_start(runner *r, cor_loop_t *l) {
  r->loop = l;
  r->started = 0;
  pthread_create(&r->th, NULL, run_loop, r);
  while (!__atomic_load_n(&r->started, __ATOMIC_ACQUIRE))
    sleep_ms(1);
}
static void runner_stop(runner *r) {
  cor_call_soon_threadsafe(r->loop, stop_cb, r->loop);
  pthread_join(r->th, NULL);
}

/* ------------------------------------------------------------ dump */

static int inner_line, outer_line;
static int inner_body(void *arg, void **r) {
  /* Not a tail call: the await must return here to name this line. */
  inner_line = __LINE__; int rc = cor_await(arg, NULL);
  no_tail = rc;
  return rc;
}
static int outer_body(void *arg, void **r) {
  /* Not a tail call: the await must return here to name this line. */
  outer_line = __LINE__; int rc = cor_await(arg, NULL);
  no_tail = rc;
  return rc;
}

/* A task waiting inside a stream call is "awaiting at" the application's
 * line that called it, not at a line inside corio. */
static int reader_line;
static int reader_body(void *arg, void **r) {
  char b[16];
  reader_line = __LINE__; ssize_t n = cor_stream_read(arg, b, sizeof b);
  no_tail = (int)n;
  return n < 0 ? (int)n : 0;
}

static void test_dump_stream_wait(void **state) {
  (void)state;
  cor_loop_t *l = cor_loop_new(NULL);
  int sp[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
  cor_stream_t *st = cor_stream_from_fd(l, sp[0]);
  assert_non_null(st);
  cor_task_t *t = cor_create_task(l, cor_coro(reader_body, st), "reader");
  runner r;
  runner_start(&r, l);
  sleep_ms(20);
  int p[2];
  assert_int_equal(pipe(p), 0);
  int n = cor_dump_tasks(p[1]);
  close(p[1]);
  static char buf[65536];
  ssize_t got = 0, k;
  while ((k = read(p[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
    got += k;
  buf[got] = 0;
  close(p[0]);
  char want[128];
  snprintf(want, sizeof want, "awaiting at %s for ", at(reader_line));
  if (n < 1 || !strstr(buf, want))
    print_message("want '%s' in:\n%s\n", want, buf);
  assert_non_null(strstr(buf, want));
  assert_null(strstr(buf, "stream.c"));
  runner_stop(&r);
  cor_task_cancel(t, NULL);
  cor_loop_run_until_complete(l, cor_task_future(t));
  cor_release(t);
  cor_stream_close(st);
  cor_stream_free(st);
  close(sp[1]);
  cor_loop_close(l);
  cor_release(l);
}

static void test_dump_tasks(void **state) {
  (void)state;
  cor_loop_t *l = cor_loop_new(NULL);
  cor_future_t *f = cor_future_new(l);
  cor_task_t *in = cor_create_task(l, cor_coro(inner_body, f), "inner");
  cor_task_t *out = cor_create_task(l, cor_coro(outer_body, cor_task_future(in)), "outer");
  runner r;
  runner_start(&r, l);
  sleep_ms(20);
  int p[2];
  assert_int_equal(pipe(p), 0);
  int n = cor_dump_tasks(p[1]);
  close(p[1]);
  static char buf[65536];
  ssize_t got = 0, k;
  while ((k = read(p[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
    got += k;
  buf[got] = 0;
  close(p[0]);
  if (n < 2 || !strstr(buf, "Task 'outer' (suspended)"))
    print_message("%s\n", buf);
  assert_true(n >= 2);
  assert_non_null(strstr(buf, "Task 'outer' (suspended) coro=outer_body()"));
  char want[128];
  snprintf(want, sizeof want, "awaiting at %s for ", at(outer_line));
  assert_non_null(strstr(buf, want));
  assert_non_null(strstr(buf, "Task 'inner' (inner_body() created at"));
  assert_non_null(strstr(buf, "-> <Future pending cb=[<wakeup inner>]>"));
  runner_stop(&r);
  cor_task_cancel(out, NULL);
  cor_loop_run_until_complete(l, cor_task_future(out));
  cor_loop_run_until_complete(l, cor_task_future(in));
  cor_release(in);
  cor_release(out);
  cor_release(f);
  cor_loop_close(l);
  cor_release(l);
}

/* ------------------------------------------------------------ watchdog */

static void stuck_cb(void *arg) {
  uint64_t end = cor_loop_time_ns(NULL) + 400000000ull;
  while (cor_loop_time_ns(NULL) < end) {
  }
}

static void test_watchdog(void **state) {
  (void)state;
  cor_loop_opts o = {.debug = true};
  cor_loop_t *l = cor_loop_new(&o);
  assert_int_equal(cor_loop_set_watchdog(l, 0.1), 0);
  cor_call_soon(l, stuck_cb, NULL, NULL);
  cor_call_soon(l, stop_cb, l, NULL);
  cor_loop_run_forever(l);
  EXPECT(COR_LOG_WARNING, "stuck for 0.", "in stuck_cb()", NULL);
  EXPECT(COR_LOG_WARNING, "its stack (most recent call last):", "in stuck_cb",
         NULL);
  assert_int_equal(cor_loop_set_watchdog(l, 0), 0);
  cor_loop_close(l);
  cor_release(l);
}

/* ------------------------------------------------------------ production */

static void test_production_logs_no_debug_records(void **state) {
  (void)state;
  cor_loop_t *l = cor_loop_new(NULL);
  cor_loop_set_slow_callback_duration(l, 0.001);
  cor_call_soon(l, slow_cb, NULL, NULL);
  cor_call_soon(l, stop_cb, l, NULL);
  cor_loop_run_forever(l);
  cor_loop_close(l);
  cor_release(l);
  cor_run(main_never, NULL, NULL);
  cor_run(main_bug, NULL, NULL);
  EXPECT_NONE("Executing");
  EXPECT_NONE("poll");
  EXPECT_NONE("source_traceback");
  EXPECT_NONE("Coroutine created at");
  EXPECT_NONE("stuck");
  /* The always-on reports are there. */
  EXPECT(COR_LOG_WARNING, "was never awaited", NULL, NULL);
  EXPECT(COR_LOG_ERROR, "Task exception was never retrieved", NULL, NULL);
}

/* ------------------------------------------------------------ cross-thread */

/* The figure of "... took 0.153 seconds" in record i, or -1. */
static double took_seconds(int i) {
  const char *p = strstr(recs[i].msg, " took ");
  double s = -1;
  if (p == NULL || sscanf(p, " took %lf seconds", &s) != 1)
    return -1;
  return s;
}

typedef struct {
  cor_loop_t *loop;
  cor_callback cb;
  int line;
  int rc;
} poster;

static void *post_from_thread(void *arg) {
  poster *p = arg;
  /* Not a tail call: the site is this line. */
  p->line = __LINE__; p->rc = cor_call_soon_threadsafe(p->loop, p->cb, NULL);
  return NULL;
}

static void slow_ts_cb(void *arg) { sleep_ms(60); }

/* Callbacks posted from other threads are timed like any other in debug
 * mode, and named with the site of their cor_call_soon_threadsafe. */
static void threadsafe_slow(bool debug) {
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *l = cor_loop_new(&o);
  assert_int_equal(cor_loop_set_slow_callback_duration(l, 0.03), 0);
  poster p = {l, slow_ts_cb, 0, -1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, post_from_thread, &p), 0);
  pthread_join(th, NULL);
  assert_int_equal(p.rc, 0);
  /* And from this thread, through a function pointer (the public symbol). */
  int (*post)(cor_loop_t *, cor_callback, void *) = cor_call_soon_threadsafe;
  int line = __LINE__; int rc = post(l, slow_ts_cb, NULL);
  assert_int_equal(rc, 0);
  cor_call_soon(l, stop_cb, l, NULL);
  assert_int_equal(cor_loop_run_forever(l), 0);
  if (debug) {
    char want[200];
    snprintf(want, sizeof want, "Executing <Handle slow_ts_cb() created at %s> took ",
             at(p.line));
    EXPECT(COR_LOG_WARNING, want, " seconds", NULL);
    double s = took_seconds(find(want, NULL, NULL));
    assert_true(s >= 0.055 && s < 30);
    snprintf(want, sizeof want, "Executing <Handle slow_ts_cb() created at %s> took ",
             at(line));
    EXPECT(COR_LOG_WARNING, want, " seconds", NULL);
  } else {
    EXPECT_NONE("Executing");
  }
  cor_loop_close(l);
  cor_release(l);
}
static void test_threadsafe_slow_callbacks(void **state) {
  (void)state;
  threadsafe_slow(false);
  threadsafe_slow(true);
}

/* The watchdog names a stuck cross-thread callback. */
static void stuck_ts_cb(void *arg) {
  uint64_t end = cor_loop_time_ns(NULL) + 300000000ull;
  while (cor_loop_time_ns(NULL) < end) {
  }
}
static void test_watchdog_threadsafe(void **state) {
  (void)state;
  cor_loop_opts o = {.debug = true};
  cor_loop_t *l = cor_loop_new(&o);
  assert_int_equal(cor_loop_set_watchdog(l, 0.1), 0);
  int line = __LINE__; int rc = cor_call_soon_threadsafe(l, stuck_ts_cb, NULL);
  assert_int_equal(rc, 0);
  cor_call_soon(l, stop_cb, l, NULL);
  cor_loop_run_forever(l);
  EXPECT(COR_LOG_WARNING, "stuck for 0.", "in stuck_ts_cb()", NULL);
  char want[200];
  snprintf(want, sizeof want, "Executing <Handle stuck_ts_cb() created at %s> took 0.",
           at(line));
  EXPECT(COR_LOG_WARNING, want, " seconds", NULL);
  assert_int_equal(cor_loop_set_watchdog(l, 0), 0);
  cor_loop_close(l);
  cor_release(l);
}

/* A post made in debug mode carries its site in a record: it runs right
 * when debug mode is turned off before it runs, and is freed when the loop
 * closes before it runs (the sanitizer builds check for the leak). */
static int ts_ran;
static void count_ts_cb(void *arg) { ts_ran++; }
static void test_threadsafe_debug_toggled(void **state) {
  (void)state;
  cor_loop_opts o = {.debug = true};
  cor_loop_t *l = cor_loop_new(&o);
  ts_ran = 0;
  assert_int_equal(cor_call_soon_threadsafe(l, count_ts_cb, NULL), 0);
  assert_int_equal(cor_loop_set_debug(l, false), 0);
  assert_int_equal(cor_call_soon_threadsafe(l, count_ts_cb, NULL), 0);
  assert_int_equal(cor_loop_set_debug(l, true), 0);
  assert_int_equal(cor_call_soon_threadsafe(l, count_ts_cb, NULL), 0);
  cor_call_soon(l, stop_cb, l, NULL);
  cor_loop_run_forever(l);
  assert_int_equal(ts_ran, 3);
  /* Posted, never run: dropped at close with its record. */
  assert_int_equal(cor_call_soon_threadsafe(l, count_ts_cb, NULL), 0);
  assert_int_equal(cor_loop_close(l), 0);
  assert_int_equal(ts_ran, 3);
  assert_int_equal(cor_call_soon_threadsafe(l, count_ts_cb, NULL), COR_ECLOSED);
  cor_release(l);
  EXPECT_NONE("Executing");
}

/* The bounded door's calls name their own caller too (runtime loops). */
static int ts_slow_ran;
static void slow_count_cb(void *arg) {
  sleep_ms(120); /* past the default 0.1 s */
  __atomic_add_fetch(&ts_slow_ran, 1, __ATOMIC_RELEASE);
}
static void test_threadsafe_bounded_sites(void **state) {
  (void)state;
  cor_runtime_opts ro = {.nloops = 1, .pin = -1, .debug = true, .queue_limit = 8};
  cor_runtime_t *rt = cor_runtime_new(&ro);
  assert_non_null(rt);
  cor_loop_t *l = cor_runtime_loop(rt, 0);
  ts_slow_ran = 0;
  int l1 = __LINE__; int rc = cor_try_call_soon_threadsafe(l, slow_count_cb, NULL);
  assert_int_equal(rc, 0);
  int l2 = __LINE__; rc = cor_call_soon_threadsafe_wait(l, slow_count_cb, NULL, 5);
  assert_int_equal(rc, 0);
  for (int i = 0; i < 1000 && __atomic_load_n(&ts_slow_ran, __ATOMIC_ACQUIRE) < 2; i++)
    sleep_ms(10);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  cor_release(rt);
  assert_int_equal(ts_slow_ran, 2);
  char want[200];
  snprintf(want, sizeof want, "Executing <Handle slow_count_cb() created at %s> took 0.",
           at(l1));
  EXPECT(COR_LOG_WARNING, want, " seconds", NULL);
  snprintf(want, sizeof want, "Executing <Handle slow_count_cb() created at %s> took 0.",
           at(l2));
  EXPECT(COR_LOG_WARNING, want, " seconds", NULL);
}

/* ------------------------------------------------------------ slow polls */

/* The three figures of "poll overslept its deadline by X ms (timeout Y ms,
 * took Z ms)" in record i. */
static bool oversleep_figures(int i, double *by, double *timeout, double *took) {
  const char *p = strstr(recs[i].msg, "poll overslept its deadline by ");
  return p && sscanf(p, "poll overslept its deadline by %lf ms (timeout %lf ms, took %lf ms)",
                     by, timeout, took) == 3;
}

/* SIGUSR2, installed by the test itself (not through corio): the handler
 * holds the thread it interrupts for 60 ms, as a descheduled thread would
 * be held. */
static volatile sig_atomic_t usr2_hits;
static void usr2_sleeper(int sig) {
  (void)sig;
  int e = errno;
  struct timespec ts = {0, 60 * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  usr2_hits++;
  errno = e;
}

typedef struct {
  pid_t tid;  /* the loop's thread */
  int sent;   /* the signal went while it was inside the poller's wait */
} poll_kicker;

/* Is thread tid blocked in epoll_wait / epoll_pwait / epoll_pwait2? */
static bool in_epoll(pid_t tid) {
  char path[64], buf[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  buf[n] = 0;
  long nr = strtol(buf, NULL, 10);
  return nr == SYS_epoll_wait || nr == SYS_epoll_pwait
#ifdef SYS_epoll_pwait2
         || nr == SYS_epoll_pwait2
#endif
      ;
}

static void *kick_in_epoll(void *arg) {
  poll_kicker *k = arg;
  for (int i = 0; i < 10000; i++) { /* up to ~2 s */
    if (in_epoll(k->tid)) {
      k->sent = syscall(SYS_tgkill, getpid(), k->tid, SIGUSR2) == 0;
      return NULL;
    }
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* A wait for a timer 40 ms away, interrupted by a signal whose handler
 * holds the thread 60 ms: epoll fails with EINTR after ~60 ms, 20 ms past
 * the deadline. The loop carries on (the timer still stops it) and, in
 * debug mode, reports the overslept poll with its figures. */
static void poll_overslept(bool debug) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = usr2_sleeper; /* no SA_RESTART: epoll never restarts anyway */
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR2, &sa, &old), 0);
  usr2_hits = 0;
  cor_loop_opts o = {.debug = debug, .spin_seconds = -1};
  cor_loop_t *l = cor_loop_new(&o);
  assert_int_equal(cor_call_later(l, 0.04, stop_cb, l, NULL), 0);
  poll_kicker k = {(pid_t)syscall(SYS_gettid), 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, kick_in_epoll, &k), 0);
  uint64_t t0 = cor_loop_time_ns(l);
  assert_int_equal(cor_loop_run_forever(l), 0);
  uint64_t t1 = cor_loop_time_ns(l);
  pthread_join(th, NULL);
  sigaction(SIGUSR2, &old, NULL);
  assert_true(k.sent);
  assert_int_equal(usr2_hits, 1);
  assert_true(t1 - t0 >= 60000000u);
  if (debug) {
    EXPECT(COR_LOG_WARNING, "poll overslept its deadline by ", " ms (timeout ", " ms, took ");
    double by, timeout, took;
    assert_true(oversleep_figures(find("poll overslept", NULL, NULL), &by, &timeout, &took));
    if (!(timeout > 0 && timeout <= 40.5 && took >= 59 && by > 10 && by < took &&
          by > took - timeout - 0.01 && by < took - timeout + 0.01))
      dump_recs();
    assert_true(timeout > 0 && timeout <= 40.5);
    assert_true(took >= 59);
    assert_true(by > 10 && by > took - timeout - 0.01 && by < took - timeout + 0.01);
  } else {
    EXPECT_NONE("poll");
  }
  cor_loop_close(l);
  cor_release(l);
}
static void test_poll_overslept(void **state) {
  (void)state;
#if defined(__SANITIZE_THREAD__)
  /* ThreadSanitizer defers an asynchronous signal's handler to the next
   * call it intercepts: the handler cannot hold the thread inside the
   * poll. test_poll_overslept_late covers the report in this build. */
  TEST_SKIP_IF(true, "TSan defers signal handlers out of the poll");
#endif
  poll_overslept(false);
  nrec = 0;
  poll_overslept(true);
}

/* Held late, for test_poll_overslept_late: see there. */
static volatile pid_t late_poll_tid;
static void late_poll_hold(long timeout_ns) {
  if (timeout_ns > 0 && late_poll_tid != 0 &&
      late_poll_tid == (pid_t)syscall(SYS_gettid)) {
    late_poll_tid = 0;
    sleep_ms(30);
  }
}

/* A zero-timeout epoll_wait slower than 1 ms: the test binary's own
 * epoll_wait (the library's call binds to it, since the tests link the
 * static library) calls the real one and then holds the thread 5 ms, once,
 * when armed for this thread. */
static volatile pid_t slow_zero_poll_tid;
int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout) {
  static int (*real)(int, struct epoll_event *, int, int);
  if (real == NULL)
    real = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
  int n = real(epfd, evs, max, timeout);
  int e = errno;
  if (n >= 0)
    late_poll_hold(timeout > 0 ? timeout * 1000000L : -1);
  if (timeout == 0 && slow_zero_poll_tid != 0 &&
      slow_zero_poll_tid == (pid_t)syscall(SYS_gettid)) {
    slow_zero_poll_tid = 0;
    sleep_ms(5);
  }
  errno = e;
  return n;
}

/* The same report from a wait that returns late on its own: the test
 * binary's epoll_pwait2 (and epoll_wait, for kernels without it) sleeps
 * 30 ms after the real call, once, when armed for this thread. */
int epoll_pwait2(int epfd, struct epoll_event *evs, int max,
                 const struct timespec *timeout, const sigset_t *mask) {
  static int (*real)(int, struct epoll_event *, int, const struct timespec *,
                     const sigset_t *);
  if (real == NULL)
    real = (int (*)(int, struct epoll_event *, int, const struct timespec *,
                    const sigset_t *))dlsym(RTLD_NEXT, "epoll_pwait2");
  int n = real ? real(epfd, evs, max, timeout, mask) : (errno = ENOSYS, -1);
  int e = errno;
  if (n >= 0)
    late_poll_hold(timeout ? timeout->tv_sec * 1000000000L + timeout->tv_nsec : -1);
  errno = e;
  return n;
}

static void poll_overslept_late(bool debug) {
  cor_loop_opts o = {.debug = debug, .spin_seconds = -1};
  cor_loop_t *l = cor_loop_new(&o);
  assert_int_equal(cor_call_later(l, 0.02, stop_cb, l, NULL), 0);
  late_poll_tid = (pid_t)syscall(SYS_gettid);
  assert_int_equal(cor_loop_run_forever(l), 0);
  assert_int_equal(late_poll_tid, 0); /* the wait was held */
  if (debug) {
    EXPECT(COR_LOG_WARNING, "poll overslept its deadline by ", " ms (timeout ", " ms, took ");
    double by, timeout, took;
    assert_true(oversleep_figures(find("poll overslept", NULL, NULL), &by, &timeout, &took));
    if (!(timeout > 0 && timeout <= 20.5 && took >= timeout + 29.9 && by >= 29.9 &&
          by > took - timeout - 0.01 && by < took - timeout + 0.01))
      dump_recs();
    assert_true(timeout > 0 && timeout <= 20.5);
    assert_true(took >= timeout + 29.9);
    assert_true(by >= 29.9 && by > took - timeout - 0.01 && by < took - timeout + 0.01);
  } else {
    EXPECT_NONE("poll");
  }
  cor_loop_close(l);
  cor_release(l);
}
static void test_poll_overslept_late(void **state) {
  (void)state;
  poll_overslept_late(false);
  nrec = 0;
  poll_overslept_late(true);
}

static void nop(void *arg) {}

static void poll_zero_slow(bool debug) {
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *l = cor_loop_new(&o);
  int p[2];
  assert_int_equal(pipe(p), 0);
  /* An fd to watch: a busy loop polls (with a zero timeout) only then. */
  assert_int_equal(cor_loop_add_reader(l, p[0], nop, NULL), 0);
  cor_call_soon(l, stop_cb, l, NULL);
  slow_zero_poll_tid = (pid_t)syscall(SYS_gettid);
  assert_int_equal(cor_loop_run_forever(l), 0);
  assert_int_equal(slow_zero_poll_tid, 0); /* it did poll with timeout 0 */
  if (debug) {
    EXPECT(COR_LOG_WARNING, "poll with a zero timeout took ", " ms (expected < 1.000 ms)", NULL);
    double took = 0;
    const char *m = recs[find("poll with a zero timeout took ", NULL, NULL)].msg;
    assert_int_equal(sscanf(strstr(m, "took "), "took %lf ms", &took), 1);
    assert_true(took >= 4.9 && took < 10000);
  } else {
    EXPECT_NONE("poll");
  }
  cor_loop_remove_reader(l, p[0]);
  close(p[0]);
  close(p[1]);
  cor_loop_close(l);
  cor_release(l);
}
static void test_poll_zero_timeout_slow(void **state) {
  (void)state;
  poll_zero_slow(false);
  nrec = 0;
  poll_zero_slow(true);
}

/* A signal handler added with cor_loop_add_signal_handler runs while the
 * loop dispatches its poll's events: it is timed as a callback, and its
 * time is not the poll's. */
static void slow_sig_cb(void *arg) { sleep_ms(100); }
static void signal_cb_timed(bool debug) {
  cor_loop_opts o = {.debug = debug, .spin_seconds = -1};
  cor_loop_t *l = cor_loop_new(&o);
  assert_int_equal(cor_loop_set_slow_callback_duration(l, 0.03), 0);
  assert_int_equal(cor_loop_add_signal_handler(l, SIGUSR1, slow_sig_cb, NULL), 0);
  /* Blocked in this (the loop's) thread now: pending for the signalfd. */
  assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
  assert_int_equal(cor_call_later(l, 0.05, stop_cb, l, NULL), 0);
  assert_int_equal(cor_loop_run_forever(l), 0);
  if (debug)
    EXPECT(COR_LOG_WARNING, "Executing <Handle slow_sig_cb()> took 0.", " seconds", NULL);
  else
    EXPECT_NONE("Executing");
  EXPECT_NONE("poll");
  assert_int_equal(cor_loop_remove_signal_handler(l, SIGUSR1), 0);
  cor_loop_close(l);
  cor_release(l);
}
static void test_signal_callback_timed(void **state) {
  (void)state;
  signal_cb_timed(false);
  nrec = 0;
  signal_cb_timed(true);
}

/* ------------------------------------------------------------ dump signal */

/* CORIO_DUMP_SIGNAL is read once, when the process makes its first loop, so
 * the test runs this binary again with the variable set (the child below)
 * and sends it the signal as a user would (kill -USR1 <pid>). */
#define DUMP_CHILD_ARG "--dump-signal-child"

/* The child: two tasks, outer awaiting inner awaiting a future, on a loop
 * run by a thread of its own; it says where they were made and suspended,
 * then waits for the parent to close its stdin. */
static int dump_signal_child(void) {
  cor_loop_t *l = cor_loop_new(NULL); /* debug mode from CORIO_DEBUG */
  int f_line = __LINE__; cor_future_t *f = cor_future_new(l);
  int in_line = __LINE__; cor_task_t *in = cor_create_task(l, cor_coro(inner_body, f), "inner");
  int out_line = __LINE__; cor_task_t *out = cor_create_task(l, cor_coro(outer_body, cor_task_future(in)), "outer");
  /* A loop nobody runs: the signal's dump cannot know who may be using it,
   * so it names it without reading it. */
  cor_loop_t *idle = cor_loop_new(NULL);
  runner r;
  runner_start(&r, l);
  /* The signal goes to the loop's thread: ThreadSanitizer runs a handler
   * only once its thread enters a call it intercepts as blocking, which
   * this thread's read() below is not (epoll_wait is). */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);
  /* Both suspended, and waiting for a while the dump must show. */
  sleep_ms(300);
  printf("ready %d %d %d %d %d\n", in_line, out_line, inner_line, outer_line, f_line);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  runner_stop(&r);
  cor_task_cancel(out, NULL);
  cor_loop_run_until_complete(l, cor_task_future(out));
  cor_loop_run_until_complete(l, cor_task_future(in));
  cor_release(in);
  cor_release(out);
  cor_release(f);
  cor_loop_close(l);
  cor_release(l);
  cor_loop_close(idle);
  cor_release(idle);
  return 0;
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends what fd has to buf until `until` is in it, EOF, or the deadline. */
static void read_until(int fd, char *buf, size_t cap, const char *until,
                       double deadline) {
  size_t len = strlen(buf);
  while (len < cap - 1 && !strstr(buf, until) && mono_now() < deadline) {
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, 50) <= 0)
      continue;
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = 0;
  }
}

static void dump_signal(bool debug, const char *signame) {
  int in[2], out[2], err[2];
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  assert_int_equal(pipe2(out, O_CLOEXEC), 0);
  assert_int_equal(pipe2(err, O_CLOEXEC), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no child */
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    setenv("CORIO_DUMP_SIGNAL", signame, 1);
    if (debug)
      setenv("CORIO_DEBUG", "1", 1);
    else
      unsetenv("CORIO_DEBUG");
    char *argv[] = {"test_debug", DUMP_CHILD_ARG, NULL};
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  double deadline = mono_now() + 20;
  static char outbuf[256], errbuf[65536];
  outbuf[0] = errbuf[0] = 0;
  read_until(out[0], outbuf, sizeof outbuf, "\n", deadline);
  int in_line = 0, out_line = 0, inner_at = 0, outer_at = 0, f_line = 0;
  if (sscanf(outbuf, "ready %d %d %d %d %d", &in_line, &out_line, &inner_at, &outer_at,
             &f_line) != 5)
    print_message("child said '%s'\n", outbuf);
  assert_true(in_line > 0 && outer_at > 0);
  assert_int_equal(kill(pid, SIGUSR1), 0);
  read_until(err[0], errbuf, sizeof errbuf, "-> <Future pending", deadline);
  close(in[1]); /* the child exits */
  int st = -1;
  for (int i = 0; i < 2000 && waitpid(pid, &st, WNOHANG) == 0; i++)
    sleep_ms(5);
  if (!WIFEXITED(st)) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
  read_until(err[0], errbuf, sizeof errbuf, "\1", mono_now() + 1);
  close(out[0]);
  close(err[0]);
  char want[512];
  bool ok = true;
#define HAS(...)                                                               \
  do {                                                                         \
    snprintf(want, sizeof want, __VA_ARGS__);                                  \
    if (!strstr(errbuf, want)) {                                               \
      print_message("missing: %s\n", want);                                    \
      ok = false;                                                              \
    }                                                                          \
  } while (0)
  HAS("Loop 0x");
  HAS(" <Loop running=true closed=false debug=%s> thread ", debug ? "true" : "false");
  HAS(" <Loop running=false closed=false debug=%s>: not running, not dumped",
      debug ? "true" : "false");
  HAS("  Task 'inner' (suspended) coro=inner_body() created at %s", at(in_line));
  HAS("  Task 'outer' (suspended) coro=outer_body() created at %s", at(out_line));
  if (debug) {
    HAS("coro=outer_body() created at %s (task made at %s)\n", at(out_line), at(out_line));
  }
  /* The chain: outer awaits inner, which awaits a plain future (made at
   * f_line, which debug mode records). */
  char fut[128];
  if (debug)
    snprintf(fut, sizeof fut, "<Future pending cb=[<wakeup inner>] created at %s>", at(f_line));
  else
    snprintf(fut, sizeof fut, "<Future pending cb=[<wakeup inner>]>");
  HAS("    awaiting at %s for ", at(outer_at));
  HAS(" s: Task 'inner' (inner_body() created at %s) -> %s\n", at(in_line), fut);
  HAS("    awaiting at %s for ", at(inner_at));
  HAS(" s: %s\n", fut);
  /* How long: the child waited 300 ms before it said ready. */
  const char *w = strstr(errbuf, "    awaiting at ");
  double waited = -1;
  if (w && (w = strstr(w, " for ")))
    sscanf(w, " for %lf s", &waited);
  if (!(waited >= 0.25 && waited < 60)) {
    print_message("waited %.3f s\n", waited);
    ok = false;
  }
  if (!ok)
    print_message("child's stderr:\n%s\n", errbuf);
  assert_true(ok);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
#undef HAS
}
static void test_dump_signal(void **state) {
  (void)state;
  dump_signal(false, "SIGUSR1");
  char num[16];
  snprintf(num, sizeof num, "%d", SIGUSR1); /* by number */
  dump_signal(true, num);
}

/* ------------------------------------------------------------ tail calls */

/* Suspending calls in tail position: at -O2 (the suites' flags) the
 * compiler turns each `return cor_...(...)` into a jump, so the suspension
 * has no return address in its caller; "running at" must still name these
 * lines. */
static int tail_await_line, tail_sleep_line, tail_yield_line, tail_wait_for_line,
    tail_gather_line, tail_group_line, ptr_await_line, ptr_sleep_line;
static int tail_await(void *arg, void **r) {
  tail_await_line = __LINE__; return cor_await(arg, NULL);
}
static int tail_sleep(void *arg, void **r) {
  tail_sleep_line = __LINE__; return cor_sleep(30);
}
static int tail_yield(void *arg, void **r) {
  tail_yield_line = __LINE__; return cor_yield();
}
static int tail_wait_for(void *arg, void **r) {
  tail_wait_for_line = __LINE__; return cor_wait_for(arg, 30, NULL);
}
static int tail_gather(void *arg, void **r) {
  cor_future_t *fs[1] = {arg};
  tail_gather_line = __LINE__; return cor_gather(fs, 1, NULL, NULL);
}
static int tail_group(void *arg, void **r) {
  cor_taskgroup_t *g = cor_taskgroup_new();
  cor_release(cor_taskgroup_spawn(g, cor_coro(tail_await, arg), "grouped"));
  tail_group_line = __LINE__; return cor_taskgroup_wait(g);
}
/* Through the functions themselves (function pointers, other languages):
 * the site is the return address, right when the call is not a tail call. */
static int (*volatile await_fn)(cor_future_t *, void **) = cor_await;
static int (*volatile sleep_fn)(double) = cor_sleep;
static int ptr_await(void *arg, void **r) {
  ptr_await_line = __LINE__; int rc = await_fn(arg, NULL);
  no_tail = rc;
  return rc;
}
static int ptr_sleep(void *arg, void **r) {
  ptr_sleep_line = __LINE__; int rc = sleep_fn(30);
  no_tail = rc;
  return rc;
}

/* A task group's parent destroyed while waiting would leak the group (a
 * destroyed task's stack is dropped, not unwound): that one is read from
 * the task dump, which shows the same site, and then cancelled cleanly. */
static void tail_group_site(bool debug) {
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *l = cor_loop_new(&o);
  cor_future_t *f = cor_future_new(l);
  cor_task_t *t = cor_create_task(l, cor_coro(tail_group, f), "t_group");
  cor_call_soon(l, stop_cb, l, NULL);
  cor_loop_run_forever(l);
  int p[2];
  assert_int_equal(pipe(p), 0);
  int n = cor_dump_tasks(p[1]);
  close(p[1]);
  static char buf[65536];
  ssize_t got = 0, k;
  while ((k = read(p[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
    got += k;
  buf[got] = 0;
  close(p[0]);
  char want[200];
  snprintf(want, sizeof want, "  Task 't_group' (suspended) coro=tail_group() created at ");
  const char *at_task = strstr(buf, want);
  snprintf(want, sizeof want, "\n    awaiting at %s for ", at(tail_group_line));
  if (n < 2 || at_task == NULL || !strstr(at_task, want))
    print_message("%s\n", buf);
  assert_non_null(at_task);
  assert_non_null(strstr(at_task, want));
  assert_int_equal(cor_task_cancel(t, NULL), 0);
  cor_loop_run_until_complete(l, cor_task_future(t));
  assert_true(cor_future_cancelled(cor_task_future(t)));
  cor_release(t);
  cor_release(f);
  assert_int_equal(cor_loop_close(l), 0);
  cor_release(l);
  EXPECT_NONE("Task was destroyed");
}

static void tail_sites(bool debug) {
  tail_group_site(debug);
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *l = cor_loop_new(&o);
  cor_future_t *f = cor_future_new(l);
  static const struct {
    cor_fn fn;
    const char *name, *fn_name;
    int *line;
  } cases[] = {
      {tail_await, "t_await", "tail_await", &tail_await_line},
      {tail_sleep, "t_sleep", "tail_sleep", &tail_sleep_line},
      {tail_yield, "t_yield", "tail_yield", &tail_yield_line},
      {tail_wait_for, "t_wait_for", "tail_wait_for", &tail_wait_for_line},
      {tail_gather, "t_gather", "tail_gather", &tail_gather_line},
      {ptr_await, "p_await", "ptr_await", &ptr_await_line},
      {ptr_sleep, "p_sleep", "ptr_sleep", &ptr_sleep_line},
  };
  size_t n = sizeof cases / sizeof cases[0];
  for (size_t i = 0; i < n; i++)
    cor_release(cor_create_task(l, cor_coro_new_at(cases[i].fn, f, cases[i].fn_name,
                                                   __FILE__, __LINE__),
                                cases[i].name));
  /* Each task runs once and suspends (the yielding one with its resume
   * still queued); then the loop stops and closing it reports them all. */
  cor_call_soon(l, stop_cb, l, NULL);
  cor_loop_run_forever(l);
  cor_loop_close(l);
  for (size_t i = 0; i < n; i++) {
    char want[200];
    snprintf(want, sizeof want, "<Task pending name='%s' coro=<%s() running at %s>",
             cases[i].name, cases[i].fn_name, at(*cases[i].line));
    EXPECT(COR_LOG_ERROR, "Task was destroyed but it is pending!\n", want, NULL);
  }
  cor_release(f);
  cor_release(l);
}
static void test_tail_call_sites(void **state) {
  (void)state;
  tail_sites(false);
  nrec = 0;
  tail_sites(true);
}

/* The watchdog thread sleeps between its looks at the loop: an idle loop
 * with a watchdog costs next to no CPU. (Its waits once took CLOCK_MONOTONIC
 * deadlines on a CLOCK_REALTIME condition variable and returned at once.) */
static void test_watchdog_sleeps(void **state) {
  (void)state;
  cor_loop_opts o = {.debug = true};
  cor_loop_t *l = cor_loop_new(&o);
  assert_int_equal(cor_loop_set_watchdog(l, 0.1), 0);
  struct timespec a, b;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
  sleep_ms(500);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
  double cpu = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  assert_int_equal(cor_loop_set_watchdog(l, 0), 0);
  cor_loop_close(l);
  cor_release(l);
  if (cpu >= 0.1)
    print_message("the process used %.3f s of CPU in 0.5 s\n", cpu);
  assert_true(cpu < 0.1);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], DUMP_CHILD_ARG) == 0)
    return dump_signal_child();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_turning_on, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_never_awaited, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_never_awaited_debug, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_never_retrieved, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_never_retrieved_debug, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_future_never_retrieved, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_pending_destroyed, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_exception_handler, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_slow_callbacks, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_unclosed_loop, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_dump_tasks, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_dump_stream_wait, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_watchdog, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_production_logs_no_debug_records, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_threadsafe_slow_callbacks, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_watchdog_threadsafe, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_threadsafe_debug_toggled, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_threadsafe_bounded_sites, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_poll_overslept, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_poll_overslept_late, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_poll_zero_timeout_slow, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_signal_callback_timed, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_dump_signal, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_tail_call_sites, logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_watchdog_sleeps, logcap_setup, logcap_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
