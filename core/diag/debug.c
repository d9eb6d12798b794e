/* SPDX-License-Identifier: MIT */
/* Debug mode and diagnostics: the exception handler and its default, the
 * wrong-thread check's slow path, slow callbacks and polls, the registry of
 * live loops and cor_dump_tasks, the dump signal and the stall watchdog.
 *
 * Production mode pays for none of this: the loop consults one flag word
 * (loop->callflags) on cor_call_soon's path where it consulted `closed`
 * before, and one flag per iteration to choose the debug variant of its
 * callback loop (core/loop.c). Everything here runs on reports, in debug
 * mode, or on a thread of its own (the watchdog, the dump thread). */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/census.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/report.h"
#include "base/thread.h"
#include "diag/resource.h"
#include "loop/loop.h"
#include "loop/loop_debug.h"
#include "loop/timer.h"
#include "task/task_internal.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct cor__dbg {
  bool on; /* debug mode (loop->debug mirrors it) */
  /* Per slot: the return address of the call that scheduled it. */
  void **sites;
  uint32_t sites_cap;
  cor__bt *created; /* the loop's creation, debug mode */
  /* Time the io callbacks took inside the current poll. */
  uint64_t poll_cb_ns, cb_t0;
  bool in_poll;
  /* Watchdog (any mode) */
  uint64_t wd_ns;          /* threshold; 0 = off */
  pthread_t wd_thread;
  bool wd_running;
  pthread_mutex_t wd_mu;
  pthread_cond_t wd_cv;
  bool wd_stop;
  /* Filled by the signal handler on the loop's thread. */
  void *wd_pcs[COR__BT_MAX];
  int wd_n;     /* atomic: -1 requested, >= 0 filled */
  /* What runs now (debug mode), for the watchdog's report. */
  cor_callback cur_cb;
  void *cur_arg;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
typedef struct reg_ent {
  struct cor_loop *loop;
  unsigned gen; /* cor__fork_gen when made: inherited loops are skipped */
  struct reg_ent *next;
} reg_ent;
static reg_ent *reg_head;

static int gettid_(void) { return (int)syscall(SYS_gettid); }

/* ------------------------------------------------------------ backtraces */

cor__bt *cor__bt_new(const void *from) {
  void *pcs[COR__BT_MAX];
  cor__bt_warm();
  int n = cor__bt_capture(pcs, COR__BT_MAX, 0);
  /* Start at `from` (our caller's return address): counting frames to skip
   * breaks as soon as the compiler inlines or tail-calls differently. */
  int first = 0;
  for (int i = 0; i < n; i++)
    if (pcs[i] == from) {
      first = i;
      break;
    }
  n -= first;
  memmove(pcs, pcs + first, (size_t)n * sizeof *pcs);
  cor__bt *bt = cor__malloc(sizeof *bt + (size_t)n * sizeof(void *));
  if (bt == NULL)
    return NULL;
  bt->n = n;
  memcpy(bt->pc, pcs, (size_t)n * sizeof(void *));
  return bt;
}

/* ------------------------------------------------------------ debug state */

static struct cor__dbg *dbg_of(struct cor_loop *loop) {
  if (loop->dbg)
    return loop->dbg;
  struct cor__dbg *d = cor__calloc(1, sizeof *d);
  if (d == NULL)
    return NULL;
  pthread_mutex_init(&d->wd_mu, NULL);
  /* The watchdog's waits are deadlines on CLOCK_MONOTONIC: a condition
   * variable on the default CLOCK_REALTIME took them as dates in 1970 and
   * returned at once, so the watchdog thread spun on a core. */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&d->wd_cv, &ca);
  pthread_condattr_destroy(&ca);
  loop->dbg = d;
  return d;
}

int cor__loop_debug_apply(struct cor_loop *loop, bool on) {
  struct cor__dbg *d = loop->dbg;
  if (on) {
    if ((d = dbg_of(loop)) == NULL)
      return -ENOMEM;
    d->on = true;
    cor__bt_warm();
    cor__obj_census_enable(); /* core/object.c: unreleased objects at exit */
    loop->debug = 1;
    loop->callflags |= COR__CF_DEBUG;
    /* Producers on other threads read ts_flags at any time: store it whole.
     * Only this (owner) side writes it once the loop runs. */
    ck_pr_store_int(&loop->ts_flags, loop->ts_flags | COR__TS_DEBUG);
    return 0;
  }
  loop->debug = 0;
  loop->callflags &= ~COR__CF_DEBUG;
  ck_pr_store_int(&loop->ts_flags, loop->ts_flags & ~COR__TS_DEBUG);
  if (d == NULL)
    return 0;
  d->on = false;
  cor__free(d->sites);
  d->sites = NULL;
  d->sites_cap = 0;
  if (!d->wd_running && ck_pr_load_32(&loop->obj.refs) == 0) {
    /* The loop is being freed: the watchdog was stopped already. */
    cor__free(d->created);
    pthread_mutex_destroy(&d->wd_mu);
    pthread_cond_destroy(&d->wd_cv);
    cor__free(d);
    loop->dbg = NULL;
  }
  return 0;
}

