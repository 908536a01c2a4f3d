/*
 * semaphore.c: weft_sem, a counting semaphore. Owns its permit count and queue.
 *
 * Strict FIFO: a release with waiters hands its permit to the oldest (SYNC-W1) instead
 * of adding it to the count, and a waiter queues only when the count is 0 (SYNC-Q1,
 * under the lock), so while anyone waits the count stays 0 and the lock-free fast path
 * of acquire (a CAS on a positive count) cannot overtake a waiter.
 */
#include "sync/waitq.h"

#include <errno.h>
#include <string.h>

#define WEFT__SEM_MAX ((AO_t)INT64_MAX)

typedef struct weft__sem {
    weft__atomic_word permits;
    weft__waitq queue;
} weft__sem;

_Static_assert(sizeof(weft__sem) == sizeof(weft_sem), "weft_sem's size is public");

WEFT_API void weft_sem_init(weft_sem *ps, uint64_t permits) {
    if (!ps)
        return;
    memset(ps, 0, sizeof(*ps));
    /* Relaxed: not shared yet; whoever gets the object from us gets it with a release. */
    weft__atomic_store_relaxed(&((weft__sem *)ps)->permits,
                               permits > WEFT__SEM_MAX ? WEFT__SEM_MAX : (AO_t)permits);
}

/* Takes a permit without waiting: true if it did. */
static bool try_take(weft__sem *s) {
    AO_t p = weft__atomic_load_relaxed(&s->permits); /* a first guess for the CAS */
    while (p > 0) {
        /* Acquire: pairs with release's RMW; what the releaser did is visible. */
        AO_t seen = weft__atomic_cas_acquire(&s->permits, p, p - 1);
        if (seen == p)
            return true;
        p = seen;
    }
    return false;
}

WEFT_API int weft_sem_acquire(weft_sem *ps, uint64_t deadline_ns) {
    if (!ps)
        return -EINVAL;
    weft__sem *s = (weft__sem *)ps;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    if (try_take(s))
        return 0;
    weft__waiter w;
    weft__waiter_init(&w);
    w.wait.kind = WEFT__WAITING_SEM; /* for a dump */
    w.wait.object = (uint64_t)(uintptr_t)s;
    weft__waitq_site site = {&s->queue.lock, &s->queue.list};
    /* (SYNC-Q1) */
    weft__qlock(&s->queue.lock);
    if (try_take(s)) {
        weft__qunlock(&s->queue.lock);
        return 0;
    }
    weft__waitq_push(&s->queue.lock, &s->queue.list, &w);
    weft__qunlock(&s->queue.lock);
    return weft__waitq_block(&w, &site, deadline_ns); /* 0: a permit was handed to us */
}

WEFT_API int weft_sem_try_acquire(weft_sem *ps) {
    if (!ps)
        return -EINVAL;
    return try_take((weft__sem *)ps) ? 0 : -EAGAIN;
}

WEFT_API int weft_sem_release(weft_sem *ps) {
    if (!ps)
        return -EINVAL;
    weft__sem *s = (weft__sem *)ps;
    /* (SYNC-W1) */
    weft__qlock(&s->queue.lock);
    weft__waiter *w = weft__waiter_list_pop(&s->queue.list);
    if (!w) {
        /* Relaxed: only releasers raise it, under the lock. */
        if (weft__atomic_load_relaxed(&s->permits) >= WEFT__SEM_MAX) {
            weft__qunlock(&s->queue.lock);
            return -EOVERFLOW;
        }
        /* Full: release for try_take's acquire; an RMW because the fast path CASes
         * without the lock. */
        weft__atomic_fetch_add_full(&s->permits, 1);
    }
    weft__qunlock(&s->queue.lock);
    if (w) { /* (SYNC-W2) the permit goes straight to the oldest waiter */
        weft__waiter_list one = {w, w};
        w->next = NULL;
        weft__waiter_list_deliver(&one, 0);
    }
    return 0;
}

WEFT_API int weft_sem_destroy(weft_sem *ps) {
    if (!ps)
        return -EINVAL;
    return weft__waitq_destroy(&((weft__sem *)ps)->queue);
}
