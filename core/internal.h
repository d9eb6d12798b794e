/* SPDX-License-Identifier: MIT */
/* corio internal declarations for core/. Not installed. */
#ifndef CORIO_CORE_INTERNAL_H
#define CORIO_CORE_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <corio.h>

#include <ck_pr.h>

/* Which sanitizer this build runs under (fiber annotations, test scales). */
#if defined(__SANITIZE_ADDRESS__)
#define COR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COR_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define COR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COR_TSAN 1
#endif
#endif

/* ThreadSanitizer cannot see ck_pr's inline assembly and would report every
 * hand-off through it as a race. In TSan builds only, the ck_pr calls corio
 * uses are routed to compiler atomics with the same (or stronger) ordering,
 * which TSan instruments. Normal builds use Concurrency Kit as is. */
#if defined(__SANITIZE_THREAD__)
#define COR__TSAN_ATOMICS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COR__TSAN_ATOMICS 1
#endif
#endif
#ifdef COR__TSAN_ATOMICS
#undef ck_pr_add_64
#undef ck_pr_cas_int
#undef ck_pr_cas_ptr_value
#undef ck_pr_dec_32_zero
#undef ck_pr_dec_int
#undef ck_pr_fas_int
#undef ck_pr_fas_ptr
#undef ck_pr_fence_acquire
#undef ck_pr_fence_atomic_load
#undef ck_pr_fence_load
#undef ck_pr_inc_32
#undef ck_pr_inc_64
#undef ck_pr_inc_int
#undef ck_pr_load_32
#undef ck_pr_load_64
#undef ck_pr_load_int
#undef ck_pr_load_ptr
#undef ck_pr_store_64
#undef ck_pr_store_int
#undef ck_pr_store_ptr
#undef ck_pr_load_uint
#undef ck_pr_inc_uint
#undef ck_pr_dec_uint
#undef ck_pr_faa_64
#undef ck_pr_store_32
#undef ck_pr_fence_memory
#undef ck_pr_cas_64_value
#define COR__SC __ATOMIC_SEQ_CST
#define ck_pr_load_ptr(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_store_ptr(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ck_pr_fas_ptr(p, v) __atomic_exchange_n((p), (v), COR__SC)
#define ck_pr_cas_ptr_value(t, c, s, out)                                      \
  ({                                                                           \
    __typeof__(*(t)) cor__c = (c);                                             \
    bool cor__ok = __atomic_compare_exchange_n((t), &cor__c, (s), false,       \
                                               COR__SC, COR__SC);              \
    *(out) = cor__c;                                                           \
    cor__ok;                                                                   \
  })
#define ck_pr_cas_64_value(t, c, s, out)                                       \
  ({                                                                           \
    uint64_t cor__c64 = (c);                                                   \
    bool cor__ok64 = __atomic_compare_exchange_n((t), &cor__c64, (s), false,   \
                                                 COR__SC, COR__SC);            \
    *(out) = cor__c64;                                                         \
    cor__ok64;                                                                 \
  })
#define ck_pr_load_int(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_store_int(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ck_pr_fas_int(p, v) __atomic_exchange_n((p), (v), COR__SC)
#define ck_pr_cas_int(p, c, s)                                                 \
  ({                                                                           \
    int cor__c = (c);                                                          \
    __atomic_compare_exchange_n((p), &cor__c, (s), false, COR__SC, COR__SC);   \
  })
