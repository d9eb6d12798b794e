/* SPDX-License-Identifier: MIT */
/* Streams, servers, datagrams and subprocesses: what core/stream.c,
 * core/server.c, core/net.c, core/datagram.c and core/subprocess.c share.
 * Internal. */
#ifndef CORIO_CORE_STREAM_INTERNAL_H
#define CORIO_CORE_STREAM_INTERNAL_H

#include "base/backtrace.h"
#include "diag/resource.h"
#include "loop/uring.h"
#include "task/task_internal.h"

#include <sys/socket.h>
#include <sys/types.h>

enum { COR__STREAM_SOCK = 0, COR__STREAM_PIPE };

struct cor_server;
struct cor__srv_loop;

struct cor_stream {
  struct cor_loop *loop;
  int fd;
  uint8_t kind;    /* COR__STREAM_SOCK / _PIPE */
  bool readable;   /* no short read/EAGAIN since the last readable edge */
  bool writable;   /* no short write/EAGAIN since the last writable edge */
  bool eof;        /* the peer finished sending */
  bool hup;        /* hang-up, error or urgent data: read until EAGAIN/EOF */
  bool closing;    /* cor_stream_close was called */
  bool fd_closed;  /* the fd is closed (after close, or on free) */
  bool shut_req;   /* write_eof asked; done once the buffer is flushed */
  bool shut_done;
  bool registered; /* edge-triggered registration in the loop */
  bool rwait, wwait; /* a task waits on rfut / wfut */
  bool cwait;        /* a task waits on cfut (wait_closed) */
  /* io_uring mode (core/stream_uring.c, on core/uring.c): reads and writes
   * complete on the loop's ring instead of recv/send calls;
   * `readable`/`writable`/`registered` are unused then. */
  bool uring;
  bool rarmed;  /* a recv is in flight (rop) */
  bool sending; /* a send (or connect's poll) is in flight (wop) */
  bool zombie;  /* freed while ops were in flight: the last one frees it */
  bool lost;    /* its ring's thread is gone: every call fails (ETHREAD) */
  struct cor_stream *unext, *uprev; /* the ring's list (cor__uring.streams) */
  uint8_t uops; /* ops in flight */
  bool rcancel; /* the multishot recv was asked to stop (back-pressure) */
  bool nobufs;  /* the pool ran dry: the next recv uses obuf, one-shot */
  char *obuf;   /* the stream's own receive buffer for that case */
  /* received buffers not copied yet (no task waited): bid << 16 | len,
   * oldest first */
  uint32_t *pend;
  uint16_t npend, pend_cap;
  cor__uop rop, wop;
  /* bytes handed to the kernel by the send in flight: [fpos, fend) of
   * fbuf (capacity fcap); new writes go to wbuf meanwhile */
  char *fbuf;
  size_t fcap, fpos, fend;
  int rerr, werr;  /* sticky errors of each direction */
  /* read buffer: unread bytes are [rpos, rend) of rbuf (capacity rcap) */
  char *rbuf;
  size_t rcap, rpos, rend;
  /* write buffer: unsent bytes are [wpos, wend) of wbuf (capacity wcap) */
  char *wbuf;
  size_t wcap, wpos, wend;
  size_t limit, hiwat, lowat;
  uint64_t read_to, idle_to; /* ns, 0 = none */
  uint64_t last_io;          /* loop clock of the last byte in or out */
  /* Embedded futures a waiting task awaits: one allocation-free wait per
   * suspension (re-initialised each time), cancellable as any future. */
  struct cor_future rfut, wfut;
  /* wait_closed's own, so that one task may wait for the close while
   * another drains. */
  struct cor_future cfut;
  /* set when the stream belongs to a server connection */
  struct cor__srv_loop *srv;
  struct cor__conn *conn;
  /* An application's stream (not a server connection's or a subprocess
   * pipe's, which their owner closes): reported if freed unclosed
   * (core/resource.c). */
  cor__res res;
  /* TLS (core/tls.c): the OpenSSL state, NULL on a plain stream. While
   * tls_raw, the transport's fill targets the ciphertext buffer (swapped
   * into rbuf); otherwise cor__rbuf_append hands received bytes (io_uring
   * completions) to the TLS layer as ciphertext. */
  struct cor__ssl *tls;
  bool tls_raw;
  /* set when the stream carries a protocol's transport (core/transport.c):
   * the back-ends call cor__transport_readable where they would wake a
   * waiting reader, and cor__stream_after_flush calls
   * cor__transport_flushed */
  struct cor_transport *xp;
};

