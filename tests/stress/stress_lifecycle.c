/*
 * stress_lifecycle.c: weft_runtime_create and weft_runtime_destroy in a loop (1,000
 * times at scale 1; 500 under TSan, where every thread start is slow), each destroy
 * called while work is still in flight:
 *   - detached tasks that yield, sleep, and spawn detached children of their own;
 *   - timer handles armed from tasks, some to fire during the shutdown, some an hour
 *     away (they must not delay it and never fire), some destroyed, most left for
 *     weft_runtime_destroy to free;
 *   - a thread that is not a worker spawning tasks (detached or joined by itself) and
 *     arming a timer in a loop, racing the destroy: each spawn either succeeds or fails
 *     with ESHUTDOWN, each arm returns 0 or -ESHUTDOWN, and once refused, always refused.
 *     A detached "gate" task holds the runtime open until that thread has stopped
 *     calling into it (using a runtime after its destroy returned is undefined).
 * Worker count (1 to 3) and inline joins (on or off) are drawn from the seed each time.
 * Checks, each time: destroy returns 0 after every task that was spawned has run to its
 * end; no timer callback ran before its deadline, more often than it was armed, or after
 * destroy returned; and weft_stats_get is back to zero (nothing leaked, every stack
 * unmapped).
 *
 *   stress_lifecycle [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define US 1000ull

static uint64_t iteration;
static weft__atomic_word spawned; /* spawns that succeeded */
static weft__atomic_word started, finished;
static weft__atomic_word refused_spawns, refused_arms;
static weft__atomic_word sleeps_done;

/* ---- timers ---------------------------------------------------------------------- */

#define TIMERS 4

typedef struct timer_record {
    weft__atomic_word armed; /* arms that returned 0 */
    weft__atomic_word fired;
    weft__atomic_word early;
    weft__atomic_word deadline; /* the earliest deadline armed */
} timer_record;

static timer_record timers[TIMERS]; /* task timers: [0, TIMERS - 1); the foreign one last */
static weft__atomic_word timers_fired;
static weft__atomic_word runtime_destroyed; /* set when destroy returned: no callback after */
static weft__atomic_word late_callbacks;

static void on_fire(weft_timer *tm, void *arg) {
    (void)tm;
    timer_record *x = arg;
    if (weft__atomic_load_acquire(&runtime_destroyed))
        weft__atomic_fetch_add_full(&late_callbacks, 1);
    if (weft_now() < weft__atomic_load_acquire(&x->deadline))
        weft__atomic_store_release(&x->early, 1);
    weft__atomic_fetch_add_full(&x->fired, 1);
    weft__atomic_fetch_add_relaxed(&timers_fired, 1);
}

/* ---- tasks ------------------------------------------------------------------------ */

static void task_begin(void) {
    weft__atomic_fetch_add_relaxed(&started, 1);
}

static void *task_end(void) {
    weft__atomic_fetch_add_full(&finished, 1);
    return NULL;
}

static void *sleeper(void *arg) {
    task_begin();
    uint64_t ns = (uint64_t)(uintptr_t)arg;
    uint64_t deadline = weft_now() + ns;
    STRESS_CHECK(weft_sleep_until(deadline) == 0, "sleep");
    STRESS_CHECK(weft_now() >= deadline, "woke early");
    weft__atomic_fetch_add_relaxed(&sleeps_done, 1);
    return task_end();
}

static void spawn_detached(weft_fn fn, void *arg) {
    weft_task *t = weft_spawn(fn, arg);
    /* A task may always spawn, shutdown or not. */
    STRESS_CHECK(t != NULL, "spawn from a task: %s", strerror(errno));
    weft__atomic_fetch_add_relaxed(&spawned, 1);
    weft_detach(t);
}

/* A detached task doing a bit of everything; `arg` seeds it. */
static void *worker_task(void *arg) {
    task_begin();
    stress_rng r = stress_rng_for((uint64_t)(uintptr_t)arg);
    for (uint64_t k = stress_below(&r, 4); k > 0; k--) {
        switch (stress_below(&r, 4)) {
        case 0:
            weft_yield();
            break;
        case 1:
            spawn_detached(sleeper, (void *)(uintptr_t)stress_below(&r, 300 * US));
            break;
        case 2: {
            weft_task *t = weft_spawn(sleeper, (void *)(uintptr_t)stress_below(&r, 100 * US));
            STRESS_CHECK(t != NULL, "spawn: %s", strerror(errno));
            weft__atomic_fetch_add_relaxed(&spawned, 1);
            STRESS_CHECK(weft_join(t, NULL) == 0, "join");
            break;
        }
        default:
            STRESS_CHECK(weft_sleep_ms(0) == 0, "sleep_ms(0)");
            break;
        }
    }
    return task_end();
}

