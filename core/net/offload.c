/* SPDX-License-Identifier: MIT */
/* Bounded pools of helper threads for the blocking calls core/ makes on a
 * task's behalf: name resolution (core/resolve.c) and file I/O where the
 * loop has no io_uring (core/file.c). Each pool is shared by every loop of
 * the process, starts its threads on demand up to its bound, and lets them
 * go after OFFLOAD_IDLE_S idle seconds; a job's answer comes back to the
 * waiting task through cor_call_soon_threadsafe. Two pools, so that slow
 * lookups never hold up file reads (libuv's shared pool does).
 *
 * A job is shared by the waiting task, the helper thread and the callback
 * it posts: three references, the last one frees it. Its state goes
 * QUEUED -> RUNNING -> DONE on the thread, or QUEUED -> ABANDONED when the
 * task stops waiting before a thread took it (the thread then skips it). */
#include "base/atomics.h"
#include "base/thread.h"
#include "loop/loop.h"
#include "net/offload.h"

#include <string.h>

#define OFFLOAD_IDLE_S 10

enum { JOB_QUEUED = 0, JOB_RUNNING, JOB_DONE, JOB_ABANDONED };

cor__pool cor__resolver_pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
                                .cv = PTHREAD_COND_INITIALIZER,
                                .max = 4,
                                .name = "corio-resolve"};
cor__pool cor__file_pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
                            .cv = PTHREAD_COND_INITIALIZER,
                            .max = 4,
                            .name = "corio-file"};

void cor__job_unref(cor__job *j) {
  if (cor__sub_ar(&j->refs, 1) == 0) {
    struct cor_loop *loop = j->loop;
    j->free(j);
    cor_release(loop);
  }
}

static void job_done(void *arg) { /* on the loop */
  cor__job *j = arg;
  cor__wake_embedded(&j->fut, j->waiting, 0);
  cor__job_unref(j);
}

static void *pool_main(void *arg) {
  cor__pool *p = arg;
  pthread_setname_np(pthread_self(), p->name);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->head == NULL) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += OFFLOAD_IDLE_S;
      p->nidle++;
      int e = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
      p->nidle--;
      if (e == ETIMEDOUT && p->head == NULL) {
        p->nthreads--;
        pthread_mutex_unlock(&p->mu);
        return NULL;
      }
    }
    cor__job *j = p->head;
    p->head = j->next;
    if (p->head == NULL)
      p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    int expect = JOB_QUEUED;
    if (cor__cas_ar_acq(&j->state, &expect, JOB_RUNNING)) {
      j->run(j);
      cor__store_rel(&j->state, JOB_DONE);
      if (cor_call_soon_threadsafe(j->loop, job_done, j) != 0)
        cor__job_unref(j); /* the loop is closed: nobody waits any more */
    } else {
      cor__job_unref(j); /* abandoned: the post's, never made */
    }
    cor__job_unref(j); /* the thread's own */
    pthread_mutex_lock(&p->mu);
  }
}

/* A forked child has none of the parent's threads: empty pools. */
static void reset_pool(cor__pool *p) {
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->head = p->tail = NULL; /* the parent's jobs: not ours to free */
  p->nthreads = p->nidle = 0;
}
static void pools_atfork_child(void) {
  reset_pool(&cor__resolver_pool);
  reset_pool(&cor__file_pool);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void atfork_install(void) {
  pthread_atfork(NULL, NULL, pools_atfork_child);
}

/* Queues j, starting a thread when none is idle and fewer than the bound
 * run. 0 or -errno (no thread at all could start). */
static int pool_submit(cor__pool *p, cor__job *j) {
  pthread_once(&atfork_once, atfork_install);
  pthread_mutex_lock(&p->mu);
  j->next = NULL;
  if (p->tail)
    p->tail->next = j;
  else
    p->head = j;
  p->tail = j;
  int rc = 0;
  if (p->nidle == 0 && p->nthreads < p->max) {
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    /* A helper: the application's signals stay off it. */
    int e = cor__thread_create(&th, &at, pool_main, p, false);
    pthread_attr_destroy(&at);
    if (e == 0) {
      p->nthreads++;
    } else if (p->nthreads == 0) {
      /* Nobody would ever take it: take it back (it is the only one). */
      p->head = p->tail = NULL;
      rc = -e;
    }
  } else {
    pthread_cond_signal(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

int cor__job_run(cor__pool *p, cor__job *j, uint64_t deadline_ns,
                 bool must_finish, const char *call, const void *site) {
  j->loop = cor_retain(cor__tls_loop);
  j->state = JOB_QUEUED;
  cor__store_rlx(&j->refs, 3);
  int rc = pool_submit(p, j);
  if (rc != 0) {
    cor__store_rlx(&j->refs, 1);
    return rc;
  }
  /* The answer is posted to this loop, so it cannot run before we suspend:
   * `waiting` is set in time. */
  rc = cor__wait_embedded(j->loop, &j->fut, &j->waiting, deadline_ns, call,
                          site);
  if (rc == 0)
    return 0;
  int expect = JOB_QUEUED;
  if (cor__cas_ar_acq(&j->state, &expect, JOB_ABANDONED) ||
      !must_finish)
    return rc; /* not started (it never will be), or nothing of ours inside */
  /* A thread runs it on the caller's memory: wait until it finished, a
   * second cancellation included. */
  while (cor__load_acq(&j->state) != JOB_DONE) {
    /* The post wakes it (0); a further cancellation only loops. */
    if (cor__wait_embedded(j->loop, &j->fut, &j->waiting, 0, call, site) == 0)
      break;
  }
  return rc;
}
