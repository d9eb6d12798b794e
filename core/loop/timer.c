/* SPDX-License-Identifier: MIT */
/* The timer heap: a 4-ary min-heap of (deadline, sequence, slot) entries in
 * one array. Ordering by sequence on equal deadlines gives asyncio's "ties in
 * scheduling order". Each slot stores its entry's index, so cancelling removes
 * the timer at once (O(log n)) instead of leaving a tombstone: a loop that
 * schedules and cancels millions of timers keeps its memory flat. */
#include "base/alloc.h"
#include "base/base.h"
#include "loop/loop.h"
#include "loop/timer.h"

/* Four children per node: half the depth of a binary heap, and the
 * children of a node sit in adjacent cache lines, so a pop from a heap of a
 * million timers misses the cache about half as often. */
#define ARITY 4

static inline bool ent_less(const cor__timer_ent *a, const cor__timer_ent *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(struct cor_loop *loop, uint32_t i,
                         const cor__timer_ent *e) {
  loop->timers.ents[i] = *e;
  loop->slots[e->slot].heap_idx = i;
}

static void sift_up(struct cor_loop *loop, uint32_t i, cor__timer_ent e) {
  cor__timer_ent *ents = loop->timers.ents;
  while (i > 0) {
    uint32_t parent = (i - 1) / ARITY;
    if (!ent_less(&e, &ents[parent]))
      break;
    place(loop, i, &ents[parent]);
    i = parent;
  }
  place(loop, i, &e);
}

static void sift_down(struct cor_loop *loop, uint32_t i, cor__timer_ent e) {
  cor__timer_ent *ents = loop->timers.ents;
  uint32_t len = loop->timers.len;
  for (;;) {
    uint32_t first = ARITY * i + 1, c = first;
    if (first >= len)
      break;
    uint32_t end = first + ARITY < len ? first + ARITY : len;
    for (uint32_t k = first + 1; k < end; k++)
      if (ent_less(&ents[k], &ents[c]))
        c = k;
    if (!ent_less(&ents[c], &e))
      break;
    place(loop, i, &ents[c]);
    i = c;
  }
  place(loop, i, &e);
}

int cor__timers_push(struct cor_loop *loop, uint64_t when, uint32_t slot) {
  cor__timer_heap *h = &loop->timers;
  if (h->len == h->cap) {
    uint32_t cap = h->cap ? h->cap * 2 : 64;
    cor__timer_ent *ents = cor__array_resize(h->ents, (size_t)h->cap * sizeof *ents,
                                            (size_t)cap * sizeof *ents);
    if (ents == NULL)
      return -ENOMEM;
    h->ents = ents;
    h->cap = cap;
  }
  cor__timer_ent e = {.when = when, .seq = loop->timer_seq++, .slot = slot};
  sift_up(loop, h->len++, e);
  return 0;
}

void cor__timers_remove(struct cor_loop *loop, uint32_t i) {
  cor__timer_heap *h = &loop->timers;
  COR_ASSERT(i < h->len);
  cor__timer_ent last = h->ents[--h->len];
  if (i == h->len)
    goto shrink;
  if (i > 0 && ent_less(&last, &h->ents[(i - 1) / ARITY]))
    sift_up(loop, i, last);
  else
    sift_down(loop, i, last);
shrink:
  /* Give memory back after a storm: halve when a quarter full. */
  if (h->cap > 1024 && h->len < h->cap / 4) {
    cor__timer_ent *ents = cor__array_resize(h->ents, (size_t)h->cap * sizeof *ents,
                                              (size_t)(h->cap / 2) * sizeof *ents);
    if (ents != NULL) {
      h->ents = ents;
      h->cap /= 2;
    }
  }
}

void cor__timers_free(struct cor_loop *loop) {
  cor__array_free(loop->timers.ents, (size_t)loop->timers.cap * sizeof *loop->timers.ents);
  loop->timers.ents = NULL;
  loop->timers.len = loop->timers.cap = 0;
}
