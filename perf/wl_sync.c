/* SPDX-License-Identifier: MIT */
/* Coordination between the tasks of one loop (queue_local). Definitions:
 * shared/perf-workloads.md. */
#include "bench.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* ================================================= queue_local */

/* One loop; a producer task puts 1..N into a queue of maxsize C
 * (cor_queue_put), a consumer task gets them (cor_queue_get) and checks
 * each is the next one. The time is from before the tasks start to after
 * both finished. */
static struct {
  cor_queue_t *q;
  long n;
  long got, order_errors;
} ql;

static int ql_producer(void *arg, void **r) {
  for (long i = 1; i <= ql.n; i++) {
    int rc = cor_queue_put(ql.q, (void *)(intptr_t)i);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int ql_consumer(void *arg, void **r) {
  for (long i = 1; i <= ql.n; i++) {
    void *item;
    int rc = cor_queue_get(ql.q, &item);
    if (rc != 0)
      return rc;
    if ((intptr_t)item != i)
      ql.order_errors++;
    ql.got++;
  }
  return 0;
}

static int wl_queue_local(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 1000000);
  long c = bench_param_long(ctx, "C", 1024);
  if (n < 1 || c < 0)
    bench_fail(ctx, "N must be >= 1 and C >= 0");
  memset(&ql, 0, sizeof ql);
  ql.n = n;
  cor_loop_t *loop = cor_loop_new(NULL);
  if (loop == NULL)
    bench_fail(ctx, "cor_loop_new: %s", strerror(errno));
  ql.q = cor_queue_new(loop, &(cor_queue_opts){.maxsize = (size_t)c});
  if (ql.q == NULL)
    bench_fail(ctx, "cor_queue_new: %s", strerror(errno));
  cor_task_t *cons = cor_create_task(loop, cor_coro(ql_consumer, NULL), "consumer");
  cor_task_t *prod = cor_create_task(loop, cor_coro(ql_producer, NULL), "producer");
  BENCH_CHECK(ctx, cons != NULL && prod != NULL);
  uint64_t t0 = bench_now_ns();
  BENCH_CHECK_RC(ctx, cor_loop_run_until_complete(loop, cor_task_future(cons)),
                 "consumer");
  uint64_t t1 = bench_now_ns();
  BENCH_CHECK_RC(ctx, cor_loop_run_until_complete(loop, cor_task_future(prod)),
                 "producer");
  BENCH_CHECK(ctx, ql.got == n);
  BENCH_CHECK(ctx, ql.order_errors == 0);
  BENCH_CHECK(ctx, cor_queue_qsize(ql.q) == 0);
  cor_release(cons);
  cor_release(prod);
  cor_release(ql.q);
  BENCH_CHECK_RC(ctx, cor_loop_close(loop), "cor_loop_close");
  cor_release(loop);
  bench_report(ctx, (uint64_t)n, (double)(t1 - t0) / 1e9, NULL);
  return 0;
}
BENCH_WORKLOAD(queue_local, wl_queue_local, "N=1000000,C=1024")
