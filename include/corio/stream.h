/* SPDX-License-Identifier: MIT */
/* corio: streams, servers, datagrams and subprocesses (asyncio's streams).
 *
 * A stream is a connected byte pipe (TCP over IPv4/IPv6, a Unix-domain
 * socket, or a subprocess pipe) bound to the loop that made it. Reading and
 * waiting calls suspend the calling task, never the loop: they must be made
 * from a task running on that loop (COR_ENOTASK outside a task). At most one
 * task reads, one task drains and one task waits for the close of a stream
 * at a time (a second concurrent reader or drainer gets -EBUSY); a drain
 * and a wait_closed may wait at the same time.
 *
 * Threads: every call on a stream, server, datagram or process object
 * belongs to the thread of the loop that made it, except those marked "Any
 * thread". From any other thread (a task of another loop included) while
 * that loop runs, the call does nothing, logs an ERROR and returns
 * COR_ETHREAD (or NULL / 0 / false / nothing with errno 4001: see
 * corio/common.h); a task of another loop that would have to wait on the
 * object gets COR_ETHREAD even when that loop is not running.
 *
 * Under the hood, two back-ends, one behaviour:
 *   - io_uring (socket streams, by default where the kernel allows it; see
 *     cor_loop_opts.io_uring and CORIO_IO=epoll): each loop has one ring;
 *     a stream's first read arms a multishot recv on the loop's shared
 *     pool of buffers (an idle connection holds no buffer; a stream nobody
 *     reads stops taking bytes after 64 KiB), a write queues a send, and
 *     the loop submits every stream's sends and collects every completion
 *     in one io_uring_enter per iteration,
 *     gathering completions into batches under load
 *     (cor_loop_opts.io_coalesce_seconds).
 *   - epoll (pipes; sockets when io_uring is off): one edge-triggered
 *     registration per stream, reads straight into the stream's buffer,
 *     writes tried at once and buffered only for what the kernel did not
 *     take.
 * TCP_NODELAY by default, and no SIGPIPE ever (MSG_NOSIGNAL on sockets;
 * SIGPIPE held for pipe writes).
 */
#ifndef CORIO_STREAM_H
#define CORIO_STREAM_H

#include <corio/common.h>
#include <corio/loop.h>
#include <corio/task.h>

#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sockaddr;
struct addrinfo;
struct iovec;

typedef struct cor_stream cor_stream_t;
typedef struct cor_server cor_server_t;
typedef struct cor_datagram cor_datagram_t;
typedef struct cor_process cor_process_t;
struct cor_runtime;

/* A readuntil/readline whose separator was not found within the limit
 * (asyncio's LimitOverrunError): the bytes stay buffered and readable. */
#define COR_ELIMIT (-4101)
/* readexactly/readuntil hit EOF before completing (asyncio's
 * IncompleteReadError); the partial count is reported through *partial. */
#define COR_EINCOMPLETE (-4102)

/* Default limit of readuntil/readline: 64 KiB, as asyncio's. */
#define COR_STREAM_DEFAULT_LIMIT (64 * 1024)
/* Default write-buffer high-water mark (drain waits above it) and low-water
 * mark (drain resumes at or below it). */
#define COR_STREAM_DEFAULT_HIGH_WATER (64 * 1024)
#define COR_STREAM_DEFAULT_LOW_WATER (16 * 1024)

/* ------------------------------------------------------------ connecting */

/* Happy Eyeballs' default delay between connection attempts (RFC 8305). */
#define COR_HAPPY_EYEBALLS_DELAY 0.25

/* Options of a client connection; a zeroed struct (or NULL) = defaults. */
typedef struct cor_connect_opts {
  /* Seconds for resolving and connecting together. 0 (the zeroed field) =
   * the default, no limit; otherwise the rule of common.h (< 0 or
   * COR_FOREVER: no limit; NaN: -EINVAL). On expiry -ETIMEDOUT. */
  double timeout;
  /* readuntil/readline limit; 0 = COR_STREAM_DEFAULT_LIMIT. */
  size_t limit;
  /* Leave Nagle's algorithm on (TCP_NODELAY is set by default). */
  bool no_nodelay;
  /* Happy Eyeballs (RFC 8305) when a name resolves to several addresses:
   * seconds to wait for one attempt before starting the next one beside it
   * (the addresses alternate between IPv6 and IPv4, starting with the
   * first family resolved); the first connection made wins and the others
   * are closed. 0 (the zeroed field) = the default, 0.25 s; < 0 = off (one
   * address after another, as asyncio without happy_eyeballs_delay). */
  double happy_eyeballs_delay;
  /* Bind the socket to this numeric local address first (asyncio's
   * local_addr); NULL = any. Addresses of the other family are skipped. */
  const char *local_addr;
  /* With local_addr: the local port (0 = any). */
  int local_port;
  /* TLS (corio/tls.h): a client context; cor_open_connection_opts then
   * does the handshake before it returns (within timeout), failing with
   * COR_ETLS (the stream is closed and freed). NULL = plain TCP. A
   * server's context here: -EINVAL, logged. */
  struct cor_tls_ctx *tls;
  /* SNI and the name the certificate must match; NULL = the host given. */
  const char *server_hostname;
} cor_connect_opts;

