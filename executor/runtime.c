/* SPDX-License-Identifier: MIT */
/* The per-core runtime: N loops on N pinned threads, placement of spawned
 * tasks, the phased shutdown, fork detection, and the bounded door.
 *
 * Placement: a loop's load is the number of live tasks the runtime put there,
 * kept as two monotonic counters on two cache lines: `admitted`, bumped by
 * the spawning threads, and `ended`, bumped on the loop when a task's
 * outcome reached its cfuture. Load = admitted - ended. Split so that a
 * spawn and the end of the task it spawned never pull one line back and
 * forth between the spawner's core and the loop's (two cache misses per
 * cross-loop await otherwise). A spawn reads every load and takes the
 * smallest, starting from a per-thread rotating index so ties spread.
 * Spawns from many threads contend only on the counter of the loop they
 * pick.
 *
 * Shutdown is driven from the calling thread with one deadline: it stops
 * admissions, asks each loop to cancel its tasks (a 1 ms check callback on
 * each loop re-cancels tasks made during clean-up and reports when the loop
 * is quiet), then stops the loops; each loop thread drains, shuts its
 * executors down, reports what is left and closes its loop; the caller joins
 * the threads with the deadline and leaves a stuck one behind rather than
 * wait for it. */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/object.h"
#include "base/thread.h"
#include "loop/loop.h"
#include "loop/loop_debug.h"
#include "loop/mpsc.h"
#include "internal.h"
#include "base/atomics.h"

#include <math.h>
#include <sched.h>

#define MAX_LOOPS 1024
#define DEFAULT_SHUTDOWN_S 10.0
/* Period of the shutdown check on each loop. */
#define SD_CHECK_S 0.001

enum { RT_RUNNING = 0, RT_STOPPING, RT_CLOSED };

struct cor__rt_loop {
  /* Live tasks placed here = admitted - ended (unsigned, wrapping).
   * admitted: bumped (and, on a refused admission, unbumped) by spawning
   * threads. ended: bumped by the loop as each task's outcome is published
   * (by the spawner only on a failed submit). Each on its own line. */
  unsigned admitted COR_ALIGNED_CL;
  unsigned ended COR_ALIGNED_CL;
  /* Read-mostly from here on. */
  struct cor_runtime *rt COR_ALIGNED_CL;
  cor_loop_t *loop;
  unsigned index;
  int cpu; /* -1: not pinned */
  pthread_t thread;
  bool thread_ok;
  int stop_requested; /* atomic: loop_main leaves run_forever for good */
  int quiet;          /* atomic: no task left during shutdown */
  bool sd_checking;   /* loop thread: the check callback is scheduled */
  cor_handle_t sd_handle; /* loop thread: its timer, while scheduled */
  int exited;         /* atomic: the thread is about to return */
  bool stuck;         /* the join timed out: thread left running */
};

struct cor_runtime {
  cor__obj obj;
  int state; /* atomic: RT_* */
  unsigned n;
  cor__rt_loop *loops; /* aligned inside loops_mem */
  void *loops_mem;
  cor_runtime_opts opts;
  pthread_mutex_t shutdown_lock;
  /* Shutdown: bumped (and futex-woken) by a loop that became quiet. */
  int quiet_seq;
  uint64_t deadline_ns; /* atomic: the shutdown deadline, for loop threads */
  uint64_t timeout_ns;
  int unfinished; /* atomic: tasks reported unfinished by loop threads */
  bool leaked;    /* a stuck loop thread: loops cannot be freed */
  struct cor_runtime *next_all, *prev_all; /* registry, for fork */
};

static _Thread_local cor_runtime_t *tls_rt;
static _Thread_local unsigned tls_index;

static void runtime_free(cor__obj *o);
static void atfork_init(void);

__attribute__((constructor)) static void runtime_module_init(void) {
  cor__obj_register(COR__OBJ_RUNTIME, runtime_free);
}

/* ------------------------------------------------------------ registry/fork */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static cor_runtime_t *all_runtimes;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void reg_add(cor_runtime_t *rt) {
  pthread_mutex_lock(&reg_lock);
  rt->prev_all = NULL;
  rt->next_all = all_runtimes;
  if (all_runtimes)
    all_runtimes->prev_all = rt;
  all_runtimes = rt;
  pthread_mutex_unlock(&reg_lock);
}

