/* SPDX-License-Identifier: MIT */
/* TLS streams (core/tls.c) on both back-ends (each body runs on a loop with
 * io_uring, as the kernel allows, and on one without): echo over TLS 1.3
 * and 1.2, a few MiB both ways, readline/readexactly, verification
 * failures (unknown issuer, wrong host name) and insecure, ALPN chosen and
 * refused, STARTTLS, garbage instead of a ClientHello, a peer that closes
 * mid-handshake, handshake time-outs on both sides, close_notify seen by a
 * plain OpenSSL peer, truncation without close_notify, sendfile and peek,
 * 64 concurrent TLS connections. The certificate
 * (EC P-256, CN and SAN localhost) is made at start into a temp dir. */
#include "testutil.h"
#include "tlscert.h"

#include <corio.h>

#include "logcap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static int failed_line;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      if (failed_line == 0)                                                    \
        failed_line = __LINE__;                                                \
      print_message("check failed at line %d: %s\n", __LINE__, #cond);        \
      return -1;                                                               \
    }                                                                          \
  } while (0)

static char dir[64], cert_path[128], key_path[128], other_cert[128],
    other_key[128];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/corio_tls_XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
  snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
  snprintf(other_cert, sizeof other_cert, "%s/other.pem", dir);
  snprintf(other_key, sizeof other_key, "%s/otherkey.pem", dir);
  make_cert(cert_path, key_path);
  make_cert(other_cert, other_key); /* a different issuer, same name */
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(cert_path);
  unlink(key_path);
  unlink(other_cert);
  unlink(other_key);
  rmdir(dir);
  return 0;
}

static void run_body(int io_uring, cor_fn body) {
  cor_loop_opts o = {.io_uring = io_uring};
  cor_loop_t *loop = cor_loop_new(&o);
  assert_non_null(loop);
  failed_line = 0;
  cor_task_t *t = cor_create_task(loop, cor_coro(body, NULL), "body");
  assert_non_null(t);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  int rc = cor_future_result(cor_task_future(t), NULL);
  cor_release(t);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
  assert_int_equal(failed_line, 0);
  assert_int_equal(rc, 0);
}

static void both(cor_fn body) {
  run_body(0, body);
  run_body(-1, body);
}

static cor_tls_ctx_t *server_ctx(const char *alpn, int max_version) {
  cor_tls_opts o = {.server = true, .cert_file = cert_path,
                    .key_file = key_path, .alpn = alpn,
                    .max_version = max_version};
  return cor_tls_ctx_new(&o);
}

static cor_tls_ctx_t *client_ctx(const char *ca, bool insecure,
                                 const char *alpn) {
  cor_tls_opts o = {.ca_file = ca, .insecure = insecure, .alpn = alpn};
  return cor_tls_ctx_new(&o);
}

static int handler_calls;

static int echo_handler(void *arg, void **res) {
  (void)res;
  cor_stream_t *s = arg;
  handler_calls++;
  char buf[16384];
  for (;;) {
    ssize_t n = cor_stream_read(s, buf, sizeof buf);
    if (n <= 0)
      return n == COR_ETLS ? 0 : (int)n;
    int rc = cor_stream_write(s, buf, (size_t)n);
    if (rc == 0)
      rc = cor_stream_drain(s);
    if (rc != 0)
      return rc;
  }
}

static cor_server_t *tls_server(cor_tls_ctx_t *ctx, cor_fn handler,
                                double hto, char *port) {
  cor_server_opts o = {.host = "127.0.0.1", .tls = ctx,
                       .tls_handshake_timeout = hto};
  cor_server_t *srv = cor_start_server(NULL, &o, handler);
  if (srv)
    snprintf(port, 16, "%d", cor_server_port(srv));
  return srv;
}

static void server_done(cor_server_t *srv) {
  cor_server_close(srv);
  cor_server_wait_closed(srv, 5);
  cor_server_free(srv);
}

/* ------------------------------------------------------------ echo */

