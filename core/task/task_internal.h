/* SPDX-License-Identifier: MIT */
/* Futures and tasks: the structures shared by core/future.c, core/task.c and
 * core/compose.c. Internal. */
#ifndef CORIO_CORE_TASK_INTERNAL_H
#define CORIO_CORE_TASK_INTERNAL_H

#include "base/backtrace.h"
#include "base/base.h"
#include "base/object.h"
#include "base/thread.h"
#include "loop/loop.h"
#include "task/ctx.h"
#include "task/stack.h"


/* ------------------------------------------------------------ futures */

enum { COR__FUT_PENDING = 0, COR__FUT_DONE, COR__FUT_CANCELLED };

/* A done callback. When the future completes, each node is handed to
 * cor_call_soon in the order added: an embedded node (a task waiting, a
 * run_until_complete) as call_soon(fn, arg) with no allocation; a heap node
 * (a user callback) as call_soon(run, node), keeping the future alive until
 * it ran. */
enum { COR__CB_EMBED = 0, COR__CB_HEAP };
typedef struct cor__fut_cb cor__fut_cb;
struct cor__fut_cb {
  cor__fut_cb *next;
  cor_callback fn; /* EMBED: what to schedule */
  void *arg;
  /* Called when the node is discarded unscheduled (the future freed while
   * pending, or scheduling failed). May be NULL. */
  void (*drop)(cor__fut_cb *n);
  uint8_t kind;
  /* HEAP nodes */
  cor_future_t *fut;
  cor_done_fn ucb;
  void *uarg;
};

struct cor_future {
  cor__obj obj;
  uint8_t state;
  uint8_t retrieved; /* the outcome was handed to user code */
  uint8_t is_task;
  int code; /* 0, or the error; -ECANCELED when cancelled */
  struct cor_loop *loop;
  void *result;
  char *msg; /* error or cancel message, owned; may be NULL */
  const char *file; /* cor_fail site, may be NULL */
  int line;
  cor__fut_cb *cbs;
  cor__fut_cb **cbs_tail;
  cor__bt *bt; /* debug mode: where it was created */
};

void cor__future_init(struct cor_future *f, struct cor_loop *loop,
                      enum cor__obj_type type);
/* Frees what a future owns (messages, unscheduled callbacks) and reports a
 * never-retrieved error; not the object. */
void cor__future_fini(struct cor_future *f);
/* Completes a pending future: state DONE (code 0 or < 0) or CANCELLED;
 * takes ownership of msg; schedules the callbacks. */
void cor__future_finish(struct cor_future *f, int state, int code,
                        void *result, char *msg, const char *file, int line);
void cor__future_add_cb(struct cor_future *f, cor__fut_cb *n);
/* Unlinks n if it is still in f's list; true if it was. */
bool cor__future_remove_cb(struct cor_future *f, cor__fut_cb *n);
/* Adds a heap callback with a drop hook for its argument (compose.c). */
int cor__future_add_done_callback_drop(struct cor_future *f, cor_done_fn cb,
                                       void *arg, void (*drop)(cor__fut_cb *));
/* The outcome handed to user code: marks it retrieved. */
int cor__future_take(struct cor_future *f, void **result);

/* ------------------------------------------------------------ coroutines */

enum { COR__CORO_LIVE = 0x434f524f, COR__CORO_CONSUMED = 1, COR__CORO_CLOSED };
struct cor__tasks;
struct cor_coro {
  cor_fn fn;
  void *arg;
  const char *name, *file;
  int line;
  uint32_t state;
  struct cor__tasks *tl; /* the loop that tracks it while unconsumed */
  /* Made with no running loop: on the process-wide list of such
   * coroutines (under its mutex) until consumed, reported at exit. */
  bool loopless;
  unsigned gen; /* cor__fork_gen when made (loop-less ones) */
  struct cor_coro *prev, *next;
  cor__bt *bt; /* debug mode: where it was created; handed to its task */
};
/* Consumes a coroutine: copies it to *out and marks it consumed. -EINVAL when
 * c is NULL or already consumed (or closed). */
