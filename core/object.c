/* SPDX-License-Identifier: MIT */
/* Reference counting shared by every counted object. */
#include "internal.h"

static cor__obj_free_fn obj_free[COR__OBJ_MAX];

void cor__obj_init(cor__obj *o, enum cor__obj_type type) {
  o->type = type;
  o->refs = 1;
}

void cor__obj_register(enum cor__obj_type type, cor__obj_free_fn fn) {
  obj_free[type] = fn;
}

void *cor_retain(void *obj) {
  if (obj == NULL)
    return NULL;
  cor__obj *o = obj;
  COR_ASSERT(o->type > COR__OBJ_NONE && o->type < COR__OBJ_MAX);
  ck_pr_inc_32(&o->refs);
  return obj;
}

void cor_release(void *obj) {
  if (obj == NULL)
    return;
  cor__obj *o = obj;
  COR_ASSERT(o->type > COR__OBJ_NONE && o->type < COR__OBJ_MAX);
  /* The decrement is a full barrier (lock xadd / ck's fenced dec): every
   * write the releasing thread made happens before the free below. */
  bool zero = false;
  ck_pr_dec_32_zero(&o->refs, &zero);
  if (zero) {
    ck_pr_fence_acquire();
    COR_ASSERT(obj_free[o->type] != NULL);
    obj_free[o->type](o);
  }
}
