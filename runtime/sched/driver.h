/*
 * driver.h: what a worker parks on. The scheduler knows only this interface; the rooms
 * above it implement it (time/timer.c: the time driver, one per worker, its timer
 * wheel) and, as Tokio stacks its drivers, wrap it (an I/O driver will poll its reactor
 * and park in epoll_wait with the time driver's deadline, delegating the timers).
 *
 * Who calls what: only the worker's own thread calls fire_due, poll, has_due,
 * next_deadline and park (all "owner only"); any thread calls unpark, to end a park of that worker. A
 * driver delivers what it fires to tasks through the scheduler's one wake function
 * (weft__worker_wake_quiet, then weft__worker_notify once per batch: worker.h), never by
 * touching a worker's queues itself.
 *
 * Why an interface and not direct calls: with direct calls, worker.c called timer.c to
 * fire timers and timer.c called worker.c to wake tasks, and both included each other's
 * headers (an import circle through a twelve-header worker.h). Now sched/ includes no
 * header of time/ or io/; they include sched/'s. The runtime's composition root
 * (runtime/runtime.c) builds each worker's driver stack and hands it over. Rejected: a
 * table of hooks per event kind (timer fired, fd ready) in the worker: every new room
 * would add fields to the worker, and a park would have to know which of them can
 * block.
 *
 * The calls are indirect: a few per scheduling round (fire_due between tasks, has_due in
 * yield's fast path), each a predictable indirect branch.
 */
#ifndef WEFT__SCHED_DRIVER_H
#define WEFT__SCHED_DRIVER_H

#include "base/atomic.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct weft__driver weft__driver;

typedef struct weft__driver_ops {
    /* Owner only, between tasks: delivers everything due now (fires timers, wakes the
     * tasks whose events arrived). Cheap when there is nothing to do. */
    void (*fire_due)(weft__driver *d);
    /* Owner only, when the worker found nothing to run, before it steals: delivers
     * everything ready now, looking further than fire_due does on every round (the I/O
     * driver polls its reactor without waiting). */
    void (*poll)(weft__driver *d);
    /* Owner only: is something due now? Cheap; no side effects but tidying. */
    bool (*has_due)(weft__driver *d);
    /* Owner only: the time by which the worker must call fire_due again (UINT64_MAX:
     * nothing pending that has a time). */
    uint64_t (*next_deadline)(weft__driver *d);
    /* Owner only: blocks the worker's thread until *wake_word is not 0 (unpark), until
     * deadline_ns (UINT64_MAX: none), or spuriously. Fires nothing itself: the worker
     * calls fire_due when it resumes. */
    void (*park)(weft__driver *d, weft__atomic_u32 *wake_word, uint64_t deadline_ns);
    /* Any thread: ends a park on wake_word, whose value the caller has already set (with
     * release). */
    void (*unpark)(weft__driver *d, weft__atomic_u32 *wake_word);
    /* When the runtime is destroyed, after every worker has exited: frees the driver and
     * whatever it still holds. */
    void (*destroy)(weft__driver *d);
} weft__driver_ops;

/* The head of every driver object: a driver embeds it first. */
struct weft__driver {
    const weft__driver_ops *ops;
};

#endif /* WEFT__SCHED_DRIVER_H */
