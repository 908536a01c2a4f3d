/*
 * cond.c: weft_cond: a condition variable over weft_mutex. Owns the queue of waiters.
 *
 * A waiter queues itself (SYNC-Q1) before it releases the mutex, so a signal sent by
 * anyone who takes the mutex after that finds it in the queue: no lost wake-up. Signal
 * and broadcast pop and deliver (SYNC-W1/W2); a signal with nobody queued does nothing,
 * as pthreads. No spurious wake-ups: a waiter returns 0 only when a signal popped it.
 */
#include "sync/mutex.h"
#include "sync/waitq.h"

#include <errno.h>
#include <string.h>

typedef struct weft__cond {
    weft__waitq queue;
    uint64_t unused;
} weft__cond;

_Static_assert(sizeof(weft__cond) == sizeof(weft_cond), "weft_cond's size is public");

WEFT_API void weft_cond_init(weft_cond *c) {
    if (c)
        memset(c, 0, sizeof(*c));
}

WEFT_API int weft_cond_wait(weft_cond *pc, weft_mutex *m, uint64_t deadline_ns) {
    if (!pc || !m)
        return -EINVAL;
    if (!weft__mutex_held_by_caller(m))
        return -EPERM;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    weft__cond *c = (weft__cond *)pc;
    weft__waiter w;
    weft__waiter_init(&w);
    w.wait.kind = WEFT__WAITING_COND; /* for a dump */
    w.wait.object = (uint64_t)(uintptr_t)c;
    weft__waitq_site site = {&c->queue.lock, &c->queue.list};
    /* (SYNC-Q1) Queued before the mutex is released. */
    weft__qlock(&c->queue.lock);
    weft__waitq_push(&c->queue.lock, &c->queue.list, &w);
    weft__qunlock(&c->queue.lock);
    weft_mutex_unlock(m);
    int rc = weft__waitq_block(&w, &site, deadline_ns);
    /* Whatever happened, the caller holds m again (pthreads' rule; weft.h). */
    while (weft_mutex_lock(m) != 0)
        ; /* cannot fail: m is valid and we do not hold it */
    return rc;
}

static int wake(weft_cond *pc, bool all) {
    if (!pc)
        return -EINVAL;
    weft__cond *c = (weft__cond *)pc;
    weft__waiter_list popped = {NULL, NULL};
    /* (SYNC-W1) */
    weft__qlock(&c->queue.lock);
    if (all) {
        popped = weft__waiter_list_take_all(&c->queue.list);
    } else {
        weft__waiter *w = weft__waiter_list_pop(&c->queue.list);
        popped.head = popped.tail = w;
    }
    weft__qunlock(&c->queue.lock);
    /* (SYNC-W2) */
    weft__waiter_list_deliver(&popped, 0);
    return 0;
}

WEFT_API int weft_cond_signal(weft_cond *c) {
    return wake(c, false);
}

WEFT_API int weft_cond_broadcast(weft_cond *c) {
    return wake(c, true);
}

WEFT_API int weft_cond_destroy(weft_cond *pc) {
    if (!pc)
        return -EINVAL;
    return weft__waitq_destroy(&((weft__cond *)pc)->queue);
}
