/* SPDX-License-Identifier: MIT */
/* File I/O from tasks (include/corio/file.h): each operation goes to the
 * loop's io_uring when it has one (and the kernel has the opcode), else to
 * the file pool of core/offload.c. Either way the task waits on an embedded
 * future; a cancelled operation is waited for to its end (an io_uring op
 * is asked to stop with an async cancel first), so the kernel or the
 * helper thread never touches the caller's buffer after the return. */
#include "base/alloc.h"
#include "base/base.h"
#include "base/error.h"
#include "base/list.h"
#include "base/log.h"
#include "loop/loop.h"
#include "loop/uring.h"
#include "net/offload.h"

#include <corio/file.h>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define MAX_IO ((size_t)1 << 30)

struct cor_file {
  struct cor_loop *loop; /* held; the opener's */
  int fd;                /* -1 once closed */
  int close_fd;          /* the descriptor to close when ops reach 0 */
  unsigned ops;          /* operations running on it */
  bool closed;
};

enum { OP_OPEN, OP_READ, OP_WRITE, OP_FSYNC, OP_CLOSE };

/* ------------------------------------------------------------ io_uring */

/* Opcode support, probed once per process (the kernel's, not a ring's). */
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static bool have_op[5];
static void probe(void) {
  struct io_uring_probe *p = io_uring_get_probe();
  if (p == NULL)
    return;
  have_op[OP_OPEN] = io_uring_opcode_supported(p, IORING_OP_OPENAT);
  have_op[OP_READ] = io_uring_opcode_supported(p, IORING_OP_READ);
  have_op[OP_WRITE] = io_uring_opcode_supported(p, IORING_OP_WRITE);
  have_op[OP_FSYNC] = io_uring_opcode_supported(p, IORING_OP_FSYNC);
  have_op[OP_CLOSE] = io_uring_opcode_supported(p, IORING_OP_CLOSE);
  io_uring_free_probe(p);
}

/* An op in flight, on its task's stack, linked into its ring's file_ops
 * until it completes (or the ring is lost). */
typedef struct cor__file_op {
  cor__uop op; /* first */
  struct cor__file_op *prev, *next;
  cor__uring *u;
  struct cor_future fut;
  bool waiting, done, lost;
  int res;
} ring_op;

static void ring_op_unlink(ring_op *o) {
  cor__list_unlink(&o->u->file_ops, o);
}

static void ring_op_finish(ring_op *o, int res) {
  ring_op_unlink(o);
  o->res = res;
  o->done = true;
  cor__wake_embedded(&o->fut, o->waiting, 0);
}

static void ring_op_done(cor__uop *op, int res, unsigned flags) {
  (void)flags;
  ring_op *o = cor__container_of(op, ring_op, op);
  if (!o->lost)
    ring_op_finish(o, res);
}

void cor__file_ops_ring_lost(cor__uring *u) {
  while (u->file_ops) {
    ring_op *o = u->file_ops;
    o->lost = true;
    ring_op_finish(o, COR_ETHREAD);
  }
}

/* The loop's ring when it can take `kind`, else NULL (the pool then). */
static cor__uring *ring_for(struct cor_loop *loop, int kind) {
  pthread_once(&probe_once, probe);
  if (!have_op[kind])
    return NULL;
  return cor__uring_get(loop);
}

/* Submits the prepared sqe's op and waits for its completion: to the end,
 * even when cancelled (then the op is asked to stop, and -ECANCELED is
 * returned once it did). */
static int ring_wait(struct cor_loop *loop, cor__uring *u,
                     struct io_uring_sqe *sqe, ring_op *o, const char *call,
                     const void *site) {
  o->op.cb = ring_op_done;
  o->op.quick = false;
  o->u = u;
  o->next = u->file_ops;
  if (o->next)
    o->next->prev = o;
  u->file_ops = o;
  io_uring_sqe_set_data(sqe, &o->op);
  u->inflight++;
  int rc = cor__wait_embedded(loop, &o->fut, &o->waiting, 0, call, site);
  if (!o->done && cor__uring_get(loop) == u) {
    struct io_uring_sqe *c = cor__uring_sqe(u);
    if (c) {
      io_uring_prep_cancel(c, &o->op, 0);
      io_uring_sqe_set_data64(c, COR__URING_TAG_IGNORE);
      u->quick++;
    }
  }
  while (!o->done)
    (void)cor__wait_embedded(loop, &o->fut, &o->waiting, 0, call, site);
  if (o->lost)
    return COR_ETHREAD;
  return rc != 0 ? rc : o->res;
}

