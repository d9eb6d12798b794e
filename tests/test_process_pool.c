/* SPDX-License-Identifier: MIT */
/* Process pool: results, crashes, exits, time-outs, threads in the parent,
 * zombies, shutdown. Worker processes are this test program started again
 * (the jobs below are found by name). Every wait is bounded. */
#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ jobs */

static int job_checksum(const void *in, size_t len, cor_bytes_t *out) {
  const unsigned char *p = in;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  /* Out: the checksum, then the input reversed. */
  unsigned char *buf = malloc(8 + len);
  memcpy(buf, &h, 8);
  for (size_t i = 0; i < len; i++)
    buf[8 + i] = p[len - 1 - i];
  int rc = cor_bytes_set(out, buf, 8 + len);
  free(buf);
  return rc;
}
COR_PROCESS_JOB(checksum, job_checksum)

static int job_abort(const void *in, size_t len, cor_bytes_t *out) {
  abort();
}
COR_PROCESS_JOB(crash_abort, job_abort)

static int job_exit3(const void *in, size_t len, cor_bytes_t *out) {
  _exit(3);
}
COR_PROCESS_JOB(exit3, job_exit3)

static volatile int spin_stop; /* never set: the job runs until killed */
static int job_spin(const void *in, size_t len, cor_bytes_t *out) {
  while (!spin_stop)
    pause();
  return 0;
}
COR_PROCESS_JOB(spin_forever, job_spin)

static int job_fail(const void *in, size_t len, cor_bytes_t *out) {
  return cor_fail(-EPROTO, "bad input of %zu bytes", len);
}
COR_PROCESS_JOB(fail_proto, job_fail)

static int job_sleep_ms(const void *in, size_t len, cor_bytes_t *out) {
  int ms = 0;
  memcpy(&ms, in, sizeof ms < len ? sizeof ms : len);
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  int pid = (int)getpid();
  return cor_bytes_set(out, &pid, sizeof pid);
}
COR_PROCESS_JOB(sleep_ms, job_sleep_ms)

static int job_empty(const void *in, size_t len, cor_bytes_t *out) {
  return 0;
}
COR_PROCESS_JOB(empty, job_empty)

static uint64_t fnv(const void *in, size_t len) {
  const unsigned char *p = in;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* ------------------------------------------------------------ helpers */

static bool under_tsan(void) {
#if defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return true;
#endif
#endif
  return false;
}

/* Children of this process (any state), and how many are zombies. */
static int count_children(int *zombies) {
  DIR *d = opendir("/proc");
  int n = 0, z = 0;
  struct dirent *e;
  pid_t me = getpid();
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
      continue;
    size_t r = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[r] = 0;
    char *rp = strrchr(buf, ')'); /* comm may hold spaces */
    char st = 0;
    int ppid = 0;
    if (rp && sscanf(rp + 2, "%c %d", &st, &ppid) == 2 && ppid == me) {
      n++;
      if (st == 'Z')
        z++;
    }
  }
  if (d)
    closedir(d);
  if (zombies)
    *zombies = z;
  return n;
}

static void skip_under_tsan(void) {
  TEST_SKIP_IF(under_tsan(),
               "process pool under TSan: the re-executed TSan worker is not "
               "exercised here");
}

static cor_future_t *run_sum(cor_executor_t *ex, const unsigned char *buf,
                             size_t len) {
  return cor_run_in_process(NULL, ex, "checksum", buf, len);
}

static void check_sum(cor_future_t *f, const unsigned char *buf, size_t len) {
  void *v = NULL;
  int rc = cor_await(f, &v);
  if (rc != 0)
    fail_msg("job failed: %s (%s)", cor_strerror(rc),
             cor_future_message(f) ? cor_future_message(f) : "");
  cor_bytes_t *b = v;
  assert_non_null(b);
  assert_int_equal(b->len, 8 + len);
  uint64_t h;
  memcpy(&h, b->data, 8);
  assert_true(h == fnv(buf, len));
  for (size_t i = 0; i < len; i++)
    assert_int_equal(((unsigned char *)b->data)[8 + i], buf[len - 1 - i]);
}

/* ------------------------------------------------------------ results */

