/* SPDX-License-Identifier: MIT */
/* File workloads: file_read (C tasks keep 4 KiB reads of a cached 64 MiB
 * file in flight with cor_file_pread: on the loop's io_uring, or with
 * uring=0 on corio's file pool) and peer_uv_file (the same reads through
 * libuv's uv_fs_read on its thread pool: perf/peer_uv_file.c, built by
 * `make peers`). Definitions: shared/perf-workloads.md. Every read is
 * checked against the block it asked for (perf/file_pattern.h). */
#include "bench.h"
#include "file_pattern.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes the pattern file (MB MiB) and reads it once so it is cached. */
static void make_file(bench_ctx *ctx, char *path, size_t cap, long mb) {
  snprintf(path, cap, "/tmp/corio-bench-file-%d", (int)getpid());
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    bench_fail(ctx, "open %s: %s", path, strerror(errno));
  uint64_t blocks = (uint64_t)mb * 256;
  uint32_t w[FP_BLOCK / 4];
  for (uint64_t b = 0; b < blocks; b++) {
    fp_fill(w, b);
    if (write(fd, w, sizeof w) != (ssize_t)sizeof w)
      bench_fail(ctx, "write %s: %s", path, strerror(errno));
  }
  char buf[1 << 16];
  lseek(fd, 0, SEEK_SET);
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
}

/* ================================================= file_read */

static struct {
  const char *path;
  cor_file_t *f;
  uint64_t blocks;
  long todo, issued, done, bad;
} fr;

static int fr_reader(void *arg, void **r) {
  uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(uintptr_t)arg;
  char *buf = malloc(FP_BLOCK);
  while (fr.issued < fr.todo) {
    fr.issued++;
    uint64_t b = fp_next(&rng, fr.blocks);
    ssize_t k = cor_file_pread(fr.f, buf, FP_BLOCK, (off_t)(b * FP_BLOCK));
    if (k != (ssize_t)FP_BLOCK || !fp_check(buf, b))
      fr.bad++;
    fr.done++;
  }
  free(buf);
  return 0;
}

static int fr_main(void *arg, void **r) {
  long c = (long)(intptr_t)arg;
  int rc = cor_file_open(fr.path, O_RDONLY, 0, &fr.f);
  if (rc != 0)
    return rc;
  cor_task_t **t = calloc((size_t)c, sizeof *t);
  cor_future_t **f = calloc((size_t)c, sizeof *f);
  for (long i = 0; i < c; i++) {
    t[i] = cor_create_task(NULL, cor_coro(fr_reader, (void *)(intptr_t)(i + 1)),
                           NULL);
    f[i] = cor_task_future(t[i]);
  }
  rc = cor_gather(f, (size_t)c, NULL, NULL);
  for (long i = 0; i < c; i++)
    cor_release(t[i]);
  free(t);
  free(f);
  cor_file_close(fr.f);
  cor_file_free(fr.f);
  return rc;
}

static int wl_file_read(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 400000);
  long c = bench_param_long(ctx, "C", 16);
  long mb = bench_param_long(ctx, "MB", 64);
  long uring = bench_param_long(ctx, "uring", 1);
  if (n < 1 || c < 1 || mb < 1)
    bench_fail(ctx, "N, C and MB must be >= 1");
  char path[64];
  make_file(ctx, path, sizeof path, mb);
  memset(&fr, 0, sizeof fr);
  fr.path = path;
  fr.blocks = (uint64_t)mb * 256;
  fr.todo = n;
  cor_loop_opts o = {.io_uring = uring ? 0 : -1};
  cor_loop_t *loop = cor_loop_new(&o);
  if (loop == NULL)
    bench_fail(ctx, "cor_loop_new: %s", strerror(errno));
  cor_task_t *main = cor_create_task(loop, cor_coro(fr_main, (void *)(intptr_t)c),
                                     "main");
  uint64_t cpu0 = bench_cpu_ns();
  double t0 = bench_now();
  BENCH_CHECK_RC(ctx, cor_loop_run_until_complete(loop, cor_task_future(main)),
                 "run");
  double t1 = bench_now();
  uint64_t cpu1 = bench_cpu_ns();
  BENCH_CHECK_RC(ctx, cor_future_result(cor_task_future(main), NULL), "main");
  cor_release(main);
  BENCH_CHECK_RC(ctx, cor_loop_close(loop), "cor_loop_close");
  cor_release(loop);
  unlink(path);
  if (fr.done != n || fr.bad != 0)
    bench_fail(ctx, "%ld reads of %ld done, %ld wrong", fr.done, n, fr.bad);
  bench_report(ctx, (uint64_t)n, t1 - t0, " CPU_NS_PER_OP=%.0f",
               (double)(cpu1 - cpu0) / (double)n);
  return 0;
}

BENCH_WORKLOAD(file_read, wl_file_read, "N=400000,C=16,MB=64,uring=1")

/* ================================================= peer_uv_file */

static int wl_peer_uv_file(bench_ctx *ctx) {
  long n = bench_param_long(ctx, "N", 400000);
  long c = bench_param_long(ctx, "C", 16);
  long mb = bench_param_long(ctx, "MB", 64);
  if (access("perf/peer_uv_file", X_OK) != 0)
    bench_skip(ctx, "perf/peer_uv_file was not built (needs libuv1-dev)");
  char path[64];
  make_file(ctx, path, sizeof path, mb);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "perf/peer_uv_file %s %ld %ld %ld", path,
           mb * 256, n, c);
  uint64_t cpu0 = bench_cpu_ns();
  (void)cpu0;
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    bench_fail(ctx, "popen: %s", strerror(errno));
  unsigned long long reads = 0, bad = 1;
  double secs = 0;
  int got = fscanf(p, "READS=%llu SECONDS=%lf BAD=%llu", &reads, &secs, &bad);
  int st = pclose(p);
  unlink(path);
  if (got != 3 || st != 0 || bad != 0 || reads != (unsigned long long)n)
    bench_fail(ctx, "peer: %d fields, status %d, %llu reads, %llu wrong", got,
               st, reads, bad);
  bench_report(ctx, reads, secs, NULL);
  return 0;
}

BENCH_WORKLOAD(peer_uv_file, wl_peer_uv_file, "N=400000,C=16,MB=64")
