/* SPDX-License-Identifier: MIT */
/* The file of the file_read workloads (perf/wl_file.c and its libuv peer
 * perf/peer_uv_file.c): BLOCKS blocks of 4 KiB, block b filled with the
 * 32-bit words b * 1024 + i, so a read of block b checks itself. Header-only,
 * shared by both programs. */
#ifndef CORIO_PERF_FILE_PATTERN_H
#define CORIO_PERF_FILE_PATTERN_H

#include <stdint.h>
#include <string.h>

#define FP_BLOCK 4096u

static inline void fp_fill(uint32_t *w, uint64_t b) {
  for (uint32_t i = 0; i < FP_BLOCK / 4; i++)
    w[i] = (uint32_t)(b * 1024u + i);
}

/* True when buf holds block b. */
static inline int fp_check(const void *buf, uint64_t b) {
  const uint32_t *w = buf;
  for (uint32_t i = 0; i < FP_BLOCK / 4; i += 97)
    if (w[i] != (uint32_t)(b * 1024u + i))
      return 0;
  return w[FP_BLOCK / 4 - 1] == (uint32_t)(b * 1024u + FP_BLOCK / 4 - 1);
}

/* The next block of a reader's pseudo-random walk (xorshift). */
static inline uint64_t fp_next(uint64_t *state, uint64_t blocks) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *state = x;
  return x % blocks;
}

#endif
