/*
 * spinlock.h: a one-word lock for short critical sections (an fd slot's registration in
 * io/reactor.c, which holds it across an epoll_ctl or a close(2): system calls that do
 * not sleep on a socket). Zero is unlocked, so a zeroed object holds a valid lock. A
 * waiter that spins long yields its CPU (weft__spin_wait), so a holder preempted by the
 * kernel gets to run. (The sync room's wait queues use a counted variant of it,
 * sync/waitq.h.)
 * Acquire/release: the holder sees what the previous holder wrote (TSan sees the edge).
 */
#ifndef WEFT__BASE_SPINLOCK_H
#define WEFT__BASE_SPINLOCK_H

#include "base/atomic.h"

#include <stdbool.h>

static inline bool weft__spinlock_try(weft__atomic_word *lock) {
    /* Acquire on success: pairs with the previous holder's release in unlock. */
    return weft__atomic_load_relaxed(lock) == 0 && weft__atomic_cas_acquire(lock, 0, 1) == 0;
}

static inline void weft__spinlock_lock(weft__atomic_word *lock) {
    unsigned rounds = 0;
    while (!weft__spinlock_try(lock))
        weft__spin_wait(&rounds);
}

static inline void weft__spinlock_unlock(weft__atomic_word *lock) {
    weft__atomic_store_release(lock, 0);
}

#endif /* WEFT__BASE_SPINLOCK_H */
