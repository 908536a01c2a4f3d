/*
 * timer.h: sleeps and deadlines on top of the workers: each worker owns a timer wheel
 * (timer_wheel.h) and a pool of timer objects. The protocol between a timer's owner
 * and the task it wakes, and cross-worker cancellation, are in timer.c.
 */
#ifndef WEFT__TIME_TIMER_H
#define WEFT__TIME_TIMER_H

#include "base/atomic.h"
#include "base/list.h"
#include "time/timer_wheel.h"

#include <stdbool.h>
#include <stdint.h>

#include "weft.h"

typedef struct weft__worker weft__worker;

/* One arming of a timer: wakes a task (a sleep, a deadline wait) or runs a timer
 * handle's callback (timer_handle.c). Lives in its owner's wheel while armed. */
typedef struct weft__timer {
    weft__link link;         /* pool link; the owner's cancelled list while posted */
    weft__timer_entry entry; /* owner only */
    weft__atomic_word state;  /* WEFT_TIMER_*; see timer.c */
    weft__worker *owner;     /* whose wheel; immutable while armed */
    weft_task *task;         /* woken at the deadline, or NULL for a handle's arming */
    weft_timer *handle;      /* whose callback runs at the deadline, or NULL */
} weft__timer;

/* The worker side (owner only). */
void weft__timers_init(weft__worker *w);
void weft__timers_destroy(weft__worker *w);
/* Unlinks timers cancelled by other threads, fires every due timer (waking tasks,
 * running handles' callbacks). Cheap when there is nothing to do. */
void weft__timers_run_due(weft__worker *w);
/* True if a timer of w's wheel is due now (owner only; cheap when none is armed). */
bool weft__timers_due(weft__worker *w);
/* When the worker must be awake again for its timers (UINT64_MAX: never). */
uint64_t weft__timers_next_deadline(weft__worker *w);

/* The task side: a timer on the current worker's wheel that wakes the current task at
 * `deadline_ns`. NULL with errno ENOMEM. */
weft__timer *weft__timer_arm_current(uint64_t deadline_ns);
/* A timer on w's wheel (w is the calling thread's worker) that runs handle's callback
 * at `deadline_ns` (< UINT64_MAX). NULL with errno ENOMEM. */
weft__timer *weft__timer_arm_handle(weft__worker *w, weft_timer *handle, uint64_t deadline_ns);
/* Stops a timer that has not fired, from any thread: true if it was still armed (it
 * will never fire, and the object is disposed of: freed here or by its owner). False if
 * its owner has claimed it to fire: the owner then finishes with it. */
bool weft__timer_revoke(weft__timer *tm);
/* True once the timer has fired (the task's wake-up is on its way or done). */
bool weft__timer_fired(weft__timer *tm);
/* The task is done with a timer: cancels it if it has not fired, else waits out the
 * owner's last touch; then frees it. The timer must not be used afterwards. */
void weft__timer_release(weft__timer *tm);

/* timer_handle.c: the owner's side of a handle's arming, after it claimed it (FIRING):
 * runs the callback unless the arming was cancelled or replaced meanwhile, and frees the
 * object. */
void weft__timer_handle_fire(weft__worker *w, weft__timer *tm);
/* At runtime destruction: frees the handles the application did not destroy. */
void weft__timer_handles_destroy_all(weft_runtime *rt);

#endif /* WEFT__TIME_TIMER_H */
