/*
 * blocking.h: a runtime's pool of threads for blocking calls (weft_spawn_blocking),
 * beside its workers. blocking.c says how a call travels and what happens at the cap.
 */
#ifndef WEFT__IO_BLOCKING_H
#define WEFT__IO_BLOCKING_H

#include "weft.h"

#include <stdint.h>

typedef struct weft__blocking_pool weft__blocking_pool;

/* rt's pool (runtime.c, at create): no thread yet. NULL on ENOMEM. */
weft__blocking_pool *weft__blocking_pool_create(weft_runtime *rt, unsigned max_threads,
                                                uint64_t keep_alive_ns);
/* After every task of rt has finished (so no call is queued or running): tells the
 * threads to exit, waits until the last has stopped touching the pool, frees it. */
void weft__blocking_pool_destroy(weft__blocking_pool *pool);

typedef struct weft__blocking_stats {
    uint64_t threads, busy, queued;
} weft__blocking_stats;
void weft__blocking_pool_stats(weft__blocking_pool *pool, weft__blocking_stats *out);

#endif /* WEFT__IO_BLOCKING_H */
