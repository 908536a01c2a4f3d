/*
 * task.c: task objects: their pools, and the protocols on their state word. Owns the
 * transitions of `state` and `joiner`; the worker (worker.c) owns running, queueing
 * and switching.
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
 * (P1 sees NOTIFIED) or the parker's does (W1 sees PARKED): exactly one side
 * schedules the task, and at most once.
 *
 * Join. A plain join's park has exactly one waker, the worker that completes the child
 * (a deadline join has a second one, its timer: timer.c says how the two are settled).
 * Every step on `state` is a full-barrier CAS, and the completer decides whom to wake
 * from the state word alone:
 *
 *   joiner                                    completer (the child's worker)
 *   (JOIN-J1) read state: RELEASED: -EINVAL.  (JOIN-C1) read state.
 *   (JOIN-J2) CAS: state |= JOIN_CLAIMED,     (JOIN-C2) CAS: state |= COMPLETE, and
 *        failing on RELEASED or a claim            WAKE_DONE too unless the state it
 *        (-EINVAL). If COMPLETE was set: J5.       replaces has JOIN_WAITING.
 *   (JOIN-J3) store `joiner` (ours alone      (JOIN-C3) if that state had JOIN_WAITING:
 *        while claimed); CAS: state |=             read `joiner` now, and wake it; else
 *        JOIN_WAITING, failing on COMPLETE         if RELEASED, free the child.
 *        (J5: C2 saw no waiter, set           (JOIN-C4) state |= WAKE_DONE: the last
 *        WAKE_DONE).                               touch of either object; only then
 *   (JOIN-J4) park until COMPLETE.                 the system calls (waking an idle
 *   (JOIN-J5) wait for WAKE_DONE, take the         worker or a foreign joiner's futex).
 *        result, free the child.
 *
 *   a deadline join whose deadline passed     a detach
 *   (JOIN-X1) CAS: clear JOIN_WAITING and     (JOIN-R1) CAS: state |= RELEASED, unless
 *        JOIN_CLAIMED, failing on COMPLETE         JOIN_CLAIMED or RELEASED is set (a
 *        (then C2 has committed to waking          join owns the handle: the detach
 *        us: J5, a success at the deadline).       does nothing). If COMPLETE was set,
 *        The handle is the caller's again.         free the child: nobody else will.
 *
 * Why the joiner is read after C2, not before (ABA). A first version read `joiner` in
 * C1 and CASed in C2. Between the two, a deadline join could withdraw (X1) and a new
 * join of the same handle register (J2, J3): the state word was then bit for bit what
 * C1 had read, C2 succeeded, and C3 woke the withdrawn joiner: a stale foreign waiter
 * on a reused stack slot, or a task object that was another task by then, while the
 * new joiner slept forever (found by a cold review; the TSan stress run's hang in
 * stress_deadlines). Once C2 has set COMPLETE, X1 and J2/J3 all fail, so the joiner
 * that C2's replaced state announced is the one in `joiner`. Rejected: a registration
 * counter in the state word: more bits and a wider CAS for what ordering gives free.
 *
 * Why JOIN_CLAIMED is a state bit (a first version claimed the `joiner` word by CAS):
 * a detach and a join then meet on one word, so exactly one of them owns the handle. A
 * detach landing between J1 and the claim made the join either return 0 for a detached
 * handle or, when the child had completed, free the object a second time. A join that
 * finds the child complete claims it too, before it frees it: otherwise a detach
 * racing it would free the same completed child (tests/stress/stress_handle_races.c,
 * part 3, found this one in the first fix).
 *
 * J3 and C2 are CASes on one word: if J3 wins, C2 sees JOIN_WAITING and C3 wakes the
 * joiner; if C2 wins, J3 fails and the joiner goes to J5 without parking. J5 matters
 * when the joiner sees COMPLETE on its own (between J3 and J4's park, or from another
 * thread) before C3 has happened: without it the joiner could free the child, run on
 * and exit while C3 is about to touch it. The wait is the few instructions between C2
 * and C4 (no system call and no lock between them), so J5 spins rather than parks,
 * yielding the CPU if the completer was preempted there. Rejected: C4 after the
 * wake-up's system calls, as a first version had it: a joiner stolen at once by an idle
 * worker then spun through the completer's futex_wake, tens of microseconds, and a
 * profile of deadline-heavy tests showed 40% of CPU there.
 *
 * A joiner of another runtime: after C4 the joiner may run on, return, and its runtime
 * be destroyed, while the completer still has to wake one of that runtime's idle
 * workers. The completer therefore pins that runtime as a foreign call (runtime.c,
 * RT-D4) inside C3, before C4, and unpins it after the wake (worker.c, finish).
 *
 * Chaos points (chaos.h) sit between the steps above: a seeded chaos run widens each
 * window from a few instructions to microseconds.
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

weft_task *weft__task_alloc(weft__pool *p) {
    weft_task *t = weft__pool_alloc(p);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    t->home = p;
    /* Atomic stores: the object's memory is type-stable (see the top of the file). */
    weft__atomic_store_relaxed(&t->state, 0);
    weft__atomic_store_relaxed(&t->joiner, 0);
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
         * with the parker's CAS (WAKE-P1/P2) on the same word. */
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

