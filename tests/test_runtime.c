/* SPDX-License-Identifier: MIT */
/* The per-core runtime: placement, spawning from many threads, cross-loop
 * await chains, time-outs and cancellation, phased shutdown with a deadline,
 * the bounded door, counters, fork, pinning, signals. */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include <corio.h>

#include "logcap.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int add_one(void *arg, void **result) {
  *result = (void *)((intptr_t)arg + 1);
  return 0;
}

/* ------------------------------------------------------------ log capture */

static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static char cap_buf[65536];
static size_t cap_len;
static void cap_sink(void *arg, int level, const char *logger, const char *msg) {
  pthread_mutex_lock(&cap_lock);
  int n = snprintf(cap_buf + cap_len, sizeof cap_buf - cap_len, "%s\n", msg);
  if (n > 0 && cap_len + (size_t)n < sizeof cap_buf)
    cap_len += (size_t)n;
  pthread_mutex_unlock(&cap_lock);
}
static void cap_start(void) {
  pthread_mutex_lock(&cap_lock);
  cap_len = 0;
  cap_buf[0] = 0;
  pthread_mutex_unlock(&cap_lock);
  cor_log_set_sink(cap_sink, NULL);
}
static void cap_stop(void) {
  cor_log_flush();
  cor_log_set_sink(sink, NULL); /* logcap's, as the group set it */
}

/* ------------------------------------------------------------ basics */

static int where_am_i(void *arg, void **result) {
  unsigned idx = 999;
  cor_runtime_t *rt = cor_runtime_current(&idx);
  if (rt != arg)
    return -EINVAL;
  *result = (void *)(uintptr_t)idx;
  return 0;
}

static void test_basics(void **state) {
  recs_clear();
  cpu_set_t mask;
  assert_int_equal(sched_getaffinity(0, sizeof mask, &mask), 0);
  cor_runtime_t *rt = cor_runtime_new(NULL);
  assert_non_null(rt);
  assert_int_equal(cor_runtime_nloops(rt), (unsigned)CPU_COUNT(&mask));
  assert_null(cor_runtime_current(NULL));
  for (unsigned i = 0; i < cor_runtime_nloops(rt); i++) {
    assert_non_null(cor_runtime_loop(rt, i));
    assert_true(cor_runtime_loop_cpu(rt, i) >= 0);
    void *r;
    cor_cfuture_t *cf = cor_runtime_spawn_on(rt, i, cor_coro(where_am_i, rt), "where");
    assert_non_null(cf);
    assert_int_equal(cor_cfuture_result(cf, 5, &r), 0);
    assert_int_equal((unsigned)(uintptr_t)r, i);
    cor_release(cf);
  }
  assert_null(cor_runtime_loop(rt, 1000));
  assert_null(cor_runtime_spawn_on(rt, 1000, cor_coro(add_one, NULL), NULL));
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0); /* idempotent */
  assert_null(cor_runtime_spawn(rt, cor_coro(add_one, NULL), NULL));
  assert_int_equal(errno, -COR_ECLOSED);
  cor_release(rt);

  cor_runtime_opts o = {.nloops = 3, .pin = -1};
  rt = cor_runtime_new(&o);
  assert_int_equal(cor_runtime_nloops(rt), 3);
  assert_int_equal(cor_runtime_loop_cpu(rt, 2), -1);
  cor_release(rt); /* shuts down on the last reference */
  EXPECT_RECORDS(1, COR_LOG_ERROR, "(): invalid argument");
}

static int main_fn(void *arg, void **result) {
  /* main may spawn onto the other loops and await them */
  cor_runtime_t *rt = cor_runtime_current(NULL);
  cor_cfuture_t *cf = cor_runtime_spawn(rt, cor_coro(add_one, arg), NULL);
  void *r;
  int rc = cor_await_cfuture(cf, &r);
  cor_release(cf);
  *result = r;
  return rc;
}