int cor__coro_take(cor_coro_t *c, struct cor_coro *out);
/* cor_coro_close without the record: for a call that consumes a coroutine
 * on its own failure path, where coro may be NULL or spent and the call has
 * already reported its own error. */
int cor__coro_discard(cor_coro_t *c);

/* ------------------------------------------------------------ tasks */

enum {
  COR__TASK_CREATED = 0, /* scheduled, not run yet */
  COR__TASK_RUNNING,
  COR__TASK_SUSPENDED,
  COR__TASK_EXITED,    /* body returned; reaped at once by the scheduler */
  COR__TASK_DESTROYED, /* pending when its loop closed */
};

struct cor_task {
  struct cor_future fut; /* a task is a future: first member */
  /* What every suspension and resumption touches, together in one cache
   * line: with a thousand tasks their state does not stay in L1, and each
   * extra line is a miss per switch. */
  cor__ctx ctx;
  struct cor__tasks *tl;
  cor__stack *stack;
  /* Where the task last suspended ("running at file.c:N"): await_site is
   * the file name when await_line > 0 (the public macros pass __FILE__ and
   * __LINE__: right even when the call is a tail call), else a return
   * address (the functions called directly), symbolized only for reports,
   * or NULL. */
  const void *await_site;
  uint8_t tstate;
  bool must_cancel;   /* deliver -ECANCELED at the next suspension */
  /* An arena stack (a canary, no guard page: core/stack.h), in padding on
   * the hot line: guarded stacks' switches test it and load nothing more. */
  bool canaried;
  bool waiting_owned; /* `waiting` is a future the task made (sleep) */
  int await_line;     /* in the padding before fn: the same cache line */
  cor_fn fn;
  void *arg;
  const char *fn_name, *file; /* where cor_coro was called */
  int line;
  int ncancel;        /* cancel requests not uncancelled (3.11) */
  char *cancel_msg;
  char *name; /* NULL: "Task-<id>" */
  uint64_t id;
  struct cor_future *waiting; /* the future the task is suspended on */
  cor__fut_cb wnode;          /* its node in waiting's callbacks */
  struct cor_task *prev, *next; /* the loop's pending tasks */
  /* Last cor_fail in this task: taken by the task's future when the body
   * returns the same code. */
  int err_code;
  char *err_msg;
  const char *err_file;
  int err_line;
  uint64_t wait_since; /* since when it waits (loop time) */
  /* A task that ended with an error holds its loop until freed, so the
   * never-retrieved report can reach the loop's exception handler. */
  bool holds_loop;
  /* What the task waits on, for the dump and the shutdown report: set by
   * the coordination primitives around a wait (core/sync_internal.h
   * wl_wait_on), NULL otherwise. */
  const struct cor__wait_kind *wait_kind;
  const void *wait_obj;
  /* How reports present a task corio made for the application (a server
   * connection's, cor_run's main): the application's function instead of
   * corio's wrapper, the application's call instead of corio's line, and a
   * connection's peer (an fd, -1 for none; read only while pending). Set by
   * cor__task_present; zero/NULL/-1 otherwise. */
  cor_fn shown_fn;
  const void *made_at;
  int peer_fd;
#ifdef COR_ASAN
  void *asan_fake;
#endif
  char name_buf[28];
};

/* Reports show t as running `fn` (NULL: its own), made by the call at
 * return address `made_at` (NULL: where cor_create_task was called), and
 * serving the peer of socket `peer_fd` (-1: none). Three stores. */
void cor__task_present(struct cor_task *t, cor_fn fn, const void *made_at,
                       int peer_fd);