/* ------------------------------------------------------------ the pool */

typedef struct {
  cor__job job; /* first */
  int kind;
  int fd, flags, mode;
  const char *path;
  void *buf;
  size_t n;
  off_t off;
  ssize_t res;
} file_job;

static void file_job_run(cor__job *jb) {
  file_job *j = (file_job *)jb;
  ssize_t r;
  switch (j->kind) {
  case OP_OPEN:
    r = open(j->path, j->flags, j->mode);
    break;
  case OP_READ:
    do
      r = pread(j->fd, j->buf, j->n, j->off);
    while (r < 0 && errno == EINTR);
    break;
  case OP_WRITE:
    do
      r = pwrite(j->fd, j->buf, j->n, j->off);
    while (r < 0 && errno == EINTR);
    break;
  case OP_FSYNC:
    r = fsync(j->fd);
    break;
  default:
    r = close(j->fd);
    break;
  }
  j->res = r < 0 ? -errno : r;
}

static void file_job_free(cor__job *jb) { cor__free(jb); }

/* ------------------------------------------------------------ one operation */

/* Runs one operation for the calling task: on the ring, or on the pool.
 * Returns the syscall's result or negated errno, or -ECANCELED / -ENOMEM /
 * COR_ENOTASK. A cancelled open that opened anyway closes what it got. */
static ssize_t run_op(int kind, int fd, const char *path, int flags, int mode,
                      void *buf, size_t n, off_t off, const char *call,
                      const void *site) {
  struct cor_loop *loop = cor__tls_loop;
  if (cor__tls_task == NULL || loop == NULL)
    return COR_ENOTASK;
  if (n > MAX_IO)
    n = MAX_IO;
  cor__uring *u = ring_for(loop, kind);
  if (u) {
    struct io_uring_sqe *sqe = cor__uring_sqe(u);
    if (sqe) {
      switch (kind) {
      case OP_OPEN:
        io_uring_prep_openat(sqe, AT_FDCWD, path, flags, (mode_t)mode);
        break;
      case OP_READ:
        io_uring_prep_read(sqe, fd, buf, (unsigned)n, (uint64_t)off);
        break;
      case OP_WRITE:
        io_uring_prep_write(sqe, fd, buf, (unsigned)n, (uint64_t)off);
        break;
      case OP_FSYNC:
        io_uring_prep_fsync(sqe, fd, 0);
        break;
      default:
        io_uring_prep_close(sqe, fd);
        break;
      }
      ring_op o = {0};
      int rc = ring_wait(loop, u, sqe, &o, call, site);
      if (rc == -ECANCELED && kind == OP_OPEN && o.res >= 0)
        close(o.res);
      if (kind == OP_CLOSE && o.res == -ECANCELED)
        close(fd); /* stopped before it ran: no descriptor may leak */
      return rc;
    }
  }
  file_job *j = cor__calloc(1, sizeof *j);
  if (j == NULL)
    return -ENOMEM;
  j->job.refs = 1;
  j->job.run = file_job_run;
  j->job.free = file_job_free;
  j->kind = kind;
  j->fd = fd;
  j->path = path;
  j->flags = flags;
  j->mode = mode;
  j->buf = buf;
  j->n = n;
  j->off = off;
  j->res = -ECANCELED; /* unless it ran */
  int rc = cor__job_run(&cor__file_pool, &j->job, 0, true, call, site);
  ssize_t res = rc != 0 ? rc : j->res;
  if (rc == -ECANCELED && kind == OP_OPEN && j->res >= 0)
    close((int)j->res);
  if (kind == OP_CLOSE && j->res == -ECANCELED)
    close(fd); /* dropped before a thread took it: no descriptor may leak */
  cor__job_unref(&j->job);
  return res;
}

/* ------------------------------------------------------------ the calls */

