/* SPDX-License-Identifier: MIT */
/* The wrong-thread check, call by call: every public call that belongs to a
 * loop's thread is made from a thread that does not own the loop (a plain
 * thread, and a task of another loop) and must return COR_ETHREAD (NULL, 0
 * or nothing with errno 4001 when its type has no room for a code), log one
 * ERROR naming the call, and leave the object alone. A second test reads
 * the headers of include/corio and fails when a declared cor_* call is
 * neither in the table nor in the exemption list, so a new call cannot skip
 * the check unnoticed. */
#include "testutil.h"

#include <corio.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>


/* ------------------------------------------------------------ capture */

#include "logcap.h"
#include "apilist.h"


static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ runners */

typedef struct {
  cor_loop_t *loop;
  pthread_t th;
  int started, exited;
} runner;

static void mark_started(void *arg) {
  __atomic_store_n(&((runner *)arg)->started, 1, __ATOMIC_RELEASE);
}
static void stop_cb(void *l) { cor_loop_stop(l); }
static void *run_loop(void *arg) {
  runner *r = arg;
  cor_call_soon(r->loop, mark_started, r, NULL);
  cor_loop_run_forever(r->loop);
  __atomic_store_n(&r->exited, 1, __ATOMIC_RELEASE);
  return NULL;
}
static void runner_start(runner *r, cor_loop_t *l) {
  r->loop = l;
  r->started = r->exited = 0;
  assert_int_equal(pthread_create(&r->th, NULL, run_loop, r), 0);
  while (!__atomic_load_n(&r->started, __ATOMIC_ACQUIRE))
    sleep_ms(1);
}
static void runner_stop(runner *r) {
  assert_int_equal(cor_call_soon_threadsafe(r->loop, stop_cb, r->loop), 0);
  pthread_join(r->th, NULL);
}

/* Runs coro as a task on loop and waits (at most 10 s) for its code. */
static int run_on(cor_loop_t *loop, cor_coro_t *coro) {
  cor_cfuture_t *cf = cor_run_coroutine_threadsafe(coro, loop);
  assert_non_null(cf);
  int rc = cor_cfuture_result(cf, 10, NULL);
  cor_release(cf);
  return rc;
}

/* ------------------------------------------------------------ the objects */

/* Everything the rows call on, all belonging to loop A (E.loop), which runs
 * on its own thread while the rows run. */
static struct {
  cor_loop_t *loop;
  cor_future_t *fut;      /* pending */
  cor_future_t *hold;     /* what the idle and parent tasks await */
  cor_task_t *task;       /* "idle", waiting for hold */
  cor_task_t *parent;     /* made the group, waits for hold, then for it */
  cor_taskgroup_t *group; /* set by parent on A (atomic) */
  cor_timeout_t *scope;   /* parent's time-out scope (set before group) */
  cor_file_t *file;       /* /dev/null, opened by parent (set before group) */
  cor_as_completed_t *ac; /* watches fut */
  cor_stream_t *stream;   /* one end of a socketpair */
  int peer;               /* the other end */
  cor_server_t *server;   /* single-loop, on 127.0.0.1 */
  cor_datagram_t *dgram;  /* UDP on 127.0.0.1 */
  cor_process_t *proc;    /* `cat`, stdin and stdout piped */
  cor_executor_t *pool, *ppool;
  int rfd, wfd;           /* a readable pipe end, a writable one */
  size_t stack_size;      /* A's task stack size before the rows */
  cor_queue_t *queue;     /* maxsize 2, holding one item (7) */
  cor_lock_t *lock;       /* free */
  cor_event_t *event;     /* unset */
  cor_semaphore_t *sem;   /* bounded, value 1 */
  cor_condition_t *cond;  /* over lock */
  cor_barrier_t *barrier; /* 2 parties, empty */
  cor_server_t *pserver;  /* a protocol server on 127.0.0.1 */
  cor_transport_t *xp;    /* its one connection (set on A, atomic) */
  int xpeer;              /* that connection's client end */
} E;

/* Anything a refused call would have scheduled or started: must stay 0. */
static int bad_runs;
static void bad_cb(void *arg) { __atomic_add_fetch(&bad_runs, 1, __ATOMIC_RELAXED); }
static void bad_done(cor_future_t *f, void *arg) { bad_cb(arg); }
static int bad_body(void *arg, void **r) {
  bad_cb(arg);
  return 0;
}
static void bad_handler(cor_loop_t *l, const cor_exception_context *c, void *a) {
  bad_cb(a);
}

static int idle_body(void *arg, void **r) { return cor_await(arg, NULL); }
static int parent_body(void *arg, void **r) {
  cor_taskgroup_t *g = cor_taskgroup_new();
  if (g == NULL)
    return -errno;
  E.scope = cor_timeout_enter(COR_FOREVER);
  if (E.scope == NULL)
    return -errno;
  int frc = cor_file_open("/dev/null", O_RDWR, 0, &E.file);
  if (frc != 0)
    return frc;
  __atomic_store_n(&E.group, g, __ATOMIC_RELEASE);
  int rc = cor_await(E.hold, NULL);
  int wrc = cor_taskgroup_wait(g);
  rc = cor_timeout_exit(E.scope, rc);
  int crc = cor_file_close(E.file);
  cor_file_free(E.file);
  return rc ? rc : wrc ? wrc : crc;
}
static int spawn_body(void *arg, void **r) {
  static const char *const argv[] = {"cat", NULL};
  cor_subprocess_opts o = {.stdin_mode = COR_STDIO_PIPE,
                           .stdout_mode = COR_STDIO_PIPE};
  return cor_subprocess_exec(argv, &o, &E.proc);
}
static int srv_handler(void *arg, void **r) { return 0; }

/* ------------------------------------------------------------ the rows */

/* Each wrapper makes one call on A's objects and returns COR_ETHREAD when the
 * call refused as it must: the code itself for int calls; for the others
 * their zero value with errno 4001. */
#define ETH(x) ((x) == COR_ETHREAD ? COR_ETHREAD : (int)(x))
#define PTR_CALL(expr)                                                         \
  (errno = 0, (expr) == NULL && errno == -COR_ETHREAD ? COR_ETHREAD : -1)
#define VAL_CALL(expr)                                                         \
  (errno = 0, (expr) == 0 && errno == -COR_ETHREAD ? COR_ETHREAD : -1)
#define VOID_CALL(expr)                                                        \
  (errno = 0, (expr), errno == -COR_ETHREAD ? COR_ETHREAD : -1)

static char scratch[64];
static const cor_server_opts srv_opts = {.host = "127.0.0.1"};
static const cor_datagram_opts dg_opts = {.local_host = "127.0.0.1"};
static int wt_marker;
static void wt_made(cor_transport_t *t, void *arg) {
  __atomic_store_n(&E.xp, t, __ATOMIC_RELEASE);
}
static const cor_protocol wt_proto = {.connection_made = wt_made};

