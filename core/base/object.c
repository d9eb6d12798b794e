/* SPDX-License-Identifier: MIT */
/* Reference counting shared by every counted object, and, in debug mode,
 * the census of counted objects never released.
 *
 * The census: once debug mode is on anywhere in the process (CORIO_DEBUG
 * set when the library loads, or a loop put in debug mode: cor_loop_set_debug,
 * cor_loop_opts.debug, cor_run_opts.debug), every counted object made from
 * then on is entered in one process-wide table with its type and the return
 * addresses of its creation (a raw backtrace, symbolized only at report
 * time), and leaves it when its last reference is released. At exit
 * core/resource.c reports what is left per type, with the count and the
 * creation sites (cor__obj_report_unreleased). It stays on once turned on:
 * an object made in debug mode and released after it was turned off must
 * still leave the table.
 *
 * Production pays one load of a read-mostly global and a predicted branch
 * in cor__obj_init and in the last cor_release (perf/bench spawn_await:
 * ARCHITECTURE.md), no counter: a per-type counter shared by every loop
 * thread would bounce its cache line on every spawn. */
#include "base/atomics.h"
#include "base/backtrace.h"
#include "base/base.h"
#include "base/census.h"
#include "base/object.h"
#include "base/report.h"

#include <execinfo.h>

static cor__obj_free_fn obj_free[COR__OBJ_MAX];

int cor__obj_census_on;

/* ------------------------------------------------------------ census */

#define CENSUS_PCS 12

typedef struct census_node {
  struct census_node *next;
  /* The object's address, disguised (hide()): a pointer memcheck could
   * follow would make every leaked object "still reachable" in debug mode,
   * and valgrind's leak check would miss what this census reports. */
  uintptr_t obj;
  uint32_t type;
  unsigned gen; /* cor__fork_gen when made: a child does not report these */
  int npc;
  void *pc[CENSUS_PCS];
} census_node;

/* The table's own memory comes from malloc, not cor__malloc: the failure
 * injection of tests (cor__alloc_fail_after) counts the caller's
 * allocations, which debug mode must not shift. */
static pthread_mutex_t census_mu = PTHREAD_MUTEX_INITIALIZER;
static census_node **census_tab; /* under census_mu */
static size_t census_nb, census_n;

static inline uintptr_t hide(const cor__obj *o) {
  return (uintptr_t)o ^ (uintptr_t)0xA5A5A5A5A5A5A5A5ull;
}

static inline size_t census_hash(uintptr_t key, size_t nb) {
  uintptr_t h = key >> 4;
  h ^= h >> 17;
  h *= 0x9E3779B97F4A7C15ull; /* Fibonacci hashing: spreads aligned pointers */
  return (size_t)(h >> 20) & (nb - 1);
}

static void census_grow(void) {
  size_t nb = census_nb ? census_nb * 2 : 1024;
  census_node **t = calloc(nb, sizeof *t);
  if (t == NULL)
    return; /* longer chains, still correct */
  for (size_t i = 0; i < census_nb; i++)
    for (census_node *n = census_tab[i], *next; n; n = next) {
      next = n->next;
      size_t h = census_hash(n->obj, nb);
      n->next = t[h];
      t[h] = n;
    }
  free(census_tab);
  census_tab = t;
  census_nb = nb;
}

static __attribute__((noinline)) void census_add(const cor__obj *o) {
  void *pcs[CENSUS_PCS + 2];
  int n = backtrace(pcs, CENSUS_PCS + 2);
  /* pcs[0] is here, pcs[1] cor__obj_init (or its inlined caller). */
  int skip = n > 2 ? 2 : n;
  census_node *node = malloc(sizeof *node);
  if (node == NULL)
    return; /* not counted: the census is best effort under ENOMEM */
  node->obj = hide(o);
  node->type = o->type;
  node->gen = cor__load_rlx(&cor__fork_gen);
  node->npc = n - skip;
  memcpy(node->pc, pcs + skip, (size_t)node->npc * sizeof(void *));
  pthread_mutex_lock(&census_mu);
  if (census_n >= census_nb)
    census_grow();
  if (census_nb == 0) {
    pthread_mutex_unlock(&census_mu);
    free(node);
    return;
  }
  census_node **pp = &census_tab[census_hash(hide(o), census_nb)];
  /* Same address listed: that object was freed without its last release
   * (a constructor's ENOMEM path); the new one replaces it. */
  for (census_node *e = *pp; e; e = e->next)
    if (e->obj == hide(o)) {
      e->type = node->type;
      e->gen = node->gen;
      e->npc = node->npc;
      memcpy(e->pc, node->pc, (size_t)node->npc * sizeof(void *));
      pthread_mutex_unlock(&census_mu);
      free(node);
      return;
    }
  node->next = *pp;
  *pp = node;
  census_n++;
  pthread_mutex_unlock(&census_mu);
}

