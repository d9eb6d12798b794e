/* SPDX-License-Identifier: MIT */
/* Lock, Event, Semaphore, Condition and Barrier (core/sync.c): behaviours
 * guided by CPython's test_locks.py. */
#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
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
  recs_clear();
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
  EXPECT_RECORDS(9, COR_LOG_ERROR, "(): invalid argument");
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
  recs_clear();
  /* The loop must be running for the owner to be known. */
  cor_task_t *t = spawn(run_other, 0);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  cor_release(t);
  for (int i = 0; i < 3; i++)
    assert_int_equal(other_rc[i], COR_ETHREAD);
  assert_int_equal(other_rc[3], COR_ETHREAD);
  assert_false(cor_event_is_set(ev));
  EXPECT_RECORDS(5, COR_LOG_ERROR, "Non-thread-safe operation");
}

static cor_semaphore_t *sem;
static int sem_user(void *arg, void **res) {
  int rc = cor_semaphore_acquire(sem);
  order[norder++] = rc == 0 ? (int)(intptr_t)arg : -(int)(intptr_t)arg;
  return 0;
}
/* FIFO, cancel while waiting and after woken, bounded over-release. */
static void test_semaphore(void **s) {
  recs_clear();
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
  EXPECT_RECORDS(2, COR_LOG_ERROR, "(): invalid argument");
}


/* ------------------------------------------------------------ condition */

static cor_condition_t *cv;
static int locked_after[16];

/* Takes the lock, waits once, records its number (negated when the wait
 * failed) and whether the lock was held on return, releases. */
static int cv_waiter(void *arg, void **res) {
  int me = (int)(intptr_t)arg;
  int rc = cor_lock_acquire(cor_condition_lock(cv));
  if (rc != 0)
    return rc;
  rc = cor_condition_wait(cv);
  locked_after[norder] = cor_lock_locked(cor_condition_lock(cv));
  order[norder++] = rc == 0 ? me : (rc == -ECANCELED ? -me : -100);
  return cor_lock_release(cor_condition_lock(cv));
}

static void notify_outside(size_t n, bool all) {
  cor_lock_t *l = cor_condition_lock(cv);
  assert_int_equal(cor_lock_acquire(l), 0); /* free: no task needed */
  assert_int_equal(all ? cor_condition_notify_all(cv)
                       : cor_condition_notify(cv, n),
                   0);
  assert_int_equal(cor_lock_release(l), 0);
}

/* Notified in the order they waited; notify(n) wakes n; notify_all the
 * rest (test_notify, test_notify_all). */
static void test_condition_notify(void **s) {
  cv = cor_condition_new(loop, NULL);
  assert_non_null(cv);
  cor_task_t *t[5];
  for (int i = 0; i < 5; i++)
    t[i] = spawn(cv_waiter, i + 1);
  run_steps(3);
  assert_int_equal(norder, 0);
  assert_false(cor_lock_locked(cor_condition_lock(cv)));
  notify_outside(2, false);
  run_steps(5);
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 2);
  assert_true(locked_after[0] && locked_after[1]);
  notify_outside(1, false);
  run_steps(5);
  assert_int_equal(norder, 3);
  assert_int_equal(order[2], 3);
  notify_outside(0, true);
  run_steps(5);
  assert_int_equal(norder, 5);
  assert_int_equal(order[3], 4);
  assert_int_equal(order[4], 5);
  notify_outside(3, false); /* nobody waits: nothing happens */
  for (int i = 0; i < 5; i++) {
    assert_int_equal(cor_future_result(cor_task_future(t[i]), NULL), 0);
    cor_release(t[i]);
  }
  cor_release(cv);
}

static bool flag;
static bool pred_flag(void *arg) {
  (*(int *)arg)++;
  return flag;
}
static int pred_calls;
static int cv_pred_waiter(void *arg, void **res) {
  int rc = cor_lock_acquire(cor_condition_lock(cv));
  if (rc != 0)
    return rc;
  rc = cor_condition_wait_for(cv, pred_flag, &pred_calls);
  locked_after[norder] = cor_lock_locked(cor_condition_lock(cv));
  order[norder++] = rc == 0 ? 1 : -1;
  return cor_lock_release(cor_condition_lock(cv));
}