static int body_echo(void *arg, void **res) {
  (void)arg, (void)res;
  handler_calls = 0;
  cor_tls_ctx_t *sc = server_ctx("http/1.1", 0);
  cor_tls_ctx_t *cc = client_ctx(cert_path, false, "h2,http/1.1");
  CHECK(sc && cc);
  char port[16];
  cor_server_t *srv = tls_server(sc, echo_handler, 0, port);
  CHECK(srv);
  cor_release(sc); /* the server holds its own reference */
  cor_connect_opts co = {.timeout = 5, .tls = cc,
                         .server_hostname = "localhost"};
  cor_stream_t *s = NULL;
  CHECK(cor_open_connection_opts("127.0.0.1", port, &co, &s) == 0);
  CHECK(strcmp(cor_stream_tls_version(s), "TLSv1.3") == 0);
  CHECK(cor_stream_tls_cipher(s) != NULL);
  CHECK(cor_stream_tls_alpn(s) && strcmp(cor_stream_tls_alpn(s), "http/1.1") == 0);
  CHECK(cor_stream_tls_verified(s));
  CHECK(cor_stream_error_message(s) == NULL);
  /* readline, readexactly, writev */
  CHECK(cor_stream_write(s, "hello\nworld\n", 12) == 0);
  char line[64];
  CHECK(cor_stream_readline(s, line, sizeof line) == 6);
  CHECK(memcmp(line, "hello\n", 6) == 0);
  CHECK(cor_stream_readline(s, line, sizeof line) == 6);
  struct iovec iov[2] = {{"abc", 3}, {"defgh", 5}};
  CHECK(cor_stream_writev(s, iov, 2) == 0);
  CHECK(cor_stream_readexactly(s, line, 8, NULL) == 8);
  CHECK(memcmp(line, "abcdefgh", 8) == 0);
  CHECK(cor_stream_write(s, "x;y;", 4) == 0);
  CHECK(cor_stream_readuntil(s, ";", 1, line, sizeof line, NULL) == 2);
  CHECK(cor_stream_readuntil(s, ";", 1, line, sizeof line, NULL) == 2);
  /* write_eof sends close_notify: the server's read ends cleanly */
  CHECK(cor_stream_write_eof(s) == 0);
  CHECK(cor_stream_read(s, line, sizeof line) == 0);
  CHECK(cor_stream_close(s) == 0);
  cor_stream_free(s);
  server_done(srv);
  CHECK(handler_calls == 1);
  cor_release(cc);
  return 0;
}

static void test_echo(void **state) {
  (void)state;
  both(body_echo);
}

/* A plain stream has no TLS state. */
static int body_plain_getters(void *arg, void **res) {
  (void)arg, (void)res;
  char port[16];
  cor_server_opts o = {.host = "127.0.0.1"};
  cor_server_t *srv = cor_start_server(NULL, &o, echo_handler);
  CHECK(srv);
  snprintf(port, sizeof port, "%d", cor_server_port(srv));
  cor_stream_t *s = NULL;
  CHECK(cor_open_connection("127.0.0.1", port, &s) == 0);
  CHECK(cor_stream_tls_version(s) == NULL);
  CHECK(cor_stream_tls_cipher(s) == NULL);
  CHECK(cor_stream_tls_alpn(s) == NULL);
  CHECK(!cor_stream_tls_verified(s));
  CHECK(cor_stream_error_message(s) == NULL);
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  return 0;
}

static void test_plain_getters(void **state) {
  (void)state;
  both(body_plain_getters);
}

/* TLS 1.2 when the server tops out there; ALPN refused (no overlap). */
static int body_tls12(void *arg, void **res) {
  (void)arg, (void)res;
  cor_tls_ctx_t *sc = server_ctx("http/1.1", COR_TLS_VERSION_1_2);
  cor_tls_ctx_t *cc = client_ctx(cert_path, false, "h2");
  CHECK(sc && cc);
  char port[16];
  cor_server_t *srv = tls_server(sc, echo_handler, 0, port);
  CHECK(srv);
  cor_connect_opts co = {.timeout = 5, .tls = cc};
  cor_stream_t *s = NULL;
  CHECK(cor_open_connection_opts("localhost", port, &co, &s) == 0);
  CHECK(strcmp(cor_stream_tls_version(s), "TLSv1.2") == 0);
  CHECK(cor_stream_tls_alpn(s) == NULL);
  CHECK(cor_stream_write(s, "ping\n", 5) == 0);
  char line[16];
  CHECK(cor_stream_readline(s, line, sizeof line) == 5);
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  cor_release(sc);
  cor_release(cc);
  return 0;
}

