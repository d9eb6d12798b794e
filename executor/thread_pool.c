/* SPDX-License-Identifier: MIT */
/* The thread pool: blocking C functions on worker threads.
 *
 * One FIFO queue of jobs under the pool's mutex (a job can be unlinked from
 * the middle when its future is cancelled). Workers start on demand, up to
 * max_workers, when a job is queued and no worker is idle.
 *
 * Wake-ups are the cost to avoid (~24 us to hand a job to a sleeping thread
 * on the 2-vCPU guest, shared/machine-limits.md). An idle worker first
 * spins, watching the queue length without the lock; only when no worker
 * spins does a submit wake a sleeper (one futex wake, each sleeper has its
 * own condition variable so exactly that one wakes). At most half the CPUs
 * spin at once, so spinners never take every core from the loops feeding
 * them. A worker takes several jobs per lock when the queue is long (up to
 * queue/max_workers, at most 16), so a burst costs one lock per batch, and
 * only while jobs prove short (a batch that ran long makes the worker take
 * one at a time again, so a slow job cannot hold fast ones behind it for
 * long).
 *
 * Completions go back to their loop through the pool's port for that loop
 * (executor.c): one push per batch, one post per burst. */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/thread.h"
#include "loop/loop.h"
#include "executor_internal.h"
#include "base/atomics.h"
#include "base/list.h"

#include <signal.h>
#include <time.h>

#define DEFAULT_IDLE_NS 60000000000ull /* 60 s, see idle_timeout */
#define DEFAULT_SPIN_NS 50000u         /* 50 us: ~2x a sleeping hand-off */
#define MAX_BATCH 16u
/* A batch whose jobs averaged more than this makes the worker take one job
 * at a time: such jobs are blocking work, not the tiny calls batching pays
 * for, and holding queued jobs behind them would delay them. */
#define SLOW_JOB_NS 20000u
/* What waking a sleeping worker costs, end to end, on the 2-vCPU guest
 * (~24 us round trip, shared/machine-limits.md). A queue that a busy worker
 * will clear sooner than that is left to it: waking another would cost more
 * than it saves, and on a small machine would only take a core from the
 * loop that feeds the pool. A busy worker that made no progress for this
 * long counts as stuck in a long job, and another one is woken. */
#define WAKE_COST_NS 30000u

enum { J_QUEUED = 0, J_TAKEN, J_RUNNING, J_DONE, J_CANCELLED };
enum { K_LOOP = 0, K_CF };
enum { W_RUNNING = 0, W_SPINNING, W_SLEEPING };

typedef struct tpool tpool;

/* The part of a job that the pool sees. A loop job embeds it after its
 * future (ljob); a submit job after its cfuture (cjob). */
typedef struct tjob {
  struct tjob *prev, *next; /* queue links, or a worker's batch (next) */
  int state;                /* J_*: under the pool mutex, or atomic (TAKEN) */
  uint8_t kind;
  cor_fn fn;
  void *arg;
  tpool *pool;
  const void *site; /* return address of the submitting call */
} tjob;

typedef struct ljob {
  cor__xjob x;
  tjob t;
} ljob;

typedef struct cjob {
  struct cor_cfuture cf;
  tjob t;
} cjob;

typedef struct worker {
  struct worker *next; /* sleepers list, then the exited list */
  struct worker *live_next; /* the pool's live workers, under mu */
  /* The job running now (atomic, relaxed; NULL between batches): what a
   * shutdown that timed out reports. Copies, not the job, which may be
   * freed the moment it ends. */
  cor_fn cur_fn;
  const void *cur_site;
  pthread_t thread;
  pthread_cond_t cond;
  int state;  /* W_*, under the mutex */
  tpool *pool;
  unsigned id;
} worker;