weft_runtime *weft__task_complete(weft_task *t, weft__pool *caller_pool,
                                  void (*schedule_quiet)(weft_task *joiner), uint64_t chaos) {
    (void)chaos; /* unused in a build without chaos points */
    /* (JOIN-C1) Relaxed: a first guess for the CAS, which reads the word again. */
    AO_t s = weft__atomic_load_relaxed(&t->state);
    for (;;) {
        WEFT__CHAOS_POINT(chaos, "JOIN-C1");
        bool waiting = (s & WEFT__TASK_JOIN_WAITING) != 0;
        AO_t next = s | WEFT__TASK_COMPLETE | (waiting ? 0 : WEFT__TASK_WAKE_DONE);
        /* (JOIN-C2) Full: release publishes `result`; acquire pairs with JOIN-J3's
         * release, so `joiner` below is the registration this state announced. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, next);
        if (seen == s)
            break;
        s = seen;
    }
    WEFT__CHAOS_POINT(chaos, "JOIN-C2");
    if (!(s & WEFT__TASK_JOIN_WAITING)) {
        if (s & WEFT__TASK_RELEASED) /* detached: the last reference is ours */
            weft__task_free(t, caller_pool);
        return NULL;
    }
    /* (JOIN-C3) Relaxed: ordered after JOIN-J3 by C2's acquire, and stable since C2 set
     * COMPLETE (no withdraw, no new registration can follow it). */
    AO_t joiner = weft__atomic_load_relaxed(&t->joiner);
    weft_runtime *scheduled = NULL;
    weft__foreign_waiter *waiter = NULL;
    if (joiner & 1) { /* a thread that is not a worker */
        waiter = (weft__foreign_waiter *)(joiner & ~(AO_t)1);
        /* Release: pairs with the foreign joiner's acquire load of `done`. */
        weft__atomic_u32_store_release(&waiter->done, 1);
    } else { /* a task */
        weft_task *j = (weft_task *)joiner;
        if (weft__task_wake(j)) {
            schedule_quiet(j);
            scheduled = j->runtime; /* not t's: a join may cross runtimes */
        }
    }
    WEFT__CHAOS_POINT(chaos, "JOIN-C3");
    /* (JOIN-C4) Full: our last touch of t (and of the joiner's object); pairs with J5's
     * acquire. It comes before any system call, so that J5 waits for a few
     * instructions only: the caller wakes an idle worker after we return. */
    weft__atomic_fetch_add_full(&t->state, WEFT__TASK_WAKE_DONE);
    /* The foreign joiner may have returned by now and its stack frame (the futex
     * word) gone: a FUTEX_WAKE names an address and touches no memory, and at worst
     * it wakes whatever waits there next, which every futex wait in weft (and in
     * glibc) re-checks. glibc's own unlock paths do the same. */
    if (waiter)
        weft__futex_wake(&waiter->done, 1);
    return scheduled;
}

void weft__task_complete_inline(weft_task *t) {
    AO_t s = weft__atomic_load_relaxed(&t->state);
    for (;;) {
        /* (JOIN-C2 for an inline join) The joiner registered by J2/J3 is the caller,
         * running: no wake-up to deliver, so WAKE_DONE goes with COMPLETE. Full: as C2. */
        AO_t seen =
            weft__atomic_cas_full(&t->state, s, s | WEFT__TASK_COMPLETE | WEFT__TASK_WAKE_DONE);
        if (seen == s)
            return;
        s = seen;
    }
}

AO_t weft__task_await_wake_done(weft_task *t) {
    unsigned rounds = 0;
    for (;;) {
        /* (JOIN-J5) Acquire: pairs with JOIN-C2 (result) and JOIN-C4. */
        AO_t s = weft__atomic_load_acquire(&t->state);
        if (s & WEFT__TASK_WAKE_DONE)
            return s;
        weft__spin_wait(&rounds);
    }
}
