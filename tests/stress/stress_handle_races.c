/*
 * stress_handle_races.c: the four races of issue 9 on join handles and the calls that
 * overlap a runtime's destruction, each in a part of its own. Every part fails (hangs,
 * double-frees, or touches freed memory, which ASan reports) on the code before the
 * fixes, within a few rounds under a chaos seed (WEFT_CHAOS, whose chaos points widen
 * the windows between the protocols' steps); without one, the windows are a few
 * instructions wide and are hit rarely.
 *
 * 1. Re-join after a timeout (JOIN-X1 against JOIN-C2). A joiner, a task or a thread
 *    that is not a worker, calls weft_join_until with a deadline drawn close to the
 *    child's end; on -ETIMEDOUT it joins again from a deeper stack frame (weft_join, or
 *    another deadline join, or it detaches). The old completer could wake the withdrawn
 *    registration instead of the new one: the new joiner then slept forever (the
 *    watchdog reports it) and a stale waiter on the stack was written to.
 * 2. A joiner on another runtime (JOIN-C4 against RT-D4). A short-lived runtime A runs a
 *    task that joins a child of a long-lived runtime B, and is destroyed as soon as
 *    block_on returns. The old completer woke one of A's idle workers after its last
 *    touch of the child, by then perhaps after A was freed.
 * 3. Detach racing a join of the same handle (JOIN-R1 against JOIN-J2). Two threads
 *    released from one barrier: one joins, one detaches. Exactly one takes the handle:
 *    the join returns 0 (with the child's value) or -EINVAL. The old join could free a
 *    completed child a second time (the runtime's live-object count then wraps, which
 *    the part checks) or return 0 for a handle the detach had taken.
 * 4. A timer destroy from another thread overlapping weft_runtime_destroy (RT-D4). The
 *    thread is inside weft_timer_destroy (counted as a foreign call, which the part
 *    checks before it goes on), waiting for the handle's callback, when the runtime is
 *    destroyed; the callback returns only once destroy has been called. The old
 *    destroy did not wait for that call and freed the handle under it; the old
 *    weft_timer_destroy was not counted, so on the old code this part waits for the
 *    count until the watchdog fails it.
 *
 *   stress_handle_races [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include "sched/runtime.h" /* part 4 watches rt->foreign_calls */

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define US 1000ull

static uint64_t value_of(uint64_t part, uint64_t i) {
    return stress_hash(part, i) | 1; /* never NULL */
}

/* A child that spins for the time its argument encodes (low 20 bits, in ns), then
 * returns the value its index encodes. */
typedef struct child_arg {
    uint64_t value;
    uint64_t spin_ns;
} child_arg;

static void *child(void *arg) {
    child_arg *a = arg;
    stress_spin_ns(a->spin_ns);
    stress_count(STRESS_TASKS, 1);
    return (void *)(uintptr_t)a->value;
}

/* ---- 1. re-join after a timeout ------------------------------------------------------ */

/* Part 1's children may be detached and outlive their joiner's frame: their argument is
 * the value itself, index << 8 | spin in microseconds. */
static void *encoded_child(void *arg) {
    uint64_t x = (uint64_t)(uintptr_t)arg;
    stress_spin_ns((x & 0xff) * US);
    stress_count(STRESS_TASKS, 1);
    return (void *)(uintptr_t)value_of(1, x >> 8);
}

/* The second join runs in a deeper frame than the first, so that its waiter (a stack
 * variable of a thread joiner) is at another address: the old completer, waking the
 * stale registration, wrote into this frame's padding while the real waiter slept.
 * Returns the join's result, or 1 if it detached instead. */
__attribute__((noinline)) static int rejoin_deep(weft_task *t, stress_rng *r, void **v) {
    volatile char pad[512];
    pad[0] = 0;
    int rc;
    switch (stress_below(r, 4)) {
    case 0: /* another deadline, then for good */
        rc = weft_join_until(t, weft_now() + stress_below(r, 60 * US), v);
        if (rc == -ETIMEDOUT)
            rc = weft_join(t, v);
        break;
    case 1: /* detach: the child runs to its end and its completer frees it */
        weft_detach(t);
        stress_count(STRESS_DETACHES, 1);
        rc = 1;
        break;
    default:
        rc = weft_join(t, v);
        break;
    }
    return rc + pad[0];
}