struct tpool {
  struct cor_executor ex;
  pthread_mutex_t mu;
  pthread_cond_t exit_cond; /* nthreads decreased */
  tjob *qhead, *qtail;
  /* Jobs in the queue: written under mu, read by spinners without it. */
  int qlen COR_ALIGNED_CL;
  int shutdown; /* written under mu, read by spinners without it */
  size_t queue_limit COR_ALIGNED_CL;
  unsigned nthreads, nspinning, max_spinners, next_id;
  unsigned nbusy;       /* workers running a batch */
  uint64_t progress_ns; /* last time a worker took or finished a batch */
  uint64_t avg_ns;      /* moving average of a job's run time */
  worker *sleepers;
  worker *live; /* every worker thread not yet exited (live_next) */
  /* Workers whose thread ended (or is ending), not joined yet: joined by
   * the next spawn, a waiting shutdown, or destroy, so a waiting shutdown
   * returns only when the threads are really gone. */
  worker *exited;
  uint64_t idle_ns, spin_ns; /* idle_ns UINT64_MAX: never exit */
  char prefix[16];
};

static _Thread_local struct {
  tpool *pool;
} tls;
extern _Thread_local cor_executor_t *cor__tls_worker_of;

static void join_exited(tpool *p);
static int tp_shutdown(cor_executor_t *ex, bool wait, bool cancel,
                       uint64_t deadline);
static void tp_cancelled(cor__xjob *j);
static void tp_destroy(cor_executor_t *ex);
static size_t tp_report(cor_executor_t *ex, const char *prefix);
static void tp_repr(cor_executor_t *ex, cor__buf *out);
static const cor__xops tp_ops = {tp_shutdown, tp_cancelled, tp_destroy,
                                 tp_report, tp_repr};

static inline ljob *ljob_of(tjob *t) {
  return cor__container_of(t, ljob, t);
}
static inline cjob *cjob_of(tjob *t) {
  return cor__container_of(t, cjob, t);
}

/* ------------------------------------------------------------ the pool */

cor_executor_t *cor_thread_pool_new(const cor_thread_pool_opts *opts) {
  cor_thread_pool_opts o = opts ? *opts : (cor_thread_pool_opts){0};
  if (o.max_workers > 1024)
    return cor__bad_arg_ptr("cor_thread_pool_new",
                            "opts->max_workers is above 1024");
  unsigned cpus = cor__affinity_cpus();
  tpool *p = cor__executor_alloc(sizeof *p, &tp_ops, COR__X_THREAD);
  if (p == NULL)
    return NULL;
  p->ex.max_workers = o.max_workers ? o.max_workers
                                    : (cpus + 4 < 32 ? cpus + 4 : 32);
  p->queue_limit = o.queue_limit;
  p->idle_ns = o.idle_timeout < 0    ? UINT64_MAX
               : o.idle_timeout == 0 ? DEFAULT_IDLE_NS
                                     : cor__duration_ns(o.idle_timeout);
  if (p->idle_ns == 0) /* NaN: the default */
    p->idle_ns = DEFAULT_IDLE_NS;
  p->spin_ns = o.spin_seconds < 0    ? 0
               : o.spin_seconds == 0 ? DEFAULT_SPIN_NS
                                     : cor__duration_ns(o.spin_seconds);
  p->max_spinners = cpus / 2 ? cpus / 2 : 1;
  snprintf(p->prefix, sizeof p->prefix, "%s",
           o.name_prefix ? o.name_prefix : "cor-pool");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->exit_cond, &ca);
  pthread_condattr_destroy(&ca);
  cor__executor_track(&p->ex, __builtin_return_address(0));
  return &p->ex;
}

/* "ThreadPoolExecutor max_workers=4 threads=1 queued=0 name='cor-pool'" */
static void tp_repr(cor_executor_t *ex, cor__buf *out) {
  tpool *p = (tpool *)ex;
  pthread_mutex_lock(&p->mu);
  unsigned threads = p->nthreads;
  int queued = p->qlen;
  pthread_mutex_unlock(&p->mu);
  cor__buf_printf(out,
                  "ThreadPoolExecutor max_workers=%u threads=%u queued=%d "
                  "name='%s'",
                  ex->max_workers, threads, queued, p->prefix);
}