void cor__debug_set_site(struct cor_loop *loop, uint32_t slot, void *ra) {
  struct cor__dbg *d = loop->dbg;
  if (d == NULL || !d->on)
    return;
  if (slot >= d->sites_cap) {
    uint32_t cap = loop->slots_cap > slot ? loop->slots_cap : slot + 1;
    void **s = cor__realloc(d->sites, (size_t)cap * sizeof *s);
    if (s == NULL)
      return;
    memset(s + d->sites_cap, 0, (size_t)(cap - d->sites_cap) * sizeof *s);
    d->sites = s;
    d->sites_cap = cap;
  }
  d->sites[slot] = ra;
}

void *cor__debug_site(struct cor_loop *loop, uint32_t slot) {
  struct cor__dbg *d = loop->dbg;
  if (d == NULL || slot >= d->sites_cap)
    return NULL;
  void *s = d->sites[slot];
  d->sites[slot] = NULL;
  return s;
}

void cor__loop_repr(const struct cor_loop *loop, cor__buf *out) {
  cor__buf_printf(out, "<Loop running=%s closed=%s debug=%s>",
                  ck_pr_load_int(&loop->running) ? "true" : "false",
                  ck_pr_load_int(&loop->closed) ? "true" : "false",
                  loop->debug ? "true" : "false");
}

/* ------------------------------------------------------------ handler */

int cor_loop_set_exception_handler(cor_loop_t *loop,
                                   cor_exception_handler handler, void *arg) {
  if (loop == NULL)
    return cor__bad_arg("cor_loop_set_exception_handler", "loop is NULL");
  COR__CHECK_THREAD(loop, "cor_loop_set_exception_handler");
  /* arg first: a reader that sees the new handler sees its argument. */
  cor__store_rel(&loop->exc_arg, arg);
  cor__store_rel(&loop->exc_fn, handler);
  return 0;
}

void cor_loop_default_exception_handler(cor_loop_t *loop,
                                        const cor_exception_context *ctx) {
  (void)loop;
  if (ctx == NULL)
    return;
  int level = ctx->level ? ctx->level : COR_LOG_ERROR;
  if (!cor_log_enabled(level))
    return;
  char text[4000];
  cor__buf b = {text, 0, sizeof text};
  text[0] = 0;
  cor__buf_printf(&b, "%s", ctx->message ? ctx->message
                                         : "Unhandled error in event loop");
  if (ctx->object_key && ctx->object_repr)
    cor__buf_printf(&b, "\n%s: %s", ctx->object_key, ctx->object_repr);
  if (ctx->source_traceback && ctx->source_traceback[0]) {
    cor__buf_printf(&b,
                    "\nsource_traceback: Object created at (most recent call "
                    "last):\n%s",
                    ctx->source_traceback);
    while (b.len > 0 && text[b.len - 1] == '\n')
      text[--b.len] = 0;
  }
  if (ctx->code < 0) {
    if (ctx->error_file)
      cor__buf_printf(&b,
                      "\nTraceback (most recent call last):\n  File \"%s\", "
                      "line %d",
                      ctx->error_file, ctx->error_line);
    cor__buf_printf(&b, "\n%s: %s", cor_err_name(ctx->code),
                    ctx->error_msg ? ctx->error_msg : cor_strerror(ctx->code));
  }
  /* Python's format ends lines with the traceback's newline: drop ours. */
  while (b.len > 0 && text[b.len - 1] == '\n')
    text[--b.len] = 0;
  cor_log(level, "%s", text);
}

void cor_loop_call_exception_handler(cor_loop_t *loop,
                                     const cor_exception_context *ctx) {
  cor_exception_handler fn =
      loop ? cor__load_acq(&loop->exc_fn) : NULL;
  if (fn) {
    fn(loop, ctx, cor__load_acq(&loop->exc_arg));
    return;
  }
  cor_loop_default_exception_handler(loop, ctx);
}

/* ------------------------------------------------------------ wrong thread */

static void thread_name(int tid, char *buf, size_t n) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
  FILE *f = fopen(path, "re");
  buf[0] = 0;
  if (f) {
    if (fgets(buf, (int)n, f) == NULL)
      buf[0] = 0;
    fclose(f);
  }
  size_t l = strlen(buf);
  if (l > 0 && buf[l - 1] == '\n')
    buf[l - 1] = 0;
}

/* Inlined into both callers below, so that the backtrace (skip 1) starts
 * at the public call whichever way it came. */