static void test_tls12_alpn_refused(void **state) {
  (void)state;
  both(body_tls12);
}

/* ------------------------------------------------------------ large */

#define BIG (3u * 1024u * 1024u + 12345u)

static int big_writer(void *arg, void **res) {
  (void)res;
  cor_stream_t *s = arg;
  char buf[10000];
  size_t sent = 0;
  while (sent < BIG) {
    size_t k = BIG - sent < sizeof buf ? BIG - sent : sizeof buf;
    for (size_t i = 0; i < k; i++)
      buf[i] = (char)((sent + i) * 7 + 3);
    int rc = cor_stream_write(s, buf, k);
    if (rc == 0)
      rc = cor_stream_drain(s);
    if (rc != 0)
      return rc;
    sent += k;
  }
  return 0;
}

static int body_large(void *arg, void **res) {
  (void)arg, (void)res;
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  cor_tls_ctx_t *cc = client_ctx(cert_path, false, NULL);
  CHECK(sc && cc);
  char port[16];
  cor_server_t *srv = tls_server(sc, echo_handler, 0, port);
  CHECK(srv);
  cor_connect_opts co = {.timeout = 5, .tls = cc,
                         .server_hostname = "localhost"};
  cor_stream_t *s = NULL;
  CHECK(cor_open_connection_opts("127.0.0.1", port, &co, &s) == 0);
  cor_task_t *w = cor_create_task(NULL, cor_coro(big_writer, s), "writer");
  CHECK(w);
  char *got = malloc(BIG);
  CHECK(got);
  ssize_t n = cor_stream_readexactly(s, got, BIG, NULL);
  int bad = 0;
  for (size_t i = 0; i < BIG && n == (ssize_t)BIG; i++)
    if (got[i] != (char)(i * 7 + 3))
      bad++;
  free(got);
  CHECK(cor_await(cor_task_future(w), NULL) == 0);
  cor_release(w);
  CHECK(n == (ssize_t)BIG);
  CHECK(bad == 0);
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  cor_release(sc);
  cor_release(cc);
  return 0;
}

static void test_large(void **state) {
  (void)state;
  both(body_large);
}

/* sendfile on a TLS stream takes the copy path (encrypted); peek works. */
static char file_path[160];
#define FILE_LEN 200000u

static int sendfile_handler(void *arg, void **res) {
  (void)res;
  cor_stream_t *s = arg;
  int fd = open(file_path, O_RDONLY);
  if (fd < 0)
    return -errno;
  ssize_t n = cor_stream_sendfile(s, fd, 0, 0);
  close(fd);
  return n == (ssize_t)FILE_LEN ? 0 : -EIO;
}

static int body_sendfile(void *arg, void **res) {
  (void)arg, (void)res;
  snprintf(file_path, sizeof file_path, "%s/data.bin", dir);
  FILE *f = fopen(file_path, "w");
  CHECK(f);
  for (unsigned i = 0; i < FILE_LEN; i++)
    fputc((int)(i % 251), f);
  fclose(f);
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  cor_tls_ctx_t *cc = client_ctx(cert_path, false, NULL);
  char port[16];
  cor_server_t *srv = tls_server(sc, sendfile_handler, 0, port);
  CHECK(srv);
  cor_connect_opts co = {.timeout = 5, .tls = cc,
                         .server_hostname = "localhost"};
  cor_stream_t *s;
  CHECK(cor_open_connection_opts("127.0.0.1", port, &co, &s) == 0);
  const char *d;
  CHECK(cor_stream_peek(s, 4, &d) >= 4);
  CHECK(d[0] == 0 && d[1] == 1 && d[3] == 3);
  char *got = malloc(FILE_LEN);
  CHECK(got);
  ssize_t n = cor_stream_readexactly(s, got, FILE_LEN, NULL);
  int bad = 0;
  for (unsigned i = 0; i < FILE_LEN && n == (ssize_t)FILE_LEN; i++)
    bad += got[i] != (char)(i % 251);
  free(got);
  CHECK(n == (ssize_t)FILE_LEN && bad == 0);
  CHECK(cor_stream_read(s, &d, 1) == 0); /* close_notify */
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  unlink(file_path);
  cor_release(sc);
  cor_release(cc);
  return 0;
}

