/* SPDX-License-Identifier: MIT */
/* Resource warnings (asyncio's ResourceWarning) and the reports at exit.
 *
 * What the application must close is tracked from creation until it is
 * closed: a stream or a datagram endpoint on its loop's own list (an O(1)
 * insert and unlink on the loop's thread, no lock: streams are made per
 * connection), a server or an executor on one process-wide list under a
 * mutex (they are made rarely, from any thread). Closing unlinks the object.
 * Freeing one still linked reports it at WARNING through the loop's
 * exception handler (the default one logs it on "corio"):
 *
 *   unclosed stream <Stream fd=7 peer=127.0.0.1:5555 local=... >
 *
 * and, in debug mode, where it was made: " created at file.c:12" inside the
 * repr and "Object allocated at (most recent call last):" with the creation
 * backtrace, as the unclosed loop's report. The object is then freed as it
 * always was (the fd closed, the pool shut down), so nothing leaks.
 *
 * At exit (an atexit handler registered when the library loads), what was
 * never released is reported the same way: coroutines made outside any
 * loop and never consumed (core/task.c keeps those), each live loop not
 * closed, the streams and endpoints of each live loop that no other thread
 * is running, the servers and executors still open, and, when debug mode
 * was on, the counted objects never released (core/object.c's census: per
 * type, the count and the creation sites). A forked child
 * does not report what its parent made (cor__fork_gen). */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/census.h"
#include "base/list.h"
#include "base/report.h"
#include "diag/resource.h"
#include "loop/loop.h"
#include "loop/loop_debug.h"
#include "task/task_internal.h"

#include <unistd.h>

unsigned cor__fork_gen;

static pthread_mutex_t res_mu = PTHREAD_MUTEX_INITIALIZER;
static cor__res *global_head; /* under res_mu */

/* ------------------------------------------------------------ tracking */

static inline cor__res **head_of(cor__res *r) {
  return r->global ? &global_head : &r->loop->res;
}

static void link_(cor__res *r) {
  cor__res **h = head_of(r);
  cor__list_push_front(h, r);
  r->listed = true;
}

static void unlink_(cor__res *r) {
  if (!r->listed)
    return;
  cor__list_unlink(head_of(r), r);
  r->listed = false;
}

void cor__res_track(cor__res *r, const cor__res_type *type,
                    struct cor_loop *loop, bool global, bool debug,
                    const void *site) {
  r->type = type;
  r->loop = loop;
  r->global = global;
  r->gen = cor__load_rlx(&cor__fork_gen);
  r->site = NULL;
  r->bt = NULL;
  if (COR_UNLIKELY(debug)) {
    r->site = site;
    r->bt = cor__bt_new(site);
  }
  if (!global) {
    link_(r);
    return;
  }
  pthread_mutex_lock(&res_mu);
  link_(r);
  pthread_mutex_unlock(&res_mu);
}

void cor__res_untrack(cor__res *r) {
  if (r->global) {
    pthread_mutex_lock(&res_mu);
    unlink_(r);
    pthread_mutex_unlock(&res_mu);
  } else {
    unlink_(r);
  }
  cor__free(r->bt);
  r->bt = NULL;
}

/* ------------------------------------------------------------ reports */

#define TEXT_MAX 4000

/* "unclosed stream <Stream fd=7 ... created at f.c:12>" and, when the
 * backtrace was recorded, "Object allocated at (most recent call last):"
 * and its frames. */
static void format(cor__res *r, cor__buf *b, cor__buf *repr) {
  cor__buf_printf(repr, "<");
  r->type->repr(r, repr);
  if (r->site) {
    char at[300];
    if (cor__site(r->site, at, sizeof at)[0])
      cor__buf_printf(repr, " created at %s", at);
  }
  cor__buf_printf(repr, ">");
  cor__buf_printf(b, "unclosed %s %s", r->type->what, repr->s);
  if (r->bt) {
    cor__buf_printf(b, "\nObject allocated at (most recent call last):\n");
    cor__bt_format(b, r->bt->pc, r->bt->n);
    while (b->len > 0 && b->s[b->len - 1] == '\n')
      b->s[--b->len] = 0;
  }
}

static void report(struct cor_loop *loop, const char *text, const char *repr,
                   const void *site) {
  cor_exception_context ctx = {.message = text,
                               .level = COR_LOG_WARNING,
                               .object_repr = repr};
  cor__sym sym;
  if (site && cor__symbolize(site, true, &sym) && sym.file[0]) {
    ctx.file = sym.file;
    ctx.line = sym.line;
  }
  cor_loop_call_exception_handler(loop, &ctx);
}

