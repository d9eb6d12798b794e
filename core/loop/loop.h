/* SPDX-License-Identifier: MIT */
/* The loop (core/loop/loop.c): struct cor_loop, its ready ring, slots and
 * fds, the doors, the wrong-thread check. Not installed. */
#ifndef CORIO_CORE_LOOP_LOOP_H
#define CORIO_CORE_LOOP_LOOP_H

#include "base/object.h"
#include "base/base.h"
#include "base/atomics.h"
#include "loop/mpsc.h"
#include "loop/poll_epoll.h"
#include "loop/timer.h"

/* ------------------------------------------------------------ the loop */

/* A scheduled callback's slot: cancellable callbacks and timers live in a
 * per-loop slot table; handles name (index, generation). */
enum { COR__SLOT_FREE = 0, COR__SLOT_READY, COR__SLOT_TIMER, COR__SLOT_CANCELLED };
typedef struct cor__slot {
  cor_callback cb;
  void *arg;
  uint32_t gen;
  uint32_t state;
  uint32_t heap_idx; /* for COR__SLOT_TIMER; next free index when FREE */
  uint32_t pad;
} cor__slot;

/* One entry of the ready queue: slot 0 means "not cancellable". */
typedef struct cor__ready_ent {
  cor_callback cb;
  void *arg;
  uint32_t slot;
} cor__ready_ent;

typedef struct cor__io {
  cor_callback rcb, wcb;
  void *rarg, *warg;
  unsigned mask;
} cor__io;

struct cor_loop {
  cor__obj obj;

  /* --- read by producer threads: kept apart from the hot consumer data */
  /* 1 while the loop may block in the poller; a producer that exchanges it
   * to 0 owns the one eventfd write of this sleep. */
  int sleeping COR_ALIGNED_CL;
  int closed; /* set once by cor_loop_close, read by producers */
  int wakefd; /* eventfd */
  /* Producers between winning `sleeping` and writing wakefd: close waits for
   * them so the fd number cannot be reused under their write. */
  int wakers;
  /* What a producer must do besides the push, in one word it loads from
   * the line `closed` was just read from (COR__TS_*): 0 for a lone loop in
   * production mode, so the common post pays one predictable branch.
   * COR__TS_COUNT: producers count their posts in mpsc.pushed (queue depth
   * = pushed - st_ts_run); set by executor/runtime.c before the loop first
   * runs. COR__TS_DEBUG: debug mode, producers record their call site;
   * mirrors loop->debug, set by its owner (atomic: producers read it any
   * time). The next two are set before the loop first runs and read-only
   * after. ts_limit: the bounded door's limit (0 = none; only
   * cor_try_call_soon_threadsafe and _wait honour it). runtime: the
   * runtime's part of this loop (cor__rt_loop), NULL for a lone loop. */
  int ts_flags;
  uint64_t ts_limit;
  void *runtime;

  cor__mpsc mpsc;

  /* Bounded door (executor/runtime.c): posts are counted in mpsc.pushed
   * while COR__TS_COUNT is set; producers waiting for room sleep on
   * ts_space_seq, which the loop bumps (and futex-wakes) after a batch when
   * ts_space_waiters is non-zero. */
  int ts_space_waiters COR_ALIGNED_CL;
  int ts_space_seq;

  /* --- owner thread only from here on */
  int running COR_ALIGNED_CL; /* atomic: CAS 0->1 by the thread that runs it */
  int stopping;
  int debug;
  /* cor_call_soon's one check: COR__CF_CLOSED | COR__CF_DEBUG. Kept with
   * the owner's hot data, so debug mode costs the fast path no extra load. */
  int callflags;
  /* core/diag/debug.c: gettid() of the thread running the loop, 0 when none
   * (atomic: read by wrong-thread reports from other threads). */
  int owner_tid;
  uint64_t slow_ns; /* slow_callback_duration */
  /* The exception handler: read with __atomic loads from any thread (a
   * future may be freed anywhere); set by the owner. */
  cor_exception_handler exc_fn;
  void *exc_arg;
  /* Debug-mode and watchdog state (core/diag/debug.c): made on first use (debug
   * mode on, or a watchdog set) and kept when debug mode goes off again, so
   * NULL means "never used", not "off" (that is `debug`). */
  struct cor__dbg *dbg;
  pthread_t owner;
  bool has_owner;
  unsigned ts_batch;
  uint64_t spin_ns;  /* the configured idle spin */
  uint64_t spin_cur; /* the next spin's length: adapts, see run_once */
  uint64_t now; /* clock cached at the top of each iteration */
  /* Ready entries of the current batch not yet run. A suspending task may
   * take the next one itself (a task-to-task hand-off, core/task/task.c), so it
   * lives here rather than in a local of run_once. */
  uint32_t todo;
  uint64_t last_poll;
  int nio;       /* fds registered by the user (readers/writers) + sigfd */
  uint64_t ncb;  /* fd callbacks run in this iteration, for the counters */

