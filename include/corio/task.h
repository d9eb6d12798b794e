/* SPDX-License-Identifier: MIT */
/* corio: coroutines and tasks, as asyncio's, on their own stacks.
 *
 * A coroutine object (cor_coro) is a function and its argument, waiting to
 * run. A task runs one on a stack of its own, scheduled by the loop: inside
 * it, cor_await suspends the task (not the thread) until a future is done.
 * Every call here belongs to the loop's owning thread, except those marked
 * "Any thread"; the calls made "inside a task" act on the calling task and
 * check the loop of the future or group they are given. From another
 * thread while the loop runs, a call returns COR_ETHREAD (or NULL / 0 with
 * errno 4001) and logs an ERROR (see corio/common.h).
 *
 * Cancellation is asyncio's: cor_task_cancel makes the await the task is
 * suspended in return -ECANCELED (and cancels what it awaited); a task may
 * clean up and return, and ends cancelled when its body returns -ECANCELED.
 */
#ifndef CORIO_TASK_H
#define CORIO_TASK_H

#include <corio/common.h>
#include <corio/future.h>
#include <corio/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_coro cor_coro_t;
typedef struct cor_task cor_task_t;
typedef struct cor_taskgroup cor_taskgroup_t;
typedef struct cor_as_completed cor_as_completed_t;
typedef struct cor_timeout cor_timeout_t;

/* ------------------------------------------------------------ coroutines */

/* A coroutine object for fn(arg), recording "fn", the file and the line. It
 * must be consumed exactly once: by cor_create_task, cor_await_coro,
 * cor_taskgroup_spawn or cor_run_coroutine_threadsafe (each consumes it even
 * when it fails); consuming it again returns -EINVAL (NULL/EINVAL for the
 * constructors). One created while a loop runs on this thread belongs to
 * that loop until consumed: closing the loop reports and frees it (WARNING
 * "file.c:7: RuntimeWarning: coroutine 'fn' was never awaited", with the
 * creation backtrace in debug mode). One created on a thread where no loop
 * runs (before cor_run, on a plain thread) and never consumed is reported
 * the same way at exit (debug mode there: CORIO_DEBUG). Returns NULL with
 * errno EINVAL (fn NULL) or ENOMEM. Any thread. */
#define cor_coro(fn, arg) cor_coro_new_at((fn), (arg), #fn, __FILE__, __LINE__)
COR_EXTERN cor_coro_t *cor_coro_new_at(cor_fn fn, void *arg, const char *name,
                                       const char *file, int line);
/* Discards a coroutine without running it (asyncio's coro.close()). Returns
 * 0, or -EINVAL when already consumed or closed. Thread that made it. */
COR_EXTERN int cor_coro_close(cor_coro_t *coro);

/* ------------------------------------------------------------ tasks */

/* Schedules coro as a task on its own stack (from the loop's pool) on `loop`
 * (NULL: the loop running on this thread); it starts on a later iteration.
 * `name` is copied; NULL gives "Task-N". The caller holds one reference; the
 * loop holds another while the task is pending, so releasing yours at once
 * is fine (fire and forget). Returns NULL with errno EINVAL (coro NULL or
 * already consumed, no loop), ENOMEM (no memory or no stack), or 4004
 * (-COR_ECLOSED: the loop is closed). Owner thread (else NULL, errno 4001;
 * coro consumed). */
COR_EXTERN cor_task_t *cor_create_task(cor_loop_t *loop, cor_coro_t *coro,
                                       const char *name);

/* The task as a future (a task is a future: same object, same reference;
 * nothing is handed over). Never NULL for a task. Any thread (a cast). */
COR_EXTERN cor_future_t *cor_task_future(cor_task_t *task);

/* The task's name (valid while the caller holds the task). Owner thread
 * (else NULL, errno 4001). */
COR_EXTERN const char *cor_task_name(cor_task_t *task);
/* Renames it (copied). 0, -EINVAL, -ENOMEM. Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_task_set_name(cor_task_t *task, const char *name);

/* The task running on this thread (borrowed), NULL outside a task. Any
 * thread. */