/* wait_for returns only once the predicate holds, checked with the lock
 * held after each notification (test_wait_for). */
static void test_condition_wait_for(void **s) {
  recs_clear();
  cv = cor_condition_new(loop, NULL);
  flag = false;
  pred_calls = 0;
  cor_task_t *t = spawn(cv_pred_waiter, 0);
  run_steps(3);
  assert_int_equal(pred_calls, 1);
  notify_outside(0, true);
  run_steps(3);
  assert_int_equal(pred_calls, 2);
  assert_int_equal(norder, 0);
  flag = true;
  run_steps(3);
  assert_int_equal(norder, 0); /* true now, but not notified */
  notify_outside(1, false);
  run_steps(3);
  assert_int_equal(pred_calls, 3);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 1);
  assert_true(locked_after[0]);
  /* True at once: no wait, no task needed. */
  assert_int_equal(cor_lock_acquire(cor_condition_lock(cv)), 0);
  assert_int_equal(cor_condition_wait_for(cv, pred_flag, &pred_calls), 0);
  assert_int_equal(cor_lock_release(cor_condition_lock(cv)), 0);
  assert_int_equal(cor_condition_wait_for(cv, pred_flag, &pred_calls), -EPERM);
  assert_int_equal(cor_condition_wait_for(cv, NULL, NULL), -EINVAL);
  cor_release(t);
  cor_release(cv);
  EXPECT_RECORDS(1, COR_LOG_ERROR, "(): invalid argument");
}

/* Cancelled while waiting for the notification: it takes the lock back
 * before returning -ECANCELED, waiting for it if it must
 * (test_wait_cancel_contested). */
static void test_condition_cancel(void **s) {
  cv = cor_condition_new(loop, NULL);
  cor_lock_t *l = cor_condition_lock(cv);
  cor_task_t *t = spawn(cv_waiter, 1);
  run_steps(3);
  assert_int_equal(cor_lock_acquire(l), 0);
  assert_int_equal(cor_task_cancel(t, NULL), 0);
  run_steps(5);
  assert_int_equal(norder, 0); /* cancelled, but waits for the lock */
  assert_int_equal(cor_lock_release(l), 0);
  run_steps(5);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], -1);
  assert_true(locked_after[0]);
  assert_false(cor_lock_locked(l));
  assert_true(cor_future_cancelled(cor_task_future(t)) ||
              cor_future_result(cor_task_future(t), NULL) == 0);
  cor_release(t);
  /* Cancelled while taking the lock back after a notification: the lock
   * is held on return all the same, and the notification is handed on. */
  norder = 0;
  cor_task_t *a = spawn(cv_waiter, 1), *b = spawn(cv_waiter, 2);
  run_steps(3);
  assert_int_equal(cor_lock_acquire(l), 0);
  assert_int_equal(cor_condition_notify(cv, 1), 0);
  run_steps(3); /* a resumes and queues on the lock */
  assert_int_equal(norder, 0);
  assert_int_equal(cor_task_cancel(a, NULL), 0);
  run_steps(3);
  assert_int_equal(cor_lock_release(l), 0);
  run_steps(10);
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], -1);
  assert_int_equal(order[1], 2);
  assert_true(locked_after[0] && locked_after[1]);
  cor_release(a);
  cor_release(b);
  cor_release(cv);
}

/* Notified, then cancelled before it ran: the notification is handed to
 * the next waiter (CPython gh-112202). */