#define ck_pr_inc_int(p) ((void)__atomic_add_fetch((p), 1, COR__SC))
#define ck_pr_dec_int(p) ((void)__atomic_sub_fetch((p), 1, COR__SC))
#define ck_pr_load_64(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_store_64(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ck_pr_inc_64(p) ((void)__atomic_add_fetch((p), 1, COR__SC))
#define ck_pr_add_64(p, v) ((void)__atomic_add_fetch((p), (v), COR__SC))
#define ck_pr_load_32(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_inc_32(p) ((void)__atomic_add_fetch((p), 1, COR__SC))
#define ck_pr_dec_32_zero(p, z) (*(z) = __atomic_sub_fetch((p), 1, COR__SC) == 0)
#define ck_pr_load_uint(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_inc_uint(p) ((void)__atomic_add_fetch((p), 1, COR__SC))
#define ck_pr_dec_uint(p) ((void)__atomic_sub_fetch((p), 1, COR__SC))
#define ck_pr_faa_64(p, v) __atomic_fetch_add((p), (v), COR__SC)
#define ck_pr_store_32(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* The full fence of the Dekker pairs (announce, fence, look again). ck's
 * mfence asm TSan cannot see, and GCC refuses __atomic_thread_fence under
 * TSan: a seq_cst read-modify-write of one process-wide word orders every
 * such fence in one total order, which TSan does model. */
extern int cor__tsan_fence_word;
#define ck_pr_fence_memory()                                                   \
  ((void)__atomic_fetch_add(&cor__tsan_fence_word, 0, COR__SC))
#define ck_pr_fence_load() ((void)0)
#define ck_pr_fence_acquire() ((void)0)
#define ck_pr_fence_atomic_load() ((void)0)
#endif
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COR_LIKELY(x) __builtin_expect(!!(x), 1)
#define COR_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* A spin-wait's pause (x86 PAUSE, arm YIELD). */
static inline void cor__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
/* One step of the tree's bounded spin-then-yield: a pause each call; every
 * 64th call reads the clock (false once `until` passed, so the caller stops
 * spinning) and yields the core (more threads than cores: the thread that
 * would end the spin may be waiting for this one; with nothing else
 * runnable the yield returns at once). *k starts at 0. */
uint64_t cor__now_ns(void); /* core/clock.c, below */
/* The same, storing each clock read it makes in *now (for a caller that
 * uses the spin's last look at the time). */
static inline bool cor__spin_step_at(unsigned *k, uint64_t until,
                                     uint64_t *now) {
  cor__cpu_relax();
  if ((++*k & 63) != 0)
    return true;
  if ((*now = cor__now_ns()) >= until)
    return false;
  sched_yield();
  return true;
}
static inline bool cor__spin_step(unsigned *k, uint64_t until) {
  uint64_t now;
  return cor__spin_step_at(k, until, &now);
}
/* The struct of `type` whose `member` ptr points to (the one container-of
 * of the tree: intrusive nodes, embedded futures and ops). */
#define cor__container_of(ptr, type, member)                                   \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define COR_CACHELINE 64
#define COR_ALIGNED_CL __attribute__((aligned(COR_CACHELINE)))

/* ------------------------------------------------------------ checks */

/* Always on: for broken invariants and impossible syscall results. Prints
 * the file, line and expression, then aborts. */
