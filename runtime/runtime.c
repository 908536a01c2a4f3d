/*
 * runtime.c: the public API: creating and destroying runtimes, spawning, joining,
 * detaching, yielding, naming and statistics. Owns the runtime object's lifetime and
 * the shutdown protocol; scheduling is worker.c's, task states are task.c's.
 *
 * Shutdown (weft_runtime_destroy waits for every task, detached ones included, while a
 * thread that is not a worker may be spawning at the same moment):
 *
 *   destroyer                               spawner from another thread
 *   (RT-D1) claim the runtime (CAS), then   (RT-S1) live_tasks += 1 (full RMW)
 *        shutting_down := 1 (full RMW)      (RT-S2) read shutting_down (full): if set,
 *   (RT-D2) wait until live_tasks == 0,          undo S1 (as a task finishing would)
 *        sleeping on `quiescent`                 and fail with ESHUTDOWN
 *   (RT-D3) stopping := 1; wake every
 *        worker; join them
 *   (RT-D4) wait until no foreign call is inside rt; free everything
 *
 *   finishing task (its worker)
 *   (RT-F1) live_tasks -= n (full RMW)
 *   (RT-F2) if it reached 0 and shutting_down (full read): bump `quiescent`, wake it
 *
 * Foreign calls (RT-D4). Every call into rt from a thread that is not one of rt's
 * workers is counted in `foreign_calls` for its whole length: spawn, join, detach,
 * block_on, timer arm, cancel and destroy, and a completer on another runtime's worker
 * that still has to wake one of rt's idle workers after its joiner may have run on
 * (worker.c, finish). A foreign spawner that backs out in S2 runs F1 and F2 itself, and
 * F1 may be what lets the destroyer past D2: without D4 its F2 (or a detach's free
 * into a pool, a timer cancel's revoke, another runtime's wake) would touch freed
 * memory. A call that begins after D4 has seen 0 uses rt after destroy, which is the
 * caller's bug, as any use after destroy returns. rt's own workers need no count: D3
 * joins them before anything is freed.
 *
 * S1/D1 are RMWs on different words read back by S2/D2: either the spawner sees
 * shutting_down and backs out, or the destroyer sees its task counted and waits for
 * it. F1/F2 against D1/D2: either the finisher sees shutting_down and wakes the
 * destroyer, or the destroyer's read of live_tasks comes after F1 and sees 0. Tasks
 * spawned by tasks need no check: while one runs, live_tasks > 0.
 *
 * Counting live tasks without a shared cache line on every spawn. live_tasks counts the
 * live tasks plus the credits workers hold: slots taken from it a batch (live_batch,
 * 64) at a time by a worker whose tasks spawn, and returned by the worker where tasks
 * end, beyond two batches, and in full whenever a worker goes to park (worker.c). So a
 * spawn and an exit touch the shared word once per batch, not once each (fib on 2
 * workers spent half its time on that word's cache line). Shutdown is unchanged: once
 * every task has finished, every worker runs dry and parks, returning its credits, and
 * the return that empties live_tasks is RT-F1. The price is max_tasks's precision: other
 * workers may hold up to 2 * 64 unused slots each, so with a large max_tasks a spawn can
 * fail slightly early. When max_tasks < 1024 * workers, live_batch is 0: every spawn
 * and exit counts on live_tasks itself, and the limit is exact.
 */
#include "sched/worker.h"

#include "base/futex.h"
#include "base/memory.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static weft_task *current_task(weft__worker **worker) {
    weft__worker *w = weft__worker_current();
    if (worker)
        *worker = w;
    return w ? w->current : NULL;
}

