/* SPDX-License-Identifier: MIT */
/* A TLS client: fetches one URL path over HTTPS with cor_open_connection_opts
 * (the handshake, SNI and host-name verification before it returns) and
 * prints the status line, the negotiated version and cipher, and the body.
 *
 *   examples/https_get [--ca PEM] [--insecure] HOST PORT [PATH]
 *
 * --ca trusts that file instead of the system store; --insecure skips the
 * verification (testing only). Exit status 0 on a 2xx answer. */
#include <corio.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *host, *port, *path, *ca;
  bool insecure;
} args;

static int fetch(void *arg, void **result) {
  args *a = arg;
  cor_tls_ctx_t *ctx = cor_tls_ctx_new(
      &(cor_tls_opts){.ca_file = a->ca, .insecure = a->insecure,
                      .alpn = "http/1.1"});
  if (ctx == NULL)
    return -errno;
  cor_connect_opts o = {.tls = ctx, .timeout = 10};
  cor_stream_t *s = NULL;
  int rc = cor_open_connection_opts(a->host, a->port, &o, &s);
  cor_release(ctx); /* the stream holds its own reference */
  if (rc != 0) {
    fprintf(stderr, "https_get: %s: %s\n", cor_strerror(rc),
            s ? cor_stream_error_message(s) : "connect failed");
    return rc;
  }
  printf("%s %s verified=%d\n", cor_stream_tls_version(s),
         cor_stream_tls_cipher(s), cor_stream_tls_verified(s));
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                   a->path, a->host);
  if ((rc = cor_stream_write(s, req, (size_t)n)) == 0)
    rc = cor_stream_drain(s);
  char line[1024];
  ssize_t k = rc == 0 ? cor_stream_readline(s, line, sizeof line) : rc;
  int status = 0;
  if (k > 0) {
    fwrite(line, 1, (size_t)k, stdout);
    sscanf(line, "HTTP/%*s %d", &status);
    /* headers, then the body to EOF (the server closes: Connection: close) */
    while ((k = cor_stream_readline(s, line, sizeof line)) > 2) {
    }
    char buf[4096];
    while ((k = cor_stream_read(s, buf, sizeof buf)) > 0)
      fwrite(buf, 1, (size_t)k, stdout);
  }
  cor_stream_close(s);
  cor_stream_free(s);
  if (k < 0 && k != COR_ECLOSED)
    fprintf(stderr, "https_get: %s\n", cor_strerror((int)k));
  return status >= 200 && status < 300 ? 0 : -EPROTO;
}

int main(int argc, char **argv) {
  args a = {.path = "/"};
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
      a.ca = argv[++i];
    else if (strcmp(argv[i], "--insecure") == 0)
      a.insecure = true;
    else
      break;
  }
  if (argc - i < 2) {
    fprintf(stderr, "usage: %s [--ca PEM] [--insecure] HOST PORT [PATH]\n",
            argv[0]);
    return 2;
  }
  a.host = argv[i];
  a.port = argv[i + 1];
  if (argc - i > 2)
    a.path = argv[i + 2];
  int rc = cor_run(fetch, &a, NULL);
  return rc != 0;
}
