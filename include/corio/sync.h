/* SPDX-License-Identifier: MIT */
/* corio: coordination between the tasks of one loop, as asyncio's Lock,
 * Event, Semaphore, Condition and Barrier.
 *
 * Not thread-safe, as in asyncio: every call belongs to the owning thread of
 * the object's loop (else COR_ETHREAD, logged), except cor_retain and
 * cor_release. They are counted objects: the constructor hands one
 * reference, cor_release drops it. A wait is a suspension point: it needs a
 * running task (else COR_ENOTASK), returns -ECANCELED when its task is
 * cancelled, and then holds nothing (but cor_condition_wait, which holds
 * the condition's lock again, as asyncio's). Waiters are woken in FIFO
 * order. NULL arguments return -EINVAL (logged).
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
typedef struct cor_condition cor_condition_t;
typedef struct cor_barrier cor_barrier_t;

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

/* A condition variable (asyncio.Condition) on `loop` over `lock`: the
 * caller's lock (retained; it must belong to the same loop, else NULL with
 * errno EINVAL), or NULL for a lock of its own. loop NULL: the lock's loop,
 * else the running loop. NULL with errno EINVAL (no loop), ENOMEM, 4001
 * (wrong thread). */
COR_EXTERN cor_condition_t *cor_condition_new(cor_loop_t *loop,
                                              cor_lock_t *lock);
/* The condition's lock (borrowed: valid while the condition is). Take it
 * with cor_lock_acquire before waiting or notifying. NULL with errno EINVAL
 * (c NULL), 4001 (wrong thread). */
COR_EXTERN cor_lock_t *cor_condition_lock(cor_condition_t *c);
/* With the lock held: releases it, suspends the task until notified, then
 * takes the lock again before returning, whatever happened. Returns 0
 * (notified, lock held); -ECANCELED (the task was cancelled while waiting
 * for the notification or while taking the lock back: the lock is held
 * again all the same, as asyncio re-acquires before raising
 * CancelledError; a notification it had received is handed to the next
 * waiter); -EPERM (the lock is not held: nothing done); COR_ENOTASK
 * (outside a task: nothing done); -EINVAL (NULL). Owner thread (else
 * COR_ETHREAD). As asyncio, "held" means locked, by whichever task. */
COR_EXTERN int cor_condition_wait(cor_condition_t *c);
/* With the lock held: waits (cor_condition_wait) until pred(arg) is true;
 * pred is called with the lock held, first before any wait. Returns 0
 * (pred true, lock held) or cor_condition_wait's error (-ECANCELED with the
 * lock held; -EPERM, COR_ENOTASK); -EINVAL (c or pred NULL). Owner thread
 * (else COR_ETHREAD). */
COR_EXTERN int cor_condition_wait_for(cor_condition_t *c, bool (*pred)(void *),
                                      void *arg);
/* With the lock held: wakes up to n waiters, the longest waiting first
 * (each takes the lock in turn after the caller releases it). Returns 0;
 * -EPERM (lock not held); -EINVAL (NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_condition_notify(cor_condition_t *c, size_t n);
/* cor_condition_notify of every waiter. Same returns. */
COR_EXTERN int cor_condition_notify_all(cor_condition_t *c);

/* A barrier for `parties` tasks (asyncio.Barrier) on `loop` (NULL: the
 * running loop). NULL with errno EINVAL (parties 0, no loop), ENOMEM, 4001
 * (wrong thread). */
COR_EXTERN cor_barrier_t *cor_barrier_new(cor_loop_t *loop, unsigned parties);
/* Waits until `parties` tasks wait, then all of them return 0 with *index
 * (index may be NULL) their order of arrival, 0 to parties-1: the last to
 * arrive gets parties-1 and returns at once. The barrier is cyclic: once
 * every released task has left, it fills again; tasks arriving before that
 * wait for it. Returns 0; COR_EBROKEN (aborted, or reset while waiting:
 * asyncio's BrokenBarrierError; a task released but not yet running when
 * the reset or abort came gets it too, as in asyncio); -ECANCELED (the
 * task was cancelled: it leaves, the count drops by one and the barrier
 * stays whole, as asyncio's); COR_ENOTASK (outside a task when it would
 * wait: not counted); -EINVAL (b NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_barrier_wait(cor_barrier_t *b, unsigned *index);
/* Breaks the barrier: every waiter and every later wait gets COR_EBROKEN
 * until cor_barrier_reset. Returns 0; -EINVAL (NULL). Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_barrier_abort(cor_barrier_t *b);
/* Back to empty: the tasks waiting get COR_EBROKEN, arrivals wait until
 * they have left, then it fills anew (also after an abort). Returns 0;
 * -EINVAL (NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_barrier_reset(cor_barrier_t *b);
/* The parties given to cor_barrier_new. 0 for NULL (logged). Owner thread
 * (else 0, errno 4001). */
COR_EXTERN unsigned cor_barrier_parties(const cor_barrier_t *b);
/* The tasks waiting for it to fill (0 while draining or resetting, as
 * asyncio's n_waiting). 0 for NULL (logged). Owner thread (else 0, errno
 * 4001). */
COR_EXTERN unsigned cor_barrier_n_waiting(const cor_barrier_t *b);
/* True when aborted (and not reset since). false for NULL (logged). Owner
 * thread (else false, errno 4001). */
COR_EXTERN bool cor_barrier_broken(const cor_barrier_t *b);

#ifdef __cplusplus
}
#endif
#endif
