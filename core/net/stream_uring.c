/* SPDX-License-Identifier: MIT */
/* The io_uring back-end of streams (core/stream_backend.h): socket streams
 * of a loop with a ring (core/uring.c, the ring itself).
 *
 * The first read that finds the buffer empty arms a multishot recv on the
 * loop's provided buffers, which then stays armed: each arrival completes
 * with a buffer whose bytes are copied into the read buffer when a task
 * waits, or kept (uncopied, so a peek's pointer does not move) until the
 * next read otherwise; past PEND_MAX kept buffers the recv is cancelled
 * (back-pressure) and re-armed by the next read. When the shared pool runs
 * dry (-ENOBUFS), the next read is one recv into the stream's own buffer.
 * A write appends to the write buffer and, unless a send is in flight,
 * hands the buffer to one (double-buffered: later writes fill the other
 * buffer until the send completes). The loop's one io_uring_enter per
 * iteration submits them all. A stream freed with ops in flight stays (a
 * zombie) until the last completes; a ring whose thread is gone fails its
 * streams (cor__streams_ring_lost). */
#include "base/alloc.h"
#include "base/base.h"
#include "loop/loop.h"
#include "net/stream_backend.h"
#include "loop/uring.h"

#include <poll.h>
#include <sys/socket.h>


/* The last op of a freed stream completed: free it now. */
static bool zombie_done(cor_stream_t *s) {
  if (!s->zombie)
    return false;
  if (s->uops == 0)
    cor__stream_release(s);
  return true;
}

/* Buffers a task did not wait for that one stream may hold before its
 * multishot recv is stopped (back-pressure: the pool is shared). */
#define PEND_MAX 4u
/* A pend entry for bytes in the stream's own buffer (obuf), not the pool's. */
#define OWN_BID 0xffffu

static void stop_recv(cor_stream_t *s, cor__uring *u) {
  struct io_uring_sqe *sqe;
  if (s->rarmed && !s->rcancel && (sqe = cor__uring_sqe(u)) != NULL) {
    io_uring_prep_cancel(sqe, &s->rop, 0);
    io_uring_sqe_set_data64(sqe, COR__URING_TAG_IGNORE);
    u->quick++;
    s->rcancel = true;
  }
}

void cor__streams_ring_lost(cor__uring *u) {
  cor_stream_t *s = u->streams;
  u->streams = NULL;
  while (s) {
    cor_stream_t *next = s->unext;
    s->lost = true;
    s->unext = s->uprev = NULL;
    /* what was in flight is gone with the ring's thread */
    s->uops = 0;
    s->rarmed = s->sending = false;
    s->npend = 0;
    s->fpos = s->fend = 0;
    if (s->zombie) {
      cor__stream_release(s);
    } else {
      if (!s->rerr)
        s->rerr = COR_ETHREAD;
      if (!s->werr)
        s->werr = COR_ETHREAD;
      if (s->closing && !s->fd_closed)
        cor__stream_close_fd(s);
      if (s->rwait)
        cor__wake_embedded(&s->rfut, true, COR_ETHREAD);
      else if (s->xp != NULL)
        cor__transport_readable(s->xp); /* reports the error */
      if (s->wwait)
        cor__wake_embedded(&s->wfut, true, COR_ETHREAD);
    }
    s = next;
  }
}

/* Keeps a received buffer, uncopied, for the next read: copying now could
 * move the read buffer under a peek's pointer. */
static void pend_push(cor_stream_t *s, cor__uring *u, unsigned bid,
                      unsigned len) {
  if (s->npend == s->pend_cap) {
    uint16_t cap = s->pend_cap ? (uint16_t)(s->pend_cap * 2) : 4;
    uint32_t *np = cor__realloc(s->pend, cap * sizeof *np);
    if (np == NULL) {
      if (bid != OWN_BID)
        cor__uring_buf_put(u, bid);
      s->rerr = -ENOMEM;
      return;
    }
    s->pend = np;
    s->pend_cap = cap;
  }
  s->pend[s->npend++] = (uint32_t)bid << 16 | len;
  if (s->npend >= PEND_MAX)
    stop_recv(s, u);
}

/* Copies the kept buffers into the read buffer and gives them back. */
static int pend_take(cor_stream_t *s) {
  cor__uring *u = s->loop->uring;
  int rc = 0;
  for (unsigned i = 0; i < s->npend; i++) {
    unsigned bid = s->pend[i] >> 16, len = s->pend[i] & 0xffffu;
    if (bid == OWN_BID) {
      if (rc == 0)
        rc = cor__rbuf_append(s, s->obuf, len);
      continue;
    }
    if (rc == 0)
      rc = cor__rbuf_append(s, cor__uring_buf(u, bid), len);
    cor__uring_buf_put(u, bid);
  }
  s->npend = 0;
  return rc;
}

