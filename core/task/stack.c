/* SPDX-License-Identifier: MIT */
/* Task stacks: mmap'd with a guard page, pooled per loop, and a SIGSEGV
 * handler that names the task whose stack overflowed. See core/stack.h.
 *
 * Why mmap and a pool: a stack is a few pages of RSS (only touched pages
 * count), but creating one costs an mmap, an mprotect and later a munmap,
 * ~24 us here and more with other threads (TLB shootdown), so the spawn path
 * only ever pops the loop's free list. Stacks are freed on the loop's own
 * thread (pool destroy at loop close). */
#include "base/atomics.h"
#include "base/base.h"
#include "task/stack.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef COR_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef COR_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* valgrind: each stack is registered with it (VALGRIND_STACK_REGISTER) so
 * that a switch between stacks reads as a switch, not as a frame of
 * megabytes pushed or popped ("client switching stacks?", then invalid reads
 * of whatever lies between). Built in when <valgrind/valgrind.h> is there
 * (Debian: the `valgrind` package), unless
 * -DCOR_NO_VALGRIND; the client requests are a few no-op instructions
 * outside valgrind, and the pool's hot paths test a flag read once. */
#if !defined(COR_NO_VALGRIND) && defined(__has_include)
#if __has_include(<valgrind/valgrind.h>) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define COR__VALGRIND 1
#endif
#endif
#ifdef COR__VALGRIND
static int on_valgrind = -1; /* -1 = not yet asked */
static inline bool vg(void) {
  int v = cor__load_rlx(&on_valgrind);
  if (COR_UNLIKELY(v < 0)) {
    v = RUNNING_ON_VALGRIND ? 1 : 0;
    cor__store_rlx(&on_valgrind, v);
  }
  return v != 0;
}
#endif

_Thread_local cor__stack *cor__tls_stack
    __attribute__((tls_model("initial-exec")));
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static void install_handler(void);
_Thread_local int cor__stack_thread_ready
    __attribute__((tls_model("initial-exec")));

static size_t page_size(void) {
  /* Loops on several threads may make their first stack pool at once:
   * relaxed atomics (they all store the same value) keep that race-free. */
  static size_t ps;
  size_t v = cor__load_rlx(&ps);
  if (v == 0) {
    long s = sysconf(_SC_PAGESIZE);
    v = s > 0 ? (size_t)s : 4096;
    cor__store_rlx(&ps, v);
  }
  return v;
}

size_t cor__stack_default_size(void) {
#if defined(COR_ASAN)
  return 4 * COR__STACK_DEFAULT; /* redzones around every local */
#elif defined(COR_TSAN)
  return 2 * COR__STACK_DEFAULT;
#else
  return COR__STACK_DEFAULT;
#endif
}

static size_t round_size(size_t size) {
  size_t ps = page_size();
  if (size < COR__STACK_MIN)
    size = COR__STACK_MIN;
  return (size + ps - 1) & ~(ps - 1);
}

void cor__stack_pool_init(cor__stack_pool *p, size_t size) {
  memset(p, 0, sizeof *p);
  p->size = round_size(size ? size : cor__stack_default_size());
  /* Enough to keep a busy loop off mmap; past it a burst's stacks go back to
   * the kernel (at ~2 touched pages each, 1024 pooled stacks hold ~8 MiB). */
  p->max_free = 1024;
  pthread_once(&handler_once, install_handler);
  cor__stack_handler_check();
}

static void stack_free_list(cor__stack *s) {
  while (s) {
    cor__stack *n = s->next;
    cor__stack_unmap(s);
    s = n;
  }
}

void cor__stack_pool_destroy(cor__stack_pool *p) {
  stack_free_list(p->free);
  p->free = NULL;
  p->nfree = 0;
}

void cor__stack_pool_set_size(cor__stack_pool *p, size_t size) {
  size = round_size(size);
  if (size == p->size)
    return;
  cor__stack_pool_destroy(p);
  p->size = size;
}

/* ------------------------------------------------------------ arenas */

/* Every stack with a guard page is two memory mappings (the guard splits
 * its mapping), so vm.max_map_count (65,530 by default) would cap a process
 * near 32,000 tasks. The first guard_budget stacks get a guard; the rest
 * are slots of arenas, one mapping per ARENA_SLOTS stacks, with a canary
 * zone at the bottom of each slot instead. An arena slot is never unmapped:
 * freeing one gives its pages back (MADV_DONTNEED, the header's page kept)
 * and puts it on the free list of its size, shared by every loop. */