/* One turn of a joiner: spawn, a deadline join with a deadline close to the child's end,
 * and on -ETIMEDOUT a second join from a deeper frame. */
static void join_with_timeout(weft_runtime *rt, uint64_t i, stress_rng *r) {
    uint64_t spin_us = stress_below(r, 80);
    weft_task *t = weft_spawn_on(rt, encoded_child, (void *)(uintptr_t)(i << 8 | spin_us));
    STRESS_CHECK(t != NULL, "spawn: %s", strerror(errno));
    /* Within -20..+60 us of the child's end (it starts after some queueing delay, so
     * both outcomes are common). */
    uint64_t deadline = weft_now() + spin_us * US + stress_below(r, 80 * US) - 20 * US;
    void *v = NULL;
    int rc = weft_join_until(t, deadline, &v);
    if (rc == -ETIMEDOUT) {
        stress_count(STRESS_TIMEOUTS, 1);
        rc = rejoin_deep(t, r, &v);
        if (rc == 1)
            return;
    }
    STRESS_CHECK(rc == 0, "join %" PRIu64 " returned %d", i, rc);
    STRESS_CHECK((uint64_t)(uintptr_t)v == value_of(1, i), "join %" PRIu64 ": wrong value", i);
    stress_count(STRESS_JOINS, 1);
}

typedef struct part1 {
    weft_runtime *rt;
    size_t per_joiner;
} part1;

static part1 p1;

/* A joiner: a task of the runtime or a thread that is not a worker. */
static void *joiner_loop(void *arg) {
    uint64_t stream = (uint64_t)(uintptr_t)arg;
    stress_rng r = stress_rng_for(stream);
    for (size_t k = 0; k < p1.per_joiner; k++)
        join_with_timeout(p1.rt, stream << 24 | k, &r);
    return NULL;
}

static void run_part1(uint64_t round) {
    weft_config cfg = {.workers = 2};
    STRESS_CHECK(weft_runtime_create(&cfg, &p1.rt) == 0, "create");
    p1.per_joiner = stress_size(150, 4);
    enum { THREADS = 2, TASKS = 2 };
    pthread_t threads[THREADS];
    weft_task *tasks[TASKS];
    for (int i = 0; i < TASKS; i++) {
        tasks[i] = weft_spawn_on(p1.rt, joiner_loop, (void *)(uintptr_t)(round << 8 | (uint64_t)i));
        STRESS_CHECK(tasks[i] != NULL, "spawn of a joiner task");
    }
    for (int i = 0; i < THREADS; i++)
        STRESS_CHECK(pthread_create(&threads[i], NULL, joiner_loop,
                                    (void *)(uintptr_t)(round << 8 | (uint64_t)(TASKS + i))) == 0,
                     "pthread_create");
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < TASKS; i++)
        STRESS_CHECK(weft_join(tasks[i], NULL) == 0, "join of a joiner task");
    /* Detached children may still run: destroy waits for them. */
    STRESS_CHECK(weft_runtime_destroy(p1.rt) == 0, "destroy");
    stress_count(STRESS_RUNTIMES, 1);
}

/* ---- 2. a joiner on another runtime ---------------------------------------------------- */

static weft_runtime *runtime_b;

static void *cross_joiner(void *arg) {
    child_arg *a = arg;
    weft_task *t = weft_spawn_on(runtime_b, child, a);
    STRESS_CHECK(t != NULL, "spawn on B: %s", strerror(errno));
    void *v;
    STRESS_CHECK(weft_join(t, &v) == 0, "join of B's child");
    STRESS_CHECK((uint64_t)(uintptr_t)v == a->value, "B's child: wrong value");
    stress_count(STRESS_JOINS, 1);
    return NULL;
}