/* One completion of the stream's multishot recv (F_MORE: still armed). */
static void on_recv(cor__uop *op, int res, unsigned flags) {
  cor_stream_t *s = (cor_stream_t *)((char *)op - offsetof(cor_stream_t, rop));
  cor__uring *u = s->loop->uring;
  if (!(flags & IORING_CQE_F_MORE)) {
    s->uops--;
    s->rarmed = false;
    s->rcancel = false;
  }
  int bid = (flags & IORING_CQE_F_BUFFER) ? (int)(flags >> IORING_CQE_BUFFER_SHIFT)
                                          : -1;
  if (bid < 0 && res > 0 && s->obuf && !(flags & IORING_CQE_F_MORE))
    bid = OWN_BID; /* the one-shot recv into the stream's own buffer */
  if (s->zombie || s->closing || u->closing) {
    if (bid >= 0 && bid != OWN_BID)
      cor__uring_buf_put(u, (unsigned)bid);
    if (!zombie_done(s) && s->rwait && !u->closing)
      cor__wake_embedded(&s->rfut, true, 0);
    return;
  }
  if (res > 0 && bid >= 0) {
    s->last_io = s->loop->now;
    if (!s->rwait || s->npend > 0) {
      pend_push(s, u, (unsigned)bid, (unsigned)res);
    } else if (bid == OWN_BID) {
      int rc = cor__rbuf_append(s, s->obuf, (size_t)res);
      if (rc != 0)
        s->rerr = rc;
    } else {
      int rc = cor__rbuf_append(s, cor__uring_buf(u, (unsigned)bid), (size_t)res);
      cor__uring_buf_put(u, (unsigned)bid);
      if (rc != 0)
        s->rerr = rc;
    }
  } else {
    if (bid >= 0)
      cor__uring_buf_put(u, (unsigned)bid);
    if (res == 0)
      s->eof = true;
    else if (res == -ENOBUFS)
      s->nobufs = true; /* the pool ran dry: the next read brings its own */
    else if (res < 0 && res != -ECANCELED && res != -EINTR)
      s->rerr = res;
  }
  if (s->rwait)
    cor__wake_embedded(&s->rfut, true, 0);
  else if (COR_UNLIKELY(s->xp != NULL))
    cor__transport_readable(s->xp); /* a protocol's data_received */
}

/* Arms the stream's multishot recv on the loop's provided buffers: it stays
 * armed, one completion per arrival, until EOF, an error, a dry pool, or a
 * cancel (back-pressure, close). */
static int arm_recv(cor_stream_t *s) {
  cor__uring *u = s->loop->uring;
  if (s->nobufs && s->obuf == NULL &&
      (s->obuf = cor__malloc(COR__URING_BUF)) == NULL)
    return -ENOMEM;
  struct io_uring_sqe *sqe = u ? cor__uring_sqe(u) : NULL;
  if (sqe == NULL)
    return -ENOMEM;
  if (s->nobufs) {
    /* The shared pool ran dry (streams nobody reads hold buffers): one
     * recv into the stream's own buffer, so a reader neither spins on
     * -ENOBUFS nor starves; the next read tries the pool again. */
    s->nobufs = false;
    io_uring_prep_recv(sqe, s->fd, s->obuf, COR__URING_BUF, 0);
  } else {
    io_uring_prep_recv(sqe, s->fd, NULL, 0, 0);
    sqe->ioprio |= IORING_RECV_MULTISHOT;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = COR__URING_BGID;
  }
  io_uring_sqe_set_data(sqe, &s->rop);
  u->inflight++;
  s->uops++;
  s->rarmed = true;
  return 0;
}

static void start_send(cor_stream_t *s);

static void submit_send(cor_stream_t *s) {
  cor__uring *u = s->loop->uring;
  struct io_uring_sqe *sqe = u ? cor__uring_sqe(u) : NULL;
  if (sqe == NULL) {
    s->werr = -ENOMEM;
    return;
  }
  io_uring_prep_send(sqe, s->fd, s->fbuf + s->fpos, s->fend - s->fpos,
                     MSG_NOSIGNAL);
  io_uring_sqe_set_data(sqe, &s->wop);
  u->inflight++;
  u->quick++;
  s->uops++;
  s->sending = true;
}

static void on_send(cor__uop *op, int res, unsigned flags) {
  (void)flags;
  cor_stream_t *s = (cor_stream_t *)((char *)op - offsetof(cor_stream_t, wop));
  s->uops--;
  s->sending = false;
  if (zombie_done(s))
    return;
  if (s->loop->uring->closing) {
    s->fpos = s->fend = 0;
    return;
  }
  if (res < 0) {
    s->werr = res == -ECANCELED ? COR_ECLOSED : res;
    s->fpos = s->fend = 0;
  } else {
    s->fpos += (size_t)res;
    s->last_io = s->loop->now;
    if (s->fpos < s->fend && !s->fd_closed) {
      submit_send(s); /* the kernel took part: the rest */
      if (s->sending)
        return;
    }
    s->fpos = s->fend = 0;
  }
  if (!s->werr && !s->fd_closed && s->wend > s->wpos) {
    start_send(s);
  } else if (s->wend == s->wpos) {
    /* Nothing to send: an idle connection keeps no write buffer. */
    cor__free(s->wbuf);
    s->wbuf = NULL;
    s->wcap = s->wpos = s->wend = 0;
    cor__free(s->fbuf);
    s->fbuf = NULL;
    s->fcap = 0;
  }
  cor__stream_after_flush(s);
}