static inline __attribute__((always_inline)) void
wrong_thread_log(const struct cor_loop *loop, const char *call) {
  if (!cor_log_enabled(COR_LOG_ERROR))
    return;
  int owner = ck_pr_load_int(&loop->owner_tid), me = gettid_();
  char text[3500], on[32], mn[32], repr[96];
  cor__buf r = {repr, 0, sizeof repr};
  cor__loop_repr(loop, &r);
  thread_name(me, mn, sizeof mn);
  cor__buf b = {text, 0, sizeof text};
  cor__buf_printf(&b,
                  "Non-thread-safe operation %s() invoked on an event loop "
                  "other than the current one: loop %s ",
                  call, repr);
  /* No owner: the loop is starting on another thread (owner_tid is stored
   * just after `running`), or it is not running and a task of another loop
   * tried to wait on one of its objects. */
  if (owner != 0) {
    thread_name(owner, on, sizeof on);
    cor__buf_printf(&b, "is owned by thread %d '%s'", owner, on);
  } else {
    cor__buf_printf(&b, "is not the calling thread's loop");
  }
  cor__buf_printf(&b,
                  ", called from thread %d '%s' (use cor_call_soon_threadsafe)",
                  me, mn);
  if (loop->debug) {
    void *pcs[COR__BT_MAX];
    int n = cor__bt_capture(pcs, COR__BT_MAX, 1);
    cor__buf_printf(&b, "\nStack (most recent call last):\n");
    cor__bt_format(&b, pcs, n);
    while (b.len > 0 && text[b.len - 1] == '\n')
      text[--b.len] = 0;
  }
  cor_log(COR_LOG_ERROR, "%s", text);
}

__attribute__((noinline)) int
cor__wrong_thread_report(const struct cor_loop *loop, const char *call) {
  wrong_thread_log(loop, call);
  return COR_ETHREAD;
}

__attribute__((noinline)) bool cor__wrong_thread(const struct cor_loop *loop,
                                                 const char *call) {
  /* A loop nobody runs may be used by any one thread at a time, as asyncio
   * checks only once the loop has a running thread. */
  if (!ck_pr_load_int(&loop->running))
    return false;
  /* Closed wins, as asyncio checks it first: a forked child's loops are
   * marked closed with their threads gone. */
  if (ck_pr_load_int(&loop->closed))
    return false;
  if (ck_pr_load_int(&loop->owner_tid) == gettid_())
    return false;
  wrong_thread_log(loop, call);
  return true;
}

/* ------------------------------------------------------------ slow */

int cor_loop_set_slow_callback_duration(cor_loop_t *loop, double seconds) {
  if (loop == NULL || !(seconds >= 0) || seconds > 1e9)
    return cor__bad_arg("cor_loop_set_slow_callback_duration",
                        loop == NULL ? "loop is NULL"
                                     : "seconds is negative, NaN or above 1e9");
  COR__CHECK_THREAD(loop, "cor_loop_set_slow_callback_duration");
  loop->slow_ns = cor__duration_ns(seconds);
  return 0;
}

double cor_loop_get_slow_callback_duration(const cor_loop_t *loop) {
  if (loop == NULL)
    return 0;
  COR__CHECK_THREAD_VAL(loop, "cor_loop_get_slow_callback_duration", 0);
  return (double)loop->slow_ns / 1e9;
}

void cor__debug_slow_callback(struct cor_loop *loop, cor_callback cb,
                              void *arg, void *site, uint64_t ns) {
  if (!cor_log_enabled(COR_LOG_WARNING))
    return;
  char repr[1024];
  cor__buf b = {repr, 0, sizeof repr};
  repr[0] = 0;
  if (cor__is_task_step(cb)) {
    cor__task_repr(arg, &b);
  } else {
    char fn[128], at[300];
    cor__fn_name((const void *)(uintptr_t)cb, fn, sizeof fn);
    cor__site(site, at, sizeof at);
    if (at[0])
      cor__buf_printf(&b, "<Handle %s() created at %s>", fn, at);
    else
      cor__buf_printf(&b, "<Handle %s()>", fn);
  }
  (void)loop;
  cor_log(COR_LOG_WARNING, "Executing %s took %.3f seconds", repr,
          (double)ns / 1e9);
}

void cor__debug_poll_begin(struct cor_loop *loop) {
  struct cor__dbg *d = loop->dbg;
  if (d) {
    d->poll_cb_ns = 0;
    d->in_poll = true;
  }
}

/* The useful version of asyncio's selector timing (dropped from CPython in
 * 3.8 as noise): a wait that overslept its deadline by more than 10 ms (the
 * thread was not scheduled, or the timer slack is large), or a zero-timeout
 * poll that took more than 1 ms (a huge ready list, a contended epoll). */
#define OVERSLEEP_NS 10000000u
#define ZERO_POLL_NS 1000000u
void cor__debug_slow_poll(struct cor_loop *loop, int64_t timeout_ns,
                          uint64_t start, uint64_t end) {
  struct cor__dbg *d = loop->dbg;
  uint64_t took = end - start;
  if (d) {
    took = took > d->poll_cb_ns ? took - d->poll_cb_ns : 0;
    d->in_poll = false;
  }
  if (timeout_ns == 0 && took > ZERO_POLL_NS)
    COR_LOG(COR_LOG_WARNING,
            "poll with a zero timeout took %.3f ms (expected < %.3f ms)",
            (double)took / 1e6, ZERO_POLL_NS / 1e6);
  else if (timeout_ns > 0 && took > (uint64_t)timeout_ns + OVERSLEEP_NS)
    COR_LOG(COR_LOG_WARNING,
            "poll overslept its deadline by %.3f ms (timeout %.3f ms, took "
            "%.3f ms)",
            (double)(took - (uint64_t)timeout_ns) / 1e6,
            (double)timeout_ns / 1e6, (double)took / 1e6);
}

