/* SPDX-License-Identifier: MIT */
/* Loop workloads (local_callbacks, threadsafe_post, pingpong, timers) and the
 * floors they are read against (limit_queue, limit_eventfd_pingpong). The
 * definitions are shared/perf-workloads.md; perf/README.md says what each
 * extra field means.
 *
 * Callbacks take one void *, so each workload keeps its state in one static
 * struct; every workload checks its count, and where cheap its order, before
 * it reports. */
#include "base/atomics.h"
#include "loop/loop.h"
#include "loop/mpsc.h"
#include "bench.h"
/* limit_queue drives the internal queue; pingpong reads the loop's resolved
 * spin (spin_ns) so SPIN_US= is what the loop used, not what was asked. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void stop_loop_cb(void *loop) { cor_loop_stop(loop); }

static void stats_delta(cor_loop_stats *d, const cor_loop_stats *a,
                        const cor_loop_stats *b) {
  d->iterations = b->iterations - a->iterations;
  d->callbacks = b->callbacks - a->callbacks;
  d->threadsafe_run = b->threadsafe_run - a->threadsafe_run;
  d->wakeups_written = b->wakeups_written - a->wakeups_written;
  d->wakeups_saved = b->wakeups_saved - a->wakeups_saved;
  d->polls = b->polls - a->polls;
  d->spin_wakes = b->spin_wakes - a->spin_wakes;
}

/* ================================================= local_callbacks */

/* 64 chains; each callback re-schedules its chain until N were scheduled,
 * so exactly N run. The ready queue is FIFO, so chains run round-robin:
 * the k-th callback (from 0) must belong to chain k % chains. */
static struct {
  bench_ctx *ctx;
  cor_loop_t *loop;
  uint64_t n, chains, ran, scheduled, order_errors;
} lc;

static void lc_cb(void *arg) {
  uintptr_t chain = (uintptr_t)arg;
  if (chain != lc.ran % lc.chains)
    lc.order_errors++;
  lc.ran++;
  if (lc.scheduled < lc.n) {
    lc.scheduled++;
    BENCH_CHECK_RC(lc.ctx, cor_call_soon(lc.loop, lc_cb, arg, NULL),
                   "cor_call_soon");
  }
  if (lc.ran == lc.n)
    BENCH_CHECK_RC(lc.ctx, cor_loop_stop(lc.loop), "cor_loop_stop");
}

static int wl_local_callbacks(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 5000000);
  if (n < 1)
    bench_fail(ctx, "N must be >= 1");
  memset(&lc, 0, sizeof lc);
  lc.ctx = ctx;
  lc.n = (uint64_t)n;
  lc.chains = lc.n < 64 ? lc.n : 64;
  lc.loop = cor_loop_new(NULL);
  if (lc.loop == NULL)
    bench_fail(ctx, "cor_loop_new: %s", strerror(errno));
  for (uint64_t c = 0; c < lc.chains; c++) {
    BENCH_CHECK_RC(ctx, cor_call_soon(lc.loop, lc_cb, (void *)(uintptr_t)c,
                                      NULL),
                   "cor_call_soon");
    lc.scheduled++;
  }
  cor_loop_stats s;
  uint64_t t0 = bench_now_ns();
  BENCH_CHECK_RC(ctx, cor_loop_run_forever(lc.loop), "cor_loop_run_forever");
  uint64_t t1 = bench_now_ns();
  BENCH_CHECK_RC(ctx, cor_loop_get_stats(lc.loop, &s), "cor_loop_get_stats");
  BENCH_CHECK_RC(ctx, cor_loop_close(lc.loop), "cor_loop_close");
  cor_release(lc.loop);

  if (lc.ran != lc.n)
    bench_fail(ctx, "ran %llu callbacks of %llu", (unsigned long long)lc.ran,
               (unsigned long long)lc.n);
  if (lc.order_errors)
    bench_fail(ctx, "%llu callbacks ran out of FIFO order",
               (unsigned long long)lc.order_errors);
  bench_report(ctx, lc.n, (double)(t1 - t0) * 1e-9, " ITERATIONS=%llu",
               (unsigned long long)s.iterations);
  return 0;
}
BENCH_WORKLOAD(local_callbacks, wl_local_callbacks, "N=5000000")

