/* SPDX-License-Identifier: MIT */
/* Bad arguments, call by call: every public call that takes a pointer is
 * made with NULL (and a few with another clearly invalid value: a negative
 * timeout, a zero-length separator, an uncatchable signal) and must return
 * its documented code (-EINVAL, or NULL with errno EINVAL), log exactly one
 * ERROR record naming the call and the argument, and not crash. Calls that
 * document NULL as accepted (a getter's "0 for NULL", a free of NULL) are in
 * the table too, as quiet rows: their neutral value, no record. A second
 * test reads the headers of include/corio and fails when a declared cor_*
 * call is neither in the table nor in the exemption list with a reason. */
#include "testutil.h"

#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>


#include "logcap.h"
#include "apilist.h"

/* ------------------------------------------------------------ fixtures */

static cor_loop_t *g_loop;     /* a loop nobody runs: any one thread may use it */
static cor_stream_t *g_s;      /* one end of a socketpair, on g_loop */
static cor_future_t *g_fut;    /* pending, on g_loop */
static cor_future_t *g_fut2;   /* receives nothing: every row fails first */
static struct addrinfo *g_ai;  /* receives NULL */
static cor_stream_t *g_out;    /* receives nothing: every row fails first */
static char g_buf[16];
static const char *g_data;
static cor_loop_stats g_stats;
static cor_loop_counters g_counters;
static const char *const g_noargv[] = {NULL};
static cor_bytes_t g_bytes;    /* receives nothing: every row fails first */
static const char *volatile g_nullfmt; /* NULL, hidden from -Wformat */
static cor_queue_t *g_q;         /* an empty queue on g_loop */
static void *g_item;
/* A client TLS context, made on first use, for the rows that need one. */
static cor_tls_ctx_t *g_tls_ctx;
static cor_tls_ctx_t *g_tls(void) {
  if (g_tls_ctx == NULL)
    g_tls_ctx = cor_tls_ctx_new(&(cor_tls_opts){.insecure = true});
  return g_tls_ctx;
}
static const cor_protocol g_proto; /* every callback NULL */

