/* SPDX-License-Identifier: MIT */
/* Producer and consumers on one loop with the coordination primitives: a
 * bounded Queue carries the work (back-pressure on the producer), a
 * Semaphore bounds how many items are "in the network" at once, a Lock
 * guards a shared total, and the queue's shutdown tells the consumers to
 * stop once everything was taken. As in asyncio:
 *
 *   queue = asyncio.Queue(maxsize=8)
 *   async with asyncio.TaskGroup() as tg: producer + 3 consumers
 *
 *   examples/pipeline           prints what each consumer did and the sum */
#include <corio.h>

#include <stdint.h>
#include <stdio.h>

enum { ITEMS = 200, CONSUMERS = 3 };

static cor_queue_t *queue;
static cor_semaphore_t *in_flight;
static cor_lock_t *lock;
static long total;

static int producer(void *arg, void **r) {
  for (intptr_t i = 1; i <= ITEMS; i++) {
    int rc = cor_queue_put(queue, (void *)i); /* waits while the queue is full */
    if (rc != 0)
      return rc;
  }
  int rc = cor_queue_join(queue); /* every item taken and marked done */
  if (rc == 0)
    rc = cor_queue_shutdown(queue, false); /* consumers' gets end */
  return rc;
}

static int consumer(void *arg, void **r) {
  intptr_t id = (intptr_t)arg;
  int handled = 0;
  for (;;) {
    void *item;
    int rc = cor_queue_get(queue, &item);
    if (rc == COR_ECLOSED)
      break; /* shut down and drained */
    if (rc != 0)
      return rc;
    if ((rc = cor_semaphore_acquire(in_flight)) != 0)
      return rc;
    rc = cor_sleep(0.0005); /* "send it somewhere" */
    cor_semaphore_release(in_flight);
    if (rc != 0)
      return rc;
    if ((rc = cor_lock_acquire(lock)) != 0)
      return rc;
    total += (long)(intptr_t)item; /* a critical section that may yield */
    cor_yield();
    cor_lock_release(lock);
    cor_queue_task_done(queue);
    handled++;
  }
  printf("consumer %ld: %d items\n", (long)id, handled);
  *r = (void *)(intptr_t)handled;
  return 0;
}

static int main_task(void *arg, void **r) {
  queue = cor_queue_new(NULL, &(cor_queue_opts){.maxsize = 8});
  in_flight = cor_semaphore_new(NULL, 2, false);
  lock = cor_lock_new(NULL);
  if (!queue || !in_flight || !lock)
    return -ENOMEM;
  cor_taskgroup_t *g = cor_taskgroup_new();
  cor_task_t *c[CONSUMERS];
  cor_task_t *p = cor_taskgroup_spawn(g, cor_coro(producer, NULL), "producer");
  for (intptr_t i = 0; i < CONSUMERS; i++)
    c[i] = cor_taskgroup_spawn(g, cor_coro(consumer, (void *)i), "consumer");
  int rc = cor_taskgroup_wait(g); /* every task done, or the first error */
  int handled = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    void *n = NULL;
    if (rc == 0 && cor_future_result(cor_task_future(c[i]), &n) == 0)
      handled += (int)(intptr_t)n;
    cor_release(c[i]);
  }
  cor_release(p);
  printf("%d items through %d consumers, total %ld (expected %ld)\n", handled,
         CONSUMERS, total, (long)ITEMS * (ITEMS + 1) / 2);
  cor_release(queue);
  cor_release(in_flight);
  cor_release(lock);
  if (rc == 0 && (handled != ITEMS || total != (long)ITEMS * (ITEMS + 1) / 2))
    rc = -EIO;
  return rc;
}

int main(void) {
  int rc = cor_run(main_task, NULL, NULL);
  if (rc != 0)
    fprintf(stderr, "pipeline: %s\n", cor_strerror(rc));
  return rc != 0;
}