#define COR_ASSERT(expr)                                                       \
  do {                                                                         \
    if (COR_UNLIKELY(!(expr)))                                                 \
      cor__assert_fail(#expr, __FILE__, __LINE__, __func__);                   \
  } while (0)
_Noreturn void cor__assert_fail(const char *expr, const char *file, int line,
                                const char *func);

/* ------------------------------------------------------------ memory */

/* The one allocation path (core/alloc.c): jemalloc's mallocx/dallocx in
 * normal builds, the system allocator under the sanitizers. Tests inject
 * failure with cor__alloc_fail_after. */
void *cor__malloc(size_t n);
void *cor__calloc(size_t n, size_t size);
void *cor__realloc(void *p, size_t n);
void cor__free(void *p);
char *cor__strdup(const char *s);
/* Test hook: the n-th allocation from now (1 = the next) fails with NULL;
 * 0 disables. It acts on the calling thread's allocations only, so a test can target one
 * call without disturbing other threads. */
void cor__alloc_fail_after(long n);
/* Arrays that may grow large (slots, timers): resized in place through
 * mremap past 1 MiB; bytes past `old` are zero. Free with the current size. */
void *cor__array_resize(void *p, size_t old, size_t n);
void cor__array_free(void *p, size_t size);

/* ------------------------------------------------------------ threads */

/* Every thread corio starts goes through here (core/thread.c), born with
 * one signal mask: every asynchronous signal blocked, so a
 * process-directed signal never picks it and the loops' signalfds get
 * theirs; the synchronous ones (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT) open.
 * runs_user_code (loop threads, pool workers) also leaves SIGPROF open, so
 * ITIMER_PROF profilers sample the application's code; corio's own helpers
 * (log, dump, watchdog, resolver, pool manager) block it. Returns
 * pthread_create's code. */
int cor__thread_create(pthread_t *th, const pthread_attr_t *attr,
                       void *(*fn)(void *), void *arg, bool runs_user_code);

/* ------------------------------------------------------------ logging */

/* Logs with "file:line" of the corio call site only when the level passes. */
#define COR_LOG(level, ...)                                                    \
  do {                                                                         \
    if (cor_log_enabled(level))                                                \
      cor_log(level, __VA_ARGS__);                                             \
  } while (0)
void cor__log_init_from_env(void);

/* Invalid arguments (core/error.c): one ERROR record
 * "<call>(): invalid argument: <what>" (what names the argument: "s is
 * NULL"), then -EINVAL; the _ptr form sets errno = EINVAL and returns NULL.
 * Only for the branch a public call already takes on bad input, so the
 * fast path gains nothing. */
__attribute__((cold, noinline)) int cor__bad_arg(const char *call,
                                                 const char *what);
__attribute__((cold, noinline)) void *cor__bad_arg_ptr(const char *call,
                                                       const char *what);

/* ------------------------------------------------------------ objects */

/* Every counted object starts with this header; cor_release dispatches on
 * `type` to the destructor registered for it. */
enum cor__obj_type {
  COR__OBJ_NONE = 0,
  COR__OBJ_LOOP,
  COR__OBJ_FUTURE,
  COR__OBJ_TASK,
  COR__OBJ_CFUTURE,
  COR__OBJ_EXECUTOR,
  COR__OBJ_RUNTIME,
  COR__OBJ_LOCK,
  COR__OBJ_EVENT,
  COR__OBJ_SEMAPHORE,
  COR__OBJ_AS_COMPLETED,
  COR__OBJ_QUEUE,
  COR__OBJ_CHANNEL,
  COR__OBJ_CONDITION,
  COR__OBJ_BARRIER,
  COR__OBJ_TLS_CTX,
  COR__OBJ_MAX
};
typedef struct cor__obj {
  uint32_t type;
  uint32_t refs; /* atomic: any thread may retain/release */
} cor__obj;
typedef void (*cor__obj_free_fn)(cor__obj *obj);
void cor__obj_init(cor__obj *o, enum cor__obj_type type);
void cor__obj_register(enum cor__obj_type type, cor__obj_free_fn fn);

/* ------------------------------------------------------------ clock */

/* The clock and the one time-out rule (core/clock.c; API.md,
 * Conventions). Every public `double` time-out goes through
 * cor__timeout_deadline, every delay or duration through cor__duration_ns,
 * and every wait that needs a CLOCK_REALTIME date (pthread timed waits and
 * joins) through cor__realtime_abstime, so there is one clamp and one
 * treatment of NaN and INFINITY. */
uint64_t cor__now_ns(void); /* CLOCK_MONOTONIC */
/* Durations beyond this (~31.7 years) are clamped to it: later than any
 * loop will run, and far from uint64_t overflow when added to the clock. */
#define COR__NS_MAX ((uint64_t)1000000000 * 1000000000)
/* A delay or duration in seconds as nanoseconds: NaN, negative and zero are
 * 0; +INFINITY and huge values are COR__NS_MAX. */
uint64_t cor__duration_ns(double seconds);
/* A public time-out as a deadline on CLOCK_MONOTONIC: 0 -> now (already
 * expired: answer without waiting); < 0 or +INFINITY -> 0, "no deadline"
 * (what the waits take as no limit); NaN -> -EINVAL. Returns 0 or -EINVAL. */
int cor__timeout_deadline(double timeout, uint64_t *deadline_ns);
/* The CLOCK_REALTIME date at which the monotonic deadline falls (pthread's
 * timed waits). */
void cor__realtime_abstime(uint64_t deadline_ns, struct timespec *ts);

/* ------------------------------------------------------------ MPSC queue */

/* The cross-thread queue (core/mpsc.c): a Vyukov intrusive MPSC list (one
 * atomic exchange per push, on Concurrency Kit's ck_pr), with nodes drawn
 * from a per-producer-thread cache so the fast path never calls malloc and a
 * node is freed back to the thread that allocated it. */
typedef struct cor__mpsc_node cor__mpsc_node;
typedef struct cor__node_cache cor__node_cache;
struct cor__mpsc_node {
  cor__mpsc_node *next;
  cor_callback cb;
  void *arg;
  cor__node_cache *owner;
};
typedef struct cor__mpsc {
  /* Producers exchange on tail; the consumer owns head. Separate lines so
   * the consumer's walk does not bounce the producers' line. */
  cor__mpsc_node *tail COR_ALIGNED_CL;
  /* Posts counted by producers when the owner asks (runtime loops: queue
   * depth). On the tail's line on purpose: a producer owns that line for
   * its exchange anyway, so the increment costs no extra line transfer
   * (on its own line it cost ~18 ns per post with 4 producers). */
  uint64_t pushed;
  cor__mpsc_node *head COR_ALIGNED_CL;
  cor__mpsc_node stub;
} cor__mpsc;

void cor__mpsc_init(cor__mpsc *q);
/* Gets a node from the calling thread's cache; NULL on allocation failure. */
cor__mpsc_node *cor__mpsc_node_get(void);
/* Any thread. Full barrier (the exchange) before it returns. */
void cor__mpsc_push(cor__mpsc *q, cor__mpsc_node *n);
/* Consumer only. Returns the oldest node or NULL when empty, or when a
 * producer is between its exchange and its link (it will finish soon: the
 * caller treats it as "not yet visible" and spins or retries). */
cor__mpsc_node *cor__mpsc_pop(cor__mpsc *q);
/* Consumer only: true when no node is pushed, including one mid-push. */
bool cor__mpsc_empty(cor__mpsc *q);
/* Returns nodes to their owning threads' caches. A batch collects
 * consecutive nodes of one owner so returning them costs one atomic op. */
typedef struct cor__node_batch {
  cor__node_cache *owner;
  cor__mpsc_node *first, *last;
  unsigned n;
} cor__node_batch;
void cor__node_batch_add(cor__node_batch *b, cor__mpsc_node *n);
void cor__node_batch_flush(cor__node_batch *b);

/* ------------------------------------------------------------ poller */

/* One poller contract; core/poll_epoll.c implements it. Events are reported
 * to cor__loop_io_ready. */
#define COR__POLL_IN 1u
#define COR__POLL_OUT 2u
/* Edge-triggered registration (streams, core/stream.c): reported once per
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

/* ------------------------------------------------------------ timers */

/* The timer heap (core/timer.c): a 4-ary min-heap of (deadline, sequence,
 * slot) kept in an array; each slot knows its heap index, so a cancel
 * removes its timer at once and memory stays flat under cancel storms. */
typedef struct cor__timer_ent {
  uint64_t when;
  uint64_t seq;
  uint32_t slot;
} cor__timer_ent;
typedef struct cor__timer_heap {
  cor__timer_ent *ents;
  uint32_t len, cap;
} cor__timer_heap;

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
  /* core/debug.c: gettid() of the thread running the loop, 0 when none
   * (atomic: read by wrong-thread reports from other threads). */
  int owner_tid;
  uint64_t slow_ns; /* slow_callback_duration */
  /* The exception handler: read with __atomic loads from any thread (a
   * future may be freed anywhere); set by the owner. */
  cor_exception_handler exc_fn;
  void *exc_arg;
  /* Debug-mode and watchdog state (core/debug.c): made on first use (debug
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
   * take the next one itself (a task-to-task hand-off, core/task.c), so it
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
  /* core/uring.c: the ring of the loop's socket streams, NULL until one
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
  /* core/resource.c: the open streams and datagram endpoints of this loop,
   * reported if freed (or still open at exit) unclosed. Owner thread. */
  struct cor__res *res;

  /* counters readable from any thread (relaxed atomics) */
  uint64_t st_iterations, st_callbacks, st_polls, st_spin_wakes;
  uint64_t st_ts_run;
  /* For executor/runtime.c's cor_loop_counters: ready callbacks as the last
   * iteration ended, and time spent spinning idle or asleep. */
  uint64_t st_ready, st_idle_ns;
  /* busy_ns / idle_ns of cor_loop_stats (core/loop.c, "time counters"): a
   * seqlock, tm_seq odd while the loop thread updates them; st_idle_ns is
   * the idle time of finished idle periods, tm_run_ns the wall time of
   * finished runs; tm_run_from / tm_idle_from the start of the run / idle
   * period in progress, 0 when none. __atomic release stores, acquire
   * loads. tm_hw_*: the highest values readers returned (readers' CAS). */
  uint64_t tm_seq, tm_run_ns, tm_run_from, tm_idle_from;
  uint64_t tm_hw_busy, tm_hw_idle;
  uint64_t st_wake_written COR_ALIGNED_CL; /* producers: rare, own line */
};

