/*
 * waitgroup.c: weft_waitgroup (Go's sync.WaitGroup). Owns its counter and queue.
 *
 * The counter changes only under the queue's lock; a change that reaches 0 takes every
 * waiter (SYNC-W1) and wakes them after the unlock (SYNC-W2). A waiter queues only if
 * the counter is not 0 under the lock (SYNC-Q1). The lock-free read of wait's fast
 * path is an acquire of a value stored with release under the lock.
 */
#include "sync/waitq.h"

#include <errno.h>
#include <string.h>

typedef struct weft__waitgroup {
    weft__atomic_word counter; /* an int64_t, >= 0 */
    weft__waitq queue;
} weft__waitgroup;

_Static_assert(sizeof(weft__waitgroup) == sizeof(weft_waitgroup), "its size is public");

WEFT_API void weft_waitgroup_init(weft_waitgroup *wg) {
    if (wg)
        memset(wg, 0, sizeof(*wg));
}

WEFT_API int weft_waitgroup_add(weft_waitgroup *pwg, int64_t delta) {
    if (!pwg)
        return -EINVAL;
    weft__waitgroup *wg = (weft__waitgroup *)pwg;
    weft__qlock(&wg->queue.lock);
    int64_t now = (int64_t)weft__atomic_load_relaxed(&wg->counter); /* under the lock */
    int64_t next;
    if (__builtin_add_overflow(now, delta, &next) || next < 0) {
        weft__qunlock(&wg->queue.lock);
        return -EINVAL;
    }
    /* Release: pairs with wait's acquire fast path. */
    weft__atomic_store_release(&wg->counter, (AO_t)next);
    weft__waiter_list woken = {NULL, NULL};
    if (next == 0) /* (SYNC-W1) */
        woken = weft__waiter_list_take_all(&wg->queue.list);
    weft__qunlock(&wg->queue.lock);
    weft__waiter_list_deliver(&woken, 0); /* (SYNC-W2) */
    return 0;
}

WEFT_API int weft_waitgroup_done(weft_waitgroup *wg) {
    return weft_waitgroup_add(wg, -1);
}

WEFT_API int weft_waitgroup_wait(weft_waitgroup *pwg, uint64_t deadline_ns) {
    if (!pwg)
        return -EINVAL;
    weft__waitgroup *wg = (weft__waitgroup *)pwg;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    /* Acquire: pairs with add's release store. */
    if (weft__atomic_load_acquire(&wg->counter) == 0)
        return 0;
    weft__waiter w;
    weft__waiter_init(&w);
    w.wait.kind = WEFT__WAITING_WAITGROUP; /* for a dump */
    w.wait.object = (uint64_t)(uintptr_t)wg;
    weft__waitq_site site = {&wg->queue.lock, &wg->queue.list};
    /* (SYNC-Q1) */
    weft__qlock(&wg->queue.lock);
    if (weft__atomic_load_relaxed(&wg->counter) == 0) { /* relaxed: under the lock */
        weft__qunlock(&wg->queue.lock);
        return 0;
    }
    weft__waitq_push(&wg->queue.lock, &wg->queue.list, &w);
    weft__qunlock(&wg->queue.lock);
    return weft__waitq_block(&w, &site, deadline_ns);
}

WEFT_API int weft_waitgroup_destroy(weft_waitgroup *pwg) {
    if (!pwg)
        return -EINVAL;
    return weft__waitq_destroy(&((weft__waitgroup *)pwg)->queue);
}