static void test_condition_cancel_after_notify(void **s) {
  cv = cor_condition_new(loop, NULL);
  cor_lock_t *l = cor_condition_lock(cv);
  cor_task_t *t[3];
  for (int i = 0; i < 3; i++)
    t[i] = spawn(cv_waiter, i + 1);
  run_steps(3);
  assert_int_equal(cor_lock_acquire(l), 0);
  assert_int_equal(cor_condition_notify(cv, 1), 0);
  assert_int_equal(cor_task_cancel(t[0], NULL), 0);
  assert_int_equal(cor_lock_release(l), 0);
  run_steps(10);
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], -1);
  assert_int_equal(order[1], 2); /* got 1's notification */
  assert_true(locked_after[0] && locked_after[1]);
  notify_outside(1, false);
  run_steps(5);
  assert_int_equal(norder, 3);
  assert_int_equal(order[2], 3);
  for (int i = 0; i < 3; i++)
    cor_release(t[i]);
  cor_release(cv);
}

static int cv_unlocked_wait(void *arg, void **res) {
  order[norder++] = cor_condition_wait(cv);
  return 0;
}

/* Wait and notify without the lock: -EPERM (RuntimeError); a wait outside
 * a task: COR_ENOTASK with the lock still held. */
static void test_condition_misuse(void **s) {
  recs_clear();
  cv = cor_condition_new(loop, NULL);
  cor_lock_t *l = cor_condition_lock(cv);
  assert_int_equal(cor_condition_notify(cv, 1), -EPERM);
  assert_int_equal(cor_condition_notify_all(cv), -EPERM);
  assert_int_equal(cor_condition_wait(cv), -EPERM);
  cor_task_t *t = spawn(cv_unlocked_wait, 0);
  run_steps(2);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], -EPERM);
  cor_release(t);
  assert_int_equal(cor_lock_acquire(l), 0);
  assert_int_equal(cor_condition_wait(cv), COR_ENOTASK);
  assert_true(cor_lock_locked(l));
  assert_int_equal(cor_lock_release(l), 0);
  assert_int_equal(cor_condition_wait(NULL), -EINVAL);
  assert_int_equal(cor_condition_notify(NULL, 1), -EINVAL);
  assert_int_equal(cor_condition_notify_all(NULL), -EINVAL);
  assert_null(cor_condition_lock(NULL));
  assert_null(cor_condition_new(NULL, NULL)); /* no running loop */
  /* A lock of another loop. */
  cor_loop_t *other = cor_loop_new(NULL);
  cor_lock_t *ol = cor_lock_new(other);
  errno = 0;
  assert_null(cor_condition_new(loop, ol));
  assert_int_equal(errno, EINVAL);
  cor_release(ol);
  assert_int_equal(cor_loop_close(other), 0);
  cor_release(other);
  cor_release(cv);
  EXPECT_RECORDS(6, COR_LOG_ERROR, "(): invalid argument");
}

/* Two conditions over the caller's lock (test_explicit_lock): the lock is
 * shared, each condition has its own waiters; the condition keeps the lock
 * alive. */
static void test_condition_user_lock(void **s) {
  cor_lock_t *mine = cor_lock_new(loop);
  cor_condition_t *c2 = cor_condition_new(NULL, mine); /* mine's loop */
  cv = cor_condition_new(loop, mine);
  assert_non_null(cv);
  assert_non_null(c2);
  assert_ptr_equal(cor_condition_lock(cv), mine);
  assert_ptr_equal(cor_condition_lock(c2), mine);
  cor_release(mine); /* the conditions hold it */
  cor_task_t *t = spawn(cv_waiter, 1);
  run_steps(3);
  assert_int_equal(cor_lock_acquire(mine), 0);
  assert_true(cor_lock_locked(cor_condition_lock(c2)));
  assert_int_equal(cor_condition_notify_all(c2), 0); /* not c's waiter */
  assert_int_equal(cor_lock_release(mine), 0);
  run_steps(3);
  assert_int_equal(norder, 0);
  notify_outside(1, false);
  run_steps(3);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 1);
  cor_release(t);
  cor_release(c2);
  cor_release(cv);
}


/* Stress: consumers take tokens under the condition (wait_for), a producer
 * adds them one at a time with notify(1), and a killer cancels consumers at
 * pseudo-random moments, notified ones included. Every token is taken exactly once, no consumer
 * sleeps while tokens are left (no notification lost to a cancellation),
 * and each wait returned with the lock held. Bounded: 64 consumers, 2,000
 * tokens. */