static int resolve_config(const weft_config *cfg, weft_config *out) {
    weft_config c = {0};
    if (cfg)
        c = *cfg;
    if (c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c.workers = n > 0 ? (unsigned)(n < (long)WEFT_MAX_WORKERS ? n : WEFT_MAX_WORKERS) : 1;
    }
    if (c.workers > WEFT_MAX_WORKERS)
        return -EINVAL;
    if (c.stack_size == 0)
        c.stack_size = WEFT_DEFAULT_STACK_SIZE;
    if (c.stack_size < WEFT_MIN_STACK_SIZE || c.stack_size > WEFT_MAX_STACK_SIZE)
        return -EINVAL;
    if (c.max_tasks == 0)
        c.max_tasks = WEFT_DEFAULT_MAX_TASKS;
    if (c.max_tasks > WEFT_MAX_MAX_TASKS)
        return -EINVAL;
    if (c.flags & ~(WEFT_CONFIG_NO_INLINE_JOIN | WEFT_CONFIG_NO_CHAOS))
        return -EINVAL;
    *out = c;
    return 0;
}

static void free_runtime(weft_runtime *rt) {
    weft__timer_handles_destroy_all(rt);
    pthread_mutex_destroy(&rt->timer_handles_lock);
    for (unsigned i = 0; i < rt->worker_count; i++) {
        weft__worker *w = rt->workers[i];
        if (!w)
            continue;
        weft__timers_destroy(w);
        weft__pool_destroy(&w->tasks);
        weft__deque_destroy(&w->deque);
        weft__free(w, sizeof(*w));
    }
    weft__free(rt->workers, sizeof(*rt->workers) * rt->worker_count);
    weft__pool_destroy(&rt->shared_tasks);
    pthread_mutex_destroy(&rt->shared_tasks_lock);
    weft__stack_depot_destroy(&rt->stacks);
    weft__idle_destroy(&rt->idle);
    weft__inject_destroy(&rt->inject);
    weft__free(rt, sizeof(*rt));
    weft__account_runtimes(-1);
    weft__fault_uninstall();
}

/* (RT-D3) Stops the workers that were started and waits for them. */
static void stop_workers(weft_runtime *rt, unsigned started) {
    /* Release: pairs with the workers' acquire loads of stopping. */
    weft__atomic_store_release(&rt->stopping, 1);
    for (unsigned i = 0; i < started; i++)
        weft__worker_unpark(rt->workers[i]);
    for (unsigned i = 0; i < started; i++)
        pthread_join(rt->workers[i]->thread, NULL);
}

WEFT_API int weft_runtime_create(const weft_config *cfg, weft_runtime **out) {
    if (!out)
        return -EINVAL;
    weft_config c;
    int err = resolve_config(cfg, &c);
    if (err)
        return err;
    if ((err = weft__fault_install()) != 0)
        return err;
    weft_runtime *rt = weft__alloc(sizeof(*rt), 64);
    if (!rt) {
        weft__fault_uninstall();
        return -ENOMEM;
    }
    weft__account_runtimes(1);
    rt->worker_count = c.workers;
    rt->stack_size = c.stack_size;
    rt->max_tasks = c.max_tasks;
    rt->inline_join = !(c.flags & WEFT_CONFIG_NO_INLINE_JOIN);
    rt->live_batch = c.max_tasks >= (size_t)1024 * c.workers ? 64 : 0;
    rt->chaos_seed = c.chaos_seed                       ? c.chaos_seed
                     : (c.flags & WEFT_CONFIG_NO_CHAOS) ? 0
                                                        : weft__chaos_env_seed();
    weft__inject_init(&rt->inject);
    pthread_mutex_init(&rt->shared_tasks_lock, NULL);
    pthread_mutex_init(&rt->timer_handles_lock, NULL);
    weft__pool_init(&rt->shared_tasks, sizeof(weft_task), &rt->shared_tasks_lock);
    int idle_err = weft__idle_init(&rt->idle, c.workers);
    int stack_err = weft__stack_depot_init(&rt->stacks, c.stack_size);
    rt->workers = weft__alloc(sizeof(*rt->workers) * c.workers, sizeof(void *));
    if (idle_err || stack_err || !rt->workers) {
        /* free_runtime expects every part initialised: make the failed ones harmless. */
        if (idle_err)
            weft__idle_init(&rt->idle, 0);
        if (stack_err)
            weft__stack_depot_init(&rt->stacks, c.stack_size);
        rt->worker_count = rt->workers ? c.workers : 0;
        free_runtime(rt);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < c.workers; i++) {
        weft__worker *w = weft__alloc(sizeof(*w), 64);
        if (!w || weft__deque_init(&w->deque, WEFT__DEQUE_CAPACITY) != 0) {
            weft__free(w, sizeof(*w));
            free_runtime(rt);
            return -ENOMEM;
        }
        rt->workers[i] = w;
        w->runtime = rt;
        w->index = i;
        w->random = 0x9e3779b97f4a7c15ull * (i + 1); /* any non-zero seed */
        weft__chaos_init(&w->chaos, rt->chaos_seed, i);
        if (weft__chaos_on(&w->chaos)) /* chaos: steal victims from the seed too */
            w->random = w->chaos.state;
        weft__fifo_init(&w->yield_queue);
        weft__pool_init(&w->tasks, sizeof(weft_task), NULL);
        weft__timers_init(w);
    }
    for (unsigned i = 0; i < c.workers; i++) {
        if (pthread_create(&rt->workers[i]->thread, NULL, weft__worker_main, rt->workers[i])) {
            stop_workers(rt, i);
            free_runtime(rt);
            return -EAGAIN;
        }
    }
    *out = rt;
    return 0;
}

