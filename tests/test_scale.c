/* SPDX-License-Identifier: MIT */
/* Tasks past the memory-mapping budget (core/stack.c): many live tasks on
 * default kernel settings, stacks carved from arenas once the guard pages
 * would exhaust vm.max_map_count, and overflow still reported on both kinds
 * of stack (a fault on a guard or below an arena; the canary otherwise). */
#include "testutil.h"

#include "task/task_internal.h"
#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static cor_future_t *gate;
static long started, finished;

static int idle_body(void *arg, void **r) {
  started++;
  int rc = cor_await(gate, NULL);
  finished++;
  return rc;
}

static int many_main(void *arg, void **r) {
  long n = (long)(intptr_t)arg;
  gate = cor_future_new(NULL);
  cor_task_t **t = calloc((size_t)n, sizeof *t);
  if (gate == NULL || t == NULL)
    return -ENOMEM;
  for (long i = 0; i < n; i++) {
    t[i] = cor_create_task(NULL, cor_coro(idle_body, NULL), NULL);
    if (t[i] == NULL) {
      print_message("task %ld: %s\n", i, strerror(errno));
      return -errno;
    }
  }
  while (started < n)
    cor_yield();
  /* All alive at once; the guard budget held. */
  if (cor__stack_guarded() > cor__stack_guard_budget())
    return -E2BIG;
  cor_future_set_result(gate, NULL);
  for (long i = 0; i < n; i++) {
    cor_await_task(t[i], NULL);
    cor_release(t[i]);
  }
  free(t);
  cor_release(gate);
  return finished == n ? 0 : -EIO;
}

/* More live tasks than guard pages allow (100,000 against a budget of
 * ~24,500 guards at vm.max_map_count 65,530; 20,000 under the sanitizers). */
static void test_many_live_tasks(void **s) {
  long n = test_scale(100000, 20000);
#ifdef __SANITIZE_THREAD__
  n = 4000; /* every stack is a TSan fiber, and TSan stops at 8,128 */
#endif
  cor_run_opts o = {.stack_size = 16 * 1024};
  assert_int_equal(cor_run(many_main, (void *)(intptr_t)n, &o), 0);
  assert_int_equal(started, n);
  assert_int_equal(finished, n);
}

/* ------------------------------------------------------------ overflow */

static char scratch_sink;
static __attribute__((noinline)) int recurse(int depth) {
  volatile char buf[512];
  buf[0] = (char)depth;
  scratch_sink = buf[0];
  if (depth > 1000000)
    return buf[0];
  return recurse(depth + 1) + buf[0];
}
static int deep_body(void *arg, void **r) { return recurse(0); }
static int smash_body(void *arg, void **r) {
  /* what an overflow that stopped inside the canary zone leaves */
  if (cor__tls_stack->canary == NULL)
    return -EINVAL;
  cor__tls_stack->canary[0] = 0;
  return cor_yield();
}
static int filler_body(void *arg, void **r) { return cor_await(gate, NULL); }

/* In a child with a guard budget of `guards`: one filler task (takes the
 * guarded stack), then `victim` on an arena stack. */
static int overflow_child(void *arg, void **r) {
  gate = cor_future_new(NULL);
  cor_task_t *f = cor_create_task(NULL, cor_coro(filler_body, NULL), "filler");
  cor_yield();
  cor_fn victim = arg;
  cor_task_t *t = cor_create_task(NULL, cor_coro(victim, NULL), "deep");
  if (t->stack->canary == NULL) {
    cor_task_cancel(t, NULL);
    return -EINVAL; /* not an arena stack: the test would prove nothing */
  }
  cor_await_task(t, NULL);
  (void)f;
  return 0;
}

static void expect_overflow_report(cor_fn victim) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 2);
    close(p[0]);
    signal(SIGSEGV, SIG_DFL); /* not cmocka's: corio's handler chains to it */
    signal(SIGBUS, SIG_DFL);
    cor__stack_set_guard_budget(cor__stack_guarded() + 1);
    cor_run_opts o = {.stack_size = 64 * 1024};
    int rc = cor_run(overflow_child, (void *)victim, &o);
    fprintf(stderr, "child returned %d\n", rc);
    _exit(0);
  }
  close(p[1]);
  char buf[4096];
  size_t n = 0;
  ssize_t k;
  while (n < sizeof buf - 1 && (k = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)k;
  buf[n] = 0;
  close(p[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFSIGNALED(st) || !strstr(buf, "corio: stack overflow in task 'deep'"))
    fail_msg("child status %d, stderr: %s", st, buf);
  assert_int_equal(WTERMSIG(st), SIGABRT);
}

/* An arena stack's canary found overwritten at the task's next switch. */
static void test_canary_overflow_reported(void **s) {
  expect_overflow_report(smash_body);
}

/* A deep recursion on the lowest slot of an arena runs into the unmapped
 * memory below it: the fault handler reports it as for a guard page. */
static void test_arena_overflow_reported(void **s) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  skip(); /* the sanitizers report the overflow themselves */
#endif
  expect_overflow_report(deep_body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_live_tasks),
      cmocka_unit_test(test_canary_overflow_reported),
      cmocka_unit_test(test_arena_overflow_reported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
