/* SPDX-License-Identifier: MIT */
/* The queue for the tasks of one loop (asyncio.Queue, LifoQueue,
 * PriorityQueue, with 3.13's shutdown).
 *
 * Storage: FIFO and LIFO keep a ring of `void *` (a power-of-two capacity,
 * so an index is a mask away); PRIORITY keeps a binary min-heap of (item,
 * sequence number) entries, the number breaking ties in put order. Both
 * grow by doubling when a put finds them full (a bounded queue stops at the
 * power of two at or above its maxsize), never shrink.
 *
 * Waiting: getters, putters and joiners each wait on a pop-on-wake waiter
 * list (core/sync_internal.h): the node is on the waiting task's stack, the
 * waker unlinks it and completes its embedded future, so a wait allocates
 * nothing and a wake-up is O(1). A woken waiter has an item (a getter) or a
 * slot (a putter) promised to it until it runs: get_promised and
 * put_promised count them, and the task calls' fast paths leave that many
 * alone, so a newcomer cannot take what a woken waiter was promised. The
 * invariant kept after every change: a getter waits (unwoken) only while
 * count <= get_promised, a putter only while count + put_promised >= maxsize.
 * A woken waiter that is cancelled before it runs gives its promise back and
 * wakes the next one (no lost wake-up); one that finds its unit taken by a
 * _nowait call (which, as asyncio's, takes what is there) waits again at the
 * head of the list, keeping its turn. Every
 * waiter unlinks itself (or was unlinked) before its call returns, so
 * cancelled waiters never pile up in the lists (CPython bpo-31620).
 *
 * The hot path: a put or get that need not wait is the owner check, one
 * compare, the ring store or load, and one test for a waiter on the other
 * side. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/error.h"
#include "base/object.h"
#include "loop/loop.h"
#include "task/sync_internal.h"
#include <corio/queue.h>

typedef struct hent {
  void *item;
  uint64_t seq; /* put order: ties of cmp come out oldest first */
} hent;

struct cor_queue {
  cor__obj obj; /* sync_head's two fields first: cor__sync_new */
  cor_loop_t *loop;
  /* The hot part. */
  size_t count;
  size_t head; /* ring: index of the oldest item */
  size_t mask; /* capacity - 1; capacity a power of two */
  union {
    void **ring;
    hent *heap;
  };
  /* Put's fast path: count + put_promised < limit. room, or 0 once shut
   * down (so shutdown costs the fast path nothing). */
  size_t limit;
  size_t get_promised, put_promised;
  wlist getters, putters;
  uint8_t kind;
  bool shut;
  /* The rest. */
  size_t room; /* maxsize, SIZE_MAX for unbounded */
  size_t maxsize;
  size_t unfinished; /* puts not yet task_done'd */
  uint64_t seq;
  int (*cmp)(const void *, const void *);
  wlist joiners;
};

/* What the task dump says of a queue a task waits on. */
static void queue_describe(const void *obj, cor__buf *out) {
  const struct cor_queue *q = obj;
  cor__buf_printf(out, " (%zu items", q->count);
  if (q->maxsize)
    cor__buf_printf(out, " of maxsize %zu", q->maxsize);
  cor__buf_printf(out, ", %zu unfinished%s)", q->unfinished,
                  q->shut ? ", shut down" : "");
}
static const cor__wait_kind queue_get_kind = {"queue (get)", queue_describe};
static const cor__wait_kind queue_put_kind = {"queue (put)", queue_describe};
static const cor__wait_kind queue_join_kind = {"queue (join)", queue_describe};

static void queue_free(cor__obj *o) {
  struct cor_queue *q = (struct cor_queue *)o;
  /* The items are the application's: dropped, never freed. */
  cor__free(q->ring);
  cor__sync_free(o);
}

__attribute__((constructor)) static void queue_register(void) {
  cor__obj_register(COR__OBJ_QUEUE, queue_free);
}

static size_t entry_size(const struct cor_queue *q) {
  return q->kind == COR_QUEUE_PRIORITY ? sizeof(hent) : sizeof(void *);
}

