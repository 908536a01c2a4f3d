/*
 * aarch64_aapcs_elf.S: the stack switch for AArch64, AAPCS64, ELF (Linux), GNU as.
 * The C interface and its contract are in context.h.
 *
 * References: Procedure Call Standard for the Arm 64-bit Architecture (AAPCS64), 2023Q3,
 * sections 6.1.1 (callee-saved: x19-x28, the frame pointer x29, sp; x30 is the link
 * register), 6.1.2 (callee-saved: the low 64 bits of v8-v15, i.e. d8-d15) and 6.1.4 (the
 * FPCR's rounding, flush-to-zero and trap-enable bits are callee-saved state across a
 * public interface; the FPSR's cumulative flags are not); sp is 16-byte aligned at every
 * public interface (5.2.2). ELF for the Arm 64-bit Architecture (AAELF64), 5.3.4 (the
 * GNU_PROPERTY_AARCH64_FEATURE_1_AND note). Boost.Context's fcontext (jump_arm64_aapcs_
 * elf_gas.S) showed the shape; weft's x86-64 file (x86_64_sysv_elf.S) is the model.
 *
 * A suspended stack, from its saved stack pointer upwards (WEFT__CONTEXT_INITIAL_FRAME
 * = 176 bytes, the same layout for a suspended and for a fresh context):
 *
 *   offset  contents
 *   0       d8,  d9
 *   16      d10, d11
 *   32      d12, d13
 *   48      d14, d15   (a fresh context: all d registers 0)
 *   64      x19, x20   (a fresh context: x19 = the entry function, x20-x28 = 0)
 *   80      x21, x22
 *   96      x23, x24
 *   112     x25, x26
 *   128     x27, x28
 *   144     x29 (fp), x30 (lr)   (a fresh context: fp = 0, lr = weft__context_trampoline)
 *   160     FPCR (8 bytes), 8 bytes of padding
 *
 * Pitfalls:
 * - BTI: every function an indirect call may reach starts with `bti c`
 *   (weft__context_switch and weft__context_make are called from C, possibly through a
 *   PLT's `br x17`, which BTI treats as a call). The switch returns with `ret`, which BTI
 *   does not check, so the trampoline (reached only by that `ret`) needs no landing pad
 *   of its own; it has one anyway (`bti c`: a `ret`-only target may carry any). The
 *   object carries the BTI property, so a library built with -mbranch-protection=bti
 *   (or standard) keeps BTI. It does not sign return addresses: the saved lr is stored
 *   unsigned in the frame, and signing it would need the resumed side's sp as the
 *   modifier, a PAC-enabled CPU to test on, and the non-hint PACIA forms; so it carries
 *   no PAC property, and the linker drops PAC from the AND for the library, as it must.
 * - FPCR writes can be slow (a context synchronisation on some cores): the switch writes
 *   FPCR only when the resumed side's value differs from the current one.
 * - The CFI below describes the frame above the saved stack pointer. It stays right
 *   after the stack swap because both sides have the same layout; the trampoline marks
 *   the return address (x30) undefined so unwinders and debuggers stop at a task's base.
 * - Signal handlers run on the current stack: a task stack must leave room for them,
 *   or the thread needs a sigaltstack (weft's workers have one).
 * - qemu-user runs this (and the whole runtime) with the host's memory ordering, so tests
 *   under qemu check this ABI, not Arm's weak memory model: see docs/TESTING.md.
 *
 * As on x86-64, the switch ends with `ret` (not `br`), so calls and returns stay paired
 * for the return-address predictor.
 */

        .text

/* void *weft__context_switch(weft__context *from, weft__context to, void *value)
 * x0 = from, x1 = to, x2 = value. */
        .globl  weft__context_switch
        .hidden weft__context_switch
        .type   weft__context_switch, %function
        .p2align 4
