/*
 * timer_handle.c: public timer handles (weft_timer): a callback that runs on a worker
 * at a deadline, and can be re-armed, cancelled and destroyed from any thread. What
 * Go's time.AfterFunc and libuv's uv_timer_t give a server for idle-connection reaping
 * and per-request timeouts.
 *
 * What it owns: the handle objects and their bookkeeping. Each arming is a timer object
 * (timer.c) in the wheel of the worker that armed it: arming and cancelling from a task
 * touch only that worker's wheel and the handle, never a global lock.
 *
 * The handle's fields below `lock` are guarded by `lock`, a spinlock held for a few
 * dozen instructions (no callback and no system call runs under it; arming pops a timer
 * object from the worker's pool, which mallocs a new chunk once per 64 objects). Who holds
 * references (`refs`), each keeping the object alive:
 *   - the application, from create until destroy;
 *   - the arming in a wheel (`armed`), until it is revoked or its owner has handled it;
 *   - an arm task in flight (an arm from a thread that is not a worker, see below);
 *   - a callback running.
 * Whoever drops the last reference frees the handle, after unlocking.
 *
 * Firing, re-arming and cancelling race; the handle decides who wins:
 *   (TIMER-H1) the owner claims the arming in its wheel (CAS ARMED -> FIRING, timer.c);
 *   (TIMER-H2) it locks the handle: the arming is current only if `armed` still points to it.
 *        A cancel or re-arm that came between TIMER-H1 and TIMER-H2 failed to revoke it (the CAS
 *        was lost) and cleared `armed`: the owner then drops it, the callback does not
 *        run, and that cancel counts as having stopped the firing (it returns 1). So
 *        every arming ends exactly one way: its callback runs (TIMER-H2 found it current),
 *        or a cancel, re-arm or destroy stopped it; and after weft_timer_cancel
 *        returns, a callback starts only if it was found current before the cancel
 *        took the lock, never after.
 *   (TIMER-H3) a current arming whose callback is already running on another worker sets
 *        `refire`: the running callback runs once more when it returns. Callbacks of
 *        one handle therefore never run concurrently, and none is lost.
 * The arming object is freed by its owner only after TIMER-H2, so its address cannot be
 * reused for a new arming of the same handle while TIMER-H2 compares pointers.
 *
 * Arms from a thread that is not one of the runtime's workers have no wheel to use:
 * they record the deadline as `pending` under a new generation and spawn a small task
 * that arms it on whichever worker runs it, if the generation is still current. A
 * cancel or re-arm in between bumps the generation, and the stale arm task does
 * nothing. Rejected: a per-worker queue of remote arms: a parked worker would need a
 * second wake-up path besides the idle protocol's (park.c) to see it in time.
 *
 * Destroy waits for a callback running on another thread (callbacks are short by
 * contract), so that the application may free the callback's argument as soon as it
 * returns; from inside a callback (its own or another handle's) it does not wait.
 *
 * Every live handle is also on its runtime's registry (under the registry's lock), so
 * that weft_runtime_destroy frees the handles the application left.
 */
#include "time/timer.h"

#include "base/memory.h"
#include "sched/runtime.h"

#include <errno.h>
#include <stdalign.h>

struct weft_timer {
    /* ---- Immutable after create. */
    weft_runtime *runtime;
    weft_timer_fn fn;
    void *arg;
    /* ---- The runtime's registry of live handles: under the registry's lock. */
    weft_timer *prev, *next;
    /* ---- A spinlock: 0 free, 1 held. */
    weft__atomic_word lock;
    /* ---- Under `lock`. */
    weft__timer *armed;          /* the arming in a wheel, or NULL */
    uint64_t generation;         /* bumped by every arm, cancel and destroy */
    uint64_t pending_generation; /* an arm task's generation, or 0: none pending */
    uint64_t pending_deadline;
    unsigned refs;
    bool destroyed;
    bool running;         /* the callback runs now, on `runner` */
    bool refire;          /* fired again while running: run once more (TIMER-H3) */
    weft__worker *runner; /* meaningful while running */
};

static void handle_lock(weft_timer *h) {
    unsigned rounds = 0;
    /* Acquire: what the previous holder wrote before its release is visible to us. */
    while (weft__atomic_load_relaxed(&h->lock) != 0 ||
           weft__atomic_cas_acquire(&h->lock, 0, 1) != 0)
        weft__spin_wait(&rounds);
}

static void handle_unlock(weft_timer *h) {
    /* Release: pairs with the next holder's acquire CAS. */
    weft__atomic_store_release(&h->lock, 0);
}

