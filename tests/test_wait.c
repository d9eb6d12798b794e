/* SPDX-License-Identifier: MIT */
/* Waiting for many futures and time-out scopes (core/wait.c): cor_wait
 * (asyncio.wait), cor_as_completed (asyncio.as_completed) and
 * cor_timeout_enter / exit (asyncio.timeout, 3.11's cancellation rules).
 * The bodies run as tasks; a failed check records its line and ends the
 * body, and the test asserts that none failed. */
#include "taskbody.h"

#include <corio.h>

#include "logcap.h"

#include <errno.h>
#include <math.h>

/* A completion after a delay: set (code 0) or fail (code != 0) fut. */
typedef struct {
  cor_future_t *fut;
  int code;
} later_t;
static void later_cb(void *arg) {
  later_t *l = arg;
  if (cor_future_done(l->fut))
    return;
  if (l->code == 0)
    cor_future_set_result(l->fut, (void *)l);
  else
    cor_future_set_error(l->fut, l->code, "failed later");
}
static void later(later_t *l, cor_future_t *f, int code, double delay) {
  l->fut = f;
  l->code = code;
  assert_int_equal(cor_call_later(loop, delay, later_cb, l, NULL), 0);
}

static void new_futs(cor_future_t **f, int n) {
  for (int i = 0; i < n; i++) {
    f[i] = cor_future_new(loop);
    assert_non_null(f[i]);
  }
}
static void free_futs(cor_future_t **f, int n) {
  for (int i = 0; i < n; i++)
    cor_release(f[i]);
}

/* ------------------------------------------------------------ cor_wait */

static cor_future_t *F[4];
static later_t L[4];

static int wait_first_body(void *arg, void **r) {
  size_t nd = 99;
  later(&L[1], F[1], 0, 0.01);
  CHECK(cor_wait(F, 3, COR_FIRST_COMPLETED, COR_FOREVER, &nd) == 0);
  CHECK(nd == 1);
  CHECK(cor_future_done(F[1]) && !cor_future_done(F[0]) &&
        !cor_future_done(F[2]));
  /* Holds already: no suspension, same answer. */
  CHECK(cor_wait(F, 3, COR_FIRST_COMPLETED, 0, &nd) == 0 && nd == 1);
  /* ALL with a time-out: two of three, then -ETIMEDOUT; nothing cancelled. */
  later(&L[0], F[0], 0, 0.005);
  CHECK(cor_wait(F, 3, COR_ALL_COMPLETED, 0.05, &nd) == -ETIMEDOUT);
  CHECK(nd == 2);
  CHECK(!cor_future_done(F[2]));
  /* A time-out of 0 looks without waiting. */
  double t0 = cor_loop_time(loop);
  CHECK(cor_wait(F, 3, COR_ALL_COMPLETED, 0, &nd) == -ETIMEDOUT && nd == 2);
  CHECK(cor_loop_time(loop) - t0 < 0.5);
  later(&L[2], F[2], 0, 0.001);
  CHECK(cor_wait(F, 3, COR_ALL_COMPLETED, 5, NULL) == 0);
  CHECK(cor_future_done(F[2]));
  return 0;
}
static void test_wait_first_and_all(void **s) {
  new_futs(F, 3);
  run_body_on_loop(wait_first_body, NULL);
  free_futs(F, 3);
}

static int wait_exc_body(void *arg, void **r) {
  size_t nd;
  /* A success does not end FIRST_EXCEPTION; the first error does. */
  later(&L[0], F[0], 0, 0.001);
  later(&L[1], F[1], -EIO, 0.01);
  CHECK(cor_wait(F, 3, COR_FIRST_EXCEPTION, 5, &nd) == 0);
  CHECK(nd == 2 && !cor_future_done(F[2]));
  CHECK(cor_future_result(F[1], NULL) == -EIO);
  /* A cancellation is not an exception: with none, it waits for all. */
  CHECK(cor_future_cancel(F[2], NULL) == 0);
  later(&L[3], F[3], 0, 0.01);
  CHECK(cor_wait(&F[2], 2, COR_FIRST_EXCEPTION, 5, &nd) == 0);
  CHECK(nd == 2 && cor_future_done(F[3]));
  return 0;
}
static void test_wait_first_exception(void **s) {
  new_futs(F, 4);
  run_body_on_loop(wait_exc_body, NULL);
  free_futs(F, 4);
}

/* Cancelled while waiting: -ECANCELED, the futures untouched, and a
 * completion in the same iteration (its node already scheduled when the
 * wait stops watching) is harmless. */