/* ================================================= threadsafe_post */

/* arg = (producer << 40) | seq, seq from 1: the loop checks that each
 * producer's callbacks arrive complete and in order. */
#define TP_SEQ_BITS 40
#define TP_SEQ_MASK ((UINT64_C(1) << TP_SEQ_BITS) - 1)

static struct {
  bench_ctx *ctx;
  cor_loop_t *loop;
  uint64_t p, m, total;
  pthread_barrier_t barrier;
  /* Loop-owned; atomic only so that main can read it for the lost-work
   * message after a timeout (relaxed load/store: plain moves on x86). */
  _Atomic uint64_t count;
  uint64_t *last; /* last seq seen per producer, loop-owned */
  uint64_t order_errors, bad_producer;
  uint64_t first_bad_p, first_bad_want, first_bad_got;
  uint64_t t_end;
  /* When each producer left the start barrier: t0 is the earliest. Main
   * does not take t0 itself: with more threads than cores it may run long
   * after the producers started. */
  uint64_t *t_start;
} tp;

static void tp_cb(void *arg) {
  uint64_t a = (uintptr_t)arg;
  uint64_t p = a >> TP_SEQ_BITS, s = a & TP_SEQ_MASK;
  if (p >= tp.p) {
    tp.bad_producer++;
  } else {
    if (s != tp.last[p] + 1 && tp.order_errors++ == 0) {
      tp.first_bad_p = p;
      tp.first_bad_want = tp.last[p] + 1;
      tp.first_bad_got = s;
    }
    tp.last[p] = s;
  }
  uint64_t c = atomic_load_explicit(&tp.count, memory_order_relaxed) + 1;
  atomic_store_explicit(&tp.count, c, memory_order_relaxed);
  if (c == tp.total) {
    tp.t_end = bench_now_ns();
    BENCH_CHECK_RC(tp.ctx, cor_loop_stop(tp.loop), "cor_loop_stop");
  }
}

static void *tp_producer(void *arg) {
  uint64_t p = (uintptr_t)arg;
  cor_loop_t *loop = tp.loop;
  uint64_t m = tp.m;
  pthread_barrier_wait(&tp.barrier);
  tp.t_start[p] = bench_now_ns();
  for (uint64_t s = 1; s <= m; s++) {
    int rc = cor_call_soon_threadsafe(
        loop, tp_cb, (void *)(uintptr_t)((p << TP_SEQ_BITS) | s));
    if (rc != 0)
      bench_fail(tp.ctx, "producer %llu post %llu: %s",
                 (unsigned long long)p, (unsigned long long)s,
                 cor_strerror(rc));
  }
  return NULL;
}

