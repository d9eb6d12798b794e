/* SPDX-License-Identifier: MIT */
/* The clock, the one time-out rule and the one spin-then-yield
 * (core/base/clock.c). Not installed. */
#ifndef CORIO_CORE_BASE_CLOCK_H
#define CORIO_CORE_BASE_CLOCK_H

#include "base/base.h"

/* The clock and the one time-out rule (core/base/clock.c; API.md,
 * Conventions). Every public `double` time-out goes through
 * cor__timeout_deadline, every delay or duration through cor__duration_ns,
 * and every wait that needs a CLOCK_REALTIME date (pthread timed waits and
 * joins) through cor__realtime_abstime, so there is one clamp and one
 * treatment of NaN and INFINITY. */
uint64_t cor__now_ns(void); /* CLOCK_MONOTONIC */
/* Durations beyond this (~31.7 years) are clamped to it: later than any
 * loop will run, and far from uint64_t overflow when added to the clock. */
#define COR__NS_MAX ((uint64_t)1000000000 * 1000000000)
/* A delay or duration in seconds as nanoseconds: NaN, negative and zero are
 * 0; +INFINITY and huge values are COR__NS_MAX. */
uint64_t cor__duration_ns(double seconds);
/* A public time-out as a deadline on CLOCK_MONOTONIC: 0 -> now (already
 * expired: answer without waiting); < 0 or +INFINITY -> 0, "no deadline"
 * (what the waits take as no limit); NaN -> -EINVAL. Returns 0 or -EINVAL. */
int cor__timeout_deadline(double timeout, uint64_t *deadline_ns);
/* The CLOCK_REALTIME date at which the monotonic deadline falls (pthread's
 * timed waits). */
void cor__realtime_abstime(uint64_t deadline_ns, struct timespec *ts);
/* The same deadline as a CLOCK_MONOTONIC timespec (condition variables made
 * with pthread_condattr_setclock(CLOCK_MONOTONIC)). */
static inline void cor__monotonic_abstime(uint64_t deadline_ns,
                                          struct timespec *ts) {
  ts->tv_sec = (time_t)(deadline_ns / 1000000000u);
  ts->tv_nsec = (long)(deadline_ns % 1000000000u);
}

/* One step of the tree's bounded spin-then-yield: a pause each call; every
 * 64th call reads the clock (false once `until` passed, so the caller stops
 * spinning) and yields the core (more threads than cores: the thread that
 * would end the spin may be waiting for this one; with nothing else
 * runnable the yield returns at once). *k starts at 0. */
/* The same, storing each clock read it makes in *now (for a caller that
 * uses the spin's last look at the time). */
static inline bool cor__spin_step_at(unsigned *k, uint64_t until,
                                     uint64_t *now) {
  cor__cpu_relax();
  if ((++*k & 63) != 0)
    return true;
  if ((*now = cor__now_ns()) >= until)
    return false;
  sched_yield();
  return true;
}
static inline bool cor__spin_step(unsigned *k, uint64_t until) {
  uint64_t now;
  return cor__spin_step_at(k, until, &now);
}

#endif
