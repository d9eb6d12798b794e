/* SPDX-License-Identifier: MIT */
/* The cross-thread door: a validator for the lock-free queue (loss,
 * duplicates, per-producer order) with up to 8 producers on 2 cores, through
 * the raw queue and through cor_call_soon_threadsafe into a running loop. */
#include <pthread.h>
#include <unistd.h>

#include "base/atomics.h"
#include "loop/mpsc.h"
#include "testutil.h"

#include <corio.h>

#include "logcap.h"


#define MAXP 8

typedef struct {
  cor__mpsc q;
  long m;
  int p;
  uint64_t produced[MAXP];
} raw_t;

typedef struct {
  raw_t *r;
  int id;
  pthread_barrier_t *bar;
} prod_t;

static void *raw_producer(void *arg) {
  prod_t *pr = arg;
  pthread_barrier_wait(pr->bar);
  for (long s = 1; s <= pr->r->m; s++) {
    cor__mpsc_node *n;
    while ((n = cor__mpsc_node_get()) == NULL)
      usleep(10);
    n->arg = (void *)(uintptr_t)(((uint64_t)pr->id << 40) | (uint64_t)s);
    n->cb = NULL;
    cor__mpsc_push(&pr->r->q, n);
  }
  return NULL;
}

static void raw_validate(int p, long m) {
  raw_t r = {.m = m, .p = p};
  cor__mpsc_init(&r.q);
  pthread_t t[MAXP];
  prod_t pr[MAXP];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)p + 1);
  for (int i = 0; i < p; i++) {
    pr[i] = (prod_t){.r = &r, .id = i, .bar = &bar};
    assert_int_equal(pthread_create(&t[i], NULL, raw_producer, &pr[i]), 0);
  }
  pthread_barrier_wait(&bar);
  uint64_t last[MAXP] = {0};
  long got = 0;
  cor__node_batch b = {0};
  while (got < (long)p * m) {
    cor__mpsc_node *n = cor__mpsc_pop(&r.q);
    if (n == NULL) {
      cor__node_batch_flush(&b);
      continue;
    }
    uint64_t v = (uint64_t)(uintptr_t)n->arg;
    int id = (int)(v >> 40);
    uint64_t seq = v & ((1ull << 40) - 1);
    assert_true(id >= 0 && id < p);
    /* exactly the next one of this producer: no loss, no duplicate, order */
    assert_int_equal(seq, last[id] + 1);
    last[id] = seq;
    got++;
    cor__node_batch_add(&b, n);
    if (b.n >= 64)
      cor__node_batch_flush(&b);
  }
  cor__node_batch_flush(&b);
  for (int i = 0; i < p; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(last[i], (uint64_t)m);
  }
  assert_null(cor__mpsc_pop(&r.q));
  assert_true(cor__mpsc_empty(&r.q));
  pthread_barrier_destroy(&bar);
}

static void test_raw_queue(void **state) {
  long m = test_scale(400000, 20000);
  raw_validate(1, m);
  raw_validate(2, m);
  raw_validate(4, m / 2);
  raw_validate(8, m / 4);
}

/* ---------------------------------------------- through the loop's door */

typedef struct {
  cor_loop_t *loop;
  long m;
  int p;
  uint64_t last[MAXP];
  long got;
  bool bad;
  pthread_barrier_t bar;
} door_t;

static door_t *g_door;

static void on_msg(void *arg) {
  door_t *d = g_door;
  uint64_t v = (uint64_t)(uintptr_t)arg;
  int id = (int)(v >> 40);
  uint64_t seq = v & ((1ull << 40) - 1);
  if (id >= d->p || seq != d->last[id] + 1)
    d->bad = true;
  else
    d->last[id] = seq;
  if (++d->got == (long)d->p * d->m)
    cor_loop_stop(d->loop);
}

typedef struct {
  door_t *d;
  int id;
} dprod_t;

static void *door_producer(void *arg) {
  dprod_t *pr = arg;
  pthread_barrier_wait(&pr->d->bar);
  for (long s = 1; s <= pr->d->m; s++) {
    int rc = cor_call_soon_threadsafe(
        pr->d->loop, on_msg, (void *)(uintptr_t)(((uint64_t)pr->id << 40) | (uint64_t)s));
    if (rc != 0)
      return (void *)1;
    /* Now and then let the loop go to sleep, so the wake-up path (sleep
     * announcement vs. push) is exercised, not only the spin. */
    if ((s & 4095) == 0 && pr->id == 0)
      usleep(200);
  }
  return NULL;
}

static void door_validate(int p, long m, double spin) {
  cor_loop_opts o = {.spin_seconds = spin};
  door_t d = {.loop = cor_loop_new(&o), .m = m, .p = p};
  assert_non_null(d.loop);
  g_door = &d;
  pthread_barrier_init(&d.bar, NULL, (unsigned)p);
  pthread_t t[MAXP];
  dprod_t pr[MAXP];
  for (int i = 0; i < p; i++) {
    pr[i] = (dprod_t){.d = &d, .id = i};
    assert_int_equal(pthread_create(&t[i], NULL, door_producer, &pr[i]), 0);
  }
  assert_int_equal(cor_loop_run_forever(d.loop), 0);
  for (int i = 0; i < p; i++) {
    void *rc;
    pthread_join(t[i], &rc);
    assert_null(rc);
    assert_int_equal(d.last[i], (uint64_t)m);
  }
  assert_false(d.bad);
  assert_int_equal(d.got, (long)p * m);
  cor_loop_stats st;
  assert_int_equal(cor_loop_get_stats(d.loop, &st), 0);
  assert_int_equal(st.threadsafe_run, (uint64_t)p * (uint64_t)m);
  /* Coalescing: never more eventfd writes than posts. */
  assert_true(st.wakeups_written <= st.threadsafe_run);
  pthread_barrier_destroy(&d.bar);
  assert_int_equal(cor_loop_close(d.loop), 0);
  cor_release(d.loop);
}