/* Inside a task: connects to host:port over TCP (IPv4 or IPv6) and stores a
 * new stream in *out, which the caller owns (cor_stream_close, then
 * cor_stream_free; see there for the report of a stream never closed). host is a numeric address ("127.0.0.1", "::1") or a name;
 * names are resolved on the resolver pool (cor_getaddrinfo), never
 * blocking the loop; several resolved addresses are raced by Happy
 * Eyeballs (opts->happy_eyeballs_delay). port is a number or a service
 * name.
 * Returns 0; -EINVAL (NULL arguments); -ECONNREFUSED and other connect
 * errors (negated errno); -ETIMEDOUT (opts->timeout); -ENOENT when the name
 * does not resolve; -ECANCELED when the task is cancelled; COR_ENOTASK
 * outside a task; -ENOMEM. */
COR_EXTERN int cor_open_connection(const char *host, const char *port,
                                   cor_stream_t **out);
COR_EXTERN int cor_open_connection_opts(const char *host, const char *port,
                                        const cor_connect_opts *opts,
                                        cor_stream_t **out);
/* Inside a task: getaddrinfo(3) without blocking the loop. Names go to a
 * bounded pool of resolver threads shared by every loop (at most 4 at
 * once; more lookups queue); a numeric host and port are answered at once.
 * hints may be NULL (AF_UNSPEC, AI_ADDRCONFIG); host or port may be NULL,
 * not both. On success *out is getaddrinfo's list: the caller frees it with
 * freeaddrinfo(3). Returns 0; -ENOENT (no such name or service), -EAGAIN
 * (temporary failure: try later), -EAFNOSUPPORT, -ENOMEM, -EIO (a
 * resolver failure), -EINVAL (bad hints; NULL out, host and port both NULL:
 * logged); -ECANCELED when the task is cancelled (it returns at once; a
 * lookup still queued is dropped, one already running finishes unseen);
 * COR_ENOTASK outside a task. *out is NULL on every error. */
COR_EXTERN int cor_getaddrinfo(const char *host, const char *port,
                               const struct addrinfo *hints,
                               struct addrinfo **out);
/* Inside a task: getnameinfo(3) on the resolver pool (NI_NUMERICHOST with
 * NI_NUMERICSERV is answered at once). host/serv receive NUL-terminated
 * strings of at most hostlen/servlen bytes (a NULL buffer with length 0 is
 * not asked for). Returns 0; -ENOENT (no name, with NI_NAMEREQD),
 * -ENAMETOOLONG (a buffer too small), -EAGAIN, -EAFNOSUPPORT, -ENOMEM,
 * -EIO; -EINVAL (logged: sa NULL, salen 0 or above sockaddr_storage, a NULL
 * buffer with a length, nothing asked for); -ECANCELED; COR_ENOTASK. */
COR_EXTERN int cor_getnameinfo(const struct sockaddr *sa, socklen_t salen,
                               char *host, size_t hostlen, char *serv,
                               size_t servlen, int flags);

/* Inside a task: as cor_open_connection, to a Unix-domain socket at path
 * (a leading '@' names an abstract socket). -ENAMETOOLONG for long paths. */
COR_EXTERN int cor_open_unix_connection(const char *path,
                                        const cor_connect_opts *opts,
                                        cor_stream_t **out);

/* Wraps an fd the caller opened (a connected socket or a pipe end) in a
 * stream on `loop` (NULL: the running loop); the stream owns the fd from
 * then on, even on failure, and the caller owns the stream (close, then
 * free, as a connection's). The fd is made non-blocking. NULL with errno
 * EINVAL, ENOMEM, or an epoll error (EPERM for regular files). Owner
 * thread (else NULL, errno 4001, fd closed). */
COR_EXTERN cor_stream_t *cor_stream_from_fd(cor_loop_t *loop, int fd);

/* ------------------------------------------------------------ reading */

/* Inside a task: reads up to n bytes (at least 1, waiting if none is
 * buffered). Returns the count, 0 at EOF (and for n == 0), or a negative
 * code: -ECONNRESET and other socket errors, -ETIMEDOUT (read or idle
 * time-out: see cor_stream_set_timeouts), -ECANCELED, -EBUSY (another task
 * is reading), COR_ECLOSED after cor_stream_close, COR_ENOTASK. Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN ssize_t cor_stream_read(cor_stream_t *s, void *buf, size_t n);

/* Inside a task: reads exactly n bytes. Returns n; on EOF first returns
 * COR_EINCOMPLETE and stores the bytes read so far (which are consumed and
 * copied into buf) in *partial (partial may be NULL); otherwise as
 * cor_stream_read. Owner thread (else COR_ETHREAD). */
COR_EXTERN ssize_t cor_stream_readexactly(cor_stream_t *s, void *buf,
                                          size_t n, size_t *partial);

/* Inside a task: reads up to and including the first occurrence of the
 * separator sep[0..seplen) and copies it to buf (capacity cap). Returns the
 * count (separator included). Errors:
 *  - COR_ELIMIT when no separator is found within the stream's limit
 *    (cor_stream_set_limit) or within cap bytes: nothing is consumed, the
 *    bytes stay buffered (read them with cor_stream_read);
 *  - COR_EINCOMPLETE at EOF before a separator: the partial bytes are
 *    consumed, copied to buf (up to cap) and counted in *partial;
 *  - otherwise as cor_stream_read. -EINVAL for an empty separator.
 * Owner thread (else COR_ETHREAD). */
