/* SPDX-License-Identifier: MIT */
/* cor_stream_writev and cor_stream_sendfile (core/stream.c), on both
 * back-ends of socket streams (each test runs on a loop with io_uring as
 * the kernel allows, then on one with epoll) and on pipe streams. The peer
 * is a plain thread reading the other end of a socketpair, slowly when a
 * test wants the socket's buffer full. */
#include "taskbody.h"

#include <corio.h>

#include "logcap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* ------------------------------------------------------------ the reader */

/* A thread reading fd to EOF into a buffer, `delay_us` between reads of
 * `chunk` bytes. */
typedef struct {
  int fd;
  size_t chunk;
  int delay_us;
  char *got;
  size_t n, cap;
  pthread_t th;
} reader_t;

static void *reader_main(void *arg) {
  reader_t *r = arg;
  char *buf = malloc(r->chunk);
  for (;;) {
    ssize_t k = read(r->fd, buf, r->chunk);
    if (k <= 0)
      break;
    if (r->n + (size_t)k > r->cap) {
      r->cap = (r->n + (size_t)k) * 2;
      r->got = realloc(r->got, r->cap);
    }
    memcpy(r->got + r->n, buf, (size_t)k);
    r->n += (size_t)k;
    if (r->delay_us)
      usleep((useconds_t)r->delay_us);
  }
  free(buf);
  return NULL;
}
static void reader_start(reader_t *r, int fd, size_t chunk, int delay_us) {
  memset(r, 0, sizeof *r);
  r->fd = fd;
  r->chunk = chunk;
  r->delay_us = delay_us;
  assert_int_equal(pthread_create(&r->th, NULL, reader_main, r), 0);
}
static void reader_join(reader_t *r) {
  pthread_join(r->th, NULL);
  close(r->fd);
}

/* A file of n bytes of a known pattern, unlinked; its fd. */
static char pattern_at(size_t i) { return (char)('a' + (i * 7 + i / 4093) % 26); }
static int pattern_file(size_t n) {
  char path[] = "/tmp/corio-sendfile-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  char *b = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++)
    b[i] = pattern_at(i);
  assert_int_equal(write(fd, b, n), (ssize_t)n);
  free(b);
  return fd;
}
static bool is_pattern(const char *p, size_t n, size_t from) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != pattern_at(from + i))
      return false;
  return true;
}

/* ------------------------------------------------------------ writev */

static int writev_body(void *arg, void **res) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  cor_stream_t *s = cor_stream_from_fd(loop, sv[0]);
  CHECK(s != NULL);
  reader_t r;
  reader_start(&r, sv[1], 4096, 0);
  struct iovec v[3] = {{"GET ", 4}, {"/index", 6}, {" HTTP/1.1\r\n", 11}};
  CHECK(cor_stream_writev(s, v, 3) == 0);
  CHECK(cor_stream_writev(s, v, 0) == 0);
  /* Big pieces behind queued bytes, in order: 4 MiB in 64 pieces. */
  size_t piece = 64 * 1024, total = 0;
  char *big = malloc(piece * 64);
  for (size_t i = 0; i < piece * 64; i++)
    big[i] = pattern_at(i);
  struct iovec bv[64];
  for (int i = 0; i < 64; i++)
    bv[i] = (struct iovec){big + (size_t)i * piece, piece};
  CHECK(cor_stream_writev(s, bv, 32) == 0);
  CHECK(cor_stream_writev(s, bv + 32, 32) == 0);
  total = piece * 64;
  CHECK(cor_stream_drain(s) == 0);
  CHECK(cor_stream_write_eof(s) == 0);
  CHECK(cor_stream_drain(s) == 0);
  cor_stream_close(s);
  CHECK(cor_stream_wait_closed(s) == 0);
  cor_stream_free(s);
  reader_join(&r);
  CHECK(r.n == 21 + total);
  CHECK(memcmp(r.got, "GET /index HTTP/1.1\r\n", 21) == 0);
  CHECK(memcmp(r.got + 21, big, total) == 0);
  free(r.got);
  free(big);
  return 0;
}

