/* SPDX-License-Identifier: MIT */
/* The API conventions of include/corio/common.h that cut across headers,
 * checked call by call: a NULL loop is the running loop for every call
 * that schedules work on a loop or makes an object there, and an error
 * (logged, -EINVAL / NULL with EINVAL) only when no loop runs. */
#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include <errno.h>

static int ran;
static void bump(void *arg) { ran += (int)(intptr_t)arg; }

static int body(void *arg, void **r) { return 0; }

static int on_running_loop(void *arg, void **r) {
  cor_loop_t *me = cor_get_running_loop();
  if (me == NULL)
    return -1;
  cor_handle_t h = {0};
  if (cor_call_soon(NULL, bump, (void *)1, NULL) != 0 ||
      cor_call_later(NULL, 0, bump, (void *)10, NULL) != 0 ||
      cor_call_at(NULL, cor_loop_time(me), bump, (void *)100, NULL) != 0 ||
      cor_call_at_ns(NULL, cor_loop_time_ns(me), bump, (void *)1000, NULL) !=
          0 ||
      cor_call_later(NULL, 10, bump, (void *)10000, &h) != 0)
    return -2;
  if (cor_handle_cancel(NULL, h) != 0) /* the last one never runs */
    return -3;
  if (cor_sleep(0.01) != 0)
    return -4;
  if (ran != 1111)
    return -5;
  /* Objects made on the running loop. */
  cor_future_t *f = cor_future_new(NULL);
  cor_task_t *t = cor_create_task(NULL, cor_coro(body, NULL), NULL);
  cor_lock_t *l = cor_lock_new(NULL);
  cor_queue_t *q = cor_queue_new(NULL, NULL);
  if (!f || !t || !l || !q || cor_future_loop(f) != me)
    return -6;
  if (cor_await_task(t, NULL) != 0)
    return -7;
  cor_release(f);
  cor_release(t);
  cor_release(l);
  cor_release(q);
  return 0;
}

static void test_null_loop_is_the_running_loop(void **s) {
  ran = 0;
  assert_int_equal(cor_run(on_running_loop, NULL, NULL), 0);
}

static void test_null_loop_without_one(void **s) {
  recs_clear();
  assert_null(cor_get_running_loop());
  assert_int_equal(cor_call_soon(NULL, bump, NULL, NULL), -EINVAL);
  assert_int_equal(cor_call_later(NULL, 1, bump, NULL, NULL), -EINVAL);
  assert_int_equal(cor_handle_cancel(NULL, (cor_handle_t){0}), -EINVAL);
  errno = 0;
  assert_null(cor_future_new(NULL));
  assert_int_equal(errno, EINVAL);
  EXPECT_ERRORS(4, "(): invalid argument: loop is NULL and no loop is running");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_null_loop_is_the_running_loop),
      cmocka_unit_test(test_null_loop_without_one),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
