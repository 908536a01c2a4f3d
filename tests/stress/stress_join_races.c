/*
 * stress_join_races.c: joins racing the completion of the task they join, with the
 * joined task on another worker than the joiner, and chains of joins.
 *
 * Each round creates a runtime (2 to 4 workers, inline joins on or off, drawn from the
 * seed) and runs two parts:
 *
 * 1. Many to many. N targets and N joiners are spawned by a few spawner tasks, in an
 *    order drawn from the seed; a target's handle goes through a shared array of atomic
 *    words, and the joiner of target perm[i] waits (yielding) until it appears, then
 *    joins it, or, one time in eight, detaches it instead. Some joiners are threads that
 *    are not workers (they block in the kernel). Targets end in every way that changes
 *    where and when the completion happens: at once, after spinning, after yielding, after
 *    a short sleep (resumed by a timer, maybe on another worker), after joining a child
 *    of their own. So joins meet targets not started, running, parked, and finished.
 * 2. Chains. C chains of L tasks, all spawned by one task in a shuffled order; task k of a
 *    chain waits for the handle of task k - 1 and joins it, so each join meets its target
 *    in any state, and a target that has not started may run inline on its joiner.
 *
 * Exact checks: every target ran exactly once (joined or detached); every join returned
 * 0 and its target's value; every chain's end returned the sum of its links' values.
 *
 *   stress_join_races [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define SPAWNERS        3
#define FOREIGN_JOINERS 2
#define CHAINS          8

/* ---- 1. many to many ------------------------------------------------------------- */

typedef struct many {
    size_t n;
    uint64_t round;
    weft__atomic_word *slots;    /* target i's handle, published by its spawner */
    weft__atomic_word *ran;      /* times target i's function ran */
    weft__atomic_word *received; /* set by the join of target i (joins are exclusive) */
    size_t *perm;               /* joiner j joins target perm[j] */
    weft__atomic_word joins, detaches, leaves, foreign_next;
    size_t foreign_start; /* joiners [foreign_start, n) are the foreign threads' */
} many;

static many m;

static uint64_t target_value(uint64_t round, size_t i) {
    return stress_hash(round, i);
}

static void *leaf(void *arg) {
    return arg;
}

static void *target(void *arg) {
    size_t i = (size_t)(uintptr_t)arg;
    weft__atomic_fetch_add_full(&m.ran[i], 1);
    stress_rng r = stress_rng_for(m.round << 32 | i);
    switch (stress_below(&r, 6)) {
    case 0: /* at once */
        break;
    case 1:
        stress_spin_ns(stress_below(&r, 20000));
        break;
    case 2:
        for (uint64_t k = stress_below(&r, 4); k > 0; k--)
            weft_yield();
        break;
    case 3:
        STRESS_CHECK(weft_sleep_until(weft_now() + stress_below(&r, 100000)) == 0, "sleep");
        break;
    case 4: {
        weft__atomic_fetch_add_relaxed(&m.leaves, 1);
        weft_task *c = weft_spawn(leaf, (void *)(uintptr_t)i);
        STRESS_CHECK(c != NULL, "spawn of a leaf: %s", strerror(errno));
        void *v;
        STRESS_CHECK(weft_join(c, &v) == 0 && (size_t)(uintptr_t)v == i, "leaf join");
        break;
    }
    default: /* a sleep of 0: a timer that is due at once */
        STRESS_CHECK(weft_sleep_ms(0) == 0, "sleep_ms(0)");
        break;
    }
    return (void *)(uintptr_t)target_value(m.round, i);
}

static weft_task *wait_handle(size_t i) {
    weft_task *t;
    /* Acquire: pairs with the spawner's release store of the handle. */
    while (!(t = weft__atomic_load_ptr_acquire(&m.slots[i]))) {
        if (weft_runtime_current())
            weft_yield();
        else
            sched_yield();
    }
    return t;
}

