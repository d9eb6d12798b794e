/* SPDX-License-Identifier: MIT */
/* Channels across loops and threads (include/corio/channel.h).
 *
 * The items live in a ring with a sequence number per slot (Vyukov's
 * bounded MPMC queue): a sender claims a position with one CAS on `enq`, a
 * receiver with one CAS on `deq`, and the slot's sequence number hands the
 * item from one to the other. No lock while the channel is neither full
 * nor empty and nobody waits: a send is the CAS, two stores and one load of
 * the receivers' waiter count.
 *
 * Waiting is a notification, never a hand-off: a waiter parks on a small
 * record in a list under `lock`, and whoever changes the ring in the
 * waiter's favour (a send for receivers, a receive for senders, a close for
 * both) unlinks one record and wakes its owner, which then tries the ring
 * again. An item therefore never sits in a waiter's hands, so cancelling
 * or timing out a waiter loses nothing; a waiter that is woken and then
 * leaves without trying (cancelled, timed out) passes its wake-up on to the
 * next waiter. Unlinking the record as it is woken is what coalesces: the
 * sends that follow see no waiter and pay one load, so a burst costs one
 * wake-up per sleep of the receiver. Before parking, a waiter spins a few
 * microseconds (a task only while its loop has nothing else to run), so a
 * steady stream never parks at all.
 *
 * Memory ordering (the lost wake-up argument): a receiver parks by
 * incrementing `nrecvw` (a locked RMW: a full barrier), then loads `enq`;
 * a sender claims with the CAS on `enq` (a full barrier), then loads
 * `nrecvw`. In the single total order of these four, either the sender's
 * load sees the count (and wakes a waiter) or the receiver's load sees the
 * claimed position (and does not sleep: when the item is not published
 * yet, it spins for the few stores that publish it). Senders parking on a
 * full channel mirror it with `nsendw` and `deq`. A close sets the closed
 * bit of `enq` (one atomic OR: later claims fail their CAS) before it takes
 * the lock and wakes every waiter; a waiter checks that bit under the lock
 * as it registers. Receivers report COR_ECLOSED only when the ring is
 * empty up to the final `enq`: an item claimed before the close is always
 * received. */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/object.h"
#include "loop/loop.h"
#include "loop/mpsc.h"
#include "internal.h"
#include "base/list.h"

#include <sched.h>

/* enq's top bit: closed (claims after it fail their CAS). */
#define CLOSED_BIT ((uint64_t)1 << 63)
/* How long a waiter spins on the ring before it parks: a stream whose
 * items come closer together than this never parks (a park costs a door
 * post to the waker's side, ~1 us with a sleeping loop's eventfd). */
#define SPIN_NS 20000u
/* Pseudo code of push/pop: a position claimed by another thread that has
 * not published its slot yet (a few stores away). */
#define IN_FLIGHT (-EINPROGRESS)

/* A slot's sequence for position p: 2p when free for the send of p, 2p+1
 * when holding that send's item; the receive of p frees it for p + cap.
 * Counting in twos keeps "full at p" and "free at p + 1" apart when the
 * capacity is 1. */
typedef struct slot {
  uint64_t seq;
  void *item;
} slot;

/* A parked sender or receiver. Counted: the waiter's reference, and the
 * waker's while it delivers the wake-up (a door post may run after the
 * waiter left). */
typedef struct waiter {
  struct waiter *prev, *next;
  int refs;     /* atomic */
  int notified; /* atomic; the futex word of a thread waiter */
  bool linked;  /* under ch->lock */
  bool waiting; /* cor__wait_embedded's flag: the waiting loop's thread */
  struct cor_loop *loop; /* a task waiter's loop; NULL for a thread */
  struct cor_future fut; /* a task waiter's wait */
} waiter;

typedef struct wlist {
  waiter *head, *tail;
} wlist;

enum { SEND = 0, RECV = 1 };

