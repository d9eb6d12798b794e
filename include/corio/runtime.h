/* SPDX-License-Identifier: MIT */
/* corio: the per-core runtime, concurrent futures, and the bounded door.
 *
 * A runtime is N event loops, each run by its own thread, loop i pinned to
 * the i-th CPU of the process's affinity mask. Plain threads hand coroutines
 * to those loops (cor_runtime_spawn, cor_run_coroutine_threadsafe) and get a
 * concurrent future back: a thread-safe future that any thread may block on
 * (cor_cfuture_result) and any task on any loop may await without blocking
 * its loop (cor_await_cfuture).
 *
 * Threads: every call here may be made from any thread unless its comment
 * says otherwise.
 *
 * Fork: a child forked while a runtime exists has none of its loop threads.
 * In the child every call on that runtime, on its loops and on any concurrent
 * future fails with COR_ECLOSED (detected with pthread_atfork), and the first
 * such call logs why; nothing waits on a lock or a thread that the child does
 * not have. Create runtimes after fork, or exec.
 */
#ifndef CORIO_RUNTIME_H
#define CORIO_RUNTIME_H

#include <corio/common.h>
#include <corio/future.h>
#include <corio/loop.h>
#include <corio/task.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_runtime cor_runtime_t;
typedef struct cor_cfuture cor_cfuture_t;

/* ------------------------------------------------------------ runtime */

/* Runtime options; a zeroed struct (or NULL) gives the defaults. */
typedef struct cor_runtime_opts {
  /* Loops (threads). 0 = the number of CPUs in this process's affinity mask
   * (sched_getaffinity), so it follows taskset, cpusets and containers. */
  unsigned nloops;
  /* Pinning: 0 = default (on), > 0 on, < 0 off. On: loop i runs on the
   * (i mod n)-th CPU of the affinity mask, n the CPUs in the mask. */
  int pin;
  /* Debug mode on every loop (also on with CORIO_DEBUG=1). */
  bool debug;
  /* Task stacks on every loop; 0 = the loop default. */
  size_t stack_size;
  /* Per-loop limit of cross-thread callbacks posted and not yet run, as
   * enforced by cor_try_call_soon_threadsafe and
   * cor_call_soon_threadsafe_wait. 0 = unbounded (the default, as asyncio). */
  size_t queue_limit;
  /* Idle spin of each loop before it sleeps (cor_loop_opts.spin_seconds). */
  double spin_seconds;
  /* Deadline that cor_runtime_run gives its shutdown; 0 = 10 seconds. */
  double shutdown_timeout;
} cor_runtime_opts;

/* Creates the loops and starts their threads, which run at once. Every
 * catchable asynchronous signal is blocked in those threads (they are born
 * with it blocked), so a process-directed signal reaches a thread of the
 * application, and a handler added on any loop with
 * cor_loop_add_signal_handler is still run by that loop, whichever thread
 * the kernel picks (corio redirects it to its loop). Synchronous fault signals
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT) stay unblocked.
 * The caller holds one reference (cor_release; releasing the last one shuts
 * the runtime down first if that was not done). Returns NULL with errno
 * EINVAL (nloops > 1024), ENOMEM, EAGAIN (no thread), or 4004 (-COR_ECLOSED)
 * in a forked child. Any thread, including a loop thread of another runtime
 * (not one of its own, obviously). */
COR_EXTERN cor_runtime_t *cor_runtime_new(const cor_runtime_opts *opts);

/* Number of loops. 0 for NULL. */
COR_EXTERN unsigned cor_runtime_nloops(const cor_runtime_t *rt);
/* Loop i (borrowed: valid while the caller holds the runtime), NULL when i
 * is out of range. The loop belongs to its thread: other threads may only
 * make the _threadsafe calls on it. */
COR_EXTERN cor_loop_t *cor_runtime_loop(const cor_runtime_t *rt, unsigned i);
/* The CPU loop i is pinned to, or -1 when not pinned (or out of range). */
COR_EXTERN int cor_runtime_loop_cpu(const cor_runtime_t *rt, unsigned i);
/* The runtime whose loop thread calls this (borrowed), or NULL on any other
 * thread. With `index` not NULL, stores the loop's index there. */