/* Hands the write buffer to a send; writes fill the other buffer meanwhile. */
static void start_send(cor_stream_t *s) {
  char *b = s->fbuf;
  size_t c = s->fcap;
  s->fbuf = s->wbuf;
  s->fcap = s->wcap;
  s->fpos = s->wpos;
  s->fend = s->wend;
  s->wbuf = b;
  s->wcap = c;
  s->wpos = s->wend = 0;
  submit_send(s);
}

static void on_pollout(cor__uop *op, int res, unsigned flags) {
  (void)flags;
  (void)res;
  cor_stream_t *s = (cor_stream_t *)((char *)op - offsetof(cor_stream_t, wop));
  s->uops--;
  s->sending = false;
  if (zombie_done(s) || s->loop->uring->closing)
    return;
  s->writable = true;
  if (s->wwait)
    cor__wake_embedded(&s->wfut, true, 0);
}

int cor__sur_wait_writable(cor_stream_t *s, uint64_t deadline_ns,
                           const char *call, const void *site) {
  s->writable = false;
  int rc = 0;
  while (!s->writable && rc == 0) {
    if (!s->sending) {
      cor__uring *u = s->loop->uring;
      struct io_uring_sqe *sqe = u ? cor__uring_sqe(u) : NULL;
      if (sqe == NULL)
        return -ENOMEM;
      io_uring_prep_poll_add(sqe, s->fd, POLLOUT);
      s->wop.cb = on_pollout;
      s->wop.quick = false;
      io_uring_sqe_set_data(sqe, &s->wop);
      u->inflight++;
      s->uops++;
      s->sending = true;
    }
    rc = cor__wait_embedded(s->loop, &s->wfut, &s->wwait, deadline_ns, call,
                            site);
  }
  if (!s->sending) { /* else the poll is still in flight: free cancels it */
    s->wop.cb = on_send;
    s->wop.quick = true;
  }
  return rc;
}

/* ------------------------------------------------------------ contract */

int cor__sur_attach(cor_stream_t *s) {
  if (cor__uring_sockets(s->loop) == NULL)
    return -ENODEV;
  s->uring = true;
  s->readable = false;
  s->rop.cb = on_recv;
  s->wop.cb = on_send;
  s->wop.quick = true;
  cor__uring *u = s->loop->uring;
  s->unext = u->streams;
  if (u->streams)
    u->streams->uprev = s;
  u->streams = s;
  return 0;
}

int cor__sur_fill(cor_stream_t *s, size_t want) {
  (void)want; /* a completion brings what came, whatever the reader wants */
  if (s->npend > 0) {
    /* bytes that came while no task waited */
    int rc = pend_take(s);
    if (rc != 0)
      return s->rerr = rc;
    return 1;
  }
  if (!s->rarmed) {
    int rc = arm_recv(s);
    if (rc != 0)
      return rc;
  }
  return -EAGAIN; /* on_recv copies what comes and wakes the reader */
}

int cor__sur_write(cor_stream_t *s, const void *p, size_t n) {
  int rc = cor__wbuf_append(s, p, n);
  if (rc == 0 && !s->sending)
    start_send(s);
  return rc ? rc : s->werr;
}

void cor__sur_kick(cor_stream_t *s) {
  if (!s->sending)
    start_send(s);
}

void cor__sur_close(cor_stream_t *s) {
  cor__uring *u = !s->lost ? s->loop->uring : NULL;
  if (u != NULL && s->uops > 0) {
    /* Ops in flight are cancelled; their completions come later, which is
     * why a freed stream may outlive cor_stream_free. An SQE not yet
     * submitted names the fd by number: submit first, so the kernel holds
     * the file before the number can be reused. (The socket itself goes
     * once the cancelled ops let go of it, at the loop's next enter.) */
    cor__uring_submit(u);
    stop_recv(s, u);
    struct io_uring_sqe *sqe;
    if (s->sending && (sqe = cor__uring_sqe(u)) != NULL) {
      io_uring_prep_cancel(sqe, &s->wop, 0);
      io_uring_sqe_set_data64(sqe, COR__URING_TAG_IGNORE);
      u->quick++;
    }
  }
}

void cor__sur_release(cor_stream_t *s) {
  cor__uring *u = s->loop->uring;
  if (!s->lost) {
    if (s->uprev)
      s->uprev->unext = s->unext;
    else if (u)
      u->streams = s->unext;
    if (s->unext)
      s->unext->uprev = s->uprev;
  }
  if (u)
    for (unsigned i = 0; i < s->npend; i++)
      if ((s->pend[i] >> 16) != OWN_BID)
        cor__uring_buf_put(u, s->pend[i] >> 16);
  cor__free(s->pend);
  s->pend = NULL;
  cor__free(s->obuf);
  s->obuf = NULL;
  cor__free(s->fbuf);
  s->fbuf = NULL;
}
