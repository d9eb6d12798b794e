/* SPDX-License-Identifier: MIT */
/* Protocols and transports (core/transport.c), on both back-ends (loops
 * with io_uring 0 and -1): an echo server with thousands of concurrent
 * connections, pause/resume writing against a slow peer, pause/resume
 * reading, abort with data buffered, close from inside each callback,
 * eof_received keeping the transport open (half-close) or not, client
 * protocols (cor_create_connection in a task and from a callback),
 * close_clients and wait_closed, a runtime protocol server. */
#include "testutil.h"

#include <corio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static int g_uring; /* the loop's io_uring option for this test */

/* Runs fn(arg) as a task on a new loop of the current back-end. */
static int run_on(cor_fn fn, void *arg) {
  cor_loop_opts o = {0};
  o.io_uring = g_uring;
  cor_loop_t *loop = cor_loop_new(&o);
  assert_non_null(loop);
  cor_task_t *t = cor_create_task(loop, cor_coro(fn, arg), NULL);
  assert_non_null(t);
  int rc = cor_loop_run_until_complete(loop, cor_task_future(t));
  cor_release(t);
  assert_int_equal(cor_loop_close(loop), 0);
  cor_release(loop);
  return rc;
}

/* Waits (in a task) until cond holds, at most secs seconds. */
#define WAIT_UNTIL(cond, secs)                                                 \
  do {                                                                         \
    for (int w_ = 0; w_ < (int)((secs) * 1000) && !(cond); w_++)               \
      cor_sleep(0.001);                                                        \
    assert_true(cond);                                                         \
  } while (0)

static int connect_port(int port, cor_stream_t **out) {
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  return cor_open_connection("127.0.0.1", ps, out);
}

/* ------------------------------------------------------------ echo */

typedef struct {
  int made, lost, live, peak, lost_bad;
  size_t bytes;
} stats;

static void echo_made(cor_transport_t *t, void *arg) {
  stats *st = arg;
  st->made++;
  if (++st->live > st->peak)
    st->peak = st->live;
}
static void echo_data(cor_transport_t *t, const void *buf, size_t n, void *arg) {
  stats *st = arg;
  st->bytes += n;
  assert_int_equal(cor_transport_write(t, buf, n), 0);
}
static void echo_lost(cor_transport_t *t, int code, void *arg) {
  stats *st = arg;
  st->lost++;
  st->live--;
  if (code != 0 && code != -ECONNRESET)
    st->lost_bad++;
}
static const cor_protocol echo_proto = {echo_made, echo_data, NULL, echo_lost,
                                        NULL, NULL};

typedef struct {
  int port;
  int *ok, *connected, *answered, total;
} echo_client;

static int echo_client_main(void *arg, void **res) {
  echo_client *c = arg;
  cor_stream_t *s;
  int rc = connect_port(c->port, &s);
  if (rc != 0)
    return rc;
  (*c->connected)++;
  /* everyone connected first: the connections are concurrent */
  while (*c->connected < c->total)
    cor_sleep(0.005);
  char msg[32], got[32];
  int n = snprintf(msg, sizeof msg, "hello %p", (void *)c);
  rc = cor_stream_write(s, msg, (size_t)n);
  if (rc == 0 && cor_stream_readexactly(s, got, (size_t)n, NULL) == n &&
      memcmp(msg, got, (size_t)n) == 0)
    (*c->ok)++;
  (*c->answered)++;
  while (*c->answered < c->total) /* all open at once on the server too */
    cor_sleep(0.005);
  cor_stream_close(s);
  cor_stream_free(s);
  return 0;
}

static long g_conns;

