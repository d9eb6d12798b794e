/* SPDX-License-Identifier: MIT */
/* Shared helpers for the cmocka suites. */
#ifndef CORIO_TESTUTIL_H
#define CORIO_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Stress counts shrink under the sanitizers (CORIO_TEST_SCALE=small, set by
 * `make test-asan` / `make test-tsan`), which run 5-20x slower. */
static inline long test_scale(long full, long small) {
  const char *s = getenv("CORIO_TEST_SCALE");
  return (s && strcmp(s, "small") == 0) ? small : full;
}

/* A test that cannot run here is reported skipped, never passed. */
#define TEST_SKIP_IF(cond, why)                                                \
  do {                                                                         \
    if (cond) {                                                                \
      print_message("skipped: %s\n", why);                                     \
      skip();                                                                  \
    }                                                                          \
  } while (0)

#endif
