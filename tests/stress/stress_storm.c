/*
 * stress_storm.c: spawn storms from several threads that are not workers, while the
 * workers steal from each other.
 *
 * FOREIGN threads each spawn batches of root tasks (1 to 1,000, a size drawn per batch)
 * with weft_spawn_on, all at once and with no pause between batches, then join them in
 * a random order. Every root spawns 0 to 4 children and every child 0 to
 * 2 grandchildren (onto its worker's deque, where idle workers steal them), yields now
 * and then, and joins what it spawned; the tree's shape and each task's value come from
 * the seed (stress.h), so the main thread can recompute them. About one task in six
 * (and one root in eight) is detached instead of joined: it adds its subtree's sum to a
 * shared total itself. The checks are exact: the joined sums plus the detached total
 * equal the recomputed sum of every task's value (a task lost or run twice changes it),
 * the number of task functions run equals the number of tasks in the trees, and the
 * runtime's own count of spawns agrees.
 *
 *   stress_storm [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define FOREIGN   4
#define MAX_DEPTH 2

static weft_runtime *runtime;
static size_t rounds, batch;
static weft__atomic_word ran;          /* task functions run */
static weft__atomic_word detached_sum; /* what detached tasks added */

/* A task's argument: its id and depth, packed. Children of id are id * 8 + 1 ... 8. */
static void *pack(uint64_t id, unsigned depth) {
    return (void *)(uintptr_t)(id << 2 | depth);
}

static unsigned children_of(stress_rng *r, unsigned depth) {
    return depth >= MAX_DEPTH ? 0 : (unsigned)stress_below(r, depth == 0 ? 5 : 3);
}

/* Whether task `id` (not a root) is detached by its parent, drawn from a stream of its
 * own so that the parent and the child agree. */
static bool detached_child(uint64_t id) {
    stress_rng r = stress_rng_for(id ^ 0xde7ac4ed00000000ull);
    return stress_chance(&r, 1, 6);
}

static bool detached_root(uint64_t id) {
    stress_rng r = stress_rng_for(id ^ 0x2007000000000000ull);
    return stress_chance(&r, 1, 8);
}

static void *storm_task(void *arg) {
    uint64_t code = (uint64_t)(uintptr_t)arg;
    uint64_t id = code >> 2;
    unsigned depth = (unsigned)(code & 3);
    weft__atomic_fetch_add_relaxed(&ran, 1);
    stress_rng r = stress_rng_for(id);
    uint64_t sum = stress_hash(id, 1);
    unsigned n = children_of(&r, depth);
    weft_task *kids[5];
    for (unsigned j = 0; j < n; j++) {
        uint64_t kid = id * 8 + j + 1;
        kids[j] = weft_spawn(storm_task, pack(kid, depth + 1));
        STRESS_CHECK(kids[j] != NULL, "task %" PRIu64 ": spawn of child %u: %s", id, j,
                     strerror(errno));
        if (detached_child(kid)) {
            weft_detach(kids[j]);
            kids[j] = NULL;
        }
    }
    if (stress_chance(&r, 1, 4))
        weft_yield();
    for (unsigned j = 0; j < n; j++) {
        if (!kids[j])
            continue;
        void *v;
        STRESS_CHECK(weft_join(kids[j], &v) == 0, "task %" PRIu64 ": join of child %u", id, j);
        sum += (uint64_t)(uintptr_t)v;
    }
    bool detached = depth == 0 ? detached_root(id) : detached_child(id);
    if (detached)
        weft__atomic_fetch_add_full(&detached_sum, (AO_t)sum);
    return (void *)(uintptr_t)sum;
}

/* The same tree, recomputed: the sum of its values, its number of tasks and of the
 * children that are detached rather than joined. */
static uint64_t expected_tree(uint64_t id, unsigned depth, uint64_t *tasks, uint64_t *detached) {
    stress_rng r = stress_rng_for(id);
    uint64_t sum = stress_hash(id, 1);
    unsigned n = children_of(&r, depth);
    ++*tasks;
    for (unsigned j = 0; j < n; j++) {
        uint64_t kid = id * 8 + j + 1;
        *detached += detached_child(kid);
        sum += expected_tree(kid, depth + 1, tasks, detached);
    }
    return sum;
}

typedef struct foreign {
    pthread_t thread;
    unsigned index;
    uint64_t joined_sum; /* sums returned to this thread's joins */
    uint64_t joins, detaches;
} foreign;

static uint64_t root_id(unsigned thread, size_t round, size_t i) {
    return ((uint64_t)thread << 40 | (uint64_t)round << 20 | i) + 1;
}

/* How many roots a thread spawns in a round: 1 to `batch`, so that storms of every
 * size meet. */