static int echo_main(void *arg, void **res) {
  stats st = {0};
  cor_server_t *srv = cor_start_protocol_server(NULL, NULL, &echo_proto, &st);
  assert_non_null(srv);
  int port = cor_server_port(srv);
  int n = (int)g_conns, ok = 0, connected = 0, answered = 0;
  echo_client *cs = calloc((size_t)n, sizeof *cs);
  cor_task_t **ts = calloc((size_t)n, sizeof *ts);
  for (int i = 0; i < n; i++) {
    cs[i] = (echo_client){port, &ok, &connected, &answered, n};
    ts[i] = cor_create_task(NULL, cor_coro(echo_client_main, &cs[i]), NULL);
    assert_non_null(ts[i]);
  }
  for (int i = 0; i < n; i++) {
    assert_int_equal(cor_await_task(ts[i], NULL), 0);
    cor_release(ts[i]);
  }
  assert_int_equal(ok, n);
  WAIT_UNTIL(st.lost == n, 20);
  assert_int_equal(st.made, n);
  assert_int_equal(st.peak, n); /* all at once */
  assert_int_equal(st.lost_bad, 0);
  assert_int_equal(cor_server_close(srv), 0);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  free(cs);
  free(ts);
  return 0;
}

static void test_echo_many(void **state) {
  long want = test_scale(20000, 2000);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rlim_t need = (rlim_t)want * 2 + 256;
  if (rl.rlim_cur < need) {
    rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < need)
    want = ((long)rl.rlim_cur - 256) / 2;
  g_conns = want;
  print_message("%ld concurrent connections\n", want);
  assert_int_equal(run_on(echo_main, NULL), 0);
}

/* ------------------------------------------------------------ writing */

#define BIG (4u << 20)

typedef struct {
  int pauses, resumes, lost, code;
  size_t sent;
  bool paused;
  int close_in; /* 1: close inside pause_writing, 2: inside resume_writing */
} writer;

static void pump_out(cor_transport_t *t, writer *w) {
  static char chunk[16384];
  while (!w->paused && w->sent < BIG) {
    for (size_t i = 0; i < sizeof chunk; i++)
      chunk[i] = (char)((w->sent + i) % 251);
    if (cor_transport_write(t, chunk, sizeof chunk) != 0)
      return;
    w->sent += sizeof chunk;
  }
  if (w->sent >= BIG && w->close_in == 0)
    cor_transport_close(t);
}
static void wr_made(cor_transport_t *t, void *arg) {
  assert_int_equal(cor_transport_set_write_buffer_limits(t, 65536, 16384), 0);
  pump_out(t, arg);
}
static void wr_pause(cor_transport_t *t, void *arg) {
  writer *w = arg;
  assert_false(w->paused);
  assert_true(cor_transport_write_buffer_size(t) > 65536);
  w->paused = true;
  w->pauses++;
  if (w->close_in == 1)
    assert_int_equal(cor_transport_close(t), 0);
}
static void wr_resume(cor_transport_t *t, void *arg) {
  writer *w = arg;
  assert_true(w->paused);
  assert_true(cor_transport_write_buffer_size(t) <= 16384);
  w->paused = false;
  w->resumes++;
  if (w->close_in == 2) {
    assert_int_equal(cor_transport_close(t), 0);
    return;
  }
  pump_out(t, w);
}
static void wr_lost(cor_transport_t *t, int code, void *arg) {
  writer *w = arg;
  w->lost++;
  w->code = code;
}
static const cor_protocol wr_proto = {wr_made, NULL, NULL, wr_lost, wr_pause,
                                      wr_resume};

static int slow_main(void *arg, void **res) {
  writer *w = arg;
  cor_server_t *srv = cor_start_protocol_server(NULL, NULL, &wr_proto, w);
  assert_non_null(srv);
  cor_stream_t *s;
  assert_int_equal(connect_port(cor_server_port(srv), &s), 0);
  size_t got = 0;
  char buf[8192];
  bool bad = false;
  for (;;) {
    ssize_t n = cor_stream_read(s, buf, sizeof buf);
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != (char)((got + (size_t)i) % 251))
        bad = true;
    got += (size_t)n;
    if ((got / sizeof buf) % 32 == 0)
      cor_sleep(0.001); /* a slow reader */
  }
  assert_false(bad);
  WAIT_UNTIL(w->lost == 1, 5);
  assert_int_equal(w->code, 0);
  assert_true(w->pauses >= 1);
  if (w->close_in == 0) {
    assert_int_equal(got, BIG); /* nothing lost */
    assert_true(w->resumes >= 1);
    assert_int_equal(w->pauses, w->resumes);
  } else {
    assert_int_equal(got, w->sent); /* close flushes what was written */
  }
  cor_stream_close(s);
  cor_stream_free(s);
  cor_server_close(srv);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  return 0;
}

