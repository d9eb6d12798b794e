/* SPDX-License-Identifier: MIT */
/* The epoll back-end of the poller contract (core/loop/poll_epoll.c; the contract is loop/poller.h). Not installed. */
#ifndef CORIO_CORE_LOOP_POLL_EPOLL_H
#define CORIO_CORE_LOOP_POLL_EPOLL_H

#include "base/base.h"

/* One poller contract; core/loop/poll_epoll.c implements it. Events are reported
 * to cor__loop_io_ready. */
#define COR__POLL_IN 1u
#define COR__POLL_OUT 2u
/* Edge-triggered registration (streams, core/net/stream.c): reported once per
 * readiness change, so the owner reads/writes until EAGAIN or a short count
 * and never re-arms. Only set through cor__loop_io_et_add. */
#define COR__POLL_ET 4u
/* Reported with IN for edge-triggered fds when the peer hung up, the fd has
 * an error, or TCP urgent data is pending (EPOLLRDHUP/HUP/ERR/PRI): a short
 * read then does not mean "drained" (no further edge will come for the EOF;
 * recv stops short at the urgent mark with bytes queued behind it), so the
 * reader reads until EAGAIN or EOF. Edge callbacks read it from
 * loop->io_events. */
#define COR__POLL_HUP 8u
typedef struct cor__poller {
  int fd;
} cor__poller;
int cor__poller_init(cor__poller *p);
void cor__poller_close(cor__poller *p);
/* Sets the interest mask of fd (0 removes it); `old` is the previous mask.
 * Returns 0 or a negated errno. */
int cor__poller_set(cor__poller *p, int fd, unsigned old, unsigned mask);
/* Waits at most timeout_ns (-1 = forever, 0 = no wait). Calls
 * cor__loop_io_ready for each ready fd. Returns the number of events, or a
 * negated errno (EINTR is reported as 0). */
int cor__poller_wait(cor__poller *p, struct cor_loop *loop, int64_t timeout_ns);
void cor__loop_io_ready(struct cor_loop *loop, int fd, unsigned events);

#endif
