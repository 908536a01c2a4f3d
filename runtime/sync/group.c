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
 * A member's `owner` (the group's `owner`, whose on_exit is member_exited) is set before
 * it is first scheduled and never changes.
 *
 * The member's exit (GROUP-X) and a waiter (GROUP-N, GROUP-S, GROUP-W) meet under the
 * lock; the waiters use the waitq protocol (SYNC-Q1..Q4 / SYNC-W1..W2, WAIT-B/D), so
 * a deadline or a cancel that races a hand-off is decided there:
 *
 *   member exit (on its worker)               weft_group_next
 *   (GROUP-X1) lock; unlink from running.     (GROUP-N1) lock; a result unread? take it
 *                                                  (unlock, GROUP-N3). running == 0:
 *   (GROUP-X2) a next waiter? pop it, hand it      -ECHILD. Else queue (SYNC-Q1), unlock,
 *        the task (waiter.elem). Else append       park (SYNC-Q2).
 *        the task to the unread results.      (GROUP-N2) handed a task, or -ECHILD, or
 *   (GROUP-X3) running -= 1; a spawn waiting       withdrawn at the deadline / cancel
 *        and a free slot? running += 1, pop it.    (SYNC-Q3: nothing taken).
 *   (GROUP-X4) running == 0? pop every wait   (GROUP-N3) wait for the task's completion
 *        and destroy waiter (0) and, with no       (WAKE_DONE, a few instructions after
 *        result unread, every next waiter          GROUP-X's unlock; JOIN-J5's wait),
 *        (-ECHILD).                                take its result, free it.
 *   (GROUP-X5) unlock: the exit's last touch
 *        of the group; deliver (SYNC-W2) once
 *        the task's completion is published.
 *
 * A slot is handed over, never released to be raced for (GROUP-X3, and set_limit): a
 * spawn that waits is served first come, first served, and one that arrives while
 * others wait queues behind them (it sees running >= limit: the handed slots count).
 * Destroy (GROUP-D1..D3) marks the group cancelled, cancels the running members, and
 * waits, uncancellably, until running is 0 and no waiter is inside (the count in the
 * lock word); only then frees. A waiter leaves under the lock (group_leave,
 * leave_unlock), and the last one out delivers a destroy that waits for it (`drainer`),
 * so that its unlock is its last touch of g, and destroy's lock acquires after it. A
 * member exit's last touch is GROUP-X5's unlock, likewise. A spawn that holds a slot
 * (reserved, counted in running) may take the lock again: destroy waits for running 0.
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
    weft__task_owner owner; /* first: a member's t->owner points here (task.h) */
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
    /* weft_group_destroy waiting for the waiters still inside to leave (GROUP-D2), or
     * NULL: the last to leave delivers it (group_leave). */
    weft__wait *drainer;
};

static void member_exited(weft_task *t, weft__task_exit_later *later);

