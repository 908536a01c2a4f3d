/*
 * futex_linux.c: futex.h on Linux, with FUTEX_PRIVATE_FLAG (weft's words never live in
 * shared memory). Owns no state.
 */
#include "futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

void weft__futex_wait(weft_atomic_u32 *word, unsigned expected) {
    /* EAGAIN (the word changed), EINTR (a signal) and spurious returns all send the
     * caller back to its loop, which re-checks; nothing to do here. */
    (void)syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

void weft__futex_wake(weft_atomic_u32 *word, int count) {
    (void)syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}
