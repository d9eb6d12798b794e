/* SPDX-License-Identifier: MIT */
/* Lock and Event for the tasks of one loop (asyncio.Lock, asyncio.Event).
 *
 * A waiter is a node on the waiting task's stack (it lives while the task
 * waits), linked into the primitive's FIFO list, with a future the task
 * awaits: the wake-up is setting that future, cancellation is delivered by
 * the task machinery cancelling it. A waiter whose future was already set
 * when its task saw -ECANCELED (cancelled after being woken) passes the
 * wake-up on to the next waiter, so none is lost (CPython bpo-27585). */
#include <errno.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>

#include "task_internal.h"
#include <corio/future.h>
#include <corio/sync.h>
#include <corio/task.h>

typedef struct waiter {
  struct waiter *prev, *next;
  cor_future_t *fut;
} waiter;

typedef struct wlist {
  waiter *head, *tail;
} wlist;

static void wl_push(wlist *l, waiter *w) {
  w->next = NULL;
  w->prev = l->tail;
  if (l->tail)
    l->tail->next = w;
  else
    l->head = w;
  l->tail = w;
}

static void wl_unlink(wlist *l, waiter *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    l->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    l->tail = w->prev;
  w->prev = w->next = NULL;
}

/* The first waiter not yet woken, or NULL. */
static waiter *wl_first_pending(wlist *l) {
  for (waiter *w = l->head; w; w = w->next)
    if (!cor_future_done(w->fut))
      return w;
  return NULL;
}

/* Suspends the running task on a fresh waiter of l. Returns 0 when woken,
 * -ECANCELED (woken or not), -ENOMEM, COR_ENOTASK. *woken tells whether the
 * wake-up reached it (so a cancelled one can hand it on). */
static int wl_wait(wlist *l, cor_loop_t *loop, bool *woken) {
  *woken = false;
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  waiter w;
  w.fut = cor_future_new(loop);
  if (w.fut == NULL)
    return -ENOMEM;
  wl_push(l, &w);
  int rc = cor_await(w.fut, NULL);
  *woken = cor_future_done(w.fut) && !cor_future_cancelled(w.fut);
  wl_unlink(l, &w);
  cor_release(w.fut);
  if (rc != 0 && rc != -ECANCELED)
    rc = -ECANCELED; /* the wait had no other outcome */
  if (rc == 0 && !*woken)
    rc = -ECANCELED;
  return rc;
}

/* ------------------------------------------------------------ lock */

struct cor_lock {
  cor__obj obj;
  cor_loop_t *loop;
  bool locked;
  wlist waiters;
};

static void lock_free(cor__obj *o) {
  struct cor_lock *l = (struct cor_lock *)o;
  cor_release(l->loop);
  cor__free(l);
}

static void event_free(cor__obj *o);
static void sem_free(cor__obj *o);

__attribute__((constructor)) static void sync_register(void) {
  cor__obj_register(COR__OBJ_LOCK, lock_free);
  cor__obj_register(COR__OBJ_EVENT, event_free);
  cor__obj_register(COR__OBJ_SEMAPHORE, sem_free);
}

static cor_loop_t *loop_arg(cor_loop_t *loop, const char *call) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL)
    cor__bad_arg_ptr(call, "loop is NULL and no loop is running");
  return loop;
}

