/*
 * timer.c: sleeps and deadline waits. Owns the timer objects and each worker's use of
 * its wheel; the wheel itself (timer_wheel.c) is a pure data structure.
 *
 * Where timers live. A task that waits until a deadline arms a timer on the wheel of
 * the worker it runs on: no lock and no shared structure on the sleep path. The owner
 * fires due timers between tasks (weft__timers_run_due) and, when it has nothing to run,
 * parks in the kernel no later than its earliest deadline (worker.c), so a parked
 * worker fires its timers on time. A worker busy in one long task fires them late: the
 * price of per-worker wheels, which Go pays too unless another P steals the timers.
 *
 * Each arming is one object from the owner's pool: a sleep or a deadline wait wakes its
 * task; a timer handle's arming runs the handle's callback (timer_handle.c, which keeps
 * a handle's armings apart across re-arms and cancels).
 *
 * A timer's state word, and who may touch the object when:
 *
 *   ARMED --(owner fires: CAS)--> FIRING --(owner, after the wake)--> DONE
 *   ARMED --(task cancels: CAS)--> CANCELLED
 *
 * - FIRING/DONE: between the two the owner wakes the task (only queueing it: the system
 *   call that wakes an idle worker comes after DONE); DONE is its last touch. The task,
 *   once it sees FIRING or DONE, waits for DONE (a few instructions), then frees the
 *   object. A handle's arming never reaches DONE: the owner frees it after FIRING.
 * - CANCELLED: the task's CAS won, so the owner will never wake it. If the task runs on
 *   the owner, it unlinks and frees the object at once. If not (it was woken by
 *   something else and resumed on another worker), it posts the object on the owner's
 *   `cancelled` list and forgets it; the owner unlinks and frees it at its next round.
 *   The task never waits for another worker, however busy.
 *
 * A deadline wait has two wakers (the event and the timer). Whichever is second may
 * still deliver its wake after the task resumed: that leaves NOTIFIED set on the task,
 * a spurious wake-up for its next park, which every wait loop tolerates. It can never
 * touch freed memory: the timer side is waited out (DONE) or revoked (CANCELLED) before
 * the task goes on, and the join side likewise (WAKE_DONE, task.c).
 */
#include "time/timer.h"

#include "sched/worker.h"

#include <errno.h>
#include <time.h>

enum {
    WEFT__TIMER_ARMED = 0,
    WEFT__TIMER_FIRING = 1,
    WEFT__TIMER_DONE = 2,
    WEFT__TIMER_CANCELLED = 3,
};

_Static_assert(offsetof(weft__timer, link) == 0, "pool objects start with their link");

WEFT_API uint64_t weft_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void weft__timers_init(weft__worker *w) {
    weft__timer_wheel_init(&w->wheel, weft_now());
    weft__pool_init(&w->timers, sizeof(weft__timer), NULL);
    weft__atomic_store_relaxed(&w->timers_cancelled, 0);
    w->timers_armed = 0;
}

void weft__timers_destroy(weft__worker *w) {
    weft__pool_destroy(&w->timers); /* armed or posted timers go with their chunks */
}

static weft__pool *caller_timer_pool(void) {
    weft__worker *w = weft__worker_current();
    return w ? &w->timers : NULL;
}

/* Takes the timers other threads cancelled, unlinks and frees them. */
static void collect_cancelled(weft__worker *w) {
    /* Acquire: pairs with the release CAS of weft__timer_revoke's push. */
    AO_t head = weft__atomic_load_acquire(&w->timers_cancelled);
    if (!head)
        return;
    while (head) {
        AO_t seen = weft__atomic_cas_acquire(&w->timers_cancelled, head, 0);
        if (seen == head)
            break;
        head = seen;
    }
    weft__link *l = (weft__link *)head;
    while (l) {
        weft__link *next = l->next;
        weft__timer *tm = (weft__timer *)l;
        if (weft__timer_wheel_cancel(&w->wheel, &tm->entry))
            w->timers_armed--;
        weft__pool_free(&w->timers, tm, &w->timers);
        l = next;
    }
}

void weft__timers_run_due(weft__worker *w) {
    /* Acquire: pairs with destroy's release store. Once the workers are told to stop,
     * no timer fires any more (weft.h: none fires after destroy returns). */
    if (weft__atomic_load_acquire(&w->runtime->stopping))
        return;
    collect_cancelled(w);
    if (w->timers_armed == 0)
        return;
    uint64_t now = weft_now();
    if (now < weft__timer_wheel_next_deadline(&w->wheel))
        return;
    weft__timer_list expired;
    weft__timer_list_init(&expired);
    weft__timer_wheel_advance(&w->wheel, now, &expired);
    weft__timer_entry *e;
    bool scheduled = false;
    weft__fifo fired_handles;
    weft__fifo_init(&fired_handles);
    while ((e = weft__timer_list_pop(&expired))) {
        weft__timer *tm = weft__container_of(e, weft__timer, entry);
        w->timers_armed--;
        WEFT__CHAOS_POINT(w->runtime->chaos_seed, "TIMER-T1");
        /* (TIMER-T1) Full: claims the timer against a cancelling task (same word). */
        if (weft__atomic_cas_full(&tm->state, WEFT__TIMER_ARMED, WEFT__TIMER_FIRING) !=
            WEFT__TIMER_ARMED)
            continue;     /* cancelled: it is on our cancelled list, freed there */
        WEFT__CHAOS_POINT(w->runtime->chaos_seed, "TIMER-T2");
        if (tm->handle) { /* a timer handle: the callback runs after this loop */
            weft__fifo_push(&fired_handles, &tm->link); /* the link is ours once FIRING */
            continue;
        }
        weft_task *task = tm->task;
        if (weft__task_wake(task)) {
            weft__worker_schedule_quiet(task->runtime, task);
            scheduled = true;
        }
        WEFT__CHAOS_POINT(w->runtime->chaos_seed, "TIMER-T3");
        /* (TIMER-T3) Release: our last touch; pairs with the task's acquire wait for
         * DONE. */
        weft__atomic_store_release(&tm->state, WEFT__TIMER_DONE);
    }
    /* One wake-up of an idle worker for the batch, after every last touch: a task
     * stolen at once never waits for DONE through this system call. */
    if (scheduled)
        weft__worker_notify(w->runtime);
    /* Callbacks last: woken tasks are already runnable elsewhere while they run. A
     * callback may arm and cancel timers, this wheel's included. */
    weft__link *l;
    while ((l = weft__fifo_pop(&fired_handles)))
        weft__timer_handle_fire(w, (weft__timer *)l);
}

