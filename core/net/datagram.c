/* SPDX-License-Identifier: MIT */
/* UDP endpoints.
 *
 * One edge-triggered registration (epoll, on both back-ends: io_uring
 * loops poll the same registration); recv tries the socket first and waits
 * for the readable edge only on EAGAIN (datagrams are not coalesced, so a
 * short read says nothing: every recv that succeeds leaves the flag set).
 * send never waits: UDP may drop, and a full socket buffer returns -EAGAIN.
 * recv_many / send_many are the same with recvmmsg / sendmmsg, at most
 * DG_BATCH headers per syscall on the task's stack (no allocation).
 * Host names go to the resolver pool from a task (cor__resolve), or to a
 * blocking getaddrinfo outside one, as cor_start_server does. */
#include "base/alloc.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "diag/resource.h"
#include "loop/loop.h"
#include "net/stream_internal.h"

#include <arpa/inet.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct cor_datagram {
  struct cor_loop *loop;
  int fd;
  int family; /* AF_INET or AF_INET6 */
  int port;
  bool readable;
  bool closed;
  struct cor_future rfut;
  bool rwait;
  cor__res res; /* reported if still open when its loop is freed or at exit */
};

/* "Datagram fd=7 local=127.0.0.1:5353 peer=127.0.0.1:53" */
static void dg_repr(cor__res *r, cor__buf *out) {
  cor_datagram_t *d =
      cor__container_of(r, cor_datagram_t, res);
  cor__buf_printf(out, "Datagram fd=%d", d->fd);
  cor__buf_sockaddr(out, "local", d->fd, false);
  cor__buf_sockaddr(out, "peer", d->fd, true); /* when connected */
}

static const cor__res_type dg_res = {"datagram endpoint", dg_repr};

static void dg_readable(void *arg) {
  cor_datagram_t *d = arg;
  d->readable = true;
  if (d->rwait)
    cor__wake_embedded(&d->rfut, true, 0);
}

static void dg_writable(void *arg) { (void)arg; }

/* The addresses of host:port. Numeric: parsed in place. A name: in a task,
 * on the resolver pool (the loop keeps running); outside a task, a
 * blocking getaddrinfo, as cor_start_server resolves its host before the
 * loop runs. *out is the caller's to cor__free. A name that does not
 * resolve is -EADDRNOTAVAIL. */
static int dg_resolve(const char *host, int port, bool passive, cor__addr **out,
                      size_t *n, const void *ra) {
  cor__addr a;
  if (cor__addr_numeric(host, port, &a) == 0) {
    if ((*out = cor__malloc(sizeof a)) == NULL)
      return -ENOMEM;
    **out = a;
    *n = 1;
    return 0;
  }
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  int rc;
  if (cor__tls_task != NULL) {
    rc = cor__resolve(host, ps, SOCK_DGRAM, 0, out, n, ra);
  } else {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0);
    rc = -ENOENT;
    if (getaddrinfo(host, ps, &hints, &res) == 0) {
      size_t k = 0;
      for (struct addrinfo *r = res; r; r = r->ai_next)
        k++;
      cor__addr *v = cor__calloc(k ? k : 1, sizeof *v);
      size_t m = 0;
      if (v == NULL) {
        rc = -ENOMEM;
      } else {
        for (struct addrinfo *r = res; r; r = r->ai_next)
          if (r->ai_addrlen <= sizeof v[m].ss) {
            memcpy(&v[m].ss, r->ai_addr, r->ai_addrlen);
            v[m].len = r->ai_addrlen;
            m++;
          }
        if (m == 0) {
          cor__free(v);
        } else {
          *out = v;
          *n = m;
          rc = 0;
        }
      }
    }
    if (res)
      freeaddrinfo(res);
  }
  if (rc == -ENOENT || rc == -EINVAL || rc == -EAFNOSUPPORT)
    rc = -EADDRNOTAVAIL;
  return rc;
}