/* The runtime's live handles, so that its destroy frees those the application left. */
struct weft__timer_registry {
    pthread_mutex_t lock;
    weft_timer *head; /* under lock */
};

weft__timer_registry *weft__timer_registry_create(void) {
    weft__timer_registry *r = weft__alloc(sizeof(*r), alignof(weft__timer_registry));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    r->head = NULL;
    return r;
}

static void registry_add(weft_runtime *rt, weft_timer *h) {
    weft__timer_registry *r = rt->timer_registry;
    pthread_mutex_lock(&r->lock);
    h->prev = NULL;
    h->next = r->head;
    if (h->next)
        h->next->prev = h;
    r->head = h;
    pthread_mutex_unlock(&r->lock);
}

static void free_handle(weft_timer *h) {
    weft__timer_registry *r = h->runtime->timer_registry;
    pthread_mutex_lock(&r->lock);
    if (h->prev)
        h->prev->next = h->next;
    else
        r->head = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&r->lock);
    weft__free(h, sizeof(*h));
}

/* Drops one reference; true if it was the last (the caller frees after unlocking). */
static bool put_locked(weft_timer *h) {
    return --h->refs == 0;
}

/* Stops whatever firing is pending: the arming in a wheel, an arm task's pending
 * deadline, a refire. True if there was one. Under lock. */
static bool disarm_locked(weft_timer *h) {
    bool stopped = false;
    h->generation++;
    if (h->armed) {
        weft__timer *tm = h->armed;
        /* Stopped either way: revoked here, or claimed by its owner (TIMER-H1) but not yet
         * current-checked (TIMER-H2), which it now fails, so the callback does not run. */
        h->armed = NULL;
        stopped = true;
        if (weft__timer_revoke(tm))
            h->refs--; /* the arming will never touch the handle: its reference goes */
    }
    if (h->pending_generation) {
        h->pending_generation = 0; /* the arm task finds a stale generation */
        stopped = true;
    }
    if (h->refire) {
        h->refire = false;
        stopped = true;
    }
    return stopped;
}

/* The calling thread's worker, if it is one of rt's. */
static weft__worker *local_worker(weft_runtime *rt) {
    weft__worker *w = weft__worker_current();
    return w && w->runtime == rt ? w : NULL;
}

/* Arms on w's wheel (the caller's own). Under lock. */
static int arm_here_locked(weft_timer *h, weft__worker *w, uint64_t deadline_ns) {
    weft__timer *tm = weft__timer_arm_handle(w->time, h, deadline_ns);
    if (!tm)
        return -ENOMEM;
    h->armed = tm;
    h->refs++; /* the arming's reference */
    return 0;
}

/* The task that carries an arm from a foreign thread to a worker. */
static void *arm_task(void *arg) {
    weft_timer *h = arg;
    handle_lock(h);
    if (h->pending_generation != 0 && h->pending_generation == h->generation) {
        h->pending_generation = 0;
        /* Fails only when the worker's pool cannot grow (malloc failed): the arm is
         * then dropped, as weft.h documents for arms from other threads. */
        (void)arm_here_locked(h, weft__worker_current(), h->pending_deadline);
    }
    bool last = put_locked(h); /* the arm task's reference */
    handle_unlock(h);
    if (last)
        free_handle(h);
    return NULL;
}

WEFT_API int weft_timer_create(weft_runtime *rt, weft_timer_fn fn, void *arg, weft_timer **out) {
    if (!rt || !fn || !out)
        return -EINVAL;
    weft_timer *h = weft__alloc(sizeof(*h), alignof(weft_timer));
    if (!h)
        return -ENOMEM;
    h->runtime = rt;
    h->fn = fn;
    h->arg = arg;
    weft__atomic_store_relaxed(&h->lock, 0); /* not shared until *out is published */
    h->refs = 1;
    /* A foreign call (RT-D4): the registry must not be destroyed under us. */
    bool foreign = weft__runtime_enter_if_foreign(rt);
    registry_add(rt, h);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    *out = h;
    return 0;
}

/* An arm from a thread that is not one of the runtime's workers: the deadline becomes
 * pending and an arm task carries it to a worker. The whole call is a foreign call
 * (runtime.c, RT-D4): a spawn failing with ESHUTDOWN may let a destroyer past RT-D2, and the
 * handle must stay allocated until we have unlocked it for the last time. */
