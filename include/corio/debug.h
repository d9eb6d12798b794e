/* SPDX-License-Identifier: MIT */
/* corio: debug mode and diagnostics, as asyncio's "Developing with asyncio".
 *
 * Debug mode is on for a loop when CORIO_DEBUG=1 is in the environment when
 * it is made, when cor_loop_opts.debug, cor_run_opts.debug or
 * cor_runtime_opts.debug asks for it, or after cor_loop_set_debug(loop,
 * true). It never changes the logger's level. In debug mode:
 *  - the creation backtrace of every task and coroutine is recorded and
 *    printed (symbolized: function, file, line) with the reports about them;
 *  - so is the creation site and backtrace of every stream, datagram
 *    endpoint, server and executor, for the resource warnings below;
 *  - a callback or task step that runs longer than the slow callback
 *    duration is logged (WARNING "Executing <Handle cb() created at f.c:12>
 *    took 0.153 seconds"), whatever scheduled it: call_soon, call_later, a
 *    reader or writer, a signal handler, or cor_call_soon_threadsafe from
 *    any thread (the site is then that call's);
 *  - a poll that overslept its deadline by more than 10 ms, or a
 *    zero-timeout poll that took more than 1 ms, is logged (WARNING "poll
 *    overslept its deadline by 20.214 ms (timeout 39.998 ms, took 60.212
 *    ms)", "poll with a zero timeout took 5.084 ms (expected < 1.000 ms)"),
 *    a wait cut short by a signal (EINTR) included; the time of the fd and
 *    signal callbacks the poll dispatches is not the poll's;
 *  - a call from a wrong thread also logs the caller's backtrace.
 * Always on, debug mode or not: the wrong-thread check of every call that
 * belongs to the loop's thread (COR_ETHREAD and an ERROR record), and the
 * reports of never-retrieved errors, pending tasks destroyed and coroutines
 * never awaited, which go to the loop's exception handler; and asyncio's
 * ResourceWarning, at WARNING through the exception handler: "unclosed
 * event loop <Loop ...>", "unclosed stream <Stream fd=7 peer=...>",
 * "unclosed datagram endpoint <Datagram ...>", "unclosed server <Server
 * sockets=[...]>", "unclosed executor <ThreadPoolExecutor ...>", when such
 * an object is freed without being closed (shut down, for an executor),
 * and at exit for those never released (with the coroutines made outside
 * any loop and never consumed). A forked child does not report what its
 * parent made; a loop that another thread still runs at exit is reported,
 * but not its streams (they are that thread's to touch).
 */
#ifndef CORIO_DEBUG_H
#define CORIO_DEBUG_H

#include <corio/common.h>
#include <corio/future.h>
#include <corio/loop.h>
#include <corio/task.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What asyncio passes to an exception handler as a dict. Every pointer is
 * borrowed for the duration of the handler call only; any may be NULL. */
typedef struct cor_exception_context {
  const char *message;   /* "Task exception was never retrieved", ... */
  int level;             /* the level the default handler logs at (ERROR;
                            WARNING for "coroutine ... was never awaited") */
  int code;              /* the error ('exception'): < 0, or 0 when none */
  const char *error_msg; /* the error's message (cor_fail's text), or NULL */
  const char *error_file; /* where the error was raised (cor_fail) */
  int error_line;
  cor_future_t *future; /* 'future' (a task's future for a task) */
  cor_task_t *task;     /* 'task' */
  cor_callback callback; /* 'handle': the callback and its argument */
  void *callback_arg;
  /* The object's repr, under its key: key "future", "task", "handle",
   * "coroutine" or "loop"; repr "<Task finished name='Task-2' coro=<...>>". */
  const char *object_key;
  const char *object_repr;
  /* Debug mode: where the object was created, formatted as Python's
   * "  File "x.c", line 9, in main" lines, most recent call last. */
  const char *source_traceback;
  /* The site the object was created at (a coroutine: its cor_coro call). */
  const char *file;
  int line;
} cor_exception_context;

typedef void (*cor_exception_handler)(cor_loop_t *loop,
                                      const cor_exception_context *ctx,
                                      void *arg);

/* Sets the loop's exception handler (NULL restores the default). It is
 * called for every error nobody handles: never-retrieved errors, pending
 * tasks destroyed, coroutines never awaited, and for the loop's resource
 * warnings (ctx->object_repr is the object's repr; in debug mode ctx->file
 * and ctx->line are where it was made). It may be called from the
 * thread that drops the last reference to a failed future, which need not
 * be the loop's, and after the loop is closed (until it is freed). Returns
 * 0, -EINVAL. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_loop_set_exception_handler(cor_loop_t *loop,
                                              cor_exception_handler handler,
                                              void *arg);
/* The default handler: logs ctx on the "corio" logger at ctx->level (ERROR
 * when 0): the message, then "key: repr", the site of the error as a
 * "Traceback (most recent call last):" and, in debug mode,
 * "source_traceback: Object created at (most recent call last):". A custom
 * handler may call it. Any thread. */
