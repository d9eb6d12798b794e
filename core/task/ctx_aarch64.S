/* SPDX-License-Identifier: MIT */
/* AArch64 (AAPCS64) context switch. See core/ctx.h.
 *
 * Saved on the suspended stack (176 bytes, 16-byte aligned):
 *   x19-x28, x29 (fp), x30 (lr), d8-d15 (the low halves of v8-v15 are
 *   callee-saved), fpcr.
 * FPCR (rounding mode, flush-to-zero) is preserved across calls by the
 * ABI; writing it can be slow on some cores, so it is only written when it
 * differs from the live value.
 */
#if defined(__aarch64__) && !defined(COR_CTX_UCONTEXT)

	.text

/* void cor__ctx_switch(cor__ctx *from, cor__ctx *to) */
	.globl cor__ctx_switch
	.hidden cor__ctx_switch
	.type cor__ctx_switch, %function
	.p2align 4
cor__ctx_switch:
	.cfi_startproc
	sub sp, sp, #176
	stp x19, x20, [sp, #0]
	stp x21, x22, [sp, #16]
	stp x23, x24, [sp, #32]
	stp x25, x26, [sp, #48]
	stp x27, x28, [sp, #64]
	stp x29, x30, [sp, #80]
	stp d8, d9, [sp, #96]
	stp d10, d11, [sp, #112]
	stp d12, d13, [sp, #128]
	stp d14, d15, [sp, #144]
	mrs x9, fpcr
	str x9, [sp, #160]
	mov x9, sp
	str x9, [x0]
	/* From here on we run on `to`'s stack. */
	ldr x9, [x1]
	mov sp, x9
	ldp x19, x20, [sp, #0]
	ldp x21, x22, [sp, #16]
	ldp x23, x24, [sp, #32]
	ldp x25, x26, [sp, #48]
	ldp x27, x28, [sp, #64]
	ldp x29, x30, [sp, #80]
	ldp d8, d9, [sp, #96]
	ldp d10, d11, [sp, #112]
	ldp d12, d13, [sp, #128]
	ldp d14, d15, [sp, #144]
	ldr x9, [sp, #160]
	mrs x10, fpcr
	cmp x9, x10
	b.eq 1f
	msr fpcr, x9
1:
	add sp, sp, #176
	ret
	.cfi_endproc
	.size cor__ctx_switch, .-cor__ctx_switch

/* First frame of a new context: fn in x19, its argument in x20, lr (x30)
 * pointed here by cor__ctx_make. fn never returns. */
	.globl cor__ctx_entry
	.hidden cor__ctx_entry
	.type cor__ctx_entry, %function
	.p2align 4
cor__ctx_entry:
	.cfi_startproc
	.cfi_undefined x30	/* outermost frame: unwinders stop here */
	mov x29, #0
	mov x0, x20
	blr x19
	brk #0
	.cfi_endproc
	.size cor__ctx_entry, .-cor__ctx_entry

#endif
	.section .note.GNU-stack,"",%progbits
