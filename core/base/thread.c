/* SPDX-License-Identifier: MIT */
/* corio's threads and their one signal mask. */
#include "base/atomics.h"
#include "base/base.h"
#include "base/thread.h"

#include <errno.h>
#include <signal.h>

#ifdef COR__TSAN_ATOMICS
int cor__tsan_fence_word; /* ck_pr_fence_memory's word (core/internal.h) */
#endif

/* Left open everywhere: a fault in a thread must reach its handler (a
 * crash report, ASan's) instead of killing the process unreported. */
static const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                                SIGTRAP, SIGSYS, SIGABRT};

int cor__thread_create(pthread_t *th, const pthread_attr_t *attr,
                       void *(*fn)(void *), void *arg, bool runs_user_code) {
  sigset_t mask, old;
  sigfillset(&mask);
  for (size_t i = 0; i < sizeof sync_sigs / sizeof sync_sigs[0]; i++)
    sigdelset(&mask, sync_sigs[i]);
  if (runs_user_code)
    sigdelset(&mask, SIGPROF); /* ITIMER_PROF profilers sample it */
  /* Set around pthread_create, so the thread is born with it: it never runs
   * a handler, not even before its first instruction. */
  COR_ASSERT(pthread_sigmask(SIG_SETMASK, &mask, &old) == 0);
  int rc = pthread_create(th, attr, fn, arg);
  COR_ASSERT(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
  return rc;
}

static pthread_mutex_t tls_release_mu = PTHREAD_MUTEX_INITIALIZER;

int cor__tls_release_arm(cor__tls_release *r, void *cache) {
  int ready = cor__load_acq(&r->ready);
  if (COR_UNLIKELY(ready == 0)) {
    pthread_mutex_lock(&tls_release_mu);
    ready = r->ready;
    if (ready == 0) {
      ready = pthread_key_create(&r->key, r->fn) == 0 ? 1 : -1;
      cor__store_rel(&r->ready, ready);
    }
    pthread_mutex_unlock(&tls_release_mu);
  }
  if (ready < 0)
    return -EAGAIN;
  return -pthread_setspecific(r->key, cache);
}
