/* SPDX-License-Identifier: MIT */
/* Runtime workloads: run_coroutine_threadsafe (plain threads blocking on
 * concurrent futures), cross_loop_await (a task awaiting tasks of another
 * loop), and threadsafe_post_rt (threadsafe_post into a runtime loop, whose
 * door counts its depth). Definitions: shared/perf-workloads.md. */
#include "bench.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_one(void *arg, void **result) {
  *result = (void *)((intptr_t)arg + 1);
  return 0;
}

static cor_runtime_t *new_runtime(bench_ctx *ctx, unsigned nloops) {
  cor_runtime_opts o;
  memset(&o, 0, sizeof o);
  o.nloops = nloops;
  cor_runtime_t *rt = cor_runtime_new(&o);
  if (rt == NULL)
    bench_fail(ctx, "cor_runtime_new: %s", strerror(errno));
  return rt;
}

static void end_runtime(bench_ctx *ctx, cor_runtime_t *rt) {
  BENCH_CHECK_RC(ctx, cor_runtime_shutdown(rt, bench_timeout(ctx)),
                 "cor_runtime_shutdown");
  cor_release(rt);
}

/* ================================================= run_coroutine_threadsafe */

/* W plain threads; thread w targets loop w % nloops, R calls each, each
 * blocking on its cfuture before the next. */
static struct {
  bench_ctx *ctx;
  cor_runtime_t *rt;
  long r;
  pthread_barrier_t barrier;
  _Atomic uint64_t done, wrong;
} rc;

typedef struct {
  int w;
  uint64_t t_start, t_end;
} rc_thread;

static void *rc_main(void *p) {
  rc_thread *me = p;
  cor_loop_t *loop =
      cor_runtime_loop(rc.rt, (unsigned)me->w % cor_runtime_nloops(rc.rt));
  pthread_barrier_wait(&rc.barrier);
  me->t_start = bench_now_ns();
  uint64_t wrong = 0;
  for (long i = 0; i < rc.r; i++) {
    intptr_t v = ((intptr_t)me->w << 32) + i;
    cor_cfuture_t *cf =
        cor_run_coroutine_threadsafe(cor_coro(add_one, (void *)v), loop);
    if (cf == NULL)
      bench_fail(rc.ctx, "cor_run_coroutine_threadsafe: %s", strerror(errno));
    void *res = NULL;
    int code = cor_cfuture_result(cf, bench_timeout(rc.ctx), &res);
    BENCH_CHECK_RC(rc.ctx, code, "cor_cfuture_result");
    if ((intptr_t)res != v + 1)
      wrong++;
    cor_release(cf);
  }
  me->t_end = bench_now_ns();
  atomic_fetch_add(&rc.wrong, wrong);
  atomic_fetch_add(&rc.done, (uint64_t)rc.r);
  return NULL;
}

static int wl_run_coroutine_threadsafe(bench_ctx *ctx) {
  long w = bench_param_long(ctx, "W", 4);
  long r = bench_param_long(ctx, "R", 50000);
  long loops = 0;
  if (bench_param_given(ctx, "loops"))
    loops = bench_param_long(ctx, "loops", 0);
  if (w < 1 || r < 1 || loops < 0)
    bench_fail(ctx, "W and R must be >= 1");
  memset(&rc, 0, sizeof rc);
  rc.ctx = ctx;
  rc.r = r;
  rc.rt = new_runtime(ctx, (unsigned)loops);
  pthread_barrier_init(&rc.barrier, NULL, (unsigned)w);
  pthread_t *th = calloc((size_t)w, sizeof *th);
  rc_thread *ts = calloc((size_t)w, sizeof *ts);
  for (long i = 0; i < w; i++) {
    ts[i].w = (int)i;
    bench_thread_start(ctx, &th[i], rc_main, &ts[i]);
  }
  for (long i = 0; i < w; i++)
    if (!bench_thread_join_timeout(th[i], bench_timeout(ctx)))
      bench_fail(ctx, "thread %ld stuck after %llu of %llu calls", i,
                 (unsigned long long)atomic_load(&rc.done),
                 (unsigned long long)(w * r));
  uint64_t t0 = UINT64_MAX, t1 = 0;
  for (long i = 0; i < w; i++) {
    if (ts[i].t_start < t0)
      t0 = ts[i].t_start;
    if (ts[i].t_end > t1)
      t1 = ts[i].t_end;
  }
  if (atomic_load(&rc.wrong))
    bench_fail(ctx, "%llu wrong results", (unsigned long long)atomic_load(&rc.wrong));
  if (atomic_load(&rc.done) != (uint64_t)(w * r))
    bench_fail(ctx, "%llu calls of %ld", (unsigned long long)atomic_load(&rc.done), w * r);
  cor_loop_counters c0;
  cor_runtime_loop_counters(rc.rt, 0, &c0);
  unsigned nl = cor_runtime_nloops(rc.rt);
  end_runtime(ctx, rc.rt);
  pthread_barrier_destroy(&rc.barrier);
  free(th);
  free(ts);
  bench_report(ctx, (uint64_t)(w * r), (double)(t1 - t0) / 1e9,
               " LOOPS=%u WAKEUPS_LOOP0=%llu", nl,
               (unsigned long long)c0.loop.wakeups_written);
  return 0;
}

BENCH_WORKLOAD(run_coroutine_threadsafe, wl_run_coroutine_threadsafe,
               "W=4,R=50000,loops=cores")

/* ================================================= cross_loop_await */

static struct {
  cor_runtime_t *rt;
  long r;
  long wrong;
  uint64_t t0, t1;
} cl;

