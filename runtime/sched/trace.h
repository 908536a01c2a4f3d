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
 * `weft__worker.trace` (NULL: not tracing; one load per event point, the whole cost of
 * tracing when off, and WEFT__TRACE_HOOKS=0 compiles even that out: worker.h). Rings
 * are created by the first weft_trace_start of a
 * runtime and live until weft_runtime_destroy, so a worker that read the pointer just
 * before a stop still writes into valid memory (the drainer ignores what comes after
 * its final drain). A push, in the steps debug/trace.c's start, stop and drain
 * (TRACE-S*, TRACE-T*, TRACE-D1) are written against:
 *
 *   (TRACE-P1) the ring pointer, acquire (weft__worker_trace): the ring as the start
 *        initialised it; NULL: nothing to do
 *   (TRACE-P2) tail, acquire: the consumer has read every slot before it; head - tail
 *        = capacity: full, the event is counted in `dropped` instead
 *   (TRACE-P3) the slot at head filled, then head + 1 stored with release
 */
#ifndef WEFT__SCHED_TRACE_H
#define WEFT__SCHED_TRACE_H

#include "base/atomic.h"
#include "base/ticks.h"

#include <stddef.h>
#include <stdint.h>

typedef enum weft__trace_kind {
    WEFT__TRACE_RUN_BEGIN = 1,   /* task: the task. The arrow of the task's last WAKE or
                                  * SPAWN before it ends here: the writer pairs them by
                                  * task id and time (the task object has no room left for
                                  * a flow id: three cache lines, task.h) */
    WEFT__TRACE_RUN_END = 2,     /* task: the task; arg: why (weft__switch_reason: park,
                                  * yield, exit; or WEFT__TRACE_END_JOIN_INLINE) */
    WEFT__TRACE_SPAWN = 3,       /* task: the new task; arg: flow id (in the spawner's slice) */
    WEFT__TRACE_WAKE = 4,        /* task: the task woken; arg: flow id (the waker's slice) */
    WEFT__TRACE_STEAL = 5,       /* task: the task stolen; extra: the victim worker */
    WEFT__TRACE_PARK = 6,        /* the worker's thread goes to sleep */
    WEFT__TRACE_UNPARK = 7,      /* and wakes up */
    WEFT__TRACE_TIMERS = 8,      /* arg: how many timers fired in one pass */
    WEFT__TRACE_IO = 9,          /* arg: how many readiness events one poll returned */
    WEFT__TRACE_RUN_SWITCH = 10, /* RUN_END then RUN_BEGIN in one event, where a task hands
                                  * the thread to another without the scheduler (a
                                  * direct yield, an inline join and its end): task: the
                                  * task that gets it (as RUN_BEGIN); extra: why the one
                                  * before stops (as RUN_END's arg) */
} weft__trace_kind;

/* A RUN_END's reason when the task hands its stack to a task it joins inline
 * (weft__worker_join_inline): the joined task's slice follows, then the joiner's again.
 * Not a weft__switch_reason (those are 1..3). */
#define WEFT__TRACE_END_JOIN_INLINE 16

/* Flow ids (WAKE, SPAWN, RUN_BEGIN, RUN_SWITCH): (the waking worker's index + 1) << 48 |
 * a counter of that worker's: unique within the process run, per runtime. A worker of
 * the task's own runtime records a wake-up (weft__worker_wake_quiet, a cancel's wake)
 * or spawn; one from another thread has none. So has a wake-up that finds its task
 * still switching out (WAKE-W2: the worker that parks it queues it again itself): its
 * next run slice begins without an arrow. */

typedef struct weft__trace_event {
    uint64_t ticks; /* base/ticks.h */
    uint64_t task;  /* a task id, or 0 */
    uint64_t arg;
    uint32_t kind; /* weft__trace_kind */
    uint32_t extra;
} weft__trace_event;

typedef struct weft__trace_ring {
    weft__atomic_word head;    /* producer: next slot to fill */
    weft__atomic_word tail;    /* consumer: next slot to read */
    weft__atomic_word dropped; /* producer: events dropped because the ring was full */
    size_t mask;               /* capacity - 1; immutable */
    weft__trace_event *events; /* immutable */
} weft__trace_ring;

/* The producer's side: appends one event stamped `ticks` (base/ticks.h), or counts it
 * dropped. */
static inline void weft__trace_ring_push_at(weft__trace_ring *r, uint64_t ticks,
                                            weft__trace_kind kind, uint64_t task, uint64_t arg,
                                            uint32_t extra) {
    AO_t head = weft__atomic_load_relaxed(&r->head); /* ours alone */
    /* (TRACE-P2) Acquire: pairs with the consumer's release of tail (TRACE-D1): it has
     * read the slot we are about to overwrite. */
    if (head - weft__atomic_load_acquire(&r->tail) > r->mask) {
        weft__atomic_store_relaxed(&r->dropped, weft__atomic_load_relaxed(&r->dropped) + 1);
        return;
    }
    weft__trace_event *e = &r->events[head & r->mask];
    e->ticks = ticks;
    e->task = task;
    e->arg = arg;
    e->kind = (uint32_t)kind;
    e->extra = extra;
    /* (TRACE-P3) Release: the slot's contents before the consumer sees it (TRACE-D1). */
    weft__atomic_store_release(&r->head, head + 1);
}

/* Likewise, stamped now. */
static inline void weft__trace_ring_push(weft__trace_ring *r, weft__trace_kind kind, uint64_t task,
                                         uint64_t arg, uint32_t extra) {
    weft__trace_ring_push_at(r, weft__ticks(), kind, task, arg, extra);
}

#endif /* WEFT__SCHED_TRACE_H */