  /* ready queue: a ring of entries */
  cor__ready_ent *ready;
  uint32_t rhead, rlen, rcap; /* rcap is a power of two */

  cor__slot *slots;
  uint32_t nslots, slots_cap, free_slot;

  cor__timer_heap timers;
  uint64_t timer_seq;

  cor__poller poller;
  /* core/loop/uring.c: the ring of the loop's socket streams, NULL until one
   * needs it; uring_off: never make one (turned off, or it failed). */
  struct cor__uring *uring;
  struct cor__uring *uring_lost; /* rings of a thread the loop left */
  bool uring_off;
  bool backend_logged; /* the one DEBUG record naming the socket back-end */
  uint32_t io_coalesce_us;
  cor__io *io;
  int io_cap;
  unsigned io_events; /* events of the fd being dispatched (COR__POLL_*) */

  /* signals: one signalfd for every signal this loop owns */
  int sigfd;
  sigset_t sigmask; /* signals this loop owns */
  sigset_t blocked_before;
  cor_callback sigcb[65];
  void *sigarg[65];

  /* Module parts that join later (tasks, debug) hang off here. */
  void *tasks;
  /* core/diag/resource.c: the open streams and datagram endpoints of this loop,
   * reported if freed (or still open at exit) unclosed. Owner thread. */
  struct cor__res *res;

  /* counters readable from any thread (relaxed atomics) */
  uint64_t st_iterations, st_callbacks, st_polls, st_spin_wakes;
  uint64_t st_ts_run;
  /* For executor/runtime.c's cor_loop_counters: ready callbacks as the last
   * iteration ended, and time spent spinning idle or asleep. */
  uint64_t st_ready, st_idle_ns;
  /* busy_ns / idle_ns of cor_loop_stats (core/loop/loop.c, "time counters"): a
   * seqlock, tm_seq odd while the loop thread updates them; st_idle_ns is
   * the idle time of finished idle periods, tm_run_ns the wall time of
   * finished runs; tm_run_from / tm_idle_from the start of the run / idle
   * period in progress, 0 when none. __atomic release stores, acquire
   * loads. tm_hw_*: the highest values readers returned (readers' CAS). */
  uint64_t tm_seq, tm_run_ns, tm_run_from, tm_idle_from;
  uint64_t tm_hw_busy, tm_hw_idle;
  uint64_t st_wake_written COR_ALIGNED_CL; /* producers: rare, own line */
};

/* The bounded door (core/loop/loop.c, for executor/runtime.c): posts cb(arg)
 * without counting it in mpsc.pushed (the caller reserved its place there).
 * Same returns as cor_call_soon_threadsafe. `site`: the return address of
 * the public call, the callback's site in debug mode's reports. */
int cor__loop_post_reserved(struct cor_loop *loop, cor_callback cb, void *arg,
                            void *site);
/* cor_call_soon_threadsafe for public calls built on it, with their own
 * caller's return address as the site. */
int cor__call_soon_threadsafe_at(struct cor_loop *loop, cor_callback cb,
                                 void *arg, void *site);

/* Edge-triggered fds (core/net/stream.c and the other net files): registers fd
 * for both directions at once, edge-triggered, with rcb(arg) run when it
 * becomes readable (or hangs up / errors) and wcb(arg) when it becomes
 * writable. One epoll_ctl for the fd's whole life; the level-triggered
 * add_reader/add_writer of the same fd are refused (-EEXIST) meanwhile.
 * cor__loop_io_et_del unregisters (call it before closing the fd). Owner
 * thread. 0, -EEXIST, -ENOMEM, a negated epoll errno, COR_ECLOSED. */
int cor__loop_io_et_add(struct cor_loop *loop, int fd, cor_callback rcb,
                        cor_callback wcb, void *arg);
int cor__loop_io_et_del(struct cor_loop *loop, int fd);