static void run_part2(uint64_t round) {
    weft_config cfg_b = {.workers = 2};
    STRESS_CHECK(weft_runtime_create(&cfg_b, &runtime_b) == 0, "create B");
    stress_rng r = stress_rng_for(round << 8 | 0x22);
    size_t n = stress_size(120, 4);
    for (size_t i = 0; i < n; i++) {
        weft_config cfg_a = {.workers = 1};
        weft_runtime *a;
        STRESS_CHECK(weft_runtime_create(&cfg_a, &a) == 0, "create A");
        child_arg arg = {value_of(2, i), stress_below(&r, 30 * US)};
        STRESS_CHECK(weft_block_on(a, cross_joiner, &arg, NULL) == 0, "block_on A");
        /* At once: B's worker may still be on its way out of waking A's worker. */
        STRESS_CHECK(weft_runtime_destroy(a) == 0, "destroy A");
        stress_count(STRESS_RUNTIMES, 1);
    }
    STRESS_CHECK(weft_runtime_destroy(runtime_b) == 0, "destroy B");
    stress_count(STRESS_RUNTIMES, 1);
}

/* ---- 3. detach racing a join ------------------------------------------------------------ */

typedef struct part3 {
    weft_task *handle;
    weft__atomic_word go;       /* barrier: both sides spin until it is 2 */
    weft__atomic_word join_rc;  /* the join's return value + 100 */
    weft__atomic_word join_val; /* the value it received */
    bool joiner_is_task;
} part3;

static part3 p3;

static void barrier(void) {
    weft__atomic_fetch_add_full(&p3.go, 1);
    while (weft__atomic_load_acquire(&p3.go) < 2)
        weft__cpu_relax();
}

static void *race_join(void *arg) {
    (void)arg;
    barrier();
    void *v = NULL;
    int rc = weft_join(p3.handle, &v);
    weft__atomic_store_relaxed(&p3.join_val, (AO_t)(uintptr_t)v);
    weft__atomic_store_release(&p3.join_rc, (AO_t)(rc + 100));
    return NULL;
}

static void *race_detach(void *arg) {
    (void)arg;
    barrier();
    weft_detach(p3.handle);
    return NULL;
}

static void run_part3(uint64_t round) {
    weft_config cfg = {.workers = 2};
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&cfg, &rt) == 0, "create");
    stress_rng r = stress_rng_for(round << 8 | 0x33);
    size_t n = stress_size(400, 4);
    size_t joined = 0, refused = 0;
    for (size_t i = 0; i < n; i++) {
        /* The child's argument is its value (a detached child may outlive this turn). */
        uint64_t index = 3ull << 44 | round << 24 | i;
        uint64_t spin_us = stress_below(&r, 3) ? 0 : stress_below(&r, 20);
        weft__atomic_store_relaxed(&p3.go, 0);
        weft__atomic_store_relaxed(&p3.join_rc, 0);
        p3.handle = weft_spawn_on(rt, encoded_child, (void *)(uintptr_t)(index << 8 | spin_us));
        STRESS_CHECK(p3.handle != NULL, "spawn");
        /* Sometimes let the child finish first: the double free needs a completed one. */
        if (stress_chance(&r, 1, 2))
            stress_spin_ns(stress_below(&r, 30 * US));
        pthread_t a, b;
        weft_task *join_task = NULL;
        if (stress_chance(&r, 1, 2)) { /* the joiner is a task of rt */
            join_task = weft_spawn_on(rt, race_join, NULL);
            STRESS_CHECK(join_task != NULL, "spawn of the joiner");
        } else {
            STRESS_CHECK(pthread_create(&a, NULL, race_join, NULL) == 0, "pthread_create");
        }
        STRESS_CHECK(pthread_create(&b, NULL, race_detach, NULL) == 0, "pthread_create");
        pthread_join(b, NULL);
        if (join_task)
            STRESS_CHECK(weft_join(join_task, NULL) == 0, "join of the joiner");
        else
            pthread_join(a, NULL);
        int rc = (int)weft__atomic_load_acquire(&p3.join_rc) - 100;
        STRESS_CHECK(rc == 0 || rc == -EINVAL,
                     "round %" PRIu64 " race %zu: a join racing a detach returned %d", round, i,
                     rc);
        if (rc == 0) {
            STRESS_CHECK(weft__atomic_load_relaxed(&p3.join_val) == value_of(1, index),
                         "race %zu: the join got a wrong value", i);
            joined++;
        } else {
            refused++;
        }
        /* Wait until every object of this part is free again, which also checks the count: an
         * object freed twice leaves it at -1 for good. (The statistic reads its counters one after
         * the other, so a free in between can make one reading -1 for a moment.) */
        uint64_t until = stress_now_ns() + 10000000000ull;
        for (unsigned negative = 0;;) {
            weft_runtime_stats st;
            STRESS_CHECK(weft_runtime_stats_get(rt, &st) == 0, "stats");
            if (st.tasks_live == 0)
                break;
            negative = st.tasks_live > (1ull << 63) ? negative + 1 : 0;
            STRESS_CHECK(negative < 100,
                         "race %zu: %" PRId64 " live task objects: one was freed twice", i,
                         (int64_t)st.tasks_live);
            STRESS_CHECK(stress_now_ns() < until, "race %zu: %" PRIu64 " objects still live", i,
                         st.tasks_live);
            weft_test_sleep_ms(negative ? 1 : 0);
        }
    }
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");
    stress_count(STRESS_RUNTIMES, 1);
    stress_count(STRESS_JOINS, joined);
    stress_count(STRESS_DETACHES, refused);
}

