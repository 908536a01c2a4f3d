/*
 * deadline.h: what the scheduler needs from a clock: a wake-up of the current task at a
 * deadline, for the waits that take one (weft_join_until today; every cancellable wait
 * later). Declared here, in the scheduler's room, and implemented by the time room
 * (time/timer.c, on the worker's time driver), so that sched/ includes nothing of time/
 * and the dependency still points one way (dependency inversion, as libuv declares
 * uv__io_poll in its core and lets each platform file define it).
 *
 * The protocol between the timer and the task it wakes (TIMER-T1..T3, TIMER-R1) is
 * written out in time/timer.c.
 */
#ifndef WEFT__SCHED_DEADLINE_H
#define WEFT__SCHED_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct weft__timer weft__timer;

/* Inside a task: a timer on the current worker's time driver that wakes the current
 * task (weft__worker_wake_quiet) at `deadline_ns`. NULL with errno ENOMEM. */
weft__timer *weft__timer_arm_current(uint64_t deadline_ns);
/* True once the timer has fired (the task's wake-up is on its way or done). Any thread. */
bool weft__timer_fired(weft__timer *tm);
/* The task is done with a timer: cancels it if it has not fired, else waits out the
 * owner's last touch; then frees it. The timer must not be used afterwards. */
void weft__timer_release(weft__timer *tm);

#endif /* WEFT__SCHED_DEADLINE_H */
