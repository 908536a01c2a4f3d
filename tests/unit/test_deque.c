/*
 * test_deque.c: the sequential semantics of the bounded Chase-Lev deque (runtime/deque.h),
 * on one thread: capacities init accepts and rejects, LIFO pops at the bottom, FIFO steals
 * at the top, a full deque that refuses pushes without changing, wrap-around of a small
 * ring many times over, steal_batch_owner's order, size_any, and long seeded random
 * sequences of every operation checked step by step against a plain array model. The
 * concurrent behaviour is test_deque_race.c's business; here, with no other thread, a
 * steal can never lose a race, so WEFT__STEAL_RETRY is a failure.
 */
#include "sched/deque.h"

#include "weft_criterion.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* Elements are opaque non-NULL pointers: small integers >= 1 stand for them. */
static void *item(uintptr_t i) {
    return (void *)i;
}
static uintptr_t id(void *p) {
    return (uintptr_t)p;
}

static void init_ok(weft__deque *d, size_t capacity) {
    int rc = weft__deque_init(d, capacity);
    cr_assert_eq(rc, 0, "init(%zu) = %d", capacity, rc);
    cr_assert_eq(weft__deque_capacity(d), capacity);
    cr_assert_eq(weft__deque_size_any(d), 0);
}

/* Steals one element, which must be there. */
static uintptr_t steal_one(weft__deque *d) {
    void *p = NULL;
    weft__steal_result r = weft__deque_steal_any(d, &p);
    cr_assert_eq(r, WEFT__STEAL_SUCCESS, "steal returned %d", (int)r);
    cr_assert_not_null(p);
    return id(p);
}

static void expect_empty(weft__deque *d) {
    void *p = item(12345);
    cr_assert_eq(weft__deque_size_any(d), 0);
    cr_assert_eq(weft__deque_steal_any(d, &p), WEFT__STEAL_EMPTY);
    cr_assert_eq(id(p), 12345, "a failed steal wrote its output");
    cr_assert_null(weft__deque_pop_owner(d));
    void *out[4] = {0};
    cr_assert_eq(weft__deque_steal_batch_owner(d, out, 4), 0);
    cr_assert_null(out[0]);
}

Test(deque, init_rejects_bad_capacities) {
    static const size_t bad[] = {0, 1, 3, 5, 6, 7, 12, 100, 1000, 1025, ((size_t)1 << 20) + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        weft__deque d;
        int rc = weft__deque_init(&d, bad[i]);
        cr_expect_eq(rc, -EINVAL, "init(%zu) = %d, expected -EINVAL", bad[i], rc);
    }
    static const size_t good[] = {2, 4, 8, 64, 1024, (size_t)1 << 16};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        weft__deque d;
        init_ok(&d, good[i]);
        expect_empty(&d);
        weft__deque_destroy(&d);
    }
}

Test(deque, pop_is_lifo) {
    weft__deque d;
    init_ok(&d, 16);
    for (uintptr_t i = 1; i <= 10; i++) {
        cr_assert(weft__deque_push_owner(&d, item(i)));
        cr_assert_eq(weft__deque_size_any(&d), i);
    }
    for (uintptr_t i = 10; i >= 1; i--) {
        void *p = weft__deque_pop_owner(&d);
        cr_assert_eq(id(p), i, "pop returned %zu, expected %zu", (size_t)id(p), (size_t)i);
        cr_assert_eq(weft__deque_size_any(&d), i - 1);
    }
    expect_empty(&d);
    /* Interleaved: push 1 2, pop 2, push 3 4, pop 4 3 1. */
    cr_assert(weft__deque_push_owner(&d, item(1)));
    cr_assert(weft__deque_push_owner(&d, item(2)));
    cr_assert_eq(id(weft__deque_pop_owner(&d)), 2);
    cr_assert(weft__deque_push_owner(&d, item(3)));
    cr_assert(weft__deque_push_owner(&d, item(4)));
    cr_assert_eq(id(weft__deque_pop_owner(&d)), 4);
    cr_assert_eq(id(weft__deque_pop_owner(&d)), 3);
    cr_assert_eq(id(weft__deque_pop_owner(&d)), 1);
    expect_empty(&d);
    weft__deque_destroy(&d);
}

