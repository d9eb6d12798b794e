/* SPDX-License-Identifier: MIT */
/* Protocols and transports: asyncio's callback model for connections, no
 * task and no stack per connection (core/transport.c).
 *
 * A transport is a connected socket whose bytes are delivered to a
 * protocol's callbacks on the loop's thread, in the order they arrive;
 * writes are buffered. Every call is for the thread of the transport's
 * loop (else COR_ETHREAD, logged). A callback may write, close or abort
 * its transport, create tasks or start other connections; after
 * connection_lost returns, the transport is gone (its pointer must not be
 * used again). */
#ifndef CORIO_TRANSPORT_H
#define CORIO_TRANSPORT_H

#include <corio/stream.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_transport cor_transport_t;

/* The callbacks of a protocol; any member may be NULL. `arg` is the
 * transport's (cor_transport_set_arg), at first the server's or the
 * connection's arg.
 * - connection_made: the transport is ready; called first, once.
 * - data_received: n > 0 bytes arrived; buf is valid until it returns.
 * - eof_received: the peer finished sending. Return true to keep the
 *   transport open (a half-close: it may still write, then close); false
 *   (or a NULL member) closes it.
 * - connection_lost: called once, last: code 0 after a close whose bytes
 *   were sent (or an EOF), -ECONNABORTED after cor_transport_abort, or the
 *   error that ended the connection (-ECONNRESET, -EPIPE, ...).
 * - pause_writing / resume_writing: the write buffer went above the high
 *   water mark / fell back to the low water mark. */
typedef struct cor_protocol {
  void (*connection_made)(cor_transport_t *t, void *arg);
  void (*data_received)(cor_transport_t *t, const void *buf, size_t n,
                        void *arg);
  bool (*eof_received)(cor_transport_t *t, void *arg);
  void (*connection_lost)(cor_transport_t *t, int code, void *arg);
  void (*pause_writing)(cor_transport_t *t, void *arg);
  void (*resume_writing)(cor_transport_t *t, void *arg);
} cor_protocol;

/* As cor_start_server, with one transport per connection (opts->arg is
 * each transport's first arg, as `arg` when opts->arg is NULL) instead of
 * a task. max_connections, cor_server_close, cor_server_wait_closed and
 * cor_server_close_clients (which aborts the transports) work as for task
 * servers; opts->stack_size is unused, and opts->idle_timeout and
 * opts->read_timeout are not applied to transports yet (nothing waits), nor
 * is a bound on a graceful close's flush: a peer that never reads keeps
 * its transport until cor_server_close_clients. NULL with errno: EINVAL
 * (NULL loop with none running, NULL proto; logged), the errors of
 * cor_start_server. Owner thread (else NULL, errno COR_ETHREAD). */
COR_EXTERN cor_server_t *cor_start_protocol_server(cor_loop_t *loop,
                                                   const cor_server_opts *opts,
                                                   const cor_protocol *proto,
                                                   void *arg);
/* As cor_runtime_start_server: one listener per loop of rt, each
 * connection's transport and callbacks on the loop that accepted it.
 * NULL with errno: EINVAL (NULL rt or proto, logged), COR_ETHREAD (called
 * from one of rt's loops), the errors of cor_runtime_start_server. Any
 * thread but rt's loops. */
COR_EXTERN cor_server_t *cor_runtime_start_protocol_server(
    struct cor_runtime *rt, const cor_server_opts *opts,
    const cor_protocol *proto, void *arg);

/* Connects to host:port (as cor_open_connection_opts; opts may be NULL)
 * on `loop` (NULL: the running loop) and makes a transport for proto.
 * Inside a task with `out`: waits for the connection, calls
 * connection_made, stores the transport in *out and returns 0, or a
 * negative code (the connect's; no callback is called then). With out
 * NULL (from a callback or a task): returns 0 at once and connects in the
 * background (a short-lived task of the loop); connection_made reports
 * the success, and a failure calls connection_lost(NULL, code, arg).
 * Returns -EINVAL (NULL host, port or proto, logged), COR_ENOTASK (out
 * given outside a task), -ENOMEM, COR_ECLOSED (loop closed). Owner thread
 * (else COR_ETHREAD). */
COR_EXTERN int cor_create_connection(cor_loop_t *loop, const char *host,
                                     const char *port,
                                     const cor_connect_opts *opts,
                                     const cor_protocol *proto, void *arg,
                                     cor_transport_t **out);

/* Buffered write of n bytes: what the kernel takes now goes at once, the
 * rest is queued (pause_writing past the high water mark). 0, -EINVAL
 * (NULL t, or NULL buf with n > 0; logged), COR_ECLOSED (closing, closed
 * or after write_eof), or the connection's write error. */
COR_EXTERN int cor_transport_write(cor_transport_t *t, const void *buf,
                                   size_t n);
/* As cor_transport_write for n buffers in order (asyncio's writelines).
 * 0, -EINVAL (NULL t, NULL iov with n > 0, n < 0 or above IOV_MAX, an
 * element with a NULL base and a length; logged), COR_ECLOSED, the write
 * error. */
COR_EXTERN int cor_transport_writev(cor_transport_t *t,
                                    const struct iovec *iov, int n);
/* Half-close: the peer gets EOF once the buffered bytes are sent; reading
 * goes on. 0, -EINVAL (NULL t, logged), COR_ECLOSED (closing, closed or
 * twice). */
COR_EXTERN int cor_transport_write_eof(cor_transport_t *t);
/* Graceful close: stops reading, sends what is buffered, closes, then
 * connection_lost(0) (from the loop, never inside this call). 0, -EINVAL
 * (NULL t, logged), COR_ECLOSED (closing or closed already). */
COR_EXTERN int cor_transport_close(cor_transport_t *t);
/* Closes at once, dropping buffered bytes: connection_lost(-ECONNABORTED)
 * follows from the loop. Nothing on NULL (logged) or on a transport
 * closed already. */
COR_EXTERN void cor_transport_abort(cor_transport_t *t);
/* Stops / restarts calling data_received (the kernel's buffer then fills
 * and the peer slows down). 0, -EINVAL (NULL t, logged), COR_ECLOSED
 * (closing or closed). Pausing twice or resuming a transport not paused is
 * 0 and does nothing. */
COR_EXTERN int cor_transport_pause_reading(cor_transport_t *t);
COR_EXTERN int cor_transport_resume_reading(cor_transport_t *t);
/* Bytes written and not yet taken by the kernel; 0 for NULL (logged). */
COR_EXTERN size_t cor_transport_write_buffer_size(const cor_transport_t *t);
/* pause_writing is called when the buffer goes above `high`, and
 * resume_writing when it falls back to `low` or below. 0/0 = the defaults
 * (COR_STREAM_DEFAULT_HIGH_WATER / _LOW_WATER). 0, -EINVAL (NULL t, or low
 * above high; logged). */
COR_EXTERN int cor_transport_set_write_buffer_limits(cor_transport_t *t,
                                                     size_t high, size_t low);
/* The per-connection pointer the callbacks receive. get: NULL for NULL t
 * (logged). */
COR_EXTERN void cor_transport_set_arg(cor_transport_t *t, void *arg);
COR_EXTERN void *cor_transport_get_arg(const cor_transport_t *t);
/* The transport's socket, for getsockname/getpeername/setsockopt (never to
 * read or write); -EINVAL (NULL t, logged), COR_ECLOSED once closed. */
COR_EXTERN int cor_transport_fd(const cor_transport_t *t);

#ifdef __cplusplus
}
#endif

#endif
