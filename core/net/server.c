/* SPDX-License-Identifier: MIT */
/* Servers: listening sockets, accepting, one task per connection.
 *
 * A server is one listener per loop (a single-loop server has one; a
 * runtime server one per loop, all bound to the same port with
 * SO_REUSEPORT so the kernel spreads connections over cores). A listener is
 * a level-triggered reader on its loop that accepts up to ACCEPT_BATCH
 * connections per readiness, and for each one makes a stream and a task
 * running the handler. Everything about a listener and its connections is
 * touched only by its loop's thread; the server object itself is shared
 * (reference count, the connection count, the wait_closed condition).
 *
 * Running out of fds (EMFILE/ENFILE) in accept would leave the listener
 * readable forever and spin the loop: the listener stops watching for
 * 100 ms instead and logs a WARNING once per server. */
#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "diag/resource.h"
#include "loop/loop.h"
#include "net/stream_internal.h"

#include <corio/tls.h>
#include <corio/transport.h>

#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPT_BATCH 64
#define EMFILE_PAUSE 0.1     /* seconds without accepting after EMFILE */
#define DEFAULT_LINGER 30.0  /* bound on flushing a finished connection */
#define DEFAULT_BACKLOG 4096

struct cor__conn {
  struct cor__srv_loop *sl;
  cor_stream_t *s;
  cor_task_t *task;          /* NULL for a protocol's connection */
  struct cor_transport *xp; /* a protocol's connection: its transport */
  struct cor__conn *prev, *next;
};

/* One listening socket of a loop (a server binds every address its host
 * resolves to: up to MAX_LISTEN). */
#define MAX_LISTEN 8
struct cor__listener {
  struct cor__srv_loop *sl;
  int fd;
  int family;
  bool watching; /* registered as a reader */
};

struct cor__srv_loop {
  struct cor_server *srv;
  struct cor_loop *loop;
  struct cor__listener l[MAX_LISTEN];
  unsigned nl;
  bool paused;    /* EMFILE pause or max_connections */
  bool closed;    /* the listener is closed */
  cor_handle_t resume;
  unsigned nconn, max;
  struct cor__conn *conns;
  /* single-loop wait_closed */
  struct cor_future wfut;
  bool wwait;
};

struct cor_server {
  cor_server_opts opts;
  char *host, *path;
  cor_fn handler;
  const cor_protocol *proto; /* a protocol server: transports, no tasks */
  void *proto_arg;
  int port;
  int refs;           /* atomic: the user's + one per live connection */
  unsigned nconn;     /* atomic: live connections over every loop */
  int warned_emfile;  /* atomic */
  bool closed;        /* cor_server_close was called */
  bool multi;         /* a runtime server */
  unsigned nloops;
  unsigned listeners_open; /* atomic (runtime): listeners not yet closed */
  struct cor__srv_loop *loops;
  pthread_mutex_t mu; /* runtime servers: wait_closed and barriers */
  pthread_cond_t cv;
  cor__res res; /* reported if freed (or still open at exit) unclosed */
  const void *made_at; /* the application's start call (reports) */
};

/* ------------------------------------------------------------ lifetime */

/* "Server sockets=[127.0.0.1:8080] connections=0": one address per
 * listener (a runtime server has one per loop, on the same port). Read
 * while the server is tracked, so not closed: the listeners are open and
 * no thread changes them. */
static void server_repr(cor__res *r, cor__buf *out) {
  struct cor_server *srv =
      (struct cor_server *)((char *)r - offsetof(struct cor_server, res));
  cor__buf_printf(out, "Server sockets=[");
  bool first = true;
  for (unsigned i = 0; i < srv->nloops; i++) {
    size_t at;
    for (unsigned k = 0; k < srv->loops[i].nl; k++) {
      at = out->len;
      if (!first)
        cor__buf_printf(out, ", ");
      size_t mark = out->len;
      cor__buf_sockaddr(out, NULL, srv->loops[i].l[k].fd, false);
      if (out->len == mark) { /* nothing printable: drop the separator */
        out->len = at;
        if (at < out->cap)
          out->s[at] = 0;
      } else {
        first = false;
      }
    }
  }
  cor__buf_printf(out, "] connections=%u",
                  __atomic_load_n(&srv->nconn, __ATOMIC_RELAXED));
}

