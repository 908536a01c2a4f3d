/*
 * futex.h: the narrow platform interface weft parks OS threads with (idle workers, and
 * threads that are not workers waiting in weft_join or weft_runtime_destroy). One
 * implementation per platform: futex_linux.c.
 *
 * Semantics are those of a Linux futex on a private 32-bit word: wait sleeps only if
 * *word still equals `expected` when the kernel looks, so a wake that comes between the
 * caller's check and its sleep is never lost. Wake-ups may be spurious: every caller
 * waits in a loop that re-checks its own condition.
 */
#ifndef WEFT__BASE_FUTEX_H
#define WEFT__BASE_FUTEX_H

#include "base/atomic.h"

#include <stdint.h>

/* Sleeps while *word == expected, until woken (or spuriously). */
void weft__futex_wait(weft__atomic_u32 *word, unsigned expected);

/* The same, but not past `deadline_ns` (CLOCK_MONOTONIC, absolute; UINT64_MAX means no
 * deadline). */
void weft__futex_wait_until(weft__atomic_u32 *word, unsigned expected, uint64_t deadline_ns);

/* Wakes at most `count` threads sleeping on word. */
void weft__futex_wake(weft__atomic_u32 *word, int count);

#endif /* WEFT__BASE_FUTEX_H */
