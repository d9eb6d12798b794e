/* SPDX-License-Identifier: MIT */
/* The process pool, parent side.
 *
 * Start-up: a worker is this program started again, posix_spawn of
 * /proc/self/exe (glibc spawns with CLONE_VM|CLONE_VFORK and execs at once:
 * no code of the parent runs in a forked copy of a multi-threaded process),
 * with two pipes on fds 3 and 4 and CORIO_PROCESS_WORKER set; the worker
 * serves jobs from a constructor before main (process_worker.c).
 *
 * One manager thread per pool owns every worker: it takes jobs that loops
 * queued (a list under a mutex plus a coalesced eventfd wake-up), writes
 * them to workers (up to PIPE_DEPTH in flight each, many frames per write),
 * reads results (many per read), hands them back to each loop through the
 * pool's port (executor.c), and watches deaths and time-outs.
 *
 * Failure isolation: a worker answers each job before it starts the next,
 * so when its pipe reaches EOF every job it finished has been read, and the
 * oldest job still unanswered is the one it died in. That job alone fails
 * (COR_EBROKEN, or -ETIMEDOUT when the manager killed it for its time-out);
 * the jobs queued behind it in that worker go back to the head of the
 * queue. The worker is reaped with waitpid on its own pid, and a new one
 * is started when jobs need it. */
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

#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_MAX_PAYLOAD (64u << 20)
/* Jobs written ahead to one worker. Enough that a worker never waits for
 * the manager between jobs, few enough that jobs stuck behind a slow one
 * are not many (they only wait; their time-out starts when they do). */
#define PIPE_DEPTH 16u
#define MSG_MAX 4096u

typedef struct pjob {
  cor__xjob x;
  cor__fut_cb keep; /* once done: owns the output bytes (drop frees them) */
  cor_bytes_t bytes;
  struct pjob *next; /* queues and a worker's in-flight FIFO */
  const cor_process_job_def *def;
  uint64_t seq;
  int cancelled; /* atomic: the future was cancelled */
  size_t len, olen;
  unsigned char in[];
} pjob;

typedef struct pworker {
  pid_t pid;
  int wfd, rfd;
  unsigned id;
  pjob *ifirst, *ilast; /* written, not answered, in order */
  unsigned ninflight;
  uint64_t head_start; /* when the oldest in-flight job started */
  bool timed_out, want_out, closing;
  unsigned char *obuf;
  size_t olen, ooff, ocap;
  unsigned char *ibuf;
  size_t ilen, icap;
} pworker;

typedef struct ppool {
  struct cor_executor ex;
  pthread_mutex_t mu;
  pthread_cond_t done_cond;
  pjob *inq_first, *inq_last; /* queued by loops, under mu */
  int shutdown;               /* under mu (and atomic reads) */
  bool cancel_all;            /* under mu: shutdown(cancel_futures) */
  bool kill_now;              /* under mu: shutdown deadline passed */
  bool mgr_started, mgr_done; /* under mu */
  int efd;
  /* 1 while the manager may block in epoll_wait: a submitter that
   * exchanges it to 0 owns the one eventfd write. */
  int sleeping COR_ALIGNED_CL;

  /* --- manager thread only */
  int epfd COR_ALIGNED_CL;
  pjob *pend_first, *pend_last;
  pworker **workers;
  unsigned nworkers, next_id;
  uint64_t seq, timeout_ns;
  size_t max_payload;
  cor__xjob *cfirst, *clast; /* completions not yet pushed (one port) */
} ppool;

static int pp_shutdown(cor_executor_t *ex, bool wait, bool cancel,
                       uint64_t deadline);
static void pp_cancelled(cor__xjob *j);
static void pp_destroy(cor_executor_t *ex);
static void pp_repr(cor_executor_t *ex, cor__buf *out);
/* No report: at a shutdown deadline the manager kills the workers and each
 * job in flight fails with a message saying so. */
static const cor__xops pp_ops = {pp_shutdown, pp_cancelled, pp_destroy, NULL,
                                 pp_repr};
