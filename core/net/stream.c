/* SPDX-License-Identifier: MIT */
/* Streams: buffered, task-suspending reads and writes over a socket or pipe.
 *
 * This file holds the public calls and the buffers, written once; the bytes
 * move between those buffers and the kernel through a back-end
 * (core/stream_backend.h: the contract): core/stream_epoll.c (edge-triggered
 * epoll, recv/send) or core/stream_uring.c (socket streams of a loop with an
 * io_uring: multishot recv on provided buffers, sends on the ring). A read
 * takes buffered bytes without asking the back-end; only an empty buffer
 * asks it to fill (more()), and a task waits only when it has nothing now.
 * A write hands the bytes to the back-end, which sends at once what it can
 * and queues the rest; drain() is the back-pressure point.
 *
 * Memory: an empty read buffer goes back to a small per-thread cache while
 * its task waits for data, so an idle connection holds no read buffer; the
 * write buffer exists only while the kernel is behind (epoll) or a send is
 * in flight (io_uring). */
#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/thread.h"
#include "diag/resource.h"
#include "loop/loop.h"
#include "net/stream_backend.h"

#include <limits.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (16u * 1024u) /* read chunk; one recv fills at most this */
#define RBUF_CACHE 64u          /* empty read buffers kept per thread */
#define WBUF_MIN COR__WBUF_MIN

/* ------------------------------------------------------------ buffers */

/* Per-thread cache of RBUF_SIZE buffers: a stream lives on one loop (one
 * thread), so a buffer is always freed where it was allocated. LIFO keeps
 * the most recently used (cache-warm) buffer on top. */
static _Thread_local struct {
  void *head;
  unsigned n;
  bool keyed;
} rcache;

/* At thread exit: the cached buffers go back to the allocator. */
static void rcache_free(void *unused) {
  (void)unused;
  while (rcache.head) {
    void *b = rcache.head;
    rcache.head = *(void **)b;
    cor__free(b);
  }
  rcache.n = 0;
}
static cor__tls_release rcache_release = COR__TLS_RELEASE_INIT(rcache_free);

static char *rbuf_get(void) {
  void *b = rcache.head;
  if (b) {
    rcache.head = *(void **)b;
    rcache.n--;
    return b;
  }
  return cor__malloc(RBUF_SIZE);
}

static void rbuf_put(char *b, size_t cap) {
  if (cap == RBUF_SIZE && rcache.n < RBUF_CACHE) {
    if (COR_UNLIKELY(!rcache.keyed)) {
      rcache.keyed = true;
      (void)cor__tls_release_arm(&rcache_release, &rcache);
    }
    *(void **)b = rcache.head;
    rcache.head = b;
    rcache.n++;
    return;
  }
  cor__free(b);
}

/* An empty read buffer is not needed while the task waits for the edge. */
static void rbuf_release_if_empty(cor_stream_t *s) {
  if (s->rbuf && s->rpos == s->rend) {
    rbuf_put(s->rbuf, s->rcap);
    s->rbuf = NULL;
    s->rcap = s->rpos = s->rend = 0;
  }
}

void cor__rbuf_release_if_empty(cor_stream_t *s) { rbuf_release_if_empty(s); }

/* Room for at least one more byte at the end of the read buffer, growing it
 * up to `want` buffered bytes (readuntil needs the whole limit). */
int cor__rbuf_room(cor_stream_t *s, size_t want) {
  if (s->rbuf == NULL) {
    if ((s->rbuf = rbuf_get()) == NULL)
      return -ENOMEM;
    s->rcap = RBUF_SIZE;
    s->rpos = s->rend = 0;
    return 0;
  }
  if (s->rpos == s->rend)
    s->rpos = s->rend = 0;
  if (s->rend < s->rcap)
    return 0;
  size_t used = s->rend - s->rpos;
  if (s->rpos > 0 && (used < s->rcap / 2 || used < want)) {
    /* compact when it frees a good part, or before growing */
    memmove(s->rbuf, s->rbuf + s->rpos, used);
    s->rpos = 0;
    s->rend = used;
    if (s->rend < s->rcap)
      return 0;
  }
  size_t cap = s->rcap * 2;
  while (cap < want + 1)
    cap *= 2;
  char *nb = cor__malloc(cap);
  if (nb == NULL)
    return -ENOMEM;
  memcpy(nb, s->rbuf + s->rpos, used);
  rbuf_put(s->rbuf, s->rcap);
  s->rbuf = nb;
  s->rcap = cap;
  s->rpos = 0;
  s->rend = used;
  return 0;
}

