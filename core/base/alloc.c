/* SPDX-License-Identifier: MIT */
/* The one allocation path: jemalloc (mallocx/dallocx) in normal builds, the
 * system allocator under the sanitizers, whose interposed malloc must see
 * every allocation. Tests inject failures through a per-thread countdown. */
#include "base/alloc.h"
#include "base/base.h"

#ifndef COR_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static _Thread_local long fail_after; /* 0 = off; n = the n-th call fails */

void cor__alloc_fail_after(long n) { fail_after = n; }

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

/* Growable arrays (the slot table, the timer heap) can reach tens of MiB
 * under timer storms. Growing them by realloc copies every byte into freshly
 * faulted pages, and in this paravirtual guest a page fault is the dominant
 * cost of a storm. Past BIG_ARRAY bytes they live in their own mapping and
 * grow with mremap, which moves page tables instead of bytes. New bytes are
 * always zero. */
#include <sys/mman.h>

#define BIG_ARRAY (1u << 20)

static size_t page_round(size_t n) {
  size_t pg = 4096;
  return (n + pg - 1) & ~(pg - 1);
}

void *cor__array_resize(void *p, size_t old, size_t n) {
  if (inject_failure())
    return NULL;
  if (n == 0)
    n = 1;
  if (old < BIG_ARRAY && n < BIG_ARRAY) {
#ifndef COR_NO_JEMALLOC
    void *q = p ? rallocx(p, n, 0) : mallocx(n, 0);
#else
    void *q = realloc(p, n);
#endif
    if (q != NULL && n > old)
      memset((char *)q + old, 0, n - old);
    return q;
  }
  if (old < BIG_ARRAY) {
    /* crossing up into a mapping */
    void *q = mmap(NULL, page_round(n), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
      return NULL;
    if (p != NULL) {
      memcpy(q, p, old);
      cor__free(p);
    }
    return q;
  }
  if (n < BIG_ARRAY) {
    /* shrinking back under the threshold */
    void *q = cor__malloc(n);
    if (q == NULL)
      return NULL;
    memcpy(q, p, n);
    munmap(p, page_round(old));
    return q;
  }
  void *q = mremap(p, page_round(old), page_round(n), MREMAP_MAYMOVE);
  return q == MAP_FAILED ? NULL : q;
}

void cor__array_free(void *p, size_t size) {
  if (p == NULL)
    return;
  if (size < BIG_ARRAY)
    cor__free(p);
  else
    munmap(p, page_round(size));
}
