/* SPDX-License-Identifier: MIT */
/* Counted objects (core/base/object.c). Not installed. */
#ifndef CORIO_CORE_BASE_OBJECT_H
#define CORIO_CORE_BASE_OBJECT_H

#include "base/base.h"

/* Every counted object starts with this header; cor_release dispatches on
 * `type` to the destructor registered for it. */
enum cor__obj_type {
  COR__OBJ_NONE = 0,
  COR__OBJ_LOOP,
  COR__OBJ_FUTURE,
  COR__OBJ_TASK,
  COR__OBJ_CFUTURE,
  COR__OBJ_EXECUTOR,
  COR__OBJ_RUNTIME,
  COR__OBJ_LOCK,
  COR__OBJ_EVENT,
  COR__OBJ_SEMAPHORE,
  COR__OBJ_AS_COMPLETED,
  COR__OBJ_QUEUE,
  COR__OBJ_CHANNEL,
  COR__OBJ_CONDITION,
  COR__OBJ_BARRIER,
  COR__OBJ_TLS_CTX,
  COR__OBJ_MAX
};
typedef struct cor__obj {
  uint32_t type;
  uint32_t refs; /* atomic: any thread may retain/release */
} cor__obj;
typedef void (*cor__obj_free_fn)(cor__obj *obj);
void cor__obj_init(cor__obj *o, enum cor__obj_type type);
void cor__obj_register(enum cor__obj_type type, cor__obj_free_fn fn);

#endif
