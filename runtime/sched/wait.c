/*
 * wait.c: the one waiter protocol (wait.h): a wait for one event, with a deadline, that
 * is woken exactly once and whose stack frame no waker touches after it has left.
 *
 *   waiter (a task, or a plain thread)          waker (delivers the event; any thread)
 *   (WAIT-B1) fill the weft__wait (task,        (WAIT-D0) take the waiter out of the
 *        done = WAITING, tag); publish it in         structure (the structure's own
 *        the structure (the structure's              atomic step: an fd slot's CAS, a
 *        protocol: an fd slot's CAS, a               queue's lock). Only the waker that
 *        queue's lock).                              took it goes on.
 *   (WAIT-B2) park (a task: arm a timer for     (WAIT-D1) write `result`; done :=
 *        the deadline, switch out; a thread:         DELIVERED (release).
 *        futex-wait on `done` until the         (WAIT-D2) queue the task (the scheduler's
 *        deadline) until `done` is not               wake function, WAKE-*) without
 *        WAITING or the deadline passed.             waking a worker; if its runtime is
 *        Spurious wake-ups loop.                     not the caller's, pin it (RT-D4).
 *   (WAIT-B3) delivered: spin until DONE (the   (WAIT-D3) done := DONE (release): the
 *        waker is a few instructions from it,        last touch of the waiter.
 *        no system call between), take          (WAIT-D4) wake an idle worker (once per
 *        `result`. Else the deadline: withdraw       batch; a thread waiter: its futex);
 *        from the structure (its CAS or lock):       unpin.
 *        success: -ETIMEDOUT, nobody can reach
 *        us; failure: a waker took us in
 *        WAIT-D0: as if delivered (the event won).
 *
 * DELIVERED comes before the wake-up (WAIT-D1 before WAIT-D2): the task may be run at
 * once by another worker, and must see that its event came rather than park again; DONE
 * comes after it, and only then may the task's frame go. A thread waiter has no queue:
 * D1..D3 are one store of DONE.
 *
 * WAIT-D0 and WAIT-B3's withdraw are one atomic step on the structure, so exactly one
 * of "a waker delivers" and "the waiter withdraws" happens. A waker never reads the
 * waiter after WAIT-D3, and the waiter never leaves (its frame ends) before WAIT-D3 or a
 * successful withdraw: so no waker touches a dead frame. A waker's futex wake in WAIT-D4
 * names the address only (FUTEX_WAKE reads no memory), as JOIN-C4's does.
 *
 * Timers and cancellation (cancel.c) do not deliver: they only wake the task (a spurious
 * wake-up as far as this protocol goes), and the task withdraws itself. So there is one
 * deliverer per event kind, and a deadline, a cancel and the event race through WAIT-D0
 * against WAIT-B3 alone. What a late wake-up leaves behind (NOTIFIED on the task, after
 * it resumed for another reason) is a spurious wake-up of its next park, which every
 * wait loop in weft tolerates (timer.c says the same of deadline joins).
 *
 * Rejected: a claim word in the waiter itself (CAS waiting -> claimed) that wakers and
 * the timer race on. A waker must read the waiter's address from the structure before it
 * can CAS the claim word, and by then the waiter may have timed out, withdrawn and left:
 * the CAS would write into a dead stack frame. Taking the waiter out of the structure is
 * the claim.
 */
#include "sched/wait.h"

#include "base/chaos.h"
#include "sched/cancel.h"
#include "base/futex.h"
#include "sched/deadline.h"
#include "sched/runtime.h"

#include <errno.h>

/* `done`'s values: WAITING -> DELIVERED (WAIT-D1: the event is decided, `result` final) ->
 * DONE (WAIT-D3: the waker's last touch). A thread waiter goes to DONE at once. */
enum { WEFT__WAIT_WAITING = 0, WEFT__WAIT_DELIVERED = 1, WEFT__WAIT_DONE = 2 };

