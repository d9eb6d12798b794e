/* SPDX-License-Identifier: MIT */
/* The monotonic clock and the conversions of public time-outs (seconds as
 * double) into the nanosecond deadlines the loop and the waits use: one
 * clamp, one treatment of NaN and INFINITY (API.md, Conventions). */
#include "base/clock.h"

#include <math.h>
#include <time.h>

uint64_t cor__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cor__duration_ns(double s) {
  if (!(s > 0)) /* negative, zero or NaN */
    return 0;
  /* Compared before the multiplication: converting a double beyond
   * uint64_t's range (INFINITY among them) is undefined behaviour. */
  if (s >= (double)(COR__NS_MAX / 1000000000u))
    return COR__NS_MAX;
  uint64_t ns = (uint64_t)(s * 1e9);
  return ns ? ns : 1; /* a positive time-out below 1 ns still waits */
}

int cor__timeout_deadline(double timeout, uint64_t *deadline_ns) {
  if (isnan(timeout))
    return -EINVAL;
  if (timeout < 0 || timeout >= (double)(COR__NS_MAX / 1000000000u)) {
    *deadline_ns = 0; /* no limit */
    return 0;
  }
  /* 0: the deadline is now, so the first check finds it past. */
  *deadline_ns = cor__now_ns() + cor__duration_ns(timeout);
  return 0;
}

void cor__realtime_abstime(uint64_t deadline_ns, struct timespec *ts) {
  uint64_t now = cor__now_ns();
  uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
  clock_gettime(CLOCK_REALTIME, ts);
  uint64_t ns = (uint64_t)ts->tv_nsec + left % 1000000000u;
  ts->tv_sec += (time_t)(left / 1000000000u + ns / 1000000000u);
  ts->tv_nsec = (long)(ns % 1000000000u);
}