/* Arms the task timers: soon (may fire during the shutdown, or not at all), or an hour
 * away (never fires); destroys some. */
static void *timer_task(void *arg) {
    task_begin();
    stress_rng r = stress_rng_for((uint64_t)(uintptr_t)arg);
    weft_runtime *rt = weft_runtime_current();
    for (int i = 0; i < TIMERS - 1; i++) {
        timer_record *x = &timers[i];
        weft_timer *tm;
        STRESS_CHECK(weft_timer_create(rt, on_fire, x, &tm) == 0, "timer_create");
        uint64_t deadline = stress_chance(&r, 1, 3) ? weft_now() + 3600000000000ull
                                                    : weft_now() + stress_below(&r, 200 * US);
        weft__atomic_store_release(&x->deadline, deadline);
        STRESS_CHECK(weft_timer_arm(tm, deadline) == 0, "arm from a task");
        weft__atomic_fetch_add_full(&x->armed, 1);
        if (stress_chance(&r, 1, 4))
            STRESS_CHECK(weft_timer_destroy(tm) == 0, "timer_destroy");
    }
    return task_end();
}

/* Holds the runtime open until the foreign thread has stopped calling into it. */
static weft__atomic_word foreign_done;

static void *gate_task(void *arg) {
    (void)arg;
    task_begin();
    while (!weft__atomic_load_acquire(&foreign_done))
        STRESS_CHECK(weft_sleep_until(weft_now() + 20 * US) == 0, "gate sleep");
    return task_end();
}

/* ---- the thread that races the destroy ---------------------------------------------- */

typedef struct foreign_ctx {
    weft_runtime *rt;
    uint64_t seed_stream;
    weft__atomic_word ready;
    weft__atomic_word calls; /* spawn_on calls made */
} foreign_ctx;

static void *foreign_main(void *arg) {
    foreign_ctx *f = arg;
    stress_rng r = stress_rng_for(f->seed_stream);
    timer_record *x = &timers[TIMERS - 1];
    weft_timer *tm = NULL;
    STRESS_CHECK(weft_timer_create(f->rt, on_fire, x, &tm) == 0, "foreign timer_create");
    weft__atomic_store_release(&f->ready, 1);
    bool refused = false;
    for (int i = 0; i < 5000; i++) {
        weft_task *t = weft_spawn_on(f->rt, sleeper, (void *)(uintptr_t)stress_below(&r, 50 * US));
        weft__atomic_fetch_add_full(&f->calls, 1);
        if (!t) {
            STRESS_CHECK(errno == ESHUTDOWN, "iteration %" PRIu64 ": spawn_on failed with %s",
                         iteration, strerror(errno));
            refused = true;
            weft__atomic_fetch_add_relaxed(&refused_spawns, 1);
        } else {
            STRESS_CHECK(!refused, "iteration %" PRIu64 ": a spawn_on succeeded after ESHUTDOWN",
                         iteration);
            weft__atomic_fetch_add_relaxed(&spawned, 1);
            if (stress_chance(&r, 1, 4))
                STRESS_CHECK(weft_join(t, NULL) == 0, "foreign join");
            else
                weft_detach(t);
        }
        if (stress_chance(&r, 1, 8)) {
            uint64_t deadline = weft_now() + stress_below(&r, 100 * US);
            /* The check's floor: the earliest deadline this timer was ever armed for. */
            AO_t floor = weft__atomic_load_relaxed(&x->deadline);
            if (floor == 0 || deadline < floor)
                weft__atomic_store_release(&x->deadline, deadline);
            int rc = weft_timer_arm(tm, deadline);
            STRESS_CHECK(rc == 0 || rc == -ESHUTDOWN, "foreign arm returned %d", rc);
            if (rc == 0) {
                STRESS_CHECK(!refused,
                             "iteration %" PRIu64 ": a foreign arm succeeded after "
                             "ESHUTDOWN",
                             iteration);
                weft__atomic_fetch_add_full(&x->armed, 1);
            } else {
                weft__atomic_fetch_add_relaxed(&refused_arms, 1);
            }
        }
        if (refused)
            break;
    }
    /* Another spawn after a refusal is refused too. */
    if (refused)
        STRESS_CHECK(weft_spawn_on(f->rt, sleeper, NULL) == NULL && errno == ESHUTDOWN,
                     "iteration %" PRIu64 ": spawn_on after ESHUTDOWN did not fail with it",
                     iteration);
    weft__atomic_store_release(&foreign_done, 1); /* our last touch of the runtime */
    return NULL;
}

/* ---- one life ------------------------------------------------------------------------- */

