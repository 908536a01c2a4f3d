/*
 * timer.h: the time room: each worker's time driver (a driver, sched/driver.h, that
 * owns a timer wheel, timer_wheel.h, and a pool of timer objects), the timers tasks arm
 * on it (sched/deadline.h), and public timer handles (timer_handle.c). The protocol
 * between a timer's owner and the task it wakes, and cross-worker cancellation, are in
 * timer.c. Includes sched/ headers; sched/ includes nothing of this room.
 */
#ifndef WEFT__TIME_TIMER_H
#define WEFT__TIME_TIMER_H

#include "base/atomic.h"
#include "base/list.h"
#include "base/pool.h"
#include "sched/deadline.h"
#include "sched/driver.h"
#include "sched/worker.h"
#include "time/timer_wheel.h"

#include <stdbool.h>
#include <stdint.h>

#include "weft.h"

/* A worker's time driver. Owner only (the worker's thread, in its scheduler or in a task
 * running on it), but for `cancelled`. */
typedef struct weft__time_driver {
    weft__driver driver;  /* first: the worker parks on it */
    weft__worker *worker; /* immutable */
    weft__timer_wheel wheel;
    weft__pool timers;   /* the timer objects of this wheel */
    size_t timers_armed; /* entries in `wheel` */
    /* Timers of this wheel cancelled from other threads: a LIFO that they push and the
     * owner takes whole (timer.c, TIMER-R1). Shared. */
    weft__atomic_word cancelled;
    /* Statistics (weft_worker_stats): owner writes, anyone reads relaxed. */
    weft__atomic_word armed_total;
    weft__atomic_word fired_total;
} weft__time_driver;

/* One arming of a timer: wakes a task (a sleep, a deadline wait) or runs a timer
 * handle's callback (timer_handle.c). Lives in its owner's wheel while armed. */
struct weft__timer {
    weft__link link;          /* pool link; the owner's cancelled list while posted */
    weft__timer_entry entry;  /* owner only */
    weft__atomic_word state;  /* WEFT__TIMER_*; see timer.c */
    weft__time_driver *owner; /* whose wheel; immutable while armed */
    weft_task *task;          /* woken at the deadline, or NULL for a handle's arming */
    weft_timer *handle;       /* whose callback runs at the deadline, or NULL */
};

/* The time driver of worker w (runtime.c builds one per worker, before the worker's
 * thread starts). NULL on ENOMEM. Destroyed through its driver ops. */
weft__time_driver *weft__time_driver_create(weft__worker *w);

/* A timer on td's wheel (td is the calling thread's worker's) that runs handle's
 * callback at `deadline_ns` (< UINT64_MAX). NULL with errno ENOMEM. */
weft__timer *weft__timer_arm_handle(weft__time_driver *td, weft_timer *handle,
                                    uint64_t deadline_ns);
/* Stops a timer that has not fired, from any thread: true if it was still armed (it
 * will never fire, and the object is disposed of: freed here or by its owner). False if
 * its owner has claimed it to fire: the owner then finishes with it. */
bool weft__timer_revoke(weft__timer *tm);

/* timer_handle.c: the owner's side of a handle's arming, after it claimed it (FIRING):
 * runs the callback unless the arming was cancelled or replaced meanwhile, and frees the
 * object. */
void weft__timer_handle_fire(weft__time_driver *td, weft__timer *tm);

/* The runtime's list of live timer handles (timer_handle.c): created with the runtime,
 * destroyed after its workers have exited, freeing the handles the application did not
 * destroy. */
typedef struct weft__timer_registry weft__timer_registry;
weft__timer_registry *weft__timer_registry_create(void);
void weft__timer_registry_destroy(weft__timer_registry *registry);

#endif /* WEFT__TIME_TIMER_H */
