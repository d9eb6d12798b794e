/* SPDX-License-Identifier: MIT */
/* Tasks: scheduling, await, sleep, names, coroutine consumption, the seeds'
 * chain-coroutines example (buggy and fixed, order asserted), cancellation
 * in every state, wait_for, shield, gather, task groups, cor_run, a stack
 * overflow's clean crash message, and 10,000 tasks on their own stacks. */
#include "testutil.h"

#include <corio.h>

#include "task/task_internal.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static cor_loop_t *loop_new(void) {
  cor_loop_t *loop = cor_loop_new(NULL);
  assert_non_null(loop);
  return loop;
}
static void loop_free(cor_loop_t *loop) {
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}
static int run_task(cor_loop_t *loop, cor_task_t *t) {
  return cor_loop_run_until_complete(loop, cor_task_future(t));
}

/* Lines "printed" by the examples, and log records, captured in order. */
static char lines[32][256];
static int nlines;
static void say(const char *s) {
  assert_true(nlines < 32);
  snprintf(lines[nlines++], sizeof lines[0], "%s", s);
}
static void log_sink(void *arg, int level, const char *logger,
                     const char *msg) {
  (void)arg;
  (void)level;
  (void)logger;
  if (nlines < 32)
    snprintf(lines[nlines++], sizeof lines[0], "LOG %s", msg);
}
static bool logged(const char *needle) {
  for (int i = 0; i < nlines; i++)
    if (strncmp(lines[i], "LOG ", 4) == 0 && strstr(lines[i], needle))
      return true;
  return false;
}
static int setup(void **state) {
  (void)state;
  nlines = 0;
  cor_log_set_sink(log_sink, NULL);
  return 0;
}
static int teardown(void **state) {
  (void)state;
  cor_log_set_sink(NULL, NULL);
  return 0;
}

/* ------------------------------------------------------------ basics */

static int ret_arg(void *arg, void **result) {
  *result = arg;
  return 0;
}

static void test_create_and_result(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_task_t *t = cor_create_task(loop, cor_coro(ret_arg, (void *)5), NULL);
  assert_non_null(t);
  assert_int_equal(strncmp(cor_task_name(t), "Task-", 5), 0);
  cor_task_t *u = cor_create_task(loop, cor_coro(ret_arg, (void *)6), "named");
  assert_string_equal(cor_task_name(u), "named");
  assert_int_equal(cor_all_tasks(loop, NULL, 0), 2);
  assert_false(cor_future_done(cor_task_future(t)));
  assert_int_equal(run_task(loop, u), 0);
  assert_int_equal(cor_all_tasks(loop, NULL, 0), 0);
  void *v;
  assert_int_equal(cor_future_result(cor_task_future(t), &v), 0);
  assert_ptr_equal(v, (void *)5);
  cor_release(t);
  cor_release(u);
  loop_free(loop);
}

static void test_outside_task(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_future_t *f = cor_future_new(loop);
  assert_int_equal(cor_await(f, NULL), COR_ENOTASK);
  assert_int_equal(cor_sleep(0.1), COR_ENOTASK);
  assert_int_equal(cor_yield(), COR_ENOTASK);
  assert_int_equal(cor_wait_for(f, 1, NULL), COR_ENOTASK);
  assert_int_equal(cor_gather(&f, 1, NULL, NULL), COR_ENOTASK);
  assert_null(cor_current_task());
  assert_null(cor_taskgroup_new());
  assert_int_equal(cor_await_coro(cor_coro(ret_arg, NULL), NULL), COR_ENOTASK);
  cor_release(f);
  loop_free(loop);
}

static void test_coro_consumed_twice(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_coro_t *c = cor_coro(ret_arg, NULL);
  cor_task_t *t = cor_create_task(loop, c, NULL);
  assert_non_null(t);
  errno = 0;
  assert_null(cor_create_task(loop, c, NULL));
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cor_await_coro(c, NULL), -EINVAL);
  assert_int_equal(cor_coro_close(c), -EINVAL);
  cor_coro_t *d = cor_coro(ret_arg, NULL);
  assert_int_equal(cor_coro_close(d), 0);
  assert_null(cor_create_task(loop, d, NULL));
  assert_int_equal(run_task(loop, t), 0);
  cor_release(t);
  loop_free(loop);
}

/* ------------------------------------------------------------ chain */

