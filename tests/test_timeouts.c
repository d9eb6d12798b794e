/* SPDX-License-Identifier: MIT */
/* The one time-out rule (include/corio/common.h, API.md Conventions), call
 * by call: 0 answers now without waiting, < 0 and INFINITY (COR_FOREVER)
 * mean no limit, NaN is an invalid argument (-EINVAL and one ERROR line). */
#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include <math.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

/* One ERROR record naming `call` and the NaN time-out, then cleared. */
static void expect_nan_logged(const char *call) {
  bool found = false;
  pthread_mutex_lock(&rec_mu);
  for (int i = 0; i < nrec; i++)
    if (recs[i].level == COR_LOG_ERROR && strstr(recs[i].msg, call) &&
        strstr(recs[i].msg, "NaN"))
      found = true;
  nrec = 0;
  pthread_mutex_unlock(&rec_mu);
  if (!found)
    print_message("no ERROR record naming %s and NaN\n", call);
  assert_true(found);
}

static int body_sleep(void *arg, void **r) {
  int rc = cor_sleep(*(double *)arg);
  *r = (void *)5;
  return rc;
}

static int wait_for_main(void *arg, void **res) {
  /* 0 on a pending future: expires at once (the future cancelled, its
   * clean-up awaited: it is done when wait_for returns). */
  double long_sleep = 10, short_sleep = 0.001;
  cor_task_t *t = cor_create_task(NULL, cor_coro(body_sleep, &long_sleep), NULL);
  double t0 = cor_loop_time(cor_get_running_loop());
  assert_int_equal(cor_wait_for(cor_task_future(t), 0, NULL), -ETIMEDOUT);
  assert_true(cor_future_done(cor_task_future(t)));
  assert_true(cor_future_cancelled(cor_task_future(t)));
  assert_true(cor_loop_time(cor_get_running_loop()) - t0 < 5);
  assert_int_equal(cor_task_cancelling(cor_current_task()), 0);
  cor_release(t);
  /* 0 on a done future: its result. */
  cor_future_t *f = cor_future_new(NULL);
  cor_future_set_result(f, (void *)9);
  void *v = NULL;
  assert_int_equal(cor_wait_for(f, 0, &v), 0);
  assert_ptr_equal(v, (void *)9);
  cor_release(f);
  /* < 0 and COR_FOREVER: no limit. */
  double lims[] = {-1, COR_FOREVER};
  for (int i = 0; i < 2; i++) {
    t = cor_create_task(NULL, cor_coro(body_sleep, &short_sleep), NULL);
    v = NULL;
    assert_int_equal(cor_wait_for(cor_task_future(t), lims[i], &v), 0);
    assert_ptr_equal(v, (void *)5);
    cor_release(t);
  }
  /* NaN: invalid, and the future is left alone. */
  t = cor_create_task(NULL, cor_coro(body_sleep, &short_sleep), NULL);
  assert_int_equal(cor_wait_for(cor_task_future(t), NAN, NULL), -EINVAL);
  expect_nan_logged("cor_wait_for");
  assert_false(cor_future_done(cor_task_future(t)));
  assert_int_equal(cor_await(cor_task_future(t), NULL), 0);
  cor_release(t);
  return 0;
}

static void test_wait_for(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  assert_int_equal(cor_run(wait_for_main, NULL, NULL), 0);
  cor_log_set_sink(NULL, NULL);
}

static int process_main(void *arg, void **res) {
  const char *argv[] = {"sleep", "10", NULL};
  cor_process_t *p;
  assert_int_equal(cor_subprocess_exec(argv, NULL, &p), 0);
  int st = 0;
  /* 0 = do not wait (it used to mean no limit). */
  assert_int_equal(cor_process_wait(p, 0, &st), -ETIMEDOUT);
  assert_int_equal(cor_process_wait(p, NAN, &st), -EINVAL);
  expect_nan_logged("cor_process_wait");
  assert_int_equal(cor_process_kill(p, SIGKILL), 0);
  /* < 0: no limit; then 0 on an exited child answers at once. */
  assert_int_equal(cor_process_wait(p, -1, &st), 0);
  assert_int_equal(st, -SIGKILL);
  assert_int_equal(cor_process_wait(p, 0, &st), 0);
  cor_process_free(p);
  return 0;
}

