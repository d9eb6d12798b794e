/* SPDX-License-Identifier: MIT */
/* corio perf harness: parses `perf/bench WORKLOAD [k=v ...]`, runs the
 * workload that registered under that name, prints its one line. See
 * bench.h for the workload side and perf/README.md for the workloads. */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 32
#define PARAMS_MAX 512
#define EXTRA_MAX 1024
#define DEFAULT_TIMEOUT_S 120.0

struct bench_ctx {
  const bench_workload *w;
  int nargs;
  char *key[MAX_ARGS], *val[MAX_ARGS];
  bool used[MAX_ARGS];
  char params[PARAMS_MAX]; /* "k=v,k=v" in the order the workload read them */
  double timeout_s;
  bool reported;
  uint64_t ops;
  double seconds;
  char extra[EXTRA_MAX];
};

static bench_workload *workloads;

void bench_register(bench_workload *w) {
  for (bench_workload *o = workloads; o != NULL; o = o->next) {
    if (strcmp(o->name, w->name) == 0) {
      fprintf(stderr, "bench: workload '%s' registered twice\n", w->name);
      exit(3);
    }
  }
  w->next = workloads;
  workloads = w;
}

/* ------------------------------------------------------------ failing */

static char fail_name[64] = "?";

void bench_fail(bench_ctx *ctx, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "bench: %s: FAILED: %s\n", ctx ? ctx->w->name : fail_name,
          msg);
  fflush(stderr);
  /* _exit, not exit: other threads may still be running loops; atexit
   * handlers and stdio teardown racing with them help nobody. */
  _exit(1);
}

void bench_skip(bench_ctx *ctx, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "bench: %s: SKIPPED: %s\n", ctx ? ctx->w->name : fail_name,
          msg);
  fflush(stderr);
  _exit(77);
}

static void on_alarm(int sig) {
  (void)sig;
  /* Async-signal-safe: only write and _exit. */
  static const char a[] = "bench: ";
  static const char b[] = ": FAILED: timed out (watchdog; raise timeout=)\n";
  ssize_t r = write(2, a, sizeof a - 1);
  r = write(2, fail_name, strlen(fail_name));
  r = write(2, b, sizeof b - 1);
  (void)r;
  _exit(1);
}

static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static _Noreturn void harness_bug(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void harness_bug(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: harness bug: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(3);
}

/* ------------------------------------------------------------ parameters */

/* Finds key in a "k=v,k=v" spec; copies its default into out. */
static bool spec_lookup(const char *spec, const char *key, char *out,
                        size_t outlen) {
  size_t klen = strlen(key);
  const char *p = spec;
  while (p && *p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    size_t namelen = eq ? (size_t)(eq - p) : len;
    if (namelen == klen && strncmp(p, key, klen) == 0) {
      if (out) {
        size_t vlen = eq ? len - namelen - 1 : 0;
        if (vlen >= outlen)
          vlen = outlen - 1;
        memcpy(out, eq ? eq + 1 : "", vlen);
        out[vlen] = '\0';
      }
      return true;
    }
    p = end ? end + 1 : NULL;
  }
  return false;
}

static bool parse_long(const char *s, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (end == s || errno != 0)
    return false;
  long mul = 1;
  if (*end == 'k' || *end == 'K')
    mul = 1000L, end++;
  else if (*end == 'M')
    mul = 1000000L, end++;
  else if (*end == 'G')
    mul = 1000000000L, end++;
  if (*end != '\0')
    return false;
  if (v > 0 && v > __LONG_MAX__ / mul)
    return false;
  if (v < 0 && v < -__LONG_MAX__ / mul)
    return false;
  *out = v * mul;
  return true;
}

static bool parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || errno != 0 || !isfinite(v))
    return false;
  *out = v;
  return true;
}

static const char *given(bench_ctx *ctx, const char *key) {
  for (int i = 0; i < ctx->nargs; i++) {
    if (strcmp(ctx->key[i], key) == 0) {
      ctx->used[i] = true;
      return ctx->val[i];
    }
  }
  return NULL;
}

