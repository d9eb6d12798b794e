/* SPDX-License-Identifier: MIT */
/* A loop, a timer, and a callback posted from another thread. */
#include <corio.h>
#include <pthread.h>
#include <stdio.h>

static void hello(void *arg) { printf("hello from another thread\n"); }
static void done(void *loop) { printf("timer fired\n"); cor_loop_stop(loop); }

static void *worker(void *loop) {
  cor_call_soon_threadsafe(loop, hello, NULL); /* the one cross-thread door */
  return NULL;
}

int main(void) {
  cor_loop_t *loop = cor_loop_new(NULL);
  cor_call_later(loop, 0.1, done, loop, NULL); /* a timer in 100 ms */
  pthread_t t;
  pthread_create(&t, NULL, worker, loop);
  cor_loop_run_forever(loop); /* runs until done() stops it */
  pthread_join(t, NULL);
  cor_loop_close(loop);
  cor_release(loop);
  return 0;
}
