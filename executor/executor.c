/* SPDX-License-Identifier: MIT */
/* Executors: what every pool shares. The object and its two reference
 * counts, the ports that carry finished jobs back to their loops, the
 * loop-job life cycle (cancel node, delivery), each loop's default thread
 * pool, and the shutdown calls.
 *
 * Lifetimes. The application's references (obj) and the internal ones
 * (iref) are apart: when the application drops its last reference the pool
 * is shut down without waiting, but its memory stays until every worker
 * thread exited and every drain it posted ran (each holds an iref). */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/object.h"
#include "base/report.h"
#include "diag/resource.h"
#include "loop/loop.h"
#include "loop/loop_debug.h"
#include "executor_internal.h"
#include "base/atomics.h"

#include <sched.h>

static void executor_obj_free(cor__obj *o);
static void default_close_hook(struct cor_loop *loop);
static void (*prev_close_hook)(struct cor_loop *loop);

static void port_drain_cb(void *arg);
static void port_drain_drop(void *arg);

__attribute__((constructor)) static void executor_module_init(void) {
  cor__obj_register(COR__OBJ_EXECUTOR, executor_obj_free);
  cor__run_shutdown_hook = cor__executor_shutdown_default;
  cor__ts_drop_register(port_drain_cb, port_drain_drop);
}

unsigned cor__affinity_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0)
      return (unsigned)n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

/* ------------------------------------------------------------ the object */