Test(deque, steal_is_fifo_from_the_other_end) {
    weft__deque d;
    init_ok(&d, 16);
    for (uintptr_t i = 1; i <= 12; i++)
        cr_assert(weft__deque_push_owner(&d, item(i)));
    for (uintptr_t i = 1; i <= 5; i++) {
        uintptr_t got = steal_one(&d);
        cr_assert_eq(got, i, "steal returned %zu, expected %zu", (size_t)got, (size_t)i);
        cr_assert_eq(weft__deque_size_any(&d), 12 - i);
    }
    /* Both ends at once: the owner takes the newest, a thief the oldest. */
    cr_assert_eq(id(weft__deque_pop_owner(&d)), 12);
    cr_assert_eq(steal_one(&d), 6);
    cr_assert_eq(id(weft__deque_pop_owner(&d)), 11);
    cr_assert_eq(steal_one(&d), 7);
    for (uintptr_t i = 8; i <= 10; i++)
        cr_assert_eq(steal_one(&d), i);
    expect_empty(&d);
    weft__deque_destroy(&d);
}

/* A full deque refuses a push and is left exactly as it was. */
static void check_full(size_t capacity) {
    weft__deque d;
    init_ok(&d, capacity);
    for (uintptr_t i = 1; i <= capacity; i++)
        cr_assert(weft__deque_push_owner(&d, item(i)), "push %zu of %zu refused", (size_t)i,
                  capacity);
    for (int k = 0; k < 3; k++) {
        cr_assert_not(weft__deque_push_owner(&d, item(1000 + k)), "push on a full deque");
        cr_assert_eq(weft__deque_size_any(&d), capacity);
    }
    /* Nothing changed: the oldest and newest are still in place... */
    cr_assert_eq(id(weft__deque_pop_owner(&d)), capacity);
    cr_assert_eq(steal_one(&d), 1);
    /* ...and after taking one, there is room for exactly one again (the pop made two). */
    cr_assert(weft__deque_push_owner(&d, item(2000)));
    cr_assert(weft__deque_push_owner(&d, item(2001)));
    cr_assert_not(weft__deque_push_owner(&d, item(2002)));
    cr_assert_eq(weft__deque_size_any(&d), capacity);
    /* Full again, with the ring's start moved by one: the contents, oldest first, are
     * 2 .. capacity-1, 2000, 2001. */
    for (uintptr_t i = 2; i < capacity; i++)
        cr_assert_eq(steal_one(&d), i);
    cr_assert_eq(steal_one(&d), 2000);
    cr_assert_eq(id(weft__deque_pop_owner(&d)), 2001);
    expect_empty(&d);
    weft__deque_destroy(&d);
}

Test(deque, full_push_fails_and_changes_nothing) {
    check_full(2);
    check_full(4);
    check_full(8);
    check_full(64);
}

/* Indices run far past the ring's size: every element comes back once, in order. */
static void check_wrap(size_t capacity) {
    weft__deque d;
    init_ok(&d, capacity);
    uintptr_t next = 1;   /* next element to push */
    uintptr_t oldest = 1; /* the element a steal must return */
    const unsigned rounds = 10000;
    for (unsigned r = 0; r < rounds; r++) {
        /* Fill to capacity, then take from the top a number that varies with r, so the
         * ring's start moves by every residue modulo the capacity. */
        while (weft__deque_size_any(&d) < capacity)
            cr_assert(weft__deque_push_owner(&d, item(next++)));
        cr_assert_not(weft__deque_push_owner(&d, item(next)));
        size_t take = 1 + r % capacity;
        for (size_t k = 0; k < take; k++) {
            uintptr_t got = steal_one(&d);
            cr_assert_eq(got, oldest, "capacity %zu round %u: stole %zu, expected %zu", capacity, r,
                         (size_t)got, (size_t)oldest);
            oldest++;
        }
    }
    /* What is left is [oldest, next), newest first from the bottom. */
    cr_assert_eq(weft__deque_size_any(&d), next - oldest);
    for (uintptr_t i = next - 1; i >= oldest; i--)
        cr_assert_eq(id(weft__deque_pop_owner(&d)), i);
    expect_empty(&d);
    cr_assert_gt(next, 100 * capacity, "the ring did not wrap many times");

    /* The owner alone wraps too: push a few, pop them, with the ring's start moving
     * because one steal per round advances top. */
    for (unsigned r = 0; r < rounds; r++) {
        size_t n = 1 + r % capacity;
        for (size_t k = 0; k < n; k++)
            cr_assert(weft__deque_push_owner(&d, item(next + k)));
        for (size_t k = n; k-- > 1;)
            cr_assert_eq(id(weft__deque_pop_owner(&d)), next + k);
        cr_assert_eq(steal_one(&d), next);
        next += n;
        expect_empty(&d);
    }
    weft__deque_destroy(&d);
}