static int writev_misuse_body(void *arg, void **res) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  cor_stream_t *s = cor_stream_from_fd(loop, sv[0]);
  struct iovec bad[1] = {{NULL, 3}};
  CHECK(cor_stream_writev(NULL, bad, 1) == -EINVAL);
  CHECK(cor_stream_writev(s, NULL, 1) == -EINVAL);
  CHECK(cor_stream_writev(s, bad, -1) == -EINVAL);
  CHECK(cor_stream_writev(s, bad, 1) == -EINVAL);
  CHECK(cor_stream_writev(s, bad, 100000) == -EINVAL);
  /* The peer gone: the error, never a SIGPIPE. */
  close(sv[1]);
  struct iovec v[1] = {{"x", 1}};
  int rc = 0;
  for (int i = 0; i < 100 && rc == 0; i++) {
    rc = cor_stream_writev(s, v, 1);
    if (rc == 0)
      rc = cor_stream_drain(s);
    if (rc == 0)
      cor_sleep(0.001);
  }
  CHECK(rc == -EPIPE || rc == -ECONNRESET);
  cor_stream_close(s);
  CHECK(cor_stream_writev(s, v, 1) == rc || cor_stream_writev(s, v, 1) ==
                                               COR_ECLOSED);
  cor_stream_free(s);
  return 0;
}

static void test_writev(void **st) {
  recs_clear();
  run_body_new_loop(0, writev_body, NULL);
  run_body_new_loop(-1, writev_body, NULL);
  run_body_new_loop(0, writev_misuse_body, NULL);
  run_body_new_loop(-1, writev_misuse_body, NULL);
  EXPECT_ERRORS(10, "cor_stream_writev(): invalid argument");
}

/* ------------------------------------------------------------ sendfile */

/* A file larger than the socket's buffer to a slow reader, after bytes
 * written before it; then a range of it, then what is left after an
 * offset (count 0). */
static int sendfile_body(void *arg, void **res) {
  size_t fsize = (size_t)test_scale(8 << 20, 2 << 20);
  int fd = pattern_file(fsize);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  int small = 16 * 1024;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  cor_stream_t *s = cor_stream_from_fd(loop, sv[0]);
  CHECK(s != NULL);
  reader_t r;
  reader_start(&r, sv[1], 16 * 1024, 200);
  CHECK(cor_stream_write(s, "HEAD", 4) == 0);
  CHECK(cor_stream_sendfile(s, fd, 0, fsize) == (ssize_t)fsize);
  CHECK(cor_stream_sendfile(s, fd, 1000, 5000) == 5000);
  CHECK(cor_stream_sendfile(s, fd, (off_t)fsize - 777, 0) == 777);
  /* Past the end: nothing, no error. */
  CHECK(cor_stream_sendfile(s, fd, (off_t)fsize + 10, 100) == 0);
  /* The file's own position did not move. */
  CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)fsize);
  CHECK(cor_stream_write(s, "TAIL", 4) == 0);
  CHECK(cor_stream_write_eof(s) == 0);
  cor_stream_close(s);
  CHECK(cor_stream_wait_closed(s) == 0);
  cor_stream_free(s);
  reader_join(&r);
  close(fd);
  size_t want = 4 + fsize + 5000 + 777 + 4;
  CHECK(r.n == want);
  CHECK(memcmp(r.got, "HEAD", 4) == 0);
  CHECK(is_pattern(r.got + 4, fsize, 0));
  CHECK(is_pattern(r.got + 4 + fsize, 5000, 1000));
  CHECK(is_pattern(r.got + 4 + fsize + 5000, 777, fsize - 777));
  CHECK(memcmp(r.got + want - 4, "TAIL", 4) == 0);
  free(r.got);
  return 0;
}

