/* SPDX-License-Identifier: MIT */
/* corio: a bounded channel of `void *` items between loops and threads.
 *
 * Any number of senders and receivers, each a task of any loop, a loop
 * callback (the try_ calls) or a thread corio did not make. Every call is
 * thread-safe. A channel is a counted object: cor_channel_new hands one
 * reference, cor_retain takes another, cor_release drops one; the last
 * release frees it, closed or not, and items still inside are dropped with
 * it (they are only pointers: whatever they point at is the application's
 * to free, so drain a channel before releasing it when that matters).
 *
 * Waits: from a task, a send on a full channel or a receive on an empty one
 * suspends that task only (its loop runs on); from a thread with no running
 * loop it blocks the thread. From a loop's callback (on the loop's thread
 * but outside a task) a wait would block the loop: the call returns
 * COR_ENOTASK instead when it would have to wait. Time-outs follow the
 * rule of corio/common.h: 0 = try once, < 0 or COR_FOREVER = no limit, NaN
 * = -EINVAL. A cancelled task gets -ECANCELED and then has sent or received
 * nothing: no item is lost or duplicated under cancellation.
 *
 * Items are delivered in the order their sends completed; items from one
 * sender arrive in the order it sent them.
 */
#ifndef CORIO_CHANNEL_H
#define CORIO_CHANNEL_H

#include <corio/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_channel cor_channel_t;

/* Zeroed: the defaults. */
typedef struct cor_channel_opts {
  /* How many items the channel holds before a send waits; 0: 1024. */
  size_t capacity;
} cor_channel_opts;

/* A new open channel (opts may be NULL: the defaults). Any thread. Returns
 * NULL with errno EINVAL (a capacity above 2^32), ENOMEM. */
COR_EXTERN cor_channel_t *cor_channel_new(const cor_channel_opts *opts);

/* Puts item into ch, waiting up to `timeout` seconds for room. Returns 0
 * (the item is in the channel: a receiver will get it, even after a
 * close), -ETIMEDOUT (full until the time-out; 0 = one try), COR_ECLOSED
 * (closed, before or while waiting: not sent), -ECANCELED (the task was
 * cancelled while waiting: not sent), COR_ENOTASK (a loop callback that
 * would have to wait), -ENOMEM, -EINVAL (NULL ch, NaN time-out; logged).
 * Any thread, any loop. */
COR_EXTERN int cor_channel_send(cor_channel_t *ch, void *item, double timeout);
/* Takes the oldest item, waiting up to `timeout` seconds for one. Returns
 * 0 (*item set), -ETIMEDOUT, COR_ECLOSED (closed and empty: every item sent
 * before the close was received), -ECANCELED (the task was cancelled while
 * waiting: nothing taken, *item untouched), COR_ENOTASK (a loop callback
 * that would have to wait), -ENOMEM, -EINVAL (NULL ch or item, NaN
 * time-out; logged). Any thread, any loop. */
COR_EXTERN int cor_channel_recv(cor_channel_t *ch, void **item, double timeout);
/* Never wait: 0, -EAGAIN (full / empty, or an item a sender or receiver
 * is in the middle of moving), COR_ECLOSED (as above), -EINVAL (NULL,
 * logged). Any thread, any loop, and loop callbacks. */
COR_EXTERN int cor_channel_try_send(cor_channel_t *ch, void *item);
COR_EXTERN int cor_channel_try_recv(cor_channel_t *ch, void **item);
/* Closes ch: later sends return COR_ECLOSED; receivers get the items left,
 * then COR_ECLOSED. Every waiting sender and receiver is woken. Returns 0,
 * COR_ECLOSED when already closed, -EINVAL (NULL, logged). Any thread. */
COR_EXTERN int cor_channel_close(cor_channel_t *ch);

#ifdef __cplusplus
}
#endif

#endif
