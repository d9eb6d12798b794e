/* SPDX-License-Identifier: MIT */
/* The loop's time counters (cor_loop_stats busy_ns / idle_ns): what they
 * mean, checked against the wall clock and the loop thread's CPU clock,
 * with generous tolerances (functional checks, not timings). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "loop/loop.h"
#include "testutil.h"

#include <corio.h>


#define MS 1000000ull

static uint64_t clock_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static uint64_t wall(void) { return clock_ns(CLOCK_MONOTONIC); }

static void spin_for(uint64_t ns) {
  uint64_t until = wall() + ns;
  while (wall() < until) {
  }
}

static cor_loop_stats stats(cor_loop_t *loop) {
  cor_loop_stats st;
  assert_int_equal(cor_loop_get_stats(loop, &st), 0);
  return st;
}

/* busy + idle is the run's wall time. The test's own clock reads bracket
 * the loop's (run start and end are read inside cor_loop_run_forever), so
 * the sum is short of the bracket only by the call's entry and exit: 5 ms
 * covers a preemption on a loaded 2-core machine. It may exceed the
 * bracket only by what readers' high-water marks hold above the exact
 * figures (the loop publishes times it read a little earlier: below 1 ms
 * even on a preempted loop thread; microseconds in practice). */
#define BRACKET_SLACK (5 * MS)
#define OVER (1 * MS)

static void stop_cb(void *arg) { cor_loop_stop(arg); }

/* ------------------------------------------------------------ idle */

typedef struct {
  cor_loop_t *loop;
  uint64_t idle_mid, busy_mid;
} idle_probe;

static void *idle_reader(void *p) {
  idle_probe *ip = p;
  usleep(150000); /* the loop is asleep until its 300 ms timer */
  cor_loop_stats st = stats(ip->loop);
  ip->idle_mid = st.idle_ns;
  ip->busy_mid = st.busy_ns;
  return NULL;
}

/* An idle loop reads idle, also while it sleeps (the sleep in progress
 * counts), and busy stays near zero. */
static void test_idle_loop(void **state) {
  cor_loop_t *loop = cor_loop_new(NULL);
  assert_non_null(loop);
  cor_loop_stats st0 = stats(loop);
  assert_true(st0.busy_ns == 0 && st0.idle_ns == 0); /* never ran */
  assert_int_equal(cor_call_later(loop, 0.3, stop_cb, loop, NULL), 0);
  idle_probe ip = {.loop = loop};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, idle_reader, &ip), 0);
  uint64_t t0 = wall();
  assert_int_equal(cor_loop_run_forever(loop), 0);
  uint64_t t1 = wall();
  pthread_join(th, NULL);
  cor_loop_stats st = stats(loop);
  /* 150 ms in, the loop had been asleep ~150 ms: the reader saw it idle. */
  assert_true(ip.idle_mid >= 100 * MS);
  assert_true(ip.busy_mid < 20 * MS);
  assert_true(st.busy_ns + st.idle_ns <= t1 - t0 + OVER);
  assert_true(st.busy_ns + st.idle_ns + BRACKET_SLACK >= t1 - t0);
  assert_true(st.idle_ns >= 280 * MS);
  assert_true(st.busy_ns < 20 * MS); /* a timer and a stop */
  /* Between runs nothing moves. */
  usleep(20000);
  cor_loop_stats st2 = stats(loop);
  assert_true(st2.busy_ns == st.busy_ns && st2.idle_ns == st.idle_ns);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

/* ------------------------------------------------------------ busy */

static void spin_200ms(void *arg) {
  spin_for(200 * MS);
  cor_loop_stop(arg);
}

/* A callback busy for 200 ms: busy ~ 200 ms, and at least the CPU time the
 * loop thread used (the loop's own idle spins and system calls are idle,
 * but are bounded: 20 ms is far more than a few 50 us spins). */