enum { ST_C = 64, ST_TOKENS = 2000 };
static struct {
  long tokens, produced, taken, unlocked_returns, stranded;
  int waiting;
  cor_task_t *cons[ST_C];
  cor_task_t *dead[4 * ST_TOKENS];
  int ndead;
  unsigned rng;
} st;
static unsigned st_rand(void) {
  st.rng = st.rng * 1103515245u + 12345u;
  return st.rng >> 16;
}
static bool st_pred(void *arg) { return st.tokens > 0; }
/* Takes one token and ends: a token left while consumers wait can only be
 * a notification that was lost (none comes back to re-check). */
static int st_consumer(void *arg, void **res) {
  cor_lock_t *l = cor_condition_lock(cv);
  int rc = cor_lock_acquire(l);
  if (rc != 0)
    return 0; /* cancelled while taking the lock: holds nothing */
  st.waiting++;
  rc = cor_condition_wait_for(cv, st_pred, NULL);
  st.waiting--;
  if (!cor_lock_locked(l))
    st.unlocked_returns++;
  if (rc == 0) {
    st.tokens--;
    st.taken++;
  }
  cor_lock_release(l);
  return 0;
}
/* Cancels a live consumer; the slot is refilled at a later round, after the
 * check (a new consumer takes a token without waiting, and would hide a
 * lost notification). */
static void st_cancel_one(void) {
  int k = (int)(st_rand() % ST_C);
  if (st.cons[k] == NULL)
    return;
  cor_task_cancel(st.cons[k], NULL);
  st.dead[st.ndead++] = st.cons[k];
  st.cons[k] = NULL;
}
static void st_refill(void) {
  for (int k = 0; k < ST_C; k++)
    if (st.cons[k] == NULL || cor_future_done(cor_task_future(st.cons[k]))) {
      if (st.cons[k])
        st.dead[st.ndead++] = st.cons[k];
      st.cons[k] = cor_create_task(loop, cor_coro(st_consumer, NULL), NULL);
    }
}
/* Rounds: let everything settle (each consumer back in its wait), check
 * nobody sleeps on a token, then add k tokens, notify k, and cancel a few
 * consumers, notified ones included, before letting go of the lock. */
static int st_producer(void *arg, void **res) {
  cor_lock_t *l = cor_condition_lock(cv);
  while (st.produced < ST_TOKENS) {
    for (int y = 0; y < 4 * ST_C; y++)
      cor_yield();
    if (st.waiting > 0 && st.tokens > 0)
      st.stranded++;
    /* After the check, and settled before the next tokens come: a
     * newcomer checks the predicate first and would take a stranded token. */
    st_refill();
    for (int y = 0; y < 4 * ST_C; y++)
      cor_yield();
    int rc = cor_lock_acquire(l);
    if (rc != 0)
      return rc;
    long k = 1 + (long)(st_rand() % 8);
    st.tokens += k;
    st.produced += k;
    cor_condition_notify(cv, (size_t)k);
    for (unsigned v = st_rand() % 4; v > 0; v--)
      st_cancel_one();
    cor_lock_release(l);
  }
  for (int y = 0; y < 4 * ST_C; y++)
    cor_yield();
  return 0;
}
static void test_condition_stress(void **s) {
  memset(&st, 0, sizeof st);
  st.rng = 12345;
  cv = cor_condition_new(loop, NULL);
  for (int i = 0; i < ST_C; i++)
    st.cons[i] = spawn(st_consumer, 0);
  cor_task_t *p = spawn(st_producer, 0);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(p)), 0);
  cor_release(p);
  run_steps(200);
  assert_true(st.produced >= ST_TOKENS);
  assert_int_equal(st.unlocked_returns, 0);
  assert_int_equal(st.stranded, 0);
  /* Live consumers wait, so every token must have been taken. */
  assert_true(st.waiting > 0);
  assert_int_equal(st.tokens, 0);
  assert_int_equal(st.taken, st.produced);
  for (int i = 0; i < ST_C; i++)
    if (st.cons[i])
      cor_task_cancel(st.cons[i], NULL);
  run_steps(4 * ST_C);
  for (int i = 0; i < ST_C; i++)
    if (st.cons[i]) {
      assert_true(cor_future_done(cor_task_future(st.cons[i])));
      cor_release(st.cons[i]);
    }
  for (int i = 0; i < st.ndead; i++) {
    assert_true(cor_future_done(cor_task_future(st.dead[i])));
    cor_release(st.dead[i]);
  }
  assert_false(cor_lock_locked(cor_condition_lock(cv)));
  cor_release(cv);
}

