/* SPDX-License-Identifier: MIT */
/* Name resolution (core/resolve.c: cor_getaddrinfo, cor_getnameinfo, the
 * bounded resolver pool) and connecting (core/net.c: Happy Eyeballs,
 * local_addr). Loopback only. A "black hole" is a listening socket whose
 * accept queue is full: the kernel drops further SYNs, so a connect to it
 * hangs, as to an address that never answers. */
#include "taskbody.h"

#include "net/stream_internal.h"
#include <corio.h>

#include "logcap.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------ sockets */

/* A listener on 127.0.0.1 with `backlog`; its port in *port. */
static int listener(int backlog, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, backlog), 0);
  socklen_t l = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

/* A black hole: a listener that never accepts, its queue filled. */
static int fillers[4];
static int black_hole(int *port) {
  int fd = listener(0, port);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)*port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < 4; i++) {
    fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    (void)connect(fillers[i], (struct sockaddr *)&a, sizeof a);
  }
  usleep(20000);
  return fd;
}
static void close_fillers(void) {
  for (int i = 0; i < 4; i++)
    close(fillers[i]);
}

/* A port nobody listens on (refused at once). */
static int closed_port(void) {
  int port, fd = listener(1, &port);
  close(fd);
  return port;
}

static cor__addr addr4(int port) {
  cor__addr a;
  assert_int_equal(cor__addr_numeric("127.0.0.1", port, &a), 0);
  return a;
}

static int peer_port(cor_stream_t *s) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  if (getpeername(cor_stream_fd(s), (struct sockaddr *)&a, &l) != 0)
    return -1;
  return ntohs(a.sin_port);
}

/* ------------------------------------------------------------ happy eyeballs */

typedef struct {
  cor__addr addrs[4];
  size_t n;
  cor_connect_opts o;
  int rc;
  int port; /* the peer's port when connected */
  double took;
} race_t;

static int race_body(void *arg, void **r) {
  race_t *x = arg;
  cor_stream_t *s = NULL;
  double t0 = cor_loop_time(loop);
  x->rc = cor__connect_addrs(x->addrs, x->n, &x->o, NULL, 0, &s, NULL);
  x->took = cor_loop_time(loop) - t0;
  if (x->rc == 0) {
    x->port = peer_port(s);
    cor_stream_close(s);
    cor_stream_free(s);
  }
  return 0;
}

/* The first address never answers: the second attempt starts after the
 * delay and wins (sequential connecting, delay < 0, stays on the first
 * until the time-out: test_happy_eyeballs_deadline). */
static void test_happy_eyeballs_black_hole(void **s) {
  int hp, gp;
  int hole = black_hole(&hp), good = listener(16, &gp);
  race_t x = {.addrs = {addr4(hp), addr4(gp)}, .n = 2,
              .o = {.happy_eyeballs_delay = 0.05}};
  run_body_on_loop(race_body, &x);
  assert_int_equal(x.rc, 0);
  assert_int_equal(x.port, gp);
  assert_true(x.took >= 0.04);
  assert_true(x.took < 5);
  close_fillers();
  close(hole);
  close(good);
}

/* A refused first address: the next starts at once, not after the delay. */
static void test_happy_eyeballs_refused_first(void **s) {
  int gp, good = listener(16, &gp);
  race_t x = {.addrs = {addr4(closed_port()), addr4(gp)}, .n = 2,
              .o = {.happy_eyeballs_delay = 2}};
  run_body_on_loop(race_body, &x);
  assert_int_equal(x.rc, 0);
  assert_int_equal(x.port, gp);
  assert_true(x.took < 1.5);
  /* Every one refused: the last error. */
  race_t y = {.addrs = {addr4(closed_port()), addr4(closed_port()),
                        addr4(closed_port())},
              .n = 3, .o = {.happy_eyeballs_delay = 0.01}};
  run_body_on_loop(race_body, &y);
  assert_int_equal(y.rc, -ECONNREFUSED);
  close(good);
}