static cor_task_t *waiter_task;
static int wait_rc = 1;
static int cancelled_waiter(void *arg, void **r) {
  size_t nd = 7;
  wait_rc = cor_wait(F, 2, COR_ALL_COMPLETED, COR_FOREVER, &nd);
  CHECK(nd == 0 || nd == 1);
  return 0;
}
static void cancel_then_complete(void *arg) {
  cor_task_cancel(waiter_task, NULL);
  cor_future_set_result(F[0], NULL);
}
static int wait_cancel_body(void *arg, void **r) {
  waiter_task = cor_create_task(loop, cor_coro(cancelled_waiter, NULL), "w");
  CHECK(waiter_task != NULL);
  CHECK(cor_sleep(0.005) == 0);
  CHECK(cor_call_soon(loop, cancel_then_complete, NULL, NULL) == 0);
  CHECK(cor_await_task(waiter_task, NULL) == 0);
  CHECK(wait_rc == -ECANCELED);
  CHECK(!cor_future_cancelled(F[0]) && !cor_future_done(F[1]));
  CHECK(cor_future_set_result(F[1], NULL) == 0);
  CHECK(cor_yield() == 0);
  cor_release(waiter_task);
  /* The same with the futures released by their owner while watched. */
  return 0;
}
static void test_wait_cancelled(void **s) {
  new_futs(F, 2);
  run_body_on_loop(wait_cancel_body, NULL);
  free_futs(F, 2);
}

static int wait_misuse_body(void *arg, void **r) {
  cor_future_t *self = cor_task_future(cor_current_task());
  size_t nd = 5;
  CHECK(cor_wait(NULL, 1, COR_ALL_COMPLETED, 1, &nd) == -EINVAL && nd == 0);
  CHECK(cor_wait(F, 0, COR_ALL_COMPLETED, 1, NULL) == -EINVAL);
  CHECK(cor_wait(F, 1, 42, 1, NULL) == -EINVAL);
  CHECK(cor_wait(F, 1, COR_ALL_COMPLETED, NAN, NULL) == -EINVAL);
  cor_future_t *withnull[2] = {F[0], NULL};
  CHECK(cor_wait(withnull, 2, COR_ALL_COMPLETED, 1, NULL) == -EINVAL);
  CHECK(cor_wait(&self, 1, COR_ALL_COMPLETED, 1, NULL) == -EINVAL);
  cor_future_t *foreign = arg;
  CHECK(cor_wait(&foreign, 1, COR_ALL_COMPLETED, 1, NULL) == -EINVAL);
  return 0;
}
static void test_wait_misuse(void **s) {
  recs_clear();
  new_futs(F, 1);
  cor_loop_t *other = cor_loop_new(NULL);
  cor_future_t *foreign = cor_future_new(other);
  run_body_on_loop(wait_misuse_body, foreign);
  EXPECT_ERRORS(7, "cor_wait(): invalid argument");
  assert_int_equal(cor_wait(F, 1, COR_ALL_COMPLETED, 1, NULL), COR_ENOTASK);
  cor_release(foreign);
  assert_int_equal(cor_loop_close(other), 0);
  cor_release(other);
  free_futs(F, 1);
}

/* ------------------------------------------------------------ as_completed */

static int ac_order_body(void *arg, void **r) {
  /* F[3] done before; then 2, 0, 1 finish in that order. */
  CHECK(cor_future_set_result(F[3], NULL) == 0);
  later(&L[2], F[2], 0, 0.002);
  later(&L[0], F[0], -EIO, 0.010);
  later(&L[1], F[1], 0, 0.020);
  cor_as_completed_t *it = cor_as_completed_new(F, 4, 5);
  CHECK(it != NULL);
  cor_future_t *want[4] = {F[3], F[2], F[0], F[1]};
  for (int i = 0; i < 4; i++) {
    cor_future_t *d = NULL;
    CHECK(cor_as_completed_next(it, &d) == 0);
    CHECK(d == want[i]);
    CHECK(cor_future_done(d));
  }
  cor_future_t *d = F[0];
  CHECK(cor_as_completed_next(it, &d) == COR_ECLOSED && d == NULL);
  CHECK(cor_as_completed_next(it, &d) == COR_ECLOSED);
  CHECK(cor_future_result(F[0], NULL) == -EIO);
  cor_release(it);
  /* Nothing to watch. */
  it = cor_as_completed_new(NULL, 0, 1);
  CHECK(it != NULL);
  CHECK(cor_as_completed_next(it, &d) == COR_ECLOSED);
  cor_release(it);
  return 0;
}
static void test_as_completed_order(void **s) {
  new_futs(F, 4);
  run_body_on_loop(ac_order_body, NULL);
  free_futs(F, 4);
}