static int wl_threadsafe_post(bench_ctx *ctx) {
  long P = bench_param_long(ctx, "P", 1);
  long M = bench_param_long(ctx, "M", 1000000);
  if (P < 1 || P > 4096 || M < 1 || (uint64_t)M > TP_SEQ_MASK)
    bench_fail(ctx, "need 1 <= P <= 4096 and 1 <= M < 2^40");
  memset(&tp, 0, sizeof tp);
  tp.ctx = ctx;
  tp.p = (uint64_t)P;
  tp.m = (uint64_t)M;
  tp.total = tp.p * tp.m;
  tp.last = calloc(tp.p, sizeof *tp.last);
  tp.t_start = calloc(tp.p, sizeof *tp.t_start);
  pthread_t *prod = calloc(tp.p, sizeof *prod);
  if (tp.last == NULL || tp.t_start == NULL || prod == NULL)
    bench_fail(ctx, "out of memory");

  bench_loop_thread lt;
  bench_loop_thread_start(ctx, &lt, NULL);
  tp.loop = lt.loop;
  cor_loop_stats s0, d;
  BENCH_CHECK_RC(ctx, cor_loop_get_stats(lt.loop, &s0), "cor_loop_get_stats");
  pthread_barrier_init(&tp.barrier, NULL, (unsigned)P);
  for (uint64_t p = 0; p < tp.p; p++)
    bench_thread_start(ctx, &prod[p], tp_producer, (void *)(uintptr_t)p);
  for (uint64_t p = 0; p < tp.p; p++)
    if (!bench_thread_join_timeout(prod[p], bench_timeout(ctx)))
      bench_fail(ctx, "producer %llu did not finish posting",
                 (unsigned long long)p);
  if (!bench_loop_thread_join(ctx, &lt, bench_timeout(ctx)))
    bench_fail(ctx, "lost work: %llu callbacks ran of %llu posted",
               (unsigned long long)atomic_load(&tp.count),
               (unsigned long long)tp.total);
  pthread_barrier_destroy(&tp.barrier);

  if (tp.bad_producer)
    bench_fail(ctx, "%llu callbacks carried a corrupt argument",
               (unsigned long long)tp.bad_producer);
  if (tp.order_errors)
    bench_fail(ctx,
               "%llu callbacks out of order or duplicated; first: producer "
               "%llu wanted seq %llu, got %llu",
               (unsigned long long)tp.order_errors,
               (unsigned long long)tp.first_bad_p,
               (unsigned long long)tp.first_bad_want,
               (unsigned long long)tp.first_bad_got);
  for (uint64_t p = 0; p < tp.p; p++)
    if (tp.last[p] != tp.m)
      bench_fail(ctx, "producer %llu: last seq %llu of %llu",
                 (unsigned long long)p, (unsigned long long)tp.last[p],
                 (unsigned long long)tp.m);
  if (atomic_load(&tp.count) != tp.total)
    bench_fail(ctx, "count %llu != %llu", (unsigned long long)tp.count,
               (unsigned long long)tp.total);
  stats_delta(&d, &s0, &lt.stats);
  /* The loop ran the start marker of bench_loop_thread_start, then ours. */
  if (lt.stats.threadsafe_run != tp.total + 1)
    bench_fail(ctx, "loop counted %llu cross-thread callbacks run, expected "
               "%llu", (unsigned long long)lt.stats.threadsafe_run,
               (unsigned long long)tp.total + 1);
  uint64_t t0 = tp.t_start[0];
  for (uint64_t p = 1; p < tp.p; p++)
    if (tp.t_start[p] < t0)
      t0 = tp.t_start[p];
  free(tp.last);
  free(tp.t_start);
  free(prod);
  bench_report(ctx, tp.total, (double)(tp.t_end - t0) * 1e-9,
               " WAKEUPS=%llu SAVED=%llu POLLS=%llu SPIN_WAKES=%llu "
               "ITERATIONS=%llu",
               (unsigned long long)d.wakeups_written,
               (unsigned long long)d.wakeups_saved,
               (unsigned long long)d.polls, (unsigned long long)d.spin_wakes,
               (unsigned long long)d.iterations);
  return 0;
}
BENCH_WORKLOAD(threadsafe_post, wl_threadsafe_post, "P=1,M=1000000")

/* ================================================= pingpong */

/* The token is the round number: A sends round r to B, B sends it back, A
 * checks it got r back. A runs R+1 times (the kick-off, then R returns). */
static struct {
  bench_ctx *ctx;
  cor_loop_t *a, *b;
  uint64_t r;
  _Atomic uint64_t rounds; /* A-owned; atomic for the lost-work message */
  uint64_t errors;
  /* Taken by A when it runs the kick-off, so the figure is R round trips
   * between the loops, not main's post. */
  uint64_t t0, cpu0, t_end, cpu_end;
} pp;

static void pp_b(void *arg);

static void pp_a(void *arg) {
  uint64_t got = (uintptr_t)arg;
  uint64_t r = atomic_load_explicit(&pp.rounds, memory_order_relaxed);
  if (got != r)
    pp.errors++;
  if (r == 0) {
    pp.t0 = bench_now_ns();
    pp.cpu0 = bench_cpu_ns();
  }
  if (r == pp.r) {
    pp.t_end = bench_now_ns();
    pp.cpu_end = bench_cpu_ns();
    BENCH_CHECK_RC(pp.ctx, cor_loop_stop(pp.a), "cor_loop_stop");
    BENCH_CHECK_RC(pp.ctx, cor_call_soon_threadsafe(pp.b, stop_loop_cb, pp.b),
                   "cor_call_soon_threadsafe(stop)");
    return;
  }
  atomic_store_explicit(&pp.rounds, r + 1, memory_order_relaxed);
  BENCH_CHECK_RC(pp.ctx,
                 cor_call_soon_threadsafe(pp.b, pp_b, (void *)(uintptr_t)(r + 1)),
                 "cor_call_soon_threadsafe(A->B)");
}

