/*
 * stress_random_sleepers.c: S concurrent sleepers (S = 100,000 with the default
 * configuration; 1/50 of that under TSan; at most 250,000 whatever the scale, under
 * the default max_tasks) with random deadlines drawn from the seed, spread over every
 * level of the timing wheels: a few microseconds to 1.5 s, deadlines already past,
 * several sleeps in a row, weft_sleep_ms, a sleep after a yield. They are spawned by four
 * spawner tasks (onto four workers' wheels, as they get stolen) and by two threads that
 * are not workers (weft_spawn_on), then all joined.
 * Checks: no sleep returns before its deadline; every sleeper ran exactly once, woke
 * from every sleep, and returned its value (the sum is exact). Prints the lateness
 * (median, p99, max) for information; nothing is timed against a bound.
 *
 *   stress_random_sleepers [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define US         1000ull
#define MS         1000000ull
#define SPAWNERS   4
#define FOREIGN    2
#define MAX_SLEEPS 4

static size_t count;
static weft__atomic_word *ran;
static uint64_t *lateness_ns; /* per sleeper, its worst sleep; written by that sleeper only */
static weft__atomic_word sleeps_done, past_deadlines;

static uint64_t sleeper_value(size_t i) {
    return stress_hash(0x51ee9, i);
}

/* One random duration: mostly short, some across the coarser wheel levels. */
static uint64_t draw_duration(stress_rng *r) {
    switch (stress_below(r, 10)) {
    case 0:
        return stress_below(r, 100 * US); /* the finest level */
    case 1:
    case 2:
        return stress_below(r, 5 * MS);
    case 3:
    case 4:
    case 5:
        return stress_below(r, 300 * MS);
    default:
        return stress_chance(r, 1, 50) ? stress_between(r, 1000 * MS, 1500 * MS)
                                       : stress_between(r, 300 * MS, 1000 * MS);
    }
}

/* What sleeper i does, as durations: its plan. Shared by the sleeper and the check. */
typedef struct plan {
    unsigned kind; /* 0: sleep_until; 1: sleep_ms; 2: several; 3: a past deadline; 4: yield */
    unsigned sleeps;
    uint64_t ns[MAX_SLEEPS];
} plan;

static plan plan_of(size_t i) {
    stress_rng r = stress_rng_for(0x51ull << 40 | i);
    plan p = {.sleeps = 1};
    uint64_t k = stress_below(&r, 20);
    p.kind = k < 14 ? 0 : k < 16 ? 1 : k < 18 ? 2 : k < 19 ? 3 : 4;
    if (p.kind == 2 || p.kind == 4)
        p.sleeps = p.kind == 2 ? (unsigned)stress_between(&r, 2, MAX_SLEEPS) : 2;
    for (unsigned s = 0; s < p.sleeps; s++) {
        p.ns[s] = draw_duration(&r);
        if (p.sleeps > 1)
            p.ns[s] /= p.sleeps;
        if (p.kind == 1)
            p.ns[s] = p.ns[s] / MS * MS; /* whole milliseconds */
    }
    return p;
}

static void *sleeper(void *arg) {
    size_t i = (size_t)(uintptr_t)arg;
    weft__atomic_fetch_add_relaxed(&ran[i], 1);
    plan p = plan_of(i);
    uint64_t worst = 0;
    for (unsigned s = 0; s < p.sleeps; s++) {
        uint64_t deadline;
        int rc;
        if (p.kind == 3) { /* already past: returns at once */
            deadline = weft_now() - p.ns[s] - 1;
            rc = weft_sleep_until(deadline);
            weft__atomic_fetch_add_relaxed(&past_deadlines, 1);
        } else if (p.kind == 1) {
            deadline = weft_now() + p.ns[s];
            rc = weft_sleep_ms(p.ns[s] / MS);
        } else {
            if (p.kind == 4 && s == 1)
                weft_yield();
            deadline = weft_now() + p.ns[s];
            rc = weft_sleep_until(deadline);
        }
        uint64_t now = weft_now();
        STRESS_CHECK(rc == 0, "sleeper %zu: sleep %u returned %d", i, s, rc);
        STRESS_CHECK(now >= deadline,
                     "sleeper %zu woke %" PRIu64 " ns early (kind %u, sleep %u of %" PRIu64 " ns)",
                     i, deadline - now, p.kind, s, p.ns[s]);
        if (now - deadline > worst && p.kind != 3)
            worst = now - deadline;
        weft__atomic_fetch_add_relaxed(&sleeps_done, 1);
    }
    lateness_ns[i] = worst;
    return (void *)(uintptr_t)sleeper_value(i);
}

