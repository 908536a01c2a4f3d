/*
 * mutex.c: weft_mutex: a lock for tasks and threads that parks the task. Owns the
 * mutex's state word and owner; its waiters are a waitq (waitq.c, SYNC-*).
 *
 * `state`: LOCKED (held) and WAITERS (the queue may be non-empty: unlock must look).
 * Locking is a CAS from 0 on the fast path. A locker that finds it held sets WAITERS
 * and queues itself, both under the queue's lock (SYNC-Q1), re-checking LOCKED there.
 * Unlocking is a CAS from LOCKED to 0 on the fast path; with WAITERS set it takes the
 * queue's lock (SYNC-W1) and pops the oldest waiter:
 *   - normally it frees the mutex and wakes the waiter to try again (it may lose to a
 *     task that is running and locks first: barging keeps a hot lock moving, as Go's
 *     normal mode);
 *   - once that waiter has waited longer than WEFT__MUTEX_STARVING_NS since it first
 *     queued, the mutex stays LOCKED and passes to it directly (Go's starvation mode):
 *     no waiter waits behind a stream of bargers for ever. A woken waiter that lost
 *     queues again at the head, keeping its first `since`.
 * The owner (weft__sync_self) is written by whoever takes the mutex and read by unlock
 * (-EPERM for anyone else) and lock (-EDEADLK for the owner).
 *
 * Spinning before parking: briefly, and only where another worker may be running the
 * holder (spin_pays, below, with the measurements).
 */
#include "sync/mutex.h"
#include "sync/waitq.h"

#include "base/chaos.h"
#include "sched/runtime.h"

#include <errno.h>
#include <string.h>

#define WEFT__MUTEX_LOCKED  ((AO_t)1)
#define WEFT__MUTEX_WAITERS ((AO_t)2)
#define WEFT__MUTEX_STARVING_NS 1000000u /* 1 ms, as Go's starvationThresholdNs */

/* What an unlock hands a woken waiter. */
enum { WEFT__MUTEX_RETRY = 0, WEFT__MUTEX_HANDOFF = 1 };

typedef struct weft__mutex {
    weft__atomic_word state;
    weft__atomic_word owner; /* weft__sync_self of the holder; 0 while free */
    weft__waitq queue;
    uint64_t unused;
} weft__mutex;

_Static_assert(sizeof(weft__mutex) == sizeof(weft_mutex), "weft_mutex's size is public");

WEFT_API void weft_mutex_init(weft_mutex *m) {
    if (m)
        memset(m, 0, sizeof(*m));
}

static void take(weft__mutex *m, uint64_t self) {
    /* Relaxed: read only by the holder (the same task) and by unlock/lock's checks, for
     * which the state word's acquire/release carries the ordering. */
    weft__atomic_store_relaxed(&m->owner, self);
}

/* (SYNC-Q1) Under the queue's lock: takes the mutex if it is free, else marks WAITERS.
 * True if taken. */
static bool take_or_mark(weft__mutex *m) {
    AO_t s = weft__atomic_load_relaxed(&m->state); /* a first guess for the CAS */
    for (;;) {
        AO_t next = (s & WEFT__MUTEX_LOCKED) ? s | WEFT__MUTEX_WAITERS : s | WEFT__MUTEX_LOCKED;
        /* Full: the acquire half when we take it; pairs with unlock's CAS/store. */
        AO_t seen = weft__atomic_cas_full(&m->state, s, next);
        if (seen == s)
            return !(s & WEFT__MUTEX_LOCKED);
        s = seen;
    }
}

