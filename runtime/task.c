/*
 * task.c: task objects: their pools, and the protocols on their state word. Owns the
 * transitions of `state` and `joiner`; the worker (worker.c) owns running, queueing
 * and switching.
 *
 * Park / wake (a wake that races with parking is never lost). A task blocks in two
 * halves: it switches to its worker with WEFT_SWITCH_PARK, and the worker, once the
 * task's registers are saved, finishes the park. The waker and the parker meet on the
 * state word, and every transition is a full-barrier CAS:
 *
 *   parker (worker, after the switch)         waker (any thread)
 *   (P1) NOTIFIED set?  clear it, run the     (W1) PARKED set?  clear it; the waker
 *        task again: the wake came early.          now owns the task and schedules it.
 *   (P2) else set PARKED: the task sleeps.    (W2) else set NOTIFIED (if not already).
 *
 * The CASes on one word are totally ordered, so either the waker's CAS comes first
 * (P1 sees NOTIFIED) or the parker's does (W1 sees PARKED): exactly one side
 * schedules the task, and at most once.
 *
 * Join. A plain join's park has exactly one waker, the worker that completes the child
 * (a deadline join has a second one, its timer: timer.c says how the two are settled):
 *
 *   joiner                                    completer (the child's worker)
 *   (J1) if COMPLETE: go to J5.               (C1) read state; if JOIN_WAITING, read
 *   (J2) claim `joiner` by CAS from 0              `joiner` (published by J3)
 *        (fails: a second joiner, -EINVAL).   (C2) CAS: state |= COMPLETE, and also
 *   (J3) CAS: state |= JOIN_WAITING,               WAKE_DONE if nobody waits
 *        failing if COMPLETE arrived (J1).    (C3) wake the joiner read in C1 (or free
 *   (J4) park until COMPLETE.                      the child if it was detached)
 *   (J5) wait for WAKE_DONE, take the         (C4) state |= WAKE_DONE: the last touch
 *        result, free the child.                   of either object; only then the
 *                                                  system calls (waking an idle worker
 *                                                  or a foreign joiner's futex)
 *
 * C2 is after the task's last switch, so nothing runs on the child's stack any more.
 * J3 and C2 are CASes on one word: if J3 wins, C1 (retried after a failed C2) sees
 * JOIN_WAITING and C3 wakes the joiner; if C2 wins, J3 fails and the joiner goes to J5
 * without parking. J5 matters when the joiner sees COMPLETE on its own (between J3 and
 * J4's park, or from another thread) before C3 has happened: without it the joiner
 * could free the child, run on and exit while C3 is about to touch it. The wait is the
 * few instructions between C2 and C4 (no system call and no lock between them), so J5
 * spins rather than parks, yielding the CPU if the completer was preempted there.
 * Rejected: C4 after the wake-up's system calls, as a first version had it: a joiner
 * stolen at once by an idle worker then spun through the completer's futex_wake,
 * tens of microseconds, and a profile of deadline-heavy tests showed 40% of CPU there.
 *
 * Task objects come from pools (pool.h): freed objects keep their memory until the
 * runtime is destroyed (type-stable memory), and a reused object's state word is
 * reinitialised with an atomic store.
 */
#include "task.h"

#include "futex.h"

#include <errno.h>
#include <string.h>

weft_task *weft__task_alloc(weft__pool *p) {
    weft_task *t = weft__pool_alloc(p);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    t->home = p;
    /* Atomic stores: the object's memory is type-stable (see the top of the file). */
    weft_atomic_store_relaxed(&t->state, 0);
    weft_atomic_store_relaxed(&t->joiner, 0);
    t->stack = NULL;
    t->context = NULL;
    t->result = NULL;
    t->name[0] = '\0';
    return t;
}

void weft__task_free(weft_task *t, weft__pool *caller_pool) {
    weft__pool_free(t->home, t, caller_pool);
}

