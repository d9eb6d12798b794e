/* SPDX-License-Identifier: MIT */
/* Backtraces for debug mode: capture with glibc's backtrace() (the libgcc
 * unwinder, driven by .eh_frame, so it works at -O2 without frame pointers
 * and stops at the outermost frame of a task's stack, which
 * cor__ctx_entry marks with .cfi_undefined rip), and symbolize with libdw
 * from elfutils: function, source file and line for each frame, read from
 * the DWARF line tables of the executable and of every shared object
 * (dwfl_linux_proc_report). Symbolizing happens only when a report is
 * printed; capture is the only cost paid on an object's creation path, and
 * only in debug mode.
 *
 * libdw keeps one Dwfl session for the process, built on first use and
 * rebuilt when an address falls outside every module it knows (a library
 * dlopen'ed since). libdw is not thread-safe, so a mutex serializes
 * symbolizing; reports are rare.
 *
 * libdw wants more stack than a task has: reading a compilation unit's line
 * table for the first time overflowed a 64 KiB task stack (a wrong-thread
 * record made from a task, in debug mode). On a task's stack, symbolizing
 * therefore runs on a short-lived helper thread (default stack) that the
 * task's thread waits for: one thread per report, on a path that only
 * reports take. */
#include "base/backtrace.h"
#include "base/thread.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <unistd.h>

static pthread_mutex_t dw_mu = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *dw;
static char *debuginfo_path;

static const Dwfl_Callbacks dw_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

/* Under dw_mu. */
static bool dw_report(void) {
  if (dw == NULL && (dw = dwfl_begin(&dw_callbacks)) == NULL)
    return false;
  dwfl_report_begin(dw);
  int rc = dwfl_linux_proc_report(dw, getpid());
  dwfl_report_end(dw, NULL, NULL);
  return rc == 0;
}

static void warm_once(void) {
  void *pc[4];
  backtrace(pc, 4);
}

void cor__bt_warm(void) {
  /* backtrace() loads libgcc_s on its first call (malloc, dlopen): do it
   * here, so a later capture in a signal handler (the watchdog's) does not. */
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, warm_once);
}

int cor__bt_capture(void **pcs, int max, int skip) {
  void *buf[COR__BT_MAX + 16];
  if (max > COR__BT_MAX)
    max = COR__BT_MAX;
  if (skip > 15)
    skip = 15;
  int n = backtrace(buf, max + skip + 1);
  int first = 1 + skip; /* buf[0] is this function */
  if (n <= first)
    return 0;
  n -= first;
  if (n > max)
    n = max;
  memcpy(pcs, buf + first, (size_t)n * sizeof *pcs);
  return n;
}

static char cwd[512];
static size_t cwdlen;
static void cwd_init(void) {
  if (getcwd(cwd, sizeof cwd) != NULL)
    cwdlen = strlen(cwd);
}

/* Paths as __FILE__ gives them: an absolute path under the working
 * directory (how DWARF may record a relative compile) loses that prefix. */
static const char *short_path(const char *file) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  if (file[0] != '/')
    return file;
  pthread_once(&once, cwd_init);
  if (cwdlen > 1 && strncmp(file, cwd, cwdlen) == 0 && file[cwdlen] == '/')
    return file + cwdlen + 1;
  return file;
}

typedef struct {
  void (*fn)(void *);
  void *arg;
} big_job;

static void *big_run(void *p) {
  big_job *j = p;
  j->fn(j->arg);
  return NULL;
}

/* fn(arg) on a stack big enough for libdw: this one, unless it is a task's.
 * False when the helper thread could not start (fn did not run). */
static bool on_big_stack(void (*fn)(void *), void *arg) {
  if (cor__tls_task == NULL) {
    fn(arg);
    return true;
  }
  big_job j = {fn, arg};
  /* Born with every signal blocked: a process-directed signal must not pick
   * this thread. */
  pthread_t th;
  int e = cor__thread_create(&th, NULL, big_run, &j, false);
  if (e != 0)
    return false;
  pthread_join(th, NULL);
  return true;
}

typedef struct {
  const void *pc;
  bool is_return, ok;
  cor__sym *out;
} sym_job;

static bool symbolize(const void *pc, bool is_return, cor__sym *out);
static void symbolize_job(void *p) {
  sym_job *j = p;
  j->ok = symbolize(j->pc, j->is_return, j->out);
}

bool cor__symbolize(const void *pc, bool is_return, cor__sym *out) {
  out->func[0] = 0;
  out->file[0] = 0;
  out->line = 0;
  sym_job j = {pc, is_return, false, out};
  return on_big_stack(symbolize_job, &j) && j.ok;
}

