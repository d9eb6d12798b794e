/* SPDX-License-Identifier: MIT */
/* The queue (core/queue.c): asyncio.Queue's behaviours (the cases of
 * CPython's test_queues.py, written anew), its 3.13 shutdown, and what a
 * user relies on when tasks are cancelled around it. */
#include "base/alloc.h"
#include "testutil.h"

#include <corio.h>

#include <errno.h>
#include <pthread.h>

#include "logcap.h"
/* cor__alloc_fail_after: allocation failures on purpose. */

static cor_loop_t *loop;
static cor_queue_t *q;

/* What the tasks did, in order: +id for an item taken or put, -id for a
 * refused call, and the codes and items. */
#define LOGN 64
static struct {
  int id[LOGN];
  int rc[LOGN];
  intptr_t item[LOGN];
  int n;
} lg;

static void log_ev(int id, int rc, intptr_t item) {
  assert_true(lg.n < LOGN);
  lg.id[lg.n] = id;
  lg.rc[lg.n] = rc;
  lg.item[lg.n] = item;
  lg.n++;
}

static int setup(void **s) {
  loop = cor_loop_new(NULL);
  assert_non_null(loop);
  q = NULL;
  memset(&lg, 0, sizeof lg);
  return 0;
}
static int teardown(void **s) {
  cor_release(q);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
  return 0;
}

/* The misuse tests capture the log: each refusal logs one ERROR. */
static int setup_cap(void **s) {
  logcap_setup(s);
  return setup(s);
}
static int teardown_cap(void **s) {
  logcap_teardown(s);
  return teardown(s);
}

static cor_queue_t *mkq(size_t maxsize, cor_queue_kind kind,
                        int (*cmp)(const void *, const void *)) {
  cor_queue_opts o = {.maxsize = maxsize, .kind = kind, .cmp = cmp};
  cor_queue_t *r = cor_queue_new(loop, &o);
  assert_non_null(r);
  return r;
}

static cor_task_t *spawn(cor_fn fn, intptr_t arg) {
  cor_task_t *t = cor_create_task(loop, cor_coro(fn, (void *)arg), NULL);
  assert_non_null(t);
  return t;
}

static int steps(void *arg, void **res) {
  for (int i = 0; i < (int)(intptr_t)arg; i++)
    cor_yield();
  return 0;
}
/* Lets the loop run n rounds of the ready tasks. */
static void run_steps(int n) {
  cor_task_t *t = spawn(steps, n);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  cor_release(t);
}

static void release_all(cor_task_t **t, int n) {
  for (int i = 0; i < n; i++) {
    assert_true(cor_future_done(cor_task_future(t[i])));
    cor_release(t[i]);
  }
}

/* A getter task: id = arg; logs (id, rc, item). */
static int getter(void *arg, void **res) {
  void *item = NULL;
  int rc = cor_queue_get(q, &item);
  log_ev((int)(intptr_t)arg, rc, rc == 0 ? (intptr_t)item : 0);
  return 0;
}
/* A putter task: puts its id as the item; logs (id, rc, id). */
static int putter(void *arg, void **res) {
  int rc = cor_queue_put(q, arg);
  log_ev((int)(intptr_t)arg, rc, (intptr_t)arg);
  return 0;
}
static int joiner(void *arg, void **res) {
  int rc = cor_queue_join(q);
  log_ev((int)(intptr_t)arg, rc, 0);
  return 0;
}

static int find_ev(int id) {
  for (int i = 0; i < lg.n; i++)
    if (lg.id[i] == id)
      return i;
  fail_msg("no event for %d", id);
  return -1;
}

static intptr_t get_now(void) {
  void *item = (void *)-1;
  assert_int_equal(cor_queue_get_nowait(q, &item), 0);
  return (intptr_t)item;
}

/* ------------------------------------------------------------ order */

typedef struct {
  int prio, id;
} pitem;
static int pcmp(const void *a, const void *b) {
  const pitem *x = a, *y = b;
  return (x->prio > y->prio) - (x->prio < y->prio);
}

static void test_order(void **s) {
  /* FIFO (the defaults: opts NULL), LIFO. No task needed for either. */
  q = cor_queue_new(loop, NULL);
  assert_non_null(q);
  assert_int_equal(cor_queue_maxsize(q), 0);
  for (intptr_t i = 1; i <= 5; i++)
    assert_int_equal(cor_queue_put(q, (void *)i), 0);
  assert_int_equal(cor_queue_qsize(q), 5);
  for (intptr_t i = 1; i <= 5; i++)
    assert_int_equal(get_now(), i);
  assert_true(cor_queue_empty(q));
  cor_release(q);
  q = mkq(0, COR_QUEUE_LIFO, NULL);
  for (intptr_t i = 1; i <= 5; i++)
    assert_int_equal(cor_queue_put_nowait(q, (void *)i), 0);
  for (intptr_t i = 5; i >= 1; i--) {
    void *it;
    assert_int_equal(cor_queue_get(q, &it), 0);
    assert_int_equal((intptr_t)it, i);
  }
  cor_release(q);

  /* PRIORITY: smallest first, ties in put order. */
  q = mkq(0, COR_QUEUE_PRIORITY, pcmp);
  static pitem it[] = {{3, 0}, {1, 1}, {2, 2}, {1, 3}, {3, 4},
                       {0, 5}, {2, 6}, {1, 7}, {3, 8}};
  for (size_t i = 0; i < sizeof it / sizeof it[0]; i++)
    assert_int_equal(cor_queue_put_nowait(q, &it[i]), 0);
  static const int want[] = {5, 1, 3, 7, 2, 6, 0, 4, 8};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    assert_int_equal(((pitem *)get_now())->id, want[i]);
  void *x;
  assert_int_equal(cor_queue_get_nowait(q, &x), -EAGAIN);

  /* The heap against many priorities with many ties, interleaved. */
  enum { N = 3000 };
  pitem *many = calloc(N, sizeof *many);
  assert_non_null(many);
  uint32_t seed = 12345;
  int last_prio = -1, last_id = -1;
  size_t out = 0;
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    many[i] = (pitem){(int)((seed >> 16) % 50), i};
    assert_int_equal(cor_queue_put_nowait(q, &many[i]), 0);
    if (i % 3 == 2) { /* take one now and then: a partial order check */
      get_now();
      out++;
    }
  }
  assert_int_equal(cor_queue_qsize(q), N - out);
  while (!cor_queue_empty(q)) {
    pitem *p = (pitem *)get_now();
    assert_true(p->prio > last_prio ||
                (p->prio == last_prio && p->id > last_id));
    last_prio = p->prio;
    last_id = p->id;
  }
  free(many);
}

