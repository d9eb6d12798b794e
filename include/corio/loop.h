/* SPDX-License-Identifier: MIT */
/* corio: the event loop.
 *
 * A loop runs callbacks, timers, fd readiness and signal handlers on one
 * thread: the thread that runs it owns it. Every call here belongs to that
 * thread (from another, while the loop runs: COR_ETHREAD and an ERROR
 * record, see corio/common.h), except those whose name ends in _threadsafe,
 * the reference counting calls and those marked "Any thread".
 */
#ifndef CORIO_LOOP_H
#define CORIO_LOOP_H

#include <corio/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_loop cor_loop_t;

/* A handle names one scheduled callback or timer. It is a small value (slot
 * index and generation), never a pointer: a stale handle is always safe to
 * pass to cor_handle_cancel. The zero value names nothing. */
typedef struct cor_handle {
  uint64_t id;
} cor_handle_t;

/* Loop options; a zeroed struct (or NULL) gives the defaults. */
typedef struct cor_loop_opts {
  /* How long the loop spins, watching its cross-thread queue, before it
   * sleeps in the poller. A loop woken within the spin costs ~0.1-0.5 us
   * instead of the ~13 us of an eventfd wake-up, at the price of up to this
   * much CPU each time the loop goes idle. 0 (or NaN) = default (50 us);
   * negative = never spin; more than 1 s counts as 1 s. */
  double spin_seconds;
  /* Most cross-thread callbacks run per loop iteration, so a flood from
   * other threads cannot starve timers or I/O. 0 = default (1024). */
  unsigned threadsafe_batch;
  /* Debug mode (see cor_loop_set_debug); also on when CORIO_DEBUG=1. */
  bool debug;
  /* Socket streams of this loop do their reads and writes through an
   * io_uring (one kernel entry per loop iteration for all of them) instead
   * of one recv and one send system call each. 0 = default: on where the
   * kernel allows it (5.19+ with provided buffer rings; a container may
   * forbid it), unless the environment has CORIO_IO=epoll; negative = off
   * (epoll, edge-triggered). The ring is made on the loop's thread when
   * its first socket stream needs it, and belongs to that thread: if the
   * loop is later run by another thread, the streams on it fail with
   * COR_ETHREAD (an ERROR is logged) and new streams get a new ring. */
  int io_uring;
  /* With io_uring, how long a loop under network load may wait to gather
   * several completions into one batch (one kernel entry, run together)
   * before it runs what came: throughput for latency. It adapts: a loop
   * whose waits bring one completion at a time (a lone request/response
   * peer) never waits for more, so is never held back. While it waits
   * for a batch, a cross-thread wake-up (cor_call_soon_threadsafe, an
   * executor's result) may be held as long; a loop that has just run
   * cross-thread callbacks asks for one completion at its next wait, so
   * only the first post after a quiet spell can be held. Needs Linux
   * 6.12+ (else no
   * coalescing). 0 (or NaN) = default: 500 us, or CORIO_IO_COALESCE_US
   * from the environment (microseconds); negative = never coalesce; more
   * than 1 s counts as 1 s. Measured on a
   * 2-core VM under wrk's 100 connections: 100 us costs ~40% more server
   * CPU per request than 500 us, 1000 us saves a few % more (the project's
   * perf harness, `make bench`). */
  double io_coalesce_seconds;
} cor_loop_opts;

/* Creates a loop. The caller holds one reference (cor_release). Returns NULL
 * with errno set (ENOMEM, EMFILE...) on failure. Any thread. */
COR_EXTERN cor_loop_t *cor_loop_new(const cor_loop_opts *opts);

/* Runs the loop until cor_loop_stop. Returns 0; -EBUSY if this thread is
 * already running it (or another loop); COR_ETHREAD, with an ERROR record,
 * if another thread is running it; COR_ECLOSED after cor_loop_close; -EINVAL
 * for NULL. The first thread that runs a loop becomes its owner; a loop that
 * is not running may later be run by another thread, which then owns it. */
COR_EXTERN int cor_loop_run_forever(cor_loop_t *loop);

