/* SPDX-License-Identifier: MIT */
/* corio: a queue between the tasks of one loop, as asyncio.Queue,
 * asyncio.LifoQueue and asyncio.PriorityQueue (with 3.13's shutdown).
 *
 * Not thread-safe, as in asyncio: every call belongs to the owning thread of
 * the queue's loop (else COR_ETHREAD, logged), except cor_retain and
 * cor_release (for queues between loops or threads, see cor_channel_t). A
 * queue is a counted object: cor_queue_new hands one reference, cor_release
 * drops it; a task waiting on a queue holds a reference of its own while it
 * waits. Items are `void *` values the queue stores and hands back, never
 * reads and never frees: a queue released (or shut down with `immediate`)
 * while it holds items just forgets them, and whoever owns what they point
 * at must free it.
 *
 * cor_queue_put and cor_queue_get are suspension points when they must wait
 * (full / empty): they need a running task then (else COR_ENOTASK), return
 * -ECANCELED when the task is cancelled (having put or taken nothing), and
 * so compose with cor_wait_for and time-out scopes. Blocked getters and
 * blocked putters are served in FIFO order, each side on its own. A waiter
 * that is woken has the item (or slot) promised to it until it runs: a task
 * calling put or get meanwhile waits its turn rather than take it; if the
 * woken one is cancelled before it runs, the promise passes to the next
 * waiter, so no item and no wake-up is lost; a cancelled waiter leaves
 * nothing behind in the queue (CPython's bpo-31620 and its kin).
 * The _nowait calls never wait and, as asyncio's, take what is there
 * (a woken waiter that then finds nothing waits again, first in line). No
 * wait allocates; a put may grow the storage (amortised doubling). NULL
 * arguments return -EINVAL (NULL with errno EINVAL for the constructor),
 * logged.
 */
#ifndef CORIO_QUEUE_H
#define CORIO_QUEUE_H

#include <corio/common.h>
#include <corio/loop.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_queue cor_queue_t;

typedef enum cor_queue_kind {
  COR_QUEUE_FIFO = 0, /* asyncio.Queue: first in, first out */
  COR_QUEUE_LIFO,     /* asyncio.LifoQueue: last in, first out */
  COR_QUEUE_PRIORITY, /* asyncio.PriorityQueue: smallest first (opts->cmp) */
} cor_queue_kind;

/* Queue options; a zeroed struct (or NULL) is an unbounded FIFO queue. */
typedef struct cor_queue_opts {
  /* Most items the queue holds; put waits while it holds that many. 0 =
   * unbounded. */
  size_t maxsize;
  cor_queue_kind kind;
  /* COR_QUEUE_PRIORITY only (required there): called with two items as
   * they were put (the `void *` values themselves, not pointers to them);
   * negative when a comes out before b, 0 for a tie (ties come out in the
   * order they were put), positive otherwise, as qsort's. It must not call
   * the queue. */
  int (*cmp)(const void *a, const void *b);
} cor_queue_opts;

/* A queue on `loop` (NULL: the loop running on this thread). Returns NULL
 * with errno EINVAL (no loop; an unknown kind; COR_QUEUE_PRIORITY without
 * cmp; all logged), ENOMEM, 4001 (wrong thread). */
COR_EXTERN cor_queue_t *cor_queue_new(cor_loop_t *loop,
                                      const cor_queue_opts *opts);

/* Puts item at the end (FIFO, LIFO) or in its place (PRIORITY), suspending
 * the calling task while the queue is full (no suspension when there is
 * room and no woken putter has been promised it). Wakes the first waiting
 * getter. Returns 0; COR_ECLOSED after cor_queue_shutdown (also for a putter
 * waiting when it came: nothing put); -ECANCELED (cancelled while waiting:
 * nothing put; a slot promised to it is passed on); COR_ENOTASK (outside a
 * task, and it would have to wait); -ENOMEM (the storage could not grow);
 * -EINVAL (q NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_queue_put(cor_queue_t *q, void *item);
/* Takes the first item (FIFO: the oldest; LIFO: the newest; PRIORITY: the
 * smallest, the oldest of equals) into *item, suspending the calling task
 * while the queue is empty. Wakes the first waiting putter. Returns 0;
 * COR_ECLOSED once the queue is shut down and empty (items left at a plain
 * shutdown are still handed out first); -ECANCELED (cancelled while
 * waiting: nothing taken; an item promised to it stays for the next
 * getter); COR_ENOTASK (outside a task, and it would have to wait); -EINVAL
 * (q or item NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_queue_get(cor_queue_t *q, void **item);
/* Puts without waiting: 0; -EAGAIN when full (asyncio's QueueFull);
 * COR_ECLOSED after shutdown; -ENOMEM; -EINVAL (NULL). Callbacks may call it
 * (no task needed). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_queue_put_nowait(cor_queue_t *q, void *item);
/* Takes without waiting: 0; -EAGAIN when empty (asyncio's QueueEmpty);
 * COR_ECLOSED when empty after shutdown; -EINVAL (q or item NULL).
 * Callbacks may call it. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_queue_get_nowait(cor_queue_t *q, void **item);

/* Marks one item taken earlier as processed (asyncio's task_done): every
 * successful put counts one unfinished item, this uncounts one, and
 * cor_queue_join's waiters return when none is left. Returns 0; -EPERM when
 * called more often than items were put (asyncio's ValueError); -EINVAL
 * (NULL). Callbacks may call it. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_queue_task_done(cor_queue_t *q);
/* Returns 0 at once when no item is unfinished, else suspends the task until
 * the count of unfinished items drops to 0 (items put and not yet
 * task_done'd; cor_queue_shutdown with `immediate` uncounts the items it
 * drops). -ECANCELED; COR_ENOTASK (outside a task, items unfinished);
 * -EINVAL (NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_queue_join(cor_queue_t *q);

/* Shuts the queue down (Python 3.13's Queue.shutdown): later puts, and the
 * putters waiting now, get COR_ECLOSED; gets hand out what is left, then
 * get COR_ECLOSED, and the getters waiting now are woken (to COR_ECLOSED:
 * a queue with waiting getters is empty). `immediate`: the items left are
 * dropped too (not freed: see above) and uncounted from the unfinished ones,
 * so cor_queue_join's waiters return when nothing else is outstanding. May
 * be called again (a later immediate one drops what is left). Returns 0;
 * -EINVAL (NULL). Callbacks may call it. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_queue_shutdown(cor_queue_t *q, bool immediate);

/* The number of items held. 0 for NULL (logged, errno EINVAL); owner
 * thread (else 0, errno 4001). */
COR_EXTERN size_t cor_queue_qsize(const cor_queue_t *q);
/* The maxsize the queue was made with (0: unbounded). Misuse as
 * cor_queue_qsize. */
COR_EXTERN size_t cor_queue_maxsize(const cor_queue_t *q);
/* True when it holds no item (asyncio's empty()). NULL: false (logged,
 * errno EINVAL); owner thread (else false, errno 4001). */
COR_EXTERN bool cor_queue_empty(const cor_queue_t *q);
/* True when bounded and holding maxsize items (asyncio's full(); an
 * unbounded queue is never full). Misuse as cor_queue_empty. */
COR_EXTERN bool cor_queue_full(const cor_queue_t *q);

#ifdef __cplusplus
}
#endif
#endif