static int wildcard(int family, int port, cor__addr *out) {
  return cor__addr_numeric(family == AF_INET6 ? "::" : "0.0.0.0", port, out);
}

/* Chooses the local and remote address from what the hosts resolved to:
 * the first pair of one family. */
static int dg_addresses(const cor_datagram_opts *o, bool have_local,
                        cor__addr *local, cor__addr *remote, const void *ra) {
  cor__addr *lv = NULL, *rv = NULL;
  size_t ln = 0, rn = 0;
  int rc = 0;
  if (o->remote_host &&
      (rc = dg_resolve(o->remote_host, o->remote_port, false, &rv, &rn, ra)))
    goto out;
  if (o->local_host &&
      (rc = dg_resolve(o->local_host, o->local_port, true, &lv, &ln, ra)))
    goto out;
  if (o->remote_host && o->local_host) {
    rc = -EADDRNOTAVAIL;
    for (size_t i = 0; i < rn && rc; i++)
      for (size_t j = 0; j < ln && rc; j++)
        if (rv[i].ss.ss_family == lv[j].ss.ss_family) {
          *remote = rv[i];
          *local = lv[j];
          rc = 0;
        }
  } else if (o->remote_host) {
    *remote = rv[0];
    if (have_local)
      rc = wildcard(remote->ss.ss_family, o->local_port, local);
  } else if (o->local_host) {
    *local = lv[0];
  } else {
    rc = wildcard(AF_INET, o->local_port, local);
  }
out:
  cor__free(lv);
  cor__free(rv);
  return rc;
}

cor_datagram_t *cor_open_datagram(cor_loop_t *loop,
                                  const cor_datagram_opts *opts) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL || opts == NULL ||
      (opts->local_host == NULL && opts->remote_host == NULL &&
       opts->local_port == 0) ||
      opts->local_port < 0 || opts->local_port > 65535 ||
      opts->remote_port < 0 || opts->remote_port > 65535)
    return cor__bad_arg_ptr(
        "cor_open_datagram",
        loop == NULL   ? "loop is NULL and no loop is running"
        : opts == NULL ? "opts is NULL"
        : (opts->local_host == NULL && opts->remote_host == NULL &&
           opts->local_port == 0)
            ? "opts names no local or remote address"
            : "opts has a port outside 0..65535");
  COR__CHECK_THREAD_PTR(loop, "cor_open_datagram");
  cor__addr local, remote;
  int rc = 0;
  bool have_local = opts->local_host || opts->local_port;
  if ((rc = dg_addresses(opts, have_local, &local, &remote,
                         __builtin_return_address(0))) != 0)
    goto fail_rc;
  int family = have_local ? local.ss.ss_family : remote.ss.ss_family;
  int fd = cor__socket(family, SOCK_DGRAM);
  if (fd < 0) {
    rc = fd;
    goto fail_rc;
  }
  int one = 1;
  if (opts->reuseport)
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if ((opts->reuseaddr &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) ||
      (opts->broadcast &&
       setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) ||
      (have_local && bind(fd, (struct sockaddr *)&local.ss, local.len) < 0) ||
      (opts->remote_host &&
       connect(fd, (struct sockaddr *)&remote.ss, remote.len) < 0)) {
    rc = -errno;
    close(fd);
    goto fail_rc;
  }
  cor_datagram_t *d = cor__calloc(1, sizeof *d);
  if (d == NULL) {
    close(fd);
    rc = -ENOMEM;
    goto fail_rc;
  }
  d->loop = loop;
  d->fd = fd;
  d->family = family;
  d->readable = true;
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  d->port = -1;
  if (getsockname(fd, (struct sockaddr *)&ss, &l) == 0)
    d->port = ntohs(ss.ss_family == AF_INET
                        ? ((struct sockaddr_in *)&ss)->sin_port
                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
  if ((rc = cor__loop_io_et_add(loop, fd, dg_readable, dg_writable, d)) != 0) {
    close(fd);
    cor__free(d);
    goto fail_rc;
  }
  cor__res_track(&d->res, &dg_res, loop, false, loop->debug,
                 __builtin_return_address(0));
  return d;
fail_rc:
  errno = rc == COR_ECLOSED ? -COR_ECLOSED : -rc;
  return NULL;
}

