/* SPDX-License-Identifier: MIT */
/* The "corio" logger: levels, the environment, sinks, async mode. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

#include <limits.h>
#include "testutil.h"

#include <corio.h>


/* ------------------------------------------------------------ helpers */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* A sink that records what it receives. The test thread reads it while the
 * logging thread writes it, hence the mutex. */
#define MAXREC 10000
typedef struct rec {
  void *arg;
  int level;
  char logger[16];
  size_t len;    /* of the whole message */
  char msg[120]; /* its start */
} rec;
static struct {
  pthread_mutex_t mu;
  int n;
  long sleep_us; /* a slow sink */
  rec recs[MAXREC];
} cap = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void cap_sink(void *arg, int level, const char *logger,
                     const char *msg) {
  pthread_mutex_lock(&cap.mu);
  if (cap.n < MAXREC) {
    rec *r = &cap.recs[cap.n];
    r->arg = arg;
    r->level = level;
    snprintf(r->logger, sizeof r->logger, "%s", logger);
    r->len = strlen(msg);
    snprintf(r->msg, sizeof r->msg, "%.119s", msg);
  }
  cap.n++;
  long us = cap.sleep_us;
  pthread_mutex_unlock(&cap.mu);
  if (us)
    sleep_us(us);
  errno = EIO; /* cor_log must hide what its sink does to errno */
}

static int cap_count(void) {
  pthread_mutex_lock(&cap.mu);
  int n = cap.n;
  pthread_mutex_unlock(&cap.mu);
  return n;
}

static int setup(void **state) {
  (void)state;
  pthread_mutex_lock(&cap.mu);
  cap.n = 0;
  cap.sleep_us = 0;
  pthread_mutex_unlock(&cap.mu);
  cor_log_set_level(COR_LOG_INFO);
  cor_log_set_sink(cap_sink, &cap);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  assert_int_equal(cor_log_set_async(false), 0);
  cor_log_set_sink(NULL, NULL);
  cor_log_set_level(COR_LOG_INFO);
  return 0;
}

/* Reads fd until EOF into buf (NUL-terminated), at most 5 s. */
static size_t read_all(int fd, char *buf, size_t cap_bytes) {
  size_t len = 0;
  uint64_t deadline = now_ns() + 5000000000ull;
  while (len + 1 < cap_bytes && now_ns() < deadline) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0)
      continue;
    ssize_t r = read(fd, buf + len, cap_bytes - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  buf[len] = '\0';
  return len;
}

/* Waits for pid at most 5 s (then kills it); returns its wait status. */
static int wait_child(pid_t pid) {
  int status = 0;
  uint64_t deadline = now_ns() + 5000000000ull;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return status;
    assert_int_equal(r, 0);
    if (now_ns() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fail_msg("child %d did not finish in 5 s", (int)pid);
    }
    sleep_us(1000);
  }
}

/* Runs this binary again as `test_log --child MODE` with CORIO_LOG_LEVEL set
 * to env (unset when NULL), its stdout and stderr merged into out. A fresh
 * process is the only way to see the environment read at first use: this
 * one read it long ago, and a plain fork would inherit that. */