static void join_one(size_t j, stress_rng *r) {
    size_t i = m.perm[j];
    weft_task *t = wait_handle(i);
    if (stress_chance(r, 1, 8)) {
        weft_detach(t);
        weft__atomic_fetch_add_relaxed(&m.detaches, 1);
        return;
    }
    void *v = NULL;
    int rc = weft_join(t, &v);
    STRESS_CHECK(rc == 0, "round %" PRIu64 ": join of target %zu by joiner %zu returned %d",
                 m.round, i, j, rc);
    STRESS_CHECK((uint64_t)(uintptr_t)v == target_value(m.round, i),
                 "round %" PRIu64 ": target %zu returned %p", m.round, i, v);
    STRESS_CHECK(weft__atomic_fetch_add_full(&m.received[i], 1) == 0,
                 "round %" PRIu64 ": target %zu joined twice", m.round, i);
    weft__atomic_fetch_add_relaxed(&m.joins, 1);
}

static void *joiner(void *arg) {
    size_t j = (size_t)(uintptr_t)arg;
    stress_rng r = stress_rng_for(m.round << 32 | j | 1ull << 31);
    if (stress_chance(&r, 1, 3))
        weft_yield();
    join_one(j, &r);
    return NULL;
}

/* The foreign joiners take joiner indexes from [foreign_start, n) one at a time. */
static void *foreign_joiner(void *arg) {
    (void)arg;
    for (;;) {
        size_t j = (size_t)weft__atomic_fetch_add_full(&m.foreign_next, 1);
        if (j >= m.n)
            return NULL;
        stress_rng r = stress_rng_for(m.round << 32 | j | 1ull << 31);
        join_one(j, &r);
    }
}

/* Spawner s spawns the targets and the task joiners with index = s (mod SPAWNERS), in
 * an order drawn from the seed, and joins its joiners at the end. */
static void *spawner(void *arg) {
    size_t s = (size_t)(uintptr_t)arg;
    stress_rng r = stress_rng_for(m.round << 32 | 0xabcdull << 16 | s);
    size_t count = 0;
    weft_task **joiners = malloc((m.n / SPAWNERS + 1) * sizeof(*joiners));
    STRESS_CHECK(joiners != NULL, "malloc");
    size_t next_target = s, next_joiner = s;
    while (next_target < m.n || next_joiner < m.foreign_start) {
        bool take_target =
            next_joiner >= m.foreign_start || (next_target < m.n && stress_chance(&r, 1, 2));
        if (take_target) {
            weft_task *t = weft_spawn(target, (void *)(uintptr_t)next_target);
            STRESS_CHECK(t != NULL, "spawn of target %zu: %s", next_target, strerror(errno));
            weft__atomic_store_ptr_release(&m.slots[next_target], t);
            next_target += SPAWNERS;
        } else {
            weft_task *t = weft_spawn(joiner, (void *)(uintptr_t)next_joiner);
            STRESS_CHECK(t != NULL, "spawn of joiner %zu: %s", next_joiner, strerror(errno));
            joiners[count++] = t;
            next_joiner += SPAWNERS;
        }
        if (stress_chance(&r, 1, 16))
            weft_yield();
    }
    for (size_t k = 0; k < count; k++)
        STRESS_CHECK(weft_join(joiners[k], NULL) == 0, "join of a joiner");
    free(joiners);
    return NULL;
}

static void *many_main(void *arg) {
    (void)arg;
    weft_task *spawners[SPAWNERS];
    for (size_t s = 0; s < SPAWNERS; s++) {
        spawners[s] = weft_spawn(spawner, (void *)(uintptr_t)s);
        STRESS_CHECK(spawners[s] != NULL, "spawn of a spawner");
    }
    for (size_t s = 0; s < SPAWNERS; s++)
        STRESS_CHECK(weft_join(spawners[s], NULL) == 0, "join of a spawner");
    return NULL;
}