static const cor__res_type server_res = {"server", server_repr};

/* A started server is the application's to close (both start calls). */
void cor__server_track(struct cor_server *srv, bool debug, const void *ra) {
  cor__res_track(&srv->res, &server_res, srv->loops[0].loop, true, debug, ra);
}

static void server_unref(struct cor_server *srv) {
  if (__atomic_sub_fetch(&srv->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  pthread_mutex_destroy(&srv->mu);
  pthread_cond_destroy(&srv->cv);
  if (srv->path && srv->path[0] != '@')
    unlink(srv->path);
  for (unsigned i = 0; i < srv->nloops; i++)
    cor_release(srv->loops[i].loop); /* NULL for listeners never made */
  cor__free(srv->loops);
  cor_release(srv->opts.tls);
  cor__free(srv->host);
  cor__free(srv->path);
  cor__free(srv);
}

/* Something wait_closed waits for changed. */
static void server_signal(struct cor_server *srv, struct cor__srv_loop *sl) {
  if (srv->multi) {
    pthread_mutex_lock(&srv->mu);
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
  } else if (sl->wwait && sl->closed && sl->nconn == 0) {
    cor__wake_embedded(&sl->wfut, true, 0);
  }
}

/* ------------------------------------------------------------ accepting */

static void on_accept(void *arg);

static void watch(struct cor__srv_loop *sl, bool on) {
  if (sl->closed)
    return;
  for (unsigned k = 0; k < sl->nl; k++) {
    struct cor__listener *l = &sl->l[k];
    if (l->watching == on)
      continue;
    int rc = on ? cor_loop_add_reader(sl->loop, l->fd, on_accept, l)
                : cor_loop_remove_reader(sl->loop, l->fd);
    if (rc == 0 || !on)
      l->watching = on;
    else
      COR_LOG(COR_LOG_ERROR, "server: cannot watch the listener: %s",
              cor_strerror(rc));
  }
}

static void resume_cb(void *arg) {
  struct cor__srv_loop *sl = arg;
  sl->resume.id = 0;
  sl->paused = false;
  if (sl->max == 0 || sl->nconn < sl->max)
    watch(sl, true);
}

static void close_listener(struct cor__srv_loop *sl) {
  if (sl->closed)
    return;
  watch(sl, false);
  if (sl->resume.id) {
    cor_handle_cancel(sl->loop, sl->resume);
    sl->resume.id = 0;
  }
  for (unsigned k = 0; k < sl->nl; k++) {
    close(sl->l[k].fd);
    sl->l[k].fd = -1;
  }
  sl->closed = true;
  struct cor_server *srv = sl->srv;
  if (srv->multi)
    __atomic_sub_fetch(&srv->listeners_open, 1, __ATOMIC_ACQ_REL);
  server_signal(srv, sl);
}

static bool benign(int rc) {
  return rc == 0 || rc == -ECONNRESET || rc == -EPIPE || rc == -ETIMEDOUT ||
         rc == -ECANCELED || rc == COR_ECLOSED || rc == COR_EINCOMPLETE ||
         rc == -ENOTCONN || rc == COR_ETLS; /* TLS: a peer gone without
                                              * close_notify, a bad record */
}

static int conn_main(void *arg, void **result) {
  struct cor__conn *c = arg;
  struct cor__srv_loop *sl = c->sl;
  struct cor_server *srv = sl->srv;
  cor_stream_t *s = c->s;
  int rc = 0;
  if (srv->opts.tls != NULL) {
    /* TLS: the handshake first; a failed one never reaches the handler */
    double hto = srv->opts.tls_handshake_timeout;
    uint64_t dl = 0;
    (void)cor__timeout_deadline(hto == 0 ? 10.0 : hto, &dl); /* NaN: refused at start */
    rc = cor__stream_start_tls(s, srv->opts.tls, NULL, dl,
                               "server TLS handshake", srv->made_at);
    if (rc != 0)
      COR_LOG(COR_LOG_DEBUG, "server: TLS handshake failed (fd %d): %s", s->fd,
              rc == -ETIMEDOUT ? "timed out" : cor_stream_error_message(s));
  }
  if (rc == 0)
    rc = srv->handler(s, result);
  else
    rc = 0;
  if (!benign(rc))
    COR_LOG(COR_LOG_ERROR, "server: connection handler failed: %s (%s)",
            cor_err_name(rc), cor_strerror(rc));
  /* Flush what the handler wrote, bounded so a peer that stopped reading
   * cannot keep the connection (and its memory) forever. */
  if (!s->closing)
    cor_stream_close(s);
  if (!s->fd_closed && rc != -ECANCELED) {
    if (s->idle_to == 0)
      s->idle_to = (uint64_t)(DEFAULT_LINGER * 1e9);
    cor_stream_wait_closed(s);
  }
  /* Unlink and free: this runs on the task's stack, which is fine: none of
   * it is the task. */
  cor_stream_free(s);
  cor_release(c->task); /* ours; the loop keeps its own until we return */
  cor__server_conn_gone(c);
  return 0;
}

/* A connection ended (its task's end, or its transport's): unlink, count,
 * resume accepting under max_connections, wake wait_closed. */
void cor__server_conn_gone(struct cor__conn *c) {
  struct cor__srv_loop *sl = c->sl;
  struct cor_server *srv = sl->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    sl->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  cor__free(c);
  sl->nconn--;
  __atomic_sub_fetch(&srv->nconn, 1, __ATOMIC_RELAXED);
  if (!sl->closed && !sl->paused && sl->max && sl->nconn < sl->max)
    watch(sl, true);
  server_signal(srv, sl);
  server_unref(srv);
}

static void link_conn(struct cor__srv_loop *sl, struct cor__conn *c) {
  struct cor_server *srv = sl->srv;
  c->prev = NULL;
  c->next = sl->conns;
  if (sl->conns)
    sl->conns->prev = c;
  sl->conns = c;
  sl->nconn++;
  __atomic_add_fetch(&srv->nconn, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&srv->refs, 1, __ATOMIC_ACQ_REL);
}

/* A protocol server's connection: a transport, no task. */
static void start_proto_conn(struct cor__srv_loop *sl, cor_stream_t *s,
                             struct cor__conn *c) {
  struct cor_server *srv = sl->srv;
  c->task = NULL;
  c->xp = cor__transport_new(s, srv->proto, srv->proto_arg, c);
  if (c->xp == NULL) { /* s is freed */
    COR_LOG(COR_LOG_ERROR, "server: cannot make a transport: %s",
            strerror(ENOMEM));
    cor__free(c);
    return;
  }
  link_conn(sl, c);
  cor__transport_start(c->xp);
}

void cor__server_set_protocol(struct cor_server *srv, const cor_protocol *proto,
                              void *arg) {
  srv->proto = proto;
  srv->proto_arg = arg ? arg : srv->opts.arg;
}

static void start_conn(struct cor__srv_loop *sl, int fd, int family) {
  struct cor_server *srv = sl->srv;
  cor__set_nodelay(fd, family);
  if (srv->opts.keepalive) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  }
  struct cor__conn *c = cor__malloc(sizeof *c);
  if (c == NULL) {
    close(fd);
    return;
  }
  /* Clients of request/response protocols write first: try reading at once
   * rather than waiting for the first edge. */
  cor_stream_t *s = cor__stream_new(sl->loop, fd, COR__STREAM_SOCK, true);
  if (s == NULL) {
    cor__free(c);
    return;
  }
  if (srv->opts.limit)
    s->limit = srv->opts.limit;
  cor_stream_set_timeouts(s, srv->opts.read_timeout, srv->opts.idle_timeout);
  s->srv = sl;
  s->conn = c;
  c->sl = sl;
  c->s = s;
  c->xp = NULL;
  if (srv->proto) {
    start_proto_conn(sl, s, c);
    return;
  }
  c->task = cor_create_task(sl->loop, cor_coro(conn_main, c), NULL);
  if (c->task != NULL) /* reports: the handler, its peer, the start call */
    cor__task_present(c->task, srv->handler, srv->made_at, fd);
  if (c->task == NULL) {
    COR_LOG(COR_LOG_ERROR, "server: cannot start a handler task: %s",
            strerror(errno));
    cor_stream_free(s);
    cor__free(c);
    return;
  }
  c->prev = NULL;
  c->next = sl->conns;
  if (sl->conns)
    sl->conns->prev = c;
  sl->conns = c;
  sl->nconn++;
  __atomic_add_fetch(&srv->nconn, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&srv->refs, 1, __ATOMIC_ACQ_REL);
}

static void on_accept(void *arg) {
  struct cor__listener *l = arg;
  struct cor__srv_loop *sl = l->sl;
  struct cor_server *srv = sl->srv;
  for (int i = 0; i < ACCEPT_BATCH && !sl->closed; i++) {
    if (sl->max && sl->nconn >= sl->max && !srv->opts.close_excess) {
      /* Excess connections wait in the kernel's backlog. */
      watch(sl, false);
      return;
    }
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      switch (errno) {
      case EAGAIN:
#if EAGAIN != EWOULDBLOCK
      case EWOULDBLOCK:
#endif
        return;
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
      case EPERM:
        continue;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM: {
        int e = errno;
        if (__atomic_exchange_n(&srv->warned_emfile, 1, __ATOMIC_RELAXED) == 0)
          COR_LOG(COR_LOG_WARNING,
                  "server: accept() failed with %s (%s): pausing accepting "
                  "for %g s at a time (logged once per server)",
                  e == EMFILE ? "EMFILE" : e == ENFILE ? "ENFILE" : "ENOMEM",
                  strerror(e), EMFILE_PAUSE);
        watch(sl, false);
        sl->paused = true;
        if (sl->resume.id == 0 &&
            cor_call_later(sl->loop, EMFILE_PAUSE, resume_cb, sl,
                           &sl->resume) != 0)
          resume_cb(sl);
        return;
      }
      default:
        COR_LOG(COR_LOG_ERROR, "server: accept() failed: %s", strerror(errno));
        return;
      }
    }
    if (sl->max && sl->nconn >= sl->max) { /* close_excess */
      close(fd);
      continue;
    }
    start_conn(sl, fd, l->family);
  }
}