extern _Thread_local cor_executor_t *cor__tls_worker_of;

/* ------------------------------------------------------------ the pool */

cor_executor_t *cor_process_pool_new(const cor_process_pool_opts *opts) {
  cor_process_pool_opts o = opts ? *opts : (cor_process_pool_opts){0};
  if (o.max_workers > 1024 || o.job_timeout < 0)
    return cor__bad_arg_ptr("cor_process_pool_new",
                            o.max_workers > 1024
                                ? "opts->max_workers is above 1024"
                                : "opts->job_timeout is negative");
  ppool *p = cor__executor_alloc(sizeof *p, &pp_ops, COR__X_PROCESS);
  if (p == NULL)
    return NULL;
  int err;
  p->ex.max_workers = o.max_workers ? o.max_workers : cor__affinity_cpus();
  p->timeout_ns = cor__duration_ns(o.job_timeout); /* 0: none */
  p->max_payload = o.max_payload ? o.max_payload : DEFAULT_MAX_PAYLOAD;
  if (p->max_payload > UINT32_MAX - 4096)
    p->max_payload = UINT32_MAX - 4096; /* frame lengths are 32-bit */
  p->efd = p->epfd = -1;
  p->workers = cor__calloc(p->ex.max_workers, sizeof *p->workers);
  if (p->workers == NULL)
    goto fail_errno_nomem;
  p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->efd < 0 || p->epfd < 0) {
    err = errno;
    goto fail;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->efd, &ev) != 0) {
    err = errno;
    goto fail;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->done_cond, &ca);
  pthread_condattr_destroy(&ca);
  cor__executor_track(&p->ex, __builtin_return_address(0));
  return &p->ex;
fail_errno_nomem:
  err = ENOMEM;
fail:
  if (p->efd >= 0)
    close(p->efd);
  if (p->epfd >= 0)
    close(p->epfd);
  cor__free(p->workers);
  cor__executor_fini(&p->ex);
  cor__free(p);
  errno = err;
  return NULL;
}

/* "ProcessPoolExecutor max_workers=2 queued=0 job_timeout=0" */
static void pp_repr(cor_executor_t *ex, cor__buf *out) {
  ppool *p = (ppool *)ex;
  unsigned queued = 0;
  pthread_mutex_lock(&p->mu);
  for (pjob *j = p->inq_first; j; j = j->next)
    queued++;
  pthread_mutex_unlock(&p->mu);
  cor__buf_printf(out, "ProcessPoolExecutor max_workers=%u queued=%u "
                  "job_timeout=%g",
                  ex->max_workers, queued, (double)p->timeout_ns / 1e9);
}

static void pp_destroy(cor_executor_t *ex) {
  ppool *p = (ppool *)ex;
  COR_ASSERT(p->nworkers == 0 && p->inq_first == NULL);
  close(p->efd);
  close(p->epfd);
  cor__free(p->workers);
  cor__executor_fini(ex);
  pthread_cond_destroy(&p->done_cond);
  pthread_mutex_destroy(&p->mu);
  cor__free(p);
}

/* ------------------------------------------------------------ completions */

static void flush_completions(ppool *p) {
  if (p->cfirst) {
    cor__xport_push(p->cfirst->port, p->cfirst, p->clast);
    p->cfirst = p->clast = NULL;
  }
}

/* Hands j back to its loop with `outcome` (the result fields are set). */
static void complete(ppool *p, pjob *j, uint8_t outcome) {
  j->x.outcome = outcome;
  if (p->clast && p->clast->port != j->x.port)
    flush_completions(p);
  j->x.cnext = NULL;
  if (p->clast)
    p->clast->cnext = &j->x;
  else
    p->cfirst = &j->x;
  p->clast = &j->x;
}

static char *fmt_msg(const char *fmt, ...) COR_PRINTF(1, 2);
static char *fmt_msg(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return cor__strdup(buf);
}