/* ---- 4. a timer destroy overlapping the runtime's destroy ------------------------------- */

typedef struct part4 {
    weft_timer *handle;
    weft__atomic_word callback_running;
    weft__atomic_word calling;        /* the other thread is about to call timer_destroy */
    weft__atomic_word destroy_called; /* the main thread is about to destroy the runtime */
    uint64_t hold_ns;                 /* how long the callback holds on after that */
} part4;

static part4 p4;

static void on_fire(weft_timer *tm, void *arg) {
    (void)tm;
    (void)arg;
    weft__atomic_store_release(&p4.callback_running, 1);
    /* Hold the destroying thread inside weft_timer_destroy (it waits for us) until the
     * runtime's destroy has been called, and a drawn while longer. */
    while (!weft__atomic_load_acquire(&p4.destroy_called))
        weft__cpu_relax();
    stress_spin_ns(p4.hold_ns);
    stress_count(STRESS_TIMER_FIRES, 1);
}

static void *destroy_timer_thread(void *arg) {
    (void)arg;
    while (!weft__atomic_load_acquire(&p4.callback_running))
        weft__cpu_relax();
    weft__atomic_store_release(&p4.calling, 1);
    STRESS_CHECK(weft_timer_destroy(p4.handle) == 0, "timer destroy");
    return NULL;
}

static void run_part4(uint64_t round) {
    stress_rng r = stress_rng_for(round << 8 | 0x44);
    size_t n = stress_size(60, 2);
    for (size_t i = 0; i < n; i++) {
        weft_config cfg = {.workers = (unsigned)stress_between(&r, 1, 2)};
        weft_runtime *rt;
        STRESS_CHECK(weft_runtime_create(&cfg, &rt) == 0, "create");
        memset(&p4, 0, sizeof p4);
        p4.hold_ns = stress_below(&r, 50 * US);
        STRESS_CHECK(weft_timer_create(rt, on_fire, NULL, &p4.handle) == 0, "timer create");
        STRESS_CHECK(weft_timer_arm(p4.handle, weft_now()) == 0, "arm");
        pthread_t th;
        STRESS_CHECK(pthread_create(&th, NULL, destroy_timer_thread, NULL) == 0, "pthread");
        /* Destroy the runtime only once the other thread is inside weft_timer_destroy,
         * counted as a foreign call: weft.h promises nothing for a call that has not got
         * that far (a first version waited 2 ms after the thread said it was about to
         * call, and a machine with a load average of 13 preempted it for longer). Code
         * that does not count the call never gets past this loop: the watchdog reports
         * it. The callback lets go only after this point. */
        while (!weft__atomic_load_acquire(&p4.calling))
            weft__cpu_relax();
        while (weft__atomic_load_acquire(&rt->foreign_calls) == 0)
            weft__cpu_relax();
        weft__atomic_store_release(&p4.destroy_called, 1);
        STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");
        pthread_join(th, NULL);
        stress_count(STRESS_RUNTIMES, 1);
    }
}

int main(int argc, char **argv) {
    stress_begin("stress_handle_races", argc, argv);
    /* Three rounds at any scale: WEFT_TEST_SCALE grows each part's size (linear cost);
     * scaling the rounds too made scale 10 cost 100 times scale 1. */
    size_t rounds = 3;
    for (uint64_t round = 0; round < rounds; round++) {
        run_part1(round);
        run_part2(round);
        run_part3(round);
        run_part4(round);
    }
    stress_note("%zu rounds of the four parts", rounds);
    return stress_pass();
}
