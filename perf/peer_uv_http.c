/* SPDX-License-Identifier: MIT */
/* peer_uv_http: the libuv peer of examples/http_hello, for perf/bench's
 * `peer_uv_http` workload. Not part of corio and never linked with it: it
 * is the same server written the way a libuv user would write it, so that
 * http_hello's requests per second and server CPU can be read against
 * libuv's in the same run.
 *
 *   perf/peer_uv_http [--port N] [--loops N] [--no-pin]
 *
 * Same behaviour as examples/http_hello: HTTP/1.1 keep-alive, pipelining
 * (requests that arrived together are answered with one write), fixed body
 * "hello, world\n", 404/405, 400 and close on a malformed request, HTTP/1.0
 * keep-alive, Connection: close. The request parser mirrors the example's
 * (same checks on every byte), so both do the same work per request.
 *
 * Multi-core setup, chosen as the fairest against corio's runtime server:
 * one uv_loop_t per CPU of the affinity mask, each on its own thread pinned
 * to its CPU (corio's runtime pins its loops the same way), each with its
 * own listening socket bound with SO_REUSEPORT so the kernel spreads
 * connections over the loops. libuv 1.44 has no UV_TCP_REUSEPORT flag
 * (1.49 added one), so the socket is made here and handed to uv_tcp_open.
 * This is how multi-threaded libuv servers share a port on Linux; the
 * other common way, one process per core, gives the kernel the same
 * picture (N listeners, N epoll loops).
 *
 * Reads: libuv's own path (level-triggered epoll, read() into the buffer
 * alloc_cb gives; it stops after a short read). Writes: uv_try_write first
 * (one write(), nothing allocated when the kernel takes it all, the usual
 * case), then uv_write with a copy of what is left, as libuv servers do.
 *
 * Prints "listening on 127.0.0.1:PORT (N loops)" once every loop listens;
 * SIGINT or SIGTERM stops every loop and exits 0. */
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* The parser and the answers are the example's own (a longer head than
 * MAX_HEAD is a 400), so both servers do the same work per request. */
#include "../examples/http_parse.h"

/* ------------------------------------------------------------ connections */

typedef struct {
  uv_tcp_t h;
  size_t len;      /* bytes buffered in buf */
  long skip;       /* body bytes still to discard */
  bool closing;    /* close once the pending writes are done */
  unsigned writes; /* uv_write requests in flight */
  char buf[MAX_HEAD];
} conn;

typedef struct {
  uv_write_t req;
  conn *c;
  char data[];
} wreq;

static void on_closed(uv_handle_t *h) { free(h->data); }

static void conn_close(conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->h))
    uv_close((uv_handle_t *)&c->h, on_closed);
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  conn *c = w->c;
  free(w);
  c->writes--;
  if (status < 0 || (c->closing && c->writes == 0))
    conn_close(c);
}

/* uv_try_write first; what the kernel did not take goes out through
 * uv_write, from a copy. */
static void send_out(conn *c, const char *p, size_t n) {
  if (n == 0)
    return;
  if (c->writes == 0) { /* nothing queued: keeps the bytes in order */
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&c->h, &b, 1);
    if (w == (int)n)
      return;
    if (w < 0 && w != UV_EAGAIN) {
      conn_close(c);
      return;
    }
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    }
  }
  wreq *r = malloc(sizeof *r + n);
  if (r == NULL) {
    conn_close(c);
    return;
  }
  r->c = c;
  memcpy(r->data, p, n);
  uv_buf_t b = uv_buf_init(r->data, (unsigned)n);
  if (uv_write(&r->req, (uv_stream_t *)&c->h, &b, 1, on_written) != 0) {
    free(r);
    conn_close(c);
    return;
  }
  c->writes++;
}

