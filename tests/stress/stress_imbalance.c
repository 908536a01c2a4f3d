/*
 * stress_imbalance.c: one producer task spawns all the work; every other worker gets its
 * share only by stealing it.
 *
 * For 1, 2, 3 and 4 workers in turn: a producer task spawns N items (each spins 1 to 20
 * us, now and then 200 us, drawn from the seed) without ever blocking, so its worker never
 * runs them while it produces. It keeps fewer than 200 items outstanding (less than a
 * worker's deque, 256: none overflows to the injection queue), spinning until thieves
 * have taken some. Then it joins them all (a handle each).
 * Checks:
 *   - every item ran exactly once and returned its value (the sum is exact);
 *   - with more than one worker, every worker but the producer's ran items, so every one
 *     of them stole (if one has not when the N items are out, the producer goes on
 *     spawning extra items for up to 10 s: a worker that never wakes while work waits
 *     is a lost wake-up);
 *   - weft_runtime_stats_get counts at least one steal per item that ran on another
 *     thread than the producer's (they could get there no other way), and none with one
 *     worker; and the per-worker counters it adds up (runtime internals) show a steal by
 *     every worker but the producer's.
 *
 *   stress_imbalance [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include "sched/runtime.h" /* the per-worker steal counters behind weft_runtime_stats_get */

#include <errno.h>
#include <sched.h>
#include <string.h>

#define MAX_THREADS 1024 /* stress_thread_index slots: every worker thread of the run */
#define OUTSTANDING 200

static size_t items;
static weft__atomic_word *item_ran;
static weft__atomic_word completed;
static weft__atomic_word ran_on[MAX_THREADS]; /* items run per thread slot */
static int producer_slot;
static unsigned producer_worker; /* its worker's index, while it produces */

static uint64_t item_value(size_t i) {
    return stress_hash(0x1b, i);
}

static void *item(void *arg) {
    size_t i = (size_t)(uintptr_t)arg;
    int slot = stress_thread_index();
    STRESS_CHECK(slot < MAX_THREADS, "too many threads");
    weft__atomic_fetch_add_relaxed(&ran_on[slot], 1);
    weft__atomic_fetch_add_full(&item_ran[i], 1);
    stress_rng r = stress_rng_for(0x17e3ull << 32 | i);
    stress_spin_ns(stress_chance(&r, 1, 200) ? 200000 : stress_between(&r, 1000, 20000));
    weft__atomic_fetch_add_full(&completed, 1);
    return (void *)(uintptr_t)item_value(i);
}

typedef struct phase {
    unsigned workers;
    int thread_slots_before; /* slots taken before this runtime's workers started */
} phase;

/* Thread slots (other than the producer's) that ran at least one item, among those
 * created for this phase. */
static unsigned thieves_that_ran(const phase *p) {
    unsigned n = 0;
    AO_t slots = weft__atomic_load_acquire(&stress_thread_slots);
    for (AO_t s = (AO_t)p->thread_slots_before; s < slots && s < MAX_THREADS; s++)
        if ((int)s != producer_slot && weft__atomic_load_acquire(&ran_on[s]) > 0)
            n++;
    return n;
}

/* Spawns items [from, to), keeping fewer than OUTSTANDING not completed. */
static void produce(const phase *p, weft_task **handles, size_t from, size_t to) {
    uint64_t give_up = weft_now() + 10000000000ull;
    for (size_t i = from; i < to; i++) {
        /* Throttle without blocking: the thieves must take the items. With one worker
         * nobody else can: yield to let this worker run them. */
        while (i - weft__atomic_load_acquire(&completed) >= OUTSTANDING) {
            if (p->workers == 1)
                weft_yield();
            else
                sched_yield();
            STRESS_CHECK(weft_now() < give_up,
                         "%u workers: no item completed for 10 s while the producer's deque "
                         "held %d (a thief is not woken?)",
                         p->workers, OUTSTANDING);
        }
        handles[i] = weft_spawn(item, (void *)(uintptr_t)i);
        STRESS_CHECK(handles[i] != NULL, "spawn of item %zu: %s", i, strerror(errno));
        give_up = weft_now() + 10000000000ull;
    }
}

static size_t spawned_items; /* items plus the extra ones */

