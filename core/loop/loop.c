/* SPDX-License-Identifier: MIT */
/* The event loop: ready queue, timers, the cross-thread door, and polling.
 *
 * One iteration (run_once):
 *   1. decide how long to wait: not at all when callbacks are ready or the
 *      cross-thread queue has work, until the next timer otherwise;
 *   2. before a wait, spin a little watching the cross-thread queue, then
 *      announce sleep, fence, check the queue once more, and poll;
 *   3. move due timers to the ready queue;
 *   4. run a bounded batch of cross-thread callbacks;
 *   5. run the callbacks that were ready when the iteration began (those they
 *      schedule run next iteration, as in asyncio).
 * Busy iterations skip the kernel entirely when there is nothing to poll, and
 * otherwise poll with a zero timeout at most every POLL_INTERVAL_NS, since an
 * epoll_wait costs ~1.2 us here: polling on every iteration would cost more
 * than the callbacks themselves. */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/object.h"
#include "loop/loop.h"
#include "loop/loop_debug.h"
#include "loop/mpsc.h"
#include "loop/mpsc_inline.h"
#include "loop/poller.h"
#include "loop/signal.h"
#include "loop/timer.h"
#include "loop/uring.h"

#include <math.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DEFAULT_SPIN_NS 50000u /* see cor_loop_opts.spin_seconds */
#define DEFAULT_TS_BATCH 1024u
#define DEFAULT_COALESCE_US 500u /* see cor_loop_opts.io_coalesce_seconds */
/* How often a busy loop still looks at its fds (and signals). */
#define POLL_INTERVAL_NS 100000u

_Thread_local struct cor_loop *cor__tls_loop
    __attribute__((tls_model("initial-exec")));
void (*cor__loop_close_hook)(struct cor_loop *loop);

static void loop_free(cor__obj *o);
static void release_resources(cor_loop_t *loop);
static void drain_threadsafe(cor_loop_t *loop);

__attribute__((constructor)) static void loop_module_init(void) {
  cor__obj_register(COR__OBJ_LOOP, loop_free);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* ------------------------------------------------------------ parts */

/* The loop is made of parts, each with its init (0 or a positive errno) and
 * its fini. A fini is safe on a part never made (the loop starts zeroed,
 * fds at -1), so a half-made loop is released by running every fini, the
 * last part's first. Parts made on demand later (the timer heap, the fd
 * table, signal handling) have a fini only. */

static int ready_init(cor_loop_t *loop) {
  loop->rcap = 256;
  loop->ready = cor__array_resize(NULL, 0, loop->rcap * sizeof *loop->ready);
  return loop->ready == NULL ? ENOMEM : 0;
}
static void ready_fini(cor_loop_t *loop) {
  cor__array_free(loop->ready, (size_t)loop->rcap * sizeof *loop->ready);
  loop->ready = NULL;
  loop->rlen = loop->rcap = 0;
}

static int slots_init(cor_loop_t *loop) {
  loop->slots_cap = 64;
  loop->slots =
      cor__array_resize(NULL, 0, loop->slots_cap * sizeof *loop->slots);
  loop->nslots = 1; /* index 0 is never used: handle 0 names nothing */
  return loop->slots == NULL ? ENOMEM : 0;
}
static void slots_fini(cor_loop_t *loop) {
  cor__array_free(loop->slots, (size_t)loop->slots_cap * sizeof *loop->slots);
  loop->slots = NULL;
  loop->nslots = loop->slots_cap = 0;
}

static void io_fini(cor_loop_t *loop) {
  cor__free(loop->io);
  loop->io = NULL;
  loop->io_cap = 0;
}

static int poll_part_init(cor_loop_t *loop) { return -cor__poll_init(loop); }

/* The door's wake-up: the eventfd in the poller's set. */
static int door_init(cor_loop_t *loop) {
  loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->wakefd < 0)
    return errno;
  return -cor__poll_set(loop, loop->wakefd, 0, COR__POLL_IN);
}
static void door_fini(cor_loop_t *loop) {
  if (loop->wakefd >= 0) {
    /* A producer that won the right to wake this loop may still be about
     * to write the eventfd: wait for it before the fd number can be reused. */
    unsigned k = 0;
    while (ck_pr_load_int(&loop->wakers) != 0)
      cor__spin_step(&k, UINT64_MAX);
    close(loop->wakefd);
    loop->wakefd = -1;
  }
  drain_threadsafe(loop);
}

static void signals_fini(cor_loop_t *loop) {
  if (!sigisemptyset(&loop->sigmask) || loop->sigfd >= 0)
    cor__signal_close(loop);
}

static const struct {
  int (*init)(cor_loop_t *loop);
  void (*fini)(cor_loop_t *loop);
} parts[] = {
    {ready_init, ready_fini},    {slots_init, slots_fini},
    {NULL, cor__timers_free},    {NULL, io_fini},
    {poll_part_init, cor__poll_fini}, {door_init, door_fini},
    {NULL, signals_fini},
};

/* ------------------------------------------------------------ lifecycle */