COR_EXTERN cor_task_t *cor_current_task(void);

/* The loop's pending (not done) tasks (NULL: the running loop), in creation
 * order. Stores at most cap of them in out, each a new reference the caller
 * releases, and returns how many are pending (which may exceed cap). out
 * may be NULL when cap is 0 (a count); NULL with cap > 0 returns 0 with
 * errno EINVAL and an ERROR record. Owner thread (else 0, errno 4001). */
COR_EXTERN size_t cor_all_tasks(cor_loop_t *loop, cor_task_t **out,
                                size_t cap);

/* ------------------------------------------------------------ awaiting */

/* Where a task is suspended. The suspending calls below (cor_await,
 * cor_sleep, cor_yield, cor_wait_for, cor_gather, cor_taskgroup_wait) are
 * macros that pass the call's __FILE__ and __LINE__ to their _at function,
 * which records them for the reports ("coro=<fn() running at file.c:12>",
 * the task dump's "awaiting at"). A return address could not do it: the
 * compiler turns `return cor_await(f, NULL);` into a jump, leaving no
 * return address in the caller. Each is also a real function of the same
 * name, for function pointers and other languages (and (cor_await)(f, r)
 * in C); called that way, the site is taken from the return address, which
 * is wrong when that call is a tail call. The _at functions are for
 * wrappers that pass their own caller's site on; file must outlive the
 * suspension (a string literal). */

/* Inside a task: suspends it until fut is done, then returns fut's code, its
 * result in *result (result may be NULL) and marks it retrieved. A done
 * future returns at once without suspending. Returns -ECANCELED when the
 * awaiting task is cancelled (the cancellation is passed on to fut); -EINVAL
 * (NULL, a future of another loop even when done, the task awaiting
 * itself); COR_ETHREAD
 * (logged) when fut's loop runs on another thread; COR_ENOTASK outside a
 * task. */
COR_EXTERN int cor_await(cor_future_t *fut, void **result);
COR_EXTERN int cor_await_at(cor_future_t *fut, void **result,
                            const char *file, int line);
#define cor_await(fut, result) cor_await_at((fut), (result), __FILE__, __LINE__)
#define cor_await_task(task, result) cor_await(cor_task_future(task), (result))

/* Inside a task: runs the coroutine to completion on the current task's
 * stack (as `await coro()`) and returns its code and result. Consumes coro.
 * -EINVAL (NULL or consumed); COR_ENOTASK outside a task (coro consumed). */
COR_EXTERN int cor_await_coro(cor_coro_t *coro, void **result);

/* Inside a task: suspends for `seconds` (<= 0: as cor_yield). Returns 0,
 * -ECANCELED when cancelled, COR_ENOTASK outside a task. */
COR_EXTERN int cor_sleep(double seconds);
COR_EXTERN int cor_sleep_at(double seconds, const char *file, int line);
#define cor_sleep(seconds) cor_sleep_at((seconds), __FILE__, __LINE__)
/* Inside a task: lets every ready callback and task run once, then resumes
 * (asyncio's sleep(0)). 0, -ECANCELED, COR_ENOTASK. */
COR_EXTERN int cor_yield(void);
COR_EXTERN int cor_yield_at(const char *file, int line);
#define cor_yield() cor_yield_at(__FILE__, __LINE__)

/* ------------------------------------------------------------ cancelling */

/* Requests cancellation: the await (or sleep, yield) the task is suspended
 * in returns -ECANCELED, and the future it awaited is cancelled too; a task
 * not yet started or running now sees -ECANCELED at its next suspension.
 * The task may catch it, clean up and return anything; if its body returns
 * -ECANCELED the task ends cancelled. Each request counts (see
 * cor_task_cancelling). msg (copied, may be NULL) becomes the cancelled
 * future's message. Returns 0, or -EINVAL when the task is done (asyncio's
 * False) or NULL. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_task_cancel(cor_task_t *task, const char *msg);
/* The number of cancel requests not withdrawn by cor_task_uncancel. Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN int cor_task_cancelling(const cor_task_t *task);
/* Withdraws one request (for code that turns a cancellation into something
 * else, as wait_for does); when none is left, a request not yet delivered is
 * dropped. Returns the number left. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_task_uncancel(cor_task_t *task);

/* ------------------------------------------------------------ composing */