/* Apart, so that freeing a closed object (every stream of a busy server's
 * clients) does not pay for these buffers' stack frame. */
static __attribute__((noinline)) void report_unclosed(cor__res *r) {
  char text[TEXT_MAX], repr[1024];
  cor__buf b = {text, 0, sizeof text}, rb = {repr, 0, sizeof repr};
  text[0] = repr[0] = 0;
  format(r, &b, &rb);
  report(r->loop, text, repr, r->site);
}

void cor__res_release(cor__res *r) {
  if (r->type == NULL)
    return; /* never tracked (a server's connection, a failed start) */
  bool listed;
  if (r->global) {
    pthread_mutex_lock(&res_mu);
    listed = r->listed;
    unlink_(r);
    pthread_mutex_unlock(&res_mu);
  } else {
    listed = r->listed;
    unlink_(r);
  }
  if (COR_UNLIKELY(listed))
    report_unclosed(r);
  cor__free(r->bt);
  r->bt = NULL;
}

void cor__res_loop_free(struct cor_loop *loop) {
  /* What is left is reported and unlinked: the objects outlive their loop
   * (using them now is the application's bug), and must not reach back
   * into it. */
  while (loop->res) {
    cor__res *r = loop->res;
    cor__res_release(r);
  }
}

/* ------------------------------------------------------------ at exit */

static void report_loop_at_exit(struct cor_loop *loop) {
  if (!ck_pr_load_int(&loop->closed))
    cor__debug_report_unclosed_loop(loop);
  /* A loop another thread runs is that thread's: its list may change
   * under us. One nobody runs (or this thread runs: exit() from a
   * callback) is safe to read; its owner stored `running` = 0 with release
   * semantics when it stopped. */
  if (ck_pr_load_int(&loop->running) && cor__tls_loop != loop)
    return;
  while (loop->res)
    cor__res_release(loop->res);
}

static void report_globals_at_exit(void) {
  unsigned gen = cor__load_rlx(&cor__fork_gen);
  for (;;) {
    char text[TEXT_MAX], repr[1024];
    cor__buf b = {text, 0, sizeof text}, rb = {repr, 0, sizeof repr};
    text[0] = repr[0] = 0;
    struct cor_loop *loop = NULL;
    const void *site = NULL;
    /* Formatted under the lock: the object cannot be closed and freed by
     * another thread meanwhile (its close takes the lock to unlink it). */
    pthread_mutex_lock(&res_mu);
    cor__res *r = global_head;
    while (r && r->gen != gen)
      r = r->next;
    if (r) {
      format(r, &b, &rb);
      unlink_(r);
      site = r->site;
      loop = r->loop ? cor_retain(r->loop) : NULL;
    }
    pthread_mutex_unlock(&res_mu);
    if (r == NULL)
      break;
    report(loop, text, repr, site);
    if (loop)
      cor_release(loop);
  }
}

static void report_unreleased(const char *text) {
  report(NULL, text, NULL, NULL);
}

static void res_at_exit(void) {
  cor__coros_report_at_exit();
  size_t n = 0;
  struct cor_loop **loops = cor__debug_loops(&n);
  for (size_t i = 0; i < n; i++) {
    report_loop_at_exit(loops[i]);
    cor_release(loops[i]);
  }
  cor__free(loops);
  report_globals_at_exit();
  /* Last: the reports above release nothing counted, and what they name
   * (an unclosed loop) is also in this census. */
  cor__obj_report_unreleased(report_unreleased);
}

/* ------------------------------------------------------------ fork */

static void fork_prepare(void) { pthread_mutex_lock(&res_mu); }
static void fork_parent(void) { pthread_mutex_unlock(&res_mu); }
static void fork_child(void) {
  pthread_mutex_init(&res_mu, NULL);
  cor__add_rlx(&cor__fork_gen, 1);
}

/* When the library loads: the handler then runs after every atexit handler
 * registered later (the logger's, which flushes the async queue first, so
 * these records are delivered directly). */
__attribute__((constructor)) static void resource_module_init(void) {
  COR_ASSERT(pthread_atfork(fork_prepare, fork_parent, fork_child) == 0);
  atexit(res_at_exit);
}

bool cor__debug_env(void) {
  const char *d = getenv("CORIO_DEBUG");
  return d && d[0] && strcmp(d, "0") != 0;
}
