/* SPDX-License-Identifier: MIT */
/* corio: coordination between the tasks of one loop, as asyncio's Lock and
 * Event.
 *
 * Not thread-safe, as in asyncio: every call belongs to the owning thread of
 * the object's loop (else COR_ETHREAD, logged), except cor_retain and
 * cor_release. They are counted objects: the constructor hands one
 * reference, cor_release drops it. A wait is a suspension point: it needs a
 * running task (else COR_ENOTASK), returns -ECANCELED when its task is
 * cancelled, and then holds nothing. Waiters are woken in FIFO order. NULL
 * arguments return -EINVAL (logged).
 */
#ifndef CORIO_SYNC_H
#define CORIO_SYNC_H

#include <corio/common.h>
#include <corio/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_lock cor_lock_t;
typedef struct cor_event cor_event_t;
typedef struct cor_semaphore cor_semaphore_t;

/* An unlocked lock on `loop` (NULL: the loop running on this thread).
 * Returns NULL with errno EINVAL (no loop), ENOMEM. Owner thread (else NULL,
 * errno 4001). */
COR_EXTERN cor_lock_t *cor_lock_new(cor_loop_t *loop);
/* Takes the lock, suspending the calling task while another holds it (no
 * suspension when it is free and nobody waits). Returns 0 (held),
 * -ECANCELED (cancelled while waiting: not held; a wake-up it received is
 * passed to the next waiter), COR_ENOTASK outside a task when it would have
 * to wait, -ENOMEM, -EINVAL (NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_lock_acquire(cor_lock_t *l);
/* Releases the lock and wakes the first waiter. Returns 0; -EPERM when not
 * locked (asyncio's RuntimeError); -EINVAL (NULL). Owner thread (else
 * COR_ETHREAD). Any task or callback of the loop may release it. */
COR_EXTERN int cor_lock_release(cor_lock_t *l);
/* True while held. Owner thread (else false, errno 4001). */
COR_EXTERN bool cor_lock_locked(const cor_lock_t *l);

/* An unset event on `loop` (NULL: the running loop). NULL with errno
 * EINVAL, ENOMEM, 4001 (wrong thread). */
COR_EXTERN cor_event_t *cor_event_new(cor_loop_t *loop);
/* Returns 0 at once when set, else suspends the task until cor_event_set.
 * -ECANCELED, COR_ENOTASK (outside a task, unset), -ENOMEM, -EINVAL (NULL).
 * Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_event_wait(cor_event_t *e);
/* Sets the event and wakes every waiter. NULL: logged, nothing done. Owner
 * thread (else errno 4001, nothing done). */
COR_EXTERN void cor_event_set(cor_event_t *e);
/* Clears the event. Same misuse rules as cor_event_set. */
COR_EXTERN void cor_event_clear(cor_event_t *e);
/* True while set. Owner thread (else false, errno 4001). */
COR_EXTERN bool cor_event_is_set(const cor_event_t *e);

/* A semaphore with `value` units on `loop` (NULL: the running loop);
 * `bounded`: a BoundedSemaphore. NULL with errno EINVAL, ENOMEM, 4001. */
COR_EXTERN cor_semaphore_t *cor_semaphore_new(cor_loop_t *loop,
                                              unsigned value, bool bounded);
/* Takes a unit, suspending the task while none is free (FIFO). 0;
 * -ECANCELED (holds nothing; a wake-up received is handed on);
 * COR_ENOTASK (outside a task, would wait); -ENOMEM; -EINVAL (NULL). Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN int cor_semaphore_acquire(cor_semaphore_t *s);
/* Returns a unit and wakes the first waiter. 0; -EOVERFLOW when a bounded
 * semaphore would pass its start value (asyncio's ValueError) or the count
 * would overflow; -EINVAL (NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_semaphore_release(cor_semaphore_t *s);
/* True when an acquire would wait. Owner thread (else false, errno 4001). */
COR_EXTERN bool cor_semaphore_locked(const cor_semaphore_t *s);

#ifdef __cplusplus
}
#endif
#endif