static void test_process_wait(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  assert_int_equal(cor_run(process_main, NULL, NULL), 0);
  cor_log_set_sink(NULL, NULL);
}

static int datagram_main(void *arg, void **res) {
  cor_datagram_opts so = {.local_host = "127.0.0.1"};
  cor_datagram_t *srv = cor_open_datagram(NULL, &so);
  assert_non_null(srv);
  cor_datagram_opts co = {.remote_host = "127.0.0.1",
                          .remote_port = cor_datagram_port(srv)};
  cor_datagram_t *cl = cor_open_datagram(NULL, &co);
  assert_non_null(cl);
  char buf[16];
  /* Nothing queued: 0 answers at once. */
  assert_int_equal(cor_datagram_recv(srv, buf, sizeof buf, NULL, NULL, 0),
                   -ETIMEDOUT);
  assert_int_equal(cor_datagram_recv(srv, buf, sizeof buf, NULL, NULL, NAN),
                   -EINVAL);
  expect_nan_logged("cor_datagram_recv");
  /* A datagram already queued: 0 takes it, without waiting for the loop to
   * report readiness. */
  assert_int_equal(cor_datagram_send(cl, "ping", 4, NULL, 0), 0);
  usleep(10000); /* loopback delivery is synchronous; be generous */
  assert_int_equal(cor_datagram_recv(srv, buf, sizeof buf, NULL, NULL, 0), 4);
  assert_memory_equal(buf, "ping", 4);
  /* < 0: no limit (the datagram comes). */
  assert_int_equal(cor_datagram_send(cl, "pong", 4, NULL, 0), 0);
  assert_int_equal(cor_datagram_recv(srv, buf, sizeof buf, NULL, NULL, -1), 4);
  cor_datagram_close(cl);
  cor_datagram_close(srv);
  cor_datagram_free(cl);
  cor_datagram_free(srv);
  return 0;
}

static void test_datagram_recv(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  assert_int_equal(cor_run(datagram_main, NULL, NULL), 0);
  cor_log_set_sink(NULL, NULL);
}

static int connect_main(void *arg, void **res) {
  cor_connect_opts o = {.timeout = NAN};
  cor_stream_t *s = NULL;
  assert_int_equal(cor_open_connection_opts("127.0.0.1", "9", &o, &s), -EINVAL);
  expect_nan_logged("cor_open_connection_opts");
  assert_null(s);
  return 0;
}

static void test_connect_timeout_nan(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  assert_int_equal(cor_run(connect_main, NULL, NULL), 0);
  cor_log_set_sink(NULL, NULL);
}

static int never(void *arg, void **r) { return cor_sleep(30); }

static void test_cfuture_and_runtime(void **state) {
  (void)state;
  cor_log_set_sink(sink, NULL);
  cor_runtime_opts ro = {.nloops = 1};
  cor_runtime_t *rt = cor_runtime_new(&ro);
  assert_non_null(rt);
  cor_cfuture_t *cf =
      cor_run_coroutine_threadsafe(cor_coro(never, NULL), cor_runtime_loop(rt, 0));
  assert_non_null(cf);
  assert_int_equal(cor_cfuture_result(cf, 0, NULL), -ETIMEDOUT);
  assert_int_equal(cor_cfuture_result(cf, NAN, NULL), -EINVAL);
  expect_nan_logged("cor_cfuture_result");
  assert_int_equal(cor_runtime_shutdown(rt, NAN), -EINVAL);
  expect_nan_logged("cor_runtime_shutdown");
  /* < 0: no limit; the task is cancelled by the shutdown. */
  assert_int_equal(cor_runtime_shutdown(rt, -1), 0);
  assert_int_equal(cor_cfuture_result(cf, COR_FOREVER, NULL), -ECANCELED);
  cor_release(cf);
  cor_release(rt);
  cor_log_set_sink(NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wait_for),
      cmocka_unit_test(test_process_wait),
      cmocka_unit_test(test_datagram_recv),
      cmocka_unit_test(test_connect_timeout_nan),
      cmocka_unit_test(test_cfuture_and_runtime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
