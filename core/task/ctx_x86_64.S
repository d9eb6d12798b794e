/* SPDX-License-Identifier: MIT */
/* x86-64 System V context switch. See core/ctx.h.
 *
 * Saved on the suspended stack, from low to high addresses:
 *   [mxcsr:4 | x87 cw:2 | pad:2] r15 r14 r13 r12 rbx rbp <return address>
 * The ABI makes rbx, rbp, r12-r15, the MXCSR control bits and the x87
 * control word callee-saved; everything else is dead across a call.
 *
 * Resume pops the return address and jumps to it instead of `ret`: the
 * return we take is never the one the return-stack buffer predicts (we return
 * into another context), so `ret` mispredicts every time (~10 ns here)
 * while an indirect jmp is predicted from its own history (~3.4 ns).
 * Consequence: this routine must not be marked as shadow-stack (CET SHSTK)
 * compatible, and it is not (no .note.gnu.property).
 */
#if defined(__x86_64__) && !defined(COR_CTX_UCONTEXT)

	.text

/* void cor__ctx_switch(cor__ctx *from, cor__ctx *to) */
	.globl cor__ctx_switch
	.hidden cor__ctx_switch
	.type cor__ctx_switch, @function
	.p2align 4
cor__ctx_switch:
	.cfi_startproc
	pushq %rbp
	.cfi_adjust_cfa_offset 8
	pushq %rbx
	.cfi_adjust_cfa_offset 8
	pushq %r12
	.cfi_adjust_cfa_offset 8
	pushq %r13
	.cfi_adjust_cfa_offset 8
	pushq %r14
	.cfi_adjust_cfa_offset 8
	pushq %r15
	.cfi_adjust_cfa_offset 8
	subq $8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr (%rsp)
	fnstcw 4(%rsp)
	movq %rsp, (%rdi)
	/* From here on we run on `to`'s stack. (Loading the control state only
	 * when it differs measured slower: the compare needs the values just
	 * stored read back.) */
	movq (%rsi), %rsp
	ldmxcsr (%rsp)
	fldcw 4(%rsp)
	addq $8, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	popq %rcx
	jmpq *%rcx
	.cfi_endproc
	.size cor__ctx_switch, .-cor__ctx_switch

/* First frame of a new context: cor__ctx_make left fn in r12 and its
 * argument in r13; the stack is 16-byte aligned here, so the call gives fn
 * the alignment the ABI promises. fn never returns. */
	.globl cor__ctx_entry
	.hidden cor__ctx_entry
	.type cor__ctx_entry, @function
	.p2align 4
cor__ctx_entry:
	.cfi_startproc
	.cfi_undefined rip	/* outermost frame: unwinders stop here */
	movq %r13, %rdi
	callq *%r12
	ud2
	.cfi_endproc
	.size cor__ctx_entry, .-cor__ctx_entry

#endif
	.section .note.GNU-stack,"",@progbits