/* Wraps fd (non-blocking already) as a stream of `kind` on loop and
 * registers it; the stream owns fd from now on, even on failure (NULL with
 * errno). `readable`: whether to try reading before the first edge. */
struct cor_stream *cor__stream_new(struct cor_loop *loop, int fd, int kind,
                                   bool readable);

/* Waits (in a task) until a connecting socket stream's fd is writable,
 * i.e. the connect finished either way; -ETIMEDOUT at deadline_ns. */
int cor__stream_wait_connect(struct cor_stream *s, uint64_t deadline_ns,
                             const char *call, const void *site);

/* Tracks s as the application's (cor__res_track) from now on: freed
 * without cor_stream_close, it is reported. ra: the return address of the
 * application's call that made it (its site in debug mode). */
void cor__stream_track(struct cor_stream *s, const void *ra);

/* core/tls.c: the handshake of cor_stream_start_tls, for
 * cor_open_connection_opts and servers (deadline 0 = none). */
struct cor_tls_ctx;
/* Whether ctx is a server's (opts->server). */
bool cor__tls_ctx_server(const struct cor_tls_ctx *ctx);
int cor__stream_start_tls(struct cor_stream *s, struct cor_tls_ctx *ctx,
                          const char *host, uint64_t deadline,
                          const char *call, const void *site);

/* core/net.c: addresses and sockets */
typedef struct cor__addr {
  struct sockaddr_storage ss;
  socklen_t len;
} cor__addr;
/* Parses a numeric IPv4/IPv6 address and a port; -EINVAL otherwise. */
int cor__addr_numeric(const char *host, int port, cor__addr *out);
/* Unix-domain address ('@' = abstract); -ENAMETOOLONG, -EINVAL. */
int cor__addr_unix(const char *path, cor__addr *out);
/* core/resolve.c: resolves host:port in a task without blocking the loop
 * (numeric fast path; names on the bounded resolver pool). *out is an array of *n addresses the
 * caller frees with cor__free. deadline_ns 0 = none. site: the
 * application's call, the task's "running at" while it waits. */
int cor__resolve(const char *host, const char *port, int socktype,
                 uint64_t deadline_ns, cor__addr **out, size_t *n,
                 const void *site);
/* Inside a task: connects to one of the n addresses (reordered in place):
 * Happy Eyeballs when n > 1 and o->happy_eyeballs_delay >= 0 (0: the
 * default delay), else one after another. local: bind first (NULL: any).
 * deadline 0 = none. ra: the application's call. */
int cor__connect_addrs(cor__addr *addrs, size_t n,
                       const struct cor_connect_opts *o,
                       const cor__addr *local, uint64_t deadline,
                       struct cor_stream **out, const void *ra);
/* A non-blocking CLOEXEC socket; -errno. */
int cor__socket(int family, int type);
/* TCP_NODELAY on a TCP socket (no-op for others). */
void cor__set_nodelay(int fd, int family);

/* The pieces of a server that executor/server_runtime.c assembles into a
 * runtime server (one listener per loop), from core/server.c. */
/* made_at: the application's start call, named by the reports of the
 * connection tasks. */
struct cor_server *cor__server_alloc(const cor_server_opts *opts, cor_fn handler,
                                     unsigned nloops, const void *made_at);
int cor__server_listen(struct cor_server *srv, unsigned i, struct cor_loop *loop,
                       bool reuseport);
int cor__server_start_loop(struct cor_server *srv, unsigned i);
void cor__server_abort(struct cor_server *srv);
void cor__server_set_multi(struct cor_server *srv, bool multi);
void cor__server_track(struct cor_server *srv, bool debug, const void *ra);
/* A protocol server (core/transport.c): one transport per connection. */
struct cor_protocol;
void cor__server_set_protocol(struct cor_server *srv,
                              const struct cor_protocol *proto, void *arg);

/* core/transport.c, for the back-ends, stream.c and server.c */
struct cor_transport;
void cor__transport_readable(struct cor_transport *t);
void cor__transport_flushed(struct cor_transport *t);
/* A transport for the connected stream s (the transport owns it; NULL
 * with errno ENOMEM, s freed). conn: the server's, or NULL. */
struct cor_transport *cor__transport_new(struct cor_stream *s,
                                         const struct cor_protocol *proto,
                                         void *arg, struct cor__conn *conn);
/* connection_made, then the first read. */
void cor__transport_start(struct cor_transport *t);
/* cor_transport_abort without the checks (close_clients). */
void cor__transport_kill(struct cor_transport *t);
/* core/server.c: the transport of server connection c is gone. */
void cor__server_conn_gone(struct cor__conn *c);

#endif