static void reg_remove(cor_runtime_t *rt) {
  pthread_mutex_lock(&reg_lock);
  if (rt->prev_all)
    rt->prev_all->next_all = rt->next_all;
  else if (all_runtimes == rt)
    all_runtimes = rt->next_all;
  if (rt->next_all)
    rt->next_all->prev_all = rt->prev_all;
  rt->next_all = rt->prev_all = NULL;
  pthread_mutex_unlock(&reg_lock);
}

/* Held across fork, so the child's copy of the registry is consistent. */
static void atfork_prepare(void) { pthread_mutex_lock(&reg_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&reg_lock); }
static void atfork_child(void) {
  /* Only the forking thread exists here. Every runtime that was not shut
   * down has lost its loop threads: mark its loops closed, so every loop
   * call on them (cor_call_soon_threadsafe included) fails with COR_ECLOSED
   * through the check they already make, and flag the process, so runtime
   * and cfuture calls fail instead of waiting for threads that are gone. */
  bool any = false;
  for (cor_runtime_t *rt = all_runtimes; rt; rt = rt->next_all) {
    if (ck_pr_load_int(&rt->state) == RT_CLOSED)
      continue;
    any = true;
    ck_pr_store_int(&rt->state, RT_CLOSED);
    for (unsigned i = 0; i < rt->n; i++)
      cor__loop_mark_closed(rt->loops[i].loop);
  }
  if (any)
    ck_pr_store_int(&cor__forked_child, 1);
  pthread_mutex_init(&reg_lock, NULL);
}
static void atfork_register(void) {
  COR_ASSERT(pthread_atfork(atfork_prepare, atfork_parent, atfork_child) == 0);
}
static void atfork_init(void) { pthread_once(&atfork_once, atfork_register); }

/* ------------------------------------------------------------ load */

bool cor__rt_accepting(cor__rt_loop *rl) {
  return ck_pr_load_int(&rl->rt->state) == RT_RUNNING;
}

/* Live tasks on rl. `ended` is read first: a task admitted and ended
 * between the two loads then counts as live (an over-estimate, never an
 * under-estimate, which is what the shutdown's quiet check needs). */
static int rt_live(const cor__rt_loop *rl) {
  unsigned e = ck_pr_load_uint((unsigned *)&rl->ended);
  ck_pr_fence_load();
  unsigned a = ck_pr_load_uint((unsigned *)&rl->admitted);
  return (int)(a - e);
}

bool cor__rt_task_admit(cor__rt_loop *rl) {
  /* Count first, then check the state: the increment is a full barrier, and
   * shutdown sets the state before it reads the counters (Dekker), so either
   * we see the runtime stopping or shutdown sees our task. */
  ck_pr_inc_uint(&rl->admitted);
  if (COR_LIKELY(cor__rt_accepting(rl)))
    return true;
  ck_pr_dec_uint(&rl->admitted);
  return false;
}

void cor__rt_task_ended(cor__rt_loop *rl) { ck_pr_inc_uint(&rl->ended); }

static unsigned pick_loop(cor_runtime_t *rt) {
  static _Thread_local unsigned rot;
  unsigned n = rt->n;
  if (n == 1)
    return 0;
  unsigned start = rot++ % n, best = start;
  int best_live = rt_live(&rt->loops[start]);
  for (unsigned k = 1; k < n && best_live > 0; k++) {
    unsigned i = start + k < n ? start + k : start + k - n;
    int l = rt_live(&rt->loops[i]);
    if (l < best_live) {
      best = i;
      best_live = l;
    }
  }
  return best;
}

/* ------------------------------------------------------------ loop threads */

