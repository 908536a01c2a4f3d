/*
 * x86_64_sysv_elf.S: the stack switch for x86-64, System V ABI, ELF (Linux), GNU as.
 * The C interface and its contract are in context.h.
 *
 * References: System V AMD64 psABI 1.0, section 3.2 (callee-saved: rbx, rbp, r12-r15,
 * the MXCSR control bits and the x87 control word; rsp+8 is 16-byte aligned at a
 * function's entry). Boost.Context's fcontext showed the shape: a context is a stack
 * pointer, and the frame below holds everything the switch must restore.
 *
 * A suspended stack, from its saved stack pointer upwards (WEFT__CONTEXT_INITIAL_FRAME
 * = 64 bytes, the same layout for a suspended and for a fresh context):
 *
 *   offset  contents
 *   0       MXCSR (4 bytes)
 *   4       x87 control word (2 bytes), 2 bytes of padding
 *   8       r12
 *   16      r13
 *   24      r14
 *   32      r15
 *   40      rbx      (a fresh context: the entry function)
 *   48      rbp      (a fresh context: 0, the end of the frame-pointer chain)
 *   56      return address (a fresh context: weft__context_trampoline)
 *
 * Pitfalls:
 * - The switch returns on another stack, so CET shadow stacks cannot follow it: this
 *   object carries the IBT property only (endbr64 at every entry), never SHSTK, and
 *   the linker then leaves shadow stacks off for the library, as it must.
 * - The CFI below describes the frame above the saved stack pointer. It stays right
 *   after the stack swap because both sides have the same layout; the trampoline marks
 *   the return address undefined so unwinders and debuggers stop at a task's base.
 * - Signal handlers run on the current stack: a task stack must leave room for them,
 *   or the thread needs a sigaltstack (weft's workers have one).
 *
 * Rejected: ending the switch with `pop %r8; jmp *%r8`, as Boost.Context's
 * jump_fcontext does, instead of `ret`. The jump is predicted by the branch target
 * buffer, so a bare ping-pong between two stacks gets twice as fast (5.5 ns per switch
 * instead of 10.5 on the 2-core EPYC VM, 2026-11-25; Boost.Context measures 5.6 there).
 * But the call that entered the switch leaves its entry on the CPU's return-stack
 * predictor unconsumed, so every `ret` after the switch mispredicts until the
 * predictor drains: weft_yield between two tasks went from 10.2 to 25 ns per switch.
 * With `ret`, calls and returns stay paired: the switch's own `ret` mispredicts when
 * the two sides were suspended from different call sites, and only it.
 */

        .text

/* void *weft__context_switch(weft__context *from, weft__context to, void *value)
 * rdi = from, rsi = to, rdx = value. */
        .globl  weft__context_switch
        .hidden weft__context_switch
        .type   weft__context_switch, @function
        .p2align 4
weft__context_switch:
        .cfi_startproc
        endbr64
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r15, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r14, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r13, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r12, 0
        leaq    -8(%rsp), %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)

        movq    %rsp, (%rdi)            /* suspend: publish our stack pointer */
        movq    %rsi, %rsp              /* resume the other stack */

        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        leaq    8(%rsp), %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r12
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
        popq    %r13
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r14
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r15
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        movq    %rdx, %rax              /* the value: return value of a suspended side, */
        movq    %rdx, %rdi              /* or the entry function's argument on a fresh one */
        ret
        .cfi_endproc
        .size   weft__context_switch, .-weft__context_switch

/* weft__context weft__context_make(void *stack_top, void (*entry)(void *))
 * rdi = stack_top, rsi = entry. Builds the frame described above. */
        .globl  weft__context_make
        .hidden weft__context_make
        .type   weft__context_make, @function
        .p2align 4
weft__context_make:
        .cfi_startproc
        endbr64
        movq    %rdi, %rax
        andq    $-16, %rax              /* after the frame is popped rsp is 16-aligned... */
        leaq    -64(%rax), %rax         /* ...so the trampoline's call aligns the entry */
        stmxcsr (%rax)                  /* a new task inherits its creator's FP control */
        andl    $0xffc0, (%rax)         /* ...but not its sticky exception flags (0-5) */
        fnstcw  4(%rax)
        movw    $0, 6(%rax)
        movq    $0, 8(%rax)             /* r12 */
        movq    $0, 16(%rax)            /* r13 */
        movq    $0, 24(%rax)            /* r14 */
        movq    $0, 32(%rax)            /* r15 */
        movq    %rsi, 40(%rax)          /* rbx = entry */
        movq    $0, 48(%rax)            /* rbp = 0 ends frame-pointer walks */
        leaq    weft__context_trampoline(%rip), %rcx
        movq    %rcx, 56(%rax)
        ret
        .cfi_endproc
        .size   weft__context_make, .-weft__context_make

/* First code on a fresh stack, reached by weft__context_switch's ret with rdi = value
 * and rbx = entry. The call keeps the ABI alignment for entry. */
        .type   weft__context_trampoline, @function
        .p2align 4
weft__context_trampoline:
        .cfi_startproc
        .cfi_undefined %rip             /* nothing above: unwinders stop here */
        endbr64
        call    *%rbx
        call    weft__context_entry_returned    /* entry must not return: abort */
        ud2
        .cfi_endproc
        .size   weft__context_trampoline, .-weft__context_trampoline

        .section .note.GNU-stack, "", @progbits

/* GNU property note: IBT only (see the pitfalls above). */
        .section .note.gnu.property, "a"
        .p2align 3
        .long   4                       /* name size: "GNU\0" */
        .long   16                      /* descriptor size */
        .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000002              /* GNU_PROPERTY_X86_FEATURE_1_AND */
        .long   4
        .long   1                       /* GNU_PROPERTY_X86_FEATURE_1_IBT */
        .p2align 3