Test(deque, wraps_around_many_times) {
    check_wrap(2);
    check_wrap(4);
    check_wrap(8);
}

Test(deque, steal_batch_owner_takes_the_oldest_in_order) {
    weft__deque d;
    init_ok(&d, 16);
    void *out[32];
    for (uintptr_t i = 1; i <= 10; i++)
        cr_assert(weft__deque_push_owner(&d, item(i)));
    cr_assert_eq(weft__deque_steal_batch_owner(&d, out, 0), 0);
    cr_assert_eq(weft__deque_size_any(&d), 10);

    cr_assert_eq(weft__deque_steal_batch_owner(&d, out, 3), 3);
    for (uintptr_t i = 0; i < 3; i++)
        cr_assert_eq(id(out[i]), i + 1);
    cr_assert_eq(weft__deque_size_any(&d), 7);
    cr_assert_eq(steal_one(&d), 4, "a steal after a batch must continue from the top");

    /* More than there is: takes what is there (5 .. 10). */
    for (size_t i = 0; i < 32; i++)
        out[i] = NULL;
    cr_assert_eq(weft__deque_steal_batch_owner(&d, out, 32), 6);
    for (uintptr_t i = 0; i < 6; i++)
        cr_assert_eq(id(out[i]), i + 5);
    cr_assert_null(out[6], "batch wrote past what it returned");
    expect_empty(&d);

    /* Across the end of the ring: the batch is read modulo the capacity. Half of a
     * full deque, as the worker does on overflow. */
    for (uintptr_t i = 100; i < 116; i++)
        cr_assert(weft__deque_push_owner(&d, item(i)));
    cr_assert_eq(weft__deque_steal_batch_owner(&d, out, 8), 8);
    for (uintptr_t i = 0; i < 8; i++)
        cr_assert_eq(id(out[i]), 100 + i);
    cr_assert_eq(id(weft__deque_pop_owner(&d)), 115);
    cr_assert_eq(steal_one(&d), 108);
    cr_assert_eq(weft__deque_steal_batch_owner(&d, out, 32), 6);
    for (uintptr_t i = 0; i < 6; i++)
        cr_assert_eq(id(out[i]), 109 + i);
    expect_empty(&d);
    weft__deque_destroy(&d);
}

Test(deque, size_any_counts_elements) {
    weft__deque d;
    init_ok(&d, 8);
    cr_assert_eq(weft__deque_size_any(&d), 0);
    for (uintptr_t i = 1; i <= 8; i++) {
        cr_assert(weft__deque_push_owner(&d, item(i)));
        cr_assert_eq(weft__deque_size_any(&d), i);
    }
    cr_assert_not(weft__deque_push_owner(&d, item(9)));
    cr_assert_eq(weft__deque_size_any(&d), 8);
    (void)steal_one(&d);
    cr_assert_eq(weft__deque_size_any(&d), 7);
    (void)weft__deque_pop_owner(&d);
    cr_assert_eq(weft__deque_size_any(&d), 6);
    void *out[4];
    cr_assert_eq(weft__deque_steal_batch_owner(&d, out, 4), 4);
    cr_assert_eq(weft__deque_size_any(&d), 2);
    (void)weft__deque_pop_owner(&d);
    (void)weft__deque_pop_owner(&d);
    cr_assert_eq(weft__deque_size_any(&d), 0);
    /* A pop on an empty deque must leave it empty, not at "size -1" (a huge size_t). */
    cr_assert_null(weft__deque_pop_owner(&d));
    cr_assert_eq(weft__deque_size_any(&d), 0);
    cr_assert(weft__deque_push_owner(&d, item(42)));
    cr_assert_eq(weft__deque_size_any(&d), 1);
    cr_assert_eq(steal_one(&d), 42);
    cr_assert_eq(weft__deque_size_any(&d), 0);
    weft__deque_destroy(&d);
}

/* ---- random sequences against a model ------------------------------------------------- */

/* splitmix64: a small, well-mixed PRNG; the seed fully determines a sequence. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The model: elements [lo, hi) of an array as long as the whole sequence, oldest at lo. */
typedef struct model {
    uintptr_t *v;
    size_t lo, hi;
} model;