int cor__wbuf_append(cor_stream_t *s, const char *p, size_t n) {
  size_t used = s->wend - s->wpos;
  if (s->wpos > 0 && s->wend + n > s->wcap) {
    memmove(s->wbuf, s->wbuf + s->wpos, used);
    s->wpos = 0;
    s->wend = used;
  }
  if (s->wend + n > s->wcap) {
    size_t cap = s->wcap ? s->wcap : WBUF_MIN;
    while (cap < s->wend + n)
      cap *= 2;
    char *nb = cor__realloc(s->wbuf, cap);
    if (nb == NULL)
      return -ENOMEM;
    s->wbuf = nb;
    s->wcap = cap;
  }
  memcpy(s->wbuf + s->wend, p, n);
  s->wend += n;
  return 0;
}

/* Bytes written and not yet taken by the kernel: the write buffer's and,
 * in io_uring mode, the send in flight's. */
static inline size_t wqueued(const cor_stream_t *s) {
  return (s->wend - s->wpos) + (s->fend - s->fpos);
}

void cor__rbuf_drop(char *b, size_t cap) { rbuf_put(b, cap); }

/* Appends n received bytes to the read buffer. */
int cor__rbuf_append(cor_stream_t *s, const char *p, size_t n) {
  if (COR_UNLIKELY(s->tls != NULL) && !s->tls_raw)
    return cor__ssl_cipher_in(s, p, n); /* ciphertext, outside a fill */
  while (n > 0) {
    int rc = cor__rbuf_room(s, s->rend - s->rpos + n);
    if (rc != 0)
      return rc;
    size_t k = s->rcap - s->rend;
    if (k > n)
      k = n;
    memcpy(s->rbuf + s->rend, p, k);
    s->rend += k;
    p += k;
    n -= k;
  }
  return 0;
}

/* ------------------------------------------------------------ syscalls */

/* write(2) on a pipe whose reader is gone, and sendfile(2) to a socket
 * whose peer is gone, raise SIGPIPE (neither takes MSG_NOSIGNAL): hold it
 * blocked around the call and consume the one the call raised. Only pipe
 * writes and sendfile pay these syscalls. */
static void sigpipe_hold(sigset_t *old) {
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, old);
}

static void sigpipe_release(const sigset_t *old, ssize_t w, int err) {
  if (w < 0 && err == EPIPE && !sigismember(old, SIGPIPE)) {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, old, NULL);
  errno = err;
}

ssize_t cor__pipe_write(int fd, const void *p, size_t n) {
  sigset_t old;
  sigpipe_hold(&old);
  ssize_t w = write(fd, p, n);
  sigpipe_release(&old, w, errno);
  return w;
}

/* After the buffer moved (flush) or an error: the deferred actions. */
void cor__stream_after_flush(cor_stream_t *s) {
  size_t left = wqueued(s);
  if (left == 0 && s->shut_req && !s->shut_done && !s->fd_closed) {
    s->shut_done = true;
    if (s->kind == COR__STREAM_SOCK)
      shutdown(s->fd, SHUT_WR);
  }
  if (s->closing && !s->fd_closed && (left == 0 || s->werr))
    cor__stream_close_fd(s);
  if (s->wwait && (left <= s->lowat || s->werr || s->fd_closed))
    cor__wake_embedded(&s->wfut, true, 0);
  if (COR_UNLIKELY(s->xp != NULL))
    cor__transport_flushed(s->xp); /* resume_writing, the close's end */
}

/* ------------------------------------------------------------ back-ends */

int cor__stream_wait_connect(cor_stream_t *s, uint64_t deadline_ns,
                             const char *call, const void *site) {
  return cor__xport_wait_writable(s, deadline_ns, call, site);
}

/* ------------------------------------------------------------ lifecycle */

