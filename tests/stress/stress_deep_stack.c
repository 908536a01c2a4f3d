/*
 * stress_deep_stack.c: many tasks recursing close to the end of their stack (64 KiB,
 * the default), and blocking down there: yields, sleeps, spawns and joins at the
 * bottom of the recursion switch contexts with the stack nearly full, children are
 * stolen and parked with deep stacks, and inline joins run children on a joiner's
 * stack.
 *
 * Each task recurses through frames of two sizes (about 200 bytes and 1.5 KiB, drawn
 * from the seed) whose locals hold a pattern, until the stack it has used, measured from
 * its own first frame, reaches its target; at the bottom it does one of: nothing, a
 * yield, a sleep, a spawn and join of one or two children (which recurse in turn), or a
 * spawn and a deadline join; then it unwinds, checking every frame's pattern (a context
 * switch that saved or restored the wrong stack would break one). Depth is measured,
 * not counted, so the test holds under the sanitizers' larger frames.
 *
 * Targets stay within what weft guarantees (weft.h):
 *   - WEFT_CONFIG_NO_INLINE_JOIN: every task has its whole stack: 48 KiB of 64.
 *   - inline joins (the default): a child run inline on its joiner's stack is only sure
 *     of 3/4 of it (48 KiB), less the join's own frames: 40 KiB. One task in four first
 *     recurses only a little (under 1/4 of the stack) before it joins, so that its
 *     children are inlined with the least room weft allows.
 * Checks: every frame's pattern, every task ran exactly once (counted against the tree
 * drawn from the seed), every join returned its child's value, and the stack never
 * overflowed (weft would abort with a report).
 *
 *   stress_deep_stack [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include <errno.h>
#include <string.h>

#define KIB       ((size_t)1024)
#define STACK     (64 * KIB)
#define MAX_LEVEL 2

static size_t target_bytes; /* the deepest any task of this run recurses */
static weft__atomic_word ran, deepest, joins;

typedef struct dive {
    uintptr_t top;   /* the task's first frame */
    size_t target;   /* recurse until this much is used */
    uint64_t id;     /* the task */
    unsigned level;  /* 0: a root */
    stress_rng rng;  /* the task's draws */
    uint64_t result; /* what the bottom computed */
    size_t frames;
} dive;

static uint64_t step(dive *d, uint64_t salt);

/* A frame of `words` 8-byte words, filled with a pattern and checked on the way up. */
#define DEFINE_DESCEND(name, words)                                                                \
    __attribute__((noinline)) static uint64_t name(dive *d, uint64_t salt) {                       \
        volatile uint64_t frame[words];                                                            \
        for (size_t i = 0; i < (words); i++)                                                       \
            frame[i] = salt ^ (i * 0x9e3779b97f4a7c15ull);                                         \
        d->frames++;                                                                               \
        uint64_t below = step(d, stress_mix(salt));                                                \
        for (size_t i = 0; i < (words); i++)                                                       \
            STRESS_CHECK(frame[i] == (salt ^ (i * 0x9e3779b97f4a7c15ull)),                         \
                         "task %" PRIu64 ": a frame's word %zu changed while the task was deeper " \
                         "(frame %zu of its recursion)",                                           \
                         d->id, i, d->frames);                                                     \
        return below + frame[(words)-1];                                                           \
    }

DEFINE_DESCEND(descend_small, 24)
DEFINE_DESCEND(descend_big, 192)

static void *deep_task(void *arg);
static void *pack(uint64_t id, unsigned level);

static uint64_t tree_value(uint64_t id) {
    return stress_hash(id, 0xdee9);
}

/* The bottom of a task's recursion: block, or spawn children there. */
__attribute__((noinline)) static void at_bottom(dive *d) {
    size_t used = d->top - (uintptr_t)__builtin_frame_address(0);
    AO_t seen = weft__atomic_load_relaxed(&deepest);
    while (used > seen) {
        AO_t prev = weft__atomic_cas_full(&deepest, seen, used);
        if (prev == seen)
            break;
        seen = prev;
    }
    unsigned action = (unsigned)stress_below(&d->rng, 7);
    if (d->level >= MAX_LEVEL && action >= 3)
        action = action % 3;
    switch (action) {
    case 0:
        break;
    case 1:
        weft_yield();
        break;
    case 2:
        STRESS_CHECK(weft_sleep_until(weft_now() + stress_below(&d->rng, 50000)) == 0, "sleep");
        break;
    case 3:
    case 4:
    case 5: {
        unsigned n = action == 5 ? 2 : 1;
        weft_task *kids[2];
        for (unsigned j = 0; j < n; j++) {
            uint64_t kid = d->id * 4 + j + 1;
            kids[j] = weft_spawn(deep_task, pack(kid, d->level + 1));
            STRESS_CHECK(kids[j] != NULL, "spawn at depth %zu: %s", used, strerror(errno));
        }
        for (unsigned j = 0; j < n; j++) {
            void *v;
            int rc;
            if (action == 4) /* a deadline join is never inlined: the child has a stack */
                while ((rc = weft_join_until(kids[j], weft_now() + 20000, &v)) == -ETIMEDOUT)
                    ;
            else
                rc = weft_join(kids[j], &v);
            STRESS_CHECK(rc == 0, "join at depth %zu: %d", used, rc);
            STRESS_CHECK((uint64_t)(uintptr_t)v == tree_value(d->id * 4 + j + 1),
                         "task %" PRIu64 ": child %u returned %p", d->id, j, v);
            weft__atomic_fetch_add_relaxed(&joins, 1);
        }
        break;
    }
    default:
        weft_yield();
        STRESS_CHECK(weft_sleep_ms(0) == 0, "sleep_ms(0)");
        break;
    }
}