static void test_pause_writing(void **state) {
  for (int k = 0; k < 3; k++) {
    writer w = {0};
    w.close_in = k;
    assert_int_equal(run_on(slow_main, &w), 0);
    assert_int_equal(w.lost, 1);
  }
}

/* ------------------------------------------------------------ reading */

typedef struct {
  cor_loop_t *loop;
  cor_transport_t *t;
  size_t got;
  int pauses, lost, code, during_pause;
  bool paused, eof;
} reader;

static void rd_resume(void *arg) {
  reader *r = arg;
  r->paused = false;
  assert_int_equal(cor_transport_resume_reading(r->t), 0);
}
static void rd_made(cor_transport_t *t, void *arg) {
  reader *r = arg;
  r->t = t;
}
static void rd_data(cor_transport_t *t, const void *buf, size_t n, void *arg) {
  reader *r = arg;
  if (r->paused)
    r->during_pause++;
  size_t before = r->got;
  r->got += n;
  if (before / (128 * 1024) != r->got / (128 * 1024) && r->pauses < 3) {
    r->pauses++;
    r->paused = true;
    assert_int_equal(cor_transport_pause_reading(t), 0);
    assert_int_equal(cor_transport_pause_reading(t), 0); /* twice: nothing */
    assert_int_equal(cor_call_later(NULL, 0.03, rd_resume, r, NULL), 0);
  }
}
static bool rd_eof(cor_transport_t *t, void *arg) {
  reader *r = arg;
  r->eof = true;
  return false; /* close */
}
static void rd_lost(cor_transport_t *t, int code, void *arg) {
  reader *r = arg;
  r->lost++;
  r->code = code;
}
static const cor_protocol rd_proto = {rd_made, rd_data, rd_eof, rd_lost, NULL,
                                      NULL};

static int pause_read_main(void *arg, void **res) {
  reader r = {0};
  cor_server_t *srv = cor_start_protocol_server(NULL, NULL, &rd_proto, &r);
  assert_non_null(srv);
  cor_stream_t *s;
  assert_int_equal(connect_port(cor_server_port(srv), &s), 0);
  char *big = calloc(1, 1 << 20);
  assert_int_equal(cor_stream_write(s, big, 1 << 20), 0);
  assert_int_equal(cor_stream_drain(s), 0);
  assert_int_equal(cor_stream_write_eof(s), 0);
  char c;
  assert_int_equal(cor_stream_read(s, &c, 1), 0); /* the server closed */
  WAIT_UNTIL(r.lost == 1, 5);
  assert_int_equal(r.got, 1 << 20);
  assert_true(r.pauses >= 2); /* a delivery may cross several marks */
  assert_int_equal(r.during_pause, 0);
  assert_true(r.eof);
  assert_int_equal(r.code, 0);
  free(big);
  cor_stream_close(s);
  cor_stream_free(s);
  cor_server_close(srv);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  return 0;
}

static void test_pause_reading(void **state) {
  assert_int_equal(run_on(pause_read_main, NULL), 0);
}


/* Bytes that came while reading was paused, then the EOF: all delivered,
 * before eof_received. */
static void pe_data(cor_transport_t *t, const void *buf, size_t n, void *arg) {
  reader *r = arg;
  if (r->paused || r->eof)
    r->during_pause++;
  r->got += n;
  if (r->pauses++ == 0) { /* the recv is armed now (io_uring): pause */
    r->paused = true;
    assert_int_equal(cor_transport_pause_reading(t), 0);
    assert_int_equal(cor_call_later(NULL, 0.1, rd_resume, r, NULL), 0);
  }
}
static const cor_protocol pe_proto = {rd_made, pe_data, rd_eof, rd_lost, NULL,
                                      NULL};

