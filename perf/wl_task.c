/* SPDX-License-Identifier: MIT */
/* Task workloads (task_switch, spawn_await, idle_tasks) and their floor
 * (limit_context_switch). Definitions: shared/perf-workloads.md. */
#include "bench.h"
/* limit_context_switch drives the internal switch routine directly. */
#include "task/ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cor_loop_t *new_loop(bench_ctx *ctx) {
  cor_loop_t *loop = cor_loop_new(NULL);
  if (loop == NULL)
    bench_fail(ctx, "cor_loop_new: %s", strerror(errno));
  return loop;
}

static void free_loop(bench_ctx *ctx, cor_loop_t *loop) {
  BENCH_CHECK_RC(ctx, cor_loop_close(loop), "cor_loop_close");
  cor_release(loop);
}

/* ================================================= task_switch */

/* T tasks each yield K times (cor_sleep(0), asyncio's sleep(0)). A switch
 * is one yield: task -> loop -> next task. Each task counts its yields and
 * checks it ran in round-robin order (FIFO ready queue). */
static struct {
  long k;
  long done, order_errors;
  long *counts;
  long t;
} ts;

static int ts_body(void *arg, void **r) {
  long me = (long)(intptr_t)arg;
  for (long i = 0; i < ts.k; i++) {
    int rc = cor_sleep(0);
    if (rc != 0)
      return rc;
    ts.counts[me]++;
  }
  ts.done++;
  return 0;
}

static int wl_task_switch(bench_ctx *ctx) {
  long t = bench_param_long(ctx, "T", 1000);
  long k = bench_param_long(ctx, "K", 2000);
  if (t < 1 || k < 1)
    bench_fail(ctx, "T and K must be >= 1");
  memset(&ts, 0, sizeof ts);
  ts.k = k;
  ts.t = t;
  ts.counts = calloc((size_t)t, sizeof *ts.counts);
  cor_loop_t *loop = new_loop(ctx);
  cor_task_t **tasks = calloc((size_t)t, sizeof *tasks);
  for (long i = 0; i < t; i++) {
    tasks[i] = cor_create_task(loop, cor_coro(ts_body, (void *)(intptr_t)i), NULL);
    if (tasks[i] == NULL)
      bench_fail(ctx, "cor_create_task: %s", strerror(errno));
  }
  uint64_t t0 = bench_now_ns();
  BENCH_CHECK_RC(ctx,
                 cor_loop_run_until_complete(loop, cor_task_future(tasks[t - 1])),
                 "run_until_complete");
  uint64_t t1 = bench_now_ns();
  for (long i = 0; i < t; i++) {
    BENCH_CHECK(ctx, cor_future_done(cor_task_future(tasks[i])));
    BENCH_CHECK_RC(ctx, cor_future_result(cor_task_future(tasks[i]), NULL),
                   "task result");
    BENCH_CHECK(ctx, ts.counts[i] == k);
    cor_release(tasks[i]);
  }
  BENCH_CHECK(ctx, ts.done == t);
  free_loop(ctx, loop);
  free(tasks);
  free(ts.counts);
  bench_report(ctx, (uint64_t)t * (uint64_t)k, (double)(t1 - t0) / 1e9, NULL);
  return 0;
}
BENCH_WORKLOAD(task_switch, wl_task_switch, "T=1000,K=2000")

/* ================================================= spawn_await */

static int sa_child(void *arg, void **r) {
  *r = (void *)((intptr_t)arg + 1);
  return 0;
}

static struct {
  long n;
  long bad;
  uint64_t t0, t1;
} sa;

static int sa_parent(void *arg, void **r) {
  sa.t0 = bench_now_ns();
  for (long i = 0; i < sa.n; i++) {
    cor_task_t *c = cor_create_task(NULL, cor_coro(sa_child, (void *)(intptr_t)i), NULL);
    if (c == NULL)
      return -errno;
    void *res = NULL;
    int rc = cor_await_task(c, &res);
    cor_release(c);
    if (rc != 0)
      return rc;
    if ((intptr_t)res != i + 1)
      sa.bad++;
  }
  sa.t1 = bench_now_ns();
  return 0;
}

