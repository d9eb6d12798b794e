/* SPDX-License-Identifier: MIT */
/* corio internal declarations for executor/: the concurrent future and the
 * runtime's hooks. Not installed. */
#ifndef CORIO_EXECUTOR_INTERNAL_H
#define CORIO_EXECUTOR_INTERNAL_H

#include "base/atomics.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/object.h"
#include "task/task_internal.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ futex */

/* Sleeps while *addr == val, until woken or the absolute CLOCK_MONOTONIC
 * time `deadline_ns` (UINT64_MAX: no limit). Returns 0 when woken (or the
 * value differed), -ETIMEDOUT, -EINTR. Private futexes: never shared across
 * processes. */
static inline int cor__futex_wait(int *addr, int val, uint64_t deadline_ns) {
  struct timespec ts, *tp = NULL;
  if (deadline_ns != UINT64_MAX) {
    ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
    ts.tv_nsec = (long)(deadline_ns % 1000000000u);
    tp = &ts;
  }
  /* WAIT_BITSET takes an absolute time on CLOCK_MONOTONIC (no
   * FUTEX_CLOCK_REALTIME): no drift across spurious wake-ups. */
  long r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET_PRIVATE, val, tp, NULL,
                   FUTEX_BITSET_MATCH_ANY);
  if (r == 0 || errno == EAGAIN)
    return 0;
  return errno == ETIMEDOUT ? -ETIMEDOUT : -EINTR;
}
static inline void cor__futex_wake_all(int *addr) {
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
/* A public time-out as the deadline the blocking waits here take:
 * cor__timeout_deadline's rule, with UINT64_MAX for "no limit". Returns 0
 * or -EINVAL (NaN). */
static inline int cor__deadline_after(double seconds, uint64_t *deadline) {
  int rc = cor__timeout_deadline(seconds, deadline);
  if (rc == 0 && *deadline == 0)
    *deadline = UINT64_MAX;
  return rc;
}

/* The runtime's per-loop part (loop->runtime points at it). */
typedef struct cor__rt_loop cor__rt_loop;

/* ------------------------------------------------------------ cfutures */

enum {
  COR__CF_PENDING = 0,
  COR__CF_RUNNING,    /* an executor job started: cancel refuses (-EBUSY) */
  COR__CF_COMPLETING, /* one completer won; the outcome is being written */
  COR__CF_DONE,
  COR__CF_CANCELLED,
};

/* An internal done callback, linked in the cfuture's list. `drop` runs
 * instead of `fn` when the cfuture is freed with the node never run (only
 * possible for a cfuture freed while pending). */
typedef struct cor__cf_cb cor__cf_cb;
struct cor__cf_cb {
  cor__cf_cb *next;
  void (*fn)(cor_cfuture_t *cf, cor__cf_cb *self);
  void (*drop)(cor__cf_cb *self);
  cor_cfuture_done_fn ucb; /* user callbacks: fn = the user trampoline */
  void *uarg;
};

/* Notifies the source of a cfuture that the cfuture was cancelled (a
 * run_coroutine_threadsafe cancels its task; an executor drops a queued job).
 * Called once, on the cancelling thread, after the state changed and
 * outside every lock. */
typedef void (*cor__cf_cancel_fn)(cor_cfuture_t *cf, void *arg);

/* No lock: the state word decides who completes (one CAS from PENDING or
 * RUNNING to COMPLETING), and the callback list is a lock-free stack that
 * the completer closes with one exchange. The first cache line (the
 * allocation is line-aligned) holds everything a completion writes and a
 * waiter reads, so a completion on another core moves one line. */
struct cor_cfuture {
  cor__obj obj;
  /* COR__CF_*: moved to COMPLETING by the one completer (CAS), then to
   * DONE/CANCELLED with an exchange (a full barrier that orders the
   * outcome fields before it and the `sleepers` load after it); read by
   * waiters, and the futex word they sleep on. */
  int state;
  /* Threads asleep (or about to sleep) on the futex: the completer calls
   * futex_wake only when this is non-zero, so a waiter that caught the
   * result while spinning costs the completer no syscall. */
  int sleepers;
  /* Callbacks, newest first (pushed with a CAS); the completer exchanges
   * it for COR__CF_CBS_CLOSED and runs them oldest first. */
  cor__cf_cb *cbs;
  int code;
  int line;
  void *result;
  char *msg;
  const char *file;
  /* The loop that completes it (run_coroutine_threadsafe), for the
   * COR_ETHREAD check of cor_cfuture_result; NULL for executor jobs. */
  struct cor_loop *loop;
  /* --- second line: set before the cfuture is shared */
  cor__cf_cancel_fn cancel_fn;
  void *cancel_arg;
  /* Frees what the creator put after this struct; runs when the last
   * reference goes (any thread). May be NULL. */
  void (*fini)(cor_cfuture_t *cf);
  void *mem; /* the allocation (the struct is aligned inside it) */
  /* A spare awaiter record inside the creator's part (run_coroutine_
   * threadsafe's bridge), or NULL. Set before cf is shared, read-only
   * after: the record's own flag says whether an await took it. */
  void *aw_slot;
};
#define COR__CF_CBS_CLOSED ((cor__cf_cb *)1)

/* Allocates a pending cfuture of `size` bytes (>= sizeof(struct
 * cor_cfuture): the rest is the creator's, freed with it). The caller holds
 * one reference. NULL with errno ENOMEM, or 4004 (-COR_ECLOSED) in a forked
 * child. Any thread. */
cor_cfuture_t *cor__cfuture_alloc(size_t size);
#define cor__cfuture_new() cor__cfuture_alloc(sizeof(struct cor_cfuture))

/* Completes cf from any thread: wakes every waiter and runs the done
 * callbacks on the calling thread, in order. `msg` is copied (may be NULL);
 * file/line name where the error was raised (may be NULL/0). Each returns 0,
 * or -EINVAL when cf is already done or cancelled (nothing changes; the
 * usual case for a job whose cfuture was cancelled while it ran). */
int cor__cfuture_set_result(cor_cfuture_t *cf, void *value);
int cor__cfuture_set_error(cor_cfuture_t *cf, int code, const char *msg,
                           const char *file, int line);
int cor__cfuture_set_cancelled(cor_cfuture_t *cf, const char *msg);
/* concurrent.futures' set_running_or_notify_cancel, for executors: moves a
 * pending cfuture to RUNNING (from then on cancel returns -EBUSY) and
 * returns true; false when it was cancelled (the job must not run). */
bool cor__cfuture_set_running(cor_cfuture_t *cf);
/* Sets the source's cancel notification, before cf is shared. */
void cor__cfuture_set_cancel_fn(cor_cfuture_t *cf, cor__cf_cancel_fn fn,
                                void *arg);
/* Adds an internal callback node (no allocation). Runs fn now, on the
 * calling thread, when cf is already done. */
void cor__cfuture_add_cb(cor_cfuture_t *cf, cor__cf_cb *n);

/* ------------------------------------------------------------ bridges */

/* Runs coro as a task on loop and returns a cfuture for its outcome (the
 * body of cor_run_coroutine_threadsafe and of the runtime's spawns). `rl` is
 * the runtime's part of loop (NULL for a lone loop); the caller has already
 * admitted the task there (cor__rt_task_admit), and the bridge drops that
 * count when the task ends. Consumes coro. NULL with errno on failure (the
 * admission is then undone). Any thread. */
cor_cfuture_t *cor__rct_submit(cor_coro_t *coro, struct cor_loop *loop,
                               cor__rt_loop *rl, const char *name,
                               const char *call);

/* ------------------------------------------------------------ fork */

/* Set in a child forked while a runtime existed (pthread_atfork): every
 * runtime and cfuture call then fails with COR_ECLOSED. */
extern int cor__forked_child;
/* Logs, once, why a call failed in a forked child; returns COR_ECLOSED. */
int cor__fork_error(const char *call);
static inline bool cor__in_forked_child(void) {
  return COR_UNLIKELY(ck_pr_load_int(&cor__forked_child) != 0);
}

/* ------------------------------------------------------------ runtime */

/* A task placed by the runtime on loop->runtime ended (or was never made):
 * drops that loop's load by one. Any thread. */
void cor__rt_task_ended(cor__rt_loop *rl);
/* Counts a new task placed on a runtime loop; false when its runtime no
 * longer accepts work. */
bool cor__rt_task_admit(cor__rt_loop *rl);
/* True while the runtime of rl accepts work. */
bool cor__rt_accepting(cor__rt_loop *rl);

/* ---- executors (executor/executor.c; block owned by the executors work) */
/* Shuts down loop's default thread pool (if it has one), waits for its
 * workers, and, when the loop is not running and this thread may run it,
 * runs the loop a few iterations to deliver their last completions. The
 * runtime calls it for each loop, on that loop's thread, after the loop
 * stopped and before it is closed. cor_run reaches it through
 * cor__run_shutdown_hook. */
void cor__executor_shutdown_default(struct cor_loop *loop);
/* The same within a deadline (cor__now_ns; UINT64_MAX = none): when the
 * workers are not done by then, logs each job still running or queued
 * (WARNING, lines starting with `prefix`: the job's function and where it
 * was submitted) and returns how many; they finish later, and what they
 * hand back to a closed loop is dropped. */
size_t cor__executor_shutdown_default_until(struct cor_loop *loop,
                                            uint64_t deadline,
                                            const char *prefix);
/* ---- end executors */

#endif
