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
 * `cancel_host` is J: weft__cancel_pending walks the chain; C's mark is not set, so C's
 * own cancellation state is untouched once it has returned). The canceller must then
 * wake C, which is the one parked, and finds it through J's `inline_child`; it must not
 * touch C after J has freed it:
 *
 *   joiner J (worker.c, weft__worker_join_inline)  canceller of J
 *   (CANCEL-I1) store inline_child := C, before    (CANCEL-1) on J, as above.
 *        INLINE-I1's pop of C, whose full RMW      (CANCEL-3) cancel_pins += 1 (full).
 *        orders the store before C's first         (CANCEL-4) load inline_child; if C:
 *        check of J's mark (CANCEL-2, in C).            wake C (WAKE-W1/W2), and on down
 *   (CANCEL-I3) C returned (or J declined to run        the chain if C runs a child
 *        it): inline_child := 0, then a full            inline; then cancel_pins -= 1
 *        barrier (C's completion CAS, or an RMW         (release).
 *        on cancel_pins when declining).
 *   (CANCEL-I4) wait until cancel_pins is 0
 *        (acquire); only then may C be freed.
 *
 * CANCEL-I1 then C's check against CANCEL-1 then CANCEL-4 is a store-then-load on each
 * side with a full barrier between (the pop's RMW; CANCEL-1's CAS and CANCEL-3's RMW): at
 * least one side sees the other, so either C's check sees J's mark or the canceller finds
 * C and wakes it (C then checks again: CANCEL-1 came before the wake). CANCEL-I3/I4
 * against CANCEL-3/4 likewise: if J's load in CANCEL-I4 found no pin, a canceller pinning
 * later reads inline_child after J cleared it; if it found one, J waits for the unpin,
 * which comes after the canceller's last touch of C. A wake of a C that J declined to run
 * inline after all is a spurious wake-up, which every wait loop tolerates.
 *
 * Rejected: marking C cancelled (CANCEL-1 on C) instead of the chain walk. C might be
 * marked although J only considered running it inline (the window between CANCEL-I1 and
 * J's decision), and would then stay cancelled when run on a stack of its own: avoiding
 * that needs a full barrier after J decides, on every inline join (measured as the cost
 * of the whole join on fib: about 100 cycles). Rejected too: no inline joins for a task
 * that may be cancelled (every task may), or a join that ends only when C does.
 */
#include "sched/cancel.h"

#include "base/chaos.h"
#include "sched/runtime.h"

#include <errno.h>

int weft__cancel_point(void) {
    weft_task *self = weft__worker_current_task(NULL);
    return self && weft__cancel_pending(self) ? -ECANCELED : 0;
}

/* Notes that `queued` has a task we queued and must wake a worker of (as
 * weft__wait_deliver does; wait.h). The caller keeps `queued` alive until here. */
static void note_queued(weft__wake_batch *batch, weft_runtime *queued) {
    weft__worker *w = weft__worker_current();
    bool ours = w && w->runtime == queued;
    if (batch->runtime == queued)
        return;
    if (batch->runtime == NULL) {
        batch->runtime = queued;
        batch->pinned = !ours;
        if (!ours)
            weft__runtime_foreign_enter(queued);
        return;
    }
    /* A second runtime in one batch (rare): this one at once. */
    weft__worker_notify(queued);
}

/* (CANCEL-4) Wakes the task `host` runs inline now, if any, and on down the chain. The
 * caller holds a pin on `host` (CANCEL-3), which keeps the child alive. */
static void wake_inline_children(weft_task *host, weft__wake_batch *batch) {
    /* Acquire: the child's fields as the joiner published them (CANCEL-I1). */
    weft_task *child = (weft_task *)weft__atomic_load_acquire(&host->inline_child);
    if (!child)
        return;
    WEFT__CHAOS_POINT(host->runtime->chaos_seed, "CANCEL-4");
    if (weft__task_wake(child)) { /* it had parked: ours to schedule */
        weft__worker_schedule_quiet(child->runtime, child);
        note_queued(batch, child->runtime);
    }
    weft__atomic_fetch_add_full(&child->cancel_pins, 1); /* (CANCEL-3) on the child */
    wake_inline_children(child, batch);
    weft__atomic_fetch_add_release(&child->cancel_pins, (AO_t)-1);
}

void weft__cancel_task(weft_task *t, AO_t generation, weft__wake_batch *batch) {
    uint64_t chaos = t->runtime->chaos_seed; /* immutable while t is alive */
    (void)chaos;
    /* (CANCEL-1) Relaxed: a first guess for the CAS. */
    AO_t s = weft__atomic_load_relaxed(&t->state);
    for (;;) {
        if (generation && (s & WEFT__TASK_GENERATION_MASK) != generation)
            return; /* consumed and reused: not the task the caller meant */
        if (s & (WEFT__TASK_COMPLETE | WEFT__TASK_CANCELLED))
            return; /* finished (no effect), or cancelled already (woken then) */
        AO_t next = s | WEFT__TASK_CANCELLED;
        if (s & WEFT__TASK_PARKED)
            next &= ~(AO_t)WEFT__TASK_PARKED;
        else
            next |= WEFT__TASK_NOTIFIED;
        /* Full: pairs with WAKE-P1/P2 on the same word, as weft__task_wake's CAS. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, next);
        if (seen == s)
            break;
        s = seen;
    }
    WEFT__CHAOS_POINT(chaos, "CANCEL-1");
    if (s & WEFT__TASK_PARKED) { /* we cleared PARKED: it is ours to schedule */
        weft__worker_schedule_quiet(t->runtime, t);
        note_queued(batch, t->runtime);
    }
    /* (CANCEL-3) Full: pairs with CANCEL-I4's load (store-then-load on both sides). */
    weft__atomic_fetch_add_full(&t->cancel_pins, 1);
    WEFT__CHAOS_POINT(chaos, "CANCEL-3");
    wake_inline_children(t, batch);
    /* Release: our touches of the children come before J's CANCEL-I4 sees the pin gone. */
    weft__atomic_fetch_add_release(&t->cancel_pins, (AO_t)-1);
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
    weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
    weft__cancel_task(t, s & WEFT__TASK_GENERATION_MASK, &batch);
    weft__wake_batch_finish(&batch);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return 0;
}

WEFT_API int weft_cancelled(void) {
    /* The task and, while it runs inline, its joiners (see the top of the file). Relaxed:
     * as weft__cancel_pending. */
    for (weft_task *t = weft__worker_current_task(NULL); t; t = t->cancel_host)
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