/* The bounded door (core/loop.c, for executor/runtime.c): posts cb(arg)
 * without counting it in mpsc.pushed (the caller reserved its place there).
 * Same returns as cor_call_soon_threadsafe. `site`: the return address of
 * the public call, the callback's site in debug mode's reports. */
int cor__loop_post_reserved(struct cor_loop *loop, cor_callback cb, void *arg,
                            void *site);
/* cor_call_soon_threadsafe for public calls built on it, with their own
 * caller's return address as the site. */
int cor__call_soon_threadsafe_at(struct cor_loop *loop, cor_callback cb,
                                 void *arg, void *site);

/* Edge-triggered fds (core/stream.c and the other net files): registers fd
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

/* Loop hooks that later modules set (tasks: report pending tasks at close). */
extern void (*cor__loop_close_hook)(struct cor_loop *loop);

/* timer heap (core/timer.c) */
int cor__timers_push(struct cor_loop *loop, uint64_t when, uint32_t slot);
void cor__timers_remove(struct cor_loop *loop, uint32_t heap_idx);
void cor__timers_free(struct cor_loop *loop);

/* signals (core/signal.c) */
void cor__signal_read(struct cor_loop *loop);
void cor__signal_close(struct cor_loop *loop);

/* thread-local running loop. initial-exec: read by the wrong-thread check
 * of every owner-thread call; the default model in a shared library would
 * call __tls_get_addr each time. */
