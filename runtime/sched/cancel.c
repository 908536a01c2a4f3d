/*
 * cancel.c: task cancellation: weft_cancel, weft_cancelled, weft_cancel_shield, the check
 * of every cancellation point, and the canceller's side for owners (weft__cancel_task).
 *
 * Data: the CANCELLED bit of a task's state word (task.h), set by any thread, never
 * cleared for the incarnation; `cancel_shield`, the task's own; `inline_child` and
 * `cancel_pins`, for a task that runs a joined child on its stack (below).
 *
 * A cancel is a wake-up that leaves a mark, and it never needs to know what the task
 * waits on:
 *
 *   canceller (any thread)                    the task, in a cancellation point
 *   (CANCEL-1) one full CAS on the state      (CANCEL-2) its wait loop checks the mark
 *        word: set CANCELLED and, as                (weft__cancel_pending) before every
 *        weft__task_wake does, clear PARKED         park; the park is WAKE-P1/P2's CAS
 *        (the canceller then schedules the          on the same word. Seen: it leaves
 *        task) or set NOTIFIED (its next            the loop and withdraws itself from
 *        park returns at once). Fails on            what it waits on (WAIT-B3, JOIN-X1,
 *        COMPLETE or another generation.            a timer's release), as after a
 *                                                   deadline.
 *
 * The check and the park against CANCEL-1 are the check and the park of any wake-up
 * against WAKE-W1/W2: either the loop sees the mark, or CANCEL-1's CAS comes after the
 * check and then either finds PARKED (and schedules the task) or leaves NOTIFIED for the
 * park. So a cancel is never lost. The event and the cancel are then decided by one
 * atomic step on the structure waited on: the withdraw (the cancel won: the call has not
 * happened) or the waker's take (WAIT-D0: the event won, the call returns it, and the
 * mark stays for the next cancellation point). Every wait of weft goes through one of
 * three loops (wait.c's weft__wait_block_any, join.c's join_until, timer.c's sleep), and
 * each checks there; the public calls also check on entry (weft__cancel_point), so that a
 * task cancelled before a call gets -ECANCELED at once even where the call could
 * complete without waiting. A NOTIFIED left by a cancel that found the task running is
 * one spurious wake-up of its next park, which every wait loop tolerates (wait.c).
 *
 * Inline joins. A joiner J may run the child C it joins on its own stack (worker.c,
 * INLINE-I1..I4); J cannot return from the join before C returns, so a cancel of J must
 * end C's waits too, or J's join would not end promptly. weft.h makes C part of J's call:
 * while C runs inline, its cancellation points also answer to J's cancellation (C's
 * `runs_inline` is set and its `joiner` is J, and so on up: weft__cancel_pending_chain walks it,
 * stopping at the first shield; C's own CANCELLED bit is not set, so C's cancellation state is its
 * own again once it has returned). The walk is only taken when a bit of C's own state word says so
 * (CANCELLED, or the hint HOST_CANCELLED), so the common check is one load, not one per level (fib
 * runs twenty levels inline). The canceller must then give C the hint and wake it, and finds it
 * through J's `inline_child`; it must not touch C after J has freed it:
 *
 *   joiner J (worker.c, weft__worker_join_inline)  canceller of J
 *   (CANCEL-I1) store inline_child := C, before    (CANCEL-1) on J, as above (or the
 *        INLINE-I1's pop of C, whose full RMW           hint, when J is itself a child).
 *        orders the store before CANCEL-I2.        (CANCEL-3) cancel_pins += 1 (full).
 *   (CANCEL-I2) load J's state: CANCELLED or       (CANCEL-4) load inline_child; if C:
 *        the hint? give C the hint (C has not           one CAS on C's state: the hint,
 *        run yet).                                      and a wake (as CANCEL-1); and on
 *   (CANCEL-I3) C returned (or J declined to run        down the chain if C runs a child
 *        it): inline_child := 0, then a full            inline; then cancel_pins -= 1
 *        barrier (C's completion CAS and a fence        (release). Tasks it must
 *        where an RMW is not one, or an RMW on          schedule are queued only after
 *        cancel_pins when declining).                   the unpin (mark_and_wake).
 *   (CANCEL-I4) wait until cancel_pins is 0
 *        (acquire); only then may C be freed.
 *
 * CANCEL-I1/I2 against CANCEL-1/3/4 is a store-then-load on each side with a full barrier
 * between (the pop's RMW; CANCEL-1's CAS and CANCEL-3's RMW): at least one side sees the
 * other, so C gets the hint from J or from the canceller (both is harmless), and a C
 * already parked is woken by CANCEL-4's CAS (its loop then walks the chain: CANCEL-1
 * came before). CANCEL-I3/I4 against CANCEL-3/4 likewise: if J's load in CANCEL-I4 found
 * no pin, a canceller pinning later reads inline_child after J cleared it; if it found
 * one, J waits for the unpin, which comes after the canceller's last touch of C. A hint
 * (or a wake) given to a C that J then declined to run inline is harmless: C's walk
 * finds no host (runs_inline is set only for a C that runs inline), and a spurious
 * wake-up is tolerated by every wait loop.
 *
 * Rejected: setting C's CANCELLED bit instead of the hint and the walk. C might be
 * marked although J only considered running it inline (the window between CANCEL-I1 and
 * J's decision), and would then stay cancelled when run on a stack of its own: avoiding
 * that needs a full barrier after J decides, on every inline join (fib's whole join is
 * about 100 cycles). Rejected: the walk on every check (measured: 75 instructions a
 * join on fib(22), 20% of the run). Rejected too: no inline joins for a task that may be
 * cancelled (every task may), or a join that ends only when C does.
 */