/* (RT-F1, RT-F2) for n slots: gives them back to live_tasks and wakes the destroyer if that
 * emptied it during shutdown. */
static void release_live(weft_runtime *rt, AO_t n) {
    if (n == 0)
        return;
    /* (RT-F1) Full: pairs with RT-D1/RT-D2. */
    AO_t before = weft__atomic_fetch_add_full(&rt->live_tasks, (AO_t)0 - n);
    WEFT__CHAOS_POINT(rt->chaos_seed, "RT-F1");
    /* (RT-F2) Full read: ordered after RT-F1. Only when the count reached 0. */
    if (before == n && weft__atomic_load_full(&rt->shutting_down)) {
        weft__atomic_u32_fetch_add_full(&rt->quiescent, 1);
        weft__futex_wake(&rt->quiescent, INT_MAX);
    }
}

void weft__runtime_task_done(weft_runtime *rt, weft__worker *w) {
    if (!rt->live_batch || !w) {
        release_live(rt, 1);
        return;
    }
    /* Keep the slot as a credit for this worker's next spawn; give back what exceeds
     * two batches, so that credits do not pile up on the worker where tasks end. */
    if (++w->live_credit > 2 * rt->live_batch) {
        release_live(rt, w->live_credit - rt->live_batch);
        w->live_credit = rt->live_batch;
    }
}

void weft__runtime_release_credit(weft_runtime *rt, weft__worker *w) {
    release_live(rt, w->live_credit);
    w->live_credit = 0;
}

/* A slot in live_tasks for a spawn by a task on worker w: from w's credit, refilled a
 * batch at a time. False when max_tasks slots are taken. */
static bool take_live_credit(weft_runtime *rt, weft__worker *w) {
    if (w->live_credit == 0) {
        AO_t want = rt->live_batch;
        /* Full: as RT-S1 (not needed for shutdown here: while a task runs, live_tasks > 0;
         * but the count must not be undercut by a concurrent release). */
        AO_t before = weft__atomic_fetch_add_full(&rt->live_tasks, want);
        if (before + want > rt->max_tasks) {
            release_live(rt, want); /* never reaches 0: our own task is counted */
            want = 1;
            before = weft__atomic_fetch_add_full(&rt->live_tasks, 1);
            if (before >= rt->max_tasks) {
                release_live(rt, 1);
                return false;
            }
        }
        w->live_credit = want;
    }
    w->live_credit--;
    return true;
}

void weft__runtime_foreign_enter(weft_runtime *rt) {
    /* Full: counted before the call reads anything of rt that destroy may free. */
    weft__atomic_fetch_add_full(&rt->foreign_calls, 1);
}

void weft__runtime_foreign_leave(weft_runtime *rt) {
    WEFT__CHAOS_POINT(rt->chaos_seed, "RT-D4");
    /* Release: the call's last touch of rt; pairs with the destroyer's acquire wait. */
    weft__atomic_fetch_add_release(&rt->foreign_calls, (AO_t)-1);
}