extern _Thread_local struct cor_loop *cor__tls_loop
    __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------ debug */

/* loop->callflags */
#define COR__CF_CLOSED 1
#define COR__CF_DEBUG 2
/* loop->ts_flags (the producers' side of the door) */
#define COR__TS_COUNT 1
#define COR__TS_DEBUG 2

/* Backtraces (core/backtrace.c): capture with backtrace(), symbolize with
 * libdw. */
#define COR__BT_MAX 32
typedef struct cor__sym {
  char func[128];
  char file[256];
  int line;
} cor__sym;
typedef struct cor__buf {
  char *s;
  size_t len, cap;
} cor__buf;
void cor__bt_warm(void);
/* The calling thread's frames, skipping `skip` below the caller. */
int cor__bt_capture(void **pcs, int max, int skip);
bool cor__symbolize(const void *pc, bool is_return, cor__sym *out);
/* Where a function is defined (DW_AT_decl_file/line of its DWARF entry). */
bool cor__fn_decl(const void *fn, cor__sym *out);
void cor__buf_printf(cor__buf *b, const char *fmt, ...) COR_PRINTF(2, 3);
/* "  File \"x.c\", line 9, in main\n" per frame, outermost first. */
void cor__bt_format(cor__buf *b, void *const *pcs, int n);
/* A function's name, or its address. */
const char *cor__fn_name(const void *fn, char *buf, size_t n);
/* "file.c:12" of a return address, or "" when unknown. */
const char *cor__site(const void *ra, char *buf, size_t n);