/* ------------------------------------------------------------ listening */

/* The addresses to listen on: host resolved (every address; from a task
 * without blocking the loop, elsewhere with a blocking getaddrinfo, once,
 * when the server starts), or the Unix path. *out is the caller's to free;
 * -EADDRNOTAVAIL when nothing resolves. */
static int listen_addrs(const char *host, const char *path, int port,
                        cor__addr **out, size_t *n) {
  cor__addr a;
  int rc = path ? cor__addr_unix(path, &a) : cor__addr_numeric(host, port, &a);
  if (rc == 0 || path) {
    if (rc != 0)
      return rc;
    if ((*out = cor__malloc(sizeof a)) == NULL)
      return -ENOMEM;
    **out = a;
    *n = 1;
    return 0;
  }
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  bool every = host[0] == 0; /* "": every interface, both families */
  if (cor__tls_task != NULL && !every) {
    rc = cor__resolve(host, ps, SOCK_STREAM, 0, out, n,
                      __builtin_return_address(0));
    if (rc == -ENOENT || rc == -EINVAL || (rc == 0 && *n == 0))
      rc = -EADDRNOTAVAIL;
    return rc;
  }
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
  /* Also for "" in a task: the wildcard addresses need no lookup. */
  if (getaddrinfo(every ? NULL : host, ps, &hints, &res) != 0 || res == NULL)
    return -EADDRNOTAVAIL;
  size_t k = 0;
  for (struct addrinfo *r = res; r; r = r->ai_next)
    k++;
  cor__addr *v = cor__calloc(k, sizeof *v);
  if (v == NULL) {
    freeaddrinfo(res);
    return -ENOMEM;
  }
  size_t m = 0;
  for (struct addrinfo *r = res; r; r = r->ai_next)
    if (r->ai_addrlen <= sizeof v[0].ss) {
      memcpy(&v[m].ss, r->ai_addr, r->ai_addrlen);
      v[m++].len = r->ai_addrlen;
    }
  freeaddrinfo(res);
  *out = v;
  *n = m;
  return m ? 0 : -EADDRNOTAVAIL;
}

