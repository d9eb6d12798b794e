/* SPDX-License-Identifier: MIT */
/* subprocess: child processes from a task, pipes as streams.
 *
 *   examples/subprocess
 *
 * Sorts a few lines through `sort` (stdin and stdout as streams), reads an
 * exit code, and kills a child that would run too long. Each wait goes
 * through the child's pidfd: no SIGCHLD handler, no blocking. */
#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

static int run(void *arg, void **res) {
  /* 1. both pipes: write, close stdin (EOF for sort), read the output */
  const char *sort_argv[] = {"sort", NULL};
  cor_subprocess_opts o = {.stdin_mode = COR_STDIO_PIPE,
                           .stdout_mode = COR_STDIO_PIPE};
  cor_process_t *p;
  int rc = cor_subprocess_exec(sort_argv, &o, &p);
  if (rc != 0)
    return cor_fail(rc, "cannot run sort: %s", cor_strerror(rc));
  const char text[] = "pear\napple\nfig\n";
  cor_stream_t *in = cor_process_stdin(p), *out = cor_process_stdout(p);
  cor_stream_write(in, text, sizeof text - 1);
  cor_stream_close(in);
  char line[128];
  ssize_t n;
  while ((n = cor_stream_readline(out, line, sizeof line)) > 0)
    printf("sorted: %.*s", (int)n, line);
  int status;
  cor_process_wait(p, COR_FOREVER, &status);
  printf("sort exited with %d\n", status);
  cor_process_free(p);

  /* 2. an exit code */
  const char *exit_argv[] = {"sh", "-c", "exit 3", NULL};
  if ((rc = cor_subprocess_exec(exit_argv, NULL, &p)) != 0)
    return rc;
  cor_process_wait(p, COR_FOREVER, &status);
  printf("sh exited with %d\n", status);
  cor_process_free(p);

  /* 3. a child that runs too long: wait with a time-out, then kill it */
  const char *sleep_argv[] = {"sleep", "30", NULL};
  if ((rc = cor_subprocess_exec(sleep_argv, NULL, &p)) != 0)
    return rc;
  if (cor_process_wait(p, 0.1, &status) == -ETIMEDOUT) {
    cor_process_kill(p, SIGKILL);
    cor_process_wait(p, COR_FOREVER, &status);
  }
  printf("sleep ended with %d (killed by signal %d)\n", status, -status);
  cor_process_free(p);
  fflush(stdout);
  return 0;
}

int main(void) {
  int rc = cor_run(run, NULL, NULL);
  if (rc != 0)
    fprintf(stderr, "subprocess: %s\n", cor_strerror(rc));
  return rc == 0 ? 0 : 1;
}
