/* SPDX-License-Identifier: MIT */
/* Composition over futures and tasks: wait_for, shield, gather and task
 * groups, with asyncio's (3.11+) cancellation rules. All of them are built on
 * cor_await and the task's cancel counter, so a cancellation arriving from
 * outside is never mistaken for one of their own. */
#include "base/alloc.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/object.h"
#include "loop/loop.h"
#include "task/task_internal.h"

#include <math.h>

/* ------------------------------------------------------------ wait_for */

typedef struct {
  struct cor_task *task;
  bool fired;
} wf_state;

static void wf_expire(void *arg) {
  wf_state *st = arg;
  st->fired = true;
  cor_task_cancel(st->task, NULL);
}

/* Each suspending call here has the two forms of corio/task.h: the macro's
 * (the caller's file and line) and the function's (its return address);
 * both hand that site to the awaits they make, so a task suspended inside
 * is "running at" its caller's line, not at one of this file's. */
static int wait_for_at(cor_future_t *f, double timeout, void **result,
                       const void *site, int line) {
  struct cor_task *t = cor__tls_task;
  if (t == NULL)
    return COR_ENOTASK;
  if (f == NULL)
    return cor__bad_arg("cor_wait_for", "fut is NULL");
  COR__CHECK_THREAD(f->loop, "cor_wait_for");
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg("cor_wait_for", "timeout is NaN");
  if (f->state != COR__FUT_PENDING || dl == 0) /* < 0 or INFINITY: no limit */
    return cor__await_at(f, result, site, line);
  /* asyncio.timeout: expiry cancels this task, whose await passes the
   * cancellation on to f and then waits until f finished its clean-up. The
   * cancel counter tells our own cancellation from one from outside. */
  struct cor_loop *loop = t->tl->loop;
  wf_state st = {t, false};
  int cancelling = t->ncancel;
  cor_handle_t h = {0};
  int rc;
  if (timeout == 0) {
    /* "Do not wait" (asyncio 3.11's wait_for(fut, 0)): expire now. The
     * await below passes the cancellation on to f and waits for its
     * clean-up, as at any expiry. */
    wf_expire(&st);
  } else if ((rc = cor_call_at_ns(loop, dl, wf_expire, &st, &h)) != 0) {
    return rc;
  }
  rc = cor__await_at(f, result, site, line);
  if (!st.fired) {
    cor_handle_cancel(loop, h);
  } else if (cor_task_uncancel(t) <= cancelling && rc == -ECANCELED) {
    rc = -ETIMEDOUT;
  }
  return rc;
}

int(cor_wait_for)(cor_future_t *f, double timeout, void **result) {
  return wait_for_at(f, timeout, result, __builtin_return_address(0), 0);
}

int cor_wait_for_at(cor_future_t *f, double timeout, void **result,
                    const char *file, int line) {
  return wait_for_at(f, timeout, result, file, line);
}

/* ------------------------------------------------------------ shield */

static void shield_done(cor_future_t *inner, void *arg) {
  cor_future_t *outer = arg;
  if (outer->state == COR__FUT_PENDING) {
    if (inner->state == COR__FUT_CANCELLED) {
      cor_future_cancel(outer, inner->msg);
    } else {
      inner->retrieved = 1; /* passed on to the outer future */
      cor__future_finish(outer, COR__FUT_DONE, inner->code, inner->result,
                         inner->msg ? cor__strdup(inner->msg) : NULL,
                         inner->file, inner->line);
    }
  } else if (inner->state == COR__FUT_DONE) {
    inner->retrieved = 1; /* nobody waits for it any more: as asyncio */
  }
  cor_release(outer);
}

static void shield_drop(cor__fut_cb *n) { cor_release(n->uarg); }

