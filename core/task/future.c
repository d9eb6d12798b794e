/* SPDX-License-Identifier: MIT */
/* Futures (asyncio.Future): an outcome and the callbacks waiting for it.
 *
 * Callbacks are a FIFO list of nodes. A task awaiting a future links a node
 * embedded in the task (no allocation on the await path); user callbacks
 * get a heap node. Completion hands every node to cor_call_soon, never runs
 * one inline, as asyncio does. */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/census.h"
#include "base/error.h"
#include "base/log.h"
#include "base/object.h"
#include "loop/loop.h"
#include "task/task_internal.h"

#include <stdarg.h>

static void future_free(cor__obj *o);

__attribute__((constructor)) static void future_module_init(void) {
  cor__obj_register(COR__OBJ_FUTURE, future_free);
}

void cor__future_init(struct cor_future *f, struct cor_loop *loop,
                      enum cor__obj_type type) {
  cor__obj_init(&f->obj, type);
  f->state = COR__FUT_PENDING;
  f->retrieved = 0;
  f->is_task = type == COR__OBJ_TASK;
  f->code = 0;
  f->loop = loop;
  f->result = NULL;
  f->msg = NULL;
  f->file = NULL;
  f->line = 0;
  f->cbs = NULL;
  f->cbs_tail = &f->cbs;
  f->bt = NULL; /* set by the constructors in debug mode */
}

cor_future_t *cor_future_new(cor_loop_t *loop) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL)
    return cor__bad_arg_ptr("cor_future_new",
                            "loop is NULL and no loop is running");
  COR__CHECK_THREAD_PTR(loop, "cor_future_new");
  struct cor_future *f = cor__malloc(sizeof *f);
  if (f == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor__future_init(f, loop, COR__OBJ_FUTURE);
  if (COR_UNLIKELY(loop->debug))
    f->bt = cor__bt_new(__builtin_return_address(0));
  /* A plain future may outlive everything else that names its loop. */
  cor_retain(loop);
  return f;
}

/* ------------------------------------------------------------ callbacks */

void cor__future_add_cb(struct cor_future *f, cor__fut_cb *n) {
  n->next = NULL;
  *f->cbs_tail = n;
  f->cbs_tail = &n->next;
}

bool cor__future_remove_cb(struct cor_future *f, cor__fut_cb *n) {
  for (cor__fut_cb **pp = &f->cbs; *pp; pp = &(*pp)->next) {
    if (*pp == n) {
      *pp = n->next;
      if (f->cbs_tail == &n->next)
        f->cbs_tail = pp;
      return true;
    }
  }
  return false;
}

static void heap_node_free(cor__fut_cb *n, bool dropped) {
  if (dropped && n->drop)
    n->drop(n);
  cor_release(n->fut); /* NULL until scheduled */
  cor__free(n);
}

static void run_heap_cb(void *arg) {
  cor__fut_cb *n = arg;
  n->ucb(n->fut, n->uarg);
  heap_node_free(n, false);
}

static void schedule_node(struct cor_future *f, cor__fut_cb *n) {
  int rc;
  if (n->kind == COR__CB_EMBED) {
    rc = cor_call_soon(f->loop, n->fn, n->arg, NULL);
    if (COR_UNLIKELY(rc != 0)) {
      COR_LOG(COR_LOG_ERROR, "cannot schedule a done callback: %s",
              cor_strerror(rc));
      if (n->drop)
        n->drop(n);
    }
    return;
  }
  n->fut = cor_retain(f); /* the callback receives a live future */
  rc = cor_call_soon(f->loop, run_heap_cb, n, NULL);
  if (COR_UNLIKELY(rc != 0)) {
    COR_LOG(COR_LOG_ERROR, "cannot schedule a done callback: %s",
            cor_strerror(rc));
    heap_node_free(n, true);
  }
}

