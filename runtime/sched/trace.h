/*
 * trace.h: the recording half of weft_trace_start/stop (weft.h): each worker writes
 * compact binary events into a ring buffer of its own, which a drainer (debug/trace.c)
 * empties into a file and, at the stop, turns into Chrome trace-event JSON. sched/ only
 * records; the event kinds and the ring's layout are the interface between the two.
 *
 * Threads and lifetime. A ring has one producer, its worker's thread (only a worker
 * records: an event caused by another thread is recorded where it lands, or not at
 * all), and one consumer, the drainer. `head` is the producer's (release after it
 * filled the slot), `tail` the consumer's (release after it read the slot): Lamport's
 * single-producer single-consumer queue. When full the event is dropped and counted
 * (`dropped`, owner-written): recording never waits. A worker finds its ring through
 * `weft__worker.trace` (NULL: not tracing; one acquire load per event point, the whole
 * cost of tracing when off). Rings are created by the first weft_trace_start of a
 * runtime and live until weft_runtime_destroy, so a worker that read the pointer just
 * before a stop still writes into valid memory (the drainer ignores what comes after
 * its final drain).
 */
#ifndef WEFT__SCHED_TRACE_H
#define WEFT__SCHED_TRACE_H

#include "base/atomic.h"
#include "base/ticks.h"

#include <stddef.h>
#include <stdint.h>

typedef enum weft__trace_kind {
    WEFT__TRACE_RUN_BEGIN = 1, /* task: the task. The flow of the last WAKE or SPAWN of
                                * that task ends here: the writer pairs them by task id
                                * (the task object has no room for the flow id) */
    WEFT__TRACE_RUN_END = 2,   /* task: the task; arg: why (weft__switch_reason: park,
                                * yield, exit) */
    WEFT__TRACE_SPAWN = 3,     /* task: the new task; arg: flow id (in the spawner's slice) */
    WEFT__TRACE_WAKE = 4,      /* task: the task woken; arg: flow id (in the waker's slice) */
    WEFT__TRACE_STEAL = 5,     /* task: the task stolen; extra: the victim worker */
    WEFT__TRACE_PARK = 6,      /* the worker's thread goes to sleep */
    WEFT__TRACE_UNPARK = 7,    /* and wakes up */
    WEFT__TRACE_TIMERS = 8,    /* arg: how many timers fired in one pass */
    WEFT__TRACE_IO = 9,        /* arg: how many readiness events one poll returned */
} weft__trace_kind;

typedef struct weft__trace_event {
    uint64_t ticks; /* base/ticks.h */
    uint64_t task;  /* a task id, or 0 */
    uint64_t arg;
    uint32_t kind;  /* weft__trace_kind */
    uint32_t extra;
} weft__trace_event;

typedef struct weft__trace_ring {
    weft__atomic_word head;    /* producer: next slot to fill */
    weft__atomic_word tail;    /* consumer: next slot to read */
    weft__atomic_word dropped; /* producer: events dropped because the ring was full */
    size_t mask;               /* capacity - 1; immutable */
    weft__trace_event *events; /* immutable */
} weft__trace_ring;

/* The producer's side: appends one event, or counts it dropped. */
static inline void weft__trace_ring_push(weft__trace_ring *r, weft__trace_kind kind, uint64_t task,
                                         uint64_t arg, uint32_t extra) {
    AO_t head = weft__atomic_load_relaxed(&r->head); /* ours alone */
    /* Acquire: pairs with the consumer's release of tail: it has read the slot we are
     * about to overwrite. */
    if (head - weft__atomic_load_acquire(&r->tail) > r->mask) {
        weft__atomic_store_relaxed(&r->dropped, weft__atomic_load_relaxed(&r->dropped) + 1);
        return;
    }
    weft__trace_event *e = &r->events[head & r->mask];
    e->ticks = weft__ticks();
    e->task = task;
    e->arg = arg;
    e->kind = (uint32_t)kind;
    e->extra = extra;
    /* Release: the slot's contents before the consumer sees it. */
    weft__atomic_store_release(&r->head, head + 1);
}

#endif /* WEFT__SCHED_TRACE_H */
