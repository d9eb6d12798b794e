/* SPDX-License-Identifier: MIT */
/* What the reports of things never released, closed or awaited share
 * across layers; defined in core/diag/resource.c, declared here so the
 * lower layers (objects, tasks) that record what those reports need can
 * reach them without including diag/. Not installed. */
#ifndef CORIO_CORE_BASE_REPORT_H
#define CORIO_CORE_BASE_REPORT_H

#include "base/base.h"

/* Bumped in the child of every fork: what the parent made is the parent's
 * to report. Relaxed atomic. */
extern unsigned cor__fork_gen;
/* CORIO_DEBUG in the environment (objects not made on a loop). */
bool cor__debug_env(void);

#endif