static void run_many(weft_runtime *rt, uint64_t round, size_t n) {
    m = (many){.n = n, .round = round};
    m.slots = calloc(n, sizeof(*m.slots));
    m.ran = calloc(n, sizeof(*m.ran));
    m.received = calloc(n, sizeof(*m.received));
    m.perm = malloc(n * sizeof(*m.perm));
    STRESS_CHECK(m.slots && m.ran && m.received && m.perm, "calloc");
    stress_rng r = stress_rng_for(round << 32 | 0xfe);
    for (size_t i = 0; i < n; i++)
        m.perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)stress_below(&r, i), t = m.perm[i - 1];
        m.perm[i - 1] = m.perm[j];
        m.perm[j] = t;
    }
    /* One joiner in eight is a foreign thread's. */
    m.foreign_start = n - n / 8;
    weft__atomic_store_relaxed(&m.foreign_next, m.foreign_start);

    pthread_t threads[FOREIGN_JOINERS];
    for (int k = 0; k < FOREIGN_JOINERS; k++)
        STRESS_CHECK(pthread_create(&threads[k], NULL, foreign_joiner, NULL) == 0, "thread");
    STRESS_CHECK(weft_block_on(rt, many_main, NULL, NULL) == 0, "block_on");
    for (int k = 0; k < FOREIGN_JOINERS; k++)
        STRESS_CHECK(pthread_join(threads[k], NULL) == 0, "pthread_join");

    /* Detached targets may still be running: wait for them (the watchdog bounds it). */
    for (size_t i = 0; i < n; i++)
        while (weft__atomic_load_acquire(&m.ran[i]) == 0)
            weft_test_sleep_ms(1);
    AO_t joins = weft__atomic_load_acquire(&m.joins), detaches = m.detaches;
    STRESS_CHECK(joins + detaches == n,
                 "round %" PRIu64 ": %lu joins + %lu detaches of %zu targets", round,
                 (unsigned long)joins, (unsigned long)detaches, n);
    /* Targets, their leaves, the task joiners, the spawners and many_main; the joins of
     * all but many_main (block_on's) and the detached targets. */
    AO_t leaves = weft__atomic_load_acquire(&m.leaves);
    stress_count(STRESS_TASKS, n + leaves + m.foreign_start + SPAWNERS + 1);
    stress_count(STRESS_JOINS, joins + leaves + m.foreign_start + SPAWNERS + 1);
    stress_count(STRESS_DETACHES, detaches);
}

static void check_many_after_destroy(void) {
    for (size_t i = 0; i < m.n; i++)
        STRESS_CHECK(m.ran[i] == 1, "round %" PRIu64 ": target %zu ran %lu times", m.round, i,
                     (unsigned long)m.ran[i]);
    free((void *)m.slots);
    free((void *)m.ran);
    free((void *)m.received);
    free(m.perm);
}

/* ---- 2. chains ------------------------------------------------------------------------ */

typedef struct chains {
    size_t length;
    uint64_t round;
    weft__atomic_word *slots; /* [chain * length + k]: the handle of link k */
} chains;

static chains ch;

static uint64_t link_value(size_t chain, size_t k) {
    return stress_hash(ch.round << 16 | chain, k + 0x10000);
}

static void *chain_link(void *arg) {
    size_t id = (size_t)(uintptr_t)arg, chain = id / ch.length, k = id % ch.length;
    stress_rng r = stress_rng_for(ch.round << 40 | 0xc4ull << 32 | id);
    uint64_t sum = link_value(chain, k);
    if (stress_chance(&r, 1, 4))
        stress_spin_ns(stress_below(&r, 5000));
    if (k > 0) {
        weft_task *prev;
        while (!(prev = weft__atomic_load_ptr_acquire(&ch.slots[id - 1])))
            weft_yield();
        void *v;
        int rc = weft_join(prev, &v);
        STRESS_CHECK(rc == 0, "chain %zu: link %zu's join of link %zu returned %d", chain, k, k - 1,
                     rc);
        sum += (uint64_t)(uintptr_t)v;
    }
    if (stress_chance(&r, 1, 4))
        weft_yield();
    return (void *)(uintptr_t)sum;
}