static int results_main(void *arg, void **result) {
  cor_process_pool_opts o = {.max_workers = 2};
  cor_executor_t *ex = cor_process_pool_new(&o);
  assert_non_null(ex);
  long n = test_scale(5000, 500);
  enum { W = 64 };
  unsigned char bufs[W][64];
  cor_future_t *f[W];
  for (long base = 0; base < n; base += W) {
    for (int i = 0; i < W; i++) {
      for (int k = 0; k < 64; k++)
        bufs[i][k] = (unsigned char)(base + i * 7 + k * 13);
      size_t len = (size_t)((base + i) % 65);
      assert_non_null(f[i] = run_sum(ex, bufs[i], len));
    }
    for (int i = 0; i < W; i++) {
      check_sum(f[i], bufs[i], (size_t)((base + i) % 65));
      cor_release(f[i]);
    }
  }
  /* A big payload, both ways. */
  size_t big = 3u << 20;
  unsigned char *bb = malloc(big);
  for (size_t i = 0; i < big; i++)
    bb[i] = (unsigned char)(i * 31 + (i >> 9));
  cor_future_t *fb = run_sum(ex, bb, big);
  check_sum(fb, bb, big);
  cor_release(fb);
  free(bb);
  /* Empty output; an error with a message. */
  cor_future_t *fe = cor_run_in_process(NULL, ex, "empty", NULL, 0);
  void *v = NULL;
  assert_int_equal(cor_await(fe, &v), 0);
  assert_int_equal(((cor_bytes_t *)v)->len, 0);
  cor_release(fe);
  cor_future_t *ff = cor_run_in_process(NULL, ex, "fail_proto", "abc", 3);
  assert_int_equal(cor_await(ff, NULL), -EPROTO);
  assert_string_equal(cor_future_message(ff), "bad input of 3 bytes");
  cor_release(ff);
  assert_int_equal(cor_executor_shutdown(ex, true, false), 0);
  cor_release(ex);
  return 0;
}

static void test_results(void **state) {
  skip_under_tsan();
  assert_int_equal(cor_run(results_main, NULL, NULL), 0);
  int z;
  assert_int_equal(count_children(&z), 0);
}

static int misuse_main(void *arg, void **result) {
  cor_process_pool_opts o = {.max_workers = 1, .max_payload = 1000};
  cor_executor_t *ex = cor_process_pool_new(&o);
  unsigned char buf[2000] = {0};
  assert_null(cor_run_in_process(NULL, ex, "no_such_job", buf, 1));
  assert_int_equal(errno, EINVAL);
  assert_null(cor_run_in_process(NULL, ex, "checksum", buf, 1001));
  assert_int_equal(errno, EINVAL);
  assert_null(cor_run_in_process(NULL, ex, NULL, buf, 1));
  assert_int_equal(errno, EINVAL);
  /* Nothing was sent: no worker was ever started. */
  assert_int_equal(count_children(NULL), 0);
  /* Output above max_payload fails the job, not the pool. */
  cor_future_t *f = cor_run_in_process(NULL, ex, "checksum", buf, 995);
  assert_int_equal(cor_await(f, NULL), -EMSGSIZE);
  cor_release(f);
  f = cor_run_in_process(NULL, ex, "checksum", buf, 10);
  check_sum(f, buf, 10);
  cor_release(f);
  cor_executor_t *tp = cor_thread_pool_new(NULL);
  assert_null(cor_run_in_process(NULL, tp, "checksum", buf, 1));
  assert_int_equal(errno, EINVAL);
  cor_executor_shutdown(tp, true, false);
  cor_release(tp);
  cor_executor_shutdown(ex, true, false);
  assert_null(cor_run_in_process(NULL, ex, "checksum", buf, 1));
  assert_int_equal(errno, -COR_ECLOSED);
  cor_release(ex);
  return 0;
}

static void test_misuse(void **state) {
  recs_clear();
  skip_under_tsan();
  assert_int_equal(cor_run(misuse_main, NULL, NULL), 0);
  EXPECT_RECORDS(4, COR_LOG_ERROR, "cor_run_in_process(): invalid argument");
}

/* ------------------------------------------------------------ failures */

