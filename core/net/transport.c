/* SPDX-License-Identifier: MIT */
/* Protocols and transports: asyncio's callback model, no task per
 * connection (include/corio/transport.h).
 *
 * A transport is a cor_stream underneath, on either back-end, that no task
 * reads: the stream points at its transport (s->xp), and where a back-end
 * would wake a waiting reader (epoll's readable edge, io_uring's recv
 * completion) it calls cor__transport_readable, which pumps: fill the read
 * buffer through the contract (cor__xport_fill), hand the buffered bytes to
 * data_received, consume them, until the back-end answers -EAGAIN (armed
 * again) or a budget of rounds is spent (then the pump is rescheduled, so a
 * flooding peer cannot hold the loop). cor__stream_after_flush calls
 * cor__transport_flushed when bytes left the write buffer: resume_writing
 * at the low water mark, and the end of a graceful close.
 *
 * Re-entrancy: a callback may write, close or abort. The end of a
 * transport (finish) closes the fd at once but calls connection_lost and
 * frees from a loop callback of its own (cor_call_soon), so no frame below
 * a callback ever touches freed memory, and `done` makes it happen once.
 * The pump does not nest (in_pump): a readable edge during a callback is
 * seen by the running pump's next fill. */
#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "diag/resource.h"
#include "loop/loop.h"
#include "net/stream_backend.h"

#include <corio/transport.h>

#include <limits.h>
#include <sys/uio.h>

#define PUMP_BUDGET 16 /* fills per pump before yielding to the loop */

struct cor_transport {
  cor_stream_t *s;
  cor_loop_t *loop;
  const cor_protocol *p;
  void *arg;
  struct cor__conn *conn; /* the server's connection, or NULL */
  int code;               /* connection_lost's */
  bool made;    /* connection_made was called */
  bool closing; /* cor_transport_close: flushing, then lost(0) */
  bool done;    /* finished: the fd is closed, lost is scheduled */
  bool rpaused, wpaused;
  bool eof;     /* eof_received was called */
  bool in_pump;
  cor_handle_t pump_h; /* a pump scheduled (pause/resume, budget) */
};

static void pump(cor_transport_t *t);

static inline size_t wqueued(const cor_stream_t *s) {
  return (s->wend - s->wpos) + (s->fend - s->fpos);
}

/* ------------------------------------------------------------ the end */

static void lost_cb(void *arg) {
  cor_transport_t *t = arg;
  if (t->made && t->p->connection_lost)
    t->p->connection_lost(t, t->code, t->arg);
  cor_stream_t *s = t->s;
  s->xp = NULL;
  struct cor__conn *c = t->conn;
  cor__free(t);
  cor_stream_free(s); /* io_uring: ops in flight free it later */
  if (c)
    cor__server_conn_gone(c);
}

static void pump_cancel(cor_transport_t *t) {
  if (t->pump_h.id) {
    cor_handle_cancel(t->loop, t->pump_h);
    t->pump_h.id = 0;
  }
}

/* Ends the transport with code: the fd closes now (buffered bytes are
 * dropped), connection_lost comes from the loop. Once. */
static void finish(cor_transport_t *t, int code) {
  if (t->done)
    return;
  t->done = true;
  t->code = code;
  pump_cancel(t);
  cor_stream_t *s = t->s;
  s->closing = true; /* io_uring: completions drop what comes now */
  if (!s->fd_closed)
    cor__stream_close_fd(s);
  if (cor_call_soon(t->loop, lost_cb, t, NULL) != 0)
    COR_LOG(COR_LOG_ERROR,
            "transport: cannot schedule connection_lost (fd closed); "
            "leaking the transport");
}

/* ------------------------------------------------------------ reading */

static void pump_cb(void *arg) {
  cor_transport_t *t = arg;
  t->pump_h.id = 0;
  pump(t);
}

static void pump_later(cor_transport_t *t) {
  if (t->pump_h.id == 0 && !t->done &&
      cor_call_soon(t->loop, pump_cb, t, &t->pump_h) != 0)
    t->pump_h.id = 0;
}