cor_stream_t *cor__stream_new(struct cor_loop *loop, int fd, int kind,
                              bool readable) {
  cor_stream_t *s = cor__calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    errno = ENOMEM;
    return NULL;
  }
  s->loop = loop;
  s->fd = fd;
  s->kind = (uint8_t)kind;
  s->readable = readable;
  s->writable = true;
  s->limit = COR_STREAM_DEFAULT_LIMIT;
  s->hiwat = COR_STREAM_DEFAULT_HIGH_WATER;
  s->lowat = COR_STREAM_DEFAULT_LOW_WATER;
  s->last_io = loop->now ? loop->now : cor__now_ns();
  /* the back-end: io_uring for a socket when the loop has a ring */
  if (kind == COR__STREAM_SOCK && cor__sur_attach(s) == 0)
    return s;
  int rc = cor__sep_attach(s);
  if (rc != 0) {
    close(fd);
    cor__free(s);
    errno = rc == COR_ECLOSED ? -COR_ECLOSED : -rc;
    return NULL;
  }
  return s;
}

/* "Stream fd=7 peer=127.0.0.1:5555 local=127.0.0.1:41234 buffered=0
 * write_buffered=0": what a user needs to find the connection. */
static void stream_repr(cor__res *r, cor__buf *out) {
  cor_stream_t *s = (cor_stream_t *)((char *)r - offsetof(cor_stream_t, res));
  cor__buf_printf(out, "Stream fd=%d", s->fd);
  if (s->kind == COR__STREAM_PIPE) {
    cor__buf_printf(out, " pipe");
  } else {
    cor__buf_sockaddr(out, "peer", s->fd, true);
    cor__buf_sockaddr(out, "local", s->fd, false);
  }
  if (s->eof)
    cor__buf_printf(out, " eof");
  cor__buf_printf(out, " buffered=%zu write_buffered=%zu", s->rend - s->rpos,
                  wqueued(s));
}

static const cor__res_type stream_res = {"stream", stream_repr};

void cor__stream_track(cor_stream_t *s, const void *ra) {
  cor__res_track(&s->res, &stream_res, s->loop, false, s->loop->debug, ra);
}

cor_stream_t *cor_stream_from_fd(cor_loop_t *loop, int fd) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL || fd < 0) {
    if (fd >= 0)
      close(fd);
    return cor__bad_arg_ptr("cor_stream_from_fd",
                            loop == NULL ? "loop is NULL and no loop is running"
                                         : "fd is negative");
  }
  if (COR_UNLIKELY(cor__tls_loop != loop) &&
      cor__wrong_thread(loop, "cor_stream_from_fd")) {
    close(fd); /* the stream would own it, even on failure */
    errno = -COR_ETHREAD;
    return NULL;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  int type;
  socklen_t tl = sizeof type;
  int kind = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0
                 ? COR__STREAM_SOCK
                 : COR__STREAM_PIPE;
  cor_stream_t *s = cor__stream_new(loop, fd, kind, true);
  if (s)
    cor__stream_track(s, __builtin_return_address(0));
  return s;
}

void cor__stream_close_fd(cor_stream_t *s) {
  if (s->fd_closed)
    return;
  cor__xport_close(s); /* deregistered, what is in flight cancelled */
  close(s->fd);
  s->fd = -1;
  s->fd_closed = true;
  cor__free(s->wbuf);
  s->wbuf = NULL;
  s->wcap = s->wpos = s->wend = 0;
  if (s->wwait)
    cor__wake_embedded(&s->wfut, true, 0);
  if (s->cwait)
    cor__wake_embedded(&s->cfut, true, 0);
}

void cor__stream_release(cor_stream_t *s) {
  if (s->tls != NULL)
    cor__ssl_free(s);
  cor__xport_release(s);
  if (s->rbuf)
    rbuf_put(s->rbuf, s->rcap);
  cor__free(s->wbuf);
  cor__free(s);
}

int cor_stream_close(cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg("cor_stream_close", "s is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_close");
  if (s->closing)
    return COR_ECLOSED;
  if (s->tls != NULL && !s->shut_req && !s->werr && !s->fd_closed)
    cor__ssl_close_notify(s); /* queued before the last flush closes */
  s->closing = true;
  cor__res_untrack(&s->res);
  if (s->rwait)
    cor__wake_embedded(&s->rfut, true, COR_ECLOSED);
  if (wqueued(s) == 0 || s->werr || s->fd_closed)
    cor__stream_close_fd(s);
  else
    cor__xport_kick(s); /* the last byte's flush closes it */
  return 0;
}