cor_future_t *cor_shield(cor_future_t *inner) {
  if (inner == NULL)
    return cor__bad_arg_ptr("cor_shield", "fut is NULL");
  COR__CHECK_THREAD_PTR(inner->loop, "cor_shield");
  if (inner->state != COR__FUT_PENDING)
    return cor_retain(inner);
  cor_future_t *outer = cor_future_new(inner->loop);
  if (outer == NULL)
    return NULL;
  cor_retain(outer); /* held by the callback on inner */
  int rc = cor__future_add_done_callback_drop(inner, shield_done, outer,
                                              shield_drop);
  if (rc != 0) {
    cor_release(outer);
    cor_release(outer);
    errno = -rc;
    return NULL;
  }
  return outer;
}

/* ------------------------------------------------------------ gather */

static int gather_at(cor_future_t **futs, size_t n, int *codes,
                     void **results, const void *site, int line) {
  struct cor_task *t = cor__tls_task;
  if (t == NULL)
    return COR_ENOTASK;
  if (n > 0 && futs == NULL)
    return cor__bad_arg("cor_gather", "futs is NULL with n > 0");
  for (size_t i = 0; i < n; i++) {
    if (futs[i] == NULL)
      return cor__bad_arg("cor_gather", "an element of futs is NULL");
    COR__CHECK_THREAD(futs[i]->loop, "cor_gather");
    if (futs[i]->loop != t->tl->loop || futs[i] == &t->fut)
      return cor__bad_arg("cor_gather",
                          futs[i] == &t->fut
                              ? "futs holds the calling task itself"
                              : "an element of futs belongs to another loop");
  }
  /* Awaiting each in turn waits for all: they run concurrently anyway. A
   * rise of our cancel counter during an await means the gather itself was
   * cancelled (the child we were on got the cancellation already). */
  bool cancelled = false;
  for (size_t i = 0; i < n; i++) {
    int before = t->ncancel;
    void *res = NULL;
    int rc = cor__await_at(futs[i], &res, site, line);
    if (t->ncancel > before && !cancelled) {
      cancelled = true;
      for (size_t j = i; j < n; j++)
        if (futs[j]->state == COR__FUT_PENDING)
          cor_future_cancel(futs[j], NULL);
    }
    if (futs[i]->state == COR__FUT_PENDING) {
      /* Our await ended on our own cancellation while this child still
       * cleans up: wait for it (further requests are already passed on). */
      i--;
      continue;
    }
    if (rc == -ECANCELED && futs[i]->state != COR__FUT_CANCELLED &&
        futs[i]->code != -ECANCELED)
      rc = cor__future_take(futs[i], &res); /* its own outcome */
    if (codes)
      codes[i] = rc;
    if (results)
      results[i] = rc == 0 ? res : NULL;
  }
  return cancelled ? -ECANCELED : 0;
}

int(cor_gather)(cor_future_t **futs, size_t n, int *codes, void **results) {
  return gather_at(futs, n, codes, results, __builtin_return_address(0), 0);
}

int cor_gather_at(cor_future_t **futs, size_t n, int *codes, void **results,
                  const char *file, int line) {
  return gather_at(futs, n, codes, results, file, line);
}

/* ------------------------------------------------------------ task groups */

struct cor_taskgroup {
  struct cor_task *parent;
  struct cor_loop *loop;
  struct cor_task **kids;
  size_t n, cap;
  size_t unfinished;
  int first_err;
  char *first_msg;
  const char *first_file;
  int first_line;
  bool aborting, waiting, parent_cancel_requested, closed;
  struct cor_future *on_done; /* what wait() awaits, while it does */
};