static void test_sendfile_peek(void **state) {
  (void)state;
  both(body_sendfile);
}

/* Many TLS connections at once, each a few round trips. */
static char many_port[16];
static cor_tls_ctx_t *many_cc;

static int many_client(void *arg, void **res) {
  (void)res;
  long id = (long)(intptr_t)arg;
  cor_connect_opts co = {.timeout = 20, .tls = many_cc,
                         .server_hostname = "localhost"};
  cor_stream_t *s;
  int rc = cor_open_connection_opts("127.0.0.1", many_port, &co, &s);
  if (rc != 0)
    return rc;
  char msg[32], back[32];
  for (int r = 0; r < 3 && rc == 0; r++) {
    int n = snprintf(msg, sizeof msg, "c%ld r%d\n", id, r);
    rc = cor_stream_write(s, msg, (size_t)n);
    if (rc == 0 && (cor_stream_readline(s, back, sizeof back) != n ||
                    memcmp(msg, back, (size_t)n) != 0))
      rc = -EPROTO;
  }
  cor_stream_close(s);
  cor_stream_free(s);
  return rc;
}

static int body_many(void *arg, void **res) {
  (void)arg, (void)res;
  enum { N = 64 };
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  many_cc = client_ctx(cert_path, false, NULL);
  cor_server_t *srv = tls_server(sc, echo_handler, 0, many_port);
  CHECK(srv);
  cor_task_t *ts[N];
  for (long i = 0; i < N; i++)
    CHECK((ts[i] = cor_create_task(NULL, cor_coro(many_client, (void *)(intptr_t)i),
                                   "client")));
  int bad = 0;
  for (int i = 0; i < N; i++) {
    if (cor_await(cor_task_future(ts[i]), NULL) != 0)
      bad++;
    cor_release(ts[i]);
  }
  CHECK(bad == 0);
  server_done(srv);
  cor_release(sc);
  cor_release(many_cc);
  return 0;
}

static void test_many(void **state) {
  (void)state;
  both(body_many);
}

/* ------------------------------------------------------------ failures */

static int connect_plain(const char *port, cor_stream_t **s) {
  return cor_open_connection("127.0.0.1", port, s);
}

