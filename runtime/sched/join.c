/*
 * join.c: join handles: both sides of the join protocol (the joiner's weft_join,
 * weft_join_until and weft_detach; the completer's weft__task_complete, which the
 * worker calls after a task's last switch), on the task's state word (task.h).
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
 *        (-EINVAL). If COMPLETE was set: JOIN-J5.       replaces has JOIN_WAITING.
 *   (JOIN-J3) store `joiner` (ours alone      (JOIN-C3) if that state had JOIN_WAITING:
 *        while claimed); CAS: state |=             read `joiner` now, and wake it; else
 *        JOIN_WAITING, failing on COMPLETE         if RELEASED, free the child.
 *        (JOIN-J5: JOIN-C2 saw no waiter, set           (JOIN-C4) state |= WAKE_DONE: the last
 *        WAKE_DONE).                               touch of either object; only then
 *   (JOIN-J4) park until COMPLETE.                 the system calls (waking an idle
 *   (JOIN-J5) wait for WAKE_DONE, take the         worker or a foreign joiner's futex).
 *        result, free the child.
 *
 *   a deadline join whose deadline passed     a detach
 *   (JOIN-X1) CAS: clear JOIN_WAITING and     (JOIN-R1) CAS: state |= RELEASED, unless
 *        JOIN_CLAIMED, failing on COMPLETE         JOIN_CLAIMED or RELEASED is set (a
 *        (then JOIN-C2 has committed to waking          join owns the handle: the detach
 *        us: JOIN-J5, a success at the deadline).       does nothing). If COMPLETE was set,
 *        The handle is the caller's again.         free the child: nobody else will.
 *
 * Why the joiner is read after JOIN-C2, not before (ABA). A first version read `joiner` in
 * JOIN-C1 and CASed in JOIN-C2. Between the two, a deadline join could withdraw (JOIN-X1) and a new
 * join of the same handle register (JOIN-J2, JOIN-J3): the state word was then bit for bit what
 * JOIN-C1 had read, JOIN-C2 succeeded, and JOIN-C3 woke the withdrawn joiner: a stale foreign
 * waiter on a reused stack slot, or a task object that was another task by then, while the new
 * joiner slept forever (found by a cold review; the TSan stress run's hang in stress_deadlines).
 * Once JOIN-C2 has set COMPLETE, JOIN-X1 and JOIN-J2/JOIN-J3 all fail, so the joiner that JOIN-C2's
 * replaced state announced is the one in `joiner`. Rejected: a counter of registrations in the
 * state word, bumped by every J3: more bits and work on every join for what this ordering gives
 * free. (The generation in the word's high bits, task.h, is another matter: it counts the
 * object's incarnations, so that a late call on a consumed handle never acts on a new task.)
 *
 * Why JOIN_CLAIMED is a state bit (a first version claimed the `joiner` word by CAS):
 * a detach and a join then meet on one word, so exactly one of them owns the handle. A
 * detach landing between JOIN-J1 and the claim made the join either return 0 for a detached
 * handle or, when the child had completed, free the object a second time. A join that
 * finds the child complete claims it too, before it frees it: otherwise a detach
 * racing it would free the same completed child (tests/stress/stress_handle_races.c,
 * part 3, found this one in the first fix).
 *
 * JOIN-J3 and JOIN-C2 are CASes on one word: if JOIN-J3 wins, JOIN-C2 sees JOIN_WAITING and JOIN-C3
 * wakes the joiner; if JOIN-C2 wins, JOIN-J3 fails and the joiner goes to JOIN-J5 without parking.
 * JOIN-J5 matters when the joiner sees COMPLETE on its own (between JOIN-J3 and JOIN-J4's park, or
 * from another thread) before JOIN-C3 has happened: without it the joiner could free the child, run
 * on and exit while JOIN-C3 is about to touch it. The wait is the few instructions between JOIN-C2
 * and JOIN-C4 (no system call and no lock between them), so JOIN-J5 spins rather than parks,
 * yielding the CPU if the completer was preempted there. Rejected: JOIN-C4 after the
 * wake-up's system calls, as a first version had it: a joiner stolen at once by an idle
 * worker then spun through the completer's futex_wake, tens of microseconds, and a
 * profile of deadline-heavy tests showed 40% of CPU there.
 *
 * A joiner of another runtime: after JOIN-C4 the joiner may run on, return, and its runtime
 * be destroyed, while the completer still has to wake one of that runtime's idle
 * workers. The completer therefore pins that runtime as a foreign call (runtime.c,
 * RT-D4) in JOIN-C3, before JOIN-C4, and unpins it after the wake.
 *
 * Chaos points (chaos.h) sit between the steps above: a seeded chaos run widens each
 * window from a few instructions to microseconds (JOIN-C4's to up to 200 us).
 */
