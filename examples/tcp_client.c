/* SPDX-License-Identifier: MIT */
/* tcp_client: a line-oriented TCP client, and the load generator of the
 * tcp_echo benchmark.
 *
 *   examples/tcp_client [--host H] --port N [LINE...]
 *       sends each LINE (default "hello") followed by a newline, reads the
 *       reply line and prints it.
 *   examples/tcp_client [--host H] --port N --bench C D [--loops N]
 *       keeps C connections, each sending a 64-byte message and waiting for
 *       its echo, for D seconds, on a runtime of its own; checks every echo
 *       and prints "MESSAGES=n ERRORS=e MISMATCHES=m P99_US=x". */
#include <corio.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *host = "127.0.0.1";
static char port[16] = "7000";

/* ------------------------------------------------------------ lines */

typedef struct {
  int argc;
  char **argv;
} lines_arg;

static int lines_main(void *arg, void **res) {
  lines_arg *a = arg;
  cor_stream_t *s;
  cor_connect_opts o = {.timeout = 5};
  int rc = cor_open_connection_opts(host, port, &o, &s);
  if (rc != 0) {
    fprintf(stderr, "connect %s:%s: %s\n", host, port, cor_strerror(rc));
    return rc;
  }
  cor_stream_set_timeouts(s, 5, 0);
  char *dflt[] = {"hello"};
  char **lines = a->argc ? a->argv : dflt;
  int n = a->argc ? a->argc : 1;
  for (int i = 0; i < n && rc == 0; i++) {
    char buf[4096];
    size_t len = strlen(lines[i]);
    if (len >= sizeof buf - 1)
      len = sizeof buf - 2;
    memcpy(buf, lines[i], len);
    buf[len++] = '\n';
    if ((rc = cor_stream_write(s, buf, len)) != 0)
      break;
    ssize_t got = cor_stream_readline(s, buf, sizeof buf);
    if (got <= 0) {
      rc = got < 0 ? (int)got : -ECONNRESET;
      break;
    }
    fwrite(buf, 1, (size_t)got, stdout);
  }
  fflush(stdout);
  cor_stream_close(s);
  cor_stream_wait_closed(s);
  cor_stream_free(s);
  if (rc != 0)
    fprintf(stderr, "tcp_client: %s\n", cor_strerror(rc));
  return rc;
}

/* ------------------------------------------------------------ bench */

#define MSG 64
#define HIST_US 100000 /* latency histogram: 1 us buckets up to 100 ms */

typedef struct {
  double end;              /* loop time at which to stop */
  unsigned long messages;  /* per-loop counters, summed at the end */
  unsigned long errors, mismatches;
  unsigned *hist;          /* per connection task's loop: own histogram */
} bench_conn;

static int bench_conn_main(void *arg, void **res) {
  bench_conn *b = arg;
  cor_stream_t *s;
  cor_connect_opts o = {.timeout = 5};
  int rc = cor_open_connection_opts(host, port, &o, &s);
  if (rc != 0) {
    b->errors++;
    return 0;
  }
  cor_stream_set_timeouts(s, 10, 0);
  char msg[MSG], back[MSG];
  unsigned long seq = 0;
  memset(msg, 'm', sizeof msg);
  while (cor_loop_time(NULL) < b->end) {
    snprintf(msg, sizeof msg, "%p:%lu", (void *)b, seq++);
    uint64_t t0 = cor_loop_time_ns(NULL);
    if ((rc = cor_stream_write(s, msg, MSG)) != 0)
      break;
    ssize_t n = cor_stream_readexactly(s, back, MSG, NULL);
    if (n != MSG) {
      rc = n < 0 ? (int)n : -EPROTO;
      break;
    }
    uint64_t us = (cor_loop_time_ns(NULL) - t0) / 1000;
    b->hist[us < HIST_US ? us : HIST_US - 1]++;
    if (memcmp(msg, back, MSG) != 0)
      b->mismatches++;
    b->messages++;
  }
  if (rc != 0)
    b->errors++;
  cor_stream_close(s);
  cor_stream_free(s);
  return 0;
}

typedef struct {
  bench_conn *conns;
  unsigned c;
  unsigned nloops;
  cor_runtime_t *rt;
} bench_ctx;

int main(int argc, char **argv) {
  int nargs = 0;
  char **args = calloc((size_t)argc, sizeof *args);
  long bench_c = 0;
  double bench_d = 0;
  unsigned loops = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
      host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      snprintf(port, sizeof port, "%s", argv[++i]);
    else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc)
      loops = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--bench") == 0 && i + 2 < argc) {
      bench_c = atol(argv[++i]);
      bench_d = atof(argv[++i]);
    } else
      args[nargs++] = argv[i];
  }
  if (bench_c <= 0) {
    lines_arg a = {nargs, args};
    int rc = cor_run(lines_main, &a, NULL);
    free(args);
    return rc == 0 ? 0 : 1;
  }
  free(args);
  /* bench: C connection tasks spread over the client's own loops */
  cor_runtime_opts ro = {0};
  ro.nloops = loops;
  ro.spin_seconds = -1;
  cor_runtime_t *rt = cor_runtime_new(&ro);
  if (rt == NULL) {
    perror("cor_runtime_new");
    return 1;
  }
  unsigned nl = cor_runtime_nloops(rt);
  bench_conn *bc = calloc((size_t)bench_c, sizeof *bc);
  cor_cfuture_t **cf = calloc((size_t)bench_c, sizeof *cf);
  double end = cor_loop_time(NULL) + bench_d;
  for (long i = 0; i < bench_c; i++) {
    bc[i].end = end;
    bc[i].hist = calloc(HIST_US, sizeof *bc[i].hist);
    cf[i] = cor_runtime_spawn_on(rt, (unsigned)(i % nl),
                                 cor_coro(bench_conn_main, &bc[i]), NULL);
    if (cf[i] == NULL) {
      perror("spawn");
      return 1;
    }
  }
  unsigned long msgs = 0, errs = 0, mism = 0;
  unsigned long long *hist = calloc(HIST_US, sizeof *hist);
  for (long i = 0; i < bench_c; i++) {
    cor_cfuture_result(cf[i], bench_d + 30, NULL);
    cor_release(cf[i]);
    msgs += bc[i].messages;
    errs += bc[i].errors;
    mism += bc[i].mismatches;
    for (int k = 0; k < HIST_US; k++)
      hist[k] += bc[i].hist[k];
    free(bc[i].hist);
  }
  unsigned long long want = ((unsigned long long)msgs * 99 + 99) / 100, acc = 0;
  int p99 = 0;
  for (int k = 0; k < HIST_US; k++) {
    acc += hist[k];
    if (acc >= want) {
      p99 = k;
      break;
    }
  }
  printf("MESSAGES=%lu ERRORS=%lu MISMATCHES=%lu P99_US=%d\n", msgs, errs,
         mism, p99);
  fflush(stdout);
  free(hist);
  free(bc);
  free(cf);
  cor_runtime_shutdown(rt, 5);
  cor_release(rt);
  return errs || mism ? 1 : 0;
}
