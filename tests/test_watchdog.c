/* SPDX-License-Identifier: MIT */
/* The stall watchdog must not change the code it watches: a callback
 * blocked in read() or asleep in nanosleep() past the threshold is not cut
 * short (no EINTR, no early return), and the report is still made. Its own
 * binary: the watchdog's reports are limited to 5 a minute per process. */
#include "testutil.h"

#include <corio.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "logcap.h"

#define MS 1000000ull

static uint64_t wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void stop_cb(void *arg) { cor_loop_stop(arg); }

/* ------------------------------------------------------------ read */

static int pfd[2];
static ssize_t read_rc;
static int read_errno;
static char read_buf[8];

static void *late_writer(void *arg) {
  (void)arg;
  usleep(350000); /* past 1x and 2x the 0.1 s threshold */
  ssize_t w = write(pfd[1], "abc", 3);
  (void)w;
  return NULL;
}

static void blocked_read_cb(void *arg) {
  (void)arg;
  errno = 0;
  read_rc = read(pfd[0], read_buf, 3);
  read_errno = errno;
}

static void test_watchdog_read_not_cut_short(void **state) {
  (void)state;
  assert_int_equal(pipe(pfd), 0);
  cor_loop_opts o = {.debug = true};
  cor_loop_t *l = cor_loop_new(&o);
  assert_non_null(l);
  assert_int_equal(cor_loop_set_watchdog(l, 0.1), 0);
  cor_call_soon(l, blocked_read_cb, NULL, NULL);
  cor_call_soon(l, stop_cb, l, NULL);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, late_writer, NULL), 0);
  cor_loop_run_forever(l);
  pthread_join(th, NULL);
  /* The read got the bytes written later: SA_RESTART restarted it. */
  assert_int_equal(read_rc, 3);
  assert_int_equal(read_errno, 0);
  assert_memory_equal(read_buf, "abc", 3);
  /* And the report is made, with the stuck thread's stack. */
  EXPECT(COR_LOG_WARNING, "stuck for 0.", "in blocked_read_cb()", NULL);
  EXPECT_NONE("which a signal would cut short");
#ifndef __SANITIZE_THREAD__
  /* TSan's runtime defers a signal's handler while the thread is inside an
   * intercepted read(): the stack comes too late there, not here. */
  EXPECT(COR_LOG_WARNING, "its stack (most recent call last):",
         "in blocked_read_cb", NULL);
#endif
  assert_int_equal(cor_loop_set_watchdog(l, 0), 0);
  cor_loop_close(l);
  cor_release(l);
  close(pfd[0]);
  close(pfd[1]);
}

/* ------------------------------------------------------------ sleep */

static int sleep_rc, sleep_errno;
static uint64_t slept_ns;

static void blocked_sleep_cb(void *arg) {
  (void)arg;
  struct timespec ts = {0, 350000000};
  uint64_t t0 = wall();
  errno = 0;
  sleep_rc = nanosleep(&ts, NULL);
  sleep_errno = errno;
  slept_ns = wall() - t0;
}

/* The kernel never restarts a sleep after a handler ran, so the watchdog
 * does not signal a thread blocked in one: it names the call instead. */
static void test_watchdog_sleep_not_cut_short(void **state) {
  (void)state;
  cor_loop_opts o = {.debug = true};
  cor_loop_t *l = cor_loop_new(&o);
  assert_non_null(l);
  assert_int_equal(cor_loop_set_watchdog(l, 0.1), 0);
  cor_call_soon(l, blocked_sleep_cb, NULL, NULL);
  cor_call_soon(l, stop_cb, l, NULL);
  cor_loop_run_forever(l);
  assert_int_equal(sleep_rc, 0);
  assert_int_equal(sleep_errno, 0);
  assert_true(slept_ns >= 350 * MS);
  EXPECT(COR_LOG_WARNING, "stuck for 0.", "in blocked_sleep_cb()",
         "nanosleep(), which a signal would cut short");
  assert_int_equal(cor_loop_set_watchdog(l, 0), 0);
  cor_loop_close(l);
  cor_release(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_watchdog_read_not_cut_short,
                                      logcap_setup, logcap_teardown),
      cmocka_unit_test_setup_teardown(test_watchdog_sleep_not_cut_short,
                                      logcap_setup, logcap_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