static void pp_b(void *arg) {
  BENCH_CHECK_RC(pp.ctx, cor_call_soon_threadsafe(pp.a, pp_a, arg),
                 "cor_call_soon_threadsafe(B->A)");
}

static int wl_pingpong(bench_ctx *ctx) {
  long R = bench_param_long(ctx, "R", 200000);
  if (R < 1)
    bench_fail(ctx, "R must be >= 1");
  cor_loop_opts opts;
  memset(&opts, 0, sizeof opts);
  if (bench_param_given(ctx, "spin_us")) {
    double us = bench_param_double(ctx, "spin_us", 0);
    /* spin_us=0 means no spin; the loop's 0 means "default". */
    opts.spin_seconds = us > 0 ? us * 1e-6 : -1.0;
  }
  memset(&pp, 0, sizeof pp);
  pp.ctx = ctx;
  pp.r = (uint64_t)R;
  bench_loop_thread la, lb;
  bench_loop_thread_start(ctx, &la, &opts);
  bench_loop_thread_start(ctx, &lb, &opts);
  pp.a = la.loop;
  pp.b = lb.loop;
  double spin_us = (double)la.loop->spin_ns / 1000.0;
  cor_loop_stats sa0, sb0, da, db;
  BENCH_CHECK_RC(ctx, cor_loop_get_stats(la.loop, &sa0), "cor_loop_get_stats");
  BENCH_CHECK_RC(ctx, cor_loop_get_stats(lb.loop, &sb0), "cor_loop_get_stats");

  BENCH_CHECK_RC(ctx, cor_call_soon_threadsafe(pp.a, pp_a, (void *)0),
                 "cor_call_soon_threadsafe(kick-off)");
  if (!bench_loop_thread_join(ctx, &la, bench_timeout(ctx)))
    bench_fail(ctx, "lost the token after %llu of %llu round trips",
               (unsigned long long)atomic_load(&pp.rounds),
               (unsigned long long)pp.r);
  if (!bench_loop_thread_join(ctx, &lb, bench_timeout(ctx)))
    bench_fail(ctx, "loop B did not stop");
  if (pp.errors)
    bench_fail(ctx, "%llu hops carried the wrong round number",
               (unsigned long long)pp.errors);
  if (atomic_load(&pp.rounds) != pp.r)
    bench_fail(ctx, "%llu round trips of %llu",
               (unsigned long long)atomic_load(&pp.rounds),
               (unsigned long long)pp.r);
  stats_delta(&da, &sa0, &la.stats);
  stats_delta(&db, &sb0, &lb.stats);
  bench_report(ctx, pp.r, (double)(pp.t_end - pp.t0) * 1e-9,
               " SPIN_US=%g CPU_NS_PER_OP=%.0f WAKEUPS=%llu SPIN_WAKES=%llu "
               "POLLS=%llu",
               spin_us, (double)(pp.cpu_end - pp.cpu0) / (double)pp.r,
               (unsigned long long)(da.wakeups_written + db.wakeups_written),
               (unsigned long long)(da.spin_wakes + db.spin_wakes),
               (unsigned long long)(da.polls + db.polls));
  return 0;
}
BENCH_WORKLOAD(pingpong, wl_pingpong, "R=200000,spin_us=loop")

/* ================================================= timers */

enum { TM_PENDING = 0, TM_CANCELLED, TM_FIRED };

static struct {
  bench_ctx *ctx;
  cor_loop_t *loop;
  uint64_t expect, fired, fired_cancelled, fired_twice;
  uint8_t *state;
  bool guard_hit;
} tm;

static void tm_cb(void *arg) {
  uintptr_t i = (uintptr_t)arg;
  if (tm.state[i] == TM_CANCELLED)
    tm.fired_cancelled++;
  else if (tm.state[i] == TM_FIRED)
    tm.fired_twice++;
  tm.state[i] = TM_FIRED;
  if (++tm.fired == tm.expect)
    BENCH_CHECK_RC(tm.ctx, cor_loop_stop(tm.loop), "cor_loop_stop");
}