static void tp_destroy(cor_executor_t *ex) {
  tpool *p = (tpool *)ex;
  COR_ASSERT(p->nthreads == 0 && p->qhead == NULL);
  join_exited(p);
  cor__executor_fini(ex);
  pthread_cond_destroy(&p->exit_cond);
  pthread_mutex_destroy(&p->mu);
  cor__free(p);
}

/* ------------------------------------------------------------ the queue */

static void q_append(tpool *p, tjob *t) {
  cor__list_push_back(&p->qhead, &p->qtail, t);
  ck_pr_store_int(&p->qlen, p->qlen + 1);
}

static void q_unlink(tpool *p, tjob *t) {
  cor__list_unlink_ht(&p->qhead, &p->qtail, t);
  ck_pr_store_int(&p->qlen, p->qlen - 1);
}

/* ------------------------------------------------------------ workers */

static void *worker_main(void *arg);

/* Starts a worker thread, counted as spinning (it looks at the queue as
 * soon as it runs). Under mu. Async signals stay blocked in it so that a
 * process-directed signal reaches an application thread. */
/* Joins the threads that ended; under mu (they no longer take it). A
 * thread never joins itself: it detaches (destroy run by the last worker). */
static void join_exited(tpool *p) {
  worker *w = p->exited;
  p->exited = NULL;
  while (w) {
    worker *next = w->next;
    if (pthread_equal(w->thread, pthread_self()))
      pthread_detach(w->thread);
    else
      pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    cor__free(w);
    w = next;
  }
}

static int spawn_worker(tpool *p) {
  join_exited(p);
  worker *w = cor__calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cond, &ca);
  pthread_condattr_destroy(&ca);
  w->pool = p;
  w->id = p->next_id++;
  w->state = W_SPINNING;
  cor__executor_iref_get(&p->ex);
  int rc = cor__thread_create(&w->thread, NULL, worker_main, w, true);
  if (rc != 0) {
    cor__executor_iref_put(&p->ex); /* cannot be the last: the caller's */
    pthread_cond_destroy(&w->cond);
    cor__free(w);
    return -rc;
  }
  p->nthreads++;
  p->nspinning++;
  w->live_next = p->live;
  p->live = w;
  return 0;
}

/* Under mu, with jobs queued: makes sure someone will look at the queue. A
 * spinner will; otherwise wake one sleeper; otherwise start a thread when
 * there is room. Busy workers come back to the queue by themselves. */
static void wake_one(tpool *p) {
  if (p->nspinning > 0)
    return;
  if (p->nbusy > 0 && (uint64_t)p->qlen * p->avg_ns < WAKE_COST_NS) {
    uint64_t now = cor__now_ns();
    if (now - p->progress_ns < WAKE_COST_NS)
      return; /* a busy worker comes back for these sooner than a wake-up */
  }
  worker *w = p->sleepers;
  if (w) {
    p->sleepers = w->next;
    w->state = W_SPINNING; /* counted awake at once: no second wake */
    p->nspinning++;
    pthread_cond_signal(&w->cond);
    return;
  }
  /* Also during shutdown: queued jobs still run, someone must take them. */
  if (p->nthreads < p->ex.max_workers) {
    int rc = spawn_worker(p);
    if (rc != 0 && p->nthreads == 0)
      COR_LOG(COR_LOG_ERROR, "thread pool %s: cannot start a worker: %s",
              p->prefix, cor_strerror(rc));
  }
}

static void remove_sleeper(tpool *p, worker *w) {
  for (worker **pp = &p->sleepers; *pp; pp = &(*pp)->next) {
    if (*pp == w) {
      *pp = w->next;
      return;
    }
  }
}

/* Runs one job taken from the queue and, for a loop job, links it on the
 * worker's pending completions. */
