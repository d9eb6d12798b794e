/* SPDX-License-Identifier: MIT */
/* Process jobs: the registry of named jobs, and the worker side of the
 * process pool, which runs in a worker process before main.
 *
 * A worker is this same program started again by the pool (posix_spawn of
 * /proc/self/exe) with CORIO_PROCESS_WORKER in its environment. Every
 * translation unit that defines a job with COR_PROCESS_JOB registers it in
 * a constructor of priority 101, which runs before any default-priority
 * constructor of the executable; the first default-priority constructor of
 * such a unit calls cor_process_worker_check, which finds the variable and
 * serves jobs until the pool closes the pipe, then _exits: main never runs
 * in a worker. So job names resolve to the same functions in both
 * processes, and the worker never inherits the parent's threads, locks or
 * memory state (nothing is forked). */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/error.h"
#include "executor_internal.h"

#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

static cor_process_job_def *jobs; /* pushed by constructors, then read-only */

void cor_process_job_register(cor_process_job_def *def) {
  if (def == NULL || def->name == NULL || def->fn == NULL) {
    cor__bad_arg("cor_process_job_register",
                 def == NULL ? "def is NULL" : "def has no name or fn");
    errno = EINVAL;
    return;
  }
  /* Constructors run on one thread; a library loaded later (dlopen) from
   * another thread still publishes the node with release semantics. */
  def->next = ck_pr_load_ptr(&jobs);
  ck_pr_store_ptr(&jobs, def);
}

const cor_process_job_def *cor__process_job_find(const char *name) {
  for (cor_process_job_def *d = ck_pr_load_ptr(&jobs); d; d = d->next)
    if (strcmp(d->name, name) == 0)
      return d;
  return NULL;
}

int cor_bytes_set(cor_bytes_t *out, const void *data, size_t len) {
  if (out == NULL || (data == NULL && len > 0))
    return cor__bad_arg("cor_bytes_set", out == NULL
                                             ? "out is NULL"
                                             : "data is NULL with len > 0");
  void *p = NULL;
  if (len > 0) {
    if ((p = malloc(len)) == NULL)
      return -ENOMEM;
    memcpy(p, data, len);
  }
  free(out->data);
  out->data = p;
  out->len = len;
  return 0;
}

/* ------------------------------------------------------------ the worker */

static void write_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      _exit(0); /* the pool is gone */
    }
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
}

static void run_one(int out, const cor__preq *h, const char *name,
                    const unsigned char *in, size_t max_payload) {
  static const cor_process_job_def *last;
  char nm[256];
  size_t nl = h->name_len < sizeof nm - 1 ? h->name_len : sizeof nm - 1;
  memcpy(nm, name, nl);
  nm[nl] = 0;
  const cor_process_job_def *d = last && strcmp(last->name, nm) == 0
                                     ? last
                                     : cor__process_job_find(nm);
  cor_bytes_t res = {NULL, 0};
  char *msg = NULL;
  char buf[400];
  int rc;
  if (d == NULL) {
    rc = -EINVAL;
    snprintf(buf, sizeof buf, "no process job named '%s' in the worker", nm);
  } else {
    last = d;
    rc = d->fn(in, h->len, &res);
    if (rc < 0) {
      const char *file;
      int line;
      cor__fail_take(rc, &msg, &file, &line);
    } else {
      rc = 0;
      if (res.len > max_payload) {
        rc = -EMSGSIZE;
        snprintf(buf, sizeof buf,
                 "process job '%s' returned %zu bytes, above max_payload %zu",
                 nm, res.len, max_payload);
      }
    }
  }
  const char *m = msg ? msg : (rc < 0 && (d == NULL || rc == -EMSGSIZE) ? buf : NULL);
  size_t ml = m ? strlen(m) : 0;
  if (ml > 4096)
    ml = 4096;
  cor__prep r = {.seq = h->seq,
                 .code = rc,
                 .msg_len = (uint32_t)ml,
                 .len = rc == 0 ? (uint32_t)res.len : 0};
  struct iovec iov[3] = {{&r, sizeof r},
                         {(void *)m, ml},
                         {res.data, r.len}};
  /* One write per job, before the next one starts: when a job kills the
   * worker, every earlier result has reached the pool, which can then name
   * the job that died exactly. */
  write_all(out, iov, 3);
  free(res.data);
  cor__free(msg);
}

static _Noreturn void worker_loop(int in, int out, size_t max_payload) {
  size_t cap = 1 << 16, len = 0;
  unsigned char *buf = malloc(cap);
  if (buf == NULL)
    _exit(70);
  for (;;) {
    ssize_t r = read(in, buf + len, cap - len);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      _exit(0);
    }
    if (r == 0)
      _exit(0); /* the pool closed the pipe: shutdown */
    len += (size_t)r;
    size_t off = 0;
    for (;;) {
      if (len - off < sizeof(cor__preq))
        break;
      cor__preq h;
      memcpy(&h, buf + off, sizeof h);
      size_t need = sizeof h + h.name_len + h.len;
      if (len - off < need) {
        if (need > cap) { /* a big payload: grow to hold the whole frame */
          size_t ncap = cap;
          while (ncap < need)
            ncap *= 2;
          memmove(buf, buf + off, len - off);
          len -= off;
          off = 0;
          unsigned char *nb = realloc(buf, ncap);
          if (nb == NULL)
            _exit(70);
          buf = nb;
          cap = ncap;
        }
        break;
      }
      run_one(out, &h, (const char *)buf + off + sizeof h,
              buf + off + sizeof h + h.name_len, max_payload);
      off += need;
    }
    memmove(buf, buf + off, len - off);
    len -= off;
  }
}

void cor_process_worker_check(void) {
  static int checked;
  if (checked)
    return;
  checked = 1;
  const char *e = getenv(COR__PWORKER_ENV);
  if (e == NULL)
    return;
  int in = -1, out = -1;
  long ppid = 0;
  unsigned long long maxp = 0;
  int ok = sscanf(e, "%d,%d,%ld,%llu", &in, &out, &ppid, &maxp) == 4;
  /* Never leak the marker to programs this one starts. */
  unsetenv(COR__PWORKER_ENV);
  if (!ok || ppid != (long)getppid())
    return; /* inherited by accident by a grandchild: be the application */
  /* The pool may die without closing our pipe (SIGKILL): follow it. The
   * second getppid closes the race with a parent that died before prctl. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (ppid != (long)getppid())
    _exit(0);
  prctl(PR_SET_NAME, "cor-pworker");
  worker_loop(in, out, (size_t)maxp);
}
