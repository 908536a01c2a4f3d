/*
 * pool.c: the object pools of pool.h. Owns chunks and free lists; what the objects are
 * is the caller's business.
 *
 * Remote frees are a Treiber stack with push-only writers and a take-all reader: the
 * owner swaps the head for NULL with a CAS and keeps the whole chain. Push-only plus
 * take-all has no ABA problem, since no thread ever pops a single node whose `next` it
 * read earlier.
 */
#include "base/pool.h"

#include "base/memory.h"

#include <string.h>

/* 64 objects a chunk: one allocation per 64 spawns in a burst, and ~16 KiB for tasks. */
#define WEFT__POOL_CHUNK_OBJECTS 64

struct weft__pool_chunk {
    weft__pool_chunk *next;
    size_t bytes;
    _Alignas(64) unsigned char objects[];
};

void weft__pool_init(weft__pool *p, size_t object_size, pthread_mutex_t *lock) {
    memset(p, 0, sizeof(*p));
    p->lock = lock;
    p->object_size = (object_size + 63) & ~(size_t)63;
}

void weft__pool_destroy(weft__pool *p) {
    weft__pool_chunk *c = (weft__pool_chunk *)weft__atomic_load_relaxed(&p->chunks);
    while (c) {
        weft__pool_chunk *next = c->next;
        weft__free(c, c->bytes);
        c = next;
    }
    weft__atomic_store_relaxed(&p->chunks, 0);
    p->free = NULL;
}

void weft__pool_for_each(weft__pool *p, void (*fn)(void *object, void *context), void *context) {
    /* Acquire: pairs with the release that published the newest chunk; older ones were
     * published before it. */
    for (weft__pool_chunk *c = (weft__pool_chunk *)weft__atomic_load_acquire(&p->chunks); c;
         c = c->next)
        for (size_t i = 0; i < WEFT__POOL_CHUNK_OBJECTS; i++)
            fn(c->objects + i * p->object_size, context);
}

uint64_t weft__pool_live(weft__pool *p) {
    /* Relaxed: statistics. */
    return weft__atomic_load_relaxed(&p->allocated) - weft__atomic_load_relaxed(&p->freed_local) -
           weft__atomic_load_relaxed(&p->freed_remote);
}

static void count_owner(weft__atomic_word *c) {
    /* Only the owner writes it: a relaxed load and store, no RMW needed. */
    weft__atomic_store_relaxed(c, weft__atomic_load_relaxed(c) + 1);
}

static void *alloc_owner(weft__pool *p) {
    if (!p->free) {
        /* Take every object other threads returned. Acquire: pairs with their release
         * CAS, so their last writes to the objects happened before our reuse. */
        AO_t head = weft__atomic_load_relaxed(&p->remote);
        while (head) {
            AO_t seen = weft__atomic_cas_acquire(&p->remote, head, 0);
            if (seen == head)
                break;
            head = seen;
        }
        p->free = (weft__link *)head;
    }
    if (!p->free) {
        size_t bytes = sizeof(weft__pool_chunk) + p->object_size * WEFT__POOL_CHUNK_OBJECTS;
        weft__pool_chunk *c = weft__alloc(bytes, 64);
        if (!c)
            return NULL;
        c->bytes = bytes;
        c->next = (weft__pool_chunk *)weft__atomic_load_relaxed(&p->chunks);
        /* Release: the chunk (zeroed by weft__alloc) before a reader walks it. */
        weft__atomic_store_release(&p->chunks, (AO_t)c);
        for (int i = WEFT__POOL_CHUNK_OBJECTS - 1; i >= 0; i--) {
            weft__link *l = (weft__link *)(c->objects + (size_t)i * p->object_size);
            l->next = p->free;
            p->free = l;
        }
    }
    weft__link *l = p->free;
    p->free = l->next;
    count_owner(&p->allocated);
    return l;
}

void *weft__pool_alloc(weft__pool *p) {
    if (!p->lock)
        return alloc_owner(p);
    pthread_mutex_lock(p->lock);
    void *object = alloc_owner(p);
    pthread_mutex_unlock(p->lock);
    return object;
}

void weft__pool_free(weft__pool *home, void *object, weft__pool *caller_pool) {
    weft__link *l = object;
    if (home->lock) {
        pthread_mutex_lock(home->lock);
        l->next = home->free;
        home->free = l;
        count_owner(&home->freed_local);
        pthread_mutex_unlock(home->lock);
    } else if (home == caller_pool) {
        l->next = home->free;
        home->free = l;
        count_owner(&home->freed_local);
    } else {
        /* Release: our writes to the object happen before the owner's acquire take-all. */
        AO_t head = weft__atomic_load_relaxed(&home->remote);
        for (;;) {
            l->next = (weft__link *)head;
            AO_t seen = weft__atomic_cas_release(&home->remote, head, (AO_t)l);
            if (seen == head)
                break;
            head = seen;
        }
        weft__atomic_fetch_add_relaxed(&home->freed_remote, 1); /* a statistic */
    }
}