COR_EXTERN ssize_t cor_stream_readuntil(cor_stream_t *s, const void *sep,
                                        size_t seplen, void *buf, size_t cap,
                                        size_t *partial);
/* As readuntil with "\n", except that at EOF the partial line is returned
 * as a success (0 when nothing was left), as asyncio's readline. Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN ssize_t cor_stream_readline(cor_stream_t *s, void *buf, size_t cap);

/* Zero-copy reading, inside a task: waits until at least `min` bytes are
 * buffered (or EOF), then stores a pointer to the buffered bytes in *data
 * and returns how many are buffered (possibly fewer than min at EOF, 0 at
 * EOF with nothing left). The bytes stay valid until the next call on the
 * stream; consume them with cor_stream_consume. min is capped by the limit
 * (a larger min returns COR_ELIMIT). Errors as cor_stream_read. Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN ssize_t cor_stream_peek(cor_stream_t *s, size_t min,
                                   const char **data);
/* Drops n buffered bytes (n <= what peek reported). Owner thread (else
 * nothing done, errno 4001). */
COR_EXTERN void cor_stream_consume(cor_stream_t *s, size_t n);
/* Bytes buffered and not yet read; no syscall. Owner thread (else 0, errno
 * 4001). */
COR_EXTERN size_t cor_stream_buffered(const cor_stream_t *s);
/* True once EOF was seen and every buffered byte was read. Owner thread
 * (else false, errno 4001). */
COR_EXTERN bool cor_stream_at_eof(const cor_stream_t *s);

/* ------------------------------------------------------------ writing */

/* Writes n bytes. With epoll (pipes; sockets when io_uring is off): what
 * the kernel takes at once is sent now (one send), the rest is copied to
 * the stream's write buffer and sent as the socket drains. With io_uring
 * (socket streams by default, see cor_loop_opts.io_uring): the bytes are
 * copied to the write buffer and handed to the kernel by the loop's next
 * io_uring_enter, i.e. as soon as the calling task or callback gives the
 * loop back (one system call for every stream's writes of that moment);
 * a peer in the same thread sees them only after that. Either way no task
 * is needed afterwards. Never blocks, never waits: call cor_stream_drain
 * to apply back-pressure. Returns 0, or the stream's error: -EPIPE or
 * -ECONNRESET once the peer is gone (never SIGPIPE; with io_uring the error
 * of a send shows in the next write or drain), COR_ECLOSED after close or
 * write_eof, -ENOMEM. Owner thread, any task or callback (else
 * COR_ETHREAD). */
COR_EXTERN int cor_stream_write(cor_stream_t *s, const void *buf, size_t n);
/* Inside a task: waits while the write buffer holds more than the
 * high-water mark, until it is at or below the low-water mark (see
 * cor_stream_set_write_buffer_limits); returns at once otherwise. Returns
 * 0, the stream's write error (-EPIPE, -ECONNRESET), -ETIMEDOUT (idle
 * time-out), -ECANCELED, COR_ENOTASK. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_stream_drain(cor_stream_t *s);
/* As cor_stream_write for the n buffers of iov, in order (asyncio's
 * writelines): on a socket with nothing queued, one sendmsg for all of them
 * and no copy; what the kernel does not take is buffered. 0; the stream's
 * error; COR_ECLOSED; -ENOMEM; -EINVAL (logged: NULL s, NULL iov with
 * n > 0, n < 0 or above IOV_MAX, an element with a NULL base and a length,
 * lengths that overflow). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_stream_writev(cor_stream_t *s, const struct iovec *iov,
                                 int n);
/* Inside a task: sends `count` bytes (0: up to the end of the file) of fd
 * from `offset` (fd's own file position is neither used nor moved), after
 * everything written before, and returns when the kernel took them all
 * (asyncio's loop.sendfile). Zero-copy with sendfile(2) on socket streams,
 * both back-ends; a copy through the stream's buffer for pipe streams and
 * for a source sendfile(2) refuses (not a regular file). Returns the bytes
 * sent (less than count when the file ends first); the stream's error
 * (-EPIPE, -ECONNRESET...); -EBADF or another read error of fd (-ESPIPE
 * for a pipe or socket: the source must be readable at an offset);
 * COR_ECLOSED; -ETIMEDOUT (the stream's idle time-out); -ECANCELED (bytes
 * already sent stay sent); COR_ENOTASK outside a task; -EINVAL (logged:
 * NULL s, negative fd or offset). No other write may run on the stream
 * until it returns (their bytes would land inside the file's). Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN ssize_t cor_stream_sendfile(cor_stream_t *s, int fd, off_t offset,
                                       size_t count);
/* Bytes in the write buffer (not yet taken by the kernel). Owner thread
 * (else 0, errno 4001). */
