/* SPDX-License-Identifier: MIT */
/* Lock and Event (core/sync.c): behaviours ported from CPython's
 * test_locks.py. */
#include "testutil.h"

#include <corio.h>

#include <errno.h>
#include <pthread.h>

static cor_loop_t *loop;
static cor_lock_t *lk;
static cor_event_t *ev;
static int order[16], norder;

static int setup(void **s) {
  loop = cor_loop_new(NULL);
  assert_non_null(loop);
  lk = cor_lock_new(loop);
  ev = cor_event_new(loop);
  assert_non_null(lk);
  assert_non_null(ev);
  norder = 0;
  return 0;
}
static int teardown(void **s) {
  cor_release(lk);
  cor_release(ev);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
  return 0;
}

static int locker(void *arg, void **res) {
  int rc = cor_lock_acquire(lk);
  if (rc != 0) {
    order[norder++] = -(int)(intptr_t)arg;
    return 0;
  }
  order[norder++] = (int)(intptr_t)arg;
  cor_yield();
  return cor_lock_release(lk);
}

static cor_task_t *spawn(cor_fn fn, intptr_t i) {
  cor_task_t *t = cor_create_task(loop, cor_coro(fn, (void *)i), NULL);
  assert_non_null(t);
  return t;
}

static int steps(void *arg, void **res) {
  for (int i = 0; i < (int)(intptr_t)arg; i++)
    cor_yield();
  return 0;
}
static void run_steps(int n) {
  cor_task_t *t = spawn(steps, n);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  cor_release(t);
}

/* Waiters get the lock in the order they asked (test_acquire). */
static void test_lock_fifo(void **s) {
  assert_int_equal(cor_lock_acquire(lk), -0); /* fast path, no task needed */
  assert_true(cor_lock_locked(lk));
  cor_task_t *t[4];
  for (int i = 0; i < 4; i++)
    t[i] = spawn(locker, i + 1);
  run_steps(3);
  assert_int_equal(norder, 0);
  assert_int_equal(cor_lock_release(lk), 0);
  run_steps(20);
  assert_int_equal(norder, 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(order[i], i + 1);
    cor_release(t[i]);
  }
  assert_false(cor_lock_locked(lk));
  assert_int_equal(cor_lock_release(lk), -EPERM);
}

/* A waiter cancelled while waiting holds nothing (test_acquire_cancel). */
static void test_lock_cancel_waiting(void **s) {
  assert_int_equal(cor_lock_acquire(lk), 0);
  cor_task_t *a = spawn(locker, 1), *b = spawn(locker, 2);
  run_steps(2);
  assert_int_equal(cor_task_cancel(a, NULL), 0);
  run_steps(2);
  assert_int_equal(cor_lock_release(lk), 0);
  run_steps(10);
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], -1);
  assert_int_equal(order[1], 2);
  assert_false(cor_lock_locked(lk));
  cor_release(a);
  cor_release(b);
}

/* Cancelled after being woken: the wake-up goes to the next waiter
 * (test_cancel_release_race / bpo-27585). */
static void test_lock_cancel_after_woken(void **s) {
  assert_int_equal(cor_lock_acquire(lk), 0);
  cor_task_t *a = spawn(locker, 1), *b = spawn(locker, 2);
  run_steps(2);
  assert_int_equal(cor_lock_release(lk), 0); /* wakes a */
  assert_int_equal(cor_task_cancel(a, NULL), 0);
  run_steps(10);
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], -1);
  assert_int_equal(order[1], 2);
  assert_false(cor_lock_locked(lk));
  cor_release(a);
  cor_release(b);
}

static int waiter(void *arg, void **res) {
  int rc = cor_event_wait(ev);
  order[norder++] = rc == 0 ? (int)(intptr_t)arg : -(int)(intptr_t)arg;
  return 0;
}

static void test_event(void **s) {
  assert_false(cor_event_is_set(ev));
  cor_task_t *t[3];
  for (int i = 0; i < 3; i++)
    t[i] = spawn(waiter, i + 1);
  run_steps(3);
  assert_int_equal(norder, 0);
  assert_int_equal(cor_task_cancel(t[1], NULL), 0);
  run_steps(2);
  cor_event_set(ev);
  cor_event_clear(ev); /* woken waiters still return 0 */
  run_steps(5);
  assert_int_equal(norder, 3);
  assert_int_equal(order[0], -2);
  assert_int_equal(order[1], 1);
  assert_int_equal(order[2], 3);
  cor_event_set(ev);
  assert_true(cor_event_is_set(ev));
  assert_int_equal(cor_event_wait(ev), 0); /* set: no task needed */
  for (int i = 0; i < 3; i++)
    cor_release(t[i]);
}

