/*
 * futex_linux.c: futex.h on Linux, with FUTEX_PRIVATE_FLAG (weft's words never live in
 * shared memory). Owns no state.
 */
#include "base/futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void weft__futex_wait(weft__atomic_u32 *word, unsigned expected) {
    /* EAGAIN (the word changed), EINTR (a signal) and spurious returns all send the
     * caller back to its loop, which re-checks; nothing to do here. */
    (void)syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

void weft__futex_wait_until(weft__atomic_u32 *word, unsigned expected, uint64_t deadline_ns) {
    if (deadline_ns == UINT64_MAX) {
        weft__futex_wait(word, expected);
        return;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time (FUTEX_WAIT a relative
     * one): no drift from computing "now" twice. ETIMEDOUT is one more spurious return. */
    struct timespec ts = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
    (void)syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_BITSET_PRIVATE, expected, &ts, NULL,
                  FUTEX_BITSET_MATCH_ANY);
}

void weft__futex_wake(weft__atomic_u32 *word, int count) {
    (void)syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}