/* ------------------------------------------------------------ barrier */

static cor_barrier_t *bar;
static int rounds = 1;
static int bar_rc[16];
static unsigned bar_idx[16];

/* Waits `rounds` times; records the last outcome and index. */
static int bar_party(void *arg, void **res) {
  int me = (int)(intptr_t)arg;
  for (int r = 0; r < rounds; r++) {
    unsigned i = 99;
    int rc = cor_barrier_wait(bar, &i);
    bar_rc[me] = rc;
    bar_idx[me] = i;
    order[norder++] = rc == 0 ? me * 10 + (int)i : -me;
    if (rc != 0)
      return 0;
  }
  return 0;
}

static void release_all(cor_task_t **t, int n) {
  for (int i = 0; i < n; i++)
    cor_release(t[i]);
}

/* The parties-th arrival releases all; each gets its order of arrival; the
 * barrier is reusable (test_barrier, test_repeated_barrier). */
static void test_barrier_basic(void **s) {
  recs_clear();
  errno = 0;
  assert_null(cor_barrier_new(loop, 0));
  assert_int_equal(errno, EINVAL);
  bar = cor_barrier_new(loop, 3);
  assert_non_null(bar);
  assert_int_equal(cor_barrier_parties(bar), 3);
  rounds = 3;
  cor_task_t *t[3];
  t[0] = spawn(bar_party, 1);
  t[1] = spawn(bar_party, 2);
  run_steps(3);
  assert_int_equal(cor_barrier_n_waiting(bar), 2);
  assert_int_equal(norder, 0);
  t[2] = spawn(bar_party, 3);
  run_steps(30);
  assert_int_equal(norder, 9);
  /* Round one: 3 arrived last and went first (no wait), index 2. */
  assert_int_equal(order[0], 32);
  assert_int_equal(order[1], 10);
  assert_int_equal(order[2], 21);
  for (int i = 3; i < 9; i++)
    assert_true(order[i] % 10 >= 0 && order[i] % 10 <= 2);
  /* Each round hands out 0, 1, 2 once. */
  for (int r = 0; r < 3; r++) {
    int seen = 0;
    for (int i = 0; i < 3; i++)
      seen |= 1 << (order[r * 3 + i] % 10);
    assert_int_equal(seen, 7);
  }
  assert_int_equal(cor_barrier_n_waiting(bar), 0);
  assert_false(cor_barrier_broken(bar));
  release_all(t, 3);
  /* One party: never waits, index 0, even outside a task. */
  cor_barrier_t *one = cor_barrier_new(loop, 1);
  unsigned i = 5;
  assert_int_equal(cor_barrier_wait(one, &i), 0);
  assert_int_equal(i, 0);
  assert_int_equal(cor_barrier_wait(one, NULL), 0);
  cor_release(one);
  /* Would wait outside a task: COR_ENOTASK, not counted. */
  assert_int_equal(cor_barrier_wait(bar, &i), COR_ENOTASK);
  assert_int_equal(cor_barrier_n_waiting(bar), 0);
  rounds = 1;
  cor_release(bar);
  EXPECT_RECORDS(1, COR_LOG_ERROR, "(): invalid argument");
}

/* Arrivals while the released parties drain wait for them to leave, then
 * fill the next round (test_draining_state). */