static void test_busy_callback(void **state) {
  cor_loop_t *loop = cor_loop_new(NULL);
  assert_non_null(loop);
  assert_int_equal(cor_call_soon(loop, spin_200ms, loop, NULL), 0);
  uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), t0 = wall();
  assert_int_equal(cor_loop_run_forever(loop), 0);
  uint64_t t1 = wall(), c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  cor_loop_stats st = stats(loop);
  assert_true(st.busy_ns >= 200 * MS);
  assert_true(st.busy_ns + 20 * MS >= c1 - c0);
  assert_true(st.busy_ns <= t1 - t0 + OVER);
  assert_true(st.busy_ns + st.idle_ns <= t1 - t0 + OVER);
  assert_true(st.busy_ns + st.idle_ns + BRACKET_SLACK >= t1 - t0);
  assert_true(st.idle_ns < 20 * MS); /* a spin at most */
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

/* Timers due within the idle spin (10 us away, the spin is 50 us): the
 * spin ends on the timer, and the timer's callback is busy, not idle. */
static int short_left;
static void short_timer_cb(void *arg) {
  spin_for(2 * MS);
  if (--short_left > 0)
    assert_int_equal(cor_call_later(arg, 10e-6, short_timer_cb, arg, NULL), 0);
  else
    cor_loop_stop(arg);
}

static void test_short_timers(void **state) {
  cor_loop_t *loop = cor_loop_new(NULL);
  assert_non_null(loop);
  short_left = 50;
  assert_int_equal(cor_call_later(loop, 10e-6, short_timer_cb, loop, NULL), 0);
  uint64_t t0 = wall();
  assert_int_equal(cor_loop_run_forever(loop), 0);
  uint64_t t1 = wall();
  cor_loop_stats st = stats(loop);
  assert_true(st.busy_ns >= 50 * 2 * MS);
  assert_true(st.busy_ns + st.idle_ns <= t1 - t0 + OVER);
  assert_true(st.busy_ns + st.idle_ns + BRACKET_SLACK >= t1 - t0);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

/* ------------------------------------------------------------ mixed, both
 * back-ends, monotonic from another thread */

#define ROUNDS 6
#define WORK_MS 25

typedef struct {
  cor_loop_t *loop;
  int peer;          /* the socket end the sampler writes to */
  int done;          /* atomic */
  long samples, back; /* sampler: samples taken, counters seen going back */
  long sum_back;      /* busy + idle seen going back */
  bool uring;         /* the loop had a ring while it ran */
} mixed_t;

static void *sampler(void *p) {
  mixed_t *m = p;
  cor_loop_stats prev = stats(m->loop);
  uint64_t next_write = wall() + WORK_MS * MS;
  int written = 0;
  /* Bounded: ROUNDS bytes, 5 s at most. */
  uint64_t give_up = wall() + 5000 * MS;
  while (!__atomic_load_n(&m->done, __ATOMIC_ACQUIRE) && wall() < give_up) {
    cor_loop_stats st = stats(m->loop);
    m->samples++;
    if (st.busy_ns < prev.busy_ns || st.idle_ns < prev.idle_ns)
      m->back++;
    if (st.busy_ns + st.idle_ns < prev.busy_ns + prev.idle_ns)
      m->sum_back++;
    prev = st;
    if (written < ROUNDS && wall() >= next_write) {
      assert_int_equal(write(m->peer, "x", 1), 1);
      written++;
      /* the loop sleeps ~WORK_MS waiting for the next byte */
      next_write = wall() + 2 * WORK_MS * MS;
    }
    if ((m->samples & 15) == 0)
      usleep(100);
  }
  return NULL;
}

/* The task: works WORK_MS, then waits in the poller for the next byte. */
static int mixed_main(void *arg, void **res) {
  mixed_t *m = arg;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  m->peer = sv[1];
  cor_stream_t *s = cor_stream_from_fd(m->loop, sv[0]);
  assert_non_null(s);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, sampler, m), 0);
  for (int i = 0; i < ROUNDS; i++) {
    spin_for(WORK_MS * MS);
    char c;
    assert_int_equal(cor_stream_read(s, &c, 1), 1);
  }
  m->uring = m->loop->uring != NULL;
  __atomic_store_n(&m->done, 1, __ATOMIC_RELEASE);
  pthread_join(th, NULL);
  cor_stream_close(s);
  cor_stream_free(s);
  close(sv[1]);
  return 0;
}

