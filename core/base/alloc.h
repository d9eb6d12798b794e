/* SPDX-License-Identifier: MIT */
/* Memory (core/base/alloc.c). Not installed. */
#ifndef CORIO_CORE_BASE_ALLOC_H
#define CORIO_CORE_BASE_ALLOC_H

#include "base/base.h"

/* The one allocation path (core/base/alloc.c): jemalloc's mallocx/dallocx in
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

#endif
