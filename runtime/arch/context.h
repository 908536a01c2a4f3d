/*
 * context.h: the one C interface to the per-architecture stack switch (one .S file per ABI under
 * arch/), in the style of Boost.Context's fcontext: a suspended context is nothing but the stack
 * pointer of its stack, where the switch routine left the callee-saved registers.
 *
 * Who owns what: a weft__context value belongs to whoever suspended it. Resuming a
 * context consumes it: after weft__context_switch(..., to, ...) the value `to` is stale
 * and must not be resumed again until that stack has switched away once more.
 *
 * Pitfalls (see the .S file for the register-level ones):
 * - Signal handlers run on the current stack unless the thread has a sigaltstack; weft's
 *   worker threads install one so a guard-page fault can be reported.
 * - Code that resumes on a stack may be on another OS thread than the one it left:
 *   never keep the address of a thread-local across a switch.
 */
#ifndef WEFT__ARCH_CONTEXT_H
#define WEFT__ARCH_CONTEXT_H

#include <stddef.h>

typedef void *weft__context;

/*
 * Saves the callee-saved registers and the floating-point control state (x86-64: MXCSR and
 * the x87 control word; AArch64: FPCR) on the current stack,
 * stores the resulting stack pointer in *from, switches to the stack `to` and restores
 * its registers. Returns, in the resumed context, the `value` that the other side
 * passed: either as this function's return value (a context that suspended itself
 * here), or as the argument of its entry function (a context made by
 * weft__context_make, on its first resumption).
 */
void *weft__context_switch(weft__context *from, weft__context to, void *value);

/*
 * Prepares a fresh stack whose highest usable address is `stack_top` (exclusive): the
 * first switch to the returned context calls entry(value) on that stack with the
 * ABI's alignment, with the floating-point control state of the thread that called
 * weft__context_make (x86-64: MXCSR's control bits, the sticky exception flags start
 * clear, and the x87 control word; AArch64: FPCR, which holds no sticky flags). `entry`
 * must never return: it ends by switching away for good.
 * If it returns anyway, the process aborts with a message.
 */
weft__context weft__context_make(void *stack_top, void (*entry)(void *value));

/* Bytes weft__context_make uses at the top of a fresh stack, below stack_top aligned
 * down to 16 (so up to 15 more when stack_top is not 16-byte aligned): the frame the
 * .S file's opening comment lays out. */
/* Where a suspended context keeps its frame pointer and its return address: byte
 * offsets from the saved stack pointer (the .S file's layout), for a backtrace of a
 * parked task (debug/dump.c). Each frame-pointer frame above holds the caller's frame
 * pointer at [fp] and its return address at [fp + WEFT__CONTEXT_FRAME_RETURN]. */
#if defined(__x86_64__)
#define WEFT__CONTEXT_INITIAL_FRAME 64
#define WEFT__CONTEXT_SAVED_FP      48
#define WEFT__CONTEXT_SAVED_PC      56
#define WEFT__CONTEXT_FRAME_RETURN  8
#elif defined(__aarch64__)
#define WEFT__CONTEXT_INITIAL_FRAME 176
#define WEFT__CONTEXT_SAVED_FP      144
#define WEFT__CONTEXT_SAVED_PC      152
#define WEFT__CONTEXT_FRAME_RETURN  8
#else
#error "weft has a context switch for x86-64 and AArch64 only (runtime/arch/)"
#endif

#endif /* WEFT__ARCH_CONTEXT_H */
