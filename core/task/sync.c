/* SPDX-License-Identifier: MIT */
/* Lock, Event, Semaphore, Condition and Barrier for the tasks of one loop
 * (asyncio's).
 *
 * A waiter is a node on the waiting task's stack (it lives while the task
 * waits), linked into the primitive's FIFO list, with a future the task
 * awaits: the wake-up is setting that future, cancellation is delivered by
 * the task machinery cancelling it. A waiter whose future was already set
 * when its task saw -ECANCELED (cancelled after being woken) passes the
 * wake-up on to the next waiter, so none is lost (CPython bpo-27585). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>

#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/error.h"
#include "base/object.h"
#include "loop/loop.h"
#include "task/sync_internal.h"
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

void cor__wl_detach(struct cor_future *f) {
  waiter *w = cor__container_of(f, waiter, fut);
  if (w->list)
    wl_unlink(w->list, w);
  w->list = NULL;
}

/* ------------------------------------------------------------ lock */

struct cor_lock {
  cor__obj obj;
  cor_loop_t *loop;
  bool locked;
  /* The id of the task that took it (0: taken outside a task), for the
   * dump's "held by": an id, not a pointer, as the holder may end
   * without releasing; the dump looks it up among the pending tasks. */
  uint64_t holder;
  wlist waiters;
};

static void condition_free(cor__obj *o);

__attribute__((constructor)) static void sync_register(void) {
  cor__obj_register(COR__OBJ_LOCK, cor__sync_free);
  cor__obj_register(COR__OBJ_EVENT, cor__sync_free);
  cor__obj_register(COR__OBJ_SEMAPHORE, cor__sync_free);
  cor__obj_register(COR__OBJ_CONDITION, condition_free);
  cor__obj_register(COR__OBJ_BARRIER, cor__sync_free);
}

static void lock_describe(const void *obj, cor__buf *out) {
  const struct cor_lock *l = obj;
  if (!l->locked) {
    cor__buf_printf(out, " (free, handed to the first waiter)");
    return;
  }
  if (l->holder == 0) {
    cor__buf_printf(out, " held outside any task");
    return;
  }
  struct cor_task *h = cor__task_by_id(l->loop, l->holder);
  if (h)
    cor__buf_printf(out, " held by Task '%s'", cor__task_name(h));
  else
    cor__buf_printf(out, " held by a finished task (id %llu)",
                    (unsigned long long)l->holder);
}
static const cor__wait_kind lock_kind = {"lock", lock_describe};

