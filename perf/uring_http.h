/* SPDX-License-Identifier: MIT */
/* The io_uring floor server of perf/uring_http.c (workload
 * limit_http_uring in perf/wl_net.c). */
#ifndef CORIO_PERF_URING_HTTP_H
#define CORIO_PERF_URING_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  int lfd;        /* this thread's listening socket (SO_REUSEPORT) */
  bool multishot; /* multishot recv with provided buffers, else one-shot */
  bool defer;     /* SINGLE_ISSUER | DEFER_TASKRUN */
  unsigned batch;    /* wait for this many completions (1: any) ... */
  unsigned batch_us; /* ... or this long, whichever comes first */
  unsigned minwait_us; /* >0: the kernel's min-timeout wait instead: batch
                          completions, or any after this long */
} uring_http_args;

/* 0 when io_uring can be set up here; else -1 with the reason in why. */
int uring_http_probe(char *why, size_t len);

/* Serves forever on a->lfd (a pthread body; exits the process on a setup
 * failure). */
void *uring_http_thread(void *arg);

#endif
