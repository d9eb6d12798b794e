/* SPDX-License-Identifier: MIT */
/* UDP endpoints: enough for a DNS-style request/response.
 *
 * One edge-triggered registration; recv tries the socket first and waits
 * for the readable edge only on EAGAIN (datagrams are not coalesced, so a
 * short read says nothing: every recv that succeeds leaves the flag set).
 * send never waits: UDP may drop, and a full socket buffer returns -EAGAIN. */
#include "stream_internal.h"

#include <netinet/in.h>
#include <unistd.h>

struct cor_datagram {
  struct cor_loop *loop;
  int fd;
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
      (cor_datagram_t *)((char *)r - offsetof(cor_datagram_t, res));
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

cor_datagram_t *cor_open_datagram(cor_loop_t *loop,
                                  const cor_datagram_opts *opts) {
  if (loop == NULL)
    loop = cor__tls_loop;
  if (loop == NULL || opts == NULL ||
      (opts->local_host == NULL && opts->remote_host == NULL &&
       opts->local_port == 0))
    return cor__bad_arg_ptr("cor_open_datagram",
                            loop == NULL ? "loop is NULL and no loop is running"
                            : opts == NULL
                                ? "opts is NULL"
                                : "opts names no local or remote address");
  COR__CHECK_THREAD_PTR(loop, "cor_open_datagram");
  cor__addr local, remote;
  int rc = 0;
  bool have_local = opts->local_host || opts->local_port;
  if (opts->remote_host &&
      (rc = cor__addr_numeric(opts->remote_host, opts->remote_port, &remote)))
    goto fail_rc;
  if (have_local) {
    const char *lh = opts->local_host;
    if (lh == NULL)
      lh = opts->remote_host && remote.ss.ss_family == AF_INET6 ? "::"
                                                                : "0.0.0.0";
    if ((rc = cor__addr_numeric(lh, opts->local_port, &local)) != 0)
      goto fail_rc;
  }
  int family = have_local ? local.ss.ss_family : remote.ss.ss_family;
  int fd = cor__socket(family, SOCK_DGRAM);
  if (fd < 0) {
    rc = fd;
    goto fail_rc;
  }
  int one = 1;
  if (opts->reuseport)
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if ((have_local && bind(fd, (struct sockaddr *)&local.ss, local.len) < 0) ||
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
