/*
 * inject.c: the injection queue of inject.h. Everything but `length` is protected by
 * `lock`; `length` is written only under the lock and read without it.
 */
#include "sched/inject.h"

void weft__inject_init(weft__inject *q) {
    pthread_mutex_init(&q->lock, NULL);
    weft__fifo_init(&q->fifo);
    weft__atomic_store_relaxed(&q->length, 0);
}

void weft__inject_destroy(weft__inject *q) {
    pthread_mutex_destroy(&q->lock);
}

void weft__inject_push_any(weft__inject *q, weft__link *l) {
    weft__inject_push_batch_any(q, l, l, 1);
}

void weft__inject_push_batch_any(weft__inject *q, weft__link *first, weft__link *last,
                                 size_t count) {
    pthread_mutex_lock(&q->lock);
    weft__fifo_append(&q->fifo, first, last, count);
    /* Release: pairs with the acquire in weft__inject_length_any. */
    weft__atomic_store_release(&q->length, q->fifo.count);
    pthread_mutex_unlock(&q->lock);
}

size_t weft__inject_pop_batch_any(weft__inject *q, size_t max, weft__fifo *out) {
    if (weft__inject_length_any(q) == 0)
        return 0;
    size_t taken = 0;
    pthread_mutex_lock(&q->lock);
    while (taken < max) {
        weft__link *l = weft__fifo_pop(&q->fifo);
        if (!l)
            break;
        weft__fifo_push(out, l);
        taken++;
    }
    weft__atomic_store_release(&q->length, q->fifo.count);
    pthread_mutex_unlock(&q->lock);
    return taken;
}