static void *loop_main(void *p) {
  cor__rt_loop *rl = p;
  cor_runtime_t *rt = rl->rt;
  tls_rt = rt;
  tls_index = rl->index;
  char name[16];
  snprintf(name, sizeof name, "corio-loop-%u", rl->index);
  pthread_setname_np(pthread_self(), name);
  /* A user callback may stop the loop (cor_loop_stop): only the shutdown's
   * stop counts; anything else just runs it again. */
  for (;;) {
    int rc = cor_loop_run_forever(rl->loop);
    if (rc != 0) {
      COR_LOG(COR_LOG_CRITICAL, "runtime loop %u cannot run: %s", rl->index,
              cor_strerror(rc));
      break;
    }
    if (ck_pr_load_int(&rl->stop_requested))
      break;
  }
  cor_loop_t *loop = rl->loop;
  uint64_t deadline = ck_pr_load_64(&rt->deadline_ns);
  /* Drain: callbacks already posted (completions, wake-ups) and ready
   * callbacks get a bounded number of iterations before the deadline. */
  for (int k = 0; k < 256 && cor__now_ns() < deadline &&
                  cor__loop_has_work(loop);
       k++) {
    cor_loop_stop(loop);
    cor_loop_run_forever(loop);
  }
  /* The executors of this loop (the default thread pool), within the
   * deadline; jobs still running or queued at the deadline are reported. */
  char prefix[48];
  snprintf(prefix, sizeof prefix, "runtime shutdown: loop %u: ", rl->index);
  /* The executor gets 90% of what is left, so that this thread still has
   * time to report and close before the caller's join gives up on it. */
  uint64_t now = cor__now_ns(), xdeadline = deadline;
  if (deadline != UINT64_MAX)
    xdeadline = now >= deadline ? now : now + (deadline - now) / 10 * 9;
  size_t jobs = cor__executor_shutdown_default_until(loop, xdeadline, prefix);
  /* What did not finish in time, with where it was made; closing the loop
   * then destroys those tasks (and completes their cfutures with
   * COR_ECLOSED). */
  int left = 0;
  for (struct cor_task *t = cor__loop_tasks_first(loop); t;
       t = cor__task_next(t)) {
    left++;
    COR_LOG(COR_LOG_WARNING,
            "%stask '%s' (coro %s() created at %s:%d) did not finish before "
            "the deadline%s%s",
            prefix, cor__task_name(t), cor__task_fn_name(t), cor__task_file(t),
            cor__task_line(t), cor__task_waits_for(t) ? "; it waits for a " : "",
            cor__task_waits_for(t) ? cor__task_waits_for(t) : "");
  }
  /* Handles (timers, ready callbacks) that will never run; the runtime's
   * own shutdown check is not one of the user's. */
  if (rl->sd_checking) {
    cor_handle_cancel(loop, rl->sd_handle);
    rl->sd_checking = false;
  }
  size_t handles = cor__debug_report_unrun(loop, prefix);
  left += (int)(handles + jobs);
  if (left) /* several loop threads may add at once */
    cor__add_sc(&rt->unfinished, left);
  int rc = cor_loop_close(loop);
  if (rc != 0)
    COR_LOG(COR_LOG_ERROR, "runtime loop %u: close: %s", rl->index,
            cor_strerror(rc));
  tls_rt = NULL;
  ck_pr_store_int(&rl->exited, 1);
  return NULL;
}

/* ------------------------------------------------------------ lifecycle */

