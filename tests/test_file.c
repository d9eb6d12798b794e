/* SPDX-License-Identifier: MIT */
/* File I/O from tasks (core/file.c), on both paths: each test runs on a
 * loop with io_uring (as the kernel allows) and on one without (the file
 * pool of core/offload.c). */
#include "taskbody.h"

#include <corio.h>

#include "logcap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];
static char pattern_at(size_t i) { return (char)('A' + (i * 13 + i / 511) % 26); }

/* ------------------------------------------------------------ basics */

static int basics_body(void *arg, void **r) {
  cor_file_t *f = NULL;
  CHECK(cor_file_open("/nonexistent/corio/x", O_RDONLY, 0, &f) == -ENOENT);
  CHECK(f == NULL);
  CHECK(cor_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, &f) == 0);
  CHECK(f != NULL && cor_file_fd(f) >= 0);
  CHECK((fcntl(cor_file_fd(f), F_GETFD) & FD_CLOEXEC) != 0);
  size_t n = 1 << 20;
  char *w = malloc(n), *rd = malloc(n);
  for (size_t i = 0; i < n; i++)
    w[i] = pattern_at(i);
  size_t done = 0;
  while (done < n) {
    ssize_t k = cor_file_pwrite(f, w + done, n - done, (off_t)done);
    CHECK(k > 0);
    done += (size_t)k;
  }
  CHECK(cor_file_fsync(f) == 0);
  /* Reads at offsets, in pieces. */
  for (size_t off = 0; off < n; off += 65536) {
    ssize_t k = cor_file_pread(f, rd + off, 65536, (off_t)off);
    CHECK(k == 65536);
  }
  CHECK(memcmp(w, rd, n) == 0);
  CHECK(cor_file_pread(f, rd, 100, (off_t)n) == 0); /* the end */
  CHECK(cor_file_pread(f, rd, 0, 0) == 0);
  CHECK(cor_file_pread(f, rd, 10, (off_t)n - 4) == 4);
  /* Misuse. */
  CHECK(cor_file_pread(f, NULL, 10, 0) == -EINVAL);
  CHECK(cor_file_pread(f, rd, 10, -1) == -EINVAL);
  CHECK(cor_file_pread(NULL, rd, 10, 0) == -EINVAL);
  CHECK(cor_file_open(NULL, O_RDONLY, 0, &f) == -EINVAL);
  CHECK(cor_file_open(path, O_RDONLY, 0, NULL) == -EINVAL);
  /* Close: later calls COR_ECLOSED, a second close too. */
  int fd = cor_file_fd(f);
  CHECK(cor_file_close(f) == 0);
  CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
  CHECK(cor_file_fd(f) == -1);
  CHECK(cor_file_pread(f, rd, 1, 0) == COR_ECLOSED);
  CHECK(cor_file_pwrite(f, rd, 1, 0) == COR_ECLOSED);
  CHECK(cor_file_fsync(f) == COR_ECLOSED);
  CHECK(cor_file_close(f) == COR_ECLOSED);
  cor_file_free(f);
  /* Freed without a close: closed in place. */
  CHECK(cor_file_open(path, O_RDONLY, 0, &f) == 0);
  fd = cor_file_fd(f);
  cor_file_free(f);
  CHECK(fcntl(fd, F_GETFD) == -1);
  cor_file_free(NULL);
  free(w);
  free(rd);
  return 0;
}
static void test_basics(void **s) {
  recs_clear();
  run_body_new_loop(0, basics_body, NULL);
  run_body_new_loop(-1, basics_body, NULL);
  EXPECT_ERRORS(10, "(): invalid argument");
}

/* ------------------------------------------------------------ concurrency */