int cor_stream_wait_closed(cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg("cor_stream_wait_closed", "s is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_wait_closed");
  if (!s->closing)
    return -EINVAL;
  while (!s->fd_closed) {
    uint64_t d = s->idle_to ? s->last_io + s->idle_to : 0;
    int rc = cor__wait_embedded(s->loop, &s->cfut, &s->cwait, d,
                                "cor_stream_wait_closed",
                                __builtin_return_address(0));
    if (rc == -ETIMEDOUT && s->idle_to &&
        cor__now_ns() < s->last_io + s->idle_to)
      continue; /* bytes moved meanwhile: the idle clock restarted */
    if (rc != 0)
      return rc;
  }
  return 0;
}

void cor_stream_free(cor_stream_t *s) {
  if (s == NULL)
    return;
  COR__CHECK_THREAD_VOID(s->loop, "cor_stream_free");
  if (s->rwait || s->wwait || s->cwait) {
    COR_LOG(COR_LOG_ERROR,
            "cor_stream_free: a task still waits on the stream (fd %d); "
            "leaking it rather than freeing memory in use",
            s->fd);
    return;
  }
  /* Never closed: asyncio's ResourceWarning, while the fd is still open
   * for the report to name its addresses. Freeing closes it anyway. */
  cor__res_release(&s->res);
  cor__stream_close_fd(s);
  if (s->uops > 0) {
    s->zombie = true; /* its cancelled ops complete later: they free it */
    return;
  }
  cor__stream_release(s);
}

/* ------------------------------------------------------------ reading */

static inline uint64_t call_deadline(cor_stream_t *s) {
  return s->read_to ? cor__now_ns() + s->read_to : 0;
}

/* The deadline of one wait: the call's, or the idle time-out's if sooner. */
static inline uint64_t wait_deadline(cor_stream_t *s, uint64_t call_dl) {
  if (s->idle_to) {
    uint64_t i = s->last_io + s->idle_to;
    if (call_dl == 0 || i < call_dl)
      return i;
  }
  return call_dl;
}

/* Buffers at least one more byte (growing toward `want` buffered bytes).
 * Returns 1, 0 at EOF, or a negative code. */
static int more(cor_stream_t *s, size_t want, uint64_t call_dl,
                const char *call, const void *site) {
  for (;;) {
    if (COR_UNLIKELY(s->closing))
      return COR_ECLOSED;
    if (s->rerr)
      return s->rerr;
    int rc;
    if (COR_UNLIKELY(s->tls != NULL)) {
      /* the TLS layer knows the plaintext's EOF (close_notify) */
      rc = cor__ssl_fill(s, want);
    } else {
      if (s->eof && s->npend == 0) /* io_uring: kept bytes go before EOF */
        return 0;
      rc = cor__xport_fill(s, want);
    }
    if (rc != -EAGAIN)
      return rc; /* bytes, EOF or an error */
    /* Nothing now: the back-end is armed and wakes rfut. */
    size_t had = s->rend - s->rpos;
    rbuf_release_if_empty(s);
    uint64_t d = wait_deadline(s, call_dl);
    rc = cor__wait_embedded(s->loop, &s->rfut, &s->rwait, d, call, site);
    if (s->rend - s->rpos > had)
      return 1; /* the back-end copied bytes in meanwhile (io_uring) */
    if (rc == -ETIMEDOUT) {
      uint64_t now = cor__now_ns();
      if ((call_dl == 0 || now < call_dl) &&
          (s->idle_to == 0 || now < s->last_io + s->idle_to))
        continue; /* bytes moved meanwhile: the idle clock restarted */
    }
    if (rc != 0)
      return rc;
    /* woken: EOF, an error, bytes to fetch or a re-arm: the checks above */
  }
}

static inline void take(cor_stream_t *s, void *buf, size_t n) {
  memcpy(buf, s->rbuf + s->rpos, n);
  s->rpos += n;
}

ssize_t cor_stream_read(cor_stream_t *s, void *buf, size_t n) {
  if (s == NULL || (buf == NULL && n > 0))
    return cor__bad_arg("cor_stream_read",
                        s == NULL ? "s is NULL" : "buf is NULL with n > 0");
  COR__CHECK_THREAD(s->loop, "cor_stream_read");
  if (n == 0)
    return 0;
  if (s->rpos == s->rend) {
    int rc = more(s, 0, call_deadline(s), "cor_stream_read", __builtin_return_address(0));
    if (rc <= 0)
      return rc;
  }
  size_t k = s->rend - s->rpos;
  if (k > n)
    k = n;
  take(s, buf, k);
  return (ssize_t)k;
}