cor_runtime_t *cor_runtime_new(const cor_runtime_opts *opts) {
  if (cor__in_forked_child()) {
    cor__fork_error("cor_runtime_new");
    errno = -COR_ECLOSED;
    return NULL;
  }
  cor_runtime_opts o = {0};
  if (opts)
    o = *opts;
  if (o.nloops > MAX_LOOPS)
    return cor__bad_arg_ptr("cor_runtime_new", "opts->nloops is too large");
  atfork_init();
  /* The CPUs this process may run on (taskset, cpusets, containers). */
  cpu_set_t mask;
  int cpus[CPU_SETSIZE];
  int ncpus = 0;
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) {
    for (int c = 0; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &mask))
        cpus[ncpus++] = c;
  }
  if (ncpus == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    ncpus = n > 0 ? (int)(n < CPU_SETSIZE ? n : CPU_SETSIZE) : 1;
    for (int c = 0; c < ncpus; c++)
      cpus[c] = c;
  }
  unsigned n = o.nloops ? o.nloops : (unsigned)ncpus;
  if (n > MAX_LOOPS)
    n = MAX_LOOPS;
  bool pin = o.pin >= 0;

  int err = ENOMEM;
  cor_runtime_t *rt = cor__calloc(1, sizeof *rt);
  if (rt == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor__obj_init(&rt->obj, COR__OBJ_RUNTIME);
  rt->opts = o;
  rt->n = n;
  rt->deadline_ns = UINT64_MAX;
  pthread_mutex_init(&rt->shutdown_lock, NULL);
  /* cor__malloc aligns to 16: align the array of cache-line structs. */
  rt->loops_mem = cor__calloc(1, n * sizeof(cor__rt_loop) + COR_CACHELINE);
  if (rt->loops_mem == NULL)
    goto fail;
  rt->loops = (cor__rt_loop *)(((uintptr_t)rt->loops_mem + COR_CACHELINE - 1) &
                               ~(uintptr_t)(COR_CACHELINE - 1));
  cor_loop_opts lo = {0};
  lo.debug = o.debug;
  lo.spin_seconds = o.spin_seconds;
  for (unsigned i = 0; i < n; i++) {
    cor__rt_loop *rl = &rt->loops[i];
    rl->rt = rt;
    rl->index = i;
    rl->cpu = pin ? cpus[i % (unsigned)ncpus] : -1;
    rl->loop = cor_loop_new(&lo);
    if (rl->loop == NULL) {
      err = errno;
      goto fail;
    }
    /* Not running yet, so no thread reads these: plain stores. */
    cor__loop_join_runtime(rl->loop, rl, o.queue_limit);
    if (o.stack_size &&
        cor_loop_set_task_stack_size(rl->loop, o.stack_size) != 0) {
      err = EINVAL;
      goto fail;
    }
  }
  /* Loop threads are born with every catchable asynchronous signal blocked
   * (cor__thread_create's mask): the kernel then delivers process signals
   * to the application's threads, and core/signal.c routes those a loop
   * handles to that loop's signalfd. Synchronous faults stay deliverable
   * (stack overflow reports, sanitizers), and SIGPROF too (profilers). */
  for (unsigned i = 0; i < n; i++) {
    cor__rt_loop *rl = &rt->loops[i];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (rl->cpu >= 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(rl->cpu, &one);
      pthread_attr_setaffinity_np(&attr, sizeof one, &one);
    }
    int rc = cor__thread_create(&rl->thread, &attr, loop_main, rl, true);
    if (rc == EINVAL && rl->cpu >= 0) {
      /* The CPU went away since sched_getaffinity: run unpinned. */
      COR_LOG(COR_LOG_WARNING, "runtime: cannot pin loop %u to CPU %d", i,
              rl->cpu);
      rl->cpu = -1;
      pthread_attr_destroy(&attr);
      pthread_attr_init(&attr);
      rc = cor__thread_create(&rl->thread, &attr, loop_main, rl, true);
    }
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      err = rc;
      goto fail_threads;
    }
    rl->thread_ok = true;
  }
  reg_add(rt);
  return rt;

fail_threads:
  /* Threads already started: stop them the normal way. */
  reg_add(rt);
  cor_runtime_shutdown(rt, 5.0);
  cor_release(rt);
  errno = err;
  return NULL;
fail:
  for (unsigned i = 0; rt->loops && i < n; i++) {
    if (rt->loops[i].loop) {
      cor_loop_close(rt->loops[i].loop);
      cor_release(rt->loops[i].loop);
    }
  }
  cor__free(rt->loops_mem);
  pthread_mutex_destroy(&rt->shutdown_lock);
  cor__free(rt);
  errno = err;
  return NULL;
}

static void runtime_free(cor__obj *o) {
  cor_runtime_t *rt = (cor_runtime_t *)o;
  if (cor__in_forked_child()) {
    /* The threads are gone and their loops may hold locks: leak it all. */
    return;
  }
  if (ck_pr_load_int(&rt->state) != RT_CLOSED) {
    if (tls_rt == rt) {
      COR_LOG(COR_LOG_ERROR,
              "runtime: last reference released on one of its own loop "
              "threads before cor_runtime_shutdown: leaked");
      return;
    }
    cor_runtime_shutdown(rt, DEFAULT_SHUTDOWN_S);
  }
  reg_remove(rt);
  if (rt->leaked)
    return; /* a loop thread still runs: its loop must stay */
  for (unsigned i = 0; i < rt->n; i++) {
    cor_loop_t *loop = rt->loops[i].loop;
    if (loop == NULL)
      continue;
    cor__loop_leave_runtime(loop);
    cor_release(loop);
  }
  cor__free(rt->loops_mem);
  pthread_mutex_destroy(&rt->shutdown_lock);
  cor__free(rt);
}

unsigned cor_runtime_nloops(const cor_runtime_t *rt) { return rt ? rt->n : 0; }

cor_loop_t *cor_runtime_loop(const cor_runtime_t *rt, unsigned i) {
  return rt && i < rt->n ? rt->loops[i].loop : NULL;
}

int cor_runtime_loop_cpu(const cor_runtime_t *rt, unsigned i) {
  return rt && i < rt->n ? rt->loops[i].cpu : -1;
}

