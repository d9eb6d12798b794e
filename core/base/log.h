/* SPDX-License-Identifier: MIT */
/* The library's own logging (core/base/log.c). Not installed. */
#ifndef CORIO_CORE_BASE_LOG_H
#define CORIO_CORE_BASE_LOG_H

#include "base/base.h"

/* Logs with "file:line" of the corio call site only when the level passes. */
#define COR_LOG(level, ...)                                                    \
  do {                                                                         \
    if (cor_log_enabled(level))                                                \
      cor_log(level, __VA_ARGS__);                                             \
  } while (0)
void cor__log_init_from_env(void);

#endif
