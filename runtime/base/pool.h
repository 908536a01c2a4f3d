/*
 * pool.h: fixed-size object pools with remote frees, for the runtime's small, hot
 * objects (tasks, timers). Objects are carved from chunks and never returned to the
 * allocator before the pool is destroyed (type-stable memory), so a pool hands out and
 * takes back objects with a couple of pointer moves.
 *
 * Threads: a worker's pool is touched without locks by its owner, the worker's thread
 * (in its scheduler or in a task running there); other threads return objects through
 * `remote`, which the owner takes whole when its free list runs dry. A shared pool (for
 * threads that are not workers) has `lock` and is touched only under it.
 *
 * Every object starts with a weft__link, which the pool uses while the object is free.
 */
#ifndef WEFT__BASE_POOL_H
#define WEFT__BASE_POOL_H

#include "base/atomic.h"
#include "base/list.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct weft__pool_chunk weft__pool_chunk;

typedef struct weft__pool {
    weft__link *free;         /* owner only, or under lock */
    weft__atomic_word remote; /* a LIFO of links: any thread pushes, the owner takes all */
    /* A weft__pool_chunk *: written by the owner (or under lock), with release; read by
     * anyone with acquire (weft__pool_for_each). A chunk's `next` is immutable once
     * published. */
    weft__atomic_word chunks;
    pthread_mutex_t *lock;    /* non-NULL only for a shared pool */
    size_t object_size;       /* immutable: a multiple of 64, so objects do not share
                               * cache lines */
    /* Statistics: allocated and freed_local written by the owner (or under lock),
     * freed_remote added to by anyone; read relaxed. */
    weft__atomic_word allocated;
    weft__atomic_word freed_local;
    weft__atomic_word freed_remote;
} weft__pool;

void weft__pool_init(weft__pool *p, size_t object_size, pthread_mutex_t *lock);
/* Frees every chunk: every object, in use or not, is gone. */
void weft__pool_destroy(weft__pool *p);
/* Objects allocated and not yet freed (exact when the owner is quiet). */
uint64_t weft__pool_live(weft__pool *p);

/* An object from p: the owner (or any thread for a locked pool). Not zeroed. NULL if the
 * allocator failed. */
void *weft__pool_alloc(weft__pool *p);
/* Any thread, while p lives: calls fn on every object slot p ever carved, in use or
 * free (type-stable memory: the slots stay valid, their contents change under the
 * caller; a reader must check what it reads, debug/dump.c). */
void weft__pool_for_each(weft__pool *p, void (*fn)(void *object, void *context), void *context);

/* Returns `object` to `home`, its pool. `caller_pool` is the pool the calling thread owns
 * (NULL for a thread that is not a worker): a free to it takes no atomic operation. */
void weft__pool_free(weft__pool *home, void *object, weft__pool *caller_pool);

#endif /* WEFT__BASE_POOL_H */