void weft__wait_init(weft__wait *wait) {
    wait->task = weft__worker_current_task(NULL);
    /* Relaxed: published later by the structure's release step (WAIT-B1). */
    weft__atomic_u32_store_release(&wait->done, WEFT__WAIT_WAITING);
    wait->result = 0;
    wait->tag = 0;
    wait->thread_word = NULL;
    wait->cancellable = true;
    wait->kind = WEFT__WAITING_OTHER;
    wait->object = 0;
}

/* (WAIT-B3) The waker decided: wait out its last touch (a few instructions, no system
 * call before it). */
static void await_done(weft__wait *wait) {
    unsigned rounds = 0;
    /* Acquire: pairs with WAIT-D3 (and WAIT-D1's release of `result`). */
    while (weft__atomic_u32_load_acquire(&wait->done) != WEFT__WAIT_DONE)
        weft__spin_wait(&rounds);
}

static bool any_delivered(weft__wait *const *waits, size_t n, unsigned *state) {
    for (size_t i = 0; i < n; i++)
        /* Acquire: pairs with WAIT-D1 (a task) or WAIT-D3 (a thread: DONE at once). */
        if (weft__atomic_u32_load_acquire(&waits[i]->done) >= *state)
            return true;
    return false;
}

/* (WAIT-B3) Settles every wait: those a waker took are awaited to DONE, the rest
 * withdrawn. Returns how many were delivered. */
static int settle(weft__wait *const *waits, size_t n, weft__wait_withdraw_fn withdraw,
                  void *const *structures) {
    int delivered = 0;
    for (size_t i = 0; i < n; i++) {
        /* Acquire: as above. WAITING: still published unless a waker is between
         * WAIT-D0 and WAIT-D1, which the failed withdraw tells us. */
        if (weft__atomic_u32_load_acquire(&waits[i]->done) == WEFT__WAIT_WAITING &&
            withdraw(waits[i], structures[i]))
            continue;
        await_done(waits[i]);
        delivered++;
    }
    return delivered;
}

int weft__wait_block_any(weft__wait *const *waits, size_t n, uint64_t deadline_ns,
                         weft__wait_withdraw_fn withdraw, void *const *structures) {
    int failure = -ETIMEDOUT;
    if (waits[0]->task) {
        weft_task *self = waits[0]->task;
        bool cancellable = waits[0]->cancellable;
        unsigned seen = WEFT__WAIT_DELIVERED;
        weft__timer *tm = NULL;
        bool may_park = deadline_ns == WEFT_FOREVER || weft_now() < deadline_ns;
        if (may_park && deadline_ns != WEFT_FOREVER &&
            !(tm = weft__timer_arm_current(deadline_ns))) {
            failure = -ENOMEM;
            may_park = false;
        }
        /* (WAIT-B2) Park until a waker delivered, the timer fired or (CANCEL-2) the task
         * was cancelled. */
        if (may_park)
            weft__task_note_wait(self, waits[0]->kind, waits[0]->object);
        while (may_park && !any_delivered(waits, n, &seen)) {
            if (tm && weft__timer_fired(tm))
                break;
            if (cancellable && weft__cancel_pending(self)) {
                failure = -ECANCELED;
                break;
            }
            weft__worker_suspend_current(WEFT__SWITCH_PARK);
        }
        weft__task_end_wait(self);
        if (tm)
            weft__timer_release(tm);
    } else {
        /* (WAIT-B2) A plain thread sleeps on the first wait's `done`, or on its own word
         * when it waits on several (thread_word: every delivery bumps it first). */
        unsigned seen = WEFT__WAIT_DONE;
        weft__atomic_u32 *word = waits[0]->thread_word;
        for (;;) {
            unsigned value = word ? weft__atomic_u32_load_acquire(word) : WEFT__WAIT_WAITING;
            if (any_delivered(waits, n, &seen) ||
                (deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns))
                break;
            weft__futex_wait_until(word ? word : &waits[0]->done, value, deadline_ns);
        }
    }
    int delivered = settle(waits, n, withdraw, structures);
    return delivered > 0 ? delivered : failure;
}