static int lock_slow(weft__mutex *m, uint64_t self, uint64_t deadline_ns, bool cancellable) {
    weft__waiter w;
    weft__waiter_init(&w);
    w.wait.cancellable = cancellable;
    w.wait.kind = WEFT__WAITING_MUTEX; /* for a dump */
    w.wait.object = (uint64_t)(uintptr_t)m;
    w.since = weft_now();
    /* Counted inside (weft__qleave) from our first queueing until our last touch of the
     * mutex, across retries: a retry that loses to a barger stays counted while it goes
     * back to the lock, or a destroy meanwhile could return 0 and free the mutex under
     * it (found by a cold review). */
    bool counted = false;
    weft__waitq_site site = {&m->queue.lock, &m->queue.list};
    for (;;) {
        weft__qlock(&m->queue.lock);
        if (take_or_mark(m)) {
            weft__qunlock(&m->queue.lock);
            take(m, self);
            if (counted)
                weft__qleave(&m->queue.lock);
            return 0;
        }
        if (counted) { /* woken to retry and lost: back at the head, first in line */
            weft__waitq_push_front(&m->queue.lock, &m->queue.list, &w);
            weft__qleave(&m->queue.lock); /* the push counted us again: once is enough */
        } else {
            weft__waitq_push(&m->queue.lock, &m->queue.list, &w);
            counted = true;
        }
        weft__qunlock(&m->queue.lock);
        /* (SYNC-Q2) Not weft__waitq_block: we stay counted until our last touch. */
        int rc = weft__wait_block(&w.wait, deadline_ns, weft__waitq_withdraw, &site);
        if (rc == WEFT__MUTEX_HANDOFF) {
            take(m, self);
            weft__qleave(&m->queue.lock);
            return 0;
        }
        if (rc < 0) {
            weft__qleave(&m->queue.lock);
            return rc;
        }
        /* RETRY: the mutex was freed for us to compete for. */
        weft__wait_init(&w.wait);
        w.wait.cancellable = cancellable;
        w.wait.kind = WEFT__WAITING_MUTEX;
        w.wait.object = (uint64_t)(uintptr_t)m;
        /* Acquire: pairs with unlock's release store of the freed state. */
        if (weft__atomic_cas_acquire(&m->state, 0, WEFT__MUTEX_LOCKED) == 0) {
            take(m, self);
            weft__qleave(&m->queue.lock);
            return 0;
        }
        WEFT__SYNC_CHAOS_POINT("SYNC-M1"); /* lost the retry, still counted */
    }
}

/* Spinning before parking, as Go's mutex does (4 rounds of 30 PAUSEs, about 5 us here):
 * a holder running on another worker usually releases within that, and a park costs a
 * queueing, a switch, a wake-up and a retry. Measured (weft-bench, 2 workers, five runs
 * interleaved with the build without it, 2026-12-02, 2-core Xeon VM): mutex_contended
 * 499-822 ms -> 133-158 ms, mutex_yield 795-922 ms -> 250-290 ms. On one worker the
 * holder cannot be running while we spin (it is parked or yielded on our own worker):
 * mutex_yield went 170-196 ms -> 250-261 ms, so a runtime of one worker never spins.
 * A plain thread spins: the holder may be running. */
#define WEFT__MUTEX_SPIN_ROUNDS 4
#define WEFT__MUTEX_SPIN_PAUSES 30

static bool spin_pays(void) {
    weft__worker *w = weft__worker_current();
    return !w || w->runtime->worker_count > 1;
}

/* True if it took the mutex while spinning. */
static bool spin_for(weft__mutex *m, uint64_t self) {
    for (int round = 0; round < WEFT__MUTEX_SPIN_ROUNDS; round++) {
        for (int i = 0; i < WEFT__MUTEX_SPIN_PAUSES; i++)
            weft__cpu_relax();
        /* Relaxed: a look; the CAS below decides (acquire: pairs with unlock's release). */
        AO_t s = weft__atomic_load_relaxed(&m->state);
        if (!(s & WEFT__MUTEX_LOCKED) &&
            weft__atomic_cas_acquire(&m->state, s, s | WEFT__MUTEX_LOCKED) == s) {
            take(m, self);
            return true;
        }
    }
    return false;
}

/* cancellable: weft_mutex_lock_until is a cancellation point, weft_mutex_lock is not. */
static int lock(weft_mutex *pm, uint64_t deadline_ns, bool cancellable) {
    if (!pm)
        return -EINVAL;
    weft__mutex *m = (weft__mutex *)pm;
    if (cancellable) {
        int cancelled = weft__cancel_point(); /* at once (weft.h) */
        if (cancelled)
            return cancelled;
    }
    uint64_t self = weft__sync_self();
    /* Acquire: pairs with unlock's release. */
    if (weft__atomic_cas_acquire(&m->state, 0, WEFT__MUTEX_LOCKED) == 0) {
        take(m, self);
        return 0;
    }
    /* Relaxed: only we can have written our own id there, and only we can clear it. */
    if (weft__atomic_load_relaxed(&m->owner) == self)
        return -EDEADLK;
    if (spin_pays() && spin_for(m, self))
        return 0;
    return lock_slow(m, self, deadline_ns, cancellable);
}