COR_EXTERN size_t cor_stream_write_buffered(const cor_stream_t *s);
/* Shuts the write side down once the buffer is flushed (TCP FIN); reading
 * stays possible. 0, COR_ECLOSED, -ENOTSOCK for pipes (use close). Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN int cor_stream_write_eof(cor_stream_t *s);

/* ------------------------------------------------------------ settings */

/* The readuntil/readline limit (0: the default). Returns 0, -EINVAL. Owner
 * thread (else COR_ETHREAD), as the two settings below. */
COR_EXTERN int cor_stream_set_limit(cor_stream_t *s, size_t limit);
/* Write-buffer marks: drain waits above high, resumes at or below low
 * (low <= high; 0, 0: the defaults). 0, -EINVAL. */
COR_EXTERN int cor_stream_set_write_buffer_limits(cor_stream_t *s,
                                                  size_t high, size_t low);
/* Time-outs in seconds, 0 = none (the default):
 *  - read_timeout bounds each reading call (read, readexactly, readuntil,
 *    readline, peek) from its start, so a peer that sends one byte a minute
 *    cannot hold a readuntil forever;
 *  - idle_timeout bounds the time without any byte received or sent while
 *    a task waits on the stream (reading or draining).
 * A call that runs out returns -ETIMEDOUT; the stream stays usable.
 * Returns 0, -EINVAL (negative or NaN). */
COR_EXTERN int cor_stream_set_timeouts(cor_stream_t *s, double read_timeout,
                                       double idle_timeout);

/* The socket or pipe fd (for setsockopt and the like; do not close it);
 * -EINVAL (NULL). Owner thread (else COR_ETHREAD), as the two address calls below. */
COR_EXTERN int cor_stream_fd(const cor_stream_t *s);
/* The local and peer addresses of a socket stream: copies up to *len bytes
 * and sets *len as getsockname/getpeername do. 0 or a negated errno. */
COR_EXTERN int cor_stream_sockname(const cor_stream_t *s, struct sockaddr *sa,
                                   unsigned *len);
COR_EXTERN int cor_stream_peername(const cor_stream_t *s, struct sockaddr *sa,
                                   unsigned *len);

/* ------------------------------------------------------------ closing */

/* Closes the stream: no more reads or writes (they return COR_ECLOSED); a
 * task waiting on the stream is woken with COR_ECLOSED; buffered writes are
 * still sent, and the fd is closed once they are (or at once when there are
 * none, or on an error). Every stream the application made must be closed
 * before it is freed (see cor_stream_free). Idempotent: 0, then
 * COR_ECLOSED. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_stream_close(cor_stream_t *s);
/* Inside a task: waits until the fd is closed after cor_stream_close (the
 * buffered writes were flushed or failed). 0, -ETIMEDOUT (idle time-out),
 * -ECANCELED, -EINVAL when close was not called, COR_ENOTASK. Owner thread
 * (else COR_ETHREAD). */
COR_EXTERN int cor_stream_wait_closed(cor_stream_t *s);
/* Frees the stream, closing it at once if it is still open (buffered
 * writes are dropped). A stream the application made (cor_open_connection*,
 * cor_stream_from_fd) and never passed to cor_stream_close is reported
 * first, as asyncio's ResourceWarning: WARNING "unclosed stream <Stream
 * fd=7 peer=127.0.0.1:5555 local=127.0.0.1:41234 buffered=0
 * write_buffered=0>" through the loop's exception handler; in debug mode
 * the repr adds "created at file.c:N" (the connecting call) and the record
 * "Object allocated at (most recent call last):" with the creation
 * backtrace. Its fd is closed all the same. A stream never freed is
 * reported the same way when its loop is freed, or at exit while its loop
 * lives. A stream handed to a server handler belongs to the server: do not
 * free it. No task may be waiting on it. Owner thread (else
 * nothing done, errno 4001). */
COR_EXTERN void cor_stream_free(cor_stream_t *s);

/* ------------------------------------------------------------ servers */