static void test_run(void **state) {
  cor_runtime_t *rt = cor_runtime_new(NULL);
  void *r = NULL;
  assert_int_equal(cor_runtime_run(rt, main_fn, (void *)10, &r), 0);
  assert_ptr_equal(r, (void *)11);
  assert_int_equal(cor_runtime_run(rt, main_fn, (void *)10, &r), COR_ECLOSED);
  cor_release(rt);
}

/* ------------------------------------------------------------ many threads */

typedef struct {
  cor_runtime_t *rt;
  int id;
  long n;
  long bad;
} spawner_arg;

static void *spawner(void *p) {
  spawner_arg *a = p;
  enum { BATCH = 16 };
  cor_cfuture_t *cfs[BATCH];
  long base = (long)a->id << 32;
  for (long i = 0; i < a->n; i += BATCH) {
    int k = 0;
    for (; k < BATCH && i + k < a->n; k++) {
      cfs[k] = cor_runtime_spawn(a->rt, cor_coro(add_one, (void *)(intptr_t)(base + i + k)), NULL);
      if (cfs[k] == NULL) {
        a->bad++;
        k--;
        break;
      }
    }
    for (int j = 0; j < k; j++) {
      void *r = NULL;
      if (cor_cfuture_result(cfs[j], 30, &r) != 0 || (intptr_t)r != base + i + j + 1)
        a->bad++;
      cor_release(cfs[j]);
    }
  }
  return NULL;
}

static void test_spawn_many_threads(void **state) {
  cor_runtime_t *rt = cor_runtime_new(NULL);
  enum { T = 8 };
  pthread_t th[T];
  spawner_arg a[T];
  for (int i = 0; i < T; i++) {
    a[i] = (spawner_arg){rt, i, test_scale(20000, 1000), 0};
    pthread_create(&th[i], NULL, spawner, &a[i]);
  }
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(a[i].bad, 0);
  }
  cor_loop_counters c;
  for (unsigned i = 0; i < cor_runtime_nloops(rt); i++) {
    assert_int_equal(cor_runtime_loop_counters(rt, i, &c), 0);
    assert_int_equal(c.tasks, 0);
    assert_true(c.loop.threadsafe_run > 0);
    assert_true(c.busy_ns + c.idle_ns > 0);
  }
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  cor_release(rt);
}

/* Placement follows live tasks: long tasks spread evenly. */
static int sleep_long(void *arg, void **result) { return cor_sleep(*(double *)arg); }

static void test_placement(void **state) {
  cor_runtime_opts o = {.nloops = 4, .pin = -1};
  cor_runtime_t *rt = cor_runtime_new(&o);
  static double d = 30;
  cor_cfuture_t *cf[40];
  for (int i = 0; i < 40; i++)
    cf[i] = cor_runtime_spawn(rt, cor_coro(sleep_long, &d), NULL);
  for (unsigned i = 0; i < 4; i++) {
    cor_loop_counters c;
    cor_runtime_loop_counters(rt, i, &c);
    assert_int_equal(c.tasks, 10);
  }
  double t0 = now_s();
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0); /* they take the cancel */
  assert_true(now_s() - t0 < 2);
  for (int i = 0; i < 40; i++) {
    assert_int_equal(cor_cfuture_result(cf[i], 0, NULL), -ECANCELED);
    cor_release(cf[i]);
  }
  cor_release(rt);
}

/* ------------------------------------------------------------ chains */

static cor_runtime_t *g_rt;

/* depth d: runs on loop d % 2 and awaits depth d - 1 on the other loop. */
static int chain(void *arg, void **result) {
  intptr_t d = (intptr_t)arg;
  unsigned here = 99;
  cor_runtime_current(&here);
  if (here != (unsigned)(d % 2))
    return -EXDEV;
  if (d == 0) {
    *result = (void *)1;
    return 0;
  }
  cor_cfuture_t *cf = cor_runtime_spawn_on(g_rt, (unsigned)((d - 1) % 2),
                                           cor_coro(chain, (void *)(d - 1)), NULL);
  if (cf == NULL)
    return -errno;
  void *r;
  int rc = cor_await_cfuture(cf, &r);
  cor_release(cf);
  if (rc)
    return rc;
  *result = (void *)((intptr_t)r + 1);
  return 0;
}

