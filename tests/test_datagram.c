/* SPDX-License-Identifier: MIT */
/* UDP endpoints (core/datagram.c): host names, the broadcast and reuseaddr
 * options, multicast membership and delivery on loopback, batched
 * recv_many / send_many, and their misuse codes. Each body runs on a loop
 * with io_uring (as the kernel allows) and on one without: datagrams stay
 * on an epoll registration either way, but the loop around them differs.
 * The older request/response cases live in tests/test_timeouts.c and
 * tests/test_resource.c. */
#include "taskbody.h"

#include <corio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "logcap.h"

static char skip_reason[256];

static void both(cor_fn body) {
  run_body_new_loop(1, body, NULL);
  run_body_new_loop(-1, body, NULL);
}

/* The endpoint's fd, found by its bound port (the API keeps the fd to
 * itself): for getsockopt. */
static int fd_of(cor_datagram_t *d) {
  int port = cor_datagram_port(d);
  for (int fd = 3; fd < 4096; fd++) {
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockname(fd, (struct sockaddr *)&ss, &l) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
        type != SOCK_DGRAM)
      continue;
    int p = ss.ss_family == AF_INET
                ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
            : ss.ss_family == AF_INET6
                ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                : -1;
    if (p == port)
      return fd;
  }
  return -1;
}

static int port_of(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET
             ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
             : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void close_free(cor_datagram_t *d) {
  if (d) {
    cor_datagram_close(d);
    cor_datagram_free(d);
  }
}

/* ------------------------------------------------------------ names */

/* "localhost" is answered in place (core/net.c maps it to 127.0.0.1); a
 * name that takes the resolver is this host's own name when it resolves to
 * 127.0.0.1 (/etc/hosts, nss-myhostname). Empty when it does not. */
static char g_name[256];

static void find_name(void) {
  g_name[0] = 0;
  char h[256];
  if (gethostname(h, sizeof h) != 0 || h[0] == 0 ||
      strcmp(h, "localhost") == 0)
    return;
  h[sizeof h - 1] = 0;
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM},
                  *res = NULL;
  if (getaddrinfo(h, NULL, &hints, &res) == 0 && res &&
      ((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr ==
          htonl(INADDR_LOOPBACK))
    snprintf(g_name, sizeof g_name, "%s", h);
  if (res)
    freeaddrinfo(res);
}

static int names_body(void *arg, void **r) {
  int rc;
  /* "localhost" on both ends, resolved off the loop (the task waits). */
  cor_datagram_t *srv =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "localhost"});
  CHECK(srv != NULL && cor_datagram_port(srv) > 0);
  cor_datagram_t *cl = cor_open_datagram(
      NULL, &(cor_datagram_opts){.remote_host = "localhost",
                                 .remote_port = cor_datagram_port(srv)});
  CHECK(cl != NULL);
  CHECK(cor_datagram_send(cl, "hi", 2, NULL, 0) == 0);
  char buf[16];
  struct sockaddr_storage from;
  unsigned fl = sizeof from;
  CHECK(cor_datagram_recv(srv, buf, sizeof buf, (struct sockaddr *)&from, &fl,
                          5) == 2);
  CHECK(memcmp(buf, "hi", 2) == 0);
  /* An unconnected endpoint sends to a name. */
  cor_datagram_t *un =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "localhost"});
  CHECK(un != NULL);
  CHECK(cor_datagram_sendto(un, "to", 2, "localhost", cor_datagram_port(srv)) ==
        0);
  fl = sizeof from;
  CHECK(cor_datagram_recv(srv, buf, sizeof buf, (struct sockaddr *)&from, &fl,
                          5) == 2);
  CHECK(memcmp(buf, "to", 2) == 0);
  CHECK(port_of(&from) == cor_datagram_port(un));
  /* And to a numeric address of its family, with no lookup. */
  const char *num = from.ss_family == AF_INET6 ? "::1" : "127.0.0.1";
  CHECK(cor_datagram_sendto(un, "nu", 2, num, cor_datagram_port(srv)) == 0);
  CHECK(cor_datagram_recv(srv, buf, sizeof buf, NULL, NULL, 5) == 2);
  CHECK(memcmp(buf, "nu", 2) == 0);
  /* The other family is not the endpoint's. */
  const char *other = from.ss_family == AF_INET6 ? "127.0.0.1" : "::1";
  rc = cor_datagram_sendto(un, "x", 1, other, 9);
  CHECK(rc < 0);
  close_free(un);
  CHECK(cor_datagram_sendto(NULL, "x", 1, "localhost", 9) == -EINVAL);
  close_free(cl);
  if (g_name[0]) {
    /* A real name, through the resolver pool, on both ends and in sendto. */
    cor_datagram_t *ns = cor_open_datagram(
        NULL, &(cor_datagram_opts){.local_host = g_name});
    CHECK(ns != NULL);
    cor_datagram_t *nc = cor_open_datagram(
        NULL, &(cor_datagram_opts){.local_host = g_name,
                                   .remote_host = g_name,
                                   .remote_port = cor_datagram_port(ns)});
    CHECK(nc != NULL);
    CHECK(cor_datagram_send(nc, "nm", 2, NULL, 0) == 0);
    fl = sizeof from;
    CHECK(cor_datagram_recv(ns, buf, sizeof buf, (struct sockaddr *)&from,
                            &fl, 5) == 2);
    CHECK(memcmp(buf, "nm", 2) == 0);
    CHECK(port_of(&from) == cor_datagram_port(nc));
    CHECK(cor_datagram_sendto(ns, "back", 4, g_name, cor_datagram_port(nc)) ==
          0);
    CHECK(cor_datagram_recv(nc, buf, sizeof buf, NULL, NULL, 5) == 4);
    CHECK(memcmp(buf, "back", 4) == 0);
    close_free(nc);
    close_free(ns);
  } else {
    print_message("note: no host name resolving to 127.0.0.1 here; only "
                  "\"localhost\" (answered in place) was tried\n");
  }
  /* Closed: COR_ECLOSED before any lookup. */
  CHECK(cor_datagram_close(srv) == 0);
  CHECK(cor_datagram_sendto(srv, "x", 1, "localhost", 9) == COR_ECLOSED);
  cor_datagram_free(srv);
  return 0;
}

