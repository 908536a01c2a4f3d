/*
 * inject.h: the runtime's global injection queue, a mutex-protected FIFO of intrusive
 * links. It takes spawns and wake-ups from threads that are not the runtime's workers,
 * and the overflow of a full worker deque. Workers drain it in batches.
 *
 * Design not taken: a lock-free MPMC queue. Every path into this queue is already
 * slower than the lock (a foreign thread's spawn, or a deque overflow that moves 128
 * tasks at once), and workers read `length` without the lock to skip it when empty,
 * so the mutex is neither contended nor on the fast path. Tokio made the same choice.
 */
#ifndef WEFT__SCHED_INJECT_H
#define WEFT__SCHED_INJECT_H

#include "base/atomic.h"
#include "base/list.h"

#include <pthread.h>

typedef struct weft__inject {
    pthread_mutex_t lock;
    weft__fifo fifo; /* under lock */
    /* fifo.count, mirrored for lock-free emptiness checks. Written under lock. */
    weft__atomic_word length;
} weft__inject;

void weft__inject_init(weft__inject *q);
void weft__inject_destroy(weft__inject *q);

/* Any thread. */
void weft__inject_push_any(weft__inject *q, weft__link *l);
/* Any thread: a chain first..last of count links, in that order. */
void weft__inject_push_batch_any(weft__inject *q, weft__link *first, weft__link *last,
                                 size_t count);
/* Any thread: takes up to max of the oldest links into *out (in order). Returns how many
 * were taken (0 if empty). */
size_t weft__inject_pop_batch_any(weft__inject *q, size_t max, weft__fifo *out);

/* Any thread: a snapshot, for "is there anything?" checks. */
static inline size_t weft__inject_length_any(weft__inject *q) {
    /* Acquire: if we see a non-zero length, taking the lock will find the links (the
     * lock orders the rest); a stale zero is re-checked by the parking protocol
     * (idle.c), which reads it after a full barrier. */
    return (size_t)weft__atomic_load_acquire(&q->length);
}

#endif /* WEFT__SCHED_INJECT_H */