struct cor_channel {
  cor__obj obj;
  uint64_t cap;
  uint64_t mask; /* cap - 1 when cap is a power of two, else 0 */
  slot *slots;
  void *mem;
  void *slots_mem;
  pthread_mutex_t lock; /* the waiter lists */
  wlist w[2];           /* [SEND], [RECV] */
  /* Senders: claimed positions (and CLOSED_BIT). */
  uint64_t enq COR_ALIGNED_CL;
  /* Receivers: claimed positions. */
  uint64_t deq COR_ALIGNED_CL;
  /* Parked waiters per side, read by the other side after every move (one
   * load of a line written only when someone parks or is woken). */
  int nw[2] COR_ALIGNED_CL;
};

static void channel_free(cor__obj *o);

__attribute__((constructor)) static void channel_module_init(void) {
  cor__obj_register(COR__OBJ_CHANNEL, channel_free);
}

static inline slot *slot_at(cor_channel_t *ch, uint64_t pos) {
  return &ch->slots[ch->mask ? (pos & ch->mask) : (pos % ch->cap)];
}

/* ------------------------------------------------------------ lifecycle */

cor_channel_t *cor_channel_new(const cor_channel_opts *opts) {
  uint64_t cap = opts && opts->capacity ? (uint64_t)opts->capacity : 1024;
  if (cap > ((uint64_t)1 << 32))
    return cor__bad_arg_ptr("cor_channel_new", "capacity above 2^32");
  void *mem = cor__malloc(sizeof(cor_channel_t) + COR_CACHELINE);
  if (mem == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor_channel_t *ch =
      (cor_channel_t *)(((uintptr_t)mem + COR_CACHELINE - 1) &
                        ~(uintptr_t)(COR_CACHELINE - 1));
  memset(ch, 0, sizeof *ch);
  ch->mem = mem;
  ch->cap = cap;
  /* 0 means "use %" (and is right for a capacity of 1 as well). */
  ch->mask = (cap & (cap - 1)) == 0 ? cap - 1 : 0;
  ch->slots_mem = cor__malloc(cap * sizeof(slot) + COR_CACHELINE);
  if (ch->slots_mem == NULL) {
    cor__free(mem);
    errno = ENOMEM;
    return NULL;
  }
  ch->slots = (slot *)(((uintptr_t)ch->slots_mem + COR_CACHELINE - 1) &
                       ~(uintptr_t)(COR_CACHELINE - 1));
  for (uint64_t i = 0; i < cap; i++) {
    ch->slots[i].seq = 2 * i;
    ch->slots[i].item = NULL;
  }
  pthread_mutex_init(&ch->lock, NULL);
  cor__obj_init(&ch->obj, COR__OBJ_CHANNEL);
  return ch;
}

static void channel_free(cor__obj *o) {
  cor_channel_t *ch = (cor_channel_t *)o;
  /* Nobody waits: a waiter holds a reference through its call. Items left
   * are only pointers, dropped (documented in the header). */
  pthread_mutex_destroy(&ch->lock);
  cor__free(ch->slots_mem);
  cor__free(ch->mem);
}

/* ------------------------------------------------------------ the ring */

/* 0, -EAGAIN (truly full), IN_FLIGHT (a receiver is freeing the slot),
 * COR_ECLOSED. */
static inline int push(cor_channel_t *ch, void *item) {
  uint64_t pos = ck_pr_load_64(&ch->enq);
  for (;;) {
    if (COR_UNLIKELY(pos & CLOSED_BIT))
      return COR_ECLOSED;
    slot *s = slot_at(ch, pos);
    /* Acquire: the receiver of pos - cap read its item before it freed the
     * slot. */
    uint64_t seq = ck_pr_load_64(&s->seq);
    int64_t dif = (int64_t)(seq - 2 * pos);
    if (dif == 0) {
      /* Full barrier (lock cmpxchg): the Dekker with parking receivers
       * (the nw[RECV] load after it, in the caller). Fails when another
       * sender claimed pos, or the channel closed. */
      if (ck_pr_cas_64_value(&ch->enq, pos, pos + 1, &pos)) {
        s->item = item;
        /* Release: the item before the sequence that publishes it. */
        ck_pr_store_64(&s->seq, 2 * pos + 1);
        return 0;
      }
    } else if (dif < 0) {
      /* The slot still holds the item of pos - cap. */
      uint64_t d = ck_pr_load_64(&ch->deq);
      if (d + ch->cap <= pos)
        return -EAGAIN;
      return IN_FLIGHT;
    } else {
      pos = ck_pr_load_64(&ch->enq); /* another sender moved on */
    }
  }
}

/* 0, -EAGAIN (truly empty), IN_FLIGHT (a sender is publishing the slot),
 * COR_ECLOSED (closed and empty up to the last claim). */
static inline int pop(cor_channel_t *ch, void **item) {
  uint64_t pos = ck_pr_load_64(&ch->deq);
  for (;;) {
    slot *s = slot_at(ch, pos);
    /* Acquire: pairs with the sender's release store of the sequence. */
    uint64_t seq = ck_pr_load_64(&s->seq);
    int64_t dif = (int64_t)(seq - (2 * pos + 1));
    if (dif == 0) {
      /* Full barrier: the Dekker with parking senders (nw[SEND]). */
      if (ck_pr_cas_64_value(&ch->deq, pos, pos + 1, &pos)) {
        *item = s->item;
        /* Release: our read of the item before the slot is free again. */
        ck_pr_store_64(&s->seq, 2 * (pos + ch->cap));
        return 0;
      }
    } else if (dif < 0) {
      uint64_t e = ck_pr_load_64(&ch->enq);
      if ((e & ~CLOSED_BIT) <= pos)
        return (e & CLOSED_BIT) ? COR_ECLOSED : -EAGAIN;
      return IN_FLIGHT;
    } else {
      pos = ck_pr_load_64(&ch->deq);
    }
  }
}

/* After a park registration (the count's increment was a full barrier):
 * whether the ring may have moved in this side's favour, so the waiter
 * must not sleep. */
static bool may_proceed(cor_channel_t *ch, int side) {
  uint64_t e = ck_pr_load_64(&ch->enq);
  uint64_t d = ck_pr_load_64(&ch->deq);
  if (e & CLOSED_BIT)
    return true;
  return side == RECV ? e > d : d + ch->cap > e;
}

/* ------------------------------------------------------------ waking */

static void w_put(waiter *w) {
  bool zero = false;
  ck_pr_dec_32_zero((uint32_t *)&w->refs, &zero);
  if (zero) {
    ck_pr_fence_acquire();
    cor__free(w);
  }
}

static void wl_push(wlist *l, waiter *w) {
  cor__list_push_back(&l->head, &l->tail, w);
}

static void wl_unlink(wlist *l, waiter *w) {
  cor__list_unlink_ht(&l->head, &l->tail, w);
}

/* Posted to a task waiter's loop: runs on that loop's thread, where
 * `waiting` lives. The task may have left meanwhile (cancelled, timed
 * out): then the flag is down and the future is not touched. */
static void wake_posted(void *p) {
  waiter *w = p;
  if (w->waiting)
    cor__wake_embedded(&w->fut, true, 0);
  w_put(w);
}

/* Delivers the wake-up of a waiter unlinked under the lock; consumes the
 * reference the waker took there. */
static void deliver(waiter *w) {
  if (w->loop == NULL) {
    cor__futex_wake_all(&w->notified);
    w_put(w);
  } else if (w->loop == cor__tls_loop) {
    wake_posted(w);
  } else if (cor_call_soon_threadsafe(w->loop, wake_posted, w) != 0) {
    /* The loop is closed: its tasks are gone. */
    w_put(w);
  }
}

/* Unlinks (and marks) the first waiter of `side` under the lock. NULL when
 * nobody waits. The caller delivers. */
static waiter *take_one(cor_channel_t *ch, int side) {
  pthread_mutex_lock(&ch->lock);
  waiter *w = ch->w[side].head;
  if (w) {
    wl_unlink(&ch->w[side], w);
    w->linked = false;
    ck_pr_dec_int(&ch->nw[side]);
    ck_pr_inc_32((uint32_t *)&w->refs);
    /* Seq-cst: a thread waiter's futex word; read after its wake. */
    ck_pr_fas_int(&w->notified, 1);
  }
  pthread_mutex_unlock(&ch->lock);
  return w;
}

static __attribute__((noinline)) void wake_one(cor_channel_t *ch, int side) {
  waiter *w = take_one(ch, side);
  if (w)
    deliver(w);
}

/* After a successful move: tell the other side when someone parks there.
 * One load on the fast path. */
static inline void notify(cor_channel_t *ch, int side) {
  if (COR_UNLIKELY(ck_pr_load_int(&ch->nw[side]) != 0))
    wake_one(ch, side);
}

/* ------------------------------------------------------------ parking */

/* Parks the caller on `side` until woken, the deadline (UINT64_MAX: none)
 * or, for a task, a cancellation. Returns 0 (woken, or the ring moved:
 * try again), -ETIMEDOUT, -ECANCELED, -ENOMEM. */
static int park(cor_channel_t *ch, int side, uint64_t deadline,
                const char *call, const void *site) {
  waiter *w = cor__malloc(sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  w->prev = w->next = NULL;
  w->refs = 1;
  w->notified = 0;
  w->waiting = false;
  w->loop = cor__tls_task ? cor__tls_loop : NULL;
  pthread_mutex_lock(&ch->lock);
  if (ck_pr_load_64(&ch->enq) & CLOSED_BIT) {
    pthread_mutex_unlock(&ch->lock);
    cor__free(w);
    return 0; /* the retry reports it (receivers drain first) */
  }
  wl_push(&ch->w[side], w);
  w->linked = true;
  /* Full barrier: the Dekker with the other side's claim (see the top). */
  ck_pr_inc_int(&ch->nw[side]);
  pthread_mutex_unlock(&ch->lock);

  int rc = 0;
  if (!may_proceed(ch, side)) {
    if (w->loop) {
      rc = cor__wait_embedded(w->loop, &w->fut, &w->waiting,
                              deadline == UINT64_MAX ? 0 : deadline, call,
                              site);
    } else {
      while (ck_pr_load_int(&w->notified) == 0) {
        if (cor__futex_wait(&w->notified, 0, deadline) == -ETIMEDOUT ||
            (deadline != UINT64_MAX && cor__now_ns() >= deadline)) {
          rc = -ETIMEDOUT;
          break;
        }
      }
    }
  }

  pthread_mutex_lock(&ch->lock);
  bool woken = !w->linked;
  if (w->linked) {
    wl_unlink(&ch->w[side], w);
    w->linked = false;
    ck_pr_dec_int(&ch->nw[side]);
  }
  pthread_mutex_unlock(&ch->lock);
  if (woken && rc == -ETIMEDOUT)
    rc = 0; /* woken at the deadline: one more try decides */
  if (woken && rc != 0) {
    /* Woken, but leaving without trying the ring (cancelled): the wake-up
     * was meant for someone of this side; hand it to the next waiter. */
    wake_one(ch, side);
  }
  w_put(w);
  return rc;
}

/* The wait of send and recv: spins, parks, tries again. `item` is the item
 * to send or where to put the received one. */
static __attribute__((noinline)) int slow(cor_channel_t *ch, int side,
                                          void **item, uint64_t deadline,
                                          const char *call, const void *site) {
  uint64_t spin_end = 0;
  bool timed_out = false;
  unsigned kf = 0, ks = 0; /* cor__spin_step's counts: in flight, spin */
  for (;;) {
    int rc = side == SEND ? push(ch, *item) : pop(ch, item);
    if (rc == 0) {
      notify(ch, side ^ 1);
      return 0;
    }
    if (rc == COR_ECLOSED)
      return rc;
    if (rc == IN_FLIGHT) {
      /* A few stores away, unless its thread was preempted: offer the
       * core now and then. */
      cor__spin_step(&kf, UINT64_MAX);
      continue;
    }
    if (timed_out)
      return -ETIMEDOUT;
    uint64_t now = cor__now_ns();
    if (deadline != UINT64_MAX && now >= deadline)
      return -ETIMEDOUT;
    /* A loop callback must not block its loop. */
    if (cor__tls_task == NULL && cor__tls_loop != NULL)
      return COR_ENOTASK;
    if (spin_end == 0)
      spin_end = now + SPIN_NS;
    /* Spin while it is cheap: a task only while its loop has nothing else
     * to run (nothing ready, no cross-thread post). */
    bool spin = now < spin_end && now < deadline;
    if (spin && cor__tls_task != NULL) {
      cor_loop_t *loop = cor__tls_loop;
      spin = !cor__loop_has_work(loop);
    }
    if (spin) {
      /* A few pauses between tries; the spin yields now and then (more
       * threads than cores: the other side may need this core). */
      for (int i = 0; i < 32 && cor__spin_step(&ks, spin_end); i++) {
      }
      continue;
    }
    rc = park(ch, side, deadline, call, site);
    if (rc == -ETIMEDOUT) {
      timed_out = true; /* one last try, then -ETIMEDOUT */
      continue;
    }
    if (rc != 0)
      return rc;
    spin_end = 0; /* woken: spin again before the next park */
  }
}

/* ------------------------------------------------------------ public */

int cor_channel_try_send(cor_channel_t *ch, void *item) {
  if (ch == NULL)
    return cor__bad_arg("cor_channel_try_send", "ch is NULL");
  int rc = push(ch, item);
  if (rc == 0) {
    notify(ch, RECV);
    return 0;
  }
  return rc == IN_FLIGHT ? -EAGAIN : rc;
}

int cor_channel_try_recv(cor_channel_t *ch, void **item) {
  if (ch == NULL || item == NULL)
    return cor__bad_arg("cor_channel_try_recv",
                        ch == NULL ? "ch is NULL" : "item is NULL");
  int rc = pop(ch, item);
  if (rc == 0) {
    notify(ch, SEND);
    return 0;
  }
  return rc == IN_FLIGHT ? -EAGAIN : rc;
}

int cor_channel_send(cor_channel_t *ch, void *item, double timeout) {
  if (ch == NULL)
    return cor__bad_arg("cor_channel_send", "ch is NULL");
  uint64_t deadline;
  if (cor__deadline_after(timeout, &deadline) != 0)
    return cor__bad_arg("cor_channel_send", "timeout is NaN");
  int rc = push(ch, item);
  if (COR_LIKELY(rc == 0)) {
    notify(ch, RECV);
    return 0;
  }
  if (rc == COR_ECLOSED)
    return rc;
  return slow(ch, SEND, &item, deadline, "cor_channel_send",
              __builtin_return_address(0));
}

int cor_channel_recv(cor_channel_t *ch, void **item, double timeout) {
  if (ch == NULL || item == NULL)
    return cor__bad_arg("cor_channel_recv",
                        ch == NULL ? "ch is NULL" : "item is NULL");
  uint64_t deadline;
  if (cor__deadline_after(timeout, &deadline) != 0)
    return cor__bad_arg("cor_channel_recv", "timeout is NaN");
  void *v;
  int rc = pop(ch, &v);
  if (COR_LIKELY(rc == 0)) {
    notify(ch, SEND);
    *item = v;
    return 0;
  }
  if (rc == COR_ECLOSED)
    return rc;
  rc = slow(ch, RECV, &v, deadline, "cor_channel_recv",
            __builtin_return_address(0));
  if (rc == 0)
    *item = v;
  return rc;
}

int cor_channel_close(cor_channel_t *ch) {
  if (ch == NULL)
    return cor__bad_arg("cor_channel_close", "ch is NULL");
  /* Claims after this fail their CAS (they compare a position without the
   * bit). */
  uint64_t old = ck_pr_load_64(&ch->enq);
  for (;;) {
    if (old & CLOSED_BIT)
      return COR_ECLOSED;
    if (ck_pr_cas_64_value(&ch->enq, old, old | CLOSED_BIT, &old))
      break;
  }
  /* Every waiter of both sides: they retry and see the close. */
  for (int side = 0; side < 2; side++) {
    waiter *w;
    while ((w = take_one(ch, side)) != NULL)
      deliver(w);
  }
  return 0;
}