#include "sched/cancel.h"

#include "base/chaos.h"
#include "sched/runtime.h"

#include <errno.h>

int weft__cancel_point(void) {
    weft_task *self = weft__worker_current_task(NULL);
    return self && weft__cancel_pending(self) ? -ECANCELED : 0;
}

/* One CAS on t's state: sets `bits` and wakes t as weft__task_wake does (clears PARKED,
 * or sets NOTIFIED). A t whose PARKED it cleared is appended to `to_schedule` (its link
 * is free: a parked task is in no queue), to be scheduled by weft__cancel_schedule once
 * the caller holds nothing (a lock, a pin): until then t cannot run, so it cannot
 * finish or be freed. Returns false if t had completed, or has another generation (when
 * `generation` is not 0), or needed nothing: CANCELLED already set (that cancel woke it),
 * or, for the hint, set and a wake-up already pending. The hint decides nothing by
 * itself (the chain walk does), so a hint already set still wakes: a later cancel up
 * the chain may make the walk true (found by a cold review: a child hinted under a
 * shielded host slept through its joiner's cancel). */
static bool mark_and_wake(weft_task *t, AO_t generation, AO_t bits, weft__fifo *to_schedule) {
    AO_t s = weft__atomic_load_relaxed(&t->state); /* a first guess for the CAS */
    AO_t next;
    for (;;) {
        if (generation && (s & WEFT__TASK_GENERATION_MASK) != generation)
            return false; /* consumed and reused: not the task the caller meant */
        if (s & WEFT__TASK_COMPLETE)
            return false;
        if ((bits & WEFT__TASK_CANCELLED) && (s & WEFT__TASK_CANCELLED))
            return false;
        next = s | bits;
        if (s & WEFT__TASK_PARKED)
            next &= ~(AO_t)WEFT__TASK_PARKED;
        else
            next |= WEFT__TASK_NOTIFIED;
        if (next == s)
            return false; /* the hint is there and a wake-up pending */
        /* Full: pairs with WAKE-P1/P2 on the same word, as weft__task_wake's CAS. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, next);
        if (seen == s)
            break;
        s = seen;
    }
    if (s & WEFT__TASK_PARKED) {    /* we cleared PARKED: it is ours to schedule */
        weft__worker_trace_wake(t); /* a trace's wake-up: the arrow from the canceller */
        weft__fifo_push(to_schedule, &t->link);
    }
    return true;
}

/* (CANCEL-3, CANCEL-4) Gives the hint to the task `host` runs inline now, if any, and
 * wakes it; and on down the chain. `generation`: host's, when the caller holds only a
 * handle (0: the caller keeps host alive by other means). The pin keeps the child
 * alive; the re-read of host's state after the child's load proves the child is that
 * incarnation's (a child is published after its host's generation was set, so a host
 * reused meanwhile shows another generation). */
