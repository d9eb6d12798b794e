/* SPDX-License-Identifier: MIT */
/* The census of counted objects (core/object.c): in debug mode, the objects
 * never released, reported at exit by core/resource.c. Internal. */
#ifndef CORIO_CORE_CENSUS_H
#define CORIO_CORE_CENSUS_H

#include <stddef.h>

#include "base/object.h"

/* Non-zero once debug mode was on anywhere in the process. Read-mostly. */
extern int cor__obj_census_on;
/* Turns the census on for every object made from now on (for good). */
void cor__obj_census_enable(void);
/* Takes an object out of the census (no-op when it is not in it): for
 * objects that end without their last cor_release (embedded futures). */
void cor__obj_forget(const cor__obj *o);
/* One report(text) per type with live objects: "1000 futures never released
 * (cor_release), created at:\n  1000 at f.c:12 in fn". Nothing when the
 * census was never on. */
void cor__obj_report_unreleased(void (*report)(const char *text));

#endif
