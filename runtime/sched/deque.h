/*
 * deque.h: a worker's work-stealing deque (Chase-Lev, bounded). The owner pushes and
 * pops at the bottom (LIFO, so fork-join runs depth-first and hot data stays in cache);
 * thieves take from the top (FIFO, the oldest and usually largest pieces of work).
 * Elements are opaque non-NULL pointers. The algorithm, its orderings and the designs
 * not taken are described in deque.c.
 *
 * Suffixes say who may call: _owner only the owning thread, _any any thread.
 */
#ifndef WEFT__SCHED_DEQUE_H
#define WEFT__SCHED_DEQUE_H

#include "base/atomic.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct weft__deque {
    /* Next index thieves take. Advanced only by CAS (thieves, and the owner when it
     * takes the last element or hands a batch to the injection queue). */
    _Alignas(64) weft__atomic_word top;
    char pad_top[64 - sizeof(weft__atomic_word)];
    /* One past the newest element. Written only by the owner; read by thieves. */
    weft__atomic_word bottom;
    size_t mask;              /* capacity - 1; capacity is a power of two; immutable */
    weft__atomic_word *slots; /* the ring: slot i holds element i & mask; immutable pointer */
    char pad_bottom[64 - sizeof(weft__atomic_word) - sizeof(size_t) - sizeof(void *)];
} weft__deque;

typedef enum weft__steal_result {
    WEFT__STEAL_SUCCESS,
    WEFT__STEAL_EMPTY,
    WEFT__STEAL_RETRY, /* lost a race with the owner or another thief; it may have work */
} weft__steal_result;

/* capacity: a power of two >= 2. Returns 0 or -ENOMEM / -EINVAL. */
int weft__deque_init(weft__deque *d, size_t capacity);
void weft__deque_destroy(weft__deque *d);

/* Adds at the bottom. Returns false, changing nothing, when the deque is full. */
bool weft__deque_push_owner(weft__deque *d, void *item);

/* Takes the newest element; NULL when empty. */
void *weft__deque_pop_owner(weft__deque *d);

/* Takes up to n of the oldest elements into out[] (oldest first), as a thief would;
 * used to move half of a full deque to the injection queue. Returns how many. */
size_t weft__deque_steal_batch_owner(weft__deque *d, void **out, size_t n);

/* Takes the oldest element into *item. */
weft__steal_result weft__deque_steal_any(weft__deque *d, void **item);

/* Elements present, a snapshot that may be stale by the time it returns. */
size_t weft__deque_size_any(weft__deque *d);

size_t weft__deque_capacity(const weft__deque *d);

#endif /* WEFT__SCHED_DEQUE_H */