/* A kind of object a task can wait on (a lock, an event, a queue...). */
typedef struct cor__wait_kind {
  const char *name; /* "lock", "event", "queue" */
  /* Appends what more there is to say of obj (" held by Task 'a'"), on the
   * loop's thread; may be NULL. */
  void (*describe)(const void *obj, cor__buf *out);
} cor__wait_kind;
/* " waiting on <kind> 0x... <describe>" when t waits on an object. */
void cor__task_wait_obj_repr(const struct cor_task *t, cor__buf *out);
/* A loop closing under a task that waits on a waiter list (wait_kind set,
 * `waiting` the node's embedded future, core/sync_internal.h): unlinks the
 * node, which lives on the stack about to be dropped (core/sync.c). */
void cor__wl_detach(struct cor_future *f);
/* The loop's pending task with this id, or NULL (a finished one). */
struct cor_task *cor__task_by_id(struct cor_loop *loop, uint64_t id);

/* Per-loop task state (loop->tasks). */
typedef struct cor__tasks {
  struct cor_loop *loop;
  cor__ctx loop_ctx; /* where the loop runs while a task does */
  /* The task running now: after a hand-off it is not the one the loop's
   * task_step switched to, and task_step must reap the one that returned. */
  struct cor_task *cur;
  cor__stack_pool pool;
  struct cor_task *head, *tail; /* pending tasks, in creation order */
  size_t npending;
  struct cor_coro *coros; /* created on this loop, not consumed yet */
#ifdef COR_ASAN
  const void *asan_loop_bottom;
  size_t asan_loop_size;
  void *asan_loop_fake;
#endif
#ifdef COR_TSAN
  void *tsan_loop_fiber;
#endif
} cor__tasks;

/* cor__tls_task, the task this thread runs: base/thread.h. */
/* The loop's task state, made on first use; NULL on ENOMEM. */
cor__tasks *cor__tasks_of(struct cor_loop *loop);
/* Records code/message on the running task (or the thread) like cor_fail. */
void cor__record_error(int code, const char *msg, const char *file, int line);
/* Takes the calling thread's last cor_fail outside any task when its code
 * is `code`: the message (owned by the caller) and site. For executors. */
bool cor__fail_take(int code, char **msg, const char **file, int *line);

/* cor_task_name without the wrong-thread check, for reports made on any
 * thread (a never-retrieved error dropped elsewhere, a runtime shutdown). */
const char *cor__task_name(struct cor_task *t);

/* cor_await and cor_yield with the site to report as "running at": a file
 * name and line > 0, or a return address and line 0 (see await_site). */
int cor__await_at(cor_future_t *f, void **result, const void *site, int line);
int cor__yield_at(const void *site, int line);
/* "file.c:12" where the task last suspended, or "" when unknown. */
const char *cor__task_await_site(const struct cor_task *t, char *buf, size_t n);

/* Set by the executor module: cor_run calls it before closing the loop, to
 * shut the loop's default executor down. */
extern void (*cor__run_shutdown_hook)(struct cor_loop *loop);

/* core/compose.c */
/* Waits (in a task) for f, an embedded future, to be completed by an event,
 * or until deadline_ns (0: none; then -ETIMEDOUT). *flag is true while
 * waiting. Returns the future's code: 0, -ETIMEDOUT, -ECANCELED, or what
 * the waker set. -EBUSY when *flag is already set; COR_ENOTASK; COR_ETHREAD
 * (logged, naming `call`) when the task runs on another loop. `site`: the
 * return address of the application's call (the public function's
 * __builtin_return_address(0)), shown as the task's "running at"; NULL:
 * the caller of this function. */
int cor__wait_embedded(struct cor_loop *loop, struct cor_future *f, bool *flag,
                       uint64_t deadline_ns, const char *call,
                       const void *site);
/* As cor__wait_embedded, with the site of the _at calls: line > 0 means
 * site is a file name (a string literal), else a return address. */
int cor__wait_embedded_at(struct cor_loop *loop, struct cor_future *f,
                          bool *flag, uint64_t deadline_ns, const char *call,
                          const void *site, int line);