ssize_t cor_datagram_recv(cor_datagram_t *d, void *buf, size_t n,
                          struct sockaddr *from, unsigned *fromlen,
                          double timeout) {
  if (d == NULL || (buf == NULL && n > 0))
    return cor__bad_arg("cor_datagram_recv",
                        d == NULL ? "d is NULL" : "buf is NULL with n > 0");
  COR__CHECK_THREAD(d->loop, "cor_datagram_recv");
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg("cor_datagram_recv", "timeout is NaN");
  for (;;) {
    if (d->closed)
      return COR_ECLOSED;
    /* A time-out of 0 asks now: the socket itself, not the readiness seen. */
    if (d->readable || timeout == 0) {
      socklen_t fl = fromlen ? *fromlen : 0;
      ssize_t r = recvfrom(d->fd, buf, n, 0, from, from ? &fl : NULL);
      if (r >= 0) {
        if (fromlen)
          *fromlen = fl;
        return r;
      }
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return -errno; /* ECONNREFUSED after an ICMP error, ... */
      d->readable = false;
      if (timeout == 0)
        return -ETIMEDOUT;
    }
    int rc = cor__wait_embedded(d->loop, &d->rfut, &d->rwait, dl,
                                "cor_datagram_recv",
                                __builtin_return_address(0));
    if (rc != 0)
      return rc;
  }
}

int cor_datagram_send(cor_datagram_t *d, const void *buf, size_t n,
                      const struct sockaddr *to, unsigned tolen) {
  if (d == NULL || (buf == NULL && n > 0))
    return cor__bad_arg("cor_datagram_send",
                        d == NULL ? "d is NULL" : "buf is NULL with n > 0");
  COR__CHECK_THREAD(d->loop, "cor_datagram_send");
  if (d->closed)
    return COR_ECLOSED;
  ssize_t w;
  do
    w = sendto(d->fd, buf, n, MSG_NOSIGNAL, to, to ? tolen : 0);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  return 0;
}

int cor_datagram_sendto(cor_datagram_t *d, const void *buf, size_t n,
                        const char *host, int port) {
  if (d == NULL || host == NULL || (buf == NULL && n > 0) || port < 0 ||
      port > 65535)
    return cor__bad_arg("cor_datagram_sendto",
                        d == NULL      ? "d is NULL"
                        : host == NULL ? "host is NULL"
                        : (buf == NULL && n > 0)
                            ? "buf is NULL with n > 0"
                            : "port is outside 0..65535");
  COR__CHECK_THREAD(d->loop, "cor_datagram_sendto");
  if (d->closed)
    return COR_ECLOSED;
  cor__addr a;
  if (cor__addr_numeric(host, port, &a) != 0) {
    if (cor__tls_task == NULL)
      return COR_ENOTASK; /* a send never blocks the loop on a lookup */
    cor__addr *v = NULL;
    size_t k = 0;
    int rc = dg_resolve(host, port, false, &v, &k, __builtin_return_address(0));
    if (rc != 0)
      return rc;
    rc = -EADDRNOTAVAIL;
    for (size_t i = 0; i < k && rc; i++)
      if (v[i].ss.ss_family == d->family) {
        a = v[i];
        rc = 0;
      }
    cor__free(v);
    if (rc != 0)
      return rc;
    if (d->closed) /* closed by another task while the name resolved */
      return COR_ECLOSED;
  }
  return cor_datagram_send(d, buf, n, (struct sockaddr *)&a.ss, a.len);
}

/* recvmmsg / sendmmsg take at most this many per call here: the headers
 * live on the task's stack (80 bytes each). */
#define DG_BATCH 32