static int body_verify(void *arg, void **res) {
  (void)arg, (void)res;
  handler_calls = 0;
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  CHECK(sc);
  char port[16];
  cor_server_t *srv = tls_server(sc, echo_handler, 0, port);
  CHECK(srv);
  cor_stream_t *s = NULL;
  /* an unknown issuer (the system store does not know it) */
  cor_tls_ctx_t *sys = client_ctx(NULL, false, NULL);
  CHECK(connect_plain(port, &s) == 0);
  CHECK(cor_stream_start_tls(s, sys, "localhost", 5) == COR_ETLS);
  const char *m = cor_stream_error_message(s);
  CHECK(m && strstr(m, "certificate verify failed"));
  char b[8];
  CHECK(cor_stream_read(s, b, sizeof b) == COR_ETLS); /* sticky */
  CHECK(cor_stream_write(s, "x", 1) == COR_ETLS);
  cor_stream_close(s);
  cor_stream_free(s);
  /* a CA that did not sign it */
  cor_tls_ctx_t *other = client_ctx(other_cert, false, NULL);
  CHECK(connect_plain(port, &s) == 0);
  CHECK(cor_stream_start_tls(s, other, "localhost", 5) == COR_ETLS);
  CHECK(strstr(cor_stream_error_message(s), "certificate verify failed"));
  cor_stream_close(s);
  cor_stream_free(s);
  /* the right CA, the wrong name */
  cor_tls_ctx_t *cc = client_ctx(cert_path, false, NULL);
  CHECK(connect_plain(port, &s) == 0);
  CHECK(cor_stream_start_tls(s, cc, "example.com", 5) == COR_ETLS);
  m = cor_stream_error_message(s);
  CHECK(m && strstr(m, "hostname mismatch"));
  cor_stream_close(s);
  cor_stream_free(s);
  /* through cor_open_connection_opts: the error, no stream */
  cor_connect_opts co = {.timeout = 5, .tls = sys};
  s = (cor_stream_t *)1;
  CHECK(cor_open_connection_opts("127.0.0.1", port, &co, &s) == COR_ETLS);
  CHECK(s == NULL);
  /* insecure accepts it, and says it did not verify */
  cor_tls_ctx_t *ins = client_ctx(NULL, true, NULL);
  co.tls = ins;
  co.server_hostname = "example.com";
  CHECK(cor_open_connection_opts("127.0.0.1", port, &co, &s) == 0);
  CHECK(!cor_stream_tls_verified(s));
  CHECK(cor_stream_write(s, "ok\n", 3) == 0);
  char line[8];
  CHECK(cor_stream_readline(s, line, sizeof line) == 3);
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  CHECK(handler_calls == 1); /* only the insecure client reached it */
  cor_release(sc);
  cor_release(sys);
  cor_release(other);
  cor_release(cc);
  cor_release(ins);
  return 0;
}

static void test_verify(void **state) {
  (void)state;
  both(body_verify);
}

/* A plain client sends an HTTP request to a TLS server: the server fails
 * the handshake (logged at DEBUG, no handler) and closes. */
static int body_garbage_to_server(void *arg, void **res) {
  (void)arg, (void)res;
  handler_calls = 0;
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  char port[16];
  cor_server_t *srv = tls_server(sc, echo_handler, 0, port);
  CHECK(srv);
  cor_stream_t *s = NULL;
  CHECK(connect_plain(port, &s) == 0);
  CHECK(cor_stream_write(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27) == 0);
  cor_stream_set_timeouts(s, 5, 0);
  char b[256];
  ssize_t n;
  while ((n = cor_stream_read(s, b, sizeof b)) > 0) {
  } /* an alert maybe, then EOF */
  CHECK(n == 0 || n == -ECONNRESET);
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  CHECK(handler_calls == 0);
  cor_release(sc);
  return 0;
}

static void test_garbage_to_server(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  cor_log_set_level(COR_LOG_DEBUG);
  recs_clear();
  both(body_garbage_to_server);
  cor_log_set_level(COR_LOG_WARNING);
  cor_log_set_sink(NULL, NULL);
  bool seen = false;
  for (int i = 0; i < nrec; i++)
    if (recs[i].level == COR_LOG_DEBUG &&
        strstr(recs[i].msg, "TLS handshake failed"))
      seen = true;
  assert_true(seen);
}

/* Plain servers that misbehave toward a TLS client. */
static int garbage_handler(void *arg, void **res) {
  (void)res;
  cor_stream_t *s = arg;
  char b[512];
  (void)cor_stream_read(s, b, sizeof b); /* the ClientHello */
  (void)cor_stream_write(s, "HTTP/1.0 400 Bad Request\r\n\r\n", 28);
  return 0;
}
static int close_handler(void *arg, void **res) {
  (void)arg, (void)res;
  return 0; /* closes at once */
}
static int silent_handler(void *arg, void **res) {
  (void)res;
  cor_stream_t *s = arg;
  char b[512];
  (void)cor_stream_read(s, b, sizeof b);
  (void)cor_sleep(3);
  return 0;
}

static int plain_server(cor_fn h, char *port, cor_server_t **out) {
  cor_server_opts o = {.host = "127.0.0.1"};
  *out = cor_start_server(NULL, &o, h);
  if (*out == NULL)
    return -1;
  snprintf(port, 16, "%d", cor_server_port(*out));
  return 0;
}