/* Inside a task: awaits fut for at most `timeout` seconds (the rule of
 * common.h: 0 = do not wait, so a pending fut times out at once; < 0 or
 * COR_FOREVER = no limit; NaN = -EINVAL, logged). On time-out
 * cancels fut, waits until it finished its clean-up, and returns -ETIMEDOUT;
 * otherwise as cor_await. If the waiting task itself is cancelled, returns
 * -ECANCELED. COR_ETHREAD as cor_await; COR_ENOTASK outside a task. */
COR_EXTERN int cor_wait_for(cor_future_t *fut, double timeout, void **result);
COR_EXTERN int cor_wait_for_at(cor_future_t *fut, double timeout,
                               void **result, const char *file, int line);
#define cor_wait_for(fut, timeout, result)                                     \
  cor_wait_for_at((fut), (timeout), (result), __FILE__, __LINE__)

/* A future that completes as fut does, but whose cancellation leaves fut
 * running (asyncio.shield). The caller holds one reference. When fut is
 * already done, returns fut itself (a new reference). NULL with errno
 * EINVAL, ENOMEM. Owner thread (else NULL, errno 4001). */
COR_EXTERN cor_future_t *cor_shield(cor_future_t *fut);

/* Inside a task: waits until every one of the n futures is done and stores
 * each one's code in codes[i] and result in results[i] (either array may be
 * NULL), marking them retrieved (asyncio's return_exceptions=True). Returns
 * 0 once all are done, whatever their codes. If the gathering task is
 * cancelled, every child still pending is cancelled, their clean-up is
 * awaited, and it returns -ECANCELED. -EINVAL (NULL futs with n > 0, a
 * future of another loop); COR_ETHREAD as cor_await; COR_ENOTASK outside a
 * task. */
COR_EXTERN int cor_gather(cor_future_t **futs, size_t n, int *codes,
                          void **results);
COR_EXTERN int cor_gather_at(cor_future_t **futs, size_t n, int *codes,
                             void **results, const char *file, int line);
#define cor_gather(futs, n, codes, results)                                    \
  cor_gather_at((futs), (n), (codes), (results), __FILE__, __LINE__)

/* cor_wait's conditions (asyncio.FIRST_COMPLETED, FIRST_EXCEPTION,
 * ALL_COMPLETED). An "exception" is a future done with a non-zero code; a
 * cancelled one is not. */
enum { COR_FIRST_COMPLETED = 1, COR_FIRST_EXCEPTION = 2, COR_ALL_COMPLETED = 3 };

/* Inside a task: waits until `when` holds for the n futures (asyncio.wait):
 * one of them is done (COR_FIRST_COMPLETED), one ended with an error or all
 * are done (COR_FIRST_EXCEPTION), all are done (COR_ALL_COMPLETED), or until
 * `timeout` seconds passed (common.h's rule: 0 = look without waiting; < 0
 * or COR_FOREVER = no limit). Nothing is cancelled and no outcome is
 * retrieved: read them with cor_future_done / cor_future_result. *ndone (may
 * be NULL) receives how many of the n are done, a future listed twice
 * counting twice. Returns 0 when the condition holds (without suspending
 * when it held already), -ETIMEDOUT when the time-out came first,
 * -ECANCELED when the waiting task is cancelled (the futures are left
 * alone), -ENOMEM; -EINVAL (logged: futs NULL, n 0 as asyncio's
 * ValueError, an element NULL, of another loop or the calling task itself,
 * a bad `when`, a NaN timeout); COR_ETHREAD; COR_ENOTASK outside a task.
 * One allocation per call that suspends, none otherwise. */
