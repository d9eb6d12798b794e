/* SPDX-License-Identifier: MIT */
/* cor_runtime_start_server: one listener per loop of a runtime.
 *
 * In executor/, the layer above core/: it calls the runtime, which a core
 * file must not (core/server.c offers the pieces through stream_internal.h),
 * and programs using single-loop servers do not link the runtime. The listening sockets are made and bound on the
 * calling thread (SO_REUSEPORT, the first one picks the port when port is
 * 0); each loop then registers its own listener on its own thread, and the
 * caller waits until every loop listens. */
#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "loop/loop.h"
#include "net/stream_internal.h"

#include <corio/transport.h>


typedef struct {
  struct cor_server *srv;
  unsigned i;
  pthread_mutex_t *mu;
  pthread_cond_t *cv;
  int *left;
  int *err;
  bool *debug; /* loop 0's debug mode, read on its own thread */
} start_job;

static void start_on_loop(void *arg) {
  start_job *j = arg;
  int rc = cor__server_start_loop(j->srv, j->i);
  bool dbg = j->i == 0 && cor_loop_get_debug(cor__tls_loop);
  pthread_mutex_lock(j->mu);
  if (j->i == 0)
    *j->debug = dbg;
  if (rc != 0 && *j->err == 0)
    *j->err = rc;
  if (--*j->left == 0)
    pthread_cond_broadcast(j->cv);
  pthread_mutex_unlock(j->mu);
}

static cor_server_t *start_rt(struct cor_runtime *rt,
                              const cor_server_opts *opts, cor_fn handler,
                              const cor_protocol *proto, void *arg,
                              const char *call, const void *ra) {
  cor_server_opts o = {0};
  if (opts)
    o = *opts;
  unsigned n = rt ? cor_runtime_nloops(rt) : 0;
  if (rt == NULL || (handler == NULL && proto == NULL) || n == 0)
    return cor__bad_arg_ptr(call, rt == NULL ? "rt is NULL"
                                  : handler == NULL && proto == NULL
                                      ? "handler is NULL"
                                      : "rt has no loops");
  for (unsigned i = 0; i < n; i++)
    if (cor_runtime_loop(rt, i) == cor__tls_loop) {
      /* It waits until every loop listens, this one included: one code
       * for "a runtime call from one of its own loop threads". */
      COR_LOG(COR_LOG_ERROR,
              "%s(): called from loop %u of its own "
              "runtime, which it would wait for; call it from another "
              "thread, or use the single-loop call on this loop",
              call, i);
      errno = -COR_ETHREAD;
      return NULL;
    }
  o.reuseport = o.path == NULL; /* Unix sockets cannot share a path */
  struct cor_server *srv = cor__server_alloc(&o, handler, o.path ? 1 : n, ra);
  if (srv == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  if (proto)
    cor__server_set_protocol(srv, proto, arg);
  cor__server_set_multi(srv, true);
  unsigned nl = o.path ? 1 : n;
  int rc = 0;
  for (unsigned i = 0; i < nl && rc == 0; i++)
    rc = cor__server_listen(srv, i, cor_runtime_loop(rt, i), o.reuseport);
  if (rc != 0) {
    cor__server_abort(srv);
    errno = -rc;
    return NULL;
  }
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  int left = (int)nl, err = 0;
  bool debug = false;
  start_job *jobs = cor__calloc(nl, sizeof *jobs);
  if (jobs == NULL) {
    cor__server_abort(srv);
    errno = ENOMEM;
    return NULL;
  }
  for (unsigned i = 0; i < nl; i++) {
    jobs[i] = (start_job){srv, i, &mu, &cv, &left, &err, &debug};
    int prc = cor_call_soon_threadsafe(cor_runtime_loop(rt, i), start_on_loop,
                                       &jobs[i]);
    if (prc != 0) {
      pthread_mutex_lock(&mu);
      if (err == 0)
        err = prc;
      left--;
      pthread_mutex_unlock(&mu);
    }
  }
  pthread_mutex_lock(&mu);
  while (left > 0)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  cor__free(jobs);
  if (err != 0) {
    cor_server_free(srv);
    errno = err == COR_ECLOSED ? -COR_ECLOSED : -err;
    return NULL;
  }
  /* Debug mode as loop 0's, read there by its job (a loop's state is its
   * thread's to read). */
  cor__server_track(srv, debug, ra);
  return srv;
}

cor_server_t *cor_runtime_start_server(struct cor_runtime *rt,
                                       const cor_server_opts *opts,
                                       cor_fn handler) {
  return start_rt(rt, opts, handler, NULL, NULL, "cor_runtime_start_server",
                  __builtin_return_address(0));
}

cor_server_t *cor_runtime_start_protocol_server(struct cor_runtime *rt,
                                                const cor_server_opts *opts,
                                                const cor_protocol *proto,
                                                void *arg) {
  if (rt == NULL || proto == NULL)
    return cor__bad_arg_ptr("cor_runtime_start_protocol_server",
                            rt == NULL ? "rt is NULL" : "proto is NULL");
  return start_rt(rt, opts, NULL, proto, arg,
                  "cor_runtime_start_protocol_server",
                  __builtin_return_address(0));
}