static void test_cross_loop_chains(void **state) {
  cor_runtime_opts o = {.nloops = 2};
  g_rt = cor_runtime_new(&o);
  /* 0 awaits 1 awaits 0 ... down to depth 0, several chains at once */
  enum { C = 8 };
  cor_cfuture_t *cf[C];
  intptr_t depth = test_scale(40, 10);
  for (int i = 0; i < C; i++)
    cf[i] = cor_runtime_spawn_on(g_rt, (unsigned)(depth % 2), cor_coro(chain, (void *)depth), NULL);
  for (int i = 0; i < C; i++) {
    void *r;
    assert_int_equal(cor_cfuture_result(cf[i], 30, &r), 0);
    assert_int_equal((intptr_t)r, depth + 1);
    cor_release(cf[i]);
  }
  assert_int_equal(cor_runtime_shutdown(g_rt, 5), 0);
  cor_release(g_rt);
}

/* ------------------------------------------------------------ timeouts/cancel */

static _Atomic int saw_cancel, cancellable_started;
static int cancellable(void *arg, void **result) {
  atomic_fetch_add(&cancellable_started, 1);
  int rc = cor_sleep(30);
  if (rc == -ECANCELED)
    atomic_fetch_add(&saw_cancel, 1);
  return rc;
}

/* A task on loop 0 awaits one on loop 1 with a time-out, then cancels it. */
static int await_with_timeout(void *arg, void **result) {
  cor_runtime_t *rt = arg;
  cor_cfuture_t *cf = cor_runtime_spawn_on(rt, 1, cor_coro(cancellable, NULL), NULL);
  /* wait_for on a local future that the cfuture completes: here simply
   * poll-await with a sleep, then cancel from this loop's side. */
  int rc = cor_sleep(0.05);
  for (int i = 0; rc == 0 && i < 500 && atomic_load(&cancellable_started) < 2;
       i++)
    rc = cor_sleep(0.01); /* slow machine: let it start first */
  if (rc)
    return rc;
  if (cor_cfuture_done(cf))
    return -EPROTO;
  cor_cfuture_cancel(cf);
  rc = cor_await_cfuture(cf, NULL);
  cor_release(cf);
  return rc == -ECANCELED ? 0 : -EPROTO;
}

/* A task cancelled before it first runs never runs its body (as asyncio's):
 * wait until n of them started, so that each one sees its cancellation
 * however slow the machine (sanitizers, load). */
static void wait_started(int n) {
  for (int i = 0; i < 5000 && atomic_load(&cancellable_started) < n; i++)
    usleep(1000);
  assert_true(atomic_load(&cancellable_started) >= n);
}

static void test_timeouts_and_cancel(void **state) {
  cor_runtime_opts o = {.nloops = 2};
  atomic_store(&cancellable_started, 0);
  cor_runtime_t *rt = cor_runtime_new(&o);
  atomic_store(&saw_cancel, 0);
  /* caller side: time-out, then cancel */
  cor_cfuture_t *cf = cor_runtime_spawn_on(rt, 1, cor_coro(cancellable, NULL), "c1");
  wait_started(1);
  double t0 = now_s();
  assert_int_equal(cor_cfuture_result(cf, 0.05, NULL), -ETIMEDOUT);
  assert_true(now_s() - t0 < 1);
  assert_int_equal(cor_cfuture_cancel(cf), 0);
  assert_int_equal(cor_cfuture_result(cf, 5, NULL), -ECANCELED);
  cor_release(cf);
  /* from another loop's task */
  cf = cor_runtime_spawn_on(rt, 0, cor_coro(await_with_timeout, rt), "c2");
  assert_int_equal(cor_cfuture_result(cf, 5, NULL), 0);
  cor_release(cf);
  /* task side: the loop cancels it (shutdown), the caller sees -ECANCELED */
  cf = cor_runtime_spawn_on(rt, 1, cor_coro(cancellable, NULL), "c3");
  wait_started(3);
  assert_int_equal(cor_cfuture_result(cf, 0.02, NULL), -ETIMEDOUT);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  assert_int_equal(cor_cfuture_result(cf, 0, NULL), -ECANCELED);
  cor_release(cf);
  for (int i = 0; i < 200 && atomic_load(&saw_cancel) < 3; i++)
    usleep(1000);
  assert_int_equal(atomic_load(&saw_cancel), 3);
  cor_release(rt);
}

