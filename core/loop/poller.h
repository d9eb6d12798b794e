/* SPDX-License-Identifier: MIT */
/* The poller contract: how a loop waits for I/O, whichever back-end is
 * under it. core/loop/loop.c calls these and nothing else of a back-end.
 *
 *   init / fini   cor__poll_init, cor__poll_fini: the epoll set (always
 *                 made: the loop's own fds, level-triggered readers and
 *                 edge-triggered streams register there) and, once a
 *                 stream asks for one, the io_uring ring (core/loop/uring.c),
 *                 which then polls the epoll fd as one of its operations.
 *   interest      cor__poll_set(fd, old, mask): arm, change or (mask 0)
 *                 disarm an fd; always through the epoll set, whichever
 *                 back-end waits.
 *   wait          cor__poll_wait(timeout_ns): -1 forever, 0 no wait, else
 *                 at most that long (never woken early); submits what the
 *                 ring has queued, dispatches ready fds to
 *                 cor__loop_io_ready and completions to their cor__uop
 *                 callbacks, ends the idle period (cor__loop_awake) before
 *                 the first one runs. Returns how many events, or a negated
 *                 errno (EINTR is 0).
 *   pending       cor__poll_pending: queued work the back-end has not
 *                 handed to the kernel yet (unsubmitted SQEs): the loop
 *                 neither spins nor skips a poll while there is some.
 *   posted        cor__poll_posted: cross-thread callbacks ran; a back-end
 *                 that gathers completions stops gathering for the next
 *                 wait (io_uring's adaptive wait_nr).
 *   wake          cor__poll_wake: from any thread, ends a wait in progress
 *                 (the loop's eventfd, registered in the epoll set).
 *
 * The back-ends: core/loop/poll_epoll.c (cor__poller_*) and core/loop/uring.c
 * (cor__uring_*). The dispatch is a test of loop->uring in these inline
 * functions, so the compiler sees one well-predicted branch per call and no
 * indirect call (measured: an ops table would cost an indirect call on the
 * busy loop's every iteration for cor__poll_pending). */
#ifndef CORIO_CORE_LOOP_POLLER_H
#define CORIO_CORE_LOOP_POLLER_H

#include "loop/loop.h"
#include "loop/poll_epoll.h"
#include "loop/uring.h"

#include <sys/eventfd.h>
#include <unistd.h>

static inline int cor__poll_init(struct cor_loop *loop) {
  return cor__poller_init(&loop->poller);
}

/* Safe on a half-made loop: the ring first (its epoll poll is cancelled),
 * then the epoll set. */
static inline void cor__poll_fini(struct cor_loop *loop) {
  cor__uring_close(loop);
  cor__poller_close(&loop->poller);
}

static inline int cor__poll_set(struct cor_loop *loop, int fd, unsigned old,
                                unsigned mask) {
  return cor__poller_set(&loop->poller, fd, old, mask);
}

static inline int cor__poll_wait(struct cor_loop *loop, int64_t timeout_ns) {
  if (loop->uring != NULL)
    return cor__uring_wait(loop, timeout_ns);
  return cor__poller_wait(&loop->poller, loop, timeout_ns);
}

static inline bool cor__poll_pending(const struct cor_loop *loop) {
  return loop->uring != NULL && cor__uring_pending(loop);
}

static inline void cor__poll_posted(struct cor_loop *loop) {
  if (loop->uring != NULL)
    cor__uring_posted(loop);
}

/* Any thread; the caller has won the right to wake (see the Dekker in
 * cor_call_soon_threadsafe). EAGAIN means the counter is already non-zero:
 * the loop will wake anyway. */
static inline void cor__poll_wake(struct cor_loop *loop) {
  uint64_t one = 1;
  ssize_t w = write(loop->wakefd, &one, sizeof one);
  (void)w;
}

#endif