static int close_t(cor_transport_t *t);

static void pump(cor_transport_t *t) {
  if (t->in_pump)
    return; /* the running pump fills again before it stops */
  t->in_pump = true;
  cor_stream_t *s = t->s;
  for (int round = 0;;) {
    if (t->done || t->closing || t->rpaused)
      break;
    size_t n = s->rend - s->rpos;
    if (n > 0) {
      const char *p = s->rbuf + s->rpos;
      s->rpos = s->rend; /* consumed; the buffer stays until the next fill */
      if (t->p->data_received)
        t->p->data_received(t, p, n, t->arg);
      continue;
    }
    if (t->eof)
      break;
    if (round++ >= PUMP_BUDGET) {
      pump_later(t); /* fairness: other connections get the loop */
      break;
    }
    /* io_uring may keep bytes that came before the EOF or the error
     * (s->pend): they go first */
    int rc = s->npend > 0 ? cor__xport_fill(s, 0)
             : s->rerr    ? s->rerr
             : s->eof     ? 0
                          : cor__xport_fill(s, 0);
    if (rc > 0)
      continue;
    if (rc == -EAGAIN) {
      cor__rbuf_release_if_empty(s); /* an idle connection holds none */
      break;
    }
    if (rc == 0) {
      t->eof = true;
      cor__rbuf_release_if_empty(s);
      bool keep = t->p->eof_received && t->p->eof_received(t, t->arg);
      if (!keep && !t->done && !t->closing)
        close_t(t);
      break;
    }
    finish(t, rc);
    break;
  }
  t->in_pump = false;
}

void cor__transport_readable(cor_transport_t *t) {
  if (!t->done && t->made)
    pump(t);
}

/* ------------------------------------------------------------ writing */

void cor__transport_flushed(cor_transport_t *t) {
  if (t->done)
    return;
  cor_stream_t *s = t->s;
  if (s->fd_closed || s->werr) {
    finish(t, s->werr);
    return;
  }
  if (t->wpaused && wqueued(s) <= s->lowat) {
    t->wpaused = false;
    if (t->p->resume_writing)
      t->p->resume_writing(t, t->arg);
  }
}

static void check_high(cor_transport_t *t) {
  if (!t->wpaused && !t->done && wqueued(t->s) > t->s->hiwat) {
    t->wpaused = true;
    if (t->p->pause_writing)
      t->p->pause_writing(t, t->arg);
  }
}

/* ------------------------------------------------------------ making */

cor_transport_t *cor__transport_new(cor_stream_t *s, const cor_protocol *proto,
                                    void *arg, struct cor__conn *conn) {
  cor_transport_t *t = cor__calloc(1, sizeof *t);
  if (t == NULL) {
    cor_stream_free(s);
    errno = ENOMEM;
    return NULL;
  }
  t->s = s;
  t->loop = s->loop;
  t->p = proto;
  t->arg = arg;
  t->conn = conn;
  s->xp = t;
  return t;
}

void cor__transport_start(cor_transport_t *t) {
  t->made = true;
  if (t->p->connection_made)
    t->p->connection_made(t, t->arg);
  pump(t); /* clients of request/response protocols write first */
}

void cor__transport_kill(cor_transport_t *t) { finish(t, -ECONNABORTED); }

/* ------------------------------------------------------------ calls */

#define CHECK_T(t, call)                                                       \
  do {                                                                         \
    if ((t) == NULL)                                                           \
      return cor__bad_arg(call, "t is NULL");                                  \
    COR__CHECK_THREAD((t)->loop, call);                                        \
  } while (0)

int cor_transport_write(cor_transport_t *t, const void *buf, size_t n) {
  if (t == NULL || (buf == NULL && n > 0))
    return cor__bad_arg("cor_transport_write",
                        t == NULL ? "t is NULL" : "buf is NULL with n > 0");
  COR__CHECK_THREAD(t->loop, "cor_transport_write");
  cor_stream_t *s = t->s;
  if (t->done || t->closing || s->shut_req || s->fd_closed)
    return COR_ECLOSED;
  if (s->werr)
    return s->werr;
  if (n == 0)
    return 0;
  int rc = cor__xport_write(s, buf, n);
  if (rc != 0) {
    finish(t, rc);
    return rc;
  }
  check_high(t);
  return 0;
}

