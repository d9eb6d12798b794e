/* SPDX-License-Identifier: MIT */
/* The io_uring side of a loop: socket streams complete their reads and
 * writes here instead of making one recv and one send system call per
 * message (core/stream_uring.c).
 *
 * Why: on this kind of machine every kernel entry costs ~1 us, and a
 * request/response server made two of them per request (recv, send) plus
 * its share of epoll_wait. With a ring, the loop's one io_uring_enter per
 * iteration submits every send and re-armed recv the iteration produced and
 * collects every completion that came in meanwhile.
 *
 * How it fits the loop:
 *   - The ring is made lazily, on the loop's thread, when the first socket
 *     stream needs it: a loop that never has a stream never pays for one.
 *     SINGLE_ISSUER | DEFER_TASKRUN: only the loop's thread submits, and
 *     the kernel runs completion work inside that thread's io_uring_enter,
 *     in one batch, instead of interrupting it whenever a packet lands.
 *   - Everything else (timers, the cross-thread eventfd, signals, fds of
 *     add_reader, listening sockets) stays in epoll. The ring watches the
 *     epoll fd with a multishot poll, so the loop sleeps in io_uring_enter
 *     alone; when that poll fires (or the last epoll_wait found events,
 *     since level-triggered fds raise no new wake-up) the loop reads epoll
 *     with a zero timeout.
 *   - Reads use a ring of provided buffers (one pool per loop): a stream's
 *     multishot recv, armed by its first read, completes once per arrival
 *     with a buffer the kernel picked; the bytes are copied into the
 *     stream's buffer and the provided one given back at once (or kept for
 *     the next read if no task waits; a stream that keeps too many has its
 *     recv cancelled until it reads again). An idle connection holds no
 *     buffer.
 *   - Coalescing (cor_loop_opts.io_coalesce_seconds, 500 us by default,
 *     CORIO_IO_COALESCE_US in the environment): under load the loop
 *     asks the kernel for several completions per wait, with the kernel's
 *     minimum-wait time-out (IORING_FEAT_MIN_TIMEOUT): it returns as soon
 *     as the completions asked for are there, and after the coalescing time
 *     with whatever came (at least one). Only arrivals count (recvs, epoll
 *     events, a connect's poll): sends and cancels complete at submission
 *     as a rule ("quick" ops), so the kernel is asked for that many more,
 *     and that one wait is bounded in case a send did not complete (a full
 *     socket). How many arrivals to ask for adapts: it doubles while a
 *     wait finds more than it asked for and falls to what came when the
 *     time-out cut a wait short, so a lone request/response peer (one
 *     arrival per wait) is never held back, and a loop serving many
 *     connections runs them in batches. A wait for more than one arrival
 *     can hold a cross-thread wake-up for up to the coalescing time (the
 *     kernel counts the eventfd's completion like any other); after an
 *     iteration that ran cross-thread callbacks the next wait asks for one
 *     arrival (cor__uring_posted), so only the first post of a burst can.
 *
 * Ops: a cor__uop embedded in its owner is each SQE's user_data; its
 * callback runs on the loop's thread when the CQE is reaped. */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/log.h"
#include "loop/loop.h"
#include "loop/poll_epoll.h"
#include "loop/uring.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SQ_ENTRIES 1024u
#define CQ_ENTRIES 8192u
#define BUF_COUNT 256u /* a power of two */
#define MAX_WAIT_NR 64u
#define TAG_EPOLL 1ull /* user_data of the epoll fd's poll */
#define TAG_IGNORE COR__URING_TAG_IGNORE

#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1u << 15)
#endif

/* The socket back-end of the process, chosen once (ARCHITECTURE.md, "The
 * socket back-end"): CORIO_IO=epoll or CORIO_IO=io_uring pins it; unset (or
 * CORIO_IO=auto) the first loop that wants a ring measures what a system
 * call costs here and takes io_uring only where a kernel entry is dear
 * enough that saving the recv/send calls pays for the ring's own costs.
 * Measured: on a KVM Xeon guest where a syscall costs ~110 ns, epoll
 * served 12% more http_hello requests than io_uring; on an AMD EPYC guest
 * where the probe reads ~220 ns, io_uring served as many or more on a
 * quiet machine, for 15-18% less CPU per request (perf/README.md). The
 * threshold sits between the two. CORIO_IO_SYSCALL_NS=N stands in for the
 * measurement (tests). */