static size_t batch_size(unsigned thread, size_t round) {
    stress_rng r = stress_rng_for(root_id(thread, round, 0) ^ 0xba7c000000000000ull);
    return (size_t)stress_between(&r, 1, batch);
}

static void *foreign_main(void *arg) {
    foreign *f = arg;
    weft_task **handles = malloc(batch * sizeof(*handles));
    size_t *order = malloc(batch * sizeof(*order));
    STRESS_CHECK(handles && order, "malloc");
    stress_rng r = stress_rng_for(0xf0e1000000000000ull + f->index);
    for (size_t round = 0; round < rounds; round++) {
        size_t n = batch_size(f->index, round);
        for (size_t i = 0; i < n; i++) {
            uint64_t id = root_id(f->index, round, i);
            handles[i] = weft_spawn_on(runtime, storm_task, pack(id, 0));
            STRESS_CHECK(handles[i] != NULL, "thread %u: spawn_on of root %zu: %s", f->index, i,
                         strerror(errno));
            if (detached_root(id)) {
                weft_detach(handles[i]);
                handles[i] = NULL;
                f->detaches++;
            }
            order[i] = i;
        }
        /* Join in a random order: some roots are long done, some not started. */
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)stress_below(&r, i);
            size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            if (!handles[i])
                continue;
            void *v;
            STRESS_CHECK(weft_join(handles[i], &v) == 0, "thread %u: join of root %zu", f->index,
                         i);
            f->joined_sum += (uint64_t)(uintptr_t)v;
            f->joins++;
        }
    }
    free(order);
    free(handles);
    return NULL;
}

int main(int argc, char **argv) {
    stress_begin("stress_storm", argc, argv);
    stress_rng r = stress_rng_for(0);
    unsigned workers = (unsigned)stress_between(&r, 2, 4);
    rounds = stress_size(600, 4);
    batch = stress_under_tsan() ? 200 : 1000;
    stress_note("%u workers, %d foreign threads, %zu rounds of 1 to %zu roots each", workers,
                FOREIGN, rounds, batch);

    STRESS_CHECK(weft_runtime_create(&(weft_config){.workers = workers}, &runtime) == 0, "create");
    foreign threads[FOREIGN];
    for (unsigned i = 0; i < FOREIGN; i++) {
        threads[i] = (foreign){.index = i};
        STRESS_CHECK(pthread_create(&threads[i].thread, NULL, foreign_main, &threads[i]) == 0,
                     "pthread_create");
    }
    uint64_t joined = 0, joins = 0, detaches = 0;
    for (unsigned i = 0; i < FOREIGN; i++) {
        STRESS_CHECK(pthread_join(threads[i].thread, NULL) == 0, "pthread_join");
        joined += threads[i].joined_sum;
        joins += threads[i].joins;
        detaches += threads[i].detaches;
    }

    uint64_t expected = 0, tasks = 0, detached_children = 0, roots = 0;
    for (unsigned t = 0; t < FOREIGN; t++)
        for (size_t round = 0; round < rounds; round++) {
            size_t n = batch_size(t, round);
            roots += n;
            for (size_t i = 0; i < n; i++)
                expected += expected_tree(root_id(t, round, i), 0, &tasks, &detached_children);
        }

    /* Detached tasks may still run: wait until every task has (the watchdog bounds it),
     * then the runtime is quiet and its statistics exact. */
    while (weft__atomic_load_acquire(&ran) < tasks)
        weft_test_sleep_ms(1);
    weft_runtime_stats st;
    STRESS_CHECK(weft_runtime_stats_get(runtime, &st) == 0, "stats");
    STRESS_CHECK(weft_runtime_destroy(runtime) == 0, "destroy");

    uint64_t got = joined + (uint64_t)weft__atomic_load_acquire(&detached_sum);
    STRESS_CHECK(weft__atomic_load_acquire(&ran) == tasks,
                 "%lu task functions ran, expected %" PRIu64,
                 (unsigned long)weft__atomic_load_acquire(&ran), tasks);
    STRESS_CHECK(got == expected,
                 "sum %" PRIu64 " (joined %" PRIu64 " + detached %lu), expected %" PRIu64, got,
                 joined, (unsigned long)weft__atomic_load_acquire(&detached_sum), expected);
    STRESS_CHECK(st.tasks_spawned == tasks,
                 "the runtime counted %" PRIu64 " spawns, expected %" PRIu64, st.tasks_spawned,
                 tasks);
    stress_count(STRESS_TASKS, tasks);
    stress_count(STRESS_FOREIGN, roots);
    stress_count(STRESS_JOINS, joins + (tasks - roots - detached_children));
    stress_count(STRESS_DETACHES, detaches + detached_children);
    stress_count(STRESS_STEALS, st.steals);
    stress_count(STRESS_RUNTIMES, 1);
    return stress_pass();
}