cor_runtime_t *cor_runtime_current(unsigned *index) {
  if (tls_rt && index)
    *index = tls_index;
  return tls_rt;
}

/* ------------------------------------------------------------ spawning */

cor_cfuture_t *cor_runtime_spawn_on(cor_runtime_t *rt, unsigned i,
                                    cor_coro_t *coro, const char *name) {
  if (rt == NULL || i >= rt->n || coro == NULL) {
    cor__coro_discard(coro);
    return cor__bad_arg_ptr("cor_runtime_spawn_on",
                            rt == NULL     ? "rt is NULL"
                            : coro == NULL ? "coro is NULL"
                                           : "i is not below the loop count");
  }
  if (cor__in_forked_child()) {
    cor__coro_discard(coro);
    cor__fork_error("cor_runtime_spawn");
    errno = -COR_ECLOSED;
    return NULL;
  }
  cor__rt_loop *rl = &rt->loops[i];
  if (!cor__rt_task_admit(rl)) {
    cor__coro_discard(coro);
    errno = -COR_ECLOSED;
    return NULL;
  }
  return cor__rct_submit(coro, rl->loop, rl, name, "cor_runtime_spawn_on");
}

cor_cfuture_t *cor_runtime_spawn(cor_runtime_t *rt, cor_coro_t *coro,
                                 const char *name) {
  /* coro is tested here too so that the record names this call. */
  if (rt == NULL || coro == NULL) {
    cor__coro_discard(coro);
    return cor__bad_arg_ptr("cor_runtime_spawn",
                            rt == NULL ? "rt is NULL" : "coro is NULL");
  }
  return cor_runtime_spawn_on(rt, pick_loop(rt), coro, name);
}

/* ------------------------------------------------------------ shutdown */

/* On a loop: cancel the tasks not cancelled yet (clean-up may make new
 * ones), and report the loop quiet once none is left and nothing admitted
 * is still on its way. Re-arms itself every SD_CHECK_S until quiet. */
static void sd_check(void *p) {
  cor__rt_loop *rl = p;
  cor_loop_t *loop = rl->loop;
  size_t pending = 0;
  for (struct cor_task *t = cor__loop_tasks_first(loop); t;
       t = cor__task_next(t)) {
    pending++;
    if (cor__task_uncancelled_live(t))
      cor_task_cancel(t, "runtime shutdown");
  }
  if (pending == 0 && rt_live(rl) <= 0) {
    rl->sd_checking = false;
    ck_pr_store_int(&rl->quiet, 1);
    ck_pr_inc_int(&rl->rt->quiet_seq);
    cor__futex_wake_all(&rl->rt->quiet_seq);
    return;
  }
  if (cor_call_later(loop, SD_CHECK_S, sd_check, rl, &rl->sd_handle) != 0)
    rl->sd_checking = false;
}

static void sd_begin(void *p) {
  cor__rt_loop *rl = p;
  if (!rl->sd_checking) {
    rl->sd_checking = true;
    sd_check(rl);
  }
}

static void sd_stop(void *p) {
  cor__rt_loop *rl = p;
  ck_pr_store_int(&rl->stop_requested, 1);
  cor_loop_stop(rl->loop);
}

static bool all_quiet(cor_runtime_t *rt) {
  for (unsigned i = 0; i < rt->n; i++)
    if (rt->loops[i].thread_ok && !ck_pr_load_int(&rt->loops[i].quiet))
      return false;
  return true;
}

/* pthread_timedjoin_np wants CLOCK_REALTIME. */
static int join_until(pthread_t t, uint64_t deadline) {
  if (deadline == UINT64_MAX)
    return pthread_join(t, NULL);
  struct timespec ts;
  cor__realtime_abstime(deadline, &ts);
  return pthread_timedjoin_np(t, NULL, &ts);
}