static int pause_eof_main(void *arg, void **res) {
  reader r = {0};
  cor_server_t *srv = cor_start_protocol_server(NULL, NULL, &pe_proto, &r);
  assert_non_null(srv);
  cor_stream_t *s;
  assert_int_equal(connect_port(cor_server_port(srv), &s), 0);
  static char some[3000];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(cor_stream_write(s, some, 1000), 0);
    cor_sleep(0.005); /* separate arrivals */
  }
  assert_int_equal(cor_stream_write_eof(s), 0);
  WAIT_UNTIL(r.lost == 1, 5);
  assert_int_equal(r.got, 3000);
  assert_int_equal(r.during_pause, 0);
  assert_true(r.eof);
  assert_int_equal(r.code, 0);
  cor_stream_close(s);
  cor_stream_free(s);
  cor_server_close(srv);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  return 0;
}

static void test_pause_then_eof(void **state) {
  assert_int_equal(run_on(pause_eof_main, NULL), 0);
}

/* ------------------------------------------------------------ abort */

typedef struct {
  size_t buffered;
  int lost, code, after;
} aborter;

static void ab_made(cor_transport_t *t, void *arg) {
  aborter *a = arg;
  static char chunk[65536];
  cor_transport_set_write_buffer_limits(t, 64u << 20, 0);
  for (int i = 0; i < 128; i++)
    assert_int_equal(cor_transport_write(t, chunk, sizeof chunk), 0);
  a->buffered = cor_transport_write_buffer_size(t);
  cor_transport_abort(t);
  cor_transport_abort(t); /* twice: nothing */
  if (cor_transport_write(t, "x", 1) == COR_ECLOSED)
    a->after++;
  if (cor_transport_close(t) == COR_ECLOSED)
    a->after++;
}
static void ab_lost(cor_transport_t *t, int code, void *arg) {
  aborter *a = arg;
  a->lost++;
  a->code = code;
}
static const cor_protocol ab_proto = {ab_made, NULL, NULL, ab_lost, NULL, NULL};

static int abort_main(void *arg, void **res) {
  aborter a = {0};
  cor_server_t *srv = cor_start_protocol_server(NULL, NULL, &ab_proto, &a);
  assert_non_null(srv);
  cor_stream_t *s;
  assert_int_equal(connect_port(cor_server_port(srv), &s), 0);
  WAIT_UNTIL(a.lost == 1, 5);
  assert_true(a.buffered > 0);
  assert_int_equal(a.code, -ECONNABORTED);
  assert_int_equal(a.after, 2);
  /* the peer gets fewer bytes than were written: the rest was dropped */
  size_t got = 0;
  static char buf[65536];
  ssize_t n;
  while ((n = cor_stream_read(s, buf, sizeof buf)) > 0)
    got += (size_t)n;
  assert_true(got < 128u * 65536u);
  cor_stream_close(s);
  cor_stream_free(s);
  cor_server_close(srv);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  return 0;
}

static void test_abort_buffered(void **state) {
  assert_int_equal(run_on(abort_main, NULL), 0);
}

/* ------------------------------------------------------------ close inside */

enum { IN_MADE, IN_DATA, IN_EOF, IN_DATA_ABORT, IN_N };

typedef struct {
  int where;
  int lost, code, late; /* late: callbacks after the close */
  bool closed;
} closer;

static void cl_made(cor_transport_t *t, void *arg) {
  closer *c = arg;
  if (c->where == IN_MADE) {
    assert_int_equal(cor_transport_write(t, "bye", 3), 0);
    assert_int_equal(cor_transport_close(t), 0);
    assert_int_equal(cor_transport_close(t), COR_ECLOSED);
    c->closed = true;
  }
}
static void cl_data(cor_transport_t *t, const void *buf, size_t n, void *arg) {
  closer *c = arg;
  if (c->closed)
    c->late++;
  if (c->where == IN_DATA) {
    assert_int_equal(cor_transport_write(t, "bye", 3), 0);
    assert_int_equal(cor_transport_close(t), 0);
    c->closed = true;
  } else if (c->where == IN_DATA_ABORT) {
    cor_transport_abort(t);
    c->closed = true;
  }
}
static bool cl_eof(cor_transport_t *t, void *arg) {
  closer *c = arg;
  if (c->closed)
    c->late++;
  if (c->where == IN_EOF) {
    assert_int_equal(cor_transport_write(t, "bye", 3), 0);
    assert_int_equal(cor_transport_close(t), 0);
    c->closed = true;
    return true; /* closed anyway: true does not reopen it */
  }
  return false;
}
static void cl_lost(cor_transport_t *t, int code, void *arg) {
  closer *c = arg;
  c->lost++;
  c->code = code;
}
static const cor_protocol cl_proto = {cl_made, cl_data, cl_eof, cl_lost, NULL,
                                      NULL};

