/*
 * worker.h: a worker thread: its fields, grouped by who may touch them (Tokio's Core /
 * Shared split), and what the rest of the runtime asks of the scheduler: making a task
 * runnable, the one wake function that timers, joins and (later) I/O deliver through,
 * suspending the current task. The runtime object is sched/runtime.h's.
 */
#ifndef WEFT__SCHED_WORKER_H
#define WEFT__SCHED_WORKER_H

#include "arch/context.h"
#include "base/atomic.h"
#include "base/chaos.h"
#include "base/list.h"
#include "base/pool.h"
#include "base/sanitizer.h"
#include "sched/deque.h"
#include "sched/driver.h"
#include "sched/metrics.h"
#include "sched/stack.h"
#include "sched/task.h"
#include "sched/trace.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct weft__worker {
    /* ---- Owner only: the worker's thread, in its scheduler or in a task running on
     * it. (A task that migrates stops being this worker's before it runs elsewhere.) */
    weft_runtime *runtime;
    unsigned index;
    weft_task *current;      /* the task running now, or NULL in the scheduler */
    weft__context scheduler; /* the worker's own stack while a task runs */
    weft__fiber scheduler_fiber;
    weft__fifo yield_queue; /* tasks that called weft_yield, oldest first */
    weft__stack_cache stacks;
    weft__pool tasks;           /* task objects spawned here */
    uint64_t tick;              /* scheduling rounds, for fairness checks */
    uint64_t random;            /* xorshift state for choosing victims */
    uint64_t next_id, id_limit; /* a block of task ids taken from the process counter */
    bool searching;             /* counted as searching in runtime->idle */
    AO_t live_credit;           /* slots of runtime->live_tasks held for spawns here */
    weft__chaos chaos;          /* chaos scheduling's decisions (chaos.h); off: state 0 */
    void *signal_stack;         /* sigaltstack for reporting stack overflows */
    pthread_t thread;
    uint64_t delay_sample;      /* schedules, counting to the next sampled one */
    uint64_t slice_start;       /* ticks when the open run slice began; 0: none (metrics.h) */
    weft_task *handed_over;     /* a task that handed its thread over directly, to be made
                                 * even once resumed (worker.c, settle_handed_over) */
    uint64_t trace_flows;       /* flow ids handed out by this worker's wake-ups */

    /* ---- Shared with other workers and threads. */
    weft__deque deque;                /* owner pushes and pops; anyone steals */
    weft__atomic_u32 wake_word;       /* futex: set to 1 by whoever claims this sleeper */
    weft__atomic_word steals;         /* statistics: written by the owner, read by anyone */
    weft__atomic_word tasks_spawned;  /* statistics, likewise */
    weft__atomic_word joins_inline;   /* statistics, likewise */
    weft__atomic_word tasks_finished; /* statistics, likewise */
    weft__worker_metrics metrics;     /* likewise (metrics.h) */
    /* For a dump, written by the owner: the id of the task it runs (0: none), the
     * length of its yield queue, whether its thread sleeps. Relaxed. */
    weft__atomic_word running_id;
    weft__atomic_word yield_length;
    weft__atomic_word parked;
    /* The trace ring it records into, or NULL (trace.h). Set by weft_trace_start and
     * weft_trace_stop (debug/trace.c); read by the owner with acquire at each event. */
    weft__atomic_word trace;

    /* ---- Set by the composition root (runtime.c) before the thread starts; immutable. */
    /* What the worker parks on: the top of its driver stack (driver.h). */
    weft__driver *driver;
    /* The time driver in that stack (time/timer.c), which tasks on this worker arm
     * their timers on. Opaque here: sched/ never looks inside. */
    struct weft__time_driver *time;
} weft__worker;

/* Trace hooks (trace.h). WEFT__TRACE_HOOKS=0 at compile time takes every one out, for
 * measuring what they cost while no trace runs (bench/RESULTS.md, "Tracing"); the
 * default keeps them, and weft_trace_start needs them. */
#ifndef WEFT__TRACE_HOOKS
#define WEFT__TRACE_HOOKS 1
#endif

/* Whether w records a trace now: a hint for skipping work that only a record needs (the
 * record itself loads the ring again, TRACE-P1). Relaxed: it orders nothing. w: the
 * calling thread's worker. */
static inline bool weft__worker_tracing(const struct weft__worker *w) {
    return WEFT__TRACE_HOOKS && __builtin_expect(weft__atomic_load_relaxed(&w->trace) != 0, 0);
}

/* Records a trace event on w's ring if a trace is running (trace.h). w: the calling
 * thread's worker. */
static inline void weft__worker_trace(struct weft__worker *w, weft__trace_kind kind, uint64_t task,
                                      uint64_t arg, uint32_t extra) {
    if (!WEFT__TRACE_HOOKS)
        return;
    /* (TRACE-P1) Acquire: pairs with weft_trace_start's release (TRACE-S3): the ring's
     * fields as it initialised them. */
    weft__trace_ring *r = (weft__trace_ring *)weft__atomic_load_acquire(&w->trace);
    if (__builtin_expect(r != NULL, 0))
        weft__trace_ring_push(r, kind, task, arg, extra);
}