static void fail_job(ppool *p, pjob *j, int code, char *msg) {
  j->x.code = code;
  j->x.msg = msg;
  j->x.result = NULL;
  complete(p, j, COR__XJ_DONE);
}

/* ------------------------------------------------------------ workers */

static int spawn_worker(ppool *p, pworker **out) {
  int to[2] = {-1, -1}, from[2] = {-1, -1}, cin = -1, cout = -1, err = 0;
  pworker *w = cor__calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  char **envp = NULL;
  if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) {
    err = -errno;
    goto fail;
  }
  /* The child's ends above every fd the file actions write to, so that
   * dup2 onto 3 and 4 cannot clobber one before it is copied. */
  cin = fcntl(to[0], F_DUPFD_CLOEXEC, 10);
  cout = fcntl(from[1], F_DUPFD_CLOEXEC, 10);
  if (cin < 0 || cout < 0) {
    err = -errno;
    goto fail;
  }
  size_t n = 0;
  while (environ && environ[n])
    n++;
  envp = cor__calloc(n + 2, sizeof *envp);
  char marker[128];
  snprintf(marker, sizeof marker, COR__PWORKER_ENV "=%d,%d,%ld,%zu",
           COR__PWORKER_IN_FD, COR__PWORKER_OUT_FD, (long)getpid(),
           p->max_payload);
  if (envp == NULL) {
    err = -ENOMEM;
    goto fail;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], COR__PWORKER_ENV "=",
                sizeof COR__PWORKER_ENV) != 0)
      envp[k++] = environ[i];
  envp[k++] = marker;
  envp[k] = NULL;

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t sa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, cin, COR__PWORKER_IN_FD);
  posix_spawn_file_actions_adddup2(&fa, cout, COR__PWORKER_OUT_FD);
  /* Nothing else of the parent's leaks into the worker. */
  posix_spawn_file_actions_addclosefrom_np(&fa, COR__PWORKER_OUT_FD + 1);
  posix_spawnattr_init(&sa);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&sa, &none);
  posix_spawnattr_setsigdefault(&sa, &all);
  posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *argv[] = {program_invocation_name, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, "/proc/self/exe", &fa, &sa, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&sa);
  if (rc != 0) {
    err = -rc;
    goto fail;
  }
  close(to[0]);
  close(from[1]);
  close(cin);
  close(cout);
  cor__free(envp);
  w->pid = pid;
  w->wfd = to[1];
  w->rfd = from[0];
  w->id = p->next_id++;
  fcntl(w->wfd, F_SETFL, O_NONBLOCK);
  fcntl(w->rfd, F_SETFL, O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = w};
  epoll_ctl(p->epfd, EPOLL_CTL_ADD, w->rfd, &ev);
  p->workers[p->nworkers++] = w;
  *out = w;
  return 0;
fail:
  for (int i = 0; i < 2; i++) {
    if (to[i] >= 0)
      close(to[i]);
    if (from[i] >= 0)
      close(from[i]);
  }
  if (cin >= 0)
    close(cin);
  if (cout >= 0)
    close(cout);
  cor__free(envp);
  cor__free(w);
  return err;
}

static void worker_free(ppool *p, pworker *w) {
  for (unsigned i = 0; i < p->nworkers; i++) {
    if (p->workers[i] == w) {
      p->workers[i] = p->workers[--p->nworkers];
      break;
    }
  }
  epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->rfd, NULL);
  if (w->want_out)
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->wfd, NULL);
  close(w->rfd);
  if (w->wfd >= 0)
    close(w->wfd);
  cor__free(w->obuf);
  cor__free(w->ibuf);
  cor__free(w);
}

/* Reaps w (its pid only) and describes how it ended. */
static void reap(pworker *w, char *how, size_t cap) {
  int st = 0;
  pid_t r;
  while ((r = waitpid(w->pid, &st, 0)) < 0 && errno == EINTR)
    ;
  if (r < 0)
    snprintf(how, cap, "worker %d ended, status unknown (%s)", (int)w->pid,
             strerror(errno));
  else if (WIFSIGNALED(st))
    snprintf(how, cap, "worker %d killed by signal %d (%s)", (int)w->pid,
             WTERMSIG(st), strsignal(WTERMSIG(st)));
  else
    snprintf(how, cap, "worker %d exited with code %d", (int)w->pid,
             WEXITSTATUS(st));
}