static void run_job(tjob *t, cor__xjob **cfirst, cor__xjob **clast) {
  if (t->kind == K_LOOP) {
    /* TAKEN -> RUNNING, unless the loop cancelled it meanwhile. */
    int expect = J_TAKEN;
    ljob *lj = ljob_of(t);
    if (!cor__cas_ar_acq(&t->state, &expect, J_RUNNING)) {
      lj->x.outcome = COR__XJ_DROP; /* cancelled: just give it back */
    } else {
      void *res = NULL;
      int rc = t->fn(t->arg, &res);
      lj->x.outcome = COR__XJ_DONE;
      lj->x.code = rc < 0 ? rc : 0;
      lj->x.result = res;
      if (rc < 0)
        cor__fail_take(rc, &lj->x.msg, &lj->x.file, &lj->x.line);
    }
    /* Completions of one batch go back in one push per port. */
    if (*clast != NULL && (*clast)->port != lj->x.port) {
      cor__xport_push((*cfirst)->port, *cfirst, *clast);
      *cfirst = *clast = NULL;
    }
    lj->x.cnext = NULL;
    if (*clast)
      (*clast)->cnext = &lj->x;
    else
      *cfirst = &lj->x;
    *clast = &lj->x;
    return;
  }
  cjob *cj = cjob_of(t);
  if (cor__cfuture_set_running(&cj->cf)) {
    void *res = NULL;
    int rc = t->fn(t->arg, &res);
    if (rc < 0) {
      char *msg = NULL;
      const char *file = NULL;
      int line = 0;
      cor__fail_take(rc, &msg, &file, &line);
      cor__cfuture_set_error(&cj->cf, rc, msg, file, line);
      cor__free(msg);
    } else {
      cor__cfuture_set_result(&cj->cf, res);
    }
  }
  cor_release(&cj->cf); /* the pool's reference */
}

