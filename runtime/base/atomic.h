/*
 * atomic.h: weft's only door to libatomic_ops. Every atomic access in the runtime goes
 * through these wrappers, so the set of orderings in use is small and reviewable.
 *
 * What is here, and why nothing else:
 * - relaxed, acquire and release loads and stores, compare-and-swap and fetch-and-add,
 *   on word-sized (weft__atomic_word, AO_t) and 32-bit (weft__atomic_u32, for futexes)
 *   cells. libatomic_ops compiles all of them to __atomic builtins that
 *   ThreadSanitizer models.
 * - No fences. AO_nop_full() and the *_full loads and stores compile to
 *   __atomic_thread_fence, which TSan does not model (false races, gcc's -Wtsan). Where
 *   an algorithm needs a store-load barrier (Chase-Lev's take and steal, the parking
 *   protocol), it uses a full-barrier read-modify-write instead: weft__atomic_*_full.
 *   On x86-64 that is a lock-prefixed instruction, a full barrier; on AArch64 it is an
 *   LDADDAL/CASAL whose release store is ordered before any later load-acquire (RCsc).
 * - No double-word CAS (AO_double_t, -mcx16): invisible to TSan.
 *
 * Naming: the suffix is the ordering. _full means a sequentially consistent
 * read-modify-write.
 */
#ifndef WEFT__BASE_ATOMIC_H
#define WEFT__BASE_ATOMIC_H

#include "base/sanitizer.h"

#include <atomic_ops.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

typedef volatile AO_t weft__atomic_word;
typedef volatile unsigned weft__atomic_u32;

_Static_assert(sizeof(AO_t) == sizeof(void *), "AO_t must hold a pointer");
_Static_assert(sizeof(unsigned) == 4, "futex words are 32-bit");

/* Word-sized cells. */
static inline AO_t weft__atomic_load_relaxed(const weft__atomic_word *p) {
    return AO_load(p);
}
static inline AO_t weft__atomic_load_acquire(const weft__atomic_word *p) {
    return AO_load_acquire(p);
}
static inline void weft__atomic_store_relaxed(weft__atomic_word *p, AO_t v) {
    AO_store(p, v);
}
static inline void weft__atomic_store_release(weft__atomic_word *p, AO_t v) {
    AO_store_release(p, v);
}
static inline AO_t weft__atomic_fetch_add_full(weft__atomic_word *p, AO_t v) {
    return AO_fetch_and_add_full(p, v);
}
static inline AO_t weft__atomic_fetch_add_release(weft__atomic_word *p, AO_t v) {
    return AO_fetch_and_add_release(p, v);
}
static inline AO_t weft__atomic_fetch_add_relaxed(weft__atomic_word *p, AO_t v) {
    return AO_fetch_and_add(p, v);
}
/* A load that is also a full barrier: a read-modify-write that adds nothing. */
static inline AO_t weft__atomic_load_full(weft__atomic_word *p) {
    return AO_fetch_and_add_full(p, 0);
}
/* A full memory barrier (a store-load fence) that touches no shared cache line. It is
 * used where the word read next is hot and shared: a locked RMW of that word itself would
 * be just as ordered, but would pull its cache line exclusive on every call (a quarter of
 * fib's time on two workers).
 * - x86-64: a full-barrier read-modify-write of a thread-local word. The RMW is a
 *   `lock`ed instruction, which orders every earlier store before every later load,
 *   whatever their addresses: the "publish, then look" of a Dekker-style protocol. In the
 *   C11 model an RMW of an unrelated word is not a fence; the word is thread-local rather
 *   than on the stack so that a compiler cannot prove it private and drop the RMW.
 * - AArch64: that argument does not carry over. An RMW compiles to LDADDAL where the CPU
 *   has LSE atomics, but to an LDAXR/STLXR loop without them (gcc's default armv8-a, or
 *   -moutline-atomics on a pre-LSE core), and that loop orders an earlier store before a
 *   later load only if the load is itself an acquire (STLXR then LDAR, RCsc): a plain
 *   store before it and a relaxed load after it may still be reordered. So on AArch64 this
 *   is a real fence, AO_nop_full (`dmb ish`), which costs no cache line either.
 * ThreadSanitizer models no fence (and gcc's -Wtsan rejects one under TSan), so a TSan
 * build keeps the RMW on every architecture; no data-race verdict depends on this, only
 * the absence of lost wake-ups, which the protocols' comments argue. */
