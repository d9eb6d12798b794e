/* SPDX-License-Identifier: MIT */
/* Channels across loops and threads: a validator (producers and consumers
 * that are tasks of several loops and plain threads; loss, duplicates and
 * per-producer order checked), close with blocked senders, cancellation of
 * a waiting receiver, time-outs, the try_ calls from a loop callback, and a
 * capacity of 1. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include <corio.h>

#include "logcap.h"

/* ------------------------------------------------------------ helpers */

#define NLOOPS 3
typedef struct {
  cor_loop_t *loop;
  pthread_t th;
} loop_thread;
static loop_thread g_lt[NLOOPS];

static void *run_loop(void *p) {
  loop_thread *lt = p;
  assert_int_equal(cor_loop_run_forever(lt->loop), 0);
  return NULL;
}
static void stop_cb(void *loop) { cor_loop_stop(loop); }

static void loops_start(void) {
  for (int i = 0; i < NLOOPS; i++) {
    g_lt[i].loop = cor_loop_new(NULL);
    assert_non_null(g_lt[i].loop);
    assert_int_equal(pthread_create(&g_lt[i].th, NULL, run_loop, &g_lt[i]), 0);
  }
}
static void loops_stop(void) {
  for (int i = 0; i < NLOOPS; i++) {
    assert_int_equal(cor_call_soon_threadsafe(g_lt[i].loop, stop_cb, g_lt[i].loop), 0);
    pthread_join(g_lt[i].th, NULL);
    assert_int_equal(cor_loop_close(g_lt[i].loop), 0);
    cor_release(g_lt[i].loop);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* An item: producer id in the high bits, sequence (from 1) in the low. */
#define TAG(p, s) ((void *)(uintptr_t)(((uint64_t)(p) << 40) | (uint64_t)(s)))
#define TAG_P(v) ((int)((uintptr_t)(v) >> 40))
#define TAG_S(v) ((long)((uintptr_t)(v) & (((uint64_t)1 << 40) - 1)))

/* ------------------------------------------------------------ validator */

#define MAXP 8
#define MAXC 8

typedef struct {
  cor_channel_t *ch;
  long m;
  int np;
  _Atomic unsigned char *seen[MAXP]; /* seen[p][s]: times received */
  atomic_long received;
  atomic_long errors;
} val_t;

typedef struct {
  val_t *v;
  int id;
  long last[MAXP];
} role_t;

static int produce(role_t *r) {
  for (long s = 1; s <= r->v->m; s++) {
    int rc = cor_channel_send(r->v->ch, TAG(r->id, s), COR_FOREVER);
    if (rc != 0) {
      atomic_fetch_add(&r->v->errors, 1);
      return rc;
    }
  }
  return 0;
}

static int consume(role_t *r) {
  val_t *v = r->v;
  for (;;) {
    void *item;
    int rc = cor_channel_recv(v->ch, &item, COR_FOREVER);
    if (rc == COR_ECLOSED)
      return 0;
    if (rc != 0) {
      atomic_fetch_add(&v->errors, 1);
      return rc;
    }
    int p = TAG_P(item);
    long s = TAG_S(item);
    if (p >= v->np || s < 1 || s > v->m || s <= r->last[p]) {
      atomic_fetch_add(&v->errors, 1); /* garbage or out of order */
      continue;
    }
    r->last[p] = s;
    atomic_fetch_add(&v->seen[p][s], 1);
    atomic_fetch_add(&v->received, 1);
  }
}

static int produce_task(void *a, void **res) { return produce(a); }
static int consume_task(void *a, void **res) { return consume(a); }
static void *produce_thread(void *a) { produce(a); return NULL; }
static void *consume_thread(void *a) { consume(a); return NULL; }

/* pt producer tasks + pth producer threads; ct consumer tasks + cth
 * consumer threads; tasks spread over the loops. */
static void validate(int pt, int pth, int ct, int cth, size_t cap, long m) {
  loops_start();
  val_t v = {.m = m, .np = pt + pth};
  v.ch = cor_channel_new(&(cor_channel_opts){.capacity = cap});
  assert_non_null(v.ch);
  for (int p = 0; p < v.np; p++)
    v.seen[p] = calloc((size_t)m + 1, 1);
  role_t prod[MAXP] = {0}, cons[MAXC] = {0};
  cor_cfuture_t *pcf[MAXP] = {0}, *ccf[MAXC] = {0};
  pthread_t pth_t[MAXP], cth_t[MAXC];
  for (int i = 0; i < ct + cth; i++) {
    cons[i] = (role_t){.v = &v, .id = i};
    if (i < ct) {
      ccf[i] = cor_run_coroutine_threadsafe(cor_coro(consume_task, &cons[i]),
                                            g_lt[i % NLOOPS].loop);
      assert_non_null(ccf[i]);
    } else {
      assert_int_equal(pthread_create(&cth_t[i], NULL, consume_thread, &cons[i]), 0);
    }
  }
  for (int i = 0; i < v.np; i++) {
    prod[i] = (role_t){.v = &v, .id = i};
    if (i < pt) {
      pcf[i] = cor_run_coroutine_threadsafe(cor_coro(produce_task, &prod[i]),
                                            g_lt[(i + 1) % NLOOPS].loop);
      assert_non_null(pcf[i]);
    } else {
      assert_int_equal(pthread_create(&pth_t[i], NULL, produce_thread, &prod[i]), 0);
    }
  }
  for (int i = 0; i < v.np; i++) {
    if (i < pt) {
      assert_int_equal(cor_cfuture_result(pcf[i], 60, NULL), 0);
      cor_release(pcf[i]);
    } else {
      pthread_join(pth_t[i], NULL);
    }
  }
  assert_int_equal(cor_channel_close(v.ch), 0);
  for (int i = 0; i < ct + cth; i++) {
    if (i < ct) {
      assert_int_equal(cor_cfuture_result(ccf[i], 60, NULL), 0);
      cor_release(ccf[i]);
    } else {
      pthread_join(cth_t[i], NULL);
    }
  }
  assert_int_equal(atomic_load(&v.errors), 0);
  assert_int_equal(atomic_load(&v.received), (long)v.np * m);
  for (int p = 0; p < v.np; p++) {
    for (long s = 1; s <= m; s++)
      if (v.seen[p][s] != 1)
        fail_msg("producer %d item %ld received %d times", p, s, v.seen[p][s]);
    free(v.seen[p]);
  }
  cor_release(v.ch);
  loops_stop();
}

static void test_validate_mixed(void **state) {
  validate(3, 2, 2, 2, 64, test_scale(20000, 2000));
}
static void test_validate_capacity1(void **state) {
  validate(2, 1, 1, 1, 1, test_scale(5000, 500));
}
static void test_validate_default_capacity(void **state) {
  validate(2, 2, 1, 1, 0, test_scale(50000, 3000));
}
static void test_validate_odd_capacity(void **state) {
  validate(2, 1, 2, 1, 3, test_scale(10000, 1000));
}

/* ------------------------------------------------------------ close */

typedef struct {
  cor_channel_t *ch;
  int rc;
} blocked_t;
static void *blocked_sender(void *p) {
  blocked_t *b = p;
  b->rc = cor_channel_send(b->ch, TAG(7, 7), COR_FOREVER);
  return NULL;
}
static int blocked_sender_task(void *p, void **res) {
  return cor_channel_send(((blocked_t *)p)->ch, TAG(7, 7), COR_FOREVER);
}

static void test_close_with_blocked_senders(void **state) {
  loops_start();
  cor_channel_t *ch = cor_channel_new(&(cor_channel_opts){.capacity = 4});
  for (long s = 1; s <= 4; s++)
    assert_int_equal(cor_channel_try_send(ch, TAG(0, s)), 0);
  assert_int_equal(cor_channel_try_send(ch, TAG(0, 5)), -EAGAIN);
  blocked_t b[2] = {{ch, 1}, {ch, 1}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, blocked_sender, &b[i]), 0);
  cor_cfuture_t *cf[NLOOPS];
  for (int i = 0; i < NLOOPS; i++)
    cf[i] = cor_run_coroutine_threadsafe(cor_coro(blocked_sender_task, &b[0]),
                                         g_lt[i].loop);
  usleep(50000); /* they are parked by now */
  for (int i = 0; i < NLOOPS; i++)
    assert_false(cor_cfuture_done(cf[i]));
  assert_int_equal(cor_channel_close(ch), 0);
  assert_int_equal(cor_channel_close(ch), COR_ECLOSED);
  for (int i = 0; i < 2; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(b[i].rc, COR_ECLOSED);
  }
  for (int i = 0; i < NLOOPS; i++) {
    assert_int_equal(cor_cfuture_result(cf[i], 10, NULL), COR_ECLOSED);
    cor_release(cf[i]);
  }
  assert_int_equal(cor_channel_send(ch, TAG(0, 9), 0), COR_ECLOSED);
  assert_int_equal(cor_channel_try_send(ch, TAG(0, 9)), COR_ECLOSED);
  /* What was accepted before the close is received, then COR_ECLOSED. */
  for (long s = 1; s <= 4; s++) {
    void *it;
    assert_int_equal(cor_channel_recv(ch, &it, 1), 0);
    assert_ptr_equal(it, TAG(0, s));
  }
  void *it = NULL;
  assert_int_equal(cor_channel_recv(ch, &it, 1), COR_ECLOSED);
  assert_int_equal(cor_channel_try_recv(ch, &it), COR_ECLOSED);
  cor_release(ch);
  loops_stop();
}

/* Close while producers are busy sending: every send that returned 0 is
 * received. */
typedef struct {
  cor_channel_t *ch;
  int id;
  long accepted;
} racer_t;
static void *racer(void *p) {
  racer_t *r = p;
  for (long s = 1;; s++) {
    int rc = cor_channel_send(r->ch, TAG(r->id, s), COR_FOREVER);
    if (rc == COR_ECLOSED)
      return NULL;
    assert_int_equal(rc, 0);
    r->accepted++;
  }
}
static void test_close_while_sending(void **state) {
  for (int round = 0; round < test_scale(20, 5); round++) {
    cor_channel_t *ch = cor_channel_new(&(cor_channel_opts){.capacity = 16});
    racer_t r[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
      r[i] = (racer_t){ch, i, 0};
      assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
    }
    long got[3] = {0}, total = 0;
    for (int k = 0; k < 2000; k++) {
      void *it;
      assert_int_equal(cor_channel_recv(ch, &it, 10), 0);
      int p = TAG_P(it);
      assert_int_equal(TAG_S(it), ++got[p]);
      total++;
    }
    assert_int_equal(cor_channel_close(ch), 0);
    for (;;) {
      void *it;
      int rc = cor_channel_recv(ch, &it, 10);
      if (rc == COR_ECLOSED)
        break;
      assert_int_equal(rc, 0);
      int p = TAG_P(it);
      assert_int_equal(TAG_S(it), ++got[p]);
      total++;
    }
    long accepted = 0;
    for (int i = 0; i < 3; i++) {
      pthread_join(th[i], NULL);
      assert_int_equal(got[i], r[i].accepted);
      accepted += r[i].accepted;
    }
    assert_int_equal(total, accepted);
    cor_release(ch);
  }
}

/* ------------------------------------------------------------ cancel */

typedef struct {
  cor_channel_t *ch;
  atomic_long *got;
} recv_arg;
/* Receiver tasks still running: a cancelled cfuture completes at once,
 * its task ends a little later, on its loop. */
static atomic_int g_alive;
static int recv_forever(void *p, void **res) {
  recv_arg *a = p;
  atomic_fetch_add(&g_alive, 1);
  for (;;) {
    void *it;
    int rc = cor_channel_recv(a->ch, &it, COR_FOREVER);
    if (rc != 0) {
      atomic_fetch_sub(&g_alive, 1);
      return rc;
    }
    atomic_fetch_add(a->got, 1);
  }
}
/* Waits until n receivers run. Cancel only started ones: a task whose
 * cancellation is still on its way may start after its cfuture was
 * cancelled, and must not find the channel gone. */
static void wait_receivers(int n) {
  for (int i = 0; i < 10000 && atomic_load(&g_alive) != n; i++)
    usleep(1000);
  assert_int_equal(atomic_load(&g_alive), n);
}
static void wait_receivers_gone(void) { wait_receivers(0); }

static void test_cancel_waiting_receiver(void **state) {
  loops_start();
  cor_channel_t *ch = cor_channel_new(NULL);
  atomic_long got = 0;
  recv_arg a = {ch, &got};
  cor_cfuture_t *cf = cor_run_coroutine_threadsafe(cor_coro(recv_forever, &a),
                                                   g_lt[0].loop);
  wait_receivers(1);
  assert_int_equal(cor_cfuture_result(cf, 0.05, NULL), -ETIMEDOUT);
  assert_int_equal(cor_cfuture_cancel(cf), 0);
  assert_int_equal(cor_cfuture_result(cf, 5, NULL), -ECANCELED);
  cor_release(cf);
  wait_receivers_gone();
  /* The cancelled receiver took nothing: the item is still there. */
  assert_int_equal(cor_channel_send(ch, TAG(1, 1), 0), 0);
  void *it;
  assert_int_equal(cor_channel_recv(ch, &it, 1), 0);
  assert_ptr_equal(it, TAG(1, 1));

  /* Stress: receivers cancelled while items flow; none lost. */
  long n = test_scale(20000, 2000);
  atomic_long got2 = 0;
  recv_arg a2 = {ch, &got2};
  long sent = 0;
  for (int round = 0; round < 20; round++) {
    cor_cfuture_t *r[4];
    for (int i = 0; i < 4; i++)
      r[i] = cor_run_coroutine_threadsafe(cor_coro(recv_forever, &a2),
                                          g_lt[i % NLOOPS].loop);
    wait_receivers(4);
    for (long k = 0; k < n / 20; k++, sent++)
      assert_int_equal(cor_channel_send(ch, TAG(2, sent + 1), 10), 0);
    for (int i = 0; i < 4; i++) {
      cor_cfuture_cancel(r[i]);
      assert_int_equal(cor_cfuture_result(r[i], 10, NULL), -ECANCELED);
      cor_release(r[i]);
    }
    wait_receivers_gone();
  }
  long drained = 0;
  while (cor_channel_try_recv(ch, &it) == 0)
    drained++;
  assert_int_equal(atomic_load(&got2) + drained, sent);
  cor_release(ch);
  loops_stop();
}

/* ------------------------------------------------------------ time-outs */

static int timeouts_body(void *p, void **res) {
  cor_channel_t *ch = p;
  void *it;
  double t0 = now_s();
  assert_int_equal(cor_channel_recv(ch, &it, 0), -ETIMEDOUT);
  assert_int_equal(cor_channel_recv(ch, &it, 0.03), -ETIMEDOUT);
  assert_true(now_s() - t0 >= 0.029);
  assert_int_equal(cor_channel_recv(ch, &it, NAN), -EINVAL);
  return 0;
}

static void test_timeouts(void **state) {
  recs_clear();
  cor_channel_t *ch = cor_channel_new(&(cor_channel_opts){.capacity = 2});
  void *it;
  double t0 = now_s();
  assert_int_equal(cor_channel_recv(ch, &it, 0), -ETIMEDOUT);
  assert_true(now_s() - t0 < 0.01);
  t0 = now_s();
  assert_int_equal(cor_channel_recv(ch, &it, 0.03), -ETIMEDOUT);
  double el = now_s() - t0;
  assert_true(el >= 0.029 && el < 2);
  assert_int_equal(cor_channel_recv(ch, &it, NAN), -EINVAL);
  assert_int_equal(cor_channel_send(ch, TAG(0, 1), NAN), -EINVAL);
  assert_int_equal(cor_channel_send(ch, TAG(0, 1), 0), 0);
  assert_int_equal(cor_channel_send(ch, TAG(0, 2), 0), 0);
  assert_int_equal(cor_channel_send(ch, TAG(0, 3), 0), -ETIMEDOUT);
  t0 = now_s();
  assert_int_equal(cor_channel_send(ch, TAG(0, 3), 0.03), -ETIMEDOUT);
  assert_true(now_s() - t0 >= 0.029);
  assert_int_equal(cor_channel_recv(ch, &it, 0), 0);
  assert_ptr_equal(it, TAG(0, 1));
  assert_int_equal(cor_channel_recv(ch, &it, 0), 0);
  assert_ptr_equal(it, TAG(0, 2));
  /* From a task. */
  loops_start();
  cor_cfuture_t *cf = cor_run_coroutine_threadsafe(cor_coro(timeouts_body, ch),
                                                   g_lt[0].loop);
  assert_int_equal(cor_cfuture_result(cf, 10, NULL), 0);
  cor_release(cf);
  loops_stop();
  cor_release(ch);
  EXPECT_RECORDS(3, COR_LOG_ERROR, "(): invalid argument: timeout is NaN");
}

/* ------------------------------------------------------------ callbacks */

typedef struct {
  cor_channel_t *ch;
  int rc_send, rc_send2, rc_block, rc_recv, rc_recv2;
  void *item;
  atomic_int done;
} cb_arg;

static void cb_try(void *p) {
  cb_arg *a = p;
  a->rc_send = cor_channel_try_send(a->ch, TAG(3, 1));
  a->rc_send2 = cor_channel_try_send(a->ch, TAG(3, 2)); /* full */
  a->rc_block = cor_channel_send(a->ch, TAG(3, 2), COR_FOREVER);
  a->rc_recv = cor_channel_try_recv(a->ch, &a->item);
  a->rc_recv2 = cor_channel_try_recv(a->ch, &a->item); /* empty */
  atomic_store(&a->done, 1);
}

static void test_try_from_callback(void **state) {
  loops_start();
  cb_arg a = {.ch = cor_channel_new(&(cor_channel_opts){.capacity = 1})};
  assert_int_equal(cor_call_soon_threadsafe(g_lt[1].loop, cb_try, &a), 0);
  for (int i = 0; i < 5000 && !atomic_load(&a.done); i++)
    usleep(1000);
  assert_int_equal(atomic_load(&a.done), 1);
  assert_int_equal(a.rc_send, 0);
  assert_int_equal(a.rc_send2, -EAGAIN);
  assert_int_equal(a.rc_block, COR_ENOTASK); /* would block the loop */
  assert_int_equal(a.rc_recv, 0);
  assert_ptr_equal(a.item, TAG(3, 1));
  assert_int_equal(a.rc_recv2, -EAGAIN);
  cor_release(a.ch);
  loops_stop();
}

/* Freed with items inside: they are dropped (no crash, no leak of ours). */
static void test_free_with_items(void **state) {
  cor_channel_t *ch = cor_channel_new(NULL);
  assert_int_equal(cor_channel_try_send(ch, TAG(0, 1)), 0);
  cor_retain(ch);
  cor_release(ch);
  cor_release(ch);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_validate_mixed),
      cmocka_unit_test(test_validate_capacity1),
      cmocka_unit_test(test_validate_default_capacity),
      cmocka_unit_test(test_validate_odd_capacity),
      cmocka_unit_test(test_close_with_blocked_senders),
      cmocka_unit_test(test_close_while_sending),
      cmocka_unit_test(test_cancel_waiting_receiver),
      cmocka_unit_test(test_timeouts),
      cmocka_unit_test(test_try_from_callback),
      cmocka_unit_test(test_free_with_items),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