static weft_task *spawn_counted(weft_runtime *rt, weft__worker *w, weft_fn fn, void *arg);

static weft_task *spawn(weft_runtime *rt, weft__worker *w, weft_fn fn, void *arg) {
    bool is_ours = w && w->runtime == rt && w->current;
    if (is_ours) /* a task of rt: while it runs, rt cannot be destroyed */
        return spawn_counted(rt, w, fn, arg);
    /* Any other caller may race weft_runtime_destroy: it counts itself as a foreign
     * call, which destroy waits out before it frees anything (RT-D4). */
    weft__runtime_foreign_enter(rt);
    int saved_errno;
    weft_task *t = spawn_counted(rt, w, fn, arg);
    saved_errno = errno;
    weft__runtime_foreign_leave(rt);
    errno = saved_errno;
    return t;
}

static weft_task *spawn_counted(weft_runtime *rt, weft__worker *w, weft_fn fn, void *arg) {
    bool is_ours = w && w->runtime == rt && w->current;
    if (is_ours && rt->live_batch) {
        if (!take_live_credit(rt, w)) {
            errno = EAGAIN;
            return NULL;
        }
    } else {
        /* (RT-S1) Full: counts the task before RT-S2 looks at shutting_down. */
        AO_t live = weft__atomic_fetch_add_full(&rt->live_tasks, 1);
        if (live >= rt->max_tasks) {
            release_live(rt, 1);
            errno = EAGAIN;
            return NULL;
        }
        WEFT__CHAOS_POINT(rt->chaos_seed, "RT-S1");
        /* (RT-S2) */
        if (!is_ours && weft__atomic_load_full(&rt->shutting_down)) {
            release_live(rt, 1);
            errno = ESHUTDOWN;
            return NULL;
        }
    }
    weft_task *t = weft__task_alloc(is_ours ? &w->tasks : &rt->shared_tasks);
    if (!t) {
        weft__runtime_task_done(rt, is_ours ? w : NULL);
        errno = ENOMEM;
        return NULL;
    }
    t->runtime = rt;
    t->fn = fn;
    t->arg = arg;
    t->id = weft__worker_next_id(is_ours ? w : NULL);
    if (is_ours) /* a statistic, per worker: no shared cache line on the spawn path */
        weft__atomic_store_relaxed(&w->tasks_spawned,
                                  weft__atomic_load_relaxed(&w->tasks_spawned) + 1);
    else
        weft__atomic_fetch_add_relaxed(&rt->tasks_spawned, 1);
    weft__worker_schedule(rt, t);
    return t;
}

WEFT_API weft_task *weft_spawn(weft_fn fn, void *arg) {
    weft__worker *w;
    weft_task *self = current_task(&w);
    if (!self) {
        errno = EPERM;
        return NULL;
    }
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    weft_task *t = spawn(w->runtime, w, fn, arg);
    if (t && w->runtime->chaos_seed) /* chaos: a preemption point after the spawn */
        weft__worker_chaos_yield();
    return t;
}

WEFT_API weft_task *weft_spawn_on(weft_runtime *rt, weft_fn fn, void *arg) {
    if (!rt || !fn) {
        errno = EINVAL;
        return NULL;
    }
    return spawn(rt, weft__worker_current(), fn, arg);
}

/* (JOIN-J5, task.c) Consumes a completed handle: result out, object freed. */
static int take_result(weft_task *t, void **result) {
    AO_t s = weft__task_await_wake_done(t);
    if (result)
        *result = (s & WEFT__TASK_START_FAILED) ? NULL : t->result;
    weft__worker *w = weft__worker_current();
    weft__task_free(t, w ? &w->tasks : NULL);
    return (s & WEFT__TASK_START_FAILED) ? -ENOMEM : 0;
}

/* (JOIN-X1) After the deadline passed: withdraw the registration so the handle is the
 * caller's again. If the child completed meanwhile, the completer has committed to
 * waking us: take the result instead (a success at the deadline). */
