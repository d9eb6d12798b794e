/* SPDX-License-Identifier: MIT */
/* Tasks: coroutines on their own stacks, scheduled by the loop.
 *
 * A task is resumed by a ready-queue entry (cor_call_soon(task_step, t)):
 * task_step switches from the loop's stack to the task's, and the task
 * switches back when it suspends (await, sleep, yield) or returns. So a task
 * switch is a ready-queue push and pop plus two cor__ctx_switch, with no
 * allocation: the wake-up of an awaiting task is a node embedded in the task,
 * stacks come from the loop's pool, and coroutine objects are recycled
 * through a per-thread list.
 *
 * Lifetime: the creator holds one reference, the loop one more while the
 * task is pending. The stack goes back to the pool the moment the body
 * returns (the scheduler reaps it on the loop's stack). Tasks still pending
 * when the loop closes are reported and destroyed (tasks_close_hook). */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/list.h"
#include "base/object.h"
#include "base/report.h"
#include "base/thread.h"
#include "loop/loop.h"
#include "task/task_internal.h"

#include <math.h>
#include <stdarg.h>

#ifdef COR_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef COR_TSAN
#include <sanitizer/tsan_interface.h>
#endif

_Thread_local struct cor_task *cor__tls_task COR__TLS_IE;
void (*cor__run_shutdown_hook)(struct cor_loop *loop);

static void task_free(cor__obj *o);
static void tasks_close_hook(struct cor_loop *loop);
static void loopless_fork_prepare(void);
static void loopless_fork_parent(void);
static void loopless_fork_child(void);

__attribute__((constructor)) static void task_module_init(void) {
  cor__obj_register(COR__OBJ_TASK, task_free);
  cor__loop_close_hook = tasks_close_hook;
  COR_ASSERT(pthread_atfork(loopless_fork_prepare, loopless_fork_parent,
                            loopless_fork_child) == 0);
}

/* ------------------------------------------------------------ per loop */

cor__tasks *cor__tasks_of(struct cor_loop *loop) {
  cor__tasks *tl = loop->tasks;
  if (COR_LIKELY(tl != NULL))
    return tl;
  tl = cor__calloc(1, sizeof *tl);
  if (tl == NULL)
    return NULL;
  tl->loop = loop;
  cor__stack_pool_init(&tl->pool, 0);
  loop->tasks = tl;
  return tl;
}

int cor_loop_set_task_stack_size(cor_loop_t *loop, size_t bytes) {
  if (loop == NULL || bytes == 0 || bytes > ((size_t)1 << 40))
    return cor__bad_arg("cor_loop_set_task_stack_size",
                        loop == NULL ? "loop is NULL"
                                     : "bytes is 0 or above 1 TiB");
  COR__CHECK_THREAD(loop, "cor_loop_set_task_stack_size");
  if (loop->closed)
    return COR_ECLOSED;
  cor__tasks *tl = cor__tasks_of(loop);
  if (tl == NULL)
    return -ENOMEM;
  cor__stack_pool_set_size(&tl->pool, bytes);
  return 0;
}

size_t cor_loop_get_task_stack_size(cor_loop_t *loop) {
  if (loop == NULL)
    return 0;
  COR__CHECK_THREAD_VAL(loop, "cor_loop_get_task_stack_size", 0);
  cor__tasks *tl = loop->tasks;
  return tl ? tl->pool.size : cor__stack_default_size();
}

/* ------------------------------------------------------------ coroutines */

/* Consumed coroutine objects wait in a per-thread FIFO before reuse, so a
 * second consumption of the same pointer finds it marked consumed and fails
 * with -EINVAL instead of reading freed memory (unless QUARANTINE newer
 * coroutines were consumed on this thread in between). It also keeps malloc
 * off the spawn path. */
#define QUARANTINE 1024
static _Thread_local struct {
  struct cor_coro *head, *tail;
  size_t n;
  bool keyed;
} coro_q;

static void coro_q_free(void *unused) {
  (void)unused;
  struct cor_coro *c = coro_q.head;
  while (c) {
    struct cor_coro *n = c->next;
    cor__free(c);
    c = n;
  }
  coro_q.head = coro_q.tail = NULL;
  coro_q.n = 0;
}
static cor__tls_release coro_release = COR__TLS_RELEASE_INIT(coro_q_free);

static void coro_retire(struct cor_coro *c) {
  cor__free(c->bt);
  c->bt = NULL;
  c->next = NULL;
  c->tl = NULL;
  if (coro_q.tail)
    coro_q.tail->next = c;
  else
    coro_q.head = c;
  coro_q.tail = c;
  coro_q.n++;
  if (COR_UNLIKELY(!coro_q.keyed)) {
    coro_q.keyed = true;
    (void)cor__tls_release_arm(&coro_release, &coro_q);
  }
}

/* Coroutines made on a thread with no running loop (before cor_run, on a
 * plain thread for cor_run_coroutine_threadsafe): no loop will report them
 * if they are never consumed, so they wait on one list, reported at exit.
 * They are few (and consumed at once, as a rule): a mutex is enough. */
static pthread_mutex_t loopless_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cor_coro *loopless;

static void loopless_link(struct cor_coro *c) {
  c->loopless = true;
  c->gen = cor__load_rlx(&cor__fork_gen);
  pthread_mutex_lock(&loopless_mu);
  cor__list_push_front(&loopless, c);
  pthread_mutex_unlock(&loopless_mu);
}

/* Under loopless_mu. */
static void loopless_unlink_locked(struct cor_coro *c) {
  cor__list_unlink(&loopless, c);
  c->loopless = false;
}

static void loopless_fork_prepare(void) { pthread_mutex_lock(&loopless_mu); }
static void loopless_fork_parent(void) { pthread_mutex_unlock(&loopless_mu); }
static void loopless_fork_child(void) { pthread_mutex_init(&loopless_mu, NULL); }

static void coro_track_unlink(struct cor_coro *c) {
  cor__list_unlink(&c->tl->coros, c);
}

