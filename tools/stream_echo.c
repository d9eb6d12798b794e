/* SPDX-License-Identifier: MIT */
/* A fixed, single-process stream workload for instruction counts
 * (valgrind --tool=callgrind): one task sends N messages of SIZE bytes
 * through a socketpair and reads each back on the other end
 * (cor_stream_write + cor_stream_readexactly both ways). Deterministic
 * enough that two builds' totals compare; CORIO_IO=epoll picks the epoll
 * back-end. Usage: stream_echo [N [SIZE]]. Build:
 *   cc -O2 -Iinclude tools/stream_echo.c build/libcorio.a -luring -lck \
 *      -lpthread -ldl -ldw -ljemalloc -lm -o build/stream_echo */
#include <corio.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static long n_msgs = 20000;
static size_t msg_size = 64;

static int echo(void *arg, void **result) {
  (void)arg;
  (void)result;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return -1;
  cor_stream_t *a = cor_stream_from_fd(NULL, sv[0]);
  cor_stream_t *b = cor_stream_from_fd(NULL, sv[1]);
  if (a == NULL || b == NULL)
    return -1;
  char out[4096], in[4096];
  memset(out, 'x', sizeof out);
  for (long i = 0; i < n_msgs; i++) {
    if (cor_stream_write(a, out, msg_size) != 0 ||
        cor_stream_readexactly(b, in, msg_size, NULL) != (ssize_t)msg_size ||
        cor_stream_write(b, in, msg_size) != 0 ||
        cor_stream_readexactly(a, in, msg_size, NULL) != (ssize_t)msg_size) {
      fprintf(stderr, "stream_echo: failed at message %ld\n", i);
      return -1;
    }
  }
  cor_stream_close(a);
  cor_stream_close(b);
  cor_stream_free(a);
  cor_stream_free(b);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1)
    n_msgs = atol(argv[1]);
  if (argc > 2)
    msg_size = (size_t)atol(argv[2]);
  if (msg_size == 0 || msg_size > 4096)
    msg_size = 64;
  int rc = cor_run(echo, NULL, NULL);
  printf("stream_echo: %ld messages of %zu bytes: %s\n", n_msgs, msg_size,
         rc == 0 ? "ok" : "FAILED");
  return rc == 0 ? 0 : 1;
}