static int arm_from_other_thread(weft_timer *h, uint64_t deadline_ns) {
    weft_runtime *rt = h->runtime;
    weft__runtime_foreign_enter(rt);
    handle_lock(h);
    disarm_locked(h);
    uint64_t generation = h->generation;
    h->pending_generation = generation;
    h->pending_deadline = deadline_ns;
    h->refs++; /* the arm task's reference */
    handle_unlock(h);
    weft_task *t = weft_spawn_on(rt, arm_task, h);
    int rc = 0;
    if (t) {
        weft_detach(t);
    } else {
        rc = -errno;
        handle_lock(h);
        if (h->pending_generation == generation)
            h->pending_generation = 0;
        /* The arm task's reference. Usually not the last, but a weft_timer_destroy from
         * another thread may have dropped the application's meanwhile. */
        bool last = put_locked(h);
        handle_unlock(h);
        if (last)
            free_handle(h);
    }
    weft__runtime_foreign_leave(rt);
    return rc;
}

WEFT_API int weft_timer_arm(weft_timer *h, uint64_t deadline_ns) {
    if (!h || deadline_ns == WEFT_FOREVER)
        return -EINVAL;
    weft__worker *w = local_worker(h->runtime);
    if (!w)
        return arm_from_other_thread(h, deadline_ns);
    handle_lock(h);
    disarm_locked(h);
    int rc = arm_here_locked(h, w, deadline_ns);
    handle_unlock(h);
    return rc;
}

WEFT_API int weft_timer_cancel(weft_timer *h) {
    if (!h)
        return -EINVAL;
    /* A foreign call (RT-D4, runtime.c): weft__timer_registry_destroy must not free
     * the handle, nor destroy free the wheels' pools, while we revoke an arming. */
    weft_runtime *rt = h->runtime;
    bool foreign = weft__runtime_enter_if_foreign(rt);
    handle_lock(h);
    bool stopped = disarm_locked(h);
    handle_unlock(h);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return stopped ? 1 : 0;
}

WEFT_API int weft_timer_destroy(weft_timer *h) {
    if (!h)
        return -EINVAL;
    weft_runtime *rt = h->runtime;
    /* A foreign call (RT-D4), as a cancel: without it a destroy racing runtime destroy
     * could free the handle twice (here and in weft__timer_registry_destroy). */
    bool foreign = weft__runtime_enter_if_foreign(rt);
    weft__worker *me = weft__worker_current();
    /* In a timer callback (on a worker, outside any task) we must not wait: two
     * callbacks destroying each other's timers would wait for each other forever. */
    bool in_callback = me && !me->current;
    handle_lock(h);
    h->destroyed = true;
    disarm_locked(h);
    /* A callback running elsewhere finishes first (short by contract); one running on
     * this thread is our caller, and frees the handle when it returns. */
    unsigned rounds = 0;
    while (h->running && h->runner != me && !in_callback) {
        handle_unlock(h);
        weft__spin_wait(&rounds);
        handle_lock(h);
    }
    bool last = put_locked(h); /* the application's reference */
    handle_unlock(h);
    WEFT__CHAOS_POINT(rt->chaos_seed, "TIMER-H4");
    if (last)
        free_handle(h);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return 0;
}

void weft__timer_handle_fire(weft__time_driver *td, weft__timer *tm) {
    weft__worker *w = td->worker;
    weft_timer *h = tm->handle;
    handle_lock(h);
    /* (TIMER-H2) */
    bool run = h->armed == tm;
    if (run)
        h->armed = NULL;
    if (run && h->running) { /* (TIMER-H3) */
        h->refire = true;
        run = false;
    }
    bool last = false;
    if (run) {
        h->running = true; /* the arming's reference passes to the callback */
        h->runner = w;
    } else {
        last = put_locked(h);
    }
    handle_unlock(h);
    weft__pool_free(&td->timers, tm, &td->timers); /* after TIMER-H2: see the top of the file */
    if (!run) {
        if (last)
            free_handle(h);
        return;
    }
    for (;;) {
        h->fn(h, h->arg);
        handle_lock(h);
        if (h->refire && !h->destroyed) {
            h->refire = false;
            handle_unlock(h);
            continue;
        }
        h->refire = false;
        h->running = false;
        last = put_locked(h);
        handle_unlock(h);
        if (last)
            free_handle(h);
        return;
    }
}

void weft__timer_registry_destroy(weft__timer_registry *r) {
    if (!r)
        return;
    /* Every task has finished, every worker has exited and no foreign call is inside
     * (RT-D4): no arming will fire and no callback runs. Armings still in wheels hold
     * references too, but their pools are freed with the drivers: free every handle. */
    while (r->head) {
        weft_timer *h = r->head;
        r->head = h->next;
        weft__free(h, sizeof(*h));
    }
    pthread_mutex_destroy(&r->lock);
    weft__free(r, sizeof(*r));
}