static int withdraw_join(weft_task *t, void **result) {
    WEFT__CHAOS_POINT(t->runtime->chaos_seed, "JOIN-X1");
    AO_t s = weft__atomic_load_relaxed(&t->state); /* a first guess for the CAS */
    for (;;) {
        if (s & WEFT__TASK_COMPLETE)
            return take_result(t, result);
        /* Full: pairs with JOIN-C2 on the same word; if we win, C2 sees no waiter and
         * never reads `joiner` for this registration. */
        AO_t seen = weft__atomic_cas_full(
            &t->state, s, s & ~(AO_t)(WEFT__TASK_JOIN_WAITING | WEFT__TASK_JOIN_CLAIMED));
        if (seen == s)
            return -ETIMEDOUT;
        s = seen;
    }
}

/* (JOIN-J2) Claims the handle for this join, completed or not: a detach racing us must
 * find it claimed, or free a completed child we are about to take. 0: claimed, not
 * complete; 1: claimed, complete (go to J5); -EINVAL: detached, or another join owns
 * it. */
static int claim_join(weft_task *t, AO_t s) {
    for (;;) {
        if (s & (WEFT__TASK_RELEASED | WEFT__TASK_JOIN_CLAIMED))
            return -EINVAL;
        /* Full: pairs with JOIN-R1 and with another join's J2 on the same word: exactly
         * one of them owns the handle. Its acquire half pairs with JOIN-C2's release
         * when the child is complete (`result` is then final). */
        AO_t seen = weft__atomic_cas_full(&t->state, s, s | WEFT__TASK_JOIN_CLAIMED);
        if (seen == s)
            return (s & WEFT__TASK_COMPLETE) ? 1 : 0;
        s = seen;
    }
}

/* (JOIN-J3) Publishes `me` and announces it. True: registered; false: the child
 * completed first, with WAKE_DONE set (go to J5). */