#include "sched/runtime.h"

#include "base/chaos.h"
#include "base/futex.h"
#include "sched/cancel.h"
#include "sched/deadline.h"

#include <errno.h>

/* ---- The completer's side ------------------------------------------------------------ */

void weft__task_complete(weft__worker *w, weft_task *t) {
    weft_runtime *rt = w->runtime;
    uint64_t chaos = rt->chaos_seed;
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
            weft__task_free(t, &w->tasks);
        return;
    }
    /* (JOIN-C3) Relaxed: ordered after JOIN-J3 by JOIN-C2's acquire, and stable since JOIN-C2 set
     * COMPLETE (no withdraw, no new registration can follow it). */
    AO_t joiner = weft__atomic_load_relaxed(&t->joiner);
    weft_runtime *scheduled = NULL;
    weft__foreign_waiter *waiter = NULL;
    if (joiner & 1) { /* a thread that is not a worker */
        waiter = (weft__foreign_waiter *)(joiner & ~(AO_t)1);
        /* Release: pairs with the foreign joiner's acquire load of `done`. */
        weft__atomic_u32_store_release(&waiter->done, 1);
    } else { /* a task */
        /* The scheduler's wake function: queues the joiner if it had parked (on its
         * runtime, not t's: a join may cross runtimes), without waking a worker yet. */
        scheduled = weft__worker_wake_quiet((weft_task *)joiner);
        /* Pin a runtime other than ours (RT-D4): after JOIN-C4 the joiner may run on,
         * return, and its runtime be destroyed, before the notify below. */
        if (scheduled && scheduled != rt)
            weft__runtime_foreign_enter(scheduled);
    }
    WEFT__CHAOS_POINT(chaos, "JOIN-C3");
    /* (JOIN-C4) Full: our last touch of t (and of the joiner's object); pairs with JOIN-J5's
     * acquire. It comes before any system call, so that JOIN-J5 waits for a few
     * instructions only: the futex wake and the idle worker's wake-up come after it. */
    weft__atomic_fetch_add_full(&t->state, WEFT__TASK_WAKE_DONE);
    /* The foreign joiner may have returned by now and its stack frame (the futex
     * word) gone: a FUTEX_WAKE names an address and touches no memory, and at worst
     * it wakes whatever waits there next, which every futex wait in weft (and in
     * glibc) re-checks. glibc's own unlock paths do the same. */
    if (waiter)
        weft__futex_wake(&waiter->done, 1);
    if (!scheduled)
        return;
    WEFT__CHAOS_POINT_LONG(chaos, "JOIN-C4");
    weft__worker_notify(scheduled);
    if (scheduled != rt) /* pinned above */
        weft__runtime_foreign_leave(scheduled);
}

