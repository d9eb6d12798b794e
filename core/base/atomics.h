/* SPDX-License-Identifier: MIT */
/* Concurrency Kit's ck_pr, and its mapping onto compiler atomics in TSan
 * builds (tests/check_tree.sh checks every ck_pr op the tree uses is
 * mapped). Not installed. */
#ifndef CORIO_CORE_BASE_ATOMICS_H
#define CORIO_CORE_BASE_ATOMICS_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>


/* ThreadSanitizer cannot see ck_pr's inline assembly and would report every
 * hand-off through it as a race. In TSan builds only, the ck_pr calls corio
 * uses are routed to compiler atomics with the same (or stronger) ordering,
 * which TSan instruments. Normal builds use Concurrency Kit as is. */
#if defined(__SANITIZE_THREAD__)
#define COR__TSAN_ATOMICS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COR__TSAN_ATOMICS 1
#endif
#endif
#ifdef COR__TSAN_ATOMICS
#undef ck_pr_add_64
#undef ck_pr_cas_int
#undef ck_pr_cas_ptr_value
#undef ck_pr_dec_32_zero
#undef ck_pr_dec_int
#undef ck_pr_fas_int
#undef ck_pr_fas_ptr
#undef ck_pr_fence_acquire
#undef ck_pr_fence_atomic_load
#undef ck_pr_fence_load
#undef ck_pr_inc_32
#undef ck_pr_inc_64
#undef ck_pr_inc_int
#undef ck_pr_load_32
#undef ck_pr_load_64
#undef ck_pr_load_int
#undef ck_pr_load_ptr
#undef ck_pr_store_64
#undef ck_pr_store_int
#undef ck_pr_store_ptr
#undef ck_pr_load_uint
#undef ck_pr_inc_uint
#undef ck_pr_dec_uint
#undef ck_pr_faa_64
#undef ck_pr_store_32
#undef ck_pr_fence_memory
#undef ck_pr_cas_64_value
#define COR__SC __ATOMIC_SEQ_CST
#define ck_pr_load_ptr(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_store_ptr(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ck_pr_fas_ptr(p, v) __atomic_exchange_n((p), (v), COR__SC)
#define ck_pr_cas_ptr_value(t, c, s, out)                                      \
  ({                                                                           \
    __typeof__(*(t)) cor__c = (c);                                             \
    bool cor__ok = __atomic_compare_exchange_n((t), &cor__c, (s), false,       \
                                               COR__SC, COR__SC);              \
    *(out) = cor__c;                                                           \
    cor__ok;                                                                   \
  })
#define ck_pr_cas_64_value(t, c, s, out)                                       \
  ({                                                                           \
    uint64_t cor__c64 = (c);                                                   \
    bool cor__ok64 = __atomic_compare_exchange_n((t), &cor__c64, (s), false,   \
                                                 COR__SC, COR__SC);            \
    *(out) = cor__c64;                                                         \
    cor__ok64;                                                                 \
  })
#define ck_pr_load_int(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_store_int(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ck_pr_fas_int(p, v) __atomic_exchange_n((p), (v), COR__SC)
#define ck_pr_cas_int(p, c, s)                                                 \
  ({                                                                           \
    int cor__c = (c);                                                          \
    __atomic_compare_exchange_n((p), &cor__c, (s), false, COR__SC, COR__SC);   \
  })
#define ck_pr_inc_int(p) ((void)__atomic_add_fetch((p), 1, COR__SC))
#define ck_pr_dec_int(p) ((void)__atomic_sub_fetch((p), 1, COR__SC))
#define ck_pr_load_64(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_store_64(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ck_pr_inc_64(p) ((void)__atomic_add_fetch((p), 1, COR__SC))
#define ck_pr_add_64(p, v) ((void)__atomic_add_fetch((p), (v), COR__SC))
#define ck_pr_load_32(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_inc_32(p) ((void)__atomic_add_fetch((p), 1, COR__SC))
#define ck_pr_dec_32_zero(p, z) (*(z) = __atomic_sub_fetch((p), 1, COR__SC) == 0)
#define ck_pr_load_uint(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ck_pr_inc_uint(p) ((void)__atomic_add_fetch((p), 1, COR__SC))
#define ck_pr_dec_uint(p) ((void)__atomic_sub_fetch((p), 1, COR__SC))
#define ck_pr_faa_64(p, v) __atomic_fetch_add((p), (v), COR__SC)
#define ck_pr_store_32(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* The full fence of the Dekker pairs (announce, fence, look again). ck's
 * mfence asm TSan cannot see, and GCC refuses __atomic_thread_fence under
 * TSan: a seq_cst read-modify-write of one process-wide word orders every
 * such fence in one total order, which TSan does model. */
extern int cor__tsan_fence_word;
#define ck_pr_fence_memory()                                                   \
  ((void)__atomic_fetch_add(&cor__tsan_fence_word, 0, COR__SC))
#define ck_pr_fence_load() ((void)0)
#define ck_pr_fence_acquire() ((void)0)
#define ck_pr_fence_atomic_load() ((void)0)
#endif


/* The tree's atomics vocabulary beside ck_pr, for what ck_pr does not say:
 * the memory order. ck_pr_* (Concurrency Kit, remapped onto compiler
 * atomics under TSan below) is for the shared words of the
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