#define ARENA_SLOTS 256
#define MAP_RESERVE 16384 /* mappings left to the rest of the process */

static struct {
  pthread_mutex_t mu;
  /* free arena slots, one list per slot size (few sizes in practice) */
  struct arena_class {
    size_t size;
    cor__stack *free;
  } cls[8];
  unsigned ncls;
} arenas = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t guarded_now; /* atomic */

static size_t guard_budget_v; /* 0 until read */

size_t cor__stack_guard_budget(void) {
  size_t b = cor__load_rlx(&guard_budget_v);
  if (b == 0) {
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
      if (fscanf(f, "%ld", &max) != 1)
        max = 65530;
      fclose(f);
    }
    b = max > 2 * MAP_RESERVE ? (size_t)(max - MAP_RESERVE) / 2
                              : (size_t)(max > 8 ? max / 4 : 1);
    const char *e = getenv("CORIO_STACK_GUARDS"); /* tests: a small budget */
    if (e && *e)
      b = (size_t)strtoul(e, NULL, 10);
    if (b == 0)
      b = 1;
    cor__store_rlx(&guard_budget_v, b);
  }
  return b;
}

void cor__stack_set_guard_budget(size_t budget) {
  (void)cor__stack_guard_budget(); /* read the default first: no later race */
  cor__store_rlx(&guard_budget_v, budget ? budget : 1);
}

size_t cor__stack_guarded(void) {
  return cor__load_rlx(&guarded_now);
}

static void canary_set(cor__stack *s) {
  s->canary = (uint64_t *)(void *)s->lo;
  for (int i = 0; i < COR__STACK_CANARY_WORDS; i++)
    s->canary[i] = COR__STACK_CANARY;
}

/* The header of a slot starting at `slot` of `len` bytes, as stack_map
 * lays a guarded stack out (guard 0). */
static cor__stack *slot_init(char *slot, size_t len, size_t size,
                             size_t guard);

/* A free arena slot of `size` usable bytes, or a new arena; NULL with
 * errno on failure. */
static cor__stack *arena_take(size_t size) {
  pthread_mutex_lock(&arenas.mu);
  struct arena_class *c = NULL;
  for (unsigned i = 0; i < arenas.ncls; i++)
    if (arenas.cls[i].size == size)
      c = &arenas.cls[i];
  if (c == NULL && arenas.ncls < sizeof arenas.cls / sizeof arenas.cls[0]) {
    c = &arenas.cls[arenas.ncls++];
    c->size = size;
    c->free = NULL;
  }
  if (c == NULL) {
    pthread_mutex_unlock(&arenas.mu);
    errno = ENOMEM; /* more sizes than classes: rare, and not worth more */
    return NULL;
  }
  if (c->free == NULL) {
    size_t len = (size_t)ARENA_SLOTS * size;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                     -1, 0);
    if (map == MAP_FAILED) {
      pthread_mutex_unlock(&arenas.mu);
      return NULL;
    }
    for (size_t i = ARENA_SLOTS; i-- > 0;) {
      cor__stack *s = slot_init(map + i * size, size, size, 0);
      s->arena_lo = map;
      s->next = c->free;
      c->free = s;
    }
  }
  cor__stack *s = c->free;
  c->free = s->next;
  pthread_mutex_unlock(&arenas.mu);
  s->next = NULL;
  canary_set(s); /* the pages may have been given back since */
  return s;
}

static void arena_give_back(cor__stack *s) {
  /* Every page but the header's goes back to the kernel. */
  size_t ps = page_size();
  uintptr_t hdr_page = (uintptr_t)s & ~(uintptr_t)(ps - 1);
  if (hdr_page > (uintptr_t)s->map)
    madvise(s->map, hdr_page - (uintptr_t)s->map, MADV_DONTNEED);
  s->task_name = NULL;
  s->task_id = 0;
  pthread_mutex_lock(&arenas.mu);
  for (unsigned i = 0; i < arenas.ncls; i++)
    if (arenas.cls[i].size == s->map_size) {
      s->next = arenas.cls[i].free;
      arenas.cls[i].free = s;
      break;
    }
  pthread_mutex_unlock(&arenas.mu);
}