static int crash_main(void *arg, void **result) {
  cor_process_pool_opts o = {.max_workers = 2, .job_timeout = 0.5};
  cor_executor_t *ex = cor_process_pool_new(&o);
  enum { W = 40 };
  unsigned char bufs[W][16];
  cor_future_t *f[W];
  /* Good jobs around each bad one, all in flight together. */
  for (int i = 0; i < W; i++) {
    memset(bufs[i], i, sizeof bufs[i]);
    if (i == 5)
      f[i] = cor_run_in_process(NULL, ex, "crash_abort", NULL, 0);
    else if (i == 15)
      f[i] = cor_run_in_process(NULL, ex, "exit3", NULL, 0);
    else if (i == 25)
      f[i] = cor_run_in_process(NULL, ex, "spin_forever", NULL, 0);
    else
      f[i] = run_sum(ex, bufs[i], sizeof bufs[i]);
    assert_non_null(f[i]);
  }
  double t0 = cor_loop_time(NULL);
  for (int i = 0; i < W; i++) {
    if (i == 5) {
      assert_int_equal(cor_await(f[i], NULL), COR_EBROKEN);
      const char *m = cor_future_message(f[i]);
      assert_non_null(m);
      assert_non_null(strstr(m, "crash_abort"));
      assert_non_null(strstr(m, "signal 6"));
    } else if (i == 15) {
      assert_int_equal(cor_await(f[i], NULL), COR_EBROKEN);
      const char *m = cor_future_message(f[i]);
      assert_non_null(m);
      assert_non_null(strstr(m, "exit3"));
      assert_non_null(strstr(m, "exited with code 3"));
    } else if (i == 25) {
      assert_int_equal(cor_await(f[i], NULL), -ETIMEDOUT);
      const char *m = cor_future_message(f[i]);
      assert_non_null(m);
      assert_non_null(strstr(m, "spin_forever"));
      assert_non_null(strstr(m, "timed out"));
    } else {
      check_sum(f[i], bufs[i], sizeof bufs[i]);
    }
    cor_release(f[i]);
  }
  assert_true(cor_loop_time(NULL) - t0 < 10.0);
  /* The pool keeps serving after all that. */
  unsigned char b[64] = {1, 2, 3};
  for (int i = 0; i < 20; i++) {
    cor_future_t *g = run_sum(ex, b, sizeof b);
    check_sum(g, b, sizeof b);
    cor_release(g);
  }
  assert_int_equal(cor_executor_shutdown(ex, true, false), 0);
  cor_release(ex);
  return 0;
}

static void test_crash_exit_timeout(void **state) {
  skip_under_tsan();
  assert_int_equal(cor_run(crash_main, NULL, NULL), 0);
  int z;
  assert_int_equal(count_children(&z), 0);
  assert_int_equal(z, 0);
}

/* A worker killed from outside, while idle and while running a job. */
static int killed_main(void *arg, void **result) {
  cor_process_pool_opts o = {.max_workers = 1};
  cor_executor_t *ex = cor_process_pool_new(&o);
  int ms = 0;
  cor_future_t *f = cor_run_in_process(NULL, ex, "sleep_ms", &ms, sizeof ms);
  void *v = NULL;
  assert_int_equal(cor_await(f, &v), 0);
  int pid = *(int *)((cor_bytes_t *)v)->data;
  cor_release(f);
  ms = 3000;
  f = cor_run_in_process(NULL, ex, "sleep_ms", &ms, sizeof ms);
  cor_sleep(0.2);
  kill(pid, SIGTERM);
  assert_int_equal(cor_await(f, NULL), COR_EBROKEN);
  assert_non_null(strstr(cor_future_message(f), "signal 15"));
  cor_release(f);
  ms = 0;
  f = cor_run_in_process(NULL, ex, "sleep_ms", &ms, sizeof ms);
  assert_int_equal(cor_await(f, &v), 0);
  assert_true(*(int *)((cor_bytes_t *)v)->data != pid); /* a replacement */
  cor_release(f);
  cor_executor_shutdown(ex, true, false);
  cor_release(ex);
  return 0;
}

static void test_killed_worker(void **state) {
  skip_under_tsan();
  assert_int_equal(cor_run(killed_main, NULL, NULL), 0);
  assert_int_equal(count_children(NULL), 0);
}

/* ------------------------------------------------------------ threads */