/* Two that both connect: one wins, the other is closed (nothing leaks:
 * ASan and the loop's unclosed-stream report would say). */
static void test_happy_eyeballs_two_winners(void **s) {
  int p1, p2, l1 = listener(16, &p1), l2 = listener(16, &p2);
  for (int i = 0; i < 5; i++) {
    race_t x = {.addrs = {addr4(p1), addr4(p2)}, .n = 2,
                .o = {.happy_eyeballs_delay = 1e-9}};
    run_body_on_loop(race_body, &x);
    assert_int_equal(x.rc, 0);
    assert_true(x.port == p1 || x.port == p2);
  }
  close(l1);
  close(l2);
}

/* Cancelled while racing two black holes: -ECANCELED, both attempts gone. */
static cor_task_t *racer;
static int cancel_body(void *arg, void **r) {
  racer = cor_create_task(loop, cor_coro(race_body, arg), "racer");
  CHECK(cor_sleep(0.05) == 0);
  CHECK(cor_task_cancel(racer, NULL) == 0);
  CHECK(cor_await_task(racer, NULL) == 0);
  cor_release(racer);
  CHECK(cor_all_tasks(loop, NULL, 0) == 1); /* only this one */
  return 0;
}
static void test_happy_eyeballs_cancel(void **s) {
  int hp, hole = black_hole(&hp);
  race_t x = {.addrs = {addr4(hp), addr4(hp)}, .n = 2,
              .o = {.happy_eyeballs_delay = 0.01}};
  run_body_on_loop(cancel_body, &x);
  assert_int_equal(x.rc, -ECANCELED);
  close_fillers();
  close(hole);
}

/* The overall time-out bounds every attempt. */
static int deadline_body(void *arg, void **r) {
  race_t *x = arg;
  cor_stream_t *s = NULL;
  double t0 = cor_loop_time(loop);
  x->rc = cor__connect_addrs(x->addrs, x->n, &x->o, NULL,
                             cor_loop_time_ns(loop) + 200000000u, &s, NULL);
  x->took = cor_loop_time(loop) - t0;
  return 0;
}
static void test_happy_eyeballs_deadline(void **s) {
  int hp, hole = black_hole(&hp);
  race_t x = {.addrs = {addr4(hp), addr4(hp)}, .n = 2,
              .o = {.happy_eyeballs_delay = 0.05}};
  run_body_on_loop(deadline_body, &x);
  assert_int_equal(x.rc, -ETIMEDOUT);
  assert_true(x.took >= 0.15 && x.took < 3);
  x = (race_t){.addrs = {addr4(hp), addr4(hp)}, .n = 2,
               .o = {.happy_eyeballs_delay = -1}};
  run_body_on_loop(deadline_body, &x);
  assert_int_equal(x.rc, -ETIMEDOUT);
  close_fillers();
  close(hole);
}

/* local_addr binds first; the other family is refused; a bad one is
 * -EINVAL. */