static void hint_inline_children(weft_task *host, AO_t generation, weft__fifo *to_schedule) {
    uint64_t chaos = host->runtime->chaos_seed;
    (void)chaos;
    /* (CANCEL-3) Full: pairs with CANCEL-I4's load (store-then-load on both sides). */
    weft__atomic_u32_fetch_add_full(&host->cancel_pins, 1);
    weft__atomic_fence_after_rmw(); /* then CANCEL-4's acquire load, on Arm too */
    WEFT__CHAOS_POINT(chaos, "CANCEL-3");
    /* (CANCEL-4) Acquire: the child's fields as the joiner published them (CANCEL-I1). */
    weft_task *child = (weft_task *)weft__atomic_load_acquire(&host->inline_child);
    AO_t s = weft__atomic_load_acquire(&host->state);
    if (child && !(s & WEFT__TASK_COMPLETE) &&
        (!generation || (s & WEFT__TASK_GENERATION_MASK) == generation)) {
        mark_and_wake(child, 0, WEFT__TASK_HOST_CANCELLED, to_schedule);
        WEFT__CHAOS_POINT(chaos, "CANCEL-4");
        hint_inline_children(child, 0, to_schedule);
    }
    /* Full (release is what is needed): our touches of the child come before J's CANCEL-I4
     * sees the pin gone. */
    weft__atomic_u32_fetch_add_full(&host->cancel_pins, (unsigned)-1);
}

void weft__cancel_schedule(weft__fifo *to_schedule) {
    weft__link *l;
    while ((l = weft__fifo_pop(to_schedule))) {
        weft_task *t = weft__container_of(l, weft_task, link);
        weft_runtime *rt = t->runtime;
        /* Pin a runtime we are not a worker of (RT-D4): once queued, t may finish and its
         * runtime be destroyed before the wake-up of a worker. t is alive until we queue
         * it, so its runtime is too. */
        bool foreign = weft__runtime_enter_if_foreign(rt);
        weft__worker_schedule(rt, t);
        if (foreign)
            weft__runtime_foreign_leave(rt);
    }
}

/* The joiner t runs inline for now, or NULL (the chain's next link). Relaxed: `joiner`
 * was written by that joiner before it ran t on its own stack (JOIN-J3), on this thread
 * of control. */
static weft_task *running_host(weft_task *t) {
    return t->runs_inline ? (weft_task *)weft__atomic_load_relaxed(&t->joiner) : NULL;
}

bool weft__cancel_pending_chain(weft_task *t) {
    for (; t; t = running_host(t)) {
        if (t->cancel_shield)
            return false;
        /* Relaxed: as weft__cancel_pending. */
        if (weft__atomic_load_relaxed(&t->state) & WEFT__TASK_CANCELLED)
            return true;
    }
    return false;
}

void weft__cancel_give_hint(weft_task *child) {
    /* (CANCEL-I2) The child has not run: nothing to schedule. */
    weft__fifo none;
    weft__fifo_init(&none);
    mark_and_wake(child, 0, WEFT__TASK_HOST_CANCELLED, &none);
}

void weft__cancel_task(weft_task *t, AO_t generation, weft__fifo *to_schedule) {
    /* (CANCEL-1) */
    if (!mark_and_wake(t, generation, WEFT__TASK_CANCELLED, to_schedule))
        return; /* finished (no effect), reused, or cancelled already (woken then) */
    WEFT__CHAOS_POINT(t->runtime->chaos_seed, "CANCEL-1");
    hint_inline_children(t, generation, to_schedule);
}

WEFT_API int weft_cancel(weft_task *t) {
    if (!t)
        return -EINVAL;
    /* First, before anything else: the generation this handle names (task.h). */
    AO_t s = weft__atomic_load_relaxed(&t->state);
    if (s & WEFT__TASK_RELEASED)
        return -EINVAL; /* detached: the handle is not the caller's any more */
    weft_runtime *rt = t->runtime;
    /* A foreign call (RT-D4): the task may finish and its runtime go away between our
     * scheduling it and the wake-up of a worker. */
    bool foreign = weft__runtime_enter_if_foreign(rt);
    weft__fifo to_schedule;
    weft__fifo_init(&to_schedule);
    weft__cancel_task(t, s & WEFT__TASK_GENERATION_MASK, &to_schedule);
    weft__cancel_schedule(&to_schedule);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return 0;
}

WEFT_API int weft_cancelled(void) {
    /* The task and, while it runs inline, its joiners (see the top of the file). Relaxed:
     * as weft__cancel_pending. */
    for (weft_task *t = weft__worker_current_task(NULL); t; t = running_host(t))
        if (weft__atomic_load_relaxed(&t->state) & WEFT__TASK_CANCELLED)
            return 1;
    return 0;
}

WEFT_API int weft_cancel_shield(int on) {
    weft_task *self = weft__worker_current_task(NULL);
    if (!self)
        return -EPERM;
    int previous = self->cancel_shield;
    self->cancel_shield = on != 0;
    return previous;
}