/* The sleepers [from, to), spawned all at once, then joined; returns their sum. */
static uint64_t spawn_and_join(weft_runtime *rt, size_t from, size_t to) {
    weft_task **handles = malloc((to - from) * sizeof(*handles));
    STRESS_CHECK(handles != NULL, "malloc");
    for (size_t i = from; i < to; i++) {
        handles[i - from] = rt ? weft_spawn_on(rt, sleeper, (void *)(uintptr_t)i)
                               : weft_spawn(sleeper, (void *)(uintptr_t)i);
        STRESS_CHECK(handles[i - from] != NULL, "spawn of sleeper %zu: %s", i, strerror(errno));
    }
    uint64_t sum = 0;
    for (size_t i = from; i < to; i++) {
        void *v;
        STRESS_CHECK(weft_join(handles[i - from], &v) == 0, "join of sleeper %zu", i);
        STRESS_CHECK((uint64_t)(uintptr_t)v == sleeper_value(i), "sleeper %zu returned %p", i, v);
        sum += (uint64_t)(uintptr_t)v;
    }
    free(handles);
    return sum;
}

/* Sleepers [0, foreign_from) go to the spawner tasks, the rest to the threads. */
static size_t foreign_from;

static size_t share_from(size_t part, size_t parts, size_t begin, size_t end) {
    return begin + (end - begin) * part / parts;
}

static void *spawner(void *arg) {
    size_t k = (size_t)(uintptr_t)arg;
    return (void *)(uintptr_t)spawn_and_join(NULL, share_from(k, SPAWNERS, 0, foreign_from),
                                             share_from(k + 1, SPAWNERS, 0, foreign_from));
}

static void *parent(void *arg) {
    (void)arg;
    weft_task *spawners[SPAWNERS];
    for (size_t k = 0; k < SPAWNERS; k++) {
        spawners[k] = weft_spawn(spawner, (void *)(uintptr_t)k);
        STRESS_CHECK(spawners[k] != NULL, "spawn of a spawner");
    }
    uint64_t sum = 0;
    for (size_t k = 0; k < SPAWNERS; k++) {
        void *v;
        STRESS_CHECK(weft_join(spawners[k], &v) == 0, "join of a spawner");
        sum += (uint64_t)(uintptr_t)v;
    }
    return (void *)(uintptr_t)sum;
}

typedef struct foreign {
    pthread_t thread;
    weft_runtime *rt;
    size_t from, to;
    uint64_t sum;
} foreign;

static void *foreign_main(void *arg) {
    foreign *f = arg;
    f->sum = spawn_and_join(f->rt, f->from, f->to);
    return NULL;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    stress_begin("stress_random_sleepers", argc, argv);
    count = stress_size_capped(100000, 50, 250000);
    foreign_from = count - count / 4;
    ran = calloc(count, sizeof(*ran));
    lateness_ns = calloc(count, sizeof(*lateness_ns));
    STRESS_CHECK(ran && lateness_ns, "calloc");

    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(NULL, &rt) == 0, "create"); /* the default configuration */
    uint64_t start = weft_now();
    weft_task *root = weft_spawn_on(rt, parent, NULL);
    STRESS_CHECK(root != NULL, "spawn_on");
    foreign threads[FOREIGN];
    for (size_t k = 0; k < FOREIGN; k++) {
        threads[k] = (foreign){.rt = rt,
                               .from = share_from(k, FOREIGN, foreign_from, count),
                               .to = share_from(k + 1, FOREIGN, foreign_from, count)};
        STRESS_CHECK(pthread_create(&threads[k].thread, NULL, foreign_main, &threads[k]) == 0,
                     "pthread_create");
    }
    void *v;
    STRESS_CHECK(weft_join(root, &v) == 0, "join of the parent");
    uint64_t sum = (uint64_t)(uintptr_t)v;
    for (size_t k = 0; k < FOREIGN; k++) {
        STRESS_CHECK(pthread_join(threads[k].thread, NULL) == 0, "pthread_join");
        sum += threads[k].sum;
    }
    double wall = (double)(weft_now() - start) / 1e9;
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");

    uint64_t expected = 0, expected_sleeps = 0;
    for (size_t i = 0; i < count; i++) {
        STRESS_CHECK(ran[i] == 1, "sleeper %zu ran %lu times", i, (unsigned long)ran[i]);
        expected += sleeper_value(i);
        expected_sleeps += plan_of(i).sleeps;
    }
    STRESS_CHECK(sum == expected, "sum %" PRIu64 ", expected %" PRIu64, sum, expected);
    STRESS_CHECK(sleeps_done == expected_sleeps, "%lu sleeps returned, expected %" PRIu64,
                 (unsigned long)sleeps_done, expected_sleeps);
    qsort(lateness_ns, count, sizeof(*lateness_ns), compare_u64);
    stress_note("%zu sleepers (%lu sleeps, %lu with past deadlines) in %.2f s; worst lateness "
                "per sleeper: median %.1f us, p99 %.1f us, max %.1f us",
                count, (unsigned long)sleeps_done, (unsigned long)past_deadlines, wall,
                (double)lateness_ns[count / 2] / 1e3, (double)lateness_ns[count * 99 / 100] / 1e3,
                (double)lateness_ns[count - 1] / 1e3);
    free((void *)ran);
    free(lateness_ns);
    stress_count(STRESS_TASKS, count + SPAWNERS + 1);
    stress_count(STRESS_JOINS, count + SPAWNERS + 1);
    stress_count(STRESS_FOREIGN, count - foreign_from + 1);
    stress_count(STRESS_SLEEPS, sleeps_done);
    stress_count(STRESS_RUNTIMES, 1);
    return stress_pass();
}
