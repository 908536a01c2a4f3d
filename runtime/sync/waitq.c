/*
 * waitq.c: wait queues (waitq.h): the sched/wait.h protocol with a locked FIFO as the
 * structure. Owns nothing but the list operations.
 *
 *   waiter                                   waker (unlock, signal, release, send...)
 *   (SYNC-Q1) under the lock: check the      (SYNC-W1) under the lock: change the state
 *        primitive's state (free? a permit?       (release a permit, set the event...),
 *        a partner?); if it can proceed,          pop the waiters it serves (WAIT-D0:
 *        do so; else queue itself                 queued := false), and record what it
 *        (WAIT-B1).                               hands each (the mutex, a permit, an
 *   (SYNC-Q2) unlock; park (WAIT-B2).              element copied under the lock).
 *   (SYNC-Q3) at the deadline: lock; still   (SYNC-W2) unlock; deliver each
 *        queued? unlink: -ETIMEDOUT, nothing       (WAIT-D1..D3), then one wake-up
 *        happened. Else a waker popped it:         of an idle worker (WAIT-D4).
 *        wait for its delivery (WAIT-B3).
 *
 *   (SYNC-Q4) after Q2/Q3: leave (weft__qleave: the count of waiters inside, kept in
 *        the lock word and raised at Q1, drops): the waiter's last touch of the object.
 *        A destroy under the lock sees the count and says -EBUSY until then.
 *
 * One lock orders SYNC-Q1 against SYNC-W1, so a waiter either sees the state the waker
 * left (and does not queue) or is in the queue when the waker looks: no lost wake-up.
 * SYNC-Q3 against SYNC-W1: `queued` under the lock decides whether the waiter withdrew
 * or was served, once. Delivery happens after the unlock: waking a worker is a system
 * call, never made under a spin lock.
 */
#include "sync/waitq.h"

#include "base/chaos.h"
#include "sched/runtime.h"

#include <errno.h>

uint64_t weft__sync_self(void) {
    static weft__atomic_word next_thread_id = 1;
    static _Thread_local uint64_t thread_id;
    uint64_t task = weft_current_id();
    if (task)
        return task;
    if (!thread_id) /* relaxed: uniqueness needs only the RMW's atomicity */
        thread_id = (1ull << 63) | weft__atomic_fetch_add_relaxed(&next_thread_id, 1);
    return thread_id;
}

uint64_t weft__sync_chaos_seed(void) {
    weft__worker *w = weft__worker_current();
    return w ? w->runtime->chaos_seed : 0;
}

void weft__waiter_init(weft__waiter *w) {
    weft__wait_init(&w->wait);
    w->next = w->prev = NULL;
    w->queued = false;
    w->since = 0;
    w->elem = NULL;
    w->select = NULL;
    w->case_index = 0;
    w->outcome = 0;
}

static void list_push(weft__waiter_list *l, weft__waiter *w) {
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
    w->queued = true;
}

static void list_push_front(weft__waiter_list *l, weft__waiter *w) {
    w->prev = NULL;
    w->next = l->head;
    if (l->head)
        l->head->prev = w;
    else
        l->tail = w;
    l->head = w;
    w->queued = true;
}

void weft__waitq_push(weft__atomic_word *lock, weft__waiter_list *l, weft__waiter *w) {
    list_push(l, w);
    weft__qenter(lock);
}

void weft__waitq_push_front(weft__atomic_word *lock, weft__waiter_list *l, weft__waiter *w) {
    list_push_front(l, w);
    weft__qenter(lock);
}

void weft__waiter_list_remove(weft__waiter_list *l, weft__waiter *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->next = w->prev = NULL;
    w->queued = false;
}

weft__waiter *weft__waiter_list_pop(weft__waiter_list *l) {
    weft__waiter *w = l->head;
    if (w)
        weft__waiter_list_remove(l, w);
    return w;
}

bool weft__waitq_withdraw(weft__wait *wait, void *structure) {
    weft__waitq_site *site = structure;
    weft__waiter *w = (weft__waiter *)wait; /* wait is the first member */
    WEFT__SYNC_CHAOS_POINT("SYNC-Q3");
    /* (SYNC-Q3) */
    weft__qlock(site->lock);
    bool withdrew = w->queued;
    if (withdrew)
        weft__waiter_list_remove(site->list, w);
    weft__qunlock(site->lock);
    return withdrew;
}

int weft__waitq_destroy(weft__waitq *q) {
    weft__qlock(&q->lock);
    bool busy = !weft__waiter_list_empty(&q->list) || weft__qbusy(&q->lock);
    weft__qunlock(&q->lock);
    return busy ? -EBUSY : 0;
}

int weft__waitq_block(weft__waiter *w, weft__waitq_site *site, uint64_t deadline_ns) {
    WEFT__SYNC_CHAOS_POINT("SYNC-Q2");
    int rc = weft__wait_block(&w->wait, deadline_ns, weft__waitq_withdraw, site);
    weft__qleave(site->lock); /* the last touch of the object */
    return rc;
}

weft__waiter_list weft__waiter_list_take_all(weft__waiter_list *l) {
    weft__waiter_list taken = *l;
    for (weft__waiter *w = taken.head; w; w = w->next)
        w->queued = false;
    l->head = l->tail = NULL;
    return taken;
}

static void deliver(weft__waiter_list *l, bool outcomes, int result) {
    weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
    /* `next` is read before each delivery: after it the waiter may be gone (WAIT-D3). */
    for (weft__waiter *w = l->head, *next; w; w = next) {
        next = w->next;
        WEFT__SYNC_CHAOS_POINT("SYNC-W2");
        weft__wait_deliver(&w->wait, outcomes ? w->outcome : result, &batch);
    }
    weft__wake_batch_finish(&batch);
}

void weft__waiter_list_deliver(weft__waiter_list *l, int result) {
    deliver(l, false, result);
}

void weft__waiter_list_deliver_outcomes(weft__waiter_list *l) {
    deliver(l, true, 0);
}
