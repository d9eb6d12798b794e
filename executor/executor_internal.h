/* SPDX-License-Identifier: MIT */
/* Executors: what executor/executor.c, thread_pool.c and process_pool.c
 * share. Internal, not installed.
 *
 * A job submitted from a loop lives in its future's allocation (struct
 * cor__xjob starts with the future): one allocation per job. Finished jobs
 * come back to their loop through a "port" (one per pool and loop): a
 * lock-free stack that workers push onto; the push that finds it empty posts
 * one drain callback with cor_call_soon_threadsafe, and the drain takes the
 * whole stack with one exchange. So a burst of completions costs one post
 * and at most one wake-up. */
#ifndef CORIO_EXECUTOR_XINTERNAL_H
#define CORIO_EXECUTOR_XINTERNAL_H

#include "base/backtrace.h"
#include "base/base.h"
#include "base/object.h"
#include "diag/resource.h"
#include "internal.h" /* executor/internal.h: cfutures, futex helpers */

#include <corio/executor.h>

typedef struct cor__xjob cor__xjob;
typedef struct cor__xport cor__xport;

enum { COR__X_THREAD = 1, COR__X_PROCESS = 2 };

typedef struct cor__xops {
  /* wait: block until workers exited; deadline_ns UINT64_MAX = no limit. */
  int (*shutdown)(cor_executor_t *ex, bool wait, bool cancel,
                  uint64_t deadline_ns);
  /* A loop job's future was cancelled (loop thread). */
  void (*cancelled)(cor__xjob *j);
  /* Frees the pool's memory; every worker is gone. */
  void (*destroy)(cor_executor_t *ex);
  /* After a shutdown that timed out: logs (WARNING, each line starting
   * with prefix) every job still running or queued, with its function and
   * submission site; returns how many. May be NULL. */
  size_t (*report)(cor_executor_t *ex, const char *prefix);
  /* The repr's inside for the unclosed report:
   * "ThreadPoolExecutor max_workers=4 ...". Any thread. */
  void (*repr)(cor_executor_t *ex, cor__buf *out);
} cor__xops;

struct cor_executor {
  cor__obj obj; /* the application's references */
  const cor__xops *ops;
  int kind;
  unsigned max_workers;
  /* Internal references: 1 for the application's side (dropped when obj
   * reaches zero), 1 per live worker thread, 1 per posted drain. The pool's
   * memory goes when this reaches zero. */
  int iref;
  pthread_mutex_t ports_mu;
  cor__xport *ports; /* append-only; read without the lock (acquire) */
  cor__xport *last_port; /* cache for the submitting thread (atomic) */
  /* The application's pool until cor_executor_shutdown: reported if its
   * last reference goes (or the process exits) before (core/resource.c). A
   * loop's default pool is not tracked: the loop shuts it down. */
  cor__res res;
};

struct cor__xport {
  /* Workers CAS-push here, the loop exchanges it to NULL: own line. */
  cor__xjob *head COR_ALIGNED_CL;
  cor_loop_t *loop COR_ALIGNED_CL; /* a reference, dropped with the pool */
  cor_executor_t *ex;
  cor__xport *next;
};

/* What a finished job tells its loop. */
enum { COR__XJ_DONE = 0, COR__XJ_CANCEL, COR__XJ_DROP };

struct cor__xjob {
  struct cor_future fut; /* first: the job is its future's allocation */
  cor__fut_cb cancel_node; /* scheduled when the future is cancelled */
  cor__xjob *cnext;        /* link in the port's stack */
  cor__xport *port;
  /* Delivery on the loop thread: completes the future from the job. */
  void (*deliver)(cor__xjob *j);
  uint8_t outcome;     /* COR__XJ_*, set by the worker side */
  bool cancel_ran;     /* loop thread: the cancel node ran */
  bool release_in_cancel; /* loop thread: drop the job's ref there */
  int code;
  void *result;
  char *msg;
  const char *file;
  int line;
};