void cor__stack_unmap(cor__stack *s) {
  if (s->canary != NULL) {
#ifdef COR_ASAN
    __asan_unpoison_memory_region(s->map, s->map_size);
#endif
    arena_give_back(s); /* the slot stays mapped, registered and fibred */
    return;
  }
  cor__sub_rlx(&guarded_now, 1);
#ifdef COR__VALGRIND
  if (COR_UNLIKELY(vg()))
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
#ifdef COR_TSAN
  if (s->tsan_fiber)
    __tsan_destroy_fiber(s->tsan_fiber);
#endif
  char *map = s->map;
  size_t len = s->map_size;
#ifdef COR_ASAN
  /* Frames that never returned (a task's entry frame) leave poisoned shadow
   * behind; clear it before the address range can be reused by malloc. */
  __asan_unpoison_memory_region(map, len);
#endif
  COR_ASSERT(munmap(map, len) == 0);
}

static cor__stack *stack_map(size_t size) {
  if (cor__add_rlx(&guarded_now, 1) >
      cor__stack_guard_budget()) {
    cor__sub_rlx(&guarded_now, 1);
    return arena_take(size);
  }
  size_t ps = page_size(), guard = ps;
  size_t len = size + guard;
  char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
                   0);
  if (map == MAP_FAILED) {
    cor__sub_rlx(&guarded_now, 1);
    return arena_take(size); /* out of mappings: no guard, one arena */
  }
  if (mprotect(map, guard, PROT_NONE) != 0) {
    munmap(map, len);
    cor__sub_rlx(&guarded_now, 1);
    return arena_take(size);
  }
  return slot_init(map, len, size, guard);
}

static cor__stack *slot_init(char *map, size_t len, size_t size,
                             size_t guard) {
  /* Header at the top, cache-line aligned; the usable stack ends below it. */
  uintptr_t top = (uintptr_t)map + len;
  cor__stack *s =
      (cor__stack *)((top - sizeof(cor__stack)) & ~(uintptr_t)(COR_CACHELINE - 1));
  memset(s, 0, sizeof *s);
  s->map = map;
  s->map_size = len;
  s->guard = guard;
  s->lo = map + guard;
  s->size = (size_t)((char *)s - s->lo);
  s->cfg_size = size;
  /* 32 colours, one cache line apart: 2 KiB of spread, so the top frames of
   * an idle task still fit the stack's first page. */
  /* Per thread: loops run on their own threads, and any value will do. */
  static _Thread_local unsigned next_color;
  s->color = (size_t)(next_color++ & 31u) * 64u;
#ifdef COR_TSAN
  s->tsan_fiber = __tsan_create_fiber(0);
#endif
#ifdef COR__VALGRIND
  /* The usable region only: the header above it is ordinary memory. */
  if (COR_UNLIKELY(vg()))
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, (char *)s);
#endif
  return s;
}

cor__stack *cor__stack_get(cor__stack_pool *p) {
  cor__stack *s = p->free;
  if (COR_LIKELY(s != NULL)) {
    p->free = s->next;
    p->nfree--;
  } else if ((s = stack_map(p->size)) == NULL) {
    return NULL;
  }
  s->next = NULL;
  p->live++;
  return s;
}

void cor__stack_put(cor__stack_pool *p, cor__stack *s) {
  p->live--;
  s->task_name = NULL;
  s->task_id = 0;
  if (COR_UNLIKELY(p->nfree >= p->max_free ||
                   s->map_size != p->size + s->guard)) {
    cor__stack_unmap(s);
    return;
  }
#ifdef COR_ASAN
  __asan_unpoison_memory_region(s->lo, s->size);
#endif
#ifdef COR__VALGRIND
  /* The last task's popped frames are no-access to memcheck now; the next
   * cor__ctx_make writes a frame there. */
  if (COR_UNLIKELY(vg()))
    VALGRIND_MAKE_MEM_UNDEFINED(s->lo, s->size);
#endif
  s->next = p->free;
  p->free = s;
  p->nfree++;
}

/* ------------------------------------------------------------ overflow */

static struct sigaction old_segv, old_bus;
static pthread_key_t altstack_key;

/* Async-signal-safe formatting: write(2) and hand-rolled numbers only. */
static size_t put_str(char *buf, size_t at, size_t cap, const char *s) {
  while (*s && at + 1 < cap)
    buf[at++] = *s++;
  return at;
}
static size_t put_u64(char *buf, size_t at, size_t cap, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n > 0 && at + 1 < cap)
    buf[at++] = tmp[--n];
  return at;
}

static uintptr_t fault_sp(void *ucv) {
  ucontext_t *uc = ucv;
#if defined(__x86_64__)
  return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
  return (uintptr_t)uc->uc_mcontext.sp;
#else
  (void)uc;
  return 0;
#endif
}