/* A source sendfile(2) refuses (a pipe) and a pipe stream as the
 * destination: the copy path, same bytes. */
static int sendfile_copy_body(void *arg, void **res) {
  int src[2], sv[2];
  CHECK(pipe2(src, O_CLOEXEC) == 0);
  CHECK(write(src[1], "from a pipe", 11) == 11);
  close(src[1]);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  cor_stream_t *s = cor_stream_from_fd(loop, sv[0]);
  reader_t r;
  reader_start(&r, sv[1], 4096, 0);
  CHECK(cor_stream_sendfile(s, src[0], 0, 0) == -ESPIPE); /* no offsets */
  close(src[0]);
  /* A regular file into a pipe stream. */
  int fd = pattern_file(300000);
  int pp[2];
  CHECK(pipe2(pp, O_CLOEXEC | O_NONBLOCK) == 0);
  fcntl(pp[0], F_SETFL, 0);
  cor_stream_t *ps = cor_stream_from_fd(loop, pp[1]);
  CHECK(ps != NULL);
  reader_t pr;
  reader_start(&pr, pp[0], 8192, 50);
  CHECK(cor_stream_sendfile(ps, fd, 0, 0) == 300000);
  cor_stream_close(ps);
  CHECK(cor_stream_wait_closed(ps) == 0);
  cor_stream_free(ps);
  reader_join(&pr);
  CHECK(pr.n == 300000 && is_pattern(pr.got, 300000, 0));
  free(pr.got);
  close(fd);
  cor_stream_close(s);
  CHECK(cor_stream_wait_closed(s) == 0);
  cor_stream_free(s);
  reader_join(&r);
  free(r.got);
  return 0;
}

/* The peer gone mid-file: its error, no SIGPIPE; bad arguments. */
static int sendfile_reset_body(void *arg, void **res) {
  int fd = pattern_file(4 << 20);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  cor_stream_t *s = cor_stream_from_fd(loop, sv[0]);
  close(sv[1]);
  ssize_t rc = cor_stream_sendfile(s, fd, 0, 0);
  CHECK(rc == -EPIPE || rc == -ECONNRESET);
  CHECK(cor_stream_sendfile(NULL, fd, 0, 1) == -EINVAL);
  CHECK(cor_stream_sendfile(s, -1, 0, 1) == -EINVAL);
  CHECK(cor_stream_sendfile(s, fd, -5, 1) == -EINVAL);
  cor_stream_close(s);
  CHECK(cor_stream_sendfile(s, fd, 0, 1) == COR_ECLOSED ||
        cor_stream_sendfile(s, fd, 0, 1) == rc);
  cor_stream_free(s);
  close(fd);
  return 0;
}

static void test_sendfile(void **st) {
  recs_clear();
  run_body_new_loop(0, sendfile_body, NULL);
  run_body_new_loop(-1, sendfile_body, NULL);
  run_body_new_loop(0, sendfile_copy_body, NULL);
  run_body_new_loop(-1, sendfile_copy_body, NULL);
  run_body_new_loop(0, sendfile_reset_body, NULL);
  run_body_new_loop(-1, sendfile_reset_body, NULL);
  EXPECT_ERRORS(6, "cor_stream_sendfile(): invalid argument");
}

static void test_sendfile_outside_task(void **st) {
  cor_loop_t *l = cor_loop_new(NULL);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  cor_stream_t *s = cor_stream_from_fd(l, sv[0]);
  assert_int_equal(cor_stream_sendfile(s, 0, 0, 1), COR_ENOTASK);
  cor_stream_close(s);
  cor_stream_free(s);
  close(sv[1]);
  assert_int_equal(cor_loop_close(l), 0);
  cor_release(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_writev),
      cmocka_unit_test(test_sendfile),
      cmocka_unit_test(test_sendfile_outside_task),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