static int run_child(const char *mode, const char *env, char *out,
                     size_t out_size) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    if (env)
      setenv("CORIO_LOG_LEVEL", env, 1);
    else
      unsetenv("CORIO_LOG_LEVEL");
    execl("/proc/self/exe", "test_log", "--child", mode, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  read_all(fds[0], out, out_size);
  close(fds[0]);
  int status = wait_child(pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void slow_stdout_sink(void *arg, int level, const char *logger,
                             const char *msg) {
  (void)arg;
  char line[160];
  int n =
      snprintf(line, sizeof line, "%s|%s\n", cor_log_level_name(level), msg);
  sleep_us(50); /* slow enough that most records are still queued at exit */
  ssize_t w = write(1, line, (size_t)n);
  (void)w;
}

/* What the re-executed binary does; its output is read by run_child. */
static int child_main(const char *mode) {
  if (strcmp(mode, "level") == 0) {
    printf("level=%d\n", cor_log_get_level());
  } else if (strcmp(mode, "set-then-env") == 0) {
    cor_log_set_level(COR_LOG_ERROR); /* before any first use */
    printf("level=%d\n", cor_log_get_level());
  } else if (strcmp(mode, "init-from-env") == 0) {
    cor__log_init_from_env();
    printf("level=%d\n", cor_log_get_level());
  } else if (strcmp(mode, "atexit") == 0) {
    /* Returns from main with records queued: the atexit handler must
     * deliver them all, in order, before the process ends. */
    setvbuf(stdout, NULL, _IONBF, 0);
    cor_log_set_sink(slow_stdout_sink, NULL);
    if (cor_log_set_async(true) != 0)
      return 3;
    for (int i = 0; i < 1000; i++)
      cor_log(COR_LOG_WARNING, "rec %d", i);
  } else {
    return 2;
  }
  fflush(stdout);
  return 0;
}

/* ------------------------------------------------------------ levels */

static void test_env_level(void **state) {
  (void)state;
  static const struct {
    const char *env;
    int level;
    bool warns;
  } cases[] = {
      {NULL, COR_LOG_INFO, false},
      {"", COR_LOG_INFO, false},
      {"debug", COR_LOG_DEBUG, false},
      {"WARNING", COR_LOG_WARNING, false},
      {"Error", COR_LOG_ERROR, false},
      {"critical", COR_LOG_CRITICAL, false},
      {"warn", COR_LOG_WARNING, false},
      {"FATAL", COR_LOG_CRITICAL, false},
      {"notset", 0, false},
      {"15", 15, false},
      {" 25 ", 25, false},
      {"-5", -5, false},
      {"bogus", COR_LOG_INFO, true},
      {"10x", COR_LOG_INFO, true},
      {"99999999999", COR_LOG_INFO, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *env = cases[i].env ? cases[i].env : "(unset)";
    char out[1024], want[64];
    assert_int_equal(run_child("level", cases[i].env, out, sizeof out), 0);
    snprintf(want, sizeof want, "level=%d\n", cases[i].level);
    if (strstr(out, want) == NULL)
      fail_msg("CORIO_LOG_LEVEL=%s: got \"%s\", want \"%s\"", env, out, want);
    bool warned =
        strstr(out, "WARNING:corio:ignoring CORIO_LOG_LEVEL=") != NULL;
    if (warned != cases[i].warns)
      fail_msg("CORIO_LOG_LEVEL=%s: %s warning: \"%s\"", env,
               cases[i].warns ? "missing" : "unexpected", out);
  }
}

static void test_env_overridden_and_forced(void **state) {
  (void)state;
  char out[1024];
  /* An explicit level set before first use wins over the environment. */
  assert_int_equal(run_child("set-then-env", "debug", out, sizeof out), 0);
  assert_string_equal(out, "level=40\n");
  assert_int_equal(run_child("init-from-env", "error", out, sizeof out), 0);
  assert_string_equal(out, "level=40\n");
}

static void test_level_filter(void **state) {
  (void)state;
  cor_log_set_level(COR_LOG_WARNING);
  assert_int_equal(cor_log_get_level(), COR_LOG_WARNING);
  assert_false(cor_log_enabled(COR_LOG_DEBUG));
  assert_false(cor_log_enabled(COR_LOG_INFO));
  assert_false(cor_log_enabled(COR_LOG_WARNING - 1));
  assert_true(cor_log_enabled(COR_LOG_WARNING));
  assert_true(cor_log_enabled(COR_LOG_CRITICAL));

  cor_log(COR_LOG_DEBUG, "debug %d", 1);
  cor_log(COR_LOG_INFO, "info %d", 2);
  cor_log(COR_LOG_WARNING, "warning %d", 3);
  cor_log(COR_LOG_ERROR, "error %d", 4);
  COR_LOG(COR_LOG_INFO, "macro info");
  COR_LOG(COR_LOG_CRITICAL, "macro critical");
  assert_int_equal(cap_count(), 3);
  assert_string_equal(cap.recs[0].msg, "warning 3");
  assert_string_equal(cap.recs[1].msg, "error 4");
  assert_string_equal(cap.recs[2].msg, "macro critical");

  cor_log_set_level(COR_LOG_DEBUG);
  assert_true(cor_log_enabled(COR_LOG_DEBUG));
  cor_log(COR_LOG_DEBUG, "now %s", "seen");
  assert_int_equal(cap_count(), 4);
  assert_string_equal(cap.recs[3].msg, "now seen");

  /* Any integer is a level, as in Python. */
  cor_log_set_level(35);
  assert_false(cor_log_enabled(COR_LOG_WARNING));
  assert_true(cor_log_enabled(35));
  cor_log(COR_LOG_WARNING, "hidden");
  cor_log(35, "custom");
  assert_int_equal(cap_count(), 5);
  assert_int_equal(cap.recs[4].level, 35);

  cor_log_set_level(INT_MIN);
  assert_true(cor_log_enabled(INT_MIN + 1));
  assert_true(cor_log_enabled(COR_LOG_DEBUG));
}

static void test_level_names(void **state) {
  (void)state;
  assert_string_equal(cor_log_level_name(COR_LOG_DEBUG), "DEBUG");
  assert_string_equal(cor_log_level_name(COR_LOG_INFO), "INFO");
  assert_string_equal(cor_log_level_name(COR_LOG_WARNING), "WARNING");
  assert_string_equal(cor_log_level_name(COR_LOG_ERROR), "ERROR");
  assert_string_equal(cor_log_level_name(COR_LOG_CRITICAL), "CRITICAL");
  assert_string_equal(cor_log_level_name(0), "NOTSET");
  assert_string_equal(cor_log_level_name(25), "Level 25");
  assert_string_equal(cor_log_level_name(-7), "Level -7");
  assert_string_equal(cor_log_level_name(INT_MIN), "Level -2147483648");
}

/* ------------------------------------------------------------ sinks */

static void test_custom_sink(void **state) {
  (void)state;
  errno = EBADF;
  cor_log(COR_LOG_ERROR, "x=%d y=%s", 42, "abc");
  assert_int_equal(errno, EBADF); /* the sink set EIO */
  assert_int_equal(cap_count(), 1);
  assert_ptr_equal(cap.recs[0].arg, &cap);
  assert_int_equal(cap.recs[0].level, COR_LOG_ERROR);
  assert_string_equal(cap.recs[0].logger, "corio");
  assert_string_equal(cap.recs[0].msg, "x=42 y=abc");
}

static char long_msg[4096];
static size_t long_len;
static void long_sink(void *arg, int level, const char *logger,
                      const char *msg) {
  (void)arg, (void)level, (void)logger;
  long_len = strlen(msg);
  snprintf(long_msg, sizeof long_msg, "%s", msg);
}

static void test_truncation(void **state) {
  (void)state;
  static char big[20000];
  memset(big, 'x', sizeof big - 1);
  cor_log_set_sink(long_sink, NULL);
  cor_log(COR_LOG_WARNING, "%s%s", big, "tail");
  assert_int_equal(long_len, 4095);
  assert_memory_equal(long_msg + 4092, "...", 4);
  assert_int_equal(long_msg[4091], 'x');

  /* "a" then two-byte characters: byte 4092, where "..." would go, is the
   * second byte of one; the cut moves back to the start of it. */
  big[0] = 'a';
  for (size_t i = 1; i + 2 < sizeof big; i += 2)
    memcpy(big + i, "\xc3\xa9", 2);
  big[sizeof big - 2] = '\0';
  cor_log(COR_LOG_WARNING, "%s", big);
  assert_int_equal(long_len, 4094);
  assert_memory_equal(long_msg + 4089, "\xc3\xa9...", 6);
}

/* Runs fn with fd 2 redirected into a pipe and returns what it wrote. */
static void capture_stderr(void (*fn)(void), char *out, size_t size) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  dup2(fds[1], 2);
  close(fds[1]);
  fn();
  dup2(saved, 2); /* restores fd 2 and closes the pipe's last writer */
  close(saved);
  read_all(fds[0], out, size);
  close(fds[0]);
}

static void log_default_lines(void) {
  cor_log(COR_LOG_WARNING, "hello");
  cor_log(COR_LOG_CRITICAL, "a %s b", "c");
  cor_log(35, "custom");
  cor_log(COR_LOG_DEBUG, "filtered");
}

static void test_default_sink(void **state) {
  (void)state;
  cor_log(COR_LOG_WARNING, "to the custom sink");
  cor_log_set_sink(NULL, NULL);
  char out[512];
  capture_stderr(log_default_lines, out, sizeof out);
  assert_string_equal(out, "WARNING:corio:hello\n"
                           "CRITICAL:corio:a c b\n"
                           "Level 35:corio:custom\n");
  assert_int_equal(cap_count(), 1);
}

static int reentry_rc;
static void reentrant_sink(void *arg, int level, const char *logger,
                           const char *msg) {
  (void)arg, (void)logger;
  if (strcmp(msg, "outer") != 0)
    return;
  /* Each would deadlock if the logger did not know it runs a sink. */
  cor_log(COR_LOG_ERROR, "inner %d", level);
  cor_log_flush();
  reentry_rc = cor_log_set_async(false);
  cor_log_set_sink(cap_sink, &cap);
}

static void test_reentrant_sink(void **state) {
  (void)state;
  for (int async = 0; async < 2; async++) {
    cor_log_set_sink(reentrant_sink, NULL);
    assert_int_equal(cor_log_set_async(async), 0);
    reentry_rc = 0;
    /* The inner record goes to stderr (the sink cannot be re-entered). In
     * async mode the logging thread writes it: flushing before fd 2 is
     * restored puts it in the pipe. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    dup2(fds[1], 2);
    close(fds[1]);
    cor_log(COR_LOG_WARNING, "outer");
    cor_log_flush();
    dup2(saved, 2);
    close(saved);
    char out[512];
    read_all(fds[0], out, sizeof out);
    close(fds[0]);
    assert_string_equal(out, "ERROR:corio:inner 30\n");
    assert_int_equal(reentry_rc, -EDEADLK);
    /* The sink swapped itself for cap_sink from inside a call. */
    cor_log(COR_LOG_WARNING, "after %d", async);
    cor_log_flush();
    assert_int_equal(cap_count(), async + 1);
    assert_int_equal(cor_log_set_async(false), 0);
  }
}

/* ------------------------------------------------------------ async mode */

static void test_async_slow_sink(void **state) {
  (void)state;
  cap.sleep_us = 1000; /* set before async mode starts: no race */
  assert_int_equal(cor_log_set_async(true), 0);
  assert_int_equal(cor_log_set_async(true), 0); /* already on: no-op */

  /* 200 records at 1 ms each in the sink: the caller must not wait for
   * them. A bound well below 200 ms is the point of async mode, with a
   * wide margin for sanitizers and a loaded machine. */
  uint64_t t0 = now_ns();
  for (int i = 0; i < 200; i++)
    cor_log(COR_LOG_INFO, "rec %d", i);
  uint64_t took = now_ns() - t0;
  assert_true(took < 100000000ull);
  assert_true(cap_count() < 200);

  cor_log_flush();
  assert_int_equal(cap_count(), 200);
  for (int i = 0; i < 200; i++) {
    char want[32];
    snprintf(want, sizeof want, "rec %d", i);
    assert_string_equal(cap.recs[i].msg, want);
    assert_int_equal(cap.recs[i].level, COR_LOG_INFO);
    assert_string_equal(cap.recs[i].logger, "corio");
  }

  /* Long records take the heap path; turning async off flushes. */
  static char big[1000];
  memset(big, 'y', sizeof big - 1);
  for (int i = 0; i < 20; i++)
    cor_log(COR_LOG_WARNING, "%d %s", i, i % 2 ? big : "short");
  assert_int_equal(cor_log_set_async(false), 0);
  assert_int_equal(cap_count(), 220);
  for (int i = 0; i < 20; i++) {
    char want[1100];
    int n = snprintf(want, sizeof want, "%d %s", i, i % 2 ? big : "short");
    assert_int_equal(cap.recs[200 + i].len, n);
    assert_memory_equal(cap.recs[200 + i].msg, want, n < 119 ? n : 119);
  }
  assert_int_equal(cor_log_set_async(false), 0); /* already off */

  /* Back in sync mode the sink runs on the caller. */
  cor_log(COR_LOG_INFO, "sync");
  assert_int_equal(cap_count(), 221);
}

static struct {
  char name[32];
  bool all_blocked;
  bool other_thread;
} seen;
static pthread_t main_thread;

static void props_sink(void *arg, int level, const char *logger,
                       const char *msg) {
  (void)arg, (void)level, (void)logger, (void)msg;
  pthread_getname_np(pthread_self(), seen.name, sizeof seen.name);
  sigset_t set;
  pthread_sigmask(SIG_BLOCK, NULL, &set);
  /* Every asynchronous signal blocked; the synchronous ones stay open so
   * a fault in a sink reaches its handler (cor__thread_create's mask). */
  seen.all_blocked = true;
  for (int sig = 1; sig < 32; sig++) {
    bool sync = sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE ||
                sig == SIGILL || sig == SIGTRAP || sig == SIGSYS ||
                sig == SIGABRT;
    if (sig != SIGKILL && sig != SIGSTOP && !sync && !sigismember(&set, sig))
      seen.all_blocked = false;
    if (sync && sigismember(&set, sig))
      seen.all_blocked = false;
  }
  seen.other_thread = !pthread_equal(pthread_self(), main_thread);
}

static void test_async_thread(void **state) {
  (void)state;
  main_thread = pthread_self();
  cor_log_set_sink(props_sink, NULL);
  assert_int_equal(cor_log_set_async(true), 0);
  cor_log(COR_LOG_WARNING, "where am I");
  cor_log_flush(); /* orders the sink's writes before the reads below */
  assert_true(seen.other_thread);
  assert_string_equal(seen.name, "corio-log");
  assert_true(seen.all_blocked);
  /* The caller's own mask is untouched by starting the thread. */
  sigset_t set;
  pthread_sigmask(SIG_BLOCK, NULL, &set);
  assert_false(sigismember(&set, SIGUSR1));
}

/* A sink that blocks until the test opens the gate (at most 10 s). */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
  bool entered;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};

static void gate_sink(void *arg, int level, const char *logger,
                      const char *msg) {
  pthread_mutex_lock(&gate.mu);
  gate.entered = true;
  pthread_cond_broadcast(&gate.cv);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  while (!gate.open)
    if (pthread_cond_timedwait(&gate.cv, &gate.mu, &deadline) == ETIMEDOUT)
      break;
  pthread_mutex_unlock(&gate.mu);
  cap_sink(arg, level, logger, msg);
}

static void test_async_overflow(void **state) {
  (void)state;
  cor_log_set_sink(gate_sink, &cap);
  assert_int_equal(cor_log_set_async(true), 0);
  /* The ring holds 8192 records; the sink holds the first, so no slot
   * frees up and everything past the capacity is dropped. */
  enum { TOTAL = 8192 + 500 };
  for (int i = 0; i < TOTAL; i++)
    cor_log(COR_LOG_INFO, "r%d", i);

  pthread_mutex_lock(&gate.mu);
  gate.open = true;
  pthread_cond_broadcast(&gate.cv);
  pthread_mutex_unlock(&gate.mu);
  cor_log_flush();

  int n = cap_count();
  assert_true(n >= 2 && n <= MAXREC);
  int kept = n - 1;
  for (int i = 0; i < kept; i++) {
    char want[32];
    snprintf(want, sizeof want, "r%d", i);
    assert_string_equal(cap.recs[i].msg, want);
  }
  /* One warning, after the kept records, counting exactly the rest. */
  unsigned long long dropped = 0;
  assert_int_equal(cap.recs[kept].level, COR_LOG_WARNING);
  assert_int_equal(sscanf(cap.recs[kept].msg,
                          "corio: %llu log records dropped (async queue full)",
                          &dropped),
                   1);
  assert_int_equal(kept + (long long)dropped, TOTAL);
  assert_true(dropped >= 500);

  /* The logger keeps working, and counts afresh. */
  cor_log(COR_LOG_INFO, "after");
  assert_int_equal(cor_log_set_async(false), 0);
  assert_int_equal(cap_count(), n + 1);
  assert_string_equal(cap.recs[n].msg, "after");
}

/* Many producers, one sequence per producer: loss, duplicates and order. */
#define NPROD 8
static struct {
  pthread_mutex_t mu;
  long next[NPROD];
  long bad;
  long others;
} val = {.mu = PTHREAD_MUTEX_INITIALIZER};
static long per_thread;
static pthread_barrier_t start_line;

static void seq_sink(void *arg, int level, const char *logger,
                     const char *msg) {
  (void)arg, (void)level, (void)logger;
  int t;
  long s;
  pthread_mutex_lock(&val.mu);
  if (sscanf(msg, "t%d s%ld", &t, &s) != 2 || t < 0 || t >= NPROD)
    val.others++;
  else if (s != val.next[t]++)
    val.bad++;
  pthread_mutex_unlock(&val.mu);
}

static void *producer(void *arg) {
  int t = (int)(intptr_t)arg;
  pthread_barrier_wait(&start_line);
  for (long s = 0; s < per_thread; s++)
    cor_log(COR_LOG_INFO, "t%d s%ld", t, s);
  return NULL;
}

static void test_async_many_threads(void **state) {
  (void)state;
  /* At most 8192 records in all, the ring's capacity: nothing can be
   * dropped however the threads are scheduled, so "exactly once" holds. */
  per_thread = test_scale(1000, 500);
  cor_log_set_sink(seq_sink, NULL);
  assert_int_equal(cor_log_set_async(true), 0);
  pthread_barrier_init(&start_line, NULL, NPROD);
  pthread_t th[NPROD];
  for (int t = 0; t < NPROD; t++)
    assert_int_equal(
        pthread_create(&th[t], NULL, producer, (void *)(intptr_t)t), 0);
  for (int t = 0; t < NPROD; t++)
    pthread_join(th[t], NULL);
  pthread_barrier_destroy(&start_line);
  cor_log_flush();
  pthread_mutex_lock(&val.mu);
  for (int t = 0; t < NPROD; t++)
    assert_int_equal(val.next[t], per_thread);
  assert_int_equal(val.bad, 0);
  assert_int_equal(val.others, 0);
  pthread_mutex_unlock(&val.mu);
}

static void test_async_fork(void **state) {
  (void)state;
  assert_int_equal(cor_log_set_async(true), 0);
  cor_log(COR_LOG_INFO, "before fork");
  /* The logging thread must not hold cap.mu, in a sink call, at the fork:
   * the child would find it locked forever. */
  cor_log_flush();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The logging thread did not follow: the child logs synchronously,
     * and its exit (atexit handler included) must not wait for it. */
    int before = cap_count();
    cor_log(COR_LOG_INFO, "in child");
    cor_log_flush();
    int code = cap_count() == before + 1 ? 0 : 1;
#ifndef __SANITIZE_THREAD__ /* tsan cannot start threads after such a fork */
    code |= cor_log_set_async(true) == 0 ? 0 : 2; /* async works again */
    cor_log(COR_LOG_INFO, "child async");
    cor_log_flush();
    code |= cap_count() == before + 2 ? 0 : 4;
#endif
    exit(code);
  }
  int status = wait_child(pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  cor_log(COR_LOG_INFO, "after fork");
  cor_log_flush();
  assert_int_equal(cap_count(), 2);
  assert_string_equal(cap.recs[1].msg, "after fork");
}

static void test_atexit_flush(void **state) {
  (void)state;
  static char out[64 * 1024];
  assert_int_equal(run_child("atexit", NULL, out, sizeof out), 0);
  char *p = out;
  for (int i = 0; i < 1000; i++) {
    char want[32];
    int n = snprintf(want, sizeof want, "WARNING|rec %d\n", i);
    if (strncmp(p, want, (size_t)n) != 0)
      fail_msg("record %d missing or out of order at \"%.40s\"", i, p);
    p += n;
  }
  assert_string_equal(p, "");
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0)
    return child_main(argv[2]);
  const struct CMUnitTest tests[] = {
      /* First, before this process has threads to fork from. */
      cmocka_unit_test_setup_teardown(test_env_level, setup, teardown),
      cmocka_unit_test_setup_teardown(test_env_overridden_and_forced, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
      cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_custom_sink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_default_sink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrant_sink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_slow_sink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_thread, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_overflow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_many_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_fork, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atexit_flush, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