cor_coro_t *cor_coro_new_at(cor_fn fn, void *arg, const char *name,
                            const char *file, int line) {
  if (fn == NULL)
    return cor__bad_arg_ptr("cor_coro_new", "fn is NULL");
  struct cor_coro *c;
  if (coro_q.n > QUARANTINE) {
    c = coro_q.head;
    coro_q.head = c->next;
    coro_q.n--;
  } else if ((c = cor__malloc(sizeof *c)) == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  c->fn = fn;
  c->arg = arg;
  c->name = name ? name : "coro";
  c->file = file ? file : "?";
  c->line = line;
  c->state = COR__CORO_LIVE;
  c->prev = c->next = NULL;
  c->tl = NULL;
  c->bt = NULL;
  c->loopless = false;
  /* Made inside a running loop: the loop owns it until it is consumed, and
   * reports it at close if it never is. */
  struct cor_loop *loop = cor__tls_loop;
  cor__tasks *tl = loop ? cor__tasks_of(loop) : NULL;
  if (tl) {
    if (COR_UNLIKELY(loop->debug))
      c->bt = cor__bt_new(__builtin_return_address(0));
    c->tl = tl;
    cor__list_push_front(&tl->coros, c);
  } else {
    /* No loop: reported at exit if never consumed; debug mode is
     * CORIO_DEBUG's. */
    if (COR_UNLIKELY(cor__debug_env()))
      c->bt = cor__bt_new(__builtin_return_address(0));
    loopless_link(c);
  }
  return c;
}

static void coro_finish(struct cor_coro *c, uint32_t state) {
  if (c->tl == NULL) {
    /* The state changes under the list's lock: the exit report reads it
     * there. */
    pthread_mutex_lock(&loopless_mu);
    ck_pr_store_32(&c->state, state);
    if (c->loopless)
      loopless_unlink_locked(c);
    pthread_mutex_unlock(&loopless_mu);
    coro_retire(c);
    return;
  }
  ck_pr_store_32(&c->state, state);
  if (c->tl->loop == cor__tls_loop) {
    coro_track_unlink(c);
    coro_retire(c);
  }
  /* else: consumed away from its loop's thread; stays on that loop's list,
   * marked, and is freed when the loop closes. */
}

int cor__coro_take(cor_coro_t *c, struct cor_coro *out) {
  if (c == NULL || ck_pr_load_32(&c->state) != COR__CORO_LIVE)
    return -EINVAL;
  /* What a consumer uses, field by field: the links belong to the list
   * (a loop-less coroutine's neighbours change under another thread's
   * lock), and the backtrace is freed with the object. */
  memset(out, 0, sizeof *out);
  out->fn = c->fn;
  out->arg = c->arg;
  out->name = c->name;
  out->file = c->file;
  out->line = c->line;
  out->state = COR__CORO_LIVE;
  coro_finish(c, COR__CORO_CONSUMED);
  return 0;
}

int cor__coro_discard(cor_coro_t *c) {
  if (c == NULL || ck_pr_load_32(&c->state) != COR__CORO_LIVE)
    return -EINVAL;
  coro_finish(c, COR__CORO_CLOSED);
  return 0;
}

int cor_coro_close(cor_coro_t *c) {
  if (c == NULL || ck_pr_load_32(&c->state) != COR__CORO_LIVE)
    return cor__bad_arg("cor_coro_close",
                        c == NULL ? "coro is NULL"
                                  : "coro was already consumed or closed");
  coro_finish(c, COR__CORO_CLOSED);
  return 0;
}

/* ------------------------------------------------------------ switching */

static inline void switch_to_task(cor__tasks *tl, struct cor_task *t) {
#ifdef COR_ASAN
  __sanitizer_start_switch_fiber(&tl->asan_loop_fake, t->stack->lo,
                                 t->stack->size);
#endif
#ifdef COR_TSAN
  tl->tsan_loop_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(t->stack->tsan_fiber, 0);
#endif
  cor__ctx_switch(&tl->loop_ctx, &t->ctx);
#ifdef COR_ASAN
  __sanitizer_finish_switch_fiber(tl->asan_loop_fake, NULL, NULL);
#endif
}

/* In the task: back to the loop; returns when the task is resumed. */
static inline void switch_to_loop(struct cor_task *t) {
  cor__tasks *tl = t->tl;
  if (COR_UNLIKELY(t->canaried))
    cor__stack_check(t->stack);
#ifdef COR_ASAN
  __sanitizer_start_switch_fiber(&t->asan_fake, tl->asan_loop_bottom,
                                 tl->asan_loop_size);
#endif
#ifdef COR_TSAN
  __tsan_switch_to_fiber(tl->tsan_loop_fiber, 0);
#endif
  cor__ctx_switch(&t->ctx, &tl->loop_ctx);
#ifdef COR_ASAN
  __sanitizer_finish_switch_fiber(t->asan_fake, &tl->asan_loop_bottom,
                                  &tl->asan_loop_size);
#endif
}

static void registry_unlink(cor__tasks *tl, struct cor_task *t) {
  cor__list_unlink_ht(&tl->head, &tl->tail, t);
  tl->npending--;
}

/* On the loop's stack, after the body returned: the stack is free again. */
static void task_reap(struct cor_task *t) {
  cor__tasks *tl = t->tl;
  cor__stack_put(&tl->pool, t->stack);
  t->stack = NULL;
  registry_unlink(tl, t);
  cor_release(t); /* the loop's reference */
}

/* The ready-queue callback that runs a task until it next suspends. */
static void task_step(void *arg) {
  struct cor_task *t = arg;
  COR_ASSERT(t->tstate == COR__TASK_CREATED ||
             t->tstate == COR__TASK_SUSPENDED);
  if (COR_UNLIKELY(!cor__stack_thread_ready))
    cor__stack_thread_init();
  struct cor_task *prev = cor__tls_task;
  cor__tls_task = t;
  cor__tls_stack = t->stack;
  t->tstate = COR__TASK_RUNNING;
  t->tl->cur = t;
  switch_to_task(t->tl, t);
  /* Tasks may have handed off to one another: the one that came back to the
   * loop is tl->cur. */
  struct cor_task *r = t->tl->cur;
  cor__tls_task = prev;
  cor__tls_stack = prev ? prev->stack : NULL;
  if (r->tstate == COR__TASK_EXITED)
    task_reap(r);
}

bool cor__is_task_step(cor_callback cb) { return cb == task_step; }

/* A task-to-task hand-off. When the next entry of the loop's current batch
 * is another task's step, a suspending task switches straight to that task
 * instead of going through the loop: one context switch instead of two, and
 * no trip through the loop's dispatch. The order is exactly the loop's (the
 * entry was next in its batch). When the next entry is the task's own resume
 * (cor_yield with nothing else ready), it simply carries on. Not in debug
 * mode, which times every step from the loop, nor under the sanitizers,
 * whose fiber annotations assume every switch goes through the loop. */
static inline __attribute__((always_inline)) bool handoff(struct cor_task *t) {
#if defined(COR_ASAN) || defined(COR_TSAN)
  (void)t;
  return false;
#else
  struct cor_loop *loop = t->tl->loop;
  if (loop->todo == 0 || loop->debug)
    return false;
  cor__ready_ent *e = &loop->ready[loop->rhead];
  if (e->cb != task_step || e->slot != 0)
    return false;
  struct cor_task *n = e->arg;
  COR_ASSERT(n->tstate == COR__TASK_CREATED ||
             n->tstate == COR__TASK_SUSPENDED);
  loop->rhead = (loop->rhead + 1) & (loop->rcap - 1);
  loop->rlen--;
  loop->todo--;
  n->tstate = COR__TASK_RUNNING;
  if (n == t)
    return true;
#ifdef COR__CTX_ASM
  /* The next two tasks of the batch will most likely be handed to in turn:
   * pull the saved stack top of the one after n (its struct was prefetched
   * at the previous hand-off) and the struct of the one after that, so the
   * switches find them in the cache. */
  uint32_t mask = loop->rcap - 1;
  if (loop->todo > 0) {
    cor__ready_ent *e2 = &loop->ready[loop->rhead];
    if (e2->cb == task_step) {
      __builtin_prefetch(((struct cor_task *)e2->arg)->ctx.sp, 0);
      if (loop->todo > 1) {
        cor__ready_ent *e3 = &loop->ready[(loop->rhead + 1) & mask];
        if (e3->cb == task_step)
          __builtin_prefetch(e3->arg, 1);
      }
    }
  }
#endif
  if (COR_UNLIKELY(t->canaried))
    cor__stack_check(t->stack);
  cor__tls_task = n;
  cor__tls_stack = n->stack;
  t->tl->cur = n;
  cor__ctx_switch(&t->ctx, &n->ctx);
  /* Resumed, by the loop's task_step or by another task's hand-off; both
   * set the thread's current task and our state. */
  return true;
#endif
}

/* Always inline: with a body per entry of each suspending call (the _at
 * entries), GCC stopped inlining it on its own, and every switch paid a
 * call and a return more. */
static inline __attribute__((always_inline)) void suspend(struct cor_task *t) {
  t->tstate = COR__TASK_SUSPENDED;
  if (handoff(t))
    return;
  switch_to_loop(t);
}

/* ------------------------------------------------------------ errors */

static _Thread_local struct {
  int code;
  char *msg;
  const char *file;
  int line;
} thread_err;

void cor__record_error(int code, const char *msg, const char *file, int line) {
  struct cor_task *t = cor__tls_task;
  char *m = msg ? cor__strdup(msg) : NULL;
  if (t) {
    cor__free(t->err_msg);
    t->err_code = code;
    t->err_msg = m;
    t->err_file = file;
    t->err_line = line;
  } else {
    cor__free(thread_err.msg);
    thread_err.code = code;
    thread_err.msg = m;
    thread_err.file = file;
    thread_err.line = line;
  }
}

bool cor__fail_take(int code, char **msg, const char **file, int *line) {
  if (thread_err.code != code || code == 0)
    return false;
  *msg = thread_err.msg;
  *file = thread_err.file;
  *line = thread_err.line;
  thread_err.msg = NULL;
  thread_err.code = 0;
  return true;
}

/* The outcome of an awaited future, handed to the awaiting task: an error
 * with a message is recorded on the task, so that returning the same code
 * propagates the message as re-raising would. */
static int take_for_task(struct cor_task *t, struct cor_future *f,
                         void **result) {
  int rc = cor__future_take(f, result);
  if (COR_UNLIKELY(rc < 0) && rc != -ECANCELED && (f->msg || f->file)) {
    cor__free(t->err_msg);
    t->err_code = rc;
    t->err_msg = f->msg ? cor__strdup(f->msg) : NULL;
    t->err_file = f->file;
    t->err_line = f->line;
  }
  return rc;
}

/* ------------------------------------------------------------ tasks */

static uint64_t next_task_id(void) {
  /* Ids are process-wide, as asyncio's Task-N counter, but handed to each
   * thread in blocks so that spawning does not bounce one cache line
   * between the loops' cores. */
  static uint64_t global_next = 1;
  static _Thread_local uint64_t next, end;
  if (COR_UNLIKELY(next == end)) {
    next = ck_pr_faa_64(&global_next, 256);
    end = next + 256;
  }
  return next++;
}

/* The first frame on a task's stack. */
static void task_entry(void *arg) {
  struct cor_task *t = arg;
#ifdef COR_ASAN
  __sanitizer_finish_switch_fiber(NULL, &t->tl->asan_loop_bottom,
                                  &t->tl->asan_loop_size);
#endif
  void *res = NULL;
  int rc = t->fn(t->arg, &res);
  if (rc == 0 && t->must_cancel)
    rc = -ECANCELED; /* cancelled right before the body returned */
  if (COR_UNLIKELY(rc != 0 && rc != -ECANCELED)) {
    /* It may be reported as never retrieved after its loop was released:
     * the report goes to that loop's exception handler. */
    t->holds_loop = true;
    cor_retain(t->tl->loop);
  }
  if (rc == 0) {
    cor__future_finish(&t->fut, COR__FUT_DONE, 0, res, NULL, NULL, 0);
  } else if (rc == -ECANCELED) {
    char *m = t->cancel_msg;
    t->cancel_msg = NULL;
    cor__future_finish(&t->fut, COR__FUT_CANCELLED, -ECANCELED, NULL, m, NULL,
                       0);
  } else if (rc > 0) {
    char buf[96];
    snprintf(buf, sizeof buf, "task body returned %d (codes are 0 or < 0)",
             rc);
    cor__future_finish(&t->fut, COR__FUT_DONE, -EINVAL, NULL,
                       cor__strdup(buf), t->file, t->line);
  } else {
    char *m = NULL;
    const char *file = NULL;
    int line = 0;
    if (t->err_code == rc) {
      m = t->err_msg;
      t->err_msg = NULL;
      file = t->err_file;
      line = t->err_line;
    }
    cor__future_finish(&t->fut, COR__FUT_DONE, rc, NULL, m, file, line);
  }
  t->tstate = COR__TASK_EXITED;
  cor__tasks *tl = t->tl;
#ifdef COR_ASAN
  /* NULL: this fiber is finished; ASan frees its fake stack. */
  __sanitizer_start_switch_fiber(NULL, tl->asan_loop_bottom,
                                 tl->asan_loop_size);
#endif
#ifdef COR_TSAN
  __tsan_switch_to_fiber(tl->tsan_loop_fiber, 0);
#endif
  if (COR_UNLIKELY(t->canaried))
    cor__stack_check(t->stack);
  cor__ctx_switch(&t->ctx, &tl->loop_ctx);
  COR_ASSERT(!"a finished task was resumed");
}

static void set_errno_code(int code) { errno = -code; }

cor_task_t *cor_create_task(cor_loop_t *loop, cor_coro_t *coro,
                            const char *name) {
  struct cor_coro c;
  if (cor__coro_take(coro, &c) != 0)
    return cor__bad_arg_ptr(
        "cor_create_task",
        coro == NULL ? "coro is NULL" : "coro was already consumed or closed");
  if (loop == NULL && (loop = cor__tls_loop) == NULL)
    return cor__bad_arg_ptr("cor_create_task",
                            "loop is NULL and no loop is running");
  COR__CHECK_THREAD_PTR(loop, "cor_create_task");
  if (COR_UNLIKELY(loop->closed)) {
    set_errno_code(COR_ECLOSED);
    return NULL;
  }
  cor__tasks *tl = cor__tasks_of(loop);
  struct cor_task *t = tl ? cor__malloc(sizeof *t) : NULL;
  if (t == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor__future_init(&t->fut, loop, COR__OBJ_TASK);
  t->stack = cor__stack_get(&tl->pool);
  if (COR_UNLIKELY(t->stack == NULL)) {
    cor__free(t);
    errno = ENOMEM;
    return NULL;
  }
  t->tl = tl;
  t->canaried = t->stack->canary != NULL;
  t->fn = c.fn;
  t->arg = c.arg;
  t->fn_name = c.name;
  t->file = c.file;
  t->line = c.line;
  t->tstate = COR__TASK_CREATED;
  t->must_cancel = false;
  t->waiting_owned = false;
  t->ncancel = 0;
  t->cancel_msg = NULL;
  t->id = next_task_id();
  t->name = NULL;
  t->name_buf[0] = 0;
  t->waiting = NULL;
  t->err_code = 0;
  t->err_msg = NULL;
  t->err_file = NULL;
  t->err_line = 0;
  t->await_site = NULL;
  t->await_line = 0;
  t->wait_since = 0;
  t->holds_loop = false;
  t->shown_fn = NULL;
  t->made_at = NULL;
  t->peer_fd = -1;
  t->wait_kind = NULL;
  t->wait_obj = NULL;
  if (COR_UNLIKELY(loop->debug))
    t->fut.bt = cor__bt_new(__builtin_return_address(0));
#ifdef COR_ASAN
  t->asan_fake = NULL;
#endif
  if (name && (t->name = cor__strdup(name)) == NULL)
    goto nomem;
  if (COR_UNLIKELY(cor_call_soon(loop, task_step, t, NULL) != 0))
    goto nomem;
  t->stack->task_name = t->name;
  t->stack->task_id = t->id;
  cor__ctx_make(&t->ctx, t->stack->lo, t->stack->size - t->stack->color,
                task_entry, t);
  /* The pending registry, in creation order. */
  cor__list_push_back(&tl->head, &tl->tail, t);
  tl->npending++;
  t->fut.obj.refs = 2; /* the caller's and the loop's */
  return t;
nomem:
  cor__stack_put(&tl->pool, t->stack);
  cor__free(t->name);
  cor__free(t->fut.bt);
  cor__free(t);
  errno = ENOMEM;
  return NULL;
}

cor_future_t *cor_task_future(cor_task_t *t) { return t ? &t->fut : NULL; }

const char *cor_task_name(cor_task_t *t) {
  if (t == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(t->fut.loop, "cor_task_name");
  return cor__task_name(t);
}

const char *cor__task_name(struct cor_task *t) {
  if (t->name)
    return t->name;
  if (t->name_buf[0] == 0)
    snprintf(t->name_buf, sizeof t->name_buf, "Task-%llu",
             (unsigned long long)t->id);
  return t->name_buf;
}

int cor_task_set_name(cor_task_t *t, const char *name) {
  if (t == NULL || name == NULL)
    return cor__bad_arg("cor_task_set_name",
                        t == NULL ? "task is NULL" : "name is NULL");
  COR__CHECK_THREAD(t->fut.loop, "cor_task_set_name");
  char *n = cor__strdup(name);
  if (n == NULL)
    return -ENOMEM;
  cor__free(t->name);
  t->name = n;
  if (t->stack)
    t->stack->task_name = n;
  return 0;
}

cor_task_t *cor_current_task(void) { return cor__tls_task; }

size_t cor_all_tasks(cor_loop_t *loop, cor_task_t **out, size_t cap) {
  if (loop == NULL && (loop = cor__tls_loop) == NULL)
    return 0;
  COR__CHECK_THREAD_VAL(loop, "cor_all_tasks", 0);
  if (out == NULL && cap > 0) { /* was a NULL write for a loop with tasks */
    cor__bad_arg("cor_all_tasks", "out is NULL with cap > 0");
    errno = EINVAL;
    return 0;
  }
  cor__tasks *tl = loop->tasks;
  if (tl == NULL)
    return 0;
  size_t i = 0;
  for (struct cor_task *t = tl->head; t && i < cap; t = t->next)
    out[i++] = cor_retain(t);
  return tl->npending;
}

static void task_free(cor__obj *o) {
  struct cor_task *t = (struct cor_task *)o;
  /* A pending task is referenced by its loop, so only a finished or
   * destroyed one gets here. */
  COR_ASSERT(t->tstate == COR__TASK_EXITED ||
             t->tstate == COR__TASK_DESTROYED);
  cor__future_fini(&t->fut);
  struct cor_loop *held = t->holds_loop ? t->fut.loop : NULL;
  cor__free(t->name);
  cor__free(t->cancel_msg);
  cor__free(t->err_msg);
  cor__free(t);
  cor_release(held);
}

/* ------------------------------------------------------------ awaiting */

static void waiter_drop(cor__fut_cb *n) {
  /* The awaited future was freed under a waiting task (a caller's bug):
   * forget it, so destroying the task later does not touch it. */
  struct cor_task *t = n->arg;
  t->waiting = NULL;
}

/* Each suspending call has three entries: cor_x_at, what the public macro
 * calls with __FILE__ and __LINE__ (the hot one); cor_x, the function
 * behind the macro's name for function pointers and other languages, which
 * knows its site only from its return address (wrong when its caller
 * tail-calls it; the parentheses keep the macro from expanding); and
 * cor__x_at for corio's own calls that pass a caller's site on. One
 * always-inline body serves the three, so the macro's path costs no extra
 * jump. `site`, `line`: kept for "running at file.c:N" (see await_site). */
static inline __attribute__((always_inline)) int
await_impl(cor_future_t *f, void **result, const void *site, int line) {
  struct cor_task *t = cor__tls_task;
  if (COR_UNLIKELY(t == NULL))
    return COR_ENOTASK;
  if (COR_UNLIKELY(f == NULL))
    return cor__bad_arg("cor_await", "fut is NULL");
  /* A future of another loop, before its state is read (asyncio's task
   * refuses one even when it is done): COR_ETHREAD (logged) when that loop
   * runs on another thread, else an invalid argument. In a task,
   * cor__tls_loop is the task's loop, so this one compare is also the
   * wrong-thread check. */
  if (COR_UNLIKELY(f->loop != t->tl->loop)) {
    if (cor__wrong_thread(f->loop, "cor_await"))
      return COR_ETHREAD;
    return cor__bad_arg("cor_await", "fut belongs to another loop");
  }
  if (f->state != COR__FUT_PENDING)
    return take_for_task(t, f, result);
  if (COR_UNLIKELY(f == &t->fut))
    return cor__bad_arg("cor_await", "a task cannot await itself");
  if (COR_UNLIKELY(t->must_cancel)) {
    /* A cancel request is waiting for this suspension: pass it on to what
     * we await, as asyncio's __step does; we still wait for it to end. */
    t->must_cancel = false;
    cor_future_cancel(f, t->cancel_msg);
    if (f->state != COR__FUT_PENDING)
      return take_for_task(t, f, result);
  }
  t->wnode.fn = task_step;
  t->wnode.arg = t;
  t->wnode.drop = waiter_drop;
  t->wnode.kind = COR__CB_EMBED;
  cor__future_add_cb(f, &t->wnode);
  t->waiting = f;
  t->await_site = site;
  t->await_line = line;
  t->wait_since = t->tl->loop->now;
  suspend(t);
  t->waiting = NULL;
  if (COR_UNLIKELY(t->must_cancel)) {
    /* Cancelled after f completed but before we resumed. */
    t->must_cancel = false;
    return -ECANCELED;
  }
  return take_for_task(t, f, result);
}

int cor__await_at(cor_future_t *f, void **result, const void *site, int line) {
  return await_impl(f, result, site, line);
}

int cor_await_at(cor_future_t *f, void **result, const char *file, int line) {
  return await_impl(f, result, file, line);
}

int(cor_await)(cor_future_t *f, void **result) {
  return await_impl(f, result, __builtin_return_address(0), 0);
}

int cor_await_coro(cor_coro_t *coro, void **result) {
  struct cor_coro c;
  if (cor__coro_take(coro, &c) != 0)
    return cor__bad_arg("cor_await_coro",
                        coro == NULL ? "coro is NULL"
                                     : "coro was already consumed or closed");
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  void *dummy;
  return c.fn(c.arg, result ? result : &dummy);
}

static inline __attribute__((always_inline)) int yield_impl(const void *site,
                                                            int line) {
  struct cor_task *t = cor__tls_task;
  if (COR_UNLIKELY(t == NULL))
    return COR_ENOTASK;
  if (COR_UNLIKELY(t->must_cancel)) {
    t->must_cancel = false;
    return -ECANCELED;
  }
  struct cor_loop *loop = t->tl->loop;
  /* The running task is on its loop's thread, and a running loop is open:
   * the public call's checks would only repeat that. Debug mode takes the
   * public path, which records the scheduling site. */
  int rc = COR_LIKELY(!loop->callflags)
               ? cor__ready_push(loop, task_step, t, 0)
               : cor_call_soon(loop, task_step, t, NULL);
  if (COR_UNLIKELY(rc != 0))
    return rc;
  t->await_site = site;
  t->await_line = line;
  suspend(t);
  if (COR_UNLIKELY(t->must_cancel)) {
    t->must_cancel = false;
    return -ECANCELED;
  }
  return 0;
}

int cor__yield_at(const void *site, int line) { return yield_impl(site, line); }

int cor_yield_at(const char *file, int line) { return yield_impl(file, line); }

int(cor_yield)(void) { return yield_impl(__builtin_return_address(0), 0); }

static void sleep_fire(void *arg) {
  struct cor_future *f = arg;
  if (f->state == COR__FUT_PENDING)
    cor__future_finish(f, COR__FUT_DONE, 0, NULL, NULL, NULL, 0);
}

bool cor__is_task_cb(cor_callback cb) {
  return cb == task_step || cb == sleep_fire;
}

static inline __attribute__((always_inline)) int
sleep_impl(double seconds, const void *site, int line) {
  struct cor_task *t = cor__tls_task;
  if (COR_UNLIKELY(t == NULL))
    return COR_ENOTASK;
  if (!(seconds > 0)) /* also NaN */
    return yield_impl(site, line);
  if (COR_UNLIKELY(t->must_cancel)) {
    t->must_cancel = false;
    return -ECANCELED;
  }
  struct cor_loop *loop = t->tl->loop;
  cor_future_t *f = cor_future_new(loop);
  if (f == NULL)
    return -ENOMEM;
  cor_handle_t h;
  int rc = cor_call_later(loop, seconds, sleep_fire, f, &h);
  if (rc != 0) {
    cor_release(f);
    return rc;
  }
  t->waiting_owned = true; /* a destroyed task releases it */
  rc = cor__await_at(f, NULL, site, line);
  t->waiting_owned = false;
  cor_handle_cancel(loop, h); /* -ENOENT when it fired: fine */
  cor_release(f);
  return rc;
}

int cor_sleep_at(double seconds, const char *file, int line) {
  return sleep_impl(seconds, file, line);
}

int(cor_sleep)(double seconds) {
  return sleep_impl(seconds, __builtin_return_address(0), 0);
}

/* ------------------------------------------------------------ cancelling */

int cor_task_cancel(cor_task_t *t, const char *msg) {
  if (t == NULL)
    return cor__bad_arg("cor_task_cancel", "task is NULL");
  COR__CHECK_THREAD(t->fut.loop, "cor_task_cancel");
  if (t->fut.state != COR__FUT_PENDING || t->tstate >= COR__TASK_EXITED)
    return -EINVAL;
  t->ncancel++;
  if (msg) {
    char *m = cor__strdup(msg);
    if (m) {
      cor__free(t->cancel_msg);
      t->cancel_msg = m;
    }
  }
  if (t->waiting && cor_future_cancel(t->waiting, msg) == 0)
    return 0;
  t->must_cancel = true;
  return 0;
}

int cor_task_cancelling(const cor_task_t *t) {
  if (t == NULL)
    return 0;
  COR__CHECK_THREAD(t->fut.loop, "cor_task_cancelling");
  return t->ncancel;
}

int cor_task_uncancel(cor_task_t *t) {
  if (t == NULL)
    return 0;
  COR__CHECK_THREAD(t->fut.loop, "cor_task_uncancel");
  if (t->ncancel > 0 && --t->ncancel == 0)
    t->must_cancel = false;
  return t->ncancel;
}

/* ------------------------------------------------------------ close */

/* ------------------------------------------------------------ reports */

const char *cor__task_await_site(const struct cor_task *t, char *buf,
                                 size_t n) {
  if (t->await_line > 0)
    snprintf(buf, n, "%s:%d", (const char *)t->await_site, t->await_line);
  else
    cor__site(t->await_site, buf, n); /* "" for NULL */
  return buf;
}

/* asyncio's Task repr: <Task pending name='Task-3' coro=<kill_me() running
 * at test.c:5> wait_for=<Future pending cb=[<wakeup Task-3>]> created at
 * test.c:40>. "defined at" is the first line of the body function (from
 * the debug info), or failing that where cor_coro was called; "running at"
 * is where the task last suspended; "created at" (debug mode) is where
 * cor_create_task was called. Symbolizing happens here, on reports only. */
void cor__task_present(struct cor_task *t, cor_fn fn, const void *made_at,
                       int peer_fd) {
  t->shown_fn = fn;
  t->made_at = made_at;
  t->peer_fd = peer_fd;
}

/* The name reports give t's function: the application's when corio made
 * the task for it (symbolized here, on reports only), else cor_coro's. */
static const char *task_fn_name(const struct cor_task *t, char *buf,
                                size_t n) {
  if (t->shown_fn == NULL)
    return t->fn_name;
  cor__fn_name((const void *)(uintptr_t)t->shown_fn, buf, n);
  return buf;
}

/* Where t was made, for "created at": the application's call when corio
 * made it, else the debug-mode backtrace's first frame; "" when unknown. */
static const char *task_made_at(const struct cor_task *t, char *buf,
                                size_t n) {
  buf[0] = 0;
  if (t->made_at)
    cor__site(t->made_at, buf, n);
  else if (t->fut.bt && t->fut.bt->n > 0)
    cor__site(t->fut.bt->pc[0], buf, n);
  return buf;
}

static void task_repr_depth(struct cor_task *t, cor__buf *out, int depth) {
  const char *st = t->fut.state == COR__FUT_CANCELLED ? "cancelled"
                   : t->fut.state == COR__FUT_DONE    ? "finished"
                                                      : "pending";
  cor__buf_printf(out, "<Task %s name='%s'", st, cor__task_name(t));
  if (depth > 0) {
    cor__buf_printf(out, ">");
    return;
  }
  char def[300], at[300], fname[128];
  cor__sym sym;
  cor_fn fn = t->shown_fn ? t->shown_fn : t->fn;
  const char *fnm = task_fn_name(t, fname, sizeof fname);
  if (cor__fn_decl((const void *)(uintptr_t)fn, &sym) ||
      (cor__symbolize((const void *)(uintptr_t)fn, false, &sym) &&
       sym.file[0]))
    snprintf(def, sizeof def, "%s:%d", sym.file, sym.line);
  else
    snprintf(def, sizeof def, "%s:%d", t->file, t->line);
  if (t->fut.state != COR__FUT_PENDING)
    cor__buf_printf(out, " coro=<%s() done, defined at %s>", fnm, def);
  else if (cor__task_await_site(t, at, sizeof at)[0])
    cor__buf_printf(out, " coro=<%s() running at %s>", fnm, at);
  else
    cor__buf_printf(out, " coro=<%s() running at %s>", fnm, def);
  if (t->peer_fd >= 0 && t->fut.state == COR__FUT_PENDING)
    cor__buf_sockaddr(out, "peer", t->peer_fd, true);
  if (t->fut.state == COR__FUT_DONE && t->fut.code < 0)
    cor__buf_printf(out, " exception=%s('%s')", cor_err_name(t->fut.code),
                    t->fut.msg ? t->fut.msg : cor_strerror(t->fut.code));
  else if (t->fut.state == COR__FUT_DONE)
    cor__buf_printf(out, " result=%p", t->fut.result);
  if (t->waiting) {
    cor__buf_printf(out, " wait_for=");
    if (t->waiting->is_task)
      task_repr_depth((struct cor_task *)t->waiting, out, depth + 1);
    else
      cor__future_repr(t->waiting, out);
    cor__task_wait_obj_repr(t, out);
  }
  if (task_made_at(t, at, sizeof at)[0])
    cor__buf_printf(out, " created at %s", at);
  cor__buf_printf(out, ">");
}

void cor__task_repr(struct cor_task *t, cor__buf *out) {
  task_repr_depth(t, out, 0);
}

static void report_pending(struct cor_task *t) {
  char repr[1024], src[3000];
  cor__buf r = {repr, 0, sizeof repr};
  repr[0] = src[0] = 0;
  cor__task_repr(t, &r);
  if (t->fut.bt) {
    cor__buf sb = {src, 0, sizeof src};
    cor__bt_format(&sb, t->fut.bt->pc, t->fut.bt->n);
  }
  cor_exception_context ctx = {
      .message = "Task was destroyed but it is pending!",
      .level = COR_LOG_ERROR,
      .future = &t->fut,
      .task = t,
      .object_key = "task",
      .object_repr = repr,
      .source_traceback = src[0] ? src : NULL,
      .file = t->file,
      .line = t->line,
  };
  cor_loop_call_exception_handler(t->tl->loop, &ctx);
}

/* The seed's "test.py:7: RuntimeWarning: coroutine 'test' was never
 * awaited", and in debug mode "Coroutine created at (most recent call
 * last)" with the stack that made it. */
static void report_never_awaited(struct cor_loop *loop, struct cor_coro *c) {
  char msg[3500], repr[300];
  cor__buf b = {msg, 0, sizeof msg};
  cor__buf_printf(&b, "%s:%d: RuntimeWarning: coroutine '%s' was never awaited",
                  c->file, c->line, c->name);
  if (c->bt) {
    cor__buf_printf(&b, "\nCoroutine created at (most recent call last)\n");
    cor__bt_format(&b, c->bt->pc, c->bt->n);
    while (b.len > 0 && msg[b.len - 1] == '\n')
      msg[--b.len] = 0;
  }
  snprintf(repr, sizeof repr, "<coroutine %s() created at %s:%d>", c->name,
           c->file, c->line);
  /* The repr is for handlers; the default one prints the message only, as
   * Python's warning does (it names the site already). */
  cor_exception_context ctx = {
      .message = msg,
      .level = COR_LOG_WARNING,
      .object_repr = repr,
      .file = c->file,
      .line = c->line,
  };
  cor_loop_call_exception_handler(loop, &ctx);
}

void cor__coros_report_at_exit(void) {
  unsigned gen = cor__load_rlx(&cor__fork_gen);
  for (;;) {
    /* One at a time, off the list and out of the lock before the report
     * (a handler may make coroutines). Unlinked, it is ours: marking it
     * closed makes a later consumption fail cleanly; the memory is left
     * to the exiting process. */
    struct cor_coro copy;
    pthread_mutex_lock(&loopless_mu);
    struct cor_coro *c = loopless;
    while (c && c->gen != gen)
      c = c->next;
    if (c) {
      loopless_unlink_locked(c);
      ck_pr_store_32(&c->state, COR__CORO_CLOSED);
      copy = *c;
      c->bt = NULL; /* the copy's now */
    }
    pthread_mutex_unlock(&loopless_mu);
    if (c == NULL)
      return;
    report_never_awaited(NULL, &copy);
    cor__free(copy.bt);
  }
}

void cor__task_wait_obj_repr(const struct cor_task *t, cor__buf *out) {
  if (t->wait_kind == NULL)
    return;
  cor__buf_printf(out, " waiting on %s %p", t->wait_kind->name, t->wait_obj);
  if (t->wait_kind->describe)
    t->wait_kind->describe(t->wait_obj, out);
}

struct cor_task *cor__task_by_id(struct cor_loop *loop, uint64_t id) {
  cor__tasks *tl = loop->tasks;
  for (struct cor_task *t = tl ? tl->head : NULL; t; t = t->next)
    if (t->id == id)
      return t;
  return NULL;
}

/* cor_dump_tasks' part for one loop (on its thread, or while nobody runs
 * it): each pending task, what it awaits as a chain, and since when. */
int cor__tasks_dump(struct cor_loop *loop, cor__buf *out) {
  cor__tasks *tl = loop->tasks;
  if (tl == NULL) {
    cor__buf_printf(out, "  (no tasks)\n");
    return 0;
  }
  uint64_t now = cor__now_ns();
  int n = 0;
  for (struct cor_task *t = tl->head; t; t = t->next, n++) {
    char at[300], fname[128];
    const char *st = t->tstate == COR__TASK_CREATED   ? "not started"
                     : t->tstate == COR__TASK_RUNNING ? "running"
                                                      : "suspended";
    const char *fnm = task_fn_name(t, fname, sizeof fname);
    if (t->made_at && task_made_at(t, at, sizeof at)[0])
      cor__buf_printf(out, "  Task '%s' (%s) coro=%s() created at %s",
                      cor__task_name(t), st, fnm, at);
    else
      cor__buf_printf(out, "  Task '%s' (%s) coro=%s() created at %s:%d",
                      cor__task_name(t), st, fnm, t->file, t->line);
    if (t->peer_fd >= 0)
      cor__buf_sockaddr(out, "peer", t->peer_fd, true);
    if (!t->made_at && task_made_at(t, at, sizeof at)[0])
      cor__buf_printf(out, " (task made at %s)", at);
    cor__buf_printf(out, "\n");
    if (t->waiting == NULL)
      continue;
    if (cor__task_await_site(t, at, sizeof at)[0])
      cor__buf_printf(out, "    awaiting at %s for %.3f s: ", at,
                      t->wait_since && now > t->wait_since
                          ? (double)(now - t->wait_since) / 1e9
                          : 0.0);
    else
      cor__buf_printf(out, "    awaiting for %.3f s: ",
                      t->wait_since && now > t->wait_since
                          ? (double)(now - t->wait_since) / 1e9
                          : 0.0);
    /* The chain: each awaited task's own awaited future, as pstree. */
    struct cor_future *w = t->waiting;
    for (int depth = 0; w && depth < 16; depth++) {
      if (depth)
        cor__buf_printf(out, " -> ");
      if (w->is_task) {
        struct cor_task *wt = (struct cor_task *)w;
        char wname[128];
        cor__buf_printf(out, "Task '%s' (%s() created at %s:%d)",
                        cor__task_name(wt), task_fn_name(wt, wname, sizeof wname),
                        wt->file, wt->line);
        w = wt->waiting;
      } else {
        cor__future_repr(w, out);
        w = NULL;
      }
    }
    cor__task_wait_obj_repr(t, out);
    cor__buf_printf(out, "\n");
  }
  return n;
}

static void tasks_close_hook(struct cor_loop *loop) {
  cor__tasks *tl = loop->tasks;
  if (tl == NULL)
    return;
  /* 1. Detach every pending task from what it awaits, while all of them are
   *    alive (a task may await another pending task). */
  for (struct cor_task *t = tl->head; t; t = t->next) {
    report_pending(t);
    if (t->waiting) {
      struct cor_future *w = t->waiting;
      /* A node of a lock's (etc.) waiter list on the stack dropped below:
       * off the list, or the next release walks freed memory. */
      if (t->wait_kind)
        cor__wl_detach(w);
      t->wait_kind = NULL;
      cor__future_remove_cb(w, &t->wnode);
      t->waiting = NULL;
      if (t->waiting_owned)
        cor_release(w);
    }
  }
  /* 2. Destroy them: their stacks are dropped unwound, as an un-collected
   *    asyncio task's frame would never run its finally blocks either. */
  while (tl->head) {
    struct cor_task *t = tl->head;
    registry_unlink(tl, t);
    t->tstate = COR__TASK_DESTROYED;
    cor__stack_put(&tl->pool, t->stack);
    t->stack = NULL;
    cor_release(t);
  }
  /* 3. Coroutines made on this loop and never consumed. */
  while (tl->coros) {
    struct cor_coro *c = tl->coros;
    tl->coros = c->next;
    if (c->state == COR__CORO_LIVE)
      report_never_awaited(loop, c);
    cor__free(c->bt);
    cor__free(c);
  }
  COR_ASSERT(tl->pool.live == 0);
  cor__stack_pool_destroy(&tl->pool);
  loop->tasks = NULL;
  cor__free(tl);
}

/* ------------------------------------------------------------ cor_run */

typedef struct {
  struct cor_future *all;
  size_t left;
} cancel_wait;

static void cancel_one_done(cor_future_t *f, void *arg) {
  (void)f;
  cancel_wait *w = arg;
  if (--w->left == 0 && w->all->state == COR__FUT_PENDING)
    cor_future_set_result(w->all, NULL);
}

/* asyncio.runners._cancel_all_tasks: cancel, then wait for every one of them
 * to finish its clean-up; report those that ended with an error. */
static void cancel_all_tasks(cor_loop_t *loop) {
  size_t n = cor_all_tasks(loop, NULL, 0);
  if (n == 0)
    return;
  cor_task_t **ts = cor__malloc(n * sizeof *ts);
  cor_future_t *all = cor_future_new(loop);
  if (ts == NULL || all == NULL) {
    cor__free(ts);
    cor_release(all);
    return; /* close reports and destroys them */
  }
  n = cor_all_tasks(loop, ts, n);
  cancel_wait w = {all, n};
  for (size_t i = 0; i < n; i++) {
    cor_task_cancel(ts[i], NULL);
    if (cor_future_add_done_callback(&ts[i]->fut, cancel_one_done, &w) != 0)
      w.left--;
  }
  if (w.left > 0)
    cor_loop_run_until_complete(loop, all);
  for (size_t i = 0; i < n; i++) {
    cor_future_remove_done_callback(&ts[i]->fut, cancel_one_done, &w);
    struct cor_future *f = &ts[i]->fut;
    if (f->state == COR__FUT_DONE && f->code < 0) {
      f->retrieved = 1;
      char repr[1024];
      cor__buf r = {repr, 0, sizeof repr};
      repr[0] = 0;
      cor__task_repr(ts[i], &r);
      cor_exception_context ctx = {
          .message = "unhandled exception during cor_run() shutdown",
          .level = COR_LOG_ERROR,
          .code = f->code,
          .error_msg = f->msg,
          .error_file = f->file,
          .error_line = f->line,
          .future = f,
          .task = ts[i],
          .object_key = "task",
          .object_repr = repr,
      };
      cor_loop_call_exception_handler(loop, &ctx);
    }
    cor_release(ts[i]);
  }
  cor__free(ts);
  cor_release(all);
}

int cor_run(cor_fn main, void *arg, const cor_run_opts *opts) {
  if (main == NULL)
    return cor__bad_arg("cor_run", "main is NULL");
  if (cor__tls_loop != NULL)
    return -EBUSY; /* cannot be called from a running event loop */
  cor_loop_opts lo = {0};
  lo.debug = opts && opts->debug;
  cor_loop_t *loop = cor_loop_new(&lo);
  if (loop == NULL)
    return errno ? -errno : -ENOMEM;
  int rc;
  void *res = NULL;
  if (opts && opts->stack_size &&
      (rc = cor_loop_set_task_stack_size(loop, opts->stack_size)) != 0)
    goto out;
  cor_task_t *t = cor_create_task(loop, cor_coro(main, arg), NULL);
  if (t != NULL) /* reports name the application's main and its call */
    cor__task_present(t, main, __builtin_return_address(0), -1);
  if (t == NULL) {
    rc = -errno;
    goto out;
  }
  rc = cor_loop_run_until_complete(loop, &t->fut);
  if (t->fut.state == COR__FUT_DONE && t->fut.code == 0)
    res = t->fut.result;
  cor_release(t);
  cancel_all_tasks(loop);
  if (cor__run_shutdown_hook)
    cor__run_shutdown_hook(loop);
  /* Let callbacks already scheduled (done callbacks of the tasks above) run,
   * so that what they own is released before the loop drops its queue. */
  for (int i = 0; i < 16 && loop->rlen > 0; i++) {
    cor_loop_stop(loop);
    cor_loop_run_forever(loop);
  }
out:
  cor_loop_close(loop);
  cor_release(loop);
  if (opts && opts->result)
    *opts->result = res;
  return rc;
}
