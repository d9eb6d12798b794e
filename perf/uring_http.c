/* SPDX-License-Identifier: MIT */
/* The io_uring floor of http_hello (workload limit_http_uring, registered in
 * perf/wl_net.c): a hand-written HTTP hello server on io_uring, to learn
 * what a completion-based server can reach on this machine, where every
 * kernel entry costs ~1.1 us. Not corio's io_uring back-end (core/uring.c),
 * which it bounds; raw syscalls and <linux/io_uring.h>, no liburing.
 *
 * One thread per listener (one per CPU, SO_REUSEPORT), each with its own
 * ring. Per thread:
 *   - one multishot accept on the listener;
 *   - per connection a recv: multishot with a ring of provided buffers
 *     (multishot=1: armed once, one completion per arrival), or one-shot
 *     recv into the connection's buffer re-armed with each completion
 *     (multishot=0);
 *   - each recv completion queues a send of one response per CRLFCRLF
 *     found (pipelined requests in one read: one send), as limit_http;
 *   - the loop is one io_uring_enter per batch: it submits every SQE the
 *     last batch of completions produced and waits for the next one.
 * With defer=1 the ring is SINGLE_ISSUER | DEFER_TASKRUN: the work the
 * kernel completes on our behalf (a recv whose data arrived) waits until
 * we enter to reap completions, and runs there in one batch, instead of
 * interrupting the thread whenever data arrives. With batch=k (k > 1) the
 * wait asks for k completions or batch_us microseconds, whichever comes
 * first: with DEFER_TASKRUN the kernel then wakes the thread once per k
 * arrivals instead of once per arrival, trading latency for fewer
 * sleeps, which are what a request costs most here after the syscalls.
 * minwait=us (with batch=k) uses the kernel's minimum-wait time-out instead
 * (Linux 6.12, IORING_FEAT_MIN_TIMEOUT), as corio's loops do: k completions,
 * or any that came once `us` passed; an idle ring sleeps until the first. */
#include "uring_http.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SQ_ENTRIES 1024u
#define CQ_ENTRIES 8192u  /* completions of one batch must fit */
#define MAX_FD 65536
#define BUF_GROUP 1
#define NBUFS 1024u       /* provided buffers per thread (power of two) */
#define BUF_SIZE 2048u
#define OUT_SIZE 16384u

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };

static const char RESP[] = "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 13\r\n"
                           "\r\n"
                           "hello, world\n";

typedef struct {
  int fd;
  bool open;
  bool sending;  /* a send SQE is in flight for out[spos, spos + slen) */
  bool receiving; /* a recv (one-shot or multishot) is armed */
  bool closing;  /* to close once neither is in flight (no stale CQE may
                    name a reused fd) */
  unsigned spos, slen, olen; /* out[0, olen) queued, from spos in flight */
  char in[BUF_SIZE];        /* one-shot recv target */
  char out[OUT_SIZE];
} conn;

typedef struct {
  int fd;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
  struct io_uring_sqe *sqes;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
  unsigned tail;    /* our copy of the SQ tail */
  unsigned pending; /* SQEs written since the last enter */
  bool defer;
  bool multishot;
  unsigned batch, batch_us, minwait_us;
  struct io_uring_buf_ring *br;
  char *bufs;
  unsigned short br_tail;
  conn **conns; /* by fd */
  int lfd;
} ring;

static int sys_setup(unsigned entries, struct io_uring_params *p) {
  return (int)syscall(__NR_io_uring_setup, entries, p);
}
static int sys_enter(int fd, unsigned submit, unsigned min, unsigned flags,
                     void *arg, size_t argsz) {
  return (int)syscall(__NR_io_uring_enter, fd, submit, min, flags, arg, argsz);
}
static int sys_register(int fd, unsigned op, void *arg, unsigned n) {
  return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

int uring_http_probe(char *why, size_t len) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  int fd = sys_setup(8, &p);
  if (fd < 0) {
    snprintf(why, len, "io_uring_setup: %s", strerror(errno));
    return -1;
  }
  close(fd);
  return 0;
}

