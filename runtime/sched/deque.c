/*
 * deque.c: the work-stealing deque of deque.h.
 *
 * The algorithm is Chase and Lev's (SPAA 2005) with a fixed ring, and the orderings of
 * Lê, Pop, Cohen and Zappa Nardelli, "Correct and efficient work-stealing for weak
 * memory models" (PPoPP 2013), with one substitution: their two seq_cst fences become
 * full-barrier read-modify-writes, because ThreadSanitizer does not model fences (it
 * reports false races on them) while it does model RMWs (see atomic.h).
 *
 * Invariants:
 * - top <= bottom + 1 at all times; top only grows; the elements are the indices
 *   [top, bottom). bottom - top <= capacity.
 * - Only the owner writes bottom and the slots. Slot i & mask is rewritten only after
 *   top has passed i, i.e. after every thief that could read element i has settled its
 *   CAS on top (the owner reads top with acquire before it reuses a slot).
 * - An element is taken exactly once: by a successful CAS of top from i to i+1 (a thief,
 *   or the owner taking the last element), or by the owner popping index i > top
 *   without a CAS, which is safe because bottom was lowered to i first (with a full
 *   barrier) and every thief re-reads bottom after a full barrier of its own.
 *
 * The store-load pairs (the Dekker pattern at the heart of Chase-Lev):
 *   take:  (DEQUE-T1) bottom := b - 1   full-barrier RMW on bottom
 *          (DEQUE-T2) read top          acquire
 *   steal: (DEQUE-S1) read top          full-barrier RMW (adds 0) on top
 *          (DEQUE-S2) read bottom       acquire
 * The RMWs are totally ordered. If T1 comes first, a thief's S2 sees the lowered bottom
 * and does not take element b - 1 without winning the CAS the owner also makes when
 * b - 1 is the last element. If S1 comes first, T2 sees top as S1 saw it or later, so
 * the owner's emptiness test accounts for that thief. (T1, T2, S1, S2 here are
 * DEQUE-T1..DEQUE-S2.)
 *
 * Designs not taken:
 * - A growable ring (the original Chase-Lev): growing needs the old ring to stay alive
 *   while thieves may read it, i.e. a memory-reclamation scheme (hazard pointers or
 *   epochs). A bounded ring whose overflow goes to the injection queue in batches
 *   (Tokio's choice) needs none, and a full deque means there is plenty to steal anyway.
 * - Tokio's queue (owner pops FIFO at the head; a separate LIFO slot): weft's owner pops
 *   LIFO so that fork-join recursion runs depth-first, which Chase-Lev gives directly.
 * - Double-word CAS on (top, tag): invisible to TSan, and unneeded since top never
 *   wraps in practice (2^64 steals).
 */
#include "sched/deque.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int weft__deque_init(weft__deque *d, size_t capacity) {
    if (capacity < 2 || (capacity & (capacity - 1)) != 0)
        return -EINVAL;
    d->slots = calloc(capacity, sizeof(*d->slots));
    if (!d->slots)
        return -ENOMEM;
    d->mask = capacity - 1;
    weft__atomic_store_relaxed(&d->top, 0);
    weft__atomic_store_relaxed(&d->bottom, 0);
    return 0;
}

void weft__deque_destroy(weft__deque *d) {
    free((void *)d->slots);
    d->slots = NULL;
}

size_t weft__deque_capacity(const weft__deque *d) {
    return d->mask + 1;
}

bool weft__deque_push_owner(weft__deque *d, void *item) {
    AO_t b = weft__atomic_load_relaxed(&d->bottom); /* only we write it */
    /* Acquire: pairs with the CAS that advanced top, so the thief's read of the slot we
     * are about to reuse happened before our write. */
    AO_t t = weft__atomic_load_acquire(&d->top);
    if (b - t > d->mask)
        return false;
    /* Relaxed: published by the release store of bottom below. */
    weft__atomic_store_relaxed(&d->slots[b & d->mask], (AO_t)item);
    /* Release: a thief that reads the new bottom (acquire) sees the slot's content. */
    weft__atomic_store_release(&d->bottom, b + 1);
    return true;
}