static void test_door_spin(void **state) {
  long m = test_scale(200000, 10000);
  door_validate(1, m, 0);
  door_validate(4, m / 2, 0);
  door_validate(8, m / 4, 0);
}

/* With the spin off, every idle moment is a real sleep in epoll: the
 * announce-fence-recheck protocol must still lose nothing. */
static void test_door_no_spin(void **state) {
  long m = test_scale(100000, 5000);
  door_validate(1, m, -1);
  door_validate(4, m / 2, -1);
  door_validate(8, m / 4, -1);
}

/* One message at a time to a sleeping loop: each needs a real wake-up. */
static int pings;
static void ping_cb(void *arg) {
  if (++pings == 200)
    cor_loop_stop(arg);
}
static void *slow_poster(void *arg) {
  for (int i = 0; i < 200; i++) {
    usleep(300);
    if (cor_call_soon_threadsafe(arg, ping_cb, arg) != 0)
      return (void *)1;
  }
  return NULL;
}
static void test_wakeups_from_sleep(void **state) {
  cor_loop_opts o = {.spin_seconds = -1};
  cor_loop_t *loop = cor_loop_new(&o);
  pings = 0;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, slow_poster, loop), 0);
  assert_int_equal(cor_loop_run_forever(loop), 0);
  pthread_join(t, NULL);
  cor_loop_stats st;
  cor_loop_get_stats(loop, &st);
  assert_int_equal(pings, 200);
  assert_true(st.wakeups_written >= 1 && st.wakeups_written <= 200);
  cor_loop_close(loop);
  cor_release(loop);
}

/* A loop posting to itself from its own thread. */
static int self_n;
static void self_cb(void *arg) {
  if (++self_n < 1000)
    assert_int_equal(cor_call_soon_threadsafe(arg, self_cb, arg), 0);
  else
    cor_loop_stop(arg);
}
static void test_self_post(void **state) {
  cor_loop_t *loop = cor_loop_new(NULL);
  self_n = 0;
  assert_int_equal(cor_call_soon_threadsafe(loop, self_cb, loop), 0);
  assert_int_equal(cor_loop_run_forever(loop), 0);
  assert_int_equal(self_n, 1000);
  cor_loop_close(loop);
  cor_release(loop);
}

/* Posting to a loop closed meanwhile: COR_ECLOSED, nothing run, nothing
 * leaked (ASan checks the leak half). */
static int closed_ran;
static void closed_cb(void *arg) { closed_ran++; }
static void *post_until_closed(void *arg) {
  long ok = 0;
  for (;;) {
    int rc = cor_call_soon_threadsafe(arg, closed_cb, NULL);
    if (rc == COR_ECLOSED)
      break;
    if (rc != 0)
      return (void *)-1;
    ok++;
  }
  return (void *)ok;
}
static void test_post_to_closed(void **state) {
  recs_clear();
  cor_loop_t *loop = cor_loop_new(NULL);
  cor_retain(loop); /* the producer's reference */
  closed_ran = 0;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, post_until_closed, loop), 0);
  usleep(20000);
  assert_int_equal(cor_loop_close(loop), 0);
  void *rc;
  pthread_join(t, &rc);
  assert_true((intptr_t)rc >= 0);
  assert_int_equal(closed_ran, 0);
  assert_int_equal(cor_call_soon_threadsafe(loop, closed_cb, NULL), COR_ECLOSED);
  cor_release(loop);
  cor_release(loop);
  assert_int_equal(cor_call_soon_threadsafe(NULL, closed_cb, NULL), -EINVAL);
  EXPECT_RECORDS(1, COR_LOG_ERROR, "(): invalid argument");
}

/* A flood from other threads cannot starve timers: the batch bound lets
 * each iteration reach its timers. */
static volatile int flood_stop;
static void nop_cb(void *arg) {}
static void *flooder(void *arg) {
  while (!ck_pr_load_int((int *)&flood_stop))
    cor_call_soon_threadsafe(arg, nop_cb, NULL);
  return NULL;
}
static void timer_fired(void *arg) { cor_loop_stop(arg); }
static void test_flood_does_not_starve_timers(void **state) {
  cor_loop_t *loop = cor_loop_new(NULL);
  flood_stop = 0;
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&t[i], NULL, flooder, loop), 0);
  usleep(10000);
  assert_int_equal(cor_call_later(loop, 0.02, timer_fired, loop, NULL), 0);
  assert_int_equal(cor_loop_run_forever(loop), 0); /* returns: timer ran */
  ck_pr_store_int((int *)&flood_stop, 1);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  cor_loop_close(loop);
  cor_release(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_raw_queue),
      cmocka_unit_test(test_door_spin),
      cmocka_unit_test(test_door_no_spin),
      cmocka_unit_test(test_wakeups_from_sleep),
      cmocka_unit_test(test_self_post),
      cmocka_unit_test(test_post_to_closed),
      cmocka_unit_test(test_flood_does_not_starve_timers),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
