/*
 * cancel.h: task cancellation (weft_cancel and friends, weft.h): the mark on a task's
 * state word, the check every cancellation point makes, and the canceller's side for
 * owners that cancel tasks in bulk (a task group). The protocol (CANCEL-*) is in
 * cancel.c.
 */
#ifndef WEFT__SCHED_CANCEL_H
#define WEFT__SCHED_CANCEL_H

#include "base/list.h"
#include "sched/task.h"

#include <stdbool.h>

/* The chain walk of weft__cancel_pending (cancel.c), once a bit says it may find one. */
bool weft__cancel_pending_chain(weft_task *t);

/* Is t's cancellation pending for its cancellation points: cancelled and not shielded,
 * or (while t runs inline in a join) its joiner's, and so on up (cancel.c)? Only t itself
 * may ask: the shields are its own and its joiners', which wait under it. One load in
 * the common case. Relaxed: the bits publish nothing else, and a wait loop that misses
 * one is woken by the CAS that sets it (CANCEL-1, CANCEL-4; cancel.c). */
static inline bool weft__cancel_pending(weft_task *t) {
    AO_t s = weft__atomic_load_relaxed(&t->state);
    if (__builtin_expect(!(s & (WEFT__TASK_CANCELLED | WEFT__TASK_HOST_CANCELLED)), 1))
        return false;
    return weft__cancel_pending_chain(t);
}

/* The entry check of a cancellation point: -ECANCELED if the calling task's cancellation
 * is pending, else 0 (also outside a task). */
int weft__cancel_point(void);

/* (CANCEL-I2) A joiner about to run `child` inline on its stack: if the joiner's own
 * cancellation bits are set, gives the child the hint (the canceller may have looked
 * for the child before it was published). */
void weft__cancel_give_hint(weft_task *child);
static inline void weft__cancel_inherit_hint(weft_task *self, weft_task *child) {
    /* Relaxed: the pop's full RMW ordered CANCEL-I1 before this load (cancel.c). */
    if (__builtin_expect(weft__atomic_load_relaxed(&self->state) &
                             (WEFT__TASK_CANCELLED | WEFT__TASK_HOST_CANCELLED),
                         0))
        weft__cancel_give_hint(child);
}

/* CANCEL-1 (and CANCEL-3, CANCEL-4 for a task that runs a child inline) on t: marks it
 * cancelled and wakes it. `generation`: the generation of t's state word that the caller
 * holds a reference to (task.h), or 0 when the caller keeps t alive by other means (a
 * group, under its lock). A task that has completed is left alone. Tasks the wake-up
 * must schedule (t, or a child of it parked inline) are appended to `to_schedule`; the
 * caller passes it to weft__cancel_schedule once it holds no lock: no system call, no
 * other lock under the caller's (found by a cold review: a group cancelled its members
 * under its spin lock, through the injection queue's mutex). */
void weft__cancel_task(weft_task *t, AO_t generation, weft__fifo *to_schedule);
void weft__cancel_schedule(weft__fifo *to_schedule);

#endif /* WEFT__SCHED_CANCEL_H */
