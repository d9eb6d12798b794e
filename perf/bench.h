/* SPDX-License-Identifier: MIT */
/* corio perf harness: one program, `perf/bench WORKLOAD [k=v ...]`.
 *
 * A workload is a function in its own perf/wl_*.c file that registers itself
 * with BENCH_WORKLOAD; bench.c never lists them. The contract of every
 * workload (names, parameters, what OPS counts) is shared/perf-workloads.md.
 *
 * A workload reads its parameters with bench_param_long/_double, measures,
 * checks that no work was lost, and hands its figure to bench_report. The
 * harness prints the figure only after the workload returned 0: a run that
 * lost work (bench_fail, or a non-zero return) prints no figure and the
 * program exits 1. Usage errors (unknown workload, unknown or malformed
 * parameter) exit 2.
 */
#ifndef CORIO_PERF_BENCH_H
#define CORIO_PERF_BENCH_H

#include <corio.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct bench_ctx bench_ctx;
typedef int (*bench_fn)(bench_ctx *ctx);

typedef struct bench_workload {
  const char *name;
  bench_fn fn;
  /* Accepted parameters and their defaults, "P=1,M=1000000". A parameter a
   * workload reads must be listed here; a default that is not a number
   * ("spin_us=loop") marks an optional parameter with no fixed default. */
  const char *spec;
  struct bench_workload *next;
} bench_workload;

void bench_register(bench_workload *w);

/* Registers fn as workload `name` before main runs; put it at file scope of
 * a perf/wl_*.c file. */
#define BENCH_WORKLOAD(name, fn, spec)                                         \
  static void bench_register_##name(void) __attribute__((constructor));       \
  static void bench_register_##name(void) {                                    \
    static bench_workload w_ = {#name, fn, spec, NULL};                        \
    bench_register(&w_);                                                       \
  }

/* ------------------------------------------------------------ parameters */

/* The value of parameter `key` given on the command line, or `dflt`. The key
 * must be in the workload's spec, and a numeric default there must equal
 * dflt (both are checked: a mismatch is a harness bug, exit 3). The value
 * used is recorded for PARAMS= in the order of the calls. Integers accept a
 * k/M/G suffix (1M = 1000000). A malformed value exits 2. */
long bench_param_long(bench_ctx *ctx, const char *key, long dflt);
double bench_param_double(bench_ctx *ctx, const char *key, double dflt);
/* True when `key` was given on the command line (records nothing). */
bool bench_param_given(bench_ctx *ctx, const char *key);

/* ------------------------------------------------------------ clocks */

uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC */
double bench_now(void);      /* same, in seconds */
uint64_t bench_cpu_ns(void); /* this process's user+system CPU time */
long bench_maxrss_kb(void);  /* peak resident set (ru_maxrss) */

/* ------------------------------------------------------------ results */

/* Records the figure: OPS=ops, SECONDS=seconds, NS_PER_OP=seconds/ops, then
 * the extra fields formatted from extra_fmt (" k=v k=v", may be NULL). It is
 * printed when the workload returns 0, as
 * WORKLOAD=<name> PARAMS=<k=v,...> OPS=<n> SECONDS=<s> NS_PER_OP=<x> [...] */
void bench_report(bench_ctx *ctx, uint64_t ops, double seconds,
                  const char *extra_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Lost work, a failed call, a broken check: prints
 * "bench: <workload>: FAILED: <message>" on stderr and exits 1 at once (no
 * figure is printed). Any thread. */
_Noreturn void bench_fail(bench_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The workload cannot run on this machine (a peer library or a kernel
 * feature is missing): prints "bench: <workload>: SKIPPED: <message>" on
 * stderr and exits 77 (the automake/liburing "skipped" code); no figure.
 * perf/run_all.sh reports it and goes on without failing. */
_Noreturn void bench_skip(bench_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Fails with cor_strerror(rc) when rc != 0. */
#define BENCH_CHECK_RC(ctx, rc, what)                                          \
  do {                                                                         \
    int rc_ = (rc);                                                            \
    if (rc_ != 0)                                                              \
      bench_fail(ctx, "%s: %s (%d)", what, cor_strerror(rc_), rc_);            \
  } while (0)
/* Fails with the expression's text when cond is false. */
#define BENCH_CHECK(ctx, cond)                                                 \
  do {                                                                         \
    if (!(cond))                                                               \
      bench_fail(ctx, "check failed: %s (%s:%d)", #cond, __FILE__, __LINE__);  \
  } while (0)

/* ------------------------------------------------------------ threads */

/* pthread_create that fails the run on error. */
void bench_thread_start(bench_ctx *ctx, pthread_t *t, void *(*fn)(void *),
                        void *arg);
/* Joins t, waiting at most timeout_s; false on timeout (the caller reports
 * what was lost and calls bench_fail). */
bool bench_thread_join_timeout(pthread_t t, double timeout_s);

/* A loop run by its own thread: cor_loop_run_forever, then (on that owning
 * thread) cor_loop_get_stats into `stats` and cor_loop_close. */
typedef struct bench_loop_thread {
  cor_loop_t *loop;
  pthread_t thread;
  int run_rc, close_rc, stats_rc;
  cor_loop_stats stats; /* as the loop stopped, before it was closed */
  atomic_int started;   /* set by a callback the loop ran */
} bench_loop_thread;

/* Creates the loop with opts, starts its thread and returns once the loop
 * has run a callback (so it is running and owned by that thread). */
void bench_loop_thread_start(bench_ctx *ctx, bench_loop_thread *lt,
                             const cor_loop_opts *opts);
/* Waits (at most timeout_s) for the loop to return from run_forever, after
 * the workload stopped it; false on timeout. On success checks the run and
 * close return codes and releases the loop. */
bool bench_loop_thread_join(bench_ctx *ctx, bench_loop_thread *lt,
                            double timeout_s);
/* Posts a cor_loop_stop to the loop, then joins as above (fails on timeout). */
void bench_loop_thread_stop(bench_ctx *ctx, bench_loop_thread *lt);

/* The seconds a workload should wait for a stuck phase before calling it
 * lost work: the `timeout=` parameter every workload accepts (default 120),
 * which also arms a watchdog over the whole run. */
double bench_timeout(bench_ctx *ctx);

#endif