/* The seeds' "Chain coroutines correctly", times scaled by 1/100. */
static int ch_create(void *arg, void **r) {
  int rc = cor_sleep(0.03);
  if (rc)
    return rc;
  say("(1) create file");
  return 0;
}
static int ch_write(void *arg, void **r) {
  int rc = cor_sleep(0.01);
  if (rc)
    return rc;
  say("(2) write into file");
  return 0;
}
static int ch_close(void *arg, void **r) {
  say("(3) close file");
  return 0;
}
static int ch_test_buggy(void *arg, void **r) {
  cor_loop_t *loop = cor_get_running_loop();
  cor_release(cor_create_task(NULL, cor_coro(ch_create, NULL), NULL));
  cor_release(cor_create_task(NULL, cor_coro(ch_write, NULL), NULL));
  cor_release(cor_create_task(NULL, cor_coro(ch_close, NULL), NULL));
  cor_sleep(0.02);
  cor_loop_stop(loop);
  return 0;
}
static int ch_test_tasks(void *arg, void **r) {
  cor_loop_t *loop = cor_get_running_loop();
  cor_fn fns[3] = {ch_create, ch_write, ch_close};
  for (int i = 0; i < 3; i++) {
    cor_task_t *t = cor_create_task(NULL, cor_coro_new_at(fns[i], NULL, "f",
                                                         __FILE__, __LINE__),
                                    NULL);
    int rc = cor_await_task(t, NULL);
    cor_release(t);
    if (rc)
      return rc;
  }
  cor_sleep(0.02);
  cor_loop_stop(loop);
  return 0;
}
static int ch_test_coros(void *arg, void **r) {
  cor_loop_t *loop = cor_get_running_loop();
  int rc;
  if ((rc = cor_await_coro(cor_coro(ch_create, NULL), NULL)) ||
      (rc = cor_await_coro(cor_coro(ch_write, NULL), NULL)) ||
      (rc = cor_await_coro(cor_coro(ch_close, NULL), NULL)))
    return rc;
  cor_sleep(0.02);
  cor_loop_stop(loop);
  return 0;
}

static void run_chain(cor_fn test, const char *const *expect, int nexpect,
                      size_t pending_at_exit) {
  nlines = 0;
  cor_loop_t *loop = loop_new();
  cor_release(cor_create_task(loop, cor_coro_new_at(test, NULL, "test",
                                                    __FILE__, __LINE__),
                              NULL));
  assert_int_equal(cor_loop_run_forever(loop), 0);
  cor_task_t *pend[4];
  size_t n = cor_all_tasks(loop, pend, 4);
  assert_int_equal(n, pending_at_exit);
  for (size_t i = 0; i < n && i < 4; i++) {
    assert_string_equal(cor_task_future(pend[i])->is_task ? pend[i]->fn_name
                                                          : "",
                        "ch_create");
    cor_release(pend[i]);
  }
  loop_free(loop);
  for (int i = 0; i < nexpect; i++) {
    assert_true(i < nlines);
    if (expect[i][0] == '~')
      assert_non_null(strstr(lines[i], expect[i] + 1));
    else
      assert_string_equal(lines[i], expect[i]);
  }
  assert_int_equal(nlines, nexpect);
}

static void test_chain_buggy(void **state) {
  (void)state;
  /* "Actual output": close runs first, write next, create never finishes
   * and is destroyed pending when the loop closes. */
  static const char *const expect[] = {
      "(3) close file", "(2) write into file",
      "~Task was destroyed but it is pending!"};
  run_chain(ch_test_buggy, expect, 3, 1);
  assert_true(logged("coro=<ch_create()"));
}

static void test_chain_fixed(void **state) {
  (void)state;
  static const char *const expect[] = {"(1) create file",
                                       "(2) write into file", "(3) close file"};
  run_chain(ch_test_tasks, expect, 3, 0);
  run_chain(ch_test_coros, expect, 3, 0);
}

/* ------------------------------------------------------------ scheduling */

static int yielder(void *arg, void **r) {
  for (int i = 0; i < 3; i++) {
    say((const char *)arg);
    assert_int_equal(cor_yield(), 0);
  }
  return 0;
}

static void test_yield_round_robin(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_task_t *a = cor_create_task(loop, cor_coro(yielder, "a"), NULL);
  cor_task_t *b = cor_create_task(loop, cor_coro(yielder, "b"), NULL);
  assert_int_equal(run_task(loop, b), 0);
  assert_int_equal(nlines, 6);
  for (int i = 0; i < 6; i++)
    assert_string_equal(lines[i], i % 2 ? "b" : "a");
  cor_release(a);
  cor_release(b);
  loop_free(loop);
}

static int self_await(void *arg, void **r) {
  return cor_await(cor_task_future(cor_current_task()), NULL);
}

static int awaits_other_loop(void *arg, void **r) {
  return cor_await(arg, NULL);
}

