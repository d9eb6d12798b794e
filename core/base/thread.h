/* SPDX-License-Identifier: MIT */
/* Threads corio starts (core/base/thread.c). Not installed. */
#ifndef CORIO_CORE_BASE_THREAD_H
#define CORIO_CORE_BASE_THREAD_H

#include "base/base.h"

/* Every thread corio starts goes through here (core/base/thread.c), born with
 * one signal mask: every asynchronous signal blocked, so a
 * process-directed signal never picks it and the loops' signalfds get
 * theirs; the synchronous ones (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT) open.
 * runs_user_code (loop threads, pool workers) also leaves SIGPROF open, so
 * ITIMER_PROF profilers sample the application's code; corio's own helpers
 * (log, dump, watchdog, resolver, pool manager) block it. Returns
 * pthread_create's code. */
int cor__thread_create(pthread_t *th, const pthread_attr_t *attr,
                       void *(*fn)(void *), void *arg, bool runs_user_code);

/* The task this thread runs, NULL on the thread's own stack: defined and
 * set by core/task/task.c, declared here because backtraces (this layer)
 * must know whether they run on a task's small stack. initial-exec: read on
 * every switch; the default model in a shared library would call
 * __tls_get_addr each time. */
#define COR__TLS_IE __attribute__((tls_model("initial-exec")))
extern _Thread_local struct cor_task *cor__tls_task COR__TLS_IE;

/* The one per-thread cache idiom: a thread-local cache (free buffers,
 * retired coroutines) handed back to the allocator when its thread exits.
 * A static cor__tls_release per kind of cache, COR__TLS_RELEASE_INIT(fn);
 * the first time a thread puts something in its cache it calls
 * cor__tls_release_arm(&r, &cache) (the cache keeps an `armed` flag of its
 * own so that is once per thread, off the fast path), and fn(&cache) runs
 * at that thread's exit. Returns 0 or a negated errno (no key left: the
 * cache then lives until the process exits). */
typedef struct cor__tls_release {
  void (*fn)(void *);
  pthread_key_t key;
  int ready; /* 0 not made, 1 made, -1 failed */
} cor__tls_release;
#define COR__TLS_RELEASE_INIT(f) {.fn = (f)}
int cor__tls_release_arm(cor__tls_release *r, void *cache);

#endif