static __attribute__((noinline)) void census_remove(const cor__obj *o) {
  census_node *found = NULL;
  pthread_mutex_lock(&census_mu);
  if (census_nb) {
    for (census_node **pp = &census_tab[census_hash(hide(o), census_nb)]; *pp;
         pp = &(*pp)->next)
      if ((*pp)->obj == hide(o)) {
        found = *pp;
        *pp = found->next;
        census_n--;
        break;
      }
  }
  pthread_mutex_unlock(&census_mu);
  free(found);
}

void cor__obj_forget(const cor__obj *o) { census_remove(o); }

void cor__obj_census_enable(void) {
  cor__store_rlx(&cor__obj_census_on, 1);
}

/* ------------------------------------------------------------ report */

static const char *const type_names[COR__OBJ_MAX] = {
    [COR__OBJ_LOOP] = "loop",
    [COR__OBJ_FUTURE] = "future",
    [COR__OBJ_TASK] = "task",
    [COR__OBJ_CFUTURE] = "concurrent future",
    [COR__OBJ_EXECUTOR] = "executor",
    [COR__OBJ_RUNTIME] = "runtime",
    [COR__OBJ_LOCK] = "lock",
    [COR__OBJ_EVENT] = "event",
    [COR__OBJ_SEMAPHORE] = "semaphore",
    [COR__OBJ_AS_COMPLETED] = "as_completed iterator",
    [COR__OBJ_QUEUE] = "queue",
};

/* The library's own source root ("/src/corio/" or ""), from where this file
 * was compiled: a frame in <root>core/ or <root>executor/ is corio's. */
static bool root_of(char *root, size_t n) {
  cor__sym s;
  if (!cor__symbolize((const void *)cor__obj_init, false, &s) || !s.file[0])
    return false;
  const char *at = strstr(s.file, "core/base/object.c");
  if (at == NULL)
    return false;
  snprintf(root, n, "%.*s", (int)(at - s.file), s.file);
  return true;
}

static bool is_corio_frame(const cor__sym *s, const char *root) {
  size_t rl = strlen(root);
  if (strncmp(s->file, root, rl) != 0)
    return false;
  return strncmp(s->file + rl, "core/", 5) == 0 ||
         strncmp(s->file + rl, "executor/", 9) == 0;
}

/* "file.c:12 in fn": the first frame of the creation that is neither
 * corio's nor the C runtime's (the application's call); else the outermost
 * corio frame (a `return cor_run(...)` from main leaves no frame of main). */
static void site_of(const census_node *n, const char *root, bool have_root,
                    char *out, size_t cap) {
  snprintf(out, cap, "%p", n->npc ? n->pc[0] : NULL);
  for (int i = 0; i < n->npc; i++) {
    cor__sym s;
    if (!cor__symbolize(n->pc[i], true, &s) || !s.file[0])
      continue;
    if (strncmp(s.func, "__libc_start", 12) == 0 || strcmp(s.func, "_start") == 0)
      break;
    snprintf(out, cap, "%s:%d in %s", s.file, s.line, s.func[0] ? s.func : "?");
    if (!have_root || !is_corio_frame(&s, root))
      return;
  }
}

typedef struct {
  void *key; /* the first frames' pcs, hashed: same call stack, same site */
  char site[512];
  size_t count;
} site_count;

#define MAX_SITES 64
#define SHOWN_SITES 5

