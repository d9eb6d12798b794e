/* SPDX-License-Identifier: MIT */
/* Bounded pools of helper threads for blocking calls made on a task's
 * behalf (core/offload.c). Internal. */
#ifndef CORIO_CORE_OFFLOAD_H
#define CORIO_CORE_OFFLOAD_H

#include "task/task_internal.h"

#include <pthread.h>

/* A job: embed it first in the request's own struct, allocated with
 * cor__calloc; `run` runs on a helper thread, `free` frees the whole
 * request when the last reference goes. */
typedef struct cor__job cor__job;
struct cor__job {
  cor__job *next;        /* the pool's queue (under its mutex) */
  int refs;              /* atomic */
  int state;             /* atomic: queued, running, done, abandoned */
  void (*run)(cor__job *);
  void (*free)(cor__job *);
  struct cor_loop *loop; /* held; where the answer is posted */
  bool waiting;          /* cor__wait_embedded's flag (loop thread only) */
  struct cor_future fut;
};

typedef struct cor__pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  cor__job *head, *tail;
  unsigned nthreads, nidle, max;
  const char *name; /* its threads' name (at most 15 characters) */
} cor__pool;

/* getaddrinfo / getnameinfo (4 threads), and file I/O without io_uring
 * (4 threads). */
extern cor__pool cor__resolver_pool;
extern cor__pool cor__file_pool;

/* Inside a task: runs j on pool p and waits for it until deadline_ns (0:
 * none). The caller holds one reference (and drops it with cor__job_unref
 * afterwards); this takes the thread's and the post's. Returns 0 (j->run
 * ran; its answer is in the request), -ETIMEDOUT, -ECANCELED, -errno (no
 * thread could start). With must_finish (a job that works on the caller's
 * memory), a job a thread already runs is waited for to the end even when
 * the task is cancelled, so nothing touches that memory after the return;
 * otherwise the call returns at once and the job finishes unseen. A job no
 * thread took yet is dropped either way. */
int cor__job_run(cor__pool *p, cor__job *j, uint64_t deadline_ns,
                 bool must_finish, const char *call, const void *site);
void cor__job_unref(cor__job *j);

#endif