/* A recorded backtrace (debug mode: creation of tasks, coroutines, loops). */
typedef struct cor__bt {
  int n;
  void *pc[];
} cor__bt;
/* Captures the calling thread's stack from the frame whose return address
 * is `from` (pass __builtin_return_address(0) of the public call). NULL on
 * ENOMEM. */
cor__bt *cor__bt_new(const void *from);

/* Wrong-thread check (core/debug.c). True (after an ERROR record naming the
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
 * progress (core/loop.c, time counters). Owner thread. */
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

/* Debug mode on or off for a loop (what cor_loop_set_debug does, for the
 * runtime's cor_runtime_opts.debug too). Any thread while the loop is not
 * running; its own thread while it is. Returns 0 or -ENOMEM. */
int cor__loop_debug_apply(struct cor_loop *loop, bool on);
/* Loop life (core/debug.c): the registry cor_dump_tasks walks. */
void cor__debug_loop_new(struct cor_loop *loop, const void *from);
void cor__debug_loop_free(struct cor_loop *loop);
/* Debug mode: a callback's site (slot table) and the slow callback check. */
void cor__debug_set_site(struct cor_loop *loop, uint32_t slot, void *ra);
void *cor__debug_site(struct cor_loop *loop, uint32_t slot);
void cor__debug_slow_callback(struct cor_loop *loop, cor_callback cb,
                              void *arg, void *site, uint64_t ns);
void cor__debug_poll_begin(struct cor_loop *loop);
void cor__debug_slow_poll(struct cor_loop *loop, int64_t timeout_ns,
                          uint64_t start, uint64_t end);
/* Watchdog and dump signal: a callback starts / ends (debug variant). */
void cor__debug_cb_begin(struct cor_loop *loop, cor_callback cb, void *arg);
void cor__debug_cb_end(struct cor_loop *loop);
/* Logs (WARNING, each line starting with `prefix`) the timers and ready
 * callbacks of `loop` that will not run, with their creation sites in debug
 * mode; what tasks scheduled for themselves is left out (tasks are
 * reported as tasks). At most 16
 * lines, then a count. Owner thread, loop not running. Returns how many. */
size_t cor__debug_report_unrun(struct cor_loop *loop, const char *prefix);
/* The library's own cross-thread posts that own memory (the dump's
 * request, an executor port's drain): when a loop closes with such a
 * callback still queued, `drop(arg)` runs instead, on the closing thread.
 * Register from a module constructor (before any thread exists). */
void cor__ts_drop_register(cor_callback cb, void (*drop)(void *arg));
/* Debug mode: runs cb(arg) timed (slow callback report naming `site`, a
 * return address or NULL) between cb_begin and cb_end. Every kind of
 * callback the loop runs goes through it in debug mode. */
void cor__debug_run_cb(struct cor_loop *loop, cor_callback cb, void *arg,
                       void *site);
/* Tasks (core/task.c) for debug reports: a task step's repr, and the task
 * dump of one loop. */