/* Server options; a zeroed struct gives the defaults. */
typedef struct cor_server_opts {
  /* Address to listen on: a numeric IPv4/IPv6 address or a name (resolved
   * once, at start: from a task without blocking the loop, elsewhere with a
   * blocking getaddrinfo), bound on every address it resolves to (at most
   * 8; with port 0 they all take the port the first one got). NULL =
   * "127.0.0.1"; "" = every interface ("0.0.0.0" and "::", as asyncio's
   * host=None). */
  const char *host;
  /* Port; 0 = any free port (see cor_server_port). */
  int port;
  /* A Unix-domain socket path instead of host/port ('@' = abstract). A
   * stale socket file at path is removed first. */
  const char *path;
  /* listen() backlog; 0 = 4096 (capped by the kernel's somaxconn). */
  int backlog;
  /* SO_REUSEPORT, so that several listeners (one per loop) share the port
   * and the kernel spreads connections among them. */
  bool reuseport;
  /* Most concurrent connections (handlers running); 0 = no limit. Past it,
   * new connections wait in the kernel backlog, or are accepted and closed
   * at once when close_excess is set. A runtime server gives each loop's
   * listener its share (max_connections / loops, rounded up). */
  unsigned max_connections;
  bool close_excess;
  /* Per-connection time-outs (see cor_stream_set_timeouts); 0 = none. */
  double idle_timeout;
  double read_timeout;
  /* readuntil/readline limit of each connection; 0 = the default. */
  size_t limit;
  /* Task stack of each handler; 0 = the loop's default. */
  size_t stack_size;
  /* Passed to the handler: cor_server_handler_arg(stream) returns it. */
  void *arg;
  /* Adopt this listening socket instead of making one (socket activation,
   * hot restart): a bound, listening SOCK_STREAM socket the server then
   * owns (made non-blocking and close-on-exec; closed with the server; a
   * runtime server gives each loop a dup of it). 0 = none (so fd 0 cannot
   * be adopted); host, port, path and reuseport are ignored. Not a
   * listening stream socket: -EINVAL, logged. */
  int fd;
  /* An IPv6 listener takes IPv4 connections too (IPV6_V6ONLY off), so
   * host "::" serves both families on one socket. Default: IPv6 only, so
   * a name that resolves to both "::" and "0.0.0.0" binds both. */
  bool dual_stack;
  /* SO_KEEPALIVE on every accepted connection. */
  bool keepalive;
  /* TLS (corio/tls.h): a server context; each connection's handshake runs
   * in its task before the handler, which then sees plaintext. A handshake
   * that fails or times out closes the connection (logged at DEBUG), and
   * the handler is not called. The server holds a reference to it. A
   * client's context here: NULL with errno EINVAL, logged. */
  struct cor_tls_ctx *tls;
  /* Seconds for that handshake; 0 = 10 s; < 0 or COR_FOREVER = none;
   * NaN: -EINVAL. */
  double tls_handshake_timeout;
} cor_server_opts;

/* Starts listening on `loop` (NULL: the running loop) and, for each
 * accepted connection, runs handler(stream, &result) as a new task with the
 * connection's stream as its argument. The stream belongs to the server:
 * when the handler returns, the server flushes and closes it (bounded by
 * the idle time-out, else 30 s) and frees it. A handler's error code other
 * than the peer's ordinary ways of leaving (-ECONNRESET, -EPIPE,
 * -ETIMEDOUT, -ECANCELED, COR_ECLOSED, COR_EINCOMPLETE, COR_ETLS) is logged as an
 * ERROR. Running out of fds in accept (EMFILE, ENFILE) pauses accepting for
 * 100 ms and logs one WARNING per server. Returns the server, NULL with
 * errno EINVAL (NULL handler, no loop), EADDRINUSE and other bind/listen
 * errors, ENOMEM. Owner thread (else NULL, errno 4001). */
COR_EXTERN cor_server_t *cor_start_server(cor_loop_t *loop,
                                          const cor_server_opts *opts,
                                          cor_fn handler);
/* A listener on every loop of the runtime (opts->reuseport is forced on),
 * each accepting on its own loop, so the kernel spreads connections over
 * cores. Returns once every loop listens. NULL with errno as
 * cor_start_server, or EINVAL (NULL runtime). Any thread but a loop thread
 * of rt: from one it would wait for itself, so it returns NULL with errno
 * 4001 (-COR_ETHREAD, as every runtime call made from its own loops) and
 * logs an ERROR. */
COR_EXTERN cor_server_t *cor_runtime_start_server(struct cor_runtime *rt,
                                                  const cor_server_opts *opts,
                                                  cor_fn handler);

/* The port the server listens on (useful with port 0), or -1 for Unix
 * sockets. Any thread. */
COR_EXTERN int cor_server_port(const cor_server_t *srv);
/* opts->arg of the server a handler's stream belongs to (NULL otherwise).
 * The stream's owner thread (else NULL, errno 4001). */
COR_EXTERN void *cor_server_handler_arg(const cor_stream_t *s);
/* Live connections (handlers running); any thread (relaxed read). */
COR_EXTERN unsigned cor_server_connections(const cor_server_t *srv);

/* Stops accepting and closes the listening socket(s) (asyncio's
 * Server.close): live connections go on. Every server must be closed
 * before it is freed (see cor_server_free). Idempotent: 0, then COR_ECLOSED.
 * Owner thread (else COR_ETHREAD); for a runtime server any thread (the listeners are closed
 * on their own loops before it returns, except when called from one of
 * them, where they close soon after). */
COR_EXTERN int cor_server_close(cor_server_t *srv);
/* Cancels every running handler (asyncio's Server.abort_clients): each
 * sees -ECANCELED from the call it waits in. Same threads as close (else
 * COR_ETHREAD). */
COR_EXTERN int cor_server_close_clients(cor_server_t *srv);
/* Inside a task (single-loop server, its loop) or on any thread that is
 * not one of the runtime's loops (runtime server): waits until the server
 * is closed and every handler returned, for at most `timeout` seconds
 * (< 0 or INFINITY: no limit). 0, -ETIMEDOUT, -EINVAL (close not called),
 * -ECANCELED, COR_ENOTASK; COR_ETHREAD from another thread than the
 * single-loop server's (logged) or from one of the runtime's loops. */
COR_EXTERN int cor_server_wait_closed(cor_server_t *srv, double timeout);
/* Frees a server. One still open is reported (asyncio's ResourceWarning:
 * WARNING "unclosed server <Server sockets=[127.0.0.1:8080]
 * connections=0>", one address per listener, through the exception handler
 * of its (first) loop; in debug mode with "created at file.c:N" and the
 * creation backtrace), then closed; handlers still running are cancelled
 * and the memory is freed when the last one returned. A server never freed
 * and never closed is reported at exit. Same threads as close (else nothing
 * done, errno 4001). */