cor_loop_t *cor_loop_new(const cor_loop_opts *opts) {
  cor_loop_opts o = {0};
  if (opts)
    o = *opts;
  cor_loop_t *loop = cor__calloc(1, sizeof *loop);
  if (loop == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  int err;
  cor__obj_init(&loop->obj, COR__OBJ_LOOP);
  loop->wakefd = -1;
  loop->sigfd = -1;
  loop->poller.fd = -1;
  cor__mpsc_init(&loop->mpsc);
  loop->ts_batch = o.threadsafe_batch ? o.threadsafe_batch : DEFAULT_TS_BATCH;
  /* NaN counts as 0 (the default); huge values are capped at 1 s. */
  double spin = isnan(o.spin_seconds) ? 0 : o.spin_seconds;
  loop->spin_ns = loop->spin_cur = spin == 0 ? DEFAULT_SPIN_NS
                                  : spin > 1  ? 1000000000u
                                              : cor__duration_ns(spin);
  loop->uring_off = o.io_uring < 0;
  double co = isnan(o.io_coalesce_seconds) ? 0 : o.io_coalesce_seconds;
  const char *co_env = getenv("CORIO_IO_COALESCE_US");
  if (co == 0 && co_env && co_env[0])
    co = atof(co_env) / 1e6; /* the default, from the environment */
  loop->io_coalesce_us = co < 0    ? 0
                         : co == 0 ? DEFAULT_COALESCE_US
                         : co > 1  ? 1000000
                                   : (uint32_t)(co * 1e6);
  const char *dbg = getenv("CORIO_DEBUG");
  bool debug = o.debug || (dbg && dbg[0] && strcmp(dbg, "0") != 0);
  loop->slow_ns = 100000000u; /* asyncio's slow_callback_duration, 0.1 s */
  sigemptyset(&loop->sigmask);

  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (parts[i].init != NULL && (err = parts[i].init(loop)) != 0)
      goto fail;
  if (debug && cor__loop_debug_apply(loop, true) != 0) {
    err = ENOMEM;
    goto fail;
  }
  cor__debug_loop_new(loop, __builtin_return_address(0));
  return loop;
fail:
  release_resources(loop);
  cor__free(loop);
  errno = err;
  return NULL;
}

/* ------------------------------------------------------------ door sites */

/* Debug mode: a cross-thread post carries the site of its
 * cor_call_soon_threadsafe to the loop, for the slow callback report. The
 * queue node has no room for it, and growing every node would cost every
 * production post, so the producer allocates a small record and posts the
 * trampoline with it instead. The loop's debug variant (run_threadsafe_debug)
 * unwraps it to time and name the real callback; the trampoline itself runs
 * the callback when debug mode was turned off in between. */
typedef struct ts_site_rec {
  cor_callback cb;
  void *arg;
  void *site;
} ts_site_rec;

static void ts_site_tramp(void *p) {
  ts_site_rec r = *(ts_site_rec *)p;
  cor__free(p);
  r.cb(r.arg);
}

/* The record for cb(arg) posted from `site`; NULL without memory (the post
 * then goes unwrapped: still timed, only without its site). */
static __attribute__((noinline, cold)) ts_site_rec *
ts_site_wrap(cor_callback cb, void *arg, void *site) {
  ts_site_rec *r = cor__malloc(sizeof *r);
  if (r != NULL) {
    r->cb = cb;
    r->arg = arg;
    r->site = site;
  }
  return r;
}

#define TS_DROP_MAX 4
static struct {
  cor_callback cb;
  void (*drop)(void *arg);
} ts_drops[TS_DROP_MAX];
static int n_ts_drops;

void cor__ts_drop_register(cor_callback cb, void (*drop)(void *arg)) {
  COR_ASSERT(n_ts_drops < TS_DROP_MAX);
  ts_drops[n_ts_drops].cb = cb;
  ts_drops[n_ts_drops].drop = drop;
  n_ts_drops++;
}

/* A node dropped unrun (close): free the record it carries, and let the
 * library's own posts that own memory give it back. */
static inline void ts_site_drop(cor__mpsc_node *n) {
  cor_callback cb = n->cb;
  void *arg = n->arg;
  if (COR_UNLIKELY(cb == ts_site_tramp)) {
    ts_site_rec *r = arg;
    cb = r->cb;
    arg = r->arg;
    cor__free(r);
  }
  for (int i = 0; i < n_ts_drops; i++)
    if (ts_drops[i].cb == cb)
      ts_drops[i].drop(arg);
}

static void drain_threadsafe(cor_loop_t *loop) {
  cor__node_batch b = {0};
  cor__mpsc_node *n;
  for (;;) {
    n = cor__mpsc_pop(&loop->mpsc);
    if (n == NULL) {
      if (cor__mpsc_empty(&loop->mpsc))
        break;
      cpu_relax(); /* a producer is between its exchange and its link */
      continue;
    }
    ts_site_drop(n);
    cor__node_batch_add(&b, n);
  }
  cor__node_batch_flush(&b);
}

/* Frees everything but the object itself: every part's fini, last part
 * first; safe on a half-built loop. */
static void release_resources(cor_loop_t *loop) {
  for (size_t i = sizeof parts / sizeof parts[0]; i-- > 0;)
    parts[i].fini(loop);
}

int cor_loop_close(cor_loop_t *loop) {
  if (loop == NULL)
    return cor__bad_arg("cor_loop_close", "loop is NULL");
  if (ck_pr_load_int(&loop->closed))
    return COR_ECLOSED;
  COR__CHECK_THREAD(loop, "cor_loop_close");
  if (ck_pr_load_int(&loop->running))
    return -EBUSY;
  if (cor__loop_close_hook)
    cor__loop_close_hook(loop);
  /* From here producers see the loop closed; the exchange orders the flag
   * before the queue drain in release_resources. */
  ck_pr_fas_int(&loop->closed, 1);
  loop->callflags |= COR__CF_CLOSED;
  release_resources(loop);
  return 0;
}

static void loop_free(cor__obj *o) {
  cor_loop_t *loop = (cor_loop_t *)o;
  /* Out of the registry first: cor_dump_tasks must not find it half gone. */
  cor__debug_loop_free(loop);
  if (!ck_pr_load_int(&loop->closed)) {
    if (cor__loop_close_hook)
      cor__loop_close_hook(loop);
    ck_pr_fas_int(&loop->closed, 1);
    release_resources(loop);
  } else {
    drain_threadsafe(loop); /* posts that raced with close */
  }
  cor__loop_debug_apply(loop, false); /* frees the debug state */
  cor__free(loop);
}

bool cor_loop_is_running(const cor_loop_t *loop) {
  return loop && ck_pr_load_int((int *)&loop->running);
}
bool cor_loop_is_closed(const cor_loop_t *loop) {
  return loop && ck_pr_load_int((int *)&loop->closed);
}
cor_loop_t *cor_get_running_loop(void) { return cor__tls_loop; }

double cor_loop_time(const cor_loop_t *loop) {
  (void)loop;
  return (double)cor__now_ns() / 1e9;
}
uint64_t cor_loop_time_ns(const cor_loop_t *loop) {
  (void)loop;
  return cor__now_ns();
}

int cor_loop_set_debug(cor_loop_t *loop, bool on) {
  if (loop == NULL)
    return cor__bad_arg("cor_loop_set_debug", "loop is NULL");
  COR__CHECK_THREAD(loop, "cor_loop_set_debug");
  return cor__loop_debug_apply(loop, on);
}
bool cor_loop_get_debug(const cor_loop_t *loop) {
  if (loop == NULL)
    return false;
  COR__CHECK_THREAD_VAL(loop, "cor_loop_get_debug", false);
  return loop->debug;
}

static void tm_read(const cor_loop_t *loop, uint64_t *busy, uint64_t *idle);

int cor_loop_get_stats(const cor_loop_t *loop, cor_loop_stats *out) {
  if (loop == NULL || out == NULL)
    return cor__bad_arg("cor_loop_get_stats",
                        loop == NULL ? "loop is NULL" : "out is NULL");
  cor_loop_t *l = (cor_loop_t *)loop;
  out->iterations = ck_pr_load_64(&l->st_iterations);
  out->callbacks = ck_pr_load_64(&l->st_callbacks);
  out->threadsafe_run = ck_pr_load_64(&l->st_ts_run);
  out->wakeups_written = ck_pr_load_64(&l->st_wake_written);
  out->wakeups_saved = out->threadsafe_run > out->wakeups_written
                           ? out->threadsafe_run - out->wakeups_written
                           : 0;
  out->polls = ck_pr_load_64(&l->st_polls);
  out->spin_wakes = ck_pr_load_64(&l->st_spin_wakes);
  tm_read(l, &out->busy_ns, &out->idle_ns);
  return 0;
}

/* ------------------------------------------------------------ slots */

static int slot_alloc(cor_loop_t *loop, uint32_t *out) {
  uint32_t i = loop->free_slot;
  if (i != 0) {
    loop->free_slot = loop->slots[i].heap_idx;
  } else {
    if (loop->nslots == loop->slots_cap) {
      if (loop->slots_cap >= 0x7fffffffu)
        return -ENOMEM;
      uint32_t cap = loop->slots_cap * 2;
      cor__slot *s = cor__array_resize(loop->slots, (size_t)loop->slots_cap * sizeof *s,
                                       (size_t)cap * sizeof *s);
      if (s == NULL)
        return -ENOMEM;
      loop->slots = s;
      loop->slots_cap = cap;
    }
    i = loop->nslots++;
  }
  *out = i;
  return 0;
}

static inline void slot_free(cor_loop_t *loop, uint32_t i) {
  cor__slot *s = &loop->slots[i];
  s->gen++; /* every handle naming this use of the slot is now stale */
  s->state = COR__SLOT_FREE;
  s->heap_idx = loop->free_slot;
  loop->free_slot = i;
}

static inline cor_handle_t make_handle(cor_loop_t *loop, uint32_t i) {
  return (cor_handle_t){((uint64_t)loop->slots[i].gen << 32) | i};
}

/* ------------------------------------------------------------ ready queue */

int cor__ready_grow(cor_loop_t *loop) {
  uint32_t old = loop->rcap, cap = old * 2;
  if (cap == 0 || cap > (1u << 30))
    return -ENOMEM;
  cor__ready_ent *r = cor__array_resize(loop->ready, (size_t)old * sizeof *r,
                                        (size_t)cap * sizeof *r);
  if (r == NULL)
    return -ENOMEM;
  /* The ring wrapped: the entries at [0, wrapped) follow the old end. */
  uint32_t end = loop->rhead + loop->rlen;
  if (end > old)
    memcpy(r + old, r, (size_t)(end - old) * sizeof *r);
  loop->ready = r;
  loop->rcap = cap;
  return 0;
}

static inline int ready_push(cor_loop_t *loop, cor_callback cb, void *arg,
                             uint32_t slot) {
  return cor__ready_push(loop, cb, arg, slot);
}

/* ------------------------------------------------------------ scheduling */

/* A cancellable ready callback: a slot (for the handle, and in debug mode
 * the scheduling site) plus its ring entry. `out` may be NULL (debug mode
 * takes a slot for the site alone); `site` NULL records none. */
static int push_with_slot(cor_loop_t *loop, cor_callback cb, void *arg,
                          cor_handle_t *out, void *site) {
  uint32_t i;
  int err = slot_alloc(loop, &i);
  if (err)
    return err;
  if ((err = ready_push(loop, cb, arg, i)) != 0) {
    slot_free(loop, i);
    return err;
  }
  loop->slots[i].state = COR__SLOT_READY;
  if (site != NULL)
    cor__debug_set_site(loop, i, site);
  if (out)
    *out = make_handle(loop, i);
  return 0;
}

/* Off the owner's fast path: a call from a thread that is not running the
 * loop (setup before it runs, a wrong thread, a forked child whose loop
 * threads are gone: `closed` is read atomically here), a closed loop, or
 * debug mode, where every scheduled callback takes a slot that records the
 * site that scheduled it (for slow callback reports). */
static __attribute__((noinline)) int
call_soon_slow(cor_loop_t *loop, cor_callback cb, void *arg, cor_handle_t *out,
               void *site) {
  if (ck_pr_load_int(&loop->closed))
    return COR_ECLOSED;
  if (cor__tls_loop != loop && cor__wrong_thread(loop, "cor_call_soon"))
    return COR_ETHREAD;
  bool debug = loop->callflags & COR__CF_DEBUG;
  if (out == NULL && !debug)
    return ready_push(loop, cb, arg, 0);
  return push_with_slot(loop, cb, arg, out, debug ? site : NULL);
}

int cor_call_soon(cor_loop_t *loop, cor_callback cb, void *arg,
                  cor_handle_t *out) {
  if (COR_UNLIKELY(loop == NULL))
    loop = cor__tls_loop; /* the rule of common.h: NULL = the running loop */
  if (COR_UNLIKELY(loop == NULL || cb == NULL))
    return cor__bad_arg("cor_call_soon",
                        loop == NULL ? "loop is NULL and no loop is running"
                                     : "cb is NULL");
  /* One thread-local compare (the wrong-thread check) and one flag word for
   * "closed" and "debug", which replaces the closed check the fast path
   * always made: debug mode costs it nothing more. */
  if (COR_UNLIKELY(cor__tls_loop != loop) || COR_UNLIKELY(loop->callflags))
    return call_soon_slow(loop, cb, arg, out, __builtin_return_address(0));
  if (COR_LIKELY(out == NULL))
    return ready_push(loop, cb, arg, 0);
  return push_with_slot(loop, cb, arg, out, NULL);
}

static int call_at_site(cor_loop_t *loop, uint64_t when, cor_callback cb,
                        void *arg, cor_handle_t *out, const char *call,
                        void *site) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL || cb == NULL)
    return cor__bad_arg(call, loop == NULL
                                  ? "loop is NULL and no loop is running"
                                  : "cb is NULL");
  COR__CHECK_THREAD(loop, call);
  if (loop->closed)
    return COR_ECLOSED;
  uint32_t i;
  int err = slot_alloc(loop, &i);
  if (err)
    return err;
  cor__slot *s = &loop->slots[i];
  s->cb = cb;
  s->arg = arg;
  s->state = COR__SLOT_TIMER;
  if ((err = cor__timers_push(loop, when, i)) != 0) {
    slot_free(loop, i);
    return err;
  }
  if (COR_UNLIKELY(loop->callflags & COR__CF_DEBUG))
    cor__debug_set_site(loop, i, site);
  if (out)
    *out = make_handle(loop, i);
  return 0;
}