static void run_random(size_t capacity, uint64_t seed, size_t steps) {
    weft__deque d;
    init_ok(&d, capacity);
    model m = {.v = calloc(steps + 1, sizeof(uintptr_t))};
    cr_assert_not_null(m.v);
    uint64_t rng = seed;
    uintptr_t next = 1;
    size_t counts[5] = {0}; /* push, refused push, pop, steal, batch: all must happen */
    void *out[160];
    cr_assert_geq(sizeof out / sizeof out[0], capacity + 2);
    for (size_t step = 0; step < steps; step++) {
        /* The push probability swings between 25% and 75% every 512 steps, so the deque
         * goes from empty to full and back again and again. */
        unsigned push_percent = (step / 512) % 2 ? 75 : 25;
        uint64_t r = next_random(&rng);
        unsigned roll = (unsigned)(r % 100);
        size_t size = m.hi - m.lo;
        if (roll < push_percent) {
            bool pushed = weft__deque_push_owner(&d, item(next));
            bool room = size < capacity;
            cr_assert_eq(pushed, room, "seed %llu step %zu: push returned %d with %zu of %zu",
                         (unsigned long long)seed, step, pushed, size, capacity);
            if (pushed) {
                m.v[m.hi++] = next++;
                counts[0]++;
            } else {
                counts[1]++;
            }
        } else {
            unsigned which = (unsigned)((r >> 32) % 8);
            if (which < 4) { /* pop */
                void *p = weft__deque_pop_owner(&d);
                uintptr_t want = size ? m.v[--m.hi] : 0;
                cr_assert_eq(id(p), want, "seed %llu step %zu: pop returned %zu, expected %zu",
                             (unsigned long long)seed, step, (size_t)id(p), (size_t)want);
                counts[2] += size != 0;
            } else if (which < 7) { /* steal */
                void *p = NULL;
                weft__steal_result res = weft__deque_steal_any(&d, &p);
                if (size) {
                    cr_assert_eq(res, WEFT__STEAL_SUCCESS, "seed %llu step %zu: steal -> %d",
                                 (unsigned long long)seed, step, (int)res);
                    uintptr_t want = m.v[m.lo++];
                    cr_assert_eq(id(p), want,
                                 "seed %llu step %zu: steal returned %zu, expected %zu",
                                 (unsigned long long)seed, step, (size_t)id(p), (size_t)want);
                    counts[3]++;
                } else {
                    cr_assert_eq(res, WEFT__STEAL_EMPTY, "seed %llu step %zu: steal -> %d",
                                 (unsigned long long)seed, step, (int)res);
                }
            } else { /* batch: mostly 0 .. 4, one in 16 of 0 .. capacity + 1 */
                size_t bound = (r >> 56) % 16 ? 5 : capacity + 2;
                size_t n = (size_t)((r >> 40) % bound);
                size_t got = weft__deque_steal_batch_owner(&d, out, n);
                size_t want = n < size ? n : size;
                cr_assert_eq(got, want, "seed %llu step %zu: batch(%zu) took %zu of %zu",
                             (unsigned long long)seed, step, n, got, size);
                for (size_t k = 0; k < got; k++) {
                    uintptr_t w = m.v[m.lo++];
                    cr_assert_eq(id(out[k]), w,
                                 "seed %llu step %zu: batch[%zu] = %zu, expected %zu",
                                 (unsigned long long)seed, step, k, (size_t)id(out[k]), (size_t)w);
                }
                counts[4] += got != 0;
            }
        }
        cr_assert_eq(weft__deque_size_any(&d), m.hi - m.lo, "seed %llu step %zu: size",
                     (unsigned long long)seed, step);
    }
    /* Drain: what remains comes out of the bottom newest first. */
    while (m.hi > m.lo)
        cr_assert_eq(id(weft__deque_pop_owner(&d)), m.v[--m.hi]);
    expect_empty(&d);
    for (int k = 0; k < 5; k++)
        cr_assert_gt(counts[k], 0, "seed %llu capacity %zu: operation %d never happened",
                     (unsigned long long)seed, capacity, k);
    free(m.v);
    weft__deque_destroy(&d);
}

Test(deque, random_sequences_match_a_model) {
    static const size_t capacities[] = {2, 4, 8, 64, 128};
    static const uint64_t seeds[] = {1, 0x5eed, 20240611, 0xdeadbeefcafe};
    for (size_t c = 0; c < sizeof capacities / sizeof capacities[0]; c++)
        for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
            run_random(capacities[c], seeds[s], 200000);
}