static int wl_spawn_await(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 1000000);
  if (n < 1)
    bench_fail(ctx, "N must be >= 1");
  memset(&sa, 0, sizeof sa);
  sa.n = n;
  cor_loop_t *loop = new_loop(ctx);
  cor_task_t *p = cor_create_task(loop, cor_coro(sa_parent, NULL), "parent");
  BENCH_CHECK(ctx, p != NULL);
  BENCH_CHECK_RC(ctx, cor_loop_run_until_complete(loop, cor_task_future(p)),
                 "parent");
  cor_release(p);
  BENCH_CHECK(ctx, sa.bad == 0);
  free_loop(ctx, loop);
  bench_report(ctx, (uint64_t)n, (double)(sa.t1 - sa.t0) / 1e9, NULL);
  return 0;
}
BENCH_WORKLOAD(spawn_await, wl_spawn_await, "N=1000000")

/* ================================================= idle_tasks */

/* N tasks started and blocked on one future: what an idle task costs. */
static long rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
      res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int idle_body(void *arg, void **r) { return cor_await(arg, NULL); }

static int wl_idle_tasks(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 10000);
  if (n < 1)
    bench_fail(ctx, "N must be >= 1");
  cor_loop_t *loop = new_loop(ctx);
  cor_future_t *gate = cor_future_new(loop);
  cor_task_t **tasks = calloc((size_t)n, sizeof *tasks);
  long before = rss_kb();
  uint64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    tasks[i] = cor_create_task(loop, cor_coro(idle_body, gate), NULL);
    if (tasks[i] == NULL)
      bench_fail(ctx, "cor_create_task %ld: %s", i, strerror(errno));
  }
  /* One iteration: every task starts and blocks on the gate. */
  BENCH_CHECK_RC(ctx, cor_loop_stop(loop), "stop");
  BENCH_CHECK_RC(ctx, cor_loop_run_forever(loop), "run");
  uint64_t t1 = bench_now_ns();
  long during = rss_kb();
  BENCH_CHECK(ctx, cor_all_tasks(loop, NULL, 0) == (size_t)n);
  size_t stack = cor_loop_get_task_stack_size(loop);
  BENCH_CHECK_RC(ctx, cor_future_set_result(gate, NULL), "gate");
  for (long i = 0; i < n; i++) {
    BENCH_CHECK_RC(ctx,
                   cor_loop_run_until_complete(loop, cor_task_future(tasks[i])),
                   "task");
    cor_release(tasks[i]);
  }
  cor_release(gate);
  free(tasks);
  free_loop(ctx, loop);
  bench_report(ctx, (uint64_t)n, (double)(t1 - t0) / 1e9,
               " RSS_KB=%ld RSS_DELTA_KB=%ld KB_PER_TASK=%.1f STACK_KB=%zu",
               during, during - before, (double)(during - before) / (double)n,
               stack / 1024);
  return 0;
}
BENCH_WORKLOAD(idle_tasks, wl_idle_tasks, "N=10000")

/* ================================================= limit_context_switch */

/* Two contexts bouncing through cor__ctx_switch, no loop, no scheduler:
 * the floor under task_switch. OPS = switches (one direction each). */
static cor__ctx lc_main, lc_other;
static volatile long lc_count;

static void lc_body(void *arg) {
  (void)arg;
  for (;;) {
    lc_count++;
    cor__ctx_switch(&lc_other, &lc_main);
  }
}

static int wl_limit_context_switch(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 20000000);
  if (n < 2)
    bench_fail(ctx, "N must be >= 2");
  size_t sz = 64 * 1024;
  void *stack = malloc(sz);
  cor__ctx_make(&lc_other, stack, sz, lc_body, NULL);
  long rounds = n / 2;
  lc_count = 0;
  uint64_t t0 = bench_now_ns();
  for (long i = 0; i < rounds; i++)
    cor__ctx_switch(&lc_main, &lc_other);
  uint64_t t1 = bench_now_ns();
  BENCH_CHECK(ctx, lc_count == rounds);
  free(stack); /* lc_body is parked forever: nothing runs on it again */
  bench_report(ctx, (uint64_t)rounds * 2, (double)(t1 - t0) / 1e9, NULL);
  return 0;
}
BENCH_WORKLOAD(limit_context_switch, wl_limit_context_switch, "N=20000000")