ssize_t cor_stream_readexactly(cor_stream_t *s, void *buf, size_t n,
                               size_t *partial) {
  if (s == NULL || (buf == NULL && n > 0))
    return cor__bad_arg("cor_stream_readexactly",
                        s == NULL ? "s is NULL" : "buf is NULL with n > 0");
  COR__CHECK_THREAD(s->loop, "cor_stream_readexactly");
  if (partial)
    *partial = 0;
  uint64_t dl = call_deadline(s);
  size_t got = 0;
  while (got < n) {
    size_t k = s->rend - s->rpos;
    if (k > 0) {
      if (k > n - got)
        k = n - got;
      take(s, (char *)buf + got, k);
      got += k;
      continue;
    }
    int rc = more(s, 0, dl, "cor_stream_readexactly", __builtin_return_address(0));
    if (rc == 0) {
      if (partial)
        *partial = got;
      return COR_EINCOMPLETE;
    }
    if (rc < 0) {
      if (partial)
        *partial = got;
      return rc;
    }
  }
  return (ssize_t)n;
}

static ssize_t readuntil(cor_stream_t *s, const void *sep, size_t seplen,
                         void *buf, size_t cap, size_t *partial,
                         const char *call, const void *site) {
  if (partial)
    *partial = 0;
  size_t lim = s->limit < cap ? s->limit : cap;
  uint64_t dl = 0;
  bool dl_set = false;
  size_t scanned = 0; /* bytes of the buffer known not to start a match */
  for (;;) {
    size_t avail = s->rend - s->rpos;
    if (avail >= seplen) {
      const char *base = s->rbuf + s->rpos;
      const char *p = memmem(base + scanned, avail - scanned, sep, seplen);
      if (p) {
        size_t len = (size_t)(p - base) + seplen;
        if (len > lim)
          return COR_ELIMIT; /* the bytes stay buffered */
        take(s, buf, len);
        return (ssize_t)len;
      }
      scanned = avail - seplen + 1;
    }
    if (avail >= lim)
      return COR_ELIMIT;
    if (!dl_set) {
      dl = call_deadline(s);
      dl_set = true;
    }
    size_t before = s->rpos;
    int rc = more(s, lim, dl, call, site);
    (void)before;
    if (rc > 0) {
      /* the buffer may have been compacted: scanned counts from rpos */
      continue;
    }
    if (rc == 0) {
      avail = s->rend - s->rpos;
      if (avail > cap)
        avail = cap;
      if (avail)
        take(s, buf, avail);
      if (partial)
        *partial = avail;
      return COR_EINCOMPLETE;
    }
    return rc;
  }
}

ssize_t cor_stream_readuntil(cor_stream_t *s, const void *sep, size_t seplen,
                             void *buf, size_t cap, size_t *partial) {
  if (s == NULL || sep == NULL || seplen == 0 || (buf == NULL && cap > 0))
    return cor__bad_arg("cor_stream_readuntil",
                        s == NULL     ? "s is NULL"
                        : sep == NULL ? "sep is NULL"
                        : seplen == 0 ? "seplen is 0"
                                      : "buf is NULL with cap > 0");
  COR__CHECK_THREAD(s->loop, "cor_stream_readuntil");
  return readuntil(s, sep, seplen, buf, cap, partial, "cor_stream_readuntil",
                   __builtin_return_address(0));
}

ssize_t cor_stream_readline(cor_stream_t *s, void *buf, size_t cap) {
  if (s == NULL || (buf == NULL && cap > 0))
    return cor__bad_arg("cor_stream_readline",
                        s == NULL ? "s is NULL" : "buf is NULL with cap > 0");
  COR__CHECK_THREAD(s->loop, "cor_stream_readline");
  size_t part = 0;
  ssize_t n = readuntil(s, "\n", 1, buf, cap, &part, "cor_stream_readline",
                        __builtin_return_address(0));
  if (n == COR_EINCOMPLETE)
    return (ssize_t)part;
  return n;
}