static void test_barrier_draining(void **s) {
  bar = cor_barrier_new(loop, 2);
  cor_task_t *t[4];
  for (int i = 0; i < 4; i++)
    t[i] = spawn(bar_party, i + 1);
  run_steps(20);
  assert_int_equal(norder, 4);
  /* 2 releases (index 1) and returns first; 3 arrived while 1 had not
   * left yet: it waits, then starts round two with index 0. */
  assert_int_equal(order[0], 21);
  assert_int_equal(order[1], 10);
  assert_int_equal(order[2], 41);
  assert_int_equal(order[3], 30);
  release_all(t, 4);
  cor_release(bar);
}

/* Abort: every waiter and every later wait gets COR_EBROKEN; a reset makes
 * it usable again (test_abort_barrier). */
static void test_barrier_abort(void **s) {
  bar = cor_barrier_new(loop, 3);
  cor_task_t *t[5];
  t[0] = spawn(bar_party, 1);
  t[1] = spawn(bar_party, 2);
  run_steps(3);
  assert_int_equal(cor_barrier_abort(bar), 0);
  assert_true(cor_barrier_broken(bar));
  run_steps(5);
  assert_int_equal(norder, 2);
  assert_int_equal(bar_rc[1], COR_EBROKEN);
  assert_int_equal(bar_rc[2], COR_EBROKEN);
  assert_int_equal(cor_barrier_wait(bar, NULL), COR_EBROKEN);
  assert_int_equal(cor_barrier_n_waiting(bar), 0);
  assert_int_equal(cor_barrier_reset(bar), 0);
  assert_false(cor_barrier_broken(bar));
  for (int i = 2; i < 5; i++)
    t[i] = spawn(bar_party, i + 1);
  run_steps(10);
  assert_int_equal(norder, 5);
  for (int i = 3; i <= 5; i++)
    assert_int_equal(bar_rc[i], 0);
  assert_int_equal(bar_idx[5], 2);
  release_all(t, 5);
  cor_release(bar);
}

/* Reset with waiters: they get COR_EBROKEN, the barrier is whole again
 * once they left (test_reset_barrier_while_tasks_waiting). */
static void test_barrier_reset(void **s) {
  bar = cor_barrier_new(loop, 3);
  cor_task_t *t[6];
  t[0] = spawn(bar_party, 1);
  t[1] = spawn(bar_party, 2);
  run_steps(3);
  assert_int_equal(cor_barrier_reset(bar), 0);
  assert_false(cor_barrier_broken(bar));
  t[2] = spawn(bar_party, 3); /* arrives while they leave: waits for it */
  run_steps(5);
  assert_int_equal(norder, 2);
  assert_int_equal(bar_rc[1], COR_EBROKEN);
  assert_int_equal(bar_rc[2], COR_EBROKEN);
  assert_int_equal(cor_barrier_n_waiting(bar), 1); /* 3, in a new round */
  t[3] = spawn(bar_party, 4);
  t[4] = spawn(bar_party, 5);
  run_steps(10);
  assert_int_equal(norder, 5);
  assert_int_equal(bar_rc[3], 0);
  assert_int_equal(bar_idx[3], 0);
  assert_int_equal(bar_idx[4], 1);
  assert_int_equal(bar_idx[5], 2);
  /* Reset of an empty barrier: nothing to break. */
  assert_int_equal(cor_barrier_reset(bar), 0);
  t[5] = spawn(bar_party, 6);
  run_steps(3);
  assert_int_equal(cor_barrier_n_waiting(bar), 1);
  assert_int_equal(cor_task_cancel(t[5], NULL), 0);
  run_steps(3);
  release_all(t, 6);
  cor_release(bar);
}

/* A party cancelled while the barrier fills leaves it: the count drops,
 * the barrier is not broken, the others still meet (asyncio: the
 * cancelled wait decrements the count). */