static void test_names(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  both(names_body);
  cor_log_set_sink(NULL, NULL);
}

/* Outside a task, before the loop runs: a name is resolved by a blocking
 * getaddrinfo in cor_open_datagram (as cor_start_server), and sendto with a
 * name says COR_ENOTASK rather than block the loop's thread. */
static void test_names_outside_task(void **state) {
  (void)state;
  cor_loop_t *loop = cor_loop_new(NULL);
  assert_non_null(loop);
  cor_datagram_t *d = cor_open_datagram(
      loop, &(cor_datagram_opts){.local_host = "localhost"});
  assert_non_null(d);
  assert_true(cor_datagram_port(d) > 0);
  if (g_name[0]) {
    /* Resolved by a blocking getaddrinfo here, the loop not running. */
    cor_datagram_t *n = cor_open_datagram(
        loop, &(cor_datagram_opts){.local_host = g_name});
    assert_non_null(n);
    assert_true(cor_datagram_port(n) > 0);
    close_free(n);
    /* A send does not block the loop's thread on a lookup. */
    assert_int_equal(
        cor_datagram_sendto(d, "x", 1, g_name, cor_datagram_port(d)),
        COR_ENOTASK);
  }
  /* A numeric address needs no task. */
  int fd = fd_of(d);
  assert_true(fd >= 0);
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &l), 0);
  assert_int_equal(cor_datagram_sendto(d, "self", 4,
                                       ss.ss_family == AF_INET6 ? "::1"
                                                                : "127.0.0.1",
                                       cor_datagram_port(d)),
                   0);
  char buf[8];
  assert_int_equal(recv(fd, buf, sizeof buf, MSG_DONTWAIT), 4);
  close_free(d);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

/* ------------------------------------------------------------ options */