void cor__obj_report_unreleased(void (*report)(const char *text)) {
  if (!cor__load_rlx(&cor__obj_census_on))
    return;
  unsigned gen = cor__load_rlx(&cor__fork_gen);
  char root[256] = "";
  bool have_root = false, root_asked = false;
  for (uint32_t type = COR__OBJ_NONE + 1; type < COR__OBJ_MAX; type++) {
    static site_count sites[MAX_SITES]; /* at exit: one thread */
    size_t nsites = 0, total = 0, other = 0;
    /* Nodes are not freed while we hold the lock; symbolizing under it is
     * fine at exit (nothing else should be making objects by then). */
    pthread_mutex_lock(&census_mu);
    for (size_t i = 0; i < census_nb; i++)
      for (census_node *n = census_tab[i]; n; n = n->next) {
        if (n->type != type || n->gen != gen)
          continue;
        total++;
        uintptr_t k = 0;
        for (int j = 0; j < n->npc && j < 6; j++)
          k = k * 31 + (uintptr_t)n->pc[j];
        size_t s = 0;
        while (s < nsites && sites[s].key != (void *)k)
          s++;
        if (s == nsites) {
          if (nsites == MAX_SITES) {
            other++;
            continue;
          }
          sites[s].key = (void *)k;
          sites[s].count = 0;
          if (!root_asked) { /* symbolizing loads libdw: only when needed */
            have_root = root_of(root, sizeof root);
            root_asked = true;
          }
          site_of(n, root, have_root, sites[s].site, sizeof sites[s].site);
          nsites++;
        }
        sites[s].count++;
      }
    pthread_mutex_unlock(&census_mu);
    if (total == 0)
      continue;
    /* Several call stacks may end at one source line: merge by text. */
    for (size_t a = 0; a < nsites; a++)
      for (size_t b = a + 1; b < nsites;)
        if (strcmp(sites[a].site, sites[b].site) == 0) {
          sites[a].count += sites[b].count;
          sites[b] = sites[--nsites];
        } else {
          b++;
        }
    for (size_t a = 0; a < nsites; a++) /* most first */
      for (size_t b = a + 1; b < nsites; b++)
        if (sites[b].count > sites[a].count) {
          site_count t = sites[a];
          sites[a] = sites[b];
          sites[b] = t;
        }
    char text[2048], nm[48];
    const char *name = type_names[type];
    if (name == NULL) {
      snprintf(nm, sizeof nm, "object of type %u", type);
      name = nm;
    }
    cor__buf b = {text, 0, sizeof text};
    text[0] = 0;
    cor__buf_printf(&b, "%zu %s%s never released (cor_release), created at:",
                    total, name, total == 1 ? "" : "s");
    for (size_t s = 0; s < nsites && s < SHOWN_SITES; s++)
      cor__buf_printf(&b, "\n  %zu at %s", sites[s].count, sites[s].site);
    size_t rest = other;
    for (size_t s = SHOWN_SITES; s < nsites; s++)
      rest += sites[s].count;
    if (rest)
      cor__buf_printf(&b, "\n  %zu elsewhere", rest);
    report(text);
  }
}

/* ------------------------------------------------------------ refcounts */

void cor__obj_init(cor__obj *o, enum cor__obj_type type) {
  o->type = type;
  o->refs = 1;
  if (COR_UNLIKELY(cor__load_rlx(&cor__obj_census_on)))
    census_add(o);
}

void cor__obj_register(enum cor__obj_type type, cor__obj_free_fn fn) {
  obj_free[type] = fn;
}

void *cor_retain(void *obj) {
  if (obj == NULL)
    return NULL;
  cor__obj *o = obj;
  COR_ASSERT(o->type > COR__OBJ_NONE && o->type < COR__OBJ_MAX);
  ck_pr_inc_32(&o->refs);
  return obj;
}

void cor_release(void *obj) {
  if (obj == NULL)
    return;
  cor__obj *o = obj;
  COR_ASSERT(o->type > COR__OBJ_NONE && o->type < COR__OBJ_MAX);
  /* The decrement is a full barrier (lock xadd / ck's fenced dec): every
   * write the releasing thread made happens before the free below. */
  bool zero = false;
  ck_pr_dec_32_zero(&o->refs, &zero);
  if (zero) {
    ck_pr_fence_acquire();
    COR_ASSERT(obj_free[o->type] != NULL);
    if (COR_UNLIKELY(cor__load_rlx(&cor__obj_census_on)))
      census_remove(o);
    obj_free[o->type](o);
  }
}

/* ------------------------------------------------------------ fork */

static void census_fork_prepare(void) { pthread_mutex_lock(&census_mu); }
static void census_fork_parent(void) { pthread_mutex_unlock(&census_mu); }
static void census_fork_child(void) { pthread_mutex_init(&census_mu, NULL); }

__attribute__((constructor)) static void object_module_init(void) {
  COR_ASSERT(pthread_atfork(census_fork_prepare, census_fork_parent,
                            census_fork_child) == 0);
  if (cor__debug_env())
    cor__obj_census_enable();
}