/* w's pipe reached EOF (or broke): it is dead or dying. */
static void worker_died(ppool *p, pworker *w) {
  kill(w->pid, SIGKILL); /* not reaped yet: the pid is still ours */
  char how[160];
  reap(w, how, sizeof how);
  pjob *head = w->ifirst;
  if (head) {
    pjob *rest = head->next;
    if (w->timed_out)
      fail_job(p, head, -ETIMEDOUT,
               fmt_msg("process job '%s' timed out after %.3g s; %s",
                       head->def->name, (double)p->timeout_ns / 1e9, how));
    else if (w->closing)
      fail_job(p, head, COR_EBROKEN,
               fmt_msg("process job '%s' was running when the pool was shut "
                       "down; %s",
                       head->def->name, how));
    else
      fail_job(p, head, COR_EBROKEN,
               fmt_msg("process job '%s' failed: %s", head->def->name, how));
    /* The jobs written behind it never started: back to the queue head. */
    if (rest) {
      w->ilast->next = p->pend_first;
      if (p->pend_first == NULL)
        p->pend_last = w->ilast;
      p->pend_first = rest;
    }
  } else if (!w->closing) {
    COR_LOG(COR_LOG_WARNING, "process pool: idle %s", how);
  }
  w->ifirst = w->ilast = NULL;
  worker_free(p, w);
}

static void set_want_out(ppool *p, pworker *w, bool on) {
  if (w->want_out == on)
    return;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = w};
  /* Tagged apart from the read side: the pointer's low bit. */
  ev.data.ptr = (void *)((uintptr_t)w | 1);
  epoll_ctl(p->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->wfd, &ev);
  w->want_out = on;
}

static void flush_out(ppool *p, pworker *w) {
  while (w->ooff < w->olen) {
    ssize_t r = write(w->wfd, w->obuf + w->ooff, w->olen - w->ooff);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        set_want_out(p, w, true);
        return;
      }
      /* EPIPE: it died; the read side reports it. */
      w->ooff = w->olen;
      break;
    }
    w->ooff += (size_t)r;
  }
  w->ooff = w->olen = 0;
  set_want_out(p, w, false);
}

static bool obuf_reserve(pworker *w, size_t more) {
  if (w->olen + more <= w->ocap)
    return true;
  size_t cap = w->ocap ? w->ocap : 4096;
  while (cap < w->olen + more)
    cap *= 2;
  unsigned char *b = cor__realloc(w->obuf, cap);
  if (b == NULL)
    return false;
  w->obuf = b;
  w->ocap = cap;
  return true;
}