static void record(bench_ctx *ctx, const char *key, const char *val) {
  size_t len = strlen(ctx->params);
  snprintf(ctx->params + len, sizeof ctx->params - len, "%s%s=%s",
           len ? "," : "", key, val);
}

static void check_declared(bench_ctx *ctx, const char *key, char *dflt_out,
                           size_t n) {
  if (!spec_lookup(ctx->w->spec, key, dflt_out, n))
    harness_bug("workload '%s' reads parameter '%s' missing from its spec "
                "\"%s\"",
                ctx->w->name, key, ctx->w->spec);
}

bool bench_param_given(bench_ctx *ctx, const char *key) {
  check_declared(ctx, key, NULL, 0);
  for (int i = 0; i < ctx->nargs; i++)
    if (strcmp(ctx->key[i], key) == 0)
      return true;
  return false;
}

long bench_param_long(bench_ctx *ctx, const char *key, long dflt) {
  char sd[64];
  long v;
  check_declared(ctx, key, sd, sizeof sd);
  if (parse_long(sd, &v) && v != dflt)
    harness_bug("workload '%s': default of %s is %ld in code, %s in spec",
                ctx->w->name, key, dflt, sd);
  const char *s = given(ctx, key);
  if (s == NULL)
    v = dflt;
  else if (!parse_long(s, &v))
    usage_error("%s: parameter %s=%s: not an integer", ctx->w->name, key, s);
  char buf[32];
  snprintf(buf, sizeof buf, "%ld", v);
  record(ctx, key, buf);
  return v;
}

double bench_param_double(bench_ctx *ctx, const char *key, double dflt) {
  char sd[64];
  double v;
  check_declared(ctx, key, sd, sizeof sd);
  if (parse_double(sd, &v) && v != dflt)
    harness_bug("workload '%s': default of %s is %g in code, %s in spec",
                ctx->w->name, key, dflt, sd);
  const char *s = given(ctx, key);
  if (s == NULL)
    v = dflt;
  else if (!parse_double(s, &v))
    usage_error("%s: parameter %s=%s: not a number", ctx->w->name, key, s);
  char buf[32];
  snprintf(buf, sizeof buf, "%g", v);
  record(ctx, key, buf);
  return v;
}

double bench_timeout(bench_ctx *ctx) { return ctx->timeout_s; }

/* ------------------------------------------------------------ clocks */

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_now(void) { return (double)bench_now_ns() * 1e-9; }

/* The same sum as getrusage(RUSAGE_SELF) user+system, at ns resolution
 * (getrusage rounds to us, and splits it by tick sampling). */
uint64_t bench_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long bench_maxrss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* ------------------------------------------------------------ results */

void bench_report(bench_ctx *ctx, uint64_t ops, double seconds,
                  const char *extra_fmt, ...) {
  if (ctx->reported)
    harness_bug("workload '%s' reported twice", ctx->w->name);
  if (ops == 0 || !(seconds > 0))
    bench_fail(ctx, "nothing measured (OPS=%llu SECONDS=%g)",
               (unsigned long long)ops, seconds);
  ctx->reported = true;
  ctx->ops = ops;
  ctx->seconds = seconds;
  ctx->extra[0] = '\0';
  if (extra_fmt) {
    va_list ap;
    va_start(ap, extra_fmt);
    vsnprintf(ctx->extra, sizeof ctx->extra, extra_fmt, ap);
    va_end(ap);
  }
}

/* ------------------------------------------------------------ threads */

void bench_thread_start(bench_ctx *ctx, pthread_t *t, void *(*fn)(void *),
                        void *arg) {
  int rc = pthread_create(t, NULL, fn, arg);
  if (rc != 0)
    bench_fail(ctx, "pthread_create: %s", strerror(rc));
}