/* Asks the running loop to stop after the current iteration: callbacks
 * already ready run first, as in asyncio. When the loop is not running, the
 * next run_forever runs one iteration and returns. Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_loop_stop(cor_loop_t *loop);

/* Releases the loop's fds, queues, timers and pending callbacks (which are
 * dropped without running). Returns -EBUSY while the loop runs, COR_ECLOSED
 * when already closed. The object stays valid until its last reference is
 * released: later calls on it return COR_ECLOSED. Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_loop_close(cor_loop_t *loop);

/* Whether the loop is running / closed (false for NULL). Any thread (atomic
 * reads). */
COR_EXTERN bool cor_loop_is_running(const cor_loop_t *loop);
COR_EXTERN bool cor_loop_is_closed(const cor_loop_t *loop);

/* The loop running on the calling thread, or NULL. The pointer is borrowed:
 * no reference is handed over. Any thread. */
COR_EXTERN cor_loop_t *cor_get_running_loop(void);

/* The loop's monotonic clock, in seconds and nanoseconds (CLOCK_MONOTONIC).
 * Any thread. */
COR_EXTERN double cor_loop_time(const cor_loop_t *loop);
COR_EXTERN uint64_t cor_loop_time_ns(const cor_loop_t *loop);

/* Schedules cb(arg) to run on `loop` (NULL: the running loop) on the next
 * iteration, after the callbacks already ready (FIFO). `out` may be NULL;
 * when given it receives a handle for cor_handle_cancel (asyncio's Handle:
 * a C call returns its code, so the handle comes back through `out`; the
 * cross-thread cor_call_soon_threadsafe has no handle, as a handle names a
 * slot only the owner thread may touch). Returns 0, -EINVAL (NULL cb, or
 * NULL loop with none running), -ENOMEM (the loop stays usable),
 * COR_ECLOSED. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_call_soon(cor_loop_t *loop, cor_callback cb, void *arg,
                             cor_handle_t *out);

/* Schedules cb(arg) on `loop` (NULL: the running loop) after `delay`
 * seconds (negative counts as 0), or at loop time `when`. Timers run in deadline order; ties run in the order they were
 * scheduled. Same returns as cor_call_soon. Owner thread (else
 * COR_ETHREAD). */
COR_EXTERN int cor_call_later(cor_loop_t *loop, double delay, cor_callback cb,
                              void *arg, cor_handle_t *out);
COR_EXTERN int cor_call_at(cor_loop_t *loop, double when, cor_callback cb,
                           void *arg, cor_handle_t *out);
/* As cor_call_at, on the integer clock of cor_loop_time_ns. */
COR_EXTERN int cor_call_at_ns(cor_loop_t *loop, uint64_t when_ns,
                              cor_callback cb, void *arg, cor_handle_t *out);

/* Cancels a scheduled callback or timer: it will not run, and a cancelled
 * timer's memory is reclaimed at once. Returns 0, or -ENOENT when the handle
 * already ran, was cancelled, or never existed (always safe); COR_ECLOSED.
 * `loop` NULL: the running loop. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_handle_cancel(cor_loop_t *loop, cor_handle_t h);

/* The one loop call any thread may make, including the loop's own thread.
 * Pushes cb(arg) on the loop's lock-free multi-producer queue and wakes the
 * loop only if it may be asleep. Callbacks from one thread run in the order
 * that thread posted them; none is lost or run twice. Returns 0, -EINVAL,
 * -ENOMEM, or COR_ECLOSED once the loop is closed (cb will not run). A post
 * that races with cor_loop_close on another thread may be accepted and then
 * discarded unrun; posts made after close returned always fail. In debug
 * mode the callback is timed like any other, and a slow one is reported
 * with the site of this call (one small allocation per post, debug mode
 * only; without memory the post still succeeds, without its site). */
COR_EXTERN int cor_call_soon_threadsafe(cor_loop_t *loop, cor_callback cb,
                                        void *arg);