int cor_file_open(const char *path, int flags, int mode, cor_file_t **out) {
  if (path == NULL || out == NULL)
    return cor__bad_arg("cor_file_open",
                        path == NULL ? "path is NULL" : "out is NULL");
  *out = NULL;
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  cor_file_t *f = cor__calloc(1, sizeof *f);
  if (f == NULL)
    return -ENOMEM;
  ssize_t r = run_op(OP_OPEN, -1, path, flags | O_CLOEXEC, mode, NULL, 0, 0,
                     "cor_file_open", __builtin_return_address(0));
  if (r < 0) {
    cor__free(f);
    return (int)r;
  }
  f->loop = cor_retain(cor__tls_loop);
  f->fd = (int)r;
  f->close_fd = -1;
  *out = f;
  return 0;
}

/* The checks every operation on an open file makes. */
static int file_check(const cor_file_t *f, const char *call) {
  if (f == NULL)
    return cor__bad_arg(call, "f is NULL");
  COR__CHECK_THREAD(f->loop, call);
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  if (f->closed)
    return COR_ECLOSED;
  return 0;
}

/* An operation finished: the deferred close, when it was the last one. */
static void op_end(cor_file_t *f) {
  if (--f->ops == 0 && f->close_fd >= 0) {
    if (close(f->close_fd) != 0)
      COR_LOG(COR_LOG_WARNING, "cor_file_close: close(%d): %s", f->close_fd,
              strerror(errno));
    f->close_fd = -1;
  }
}

static ssize_t file_io(cor_file_t *f, int kind, void *buf, size_t n, off_t off,
                       const char *call, const void *site) {
  int rc = file_check(f, call);
  if (rc != 0)
    return rc;
  if ((buf == NULL && n > 0) || off < 0)
    return cor__bad_arg(call, off < 0 ? "off is negative"
                                      : "buf is NULL with n > 0");
  if (n == 0)
    return 0;
  f->ops++;
  ssize_t r = run_op(kind, f->fd, NULL, 0, 0, buf, n, off, call, site);
  op_end(f);
  return r;
}

ssize_t cor_file_pread(cor_file_t *f, void *buf, size_t n, off_t off) {
  return file_io(f, OP_READ, buf, n, off, "cor_file_pread",
                 __builtin_return_address(0));
}

ssize_t cor_file_pwrite(cor_file_t *f, const void *buf, size_t n, off_t off) {
  return file_io(f, OP_WRITE, (void *)buf, n, off, "cor_file_pwrite",
                 __builtin_return_address(0));
}

int cor_file_fsync(cor_file_t *f) {
  int rc = file_check(f, "cor_file_fsync");
  if (rc != 0)
    return rc;
  f->ops++;
  ssize_t r = run_op(OP_FSYNC, f->fd, NULL, 0, 0, NULL, 0, 0,
                     "cor_file_fsync", __builtin_return_address(0));
  op_end(f);
  return (int)r;
}

int cor_file_close(cor_file_t *f) {
  if (f == NULL)
    return cor__bad_arg("cor_file_close", "f is NULL");
  COR__CHECK_THREAD(f->loop, "cor_file_close");
  if (f->closed)
    return COR_ECLOSED;
  f->closed = true;
  int fd = f->fd;
  f->fd = -1;
  if (f->ops > 0) {
    f->close_fd = fd; /* the last running operation closes it */
    return 0;
  }
  if (cor__tls_task == NULL) {
    close(fd);
    return COR_ENOTASK;
  }
  ssize_t r = run_op(OP_CLOSE, fd, NULL, 0, 0, NULL, 0, 0, "cor_file_close",
                     __builtin_return_address(0));
  if (r == -ECANCELED)
    r = 0; /* the close ran to its end all the same */
  if (r < 0 && r != COR_ENOTASK)
    COR_LOG(COR_LOG_WARNING, "cor_file_close: close(%d): %s", fd,
            strerror((int)-r));
  return 0;
}

void cor_file_free(cor_file_t *f) {
  if (f == NULL)
    return;
  COR__CHECK_THREAD_VOID(f->loop, "cor_file_free");
  if (!f->closed)
    close(f->fd);
  else if (f->close_fd >= 0)
    close(f->close_fd);
  cor_release(f->loop);
  cor__free(f);
}

int cor_file_fd(const cor_file_t *f) {
  if (f == NULL)
    return cor__bad_arg("cor_file_fd", "f is NULL");
  COR__CHECK_THREAD(f->loop, "cor_file_fd");
  return f->fd;
}