/* ------------------------------------------------------------ maxsize */

static int producer_n;
static int producer(void *arg, void **res) {
  for (intptr_t i = 1; i <= (intptr_t)arg; i++) {
    int rc = cor_queue_put(q, (void *)i);
    if (rc != 0)
      return rc;
    producer_n++;
  }
  return 0;
}

static void test_maxsize_blocks_both_ways(void **s) {
  q = mkq(2, COR_QUEUE_FIFO, NULL);
  assert_int_equal(cor_queue_maxsize(q), 2);
  producer_n = 0;
  cor_task_t *p = spawn(producer, 5);
  run_steps(5);
  assert_int_equal(producer_n, 2); /* blocked on the third */
  assert_true(cor_queue_full(q));
  assert_int_equal(cor_queue_put_nowait(q, (void *)99), -EAGAIN);
  assert_int_equal(get_now(), 1);
  run_steps(3);
  assert_int_equal(producer_n, 3);
  assert_int_equal(cor_queue_qsize(q), 2);
  for (intptr_t i = 2; i <= 5; i++) {
    assert_int_equal(get_now(), i);
    run_steps(2);
  }
  assert_true(cor_future_done(cor_task_future(p)));
  assert_int_equal(cor_future_result(cor_task_future(p), NULL), 0);
  cor_release(p);

  /* A get on an empty queue waits for the put. */
  cor_task_t *g = spawn(getter, 1);
  run_steps(3);
  assert_int_equal(lg.n, 0);
  assert_int_equal(cor_queue_put_nowait(q, (void *)7), 0);
  run_steps(2);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.rc[0], 0);
  assert_int_equal(lg.item[0], 7);
  assert_true(cor_queue_empty(q));
  cor_release(g);
}

/* ------------------------------------------------------------ FIFO waiters */

static void test_waiters_fifo(void **s) {
  q = mkq(1, COR_QUEUE_FIFO, NULL);
  cor_task_t *t[8];
  for (int i = 0; i < 4; i++)
    t[i] = spawn(getter, i + 1);
  run_steps(2);
  for (intptr_t i = 1; i <= 4; i++) { /* one at a time: maxsize 1 */
    assert_int_equal(cor_queue_put_nowait(q, (void *)(100 + i)), 0);
    run_steps(1);
  }
  run_steps(2);
  assert_int_equal(lg.n, 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(lg.id[i], i + 1);
    assert_int_equal(lg.item[i], 101 + i);
  }
  /* Putters: the queue is full, four wait, and go in in order. */
  lg.n = 0;
  assert_int_equal(cor_queue_put_nowait(q, (void *)10), 0);
  for (int i = 0; i < 4; i++)
    t[4 + i] = spawn(putter, 11 + i);
  run_steps(2);
  assert_int_equal(lg.n, 0);
  for (intptr_t i = 10; i <= 14; i++) {
    assert_int_equal(get_now(), i);
    run_steps(2);
  }
  assert_int_equal(lg.n, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(lg.id[i], 11 + i);
  assert_true(cor_queue_empty(q));
  release_all(t, 8);
}

/* Many put_nowait calls from one callback wake as many getters, each with
 * its own item. */
static void put_many_cb(void *arg) {
  for (intptr_t i = 1; i <= (intptr_t)arg; i++)
    assert_int_equal(cor_queue_put_nowait(q, (void *)i), 0);
}
static void test_many_getters_one_callback(void **s) {
  q = mkq(0, COR_QUEUE_FIFO, NULL);
  cor_task_t *t[40];
  for (int i = 0; i < 40; i++)
    t[i] = spawn(getter, i + 1);
  run_steps(2);
  assert_int_equal(cor_call_soon(loop, put_many_cb, (void *)40, NULL), 0);
  run_steps(3);
  assert_int_equal(lg.n, 40);
  for (int i = 0; i < 40; i++) {
    assert_int_equal(lg.id[i], i + 1);
    assert_int_equal(lg.item[i], i + 1);
  }
  release_all(t, 40);
}

/* ------------------------------------------------------------ cancellation */

static void test_cancel_while_waiting(void **s) {
  q = mkq(1, COR_QUEUE_FIFO, NULL);
  cor_task_t *g[3];
  for (int i = 0; i < 3; i++)
    g[i] = spawn(getter, i + 1);
  run_steps(2);
  assert_int_equal(cor_task_cancel(g[1], NULL), 0);
  run_steps(2);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.id[0], 2);
  assert_int_equal(lg.rc[0], -ECANCELED);
  assert_true(cor_future_cancelled(cor_task_future(g[1])) ||
              cor_future_done(cor_task_future(g[1])));
  assert_int_equal(cor_queue_put_nowait(q, (void *)1), 0);
  run_steps(2);
  assert_int_equal(cor_queue_put_nowait(q, (void *)2), 0);
  run_steps(2);
  assert_int_equal(lg.n, 3);
  assert_int_equal(lg.id[1], 1);
  assert_int_equal(lg.item[1], 1);
  assert_int_equal(lg.id[2], 3);
  assert_int_equal(lg.item[2], 2);
  assert_true(cor_queue_empty(q));
  release_all(g, 3);

  /* Putters: a cancelled one put nothing, the others go in, in order. */
  lg.n = 0;
  assert_int_equal(cor_queue_put_nowait(q, (void *)10), 0);
  cor_task_t *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = spawn(putter, 11 + i);
  run_steps(2);
  assert_int_equal(cor_task_cancel(p[0], NULL), 0);
  run_steps(2);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.rc[0], -ECANCELED);
  assert_int_equal(cor_queue_qsize(q), 1);
  assert_int_equal(get_now(), 10);
  run_steps(2);
  assert_int_equal(get_now(), 12);
  run_steps(2);
  assert_int_equal(get_now(), 13);
  assert_true(cor_queue_empty(q));
  assert_int_equal(lg.n, 3);
  release_all(p, 3);
  /* Only the puts that went in are counted: 1, 2, 10, 12, 13. */
  for (int i = 0; i < 5; i++)
    assert_int_equal(cor_queue_task_done(q), 0);
  assert_int_equal(cor_queue_task_done(q), -EPERM);
}