/* loop.h */
static int c_run_forever(void) { return cor_loop_run_forever(E.loop); }
static int c_stop(void) { return cor_loop_stop(E.loop); }
static int c_close(void) { return cor_loop_close(E.loop); }
static int c_call_soon(void) { return cor_call_soon(E.loop, bad_cb, NULL, NULL); }
static int c_call_later(void) { return cor_call_later(E.loop, 0, bad_cb, NULL, NULL); }
static int c_call_at(void) { return cor_call_at(E.loop, 0, bad_cb, NULL, NULL); }
static int c_call_at_ns(void) { return cor_call_at_ns(E.loop, 0, bad_cb, NULL, NULL); }
static int c_handle_cancel(void) { return cor_handle_cancel(E.loop, (cor_handle_t){1}); }
static int c_add_reader(void) { return cor_loop_add_reader(E.loop, E.rfd, bad_cb, NULL); }
static int c_add_writer(void) { return cor_loop_add_writer(E.loop, E.wfd, bad_cb, NULL); }
static int c_remove_reader(void) { return cor_loop_remove_reader(E.loop, E.rfd); }
static int c_remove_writer(void) { return cor_loop_remove_writer(E.loop, E.wfd); }
static int c_add_signal(void) { return cor_loop_add_signal_handler(E.loop, SIGUSR2, bad_cb, NULL); }
static int c_remove_signal(void) { return cor_loop_remove_signal_handler(E.loop, SIGUSR2); }
static int c_set_debug(void) { return cor_loop_set_debug(E.loop, true); }
static int c_get_debug(void) { return VAL_CALL(cor_loop_get_debug(E.loop)); }
/* future.h */
static int c_future_new(void) { return PTR_CALL(cor_future_new(E.loop)); }
static int c_set_result(void) { return cor_future_set_result(E.fut, NULL); }
static int c_set_error(void) { return cor_future_set_error(E.fut, -EIO, NULL); }
static int c_future_cancel(void) { return cor_future_cancel(E.fut, NULL); }
static int c_result(void) { return cor_future_result(E.fut, NULL); }
static int c_message(void) { return PTR_CALL(cor_future_message(E.fut)); }
static int c_error_site(void) {
  const char *file;
  int line;
  return cor_future_error_site(E.fut, &file, &line);
}
static int c_add_done(void) { return cor_future_add_done_callback(E.fut, bad_done, NULL); }
static int c_remove_done(void) { return cor_future_remove_done_callback(E.fut, bad_done, NULL); }
static int c_run_until(void) { return cor_loop_run_until_complete(E.loop, E.fut); }
/* task.h */
static int c_create_task(void) { return PTR_CALL(cor_create_task(E.loop, cor_coro(bad_body, NULL), "bad")); }
static int c_task_name(void) { return PTR_CALL(cor_task_name(E.task)); }
static int c_task_set_name(void) { return cor_task_set_name(E.task, "renamed"); }
static int c_all_tasks(void) {
  cor_task_t *out[4];
  return VAL_CALL(cor_all_tasks(E.loop, out, 4));
}
/* The suspending calls come in two forms: the macro (cor_await_at with the
 * caller's file and line) and the real function of the same name. */