static int options_body(void *arg, void **r) {
  cor_datagram_t *plain =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "127.0.0.1"});
  cor_datagram_t *bc = cor_open_datagram(
      NULL, &(cor_datagram_opts){.local_host = "127.0.0.1",
                                 .broadcast = true,
                                 .reuseaddr = true});
  CHECK(plain != NULL && bc != NULL);
  int v = -1;
  socklen_t l = sizeof v;
  CHECK(getsockopt(fd_of(plain), SOL_SOCKET, SO_BROADCAST, &v, &l) == 0);
  CHECK(v == 0); /* zeroed options: today's behaviour */
  CHECK(getsockopt(fd_of(plain), SOL_SOCKET, SO_REUSEADDR, &v, &l) == 0);
  CHECK(v == 0);
  CHECK(getsockopt(fd_of(bc), SOL_SOCKET, SO_BROADCAST, &v, &l) == 0);
  CHECK(v == 1);
  CHECK(getsockopt(fd_of(bc), SOL_SOCKET, SO_REUSEADDR, &v, &l) == 0);
  CHECK(v == 1);
  /* Without the option the kernel refuses a broadcast destination. */
  CHECK(cor_datagram_sendto(plain, "x", 1, "255.255.255.255", 9) == -EACCES);
  close_free(plain);
  close_free(bc);
  /* Two receivers of one port with reuseaddr on both. */
  cor_datagram_t *a = cor_open_datagram(
      NULL, &(cor_datagram_opts){.local_host = "0.0.0.0", .reuseaddr = true});
  CHECK(a != NULL);
  cor_datagram_t *b = cor_open_datagram(
      NULL, &(cor_datagram_opts){.local_host = "0.0.0.0",
                                 .local_port = cor_datagram_port(a),
                                 .reuseaddr = true});
  CHECK(b != NULL);
  close_free(b);
  /* Without it on the second: in use. */
  errno = 0;
  CHECK(cor_open_datagram(NULL, &(cor_datagram_opts){
                                    .local_host = "0.0.0.0",
                                    .local_port = cor_datagram_port(a)}) ==
            NULL &&
        errno == EADDRINUSE);
  close_free(a);
  return 0;
}

static void test_options(void **state) {
  (void)state;
  both(options_body);
}

/* ------------------------------------------------------------ multicast */

#define GROUP "239.255.67.89"

