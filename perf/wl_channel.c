/* SPDX-License-Identifier: MIT */
/* channel: P producers, each a task on its own loop of a runtime, send M
 * tagged integers each through one channel of capacity C to one consumer
 * task on another loop; per-producer order and the count checked. OPS =
 * P*M. WAKEUPS= the cross-thread door posts the channel made (parked tasks
 * woken on another loop), EVENTFD= the eventfd writes of every loop (a door
 * post to a loop that was asleep). Definitions: shared/perf-workloads.md. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXP 64

static struct {
  cor_channel_t *ch;
  long m;
  int p;
  long wrong;
  uint64_t t1;
} chw;

static int ch_producer(void *arg, void **result) {
  uint64_t tag = (uint64_t)(uintptr_t)arg << 40;
  for (long s = 1; s <= chw.m; s++) {
    int rc = cor_channel_send(chw.ch, (void *)(uintptr_t)(tag | (uint64_t)s),
                              COR_FOREVER);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int ch_consumer(void *arg, void **result) {
  long last[MAXP] = {0};
  long total = (long)chw.p * chw.m;
  for (long n = 0; n < total; n++) {
    void *item;
    int rc = cor_channel_recv(chw.ch, &item, COR_FOREVER);
    if (rc != 0)
      return rc;
    uint64_t v = (uint64_t)(uintptr_t)item;
    unsigned p = (unsigned)(v >> 40);
    long s = (long)(v & (((uint64_t)1 << 40) - 1));
    if (p >= (unsigned)chw.p || s != last[p] + 1)
      chw.wrong++;
    else
      last[p] = s;
  }
  chw.t1 = bench_now_ns();
  for (int p = 0; p < chw.p; p++)
    if (last[p] != chw.m)
      chw.wrong++;
  return 0;
}

static int wl_channel(bench_ctx *ctx) {
  long p = bench_param_long(ctx, "P", 1);
  long m = bench_param_long(ctx, "M", 1000000);
  long c = bench_param_long(ctx, "C", 1024);
  if (p < 1 || p > MAXP || m < 1 || c < 1)
    bench_fail(ctx, "need 1 <= P <= %d, M >= 1, C >= 1", MAXP);
  memset(&chw, 0, sizeof chw);
  chw.m = m;
  chw.p = (int)p;
  chw.ch = cor_channel_new(&(cor_channel_opts){.capacity = (size_t)c});
  if (chw.ch == NULL)
    bench_fail(ctx, "cor_channel_new: %s", strerror(errno));
  /* Loop 0: the consumer; loops 1..P: one producer each. Pinned (the
   * default): loop i on CPU i mod ncpus, so with more loops than cores
   * several share one. */
  cor_runtime_opts o;
  memset(&o, 0, sizeof o);
  o.nloops = (unsigned)p + 1;
  cor_runtime_t *rt = cor_runtime_new(&o);
  if (rt == NULL)
    bench_fail(ctx, "cor_runtime_new: %s", strerror(errno));
  cor_loop_counters before[MAXP + 1];
  for (unsigned i = 0; i <= (unsigned)p; i++)
    cor_runtime_loop_counters(rt, i, &before[i]);
  cor_cfuture_t *cons =
      cor_runtime_spawn_on(rt, 0, cor_coro(ch_consumer, NULL), "consumer");
  if (cons == NULL)
    bench_fail(ctx, "spawn: %s", strerror(errno));
  cor_cfuture_t *prod[MAXP];
  uint64_t t0 = bench_now_ns();
  for (long i = 0; i < p; i++) {
    prod[i] = cor_runtime_spawn_on(rt, (unsigned)i + 1,
                                   cor_coro(ch_producer, (void *)(uintptr_t)i),
                                   "producer");
    if (prod[i] == NULL)
      bench_fail(ctx, "spawn: %s", strerror(errno));
  }
  for (long i = 0; i < p; i++) {
    BENCH_CHECK_RC(ctx, cor_cfuture_result(prod[i], bench_timeout(ctx), NULL),
                   "producer");
    cor_release(prod[i]);
  }
  BENCH_CHECK_RC(ctx, cor_cfuture_result(cons, bench_timeout(ctx), NULL),
                 "consumer");
  cor_release(cons);
  if (chw.wrong)
    bench_fail(ctx, "%ld items lost, duplicated or out of order", chw.wrong);
  void *extra;
  BENCH_CHECK(ctx, cor_channel_try_recv(chw.ch, &extra) == -EAGAIN);
  /* Door posts beyond the P + 1 spawns: the channel's wake-ups. */
  uint64_t posts = 0, efd = 0;
  for (unsigned i = 0; i <= (unsigned)p; i++) {
    cor_loop_counters a;
    cor_runtime_loop_counters(rt, i, &a);
    posts += a.loop.threadsafe_run - before[i].loop.threadsafe_run;
    efd += a.loop.wakeups_written - before[i].loop.wakeups_written;
  }
  posts = posts > (uint64_t)p + 1 ? posts - ((uint64_t)p + 1) : 0;
  BENCH_CHECK_RC(ctx, cor_runtime_shutdown(rt, bench_timeout(ctx)),
                 "cor_runtime_shutdown");
  cor_release(rt);
  cor_release(chw.ch);
  uint64_t ops = (uint64_t)p * (uint64_t)m;
  bench_report(ctx, ops, (double)(chw.t1 - t0) / 1e9,
               " WAKEUPS=%llu WAKEUPS_PER_ITEM=%.5f EVENTFD=%llu",
               (unsigned long long)posts, (double)posts / (double)ops,
               (unsigned long long)efd);
  return 0;
}

BENCH_WORKLOAD(channel, wl_channel, "P=1,M=1000000,C=1024")
