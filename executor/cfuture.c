/* SPDX-License-Identifier: MIT */
/* Concurrent futures (concurrent.futures.Future) and the two bridges
 * between them and the loops: run_coroutine_threadsafe (a coroutine on a
 * loop, its outcome in a cfuture) and await_cfuture (a task on any loop
 * waiting for a cfuture without blocking its loop).
 *
 * A cfuture's state word is also the futex its blocked waiters sleep on. A
 * waiter first spins (a result that comes back within ~20 us costs no
 * syscall on either side), then announces itself in `sleepers` and sleeps;
 * the completer exchanges the state (a full barrier) and calls futex_wake
 * only when it then sees a sleeper. No lock: one CAS on the state makes the
 * one completer, and the callback list is a lock-free stack the completer
 * closes with one exchange. */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/object.h"
#include "loop/loop.h"
#include "internal.h"
#include "base/atomics.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* How long cor_cfuture_result spins before it sleeps. A run_coroutine_
 * threadsafe round trip to an awake loop takes a few us; sleeping and being
 * woken costs ~13 us plus a futex_wake syscall on the loop's side. */
#define WAIT_SPIN_NS 20000u

int cor__forked_child;

static void cfuture_free(cor__obj *o);

__attribute__((constructor)) static void cfuture_module_init(void) {
  cor__obj_register(COR__OBJ_CFUTURE, cfuture_free);
}

int cor__fork_error(const char *call) {
  static int logged;
  if (ck_pr_fas_int(&logged, 1) == 0)
    COR_LOG(COR_LOG_ERROR,
            "%s: this process was forked while a corio runtime was running; "
            "its loop threads do not exist in the child, so every call on the "
            "runtime, its loops and concurrent futures fails with COR_ECLOSED. "
            "Create runtimes after fork, or exec.",
            call);
  return COR_ECLOSED;
}

/* ------------------------------------------------------------ lifecycle */

/* Bytes to allocate for a cfuture of `size` bytes, line-aligned inside
 * (cor__malloc aligns to 16). */
#define CF_MEM(size) ((size) + COR_CACHELINE - 16)

static cor_cfuture_t *cfuture_init(void *mem) {
  cor_cfuture_t *cf =
      (cor_cfuture_t *)(((uintptr_t)mem + COR_CACHELINE - 1) &
                        ~(uintptr_t)(COR_CACHELINE - 1));
  cor__obj_init(&cf->obj, COR__OBJ_CFUTURE);
  cf->state = COR__CF_PENDING;
  cf->sleepers = 0;
  cf->cbs = NULL;
  cf->code = 0;
  cf->line = 0;
  cf->result = NULL;
  cf->msg = NULL;
  cf->file = NULL;
  cf->loop = NULL;
  cf->cancel_fn = NULL;
  cf->cancel_arg = NULL;
  cf->fini = NULL;
  cf->mem = mem;
  cf->aw_slot = NULL;
  return cf;
}

