/*
 * ticks.c: the tick-to-nanosecond factor of ticks.h, measured once per process.
 */
#include "base/ticks.h"

#include <pthread.h>

static pthread_once_t factor_once = PTHREAD_ONCE_INIT;
static uint64_t factor; /* written once under factor_once, read after it */

static uint64_t clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void measure(void) {
#if defined(__aarch64__)
    uint64_t frequency;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(frequency));
    if (frequency) {
        factor = (uint64_t)(((unsigned __int128)1000000000u << 32) / frequency);
        return;
    }
#elif !defined(__x86_64__)
    factor = (uint64_t)1 << 32; /* ticks are ns */
    return;
#endif
    /* Two (clock, ticks) pairs ~200 us apart; each pair read back to back, keeping the
     * tightest of a few tries so that a preemption between the reads does not skew it. */
    uint64_t best_ns[2], best_ticks[2];
    for (int side = 0; side < 2; side++) {
        uint64_t tightest = UINT64_MAX;
        for (int i = 0; i < 5; i++) {
            uint64_t t0 = weft__ticks();
            uint64_t ns = clock_ns();
            uint64_t t1 = weft__ticks();
            if (t1 - t0 < tightest) {
                tightest = t1 - t0;
                best_ns[side] = ns;
                best_ticks[side] = t0 + (t1 - t0) / 2;
            }
        }
        if (side == 0) {
            uint64_t until = clock_ns() + 200000;
            while (clock_ns() < until)
                ;
        }
    }
    uint64_t ticks = best_ticks[1] - best_ticks[0];
    factor = ticks ? (uint64_t)(((unsigned __int128)(best_ns[1] - best_ns[0]) << 32) / ticks)
                   : (uint64_t)1 << 32;
}

uint64_t weft__ticks_factor(void) {
    pthread_once(&factor_once, measure);
    return factor;
}
