/* SPDX-License-Identifier: MIT */
/* Waiting for many futures (asyncio.wait, asyncio.as_completed) and
 * deadlines over a block of code (asyncio.timeout, 3.11's rules).
 *
 * Both waits watch n futures through one allocation of n done-callback
 * nodes (a watch), and suspend the task on an embedded future
 * (cor__wait_embedded) that a node wakes when the caller's condition holds.
 * Time-out scopes are built on the task's cancel counter, as cor_wait_for:
 * a scope turns only its own cancellation into -ETIMEDOUT. */
#include "base/alloc.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/object.h"
#include "loop/loop.h"
#include "task/task_internal.h"

#include <stddef.h>

/* ------------------------------------------------------------ watches */

/* A watch on n futures: one embedded done-callback node per future, all in
 * one allocation. A node the future already handed to call_soon cannot be
 * taken back, so the watch outlives its owner until the last such node ran:
 * `live` counts the nodes registered or scheduled, `owner` turns NULL when
 * the owner stops watching. */
typedef struct watch watch;
typedef struct {
  cor__fut_cb node; /* first: the drop hook gets the node */
  watch *w;
  struct cor_future *f;
} watch_slot;

typedef void (*watch_fired_fn)(void *owner, struct cor_future *f);

struct watch {
  size_t n, live;
  void *owner;
  watch_fired_fn fired;
  watch_slot slots[];
};

static void watch_fire(void *arg) {
  watch_slot *s = arg;
  watch *w = s->w;
  w->live--;
  if (w->owner)
    w->fired(w->owner, s->f);
  else if (w->live == 0)
    cor__free(w);
}

/* A node discarded unscheduled (call_soon failed as the future finished):
 * the future is done, so report it now rather than never. */
static void watch_drop(cor__fut_cb *n) {
  watch_fire(cor__container_of(n, watch_slot, node));
}

/* Watches the pending futures of futs (the caller holds a reference to
 * each while it watches). NULL on ENOMEM. */
static watch *watch_new(struct cor_future **futs, size_t n, void *owner,
                        watch_fired_fn fired) {
  watch *w = cor__malloc(sizeof *w + n * sizeof(watch_slot));
  if (w == NULL)
    return NULL;
  w->n = n;
  w->live = 0;
  w->owner = owner;
  w->fired = fired;
  for (size_t i = 0; i < n; i++) {
    watch_slot *s = &w->slots[i];
    s->w = w;
    s->f = futs[i];
    s->node = (cor__fut_cb){.fn = watch_fire,
                            .arg = s,
                            .drop = watch_drop,
                            .kind = COR__CB_EMBED};
    if (futs[i]->state == COR__FUT_PENDING) {
      cor__future_add_cb(futs[i], &s->node);
      w->live++;
    }
  }
  return w;
}

/* The owner stops watching: nodes still on pending futures come off; the
 * memory goes with the last scheduled node, or now. */
static void watch_stop(watch *w) {
  for (size_t i = 0; i < w->n; i++) {
    watch_slot *s = &w->slots[i];
    if (s->f->state == COR__FUT_PENDING && cor__future_remove_cb(s->f, &s->node))
      w->live--;
  }
  w->owner = NULL;
  if (w->live == 0)
    cor__free(w);
}

/* The checks cor_wait and cor_as_completed_new share: every element set,
 * on `loop`, not the calling task itself. 0, or the logged error. */
static int check_futs(struct cor_future **futs, size_t n, struct cor_loop *loop,
                      const char *call) {
  struct cor_task *t = cor__tls_task;
  for (size_t i = 0; i < n; i++) {
    if (futs[i] == NULL)
      return cor__bad_arg(call, "an element of futs is NULL");
    COR__CHECK_THREAD(futs[i]->loop, call);
    if (futs[i]->loop != loop)
      return cor__bad_arg(call, "an element of futs belongs to another loop");
    if (t && futs[i] == &t->fut)
      return cor__bad_arg(call, "futs holds the calling task itself");
  }
  return 0;
}

/* ------------------------------------------------------------ cor_wait */

typedef struct {
  int when;
  size_t ndone;
  size_t n;
  bool failed;
  bool waiting; /* cor__wait_embedded's flag */
  struct cor_future wake;
} wait_state;

/* A future that ended with an error (not a cancellation): asyncio's
 * "exception". */
static bool fut_failed(const struct cor_future *f) {
  return f->state == COR__FUT_DONE && f->code != 0;
}