static void *worker_main(void *arg) {
  worker *w = arg;
  tpool *p = w->pool;
  /* Linux keeps 15 bytes: the prefix gives way to the number. */
  char name[16], num[12];
  int nl = snprintf(num, sizeof num, "-%u", w->id);
  snprintf(name, sizeof name, "%.*s%s", 15 - nl, p->prefix, num);
  pthread_setname_np(pthread_self(), name);
  tls.pool = p;
  cor__tls_worker_of = &p->ex;
  bool slow = false;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->qlen > 0) {
      /* Take a batch: a share of the queue, so other workers get theirs. */
      unsigned n = 1;
      if (!slow) {
        unsigned q = (unsigned)p->qlen, m = p->ex.max_workers;
        n = (q + m - 1) / m;
        if (n > MAX_BATCH)
          n = MAX_BATCH;
      }
      tjob *first = NULL, *last = NULL;
      for (unsigned i = 0; i < n && p->qhead; i++) {
        tjob *t = p->qhead;
        q_unlink(p, t);
        /* Loop jobs: TAKEN is left with a CAS by whichever comes first,
         * the worker (RUNNING) or the loop's cancel (CANCELLED). */
        cor__store_rlx(&t->state, J_TAKEN);
        if (last)
          last->next = t;
        else
          first = t;
        last = t;
      }
      if (w->state == W_SPINNING)
        p->nspinning--;
      w->state = W_RUNNING;
      p->nbusy++;
      uint64_t t0 = cor__now_ns();
      p->progress_ns = t0;
      if (p->qlen > 0)
        wake_one(p); /* more than our share: maybe bring another worker in */
      pthread_mutex_unlock(&p->mu);

      cor__xjob *cfirst = NULL, *clast = NULL;
      unsigned ran = 0;
      for (tjob *t = first, *next; t; t = next) {
        next = t->next;
        cor__store_rlx(&w->cur_fn, t->fn);
        cor__store_rlx(&w->cur_site, t->site);
        run_job(t, &cfirst, &clast);
        ran++;
      }
      cor__store_rlx(&w->cur_fn, NULL);
      if (cfirst)
        cor__xport_push(cfirst->port, cfirst, clast);
      uint64_t t1 = cor__now_ns(), per = (t1 - t0) / ran;
      slow = per > SLOW_JOB_NS;
      pthread_mutex_lock(&p->mu);
      p->nbusy--;
      p->progress_ns = t1;
      p->avg_ns = (p->avg_ns * 7 + per) / 8;
      continue;
    }
    if (p->shutdown)
      break;
    /* Idle. Spin first, if few enough others do. */
    if (w->state != W_SPINNING && p->spin_ns > 0 &&
        p->nspinning < p->max_spinners) {
      w->state = W_SPINNING;
      p->nspinning++;
    }
    if (w->state == W_SPINNING && p->spin_ns > 0) {
      pthread_mutex_unlock(&p->mu);
      uint64_t until = cor__now_ns() + p->spin_ns;
      for (unsigned k = 0;;) {
        if (ck_pr_load_int(&p->qlen) > 0 || ck_pr_load_int(&p->shutdown))
          break;
        if (!cor__spin_step(&k, until))
          break;
      }
      pthread_mutex_lock(&p->mu);
      if (p->qlen > 0 || p->shutdown)
        continue; /* still counted as spinning: taking work clears it */
    }
    if (w->state == W_SPINNING)
      p->nspinning--;
    /* Sleep until a submit picks us (state becomes SPINNING), shutdown, or
     * the keep-alive runs out. */
    w->state = W_SLEEPING;
    w->next = p->sleepers;
    p->sleepers = w;
    uint64_t deadline = p->idle_ns == UINT64_MAX ? UINT64_MAX
                                                 : cor__now_ns() + p->idle_ns;
    bool expired = false;
    while (w->state == W_SLEEPING && !p->shutdown) {
      if (deadline == UINT64_MAX) {
        pthread_cond_wait(&w->cond, &p->mu);
      } else {
        struct timespec ts = {(time_t)(deadline / 1000000000u),
                              (long)(deadline % 1000000000u)};
        if (pthread_cond_timedwait(&w->cond, &p->mu, &ts) == ETIMEDOUT &&
            w->state == W_SLEEPING) {
          expired = true;
          break;
        }
      }
    }
    if (w->state == W_SLEEPING) {
      remove_sleeper(p, w);
      w->state = W_RUNNING;
      if (expired && p->qlen == 0)
        break; /* idle too long: this thread goes */
    }
  }
  if (w->state == W_SPINNING)
    p->nspinning--;
  p->nthreads--;
  for (worker **pw = &p->live; *pw; pw = &(*pw)->live_next) {
    if (*pw == w) {
      *pw = w->live_next;
      break;
    }
  }
  pthread_cond_broadcast(&p->exit_cond);
  /* A job queued while we left (shutdown keeps no one from queueing before
   * it is set) is picked up by someone else. */
  if (p->qlen > 0 && !p->shutdown)
    wake_one(p);
  w->next = p->exited;
  p->exited = w;
  pthread_mutex_unlock(&p->mu);
  cor__tls_worker_of = NULL;
  cor__executor_iref_put(&p->ex); /* the last touch of the pool */
  return NULL;
}

/* ------------------------------------------------------------ submitting */