/* The ready ring's push, for the loop's own modules (a task's resume): no
 * argument or thread checks, the caller is the loop's code on its thread. */
int cor__ready_grow(struct cor_loop *loop);
static inline int cor__ready_push(struct cor_loop *loop, cor_callback cb,
                                  void *arg, uint32_t slot) {
  if (COR_UNLIKELY(loop->rlen == loop->rcap)) {
    int err = cor__ready_grow(loop);
    if (err)
      return err;
  }
  cor__ready_ent *e = &loop->ready[(loop->rhead + loop->rlen) & (loop->rcap - 1)];
  e->cb = cb;
  e->arg = arg;
  e->slot = slot;
  loop->rlen++;
  return 0;
}

/* The library's own cross-thread posts that own memory (the dump's
 * request, an executor port's drain): when a loop closes with such a
 * callback still queued, `drop(arg)` runs instead, on the closing thread.
 * Register from a module constructor (before any thread exists). */
void cor__ts_drop_register(cor_callback cb, void (*drop)(void *arg));
/* Loop hooks that later modules set (tasks: report pending tasks at close). */
extern void (*cor__loop_close_hook)(struct cor_loop *loop);

/* thread-local running loop. initial-exec: read by the wrong-thread check
 * of every owner-thread call; the default model in a shared library would
 * call __tls_get_addr each time. */
extern _Thread_local struct cor_loop *cor__tls_loop
    __attribute__((tls_model("initial-exec")));

/* loop->callflags */
#define COR__CF_CLOSED 1
#define COR__CF_DEBUG 2
/* loop->ts_flags (the producers' side of the door) */
#define COR__TS_COUNT 1
#define COR__TS_DEBUG 2

/* Wrong-thread check (core/diag/debug.c). True (after an ERROR record naming the
 * call, the loop and both threads) when `loop` runs on another thread. The
 * fast path is one thread-local load and compare. */
bool cor__wrong_thread(const struct cor_loop *loop, const char *call);
/* The ERROR record alone, for a caller that already knows the call is on the
 * wrong thread (a run_forever that lost the race for `running`, a task
 * waiting on an object of another loop). Returns COR_ETHREAD. */
int cor__wrong_thread_report(const struct cor_loop *loop, const char *call);
/* cor_loop_run_forever, naming `call` in a wrong-thread record (for
 * cor_loop_run_until_complete, which runs the loop through it). */
int cor__loop_run(struct cor_loop *loop, const char *call);
/* The pollers call it when a wait returned with something to dispatch,
 * before they run its callbacks: ends the loop's idle period if one is in
 * progress (core/loop/loop.c, time counters). Owner thread. */
void cor__loop_awake(struct cor_loop *loop);
#define COR__CHECK_THREAD(loop, call)                                          \
  do {                                                                         \
    if (COR_UNLIKELY(cor__tls_loop != (loop)) && (loop) != NULL &&             \
        cor__wrong_thread((loop), (call)))                                     \
      return COR_ETHREAD;                                                      \
  } while (0)
/* For calls that cannot return COR_ETHREAD: `val` (NULL for pointers, 0 or
 * false for counts and flags) with errno 4001 (-COR_ETHREAD). */
#define COR__CHECK_THREAD_VAL(loop, call, val)                                 \
  do {                                                                         \
    if (COR_UNLIKELY(cor__tls_loop != (loop)) && (loop) != NULL &&             \
        cor__wrong_thread((loop), (call))) {                                   \
      errno = -COR_ETHREAD;                                                    \
      return val;                                                              \
    }                                                                          \
  } while (0)
#define COR__CHECK_THREAD_PTR(loop, call) COR__CHECK_THREAD_VAL(loop, call, NULL)
/* For calls that return nothing: errno 4001, and nothing done. */
#define COR__CHECK_THREAD_VOID(loop, call)                                     \
  do {                                                                         \
    if (COR_UNLIKELY(cor__tls_loop != (loop)) && (loop) != NULL &&             \
        cor__wrong_thread((loop), (call))) {                                   \
      errno = -COR_ETHREAD;                                                    \
      return;                                                                  \
    }                                                                          \
  } while (0)

/* ------------------------------------------------------------ for executor/ */

/* What executor/ (the runtime, its bounded door, cfutures, channels, pools)
 * reads or sets of a loop. executor/ never touches struct cor_loop's fields
 * itself (tests/check_tree.sh fails when it does): these are static inline,
 * so a call costs what the field access did. */

