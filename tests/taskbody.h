/* SPDX-License-Identifier: MIT */
/* Task bodies for the cmocka suites: CHECK inside a body (a task cannot
 * use cmocka's asserts: they longjmp across stacks), and the runners that
 * start a body as a task and assert that it finished with 0 and no CHECK
 * failed. `loop` is the suite's loop; the runners that make their own set
 * it for the body's time. */
#ifndef CORIO_TASKBODY_H
#define CORIO_TASKBODY_H

#include <corio.h>

#include "testutil.h"

static cor_loop_t *loop;
static int failed_line;

/* Records the first failed line, prints the condition, returns -1 from the
 * body. */
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      if (failed_line == 0)                                                    \
        failed_line = __LINE__;                                                \
      print_message("check failed at line %d: %s\n", __LINE__, #cond);         \
      return -1;                                                               \
    }                                                                          \
  } while (0)

/* Runs body as a task on `loop` to completion. */
static inline void run_body_on_loop(cor_fn body, void *arg) {
  failed_line = 0;
  cor_task_t *t = cor_create_task(loop, cor_coro(body, arg), "body");
  assert_non_null(t);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  int rc = cor_future_result(cor_task_future(t), NULL);
  cor_release(t);
  assert_int_equal(failed_line, 0);
  assert_int_equal(rc, 0);
}

/* The same on a loop of its own (opts.io_uring = io_uring: 0 as the loop
 * chooses, 1 asks for it, -1 refuses it), closed and freed after. */
static inline void run_body_new_loop(int io_uring, cor_fn body, void *arg) {
  cor_loop_opts o = {.io_uring = io_uring};
  loop = cor_loop_new(&o);
  assert_non_null(loop);
  run_body_on_loop(body, arg);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
  loop = NULL;
}

/* setup/teardown for suites sharing one loop per test. */
static inline int loop_setup(void **s) {
  (void)s;
  loop = cor_loop_new(NULL);
  assert_non_null(loop);
  failed_line = 0;
  return 0;
}
static inline int loop_teardown(void **s) {
  (void)s;
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
  loop = NULL;
  return 0;
}

/* A test of such a suite. */
#define WITH_LOOP(test)                                                        \
  cmocka_unit_test_setup_teardown(test, loop_setup, loop_teardown)

#endif
