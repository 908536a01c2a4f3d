/*
 * runtime.c: the composition root. Builds a runtime from the rooms below it (the
 * scheduler's workers, each worker's driver stack (the I/O driver over the time
 * driver), the reactor and the blocking pool) and tears it down; the public calls that act on a whole runtime (create, destroy, run,
 * block_on, statistics). It is the one file that includes every room; nothing includes
 * it. Owns the shutdown protocol:
 *
 * Shutdown (weft_runtime_destroy waits for every task, detached ones included, while a
 * thread that is not a worker may be spawning at the same moment):
 *
 *   destroyer                               spawner from another thread
 *   (RT-D1) claim the runtime (CAS), then   (RT-S1) live_tasks += 1 (full RMW)
 *        shutting_down := 1 (full RMW)      (RT-S2) read shutting_down (full): if set,
 *   (RT-D2) wait until live_tasks == 0,          undo RT-S1 (as a task finishing would)
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
 * block_on, timer create, arm, cancel and destroy, statistics, and a completer on
 * another runtime's worker that still has to wake one of rt's idle workers after its
 * joiner may have run on (sched/join.c, JOIN-C4). A foreign spawner that backs out in
 * S2 runs F1 and F2 itself, and F1 may be what lets the destroyer past D2: without D4
 * its F2 (or a detach's free into a pool, a timer cancel's revoke, another runtime's
 * wake) would touch freed memory. The count begins a few instructions into the call
 * (after it has read rt from its argument): a call that has not got that far when D4
 * reads 0 is not waited for, which is why weft.h asks that such calls begin while a
 * task of rt is still alive; one that begins after destroy returned is the caller's
 * bug, as any use after destroy. rt's own workers need no count: D3 joins them before
 * anything is freed.
 *
 * S1/D1 are RMWs on different words read back by S2/D2: either the spawner sees
 * shutting_down and backs out, or the destroyer sees its task counted and waits for
 * it. F1/F2 against D1/D2: either the finisher sees shutting_down and wakes the
 * destroyer, or the destroyer's read of live_tasks comes after F1 and sees 0. Tasks
 * spawned by tasks need no check: while one runs, live_tasks > 0. (D1..D4, S1, S2, F1
 * and F2 in this comment are RT-D1..RT-F2.)
 */
#include "debug/debug.h"
#include "io/blocking.h"
#include "io/reactor.h"
#include "sched/fault.h"
#include "sched/runtime.h"
#include "time/timer.h"

#include "base/chaos.h"
#include "base/futex.h"
#include "base/memory.h"
#include "base/ticks.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    if (c.max_blocking_threads == 0)
        c.max_blocking_threads = WEFT_DEFAULT_BLOCKING_THREADS;
    if (c.max_blocking_threads > WEFT_MAX_BLOCKING_THREADS)
        return -EINVAL;
    if (c.blocking_keep_alive_ms == 0)
        c.blocking_keep_alive_ms = WEFT_DEFAULT_BLOCKING_KEEP_ALIVE_MS;
    if (c.long_slice_us == 0)
        c.long_slice_us = WEFT_DEFAULT_LONG_SLICE_US;
    *out = c;
    return 0;
}

/* A worker and its driver stack: the I/O driver on top of the time driver. NULL on
 * ENOMEM. */
static weft__worker *create_worker(weft_runtime *rt, unsigned index) {
    weft__worker *w = weft__alloc(sizeof(*w), 64);
    if (!w)
        return NULL;
    if (weft__deque_init(&w->deque, WEFT__DEQUE_CAPACITY) != 0)
        goto fail_worker;
    w->runtime = rt;
    w->index = index;
    w->random = 0x9e3779b97f4a7c15ull * (index + 1); /* any non-zero seed */
    weft__chaos_init(&w->chaos, rt->chaos_seed, index);
    if (weft__chaos_on(&w->chaos)) /* chaos: steal victims from the seed too */
        w->random = w->chaos.state;
    weft__fifo_init(&w->yield_queue);
    weft__pool_init(&w->tasks, sizeof(weft_task), NULL);
    w->time = weft__time_driver_create(w);
    if (!w->time)
        goto fail_deque;
    w->driver = weft__io_driver_create(rt->reactor, w, &w->time->driver);
    if (!w->driver)
        goto fail_time;
    return w;
fail_time:
    w->time->driver.ops->destroy(&w->time->driver);
fail_deque:
    weft__deque_destroy(&w->deque);
fail_worker:
    weft__free(w, sizeof(*w));
    return NULL;
}

/* After the worker's thread has exited (or never started). */
static void destroy_worker(weft__worker *w) {
    w->driver->ops->destroy(w->driver); /* the whole stack, the time driver included */
    weft__pool_destroy(&w->tasks);
    weft__deque_destroy(&w->deque);
    weft__free(w, sizeof(*w));
}