int weft__wait_block(weft__wait *wait, uint64_t deadline_ns, weft__wait_withdraw_fn withdraw,
                     void *structure) {
    int rc = weft__wait_block_any(&wait, 1, deadline_ns, withdraw, &structure);
    return rc > 0 ? wait->result : rc;
}

bool weft__wait_delivered(const weft__wait *wait) {
    /* Acquire: pairs with WAIT-D3. */
    return weft__atomic_u32_load_acquire(&wait->done) == WEFT__WAIT_DONE;
}

void weft__wait_deliver(weft__wait *wait, int result, weft__wake_batch *batch) {
    weft_task *task = wait->task;
    wait->result = result;
    if (!task) {
        weft__atomic_u32 *word = wait->thread_word;
        /* (WAIT-D1) Bumped while the thread is sure to be there (`done` not yet set). */
        if (word)
            weft__atomic_u32_fetch_add_full(word, 1);
        /* (WAIT-D3) Release: pairs with the thread's acquire of `done`. */
        weft__atomic_u32_store_release(&wait->done, WEFT__WAIT_DONE);
        /* (WAIT-D4) The address only: see the top of the file. */
        weft__futex_wake(word ? word : &wait->done, 1);
        return;
    }
    /* (WAIT-D1) Release: `result` is published; from here the task, whenever it runs,
     * sees the event (its wait loop checks `done` before it parks again). Set before the
     * wake-up below: the task may run at once, on another worker, and must not park
     * again as if nothing had happened. */
    weft__atomic_u32_store_release(&wait->done, WEFT__WAIT_DELIVERED);
    WEFT__CHAOS_POINT(task->runtime->chaos_seed, "WAIT-D1");
    /* (WAIT-D2) Queue it if it had parked (else it is running or about to park, and sees
     * DELIVERED before it sleeps). */
    weft_runtime *queued = weft__worker_wake_quiet(task);
    if (queued) {
        /* Once DONE is set the task may finish and its runtime be destroyed before our
         * wake-up of an idle worker: a runtime we are not a worker of is pinned as a
         * foreign call (RT-D4) until then. */
        weft__worker *w = weft__worker_current();
        bool ours = w && w->runtime == queued;
        if (batch->runtime == NULL) {
            batch->runtime = queued;
            batch->pinned = !ours;
            if (!ours)
                weft__runtime_foreign_enter(queued);
        } else if (batch->runtime != queued) {
            /* A second runtime in one batch (rare): this one on its own. */
            if (!ours)
                weft__runtime_foreign_enter(queued);
            WEFT__CHAOS_POINT(task->runtime->chaos_seed, "WAIT-D2");
            weft__atomic_u32_store_release(&wait->done, WEFT__WAIT_DONE); /* (WAIT-D3) */
            weft__worker_notify(queued);                                  /* (WAIT-D4) */
            if (!ours)
                weft__runtime_foreign_leave(queued);
            return;
        }
    }
    WEFT__CHAOS_POINT(batch->runtime ? batch->runtime->chaos_seed : 0, "WAIT-D2");
    /* (WAIT-D3) Release: the last touch of the waiter; pairs with await_done's acquire. */
    weft__atomic_u32_store_release(&wait->done, WEFT__WAIT_DONE);
}

void weft__wake_batch_finish(weft__wake_batch *batch) {
    weft_runtime *rt = batch->runtime;
    if (!rt)
        return;
    WEFT__CHAOS_POINT_LONG(rt->chaos_seed, "WAIT-D3");
    /* (WAIT-D4) */
    weft__worker_notify(rt);
    if (batch->pinned)
        weft__runtime_foreign_leave(rt);
    batch->runtime = NULL;
    batch->pinned = false;
}
