/* SPDX-License-Identifier: MIT */
/* Subprocesses: posix_spawn, pipes as streams, exit through a pidfd; the
 * shell form and communicate (at the end of the file).
 *
 * The child's exit is watched with a pidfd (Linux 5.3+) registered as a
 * reader on the loop that started it, and reaped with waitid(P_PIDFD): no
 * SIGCHLD handler, no waitpid(-1), so corio never steals another part of
 * the program's children, and it works from any loop's thread. Signals are
 * sent through the pidfd, so a recycled pid is never hit. The child starts
 * with an empty signal mask and default dispositions (loop threads block
 * signals; the application may ignore SIGPIPE). */
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "loop/loop.h"
#include "net/stream_internal.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct cor_process {
  struct cor_loop *loop;
  pid_t pid;
  int pidfd;
  bool exited;
  int status; /* exit code, or -signal */
  cor_stream_t *in, *out, *err;
  struct cor_future wfut;
  bool wwait;
};

static void on_exit_ready(void *arg) {
  cor_process_t *p = arg;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0) {
    if (errno == EINTR)
      return;
    /* ECHILD: someone else reaped it (waitpid(-1) elsewhere): the status
     * is lost; report 255 rather than hang. */
    COR_LOG(COR_LOG_WARNING, "subprocess %d: waitid failed: %s", (int)p->pid,
            strerror(errno));
    si.si_pid = p->pid;
    si.si_code = CLD_EXITED;
    si.si_status = 255;
  }
  if (si.si_pid == 0)
    return; /* not yet (spurious readiness) */
  p->exited = true;
  p->status = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
  cor_loop_remove_reader(p->loop, p->pidfd);
  close(p->pidfd);
  p->pidfd = -1;
  if (p->wwait)
    cor__wake_embedded(&p->wfut, true, 0);
}

static void close_pair(int fds[2]) {
  if (fds[0] >= 0)
    close(fds[0]);
  if (fds[1] >= 0)
    close(fds[1]);
  fds[0] = fds[1] = -1;
}

/* The one spawning path of cor_subprocess_exec and cor_subprocess_shell
 * (`call` names the public call in the logs); argv and out are checked. */
static int spawn(const char *call, const char *const argv[],
                 const cor_subprocess_opts *opts, cor_process_t **out) {
  struct cor_loop *loop = cor__tls_loop;
  if (loop == NULL)
    return COR_ENOTASK;
  cor_subprocess_opts o = {0};
  if (opts)
    o = *opts;
  int modes[3] = {o.stdin_mode, o.stdout_mode, o.stderr_mode};
  if (modes[0] == COR_STDIO_STDOUT || modes[1] == COR_STDIO_STDOUT)
    return cor__bad_arg(call, "COR_STDIO_STDOUT is only for stderr_mode");
  for (int i = 0; i < 3; i++)
    if (modes[i] < COR_STDIO_INHERIT || modes[i] > COR_STDIO_STDOUT)
      return cor__bad_arg(call, "a stdio mode is unknown");
  cor_process_t *p = cor__calloc(1, sizeof *p);
  if (p == NULL)
    return -ENOMEM;
  p->loop = loop;
  p->pidfd = -1;
  int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  int rc = 0;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  for (int i = 0; i < 3 && rc == 0; i++) {
    if (modes[i] == COR_STDIO_PIPE) {
      if (pipe2(pipes[i], O_CLOEXEC) < 0) {
        rc = -errno;
        break;
      }
      /* the child's end: read end for stdin, write end for the others */
      int child_end = i == 0 ? pipes[i][0] : pipes[i][1];
      rc = -posix_spawn_file_actions_adddup2(&fa, child_end, i);
    } else if (modes[i] == COR_STDIO_DEVNULL) {
      rc = -posix_spawn_file_actions_addopen(&fa, i, "/dev/null",
                                             i == 0 ? O_RDONLY : O_WRONLY, 0);
    } else if (modes[i] == COR_STDIO_STDOUT) {
      rc = -posix_spawn_file_actions_adddup2(&fa, 1, 2);
    }
  }
  if (rc == 0 && o.cwd)
    rc = -posix_spawn_file_actions_addchdir_np(&fa, o.cwd);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  if (rc == 0) {
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv,
                         o.envp ? o.envp : environ);
    if (e != 0)
      rc = -e;
    else
      p->pid = pid;
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc != 0) {
    for (int i = 0; i < 3; i++)
      close_pair(pipes[i]);
    cor__free(p);
    return rc;
  }
  /* The child exists from here on: failures below kill and reap it. */
  p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
  if (p->pidfd < 0)
    rc = -errno;
  else
    rc = cor_loop_add_reader(loop, p->pidfd, on_exit_ready, p);
  cor_stream_t **ends[3] = {&p->in, &p->out, &p->err};
  for (int i = 0; i < 3; i++) {
    if (pipes[i][0] < 0)
      continue;
    int mine = i == 0 ? pipes[i][1] : pipes[i][0];
    int theirs = i == 0 ? pipes[i][0] : pipes[i][1];
    close(theirs);
    if (rc != 0) {
      close(mine);
      continue;
    }
    int fl = fcntl(mine, F_GETFL);
    fcntl(mine, F_SETFL, fl | O_NONBLOCK);
    *ends[i] = cor__stream_new(loop, mine, COR__STREAM_PIPE, i != 0);
    if (*ends[i] == NULL)
      rc = -errno;
  }
  if (rc != 0) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->exited = true;
    if (p->pidfd >= 0) {
      cor_loop_remove_reader(loop, p->pidfd);
      close(p->pidfd);
      p->pidfd = -1;
    }
    cor_process_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int cor_subprocess_exec(const char *const argv[],
                        const cor_subprocess_opts *opts, cor_process_t **out) {
  if (argv == NULL || argv[0] == NULL || out == NULL)
    return cor__bad_arg("cor_subprocess_exec", argv == NULL ? "argv is NULL"
                                               : argv[0] == NULL
                                                   ? "argv is empty"
                                                   : "out is NULL");
  return spawn("cor_subprocess_exec", argv, opts, out);
}