/* Stops a run whose timers did not all fire, long after the last deadline,
 * so the failure says how many fired. */
static void tm_guard(void *arg) {
  (void)arg;
  tm.guard_hit = true;
  cor_loop_stop(tm.loop);
}

static uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static int wl_timers(bench_ctx *ctx) {
  long N = bench_param_long(ctx, "N", 1000000);
  if (N < 1)
    bench_fail(ctx, "N must be >= 1");
  uint64_t n = (uint64_t)N;
  memset(&tm, 0, sizeof tm);
  tm.ctx = ctx;
  cor_handle_t *h = malloc(n * sizeof *h);
  tm.state = malloc(n);
  if (h == NULL || tm.state == NULL)
    bench_fail(ctx, "out of memory");
  /* Touch the harness's own arrays first: LOOP_RSS_KB is the peak RSS
   * growth from here on, i.e. the loop's. */
  memset(h, 0, n * sizeof *h);
  memset(tm.state, TM_PENDING, n);
  tm.loop = cor_loop_new(NULL);
  if (tm.loop == NULL)
    bench_fail(ctx, "cor_loop_new: %s", strerror(errno));
  long rss0 = bench_maxrss_kb();

  uint64_t seed = UINT64_C(0x9E3779B97F4A7C15), cancelled = 0;
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) {
    double delay = (double)(xorshift64(&seed) % 100001) * 1e-6; /* [0,100] ms */
    BENCH_CHECK_RC(ctx,
                   cor_call_later(tm.loop, delay, tm_cb, (void *)(uintptr_t)i,
                                  &h[i]),
                   "cor_call_later");
  }
  uint64_t t1 = bench_now_ns();
  for (uint64_t i = 1; i < n; i += 2) {
    BENCH_CHECK_RC(ctx, cor_handle_cancel(tm.loop, h[i]), "cor_handle_cancel");
    tm.state[i] = TM_CANCELLED;
    cancelled++;
  }
  uint64_t t2 = bench_now_ns();
  tm.expect = n - cancelled;
  if (n > 1 && cor_handle_cancel(tm.loop, h[1]) != -ENOENT)
    bench_fail(ctx, "cancelling a cancelled timer did not return -ENOENT");
  cor_handle_t guard;
  BENCH_CHECK_RC(ctx,
                 cor_call_later(tm.loop, bench_timeout(ctx) * 0.8, tm_guard,
                                NULL, &guard),
                 "cor_call_later(guard)");
  BENCH_CHECK_RC(ctx, cor_loop_run_forever(tm.loop), "cor_loop_run_forever");
  uint64_t t3 = bench_now_ns();

  if (tm.guard_hit)
    bench_fail(ctx, "lost work: %llu timers fired of %llu",
               (unsigned long long)tm.fired, (unsigned long long)tm.expect);
  if (tm.fired_cancelled)
    bench_fail(ctx, "%llu cancelled timers fired",
               (unsigned long long)tm.fired_cancelled);
  if (tm.fired_twice)
    bench_fail(ctx, "%llu timers fired twice",
               (unsigned long long)tm.fired_twice);
  if (tm.fired != tm.expect)
    bench_fail(ctx, "%llu timers fired, expected %llu",
               (unsigned long long)tm.fired, (unsigned long long)tm.expect);
  for (uint64_t i = 0; i < n; i += 2)
    if (tm.state[i] != TM_FIRED)
      bench_fail(ctx, "timer %llu never fired", (unsigned long long)i);
  if (cor_handle_cancel(tm.loop, h[0]) != -ENOENT)
    bench_fail(ctx, "cancelling a fired timer did not return -ENOENT");
  BENCH_CHECK_RC(ctx, cor_handle_cancel(tm.loop, guard), "cancel(guard)");
  long rss = bench_maxrss_kb();
  BENCH_CHECK_RC(ctx, cor_loop_close(tm.loop), "cor_loop_close");
  cor_release(tm.loop);
  free(h);
  free(tm.state);
  bench_report(ctx, n, (double)(t3 - t0) * 1e-9,
               " RSS_KB=%ld LOOP_RSS_KB=%ld SCHED_NS=%.1f CANCEL_NS=%.1f "
               "RUN_MS=%.1f",
               rss, rss - rss0, (double)(t1 - t0) / (double)n,
               cancelled ? (double)(t2 - t1) / (double)cancelled : 0.0,
               (double)(t3 - t2) * 1e-6);
  return 0;
}
BENCH_WORKLOAD(timers, wl_timers, "N=1000000")