#define PROBE_CALLS 16
#define PROBE_ROUNDS 8
#define URING_MIN_SYSCALL_NS 160

static int io_mode;         /* 0 unread, 1 allowed, -1 off */
static const char *io_why = ""; /* why: set before io_mode, atomically */
static bool io_all_off; /* CORIO_IO=epoll: files too; set before io_mode */

/* The cheapest of PROBE_ROUNDS rounds of PROBE_CALLS getppid calls: the
 * minimum, so a preemption or a migration during the probe does not count.
 * 128 calls: ~140 us on the dearest machine seen, ~15 us on the cheapest. */
static unsigned probe_syscall_ns(void) {
  uint64_t best = UINT64_MAX;
  for (int r = 0; r < PROBE_ROUNDS; r++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < PROBE_CALLS; i++)
      (void)syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u +
                  (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
    if (ns < best)
      best = ns;
  }
  return (unsigned)(best / PROBE_CALLS);
}

static int env_mode(void) {
  int m = cor__load_acq(&io_mode);
  if (COR_LIKELY(m != 0))
    return m;
  const char *e = getenv("CORIO_IO");
  const char *why;
  unsigned ns = 0;
  if (e && strcmp(e, "epoll") == 0) {
    m = -1;
    why = "CORIO_IO=epoll";
    cor__store_rlx(&io_all_off, true);
  } else if (e && (strcmp(e, "io_uring") == 0 || strcmp(e, "uring") == 0)) {
    m = 1;
    why = "CORIO_IO=io_uring";
  } else {
    const char *f = getenv("CORIO_IO_SYSCALL_NS");
    ns = f && f[0] ? (unsigned)strtoul(f, NULL, 10) : probe_syscall_ns();
    m = ns >= URING_MIN_SYSCALL_NS ? 1 : -1;
    why = m > 0 ? "auto: system calls are dear here"
                : "auto: system calls are cheap here";
  }
  /* Two loops may race here; the first one's choice stays (they can only
   * differ when the probe straddles the threshold). */
  int zero = 0;
  cor__store_rlx(&io_why, why);
  if (cor__cas_ar_acq(&io_mode, &zero, m)) {
    cor__store_rel(&io_why, why);
    COR_LOG(COR_LOG_DEBUG,
            "socket back-end: %s (%s; syscall %u ns, io_uring from %u ns)",
            m > 0 ? "io_uring" : "epoll", why, ns, URING_MIN_SYSCALL_NS);
  } else {
    m = zero;
  }
  return m;
}

int cor__io_backend_auto(void) { return env_mode(); }

void cor__io_backend_reset(void) {
  cor__store_rel(&io_mode, 0);
  cor__store_rlx(&io_all_off, false);
}

static void ring_free(cor__uring *u) {
  /* the ring first: the kernel lets go of the buffers it was given */
  io_uring_queue_exit(&u->ring);
  if (u->br)
    munmap(u->br, u->br_size);
  cor__free(u->bufs);
  cor__free(u);
}