int cor_subprocess_shell(const char *cmd, const cor_subprocess_opts *opts,
                         cor_process_t **out) {
  if (cmd == NULL || out == NULL)
    return cor__bad_arg("cor_subprocess_shell",
                        cmd == NULL ? "cmd is NULL" : "out is NULL");
  /* asyncio's create_subprocess_shell: the platform's shell, by its path
   * (no PATH search). */
  const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
  return spawn("cor_subprocess_shell", argv, opts, out);
}

cor_stream_t *cor_process_stdin(cor_process_t *p) {
  if (p == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(p->loop, "cor_process_stdin");
  return p->in;
}
cor_stream_t *cor_process_stdout(cor_process_t *p) {
  if (p == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(p->loop, "cor_process_stdout");
  return p->out;
}
cor_stream_t *cor_process_stderr(cor_process_t *p) {
  if (p == NULL)
    return NULL;
  COR__CHECK_THREAD_PTR(p->loop, "cor_process_stderr");
  return p->err;
}
int cor_process_pid(const cor_process_t *p) {
  if (p == NULL)
    return cor__bad_arg("cor_process_pid", "p is NULL");
  COR__CHECK_THREAD(p->loop, "cor_process_pid");
  return (int)p->pid;
}

/* Waits for the exit until deadline dl (0: none); `site` is the public
 * call's return address. */
static int wait_exit(cor_process_t *p, uint64_t dl, const char *call,
                     const void *site) {
  while (!p->exited) {
    int rc = cor__wait_embedded(p->loop, &p->wfut, &p->wwait, dl, call, site);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int cor_process_wait(cor_process_t *p, double timeout, int *status) {
  if (p == NULL)
    return cor__bad_arg("cor_process_wait", "p is NULL");
  COR__CHECK_THREAD(p->loop, "cor_process_wait");
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg("cor_process_wait", "timeout is NaN");
  int rc = wait_exit(p, dl, "cor_process_wait", __builtin_return_address(0));
  if (rc != 0)
    return rc;
  if (status)
    *status = p->status;
  return 0;
}

/* ------------------------------------------------------------ communicate */

/* cor_process_communicate runs one helper task per pipe (the writer of
 * stdin, a reader of stdout, a reader of stderr) on the process's loop, so
 * the three transfers progress together whatever order the child does
 * them in; the calling task only waits (with the call's deadline) for the
 * helpers, then for the exit. The state lives on the caller's stack: the
 * caller never returns before every helper finished (on a time-out or a
 * cancellation it cancels them and waits for them, without a deadline:
 * a cancelled stream call returns at once). Helpers always return 0 and
 * report through comm_done, so no task is ever left with an unretrieved
 * error. */

enum { COMM_CHUNK = 64 * 1024, COMM_FIRST = 4096 };

typedef struct comm comm;

typedef struct comm_reader {
  comm *c;
  cor_stream_t *s;
  bool keep;  /* the caller wants the bytes; else they are dropped */
  char *data; /* malloc'd (the caller frees it): data[len] is a NUL */
  size_t len, cap;
} comm_reader;

struct comm {
  cor_process_t *p;
  const char *in;
  size_t n;
  comm_reader rd[2]; /* stdout, stderr */
  unsigned left;     /* helpers still running */
  int err;           /* the first helper's error */
  struct cor_future wake;
  bool waiting; /* cor__wait_embedded's flag */
};

static void comm_done(comm *c, int rc) {
  if (rc != 0 && rc != -ECANCELED && c->err == 0)
    c->err = rc;
  c->left--;
  cor__wake_embedded(&c->wake, c->waiting, 0);
}

static int comm_write(void *arg, void **res) {
  (void)res;
  comm *c = arg;
  cor_stream_t *s = c->p->in;
  int rc = 0;
  /* In chunks with a drain after each, so that no more than about the
   * high-water mark is ever copied into the stream's buffer. */
  for (size_t off = 0; off < c->n && rc == 0;) {
    size_t k = c->n - off < COMM_CHUNK ? c->n - off : COMM_CHUNK;
    rc = cor_stream_write(s, c->in + off, k);
    if (rc == 0)
      rc = cor_stream_drain(s);
    off += k;
  }
  /* The child left without reading everything: not an error (asyncio). */
  if (rc == -EPIPE || rc == -ECONNRESET)
    rc = 0;
  /* Cancelled (time-out): stdin stays open, as asyncio leaves it. */
  if (rc != -ECANCELED) {
    int crc = cor_stream_close(s);
    if (crc == 0) {
      int wrc = cor_stream_wait_closed(s);
      if (rc == 0 && wrc == -ECANCELED)
        rc = wrc;
    } else if (rc == 0 && c->n > 0) {
      rc = crc; /* the caller closed stdin before: the input was not sent */
    }
  }
  comm_done(c, rc);
  return 0;
}

static int comm_read(void *arg, void **res) {
  (void)res;
  comm_reader *r = arg;
  ssize_t k;
  for (;;) {
    if (r->keep) {
      if (r->cap - r->len < COMM_FIRST) {
        size_t cap = r->cap ? r->cap * 2 : COMM_FIRST * 2;
        char *d = realloc(r->data, cap);
        if (d == NULL) {
          k = -ENOMEM;
          break;
        }
        r->data = d;
        r->cap = cap;
      }
      /* one byte kept for the NUL */
      k = cor_stream_read(r->s, r->data + r->len, r->cap - r->len - 1);
      if (k > 0)
        r->len += (size_t)k;
    } else {
      const char *d;
      k = cor_stream_peek(r->s, 1, &d);
      if (k > 0)
        cor_stream_consume(r->s, (size_t)k);
    }
    if (k <= 0)
      break;
  }
  comm_done(r->c, (int)k);
  return 0;
}

/* Hands a reader's bytes to the caller's cor_bytes_t (or drops them). */
static void comm_give(comm_reader *r, cor_bytes_t *to) {
  if (r->len == 0) {
    free(r->data);
    r->data = NULL;
  } else {
    r->data[r->len] = 0;
    if (r->cap - r->len > COMM_CHUNK) { /* give back a large unused tail */
      char *d = realloc(r->data, r->len + 1);
      if (d)
        r->data = d;
    }
  }
  if (to) {
    to->data = r->data;
    to->len = r->len;
  } else {
    free(r->data);
  }
}

int cor_process_communicate(cor_process_t *p, const void *in, size_t n,
                            cor_bytes_t *out, cor_bytes_t *err,
                            double timeout) {
  static const char call[] = "cor_process_communicate";
  if (p == NULL || (in == NULL && n > 0) || (out != NULL && out == err))
    return cor__bad_arg(call, p == NULL ? "p is NULL"
                              : in == NULL && n > 0
                                  ? "in is NULL with n > 0"
                                  : "out and err are the same cor_bytes_t");
  COR__CHECK_THREAD(p->loop, call);
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg(call, "timeout is NaN");
  if (n > 0 && p->in == NULL)
    return cor__bad_arg(call, "in given (n > 0) but stdin is not a pipe");
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  /* A task of another loop, on the loop of a process nobody runs: the
   * helpers cannot be started there from here. */
  if (cor__tls_loop != p->loop)
    return cor__wrong_thread_report(p->loop, call);
  const void *site = __builtin_return_address(0);
  comm c = {.p = p, .in = in, .n = n};
  cor_stream_t *ends[2] = {p->out, p->err};
  cor_bytes_t *tos[2] = {out, err};
  for (int i = 0; i < 2; i++) {
    c.rd[i] = (comm_reader){.c = &c, .s = ends[i], .keep = tos[i] != NULL};
    if (tos[i]) {
      free(tos[i]->data);
      *tos[i] = (cor_bytes_t){NULL, 0};
    }
  }
  static const char *const names[3] = {"communicate-stdin",
                                        "communicate-stdout",
                                        "communicate-stderr"};
  cor_task_t *tasks[3] = {NULL, NULL, NULL};
  int rc = 0;
  for (int i = 0; i < 3 && rc == 0; i++) {
    if ((i == 0 ? p->in : ends[i - 1]) == NULL)
      continue;
    cor_coro_t *co = i == 0 ? cor_coro(comm_write, &c)
                            : cor_coro(comm_read, &c.rd[i - 1]);
    tasks[i] = co ? cor_create_task(p->loop, co, names[i]) : NULL;
    if (tasks[i] == NULL)
      rc = errno ? -errno : -ENOMEM;
    else
      c.left++;
  }
  while (rc == 0 && c.left > 0 && c.err == 0)
    rc = cor__wait_embedded(p->loop, &c.wake, &c.waiting, dl, call, site);
  /* The deadline and the last helper in one iteration: the helpers say
   * what happened (the exit is checked below, at once when it came). */
  if (rc == -ETIMEDOUT && c.left == 0)
    rc = 0;
  if (rc == 0)
    rc = c.err;
  if (c.left > 0) {
    /* Time-out, cancellation, a helper's error, no memory: stop the others
     * and wait for them, whatever comes (a second cancellation included:
     * they use c). */
    for (int i = 0; i < 3; i++)
      if (tasks[i] && !cor_future_done(cor_task_future(tasks[i])))
        cor_task_cancel(tasks[i], NULL);
    while (c.left > 0) {
      int wrc = cor__wait_embedded(p->loop, &c.wake, &c.waiting, 0, call, site);
      if (wrc == -ECANCELED)
        rc = wrc;
    }
  }
  for (int i = 0; i < 3; i++)
    cor_release(tasks[i]);
  if (rc == 0)
    rc = p->exited ? 0 : wait_exit(p, dl, call, site);
  for (int i = 0; i < 2; i++)
    comm_give(&c.rd[i], tos[i]);
  return rc;
}

int cor_process_kill(cor_process_t *p, int sig) {
  if (p == NULL)
    return cor__bad_arg("cor_process_kill", "p is NULL");
  COR__CHECK_THREAD(p->loop, "cor_process_kill");
  if (p->exited || p->pidfd < 0)
    return -ESRCH;
  if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0)
    return -errno;
  return 0;
}

int cor_process_close(cor_process_t *p) {
  if (p == NULL)
    return cor__bad_arg("cor_process_close", "p is NULL");
  COR__CHECK_THREAD(p->loop, "cor_process_close");
  /* The pipes are the resources the object holds for the caller; the
   * child and its pidfd stay, so cor_process_wait still works. A pipe the
   * caller closed already answers 0 or COR_ECLOSED: both are fine here. */
  cor_stream_t *pipes[3] = {p->in, p->out, p->err};
  for (int i = 0; i < 3; i++)
    if (pipes[i])
      (void)cor_stream_close(pipes[i]);
  return 0;
}

void cor_process_free(cor_process_t *p) {
  if (p == NULL)
    return;
  COR__CHECK_THREAD_VOID(p->loop, "cor_process_free");
  if (!p->exited) {
    /* asyncio's words; through the loop's exception handler, as the other
     * resource warnings. */
    char text[200], repr[64];
    snprintf(text, sizeof text,
             "subprocess %d is still running: freed its process object "
             "(ResourceWarning); it is left running and will not be reaped",
             (int)p->pid);
    snprintf(repr, sizeof repr, "<Process pid=%d running>", (int)p->pid);
    cor_exception_context ctx = {
        .message = text, .level = COR_LOG_WARNING, .object_repr = repr};
    cor_loop_call_exception_handler(p->loop, &ctx);
    if (p->pidfd >= 0) {
      cor_loop_remove_reader(p->loop, p->pidfd);
      close(p->pidfd);
    }
  }
  cor_stream_free(p->in);
  cor_stream_free(p->out);
  cor_stream_free(p->err);
  cor__free(p);
}