/* Cancelled after the wake-up, before it ran: the item (or slot) goes to
 * the next waiter, none is lost and none starves. */
static void test_cancel_after_woken(void **s) {
  q = mkq(1, COR_QUEUE_FIFO, NULL);
  cor_task_t *g[2] = {spawn(getter, 1), spawn(getter, 2)};
  run_steps(2);
  assert_int_equal(cor_queue_put_nowait(q, (void *)5), 0); /* wakes 1 */
  assert_int_equal(cor_task_cancel(g[0], NULL), 0);
  run_steps(3);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.id[0], 1);
  assert_int_equal(lg.rc[0], -ECANCELED);
  assert_int_equal(lg.id[1], 2);
  assert_int_equal(lg.rc[1], 0);
  assert_int_equal(lg.item[1], 5);
  release_all(g, 2);

  /* Cancelled first, the item put before it ran: the same. */
  lg.n = 0;
  cor_task_t *h[2] = {spawn(getter, 1), spawn(getter, 2)};
  run_steps(2);
  assert_int_equal(cor_task_cancel(h[0], NULL), 0);
  assert_int_equal(cor_queue_put_nowait(q, (void *)8), 0);
  run_steps(3);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.rc[find_ev(1)], -ECANCELED);
  assert_int_equal(lg.rc[find_ev(2)], 0);
  assert_int_equal(lg.item[find_ev(2)], 8);
  assert_true(cor_queue_empty(q));
  release_all(h, 2);

  /* With nobody to pass it to, the item stays in the queue. */
  lg.n = 0;
  cor_task_t *a = spawn(getter, 3);
  run_steps(2);
  assert_int_equal(cor_queue_put_nowait(q, (void *)6), 0);
  assert_int_equal(cor_task_cancel(a, NULL), 0);
  run_steps(2);
  assert_int_equal(lg.rc[0], -ECANCELED);
  assert_int_equal(cor_queue_qsize(q), 1);
  cor_task_t *b = spawn(getter, 4); /* takes it without waiting */
  run_steps(2);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.item[1], 6);
  cor_release(a);
  cor_release(b);

  /* Putters. */
  lg.n = 0;
  assert_int_equal(cor_queue_put_nowait(q, (void *)10), 0);
  cor_task_t *p[2] = {spawn(putter, 11), spawn(putter, 12)};
  run_steps(2);
  assert_int_equal(get_now(), 10); /* wakes 11 */
  assert_int_equal(cor_task_cancel(p[0], NULL), 0);
  run_steps(3);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.id[0], 11);
  assert_int_equal(lg.rc[0], -ECANCELED);
  assert_int_equal(lg.id[1], 12);
  assert_int_equal(lg.rc[1], 0);
  assert_int_equal(cor_queue_qsize(q), 1);
  assert_int_equal(get_now(), 12);
  release_all(p, 2);

  /* Putters, cancelled first, the slot freed before it ran. */
  lg.n = 0;
  assert_int_equal(cor_queue_put_nowait(q, (void *)20), 0);
  cor_task_t *r[2] = {spawn(putter, 21), spawn(putter, 22)};
  run_steps(2);
  assert_int_equal(cor_task_cancel(r[0], NULL), 0);
  assert_int_equal(get_now(), 20);
  run_steps(3);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.rc[find_ev(21)], -ECANCELED);
  assert_int_equal(lg.rc[find_ev(22)], 0);
  assert_int_equal(get_now(), 22);
  assert_true(cor_queue_empty(q));
  release_all(r, 2);
}

/* A woken getter keeps its item against a task that comes later; one whose
 * item a get_nowait took keeps its turn. */
static void test_woken_keeps_turn(void **s) {
  q = mkq(0, COR_QUEUE_FIFO, NULL);
  cor_task_t *a = spawn(getter, 1);
  run_steps(2);
  assert_int_equal(cor_queue_put_nowait(q, (void *)1), 0); /* wakes 1 */
  cor_task_t *b = spawn(getter, 2); /* runs first: must not take it */
  run_steps(3);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.id[0], 1);
  assert_int_equal(lg.item[0], 1);
  assert_int_equal(cor_queue_put_nowait(q, (void *)2), 0);
  run_steps(2);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.id[1], 2);
  assert_int_equal(lg.item[1], 2);
  cor_release(a);
  cor_release(b);

  /* Taken from under a woken getter: it waits again, ahead of the rest. */
  lg.n = 0;
  cor_task_t *c = spawn(getter, 3), *d = spawn(getter, 4);
  run_steps(2);
  assert_int_equal(cor_queue_put_nowait(q, (void *)3), 0); /* wakes 3 */
  assert_int_equal(get_now(), 3);
  run_steps(2);
  assert_int_equal(lg.n, 0);
  assert_int_equal(cor_queue_put_nowait(q, (void *)4), 0);
  run_steps(2);
  assert_int_equal(cor_queue_put_nowait(q, (void *)5), 0);
  run_steps(2);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.id[0], 3);
  assert_int_equal(lg.item[0], 4);
  assert_int_equal(lg.id[1], 4);
  assert_int_equal(lg.item[1], 5);
  cor_release(c);
  cor_release(d);
}