cor_taskgroup_t *cor_taskgroup_new(void) {
  struct cor_task *t = cor__tls_task;
  if (t == NULL) {
    errno = -COR_ENOTASK;
    return NULL;
  }
  cor_taskgroup_t *g = cor__calloc(1, sizeof *g);
  if (g == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  g->parent = t;
  g->loop = t->tl->loop;
  return g;
}

static void tg_abort(cor_taskgroup_t *g) {
  g->aborting = true;
  for (size_t i = 0; i < g->n; i++)
    if (g->kids[i]->fut.state == COR__FUT_PENDING)
      cor_task_cancel(g->kids[i], NULL);
}

static void tg_child_done(cor_future_t *f, void *arg) {
  cor_taskgroup_t *g = arg;
  g->unfinished--;
  if (f->state == COR__FUT_DONE && f->code < 0) {
    f->retrieved = 1; /* the group reports it */
    if (g->first_err == 0) {
      g->first_err = f->code;
      g->first_msg = f->msg ? cor__strdup(f->msg) : NULL;
      g->first_file = f->file;
      g->first_line = f->line;
    }
    if (!g->aborting) {
      tg_abort(g);
      /* Interrupt the body of the group, as asyncio cancels the parent
       * when it is not yet waiting in __aexit__. */
      if (!g->waiting && g->parent->fut.state == COR__FUT_PENDING) {
        g->parent_cancel_requested = true;
        cor_task_cancel(g->parent, NULL);
      }
    }
  }
  if (g->unfinished == 0 && g->on_done &&
      g->on_done->state == COR__FUT_PENDING)
    cor_future_set_result(g->on_done, NULL);
}

cor_task_t *cor_taskgroup_spawn(cor_taskgroup_t *g, cor_coro_t *coro,
                                const char *name) {
  /* coro is consumed even on failure, a wrong thread's included. */
  if (g == NULL || (COR_UNLIKELY(cor__tls_loop != g->loop) &&
                    cor__wrong_thread(g->loop, "cor_taskgroup_spawn"))) {
    cor__coro_discard(coro);
    if (g == NULL)
      return cor__bad_arg_ptr("cor_taskgroup_spawn", "group is NULL");
    errno = -COR_ETHREAD;
    return NULL;
  }
  if (g->closed || g->aborting) {
    cor__coro_discard(coro);
    errno = g->aborting && !g->closed ? ECANCELED : EINVAL;
    return NULL;
  }
  if (g->n == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 8;
    struct cor_task **k = cor__realloc(g->kids, cap * sizeof *k);
    if (k == NULL) {
      cor__coro_discard(coro);
      errno = ENOMEM;
      return NULL;
    }
    g->kids = k;
    g->cap = cap;
  }
  cor_task_t *t = cor_create_task(g->loop, coro, name);
  if (t == NULL)
    return NULL;
  int rc = cor_future_add_done_callback(&t->fut, tg_child_done, g);
  if (rc != 0) {
    /* Cannot watch it: it must not outlive the group unseen. */
    cor_task_cancel(t, NULL);
    cor_release(t);
    errno = -rc;
    return NULL;
  }
  g->kids[g->n++] = t; /* the group keeps the creation reference */
  g->unfinished++;
  return cor_retain(t);
}

static int taskgroup_wait_at(cor_taskgroup_t *g, const void *site,
                             int line) {
  struct cor_task *t = cor__tls_task;
  if (t == NULL)
    return COR_ENOTASK;
  if (g == NULL)
    return cor__bad_arg("cor_taskgroup_wait", "group is NULL");
  COR__CHECK_THREAD(g->loop, "cor_taskgroup_wait");
  if (g->parent != t || g->closed)
    return -EINVAL;
  g->waiting = true;
  bool propagate_cancel = false;
  while (g->unfinished > 0) {
    cor_future_t *f = cor_future_new(g->loop);
    if (f == NULL) {
      /* No memory to wait properly: yield until the children are done. */
      cor__yield_at(site, line);
      continue;
    }
    g->on_done = f;
    int rc = cor__await_at(f, NULL, site, line);
    g->on_done = NULL;
    if (rc == -ECANCELED && f->state != COR__FUT_DONE && !g->aborting) {
      /* The parent is cancelled from outside while children run. */
      propagate_cancel = true;
      tg_abort(g);
    }
    cor_release(f);
  }
  if (g->parent_cancel_requested && cor_task_uncancel(t) == 0)
    propagate_cancel = false;
  int rc = propagate_cancel ? -ECANCELED : g->first_err;
  if (!propagate_cancel && g->first_err != 0) {
    cor__free(t->err_msg);
    t->err_code = g->first_err;
    t->err_msg = g->first_msg;
    t->err_file = g->first_file;
    t->err_line = g->first_line;
    g->first_msg = NULL;
  }
  g->closed = true;
  for (size_t i = 0; i < g->n; i++) {
    cor_future_remove_done_callback(&g->kids[i]->fut, tg_child_done, g);
    cor_release(g->kids[i]);
  }
  cor__free(g->kids);
  cor__free(g->first_msg);
  cor__free(g);
  return rc;
}

int(cor_taskgroup_wait)(cor_taskgroup_t *g) {
  return taskgroup_wait_at(g, __builtin_return_address(0), 0);
}

int cor_taskgroup_wait_at(cor_taskgroup_t *g, const char *file, int line) {
  return taskgroup_wait_at(g, file, line);
}

/* ------------------------------------------------------------ embedded waits */

/* The one wait of an object that embeds its future (streams, datagrams,
 * processes, servers, the waiter nodes of core/sync.c): no allocation. */

static void wait_timeout_cb(void *arg) {
  struct cor_future *f = arg;
  if (f->state == COR__FUT_PENDING)
    cor__future_finish(f, COR__FUT_DONE, -ETIMEDOUT, NULL, NULL, NULL, 0);
}

int cor__wait_embedded(struct cor_loop *loop, struct cor_future *f, bool *flag,
                       uint64_t deadline_ns, const char *call,
                       const void *site) {
  return cor__wait_embedded_at(loop, f, flag, deadline_ns, call,
                               site ? site : __builtin_return_address(0), 0);
}

int cor__wait_embedded_at(struct cor_loop *loop, struct cor_future *f,
                          bool *flag, uint64_t deadline_ns, const char *call,
                          const void *site, int line) {
  if (COR_UNLIKELY(cor__tls_task == NULL))
    return COR_ENOTASK;
  /* The public calls checked their object's loop already; what is left is
   * a task of another loop waiting on an object of a loop nobody runs. */
  if (COR_UNLIKELY(cor__tls_loop != loop))
    return cor__wrong_thread_report(loop, call);
  if (COR_UNLIKELY(*flag))
    return -EBUSY;
  /* A deadline already past (a time-out of 0: "do not wait") answers now,
   * without a trip through the loop. */
  if (deadline_ns && deadline_ns <= cor__now_ns())
    return -ETIMEDOUT;
  cor__future_init(f, loop, COR__OBJ_FUTURE);
  cor_handle_t h = {0};
  if (deadline_ns) {
    int rc = cor_call_at_ns(loop, deadline_ns, wait_timeout_cb, f, &h);
    if (rc != 0) {
      cor__future_fini(f);
      return rc;
    }
  }
  *flag = true;
  /* "running at": the application's call that waits, not this line. */
  int rc = cor__await_at(f, NULL, site, line);
  *flag = false;
  if (deadline_ns)
    cor_handle_cancel(loop, h); /* -ENOENT when it fired: fine */
  if (f->state == COR__FUT_PENDING) {
    /* cor_await failed before suspending (it never does for a pending
     * future of this loop, but stay safe): detach the task's node. */
    cor__future_finish(f, COR__FUT_CANCELLED, -ECANCELED, NULL, NULL, NULL, 0);
  }
  cor__future_fini(f);
  return rc;
}

void cor__wake_embedded(struct cor_future *f, bool flag, int code) {
  if (flag && f->state == COR__FUT_PENDING)
    cor__future_finish(f, COR__FUT_DONE, code, NULL, NULL, NULL, 0);
}
