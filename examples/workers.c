/* SPDX-License-Identifier: MIT */
/* Plain worker threads calling into a per-core runtime: each of 4 threads
 * (a C library's callback threads, a legacy thread pool...) submits
 * coroutines to the runtime's loops with cor_run_coroutine_threadsafe and
 * blocks on the concurrent future for the answer, as asyncio's
 * run_coroutine_threadsafe is used. The coroutine itself waits without
 * blocking its loop (cor_sleep here; a socket or a file in real code).
 *
 *   examples/workers            prints one line per thread and a total */
#include <corio.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

enum { THREADS = 4, JOBS = 25 };

static cor_runtime_t *rt;

/* Runs on a loop of the runtime: "looks a value up" and answers it. */
static int lookup(void *arg, void **result) {
  intptr_t key = (intptr_t)arg;
  int rc = cor_sleep(0.001); /* the loop serves others meanwhile */
  if (rc != 0)
    return rc;
  *result = (void *)(key * key);
  return 0;
}

static void *worker(void *arg) {
  intptr_t id = (intptr_t)arg;
  long sum = 0;
  for (intptr_t j = 0; j < JOBS; j++) {
    intptr_t key = id * JOBS + j;
    cor_loop_t *loop = cor_runtime_loop(rt, (unsigned)(key % cor_runtime_nloops(rt)));
    cor_cfuture_t *cf =
        cor_run_coroutine_threadsafe(cor_coro(lookup, (void *)key), loop);
    if (cf == NULL) {
      fprintf(stderr, "worker %ld: submit failed\n", (long)id);
      return (void *)1;
    }
    void *value = NULL;
    int rc = cor_cfuture_result(cf, 5.0, &value); /* blocks this thread only */
    cor_release(cf);
    if (rc != 0) {
      fprintf(stderr, "worker %ld: %s\n", (long)id, cor_strerror(rc));
      return (void *)1;
    }
    sum += (long)(intptr_t)value;
  }
  printf("worker %ld: %d answers, sum %ld\n", (long)id, JOBS, sum);
  return (void *)sum;
}

int main(void) {
  rt = cor_runtime_new(NULL); /* one loop per CPU, each on its own thread */
  if (rt == NULL) {
    perror("cor_runtime_new");
    return 1;
  }
  pthread_t th[THREADS];
  for (intptr_t i = 0; i < THREADS; i++)
    pthread_create(&th[i], NULL, worker, (void *)i);
  long total = 0;
  int failed = 0;
  for (int i = 0; i < THREADS; i++) {
    void *r;
    pthread_join(th[i], &r);
    if ((intptr_t)r == 1)
      failed = 1;
    else
      total += (long)(intptr_t)r;
  }
  printf("total %ld\n", total);
  int rc = cor_runtime_shutdown(rt, 5.0);
  cor_release(rt);
  return failed || rc != 0;
}