static bool wait_met(const wait_state *st) {
  switch (st->when) {
  case COR_FIRST_COMPLETED:
    return st->ndone > 0;
  case COR_FIRST_EXCEPTION:
    return st->failed || st->ndone == st->n;
  default:
    return st->ndone == st->n;
  }
}

static void wait_fired(void *owner, struct cor_future *f) {
  wait_state *st = owner;
  st->ndone++;
  if (fut_failed(f))
    st->failed = true;
  if (wait_met(st))
    cor__wake_embedded(&st->wake, st->waiting, 0);
}

/* Counts the done futures of futs into st. */
static void wait_count(wait_state *st, struct cor_future **futs, size_t n) {
  st->ndone = 0;
  st->failed = false;
  for (size_t i = 0; i < n; i++) {
    if (futs[i]->state != COR__FUT_PENDING)
      st->ndone++;
    if (fut_failed(futs[i]))
      st->failed = true;
  }
}

static int wait_at(cor_future_t **futs, size_t n, int when, double timeout,
                   size_t *ndone, const void *site, int line) {
  if (ndone)
    *ndone = 0;
  struct cor_task *t = cor__tls_task;
  if (t == NULL)
    return COR_ENOTASK;
  if (futs == NULL || n == 0)
    return cor__bad_arg("cor_wait", futs == NULL ? "futs is NULL"
                                                 : "n is 0 (nothing to wait for)");
  if (when != COR_FIRST_COMPLETED && when != COR_FIRST_EXCEPTION &&
      when != COR_ALL_COMPLETED)
    return cor__bad_arg("cor_wait", "when is not COR_FIRST_COMPLETED, "
                                    "COR_FIRST_EXCEPTION or COR_ALL_COMPLETED");
  struct cor_loop *loop = t->tl->loop;
  int rc = check_futs(futs, n, loop, "cor_wait");
  if (rc != 0)
    return rc;
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg("cor_wait", "timeout is NaN");
  wait_state st = {.when = when, .n = n};
  wait_count(&st, futs, n);
  if (wait_met(&st)) {
    rc = 0;
  } else if (dl != 0 && dl <= cor__now_ns()) {
    rc = -ETIMEDOUT; /* a time-out of 0: look, do not wait */
  } else {
    /* Held while watched: a future released by its other owners meanwhile
     * must not vanish under its node. */
    for (size_t i = 0; i < n; i++)
      cor_retain(futs[i]);
    watch *w = watch_new(futs, n, &st, wait_fired);
    if (w == NULL) {
      rc = -ENOMEM;
    } else {
      rc = cor__wait_embedded_at(loop, &st.wake, &st.waiting, dl, "cor_wait",
                                 site, line);
      watch_stop(w);
    }
    for (size_t i = 0; i < n; i++)
      cor_release(futs[i]);
    wait_count(&st, futs, n);
    /* The time-out and the last completion in one iteration: the futures
     * say what happened. */
    if (rc == -ETIMEDOUT && wait_met(&st))
      rc = 0;
  }
  if (ndone)
    *ndone = st.ndone;
  return rc;
}

int(cor_wait)(cor_future_t **futs, size_t n, int when, double timeout,
              size_t *ndone) {
  return wait_at(futs, n, when, timeout, ndone, __builtin_return_address(0),
                 0);
}

int cor_wait_at(cor_future_t **futs, size_t n, int when, double timeout,
                size_t *ndone, const char *file, int line) {
  return wait_at(futs, n, when, timeout, ndone, file, line);
}

/* ------------------------------------------------------------ as_completed */

struct cor_as_completed {
  cor__obj obj;
  struct cor_loop *loop;
  size_t n;        /* futures watched */
  size_t handed;   /* handed back by next */
  size_t dhead, dcount; /* the FIFO of done futures not yet handed back */
  uint64_t deadline;    /* 0: none */
  bool timed_out;
  bool waiting; /* cor__wait_embedded's flag */
  watch *w;
  struct cor_future wake;
  struct cor_future **futs; /* n, each held */
  struct cor_future **done; /* ring of n */
};

static void ac_push(cor_as_completed_t *it, struct cor_future *f) {
  it->done[(it->dhead + it->dcount++) % it->n] = f;
}

static void ac_fired(void *owner, struct cor_future *f) {
  cor_as_completed_t *it = owner;
  if (!it->timed_out && it->deadline && cor__now_ns() >= it->deadline)
    it->timed_out = true; /* asyncio's time-out handler ran first */
  if (it->timed_out)
    return;
  ac_push(it, f);
  cor__wake_embedded(&it->wake, it->waiting, 0);
}