/* Reads what w answered; completes the jobs. False when w is dead. */
static bool read_results(ppool *p, pworker *w, uint64_t now) {
  for (;;) {
    if (w->icap - w->ilen < 4096) {
      size_t cap = w->icap ? w->icap * 2 : 1 << 16;
      unsigned char *b = cor__realloc(w->ibuf, cap);
      if (b == NULL)
        return true; /* try again on the next wake-up */
      w->ibuf = b;
      w->icap = cap;
    }
    ssize_t r = read(w->rfd, w->ibuf + w->ilen, w->icap - w->ilen);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        return true;
      return false;
    }
    if (r == 0)
      return false;
    w->ilen += (size_t)r;
    size_t off = 0;
    while (w->ilen - off >= sizeof(cor__prep)) {
      cor__prep h;
      memcpy(&h, w->ibuf + off, sizeof h);
      pjob *j = w->ifirst;
      if (j == NULL || h.seq != j->seq || h.msg_len > MSG_MAX ||
          h.len > p->max_payload) {
        COR_LOG(COR_LOG_ERROR, "process pool: worker %d broke the protocol",
                (int)w->pid);
        return false;
      }
      size_t need = sizeof h + h.msg_len + h.len;
      if (w->ilen - off < need) {
        if (need > w->icap) {
          unsigned char *b = cor__realloc(w->ibuf, need + 4096);
          if (b == NULL)
            return false;
          w->ibuf = b;
          w->icap = need + 4096;
        }
        break;
      }
      const unsigned char *m = w->ibuf + off + sizeof h;
      w->ifirst = j->next;
      if (w->ifirst == NULL)
        w->ilast = NULL;
      w->ninflight--;
      w->head_start = now; /* the next one started about now */
      if (h.code < 0) {
        char *msg = NULL;
        if (h.msg_len) {
          msg = cor__malloc(h.msg_len + 1);
          if (msg) {
            memcpy(msg, m, h.msg_len);
            msg[h.msg_len] = 0;
          }
        }
        fail_job(p, j, h.code, msg);
      } else {
        void *data = NULL;
        if (h.len) {
          data = cor__malloc(h.len);
          if (data)
            memcpy(data, m + h.msg_len, h.len);
        }
        if (h.len && data == NULL) {
          fail_job(p, j, -ENOMEM, NULL);
        } else {
          j->x.code = 0;
          j->x.result = data;
          j->olen = h.len;
          complete(p, j, COR__XJ_DONE);
        }
      }
      off += need;
    }
    memmove(w->ibuf, w->ibuf + off, w->ilen - off);
    w->ilen -= off;
  }
}

/* Writes queued jobs to workers with room, starting workers as needed. */
static void dispatch(ppool *p, uint64_t now) {
  while (p->pend_first) {
    pjob *j = p->pend_first;
    if (ck_pr_load_int(&j->cancelled)) {
      p->pend_first = j->next;
      complete(p, j, COR__XJ_DROP);
      continue;
    }
    pworker *best = NULL;
    for (unsigned i = 0; i < p->nworkers; i++) {
      pworker *w = p->workers[i];
      if (!w->closing && w->ninflight < PIPE_DEPTH &&
          (best == NULL || w->ninflight < best->ninflight))
        best = w;
    }
    if ((best == NULL || best->ninflight > 0) &&
        p->nworkers < p->ex.max_workers) {
      pworker *nw = NULL;
      int rc = spawn_worker(p, &nw);
      if (rc == 0)
        best = nw;
      else if (best == NULL && p->nworkers == 0) {
        p->pend_first = j->next;
        fail_job(p, j, rc,
                 fmt_msg("process pool: cannot start a worker: %s",
                         cor_strerror(rc)));
        continue;
      }
    }
    if (best == NULL)
      break;
    size_t nl = strlen(j->def->name);
    if (!obuf_reserve(best, sizeof(cor__preq) + nl + j->len))
      break;
    p->pend_first = j->next;
    cor__preq h = {.seq = j->seq, .name_len = (uint32_t)nl,
                   .len = (uint32_t)j->len};
    memcpy(best->obuf + best->olen, &h, sizeof h);
    memcpy(best->obuf + best->olen + sizeof h, j->def->name, nl);
    memcpy(best->obuf + best->olen + sizeof h + nl, j->in, j->len);
    best->olen += sizeof h + nl + j->len;
    j->next = NULL;
    if (best->ilast)
      best->ilast->next = j;
    else {
      best->ifirst = j;
      best->head_start = now;
    }
    best->ilast = j;
    best->ninflight++;
  }
  if (p->pend_first == NULL)
    p->pend_last = NULL;
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->workers[i]->olen > p->workers[i]->ooff && !p->workers[i]->want_out)
      flush_out(p, p->workers[i]);
}

/* ------------------------------------------------------------ manager */