/* Queues t, or fails with -EAGAIN (queue_limit) or COR_ECLOSED. */
static int submit(tpool *p, tjob *t) {
  pthread_mutex_lock(&p->mu);
  if (COR_UNLIKELY(p->shutdown)) {
    pthread_mutex_unlock(&p->mu);
    return COR_ECLOSED;
  }
  if (p->queue_limit && (size_t)p->qlen >= p->queue_limit) {
    pthread_mutex_unlock(&p->mu);
    return -EAGAIN;
  }
  t->state = J_QUEUED;
  q_append(p, t);
  wake_one(p);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

static void ljob_deliver(cor__xjob *x) {
  if (cor__xjob_deliver_cancelled(x))
    return;
  char *msg = x->msg;
  x->msg = NULL;
  cor__xjob_finish(x, x->code, x->result, msg, x->file, x->line);
}

cor_future_t *cor_run_in_executor(cor_loop_t *loop, cor_executor_t *ex,
                                  cor_fn fn, void *arg) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL || fn == NULL || (ex && ex->kind != COR__X_THREAD))
    return cor__bad_arg_ptr("cor_run_in_executor",
                            loop == NULL ? "loop is NULL and no loop is running"
                            : fn == NULL ? "fn is NULL"
                                         : "ex is not a thread pool");
  COR__CHECK_THREAD_PTR(loop, "cor_run_in_executor");
  if (cor_loop_is_closed(loop)) {
    errno = -COR_ECLOSED;
    return NULL;
  }
  if (ex == NULL && (ex = cor__executor_default(loop)) == NULL)
    return NULL;
  tpool *p = (tpool *)ex;
  cor__xport *port = cor__executor_port(ex, loop);
  ljob *j = port ? cor__malloc(sizeof *j) : NULL;
  if (j == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor__xjob_init(&j->x, loop, port, ljob_deliver);
  j->t.kind = K_LOOP;
  j->t.fn = fn;
  j->t.arg = arg;
  j->t.pool = p;
  j->t.site = __builtin_return_address(0);
  int rc = submit(p, &j->t);
  if (rc != 0) {
    cor__future_remove_cb(&j->x.fut, &j->x.cancel_node);
    cor_release(&j->x.fut);
    cor_release(&j->x.fut);
    errno = -rc;
    return NULL;
  }
  return &j->x.fut;
}

/* The loop cancelled a loop job's future (loop thread). */
static void tp_cancelled(cor__xjob *x) {
  ljob *j = (ljob *)x;
  tpool *p = j->t.pool;
  pthread_mutex_lock(&p->mu);
  bool queued = cor__load_acq(&j->t.state) == J_QUEUED;
  if (queued) {
    q_unlink(p, &j->t);
    cor__store_rlx(&j->t.state, J_CANCELLED);
  }
  pthread_mutex_unlock(&p->mu);
  if (queued) {
    cor_release(&x->fut); /* the job's reference: it never runs */
    return;
  }
  /* Taken by a worker but not started: it will see CANCELLED and hand the
   * job back without running it. Running or done: the result is dropped. */
  int expect = J_TAKEN;
  cor__cas_ar_acq(&j->t.state, &expect, J_CANCELLED);
}

/* A submit job's cfuture was cancelled (any thread). */
static void cjob_cancelled(cor_cfuture_t *cf, void *arg) {
  cjob *j = arg;
  tpool *p = j->t.pool;
  pthread_mutex_lock(&p->mu);
  bool queued = cor__load_acq(&j->t.state) == J_QUEUED;
  if (queued) {
    q_unlink(p, &j->t);
    cor__store_rlx(&j->t.state, J_CANCELLED);
  }
  pthread_mutex_unlock(&p->mu);
  if (queued)
    cor_release(cf); /* the pool's reference: it never runs */
}

cor_cfuture_t *cor_executor_submit(cor_executor_t *ex, cor_fn fn, void *arg) {
  if (ex == NULL || fn == NULL || ex->kind != COR__X_THREAD)
    return cor__bad_arg_ptr("cor_executor_submit",
                            ex == NULL   ? "ex is NULL"
                            : fn == NULL ? "fn is NULL"
                                         : "ex is not a thread pool");
  tpool *p = (tpool *)ex;
  cor_cfuture_t *cf = cor__cfuture_alloc(sizeof(cjob));
  if (cf == NULL)
    return NULL;
  cjob *j = (cjob *)cf;
  j->t.kind = K_CF;
  j->t.fn = fn;
  j->t.arg = arg;
  j->t.pool = p;
  j->t.site = __builtin_return_address(0);
  cor__cfuture_set_cancel_fn(cf, cjob_cancelled, j);
  cor_retain(cf); /* the pool's reference, dropped when the job is done */
  int rc = submit(p, &j->t);
  if (rc != 0) {
    cor_release(cf);
    cor_release(cf);
    errno = -rc;
    return NULL;
  }
  return cf;
}