static void test_misuse(void **s) {
  assert_int_equal(cor_lock_acquire(NULL), -EINVAL);
  assert_int_equal(cor_lock_release(NULL), -EINVAL);
  assert_false(cor_lock_locked(NULL));
  assert_int_equal(cor_event_wait(NULL), -EINVAL);
  cor_event_set(NULL);
  cor_event_clear(NULL);
  assert_false(cor_event_is_set(NULL));
  assert_int_equal(cor_event_wait(ev), COR_ENOTASK);
  assert_int_equal(cor_lock_acquire(lk), 0);
  assert_int_equal(cor_lock_acquire(lk), COR_ENOTASK);
  assert_int_equal(cor_lock_release(lk), 0);
  assert_null(cor_lock_new(NULL)); /* no running loop */
  assert_null(cor_event_new(NULL));
}

static int other_rc[4];
static void *other_thread(void *arg) {
  other_rc[0] = cor_lock_acquire(lk);
  other_rc[1] = cor_lock_release(lk);
  other_rc[2] = cor_event_wait(ev);
  other_rc[3] = cor_lock_locked(lk) ? 1 : -errno;
  cor_event_set(ev);
  return NULL;
}
static int run_other(void *arg, void **res) {
  pthread_t th;
  pthread_create(&th, NULL, other_thread, NULL);
  pthread_join(th, NULL);
  return 0;
}
static void test_wrong_thread(void **s) {
  /* The loop must be running for the owner to be known. */
  cor_task_t *t = spawn(run_other, 0);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  cor_release(t);
  for (int i = 0; i < 3; i++)
    assert_int_equal(other_rc[i], COR_ETHREAD);
  assert_int_equal(other_rc[3], COR_ETHREAD);
  assert_false(cor_event_is_set(ev));
}

static cor_semaphore_t *sem;
static int sem_user(void *arg, void **res) {
  int rc = cor_semaphore_acquire(sem);
  order[norder++] = rc == 0 ? (int)(intptr_t)arg : -(int)(intptr_t)arg;
  return 0;
}
/* FIFO, cancel while waiting and after woken, bounded over-release. */
static void test_semaphore(void **s) {
  sem = cor_semaphore_new(loop, 1, true);
  assert_non_null(sem);
  assert_int_equal(cor_semaphore_release(sem), -EOVERFLOW);
  assert_int_equal(cor_semaphore_acquire(sem), 0);
  assert_true(cor_semaphore_locked(sem));
  cor_task_t *t[4];
  for (int i = 0; i < 4; i++)
    t[i] = spawn(sem_user, i + 1);
  run_steps(3);
  assert_int_equal(cor_task_cancel(t[0], NULL), 0); /* while waiting */
  run_steps(2);
  assert_int_equal(cor_semaphore_release(sem), 0); /* wakes 2 */
  assert_int_equal(cor_task_cancel(t[1], NULL), 0); /* after woken */
  run_steps(5);
  assert_int_equal(norder, 3);
  assert_int_equal(order[0], -1);
  assert_int_equal(order[1], -2);
  assert_int_equal(order[2], 3);
  assert_int_equal(cor_semaphore_release(sem), 0); /* wakes 4 */
  run_steps(5);
  assert_int_equal(norder, 4);
  assert_int_equal(order[3], 4);
  assert_int_equal(cor_semaphore_release(sem), 0);
  assert_int_equal(cor_semaphore_release(sem), -EOVERFLOW);
  assert_false(cor_semaphore_locked(sem));
  assert_int_equal(cor_semaphore_acquire(NULL), -EINVAL);
  assert_int_equal(cor_semaphore_release(NULL), -EINVAL);
  for (int i = 0; i < 4; i++)
    cor_release(t[i]);
  cor_release(sem);
  cor_semaphore_t *u = cor_semaphore_new(loop, 0, false);
  assert_int_equal(cor_semaphore_release(u), 0);
  assert_int_equal(cor_semaphore_release(u), 0);
  assert_int_equal(cor_semaphore_acquire(u), 0);
  assert_int_equal(cor_semaphore_acquire(u), 0);
  assert_int_equal(cor_semaphore_acquire(u), COR_ENOTASK);
  cor_release(u);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lock_fifo, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lock_cancel_waiting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lock_cancel_after_woken, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event, setup, teardown),
      cmocka_unit_test_setup_teardown(test_semaphore, setup, teardown),
      cmocka_unit_test_setup_teardown(test_misuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_thread, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