COR_EXTERN void cor_loop_default_exception_handler(
    cor_loop_t *loop, const cor_exception_context *ctx);
/* Calls the loop's handler (or the default one) with ctx; a loop of NULL
 * uses the default handler. Any thread. */
COR_EXTERN void cor_loop_call_exception_handler(
    cor_loop_t *loop, const cor_exception_context *ctx);

/* Callbacks (and task steps) running longer than this are logged in debug
 * mode. Default 0.1 s. Returns 0, -EINVAL (negative or NaN). Owner thread
 * (else COR_ETHREAD; get: 0, errno 4001). */
COR_EXTERN int cor_loop_set_slow_callback_duration(cor_loop_t *loop,
                                                   double seconds);
COR_EXTERN double cor_loop_get_slow_callback_duration(const cor_loop_t *loop);

/* Writes every task of every live loop to fd: for each loop, its thread
 * and state; for each pending task, its name, state, where it was created,
 * what it awaits as a chain through the tasks it awaits ("Task-1 -> Task-2
 * -> <Future pending>", as python -m asyncio pstree), and for how long. A
 * running loop's tasks are read on its own thread at a safe point (a
 * callback posted with cor_call_soon_threadsafe, waited for at most 1 s);
 * a loop that is not running is read directly, so the caller must know
 * that no thread is using it meanwhile. Returns the number of tasks
 * written, or a negated errno from write(2). Any thread; not from a signal
 * handler. For each loop:
 *   Loop 0x55d0c8a2e000 <Loop running=true closed=false debug=true> thread 4242
 *     Task 'outer' (suspended) coro=outer_body() created at app.c:40 (task made at app.c:40)
 *       awaiting at app.c:12 for 2.301 s: Task 'inner' (inner_body() created at app.c:39) -> <Future pending cb=[<wakeup inner>]>
 * ("task made at", and a future's "created at", in debug mode only). The
 * wait is measured from the loop's cached clock, which a loop busy without
 * timers or fds does not refresh: it may then read long by the time the
 * loop has been busy.
 *
 * CORIO_DUMP_SIGNAL=<signal> in the environment (a number, or SIGUSR1,
 * SIGUSR2, SIGQUIT, SIGHUP, SIGWINCH, SIGPWR, with or without "SIG") makes
 * that signal dump every loop to stderr (fd 2) this way, each at its next
 * safe point; signals that arrive while a dump is due give one dump. A loop
 * that is not running is only named ("not running, not dumped"): the
 * signal cannot know who may be changing it between two runs. It is
 * read once, when the process makes its first loop, which installs the
 * handler (replacing the signal's disposition) and a thread of corio's that
 * does the dumping. Off by default. */
COR_EXTERN int cor_dump_tasks(int fd);

/* The stall watchdog: while one callback or task step of this loop runs
 * longer than `seconds`, a watchdog thread has the loop's thread record its
 * backtrace (a signal) and logs it (WARNING "loop ... stuck in ..."), again
 * at 2x and 4x the threshold, at most 5 reports a minute for the process.
 * 0 turns it off (the default, debug mode or not).
 * What it does to the stuck thread: the backtrace is taken by a signal
 * (SIGRTMAX-3, handler installed with SA_RESTART) that the thread handles
 * itself, and only when that cannot change what the thread does: while it
 * runs user code, or is blocked in a call the kernel restarts after a
 * handler (read, write, accept, recv, send, connect, wait4, flock, futex
 * waits: mutexes, condition variables, semaphores; signal(7)), which then
 * goes on as if nothing happened. A thread blocked in a call the kernel
 * never restarts (nanosleep, clock_nanosleep, sleep, usleep, poll, select,
 * epoll_wait, io_uring_enter, pause, sigtimedwait, semop...) is not
 * signalled: the report names the call ("blocked in clock_nanosleep(),
 * which a signal would cut short: no stack taken") and has no stack. Two
 * cases remain where a call may still return early with EINTR: a thread
 * that enters such a call within the few microseconds between the
 * watchdog's look (/proc/self/task/TID/syscall) and the signal's arrival,
 * and socket calls on a socket with SO_RCVTIMEO/SO_SNDTIMEO set (signal(7):
 * never restarted). Without /proc the watchdog signals as before.
 * Returns 0, -EINVAL, -ENOMEM. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_loop_set_watchdog(cor_loop_t *loop, double seconds);

#ifdef __cplusplus
}
#endif
#endif