/* get under cor_wait_for: the time-out cancels the getter, which takes
 * nothing; many time-outs leave nothing behind (bpo-31620). */
/* As getter, ending with the get's code (cancelled when it was). */
static int getter_rc(void *arg, void **res) {
  getter(arg, res);
  return lg.rc[lg.n - 1];
}
static int wait_for_get(void *arg, void **res) {
  int rounds = (int)(intptr_t)arg, timeouts = 0;
  for (int i = 0; i < rounds; i++) {
    cor_task_t *g = cor_create_task(NULL, cor_coro(getter_rc, (void *)1), NULL);
    if (g == NULL)
      return -ENOMEM;
    int rc = cor_wait_for(cor_task_future(g), 0.001, NULL);
    cor_release(g);
    if (rc == -ETIMEDOUT)
      timeouts++;
  }
  *res = (void *)(intptr_t)timeouts;
  return 0;
}
static void put_later(void *arg) {
  assert_int_equal(cor_queue_put_nowait(q, arg), 0);
}
static void test_get_wait_for(void **s) {
  q = mkq(0, COR_QUEUE_FIFO, NULL);
  int rounds = (int)test_scale(40, 10);
  cor_task_t *t = spawn(wait_for_get, rounds);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  void *res;
  assert_int_equal(cor_future_result(cor_task_future(t), &res), 0);
  assert_int_equal((intptr_t)res, rounds);
  cor_release(t);
  assert_int_equal(lg.n, rounds);
  for (int i = 0; i < rounds; i++)
    assert_int_equal(lg.rc[i], -ECANCELED);
  assert_true(cor_queue_empty(q));
  /* The queue works as before: an item comes in time. */
  lg.n = 0;
  cor_handle_t h;
  assert_int_equal(cor_call_later(loop, 0.01, put_later, (void *)42, &h), 0);
  cor_task_t *g = spawn(getter, 9);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(g)), 0);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.item[0], 42);
  cor_release(g);
  assert_int_equal(cor_queue_put_nowait(q, (void *)1), 0);
  assert_int_equal(get_now(), 1);
}

/* ------------------------------------------------------------ join */

static void test_join_task_done(void **s) {
  q = mkq(0, COR_QUEUE_FIFO, NULL);
  assert_int_equal(cor_queue_join(q), 0); /* nothing unfinished: no task */
  assert_int_equal(cor_queue_task_done(q), -EPERM);
  for (intptr_t i = 0; i < 3; i++)
    assert_int_equal(cor_queue_put_nowait(q, (void *)i), 0);
  assert_int_equal(cor_queue_join(q), COR_ENOTASK);
  cor_task_t *j[2] = {spawn(joiner, 1), spawn(joiner, 2)};
  run_steps(2);
  for (int i = 0; i < 3; i++) {
    get_now();
    run_steps(1);
    assert_int_equal(lg.n, 0); /* taking is not finishing */
  }
  assert_int_equal(cor_queue_task_done(q), 0);
  assert_int_equal(cor_queue_task_done(q), 0);
  run_steps(2);
  assert_int_equal(lg.n, 0);
  assert_int_equal(cor_queue_task_done(q), 0);
  run_steps(2);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.rc[0], 0);
  assert_int_equal(lg.rc[1], 0);
  assert_int_equal(cor_queue_task_done(q), -EPERM);
  release_all(j, 2);
  /* A joiner cancelled while waiting returns -ECANCELED. */
  lg.n = 0;
  assert_int_equal(cor_queue_put_nowait(q, NULL), 0);
  cor_task_t *c = spawn(joiner, 3);
  run_steps(2);
  assert_int_equal(cor_task_cancel(c, NULL), 0);
  run_steps(2);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.rc[0], -ECANCELED);
  cor_release(c);
  get_now();
  assert_int_equal(cor_queue_task_done(q), 0);
}

/* ------------------------------------------------------------ shutdown */

static void test_shutdown(void **s) {
  /* Not immediate, putters blocked and a joiner: the putters are refused,
   * the items left are handed out, the joiner waits for their task_done. */
  q = mkq(2, COR_QUEUE_FIFO, NULL);
  assert_int_equal(cor_queue_put_nowait(q, (void *)1), 0);
  assert_int_equal(cor_queue_put_nowait(q, (void *)2), 0);
  cor_task_t *t[4] = {spawn(putter, 3), spawn(putter, 4), spawn(joiner, 9)};
  run_steps(2);
  assert_int_equal(cor_queue_shutdown(q, false), 0);
  run_steps(2);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.rc[0], COR_ECLOSED);
  assert_int_equal(lg.rc[1], COR_ECLOSED);
  assert_int_equal(cor_queue_put_nowait(q, (void *)5), COR_ECLOSED);
  assert_int_equal(cor_queue_put(q, (void *)5), COR_ECLOSED);
  assert_int_equal(cor_queue_qsize(q), 2);
  t[3] = spawn(getter, 7); /* gets 1 without waiting */
  run_steps(2);
  assert_int_equal(lg.n, 3);
  assert_int_equal(lg.item[2], 1);
  assert_int_equal(get_now(), 2);
  void *x;
  assert_int_equal(cor_queue_get_nowait(q, &x), COR_ECLOSED);
  assert_int_equal(cor_queue_get(q, &x), COR_ECLOSED); /* no task needed */
  assert_int_equal(cor_queue_task_done(q), 0);
  run_steps(2);
  assert_int_equal(lg.n, 3); /* the joiner waits for the second */
  assert_int_equal(cor_queue_task_done(q), 0);
  run_steps(2);
  assert_int_equal(lg.n, 4);
  assert_int_equal(lg.id[3], 9);
  assert_int_equal(lg.rc[3], 0);
  assert_int_equal(cor_queue_task_done(q), -EPERM);
  assert_int_equal(cor_queue_shutdown(q, false), 0); /* again: fine */
  release_all(t, 4);
  cor_release(q);

  /* Not immediate, getters blocked: all get COR_ECLOSED. */
  lg.n = 0;
  q = mkq(0, COR_QUEUE_LIFO, NULL);
  cor_task_t *g[3];
  for (int i = 0; i < 3; i++)
    g[i] = spawn(getter, i + 1);
  run_steps(2);
  assert_int_equal(cor_queue_shutdown(q, false), 0);
  run_steps(2);
  assert_int_equal(lg.n, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(lg.rc[i], COR_ECLOSED);
  release_all(g, 3);
  cor_release(q);
  q = NULL;
}