static int multicast_body(void *arg, void **r) {
  cor_datagram_t *rx = cor_open_datagram(
      NULL, &(cor_datagram_opts){.local_host = "0.0.0.0", .reuseaddr = true});
  cor_datagram_t *tx =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "127.0.0.1"});
  CHECK(rx != NULL && tx != NULL);
  /* Misuse first: these need no multicast routing. */
  recs_clear();
  CHECK(cor_datagram_join_group(rx, "127.0.0.1", NULL) == -EINVAL);
  CHECK(count_at("cor_datagram_join_group", "group", NULL, NULL, NULL) == 1);
  CHECK(cor_datagram_join_group(rx, "not-an-address", NULL) == -EINVAL);
  CHECK(cor_datagram_join_group(rx, NULL, NULL) == -EINVAL);
  CHECK(cor_datagram_join_group(rx, "ff02::1", NULL) == -EAFNOSUPPORT);
  CHECK(cor_datagram_join_group(rx, GROUP, "no-such-if0") == -ENODEV);
  CHECK(cor_datagram_join_group(rx, GROUP, "a/b") == -EINVAL);
  CHECK(cor_datagram_leave_group(rx, GROUP, "127.0.0.1") == -EADDRNOTAVAIL);
  CHECK(cor_datagram_set_multicast_ttl(tx, 256) == -EINVAL);
  CHECK(cor_datagram_set_multicast_ttl(tx, -1) == -EINVAL);
  CHECK(cor_datagram_set_multicast_ttl(tx, 1) == 0);
  int v = -1;
  socklen_t l = sizeof v;
  CHECK(getsockopt(fd_of(tx), IPPROTO_IP, IP_MULTICAST_TTL, &v, &l) == 0);
  CHECK(v == 1);
  CHECK(cor_datagram_set_multicast_loop(tx, false) == 0);
  CHECK(getsockopt(fd_of(tx), IPPROTO_IP, IP_MULTICAST_LOOP, &v, &l) == 0);
  CHECK(v == 0);
  CHECK(cor_datagram_set_multicast_loop(tx, true) == 0);
  CHECK(getsockopt(fd_of(tx), IPPROTO_IP, IP_MULTICAST_LOOP, &v, &l) == 0);
  CHECK(v == 1);

  /* Join on the loopback interface, by its address. */
  int rc = cor_datagram_join_group(rx, GROUP, "127.0.0.1");
  if (rc == -ENODEV || rc == -EADDRNOTAVAIL || rc == -ENOBUFS) {
    snprintf(skip_reason, sizeof skip_reason,
             "multicast join on loopback refused here (%s)", strerror(-rc));
  } else {
    CHECK(rc == 0);
    CHECK(cor_datagram_join_group(rx, GROUP, "127.0.0.1") == -EADDRINUSE);
    /* Sent from an endpoint bound to 127.0.0.1: the kernel takes the
     * interface of the source address for a multicast destination. */
    rc = cor_datagram_sendto(tx, "group!", 6, GROUP, cor_datagram_port(rx));
    char buf[16];
    struct sockaddr_storage from;
    unsigned fl = sizeof from;
    ssize_t got = rc == 0 ? cor_datagram_recv(rx, buf, sizeof buf,
                                              (struct sockaddr *)&from, &fl, 1)
                          : rc;
    if (rc == -ENETUNREACH || rc == -ENODEV || rc == -EINVAL ||
        got == -ETIMEDOUT) {
      snprintf(skip_reason, sizeof skip_reason,
               "no multicast delivery over loopback in this network "
               "(send %d, recv %zd)",
               rc, got);
    } else {
      CHECK(rc == 0);
      CHECK(got == 6 && memcmp(buf, "group!", 6) == 0);
      CHECK(from.ss_family == AF_INET &&
            ((struct sockaddr_in *)&from)->sin_addr.s_addr ==
                htonl(INADDR_LOOPBACK));
      CHECK(port_of(&from) == cor_datagram_port(tx));
    }
    CHECK(cor_datagram_leave_group(rx, GROUP, "127.0.0.1") == 0);
    CHECK(cor_datagram_leave_group(rx, GROUP, "127.0.0.1") == -EADDRNOTAVAIL);
    /* By interface name too. */
    rc = cor_datagram_join_group(rx, GROUP, "lo");
    CHECK(rc == 0);
    CHECK(cor_datagram_leave_group(rx, GROUP, "lo") == 0);
  }

  /* IPv6, where the host has ::1. */
  cor_datagram_t *rx6 =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "::1"});
  if (rx6 != NULL) {
    CHECK(cor_datagram_join_group(rx6, GROUP, NULL) == -EAFNOSUPPORT);
    CHECK(cor_datagram_join_group(rx6, "ff02::1", "127.0.0.1") == -EINVAL);
    rc = cor_datagram_join_group(rx6, "ff12::4321", "lo");
    if (rc == 0) {
      CHECK(cor_datagram_join_group(rx6, "ff12::4321", "lo") == -EADDRINUSE);
      CHECK(cor_datagram_leave_group(rx6, "ff12::4321", "lo") == 0);
      CHECK(cor_datagram_leave_group(rx6, "ff12::4321", "lo") ==
            -EADDRNOTAVAIL);
    } else {
      print_message("note: IPv6 multicast join on lo: %s\n", strerror(-rc));
    }
    CHECK(cor_datagram_set_multicast_ttl(rx6, 3) == 0);
    CHECK(getsockopt(fd_of(rx6), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &v, &l) ==
          0);
    CHECK(v == 3);
    CHECK(cor_datagram_set_multicast_loop(rx6, false) == 0);
    CHECK(getsockopt(fd_of(rx6), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &v, &l) ==
          0);
    CHECK(v == 0);
    close_free(rx6);
  }

  /* Closed. */
  CHECK(cor_datagram_close(tx) == 0);
  CHECK(cor_datagram_join_group(tx, GROUP, NULL) == COR_ECLOSED);
  CHECK(cor_datagram_leave_group(tx, GROUP, NULL) == COR_ECLOSED);
  CHECK(cor_datagram_set_multicast_ttl(tx, 1) == COR_ECLOSED);
  CHECK(cor_datagram_set_multicast_loop(tx, true) == COR_ECLOSED);
  cor_datagram_free(tx);
  close_free(rx);
  return 0;
}

static void test_multicast(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  skip_reason[0] = 0;
  run_body_new_loop(1, multicast_body, NULL);
  run_body_new_loop(-1, multicast_body, NULL);
  cor_log_set_sink(NULL, NULL);
  /* The parts that ran passed; the delivery part is reported skipped when
   * this network cannot carry it. */
  TEST_SKIP_IF(skip_reason[0] != 0, skip_reason);
}

/* ------------------------------------------------------------ batches */

#define NMSG 64

