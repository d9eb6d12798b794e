/* SPDX-License-Identifier: MIT */
/* Addresses, name resolution and client connections.
 *
 * Resolution never blocks the loop: numeric addresses (and "localhost") are
 * parsed in place; other names go to getaddrinfo on a short-lived helper
 * thread that posts its answer back with cor_call_soon_threadsafe. (The
 * executor module's thread pool can take this over once it is in: the
 * request object is already shaped as a job.) */
#include "stream_internal.h"

#include <arpa/inet.h>
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

/* ------------------------------------------------------------ resolution */

/* One request shared by the waiting task, the helper thread and the
 * callback it posts: three references, the last one frees it (the task may
 * be cancelled or time out first). The thread keeps its own until its post
 * returned, so the loop reference the request holds outlives the post. */
typedef struct resolve_req {
  int refs; /* atomic */
  struct cor_loop *loop;
  char *host, *port;
  int socktype;
  int rc;
  cor__addr *addrs;
  size_t n;
  bool waiting; /* the task still waits (loop thread only) */
  struct cor_future fut;
} resolve_req;

static void req_unref(resolve_req *r) {
  if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    cor__free(r->host);
    cor__free(r->port);
    cor__free(r->addrs);
    cor_release(r->loop);
    cor__free(r);
  }
}

static void resolve_done(void *arg) { /* on the loop */
  resolve_req *r = arg;
  cor__wake_embedded(&r->fut, r->waiting, 0);
  req_unref(r);
}

static void *resolve_thread(void *arg) {
  resolve_req *r = arg;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = r->socktype;
  hints.ai_flags = AI_ADDRCONFIG;
  int e = getaddrinfo(r->host, r->port, &hints, &res);
  if (e != 0) {
    r->rc = e == EAI_MEMORY ? -ENOMEM : e == EAI_SYSTEM ? -errno : -ENOENT;
  } else {
    size_t n = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next)
      n++;
    r->addrs = cor__calloc(n ? n : 1, sizeof *r->addrs);
    if (r->addrs == NULL) {
      r->rc = -ENOMEM;
    } else {
      for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_addrlen > sizeof r->addrs[0].ss)
          continue;
        memcpy(&r->addrs[r->n].ss, a->ai_addr, a->ai_addrlen);
        r->addrs[r->n].len = a->ai_addrlen;
        r->n++;
      }
      r->rc = r->n ? 0 : -ENOENT;
    }
    freeaddrinfo(res);
  }
  if (cor_call_soon_threadsafe(r->loop, resolve_done, r) != 0)
    req_unref(r); /* the loop is closed: nobody waits any more */
  req_unref(r);   /* the thread's own */
  return NULL;
}

static int parse_port(const char *port, int *out) {
  if (port == NULL || *port == 0)
    return -EINVAL;
  char *end;
  long v = strtol(port, &end, 10);
  if (*end != 0)
    return -ENOENT; /* a service name */
  if (v < 0 || v > 65535)
    return -EINVAL;
  *out = (int)v;
  return 0;
}

int cor__resolve(const char *host, const char *port, int socktype,
                 uint64_t deadline_ns, cor__addr **out, size_t *n,
                 const void *site) {
  int p;
  int rc = parse_port(port, &p);
  if (rc == -EINVAL)
    return rc;
  if (rc == 0) {
    cor__addr a;
    if (cor__addr_numeric(host, p, &a) == 0) {
      if ((*out = cor__malloc(sizeof a)) == NULL)
        return -ENOMEM;
      **out = a;
      *n = 1;
      return 0;
    }
  }
  struct cor_loop *loop = cor__tls_loop;
  if (loop == NULL || cor__tls_task == NULL)
    return COR_ENOTASK;
  resolve_req *r = cor__calloc(1, sizeof *r);
  if (r == NULL)
    return -ENOMEM;
  r->refs = 3;
  r->loop = cor_retain(loop);
  r->socktype = socktype;
  r->host = cor__strdup(host ? host : "localhost");
  r->port = cor__strdup(port);
  if (r->host == NULL || r->port == NULL) {
    r->refs = 1;
    req_unref(r);
    return -ENOMEM;
  }
  pthread_t th;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 256 * 1024);
  /* The helper must not take the application's signals. */
  int e = cor__thread_create(&th, &at, resolve_thread, r, false);
  pthread_attr_destroy(&at);
  if (e != 0) {
    r->refs = 1;
    req_unref(r);
    return -e;
  }
  /* From here the thread owns two of the references (its own and the
   * post's); cor__wait_embedded never fails before suspending here. */
  /* The wake may come before we wait: resolve_done runs on this loop,
   * only after we suspend, so `waiting` is set in time. */
  rc = cor__wait_embedded(loop, &r->fut, &r->waiting, deadline_ns,
                          "cor_open_connection", site);
  if (rc == 0) {
    rc = r->rc;
    if (rc == 0) {
      *out = r->addrs;
      *n = r->n;
      r->addrs = NULL;
    }
  }
  req_unref(r);
  return rc;
}

/* ------------------------------------------------------------ connecting */

/* Waits for a non-blocking connect on s's fd. */
static int connect_one(struct cor_loop *loop, const cor__addr *a,
                       const cor_connect_opts *o, uint64_t deadline,
                       cor_stream_t **out, const void *ra) {
  int fd = cor__socket(a->ss.ss_family, SOCK_STREAM);
  if (fd < 0)
    return fd;
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
  cor__addr *addrs = NULL;
  size_t n = 0;
  rc = cor__resolve(host, port, SOCK_STREAM, deadline, &addrs, &n, ra);
  if (rc != 0)
    return rc;
  rc = -ENOENT;
  for (size_t i = 0; i < n; i++) {
    rc = connect_one(cor__tls_loop, &addrs[i], &o, deadline, out, ra);
    if (rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED)
      break;
  }
  cor__free(addrs);
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
  return connect_one(cor__tls_loop, &a, &o, deadline, out,
                     __builtin_return_address(0));
}