static int addr_port(const struct sockaddr_storage *ss) {
  return ntohs(ss->ss_family == AF_INET
                   ? ((const struct sockaddr_in *)ss)->sin_port
                   : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void set_addr_port(cor__addr *a, int port) {
  if (a->ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
  else if (a->ss.ss_family == AF_INET6)
    ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
}

/* One listening socket on address a. Returns the fd or -errno. */
static int listen_one(const cor_server_opts *o, cor__addr *a, bool unix_path,
                      bool reuseport) {
  int fd = cor__socket(a->ss.ss_family, SOCK_STREAM);
  if (fd < 0)
    return fd;
  int one = 1, rc;
  if (!unix_path) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      rc = -errno;
      goto fail;
    }
    if (a->ss.ss_family == AF_INET6) {
      /* Dual-stack: an IPv6 socket takes IPv4 too (mapped addresses);
       * otherwise IPv6 only, so an IPv4 socket beside it can bind. */
      int v6only = o->dual_stack ? 0 : 1;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
  } else if (o->path[0] != '@') {
    unlink(o->path); /* a stale socket file from an earlier run */
  }
  if (bind(fd, (struct sockaddr *)&a->ss, a->len) < 0 ||
      listen(fd, o->backlog > 0 ? o->backlog : DEFAULT_BACKLOG) < 0) {
    rc = -errno;
    goto fail;
  }
  return fd;
fail:
  close(fd);
  return rc;
}

/* An adopted listening socket (opts->fd): a stream socket that listens,
 * made non-blocking and close-on-exec. Listener i > 0 of a runtime server
 * gets a dup of it. The fd or -errno (-EINVAL, logged, when it is not a
 * listening stream socket). */
static int adopt_listener(int fd, unsigned i, int *family) {
  int type = 0, acc = 0;
  socklen_t l = sizeof type;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0 ||
      type != SOCK_STREAM || (l = sizeof acc, getsockopt(fd, SOL_SOCKET,
                                                         SO_ACCEPTCONN, &acc,
                                                         &l)) != 0 ||
      !acc || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
    return cor__bad_arg("cor_start_server",
                        "opts->fd is not a listening stream socket");
  int nfd = i == 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0)
    return -errno;
  int fl = fcntl(nfd, F_GETFL);
  if (fl < 0 || fcntl(nfd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      fcntl(nfd, F_SETFD, FD_CLOEXEC) < 0) {
    int e = errno;
    if (i != 0)
      close(nfd);
    return -e;
  }
  *family = ss.ss_family;
  return nfd;
}

/* Opens the listeners of sl: one per resolved address (the first one's
 * port for the others when the port is 0), or the adopted socket. Sets
 * *bound_port (-1 for Unix sockets). 0 or -errno (nothing left open). */
static int make_listeners(struct cor__srv_loop *sl, unsigned i,
                          const cor_server_opts *o, int port, bool reuseport,
                          int *bound_port) {
  *bound_port = -1;
  if (o->fd > 0) {
    int family = 0;
    int fd = adopt_listener(o->fd, i, &family);
    if (fd < 0)
      return fd;
    sl->l[0] = (struct cor__listener){sl, fd, family, false};
    sl->nl = 1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (family != AF_UNIX &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
      *bound_port = addr_port(&ss);
    return 0;
  }
  cor__addr *addrs = NULL;
  size_t n = 0;
  int rc = listen_addrs(o->host, o->path, port, &addrs, &n);
  if (rc != 0)
    return rc;
  if (n > MAX_LISTEN) {
    COR_LOG(COR_LOG_WARNING,
            "server: %s resolves to %zu addresses; listening on the first %d",
            o->host, n, MAX_LISTEN);
    n = MAX_LISTEN;
  }
  sl->nl = 0;
  for (size_t k = 0; k < n && rc == 0; k++) {
    if (!o->path && *bound_port > 0)
      set_addr_port(&addrs[k], *bound_port); /* port 0: the same for all */
    int fd = listen_one(o, &addrs[k], o->path != NULL, reuseport);
    if (fd < 0) {
      rc = fd;
      break;
    }
    sl->l[sl->nl++] = (struct cor__listener){sl, fd, addrs[k].ss.ss_family,
                                             false};
    if (!o->path && *bound_port <= 0) {
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *bound_port = addr_port(&ss);
    }
  }
  cor__free(addrs);
  if (rc != 0) {
    for (unsigned k = 0; k < sl->nl; k++)
      close(sl->l[k].fd);
    sl->nl = 0;
  }
  return rc;
}

struct cor_server *cor__server_alloc(const cor_server_opts *opts, cor_fn handler,
                                     unsigned nloops, const void *made_at) {
  struct cor_server *srv = cor__calloc(1, sizeof *srv);
  if (srv == NULL)
    return NULL;
  srv->opts = *opts;
  if (opts->tls)
    cor_retain(opts->tls); /* released with the server */
  srv->handler = handler;
  srv->made_at = made_at;
  srv->refs = 1;
  srv->nloops = nloops;
  srv->loops = cor__calloc(nloops, sizeof *srv->loops);
  srv->host = cor__strdup(opts->host ? opts->host : "127.0.0.1");
  srv->path = opts->path ? cor__strdup(opts->path) : NULL;
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->cv, NULL);
  if (srv->loops == NULL || srv->host == NULL || (opts->path && !srv->path)) {
    server_unref(srv);
    return NULL;
  }
  srv->opts.host = srv->host;
  srv->opts.path = srv->path;
  return srv;
}

/* Opens listener i (on any thread: no loop state is touched). */
int cor__server_listen(struct cor_server *srv, unsigned i, struct cor_loop *loop,
                       bool reuseport) {
  struct cor__srv_loop *sl = &srv->loops[i];
  sl->srv = srv;
  /* Held until the server is freed: a runtime may be shut down (its loops
   * closed) before the server is, and the server still posts to them. */
  sl->loop = cor_retain(loop);
  sl->nl = 0;
  sl->closed = true;
  int port = srv->port > 0 ? srv->port : srv->opts.port;
  int rc = make_listeners(sl, i, &srv->opts, port, reuseport, &port);
  if (rc != 0)
    return rc;
  sl->closed = false;
  srv->port = port;
  if (srv->opts.max_connections)
    sl->max = (srv->opts.max_connections + srv->nloops - 1) / srv->nloops;
  return 0;
}

/* On listener i's loop thread: starts accepting. */
int cor__server_start_loop(struct cor_server *srv, unsigned i) {
  struct cor__srv_loop *sl = &srv->loops[i];
  if (srv->opts.stack_size)
    cor_loop_set_task_stack_size(sl->loop, srv->opts.stack_size);
  for (unsigned k = 0; k < sl->nl; k++) {
    int rc = cor_loop_add_reader(sl->loop, sl->l[k].fd, on_accept, &sl->l[k]);
    if (rc != 0) {
      for (unsigned j = 0; j < k; j++) {
        cor_loop_remove_reader(sl->loop, sl->l[j].fd);
        sl->l[j].watching = false;
      }
      return rc;
    }
    sl->l[k].watching = true;
  }
  return 0;
}

/* Closes listeners that never started (setup failure). */
void cor__server_abort(struct cor_server *srv) {
  for (unsigned i = 0; i < srv->nloops; i++) {
    struct cor__srv_loop *sl = &srv->loops[i];
    if (sl->closed || sl->nl == 0 || sl->l[0].watching)
      continue;
    for (unsigned k = 0; k < sl->nl; k++)
      close(sl->l[k].fd);
    sl->nl = 0;
    sl->closed = true;
  }
  server_unref(srv);
}

static cor_server_t *start_server(cor_loop_t *loop, const cor_server_opts *opts,
                                  cor_fn handler, const cor_protocol *proto,
                                  void *arg, const char *call, const void *ra) {
  cor_server_opts o = {0};
  if (opts)
    o = *opts;
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL || (handler == NULL && proto == NULL))
    return cor__bad_arg_ptr(call, loop == NULL
                                      ? "loop is NULL and no loop is running"
                                      : "handler is NULL");
  COR__CHECK_THREAD_PTR(loop, call);
  if (isnan(o.tls_handshake_timeout))
    return cor__bad_arg_ptr(call, "opts->tls_handshake_timeout is NaN");
  if (o.tls && !cor__tls_ctx_server(o.tls))
    return cor__bad_arg_ptr(call, "opts->tls is a client context");
  if (loop->closed) {
    errno = -COR_ECLOSED;
    return NULL;
  }
  struct cor_server *srv = cor__server_alloc(&o, handler, 1, ra);
  if (srv == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  if (proto)
    cor__server_set_protocol(srv, proto, arg);
  int rc = cor__server_listen(srv, 0, loop, o.reuseport);
  if (rc == 0)
    rc = cor__server_start_loop(srv, 0);
  if (rc != 0) {
    cor__server_abort(srv);
    errno = -rc;
    return NULL;
  }
  cor__server_track(srv, loop->debug, ra);
  return srv;
}

cor_server_t *cor_start_server(cor_loop_t *loop, const cor_server_opts *opts,
                               cor_fn handler) {
  return start_server(loop, opts, handler, NULL, NULL, "cor_start_server",
                      __builtin_return_address(0));
}

cor_server_t *cor_start_protocol_server(cor_loop_t *loop,
                                        const cor_server_opts *opts,
                                        const cor_protocol *proto, void *arg) {
  if (proto == NULL)
    return cor__bad_arg_ptr("cor_start_protocol_server", "proto is NULL");
  return start_server(loop, opts, NULL, proto, arg,
                      "cor_start_protocol_server", __builtin_return_address(0));
}

/* ------------------------------------------------------------ queries */

int cor_server_port(const cor_server_t *srv) {
  return srv ? (srv->path ? -1 : srv->port) : -1;
}

void *cor_server_handler_arg(const cor_stream_t *s) {
  if (s == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(s->loop, "cor_server_handler_arg");
  return s->srv ? s->srv->srv->opts.arg : NULL;
}

unsigned cor_server_connections(const cor_server_t *srv) {
  return srv ? __atomic_load_n(&srv->nconn, __ATOMIC_RELAXED) : 0;
}

/* ------------------------------------------------------------ closing */

static void cancel_clients(struct cor__srv_loop *sl) {
  for (struct cor__conn *c = sl->conns; c; c = c->next)
    if (c->task)
      cor_task_cancel(c->task, "server closing its clients");
    else
      cor__transport_kill(c->xp); /* its end is deferred: c stays linked */
}

/* For runtime servers: run fn(sl) on each listener's loop thread; wait for
 * them unless the caller is one of those loops. */
typedef struct {
  struct cor__srv_loop *sl;
  void (*fn)(struct cor__srv_loop *);
  int *left;
  struct cor_server *srv;
} loop_job;

static void loop_job_run(void *arg) {
  loop_job *j = arg;
  j->fn(j->sl);
  struct cor_server *srv = j->srv;
  pthread_mutex_lock(&srv->mu);
  if (j->left && --*j->left == 0)
    pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
  cor__free(j);
  server_unref(srv);
}

static void on_each_loop(struct cor_server *srv,
                         void (*fn)(struct cor__srv_loop *)) {
  if (!srv->multi) {
    fn(&srv->loops[0]);
    return;
  }
  bool on_loop = false;
  for (unsigned i = 0; i < srv->nloops; i++)
    if (srv->loops[i].loop == cor__tls_loop)
      on_loop = true;
  int left = (int)srv->nloops;
  for (unsigned i = 0; i < srv->nloops; i++) {
    struct cor__srv_loop *sl = &srv->loops[i];
    if (sl->loop == cor__tls_loop) {
      fn(sl);
      pthread_mutex_lock(&srv->mu);
      left--;
      pthread_mutex_unlock(&srv->mu);
      continue;
    }
    loop_job *j = cor__malloc(sizeof *j);
    if (j) {
      j->sl = sl;
      j->fn = fn;
      j->left = on_loop ? NULL : &left;
      j->srv = srv;
      __atomic_add_fetch(&srv->refs, 1, __ATOMIC_ACQ_REL);
    }
    int prc = j ? cor_call_soon_threadsafe(sl->loop, loop_job_run, j) : -ENOMEM;
    if (prc != 0) {
      if (j) {
        cor__free(j);
        __atomic_sub_fetch(&srv->refs, 1, __ATOMIC_ACQ_REL);
      }
      /* A closed loop runs nothing any more, so its listener is ours to
       * touch: close it here rather than leak the fd. */
      if (prc == COR_ECLOSED)
        fn(sl);
      pthread_mutex_lock(&srv->mu);
      left--;
      pthread_mutex_unlock(&srv->mu);
    } else if (on_loop) {
      pthread_mutex_lock(&srv->mu);
      left--;
      pthread_mutex_unlock(&srv->mu);
    }
  }
  if (!on_loop) {
    pthread_mutex_lock(&srv->mu);
    while (left > 0)
      pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
  }
}

/* A single-loop server belongs to its loop's thread; a runtime server
 * (multi) to any thread. */
#define CHECK_SERVER_THREAD(srv, call)                                         \
  do {                                                                         \
    if (!(srv)->multi)                                                         \
      COR__CHECK_THREAD((srv)->loops[0].loop, call);                           \
  } while (0)

int cor_server_close(cor_server_t *srv) {
  if (srv == NULL)
    return cor__bad_arg("cor_server_close", "srv is NULL");
  CHECK_SERVER_THREAD(srv, "cor_server_close");
  if (__atomic_exchange_n(&srv->closed, true, __ATOMIC_ACQ_REL))
    return COR_ECLOSED;
  cor__res_untrack(&srv->res); /* before its listeners go */
  on_each_loop(srv, close_listener);
  return 0;
}

int cor_server_close_clients(cor_server_t *srv) {
  if (srv == NULL)
    return cor__bad_arg("cor_server_close_clients", "srv is NULL");
  CHECK_SERVER_THREAD(srv, "cor_server_close_clients");
  on_each_loop(srv, cancel_clients);
  return 0;
}

int cor_server_wait_closed(cor_server_t *srv, double timeout) {
  if (srv == NULL)
    return cor__bad_arg("cor_server_wait_closed", "srv is NULL");
  CHECK_SERVER_THREAD(srv, "cor_server_wait_closed");
  if (!__atomic_load_n(&srv->closed, __ATOMIC_ACQUIRE))
    return -EINVAL;
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg("cor_server_wait_closed", "timeout is NaN");
  bool forever = dl == 0;
  if (!srv->multi) {
    struct cor__srv_loop *sl = &srv->loops[0];
    while (!(sl->closed && sl->nconn == 0)) {
      int rc = cor__wait_embedded(sl->loop, &sl->wfut, &sl->wwait, dl,
                                  "cor_server_wait_closed",
                                  __builtin_return_address(0));
      if (rc != 0)
        return rc;
    }
    return 0;
  }
  for (unsigned i = 0; i < srv->nloops; i++)
    if (srv->loops[i].loop == cor__tls_loop)
      return COR_ETHREAD;
  struct timespec ts;
  if (!forever)
    cor__realtime_abstime(dl, &ts);
  int rc = 0;
  pthread_mutex_lock(&srv->mu);
  while (__atomic_load_n(&srv->nconn, __ATOMIC_ACQUIRE) != 0 ||
         __atomic_load_n(&srv->listeners_open, __ATOMIC_ACQUIRE) != 0) {
    if (forever) {
      pthread_cond_wait(&srv->cv, &srv->mu);
    } else if (pthread_cond_timedwait(&srv->cv, &srv->mu, &ts) == ETIMEDOUT) {
      rc = -ETIMEDOUT;
      break;
    }
  }
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

void cor_server_free(cor_server_t *srv) {
  if (srv == NULL)
    return;
  if (!srv->multi)
    COR__CHECK_THREAD_VOID(srv->loops[0].loop, "cor_server_free");
  /* Never closed: asyncio's ResourceWarning (its listeners still open for
   * the report to name them); closed here all the same. */
  cor__res_release(&srv->res);
  cor_server_close(srv);
  if (__atomic_load_n(&srv->nconn, __ATOMIC_ACQUIRE) != 0)
    cor_server_close_clients(srv);
  server_unref(srv);
}

/* For core/server_runtime.c. */
void cor__server_set_multi(struct cor_server *srv, bool multi) {
  srv->multi = multi;
  srv->listeners_open = srv->nloops;
}