static int close_in_main(void *arg, void **res) {
  closer *c = arg;
  cor_server_t *srv = cor_start_protocol_server(NULL, NULL, &cl_proto, c);
  assert_non_null(srv);
  cor_stream_t *s;
  assert_int_equal(connect_port(cor_server_port(srv), &s), 0);
  cor_stream_write(s, "ping", 4);
  if (c->where == IN_EOF)
    cor_stream_write_eof(s);
  char buf[16];
  size_t part = 0;
  ssize_t n = cor_stream_readexactly(s, buf, 3, &part);
  if (c->where == IN_DATA_ABORT) {
    assert_true(n < 0); /* nothing was written */
  } else {
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "bye", 3);
    /* then EOF (a reset when the server closed with "ping" unread) */
    n = cor_stream_read(s, buf, 1);
    assert_true(n == 0 || (c->where == IN_MADE && n == -ECONNRESET));
  }
  WAIT_UNTIL(c->lost == 1, 5);
  cor_sleep(0.02);
  assert_int_equal(c->lost, 1);
  assert_int_equal(c->late, 0);
  assert_int_equal(c->code, c->where == IN_DATA_ABORT ? -ECONNABORTED : 0);
  cor_stream_close(s);
  cor_stream_free(s);
  cor_server_close(srv);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  return 0;
}

static void test_close_inside(void **state) {
  for (int k = 0; k < IN_N; k++) {
    closer c = {0};
    c.where = k;
    assert_int_equal(run_on(close_in_main, &c), 0);
  }
}

/* ------------------------------------------------------------ half-close */

typedef struct {
  bool keep;
  int lost, code, eofs;
} halfer;

static void hf_data(cor_transport_t *t, const void *buf, size_t n, void *arg) {
  assert_int_equal(cor_transport_write(t, buf, n), 0);
}
static bool hf_eof(cor_transport_t *t, void *arg) {
  halfer *h = arg;
  h->eofs++;
  if (!h->keep)
    return false;
  /* still open for writing after the peer's EOF */
  assert_int_equal(cor_transport_write(t, " and bye", 8), 0);
  assert_int_equal(cor_transport_write_eof(t), 0);
  assert_int_equal(cor_transport_write_eof(t), COR_ECLOSED);
  assert_int_equal(cor_transport_write(t, "x", 1), COR_ECLOSED);
  assert_int_equal(cor_transport_close(t), 0);
  return true;
}
static void hf_lost(cor_transport_t *t, int code, void *arg) {
  halfer *h = arg;
  h->lost++;
  h->code = code;
}
static const cor_protocol hf_proto = {NULL, hf_data, hf_eof, hf_lost, NULL,
                                      NULL};

static int half_main(void *arg, void **res) {
  halfer *h = arg;
  cor_server_t *srv = cor_start_protocol_server(NULL, NULL, &hf_proto, h);
  assert_non_null(srv);
  cor_stream_t *s;
  assert_int_equal(connect_port(cor_server_port(srv), &s), 0);
  assert_int_equal(cor_stream_write(s, "hello", 5), 0);
  assert_int_equal(cor_stream_write_eof(s), 0);
  char buf[64];
  size_t got = 0;
  ssize_t n;
  while ((n = cor_stream_read(s, buf + got, sizeof buf - got)) > 0)
    got += (size_t)n;
  assert_int_equal(n, 0);
  if (h->keep) {
    assert_int_equal(got, 13);
    assert_memory_equal(buf, "hello and bye", 13);
  } else {
    assert_int_equal(got, 5);
  }
  WAIT_UNTIL(h->lost == 1, 5);
  assert_int_equal(h->eofs, 1);
  assert_int_equal(h->code, 0);
  cor_stream_close(s);
  cor_stream_free(s);
  cor_server_close(srv);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  return 0;
}

