/* SPDX-License-Identifier: MIT */
/* http_hello: an HTTP/1.1 server on every core answering `GET /` with
 * "hello, world\n".
 *
 *   examples/http_hello [--port N] [--loops N] [--proto] [--cert PEM --key PEM]
 *
 * With --cert and --key it speaks HTTPS (TLS 1.2/1.3, corio/tls.h): one
 * context shared by every loop, each connection's handshake before its
 * handler (https_hello).
 * One listener per loop (SO_REUSEPORT), one task per connection; with
 * --proto, a protocol (include/corio/transport.h) instead: callbacks, no
 * task and no stack per connection (not with --cert). Keep-alive
 * and pipelining: requests already buffered are answered together with one
 * write. A malformed request gets 400 and the connection is closed.
 * Prints "listening on 127.0.0.1:PORT" once every loop listens; SIGINT or
 * SIGTERM stops it cleanly. */
#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

static int handler(void *arg, void **res) {
  cor_stream_t *s = arg;
  /* Responses to requests that arrived together leave in one write. */
  char out[4096];
  size_t outlen = 0;
  for (;;) {
    const char *d;
    ssize_t avail;
    const char *hend;
    size_t min = 1;
    for (;;) {
      if (outlen && cor_stream_buffered(s) < min) {
        /* about to wait for the peer: send what is ready first */
        int rc = cor_stream_write(s, out, outlen);
        outlen = 0;
        if (rc == 0)
          rc = cor_stream_drain(s);
        if (rc != 0)
          return rc;
      }
      avail = cor_stream_peek(s, min, &d);
      if (avail < 0)
        return (int)avail;
      if ((size_t)avail < min)
        return 0; /* EOF (a partial request is dropped) */
      size_t from = min > 4 ? min - 4 : 0;
      hend = memmem(d + from, (size_t)avail - from, "\r\n\r\n", 4);
      if (hend)
        break;
      if (avail >= MAX_HEAD) {
        cor_stream_write(s, BAD_REQUEST, sizeof BAD_REQUEST - 1);
        return 0;
      }
      min = (size_t)avail + 1;
    }
    size_t hlen = (size_t)(hend - d) + 4;
    request r;
    if (parse(d, hlen, &r) != 0) {
      if (outlen)
        cor_stream_write(s, out, outlen);
      cor_stream_write(s, BAD_REQUEST, sizeof BAD_REQUEST - 1);
      return 0;
    }
    cor_stream_consume(s, hlen);
    /* a body we do not use: skip it */
    for (long left = r.content_length; left > 0;) {
      ssize_t n = cor_stream_peek(s, 1, &d);
      if (n <= 0)
        return (int)n;
      size_t k = (size_t)n < (size_t)left ? (size_t)n : (size_t)left;
      cor_stream_consume(s, k);
      left -= (long)k;
    }
    const char *resp;
    size_t rlen = answer(&r, &resp);
    if (outlen + rlen > sizeof out) {
      int rc = cor_stream_write(s, out, outlen);
      outlen = 0;
      if (rc != 0)
        return rc;
    }
    memcpy(out + outlen, resp, rlen);
    outlen += rlen;
    if (!r.keep_alive) {
      cor_stream_write(s, out, outlen);
      return 0; /* the server flushes and closes */
    }
  }
}

/* ------------------------------------------------------------ --proto */

/* A connection's bytes not answered yet (a request split across reads). */
typedef struct {
  char *pend;
  size_t plen, pcap;
} hconn;

#define MAX_BODY (1 << 20)

static void h_made(cor_transport_t *t, void *arg) {
  hconn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    cor_transport_abort(t);
    return;
  }
  cor_transport_set_arg(t, c);
}

static void h_lost(cor_transport_t *t, int code, void *arg) {
  hconn *c = arg;
  if (c) {
    free(c->pend);
    free(c);
  }
}

static bool keep(hconn *c, const char *p, size_t n) {
  if (c->plen + n > c->pcap) {
    size_t cap = c->pcap ? c->pcap : 1024;
    while (cap < c->plen + n)
      cap *= 2;
    char *np = realloc(c->pend, cap);
    if (np == NULL)
      return false;
    c->pend = np;
    c->pcap = cap;
  }
  memmove(c->pend + c->plen, p, n);
  c->plen += n;
  return true;
}