/* ------------------------------------------------------------ shutdown */

static int stubborn_brief(void *arg, void **result) {
  /* Ignores cancellation for 0.2 s, then gives up. */
  double end = now_s() + 30;
  bool cancelled = false;
  while (now_s() < end) {
    int rc = cor_sleep(0.01);
    if (rc == -ECANCELED && !cancelled) {
      cancelled = true;
      end = now_s() + 0.2;
    }
  }
  return cancelled ? -ECANCELED : 0;
}

static int stubborn_forever(void *arg, void **result) {
  for (;;)
    cor_sleep(0.01); /* ignores every cancellation */
  return 0;
}

static int try_shutdown_inside(void *arg, void **result) {
  return cor_runtime_shutdown(arg, 1) == COR_ETHREAD ? 0 : -EPROTO;
}

static void test_shutdown_deadline(void **state) {
  cor_runtime_opts o = {.nloops = 2};
  cor_runtime_t *rt = cor_runtime_new(&o);
  cor_cfuture_t *in = cor_runtime_spawn(rt, cor_coro(try_shutdown_inside, rt), NULL);
  assert_int_equal(cor_cfuture_result(in, 5, NULL), 0);
  cor_release(in);
  /* Brief ones only: they finish within the deadline. */
  cor_cfuture_t *b[4];
  for (int i = 0; i < 4; i++)
    b[i] = cor_runtime_spawn(rt, cor_coro(stubborn_brief, NULL), "brief");
  usleep(20000);
  double t0 = now_s();
  assert_int_equal(cor_runtime_shutdown(rt, 3), 0);
  double el = now_s() - t0;
  assert_true(el >= 0.15 && el < 2.5);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(cor_cfuture_result(b[i], 0, NULL), -ECANCELED);
    cor_release(b[i]);
  }
  cor_release(rt);

  /* One that never finishes: the deadline is kept, the report names it. */
  rt = cor_runtime_new(&o);
  cor_cfuture_t *f = cor_runtime_spawn_on(rt, 1, cor_coro(stubborn_forever, NULL), "forever-task");
  cor_cfuture_t *g = cor_runtime_spawn_on(rt, 0, cor_coro(stubborn_brief, NULL), "brief-task");
  usleep(20000);
  cap_start();
  t0 = now_s();
  /* brief-task needs 0.2 s after its cancellation: a deadline far enough
   * past that for a loaded machine under TSan. */
  assert_int_equal(cor_runtime_shutdown(rt, 1.5), -ETIMEDOUT);
  el = now_s() - t0;
  cap_stop();
  assert_true(el < 1.5 + 0.1);
  pthread_mutex_lock(&cap_lock);
  assert_non_null(strstr(cap_buf, "forever-task"));
  assert_non_null(strstr(cap_buf, "stubborn_forever"));
  assert_non_null(strstr(cap_buf, "test_runtime.c:"));
  assert_null(strstr(cap_buf, "brief-task' ("));
  /* The forever task's sleep timer is its own, not reported as a handle. */
  assert_null(strstr(cap_buf, "sleep_fire"));
  pthread_mutex_unlock(&cap_lock);
  /* Destroyed with its loop: the cfuture is completed, not left hanging. */
  assert_int_equal(cor_cfuture_result(f, 1, NULL), COR_ECLOSED);
  assert_int_equal(cor_cfuture_result(g, 1, NULL), -ECANCELED);
  cor_release(f);
  cor_release(g);
  cor_release(rt);
}

/* ------------------------------------------------------------ bounded door */

static _Atomic int gate;   /* 1 while the blocker must hold loop 0 */
static _Atomic int ran;
static void blocker(void *arg) {
  while (atomic_load(&gate))
    usleep(500);
}
static void count_cb(void *arg) { atomic_fetch_add(&ran, 1); }

