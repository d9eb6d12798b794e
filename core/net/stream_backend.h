/* SPDX-License-Identifier: MIT */
/* The byte-transport contract of streams. Internal.
 *
 * core/stream.c holds the public stream calls and the buffers, written
 * once; a back-end moves the bytes between those buffers and the kernel:
 * core/stream_epoll.c (recv/send on an edge-triggered registration, any
 * fd) and core/stream_uring.c (multishot recv on provided buffers, sends
 * and polls on the loop's ring, socket streams of a loop with a ring). A
 * stream picks its back-end once, in cor__stream_new (s->uring), and the
 * inline helpers at the end dispatch on that flag: a predictable two-way
 * branch and a direct call, no indirect call on the hot paths.
 *
 * What a back-end promises (all on the stream's loop thread):
 * - attach(s): takes the new stream (registers it, sets its callbacks);
 *   0, or -errno (io_uring: -ENODEV when the loop has no ring: the stream
 *   then tries epoll).
 * - fill(s, want): brings more received bytes into the read buffer
 *   (cor__rbuf_room / cor__rbuf_append, growing toward `want` buffered
 *   bytes) without waiting: 1 bytes were added, 0 EOF (s->eof set), <0 an
 *   error (s->rerr set when sticky), or -EAGAIN nothing now, in which case
 *   the back-end is armed: when bytes, EOF or an error come it wakes
 *   s->rfut if s->rwait. It may also append bytes itself while the task
 *   waits (io_uring copies on completion), which stream.c sees as a
 *   longer buffer after the wait. The dispatch answers epoll's -EAGAIN
 *   itself when no edge came since the last short read (!s->readable).
 * - write(s, p, n): takes n bytes: sends what the kernel takes now and
 *   queues the rest in the write buffer (cor__wbuf_append), or queues all
 *   and starts a send; 0, or the sticky write error.
 * - try_sendv(s, iov, n, total): hands what it can of a vector (total
 *   bytes) to the kernel at once, without copying, when nothing is queued:
 *   bytes taken (0: cannot now, or never: io_uring), <0 the error (set in
 *   s->werr).
 * - kick(s): starts sending what the write buffer holds, if it can now.
 * - wait_writable(s, deadline): in a task, waits until the fd is writable
 *   (a connect finished, sendfile's socket has room); -ETIMEDOUT.
 * - close(s): before the fd is closed: deregisters, cancels what is in
 *   flight.
 * - release(s): frees what the back-end holds, before the stream is freed.
 * When bytes left the write buffer (a flush from an edge, a send's
 * completion) the back-end calls cor__stream_after_flush: the deferred
 * shutdown, close and the drain's wake-up live there, once.
 *
 * TLS (issue 14) goes between the two: a layer with the same contract on
 * top (its fill runs SSL_read over ciphertext its transport's fill
 * gathered, its write SSL_write into the transport's write; WANT_READ and
 * WANT_WRITE become the transport's fill/-EAGAIN and kick/wait_writable;
 * the handshake is a fill/kick loop before the first byte), chosen with
 * one more flag in these helpers; see ARCHITECTURE.md (Streams). */
#ifndef CORIO_CORE_STREAM_BACKEND_H
#define CORIO_CORE_STREAM_BACKEND_H

#include "net/stream_internal.h"

#include <sys/uio.h>

#define COR__WBUF_MIN (4u * 1024u) /* the write buffer's first capacity */

/* --- core/stream.c: the buffers and the shared steps, for the back-ends */

/* Room for at least one more byte at the end of the read buffer, growing
 * it toward `want` buffered bytes; -ENOMEM. */
int cor__rbuf_room(cor_stream_t *s, size_t want);
/* Appends n received bytes to the read buffer; -ENOMEM. */
int cor__rbuf_append(cor_stream_t *s, const char *p, size_t n);
/* Gives an empty read buffer back (to the per-thread cache). */
void cor__rbuf_release_if_empty(cor_stream_t *s);
/* Appends n bytes to the write buffer; -ENOMEM. */
int cor__wbuf_append(cor_stream_t *s, const char *p, size_t n);
/* After the write buffer moved or an error: the deferred shutdown, close
 * and the drain's wake-up. */