int cor_call_at_ns(cor_loop_t *loop, uint64_t when, cor_callback cb, void *arg,
                   cor_handle_t *out) {
  return call_at_site(loop, when, cb, arg, out, "cor_call_at_ns",
                      __builtin_return_address(0));
}

int cor_call_later(cor_loop_t *loop, double delay, cor_callback cb, void *arg,
                   cor_handle_t *out) {
  return call_at_site(loop, cor__now_ns() + cor__duration_ns(delay), cb, arg, out,
                      "cor_call_later", __builtin_return_address(0));
}

int cor_call_at(cor_loop_t *loop, double when, cor_callback cb, void *arg,
                cor_handle_t *out) {
  return call_at_site(loop, cor__duration_ns(when), cb, arg, out, "cor_call_at",
                      __builtin_return_address(0));
}

int cor_handle_cancel(cor_loop_t *loop, cor_handle_t h) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL)
    return cor__bad_arg("cor_handle_cancel",
                        "loop is NULL and no loop is running");
  COR__CHECK_THREAD(loop, "cor_handle_cancel");
  if (loop->closed)
    return COR_ECLOSED;
  uint32_t i = (uint32_t)h.id, gen = (uint32_t)(h.id >> 32);
  if (i == 0 || i >= loop->nslots)
    return -ENOENT;
  cor__slot *s = &loop->slots[i];
  if (s->gen != gen)
    return -ENOENT;
  switch (s->state) {
  case COR__SLOT_TIMER:
    cor__timers_remove(loop, s->heap_idx);
    slot_free(loop, i);
    return 0;
  case COR__SLOT_READY:
    /* Its entry sits in the ready ring: mark it, and free the slot when the
     * entry comes up. Bumping the generation now makes a second cancel (or
     * any stale copy of the handle) return -ENOENT. */
    s->state = COR__SLOT_CANCELLED;
    s->gen++;
    return 0;
  default:
    return -ENOENT;
  }
}

