/* SPDX-License-Identifier: MIT */
/* Task stacks (core/stack.c): a per-loop pool of mmap'd stacks, each with a
 * PROT_NONE guard page below it, and the SIGSEGV handler that turns a fault
 * in a guard page into "corio: stack overflow in task 'NAME' (stack size N)".
 * Internal. */
#ifndef CORIO_CORE_STACK_H
#define CORIO_CORE_STACK_H

#include <stddef.h>
#include <stdint.h>

/* The header lives in the stack's own mapping, at its top: a stack costs no
 * malloc, and the header shares the page the task's first frames touch. */
typedef struct cor__stack {
  struct cor__stack *next; /* pool free list */
  char *map;               /* mapping start = guard page */
  size_t map_size;
  char *lo;                /* usable region [lo, lo + size) */
  size_t size;
  size_t guard;
  size_t cfg_size; /* the size asked for (usable size plus the header) */
  /* Bytes left unused below the header before the first frame: stacks get
   * different colours so that the hot top frames of many suspended tasks
   * do not all fall in the same cache sets (every stack top has the same
   * page offset otherwise). */
  size_t color;
  /* Set by the scheduler while a task owns the stack, for the crash
   * message; the handler only reads them. */
  const char *task_name; /* NULL: "Task-<task_id>" */
  uint64_t task_id;
  void *tsan_fiber; /* TSan builds: the fiber that runs on this stack */
  unsigned vg_id;   /* under valgrind: the id VALGRIND_STACK_REGISTER gave */
  /* Stacks past the guard-page budget are carved from shared arenas with
   * no guard page (a guard costs a memory mapping, and the kernel allows
   * vm.max_map_count of them): their lowest bytes hold a canary, checked
   * at every switch away from the task (cor__stack_check). NULL for a
   * guarded stack. */
  uint64_t *canary;
  char *arena_lo; /* arena stacks: their arena's start (the fault handler) */
} cor__stack;

#define COR__STACK_CANARY 0xc0c0a5a5f00dfaceull
/* The words of the canary zone at the bottom of an arena stack. */
#define COR__STACK_CANARY_WORDS 8

typedef struct cor__stack_pool {
  cor__stack *free;
  size_t nfree;
  size_t max_free; /* stacks kept beyond this are unmapped */
  size_t size;     /* usable bytes of the stacks handed out now */
  size_t live;     /* handed out and not yet returned */
} cor__stack_pool;

/* The default usable size; see cor_loop_set_task_stack_size. Sanitizer
 * builds multiply it (their instrumented frames are several times larger). */
#define COR__STACK_DEFAULT (64u * 1024u)
#define COR__STACK_MIN (16u * 1024u)
size_t cor__stack_default_size(void);

void cor__stack_pool_init(cor__stack_pool *p, size_t size);
/* Frees every pooled stack. Stacks still handed out are the caller's. */
void cor__stack_pool_destroy(cor__stack_pool *p);
/* Changes the size of stacks handed out from now on; pooled stacks of the
 * old size are freed. */
void cor__stack_pool_set_size(cor__stack_pool *p, size_t size);
/* A stack from the pool, or a new mapping; NULL with errno on failure. */
cor__stack *cor__stack_get(cor__stack_pool *p);
void cor__stack_put(cor__stack_pool *p, cor__stack *s);
/* Unmaps a stack that does not go back to a pool. */
void cor__stack_unmap(cor__stack *s);

/* Reports the overflow of s's task on stderr and aborts (the SIGSEGV
 * handler's message). */
__attribute__((noreturn, cold)) void cor__stack_overflow(const cor__stack *s);

/* At a switch away from a task on an arena stack s: one whose canary was
 * overwritten overflowed (reported, abort). Out of line and cold: the
 * callers test a flag they keep hot first, so the switch paths stay small
 * enough to inline. */
__attribute__((cold, noinline)) void cor__stack_check(const cor__stack *s);

/* How many stacks get a guard page before arenas take over (from
 * vm.max_map_count, read once: half of it, less a reserve for the rest
 * of the process), and how many have one now. For tests and reports. */
size_t cor__stack_guard_budget(void);
size_t cor__stack_guarded(void);
/* Tests: sets the budget (stacks already made keep what they have). */
void cor__stack_set_guard_budget(size_t budget);

/* The stack the calling thread runs a task on, or NULL (set by the
 * scheduler around each switch; read by the SIGSEGV handler). */
extern _Thread_local cor__stack *cor__tls_stack
    __attribute__((tls_model("initial-exec")));

/* Installs the process-wide SIGSEGV/SIGBUS handler (once) and an alternate
 * signal stack for the calling thread (once per thread; freed at thread
 * exit), so that an overflow can be reported from a stack that still has
 * room. Call before the thread first switches to a task. */
void cor__stack_thread_init(void);
extern _Thread_local int cor__stack_thread_ready
    __attribute__((tls_model("initial-exec")));
/* Puts the overflow handler back if something replaced it (chaining to the
 * replacement); called whenever a loop's stack pool is made. */
void cor__stack_handler_check(void);

#endif
