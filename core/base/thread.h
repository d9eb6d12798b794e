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

#endif