static void test_eof_received(void **state) {
  halfer h = {true, 0, 0, 0};
  assert_int_equal(run_on(half_main, &h), 0);
  halfer h2 = {false, 0, 0, 0};
  assert_int_equal(run_on(half_main, &h2), 0);
}

/* ------------------------------------------------------------ clients */

static int echo_handler(void *arg, void **res) {
  cor_stream_t *s = arg;
  char buf[1024];
  for (;;) {
    ssize_t n = cor_stream_read(s, buf, sizeof buf);
    if (n <= 0)
      return (int)n;
    if (cor_stream_write(s, buf, (size_t)n) != 0)
      return 0;
  }
}

typedef struct {
  char got[64];
  size_t n;
  int made, lost, code;
  cor_transport_t *t;
} client;

static void cli_made(cor_transport_t *t, void *arg) {
  client *c = arg;
  c->made++;
  c->t = t;
  struct iovec iov[2] = {{"hel", 3}, {"lo!", 3}};
  assert_int_equal(cor_transport_writev(t, iov, 2), 0);
}
static void cli_data(cor_transport_t *t, const void *buf, size_t n, void *arg) {
  client *c = arg;
  assert_ptr_equal(cor_transport_get_arg(t), arg);
  memcpy(c->got + c->n, buf, n);
  c->n += n;
  if (c->n >= 6)
    cor_transport_close(t);
}
static void cli_lost(cor_transport_t *t, int code, void *arg) {
  client *c = arg;
  c->lost++;
  c->code = code;
}
static const cor_protocol cli_proto = {cli_made, cli_data, NULL, cli_lost, NULL,
                                       NULL};

typedef struct {
  char port[16];
  client *c;
} later_conn;

static void connect_from_callback(void *arg) {
  later_conn *lc = arg;
  assert_int_equal(cor_create_connection(NULL, "127.0.0.1", lc->port, NULL,
                                         &cli_proto, lc->c, NULL),
                   0);
}

static int client_main(void *arg, void **res) {
  cor_server_t *srv = cor_start_server(NULL, NULL, echo_handler);
  assert_non_null(srv);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", cor_server_port(srv));
  /* in a task, with out */
  client c = {0};
  cor_transport_t *t = NULL;
  assert_int_equal(
      cor_create_connection(NULL, "127.0.0.1", ps, NULL, &cli_proto, &c, &t), 0);
  assert_non_null(t);
  assert_ptr_equal(t, c.t);
  assert_true(cor_transport_fd(t) >= 0);
  WAIT_UNTIL(c.lost == 1, 5);
  assert_int_equal(c.n, 6);
  assert_memory_equal(c.got, "hello!", 6);
  assert_int_equal(c.code, 0);
  /* from a callback, out NULL: connection_made reports it */
  client c2 = {0};
  later_conn lc;
  memcpy(lc.port, ps, sizeof ps);
  lc.c = &c2;
  assert_int_equal(cor_call_soon(NULL, connect_from_callback, &lc, NULL), 0);
  WAIT_UNTIL(c2.lost == 1, 5);
  assert_int_equal(c2.made, 1);
  assert_memory_equal(c2.got, "hello!", 6);
  /* a refused connection: connection_lost(NULL, code) */
  cor_server_close(srv);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  cor_server_free(srv);
  client c3 = {0};
  assert_int_equal(cor_create_connection(NULL, "127.0.0.1", ps, NULL,
                                         &cli_proto, &c3, NULL),
                   0);
  WAIT_UNTIL(c3.lost == 1, 5);
  assert_int_equal(c3.made, 0);
  assert_int_equal(c3.code, -ECONNREFUSED);
  client c4 = {0};
  assert_int_equal(
      cor_create_connection(NULL, "127.0.0.1", ps, NULL, &cli_proto, &c4, &t),
      -ECONNREFUSED);
  assert_null(t);
  assert_int_equal(c4.lost + c4.made, 0);
  return 0;
}