/* The last rung of weft_runtime_create's ladder: what it set up before the first step
 * that can fail. */
static void free_core(weft_runtime *rt) {
    weft__pool_destroy(&rt->shared_tasks);
    pthread_mutex_destroy(&rt->shared_tasks_lock);
    pthread_mutex_destroy(&rt->trace_lock);
    weft__inject_destroy(&rt->inject);
    weft__free(rt, sizeof(*rt));
    weft__account_runtimes(-1);
    weft__fault_uninstall();
}

/* (after RT-D4) Frees a runtime whose workers have exited, in the reverse order of
 * weft_runtime_create. */
static void free_runtime(weft_runtime *rt) {
    /* The pool first: its threads may still be on their way out of a delivery. */
    weft__blocking_pool_destroy(rt->blocking);
    for (unsigned i = 0; i < rt->worker_count; i++)
        destroy_worker(rt->workers[i]);
    weft__free(rt->workers, sizeof(*rt->workers) * rt->worker_count);
    weft__reactor_destroy(rt->reactor);
    weft__timer_registry_destroy(rt->timer_registry);
    weft__stack_depot_destroy(&rt->stacks);
    weft__idle_destroy(&rt->idle);
    free_core(rt);
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
    static weft__atomic_word runtimes_created;
    rt->number = weft__atomic_fetch_add_relaxed(&runtimes_created, 1) + 1; /* a name only */
    rt->tick_factor = weft__ticks_factor();
    rt->long_slice_ticks = weft__ns_to_ticks((uint64_t)c.long_slice_us * 1000u, rt->tick_factor);
    weft__inject_init(&rt->inject);
    pthread_mutex_init(&rt->trace_lock, NULL);
    pthread_mutex_init(&rt->shared_tasks_lock, NULL);
    weft__pool_init(&rt->shared_tasks, sizeof(weft_task), &rt->shared_tasks_lock);
    /* The cleanup ladder: each failure undoes, in reverse, what succeeded before it. */
    err = -ENOMEM;
    if (weft__idle_init(&rt->idle, c.workers) != 0)
        goto fail_shared;
    if (weft__stack_depot_init(&rt->stacks, c.stack_size) != 0)
        goto fail_idle;
    if (!(rt->timer_registry = weft__timer_registry_create()))
        goto fail_stacks;
    if (!(rt->blocking = weft__blocking_pool_create(rt, c.max_blocking_threads,
                                                    (uint64_t)c.blocking_keep_alive_ms * 1000000u)))
        goto fail_registry;
    if (!(rt->reactor = weft__reactor_create(rt))) {
        err = errno == EMFILE || errno == ENFILE ? -errno : -ENOMEM;
        goto fail_blocking;
    }
    rt->workers = weft__alloc(sizeof(*rt->workers) * c.workers, sizeof(void *));
    if (!rt->workers)
        goto fail_reactor;
    unsigned made, started;
    for (made = 0; made < c.workers; made++)
        if (!(rt->workers[made] = create_worker(rt, made)))
            goto fail_workers;
    weft__debug_runtime_created(rt); /* dump list, WEFT_DUMP_SIGNAL, WEFT_TRACE */
    for (started = 0; started < c.workers; started++) {
        weft__worker *w = rt->workers[started];
        if (pthread_create(&w->thread, NULL, weft__worker_main, w) != 0) {
            err = -EAGAIN;
            goto fail_threads;
        }
    }
    *out = rt;
    return 0;

fail_threads:
    weft__debug_runtime_leaving(rt);
    stop_workers(rt, started);
    weft__debug_runtime_stopped(rt);
fail_workers:
    while (made > 0)
        destroy_worker(rt->workers[--made]);
    weft__free(rt->workers, sizeof(*rt->workers) * c.workers);
fail_reactor:
    weft__reactor_destroy(rt->reactor);
fail_blocking:
    weft__blocking_pool_destroy(rt->blocking);
fail_registry:
    weft__timer_registry_destroy(rt->timer_registry);
    rt->timer_registry = NULL;
fail_stacks:
    weft__stack_depot_destroy(&rt->stacks);
fail_idle:
    weft__idle_destroy(&rt->idle);
fail_shared:
    free_core(rt);
    return err;
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
    weft__debug_runtime_stopped(rt); /* a trace still running: written now */
    /* Only now out of the signal dumps: a program stuck in its shutdown (RT-D2 waiting
     * for a task that never ends) is what a dump is for. A dump in progress pinned rt
     * (RT-D4 waits for it). */
    weft__debug_runtime_leaving(rt);
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

/* Worker i's statistics (weft_worker_stats), relaxed reads: a report. */
static void worker_stats(weft_runtime *rt, unsigned i, weft_worker_stats *out) {
    weft__worker *w = rt->workers[i];
    weft__worker_metrics *m = &w->metrics;
    memset(out, 0, sizeof(*out));
    out->busy_ns = weft__ticks_to_ns(weft__atomic_load_relaxed(&m->busy_ticks), rt->tick_factor);
    out->slices = weft__atomic_load_relaxed(&m->slices);
    out->slices_long = weft__atomic_load_relaxed(&m->slices_long);
    out->parks = weft__atomic_load_relaxed(&m->parks);
    out->steal_attempts = weft__atomic_load_relaxed(&m->steal_attempts);
    out->steals = weft__atomic_load_relaxed(&w->steals);
    weft__reactor_worker_stats(rt->reactor, i, &out->io_polls, &out->io_events);
    out->timers_armed = weft__atomic_load_relaxed(&w->time->armed_total);
    out->timers_fired = weft__atomic_load_relaxed(&w->time->fired_total);
    out->queue_length =
        weft__deque_size_any(&w->deque) + weft__atomic_load_relaxed(&w->yield_length);
    out->running_task = weft__atomic_load_relaxed(&w->running_id);
    out->parked = weft__atomic_load_relaxed(&w->parked) != 0;
    out->delay_samples = weft__atomic_load_relaxed(&m->delay_samples);
    for (unsigned b = 0; b < WEFT_HISTOGRAM_BUCKETS; b++) {
        out->slice_histogram[b] = weft__atomic_load_relaxed(&m->slice_histogram[b]);
        out->delay_histogram[b] = weft__atomic_load_relaxed(&m->delay_histogram[b]);
    }
}

WEFT_API int weft_worker_stats_get(weft_runtime *rt, unsigned index, weft_worker_stats *out) {
    if (!rt || !out || index >= rt->worker_count)
        return -EINVAL;
    /* A foreign call (RT-D4): destroy frees nothing while we read. */
    bool foreign = weft__runtime_enter_if_foreign(rt);
    worker_stats(rt, index, out);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return 0;
}

WEFT_API int weft_runtime_stats_get(weft_runtime *rt, weft_runtime_stats *out) {
    if (!rt || !out)
        return -EINVAL;
    /* A foreign call (RT-D4): destroy frees nothing while we read. */
    bool foreign = weft__runtime_enter_if_foreign(rt);
    memset(out, 0, sizeof(*out));
    out->workers = rt->worker_count;
    /* Relaxed throughout: independent counters read for a report. */
    out->tasks_spawned = weft__atomic_load_relaxed(&rt->tasks_spawned);
    uint64_t live = weft__pool_live(&rt->shared_tasks);
    for (unsigned i = 0; i < rt->worker_count; i++) {
        weft__worker *w = rt->workers[i];
        out->tasks_spawned += weft__atomic_load_relaxed(&w->tasks_spawned);
        out->tasks_finished += weft__atomic_load_relaxed(&w->tasks_finished);
        live += weft__pool_live(&w->tasks);
        out->joins_inline += weft__atomic_load_relaxed(&w->joins_inline);
        weft_worker_stats ws;
        worker_stats(rt, i, &ws);
        out->steals += ws.steals;
        out->io_polls += ws.io_polls;
        out->io_events += ws.io_events;
        out->busy_ns += ws.busy_ns;
        out->slices += ws.slices;
        out->slices_long += ws.slices_long;
        out->parks += ws.parks;
        out->steal_attempts += ws.steal_attempts;
        out->timers_armed += ws.timers_armed;
        out->timers_fired += ws.timers_fired;
        out->queue_length += ws.queue_length;
        out->delay_samples += ws.delay_samples;
        for (unsigned b = 0; b < WEFT_HISTOGRAM_BUCKETS; b++) {
            out->slice_histogram[b] += ws.slice_histogram[b];
            out->delay_histogram[b] += ws.delay_histogram[b];
        }
    }
    out->tasks_live = live;
    out->inject_length = weft__inject_length_any(&rt->inject);
    out->stacks_mapped = weft__atomic_load_relaxed(&rt->stacks.mapped);
    out->stacks_guarded = weft__atomic_load_relaxed(&rt->stacks.guarded);
    out->stack_bytes = weft__atomic_load_relaxed(&rt->stacks.bytes);
    weft__blocking_stats blocking;
    weft__blocking_pool_stats(rt->blocking, &blocking);
    out->blocking_threads = blocking.threads;
    out->blocking_busy = blocking.busy;
    out->blocking_queued = blocking.queued;
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return 0;
}
