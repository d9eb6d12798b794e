/* SPDX-License-Identifier: MIT */
/* The epoll back-end of streams (core/stream_backend.h): any fd, sockets
 * and pipes.
 *
 * One edge-triggered epoll registration for the stream's whole life (one
 * epoll_ctl). The two edge callbacks only set a flag and wake the task that
 * waits (by completing a future embedded in the stream: no allocation per
 * wait). Reading: recv straight into the stream's buffer; a short read means
 * the socket is drained (unless the edge also said hang-up, error or urgent
 * data: see cor__sep_fill), so the next read waits for the next edge
 * instead of paying a syscall for EAGAIN. Writing: tried at once with send
 * (MSG_NOSIGNAL); only what the kernel did not take is copied into the write
 * buffer, which the writable-edge callback flushes from the loop with no task
 * involved. */
#include "base/alloc.h"
#include "base/base.h"
#include "loop/loop.h"
#include "loop/poll_epoll.h"
#include "net/stream_backend.h"

#include <sys/socket.h>
#include <unistd.h>

static inline ssize_t do_send(cor_stream_t *s, const void *p, size_t n) {
  ssize_t w;
  do {
    w = s->kind == COR__STREAM_SOCK ? send(s->fd, p, n, MSG_NOSIGNAL)
                                    : cor__pipe_write(s->fd, p, n);
  } while (w < 0 && errno == EINTR);
  return w;
}

/* Sends what the write buffer holds until it is empty or the kernel stops
 * taking bytes. Records a write error. */
static void flush(cor_stream_t *s) {
  while (s->wend > s->wpos && s->writable && !s->werr) {
    ssize_t w = do_send(s, s->wbuf + s->wpos, s->wend - s->wpos);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        s->writable = false;
      else
        s->werr = -errno;
      break;
    }
    s->last_io = s->loop->now;
    if ((size_t)w < s->wend - s->wpos)
      s->writable = false; /* the kernel's buffer is full: wait for the edge */
    s->wpos += (size_t)w;
  }
  if (s->wpos == s->wend) {
    s->wpos = s->wend = 0;
    if (s->wcap > 4 * COR__WBUF_MIN) {
      /* a burst is over: do not keep its buffer on an idle connection */
      cor__free(s->wbuf);
      s->wbuf = NULL;
      s->wcap = 0;
    }
  }
}

/* ------------------------------------------------------------ edges */

static void on_readable(void *arg) {
  cor_stream_t *s = arg;
  s->readable = true;
  if (s->loop->io_events & COR__POLL_HUP)
    s->hup = true; /* read until EAGAIN/EOF: see cor__sep_fill */
  if (s->rwait)
    cor__wake_embedded(&s->rfut, true, 0);
  else if (COR_UNLIKELY(s->xp != NULL))
    cor__transport_readable(s->xp); /* a protocol's data_received */
}

static void on_writable(void *arg) {
  cor_stream_t *s = arg;
  s->writable = true;
  if (s->wend > s->wpos) {
    flush(s);
    cor__stream_after_flush(s);
  } else if (s->wwait) {
    cor__wake_embedded(&s->wfut, true, 0);
  }
}

/* ------------------------------------------------------------ contract */

int cor__sep_attach(cor_stream_t *s) {
  int rc = cor__loop_io_et_add(s->loop, s->fd, on_readable, on_writable, s);
  if (rc != 0)
    return rc;
  s->registered = true;
  return 0;
}

