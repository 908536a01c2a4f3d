/*
 * list.h: an intrusive singly-linked FIFO, not thread-safe. Used for the injection
 * queue (under its mutex) and a worker's yield queue (owner only). The element embeds a
 * weft__link; the list knows nothing else of it.
 */
#ifndef WEFT__BASE_LIST_H
#define WEFT__BASE_LIST_H

#include <stddef.h>

typedef struct weft__link {
    struct weft__link *next;
} weft__link;

typedef struct weft__fifo {
    weft__link *head; /* oldest; NULL when empty */
    weft__link *tail; /* newest; meaningless when empty */
    size_t count;
} weft__fifo;

#define weft__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void weft__fifo_init(weft__fifo *f) {
    f->head = NULL;
    f->tail = NULL;
    f->count = 0;
}

static inline void weft__fifo_push(weft__fifo *f, weft__link *l) {
    l->next = NULL;
    if (f->head)
        f->tail->next = l;
    else
        f->head = l;
    f->tail = l;
    f->count++;
}

/* Appends a chain first..last of `count` links (last->next is ignored). */
static inline void weft__fifo_append(weft__fifo *f, weft__link *first, weft__link *last,
                                     size_t count) {
    if (count == 0)
        return;
    last->next = NULL;
    if (f->head)
        f->tail->next = first;
    else
        f->head = first;
    f->tail = last;
    f->count += count;
}

static inline weft__link *weft__fifo_pop(weft__fifo *f) {
    weft__link *l = f->head;
    if (l) {
        f->head = l->next;
        f->count--;
    }
    return l;
}

#endif /* WEFT__BASE_LIST_H */
