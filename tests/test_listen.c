/* SPDX-License-Identifier: MIT */
/* Listener options (core/server.c): every resolved address bound ("" =
 * every interface), dual-stack IPv6, SO_KEEPALIVE on connections, and an
 * adopted listening socket (socket activation), for single-loop and
 * runtime servers. Loopback only. */
#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The handler answers one byte: '1' when the connection has SO_KEEPALIVE,
 * '0' otherwise. */
static int answer(void *arg, void **r) {
  cor_stream_t *s = arg;
  int on = 0;
  socklen_t l = sizeof on;
  getsockopt(cor_stream_fd(s), SOL_SOCKET, SO_KEEPALIVE, &on, &l);
  char c = on ? '1' : '0';
  return cor_stream_write(s, &c, 1);
}

/* A blocking client: connects to addr:port and reads the answer; the
 * byte, or 0 when the connect failed. */
static char ask(const char *addr, int port) {
  struct sockaddr_storage ss = {0};
  socklen_t len;
  if (strchr(addr, ':')) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, addr, &a->sin6_addr);
    len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &a->sin_addr);
    len = sizeof *a;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  char c = 0;
  if (connect(fd, (struct sockaddr *)&ss, len) == 0 && read(fd, &c, 1) != 1)
    c = 0;
  close(fd);
  return c;
}

static bool ipv6_loopback(void) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* The clients run on a thread while the loop serves. */
typedef struct {
  const char *addr[2];
  int port;
  char got[2];
  cor_loop_t *loop;
} clients_t;
static void *clients_main(void *arg) {
  clients_t *c = arg;
  for (int i = 0; i < 2; i++)
    if (c->addr[i])
      c->got[i] = ask(c->addr[i], c->port);
  return NULL;
}
static void stop_cb(void *arg) { cor_loop_stop(arg); }
static void *clients_then_stop(void *arg) {
  clients_main(arg);
  clients_t *c = arg;
  cor_call_soon_threadsafe(c->loop, stop_cb, c->loop);
  return NULL;
}

/* Serves on loop while the clients of c run. */
static void serve(cor_loop_t *loop, clients_t *c) {
  c->loop = loop;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, clients_then_stop, c), 0);
  assert_int_equal(cor_loop_run_forever(loop), 0);
  pthread_join(th, NULL);
}

static void close_server(cor_loop_t *loop, cor_server_t *srv) {
  assert_int_equal(cor_server_close(srv), 0);
  cor_server_free(srv);
  (void)loop;
}

/* ------------------------------------------------------------ the tests */

static void test_every_interface(void **s) {
  cor_loop_t *loop = cor_loop_new(NULL);
  cor_server_opts o = {.host = "", .keepalive = true};
  cor_server_t *srv = cor_start_server(loop, &o, answer);
  assert_non_null(srv);
  int port = cor_server_port(srv);
  assert_true(port > 0);
  bool v6 = ipv6_loopback();
  clients_t c = {.addr = {"127.0.0.1", v6 ? "::1" : NULL}, .port = port};
  serve(loop, &c);
  assert_int_equal(c.got[0], '1'); /* and SO_KEEPALIVE set */
  if (v6)
    assert_int_equal(c.got[1], '1');
  else
    print_message("no IPv6 loopback here: the IPv6 half is skipped\n");
  close_server(loop, srv);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

static void test_dual_stack(void **s) {
  if (!ipv6_loopback()) {
    print_message("no IPv6 loopback here: skipped\n");
    skip();
  }
  cor_loop_t *loop = cor_loop_new(NULL);
  /* "::" dual-stack: IPv4 clients too, over one socket. */
  cor_server_opts o = {.host = "::", .dual_stack = true};
  cor_server_t *srv = cor_start_server(loop, &o, answer);
  assert_non_null(srv);
  clients_t c = {.addr = {"127.0.0.1", "::1"}, .port = cor_server_port(srv)};
  serve(loop, &c);
  assert_int_equal(c.got[0], '0'); /* no keepalive asked for */
  assert_int_equal(c.got[1], '0');
  close_server(loop, srv);
  /* IPv6 only by default: IPv4 is refused. */
  o.dual_stack = false;
  srv = cor_start_server(loop, &o, answer);
  assert_non_null(srv);
  c = (clients_t){.addr = {"127.0.0.1", "::1"}, .port = cor_server_port(srv)};
  serve(loop, &c);
  assert_int_equal(c.got[0], 0);
  assert_int_equal(c.got[1], '0');
  close_server(loop, srv);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

/* A listening socket made elsewhere (as systemd passes one). */
static int make_listening(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0); /* blocking, inheritable */
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0);
  socklen_t l = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return fd;
}

static void test_adopt_fd(void **s) {
  cor_loop_t *loop = cor_loop_new(NULL);
  int port, fd = make_listening(&port);
  cor_server_opts o = {.fd = fd, .host = "ignored.invalid"};
  cor_server_t *srv = cor_start_server(loop, &o, answer);
  assert_non_null(srv);
  assert_int_equal(cor_server_port(srv), port);
  assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  clients_t c = {.addr = {"127.0.0.1", "127.0.0.1"}, .port = port};
  serve(loop, &c);
  assert_int_equal(c.got[0], '0');
  assert_int_equal(c.got[1], '0');
  close_server(loop, srv);
  assert_int_equal(fcntl(fd, F_GETFD), -1); /* the server owned it */
  /* Not a listening socket: refused, and left to the caller. */
  recs_clear();
  int bad = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  o.fd = bad;
  errno = 0;
  assert_null(cor_start_server(loop, &o, answer));
  assert_int_equal(errno, EINVAL);
  assert_true(fcntl(bad, F_GETFD) >= 0);
  close(bad);
  int dg = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  o.fd = dg;
  assert_null(cor_start_server(loop, &o, answer));
  close(dg);
  EXPECT_ERRORS(2, "opts->fd is not a listening stream socket");
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

/* A runtime server on an adopted socket: every loop accepts from a dup. */
static void test_adopt_fd_runtime(void **s) {
  cor_runtime_opts ro = {.nloops = 2};
  cor_runtime_t *rt = cor_runtime_new(&ro);
  assert_non_null(rt);
  int port, fd = make_listening(&port);
  cor_server_opts o = {.fd = fd, .keepalive = true};
  cor_server_t *srv = cor_runtime_start_server(rt, &o, answer);
  assert_non_null(srv);
  assert_int_equal(cor_server_port(srv), port);
  for (int i = 0; i < 20; i++)
    assert_int_equal(ask("127.0.0.1", port), '1');
  assert_int_equal(cor_server_close(srv), 0);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  assert_int_equal(fcntl(fd, F_GETFD), -1);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  cor_release(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_interface),
      cmocka_unit_test(test_dual_stack),
      cmocka_unit_test(test_adopt_fd),
      cmocka_unit_test(test_adopt_fd_runtime),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
