/* SPDX-License-Identifier: MIT */
/* corio: executors, as asyncio's run_in_executor and concurrent.futures.
 *
 * "Blocking code should not be called directly": hand it to an executor, a
 * pool of threads (cor_thread_pool_new) or of separate processes
 * (cor_process_pool_new), and await the loop future it returns.
 *
 * Threads: an executor may be shared by any number of loops and threads.
 * Every call here may be made from any thread, except those that return a
 * loop future (cor_run_in_executor, cor_run_in_process), which belong to the
 * thread that owns `loop`, as every loop-future call does (from another
 * thread while it runs: NULL with errno 4001 and an ERROR record).
 *
 * Separate pools are cheap (a thread pool starts no thread until work
 * arrives; a process pool starts no process until a job is queued). Give one
 * slow kind of work (DNS look-ups, file I/O, a slow library) its own pool, so
 * that it cannot take every worker and starve the others; a queue_limit turns
 * an overload into -EAGAIN at once, and the caller decides what to do.
 *
 * Cancellation: cancelling the future of a job that has not started removes
 * the job from its queue (it never runs). A job that is already running
 * cannot be stopped: it runs to its end and its result is dropped (a thread
 * pool job's result pointer is simply forgotten: free what it owns in the
 * job itself, or do not cancel jobs that return owned memory).
 */
#ifndef CORIO_EXECUTOR_H
#define CORIO_EXECUTOR_H

#include <corio/common.h>
#include <corio/future.h>
#include <corio/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_executor cor_executor_t;
typedef struct cor_cfuture cor_cfuture_t; /* see corio/runtime.h */

/* ------------------------------------------------------------ thread pool */

/* Thread pool options; a zeroed struct (or NULL) gives the defaults. */
typedef struct cor_thread_pool_opts {
  /* Most threads. 0 = min(32, cpus + 4) as asyncio, cpus from this process's
   * affinity mask (sched_getaffinity). Threads start on demand, when a job
   * is queued and no worker is idle. */
  unsigned max_workers;
  /* Most jobs queued and not yet started; a submit beyond it fails at once
   * with -EAGAIN. 0 = unbounded. */
  size_t queue_limit;
  /* Seconds an idle worker waits for work before its thread exits (it is
   * started again on demand). 0 = default (60); < 0 = never exits. */
  double idle_timeout;
  /* Seconds an idle worker spins, watching the queue, before it sleeps: a
   * job queued within the spin costs no wake-up (~24 us on a paravirtual
   * guest). At most half the CPUs (at least one) spin at a time. 0 = default
   * (50 us); < 0 = never spin. */
  double spin_seconds;
  /* Thread names are "<prefix>-<n>" (cut to the 15 bytes Linux keeps).
   * NULL = "cor-pool". Copied. */
  const char *name_prefix;
} cor_thread_pool_opts;

/* A pool of threads for blocking C functions. The caller holds one
 * reference, and must shut the pool down (cor_executor_shutdown) before
 * releasing it. Releasing the last reference of a pool not shut down
 * reports it, as asyncio's ResourceWarning: WARNING "unclosed executor
 * <ThreadPoolExecutor max_workers=4 threads=1 queued=0 name='cor-pool'>"
 * (in debug mode, which is the running loop's or else CORIO_DEBUG's, with
 * "created at file.c:N" and the creation backtrace), then shuts it down
 * without waiting (queued jobs still run, the workers leave). A pool never
 * released nor shut down is reported at exit. Returns NULL with errno
 * EINVAL (max_workers > 1024), ENOMEM. Any thread. */
COR_EXTERN cor_executor_t *cor_thread_pool_new(const cor_thread_pool_opts *opts);