cor_queue_t *cor_queue_new(cor_loop_t *loop, const cor_queue_opts *opts) {
  cor_queue_opts o = opts ? *opts : (cor_queue_opts){0};
  if ((unsigned)o.kind > COR_QUEUE_PRIORITY)
    return cor__bad_arg_ptr("cor_queue_new", "opts->kind is not a kind");
  if (o.kind == COR_QUEUE_PRIORITY && o.cmp == NULL)
    return cor__bad_arg_ptr("cor_queue_new",
                            "opts->cmp is NULL for COR_QUEUE_PRIORITY");
  struct cor_queue *q = cor__sync_new(loop, sizeof *q, COR__OBJ_QUEUE,
                                      "cor_queue_new");
  if (q == NULL)
    return NULL;
  q->kind = (uint8_t)o.kind;
  q->cmp = o.cmp;
  q->maxsize = o.maxsize;
  q->room = q->limit = o.maxsize ? o.maxsize : SIZE_MAX;
  /* 16 entries to start (fewer for a smaller bounded queue): put grows it. */
  size_t cap = 16;
  while (o.maxsize && cap / 2 >= o.maxsize)
    cap /= 2;
  q->mask = cap - 1;
  q->ring = cor__malloc(cap * entry_size(q));
  if (q->ring == NULL) {
    cor_release(q);
    errno = ENOMEM;
    return NULL;
  }
  return q;
}

/* ------------------------------------------------------------ storage */

static __attribute__((noinline)) int grow(struct cor_queue *q) {
  size_t cap = q->mask + 1, esz = entry_size(q);
  if (cap > SIZE_MAX / 2 / esz)
    return -ENOMEM;
  void *n = cor__malloc(2 * cap * esz);
  if (n == NULL)
    return -ENOMEM;
  if (q->kind == COR_QUEUE_PRIORITY) {
    memcpy(n, q->heap, q->count * esz);
  } else {
    /* Unwrap the ring: the oldest item to index 0. */
    size_t first = cap - q->head < q->count ? cap - q->head : q->count;
    memcpy(n, q->ring + q->head, first * esz);
    memcpy((void **)n + first, q->ring, (q->count - first) * esz);
    q->head = 0;
  }
  cor__free(q->ring);
  q->ring = n;
  q->mask = 2 * cap - 1;
  return 0;
}

static bool hless(const struct cor_queue *q, const hent *a, const hent *b) {
  int c = q->cmp(a->item, b->item);
  return c < 0 || (c == 0 && a->seq < b->seq);
}

static __attribute__((noinline)) void heap_push(struct cor_queue *q,
                                                void *item) {
  hent e = {item, q->seq++};
  size_t i = q->count;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!hless(q, &e, &q->heap[p]))
      break;
    q->heap[i] = q->heap[p];
    i = p;
  }
  q->heap[i] = e;
}

/* Pops the smallest; q->count already counts it out. */
static __attribute__((noinline)) void *heap_pop(struct cor_queue *q) {
  void *top = q->heap[0].item;
  size_t n = q->count;
  if (n == 0)
    return top;
  hent last = q->heap[n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && hless(q, &q->heap[c + 1], &q->heap[c]))
      c++;
    if (!hless(q, &q->heap[c], &last))
      break;
    q->heap[i] = q->heap[c];
    i = c;
  }
  q->heap[i] = last;
  return top;
}

/* ------------------------------------------------------------ wake-ups */

/* Restore the invariants after items or promises changed: wake getters
 * while an item is not promised (everyone once shut down), putters while a
 * slot is not promised (everyone once shut down). */
static __attribute__((noinline)) void wake_getters(struct cor_queue *q) {
  while (q->getters.head && (q->count > q->get_promised || q->shut)) {
    wl_pop_wake(&q->getters);
    q->get_promised++;
  }
}

static __attribute__((noinline)) void wake_putters(struct cor_queue *q) {
  while (q->putters.head &&
         (q->shut || q->count + q->put_promised < q->room)) {
    wl_pop_wake(&q->putters);
    q->put_promised++;
  }
}

static void wake_joiners(struct cor_queue *q) {
  while (wl_pop_wake(&q->joiners))
    ;
}

/* Stores item (there is room by the caller's check, the storage may grow)
 * and wakes a getter. 0 or -ENOMEM. */