static void one_life(uint64_t it) {
    iteration = it;
    stress_rng r = stress_rng_for(it);
    weft_config cfg = {.workers = (unsigned)stress_between(&r, 1, 3)};
    if (stress_chance(&r, 1, 2))
        cfg.flags = WEFT_CONFIG_NO_INLINE_JOIN;
    weft__atomic_store_relaxed(&spawned, 0);
    weft__atomic_store_relaxed(&started, 0);
    weft__atomic_store_relaxed(&finished, 0);
    weft__atomic_store_relaxed(&foreign_done, 0);
    weft__atomic_store_release(&runtime_destroyed, 0);
    memset(timers, 0, sizeof timers);

    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&cfg, &rt) == 0, "iteration %" PRIu64 ": create", it);
    bool with_foreign = stress_chance(&r, 3, 4);
    foreign_ctx f = {.rt = rt, .seed_stream = it << 8 | 0xf};
    pthread_t thread;
    if (with_foreign) {
        weft_task *gate = weft_spawn_on(rt, gate_task, NULL);
        STRESS_CHECK(gate != NULL, "spawn_on of the gate");
        weft__atomic_fetch_add_relaxed(&spawned, 1);
        weft_detach(gate);
        STRESS_CHECK(pthread_create(&thread, NULL, foreign_main, &f) == 0, "pthread_create");
    }
    for (uint64_t k = stress_below(&r, 6); k > 0; k--) {
        weft_task *t = weft_spawn_on(rt, worker_task, (void *)(uintptr_t)(it << 8 | k));
        STRESS_CHECK(t != NULL, "spawn_on: %s", strerror(errno));
        weft__atomic_fetch_add_relaxed(&spawned, 1);
        weft_detach(t);
    }
    if (stress_chance(&r, 1, 2)) {
        weft_task *t = weft_spawn_on(rt, timer_task, (void *)(uintptr_t)(it << 8 | 0x7));
        STRESS_CHECK(t != NULL, "spawn_on: %s", strerror(errno));
        weft__atomic_fetch_add_relaxed(&spawned, 1);
        weft_detach(t);
    }
    if (with_foreign && stress_chance(&r, 1, 2)) {
        /* Let the foreign thread get going: destroy then meets its spawns in flight. */
        AO_t calls = (AO_t)stress_below(&r, 40);
        while (weft__atomic_load_acquire(&f.calls) < calls)
            sched_yield();
    }

    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "iteration %" PRIu64 ": destroy", it);
    weft__atomic_store_release(&runtime_destroyed, 1);
    if (with_foreign)
        STRESS_CHECK(pthread_join(thread, NULL) == 0, "pthread_join");

    AO_t s = weft__atomic_load_acquire(&spawned), b = weft__atomic_load_acquire(&started),
         e = weft__atomic_load_acquire(&finished);
    STRESS_CHECK(s == b && s == e,
                 "iteration %" PRIu64 ": destroy returned with %lu tasks spawned, %lu started, "
                 "%lu finished",
                 it, (unsigned long)s, (unsigned long)b, (unsigned long)e);
    for (int i = 0; i < TIMERS; i++) {
        timer_record *x = &timers[i];
        STRESS_CHECK(!weft__atomic_load_acquire(&x->early),
                     "iteration %" PRIu64 ": timer %d fired "
                     "before its deadline",
                     it, i);
        STRESS_CHECK(weft__atomic_load_acquire(&x->fired) <= weft__atomic_load_acquire(&x->armed),
                     "iteration %" PRIu64 ": timer %d fired %lu times for %lu arms", it, i,
                     (unsigned long)x->fired, (unsigned long)x->armed);
    }
    char why[160];
    STRESS_CHECK(!weft_test_leaks(why, sizeof why), "iteration %" PRIu64 ": after destroy: %s", it,
                 why);
    stress_count(STRESS_TASKS, s);
    stress_count(STRESS_RUNTIMES, 1);
}

int main(int argc, char **argv) {
    stress_begin("stress_lifecycle", argc, argv);
    size_t lives = stress_size(1000, 2);
    for (uint64_t it = 0; it < lives; it++)
        one_life(it);
    STRESS_CHECK(weft__atomic_load_acquire(&late_callbacks) == 0,
                 "%lu timer callbacks ran after weft_runtime_destroy returned",
                 (unsigned long)late_callbacks);
    stress_note("%zu runtimes; %lu spawns and %lu arms refused with ESHUTDOWN; %lu sleeps; %lu "
                "timer callbacks",
                lives, (unsigned long)refused_spawns, (unsigned long)refused_arms,
                (unsigned long)sleeps_done, (unsigned long)timers_fired);
    stress_count(STRESS_REFUSED, refused_spawns + refused_arms);
    stress_count(STRESS_SLEEPS, sleeps_done);
    stress_count(STRESS_TIMER_FIRES, timers_fired);
    return stress_pass();
}
