/*
 * memory.h: heap and mapping accounting behind weft_stats_get. Every long-lived
 * allocation of the runtime (workers, queues, task chunks, stack descriptors) goes
 * through weft__alloc / weft__free with its size, and every stack mapping through
 * weft__account_stack_bytes, so that a test can check that a destroyed runtime left
 * nothing behind. Hot paths never come here: tasks and stacks come from pools that call
 * these only when they grow or are torn down.
 */
#ifndef WEFT__BASE_MEMORY_H
#define WEFT__BASE_MEMORY_H

#include <stddef.h>
#include <stdint.h>

/* Zeroed memory aligned to `align` (a power of two, at least sizeof(void *)); NULL on
 * failure. */
void *weft__alloc(size_t size, size_t align);
void weft__free(void *p, size_t size);

void weft__account_stack_bytes(int64_t delta);
void weft__account_runtimes(int64_t delta);

#endif /* WEFT__BASE_MEMORY_H */