static void kill_all(ppool *p) {
  /* Shutdown deadline: every worker goes now, each job it ran fails. */
  for (unsigned i = 0; i < p->nworkers; i++) {
    p->workers[i]->closing = true;
    kill(p->workers[i]->pid, SIGKILL);
  }
  /* Each fails the job it was running; the ones behind go back to pend. */
  while (p->nworkers > 0)
    worker_died(p, p->workers[0]);
  while (p->pend_first) {
    pjob *j = p->pend_first;
    p->pend_first = j->next;
    fail_job(p, j, COR_EBROKEN,
             fmt_msg("process job '%s' did not run: the pool was shut down "
                     "at its deadline", j->def->name));
  }
  p->pend_last = NULL;
}

static void *manager_main(void *arg) {
  ppool *p = arg;
  pthread_setname_np(pthread_self(), "cor-ppool");
  cor__tls_worker_of = &p->ex;
  struct epoll_event evs[64];
  bool closing = false;
  for (;;) {
    uint64_t now = cor__now_ns();
    /* Take what loops queued, and the shutdown state. */
    pthread_mutex_lock(&p->mu);
    pjob *in = p->inq_first;
    p->inq_first = p->inq_last = NULL;
    bool shut = p->shutdown, cancel = p->cancel_all, killn = p->kill_now;
    pthread_mutex_unlock(&p->mu);
    for (pjob *j = in, *next; j; j = next) {
      next = j->next;
      j->next = NULL;
      j->seq = ++p->seq;
      if (p->pend_last)
        p->pend_last->next = j;
      else
        p->pend_first = j;
      p->pend_last = j;
    }
    if (cancel) {
      while (p->pend_first) {
        pjob *j = p->pend_first;
        p->pend_first = j->next;
        complete(p, j, COR__XJ_CANCEL);
      }
      p->pend_last = NULL;
    }
    if (killn) {
      kill_all(p);
      flush_completions(p);
      break;
    }
    dispatch(p, now);
    flush_completions(p);

    bool busy = p->pend_first != NULL;
    for (unsigned i = 0; i < p->nworkers; i++)
      busy |= p->workers[i]->ninflight > 0;
    if (shut && !busy && !closing) {
      /* Done: close every worker's pipe; each exits at EOF. */
      closing = true;
      for (unsigned i = 0; i < p->nworkers; i++) {
        pworker *w = p->workers[i];
        w->closing = true;
        if (w->want_out)
          set_want_out(p, w, false);
        close(w->wfd);
        w->wfd = -1;
      }
    }
    if (closing && p->nworkers == 0)
      break;

    /* Sleep until a worker answers, a loop queues, or a time-out. */
    int timeout = -1;
    if (p->timeout_ns) {
      uint64_t first = UINT64_MAX;
      for (unsigned i = 0; i < p->nworkers; i++) {
        pworker *w = p->workers[i];
        if (w->ninflight > 0 && !w->timed_out &&
            w->head_start + p->timeout_ns < first)
          first = w->head_start + p->timeout_ns;
      }
      if (first != UINT64_MAX)
        timeout = first <= now ? 0 : (int)((first - now) / 1000000u) + 1;
    }
    if (closing && (timeout < 0 || timeout > 100))
      timeout = 100; /* re-check workers that ignore EOF */
    ck_pr_fas_int(&p->sleeping, 1);
    pthread_mutex_lock(&p->mu);
    bool more = p->inq_first != NULL || p->shutdown != shut ||
                p->cancel_all != cancel || p->kill_now != killn;
    pthread_mutex_unlock(&p->mu);
    if (more)
      timeout = 0;
    int n = epoll_wait(p->epfd, evs, 64, timeout);
    ck_pr_store_int(&p->sleeping, 0);
    now = cor__now_ns();
    for (int i = 0; i < n; i++) {
      void *ptr = evs[i].data.ptr;
      if (ptr == NULL) {
        uint64_t v;
        (void)!read(p->efd, &v, sizeof v);
        continue;
      }
      if ((uintptr_t)ptr & 1) {
        pworker *w = (pworker *)((uintptr_t)ptr & ~(uintptr_t)1);
        flush_out(p, w);
        continue;
      }
    }
    /* Read every worker that signalled; deaths are handled after every
     * event of this batch was looked at, so no event names a freed one. */
    pworker *dead[64];
    int ndead = 0;
    for (int i = 0; i < n; i++) {
      void *ptr = evs[i].data.ptr;
      if (ptr == NULL || ((uintptr_t)ptr & 1))
        continue;
      if (!read_results(p, ptr, now))
        dead[ndead++] = ptr;
    }
    for (int i = 0; i < ndead; i++)
      worker_died(p, dead[i]);
    /* Time-outs: kill the worker; its EOF fails the job. */
    if (p->timeout_ns) {
      for (unsigned i = 0; i < p->nworkers; i++) {
        pworker *w = p->workers[i];
        if (w->ninflight > 0 && !w->timed_out &&
            now >= w->head_start + p->timeout_ns) {
          w->timed_out = true;
          kill(w->pid, SIGKILL);
        }
      }
    }
    flush_completions(p);
  }
  flush_completions(p);
  pthread_mutex_lock(&p->mu);
  p->mgr_done = true;
  pthread_cond_broadcast(&p->done_cond);
  pthread_mutex_unlock(&p->mu);
  cor__tls_worker_of = NULL;
  cor__executor_iref_put(&p->ex);
  return NULL;
}