static inline int give(struct cor_queue *q, void *item) {
  if (COR_UNLIKELY(q->count > q->mask)) {
    int rc = grow(q);
    if (rc != 0)
      return rc;
  }
  if (COR_LIKELY(q->kind != COR_QUEUE_PRIORITY))
    q->ring[(q->head + q->count) & q->mask] = item;
  else
    heap_push(q, item);
  q->count++;
  q->unfinished++;
  if (COR_UNLIKELY(q->getters.head != NULL))
    wake_getters(q);
  return 0;
}

/* Takes the next item (count > 0 by the caller's check) and wakes a
 * putter. */
static inline void *take(struct cor_queue *q) {
  void *item;
  q->count--;
  if (COR_LIKELY(q->kind == COR_QUEUE_FIFO)) {
    item = q->ring[q->head];
    q->head = (q->head + 1) & q->mask;
  } else if (q->kind == COR_QUEUE_LIFO) {
    item = q->ring[(q->head + q->count) & q->mask];
  } else {
    item = heap_pop(q);
  }
  if (COR_UNLIKELY(q->putters.head != NULL))
    wake_putters(q);
  return item;
}

/* ------------------------------------------------------------ put / get */

static __attribute__((noinline)) int put_wait(struct cor_queue *q, void *item,
                                              const void *site) {
  if (q->shut)
    return COR_ECLOSED;
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  cor_retain(q); /* the list nodes point into it while we wait */
  bool front = false;
  int rc;
  for (;;) {
    bool woken;
    rc = wl_wait_pop_on(&q->putters, q->loop, front, &woken, "cor_queue_put",
                        site, &queue_put_kind, q);
    if (woken)
      q->put_promised--;
    if (rc != 0) {
      if (woken)
        wake_putters(q); /* cancelled after the wake-up: pass the slot on */
      break;
    }
    if (q->shut) {
      rc = COR_ECLOSED;
      break;
    }
    if (q->count < q->room) {
      rc = give(q, item);
      if (rc != 0)
        wake_putters(q); /* no memory: the slot is still free */
      break;
    }
    front = true; /* a put_nowait took the slot: wait again, first */
  }
  cor_release(q);
  return rc;
}

int cor_queue_put(cor_queue_t *q, void *item) {
  if (COR_UNLIKELY(q == NULL))
    return cor__bad_arg("cor_queue_put", "q is NULL");
  COR__CHECK_THREAD(q->loop, "cor_queue_put");
  if (COR_LIKELY(q->count + q->put_promised < q->limit))
    return give(q, item);
  return put_wait(q, item, __builtin_return_address(0));
}

int cor_queue_put_nowait(cor_queue_t *q, void *item) {
  if (COR_UNLIKELY(q == NULL))
    return cor__bad_arg("cor_queue_put_nowait", "q is NULL");
  COR__CHECK_THREAD(q->loop, "cor_queue_put_nowait");
  if (q->shut)
    return COR_ECLOSED;
  if (q->count >= q->room)
    return -EAGAIN;
  return give(q, item);
}

static __attribute__((noinline)) int get_wait(struct cor_queue *q,
                                              void **item, const void *site) {
  if (q->shut) {
    /* Shut down: drain what is left, then closed. */
    if (q->count == 0)
      return COR_ECLOSED;
    *item = take(q);
    return 0;
  }
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  cor_retain(q);
  bool front = false;
  int rc;
  for (;;) {
    bool woken;
    rc = wl_wait_pop_on(&q->getters, q->loop, front, &woken, "cor_queue_get",
                        site, &queue_get_kind, q);
    if (woken)
      q->get_promised--;
    if (rc != 0) {
      if (woken)
        wake_getters(q); /* cancelled after the wake-up: pass the item on */
      break;
    }
    if (q->count > 0) {
      *item = take(q);
      break;
    }
    if (q->shut) {
      rc = COR_ECLOSED;
      break;
    }
    front = true; /* a get_nowait took the item: wait again, first */
  }
  cor_release(q);
  return rc;
}