static void test_barrier_cancel(void **s) {
  recs_clear();
  bar = cor_barrier_new(loop, 3);
  cor_task_t *t[4];
  t[0] = spawn(bar_party, 1);
  t[1] = spawn(bar_party, 2);
  run_steps(3);
  assert_int_equal(cor_barrier_n_waiting(bar), 2);
  assert_int_equal(cor_task_cancel(t[1], NULL), 0);
  run_steps(3);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], -2);
  assert_int_equal(bar_rc[2], -ECANCELED);
  assert_int_equal(cor_barrier_n_waiting(bar), 1);
  assert_false(cor_barrier_broken(bar));
  t[2] = spawn(bar_party, 3);
  t[3] = spawn(bar_party, 4);
  run_steps(10);
  assert_int_equal(norder, 4);
  assert_int_equal(bar_rc[1], 0);
  assert_int_equal(bar_idx[1], 0);
  assert_int_equal(bar_idx[3], 1);
  assert_int_equal(bar_idx[4], 2);
  assert_int_equal(cor_barrier_wait(NULL, NULL), -EINVAL);
  assert_int_equal(cor_barrier_abort(NULL), -EINVAL);
  assert_int_equal(cor_barrier_reset(NULL), -EINVAL);
  release_all(t, 4);
  cor_release(bar);
  EXPECT_RECORDS(3, COR_LOG_ERROR, "(): invalid argument");
}

/* ------------------------------------------------------------ the dump */

static cor_future_t *hold;
static int holder_body(void *arg, void **res) {
  int rc = cor_lock_acquire(lk);
  if (rc != 0)
    return rc;
  cor_await(hold, NULL);
  return cor_lock_release(lk);
}
static int lock_waiter_body(void *arg, void **res) {
  int rc = cor_lock_acquire(lk);
  if (rc == 0)
    cor_lock_release(lk);
  return rc;
}

static void dump_to(char *buf, size_t n) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_true(cor_dump_tasks(p[1]) >= 0);
  close(p[1]);
  ssize_t got = 0, k;
  while ((k = read(p[0], buf + got, n - 1 - (size_t)got)) > 0)
    got += k;
  buf[got] = 0;
  close(p[0]);
}

static char shutdown_repr[4096];
static void grab_repr(cor_loop_t *l, const cor_exception_context *c, void *a) {
  if (c->object_repr && strstr(c->object_repr, "'waiter'"))
    snprintf(shutdown_repr, sizeof shutdown_repr, "%s", c->object_repr);
}

/* The dump and the shutdown report name what a task waits on and, for a
 * lock, which task holds it. */
static void test_dump_names_lock(void **s) {
  cor_loop_t *l2 = cor_loop_new(NULL);
  cor_lock_t *saved = lk;
  lk = cor_lock_new(l2);
  hold = cor_future_new(l2);
  cor_task_t *h = cor_create_task(l2, cor_coro(holder_body, NULL), "holder");
  cor_task_t *w =
      cor_create_task(l2, cor_coro(lock_waiter_body, NULL), "waiter");
  cor_task_t *st = cor_create_task(l2, cor_coro(steps, (void *)3), NULL);
  assert_int_equal(cor_loop_run_until_complete(l2, cor_task_future(st)), 0);
  cor_release(st);
  static char buf[65536];
  dump_to(buf, sizeof buf);
  char want[128];
  snprintf(want, sizeof want, "waiting on lock %p held by Task 'holder'",
           (void *)lk);
  if (!strstr(buf, want))
    print_message("want '%s' in:\n%s\n", want, buf);
  assert_non_null(strstr(buf, want));
  /* The shutdown report ("Task was destroyed but it is pending!"). */
  assert_int_equal(cor_loop_set_exception_handler(l2, grab_repr, NULL), 0);
  shutdown_repr[0] = 0;
  assert_int_equal(cor_loop_close(l2), 0);
  if (!strstr(shutdown_repr, want))
    print_message("want '%s' in: %s\n", want, shutdown_repr);
  assert_non_null(strstr(shutdown_repr, want));
  cor_release(h);
  cor_release(w);
  cor_release(hold);
  cor_release(lk);
  cor_release(l2);
  lk = saved;
}

/* A loop closed under tasks waiting on a lock, a condition, a barrier, an
 * event, a semaphore: their nodes (on the dropped stacks) leave the lists,
 * and the objects stay usable. */
