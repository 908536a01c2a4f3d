/*
 * stack.c: task stacks. Owns every stack mapping of a runtime (through its depot), the
 * process-wide budget of mprotect guard pages, and the probe for MADV_GUARD_INSTALL.
 *
 * Layout. Stacks are mapped WEFT__STACKS_PER_SLAB at a time, in one anonymous
 * MAP_NORESERVE mapping (a slab), so that a task pays only for the pages it touches and
 * a slab costs one mapping, not one per stack. Each stack takes `stride` bytes of it:
 *
 *   low address                                                           high address
 *   | guard page | canary (16 B) | usable stack, grows down <- | descriptor (64 B) |
 *                ^ low                                          ^ top
 *
 * Guard pages, and why three kinds. The kernel counts mappings per process against
 * vm.max_map_count (65530 by default), and a PROT_NONE page inside a read-write slab
 * splits it: two more mappings per stack, so naive guard pages stop a program near
 * 32,000 live tasks, with mprotect failing ENOMEM. So:
 * - Linux >= 6.13 has MADV_GUARD_INSTALL: a guard region that lives in the page tables
 *   and costs no mapping. Probed once per process; used whenever it works.
 * - Otherwise mprotect guard pages, while the process-wide count of them stays under a
 *   quarter of vm.max_map_count (two mappings each: half of the limit), leaving the
 *   rest to the application and the C library.
 * - Past that budget, or with WEFT_STACK_GUARD=canary, a stack has no guard page but
 *   two canary words at its bottom, which the worker checks each time the task switches
 *   out. That catches an overflow after the fact (it may already have scribbled on the
 *   stack below), which is why it is only the fallback.
 * A frame larger than a page can jump over any guard page; build task code with
 * -fstack-clash-protection when that matters.
 *
 * Designs not taken:
 * - One mapping per stack (as most green-thread libraries do): one mmap + mprotect +
 *   munmap per task costs 6-10 us and two mappings, against a 2.5 ns free-list pop.
 * - Segmented or copied stacks (Go's growable stacks, libaco's shared stacks): they
 *   need compiler support, or break pointers into a parked task's stack, which C code
 *   hands to its children all the time (fork-join on locals).
 *
 * Threads: a weft__stack_cache belongs to its worker; the depot's lists are under its
 * mutex; the guard budget is a process-wide atomic.
 */
#include "sched/stack.h"

#include "base/memory.h"
#include "base/sanitizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(WEFT__HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(start, end) 0u
#define VALGRIND_STACK_DEREGISTER(id)       ((void)(id))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 uapi; older headers lack it */
#endif

/* 32 stacks of the default 64 KiB make a 2.2 MB slab: few mmap calls for a burst of
 * spawns, little address space for a small program. */
#define WEFT__STACKS_PER_SLAB 32
/* A worker keeps up to this many free stacks; past it, half go to the depot. */
#define WEFT__STACK_CACHE_MAX        64
#define WEFT__STACK_REFILL           16
#define WEFT__STACK_DESCRIPTOR_BYTES 64
#define WEFT__STACK_CANARY_BYTES     16

_Static_assert(sizeof(weft__stack) <= WEFT__STACK_DESCRIPTOR_BYTES, "descriptor too big");

const uint64_t weft__stack_canary_value = 0x214b545354464557ull; /* "WEFTSTK!" */

struct weft__stack_slab {
    weft__stack_slab *next;
    unsigned char *base;
    size_t length;
    unsigned count;
};

/* Process-wide: whether MADV_GUARD_INSTALL works here (0 unknown, 1 yes, 2 no), and the
 * mprotect guard pages alive in all runtimes against their budget. */
static weft__atomic_word madvise_guard_state;
static weft__atomic_word mprotect_guards_alive;
static weft__atomic_word mprotect_guard_budget; /* 0 until read */