/* ------------------------------------------------------------ cross-thread */

static _Thread_local unsigned tls_post_tick
    __attribute__((tls_model("initial-exec")));

/* The push itself, and the wake-up. `count`: add the post to mpsc.pushed,
 * for a loop that counts its queue depth (runtime loops). */
static inline __attribute__((always_inline)) int
post_node(cor_loop_t *loop, cor_callback cb, void *arg, bool count) {
  cor__mpsc_node *n = cor__mpsc_node_get_inline();
  if (COR_UNLIKELY(n == NULL))
    return -ENOMEM;
  /* Queue depth (mpsc.pushed - st_ts_run) for runtime loops. A loop with a
   * bounded door counts every post, before the push, so the bound holds.
   * Otherwise the depth is only a counter to read, and a locked increment
   * per post cost ~18 ns with 4 producers: each thread adds 16 every 16th
   * post instead, so the depth reads low by at most 15 per posting thread
   * (never below zero). */
  if (count) {
    if (loop->ts_limit != 0)
      ck_pr_inc_64(&loop->mpsc.pushed);
    else if ((++tls_post_tick & 15) == 0)
      ck_pr_add_64(&loop->mpsc.pushed, 16);
  }
  n->cb = cb;
  n->arg = arg;
  cor__mpsc_push_inline(&loop->mpsc, n);
  /* Dekker with the loop's sleep announcement: our exchange on the queue
   * tail comes before this load (ck_pr_fence_atomic_load: free on x86, where
   * locked instructions are full barriers); the loop's exchange on
   * `sleeping` comes before its queue check. So either the loop sees our
   * node, or we see it asleep. The load alone keeps the common case (loop
   * awake) free of writes to the shared line. */
  ck_pr_fence_atomic_load();
  if (COR_UNLIKELY(ck_pr_load_int(&loop->sleeping))) {
    ck_pr_inc_int(&loop->wakers);
    /* Only the producer that flips sleeping 1 -> 0 writes: one write per
     * sleep however many producers race here. */
    if (ck_pr_fas_int(&loop->sleeping, 0) == 1) {
      uint64_t one = 1;
      ssize_t w = write(loop->wakefd, &one, sizeof one);
      (void)w; /* EAGAIN means the counter is already non-zero: awake */
      ck_pr_inc_64(&loop->st_wake_written);
    }
    ck_pr_dec_int(&loop->wakers);
  }
  return 0;
}

/* A post to a loop with ts_flags set: one that counts its posts (runtime
 * loops), or in debug mode, where cb(arg) is wrapped with its site
 * (ts_site_rec). `count` is false for the bounded door, which counted its
 * post when it reserved its place. */
static __attribute__((noinline)) int post_flagged(cor_loop_t *loop,
                                                  cor_callback cb, void *arg,
                                                  bool count, int tf,
                                                  void *site) {
  count = count && (tf & COR__TS_COUNT);
  if (COR_LIKELY(!(tf & COR__TS_DEBUG)))
    return post_node(loop, cb, arg, count);
  ts_site_rec *r = ts_site_wrap(cb, arg, site);
  if (r == NULL)
    return post_node(loop, cb, arg, count);
  int rc = post_node(loop, ts_site_tramp, r, count);
  if (rc != 0)
    cor__free(r);
  return rc;
}

/* `site`: the public call's return address, used in debug mode only.
 * ts_flags (count | debug) sits on the line `closed` was just read from and
 * is 0 for a lone loop in production mode: one load and one predictable
 * branch, which stand in for the queue-depth check this path always made.
 * A post racing with cor_loop_set_debug may go either way; the loop runs
 * both kinds. */