COR_EXTERN cor_runtime_t *cor_runtime_current(unsigned *index);

/* Runs coro as a task on the least-loaded loop and returns its concurrent
 * future (a join handle: result, cancel, await from any loop). Load is the
 * number of live tasks the runtime placed on each loop (spawned and not yet
 * finished, one atomic counter per loop, on its own cache line); ties go to
 * a rotating start so equal loops share the work. Tasks that loop code
 * creates itself with cor_create_task stay on their parent's loop and are
 * not counted. Consumes coro, even on failure. `name` is copied (NULL:
 * "Task-N"). From a loop thread spawning onto its own loop the task is
 * created at once; otherwise it is created by a callback posted through the
 * loop's cross-thread queue (no lock, no syscall while the loop is awake).
 * The caller holds one reference to the future. Returns NULL with errno
 * EINVAL (NULL rt or coro, consumed coro), ENOMEM, or 4004 (-COR_ECLOSED:
 * the runtime is shutting down or closed, or a forked child). */
COR_EXTERN cor_cfuture_t *cor_runtime_spawn(cor_runtime_t *rt,
                                            cor_coro_t *coro,
                                            const char *name);
/* As cor_runtime_spawn, on loop i (EINVAL when out of range). */
COR_EXTERN cor_cfuture_t *cor_runtime_spawn_on(cor_runtime_t *rt, unsigned i,
                                               cor_coro_t *coro,
                                               const char *name);

/* Runs main(arg) as a task on loop 0, blocks the calling thread until it
 * returns, then shuts the runtime down as cor_run does (cor_runtime_shutdown
 * with opts.shutdown_timeout). Returns main's code and its result in *result
 * (result may be NULL); the shutdown's -ETIMEDOUT is logged, not returned.
 * COR_ETHREAD on a loop thread of this runtime (it would deadlock); -EINVAL;
 * COR_ECLOSED when the runtime is already shut down. The runtime stays
 * allocated until its last reference is released. */
COR_EXTERN int cor_runtime_run(cor_runtime_t *rt, cor_fn main, void *arg,
                               void **result);

/* Shuts the runtime down within `timeout` seconds (< 0 or INFINITY: no
 * limit), in phases:
 *   1. stop accepting work: spawns and run_coroutine_threadsafe onto its
 *      loops fail with COR_ECLOSED from now on;
 *   2. cancel every task on every loop (tasks created during clean-up too)
 *      and let them finish their clean-up, until none is left or 90% of the
 *      time is spent;
 *   3. stop the loops; each drains its cross-thread queue and ready
 *      callbacks (bounded), shuts its default executor down (within 90% of
 *      the time left), and closes;
 *   4. join the loop threads;
 *   5. report, through cor_log (WARNING), lines starting with
 *      "runtime shutdown: loop N: ": every task that did not finish in time
 *      with its name and creation site; every handle (timer or ready
 *      callback) that will never run, as "<Handle cb() created at f.c:12>"
 *      (the site in debug mode); every executor job still running or
 *      queued, as "executor job fn() submitted at f.c:40 still running";
 *      then one summary line; and loop threads that did not stop (stuck in
 *      a callback: they are left running, detached, and their loops are
 *      leaked). A job still running finishes later on its worker; its
 *      result is dropped.
 * Never waits past the deadline. Returns 0 when everything finished in
 * time, -ETIMEDOUT when something had to be destroyed or left behind, 0 on a
 * runtime already shut down, -EINVAL for NULL, COR_ETHREAD from one of this
 * runtime's loop threads (it would wait for itself). Any other thread. */
COR_EXTERN int cor_runtime_shutdown(cor_runtime_t *rt, double timeout);

/* Per-loop counters, readable from any thread while the loop runs (relaxed
 * reads: a value may be a little stale). */