typedef struct {
  cor_loop_t *loop;
  int rc;
} waitpost_arg;
static void *waitpost(void *p) {
  waitpost_arg *a = p;
  a->rc = cor_call_soon_threadsafe_wait(a->loop, count_cb, NULL, 10);
  return NULL;
}

/* The report names handles and executor jobs too, with their sites. */
static void later_cb(void *arg) {}
static int slow_job(void *arg, void **result) {
  usleep(800000); /* blocking work that outlives the deadline */
  return 0;
}
static int job_line, timer_line;
static int leave_work(void *arg, void **result) {
  cor_future_t *f = cor_run_in_executor(NULL, NULL, slow_job, NULL); job_line = __LINE__;
  if (f == NULL)
    return -errno;
  cor_release(f); /* nobody waits for it */
  int rc = cor_call_later(cor_get_running_loop(), 100, later_cb, NULL, NULL); timer_line = __LINE__;
  usleep(10000); /* let a worker take the job */
  return rc;
}

static void report_left(bool debug) {
  cor_runtime_opts o = {.nloops = 1, .debug = debug};
  cor_runtime_t *rt = cor_runtime_new(&o);
  cor_cfuture_t *cf = cor_runtime_spawn(rt, cor_coro(leave_work, NULL), "leaver");
  assert_int_equal(cor_cfuture_result(cf, 5, NULL), 0);
  cor_release(cf);
  cap_start();
  double t0 = now_s();
  assert_int_equal(cor_runtime_shutdown(rt, 0.3), -ETIMEDOUT);
  double el = now_s() - t0;
  cap_stop();
  assert_true(el < 0.3 + 0.1);
  char want[128];
  pthread_mutex_lock(&cap_lock);
  assert_non_null(strstr(cap_buf, "executor job slow_job() submitted at "));
  snprintf(want, sizeof want, "test_runtime.c:%d still running in thread pool", job_line);
  assert_non_null(strstr(cap_buf, want));
  if (debug)
    snprintf(want, sizeof want, "<Handle later_cb() created at tests/test_runtime.c:%d> (timer due in", timer_line);
  else
    snprintf(want, sizeof want, "<Handle later_cb()> (timer due in");
  assert_non_null(strstr(cap_buf, want));
  assert_non_null(strstr(cap_buf, "runtime shutdown: loop 0: "));
  /* The runtime's own shutdown check is not reported as a user's handle. */
  assert_null(strstr(cap_buf, "sd_check"));
  pthread_mutex_unlock(&cap_lock);
  cor_release(rt);
  usleep(900000); /* the job ends; its completion to the closed loop is dropped */
}
static void test_shutdown_report(void **state) {
  report_left(false);
  report_left(true);
}

static void test_queue_limit(void **state) {
  enum { LIMIT = 8 };
  cor_runtime_opts o = {.nloops = 1, .queue_limit = LIMIT};
  cor_runtime_t *rt = cor_runtime_new(&o);
  cor_loop_t *loop = cor_runtime_loop(rt, 0);
  atomic_store(&gate, 1);
  atomic_store(&ran, 0);
  assert_int_equal(cor_try_call_soon_threadsafe(loop, blocker, NULL), 0);
  usleep(20000); /* the blocker runs and holds the loop */
  /* The running blocker still counts until its batch ends. */
  int ok = 0;
  while (cor_try_call_soon_threadsafe(loop, count_cb, NULL) == 0)
    ok++;
  assert_int_equal(ok, LIMIT - 1);
  assert_int_equal(cor_try_call_soon_threadsafe(loop, count_cb, NULL), -EAGAIN);
  cor_loop_counters c;
  cor_runtime_loop_counters(rt, 0, &c);
  assert_int_equal(c.queue_depth, LIMIT);
  /* the blocking form keeps its deadline */
  double t0 = now_s();
  assert_int_equal(cor_call_soon_threadsafe_wait(loop, count_cb, NULL, 0.05), -ETIMEDOUT);
  assert_true(now_s() - t0 >= 0.045 && now_s() - t0 < 1);
  /* the unbounded call is never refused */
  assert_int_equal(cor_call_soon_threadsafe(loop, count_cb, NULL), 0);
  /* waiters are woken when the loop makes room */
  waitpost_arg wa[3] = {{loop, 1}, {loop, 1}, {loop, 1}};
  pthread_t th[3];
  for (int i = 0; i < 3; i++)
    pthread_create(&th[i], NULL, waitpost, &wa[i]);
  usleep(30000);
  t0 = now_s();
  atomic_store(&gate, 0);
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(wa[i].rc, 0);
  }
  assert_true(now_s() - t0 < 1);
  for (int i = 0; i < 1000 && atomic_load(&ran) < LIMIT - 1 + 1 + 3; i++)
    usleep(1000);
  assert_int_equal(atomic_load(&ran), LIMIT - 1 + 1 + 3);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  assert_int_equal(cor_try_call_soon_threadsafe(loop, count_cb, NULL), COR_ECLOSED);
  cor_release(rt);
}