int cor_runtime_shutdown(cor_runtime_t *rt, double timeout) {
  if (rt == NULL)
    return cor__bad_arg("cor_runtime_shutdown", "rt is NULL");
  if (cor__in_forked_child())
    return cor__fork_error("cor_runtime_shutdown");
  if (tls_rt == rt)
    return COR_ETHREAD;
  uint64_t t0 = cor__now_ns();
  uint64_t deadline;
  if (cor__deadline_after(timeout, &deadline) != 0)
    return cor__bad_arg("cor_runtime_shutdown", "timeout is NaN");
  /* Serialise concurrent shutdowns; the second one finds it closed. */
  if (deadline == UINT64_MAX) {
    pthread_mutex_lock(&rt->shutdown_lock);
  } else {
    struct timespec ts;
    cor__realtime_abstime(deadline, &ts);
    if (pthread_mutex_timedlock(&rt->shutdown_lock, &ts) != 0)
      return -ETIMEDOUT;
  }
  if (ck_pr_load_int(&rt->state) == RT_CLOSED) {
    pthread_mutex_unlock(&rt->shutdown_lock);
    return 0;
  }
  /* 1. No new work. The exchange is a full barrier before the counters are
   *    read (see cor__rt_task_admit). */
  ck_pr_fas_int(&rt->state, RT_STOPPING);
  ck_pr_store_64(&rt->deadline_ns, deadline);

  /* 2. Cancel everything, wait for quiet loops until 90% of the time. */
  for (unsigned i = 0; i < rt->n; i++) {
    cor__rt_loop *rl = &rt->loops[i];
    if (rl->thread_ok && cor_call_soon_threadsafe(rl->loop, sd_begin, rl) != 0)
      ck_pr_store_int(&rl->quiet, 1);
  }
  uint64_t cancel_until =
      deadline == UINT64_MAX ? UINT64_MAX : t0 + (deadline - t0) / 10 * 9;
  for (;;) {
    int seq = ck_pr_load_int(&rt->quiet_seq);
    if (all_quiet(rt) || cor__now_ns() >= cancel_until)
      break;
    cor__futex_wait(&rt->quiet_seq, seq, cancel_until);
  }
  bool timed_out = !all_quiet(rt);

  /* 3. Stop the loops: each drains, shuts its executors down, reports and
   *    closes (loop_main). */
  for (unsigned i = 0; i < rt->n; i++) {
    cor__rt_loop *rl = &rt->loops[i];
    if (rl->thread_ok && cor_call_soon_threadsafe(rl->loop, sd_stop, rl) != 0)
      COR_LOG(COR_LOG_ERROR, "runtime shutdown: cannot stop loop %u", i);
  }

  /* 4. Join, within the deadline. */
  for (unsigned i = 0; i < rt->n; i++) {
    cor__rt_loop *rl = &rt->loops[i];
    if (!rl->thread_ok)
      continue;
    if (join_until(rl->thread, deadline) != 0) {
      rl->stuck = true;
      rt->leaked = true;
      timed_out = true;
      pthread_detach(rl->thread);
      COR_LOG(COR_LOG_WARNING,
              "runtime shutdown: loop %u did not stop within %.3f s (a "
              "callback or task that never returns to the loop?): its thread "
              "is left running and its loop is leaked",
              i, (double)(deadline - t0) / 1e9);
    }
    rl->thread_ok = false;
  }

  /* 5. The loop threads reported their unfinished tasks, handles and jobs
   *    as they closed. */
  int unfinished = ck_pr_load_int(&rt->unfinished);
  if (unfinished > 0) {
    timed_out = true;
    COR_LOG(COR_LOG_WARNING,
            "runtime shutdown: %d task(s), handle(s) or executor job(s) did "
            "not finish within %.3f s (listed above)",
            unfinished, (double)(deadline - t0) / 1e9);
  }
  ck_pr_store_int(&rt->state, RT_CLOSED);
  pthread_mutex_unlock(&rt->shutdown_lock);
  return timed_out ? -ETIMEDOUT : 0;
}

int cor_runtime_run(cor_runtime_t *rt, cor_fn main, void *arg, void **result) {
  if (rt == NULL || main == NULL)
    return cor__bad_arg("cor_runtime_run",
                        rt == NULL ? "rt is NULL" : "main is NULL");
  if (cor__in_forked_child())
    return cor__fork_error("cor_runtime_run");
  if (tls_rt == rt)
    return COR_ETHREAD;
  cor_cfuture_t *cf = cor_runtime_spawn_on(rt, 0, cor_coro(main, arg), "main");
  if (cf == NULL)
    return -errno;
  void *res = NULL;
  int rc = cor_cfuture_result(cf, INFINITY, &res);
  cor_release(cf);
  double t = rt->opts.shutdown_timeout > 0 ? rt->opts.shutdown_timeout
                                           : DEFAULT_SHUTDOWN_S;
  int src = cor_runtime_shutdown(rt, t);
  if (src != 0)
    COR_LOG(COR_LOG_WARNING, "cor_runtime_run: shutdown: %s",
            cor_strerror(src));
  if (result)
    *result = rc == 0 ? res : NULL;
  return rc;
}

