/* SPDX-License-Identifier: MIT */
/* Concurrent futures: completion from any thread, blocking waits with
 * time-outs, done callbacks, cancellation, run_coroutine_threadsafe on a
 * lone loop, and cor_await_cfuture across loops. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include "../executor/internal.h" /* the internal cfuture API */

/* ------------------------------------------------------------ helpers */

typedef struct {
  cor_loop_t *loop;
  pthread_t th;
} loop_thread;

static void *run_loop(void *p) {
  loop_thread *lt = p;
  assert_int_equal(cor_loop_run_forever(lt->loop), 0);
  return NULL;
}
static void stop_cb(void *loop) { cor_loop_stop(loop); }

static void lt_start(loop_thread *lt) {
  lt->loop = cor_loop_new(NULL);
  assert_non_null(lt->loop);
  assert_int_equal(pthread_create(&lt->th, NULL, run_loop, lt), 0);
}
static void lt_stop(loop_thread *lt) {
  assert_int_equal(cor_call_soon_threadsafe(lt->loop, stop_cb, lt->loop), 0);
  pthread_join(lt->th, NULL);
  assert_int_equal(cor_loop_close(lt->loop), 0);
  cor_release(lt->loop);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ internal API */

typedef struct {
  cor_cfuture_t *cf;
  double delay;
  void *value;
} setter_arg;

static void *setter(void *p) {
  setter_arg *a = p;
  usleep((useconds_t)(a->delay * 1e6));
  assert_int_equal(cor__cfuture_set_result(a->cf, a->value), 0);
  return NULL;
}

static void test_result_from_thread(void **state) {
  cor_cfuture_t *cf = cor__cfuture_new();
  assert_non_null(cf);
  assert_false(cor_cfuture_done(cf));
  void *r = NULL;
  assert_int_equal(cor_cfuture_result(cf, 0, &r), -ETIMEDOUT);
  double t0 = now_s();
  assert_int_equal(cor_cfuture_result(cf, 0.05, &r), -ETIMEDOUT);
  assert_true(now_s() - t0 >= 0.045);
  /* Past the spin: the waiter sleeps on the futex and is woken. */
  setter_arg a = {cf, 0.05, (void *)(intptr_t)42};
  pthread_t th;
  pthread_create(&th, NULL, setter, &a);
  assert_int_equal(cor_cfuture_result(cf, 5.0, &r), 0);
  assert_ptr_equal(r, (void *)(intptr_t)42);
  pthread_join(th, NULL);
  assert_true(cor_cfuture_done(cf));
  assert_false(cor_cfuture_cancelled(cf));
  assert_int_equal(cor__cfuture_set_result(cf, NULL), -EINVAL);
  assert_int_equal(cor_cfuture_cancel(cf), -EINVAL);
  cor_release(cf);
}

static void *waiter(void *p) {
  void *r = NULL;
  int rc = cor_cfuture_result(p, INFINITY, &r);
  return (void *)(intptr_t)(rc == 0 ? (intptr_t)r : -1);
}

static void test_many_waiters(void **state) {
  cor_cfuture_t *cf = cor__cfuture_new();
  pthread_t th[8];
  for (int i = 0; i < 8; i++)
    pthread_create(&th[i], NULL, waiter, cf);
  usleep(50000); /* most are asleep now */
  assert_int_equal(cor__cfuture_set_result(cf, (void *)7), 0);
  for (int i = 0; i < 8; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_ptr_equal(r, (void *)7);
  }
  cor_release(cf);
}

static _Atomic int cb_order[8];
static _Atomic int cb_n;
static pthread_t cb_thread;
static void order_cb(cor_cfuture_t *cf, void *arg) {
  cb_order[atomic_fetch_add(&cb_n, 1)] = (int)(intptr_t)arg;
  cb_thread = pthread_self();
}

static void *complete_error(void *p) {
  cor__cfuture_set_error(p, -EPROTO, "bad header", __FILE__, __LINE__);
  return NULL;
}

static void test_done_callbacks(void **state) {
  cor_cfuture_t *cf = cor__cfuture_new();
  atomic_store(&cb_n, 0);
  for (int i = 1; i <= 3; i++)
    assert_int_equal(cor_cfuture_add_done_callback(cf, order_cb, (void *)(intptr_t)i), 0);
  pthread_t th;
  pthread_create(&th, NULL, complete_error, cf);
  pthread_join(th, NULL);
  assert_int_equal(atomic_load(&cb_n), 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(cb_order[i], i + 1);
  /* run on the completing thread */
  assert_true(pthread_equal(cb_thread, th));
  /* added after: runs now, here */
  assert_int_equal(cor_cfuture_add_done_callback(cf, order_cb, (void *)4), 0);
  assert_int_equal(atomic_load(&cb_n), 4);
  assert_true(pthread_equal(cb_thread, pthread_self()));
  assert_int_equal(cor_cfuture_result(cf, 1, NULL), -EPROTO);
  assert_string_equal(cor_cfuture_message(cf), "bad header");
  cor_release(cf);
  /* Freed while pending: the callbacks are dropped, not run (ASan checks
   * that their nodes are freed). */
  cf = cor__cfuture_new();
  cor_cfuture_add_done_callback(cf, order_cb, (void *)9);
  cor_release(cf);
  assert_int_equal(atomic_load(&cb_n), 4);
}

static _Atomic int cancel_notified;
static void on_cancel(cor_cfuture_t *cf, void *arg) {
  atomic_fetch_add(&cancel_notified, 1);
}

static void test_cancel_states(void **state) {
  recs_clear();
  cor_cfuture_t *cf = cor__cfuture_new();
  cor__cfuture_set_cancel_fn(cf, on_cancel, NULL);
  pthread_t th;
  pthread_create(&th, NULL, waiter, cf);
  usleep(30000);
  assert_int_equal(cor_cfuture_cancel(cf), 0);
  void *r;
  pthread_join(th, &r);
  assert_ptr_equal(r, (void *)-1); /* the waiter got -ECANCELED */
  assert_int_equal(atomic_load(&cancel_notified), 1);
  assert_true(cor_cfuture_cancelled(cf));
  assert_int_equal(cor_cfuture_result(cf, 0, NULL), -ECANCELED);
  assert_int_equal(cor__cfuture_set_result(cf, NULL), -EINVAL);
  assert_int_equal(cor_cfuture_cancel(cf), -EINVAL);
  cor_release(cf);
  /* A running job cannot be cancelled. */
  cf = cor__cfuture_new();
  assert_true(cor__cfuture_set_running(cf));
  assert_int_equal(cor_cfuture_cancel(cf), -EBUSY);
  assert_int_equal(cor__cfuture_set_result(cf, (void *)1), 0);
  cor_release(cf);
  /* A cancelled one must not start. */
  cf = cor__cfuture_new();
  assert_int_equal(cor_cfuture_cancel(cf), 0);
  assert_false(cor__cfuture_set_running(cf));
  cor_release(cf);
  assert_int_equal(cor_cfuture_result(NULL, 0, NULL), -EINVAL);
  assert_int_equal(cor_cfuture_cancel(NULL), -EINVAL);
  EXPECT_RECORDS(2, COR_LOG_ERROR, "(): invalid argument");
}

/* ------------------------------------------------------------ run_coroutine */

static int add_one(void *arg, void **result) {
  *result = (void *)((intptr_t)arg + 1);
  return 0;
}

static int fails(void *arg, void **result) {
  return cor_fail(-EPROTO, "bad thing %d", 7);
}

static int sleeper(void *arg, void **result) {
  int rc = cor_sleep(*(double *)arg);
  if (rc == -ECANCELED)
    return rc;
  *result = (void *)99;
  return 0;
}

static int self_cancel(void *arg, void **result) {
  cor_task_cancel(cor_current_task(), "from inside");
  return cor_sleep(10);
}

static void test_rct_lone_loop(void **state) {
  recs_clear();
  loop_thread lt;
  lt_start(&lt);
  void *r = NULL;
  cor_cfuture_t *cf = cor_run_coroutine_threadsafe(cor_coro(add_one, (void *)41), lt.loop);
  assert_non_null(cf);
  assert_int_equal(cor_cfuture_result(cf, 5, &r), 0);
  assert_ptr_equal(r, (void *)42);
  cor_release(cf);

  cf = cor_run_coroutine_threadsafe(cor_coro(fails, NULL), lt.loop);
  assert_int_equal(cor_cfuture_result(cf, 5, &r), -EPROTO);
  assert_string_equal(cor_cfuture_message(cf), "bad thing 7");
  cor_release(cf);

  /* time-out: keeps running, completes later */
  double d = 0.2;
  cf = cor_run_coroutine_threadsafe(cor_coro(sleeper, &d), lt.loop);
  assert_int_equal(cor_cfuture_result(cf, 0.02, &r), -ETIMEDOUT);
  assert_int_equal(cor_cfuture_result(cf, 5, &r), 0);
  assert_ptr_equal(r, (void *)99);
  cor_release(cf);

  /* cancelled from the caller's side: the task sees -ECANCELED */
  double d10 = 10;
  cf = cor_run_coroutine_threadsafe(cor_coro(sleeper, &d10), lt.loop);
  assert_int_equal(cor_cfuture_result(cf, 0.02, &r), -ETIMEDOUT);
  double t0 = now_s();
  assert_int_equal(cor_cfuture_cancel(cf), 0);
  assert_int_equal(cor_cfuture_result(cf, 5, &r), -ECANCELED);
  assert_true(now_s() - t0 < 1.0);
  cor_release(cf);

  /* cancelled on the task's side */
  cf = cor_run_coroutine_threadsafe(cor_coro(self_cancel, NULL), lt.loop);
  assert_int_equal(cor_cfuture_result(cf, 5, &r), -ECANCELED);
  assert_true(cor_cfuture_cancelled(cf));
  cor_release(cf);

  /* consumed coroutine, NULL loop */
  cor_coro_t *co = cor_coro(add_one, NULL);
  assert_null(cor_run_coroutine_threadsafe(co, NULL));
  assert_int_equal(errno, EINVAL);
  cor_loop_t *keep = cor_retain(lt.loop);
  lt_stop(&lt);
  /* closed loop */
  assert_null(cor_run_coroutine_threadsafe(cor_coro(add_one, NULL), keep));
  assert_int_equal(errno, -COR_ECLOSED);
  cor_release(keep);
  EXPECT_RECORDS(1, COR_LOG_ERROR, "(): invalid argument");
}

/* COR_ETHREAD on the loop's own thread. */
static cor_cfuture_t *eth_cf;
static _Atomic int eth_rc = 1;
static void eth_cb(void *arg) {
  cor_loop_t *loop = arg;
  double d = 0.01;
  eth_cf = cor_run_coroutine_threadsafe(cor_coro(sleeper, &d), loop);
  atomic_store(&eth_rc, cor_cfuture_result(eth_cf, 1, NULL));
}

static void test_rct_ethread(void **state) {
  loop_thread lt;
  lt_start(&lt);
  cor_call_soon_threadsafe(lt.loop, eth_cb, lt.loop);
  while (atomic_load(&eth_rc) == 1)
    usleep(1000);
  assert_int_equal(atomic_load(&eth_rc), COR_ETHREAD);
  assert_int_equal(cor_cfuture_result(eth_cf, 5, NULL), 0);
  cor_release(eth_cf);
  lt_stop(&lt);
}

/* A loop closed under a pending task: its cfuture completes (COR_ECLOSED)
 * instead of leaving waiters hanging. */
static void test_rct_loop_closed(void **state) {
  loop_thread lt;
  lt_start(&lt);
  double d = 100;
  cor_cfuture_t *cf = cor_run_coroutine_threadsafe(cor_coro(sleeper, &d), lt.loop);
  assert_int_equal(cor_cfuture_result(cf, 0.05, NULL), -ETIMEDOUT);
  cor_log_set_level(COR_LOG_CRITICAL); /* "destroyed but pending" expected */
  lt_stop(&lt);
  cor_log_set_level(COR_LOG_INFO);
  assert_int_equal(cor_cfuture_result(cf, 1, NULL), COR_ECLOSED);
  cor_release(cf);
}

/* ------------------------------------------------------------ await_cfuture */

static loop_thread g_a, g_b;

static int await_other(void *arg, void **result) {
  long n = (long)(intptr_t)arg;
  long sum = 0;
  for (long i = 0; i < n; i++) {
    cor_cfuture_t *cf =
        cor_run_coroutine_threadsafe(cor_coro(add_one, (void *)(intptr_t)i), g_b.loop);
    if (cf == NULL)
      return -errno;
    void *r;
    int rc = cor_await_cfuture(cf, &r);
    cor_release(cf);
    if (rc != 0)
      return rc;
    if ((intptr_t)r != i + 1)
      return -EPROTO;
    sum += (long)(intptr_t)r;
  }
  *result = (void *)(intptr_t)sum;
  return 0;
}

static int await_fail(void *arg, void **result) {
  cor_cfuture_t *cf = cor_run_coroutine_threadsafe(cor_coro(fails, NULL), g_b.loop);
  int rc = cor_await_cfuture(cf, NULL);
  cor_release(cf);
  return rc; /* re-raised with its message */
}

static _Atomic int inner_cancelled;
static int inner_long(void *arg, void **result) {
  int rc = cor_sleep(10);
  if (rc == -ECANCELED)
    atomic_store(&inner_cancelled, 1);
  return rc;
}
static int await_long(void *arg, void **result) {
  cor_cfuture_t *cf = cor_run_coroutine_threadsafe(cor_coro(inner_long, NULL), g_b.loop);
  int rc = cor_await_cfuture(cf, NULL);
  cor_release(cf);
  return rc;
}

static void test_await_cfuture(void **state) {
  lt_start(&g_a);
  lt_start(&g_b);
  long n = test_scale(2000, 200);
  void *r;
  cor_cfuture_t *cf =
      cor_run_coroutine_threadsafe(cor_coro(await_other, (void *)(intptr_t)n), g_a.loop);
  assert_int_equal(cor_cfuture_result(cf, 30, &r), 0);
  assert_int_equal((long)(intptr_t)r, n * (n + 1) / 2);
  cor_release(cf);

  cf = cor_run_coroutine_threadsafe(cor_coro(await_fail, NULL), g_a.loop);
  assert_int_equal(cor_cfuture_result(cf, 5, NULL), -EPROTO);
  assert_string_equal(cor_cfuture_message(cf), "bad thing 7");
  cor_release(cf);

  /* Cancelling the awaiting task cancels what it awaits on the other loop. */
  atomic_store(&inner_cancelled, 0);
  cf = cor_run_coroutine_threadsafe(cor_coro(await_long, NULL), g_a.loop);
  assert_int_equal(cor_cfuture_result(cf, 0.05, NULL), -ETIMEDOUT);
  assert_int_equal(cor_cfuture_cancel(cf), 0);
  assert_int_equal(cor_cfuture_result(cf, 5, NULL), -ECANCELED);
  for (int i = 0; i < 500 && !atomic_load(&inner_cancelled); i++)
    usleep(2000);
  assert_int_equal(atomic_load(&inner_cancelled), 1);
  cor_release(cf);

  assert_int_equal(cor_await_cfuture(NULL, NULL), COR_ENOTASK);
  lt_stop(&g_a);
  lt_stop(&g_b);
}

/* ------------------------------------------------------------ public new */

/* cor_cfuture_new: completed by a thread corio did not make. */
typedef struct {
  cor_cfuture_t *cf;
  int code;      /* 0: set_result */
  void *value;
  int rc;
} completer_arg;

static void *completer(void *p) {
  completer_arg *a = p;
  usleep(20000); /* let the awaiter suspend first */
  a->rc = a->code == 0 ? cor_cfuture_set_result(a->cf, a->value)
                       : cor_cfuture_set_error(a->cf, a->code, "lib failed");
  return NULL;
}

static int await_public(void *p, void **result) {
  return cor_await_cfuture(p, result);
}

static void test_public_cfuture(void **state) {
  recs_clear();
  lt_start(&g_a);
  /* A task awaits, a plain thread completes it with a result. */
  cor_cfuture_t *cf = cor_cfuture_new();
  assert_non_null(cf);
  assert_false(cor_cfuture_done(cf));
  cor_cfuture_t *tcf =
      cor_run_coroutine_threadsafe(cor_coro(await_public, cf), g_a.loop);
  completer_arg a = {cf, 0, (void *)0x1234, 1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, completer, &a), 0);
  void *r = NULL;
  assert_int_equal(cor_cfuture_result(tcf, 10, &r), 0);
  assert_ptr_equal(r, (void *)0x1234);
  pthread_join(th, NULL);
  assert_int_equal(a.rc, 0);
  /* A second completion is refused (logged) and changes nothing. */
  assert_int_equal(cor_cfuture_set_result(cf, NULL), -EINVAL);
  assert_int_equal(cor_cfuture_set_error(cf, -EIO, "late"), -EINVAL);
  r = NULL;
  assert_int_equal(cor_cfuture_result(cf, 0, &r), 0);
  assert_ptr_equal(r, (void *)0x1234);
  cor_release(tcf);
  cor_release(cf);

  /* An error with its message, seen by the awaiting task. */
  cf = cor_cfuture_new();
  tcf = cor_run_coroutine_threadsafe(cor_coro(await_public, cf), g_a.loop);
  a = (completer_arg){cf, -EIO, NULL, 1};
  assert_int_equal(pthread_create(&th, NULL, completer, &a), 0);
  assert_int_equal(cor_cfuture_result(tcf, 10, NULL), -EIO);
  assert_string_equal(cor_cfuture_message(tcf), "lib failed");
  assert_string_equal(cor_cfuture_message(cf), "lib failed");
  pthread_join(th, NULL);
  assert_int_equal(a.rc, 0);
  assert_int_equal(cor_cfuture_set_error(cf, 5, "not an error code"), -EINVAL);
  cor_release(tcf);
  cor_release(cf);

  /* A plain thread waits with cor_cfuture_result. */
  cf = cor_cfuture_new();
  a = (completer_arg){cf, 0, (void *)0x99, 1};
  assert_int_equal(pthread_create(&th, NULL, completer, &a), 0);
  r = NULL;
  assert_int_equal(cor_cfuture_result(cf, 10, &r), 0);
  assert_ptr_equal(r, (void *)0x99);
  pthread_join(th, NULL);
  cor_release(cf);

  /* Completed before anyone awaits. */
  cf = cor_cfuture_new();
  assert_int_equal(cor_cfuture_set_result(cf, (void *)0x77), 0);
  tcf = cor_run_coroutine_threadsafe(cor_coro(await_public, cf), g_a.loop);
  r = NULL;
  assert_int_equal(cor_cfuture_result(tcf, 10, &r), 0);
  assert_ptr_equal(r, (void *)0x77);
  cor_release(tcf);
  cor_release(cf);

  /* Error -ECANCELED cancels it; NULL is refused. */
  cf = cor_cfuture_new();
  assert_int_equal(cor_cfuture_set_error(cf, -ECANCELED, NULL), 0);
  assert_true(cor_cfuture_cancelled(cf));
  cor_release(cf);
  assert_int_equal(cor_cfuture_set_result(NULL, NULL), -EINVAL);
  assert_int_equal(cor_cfuture_set_error(NULL, -EIO, NULL), -EINVAL);
  lt_stop(&g_a);
  EXPECT_RECORDS(5, COR_LOG_ERROR, "(): invalid argument");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_result_from_thread),
      cmocka_unit_test(test_many_waiters),
      cmocka_unit_test(test_done_callbacks),
      cmocka_unit_test(test_cancel_states),
      cmocka_unit_test(test_rct_lone_loop),
      cmocka_unit_test(test_rct_ethread),
      cmocka_unit_test(test_rct_loop_closed),
      cmocka_unit_test(test_await_cfuture),
      cmocka_unit_test(test_public_cfuture),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