/* The time-out runs from creation; what finished before it is handed back,
 * then -ETIMEDOUT at every call. */
static int ac_timeout_body(void *arg, void **r) {
  later(&L[0], F[0], 0, 0.001);
  cor_as_completed_t *it = cor_as_completed_new(F, 3, 0.05);
  CHECK(it != NULL);
  cor_future_t *d;
  CHECK(cor_as_completed_next(it, &d) == 0 && d == F[0]);
  CHECK(cor_as_completed_next(it, &d) == -ETIMEDOUT && d == NULL);
  /* A completion after the time-out is not handed back. */
  CHECK(cor_future_set_result(F[1], NULL) == 0);
  CHECK(cor_yield() == 0);
  CHECK(cor_as_completed_next(it, &d) == -ETIMEDOUT);
  cor_release(it);
  return 0;
}
static void test_as_completed_timeout(void **s) {
  new_futs(F, 3);
  run_body_on_loop(ac_timeout_body, NULL);
  free_futs(F, 3);
}

/* Cancelled mid-wait loses nothing; a second waiter is -EBUSY; released
 * while futures are pending, later completions are harmless. */
static cor_as_completed_t *AC;
static int ac_next_rc = 1;
static int ac_waiter(void *arg, void **r) {
  cor_future_t *d;
  ac_next_rc = cor_as_completed_next(AC, &d);
  return 0;
}
static int ac_cancel_body(void *arg, void **r) {
  AC = cor_as_completed_new(F, 3, COR_FOREVER);
  CHECK(AC != NULL);
  cor_task_t *w = cor_create_task(loop, cor_coro(ac_waiter, NULL), "w");
  CHECK(cor_yield() == 0);
  cor_future_t *d;
  CHECK(cor_as_completed_next(AC, &d) == -EBUSY);
  CHECK(cor_task_cancel(w, NULL) == 0);
  CHECK(cor_await_task(w, NULL) == 0);
  CHECK(ac_next_rc == -ECANCELED);
  cor_release(w);
  later(&L[1], F[1], 0, 0.001);
  CHECK(cor_as_completed_next(AC, &d) == 0 && d == F[1]);
  cor_release(AC); /* F[0] and F[2] still pending */
  CHECK(cor_future_set_result(F[0], NULL) == 0);
  CHECK(cor_future_set_result(F[2], NULL) == 0);
  CHECK(cor_yield() == 0);
  return 0;
}
static void test_as_completed_cancel_release(void **s) {
  new_futs(F, 3);
  run_body_on_loop(ac_cancel_body, NULL);
  free_futs(F, 3);
}

static void set_cb(void *arg) { cor_future_set_result(arg, NULL); }
static void test_as_completed_misuse(void **s) {
  recs_clear();
  new_futs(F, 1);
  cor_future_t *d = F[0];
  assert_int_equal(cor_as_completed_next(NULL, &d), -EINVAL);
  assert_null(d);
  errno = 0;
  assert_null(cor_as_completed_new(NULL, 2, 1));
  assert_int_equal(errno, EINVAL);
  errno = 0;
  assert_null(cor_as_completed_new(NULL, 0, 1)); /* no futures, no loop */
  assert_int_equal(errno, EINVAL);
  cor_as_completed_t *it = cor_as_completed_new(F, 1, 1);
  assert_non_null(it);
  assert_int_equal(cor_as_completed_next(it, NULL), -EINVAL);
  EXPECT_ERRORS(4, "(): invalid argument");
  /* Outside a task, when it would have to wait. */
  assert_int_equal(cor_as_completed_next(it, &d), COR_ENOTASK);
  assert_int_equal(cor_future_set_result(F[0], NULL), 0);
  /* Its node runs on the next iteration. */
  cor_future_t *f = cor_future_new(loop);
  cor_call_soon(loop, set_cb, f, NULL);
  assert_int_equal(cor_loop_run_until_complete(loop, f), 0);
  cor_release(f);
  assert_int_equal(cor_as_completed_next(it, &d), 0);
  assert_ptr_equal(d, F[0]);
  cor_release(it);
  free_futs(F, 1);
}

/* ------------------------------------------------------------ time-out scopes */