/* Under mu. */
static int start_manager(ppool *p) {
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  cor__executor_iref_get(&p->ex);
  pthread_t th;
  int rc = cor__thread_create(&th, &a, manager_main, p, false);
  pthread_attr_destroy(&a);
  if (rc != 0) {
    cor__executor_iref_put(&p->ex);
    return -rc;
  }
  p->mgr_started = true;
  return 0;
}

static void wake_manager(ppool *p) {
  /* Full barrier (the exchange) after the queue append: see the sleeping
   * field. Only the submitter that flips it writes the eventfd. */
  if (ck_pr_load_int(&p->sleeping) && ck_pr_fas_int(&p->sleeping, 0)) {
    uint64_t one = 1;
    (void)!write(p->efd, &one, sizeof one);
  }
}

/* ------------------------------------------------------------ submitting */

static void keep_drop(cor__fut_cb *n) {
  pjob *j = cor__container_of(n, pjob, keep);
  cor__free(j->bytes.data);
  j->bytes.data = NULL;
}

static void pjob_deliver(cor__xjob *x) {
  pjob *j = (pjob *)x;
  if (cor__xjob_deliver_cancelled(x))
    return;
  char *msg = x->msg;
  x->msg = NULL;
  if (x->code < 0 || x->fut.state != COR__FUT_PENDING) {
    cor__free(x->result);
    x->result = NULL;
    cor__xjob_finish(x, x->code, NULL, msg, x->file, x->line);
    return;
  }
  cor__free(msg);
  if (cor__future_remove_cb(&x->fut, &x->cancel_node))
    x->cancel_ran = true;
  j->bytes.data = x->result;
  j->bytes.len = j->olen;
  x->result = NULL;
  cor__future_finish(&x->fut, COR__FUT_DONE, 0, &j->bytes, NULL, NULL, 0);
  /* The future owns the bytes: a node never scheduled (the future is
   * done), whose drop runs when the future is freed. */
  j->keep = (cor__fut_cb){.drop = keep_drop, .kind = COR__CB_EMBED};
  cor__future_add_cb(&x->fut, &j->keep);
  cor__xjob_release(x);
}

static void pp_cancelled(cor__xjob *x) {
  /* The manager drops it if it has not been written to a worker yet; once
   * written it runs and its output is dropped. */
  ck_pr_store_int(&((pjob *)x)->cancelled, 1);
}