static bool msgs_ok(const cor_dgram_msg *m, unsigned n, bool send,
                    const char **why) {
  for (unsigned i = 0; i < n; i++) {
    if (m[i].buf == NULL && (send ? m[i].len : m[i].cap) > 0) {
      *why = send ? "a msg's buf is NULL with len > 0"
                  : "a msg's buf is NULL with cap > 0";
      return false;
    }
    if (send && m[i].addrlen > sizeof m[i].addr) {
      *why = "a msg's addrlen is larger than addr";
      return false;
    }
  }
  return true;
}

/* One recvmmsg of up to k into m without waiting: the count or -errno. */
static int recv_batch(int fd, cor_dgram_msg *m, unsigned k) {
  struct mmsghdr h[DG_BATCH];
  struct iovec iov[DG_BATCH];
  memset(h, 0, k * sizeof h[0]);
  for (unsigned i = 0; i < k; i++) {
    iov[i].iov_base = m[i].buf;
    iov[i].iov_len = m[i].cap;
    h[i].msg_hdr.msg_iov = &iov[i];
    h[i].msg_hdr.msg_iovlen = 1;
    h[i].msg_hdr.msg_name = &m[i].addr;
    h[i].msg_hdr.msg_namelen = sizeof m[i].addr;
  }
  int r;
  do
    r = recvmmsg(fd, h, k, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return -errno;
  for (int i = 0; i < r; i++) {
    m[i].len = h[i].msg_len;
    m[i].truncated = (h[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    m[i].addrlen = h[i].msg_hdr.msg_namelen;
  }
  return r;
}

ssize_t cor_datagram_recv_many(cor_datagram_t *d, cor_dgram_msg *msgs,
                               unsigned n, double timeout) {
  const char *why = NULL;
  if (d == NULL || (msgs == NULL && n > 0) ||
      (msgs && !msgs_ok(msgs, n, false, &why)))
    return cor__bad_arg("cor_datagram_recv_many",
                        d == NULL ? "d is NULL"
                        : why     ? why
                                  : "msgs is NULL with n > 0");
  COR__CHECK_THREAD(d->loop, "cor_datagram_recv_many");
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg("cor_datagram_recv_many", "timeout is NaN");
  if (n == 0)
    return d->closed ? COR_ECLOSED : 0;
  for (;;) {
    if (d->closed)
      return COR_ECLOSED;
    /* As cor_datagram_recv: a time-out of 0 asks the socket itself. */
    if (d->readable || timeout == 0) {
      unsigned k = n < DG_BATCH ? n : DG_BATCH;
      int r = recv_batch(d->fd, msgs, k);
      if (r > 0) {
        size_t got = (size_t)r;
        /* More asked and a full batch came: take what else is queued. */
        while ((unsigned)r == k && got < n) {
          k = n - got < DG_BATCH ? (unsigned)(n - got) : DG_BATCH;
          r = recv_batch(d->fd, msgs + got, k);
          if (r <= 0)
            break; /* EAGAIN, or an error the next call reports */
          got += (size_t)r;
        }
        return (ssize_t)got;
      }
      if (r == 0)
        continue; /* not seen for UDP; ask again */
      if (r != -EAGAIN && r != -EWOULDBLOCK)
        return r;
      d->readable = false;
      if (timeout == 0)
        return -ETIMEDOUT;
    }
    int rc = cor__wait_embedded(d->loop, &d->rfut, &d->rwait, dl,
                                "cor_datagram_recv_many",
                                __builtin_return_address(0));
    if (rc != 0)
      return rc;
  }
}

int cor_datagram_send_many(cor_datagram_t *d, const cor_dgram_msg *msgs,
                           unsigned n) {
  const char *why = NULL;
  if (d == NULL || (msgs == NULL && n > 0) || n > INT_MAX ||
      (msgs && !msgs_ok(msgs, n, true, &why)))
    return cor__bad_arg("cor_datagram_send_many",
                        d == NULL              ? "d is NULL"
                        : (msgs == NULL && n > 0) ? "msgs is NULL with n > 0"
                        : n > INT_MAX          ? "n is larger than INT_MAX"
                                               : why);
  COR__CHECK_THREAD(d->loop, "cor_datagram_send_many");
  if (d->closed)
    return COR_ECLOSED;
  unsigned sent = 0;
  while (sent < n) {
    struct mmsghdr h[DG_BATCH];
    struct iovec iov[DG_BATCH];
    unsigned k = n - sent < DG_BATCH ? n - sent : DG_BATCH;
    memset(h, 0, k * sizeof h[0]);
    for (unsigned i = 0; i < k; i++) {
      const cor_dgram_msg *m = &msgs[sent + i];
      iov[i].iov_base = m->buf;
      iov[i].iov_len = m->len;
      h[i].msg_hdr.msg_iov = &iov[i];
      h[i].msg_hdr.msg_iovlen = 1;
      if (m->addrlen) {
        h[i].msg_hdr.msg_name = (void *)&m->addr;
        h[i].msg_hdr.msg_namelen = m->addrlen;
      }
    }
    int r;
    do
      r = sendmmsg(d->fd, h, k, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (sent > 0)
        break; /* what was sent is the answer; the error comes again */
      return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    sent += (unsigned)r;
    if ((unsigned)r < k)
      break; /* the buffer filled, or an error after r */
  }
  return (int)sent;
}

/* ------------------------------------------------------------ multicast */

/* Parses group and iface into a membership request of d's family. */
static int mreq_of(cor_datagram_t *d, const char *call, const char *group,
                   const char *iface, struct ip_mreqn *m4,
                   struct ipv6_mreq *m6) {
  struct in_addr g4;
  struct in6_addr g6;
  int gf = inet_pton(AF_INET, group, &g4) == 1    ? AF_INET
           : inet_pton(AF_INET6, group, &g6) == 1 ? AF_INET6
                                                  : 0;
  if (gf == 0 || (gf == AF_INET && !IN_MULTICAST(ntohl(g4.s_addr))) ||
      (gf == AF_INET6 && !IN6_IS_ADDR_MULTICAST(&g6)))
    return cor__bad_arg(call, "group is not a numeric multicast address");
  if (gf != d->family)
    return -EAFNOSUPPORT;
  unsigned idx = 0;
  struct in_addr ia = {.s_addr = htonl(INADDR_ANY)};
  if (iface != NULL) {
    struct in6_addr i6;
    if (gf == AF_INET && inet_pton(AF_INET, iface, &ia) == 1) {
      /* an interface address */
    } else if (inet_pton(AF_INET, iface, &ia) == 1 ||
               inet_pton(AF_INET6, iface, &i6) == 1) {
      return cor__bad_arg(call, "iface is an address; an IPv6 group takes "
                                "an interface name");
    } else {
      size_t l = strlen(iface);
      if (l == 0 || l >= IF_NAMESIZE || strchr(iface, ':') ||
          strchr(iface, '/'))
        return cor__bad_arg(call, "iface is neither an interface name nor "
                                  "an IPv4 address");
      if ((idx = if_nametoindex(iface)) == 0)
        return -ENODEV;
    }
  }
  if (gf == AF_INET) {
    memset(m4, 0, sizeof *m4);
    m4->imr_multiaddr = g4;
    m4->imr_address = ia;
    m4->imr_ifindex = (int)idx;
  } else {
    memset(m6, 0, sizeof *m6);
    m6->ipv6mr_multiaddr = g6;
    m6->ipv6mr_interface = idx;
  }
  return 0;
}

static int membership(cor_datagram_t *d, const char *group, const char *iface,
                      bool join, const char *call) {
  if (d == NULL || group == NULL)
    return cor__bad_arg(call, d == NULL ? "d is NULL" : "group is NULL");
  COR__CHECK_THREAD(d->loop, call);
  if (d->closed)
    return COR_ECLOSED;
  struct ip_mreqn m4;
  struct ipv6_mreq m6;
  int rc = mreq_of(d, call, group, iface, &m4, &m6);
  if (rc != 0)
    return rc;
  int r = d->family == AF_INET
              ? setsockopt(d->fd, IPPROTO_IP,
                           join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m4,
                           sizeof m4)
              : setsockopt(d->fd, IPPROTO_IPV6,
                           join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &m6,
                           sizeof m6);
  if (r < 0) {
    /* IPv6 says "not joined" with EADDRNOTAVAIL as IPv4 does; a route-less
     * join is ENODEV on both. */
    return -errno;
  }
  return 0;
}

int cor_datagram_join_group(cor_datagram_t *d, const char *group,
                            const char *iface) {
  return membership(d, group, iface, true, "cor_datagram_join_group");
}

int cor_datagram_leave_group(cor_datagram_t *d, const char *group,
                             const char *iface) {
  return membership(d, group, iface, false, "cor_datagram_leave_group");
}

int cor_datagram_set_multicast_ttl(cor_datagram_t *d, int ttl) {
  if (d == NULL || ttl < 0 || ttl > 255)
    return cor__bad_arg("cor_datagram_set_multicast_ttl",
                        d == NULL ? "d is NULL" : "ttl is outside 0..255");
  COR__CHECK_THREAD(d->loop, "cor_datagram_set_multicast_ttl");
  if (d->closed)
    return COR_ECLOSED;
  int r = d->family == AF_INET
              ? setsockopt(d->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl,
                           sizeof ttl)
              : setsockopt(d->fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl,
                           sizeof ttl);
  return r < 0 ? -errno : 0;
}

int cor_datagram_set_multicast_loop(cor_datagram_t *d, bool on) {
  if (d == NULL)
    return cor__bad_arg("cor_datagram_set_multicast_loop", "d is NULL");
  COR__CHECK_THREAD(d->loop, "cor_datagram_set_multicast_loop");
  if (d->closed)
    return COR_ECLOSED;
  int v = on;
  int r = d->family == AF_INET
              ? setsockopt(d->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &v, sizeof v)
              : setsockopt(d->fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &v,
                           sizeof v);
  return r < 0 ? -errno : 0;
}

int cor_datagram_port(const cor_datagram_t *d) {
  if (d == NULL)
    return cor__bad_arg("cor_datagram_port", "d is NULL");
  COR__CHECK_THREAD(d->loop, "cor_datagram_port");
  return d->port;
}

static void dg_close_fd(cor_datagram_t *d) {
  cor__loop_io_et_del(d->loop, d->fd);
  close(d->fd);
  d->fd = -1;
  d->closed = true;
  /* A task waiting in recv wakes with COR_ECLOSED. */
  cor__wake_embedded(&d->rfut, d->rwait, COR_ECLOSED);
}

int cor_datagram_close(cor_datagram_t *d) {
  if (d == NULL)
    return cor__bad_arg("cor_datagram_close", "d is NULL");
  COR__CHECK_THREAD(d->loop, "cor_datagram_close");
  if (d->closed)
    return 0; /* idempotent, as every close */
  cor__res_untrack(&d->res);
  dg_close_fd(d);
  return 0;
}

void cor_datagram_free(cor_datagram_t *d) {
  if (d == NULL)
    return;
  COR__CHECK_THREAD_VOID(d->loop, "cor_datagram_free");
  if (!d->closed) {
    /* Never closed: the resource warning (the fd still open for the report
     * to name its addresses), then closed here all the same. */
    cor__res_release(&d->res);
    dg_close_fd(d);
  }
  if (d->rwait) {
    /* The woken task reads the object when it resumes: leak the (small)
     * object rather than free it under that task. */
    COR_LOG(COR_LOG_ERROR,
            "cor_datagram_free: a task still waits in recv; leaking the "
            "endpoint rather than freeing memory in use");
    return;
  }
  cor__free(d);
}