static int ring_init(ring *r, bool defer) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_CQSIZE;
  p.cq_entries = CQ_ENTRIES;
  if (defer)
    p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  r->fd = sys_setup(SQ_ENTRIES, &p);
  if (r->fd < 0)
    return -errno;
  r->defer = defer;
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if (p.features & IORING_FEAT_SINGLE_MMAP)
    sq_len = cq_len = sq_len > cq_len ? sq_len : cq_len;
  char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
  if (sq == MAP_FAILED)
    return -errno;
  char *cq = sq;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
    cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
              r->fd, IORING_OFF_CQ_RING);
    if (cq == MAP_FAILED)
      return -errno;
  }
  r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
                 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                 IORING_OFF_SQES);
  if (r->sqes == MAP_FAILED)
    return -errno;
  r->sq_head = (unsigned *)(sq + p.sq_off.head);
  r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  r->sq_array = (unsigned *)(sq + p.sq_off.array);
  r->cq_head = (unsigned *)(cq + p.cq_off.head);
  r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  r->tail = *r->sq_tail;
  /* The SQ array maps slot i to SQE i once and for all. */
  for (unsigned i = 0; i < p.sq_entries; i++)
    r->sq_array[i] = i;
  return 0;
}

/* A ring of provided buffers for multishot recv: the kernel picks one per
 * completion, we hand it back once the bytes are handled. */