/* ------------------------------------------------------------ shutdown */

static void join_exited(tpool *p);
static int tp_shutdown(cor_executor_t *ex, bool wait, bool cancel,
                       uint64_t deadline) {
  tpool *p = (tpool *)ex;
  tjob *cancelled = NULL;
  pthread_mutex_lock(&p->mu);
  ck_pr_store_int(&p->shutdown, 1);
  if (cancel) {
    while (p->qhead) {
      tjob *t = p->qhead;
      q_unlink(p, t);
      cor__store_rlx(&t->state, J_CANCELLED);
      t->next = cancelled;
      cancelled = t;
    }
  }
  for (worker *w = p->sleepers; w; w = w->next)
    pthread_cond_signal(&w->cond);
  if (p->qlen > 0)
    wake_one(p); /* e.g. no worker could be started before */
  pthread_mutex_unlock(&p->mu);

  /* Cancelled jobs: a loop job's future is cancelled on its loop; a
   * cfuture here. Reverse first, to keep their queue order. */
  tjob *rev = NULL;
  while (cancelled) {
    tjob *next = cancelled->next;
    cancelled->next = rev;
    rev = cancelled;
    cancelled = next;
  }
  for (tjob *t = rev, *next; t; t = next) {
    next = t->next;
    if (t->kind == K_LOOP) {
      ljob *lj = ljob_of(t);
      lj->x.outcome = COR__XJ_CANCEL;
      lj->x.cnext = NULL;
      cor__xport_push(lj->x.port, &lj->x, &lj->x);
    } else {
      cjob *cj = cjob_of(t);
      cor__cfuture_set_cancelled(&cj->cf, "executor shut down");
      cor_release(&cj->cf);
    }
  }
  if (!wait)
    return 0;
  int rc = 0;
  pthread_mutex_lock(&p->mu);
  while (p->nthreads > 0) {
    if (deadline == UINT64_MAX) {
      pthread_cond_wait(&p->exit_cond, &p->mu);
    } else {
      struct timespec ts = {(time_t)(deadline / 1000000000u),
                            (long)(deadline % 1000000000u)};
      if (pthread_cond_timedwait(&p->exit_cond, &p->mu, &ts) == ETIMEDOUT &&
          p->nthreads > 0) {
        rc = -ETIMEDOUT;
        break;
      }
    }
  }
  if (rc == 0)
    join_exited(p);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* ------------------------------------------------------------ report */

static void report_job(const char *prefix, const char *pool, cor_fn fn,
                       const void *site, const char *what) {
  char name[128], at[300];
  cor__fn_name((const void *)(uintptr_t)fn, name, sizeof name);
  cor__site(site, at, sizeof at);
  COR_LOG(COR_LOG_WARNING, "%sexecutor job %s() submitted at %s %s in %s",
          prefix, name, at[0] ? at : "?", what, pool);
}

static size_t tp_report(cor_executor_t *ex, const char *prefix) {
  tpool *p = (tpool *)ex;
  char pool[64];
  snprintf(pool, sizeof pool, "thread pool '%s'", p->prefix);
  size_t n = 0;
  pthread_mutex_lock(&p->mu);
  for (worker *w = p->live; w; w = w->live_next) {
    cor_fn fn = cor__load_rlx(&w->cur_fn);
    const void *site = cor__load_rlx(&w->cur_site);
    if (fn) {
      n++;
      report_job(prefix, pool, fn, site, "still running");
    }
  }
  for (tjob *t = p->qhead; t; t = t->next) {
    n++;
    report_job(prefix, pool, t->fn, t->site, "still queued");
  }
  pthread_mutex_unlock(&p->mu);
  return n;
}
