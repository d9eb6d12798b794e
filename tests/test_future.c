/* SPDX-License-Identifier: MIT */
/* Futures: outcome, invalid state, callbacks scheduled (never inline) in
 * order, retrieval, run_until_complete and cor_fail. */
#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include "task/task_internal.h"

static cor_loop_t *loop_new(void) {
  cor_loop_t *loop = cor_loop_new(NULL);
  assert_non_null(loop);
  return loop;
}

static void loop_free(cor_loop_t *loop) {
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

/* Runs exactly one iteration. */
static void run_once(cor_loop_t *loop) {
  assert_int_equal(cor_loop_stop(loop), 0);
  assert_int_equal(cor_loop_run_forever(loop), 0);
}

static void test_result_and_invalid_state(void **state) {
  recs_clear();
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_future_t *f = cor_future_new(loop);
  assert_non_null(f);
  assert_false(cor_future_done(f));
  void *v = NULL;
  assert_int_equal(cor_future_result(f, &v), -EAGAIN);
  assert_int_equal(cor_future_set_result(f, (void *)42), 0);
  assert_true(cor_future_done(f));
  assert_false(cor_future_cancelled(f));
  /* Done: every setter is a clean -EINVAL and changes nothing. */
  assert_int_equal(cor_future_set_result(f, (void *)7), -EINVAL);
  assert_int_equal(cor_future_set_error(f, -EIO, "x"), -EINVAL);
  assert_int_equal(cor_future_cancel(f, NULL), -EINVAL);
  assert_int_equal(cor_future_result(f, &v), 0);
  assert_ptr_equal(v, (void *)42);
  cor_release(f);

  /* Cancelled: the seeds' "don't call set_result() if cancelled". */
  f = cor_future_new(loop);
  assert_int_equal(cor_future_cancel(f, "bye"), 0);
  assert_true(cor_future_cancelled(f));
  assert_true(cor_future_done(f));
  assert_int_equal(cor_future_set_result(f, NULL), -EINVAL);
  assert_int_equal(cor_future_set_error(f, -EIO, NULL), -EINVAL);
  assert_int_equal(cor_future_cancel(f, NULL), -EINVAL);
  assert_int_equal(cor_future_result(f, NULL), -ECANCELED);
  assert_string_equal(cor_future_message(f), "bye");
  cor_release(f);

  /* Errors. */
  f = cor_future_new(loop);
  assert_int_equal(cor_future_set_error(f, 0, "not an error"), -EINVAL);
  assert_int_equal(cor_future_set_error(f, 5, NULL), -EINVAL);
  assert_int_equal(cor_future_set_error(f, -EPROTO, "bad header 3"), 0);
  assert_int_equal(cor_future_result(f, &v), -EPROTO);
  assert_string_equal(cor_future_message(f), "bad header 3");
  assert_true(f->retrieved);
  cor_release(f);

  assert_int_equal(cor_future_set_result(NULL, NULL), -EINVAL);
  assert_int_equal(cor_future_result(NULL, NULL), -EINVAL);
  assert_false(cor_future_done(NULL));
  loop_free(loop);
  EXPECT_RECORDS(4, COR_LOG_ERROR, "(): invalid argument");
}

static char order[64];
static size_t norder;
static void rec_cb(cor_future_t *f, void *arg) {
  assert_true(cor_future_done(f));
  order[norder++] = (char)(uintptr_t)arg;
}

static void test_callbacks_scheduled_in_order(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_future_t *f = cor_future_new(loop);
  norder = 0;
  assert_int_equal(cor_future_add_done_callback(f, rec_cb, (void *)'a'), 0);
  assert_int_equal(cor_future_add_done_callback(f, rec_cb, (void *)'b'), 0);
  assert_int_equal(cor_future_add_done_callback(f, rec_cb, (void *)'x'), 0);
  assert_int_equal(cor_future_add_done_callback(f, rec_cb, (void *)'c'), 0);
  assert_int_equal(cor_future_remove_done_callback(f, rec_cb, (void *)'x'), 1);
  assert_int_equal(cor_future_remove_done_callback(f, rec_cb, (void *)'x'), 0);
  assert_int_equal(cor_future_set_result(f, NULL), 0);
  assert_int_equal(norder, 0); /* never inline */
  /* The callbacks hold the future: dropping ours now is safe. */
  cor_release(f);
  run_once(loop);
  assert_int_equal(norder, 3);
  assert_memory_equal(order, "abc", 3);
  loop_free(loop);
}

static void test_callback_on_done_future(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_future_t *f = cor_future_new(loop);
  cor_future_set_result(f, NULL);
  norder = 0;
  assert_int_equal(cor_future_add_done_callback(f, rec_cb, (void *)'z'), 0);
  assert_int_equal(norder, 0);
  run_once(loop);
  assert_int_equal(norder, 1);
  cor_release(f);
  /* A future freed with callbacks still pending frees them (ASan checks). */
  f = cor_future_new(loop);
  assert_int_equal(cor_future_add_done_callback(f, rec_cb, (void *)'q'), 0);
  cor_release(f);
  loop_free(loop);
}

static void set_later(void *arg) { cor_future_set_result(arg, (void *)99); }
static void stop_cb(void *loop) { cor_loop_stop(loop); }

static void test_run_until_complete(void **state) {
  recs_clear();
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_future_t *f = cor_future_new(loop);
  assert_int_equal(cor_call_later(loop, 0.01, set_later, f, NULL), 0);
  assert_int_equal(cor_loop_run_until_complete(loop, f), 0);
  void *v;
  assert_int_equal(cor_future_result(f, &v), 0);
  assert_ptr_equal(v, (void *)99);
  /* Done already: returns at once. */
  assert_int_equal(cor_loop_run_until_complete(loop, f), 0);
  cor_release(f);

  /* Stopped before the future is done. */
  f = cor_future_new(loop);
  assert_int_equal(cor_call_soon(loop, stop_cb, loop, NULL), 0);
  assert_int_equal(cor_loop_run_until_complete(loop, f), -EINTR);
  assert_int_equal(cor_future_set_error(f, -EIO, "late"), 0);
  assert_int_equal(cor_loop_run_until_complete(loop, f), -EIO);
  cor_release(f);

  /* A future of another loop. */
  cor_loop_t *other = loop_new();
  f = cor_future_new(other);
  assert_int_equal(cor_loop_run_until_complete(loop, f), -EINVAL);
  cor_release(f);
  loop_free(other);
  loop_free(loop);
  EXPECT_RECORDS(1, COR_LOG_ERROR, "(): invalid argument");
}

static int failing(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cor_fail(-EPROTO, "bad header %d", 7);
}

static void test_fail_records_message_and_site(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_task_t *t = cor_create_task(loop, cor_coro(failing, NULL), NULL);
  assert_non_null(t);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)),
                   -EPROTO);
  assert_string_equal(cor_future_message(cor_task_future(t)), "bad header 7");
  const char *file;
  int line;
  assert_int_equal(cor_future_error_site(cor_task_future(t), &file, &line), 0);
  assert_non_null(strstr(file, "test_future.c"));
  assert_true(line > 0);
  /* A task's outcome is its body's: set_result on it is refused. */
  assert_int_equal(cor_future_set_result(cor_task_future(t), NULL), -EINVAL);
  cor_release(t);
  loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_result_and_invalid_state),
      cmocka_unit_test(test_callbacks_scheduled_in_order),
      cmocka_unit_test(test_callback_on_done_future),
      cmocka_unit_test(test_run_until_complete),
      cmocka_unit_test(test_fail_records_message_and_site),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
