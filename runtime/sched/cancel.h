/*
 * cancel.h: task cancellation (weft_cancel and friends, weft.h): the mark on a task's
 * state word, the check every cancellation point makes, and the canceller's side for
 * owners that cancel tasks in bulk (a task group). The protocol (CANCEL-*) is in
 * cancel.c.
 */
#ifndef WEFT__SCHED_CANCEL_H
#define WEFT__SCHED_CANCEL_H

#include "sched/task.h"
#include "sched/wait.h"

#include <stdbool.h>

/* Is t's cancellation pending for its cancellation points: cancelled and not shielded,
 * or (while t runs inline in a join) its joiner's, and so on up (cancel.c)? Only t itself
 * may ask: the shields are its own and its joiners', which wait under it. Relaxed: the
 * mark publishes nothing else, and a wait loop that misses it is woken by CANCEL-1's (or
 * CANCEL-4's) wake (cancel.c). */
static inline bool weft__cancel_pending(weft_task *t) {
    for (; t; t = t->cancel_host) {
        if (t->cancel_shield)
            return false;
        if (weft__atomic_load_relaxed(&t->state) & WEFT__TASK_CANCELLED)
            return true;
    }
    return false;
}

/* The entry check of a cancellation point: -ECANCELED if the calling task's cancellation
 * is pending, else 0 (also outside a task). */
int weft__cancel_point(void);

/* CANCEL-1 (and CANCEL-3, CANCEL-4 for a task that runs a child inline) on t: marks it
 * cancelled and wakes it. `generation`: the generation of t's state word that the caller
 * holds a reference to (task.h), or 0 when the caller keeps t alive by other means (a
 * group, under its lock). A task that has completed is left alone. If the wake-up must
 * schedule t, it is queued without waking a worker, and t's runtime is noted in `batch`
 * (pinned if it is not the caller's): weft__wake_batch_finish wakes one worker later, so
 * that an owner can cancel under its lock and make the system call after it. */
void weft__cancel_task(weft_task *t, AO_t generation, weft__wake_batch *batch);

#endif /* WEFT__SCHED_CANCEL_H */
