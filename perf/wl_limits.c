/* SPDX-License-Identifier: MIT */
/* The machine's floors that are not a workload's own (perf/wl_loop.c has
 * limit_queue and limit_eventfd_pingpong, perf/wl_task.c
 * limit_context_switch): what a system call, an empty epoll_wait, a futex
 * wake-up across two cores and a cache line moving between two cores cost
 * here. `perf/bench limits` runs them all with the CPU model and kernel, so
 * a reader can tell a slow machine from a slow change.
 *
 *   limit_syscall N          getppid through syscall(2), N times
 *   limit_epoll_wait N       epoll_wait(ep, .., 0) on an empty epoll set
 *   limit_futex_pingpong R   two threads pinned to two CPUs hand a token
 *                            through one futex word, each sleeping in
 *                            FUTEX_WAIT until the other wakes it
 *   limit_cacheline R        the same two pinned threads spinning on one
 *                            cache line: a round trip is the line going
 *                            there and back
 * With one CPU in the affinity mask the threads share it (the figure then
 * is a scheduler hand-off; PINNED=0 says so). */
#include "bench.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------ syscall */

static int wl_limit_syscall(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 2000000);
  BENCH_CHECK(ctx, n > 0);
  pid_t want = getppid();
  long bad = 0;
  uint64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++)
    bad += syscall(SYS_getppid) != want;
  uint64_t t1 = bench_now_ns();
  if (bad != 0)
    bench_fail(ctx, "getppid answered otherwise %ld times", bad);
  bench_report(ctx, (uint64_t)n, (double)(t1 - t0) / 1e9, NULL);
  return 0;
}
BENCH_WORKLOAD(limit_syscall, wl_limit_syscall, "N=2000000")

/* ------------------------------------------------------------ epoll_wait(0) */

static int wl_limit_epoll_wait(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 1000000);
  BENCH_CHECK(ctx, n > 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    bench_fail(ctx, "epoll_create1: %s", strerror(errno));
  struct epoll_event ev;
  long events = 0;
  uint64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    int r = epoll_wait(ep, &ev, 1, 0);
    if (r < 0 && errno != EINTR)
      bench_fail(ctx, "epoll_wait: %s", strerror(errno));
    events += r > 0;
  }
  uint64_t t1 = bench_now_ns();
  close(ep);
  if (events != 0)
    bench_fail(ctx, "an empty epoll set returned %ld events", events);
  bench_report(ctx, (uint64_t)n, (double)(t1 - t0) / 1e9, NULL);
  return 0;
}
BENCH_WORKLOAD(limit_epoll_wait, wl_limit_epoll_wait, "N=1000000")

/* ------------------------------------------------------------ two pinned threads */

/* The token: `turn` counts hops; side s owns the token when turn % 2 == s. */
static struct {
  bench_ctx *ctx;
  long r;
  int futex;  /* limit_futex_pingpong's word */
  _Alignas(64) _Atomic long turn;
  _Alignas(64) pthread_barrier_t barrier;
  int cpus[2];
  bool pinned;
} tp;

static void tp_pin(int side) {
  if (!tp.pinned)
    return;
  cpu_set_t cs;
  CPU_ZERO(&cs);
  CPU_SET(tp.cpus[side], &cs);
  pthread_setaffinity_np(pthread_self(), sizeof cs, &cs);
}

static void tp_choose_cpus(void) {
  cpu_set_t cs;
  int n = 0;
  tp.pinned = false;
  if (sched_getaffinity(0, sizeof cs, &cs) != 0)
    return;
  for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
    if (CPU_ISSET(c, &cs))
      tp.cpus[n++] = c;
  tp.pinned = n == 2;
}

static long futex_op(int *addr, int op, int val) {
  return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

/* The futex word holds the side that owns the token. */
static void *fx_side(void *arg) {
  int side = (int)(intptr_t)arg;
  tp_pin(side);
  pthread_barrier_wait(&tp.barrier);
  for (long i = 0; i < tp.r; i++) {
    while (__atomic_load_n(&tp.futex, __ATOMIC_ACQUIRE) != side)
      futex_op(&tp.futex, FUTEX_WAIT_PRIVATE, 1 - side);
    atomic_fetch_add(&tp.turn, 1);
    __atomic_store_n(&tp.futex, 1 - side, __ATOMIC_RELEASE);
    futex_op(&tp.futex, FUTEX_WAKE_PRIVATE, 1);
  }
  return NULL;
}

static void *cl_side(void *arg) {
  long side = (long)(intptr_t)arg;
  tp_pin((int)side);
  pthread_barrier_wait(&tp.barrier);
  for (long i = 0; i < tp.r; i++) {
    long want = 2 * i + side;
    while (atomic_load_explicit(&tp.turn, memory_order_acquire) != want)
      __builtin_ia32_pause();
    atomic_store_explicit(&tp.turn, want + 1, memory_order_release);
  }
  return NULL;
}

static int run_pair(bench_ctx *ctx, void *(*fn)(void *)) {
  long r = bench_param_long(ctx, "R", fn == fx_side ? 50000 : 1000000);
  BENCH_CHECK(ctx, r > 0);
  tp.ctx = ctx;
  tp.r = r;
  tp.futex = 0;
  atomic_store(&tp.turn, 0);
  tp_choose_cpus();
  pthread_barrier_init(&tp.barrier, NULL, 3);
  pthread_t t[2];
  bench_thread_start(ctx, &t[0], fn, (void *)(intptr_t)0);
  bench_thread_start(ctx, &t[1], fn, (void *)(intptr_t)1);
  pthread_barrier_wait(&tp.barrier);
  uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns();
  for (int i = 0; i < 2; i++)
    if (!bench_thread_join_timeout(t[i], bench_timeout(ctx)))
      bench_fail(ctx, "stuck after %ld of %ld hops", atomic_load(&tp.turn),
                 2 * r);
  uint64_t t1 = bench_now_ns(), c1 = bench_cpu_ns();
  pthread_barrier_destroy(&tp.barrier);
  if (atomic_load(&tp.turn) != 2 * r)
    bench_fail(ctx, "%ld hops, expected %ld", atomic_load(&tp.turn), 2 * r);
  bench_report(ctx, (uint64_t)r, (double)(t1 - t0) / 1e9,
               " CPU_NS_PER_OP=%.1f PINNED=%d", (double)(c1 - c0) / (double)r,
               tp.pinned);
  return 0;
}

static int wl_limit_futex_pingpong(bench_ctx *ctx) {
  return run_pair(ctx, fx_side);
}
BENCH_WORKLOAD(limit_futex_pingpong, wl_limit_futex_pingpong, "R=50000")

static int wl_limit_cacheline(bench_ctx *ctx) {
  return run_pair(ctx, cl_side);
}
BENCH_WORKLOAD(limit_cacheline, wl_limit_cacheline, "R=1000000")