static cor__uring *ring_new(struct cor_loop *loop) {
  cor__uring *u = cor__calloc(1, sizeof *u);
  if (u == NULL)
    return NULL;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
            IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_COOP_TASKRUN;
  p.cq_entries = CQ_ENTRIES;
  int rc = io_uring_queue_init_params(SQ_ENTRIES, &u->ring, &p);
  if (rc < 0) {
    COR_LOG(COR_LOG_INFO,
            "io_uring unavailable (%s): socket streams use epoll",
            strerror(-rc));
    cor__free(u);
    return NULL;
  }
  u->features = p.features;
  /* Provided buffers: one group, BUF_COUNT buffers of COR__URING_BUF. */
  u->br_size = BUF_COUNT * sizeof(struct io_uring_buf);
  u->br = mmap(NULL, u->br_size, PROT_READ | PROT_WRITE,
               MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  u->bufs = cor__malloc((size_t)BUF_COUNT * COR__URING_BUF);
  if (u->br == MAP_FAILED || u->bufs == NULL) {
    if (u->br == MAP_FAILED)
      u->br = NULL;
    ring_free(u);
    return NULL;
  }
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (uint64_t)(uintptr_t)u->br;
  reg.ring_entries = BUF_COUNT;
  reg.bgid = COR__URING_BGID;
  rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
  if (rc < 0) {
    COR_LOG(COR_LOG_INFO,
            "io_uring provided buffers unavailable (%s): socket streams use "
            "epoll",
            strerror(-rc));
    ring_free(u);
    return NULL;
  }
  io_uring_buf_ring_init(u->br);
  for (unsigned i = 0; i < BUF_COUNT; i++)
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * COR__URING_BUF,
                          COR__URING_BUF, (unsigned short)i,
                          io_uring_buf_ring_mask(BUF_COUNT), (int)i);
  io_uring_buf_ring_advance(u->br, BUF_COUNT);
  u->wait_nr = 1;
  (void)loop;
  return u;
}

/* The loop runs on another thread than its ring's: the ring can neither
 * submit nor complete anything now (SINGLE_ISSUER, DEFER_TASKRUN). Fail
 * its streams with a clear error and keep its memory until loop close; the
 * next stream gets a new ring on this thread. */
static void ring_lost(struct cor_loop *loop, cor__uring *u) {
  COR_LOG(COR_LOG_ERROR,
          "loop %p now runs on another thread than the one its io_uring "
          "was made on: the socket streams on that ring fail with "
          "COR_ETHREAD; streams made from now on use a new ring",
          (void *)loop);
  cor__streams_ring_lost(u);
  cor__file_ops_ring_lost(u);
  loop->uring = NULL;
  loop->nio--;
  u->lost_next = loop->uring_lost;
  loop->uring_lost = u;
}

cor__uring *cor__uring_get(struct cor_loop *loop) {
  if (COR_LIKELY(loop->uring != NULL)) {
    if (COR_LIKELY(pthread_equal(loop->uring->owner, pthread_self())))
      return loop->uring;
    ring_lost(loop, loop->uring);
  }
  if (loop->uring_off || loop->closed)
    return NULL;
  if (env_mode() < 0 && cor__load_rlx(&io_all_off))
    return NULL; /* CORIO_IO=epoll: no ring for files either */
  /* SINGLE_ISSUER binds the ring to the thread that makes it: only the
   * thread running the loop may. */
  if (cor__tls_loop != loop) {
    return NULL;
  }
  cor__uring *u = ring_new(loop);
  if (u == NULL) {
    loop->uring_off = true;
    return NULL;
  }
  u->owner = pthread_self();
  loop->uring = u;
  loop->nio++; /* the loop now has I/O to look at even when busy */
  return u;
}

cor__uring *cor__uring_sockets(struct cor_loop *loop) {
  cor__uring *u = NULL;
  bool auto_epoll = env_mode() < 0;
  if (!auto_epoll)
    u = cor__uring_get(loop);
  if (COR_UNLIKELY(!loop->backend_logged) && !loop->closed &&
      (u != NULL || auto_epoll || loop->uring_off)) {
    loop->backend_logged = true;
    const char *why = cor__load_acq(&io_why);
    if (u != NULL)
      COR_LOG(COR_LOG_DEBUG,
              "loop %p: socket streams use io_uring (one ring on this "
              "thread; %s)",
              (void *)loop, why);
    else
      COR_LOG(COR_LOG_DEBUG, "loop %p: socket streams use epoll (%s)",
              (void *)loop,
              auto_epoll ? why : "io_uring off for this loop, or unavailable");
  }
  return u;
}

struct io_uring_sqe *cor__uring_sqe(cor__uring *u) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (COR_UNLIKELY(sqe == NULL)) {
    /* Full: submit what is queued (completions wait for the next reap). */
    cor__uring_submit(u);
    sqe = io_uring_get_sqe(&u->ring);
  }
  return sqe;
}

void cor__uring_buf_put(cor__uring *u, unsigned bid) {
  io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * COR__URING_BUF,
                        COR__URING_BUF, (unsigned short)bid,
                        io_uring_buf_ring_mask(BUF_COUNT), 0);
  io_uring_buf_ring_advance(u->br, 1);
}