int cor_queue_get(cor_queue_t *q, void **item) {
  if (COR_UNLIKELY(q == NULL))
    return cor__bad_arg("cor_queue_get", "q is NULL");
  if (COR_UNLIKELY(item == NULL))
    return cor__bad_arg("cor_queue_get", "item is NULL");
  COR__CHECK_THREAD(q->loop, "cor_queue_get");
  if (COR_LIKELY(q->count > q->get_promised)) {
    *item = take(q);
    return 0;
  }
  return get_wait(q, item, __builtin_return_address(0));
}

int cor_queue_get_nowait(cor_queue_t *q, void **item) {
  if (COR_UNLIKELY(q == NULL))
    return cor__bad_arg("cor_queue_get_nowait", "q is NULL");
  if (COR_UNLIKELY(item == NULL))
    return cor__bad_arg("cor_queue_get_nowait", "item is NULL");
  COR__CHECK_THREAD(q->loop, "cor_queue_get_nowait");
  if (q->count == 0)
    return q->shut ? COR_ECLOSED : -EAGAIN;
  *item = take(q);
  return 0;
}

/* ------------------------------------------------------------ join */

int cor_queue_task_done(cor_queue_t *q) {
  if (q == NULL)
    return cor__bad_arg("cor_queue_task_done", "q is NULL");
  COR__CHECK_THREAD(q->loop, "cor_queue_task_done");
  if (q->unfinished == 0)
    return -EPERM;
  if (--q->unfinished == 0)
    wake_joiners(q);
  return 0;
}

int cor_queue_join(cor_queue_t *q) {
  if (q == NULL)
    return cor__bad_arg("cor_queue_join", "q is NULL");
  COR__CHECK_THREAD(q->loop, "cor_queue_join");
  if (q->unfinished == 0)
    return 0;
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  cor_retain(q);
  bool woken;
  /* As asyncio's (an Event underneath): a woken joiner returns 0 even if
   * more items were put before it ran. */
  int rc = wl_wait_pop_on(&q->joiners, q->loop, false, &woken,
                          "cor_queue_join", __builtin_return_address(0),
                          &queue_join_kind, q);
  cor_release(q);
  return rc;
}

/* ------------------------------------------------------------ shutdown */

int cor_queue_shutdown(cor_queue_t *q, bool immediate) {
  if (q == NULL)
    return cor__bad_arg("cor_queue_shutdown", "q is NULL");
  COR__CHECK_THREAD(q->loop, "cor_queue_shutdown");
  q->shut = true;
  q->limit = 0;
  if (immediate && q->count > 0) {
    size_t n = q->count;
    q->count = 0;
    q->head = 0;
    q->unfinished = q->unfinished > n ? q->unfinished - n : 0;
    if (q->unfinished == 0)
      wake_joiners(q);
  }
  wake_getters(q);
  wake_putters(q);
  return 0;
}

/* ------------------------------------------------------------ state */

size_t cor_queue_qsize(const cor_queue_t *q) {
  if (q == NULL) {
    cor__bad_arg("cor_queue_qsize", "q is NULL");
    errno = EINVAL;
    return 0;
  }
  COR__CHECK_THREAD_VAL(q->loop, "cor_queue_qsize", 0);
  return q->count;
}

size_t cor_queue_maxsize(const cor_queue_t *q) {
  if (q == NULL) {
    cor__bad_arg("cor_queue_maxsize", "q is NULL");
    errno = EINVAL;
    return 0;
  }
  COR__CHECK_THREAD_VAL(q->loop, "cor_queue_maxsize", 0);
  return q->maxsize;
}

bool cor_queue_empty(const cor_queue_t *q) {
  if (q == NULL) {
    cor__bad_arg("cor_queue_empty", "q is NULL");
    errno = EINVAL;
    return false;
  }
  COR__CHECK_THREAD_VAL(q->loop, "cor_queue_empty", false);
  return q->count == 0;
}

bool cor_queue_full(const cor_queue_t *q) {
  if (q == NULL) {
    cor__bad_arg("cor_queue_full", "q is NULL");
    errno = EINVAL;
    return false;
  }
  COR__CHECK_THREAD_VAL(q->loop, "cor_queue_full", false);
  return q->maxsize > 0 && q->count >= q->maxsize;
}