static void test_client(void **state) {
  assert_int_equal(run_on(client_main, NULL), 0);
}

/* ------------------------------------------------------------ server */

static int clients_main(void *arg, void **res) {
  stats st = {0};
  cor_server_opts o = {0};
  o.max_connections = 2;
  cor_server_t *srv = cor_start_protocol_server(NULL, &o, &echo_proto, &st);
  assert_non_null(srv);
  cor_stream_t *s[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(connect_port(cor_server_port(srv), &s[i]), 0);
  WAIT_UNTIL(st.made == 2, 5);
  cor_sleep(0.05);
  assert_int_equal(st.made, 2); /* the third waits in the backlog */
  assert_int_equal(cor_server_connections(srv), 2);
  cor_stream_close(s[0]);
  WAIT_UNTIL(st.made == 3, 5);
  assert_int_equal(cor_server_close(srv), 0);
  assert_int_equal(cor_server_wait_closed(srv, 0.05), -ETIMEDOUT);
  assert_int_equal(cor_server_close_clients(srv), 0);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  assert_int_equal(st.lost, 3);
  assert_int_equal(cor_server_connections(srv), 0);
  cor_server_free(srv);
  for (int i = 0; i < 3; i++) {
    if (i)
      cor_stream_close(s[i]);
    cor_stream_free(s[i]);
  }
  return 0;
}

static void test_server_limits(void **state) {
  assert_int_equal(run_on(clients_main, NULL), 0);
}

static stats rt_st[1];
static void rt_made(cor_transport_t *t, void *arg) {
  __atomic_add_fetch(&rt_st->made, 1, __ATOMIC_RELAXED);
}
static void rt_lost(cor_transport_t *t, int code, void *arg) {
  __atomic_add_fetch(&rt_st->lost, 1, __ATOMIC_RELAXED);
}
static void rt_data(cor_transport_t *t, const void *buf, size_t n, void *arg) {
  cor_transport_write(t, buf, n);
}
static const cor_protocol rt_proto = {rt_made, rt_data, NULL, rt_lost, NULL,
                                      NULL};

static void test_runtime_server(void **state) {
  cor_runtime_opts ro = {0};
  ro.nloops = 2;
  cor_runtime_t *rt = cor_runtime_new(&ro);
  assert_non_null(rt);
  cor_server_t *srv = cor_runtime_start_protocol_server(rt, NULL, &rt_proto, NULL);
  assert_non_null(srv);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)cor_server_port(srv));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 8; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    char b[3];
    size_t got = 0;
    while (got < 3) {
      ssize_t n = read(fd, b + got, 3 - got);
      assert_true(n > 0);
      got += (size_t)n;
    }
    assert_memory_equal(b, "abc", 3);
    close(fd);
  }
  assert_int_equal(cor_server_close(srv), 0);
  assert_int_equal(cor_server_wait_closed(srv, 5), 0);
  assert_int_equal(__atomic_load_n(&rt_st->made, __ATOMIC_RELAXED), 8);
  assert_int_equal(__atomic_load_n(&rt_st->lost, __ATOMIC_RELAXED), 8);
  cor_server_free(srv);
  assert_int_equal(cor_runtime_shutdown(rt, 5), 0);
  cor_release(rt);
}

/* ------------------------------------------------------------ main */

static int set_uring(void **state) {
  g_uring = 0;
  return 0;
}
static int set_epoll(void **state) {
  g_uring = -1;
  return 0;
}

#define BOTH(fn)                                                               \
  cmocka_unit_test_setup(fn, set_uring), cmocka_unit_test_setup(fn, set_epoll)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_echo_many),     BOTH(test_pause_writing),
      BOTH(test_pause_reading), BOTH(test_pause_then_eof),
      BOTH(test_abort_buffered),
      BOTH(test_close_inside),  BOTH(test_eof_received),
      BOTH(test_client),        BOTH(test_server_limits),
      cmocka_unit_test(test_runtime_server),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