const char *cor__uring_buf(cor__uring *u, unsigned bid) {
  return u->bufs + (size_t)bid * COR__URING_BUF;
}

/* Makes queued SQEs visible to the kernel; returns how many are unsubmitted.
 * (liburing 2.3 keeps its own flush private, and its wait calls cannot pass
 * the minimum-wait time.) */
static unsigned flush_sq(cor__uring *u) {
  struct io_uring_sq *sq = &u->ring.sq;
  unsigned tail = sq->sqe_tail;
  if (sq->sqe_head != tail) {
    sq->sqe_head = tail;
    cor__store_rel(sq->ktail, tail);
  }
  return tail - cor__load_acq(sq->khead);
}

static void arm_epoll(struct cor_loop *loop, cor__uring *u) {
  struct io_uring_sqe *sqe = cor__uring_sqe(u);
  if (sqe == NULL)
    return;
  io_uring_prep_poll_multishot(sqe, loop->poller.fd, POLLIN);
  io_uring_sqe_set_data64(sqe, TAG_EPOLL);
  u->epoll_armed = true;
}

/* Runs the callbacks of every completion there is. Returns how many were
 * arrivals (not quick ops). */
static unsigned reap(struct cor_loop *loop, cor__uring *u) {
  unsigned n = 0, head;
  struct io_uring_cqe *cqe;
  if (io_uring_cq_ready(&u->ring) > 0) /* idle ends before the callbacks */
    cor__loop_awake(loop);
  io_uring_for_each_cqe(&u->ring, head, cqe) {
    uint64_t ud = cqe->user_data;
    int res = cqe->res;
    unsigned flags = cqe->flags;
    /* Advance before the callback: it may submit, or reap again. */
    io_uring_cq_advance(&u->ring, 1);
    if (ud == TAG_EPOLL) {
      /* not counted: the epoll events it announces are, once read */
      u->epoll_hot = true;
      if (!(flags & IORING_CQE_F_MORE))
        u->epoll_armed = false;
    } else if (ud > TAG_IGNORE) {
      cor__uop *op = (cor__uop *)(uintptr_t)ud;
      n += !op->quick;
      if (!(flags & IORING_CQE_F_MORE))
        u->inflight--; /* a multishot op's last completion */
      op->cb(op, res, flags);
    }
  }
  return n;
}