bool bench_thread_join_timeout(pthread_t t, double timeout_s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double whole = floor(timeout_s);
  ts.tv_sec += (time_t)whole;
  ts.tv_nsec += (long)((timeout_s - whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

static void *loop_thread_main(void *arg) {
  bench_loop_thread *lt = arg;
  lt->run_rc = cor_loop_run_forever(lt->loop);
  lt->stats_rc = cor_loop_get_stats(lt->loop, &lt->stats);
  lt->close_rc = cor_loop_close(lt->loop);
  return NULL;
}

static void mark_started(void *arg) {
  bench_loop_thread *lt = arg;
  atomic_store_explicit(&lt->started, 1, memory_order_release);
}

void bench_loop_thread_start(bench_ctx *ctx, bench_loop_thread *lt,
                             const cor_loop_opts *opts) {
  memset(lt, 0, sizeof *lt);
  atomic_init(&lt->started, 0);
  lt->loop = cor_loop_new(opts);
  if (lt->loop == NULL)
    bench_fail(ctx, "cor_loop_new: %s", strerror(errno));
  BENCH_CHECK_RC(ctx, cor_call_soon_threadsafe(lt->loop, mark_started, lt),
                 "cor_call_soon_threadsafe(start marker)");
  bench_thread_start(ctx, &lt->thread, loop_thread_main, lt);
  uint64_t deadline = bench_now_ns() + 10000000000u;
  while (!atomic_load_explicit(&lt->started, memory_order_acquire)) {
    if (bench_now_ns() > deadline)
      bench_fail(ctx, "loop thread did not run its first callback in 10 s");
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
}

bool bench_loop_thread_join(bench_ctx *ctx, bench_loop_thread *lt,
                            double timeout_s) {
  if (!bench_thread_join_timeout(lt->thread, timeout_s))
    return false;
  BENCH_CHECK_RC(ctx, lt->run_rc, "cor_loop_run_forever");
  BENCH_CHECK_RC(ctx, lt->stats_rc, "cor_loop_get_stats");
  BENCH_CHECK_RC(ctx, lt->close_rc, "cor_loop_close");
  cor_release(lt->loop);
  lt->loop = NULL;
  return true;
}

static void stop_cb(void *arg) {
  int rc = cor_loop_stop(arg);
  if (rc != 0)
    bench_fail(NULL, "cor_loop_stop: %s", cor_strerror(rc));
}

void bench_loop_thread_stop(bench_ctx *ctx, bench_loop_thread *lt) {
  BENCH_CHECK_RC(ctx, cor_call_soon_threadsafe(lt->loop, stop_cb, lt->loop),
                 "cor_call_soon_threadsafe(stop)");
  if (!bench_loop_thread_join(ctx, lt, ctx->timeout_s))
    bench_fail(ctx, "loop thread did not stop within %g s", ctx->timeout_s);
}

/* ------------------------------------------------------------ main */

static int by_name(const void *a, const void *b) {
  const bench_workload *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

static void usage(FILE *f) {
  fputs("usage: perf/bench WORKLOAD [k=v ...]   run one workload\n"
        "       perf/bench list                 workloads and their "
        "default parameters\n"
        "       perf/bench limits               this machine's floors, "
        "CPU model, kernel\n"
        "Every workload also takes timeout=SECONDS (default 120): a run "
        "still going\nthen is treated as lost work. See perf/README.md.\n",
        f);
}

/* `perf/bench limits`: the machine (CPU model, kernel, CPUs) and its floors,
 * each a run of this program (so each has its own process and watchdog),
 * with counts small enough that the whole takes a few seconds. */
static const char *const limit_runs[][2] = {
    {"limit_syscall", NULL},
    {"limit_epoll_wait", NULL},
    {"limit_eventfd_pingpong", "R=20000"},
    {"limit_futex_pingpong", "R=20000"},
    {"limit_cacheline", "R=200000"},
    {"limit_queue", NULL},
    {"limit_context_switch", NULL},
};

static void cpu_model(char *out, size_t n) {
  snprintf(out, n, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    char *c = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && c != NULL) {
      c++;
      while (*c == ' ' || *c == '\t')
        c++;
      c[strcspn(c, "\n")] = 0;
      snprintf(out, n, "%s", c);
      break;
    }
  }
  fclose(f);
}

static int run_limits(void) {
  char model[256];
  cpu_model(model, sizeof model);
  struct utsname u;
  if (uname(&u) != 0)
    snprintf(u.release, sizeof u.release, "unknown");
  printf("MACHINE CPU_MODEL=\"%s\" KERNEL=%s CPUS=%ld\n", model, u.release,
         sysconf(_SC_NPROCESSORS_ONLN));
  fflush(stdout);
  int fail = 0;
  for (size_t i = 0; i < sizeof limit_runs / sizeof limit_runs[0]; i++) {
    pid_t pid = fork();
    if (pid < 0)
      return 3;
    if (pid == 0) {
      char *args[] = {"bench", (char *)limit_runs[i][0],
                      (char *)limit_runs[i][1], NULL};
      execv("/proc/self/exe", args);
      _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 77)) {
      fprintf(stderr, "bench: limits: %s failed (status 0x%x)\n",
              limit_runs[i][0], st);
      fail = 1;
    }
  }
  return fail;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "limits") == 0)
    return run_limits();
  if (strcmp(argv[1], "list") == 0) {
    size_t n = 0;
    for (bench_workload *w = workloads; w; w = w->next)
      n++;
    bench_workload **all = calloc(n ? n : 1, sizeof *all);
    n = 0;
    for (bench_workload *w = workloads; w; w = w->next)
      all[n++] = w;
    qsort(all, n, sizeof *all, by_name);
    for (size_t i = 0; i < n; i++)
      printf("%-28s %s\n", all[i]->name, all[i]->spec);
    free(all);
    return 0;
  }

  const bench_workload *w = NULL;
  for (bench_workload *o = workloads; o; o = o->next)
    if (strcmp(o->name, argv[1]) == 0)
      w = o;
  if (w == NULL)
    usage_error("unknown workload '%s' (perf/bench list shows them)", argv[1]);

  static bench_ctx ctx;
  ctx.w = w;
  ctx.timeout_s = DEFAULT_TIMEOUT_S;
  snprintf(fail_name, sizeof fail_name, "%s", w->name);
  for (int i = 2; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (eq == NULL || eq == argv[i])
      usage_error("%s: '%s' is not k=v", w->name, argv[i]);
    *eq = '\0';
    char *k = argv[i], *v = eq + 1;
    if (strcmp(k, "timeout") == 0) {
      if (!parse_double(v, &ctx.timeout_s) || ctx.timeout_s <= 0)
        usage_error("%s: timeout=%s: not a positive number", w->name, v);
      continue;
    }
    if (!spec_lookup(w->spec, k, NULL, 0))
      usage_error("%s: unknown parameter '%s' (accepted: %s)", w->name, k,
                  w->spec);
    for (int j = 0; j < ctx.nargs; j++)
      if (strcmp(ctx.key[j], k) == 0)
        usage_error("%s: parameter '%s' given twice", w->name, k);
    if (ctx.nargs == MAX_ARGS)
      usage_error("too many parameters");
    ctx.key[ctx.nargs] = k;
    ctx.val[ctx.nargs] = v;
    ctx.nargs++;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  alarm((unsigned)ceil(ctx.timeout_s));

  int rc = w->fn(&ctx);
  alarm(0);
  if (rc != 0)
    bench_fail(&ctx, "workload returned %d", rc);
  if (!ctx.reported)
    harness_bug("workload '%s' returned 0 without a figure", w->name);
  for (int i = 0; i < ctx.nargs; i++)
    if (!ctx.used[i])
      fprintf(stderr, "bench: %s: warning: parameter %s was not used\n",
              w->name, ctx.key[i]);

  printf("WORKLOAD=%s PARAMS=%s OPS=%llu SECONDS=%.6f NS_PER_OP=%.2f%s%s\n",
         w->name, ctx.params[0] ? ctx.params : "-",
         (unsigned long long)ctx.ops, ctx.seconds,
         ctx.seconds * 1e9 / (double)ctx.ops,
         ctx.extra[0] && ctx.extra[0] != ' ' ? " " : "", ctx.extra);
  fflush(stdout);
  /* Same reason as bench_fail: loops left by a workload must not race the
   * process teardown. */
  _exit(0);
}