static void test_await_invalid(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new(), *other = loop_new();
  cor_task_t *t = cor_create_task(loop, cor_coro(self_await, NULL), NULL);
  assert_int_equal(run_task(loop, t), -EINVAL);
  cor_release(t);
  cor_future_t *f = cor_future_new(other);
  t = cor_create_task(loop, cor_coro(awaits_other_loop, f), NULL);
  assert_int_equal(run_task(loop, t), -EINVAL);
  cor_release(t);
  /* Refused even when done, as asyncio's task refuses it: its result is
   * another loop's to hand out. */
  assert_int_equal(cor_future_set_result(f, (void *)1), 0);
  t = cor_create_task(loop, cor_coro(awaits_other_loop, f), NULL);
  assert_int_equal(run_task(loop, t), -EINVAL);
  cor_release(t);
  cor_release(f);
  loop_free(other);
  loop_free(loop);
}

/* ------------------------------------------------------------ cancelling */

typedef struct {
  int first_rc;   /* what the first suspension returned */
  bool started, cleaned;
  double sleep;
  cor_future_t *fut;
  cor_task_t *other;
  int ret_on_cancel; /* what the body returns once cancelled */
} cx;

static int cx_body(void *arg, void **r) {
  cx *c = arg;
  c->started = true;
  int rc;
  if (c->fut)
    rc = cor_await(c->fut, NULL);
  else if (c->other)
    rc = cor_await_task(c->other, NULL);
  else
    rc = cor_sleep(c->sleep);
  c->first_rc = rc;
  if (rc == -ECANCELED) {
    c->cleaned = true;
    return c->ret_on_cancel;
  }
  return rc;
}

static void test_cancel_before_start(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cx c = {.sleep = 10, .ret_on_cancel = -ECANCELED};
  cor_task_t *t = cor_create_task(loop, cor_coro(cx_body, &c), NULL);
  assert_int_equal(cor_task_cancel(t, "early"), 0);
  assert_int_equal(cor_task_cancelling(t), 1);
  assert_int_equal(run_task(loop, t), -ECANCELED);
  /* The body ran (it owns its argument) and saw -ECANCELED at once. */
  assert_true(c.started);
  assert_int_equal(c.first_rc, -ECANCELED);
  assert_true(cor_future_cancelled(cor_task_future(t)));
  assert_string_equal(cor_future_message(cor_task_future(t)), "early");
  /* Done: cancelling again is refused. */
  assert_int_equal(cor_task_cancel(t, NULL), -EINVAL);
  cor_release(t);
  loop_free(loop);
}

static int cancel_then_check(void *arg, void **r) {
  cx *c = arg;
  if (c->other)
    cor_task_cancel(c->other, NULL);
  if (c->sleep > 0)
    cor_sleep(c->sleep);
  return 0;
}

static void test_cancel_while_awaiting_timer(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cx c = {.sleep = 10, .ret_on_cancel = 0};
  cor_task_t *t = cor_create_task(loop, cor_coro(cx_body, &c), NULL);
  cx k = {.other = t, .sleep = 0.01};
  cor_task_t *killer = cor_create_task(loop, cor_coro(cancel_then_check, &k), NULL);
  double t0 = cor_loop_time(loop);
  /* The task catches the cancellation, cleans up and returns normally. */
  assert_int_equal(run_task(loop, t), 0);
  assert_true(cor_loop_time(loop) - t0 < 5);
  assert_true(c.cleaned);
  assert_false(cor_future_cancelled(cor_task_future(t)));
  assert_int_equal(cor_task_cancelling(t), 1);
  assert_int_equal(run_task(loop, killer), 0);
  cor_release(t);
  cor_release(killer);
  loop_free(loop);
}

static void test_cancel_while_awaiting_task(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cx inner = {.sleep = 10, .ret_on_cancel = -ECANCELED};
  cor_task_t *ti = cor_create_task(loop, cor_coro(cx_body, &inner), "inner");
  cx outer = {.other = ti, .ret_on_cancel = -ECANCELED};
  cor_task_t *to = cor_create_task(loop, cor_coro(cx_body, &outer), "outer");
  cx k = {.other = to, .sleep = 0.01};
  cor_task_t *killer = cor_create_task(loop, cor_coro(cancel_then_check, &k), NULL);
  assert_int_equal(run_task(loop, to), -ECANCELED);
  /* The cancellation went through to the awaited task. */
  assert_true(cor_future_cancelled(cor_task_future(ti)));
  assert_true(inner.cleaned && outer.cleaned);
  assert_int_equal(run_task(loop, killer), 0);
  cor_release(ti);
  cor_release(to);
  cor_release(killer);
  loop_free(loop);
}

