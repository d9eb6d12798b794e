/* SPDX-License-Identifier: MIT */
/* Addresses and client connections. Names are resolved by core/resolve.c
 * (cor__resolve), never on the loop. */
#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "loop/loop.h"
#include "net/stream_internal.h"

#include <corio/tls.h>

#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

int cor__socket(int family, int type) {
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

void cor__set_nodelay(int fd, int family) {
  if (family != AF_INET && family != AF_INET6)
    return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int cor__addr_numeric(const char *host, int port, cor__addr *out) {
  if (port < 0 || port > 65535)
    return -EINVAL;
  memset(out, 0, sizeof *out);
  if (host == NULL || strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  struct sockaddr_in *a4 = (struct sockaddr_in *)&out->ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    out->len = sizeof *a4;
    return 0;
  }
  const char *h = host;
  char tmp[INET6_ADDRSTRLEN + 2];
  size_t hl = strlen(host);
  if (hl > 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof tmp) {
    memcpy(tmp, host + 1, hl - 2);
    tmp[hl - 2] = 0;
    h = tmp;
  }
  if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    out->len = sizeof *a6;
    return 0;
  }
  return -EINVAL;
}

int cor__addr_unix(const char *path, cor__addr *out) {
  if (path == NULL || path[0] == 0)
    return -EINVAL;
  memset(out, 0, sizeof *out);
  struct sockaddr_un *u = (struct sockaddr_un *)&out->ss;
  size_t n = strlen(path);
  if (n >= sizeof u->sun_path)
    return -ENAMETOOLONG;
  u->sun_family = AF_UNIX;
  memcpy(u->sun_path, path, n);
  if (path[0] == '@') {
    u->sun_path[0] = 0; /* abstract namespace: no file, no NUL at the end */
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  } else {
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

void cor__buf_sockaddr(cor__buf *out, const char *key, int fd, bool peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (fd < 0 || (peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                      : getsockname(fd, (struct sockaddr *)&ss, &len)) != 0)
    return;
  const struct sockaddr_un *u = (const struct sockaddr_un *)&ss;
  size_t upath = len > offsetof(struct sockaddr_un, sun_path)
                     ? len - offsetof(struct sockaddr_un, sun_path)
                     : 0;
  bool known = (ss.ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) ||
               (ss.ss_family == AF_INET6 &&
                len >= sizeof(struct sockaddr_in6)) ||
               (ss.ss_family == AF_UNIX && upath > 0);
  if (!known)
    return; /* an unnamed Unix socket, or a family we do not print */
  if (key)
    cor__buf_printf(out, " %s=", key);
  char h[INET6_ADDRSTRLEN];
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a4->sin_addr, h, sizeof h);
    cor__buf_printf(out, "%s:%d", h, ntohs(a4->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a6->sin6_addr, h, sizeof h);
    cor__buf_printf(out, "[%s]:%d", h, ntohs(a6->sin6_port));
  } else if (u->sun_path[0] == 0) { /* abstract: no NUL at the end */
    cor__buf_printf(out, "@%.*s", (int)(upath - 1), u->sun_path + 1);
  } else {
    cor__buf_printf(out, "%.*s", (int)strnlen(u->sun_path, upath),
                    u->sun_path);
  }
}

/* ------------------------------------------------------------ connecting */

/* Waits for a non-blocking connect on s's fd. */
static int connect_one(struct cor_loop *loop, const cor__addr *a,
                       const cor_connect_opts *o, const cor__addr *local,
                       uint64_t deadline, cor_stream_t **out,
                       const void *ra) {
  if (local && local->ss.ss_family != a->ss.ss_family)
    return -EAFNOSUPPORT; /* local_addr of the other family */
  int fd = cor__socket(a->ss.ss_family, SOCK_STREAM);
  if (fd < 0)
    return fd;
  if (local && bind(fd, (const struct sockaddr *)&local->ss, local->len) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (!o->no_nodelay)
    cor__set_nodelay(fd, a->ss.ss_family);
  cor_stream_t *s = cor__stream_new(loop, fd, COR__STREAM_SOCK, false);
  if (s == NULL)
    return -errno;
  if (o->limit)
    s->limit = o->limit;
  int rc = 0;
  if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      rc = -errno;
    } else {
      /* Writable says the connect finished, either way. */
      rc = cor__stream_wait_connect(s, deadline, "cor_open_connection", ra);
      if (rc == 0) {
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
          err = errno;
        rc = -err;
      }
    }
  }
  if (rc != 0) {
    cor_stream_free(s);
    return rc;
  }
  s->last_io = cor__now_ns();
  cor__stream_track(s, ra);
  *out = s;
  return 0;
}

static int check_task(void) {
  if (cor__tls_task == NULL || cor__tls_loop == NULL)
    return COR_ENOTASK;
  return 0;
}

/* opts->timeout: a zeroed field is the default (no limit); otherwise the
 * one time-out rule (< 0 or INFINITY: no limit; NaN: invalid). */
static int deadline_of(const cor_connect_opts *o, uint64_t *dl) {
  if (o->timeout == 0) {
    *dl = 0;
    return 0;
  }
  return cor__timeout_deadline(o->timeout, dl);
}

/* ------------------------------------------------------------ happy eyeballs */

/* RFC 8305: the resolved addresses, alternating between the families
 * starting with the first one's (its "First Address Family Count" of 1),
 * each in resolver order. In place, through a scratch copy. */
static int interleave(cor__addr *a, size_t n) {
  cor__addr *v = cor__malloc(n * sizeof *v);
  if (v == NULL)
    return -ENOMEM;
  int first = a[0].ss.ss_family;
  size_t i = 0, j = 0, k = 0; /* next of the first family, of the others */
  bool want_first = true;
  while (k < n) {
    while (i < n && a[i].ss.ss_family != first)
      i++;
    while (j < n && a[j].ss.ss_family == first)
      j++;
    if ((want_first && i < n) || j >= n)
      v[k++] = a[i++];
    else
      v[k++] = a[j++];
    want_first = !want_first;
  }
  memcpy(a, v, n * sizeof *v);
  cor__free(v);
  return 0;
}

/* One attempt, as a task of its own: its outcome in rc and s. */
typedef struct {
  const cor__addr *a, *local;
  const cor_connect_opts *o;
  uint64_t deadline;
  const void *ra;
  cor_stream_t *s;
  int rc;
  bool seen; /* its outcome was counted */
} he_attempt;

static int he_body(void *arg, void **res) {
  he_attempt *at = arg;
  at->rc = connect_one(cor__tls_loop, at->a, at->o, at->local, at->deadline,
                       &at->s, at->ra);
  return 0; /* the outcome is in at->rc */
}

/* Races the n addresses: an attempt starts every `delay` seconds, or at
 * once when one fails; the first connection wins, the other attempts are
 * cancelled and awaited, and a second connection made meanwhile is
 * closed. */
static int race(struct cor_loop *loop, const cor__addr *addrs, size_t n,
                const cor_connect_opts *o, const cor__addr *local,
                uint64_t deadline, double delay, cor_stream_t **out,
                const void *ra) {
  he_attempt *at = cor__calloc(n, sizeof *at);
  cor_task_t **tasks = cor__calloc(n, sizeof *tasks);
  cor_future_t **live = cor__calloc(n, sizeof *live);
  if (at == NULL || tasks == NULL || live == NULL) {
    cor__free(at);
    cor__free(tasks);
    cor__free(live);
    return -ENOMEM;
  }
  size_t started = 0, winner = n;
  int rc = -ENOENT, last = -ENOENT;
  for (;;) {
    if (started < n) {
      at[started] = (he_attempt){.a = &addrs[started], .local = local, .o = o,
                                 .deadline = deadline, .ra = ra};
      tasks[started] = cor_create_task(
          loop, cor_coro(he_body, &at[started]), "happy-eyeballs");
      if (tasks[started] == NULL) {
        rc = -ENOMEM;
        break;
      }
      started++;
    }
    size_t m = 0;
    for (size_t i = 0; i < started; i++) {
      if (!cor_future_done(cor_task_future(tasks[i]))) {
        live[m++] = cor_task_future(tasks[i]);
      } else if (!at[i].seen) {
        at[i].seen = true;
        if (at[i].rc == 0 && winner == n)
          winner = i;
        else if (at[i].rc != 0)
          last = at[i].rc;
      }
    }
    if (winner < n) {
      rc = 0;
      break;
    }
    if (m == 0 && started == n) {
      rc = last;
      break;
    }
    if (m == 0)
      continue; /* every attempt failed: the next one at once */
    rc = cor_wait(live, m, COR_FIRST_COMPLETED,
                  started < n ? delay : COR_FOREVER, NULL);
    if (rc != 0 && rc != -ETIMEDOUT)
      break; /* -ECANCELED, -ENOMEM */
  }
  /* Nothing outlives the race: the losers are cancelled and awaited. */
  for (size_t i = 0; i < started; i++) {
    cor_future_t *f = cor_task_future(tasks[i]);
    if (!cor_future_done(f))
      cor_task_cancel(tasks[i], NULL);
    while (!cor_future_done(f))
      (void)cor_await(f, NULL); /* -ECANCELED again: the request is passed on */
    if (at[i].rc == 0 && i != winner) {
      cor_stream_close(at[i].s);
      cor_stream_free(at[i].s);
    }
    cor_release(tasks[i]);
  }
  if (rc == 0)
    *out = at[winner].s;
  cor__free(at);
  cor__free(tasks);
  cor__free(live);
  return rc;
}

int cor__connect_addrs(cor__addr *addrs, size_t n, const cor_connect_opts *o,
                       const cor__addr *local, uint64_t deadline,
                       cor_stream_t **out, const void *ra) {
  double delay = o->happy_eyeballs_delay == 0 ? COR_HAPPY_EYEBALLS_DELAY
                                              : o->happy_eyeballs_delay;
  if (n > 1 && delay >= 0) {
    int rc = interleave(addrs, n);
    return rc ? rc
              : race(cor__tls_loop, addrs, n, o, local, deadline, delay, out,
                     ra);
  }
  int rc = -ENOENT;
  for (size_t i = 0; i < n; i++) {
    rc = connect_one(cor__tls_loop, &addrs[i], o, local, deadline, out, ra);
    if (rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED)
      break;
  }
  return rc;
}

/* ra: the application's call, for the stream's creation site. */
static int open_connection(const char *host, const char *port,
                           const cor_connect_opts *opts, cor_stream_t **out,
                           const void *ra, const char *call) {
  if (port == NULL || out == NULL)
    return cor__bad_arg(call, port == NULL ? "port is NULL" : "out is NULL");
  int rc = check_task();
  if (rc)
    return rc;
  cor_connect_opts o = {0};
  if (opts)
    o = *opts;
  uint64_t deadline;
  if (deadline_of(&o, &deadline) != 0)
    return cor__bad_arg(call, "opts->timeout is NaN");
  if (isnan(o.happy_eyeballs_delay))
    return cor__bad_arg(call, "opts->happy_eyeballs_delay is NaN");
  if (o.tls && cor__tls_ctx_server(o.tls))
    return cor__bad_arg(call, "opts->tls is a server context");
  cor__addr local, *lp = NULL;
  if (o.local_addr) {
    if (o.local_port < 0 || o.local_port > 65535 ||
        cor__addr_numeric(o.local_addr, o.local_port, &local) != 0)
      return cor__bad_arg(call, "opts->local_addr is not a numeric address "
                                "with a port in 0..65535");
    lp = &local;
  }
  cor__addr *addrs = NULL;
  size_t n = 0;
  rc = cor__resolve(host, port, SOCK_STREAM, deadline, &addrs, &n, ra);
  if (rc != 0)
    return rc;
  rc = cor__connect_addrs(addrs, n, &o, lp, deadline, out, ra);
  cor__free(addrs);
  if (rc == 0 && o.tls != NULL) {
    /* TLS: the handshake within the same deadline, before returning */
    const char *name = o.server_hostname ? o.server_hostname : host;
    rc = cor__stream_start_tls(*out, o.tls, name, deadline, call, ra);
    if (rc != 0) {
      COR_LOG(COR_LOG_DEBUG, "%s: TLS handshake with %s:%s failed: %s", call,
              host ? host : "", port, cor_stream_error_message(*out));
      cor_stream_close(*out);
      cor_stream_free(*out);
      *out = NULL;
    }
  }
  return rc;
}

int cor_open_connection_opts(const char *host, const char *port,
                             const cor_connect_opts *opts,
                             cor_stream_t **out) {
  return open_connection(host, port, opts, out, __builtin_return_address(0),
                         "cor_open_connection_opts");
}

int cor_open_connection(const char *host, const char *port,
                        cor_stream_t **out) {
  return open_connection(host, port, NULL, out, __builtin_return_address(0),
                         "cor_open_connection");
}

int cor_open_unix_connection(const char *path, const cor_connect_opts *opts,
                             cor_stream_t **out) {
  if (out == NULL)
    return cor__bad_arg("cor_open_unix_connection", "out is NULL");
  int rc = check_task();
  if (rc)
    return rc;
  cor_connect_opts o = {0};
  if (opts)
    o = *opts;
  cor__addr a;
  if ((rc = cor__addr_unix(path, &a)) != 0)
    return rc == -EINVAL ? cor__bad_arg("cor_open_unix_connection",
                                        "path is NULL or empty")
                         : rc;
  uint64_t deadline;
  if (deadline_of(&o, &deadline) != 0)
    return cor__bad_arg("cor_open_unix_connection", "opts->timeout is NaN");
  return connect_one(cor__tls_loop, &a, &o, NULL, deadline, out,
                     __builtin_return_address(0));
}
