/*
 * memory.c: the process-wide counters of memory.h and weft_stats_get. The counters are
 * touched only when pools grow or shrink, so plain relaxed fetch-and-add is cheap
 * enough; they carry no ordering (weft_stats_get is a report, not a synchronisation).
 */
#include "base/memory.h"

#include "base/atomic.h"

#include <stdlib.h>
#include <string.h>

#include "weft.h"

static weft__atomic_word heap_bytes;
static weft__atomic_word stack_bytes;
static weft__atomic_word runtimes;

void *weft__alloc(size_t size, size_t align) {
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    memset(p, 0, size);
    weft__atomic_fetch_add_relaxed(&heap_bytes, (AO_t)size); /* a statistic: relaxed */
    return p;
}

void weft__free(void *p, size_t size) {
    if (!p)
        return;
    free(p);
    weft__atomic_fetch_add_relaxed(&heap_bytes, (AO_t)-size); /* a statistic: relaxed */
}

void weft__account_stack_bytes(int64_t delta) {
    weft__atomic_fetch_add_relaxed(&stack_bytes, (AO_t)delta); /* a statistic: relaxed */
}

void weft__account_runtimes(int64_t delta) {
    weft__atomic_fetch_add_relaxed(&runtimes, (AO_t)delta); /* a statistic: relaxed */
}

WEFT_API void weft_stats_get(weft_stats *out) {
    if (!out)
        return;
    /* Relaxed: independent counters read for a report. */
    out->runtimes = weft__atomic_load_relaxed(&runtimes);
    out->stack_bytes = weft__atomic_load_relaxed(&stack_bytes);
    out->heap_bytes = weft__atomic_load_relaxed(&heap_bytes);
}
