/*
 * task.c: task objects: their pools, and the park/wake protocol on their state word.
 * The join bits of `state` and `joiner` are join.c's; the worker (worker.c) owns
 * running, queueing and switching.
 *
 * Park / wake (a wake that races with parking is never lost). A task blocks in two
 * halves: it switches to its worker with WEFT__SWITCH_PARK, and the worker, once the
 * task's registers are saved, finishes the park. The waker and the parker meet on the
 * state word, and every transition is a full-barrier CAS:
 *
 *   parker (worker, after the switch)         waker (any thread)
 *   (WAKE-P1) NOTIFIED set?  clear it, run    (WAKE-W1) PARKED set?  clear it; the
 *        the task again: the wake came early.      waker now owns the task and
 *   (WAKE-P2) else set PARKED: it sleeps.          schedules it.
 *                                             (WAKE-W2) else set NOTIFIED (if not set).
 *
 * The CASes on one word are totally ordered, so either the waker's CAS comes first
 * (WAKE-P1 sees NOTIFIED) or the parker's does (WAKE-W1 sees PARKED): exactly one side
 * schedules the task, and at most once.
 *
 * Task objects come from pools (pool.h): freed objects keep their memory until the
 * runtime is destroyed (type-stable memory), and a reused object's state word is
 * reinitialised with an atomic store.
 */
#include "sched/task.h"

#include "base/chaos.h"
#include "base/futex.h"

#include <errno.h>
#include <string.h>
#include <time.h>

weft_task *weft__task_alloc(weft__pool *p) {
    weft_task *t = weft__pool_alloc(p);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    t->home = p;
    /* Atomic stores: the object's memory is type-stable (see the top of the file), and a
     * late join or detach of its previous incarnation may still read the word. Relaxed:
     * the pool handed the object over with acquire (pool.c); the new generation is
     * published with the task itself (the spawn's queue push is a release). Fresh
     * objects are zeroed (weft__alloc), so the first generation is 1. */
    AO_t old = weft__atomic_load_relaxed(&t->state);
    weft__atomic_store_relaxed(&t->state,
                               (old & WEFT__TASK_GENERATION_MASK) + WEFT__TASK_GENERATION_ONE);
    weft__atomic_store_relaxed(&t->joiner, 0);
    /* inline_child, cancel_pins and runs_inline are 0 whenever the task is not inside an
     * inline join (cancel.c), so also when it is freed: not reset here; `switches` only
     * grows. The owner's links are only read while `owner` is set. `runnable_at` is
     * `result`'s word, set below. */
    t->cancel_shield = 0;
    t->no_inline = 0;
    t->parent = 0;
    t->wait_kind = WEFT__WAITING_NONE;
    t->owner = NULL;
    t->stack = NULL;
    t->context = NULL;
    t->result = NULL;
    t->name[0] = '\0';
    return t;
}

void weft__task_free(weft_task *t, weft__pool *caller_pool) {
    /* Relaxed: for a dump only, which checks the generation too; no RMW, since nobody
     * else may touch the word of a task being freed (a late join or detach of a consumed
     * handle reads it, and its CAS fails on FREED's word as on any newer one). */
    weft__atomic_store_relaxed(&t->state, weft__atomic_load_relaxed(&t->state) | WEFT__TASK_FREED);
    weft__pool_free(t->home, t, caller_pool);
}

void weft__task_note_wait(weft_task *self, weft__wait_kind kind, uint64_t object) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* ~8 ns; a dump shows seconds */
    /* Relaxed: read by a dump, which checks its reading against `switches`. */
    weft__atomic_store_relaxed(&self->wait_object, object);
    weft__atomic_u32_store_relaxed(&self->wait_since,
                                   (unsigned)((uint64_t)ts.tv_sec * 1000u +
                                              (uint64_t)ts.tv_nsec / 1000000u));
    self->wait_kind = (uint8_t)kind; /* last: a dump reads the kind first */
}

bool weft__task_wake(weft_task *t) {
    AO_t s = weft__atomic_load_relaxed(&t->state); /* a first guess for the CAS */
    for (;;) {
        AO_t next;
        if (s & WEFT__TASK_PARKED)
            next = s & ~(AO_t)WEFT__TASK_PARKED; /* (WAKE-W1) */
        else if (s & WEFT__TASK_NOTIFIED)
            return false; /* a wake is already pending */
        else
            next = s | WEFT__TASK_NOTIFIED; /* (WAKE-W2) */
        /* Full: orders what the waker published before the wake (release) and pairs
         * with the parker's CAS (WAKE-P1/WAKE-P2) on the same word. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, next);
        if (seen == s)
            return (s & WEFT__TASK_PARKED) != 0;
        s = seen;
    }
}

bool weft__task_finish_park(weft_task *t) {
    AO_t s = weft__atomic_load_relaxed(&t->state);
    for (;;) {
        AO_t next = (s & WEFT__TASK_NOTIFIED) ? (s & ~(AO_t)WEFT__TASK_NOTIFIED) /* (WAKE-P1) */
                                              : (s | WEFT__TASK_PARKED);         /* (WAKE-P2) */
        /* Full: pairs with the waker's CAS; on WAKE-P1 its acquire half makes what the
         * waker published visible to the task we run again. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, next);
        if (seen == s)
            return (s & WEFT__TASK_NOTIFIED) == 0;
        s = seen;
    }
}