/* Completes an embedded future a task may be waiting on, with code. */
void cor__wake_embedded(struct cor_future *f, bool flag, int code);

/* ------------------------------------------------------------ for executor/ */

/* What executor/ reads of a task (tests/check_tree.sh fails when it touches
 * struct cor_task's fields itself): static inline, so a call costs what the
 * field access did. */

/* The loop's pending tasks, oldest first (owner thread). */
static inline struct cor_task *cor__loop_tasks_first(struct cor_loop *loop) {
  cor__tasks *tl = loop->tasks;
  return tl ? tl->head : NULL;
}
static inline struct cor_task *cor__task_next(const struct cor_task *t) {
  return t->next;
}
/* Where cor_coro was called: the coroutine function's name, file, line. */
static inline const char *cor__task_fn_name(const struct cor_task *t) {
  return t->fn_name;
}
static inline const char *cor__task_file(const struct cor_task *t) {
  return t->file;
}
static inline int cor__task_line(const struct cor_task *t) { return t->line; }
/* What the task is suspended on: "task", "future", or NULL. */
static inline const char *cor__task_waits_for(const struct cor_task *t) {
  return t->waiting ? (t->waiting->is_task ? "task" : "future") : NULL;
}
/* Not asked to cancel (or uncancelled) and not yet exited. */
static inline bool cor__task_uncancelled_live(const struct cor_task *t) {
  return t->ncancel == 0 && t->tstate < COR__TASK_EXITED;
}
/* Cancelled right before its body returned (deliver -ECANCELED). */
static inline bool cor__task_must_cancel(const struct cor_task *t) {
  return t->must_cancel;
}
static inline const char *cor__task_cancel_msg(const struct cor_task *t) {
  return t->cancel_msg;
}
/* The task's outcome is handed on by its caller: no "never retrieved"
 * report for its own future. */
static inline void cor__task_mark_retrieved(struct cor_task *t) {
  t->fut.retrieved = 1;
}
/* The message and site cor_fail recorded for code rc, if it is the task's
 * last failure; false otherwise. */
static inline bool cor__task_failure(const struct cor_task *t, int rc,
                                     const char **msg, const char **file,
                                     int *line) {
  if (t->err_code != rc)
    return false;
  *msg = t->err_msg;
  *file = t->err_file;
  *line = t->err_line;
  return true;
}
/* The task is suspended on f alone (its node is f's only callback): the
 * waker may run its step itself (executor/cfuture.c's door wake-up). */
static inline bool cor__task_sole_waiter(const struct cor_task *t,
                                         const struct cor_future *f) {
  return t->waiting == f && t->tstate == COR__TASK_SUSPENDED &&
         f->cbs == &t->wnode && t->wnode.next == NULL;
}
/* After cor__task_sole_waiter: the step to run, with f's callback list
 * emptied (f can then complete with nobody to tell). */
static inline void cor__task_take_step(struct cor_task *t,
                                       struct cor_future *f,
                                       cor_callback *step, void **arg) {
  *step = t->wnode.fn;
  *arg = t->wnode.arg;
  f->cbs = NULL;
  f->cbs_tail = &f->cbs;
}

/* ------------------------------------------------------------ debug reports */

/* Tasks (core/task.c) for debug reports: a task step's repr, and the task
 * dump of one loop. */
bool cor__is_task_step(cor_callback cb);
/* A callback the task machinery schedules on a task's behalf (its step, the
 * timer of a cor_sleep): reported with the task, not as a handle. */
bool cor__is_task_cb(cor_callback cb);
void cor__task_repr(struct cor_task *t, cor__buf *out);
void cor__future_repr(struct cor_future *f, cor__buf *out);
int cor__tasks_dump(struct cor_loop *loop, cor__buf *out);
/* At exit: "coroutine ... was never awaited" for each coroutine made on a
 * thread with no running loop and never consumed (core/task.c). */
void cor__coros_report_at_exit(void);

#endif
