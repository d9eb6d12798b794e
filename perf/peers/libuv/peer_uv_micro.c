/* SPDX-License-Identifier: MIT */
/* peer_uv_micro: corio's loop workloads written on libuv (Debian libuv1-dev),
 * never linked with corio; see perf/peers/libuv/README.md.
 *
 *   perf/peers/libuv/peer_uv_micro threadsafe_post P=1 M=1000000
 *   perf/peer_uv_micro local_callbacks N=5000000
 *
 * threadsafe_post: libuv has no call_soon_threadsafe; the usual form is a
 * mutex-protected queue plus a uv_async_t. Each producer appends (producer,
 * seq) under the mutex and calls uv_async_send (which coalesces: only the
 * first send after a drain writes the eventfd); the async callback swaps
 * the queue out under the mutex and runs every entry on the loop thread.
 * Per-producer order and the count are checked.
 *
 * local_callbacks: libuv has no call_soon either; the form Node.js uses for
 * setImmediate is a loop-owned FIFO run from a uv_check_t, with a uv_idle_t
 * kept active while it is not empty so the poll does not block. Each pass
 * runs the callbacks queued before it began (as asyncio does). 64 chains,
 * exactly N callbacks, FIFO checked.
 *
 * Prints the harness's line with PEER=libuv; exit 1 (no figure) on lost
 * work. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void fail(const char *msg) {
  fprintf(stderr, "peer_uv_micro: FAILED: %s\n", msg);
  exit(1);
}

static long param(int argc, char **argv, const char *key, long dflt) {
  size_t kl = strlen(key);
  for (int i = 2; i < argc; i++)
    if (strncmp(argv[i], key, kl) == 0 && argv[i][kl] == '=') {
      char *end;
      long v = strtol(argv[i] + kl + 1, &end, 10);
      if (*end != 0 || v <= 0) {
        fprintf(stderr, "peer_uv_micro: bad value %s\n", argv[i]);
        exit(2);
      }
      return v;
    }
  return dflt;
}

/* ------------------------------------------------------------ threadsafe_post */

typedef struct {
  uint32_t producer;
  uint32_t seq;
} post;

static struct {
  pthread_mutex_t mu;
  post *q, *spare;
  size_t len, cap, spare_cap;
  uv_async_t async;
  long total, count, bad;
  long *last;
  long m;
  pthread_barrier_t barrier;
  double t_end;
} tp = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void tp_on_async(uv_async_t *a) {
  pthread_mutex_lock(&tp.mu);
  post *q = tp.q;
  size_t n = tp.len;
  tp.q = tp.spare;
  size_t c = tp.cap;
  tp.cap = tp.spare_cap;
  tp.len = 0;
  pthread_mutex_unlock(&tp.mu);
  for (size_t i = 0; i < n; i++) {
    if (tp.last[q[i].producer] + 1 != (long)q[i].seq)
      tp.bad++;
    tp.last[q[i].producer] = q[i].seq;
  }
  tp.count += (long)n;
  tp.spare = q;
  tp.spare_cap = c;
  if (tp.count == tp.total) {
    tp.t_end = now_s();
    /* a producer may still be in its last uv_async_send: close the handle
     * only after they are joined */
    uv_stop(a->loop);
  }
}

static void *tp_producer(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg;
  pthread_barrier_wait(&tp.barrier);
  for (long s = 1; s <= tp.m; s++) {
    pthread_mutex_lock(&tp.mu);
    if (tp.len == tp.cap) {
      tp.cap = tp.cap ? tp.cap * 2 : 4096;
      tp.q = realloc(tp.q, tp.cap * sizeof *tp.q);
      if (tp.q == NULL)
        fail("out of memory");
    }
    tp.q[tp.len++] = (post){id, (uint32_t)s};
    pthread_mutex_unlock(&tp.mu);
    uv_async_send(&tp.async);
  }
  return NULL;
}