/* Debug mode: runs one callback (a ready entry, a cross-thread post, an fd
 * or signal callback) timed for the slow callback check, with the watchdog
 * told what runs. `site`: where it was scheduled, or NULL. */
void cor__debug_run_cb(struct cor_loop *loop, cor_callback cb, void *arg,
                       void *site) {
  /* A task step may free its task (the body returned): hold it, so its
   * repr can be printed after the step. */
  bool step = cor__is_task_step(cb);
  if (step)
    cor_retain(arg);
  uint64_t t0 = cor__now_ns();
  cor__debug_cb_begin(loop, cb, arg);
  cb(arg);
  cor__debug_cb_end(loop);
  uint64_t t1 = cor__now_ns();
  if (COR_UNLIKELY(t1 - t0 >= loop->slow_ns))
    cor__debug_slow_callback(loop, cb, arg, site, t1 - t0);
  if (step)
    cor_release(arg);
}

void cor__debug_cb_begin(struct cor_loop *loop, cor_callback cb, void *arg) {
  struct cor__dbg *d = loop->dbg;
  if (d == NULL)
    return;
  cor__store_rlx(&d->cur_cb, cb);
  cor__store_rlx(&d->cur_arg, arg);
  if (d->in_poll)
    d->cb_t0 = cor__now_ns();
}

void cor__debug_cb_end(struct cor_loop *loop) {
  struct cor__dbg *d = loop->dbg;
  if (d == NULL)
    return;
  cor__store_rlx(&d->cur_cb, NULL);
  if (d->in_poll)
    d->poll_cb_ns += cor__now_ns() - d->cb_t0;
}

/* ------------------------------------------------------------ registry */

static void dump_signal_install(void);

/* The registry's lock across fork: a child must not inherit it held by a
 * thread that did not follow (its exit report walks the registry). */
static void reg_fork_prepare(void) { pthread_mutex_lock(&reg_mu); }
static void reg_fork_parent(void) { pthread_mutex_unlock(&reg_mu); }
static void reg_fork_child(void) { pthread_mutex_init(&reg_mu, NULL); }
static void reg_atfork(void) {
  COR_ASSERT(pthread_atfork(reg_fork_prepare, reg_fork_parent,
                            reg_fork_child) == 0);
}

void cor__debug_loop_new(struct cor_loop *loop, const void *from) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, reg_atfork);
  if (loop->debug && loop->dbg)
    loop->dbg->created = cor__bt_new(from);
  reg_ent *e = cor__malloc(sizeof *e);
  if (e) {
    e->loop = loop;
    e->gen = cor__load_rlx(&cor__fork_gen);
    pthread_mutex_lock(&reg_mu);
    e->next = reg_head;
    reg_head = e;
    pthread_mutex_unlock(&reg_mu);
  }
  dump_signal_install();
}

static void watchdog_stop(struct cor_loop *loop);

void cor__debug_loop_free(struct cor_loop *loop) {
  pthread_mutex_lock(&reg_mu);
  for (reg_ent **pp = &reg_head; *pp; pp = &(*pp)->next) {
    if ((*pp)->loop == loop) {
      reg_ent *e = *pp;
      *pp = e->next;
      cor__free(e);
      break;
    }
  }
  pthread_mutex_unlock(&reg_mu);
  watchdog_stop(loop);
  if (!ck_pr_load_int(&loop->closed))
    cor__debug_report_unclosed_loop(loop);
  cor__res_loop_free(loop); /* its streams and endpoints still open */
}

void cor__debug_report_unclosed_loop(struct cor_loop *loop) {
  /* asyncio's ResourceWarning, with where the loop was made in debug
   * mode. */
  char text[3000], repr[96];
  cor__buf r = {repr, 0, sizeof repr};
  cor__loop_repr(loop, &r);
  cor__buf b = {text, 0, sizeof text};
  cor__buf_printf(&b, "unclosed event loop %s", repr);
  struct cor__dbg *d = loop->dbg;
  if (d && d->created) {
    cor__buf_printf(&b, "\nObject allocated at (most recent call last):\n");
    cor__bt_format(&b, d->created->pc, d->created->n);
    while (b.len > 0 && text[b.len - 1] == '\n')
      text[--b.len] = 0;
  }
  cor_exception_context ctx = {.message = text,
                               .level = COR_LOG_WARNING,
                               .object_repr = repr};
  /* The loop's own handler: the object is still whole here. */
  cor_loop_call_exception_handler(loop, &ctx);
}

/* "Retain if not already being freed": the registry may still list a loop
 * whose last reference is gone and whose free is about to unlist it. */
static bool try_retain(struct cor_loop *loop) {
  uint32_t r = ck_pr_load_32(&loop->obj.refs);
  while (r != 0) {
    if (cor__cas_sc_rlx(&loop->obj.refs, &r, r + 1))
      return true;
  }
  return false;
}

