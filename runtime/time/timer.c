/*
 * timer.c: the time driver (sched/driver.h), sleeps and deadline waits (sched/
 * deadline.h). Owns the timer objects and each worker's time driver; the wheel itself
 * (timer_wheel.c) is a pure data structure.
 *
 * Where timers live. A task that waits until a deadline arms a timer on the wheel of
 * the worker it runs on: no lock and no shared structure on the sleep path. The worker
 * calls its driver's fire_due between tasks and, when it has nothing to run, parks on
 * the driver no later than the earliest deadline (worker.c), so a parked worker fires
 * its timers on time. Fired timers wake their tasks through the scheduler's one wake
 * function (weft__worker_wake_quiet). A worker busy in one long task fires them late: the
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
 * the task goes on, and the join side likewise (WAKE_DONE, join.c).
 */
#include "time/timer.h"

#include "base/futex.h"
#include "base/memory.h"
#include "sched/cancel.h"
#include "sched/runtime.h"

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

/* The time driver of the calling thread's worker, or NULL. */
static weft__time_driver *current_driver(void) {
    weft__worker *w = weft__worker_current();
    return w ? w->time : NULL;
}

static weft__pool *caller_timer_pool(void) {
    weft__time_driver *td = current_driver();
    return td ? &td->timers : NULL;
}

/* Takes the timers other threads cancelled, unlinks and frees them. */
static void collect_cancelled(weft__time_driver *td) {
    /* Acquire: pairs with the release CAS of weft__timer_revoke's push. */
    AO_t head = weft__atomic_load_acquire(&td->cancelled);
    if (!head)
        return;
    while (head) {
        AO_t seen = weft__atomic_cas_acquire(&td->cancelled, head, 0);
        if (seen == head)
            break;
        head = seen;
    }
    weft__link *l = (weft__link *)head;
    while (l) {
        weft__link *next = l->next;
        weft__timer *tm = (weft__timer *)l;
        if (weft__timer_wheel_cancel(&td->wheel, &tm->entry))
            td->timers_armed--;
        weft__pool_free(&td->timers, tm, &td->timers);
        l = next;
    }
}

/* (driver op fire_due) Unlinks timers cancelled by other threads, fires every due timer
 * (waking tasks, running handles' callbacks). Cheap when there is nothing to do. */
static void fire_due(weft__driver *d) {
    weft__time_driver *td = (weft__time_driver *)d;
    weft_runtime *rt = td->worker->runtime;
    /* Acquire: pairs with destroy's release store. Once the workers are told to stop,
     * no timer fires any more (weft.h: none fires after destroy returns). */
    if (weft__atomic_load_acquire(&rt->stopping))
        return;
    collect_cancelled(td);
    if (td->timers_armed == 0)
        return;
    uint64_t now = weft_now();
    if (now < weft__timer_wheel_next_deadline(&td->wheel))
        return;
    weft__timer_list expired;
    weft__timer_list_init(&expired);
    weft__timer_wheel_advance(&td->wheel, now, &expired);
    weft__timer_entry *e;
    weft_runtime *woken = NULL; /* the runtime of the tasks we queued: always rt */
    uint64_t fired = 0;
    weft__fifo fired_handles;
    weft__fifo_init(&fired_handles);
    while ((e = weft__timer_list_pop(&expired))) {
        weft__timer *tm = weft__container_of(e, weft__timer, entry);
        td->timers_armed--;
        WEFT__CHAOS_POINT(rt->chaos_seed, "TIMER-T1");
        /* (TIMER-T1) Full: claims the timer against a cancelling task (same word). */
        if (weft__atomic_cas_full(&tm->state, WEFT__TIMER_ARMED, WEFT__TIMER_FIRING) !=
            WEFT__TIMER_ARMED)
            continue; /* cancelled: it is on our cancelled list, freed there */
        WEFT__CHAOS_POINT(rt->chaos_seed, "TIMER-T2");
        fired++;
        if (tm->handle) { /* a timer handle: the callback runs after this loop */
            weft__fifo_push(&fired_handles, &tm->link); /* the link is ours once FIRING */
            continue;
        }
        weft_runtime *queued = weft__worker_wake_quiet(tm->task);
        if (queued)
            woken = queued;
        WEFT__CHAOS_POINT(rt->chaos_seed, "TIMER-T3");
        /* (TIMER-T3) Release: our last touch; pairs with the task's acquire wait for
         * DONE. */
        weft__atomic_store_release(&tm->state, WEFT__TIMER_DONE);
    }
    if (fired) {
        weft__metric_add(&td->fired_total, fired);
        weft__worker_trace(td->worker, WEFT__TRACE_TIMERS, 0, fired, 0);
    }
    /* One wake-up of an idle worker for the batch, after every last touch: a task
     * stolen at once never waits for DONE through this system call. */
    if (woken)
        weft__worker_notify(woken);
    /* Callbacks last: woken tasks are already runnable elsewhere while they run. A
     * callback may arm and cancel timers, this wheel's included. */
    weft__link *l;
    while ((l = weft__fifo_pop(&fired_handles)))
        weft__timer_handle_fire(td, (weft__timer *)l);
}

/* (driver op has_due) */
static bool has_due(weft__driver *d) {
    weft__time_driver *td = (weft__time_driver *)d;
    return td->timers_armed && weft_now() >= weft__timer_wheel_next_deadline(&td->wheel);
}

/* (driver op next_deadline) */
static uint64_t next_deadline(weft__driver *d) {
    weft__time_driver *td = (weft__time_driver *)d;
    collect_cancelled(td);
    return td->timers_armed ? weft__timer_wheel_next_deadline(&td->wheel) : UINT64_MAX;
}