static int body_bad_servers(void *arg, void **res) {
  (void)arg, (void)res;
  cor_tls_ctx_t *cc = client_ctx(cert_path, false, NULL);
  char port[16];
  cor_server_t *srv;
  cor_stream_t *s;
  /* garbage instead of a ServerHello */
  CHECK(plain_server(garbage_handler, port, &srv) == 0);
  CHECK(connect_plain(port, &s) == 0);
  CHECK(cor_stream_start_tls(s, cc, "localhost", 5) == COR_ETLS);
  CHECK(cor_stream_error_message(s) != NULL);
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  /* closes mid-handshake */
  CHECK(plain_server(close_handler, port, &srv) == 0);
  CHECK(connect_plain(port, &s) == 0);
  int rc = cor_stream_start_tls(s, cc, "localhost", 5);
  CHECK(rc == COR_ETLS || rc == -ECONNRESET);
  if (rc == COR_ETLS)
    CHECK(strstr(cor_stream_error_message(s), "closed"));
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  /* never answers: the time-out */
  CHECK(plain_server(silent_handler, port, &srv) == 0);
  CHECK(connect_plain(port, &s) == 0);
  CHECK(cor_stream_start_tls(s, cc, "localhost", 0.2) == -ETIMEDOUT);
  cor_stream_close(s);
  cor_stream_free(s);
  cor_server_close_clients(srv);
  server_done(srv);
  cor_release(cc);
  return 0;
}

static void test_bad_servers(void **state) {
  (void)state;
  both(body_bad_servers);
}

/* A client that never sends its ClientHello holds the connection only for
 * tls_handshake_timeout. */
static int body_server_timeout(void *arg, void **res) {
  (void)arg, (void)res;
  handler_calls = 0;
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  char port[16];
  cor_server_t *srv = tls_server(sc, echo_handler, 0.2, port);
  CHECK(srv);
  cor_stream_t *s = NULL;
  CHECK(connect_plain(port, &s) == 0);
  cor_stream_set_timeouts(s, 5, 0);
  double t0 = cor_loop_time(cor_get_running_loop());
  char b[16];
  ssize_t n = cor_stream_read(s, b, sizeof b);
  CHECK(n == 0 || n == -ECONNRESET);
  CHECK(cor_loop_time(cor_get_running_loop()) - t0 < 3);
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  CHECK(handler_calls == 0);
  cor_release(sc);
  return 0;
}

static void test_server_handshake_timeout(void **state) {
  (void)state;
  both(body_server_timeout);
}

/* ------------------------------------------------------------ STARTTLS */

static cor_tls_ctx_t *starttls_ctx;

static int starttls_handler(void *arg, void **res) {
  cor_stream_t *s = arg;
  char line[64];
  ssize_t n = cor_stream_readline(s, line, sizeof line);
  if (n != 9 || memcmp(line, "STARTTLS\n", 9) != 0)
    return -EPROTO;
  int rc = cor_stream_write(s, "OK\n", 3);
  if (rc == 0)
    rc = cor_stream_start_tls(s, starttls_ctx, NULL, 5);
  if (rc != 0)
    return rc;
  return echo_handler(arg, res);
}

static int body_starttls(void *arg, void **res) {
  (void)arg, (void)res;
  starttls_ctx = server_ctx(NULL, 0);
  cor_tls_ctx_t *cc = client_ctx(cert_path, false, NULL);
  char port[16];
  cor_server_t *srv;
  CHECK(plain_server(starttls_handler, port, &srv) == 0);
  cor_stream_t *s;
  CHECK(connect_plain(port, &s) == 0);
  CHECK(cor_stream_write(s, "STARTTLS\n", 9) == 0);
  char line[64];
  CHECK(cor_stream_readline(s, line, sizeof line) == 3);
  CHECK(cor_stream_start_tls(s, cc, "localhost", 5) == 0);
  CHECK(cor_stream_tls_verified(s));
  CHECK(cor_stream_start_tls(s, cc, "localhost", 5) == -EINVAL); /* twice */
  CHECK(cor_stream_write(s, "secret\n", 7) == 0);
  CHECK(cor_stream_readline(s, line, sizeof line) == 7);
  CHECK(memcmp(line, "secret\n", 7) == 0);
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  cor_release(starttls_ctx);
  cor_release(cc);
  return 0;
}