COR_EXTERN int cor_wait(cor_future_t **futs, size_t n, int when,
                        double timeout, size_t *ndone);
COR_EXTERN int cor_wait_at(cor_future_t **futs, size_t n, int when,
                           double timeout, size_t *ndone, const char *file,
                           int line);
#define cor_wait(futs, n, when, timeout, ndone)                                \
  cor_wait_at((futs), (n), (when), (timeout), (ndone), __FILE__, __LINE__)

/* asyncio.as_completed: an iterator that hands back the n futures one by
 * one in the order they finish (those done already first, in the given
 * order). `timeout` (common.h's rule) runs from this call. The iterator
 * holds a reference to each future until it is released (cor_release); a
 * future listed twice is handed back twice. n may be 0. NULL with errno
 * EINVAL (logged: futs NULL with n > 0, an element NULL or of another loop,
 * no futures and no running loop, NaN timeout), ENOMEM, 4001 (wrong
 * thread). */
COR_EXTERN cor_as_completed_t *cor_as_completed_new(cor_future_t **futs,
                                                    size_t n, double timeout);
/* Hands back in *done the next finished future (one of futs, no new
 * reference: its outcome is read with cor_future_result or cor_await),
 * suspending the task until one finishes. Returns 0; COR_ECLOSED when all
 * were handed back; -ETIMEDOUT once the time-out passed (and at every later
 * call; futures that finished before it are still handed back first);
 * -ECANCELED when the task is cancelled (nothing is lost: the next call
 * goes on); -EBUSY when another task waits on the same iterator;
 * COR_ENOTASK outside a task when it would wait; -EINVAL (NULL, logged).
 * Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_as_completed_next(cor_as_completed_t *it,
                                     cor_future_t **done);
COR_EXTERN int cor_as_completed_next_at(cor_as_completed_t *it,
                                        cor_future_t **done, const char *file,
                                        int line);
#define cor_as_completed_next(it, done)                                        \
  cor_as_completed_next_at((it), (done), __FILE__, __LINE__)

/* Time-out scopes (asyncio.timeout, 3.11's rules), for a block of code in a
 * task:
 *
 *   cor_timeout_t *to = cor_timeout_enter(2.0);
 *   int rc = fetch_all(...);            // any number of awaits
 *   rc = cor_timeout_exit(to, rc);      // -ETIMEDOUT if the scope expired
 *
 * At the deadline the task is cancelled: the await it is in (or its next
 * one) returns -ECANCELED, and the code unwinds as for any cancellation.
 * cor_timeout_exit(to, rc) then turns that -ECANCELED into -ETIMEDOUT, but
 * only when the cancellation was this scope's own: a cancellation from
 * outside (cor_task_cancel, an enclosing scope) stays -ECANCELED, counted by
 * cor_task_cancelling. Scopes nest; each enter needs its exit, in the same
 * task, innermost first.
 *
 * cor_timeout_enter(delay): delay in seconds from now by common.h's rule
 * (0 = expires at once: the first await is cancelled; < 0 or COR_FOREVER =
 * no deadline until rescheduled). NULL with errno EINVAL (NaN, logged),
 * ENOMEM, 4002 (COR_ENOTASK: outside a task, logged). */
COR_EXTERN cor_timeout_t *cor_timeout_enter(double delay);
/* As cor_timeout_enter with a deadline in loop time (cor_loop_time): a time
 * already past expires at once; COR_FOREVER is no deadline. */
COR_EXTERN cor_timeout_t *cor_timeout_enter_at(double when);
/* Moves the deadline to loop time `when` (COR_FOREVER: none). 0; -EPERM
 * (logged) when the scope expired already (asyncio's RuntimeError);
 * -EINVAL (NULL, NaN; logged). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_timeout_reschedule(cor_timeout_t *t, double when);
/* The deadline in loop time, COR_FOREVER for none; NaN for NULL (logged).
 * Owner thread (else NaN, errno 4001). */