static inline __attribute__((always_inline)) int
post_threadsafe(cor_loop_t *loop, cor_callback cb, void *arg, bool count,
                void *site) {
  if (COR_UNLIKELY(loop == NULL || cb == NULL))
    return cor__bad_arg("cor_call_soon_threadsafe",
                        loop == NULL ? "loop is NULL" : "cb is NULL");
  if (COR_UNLIKELY(ck_pr_load_int(&loop->closed)))
    return COR_ECLOSED;
  int tf = ck_pr_load_int(&loop->ts_flags);
  if (COR_UNLIKELY(tf != 0))
    return post_flagged(loop, cb, arg, count, tf, site);
  return post_node(loop, cb, arg, false);
}

int cor_call_soon_threadsafe(cor_loop_t *loop, cor_callback cb, void *arg) {
  return post_threadsafe(loop, cb, arg, true, __builtin_return_address(0));
}

int cor__call_soon_threadsafe_at(cor_loop_t *loop, cor_callback cb, void *arg,
                                 void *site) {
  return post_threadsafe(loop, cb, arg, true, site);
}

int cor__loop_post_reserved(cor_loop_t *loop, cor_callback cb, void *arg,
                            void *site) {
  return post_threadsafe(loop, cb, arg, false, site);
}

/* After a batch on a loop with a bounded door: wake the producers waiting
 * for room (cor_call_soon_threadsafe_wait). The fence orders our store of
 * st_ts_run before the load of ts_space_waiters (Dekker with the waiter's
 * increment, then its depth check); only bounded loops pay it. */
static void door_space_wake(cor_loop_t *loop) {
  ck_pr_fence_memory();
  if (ck_pr_load_int(&loop->ts_space_waiters) != 0) {
    ck_pr_inc_int(&loop->ts_space_seq);
    syscall(SYS_futex, &loop->ts_space_seq, FUTEX_WAKE_PRIVATE, INT_MAX,
            NULL, NULL, 0);
  }
}

/* The body of run_threadsafe, once for both modes: `debug` is a constant at
 * each call site, so the compiler makes two specialised copies and the
 * production one carries no trace of debug mode. With debug, each callback
 * is timed (slow callbacks, the watchdog's report) and named with the site
 * that posted it when the producer saw debug mode on (ts_site_tramp). */
static inline __attribute__((always_inline)) unsigned
run_threadsafe_body(cor_loop_t *loop, const bool debug) {
  cor__node_batch b = {0};
  unsigned n = 0;
  unsigned max = loop->ts_batch;
  while (n < max) {
    cor__mpsc_node *node = cor__mpsc_pop_inline(&loop->mpsc);
    if (node == NULL)
      break; /* empty, or a producer mid-push: next iteration sees it */
    cor_callback cb = node->cb;
    void *arg = node->arg;
    cor__node_batch_add_inline(&b, node);
    n++;
    if (debug) {
      void *site = NULL;
      if (cb == ts_site_tramp) {
        ts_site_rec *r = arg;
        cb = r->cb;
        arg = r->arg;
        site = r->site;
        cor__free(r);
      }
      cor__debug_run_cb(loop, cb, arg, site);
    } else {
      cb(arg);
    }
    if (COR_UNLIKELY(loop->closed))
      break;
  }
  cor__node_batch_flush(&b);
  return n;
}

/* Debug mode's copy, out of line so the production path stays small. */
static __attribute__((noinline)) unsigned
run_threadsafe_debug(cor_loop_t *loop) {
  return run_threadsafe_body(loop, true);
}

/* Runs up to ts_batch cross-thread callbacks; returns how many ran. */
static unsigned run_threadsafe(cor_loop_t *loop) {
  if (COR_UNLIKELY(loop->debug))
    return run_threadsafe_debug(loop);
  return run_threadsafe_body(loop, false);
}

/* ------------------------------------------------------------ fds */

static int io_reserve(cor_loop_t *loop, int fd) {
  if (fd < loop->io_cap)
    return 0;
  int cap = loop->io_cap ? loop->io_cap : 64;
  while (cap <= fd)
    cap *= 2;
  cor__io *io = cor__realloc(loop->io, (size_t)cap * sizeof *io);
  if (io == NULL)
    return -ENOMEM;
  memset(io + loop->io_cap, 0, (size_t)(cap - loop->io_cap) * sizeof *io);
  loop->io = io;
  loop->io_cap = cap;
  return 0;
}

#define IO_CALL(bit, on)                                                       \
  ((on) ? ((bit) == COR__POLL_IN ? "cor_loop_add_reader"                       \
                                 : "cor_loop_add_writer")                      \
        : ((bit) == COR__POLL_IN ? "cor_loop_remove_reader"                    \
                                 : "cor_loop_remove_writer"))

static int io_set(cor_loop_t *loop, int fd, unsigned bit, bool on,
                  cor_callback cb, void *arg) {
  if (loop == NULL || fd < 0 || (on && cb == NULL))
    return cor__bad_arg(IO_CALL(bit, on), loop == NULL ? "loop is NULL"
                                          : fd < 0     ? "fd is negative"
                                                       : "cb is NULL");
  COR__CHECK_THREAD(loop, IO_CALL(bit, on));
  if (loop->closed)
    return COR_ECLOSED;
  if (fd == loop->wakefd || fd == loop->sigfd || fd == loop->poller.fd)
    return cor__bad_arg(IO_CALL(bit, on), "fd is one of the loop's own");
  if (!on && (fd >= loop->io_cap || !(loop->io[fd].mask & bit)))
    return -ENOENT;
  int err = io_reserve(loop, fd);
  if (err)
    return err;
  cor__io *io = &loop->io[fd];
  if (io->mask & COR__POLL_ET)
    return on ? -EEXIST : -ENOENT; /* owned by a stream */
  unsigned old = io->mask, mask = on ? old | bit : old & ~bit;
  if (mask != old && (err = cor__poll_set(loop, fd, old, mask)) != 0)
    return err;
  io->mask = mask;
  if (bit == COR__POLL_IN) {
    io->rcb = on ? cb : NULL;
    io->rarg = arg;
  } else {
    io->wcb = on ? cb : NULL;
    io->warg = arg;
  }
  if (old == 0 && mask != 0)
    loop->nio++;
  else if (old != 0 && mask == 0)
    loop->nio--;
  return 0;
}