static void test_starttls(void **state) {
  (void)state;
  both(body_starttls);
}

/* ------------------------------------------------------------ closing */

static int bye_handler(void *arg, void **res) {
  (void)res;
  return cor_stream_write(arg, "bye\n", 4); /* then the server closes */
}

static int truncate_handler(void *arg, void **res) {
  (void)res;
  cor_stream_t *s = arg;
  int rc = cor_stream_write(s, "bye\n", 4);
  if (rc == 0)
    rc = cor_stream_drain(s);
  (void)cor_sleep(0.05);
  shutdown(cor_stream_fd(s), SHUT_RDWR); /* a FIN without close_notify */
  return rc;
}

static int body_close(void *arg, void **res) {
  (void)arg, (void)res;
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  cor_tls_ctx_t *cc = client_ctx(cert_path, false, NULL);
  char port[16];
  cor_connect_opts co = {.timeout = 5, .tls = cc,
                         .server_hostname = "localhost"};
  /* close_notify: a clean EOF */
  cor_server_t *srv = tls_server(sc, bye_handler, 0, port);
  cor_stream_t *s;
  CHECK(cor_open_connection_opts("127.0.0.1", port, &co, &s) == 0);
  char line[16];
  CHECK(cor_stream_readline(s, line, sizeof line) == 4);
  CHECK(cor_stream_read(s, line, sizeof line) == 0);
  CHECK(cor_stream_at_eof(s));
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  /* a FIN without it: truncation */
  srv = tls_server(sc, truncate_handler, 0, port);
  CHECK(cor_open_connection_opts("127.0.0.1", port, &co, &s) == 0);
  CHECK(cor_stream_readline(s, line, sizeof line) == 4);
  CHECK(cor_stream_read(s, line, sizeof line) == COR_ETLS);
  CHECK(strstr(cor_stream_error_message(s), "truncated"));
  cor_stream_close(s);
  cor_stream_free(s);
  server_done(srv);
  cor_release(sc);
  cor_release(cc);
  return 0;
}

static void test_close_notify(void **state) {
  (void)state;
  both(body_close);
}

/* A plain blocking OpenSSL client: SSL_read returns 0 (close_notify) after
 * the server's reply. */
static int ossl_port;
static int ossl_result;

static void *ossl_client(void *arg) {
  int *result = arg ? arg : &ossl_result;
  *result = -1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)ossl_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  SSL_CTX *c = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(c, cert_path, NULL);
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
  SSL *ssl = SSL_new(c);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  SSL_set1_host(ssl, "localhost");
  char b[16];
  if (SSL_connect(ssl) == 1 && SSL_write(ssl, "ping\n", 5) == 5) {
    int n = SSL_read(ssl, b, sizeof b);
    int z = SSL_read(ssl, b, sizeof b);
    if (n == 5 && memcmp(b, "ping\n", 5) == 0 && z == 0 &&
        SSL_get_error(ssl, z) == SSL_ERROR_ZERO_RETURN)
      *result = 0;
  }
  SSL_free(ssl);
  SSL_CTX_free(c);
  close(fd);
  return NULL;
}

static int ping_once(void *arg, void **res) {
  (void)res;
  cor_stream_t *s = arg;
  char line[16];
  ssize_t n = cor_stream_readline(s, line, sizeof line);
  if (n <= 0)
    return (int)n;
  return cor_stream_write(s, line, (size_t)n); /* the server closes after */
}

static void *ossl_thread_start(void *arg) { return ossl_client(arg); }