COR_EXTERN double cor_timeout_when(const cor_timeout_t *t);
/* True once the deadline passed and the task was cancelled for it. Owner
 * thread (else false, errno 4001). */
COR_EXTERN bool cor_timeout_expired(const cor_timeout_t *t);
/* Leaves the scope and frees t: returns -ETIMEDOUT when rc is -ECANCELED
 * and the cancellation was this scope's own (the request is withdrawn, as
 * cor_task_uncancel), else rc unchanged. -EINVAL (logged) for NULL, or when
 * called from a task other than the one that entered (t is freed all the
 * same). Owner thread (else COR_ETHREAD, t not freed). */
COR_EXTERN int cor_timeout_exit(cor_timeout_t *t, int rc);

/* A task group (asyncio.TaskGroup), made inside a task (its parent): tasks
 * spawned in it are awaited by cor_taskgroup_wait. The first child to fail
 * (an error other than cancellation) cancels every other child and, if the
 * parent is not yet in cor_taskgroup_wait, the parent too (its current await
 * returns -ECANCELED: it should go on to cor_taskgroup_wait, which withdraws
 * that request). Nothing outlives the group: wait returns only when every
 * child is done. NULL with errno 4002 (-COR_ENOTASK) outside a task,
 * ENOMEM. */
COR_EXTERN cor_taskgroup_t *cor_taskgroup_new(void);
/* Creates a task in the group (consumes coro) and returns a reference to it
 * (release it when done with it; the group keeps its own). NULL with errno
 * EINVAL (NULL group or coro, group already waited), ECANCELED (the group
 * is shutting down after a failure), or as cor_create_task. The group's
 * loop's thread (else NULL, errno 4001; coro consumed). */
COR_EXTERN cor_task_t *cor_taskgroup_spawn(cor_taskgroup_t *group,
                                           cor_coro_t *coro, const char *name);
/* In the parent task: waits until every child is done, then frees the
 * group. Returns 0; the first child's error code (its message is recorded
 * on the parent as by cor_fail); -ECANCELED when the parent was cancelled
 * from outside (the children are cancelled and awaited first); -EINVAL
 * (NULL, or not the parent task); COR_ETHREAD (logged) from a task of
 * another loop while the group's runs; COR_ENOTASK outside a task. */
COR_EXTERN int cor_taskgroup_wait(cor_taskgroup_t *group);
COR_EXTERN int cor_taskgroup_wait_at(cor_taskgroup_t *group, const char *file,
                                     int line);
#define cor_taskgroup_wait(group)                                              \
  cor_taskgroup_wait_at((group), __FILE__, __LINE__)

/* ------------------------------------------------------------ running */

/* Usable bytes of the stacks of tasks created on `loop` from now on (rounded
 * up to pages; at least 16 KiB); a PROT_NONE guard page sits below each.
 * Default 64 KiB (4x under ASan, 2x under TSan): see ARCHITECTURE.md. Only
 * touched pages cost memory. Returns 0, -EINVAL, -ENOMEM. Owner thread
 * (else COR_ETHREAD; get: 0, errno 4001). */
COR_EXTERN int cor_loop_set_task_stack_size(cor_loop_t *loop, size_t bytes);
COR_EXTERN size_t cor_loop_get_task_stack_size(cor_loop_t *loop);

typedef struct cor_run_opts {
  bool debug;        /* debug mode for the loop */
  size_t stack_size; /* task stacks; 0 = default */
  void **result;     /* if not NULL, receives main's result */
} cor_run_opts;

/* asyncio.run: makes a loop, runs main(arg) as a task until it returns,
 * cancels every task still pending and runs the loop until they finished
 * their clean-up (errors they end with are reported), shuts the default
 * executor down, closes and frees the loop. Returns main's code (its result
 * in *opts->result); -EBUSY when a loop already runs on this thread; -ENOMEM
 * and the like when the loop cannot be made. opts may be NULL. Any thread
 * (the loop is its own). */
COR_EXTERN int cor_run(cor_fn main, void *arg, const cor_run_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
