/* SPDX-License-Identifier: MIT */
/* The API conventions of include/corio/common.h that cut across headers,
 * checked call by call: a NULL loop is the running loop for every call
 * that schedules work on a loop or makes an object there, and an error
 * (logged, -EINVAL / NULL with EINVAL) only when no loop runs. */
#include "testutil.h"

#include <corio.h>

#include "logcap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* Each loop says once, at DEBUG, which back-end its socket streams use. */
static int two_streams(void *arg, void **r) {
  for (int i = 0; i < 2; i++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return -errno;
    cor_stream_t *s = cor_stream_from_fd(NULL, sv[0]);
    if (s == NULL)
      return -errno;
    /* a read makes the back-end show itself */
    char c;
    if (write(sv[1], "y", 1) != 1 || cor_stream_read(s, &c, 1) != 1)
      return -EIO;
    cor_stream_close(s);
    cor_stream_free(s);
    close(sv[1]);
  }
  return 0;
}
static void backend_of(int io_uring, char *out, size_t n) {
  recs_clear();
  cor_log_set_level(COR_LOG_DEBUG);
  cor_loop_opts o = {.io_uring = io_uring};
  cor_loop_t *loop = cor_loop_new(&o);
  cor_task_t *t = cor_create_task(loop, cor_coro(two_streams, NULL), NULL);
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t)), 0);
  assert_int_equal(cor_future_result(cor_task_future(t), NULL), 0);
  cor_release(t);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
  cor_log_set_level(COR_LOG_INFO);
  assert_int_equal(count_recs("socket streams use", NULL, NULL, NULL), 1);
  int i = find("socket streams use", NULL, NULL);
  assert_int_equal(recs[i].level, COR_LOG_DEBUG);
  snprintf(out, n, "%s", recs[i].msg);
  recs_clear();
}
static void test_backend_logged_once(void **s) {
  char msg[256];
  backend_of(-1, msg, sizeof msg);
  assert_non_null(strstr(msg, "socket streams use epoll"));
  backend_of(0, msg, sizeof msg);
  assert_true(strstr(msg, "use io_uring") || strstr(msg, "use epoll"));
}

/* The socket back-end is chosen once per process: CORIO_IO pins it, else a
 * start-up probe of the system call cost (CORIO_IO_SYSCALL_NS stands in for
 * the measurement) picks epoll where calls are cheap, io_uring where they
 * are dear; each loop says which it got, and why. */
int cor__io_backend_auto(void);
void cor__io_backend_reset(void);
static char *env_copy(const char *name) {
  const char *v = getenv(name);
  return v ? strdup(v) : NULL;
}
static void env_restore(const char *name, char *v) {
  if (v)
    setenv(name, v, 1);
  else
    unsetenv(name);
  free(v);
}
static void test_backend_probe(void **s) {
  char *io = env_copy("CORIO_IO"), *ns = env_copy("CORIO_IO_SYSCALL_NS");
  char msg[256];
  unsetenv("CORIO_IO");
  setenv("CORIO_IO_SYSCALL_NS", "50", 1);
  cor__io_backend_reset();
  assert_int_equal(cor__io_backend_auto(), -1);
  backend_of(0, msg, sizeof msg);
  assert_non_null(strstr(msg, "socket streams use epoll (auto: system calls "
                              "are cheap here)"));

  setenv("CORIO_IO_SYSCALL_NS", "5000", 1);
  cor__io_backend_reset();
  assert_int_equal(cor__io_backend_auto(), 1);
  backend_of(0, msg, sizeof msg);
  /* io_uring, unless this kernel refuses a ring */
  assert_true(strstr(msg, "use io_uring (one ring on this thread; auto: "
                          "system calls are dear here)") ||
              strstr(msg, "use epoll (io_uring off for this loop, or "
                          "unavailable)"));

  /* the knobs win over the probe */
  setenv("CORIO_IO", "epoll", 1);
  cor__io_backend_reset();
  assert_int_equal(cor__io_backend_auto(), -1);
  backend_of(0, msg, sizeof msg);
  assert_non_null(strstr(msg, "socket streams use epoll (CORIO_IO=epoll)"));
  setenv("CORIO_IO", "io_uring", 1);
  setenv("CORIO_IO_SYSCALL_NS", "50", 1);
  cor__io_backend_reset();
  assert_int_equal(cor__io_backend_auto(), 1);
  backend_of(0, msg, sizeof msg);
  assert_true(strstr(msg, "(one ring on this thread; CORIO_IO=io_uring)") ||
              strstr(msg, "use epoll (io_uring off for this loop"));

  /* unset: the real probe decides, and says so */
  unsetenv("CORIO_IO");
  unsetenv("CORIO_IO_SYSCALL_NS");
  cor__io_backend_reset();
  int m = cor__io_backend_auto();
  assert_true(m == 1 || m == -1);
  backend_of(0, msg, sizeof msg);
  assert_non_null(strstr(msg, m > 0 ? "dear here" : "cheap here") ||
                  strstr(msg, "unavailable"));

  env_restore("CORIO_IO", io);
  env_restore("CORIO_IO_SYSCALL_NS", ns);
  cor__io_backend_reset();
}