static int shut_ok;
static int shutter(void *arg, void **res) {
  /* Runs after everyone below reached its wait, before getter 1 ran. */
  shut_ok = lg.n == 1 && cor_queue_qsize(q) == 1 && cor_queue_full(q);
  return cor_queue_shutdown(q, true);
}

static void test_shutdown_immediate(void **s) {
  /* Both sides blocked at once: getter 1 woken by an item it has not taken
   * yet, getter 3 behind it (the item is promised), putter 5 on the full
   * queue, joiner 4. Ready order: 1 waits; 2 puts (waking 1, to run after
   * the others); 5, 3, 4 wait; the shutter drops the item and wakes all. */
  q = mkq(1, COR_QUEUE_FIFO, NULL);
  cor_task_t *t[6] = {spawn(getter, 1), spawn(putter, 2), spawn(putter, 5),
                      spawn(getter, 3), spawn(joiner, 4), spawn(shutter, 0)};
  shut_ok = 0;
  run_steps(4);
  assert_true(shut_ok);
  assert_int_equal(lg.n, 5);
  assert_int_equal(lg.rc[find_ev(2)], 0);
  assert_int_equal(lg.rc[find_ev(1)], COR_ECLOSED);
  assert_int_equal(lg.rc[find_ev(3)], COR_ECLOSED);
  assert_int_equal(lg.rc[find_ev(5)], COR_ECLOSED);
  assert_int_equal(lg.rc[find_ev(4)], 0);
  assert_true(cor_queue_empty(q));
  assert_int_equal(cor_queue_task_done(q), -EPERM); /* the drop uncounted it */
  void *x;
  assert_int_equal(cor_queue_get_nowait(q, &x), COR_ECLOSED);
  release_all(t, 6);
  cor_release(q);

  /* The unfinished count keeps what was taken but not task_done'd. */
  lg.n = 0;
  q = mkq(0, COR_QUEUE_FIFO, NULL);
  for (intptr_t i = 1; i <= 4; i++)
    assert_int_equal(cor_queue_put_nowait(q, (void *)i), 0);
  assert_int_equal(get_now(), 1);
  assert_int_equal(cor_queue_task_done(q), 0);
  assert_int_equal(get_now(), 2); /* taken, still being worked on */
  cor_task_t *j = spawn(joiner, 7);
  run_steps(2);
  assert_int_equal(cor_queue_shutdown(q, true), 0); /* drops 3 and 4 */
  run_steps(2);
  assert_int_equal(lg.n, 0);
  assert_int_equal(cor_queue_task_done(q), 0);
  run_steps(2);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.rc[0], 0);
  assert_int_equal(cor_queue_task_done(q), -EPERM);
  cor_release(j);
  /* A plain shutdown then an immediate one: the second drops the rest. */
  cor_release(q);
  q = mkq(0, COR_QUEUE_PRIORITY, pcmp);
  static pitem a = {1, 1}, b = {2, 2};
  assert_int_equal(cor_queue_put_nowait(q, &b), 0);
  assert_int_equal(cor_queue_put_nowait(q, &a), 0);
  assert_int_equal(cor_queue_shutdown(q, false), 0);
  assert_int_equal(cor_queue_qsize(q), 2);
  assert_ptr_equal((void *)get_now(), &a);
  assert_int_equal(cor_queue_shutdown(q, true), 0);
  assert_int_equal(cor_queue_qsize(q), 0);
  assert_int_equal(cor_queue_task_done(q), 0);
  assert_int_equal(cor_queue_task_done(q), -EPERM);
}

/* ------------------------------------------------------------ callbacks */