static int c_await(void) { return (cor_await)(E.fut, NULL); }
static int c_await_at(void) { return cor_await(E.fut, NULL); }
static int c_task_cancel(void) { return cor_task_cancel(E.task, "no"); }
static int c_cancelling(void) { return cor_task_cancelling(E.task); }
static int c_uncancel(void) { return cor_task_uncancel(E.task); }
static int c_wait_for(void) { return (cor_wait_for)(E.fut, 0.01, NULL); }
static int c_wait_for_at(void) { return cor_wait_for(E.fut, 0.01, NULL); }
static int c_shield(void) { return PTR_CALL(cor_shield(E.fut)); }
static int c_gather(void) { return (cor_gather)(&E.fut, 1, NULL, NULL); }
static int c_gather_at(void) { return cor_gather(&E.fut, 1, NULL, NULL); }
static int c_tg_spawn(void) { return PTR_CALL(cor_taskgroup_spawn(E.group, cor_coro(bad_body, NULL), "bad")); }
static int c_tg_wait(void) { return (cor_taskgroup_wait)(E.group); }
static int c_tg_wait_at(void) { return cor_taskgroup_wait(E.group); }
static int c_wait(void) { return (cor_wait)(&E.fut, 1, COR_ALL_COMPLETED, 0.01, NULL); }
static int c_wait_at(void) { return cor_wait(&E.fut, 1, COR_ALL_COMPLETED, 0.01, NULL); }
static int c_ac_new(void) { return PTR_CALL(cor_as_completed_new(&E.fut, 1, 1)); }
static int c_ac_next(void) {
  cor_future_t *f;
  return (cor_as_completed_next)(E.ac, &f);
}
static int c_ac_next_at(void) {
  cor_future_t *f;
  return cor_as_completed_next(E.ac, &f);
}
static int c_to_resched(void) { return cor_timeout_reschedule(E.scope, 1e9); }
static int c_to_when(void) {
  errno = 0;
  return isnan(cor_timeout_when(E.scope)) && errno == -COR_ETHREAD ? COR_ETHREAD : -1;
}
static int c_to_expired(void) { return VAL_CALL(cor_timeout_expired(E.scope)); }
static int c_to_exit(void) { return cor_timeout_exit(E.scope, 0); }
static int c_writev(void) {
  struct iovec v[1] = {{(void *)"x", 1}};
  return cor_stream_writev(E.stream, v, 1);
}
static int c_sendfile(void) { return (int)cor_stream_sendfile(E.stream, E.rfd, 0, 1); }
static int c_file_pread(void) { return (int)cor_file_pread(E.file, scratch, 1, 0); }
static int c_file_pwrite(void) { return (int)cor_file_pwrite(E.file, "x", 1, 0); }
static int c_file_fsync(void) { return cor_file_fsync(E.file); }
static int c_file_close(void) { return cor_file_close(E.file); }
static int c_file_free(void) { return VOID_CALL(cor_file_free(E.file)); }
static int c_file_fd(void) { return cor_file_fd(E.file); }
static int c_set_stack(void) { return cor_loop_set_task_stack_size(E.loop, 1 << 20); }
static int c_get_stack(void) { return VAL_CALL(cor_loop_get_task_stack_size(E.loop)); }
/* debug.h */
static int c_set_handler(void) { return cor_loop_set_exception_handler(E.loop, bad_handler, NULL); }
static int c_set_slow(void) { return cor_loop_set_slow_callback_duration(E.loop, 1); }
static int c_get_slow(void) { return VAL_CALL(cor_loop_get_slow_callback_duration(E.loop)); }
static int c_watchdog(void) { return cor_loop_set_watchdog(E.loop, 1); }
/* executor.h */
static int bad_job(void *arg, void **r) {
  bad_cb(arg);
  return 0;
}
static int c_in_executor(void) { return PTR_CALL(cor_run_in_executor(E.loop, E.pool, bad_job, NULL)); }
static int c_in_process(void) { return PTR_CALL(cor_run_in_process(E.loop, E.ppool, "no_such_job", NULL, 0)); }
/* stream.h: streams */
static int c_from_fd(void) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    return -errno;
  close(p[1]);
  return PTR_CALL(cor_stream_from_fd(E.loop, p[0])); /* closes p[0] */
}
static int c_read(void) { return ETH(cor_stream_read(E.stream, scratch, sizeof scratch)); }
static int c_readexactly(void) { return ETH(cor_stream_readexactly(E.stream, scratch, 5, NULL)); }
static int c_readuntil(void) { return ETH(cor_stream_readuntil(E.stream, "l", 1, scratch, sizeof scratch, NULL)); }
static int c_readline(void) { return ETH(cor_stream_readline(E.stream, scratch, sizeof scratch)); }
static int c_peek(void) {
  const char *d;
  return ETH(cor_stream_peek(E.stream, 1, &d));
}
static int c_consume(void) { return VOID_CALL(cor_stream_consume(E.stream, 5)); }
static int c_buffered(void) { return VAL_CALL(cor_stream_buffered(E.stream)); }
static int c_at_eof(void) { return VAL_CALL(cor_stream_at_eof(E.stream)); }
static int c_write(void) { return cor_stream_write(E.stream, "bad", 3); }
static int c_drain(void) { return cor_stream_drain(E.stream); }
static int c_write_buffered(void) { return VAL_CALL(cor_stream_write_buffered(E.stream)); }
static int c_write_eof(void) { return cor_stream_write_eof(E.stream); }
static int c_set_limit(void) { return cor_stream_set_limit(E.stream, 1); }
static int c_set_wlimits(void) { return cor_stream_set_write_buffer_limits(E.stream, 2, 1); }
static int c_set_timeouts(void) { return cor_stream_set_timeouts(E.stream, 0.001, 0.001); }
static int c_stream_fd(void) { return cor_stream_fd(E.stream); }
static cor_tls_ctx_t *wt_tls;
static int c_start_tls(void) {
  if (wt_tls == NULL)
    wt_tls = cor_tls_ctx_new(&(cor_tls_opts){.insecure = true});
  return cor_stream_start_tls(E.stream, wt_tls, "localhost", 1);
}
static int c_tls_version(void) { return PTR_CALL(cor_stream_tls_version(E.stream)); }
static int c_tls_cipher(void) { return PTR_CALL(cor_stream_tls_cipher(E.stream)); }
static int c_tls_alpn(void) { return PTR_CALL(cor_stream_tls_alpn(E.stream)); }
static int c_tls_verified(void) { return VAL_CALL(cor_stream_tls_verified(E.stream)); }
static int c_error_message(void) { return PTR_CALL(cor_stream_error_message(E.stream)); }
static int c_sockname(void) {
  struct sockaddr_storage ss;
  unsigned l = sizeof ss;
  return cor_stream_sockname(E.stream, (struct sockaddr *)&ss, &l);
}
static int c_peername(void) {
  struct sockaddr_storage ss;
  unsigned l = sizeof ss;
  return cor_stream_peername(E.stream, (struct sockaddr *)&ss, &l);
}
static int c_stream_close(void) { return cor_stream_close(E.stream); }
static int c_stream_wait_closed(void) { return cor_stream_wait_closed(E.stream); }
static int c_stream_free(void) { return VOID_CALL(cor_stream_free(E.stream)); }
/* stream.h: servers */
static int c_start_server(void) { return PTR_CALL(cor_start_server(E.loop, &srv_opts, srv_handler)); }
static int c_handler_arg(void) { return PTR_CALL(cor_server_handler_arg(E.stream)); }
static int c_server_close(void) { return cor_server_close(E.server); }
static int c_close_clients(void) { return cor_server_close_clients(E.server); }
static int c_server_wait_closed(void) { return cor_server_wait_closed(E.server, 0.01); }
static int c_server_free(void) { return VOID_CALL(cor_server_free(E.server)); }
/* transport.h */
static int c_start_pserver(void) { return PTR_CALL(cor_start_protocol_server(E.loop, &srv_opts, &wt_proto, NULL)); }
static int c_create_conn(void) { return cor_create_connection(E.loop, "127.0.0.1", "1", NULL, &wt_proto, NULL, NULL); }
static int c_tr_write(void) { return cor_transport_write(E.xp, "bad", 3); }
static int c_tr_writev(void) {
  struct iovec iov = {"bad", 3};
  return cor_transport_writev(E.xp, &iov, 1);
}
static int c_tr_write_eof(void) { return cor_transport_write_eof(E.xp); }
static int c_tr_close(void) { return cor_transport_close(E.xp); }
static int c_tr_abort(void) { return VOID_CALL(cor_transport_abort(E.xp)); }
static int c_tr_pause(void) { return cor_transport_pause_reading(E.xp); }
static int c_tr_resume(void) { return cor_transport_resume_reading(E.xp); }
static int c_tr_wbs(void) { return VAL_CALL(cor_transport_write_buffer_size(E.xp)); }
static int c_tr_limits(void) { return cor_transport_set_write_buffer_limits(E.xp, 2, 1); }
static int c_tr_set_arg(void) { return VOID_CALL(cor_transport_set_arg(E.xp, NULL)); }
static int c_tr_get_arg(void) { return PTR_CALL(cor_transport_get_arg(E.xp)); }
static int c_tr_fd(void) { return cor_transport_fd(E.xp); }
/* stream.h: datagrams */
static int c_open_datagram(void) { return PTR_CALL(cor_open_datagram(E.loop, &dg_opts)); }
static int c_dg_recv(void) { return ETH(cor_datagram_recv(E.dgram, scratch, sizeof scratch, NULL, NULL, 0.01)); }
static int c_dg_send(void) { return cor_datagram_send(E.dgram, "x", 1, NULL, 0); }
static int c_dg_port(void) { return cor_datagram_port(E.dgram); }
static cor_dgram_msg dg_msg = {.buf = scratch, .cap = sizeof scratch, .len = 1};
static int c_dg_sendto(void) { return cor_datagram_sendto(E.dgram, "x", 1, "127.0.0.1", 9); }
static int c_dg_recv_many(void) { return ETH(cor_datagram_recv_many(E.dgram, &dg_msg, 1, 0.01)); }
static int c_dg_send_many(void) { return cor_datagram_send_many(E.dgram, &dg_msg, 1); }
static int c_dg_join(void) { return cor_datagram_join_group(E.dgram, "239.1.2.3", NULL); }
static int c_dg_leave(void) { return cor_datagram_leave_group(E.dgram, "239.1.2.3", NULL); }
static int c_dg_ttl(void) { return cor_datagram_set_multicast_ttl(E.dgram, 1); }
static int c_dg_mloop(void) { return cor_datagram_set_multicast_loop(E.dgram, true); }
static int c_dg_close(void) { return cor_datagram_close(E.dgram); }
static int c_dg_free(void) { return VOID_CALL(cor_datagram_free(E.dgram)); }
static int c_proc_close(void) { return cor_process_close(E.proc); }
/* stream.h: processes */
static int c_proc_stdin(void) { return PTR_CALL(cor_process_stdin(E.proc)); }
static int c_proc_stdout(void) { return PTR_CALL(cor_process_stdout(E.proc)); }
static int c_proc_stderr(void) { return PTR_CALL(cor_process_stderr(E.proc)); }
static int c_proc_pid(void) { return cor_process_pid(E.proc); }
static int c_proc_wait(void) {
  int st;
  return cor_process_wait(E.proc, 0.01, &st);
}
static int c_proc_kill(void) { return cor_process_kill(E.proc, SIGKILL); }
static int c_proc_communicate(void) {
  return cor_process_communicate(E.proc, "x", 1, NULL, NULL, 0.01);
}
static int c_proc_free(void) { return VOID_CALL(cor_process_free(E.proc)); }
/* queue.h */
static void *q_item;
static int c_queue_new(void) { return PTR_CALL(cor_queue_new(E.loop, NULL)); }
static int c_queue_put(void) { return cor_queue_put(E.queue, (void *)1); }
static int c_queue_get(void) { return cor_queue_get(E.queue, &q_item); }
static int c_queue_put_nowait(void) { return cor_queue_put_nowait(E.queue, (void *)1); }
static int c_queue_get_nowait(void) { return cor_queue_get_nowait(E.queue, &q_item); }
static int c_queue_task_done(void) { return cor_queue_task_done(E.queue); }
static int c_queue_join(void) { return cor_queue_join(E.queue); }
static int c_queue_shutdown(void) { return cor_queue_shutdown(E.queue, true); }
static int c_queue_qsize(void) { return VAL_CALL(cor_queue_qsize(E.queue)); }
static int c_queue_maxsize(void) { return VAL_CALL(cor_queue_maxsize(E.queue)); }
static int c_queue_empty(void) { return VAL_CALL(cor_queue_empty(E.queue)); }
static int c_queue_full(void) { return VAL_CALL(cor_queue_full(E.queue)); }