bool weft__task_wake(weft_task *t) {
    AO_t s = weft_atomic_load_relaxed(&t->state); /* a first guess for the CAS */
    for (;;) {
        AO_t next;
        if (s & WEFT_TASK_PARKED)
            next = s & ~(AO_t)WEFT_TASK_PARKED; /* (W1) */
        else if (s & WEFT_TASK_NOTIFIED)
            return false; /* a wake is already pending */
        else
            next = s | WEFT_TASK_NOTIFIED; /* (W2) */
        /* Full: orders what the waker published before the wake (release) and pairs
         * with the parker's CAS (P1/P2) on the same word. */
        AO_t seen = weft_atomic_cas_full(&t->state, s, next);
        if (seen == s)
            return (s & WEFT_TASK_PARKED) != 0;
        s = seen;
    }
}

bool weft__task_finish_park(weft_task *t) {
    AO_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        AO_t next = (s & WEFT_TASK_NOTIFIED) ? (s & ~(AO_t)WEFT_TASK_NOTIFIED) /* (P1) */
                                             : (s | WEFT_TASK_PARKED);         /* (P2) */
        /* Full: pairs with the waker's CAS; on P1 its acquire half makes what the waker
         * published visible to the task we run again. */
        AO_t seen = weft_atomic_cas_full(&t->state, s, next);
        if (seen == s)
            return (s & WEFT_TASK_NOTIFIED) == 0;
        s = seen;
    }
}

weft_runtime *weft__task_complete(weft_task *t, weft__pool *caller_pool,
                                  void (*schedule_quiet)(weft_task *joiner)) {
    AO_t s = weft_atomic_load_acquire(&t->state);
    for (;;) {
        AO_t joiner = 0;
        if (s & WEFT_TASK_JOIN_WAITING)
            joiner = weft_atomic_load_relaxed(&t->joiner); /* (C1): ordered by J3/acquire */
        AO_t next = s | WEFT_TASK_COMPLETE | (joiner ? 0 : WEFT_TASK_WAKE_DONE);
        /* (C2) Full: release publishes `result`; acquire pairs with J3. */
        AO_t seen = weft_atomic_cas_full(&t->state, s, next);
        if (seen != s) {
            s = seen;
            continue;
        }
        if (!joiner) {
            if (s & WEFT_TASK_RELEASED) /* detached: the last reference is ours */
                weft__task_free(t, caller_pool);
            return NULL;
        }
        weft_runtime *scheduled = NULL;
        weft__foreign_waiter *waiter = NULL;
        if (joiner & 1) { /* (C3) a thread that is not a worker */
            waiter = (weft__foreign_waiter *)(joiner & ~(AO_t)1);
            /* Release: pairs with the foreign joiner's acquire load of `done`. */
            weft_atomic_u32_store_release(&waiter->done, 1);
        } else { /* (C3) a task */
            weft_task *j = (weft_task *)joiner;
            if (weft__task_wake(j)) {
                schedule_quiet(j);
                scheduled = j->runtime; /* not t's: a join may cross runtimes */
            }
        }
        /* (C4) Full: our last touch of t (and of the joiner's object); pairs with J5's
         * acquire. It comes before any system call, so that J5 waits for a few
         * instructions only: the caller wakes an idle worker after we return. */
        weft_atomic_fetch_add_full(&t->state, WEFT_TASK_WAKE_DONE);
        /* The foreign joiner may have returned by now and its stack frame (the futex
         * word) gone: a FUTEX_WAKE names an address and touches no memory, and at worst
         * it wakes whatever waits there next, which every futex wait in weft (and in
         * glibc) re-checks. glibc's own unlock paths do the same. */
        if (waiter)
            weft__futex_wake(&waiter->done, 1);
        return scheduled;
    }
}

void weft__task_complete_inline(weft_task *t) {
    AO_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        /* (C2 for an inline join) The joiner registered by J2/J3 is the caller, running:
         * no wake-up to deliver, so WAKE_DONE goes with COMPLETE. Full: as C2. */
        AO_t seen =
            weft_atomic_cas_full(&t->state, s, s | WEFT_TASK_COMPLETE | WEFT_TASK_WAKE_DONE);
        if (seen == s)
            return;
        s = seen;
    }
}

AO_t weft__task_await_wake_done(weft_task *t) {
    unsigned rounds = 0;
    for (;;) {
        /* (J5) Acquire: pairs with C2 (result) and C4. */
        AO_t s = weft_atomic_load_acquire(&t->state);
        if (s & WEFT_TASK_WAKE_DONE)
            return s;
        weft_spin_wait(&rounds);
    }
}