void *weft__deque_pop_owner(weft__deque *d) {
    AO_t b = weft__atomic_load_relaxed(&d->bottom);
    /* Fast path for the common empty case, without the RMW: top <= bottom, top only
     * grows and only we add elements, so top == bottom means empty now and until we
     * push. Relaxed is enough: a stale (smaller) top only sends us down the slow path. */
    if (weft__atomic_load_relaxed(&d->top) == b)
        return NULL;
    /* (DEQUE-T1) Full-barrier RMW: bottom := b - 1 becomes visible before we read top (DEQUE-T2).
     * Pairs with the thieves' (DEQUE-S1) RMW on top. */
    b = weft__atomic_fetch_add_full(&d->bottom, (AO_t)-1) - 1;
    /* (DEQUE-T2) Acquire: pairs with thieves' CAS of top, so the element they took is
     * theirs. */
    AO_t t = weft__atomic_load_acquire(&d->top);
    if ((intptr_t)(b - t) < 0) {
        /* Empty: thieves took everything. Restore bottom = top. Relaxed: no slot is
         * published by this store. */
        weft__atomic_store_relaxed(&d->bottom, b + 1);
        return NULL;
    }
    void *item = (void *)weft__atomic_load_relaxed(&d->slots[b & d->mask]);
    if (b != t)
        return item; /* more than one element: no thief can reach index b */
    /* The last element: race the thieves for it with the same CAS they use. Full
     * barrier, as theirs. */
    bool won = weft__atomic_cas_full(&d->top, t, t + 1) == t;
    weft__atomic_store_relaxed(&d->bottom, b + 1); /* top is now b + 1 either way */
    return won ? item : NULL;
}

weft__steal_result weft__deque_steal_any(weft__deque *d, void **item) {
    /* (DEQUE-S1) A full-barrier read of top (an RMW that adds 0) so that our read of bottom
     * (DEQUE-S2) cannot be satisfied before it; pairs with the owner's (DEQUE-T1). */
    AO_t t = weft__atomic_load_full(&d->top);
    /* (DEQUE-S2) Acquire: pairs with the owner's release store of bottom in push, so the
     * slot's content is visible. */
    AO_t b = weft__atomic_load_acquire(&d->bottom);
    if ((intptr_t)(b - t) <= 0)
        return WEFT__STEAL_EMPTY;
    /* Relaxed: ordered after (DEQUE-S2)'s acquire; the slot cannot be rewritten before top
     * passes t, and our CAS below fails if it did. */
    void *x = (void *)weft__atomic_load_relaxed(&d->slots[t & d->mask]);
    /* Full: claims element t; its release half pairs with the owner's acquire read of
     * top before it reuses the slot. */
    if (weft__atomic_cas_full(&d->top, t, t + 1) != t)
        return WEFT__STEAL_RETRY;
    *item = x;
    return WEFT__STEAL_SUCCESS;
}

size_t weft__deque_steal_batch_owner(weft__deque *d, void **out, size_t n) {
    for (;;) {
        /* Acquire: see every thief's advance of top. We are the only writer of bottom,
         * so a relaxed read of it is exact. */
        AO_t t = weft__atomic_load_acquire(&d->top);
        AO_t b = weft__atomic_load_relaxed(&d->bottom);
        size_t have = (intptr_t)(b - t) > 0 ? (size_t)(b - t) : 0;
        size_t take = have < n ? have : n;
        if (take == 0)
            return 0;
        for (size_t i = 0; i < take; i++)
            out[i] = (void *)weft__atomic_load_relaxed(&d->slots[(t + i) & d->mask]);
        /* Full: claims [t, t + take) at once against the thieves, as their CAS does. */
        if (weft__atomic_cas_full(&d->top, t, t + take) == t)
            return take;
    }
}

size_t weft__deque_size_any(weft__deque *d) {
    /* Acquire both: a snapshot for heuristics (is there work to steal?), never for
     * correctness. */
    AO_t t = weft__atomic_load_acquire(&d->top);
    AO_t b = weft__atomic_load_acquire(&d->bottom);
    return (intptr_t)(b - t) > 0 ? (size_t)(b - t) : 0;
}