/* ================================================= limit_queue */

/* The floor of threadsafe_post: the same queue and node caches, no loop, no
 * wake-ups; the consumer spins on an empty queue. Nodes go back to the
 * producer in batches of LQ_RETURN_BATCH, as the loop returns one
 * iteration's worth (its default threadsafe_batch). */
#define LQ_RETURN_BATCH 1024

static struct {
  bench_ctx *ctx;
  cor__mpsc q;
  uint64_t m;
  pthread_barrier_t barrier;
  _Atomic uint64_t got; /* consumer-owned; atomic for the timeout message */
  uint64_t order_errors, empty_pops, t_end;
  uint64_t t_start[2]; /* each thread's exit from the barrier; t0 = min */
} lq;

static void *lq_producer(void *arg) {
  (void)arg;
  uint64_t m = lq.m;
  pthread_barrier_wait(&lq.barrier);
  lq.t_start[0] = bench_now_ns();
  for (uint64_t s = 1; s <= m; s++) {
    cor__mpsc_node *n = cor__mpsc_node_get();
    if (n == NULL)
      bench_fail(lq.ctx, "cor__mpsc_node_get: out of memory");
    n->cb = NULL;
    n->arg = (void *)(uintptr_t)s;
    cor__mpsc_push(&lq.q, n);
  }
  return NULL;
}

static void *lq_consumer(void *arg) {
  (void)arg;
  uint64_t m = lq.m, want = 1, empty = 0, errors = 0;
  cor__node_batch b;
  memset(&b, 0, sizeof b);
  pthread_barrier_wait(&lq.barrier);
  lq.t_start[1] = bench_now_ns();
  while (want <= m) {
    cor__mpsc_node *n = cor__mpsc_pop(&lq.q);
    if (n == NULL) {
      empty++;
      ck_pr_stall();
      continue;
    }
    if ((uintptr_t)n->arg != want)
      errors++;
    want++;
    cor__node_batch_add(&b, n);
    if (b.n >= LQ_RETURN_BATCH) {
      cor__node_batch_flush(&b);
      atomic_store_explicit(&lq.got, want - 1, memory_order_relaxed);
    }
  }
  cor__node_batch_flush(&b);
  lq.t_end = bench_now_ns();
  atomic_store_explicit(&lq.got, want - 1, memory_order_relaxed);
  lq.order_errors = errors;
  lq.empty_pops = empty;
  return NULL;
}

static int wl_limit_queue(bench_ctx *ctx) {
  long M = bench_param_long(ctx, "M", 10000000);
  if (M < 1)
    bench_fail(ctx, "M must be >= 1");
  memset(&lq, 0, sizeof lq);
  lq.ctx = ctx;
  lq.m = (uint64_t)M;
  cor__mpsc_init(&lq.q);
  pthread_barrier_init(&lq.barrier, NULL, 2);
  pthread_t prod, cons;
  bench_thread_start(ctx, &cons, lq_consumer, NULL);
  bench_thread_start(ctx, &prod, lq_producer, NULL);
  if (!bench_thread_join_timeout(cons, bench_timeout(ctx)))
    bench_fail(ctx, "lost work: consumer got about %llu of %llu",
               (unsigned long long)atomic_load(&lq.got),
               (unsigned long long)lq.m);
  if (!bench_thread_join_timeout(prod, bench_timeout(ctx)))
    bench_fail(ctx, "producer did not finish");
  pthread_barrier_destroy(&lq.barrier);
  if (lq.order_errors)
    bench_fail(ctx, "%llu nodes out of order", (unsigned long long)lq.order_errors);
  if (!cor__mpsc_empty(&lq.q))
    bench_fail(ctx, "queue not empty after %llu pops", (unsigned long long)lq.m);
  uint64_t t0 = lq.t_start[0] < lq.t_start[1] ? lq.t_start[0] : lq.t_start[1];
  bench_report(ctx, lq.m, (double)(lq.t_end - t0) * 1e-9, " EMPTY_POPS=%llu",
               (unsigned long long)lq.empty_pops);
  return 0;
}
BENCH_WORKLOAD(limit_queue, wl_limit_queue, "M=10000000")