void cor__stream_after_flush(cor_stream_t *s);
/* Closes the stream's fd (once): the back-end's close, then close(2). */
void cor__stream_close_fd(cor_stream_t *s);
/* Frees what the stream holds and the stream itself. */
void cor__stream_release(cor_stream_t *s);
/* write(2) on a pipe, with SIGPIPE held blocked around it (a reader gone
 * is EPIPE, not a signal). */
ssize_t cor__pipe_write(int fd, const void *p, size_t n);

/* --- core/stream_epoll.c */
int cor__sep_attach(cor_stream_t *s);
int cor__sep_fill(cor_stream_t *s, size_t want);
int cor__sep_write(cor_stream_t *s, const void *p, size_t n);
ssize_t cor__sep_try_sendv(cor_stream_t *s, const struct iovec *iov, int n,
                           size_t total);
void cor__sep_kick(cor_stream_t *s);
int cor__sep_wait_writable(cor_stream_t *s, uint64_t deadline_ns,
                           const char *call, const void *site);
void cor__sep_close(cor_stream_t *s);

/* --- core/stream_uring.c (cor__streams_ring_lost: core/uring.h) */
int cor__sur_attach(cor_stream_t *s);
int cor__sur_fill(cor_stream_t *s, size_t want);
int cor__sur_write(cor_stream_t *s, const void *p, size_t n);
void cor__sur_kick(cor_stream_t *s);
int cor__sur_wait_writable(cor_stream_t *s, uint64_t deadline_ns,
                           const char *call, const void *site);
void cor__sur_close(cor_stream_t *s);
void cor__sur_release(cor_stream_t *s);

/* Gives a read-buffer-type buffer (from cor__rbuf_room) back. */
void cor__rbuf_drop(char *b, size_t cap);

/* --- core/tls.c: the TLS layer on top of a transport (s->tls set) */
/* Plaintext into the read buffer: fill's contract. */
int cor__ssl_fill(cor_stream_t *s, size_t want);
/* Encrypts n bytes and hands the records to the transport's write. */
int cor__ssl_write(cor_stream_t *s, const void *p, size_t n);
/* Received ciphertext from a transport outside its fill (io_uring). */
int cor__ssl_cipher_in(cor_stream_t *s, const char *p, size_t n);
/* Queues close_notify (once, after a finished handshake). */
void cor__ssl_close_notify(cor_stream_t *s);
/* Frees the TLS state (cor__stream_release). */
void cor__ssl_free(cor_stream_t *s);

/* --- dispatch */
static inline int cor__xport_fill(cor_stream_t *s, size_t want) {
  if (s->uring)
    return cor__sur_fill(s, want);
  /* epoll's "nothing until the next edge" without a call: every read that
   * waits asks once before and once after its wait */
  return s->readable ? cor__sep_fill(s, want) : -EAGAIN;
}
static inline int cor__xport_write(cor_stream_t *s, const void *p, size_t n) {
  return s->uring ? cor__sur_write(s, p, n) : cor__sep_write(s, p, n);
}
static inline ssize_t cor__xport_try_sendv(cor_stream_t *s,
                                           const struct iovec *iov, int n,
                                           size_t total) {
  return s->uring ? 0 : cor__sep_try_sendv(s, iov, n, total);
}
static inline void cor__xport_kick(cor_stream_t *s) {
  if (s->uring)
    cor__sur_kick(s);
  else
    cor__sep_kick(s);
}
static inline int cor__xport_wait_writable(cor_stream_t *s,
                                           uint64_t deadline_ns,
                                           const char *call,
                                           const void *site) {
  return s->uring ? cor__sur_wait_writable(s, deadline_ns, call, site)
                  : cor__sep_wait_writable(s, deadline_ns, call, site);
}
static inline void cor__xport_close(cor_stream_t *s) {
  if (s->uring)
    cor__sur_close(s);
  else
    cor__sep_close(s);
}
static inline void cor__xport_release(cor_stream_t *s) {
  if (s->uring)
    cor__sur_release(s);
}

#endif
