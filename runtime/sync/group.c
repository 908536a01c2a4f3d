/*
 * group.c: task groups (weft_group_*, weft.h): structured concurrency. A group owns its
 * members' task objects from spawn until their results are read (weft_group_next) or
 * dropped (weft_group_wait, weft_group_destroy); there is no handle to join or detach.
 *
 * Data. Everything below `lock` (a counted lock word, waitq.h: bit 0 the lock, the bits
 * above the waiters inside a call) is guarded by it:
 *   - `running`: members spawned and not finished, plus the slots handed to spawns that
 *     waited for one (each becomes a member); the limit bounds it.
 *   - the running members, linked through their tasks' owner_prev/owner_next (so that a
 *     cancel reaches each); a member leaves the list in its exit hook, which runs on its
 *     worker after its last switch and before its completion is published (worker.c,
 *     finish): so a task in this list is alive, and cancelling it under the lock is safe.
 *   - the finished members whose results are unread, FIFO through their tasks' `link`
 *     (free once a task has run for the last time: it is in no queue).
 *   - three FIFO waiter lists: weft_group_next's, weft_group_wait's and destroy's (for
 *     running == 0), spawns waiting for a slot.
 * A task's `owner` and `on_exit` are set before it is first scheduled and never change.
 *
 * The member's exit (GROUP-X) and a waiter (GROUP-N, GROUP-S, GROUP-W) meet under the
 * lock; the waiters use the waitq protocol (SYNC-Q1..Q4 / SYNC-W1..W2, WAIT-B/D), so
 * a deadline or a cancel that races a hand-off is decided there:
 *
 *   member exit (on its worker)               weft_group_next
 *   (GROUP-X1) lock; unlink from running;     (GROUP-N1) lock; a result unread? take it
 *        running -= 1.                             (unlock, GROUP-N3). running == 0:
 *   (GROUP-X2) a next waiter? pop it, hand it      -ECHILD. Else queue (SYNC-Q1), unlock,
 *        the task (waiter.elem). Else append       park (SYNC-Q2).
 *        the task to the unread results.      (GROUP-N2) handed a task, or -ECHILD, or
 *   (GROUP-X3) a spawn waiting and a free          withdrawn at the deadline / cancel
 *        slot? running += 1, pop it.               (SYNC-Q3: nothing taken).
 *   (GROUP-X4) running == 0? pop every wait   (GROUP-N3) wait for the task's completion
 *        and destroy waiter (0) and, with no       (WAKE_DONE, a few instructions after
 *        result unread, every next waiter          GROUP-X's unlock; JOIN-J5's wait),
 *        (-ECHILD).                                take its result, free it.
 *   (GROUP-X5) unlock: the exit's last touch
 *        of the group; deliver (SYNC-W2).
 *
 * A slot is handed over, never released to be raced for (GROUP-X3, and set_limit): a
 * spawn that waits is served first come, first served, and one that arrives while
 * others wait queues behind them (it sees running >= limit: the handed slots count).
 * Destroy (GROUP-D1..D3) marks the group cancelled, cancels the running members, and
 * waits, uncancellably, until running is 0 and no waiter is inside (the count in the
 * lock word: a woken waiter's last touch is its weft__qleave); only then frees. A
 * member exit's last touch is GROUP-X5's unlock, which destroy's lock acquires after.
 *
 * Rejected: members detached at spawn with their results in a separate record, malloc'd
 * per member. The record costs an allocation per spawn, and a START_FAILED member never
 * runs code of its own to fill it: the exit hook is needed anyway, and with it the
 * task object itself is the record. Rejected too: joining each member's handle from
 * weft_group_next (a join per member, and a park in the window between the exit and
 * the completion); the hook publishes first, and the wait for WAKE_DONE is a few
 * instructions.
 */
#include "sync/waitq.h"

#include "base/memory.h"
#include "sched/cancel.h"
#include "sched/runtime.h"

#include <errno.h>
#include <string.h>

struct weft_group {
    weft__atomic_word lock; /* counted lock word (waitq.h) */
    /* Under the lock. */
    weft__waiter_list next_waiters;
    weft__waiter_list idle_waiters; /* weft_group_wait and destroy: running == 0 */
    weft__waiter_list slot_waiters;
    weft_task *running_head;
    weft_task *unread_head, *unread_tail;
    size_t running;
    size_t limit; /* 0: none */
    bool cancelled;
};