/* ================================================= limit_eventfd_pingpong */

/* The floor of pingpong without spin: each hop is an eventfd write that
 * wakes a thread blocked in epoll_wait, which reads the eventfd. */
static struct {
  bench_ctx *ctx;
  uint64_t r;
  int efd[2], ep[2];
  pthread_barrier_t barrier;
  _Atomic uint64_t rounds;
  uint64_t t0, t_end, cpu0, cpu_end;
} le;

static void le_wait_read(int side) {
  struct epoll_event ev;
  int n;
  do
    n = epoll_wait(le.ep[side], &ev, 1, -1);
  while (n < 0 && errno == EINTR);
  if (n != 1)
    bench_fail(le.ctx, "epoll_wait: %s", n < 0 ? strerror(errno) : "no event");
  uint64_t v;
  if (read(le.efd[side], &v, sizeof v) != (ssize_t)sizeof v)
    bench_fail(le.ctx, "eventfd read: %s", strerror(errno));
  if (v != 1)
    bench_fail(le.ctx, "eventfd counted %llu tokens, expected 1",
               (unsigned long long)v);
}

static void le_write(int side) {
  uint64_t one = 1;
  if (write(le.efd[side], &one, sizeof one) != (ssize_t)sizeof one)
    bench_fail(le.ctx, "eventfd write: %s", strerror(errno));
}

static void *le_side0(void *arg) {
  (void)arg;
  pthread_barrier_wait(&le.barrier);
  le.cpu0 = bench_cpu_ns();
  le.t0 = bench_now_ns();
  for (uint64_t i = 0; i < le.r; i++) {
    le_write(1);
    le_wait_read(0);
    atomic_store_explicit(&le.rounds, i + 1, memory_order_relaxed);
  }
  le.t_end = bench_now_ns();
  le.cpu_end = bench_cpu_ns();
  return NULL;
}

static void *le_side1(void *arg) {
  (void)arg;
  pthread_barrier_wait(&le.barrier);
  for (uint64_t i = 0; i < le.r; i++) {
    le_wait_read(1);
    le_write(0);
  }
  return NULL;
}

static int wl_limit_eventfd_pingpong(bench_ctx *ctx) {
  long R = bench_param_long(ctx, "R", 100000);
  if (R < 1)
    bench_fail(ctx, "R must be >= 1");
  memset(&le, 0, sizeof le);
  le.ctx = ctx;
  le.r = (uint64_t)R;
  for (int i = 0; i < 2; i++) {
    le.efd[i] = eventfd(0, EFD_CLOEXEC);
    le.ep[i] = epoll_create1(EPOLL_CLOEXEC);
    if (le.efd[i] < 0 || le.ep[i] < 0)
      bench_fail(ctx, "eventfd/epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = le.efd[i]};
    if (epoll_ctl(le.ep[i], EPOLL_CTL_ADD, le.efd[i], &ev) != 0)
      bench_fail(ctx, "epoll_ctl: %s", strerror(errno));
  }
  pthread_barrier_init(&le.barrier, NULL, 2);
  pthread_t t0, t1;
  bench_thread_start(ctx, &t1, le_side1, NULL);
  bench_thread_start(ctx, &t0, le_side0, NULL);
  if (!bench_thread_join_timeout(t0, bench_timeout(ctx)))
    bench_fail(ctx, "lost the token after %llu of %llu round trips",
               (unsigned long long)atomic_load(&le.rounds),
               (unsigned long long)le.r);
  if (!bench_thread_join_timeout(t1, bench_timeout(ctx)))
    bench_fail(ctx, "side 1 did not finish");
  pthread_barrier_destroy(&le.barrier);
  for (int i = 0; i < 2; i++) {
    close(le.efd[i]);
    close(le.ep[i]);
  }
  bench_report(ctx, le.r, (double)(le.t_end - le.t0) * 1e-9,
               " CPU_NS_PER_OP=%.0f",
               (double)(le.cpu_end - le.cpu0) / (double)le.r);
  return 0;
}
BENCH_WORKLOAD(limit_eventfd_pingpong, wl_limit_eventfd_pingpong, "R=100000")
