/*
 * stack.h: task stacks: mappings, guard pages, canaries and pools. See stack.c for the
 * layout and the reasons behind it.
 *
 * Two levels of pooling, so that spawn and exit make no system call in the steady
 * state: each worker owns a weft__stack_cache (no locking, owner only), and the runtime
 * owns one weft__stack_depot (a mutex) that caches refill from and spill to, and that
 * maps new slabs of stacks when it runs dry.
 */
#ifndef WEFT__SCHED_STACK_H
#define WEFT__SCHED_STACK_H

#include "base/atomic.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum weft__guard_kind {
    WEFT__GUARD_NONE,     /* no guard page: a canary at the bottom, checked on switch-out */
    WEFT__GUARD_MADVISE,  /* MADV_GUARD_INSTALL (Linux >= 6.13): costs no kernel mapping */
    WEFT__GUARD_MPROTECT, /* a PROT_NONE page: costs two entries of vm.max_map_count */
} weft__guard_kind;

/* A stack's descriptor lives at its top, inside its own mapping; the task's frames grow
 * down from just below it. Immutable while the stack exists, but for `next`. */
typedef struct weft__stack {
    struct weft__stack *next; /* free-list link while pooled; owner of that pool */
    unsigned char *low;       /* lowest usable byte; the guard page (if any) is below */
    unsigned char *top;       /* end of the usable bytes: the descriptor's own address */
    void *sanitizer_fiber;    /* TSan builds: see weft__fiber_init_task */
    unsigned valgrind_id;
    weft__guard_kind guard;
} weft__stack;

typedef struct weft__stack_cache {
    weft__stack *free; /* owner only */
    unsigned count;
} weft__stack_cache;

typedef struct weft__stack_slab weft__stack_slab;

typedef struct weft__stack_depot {
    pthread_mutex_t lock;
    weft__stack *free;       /* under lock */
    size_t free_count;       /* under lock */
    weft__stack_slab *slabs; /* under lock: every mapping, unmapped by destroy */
    /* Immutable after init. */
    size_t usable;           /* bytes a task may use, at least what was asked for */
    size_t stride;           /* a stack's share of a slab, guard page included */
    size_t page;             /* the page size */
    weft__guard_kind wanted; /* NONE only if WEFT_STACK_GUARD=canary */
    bool skip_madvise;       /* WEFT_STACK_GUARD=mprotect */
    /* Statistics: written under lock, read by anyone (relaxed). */
    weft__atomic_word mapped;
    weft__atomic_word guarded;
    weft__atomic_word bytes;
} weft__stack_depot;

/* usable_size: what the configuration asked for. Reads WEFT_STACK_GUARD (auto, mprotect
 * or canary; tests use it to reach every path on any kernel). Returns 0 or -ENOMEM. */
int weft__stack_depot_init(weft__stack_depot *d, size_t usable_size);
/* Unmaps everything. Every stack must be back in the depot (or in no cache). */
void weft__stack_depot_destroy(weft__stack_depot *d);

/* A stack from the cache, refilled from the depot (which maps a slab if it must).
 * NULL with errno ENOMEM when no stack can be mapped. */
weft__stack *weft__stack_get_owner(weft__stack_depot *d, weft__stack_cache *c);
/* Back to the cache; spills half to the depot when the cache is full. */
void weft__stack_put_owner(weft__stack_depot *d, weft__stack_cache *c, weft__stack *s);
/* Every cached stack back to the depot (a worker that stops). */
void weft__stack_cache_drain_owner(weft__stack_depot *d, weft__stack_cache *c);

/* True while a canary stack's canary is intact (always true for guarded stacks). */
static inline bool weft__stack_canary_intact(const weft__stack *s) {
    extern const uint64_t weft__stack_canary_value;
    return s->guard != WEFT__GUARD_NONE ||
           (((const uint64_t *)s->low)[0] == weft__stack_canary_value &&
            ((const uint64_t *)s->low)[1] == weft__stack_canary_value);
}

/* True if addr is in the guard page below s. */
static inline bool weft__stack_guard_contains(const weft__stack *s, size_t page, const void *addr) {
    const unsigned char *a = addr;
    return s->guard != WEFT__GUARD_NONE && a < s->low && a >= s->low - page;
}

/* Usable bytes of s. */
static inline size_t weft__stack_usable(const weft__stack *s) {
    return (size_t)(s->top - s->low);
}

#endif /* WEFT__SCHED_STACK_H */
