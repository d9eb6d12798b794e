/* SPDX-License-Identifier: MIT */
/* The tree's atomics vocabulary beside ck_pr, for what ck_pr does not say:
 * the memory order. ck_pr_* (Concurrency Kit, remapped onto compiler
 * atomics under TSan in core/internal.h) is for the shared words of the
 * door and the loop's Dekker pair; these name their order in their name,
 * work on any scalar or pointer type, and are compiler builtins that TSan
 * sees as they are. Nothing else: no <stdatomic.h>, no bare __atomic_*.
 *
 *   rlx  relaxed: a counter or flag read for itself, no ordering
 *   acq  acquire load: what the releasing thread wrote before is visible
 *   rel  release store
 *   ar   acquire-release read-modify-write (reference counts' last drop)
 *   sc   sequentially consistent
 *
 * Read-modify-writes return the new value (add, sub) or the old (xchg);
 * cor__cas_* take the expected value by pointer, store the value seen
 * there on failure, and return whether they swapped (strong). */
#ifndef CORIO_CORE_ATOMICS_H
#define CORIO_CORE_ATOMICS_H

#define cor__load_rlx(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define cor__load_acq(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define cor__load_sc(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define cor__store_rlx(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define cor__store_rel(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define cor__store_sc(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define cor__add_rlx(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define cor__add_ar(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define cor__add_sc(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#define cor__sub_rlx(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_RELAXED)
#define cor__sub_ar(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_ACQ_REL)
#define cor__sub_sc(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_SEQ_CST)
#define cor__xchg_rlx(p, v) __atomic_exchange_n((p), (v), __ATOMIC_RELAXED)
#define cor__xchg_ar(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
#define cor__xchg_sc(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
/* Success order / failure order in the name. */
#define cor__cas_sc(p, e, v)                                                   \
  __atomic_compare_exchange_n((p), (e), (v), false, __ATOMIC_SEQ_CST,          \
                              __ATOMIC_SEQ_CST)
#define cor__cas_sc_rlx(p, e, v)                                               \
  __atomic_compare_exchange_n((p), (e), (v), false, __ATOMIC_SEQ_CST,          \
                              __ATOMIC_RELAXED)
#define cor__cas_sc_acq(p, e, v)                                               \
  __atomic_compare_exchange_n((p), (e), (v), false, __ATOMIC_SEQ_CST,          \
                              __ATOMIC_ACQUIRE)
#define cor__cas_ar_acq(p, e, v)                                               \
  __atomic_compare_exchange_n((p), (e), (v), false, __ATOMIC_ACQ_REL,          \
                              __ATOMIC_ACQUIRE)
#define cor__cas_ar_rlx(p, e, v)                                               \
  __atomic_compare_exchange_n((p), (e), (v), false, __ATOMIC_ACQ_REL,          \
                              __ATOMIC_RELAXED)
#define cor__cas_acq_rlx(p, e, v)                                              \
  __atomic_compare_exchange_n((p), (e), (v), false, __ATOMIC_ACQUIRE,          \
                              __ATOMIC_RELAXED)
#define cor__cas_rel_rlx(p, e, v)                                              \
  __atomic_compare_exchange_n((p), (e), (v), false, __ATOMIC_RELEASE,          \
                              __ATOMIC_RELAXED)
#define cor__cas_rlx(p, e, v)                                                  \
  __atomic_compare_exchange_n((p), (e), (v), false, __ATOMIC_RELAXED,          \
                              __ATOMIC_RELAXED)

#endif