WEFT_API int weft_group_create(weft_group **out) {
    if (!out)
        return -EINVAL;
    weft_group *g = weft__alloc(sizeof(*g), _Alignof(weft_group));
    if (!g)
        return -ENOMEM;
    memset(g, 0, sizeof(*g));
    /* Relaxed: whoever gets g from the caller gets it with a release of their own. */
    weft__atomic_store_relaxed(&g->lock, 0);
    *out = g;
    return 0;
}

/* ---- Lists, under the lock ------------------------------------------------------------ */

static void running_link(weft_group *g, weft_task *t) {
    t->owner_prev = NULL;
    t->owner_next = g->running_head;
    if (g->running_head)
        g->running_head->owner_prev = t;
    g->running_head = t;
}

static void running_unlink(weft_group *g, weft_task *t) {
    if (t->owner_prev)
        t->owner_prev->owner_next = t->owner_next;
    else
        g->running_head = t->owner_next;
    if (t->owner_next)
        t->owner_next->owner_prev = t->owner_prev;
    t->owner_prev = t->owner_next = NULL;
}

static void unread_push(weft_group *g, weft_task *t) {
    t->link.next = NULL;
    if (g->unread_tail)
        g->unread_tail->link.next = &t->link;
    else
        g->unread_head = t;
    g->unread_tail = t;
}

static weft_task *unread_pop(weft_group *g) {
    weft_task *t = g->unread_head;
    if (t) {
        g->unread_head = (weft_task *)t->link.next; /* link is the first field */
        if (!g->unread_head)
            g->unread_tail = NULL;
    }
    return t;
}

/* Pops the oldest waiter of l, hands it `outcome`, and appends it to the deliveries. */
static void serve(weft__waiter_list *l, int outcome, weft__waiter_list *deliveries) {
    weft__waiter *w = weft__waiter_list_pop(l);
    w->outcome = outcome;
    weft__waiter_list_append_popped(deliveries, w);
}

/* (GROUP-X3) Hands free slots to waiting spawns, oldest first. */
static void hand_slots(weft_group *g, weft__waiter_list *deliveries) {
    while (!weft__waiter_list_empty(&g->slot_waiters) && (g->limit == 0 || g->running < g->limit)) {
        g->running++;
        serve(&g->slot_waiters, 0, deliveries);
    }
}

/* Cancels every running member (CANCEL-1): alive while listed (see the top). */
static void cancel_running(weft_group *g, weft__wake_batch *batch) {
    g->cancelled = true;
    for (weft_task *t = g->running_head; t; t = t->owner_next)
        weft__cancel_task(t, 0, batch);
}

/* ---- A member's end --------------------------------------------------------------------- */

/* Takes a finished member's result and frees it (GROUP-N3): waits out its completion,
 * which follows the exit hook by a few instructions. */
static int consume(weft_task *t, void **result) {
    AO_t s = weft__task_await_wake_done(t); /* acquire: `result` is final */
    bool failed = (s & WEFT__TASK_START_FAILED) != 0;
    if (result)
        *result = failed ? NULL : t->result;
    weft__worker *w = weft__worker_current();
    weft__task_free(t, w && w->runtime == t->runtime ? &w->tasks : NULL);
    return failed ? -ENOMEM : 0;
}

static void consume_all(weft_task *t) {
    while (t) {
        weft_task *next = (weft_task *)t->link.next;
        consume(t, NULL);
        t = next;
    }
}

