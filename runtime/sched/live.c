/*
 * live.c: who is inside a runtime: its live tasks (counted with per-worker credits) and
 * the calls from other threads in flight (foreign calls). The shutdown protocol that
 * reads both is written out in runtime/runtime.c (RT-D1..D4); the steps here are its
 * other halves: RT-S1/RT-S2 (a spawn counts itself, then checks for shutdown) and
 * RT-F1/RT-F2 (a finishing task uncounts itself, and wakes the destroyer if it was the
 * last).
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
#include "sched/runtime.h"

#include "base/chaos.h"
#include "base/futex.h"

#include <errno.h>
#include <limits.h>

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

/* (RT-S1, RT-S2) Counts a task about to be spawned on rt by worker w (NULL: a thread
 * that is not one of rt's workers; is_ours: w runs a task of rt). 0, or EAGAIN
 * (max_tasks reached), ESHUTDOWN (destroy has begun and the caller is not one of rt's
 * tasks). */
int weft__runtime_count_spawn_slow(weft_runtime *rt, weft__worker *w, bool is_ours) {
    if (is_ours && rt->live_batch) {
        if (!take_live_credit(rt, w))
            return EAGAIN;
    } else {
        /* (RT-S1) Full: counts the task before RT-S2 looks at shutting_down. */
        AO_t live = weft__atomic_fetch_add_full(&rt->live_tasks, 1);
        if (live >= rt->max_tasks) {
            release_live(rt, 1);
            return EAGAIN;
        }
        WEFT__CHAOS_POINT(rt->chaos_seed, "RT-S1");
        /* (RT-S2) */
        if (!is_ours && weft__atomic_load_full(&rt->shutting_down)) {
            release_live(rt, 1);
            return ESHUTDOWN;
        }
    }
    return 0;
}