cor_future_t *cor_run_in_process(cor_loop_t *loop, cor_executor_t *ex,
                                 const char *job, const void *in,
                                 size_t len) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL || ex == NULL || job == NULL || ex->kind != COR__X_PROCESS ||
      (in == NULL && len > 0))
    return cor__bad_arg_ptr("cor_run_in_process",
                            loop == NULL ? "loop is NULL and no loop is running"
                            : ex == NULL ? "ex is NULL"
                            : job == NULL ? "job is NULL"
                            : ex->kind != COR__X_PROCESS
                                ? "ex is not a process pool"
                                : "in is NULL with len > 0");
  COR__CHECK_THREAD_PTR(loop, "cor_run_in_process");
  ppool *p = (ppool *)ex;
  const cor_process_job_def *def = cor__process_job_find(job);
  if (def == NULL || len > p->max_payload || strlen(job) > 255)
    return cor__bad_arg_ptr("cor_run_in_process",
                            def == NULL ? "job names no registered job"
                            : len > p->max_payload
                                ? "len is above the pool's max_payload"
                                : "job is longer than 255 bytes");
  if (cor_loop_is_closed(loop)) {
    errno = -COR_ECLOSED;
    return NULL;
  }
  cor__xport *port = cor__executor_port(ex, loop);
  pjob *j = port ? cor__malloc(sizeof *j + len) : NULL;
  if (j == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor__xjob_init(&j->x, loop, port, pjob_deliver);
  j->bytes = (cor_bytes_t){NULL, 0};
  j->next = NULL;
  j->def = def;
  j->seq = 0;
  j->cancelled = 0;
  j->len = len;
  j->olen = 0;
  if (len)
    memcpy(j->in, in, len);
  int rc = 0;
  pthread_mutex_lock(&p->mu);
  if (p->shutdown)
    rc = COR_ECLOSED;
  else if (!p->mgr_started)
    rc = start_manager(p);
  if (rc == 0) {
    if (p->inq_last)
      p->inq_last->next = j;
    else
      p->inq_first = j;
    p->inq_last = j;
  }
  pthread_mutex_unlock(&p->mu);
  if (rc != 0) {
    cor__future_remove_cb(&j->x.fut, &j->x.cancel_node);
    cor_release(&j->x.fut);
    cor_release(&j->x.fut);
    errno = -rc;
    return NULL;
  }
  wake_manager(p);
  return &j->x.fut;
}

/* ------------------------------------------------------------ shutdown */

static int pp_shutdown(cor_executor_t *ex, bool wait, bool cancel,
                       uint64_t deadline) {
  ppool *p = (ppool *)ex;
  pjob *cancelled = NULL;
  pthread_mutex_lock(&p->mu);
  p->shutdown = 1;
  if (cancel) {
    p->cancel_all = true;
    cancelled = p->inq_first;
    p->inq_first = p->inq_last = NULL;
  }
  bool started = p->mgr_started;
  if (!started)
    p->mgr_done = true;
  pthread_mutex_unlock(&p->mu);
  /* Jobs the manager never saw: cancel their futures on their loops. */
  for (pjob *j = cancelled, *next; j; j = next) {
    next = j->next;
    j->x.outcome = COR__XJ_CANCEL;
    j->x.cnext = NULL;
    cor__xport_push(j->x.port, &j->x, &j->x);
  }
  if (started) {
    ck_pr_store_int(&p->sleeping, 0);
    uint64_t one = 1;
    (void)!write(p->efd, &one, sizeof one);
  }
  if (!wait)
    return 0;
  int rc = 0;
  pthread_mutex_lock(&p->mu);
  while (!p->mgr_done) {
    if (deadline == UINT64_MAX || p->kill_now) {
      pthread_cond_wait(&p->done_cond, &p->mu);
      continue;
    }
    struct timespec ts;
    cor__monotonic_abstime(deadline, &ts);
    if (pthread_cond_timedwait(&p->done_cond, &p->mu, &ts) == ETIMEDOUT &&
        !p->mgr_done) {
      /* Past the deadline: the manager kills and reaps every worker now,
       * so no process outlives this call. That takes milliseconds. */
      p->kill_now = true;
      rc = -ETIMEDOUT;
      uint64_t one = 1;
      (void)!write(p->efd, &one, sizeof one);
    }
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}
