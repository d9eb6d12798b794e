/* SPDX-License-Identifier: MIT */
/* Invalid-argument reports (core/base/error.c; COR_ASSERT is in
 * base/base.h). Not installed. */
#ifndef CORIO_CORE_BASE_ERROR_H
#define CORIO_CORE_BASE_ERROR_H

#include "base/base.h"

/* Invalid arguments (core/base/error.c): one ERROR record
 * "<call>(): invalid argument: <what>" (what names the argument: "s is
 * NULL"), then -EINVAL; the _ptr form sets errno = EINVAL and returns NULL.
 * Only for the branch a public call already takes on bad input, so the
 * fast path gains nothing. */
__attribute__((cold, noinline)) int cor__bad_arg(const char *call,
                                                 const char *what);
__attribute__((cold, noinline)) void *cor__bad_arg_ptr(const char *call,
                                                       const char *what);

#endif