/* Watches fd for readability (writability): cb(arg) runs on each iteration
 * while fd is ready (level-triggered, as asyncio's add_reader). Adding a
 * reader to an fd that already has one replaces it. Returns 0, -EINVAL,
 * -ENOMEM, a negated errno from epoll (-EPERM for regular files, -EBADF),
 * COR_ECLOSED. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_loop_add_reader(cor_loop_t *loop, int fd, cor_callback cb,
                                   void *arg);
COR_EXTERN int cor_loop_add_writer(cor_loop_t *loop, int fd, cor_callback cb,
                                   void *arg);
/* Stops watching; returns 0, or -ENOENT when nothing was registered.
 * Owner thread (else COR_ETHREAD). Call it before closing the fd. */
COR_EXTERN int cor_loop_remove_reader(cor_loop_t *loop, int fd);
COR_EXTERN int cor_loop_remove_writer(cor_loop_t *loop, int fd);

/* Runs cb(arg) on this loop each time `signum` arrives, whichever thread the
 * kernel delivers it to (the signal is redirected to the loop's thread and
 * read through a signalfd). A signal belongs to one loop at a time: another
 * loop's attempt gets -EBUSY. Adding again on the same loop replaces the
 * callback. Removing the last handler of a signal restores its previous
 * disposition and the thread's previous mask. Returns 0, -EINVAL (bad signum,
 * SIGKILL, SIGSTOP), -EBUSY, -ENOMEM, COR_ECLOSED; remove returns -ENOENT if
 * none. Owner thread (else COR_ETHREAD). */
COR_EXTERN int cor_loop_add_signal_handler(cor_loop_t *loop, int signum,
                                           cor_callback cb, void *arg);
COR_EXTERN int cor_loop_remove_signal_handler(cor_loop_t *loop, int signum);

/* Debug mode (see ARCHITECTURE.md). Owner thread (else COR_ETHREAD;
 * get_debug: false, errno 4001). */
COR_EXTERN int cor_loop_set_debug(cor_loop_t *loop, bool on);
COR_EXTERN bool cor_loop_get_debug(const cor_loop_t *loop);

/* Counters, readable from any thread (values may be a little stale). */
typedef struct cor_loop_stats {
  uint64_t iterations;        /* loop iterations run */
  uint64_t callbacks;         /* callbacks run (ready, timers, threadsafe) */
  uint64_t threadsafe_run;    /* cross-thread callbacks run */
  uint64_t wakeups_written;   /* eventfd writes that really happened */
  uint64_t wakeups_saved;     /* cross-thread callbacks that needed no
                                 eventfd write (threadsafe_run - written) */
  uint64_t polls;             /* poller waits (epoll_wait calls) */
  uint64_t spin_wakes;        /* times the idle spin caught new work */
  /* Wall time, in nanoseconds, that the loop has spent running (inside
   * cor_loop_run_forever, cor_loop_run_until_complete, cor_run, a
   * runtime's loop thread), summed over all its runs since it was made:
   * busy_ns + idle_ns is that time (within a few microseconds). A run counts from
   * the moment it starts to the moment it returns; the time between two
   * runs is in neither. idle_ns is the part spent waiting for work:
   * spinning on the cross-thread queue before sleeping (which uses CPU),
   * then asleep in the poller (epoll_wait, io_uring_enter), a wait in
   * progress included (a reader sees idle_ns grow while the loop sleeps).
   * An idle period ends when the wait returns, before the callbacks of
   * what it brought run; a spin that catches a post ends at the spin's
   * last clock read (it reads the clock every 64 relaxes), so up to ~1-2
   * us of such a spin count as busy. busy_ns is the rest: callbacks, task steps,
   * timers and the loop's own work, as wall time, not CPU time: a
   * callback blocked in a system call or preempted is busy. With io_uring
   * the kernel's submission of the sends and receives an iteration queued
   * happens inside the waiting io_uring_enter and counts as idle. Both
   * only grow; the pair is read consistently (a seqlock), from any
   * thread. */
  uint64_t busy_ns;
  uint64_t idle_ns;
} cor_loop_stats;
COR_EXTERN int cor_loop_get_stats(const cor_loop_t *loop, cor_loop_stats *out);

#ifdef __cplusplus
}
#endif
#endif