bool weft__timers_due(weft__worker *w) {
    return w->timers_armed && weft_now() >= weft__timer_wheel_next_deadline(&w->wheel);
}

uint64_t weft__timers_next_deadline(weft__worker *w) {
    collect_cancelled(w);
    return w->timers_armed ? weft__timer_wheel_next_deadline(&w->wheel) : UINT64_MAX;
}

static weft__timer *arm(weft__worker *w, weft_task *task, weft_timer *handle,
                        uint64_t deadline_ns) {
    weft__timer *tm = weft__pool_alloc(&w->timers);
    if (!tm) {
        errno = ENOMEM;
        return NULL;
    }
    /* Relaxed: the object is not shared yet; the wheel insert below is owner-only, and
     * other threads reach the object only through a later release (a task parking, a
     * handle's unlock). */
    weft__atomic_store_relaxed(&tm->state, WEFT__TIMER_ARMED);
    tm->owner = w;
    tm->task = task;
    tm->handle = handle;
    weft__timer_entry_init(&tm->entry);
    if (weft__timer_wheel_insert(&w->wheel, &tm->entry, deadline_ns) != 0) {
        weft__pool_free(&w->timers, tm, &w->timers); /* UINT64_MAX: callers never pass it */
        errno = EINVAL;
        return NULL;
    }
    w->timers_armed++;
    return tm;
}

weft__timer *weft__timer_arm_current(uint64_t deadline_ns) {
    weft__worker *w = weft__worker_current();
    return arm(w, w->current, NULL, deadline_ns);
}

weft__timer *weft__timer_arm_handle(weft__worker *w, weft_timer *handle, uint64_t deadline_ns) {
    return arm(w, NULL, handle, deadline_ns);
}

bool weft__timer_fired(weft__timer *tm) {
    /* Acquire: pairs with the owner's CAS to FIRING. */
    return weft__atomic_load_acquire(&tm->state) != WEFT__TIMER_ARMED;
}

bool weft__timer_revoke(weft__timer *tm) {
    WEFT__CHAOS_POINT(tm->owner->runtime->chaos_seed, "TIMER-R1");
    /* (TIMER-R1) Full: pairs with the owner's CAS to FIRING (TIMER-T1); exactly one of
     * us wins. */
    if (weft__atomic_cas_full(&tm->state, WEFT__TIMER_ARMED, WEFT__TIMER_CANCELLED) !=
        WEFT__TIMER_ARMED)
        return false;
    weft__worker *w = weft__worker_current();
    weft__worker *owner = tm->owner;
    if (owner == w) {
        if (weft__timer_wheel_cancel(&w->wheel, &tm->entry))
            w->timers_armed--;
        weft__pool_free(&w->timers, tm, &w->timers);
        return true;
    }
    /* Treiber push onto the owner's list. Release: the owner's acquire take-all sees the
     * object as we left it. After the CAS the object is the owner's: not touched again. */
    AO_t head = weft__atomic_load_relaxed(&owner->timers_cancelled);
    for (;;) {
        tm->link.next = (weft__link *)head;
        AO_t seen = weft__atomic_cas_release(&owner->timers_cancelled, head, (AO_t)tm);
        if (seen == head)
            return true;
        head = seen;
    }
}

void weft__timer_release(weft__timer *tm) {
    if (weft__timer_revoke(tm))
        return;
    /* Fired: wait out the owner's last touch (TIMER-T3; no system call before it), then
     * the object is ours to free. */
    unsigned rounds = 0;
    while (weft__atomic_load_acquire(&tm->state) != WEFT__TIMER_DONE)
        weft__spin_wait(&rounds);
    weft__pool_free(&tm->owner->timers, tm, caller_timer_pool());
}

static int sleep_thread_until(uint64_t deadline_ns) {
    struct timespec ts = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return 0;
}

WEFT_API int weft_sleep_until(uint64_t deadline_ns) {
    if (deadline_ns == WEFT_FOREVER)
        return -EINVAL;
    weft__worker *w = weft__worker_current();
    if (!w || !w->current)
        return sleep_thread_until(deadline_ns);
    if (deadline_ns <= weft_now())
        return 0;
    weft__timer *tm = weft__timer_arm_current(deadline_ns);
    if (!tm)
        return -ENOMEM;
    while (!weft__timer_fired(tm))
        weft__worker_suspend_current(WEFT__SWITCH_PARK);
    weft__timer_release(tm);
    return 0;
}

WEFT_API int weft_sleep_ms(uint64_t ms) {
    uint64_t now = weft_now();
    if (ms > (WEFT_FOREVER - now) / 1000000u)
        return -EINVAL; /* past the clock's range: a sleep needs a deadline */
    return weft_sleep_until(now + ms * 1000000u);
}