static uint64_t step(dive *d, uint64_t salt) {
    size_t used = d->top - (uintptr_t)__builtin_frame_address(0);
    /* Stop before the next frame (at most ~1.5 KiB, more under ASan) could pass the
     * target. */
    if (used + 2 * KIB >= d->target) {
        at_bottom(d);
        return salt;
    }
    return stress_chance(&d->rng, 1, 3) ? descend_big(d, salt) : descend_small(d, salt);
}

/* A task's argument: its id and level, packed. The children of id are id * 4 + 1, + 2. */
static void *pack(uint64_t id, unsigned level) {
    return (void *)(uintptr_t)(id << 2 | level);
}

static void *deep_task(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg >> 2;
    weft__atomic_fetch_add_relaxed(&ran, 1);
    dive d = {.top = (uintptr_t)__builtin_frame_address(0),
              .id = id,
              .level = (unsigned)((uintptr_t)arg & 3),
              .rng = stress_rng_for(id)};
    /* One task in four stays shallow before it blocks or joins: its children are then
     * inlined (inline joins on) at the least room weft guarantees. */
    d.target = stress_chance(&d.rng, 1, 4)
                   ? (size_t)stress_between(&d.rng, 2 * KIB, STACK / 4 - 4 * KIB)
                   : (size_t)stress_between(&d.rng, target_bytes - 8 * KIB, target_bytes);
    uint64_t r = step(&d, stress_mix(id));
    (void)r;
    return (void *)(uintptr_t)tree_value(id);
}

static size_t roots;

static void *driver(void *arg) {
    (void)arg;
    stress_rng r = stress_rng_for(0xd1);
    size_t batch = stress_under_sanitizer() ? 50 : 400;
    weft_task **handles = malloc(batch * sizeof(*handles));
    STRESS_CHECK(handles != NULL, "malloc");
    for (size_t done = 0; done < roots;) {
        size_t n = roots - done < batch ? roots - done : batch;
        for (size_t i = 0; i < n; i++) {
            handles[i] = weft_spawn(deep_task, pack(done + i + 1, 0));
            STRESS_CHECK(handles[i] != NULL, "spawn of a root: %s", strerror(errno));
        }
        /* Newest first, half the time: the last spawned is the next this worker would
         * run, so (inline joins on) it runs inline, on this task's stack. */
        bool newest_first = stress_chance(&r, 1, 2);
        for (size_t k = 0; k < n; k++) {
            size_t i = newest_first ? n - 1 - k : k;
            void *v;
            STRESS_CHECK(weft_join(handles[i], &v) == 0, "join of a root");
            STRESS_CHECK((uint64_t)(uintptr_t)v == tree_value(done + i + 1), "root %zu returned %p",
                         done + i, v);
        }
        done += n;
    }
    free(handles);
    return NULL;
}

static void run_mode(unsigned flags, unsigned workers) {
    /* 48 KiB with a stack of its own; 40 KiB where a task may run inline, on 3/4 of one. */
    target_bytes = flags & WEFT_CONFIG_NO_INLINE_JOIN ? 48 * KIB : 40 * KIB;
    weft__atomic_store_relaxed(&ran, 0);
    weft__atomic_store_relaxed(&deepest, 0);
    weft__atomic_store_relaxed(&joins, 0);
    weft_runtime *rt;
    STRESS_CHECK(
        weft_runtime_create(&(weft_config){.workers = workers, .stack_size = STACK, .flags = flags},
                            &rt) == 0,
        "create");
    STRESS_CHECK(weft_block_on(rt, driver, NULL, NULL) == 0, "block_on");
    weft_runtime_stats st;
    STRESS_CHECK(weft_runtime_stats_get(rt, &st) == 0, "stats");
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");
    AO_t tasks = weft__atomic_load_acquire(&ran), j = weft__atomic_load_acquire(&joins);
    /* Every task but the roots was joined by its parent, once. */
    STRESS_CHECK(tasks == roots + j, "%lu tasks ran for %zu roots and %lu joined children",
                 (unsigned long)tasks, roots, (unsigned long)j);
    STRESS_CHECK(st.tasks_spawned == tasks + 1, "the runtime counted %" PRIu64 " spawns for %lu",
                 st.tasks_spawned, (unsigned long)tasks + 1);
    if (flags & WEFT_CONFIG_NO_INLINE_JOIN)
        STRESS_CHECK(st.joins_inline == 0, "inline joins with them off");
    stress_note("%s: %lu tasks on %u workers, deepest %lu bytes of a %zu-byte target, %" PRIu64
                " inline joins, %" PRIu64 " steals",
                flags ? "no inline joins" : "inline joins", (unsigned long)tasks, workers,
                (unsigned long)deepest, target_bytes, st.joins_inline, st.steals);
    stress_count(STRESS_TASKS, tasks + 1);
    stress_count(STRESS_JOINS, j + roots);
    stress_count(STRESS_INLINE_JOINS, st.joins_inline);
    stress_count(STRESS_STEALS, st.steals);
    stress_count(STRESS_RUNTIMES, 1);
}

int main(int argc, char **argv) {
    stress_begin("stress_deep_stack", argc, argv);
    stress_rng r = stress_rng_for(0);
    unsigned workers = (unsigned)stress_between(&r, 2, 4);
    roots = stress_size(40000, 2);
    run_mode(WEFT_CONFIG_NO_INLINE_JOIN, workers);
    run_mode(0, workers);
    return stress_pass();
}