static int many_body(void *arg, void **r) {
  cor_datagram_t *rx =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "127.0.0.1"});
  cor_datagram_t *a =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "127.0.0.1"});
  cor_datagram_t *b =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "127.0.0.1"});
  CHECK(rx != NULL && a != NULL && b != NULL);
  struct sockaddr_in to = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)cor_datagram_port(rx)),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  static char text[NMSG][32];
  static cor_dgram_msg out[NMSG], in[NMSG];
  static char rbuf[NMSG][64];
  memset(out, 0, sizeof out);
  for (int i = 0; i < NMSG; i++) {
    int k = snprintf(text[i], sizeof text[i], "datagram %d %.*s", i, i % 9,
                     "xxxxxxxxx");
    out[i].buf = text[i];
    out[i].len = (size_t)k;
    memcpy(&out[i].addr, &to, sizeof to);
    out[i].addrlen = sizeof to;
  }
  /* Nothing queued: 0 answers at once; n 0 reads nothing. */
  for (int i = 0; i < NMSG; i++)
    in[i] = (cor_dgram_msg){.buf = rbuf[i], .cap = sizeof rbuf[i]};
  CHECK(cor_datagram_recv_many(rx, in, NMSG, 0) == -ETIMEDOUT);
  CHECK(cor_datagram_recv_many(rx, in, 0, 0) == 0);
  CHECK(cor_datagram_send_many(a, out, 0) == 0);
  /* The first half from a, the rest from b (more than one sendmmsg batch
   * each way: the call splits them). */
  CHECK(cor_datagram_send_many(a, out, NMSG / 2) == NMSG / 2);
  CHECK(cor_datagram_send_many(b, out + NMSG / 2, NMSG / 2) == NMSG / 2);
  int got = 0;
  while (got < NMSG) {
    ssize_t k = cor_datagram_recv_many(rx, in + got, (unsigned)(NMSG - got), 5);
    CHECK(k >= 1 && k <= NMSG - got);
    got += (int)k;
  }
  CHECK(cor_datagram_recv_many(rx, in, NMSG, 0) == -ETIMEDOUT);
  for (int i = 0; i < NMSG; i++) {
    CHECK(in[i].len == out[i].len);
    CHECK(!in[i].truncated);
    CHECK(memcmp(in[i].buf, text[i], out[i].len) == 0);
    CHECK(in[i].addrlen == sizeof(struct sockaddr_in));
    CHECK(in[i].addr.ss_family == AF_INET);
    CHECK(port_of(&in[i].addr) ==
          cor_datagram_port(i < NMSG / 2 ? a : b));
  }
  /* Truncation is reported per message. */
  CHECK(cor_datagram_send_many(a, out + 10, 1) == 1);
  char small[4];
  cor_dgram_msg t = {.buf = small, .cap = sizeof small};
  CHECK(cor_datagram_recv_many(rx, &t, 1, 5) == 1);
  CHECK(t.len == sizeof small && t.truncated);
  CHECK(memcmp(small, "data", 4) == 0);
  /* A connected endpoint: addrlen 0 = its peer. */
  cor_datagram_t *c = cor_open_datagram(
      NULL, &(cor_datagram_opts){.remote_host = "127.0.0.1",
                                 .remote_port = cor_datagram_port(rx)});
  CHECK(c != NULL);
  cor_dgram_msg two[2] = {{.buf = "one", .len = 3}, {.buf = "two", .len = 3}};
  CHECK(cor_datagram_send_many(c, two, 2) == 2);
  CHECK(cor_datagram_recv_many(rx, in, 2, 5) >= 1);
  CHECK(in[0].len == 3 && memcmp(in[0].buf, "one", 3) == 0);
  /* An unconnected endpoint with no address: the first's error. */
  CHECK(cor_datagram_send_many(a, two, 2) == -EDESTADDRREQ);
  close_free(c);
  close_free(a);
  close_free(b);
  close_free(rx);
  return 0;
}

static void test_many(void **state) {
  (void)state;
  both(many_body);
}

/* recv_many waits for the first datagram as recv does, and a close wakes it
 * with COR_ECLOSED. */
typedef struct {
  cor_datagram_t *rx;
  int mode; /* 0: send, 1: close */
} waker_arg;

static int waker_body(void *arg, void **r) {
  waker_arg *w = arg;
  cor_sleep(0.05);
  if (w->mode == 1)
    return cor_datagram_close(w->rx);
  cor_datagram_t *s = cor_open_datagram(
      NULL, &(cor_datagram_opts){.remote_host = "127.0.0.1",
                                 .remote_port = cor_datagram_port(w->rx)});
  if (s == NULL)
    return -1;
  int rc = cor_datagram_send(s, "late", 4, NULL, 0);
  close_free(s);
  return rc;
}