static int scope_body(void *arg, void **r) {
  cor_task_t *me = cor_current_task();
  /* Expires: the await is cancelled, exit turns it into -ETIMEDOUT and
   * withdraws its request. */
  cor_timeout_t *to = cor_timeout_enter(0.01);
  CHECK(to != NULL);
  CHECK(!cor_timeout_expired(to));
  int rc = cor_sleep(10);
  CHECK(rc == -ECANCELED);
  CHECK(cor_timeout_expired(to));
  CHECK(cor_task_cancelling(me) == 1);
  CHECK(cor_timeout_exit(to, rc) == -ETIMEDOUT);
  CHECK(cor_task_cancelling(me) == 0);
  /* Does not expire: rc passes through, the timer is gone. */
  to = cor_timeout_enter(5);
  CHECK(cor_sleep(0.001) == 0);
  CHECK(cor_timeout_exit(to, 17) == 17);
  /* An rc other than -ECANCELED from an expired scope stays. */
  to = cor_timeout_enter(0);
  rc = cor_sleep(1);
  CHECK(rc == -ECANCELED);
  CHECK(cor_timeout_exit(to, -EIO) == -EIO);
  CHECK(cor_task_cancelling(me) == 0);
  /* enter_at: a time already past expires at once. */
  to = cor_timeout_enter_at(cor_loop_time(loop) - 1);
  CHECK(to != NULL);
  CHECK(cor_sleep(1) == -ECANCELED);
  CHECK(cor_timeout_exit(to, -ECANCELED) == -ETIMEDOUT);
  /* No deadline until rescheduled; then one. */
  to = cor_timeout_enter(COR_FOREVER);
  CHECK(cor_timeout_when(to) == COR_FOREVER);
  CHECK(cor_sleep(0.002) == 0);
  double when = cor_loop_time(loop) + 0.01;
  CHECK(cor_timeout_reschedule(to, when) == 0);
  CHECK(fabs(cor_timeout_when(to) - when) < 1e-6);
  rc = cor_sleep(10);
  CHECK(rc == -ECANCELED);
  CHECK(cor_timeout_reschedule(to, when + 1) == -EPERM);
  CHECK(cor_timeout_exit(to, rc) == -ETIMEDOUT);
  /* Rescheduled further out before expiry, and back to none. */
  to = cor_timeout_enter(0.005);
  CHECK(cor_timeout_reschedule(to, COR_FOREVER) == 0);
  CHECK(cor_sleep(0.02) == 0);
  CHECK(cor_timeout_exit(to, 0) == 0);
  /* A negative delay is no deadline (common.h's rule). */
  to = cor_timeout_enter(-1);
  CHECK(cor_timeout_when(to) == COR_FOREVER);
  CHECK(cor_sleep(0.002) == 0);
  CHECK(cor_timeout_exit(to, 0) == 0);
  CHECK(cor_task_cancelling(me) == 0);
  return 0;
}
static void test_timeout_scope(void **s) {
  recs_clear();
  run_body_on_loop(scope_body, NULL);
  EXPECT_ERRORS(1, "cor_timeout_reschedule: the scope expired already");
}

/* Nesting: each scope converts only its own cancellation. */
static int nest_body(void *arg, void **r) {
  cor_task_t *me = cor_current_task();
  /* Inner expires first. */
  cor_timeout_t *outer = cor_timeout_enter(5);
  cor_timeout_t *inner = cor_timeout_enter(0.005);
  int rc = cor_sleep(10);
  CHECK(rc == -ECANCELED);
  rc = cor_timeout_exit(inner, rc);
  CHECK(rc == -ETIMEDOUT);
  CHECK(cor_sleep(0.001) == 0); /* the outer scope still runs normally */
  CHECK(cor_timeout_exit(outer, rc) == -ETIMEDOUT); /* passed through */
  CHECK(cor_task_cancelling(me) == 0);
  /* Outer expires while inside the inner: the inner leaves -ECANCELED,
   * the outer turns it into -ETIMEDOUT. */
  outer = cor_timeout_enter(0.005);
  inner = cor_timeout_enter(5);
  rc = cor_sleep(10);
  CHECK(rc == -ECANCELED);
  rc = cor_timeout_exit(inner, rc);
  CHECK(rc == -ECANCELED);
  CHECK(cor_timeout_exit(outer, rc) == -ETIMEDOUT);
  /* Both expire at once: the inner cannot claim it, the outer does. */
  outer = cor_timeout_enter(0.005);
  inner = cor_timeout_enter(0.005);
  rc = cor_sleep(10);
  CHECK(rc == -ECANCELED);
  CHECK(cor_sleep(0.02) == -ECANCELED || true); /* the second request */
  rc = cor_timeout_exit(inner, -ECANCELED);
  CHECK(rc == -ECANCELED);
  CHECK(cor_timeout_exit(outer, rc) == -ETIMEDOUT);
  CHECK(cor_task_cancelling(me) == 0);
  return 0;
}
static void test_timeout_nested(void **s) { run_body_on_loop(nest_body, NULL); }