COR_EXTERN void cor_server_free(cor_server_t *srv);

/* ------------------------------------------------------------ datagrams */

typedef struct cor_datagram_opts {
  /* Local address to bind (NULL: none, or "0.0.0.0"/"::" to match remote).
   * A numeric address or a host name (see cor_open_datagram). */
  const char *local_host;
  int local_port;
  /* Remote address to connect to (NULL: unconnected; pass an address to
   * cor_datagram_send or cor_datagram_sendto). Numeric or a host name. */
  const char *remote_host;
  int remote_port;
  bool reuseport;
  /* SO_BROADCAST: sends to a broadcast address allowed (else -EACCES). */
  bool broadcast;
  /* SO_REUSEADDR before bind (several receivers of one multicast port). */
  bool reuseaddr;
} cor_datagram_opts;

/* One datagram of cor_datagram_recv_many / cor_datagram_send_many.
 *   recv_many: buf and cap are the caller's (cap bytes at buf); the call
 *     stores len (the bytes stored, <= cap), truncated (the datagram was
 *     longer than cap: the rest is lost, as with cor_datagram_recv), and
 *     the sender in addr / addrlen.
 *   send_many: buf and len are the bytes to send (cap is not read); addr /
 *     addrlen the destination, addrlen 0 = the connected peer.
 * The struct carries its own address storage: an array of them needs no
 * other memory. */
typedef struct cor_dgram_msg {
  void *buf;
  size_t cap;
  size_t len;
  struct sockaddr_storage addr;
  unsigned addrlen;
  bool truncated;
} cor_dgram_msg;

/* A UDP endpoint on `loop` (NULL: the running loop), the caller's to close
 * (cor_datagram_close) and free (cor_datagram_free). One still open when its loop is freed, or at exit,
 * is reported: WARNING "unclosed datagram endpoint <Datagram fd=7
 * local=127.0.0.1:5353 peer=127.0.0.1:53>" (with "created at file.c:N" and
 * the creation backtrace in debug mode).
 * Host names: numeric addresses are parsed in place. A name is resolved
 * inside a task without blocking the loop (the resolver pool of
 * cor_getaddrinfo; the task waits); outside a task (before the loop runs,
 * as cor_start_server does) by a blocking getaddrinfo in the call. With
 * both hosts given the first local and remote addresses of one family are
 * taken; with remote only, the first remote address (and the wildcard of
 * its family when local_port is set).
 * NULL with errno EINVAL (no address at all, a port outside 0..65535),
 * EADDRNOTAVAIL (a name that does not resolve, or local and remote with no
 * family in common), ECANCELED (the task was cancelled while the name was
 * resolved), EAGAIN (the name service failed for now, in a task), EACCES /
 * EADDRINUSE and other socket, setsockopt, bind and
 * connect errors, ENOMEM. Owner thread (else NULL, errno 4001). */
COR_EXTERN cor_datagram_t *cor_open_datagram(cor_loop_t *loop,
                                             const cor_datagram_opts *opts);
/* Inside a task: receives one datagram (truncated to n bytes), waiting for
 * one if none is queued; stores the sender in from/fromlen when given.
 * Returns its length, -ETIMEDOUT after `timeout` seconds (the one
 * rule of common.h: 0 = only a datagram already queued, < 0 or COR_FOREVER
 * = no limit, NaN = -EINVAL), -ECANCELED, COR_ECLOSED, COR_ENOTASK, or a negated errno (-ECONNREFUSED
 * after an ICMP error on a connected endpoint). Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN ssize_t cor_datagram_recv(cor_datagram_t *d, void *buf, size_t n,
                                     struct sockaddr *from, unsigned *fromlen,
                                     double timeout);
/* Sends one datagram to the connected peer (to NULL) or to `to`. Never
 * waits: a full socket buffer drops the datagram and returns -EAGAIN, as
 * UDP may. 0 or a negated errno; COR_ECLOSED. Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_datagram_send(cor_datagram_t *d, const void *buf, size_t n,
                                 const struct sockaddr *to, unsigned tolen);
/* As cor_datagram_send, to host:port: a numeric address at once from
 * anywhere; a host name resolved inside a task without blocking the loop
 * (the task waits; the first address of the endpoint's family is taken;
 * nothing is cached). 0; -EINVAL (logged: d or host NULL, buf NULL with
 * n > 0, port outside 0..65535); COR_ENOTASK (a name outside a task);
 * -EADDRNOTAVAIL (the name has no address of the endpoint's family);
 * -ECANCELED (cancelled while resolving); then cor_datagram_send's codes.
 * Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_datagram_sendto(cor_datagram_t *d, const void *buf,
                                   size_t n, const char *host, int port);
/* Inside a task: waits for at least one datagram as cor_datagram_recv
 * does (same time-out rule), then takes up to n already queued without
 * waiting again (recvmmsg); fills msgs[0..r-1] (see cor_dgram_msg).
 * Returns r >= 1, 0 when n is 0 (nothing is read), or as cor_datagram_recv:
 * -ETIMEDOUT, -ECANCELED, COR_ECLOSED, COR_ENOTASK, a negated errno (one
 * that comes after some datagrams were taken is reported by the next
 * call). -EINVAL (logged): d NULL, msgs NULL with n > 0, a msg with buf
 * NULL and cap > 0, NaN time-out. Owner thread (else COR_ETHREAD). */