/* Likewise, stamped `ticks`: for a caller that has just read the counter anyway. */
static inline void weft__worker_trace_at(struct weft__worker *w, uint64_t ticks,
                                         weft__trace_kind kind, uint64_t task, uint64_t arg,
                                         uint32_t extra) {
    if (!WEFT__TRACE_HOOKS)
        return;
    /* (TRACE-P1) As above. */
    weft__trace_ring *r = (weft__trace_ring *)weft__atomic_load_acquire(&w->trace);
    if (__builtin_expect(r != NULL, 0))
        weft__trace_ring_push_at(r, ticks, kind, task, arg, extra);
}

/* The worker running on the calling thread, or NULL. Not inlined, and read fresh on
 * every call: a task may resume on another thread after any switch, so callers must
 * not keep the result across weft_yield, a join, or anything that parks. */
weft__worker *weft__worker_current(void);

/* The task running on the calling thread (and its worker in *worker, if not NULL), or
 * NULL outside a task. Read fresh, like weft__worker_current. */
static inline weft_task *weft__worker_current_task(weft__worker **worker) {
    weft__worker *w = weft__worker_current();
    if (worker)
        *worker = w;
    return w ? w->current : NULL;
}

/* The worker's thread body. */
void *weft__worker_main(void *worker);

/* Makes t runnable: on the calling worker's deque if it is one of t's runtime's
 * workers, else on the injection queue; then wakes an idle worker if none is
 * searching. */
void weft__worker_schedule(weft_runtime *rt, weft_task *t);

/* The two halves of weft__worker_schedule, for callers that must finish touching an
 * object before the system call that waking a worker may take (join.c JOIN-C4). */
void weft__worker_schedule_quiet(weft_runtime *rt, weft_task *t);
void weft__worker_notify(weft_runtime *rt);

/* The scheduler's one wake function, for everything that ends a task's wait (a timer,
 * a join's completion, I/O readiness): the WAKE protocol (task.c) and, if t was parked,
 * queues it without waking a worker. Returns t's runtime if it queued t (the caller
 * calls weft__worker_notify on it once, after its last touch of whatever it fired: one
 * system call per batch), else NULL (a wake was already pending, or t had not parked
 * yet: it will not sleep). Any thread. */
weft_runtime *weft__worker_wake_quiet(weft_task *t);

/* A spawn, for a trace (trace.h): records it on w (the calling thread's worker, which
 * traces) with a flow id, which the writer pairs with t's first run slice. */
void weft__worker_trace_spawn(struct weft__worker *w, weft_task *t);

/* A wake-up, for a trace: records it on the calling thread's worker if that is one of
 * t's runtime's and traces, and the flow id t's next run slice will name. The caller
 * owns t (it cleared PARKED, WAKE-W1) and has not queued it yet. Any thread.
 * (weft__worker_wake_quiet does this itself.) */
void weft__worker_trace_wake(weft_task *t);

/* Inside a task: switches to the worker with `reason` (park or yield), returns when
 * the task runs again (possibly on another worker). */
void weft__worker_suspend_current(weft__switch_reason reason);

/* weft_yield's fast path, inside a task: if another yielded task is the only thing this
 * worker could run, switches to it directly (one switch instead of two through the
 * scheduler), leaving the caller at the end of the yield queue; if nothing at all could
 * run, returns at once. Returns false when the scheduler must decide (other work, or
 * a due timer): the caller then suspends with WEFT__SWITCH_YIELD. */
bool weft__worker_yield_current(void);

/* A join's fast path, inside a task: if t has not started and is the bottom of this
 * worker's deque (the task it would run next), and the calling task's stack has at
 * least 3/4 of the configured stack size free, runs t to completion on the caller's
 * stack, as t (a function call instead of a stack, two switches, a park and a wake).
 * t may park meanwhile; the caller then waits under it. The caller must already be
 * registered as t's joiner (JOIN-J2, JOIN-J3 in join.c), so that no other join or detach can
 * touch t meanwhile. Returns true if t completed this way (its result is then waiting
 * in t), false if nothing was done. */
bool weft__worker_join_inline(weft_task *t);

/* Chaos scheduling (chaos.h): inside a task, sometimes yields. A preemption point for
 * spawn and join; does nothing with chaos off. */
void weft__worker_chaos_yield(void);

/* A fresh task id (process-wide unique, never 0). w may be NULL. */
uint64_t weft__worker_next_id(weft__worker *w);

/* Wakes worker w if it sleeps (shutdown: every worker). */
void weft__worker_unpark(weft__worker *w);

/* A worker's deque holds this many tasks; past it, half go to the injection queue.
 * 256, as Tokio's local queue: enough that overflow is rare outside spawn storms, small
 * enough (2 KiB) to stay in cache. */
#define WEFT__DEQUE_CAPACITY 256

#endif /* WEFT__SCHED_WORKER_H */