/* Reports name the application's code, not corio's: a server connection's
 * task by its handler, its peer and the start call; cor_run's main task by
 * main and the cor_run call. */
static char dump[65536];
static void dump_now(void) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_true(cor_dump_tasks(p[1]) >= 0);
  close(p[1]);
  ssize_t got = 0, k;
  while ((k = read(p[0], dump + got, sizeof dump - 1 - (size_t)got)) > 0)
    got += k;
  dump[got] = 0;
  close(p[0]);
}
static cor_future_t *gate;
static int slow_handler(void *arg, void **r) { return cor_await(gate, NULL); }
static int client_then_dump(void *arg, void **r) {
  char ps[16];
  snprintf(ps, sizeof ps, "%d", (int)(intptr_t)arg);
  cor_stream_t *s = NULL;
  int rc = cor_open_connection("127.0.0.1", ps, &s);
  if (rc != 0)
    return rc;
  for (int i = 0; i < 20; i++)
    cor_yield();
  dump_now();
  cor_future_set_result(gate, NULL);
  cor_stream_close(s);
  cor_stream_free(s);
  return 0;
}
static int dump_main(void *arg, void **r) {
  gate = cor_future_new(NULL);
  cor_server_t *srv = cor_start_server(NULL, NULL, slow_handler);
  if (srv == NULL)
    return -errno;
  cor_task_t *c = cor_create_task(
      NULL, cor_coro(client_then_dump, (void *)(intptr_t)cor_server_port(srv)),
      "client");
  int rc = cor_await_task(c, NULL);
  cor_release(c);
  cor_server_close(srv);
  cor_server_wait_closed(srv, 5);
  cor_server_free(srv);
  cor_release(gate);
  return rc;
}
static void test_reports_name_the_application(void **s) {
  assert_int_equal(cor_run(dump_main, NULL, NULL), 0);
  if (!strstr(dump, "coro=slow_handler()") || !strstr(dump, "peer=127.0.0.1:") ||
      !strstr(dump, "coro=dump_main() created at tests/test_conventions.c:"))
    print_message("dump:\n%s\n", dump);
  assert_non_null(strstr(dump, "coro=slow_handler() created at tests/test_conventions.c:"));
  assert_non_null(strstr(dump, "peer=127.0.0.1:"));
  assert_non_null(strstr(dump, "coro=dump_main() created at tests/test_conventions.c:"));
  assert_null(strstr(dump, "conn_main"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_null_loop_is_the_running_loop),
      cmocka_unit_test(test_null_loop_without_one),
      cmocka_unit_test(test_backend_logged_once),
      cmocka_unit_test(test_backend_probe),
      cmocka_unit_test(test_reports_name_the_application),
  };
  return cmocka_run_group_tests(tests, logcap_setup, logcap_teardown);
}