static int body_ossl_peer(void *arg, void **res) {
  (void)arg, (void)res;
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  char port[16];
  cor_server_t *srv = tls_server(sc, ping_once, 0, port);
  CHECK(srv);
  ossl_port = atoi(port);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, ossl_thread_start, NULL) == 0);
  for (int i = 0; i < 200; i++) {
    int r = pthread_tryjoin_np(th, NULL);
    if (r == 0)
      break;
    cor_sleep(0.02);
  }
  (void)pthread_join(th, NULL);
  CHECK(ossl_result == 0);
  server_done(srv);
  cor_release(sc);
  return 0;
}

static void test_openssl_peer(void **state) {
  (void)state;
  both(body_ossl_peer);
}

/* A runtime server: one context used by both loops at once, blocking
 * OpenSSL clients from several threads. */
static void *ossl_many(void *arg) {
  int *bad = arg;
  for (int i = 0; i < 10; i++) {
    int r;
    ossl_client(&r);
    if (r != 0)
      (*bad)++;
  }
  return NULL;
}

static void test_runtime_server(void **state) {
  (void)state;
  cor_runtime_opts ro = {.nloops = 2};
  cor_runtime_t *rt = cor_runtime_new(&ro);
  assert_non_null(rt);
  cor_tls_ctx_t *sc = server_ctx(NULL, 0);
  assert_non_null(sc);
  cor_server_opts o = {.host = "127.0.0.1", .tls = sc};
  cor_server_t *srv = cor_runtime_start_server(rt, &o, ping_once);
  assert_non_null(srv);
  cor_release(sc);
  ossl_port = cor_server_port(srv);
  enum { T = 4 };
  pthread_t th[T];
  int bad[T] = {0};
  for (int i = 0; i < T; i++)
    assert_int_equal(pthread_create(&th[i], NULL, ossl_many, &bad[i]), 0);
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(bad[i], 0);
  }
  assert_int_equal(cor_server_close(srv), 0);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  cor_release(rt);
}

/* ------------------------------------------------------------ contexts */

static void test_ctx_errors(void **state) {
  (void)state;
  cor_tls_opts o = {.server = true};
  errno = 0;
  assert_null(cor_tls_ctx_new(&o)); /* no certificate */
  assert_int_equal(errno, EINVAL);
  o.cert_file = "/nonexistent.pem";
  o.key_file = "/nonexistent.pem";
  errno = 0;
  assert_null(cor_tls_ctx_new(&o));
  assert_int_equal(errno, -COR_ETLS);
  o.cert_file = cert_path;
  o.key_file = other_key; /* does not match */
  assert_null(cor_tls_ctx_new(&o));
  cor_tls_opts c = {.alpn = "h2,,x"};
  errno = 0;
  assert_null(cor_tls_ctx_new(&c));
  assert_int_equal(errno, EINVAL);
  c.alpn = NULL;
  c.min_version = 0x0301;
  assert_null(cor_tls_ctx_new(&c));
  c.min_version = COR_TLS_VERSION_1_3;
  cor_tls_ctx_t *ok = cor_tls_ctx_new(&c);
  assert_non_null(ok);
  /* a client context for a server, and the other way round: refused */
  cor_loop_t *loop = cor_loop_new(NULL);
  cor_server_opts so = {.tls = ok};
  errno = 0;
  assert_null(cor_start_server(loop, &so, echo_handler));
  assert_int_equal(errno, EINVAL);
  cor_loop_close(loop);
  cor_release(loop);
  cor_release(ok);
  assert_string_equal(cor_err_name(COR_ETLS), "COR_ETLS");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ctx_errors),
      cmocka_unit_test(test_echo),
      cmocka_unit_test(test_plain_getters),
      cmocka_unit_test(test_tls12_alpn_refused),
      cmocka_unit_test(test_large),
      cmocka_unit_test(test_sendfile_peek),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_verify),
      cmocka_unit_test(test_garbage_to_server),
      cmocka_unit_test(test_bad_servers),
      cmocka_unit_test(test_server_handshake_timeout),
      cmocka_unit_test(test_starttls),
      cmocka_unit_test(test_close_notify),
      cmocka_unit_test(test_openssl_peer),
      cmocka_unit_test(test_runtime_server),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
