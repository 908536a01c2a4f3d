/*
 * wait.h: the one waiter protocol: a task (or a plain thread) waits for one event with
 * a deadline; whoever delivers the event wakes it exactly once. I/O waits use it today;
 * every new kind of wait (sync primitives, channels, cancellation) is meant to. The
 * protocol (WAIT-*) is written out in wait.c.
 *
 * The waiter object lives on the waiter's stack. It is reached by wakers only through the
 * structure it is published in (an fd's slot, a queue), and the rule that makes the
 * stack frame safe to leave is: a waker that takes a waiter out of its structure owns
 * its wake-up and finishes with weft__wait_deliver, whose last touch is `done`; the
 * waiter leaves only after it has withdrawn itself from the structure (so nobody can
 * take it any more) or after it has seen `done`.
 */
#ifndef WEFT__SCHED_WAIT_H
#define WEFT__SCHED_WAIT_H

#include "base/atomic.h"
#include "sched/task.h"

#include "weft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct weft__wait {
    /* The waiting task, or NULL: a thread that is not a worker, sleeping on `done`'s
     * futex. Immutable while published. */
    weft_task *task;
    /* 0 while waiting; 1 once a waker has delivered: the waker's last touch of the
     * object (WAIT-D3). Futex word for a thread waiter. */
    weft__atomic_u32 done;
    /* Why it was woken: written by the delivering waker before `done` (WAIT-D1), read
     * by the waiter after it (acquire). The structure's own meaning (I/O: the ready
     * mask, or -ECANCELED). */
    int result;
    /* For the structure's use while published (I/O: the fd's generation), written by
     * the waiter before it publishes. */
    uint64_t tag;
    /* A thread waiting on several waits at once sleeps on one word of its own, which
     * every delivery bumps (WAIT-D1) before `done`: NULL for a single wait (the thread
     * sleeps on `done`) and for a task. */
    weft__atomic_u32 *thread_word;
    /* A task's wait ends with -ECANCELED when the task is cancelled (cancel.c: the
     * cancel wakes it, it withdraws): true from weft__wait_init; a wait that is no
     * cancellation point (weft_mutex_lock, a blocking-pool call's carrier) clears it
     * before it publishes. Only the waiter reads it. */
    bool cancellable;
    /* What the task waits on, for a dump (task.h, weft__wait_kind): set by the structure
     * before it publishes (WEFT__WAITING_OTHER from weft__wait_init). waits[0]'s is the
     * one noted. Only the waiter reads it. */
    weft__wait_kind kind;
    uint64_t object;
} weft__wait;

/* Wake-ups delivered by one waker in a batch: the system call that wakes an idle worker
 * comes once, after the last touch of every waiter (weft__wake_batch_finish). */
typedef struct weft__wake_batch {
    weft_runtime *runtime; /* whose idle worker to wake, or NULL */
    bool pinned;           /* runtime is counted as a foreign call until finish */
} weft__wake_batch;

#define WEFT__WAKE_BATCH_INIT {NULL, false}

/* The waiter's side: a wait by the calling task (or thread) with nothing published yet. */
void weft__wait_init(weft__wait *wait);

/* Tries to take a published waiter back out of its structure; true if it did (no waker
 * can reach it any more), false if a waker took it first (it will deliver). */
typedef bool (*weft__wait_withdraw_fn)(weft__wait *wait, void *structure);

/* The waiter's side, once published: blocks until a waker delivers (returns its
 * `result`), or until deadline_ns passes (WEFT_FOREVER: none) and withdraw succeeds
 * (returns -ETIMEDOUT; never before the deadline), or, for a cancellable wait of a task,
 * until the task is cancelled and withdraw succeeds (returns -ECANCELED). If withdraw fails, a waker has the
 * wait: it waits out the delivery and returns that result (the event won). -ENOMEM
 * when no timer could be had for the deadline (withdrawn: nothing happened). */
int weft__wait_block(weft__wait *wait, uint64_t deadline_ns, weft__wait_withdraw_fn withdraw,
                     void *structure);

/* weft__wait_block for a task waiting on several structures at once (each wait published
 * in one), until any of them is delivered: waits[0..n) are all the calling task's (or
 * thread's: then every wait's thread_word must point to one word of the caller's, set
 * before they were published, if n > 1). Then every wait not delivered is withdrawn, and those a
 * waker took meanwhile are waited out: on return no waker holds any of them. Returns how
 * many were delivered (weft__wait_delivered tells which; each has its `result`), or
 * -ETIMEDOUT / -ECANCELED (waits[0] cancellable) / -ENOMEM when none was. */
int weft__wait_block_any(weft__wait *const *waits, size_t n, uint64_t deadline_ns,
                         weft__wait_withdraw_fn withdraw, void *const *structures);

/* After weft__wait_block_any: was this wait delivered? */
bool weft__wait_delivered(const weft__wait *wait);

/* The waker's side, after taking `wait` out of its structure (so it is the only waker):
 * records result, queues the task (or marks the thread waiter), and makes its last
 * touch. The idle worker's wake-up is left to weft__wake_batch_finish. Any thread. */
void weft__wait_deliver(weft__wait *wait, int result, weft__wake_batch *batch);

/* Wakes an idle worker for what the batch queued, once, and unpins. */
void weft__wake_batch_finish(weft__wake_batch *batch);

#endif /* WEFT__SCHED_WAIT_H */