static bool symbolize(const void *pc, bool is_return, cor__sym *out) {
  out->func[0] = 0;
  out->file[0] = 0;
  out->line = 0;
  if (pc == NULL)
    return false;
  /* A return address points after the call: look up the call itself. */
  Dwarf_Addr addr = (Dwarf_Addr)(uintptr_t)pc - (is_return ? 1 : 0);
  bool ok = false;
  pthread_mutex_lock(&dw_mu);
  if (dw == NULL)
    dw_report();
  Dwfl_Module *mod = dw ? dwfl_addrmodule(dw, addr) : NULL;
  if (mod == NULL && dw && dw_report())
    mod = dwfl_addrmodule(dw, addr);
  if (mod) {
    const char *fn = dwfl_module_addrname(mod, addr);
    if (fn)
      snprintf(out->func, sizeof out->func, "%s", fn);
    Dwfl_Line *l = dwfl_module_getsrc(mod, addr);
    int line = 0;
    const char *file =
        l ? dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL) : NULL;
    if (file) {
      snprintf(out->file, sizeof out->file, "%s", short_path(file));
      out->line = line;
    }
    ok = fn != NULL || file != NULL;
  }
  pthread_mutex_unlock(&dw_mu);
  return ok;
}

static bool fn_decl(const void *fn, cor__sym *out);
static void fn_decl_job(void *p) {
  sym_job *j = p;
  j->ok = fn_decl(j->pc, j->out);
}

bool cor__fn_decl(const void *fn, cor__sym *out) {
  out->func[0] = 0;
  out->file[0] = 0;
  out->line = 0;
  sym_job j = {fn, false, false, out};
  return on_big_stack(fn_decl_job, &j) && j.ok;
}

static bool fn_decl(const void *fn, cor__sym *out) {
  out->func[0] = 0;
  out->file[0] = 0;
  out->line = 0;
  if (fn == NULL)
    return false;
  Dwarf_Addr addr = (Dwarf_Addr)(uintptr_t)fn, bias = 0;
  bool ok = false;
  pthread_mutex_lock(&dw_mu);
  if (dw == NULL)
    dw_report();
  Dwfl_Module *mod = dw ? dwfl_addrmodule(dw, addr) : NULL;
  Dwarf_Die *cu = mod ? dwfl_module_addrdie(mod, addr, &bias) : NULL;
  Dwarf_Die *scopes = NULL;
  int n = cu ? dwarf_getscopes(cu, addr - bias, &scopes) : 0;
  for (int i = 0; i < n; i++) {
    if (dwarf_tag(&scopes[i]) != DW_TAG_subprogram)
      continue;
    int line = 0;
    const char *file = dwarf_decl_file(&scopes[i]);
    if (file && dwarf_decl_line(&scopes[i], &line) == 0) {
      snprintf(out->file, sizeof out->file, "%s", short_path(file));
      out->line = line;
      const char *name = dwarf_diename(&scopes[i]);
      snprintf(out->func, sizeof out->func, "%s", name ? name : "");
      ok = true;
    }
    break;
  }
  free(scopes);
  pthread_mutex_unlock(&dw_mu);
  return ok;
}

/* ------------------------------------------------------------ text */

void cor__buf_printf(cor__buf *b, const char *fmt, ...) {
  if (b->len + 1 >= b->cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  b->len += (size_t)n;
  if (b->len >= b->cap)
    b->len = b->cap - 1; /* truncated */
}

/* Frames of corio itself and of the C runtime say nothing to the reader. */
static bool boring(const cor__sym *s) {
  return strncmp(s->func, "__libc_start", 12) == 0 ||
         strcmp(s->func, "_start") == 0 ||
         strcmp(s->func, "cor__ctx_entry") == 0;
}

typedef struct {
  cor__buf *b;
  void *const *pcs;
  int n;
} fmt_job;

static void bt_format(void *p) {
  fmt_job *j = p;
  cor__buf *b = j->b;
  void *const *pcs = j->pcs;
  /* Python prints the outermost frame first ("most recent call last"). */
  for (int i = j->n - 1; i >= 0; i--) {
    cor__sym s;
    if (!symbolize(pcs[i], true, &s)) {
      cor__buf_printf(b, "  File \"?\", line 0, in %p\n", pcs[i]);
      continue;
    }
    if (boring(&s))
      continue;
    cor__buf_printf(b, "  File \"%s\", line %d, in %s\n",
                    s.file[0] ? s.file : "?", s.line,
                    s.func[0] ? s.func : "?");
  }
}

void cor__bt_format(cor__buf *b, void *const *pcs, int n) {
  /* One helper thread for the whole backtrace when on a task's stack. */
  fmt_job j = {b, pcs, n};
  if (!on_big_stack(bt_format, &j))
    for (int i = n - 1; i >= 0; i--)
      cor__buf_printf(b, "  File \"?\", line 0, in %p\n", pcs[i]);
}

const char *cor__fn_name(const void *fn, char *buf, size_t n) {
  cor__sym s;
  if (cor__symbolize(fn, false, &s) && s.func[0])
    snprintf(buf, n, "%s", s.func);
  else
    snprintf(buf, n, "%p", fn);
  return buf;
}

const char *cor__site(const void *ra, char *buf, size_t n) {
  cor__sym s;
  if (ra && cor__symbolize(ra, true, &s) && s.file[0])
    snprintf(buf, n, "%s:%d", s.file, s.line);
  else
    buf[0] = 0;
  return buf;
}