static int local_body(void *arg, void **r) {
  int port = (int)(intptr_t)arg;
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  cor_stream_t *s = NULL;
  cor_connect_opts o = {.local_addr = "127.0.0.1"};
  CHECK(cor_open_connection_opts("127.0.0.1", ps, &o, &s) == 0);
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  CHECK(getsockname(cor_stream_fd(s), (struct sockaddr *)&a, &l) == 0);
  CHECK(a.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
  cor_stream_close(s);
  cor_stream_free(s);
  o.local_addr = "::1";
  CHECK(cor_open_connection_opts("127.0.0.1", ps, &o, &s) == -EAFNOSUPPORT);
  o.local_addr = "not-an-address";
  CHECK(cor_open_connection_opts("127.0.0.1", ps, &o, &s) == -EINVAL);
  o.local_addr = "127.0.0.1";
  o.local_port = 70000;
  CHECK(cor_open_connection_opts("127.0.0.1", ps, &o, &s) == -EINVAL);
  o = (cor_connect_opts){.happy_eyeballs_delay = NAN};
  CHECK(cor_open_connection_opts("127.0.0.1", ps, &o, &s) == -EINVAL);
  /* A name through the pool, the default delay. */
  CHECK(cor_open_connection("localhost", ps, &s) == 0);
  cor_stream_close(s);
  cor_stream_free(s);
  return 0;
}
static void test_local_addr(void **s) {
  int port, l = listener(16, &port);
  recs_clear();
  run_body_on_loop(local_body, (void *)(intptr_t)port);
  EXPECT_ERRORS(3, "cor_open_connection_opts(): invalid argument");
  close(l);
}

/* ------------------------------------------------------------ resolution */

static int gai_body(void *arg, void **r) {
  struct addrinfo *res = NULL;
  /* Numeric: answered on the loop. */
  struct addrinfo h = {.ai_socktype = SOCK_STREAM};
  CHECK(cor_getaddrinfo("127.0.0.1", "8080", &h, &res) == 0);
  CHECK(res && res->ai_family == AF_INET);
  CHECK(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port) == 8080);
  freeaddrinfo(res);
  /* A name: the pool (localhost is in /etc/hosts). */
  res = NULL;
  CHECK(cor_getaddrinfo("localhost", "80", &h, &res) == 0);
  CHECK(res != NULL);
  bool v4 = false;
  for (struct addrinfo *a = res; a; a = a->ai_next)
    if (a->ai_family == AF_INET &&
        ((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr ==
            htonl(INADDR_LOOPBACK))
      v4 = true;
  CHECK(v4);
  freeaddrinfo(res);
  /* An unknown service. */
  res = (struct addrinfo *)&h;
  CHECK(cor_getaddrinfo("127.0.0.1", "no-such-service-corio", &h, &res) ==
        -ENOENT);
  CHECK(res == NULL);
  /* Bad hints. */
  struct addrinfo bad = {.ai_family = 12345};
  CHECK(cor_getaddrinfo("localhost", "80", &bad, &res) == -EINVAL ||
        cor_getaddrinfo("localhost", "80", &bad, &res) == -EAFNOSUPPORT);
  /* getnameinfo: numeric at once, a name through the pool. */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  CHECK(cor_getnameinfo((struct sockaddr *)&a, sizeof a, host, sizeof host,
                        serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) ==
        0);
  CHECK(strcmp(host, "127.0.0.1") == 0 && strcmp(serv, "8080") == 0);
  CHECK(cor_getnameinfo((struct sockaddr *)&a, sizeof a, host, sizeof host,
                        NULL, 0, NI_NAMEREQD) == 0);
  CHECK(host[0] != 0);
  char tiny[2];
  CHECK(cor_getnameinfo((struct sockaddr *)&a, sizeof a, tiny, sizeof tiny,
                        NULL, 0, NI_NUMERICHOST | NI_NUMERICSERV) ==
        -ENAMETOOLONG);
  /* Misuse. */
  CHECK(cor_getaddrinfo(NULL, NULL, NULL, &res) == -EINVAL);
  CHECK(cor_getaddrinfo("x", "1", NULL, NULL) == -EINVAL);
  CHECK(cor_getnameinfo(NULL, 0, host, 1, NULL, 0, 0) == -EINVAL);
  CHECK(cor_getnameinfo((struct sockaddr *)&a, 0, host, 1, NULL, 0, 0) ==
        -EINVAL);
  CHECK(cor_getnameinfo((struct sockaddr *)&a, sizeof a, NULL, 5, NULL, 0,
                        0) == -EINVAL);
  CHECK(cor_getnameinfo((struct sockaddr *)&a, sizeof a, NULL, 0, NULL, 0,
                        0) == -EINVAL);
  return 0;
}
static void test_getaddrinfo(void **s) {
  recs_clear();
  run_body_on_loop(gai_body, NULL);
  EXPECT_ERRORS(6, "info(): invalid argument");
  struct addrinfo *res = NULL;
  assert_int_equal(cor_getaddrinfo("localhost", "80", NULL, &res),
                   COR_ENOTASK);
  struct sockaddr_in a = {.sin_family = AF_INET};
  char h[64];
  assert_int_equal(cor_getnameinfo((struct sockaddr *)&a, sizeof a, h,
                                   sizeof h, NULL, 0, 0),
                   COR_ENOTASK);
}

/* The resolver threads alive now. */
static int resolvers(void) {
  DIR *d = opendir("/proc/self/task");
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char p[300], comm[32] = {0};
    snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(p, "r");
    if (f == NULL)
      continue;
    if (fgets(comm, sizeof comm, f) && strncmp(comm, "corio-resolve", 13) == 0)
      n++;
    fclose(f);
  }
  closedir(d);
  return n;
}

/* Many lookups at once: all answered, never more than 4 resolver threads. */
static int lookups_ok, max_resolvers;
static int lookup_body(void *arg, void **r) {
  struct addrinfo h = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  if (cor_getaddrinfo("localhost", "80", &h, &res) == 0 && res) {
    lookups_ok++;
    freeaddrinfo(res);
  }
  int n = resolvers();
  if (n > max_resolvers)
    max_resolvers = n;
  return 0;
}
static int many_body(void *arg, void **r) {
  long n = (long)(intptr_t)arg;
  cor_future_t **f = calloc((size_t)n, sizeof *f);
  cor_task_t **t = calloc((size_t)n, sizeof *t);
  CHECK(f && t);
  for (long i = 0; i < n; i++) {
    t[i] = cor_create_task(loop, cor_coro(lookup_body, NULL), NULL);
    CHECK(t[i] != NULL);
    f[i] = cor_task_future(t[i]);
  }
  CHECK(cor_gather(f, (size_t)n, NULL, NULL) == 0);
  for (long i = 0; i < n; i++)
    cor_release(t[i]);
  free(f);
  free(t);
  return 0;
}
static void test_many_lookups_bounded(void **s) {
  long n = test_scale(1000, 200);
  lookups_ok = max_resolvers = 0;
  run_body_on_loop(many_body, (void *)(intptr_t)n);
  assert_int_equal(lookups_ok, n);
  assert_true(max_resolvers >= 1);
  assert_true(max_resolvers <= 4);
}

/* A cancelled lookup returns at once with -ECANCELED. */
static int cancelled_rc = 1;
static int cancelled_lookup(void *arg, void **r) {
  struct addrinfo *res = (struct addrinfo *)arg;
  cancelled_rc = cor_getaddrinfo("localhost", "80", NULL, &res);
  if (res)
    freeaddrinfo(res);
  return 0;
}
static void test_lookup_cancelled(void **s) {
  for (int i = 0; i < 20; i++) {
    cor_task_t *t =
        cor_create_task(loop, cor_coro(cancelled_lookup, NULL), NULL);
    assert_int_equal(cor_task_cancel(t, NULL), 0);
    assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)),
                     0);
    assert_int_equal(cancelled_rc, -ECANCELED);
    cor_release(t);
  }
  /* The pool still answers. */
  lookups_ok = 0;
  cor_task_t *t = cor_create_task(loop, cor_coro(lookup_body, NULL), NULL);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  cor_release(t);
  assert_int_equal(lookups_ok, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      WITH_LOOP(test_happy_eyeballs_black_hole),
      WITH_LOOP(test_happy_eyeballs_refused_first),
      WITH_LOOP(test_happy_eyeballs_two_winners),
      WITH_LOOP(test_happy_eyeballs_cancel),
      WITH_LOOP(test_happy_eyeballs_deadline),
      WITH_LOOP(test_local_addr),
      WITH_LOOP(test_getaddrinfo),
      WITH_LOOP(test_many_lookups_bounded),
      WITH_LOOP(test_lookup_cancelled),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
