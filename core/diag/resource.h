/* SPDX-License-Identifier: MIT */
/* Resource warnings (core/diag/resource.c). Not installed. */
#ifndef CORIO_CORE_DIAG_RESOURCE_H
#define CORIO_CORE_DIAG_RESOURCE_H

#include "base/backtrace.h"
#include "base/report.h"

/* Resource warnings (core/diag/resource.c), asyncio's ResourceWarning: what the
 * application must close (a stream, a datagram endpoint, a server, an
 * executor) is tracked from creation until it is closed. Freed while still
 * tracked, it is reported at WARNING, "unclosed stream <Stream fd=7 ...>",
 * with its creation site and backtrace in debug mode; still tracked at
 * exit, it is reported then. Objects of one loop (streams, datagram
 * endpoints) sit on that loop's list (loop->res: an O(1) insert and unlink
 * on its own thread, no lock); the rare process-wide ones (servers,
 * executors) on one list under a mutex. */
typedef struct cor__res cor__res;
typedef struct cor__res_type {
  const char *what; /* "stream": "unclosed stream <...>" */
  /* The repr's inside, without its angle brackets: "Stream fd=7 ...". */
  void (*repr)(cor__res *r, cor__buf *out);
} cor__res_type;
struct cor__res {
  cor__res *prev, *next;
  const cor__res_type *type;
  /* The loop whose exception handler gets the report (NULL: the default
   * handler); for a per-loop object, the loop whose list holds it. */
  struct cor_loop *loop;
  const void *site; /* debug mode: return address of the creating call */
  cor__bt *bt;      /* debug mode: the creation backtrace */
  unsigned gen;     /* cor__fork_gen when made: not reported in children */
  bool listed;
  bool global;
};
/* Starts tracking r (an object of `type` just made). global: the
 * process-wide list (any thread); otherwise loop's own list (its thread).
 * debug: record `site` (the creating call's return address) and the
 * backtrace from it. */
void cor__res_track(cor__res *r, const cor__res_type *type,
                    struct cor_loop *loop, bool global, bool debug,
                    const void *site);
/* The object was closed: stop tracking it. Idempotent. */
void cor__res_untrack(cor__res *r);
/* The object is being freed (still whole): reports it if it is still
 * tracked (never closed), then stops tracking it. */
void cor__res_release(cor__res *r);
/* The loop is being freed: reports what is still on its list. */
void cor__res_loop_free(struct cor_loop *loop);

#endif