/* Runs fn(arg, &result) on a worker thread of `ex` (a thread pool; NULL =
 * the loop's default thread pool, made on first use and shut down by
 * cor_run / cor_runtime_shutdown / closing the loop) and returns a future
 * on `loop` (NULL = the loop running on this thread) that completes with
 * fn's outcome: its result (code 0; a positive return counts as 0), or its
 * negative code with the message it gave cor_fail. Completions reach the
 * loop through its cross-thread queue, many per wake-up. Cancelling the
 * future removes a job that has not started; a running job finishes and its
 * result is dropped. The caller holds one reference to the future. Returns
 * NULL with errno EINVAL (NULL fn, no loop, `ex` is a process pool), EAGAIN
 * (the queue is at queue_limit), 4004 (-COR_ECLOSED: the pool is shut down
 * or the loop is closed), ENOMEM. Owner thread of `loop` (else NULL, errno
 * 4001). */
COR_EXTERN cor_future_t *cor_run_in_executor(cor_loop_t *loop,
                                             cor_executor_t *ex, cor_fn fn,
                                             void *arg);

/* Runs fn(arg, &result) on a worker thread of the thread pool `ex` and
 * returns a concurrent future (corio/runtime.h) for its outcome, for plain
 * threads (concurrent.futures' submit). cor_cfuture_cancel removes a job not
 * yet started (0) and refuses a running one (-EBUSY). The caller holds one
 * reference. Returns NULL with errno as cor_run_in_executor (EINVAL for a
 * NULL `ex`: plain threads have no default pool). Any thread. */
COR_EXTERN cor_cfuture_t *cor_executor_submit(cor_executor_t *ex, cor_fn fn,
                                              void *arg);

/* ------------------------------------------------------------ shutdown */

/* Stops `ex` accepting work (later submits fail with COR_ECLOSED): the
 * application's close of a pool, after which releasing it says nothing.
 * Jobs already queued still run, unless cancel_futures: then each queued
 * job is removed and its future cancelled. With wait, blocks until every worker
 * (thread or process) finished and exited, and every completion was handed
 * to its loop's queue; a loop thread that waits stalls its loop meanwhile
 * (its futures complete when it runs again). Calling it again is allowed
 * (it can still wait or cancel). Returns 0, -EINVAL for NULL. Any thread,
 * but not a worker of `ex` itself with wait (-EDEADLK). */
COR_EXTERN int cor_executor_shutdown(cor_executor_t *ex, bool wait,
                                     bool cancel_futures);
/* As cor_executor_shutdown with wait, but waits at most `timeout` seconds
 * (< 0 or INFINITY: no limit). Returns -ETIMEDOUT when workers were still
 * busy at the deadline: they go on, finish their current job and exit (a
 * process pool kills its worker processes at the deadline instead, and
 * reaps them, so no process outlives the call). */
COR_EXTERN int cor_executor_shutdown_timeout(cor_executor_t *ex,
                                             bool cancel_futures,
                                             double timeout);

/* Most workers the pool may run (its resolved max_workers), 0 for NULL. */
COR_EXTERN unsigned cor_executor_max_workers(const cor_executor_t *ex);

/* ------------------------------------------------------------ process pool */

/* Bytes in, bytes out: what a process job receives and returns
 * (cor_bytes_t is declared in corio/common.h). */

/* In a process job: sets *out to a copy of data[0..len) (malloc'd; a
 * previous value is freed). Returns 0, -EINVAL (NULL out, or NULL data with
 * len > 0), -ENOMEM. */
COR_EXTERN int cor_bytes_set(cor_bytes_t *out, const void *data, size_t len);

/* A process job: reads in[0..len), fills *out (cor_bytes_set; it starts
 * empty) and returns 0, or a negative code (cor_fail gives it a message). */
typedef int (*cor_process_fn)(const void *in, size_t len, cor_bytes_t *out);

/* Process pool options; a zeroed struct (or NULL) gives the defaults. */
typedef struct cor_process_pool_opts {
  /* Most worker processes. 0 = the CPUs in this process's affinity mask.
   * Processes start on demand. */
  unsigned max_workers;
  /* Seconds a job may run in its worker; past it the worker is killed, the
   * job fails with -ETIMEDOUT and the worker is replaced. 0 = no limit. */
  double job_timeout;
  /* Largest payload, each way (in and out). 0 = default (64 MiB). */
  size_t max_payload;
} cor_process_pool_opts;