struct cor_loop **cor__debug_loops(size_t *n) {
  unsigned gen = cor__load_rlx(&cor__fork_gen);
  *n = 0;
  pthread_mutex_lock(&reg_mu);
  size_t cap = 0;
  for (reg_ent *e = reg_head; e; e = e->next)
    cap++;
  struct cor_loop **loops = cap ? cor__calloc(cap, sizeof *loops) : NULL;
  if (loops)
    for (reg_ent *e = reg_head; e; e = e->next)
      if (e->gen == gen && try_retain(e->loop))
        loops[(*n)++] = e->loop;
  pthread_mutex_unlock(&reg_mu);
  return loops;
}

/* ------------------------------------------------------------ dump */

typedef struct dump_req {
  struct cor_loop *loop;
  cor__buf out;
  int ntasks;
  int refs; /* the waiter and the posted callback */
  bool done;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} dump_req;

static void dump_req_put(dump_req *r) {
  if (cor__sub_ar(&r->refs, 1) == 0) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    cor__free(r->out.s);
    cor__free(r);
  }
}

static void dump_loop_into(struct cor_loop *loop, cor__buf *b, int *ntasks) {
  char repr[96];
  cor__buf r = {repr, 0, sizeof repr};
  cor__loop_repr(loop, &r);
  cor__buf_printf(b, "Loop %p %s thread %d\n", (void *)loop, repr,
                  ck_pr_load_int(&loop->owner_tid));
  *ntasks += cor__tasks_dump(loop, b);
}

static void dump_cb(void *arg) {
  dump_req *r = arg;
  pthread_mutex_lock(&r->mu);
  dump_loop_into(r->loop, &r->out, &r->ntasks);
  r->done = true;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  dump_req_put(r);
}

/* A dump posted to a loop that closed before running it: the posted
 * callback's reference goes back. */
static void dump_drop(void *arg) { dump_req_put(arg); }
__attribute__((constructor)) static void dump_module_init(void) {
  cor__ts_drop_register(dump_cb, dump_drop);
}

#define DUMP_BUF (256 * 1024)

static int write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

/* `direct`: read a loop that is not running from this thread (the caller of
 * cor_dump_tasks knows whether anyone is using it). The dump signal's thread
 * passes false: it cannot know, and a loop between two runs is its owner's
 * to change (a task released under the reader is freed memory). */
static int dump_tasks(int fd, bool direct) {
  pthread_mutex_lock(&reg_mu);
  size_t n = 0;
  for (reg_ent *e = reg_head; e; e = e->next)
    n++;
  struct cor_loop **loops = cor__calloc(n ? n : 1, sizeof *loops);
  size_t k = 0;
  if (loops)
    for (reg_ent *e = reg_head; e; e = e->next)
      if (try_retain(e->loop))
        loops[k++] = e->loop;
  pthread_mutex_unlock(&reg_mu);
  if (loops == NULL)
    return -ENOMEM;
  int total = 0, err = 0;
  for (size_t i = 0; i < k; i++) {
    struct cor_loop *loop = loops[i];
    dump_req *r = cor__calloc(1, sizeof *r);
    char *s = cor__malloc(DUMP_BUF);
    if (r == NULL || s == NULL) {
      cor__free(r);
      cor__free(s);
      cor_release(loop);
      err = -ENOMEM;
      continue;
    }
    r->loop = loop;
    r->out = (cor__buf){s, 0, DUMP_BUF};
    s[0] = 0;
    r->refs = 1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (cor__tls_loop == loop || (direct && (!ck_pr_load_int(&loop->running) ||
                                             ck_pr_load_int(&loop->closed)))) {
      /* Our own loop, or one nobody runs: read it here. */
      dump_loop_into(loop, &r->out, &r->ntasks);
      r->done = true;
    } else if (!ck_pr_load_int(&loop->running) ||
               ck_pr_load_int(&loop->closed)) {
      char repr[96];
      cor__buf rb = {repr, 0, sizeof repr};
      cor__loop_repr(loop, &rb);
      cor__buf_printf(&r->out,
                      "Loop %p %s: not running, not dumped (its tasks are "
                      "read at a safe point of its run)\n",
                      (void *)loop, repr);
      r->done = true;
    } else {
      r->refs = 2;
      if (cor_call_soon_threadsafe(loop, dump_cb, r) != 0) {
        r->refs = 1;
        cor__buf_printf(&r->out, "Loop %p: closed while dumping\n",
                        (void *)loop);
        r->done = true;
      } else {
        struct timespec ts;
        cor__realtime_abstime(cor__now_ns() + 1000000000u, &ts);
        pthread_mutex_lock(&r->mu);
        while (!r->done)
          if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0)
            break;
        if (!r->done)
          cor__buf_printf(&r->out,
                          "Loop %p thread %d: no safe point within 1 s (a "
                          "callback is stuck?): not dumped\n",
                          (void *)loop, ck_pr_load_int(&loop->owner_tid));
        pthread_mutex_unlock(&r->mu);
      }
    }
    pthread_mutex_lock(&r->mu);
    int rc = write_all(fd, r->out.s, r->out.len);
    total += r->ntasks;
    pthread_mutex_unlock(&r->mu);
    if (rc < 0)
      err = rc;
    dump_req_put(r);
    cor_release(loop);
  }
  cor__free(loops);
  return err < 0 ? err : total;
}

int cor_dump_tasks(int fd) { return dump_tasks(fd, true); }