int cor__loop_io_et_add(cor_loop_t *loop, int fd, cor_callback rcb,
                        cor_callback wcb, void *arg) {
  if (loop == NULL || fd < 0 || rcb == NULL || wcb == NULL)
    return -EINVAL;
  if (loop->closed)
    return COR_ECLOSED;
  int err = io_reserve(loop, fd);
  if (err)
    return err;
  cor__io *io = &loop->io[fd];
  if (io->mask != 0)
    return -EEXIST;
  unsigned mask = COR__POLL_IN | COR__POLL_OUT | COR__POLL_ET;
  if ((err = cor__poll_set(loop, fd, 0, mask)) != 0)
    return err;
  io->mask = mask;
  io->rcb = rcb;
  io->wcb = wcb;
  io->rarg = io->warg = arg;
  loop->nio++;
  return 0;
}

int cor__loop_io_et_del(cor_loop_t *loop, int fd) {
  if (loop == NULL || fd < 0)
    return -EINVAL;
  if (loop->closed)
    return COR_ECLOSED;
  if (fd >= loop->io_cap || !(loop->io[fd].mask & COR__POLL_ET))
    return -ENOENT;
  cor__io *io = &loop->io[fd];
  int err = cor__poll_set(loop, fd, io->mask, 0);
  memset(io, 0, sizeof *io);
  loop->nio--;
  return err;
}

int cor_loop_add_reader(cor_loop_t *loop, int fd, cor_callback cb, void *arg) {
  return io_set(loop, fd, COR__POLL_IN, true, cb, arg);
}
int cor_loop_add_writer(cor_loop_t *loop, int fd, cor_callback cb, void *arg) {
  return io_set(loop, fd, COR__POLL_OUT, true, cb, arg);
}
int cor_loop_remove_reader(cor_loop_t *loop, int fd) {
  return io_set(loop, fd, COR__POLL_IN, false, NULL, NULL);
}
int cor_loop_remove_writer(cor_loop_t *loop, int fd) {
  return io_set(loop, fd, COR__POLL_OUT, false, NULL, NULL);
}

/* An fd callback; in debug mode timed like every other callback. */
static inline void run_io_cb(cor_loop_t *loop, cor_callback cb, void *arg) {
  if (COR_LIKELY(!loop->debug))
    cb(arg);
  else
    cor__debug_run_cb(loop, cb, arg, NULL);
}

void cor__loop_io_ready(cor_loop_t *loop, int fd, unsigned events) {
  if (fd == loop->wakefd) {
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r; /* EAGAIN: another read already reset it */
    return;
  }
  if (fd == loop->sigfd) {
    cor__signal_read(loop);
    return;
  }
  if (fd >= loop->io_cap)
    return;
  /* Re-read the entry before each call: a callback may remove either side
   * (or close the loop) and the other must then not run. */
  cor__io *io = &loop->io[fd];
  loop->io_events = events; /* for edge-triggered callbacks (COR__POLL_HUP) */
  if ((events & COR__POLL_IN) && (io->mask & COR__POLL_IN)) {
    run_io_cb(loop, io->rcb, io->rarg);
    loop->ncb++;
    if (loop->closed || fd >= loop->io_cap)
      return;
    io = &loop->io[fd];
  }
  if ((events & COR__POLL_OUT) && (io->mask & COR__POLL_OUT)) {
    run_io_cb(loop, io->wcb, io->warg);
    loop->ncb++;
  }
}

/* ------------------------------------------------------------ running */

/* The wait, one body for both modes (debug is a constant at each call, so
 * the compiler folds it away). Debug mode times the wait itself (slow
 * polls): the events are dispatched inside cor__poll_wait, and the time
 * their callbacks took is counted by cor__debug_cb_end and left out
 * (cor__debug_slow_poll). */
static inline __attribute__((always_inline)) void
poll_io_body(cor_loop_t *loop, int64_t timeout_ns, const bool debug) {
  uint64_t t0 = 0;
  if (debug) {
    t0 = cor__now_ns();
    cor__debug_poll_begin(loop);
  }
  int n = cor__poll_wait(loop, timeout_ns);
  COR_ASSERT(n >= 0 || n == -ENOMEM);
  if (debug)
    cor__debug_slow_poll(loop, timeout_ns, t0, cor__now_ns());
  loop->last_poll = loop->now;
  ck_pr_store_64(&loop->st_polls, loop->st_polls + 1);
}
static __attribute__((noinline)) void poll_io_debug(cor_loop_t *loop,
                                                    int64_t timeout_ns) {
  poll_io_body(loop, timeout_ns, true);
}
static void poll_io(cor_loop_t *loop, int64_t timeout_ns) {
  if (COR_UNLIKELY(loop->debug))
    poll_io_debug(loop, timeout_ns);
  else
    poll_io_body(loop, timeout_ns, false);
}

/* The ready loop, one body for both modes (debug is a constant at each
 * call, so the compiler folds it away): runs `todo` entries from the head,
 * counting down loop->todo (task.c's direct hand-off consumes it; it is off
 * in debug mode). Debug mode times each callback (slow callbacks), knows
 * its site, tells the watchdog. Subtracts the cancelled entries from *ncb. */
static inline __attribute__((always_inline)) void
run_ready_body(cor_loop_t *loop, uint32_t todo, uint64_t *ncb,
               const bool debug) {
  loop->todo = todo;
  /* The callbacks change the ring anyway: start from memory (the compiler
   * otherwise keeps rlen in a register for the first pass, and then pays a
   * load and a store per entry). */
  __asm__ __volatile__("" ::: "memory");
  while (loop->todo > 0) {
    loop->todo--;
    cor__ready_ent *e = &loop->ready[loop->rhead];
    cor_callback cb = e->cb;
    void *arg = e->arg;
    uint32_t slot = e->slot;
    void *site = NULL;
    loop->rhead = (loop->rhead + 1) & (loop->rcap - 1);
    loop->rlen--;
    if (slot != 0) {
      bool cancelled = loop->slots[slot].state == COR__SLOT_CANCELLED;
      if (debug)
        site = cor__debug_site(loop, slot);
      slot_free(loop, slot);
      if (cancelled) {
        (*ncb)--;
        continue;
      }
    }
    if (debug)
      cor__debug_run_cb(loop, cb, arg, site);
    else
      cb(arg);
    if (COR_UNLIKELY(loop->closed))
      return;
  }
}
static __attribute__((noinline)) void
run_ready_debug(cor_loop_t *loop, uint32_t todo, uint64_t *ncb) {
  run_ready_body(loop, todo, ncb, true);
  loop->todo = 0;
}