/* A pool of worker processes. Each worker is this same program, started
 * again (posix_spawn of /proc/self/exe) with a worker entry point that runs
 * before main (see COR_PROCESS_JOB): nothing is forked from the parent, so
 * the pool is safe to create when the parent already runs threads. Jobs are
 * found by name, so they must be defined with COR_PROCESS_JOB in the
 * program's executable. A worker that crashes, is killed, or runs past
 * job_timeout fails only the job it was running (COR_EBROKEN or
 * -ETIMEDOUT, with a message naming the job and the signal or exit code);
 * the pool starts a replacement and keeps serving. Workers are reaped with
 * waitpid on their own pids: the application's SIGCHLD is never touched
 * (but an application that reaps every child with waitpid(-1) takes the
 * pool's exit statuses: jobs then fail with "status unknown"). The caller
 * holds one reference and shuts the pool down before releasing it, as for
 * a thread pool (else: "unclosed executor <ProcessPoolExecutor
 * max_workers=2 queued=0 job_timeout=0>"). NULL with errno EINVAL
 * (max_workers > 1024), ENOMEM, EMFILE, EAGAIN (no thread). Any thread. */
COR_EXTERN cor_executor_t *
cor_process_pool_new(const cor_process_pool_opts *opts);

/* Runs the process job `job` (a COR_PROCESS_JOB name) on a worker process
 * with a copy of in[0..len) and returns a future on `loop` (NULL = the
 * running loop) whose result, on success, is a cor_bytes_t * owned by the
 * future (valid while the caller holds the future). Cancelling it removes
 * a job not yet sent to a worker; a job already running finishes and its
 * output is dropped. The caller holds one reference. Returns NULL with errno
 * EINVAL (NULL ex or job, `ex` not a process pool, unknown job name, len
 * above max_payload: nothing is sent), 4004 (-COR_ECLOSED: pool shut down,
 * loop closed), ENOMEM. Owner thread of `loop` (else NULL, errno 4001). */
COR_EXTERN cor_future_t *cor_run_in_process(cor_loop_t *loop,
                                            cor_executor_t *ex,
                                            const char *job, const void *in,
                                            size_t len);

/* A registered process job (one per COR_PROCESS_JOB). */
typedef struct cor_process_job_def {
  const char *name;
  cor_process_fn fn;
  struct cor_process_job_def *next;
} cor_process_job_def;

/* Used by COR_PROCESS_JOB; not for direct use. Registration runs in an
 * early constructor (priority 101) of the program; the worker check runs in
 * a default constructor of the same translation unit: it returns at once
 * in the application, and in a worker process it serves jobs until the
 * parent closes the pipe, then exits (main never runs there). */
COR_EXTERN void cor_process_job_register(cor_process_job_def *def);
COR_EXTERN void cor_process_worker_check(void);

/* Defines process job `name` (an identifier; run it as
 * cor_run_in_process(loop, ex, "name", ...)) running fn. Put it at file scope
 * in the program's executable (not in a shared library loaded by it: its
 * constructors run before the executable's registrations). A worker process
 * starts serving in the first default-priority constructor of such a
 * translation unit, so a job must not depend on default-priority
 * constructors (or C++ static initialisers) of other translation units. */
#define COR_PROCESS_JOB(name, fn)                                              \
  static cor_process_job_def cor__pjob_def_##name = {#name, (fn), NULL};       \
  __attribute__((constructor(101))) static void cor__pjob_reg_##name(void) {  \
    cor_process_job_register(&cor__pjob_def_##name);                           \
  }                                                                            \
  __attribute__((constructor)) static void cor__pjob_start_##name(void) {     \
    cor_process_worker_check();                                                \
  }

#ifdef __cplusplus
}
#endif
#endif