COR_EXTERN ssize_t cor_datagram_recv_many(cor_datagram_t *d,
                                          cor_dgram_msg *msgs, unsigned n,
                                          double timeout);
/* Sends msgs[0..n-1] in order (sendmmsg), each to its addr (addrlen 0: the
 * connected peer). Never waits, as cor_datagram_send: returns how many
 * were sent, from the first; fewer than n when the socket buffer filled
 * (the rest are not sent: send them again or drop them) or an error came
 * after the first. -EAGAIN when the buffer is full before the first, or
 * the first's negated errno (-EACCES: a broadcast address without
 * opts.broadcast, -EMSGSIZE, -EDESTADDRREQ, ...); 0 when n is 0;
 * COR_ECLOSED. -EINVAL (logged): d NULL, msgs NULL with n > 0, n > INT_MAX,
 * a msg with buf NULL and len > 0, addrlen larger than addr. Owner thread
 * (else COR_ETHREAD). */
COR_EXTERN int cor_datagram_send_many(cor_datagram_t *d,
                                      const cor_dgram_msg *msgs, unsigned n);
/* Multicast. `group` is a numeric multicast address of the endpoint's
 * family (IPv4 224.0.0.0/4 or IPv6 ff00::/8); `iface` chooses the
 * interface: NULL = the kernel's choice (by route), else an interface name
 * ("lo", "eth0"), or for IPv4 a numeric address of the interface
 * ("127.0.0.1"). join: IP_ADD_MEMBERSHIP / IPV6_JOIN_GROUP; leave:
 * IP_DROP_MEMBERSHIP / IPV6_LEAVE_GROUP. 0; -EINVAL (logged: d or group
 * NULL, a group that is not a numeric multicast address, an iface that is
 * neither an interface name nor, for IPv4, an address); -EAFNOSUPPORT (the
 * group's family is not the endpoint's); -ENODEV (no such interface, or
 * no route for the group with iface NULL); -EADDRINUSE (already joined
 * there); -EADDRNOTAVAIL (leave: not joined); COR_ECLOSED; other negated
 * errnos of setsockopt. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_datagram_join_group(cor_datagram_t *d, const char *group,
                                       const char *iface);
COR_EXTERN int cor_datagram_leave_group(cor_datagram_t *d, const char *group,
                                        const char *iface);
/* Multicast hop limit of sent datagrams (IP_MULTICAST_TTL /
 * IPV6_MULTICAST_HOPS; the kernel's default is 1). 0; -EINVAL (logged: d
 * NULL, ttl outside 0..255); COR_ECLOSED. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_datagram_set_multicast_ttl(cor_datagram_t *d, int ttl);
/* Whether datagrams sent to a group this host joined are delivered here
 * too (IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP; the kernel's default is
 * on). 0; -EINVAL (logged: d NULL); COR_ECLOSED. Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_datagram_set_multicast_loop(cor_datagram_t *d, bool on);
/* The bound port; -EINVAL (NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_datagram_port(const cor_datagram_t *d);
/* Closes the socket; the endpoint stays allocated until cor_datagram_free.
 * A task waiting in recv wakes with COR_ECLOSED; later calls get
 * COR_ECLOSED. Idempotent: a second close returns 0. -EINVAL (NULL). Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN int cor_datagram_close(cor_datagram_t *d);
/* Frees the endpoint. One never closed is closed here and reported as
 * unclosed (the WARNING above). Freed while a task still waits in recv, it
 * is leaked rather than freed under that task (an ERROR is logged). NULL
 * does nothing. Owner thread (else nothing done, errno 4001). */
COR_EXTERN void cor_datagram_free(cor_datagram_t *d);

/* ------------------------------------------------------------ processes */

enum {
  COR_STDIO_INHERIT = 0, /* the child shares the parent's fd */
  COR_STDIO_PIPE,        /* a pipe; the parent's end is a stream */
  COR_STDIO_DEVNULL,     /* /dev/null */
  COR_STDIO_STDOUT,      /* stderr only: into the same place as stdout */
};

typedef struct cor_subprocess_opts {
  int stdin_mode, stdout_mode, stderr_mode; /* COR_STDIO_*; 0 = inherit */
  const char *cwd;                          /* NULL: the parent's */
  char *const *envp;                        /* NULL: the parent's environ */
} cor_subprocess_opts;

/* Starts argv[0] (searched in PATH when it has no '/') with arguments argv
 * (NULL-terminated) on the running loop. Must be called from a task or
 * callback of a running loop (any loop, any thread). Stores the process in
 * *out. Returns 0; -ENOENT (no such program: detected before returning),
 * -EACCES and other exec errors; -EINVAL; -ENOMEM; COR_ENOTASK when no loop
 * runs on this thread. The child's exit is watched through a pidfd: no
 * SIGCHLD handler is installed and no other child is reaped. */