/* After the last response: close once it is written. */
static void finish(conn *c) {
  uv_read_stop((uv_stream_t *)&c->h);
  c->closing = true;
  if (c->writes == 0)
    conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)suggested;
  conn *c = h->data;
  *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  (void)b;
  conn *c = st->data;
  if (nread < 0) { /* UV_EOF or an error: a partial request is dropped */
    conn_close(c);
    return;
  }
  if (nread == 0 || c->closing)
    return;
  size_t got = (size_t)nread;
  if (c->skip > 0) { /* body bytes of an earlier request: not used */
    size_t k = got < (size_t)c->skip ? got : (size_t)c->skip;
    memmove(c->buf + c->len, c->buf + c->len + k, got - k);
    got -= k;
    c->skip -= (long)k;
  }
  size_t from = c->len > 3 ? c->len - 3 : 0; /* a CRLFCRLF may span reads */
  c->len += got;
  /* Responses to requests that arrived together leave in one write. */
  char out[4096];
  size_t outlen = 0, pos = 0;
  for (;;) {
    const char *hend = memmem(c->buf + from, c->len - from, "\r\n\r\n", 4);
    if (hend == NULL)
      break;
    size_t hlen = (size_t)(hend - (c->buf + pos)) + 4;
    request r;
    if (parse(c->buf + pos, hlen, &r) != 0) {
      send_out(c, out, outlen);
      send_out(c, BAD_REQUEST, sizeof BAD_REQUEST - 1);
      finish(c);
      return;
    }
    pos += hlen;
    if (r.content_length > 0) {
      size_t k = c->len - pos < (size_t)r.content_length
                     ? c->len - pos
                     : (size_t)r.content_length;
      pos += k;
      c->skip = r.content_length - (long)k;
    }
    from = pos;
    const char *resp;
    size_t rlen = answer(&r, &resp);
    if (outlen + rlen > sizeof out) {
      send_out(c, out, outlen);
      outlen = 0;
    }
    memcpy(out + outlen, resp, rlen);
    outlen += rlen;
    if (!r.keep_alive) {
      send_out(c, out, outlen);
      finish(c);
      return;
    }
  }
  send_out(c, out, outlen);
  /* keep the unanswered part at the front of the buffer */
  memmove(c->buf, c->buf + pos, c->len - pos);
  c->len -= pos;
  if (c->len == sizeof c->buf) {
    send_out(c, BAD_REQUEST, sizeof BAD_REQUEST - 1);
    finish(c);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0)
    return;
  conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  uv_tcp_init(server->loop, &c->h);
  c->h.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->h) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->h, 1);
  uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read);
}

/* ------------------------------------------------------------ loops */

typedef struct {
  uv_loop_t loop;
  uv_tcp_t server;
  uv_async_t stop;
  pthread_t thread;
  int fd;
  int cpu; /* -1: not pinned */
} loop_ctx;

static void on_stop(uv_async_t *a) { uv_stop(a->loop); }

static void *loop_main(void *arg) {
  loop_ctx *l = arg;
  uv_run(&l->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* A listening socket on 127.0.0.1:port with SO_REUSEPORT; the bound port
 * in *port. */
static int listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)*port);
  socklen_t al = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

int main(int argc, char **argv) {
  tchar_init();
  int port = 8080;
  int nloops = 0;
  bool pin = true;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc)
      nloops = atoi(argv[++i]);
    else if (strcmp(argv[i], "--no-pin") == 0)
      pin = false;
    else {
      fprintf(stderr, "usage: %s [--port N] [--loops N] [--no-pin]\n",
              argv[0]);
      return 2;
    }
  }
  cpu_set_t mask;
  int cpus[CPU_SETSIZE], ncpus = 0;
  if (sched_getaffinity(0, sizeof mask, &mask) == 0)
    for (int c = 0; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &mask))
        cpus[ncpus++] = c;
  if (nloops <= 0)
    nloops = ncpus > 0 ? ncpus : 1;

  /* SIGINT/SIGTERM go to sigwait below: blocked before any thread starts. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN); /* libuv writes with write(): no MSG_NOSIGNAL */

  loop_ctx *ls = calloc((size_t)nloops, sizeof *ls);
  if (ls == NULL)
    return 1;
  for (int i = 0; i < nloops; i++) {
    loop_ctx *l = &ls[i];
    l->cpu = pin && ncpus > 0 ? cpus[i % ncpus] : -1;
    if ((l->fd = listener(&port)) < 0 || uv_loop_init(&l->loop) != 0 ||
        uv_tcp_init(&l->loop, &l->server) != 0 ||
        uv_tcp_open(&l->server, l->fd) != 0 ||
        uv_listen((uv_stream_t *)&l->server, 4096, on_connection) != 0 ||
        uv_async_init(&l->loop, &l->stop, on_stop) != 0) {
      fprintf(stderr, "cannot listen on 127.0.0.1:%d: %s\n", port,
              strerror(errno));
      return 1;
    }
  }
  for (int i = 0; i < nloops; i++) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (ls[i].cpu >= 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(ls[i].cpu, &one);
      pthread_attr_setaffinity_np(&attr, sizeof one, &one);
    }
    if (pthread_create(&ls[i].thread, &attr, loop_main, &ls[i]) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }
    pthread_attr_destroy(&attr);
  }
  printf("listening on 127.0.0.1:%d (%d loops)\n", port, nloops);
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  for (int i = 0; i < nloops; i++)
    uv_async_send(&ls[i].stop);
  for (int i = 0; i < nloops; i++)
    pthread_join(ls[i].thread, NULL);
  /* Connections still open die with the process: the harness stops us
   * after its load is over. */
  return 0;
}
