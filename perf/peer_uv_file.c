/* SPDX-License-Identifier: MIT */
/* peer_uv_file: the libuv peer of perf/bench's `file_read` workload, for
 * its `peer_uv_file` line. Not part of corio and never linked with it: the
 * same reads made with uv_fs_read on libuv's thread pool (its default of 4
 * threads, or UV_THREADPOOL_SIZE).
 *
 *   perf/peer_uv_file PATH BLOCKS N C
 *
 * keeps C reads of 4 KiB in flight at pseudo-random block offsets of PATH
 * (made by the workload: perf/file_pattern.h) until N were done, checks
 * every block, and prints "READS=<n> SECONDS=<s> BAD=<k>". */
#include "file_pattern.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
  uv_fs_t req;
  uint64_t block, rng;
  char buf[FP_BLOCK];
} reader;

static uv_file file;
static uint64_t blocks, todo, issued, done, bad;

static void issue(reader *r);

static void on_read(uv_fs_t *req) {
  reader *r = req->data;
  if (req->result != (ssize_t)FP_BLOCK || !fp_check(r->buf, r->block))
    bad++;
  uv_fs_req_cleanup(req);
  done++;
  if (issued < todo)
    issue(r);
}

static void issue(reader *r) {
  r->block = fp_next(&r->rng, blocks);
  uv_buf_t b = uv_buf_init(r->buf, FP_BLOCK);
  r->req.data = r;
  issued++;
  if (uv_fs_read(uv_default_loop(), &r->req, file, &b, 1,
                 (int64_t)(r->block * FP_BLOCK), on_read) != 0) {
    bad++;
    done++;
  }
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s PATH BLOCKS N C\n", argv[0]);
    return 2;
  }
  blocks = strtoull(argv[2], NULL, 10);
  todo = strtoull(argv[3], NULL, 10);
  long c = strtol(argv[4], NULL, 10);
  file = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (file < 0 || blocks == 0 || c < 1) {
    perror("peer_uv_file");
    return 1;
  }
  reader *rs = calloc((size_t)c, sizeof *rs);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < c && issued < todo; i++) {
    rs[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    issue(&rs[i]);
  }
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("READS=%llu SECONDS=%.6f BAD=%llu\n", (unsigned long long)done, s,
         (unsigned long long)bad);
  free(rs);
  close(file);
  return bad ? 1 : 0;
}
