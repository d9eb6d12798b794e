/* SPDX-License-Identifier: MIT */
/* The cross-thread queue (core/loop/mpsc.c). Not installed. */
#ifndef CORIO_CORE_LOOP_MPSC_H
#define CORIO_CORE_LOOP_MPSC_H

#include "base/base.h"

/* The cross-thread queue (core/loop/mpsc.c): a Vyukov intrusive MPSC list (one
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

#endif