static cor_file_t *shared;
static int bad_reads;
static int reader_body(void *arg, void **r) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  char buf[4096];
  for (int i = 0; i < 50; i++) {
    seed = seed * 1103515245u + 12345u;
    size_t off = (size_t)(seed % 255) * 4096;
    ssize_t k = cor_file_pread(shared, buf, sizeof buf, (off_t)off);
    if (k != (ssize_t)sizeof buf) {
      bad_reads++;
      continue;
    }
    for (size_t j = 0; j < sizeof buf; j++)
      if (buf[j] != pattern_at(off + j)) {
        bad_reads++;
        break;
      }
  }
  return 0;
}
static int concurrent_body(void *arg, void **r) {
  CHECK(cor_file_open(path, O_RDONLY, 0, &shared) == 0);
  enum { T = 32 };
  cor_task_t *t[T];
  cor_future_t *f[T];
  bad_reads = 0;
  for (int i = 0; i < T; i++) {
    t[i] = cor_create_task(loop, cor_coro(reader_body, (void *)(uintptr_t)(i + 1)),
                           NULL);
    CHECK(t[i] != NULL);
    f[i] = cor_task_future(t[i]);
  }
  CHECK(cor_gather(f, T, NULL, NULL) == 0);
  for (int i = 0; i < T; i++)
    cor_release(t[i]);
  CHECK(bad_reads == 0);
  CHECK(cor_file_close(shared) == 0);
  cor_file_free(shared);
  return 0;
}
static void write_pattern_file(size_t n) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  for (size_t i = 0; i < n; i++)
    fputc(pattern_at(i), fp);
  fclose(fp);
}
static void test_concurrent_reads(void **s) {
  write_pattern_file(256 * 4096);
  run_body_new_loop(0, concurrent_body, NULL);
  run_body_new_loop(-1, concurrent_body, NULL);
}

/* ------------------------------------------------------------ cancel, close */

static int cancelled_rc;
static int cancelled_reader(void *arg, void **r) {
  char buf[8192];
  cancelled_rc = (int)cor_file_pread(shared, buf, sizeof buf, 0);
  return 0;
}
static int closer_rc = 1;
static int closer(void *arg, void **r) {
  closer_rc = cor_file_close(shared);
  return 0;
}
static int cancel_body(void *arg, void **r) {
  CHECK(cor_file_open(path, O_RDONLY, 0, &shared) == 0);
  /* Cancelled before its first suspension: -ECANCELED, and only after the
   * operation let go of the buffer (ASan would see a late write into the
   * finished task's stack). */
  for (int i = 0; i < 10; i++) {
    cor_task_t *t = cor_create_task(loop, cor_coro(cancelled_reader, NULL), NULL);
    CHECK(cor_task_cancel(t, NULL) == 0);
    CHECK(cor_await_task(t, NULL) == 0);
    CHECK(cancelled_rc == -ECANCELED);
    cor_release(t);
  }
  /* Closed by another task while a read runs: the read completes, the
   * descriptor goes when it did. */
  int fd = cor_file_fd(shared);
  cor_task_t *a = cor_create_task(loop, cor_coro(reader_body, (void *)7), NULL);
  cor_task_t *b = cor_create_task(loop, cor_coro(closer, NULL), NULL);
  bad_reads = 0;
  CHECK(cor_await_task(b, NULL) == 0);
  CHECK(cor_await_task(a, NULL) == 0);
  CHECK(closer_rc == 0);
  /* the first read was in flight at the close; later ones see it closed */
  CHECK(bad_reads >= 49);
  CHECK(fcntl(fd, F_GETFD) == -1);
  cor_release(a);
  cor_release(b);
  cor_file_free(shared);
  return 0;
}
static void test_cancel_and_close(void **s) {
  write_pattern_file(256 * 4096);
  run_body_new_loop(0, cancel_body, NULL);
  run_body_new_loop(-1, cancel_body, NULL);
}

static void test_outside_task(void **s) {
  cor_file_t *f = NULL;
  assert_int_equal(cor_file_open(path, O_RDONLY, 0, &f), COR_ENOTASK);
  assert_null(f);
}

int main(void) {
  snprintf(path, sizeof path, "/tmp/corio-test-file-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basics),
      cmocka_unit_test(test_concurrent_reads),
      cmocka_unit_test(test_cancel_and_close),
      cmocka_unit_test(test_outside_task),
  };
  int rc = cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
  unlink(path);
  return rc;
}