void weft__task_complete_inline(weft_task *t) {
    AO_t s = weft__atomic_load_relaxed(&t->state);
    for (;;) {
        /* (JOIN-C2 for an inline join) The joiner registered by JOIN-J2/JOIN-J3 is the caller,
         * running: no wake-up to deliver, so WAKE_DONE goes with COMPLETE. Full: as JOIN-C2. */
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

/* ---- The joiner's side ---------------------------------------------------------------- */

/* (JOIN-J5) Consumes a completed handle: result out, object freed. */
static int take_result(weft_task *t, void **result) {
    AO_t s = weft__task_await_wake_done(t);
    if (result)
        *result = (s & WEFT__TASK_START_FAILED) ? NULL : t->result;
    weft__worker *w = weft__worker_current();
    weft__task_free(t, w ? &w->tasks : NULL);
    return (s & WEFT__TASK_START_FAILED) ? -ENOMEM : 0;
}

/* (JOIN-X1) After the deadline passed: withdraw the registration so the handle is the
 * caller's again. If the child completed meanwhile, the completer has committed to
 * waking us: take the result instead (a success at the deadline). */
static int withdraw_join(weft_task *t, void **result) {
    WEFT__CHAOS_POINT(t->runtime->chaos_seed, "JOIN-X1");
    AO_t s = weft__atomic_load_relaxed(&t->state); /* a first guess for the CAS */
    for (;;) {
        if (s & WEFT__TASK_COMPLETE)
            return take_result(t, result);
        /* Full: pairs with JOIN-C2 on the same word; if we win, JOIN-C2 sees no waiter and
         * never reads `joiner` for this registration. */
        AO_t seen = weft__atomic_cas_full(
            &t->state, s, s & ~(AO_t)(WEFT__TASK_JOIN_WAITING | WEFT__TASK_JOIN_CLAIMED));
        if (seen == s)
            return -ETIMEDOUT;
        s = seen;
    }
}

/* (JOIN-J2) Claims the handle for this join, completed or not: a detach racing us must
 * find it claimed, or free a completed child we are about to take. 0: claimed, not
 * complete; 1: claimed, complete (go to JOIN-J5); -EINVAL: detached, or another join owns
 * it. */
static int claim_join(weft_task *t, AO_t s) {
    AO_t generation = s & WEFT__TASK_GENERATION_MASK;
    for (;;) {
        if (s & (WEFT__TASK_RELEASED | WEFT__TASK_JOIN_CLAIMED))
            return -EINVAL;
        if ((s & WEFT__TASK_GENERATION_MASK) != generation)
            return -EINVAL; /* consumed meanwhile, and the object reused: not our handle */
        /* Full: pairs with JOIN-R1 and with another join's JOIN-J2 on the same word: exactly
         * one of them owns the handle. Its acquire half pairs with JOIN-C2's release
         * when the child is complete (`result` is then final). */
        AO_t seen = weft__atomic_cas_full(&t->state, s, s | WEFT__TASK_JOIN_CLAIMED);
        if (seen == s)
            return (s & WEFT__TASK_COMPLETE) ? 1 : 0;
        s = seen;
    }
}

/* (JOIN-J3) Publishes `me` and announces it. True: registered; false: the child
 * completed first, with WAKE_DONE set (go to JOIN-J5). */
static bool register_joiner(weft_task *t, AO_t me) {
    /* Relaxed: the word is ours while we hold JOIN_CLAIMED; the CAS below publishes it. */
    weft__atomic_store_relaxed(&t->joiner, me);
    AO_t s = weft__atomic_load_relaxed(&t->state);
    for (;;) {
        if (s & WEFT__TASK_COMPLETE)
            return false;
        /* Full: release publishes `joiner` to JOIN-C3 (through JOIN-C2's acquire); fails if
         * JOIN-C2 came first. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, s | WEFT__TASK_JOIN_WAITING);
        if (seen == s)
            return true;
        s = seen;
    }
}

/* A join that ends with -ECANCELED cancels the task it joined (weft.h): as an inline join
 * must (the child is part of the joiner's call, cancel.c), so that whether a join ran
 * inline changes no task's fate. `s`: the state read on entry (its generation). */
static void cancel_joined(weft_task *t, AO_t s) {
    weft__fifo to_schedule;
    weft__fifo_init(&to_schedule);
    weft__cancel_task(t, s & WEFT__TASK_GENERATION_MASK, &to_schedule);
    weft__cancel_schedule(&to_schedule);
}

static int join_until(weft_task *t, AO_t s, uint64_t deadline_ns, void **result) {
    weft__worker *w;
    weft_task *self = weft__worker_current_task(&w);
    if (self == t)
        return -EDEADLK;
    if (self && weft__cancel_pending(self)) {
        cancel_joined(t, s); /* a cancellation point, at once (cancel.c); the handle stays */
        return -ECANCELED;
    }
    uint64_t chaos = t->runtime->chaos_seed; /* immutable while the handle is ours */
    (void)chaos;
    weft__foreign_waiter waiter;
    weft__atomic_u32_store_release(&waiter.done, 0);
    AO_t me = self ? (AO_t)self : ((AO_t)&waiter | 1);
    /* (JOIN-J1) `s`, read on entry (join_counted), is a first look to fail early:
     * JOIN-J2's CAS decides. */
    if (s & WEFT__TASK_RELEASED)
        return -EINVAL; /* detached: the handle is not ours to join */
    if (!(s & WEFT__TASK_COMPLETE)) {
        if (deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns)
            return -ETIMEDOUT;
        if (self && w->runtime->chaos_seed) { /* chaos: a preemption point */
            weft__worker_chaos_yield();
            w = weft__worker_current(); /* we may have moved */
        }
    }
    WEFT__CHAOS_POINT(chaos, "JOIN-J1");
    int claimed = claim_join(t, s);
    if (claimed < 0)
        return claimed;
    if (claimed > 0)
        return take_result(t, result);
    WEFT__CHAOS_POINT(chaos, "JOIN-J2");
    if (!register_joiner(t, me))
        return take_result(t, result);
    WEFT__CHAOS_POINT(chaos, "JOIN-J3");
    /* Registered (JOIN-J2, JOIN-J3), so no other join or detach can touch t: if t has not started
     * and is next in our own deque, run it here, on our stack (worker.c). */
    if (self && deadline_ns == WEFT_FOREVER && w->runtime->inline_join &&
        weft__worker_join_inline(t))
        return take_result(t, result);
    /* (JOIN-J4) Park (a task) or sleep (a thread) until COMPLETE or the deadline. */
    if (self) {
        weft__timer *tm = NULL;
        if (deadline_ns != WEFT_FOREVER && !(tm = weft__timer_arm_current(deadline_ns))) {
            int rc = withdraw_join(t, result);
            return rc == -ETIMEDOUT ? -ENOMEM : rc;
        }
        bool cancelled = false;
        weft__task_note_wait(self, WEFT__WAITING_JOIN, t->id);
        for (;;) {
            if (weft__atomic_load_acquire(&t->state) & WEFT__TASK_COMPLETE) {
                weft__task_end_wait(self);
                if (tm)
                    weft__timer_release(tm);
                return take_result(t, result);
            }
            if (tm && weft__timer_fired(tm))
                break;
            /* (CANCEL-2) Cancelled while waiting: the child too, then withdraw as at a
             * deadline (if the child completes meanwhile, its result is returned). */
            if ((cancelled = weft__cancel_pending(self))) {
                cancel_joined(t, s);
                break;
            }
            weft__worker_suspend_current(WEFT__SWITCH_PARK);
        }
        weft__task_end_wait(self);
        if (tm)
            weft__timer_release(tm);
        int rc = withdraw_join(t, result);
        return rc == -ETIMEDOUT && cancelled ? -ECANCELED : rc;
    } else {
        for (;;) {
            if (weft__atomic_u32_load_acquire(&waiter.done))
                return take_result(t, result);
            if (deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns)
                break;
            weft__futex_wait_until(&waiter.done, 0, deadline_ns);
        }
    }
    return withdraw_join(t, result);
}

/* A join from a thread that is not one of the task's runtime's workers is a foreign call
 * (RT-D4): destroy may be waiting for the very task, and must not free it (or the
 * runtime) while the joiner is still taking its result. */
static int join_counted(weft_task *t, uint64_t deadline_ns, void **result) {
    if (!t)
        return -EINVAL;
    /* (JOIN-J1) First, before anything else: the state, and so the generation this
     * handle names (task.h). Relaxed: JOIN-J2's CAS reads the word again. */
    AO_t s = weft__atomic_load_relaxed(&t->state);
    weft_runtime *rt = t->runtime;
    bool foreign = weft__runtime_enter_if_foreign(rt);
    int rc = join_until(t, s, deadline_ns, result);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return rc;
}

WEFT_API int weft_join(weft_task *t, void **result) {
    return join_counted(t, WEFT_FOREVER, result);
}

WEFT_API int weft_join_until(weft_task *t, uint64_t deadline_ns, void **result) {
    return join_counted(t, deadline_ns, result);
}

WEFT_API void weft_detach(weft_task *t) {
    if (!t)
        return;
    /* First, before anything else: the generation this handle names (task.h). Relaxed: a
     * first guess for the CAS, which reads the word again. */
    AO_t s = weft__atomic_load_relaxed(&t->state);
    AO_t generation = s & WEFT__TASK_GENERATION_MASK;
    weft_runtime *rt = t->runtime;
    /* A foreign call (RT-D4): a detach of a finished task frees it into a pool, which
     * destroy must not free under us. */
    bool foreign = weft__runtime_enter_if_foreign(rt);
    for (;;) {
        if (s & (WEFT__TASK_JOIN_CLAIMED | WEFT__TASK_RELEASED))
            goto out; /* a join owns the handle, or it was detached already */
        if ((s & WEFT__TASK_GENERATION_MASK) != generation)
            goto out; /* a join consumed it and the object was reused: not ours */
        WEFT__CHAOS_POINT(rt->chaos_seed, "JOIN-R1");
        /* (JOIN-R1) Full: pairs with JOIN-C2 and JOIN-J2 on the same word; whichever
         * comes second sees the other's bit. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, s | WEFT__TASK_RELEASED);
        if (seen == s)
            break;
        s = seen;
    }
    if (s & WEFT__TASK_COMPLETE) { /* finished already: the last reference is ours */
        WEFT__CHAOS_POINT(rt->chaos_seed, "JOIN-R2");
        weft__worker *w = weft__worker_current();
        /* Our own pool only if we are one of rt's workers: pools are per runtime. */
        weft__task_free(t, w && w->runtime == rt ? &w->tasks : NULL);
    }
out:
    if (foreign)
        weft__runtime_foreign_leave(rt);
}