static void *chains_main(void *arg) {
    (void)arg;
    size_t total = CHAINS * ch.length;
    size_t *order = malloc(total * sizeof(*order));
    STRESS_CHECK(order != NULL, "malloc");
    stress_rng r = stress_rng_for(ch.round << 32 | 0xc5);
    for (size_t i = 0; i < total; i++)
        order[i] = i;
    for (size_t i = total; i > 1; i--) {
        size_t j = (size_t)stress_below(&r, i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < total; i++) {
        weft_task *t = weft_spawn(chain_link, (void *)(uintptr_t)order[i]);
        STRESS_CHECK(t != NULL, "spawn of a link: %s", strerror(errno));
        weft__atomic_store_ptr_release(&ch.slots[order[i]], t);
        if (stress_chance(&r, 1, 32))
            weft_yield();
    }
    free(order);
    /* The last link of each chain is joined here; every other link by its successor. */
    for (size_t c = 0; c < CHAINS; c++) {
        void *v;
        weft_task *last = weft__atomic_load_ptr_acquire(&ch.slots[c * ch.length + ch.length - 1]);
        STRESS_CHECK(weft_join(last, &v) == 0, "join of chain %zu's end", c);
        uint64_t expected = 0;
        for (size_t k = 0; k < ch.length; k++)
            expected += link_value(c, k);
        STRESS_CHECK((uint64_t)(uintptr_t)v == expected,
                     "round %" PRIu64 ": chain %zu summed to %" PRIu64 ", expected %" PRIu64,
                     ch.round, c, (uint64_t)(uintptr_t)v, expected);
    }
    return NULL;
}

static void run_chains(weft_runtime *rt, uint64_t round, size_t length) {
    ch = (chains){.length = length, .round = round};
    ch.slots = calloc(CHAINS * length, sizeof(*ch.slots));
    STRESS_CHECK(ch.slots != NULL, "calloc");
    STRESS_CHECK(weft_block_on(rt, chains_main, NULL, NULL) == 0, "block_on");
    free((void *)ch.slots);
    stress_count(STRESS_TASKS, CHAINS * length + 1);
    stress_count(STRESS_JOINS, CHAINS * length);
}

int main(int argc, char **argv) {
    stress_begin("stress_join_races", argc, argv);
    size_t rounds = stress_size(24, 1);
    size_t n = stress_under_tsan() ? 300 : 4000;
    size_t length = stress_under_tsan() ? 40 : 400;
    unsigned inline_rounds = 0;
    uint64_t steals = 0, inline_joins = 0;
    for (uint64_t round = 0; round < rounds; round++) {
        stress_rng r = stress_rng_for(round << 32 | 0x11);
        weft_config cfg = {.workers = (unsigned)stress_between(&r, 2, 4)};
        if (stress_chance(&r, 1, 2))
            cfg.flags = WEFT_CONFIG_NO_INLINE_JOIN;
        else
            inline_rounds++;
        weft_runtime *rt;
        STRESS_CHECK(weft_runtime_create(&cfg, &rt) == 0, "create");
        run_many(rt, round, n);
        run_chains(rt, round, length);
        weft_runtime_stats st;
        STRESS_CHECK(weft_runtime_stats_get(rt, &st) == 0, "stats");
        if (cfg.flags & WEFT_CONFIG_NO_INLINE_JOIN)
            STRESS_CHECK(st.joins_inline == 0, "%" PRIu64 " inline joins with them turned off",
                         st.joins_inline);
        steals += st.steals;
        inline_joins += st.joins_inline;
        STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");
        check_many_after_destroy();
        stress_count(STRESS_RUNTIMES, 1);
    }
    stress_note("%zu rounds (%u with inline joins) of %zu targets and %d chains of %zu", rounds,
                inline_rounds, n, CHAINS, length);
    stress_count(STRESS_STEALS, steals);
    stress_count(STRESS_INLINE_JOINS, inline_joins);
    return stress_pass();
}
