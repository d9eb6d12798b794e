/* SPDX-License-Identifier: MIT */
/* Executor workloads (shared/perf-workloads.md):
 *
 *  executor_roundtrip  a task keeps C run_in_executor calls in flight on a
 *                      thread pool of W workers (a trivial function that
 *                      returns its argument + 1) until N completed and were
 *                      awaited. OPS = N.
 *  process_pool        a task keeps C jobs in flight on a process pool of W
 *                      workers; each job receives 64 bytes and returns 64
 *                      bytes (checksums of the input, checked here). OPS = N.
 *                      The W worker processes are started (2*W jobs) before
 *                      the clock starts, as servers are warmed: the figure is
 *                      the steady state, not exec() of the workers.
 *
 * Extra fields: WAKEUPS= (eventfd writes the loop really needed while the
 * workload ran) and POLLS=. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv_seed(const unsigned char *p, size_t n, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* 64 bytes in, 64 bytes out: eight checksums of the input, seeds 0..7. */
static void checksum64(const unsigned char in[64], uint64_t out[8]) {
  for (int k = 0; k < 8; k++)
    out[k] = fnv_seed(in, 64, (uint64_t)k * 0x9e3779b97f4a7c15ull);
}

static int job_checksum64(const void *in, size_t len, cor_bytes_t *out) {
  if (len != 64)
    return cor_fail(-EINVAL, "checksum64 wants 64 bytes, got %zu", len);
  uint64_t h[8];
  checksum64(in, h);
  return cor_bytes_set(out, h, sizeof h);
}
COR_PROCESS_JOB(bench_checksum64, job_checksum64)

static int plus_one(void *arg, void **result) {
  *result = (void *)((uintptr_t)arg + 1);
  return 0;
}

typedef struct exec_run {
  bench_ctx *ctx;
  long n, c, w;
  bool process;
  double seconds;
  uint64_t wakeups, polls;
} exec_run;

static void fill(unsigned char buf[64], long i) {
  for (int k = 0; k < 64; k++)
    buf[k] = (unsigned char)(i * 131 + k * 7 + (i >> 8));
}

static cor_future_t *submit(exec_run *r, cor_executor_t *ex, long i,
                            unsigned char *buf) {
  cor_future_t *f;
  if (r->process) {
    fill(buf, i);
    f = cor_run_in_process(NULL, ex, "bench_checksum64", buf, 64);
  } else {
    f = cor_run_in_executor(NULL, ex, plus_one, (void *)(uintptr_t)i);
  }
  if (f == NULL)
    bench_fail(r->ctx, "submit %ld: %s", i, strerror(errno));
  return f;
}

static void check(exec_run *r, cor_future_t *f, long i, unsigned char *buf) {
  void *v = NULL;
  int rc = cor_await(f, &v);
  if (rc != 0)
    bench_fail(r->ctx, "job %ld: %s (%s)", i, cor_strerror(rc),
               cor_future_message(f) ? cor_future_message(f) : "");
  if (r->process) {
    cor_bytes_t *b = v;
    uint64_t h[8];
    checksum64(buf, h);
    if (b == NULL || b->len != 64 || memcmp(b->data, h, 64) != 0)
      bench_fail(r->ctx, "job %ld: wrong checksum", i);
  } else if ((uintptr_t)v != (uintptr_t)i + 1) {
    bench_fail(r->ctx, "job %ld: got %lu", i, (unsigned long)(uintptr_t)v);
  }
  cor_release(f);
}

static int exec_main(void *arg, void **result) {
  exec_run *r = arg;
  cor_executor_t *ex;
  if (r->process) {
    cor_process_pool_opts o = {.max_workers = (unsigned)r->w};
    ex = cor_process_pool_new(&o);
  } else {
    cor_thread_pool_opts o = {.max_workers = (unsigned)r->w};
    ex = cor_thread_pool_new(&o);
  }
  if (ex == NULL)
    bench_fail(r->ctx, "pool: %s", strerror(errno));
  cor_future_t **ring = calloc((size_t)r->c, sizeof *ring);
  unsigned char(*bufs)[64] = calloc((size_t)r->c, 64);
  long *ids = calloc((size_t)r->c, sizeof *ids);
  if (r->process) { /* start the workers before the clock */
    long warm = 2 * r->w;
    for (long i = 0; i < warm && i < r->c; i++)
      ring[i] = submit(r, ex, -1 - i, bufs[i]);
    for (long i = 0; i < warm && i < r->c; i++)
      check(r, ring[i], -1 - i, bufs[i]);
  }
  cor_loop_t *loop = cor_get_running_loop();
  cor_loop_stats s0, s1;
  cor_loop_get_stats(loop, &s0);
  uint64_t t0 = bench_now_ns();
  long sent = 0, done = 0;
  for (; sent < r->c && sent < r->n; sent++) {
    ids[sent] = sent;
    ring[sent] = submit(r, ex, sent, bufs[sent]);
  }
  while (done < r->n) {
    long slot = done % r->c;
    check(r, ring[slot], ids[slot], bufs[slot]);
    done++;
    if (sent < r->n) {
      ids[slot] = sent;
      ring[slot] = submit(r, ex, sent, bufs[slot]);
      sent++;
    }
  }
  uint64_t t1 = bench_now_ns();
  cor_loop_get_stats(loop, &s1);
  r->seconds = (double)(t1 - t0) / 1e9;
  r->wakeups = s1.wakeups_written - s0.wakeups_written;
  r->polls = s1.polls - s0.polls;
  BENCH_CHECK_RC(r->ctx, cor_executor_shutdown_timeout(ex, false, 10.0),
                 "cor_executor_shutdown");
  cor_release(ex);
  free(ring);
  free(bufs);
  free(ids);
  return 0;
}

static int run(bench_ctx *ctx, bool process, long dn) {
  exec_run r = {.ctx = ctx, .process = process};
  r.n = bench_param_long(ctx, "N", dn);
  r.c = bench_param_long(ctx, "C", 64);
  r.w = bench_param_long(ctx, "W", process ? 2 : 4);
  if (r.n < 1 || r.c < 1 || r.w < 1 || r.w > 1024)
    bench_fail(ctx, "N, C, W must be >= 1 (W <= 1024)");
  BENCH_CHECK_RC(ctx, cor_run(exec_main, &r, NULL), "cor_run");
  bench_report(ctx, (uint64_t)r.n, r.seconds, " WAKEUPS=%llu POLLS=%llu",
               (unsigned long long)r.wakeups, (unsigned long long)r.polls);
  return 0;
}

static int wl_executor_roundtrip(bench_ctx *ctx) {
  return run(ctx, false, 200000);
}
BENCH_WORKLOAD(executor_roundtrip, wl_executor_roundtrip, "N=200000,C=64,W=4")

static int wl_process_pool(bench_ctx *ctx) { return run(ctx, true, 20000); }
BENCH_WORKLOAD(process_pool, wl_process_pool, "N=20000,C=64,W=2")
