/*
 * test_timers.c: sleeps and deadline joins on real workers: never early, woken while
 * every worker is parked, weft_join_until racing the completion of the task it waits
 * for (from tasks and from other threads), timers cancelled from another worker, and the
 * argument errors.
 */
#include "weft_criterion.h"

#include "base/atomic.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static uint64_t random_state = 0x853c49e6748fea9bull;

static uint64_t next_random(void) { /* only the main thread draws */
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    return random_state;
}

/* ---- never early --------------------------------------------------------------- */

static void *sleep_and_check(void *arg) {
    uint64_t ns = (uint64_t)arg;
    uint64_t deadline = weft_now() + ns;
    cr_assert(weft_sleep_until(deadline) == 0, "sleep_until");
    uint64_t now = weft_now();
    cr_assert(now >= deadline, "woke %llu ns early", (unsigned long long)(deadline - now));
    return (void *)(now - deadline);
}

static void *many_sleepers(void *arg) {
    size_t n = (size_t)arg;
    weft_task **tasks = malloc(n * sizeof(*tasks));
    for (size_t i = 0; i < n; i++) {
        uint64_t ns = (i * 7919u % 20000u) * 1000u; /* 0 to 20 ms, spread */
        tasks[i] = weft_spawn(sleep_and_check, (void *)ns);
        cr_assert(tasks[i] != NULL, "spawn");
    }
    for (size_t i = 0; i < n; i++)
        cr_assert(weft_join(tasks[i], NULL) == 0, "join");
    free(tasks);
    /* weft_sleep_ms from a task, and a deadline already past. */
    uint64_t start = weft_now();
    cr_assert(weft_sleep_ms(5) == 0, "sleep_ms");
    cr_assert(weft_now() - start >= 5000000u, "sleep_ms(5) returned early");
    cr_assert(weft_sleep_until(start) == 0, "a past deadline returns at once");
    return NULL;
}

