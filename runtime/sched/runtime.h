/*
 * runtime.h: the runtime object as the scheduler sees it, and the bookkeeping every room
 * shares: live tasks and their credits, foreign calls (live.c), and the fields of
 * shutdown (runtime/runtime.c writes the protocol out, RT-D1..D4).
 */
#ifndef WEFT__SCHED_RUNTIME_H
#define WEFT__SCHED_RUNTIME_H

#include "base/atomic.h"
#include "base/pool.h"
#include "sched/idle.h"
#include "sched/inject.h"
#include "sched/stack.h"
#include "sched/worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft.h"

struct weft_runtime {
    /* ---- Immutable after weft_runtime_create. */
    unsigned worker_count;
    size_t stack_size;
    size_t max_tasks;
    bool inline_join;    /* WEFT_CONFIG_NO_INLINE_JOIN not set */
    AO_t live_batch;     /* live_tasks credits taken at a time; 0: none (live.c) */
    uint64_t chaos_seed; /* 0: chaos scheduling off (chaos.h) */
    uint64_t tick_factor;      /* base/ticks.h: ns per tick, 32.32 */
    uint64_t long_slice_ticks; /* cfg.long_slice_us in ticks (metrics.h) */
    uint64_t number;           /* the how-manyth runtime of the process (1, 2, ...) */
    weft__worker **workers;

    /* ---- Shared, each with its own synchronisation. */
    weft__inject inject;      /* spawns from other threads, deque overflow */
    weft__idle idle;          /* searching / parked workers */
    weft__stack_depot stacks; /* mutex inside */
    pthread_mutex_t shared_tasks_lock;
    weft__pool shared_tasks; /* task objects for spawns from other threads */
    /* Tasks spawned and not yet finished. Full-barrier RMWs: paired with
     * shutting_down in the shutdown protocol (runtime.c). */
    weft__atomic_word live_tasks;
    weft__atomic_word tasks_spawned;   /* statistics */
    weft__atomic_word destroy_claimed; /* CAS 0 -> 1 by the one thread destroying */
    weft__atomic_word shutting_down;   /* destroy has begun: foreign spawns fail */
    weft__atomic_word stopping;        /* every task is done: workers exit */
    weft__atomic_word foreign_calls;   /* calls from other threads inside rt (RT-D4) */
    weft__atomic_u32 quiescent;        /* futex word: bumped when live_tasks reaches 0
                                        * during shutdown */

    /* ---- The rooms above: opaque here, immutable after create. */
    struct weft__timer_registry *timer_registry; /* time/timer_handle.c */
    struct weft__reactor *reactor;               /* io/reactor.c */
    struct weft__blocking_pool *blocking;        /* io/blocking.c */
    struct weft__trace_state *trace;             /* debug/trace.c: NULL until a trace */
    pthread_mutex_t trace_lock;                  /* guards `trace` (start, stop, destroy) */
};

/* ---- live.c ---- */

/* Bookkeeping when a task has finished: the live count and shutdown (RT-F1, RT-F2). w is
 * the worker it finished on (NULL: not counted on a worker). */
void weft__runtime_task_done(weft_runtime *rt, weft__worker *w);
/* Brackets a call into rt from a thread that is not one of rt's workers (RT-D4):
 * weft_runtime_destroy frees nothing while one is inside. */
void weft__runtime_foreign_enter(weft_runtime *rt);
void weft__runtime_foreign_leave(weft_runtime *rt);
/* weft__runtime_foreign_enter unless the caller is one of rt's workers (a task of rt or
 * its scheduler: destroy joins those threads before it frees anything). True if it
 * entered: the caller then calls weft__runtime_foreign_leave when done with rt. Inline:
 * every join goes through it. */
static inline bool weft__runtime_enter_if_foreign(weft_runtime *rt) {
    weft__worker *w = weft__worker_current();
    if (w && w->runtime == rt)
        return false;
    weft__runtime_foreign_enter(rt);
    return true;
}
/* A worker about to park gives back its live_tasks credits. */
void weft__runtime_release_credit(weft_runtime *rt, weft__worker *w);
/* A spawn in two halves, for an owner that must link the task in before it can run (a
 * task group, sync/group.c), spawn.c. weft__spawn_prepare counts and allocates a task of
 * rt (NULL with errno as weft_spawn_on's), not yet runnable: the caller may set its
 * owner fields, then makes it runnable with weft__spawn_commit, or frees it unrun with
 * weft__spawn_abandon. *pinned: a foreign call (RT-D4) is open until then. The caller
 * may park in between (it may then finish on another worker). */
weft_task *weft__spawn_prepare(weft_runtime *rt, weft_fn fn, void *arg, bool *pinned);
void weft__spawn_commit(weft_task *t, bool pinned);
void weft__spawn_abandon(weft_task *t, bool pinned);
/* The out-of-line part of weft__runtime_count_spawn (live.c). */
int weft__runtime_count_spawn_slow(weft_runtime *rt, weft__worker *w, bool is_ours);

/* (RT-S1, RT-S2) Counts a task about to be spawned on rt by worker w (NULL: a thread
 * that is not one of rt's workers; is_ours: w is running a task of rt). 0, or EAGAIN
 * (max_tasks tasks are alive), ESHUTDOWN (destroy has begun, the caller is not one of
 * rt's tasks). Inline for its common case, a spawn from a task whose worker holds a
 * credit (owner-only field): moving the counting into live.c behind a call cost fib 3%
 * of its instructions (callgrind, 2026-12-02). */
static inline int weft__runtime_count_spawn(weft_runtime *rt, weft__worker *w, bool is_ours) {
    if (is_ours && rt->live_batch && w->live_credit > 0) {
        w->live_credit--;
        return 0;
    }
    return weft__runtime_count_spawn_slow(rt, w, is_ours);
}

#endif /* WEFT__SCHED_RUNTIME_H */