weft__context_switch:
        .cfi_startproc
        bti     c
        sub     sp, sp, #176
        .cfi_def_cfa_offset 176
        stp     d8, d9, [sp, #0]
        stp     d10, d11, [sp, #16]
        stp     d12, d13, [sp, #32]
        stp     d14, d15, [sp, #48]
        stp     x19, x20, [sp, #64]
        stp     x21, x22, [sp, #80]
        stp     x23, x24, [sp, #96]
        stp     x25, x26, [sp, #112]
        stp     x27, x28, [sp, #128]
        stp     x29, x30, [sp, #144]
        .cfi_offset 72, -176            /* d8..d15: DWARF registers 72..79 */
        .cfi_offset 73, -168
        .cfi_offset 74, -160
        .cfi_offset 75, -152
        .cfi_offset 76, -144
        .cfi_offset 77, -136
        .cfi_offset 78, -128
        .cfi_offset 79, -120
        .cfi_offset x19, -112
        .cfi_offset x20, -104
        .cfi_offset x21, -96
        .cfi_offset x22, -88
        .cfi_offset x23, -80
        .cfi_offset x24, -72
        .cfi_offset x25, -64
        .cfi_offset x26, -56
        .cfi_offset x27, -48
        .cfi_offset x28, -40
        .cfi_offset x29, -32
        .cfi_offset x30, -24
        mrs     x9, fpcr
        str     x9, [sp, #160]

        mov     x10, sp
        str     x10, [x0]               /* suspend: publish our stack pointer */
        mov     sp, x1                  /* resume the other stack */

        ldr     x10, [sp, #160]
        cmp     x9, x10
        b.eq    1f
        msr     fpcr, x10
1:
        ldp     d8, d9, [sp, #0]
        ldp     d10, d11, [sp, #16]
        ldp     d12, d13, [sp, #32]
        ldp     d14, d15, [sp, #48]
        ldp     x19, x20, [sp, #64]
        ldp     x21, x22, [sp, #80]
        ldp     x23, x24, [sp, #96]
        ldp     x25, x26, [sp, #112]
        ldp     x27, x28, [sp, #128]
        ldp     x29, x30, [sp, #144]
        add     sp, sp, #176
        .cfi_def_cfa_offset 0
        .cfi_restore 72
        .cfi_restore 73
        .cfi_restore 74
        .cfi_restore 75
        .cfi_restore 76
        .cfi_restore 77
        .cfi_restore 78
        .cfi_restore 79
        .cfi_restore x19
        .cfi_restore x20
        .cfi_restore x21
        .cfi_restore x22
        .cfi_restore x23
        .cfi_restore x24
        .cfi_restore x25
        .cfi_restore x26
        .cfi_restore x27
        .cfi_restore x28
        .cfi_restore x29
        .cfi_restore x30
        mov     x0, x2                  /* the value: return value of a suspended side, */
        ret                             /* or the entry function's argument on a fresh one */
        .cfi_endproc
        .size   weft__context_switch, .-weft__context_switch

/* weft__context weft__context_make(void *stack_top, void (*entry)(void *))
 * x0 = stack_top, x1 = entry. Builds the frame described above. */
        .globl  weft__context_make
        .hidden weft__context_make
        .type   weft__context_make, %function
        .p2align 4
weft__context_make:
        .cfi_startproc
        bti     c
        and     x9, x0, #~15            /* after the frame is popped sp is 16-aligned, */
        sub     x0, x9, #176            /* as the entry needs (no call adjusts it here) */
        stp     xzr, xzr, [x0, #0]      /* d8-d15 */
        stp     xzr, xzr, [x0, #16]
        stp     xzr, xzr, [x0, #32]
        stp     xzr, xzr, [x0, #48]
        stp     x1, xzr, [x0, #64]      /* x19 = entry, x20 */
        stp     xzr, xzr, [x0, #80]     /* x21-x28 */
        stp     xzr, xzr, [x0, #96]
        stp     xzr, xzr, [x0, #112]
        stp     xzr, xzr, [x0, #128]
        adr     x10, weft__context_trampoline
        stp     xzr, x10, [x0, #144]    /* fp = 0 ends frame-pointer walks; lr */
        mrs     x10, fpcr               /* a new task inherits its creator's FP control */
        stp     x10, xzr, [x0, #160]    /* (FPCR has no sticky flags: those are FPSR's) */
        ret
        .cfi_endproc
        .size   weft__context_make, .-weft__context_make

/* First code on a fresh stack, reached by weft__context_switch's ret with x0 = value,
 * x19 = entry, x29 = 0 and sp 16-aligned. */
        .type   weft__context_trampoline, %function
        .p2align 4
weft__context_trampoline:
        .cfi_startproc
        .cfi_undefined x30              /* nothing above: unwinders stop here */
        bti     c
        blr     x19
        bl      weft__context_entry_returned    /* entry must not return: abort */
        brk     #0x3e8
        .cfi_endproc
        .size   weft__context_trampoline, .-weft__context_trampoline

        .section .note.GNU-stack, "", %progbits

/* GNU property note: BTI only (see the pitfalls above). */
        .section .note.gnu.property, "a"
        .p2align 3
        .long   4                       /* name size: "GNU\0" */
        .long   16                      /* descriptor size */
        .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
        .long   4
        .long   1                       /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
        .p2align 3