ssize_t cor_stream_peek(cor_stream_t *s, size_t min, const char **data) {
  if (s == NULL || data == NULL)
    return cor__bad_arg("cor_stream_peek",
                        s == NULL ? "s is NULL" : "data is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_peek");
  if (min == 0)
    min = 1;
  if (min > s->limit && min > RBUF_SIZE)
    return COR_ELIMIT;
  uint64_t dl = 0;
  bool dl_set = false;
  while (s->rend - s->rpos < min) {
    if (!dl_set) {
      dl = call_deadline(s);
      dl_set = true;
    }
    int rc = more(s, min, dl, "cor_stream_peek", __builtin_return_address(0));
    if (rc == 0)
      break;
    if (rc < 0)
      return rc;
  }
  *data = s->rbuf ? s->rbuf + s->rpos : "";
  return (ssize_t)(s->rend - s->rpos);
}

void cor_stream_consume(cor_stream_t *s, size_t n) {
  if (s == NULL)
    return;
  COR__CHECK_THREAD_VOID(s->loop, "cor_stream_consume");
  size_t k = s->rend - s->rpos;
  s->rpos += n < k ? n : k;
}

size_t cor_stream_buffered(const cor_stream_t *s) {
  if (s == NULL)
    return 0;
  COR__CHECK_THREAD_VAL(s->loop, "cor_stream_buffered", 0);
  return s->rend - s->rpos;
}

bool cor_stream_at_eof(const cor_stream_t *s) {
  if (s == NULL)
    return false;
  COR__CHECK_THREAD_VAL(s->loop, "cor_stream_at_eof", false);
  return s->eof && s->rend == s->rpos;
}

/* ------------------------------------------------------------ writing */

int cor_stream_write(cor_stream_t *s, const void *buf, size_t n) {
  if (COR_UNLIKELY(s == NULL || (buf == NULL && n > 0)))
    return cor__bad_arg("cor_stream_write",
                        s == NULL ? "s is NULL" : "buf is NULL with n > 0");
  COR__CHECK_THREAD(s->loop, "cor_stream_write");
  if (COR_UNLIKELY(s->werr))
    return s->werr;
  if (COR_UNLIKELY(s->closing || s->shut_req || s->fd_closed))
    return COR_ECLOSED;
  if (n == 0)
    return 0;
  if (COR_UNLIKELY(s->tls != NULL))
    return cor__ssl_write(s, buf, n);
  return cor__xport_write(s, buf, n);
}

int cor_stream_writev(cor_stream_t *s, const struct iovec *iov, int n) {
  if (COR_UNLIKELY(s == NULL || (iov == NULL && n > 0) || n < 0 ||
                   n > IOV_MAX))
    return cor__bad_arg("cor_stream_writev",
                        s == NULL   ? "s is NULL"
                        : n < 0     ? "n is negative"
                        : n > IOV_MAX ? "n is above IOV_MAX"
                                      : "iov is NULL with n > 0");
  COR__CHECK_THREAD(s->loop, "cor_stream_writev");
  if (COR_UNLIKELY(s->werr))
    return s->werr;
  if (COR_UNLIKELY(s->closing || s->shut_req || s->fd_closed))
    return COR_ECLOSED;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    if (iov[i].iov_base == NULL && iov[i].iov_len > 0)
      return cor__bad_arg("cor_stream_writev",
                          "an element has a NULL base and a length");
    if (iov[i].iov_len > SSIZE_MAX - total)
      return cor__bad_arg("cor_stream_writev", "the lengths overflow");
    total += iov[i].iov_len;
  }
  if (total == 0)
    return 0;
  if (COR_UNLIKELY(s->tls != NULL)) {
    for (int j = 0; j < n; j++) {
      int rc = iov[j].iov_len ? cor__ssl_write(s, iov[j].iov_base,
                                               iov[j].iov_len)
                              : 0;
      if (rc != 0)
        return rc;
    }
    return 0;
  }
  int i = 0;
  size_t skip = 0; /* bytes of iov[i] the kernel took already */
  ssize_t w = cor__xport_try_sendv(s, iov, n, total); /* no copy */
  if (w < 0)
    return (int)w;
  if ((size_t)w == total)
    return 0;
  if (w > 0) {
    size_t left = (size_t)w;
    while (left >= iov[i].iov_len) {
      left -= iov[i].iov_len;
      i++;
    }
    skip = left;
  }
  /* The rest goes to the write buffer, in order. */
  for (; i < n; i++, skip = 0) {
    int rc = cor__wbuf_append(s, (const char *)iov[i].iov_base + skip,
                              iov[i].iov_len - skip);
    if (rc != 0)
      return rc;
  }
  cor__xport_kick(s);
  return s->werr;
}