static bool register_joiner(weft_task *t, AO_t me) {
    /* Relaxed: the word is ours while we hold JOIN_CLAIMED; the CAS below publishes it. */
    weft__atomic_store_relaxed(&t->joiner, me);
    AO_t s = weft__atomic_load_relaxed(&t->state);
    for (;;) {
        if (s & WEFT__TASK_COMPLETE)
            return false;
        /* Full: release publishes `joiner` to JOIN-C3 (through C2's acquire); fails if
         * C2 came first. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, s | WEFT__TASK_JOIN_WAITING);
        if (seen == s)
            return true;
        s = seen;
    }
}

static int join_until(weft_task *t, uint64_t deadline_ns, void **result) {
    weft__worker *w;
    weft_task *self = current_task(&w);
    if (self == t)
        return -EDEADLK;
    uint64_t chaos = t->runtime->chaos_seed; /* immutable while the handle is ours */
    (void)chaos;
    weft__foreign_waiter waiter;
    weft__atomic_u32_store_release(&waiter.done, 0);
    AO_t me = self ? (AO_t)self : ((AO_t)&waiter | 1);
    /* (JOIN-J1) A first look, to fail early: relaxed, J2's CAS decides. */
    AO_t s = weft__atomic_load_relaxed(&t->state);
    if (s & WEFT__TASK_RELEASED)
        return -EINVAL; /* detached: the handle is not ours to join */
    if (!(s & WEFT__TASK_COMPLETE)) {
        if (deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns)
            return -ETIMEDOUT;
        if (self && w->runtime->chaos_seed) { /* chaos: a preemption point */
            weft__worker_chaos_yield();
            w = weft__worker_current(); /* we may have moved */
        }
    }
    WEFT__CHAOS_POINT(chaos, "JOIN-J1");
    int claimed = claim_join(t, s);
    if (claimed < 0)
        return claimed;
    if (claimed > 0)
        return take_result(t, result);
    WEFT__CHAOS_POINT(chaos, "JOIN-J2");
    if (!register_joiner(t, me))
        return take_result(t, result);
    WEFT__CHAOS_POINT(chaos, "JOIN-J3");
    /* Registered (J2, J3), so no other join or detach can touch t: if t has not started
     * and is next in our own deque, run it here, on our stack (worker.c). */
    if (self && deadline_ns == WEFT_FOREVER && w->runtime->inline_join &&
        weft__worker_join_inline(t))
        return take_result(t, result);
    /* (JOIN-J4) Park (a task) or sleep (a thread) until COMPLETE or the deadline. */
    if (self) {
        weft__timer *tm = NULL;
        if (deadline_ns != WEFT_FOREVER && !(tm = weft__timer_arm_current(deadline_ns))) {
            int rc = withdraw_join(t, result);
            return rc == -ETIMEDOUT ? -ENOMEM : rc;
        }
        for (;;) {
            if (weft__atomic_load_acquire(&t->state) & WEFT__TASK_COMPLETE) {
                if (tm)
                    weft__timer_release(tm);
                return take_result(t, result);
            }
            if (tm && weft__timer_fired(tm))
                break;
            weft__worker_suspend_current(WEFT__SWITCH_PARK);
        }
        weft__timer_release(tm);
    } else {
        for (;;) {
            if (weft__atomic_u32_load_acquire(&waiter.done))
                return take_result(t, result);
            if (deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns)
                break;
            weft__futex_wait_until(&waiter.done, 0, deadline_ns);
        }
    }
    return withdraw_join(t, result);
}

bool weft__runtime_enter_if_foreign(weft_runtime *rt) {
    weft__worker *w = weft__worker_current();
    if (w && w->runtime == rt)
        return false; /* one of rt's own threads: destroy joins it (RT-D3) first */
    weft__runtime_foreign_enter(rt);
    return true;
}

/* A join from a thread that is not one of the task's runtime's workers is a foreign call
 * (RT-D4): destroy may be waiting for the very task, and must not free it (or the
 * runtime) while the joiner is still taking its result. */
static int join_counted(weft_task *t, uint64_t deadline_ns, void **result) {
    if (!t)
        return -EINVAL;
    weft_runtime *rt = t->runtime;
    bool foreign = weft__runtime_enter_if_foreign(rt);
    int rc = join_until(t, deadline_ns, result);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return rc;
}

WEFT_API int weft_join(weft_task *t, void **result) {
    return join_counted(t, WEFT_FOREVER, result);
}

WEFT_API int weft_join_until(weft_task *t, uint64_t deadline_ns, void **result) {
    return join_counted(t, deadline_ns, result);
}

WEFT_API void weft_detach(weft_task *t) {
    if (!t)
        return;
    weft_runtime *rt = t->runtime;
    /* A foreign call (RT-D4): a detach of a finished task frees it into a pool, which
     * destroy must not free under us. */
    bool foreign = weft__runtime_enter_if_foreign(rt);
    AO_t s = weft__atomic_load_relaxed(&t->state); /* a first guess for the CAS */
    for (;;) {
        if (s & (WEFT__TASK_JOIN_CLAIMED | WEFT__TASK_RELEASED))
            goto out; /* a join owns the handle, or it was detached already */
        WEFT__CHAOS_POINT(rt->chaos_seed, "JOIN-R1");
        /* (JOIN-R1) Full: pairs with JOIN-C2 and JOIN-J2 on the same word; whichever
         * comes second sees the other's bit. */
        AO_t seen = weft__atomic_cas_full(&t->state, s, s | WEFT__TASK_RELEASED);
        if (seen == s)
            break;
        s = seen;
    }
    if (s & WEFT__TASK_COMPLETE) { /* finished already: the last reference is ours */
        WEFT__CHAOS_POINT(rt->chaos_seed, "JOIN-R2");
        weft__worker *w = weft__worker_current();
        /* Our own pool only if we are one of rt's workers: pools are per runtime. */
        weft__task_free(t, w && w->runtime == rt ? &w->tasks : NULL);
    }
out:
    if (foreign)
        weft__runtime_foreign_leave(rt);
}

WEFT_API void weft_yield(void) {
    if (!current_task(NULL))
        return;
    /* Straight to the next yielded task, or nothing to do; otherwise through the
     * scheduler. (It checks due timers: a task yielding in a loop must not starve the
     * timers of its own worker, which fires them only between tasks.) */
    if (weft__worker_yield_current())
        return;
    weft__worker_suspend_current(WEFT__SWITCH_YIELD);
}

WEFT_API int weft_block_on(weft_runtime *rt, weft_fn fn, void *arg, void **result) {
    if (!rt || !fn)
        return -EINVAL;
    if (weft__worker_current())
        return -EDEADLK;
    /* One foreign call (RT-D4) around the spawn and the join: between the two the task may
     * finish and a destroyer pass RT-D2, and the join must still find t and rt allocated. */
    weft__runtime_foreign_enter(rt);
    weft_task *t = weft_spawn_on(rt, fn, arg);
    int rc = t ? weft_join(t, result) : -errno;
    weft__runtime_foreign_leave(rt);
    return rc;
}

WEFT_API int weft_runtime_destroy(weft_runtime *rt) {
    if (!rt)
        return -EINVAL;
    weft__worker *w = weft__worker_current();
    if (w && w->runtime == rt)
        return -EDEADLK;
    /* Full: one destroyer. */
    if (weft__atomic_cas_full(&rt->destroy_claimed, 0, 1) != 0)
        return -EBUSY;
    /* (RT-D1) */
    weft__atomic_fetch_add_full(&rt->shutting_down, 1);
    /* (RT-D2) Read `quiescent` before live_tasks: a bump after our read makes the futex
     * wait return at once. */
    for (;;) {
        unsigned seen = weft__atomic_u32_load_acquire(&rt->quiescent);
        if (weft__atomic_load_full(&rt->live_tasks) == 0)
            break;
        weft__futex_wait(&rt->quiescent, seen);
    }
    /* (RT-D3) */
    stop_workers(rt, rt->worker_count);
    /* (RT-D4) A spawn or timer arm from another thread that failed with ESHUTDOWN, or whose
     * task already finished, may still be on its way out of rt: wait for its last
     * touch. Each is a few instructions from its end, so spin, yielding the CPU. */
    unsigned rounds = 0;
    while (weft__atomic_load_acquire(&rt->foreign_calls) != 0)
        weft__spin_wait(&rounds);
    free_runtime(rt);
    return 0;
}

WEFT_API int weft_run(const weft_config *cfg, weft_fn fn, void *arg, void **result) {
    if (!fn)
        return -EINVAL;
    if (weft__worker_current())
        return -EDEADLK;
    weft_runtime *rt;
    int err = weft_runtime_create(cfg, &rt);
    if (err)
        return err;
    err = weft_block_on(rt, fn, arg, result);
    int destroy_err = weft_runtime_destroy(rt);
    return err ? err : destroy_err;
}

WEFT_API uint64_t weft_current_id(void) {
    weft_task *self = current_task(NULL);
    return self ? self->id : 0;
}

WEFT_API int weft_set_name(const char *name) {
    if (!name)
        return -EINVAL;
    weft_task *self = current_task(NULL);
    if (!self)
        return -EPERM;
    size_t n = strnlen(name, WEFT_NAME_MAX - 1);
    memcpy(self->name, name, n);
    self->name[n] = '\0';
    return 0;
}

WEFT_API int weft_runtime_stats_get(weft_runtime *rt, weft_runtime_stats *out) {
    if (!rt || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->workers = rt->worker_count;
    /* Relaxed throughout: independent counters read for a report. */
    out->tasks_spawned = weft__atomic_load_relaxed(&rt->tasks_spawned);
    uint64_t live = weft__pool_live(&rt->shared_tasks);
    for (unsigned i = 0; i < rt->worker_count; i++) {
        out->tasks_spawned += weft__atomic_load_relaxed(&rt->workers[i]->tasks_spawned);
        live += weft__pool_live(&rt->workers[i]->tasks);
        out->steals += weft__atomic_load_relaxed(&rt->workers[i]->steals);
        out->joins_inline += weft__atomic_load_relaxed(&rt->workers[i]->joins_inline);
    }
    out->tasks_live = live;
    out->stacks_mapped = weft__atomic_load_relaxed(&rt->stacks.mapped);
    out->stacks_guarded = weft__atomic_load_relaxed(&rt->stacks.guarded);
    out->stack_bytes = weft__atomic_load_relaxed(&rt->stacks.bytes);
    return 0;
}