static int cb_rc[8];
static void nowait_cb(void *arg) {
  void *x = NULL;
  cb_rc[0] = cor_queue_put_nowait(q, (void *)1);
  cb_rc[1] = cor_queue_put_nowait(q, (void *)2);
  cb_rc[2] = cor_queue_put_nowait(q, (void *)3); /* full */
  cb_rc[3] = cor_queue_get_nowait(q, &x);
  cb_rc[4] = (int)(intptr_t)x;
  cb_rc[5] = cor_queue_put(q, (void *)4); /* room: no task needed */
  cb_rc[6] = cor_queue_put(q, (void *)5); /* would wait */
  cb_rc[7] = cor_queue_task_done(q);
}
static void drain_cb(void *arg) {
  void *x = NULL;
  int *out = arg;
  out[0] = cor_queue_get(q, &x); /* 2: no wait */
  out[1] = (int)(intptr_t)x;
  out[2] = cor_queue_get_nowait(q, &x);
  out[3] = (int)(intptr_t)x;
  out[4] = cor_queue_get(q, &x); /* empty: would wait */
  out[5] = cor_queue_get_nowait(q, &x);
}
static void test_from_callbacks(void **s) {
  q = mkq(2, COR_QUEUE_FIFO, NULL);
  assert_int_equal(cor_call_soon(loop, nowait_cb, NULL, NULL), 0);
  run_steps(1);
  assert_int_equal(cb_rc[0], 0);
  assert_int_equal(cb_rc[1], 0);
  assert_int_equal(cb_rc[2], -EAGAIN);
  assert_int_equal(cb_rc[3], 0);
  assert_int_equal(cb_rc[4], 1);
  assert_int_equal(cb_rc[5], 0);
  assert_int_equal(cb_rc[6], COR_ENOTASK);
  assert_int_equal(cb_rc[7], 0);
  int out[6];
  assert_int_equal(cor_call_soon(loop, drain_cb, out, NULL), 0);
  run_steps(1);
  assert_int_equal(out[0], 0);
  assert_int_equal(out[1], 2);
  assert_int_equal(out[2], 0);
  assert_int_equal(out[3], 4);
  assert_int_equal(out[4], COR_ENOTASK);
  assert_int_equal(out[5], -EAGAIN);
  /* A callback's put wakes a task's get. */
  cor_task_t *g = spawn(getter, 1);
  run_steps(2);
  assert_int_equal(cor_call_soon(loop, put_many_cb, (void *)1, NULL), 0);
  run_steps(2);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.item[0], 1);
  cor_release(g);
}

/* ------------------------------------------------------------ growth */

static void test_unbounded_growth(void **s) {
  enum { N = 20000 };
  for (int kind = COR_QUEUE_FIFO; kind <= COR_QUEUE_PRIORITY; kind++) {
    q = mkq(0, (cor_queue_kind)kind, kind == COR_QUEUE_PRIORITY ? pcmp : NULL);
    /* Wrap the ring first, so growing must unwrap it. */
    static pitem items[N + 10];
    for (int i = 0; i < N + 10; i++)
      items[i] = (pitem){i, i};
    for (int i = 0; i < 10; i++)
      assert_int_equal(cor_queue_put(q, &items[i]), 0);
    for (int i = 0; i < 7; i++)
      get_now();
    for (int i = 10; i < N + 10; i++)
      assert_int_equal(cor_queue_put(q, &items[i]), 0);
    assert_int_equal(cor_queue_qsize(q), N + 3);
    assert_false(cor_queue_full(q));
    if (kind == COR_QUEUE_LIFO) {
      for (int i = N + 9; i >= 10; i--)
        assert_int_equal(((pitem *)get_now())->id, i);
      for (int i = 2; i >= 0; i--)
        assert_int_equal(((pitem *)get_now())->id, i);
    } else {
      /* FIFO: 0..6 gone; PRIORITY: 0..6 were the smallest, also gone
       * (LIFO took 9, 8, ... 3 in the first loop above). */
      for (int i = 7; i < N + 10; i++)
        assert_int_equal(((pitem *)get_now())->id, i);
    }
    assert_true(cor_queue_empty(q));
    cor_release(q);
    q = NULL;
  }
  /* A released queue with items forgets them (ASan: nothing leaks). */
  q = mkq(0, COR_QUEUE_FIFO, NULL);
  for (intptr_t i = 0; i < 5000; i++)
    assert_int_equal(cor_queue_put_nowait(q, (void *)i), 0);
}

/* Out of memory: the constructor fails cleanly; a put that cannot grow the
 * storage puts nothing, counts nothing, and the queue goes on. */
static void test_alloc_failure(void **s) {
  for (long nth = 1; nth <= 2; nth++) {
    cor__alloc_fail_after(nth);
    errno = 0;
    cor_queue_t *x = cor_queue_new(loop, NULL);
    cor__alloc_fail_after(0);
    assert_null(x);
    assert_int_equal(errno, ENOMEM);
  }
  q = mkq(0, COR_QUEUE_FIFO, NULL);
  intptr_t n = 0;
  /* Fill the first storage (its size is the queue's business: put until a
   * put allocates). */
  for (;;) {
    cor__alloc_fail_after(1);
    int rc = cor_queue_put_nowait(q, (void *)n);
    cor__alloc_fail_after(0);
    if (rc == -ENOMEM)
      break;
    assert_int_equal(rc, 0);
    n++;
    assert_true(n < 100000);
  }
  assert_int_equal(cor_queue_qsize(q), n);
  cor__alloc_fail_after(1);
  assert_int_equal(cor_queue_put(q, (void *)n), -ENOMEM);
  cor__alloc_fail_after(0);
  assert_int_equal(cor_queue_put(q, (void *)n), 0);
  for (intptr_t i = 0; i <= n; i++) {
    assert_int_equal(get_now(), i);
    assert_int_equal(cor_queue_task_done(q), 0);
  }
  assert_int_equal(cor_queue_task_done(q), -EPERM);
}

/* ------------------------------------------------------------ misuse */

