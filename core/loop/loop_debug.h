/* SPDX-License-Identifier: MIT */
/* Debug mode's side of the loop: what the loop layer (and above) calls when
 * debug mode or a watchdog is on. Declared here, in the layer that calls
 * it, and defined in core/diag/debug.c (layer diag), so the include graph
 * has no cycle: diag includes this header, loop never includes diag/.
 * Not installed. */
#ifndef CORIO_CORE_LOOP_LOOP_DEBUG_H
#define CORIO_CORE_LOOP_LOOP_DEBUG_H

#include "base/backtrace.h"
#include "loop/loop.h"

/* Debug mode on or off for a loop (what cor_loop_set_debug does, for the
 * runtime's cor_runtime_opts.debug too). Any thread while the loop is not
 * running; its own thread while it is. Returns 0 or -ENOMEM. */
int cor__loop_debug_apply(struct cor_loop *loop, bool on);
/* Loop life (core/diag/debug.c): the registry cor_dump_tasks walks. */
void cor__debug_loop_new(struct cor_loop *loop, const void *from);
void cor__debug_loop_free(struct cor_loop *loop);
/* Debug mode: a callback's site (slot table) and the slow callback check. */
void cor__debug_set_site(struct cor_loop *loop, uint32_t slot, void *ra);
void *cor__debug_site(struct cor_loop *loop, uint32_t slot);
void cor__debug_slow_callback(struct cor_loop *loop, cor_callback cb,
                              void *arg, void *site, uint64_t ns);
void cor__debug_poll_begin(struct cor_loop *loop);
void cor__debug_slow_poll(struct cor_loop *loop, int64_t timeout_ns,
                          uint64_t start, uint64_t end);
/* Watchdog and dump signal: a callback starts / ends (debug variant). */
void cor__debug_cb_begin(struct cor_loop *loop, cor_callback cb, void *arg);
void cor__debug_cb_end(struct cor_loop *loop);
/* Logs (WARNING, each line starting with `prefix`) the timers and ready
 * callbacks of `loop` that will not run, with their creation sites in debug
 * mode; what tasks scheduled for themselves is left out (tasks are
 * reported as tasks). At most 16
 * lines, then a count. Owner thread, loop not running. Returns how many. */
size_t cor__debug_report_unrun(struct cor_loop *loop, const char *prefix);
/* Debug mode: runs cb(arg) timed (slow callback report naming `site`, a
 * return address or NULL) between cb_begin and cb_end. Every kind of
 * callback the loop runs goes through it in debug mode. */
void cor__debug_run_cb(struct cor_loop *loop, cor_callback cb, void *arg,
                       void *site);
/* A loop's repr: <Loop running=false closed=false debug=true>. */
void cor__loop_repr(const struct cor_loop *loop, cor__buf *out);
/* "unclosed event loop <Loop ...>" (and where it was made, in debug mode)
 * through the loop's exception handler. */
void cor__debug_report_unclosed_loop(struct cor_loop *loop);
/* The live loops of this process (not inherited through fork), each with a
 * reference the caller drops; NULL with *n = 0 when there is none or on
 * ENOMEM. For the report at exit. */
struct cor_loop **cor__debug_loops(size_t *n);

#endif