typedef struct cor_loop_counters {
  cor_loop_stats loop;  /* iterations, callbacks, wake-ups written/saved... */
  uint64_t tasks;       /* live tasks the runtime placed here (its load) */
  uint64_t ready;       /* ready callbacks as the last iteration ended */
  uint64_t queue_depth; /* cross-thread callbacks posted, not yet run: exact
                           with a queue limit; otherwise sampled, low by at
                           most 15 per posting thread */
  uint64_t busy_ns;     /* loop.busy_ns: wall time running, not idle */
  uint64_t idle_ns;     /* loop.idle_ns: spinning idle or asleep in the
                           poller; busy_ns + idle_ns is the loop's time in
                           run_forever (see cor_loop_stats) */
} cor_loop_counters;
/* Fills *out for loop i. 0, -EINVAL (NULL, i out of range). */
COR_EXTERN int cor_runtime_loop_counters(const cor_runtime_t *rt, unsigned i,
                                         cor_loop_counters *out);

/* ------------------------------------------------------------ cfutures */

/* A concurrent future (concurrent.futures.Future): thread-safe, counted
 * (cor_retain/cor_release), completed exactly once with a result, an error
 * or a cancellation. */

/* Runs coro as a task on `loop` (which may be any loop: a runtime's or one
 * the application runs itself) and returns a concurrent future for its
 * outcome. Consumes coro, even on failure. The task is created by a
 * callback posted with cor_call_soon_threadsafe (at once when the caller is
 * loop's own thread). If loop closes before the task finished, the future
 * completes with COR_ECLOSED. Returns NULL with errno EINVAL (NULL loop or
 * coro, consumed coro), ENOMEM, 4004 (-COR_ECLOSED: loop closed, its
 * runtime shutting down, or a forked child). Any thread. */
COR_EXTERN cor_cfuture_t *cor_run_coroutine_threadsafe(cor_coro_t *coro,
                                                       cor_loop_t *loop);

/* A pending concurrent future that the application completes itself,
 * from any thread (a C library's callback thread, say): awaited with
 * cor_await_cfuture or cor_cfuture_result like any other. The caller holds
 * one reference. NULL with errno ENOMEM, 4004 (-COR_ECLOSED) in a forked
 * child. Any thread. */
COR_EXTERN cor_cfuture_t *cor_cfuture_new(void);
/* Completes cf with `value`: waiters wake, done callbacks run on the
 * calling thread. Returns 0; -EINVAL (logged) when cf is NULL or already
 * done or cancelled (a second completion changes nothing). Any thread. */
COR_EXTERN int cor_cfuture_set_result(cor_cfuture_t *cf, void *value);
/* Completes cf with the error `code` (< 0; -ECANCELED cancels it) and a
 * copy of `msg` (may be NULL), which cor_cfuture_message returns and
 * cor_await_cfuture re-raises. Returns 0; -EINVAL (logged) when cf is
 * NULL, code >= 0, or cf is already done or cancelled. Any thread. */
COR_EXTERN int cor_cfuture_set_error(cor_cfuture_t *cf, int code,
                                     const char *msg);

/* Blocks the calling thread until cf is done or `timeout` seconds passed
 * (< 0 or INFINITY: no limit; 0: do not wait). The waiter spins ~20 us (a
 * result that comes back that fast costs no syscall), then sleeps on a
 * futex: no busy-wait. Returns cf's code: 0 with the result in *result
 * (result may be NULL), the task's error code, -ECANCELED; -ETIMEDOUT when
 * the time passed (cf keeps running: cancel it if you want it stopped);
 * -EINVAL for NULL; COR_ETHREAD when cf is not done and the caller is the
 * loop that must complete it (it would deadlock: await it with
 * cor_await_cfuture); COR_ECLOSED in a forked child. Any thread. Blocking a
 * loop thread (of another loop) is allowed but stalls that loop: tasks
 * should use cor_await_cfuture. */
COR_EXTERN int cor_cfuture_result(cor_cfuture_t *cf, double timeout,
                                  void **result);