static cor_condition_t *cv2;
static cor_barrier_t *bar2;
static cor_semaphore_t *sem2;
static cor_event_t *ev2;
static int lock_then_cond(void *arg, void **res) {
  int rc = cor_lock_acquire(cor_condition_lock(cv2));
  return rc ? rc : cor_condition_wait(cv2);
}
static int wait_bar2(void *arg, void **res) { return cor_barrier_wait(bar2, NULL); }
static int wait_sem2(void *arg, void **res) { return cor_semaphore_acquire(sem2); }
static int wait_ev2(void *arg, void **res) { return cor_event_wait(ev2); }
static void ignore_report(cor_loop_t *l, const cor_exception_context *c,
                          void *a) {}
static void test_close_under_waiters(void **s) {
  cor_loop_t *l2 = cor_loop_new(NULL);
  cor_lock_t *saved = lk;
  lk = cor_lock_new(l2);
  cv2 = cor_condition_new(l2, NULL);
  bar2 = cor_barrier_new(l2, 3);
  sem2 = cor_semaphore_new(l2, 0, false);
  ev2 = cor_event_new(l2);
  assert_int_equal(cor_lock_acquire(lk), 0);
  cor_task_t *t[6];
  t[0] = cor_create_task(l2, cor_coro(lock_waiter_body, NULL), NULL);
  t[1] = cor_create_task(l2, cor_coro(lock_waiter_body, NULL), NULL);
  t[2] = cor_create_task(l2, cor_coro(lock_then_cond, NULL), NULL);
  t[3] = cor_create_task(l2, cor_coro(wait_bar2, NULL), NULL);
  t[4] = cor_create_task(l2, cor_coro(wait_sem2, NULL), NULL);
  t[5] = cor_create_task(l2, cor_coro(wait_ev2, NULL), NULL);
  cor_task_t *st = cor_create_task(l2, cor_coro(steps, (void *)3), NULL);
  assert_int_equal(cor_loop_run_until_complete(l2, cor_task_future(st)), 0);
  cor_release(st);
  assert_int_equal(cor_lock_release(lk), 0); /* wakes t[0]: never runs */
  assert_int_equal(cor_loop_set_exception_handler(l2, ignore_report, NULL), 0);
  assert_int_equal(cor_loop_close(l2), 0);
  /* The lists are empty: these walk nothing freed. */
  assert_int_equal(cor_lock_acquire(lk), 0);
  assert_int_equal(cor_lock_release(lk), 0);
  assert_int_equal(cor_lock_acquire(cor_condition_lock(cv2)), 0);
  assert_int_equal(cor_condition_notify_all(cv2), 0);
  assert_int_equal(cor_lock_release(cor_condition_lock(cv2)), 0);
  assert_int_equal(cor_barrier_abort(bar2), 0);
  assert_int_equal(cor_semaphore_release(sem2), 0);
  cor_event_set(ev2);
  for (int i = 0; i < 6; i++)
    cor_release(t[i]);
  cor_release(cv2);
  cor_release(bar2);
  cor_release(sem2);
  cor_release(ev2);
  cor_release(lk);
  cor_release(l2);
  lk = saved;
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
      cmocka_unit_test_setup_teardown(test_condition_notify, setup, teardown),
      cmocka_unit_test_setup_teardown(test_condition_wait_for, setup, teardown),
      cmocka_unit_test_setup_teardown(test_condition_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_condition_cancel_after_notify, setup, teardown),
      cmocka_unit_test_setup_teardown(test_condition_misuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_condition_user_lock, setup, teardown),
      cmocka_unit_test_setup_teardown(test_condition_stress, setup, teardown),
      cmocka_unit_test_setup_teardown(test_barrier_basic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_barrier_draining, setup, teardown),
      cmocka_unit_test_setup_teardown(test_barrier_abort, setup, teardown),
      cmocka_unit_test_setup_teardown(test_barrier_reset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_barrier_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dump_names_lock, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_under_waiters, setup, teardown),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