/* The exit hook (task.h, on_exit): on the member's worker, after its last switch. */
static void member_exited(weft_task *t) {
    weft_group *g = t->owner;
    weft__waiter_list deliveries = {NULL, NULL};
    /* (GROUP-X1) */
    weft__qlock(&g->lock);
    running_unlink(g, t);
    g->running--;
    WEFT__CHAOS_POINT(t->runtime->chaos_seed, "GROUP-X1");
    /* (GROUP-X2) Straight to a waiting weft_group_next, else kept for one. */
    if (!weft__waiter_list_empty(&g->next_waiters)) {
        weft__waiter *w = weft__waiter_list_pop(&g->next_waiters);
        w->elem = t; /* read by the waiter after WAIT-D1's release */
        w->outcome = 0;
        weft__waiter_list_append_popped(&deliveries, w);
    } else {
        unread_push(g, t);
    }
    hand_slots(g, &deliveries); /* (GROUP-X3) */
    /* (GROUP-X4) */
    if (g->running == 0) {
        while (!weft__waiter_list_empty(&g->idle_waiters))
            serve(&g->idle_waiters, 0, &deliveries);
        if (!g->unread_head)
            while (!weft__waiter_list_empty(&g->next_waiters))
                serve(&g->next_waiters, -ECHILD, &deliveries);
    }
    /* (GROUP-X5) Our last touch of g. */
    weft__qunlock(&g->lock);
    WEFT__CHAOS_POINT(t->runtime->chaos_seed, "GROUP-X5");
    weft__waiter_list_deliver_outcomes(&deliveries);
}

/* ---- Spawning ----------------------------------------------------------------------------- */

static int spawn_into(weft_group *g, weft_runtime *rt, weft_fn fn, void *arg) {
    bool pinned;
    weft_task *t = weft__spawn_prepare(rt, fn, arg, &pinned);
    if (!t)
        return -errno;
    t->owner = g;
    t->on_exit = member_exited;
    weft__waitq_site site = {&g->lock, &g->slot_waiters};
    /* (GROUP-S1) */
    weft__qlock(&g->lock);
    if (g->limit != 0 && g->running >= g->limit) {
        /* No slot: a cancellation point now (weft.h), and we queue behind every spawn
         * already waiting. */
        int rc = weft__cancel_point();
        if (rc) {
            weft__qunlock(&g->lock);
            weft__spawn_abandon(t, pinned);
            return rc;
        }
        weft__waiter w;
        weft__waiter_init(&w);
        weft__waitq_push(&g->lock, &g->slot_waiters, &w);
        weft__qunlock(&g->lock);
        /* (GROUP-S2) 0: a slot was handed to us (GROUP-X3), counted in running. */
        rc = weft__waitq_block(&w, &site, WEFT_FOREVER);
        if (rc < 0) {
            weft__spawn_abandon(t, pinned);
            return rc;
        }
        WEFT__SYNC_CHAOS_POINT("GROUP-S2");
        weft__qlock(&g->lock);
    } else {
        g->running++;
    }
    /* (GROUP-S3) Listed before it can run: a cancel reaches it from here on, and a group
     * cancelled before (sticky) cancels it now (it still runs: weft.h). */
    running_link(g, t);
    weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
    if (g->cancelled)
        weft__cancel_task(t, 0, &batch); /* not scheduled yet: nothing to wake */
    weft__qunlock(&g->lock);
    weft__wake_batch_finish(&batch);
    weft__spawn_commit(t, pinned);
    return 0;
}

WEFT_API int weft_group_spawn(weft_group *g, weft_fn fn, void *arg) {
    if (!g || !fn)
        return -EINVAL;
    weft__worker *w;
    if (!weft__worker_current_task(&w))
        return -EPERM;
    return spawn_into(g, w->runtime, fn, arg);
}

WEFT_API int weft_group_spawn_on(weft_group *g, weft_runtime *rt, weft_fn fn, void *arg) {
    if (!g || !rt || !fn)
        return -EINVAL;
    return spawn_into(g, rt, fn, arg);
}

WEFT_API int weft_group_set_limit(weft_group *g, size_t max_running) {
    if (!g)
        return -EINVAL;
    weft__waiter_list deliveries = {NULL, NULL};
    weft__qlock(&g->lock);
    g->limit = max_running;
    hand_slots(g, &deliveries);
    weft__qunlock(&g->lock);
    weft__waiter_list_deliver_outcomes(&deliveries);
    return 0;
}

/* ---- Waiting ------------------------------------------------------------------------------ */

/* Is the calling task a member of g? (It would wait for itself.) */
static bool caller_is_member(weft_group *g) {
    weft_task *self = weft__worker_current_task(NULL);
    return self && self->owner == g;
}