cor_cfuture_t *cor__cfuture_alloc(size_t size) {
  if (cor__in_forked_child()) {
    cor__fork_error("cor_cfuture");
    errno = -COR_ECLOSED;
    return NULL;
  }
  COR_ASSERT(size >= sizeof(struct cor_cfuture));
  /* Line-aligned: the completion's fields share one cache line (struct
   * cor_cfuture). */
  void *mem = cor__malloc(CF_MEM(size));
  if (mem == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  return cfuture_init(mem);
}

static void cfuture_free(cor__obj *o) {
  cor_cfuture_t *cf = (cor_cfuture_t *)o;
  /* Nodes still linked belong to a cfuture freed while pending: they never
   * ran, so they are dropped. */
  cor__cf_cb *n = cf->cbs;
  while (n && n != COR__CF_CBS_CLOSED) {
    cor__cf_cb *next = n->next;
    if (n->drop)
      n->drop(n);
    n = next;
  }
  if (cf->fini)
    cf->fini(cf);
  cor__free(cf->msg);
  cor__free(cf->mem);
}

void cor__cfuture_set_cancel_fn(cor_cfuture_t *cf, cor__cf_cancel_fn fn,
                                void *arg) {
  cf->cancel_fn = fn;
  cf->cancel_arg = arg;
}

/* ------------------------------------------------------------ completing */

/* Makes the caller the one completer: PENDING (or RUNNING when
 * `from_running`) -> COMPLETING. Otherwise returns the final state seen
 * (or RUNNING): a call that loses to another completer returns once the
 * outcome is published, so "already done" always means cor_cfuture_done. */
static int claim(cor_cfuture_t *cf, bool from_running) {
  /* No load first: a CAS straight from PENDING (the usual case) asks for
   * the line once, for writing, instead of a read then an upgrade. */
  int s = COR__CF_PENDING;
  unsigned k = 0;
  for (;;) {
    if (s == COR__CF_COMPLETING) {
      /* The winner is between its CAS and its exchange: a few stores
       * (unless it was preempted there: the spin yields now and then). */
      cor__spin_step(&k, UINT64_MAX);
      s = ck_pr_load_int(&cf->state);
      continue;
    }
    if (s != COR__CF_PENDING && !(from_running && s == COR__CF_RUNNING))
      return s;
    /* Seq-cst CAS (lock cmpxchg), spelt so that TSan sees it. */
    if (cor__cas_sc_rlx(&cf->state, &s, COR__CF_COMPLETING))
      return COR__CF_COMPLETING;
  }
}

/* The one completer: records the outcome, publishes the state and takes
 * the callbacks (oldest first). */
static cor__cf_cb *finish(cor_cfuture_t *cf, int state, int code, void *result,
                          char *msg, const char *file, int line) {
  cf->code = code;
  cf->result = result;
  cf->msg = msg;
  cf->file = file;
  cf->line = line;
  /* The exchange is a full barrier: the outcome above is visible before the
   * state (waiters read the state, then the outcome), and our read of
   * `sleepers` in wake_and_run cannot move before it (Dekker with the
   * waiter's increment then state check). */
  cor__xchg_sc(&cf->state, state);
  /* Closed after the state is final: a node pushed before runs here, one
   * that finds the list closed runs at once (cor__cfuture_add_cb). */
  cor__cf_cb *n = cor__xchg_sc(&cf->cbs, COR__CF_CBS_CLOSED);
  cor__cf_cb *fifo = NULL;
  while (n) { /* newest first -> oldest first */
    cor__cf_cb *next = n->next;
    n->next = fifo;
    fifo = n;
    n = next;
  }
  return fifo;
}

static void wake_and_run(cor_cfuture_t *cf, cor__cf_cb *cbs) {
  if (cor__load_sc(&cf->sleepers) != 0)
    cor__futex_wake_all(&cf->state);
  while (cbs) {
    cor__cf_cb *next = cbs->next; /* fn may free its node */
    cbs->fn(cf, cbs);
    cbs = next;
  }
}

static int complete(cor_cfuture_t *cf, int state, int code, void *result,
                    const char *msg, const char *file, int line) {
  char *m = msg ? cor__strdup(msg) : NULL; /* NULL on ENOMEM: no message */
  if (claim(cf, true) != COR__CF_COMPLETING) {
    cor__free(m);
    return -EINVAL;
  }
  wake_and_run(cf, finish(cf, state, code, result, m, file, line));
  return 0;
}

int cor__cfuture_set_result(cor_cfuture_t *cf, void *value) {
  return complete(cf, COR__CF_DONE, 0, value, NULL, NULL, 0);
}

int cor__cfuture_set_error(cor_cfuture_t *cf, int code, const char *msg,
                           const char *file, int line) {
  if (code >= 0)
    return -EINVAL;
  if (code == -ECANCELED)
    return cor__cfuture_set_cancelled(cf, msg);
  return complete(cf, COR__CF_DONE, code, NULL, msg, file, line);
}

int cor__cfuture_set_cancelled(cor_cfuture_t *cf, const char *msg) {
  return complete(cf, COR__CF_CANCELLED, -ECANCELED, NULL, msg, NULL, 0);
}

bool cor__cfuture_set_running(cor_cfuture_t *cf) {
  int s = COR__CF_PENDING;
  return cor__cas_sc_rlx(&cf->state, &s, COR__CF_RUNNING);
}

void cor__cfuture_add_cb(cor_cfuture_t *cf, cor__cf_cb *n) {
  cor__cf_cb *head = NULL; /* the usual case; a failed CAS loads the rest */
  for (;;) {
    if (head == COR__CF_CBS_CLOSED) {
      /* Closed after the state was published: cf is done. */
      n->fn(cf, n);
      return;
    }
    n->next = head;
    /* Release: the node's fields before it is reachable. */
    if (cor__cas_sc_acq(&cf->cbs, &head, n))
      return;
  }
}

/* ------------------------------------------------------------ public */

cor_cfuture_t *cor_cfuture_new(void) { return cor__cfuture_new(); }

int cor_cfuture_set_result(cor_cfuture_t *cf, void *value) {
  if (cf == NULL)
    return cor__bad_arg("cor_cfuture_set_result", "cf is NULL");
  if (cor__in_forked_child())
    return cor__fork_error("cor_cfuture_set_result");
  if (cor__cfuture_set_result(cf, value) != 0)
    return cor__bad_arg("cor_cfuture_set_result",
                        "cf is already done or cancelled");
  return 0;
}

int cor_cfuture_set_error(cor_cfuture_t *cf, int code, const char *msg) {
  if (cf == NULL || code >= 0)
    return cor__bad_arg("cor_cfuture_set_error",
                        cf == NULL ? "cf is NULL" : "code is not negative");
  if (cor__in_forked_child())
    return cor__fork_error("cor_cfuture_set_error");
  if (cor__cfuture_set_error(cf, code, msg, NULL, 0) != 0)
    return cor__bad_arg("cor_cfuture_set_error",
                        "cf is already done or cancelled");
  return 0;
}

int cor_cfuture_cancel(cor_cfuture_t *cf) {
  if (cf == NULL)
    return cor__bad_arg("cor_cfuture_cancel", "cf is NULL");
  if (cor__in_forked_child())
    return cor__fork_error("cor_cfuture_cancel");
  int s = claim(cf, false);
  if (s != COR__CF_COMPLETING)
    return s == COR__CF_RUNNING ? -EBUSY : -EINVAL;
  cor__cf_cb *cbs =
      finish(cf, COR__CF_CANCELLED, -ECANCELED, NULL, NULL, NULL, 0);
  /* Tell the source first (the task's cancellation is posted to its loop),
   * then the waiters and callbacks, as concurrent.futures does. The caller's
   * reference keeps cf alive throughout. */
  if (cf->cancel_fn)
    cf->cancel_fn(cf, cf->cancel_arg);
  wake_and_run(cf, cbs);
  return 0;
}

bool cor_cfuture_done(const cor_cfuture_t *cf) {
  return cf && ck_pr_load_int((int *)&cf->state) >= COR__CF_DONE;
}

bool cor_cfuture_cancelled(const cor_cfuture_t *cf) {
  return cf && ck_pr_load_int((int *)&cf->state) == COR__CF_CANCELLED;
}

const char *cor_cfuture_message(const cor_cfuture_t *cf) {
  if (!cor_cfuture_done(cf))
    return NULL;
  ck_pr_fence_acquire();
  return cf->msg;
}

static void user_cb_run(cor_cfuture_t *cf, cor__cf_cb *n) {
  n->ucb(cf, n->uarg);
  cor__free(n);
}
static void user_cb_drop(cor__cf_cb *n) { cor__free(n); }

int cor_cfuture_add_done_callback(cor_cfuture_t *cf, cor_cfuture_done_fn cb,
                                  void *arg) {
  if (cf == NULL || cb == NULL)
    return cor__bad_arg("cor_cfuture_add_done_callback",
                        cf == NULL ? "cf is NULL" : "cb is NULL");
  if (cor__in_forked_child())
    return cor__fork_error("cor_cfuture_add_done_callback");
  cor__cf_cb *n = cor__malloc(sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  n->fn = user_cb_run;
  n->drop = user_cb_drop;
  n->ucb = cb;
  n->uarg = arg;
  cor__cfuture_add_cb(cf, n);
  return 0;
}

/* The outcome, once done (after an acquire load of the state). */
static int take(cor_cfuture_t *cf, void **result) {
  ck_pr_fence_acquire(); /* the outcome was written before the state */
  if (cf->code == 0 && result)
    *result = cf->result;
  return cf->code;
}

int cor_cfuture_result(cor_cfuture_t *cf, double timeout, void **result) {
  if (cf == NULL)
    return cor__bad_arg("cor_cfuture_result", "cf is NULL");
  if (cor__in_forked_child())
    return cor__fork_error("cor_cfuture_result");
  if (ck_pr_load_int(&cf->state) >= COR__CF_DONE)
    return take(cf, result);
  if (cf->loop != NULL && cf->loop == cor__tls_loop)
    return COR_ETHREAD; /* the loop that must complete it is this thread */
  uint64_t deadline;
  if (cor__deadline_after(timeout, &deadline) != 0)
    return cor__bad_arg("cor_cfuture_result", "timeout is NaN");
  if (timeout == 0)
    return -ETIMEDOUT;
  /* Spin first, reading the clock every 64 pauses only. */
  uint64_t now = cor__now_ns();
  uint64_t spin_end = now + WAIT_SPIN_NS;
  if (spin_end > deadline)
    spin_end = deadline;
  for (unsigned k = 0;;) {
    if (ck_pr_load_int(&cf->state) >= COR__CF_DONE)
      return take(cf, result);
    if (!cor__spin_step(&k, spin_end))
      break;
  }
  now = cor__now_ns();
  for (;;) {
    /* Announce, then look once more (the other half of the Dekker in
     * finish/wake_and_run): either the completer sees us and wakes
     * us, or we see the state it published. The increment is a full
     * barrier. */
    ck_pr_inc_int(&cf->sleepers);
    int s = ck_pr_load_int(&cf->state);
    int rc = 0;
    if (s < COR__CF_DONE)
      rc = cor__futex_wait(&cf->state, s, deadline);
    ck_pr_dec_int(&cf->sleepers);
    if (ck_pr_load_int(&cf->state) >= COR__CF_DONE)
      return take(cf, result);
    if (rc == -ETIMEDOUT || (deadline != UINT64_MAX && cor__now_ns() >= deadline))
      return -ETIMEDOUT;
    if (cor__in_forked_child())
      return cor__fork_error("cor_cfuture_result");
  }
}

/* ------------------------------------------------------------ await */

/* A task waiting for a cfuture: its node in the cfuture's list and the
 * loop-bound future the task awaits. Owned by the cfuture's list until the
 * node runs (or is dropped); freed on the awaiting loop's thread. */
typedef struct awaiter {
  cor__cf_cb node; /* first */
  cor_future_t *f;
  cor_loop_t *loop;
  struct cor_task *task; /* the awaiting task: touched only while f pends */
  /* --- what the completer reads is above (one line when embedded) */
  cor_cfuture_t *cf; /* a reference, so that the task's own release of cf
                      * is a decrement, not a free in its way */
  bool embedded;     /* cf's spare record (cf->aw_slot): not malloc'd */
  int taken;         /* cf's spare record: claimed by an await (CAS) */
} awaiter;

static void aw_free(awaiter *a) {
  cor_release(a->f);
  cor_cfuture_t *cf = a->cf;
  if (!a->embedded)
    cor__free(a);
  /* Last: an embedded record lives in cf. Never the last reference inside
   * cf's own completion: the completer holds one throughout. */
  cor_release(cf);
}

static void aw_wake(void *p) {
  awaiter *a = p;
  /* The task may have been cancelled meanwhile: f is then done already. */
  if (!cor_future_done(a->f))
    cor_future_set_result(a->f, NULL);
  aw_free(a);
}

/* The wake-up posted through the awaiting loop's door, run by that loop on
 * its own stack. While f is pending, the task is suspended on it (a
 * cancellation completes f first), and its node is f's only callback.
 * Rather than complete f (which schedules the task's step on the ready
 * queue, behind the node hand-back of this door batch and a trip through
 * the ready ring), unlink the node, complete f with nobody to tell, and run
 * the step now: the task resumes as soon as the door delivers. Debug mode
 * keeps the ready-queue path (it times each step from the loop). */
static void aw_wake_posted(void *p) {
  awaiter *a = p;
  cor_future_t *f = a->f;
  struct cor_task *t = a->task;
  if (!cor_future_done(f) && cor__tls_task == NULL &&
      !cor__loop_debug(a->loop) && cor__task_sole_waiter(t, f)) {
    /* The task reads cf's outcome then drops its reference: ask for the
     * line (written by the completer's core) for writing now. */
    __builtin_prefetch(a->cf, 1, 3);
    cor_callback step;
    void *arg;
    cor__task_take_step(t, f, &step, &arg);
    cor_future_set_result(f, NULL); /* nobody left to schedule */
    step(arg);
    /* Freed once the task suspended again: the frees (and cf's, usually
     * the last reference) are off the path from wake-up to its next move. */
    aw_free(a);
    return;
  }
  aw_wake(a);
}

static void aw_fire(cor_cfuture_t *cf, cor__cf_cb *n) {
  (void)cf;
  awaiter *a = (awaiter *)n;
  if (a->loop == cor__tls_loop) {
    aw_wake(a); /* completed on the awaiting loop itself */
    return;
  }
  /* The loop's cross-thread door: no syscall while that loop is awake. */
  if (cor_call_soon_threadsafe(a->loop, aw_wake_posted, a) != 0)
    aw_free(a); /* the loop is closed: its tasks are gone */
}

static void aw_drop(cor__cf_cb *n) {
  /* Unreachable while the node holds its reference on cf; kept for the
   * contract of cor__cf_cb. */
  awaiter *a = (awaiter *)n;
  cor_release(a->f);
  if (!a->embedded)
    cor__free(a);
}

int cor_await_cfuture(cor_cfuture_t *cf, void **result) {
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  if (cf == NULL)
    return cor__bad_arg("cor_await_cfuture", "cf is NULL");
  if (cor__in_forked_child())
    return cor__fork_error("cor_await_cfuture");
  if (ck_pr_load_int(&cf->state) < COR__CF_DONE) {
    cor_loop_t *loop = cor__tls_loop;
    cor_future_t *f = cor_future_new(loop);
    if (f == NULL)
      return -ENOMEM;
    awaiter *a = cf->aw_slot;
    int free_slot = 0;
    if (a != NULL &&
        cor__cas_sc_rlx(&a->taken, &free_slot, 1)) {
      a->embedded = true;
    } else if ((a = cor__malloc(sizeof *a)) != NULL) {
      a->embedded = false;
    } else {
      cor_release(f);
      return -ENOMEM;
    }
    a->node.fn = aw_fire;
    a->node.drop = aw_drop;
    a->f = cor_retain(f);
    a->loop = loop;
    a->task = cor__tls_task;
    a->cf = cor_retain(cf);
    cor__cfuture_add_cb(cf, &a->node);
    /* "running at" the application's call, not this line. */
    int rc = cor__await_at(f, NULL, __builtin_return_address(0), 0);
    cor_release(f);
    if (rc != 0) {
      /* Cancelled while waiting: pass it on, as asyncio's wrap_future. */
      cor_cfuture_cancel(cf);
      return rc;
    }
  }
  int rc = take(cf, result);
  if (rc < 0 && rc != -ECANCELED && (cf->msg || cf->file))
    cor__record_error(rc, cf->msg, cf->file, cf->line); /* re-raise as is */
  return rc;
}

/* ------------------------------------------------------------ run_coroutine */

/* The bridge of one run_coroutine_threadsafe: lives in the cfuture's own
 * allocation. The coroutine is consumed on the caller's thread (so its
 * object is recycled there) and re-made on the loop's thread for the task.
 * References on the cfuture: the caller's, and the bridge's until the task
 * ended (or never started). */
typedef struct rct {
  struct cor_cfuture cf; /* first */
  /* Written on the loop's thread: on cf's second line, which the loop
   * fetches for writing when the start arrives. */
  cor__rt_loop *rl;      /* the runtime's part of loop, or NULL */
  struct cor_task *task; /* loop thread only: the task while it runs */
  struct cor_loop *loop; /* a reference, dropped with the cfuture */
  cor_fn fn;
  void *arg;
  const char *fname, *file;
  int line;
  char *name;            /* copied task name, or NULL */
  /* The first awaiter's record (cf.aw_slot), on a line of its own: the
   * awaiting loop writes it after the start was posted, while this loop
   * reads the fields above; the completer reads it right after cf's first
   * line, and prefetches both at once. */
  awaiter aw COR_ALIGNED_CL;
} rct;

static void rct_fini(cor_cfuture_t *cf) {
  rct *r = (rct *)cf;
  cor__free(r->name);
  cor_release(r->loop);
}

/* The task's place in its loop's load is given back before its cfuture
 * completes, so whoever sees the outcome also sees the load drop. */
static void rct_unload(rct *r) {
  if (r->rl) {
    cor__rt_task_ended(r->rl);
    r->rl = NULL;
  }
}

static void rct_end(rct *r) {
  rct_unload(r);
  cor_release(&r->cf); /* the bridge's reference */
}

/* The task's done callback (a heap node: it keeps the task alive until it
 * ran), on the loop's thread. */
static void rct_task_done(cor_future_t *f, void *arg) {
  rct *r = arg;
  /* Both lines the completion needs, fetched together rather than one
   * after the other (the awaiter is found through the first). */
  __builtin_prefetch(&r->cf, 1, 3);
  __builtin_prefetch(&r->aw, 0, 3);
  r->task = NULL;
  void *res = NULL;
  int code = cor__future_take(f, &res); /* retrieved: no "never retrieved" */
  rct_unload(r);
  if (f->state == COR__FUT_CANCELLED)
    cor__cfuture_set_cancelled(&r->cf, f->msg);
  else if (code == 0)
    cor__cfuture_set_result(&r->cf, res);
  else
    cor__cfuture_set_error(&r->cf, code, f->msg, f->file, f->line);
  rct_end(r);
}

/* The task was destroyed pending (its loop closed): the callback never ran. */
static void rct_task_drop(cor__fut_cb *n) {
  rct *r = n->uarg;
  r->task = NULL;
  rct_unload(r);
  cor__cfuture_set_error(&r->cf, COR_ECLOSED,
                         "the loop closed before the task finished", NULL, 0);
  rct_end(r);
}

/* The task's body: the coroutine, then its outcome straight into cf, from
 * the task itself, as the task's future will record it (the same rules as
 * core/task.c's task_entry): no done callback to allocate, schedule and run
 * an iteration later, so the awaiting side hears of it sooner. The done
 * callback stays registered until then, for a task destroyed pending (its
 * drop completes cf with COR_ECLOSED). */
static int rct_body(void *p, void **result) {
  rct *r = p;
  struct cor_task *t = cor__tls_task;
  int rc = r->fn(r->arg, result);
  const char *emsg, *efile;
  int eline;
  if (rc == 0 && cor__task_must_cancel(t))
    rc = -ECANCELED; /* as task_entry: cancelled right before it returned */
  if (cor_future_remove_done_callback(cor_task_future(t), rct_task_done, r) != 1)
    return rc; /* not watched (rct_start failed to): nothing to report */
  r->task = NULL;
  /* Its outcome is handed on here, as rct_task_done's cor__future_take did:
   * no "never retrieved" report for the task's own future. */
  cor__task_mark_retrieved(t);
  rct_unload(r);
  if (rc == 0) {
    cor__cfuture_set_result(&r->cf, *result);
  } else if (rc == -ECANCELED) {
    cor__cfuture_set_cancelled(&r->cf, cor__task_cancel_msg(t));
  } else if (rc > 0) {
    char buf[96];
    snprintf(buf, sizeof buf, "task body returned %d (codes are 0 or < 0)",
             rc);
    cor__cfuture_set_error(&r->cf, -EINVAL, buf, cor__task_file(t),
                           cor__task_line(t));
  } else if (cor__task_failure(t, rc, &emsg, &efile, &eline)) {
    cor__cfuture_set_error(&r->cf, rc, emsg, efile, eline);
  } else {
    cor__cfuture_set_error(&r->cf, rc, NULL, NULL, 0);
  }
  rct_end(r); /* r may be gone from here */
  return rc;
}

/* On the loop's thread: make the task. */
static void rct_start(void *p) {
  rct *r = p;
  /* Written here (task) and at the end (rl): one fetch for writing rather
   * than a read then an upgrade. */
  __builtin_prefetch(&r->rl, 1, 3);
  if (ck_pr_load_int(&r->cf.state) != COR__CF_PENDING) {
    rct_end(r); /* cancelled before it started: never runs, as asyncio */
    return;
  }
  if (r->rl && !cor__rt_accepting(r->rl)) {
    /* Admitted when posted, but the runtime began shutting down since: a
     * task cancelled before it starts never runs. */
    rct_unload(r);
    cor__cfuture_set_cancelled(&r->cf, "the runtime is shutting down");
    rct_end(r);
    return;
  }
  /* The user's coroutine name and creation site, for reports. */
  cor_coro_t *co = cor_coro_new_at(rct_body, r, r->fname, r->file, r->line);
  cor_task_t *t = co ? cor_create_task(r->loop, co, r->name) : NULL;
  if (t == NULL) {
    int e = errno ? errno : ENOMEM;
    rct_unload(r);
    cor__cfuture_set_error(&r->cf, -e, "cannot create the task", NULL, 0);
    rct_end(r);
    return;
  }
  int rc = cor__future_add_done_callback_drop(cor_task_future(t), rct_task_done, r,
                                              rct_task_drop);
  if (rc != 0) {
    /* Nobody would see its outcome: stop it before it starts. */
    cor_task_cancel(t, NULL);
    cor_release(t);
    rct_unload(r);
    cor__cfuture_set_error(&r->cf, rc, "cannot watch the task", NULL, 0);
    rct_end(r);
    return;
  }
  r->task = t;
  cor_release(t); /* the loop keeps it while pending, the callback after */
}

/* On the loop's thread: cfuture cancelled -> cancel the task. */
static void rct_cancel_task(void *p) {
  rct *r = p;
  if (r->task)
    cor_task_cancel(r->task, "cancelled through its concurrent future");
  cor_release(&r->cf);
}

static void rct_cancelled(cor_cfuture_t *cf, void *arg) {
  (void)arg;
  rct *r = (rct *)cf;
  cor_retain(cf);
  if (r->loop == cor__tls_loop)
    rct_cancel_task(r);
  else if (cor_call_soon_threadsafe(r->loop, rct_cancel_task, r) != 0)
    cor_release(cf); /* loop closed: its task is gone already */
}

/* One spare bridge allocation per thread, taken by the next submit. It is
 * allocated and written right after a submit posted its start, while the
 * target loop works on it: the block most likely last held a bridge that
 * the other loop read and wrote, and writing it then moves its cache lines
 * here off the round trip's path, instead of stalling the next submit's
 * post behind those misses. Freed at thread exit (a pthread key). */
#define RCT_MEM CF_MEM(sizeof(rct))
static _Thread_local void *rct_spare;
static pthread_key_t rct_spare_key;
static pthread_once_t rct_spare_once = PTHREAD_ONCE_INIT;
static bool rct_spare_key_ok;
static void rct_spare_free(void *m) { cor__free(m); }
static void rct_spare_key_make(void) {
  rct_spare_key_ok = pthread_key_create(&rct_spare_key, rct_spare_free) == 0;
}

static void rct_spare_prepare(void) {
  if (rct_spare != NULL)
    return;
  pthread_once(&rct_spare_once, rct_spare_key_make);
  if (!rct_spare_key_ok)
    return;
  void *m = cor__malloc(RCT_MEM);
  if (m == NULL)
    return; /* no spare: the next submit allocates */
  memset(m, 0, RCT_MEM);
  if (pthread_setspecific(rct_spare_key, m) != 0) {
    cor__free(m);
    return;
  }
  rct_spare = m;
}

static rct *rct_alloc(void) {
  void *m = rct_spare;
  if (m == NULL)
    return (rct *)cor__cfuture_alloc(sizeof(rct));
  if (cor__in_forked_child()) {
    cor__fork_error("cor_cfuture");
    errno = -COR_ECLOSED;
    return NULL;
  }
  rct_spare = NULL;
  pthread_setspecific(rct_spare_key, NULL);
  return (rct *)cfuture_init(m);
}

cor_cfuture_t *cor__rct_submit(cor_coro_t *coro, struct cor_loop *loop,
                               cor__rt_loop *rl, const char *name,
                               const char *call) {
  struct cor_coro c;
  int err;
  if (cor__coro_take(coro, &c) != 0 || loop == NULL) {
    cor__bad_arg(call, coro == NULL   ? "coro is NULL"
                       : loop == NULL ? "loop is NULL"
                                      : "coro was already consumed or closed");
    err = EINVAL;
    goto fail;
  }
  rct *r = rct_alloc();
  if (r == NULL) {
    err = errno;
    goto fail;
  }
  r->name = NULL;
  if (name && (r->name = cor__strdup(name)) == NULL) {
    cor__free(r->cf.mem);
    err = ENOMEM;
    goto fail;
  }
  r->cf.loop = loop;
  r->cf.fini = rct_fini;
  r->aw.taken = 0;
  r->cf.aw_slot = &r->aw;
  cor__cfuture_set_cancel_fn(&r->cf, rct_cancelled, NULL);
  r->loop = cor_retain(loop);
  r->rl = rl;
  r->fn = c.fn;
  r->arg = c.arg;
  r->fname = c.name;
  r->file = c.file;
  r->line = c.line;
  r->task = NULL;
  r->cf.obj.refs = 2; /* the caller's and the bridge's */
  if (loop == cor__tls_loop) {
    rct_start(r);
    return &r->cf;
  }
  int rc = cor_call_soon_threadsafe(loop, rct_start, r);
  if (rc != 0) {
    r->cf.obj.refs = 1;
    r->rl = NULL;
    cor_release(&r->cf);
    err = -rc;
    goto fail;
  }
  rct_spare_prepare(); /* while the loop starts the task */
  return &r->cf;
fail:
  if (rl)
    cor__rt_task_ended(rl);
  errno = err;
  return NULL;
}

cor_cfuture_t *cor_run_coroutine_threadsafe(cor_coro_t *coro,
                                            cor_loop_t *loop) {
  if (cor__in_forked_child()) {
    cor__coro_discard(coro);
    cor__fork_error("cor_run_coroutine_threadsafe");
    errno = -COR_ECLOSED;
    return NULL;
  }
  if (loop != NULL && cor__loop_closed(loop)) {
    cor__coro_discard(coro);
    errno = -COR_ECLOSED;
    return NULL;
  }
  cor__rt_loop *rl = loop ? cor__loop_runtime(loop) : NULL;
  if (rl && !cor__rt_task_admit(rl)) {
    cor__coro_discard(coro);
    errno = -COR_ECLOSED;
    return NULL;
  }
  return cor__rct_submit(coro, loop, rl, NULL, "cor_run_coroutine_threadsafe");
}