static int slow_value(void *arg, void **r) {
  int rc = cor_sleep(0.03);
  *r = arg;
  return rc;
}

static void test_cancel_while_awaiting_shield(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_task_t *work = cor_create_task(loop, cor_coro(slow_value, (void *)11), "work");
  cor_future_t *sh = cor_shield(cor_task_future(work));
  assert_non_null(sh);
  cx w = {.fut = sh, .ret_on_cancel = -ECANCELED};
  cor_task_t *waiter = cor_create_task(loop, cor_coro(cx_body, &w), "waiter");
  cx k = {.other = waiter, .sleep = 0.005};
  cor_task_t *killer = cor_create_task(loop, cor_coro(cancel_then_check, &k), NULL);
  assert_int_equal(run_task(loop, waiter), -ECANCELED);
  assert_true(cor_future_cancelled(sh));
  /* The shielded work goes on and completes. */
  assert_false(cor_future_done(cor_task_future(work)));
  void *v;
  assert_int_equal(run_task(loop, work), 0);
  assert_int_equal(cor_future_result(cor_task_future(work), &v), 0);
  assert_ptr_equal(v, (void *)11);
  assert_int_equal(run_task(loop, killer), 0);
  cor_release(sh);
  cor_release(work);
  cor_release(waiter);
  cor_release(killer);

  /* Not cancelled: the shield passes the result through. */
  work = cor_create_task(loop, cor_coro(slow_value, (void *)12), NULL);
  sh = cor_shield(cor_task_future(work));
  assert_int_equal(cor_loop_run_until_complete(loop, sh), 0);
  assert_int_equal(cor_future_result(sh, &v), 0);
  assert_ptr_equal(v, (void *)12);
  cor_release(sh);
  cor_release(work);
  loop_free(loop);
}

static void test_cancel_while_awaiting_future(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_future_t *f = cor_future_new(loop);
  cx c = {.fut = f, .ret_on_cancel = -ECANCELED};
  cor_task_t *t = cor_create_task(loop, cor_coro(cx_body, &c), NULL);
  cx k = {.other = t, .sleep = 0.005};
  cor_task_t *killer = cor_create_task(loop, cor_coro(cancel_then_check, &k), NULL);
  assert_int_equal(run_task(loop, t), -ECANCELED);
  assert_true(cor_future_cancelled(f)); /* passed on to the awaited future */
  assert_int_equal(cor_future_set_result(f, NULL), -EINVAL);
  assert_int_equal(run_task(loop, killer), 0);
  cor_release(f);
  cor_release(t);
  cor_release(killer);
  loop_free(loop);
}

static int self_cancel(void *arg, void **r) {
  cor_task_t *me = cor_current_task();
  assert_int_equal(cor_task_cancel(me, "myself"), 0); /* running */
  int rc = cor_yield();
  assert_int_equal(rc, -ECANCELED);
  /* Cancel, then withdraw it: the request is dropped. */
  assert_int_equal(cor_task_cancel(me, NULL), 0);
  assert_int_equal(cor_task_cancel(me, NULL), 0);
  assert_int_equal(cor_task_cancelling(me), 3);
  assert_int_equal(cor_task_uncancel(me), 2);
  assert_int_equal(cor_task_uncancel(me), 1);
  assert_int_equal(cor_task_uncancel(me), 0);
  assert_int_equal(cor_yield(), 0);
  /* A request right before returning turns the result into cancelled. */
  cor_task_cancel(me, NULL);
  return 0;
}

static void test_cancel_running_and_uncancel(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_task_t *t = cor_create_task(loop, cor_coro(self_cancel, NULL), NULL);
  assert_int_equal(run_task(loop, t), -ECANCELED);
  assert_true(cor_future_cancelled(cor_task_future(t)));
  cor_release(t);
  loop_free(loop);
}

/* ------------------------------------------------------------ wait_for */

static int stubborn(void *arg, void **r) {
  cx *c = arg;
  int rc = cor_sleep(c->sleep);
  if (rc == -ECANCELED) {
    cor_sleep(0.005); /* clean-up that takes time; wait_for waits for it */
    c->cleaned = true;
    return -ECANCELED;
  }
  *r = (void *)77;
  return rc;
}

typedef struct {
  cx *inner;
  double timeout;
  int rc;
  void *res;
  bool inner_done_at_return;
} wf;