/* (driver op park) The bottom of every driver stack: a futex sleep on the worker's word,
 * no later than the deadline. */
static void park(weft__driver *d, weft__atomic_u32 *wake_word, uint64_t deadline_ns) {
    (void)d;
    weft__futex_wait_until(wake_word, 0, deadline_ns);
}

/* (driver op unpark) */
static void unpark(weft__driver *d, weft__atomic_u32 *wake_word) {
    (void)d;
    weft__futex_wake(wake_word, 1);
}

/* (driver op destroy) Armed or posted timers go with the pool's chunks. */
static void destroy(weft__driver *d) {
    weft__time_driver *td = (weft__time_driver *)d;
    weft__pool_destroy(&td->timers);
    weft__free(td, sizeof(*td));
}

static const weft__driver_ops time_driver_ops = {
    .fire_due = fire_due,
    .poll = fire_due, /* nothing to look at beyond the wheel */
    .has_due = has_due,
    .next_deadline = next_deadline,
    .park = park,
    .unpark = unpark,
    .destroy = destroy,
};

weft__time_driver *weft__time_driver_create(weft__worker *w) {
    weft__time_driver *td = weft__alloc(sizeof(*td), 64);
    if (!td)
        return NULL;
    td->driver.ops = &time_driver_ops;
    td->worker = w;
    weft__timer_wheel_init(&td->wheel, weft_now());
    weft__pool_init(&td->timers, sizeof(weft__timer), NULL);
    td->timers_armed = 0;
    weft__atomic_store_relaxed(&td->cancelled, 0); /* shared only once the worker runs */
    return td;
}

static weft__timer *arm(weft__time_driver *td, weft_task *task, weft_timer *handle,
                        uint64_t deadline_ns) {
    weft__timer *tm = weft__pool_alloc(&td->timers);
    if (!tm) {
        errno = ENOMEM;
        return NULL;
    }
    /* Relaxed: the object is not shared yet; the wheel insert below is owner-only, and
     * other threads reach the object only through a later release (a task parking, a
     * handle's unlock). */
    weft__atomic_store_relaxed(&tm->state, WEFT__TIMER_ARMED);
    tm->owner = td;
    tm->task = task;
    tm->handle = handle;
    weft__timer_entry_init(&tm->entry);
    if (weft__timer_wheel_insert(&td->wheel, &tm->entry, deadline_ns) != 0) {
        weft__pool_free(&td->timers, tm, &td->timers); /* UINT64_MAX: callers never pass it */
        errno = EINVAL;
        return NULL;
    }
    td->timers_armed++;
    weft__metric_add(&td->armed_total, 1);
    return tm;
}

weft__timer *weft__timer_arm_current(uint64_t deadline_ns) {
    weft__worker *w = weft__worker_current();
    return arm(w->time, w->current, NULL, deadline_ns);
}

weft__timer *weft__timer_arm_handle(weft__time_driver *td, weft_timer *handle,
                                    uint64_t deadline_ns) {
    return arm(td, NULL, handle, deadline_ns);
}

bool weft__timer_fired(weft__timer *tm) {
    /* Acquire: pairs with the owner's CAS to FIRING. */
    return weft__atomic_load_acquire(&tm->state) != WEFT__TIMER_ARMED;
}

bool weft__timer_revoke(weft__timer *tm) {
    WEFT__CHAOS_POINT(tm->owner->worker->runtime->chaos_seed, "TIMER-R1");
    /* (TIMER-R1) Full: pairs with the owner's CAS to FIRING (TIMER-T1); exactly one of
     * us wins. */
    if (weft__atomic_cas_full(&tm->state, WEFT__TIMER_ARMED, WEFT__TIMER_CANCELLED) !=
        WEFT__TIMER_ARMED)
        return false;
    weft__time_driver *owner = tm->owner;
    if (owner == current_driver()) {
        if (weft__timer_wheel_cancel(&owner->wheel, &tm->entry))
            owner->timers_armed--;
        weft__pool_free(&owner->timers, tm, &owner->timers);
        return true;
    }
    /* Treiber push onto the owner's list. Release: the owner's acquire take-all sees the
     * object as we left it. After the CAS the object is the owner's: not touched again. */
    AO_t head = weft__atomic_load_relaxed(&owner->cancelled);
    for (;;) {
        tm->link.next = (weft__link *)head;
        AO_t seen = weft__atomic_cas_release(&owner->cancelled, head, (AO_t)tm);
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
    weft_task *self = w->current;
    if (weft__cancel_pending(self))
        return -ECANCELED; /* a cancellation point (sched/cancel.c) */
    if (deadline_ns <= weft_now())
        return 0;
    weft__timer *tm = weft__timer_arm_current(deadline_ns);
    if (!tm)
        return -ENOMEM;
    int rc = 0;
    weft__task_note_wait(self, WEFT__WAITING_SLEEP, deadline_ns);
    while (!weft__timer_fired(tm)) {
        /* (CANCEL-2) Woken by a cancel: the timer is revoked below. */
        if (weft__cancel_pending(self)) {
            rc = -ECANCELED;
            break;
        }
        weft__worker_suspend_current(WEFT__SWITCH_PARK);
    }
    weft__task_end_wait(self);
    weft__timer_release(tm);
    return rc;
}

WEFT_API int weft_sleep_ms(uint64_t ms) {
    uint64_t now = weft_now();
    if (ms > (WEFT_FOREVER - now) / 1000000u)
        return -EINVAL; /* past the clock's range: a sleep needs a deadline */
    return weft_sleep_until(now + ms * 1000000u);
}