WEFT_API int weft_mutex_lock(weft_mutex *m) {
    return lock(m, WEFT_FOREVER, false);
}

WEFT_API int weft_mutex_lock_until(weft_mutex *m, uint64_t deadline_ns) {
    return lock(m, deadline_ns, true);
}

WEFT_API int weft_mutex_trylock(weft_mutex *pm) {
    if (!pm)
        return -EINVAL;
    weft__mutex *m = (weft__mutex *)pm;
    AO_t s = weft__atomic_load_relaxed(&m->state); /* a first guess for the CAS */
    while (!(s & WEFT__MUTEX_LOCKED)) {
        /* Acquire: pairs with unlock's release. */
        AO_t seen = weft__atomic_cas_acquire(&m->state, s, s | WEFT__MUTEX_LOCKED);
        if (seen == s) {
            take(m, weft__sync_self());
            return 0;
        }
        s = seen;
    }
    return -EBUSY;
}

WEFT_API int weft_mutex_unlock(weft_mutex *pm) {
    if (!pm)
        return -EINVAL;
    weft__mutex *m = (weft__mutex *)pm;
    uint64_t self = weft__sync_self();
    /* Acquire, relaxed: only the holder (the caller, if anyone) can have written `owner`
     * with our id, and only it clears it; a caller that does not hold it may read a stale
     * value, never its own id. */
    if (!(weft__atomic_load_acquire(&m->state) & WEFT__MUTEX_LOCKED) ||
        weft__atomic_load_relaxed(&m->owner) != self)
        return -EPERM;
    weft__atomic_store_relaxed(&m->owner, 0); /* ordered before the state's release below */
    /* Release: the critical section before the next holder's acquire. */
    if (weft__atomic_cas_release(&m->state, WEFT__MUTEX_LOCKED, 0) == WEFT__MUTEX_LOCKED)
        return 0;
    /* (SYNC-W1) Waiters, maybe. */
    weft__qlock(&m->queue.lock);
    weft__waiter *w = weft__waiter_list_pop(&m->queue.list);
    AO_t waiters = weft__waiter_list_empty(&m->queue.list) ? 0 : WEFT__MUTEX_WAITERS;
    int handed = WEFT__MUTEX_RETRY;
    if (w && weft_now() - w->since > WEFT__MUTEX_STARVING_NS) {
        handed = WEFT__MUTEX_HANDOFF; /* stays LOCKED: the waiter is the owner now */
        weft__atomic_store_release(&m->state, WEFT__MUTEX_LOCKED | waiters);
    } else {
        /* Release: as above; a barging locker may take it from here. */
        weft__atomic_store_release(&m->state, waiters);
    }
    weft__qunlock(&m->queue.lock);
    if (w) {
        WEFT__SYNC_CHAOS_POINT("SYNC-W1");
        /* (SYNC-W2) */
        weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
        weft__wait_deliver(&w->wait, handed, &batch);
        weft__wake_batch_finish(&batch);
    }
    return 0;
}

WEFT_API int weft_mutex_destroy(weft_mutex *pm) {
    if (!pm)
        return -EINVAL;
    weft__mutex *m = (weft__mutex *)pm;
    weft__qlock(&m->queue.lock);
    /* Acquire: pairs with the last unlock's release (its touches come before a free). */
    bool busy = (weft__atomic_load_acquire(&m->state) & WEFT__MUTEX_LOCKED) ||
                !weft__waiter_list_empty(&m->queue.list) || weft__qbusy(&m->queue.lock);
    if (!busy) {
        weft__atomic_store_relaxed(&m->state, 0); /* relaxed: nobody else may use it now */
        weft__atomic_store_relaxed(&m->owner, 0);
    }
    weft__qunlock(&m->queue.lock);
    return busy ? -EBUSY : 0;
}

/* For weft_cond_wait: does the caller hold m? */
bool weft__mutex_held_by_caller(weft_mutex *pm) {
    weft__mutex *m = (weft__mutex *)pm;
    /* As unlock's check: only the holder can see its own id there. */
    return (weft__atomic_load_acquire(&m->state) & WEFT__MUTEX_LOCKED) &&
           weft__atomic_load_relaxed(&m->owner) == weft__sync_self();
}
