/* SPDX-License-Identifier: MIT */
/* The timer heap (core/loop/timer.c). Not installed. */
#ifndef CORIO_CORE_LOOP_TIMER_H
#define CORIO_CORE_LOOP_TIMER_H

#include "base/base.h"

/* The timer heap (core/loop/timer.c): a 4-ary min-heap of (deadline, sequence,
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

/* timer heap (core/loop/timer.c) */
int cor__timers_push(struct cor_loop *loop, uint64_t when, uint32_t slot);
void cor__timers_remove(struct cor_loop *loop, uint32_t heap_idx);
void cor__timers_free(struct cor_loop *loop);

#endif
