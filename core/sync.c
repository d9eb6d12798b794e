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

#include "sync_internal.h"
#include <corio/future.h>
#include <corio/sync.h>
#include <corio/task.h>

/* The three constructors' common part: the running loop for NULL, the
 * owner-thread check, a zeroed counted object that holds its loop. */
void *cor__sync_new(cor_loop_t *loop, size_t size, enum cor__obj_type type,
                    const char *call) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL)
    return cor__bad_arg_ptr(call, "loop is NULL and no loop is running");
  COR__CHECK_THREAD_PTR(loop, call);
  sync_head *o = cor__calloc(1, size);
  if (o == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor__obj_init(&o->obj, type);
  o->loop = cor_retain(loop);
  return o;
}

/* The destructor of all three. */
void cor__sync_free(cor__obj *o) {
  cor_release(((sync_head *)o)->loop);
  cor__free(o);
}

/* ------------------------------------------------------------ lock */

struct cor_lock {
  cor__obj obj;
  cor_loop_t *loop;
  bool locked;
  wlist waiters;
};

__attribute__((constructor)) static void sync_register(void) {
  cor__obj_register(COR__OBJ_LOCK, cor__sync_free);
  cor__obj_register(COR__OBJ_EVENT, cor__sync_free);
  cor__obj_register(COR__OBJ_SEMAPHORE, cor__sync_free);
}

cor_lock_t *cor_lock_new(cor_loop_t *loop) {
  return cor__sync_new(loop, sizeof(struct cor_lock), COR__OBJ_LOCK,
                  "cor_lock_new");
}

/* Wakes the first waiter not yet woken: it takes the lock when it runs. */
static void lock_wake(struct cor_lock *l) {
  waiter *w = wl_first_pending(&l->waiters);
  if (w)
    wl_wake(w);
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
    int rc = wl_wait(&l->waiters, l->loop, &woken, "cor_lock_acquire",
                     __builtin_return_address(0));
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

cor_event_t *cor_event_new(cor_loop_t *loop) {
  return cor__sync_new(loop, sizeof(struct cor_event), COR__OBJ_EVENT,
                  "cor_event_new");
}

int cor_event_wait(cor_event_t *e) {
  if (e == NULL)
    return cor__bad_arg("cor_event_wait", "e is NULL");
  COR__CHECK_THREAD(e->loop, "cor_event_wait");
  if (e->set)
    return 0;
  bool woken;
  int rc = wl_wait(&e->waiters, e->loop, &woken, "cor_event_wait",
                   __builtin_return_address(0));
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
    if (!w->woken)
      wl_wake(w);
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

cor_semaphore_t *cor_semaphore_new(cor_loop_t *loop, unsigned value,
                                   bool bounded) {
  struct cor_semaphore *s =
      cor__sync_new(loop, sizeof *s, COR__OBJ_SEMAPHORE, "cor_semaphore_new");
  if (s == NULL)
    return NULL;
  s->value = s->start = value;
  s->bounded = bounded;
  return s;
}

/* Wakes the first waiter not yet woken, when a unit is free for it. */
static void sem_wake(struct cor_semaphore *s) {
  unsigned promised = 0;
  for (waiter *w = s->waiters.head; w; w = w->next) {
    if (w->woken) {
      promised++;
      continue;
    }
    if (promised < s->value)
      wl_wake(w);
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
    int rc = wl_wait(&s->waiters, s->loop, &woken, "cor_semaphore_acquire",
                     __builtin_return_address(0));
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