cor_lock_t *cor_lock_new(cor_loop_t *loop) {
  loop = loop_arg(loop, "cor_lock_new");
  if (loop == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(loop, "cor_lock_new");
  struct cor_lock *l = cor__malloc(sizeof *l);
  if (l == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  memset(l, 0, sizeof *l);
  cor__obj_init(&l->obj, COR__OBJ_LOCK);
  l->loop = cor_retain(loop);
  return l;
}

/* Wakes the first waiter not yet woken: it takes the lock when it runs. */
static void lock_wake(struct cor_lock *l) {
  waiter *w = wl_first_pending(&l->waiters);
  if (w)
    cor_future_set_result(w->fut, NULL);
}

int cor_lock_acquire(cor_lock_t *l) {
  if (l == NULL)
    return cor__bad_arg("cor_lock_acquire", "l is NULL");
  COR__CHECK_THREAD(l->loop, "cor_lock_acquire");
  /* Fast path: free and nobody queued (a woken waiter still in the list
   * has the lock promised to it: asyncio's fairness). */
  if (!l->locked && l->waiters.head == NULL) {
    l->locked = true;
    return 0;
  }
  for (;;) {
    bool woken;
    int rc = wl_wait(&l->waiters, l->loop, &woken);
    if (rc == 0) {
      if (!l->locked) {
        l->locked = true;
        return 0;
      }
      continue; /* taken by a fast-path caller meanwhile: wait again */
    }
    if (woken && !l->locked)
      lock_wake(l); /* cancelled after the wake-up: hand it on */
    return rc;
  }
}

int cor_lock_release(cor_lock_t *l) {
  if (l == NULL)
    return cor__bad_arg("cor_lock_release", "l is NULL");
  COR__CHECK_THREAD(l->loop, "cor_lock_release");
  if (!l->locked)
    return -EPERM;
  l->locked = false;
  lock_wake(l);
  return 0;
}

bool cor_lock_locked(const cor_lock_t *l) {
  if (l == NULL) {
    cor__bad_arg("cor_lock_locked", "l is NULL");
    return false;
  }
  COR__CHECK_THREAD_VAL(l->loop, "cor_lock_locked", false);
  return l->locked;
}

/* ------------------------------------------------------------ event */

struct cor_event {
  cor__obj obj;
  cor_loop_t *loop;
  bool set;
  wlist waiters;
};

static void event_free(cor__obj *o) {
  struct cor_event *e = (struct cor_event *)o;
  cor_release(e->loop);
  cor__free(e);
}

cor_event_t *cor_event_new(cor_loop_t *loop) {
  loop = loop_arg(loop, "cor_event_new");
  if (loop == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(loop, "cor_event_new");
  struct cor_event *e = cor__malloc(sizeof *e);
  if (e == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  memset(e, 0, sizeof *e);
  cor__obj_init(&e->obj, COR__OBJ_EVENT);
  e->loop = cor_retain(loop);
  return e;
}

int cor_event_wait(cor_event_t *e) {
  if (e == NULL)
    return cor__bad_arg("cor_event_wait", "e is NULL");
  COR__CHECK_THREAD(e->loop, "cor_event_wait");
  if (e->set)
    return 0;
  bool woken;
  int rc = wl_wait(&e->waiters, e->loop, &woken);
  /* asyncio: a waiter woken by set returns True even if the event was
   * cleared again before it ran. */
  return rc;
}

void cor_event_set(cor_event_t *e) {
  if (e == NULL) {
    cor__bad_arg("cor_event_set", "e is NULL");
    return;
  }
  COR__CHECK_THREAD_VOID(e->loop, "cor_event_set");
  if (e->set)
    return;
  e->set = true;
  for (waiter *w = e->waiters.head; w; w = w->next)
    if (!cor_future_done(w->fut))
      cor_future_set_result(w->fut, NULL);
}

void cor_event_clear(cor_event_t *e) {
  if (e == NULL) {
    cor__bad_arg("cor_event_clear", "e is NULL");
    return;
  }
  COR__CHECK_THREAD_VOID(e->loop, "cor_event_clear");
  e->set = false;
}

bool cor_event_is_set(const cor_event_t *e) {
  if (e == NULL) {
    cor__bad_arg("cor_event_is_set", "e is NULL");
    return false;
  }
  COR__CHECK_THREAD_VAL(e->loop, "cor_event_is_set", false);
  return e->set;
}

/* ------------------------------------------------------------ semaphore */

struct cor_semaphore {
  cor__obj obj;
  cor_loop_t *loop;
  unsigned value, start;
  bool bounded;
  wlist waiters;
};

static void sem_free(cor__obj *o) {
  struct cor_semaphore *s = (struct cor_semaphore *)o;
  cor_release(s->loop);
  cor__free(s);
}

cor_semaphore_t *cor_semaphore_new(cor_loop_t *loop, unsigned value,
                                   bool bounded) {
  loop = loop_arg(loop, "cor_semaphore_new");
  if (loop == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(loop, "cor_semaphore_new");
  struct cor_semaphore *s = cor__malloc(sizeof *s);
  if (s == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  memset(s, 0, sizeof *s);
  cor__obj_init(&s->obj, COR__OBJ_SEMAPHORE);
  s->loop = cor_retain(loop);
  s->value = s->start = value;
  s->bounded = bounded;
  return s;
}

/* Wakes the first waiter not yet woken, when a unit is free for it. */
static void sem_wake(struct cor_semaphore *s) {
  unsigned promised = 0;
  for (waiter *w = s->waiters.head; w; w = w->next) {
    if (cor_future_done(w->fut)) {
      promised++;
      continue;
    }
    if (promised < s->value)
      cor_future_set_result(w->fut, NULL);
    return;
  }
}

int cor_semaphore_acquire(cor_semaphore_t *s) {
  if (s == NULL)
    return cor__bad_arg("cor_semaphore_acquire", "s is NULL");
  COR__CHECK_THREAD(s->loop, "cor_semaphore_acquire");
  if (s->value > 0 && s->waiters.head == NULL) {
    s->value--;
    return 0;
  }
  for (;;) {
    bool woken;
    int rc = wl_wait(&s->waiters, s->loop, &woken);
    if (rc == 0) {
      if (s->value > 0) {
        s->value--;
        return 0;
      }
      continue;
    }
    if (woken)
      sem_wake(s); /* cancelled after the wake-up: hand it on */
    return rc;
  }
}

int cor_semaphore_release(cor_semaphore_t *s) {
  if (s == NULL)
    return cor__bad_arg("cor_semaphore_release", "s is NULL");
  COR__CHECK_THREAD(s->loop, "cor_semaphore_release");
  if (s->bounded && s->value >= s->start)
    return -EOVERFLOW;
  if (s->value == UINT_MAX)
    return -EOVERFLOW;
  s->value++;
  sem_wake(s);
  return 0;
}

bool cor_semaphore_locked(const cor_semaphore_t *s) {
  if (s == NULL) {
    cor__bad_arg("cor_semaphore_locked", "s is NULL");
    return false;
  }
  COR__CHECK_THREAD_VAL(s->loop, "cor_semaphore_locked", false);
  /* asyncio: locked when acquire would wait (no unit, or units promised to
   * queued waiters). */
  return s->value == 0 || s->waiters.head != NULL;
}