/* ------------------------------------------------------------ fork */

/* Children report through a pipe: a sanitizer may rewrite a child's exit
 * status (TSan turns it into 66 when the parent had reports before fork). */
static int child_pipe[2];
static _Noreturn void child_exit(int code) {
  unsigned char c = (unsigned char)code;
  ssize_t w = write(child_pipe[1], &c, 1);
  (void)w;
  _exit(code);
}
static int child_wait(pid_t pid) {
  close(child_pipe[1]);
  unsigned char c = 255;
  ssize_t r = read(child_pipe[0], &c, 1);
  close(child_pipe[0]);
  int st;
  waitpid(pid, &st, 0);
  return r == 1 ? c : 254;
}

static void test_fork_child(void **state) {
  cor_runtime_opts o = {.nloops = 2};
  cor_runtime_t *rt = cor_runtime_new(&o);
  static double d = 30;
  cor_cfuture_t *pending = cor_runtime_spawn(rt, cor_coro(sleep_long, &d), NULL);
  cor_log_set_level(COR_LOG_CRITICAL); /* the child's one explanation */
  assert_int_equal(pipe(child_pipe), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(10);
    int bad = 0;
    errno = 0;
    if (cor_runtime_spawn(rt, cor_coro(add_one, NULL), NULL) != NULL || errno != -COR_ECLOSED)
      bad |= 1;
    if (cor_call_soon_threadsafe(cor_runtime_loop(rt, 0), count_cb, NULL) != COR_ECLOSED)
      bad |= 2;
    if (cor_cfuture_result(pending, 5, NULL) != COR_ECLOSED)
      bad |= 4;
    if (cor_runtime_shutdown(rt, 1) != COR_ECLOSED)
      bad |= 8;
    if (cor_runtime_new(NULL) != NULL)
      bad |= 16;
    child_exit(bad);
  }
  int st = child_wait(pid);
  cor_log_set_level(COR_LOG_INFO);
  assert_int_equal(st, 0);
  /* the parent is untouched */
  cor_cfuture_t *cf = cor_runtime_spawn(rt, cor_coro(add_one, (void *)1), NULL);
  void *r;
  assert_int_equal(cor_cfuture_result(cf, 5, &r), 0);
  assert_ptr_equal(r, (void *)2);
  cor_release(cf);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  assert_int_equal(cor_cfuture_result(pending, 0, NULL), -ECANCELED);
  cor_release(pending);
  cor_release(rt);
}

/* ------------------------------------------------------------ pinning */

static int check_pinned(void *arg, void **result) {
  int want = (int)(intptr_t)arg;
  cpu_set_t m;
  if (sched_getaffinity(0, sizeof m, &m) != 0)
    return -errno;
  if (CPU_COUNT(&m) != 1 || !CPU_ISSET(want, &m))
    return -EXDEV;
  if (sched_getcpu() != want)
    return -EXDEV;
  /* and the signals are blocked in loop threads */
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  if (!sigismember(&cur, SIGINT) || !sigismember(&cur, SIGTERM) ||
      sigismember(&cur, SIGSEGV))
    return -EPROTO;
  return 0;
}