/* sync.h */
static int c_lock_new(void) { return PTR_CALL(cor_lock_new(E.loop)); }
static int c_lock_acquire(void) { return cor_lock_acquire(E.lock); }
static int c_lock_release(void) { return cor_lock_release(E.lock); }
static int c_lock_locked(void) { return VAL_CALL(cor_lock_locked(E.lock)); }
static int c_event_new(void) { return PTR_CALL(cor_event_new(E.loop)); }
static int c_event_wait(void) { return cor_event_wait(E.event); }
static int c_event_set(void) { return VOID_CALL(cor_event_set(E.event)); }
static int c_event_clear(void) { return VOID_CALL(cor_event_clear(E.event)); }
static int c_event_is_set(void) { return VAL_CALL(cor_event_is_set(E.event)); }
static int c_sem_new(void) { return PTR_CALL(cor_semaphore_new(E.loop, 1, false)); }
static int c_sem_acquire(void) { return cor_semaphore_acquire(E.sem); }
static int c_sem_release(void) { return cor_semaphore_release(E.sem); }
static int c_sem_locked(void) { return VAL_CALL(cor_semaphore_locked(E.sem)); }
static int c_cond_new(void) { return PTR_CALL(cor_condition_new(E.loop, E.lock)); }
static int c_cond_lock(void) { return PTR_CALL(cor_condition_lock(E.cond)); }
static int c_cond_wait(void) { return cor_condition_wait(E.cond); }
static bool never(void *arg) { bad_cb(arg); return false; }
static int c_cond_wait_for(void) { return cor_condition_wait_for(E.cond, never, NULL); }
static int c_cond_notify(void) { return cor_condition_notify(E.cond, 1); }
static int c_cond_notify_all(void) { return cor_condition_notify_all(E.cond); }
static int c_barrier_new(void) { return PTR_CALL(cor_barrier_new(E.loop, 2)); }
static int c_barrier_wait(void) {
  unsigned i;
  return cor_barrier_wait(E.barrier, &i);
}
static int c_barrier_abort(void) { return cor_barrier_abort(E.barrier); }
static int c_barrier_reset(void) { return cor_barrier_reset(E.barrier); }
static int c_barrier_parties(void) { return VAL_CALL(cor_barrier_parties(E.barrier)); }
static int c_barrier_n_waiting(void) { return VAL_CALL(cor_barrier_n_waiting(E.barrier)); }
static int c_barrier_broken(void) { return VAL_CALL(cor_barrier_broken(E.barrier)); }

/* TASK: the call needs a running task (outside one it is COR_ENOTASK, for
 * the calling task is what it acts on), so it is only made from a task of
 * another loop. Every other row runs from both. */
enum { ANY = 0, TASK = 1 };

