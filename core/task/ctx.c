/* SPDX-License-Identifier: MIT */
/* Context creation for the assembly switches, and the ucontext fallback for
 * other targets (or when built with -DCOR_CTX_UCONTEXT). See core/ctx.h. */
#include "task/ctx.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(COR__CTX_ASM)

void cor__ctx_entry(void); /* ctx_*.S */

#if defined(__x86_64__)
void cor__ctx_make(cor__ctx *c, void *lo, size_t size, cor__ctx_fn fn,
                   void *arg) {
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  /* The frame cor__ctx_switch pops (see ctx_x86_64.S), 80 bytes below an
   * aligned top, so that after the pops rsp is 16-aligned at the entry. */
  uint64_t *sp = (uint64_t *)(top - 80);
  /* Default MXCSR (all exceptions masked, round to nearest) and x87 control
   * word (extended precision, all exceptions masked), as at process start. */
  sp[0] = 0x1F80u | ((uint64_t)0x037Fu << 32);
  sp[1] = 0;                            /* r15 */
  sp[2] = 0;                            /* r14 */
  sp[3] = (uint64_t)(uintptr_t)arg;     /* r13 */
  sp[4] = (uint64_t)(uintptr_t)fn;      /* r12 */
  sp[5] = 0;                            /* rbx */
  sp[6] = 0;                            /* rbp: end of the frame chain */
  sp[7] = (uint64_t)(uintptr_t)cor__ctx_entry; /* "return" address */
  sp[8] = 0;
  sp[9] = 0;
  c->sp = sp;
}
#elif defined(__aarch64__)
void cor__ctx_make(cor__ctx *c, void *lo, size_t size, cor__ctx_fn fn,
                   void *arg) {
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)(top - 176);
  memset(sp, 0, 176);
  sp[0] = (uint64_t)(uintptr_t)fn;             /* x19 */
  sp[1] = (uint64_t)(uintptr_t)arg;            /* x20 */
  sp[11] = (uint64_t)(uintptr_t)cor__ctx_entry; /* x30 (lr) */
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  sp[20] = fpcr; /* inherit the creator's rounding mode */
  c->sp = sp;
}
#endif

#else /* ucontext fallback: ~1 us a switch (a sigprocmask syscall each). */

/* makecontext passes int arguments only: split the pointers. */
static void uc_entry(unsigned fhi, unsigned flo, unsigned ahi, unsigned alo) {
  cor__ctx_fn fn =
      (cor__ctx_fn)(uintptr_t)(((uint64_t)fhi << 32) | (uint64_t)flo);
  void *arg = (void *)(uintptr_t)(((uint64_t)ahi << 32) | (uint64_t)alo);
  fn(arg);
  abort(); /* fn must switch away for good, never return */
}

void cor__ctx_make(cor__ctx *c, void *lo, size_t size, cor__ctx_fn fn,
                   void *arg) {
  memset(c, 0, sizeof *c);
  if (getcontext(&c->uc) != 0)
    abort();
  c->uc.uc_stack.ss_sp = lo;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = NULL;
  uint64_t f = (uint64_t)(uintptr_t)fn, a = (uint64_t)(uintptr_t)arg;
  makecontext(&c->uc, (void (*)(void))uc_entry, 4, (unsigned)(f >> 32),
              (unsigned)f, (unsigned)(a >> 32), (unsigned)a);
}

void cor__ctx_switch(cor__ctx *from, cor__ctx *to) {
  if (swapcontext(&from->uc, &to->uc) != 0)
    abort();
}

#endif
