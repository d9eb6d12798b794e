/* SPDX-License-Identifier: MIT */
/* Backtraces and the string buffer of reports (core/base/backtrace.c).
 * Not installed. */
#ifndef CORIO_CORE_BASE_BACKTRACE_H
#define CORIO_CORE_BASE_BACKTRACE_H

#include "base/base.h"

/* Backtraces (core/base/backtrace.c): capture with backtrace(), symbolize with
 * libdw. */
#define COR__BT_MAX 32
typedef struct cor__sym {
  char func[128];
  char file[256];
  int line;
} cor__sym;
typedef struct cor__buf {
  char *s;
  size_t len, cap;
} cor__buf;
void cor__bt_warm(void);
/* The calling thread's frames, skipping `skip` below the caller. */
int cor__bt_capture(void **pcs, int max, int skip);
bool cor__symbolize(const void *pc, bool is_return, cor__sym *out);
/* Where a function is defined (DW_AT_decl_file/line of its DWARF entry). */
bool cor__fn_decl(const void *fn, cor__sym *out);
void cor__buf_printf(cor__buf *b, const char *fmt, ...) COR_PRINTF(2, 3);
/* "  File \"x.c\", line 9, in main\n" per frame, outermost first. */
void cor__bt_format(cor__buf *b, void *const *pcs, int n);
/* A function's name, or its address. */
const char *cor__fn_name(const void *fn, char *buf, size_t n);
/* "file.c:12" of a return address, or "" when unknown. */
const char *cor__site(const void *ra, char *buf, size_t n);

/* A recorded backtrace (debug mode: creation of tasks, coroutines, loops). */
typedef struct cor__bt {
  int n;
  void *pc[];
} cor__bt;
/* Captures the calling thread's stack from the frame whose return address
 * is `from` (pass __builtin_return_address(0) of the public call). NULL on
 * ENOMEM. */
/* (defined in core/diag/debug.c, which records them) */
cor__bt *cor__bt_new(const void *from);

/* Appends " <key>=<address>" (just the address when key is NULL) of
 * socket fd's peer (peer) or its own address: "127.0.0.1:80", "[::1]:80",
 * "/path" or "@name"; nothing for a socket not connected (peer), unnamed,
 * or of another family (defined in core/net/net.c; declared here with the buffer because
 * the task layer's reprs use it too). */
void cor__buf_sockaddr(cor__buf *out, const char *key, int fd, bool peer);

#endif