static size_t guard_budget(void) {
    /* Relaxed: every thread computes the same value; a race only repeats the read. */
    AO_t budget = weft__atomic_load_relaxed(&mprotect_guard_budget);
    if (budget)
        return budget;
    unsigned long max_map_count = 65530; /* the kernel's default */
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%lu", &max_map_count) != 1)
            max_map_count = 65530;
        fclose(f);
    }
    budget = max_map_count / 4 > 0 ? max_map_count / 4 : 1;
    weft__atomic_store_relaxed(&mprotect_guard_budget, budget);
    return budget;
}

int weft__stack_depot_init(weft__stack_depot *d, size_t usable_size) {
    memset(d, 0, sizeof(*d));
    if (pthread_mutex_init(&d->lock, NULL) != 0)
        return -ENOMEM;
    long page = sysconf(_SC_PAGESIZE);
    d->page = page > 0 ? (size_t)page : 4096;
    size_t need = usable_size + WEFT__STACK_DESCRIPTOR_BYTES + WEFT__STACK_CANARY_BYTES;
    size_t body = (need + d->page - 1) / d->page * d->page;
    d->stride = d->page + body;
    d->usable = body - WEFT__STACK_DESCRIPTOR_BYTES - WEFT__STACK_CANARY_BYTES;
    d->wanted = WEFT__GUARD_MADVISE;
    const char *mode = getenv("WEFT_STACK_GUARD");
    if (mode && strcmp(mode, "canary") == 0)
        d->wanted = WEFT__GUARD_NONE;
    else if (mode && strcmp(mode, "mprotect") == 0)
        d->skip_madvise = true;
    return 0;
}

static weft__guard_kind install_guard(weft__stack_depot *d, unsigned char *guard) {
    if (d->wanted == WEFT__GUARD_NONE)
        return WEFT__GUARD_NONE;
    /* Relaxed: the probe's result is a hint that any thread may recompute. */
    if (!d->skip_madvise && weft__atomic_load_relaxed(&madvise_guard_state) != 2) {
        if (madvise(guard, d->page, MADV_GUARD_INSTALL) == 0) {
            weft__atomic_store_relaxed(&madvise_guard_state, 1);
            return WEFT__GUARD_MADVISE;
        }
        if (errno == EINVAL) /* an older kernel: remember, use mprotect from now on */
            weft__atomic_store_relaxed(&madvise_guard_state, 2);
    }
    /* Relaxed: a counter against a budget; no data is published through it. */
    if (weft__atomic_fetch_add_relaxed(&mprotect_guards_alive, 1) >= guard_budget()) {
        weft__atomic_fetch_add_relaxed(&mprotect_guards_alive, (AO_t)-1);
        return WEFT__GUARD_NONE;
    }
    if (mprotect(guard, d->page, PROT_NONE) != 0) { /* ENOMEM: out of mappings after all */
        weft__atomic_fetch_add_relaxed(&mprotect_guards_alive, (AO_t)-1);
        return WEFT__GUARD_NONE;
    }
    return WEFT__GUARD_MPROTECT;
}