static void chain(int sig, siginfo_t *info, void *uc) {
  struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
  if (old->sa_flags & SA_SIGINFO) {
    if (old->sa_sigaction) {
      old->sa_sigaction(sig, info, uc);
      return;
    }
  } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
    old->sa_handler(sig);
    return;
  }
  /* Default action: reinstall it and return; the faulting instruction runs
   * again and the kernel kills the process with the right signal. */
  signal(sig, SIG_DFL);
}

static void overflow_handler(int sig, siginfo_t *info, void *uc) {
  cor__stack *s = cor__tls_stack;
  if (s != NULL) {
    uintptr_t addr = (uintptr_t)info->si_addr, sp = fault_sp(uc);
    uintptr_t glo = (uintptr_t)s->map, ghi = (uintptr_t)s->lo;
    /* An arena stack has no guard: its overflow runs down through the
     * slots below it until it faults under the arena's start. */
    uintptr_t bottom = s->canary ? (uintptr_t)s->arena_lo : glo;
    /* A fault in the guard page, or any fault while the stack pointer is
     * at or below it (a frame larger than the guard jumped over it). */
    if ((addr >= glo && addr < ghi) ||
        (sp != 0 && sp < ghi && sp + (1u << 20) > bottom))
      cor__stack_overflow(s);
  }
  chain(sig, info, uc);
}

void cor__stack_check(const cor__stack *s) {
  if (s->canary[0] != COR__STACK_CANARY ||
      s->canary[COR__STACK_CANARY_WORDS - 1] != COR__STACK_CANARY)
    cor__stack_overflow(s);
}

void cor__stack_overflow(const cor__stack *s) {
  {
    {
      char buf[512];
      size_t n = put_str(buf, 0, sizeof buf, "corio: stack overflow in task '");
      if (s->task_name) {
        n = put_str(buf, n, sizeof buf, s->task_name);
      } else {
        n = put_str(buf, n, sizeof buf, "Task-");
        n = put_u64(buf, n, sizeof buf, s->task_id);
      }
      n = put_str(buf, n, sizeof buf, "' (stack size ");
      n = put_u64(buf, n, sizeof buf, s->cfg_size);
      n = put_str(buf, n, sizeof buf,
                  " bytes); raise it with cor_loop_set_task_stack_size, "
                  "cor_run_opts.stack_size, cor_runtime_opts.stack_size or "
                  "cor_server_opts.stack_size, or keep large buffers off "
                  "the stack\n");
      ssize_t w = write(STDERR_FILENO, buf, n);
      (void)w;
      /* abort() raises SIGABRT; restore its default so a handler the
       * application installed cannot resume a task without a stack. */
      signal(SIGABRT, SIG_DFL);
      abort();
    }
  }
}

static void altstack_free(void *p) {
  stack_t ss;
  if (sigaltstack(NULL, &ss) == 0 && ss.ss_sp == p) {
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
  }
  munmap(p, 64 * 1024);
}

static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;

/* (Re)installs the handler when someone replaced it (test frameworks such as
 * cmocka install their own per test); the one found is chained to. */
static void ensure_handler(int sig, struct sigaction *old) {
  struct sigaction cur;
  if (sigaction(sig, NULL, &cur) != 0)
    return;
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == overflow_handler)
    return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = overflow_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  struct sigaction prev;
  if (sigaction(sig, &sa, &prev) == 0)
    *old = prev;
}

void cor__stack_handler_check(void) {
  pthread_mutex_lock(&handler_lock);
  ensure_handler(SIGSEGV, &old_segv);
  ensure_handler(SIGBUS, &old_bus);
  pthread_mutex_unlock(&handler_lock);
}

static void install_handler(void) {
  COR_ASSERT(pthread_key_create(&altstack_key, altstack_free) == 0);
  cor__stack_handler_check();
}

void cor__stack_thread_init(void) {
  if (cor__stack_thread_ready)
    return;
  cor__stack_thread_ready = 1;
  pthread_once(&handler_once, install_handler);
  /* Keep an alternate stack the thread (or a sanitizer) already has. */
  stack_t cur;
  if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) &&
      cur.ss_size >= 16 * 1024)
    return;
  size_t len = 64 * 1024;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return; /* an overflow then dies without the message */
  stack_t ss = {.ss_sp = p, .ss_size = len, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(p, len);
    return;
  }
  pthread_setspecific(altstack_key, p);
}
