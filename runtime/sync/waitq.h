/*
 * waitq.h: the wait queue under every sync primitive and channel: a FIFO of waiters,
 * each a sched/wait.h wait (WAIT-B/D) plus what the primitive needs (the element a
 * channel copies, the select a waiter belongs to). The queue's links are guarded by a
 * spin lock that the primitive owns (its own, or a channel's); the protocol (SYNC-*) is
 * in waitq.c.
 *
 * A zeroed weft__waitq is an empty queue with an unlocked lock.
 */
#ifndef WEFT__SYNC_WAITQ_H
#define WEFT__SYNC_WAITQ_H

#include "base/atomic.h"
#include "base/chaos.h"
#include "sched/cancel.h"
#include "sched/wait.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct weft__select;

typedef struct weft__waiter {
    weft__wait wait; /* the WAIT protocol: task, done, result */
    /* Under the queue's lock. */
    struct weft__waiter *next, *prev;
    bool queued;
    /* Immutable while queued. */
    uint64_t since;              /* when it first queued (the mutex's starvation rule) */
    void *elem;                  /* a channel's: where to copy to (recv) or from (send) */
    struct weft__select *select; /* the select it is one case of, or NULL */
    unsigned case_index;         /* its case in that select */
    /* Set by the waker that popped it, under the lock, for a delivery after the unlock
     * (weft__waiter_list_deliver_outcomes). */
    int outcome;
} weft__waiter;

_Static_assert(offsetof(weft__waiter, wait) == 0, "a weft__wait * is its weft__waiter *");

/* Who is calling, for owners (the mutex): the current task's id, or for any other thread
 * an id of its own (bit 63 set, so never a task's). Never 0. */
uint64_t weft__sync_self(void);

typedef struct weft__waiter_list {
    weft__waiter *head, *tail;
} weft__waiter_list;

/* A wait queue: its lock word and its waiters. The lock word counts, beside the lock
 * (bit 0), the waiters inside a call on the object (bits 1 and up): queued, or woken and
 * not yet returned. A waiter's last touch of the object is the decrement
 * (weft__qleave), so a destroy that sees the count at 0 under the lock knows no waiter
 * will touch the object again (found by a test: a waiter whose deadline fired just as it
 * was served took the lock to withdraw after the object was destroyed and freed). */
typedef struct weft__waitq {
    weft__atomic_word lock;
    weft__waiter_list list;
} weft__waitq;

#define WEFT__QLOCK_HELD   ((AO_t)1)
#define WEFT__QLOCK_INSIDE ((AO_t)2)

static inline void weft__qlock(weft__atomic_word *word) {
    unsigned rounds = 0;
    AO_t v = weft__atomic_load_relaxed(word);
    for (;;) {
        if (v & WEFT__QLOCK_HELD) {
            weft__spin_wait(&rounds);
            v = weft__atomic_load_relaxed(word);
            continue;
        }
        /* Acquire: pairs with the previous holder's release in weft__qunlock, and with a
         * leaving waiter's release in weft__qleave (an RMW chain on one word). */
        AO_t seen = weft__atomic_cas_acquire(word, v, v | WEFT__QLOCK_HELD);
        if (seen == v)
            return;
        v = seen;
    }
}
static inline void weft__qunlock(weft__atomic_word *word) {
    /* Release; an RMW, not a store: a waiter may leave (decrement) meanwhile. */
    weft__atomic_fetch_add_release(word, (AO_t)0 - WEFT__QLOCK_HELD);
}
/* Under the lock: one more waiter inside. Relaxed: the unlock's release publishes it. */
static inline void weft__qenter(weft__atomic_word *word) {
    weft__atomic_fetch_add_relaxed(word, WEFT__QLOCK_INSIDE);
}
/* A waiter's last touch of the object. Release: its earlier touches come before a
 * destroyer's acquire of the lock. */
static inline void weft__qleave(weft__atomic_word *word) {
    weft__atomic_fetch_add_release(word, (AO_t)0 - WEFT__QLOCK_INSIDE);
}
/* Under the lock: is any waiter inside? Acquire: with "no", the destroyer may free the
 * object, so every leaver's touches must come before (pairs with weft__qleave's release).
 * The lock's CAS already read this value with acquire; ThreadSanitizer (gcc 12) does not
 * see that edge through the chain of read-modify-writes, and reported every free after a
 * destroy as a race with the last leaver (a two-thread program of this pattern alone
 * reproduces it); this load makes the edge explicit. */
static inline bool weft__qbusy(weft__atomic_word *word) {
    return weft__atomic_load_acquire(word) >= WEFT__QLOCK_INSIDE;
}

_Static_assert(sizeof(weft__waitq) == 24, "weft__waitq is part of inline public types");

/* The chaos seed of the calling worker's runtime, or 0 (a plain thread): sync objects
 * belong to no runtime, so their chaos points (base/chaos.h) follow the caller's. */
uint64_t weft__sync_chaos_seed(void);
#define WEFT__SYNC_CHAOS_POINT(label) WEFT__CHAOS_POINT(weft__sync_chaos_seed(), label)

/* A waiter for the calling task (or thread), not queued. */
void weft__waiter_init(weft__waiter *w);

/* Under the lock (`lock`, a counted lock word): queues w at the tail (or the head) and
 * counts it inside; the waiter leaves by weft__waitq_block (or weft__qleave). */
void weft__waitq_push(weft__atomic_word *lock, weft__waiter_list *l, weft__waiter *w);
void weft__waitq_push_front(weft__atomic_word *lock, weft__waiter_list *l, weft__waiter *w);
/* Under the lock. */
weft__waiter *weft__waiter_list_pop(weft__waiter_list *l);                /* NULL if empty */
void weft__waiter_list_remove(weft__waiter_list *l, weft__waiter *w);
/* Under the lock: empties l, returning its waiters (no longer queued) for delivery. */
weft__waiter_list weft__waiter_list_take_all(weft__waiter_list *l);
/* After the unlock (SYNC-W2): delivers `result` to every waiter of a taken list. */
void weft__waiter_list_deliver(weft__waiter_list *l, int result);
/* Likewise, each waiter with its own `outcome`. */
void weft__waiter_list_deliver_outcomes(weft__waiter_list *l);
/* Under the lock: appends a popped waiter to a list of deliveries (links `next` only). */
static inline void weft__waiter_list_append_popped(weft__waiter_list *l, weft__waiter *w) {
    w->next = NULL;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}
static inline bool weft__waiter_list_empty(const weft__waiter_list *l) {
    return l->head == NULL;
}

/* A primitive's destroy when nothing but its queue can make it busy: -EBUSY while a
 * waiter is queued or inside a call, else 0. */
int weft__waitq_destroy(weft__waitq *q);

/* The withdraw of WAIT-B3 for a waiter queued on `l` under `lock`: takes it out if it is
 * still queued. `structure` is a weft__waitq_site. */
typedef struct weft__waitq_site {
    weft__atomic_word *lock;
    weft__waiter_list *list;
} weft__waitq_site;
bool weft__waitq_withdraw(weft__wait *wait, void *site);

/* Blocks the waiter `w`, queued on `site` by the caller (who has released the lock since),
 * until delivered or the deadline (WAIT-B2/B3), then leaves the object (weft__qleave):
 * the caller must not touch the object afterwards, unless it holds its own reason to
 * (a mutex it is taking). Returns its result, or -ETIMEDOUT / -ENOMEM when withdrawn. */
int weft__waitq_block(weft__waiter *w, weft__waitq_site *site, uint64_t deadline_ns);

#endif /* WEFT__SYNC_WAITQ_H */