/* core/uring.c: the process's socket back-end (1 io_uring, -1 epoll). */
int cor__io_backend_auto(void);

static bool uring_possible(void) {
  if (cor__io_backend_auto() < 0) /* CORIO_IO=epoll, or the probe's choice */
    return false;
  struct { uint32_t a[30]; } params; /* struct io_uring_params: 120 bytes */
  memset(&params, 0, sizeof params);
  int fd = (int)syscall(425 /* io_uring_setup */, 4, &params);
  if (fd < 0)
    return false;
  close(fd);
  return true;
}

static void mixed(int io_uring) {
  cor_loop_opts o = {.io_uring = io_uring};
  mixed_t m = {0};
  m.loop = cor_loop_new(&o);
  assert_non_null(m.loop);
  cor_task_t *t = cor_create_task(m.loop, cor_coro(mixed_main, &m), NULL);
  assert_non_null(t);
  uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), t0 = wall();
  assert_int_equal(cor_loop_run_until_complete(m.loop, cor_task_future(t)), 0);
  uint64_t t1 = wall(), c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  cor_release(t);
  cor_loop_stats st = stats(m.loop);
  if (io_uring < 0)
    assert_false(m.uring);
  else if (uring_possible())
    assert_true(m.uring);
  assert_true(m.samples > 100);
  assert_int_equal(m.back, 0);
  assert_int_equal(m.sum_back, 0);
  assert_true(st.busy_ns + st.idle_ns <= t1 - t0 + OVER);
  assert_true(st.busy_ns + st.idle_ns + BRACKET_SLACK >= t1 - t0);
  /* ROUNDS * WORK_MS of work in the task; the waits for the bytes (~WORK_MS
   * each) are idle. The sampler thread shares 2 cores with the loop, so a
   * preempted work round may stretch: busy has no tight upper bound, only
   * that the loop slept at least half the waits. */
  assert_true(st.busy_ns >= ROUNDS * WORK_MS * MS);
  assert_true(st.idle_ns >= ROUNDS * WORK_MS * MS / 2);
  assert_true(st.busy_ns + 20 * MS >= c1 - c0);
  assert_int_equal(cor_loop_close(m.loop), 0);
  cor_release(m.loop);
}

static void test_mixed_uring(void **state) { mixed(0); }
static void test_mixed_epoll(void **state) { mixed(-1); }

/* The runtime's per-loop counters are the loop's. */
static void test_runtime_counters(void **state) {
  cor_runtime_opts o = {.nloops = 1};
  cor_runtime_t *rt = cor_runtime_new(&o);
  assert_non_null(rt);
  usleep(200000);
  cor_loop_counters c;
  assert_int_equal(cor_runtime_loop_counters(rt, 0, &c), 0);
  /* Asleep since it started: idle, and counted while asleep. */
  assert_true(c.idle_ns >= 150 * MS);
  assert_true(c.busy_ns < 30 * MS);
  assert_true(c.busy_ns == c.loop.busy_ns && c.idle_ns == c.loop.idle_ns);
  cor_runtime_shutdown(rt, 5.0);
  cor_release(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_idle_loop),
      cmocka_unit_test(test_busy_callback),
      cmocka_unit_test(test_short_timers),
      cmocka_unit_test(test_mixed_uring),
      cmocka_unit_test(test_mixed_epoll),
      cmocka_unit_test(test_runtime_counters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
