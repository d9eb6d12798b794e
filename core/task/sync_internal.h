/* SPDX-License-Identifier: MIT */
/* The waiter lists of the coordination primitives of one loop (core/sync.c,
 * core/queue.c): a FIFO of nodes that live on the waiting tasks' stacks,
 * each with an embedded future, so a wait allocates nothing. Internal. */
#ifndef CORIO_CORE_SYNC_INTERNAL_H
#define CORIO_CORE_SYNC_INTERNAL_H

#include "base/list.h"
#include "base/object.h"
#include "task/task_internal.h"

/* A waiting task's node, on that task's stack: the future is embedded
 * (cor__wait_embedded), so a wait allocates nothing. */
typedef struct wlist wlist;
typedef struct waiter {
  struct waiter *prev, *next;
  wlist *list; /* the list it is on: a loop closing unlinks it */
  struct cor_future fut;
  bool waiting; /* cor__wait_embedded's flag */
  bool woken;   /* a wake-up was given to it */
} waiter;

struct wlist {
  waiter *head, *tail;
};

static inline void wl_push(wlist *l, waiter *w) {
  w->list = l;
  cor__list_push_back(&l->head, &l->tail, w);
}

static inline void wl_unlink(wlist *l, waiter *w) {
  cor__list_unlink_ht(&l->head, &l->tail, w);
  w->list = NULL;
}

/* The first waiter not yet woken, or NULL. */
static inline waiter *wl_first_pending(wlist *l) {
  for (waiter *w = l->head; w; w = w->next)
    if (!w->woken)
      return w;
  return NULL;
}

static inline void wl_wake(waiter *w) {
  w->woken = true;
  cor__wake_embedded(&w->fut, w->waiting, 0);
}

/* Suspends the running task on a waiter of l. Returns 0 when woken,
 * -ECANCELED (woken or not), COR_ENOTASK. *woken tells whether the wake-up
 * reached it (so a cancelled one can hand it on). `site`: the application's
 * call, for the task's "running at". `kind`, `obj`: what the task waits on,
 * named by the task dump and the shutdown report while it waits, and the
 * mark cor__wl_detach goes by (kind NULL: neither); two pointer stores. */
static inline int wl_wait_on(wlist *l, cor_loop_t *loop, bool *woken,
                             const char *call, const void *site,
                             const cor__wait_kind *kind, const void *obj) {
  *woken = false;
  struct cor_task *t = cor__tls_task;
  if (t == NULL)
    return COR_ENOTASK;
  waiter w = {0};
  wl_push(l, &w);
  t->wait_kind = kind;
  t->wait_obj = obj;
  int rc = cor__wait_embedded(loop, &w.fut, &w.waiting, 0, call, site);
  t->wait_kind = NULL;
  wl_unlink(l, &w);
  *woken = w.woken;
  return rc;
}

/* wl_wait_on naming no particular object (the kind is still set: it also
 * tells a closing loop that the task's node is on a waiter list). */
static const cor__wait_kind wl_anon_kind = {"waiter list", NULL};
static inline int wl_wait(wlist *l, cor_loop_t *loop, bool *woken,
                          const char *call, const void *site) {
  return wl_wait_on(l, loop, woken, call, site, &wl_anon_kind, l);
}

/* Every primitive starts with these two fields. */
typedef struct sync_head {
  cor__obj obj;
  cor_loop_t *loop;
} sync_head;

/* The constructors' common part: the running loop for NULL, the
 * owner-thread check, a zeroed counted object of `size` bytes that holds its
 * loop. NULL with errno EINVAL, ENOMEM, COR_ETHREAD. */
void *cor__sync_new(cor_loop_t *loop, size_t size, enum cor__obj_type type,
                    const char *call);
/* Their common destructor (registered for each type). */
void cor__sync_free(cor__obj *o);

/* ------------------------------------------------------------ pop-on-wake lists */

/* The queue's lists (core/queue.c) unlink the waiter they wake at once, so
 * their head is always the first waiter not yet woken and a wake-up costs
 * O(1) however many woken waiters have not run yet (a callback's thousand
 * put_nowait calls wake a thousand getters in linear time). Such a list is
 * waited on with wl_wait_pop and woken with wl_pop_wake only; wl_wait and
 * wl_first_pending are for the other kind. */

/* Unlinks and wakes the first waiter; NULL when none waits. */
static inline waiter *wl_pop_wake(wlist *l) {
  waiter *w = l->head;
  if (w) {
    wl_unlink(l, w);
    wl_wake(w);
  }
  return w;
}

/* As wl_wait, on a pop-on-wake list. `front`: wait at the head, for a woken
 * waiter that found its promised unit taken by a caller that never waits
 * (it keeps its turn). */
static inline int wl_wait_pop_on(wlist *l, cor_loop_t *loop, bool front,
                                 bool *woken, const char *call,
                                 const void *site, const cor__wait_kind *kind,
                                 const void *obj) {
  *woken = false;
  struct cor_task *t = cor__tls_task;
  if (t == NULL)
    return COR_ENOTASK;
  waiter w = {0};
  if (front && l->head) {
    w.list = l;
    w.next = l->head;
    l->head->prev = &w;
    l->head = &w;
  } else {
    wl_push(l, &w);
  }
  t->wait_kind = kind;
  t->wait_obj = obj;
  int rc = cor__wait_embedded(loop, &w.fut, &w.waiting, 0, call, site);
  t->wait_kind = NULL;
  if (w.list) /* not woken (the waker unlinked it), nor detached */
    wl_unlink(l, &w);
  *woken = w.woken;
  return rc;
}

static inline int wl_wait_pop(wlist *l, cor_loop_t *loop, bool front,
                              bool *woken, const char *call,
                              const void *site) {
  return wl_wait_pop_on(l, loop, front, woken, call, site, &wl_anon_kind, l);
}

#endif