/* The runtime's part of this loop (cor__rt_loop), NULL for a lone loop. */
static inline void *cor__loop_runtime(const struct cor_loop *loop) {
  return loop->runtime;
}
/* Makes the loop one of a runtime's, before it first runs (no thread reads
 * these yet: plain stores): rt its part, producers count their posts
 * (COR__TS_COUNT), and the bounded door's limit (0 = none). */
static inline void cor__loop_join_runtime(struct cor_loop *loop, void *rt,
                                          uint64_t limit) {
  loop->runtime = rt;
  loop->ts_flags |= COR__TS_COUNT; /* the debug bit may be set */
  loop->ts_limit = limit;
}
static inline void cor__loop_leave_runtime(struct cor_loop *loop) {
  loop->runtime = NULL;
}
/* cor_loop_is_closed without the NULL check (any thread). */
static inline bool cor__loop_closed(const struct cor_loop *loop) {
  return ck_pr_load_int((int *)&loop->closed);
}
/* In a forked child: the parent's loops are closed to every door. */
static inline void cor__loop_mark_closed(struct cor_loop *loop) {
  ck_pr_store_int(&loop->closed, 1);
}
/* Debug mode on (owner thread, or any thread while the loop does not run). */
static inline bool cor__loop_debug(const struct cor_loop *loop) {
  return loop->debug;
}
/* Owner thread: callbacks are ready or a cross-thread post is queued. */
static inline bool cor__loop_has_work(struct cor_loop *loop) {
  return loop->rlen > 0 || !cor__mpsc_empty(&loop->mpsc);
}
/* Any thread: ready callbacks as the last iteration ended. */
static inline uint64_t cor__loop_ready_count(const struct cor_loop *loop) {
  return ck_pr_load_64((uint64_t *)&loop->st_ready);
}
/* The bounded door's side of the loop (executor/runtime.c): its limit (0 =
 * none), posts counted (mpsc.pushed) and run (st_ts_run), any thread. */
static inline uint64_t cor__loop_door_limit(const struct cor_loop *loop) {
  return loop->ts_limit;
}
static inline uint64_t cor__loop_door_pushed(const struct cor_loop *loop) {
  return ck_pr_load_64((uint64_t *)&loop->mpsc.pushed);
}
static inline uint64_t cor__loop_door_ran(const struct cor_loop *loop) {
  return ck_pr_load_64((uint64_t *)&loop->st_ts_run);
}
/* Takes a place in the loop's queue if the depth is under the limit. The
 * CAS loop keeps bounded posts exact: they never push the depth past the
 * limit (unbounded posts may, and are counted). */
static inline bool cor__loop_door_reserve(struct cor_loop *loop,
                                          uint64_t limit) {
  uint64_t pushed = cor__load_rlx(&loop->mpsc.pushed);
  for (;;) {
    uint64_t ran = ck_pr_load_64(&loop->st_ts_run);
    if (pushed - ran >= limit && pushed >= ran)
      return false;
    /* Seq-cst CAS (lock cmpxchg): the same instruction ck would use, spelt
     * so that TSan sees it. */
    if (cor__cas_sc_rlx(&loop->mpsc.pushed, &pushed, pushed + 1))
      return true;
  }
}
/* Gives a reserved place back (its post failed). */
static inline void cor__loop_door_unreserve(struct cor_loop *loop) {
  cor__sub_sc(&loop->mpsc.pushed, 1);
}
/* A producer waiting for room: announces itself (a full barrier) and
 * returns the sequence word to sleep on with its value, and whether the
 * queue is still full once announced (the loop bumps the word after storing
 * its run count and fencing: door_space_wake in core/loop/loop.c). Every
 * begin is followed by an end. */
static inline bool cor__loop_door_space_begin(struct cor_loop *loop,
                                              uint64_t limit, int **word,
                                              int *seq) {
  *seq = ck_pr_load_int(&loop->ts_space_seq);
  ck_pr_inc_int(&loop->ts_space_waiters);
  uint64_t ran = ck_pr_load_64(&loop->st_ts_run);
  uint64_t pushed = cor__load_rlx(&loop->mpsc.pushed);
  *word = &loop->ts_space_seq;
  return pushed - ran >= limit;
}
static inline void cor__loop_door_space_end(struct cor_loop *loop) {
  ck_pr_dec_int(&loop->ts_space_waiters);
}

#endif
