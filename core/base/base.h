/* SPDX-License-Identifier: MIT */
/* What every file of the library starts from (layer base, the lowest):
 * the public API, the sanitizer of this build, branch hints, the CPU's
 * spin pause, container-of, cache-line alignment, COR_ASSERT. Not
 * installed. */
#ifndef CORIO_CORE_BASE_BASE_H
#define CORIO_CORE_BASE_BASE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <corio.h>

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
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
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

#endif