static int wf_body(void *arg, void **r) {
  wf *w = arg;
  cor_task_t *t = cor_create_task(NULL, cor_coro(stubborn, w->inner), NULL);
  w->rc = cor_wait_for(cor_task_future(t), w->timeout, &w->res);
  w->inner_done_at_return = cor_future_done(cor_task_future(t));
  cor_release(t);
  return w->rc;
}

static void test_wait_for(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  /* Expires: the inner task is cancelled and its clean-up awaited. */
  cx in1 = {.sleep = 10};
  wf w1 = {.inner = &in1, .timeout = 0.01};
  cor_task_t *t = cor_create_task(loop, cor_coro(wf_body, &w1), NULL);
  assert_int_equal(run_task(loop, t), -ETIMEDOUT);
  assert_true(in1.cleaned);
  assert_true(w1.inner_done_at_return);
  assert_int_equal(cor_task_cancelling(t), 0); /* its own cancel withdrawn */
  cor_release(t);
  /* Does not expire. */
  cx in2 = {.sleep = 0.001};
  wf w2 = {.inner = &in2, .timeout = 5};
  t = cor_create_task(loop, cor_coro(wf_body, &w2), NULL);
  assert_int_equal(run_task(loop, t), 0);
  assert_ptr_equal(w2.res, (void *)77);
  assert_false(in2.cleaned);
  cor_release(t);
  /* Infinite time-out. */
  cx in3 = {.sleep = 0.001};
  wf w3 = {.inner = &in3, .timeout = INFINITY};
  t = cor_create_task(loop, cor_coro(wf_body, &w3), NULL);
  assert_int_equal(run_task(loop, t), 0);
  cor_release(t);
  /* The waiting task cancelled from outside: -ECANCELED, not a time-out. */
  cx in4 = {.sleep = 10};
  wf w4 = {.inner = &in4, .timeout = 5};
  t = cor_create_task(loop, cor_coro(wf_body, &w4), NULL);
  cx k = {.other = t, .sleep = 0.005};
  cor_task_t *killer = cor_create_task(loop, cor_coro(cancel_then_check, &k), NULL);
  assert_int_equal(run_task(loop, t), -ECANCELED);
  assert_int_equal(w4.rc, -ECANCELED);
  assert_true(in4.cleaned);
  assert_int_equal(run_task(loop, killer), 0);
  cor_release(killer);
  cor_release(t);
  loop_free(loop);
}

/* ------------------------------------------------------------ gather */

static int child_fail(void *arg, void **r) {
  cor_sleep(0.002);
  return cor_fail(-EPROTO, "child %d failed", (int)(intptr_t)arg);
}
static int child_cancelled(void *arg, void **r) {
  cor_task_cancel(cor_current_task(), NULL);
  return cor_sleep(1);
}

typedef struct {
  int codes[4];
  void *results[4];
  int rc;
  cor_task_t *kids[4];
  cx cxs[4];
} gth;

static int gather_body(void *arg, void **r) {
  gth *g = arg;
  cor_future_t *fs[4];
  for (int i = 0; i < 4; i++)
    fs[i] = cor_task_future(g->kids[i]);
  g->rc = cor_gather(fs, 4, g->codes, g->results);
  return g->rc;
}

static void test_gather_failures(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  gth g = {0};
  g.kids[0] = cor_create_task(loop, cor_coro(slow_value, (void *)1), NULL);
  g.kids[1] = cor_create_task(loop, cor_coro(child_fail, (void *)2), NULL);
  g.kids[2] = cor_create_task(loop, cor_coro(child_cancelled, NULL), NULL);
  g.kids[3] = cor_create_task(loop, cor_coro(ret_arg, (void *)4), NULL);
  cor_task_t *t = cor_create_task(loop, cor_coro(gather_body, &g), NULL);
  assert_int_equal(run_task(loop, t), 0);
  assert_int_equal(g.codes[0], 0);
  assert_ptr_equal(g.results[0], (void *)1);
  assert_int_equal(g.codes[1], -EPROTO);
  assert_string_equal(cor_future_message(cor_task_future(g.kids[1])),
                      "child 2 failed");
  assert_int_equal(g.codes[2], -ECANCELED);
  assert_int_equal(g.codes[3], 0);
  assert_ptr_equal(g.results[3], (void *)4);
  for (int i = 0; i < 4; i++)
    cor_release(g.kids[i]);
  cor_release(t);
  loop_free(loop);
  assert_false(logged("never retrieved")); /* gather retrieved them */
}