static int wait_body(void *arg, void **r) {
  cor_datagram_t *rx =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "127.0.0.1"});
  CHECK(rx != NULL);
  char buf[16];
  cor_dgram_msg m[4] = {{.buf = buf, .cap = sizeof buf}};
  for (int i = 1; i < 4; i++)
    m[i] = m[0];
  waker_arg w = {rx, 0};
  cor_task_t *t = cor_create_task(NULL, cor_coro(waker_body, &w), "waker");
  CHECK(t != NULL);
  CHECK(cor_datagram_recv_many(rx, m, 4, 5) == 1);
  CHECK(m[0].len == 4 && memcmp(buf, "late", 4) == 0);
  CHECK(cor_await(cor_task_future(t), NULL) == 0);
  cor_release(t);
  /* A short time-out expires. */
  CHECK(cor_datagram_recv_many(rx, m, 4, 0.02) == -ETIMEDOUT);
  w.mode = 1;
  t = cor_create_task(NULL, cor_coro(waker_body, &w), "closer");
  CHECK(t != NULL);
  CHECK(cor_datagram_recv_many(rx, m, 4, 5) == COR_ECLOSED);
  CHECK(cor_await(cor_task_future(t), NULL) == 0);
  cor_release(t);
  CHECK(cor_datagram_recv_many(rx, m, 4, 0) == COR_ECLOSED);
  CHECK(cor_datagram_send_many(rx, m, 1) == COR_ECLOSED);
  cor_datagram_free(rx);
  return 0;
}

static void test_many_waits(void **state) {
  (void)state;
  both(wait_body);
}

/* ------------------------------------------------------------ misuse */

static int misuse_body(void *arg, void **r) {
  cor_datagram_t *d =
      cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "127.0.0.1"});
  CHECK(d != NULL);
  char buf[8];
  cor_dgram_msg ok = {.buf = buf, .cap = sizeof buf, .len = 1};
  cor_dgram_msg nobuf = {.buf = NULL, .cap = 8, .len = 1};
  cor_dgram_msg bigaddr = {.buf = buf, .len = 1,
                           .addrlen = sizeof(struct sockaddr_storage) + 1};
  recs_clear();
  CHECK(cor_datagram_recv_many(d, NULL, 1, 0) == -EINVAL);
  CHECK(count_at("cor_datagram_recv_many", "msgs is NULL", NULL, NULL, NULL) ==
        1);
  CHECK(cor_datagram_recv_many(d, &nobuf, 1, 0) == -EINVAL);
  CHECK(count_at("cor_datagram_recv_many", "buf is NULL", NULL, NULL, NULL) ==
        1);
  CHECK(cor_datagram_recv_many(d, &ok, 1, NAN) == -EINVAL);
  CHECK(count_at("cor_datagram_recv_many", "NaN", NULL, NULL, NULL) == 1);
  CHECK(cor_datagram_send_many(d, NULL, 1) == -EINVAL);
  CHECK(count_at("cor_datagram_send_many", "msgs is NULL", NULL, NULL, NULL) ==
        1);
  CHECK(cor_datagram_send_many(d, &nobuf, 1) == -EINVAL);
  CHECK(count_at("cor_datagram_send_many", "buf is NULL", NULL, NULL, NULL) ==
        1);
  CHECK(cor_datagram_send_many(d, &bigaddr, 1) == -EINVAL);
  CHECK(count_at("cor_datagram_send_many", "addrlen", NULL, NULL, NULL) == 1);
  CHECK(cor_datagram_send_many(d, &ok, (unsigned)INT32_MAX + 1u) == -EINVAL);
  CHECK(count_at("cor_datagram_send_many", "INT_MAX", NULL, NULL, NULL) == 1);
  CHECK(cor_datagram_sendto(d, "x", 1, NULL, 9) == -EINVAL);
  CHECK(count_at("cor_datagram_sendto", "host is NULL", NULL, NULL, NULL) == 1);
  CHECK(cor_datagram_sendto(d, "x", 1, "127.0.0.1", 65536) == -EINVAL);
  CHECK(cor_datagram_sendto(d, NULL, 1, "127.0.0.1", 9) == -EINVAL);
  errno = 0;
  CHECK(cor_open_datagram(NULL, &(cor_datagram_opts){.local_host = "127.0.0.1",
                                                     .local_port = -1}) ==
            NULL &&
        errno == EINVAL);
  CHECK(count_at("cor_open_datagram", "0..65535", NULL, NULL, NULL) == 1);
  close_free(d);
  return 0;
}

static void test_misuse(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  run_body_new_loop(0, misuse_body, NULL);
  cor_log_set_sink(NULL, NULL);
}

int main(void) {
  find_name();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_names_outside_task),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_multicast),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_many_waits),
      cmocka_unit_test(test_misuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