static int cl_main(void *arg, void **result) {
  cl.t0 = bench_now_ns();
  for (long i = 0; i < cl.r; i++) {
    cor_cfuture_t *cf = cor_runtime_spawn_on(
        cl.rt, 1, cor_coro(add_one, (void *)(intptr_t)i), NULL);
    if (cf == NULL)
      return -errno;
    void *res = NULL;
    int code = cor_await_cfuture(cf, &res);
    cor_release(cf);
    if (code != 0)
      return code;
    if ((intptr_t)res != i + 1)
      cl.wrong++;
  }
  cl.t1 = bench_now_ns();
  return 0;
}

static int wl_cross_loop_await(bench_ctx *ctx) {
  long r = bench_param_long(ctx, "R", 200000);
  if (r < 1)
    bench_fail(ctx, "R must be >= 1");
  memset(&cl, 0, sizeof cl);
  cl.r = r;
  cl.rt = new_runtime(ctx, 2);
  cor_cfuture_t *cf = cor_runtime_spawn_on(cl.rt, 0, cor_coro(cl_main, NULL), "main");
  if (cf == NULL)
    bench_fail(ctx, "spawn: %s", strerror(errno));
  BENCH_CHECK_RC(ctx, cor_cfuture_result(cf, bench_timeout(ctx), NULL),
                 "cross_loop_await main");
  cor_release(cf);
  if (cl.wrong)
    bench_fail(ctx, "%ld wrong results", cl.wrong);
  cor_loop_counters c0, c1;
  cor_runtime_loop_counters(cl.rt, 0, &c0);
  cor_runtime_loop_counters(cl.rt, 1, &c1);
  end_runtime(ctx, cl.rt);
  bench_report(ctx, (uint64_t)r, (double)(cl.t1 - cl.t0) / 1e9,
               " WAKEUPS=%llu", (unsigned long long)(c0.loop.wakeups_written +
                                                     c1.loop.wakeups_written));
  return 0;
}

BENCH_WORKLOAD(cross_loop_await, wl_cross_loop_await, "R=200000")

/* ================================================= threadsafe_post_rt */

/* threadsafe_post into loop 0 of a one-loop runtime (its door counts the
 * queue depth): P producers, M posts each, per-producer order checked. */
static struct {
  bench_ctx *ctx;
  cor_loop_t *loop;
  long p, m;
  pthread_barrier_t barrier;
  uint64_t *last;
  _Atomic uint64_t count;
  uint64_t order_errors;
  uint64_t t0, t_end;
  _Atomic int finished;
} tr;

static void tr_cb(void *arg) {
  uint64_t a = (uintptr_t)arg, p = a >> 40, s = a & ((UINT64_C(1) << 40) - 1);
  if (s != tr.last[p] + 1)
    tr.order_errors++;
  tr.last[p] = s;
  uint64_t c = atomic_load_explicit(&tr.count, memory_order_relaxed) + 1;
  atomic_store_explicit(&tr.count, c, memory_order_relaxed);
  if (c == (uint64_t)(tr.p * tr.m)) {
    tr.t_end = bench_now_ns();
    atomic_store(&tr.finished, 1);
  }
}

static void *tr_main(void *arg) {
  uint64_t p = (uintptr_t)arg;
  pthread_barrier_wait(&tr.barrier);
  if (p == 0)
    tr.t0 = bench_now_ns();
  for (long s = 1; s <= tr.m; s++)
    BENCH_CHECK_RC(tr.ctx,
                   cor_call_soon_threadsafe(tr.loop, tr_cb,
                                            (void *)(uintptr_t)((p << 40) | (uint64_t)s)),
                   "cor_call_soon_threadsafe");
  return NULL;
}

static int wl_threadsafe_post_rt(bench_ctx *ctx) {
  long p = bench_param_long(ctx, "P", 4);
  long m = bench_param_long(ctx, "M", 1000000);
  memset(&tr, 0, sizeof tr);
  tr.ctx = ctx;
  tr.p = p;
  tr.m = m;
  tr.last = calloc((size_t)p, sizeof *tr.last);
  cor_runtime_t *rt = new_runtime(ctx, 1);
  tr.loop = cor_runtime_loop(rt, 0);
  pthread_barrier_init(&tr.barrier, NULL, (unsigned)p);
  pthread_t *th = calloc((size_t)p, sizeof *th);
  for (long i = 0; i < p; i++)
    bench_thread_start(ctx, &th[i], tr_main, (void *)(uintptr_t)i);
  for (long i = 0; i < p; i++)
    if (!bench_thread_join_timeout(th[i], bench_timeout(ctx)))
      bench_fail(ctx, "producer stuck");
  double deadline = bench_now() + bench_timeout(ctx);
  while (!atomic_load(&tr.finished) && bench_now() < deadline)
    sched_yield();
  if (!atomic_load(&tr.finished))
    bench_fail(ctx, "%llu of %ld callbacks ran",
               (unsigned long long)atomic_load(&tr.count), p * m);
  cor_loop_counters c;
  cor_runtime_loop_counters(rt, 0, &c);
  end_runtime(ctx, rt);
  if (tr.order_errors)
    bench_fail(ctx, "%llu out of order", (unsigned long long)tr.order_errors);
  bench_report(ctx, (uint64_t)(p * m), (double)(tr.t_end - tr.t0) / 1e9,
               " WAKEUPS=%llu", (unsigned long long)c.loop.wakeups_written);
  free(th);
  free(tr.last);
  pthread_barrier_destroy(&tr.barrier);
  return 0;
}

BENCH_WORKLOAD(threadsafe_post_rt, wl_threadsafe_post_rt, "P=4,M=1000000")
