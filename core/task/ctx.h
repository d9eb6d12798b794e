/* SPDX-License-Identifier: MIT */
/* The context switch (core/ctx_*.S, core/ctx_ucontext.c): the one primitive
 * tasks are built on. Internal; perf/ and tests/ may use it.
 *
 * A context is a saved stack pointer: cor__ctx_switch pushes the callee-saved
 * registers (and the FP control state the ABI says a callee preserves) on
 * the current stack, stores the stack pointer in `from`, loads `to`'s and
 * pops. Nothing else is saved: caller-saved registers are dead at a call, and
 * the signal mask is per thread, not per task (no syscall per switch).
 *
 * The sanitizer annotations are not here but in the task scheduler, which
 * knows each context's stack: the raw switch stays what limit_context_switch
 * measures. */
#ifndef CORIO_CORE_CTX_H
#define CORIO_CORE_CTX_H

#include <stddef.h>

#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(COR_CTX_UCONTEXT)
#define COR__CTX_ASM 1
typedef struct cor__ctx {
  void *sp;
} cor__ctx;
#else
#include <ucontext.h>
typedef struct cor__ctx {
  ucontext_t uc;
} cor__ctx;
#endif

typedef void (*cor__ctx_fn)(void *arg);

/* Prepares `c` to run fn(arg) on the stack [lo, lo + size) the first time it
 * is switched to. fn must never return: it switches away for good instead
 * (the entry trampoline traps if it does). */
void cor__ctx_make(cor__ctx *c, void *lo, size_t size, cor__ctx_fn fn,
                   void *arg);

/* Saves the running context into `from` and resumes `to`. Returns when some
 * context switches back to `from`. */
void cor__ctx_switch(cor__ctx *from, cor__ctx *to);

#endif