static const struct {
  const char *name;
  int (*call)(void);
  int where;
} rows[] = {
    {"cor_loop_run_forever", c_run_forever, ANY},
    {"cor_loop_stop", c_stop, ANY},
    {"cor_loop_close", c_close, ANY},
    {"cor_call_soon", c_call_soon, ANY},
    {"cor_call_later", c_call_later, ANY},
    {"cor_call_at", c_call_at, ANY},
    {"cor_call_at_ns", c_call_at_ns, ANY},
    {"cor_handle_cancel", c_handle_cancel, ANY},
    {"cor_loop_add_reader", c_add_reader, ANY},
    {"cor_loop_add_writer", c_add_writer, ANY},
    {"cor_loop_remove_reader", c_remove_reader, ANY},
    {"cor_loop_remove_writer", c_remove_writer, ANY},
    {"cor_loop_add_signal_handler", c_add_signal, ANY},
    {"cor_loop_remove_signal_handler", c_remove_signal, ANY},
    {"cor_loop_set_debug", c_set_debug, ANY},
    {"cor_loop_get_debug", c_get_debug, ANY},
    {"cor_future_new", c_future_new, ANY},
    {"cor_future_set_result", c_set_result, ANY},
    {"cor_future_set_error", c_set_error, ANY},
    {"cor_future_cancel", c_future_cancel, ANY},
    {"cor_future_result", c_result, ANY},
    {"cor_future_message", c_message, ANY},
    {"cor_future_error_site", c_error_site, ANY},
    {"cor_future_add_done_callback", c_add_done, ANY},
    {"cor_future_remove_done_callback", c_remove_done, ANY},
    {"cor_loop_run_until_complete", c_run_until, ANY},
    {"cor_create_task", c_create_task, ANY},
    {"cor_task_name", c_task_name, ANY},
    {"cor_task_set_name", c_task_set_name, ANY},
    {"cor_all_tasks", c_all_tasks, ANY},
    {"cor_await", c_await, TASK},
    {"cor_await_at", c_await_at, TASK},
    {"cor_task_cancel", c_task_cancel, ANY},
    {"cor_task_cancelling", c_cancelling, ANY},
    {"cor_task_uncancel", c_uncancel, ANY},
    {"cor_wait_for", c_wait_for, TASK},
    {"cor_wait_for_at", c_wait_for_at, TASK},
    {"cor_shield", c_shield, ANY},
    {"cor_gather", c_gather, TASK},
    {"cor_gather_at", c_gather_at, TASK},
    {"cor_taskgroup_spawn", c_tg_spawn, ANY},
    {"cor_taskgroup_wait", c_tg_wait, TASK},
    {"cor_taskgroup_wait_at", c_tg_wait_at, TASK},
    {"cor_wait", c_wait, TASK},
    {"cor_wait_at", c_wait_at, TASK},
    {"cor_as_completed_new", c_ac_new, ANY},
    {"cor_as_completed_next", c_ac_next, TASK},
    {"cor_as_completed_next_at", c_ac_next_at, TASK},
    {"cor_timeout_reschedule", c_to_resched, ANY},
    {"cor_timeout_when", c_to_when, ANY},
    {"cor_timeout_expired", c_to_expired, ANY},
    {"cor_timeout_exit", c_to_exit, ANY},
    {"cor_loop_set_task_stack_size", c_set_stack, ANY},
    {"cor_loop_get_task_stack_size", c_get_stack, ANY},
    {"cor_loop_set_exception_handler", c_set_handler, ANY},
    {"cor_loop_set_slow_callback_duration", c_set_slow, ANY},
    {"cor_loop_get_slow_callback_duration", c_get_slow, ANY},
    {"cor_loop_set_watchdog", c_watchdog, ANY},
    {"cor_run_in_executor", c_in_executor, ANY},
    {"cor_run_in_process", c_in_process, ANY},
    {"cor_stream_from_fd", c_from_fd, ANY},
    {"cor_stream_read", c_read, ANY},
    {"cor_stream_readexactly", c_readexactly, ANY},
    {"cor_stream_readuntil", c_readuntil, ANY},
    {"cor_stream_readline", c_readline, ANY},
    {"cor_stream_peek", c_peek, ANY},
    {"cor_stream_consume", c_consume, ANY},
    {"cor_stream_buffered", c_buffered, ANY},
    {"cor_stream_at_eof", c_at_eof, ANY},
    {"cor_stream_write", c_write, ANY},
    {"cor_stream_writev", c_writev, ANY},
    {"cor_file_pread", c_file_pread, ANY},
    {"cor_file_pwrite", c_file_pwrite, ANY},
    {"cor_file_fsync", c_file_fsync, ANY},
    {"cor_file_close", c_file_close, ANY},
    {"cor_file_free", c_file_free, ANY},
    {"cor_file_fd", c_file_fd, ANY},
    {"cor_stream_sendfile", c_sendfile, ANY},
    {"cor_stream_drain", c_drain, ANY},
    {"cor_stream_write_buffered", c_write_buffered, ANY},
    {"cor_stream_write_eof", c_write_eof, ANY},
    {"cor_stream_set_limit", c_set_limit, ANY},
    {"cor_stream_set_write_buffer_limits", c_set_wlimits, ANY},
    {"cor_stream_set_timeouts", c_set_timeouts, ANY},
    {"cor_stream_fd", c_stream_fd, ANY},
    {"cor_stream_start_tls", c_start_tls, ANY},
    {"cor_stream_tls_version", c_tls_version, ANY},
    {"cor_stream_tls_cipher", c_tls_cipher, ANY},
    {"cor_stream_tls_alpn", c_tls_alpn, ANY},
    {"cor_stream_tls_verified", c_tls_verified, ANY},
    {"cor_stream_error_message", c_error_message, ANY},
    {"cor_stream_sockname", c_sockname, ANY},
    {"cor_stream_peername", c_peername, ANY},
    {"cor_stream_close", c_stream_close, ANY},
    {"cor_stream_wait_closed", c_stream_wait_closed, ANY},
    {"cor_stream_free", c_stream_free, ANY},
    {"cor_start_server", c_start_server, ANY},
    {"cor_server_handler_arg", c_handler_arg, ANY},
    {"cor_server_close", c_server_close, ANY},
    {"cor_server_close_clients", c_close_clients, ANY},
    {"cor_server_wait_closed", c_server_wait_closed, ANY},
    {"cor_server_free", c_server_free, ANY},
    {"cor_start_protocol_server", c_start_pserver, ANY},
    {"cor_create_connection", c_create_conn, ANY},
    {"cor_transport_write", c_tr_write, ANY},
    {"cor_transport_writev", c_tr_writev, ANY},
    {"cor_transport_write_eof", c_tr_write_eof, ANY},
    {"cor_transport_close", c_tr_close, ANY},
    {"cor_transport_abort", c_tr_abort, ANY},
    {"cor_transport_pause_reading", c_tr_pause, ANY},
    {"cor_transport_resume_reading", c_tr_resume, ANY},
    {"cor_transport_write_buffer_size", c_tr_wbs, ANY},
    {"cor_transport_set_write_buffer_limits", c_tr_limits, ANY},
    {"cor_transport_set_arg", c_tr_set_arg, ANY},
    {"cor_transport_get_arg", c_tr_get_arg, ANY},
    {"cor_transport_fd", c_tr_fd, ANY},
    {"cor_open_datagram", c_open_datagram, ANY},
    {"cor_datagram_recv", c_dg_recv, ANY},
    {"cor_datagram_send", c_dg_send, ANY},
    {"cor_datagram_port", c_dg_port, ANY},
    {"cor_datagram_sendto", c_dg_sendto, ANY},
    {"cor_datagram_recv_many", c_dg_recv_many, ANY},
    {"cor_datagram_send_many", c_dg_send_many, ANY},
    {"cor_datagram_join_group", c_dg_join, ANY},
    {"cor_datagram_leave_group", c_dg_leave, ANY},
    {"cor_datagram_set_multicast_ttl", c_dg_ttl, ANY},
    {"cor_datagram_set_multicast_loop", c_dg_mloop, ANY},
    {"cor_datagram_close", c_dg_close, ANY},
    {"cor_datagram_free", c_dg_free, ANY},
    {"cor_process_stdin", c_proc_stdin, ANY},
    {"cor_process_stdout", c_proc_stdout, ANY},
    {"cor_process_stderr", c_proc_stderr, ANY},
    {"cor_process_pid", c_proc_pid, ANY},
    {"cor_process_wait", c_proc_wait, ANY},
    {"cor_process_communicate", c_proc_communicate, ANY},
    {"cor_process_kill", c_proc_kill, ANY},
    {"cor_process_close", c_proc_close, ANY},
    {"cor_process_free", c_proc_free, ANY},
    {"cor_queue_new", c_queue_new, ANY},
    {"cor_queue_put", c_queue_put, ANY},
    {"cor_queue_get", c_queue_get, ANY},
    {"cor_queue_put_nowait", c_queue_put_nowait, ANY},
    {"cor_queue_get_nowait", c_queue_get_nowait, ANY},
    {"cor_queue_task_done", c_queue_task_done, ANY},
    {"cor_queue_join", c_queue_join, ANY},
    {"cor_queue_shutdown", c_queue_shutdown, ANY},
    {"cor_queue_qsize", c_queue_qsize, ANY},
    {"cor_queue_maxsize", c_queue_maxsize, ANY},
    {"cor_queue_empty", c_queue_empty, ANY},
    {"cor_queue_full", c_queue_full, ANY},
    {"cor_lock_new", c_lock_new, ANY},
    {"cor_lock_acquire", c_lock_acquire, ANY},
    {"cor_lock_release", c_lock_release, ANY},
    {"cor_lock_locked", c_lock_locked, ANY},
    {"cor_event_new", c_event_new, ANY},
    {"cor_event_wait", c_event_wait, ANY},
    {"cor_event_set", c_event_set, ANY},
    {"cor_event_clear", c_event_clear, ANY},
    {"cor_event_is_set", c_event_is_set, ANY},
    {"cor_semaphore_new", c_sem_new, ANY},
    {"cor_semaphore_acquire", c_sem_acquire, ANY},
    {"cor_semaphore_release", c_sem_release, ANY},
    {"cor_semaphore_locked", c_sem_locked, ANY},
    {"cor_condition_new", c_cond_new, ANY},
    {"cor_condition_lock", c_cond_lock, ANY},
    {"cor_condition_wait", c_cond_wait, ANY},
    {"cor_condition_wait_for", c_cond_wait_for, ANY},
    {"cor_condition_notify", c_cond_notify, ANY},
    {"cor_condition_notify_all", c_cond_notify_all, ANY},
    {"cor_barrier_new", c_barrier_new, ANY},
    {"cor_barrier_wait", c_barrier_wait, ANY},
    {"cor_barrier_abort", c_barrier_abort, ANY},
    {"cor_barrier_reset", c_barrier_reset, ANY},
    {"cor_barrier_parties", c_barrier_parties, ANY},
    {"cor_barrier_n_waiting", c_barrier_n_waiting, ANY},
    {"cor_barrier_broken", c_barrier_broken, ANY},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* Public calls that need no check, each with the reason; each one's header
 * comment says so ("Any thread", "Inside a task", _threadsafe...). */
static const struct {
  const char *name;
  const char *why;
} exempt[] = {
    {"cor_version", "pure: a constant"},
    {"cor_version_hex", "pure: a constant"},
    {"cor_strerror", "pure: the error table"},
    {"cor_err_name", "pure: the error table"},
    {"cor_retain", "any thread: atomic reference count"},
    {"cor_release", "any thread: atomic reference count"},
    {"cor_loop_new", "any thread: makes a loop nobody owns yet"},
    {"cor_loop_is_running", "any thread: atomic flag"},
    {"cor_loop_is_closed", "any thread: atomic flag"},
    {"cor_get_running_loop", "any thread: the caller's own loop"},
    {"cor_loop_time", "any thread: the monotonic clock"},
    {"cor_loop_time_ns", "any thread: the monotonic clock"},
    {"cor_call_soon_threadsafe", "threadsafe by contract"},
    {"cor_loop_get_stats", "any thread: relaxed counters"},
    {"cor_future_done", "any thread: a plain read of the state"},
    {"cor_future_cancelled", "any thread: a plain read of the state"},
    {"cor_future_loop", "any thread: a field that never changes"},
    {"cor_fail_at", "no loop: records on the calling task or thread"},
    {"cor_coro_new_at", "no loop: a coroutine object, any thread"},
    {"cor_coro_close", "no loop: the thread that made the coroutine"},
    {"cor_task_future", "pure: a cast"},
    {"cor_current_task", "any thread: the caller's own task"},
    {"cor_await_coro", "acts on the calling task only (COR_ENOTASK)"},
    {"cor_sleep", "acts on the calling task only (COR_ENOTASK)"},
    {"cor_yield", "acts on the calling task only (COR_ENOTASK)"},
    {"cor_sleep_at", "acts on the calling task only (COR_ENOTASK)"},
    {"cor_yield_at", "acts on the calling task only (COR_ENOTASK)"},
    {"cor_taskgroup_new", "acts on the calling task only (COR_ENOTASK)"},
    {"cor_timeout_enter", "acts on the calling task only (COR_ENOTASK)"},
    {"cor_timeout_enter_at", "acts on the calling task only (COR_ENOTASK)"},
    {"cor_run", "any thread: makes and runs its own loop"},
    {"cor_loop_default_exception_handler", "any thread by contract"},
    {"cor_loop_call_exception_handler", "any thread by contract"},
    {"cor_dump_tasks", "any thread: reads running loops on their threads"},
    {"cor_log_set_level", "no loop: logger"},
    {"cor_log_get_level", "no loop: logger"},
    {"cor_log_enabled", "no loop: logger"},
    {"cor_log_set_sink", "no loop: logger"},
    {"cor_log_set_async", "no loop: logger"},
    {"cor_log_flush", "no loop: logger"},
    {"cor_log", "no loop: logger"},
    {"cor_log_level_name", "pure: logger"},
    {"cor_thread_pool_new", "any thread: executor"},
    {"cor_tls_ctx_new", "any thread: a context shared by every loop"},
    {"cor_process_pool_new", "any thread: executor"},
    {"cor_executor_submit", "any thread: executor (concurrent future)"},
    {"cor_executor_shutdown", "any thread: executor"},
    {"cor_executor_shutdown_timeout", "any thread: executor"},
    {"cor_executor_max_workers", "any thread: executor"},
    {"cor_bytes_set", "no loop: inside a process job"},
    {"cor_process_job_register", "no loop: a constructor"},
    {"cor_process_worker_check", "no loop: a constructor"},
    {"cor_runtime_new", "any thread: runtime"},
    {"cor_runtime_nloops", "any thread: runtime"},
    {"cor_runtime_loop", "any thread: runtime"},
    {"cor_runtime_loop_cpu", "any thread: runtime"},
    {"cor_runtime_current", "any thread: the caller's own runtime"},
    {"cor_runtime_spawn", "any thread: runtime"},
    {"cor_runtime_spawn_on", "any thread: runtime"},
    {"cor_runtime_run", "any thread: runtime (COR_ETHREAD on its loops)"},
    {"cor_runtime_shutdown", "any thread: runtime (COR_ETHREAD on its loops)"},
    {"cor_runtime_loop_counters", "any thread: relaxed counters"},
    {"cor_runtime_start_server", "any thread: runtime (COR_ETHREAD on its loops: test_server)"},
    {"cor_runtime_start_protocol_server", "any thread: runtime (as cor_runtime_start_server)"},
    {"cor_run_coroutine_threadsafe", "threadsafe by contract"},
    {"cor_cfuture_result", "any thread: concurrent future"},
    {"cor_await_cfuture", "any loop: concurrent future"},
    {"cor_cfuture_cancel", "any thread: concurrent future"},
    {"cor_cfuture_done", "any thread: concurrent future"},
    {"cor_cfuture_cancelled", "any thread: concurrent future"},
    {"cor_cfuture_message", "any thread: concurrent future"},
    {"cor_cfuture_add_done_callback", "any thread: concurrent future"},
    {"cor_cfuture_new", "any thread: concurrent future"},
    {"cor_cfuture_set_result", "any thread: concurrent future"},
    {"cor_cfuture_set_error", "any thread: concurrent future"},
    {"cor_channel_new", "any thread: channels are thread-safe"},
    {"cor_channel_send", "any thread, any loop: channels are thread-safe"},
    {"cor_channel_recv", "any thread, any loop: channels are thread-safe"},
    {"cor_channel_try_send", "any thread, any loop: channels are thread-safe"},
    {"cor_channel_try_recv", "any thread, any loop: channels are thread-safe"},
    {"cor_channel_close", "any thread: channels are thread-safe"},
    {"cor_try_call_soon_threadsafe", "threadsafe by contract"},
    {"cor_call_soon_threadsafe_wait", "threadsafe by contract"},
    {"cor_open_connection", "acts on the calling task's loop (COR_ENOTASK)"},
    {"cor_open_connection_opts", "acts on the calling task's loop (COR_ENOTASK)"},
    {"cor_open_unix_connection", "acts on the calling task's loop (COR_ENOTASK)"},
    {"cor_getaddrinfo", "acts on the calling task's loop (COR_ENOTASK)"},
    {"cor_file_open", "acts on the calling task's loop (COR_ENOTASK)"},
    {"cor_getnameinfo", "acts on the calling task's loop (COR_ENOTASK)"},
    {"cor_subprocess_exec", "acts on the calling thread's running loop"},
    {"cor_subprocess_shell", "acts on the calling thread's running loop"},
    {"cor_server_port", "any thread: a field that never changes"},
    {"cor_server_connections", "any thread: relaxed counter"},
};
#define NEXEMPT (sizeof exempt / sizeof exempt[0])

/* ------------------------------------------------------------ walking */

/* Not inlined and not a tail call, so that debug mode's backtrace of the
 * wrong-thread record has this frame to show. */
static __attribute__((noinline)) int call_row(size_t i) {
  int rc = rows[i].call();
  __asm__ volatile("" ::: "memory");
  return rc;
}

static int row_task(void *arg, void **result) {
  *result = (void *)(intptr_t)call_row((size_t)(uintptr_t)arg);
  return 0;
}

/* The call's outcome and its one ERROR record. */
static void check_row(size_t i, int rc, bool debug, const char *from) {
  if (rc != COR_ETHREAD)
    print_message("%s from %s returned %d\n", rows[i].name, from, rc);
  assert_int_equal(rc, COR_ETHREAD);
  char want[128];
  /* The macro forms (cor_await -> cor_await_at) log the name the user
   * wrote: the call's name without "_at". */
  const char *nm = rows[i].name;
  size_t nl = strlen(nm);
  if (nl > 3 && strcmp(nm + nl - 3, "_at") == 0 && rows[i].where == TASK)
    nl -= 3;
  snprintf(want, sizeof want, "Non-thread-safe operation %.*s() invoked",
           (int)nl, nm);
  int level = 0;
  int k = count_recs(want, "is owned by thread", "called from thread", &level);
  if (k != 1) {
    print_message("%s from %s: %d matching records\n", rows[i].name, from, k);
    dump_recs();
  }
  assert_int_equal(k, 1);
  assert_int_equal(level, COR_LOG_ERROR);
  if (debug) {
    k = count_recs(want, "Stack (most recent call last):", "in call_row", NULL);
    if (k != 1)
      dump_recs();
    assert_int_equal(k, 1);
  } else {
    assert_int_equal(count_recs("Stack (most recent call last)", NULL, NULL, NULL),
                     0);
  }
}

/* On A after the rows: nothing a refused call would have done happened, and
 * everything still works for its owner. A failed check names its line. */
static char owner_why[160];
#define OWN(cond)                                                              \
  do {                                                                         \
    if (!(cond)) {                                                             \
      snprintf(owner_why, sizeof owner_why, "line %d: %s", __LINE__, #cond);   \
      return -1;                                                               \
    }                                                                          \
  } while (0)

static int owner_body(void *arg, void **r) {
  bool debug = (bool)(uintptr_t)arg;
  cor_loop_t *l = E.loop;
  OWN(cor_loop_get_debug(l) == debug);
  OWN(cor_loop_get_slow_callback_duration(l) == 0.1);
  OWN(cor_loop_get_task_stack_size(l) == E.stack_size);
  OWN(cor_loop_remove_reader(l, E.rfd) == -ENOENT);
  OWN(cor_loop_remove_writer(l, E.wfd) == -ENOENT);
  OWN(cor_loop_remove_signal_handler(l, SIGUSR2) == -ENOENT);
  /* idle, parent and this one */
  OWN(cor_all_tasks(l, NULL, 0) == 3);
  OWN(!cor_future_done(E.fut));
  OWN(cor_future_remove_done_callback(E.fut, bad_done, NULL) == 0);
  OWN(!cor_future_done(cor_task_future(E.task)));
  OWN(cor_task_cancelling(E.task) == 0);
  OWN(strcmp(cor_task_name(E.task), "idle") == 0);
  /* The stream: what the peer sent is still there, the stream still open. */
  char buf[8];
  OWN(cor_stream_readexactly(E.stream, buf, 5, NULL) == 5);
  OWN(memcmp(buf, "hello", 5) == 0);
  OWN(cor_stream_write(E.stream, "ok", 2) == 0);
  OWN(cor_stream_close(E.stream) == 0);
  OWN(cor_stream_wait_closed(E.stream) == 0);
  cor_stream_free(E.stream);
  OWN(cor_server_connections(E.server) == 0);
  OWN(cor_server_close(E.server) == 0);
  OWN(cor_server_wait_closed(E.server, 5) == 0);
  cor_server_free(E.server);
  /* The transport: its arg, nothing written or paused by the rows. */
  OWN(cor_transport_get_arg(E.xp) == &wt_marker);
  OWN(cor_transport_write_buffer_size(E.xp) == 0);
  OWN(cor_transport_write(E.xp, "ok", 2) == 0);
  OWN(cor_transport_close(E.xp) == 0);
  OWN(cor_server_close(E.pserver) == 0);
  OWN(cor_server_wait_closed(E.pserver, 5) == 0);
  cor_server_free(E.pserver);
  OWN(cor_datagram_port(E.dgram) > 0);
  OWN(cor_datagram_send(E.dgram, "x", 1, NULL, 0) != COR_ECLOSED);
  OWN(cor_datagram_close(E.dgram) == 0);
  OWN(cor_datagram_close(E.dgram) == 0); /* idempotent */
  OWN(cor_datagram_send(E.dgram, "x", 1, NULL, 0) == COR_ECLOSED);
  cor_datagram_free(E.dgram);
  /* cat is alive (not killed): it exits 0 at the end of its input. */
  OWN(cor_stream_close(cor_process_stdin(E.proc)) == 0);
  int st = -1;
  OWN(cor_process_wait(E.proc, 10, &st) == 0);
  OWN(st == 0);
  cor_process_free(E.proc);
  /* The queue: its one item, not shut down, nothing task_done'd. */
  OWN(cor_queue_qsize(E.queue) == 1);
  void *qi = NULL;
  OWN(cor_queue_get_nowait(E.queue, &qi) == 0 && qi == (void *)7);
  OWN(cor_queue_task_done(E.queue) == 0);
  OWN(cor_queue_task_done(E.queue) == -EPERM);
  OWN(cor_queue_put_nowait(E.queue, NULL) == 0);
  /* The sync objects as they were made. */
  OWN(!cor_lock_locked(E.lock));
  OWN(!cor_event_is_set(E.event));
  OWN(!cor_semaphore_locked(E.sem));
  OWN(cor_semaphore_release(E.sem) == -EOVERFLOW); /* still at 1 */
  OWN(cor_condition_lock(E.cond) == E.lock);
  OWN(cor_condition_notify(E.cond, 1) == -EPERM);
  OWN(cor_barrier_parties(E.barrier) == 2);
  OWN(cor_barrier_n_waiting(E.barrier) == 0);
  OWN(!cor_barrier_broken(E.barrier));
  /* The idle task and the group's parent may finish now. */
  OWN(cor_future_set_result(E.hold, NULL) == 0);
  return 0;
}

static void wrong_thread(bool debug) {
  memset(&E, 0, sizeof E);
  __atomic_store_n(&bad_runs, 0, __ATOMIC_RELAXED);
  cor_loop_opts o = {.debug = debug};
  cor_loop_t *a = cor_loop_new(&o), *b = cor_loop_new(NULL);
  assert_non_null(a);
  assert_non_null(b);
  E.loop = a;
  /* Made before A runs: any thread may, as in asyncio. */
  E.fut = cor_future_new(a);
  E.hold = cor_future_new(a);
  E.ac = cor_as_completed_new(&E.fut, 1, COR_FOREVER);
  E.task = cor_create_task(a, cor_coro(idle_body, E.hold), "idle");
  E.parent = cor_create_task(a, cor_coro(parent_body, NULL), "parent");
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  E.stream = cor_stream_from_fd(a, sv[0]);
  E.peer = sv[1];
  assert_int_equal(write(E.peer, "hello", 5), 5);
  E.server = cor_start_server(a, &srv_opts, srv_handler);
  E.dgram = cor_open_datagram(a, &dg_opts);
  E.pserver = cor_start_protocol_server(a, &srv_opts, &wt_proto, &wt_marker);
  assert_non_null(E.pserver);
  E.pool = cor_thread_pool_new(NULL);
  E.ppool = cor_process_pool_new(NULL);
  int rp[2], wp[2];
  assert_int_equal(pipe2(rp, O_CLOEXEC), 0);
  assert_int_equal(pipe2(wp, O_CLOEXEC), 0);
  assert_int_equal(write(rp[1], "r", 1), 1);
  E.rfd = rp[0];
  E.wfd = wp[1];
  E.stack_size = cor_loop_get_task_stack_size(a);
  E.queue = cor_queue_new(a, &(cor_queue_opts){.maxsize = 2});
  assert_non_null(E.queue);
  assert_int_equal(cor_queue_put_nowait(E.queue, (void *)7), 0);
  E.lock = cor_lock_new(a);
  E.event = cor_event_new(a);
  E.sem = cor_semaphore_new(a, 1, true);
  E.cond = cor_condition_new(a, E.lock);
  E.barrier = cor_barrier_new(a, 2);
  assert_non_null(E.lock);
  assert_non_null(E.event);
  assert_non_null(E.sem);
  assert_non_null(E.cond);
  assert_non_null(E.barrier);
  assert_non_null(E.fut);
  assert_non_null(E.hold);
  assert_non_null(E.task);
  assert_non_null(E.parent);
  assert_non_null(E.stream);
  assert_non_null(E.server);
  assert_non_null(E.dgram);
  assert_non_null(E.pool);
  assert_non_null(E.ppool);

  runner ra, rb;
  runner_start(&ra, a);
  runner_start(&rb, b);
  assert_int_equal(run_on(a, cor_coro(spawn_body, NULL)), 0);
  assert_non_null(E.proc);
  for (int i = 0; i < 5000 && !__atomic_load_n(&E.group, __ATOMIC_ACQUIRE);
       i++)
    sleep_ms(1);
  assert_non_null(__atomic_load_n(&E.group, __ATOMIC_ACQUIRE));
  {
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cor_server_port(E.pserver));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    E.xpeer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(E.xpeer, (struct sockaddr *)&sa, sizeof sa), 0);
    for (int i = 0; i < 5000 && !__atomic_load_n(&E.xp, __ATOMIC_ACQUIRE); i++)
      sleep_ms(1);
    assert_non_null(__atomic_load_n(&E.xp, __ATOMIC_ACQUIRE));
  }

  /* From a plain thread: this one. */
  for (size_t i = 0; i < NROWS; i++) {
    if (rows[i].where == TASK)
      continue;
    recs_clear();
    check_row(i, call_row(i), debug, "a plain thread");
  }
  /* From a task of loop B, on B's thread. */
  for (size_t i = 0; i < NROWS; i++) {
    recs_clear();
    cor_cfuture_t *cf = cor_run_coroutine_threadsafe(
        cor_coro(row_task, (void *)(uintptr_t)i), b);
    assert_non_null(cf);
    void *res = NULL;
    int rc = cor_cfuture_result(cf, 10, &res);
    cor_release(cf);
    if (rc != 0)
      print_message("%s: the task on B ended with %d\n", rows[i].name, rc);
    assert_int_equal(rc, 0);
    check_row(i, (int)(intptr_t)res, debug, "a task of another loop");
  }

  /* A never stopped, and its owner sees everything as it was. */
  assert_false(__atomic_load_n(&ra.exited, __ATOMIC_ACQUIRE));
  recs_clear();
  int rc = run_on(a, cor_coro(owner_body, (void *)(uintptr_t)debug));
  if (rc != 0)
    print_message("on the owner: %s\n", owner_why);
  assert_int_equal(rc, 0);
  char buf[8];
  assert_int_equal(read(E.peer, buf, sizeof buf), 2);
  assert_memory_equal(buf, "ok", 2);
  assert_int_equal(read(E.xpeer, buf, sizeof buf), 2); /* the transport's */
  assert_memory_equal(buf, "ok", 2);
  close(E.xpeer);
  runner_stop(&ra);
  runner_stop(&rb);

  /* The tasks finish on their owner (this thread now: A does not run). */
  assert_int_equal(cor_loop_run_until_complete(a, cor_task_future(E.task)), 0);
  assert_int_equal(cor_loop_run_until_complete(a, cor_task_future(E.parent)),
                   0);
  assert_int_equal(cor_executor_shutdown(E.pool, true, false), 0);
  assert_int_equal(cor_executor_shutdown(E.ppool, true, false), 0);
  assert_int_equal(__atomic_load_n(&bad_runs, __ATOMIC_RELAXED), 0);
  assert_int_equal(count_recs("Non-thread-safe", NULL, NULL, NULL), 0);
  cor_release(E.pool);
  cor_release(E.ppool);
  cor_release(E.task);
  cor_release(E.parent);
  cor_release(E.ac);
  cor_release(E.fut);
  cor_release(E.hold);
  cor_release(E.queue);
  cor_release(E.cond);
  cor_release(E.lock);
  cor_release(E.event);
  cor_release(E.sem);
  cor_release(E.barrier);
  close(E.peer);
  close(rp[0]);
  close(rp[1]);
  close(wp[0]);
  close(wp[1]);
  assert_int_equal(cor_loop_close(a), 0);
  assert_int_equal(cor_loop_close(b), 0);
  cor_release(a);
  cor_release(b);
}

static void test_wrong_thread(void **state) {
  (void)state;
  wrong_thread(false);
  wrong_thread(true);
}

/* ------------------------------------------------------------ complete */

#define WHAT "wrong-thread"
static void test_every_call_is_listed(void **state) {
  (void)state;
  API_CHECK_TABLES(WHAT, rows, NROWS, true, exempt, NEXEMPT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_call_is_listed),
      cmocka_unit_test_setup_teardown(test_wrong_thread, logcap_setup, logcap_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