static void test_gather_cancelled(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  gth g = {0};
  for (int i = 0; i < 4; i++) {
    g.cxs[i] = (cx){.sleep = 10, .ret_on_cancel = -ECANCELED};
    g.kids[i] = cor_create_task(loop, cor_coro(cx_body, &g.cxs[i]), NULL);
  }
  cor_task_t *t = cor_create_task(loop, cor_coro(gather_body, &g), NULL);
  cx k = {.other = t, .sleep = 0.005};
  cor_task_t *killer = cor_create_task(loop, cor_coro(cancel_then_check, &k), NULL);
  assert_int_equal(run_task(loop, t), -ECANCELED);
  for (int i = 0; i < 4; i++) {
    assert_true(g.cxs[i].cleaned); /* every child cancelled, and awaited */
    assert_true(cor_future_cancelled(cor_task_future(g.kids[i])));
    assert_int_equal(g.codes[i], -ECANCELED);
    cor_release(g.kids[i]);
  }
  assert_int_equal(run_task(loop, killer), 0);
  cor_release(killer);
  cor_release(t);
  loop_free(loop);
}

/* ------------------------------------------------------------ task groups */

typedef struct {
  cx sleepers[3];
  int body_rc, wait_rc, cancelling_after;
  double body_sleep;
  bool fail;
} tgs;

static int tg_body(void *arg, void **r) {
  tgs *s = arg;
  cor_taskgroup_t *g = cor_taskgroup_new();
  assert_non_null(g);
  for (int i = 0; i < 3; i++) {
    s->sleepers[i] = (cx){.sleep = i == 0 ? 0.001 : 10,
                          .ret_on_cancel = -ECANCELED};
    cor_release(cor_taskgroup_spawn(g, cor_coro(cx_body, &s->sleepers[i]), NULL));
  }
  if (s->fail)
    cor_release(cor_taskgroup_spawn(g, cor_coro(child_fail, (void *)9), "bad"));
  if (s->body_sleep > 0)
    s->body_rc = cor_sleep(s->body_sleep);
  s->wait_rc = cor_taskgroup_wait(g);
  s->cancelling_after = cor_task_cancelling(cor_current_task());
  return s->wait_rc;
}

static void test_taskgroup_failure(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  /* The parent waits at once. */
  tgs s = {.fail = true};
  cor_task_t *t = cor_create_task(loop, cor_coro(tg_body, &s), NULL);
  assert_int_equal(run_task(loop, t), -EPROTO);
  assert_string_equal(cor_future_message(cor_task_future(t)), "child 9 failed");
  assert_int_equal(s.sleepers[0].first_rc, 0); /* finished before */
  assert_true(s.sleepers[1].cleaned && s.sleepers[2].cleaned);
  cor_release(t);
  /* The parent is still in the body: the failure interrupts it, and wait
   * withdraws that cancellation. */
  tgs s2 = {.fail = true, .body_sleep = 10};
  t = cor_create_task(loop, cor_coro(tg_body, &s2), NULL);
  double t0 = cor_loop_time(loop);
  assert_int_equal(run_task(loop, t), -EPROTO);
  assert_true(cor_loop_time(loop) - t0 < 5);
  assert_int_equal(s2.body_rc, -ECANCELED);
  assert_int_equal(s2.cancelling_after, 0);
  assert_true(s2.sleepers[1].cleaned && s2.sleepers[2].cleaned);
  cor_release(t);
  loop_free(loop);
  assert_false(logged("never retrieved"));
}

static int quick(void *arg, void **r) { return cor_sleep(0.001); }
static int tg_ok(void *arg, void **r) {
  cor_taskgroup_t *g = cor_taskgroup_new();
  cor_task_t *k[5];
  for (int i = 0; i < 5; i++)
    k[i] = cor_taskgroup_spawn(g, cor_coro(quick, NULL), NULL);
  int rc = cor_taskgroup_wait(g);
  for (int i = 0; i < 5; i++) {
    assert_true(cor_future_done(cor_task_future(k[i]))); /* none outlives */
    cor_release(k[i]);
  }
  return rc;
}

static void test_taskgroup_ok_and_outside_cancel(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cor_task_t *t = cor_create_task(loop, cor_coro(tg_ok, NULL), NULL);
  assert_int_equal(run_task(loop, t), 0);
  cor_release(t);
  /* Cancelled from outside while waiting: children cancelled, -ECANCELED. */
  tgs s = {0};
  t = cor_create_task(loop, cor_coro(tg_body, &s), NULL);
  cx k = {.other = t, .sleep = 0.005};
  cor_task_t *killer = cor_create_task(loop, cor_coro(cancel_then_check, &k), NULL);
  assert_int_equal(run_task(loop, t), -ECANCELED);
  assert_true(s.sleepers[1].cleaned && s.sleepers[2].cleaned);
  assert_int_equal(run_task(loop, killer), 0);
  cor_release(killer);
  cor_release(t);
  loop_free(loop);
}