/* Inside a task, on any loop: suspends the task (not its loop) until cf is
 * done and returns as cor_cfuture_result. The wake-up comes through the
 * task's loop's cross-thread queue, so it costs no syscall while that loop
 * is awake. If the awaiting task is cancelled, cf is cancelled too (as
 * asyncio's wrap_future) and -ECANCELED is returned. COR_ENOTASK outside a
 * task; -EINVAL for NULL; -ENOMEM. */
COR_EXTERN int cor_await_cfuture(cor_cfuture_t *cf, void **result);

/* Cancels cf: a pending cf becomes cancelled at once (waiters get
 * -ECANCELED, done callbacks run on the calling thread) and the task behind
 * it gets a cancellation request on its loop (asyncio: the task may clean
 * up; its outcome is then dropped). Returns 0, or -EINVAL when cf is
 * already done (concurrent.futures' False) or NULL; -EBUSY when cf belongs
 * to an executor job that is already running (it cannot be cancelled);
 * COR_ECLOSED in a forked child. Any thread. */
COR_EXTERN int cor_cfuture_cancel(cor_cfuture_t *cf);

/* True once cf has a result, an error, or was cancelled. Any thread. */
COR_EXTERN bool cor_cfuture_done(const cor_cfuture_t *cf);
COR_EXTERN bool cor_cfuture_cancelled(const cor_cfuture_t *cf);
/* The error or cancel message, or NULL; valid while the caller holds cf and
 * cf is done. Any thread. */
COR_EXTERN const char *cor_cfuture_message(const cor_cfuture_t *cf);

/* A done callback: receives cf (borrowed for the call) and its arg. */
typedef void (*cor_cfuture_done_fn)(cor_cfuture_t *cf, void *arg);
/* Adds cb(cf, arg), run once when cf completes, on the thread that
 * completes it: the target loop's thread for a task's outcome (so it must
 * be quick and must not block: post elsewhere if it has real work), the
 * cancelling thread for a cancellation, a worker thread for an executor
 * job. When cf is already done, runs cb now on the calling thread.
 * Callbacks run in the order added. Returns 0, -EINVAL, -ENOMEM,
 * COR_ECLOSED in a forked child. Any thread. */
COR_EXTERN int cor_cfuture_add_done_callback(cor_cfuture_t *cf,
                                             cor_cfuture_done_fn cb,
                                             void *arg);

/* ------------------------------------------------------------ bounded door */

/* The bounded forms of cor_call_soon_threadsafe, for loops that have a
 * queue limit (cor_runtime_opts.queue_limit). The depth counted is every
 * cross-thread callback posted to the loop and not yet run, whichever call
 * posted it; cor_call_soon_threadsafe itself never refuses nor waits (corio
 * posts its own completions and wake-ups through it, which must never be
 * lost or block a loop), so only these two forms are held to the limit.
 * On a loop without a limit both behave as cor_call_soon_threadsafe. */

/* Posts cb(arg), or returns -EAGAIN at once when the loop's queue is at its
 * limit. Otherwise as cor_call_soon_threadsafe (0, -EINVAL, -ENOMEM,
 * COR_ECLOSED). Any thread. */
COR_EXTERN int cor_try_call_soon_threadsafe(cor_loop_t *loop, cor_callback cb,
                                            void *arg);
/* Posts cb(arg), waiting up to `timeout` seconds (< 0 or INFINITY: no limit)
 * for room when the queue is at its limit; the waiter sleeps on a futex the
 * loop wakes after each batch it ran. Returns as
 * cor_try_call_soon_threadsafe, with -ETIMEDOUT instead of -EAGAIN, and
 * COR_ETHREAD when called on the loop's own thread with the queue full (it
 * would wait for itself). Any thread; on another loop's thread it stalls that
 * loop while it waits. */
COR_EXTERN int cor_call_soon_threadsafe_wait(cor_loop_t *loop,
                                             cor_callback cb, void *arg,
                                             double timeout);

#ifdef __cplusplus
}
#endif
#endif
