/* SPDX-License-Identifier: MIT */
/* The io_uring side of a loop (core/uring.c), for core/stream_uring.c.
 * Internal; owner thread only. */
#ifndef CORIO_CORE_URING_H
#define CORIO_CORE_URING_H

#include "base/base.h"

#include <liburing.h>

/* One pending io_uring operation (core/uring.c): embedded in its owner, the
 * SQE's user_data. The callback runs on the loop's thread when its
 * completion is reaped. */
typedef struct cor__uop {
  void (*cb)(struct cor__uop *op, int res, unsigned flags);
  /* Completes at submission as a rule (a send to a socket with room): not
   * an arrival, so the coalescing neither waits for it nor counts it. */
  bool quick;
} cor__uop;
/* core/uring.c: the loop's wait when it has a ring (the epoll fd is one of
 * the ring's polls): submits, waits, runs completions and epoll events.
 * Returns how many there were. */
int cor__uring_wait(struct cor_loop *loop, int64_t timeout_ns);
/* Cancels what is in flight, runs its callbacks, frees the ring. */
void cor__uring_close(struct cor_loop *loop);
/* Cross-thread callbacks ran: the next wait asks for one completion, so
 * a loop that keeps receiving posts does not hold them while it gathers a
 * batch (only the first post after a quiet spell may wait). */
void cor__uring_posted(struct cor_loop *loop);
/* Unsubmitted SQEs: the loop does not spin before it submits them. */
bool cor__uring_pending(const struct cor_loop *loop);

#define COR__URING_BUF (16u * 1024u) /* provided buffer size: one recv's most */
#define COR__URING_BGID 0
#define COR__URING_TAG_IGNORE 2ull /* user_data of ops whose result is unused */


typedef struct cor__uring {
  struct io_uring ring;
  unsigned features;
  unsigned wait_nr;  /* completions the next wait asks for (adaptive) */
  unsigned inflight; /* ops submitted whose completion is not reaped */
  unsigned quick;    /* quick ops (sends, cancels) queued since the enter */
  bool epoll_armed;  /* the multishot poll on the epoll fd is armed */
  bool epoll_hot;    /* epoll may have events: read it before sleeping */
  bool closing;      /* the loop closes: callbacks only release memory */
  bool enter_err_logged;
  struct io_uring_buf_ring *br;
  size_t br_size;
  char *bufs;
  pthread_t owner;            /* SINGLE_ISSUER: the only thread that may enter */
  struct cor_stream *streams; /* the socket streams on this ring */
  struct cor__file_op *file_ops; /* core/file.c's ops in flight on it */
  struct cor__uring *lost_next;
} cor__uring;

/* The loop's ring, made on first use (on the loop's thread only); NULL when
 * io_uring is off (CORIO_IO=epoll, cor_loop_opts.io_uring < 0) or not
 * available here, or when called from another thread. */
cor__uring *cor__uring_get(struct cor_loop *loop);
/* The ring for a socket stream: cor__uring_get when the process's socket
 * back-end is io_uring (cor__io_backend_auto), else NULL. Says once per
 * loop, at DEBUG, which back-end its socket streams use and why. */
cor__uring *cor__uring_sockets(struct cor_loop *loop);
/* A free SQE (submitting queued ones when the queue is full); NULL only if
 * the kernel takes none. The caller sets its user_data to a cor__uop and
 * counts it in inflight; and in quick if it will most likely complete at
 * submission (its op has `quick` set; cancels too). */
struct io_uring_sqe *cor__uring_sqe(cor__uring *u);
/* core/stream_uring.c: the ring's thread is gone (the loop moved to another
 * thread): every stream on it fails from now on with COR_ETHREAD, its
 * waiters woken, instead of waiting for completions that cannot come. */
void cor__streams_ring_lost(cor__uring *u);
/* core/file.c: the same for the file operations in flight on u: each
 * returns COR_ETHREAD to its task at once (its completion can no longer
 * be reaped: the ring defers it to its lost thread). */
void cor__file_ops_ring_lost(cor__uring *u);

/* The process's socket back-end (core/uring.c, chosen once: CORIO_IO, or a
 * start-up probe of the system call cost): 1 io_uring where the kernel
 * allows it, -1 epoll. _reset forgets the choice (tests only). */
int cor__io_backend_auto(void);
void cor__io_backend_reset(void);

/* Submits the queued SQEs now (no wait). */
void cor__uring_submit(cor__uring *u);
/* Provided buffer bid's bytes; giving it back to the kernel. */
const char *cor__uring_buf(cor__uring *u, unsigned bid);
void cor__uring_buf_put(cor__uring *u, unsigned bid);

#endif