WEFT_API int weft_group_next(weft_group *g, void **result, uint64_t deadline_ns) {
    if (!g)
        return -EINVAL;
    int rc = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (rc)
        return rc;
    weft__waitq_site site = {&g->lock, &g->next_waiters};
    /* (GROUP-N1) */
    weft__qlock(&g->lock);
    weft_task *t = unread_pop(g);
    if (t) {
        weft__qunlock(&g->lock);
        return consume(t, result); /* (GROUP-N3) */
    }
    if (g->running == 0) {
        weft__qunlock(&g->lock);
        return -ECHILD;
    }
    if (deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns) {
        weft__qunlock(&g->lock); /* a poll (as_completed's loop): no waiter, no second lock */
        return -ETIMEDOUT;
    }
    weft__waiter w;
    weft__waiter_init(&w);
    weft__waitq_push(&g->lock, &g->next_waiters, &w);
    weft__qunlock(&g->lock);
    /* (GROUP-N2) */
    rc = weft__waitq_block(&w, &site, deadline_ns);
    if (rc < 0)
        return rc;
    WEFT__SYNC_CHAOS_POINT("GROUP-N2");
    return consume((weft_task *)w.elem, result); /* (GROUP-N3) */
}

/* Waits (uncancellable: destroy) or not until running is 0, under the lock on entry and
 * on return. 0, or the wait's error (the lock is held then too). */
static int await_idle(weft_group *g, uint64_t deadline_ns, bool cancellable) {
    weft__waitq_site site = {&g->lock, &g->idle_waiters};
    while (g->running > 0) {
        weft__waiter w;
        weft__waiter_init(&w);
        w.wait.cancellable = cancellable;
        weft__waitq_push(&g->lock, &g->idle_waiters, &w);
        weft__qunlock(&g->lock);
        int rc = weft__waitq_block(&w, &site, deadline_ns);
        WEFT__SYNC_CHAOS_POINT("GROUP-W1");
        weft__qlock(&g->lock);
        if (rc < 0)
            return rc;
    }
    return 0;
}

WEFT_API int weft_group_wait(weft_group *g, uint64_t deadline_ns) {
    if (!g)
        return -EINVAL;
    if (caller_is_member(g))
        return -EDEADLK;
    int rc = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (rc)
        return rc;
    weft__qlock(&g->lock);
    rc = await_idle(g, deadline_ns, true);
    weft_task *unread = NULL;
    if (rc == 0) { /* (GROUP-W2) no member ran at some moment: drop what is unread */
        unread = g->unread_head;
        g->unread_head = g->unread_tail = NULL;
    }
    weft__qunlock(&g->lock);
    consume_all(unread);
    return rc;
}

WEFT_API int weft_group_cancel(weft_group *g) {
    if (!g)
        return -EINVAL;
    weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
    weft__qlock(&g->lock);
    cancel_running(g, &batch);
    weft__qunlock(&g->lock);
    weft__wake_batch_finish(&batch);
    return 0;
}

WEFT_API int weft_group_destroy(weft_group *g) {
    if (!g)
        return -EINVAL;
    if (caller_is_member(g))
        return -EDEADLK;
    weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
    /* (GROUP-D1) Sticky cancel: members running now and any spawned from here on. */
    weft__qlock(&g->lock);
    cancel_running(g, &batch);
    weft__qunlock(&g->lock);
    weft__wake_batch_finish(&batch);
    WEFT__SYNC_CHAOS_POINT("GROUP-D1");
    /* (GROUP-D2) Every member finished and every other call gone (the waiters a member's
     * exit woke leave within a few instructions: weft__qleave is their last touch). */
    unsigned rounds = 0;
    weft__qlock(&g->lock);
    for (;;) {
        (void)await_idle(g, WEFT_FOREVER, false); /* cannot fail: no deadline, no cancel */
        if (!weft__qbusy(&g->lock))
            break;
        weft__qunlock(&g->lock);
        weft__spin_wait(&rounds);
        weft__qlock(&g->lock);
    }
    /* (GROUP-D3) Ours alone now. */
    weft_task *unread = g->unread_head;
    weft__qunlock(&g->lock);
    consume_all(unread);
    weft__free(g, sizeof(*g));
    return 0;
}