static void h_data(cor_transport_t *t, const void *buf, size_t n, void *arg) {
  hconn *c = arg;
  const char *d = buf;
  size_t len = n;
  if (c->plen) { /* the start of a request came before */
    if (!keep(c, buf, n)) {
      cor_transport_abort(t);
      return;
    }
    d = c->pend;
    len = c->plen;
  }
  /* Responses to requests that arrived together leave in one write. */
  char out[4096];
  size_t outlen = 0, pos = 0;
  bool done = false;
  while (pos < len) {
    const char *hend = memmem(d + pos, len - pos, "\r\n\r\n", 4);
    if (hend == NULL) {
      if (len - pos >= MAX_HEAD)
        goto bad;
      break; /* wait for the rest of the head */
    }
    size_t hlen = (size_t)(hend - (d + pos)) + 4;
    request r;
    if (parse(d + pos, hlen, &r) != 0 || r.content_length > MAX_BODY)
      goto bad;
    if ((size_t)r.content_length > len - pos - hlen)
      break; /* wait for the rest of the body (unused) */
    pos += hlen + (size_t)r.content_length;
    const char *resp;
    size_t rlen = answer(&r, &resp);
    if (outlen + rlen > sizeof out) {
      cor_transport_write(t, out, outlen);
      outlen = 0;
    }
    memcpy(out + outlen, resp, rlen);
    outlen += rlen;
    if (!r.keep_alive) {
      done = true;
      break;
    }
  }
  if (outlen)
    cor_transport_write(t, out, outlen);
  if (done) {
    cor_transport_close(t); /* flushes, then closes */
    return;
  }
  /* what is left is the start of the next request */
  if (d == c->pend) {
    memmove(c->pend, c->pend + pos, len - pos);
    c->plen = len - pos;
  } else if (pos < len && !keep(c, d + pos, len - pos)) {
    cor_transport_abort(t);
  }
  return;
bad:
  if (outlen)
    cor_transport_write(t, out, outlen);
  cor_transport_write(t, BAD_REQUEST, sizeof BAD_REQUEST - 1);
  cor_transport_close(t);
}

static const cor_protocol hproto = {
    .connection_made = h_made,
    .data_received = h_data,
    .connection_lost = h_lost,
};

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [--port N] [--loops N] [--proto] [--cert PEM --key PEM]\n",
          argv0);
  exit(2);
}

int main(int argc, char **argv) {
  tchar_init();
  int port = 8080;
  unsigned loops = 0;
  int pin = 0; /* the runtime's default: loop i on the i-th CPU */
  const char *cert = NULL, *key = NULL;
  bool proto = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc)
      loops = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
      cert = argv[++i];
    else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
      key = argv[++i];
    else if (strcmp(argv[i], "--no-pin") == 0)
      pin = -1;
    else if (strcmp(argv[i], "--proto") == 0)
      proto = true;
    else
      usage(argv[0]);
  }
  if ((cert == NULL) != (key == NULL))
    usage(argv[0]);
  cor_tls_ctx_t *tls = NULL;
  if (cert) {
    cor_tls_opts to = {.server = true, .cert_file = cert, .key_file = key};
    if ((tls = cor_tls_ctx_new(&to)) == NULL) {
      fprintf(stderr, "cannot load %s / %s\n", cert, key);
      return 1;
    }
  }
  /* SIGINT/SIGTERM are taken by sigwait on this thread; block them before
   * any thread starts so none of them gets the default action. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  cor_runtime_opts ro = {0};
  ro.nloops = loops;
  ro.pin = pin;
  /* A server's loops sleep in epoll when idle instead of spinning: the
   * spin only pays off for cross-thread hand-offs, not for sockets. */
  ro.spin_seconds = -1;
  cor_runtime_t *rt = cor_runtime_new(&ro);
  if (rt == NULL) {
    perror("cor_runtime_new");
    return 1;
  }
  cor_server_opts so = {0};
  so.host = "127.0.0.1";
  so.port = port;
  so.stack_size = 32 * 1024;
  if (tls) {
    so.tls = tls; /* the server holds its own reference */
    so.stack_size = 64 * 1024; /* OpenSSL's handshake runs on it */
  }
  cor_server_t *srv = proto ? cor_runtime_start_protocol_server(rt, &so,
                                                                &hproto, NULL)
                            : cor_runtime_start_server(rt, &so, handler);
  cor_release(tls);
  if (srv == NULL) {
    fprintf(stderr, "cannot listen on 127.0.0.1:%d: %s\n", port,
            strerror(errno));
    cor_runtime_shutdown(rt, 1);
    cor_release(rt);
    return 1;
  }
  printf("listening on 127.0.0.1:%d (%u loops)\n", cor_server_port(srv),
         cor_runtime_nloops(rt));
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  /* Stop accepting, give keep-alive clients a moment, then cancel the
   * handlers still waiting for requests. */
  cor_server_close(srv);
  if (cor_server_wait_closed(srv, 0.2) != 0) {
    cor_server_close_clients(srv);
    cor_server_wait_closed(srv, 5);
  }
  cor_server_free(srv);
  int rc = cor_runtime_shutdown(rt, 5);
  cor_release(rt);
  return rc == 0 ? 0 : 1;
}