static int threadsafe_post(int argc, char **argv) {
  long p = param(argc, argv, "P", 1), m = param(argc, argv, "M", 1000000);
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0 || uv_async_init(&loop, &tp.async, tp_on_async))
    fail("uv init");
  tp.total = p * m;
  tp.m = m;
  tp.last = calloc((size_t)p, sizeof *tp.last);
  pthread_barrier_init(&tp.barrier, NULL, (unsigned)p + 1);
  pthread_t *th = calloc((size_t)p, sizeof *th);
  for (long i = 0; i < p; i++)
    if (pthread_create(&th[i], NULL, tp_producer, (void *)(uintptr_t)i) != 0)
      fail("pthread_create");
  /* The loop is this thread; timing starts as the producers leave the
   * barrier. */
  pthread_barrier_wait(&tp.barrier);
  double t0 = now_s();
  uv_run(&loop, UV_RUN_DEFAULT);
  for (long i = 0; i < p; i++)
    pthread_join(th[i], NULL);
  uv_close((uv_handle_t *)&tp.async, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (tp.count != tp.total || tp.bad != 0) {
    fprintf(stderr, "peer_uv_micro: %ld of %ld ran, %ld out of order\n",
            tp.count, tp.total, tp.bad);
    fail("lost work");
  }
  uv_loop_close(&loop);
  double secs = tp.t_end - t0;
  printf("WORKLOAD=threadsafe_post PARAMS=P=%ld,M=%ld OPS=%ld SECONDS=%.6f "
         "NS_PER_OP=%.2f PEER=libuv\n",
         p, m, tp.total, secs, secs * 1e9 / (double)tp.total);
  return 0;
}

/* ------------------------------------------------------------ local_callbacks */

typedef void (*soon_fn)(long arg);
typedef struct {
  soon_fn fn;
  long arg;
} soon;

static struct {
  soon *ring;
  size_t cap, head, len; /* cap a power of two */
  uv_check_t check;
  uv_idle_t idle;
  long n, scheduled, ran, bad, chains;
} lc;

static void lc_noop_idle(uv_idle_t *h) { (void)h; }

static void call_soon(soon_fn fn, long arg) {
  if (lc.len == lc.cap) {
    size_t nc = lc.cap ? lc.cap * 2 : 1024;
    soon *r = malloc(nc * sizeof *r);
    if (r == NULL)
      fail("out of memory");
    for (size_t i = 0; i < lc.len; i++)
      r[i] = lc.ring[(lc.head + i) & (lc.cap - 1)];
    free(lc.ring);
    lc.ring = r;
    lc.cap = nc;
    lc.head = 0;
  }
  if (lc.len == 0)
    uv_idle_start(&lc.idle, lc_noop_idle);
  lc.ring[(lc.head + lc.len++) & (lc.cap - 1)] = (soon){fn, arg};
}

static void lc_on_check(uv_check_t *h) {
  (void)h;
  size_t n = lc.len; /* only those queued before this pass */
  for (size_t i = 0; i < n; i++) {
    soon s = lc.ring[lc.head];
    lc.head = (lc.head + 1) & (lc.cap - 1);
    lc.len--;
    s.fn(s.arg);
  }
  if (lc.len == 0) {
    uv_idle_stop(&lc.idle);
    if (lc.ran == lc.n) {
      uv_close((uv_handle_t *)&lc.check, NULL);
      uv_close((uv_handle_t *)&lc.idle, NULL);
    }
  }
}

static void lc_step(long chain) {
  if (lc.ran % lc.chains != chain)
    lc.bad++;
  lc.ran++;
  if (lc.scheduled < lc.n) {
    lc.scheduled++;
    call_soon(lc_step, chain);
  }
}

static int local_callbacks(int argc, char **argv) {
  long n = param(argc, argv, "N", 5000000);
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0 || uv_check_init(&loop, &lc.check) != 0 ||
      uv_idle_init(&loop, &lc.idle) != 0)
    fail("uv init");
  uv_check_start(&lc.check, lc_on_check);
  lc.n = n;
  lc.chains = n < 64 ? n : 64;
  double t0 = now_s();
  for (long c = 0; c < lc.chains; c++) {
    lc.scheduled++;
    call_soon(lc_step, c);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  double secs = now_s() - t0;
  if (lc.ran != n || lc.bad != 0) {
    fprintf(stderr, "peer_uv_micro: %ld of %ld ran, %ld out of order\n",
            lc.ran, n, lc.bad);
    fail("lost work");
  }
  uv_loop_close(&loop);
  printf("WORKLOAD=local_callbacks PARAMS=N=%ld OPS=%ld SECONDS=%.6f "
         "NS_PER_OP=%.2f PEER=libuv\n",
         n, n, secs, secs * 1e9 / (double)n);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "threadsafe_post") == 0)
    return threadsafe_post(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "local_callbacks") == 0)
    return local_callbacks(argc, argv);
  fprintf(stderr, "usage: %s threadsafe_post [P=1] [M=1000000] | "
                  "local_callbacks [N=5000000]\n",
          argv[0]);
  return 2;
}
