/* SPDX-License-Identifier: MIT */
/* A small program for valgrind (CI's valgrind step, README "Debugging with
 * valgrind"): tasks on pooled stacks that sleep, yield, await futures and
 * each other, a task cancelled mid-sleep, stacks reused and freed, on the
 * main thread and at once on a second thread (its pthread stack is a
 * mapping next to the task stacks). Built on
 * the system allocator (make ALLOC=system tools/vg_smoke) it must run
 * under `valgrind --error-exitcode=1 --leak-check=full` with no error.
 * Prints "vg_smoke: ok" and exits 0. */
#include <corio.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

static int child(void *arg, void **result) {
  intptr_t i = (intptr_t)arg;
  for (int k = 0; k < 3; k++)
    if (cor_yield() != 0)
      return -1;
  if (cor_sleep(0.001 * (double)(i % 3)) != 0)
    return -1;
  *result = (void *)(i * 2);
  return 0;
}

static int sleeper(void *arg, void **result) {
  return cor_sleep(10.0); /* cancelled */
}

static int setter(void *fut, void **result) {
  cor_sleep(0.001);
  return cor_future_set_result(fut, (void *)(intptr_t)42);
}

static int main_task(void *arg, void **result) {
  enum { N = 64 };
  for (int round = 0; round < 3; round++) { /* later rounds reuse stacks */
    cor_task_t *t[N];
    cor_future_t *f[N];
    for (intptr_t i = 0; i < N; i++) {
      t[i] = cor_create_task(NULL, cor_coro(child, (void *)i), NULL);
      if (t[i] == NULL)
        return -1;
      f[i] = cor_task_future(t[i]);
    }
    int codes[N];
    void *vals[N];
    if (cor_gather(f, N, codes, vals) != 0)
      return -1;
    for (intptr_t i = 0; i < N; i++) {
      if (codes[i] != 0 || (intptr_t)vals[i] != i * 2)
        return -1;
      cor_release(t[i]);
    }
  }
  cor_future_t *fut = cor_future_new(NULL);
  cor_task_t *s = cor_create_task(NULL, cor_coro(setter, fut), "setter");
  void *v = NULL;
  if (fut == NULL || s == NULL || cor_await(fut, &v) != 0 || (intptr_t)v != 42)
    return -1;
  cor_await(cor_task_future(s), NULL);
  cor_release(s);
  cor_release(fut);
  cor_task_t *z = cor_create_task(NULL, cor_coro(sleeper, NULL), "sleeper");
  cor_sleep(0.002);
  cor_task_cancel(z, "bye");
  int rc = cor_await(cor_task_future(z), NULL);
  cor_release(z);
  if (rc != -ECANCELED)
    return -1;
  return 0;
}

static void *other_thread(void *rc) {
  *(int *)rc = cor_run(main_task, NULL, NULL);
  return NULL;
}

int main(void) {
  int rc2 = -1;
  pthread_t t;
  if (pthread_create(&t, NULL, other_thread, &rc2) != 0)
    return 1;
  int rc = cor_run(main_task, NULL, NULL);
  pthread_join(t, NULL);
  if (rc == 0)
    rc = rc2;
  if (rc != 0) {
    fprintf(stderr, "vg_smoke: failed (%d)\n", rc);
    return 1;
  }
  printf("vg_smoke: ok\n");
  return 0;
}