bool cor__is_task_step(cor_callback cb);
/* A callback the task machinery schedules on a task's behalf (its step, the
 * timer of a cor_sleep): reported with the task, not as a handle. */
bool cor__is_task_cb(cor_callback cb);
void cor__task_repr(struct cor_task *t, cor__buf *out);
void cor__future_repr(struct cor_future *f, cor__buf *out);
int cor__tasks_dump(struct cor_loop *loop, cor__buf *out);
/* At exit: "coroutine ... was never awaited" for each coroutine made on a
 * thread with no running loop and never consumed (core/task.c). */
void cor__coros_report_at_exit(void);
/* A loop's repr: <Loop running=false closed=false debug=true>. */
void cor__loop_repr(const struct cor_loop *loop, cor__buf *out);
/* "unclosed event loop <Loop ...>" (and where it was made, in debug mode)
 * through the loop's exception handler. */
void cor__debug_report_unclosed_loop(struct cor_loop *loop);
/* The live loops of this process (not inherited through fork), each with a
 * reference the caller drops; NULL with *n = 0 when there is none or on
 * ENOMEM. For the report at exit. */
struct cor_loop **cor__debug_loops(size_t *n);

/* ------------------------------------------------------------ resources */

/* Resource warnings (core/resource.c), asyncio's ResourceWarning: what the
 * application must close (a stream, a datagram endpoint, a server, an
 * executor) is tracked from creation until it is closed. Freed while still
 * tracked, it is reported at WARNING, "unclosed stream <Stream fd=7 ...>",
 * with its creation site and backtrace in debug mode; still tracked at
 * exit, it is reported then. Objects of one loop (streams, datagram
 * endpoints) sit on that loop's list (loop->res: an O(1) insert and unlink
 * on its own thread, no lock); the rare process-wide ones (servers,
 * executors) on one list under a mutex. */
typedef struct cor__res cor__res;
typedef struct cor__res_type {
  const char *what; /* "stream": "unclosed stream <...>" */
  /* The repr's inside, without its angle brackets: "Stream fd=7 ...". */
  void (*repr)(cor__res *r, cor__buf *out);
} cor__res_type;
struct cor__res {
  cor__res *prev, *next;
  const cor__res_type *type;
  /* The loop whose exception handler gets the report (NULL: the default
   * handler); for a per-loop object, the loop whose list holds it. */
  struct cor_loop *loop;
  const void *site; /* debug mode: return address of the creating call */
  cor__bt *bt;      /* debug mode: the creation backtrace */
  unsigned gen;     /* cor__fork_gen when made: not reported in children */
  bool listed;
  bool global;
};
/* Bumped in the child of every fork: what the parent made is the parent's
 * to report. Relaxed atomic. */
extern unsigned cor__fork_gen;
/* Starts tracking r (an object of `type` just made). global: the
 * process-wide list (any thread); otherwise loop's own list (its thread).
 * debug: record `site` (the creating call's return address) and the
 * backtrace from it. */
void cor__res_track(cor__res *r, const cor__res_type *type,
                    struct cor_loop *loop, bool global, bool debug,
                    const void *site);
/* The object was closed: stop tracking it. Idempotent. */
void cor__res_untrack(cor__res *r);
/* The object is being freed (still whole): reports it if it is still
 * tracked (never closed), then stops tracking it. */
void cor__res_release(cor__res *r);
/* The loop is being freed: reports what is still on its list. */
void cor__res_loop_free(struct cor_loop *loop);
/* CORIO_DEBUG in the environment (objects not made on a loop). */
bool cor__debug_env(void);
/* Appends " <key>=<address>" (just the address when key is NULL) of
 * socket fd's peer (peer) or its own address: "127.0.0.1:80", "[::1]:80",
 * "/path" or "@name"; nothing for a socket not connected (peer), unnamed,
 * or of another family (core/net.c, for the reprs of the reports). */
void cor__buf_sockaddr(cor__buf *out, const char *key, int fd, bool peer);

#endif