static void test_misuse(void **s) {
  void *x;
  errno = 0;
  assert_null(cor_queue_new(loop, &(cor_queue_opts){.kind = COR_QUEUE_PRIORITY}));
  assert_int_equal(errno, EINVAL);
  errno = 0;
  assert_null(cor_queue_new(loop, &(cor_queue_opts){.kind = (cor_queue_kind)7}));
  assert_int_equal(errno, EINVAL);
  errno = 0;
  assert_null(cor_queue_new(NULL, NULL)); /* no running loop */
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cor_queue_put(NULL, NULL), -EINVAL);
  assert_int_equal(cor_queue_get(NULL, &x), -EINVAL);
  assert_int_equal(cor_queue_put_nowait(NULL, NULL), -EINVAL);
  assert_int_equal(cor_queue_get_nowait(NULL, &x), -EINVAL);
  assert_int_equal(cor_queue_task_done(NULL), -EINVAL);
  assert_int_equal(cor_queue_join(NULL), -EINVAL);
  assert_int_equal(cor_queue_shutdown(NULL, false), -EINVAL);
  assert_int_equal(cor_queue_qsize(NULL), 0);
  assert_int_equal(cor_queue_maxsize(NULL), 0);
  assert_false(cor_queue_empty(NULL));
  assert_false(cor_queue_full(NULL));
  q = mkq(1, COR_QUEUE_FIFO, NULL);
  assert_int_equal(cor_queue_get(q, NULL), -EINVAL);
  assert_int_equal(cor_queue_get_nowait(q, NULL), -EINVAL);
  /* Outside a task, a call that would wait. */
  assert_int_equal(cor_queue_get(q, &x), COR_ENOTASK);
  assert_int_equal(cor_queue_put(q, (void *)1), 0);
  assert_int_equal(cor_queue_put(q, (void *)2), COR_ENOTASK);
  assert_int_equal(cor_queue_join(q), COR_ENOTASK);
  assert_int_equal(cor_queue_qsize(q), 1);
  assert_true(cor_queue_full(q));
  /* One ERROR per bad argument; none for the COR_ENOTASK refusals. */
  assert_int_equal(count_recs("(): invalid argument", NULL, NULL, NULL), 16);
  assert_int_equal(nrec, 16);
}

static int other_rc[12];
static void *other_thread(void *arg) {
  void *x;
  int i = 0;
  other_rc[i++] = cor_queue_put(q, (void *)1);
  other_rc[i++] = cor_queue_get(q, &x);
  other_rc[i++] = cor_queue_put_nowait(q, (void *)1);
  other_rc[i++] = cor_queue_get_nowait(q, &x);
  other_rc[i++] = cor_queue_task_done(q);
  other_rc[i++] = cor_queue_join(q);
  other_rc[i++] = cor_queue_shutdown(q, true);
  errno = 0;
  other_rc[i++] = cor_queue_qsize(q) == 0 ? -errno : 1;
  errno = 0;
  other_rc[i++] = cor_queue_maxsize(q) == 0 ? -errno : 1;
  errno = 0;
  other_rc[i++] = !cor_queue_empty(q) ? -errno : 1;
  errno = 0;
  other_rc[i++] = !cor_queue_full(q) ? -errno : 1;
  errno = 0;
  other_rc[i++] = cor_queue_new(loop, NULL) == NULL ? -errno : 1;
  return NULL;
}
static int run_other(void *arg, void **res) {
  pthread_t th;
  pthread_create(&th, NULL, other_thread, NULL);
  pthread_join(th, NULL);
  return 0;
}
static void test_wrong_thread(void **s) {
  q = mkq(4, COR_QUEUE_FIFO, NULL);
  assert_int_equal(cor_queue_put_nowait(q, (void *)9), 0);
  cor_task_t *t = spawn(run_other, 0); /* the loop runs: its owner is known */
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  cor_release(t);
  for (int i = 0; i < 12; i++)
    assert_int_equal(other_rc[i], COR_ETHREAD);
  int level = 0;
  assert_int_equal(count_recs("Non-thread-safe operation cor_queue_",
                              "called from thread", NULL, &level),
                   12);
  assert_int_equal(level, COR_LOG_ERROR);
  /* Nothing changed. */
  assert_int_equal(cor_queue_qsize(q), 1);
  assert_int_equal(get_now(), 9);
  assert_int_equal(cor_queue_put_nowait(q, (void *)1), 0);
  assert_int_equal(cor_queue_task_done(q), 0);
}

/* ------------------------------------------------------------ lifetime */

/* The application drops its reference while a task waits: the waiter's
 * own reference keeps the queue until the wait ends (ASan checks). */
static void test_release_while_waiting(void **s) {
  q = mkq(0, COR_QUEUE_FIFO, NULL);
  cor_task_t *g = spawn(getter, 1);
  run_steps(2);
  cor_release(q); /* the application's reference */
  assert_int_equal(cor_task_cancel(g, NULL), 0);
  run_steps(2);
  q = NULL;
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.rc[0], -ECANCELED);
  cor_release(g);
}

/* ------------------------------------------------------------ stress */

/* Producers put tagged items (producer << 20 | seq) through a small queue
 * to consumers while a chaos task cancels random producers and consumers.
 * A cancelled put put nothing (the producer tries the same item again), a
 * cancelled get took nothing; at the end every item was taken exactly once
 * and, the queue being FIFO, each producer's items in order. */
enum { NPROD = 4, NCONS = 4 };
static struct {
  long per;
  int prod_left;
  long *next_seq; /* per producer: the next seq a consumer must see */
  long taken, dup_or_gap, cancels_get, cancels_put;
  bool stop;
  cor_task_t *tasks[NPROD + NCONS];
} st;