/* ------------------------------------------------------------ time counters */

/* busy_ns and idle_ns of cor_loop_stats. The loop thread alone writes them,
 * at the start and end of a run and of an idle period (never in a busy
 * iteration), with times it has read anyway (no clock read, no fence of
 * its own); readers on any thread take a consistent snapshot through a
 * seqlock and add the part of the period in progress (now - its start), so
 * that a sleep in progress reads as idle. A time the loop read a little
 * before publishing it (the top of the iteration, the spin's last look)
 * could make a later reader compute a figure a few hundred nanoseconds
 * below an earlier reader's: readers keep the highest value returned so
 * far (a CAS of their own, off the loop's path), so neither figure ever
 * goes back. */
static inline void tm_write_begin(cor_loop_t *loop) {
  cor__store_rlx(&loop->tm_seq, loop->tm_seq + 1);
}
static inline void tm_write_end(cor_loop_t *loop) {
  /* Release: the fields' stores are visible before the even count. */
  cor__store_rel(&loop->tm_seq, loop->tm_seq + 1);
}
static inline void tm_store(uint64_t *p, uint64_t v) {
  /* Release: ordered after the odd count (readers that see it see odd). */
  cor__store_rel(p, v);
}

/* An idle period starts at t (the iteration's clock read): the loop has
 * nothing to run and spins or sleeps. */
static inline void idle_begin(cor_loop_t *loop, uint64_t t) {
  tm_write_begin(loop);
  tm_store(&loop->tm_idle_from, t);
  tm_write_end(loop);
}

/* It ends at t: the loop has work (a spin caught a post, a wait returned).
 * Sets loop->now. */
static uint64_t idle_end_at(cor_loop_t *loop, uint64_t t) {
  if (t < loop->tm_idle_from)
    t = loop->tm_idle_from;
  tm_write_begin(loop);
  tm_store(&loop->st_idle_ns, loop->st_idle_ns + (t - loop->tm_idle_from));
  tm_store(&loop->tm_idle_from, 0);
  tm_write_end(loop);
  return loop->now = t;
}
static uint64_t idle_end(cor_loop_t *loop) {
  return idle_end_at(loop, cor__now_ns());
}

void cor__loop_awake(cor_loop_t *loop) {
  if (loop->tm_idle_from != 0) /* the loop thread's own field: plain read */
    idle_end(loop);
}

static void run_begin(cor_loop_t *loop) {
  uint64_t t = cor__now_ns();
  tm_write_begin(loop);
  tm_store(&loop->tm_run_from, t);
  tm_write_end(loop);
  /* A busy loop without timers or fds does not read the clock (run_once),
   * but what it stamps with `now` (a task's wait_since, for the task dump)
   * must not be older than this run. */
  loop->now = t;
}

static void run_end(cor_loop_t *loop) {
  if (loop->tm_idle_from != 0)
    idle_end(loop); /* not expected: idle periods end inside run_once */
  uint64_t t = cor__now_ns();
  tm_write_begin(loop);
  tm_store(&loop->tm_run_ns, loop->tm_run_ns + (t - loop->tm_run_from));
  tm_store(&loop->tm_run_from, 0);
  tm_write_end(loop);
}

/* Raises *hw to v if below; returns the larger. */
static uint64_t tm_raise(uint64_t *hw, uint64_t v) {
  uint64_t cur = cor__load_acq(hw);
  while (cur < v && !cor__cas_ar_acq(hw, &cur, v)) {
  }
  return cur > v ? cur : v;
}

/* Any thread. */
static void tm_read(const cor_loop_t *loop, uint64_t *busy, uint64_t *idle) {
  uint64_t s1, s2, idle_ns, idle_from, run_ns, run_from, now;
  for (unsigned k = 0;;) {
    s1 = cor__load_acq(&loop->tm_seq);
    if (s1 & 1) {
      /* A write section is a few stores and one clock read; the writer
       * may have been preempted in it, though (the spin yields). */
      cor__spin_step(&k, UINT64_MAX);
      continue;
    }
    /* Acquire loads: a field stored after the odd count, once seen, makes
     * the count below read odd (or later). */
    idle_ns = cor__load_acq(&loop->st_idle_ns);
    idle_from = cor__load_acq(&loop->tm_idle_from);
    run_ns = cor__load_acq(&loop->tm_run_ns);
    run_from = cor__load_acq(&loop->tm_run_from);
    s2 = cor__load_acq(&loop->tm_seq);
    if (s1 == s2)
      break;
  }
  now = cor__now_ns(); /* after the snapshot: not before its times */
  if (idle_from != 0 && now > idle_from)
    idle_ns += now - idle_from;
  if (run_from != 0 && now > run_from)
    run_ns += now - run_from;
  cor_loop_t *l = (cor_loop_t *)loop; /* the readers' own fields */
  *idle = tm_raise(&l->tm_hw_idle, idle_ns);
  *busy = tm_raise(&l->tm_hw_busy, run_ns > idle_ns ? run_ns - idle_ns : 0);
}

