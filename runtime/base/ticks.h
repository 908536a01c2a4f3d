/*
 * ticks.h: a cheap monotonic counter for the runtime's own measurements (run slices,
 * scheduling delays, trace timestamps), where clock_gettime's 20-25 ns per call would
 * cost more than what it measures (weft_yield is ~10 ns). x86-64: the TSC (invariant
 * on every CPU Linux trusts as a clock source; rdtsc is not ordered, which a
 * measurement of microseconds does not need); aarch64: the virtual counter
 * (cntvct_el0); elsewhere CLOCK_MONOTONIC. weft__ticks_to_ns converts with a factor
 * measured once per process against CLOCK_MONOTONIC (x86: ~200 us at the first call;
 * aarch64: cntfrq_el0), so figures in ns are within about 0.1% of the clock's.
 *
 * Threads: any. The factor is computed once (pthread_once) and immutable after.
 */
#ifndef WEFT__BASE_TICKS_H
#define WEFT__BASE_TICKS_H

#include <stdint.h>
#include <time.h>

static inline uint64_t weft__ticks(void) {
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* Nanoseconds per tick as a 32.32 fixed-point factor (computed on the first call). */
uint64_t weft__ticks_factor(void);

/* An interval in ticks, in ns. */
static inline uint64_t weft__ticks_to_ns(uint64_t ticks, uint64_t factor) {
    return (uint64_t)(((unsigned __int128)ticks * factor) >> 32);
}

/* An interval in ns, in ticks (for thresholds). */
static inline uint64_t weft__ns_to_ticks(uint64_t ns, uint64_t factor) {
    return factor ? (uint64_t)(((unsigned __int128)ns << 32) / factor) : ns;
}

#endif /* WEFT__BASE_TICKS_H */