/* The copy path of sendfile: what sendfile(2) cannot take (a pipe stream,
 * a source that is not a regular file), read and written through the
 * stream's buffer, drained every chunk. */
static ssize_t sendfile_copy(cor_stream_t *s, int fd, off_t off, size_t count,
                             size_t done) {
  enum { CHUNK = 64 * 1024 };
  char *buf = cor__malloc(CHUNK);
  if (buf == NULL)
    return -ENOMEM;
  ssize_t rc = 0;
  while (count == 0 || done < count) {
    size_t want = CHUNK;
    if (count && count - done < want)
      want = count - done;
    ssize_t r;
    do
      r = pread(fd, buf, want, off + (off_t)done);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      rc = -errno;
      break;
    }
    if (r == 0)
      break; /* the end of the file */
    if ((rc = cor_stream_write(s, buf, (size_t)r)) != 0 ||
        (rc = cor_stream_drain(s)) != 0)
      break;
    done += (size_t)r;
  }
  cor__free(buf);
  return rc < 0 ? rc : (ssize_t)done;
}

ssize_t cor_stream_sendfile(cor_stream_t *s, int fd, off_t offset,
                            size_t count) {
  if (s == NULL)
    return cor__bad_arg("cor_stream_sendfile", "s is NULL");
  if (fd < 0 || offset < 0)
    return cor__bad_arg("cor_stream_sendfile",
                        fd < 0 ? "fd is negative" : "offset is negative");
  COR__CHECK_THREAD(s->loop, "cor_stream_sendfile");
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  if (s->werr)
    return s->werr;
  if (s->closing || s->shut_req || s->fd_closed)
    return COR_ECLOSED;
  /* What was written before goes first: wait until the queue is empty and
   * no send is in flight. */
  while (wqueued(s) > 0 || (s->uring && s->sending)) {
    uint64_t d = s->idle_to ? s->last_io + s->idle_to : 0;
    int rc = cor__wait_embedded(s->loop, &s->wfut, &s->wwait, d,
                                "cor_stream_sendfile",
                                __builtin_return_address(0));
    if (rc == -ETIMEDOUT && s->idle_to &&
        cor__now_ns() < s->last_io + s->idle_to)
      continue;
    if (rc != 0)
      return rc;
    if (s->werr)
      return s->werr;
    if (s->fd_closed)
      return COR_ECLOSED;
  }
  if (s->kind != COR__STREAM_SOCK || s->tls != NULL)
    return sendfile_copy(s, fd, offset, count, 0); /* TLS: encrypt copies */
  size_t done = 0;
  off_t off = offset;
  while (count == 0 || done < count) {
    size_t want = count ? count - done : (size_t)1 << 30;
    if (want > ((size_t)1 << 30))
      want = (size_t)1 << 30;
    sigset_t old;
    sigpipe_hold(&old);
    ssize_t w;
    do
      w = sendfile(s->fd, fd, &off, want);
    while (w < 0 && errno == EINTR);
    sigpipe_release(&old, w, errno);
    if (w > 0) {
      done += (size_t)w;
      s->last_io = cor__now_ns();
      continue;
    }
    if (w == 0)
      break; /* the end of the file */
    if ((errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) &&
        done == 0)
      return sendfile_copy(s, fd, offset, count, 0); /* not a regular file */
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      s->werr = -errno;
      return s->werr;
    }
    /* The socket's buffer is full: wait until it takes bytes again. */
    uint64_t d = s->idle_to ? s->last_io + s->idle_to : 0;
    int rc = cor__stream_wait_connect(s, d, "cor_stream_sendfile",
                                      __builtin_return_address(0));
    if (rc == -ETIMEDOUT && s->idle_to &&
        cor__now_ns() < s->last_io + s->idle_to)
      continue;
    if (rc != 0)
      return rc;
    if (s->fd_closed || s->closing)
      return COR_ECLOSED;
  }
  return (ssize_t)done;
}