/* ------------------------------------------------------------ cor_run */

static bool bg_cleaned;
static int background(void *arg, void **r) {
  int rc = cor_sleep(100);
  if (rc == -ECANCELED)
    bg_cleaned = true;
  return rc;
}
static int run_main(void *arg, void **r) {
  cor_release(cor_create_task(NULL, cor_coro(background, NULL), "bg"));
  /* A coroutine made and never used is reported at close. */
  cor_coro(ret_arg, NULL);
  assert_int_equal(cor_run(run_main, NULL, NULL), -EBUSY);
  cor_sleep(0.001);
  *r = (void *)123;
  return 0;
}

static void test_cor_run(void **state) {
  (void)state;
  void *res = NULL;
  cor_run_opts o = {.result = &res, .stack_size = 32 * 1024};
  bg_cleaned = false;
  assert_int_equal(cor_run(run_main, NULL, &o), 0);
  assert_ptr_equal(res, (void *)123);
  assert_true(bg_cleaned);
  assert_false(logged("destroyed but it is pending"));
  assert_true(logged("coroutine 'ret_arg' was never awaited"));
  assert_int_equal(cor_run(child_fail, (void *)1, NULL), -EPROTO);
}

/* ------------------------------------------------------------ stacks */

static int recurse(int depth) {
  volatile char buf[512];
  buf[0] = (char)depth;
  if (depth > 1000000)
    return buf[0];
  return recurse(depth + 1) + buf[0];
}
static int overflow_body(void *arg, void **r) { return recurse(0); }
static int overflow_main(void *arg, void **r) {
  cor_task_t *t = cor_create_task(NULL, cor_coro(overflow_body, NULL), "deep");
  return cor_await_task(t, NULL);
}

static void test_stack_overflow_message(void **state) {
  (void)state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 2);
    close(p[0]);
    cor_run_opts o = {.stack_size = 64 * 1024};
    cor_run(overflow_main, NULL, &o);
    _exit(0); /* not reached */
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
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGABRT);
  char want[128];
  snprintf(want, sizeof want,
           "corio: stack overflow in task 'deep' (stack size %zu bytes); "
           "raise it with cor_loop_set_task_stack_size",
           (size_t)64 * 1024);
  if (strstr(buf, want) == NULL)
    fail_msg("child stderr: %s", buf);
}

typedef struct {
  cor_future_t *gate;
  char *sp;
  int rc;
} idle;

static int idle_body(void *arg, void **r) {
  idle *s = arg;
  volatile char here;
  s->sp = (char *)&here;
  s->rc = cor_await(s->gate, NULL);
  return 0;
}

static int cmp_ptr(const void *a, const void *b) {
  char *x = *(char *const *)a, *y = *(char *const *)b;
  return x < y ? -1 : x > y;
}

static void test_many_tasks_own_stacks(void **state) {
  (void)state;
  /* Full count under ASan too; under TSan each task's stack has a TSan
   * fiber, a whole ThreadState of several MiB, and 10,000 of them exhaust
   * TSan's internal allocator: 1,000 there. */
#if defined(__SANITIZE_THREAD__)
  long n = 1000;
#else
  long n = test_scale(10000, 10000);
#endif
  cor_loop_t *loop = loop_new();
  cor_future_t *gate = cor_future_new(loop);
  idle *s = calloc((size_t)n, sizeof *s);
  cor_task_t **ts = calloc((size_t)n, sizeof *ts);
  for (long i = 0; i < n; i++) {
    s[i].gate = gate;
    ts[i] = cor_create_task(loop, cor_coro(idle_body, &s[i]), NULL);
    assert_non_null(ts[i]);
  }
  /* Let all of them start and block. */
  assert_int_equal(cor_loop_stop(loop), 0);
  assert_int_equal(cor_loop_run_forever(loop), 0);
  assert_int_equal(cor_all_tasks(loop, NULL, 0), (size_t)n);
  /* Each on its own stack: frames at least a stack's size apart. */
  char **sps = calloc((size_t)n, sizeof *sps);
  for (long i = 0; i < n; i++)
    sps[i] = s[i].sp;
  qsort(sps, (size_t)n, sizeof *sps, cmp_ptr);
  size_t sz = cor_loop_get_task_stack_size(loop);
  for (long i = 1; i < n; i++)
    assert_true((size_t)(sps[i] - sps[i - 1]) >= sz);
  cor_future_set_result(gate, NULL);
  for (long i = 0; i < n; i++) {
    assert_int_equal(run_task(loop, ts[i]), 0);
    assert_int_equal(s[i].rc, 0);
    cor_release(ts[i]);
  }
  cor_release(gate);
  free(sps);
  free(ts);
  free(s);
  loop_free(loop);
}