static void test_pinning_narrowed(void **state) {
  cpu_set_t mask;
  assert_int_equal(sched_getaffinity(0, sizeof mask, &mask), 0);
  int last = -1;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &mask))
      last = c;
  assert_int_equal(pipe(child_pipe), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(20);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0)
      child_exit(77);
    cor_runtime_t *rt = cor_runtime_new(NULL);
    if (rt == NULL || cor_runtime_nloops(rt) != 1 || cor_runtime_loop_cpu(rt, 0) != last)
      child_exit(1);
    cor_cfuture_t *cf = cor_runtime_spawn(rt, cor_coro(check_pinned, (void *)(intptr_t)last), NULL);
    int rc = cor_cfuture_result(cf, 5, NULL);
    cor_release(cf);
    cor_release(rt);
    if (rc != 0)
      child_exit(2);
    /* more loops than CPUs: all on the one CPU */
    cor_runtime_opts o = {.nloops = 3};
    rt = cor_runtime_new(&o);
    for (unsigned i = 0; i < 3; i++) {
      cf = cor_runtime_spawn_on(rt, i, cor_coro(check_pinned, (void *)(intptr_t)last), NULL);
      rc = cor_cfuture_result(cf, 5, NULL);
      cor_release(cf);
      if (rc != 0)
        child_exit(3);
    }
    cor_release(rt);
    child_exit(0);
  }
  int st = child_wait(pid);
  TEST_SKIP_IF(st == 77, "sched_setaffinity not permitted");
  assert_int_equal(st, 0);
}

/* ------------------------------------------------------------ signals */

static _Atomic int sig_hits;
static _Atomic int sig_on_loop = -1;
static void on_usr1(void *arg) {
  unsigned idx = 99;
  cor_runtime_current(&idx);
  atomic_store(&sig_on_loop, (int)idx);
  atomic_fetch_add(&sig_hits, 1);
}
static _Atomic int add_rc = 1;
static void add_handler(void *loop) {
  atomic_store(&add_rc, cor_loop_add_signal_handler(loop, SIGUSR1, on_usr1, NULL));
}
static void remove_handler(void *loop) {
  atomic_store(&add_rc, cor_loop_remove_signal_handler(loop, SIGUSR1));
}

static void test_signals(void **state) {
  cor_runtime_opts o = {.nloops = 2};
  cor_runtime_t *rt = cor_runtime_new(&o);
  cor_loop_t *l1 = cor_runtime_loop(rt, 1);
  cor_call_soon_threadsafe(l1, add_handler, l1);
  while (atomic_load(&add_rc) == 1)
    usleep(1000);
  assert_int_equal(atomic_load(&add_rc), 0);
  /* process-directed, main thread unblocked: the kernel picks main */
  kill(getpid(), SIGUSR1);
  for (int i = 0; i < 2000 && atomic_load(&sig_hits) < 1; i++)
    usleep(1000);
  assert_int_equal(atomic_load(&sig_hits), 1);
  assert_int_equal(atomic_load(&sig_on_loop), 1);
  /* every thread blocks it: it stays pending on the process and loop 1's
   * signalfd still reads it */
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &one, &old);
  kill(getpid(), SIGUSR1);
  for (int i = 0; i < 2000 && atomic_load(&sig_hits) < 2; i++)
    usleep(1000);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  assert_int_equal(atomic_load(&sig_hits), 2);
  atomic_store(&add_rc, 1);
  cor_call_soon_threadsafe(l1, remove_handler, l1);
  while (atomic_load(&add_rc) == 1)
    usleep(1000);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  cor_release(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basics),
      cmocka_unit_test(test_run),
      cmocka_unit_test(test_spawn_many_threads),
      cmocka_unit_test(test_placement),
      cmocka_unit_test(test_cross_loop_chains),
      cmocka_unit_test(test_timeouts_and_cancel),
      cmocka_unit_test(test_shutdown_deadline),
      cmocka_unit_test(test_shutdown_report),
      cmocka_unit_test(test_queue_limit),
      cmocka_unit_test(test_fork_child),
      cmocka_unit_test(test_pinning_narrowed),
      cmocka_unit_test(test_signals),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