int cor_stream_drain(cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg("cor_stream_drain", "s is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_drain");
  for (;;) {
    if (s->werr)
      return s->werr;
    if (s->fd_closed)
      return s->closing ? COR_ECLOSED : 0;
    if (wqueued(s) <= s->hiwat)
      return 0;
    uint64_t d = s->idle_to ? s->last_io + s->idle_to : 0;
    int rc = cor__wait_embedded(s->loop, &s->wfut, &s->wwait, d,
                                "cor_stream_drain", __builtin_return_address(0));
    if (rc == -ETIMEDOUT && s->idle_to &&
        cor__now_ns() < s->last_io + s->idle_to)
      continue;
    if (rc != 0)
      return rc;
    if (wqueued(s) <= s->lowat && !s->werr)
      return 0;
  }
}

size_t cor_stream_write_buffered(const cor_stream_t *s) {
  if (s == NULL)
    return 0;
  COR__CHECK_THREAD_VAL(s->loop, "cor_stream_write_buffered", 0);
  return wqueued(s);
}

int cor_stream_write_eof(cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg("cor_stream_write_eof", "s is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_write_eof");
  if (s->closing || s->fd_closed || s->shut_req)
    return COR_ECLOSED;
  if (s->kind != COR__STREAM_SOCK)
    return -ENOTSOCK;
  if (s->tls != NULL)
    cor__ssl_close_notify(s); /* TLS 1.3 half-close, then the FIN */
  s->shut_req = true;
  if (wqueued(s) == 0) {
    s->shut_done = true;
    if (shutdown(s->fd, SHUT_WR) < 0)
      return -errno;
  }
  return 0;
}

/* ------------------------------------------------------------ settings */

int cor_stream_set_limit(cor_stream_t *s, size_t limit) {
  if (s == NULL)
    return cor__bad_arg("cor_stream_set_limit", "s is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_set_limit");
  s->limit = limit ? limit : COR_STREAM_DEFAULT_LIMIT;
  return 0;
}

int cor_stream_set_write_buffer_limits(cor_stream_t *s, size_t high,
                                       size_t low) {
  if (s == NULL || low > high)
    return cor__bad_arg("cor_stream_set_write_buffer_limits",
                        s == NULL ? "s is NULL" : "low is above high");
  COR__CHECK_THREAD(s->loop, "cor_stream_set_write_buffer_limits");
  if (high == 0 && low == 0) {
    high = COR_STREAM_DEFAULT_HIGH_WATER;
    low = COR_STREAM_DEFAULT_LOW_WATER;
  }
  s->hiwat = high;
  s->lowat = low;
  return 0;
}

static int to_ns(double sec, uint64_t *out) {
  if (isnan(sec) || sec < 0)
    return -EINVAL;
  *out = cor__duration_ns(sec); /* 0: none */
  return 0;
}

int cor_stream_set_timeouts(cor_stream_t *s, double read_timeout,
                            double idle_timeout) {
  uint64_t r, i;
  if (s == NULL || to_ns(read_timeout, &r) || to_ns(idle_timeout, &i))
    return cor__bad_arg("cor_stream_set_timeouts",
                        s == NULL ? "s is NULL"
                                  : "a timeout is negative or NaN");
  COR__CHECK_THREAD(s->loop, "cor_stream_set_timeouts");
  s->read_to = r;
  s->idle_to = i;
  return 0;
}

int cor_stream_fd(const cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg("cor_stream_fd", "s is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_fd");
  return s->fd;
}

int cor_stream_sockname(const cor_stream_t *s, struct sockaddr *sa,
                        unsigned *len) {
  if (s == NULL || sa == NULL || len == NULL)
    return cor__bad_arg("cor_stream_sockname", s == NULL    ? "s is NULL"
                                               : sa == NULL ? "sa is NULL"
                                                            : "len is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_sockname");
  socklen_t l = *len;
  if (getsockname(s->fd, sa, &l) < 0)
    return -errno;
  *len = l;
  return 0;
}

int cor_stream_peername(const cor_stream_t *s, struct sockaddr *sa,
                        unsigned *len) {
  if (s == NULL || sa == NULL || len == NULL)
    return cor__bad_arg("cor_stream_peername", s == NULL    ? "s is NULL"
                                               : sa == NULL ? "sa is NULL"
                                                            : "len is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_peername");
  socklen_t l = *len;
  if (getpeername(s->fd, sa, &l) < 0)
    return -errno;
  *len = l;
  return 0;
}