static atomic_int stop_threads;
static void *busy_thread(void *arg) {
  /* Threads that hold locks and allocate while the pool starts workers. */
  while (!atomic_load(&stop_threads)) {
    void *p = malloc(128);
    free(p);
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static int threads_main(void *arg, void **result) {
  cor_process_pool_opts o = {.max_workers = 3};
  cor_executor_t *ex = cor_process_pool_new(&o);
  enum { W = 48 };
  unsigned char bufs[W][32];
  cor_future_t *f[W];
  for (int i = 0; i < W; i++) {
    memset(bufs[i], 255 - i, sizeof bufs[i]);
    f[i] = run_sum(ex, bufs[i], sizeof bufs[i]);
  }
  for (int i = 0; i < W; i++) {
    check_sum(f[i], bufs[i], sizeof bufs[i]);
    cor_release(f[i]);
  }
  cor_executor_shutdown(ex, true, false);
  cor_release(ex);
  return 0;
}

static void test_after_threads(void **state) {
  skip_under_tsan();
  pthread_t th[8];
  atomic_store(&stop_threads, 0);
  for (int i = 0; i < 8; i++)
    assert_int_equal(pthread_create(&th[i], NULL, busy_thread, NULL), 0);
  assert_int_equal(cor_run(threads_main, NULL, NULL), 0);
  atomic_store(&stop_threads, 1);
  for (int i = 0; i < 8; i++)
    pthread_join(th[i], NULL);
  assert_int_equal(count_children(NULL), 0);
}

/* ------------------------------------------------------------ shutdown */

static int shutdown_main(void *arg, void **result) {
  cor_process_pool_opts o = {.max_workers = 2};
  cor_executor_t *ex = cor_process_pool_new(&o);
  enum { N = 12 };
  cor_future_t *f[N];
  int ms = 20;
  for (int i = 0; i < N; i++)
    f[i] = cor_run_in_process(NULL, ex, "sleep_ms", &ms, sizeof ms);
  /* Wait: every queued job runs, then the workers exit and are reaped. */
  assert_int_equal(cor_executor_shutdown(ex, true, false), 0);
  assert_int_equal(count_children(NULL), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(cor_await(f[i], NULL), 0);
    cor_release(f[i]);
  }
  cor_release(ex);

  /* No wait, cancel: queued jobs are cancelled, running ones finish. */
  ex = cor_process_pool_new(&o);
  ms = 100;
  for (int i = 0; i < N; i++)
    f[i] = cor_run_in_process(NULL, ex, "sleep_ms", &ms, sizeof ms);
  cor_sleep(0.05);
  assert_int_equal(cor_executor_shutdown(ex, false, true), 0);
  int ok = 0, cancelled = 0;
  for (int i = 0; i < N; i++) {
    int rc = cor_await(f[i], NULL);
    if (rc == 0)
      ok++;
    else if (rc == -ECANCELED)
      cancelled++;
    else
      fail_msg("unexpected %s", cor_strerror(rc));
    cor_release(f[i]);
  }
  assert_true(ok >= 1 && cancelled >= N - 2 * 16);
  assert_int_equal(ok + cancelled, N);
  cor_release(ex); /* the manager reaps its workers by itself */
  for (int i = 0; i < 3000 && count_children(NULL) > 0; i++)
    cor_sleep(0.001);
  assert_int_equal(count_children(NULL), 0);

  /* Deadline: a job that never ends is killed at the deadline. */
  ex = cor_process_pool_new(&o);
  cor_future_t *s = cor_run_in_process(NULL, ex, "spin_forever", NULL, 0);
  cor_sleep(0.1);
  assert_int_equal(cor_executor_shutdown_timeout(ex, false, 0.1), -ETIMEDOUT);
  assert_int_equal(count_children(NULL), 0);
  assert_int_equal(cor_await(s, NULL), COR_EBROKEN);
  cor_release(s);
  cor_release(ex);
  return 0;
}

static void test_shutdown(void **state) {
  skip_under_tsan();
  assert_int_equal(cor_run(shutdown_main, NULL, NULL), 0);
  int z;
  assert_int_equal(count_children(&z), 0);
  assert_int_equal(z, 0);
}

/* Cancelling a job's future: before it is sent, and while it runs. */
static int cancel_main(void *arg, void **result) {
  cor_process_pool_opts o = {.max_workers = 1};
  cor_executor_t *ex = cor_process_pool_new(&o);
  int ms = 300;
  cor_future_t *run = cor_run_in_process(NULL, ex, "sleep_ms", &ms, sizeof ms);
  cor_sleep(0.1);
  assert_int_equal(cor_future_cancel(run, NULL), 0);
  unsigned char b[8] = {9};
  cor_future_t *after = run_sum(ex, b, sizeof b);
  check_sum(after, b, sizeof b);
  cor_release(after);
  assert_true(cor_future_cancelled(run));
  cor_release(run);
  /* Queued and cancelled at once: dropped before it is written. */
  cor_future_t *q = run_sum(ex, b, sizeof b);
  assert_int_equal(cor_future_cancel(q, NULL), 0);
  cor_release(q);
  cor_executor_shutdown(ex, true, false);
  cor_release(ex);
  return 0;
}

static void test_cancel(void **state) {
  skip_under_tsan();
  assert_int_equal(cor_run(cancel_main, NULL, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_results),
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_crash_exit_timeout),
      cmocka_unit_test(test_killed_worker),
      cmocka_unit_test(test_after_threads),
      cmocka_unit_test(test_shutdown),
      cmocka_unit_test(test_cancel),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