/* A cancellation from outside stays -ECANCELED, also when the scope
 * expires too (cor_task_cancelling counts both). */
static cor_task_t *victim;
static int victim_rc[2] = {1, 1}, victim_cancelling = -1;
static int victim_body(void *arg, void **r) {
  cor_timeout_t *to = cor_timeout_enter((double)(intptr_t)arg / 1000);
  int rc = cor_sleep(10);
  victim_rc[0] = cor_timeout_exit(to, rc);
  victim_cancelling = cor_task_cancelling(cor_current_task());
  return victim_rc[0];
}
static int outside_body(void *arg, void **r) {
  /* Cancelled from outside before the scope's deadline. */
  victim = cor_create_task(loop, cor_coro(victim_body, (void *)5000), "v");
  CHECK(cor_sleep(0.002) == 0);
  CHECK(cor_task_cancel(victim, NULL) == 0);
  CHECK(cor_await_task(victim, NULL) == -ECANCELED);
  CHECK(victim_rc[0] == -ECANCELED);
  CHECK(victim_cancelling == 1);
  cor_release(victim);
  /* Cancelled from outside in the same iteration as its expiry. */
  victim = cor_create_task(loop, cor_coro(victim_body, (void *)5), "v2");
  CHECK(cor_sleep(0.005) == 0);
  for (int i = 0; i < 1000 && !cor_future_done(cor_task_future(victim)); i++) {
    cor_task_cancel(victim, NULL);
    if (cor_yield() != 0)
      break;
  }
  (void)cor_await_task(victim, NULL);
  CHECK(victim_rc[0] == -ECANCELED);
  CHECK(victim_cancelling >= 1);
  cor_release(victim);
  return 0;
}
static void test_timeout_outside_cancel(void **s) {
  run_body_on_loop(outside_body, NULL);
}

static int scope_misuse_body(void *arg, void **r) {
  errno = 0;
  CHECK(cor_timeout_enter(NAN) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(cor_timeout_enter_at(NAN) == NULL && errno == EINVAL);
  CHECK(cor_timeout_exit(NULL, 3) == -EINVAL);
  CHECK(cor_timeout_reschedule(NULL, 1) == -EINVAL);
  CHECK(isnan(cor_timeout_when(NULL)));
  CHECK(!cor_timeout_expired(NULL));
  cor_timeout_t *to = cor_timeout_enter(1);
  CHECK(cor_timeout_reschedule(to, NAN) == -EINVAL);
  CHECK(cor_timeout_exit(to, 0) == 0);
  return 0;
}
static int other_exit_body(void *arg, void **r) {
  return cor_timeout_exit(arg, 0);
}
static int exit_elsewhere_body(void *arg, void **r) {
  cor_timeout_t *to = cor_timeout_enter(0.005);
  cor_task_t *o = cor_create_task(loop, cor_coro(other_exit_body, to), "o");
  CHECK(cor_await_task(o, NULL) == -EINVAL); /* freed all the same */
  cor_release(o);
  CHECK(cor_sleep(0.02) == 0); /* its timer went with it */
  return 0;
}
static void test_timeout_misuse(void **s) {
  recs_clear();
  run_body_on_loop(scope_misuse_body, NULL);
  EXPECT_ERRORS(7, "(): invalid argument");
  run_body_on_loop(exit_elsewhere_body, NULL);
  EXPECT_ERRORS(1, "the scope was entered by another task");
  errno = 0;
  assert_null(cor_timeout_enter(1));
  assert_int_equal(errno, -COR_ENOTASK);
  EXPECT_ERRORS(1, "cor_timeout_enter: called outside a task");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      WITH_LOOP(test_wait_first_and_all),
      WITH_LOOP(test_wait_first_exception),
      WITH_LOOP(test_wait_cancelled),
      WITH_LOOP(test_wait_misuse),
      WITH_LOOP(test_as_completed_order),
      WITH_LOOP(test_as_completed_timeout),
      WITH_LOOP(test_as_completed_cancel_release),
      WITH_LOOP(test_as_completed_misuse),
      WITH_LOOP(test_timeout_scope),
      WITH_LOOP(test_timeout_nested),
      WITH_LOOP(test_timeout_outside_cancel),
      WITH_LOOP(test_timeout_misuse),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
