/*
 * stress_blocked_join.c: N tasks blocked in weft_join at the same time, with the default
 * configuration (N = 100,000; the scale requirement). Task i spawns task i+1 and
 * joins it, so when the last one runs, every other task is parked in a join holding its
 * own stack. The last task waits (yielding) until the main thread has seen all N alive,
 * then the chain unwinds and every task adds its depth to the result.
 *
 *   stress_blocked_join [N [stack_size [max_tasks]]] [--seed S]
 *
 * With N = 1000000, stack_size = 16384, max_tasks = 1048576 it checks the documented
 * configuration for a million blocked tasks (not run in CI: it needs ~10 GB). Without N,
 * WEFT_TEST_SCALE scales it up to 250,000 at most (the default max_tasks is 262,144, and
 * each blocked task holds about 8 KiB). Nothing here is random: the seed (stress.h) is
 * only printed, as by every stress test.
 */
#include "stress.h"

#include <errno.h>
#include <string.h>

static size_t chain_length;
static weft__atomic_word reached;  /* tasks alive in the chain */
static weft__atomic_word released; /* set by main once it has seen them all */

static void *link_task(void *arg) {
    size_t depth = (size_t)arg;
    weft__atomic_fetch_add_full(&reached, 1);
    if (depth == chain_length) {
        /* Acquire: pairs with main's release store. */
        while (!weft__atomic_load_acquire(&released))
            weft_yield();
        return (void *)depth;
    }
    weft_task *next = weft_spawn(link_task, (void *)(depth + 1));
    STRESS_CHECK(next != NULL, "spawn at depth %zu: %s", depth, strerror(errno));
    void *below;
    STRESS_CHECK(weft_join(next, &below) == 0, "join at depth %zu", depth);
    return (void *)((size_t)below + depth);
}

int main(int argc, char **argv) {
    argc = stress_begin("stress_blocked_join", argc, argv);
    chain_length = argc > 1 ? strtoull(argv[1], NULL, 10) : stress_size_capped(100000, 400, 250000);
    /* Every link of the chain must hold a stack of its own while it waits: inline joins
     * would run each link on its parent's stack. */
    weft_config cfg = {.workers = 2, .flags = WEFT_CONFIG_NO_INLINE_JOIN};
    if (argc > 2)
        cfg.stack_size = strtoull(argv[2], NULL, 10);
    if (argc > 3)
        cfg.max_tasks = strtoull(argv[3], NULL, 10);
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&cfg, &rt) == 0, "create");
    weft_task *root = weft_spawn_on(rt, link_task, (void *)1);
    STRESS_CHECK(root != NULL, "spawn_on");
    uint64_t start = 0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        start = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    while (weft__atomic_load_acquire(&reached) < chain_length)
        weft_test_sleep_ms(5);
    weft_runtime_stats st;
    weft_runtime_stats_get(rt, &st);
    STRESS_CHECK(st.tasks_live == chain_length, "%llu tasks live, expected %zu",
                 (unsigned long long)st.tasks_live, chain_length);
    STRESS_CHECK(st.stacks_mapped >= chain_length, "%llu stacks for %zu blocked tasks",
                 (unsigned long long)st.stacks_mapped, chain_length);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double seconds = ((double)ts.tv_sec * 1e9 + (double)ts.tv_nsec - (double)start) / 1e9;
    printf("stress_blocked_join: %zu tasks blocked at once after %.2f s; %llu stacks, %llu "
           "guarded, %.1f GiB of address space\n",
           chain_length, seconds, (unsigned long long)st.stacks_mapped,
           (unsigned long long)st.stacks_guarded, (double)st.stack_bytes / (1 << 30));
    weft__atomic_store_release(&released, 1);
    void *sum;
    STRESS_CHECK(weft_join(root, &sum) == 0, "join root");
    STRESS_CHECK((size_t)sum == chain_length * (chain_length + 1) / 2, "sum %zu", (size_t)sum);
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");
    stress_count(STRESS_TASKS, chain_length);
    stress_count(STRESS_JOINS, chain_length);
    stress_count(STRESS_RUNTIMES, 1);
    return stress_pass();
}
