/*
 * stress_sleepers.c: the `sleepers` workload of bench/WORKLOADS.md as a checked test.
 * S tasks (S = 100,000 with the default configuration) sleep at once: task i sleeps
 * (i * 7919) % 1000 ms, checks that it did not wake early, and returns i; a parent
 * task joins them all and checks the sum. Prints the wall time (ideal: about 1000 ms
 * plus spawning), the worst and median lateness, and the peak RSS per sleeping task.
 * Nothing is timed against a bound here: figures belong in bench/RESULTS.md.
 *
 *   stress_sleepers [S [workers]] [--seed SEED]
 *
 * Without S, WEFT_TEST_SCALE scales it up to 250,000 at most (the default max_tasks is
 * 262,144). Nothing here is random: the seed (stress.h) is only printed.
 */
#include "stress.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static uint64_t *lateness_ns; /* per task, written by that task only */
static size_t sleeper_count;

static void *sleeper(void *arg) {
    size_t i = (size_t)arg;
    uint64_t deadline = weft_now() + (uint64_t)(i * 7919 % 1000) * 1000000u;
    STRESS_CHECK(weft_sleep_until(deadline) == 0, "sleep %zu", i);
    uint64_t now = weft_now();
    STRESS_CHECK(now >= deadline, "task %zu woke %llu ns early", i,
                 (unsigned long long)(deadline - now));
    lateness_ns[i] = now - deadline;
    return (void *)i;
}

static void *parent(void *arg) {
    (void)arg;
    weft_task **tasks = malloc(sleeper_count * sizeof(*tasks));
    STRESS_CHECK(tasks != NULL, "malloc");
    for (size_t i = 0; i < sleeper_count; i++) {
        tasks[i] = weft_spawn(sleeper, (void *)i);
        STRESS_CHECK(tasks[i] != NULL, "spawn %zu: %s", i, strerror(errno));
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < sleeper_count; i++) {
        void *r;
        STRESS_CHECK(weft_join(tasks[i], &r) == 0, "join %zu", i);
        sum += (uint64_t)(size_t)r;
    }
    free(tasks);
    return (void *)(uintptr_t)sum;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    argc = stress_begin("stress_sleepers", argc, argv);
    /* Under TSan every live task costs a TSan fiber (weft_test.h): 1/50 of the tasks. */
    sleeper_count = argc > 1 ? strtoull(argv[1], NULL, 10) : stress_size_capped(100000, 50, 250000);
    weft_config cfg = {0}; /* the default configuration: the requirement */
    if (argc > 2)
        cfg.workers = (unsigned)strtoul(argv[2], NULL, 10);
    lateness_ns = calloc(sleeper_count, sizeof(*lateness_ns));
    STRESS_CHECK(lateness_ns != NULL, "calloc");
    uint64_t rss_before = (uint64_t)weft_test_proc_status_bytes("VmHWM");
    uint64_t start = weft_now();
    void *result;
    STRESS_CHECK(weft_run(&cfg, parent, NULL, &result) == 0, "run");
    uint64_t wall = weft_now() - start;
    uint64_t expected = (uint64_t)sleeper_count * (sleeper_count - 1) / 2;
    STRESS_CHECK((uint64_t)(uintptr_t)result == expected, "sum %llu, expected %llu",
                 (unsigned long long)(uintptr_t)result, (unsigned long long)expected);
    uint64_t rss = (uint64_t)weft_test_proc_status_bytes("VmHWM");
    qsort(lateness_ns, sleeper_count, sizeof(*lateness_ns), compare_u64);
    printf("stress_sleepers: %zu sleepers, wall %.1f ms, lateness median %.1f us, p99 %.1f us, "
           "max %.1f us, peak RSS %.1f MB (%.0f bytes per task)\n",
           sleeper_count, wall / 1e6, lateness_ns[sleeper_count / 2] / 1e3,
           lateness_ns[sleeper_count * 99 / 100] / 1e3, lateness_ns[sleeper_count - 1] / 1e3,
           rss / 1e6, (double)(rss - rss_before) / (double)sleeper_count);
    free(lateness_ns);
    stress_count(STRESS_TASKS, sleeper_count + 1);
    stress_count(STRESS_JOINS, sleeper_count + 1);
    stress_count(STRESS_SLEEPS, sleeper_count);
    stress_count(STRESS_RUNTIMES, 1);
    return stress_pass(); /* checks for leaks too */
}
