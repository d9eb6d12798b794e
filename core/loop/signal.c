/* SPDX-License-Identifier: MIT */
/* Signals on any loop. Each loop reads the signals it owns from one
 * signalfd, with those signals blocked in the loop's thread. A process-wide
 * signal is delivered by the kernel to any thread that does not block it, so
 * corio also installs a tiny handler that redirects the signal to the owning
 * loop's thread with tgkill (async-signal-safe), where it is blocked and
 * therefore pending for the signalfd. That makes a handler added on any loop
 * work whichever thread the kernel picks. A global table (one owner loop per
 * signal) refuses a second loop with -EBUSY. */
#include "base/base.h"
#include "base/error.h"
#include "loop/loop.h"
#include "loop/loop_debug.h"
#include "loop/poll_epoll.h"
#include "loop/signal.h"

#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NSIG_MAX 65

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  cor_loop_t *owner;
  struct sigaction old;
  bool was_blocked; /* in the owner thread's mask before we blocked it */
} sigs[NSIG_MAX];
/* Read by the async handler: the owner thread's tid (0 = none). */
static volatile pid_t sig_tid[NSIG_MAX];

static void redirect(int signum) {
  int saved = errno;
  pid_t tid = sig_tid[signum];
  if (tid != 0 && tid != (pid_t)syscall(SYS_gettid))
    syscall(SYS_tgkill, getpid(), tid, signum);
  errno = saved;
}

static int sigfd_update(cor_loop_t *loop) {
  if (sigisemptyset(&loop->sigmask)) {
    if (loop->sigfd >= 0) {
      cor__poller_set(&loop->poller, loop->sigfd, COR__POLL_IN, 0);
      close(loop->sigfd);
      loop->sigfd = -1;
      loop->nio--;
    }
    return 0;
  }
  int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (loop->sigfd < 0) {
    int err = cor__poller_set(&loop->poller, fd, 0, COR__POLL_IN);
    if (err) {
      close(fd);
      return err;
    }
    loop->sigfd = fd;
    loop->nio++;
  }
  return 0;
}

int cor_loop_add_signal_handler(cor_loop_t *loop, int signum, cor_callback cb,
                                void *arg) {
  if (loop == NULL || cb == NULL || signum <= 0 || signum >= NSIG_MAX ||
      signum == SIGKILL || signum == SIGSTOP)
    return cor__bad_arg("cor_loop_add_signal_handler",
                        loop == NULL ? "loop is NULL"
                        : cb == NULL ? "cb is NULL"
                                     : "signum is out of range or uncatchable");
  COR__CHECK_THREAD(loop, "cor_loop_add_signal_handler");
  if (loop->closed)
    return COR_ECLOSED;
  int err = 0;
  pthread_mutex_lock(&sig_lock);
  if (sigs[signum].owner == loop) {
    loop->sigcb[signum] = cb; /* replace, as asyncio does */
    loop->sigarg[signum] = arg;
    goto out;
  }
  if (sigs[signum].owner != NULL) {
    err = -EBUSY;
    goto out;
  }
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, signum);
  pthread_sigmask(SIG_BLOCK, &one, &old);
  sigs[signum].was_blocked = sigismember(&old, signum);
  sigaddset(&loop->sigmask, signum);
  if ((err = sigfd_update(loop)) != 0) {
    sigdelset(&loop->sigmask, signum);
    if (!sigs[signum].was_blocked)
      pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    goto out;
  }
  struct sigaction sa = {0};
  sa.sa_handler = redirect;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  sig_tid[signum] = (pid_t)syscall(SYS_gettid);
  if (sigaction(signum, &sa, &sigs[signum].old) != 0) {
    err = -errno;
    sig_tid[signum] = 0;
    sigdelset(&loop->sigmask, signum);
    sigfd_update(loop);
    if (!sigs[signum].was_blocked)
      pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    goto out;
  }
  sigs[signum].owner = loop;
  loop->sigcb[signum] = cb;
  loop->sigarg[signum] = arg;
out:
  pthread_mutex_unlock(&sig_lock);
  return err;
}

/* With sig_lock held. */
static void remove_locked(cor_loop_t *loop, int signum) {
  sigaction(signum, &sigs[signum].old, NULL);
  sig_tid[signum] = 0;
  sigs[signum].owner = NULL;
  loop->sigcb[signum] = NULL;
  sigdelset(&loop->sigmask, signum);
  sigfd_update(loop);
  if (!sigs[signum].was_blocked) {
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signum);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
  }
}

int cor_loop_remove_signal_handler(cor_loop_t *loop, int signum) {
  if (loop == NULL || signum <= 0 || signum >= NSIG_MAX)
    return cor__bad_arg("cor_loop_remove_signal_handler",
                        loop == NULL ? "loop is NULL"
                                     : "signum is out of range");
  COR__CHECK_THREAD(loop, "cor_loop_remove_signal_handler");
  if (loop->closed)
    return COR_ECLOSED;
  int err = 0;
  pthread_mutex_lock(&sig_lock);
  if (sigs[signum].owner != loop)
    err = -ENOENT;
  else
    remove_locked(loop, signum);
  pthread_mutex_unlock(&sig_lock);
  return err;
}

void cor__signal_read(cor_loop_t *loop) {
  struct signalfd_siginfo si[16];
  for (;;) {
    ssize_t n = read(loop->sigfd, si, sizeof si);
    if (n <= 0)
      return;
    for (size_t k = 0; k < (size_t)n / sizeof si[0]; k++) {
      int s = (int)si[k].ssi_signo;
      if (s > 0 && s < NSIG_MAX && loop->sigcb[s]) {
        /* Debug mode times it like any callback; that also keeps its time
         * out of the poll's, which dispatches us (slow polls). */
        if (COR_LIKELY(!loop->debug))
          loop->sigcb[s](loop->sigarg[s]);
        else
          cor__debug_run_cb(loop, loop->sigcb[s], loop->sigarg[s], NULL);
        loop->ncb++;
        if (loop->sigfd < 0)
          return; /* the callback removed the last handler */
      }
    }
  }
}

void cor__signal_close(cor_loop_t *loop) {
  pthread_mutex_lock(&sig_lock);
  for (int s = 1; s < NSIG_MAX; s++)
    if (sigs[s].owner == loop)
      remove_locked(loop, s);
  pthread_mutex_unlock(&sig_lock);
  if (loop->sigfd >= 0) {
    close(loop->sigfd);
    loop->sigfd = -1;
  }
}