static int bufs_init(ring *r) {
  size_t rl = NBUFS * sizeof(struct io_uring_buf);
  r->br = mmap(NULL, rl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
               -1, 0);
  r->bufs = malloc((size_t)NBUFS * BUF_SIZE);
  if (r->br == MAP_FAILED || r->bufs == NULL)
    return -ENOMEM;
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (uint64_t)(uintptr_t)r->br;
  reg.ring_entries = NBUFS;
  reg.bgid = BUF_GROUP;
  if (sys_register(r->fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0)
    return -errno;
  for (unsigned i = 0; i < NBUFS; i++) {
    struct io_uring_buf *b = &r->br->bufs[i];
    b->addr = (uint64_t)(uintptr_t)(r->bufs + (size_t)i * BUF_SIZE);
    b->len = BUF_SIZE;
    b->bid = (unsigned short)i;
  }
  r->br_tail = NBUFS;
  /* The kernel reads the tail with acquire: the entries above first. */
  atomic_store_explicit((_Atomic unsigned short *)&r->br->tail, r->br_tail,
                        memory_order_release);
  return 0;
}

static void buf_return(ring *r, unsigned bid) {
  struct io_uring_buf *b = &r->br->bufs[r->br_tail & (NBUFS - 1)];
  b->addr = (uint64_t)(uintptr_t)(r->bufs + (size_t)bid * BUF_SIZE);
  b->len = BUF_SIZE;
  b->bid = (unsigned short)bid;
  r->br_tail++;
  atomic_store_explicit((_Atomic unsigned short *)&r->br->tail, r->br_tail,
                        memory_order_release);
}

/* Submits what is queued; with wait, also waits for one completion (and,
 * with defer, runs the kernel's deferred completions here). */
static void enter(ring *r, bool wait) {
  /* The SQEs (plain stores) before the tail the kernel reads. */
  atomic_store_explicit((_Atomic unsigned *)r->sq_tail, r->tail,
                        memory_order_release);
  unsigned flags = wait || r->defer ? IORING_ENTER_GETEVENTS : 0;
  unsigned min = wait ? 1 : 0;
  struct __kernel_timespec ts = {0, (long long)r->batch_us * 1000};
  struct io_uring_getevents_arg ga = {0, 0, 0, (uint64_t)(uintptr_t)&ts};
  if (r->minwait_us) {
    ts.tv_sec = 3600;
    ts.tv_nsec = 0;
    ga.pad = r->minwait_us; /* min_wait_usec in newer headers */
  }
  void *arg = NULL;
  size_t argsz = 0;
  if (wait && r->batch > 1) {
    min = r->batch;
    flags |= IORING_ENTER_EXT_ARG;
    arg = &ga;
    argsz = sizeof ga;
  }
  for (;;) {
    int n = sys_enter(r->fd, r->pending, min, flags, arg, argsz);
    if (n < 0 && errno == ETIME)
      return; /* the batch timed out: reap what came */
    if (n >= 0) {
      r->pending -= (unsigned)n < r->pending ? (unsigned)n : r->pending;
      if (r->pending == 0)
        return;
      continue;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EBUSY) {
      /* the CQ is full: the caller reaps, then we submit the rest */
      return;
    }
    perror("io_uring_enter");
    _exit(1);
  }
}

static struct io_uring_sqe *sqe_get(ring *r) {
  unsigned head =
      atomic_load_explicit((_Atomic unsigned *)r->sq_head, memory_order_acquire);
  if (r->tail - head >= SQ_ENTRIES) {
    enter(r, false); /* full: submit what we have, no wait */
    head = atomic_load_explicit((_Atomic unsigned *)r->sq_head,
                                memory_order_acquire);
    if (r->tail - head >= SQ_ENTRIES) {
      fprintf(stderr, "uring floor: submission queue stuck\n");
      _exit(1);
    }
  }
  struct io_uring_sqe *s = &r->sqes[r->tail & *r->sq_mask];
  memset(s, 0, sizeof *s);
  r->tail++;
  r->pending++;
  return s;
}

static inline uint64_t ud(int fd, int op) { return ((uint64_t)fd << 8) | (unsigned)op; }

static void queue_accept(ring *r) {
  struct io_uring_sqe *s = sqe_get(r);
  s->opcode = IORING_OP_ACCEPT;
  s->fd = r->lfd;
  s->ioprio = IORING_ACCEPT_MULTISHOT;
  s->accept_flags = SOCK_CLOEXEC; /* blocking: io_uring polls for us */
  s->user_data = ud(r->lfd, OP_ACCEPT);
}

static void queue_recv(ring *r, conn *c) {
  c->receiving = true;
  struct io_uring_sqe *s = sqe_get(r);
  s->opcode = IORING_OP_RECV;
  s->fd = c->fd;
  s->user_data = ud(c->fd, OP_RECV);
  if (r->multishot) {
    s->ioprio = IORING_RECV_MULTISHOT;
    s->flags = IOSQE_BUFFER_SELECT;
    s->buf_group = BUF_GROUP;
  } else {
    s->addr = (uint64_t)(uintptr_t)c->in;
    s->len = sizeof c->in;
  }
}

static void queue_send(ring *r, conn *c) {
  struct io_uring_sqe *s = sqe_get(r);
  s->opcode = IORING_OP_SEND;
  s->fd = c->fd;
  s->addr = (uint64_t)(uintptr_t)(c->out + c->spos);
  s->len = c->olen - c->spos;
  s->msg_flags = MSG_NOSIGNAL;
  s->user_data = ud(c->fd, OP_SEND);
  c->slen = s->len;
  c->sending = true;
}

/* Closes c once nothing of it is in flight; until then shuts it down so
 * the armed recv ends. */
static void conn_close(ring *r, conn *c) {
  c->closing = true;
  if (c->receiving) {
    shutdown(c->fd, SHUT_RDWR);
    return;
  }
  if (c->sending)
    return;
  close(c->fd);
  r->conns[c->fd] = NULL;
  free(c);
}

/* One response per request head in the bytes received; one send for all. */
static void answer(ring *r, conn *c, const char *d, size_t n) {
  const char *end = d + n;
  for (const char *p = d; (p = memmem(p, (size_t)(end - p), "\r\n\r\n", 4));
       p += 4) {
    if (c->olen + sizeof RESP - 1 > sizeof c->out) {
      fprintf(stderr, "uring floor: output buffer full\n");
      break;
    }
    memcpy(c->out + c->olen, RESP, sizeof RESP - 1);
    c->olen += sizeof RESP - 1;
  }
  if (!c->sending && c->olen > c->spos)
    queue_send(r, c);
}

static void on_cqe(ring *r, const struct io_uring_cqe *e) {
  int fd = (int)(e->user_data >> 8);
  int op = (int)(e->user_data & 0xff);
  if (op == OP_ACCEPT) {
    if (!(e->flags & IORING_CQE_F_MORE))
      queue_accept(r); /* the multishot accept ended: re-arm */
    if (e->res < 0 || e->res >= MAX_FD) {
      if (e->res >= 0)
        close(e->res);
      return;
    }
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
      close(e->res);
      return;
    }
    int one = 1;
    c->fd = e->res;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r->conns[c->fd] = c;
    queue_recv(r, c);
    return;
  }
  conn *c = r->conns[fd];
  if (op == OP_RECV) {
    bool more = r->multishot && (e->flags & IORING_CQE_F_MORE);
    if (c == NULL)
      return;
    if (!more)
      c->receiving = false;
    if (e->res > 0 && c->closing) {
      if (r->multishot)
        buf_return(r, e->flags >> IORING_CQE_BUFFER_SHIFT);
      if (!more)
        conn_close(r, c);
      return;
    }
    if (e->res > 0) {
      if (r->multishot) {
        unsigned bid = e->flags >> IORING_CQE_BUFFER_SHIFT;
        answer(r, c, r->bufs + (size_t)bid * BUF_SIZE, (size_t)e->res);
        buf_return(r, bid);
      } else {
        answer(r, c, c->in, (size_t)e->res);
      }
      if (!more)
        queue_recv(r, c);
      return;
    }
    if (e->res == -ENOBUFS && !more) {
      queue_recv(r, c); /* ran out of provided buffers: they are back now */
      return;
    }
    /* EOF or an error: close once the send in flight is done */
    if (more)
      return; /* a final completion without F_MORE follows */
    conn_close(r, c);
    return;
  }
  /* OP_SEND */
  if (c == NULL)
    return;
  c->sending = false;
  if (e->res < 0) {
    c->olen = c->spos = 0;
    conn_close(r, c);
    return;
  }
  c->spos += (unsigned)e->res;
  if (c->spos == c->olen)
    c->spos = c->olen = 0;
  if (c->closing) {
    conn_close(r, c);
    return;
  }
  if (c->olen > c->spos)
    queue_send(r, c); /* the rest, and what queued behind it */
}

