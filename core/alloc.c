/* The one allocation path: jemalloc (mallocx/dallocx) in normal builds, the
 * system allocator under the sanitizers, whose interposed malloc must see
 * every allocation. Tests inject failures through a per-thread countdown. */
#include "internal.h"

#ifndef COR_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static _Thread_local long fail_after; /* 0 = off; n = the n-th call fails */
static long alloc_calls;              /* atomic, statistics only */

void cor__alloc_fail_after(long n) { fail_after = n; }
long cor__alloc_count(void) { return ck_pr_load_64((uint64_t *)&alloc_calls); }

static inline bool inject_failure(void) {
  if (COR_LIKELY(fail_after == 0))
    return false;
  if (--fail_after == 0)
    return true;
  return false;
}

void *cor__malloc(size_t n) {
  if (inject_failure())
    return NULL;
#ifndef COR_NO_JEMALLOC
  return mallocx(n ? n : 1, 0);
#else
  return malloc(n ? n : 1);
#endif
}

void *cor__calloc(size_t n, size_t size) {
  if (inject_failure())
    return NULL;
  if (size && n > SIZE_MAX / size)
    return NULL;
#ifndef COR_NO_JEMALLOC
  size_t total = n * size;
  return mallocx(total != 0 ? total : 1, MALLOCX_ZERO);
#else
  return calloc(n ? n : 1, size ? size : 1);
#endif
}

void *cor__realloc(void *p, size_t n) {
  if (inject_failure())
    return NULL;
#ifndef COR_NO_JEMALLOC
  if (p == NULL)
    return mallocx(n ? n : 1, 0);
  return rallocx(p, n ? n : 1, 0);
#else
  return realloc(p, n ? n : 1);
#endif
}

void cor__free(void *p) {
  if (p == NULL)
    return;
#ifndef COR_NO_JEMALLOC
  dallocx(p, 0);
#else
  free(p);
#endif
}

char *cor__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = cor__malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}