int cor_transport_writev(cor_transport_t *t, const struct iovec *iov, int n) {
  if (t == NULL || (iov == NULL && n > 0) || n < 0 || n > IOV_MAX)
    return cor__bad_arg("cor_transport_writev",
                        t == NULL     ? "t is NULL"
                        : n < 0       ? "n is negative"
                        : n > IOV_MAX ? "n is above IOV_MAX"
                                      : "iov is NULL with n > 0");
  COR__CHECK_THREAD(t->loop, "cor_transport_writev");
  cor_stream_t *s = t->s;
  for (int i = 0; i < n; i++)
    if (iov[i].iov_base == NULL && iov[i].iov_len > 0)
      return cor__bad_arg("cor_transport_writev",
                          "an element has a NULL base and a length");
  if (t->done || t->closing || s->shut_req || s->fd_closed)
    return COR_ECLOSED;
  /* The stream's writev (zero-copy first try, then the buffer). Its kick
   * may end the transport (after_flush), which is deferred: t stays. */
  int rc = cor_stream_writev(s, iov, n);
  if (rc != 0) {
    finish(t, rc);
    return rc;
  }
  check_high(t);
  return 0;
}

int cor_transport_write_eof(cor_transport_t *t) {
  CHECK_T(t, "cor_transport_write_eof");
  if (t->done || t->closing)
    return COR_ECLOSED;
  return cor_stream_write_eof(t->s);
}

static int close_t(cor_transport_t *t) {
  if (t->done || t->closing)
    return COR_ECLOSED;
  t->closing = true;
  pump_cancel(t);
  cor_stream_t *s = t->s;
  cor_stream_close(s); /* closes now, or after the last byte's flush */
  if (s->fd_closed && !t->done)
    finish(t, s->werr);
  return 0;
}

int cor_transport_close(cor_transport_t *t) {
  CHECK_T(t, "cor_transport_close");
  return close_t(t);
}

void cor_transport_abort(cor_transport_t *t) {
  if (t == NULL) {
    cor__bad_arg("cor_transport_abort", "t is NULL");
    return;
  }
  COR__CHECK_THREAD_VOID(t->loop, "cor_transport_abort");
  finish(t, -ECONNABORTED);
}

int cor_transport_pause_reading(cor_transport_t *t) {
  CHECK_T(t, "cor_transport_pause_reading");
  if (t->done || t->closing)
    return COR_ECLOSED;
  t->rpaused = true;
  pump_cancel(t);
  return 0;
}

int cor_transport_resume_reading(cor_transport_t *t) {
  CHECK_T(t, "cor_transport_resume_reading");
  if (t->done || t->closing)
    return COR_ECLOSED;
  if (t->rpaused) {
    t->rpaused = false;
    pump_later(t); /* from the loop, never inside this call */
  }
  return 0;
}

size_t cor_transport_write_buffer_size(const cor_transport_t *t) {
  if (t == NULL) {
    cor__bad_arg("cor_transport_write_buffer_size", "t is NULL");
    return 0;
  }
  COR__CHECK_THREAD_VAL(t->loop, "cor_transport_write_buffer_size", 0);
  return wqueued(t->s);
}

int cor_transport_set_write_buffer_limits(cor_transport_t *t, size_t high,
                                          size_t low) {
  if (t == NULL || low > high)
    return cor__bad_arg("cor_transport_set_write_buffer_limits",
                        t == NULL ? "t is NULL" : "low is above high");
  COR__CHECK_THREAD(t->loop, "cor_transport_set_write_buffer_limits");
  if (high == 0 && low == 0) {
    high = COR_STREAM_DEFAULT_HIGH_WATER;
    low = COR_STREAM_DEFAULT_LOW_WATER;
  }
  t->s->hiwat = high;
  t->s->lowat = low;
  check_high(t);
  return 0;
}