static void test_close_destroys_pending(void **state) {
  (void)state;
  cor_loop_t *loop = loop_new();
  cx c = {.sleep = 10};
  cor_task_t *t = cor_create_task(loop, cor_coro(cx_body, &c), "sleeper");
  cor_future_t *f = cor_future_new(loop);
  cx d = {.fut = f};
  cor_task_t *u = cor_create_task(loop, cor_coro(cx_body, &d), "waiter");
  cx e = {.other = t};
  cor_task_t *v = cor_create_task(loop, cor_coro(cx_body, &e), "chained");
  cor_task_t *w = cor_create_task(loop, cor_coro(cx_body, &e), "unstarted");
  cor_release(w);
  assert_int_equal(cor_loop_stop(loop), 0);
  assert_int_equal(cor_loop_run_forever(loop), 0);
  loop_free(loop);
  assert_true(logged("name='sleeper'"));
  assert_true(logged("name='waiter'"));
  assert_true(logged("name='chained'"));
  assert_false(cor_future_done(cor_task_future(t)));
  assert_int_equal(cor_task_cancel(t, NULL), -EINVAL);
  cor_release(t);
  cor_release(u);
  cor_release(v);
  cor_release(f); /* after its waiter was destroyed */
}

/* Task-to-task hand-off keeps asyncio's order exactly: a task that yields
 * runs the next ready step of the same batch, plain callbacks included in
 * their place; tasks that exit after a hand-off are reaped. */
static char ho_log[64][4];
static int ho_n;
static void ho_note(const char *s) { snprintf(ho_log[ho_n++], 4, "%s", s); }
static void ho_plain(void *arg) { ho_note("x"); }
static int ho_body(void *arg, void **result) {
  const char *name = arg;
  char buf[4] = {name[0], 0, 0, 0};
  for (int i = 0; i < 3; i++) {
    buf[1] = (char)('0' + i);
    ho_note(buf);
    if (i < 2) {
      int rc = cor_yield();
      if (rc != 0)
        return rc;
    }
  }
  *result = arg;
  return 0;
}
static int ho_count;
static int ho_exit(void *arg, void **result) {
  int rc = cor_yield();
  ho_count++;
  return rc;
}
static void test_handoff_order(void **state) {
  cor_loop_t *loop = cor_loop_new(NULL);
  ho_n = 0;
  cor_task_t *a = cor_create_task(loop, cor_coro(ho_body, "A"), "A");
  assert_int_equal(cor_call_soon(loop, ho_plain, NULL, NULL), 0);
  cor_task_t *b = cor_create_task(loop, cor_coro(ho_body, "B"), "B");
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(b)), 0);
  const char *want[] = {"A0", "x", "B0", "A1", "B1", "A2", "B2"};
  assert_int_equal(ho_n, 7);
  for (int i = 0; i < 7; i++)
    assert_string_equal(ho_log[i], want[i]);
  void *r;
  assert_int_equal(cor_future_result(cor_task_future(a), &r), 0);
  assert_string_equal(r, "A");
  cor_release(a);
  cor_release(b);
  /* A chain of tasks that hand off to each other and exit. */
  ho_count = 0;
  enum { N = 1000 };
  cor_task_t *t[N];
  for (int i = 0; i < N; i++)
    assert_non_null(t[i] = cor_create_task(loop, cor_coro(ho_exit, NULL), NULL));
  assert_int_equal(cor_loop_run_until_complete(loop, cor_task_future(t[N - 1])), 0);
  assert_int_equal(ho_count, N);
  for (int i = 0; i < N; i++) {
    assert_true(cor_future_done(cor_task_future(t[i])));
    cor_release(t[i]);
  }
  assert_int_equal(cor_all_tasks(loop, NULL, 0), 0);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_and_result, setup, teardown),
      cmocka_unit_test(test_handoff_order),
      cmocka_unit_test_setup_teardown(test_outside_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_coro_consumed_twice, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain_buggy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain_fixed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_yield_round_robin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_await_invalid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_before_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_while_awaiting_timer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_while_awaiting_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_while_awaiting_shield, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_while_awaiting_future, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_running_and_uncancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wait_for, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_cancelled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_taskgroup_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_taskgroup_ok_and_outside_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cor_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stack_overflow_message, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_tasks_own_stacks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_destroys_pending, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