static inline void weft__atomic_fence_full(void) {
#if defined(__aarch64__) && !defined(WEFT__TSAN)
    AO_nop_full();
#else
    static _Thread_local weft__atomic_word fence_word;
    (void)AO_fetch_and_add_full(&fence_word, 0);
#endif
}
/* After a full-barrier read-modify-write, a store-load barrier for a later acquire load
 * of another word, where the RMW alone may not be one: nothing on x86-64 (a `lock`ed
 * instruction is a full barrier); `dmb ish` on AArch64, where an LDAXR/STLXR loop orders
 * a later load only if that load is an RCsc acquire (LDAR), and gcc may emit the RCpc
 * LDAPR for acquire loads (+rcpc). */
static inline void weft__atomic_fence_after_rmw(void) {
#if defined(__aarch64__) && !defined(WEFT__TSAN)
    AO_nop_full();
#endif
}
/* Returns the value seen; the swap happened when that equals `expected`. */
static inline AO_t weft__atomic_cas_full(weft__atomic_word *p, AO_t expected, AO_t desired) {
    return AO_fetch_compare_and_swap_full(p, expected, desired);
}
static inline AO_t weft__atomic_cas_acquire(weft__atomic_word *p, AO_t expected, AO_t desired) {
    return AO_fetch_compare_and_swap_acquire(p, expected, desired);
}
static inline AO_t weft__atomic_cas_release(weft__atomic_word *p, AO_t expected, AO_t desired) {
    return AO_fetch_compare_and_swap_release(p, expected, desired);
}

/* Pointer conveniences over word cells. */
static inline void *weft__atomic_load_ptr_acquire(const weft__atomic_word *p) {
    return (void *)AO_load_acquire(p);
}
static inline void weft__atomic_store_ptr_release(weft__atomic_word *p, void *v) {
    AO_store_release(p, (AO_t)v);
}

/* 32-bit cells (futex words). */
static inline unsigned weft__atomic_u32_load_acquire(const weft__atomic_u32 *p) {
    return AO_int_load_acquire(p);
}
static inline void weft__atomic_u32_store_release(weft__atomic_u32 *p, unsigned v) {
    AO_int_store_release(p, v);
}
static inline unsigned weft__atomic_u32_fetch_add_full(weft__atomic_u32 *p, unsigned v) {
    return AO_int_fetch_and_add_full(p, v);
}
static inline unsigned weft__atomic_u32_load_relaxed(const weft__atomic_u32 *p) {
    return AO_int_load(p);
}
static inline void weft__atomic_u32_store_relaxed(weft__atomic_u32 *p, unsigned v) {
    AO_int_store(p, v);
}

/* A spin-wait hint for loops that wait a few instructions for another thread. */
static inline void weft__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

/* One round of a wait for another thread's "last touch" (a few instructions away, with
 * no system call in between): spins briefly, then yields the CPU, so that a waiter never
 * burns a time slice while the thread it waits for is preempted (more threads than
 * cores, or a sanitizer's slowdown). Go's casgstatus waits the same way. `rounds` starts
 * at 0 and belongs to the caller's loop. */
static inline void weft__spin_wait(unsigned *rounds) {
    if (*rounds < 64) {
        ++*rounds;
        weft__cpu_relax();
    } else {
        sched_yield();
    }
}

#endif /* WEFT__BASE_ATOMIC_H */
