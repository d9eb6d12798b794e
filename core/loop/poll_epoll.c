/* SPDX-License-Identifier: MIT */
/* The epoll backend of the poller contract (core/internal.h). Level-
 * triggered, as asyncio's add_reader; timeouts in nanoseconds through
 * epoll_pwait2 so the loop wakes exactly when its next timer is due, with a
 * millisecond epoll_wait (rounded up, never early) where the kernel lacks it. */
#include "loop/loop.h"
#include "loop/poll_epoll.h"

#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

static int have_pwait2 = 1; /* cleared on ENOSYS */

int cor__poller_init(cor__poller *p) {
  p->fd = epoll_create1(EPOLL_CLOEXEC);
  return p->fd < 0 ? -errno : 0;
}

void cor__poller_close(cor__poller *p) {
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
}

int cor__poller_set(cor__poller *p, int fd, unsigned old, unsigned mask) {
  struct epoll_event ev = {0};
  ev.data.fd = fd;
  if (mask & COR__POLL_IN)
    ev.events |= EPOLLIN;
  if (mask & COR__POLL_OUT)
    ev.events |= EPOLLOUT;
  if (mask & COR__POLL_ET)
    ev.events |= EPOLLET | EPOLLRDHUP | EPOLLPRI; /* PRI: see COR__POLL_HUP */
  int op = mask == 0 ? EPOLL_CTL_DEL : old == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(p->fd, op, fd, &ev) < 0) {
    /* The fd was closed and reopened behind our back: re-add it. */
    if (op == EPOLL_CTL_MOD && errno == ENOENT &&
        epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev) == 0)
      return 0;
    if (op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF))
      return 0; /* already gone with its fd */
    return -errno;
  }
  return 0;
}

int cor__poller_wait(cor__poller *p, struct cor_loop *loop, int64_t timeout_ns) {
  struct epoll_event evs[MAX_EVENTS];
  int n;
  if (timeout_ns > 0 && have_pwait2) {
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                          .tv_nsec = timeout_ns % 1000000000};
    n = epoll_pwait2(p->fd, evs, MAX_EVENTS, &ts, NULL);
    if (n < 0 && errno == ENOSYS) {
      have_pwait2 = 0;
      return cor__poller_wait(p, loop, timeout_ns);
    }
  } else {
    int ms = timeout_ns < 0 ? -1
             : timeout_ns == 0
                 ? 0
                 /* round up: waking a little late is harmless, waking early
                  * would spin until the deadline */
                 : (int)((timeout_ns + 999999) / 1000000 > 0x7fffffff
                             ? 0x7fffffff
                             : (timeout_ns + 999999) / 1000000);
    n = epoll_wait(p->fd, evs, MAX_EVENTS, ms);
  }
  if (n < 0)
    return errno == EINTR ? 0 : -errno;
  if (n > 0) /* the loop's idle period ends before the callbacks run */
    cor__loop_awake(loop);
  for (int i = 0; i < n; i++) {
    unsigned e = 0;
    if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP | EPOLLPRI))
      e |= COR__POLL_IN;
    if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
      e |= COR__POLL_OUT;
    if (evs[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP | EPOLLPRI))
      e |= COR__POLL_HUP;
    cor__loop_io_ready(loop, evs[i].data.fd, e);
  }
  return n;
}