/* ------------------------------------------------------------ counters */

int cor_runtime_loop_counters(const cor_runtime_t *rt, unsigned i,
                              cor_loop_counters *out) {
  if (rt == NULL || out == NULL || i >= rt->n)
    return cor__bad_arg("cor_runtime_loop_counters",
                        rt == NULL    ? "rt is NULL"
                        : out == NULL ? "out is NULL"
                                      : "i is not below the loop count");
  cor__rt_loop *rl = &rt->loops[i];
  cor_loop_t *l = rl->loop;
  cor_loop_get_stats(l, &out->loop);
  int live = rt_live(rl);
  out->tasks = live > 0 ? (uint64_t)live : 0;
  out->ready = cor__loop_ready_count(l);
  uint64_t pushed = cor__loop_door_pushed(l);
  uint64_t ran = cor__loop_door_ran(l);
  out->queue_depth = pushed > ran ? pushed - ran : 0;
  /* The loop's own figures (cor_loop_stats): its time inside
   * run_forever, the loop thread's reruns and shutdown drain included. */
  out->idle_ns = out->loop.idle_ns;
  out->busy_ns = out->loop.busy_ns;
  return 0;
}

/* ------------------------------------------------------------ bounded door */

/* Takes a place in the loop's queue if the depth is under the limit
 * (cor__loop_door_reserve, core/loop/loop.h). */
static bool door_reserve(cor_loop_t *loop, uint64_t limit) {
  return cor__loop_door_reserve(loop, limit);
}

static int door_post(cor_loop_t *loop, cor_callback cb, void *arg,
                     void *site) {
  int rc = cor__loop_post_reserved(loop, cb, arg, site);
  if (rc != 0) /* give the place back */
    cor__loop_door_unreserve(loop);
  return rc;
}

int cor_try_call_soon_threadsafe(cor_loop_t *loop, cor_callback cb,
                                 void *arg) {
  if (loop == NULL || cb == NULL)
    return cor__bad_arg("cor_try_call_soon_threadsafe",
                        loop == NULL ? "loop is NULL" : "cb is NULL");
  uint64_t limit = cor__loop_door_limit(loop);
  void *site = __builtin_return_address(0); /* debug mode's reports */
  if (limit == 0)
    return cor__call_soon_threadsafe_at(loop, cb, arg, site);
  if (cor__loop_closed(loop))
    return COR_ECLOSED;
  if (!door_reserve(loop, limit))
    return -EAGAIN;
  return door_post(loop, cb, arg, site);
}

int cor_call_soon_threadsafe_wait(cor_loop_t *loop, cor_callback cb, void *arg,
                                  double timeout) {
  if (loop == NULL || cb == NULL)
    return cor__bad_arg("cor_call_soon_threadsafe_wait",
                        loop == NULL ? "loop is NULL" : "cb is NULL");
  uint64_t limit = cor__loop_door_limit(loop);
  void *site = __builtin_return_address(0); /* debug mode's reports */
  if (limit == 0)
    return cor__call_soon_threadsafe_at(loop, cb, arg, site);
  uint64_t deadline;
  if (cor__deadline_after(timeout, &deadline) != 0)
    return cor__bad_arg("cor_call_soon_threadsafe_wait", "timeout is NaN");
  for (;;) {
    if (cor__loop_closed(loop))
      return COR_ECLOSED;
    if (door_reserve(loop, limit))
      return door_post(loop, cb, arg, site);
    if (cor__tls_loop == loop)
      return COR_ETHREAD;
    if (deadline != UINT64_MAX && cor__now_ns() >= deadline)
      return -ETIMEDOUT;
    /* Sleep until the loop ran a batch. Announce first (a full barrier),
     * then look again: the loop bumps the sequence after storing its run
     * count and fencing (door_space_wake in core/loop.c). A 10 ms cap on
     * each sleep also covers a loop that closes under us. */
    int *word, seq;
    if (cor__loop_door_space_begin(loop, limit, &word, &seq)) {
      uint64_t cap = cor__now_ns() + 10000000u;
      cor__futex_wait(word, seq, cap < deadline ? cap : deadline);
    }
    cor__loop_door_space_end(loop);
  }
}