/* CORIO_DUMP_SIGNAL: the handler writes one byte to a pipe; a thread of our
 * own reads it and calls cor_dump_tasks(2), which reads each running loop
 * at a safe point of its own (a posted callback). */
static int dump_pipe[2] = {-1, -1};

static void dump_sig_handler(int sig) {
  (void)sig;
  int e = errno;
  char c = 1;
  /* The write end is non-blocking: a handler must never block (the pipe
   * fills when signals outrun dumps, each of which may wait 1 s for a stuck
   * loop, and a forked child has no dump thread at all). A full pipe means
   * a dump is due anyway. */
  ssize_t w = write(dump_pipe[1], &c, 1);
  (void)w;
  errno = e;
}

static void *dump_thread(void *arg) {
  (void)arg;
  char c[64];
  for (;;) {
    /* Every signal that arrived since the last dump, in one read: a burst
     * of signals gives one dump, not one per signal. */
    ssize_t r = read(dump_pipe[0], c, sizeof c);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return NULL;
    dump_tasks(2, false);
  }
}

static int parse_signal(const char *s) {
  if (s == NULL || s[0] == 0)
    return 0;
  char *end;
  long v = strtol(s, &end, 10);
  if (*end == 0)
    return v > 0 && v < NSIG ? (int)v : 0;
  if (strncmp(s, "SIG", 3) == 0)
    s += 3;
  static const struct {
    const char *n;
    int s;
  } names[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT},
               {"HUP", SIGHUP},   {"WINCH", SIGWINCH}, {"PWR", SIGPWR}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(s, names[i].n) == 0)
      return names[i].s;
  return 0;
}

static void dump_signal_once(void) {
  int sig = parse_signal(getenv("CORIO_DUMP_SIGNAL"));
  if (sig == 0)
    return;
  if (pipe2(dump_pipe, O_CLOEXEC) != 0)
    return;
  fcntl(dump_pipe[1], F_SETFL, O_NONBLOCK);
  pthread_t th;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  /* The dump thread must never take the signals the loops own. */
  int rc = cor__thread_create(&th, &a, dump_thread, NULL, false);
  pthread_attr_destroy(&a);
  if (rc != 0)
    return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = dump_sig_handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static void dump_signal_install(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, dump_signal_once);
}

/* ------------------------------------------------------------ watchdog */

/* The signal the watchdog sends the stuck loop's thread: a real-time one
 * near the top, away from glibc's (SIGRTMIN) and the ones applications
 * usually take first. Its handler records the thread's backtrace. */
#define WD_SIGNAL (SIGRTMAX - 3)
#define WD_REPORTS_PER_MIN 5

static void wd_handler(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  struct cor_loop *loop = si->si_value.sival_ptr;
  if (loop == NULL || cor__tls_loop != loop || loop->dbg == NULL)
    return;
  struct cor__dbg *d = loop->dbg;
  /* Only when asked: the acquire pairs with the watchdog's release of -1,
   * which it made after reading the previous capture. */
  if (cor__load_acq(&d->wd_n) != -1)
    return;
  int e = errno;
  /* backtrace() was warmed when the watchdog started: no allocation. */
  int n = cor__bt_capture(d->wd_pcs, COR__BT_MAX, 1);
  cor__store_rel(&d->wd_n, n);
  errno = e;
}

static void wd_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = wd_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(WD_SIGNAL, &sa, NULL);
}

/* Whether the signal may be sent to thread `tid` without changing what it
 * does. The handler has SA_RESTART, so the calls signal(7) lists as
 * restarted (read, write, accept, recv, send, wait4, futex: mutexes,
 * condition variables, semaphores...) go on as if nothing happened; but
 * the kernel never restarts the sleeps and the multiplexers (nanosleep,
 * clock_nanosleep, poll, select, epoll_wait, io_uring_enter, pause,
 * sigtimedwait, semop...) once a handler ran: they would return early with
 * EINTR (sleep(3): early, with the seconds left). So the watchdog first
 * reads /proc/self/task/TID/syscall ("running", or the number of the
 * system call the thread is blocked in) and signals only a thread running
 * user code, blocked in one of the restarted calls, or blocked outside
 * any call (-1: a page fault). Otherwise *nr is the call and the report
 * names it without a stack. What remains: a thread seen running that
 * enters one of those calls within the few microseconds before the signal
 * lands; and the socket calls signal(7) excepts (SO_RCVTIMEO/SO_SNDTIMEO
 * set on the socket). */