Test(timers, never_early) {
    cr_assert(weft_run(&(weft_config){.workers = 2}, many_sleepers,
                        (void *)weft_test_size(2000, 10), NULL) == 0,
               "run");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- a sleep while every worker is parked ---------------------------------------- */

static void *lone_sleeper(void *arg) {
    (void)arg;
    uint64_t start = weft_now();
    cr_assert(weft_sleep_ms(50) == 0, "sleep");
    return (void *)(weft_now() - start);
}

Test(timers, parked_worker_fires) {
    /* Nothing else to run: both workers park, and only the wheel's deadline in the
     * parked worker's futex wait can wake the sleeper (else this hangs until CTest's
     * timeout). */
    void *took;
    cr_assert(weft_run(&(weft_config){.workers = 2}, lone_sleeper, NULL, &took) == 0, "run");
    cr_assert((uint64_t)took >= 50000000u, "slept %llu ns", (unsigned long long)took);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- a task yielding in a loop does not starve its worker's timers ----------------- */

static weft__atomic_word slept;

static void *sleep_then_flag(void *arg) {
    (void)arg;
    cr_assert(weft_sleep_ms(2) == 0, "sleep");
    weft__atomic_store_release(&slept, 1);
    return NULL;
}

static void *yield_until_flag(void *arg) {
    (void)arg;
    weft_task *t = weft_spawn(sleep_then_flag, NULL);
    cr_assert(t != NULL, "spawn");
    /* One worker: the sleeper's timer is on this worker's wheel, and nothing else is
     * runnable, so only weft_yield's check for due timers lets it fire. */
    while (!weft__atomic_load_acquire(&slept))
        weft_yield();
    cr_assert(weft_join(t, NULL) == 0, "join");
    return NULL;
}

Test(timers, yield_loop_fires_timers) {
    cr_assert(weft_run(&(weft_config){.workers = 1}, yield_until_flag, NULL, NULL) == 0, "run");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- weft_join_until racing the completion --------------------------------------- */

static void *sleep_then_return(void *arg) {
    uint64_t ns = (uint64_t)arg;
    weft_sleep_until(weft_now() + ns);
    return (void *)(uintptr_t)0x5eed;
}

struct race_counts {
    size_t completed, timed_out;
};

/* One race: the child sleeps `child_ns`, we wait until `wait_ns`. Either outcome is
 * right, but it must be exactly one, and a timed-out handle must still join. */
static void race_once(weft_runtime *rt, uint64_t child_ns, uint64_t wait_ns,
                      struct race_counts *counts) {
    weft_task *t = rt ? weft_spawn_on(rt, sleep_then_return, (void *)child_ns)
                      : weft_spawn(sleep_then_return, (void *)child_ns);
    cr_assert(t != NULL, "spawn");
    void *r = NULL;
    int rc = weft_join_until(t, weft_now() + wait_ns, &r);
    if (rc == 0) {
        cr_assert((uintptr_t)r == 0x5eed, "result %p", r);
        counts->completed++;
        return;
    }
    cr_assert(rc == -ETIMEDOUT, "join_until returned %d", rc);
    counts->timed_out++;
    if (next_random() & 1) { /* the handle is still valid: join it, maybe with a deadline */
        cr_assert(weft_join(t, &r) == 0 && (uintptr_t)r == 0x5eed, "join after timeout");
    } else {
        while ((rc = weft_join_until(t, weft_now() + 1000000u, &r)) == -ETIMEDOUT)
            ;
        cr_assert(rc == 0 && (uintptr_t)r == 0x5eed, "join_until after timeout: %d", rc);
    }
}

static size_t race_rounds;

static void *race_from_task(void *arg) {
    struct race_counts *counts = arg;
    for (size_t i = 0; i < race_rounds; i++) {
        uint64_t base = 200000u + (i % 7) * 100000u; /* 0.2 to 0.8 ms */
        uint64_t jitter = (i * 2654435761u) % 200000u;
        race_once(NULL, base, base + jitter - 100000u, counts);
    }
    /* A far deadline that the completion beats: the timer is cancelled, often from
     * another worker than the one whose wheel holds it. */
    for (size_t i = 0; i < race_rounds / 4; i++)
        race_once(NULL, 100000u, 10000000000u, counts);
    return NULL;
}

Test(timers, join_until_races) {
    race_rounds = weft_test_size(400, 4);
    struct race_counts counts = {0};
    cr_assert(weft_run(&(weft_config){.workers = 2}, race_from_task, &counts, NULL) == 0, "run");
    cr_assert(counts.completed + counts.timed_out == race_rounds + race_rounds / 4, "counts");
    printf("test_timers: join_until from tasks: %zu completed, %zu timed out\n", counts.completed,
           counts.timed_out);
    WEFT_ASSERT_NO_LEAKS();

    /* The same from a thread that is not a worker (futex with a deadline). */
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &rt) == 0, "create");
    struct race_counts foreign = {0};
    for (size_t i = 0; i < race_rounds / 2; i++) {
        uint64_t base = 300000u + (i % 5) * 100000u;
        race_once(rt, base, base + (i * 40503u) % 200000u - 100000u, &foreign);
    }
    cr_assert(foreign.completed + foreign.timed_out == race_rounds / 2, "foreign counts");
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- argument errors and the thread side ------------------------------------------ */

static void *gate_task(void *arg) {
    weft__atomic_word *gate = arg;
    while (!weft__atomic_load_acquire(gate))
        weft_sleep_ms(1);
    return (void *)7;
}

Test(timers, errors_and_threads) {
    cr_assert(weft_sleep_until(WEFT_FOREVER) == -EINVAL, "sleep forever");
    cr_assert(weft_sleep_ms(UINT64_MAX) == -EINVAL, "sleep past the clock");
    cr_assert(weft_join_until(NULL, 0, NULL) == -EINVAL, "join_until NULL");
    uint64_t start = weft_now();
    cr_assert(weft_sleep_ms(10) == 0, "sleep on a plain thread");
    cr_assert(weft_now() - start >= 10000000u, "early on a plain thread");

    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 1}, &rt) == 0, "create");
    weft__atomic_word gate = 0;
    weft_task *t = weft_spawn_on(rt, gate_task, (void *)&gate);
    /* A deadline already past: -ETIMEDOUT at once, the handle untouched. */
    cr_assert(weft_join_until(t, weft_now() - 1, NULL) == -ETIMEDOUT, "past deadline");
    cr_assert(weft_join_until(t, weft_now() + 2000000u, NULL) == -ETIMEDOUT, "2 ms");
    weft__atomic_store_release(&gate, 1);
    void *r;
    cr_assert(weft_join_until(t, WEFT_FOREVER, &r) == 0 && (intptr_t)r == 7, "forever");
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}
