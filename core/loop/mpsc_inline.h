/* SPDX-License-Identifier: MIT */
/* The door's fast paths (core/loop/mpsc.c), inline for core/loop/loop.c: a post is a
 * node from the thread's cache and a push; a run is a pop and a hand-back
 * per node. As out-of-line calls across files they were four calls per
 * message (-O2 builds no LTO); here they fold into cor_call_soon_threadsafe
 * and run_threadsafe. The out-of-line cor__mpsc_* of loop/mpsc.h are these
 * same bodies, for the tests and the harness. */
#ifndef CORIO_CORE_LOOP_MPSC_INLINE_H
#define CORIO_CORE_LOOP_MPSC_INLINE_H

#include "base/atomics.h"
#include "base/base.h"
#include "loop/mpsc.h"

struct cor__node_cache {
  cor__mpsc_node *free; /* owner thread only */
  /* Stack of nodes handed back by consumers: pushed with CAS, taken whole
   * with an exchange, so there is no ABA. Own cache line: consumers write
   * it while the owner works on `free`. */
  cor__mpsc_node *returned COR_ALIGNED_CL;
  cor__node_cache *next_all COR_ALIGNED_CL; /* registry of every cache */
  cor__node_cache *next_parked;
  void **blocks;
  size_t nblocks;
};

extern _Thread_local cor__node_cache *cor__tls_node_cache
    __attribute__((tls_model("initial-exec")));
/* The slow half (core/mpsc.c): a thread's first node, a dry free list. */
cor__mpsc_node *cor__mpsc_node_get_slow(void);

static inline __attribute__((always_inline)) cor__mpsc_node *
cor__mpsc_node_get_inline(void) {
  cor__node_cache *c = cor__tls_node_cache;
  cor__mpsc_node *n;
  if (COR_UNLIKELY(c == NULL || (n = c->free) == NULL))
    return cor__mpsc_node_get_slow();
  c->free = n->next;
  return n;
}

static inline __attribute__((always_inline)) void
cor__mpsc_push_inline(cor__mpsc *q, cor__mpsc_node *n) {
  n->next = NULL;
  /* The exchange publishes n as the new tail; it is a full barrier, so the
   * fields of n written above are visible before any consumer reaches it
   * through prev->next. */
  cor__mpsc_node *prev = ck_pr_fas_ptr(&q->tail, n);
  /* Between the exchange and this store the list is briefly cut: the
   * consumer sees prev->next == NULL while tail != prev and waits. */
  ck_pr_store_ptr(&prev->next, n);
}

static inline __attribute__((always_inline)) cor__mpsc_node *
cor__mpsc_pop_inline(cor__mpsc *q) {
  cor__mpsc_node *head = q->head;
  cor__mpsc_node *next = ck_pr_load_ptr(&head->next);
  if (COR_UNLIKELY(head == &q->stub)) {
    if (next == NULL)
      return NULL;
    q->head = next;
    head = next;
    next = ck_pr_load_ptr(&head->next);
  }
  if (COR_LIKELY(next != NULL)) {
    /* Acquire: the callback fields of head were written before its link. */
    ck_pr_fence_load();
    q->head = next;
    return head;
  }
  if (ck_pr_load_ptr(&q->tail) != head)
    return NULL; /* a producer is mid-push behind head */
  /* head is the last node: put the stub behind it so head can be handed
   * out while the list stays non-empty. */
  cor__mpsc_push_inline(q, &q->stub);
  next = ck_pr_load_ptr(&head->next);
  if (next != NULL) {
    ck_pr_fence_load();
    q->head = next;
    return head;
  }
  return NULL;
}

static inline __attribute__((always_inline)) void
cor__node_batch_add_inline(cor__node_batch *b, cor__mpsc_node *n) {
  if (COR_UNLIKELY(n->owner == NULL))
    return; /* the queue's own stub */
  if (COR_LIKELY(b->owner == n->owner)) {
    n->next = b->first;
    b->first = n;
    b->n++;
    return;
  }
  cor__node_batch_flush(b);
  b->owner = n->owner;
  b->first = b->last = n;
  n->next = NULL;
  b->n = 1;
}

#endif