void cor_transport_set_arg(cor_transport_t *t, void *arg) {
  if (t == NULL) {
    cor__bad_arg("cor_transport_set_arg", "t is NULL");
    return;
  }
  COR__CHECK_THREAD_VOID(t->loop, "cor_transport_set_arg");
  t->arg = arg;
}

void *cor_transport_get_arg(const cor_transport_t *t) {
  if (t == NULL)
    return cor__bad_arg_ptr("cor_transport_get_arg", "t is NULL");
  COR__CHECK_THREAD_PTR(t->loop, "cor_transport_get_arg");
  return t->arg;
}

int cor_transport_fd(const cor_transport_t *t) {
  CHECK_T(t, "cor_transport_fd");
  return t->s->fd_closed ? COR_ECLOSED : t->s->fd;
}

/* ------------------------------------------------------------ clients */

static int transport_of(cor_stream_t *s, const cor_protocol *proto, void *arg,
                        cor_transport_t **out) {
  cor__res_untrack(&s->res); /* the transport's, not the application's */
  s->readable = true;
  cor_transport_t *t = cor__transport_new(s, proto, arg, NULL);
  if (t == NULL)
    return -ENOMEM;
  t->made = true;
  if (proto->connection_made)
    proto->connection_made(t, arg);
  pump_later(t); /* the first read from the loop */
  if (out)
    *out = t;
  return 0;
}

typedef struct {
  char *host, *port, *local;
  cor_connect_opts o;
  const cor_protocol *proto;
  void *arg;
} conn_job;

static void job_free(conn_job *j) {
  cor__free(j->host);
  cor__free(j->port);
  cor__free(j->local);
  cor__free(j);
}

static int connect_main(void *arg, void **result) {
  (void)result;
  conn_job *j = arg;
  cor_stream_t *s = NULL;
  int rc = cor_open_connection_opts(j->host, j->port, &j->o, &s);
  if (rc == 0)
    rc = transport_of(s, j->proto, j->arg, NULL);
  if (rc != 0 && j->proto->connection_lost)
    j->proto->connection_lost(NULL, rc, j->arg);
  job_free(j);
  return 0;
}

int cor_create_connection(cor_loop_t *loop, const char *host,
                          const char *port, const cor_connect_opts *opts,
                          const cor_protocol *proto, void *arg,
                          cor_transport_t **out) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL || host == NULL || port == NULL || proto == NULL)
    return cor__bad_arg("cor_create_connection",
                        loop == NULL   ? "loop is NULL and no loop is running"
                        : host == NULL ? "host is NULL"
                        : port == NULL ? "port is NULL"
                                       : "proto is NULL");
  COR__CHECK_THREAD(loop, "cor_create_connection");
  if (loop->closed)
    return COR_ECLOSED;
  if (out) {
    *out = NULL;
    if (cor__tls_task == NULL)
      return COR_ENOTASK;
    cor_stream_t *s = NULL;
    int rc = cor_open_connection_opts(host, port, opts, &s);
    if (rc != 0)
      return rc;
    return transport_of(s, proto, arg, out);
  }
  conn_job *j = cor__calloc(1, sizeof *j);
  if (j == NULL)
    return -ENOMEM;
  if (opts)
    j->o = *opts;
  j->host = cor__strdup(host);
  j->port = cor__strdup(port);
  j->local = j->o.local_addr ? cor__strdup(j->o.local_addr) : NULL;
  j->o.local_addr = j->local;
  j->proto = proto;
  j->arg = arg;
  if (j->host == NULL || j->port == NULL || (opts && opts->local_addr && !j->local)) {
    job_free(j);
    return -ENOMEM;
  }
  cor_task_t *task = cor_create_task(loop, cor_coro(connect_main, j), NULL);
  if (task == NULL) {
    int e = errno ? -errno : -ENOMEM;
    job_free(j);
    return e;
  }
  cor_release(task); /* the loop holds its own until it ends */
  return 0;
}