COR_EXTERN int cor_subprocess_exec(const char *const argv[],
                                   const cor_subprocess_opts *opts,
                                   cor_process_t **out);
/* As asyncio.create_subprocess_shell: runs `/bin/sh -c cmd` as
 * cor_subprocess_exec runs a program, with the same options, rules and
 * results (a command the shell cannot find or parse is not an error here:
 * the shell exits 127 or 2, seen by cor_process_wait). -EINVAL (logged)
 * for a NULL cmd or out. */
COR_EXTERN int cor_subprocess_shell(const char *cmd,
                                    const cor_subprocess_opts *opts,
                                    cor_process_t **out);
/* The parent's ends of the pipes asked for, or NULL. Owned by the process
 * object (freed with it); closing them is fine (cor_stream_close). Owner
 * thread: the thread of the loop that started it (else NULL, errno 4001). */
COR_EXTERN cor_stream_t *cor_process_stdin(cor_process_t *p);
COR_EXTERN cor_stream_t *cor_process_stdout(cor_process_t *p);
COR_EXTERN cor_stream_t *cor_process_stderr(cor_process_t *p);
/* The child's pid; -EINVAL (NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_process_pid(const cor_process_t *p);
/* Closes the parent's ends of the pipes (each as cor_stream_close: a reader
 * of the child's output sees the end). The child is not signalled and
 * cor_process_wait still works; free the object with cor_process_free.
 * Idempotent: 0; -EINVAL (NULL). Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_process_close(cor_process_t *p);
/* Inside a task: waits for the child to exit and stores its status in
 * *status: the exit code (0-255), or -N when killed by signal N (as
 * asyncio's returncode). Returns 0, -ETIMEDOUT after `timeout` seconds (the
 * rule of common.h: 0 = do not wait, < 0 or COR_FOREVER = no limit, NaN =
 * -EINVAL), -ECANCELED, COR_ENOTASK. Returns at once once exited. Owner
 * thread (else COR_ETHREAD). */
COR_EXTERN int cor_process_wait(cor_process_t *p, double timeout, int *status);
/* Inside a task, as asyncio's Process.communicate: writes in[0..n) to the
 * child's stdin and closes it, reads its stdout and stderr to EOF, then
 * waits for it to exit. The exit status is then asyncio's returncode:
 * cor_process_wait(p, 0, &status) returns it at once, as its header says
 * (a return value could not carry it: -9 is both SIGKILL and -EBADF).
 * The writing and both readings run at once (one helper task per pipe on
 * the process's loop), so a child that fills stdout and stderr before
 * reading all its input never deadlocks.
 *  - stdin: closed even when n is 0 (in may then be NULL); a child that
 *    exits without reading it all is not an error (EPIPE is ignored, as
 *    asyncio does). in with n > 0 and no stdin pipe: -EINVAL (logged).
 *  - stdout, stderr: every pipe that exists is read to EOF (as asyncio;
 *    with a NULL out or err, those bytes are discarded); a stream the
 *    caller does not pipe (not COR_STDIO_PIPE) leaves *out or *err empty.
 *  - Ownership: *out and *err receive malloc'd buffers the caller frees
 *    with free(out->data); data is NUL-terminated (the NUL not counted in
 *    len) and NULL with len 0 when nothing was read. Each must hold
 *    {NULL, 0} or an earlier such buffer when passed: that one is freed
 *    first (as cor_bytes_set). Bad arguments leave them untouched.
 * `timeout` covers the whole call (the rule of common.h: 0 = do not wait,
 * < 0 or COR_FOREVER = no limit, NaN = -EINVAL). Returns 0 (the child
 * exited; its output is in *out and *err); -ETIMEDOUT when it passed
 * first: the child is NOT killed (as asyncio: kill and wait for it
 * yourself), stdin may be left open and partly written, and what was read
 * so far is in *out and *err; -ECANCELED when the task is cancelled
 * (what was read so far is kept likewise); a read or write error of a
 * pipe (the first one seen; the other helpers are stopped), COR_ECLOSED
 * when the caller closed a pipe before, -EBUSY when another task reads one
 * of them, -ENOMEM; -EINVAL (logged: NULL p, NULL in with n > 0, out and
 * err the same non-NULL pointer, NaN timeout); COR_ENOTASK outside a task.
 * Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_process_communicate(cor_process_t *p, const void *in,
                                       size_t n, cor_bytes_t *out,
                                       cor_bytes_t *err, double timeout);
/* Sends sig to the child (SIGKILL for kill, SIGTERM for terminate) through
 * its pidfd: never a recycled pid. 0, -ESRCH once it exited and was
 * reaped. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_process_kill(cor_process_t *p, int sig);
/* Frees the process object and its pipe streams (closing them: the
 * process owns them, so they are not reported unclosed). One whose child
 * still runs is reported at WARNING through the loop's exception handler
 * ("subprocess N is still running", as asyncio's ResourceWarning); the
 * child is left running and is not reaped. Owner thread (else nothing done,
 * errno 4001), while the loop lives. */
COR_EXTERN void cor_process_free(cor_process_t *p);

#ifdef __cplusplus
}
#endif
#endif