static int st_producer(void *arg, void **res) {
  intptr_t p = (intptr_t)arg;
  for (long i = 0; i < st.per;) {
    int rc = cor_queue_put(q, (void *)((p << 20) | i));
    if (rc == -ECANCELED) {
      st.cancels_put++;
      cor_task_uncancel(cor_current_task());
      continue; /* nothing was put: the same item again */
    }
    if (rc != 0)
      return rc;
    i++;
  }
  st.prod_left--;
  return 0;
}
static int st_consumer(void *arg, void **res) {
  for (;;) {
    void *x;
    int rc = cor_queue_get(q, &x);
    if (rc == -ECANCELED) {
      st.cancels_get++;
      cor_task_uncancel(cor_current_task());
      continue;
    }
    if (rc == COR_ECLOSED)
      return 0;
    if (rc != 0)
      return rc;
    intptr_t p = (intptr_t)x >> 20, seq = (intptr_t)x & ((1 << 20) - 1);
    if (p < 0 || p >= NPROD || seq != st.next_seq[p])
      st.dup_or_gap++;
    else
      st.next_seq[p]++;
    st.taken++;
    cor_queue_task_done(q);
    if (seq % 7 == 0)
      cor_yield();
  }
}
static int st_chaos(void *arg, void **res) {
  uint32_t seed = 99;
  while (st.prod_left > 0) {
    seed = seed * 1103515245u + 12345u;
    cor_task_t *t = st.tasks[(seed >> 16) % (NPROD + NCONS)];
    if (!cor_future_done(cor_task_future(t)))
      cor_task_cancel(t, NULL);
    for (uint32_t k = (seed >> 8) % 4; k > 0; k--)
      cor_yield();
  }
  /* Everything put: wait until it is all processed, then close. */
  int rc = cor_queue_join(q);
  cor_queue_shutdown(q, false);
  return rc;
}
static void test_stress_cancel(void **s) {
  memset(&st, 0, sizeof st);
  st.per = test_scale(20000, 3000);
  st.prod_left = NPROD;
  long seqs[NPROD] = {0};
  st.next_seq = seqs;
  q = mkq(3, COR_QUEUE_FIFO, NULL);
  for (intptr_t i = 0; i < NPROD; i++)
    st.tasks[i] = spawn(st_producer, i);
  for (intptr_t i = 0; i < NCONS; i++)
    st.tasks[NPROD + i] = spawn(st_consumer, i);
  cor_task_t *c = spawn(st_chaos, 0);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(c)), 0);
  assert_int_equal(cor_future_result(cor_task_future(c), NULL), 0);
  for (int i = 0; i < NPROD + NCONS; i++) {
    assert_int_equal(
        cor_loop_run_until_complete(loop, cor_task_future(st.tasks[i])), 0);
    cor_release(st.tasks[i]);
  }
  cor_release(c);
  assert_int_equal(st.dup_or_gap, 0);
  assert_int_equal(st.taken, NPROD * st.per);
  for (int p = 0; p < NPROD; p++)
    assert_int_equal(seqs[p], st.per);
  assert_true(st.cancels_get > 0);
  assert_true(st.cancels_put > 0);
  assert_true(cor_queue_empty(q));
}

/* The dump names the queue a task waits on; a loop closed under waiting
 * getters and putters leaves no node of theirs (on the dropped stacks) on
 * the queue's lists, and the queue stays usable. */
static cor_queue_t *q2;
static int get_q2(void *arg, void **r) {
  void *it;
  return cor_queue_get(q2, &it);
}
static int put_q2(void *arg, void **r) { return cor_queue_put(q2, arg); }
static int join_q2(void *arg, void **r) { return cor_queue_join(q2); }
static int q2_steps(void *arg, void **r) {
  for (int i = 0; i < 3; i++)
    cor_yield();
  return 0;
}
static void ignore_report(cor_loop_t *l, const cor_exception_context *c,
                          void *a) {}
static void test_close_under_waiters(void **s) {
  cor_loop_t *l2 = cor_loop_new(NULL);
  q2 = cor_queue_new(l2, &(cor_queue_opts){.maxsize = 1});
  cor_task_t *t[5];
  t[0] = cor_create_task(l2, cor_coro(get_q2, NULL), "getter");
  t[1] = cor_create_task(l2, cor_coro(get_q2, NULL), "getter2");
  cor_task_t *st = cor_create_task(l2, cor_coro(q2_steps, NULL), NULL);
  assert_int_equal(cor_loop_run_until_complete(l2, cor_task_future(st)), 0);
  cor_release(st);
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_true(cor_dump_tasks(p[1]) >= 0);
  close(p[1]);
  static char buf[65536];
  ssize_t got = 0, k;
  while ((k = read(p[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
    got += k;
  buf[got] = 0;
  close(p[0]);
  char want[96];
  snprintf(want, sizeof want, "waiting on queue (get) %p (0 items of maxsize 1",
           (void *)q2);
  if (!strstr(buf, want))
    print_message("want '%s' in:\n%s\n", want, buf);
  assert_non_null(strstr(buf, want));
  /* Fill it, so putters and a joiner wait too. */
  assert_int_equal(cor_queue_put_nowait(q2, (void *)1), 0); /* wakes getter */
  t[2] = cor_create_task(l2, cor_coro(put_q2, (void *)2), NULL);
  t[3] = cor_create_task(l2, cor_coro(put_q2, (void *)3), NULL);
  t[4] = cor_create_task(l2, cor_coro(join_q2, NULL), NULL);
  st = cor_create_task(l2, cor_coro(q2_steps, NULL), NULL);
  assert_int_equal(cor_loop_run_until_complete(l2, cor_task_future(st)), 0);
  cor_release(st);
  assert_int_equal(cor_loop_set_exception_handler(l2, ignore_report, NULL), 0);
  assert_int_equal(cor_loop_close(l2), 0);
  /* Nothing freed is walked now. */
  void *it;
  while (cor_queue_get_nowait(q2, &it) == 0)
    cor_queue_task_done(q2);
  assert_int_equal(cor_queue_put_nowait(q2, (void *)9), 0);
  assert_int_equal(cor_queue_get_nowait(q2, &it), 0);
  assert_ptr_equal(it, (void *)9);
  assert_int_equal(cor_queue_shutdown(q2, true), 0);
  for (int i = 0; i < 5; i++)
    cor_release(t[i]);
  cor_release(q2);
  cor_release(l2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_maxsize_blocks_both_ways, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waiters_fifo, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_getters_one_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_while_waiting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_after_woken, setup, teardown),
      cmocka_unit_test_setup_teardown(test_woken_keeps_turn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_get_wait_for, setup, teardown),
      cmocka_unit_test_setup_teardown(test_join_task_done, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_immediate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_from_callbacks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unbounded_growth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_misuse, setup_cap, teardown_cap),
      cmocka_unit_test_setup_teardown(test_wrong_thread, setup_cap, teardown_cap),
      cmocka_unit_test_setup_teardown(test_release_while_waiting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stress_cancel, setup, teardown),
      cmocka_unit_test(test_close_under_waiters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