/* Maps a slab and puts its stacks on the depot's free list. Called under d->lock. */
static int map_slab_locked(weft__stack_depot *d) {
    weft__stack_slab *slab = weft__alloc(sizeof(*slab), sizeof(void *));
    if (!slab)
        return -ENOMEM;
    slab->count = WEFT__STACKS_PER_SLAB;
    slab->length = d->stride * slab->count;
    void *base = mmap(NULL, slab->length, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        weft__free(slab, sizeof(*slab));
        return -ENOMEM;
    }
    slab->base = base;
    size_t guarded = 0;
    for (unsigned i = 0; i < slab->count; i++) {
        unsigned char *region = slab->base + (size_t)i * d->stride;
        weft__stack *s = (weft__stack *)(region + d->stride - WEFT__STACK_DESCRIPTOR_BYTES);
        s->low = region + d->page;
        s->top = (unsigned char *)s;
        s->sanitizer_fiber = NULL;
        s->guard = install_guard(d, region);
        if (s->guard != WEFT__GUARD_NONE)
            guarded++;
        /* Only a stack without a guard page gets its canary: writing it would touch
         * the stack's bottom page, 4 KiB of memory per task that most tasks never use
         * (the sleepers benchmark measured 6.7 KB per sleeping task with it, 3.7 KB
         * without). */
        if (s->guard == WEFT__GUARD_NONE) {
            ((uint64_t *)s->low)[0] = weft__stack_canary_value;
            ((uint64_t *)s->low)[1] = weft__stack_canary_value;
        }
        s->valgrind_id = VALGRIND_STACK_REGISTER(s->low, s->top);
        s->next = d->free;
        d->free = s;
    }
    d->free_count += slab->count;
    slab->next = d->slabs;
    d->slabs = slab;
    /* Relaxed: statistics, written under the lock. */
    weft__atomic_store_relaxed(&d->mapped, weft__atomic_load_relaxed(&d->mapped) + slab->count);
    weft__atomic_store_relaxed(&d->guarded, weft__atomic_load_relaxed(&d->guarded) + guarded);
    weft__atomic_store_relaxed(&d->bytes, weft__atomic_load_relaxed(&d->bytes) + slab->length);
    weft__account_stack_bytes((int64_t)slab->length);
    return 0;
}

void weft__stack_depot_destroy(weft__stack_depot *d) {
    weft__stack_slab *slab = d->slabs;
    while (slab) {
        weft__stack_slab *next = slab->next;
        for (unsigned i = 0; i < slab->count; i++) {
            unsigned char *region = slab->base + (size_t)i * d->stride;
            weft__stack *s = (weft__stack *)(region + d->stride - WEFT__STACK_DESCRIPTOR_BYTES);
            VALGRIND_STACK_DEREGISTER(s->valgrind_id);
            weft__fiber_destroy_stack(s->sanitizer_fiber);
            if (s->guard == WEFT__GUARD_MPROTECT)
                weft__atomic_fetch_add_relaxed(&mprotect_guards_alive, (AO_t)-1);
        }
        munmap(slab->base, slab->length);
        weft__account_stack_bytes(-(int64_t)slab->length);
        weft__free(slab, sizeof(*slab));
        slab = next;
    }
    d->slabs = NULL;
    d->free = NULL;
    pthread_mutex_destroy(&d->lock);
}

weft__stack *weft__stack_get_owner(weft__stack_depot *d, weft__stack_cache *c) {
    if (!c->free) {
        pthread_mutex_lock(&d->lock);
        if (!d->free && map_slab_locked(d) != 0) {
            pthread_mutex_unlock(&d->lock);
            errno = ENOMEM;
            return NULL;
        }
        for (unsigned i = 0; i < WEFT__STACK_REFILL && d->free; i++) {
            weft__stack *s = d->free;
            d->free = s->next;
            d->free_count--;
            s->next = c->free;
            c->free = s;
            c->count++;
        }
        pthread_mutex_unlock(&d->lock);
    }
    weft__stack *s = c->free;
    c->free = s->next;
    c->count--;
    return s;
}

static void spill_locked(weft__stack_depot *d, weft__stack_cache *c, unsigned keep) {
    while (c->count > keep) {
        weft__stack *s = c->free;
        c->free = s->next;
        c->count--;
        s->next = d->free;
        d->free = s;
        d->free_count++;
    }
}

void weft__stack_put_owner(weft__stack_depot *d, weft__stack_cache *c, weft__stack *s) {
    s->next = c->free;
    c->free = s;
    c->count++;
    if (c->count > WEFT__STACK_CACHE_MAX) {
        pthread_mutex_lock(&d->lock);
        spill_locked(d, c, WEFT__STACK_CACHE_MAX / 2);
        pthread_mutex_unlock(&d->lock);
    }
}

void weft__stack_cache_drain_owner(weft__stack_depot *d, weft__stack_cache *c) {
    pthread_mutex_lock(&d->lock);
    spill_locked(d, c, 0);
    pthread_mutex_unlock(&d->lock);
}
