/* SPDX-License-Identifier: MIT */
/* corio: futures, as asyncio.Future.
 *
 * A future is bound to one loop and is not thread-safe: every call here
 * belongs to the loop's owning thread (or to any thread while the loop is not
 * running and no other thread uses the future), except cor_retain,
 * cor_release and the calls marked "Any thread". From another thread while
 * the loop runs, a call returns COR_ETHREAD (or NULL with errno 4001) and
 * logs an ERROR (see corio/common.h). Cross-thread results go through
 * cor_call_soon_threadsafe or a concurrent future (cor_cfuture_t).
 *
 * A future ends in one of three ways: a result (code 0), an error (a
 * negative code and an optional message), or cancelled (code -ECANCELED).
 */
#ifndef CORIO_FUTURE_H
#define CORIO_FUTURE_H

#include <corio/common.h>
#include <corio/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_future cor_future_t;

/* A done callback receives the future (borrowed for the call) and its arg. */
typedef void (*cor_done_fn)(cor_future_t *fut, void *arg);

/* A pending future on `loop` (NULL: the loop running on this thread). The
 * caller holds one reference. Returns NULL with errno EINVAL (no loop),
 * ENOMEM. Owner thread (else NULL, errno 4001). */
COR_EXTERN cor_future_t *cor_future_new(cor_loop_t *loop);

/* Completes the future with a result, or with an error `code` (< 0) and an
 * optional message (copied). Its done callbacks are scheduled with
 * cor_call_soon, in the order they were added, never run inline. Returns 0;
 * -EINVAL when the future is already done or cancelled (asyncio's
 * InvalidStateError: nothing changes), when fut is NULL or a task (a task's
 * outcome is its body's return), or when code >= 0. Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_future_set_result(cor_future_t *fut, void *value);
COR_EXTERN int cor_future_set_error(cor_future_t *fut, int code,
                                    const char *msg);

/* Cancels the future: it becomes cancelled (code -ECANCELED, message msg,
 * copied, may be NULL) and its callbacks are scheduled. On a task's future
 * it is cor_task_cancel. Returns 0 when cancelled (or, for a task, when the
 * request was made); -EINVAL when already done or cancelled (asyncio's
 * False) or NULL. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_future_cancel(cor_future_t *fut, const char *msg);

/* True once the future has a result, an error or was cancelled. Any thread
 * that may read it (the value is a plain read). */
COR_EXTERN bool cor_future_done(const cor_future_t *fut);
COR_EXTERN bool cor_future_cancelled(const cor_future_t *fut);

/* The code the future ended with: 0 (and *value, when value is not NULL,
 * receives the result), the error code, or -ECANCELED. -EAGAIN while
 * pending, -EINVAL for NULL. Handing the error out marks it retrieved: a
 * future freed with an error nobody retrieved is reported ("exception was
 * never retrieved"). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_future_result(cor_future_t *fut, void **value);

/* The message of an error or of a cancellation, or NULL. Valid while the
 * caller holds the future. Does not mark the error retrieved. Owner thread
 * (else NULL, errno 4001). */
COR_EXTERN const char *cor_future_message(const cor_future_t *fut);
/* Where the error was raised with cor_fail: sets *file and *line and returns
 * 0, or -ENOENT when no site is known. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_future_error_site(const cor_future_t *fut,
                                     const char **file, int *line);
/* The loop the future belongs to (borrowed). Any thread (it never changes:
 * this is how another thread finds where to post). */
COR_EXTERN cor_loop_t *cor_future_loop(const cor_future_t *fut);

/* Adds cb(fut, arg), to be scheduled with cor_call_soon when the future is
 * done; if it is already done, schedules it now. Returns 0, -EINVAL, -ENOMEM,
 * COR_ECLOSED (done future on a closed loop). Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_future_add_done_callback(cor_future_t *fut, cor_done_fn cb,
                                            void *arg);
/* Removes every not yet scheduled callback equal to (cb, arg). Returns how
 * many were removed (0 when none), -EINVAL for NULL. Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_future_remove_done_callback(cor_future_t *fut,
                                               cor_done_fn cb, void *arg);

/* Runs the loop until fut is done, as asyncio's run_until_complete (fut may
 * be a task's future, cor_task_future). Returns the future's code (as
 * cor_future_result, whose value it marks retrieved); -EINTR when the loop
 * was stopped before fut completed; -EINVAL (NULL, or fut on another loop);
 * and the errors of cor_loop_run_forever (-EBUSY, COR_ETHREAD, COR_ECLOSED).
 * Not from a task or callback of a running loop (-EBUSY). Owner thread (else
 * COR_ETHREAD, logged). */
COR_EXTERN int cor_loop_run_until_complete(cor_loop_t *loop,
                                           cor_future_t *fut);

/* The C form of raising: `return cor_fail(-EPROTO, "bad header %d", n);`
 * records the message and the site (file:line) for the running task (or,
 * outside a task, for the calling thread) and returns code. When the task's
 * body returns that same code, its future ends with that error, message and
 * site. Any thread. */
#define cor_fail(code, ...) cor_fail_at(__FILE__, __LINE__, (code), __VA_ARGS__)
COR_EXTERN int cor_fail_at(const char *file, int line, int code,
                           const char *fmt, ...) COR_PRINTF(4, 5);

#ifdef __cplusplus
}
#endif
#endif