/* Base initialisation of a pool (obj, iref = 1, ports). */
int cor__executor_init(cor_executor_t *ex, const cor__xops *ops, int kind);
/* A pool object of `size` bytes whose first member is the executor, zeroed
 * and initialised; NULL with errno set. */
void *cor__executor_alloc(size_t size, const cor__xops *ops, int kind);
void cor__executor_iref_get(cor_executor_t *ex);
void cor__executor_iref_put(cor_executor_t *ex);
/* Tracks a pool the application made (from the public constructors, with
 * their caller's return address). */
void cor__executor_track(cor_executor_t *ex, const void *ra);
/* Frees the ports and their loop references (from destroy). */
void cor__executor_fini(cor_executor_t *ex);
/* The loop's default thread pool (made on first use): run_in_executor's
 * ex == NULL. NULL with errno on failure. */
cor_executor_t *cor__executor_default(cor_loop_t *loop);

/* The port of `ex` for `loop`, made on first use. NULL on ENOMEM. */
cor__xport *cor__executor_port(cor_executor_t *ex, cor_loop_t *loop);

/* Initialises the future part of a job allocated by the caller (size bytes,
 * job first) on loop, and links the cancel node. */
void cor__xjob_init(cor__xjob *j, cor_loop_t *loop, cor__xport *port,
                    void (*deliver)(cor__xjob *));
/* Any thread: hands finished jobs (a chain linked by cnext, first..last,
 * all of one port) back to their loop. */
void cor__xport_push(cor__xport *port, cor__xjob *first, cor__xjob *last);
/* Loop thread: completes j's future with (code, result, msg...) unless it
 * is already done, then drops the job's reference. Takes msg. */
void cor__xjob_finish(cor__xjob *j, int code, void *result, char *msg,
                      const char *file, int line);
/* Loop thread: drops the job's reference (deferred to the cancel node when
 * it is scheduled and has not run yet). */
void cor__xjob_release(cor__xjob *j);
/* On the job's loop, first thing when a finished job is delivered: a job
 * cancelled by shutdown(cancel_futures) is cancelled here, a dropped one
 * released. Returns true when it did either (the job is gone). */
bool cor__xjob_deliver_cancelled(cor__xjob *j);
/* Loop thread: delivers what sits in the ports of `ex` for `loop` now. */
/* True when a drain of `ex` to `loop` is posted and not yet run. */
bool cor__executor_drain_pending(cor_executor_t *ex, cor_loop_t *loop);

/* CPUs in this process's affinity mask (at least 1). */
unsigned cor__affinity_cpus(void);

/* ------------------------------------------------------------ hooks */

/* Shuts down the default thread pool of `loop` (if it has one), waiting for
 * its workers, and delivers the completions they handed over: when the loop
 * is not running and this thread may run it, by running it a few
 * iterations. Installed as cor__run_shutdown_hook (cor_run) and on loop
 * close; the runtime calls it for each of its loops (on the loop's thread,
 * after the loop stopped running, before it is closed). */
void cor__executor_shutdown_default(cor_loop_t *loop);

/* Process pool: job registry (executor/process_worker.c). */
const cor_process_job_def *cor__process_job_find(const char *name);

/* Frames between a pool and its workers, native byte order (same machine,
 * same program). A request is a header, the job name (name_len bytes, no
 * NUL) and the payload; a reply is a header, the message (msg_len bytes)
 * and the payload. */
typedef struct cor__preq {
  uint64_t seq;
  uint32_t name_len;
  uint32_t len;
} cor__preq;
typedef struct cor__prep {
  uint64_t seq;
  int32_t code;
  uint32_t msg_len;
  uint32_t len;
  uint32_t pad;
} cor__prep;

/* The environment variable that marks a worker process:
 * "<in fd>,<out fd>,<parent pid>,<max payload>". */
#define COR__PWORKER_ENV "CORIO_PROCESS_WORKER"
#define COR__PWORKER_IN_FD 3
#define COR__PWORKER_OUT_FD 4

#endif