static void run_once(cor_loop_t *loop) {
  /* A busy loop with no timers and no fds has no use for the time: skip the
   * clock read (~28 ns, more than a task switch). It is read below before
   * any wait, and every scheduling call reads the clock itself. */
  uint64_t now = loop->now;
  if (loop->timers.len > 0 || loop->nio > 0 || loop->rlen == 0)
    now = loop->now = cor__now_ns();
  int64_t timeout;
  if (loop->rlen > 0 || loop->stopping || !cor__mpsc_empty(&loop->mpsc))
    timeout = 0;
  else if (loop->timers.len > 0)
    timeout = loop->timers.ents[0].when > now
                  ? (int64_t)(loop->timers.ents[0].when - now)
                  : 0;
  else
    timeout = -1;

  if (timeout != 0) /* idle from here: spinning, then asleep */
    idle_begin(loop, now);
  if (timeout != 0) {
    /* Spin first: a post arriving within spin_ns costs a cache miss
     * instead of a ~13 us eventfd wake-up. Never past the next timer. */
    if (loop->spin_cur > 0 && !cor__poll_pending(loop)) {
      uint64_t until = now + loop->spin_cur, t = now;
      if (timeout > 0 && (uint64_t)timeout < loop->spin_cur)
        until = now + (uint64_t)timeout;
      /* On a loaded machine the thread that would post to us may be
       * waiting for this very core: the spin offers it every few
       * microseconds (cor__spin_step). */
      unsigned k = 0;
      while (cor__mpsc_empty(&loop->mpsc) && cor__spin_step_at(&k, until, &t)) {
      }
      /* Adaptive for loops with fds: the spin watches only the
       * cross-thread queue, so where work mostly arrives on sockets a spin
       * that finds nothing halves the next one, down to 1/32 (~1.5 us per
       * idle moment instead of 50); a spin that catches work earns back its
       * full length. Loops without fds keep the full spin: other threads
       * are their only source of work besides timers. */
      if (!cor__mpsc_empty(&loop->mpsc)) {
        timeout = 0;
        loop->spin_cur = loop->spin_ns;
        ck_pr_store_64(&loop->st_spin_wakes, loop->st_spin_wakes + 1);
        /* At the spin's last clock read: up to 64 relaxes (~1-2 us) of
         * idle count as busy, rather than a clock read per wake-up. */
        now = idle_end_at(loop, t);
      } else {
        if (loop->nio > 0 && loop->spin_cur > loop->spin_ns / 32)
          loop->spin_cur /= 2;
        /* Still idle: the sleep below continues this idle period. */
        loop->now = now = t;
        if (timeout > 0)
          timeout = loop->timers.ents[0].when > now
                        ? (int64_t)(loop->timers.ents[0].when - now)
                        : 0;
      }
    }
  }
  if (timeout != 0) {
    /* Announce sleep, then look at the queue once more (the other half of
     * the Dekker in cor_call_soon_threadsafe). */
    ck_pr_fas_int(&loop->sleeping, 1);
    ck_pr_fence_atomic_load();
    if (!cor__mpsc_empty(&loop->mpsc))
      timeout = 0;
    poll_io(loop, timeout);
    /* If a producer already flipped it, its eventfd write is (or will be)
     * read by the poller: the fd stays registered, so nothing is lost. */
    ck_pr_fas_int(&loop->sleeping, 0);
  } else if ((loop->nio > 0 && now - loop->last_poll >= POLL_INTERVAL_NS) ||
             cor__poll_pending(loop)) {
    /* io_uring: what this iteration's tasks wrote goes out now, in one
     * enter for all of them, rather than after the busy loop's interval. */
    poll_io(loop, 0);
  }
  /* A wait that brought events ended the idle period before running their
   * callbacks (cor__loop_awake, from the poller) and read the clock; one
   * that brought nothing (a timer is due), or a spin cut short by the next
   * timer, ends it here. */
  if (loop->tm_idle_from != 0)
    idle_end(loop);
  now = loop->now;

  /* Due timers join the ready queue after what is already there. */
  while (loop->timers.len > 0 && loop->timers.ents[0].when <= now) {
    uint32_t i = loop->timers.ents[0].slot;
    cor__slot *s = &loop->slots[i];
    if (ready_push(loop, s->cb, s->arg, i) != 0)
      break; /* out of memory: the timer stays due for the next iteration */
    cor__timers_remove(loop, 0);
    s->state = COR__SLOT_READY;
  }

  uint64_t ncb = loop->ncb;
  loop->ncb = 0;
  if (!cor__mpsc_empty(&loop->mpsc)) {
    unsigned n = run_threadsafe(loop);
    ncb += n;
    if (n > 0)
      cor__poll_posted(loop);
    ck_pr_store_64(&loop->st_ts_run, loop->st_ts_run + n);
    if (COR_UNLIKELY(loop->ts_limit != 0))
      door_space_wake(loop);
    if (loop->closed)
      return;
  }

  /* Only what was ready when we got here: callbacks scheduled now run on the
   * next iteration, after the poll. */
  uint32_t todo = loop->rlen;
  ncb += todo;
  if (COR_UNLIKELY(loop->debug))
    run_ready_debug(loop, todo, &ncb);
  else
    run_ready_body(loop, todo, &ncb, false);
  if (COR_UNLIKELY(loop->closed))
    return;
  ck_pr_store_64(&loop->st_callbacks, loop->st_callbacks + ncb);
  ck_pr_store_64(&loop->st_iterations, loop->st_iterations + 1);
  ck_pr_store_64(&loop->st_ready, loop->rlen);
}

int cor__loop_run(cor_loop_t *loop, const char *call) {
  if (loop == NULL)
    return cor__bad_arg(call, "loop is NULL");
  if (ck_pr_load_int(&loop->closed))
    return COR_ECLOSED;
  if (!ck_pr_cas_int(&loop->running, 0, 1)) {
    if (cor__tls_loop == loop)
      return -EBUSY;
    /* Running on another thread: no need to ask cor__wrong_thread, the CAS
     * said so (and its owner_tid may not be stored yet). */
    return cor__wrong_thread_report(loop, call);
  }
  if (cor__tls_loop != NULL) {
    /* Another loop already runs on this thread (a nested run). */
    ck_pr_store_int(&loop->running, 0);
    return -EBUSY;
  }
  loop->owner = pthread_self();
  loop->has_owner = true;
  ck_pr_store_int(&loop->owner_tid, (int)gettid());
  cor__tls_loop = loop;
  run_begin(loop);
  for (;;) {
    run_once(loop);
    if (loop->stopping || loop->closed)
      break;
  }
  run_end(loop);
  loop->stopping = 0;
  cor__tls_loop = NULL;
  ck_pr_store_int(&loop->owner_tid, 0);
  ck_pr_store_int(&loop->running, 0);
  return 0;
}

int cor_loop_run_forever(cor_loop_t *loop) {
  return cor__loop_run(loop, "cor_loop_run_forever");
}

int cor_loop_stop(cor_loop_t *loop) {
  if (loop == NULL)
    return cor__bad_arg("cor_loop_stop", "loop is NULL");
  COR__CHECK_THREAD(loop, "cor_loop_stop");
  if (loop->closed)
    return COR_ECLOSED;
  loop->stopping = 1;
  return 0;
}