static void ac_free(cor__obj *o) {
  cor_as_completed_t *it = (cor_as_completed_t *)o;
  if (it->w)
    watch_stop(it->w);
  for (size_t i = 0; i < it->n; i++)
    cor_release(it->futs[i]);
  cor_release(it->loop);
  cor__free(it);
}

__attribute__((constructor)) static void wait_register(void) {
  cor__obj_register(COR__OBJ_AS_COMPLETED, ac_free);
}

cor_as_completed_t *cor_as_completed_new(cor_future_t **futs, size_t n,
                                         double timeout) {
  if (n > 0 && futs == NULL)
    return cor__bad_arg_ptr("cor_as_completed_new", "futs is NULL with n > 0");
  struct cor_loop *loop = n > 0 && futs[0] ? futs[0]->loop : cor__tls_loop;
  if (loop == NULL)
    return cor__bad_arg_ptr("cor_as_completed_new",
                            n > 0 ? "an element of futs is NULL"
                                  : "no futures and no loop is running");
  COR__CHECK_THREAD_PTR(loop, "cor_as_completed_new");
  int rc = check_futs(futs, n, loop, "cor_as_completed_new");
  if (rc != 0) {
    errno = -rc;
    return NULL;
  }
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg_ptr("cor_as_completed_new", "timeout is NaN");
  /* One allocation: the object, then the held futures, then the ring. */
  cor_as_completed_t *it =
      cor__calloc(1, sizeof *it + 2 * n * sizeof(struct cor_future *));
  if (it == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor__obj_init(&it->obj, COR__OBJ_AS_COMPLETED);
  it->loop = cor_retain(loop);
  it->n = n;
  it->deadline = dl;
  it->futs = (struct cor_future **)(it + 1);
  it->done = it->futs + n;
  for (size_t i = 0; i < n; i++) {
    it->futs[i] = cor_retain(futs[i]);
    if (futs[i]->state != COR__FUT_PENDING)
      ac_push(it, futs[i]); /* the done ones first, in the given order */
  }
  if (it->dcount < n) {
    it->w = watch_new(it->futs, n, it, ac_fired);
    if (it->w == NULL) {
      cor_release(it);
      errno = ENOMEM;
      return NULL;
    }
  }
  return it;
}

static int as_completed_next_at(cor_as_completed_t *it, cor_future_t **done,
                                const void *site, int line) {
  if (done)
    *done = NULL;
  if (it == NULL || done == NULL)
    return cor__bad_arg("cor_as_completed_next",
                        it == NULL ? "it is NULL" : "done is NULL");
  COR__CHECK_THREAD(it->loop, "cor_as_completed_next");
  int rc = 0;
  if (it->dcount == 0) {
    if (it->handed == it->n)
      return COR_ECLOSED;
    if (!it->timed_out && it->deadline && cor__now_ns() >= it->deadline)
      it->timed_out = true;
    if (it->timed_out)
      return -ETIMEDOUT;
    rc = cor__wait_embedded_at(it->loop, &it->wake, &it->waiting, it->deadline,
                               "cor_as_completed_next", site, line);
    if (rc == -ETIMEDOUT)
      it->timed_out = true;
    /* What finished before the time-out is still handed back first. */
    if (rc == -ECANCELED || rc == COR_ENOTASK || rc == -EBUSY ||
        it->dcount == 0)
      return rc;
  }
  *done = it->done[it->dhead];
  it->dhead = (it->dhead + 1) % it->n;
  it->dcount--;
  it->handed++;
  return 0;
}

int(cor_as_completed_next)(cor_as_completed_t *it, cor_future_t **done) {
  return as_completed_next_at(it, done, __builtin_return_address(0), 0);
}

int cor_as_completed_next_at(cor_as_completed_t *it, cor_future_t **done,
                             const char *file, int line) {
  return as_completed_next_at(it, done, file, line);
}

/* ------------------------------------------------------------ time-out scopes */

enum { TO_ENTERED = 0, TO_EXPIRING };

struct cor_timeout {
  struct cor_task *task; /* held */
  struct cor_loop *loop;
  uint64_t when; /* 0: no deadline */
  cor_handle_t h;
  int cancelling; /* the task's count when the scope was entered */
  uint8_t state;
};

static void to_expire(void *arg) {
  cor_timeout_t *t = arg;
  t->h = (cor_handle_t){0};
  t->state = TO_EXPIRING;
  cor_task_cancel(t->task, NULL); /* -EINVAL for a finished task: nothing */
}

/* (Re)arms the timer for t->when. */
static int to_arm(cor_timeout_t *t) {
  if (t->h.id != 0) {
    cor_handle_cancel(t->loop, t->h);
    t->h = (cor_handle_t){0};
  }
  if (t->when == 0)
    return 0;
  return cor_call_at_ns(t->loop, t->when, to_expire, t, &t->h);
}

/* Loop time in seconds as a deadline: 0 for COR_FOREVER; a time at or
 * before the clock's origin becomes its first nanosecond (already past). */
static int to_when_ns(double when, uint64_t *ns, const char *call) {
  if (isnan(when))
    return cor__bad_arg(call, "when is NaN");
  if (when == INFINITY) {
    *ns = 0;
    return 0;
  }
  uint64_t v = cor__duration_ns(when);
  *ns = v ? v : 1;
  return 0;
}

static cor_timeout_t *to_enter(uint64_t when, const char *call) {
  struct cor_task *task = cor__tls_task;
  if (task == NULL) {
    COR_LOG(COR_LOG_ERROR, "%s: called outside a task", call);
    errno = -COR_ENOTASK;
    return NULL;
  }
  cor_timeout_t *t = cor__calloc(1, sizeof *t);
  if (t == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  t->task = cor_retain(task);
  t->loop = task->tl->loop;
  t->when = when;
  t->cancelling = task->ncancel;
  t->state = TO_ENTERED;
  int rc = to_arm(t);
  if (rc != 0) {
    cor_release(t->task);
    cor__free(t);
    errno = -rc;
    return NULL;
  }
  return t;
}

cor_timeout_t *cor_timeout_enter(double delay) {
  uint64_t dl;
  if (cor__timeout_deadline(delay, &dl) != 0)
    return cor__bad_arg_ptr("cor_timeout_enter", "delay is NaN");
  return to_enter(dl, "cor_timeout_enter");
}

cor_timeout_t *cor_timeout_enter_at(double when) {
  uint64_t ns = 0;
  if (to_when_ns(when, &ns, "cor_timeout_enter_at") != 0) {
    errno = EINVAL;
    return NULL;
  }
  return to_enter(ns, "cor_timeout_enter_at");
}

int cor_timeout_reschedule(cor_timeout_t *t, double when) {
  if (t == NULL)
    return cor__bad_arg("cor_timeout_reschedule", "t is NULL");
  COR__CHECK_THREAD(t->loop, "cor_timeout_reschedule");
  uint64_t ns = 0;
  int rc = to_when_ns(when, &ns, "cor_timeout_reschedule");
  if (rc != 0)
    return rc;
  if (t->state != TO_ENTERED) {
    COR_LOG(COR_LOG_ERROR,
            "cor_timeout_reschedule: the scope expired already");
    return -EPERM; /* asyncio's RuntimeError */
  }
  t->when = ns;
  return to_arm(t);
}

double cor_timeout_when(const cor_timeout_t *t) {
  if (t == NULL) {
    cor__bad_arg("cor_timeout_when", "t is NULL");
    return NAN;
  }
  COR__CHECK_THREAD_VAL(t->loop, "cor_timeout_when", NAN);
  return t->when ? (double)t->when / 1e9 : COR_FOREVER;
}

bool cor_timeout_expired(const cor_timeout_t *t) {
  if (t == NULL) {
    cor__bad_arg("cor_timeout_expired", "t is NULL");
    return false;
  }
  COR__CHECK_THREAD_VAL(t->loop, "cor_timeout_expired", false);
  return t->state == TO_EXPIRING;
}

int cor_timeout_exit(cor_timeout_t *t, int rc) {
  if (t == NULL)
    return cor__bad_arg("cor_timeout_exit", "t is NULL");
  COR__CHECK_THREAD(t->loop, "cor_timeout_exit");
  struct cor_task *task = t->task;
  bool own = cor__tls_task == task;
  if (t->h.id != 0)
    cor_handle_cancel(t->loop, t->h);
  /* 3.11's rule: only a cancellation this scope asked for, with no other
   * request pending, becomes a time-out. */
  if (t->state == TO_EXPIRING && cor_task_uncancel(task) <= t->cancelling &&
      rc == -ECANCELED)
    rc = -ETIMEDOUT;
  cor_release(task);
  cor__free(t);
  if (!own)
    return cor__bad_arg("cor_timeout_exit",
                        "the scope was entered by another task");
  return rc;
}