void cor__future_finish(struct cor_future *f, int state, int code,
                        void *result, char *msg, const char *file, int line) {
  COR_ASSERT(f->state == COR__FUT_PENDING);
  f->state = (uint8_t)state;
  f->code = code;
  f->result = result;
  f->msg = msg;
  f->file = file;
  f->line = line;
  cor__fut_cb *n = f->cbs;
  f->cbs = NULL;
  f->cbs_tail = &f->cbs;
  while (n) {
    cor__fut_cb *next = n->next;
    schedule_node(f, n);
    n = next;
  }
}

int cor__future_add_done_callback_drop(struct cor_future *f, cor_done_fn cb,
                                       void *arg,
                                       void (*drop)(cor__fut_cb *)) {
  if (f == NULL || cb == NULL)
    return -EINVAL;
  cor__fut_cb *n = cor__malloc(sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  n->next = NULL;
  n->fn = NULL;
  n->arg = NULL;
  n->drop = drop;
  n->kind = COR__CB_HEAP;
  n->fut = NULL;
  n->ucb = cb;
  n->uarg = arg;
  if (f->state != COR__FUT_PENDING) {
    n->fut = cor_retain(f);
    int rc = cor_call_soon(f->loop, run_heap_cb, n, NULL);
    if (rc != 0) {
      n->drop = NULL; /* the caller keeps its argument on failure */
      heap_node_free(n, false);
    }
    return rc;
  }
  cor__future_add_cb(f, n);
  return 0;
}

int cor_future_add_done_callback(cor_future_t *f, cor_done_fn cb, void *arg) {
  if (f == NULL)
    return cor__bad_arg("cor_future_add_done_callback", "fut is NULL");
  COR__CHECK_THREAD(f->loop, "cor_future_add_done_callback");
  if (cb == NULL)
    return cor__bad_arg("cor_future_add_done_callback", "cb is NULL");
  return cor__future_add_done_callback_drop(f, cb, arg, NULL);
}

int cor_future_remove_done_callback(cor_future_t *f, cor_done_fn cb,
                                    void *arg) {
  if (f == NULL || cb == NULL)
    return cor__bad_arg("cor_future_remove_done_callback",
                        f == NULL ? "fut is NULL" : "cb is NULL");
  COR__CHECK_THREAD(f->loop, "cor_future_remove_done_callback");
  int removed = 0;
  cor__fut_cb **pp = &f->cbs;
  while (*pp) {
    cor__fut_cb *n = *pp;
    if (n->kind == COR__CB_HEAP && n->ucb == cb && n->uarg == arg) {
      *pp = n->next;
      heap_node_free(n, false);
      removed++;
    } else {
      pp = &n->next;
    }
  }
  f->cbs_tail = pp;
  return removed;
}

/* ------------------------------------------------------------ outcome */

static char *dup_msg(const char *msg) {
  return msg ? cor__strdup(msg) : NULL; /* NULL on ENOMEM: no message */
}

int cor_future_set_result(cor_future_t *f, void *value) {
  if (f == NULL)
    return cor__bad_arg("cor_future_set_result", "fut is NULL");
  COR__CHECK_THREAD(f->loop, "cor_future_set_result");
  if (f->is_task || f->state != COR__FUT_PENDING)
    return -EINVAL;
  cor__future_finish(f, COR__FUT_DONE, 0, value, NULL, NULL, 0);
  return 0;
}

int cor_future_set_error(cor_future_t *f, int code, const char *msg) {
  if (f == NULL)
    return cor__bad_arg("cor_future_set_error", "fut is NULL");
  COR__CHECK_THREAD(f->loop, "cor_future_set_error");
  if (f->is_task || f->state != COR__FUT_PENDING || code >= 0)
    return code >= 0
               ? cor__bad_arg("cor_future_set_error", "code is not negative")
               : -EINVAL; /* a task's or a done future: a state */
  cor__future_finish(f, COR__FUT_DONE, code, NULL, dup_msg(msg), NULL, 0);
  return 0;
}

int cor_future_cancel(cor_future_t *f, const char *msg) {
  if (f == NULL)
    return cor__bad_arg("cor_future_cancel", "fut is NULL");
  COR__CHECK_THREAD(f->loop, "cor_future_cancel");
  if (f->is_task)
    return cor_task_cancel((cor_task_t *)f, msg);
  if (f->state != COR__FUT_PENDING)
    return -EINVAL;
  cor__future_finish(f, COR__FUT_CANCELLED, -ECANCELED, NULL, dup_msg(msg),
                     NULL, 0);
  return 0;
}

bool cor_future_done(const cor_future_t *f) {
  return f && f->state != COR__FUT_PENDING;
}

bool cor_future_cancelled(const cor_future_t *f) {
  return f && f->state == COR__FUT_CANCELLED;
}

int cor__future_take(struct cor_future *f, void **result) {
  f->retrieved = 1;
  if (result && f->code == 0)
    *result = f->result;
  return f->code;
}

int cor_future_result(cor_future_t *f, void **value) {
  if (f == NULL)
    return cor__bad_arg("cor_future_result", "fut is NULL");
  COR__CHECK_THREAD(f->loop, "cor_future_result");
  if (f->state == COR__FUT_PENDING)
    return -EAGAIN;
  return cor__future_take(f, value);
}

const char *cor_future_message(const cor_future_t *f) {
  if (f == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(f->loop, "cor_future_message");
  return f->msg;
}

int cor_future_error_site(const cor_future_t *f, const char **file,
                          int *line) {
  if (f == NULL)
    return -ENOENT;
  COR__CHECK_THREAD(f->loop, "cor_future_error_site");
  if (f->file == NULL)
    return -ENOENT;
  if (file)
    *file = f->file;
  if (line)
    *line = f->line;
  return 0;
}

cor_loop_t *cor_future_loop(const cor_future_t *f) {
  return f ? f->loop : NULL;
}

/* ------------------------------------------------------------ lifetime */

/* asyncio's __del__ report: through the loop's exception handler. */
static void report_never_retrieved(struct cor_future *f) {
  char repr[1024], src[3000];
  cor__buf r = {repr, 0, sizeof repr};
  repr[0] = src[0] = 0;
  if (f->is_task)
    cor__task_repr((struct cor_task *)f, &r);
  else
    cor__future_repr(f, &r);
  if (f->bt) {
    cor__buf sb = {src, 0, sizeof src};
    cor__bt_format(&sb, f->bt->pc, f->bt->n);
  }
  cor_exception_context ctx = {
      .message = f->is_task ? "Task exception was never retrieved"
                            : "Future exception was never retrieved",
      .level = COR_LOG_ERROR,
      .code = f->code,
      .error_msg = f->msg,
      .error_file = f->file,
      .error_line = f->line,
      .future = f,
      .task = f->is_task ? (cor_task_t *)f : NULL,
      .object_key = "future",
      .object_repr = repr,
      .source_traceback = src[0] ? src : NULL,
  };
  cor_loop_call_exception_handler(f->loop, &ctx);
}

static const char *state_name(struct cor_future *f) {
  return f->state == COR__FUT_PENDING   ? "pending"
         : f->state == COR__FUT_DONE    ? "finished"
                                        : "cancelled";
}

/* The callbacks part of a pending future's repr: cb=[task_step(Task-3)]. */
static void cbs_repr(struct cor_future *f, cor__buf *out) {
  if (f->cbs == NULL)
    return;
  cor__buf_printf(out, " cb=[");
  int i = 0;
  for (cor__fut_cb *n = f->cbs; n && i < 4; n = n->next, i++) {
    char fn[128];
    if (i)
      cor__buf_printf(out, ", ");
    if (n->kind == COR__CB_EMBED && cor__is_task_step(n->fn))
      cor__buf_printf(out, "<wakeup %s>",
                      cor__task_name((struct cor_task *)n->arg));
    else if (n->kind == COR__CB_EMBED)
      cor__buf_printf(out, "%s()",
                      cor__fn_name((const void *)(uintptr_t)n->fn, fn,
                                   sizeof fn));
    else
      cor__buf_printf(out, "%s()",
                      cor__fn_name((const void *)(uintptr_t)n->ucb, fn,
                                   sizeof fn));
  }
  if (i == 4 && f->cbs)
    cor__buf_printf(out, ", ...");
  cor__buf_printf(out, "]");
}

void cor__future_repr(struct cor_future *f, cor__buf *out) {
  if (f->is_task) {
    cor__task_repr((struct cor_task *)f, out);
    return;
  }
  cor__buf_printf(out, "<Future %s", state_name(f));
  if (f->state == COR__FUT_PENDING)
    cbs_repr(f, out);
  else if (f->state == COR__FUT_DONE && f->code < 0)
    cor__buf_printf(out, " exception=%s('%s')", cor_err_name(f->code),
                    f->msg ? f->msg : cor_strerror(f->code));
  else if (f->state == COR__FUT_DONE)
    cor__buf_printf(out, " result=%p", f->result);
  if (f->bt && f->bt->n > 0) {
    char at[300];
    /* pc[0] is the call of cor_future_new: "created at" as asyncio. */
    if (cor__site(f->bt->pc[0], at, sizeof at)[0])
      cor__buf_printf(out, " created at %s", at);
  }
  cor__buf_printf(out, ">");
}

void cor__future_fini(struct cor_future *f) {
  /* Embedded futures (a wait inside a stream or sync call) end here, never
   * through cor_release: they leave the debug census here. */
  if (COR_UNLIKELY(cor__load_rlx(&cor__obj_census_on)))
    cor__obj_forget(&f->obj);
  if (f->state == COR__FUT_DONE && f->code < 0 && !f->retrieved)
    report_never_retrieved(f);
  cor__fut_cb *n = f->cbs;
  f->cbs = NULL;
  f->cbs_tail = &f->cbs;
  while (n) {
    cor__fut_cb *next = n->next;
    if (n->kind == COR__CB_HEAP)
      heap_node_free(n, true);
    else if (n->drop)
      n->drop(n);
    n = next;
  }
  cor__free(f->msg);
  f->msg = NULL;
  cor__free(f->bt);
  f->bt = NULL;
}

static void future_free(cor__obj *o) {
  struct cor_future *f = (struct cor_future *)o;
  cor__future_fini(f);
  cor_loop_t *loop = f->loop;
  cor__free(f);
  cor_release(loop);
}

/* ------------------------------------------------------------ running */

static void stop_loop_cb(void *loop) { cor_loop_stop(loop); }

int cor_loop_run_until_complete(cor_loop_t *loop, cor_future_t *f) {
  if (loop == NULL || f == NULL || f->loop != loop)
    return cor__bad_arg("cor_loop_run_until_complete",
                        loop == NULL ? "loop is NULL"
                        : f == NULL  ? "fut is NULL"
                                     : "fut belongs to another loop");
  COR__CHECK_THREAD(loop, "cor_loop_run_until_complete");
  if (f->state == COR__FUT_PENDING) {
    cor__fut_cb n = {.fn = stop_loop_cb, .arg = loop, .kind = COR__CB_EMBED};
    cor__future_add_cb(f, &n);
    int rc = cor__loop_run(loop, "cor_loop_run_until_complete");
    /* Still linked when the loop stopped for another reason (or did not
     * run): the node lives on this stack and must not outlive the call. */
    cor__future_remove_cb(f, &n);
    if (rc != 0)
      return rc;
    if (f->state == COR__FUT_PENDING)
      return -EINTR;
  }
  return cor__future_take(f, NULL);
}

/* ------------------------------------------------------------ cor_fail */

int cor_fail_at(const char *file, int line, int code, const char *fmt, ...) {
  char buf[512];
  const char *msg = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    msg = buf;
  }
  cor__record_error(code, msg, file, line);
  return code;
}
