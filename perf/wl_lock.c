/* SPDX-License-Identifier: MIT */
/* Coordination workloads (lock_contended). Definitions:
 * shared/perf-workloads.md. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================= lock_contended */

/* T tasks each K times: take the lock, yield while holding it (so the
 * others queue up on it), bump the counter it guards, release. Every
 * acquire after the first round is a hand-off through the waiter queue.
 * Checked: nobody else inside while a task holds it, the count. */
static struct {
  cor_lock_t *lock;
  long k;
  long counter, inside, overlaps, done;
} lc;

static int lc_body(void *arg, void **r) {
  for (long i = 0; i < lc.k; i++) {
    int rc = cor_lock_acquire(lc.lock);
    if (rc != 0)
      return rc;
    if (lc.inside++ != 0)
      lc.overlaps++;
    long c = lc.counter;
    rc = cor_yield();
    if (rc != 0)
      return rc;
    lc.counter = c + 1; /* lost if another task ran inside meanwhile */
    lc.inside--;
    rc = cor_lock_release(lc.lock);
    if (rc != 0)
      return rc;
  }
  lc.done++;
  return 0;
}

static int wl_lock_contended(bench_ctx *ctx) {
  long t = bench_param_long(ctx, "T", 100);
  long k = bench_param_long(ctx, "K", 10000);
  if (t < 1 || k < 1)
    bench_fail(ctx, "T and K must be >= 1");
  memset(&lc, 0, sizeof lc);
  lc.k = k;
  cor_loop_t *loop = cor_loop_new(NULL);
  if (loop == NULL)
    bench_fail(ctx, "cor_loop_new: %s", strerror(errno));
  lc.lock = cor_lock_new(loop);
  BENCH_CHECK(ctx, lc.lock != NULL);
  cor_task_t **tasks = calloc((size_t)t, sizeof *tasks);
  BENCH_CHECK(ctx, tasks != NULL);
  for (long i = 0; i < t; i++) {
    tasks[i] = cor_create_task(loop, cor_coro(lc_body, NULL), NULL);
    if (tasks[i] == NULL)
      bench_fail(ctx, "cor_create_task: %s", strerror(errno));
  }
  uint64_t t0 = bench_now_ns();
  for (long i = 0; i < t; i++)
    BENCH_CHECK_RC(ctx,
                   cor_loop_run_until_complete(loop, cor_task_future(tasks[i])),
                   "run_until_complete");
  uint64_t t1 = bench_now_ns();
  for (long i = 0; i < t; i++) {
    BENCH_CHECK_RC(ctx, cor_future_result(cor_task_future(tasks[i]), NULL),
                   "task result");
    cor_release(tasks[i]);
  }
  BENCH_CHECK(ctx, lc.done == t);
  BENCH_CHECK(ctx, lc.overlaps == 0);
  BENCH_CHECK(ctx, lc.counter == t * k);
  BENCH_CHECK(ctx, !cor_lock_locked(lc.lock));
  cor_release(lc.lock);
  BENCH_CHECK_RC(ctx, cor_loop_close(loop), "cor_loop_close");
  cor_release(loop);
  free(tasks);
  bench_report(ctx, (uint64_t)t * (uint64_t)k, (double)(t1 - t0) / 1e9, NULL);
  return 0;
}
BENCH_WORKLOAD(lock_contended, wl_lock_contended, "T=100,K=10000")