WEFT_API int weft_group_create(weft_group **out) {
    if (!out)
        return -EINVAL;
    weft_group *g = weft__alloc(sizeof(*g), _Alignof(weft_group));
    if (!g)
        return -ENOMEM;
    memset(g, 0, sizeof(*g));
    g->owner.on_exit = member_exited;
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

/* Cancels every running member (CANCEL-1): alive while listed (see the top). Those to
 * schedule go to `to_schedule`, for after the unlock (weft__cancel_schedule). */
static void cancel_running(weft_group *g, weft__fifo *to_schedule) {
    g->cancelled = true;
    for (weft_task *t = g->running_head; t; t = t->owner_next)
        weft__cancel_task(t, 0, to_schedule);
}

/* (GROUP-X3, GROUP-X4) A slot freed (a member ended, or a reserved slot was not used):
 * handed to the oldest waiting spawn, or, at zero running, the waiters for that woken. */
static void slot_freed(weft_group *g, weft__waiter_list *deliveries) {
    g->running--;
    hand_slots(g, deliveries);
    if (g->running == 0) {
        while (!weft__waiter_list_empty(&g->idle_waiters))
            serve(&g->idle_waiters, 0, deliveries);
        if (!g->unread_head)
            while (!weft__waiter_list_empty(&g->next_waiters))
                serve(&g->next_waiters, -ECHILD, deliveries);
    }
}

/* (SYNC-Q4 for a group) A waiter's last touch of g, once its wait is over: under the
 * lock (leave_unlock: held on entry, released), it leaves, and the last one out
 * delivers a destroy waiting for that (GROUP-D2).
 * Rejected: weft__waitq_block's lock-free leave, then a destroy spinning until the
 * count is 0: a woken waiter leaves only once it runs, and on one worker it runs only
 * after the spinning destroy yields (found by a cold review: a hang). */
static void leave_unlock(weft_group *g) {
    weft__qleave(&g->lock);
    weft__wait *drainer = NULL;
    if (g->drainer && !weft__qbusy(&g->lock)) {
        drainer = g->drainer;
        g->drainer = NULL;
    }
    weft__qunlock(&g->lock); /* our last touch of g */
    if (drainer) {
        weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
        weft__wait_deliver(drainer, 0, &batch);
        weft__wake_batch_finish(&batch);
    }
}

static void group_leave(weft_group *g) {
    weft__qlock(&g->lock);
    leave_unlock(g);
}

/* A group waiter's wait: the waiter protocol on its list (SYNC-Q2, SYNC-Q3), then
 * group_leave. The caller queued w under the lock and has released it. */
static int group_block(weft_group *g, weft__waiter *w, weft__waiter_list *list,
                       uint64_t deadline_ns) {
    weft__waitq_site site = {&g->lock, list};
    int rc = weft__wait_block(&w->wait, deadline_ns, weft__waitq_withdraw, &site);
    group_leave(g);
    return rc;
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

/* After the member's completion is published (worker.c, finish): the deliveries
 * member_exited collected. They touch only the waiters, which stay inside g until they
 * have left it. */
static void deliver_later(void *head, void *tail) {
    weft__waiter_list deliveries = {head, tail};
    weft__waiter_list_deliver_outcomes(&deliveries);
}

/* The exit hook (task.h, on_exit): on the member's worker, after its last switch. Its
 * deliveries are made after the task's completion (`later`): a weft_group_next handed
 * this task waits for that completion (GROUP-N3), and must not spin through the wake-ups'
 * system calls (found by a cold review; join.c rejects the same shape for JOIN-C4). */
static void member_exited(weft_task *t, weft__task_exit_later *later) {
    weft_group *g = (weft_group *)t->owner; /* `owner` is the group's first member */
    weft__waiter_list deliveries = {NULL, NULL};
    /* (GROUP-X1) */
    weft__qlock(&g->lock);
    running_unlink(g, t);
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
    slot_freed(g, &deliveries); /* running -= 1; (GROUP-X3, GROUP-X4) */
    /* (GROUP-X5) Our last touch of g. */
    weft__qunlock(&g->lock);
    WEFT__CHAOS_POINT(t->runtime->chaos_seed, "GROUP-X5");
    later->run = deliver_later;
    later->a = deliveries.head;
    later->b = deliveries.tail;
}

/* ---- Spawning ----------------------------------------------------------------------------- */

/* (GROUP-S3) Lists a prepared task in a slot counted for it, and makes it runnable. */
static void admit(weft_group *g, weft_task *t, bool pinned) {
    weft__fifo to_schedule;
    weft__fifo_init(&to_schedule);
    weft__qlock(&g->lock);
    /* Listed before it can run: a cancel reaches it from here on, and a group cancelled
     * before (sticky) cancels it now (it still runs: weft.h). */
    running_link(g, t);
    if (g->cancelled)
        weft__cancel_task(t, 0, &to_schedule); /* not scheduled yet: nothing to wake */
    weft__qunlock(&g->lock);
    weft__spawn_commit(t, pinned);
}

static weft_task *prepare_member(weft_group *g, weft_runtime *rt, weft_fn fn, void *arg,
                                 bool *pinned) {
    weft_task *t = weft__spawn_prepare(rt, fn, arg, pinned);
    if (t) {
        t->owner = &g->owner;
    }
    return t;
}

/* Spawns into g. The common case takes the lock once: a task prepared first, a free slot
 * found. Without a free slot it waits holding nothing (no task, no live slot of
 * max_tasks, no pin on rt: Go's errgroup also blocks before it creates anything), and
 * prepares once a slot was handed to it. */
static int spawn_into(weft_group *g, weft_runtime *rt, weft_fn fn, void *arg) {
    bool pinned;
    weft_task *t = prepare_member(g, rt, fn, arg, &pinned);
    if (!t)
        return -errno;
    /* (GROUP-S1) */
    weft__qlock(&g->lock);
    if (g->limit == 0 || g->running < g->limit) {
        g->running++;
        weft__qunlock(&g->lock);
        admit(g, t, pinned);
        return 0;
    }
    /* No slot: we let go of the task and wait for one, counted inside g all the while
     * (the lock word's count, as a waiter): holding no slot, nothing else would keep a
     * destroy from freeing g under us (found by a cold review: a use after free). */
    weft__qenter(&g->lock);
    weft__qunlock(&g->lock);
    weft__spawn_abandon(t, pinned);
    int rc = weft__cancel_point(); /* a cancellation point now (weft.h) */
    weft__qlock(&g->lock);
    if (rc) {
        leave_unlock(g);
        return rc;
    }
    if (g->limit == 0 || g->running < g->limit) {
        g->running++;           /* freed meanwhile */
        weft__qleave(&g->lock); /* the slot keeps a destroy waiting from here on */
    } else {
        /* (GROUP-S2) Behind every spawn already waiting; 0: a slot was handed to us
         * (GROUP-X3), counted in running. */
        weft__waiter w;
        weft__waiter_init(&w);
        w.wait.kind = WEFT__WAITING_GROUP_SLOT; /* for a dump */
        w.wait.object = (uint64_t)(uintptr_t)g;
        weft__waitq_push(&g->lock, &g->slot_waiters, &w);
        weft__qleave(&g->lock); /* the push counted us again: once is enough */
        weft__qunlock(&g->lock);
        rc = group_block(g, &w, &g->slot_waiters, WEFT_FOREVER);
        if (rc < 0)
            return rc; /* withdrawn: no slot was ours */
        WEFT__SYNC_CHAOS_POINT("GROUP-S2");
        weft__qlock(&g->lock);
    }
    /* A slot is ours (counted in running, so destroy waits for us): now the task. */
    weft__qunlock(&g->lock);
    t = prepare_member(g, rt, fn, arg, &pinned);
    if (!t) {
        rc = -errno;
        weft__waiter_list deliveries = {NULL, NULL};
        weft__qlock(&g->lock);
        slot_freed(g, &deliveries);
        weft__qunlock(&g->lock);
        weft__waiter_list_deliver_outcomes(&deliveries);
        return rc;
    }
    admit(g, t, pinned);
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

/* The withdraw of a wait that is never withdrawn (no deadline, not cancellable). */
static bool never_withdraw(weft__wait *wait, void *structure) {
    (void)wait;
    (void)structure;
    return false;
}

/* Is the calling task a member of g? (It would wait for itself.) */
static bool caller_is_member(weft_group *g) {
    weft_task *self = weft__worker_current_task(NULL);
    return self && self->owner == &g->owner;
}

WEFT_API int weft_group_next(weft_group *g, void **result, uint64_t deadline_ns) {
    if (!g)
        return -EINVAL;
    int rc = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (rc)
        return rc;
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
    w.wait.kind = WEFT__WAITING_GROUP_NEXT; /* for a dump */
    w.wait.object = (uint64_t)(uintptr_t)g;
    weft__waitq_push(&g->lock, &g->next_waiters, &w);
    weft__qunlock(&g->lock);
    /* (GROUP-N2) */
    rc = group_block(g, &w, &g->next_waiters, deadline_ns);
    if (rc < 0)
        return rc;
    WEFT__SYNC_CHAOS_POINT("GROUP-N2");
    return consume((weft_task *)w.elem, result); /* (GROUP-N3) */
}

/* Waits (uncancellable: destroy) or not until running is 0, under the lock on entry and
 * on return. 0, or the wait's error (the lock is held then too). Once it has waited it
 * stays counted inside g (*counted) until the caller leaves under the lock
 * (leave_unlock): leaving before it took the lock again would let a destroy free g
 * between the two (found by a cold review: a use after free). */
static int await_idle(weft_group *g, uint64_t deadline_ns, bool cancellable, bool *counted) {
    weft__waitq_site site = {&g->lock, &g->idle_waiters};
    while (g->running > 0) {
        weft__waiter w;
        weft__waiter_init(&w);
        w.wait.cancellable = cancellable;
        w.wait.kind = WEFT__WAITING_GROUP_WAIT; /* for a dump */
        w.wait.object = (uint64_t)(uintptr_t)g;
        weft__waitq_push(&g->lock, &g->idle_waiters, &w);
        if (*counted)
            weft__qleave(&g->lock); /* the push counted us again: once is enough */
        *counted = true;
        weft__qunlock(&g->lock);
        int rc = weft__wait_block(&w.wait, deadline_ns, weft__waitq_withdraw, &site);
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
    bool counted = false;
    weft__qlock(&g->lock);
    rc = await_idle(g, deadline_ns, true, &counted);
    weft_task *unread = NULL;
    if (rc == 0) { /* (GROUP-W2) no member ran at some moment: drop what is unread */
        unread = g->unread_head;
        g->unread_head = g->unread_tail = NULL;
    }
    if (counted)
        leave_unlock(g); /* our last touch of g */
    else
        weft__qunlock(&g->lock);
    consume_all(unread);
    return rc;
}

WEFT_API int weft_group_cancel(weft_group *g) {
    if (!g)
        return -EINVAL;
    weft__fifo to_schedule;
    weft__fifo_init(&to_schedule);
    weft__qlock(&g->lock);
    cancel_running(g, &to_schedule);
    weft__qunlock(&g->lock);
    weft__cancel_schedule(&to_schedule); /* members we cancelled cannot end before this */
    return 0;
}

WEFT_API int weft_group_destroy(weft_group *g) {
    if (!g)
        return -EINVAL;
    if (caller_is_member(g))
        return -EDEADLK;
    weft__fifo to_schedule;
    weft__fifo_init(&to_schedule);
    /* (GROUP-D1) Sticky cancel: members running now and any spawned from here on. */
    weft__qlock(&g->lock);
    cancel_running(g, &to_schedule);
    weft__qunlock(&g->lock);
    weft__cancel_schedule(&to_schedule);
    WEFT__SYNC_CHAOS_POINT("GROUP-D1");
    /* (GROUP-D2) Every member finished (or slot reserved used), then every other call
     * gone: the last waiter to leave delivers us (group_leave). Uncancellable. */
    weft__qlock(&g->lock);
    for (;;) {
        bool counted = false;
        (void)await_idle(g, WEFT_FOREVER, false, &counted); /* no deadline, no cancel: 0 */
        if (counted)
            weft__qleave(&g->lock); /* we are the one a last leaver would wake */
        if (!weft__qbusy(&g->lock))
            break;
        weft__wait drain;
        weft__wait_init(&drain);
        drain.cancellable = false;
        drain.kind = WEFT__WAITING_GROUP_WAIT; /* for a dump */
        drain.object = (uint64_t)(uintptr_t)g;
        g->drainer = &drain;
        weft__qunlock(&g->lock);
        (void)weft__wait_block(&drain, WEFT_FOREVER, never_withdraw, NULL);
        weft__qlock(&g->lock);
    }
    /* (GROUP-D3) Ours alone now. */
    weft_task *unread = g->unread_head;
    weft__qunlock(&g->lock);
    consume_all(unread);
    weft__free(g, sizeof(*g));
    return 0;
}
