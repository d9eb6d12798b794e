/* SPDX-License-Identifier: MIT */
/* Test helper: captures the records of the "corio" logger (install `sink`
 * with cor_log_set_sink) so that a test can assert their level and text.
 * Header-only; each test binary gets its own buffer. */
#ifndef CORIO_TESTS_LOGCAP_H
#define CORIO_TESTS_LOGCAP_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NREC 64
static struct {
  int level;
  char msg[4096];
} recs[NREC];
static int nrec;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;

#define LOGCAP_UNUSED __attribute__((unused))

/* A cor_log sink: keeps the first NREC records. */
static LOGCAP_UNUSED void sink(void *arg, int level, const char *logger,
                               const char *msg) {
  (void)arg;
  (void)logger;
  pthread_mutex_lock(&rec_mu);
  if (nrec < NREC) {
    recs[nrec].level = level;
    snprintf(recs[nrec].msg, sizeof recs[nrec].msg, "%s", msg);
    nrec++;
  }
  pthread_mutex_unlock(&rec_mu);
}

static LOGCAP_UNUSED void recs_clear(void) {
  pthread_mutex_lock(&rec_mu);
  nrec = 0;
  pthread_mutex_unlock(&rec_mu);
}

/* How many records contain every needle (n2, n3 NULL: not asked); *level
 * (when not NULL) gets the level of the last one, *first the index of the
 * first one (-1 for none). */
static LOGCAP_UNUSED int count_at(const char *n1, const char *n2,
                                  const char *n3, int *level, int *first) {
  int k = 0;
  if (first)
    *first = -1;
  pthread_mutex_lock(&rec_mu);
  for (int i = 0; i < nrec; i++)
    if (strstr(recs[i].msg, n1) && (!n2 || strstr(recs[i].msg, n2)) &&
        (!n3 || strstr(recs[i].msg, n3))) {
      if (k++ == 0 && first)
        *first = i;
      if (level)
        *level = recs[i].level;
    }
  pthread_mutex_unlock(&rec_mu);
  return k;
}
static LOGCAP_UNUSED int count_recs(const char *n1, const char *n2, const char *n3,
                                    int *level) {
  return count_at(n1, n2, n3, level, NULL);
}
/* The first record containing every needle, or -1. */
static LOGCAP_UNUSED int find(const char *n1, const char *n2, const char *n3) {
  int first;
  count_at(n1, n2, n3, NULL, &first);
  return first;
}

static LOGCAP_UNUSED void dump_recs(void) {
  pthread_mutex_lock(&rec_mu);
  for (int i = 0; i < nrec; i++)
    print_message("record %d (%d): %s\n", i, recs[i].level, recs[i].msg);
  pthread_mutex_unlock(&rec_mu);
}

/* A record with the needles at `level_` exists / none has n1. */
#define EXPECT(level_, n1, n2, n3)                                             \
  do {                                                                         \
    int i_ = find((n1), (n2), (n3));                                           \
    if (i_ < 0)                                                                \
      dump_recs();                                                             \
    assert_true(i_ >= 0);                                                      \
    assert_int_equal(recs[i_].level, (level_));                                \
  } while (0)
#define EXPECT_NONE(n1)                                                        \
  do {                                                                         \
    if (find((n1), NULL, NULL) >= 0)                                           \
      dump_recs();                                                             \
    assert_int_equal(find((n1), NULL, NULL), -1);                              \
  } while (0)

/* Exactly n records were captured since the last recs_clear, each at
 * `level` and containing `needle` (the noise a test provokes on purpose,
 * asserted instead of printed); then clears them. */
#define EXPECT_RECORDS(n, lvl_, needle)                                       \
  do {                                                                         \
    int k_ = count_recs((needle), NULL, NULL, NULL);                           \
    int all_ = count_at("", NULL, NULL, NULL, NULL);                           \
    if (k_ != (n) || all_ != (n))                                              \
      dump_recs();                                                             \
    assert_int_equal(all_, (n));                                               \
    assert_int_equal(k_, (n));                                                 \
    for (int i_ = 0; i_ < nrec; i_++)                                          \
      assert_int_equal(recs[i_].level, (lvl_));                               \
    recs_clear();                                                              \
  } while (0)
#define EXPECT_ERRORS(n, needle) EXPECT_RECORDS((n), COR_LOG_ERROR, (needle))

/* cmocka fixtures: records cleared, CORIO_DEBUG unset, the sink on; then
 * the default sink back. */
static LOGCAP_UNUSED int logcap_setup(void **state) {
  (void)state;
  recs_clear();
  unsetenv("CORIO_DEBUG");
  cor_log_set_sink(sink, NULL);
  return 0;
}
static LOGCAP_UNUSED int logcap_teardown(void **state) {
  (void)state;
  cor_log_set_sink(NULL, NULL);
  unsetenv("CORIO_DEBUG");
  return 0;
}

#ifdef F /* the test's own file name, as the library reports it */
static char at_buf[8][128];
static int at_i;
/* "tests/test_x.c:123" */
static LOGCAP_UNUSED const char *at(int line) {
  char *b = at_buf[at_i++ & 7];
  snprintf(b, 128, F ":%d", line);
  return b;
}
/* "File "tests/test_x.c", line 123, in fn" */
static LOGCAP_UNUSED const char *frame(int line, const char *fn) {
  char *b = at_buf[at_i++ & 7];
  snprintf(b, 128, "File \"" F "\", line %d, in %s", line, fn);
  return b;
}
#endif

#endif