int cor__uring_wait(struct cor_loop *loop, int64_t timeout_ns) {
  cor__uring *u = loop->uring;
  if (COR_UNLIKELY(!pthread_equal(u->owner, pthread_self()))) {
    ring_lost(loop, u); /* woke tasks: no waiting now */
    return cor__poller_wait(&loop->poller, loop, 0);
  }
  if (COR_UNLIKELY(!u->epoll_armed))
    arm_epoll(loop, u);
  if (u->epoll_hot) {
    /* Level-triggered fds still ready raise no new wake-up: look first. */
    u->epoll_hot = false;
    int n = cor__poller_wait(&loop->poller, loop, 0);
    if (n > 0) {
      u->epoll_hot = true;
      timeout_ns = 0;
    }
  }
  unsigned submit = flush_sq(u);
  unsigned wait_nr = timeout_ns == 0 ? 0 : u->wait_nr;
  /* The kernel counts every completion: the quick ones this enter submits
   * come on top of the arrivals the wait is for. */
  unsigned kwait = wait_nr ? wait_nr + u->quick : 0;
  u->quick = 0;
  unsigned flags = IORING_ENTER_GETEVENTS;
  struct __kernel_timespec ts;
  struct io_uring_getevents_arg ga;
  void *arg = NULL;
  size_t argsz = 0;
  uint32_t min_us = wait_nr > 1 ? loop->io_coalesce_us : 0;
  int64_t t = timeout_ns;
  if (kwait > wait_nr) {
    /* A quick op that did not complete at submission (a send to a full
     * socket) would keep the wait short of its count: bound this one wait
     * (the next counts arrivals only). */
    int64_t cap = (int64_t)(loop->io_coalesce_us ? loop->io_coalesce_us : 1000) * 1000;
    if (t < 0 || t > cap)
      t = cap;
  }
  if (t > 0 || min_us) {
    memset(&ga, 0, sizeof ga);
    if (t <= 0)
      t = (int64_t)3600 * 1000000000; /* min_wait needs a time-out */
    ts.tv_sec = t / 1000000000;
    ts.tv_nsec = t % 1000000000;
    ga.ts = (uint64_t)(uintptr_t)&ts;
    ga.pad = min_us; /* min_wait_usec in kernel 6.12's headers */
    arg = &ga;
    argsz = sizeof ga;
    flags |= IORING_ENTER_EXT_ARG;
  }
  if (submit > 0 || wait_nr > 0 || io_uring_cq_ready(&u->ring) == 0) {
    int rc = (int)syscall(__NR_io_uring_enter, u->ring.ring_fd, submit,
                          kwait, flags, arg, argsz);
    if (COR_UNLIKELY(rc < 0 && errno != ETIME && errno != EINTR &&
                     errno != EAGAIN && errno != EBUSY)) {
      int e = errno;
      if (!u->enter_err_logged) {
        u->enter_err_logged = true;
        COR_LOG(COR_LOG_ERROR, "io_uring_enter: %s%s", strerror(e),
                e == EEXIST ? " (the loop moved to another thread; its ring "
                              "stays bound to the first)"
                            : "");
      }
    }
  }
  unsigned got = reap(loop, u);
  if (u->epoll_hot) {
    int n = cor__poller_wait(&loop->poller, loop, 0);
    u->epoll_hot = n > 0;
    got += n > 0 ? (unsigned)n : 0;
  }
  if (wait_nr > 0) {
    /* Ask for more while waits find more than they asked for; fall back to
     * what came when the time-out cut one short. */
    if (got > wait_nr && u->wait_nr < MAX_WAIT_NR && loop->io_coalesce_us &&
        (u->features & IORING_FEAT_MIN_TIMEOUT))
      u->wait_nr = wait_nr * 2 > MAX_WAIT_NR ? MAX_WAIT_NR : wait_nr * 2;
    else if (got < wait_nr)
      u->wait_nr = got > 0 ? got : 1;
  }
  return (int)got;
}

void cor__uring_submit(cor__uring *u) {
  unsigned n = flush_sq(u);
  u->quick = 0;
  if (n > 0)
    syscall(__NR_io_uring_enter, u->ring.ring_fd, n, 0, 0, NULL, 0);
}

void cor__uring_posted(struct cor_loop *loop) { loop->uring->wait_nr = 1; }

bool cor__uring_pending(const struct cor_loop *loop) {
  const struct io_uring_sq *sq = &loop->uring->ring.sq;
  return sq->sqe_tail != cor__load_acq(sq->khead);
}

void cor__uring_close(struct cor_loop *loop) {
  while (loop->uring_lost) {
    cor__uring *l = loop->uring_lost;
    loop->uring_lost = l->lost_next;
    ring_free(l);
  }
  cor__uring *u = loop->uring;
  if (u == NULL)
    return;
  if (!pthread_equal(u->owner, pthread_self())) {
    /* closed from another thread: nothing can complete here */
    cor__streams_ring_lost(u);
    loop->uring = NULL;
    loop->nio--;
    ring_free(u);
    return;
  }
  /* Cancel what is still in flight and run its callbacks (they free the
   * streams that were freed while an op was pending), bounded in time. */
  u->closing = true;
  struct io_uring_sqe *sqe = cor__uring_sqe(u);
  if (sqe) {
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
  }
  uint64_t until = cor__now_ns() + 1000000000ull;
  while (u->inflight > 0 && cor__now_ns() < until) {
    struct __kernel_timespec ts = {0, 10000000};
    struct io_uring_getevents_arg ga;
    memset(&ga, 0, sizeof ga);
    ga.ts = (uint64_t)(uintptr_t)&ts;
    syscall(__NR_io_uring_enter, u->ring.ring_fd, flush_sq(u), 1,
            IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ga, sizeof ga);
    reap(loop, u);
  }
  loop->uring = NULL;
  loop->nio--;
  ring_free(u);
}