static bool wd_may_signal(int tid, long *nr) {
  char path[64], buf[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  *nr = -2;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return true; /* no /proc: the old way, a signal */
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return true;
  buf[n] = 0;
  if (strncmp(buf, "running", 7) == 0)
    return true;
  long v = strtol(buf, NULL, 10);
  *nr = v;
  switch (v) {
  case -1: /* blocked, not in a system call */
  case SYS_read:
  case SYS_readv:
  case SYS_write:
  case SYS_writev:
  case SYS_openat:
  case SYS_wait4:
  case SYS_waitid:
  case SYS_accept:
  case SYS_accept4:
  case SYS_connect:
  case SYS_recvfrom:
  case SYS_recvmsg:
  case SYS_sendto:
  case SYS_sendmsg:
  case SYS_flock:
  case SYS_fcntl:
  case SYS_futex:
  case SYS_getrandom:
  case SYS_mq_timedsend:
  case SYS_mq_timedreceive:
    return true;
  default:
    return false;
  }
}

/* The name of the blocking calls a report may name, else NULL. */
static const char *wd_syscall_name(long nr) {
  static const struct {
    long nr;
    const char *name;
  } t[] = {
#ifdef SYS_nanosleep
      {SYS_nanosleep, "nanosleep"},
#endif
      {SYS_clock_nanosleep, "clock_nanosleep"},
#ifdef SYS_poll
      {SYS_poll, "poll"},
#endif
      {SYS_ppoll, "ppoll"},
#ifdef SYS_select
      {SYS_select, "select"},
#endif
      {SYS_pselect6, "pselect6"},
#ifdef SYS_epoll_wait
      {SYS_epoll_wait, "epoll_wait"},
#endif
      {SYS_epoll_pwait, "epoll_pwait"},
#ifdef SYS_pause
      {SYS_pause, "pause"},
#endif
      {SYS_rt_sigsuspend, "sigsuspend"},
      {SYS_rt_sigtimedwait, "sigtimedwait"},
      {SYS_io_getevents, "io_getevents"},
      {SYS_io_uring_enter, "io_uring_enter"},
      {SYS_msgrcv, "msgrcv"},
      {SYS_msgsnd, "msgsnd"},
      {SYS_semop, "semop"},
      {SYS_semtimedop, "semtimedop"},
      {SYS_recvmmsg, "recvmmsg"},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++)
    if (t[i].nr == nr)
      return t[i].name;
  return NULL;
}

/* Process-wide rate limit: at most 5 reports in any minute. */
static pthread_mutex_t wd_rate_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t wd_times[WD_REPORTS_PER_MIN];
static bool wd_rate_ok(uint64_t now) {
  pthread_mutex_lock(&wd_rate_mu);
  int oldest = 0;
  for (int i = 1; i < WD_REPORTS_PER_MIN; i++)
    if (wd_times[i] < wd_times[oldest])
      oldest = i;
  bool ok = wd_times[oldest] == 0 || now - wd_times[oldest] >= 60000000000ull;
  if (ok)
    wd_times[oldest] = now;
  pthread_mutex_unlock(&wd_rate_mu);
  return ok;
}

static void wd_report(struct cor_loop *loop, struct cor__dbg *d,
                      uint64_t stuck_ns) {
  if (!wd_rate_ok(cor__now_ns()))
    return;
  int tid = ck_pr_load_int(&loop->owner_tid);
  cor__store_rel(&d->wd_n, -1);
  union sigval v = {.sival_ptr = loop};
  bool have = false;
  /* rt_tgsigqueueinfo, not sigqueue: the signal must reach the stuck
   * thread itself, with the loop as its value. */
  siginfo_t si;
  memset(&si, 0, sizeof si);
  si.si_signo = WD_SIGNAL;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_uid = getuid();
  si.si_value = v;
  long nr = -2;
  bool may = tid != 0 && wd_may_signal(tid, &nr);
  if (may &&
      syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, WD_SIGNAL, &si) == 0) {
    for (int i = 0; i < 200; i++) { /* up to 200 ms */
      if (cor__load_acq(&d->wd_n) >= 0) {
        have = true;
        break;
      }
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
  }
  char text[4000], repr[96];
  cor__buf r = {repr, 0, sizeof repr};
  cor__loop_repr(loop, &r);
  cor__buf b = {text, 0, sizeof text};
  cor__buf_printf(&b, "loop %s (thread %d) stuck for %.3f seconds", repr, tid,
                  (double)stuck_ns / 1e9);
  cor_callback cb = cor__load_rlx(&d->cur_cb);
  if (cb) {
    char fn[128];
    cor__buf_printf(&b, " in %s()",
                    cor__fn_name((const void *)(uintptr_t)cb, fn, sizeof fn));
  }
  if (tid != 0 && !may) {
    const char *sc = wd_syscall_name(nr);
    char num[32];
    snprintf(num, sizeof num, "system call %ld", nr);
    cor__buf_printf(&b,
                    "; blocked in %s(), which a signal would cut short: "
                    "no stack taken",
                    sc ? sc : num);
  }
  if (have) {
    cor__buf_printf(&b, "; its stack (most recent call last):\n");
    cor__bt_format(&b, d->wd_pcs, cor__load_acq(&d->wd_n));
    while (b.len > 0 && text[b.len - 1] == '\n')
      text[--b.len] = 0;
  }
  cor_log(COR_LOG_WARNING, "%s", text);
}

static void *wd_main(void *arg) {
  struct cor_loop *loop = arg;
  struct cor__dbg *d = loop->dbg;
  uint64_t last_iter = ck_pr_load_64(&loop->st_iterations);
  uint64_t since = cor__now_ns();
  int reported = 0; /* 0, 1 (1x), 2 (2x), 3 (4x) */
  pthread_mutex_lock(&d->wd_mu);
  while (!d->wd_stop) {
    uint64_t period = d->wd_ns / 4;
    if (period < 1000000)
      period = 1000000;
    struct timespec ts;
    cor__monotonic_abstime(cor__now_ns() + period, &ts);
    pthread_cond_timedwait(&d->wd_cv, &d->wd_mu, &ts);
    if (d->wd_stop)
      break;
    uint64_t it = ck_pr_load_64(&loop->st_iterations);
    uint64_t now = cor__now_ns();
    /* Stuck: running, awake (not in the poller), and no iteration ended
     * since we last looked. */
    if (it != last_iter || !ck_pr_load_int(&loop->running) ||
        ck_pr_load_int(&loop->sleeping)) {
      last_iter = it;
      since = now;
      reported = 0;
      continue;
    }
    uint64_t stuck = now - since;
    uint64_t next = d->wd_ns << (reported == 0 ? 0 : reported == 1 ? 1 : 2);
    if (reported < 3 && stuck >= next) {
      reported++;
      pthread_mutex_unlock(&d->wd_mu);
      wd_report(loop, d, stuck);
      pthread_mutex_lock(&d->wd_mu);
    }
  }
  pthread_mutex_unlock(&d->wd_mu);
  return NULL;
}

int cor_loop_set_watchdog(cor_loop_t *loop, double seconds) {
  if (loop == NULL || !(seconds >= 0) || seconds > 1e6)
    return cor__bad_arg("cor_loop_set_watchdog",
                        loop == NULL ? "loop is NULL"
                                     : "seconds is negative, NaN or above 1e6");
  COR__CHECK_THREAD(loop, "cor_loop_set_watchdog");
  watchdog_stop(loop);
  if (seconds == 0)
    return 0;
  struct cor__dbg *d = dbg_of(loop);
  if (d == NULL)
    return -ENOMEM;
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  cor__bt_warm();
  pthread_once(&once, wd_install);
  d->wd_ns = cor__duration_ns(seconds);
  d->wd_stop = false;
  int rc = cor__thread_create(&d->wd_thread, NULL, wd_main, loop, false);
  if (rc != 0)
    return -rc;
  d->wd_running = true;
  return 0;
}

static void watchdog_stop(struct cor_loop *loop) {
  struct cor__dbg *d = loop->dbg;
  if (d == NULL || !d->wd_running)
    return;
  pthread_mutex_lock(&d->wd_mu);
  d->wd_stop = true;
  pthread_cond_signal(&d->wd_cv);
  pthread_mutex_unlock(&d->wd_mu);
  pthread_join(d->wd_thread, NULL);
  d->wd_running = false;
}

/* ------------------------------------------------------------ unrun handles */

/* One line per handle, at most this many; then a count of the rest. */
#define UNRUN_MAX_LINES 16

static void unrun_line(struct cor_loop *loop, const char *prefix,
                       cor_callback cb, uint32_t slot, const char *what) {
  char fn[128], at[300];
  cor__fn_name((const void *)(uintptr_t)cb, fn, sizeof fn);
  at[0] = 0;
  struct cor__dbg *d = loop->dbg;
  if (slot != 0 && d != NULL && slot < d->sites_cap && d->sites[slot])
    cor__site(d->sites[slot], at, sizeof at);
  if (at[0])
    COR_LOG(COR_LOG_WARNING, "%s<Handle %s() created at %s> (%s) dropped unrun",
            prefix, fn, at, what);
  else
    COR_LOG(COR_LOG_WARNING, "%s<Handle %s()> (%s) dropped unrun", prefix, fn,
            what);
}

size_t cor__debug_report_unrun(struct cor_loop *loop, const char *prefix) {
  size_t n = 0;
  uint64_t now = cor__now_ns();
  for (uint32_t i = 0; i < loop->timers.len; i++) {
    const cor__timer_ent *e = &loop->timers.ents[i];
    const cor__slot *s = &loop->slots[e->slot];
    if (s->state != COR__SLOT_TIMER || cor__is_task_cb(s->cb))
      continue; /* cancelled, or a task's sleep: reported with the task */
    if (n++ < UNRUN_MAX_LINES) {
      char what[64];
      snprintf(what, sizeof what, "timer due in %.3f s",
               e->when > now ? (double)(e->when - now) / 1e9 : 0.0);
      unrun_line(loop, prefix, s->cb, e->slot, what);
    }
  }
  for (uint32_t i = 0; i < loop->rlen; i++) {
    const cor__ready_ent *e = &loop->ready[(loop->rhead + i) & (loop->rcap - 1)];
    if (e->slot != 0 && loop->slots[e->slot].state != COR__SLOT_READY)
      continue; /* cancelled */
    if (cor__is_task_cb(e->cb))
      continue; /* a task's step: the task is reported as a task */
    if (n++ < UNRUN_MAX_LINES)
      unrun_line(loop, prefix, e->cb, e->slot, "ready");
  }
  if (n > UNRUN_MAX_LINES)
    COR_LOG(COR_LOG_WARNING, "%s... and %zu more handle(s) dropped unrun",
            prefix, n - UNRUN_MAX_LINES);
  return n;
}