static void *producer(void *arg) {
    phase *p = arg;
    producer_slot = stress_thread_index();
    producer_worker = weft__worker_current()->index;
    weft_task **handles = malloc(2 * items * sizeof(*handles));
    STRESS_CHECK(handles != NULL, "malloc");
    produce(p, handles, 0, items);
    spawned_items = items;
    /* Every other worker should have stolen by now. If one has not, more work keeps
     * coming for up to 10 s (or another `items`) before that is a failure. */
    uint64_t deadline = weft_now() + 10000000000ull;
    while (p->workers > 1 && thieves_that_ran(p) < p->workers - 1) {
        STRESS_CHECK(weft_now() < deadline && spawned_items < 2 * items,
                     "%u workers: only %u of the %u others ran an item, with work waiting on "
                     "the producer's deque for %zu items",
                     p->workers, thieves_that_ran(p), p->workers - 1, spawned_items);
        produce(p, handles, spawned_items, spawned_items + 100);
        spawned_items += 100;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < spawned_items; i++) {
        void *v;
        STRESS_CHECK(weft_join(handles[i], &v) == 0, "join of item %zu", i);
        STRESS_CHECK((uint64_t)(uintptr_t)v == item_value(i), "item %zu returned %p", i, v);
        sum += (uint64_t)(uintptr_t)v;
    }
    free(handles);
    return (void *)(uintptr_t)sum;
}

static void run_phase(unsigned workers) {
    phase p = {.workers = workers,
               .thread_slots_before = (int)weft__atomic_load_acquire(&stress_thread_slots)};
    memset((void *)ran_on, 0, sizeof ran_on);
    weft__atomic_store_relaxed(&completed, 0);
    item_ran = calloc(2 * items + 100, sizeof(*item_ran));
    STRESS_CHECK(item_ran != NULL, "calloc");
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&(weft_config){.workers = workers}, &rt) == 0, "create");
    void *sum;
    uint64_t start = weft_now();
    STRESS_CHECK(weft_block_on(rt, producer, &p, &sum) == 0, "block_on");
    double seconds = (double)(weft_now() - start) / 1e9;
    weft_runtime_stats st;
    STRESS_CHECK(weft_runtime_stats_get(rt, &st) == 0, "stats");
    /* The total above, per worker: every worker but the producer's stole. */
    for (unsigned k = 0; k < workers; k++)
        STRESS_CHECK(k == producer_worker || weft__atomic_load_acquire(&rt->workers[k]->steals) > 0,
                     "%u workers: worker %u never stole (the producer ran on worker %u)", workers,
                     k, producer_worker);
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");

    uint64_t expected = 0;
    for (size_t i = 0; i < spawned_items; i++) {
        STRESS_CHECK(item_ran[i] == 1, "%u workers: item %zu ran %lu times", workers, i,
                     (unsigned long)item_ran[i]);
        expected += item_value(i);
    }
    STRESS_CHECK((uint64_t)(uintptr_t)sum == expected,
                 "%u workers: sum %" PRIu64 ", expected %" PRIu64, workers,
                 (uint64_t)(uintptr_t)sum, expected);
    uint64_t elsewhere = 0, here = ran_on[producer_slot];
    AO_t slots = weft__atomic_load_acquire(&stress_thread_slots);
    for (AO_t s = (AO_t)p.thread_slots_before; s < slots && s < MAX_THREADS; s++)
        if ((int)s != producer_slot)
            elsewhere += ran_on[s];
    STRESS_CHECK(here + elsewhere == spawned_items, "%u workers: %" PRIu64 " items counted of %zu",
                 workers, here + elsewhere, spawned_items);
    if (workers == 1) {
        STRESS_CHECK(st.steals == 0, "%" PRIu64 " steals with one worker", st.steals);
    } else {
        STRESS_CHECK(st.steals > 0, "%u workers: no steals", workers);
        STRESS_CHECK(st.steals >= elsewhere,
                     "%u workers: %" PRIu64 " steals, yet %" PRIu64 " items ran away from the "
                     "producer's worker",
                     workers, st.steals, elsewhere);
        STRESS_CHECK(thieves_that_ran(&p) == workers - 1, "%u workers: %u thieves ran items",
                     workers, thieves_that_ran(&p));
    }
    stress_note("%u workers: %zu items in %.2f s, %" PRIu64
                " run by the producer's worker, %" PRIu64 " stolen (%" PRIu64 " steals)",
                workers, spawned_items, seconds, here, elsewhere, st.steals);
    free((void *)item_ran);
    stress_count(STRESS_TASKS, spawned_items + 1);
    stress_count(STRESS_JOINS, spawned_items + 1);
    stress_count(STRESS_STEALS, st.steals);
    stress_count(STRESS_RUNTIMES, 1);
}

int main(int argc, char **argv) {
    stress_begin("stress_imbalance", argc, argv);
    items = stress_size(40000, 2);
    for (unsigned workers = 1; workers <= 4; workers++)
        run_phase(workers);
    return stress_pass();
}