void *cor__executor_alloc(size_t size, const cor__xops *ops, int kind) {
  cor_executor_t *ex = cor__calloc(1, size);
  if (ex == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  int err = -cor__executor_init(ex, ops, kind);
  if (err) {
    cor__free(ex);
    errno = err;
    return NULL;
  }
  return ex;
}

int cor__executor_init(cor_executor_t *ex, const cor__xops *ops, int kind) {
  cor__obj_init(&ex->obj, COR__OBJ_EXECUTOR);
  ex->ops = ops;
  ex->kind = kind;
  ex->iref = 1;
  ex->ports = NULL;
  ex->last_port = NULL;
  return -pthread_mutex_init(&ex->ports_mu, NULL);
}

void cor__executor_iref_get(cor_executor_t *ex) { ck_pr_inc_int(&ex->iref); }

void cor__executor_iref_put(cor_executor_t *ex) {
  /* The exchange-add is a full barrier: what this thread wrote to the pool
   * happens before the destroy that the last one runs. */
  if (cor__sub_ar(&ex->iref, 1) == 0)
    ex->ops->destroy(ex);
}

void cor__executor_fini(cor_executor_t *ex) {
  cor__xport *p = ex->ports;
  while (p) {
    cor__xport *next = p->next;
    /* A drain still posted holds an iref, so nothing is left here but
     * jobs whose loop refused the post (closed): drop them. */
    COR_ASSERT(ck_pr_load_ptr(&p->head) == NULL);
    cor_release(p->loop);
    cor__free(p);
    p = next;
  }
  ex->ports = NULL;
  pthread_mutex_destroy(&ex->ports_mu);
}

static void executor_repr(cor__res *r, cor__buf *out) {
  cor_executor_t *ex =
      cor__container_of(r, cor_executor_t, res);
  ex->ops->repr(ex, out);
}

static const cor__res_type executor_res = {"executor", executor_repr};

void cor__executor_track(cor_executor_t *ex, const void *ra) {
  /* Not made on a loop: debug mode is CORIO_DEBUG's. */
  struct cor_loop *l = cor__tls_loop;
  cor__res_track(&ex->res, &executor_res, NULL, true,
                 l ? cor__loop_debug(l) : cor__debug_env(), ra);
}

static void executor_obj_free(cor__obj *o) {
  cor_executor_t *ex = (cor_executor_t *)o;
  /* Never shut down: asyncio's ResourceWarning. */
  cor__res_release(&ex->res);
  /* asyncio's executor finaliser: shut down without waiting; queued jobs
   * still run and the workers leave when the queue is empty. */
  ex->ops->shutdown(ex, false, false, UINT64_MAX);
  cor__executor_iref_put(ex);
}

unsigned cor_executor_max_workers(const cor_executor_t *ex) {
  return ex ? ex->max_workers : 0;
}

/* The calling thread is a worker of this pool (set by the pools). */
_Thread_local cor_executor_t *cor__tls_worker_of;

static int shutdown_common(cor_executor_t *ex, bool wait, bool cancel,
                           uint64_t deadline, const char *call) {
  if (ex == NULL)
    return cor__bad_arg(call, "ex is NULL");
  if (wait && cor__tls_worker_of == ex)
    return -EDEADLK;
  cor__res_untrack(&ex->res);
  return ex->ops->shutdown(ex, wait, cancel, deadline);
}

int cor_executor_shutdown(cor_executor_t *ex, bool wait, bool cancel_futures) {
  return shutdown_common(ex, wait, cancel_futures, UINT64_MAX,
                         "cor_executor_shutdown");
}

int cor_executor_shutdown_timeout(cor_executor_t *ex, bool cancel_futures,
                                  double timeout) {
  uint64_t deadline;
  if (cor__deadline_after(timeout, &deadline) != 0)
    return cor__bad_arg("cor_executor_shutdown_timeout", "timeout is NaN");
  return shutdown_common(ex, true, cancel_futures, deadline,
                         "cor_executor_shutdown_timeout");
}

/* ------------------------------------------------------------ ports */

cor__xport *cor__executor_port(cor_executor_t *ex, cor_loop_t *loop) {
  cor__xport *p = ck_pr_load_ptr(&ex->last_port);
  if (COR_LIKELY(p != NULL && p->loop == loop))
    return p;
  for (p = ck_pr_load_ptr(&ex->ports); p; p = p->next) {
    if (p->loop == loop) {
      ck_pr_store_ptr(&ex->last_port, p);
      return p;
    }
  }
  pthread_mutex_lock(&ex->ports_mu);
  for (p = ex->ports; p; p = p->next)
    if (p->loop == loop)
      break;
  if (p == NULL && (p = cor__calloc(1, sizeof *p)) != NULL) {
    p->loop = cor_retain(loop);
    p->ex = ex;
    p->next = ex->ports;
    /* Release: readers that find the port see it initialised. */
    ck_pr_store_ptr(&ex->ports, p);
  }
  pthread_mutex_unlock(&ex->ports_mu);
  if (p)
    ck_pr_store_ptr(&ex->last_port, p);
  return p;
}

static void port_deliver(cor__xport *port) {
  /* Take the whole stack at once; it is LIFO, so reverse it to deliver in
   * completion order. */
  cor__xjob *j = ck_pr_fas_ptr(&port->head, NULL), *rev = NULL;
  while (j) {
    cor__xjob *next = j->cnext;
    j->cnext = rev;
    rev = j;
    j = next;
  }
  while (rev) {
    cor__xjob *next = rev->cnext;
    rev->deliver(rev);
    rev = next;
  }
}

static void port_drain_cb(void *arg) {
  cor__xport *port = arg;
  cor_executor_t *ex = port->ex;
  port_deliver(port);
  cor__executor_iref_put(ex); /* the post's reference */
}

/* Jobs whose loop is closed: nobody will run their delivery. Drop them on
 * this thread (the loop no longer runs, so its futures are safe to free). */
static void port_discard(cor__xport *port) {
  cor__xjob *j = ck_pr_fas_ptr(&port->head, NULL);
  while (j) {
    cor__xjob *next = j->cnext;
    if (j->outcome == COR__XJ_DONE && j->code == 0 && j->result &&
        port->ex->kind == COR__X_PROCESS)
      cor__free(j->result); /* process job output bytes */
    cor__free(j->msg);
    j->msg = NULL;
    cor_release(&j->fut);
    j = next;
  }
}

/* The drain's post was dropped unrun: its loop closed first. Nobody will
 * deliver these jobs; drop them, and the post's reference. */
static void port_drain_drop(void *arg) {
  cor__xport *port = arg;
  cor_executor_t *ex = port->ex;
  port_discard(port);
  cor__executor_iref_put(ex);
}

void cor__xport_push(cor__xport *port, cor__xjob *first, cor__xjob *last) {
  cor__xjob *old = ck_pr_load_ptr(&port->head);
  for (;;) {
    last->cnext = old;
    /* Full barrier: the jobs' outcome fields are visible to the loop's
     * exchange that takes them. */
    if (ck_pr_cas_ptr_value(&port->head, old, first, &old))
      break;
  }
  if (old != NULL)
    return; /* a drain is already posted and has not taken the stack yet */
  /* This push made the stack non-empty: it owns the one post. */
  cor_executor_t *ex = port->ex;
  cor__executor_iref_get(ex);
  if (COR_UNLIKELY(cor_call_soon_threadsafe(port->loop, port_drain_cb, port) !=
                   0)) {
    port_discard(port);
    cor__executor_iref_put(ex);
  }
}

bool cor__executor_drain_pending(cor_executor_t *ex, cor_loop_t *loop) {
  for (cor__xport *p = ck_pr_load_ptr(&ex->ports); p; p = p->next)
    if (p->loop == loop && ck_pr_load_ptr(&p->head) != NULL)
      return true;
  return false;
}

/* ------------------------------------------------------------ loop jobs */

static void cancel_node_cb(void *arg) {
  cor__xjob *j = arg;
  j->cancel_ran = true;
  /* Delivered already: only our release is left, and the pool may be gone
   * (nothing of it is needed). Not delivered: the job is still somewhere
   * in the pool (queue, worker, port stack), which keeps the pool alive,
   * and the pool's hook drops it from its queue if it has not started. */
  if (j->release_in_cancel)
    cor_release(&j->fut);
  else
    j->port->ex->ops->cancelled(j);
}

static void cancel_node_drop(cor__fut_cb *n) {
  cor__xjob *j = cor__container_of(n, cor__xjob, cancel_node);
  j->cancel_ran = true; /* never scheduled: nothing to wait for */
}

void cor__xjob_init(cor__xjob *j, cor_loop_t *loop, cor__xport *port,
                    void (*deliver)(cor__xjob *)) {
  cor__future_init(&j->fut, loop, COR__OBJ_FUTURE);
  cor_retain(loop); /* future_free releases it */
  /* Two references: the caller's and the job's (dropped at delivery). */
  cor_retain(&j->fut);
  j->cancel_node = (cor__fut_cb){.fn = cancel_node_cb,
                                 .arg = j,
                                 .drop = cancel_node_drop,
                                 .kind = COR__CB_EMBED};
  cor__future_add_cb(&j->fut, &j->cancel_node);
  j->cnext = NULL;
  j->port = port;
  j->deliver = deliver;
  j->outcome = COR__XJ_DONE;
  j->cancel_ran = false;
  j->release_in_cancel = false;
  j->code = 0;
  j->result = NULL;
  j->msg = NULL;
  j->file = NULL;
  j->line = 0;
}

bool cor__xjob_deliver_cancelled(cor__xjob *x) {
  if (x->outcome == COR__XJ_CANCEL) {
    /* Cancel the future here, on its loop, without scheduling our own
     * cancel node. */
    if (cor__future_remove_cb(&x->fut, &x->cancel_node))
      x->cancel_ran = true;
    cor_future_cancel(&x->fut, "executor shut down");
    cor__xjob_release(x);
    return true;
  }
  if (x->outcome == COR__XJ_DROP) {
    cor__xjob_release(x);
    return true;
  }
  return false;
}

void cor__xjob_release(cor__xjob *j) {
  if (j->fut.state == COR__FUT_CANCELLED && !j->cancel_ran) {
    /* The cancel node is scheduled and has not run: it points at this
     * allocation, so the last reference must wait for it. */
    j->release_in_cancel = true;
    return;
  }
  cor_release(&j->fut);
}

void cor__xjob_finish(cor__xjob *j, int code, void *result, char *msg,
                      const char *file, int line) {
  struct cor_future *f = &j->fut;
  if (f->state == COR__FUT_PENDING) {
    /* Unlinked first, so completing does not schedule it for nothing. Our
     * node is the first one linked: the walk stops at once. */
    if (cor__future_remove_cb(f, &j->cancel_node))
      j->cancel_ran = true;
    if (code < 0)
      cor__future_finish(f, COR__FUT_DONE, code, NULL, msg, file, line);
    else
      cor__future_finish(f, COR__FUT_DONE, 0, result, NULL, NULL, 0);
    if (code >= 0)
      cor__free(msg);
  } else {
    cor__free(msg);
  }
  cor__xjob_release(j);
}

/* ------------------------------------------------------------ defaults */

/* Each loop's default thread pool, made on first use. Few loops, rare
 * changes: an array under a mutex, with a per-thread cache validated by a
 * generation number that every removal bumps. */
typedef struct defpool {
  cor_loop_t *loop;
  cor_executor_t *ex;
} defpool;
static pthread_mutex_t def_mu = PTHREAD_MUTEX_INITIALIZER;
static defpool *defs;
static size_t ndefs, defs_cap;
static int def_gen = 1; /* atomic */
static bool def_hook_installed;
static _Thread_local struct {
  cor_loop_t *loop;
  cor_executor_t *ex;
  int gen;
} def_cache;

cor_executor_t *cor__executor_default(cor_loop_t *loop) {
  int gen = ck_pr_load_int(&def_gen);
  if (COR_LIKELY(def_cache.loop == loop && def_cache.gen == gen))
    return def_cache.ex;
  cor_executor_t *ex = NULL;
  pthread_mutex_lock(&def_mu);
  for (size_t i = 0; i < ndefs; i++)
    if (defs[i].loop == loop)
      ex = defs[i].ex;
  if (ex == NULL) {
    if (!def_hook_installed) {
      /* Chained at run time, once every constructor (task.c sets the
       * hook in its own) has run. */
      prev_close_hook = cor__loop_close_hook;
      cor__loop_close_hook = default_close_hook;
      def_hook_installed = true;
    }
    if (ndefs == defs_cap) {
      size_t cap = defs_cap ? defs_cap * 2 : 8;
      defpool *d = cor__realloc(defs, cap * sizeof *d);
      if (d == NULL)
        goto out;
      defs = d;
      defs_cap = cap;
    }
    cor_thread_pool_opts o = {.name_prefix = "cor-default"};
    ex = cor_thread_pool_new(&o);
    if (ex == NULL)
      goto out;
    cor__res_untrack(&ex->res); /* the loop's, not the application's */
    /* The registry keeps the loop alive, so its address is not reused by
     * another loop while the entry exists. */
    defs[ndefs++] = (defpool){cor_retain(loop), ex};
  }
  def_cache.loop = loop;
  def_cache.ex = ex;
  def_cache.gen = gen;
out:
  pthread_mutex_unlock(&def_mu);
  if (ex == NULL)
    errno = ENOMEM;
  return ex;
}

/* Removes loop's entry; returns its pool (the registry's reference). */
static cor_executor_t *default_take(cor_loop_t *loop, cor_loop_t **loop_ref) {
  cor_executor_t *ex = NULL;
  pthread_mutex_lock(&def_mu);
  for (size_t i = 0; i < ndefs; i++) {
    if (defs[i].loop == loop) {
      ex = defs[i].ex;
      *loop_ref = defs[i].loop;
      defs[i] = defs[--ndefs];
      ck_pr_inc_int(&def_gen); /* every thread's cache is stale now */
      break;
    }
  }
  if (ndefs == 0) {
    cor__free(defs);
    defs = NULL;
    defs_cap = 0;
  }
  pthread_mutex_unlock(&def_mu);
  return ex;
}

size_t cor__executor_shutdown_default_until(cor_loop_t *loop,
                                            uint64_t deadline,
                                            const char *prefix) {
  cor_loop_t *lref = NULL;
  cor_executor_t *ex = default_take(loop, &lref);
  if (ex == NULL)
    return 0;
  size_t left = 0;
  if (ex->ops->shutdown(ex, true, false, deadline) == -ETIMEDOUT &&
      ex->ops->report)
    left = ex->ops->report(ex, prefix ? prefix : "");
  /* The workers handed their last completions to the loop's queue: run the
   * loop until those drains ran, so no future is left pending and no
   * posted drain is dropped by close. Only when this thread may run it. */
  for (int i = 0; i < 64 && cor__executor_drain_pending(ex, loop) &&
                  !cor_loop_is_running(loop) && !cor_loop_is_closed(loop) &&
                  cor__now_ns() < deadline;
       i++) {
    cor_loop_stop(loop);
    if (cor_loop_run_forever(loop) != 0)
      break;
  }
  cor_release(ex);
  cor_release(lref);
  return left;
}

void cor__executor_shutdown_default(cor_loop_t *loop) {
  cor__executor_shutdown_default_until(loop, UINT64_MAX, NULL);
}

static void default_close_hook(struct cor_loop *loop) {
  /* asyncio's loop.close(): the default executor is shut down without
   * waiting; what it still finishes is dropped (the loop is closed). */
  cor_loop_t *lref = NULL;
  cor_executor_t *ex = default_take(loop, &lref);
  if (ex) {
    cor_executor_shutdown(ex, false, false);
    cor_release(ex);
    cor_release(lref);
  }
  if (prev_close_hook)
    prev_close_hook(loop);
}
