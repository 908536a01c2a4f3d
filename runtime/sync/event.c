/*
 * event.c: weft_event (asyncio.Event): a flag and the waiters for it. Owns both.
 *
 * set stores the flag and takes every waiter under the queue's lock (SYNC-W1), waking
 * them after (SYNC-W2); a waiter queues only if the flag is clear under the lock
 * (SYNC-Q1). So a set followed at once by a clear still wakes every waiter that was
 * queued when it ran.
 */
#include "sync/waitq.h"

#include <errno.h>
#include <string.h>

typedef struct weft__event {
    weft__atomic_word set;
    weft__waitq queue;
} weft__event;

_Static_assert(sizeof(weft__event) == sizeof(weft_event), "weft_event's size is public");

WEFT_API void weft_event_init(weft_event *e) {
    if (e)
        memset(e, 0, sizeof(*e));
}

WEFT_API int weft_event_set(weft_event *pe) {
    if (!pe)
        return -EINVAL;
    weft__event *e = (weft__event *)pe;
    weft__qlock(&e->queue.lock);
    /* Release: pairs with wait's and is_set's acquire. */
    weft__atomic_store_release(&e->set, 1);
    weft__waiter_list woken = weft__waiter_list_take_all(&e->queue.list); /* (SYNC-W1) */
    weft__qunlock(&e->queue.lock);
    weft__waiter_list_deliver(&woken, 0); /* (SYNC-W2) */
    return 0;
}

WEFT_API int weft_event_clear(weft_event *pe) {
    if (!pe)
        return -EINVAL;
    weft__event *e = (weft__event *)pe;
    weft__qlock(&e->queue.lock);
    weft__atomic_store_release(&e->set, 0); /* release, as set's: is_set reads it unlocked */
    weft__qunlock(&e->queue.lock);
    return 0;
}

WEFT_API int weft_event_is_set(const weft_event *pe) {
    if (!pe)
        return -EINVAL;
    /* Acquire: pairs with set's release. */
    return weft__atomic_load_acquire(&((const weft__event *)pe)->set) ? 1 : 0;
}

WEFT_API int weft_event_wait(weft_event *pe, uint64_t deadline_ns) {
    if (!pe)
        return -EINVAL;
    weft__event *e = (weft__event *)pe;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    if (weft__atomic_load_acquire(&e->set))
        return 0;
    weft__waiter w;
    weft__waiter_init(&w);
    w.wait.kind = WEFT__WAITING_EVENT; /* for a dump */
    w.wait.object = (uint64_t)(uintptr_t)e;
    weft__waitq_site site = {&e->queue.lock, &e->queue.list};
    /* (SYNC-Q1) */
    weft__qlock(&e->queue.lock);
    if (weft__atomic_load_relaxed(&e->set)) { /* relaxed: under the lock its writers hold */
        weft__qunlock(&e->queue.lock);
        return 0;
    }
    weft__waitq_push(&e->queue.lock, &e->queue.list, &w);
    weft__qunlock(&e->queue.lock);
    return weft__waitq_block(&w, &site, deadline_ns);
}

WEFT_API int weft_event_destroy(weft_event *pe) {
    if (!pe)
        return -EINVAL;
    return weft__waitq_destroy(&((weft__event *)pe)->queue);
}