static void cb(void *arg) { (void)arg; }
static void done_cb(cor_future_t *f, void *arg) {
  (void)f;
  (void)arg;
}
static void cf_done_cb(cor_cfuture_t *cf, void *arg) {
  (void)cf;
  (void)arg;
}
static bool pred_false(void *arg) {
  (void)arg;
  return false;
}
static int body(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

/* ------------------------------------------------------------ the table */

/* Kinds: CODE returns `want` (a code) and logs one record; PTR returns NULL
 * with errno EINVAL and logs one record; LOGV returns `want` (a call with no
 * room for a code) and logs one record; QUIET returns `want` and logs
 * nothing (NULL documented as accepted). Where: P from a plain thread with
 * no loop, T from a task (calls that check for one before their
 * arguments). `what` (when not NULL) must appear in the record. Each
 * expression is parenthesized; void calls are written (call, 0). */
enum { CODE, PTR, LOGV, QUIET };
enum { P, T };

#define NOPTS(type, field, value) (&(type){.field = (value)})

/* clang-format off */
#define ROWS(X)                                                                \
  /* corio/debug.h */                                                        \
  X(cor_loop_set_exception_handler, CODE, P, -EINVAL, "loop is NULL",        \
    (cor_loop_set_exception_handler(NULL, NULL, NULL)))                      \
  X(cor_loop_default_exception_handler, QUIET, P, 0, NULL,                   \
    (cor_loop_default_exception_handler(NULL, NULL), 0))                     \
  X(cor_loop_call_exception_handler, QUIET, P, 0, NULL,                      \
    (cor_loop_call_exception_handler(NULL, NULL), 0))                        \
  X(cor_loop_set_slow_callback_duration, CODE, P, -EINVAL, "loop is NULL",   \
    (cor_loop_set_slow_callback_duration(NULL, 1)))                          \
  X(cor_loop_set_slow_callback_duration, CODE, P, -EINVAL, "negative",       \
    (cor_loop_set_slow_callback_duration(g_loop, -1)))                       \
  X(cor_loop_get_slow_callback_duration, QUIET, P, 0, NULL,                  \
    (cor_loop_get_slow_callback_duration(NULL)))                             \
  X(cor_loop_set_watchdog, CODE, P, -EINVAL, "loop is NULL",                 \
    (cor_loop_set_watchdog(NULL, 1)))                                        \
  X(cor_loop_set_watchdog, CODE, P, -EINVAL, "negative",                     \
    (cor_loop_set_watchdog(g_loop, -1)))                                     \
  /* corio/executor.h */                                                     \
  X(cor_thread_pool_new, PTR, P, 0, "max_workers",                           \
    (cor_thread_pool_new(NOPTS(cor_thread_pool_opts, max_workers, 5000))))   \
  X(cor_run_in_executor, PTR, P, 0, "loop is NULL",                          \
    (cor_run_in_executor(NULL, NULL, body, NULL)))                           \
  X(cor_run_in_executor, PTR, P, 0, "fn is NULL",                            \
    (cor_run_in_executor(g_loop, NULL, NULL, NULL)))                         \
  X(cor_executor_submit, PTR, P, 0, "ex is NULL",                            \
    (cor_executor_submit(NULL, body, NULL)))                                 \
  X(cor_executor_shutdown, CODE, P, -EINVAL, "ex is NULL",                   \
    (cor_executor_shutdown(NULL, false, false)))                             \
  X(cor_executor_shutdown_timeout, CODE, P, -EINVAL, "ex is NULL",           \
    (cor_executor_shutdown_timeout(NULL, false, 1)))                         \
  X(cor_executor_max_workers, QUIET, P, 0, NULL,                             \
    (cor_executor_max_workers(NULL)))                                        \
  X(cor_bytes_set, CODE, P, -EINVAL, "out is NULL",                          \
    (cor_bytes_set(NULL, NULL, 0)))                                          \
  X(cor_process_pool_new, PTR, P, 0, "job_timeout is negative",              \
    (cor_process_pool_new(NOPTS(cor_process_pool_opts, job_timeout, -1))))   \
  X(cor_run_in_process, PTR, P, 0, "loop is NULL",                           \
    (cor_run_in_process(NULL, NULL, NULL, NULL, 0)))                         \
  X(cor_run_in_process, PTR, P, 0, "ex is NULL",                             \
    (cor_run_in_process(g_loop, NULL, "job", NULL, 0)))                      \
  X(cor_process_job_register, LOGV, P, 0, "def is NULL",                     \
    (cor_process_job_register(NULL), 0))                                     \
  /* corio/future.h */                                                       \
  X(cor_future_new, PTR, P, 0, "no loop is running", (cor_future_new(NULL))) \
  X(cor_future_set_result, CODE, P, -EINVAL, "fut is NULL",                  \
    (cor_future_set_result(NULL, NULL)))                                     \
  X(cor_future_set_error, CODE, P, -EINVAL, "fut is NULL",                   \
    (cor_future_set_error(NULL, -EIO, NULL)))                                \
  X(cor_future_set_error, CODE, P, -EINVAL, "code is not negative",          \
    (cor_future_set_error(g_fut, 0, NULL)))                                  \
  X(cor_future_cancel, CODE, P, -EINVAL, "fut is NULL",                      \
    (cor_future_cancel(NULL, NULL)))                                         \
  X(cor_future_done, QUIET, P, 0, NULL, (cor_future_done(NULL)))             \
  X(cor_future_cancelled, QUIET, P, 0, NULL, (cor_future_cancelled(NULL)))   \
  X(cor_future_result, CODE, P, -EINVAL, "fut is NULL",                      \
    (cor_future_result(NULL, NULL)))                                         \
  X(cor_future_message, QUIET, P, 0, NULL, (cor_future_message(NULL)))       \
  X(cor_future_error_site, QUIET, P, -ENOENT, NULL,                          \
    (cor_future_error_site(NULL, NULL, NULL)))                               \
  X(cor_future_loop, QUIET, P, 0, NULL, (cor_future_loop(NULL)))             \
  X(cor_future_add_done_callback, CODE, P, -EINVAL, "fut is NULL",           \
    (cor_future_add_done_callback(NULL, done_cb, NULL)))                     \
  X(cor_future_remove_done_callback, CODE, P, -EINVAL, "fut is NULL",        \
    (cor_future_remove_done_callback(NULL, done_cb, NULL)))                  \
  X(cor_loop_run_until_complete, CODE, P, -EINVAL, "loop is NULL",           \
    (cor_loop_run_until_complete(NULL, NULL)))                               \
  X(cor_fail_at, QUIET, P, -EIO, NULL, (cor_fail_at(NULL, 0, -EIO, NULL)))   \
  /* corio/log.h */                                                          \
  X(cor_log, LOGV, P, 0, "fmt is NULL",                                      \
    (cor_log(COR_LOG_ERROR, g_nullfmt), 0))                                  \
  /* corio/loop.h */                                                         \
  X(cor_loop_run_forever, CODE, P, -EINVAL, "loop is NULL",                  \
    (cor_loop_run_forever(NULL)))                                            \
  X(cor_loop_stop, CODE, P, -EINVAL, "loop is NULL", (cor_loop_stop(NULL)))  \
  X(cor_loop_close, CODE, P, -EINVAL, "loop is NULL", (cor_loop_close(NULL))) \
  X(cor_loop_is_running, QUIET, P, 0, NULL, (cor_loop_is_running(NULL)))     \
  X(cor_loop_is_closed, QUIET, P, 0, NULL, (cor_loop_is_closed(NULL)))       \
  X(cor_call_soon, CODE, P, -EINVAL, "loop is NULL",                         \
    (cor_call_soon(NULL, cb, NULL, NULL)))                                   \
  X(cor_call_soon, CODE, P, -EINVAL, "cb is NULL",                           \
    (cor_call_soon(g_loop, NULL, NULL, NULL)))                               \
  X(cor_call_later, CODE, P, -EINVAL, "loop is NULL",                        \
    (cor_call_later(NULL, 1, cb, NULL, NULL)))                               \
  X(cor_call_at, CODE, P, -EINVAL, "loop is NULL",                           \
    (cor_call_at(NULL, 1, cb, NULL, NULL)))                                  \
  X(cor_call_at_ns, CODE, P, -EINVAL, "cb is NULL",                          \
    (cor_call_at_ns(g_loop, 1, NULL, NULL, NULL)))                           \
  X(cor_handle_cancel, CODE, P, -EINVAL, "loop is NULL",                     \
    (cor_handle_cancel(NULL, (cor_handle_t){0})))                            \
  X(cor_call_soon_threadsafe, CODE, P, -EINVAL, "loop is NULL",              \
    (cor_call_soon_threadsafe(NULL, cb, NULL)))                              \
  X(cor_call_soon_threadsafe, CODE, P, -EINVAL, "cb is NULL",                \
    (cor_call_soon_threadsafe(g_loop, NULL, NULL)))                          \
  X(cor_loop_add_reader, CODE, P, -EINVAL, "loop is NULL",                   \
    (cor_loop_add_reader(NULL, 0, cb, NULL)))                                \
  X(cor_loop_add_reader, CODE, P, -EINVAL, "fd is negative",                 \
    (cor_loop_add_reader(g_loop, -1, cb, NULL)))                             \
  X(cor_loop_add_writer, CODE, P, -EINVAL, "cb is NULL",                     \
    (cor_loop_add_writer(g_loop, 0, NULL, NULL)))                            \
  X(cor_loop_remove_reader, CODE, P, -EINVAL, "loop is NULL",                \
    (cor_loop_remove_reader(NULL, 0)))                                       \
  X(cor_loop_remove_writer, CODE, P, -EINVAL, "fd is negative",              \
    (cor_loop_remove_writer(g_loop, -1)))                                    \
  X(cor_loop_add_signal_handler, CODE, P, -EINVAL, "loop is NULL",           \
    (cor_loop_add_signal_handler(NULL, SIGUSR1, cb, NULL)))                  \
  X(cor_loop_add_signal_handler, CODE, P, -EINVAL, "uncatchable",            \
    (cor_loop_add_signal_handler(g_loop, SIGKILL, cb, NULL)))                \
  X(cor_loop_remove_signal_handler, CODE, P, -EINVAL, "loop is NULL",        \
    (cor_loop_remove_signal_handler(NULL, SIGUSR1)))                         \
  X(cor_loop_set_debug, CODE, P, -EINVAL, "loop is NULL",                    \
    (cor_loop_set_debug(NULL, true)))                                        \
  X(cor_loop_get_debug, QUIET, P, 0, NULL, (cor_loop_get_debug(NULL)))       \
  X(cor_loop_get_stats, CODE, P, -EINVAL, "loop is NULL",                    \
    (cor_loop_get_stats(NULL, &g_stats)))                                    \
  X(cor_loop_get_stats, CODE, P, -EINVAL, "out is NULL",                     \
    (cor_loop_get_stats(g_loop, NULL)))                                      \
  /* corio/runtime.h */                                                      \
  X(cor_runtime_new, PTR, P, 0, "nloops",                                    \
    (cor_runtime_new(NOPTS(cor_runtime_opts, nloops, 100000))))              \
  X(cor_runtime_nloops, QUIET, P, 0, NULL, (cor_runtime_nloops(NULL)))       \
  X(cor_runtime_loop, QUIET, P, 0, NULL, (cor_runtime_loop(NULL, 0)))        \
  X(cor_runtime_loop_cpu, QUIET, P, -1, NULL, (cor_runtime_loop_cpu(NULL, 0))) \
  X(cor_runtime_current, QUIET, P, 0, NULL, (cor_runtime_current(NULL)))     \
  X(cor_runtime_spawn, PTR, P, 0, "rt is NULL",                              \
    (cor_runtime_spawn(NULL, NULL, NULL)))                                   \
  X(cor_runtime_spawn, PTR, P, 0, "rt is NULL",                              \
    (cor_runtime_spawn(NULL, cor_coro(body, NULL), NULL)))                   \
  X(cor_runtime_spawn_on, PTR, P, 0, "rt is NULL",                           \
    (cor_runtime_spawn_on(NULL, 0, NULL, NULL)))                             \
  X(cor_runtime_run, CODE, P, -EINVAL, "rt is NULL",                         \
    (cor_runtime_run(NULL, body, NULL, NULL)))                               \
  X(cor_runtime_shutdown, CODE, P, -EINVAL, "rt is NULL",                    \
    (cor_runtime_shutdown(NULL, 1)))                                         \
  X(cor_runtime_loop_counters, CODE, P, -EINVAL, "rt is NULL",               \
    (cor_runtime_loop_counters(NULL, 0, &g_counters)))                       \
  X(cor_run_coroutine_threadsafe, PTR, P, 0, "coro is NULL",                 \
    (cor_run_coroutine_threadsafe(NULL, g_loop)))                            \
  X(cor_run_coroutine_threadsafe, PTR, P, 0, "loop is NULL",                 \
    (cor_run_coroutine_threadsafe(cor_coro(body, NULL), NULL)))              \
  X(cor_cfuture_result, CODE, P, -EINVAL, "cf is NULL",                      \
    (cor_cfuture_result(NULL, 1, NULL)))                                     \
  X(cor_await_cfuture, CODE, T, -EINVAL, "cf is NULL",                       \
    (cor_await_cfuture(NULL, NULL)))                                         \
  X(cor_cfuture_cancel, CODE, P, -EINVAL, "cf is NULL",                      \
    (cor_cfuture_cancel(NULL)))                                              \
  X(cor_cfuture_done, QUIET, P, 0, NULL, (cor_cfuture_done(NULL)))           \
  X(cor_cfuture_cancelled, QUIET, P, 0, NULL, (cor_cfuture_cancelled(NULL))) \
  X(cor_cfuture_message, QUIET, P, 0, NULL, (cor_cfuture_message(NULL)))     \
  X(cor_cfuture_add_done_callback, CODE, P, -EINVAL, "cf is NULL",           \
    (cor_cfuture_add_done_callback(NULL, cf_done_cb, NULL)))                 \
  X(cor_cfuture_set_result, CODE, P, -EINVAL, "cf is NULL",                  \
    (cor_cfuture_set_result(NULL, NULL)))                                    \
  X(cor_cfuture_set_error, CODE, P, -EINVAL, "cf is NULL",                   \
    (cor_cfuture_set_error(NULL, -EIO, "x")))                                \
  X(cor_try_call_soon_threadsafe, CODE, P, -EINVAL, "loop is NULL",          \
    (cor_try_call_soon_threadsafe(NULL, cb, NULL)))                          \
  X(cor_call_soon_threadsafe_wait, CODE, P, -EINVAL, "cb is NULL",           \
    (cor_call_soon_threadsafe_wait(g_loop, NULL, NULL, 1)))                  \
  /* corio/stream.h */                                                       \
  X(cor_open_connection, CODE, P, -EINVAL, "port is NULL",                   \
    (cor_open_connection("localhost", NULL, &g_out)))                        \
  X(cor_open_connection_opts, CODE, P, -EINVAL, "out is NULL",               \
    (cor_open_connection_opts("localhost", "80", NULL, NULL)))               \
  X(cor_open_unix_connection, CODE, P, -EINVAL, "out is NULL",               \
    (cor_open_unix_connection("/nonexistent", NULL, NULL)))                  \
  X(cor_open_unix_connection, CODE, T, -EINVAL, "path is NULL",              \
    (cor_open_unix_connection(NULL, NULL, &g_out)))                          \
  X(cor_stream_from_fd, PTR, P, 0, "no loop is running",                     \
    (cor_stream_from_fd(NULL, -1)))                                          \
  X(cor_stream_from_fd, PTR, P, 0, "fd is negative",                         \
    (cor_stream_from_fd(g_loop, -1)))                                        \
  X(cor_stream_read, CODE, P, -EINVAL, "s is NULL",                          \
    (cor_stream_read(NULL, g_buf, sizeof g_buf)))                            \
  X(cor_stream_read, CODE, P, -EINVAL, "buf is NULL",                        \
    (cor_stream_read(g_s, NULL, 1)))                                         \
  X(cor_stream_readexactly, CODE, P, -EINVAL, "s is NULL",                   \
    (cor_stream_readexactly(NULL, g_buf, 1, NULL)))                          \
  X(cor_stream_readuntil, CODE, P, -EINVAL, "s is NULL",                     \
    (cor_stream_readuntil(NULL, "\n", 1, g_buf, sizeof g_buf, NULL)))        \
  X(cor_stream_readuntil, CODE, P, -EINVAL, "sep is NULL",                   \
    (cor_stream_readuntil(g_s, NULL, 1, g_buf, sizeof g_buf, NULL)))         \
  X(cor_stream_readuntil, CODE, P, -EINVAL, "seplen is 0",                   \
    (cor_stream_readuntil(g_s, "\n", 0, g_buf, sizeof g_buf, NULL)))         \
  X(cor_stream_readline, CODE, P, -EINVAL, "s is NULL",                      \
    (cor_stream_readline(NULL, g_buf, sizeof g_buf)))                        \
  X(cor_stream_peek, CODE, P, -EINVAL, "s is NULL",                          \
    (cor_stream_peek(NULL, 1, &g_data)))                                     \
  X(cor_stream_peek, CODE, P, -EINVAL, "data is NULL",                       \
    (cor_stream_peek(g_s, 1, NULL)))                                         \
  X(cor_stream_consume, QUIET, P, 0, NULL, (cor_stream_consume(NULL, 1), 0)) \
  X(cor_stream_buffered, QUIET, P, 0, NULL, (cor_stream_buffered(NULL)))     \
  X(cor_stream_at_eof, QUIET, P, 0, NULL, (cor_stream_at_eof(NULL)))         \
  X(cor_stream_write, CODE, P, -EINVAL, "s is NULL",                         \
    (cor_stream_write(NULL, "x", 1)))                                        \
  X(cor_stream_write, CODE, P, -EINVAL, "buf is NULL",                       \
    (cor_stream_write(g_s, NULL, 1)))                                        \
  X(cor_stream_drain, CODE, P, -EINVAL, "s is NULL", (cor_stream_drain(NULL))) \
  X(cor_stream_write_buffered, QUIET, P, 0, NULL,                            \
    (cor_stream_write_buffered(NULL)))                                       \
  X(cor_stream_write_eof, CODE, P, -EINVAL, "s is NULL",                     \
    (cor_stream_write_eof(NULL)))                                            \
  X(cor_stream_set_limit, CODE, P, -EINVAL, "s is NULL",                     \
    (cor_stream_set_limit(NULL, 1)))                                         \
  X(cor_stream_set_write_buffer_limits, CODE, P, -EINVAL, "s is NULL",       \
    (cor_stream_set_write_buffer_limits(NULL, 2, 1)))                        \
  X(cor_stream_set_write_buffer_limits, CODE, P, -EINVAL, "low is above",    \
    (cor_stream_set_write_buffer_limits(g_s, 1, 2)))                         \
  X(cor_stream_set_timeouts, CODE, P, -EINVAL, "s is NULL",                  \
    (cor_stream_set_timeouts(NULL, 1, 1)))                                   \
  X(cor_stream_set_timeouts, CODE, P, -EINVAL, "negative",                   \
    (cor_stream_set_timeouts(g_s, -1, 0)))                                   \
  X(cor_stream_fd, CODE, P, -EINVAL, "s is NULL", (cor_stream_fd(NULL)))     \
  X(cor_stream_sockname, CODE, P, -EINVAL, "s is NULL",                      \
    (cor_stream_sockname(NULL, NULL, NULL)))                                 \
  X(cor_stream_peername, CODE, P, -EINVAL, "sa is NULL",                     \
    (cor_stream_peername(g_s, NULL, NULL)))                                  \
  X(cor_stream_close, CODE, P, -EINVAL, "s is NULL", (cor_stream_close(NULL))) \
  X(cor_stream_wait_closed, CODE, P, -EINVAL, "s is NULL",                   \
    (cor_stream_wait_closed(NULL)))                                          \
  X(cor_stream_free, QUIET, P, 0, NULL, (cor_stream_free(NULL), 0))          \
  X(cor_start_server, PTR, P, 0, "no loop is running",                       \
    (cor_start_server(NULL, NULL, body)))                                    \
  X(cor_start_server, PTR, P, 0, "handler is NULL",                          \
    (cor_start_server(g_loop, NULL, NULL)))                                  \
  X(cor_start_server, PTR, P, 0, "tls_handshake_timeout is NaN",            \
    (cor_start_server(g_loop, NOPTS(cor_server_opts, tls_handshake_timeout, \
                                    NAN), body)))                            \
  /* corio/tls.h */                                                          \
  X(cor_tls_ctx_new, PTR, P, 0, "opts is NULL", (cor_tls_ctx_new(NULL)))     \
  X(cor_tls_ctx_new, PTR, P, 0, "a server needs cert_file",                  \
    (cor_tls_ctx_new(NOPTS(cor_tls_opts, server, true))))                   \
  X(cor_tls_ctx_new, PTR, P, 0, "alpn",                                      \
    (cor_tls_ctx_new(NOPTS(cor_tls_opts, alpn, ""))))                       \
  X(cor_stream_start_tls, CODE, P, -EINVAL, "s is NULL",                     \
    (cor_stream_start_tls(NULL, g_tls(), "x", 1)))                           \
  X(cor_stream_start_tls, CODE, P, -EINVAL, "ctx is NULL",                   \
    (cor_stream_start_tls(g_s, NULL, "x", 1)))                               \
  X(cor_stream_start_tls, CODE, P, -EINVAL, "timeout is NaN",                \
    (cor_stream_start_tls(g_s, g_tls(), "x", NAN)))                          \
  X(cor_stream_tls_version, PTR, P, 0, "s is NULL",                          \
    (cor_stream_tls_version(NULL)))                                          \
  X(cor_stream_tls_cipher, PTR, P, 0, "s is NULL",                           \
    (cor_stream_tls_cipher(NULL)))                                           \
  X(cor_stream_tls_alpn, PTR, P, 0, "s is NULL", (cor_stream_tls_alpn(NULL))) \
  X(cor_stream_tls_verified, LOGV, P, 0, "s is NULL",                        \
    (cor_stream_tls_verified(NULL)))                                         \
  X(cor_stream_error_message, PTR, P, 0, "s is NULL",                        \
    (cor_stream_error_message(NULL)))                                        \
  X(cor_runtime_start_server, PTR, P, 0, "rt is NULL",                       \
    (cor_runtime_start_server(NULL, NULL, body)))                            \
  X(cor_server_port, QUIET, P, -1, NULL, (cor_server_port(NULL)))            \
  X(cor_server_handler_arg, QUIET, P, 0, NULL, (cor_server_handler_arg(NULL))) \
  X(cor_server_connections, QUIET, P, 0, NULL, (cor_server_connections(NULL))) \
  X(cor_server_close, CODE, P, -EINVAL, "srv is NULL", (cor_server_close(NULL))) \
  X(cor_server_close_clients, CODE, P, -EINVAL, "srv is NULL",               \
    (cor_server_close_clients(NULL)))                                        \
  X(cor_server_wait_closed, CODE, P, -EINVAL, "srv is NULL",                 \
    (cor_server_wait_closed(NULL, 1)))                                       \
  X(cor_server_free, QUIET, P, 0, NULL, (cor_server_free(NULL), 0))          \
  X(cor_open_datagram, PTR, P, 0, "no loop is running",                      \
    (cor_open_datagram(NULL, NULL)))                                         \
  X(cor_open_datagram, PTR, P, 0, "opts is NULL",                            \
    (cor_open_datagram(g_loop, NULL)))                                       \
  X(cor_open_datagram, PTR, P, 0, "no local or remote address",              \
    (cor_open_datagram(g_loop, &(cor_datagram_opts){0})))                    \
  X(cor_datagram_recv, CODE, P, -EINVAL, "d is NULL",                        \
    (cor_datagram_recv(NULL, g_buf, sizeof g_buf, NULL, NULL, 1)))           \
  X(cor_datagram_send, CODE, P, -EINVAL, "d is NULL",                        \
    (cor_datagram_send(NULL, "x", 1, NULL, 0)))                              \
  X(cor_datagram_port, CODE, P, -EINVAL, "d is NULL",                        \
    (cor_datagram_port(NULL)))                                               \
  X(cor_open_datagram, PTR, P, 0, "port outside 0..65535",                   \
    (cor_open_datagram(g_loop, &(cor_datagram_opts){.local_port = 70000})))  \
  X(cor_datagram_sendto, CODE, P, -EINVAL, "d is NULL",                      \
    (cor_datagram_sendto(NULL, "x", 1, "127.0.0.1", 9)))                     \
  X(cor_datagram_recv_many, CODE, P, -EINVAL, "d is NULL",                   \
    (int)(cor_datagram_recv_many(NULL, NULL, 0, 1)))                         \
  X(cor_datagram_send_many, CODE, P, -EINVAL, "d is NULL",                   \
    (cor_datagram_send_many(NULL, NULL, 0)))                                 \
  X(cor_datagram_join_group, CODE, P, -EINVAL, "d is NULL",                  \
    (cor_datagram_join_group(NULL, "239.1.2.3", NULL)))                      \
  X(cor_datagram_leave_group, CODE, P, -EINVAL, "d is NULL",                 \
    (cor_datagram_leave_group(NULL, "239.1.2.3", NULL)))                     \
  X(cor_datagram_set_multicast_ttl, CODE, P, -EINVAL, "d is NULL",           \
    (cor_datagram_set_multicast_ttl(NULL, 1)))                               \
  X(cor_datagram_set_multicast_loop, CODE, P, -EINVAL, "d is NULL",          \
    (cor_datagram_set_multicast_loop(NULL, true)))                           \
  X(cor_datagram_close, CODE, P, -EINVAL, "d is NULL",                       \
    (cor_datagram_close(NULL)))                                              \
  X(cor_datagram_free, QUIET, P, 0, NULL, (cor_datagram_free(NULL), 0))      \
  X(cor_subprocess_exec, CODE, P, -EINVAL, "argv is NULL",                   \
    (cor_subprocess_exec(NULL, NULL, NULL)))                                 \
  X(cor_subprocess_exec, CODE, P, -EINVAL, "argv is empty",                  \
    (cor_subprocess_exec(g_noargv, NULL, NULL)))                             \
  X(cor_process_stdin, QUIET, P, 0, NULL, (cor_process_stdin(NULL)))         \
  X(cor_process_stdout, QUIET, P, 0, NULL, (cor_process_stdout(NULL)))       \
  X(cor_process_stderr, QUIET, P, 0, NULL, (cor_process_stderr(NULL)))       \
  X(cor_process_pid, CODE, P, -EINVAL, "p is NULL", (cor_process_pid(NULL)))  \
  X(cor_process_close, CODE, P, -EINVAL, "p is NULL",                        \
    (cor_process_close(NULL)))                                               \
  X(cor_process_wait, CODE, P, -EINVAL, "p is NULL",                         \
    (cor_process_wait(NULL, 1, NULL)))                                       \
  X(cor_subprocess_shell, CODE, P, -EINVAL, "cmd is NULL",                  \
    (cor_subprocess_shell(NULL, NULL, NULL)))                                \
  X(cor_subprocess_shell, CODE, P, -EINVAL, "out is NULL",                  \
    (cor_subprocess_shell("true", NULL, NULL)))                              \
  X(cor_process_communicate, CODE, P, -EINVAL, "p is NULL",                  \
    (cor_process_communicate(NULL, NULL, 0, NULL, NULL, 1)))                 \
  /* refused before p is looked at: any non-NULL pointer will do */          \
  X(cor_process_communicate, CODE, P, -EINVAL, "in is NULL with n > 0",      \
    (cor_process_communicate((cor_process_t *)g_buf, NULL, 1, NULL, NULL, 1))) \
  X(cor_process_communicate, CODE, P, -EINVAL, "the same cor_bytes_t",       \
    (cor_process_communicate((cor_process_t *)g_buf, NULL, 0, &g_bytes,      \
                             &g_bytes, 1)))                                  \
  X(cor_process_kill, CODE, P, -EINVAL, "p is NULL",                         \
    (cor_process_kill(NULL, SIGTERM)))                                       \
  X(cor_process_free, QUIET, P, 0, NULL, (cor_process_free(NULL), 0))        \
  X(cor_stream_writev, CODE, P, -EINVAL, "s is NULL",                        \
    (cor_stream_writev(NULL, NULL, 0)))                                      \
  X(cor_stream_writev, CODE, P, -EINVAL, "iov is NULL",                      \
    (cor_stream_writev(g_s, NULL, 1)))                                       \
  X(cor_stream_sendfile, CODE, P, -EINVAL, "s is NULL",                      \
    (cor_stream_sendfile(NULL, 0, 0, 1)))                                    \
  X(cor_stream_sendfile, CODE, P, -EINVAL, "fd is negative",                 \
    (cor_stream_sendfile(g_s, -1, 0, 1)))                                    \
  X(cor_file_open, CODE, P, -EINVAL, "path is NULL",                         \
    (cor_file_open(NULL, 0, 0, NULL)))                                       \
  X(cor_file_pread, CODE, P, -EINVAL, "f is NULL",                           \
    (cor_file_pread(NULL, g_buf, 1, 0)))                                     \
  X(cor_file_pwrite, CODE, P, -EINVAL, "f is NULL",                          \
    (cor_file_pwrite(NULL, g_buf, 1, 0)))                                    \
  X(cor_file_fsync, CODE, P, -EINVAL, "f is NULL", (cor_file_fsync(NULL)))   \
  X(cor_file_close, CODE, P, -EINVAL, "f is NULL", (cor_file_close(NULL)))   \
  X(cor_file_free, QUIET, P, 0, NULL, (cor_file_free(NULL), 0))              \
  X(cor_file_fd, CODE, P, -EINVAL, "f is NULL", (cor_file_fd(NULL)))         \
  X(cor_getaddrinfo, CODE, P, -EINVAL, "out is NULL",                       \
    (cor_getaddrinfo("localhost", "1", NULL, NULL)))                         \
  X(cor_getaddrinfo, CODE, P, -EINVAL, "both NULL",                          \
    (cor_getaddrinfo(NULL, NULL, NULL, &g_ai)))                              \
  X(cor_getnameinfo, CODE, P, -EINVAL, "sa is NULL",                         \
    (cor_getnameinfo(NULL, 0, g_buf, sizeof g_buf, NULL, 0, 0)))             \
  /* corio/sync.h */                                                         \
  X(cor_lock_new, PTR, P, 0, "no loop is running", (cor_lock_new(NULL)))     \
  X(cor_lock_acquire, CODE, P, -EINVAL, "l is NULL", (cor_lock_acquire(NULL))) \
  X(cor_lock_release, CODE, P, -EINVAL, "l is NULL", (cor_lock_release(NULL))) \
  X(cor_lock_locked, LOGV, P, 0, "l is NULL", (cor_lock_locked(NULL)))       \
  X(cor_event_new, PTR, P, 0, "no loop is running", (cor_event_new(NULL)))   \
  X(cor_event_wait, CODE, P, -EINVAL, "e is NULL", (cor_event_wait(NULL)))   \
  X(cor_event_set, LOGV, P, 0, "e is NULL", (cor_event_set(NULL), 0))        \
  X(cor_event_clear, LOGV, P, 0, "e is NULL", (cor_event_clear(NULL), 0))    \
  X(cor_event_is_set, LOGV, P, 0, "e is NULL", (cor_event_is_set(NULL)))     \
  X(cor_semaphore_new, PTR, P, 0, "no loop is running",                      \
    (cor_semaphore_new(NULL, 1, false)))                                     \
  X(cor_semaphore_acquire, CODE, P, -EINVAL, "s is NULL",                    \
    (cor_semaphore_acquire(NULL)))                                           \
  X(cor_semaphore_release, CODE, P, -EINVAL, "s is NULL",                    \
    (cor_semaphore_release(NULL)))                                           \
  X(cor_semaphore_locked, LOGV, P, 0, "s is NULL",                           \
    (cor_semaphore_locked(NULL)))                                            \
  /* corio/queue.h */                                                        \
  X(cor_queue_new, PTR, P, 0, "no loop is running", (cor_queue_new(NULL, NULL))) \
  X(cor_queue_new, PTR, P, 0, "cmp is NULL",                                 \
    (cor_queue_new(g_loop, NOPTS(cor_queue_opts, kind, COR_QUEUE_PRIORITY)))) \
  X(cor_queue_new, PTR, P, 0, "kind is not a kind",                          \
    (cor_queue_new(g_loop, NOPTS(cor_queue_opts, kind, (cor_queue_kind)9))))  \
  X(cor_queue_put, CODE, P, -EINVAL, "q is NULL", (cor_queue_put(NULL, NULL))) \
  X(cor_queue_get, CODE, P, -EINVAL, "q is NULL",                            \
    (cor_queue_get(NULL, &g_item)))                                          \
  X(cor_queue_get, CODE, P, -EINVAL, "item is NULL", (cor_queue_get(g_q, NULL))) \
  X(cor_queue_put_nowait, CODE, P, -EINVAL, "q is NULL",                     \
    (cor_queue_put_nowait(NULL, NULL)))                                      \
  X(cor_queue_get_nowait, CODE, P, -EINVAL, "q is NULL",                     \
    (cor_queue_get_nowait(NULL, &g_item)))                                   \
  X(cor_queue_get_nowait, CODE, P, -EINVAL, "item is NULL",                  \
    (cor_queue_get_nowait(g_q, NULL)))                                       \
  X(cor_queue_task_done, CODE, P, -EINVAL, "q is NULL",                      \
    (cor_queue_task_done(NULL)))                                             \
  X(cor_queue_join, CODE, P, -EINVAL, "q is NULL", (cor_queue_join(NULL)))   \
  X(cor_queue_shutdown, CODE, P, -EINVAL, "q is NULL",                       \
    (cor_queue_shutdown(NULL, true)))                                        \
  X(cor_queue_qsize, LOGV, P, 0, "q is NULL", (cor_queue_qsize(NULL)))       \
  X(cor_queue_maxsize, LOGV, P, 0, "q is NULL", (cor_queue_maxsize(NULL)))   \
  X(cor_queue_empty, LOGV, P, 0, "q is NULL", (cor_queue_empty(NULL)))       \
  X(cor_queue_full, LOGV, P, 0, "q is NULL", (cor_queue_full(NULL)))         \
  /* corio/channel.h */                                                      \
  X(cor_channel_new, PTR, P, 0, "capacity",                                  \
    (cor_channel_new(NOPTS(cor_channel_opts, capacity, (size_t)1 << 40))))   \
  X(cor_channel_send, CODE, P, -EINVAL, "ch is NULL",                        \
    (cor_channel_send(NULL, NULL, 0)))                                       \
  X(cor_channel_recv, CODE, P, -EINVAL, "ch is NULL",                        \
    (cor_channel_recv(NULL, (void **)g_buf, 0)))                             \
  X(cor_channel_try_send, CODE, P, -EINVAL, "ch is NULL",                    \
    (cor_channel_try_send(NULL, NULL)))                                      \
  X(cor_channel_try_recv, CODE, P, -EINVAL, "ch is NULL",                    \
    (cor_channel_try_recv(NULL, (void **)g_buf)))                            \
  X(cor_channel_close, CODE, P, -EINVAL, "ch is NULL",                       \
    (cor_channel_close(NULL)))                                               \
  X(cor_condition_new, PTR, P, 0, "no loop is running",                      \
    (cor_condition_new(NULL, NULL)))                                         \
  X(cor_condition_lock, PTR, P, 0, "c is NULL", (cor_condition_lock(NULL)))  \
  X(cor_condition_wait, CODE, P, -EINVAL, "c is NULL",                       \
    (cor_condition_wait(NULL)))                                              \
  X(cor_condition_wait_for, CODE, P, -EINVAL, "c is NULL",                   \
    (cor_condition_wait_for(NULL, pred_false, NULL)))                        \
  X(cor_condition_notify, CODE, P, -EINVAL, "c is NULL",                     \
    (cor_condition_notify(NULL, 1)))                                         \
  X(cor_condition_notify_all, CODE, P, -EINVAL, "c is NULL",                 \
    (cor_condition_notify_all(NULL)))                                        \
  X(cor_barrier_new, PTR, P, 0, "no loop is running",                        \
    (cor_barrier_new(NULL, 2)))                                              \
  X(cor_barrier_new, PTR, P, 0, "parties is 0", (cor_barrier_new(g_loop, 0))) \
  X(cor_barrier_wait, CODE, P, -EINVAL, "b is NULL",                         \
    (cor_barrier_wait(NULL, NULL)))                                          \
  X(cor_barrier_abort, CODE, P, -EINVAL, "b is NULL",                        \
    (cor_barrier_abort(NULL)))                                               \
  X(cor_barrier_reset, CODE, P, -EINVAL, "b is NULL",                        \
    (cor_barrier_reset(NULL)))                                               \
  X(cor_barrier_parties, LOGV, P, 0, "b is NULL",                            \
    (cor_barrier_parties(NULL)))                                             \
  X(cor_barrier_n_waiting, LOGV, P, 0, "b is NULL",                          \
    (cor_barrier_n_waiting(NULL)))                                           \
  X(cor_barrier_broken, LOGV, P, 0, "b is NULL",                             \
    (cor_barrier_broken(NULL)))                                              \
  /* corio/task.h */                                                         \
  X(cor_coro_new_at, PTR, P, 0, "fn is NULL",                                \
    (cor_coro_new_at(NULL, NULL, NULL, NULL, 0)))                            \
  X(cor_coro_close, CODE, P, -EINVAL, "coro is NULL", (cor_coro_close(NULL))) \
  X(cor_create_task, PTR, P, 0, "coro is NULL",                              \
    (cor_create_task(g_loop, NULL, NULL)))                                   \
  X(cor_create_task, PTR, P, 0, "no loop is running",                        \
    (cor_create_task(NULL, cor_coro(body, NULL), NULL)))                     \
  X(cor_task_future, QUIET, P, 0, NULL, (cor_task_future(NULL)))             \
  X(cor_task_name, QUIET, P, 0, NULL, (cor_task_name(NULL)))                 \
  X(cor_task_set_name, CODE, P, -EINVAL, "task is NULL",                     \
    (cor_task_set_name(NULL, "x")))                                          \
  X(cor_all_tasks, LOGV, T, 0, "out is NULL",                                \
    (cor_all_tasks(NULL, NULL, 4)))                                          \
  X(cor_await, CODE, T, -EINVAL, "fut is NULL", ((cor_await)(NULL, NULL)))   \
  X(cor_await, CODE, T, -EINVAL, "await itself",                             \
    ((cor_await)(cor_task_future(cor_current_task()), NULL)))                \
  X(cor_await_at, CODE, T, -EINVAL, "fut is NULL",                           \
    (cor_await_at(NULL, NULL, __FILE__, __LINE__)))                          \
  X(cor_await_coro, CODE, P, -EINVAL, "coro is NULL",                        \
    (cor_await_coro(NULL, NULL)))                                            \
  X(cor_task_cancel, CODE, P, -EINVAL, "task is NULL",                       \
    (cor_task_cancel(NULL, NULL)))                                           \
  X(cor_task_cancelling, QUIET, P, 0, NULL, (cor_task_cancelling(NULL)))     \
  X(cor_task_uncancel, QUIET, P, 0, NULL, (cor_task_uncancel(NULL)))         \
  X(cor_wait_for, CODE, T, -EINVAL, "fut is NULL",                           \
    ((cor_wait_for)(NULL, 1, NULL)))                                         \
  X(cor_wait_for_at, CODE, T, -EINVAL, "fut is NULL",                        \
    (cor_wait_for_at(NULL, 1, NULL, __FILE__, __LINE__)))                    \
  X(cor_shield, PTR, P, 0, "fut is NULL", (cor_shield(NULL)))                \
  X(cor_gather, CODE, T, -EINVAL, "futs is NULL",                            \
    ((cor_gather)(NULL, 1, NULL, NULL)))                                     \
  X(cor_gather_at, CODE, T, -EINVAL, "futs is NULL",                         \
    (cor_gather_at(NULL, 1, NULL, NULL, __FILE__, __LINE__)))                \
  X(cor_wait, CODE, T, -EINVAL, "futs is NULL",                              \
    ((cor_wait)(NULL, 1, COR_ALL_COMPLETED, 1, NULL)))                       \
  X(cor_wait_at, CODE, T, -EINVAL, "futs is NULL",                           \
    (cor_wait_at(NULL, 1, COR_ALL_COMPLETED, 1, NULL, __FILE__, __LINE__)))  \
  X(cor_wait, CODE, T, -EINVAL, "not COR_FIRST_COMPLETED",                   \
    ((cor_wait)(&g_fut, 1, 0, 1, NULL)))                                     \
  X(cor_as_completed_new, PTR, P, 0, "futs is NULL",                         \
    (cor_as_completed_new(NULL, 1, 1)))                                      \
  X(cor_as_completed_new, PTR, P, 0, "timeout is NaN",                       \
    (cor_as_completed_new(&g_fut, 1, NAN)))                                  \
  X(cor_as_completed_next, CODE, P, -EINVAL, "it is NULL",                   \
    ((cor_as_completed_next)(NULL, &g_fut2)))                                \
  X(cor_as_completed_next_at, CODE, P, -EINVAL, "it is NULL",                \
    (cor_as_completed_next_at(NULL, &g_fut2, __FILE__, __LINE__)))           \
  X(cor_timeout_enter, PTR, P, 0, "delay is NaN", (cor_timeout_enter(NAN)))  \
  X(cor_timeout_enter_at, PTR, P, 0, "when is NaN",                          \
    (cor_timeout_enter_at(NAN)))                                             \
  X(cor_timeout_reschedule, CODE, P, -EINVAL, "t is NULL",                   \
    (cor_timeout_reschedule(NULL, 1)))                                       \
  X(cor_timeout_when, LOGV, P, 1, "t is NULL",                               \
    (isnan(cor_timeout_when(NULL))))                                         \
  X(cor_timeout_expired, LOGV, P, 0, "t is NULL",                            \
    (cor_timeout_expired(NULL)))                                             \
  X(cor_timeout_exit, CODE, P, -EINVAL, "t is NULL",                         \
    (cor_timeout_exit(NULL, 0)))                                             \
  X(cor_taskgroup_spawn, PTR, P, 0, "group is NULL",                         \
    (cor_taskgroup_spawn(NULL, cor_coro(body, NULL), NULL)))                 \
  X(cor_taskgroup_wait, CODE, T, -EINVAL, "group is NULL",                   \
    ((cor_taskgroup_wait)(NULL)))                                            \
  X(cor_taskgroup_wait_at, CODE, T, -EINVAL, "group is NULL",                \
    (cor_taskgroup_wait_at(NULL, __FILE__, __LINE__)))                       \
  X(cor_loop_set_task_stack_size, CODE, P, -EINVAL, "loop is NULL",          \
    (cor_loop_set_task_stack_size(NULL, 65536)))                             \
  X(cor_loop_set_task_stack_size, CODE, P, -EINVAL, "bytes is 0",            \
    (cor_loop_set_task_stack_size(g_loop, 0)))                               \
  X(cor_loop_get_task_stack_size, QUIET, P, 0, NULL,                         \
    (cor_loop_get_task_stack_size(NULL)))                                    \
  /* corio/transport.h */                                                   \
  X(cor_start_protocol_server, PTR, P, 0, "proto is NULL",                   \
    (cor_start_protocol_server(g_loop, NULL, NULL, NULL)))                   \
  X(cor_start_protocol_server, PTR, P, 0, "no loop is running",              \
    (cor_start_protocol_server(NULL, NULL, &g_proto, NULL)))                 \
  X(cor_runtime_start_protocol_server, PTR, P, 0, "rt is NULL",              \
    (cor_runtime_start_protocol_server(NULL, NULL, &g_proto, NULL)))         \
  X(cor_runtime_start_protocol_server, PTR, P, 0, "proto is NULL",           \
    (cor_runtime_start_protocol_server((cor_runtime_t *)1, NULL, NULL,       \
                                       NULL)))                               \
  X(cor_create_connection, CODE, P, -EINVAL, "host is NULL",                 \
    (cor_create_connection(g_loop, NULL, "1", NULL, &g_proto, NULL, NULL)))  \
  X(cor_create_connection, CODE, P, -EINVAL, "port is NULL",                 \
    (cor_create_connection(g_loop, "h", NULL, NULL, &g_proto, NULL, NULL)))  \
  X(cor_create_connection, CODE, P, -EINVAL, "proto is NULL",                \
    (cor_create_connection(g_loop, "h", "1", NULL, NULL, NULL, NULL)))       \
  X(cor_create_connection, CODE, P, -EINVAL, "no loop is running",           \
    (cor_create_connection(NULL, "h", "1", NULL, &g_proto, NULL, NULL)))     \
  X(cor_transport_write, CODE, P, -EINVAL, "t is NULL",                      \
    (cor_transport_write(NULL, "x", 1)))                                     \
  X(cor_transport_writev, CODE, P, -EINVAL, "t is NULL",                     \
    (cor_transport_writev(NULL, NULL, 0)))                                   \
  X(cor_transport_write_eof, CODE, P, -EINVAL, "t is NULL",                  \
    (cor_transport_write_eof(NULL)))                                         \
  X(cor_transport_close, CODE, P, -EINVAL, "t is NULL",                      \
    (cor_transport_close(NULL)))                                             \
  X(cor_transport_abort, LOGV, P, 0, "t is NULL",                            \
    (cor_transport_abort(NULL), 0))                                          \
  X(cor_transport_pause_reading, CODE, P, -EINVAL, "t is NULL",              \
    (cor_transport_pause_reading(NULL)))                                     \
  X(cor_transport_resume_reading, CODE, P, -EINVAL, "t is NULL",             \
    (cor_transport_resume_reading(NULL)))                                    \
  X(cor_transport_write_buffer_size, LOGV, P, 0, "t is NULL",                \
    (cor_transport_write_buffer_size(NULL)))                                 \
  X(cor_transport_set_write_buffer_limits, CODE, P, -EINVAL, "t is NULL",    \
    (cor_transport_set_write_buffer_limits(NULL, 2, 1)))                     \
  X(cor_transport_set_arg, LOGV, P, 0, "t is NULL",                          \
    (cor_transport_set_arg(NULL, NULL), 0))                                  \
  X(cor_transport_get_arg, PTR, P, 0, "t is NULL",                           \
    (cor_transport_get_arg(NULL)))                                           \
  X(cor_transport_fd, CODE, P, -EINVAL, "t is NULL",                         \
    (cor_transport_fd(NULL)))                                                \
  X(cor_run, CODE, P, -EINVAL, "main is NULL", (cor_run(NULL, NULL, NULL)))
/* clang-format on */

typedef struct {
  const char *name;
  int kind, where;
  long want;
  const char *what;
} row;

static const row rows[] = {
#define X(n, k, w, want, what, expr) {#n, k, w, (long)(want), what},
    ROWS(X)
#undef X
};
#define NROWS (sizeof rows / sizeof rows[0])

/* Row idx's call, its value as a long (a pointer's bits, a flag, a code). */
static long call_row(size_t idx) {
  size_t i = 0;
#define X(n, k, w, want, what, expr)                                           \
  if (idx == i++)                                                              \
    return (long)(expr);
  ROWS(X)
#undef X
  fail_msg("no row %zu", idx);
  return 0;
}

/* ------------------------------------------------------------ checking */

static int nfailed;

/* The name a record gives the call: the _at entries behind a macro log under
 * the macro's name, the one the application wrote (cor_await for
 * cor_await_at), as the wrong-thread records do. */
static const char *logged_name(const char *name, char *buf, size_t n) {
  static const char *const behind_macro[] = {
      "cor_coro_new_at", "cor_await_at",          "cor_wait_for_at",
      "cor_gather_at",   "cor_taskgroup_wait_at", "cor_wait_at",
      "cor_as_completed_next_at",
  };
  for (size_t i = 0; i < sizeof behind_macro / sizeof *behind_macro; i++)
    if (strcmp(name, behind_macro[i]) == 0) {
      snprintf(buf, n, "%.*s", (int)(strlen(name) - 3), name);
      return buf;
    }
  return name;
}

/* Runs the rows made from `where` and checks each; counts the failures in
 * nfailed (a task cannot use cmocka's assertions: they longjmp). */
static void run_rows(int where) {
  for (size_t i = 0; i < NROWS; i++) {
    const row *r = &rows[i];
    if (r->where != where)
      continue;
    recs_clear();
    errno = 0;
    long got = call_row(i);
    int err = errno;
    char head[128], lname[64];
    snprintf(head, sizeof head, "%s(): invalid argument",
             logged_name(r->name, lname, sizeof lname));
    int n = nrec, level = 0;
    int named = count_recs(head, r->what, NULL, &level);
    bool ok;
    switch (r->kind) {
    case CODE:
      ok = got == r->want && n == 1 && named == 1 && level == COR_LOG_ERROR;
      break;
    case PTR:
      ok = got == 0 && err == EINVAL && n == 1 && named == 1 &&
           level == COR_LOG_ERROR;
      break;
    case LOGV:
      ok = got == r->want && n == 1 && named == 1 && level == COR_LOG_ERROR;
      break;
    default: /* QUIET */
      ok = got == r->want && n == 0;
      break;
    }
    if (!ok) {
      print_message("row %zu %s (%s): returned %ld (want %ld), errno %d, "
                    "%d record(s), %d naming the call\n",
                    i, r->name, r->what ? r->what : "quiet", got, r->want,
                    err, n, named);
      dump_recs();
      nfailed++;
    }
  }
}

static int task_rows(void *arg, void **result) {
  (void)arg;
  (void)result;
  run_rows(T);
  return 0;
}

static void test_bad_args(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  g_loop = cor_loop_new(NULL);
  assert_non_null(g_loop);
  g_s = cor_stream_from_fd(g_loop, sv[0]);
  assert_non_null(g_s);
  g_fut = cor_future_new(g_loop);
  assert_non_null(g_fut);
  g_q = cor_queue_new(g_loop, NULL);
  assert_non_null(g_q);
  nfailed = 0;

  run_rows(P);
  recs_clear();
  assert_int_equal(cor_run(task_rows, NULL, NULL), 0);

  assert_false(cor_future_done(g_fut)); /* the bad set_error changed nothing */
  assert_int_equal(cor_queue_qsize(g_q), 0);
  cor_release(g_q);
  cor_release(g_fut);
  cor_stream_free(g_s);
  close(sv[1]);
  assert_int_equal(cor_loop_close(g_loop), 0);
  cor_release(g_loop);
  assert_int_equal(nfailed, 0);
}

/* ------------------------------------------------------------ complete */

/* Calls outside the table, each with the reason. */
static const struct {
  const char *name, *why;
} exempt[] = {
    {"cor_version", "takes no pointer"},
    {"cor_cfuture_new", "takes no argument"},
    {"cor_version_hex", "takes no argument"},
    {"cor_strerror", "takes no pointer (any code has a message)"},
    {"cor_err_name", "takes no pointer (any code has a name)"},
    {"cor_retain", "NULL is documented as allowed: returns NULL"},
    {"cor_release", "NULL is documented as allowed: a no-op"},
    {"cor_dump_tasks", "takes no pointer (a bad fd gives the write's error)"},
    {"cor_process_worker_check", "takes no argument"},
    {"cor_log_set_level", "takes no pointer"},
    {"cor_log_get_level", "takes no argument"},
    {"cor_log_enabled", "takes no pointer"},
    {"cor_log_set_sink", "NULL is documented as allowed: the default sink"},
    {"cor_log_set_async", "takes no pointer"},
    {"cor_log_flush", "takes no argument"},
    {"cor_log_level_name", "takes no pointer (any level has a name)"},
    {"cor_loop_new", "NULL is documented as allowed: the default options"},
    {"cor_get_running_loop", "takes no argument"},
    {"cor_loop_time", "the loop is not read: one process-wide clock"},
    {"cor_loop_time_ns", "the loop is not read: one process-wide clock"},
    {"cor_current_task", "takes no argument"},
    {"cor_taskgroup_new", "takes no argument: acts on the calling task"},
    {"cor_sleep", "takes no pointer: acts on the calling task"},
    {"cor_sleep_at", "acts on the calling task; file is a label that may be "
                     "NULL"},
    {"cor_yield", "takes no argument: acts on the calling task"},
    {"cor_yield_at", "acts on the calling task; file is a label that may be "
                     "NULL"},
};
#define NEXEMPT (sizeof exempt / sizeof exempt[0])

#define WHAT "bad-argument"
static void test_every_call_is_listed(void **state) {
  (void)state;
  API_CHECK_TABLES(WHAT, rows, NROWS, false, exempt, NEXEMPT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_call_is_listed),
      cmocka_unit_test_setup_teardown(test_bad_args, logcap_setup, logcap_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
