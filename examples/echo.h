/* SPDX-License-Identifier: MIT */
/* The echo connection handler of examples/echo_server.c, shared with the
 * perf harness's posts_under_load (perf/wl_net.c), which serves the same
 * echo in its own process. */
#ifndef CORIO_EXAMPLES_ECHO_H
#define CORIO_EXAMPLES_ECHO_H

#include <corio.h>

/* A server handler: whatever arrives is written straight back from the
 * stream's own buffer (peek and consume: no copy), with drain for
 * back-pressure. Returns 0 when the client leaves, else the stream's error. */
static inline int echo_connection(void *arg, void **res) {
  (void)res;
  cor_stream_t *s = arg;
  for (;;) {
    const char *d;
    ssize_t n = cor_stream_peek(s, 1, &d);
    if (n <= 0)
      return (int)n; /* 0: the client left */
    int rc = cor_stream_write(s, d, (size_t)n);
    cor_stream_consume(s, (size_t)n);
    if (rc == 0)
      rc = cor_stream_drain(s);
    if (rc != 0)
      return rc;
  }
}

#endif