static inline void lock_take(struct cor_lock *l) {
  l->locked = true;
  struct cor_task *t = cor__tls_task;
  l->holder = t ? t->id : 0;
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

/* The wait of cor_lock_acquire (and of a condition's re-acquire). */
static int lock_wait(struct cor_lock *l, const char *call, const void *site) {
  for (;;) {
    bool woken;
    int rc = wl_wait_on(&l->waiters, l->loop, &woken, call, site, &lock_kind,
                        l);
    if (rc == 0) {
      if (!l->locked) {
        lock_take(l);
        return 0;
      }
      continue; /* taken by a fast-path caller meanwhile: wait again */
    }
    if (woken && !l->locked)
      lock_wake(l); /* cancelled after the wake-up: hand it on */
    return rc;
  }
}

int cor_lock_acquire(cor_lock_t *l) {
  if (l == NULL)
    return cor__bad_arg("cor_lock_acquire", "l is NULL");
  COR__CHECK_THREAD(l->loop, "cor_lock_acquire");
  /* Fast path: free and nobody queued (a woken waiter still in the list
   * has the lock promised to it: asyncio's fairness). */
  if (!l->locked && l->waiters.head == NULL) {
    lock_take(l);
    return 0;
  }
  return lock_wait(l, "cor_lock_acquire", __builtin_return_address(0));
}

int cor_lock_release(cor_lock_t *l) {
  if (l == NULL)
    return cor__bad_arg("cor_lock_release", "l is NULL");
  COR__CHECK_THREAD(l->loop, "cor_lock_release");
  if (!l->locked)
    return -EPERM;
  l->locked = false;
  l->holder = 0;
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

static const cor__wait_kind event_kind = {"event", NULL};

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
  int rc = wl_wait_on(&e->waiters, e->loop, &woken, "cor_event_wait",
                      __builtin_return_address(0), &event_kind, e);
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

static void sem_describe(const void *obj, cor__buf *out) {
  const struct cor_semaphore *s = obj;
  cor__buf_printf(out, " (value %u)", s->value);
}
static const cor__wait_kind sem_kind = {"semaphore", sem_describe};

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
    int rc = wl_wait_on(&s->waiters, s->loop, &woken,
                        "cor_semaphore_acquire", __builtin_return_address(0),
                        &sem_kind, s);
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

/* ------------------------------------------------------------ condition */

/* asyncio.Condition: waiters queue here, the lock is a cor_lock (the
 * user's, retained, or its own). A wait releases the lock, waits for a
 * notification, then takes the lock again whatever happened, cancellation
 * included (asyncio re-acquires in a finally, then re-raises). */
struct cor_condition {
  cor__obj obj;
  cor_loop_t *loop;
  struct cor_lock *lock;
  wlist waiters;
};

static void condition_free(cor__obj *o) {
  cor_release(((struct cor_condition *)o)->lock);
  cor__sync_free(o);
}

static void cond_describe(const void *obj, cor__buf *out) {
  const struct cor_condition *c = obj;
  cor__buf_printf(out, " (its lock %p)", (void *)c->lock);
}
static const cor__wait_kind cond_kind = {"condition", cond_describe};

cor_condition_t *cor_condition_new(cor_loop_t *loop, cor_lock_t *lock) {
  if (loop == NULL && lock != NULL)
    loop = lock->loop;
  if (lock != NULL && loop != lock->loop)
    return cor__bad_arg_ptr("cor_condition_new",
                            "lock belongs to another loop");
  struct cor_condition *c = cor__sync_new(loop, sizeof *c, COR__OBJ_CONDITION,
                                          "cor_condition_new");
  if (c == NULL)
    return NULL;
  c->lock = lock ? cor_retain(lock) : cor_lock_new(c->loop);
  if (c->lock == NULL) {
    cor__sync_free(&c->obj);
    errno = ENOMEM;
    return NULL;
  }
  return c;
}

cor_lock_t *cor_condition_lock(cor_condition_t *c) {
  if (c == NULL)
    return cor__bad_arg_ptr("cor_condition_lock", "c is NULL");
  COR__CHECK_THREAD_PTR(c->loop, "cor_condition_lock");
  return c->lock;
}

/* Wakes up to n waiters not woken yet, in their order. */
static void cond_notify(struct cor_condition *c, size_t n) {
  for (waiter *w = c->waiters.head; w && n > 0; w = w->next)
    if (!w->woken) {
      wl_wake(w);
      n--;
    }
}

static int cond_wait(struct cor_condition *c, const void *site) {
  struct cor_lock *l = c->lock;
  if (!l->locked)
    return -EPERM;
  /* Before the lock is let go: a wait that cannot suspend must return
   * with the lock as it found it. */
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  if (cor__tls_loop != c->loop)
    return cor__wrong_thread_report(c->loop, "cor_condition_wait");
  l->locked = false;
  l->holder = 0;
  lock_wake(l);
  bool woken;
  int rc = wl_wait_on(&c->waiters, c->loop, &woken, "cor_condition_wait",
                      site, &cond_kind, c);
  /* Take the lock again, also when cancelled, as often as it takes: a
   * cancellation while re-acquiring is kept and returned once held. */
  for (;;) {
    int arc = 0;
    if (!l->locked && l->waiters.head == NULL)
      lock_take(l);
    else
      arc = lock_wait(l, "cor_condition_wait", site);
    if (arc == 0)
      break;
    COR_ASSERT(arc == -ECANCELED);
    rc = -ECANCELED;
  }
  /* Notified but failing (cancelled before it ran, or while taking the
   * lock back): the notification goes to the next waiter, so none is lost
   * (CPython gh-112202). */
  if (rc != 0 && woken)
    cond_notify(c, 1);
  return rc;
}

int cor_condition_wait(cor_condition_t *c) {
  if (c == NULL)
    return cor__bad_arg("cor_condition_wait", "c is NULL");
  COR__CHECK_THREAD(c->loop, "cor_condition_wait");
  return cond_wait(c, __builtin_return_address(0));
}

int cor_condition_wait_for(cor_condition_t *c, bool (*pred)(void *),
                           void *arg) {
  if (c == NULL || pred == NULL)
    return cor__bad_arg("cor_condition_wait_for",
                        c == NULL ? "c is NULL" : "pred is NULL");
  COR__CHECK_THREAD(c->loop, "cor_condition_wait_for");
  const void *site = __builtin_return_address(0);
  if (!c->lock->locked)
    return -EPERM;
  while (!pred(arg)) {
    int rc = cond_wait(c, site);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int cor_condition_notify(cor_condition_t *c, size_t n) {
  if (c == NULL)
    return cor__bad_arg("cor_condition_notify", "c is NULL");
  COR__CHECK_THREAD(c->loop, "cor_condition_notify");
  if (!c->lock->locked)
    return -EPERM;
  cond_notify(c, n);
  return 0;
}

int cor_condition_notify_all(cor_condition_t *c) {
  if (c == NULL)
    return cor__bad_arg("cor_condition_notify_all", "c is NULL");
  COR__CHECK_THREAD(c->loop, "cor_condition_notify_all");
  if (!c->lock->locked)
    return -EPERM;
  cond_notify(c, SIZE_MAX);
  return 0;
}

/* ------------------------------------------------------------ barrier */

/* asyncio.Barrier's states. FILLING: arrivals count up and wait; the
 * parties-th releases them all (DRAINING); arrivals while DRAINING or
 * RESETTING wait for the barrier to empty, the last one out makes it
 * FILLING again (cyclic). asyncio builds it on a Condition; with one loop
 * and no suspension between the state changes, two waiter lists do the
 * same: `fill`, waiting for the release, `block`, waiting for it to empty. */
enum { B_FILLING, B_DRAINING, B_RESETTING, B_BROKEN };

struct cor_barrier {
  cor__obj obj;
  cor_loop_t *loop;
  unsigned parties, count; /* count: arrived and not yet left */
  int state;
  wlist fill, block;
};

static void barrier_describe(const void *obj, cor__buf *out) {
  const struct cor_barrier *b = obj;
  static const char *const st[] = {"filling", "draining", "resetting",
                                   "broken"};
  cor__buf_printf(out, " (%s, %u of %u arrived)", st[b->state], b->count,
                  b->parties);
}
static const cor__wait_kind barrier_kind = {"barrier", barrier_describe};

cor_barrier_t *cor_barrier_new(cor_loop_t *loop, unsigned parties) {
  if (parties == 0)
    return cor__bad_arg_ptr("cor_barrier_new", "parties is 0");
  struct cor_barrier *b =
      cor__sync_new(loop, sizeof *b, COR__OBJ_BARRIER, "cor_barrier_new");
  if (b == NULL)
    return NULL;
  b->parties = parties;
  b->state = B_FILLING;
  return b;
}

static void wake_all(wlist *l) {
  for (waiter *w = l->head; w; w = w->next)
    if (!w->woken)
      wl_wake(w);
}

/* A party leaves (released, broken or cancelled): the last one out ends a
 * drain or a reset and lets the blocked arrivals in (asyncio's _exit). */
static void barrier_exit(struct cor_barrier *b) {
  b->count--;
  if (b->count == 0) {
    if (b->state == B_RESETTING || b->state == B_DRAINING)
      b->state = B_FILLING;
    wake_all(&b->block);
  }
}

int cor_barrier_wait(cor_barrier_t *b, unsigned *index) {
  if (b == NULL)
    return cor__bad_arg("cor_barrier_wait", "b is NULL");
  COR__CHECK_THREAD(b->loop, "cor_barrier_wait");
  const void *site = __builtin_return_address(0);
  bool woken;
  /* Wait while it drains or resets (asyncio's _block); a cancellation here
   * leaves the count alone. */
  while (b->state == B_DRAINING || b->state == B_RESETTING) {
    int rc = wl_wait_on(&b->block, b->loop, &woken, "cor_barrier_wait", site,
                        &barrier_kind, b);
    if (rc != 0)
      return rc;
  }
  if (b->state == B_BROKEN)
    return COR_EBROKEN;
  unsigned i = b->count;
  if (i + 1 == b->parties) {
    /* The last arrival releases the others without waiting. */
    b->count++;
    b->state = B_DRAINING;
    wake_all(&b->fill);
    barrier_exit(b);
    if (index)
      *index = i;
    return 0;
  }
  if (cor__tls_task == NULL)
    return COR_ENOTASK; /* would wait: counted nowhere */
  b->count++;
  int rc = 0;
  while (b->state == B_FILLING) {
    rc = wl_wait_on(&b->fill, b->loop, &woken, "cor_barrier_wait", site,
                    &barrier_kind, b);
    if (rc != 0)
      break;
  }
  /* Read when the task runs, as asyncio's: a reset or an abort between the
   * release and now breaks it too. A cancelled party just leaves (the
   * count goes down; the barrier stays whole). */
  if (rc == 0 && (b->state == B_BROKEN || b->state == B_RESETTING))
    rc = COR_EBROKEN;
  barrier_exit(b);
  if (rc == 0 && index)
    *index = i;
  return rc;
}

int cor_barrier_abort(cor_barrier_t *b) {
  if (b == NULL)
    return cor__bad_arg("cor_barrier_abort", "b is NULL");
  COR__CHECK_THREAD(b->loop, "cor_barrier_abort");
  b->state = B_BROKEN;
  wake_all(&b->fill);
  wake_all(&b->block);
  return 0;
}

int cor_barrier_reset(cor_barrier_t *b) {
  if (b == NULL)
    return cor__bad_arg("cor_barrier_reset", "b is NULL");
  COR__CHECK_THREAD(b->loop, "cor_barrier_reset");
  b->state = b->count > 0 ? B_RESETTING : B_FILLING;
  wake_all(&b->fill);
  wake_all(&b->block);
  return 0;
}

unsigned cor_barrier_parties(const cor_barrier_t *b) {
  if (b == NULL) {
    cor__bad_arg("cor_barrier_parties", "b is NULL");
    return 0;
  }
  COR__CHECK_THREAD_VAL(b->loop, "cor_barrier_parties", 0);
  return b->parties;
}

unsigned cor_barrier_n_waiting(const cor_barrier_t *b) {
  if (b == NULL) {
    cor__bad_arg("cor_barrier_n_waiting", "b is NULL");
    return 0;
  }
  COR__CHECK_THREAD_VAL(b->loop, "cor_barrier_n_waiting", 0);
  return b->state == B_FILLING ? b->count : 0;
}

bool cor_barrier_broken(const cor_barrier_t *b) {
  if (b == NULL) {
    cor__bad_arg("cor_barrier_broken", "b is NULL");
    return false;
  }
  COR__CHECK_THREAD_VAL(b->loop, "cor_barrier_broken", false);
  return b->state == B_BROKEN;
}