void *uring_http_thread(void *arg) {
  const uring_http_args *a = arg;
  ring r;
  memset(&r, 0, sizeof r);
  r.lfd = a->lfd;
  r.multishot = a->multishot;
  r.batch = a->batch;
  r.batch_us = a->batch_us;
  r.minwait_us = a->minwait_us;
  r.conns = calloc(MAX_FD, sizeof *r.conns);
  /* io_uring waits for readiness itself; on an O_NONBLOCK file it would
   * hand EAGAIN back instead. */
  int fl = fcntl(r.lfd, F_GETFL);
  fcntl(r.lfd, F_SETFL, fl & ~O_NONBLOCK);
  int rc = ring_init(&r, a->defer);
  if (rc == 0 && r.multishot)
    rc = bufs_init(&r);
  if (rc != 0 || r.conns == NULL) {
    fprintf(stderr, "uring floor: setup failed: %s\n", strerror(-rc));
    _exit(1);
  }
  queue_accept(&r);
  for (;;) {
    enter(&r, true);
    unsigned head = *r.cq_head;
    unsigned tail = atomic_load_explicit((_Atomic unsigned *)r.cq_tail,
                                         memory_order_acquire);
    while (head != tail) {
      on_cqe(&r, &r.cqes[head & *r.cq_mask]);
      head++;
    }
    /* The entries are read before the kernel may reuse their slots. */
    atomic_store_explicit((_Atomic unsigned *)r.cq_head, head,
                          memory_order_release);
  }
  return NULL;
}