int cor__sep_fill(cor_stream_t *s, size_t want) {
  while (s->readable) {
    int rc = cor__rbuf_room(s, want);
    if (rc != 0)
      return rc;
    size_t space = s->rcap - s->rend;
    ssize_t n = s->kind == COR__STREAM_SOCK
                    ? recv(s->fd, s->rbuf + s->rend, space, 0)
                    : read(s->fd, s->rbuf + s->rend, space);
    if (n > 0) {
      s->rend += (size_t)n;
    /* A short read ends the reading without a recv that returns
     * EAGAIN (one syscall per request saved), and loses no edge:
     * - A stream socket's recv (TCP, Unix) or a pipe's read returns
     *   fewer bytes than asked only when it found its receive queue
     *   empty, with two exceptions: TCP urgent data (recv stops at the
     *   urgent mark, bytes queued behind it) and a pending EOF or
     *   error (the bytes before a FIN come back short, the FIN stays).
     * - Bytes that arrive after recv looked at the queue wake epoll
     *   again, and with EPOLLET an item that was reported is re-armed,
     *   so that arrival is a new edge: on_readable sets `readable`
     *   again from the poll, which runs on this thread only after this
     *   task suspends, i.e. after the store below.
     * - The exceptions come with their own event bits, reported with
     *   the edge that announced the bytes: EPOLLRDHUP/HUP/ERR for the
     *   EOF or error, EPOLLPRI for urgent data (COR__POLL_HUP). Then
     *   `hup` is set and short reads do not end the reading: only
     *   EAGAIN or EOF does, since the FIN or the bytes past the mark
     *   produce no further edge.
     * (A Unix socket with SO_PASSCRED also stops where the sender's
     * credentials change; corio never sets it. A user who does, on an
     * fd given to cor_stream_from_fd, gets the data with the next
     * edge, i.e. possibly late.) */
      if ((size_t)n < space && !s->hup)
        s->readable = false;
      s->last_io = s->loop->now;
      return 1;
    }
    if (n == 0) {
      s->eof = true;
      return 0;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      s->rerr = -errno;
      return s->rerr;
    }
    /* Nothing now, and anything later (bytes, FIN, error, urgent data)
     * is a new edge: short reads can be trusted again. */
    s->readable = false;
    s->hup = false;
  }
  return -EAGAIN; /* on_readable wakes the reader */
}

/* Sends at once what the kernel takes (queued bytes first, in one sendmsg
 * with the new ones instead of a copy); the rest is queued for the
 * writable edge. */
int cor__sep_write(cor_stream_t *s, const void *buf, size_t n) {
  const char *p = buf;
  if (s->writable) {
    ssize_t w;
    size_t queued = s->wend - s->wpos;
    if (COR_LIKELY(queued == 0)) {
      w = do_send(s, p, n);
    } else {
      /* Queued bytes go first: one writev for both instead of a copy. */
      struct iovec iov[2] = {{s->wbuf + s->wpos, queued}, {(void *)p, n}};
      if (s->kind == COR__STREAM_SOCK) {
        struct msghdr mh = {0};
        mh.msg_iov = iov;
        mh.msg_iovlen = 2;
        do
          w = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
      } else {
        w = do_send(s, iov[0].iov_base, queued); /* pipes: rare, simple */
      }
      if (w > 0) {
        size_t from_q = (size_t)w < queued ? (size_t)w : queued;
        s->wpos += from_q;
        w -= (ssize_t)from_q;
        if (s->wpos == s->wend)
          s->wpos = s->wend = 0;
        if (s->wend > s->wpos) {
          /* the kernel took part of the queue only */
          s->writable = false;
          return cor__wbuf_append(s, p, n);
        }
      }
    }
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        s->werr = -errno;
        return s->werr;
      }
      w = 0;
    }
    s->last_io = s->loop->now;
    if ((size_t)w == n)
      return 0;
    s->writable = false;
    p += w;
    n -= (size_t)w;
  }
  return cor__wbuf_append(s, p, n);
}

ssize_t cor__sep_try_sendv(cor_stream_t *s, const struct iovec *iov, int n,
                           size_t total) {
  if (!s->writable || s->wend != s->wpos || s->kind != COR__STREAM_SOCK)
    return 0;
  struct msghdr mh = {0};
  mh.msg_iov = (struct iovec *)iov;
  mh.msg_iovlen = (size_t)n;
  ssize_t w;
  do
    w = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return s->werr = -errno;
    w = 0;
  }
  s->last_io = s->loop->now;
  if ((size_t)w < total)
    s->writable = false; /* the kernel's buffer is full: wait for the edge */
  return w;
}

void cor__sep_kick(cor_stream_t *s) {
  if (s->writable) {
    flush(s);
    cor__stream_after_flush(s);
  }
}

int cor__sep_wait_writable(cor_stream_t *s, uint64_t deadline_ns,
                           const char *call, const void *site) {
  s->writable = false;
  int rc = 0;
  while (!s->writable && rc == 0)
    rc = cor__wait_embedded(s->loop, &s->wfut, &s->wwait, deadline_ns, call,
                            site);
  return rc;
}

void cor__sep_close(cor_stream_t *s) {
  if (s->registered) {
    cor__loop_io_et_del(s->loop, s->fd);
    s->registered = false;
  }
}
