/*
 * test_timer_wheel.c: the hierarchical timing wheel of runtime/timer_wheel.h, a pure data
 * structure, on one thread.
 *
 * Directed cases first: an empty wheel; UINT64_MAX and a double insert refused with the
 * entry untouched; cancel of an idle entry, of an armed one (it never fires) and of one
 * waiting in an expired list (taken out of it); re-insert from an expired list; expiry exact
 * to the tick around every level boundary (one step short, one jump, and a walk through
 * next_deadline() that wakes at most once per level early); entries inserted already due
 * reported first, in insertion order; FIFO among equal deadlines inserted between cascades;
 * a jump of 2^62 ns; advances backwards; and the `beyond` list of deadlines in the last
 * partial tick, which never expire but can be cancelled.
 *
 * Then long seeded random sequences of insert / re-insert / cancel / advance / drain, with
 * deadlines around every level boundary (relative to now and where the wheel's digits roll
 * over), far beyond, in the last partial tick, equal to other entries' and already past,
 * checked step by step against a reference model that knows nothing of levels or slots: a
 * plain array of entries, each with its deadline, the sequence number of its last
 * successful insert and its state (idle, armed, waiting in the expired list).
 *
 * Advancing the model to now_ns is a brute-force scan from the header's rule: an armed entry
 * is due iff ceil(d / tick) <= floor(now_ns / tick) (an advance to an earlier tick than the
 * wheel's does nothing). The due entries are sorted by (key, insertion sequence), where key
 * is ceil(d / tick), except for an entry inserted already due (ceil(d / tick) <= the
 * wheel's tick at the insert), whose key is the wheel's tick at the insert: it "counts as
 * due at the wheel's time then, ahead of everything else". No other armed entry can have a
 * key that low (all were not yet due at that tick), so this models the header's Order
 * paragraph exactly, corner included, and every advance's output is compared with it entry
 * by entry. The model also predicts next_deadline() exactly from the documented placement
 * (the wheel's time if an entry was inserted already due; else the earliest expiry tick,
 * rounded down to the start of its slot in the level of the highest base-64 digit where it
 * differs from the wheel's tick) and checks the contract's bounds and progress separately.
 */
#include "time/timer_wheel.h"

#include "weft_criterion.h"
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TICK WEFT__TIMER_TICK_NS
/* The expiry tick of a deadline in the last partial tick: no now_ns reaches it. */
#define NEVER_TICK (UINT64_C(1) << (64 - WEFT__TIMER_TICK_SHIFT))
/* The first such deadline, 2^64 - 1023; 2^64 - 1024 is the last one that expires. */
#define FIRST_BEYOND (UINT64_MAX - (TICK - 2))

/* ---- helpers -------------------------------------------------------------------------- */

/* ceil(d / tick): the tick whose start first passes d. */
static uint64_t expiry_tick(uint64_t d) {
    return d / TICK + (d % TICK != 0);
}

/* The first now_ns whose advance reports d: ceil(d / tick) * tick. Not for d in the last
 * partial tick. */
static uint64_t due_time(uint64_t d) {
    return expiry_tick(d) * TICK;
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sub_sat(uint64_t a, uint64_t b) {
    return a < b ? 0 : a - b;
}

static uint64_t add_delta_sat(uint64_t a, int64_t delta) {
    return delta < 0 ? sub_sat(a, (uint64_t)(-(delta + 1)) + 1) : add_sat(a, (uint64_t)delta);
}

/* The level an entry with expiry tick t > now_tick sits in, from the documented placement:
 * the highest base-64 digit in which t and now_tick differ. */
static unsigned model_level(uint64_t now_tick, uint64_t t) {
    for (unsigned l = WEFT__TIMER_LEVELS - 1; l > 0; l--) {
        if (t >> (WEFT__TIMER_SLOT_BITS * l) != now_tick >> (WEFT__TIMER_SLOT_BITS * l)) {
            return l;
        }
    }
    return 0;
}

/* The wheel passes its own check and holds want_armed armed entries. */
static void assert_sound(const weft__timer_wheel *w, size_t want_armed) {
    size_t armed = SIZE_MAX;
    const char *err = weft__timer_wheel_check(w, &armed);
    cr_assert_null(err, "weft__timer_wheel_check: %s", err ? err : "");
    cr_assert_eq(armed, want_armed, "the wheel holds %zu armed entries, expected %zu", armed,
                 want_armed);
}

/* Pops every entry of l: they must be want[0 .. n), in this order, and idle once popped. */
static void expect_popped(weft__timer_list *l, weft__timer_entry *const *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        weft__timer_entry *e = weft__timer_list_pop(l);
        cr_assert_eq(e, want[i], "expired entry %zu is %p, expected %p", i, (void *)e,
                     (void *)want[i]);
        cr_assert_not(weft__timer_entry_armed(e));
    }
    cr_assert_null(weft__timer_list_pop(l), "more than %zu entries expired", n);
    cr_assert(weft__timer_list_empty(l));
}

/* advance(now_ns) must report exactly want[0 .. n), in this order. */
static void advance_expect(weft__timer_wheel *w, uint64_t now_ns, weft__timer_entry *const *want,
                           size_t n) {
    weft__timer_list l;
    weft__timer_list_init(&l);
    size_t got = weft__timer_wheel_advance(w, now_ns, &l);
    cr_assert_eq(got, n, "advance(%llu) reported %zu entries, expected %zu",
                 (unsigned long long)now_ns, got, n);
    expect_popped(&l, want, n);
}

#define ADVANCE_EXPECT(w, now_ns, ...)                                                             \
    do {                                                                                           \
        weft__timer_entry *want_[] = {__VA_ARGS__};                                                \
        advance_expect((w), (now_ns), want_, sizeof want_ / sizeof want_[0]);                      \
    } while (0)
#define ADVANCE_NONE(w, now_ns) advance_expect((w), (now_ns), NULL, 0)

static void insert_ok(weft__timer_wheel *w, weft__timer_entry *e, uint64_t d) {
    int rc = weft__timer_wheel_insert(w, e, d);
    cr_assert_eq(rc, 0, "insert(%llu) = %d", (unsigned long long)d, rc);
    cr_assert(weft__timer_entry_armed(e));
    cr_assert_eq(e->deadline_ns, d);
}

/* ---- directed cases ------------------------------------------------------------------- */

Test(timer_wheel, empty_wheel) {
    static const uint64_t starts[] = {
        0, 1, 12345, 64 * TICK - 1, UINT64_C(1) << 40, UINT64_MAX - 5000, UINT64_MAX};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        weft__timer_wheel w;
        weft__timer_wheel_init(&w, starts[i]);
        assert_sound(&w, 0);
        cr_assert_null(weft__timer_wheel_check(&w, NULL));
        cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);
        ADVANCE_NONE(&w, starts[i]);
        ADVANCE_NONE(&w, add_sat(starts[i], UINT64_C(1) << 20));
        ADVANCE_NONE(&w, UINT64_MAX);
        ADVANCE_NONE(&w, 0);
        assert_sound(&w, 0);
        cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);
    }

    weft__timer_list l;
    weft__timer_list_init(&l);
    cr_assert(weft__timer_list_empty(&l));
    cr_assert_null(weft__timer_list_pop(&l));

    weft__timer_entry zero = {0};
    cr_assert_not(weft__timer_entry_armed(&zero));
    weft__timer_entry e;
    memset(&e, 0xa5, sizeof e);
    weft__timer_entry_init(&e);
    cr_assert_not(weft__timer_entry_armed(&e));
    cr_assert_eq(e.deadline_ns, 0);
}

Test(timer_wheel, uint64_max_is_refused) {
    weft__timer_wheel w;
    weft__timer_entry e = {0}, snap;
    weft__timer_list l;
    weft__timer_wheel_init(&w, 1000000);
    weft__timer_list_init(&l);

    /* Zero-filled and idle. */
    memcpy(&snap, &e, sizeof e);
    cr_assert_eq(weft__timer_wheel_insert(&w, &e, UINT64_MAX), -EINVAL);
    cr_assert_eq(memcmp(&snap, &e, sizeof e), 0, "a refused insert changed the entry");
    cr_assert_not(weft__timer_entry_armed(&e));
    assert_sound(&w, 0);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);

    /* Idle after a cancel, with the deadline of its last insert still readable. */
    insert_ok(&w, &e, 5000000);
    cr_assert(weft__timer_wheel_cancel(&w, &e));
    memcpy(&snap, &e, sizeof e);
    cr_assert_eq(weft__timer_wheel_insert(&w, &e, UINT64_MAX), -EINVAL);
    cr_assert_eq(memcmp(&snap, &e, sizeof e), 0, "a refused insert changed the entry");
    cr_assert_eq(e.deadline_ns, 5000000);
    assert_sound(&w, 0);

    /* Armed: refused, and it stays armed at its deadline. */
    insert_ok(&w, &e, 3000000);
    memcpy(&snap, &e, sizeof e);
    cr_assert_eq(weft__timer_wheel_insert(&w, &e, UINT64_MAX), -EINVAL);
    cr_assert_eq(memcmp(&snap, &e, sizeof e), 0, "a refused insert changed the entry");
    assert_sound(&w, 1);

    /* Waiting in an expired list: refused, and it stays there. */
    cr_assert_eq(weft__timer_wheel_advance(&w, due_time(3000000), &l), 1);
    memcpy(&snap, &e, sizeof e);
    cr_assert_eq(weft__timer_wheel_insert(&w, &e, UINT64_MAX), -EINVAL);
    cr_assert_eq(memcmp(&snap, &e, sizeof e), 0, "a refused insert changed the entry");
    weft__timer_entry *want[] = {&e};
    expect_popped(&l, want, 1);
    assert_sound(&w, 0);

    /* One less is a legal (never-expiring) deadline. */
    insert_ok(&w, &e, UINT64_MAX - 1);
    assert_sound(&w, 1);
    cr_assert(weft__timer_wheel_cancel(&w, &e));
    assert_sound(&w, 0);
}

Test(timer_wheel, double_insert_is_refused) {
    weft__timer_wheel w;
    weft__timer_entry e = {0}, f = {0}, g = {0}, snap;
    weft__timer_wheel_init(&w, 0);

    insert_ok(&w, &e, 10 * TICK);
    memcpy(&snap, &e, sizeof e);
    cr_assert_eq(weft__timer_wheel_insert(&w, &e, 5 * TICK), -EINVAL);
    cr_assert_eq(weft__timer_wheel_insert(&w, &e, 10 * TICK), -EINVAL);
    cr_assert_eq(weft__timer_wheel_insert(&w, &e, 0), -EINVAL);
    cr_assert_eq(memcmp(&snap, &e, sizeof e), 0, "a refused insert changed the entry");
    cr_assert_eq(e.deadline_ns, 10 * TICK);

    /* The same in the `beyond` list and in the already-due slot. */
    insert_ok(&w, &f, UINT64_MAX - 1);
    memcpy(&snap, &f, sizeof f);
    cr_assert_eq(weft__timer_wheel_insert(&w, &f, 7 * TICK), -EINVAL);
    cr_assert_eq(memcmp(&snap, &f, sizeof f), 0, "a refused insert changed the entry");
    insert_ok(&w, &g, 0);
    memcpy(&snap, &g, sizeof g);
    cr_assert_eq(weft__timer_wheel_insert(&w, &g, 7 * TICK), -EINVAL);
    cr_assert_eq(memcmp(&snap, &g, sizeof g), 0, "a refused insert changed the entry");
    assert_sound(&w, 3);

    ADVANCE_EXPECT(&w, 10 * TICK - 1, &g);
    ADVANCE_EXPECT(&w, 10 * TICK, &e);
    assert_sound(&w, 1);
    cr_assert(weft__timer_wheel_cancel(&w, &f));
    assert_sound(&w, 0);
}

Test(timer_wheel, cancel_of_idle_returns_false) {
    weft__timer_wheel w;
    weft__timer_entry zero = {0}, inited, popped = {0};
    weft__timer_wheel_init(&w, 777);
    weft__timer_entry_init(&inited);

    cr_assert_not(weft__timer_wheel_cancel(&w, &zero));
    cr_assert_not(weft__timer_wheel_cancel(&w, &zero));
    cr_assert_not(weft__timer_wheel_cancel(&w, &inited));

    /* Popped from an expired list: idle again. */
    insert_ok(&w, &popped, 5 * TICK);
    ADVANCE_EXPECT(&w, 5 * TICK, &popped);
    cr_assert_not(weft__timer_wheel_cancel(&w, &popped));

    /* Cancelled: the second cancel finds it idle. */
    insert_ok(&w, &popped, 9 * TICK);
    cr_assert(weft__timer_wheel_cancel(&w, &popped));
    cr_assert_not(weft__timer_wheel_cancel(&w, &popped));
    cr_assert_not(weft__timer_entry_armed(&popped));
    assert_sound(&w, 0);
    ADVANCE_NONE(&w, UINT64_MAX);
}

Test(timer_wheel, cancelled_entry_never_fires) {
    weft__timer_wheel w;
    weft__timer_entry gone[WEFT__TIMER_LEVELS], kept[WEFT__TIMER_LEVELS];
    weft__timer_entry due = {0}, beyond = {0};
    memset(gone, 0, sizeof gone);
    memset(kept, 0, sizeof kept);
    weft__timer_wheel_init(&w, 0);

    /* One entry to cancel and one to keep in each level: 3 * 64^L ticks sits in level L. */
    for (unsigned l = 0; l < WEFT__TIMER_LEVELS; l++) {
        uint64_t d = (UINT64_C(3) << (WEFT__TIMER_TICK_SHIFT + WEFT__TIMER_SLOT_BITS * l)) + 7;
        insert_ok(&w, &gone[l], d);
        insert_ok(&w, &kept[l], d + 1);
    }
    insert_ok(&w, &due, 0);
    insert_ok(&w, &beyond, UINT64_MAX - 1);
    assert_sound(&w, 2 * WEFT__TIMER_LEVELS + 2);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), 0);

    cr_assert(weft__timer_wheel_cancel(&w, &due));
    cr_assert(weft__timer_wheel_cancel(&w, &beyond));
    for (unsigned l = 0; l < WEFT__TIMER_LEVELS; l++) {
        cr_assert(weft__timer_wheel_cancel(&w, &gone[l]));
        cr_assert_not(weft__timer_wheel_cancel(&w, &gone[l]));
        cr_assert_not(weft__timer_entry_armed(&gone[l]));
        assert_sound(&w, 2 * WEFT__TIMER_LEVELS - l - 1);
    }
    /* kept[0] (3 * 1024 + 8 ns) is now the earliest: level 0, tick 4. */
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), 4 * TICK);
    ADVANCE_EXPECT(&w, UINT64_MAX, &kept[0], &kept[1], &kept[2], &kept[3], &kept[4], &kept[5],
                   &kept[6], &kept[7], &kept[8]);
    assert_sound(&w, 0);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);

    /* The only entry of a wheel, cancelled: nothing left to wait for. */
    weft__timer_wheel_init(&w, 5 * TICK);
    insert_ok(&w, &gone[0], UINT64_C(1) << 50);
    cr_assert_neq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);
    cr_assert(weft__timer_wheel_cancel(&w, &gone[0]));
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);
    assert_sound(&w, 0);
    ADVANCE_NONE(&w, UINT64_MAX);
}

Test(timer_wheel, cancel_removes_from_expired_list) {
    weft__timer_wheel w;
    weft__timer_entry a = {0}, b = {0}, c = {0};
    weft__timer_list l;
    weft__timer_wheel_init(&w, 0);
    weft__timer_list_init(&l);

    /* The middle one. */
    insert_ok(&w, &a, 1 * TICK);
    insert_ok(&w, &b, 2 * TICK);
    insert_ok(&w, &c, 3 * TICK);
    cr_assert_eq(weft__timer_wheel_advance(&w, 3 * TICK, &l), 3);
    cr_assert(weft__timer_wheel_cancel(&w, &b));
    cr_assert_not(weft__timer_entry_armed(&b));
    cr_assert_not(weft__timer_wheel_cancel(&w, &b));
    weft__timer_entry *want_ac[] = {&a, &c};
    expect_popped(&l, want_ac, 2);

    /* Both ends. */
    insert_ok(&w, &a, 4 * TICK);
    insert_ok(&w, &b, 5 * TICK);
    insert_ok(&w, &c, 6 * TICK);
    cr_assert_eq(weft__timer_wheel_advance(&w, 6 * TICK, &l), 3);
    cr_assert(weft__timer_wheel_cancel(&w, &a));
    cr_assert(weft__timer_wheel_cancel(&w, &c));
    weft__timer_entry *want_b[] = {&b};
    expect_popped(&l, want_b, 1);

    /* The list collects two advances; cancel the one from the first, then the last one. */
    insert_ok(&w, &a, 7 * TICK);
    insert_ok(&w, &b, 8 * TICK);
    cr_assert_eq(weft__timer_wheel_advance(&w, 7 * TICK, &l), 1);
    cr_assert_eq(weft__timer_wheel_advance(&w, 8 * TICK, &l), 1);
    cr_assert(weft__timer_wheel_cancel(&w, &a));
    expect_popped(&l, want_b, 1);
    insert_ok(&w, &c, 9 * TICK);
    cr_assert_eq(weft__timer_wheel_advance(&w, 9 * TICK, &l), 1);
    cr_assert(weft__timer_wheel_cancel(&w, &c));
    cr_assert(weft__timer_list_empty(&l));
    cr_assert_null(weft__timer_list_pop(&l));
    assert_sound(&w, 0);
    ADVANCE_NONE(&w, UINT64_MAX);
}

Test(timer_wheel, reinsert_from_expired_list) {
    weft__timer_wheel w;
    weft__timer_entry a = {0}, b = {0}, c = {0};
    weft__timer_list l;
    weft__timer_wheel_init(&w, 0);
    weft__timer_list_init(&l);

    insert_ok(&w, &a, 5 * TICK);
    insert_ok(&w, &b, 5 * TICK);
    insert_ok(&w, &c, 6 * TICK);
    cr_assert_eq(weft__timer_wheel_advance(&w, 6 * TICK, &l), 3);

    /* b into the future, a already due: both leave the list, and that expiry is dropped. */
    insert_ok(&w, &b, 100 * TICK);
    insert_ok(&w, &a, 1);
    assert_sound(&w, 2);
    weft__timer_entry *want_c[] = {&c};
    expect_popped(&l, want_c, 1);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), 6 * TICK);
    ADVANCE_EXPECT(&w, 6 * TICK, &a);
    ADVANCE_NONE(&w, 100 * TICK - 1);
    ADVANCE_EXPECT(&w, 100 * TICK, &b);

    /* Collect, then fire: while draining, each fired entry re-arms itself, one tick on. */
    insert_ok(&w, &a, 101 * TICK);
    insert_ok(&w, &b, 101 * TICK);
    insert_ok(&w, &c, 101 * TICK);
    for (uint64_t tick = 101; tick < 300; tick++) {
        cr_assert_eq(weft__timer_wheel_advance(&w, tick * TICK, &l), 3);
        weft__timer_entry *e;
        weft__timer_entry *want[] = {&a, &b, &c};
        size_t i = 0;
        while ((e = weft__timer_list_pop(&l)) != NULL) {
            cr_assert_eq(e, want[i], "tick %llu: expired entry %zu out of order",
                         (unsigned long long)tick, i);
            i++;
            insert_ok(&w, e, (tick + 1) * TICK);
        }
        cr_assert_eq(i, 3);
        assert_sound(&w, 3);
    }
    /* Re-armed while still in the list, already due at the wheel's time. */
    cr_assert_eq(weft__timer_wheel_advance(&w, 300 * TICK, &l), 3);
    insert_ok(&w, &b, 0);
    cr_assert_eq(b.deadline_ns, 0);
    expect_popped(&l, (weft__timer_entry *[]){&a, &c}, 2);
    ADVANCE_EXPECT(&w, 300 * TICK + 5, &b);
    assert_sound(&w, 0);
}

/* One entry with deadline d in a wheel started at start: a step one nanosecond short of
 * due_time(d) does not report it, the step to due_time(d) does; a single jump to the last
 * nanosecond of that tick does; and walking next_deadline() reaches it exactly at due_time(d)
 * after at most one early wake-up per level it descends. */
static void expect_exact(uint64_t start, uint64_t d) {
    const uint64_t t = expiry_tick(d);
    const uint64_t start_tick = start / TICK;
    weft__timer_wheel w;
    weft__timer_entry e = {0};

    weft__timer_wheel_init(&w, start);
    insert_ok(&w, &e, d);
    assert_sound(&w, 1);
    if (t >= NEVER_TICK) {
        cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);
        ADVANCE_NONE(&w, UINT64_MAX);
        cr_assert(weft__timer_entry_armed(&e));
        cr_assert(weft__timer_wheel_cancel(&w, &e));
        return;
    }
    if (t <= start_tick) { /* already due */
        cr_assert_eq(weft__timer_wheel_next_deadline(&w), start_tick * TICK);
        ADVANCE_EXPECT(&w, start_tick * TICK, &e);
        return;
    }
    ADVANCE_NONE(&w, t * TICK - 1);
    cr_assert(weft__timer_entry_armed(&e));
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), t * TICK, "start %llu d %llu",
                 (unsigned long long)start, (unsigned long long)d);
    ADVANCE_EXPECT(&w, t * TICK, &e);
    assert_sound(&w, 0);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);

    weft__timer_wheel_init(&w, start);
    insert_ok(&w, &e, d);
    ADVANCE_EXPECT(&w, t * TICK + (TICK - 1), &e);

    weft__timer_wheel_init(&w, start);
    insert_ok(&w, &e, d);
    const unsigned level = model_level(start_tick, t);
    uint64_t now = start;
    for (unsigned wakes = 1;; wakes++) {
        uint64_t nd = weft__timer_wheel_next_deadline(&w);
        cr_assert(nd > now && nd % TICK == 0 && nd <= t * TICK,
                  "start %llu d %llu: next_deadline %llu after %llu", (unsigned long long)start,
                  (unsigned long long)d, (unsigned long long)nd, (unsigned long long)now);
        weft__timer_list l;
        weft__timer_list_init(&l);
        size_t n = weft__timer_wheel_advance(&w, nd, &l);
        assert_sound(&w, 1 - n);
        if (n == 1) {
            cr_assert_eq(nd, t * TICK);
            cr_assert_eq(weft__timer_list_pop(&l), &e);
            break;
        }
        cr_assert_eq(n, 0);
        cr_assert_leq(wakes, level,
                      "start %llu d %llu (level %u): more than one early wake-up "
                      "per level",
                      (unsigned long long)start, (unsigned long long)d, level);
        now = nd;
    }
}

Test(timer_wheel, expiry_is_exact_to_the_tick_at_every_level) {
    static const uint64_t starts[] = {0,
                                      1,
                                      TICK - 1,
                                      TICK,
                                      64 * TICK - 1,
                                      5 * (UINT64_C(1) << 16) + 17,
                                      (UINT64_C(1) << 40) - 1,
                                      UINT64_C(0x0123456789abcdef),
                                      UINT64_C(1) << 62,
                                      (UINT64_C(3) << 62) + 12345};
    static const int64_t deltas[] = {
        -(int64_t)TICK - 1, -(int64_t)TICK,   -1, 0, 1, (int64_t)TICK - 1,
        (int64_t)TICK,      (int64_t)TICK + 1};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        for (unsigned l = 0; l < WEFT__TIMER_LEVELS; l++) {
            const uint64_t width = UINT64_C(1) << (WEFT__TIMER_TICK_SHIFT + 6 * l);
            for (size_t k = 0; k < sizeof deltas / sizeof deltas[0]; k++) {
                /* One level width from the start, +- a tick. */
                uint64_t d = add_delta_sat(add_sat(starts[s], width), deltas[k]);
                if (d != UINT64_MAX) {
                    expect_exact(starts[s], d);
                }
                /* The next multiple of the width, where the wheel's digit l rolls over. */
                uint64_t m = starts[s] / width + 1;
                if (m <= UINT64_MAX / width) {
                    d = add_delta_sat(m * width, deltas[k]);
                    if (d != UINT64_MAX) {
                        expect_exact(starts[s], d);
                    }
                }
            }
        }
        /* The end of the range. */
        expect_exact(starts[s], FIRST_BEYOND - 1);
        expect_exact(starts[s], FIRST_BEYOND);
        expect_exact(starts[s], UINT64_MAX - 1);
    }
}

Test(timer_wheel, already_due_inserts_come_first) {
    weft__timer_wheel w;
    weft__timer_entry a = {0}, b = {0}, c = {0}, d = {0}, f = {0};
    const uint64_t start = 1000000; /* 576 ns into tick 976 */
    const uint64_t wheel_time = start / TICK * TICK;
    weft__timer_wheel_init(&w, start);

    insert_ok(&w, &a, start + 5000);   /* tick 982 */
    insert_ok(&w, &b, start - 5000);   /* already due */
    insert_ok(&w, &c, wheel_time);     /* already due: exactly the wheel's time */
    insert_ok(&w, &d, 0);              /* already due, earliest deadline, inserted last */
    insert_ok(&w, &f, wheel_time + 1); /* in the wheel's tick but after its start: tick 977 */
    assert_sound(&w, 5);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), wheel_time); /* in the past */
    /* now_ns earlier than the last one but in the same tick: reported, in insertion order. */
    ADVANCE_EXPECT(&w, wheel_time, &b, &c, &d);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), 977 * TICK);
    ADVANCE_NONE(&w, 977 * TICK - 1);
    ADVANCE_EXPECT(&w, 977 * TICK, &f);
    ADVANCE_EXPECT(&w, 982 * TICK, &a);

    /* In one later advance, ahead of everything else and in insertion order, not deadline
     * order. */
    weft__timer_wheel_init(&w, 100 * TICK);
    insert_ok(&w, &a, 101 * TICK);
    insert_ok(&w, &b, 99 * TICK);
    insert_ok(&w, &c, 5 * TICK);
    insert_ok(&w, &d, 100 * TICK);
    insert_ok(&w, &f, 100 * TICK + 1);
    ADVANCE_EXPECT(&w, 200 * TICK, &b, &c, &d, &a, &f);
    assert_sound(&w, 0);
}

Test(timer_wheel, fifo_among_equal_deadlines_across_cascades) {
    weft__timer_wheel w;
    enum { N = 10 };
    weft__timer_entry e[N], early = {0}, late = {0};
    memset(e, 0, sizeof e);

    /* D's tick has digits 5 (level 5), 3 (level 2), 7 (level 1) and 13 (level 0): from time
     * 0 it cascades 5 -> 2 -> 1 -> 0. Entries for its tick go in between the cascades. */
    const uint64_t D = (UINT64_C(5) << 40) + (UINT64_C(3) << 22) + (UINT64_C(7) << 16) + 12345;
    const uint64_t t = expiry_tick(D);
    weft__timer_wheel_init(&w, 0);
    insert_ok(&w, &e[0], D);
    insert_ok(&w, &e[1], (t - 1) * TICK + 1); /* same tick, earlier nanosecond */
    insert_ok(&w, &late, D + TICK);
    insert_ok(&w, &e[2], D);
    ADVANCE_NONE(&w, D / 2);
    insert_ok(&w, &e[3], D);
    insert_ok(&w, &e[4], t * TICK);      /* same tick, its last nanosecond */
    ADVANCE_NONE(&w, UINT64_C(5) << 40); /* cascades level 5 into level 2 */
    insert_ok(&w, &e[5], D);
    ADVANCE_NONE(&w, (UINT64_C(5) << 40) + (UINT64_C(3) << 22)); /* level 2 into level 1 */
    insert_ok(&w, &e[6], D - 1);
    ADVANCE_NONE(&w, D - 2 * TICK); /* level 1 into level 0 */
    insert_ok(&w, &e[7], D);
    insert_ok(&w, &early, D - TICK);
    insert_ok(&w, &e[8], D);
    assert_sound(&w, 11);
    ADVANCE_EXPECT(&w, D - 1, &early);
    insert_ok(&w, &e[9], D); /* one tick ahead, in level 0 */
    ADVANCE_EXPECT(&w, t * TICK, &e[0], &e[1], &e[2], &e[3], &e[4], &e[5], &e[6], &e[7], &e[8],
                   &e[9]);
    ADVANCE_EXPECT(&w, t * TICK + TICK, &late);
    assert_sound(&w, 0);

    /* From level 8 down: insert one more entry at D after each of 40 advances that halve the
     * distance, so that the earlier ones have cascaded through every level. */
    enum { M = 40 };
    weft__timer_entry many[M], *want[M];
    memset(many, 0, sizeof many);
    const uint64_t far = (UINT64_C(3) << 62) + 777;
    weft__timer_wheel_init(&w, 0);
    uint64_t now = 0;
    for (size_t i = 0; i < M; i++) {
        insert_ok(&w, &many[i], far);
        want[i] = &many[i];
        now += (far - now) / 2;
        ADVANCE_NONE(&w, now);
        assert_sound(&w, i + 1);
    }
    ADVANCE_NONE(&w, due_time(far) - 1);
    advance_expect(&w, due_time(far), want, M);
    assert_sound(&w, 0);
}

Test(timer_wheel, jump_of_centuries_is_one_call) {
    const uint64_t ms = 1000000, hour = UINT64_C(3600000000000), year = UINT64_C(31557600000000000),
                   century = 100 * year;
    const uint64_t j62 = UINT64_C(1) << 62;
    weft__timer_wheel w;
    weft__timer_entry e_ms = {0}, e_hour = {0}, e_year = {0}, e_century = {0}, e_j62 = {0},
                      e_j62p1 = {0}, e_last = {0}, e_beyond = {0}, e_due = {0};
    weft__timer_wheel_init(&w, 0);

    insert_ok(&w, &e_century, century);
    insert_ok(&w, &e_ms, ms);
    insert_ok(&w, &e_beyond, UINT64_MAX - 1);
    insert_ok(&w, &e_j62p1, j62 + 1);
    insert_ok(&w, &e_hour, hour);
    insert_ok(&w, &e_due, 0);
    insert_ok(&w, &e_year, year);
    insert_ok(&w, &e_last, FIRST_BEYOND - 1);
    insert_ok(&w, &e_j62, j62);
    assert_sound(&w, 9);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), 0);

    ADVANCE_EXPECT(&w, j62, &e_due, &e_ms, &e_hour, &e_year, &e_century, &e_j62);
    assert_sound(&w, 3);
    uint64_t nd = weft__timer_wheel_next_deadline(&w);
    cr_assert(nd > j62 && nd <= due_time(j62 + 1), "next_deadline %llu", (unsigned long long)nd);
    ADVANCE_EXPECT(&w, FIRST_BEYOND - 2, &e_j62p1);
    ADVANCE_EXPECT(&w, UINT64_MAX, &e_last);
    ADVANCE_NONE(&w, UINT64_MAX);
    assert_sound(&w, 1);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);
    cr_assert(weft__timer_wheel_cancel(&w, &e_beyond));
    assert_sound(&w, 0);
}

Test(timer_wheel, advance_backwards_does_nothing) {
    weft__timer_wheel w;
    weft__timer_entry a = {0}, b = {0};
    const uint64_t start = 1000000500;
    const uint64_t wheel_time = start / TICK * TICK;
    weft__timer_wheel_init(&w, start);

    insert_ok(&w, &a, start + 1000000);
    const uint64_t nd = weft__timer_wheel_next_deadline(&w);
    ADVANCE_NONE(&w, wheel_time - 1);
    ADVANCE_NONE(&w, 0);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), nd);
    assert_sound(&w, 1);
    ADVANCE_NONE(&w, due_time(a.deadline_ns) - 1);
    ADVANCE_EXPECT(&w, due_time(a.deadline_ns), &a);

    /* An entry inserted already due waits through a backwards advance, then goes in the
     * next one in the wheel's tick, even with an earlier now_ns than the last. */
    const uint64_t now = due_time(a.deadline_ns) + 700;
    ADVANCE_NONE(&w, now);
    insert_ok(&w, &b, now - 3000);
    ADVANCE_NONE(&w, due_time(a.deadline_ns) - 1);
    ADVANCE_NONE(&w, start);
    cr_assert(weft__timer_entry_armed(&b));
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), due_time(a.deadline_ns));
    ADVANCE_EXPECT(&w, due_time(a.deadline_ns), &b);
    assert_sound(&w, 0);
}

Test(timer_wheel, beyond_list_never_expires) {
    weft__timer_wheel w;
    weft__timer_entry b1 = {0}, b2 = {0}, last = {0}, x = {0};
    weft__timer_wheel_init(&w, 0);

    insert_ok(&w, &b1, UINT64_MAX - 1);
    insert_ok(&w, &b2, FIRST_BEYOND);
    assert_sound(&w, 2);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);
    insert_ok(&w, &last, FIRST_BEYOND - 1); /* 2^64 - 1024: tick 2^54 - 1, level 8 slot 63 */
    assert_sound(&w, 3);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_C(63) << 58);
    ADVANCE_NONE(&w, FIRST_BEYOND - 2);
    ADVANCE_EXPECT(&w, FIRST_BEYOND - 1, &last);
    ADVANCE_NONE(&w, UINT64_MAX);
    cr_assert(weft__timer_entry_armed(&b1));
    cr_assert(weft__timer_entry_armed(&b2));
    assert_sound(&w, 2);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), UINT64_MAX);
    cr_assert(weft__timer_wheel_cancel(&w, &b1));
    cr_assert_not(weft__timer_wheel_cancel(&w, &b1));
    assert_sound(&w, 1);
    cr_assert(weft__timer_wheel_cancel(&w, &b2));
    assert_sound(&w, 0);

    /* A wheel at the end of time: the last tick is due at once, the partial one never. */
    weft__timer_wheel_init(&w, UINT64_MAX);
    insert_ok(&w, &b1, UINT64_MAX - 1);
    insert_ok(&w, &x, FIRST_BEYOND - 1);
    cr_assert_eq(weft__timer_wheel_next_deadline(&w), FIRST_BEYOND - 1);
    ADVANCE_EXPECT(&w, UINT64_MAX, &x);
    ADVANCE_NONE(&w, UINT64_MAX);
    assert_sound(&w, 1);
    cr_assert(weft__timer_wheel_cancel(&w, &b1));
    assert_sound(&w, 0);
}

/* ---- random sequences against a model ------------------------------------------------- */

enum { POOL = 96 };

typedef enum { M_IDLE, M_ARMED, M_WAITING } model_state;

typedef struct {
    weft__timer_entry e; /* first, so that an entry pointer converts back */
    model_state state;
    uint64_t deadline; /* of the last successful insert */
    uint64_t key;      /* expiry tick, or the wheel's tick at the insert if already due */
    uint64_t seq;      /* insertion sequence number of the last successful insert */
    bool already_due;
    unsigned level; /* the level it went in at the insert (LEVELS: beyond) */
} mentry;

/* What must happen in every run; counted so that a generator change cannot quietly drop
 * one of them. */
enum {
    S_EXPIRED,
    S_EXPIRED_ALREADY_DUE,
    S_REFUSED_ARMED,
    S_REFUSED_MAX,
    S_REINSERT,
    S_CANCEL_ARMED,
    S_CANCEL_WAITING,
    S_BEYOND,
    S_TO_NEXT_DEADLINE,
    S_BACKWARDS,
    S_RESET,
    S_COUNT
};
static const char *const stat_names[S_COUNT] = {"expired",
                                                "expired already due",
                                                "insert refused (armed)",
                                                "insert refused (max)",
                                                "re-insert",
                                                "cancel armed",
                                                "cancel waiting",
                                                "beyond insert",
                                                "advance to next_deadline",
                                                "backwards advance",
                                                "reset"};

typedef struct {
    weft__timer_wheel w;
    weft__timer_list expired; /* every advance appends here; drained now and then */
    mentry ent[POOL];
    size_t active;        /* entries in use: ent[0 .. active) */
    size_t waiting[POOL]; /* the model of `expired`: indices, oldest first */
    size_t nwaiting;
    uint64_t now_ns;   /* the latest now_ns given to init or a non-backwards advance */
    uint64_t now_tick; /* floor(now_ns / tick): the wheel's time */
    uint64_t seq;
    uint64_t rng, seed;
    size_t step;
    size_t stats[S_COUNT];
    size_t expired_from[WEFT__TIMER_LEVELS]; /* expiries by the level inserted in */
} sim;

#define MCHECK(m, cond, fmt, ...)                                                                  \
    cr_assert((cond), "seed %#llx step %zu: " fmt, (unsigned long long)(m)->seed, (m)->step,       \
              __VA_ARGS__)

/* splitmix64, as in test_deque.c: the seed fully determines a sequence. */
static uint64_t rnd(sim *m) {
    uint64_t z = (m->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t index_of(const sim *m, const weft__timer_entry *e) {
    return (size_t)((const mentry *)(const void *)e - m->ent);
}

static void waiting_remove(sim *m, size_t i) {
    for (size_t k = 0; k < m->nwaiting; k++) {
        if (m->waiting[k] == i) {
            memmove(&m->waiting[k], &m->waiting[k + 1], (m->nwaiting - k - 1) * sizeof(size_t));
            m->nwaiting--;
            return;
        }
    }
    MCHECK(m, false, "entry %zu is not in the model's expired list", i);
}

static size_t model_armed(const sim *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->active; i++) {
        n += m->ent[i].state == M_ARMED;
    }
    return n;
}

/* The expired list, walked through its links (the header's layout: a link converts back to
 * its entry) so that a difference shows at the advance that made it; the drains check the
 * same order again through the public pop. */
static void compare_waiting(sim *m) {
    const weft__timer_link *head = &m->expired.head;
    const weft__timer_link *p = head->next;
    for (size_t k = 0; k < m->nwaiting; k++, p = p->next) {
        MCHECK(m, p != head, "the expired list holds %zu entries, the model %zu", k, m->nwaiting);
        const weft__timer_entry *e = (const weft__timer_entry *)p;
        MCHECK(m, e == &m->ent[m->waiting[k]].e,
               "expired list position %zu holds entry %zu, the model says entry %zu", k,
               index_of(m, e), m->waiting[k]);
        MCHECK(m, !weft__timer_entry_armed(e), "entry %zu in the expired list is armed",
               m->waiting[k]);
    }
    MCHECK(m, p == head, "the expired list holds more than the model's %zu entries", m->nwaiting);
}

static void check_wheel(sim *m) {
    size_t armed = SIZE_MAX;
    const char *err = weft__timer_wheel_check(&m->w, &armed);
    MCHECK(m, err == NULL, "weft__timer_wheel_check: %s", err ? err : "");
    size_t want = model_armed(m);
    MCHECK(m, armed == want, "the wheel holds %zu armed entries, the model %zu", armed, want);
}

/* next_deadline() as the header and the placement rule predict it. */
static uint64_t model_next_deadline(const sim *m) {
    uint64_t tmin = UINT64_MAX;
    for (size_t i = 0; i < m->active; i++) {
        const mentry *me = &m->ent[i];
        if (me->state != M_ARMED) {
            continue;
        }
        if (me->already_due) {
            return m->now_tick * TICK;
        }
        if (me->key < NEVER_TICK && me->key < tmin) {
            tmin = me->key;
        }
    }
    if (tmin == UINT64_MAX) {
        return UINT64_MAX;
    }
    unsigned shift = WEFT__TIMER_SLOT_BITS * model_level(m->now_tick, tmin);
    return (tmin >> shift << shift) * TICK;
}

/* Compares next_deadline() with the model's exact value and with the contract's bounds,
 * which do not depend on the placement. Returns it. */
static uint64_t check_next_deadline(sim *m) {
    uint64_t nd = weft__timer_wheel_next_deadline(&m->w);
    uint64_t want = model_next_deadline(m);
    MCHECK(m, nd == want, "next_deadline() = %llu, the model says %llu (wheel time %llu)",
           (unsigned long long)nd, (unsigned long long)want, (unsigned long long)m->now_ns);

    bool any_due = false;
    uint64_t tmin = UINT64_MAX;
    for (size_t i = 0; i < m->active; i++) {
        const mentry *me = &m->ent[i];
        if (me->state == M_ARMED) {
            any_due |= me->already_due;
            if (me->key < NEVER_TICK && me->key < tmin) {
                tmin = me->key;
            }
        }
    }
    if (tmin == UINT64_MAX) {
        MCHECK(m, nd == UINT64_MAX, "next_deadline() = %llu with nothing that can expire",
               (unsigned long long)nd);
    } else if (any_due) {
        MCHECK(m, nd == m->now_tick * TICK, "next_deadline() = %llu, not the wheel's time",
               (unsigned long long)nd);
    } else {
        MCHECK(m, nd % TICK == 0 && nd > m->now_ns && nd >= (m->now_tick + 1) * TICK,
               "next_deadline() = %llu, not a tick after now %llu", (unsigned long long)nd,
               (unsigned long long)m->now_ns);
        MCHECK(m, nd <= tmin * TICK, "next_deadline() = %llu, later than the earliest tick %llu",
               (unsigned long long)nd, (unsigned long long)(tmin * TICK));
    }
    return nd;
}

static void sim_insert(sim *m, size_t i, uint64_t d) {
    mentry *me = &m->ent[i];
    weft__timer_entry snap;
    memcpy(&snap, &me->e, sizeof snap);
    int rc = weft__timer_wheel_insert(&m->w, &me->e, d);
    if (d == UINT64_MAX || me->state == M_ARMED) {
        MCHECK(m, rc == -EINVAL, "insert(entry %zu, %llu) = %d, expected -EINVAL", i,
               (unsigned long long)d, rc);
        MCHECK(m, memcmp(&snap, &me->e, sizeof snap) == 0, "a refused insert changed entry %zu", i);
        m->stats[d == UINT64_MAX ? S_REFUSED_MAX : S_REFUSED_ARMED]++;
        return;
    }
    MCHECK(m, rc == 0, "insert(entry %zu, %llu) = %d", i, (unsigned long long)d, rc);
    if (me->state == M_WAITING) {
        waiting_remove(m, i);
        m->stats[S_REINSERT]++;
    }
    uint64_t t = expiry_tick(d);
    me->state = M_ARMED;
    me->deadline = d;
    me->seq = ++m->seq;
    me->already_due = t <= m->now_tick;
    me->key = me->already_due ? m->now_tick : t;
    me->level = me->already_due   ? 0
                : t == NEVER_TICK ? WEFT__TIMER_LEVELS
                                  : model_level(m->now_tick, t);
    m->stats[S_BEYOND] += t == NEVER_TICK;
    MCHECK(m, weft__timer_entry_armed(&me->e), "entry %zu not armed after an insert", i);
    MCHECK(m, me->e.deadline_ns == d, "entry %zu: deadline_ns %llu after insert(%llu)", i,
           (unsigned long long)me->e.deadline_ns, (unsigned long long)d);
}

static void sim_cancel(sim *m, size_t i) {
    mentry *me = &m->ent[i];
    bool got = weft__timer_wheel_cancel(&m->w, &me->e);
    MCHECK(m, got == (me->state != M_IDLE), "cancel(entry %zu) = %d in model state %d", i, got,
           (int)me->state);
    if (me->state == M_WAITING) {
        waiting_remove(m, i);
        m->stats[S_CANCEL_WAITING]++;
    } else if (me->state == M_ARMED) {
        m->stats[S_CANCEL_ARMED]++;
    }
    me->state = M_IDLE;
    MCHECK(m, !weft__timer_entry_armed(&me->e), "entry %zu armed after a cancel", i);
}

/* The model's due entries for target, in the documented order. */
static size_t model_due(const sim *m, uint64_t target, size_t *due) {
    size_t n = 0;
    if (target < m->now_tick) {
        return 0; /* backwards: does nothing */
    }
    for (size_t i = 0; i < m->active; i++) {
        if (m->ent[i].state == M_ARMED && m->ent[i].key <= target) {
            due[n++] = i;
        }
    }
    /* Insertion sort by (key, seq): n is small. */
    for (size_t k = 1; k < n; k++) {
        size_t v = due[k], j = k;
        const mentry *e = &m->ent[v];
        while (j > 0) {
            const mentry *p = &m->ent[due[j - 1]];
            if (p->key < e->key || (p->key == e->key && p->seq < e->seq)) {
                break;
            }
            due[j] = due[j - 1];
            j--;
        }
        due[j] = v;
    }
    return n;
}

static void sim_advance(sim *m, uint64_t now_ns) {
    const uint64_t target = now_ns / TICK;
    const uint64_t prev_tick = m->now_tick;
    size_t due[POOL];
    size_t n = model_due(m, target, due);
    size_t before = m->nwaiting;

    size_t got = weft__timer_wheel_advance(&m->w, now_ns, &m->expired);
    MCHECK(m, got == n, "advance(%llu) from %llu reported %zu entries, the model %zu",
           (unsigned long long)now_ns, (unsigned long long)m->now_ns, got, n);
    for (size_t k = 0; k < n; k++) {
        mentry *me = &m->ent[due[k]];
        /* Never early; and not due at the previous advance, so less than one tick late
         * unless it was inserted already due. */
        MCHECK(m, me->deadline <= now_ns, "entry %zu (deadline %llu) expired early at %llu", due[k],
               (unsigned long long)me->deadline, (unsigned long long)now_ns);
        MCHECK(m, me->already_due || expiry_tick(me->deadline) > prev_tick,
               "entry %zu was due before this advance", due[k]);
        me->state = M_WAITING;
        m->waiting[m->nwaiting++] = due[k];
        m->stats[me->already_due ? S_EXPIRED_ALREADY_DUE : S_EXPIRED]++;
        m->expired_from[me->level] += !me->already_due;
    }
    MCHECK(m, m->nwaiting == before + n, "%s", "model bookkeeping");
    if (target >= m->now_tick) {
        m->now_tick = target;
        m->now_ns = now_ns;
    } else {
        m->stats[S_BACKWARDS]++;
    }
    compare_waiting(m);
}

static void sim_drain(sim *m, size_t k) {
    for (size_t j = 0; j < k; j++) {
        weft__timer_entry *e = weft__timer_list_pop(&m->expired);
        size_t want = m->waiting[0];
        MCHECK(m, e == &m->ent[want].e, "pop returned entry %zu, the model says entry %zu",
               e ? index_of(m, e) : (size_t)-1, want);
        MCHECK(m, !weft__timer_entry_armed(e), "popped entry %zu is armed", want);
        memmove(&m->waiting[0], &m->waiting[1], (m->nwaiting - 1) * sizeof(size_t));
        m->nwaiting--;
        m->ent[want].state = M_IDLE;
    }
    if (m->nwaiting == 0) {
        MCHECK(m, weft__timer_list_empty(&m->expired), "%s", "the expired list is not empty");
        MCHECK(m, weft__timer_list_pop(&m->expired) == NULL, "%s", "pop of an empty list");
    }
}

/* Cancels everything (checking each cancel), then starts the wheel anew at start. */
static void sim_reset(sim *m, uint64_t start) {
    for (size_t i = 0; i < POOL; i++) {
        sim_cancel(m, i);
    }
    MCHECK(m, m->nwaiting == 0 && weft__timer_list_empty(&m->expired), "%s",
           "cancel left entries in the expired list");
    check_wheel(m);
    MCHECK(m, weft__timer_wheel_next_deadline(&m->w) == UINT64_MAX, "%s",
           "next_deadline of a wheel whose entries were all cancelled");
    weft__timer_wheel_init(&m->w, start);
    m->now_ns = start;
    m->now_tick = start / TICK;
    m->stats[S_RESET]++;
}

static uint64_t pick_start(sim *m) {
    uint64_t r = rnd(m), s = rnd(m);
    unsigned l = (unsigned)((r >> 8) % WEFT__TIMER_LEVELS);
    uint64_t width = UINT64_C(1) << (WEFT__TIMER_TICK_SHIFT + WEFT__TIMER_SLOT_BITS * l);
    switch (r % 16) {
    case 0:
        return 0;
    case 1:
        return s % (UINT64_C(1) << 20);
    case 2:
    case 3:
        return s;
    case 4:
    case 5: /* just before the wheel's digits roll over */
        return sub_sat(s & ~(width - 1), (r >> 16) % (2 * TICK));
    case 6: /* near the end of the range */
        return UINT64_MAX - (s >> (20 + (r >> 16) % 44));
    case 7: /* in the last tick that expires */
        return UINT64_MAX - (r >> 16) % 4;
    default:
        return s >> (r >> 16) % 64;
    }
}

static uint64_t pick_deadline(sim *m) {
    static const int64_t deltas[] = {
        -(int64_t)TICK - 1, -(int64_t)TICK,   -1, 0, 1, (int64_t)TICK - 1,
        (int64_t)TICK,      (int64_t)TICK + 1};
    const uint64_t r = rnd(m), s = rnd(m);
    const uint64_t base = m->now_ns;
    const unsigned l = (unsigned)(s % WEFT__TIMER_LEVELS);
    const uint64_t width = UINT64_C(1) << (WEFT__TIMER_TICK_SHIFT + WEFT__TIMER_SLOT_BITS * l);
    const int64_t delta = (s >> 8) % 2 ? deltas[(s >> 9) % 8]
                                       : (int64_t)((s >> 16) % (4 * TICK + 1)) - 2 * (int64_t)TICK;
    switch (r % 20) {
    case 0:
    case 1: /* already past, or exactly now */
        switch ((r >> 8) % 4) {
        case 0:
            return base;
        case 1:
            return m->now_tick * TICK; /* the wheel's time */
        case 2:
            return sub_sat(m->now_tick * TICK, 1 + (s >> 32) % TICK); /* the previous tick */
        default:
            return sub_sat(base, s >> (s >> 32) % 64);
        }
    case 2:
    case 3:
    case 4: /* near: within a few slots of level 0 to 2 */
        return add_sat(base, (s >> 12) % (UINT64_C(1) << (10 + (r >> 8) % 14)));
    case 5:
    case 6:
    case 7:
    case 8: /* one level width from now, +- a tick or two */
        return add_delta_sat(add_sat(base, width), delta);
    case 9:
    case 10:
    case 11:
    case 12: { /* a later multiple of a level width, +- a tick or two: a digit rolls over */
        uint64_t k = base / width + 1 + (r >> 8) % 3;
        if (k > UINT64_MAX / width) {
            return UINT64_MAX - (s >> 20) % (3 * TICK);
        }
        return add_delta_sat(k * width, delta);
    }
    case 13: /* far: log-uniform distance */
        return add_sat(base, s >> (r >> 8) % 64);
    case 14: /* the end: the last ticks that expire, the last partial tick, UINT64_MAX */
        return UINT64_MAX - (s >> 8) % (3 * TICK);
    case 15: /* anywhere */
        return s;
    default: { /* the same deadline as, or the same tick as, another entry */
        uint64_t d = m->ent[(s >> 8) % m->active].deadline;
        uint64_t t = expiry_tick(d);
        if ((r >> 8) % 3 != 0 || t == 0) {
            return d;
        }
        return (t - 1) * TICK + 1 + (s >> 20) % (TICK - 1);
    }
    }
}

/* A random armed entry with a deadline at most reach after now, or SIZE_MAX if none. */
static size_t pick_armed(sim *m, uint64_t reach) {
    size_t first = (size_t)(rnd(m) % m->active);
    uint64_t limit = add_sat(m->now_ns, reach);
    for (size_t k = 0; k < m->active; k++) {
        size_t i = (first + k) % m->active;
        if (m->ent[i].state == M_ARMED && m->ent[i].deadline <= limit) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* The now_ns of the next advance; *to_next is set if it is exactly next_deadline(). */
static uint64_t pick_advance(sim *m, bool *to_next) {
    const uint64_t r = rnd(m), s = rnd(m);
    const uint64_t now = m->now_ns;
    const uint64_t small = add_sat(now, s % (3 * TICK));
    *to_next = false;
    switch (r % 20) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5: /* small: the same tick or the next few */
        return small;
    case 6:
    case 7:
    case 8: { /* where next_deadline() says, or later in that tick */
        uint64_t nd = weft__timer_wheel_next_deadline(&m->w);
        if (nd == UINT64_MAX) {
            return small;
        }
        *to_next = (r >> 8) % 4 != 0;
        return *to_next ? nd : nd + s % TICK;
    }
    case 9:
    case 10:
    case 11: /* medium: up to 2^28 ns */
        return add_sat(now, s % (UINT64_C(1) << (16 + (r >> 8) % 13)));
    case 12:
    case 13: { /* around the deadline of an armed entry not too far off */
        size_t i = pick_armed(m, UINT64_C(1) << (16 + (r >> 10) % 30));
        if (i == SIZE_MAX) {
            return small;
        }
        uint64_t d = m->ent[i].deadline;
        uint64_t due = expiry_tick(d) >= NEVER_TICK ? UINT64_MAX : due_time(d);
        switch ((r >> 8) % 4) {
        case 0:
            return sub_sat(d, 1);
        case 1:
            return d;
        case 2:
            return sub_sat(due, 1);
        default:
            return due;
        }
    }
    case 14:
    case 15: /* large: up to 2^40 ns */
        return add_sat(now, s % (UINT64_C(1) << (28 + (r >> 8) % 13)));
    case 16: /* huge: up to 2^60 ns */
        return add_sat(now, s % (UINT64_C(1) << (40 + (r >> 8) % 21)));
    case 17: /* backwards, or earlier in the same tick */
        return sub_sat(now, s >> (r >> 8) % 64);
    case 18: { /* to where the wheel's digit of some level rolls over, +- 1 ns */
        unsigned l = (unsigned)((r >> 8) % WEFT__TIMER_LEVELS);
        uint64_t width = UINT64_C(1) << (WEFT__TIMER_TICK_SHIFT + WEFT__TIMER_SLOT_BITS * l);
        uint64_t k = now / width + 1;
        if (k > UINT64_MAX / width) {
            return small;
        }
        return add_delta_sat(k * width, (int64_t)((r >> 16) % 3) - 1);
    }
    default: /* rarely, the end of time */
        return (r >> 8) % 256 == 0 ? UINT64_MAX : small;
    }
}

static void run_random(uint64_t seed, size_t active, size_t steps) {
    sim *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    m->seed = seed;
    m->rng = seed;
    m->active = active;
    weft__timer_list_init(&m->expired);
    weft__timer_wheel_init(&m->w, 0);
    sim_reset(m, pick_start(m));

    for (m->step = 0; m->step < steps; m->step++) {
        const uint64_t r = rnd(m);
        const unsigned roll = (unsigned)(r % 1000);
        const size_t i = (size_t)((r >> 16) % active);
        if (roll < 330) { /* insert: also refused, or a re-insert, by the entry's state */
            sim_insert(m, i, pick_deadline(m));
        } else if (roll < 370) { /* re-insert an entry waiting in the expired list */
            if (m->nwaiting > 0) {
                sim_insert(m, m->waiting[(r >> 32) % m->nwaiting], pick_deadline(m));
            }
        } else if (roll < 480) {
            sim_cancel(m, i);
        } else if (roll < 510) { /* cancel an entry waiting in the expired list */
            if (m->nwaiting > 0) {
                sim_cancel(m, m->waiting[(r >> 32) % m->nwaiting]);
            }
        } else if (roll < 880) {
            bool to_next;
            uint64_t now_ns = pick_advance(m, &to_next);
            uint64_t nd = to_next ? weft__timer_wheel_next_deadline(&m->w) : 0;
            sim_advance(m, now_ns);
            uint64_t after = check_next_deadline(m);
            if (to_next) {
                /* Progress: advance(next_deadline()) expires or cascades, so the next
                 * deadline is later. */
                MCHECK(m, after > nd, "advance(next_deadline() = %llu) made no progress",
                       (unsigned long long)nd);
                m->stats[S_TO_NEXT_DEADLINE]++;
            }
        } else if (roll < 996) { /* drain: mostly all, sometimes a few */
            if (m->nwaiting > 0) {
                sim_drain(m, (r >> 32) % 4 ? m->nwaiting : 1 + (r >> 40) % m->nwaiting);
            }
        } else if (roll < 999) { /* about every 330 steps */
            sim_reset(m, pick_start(m));
        } else {
            check_next_deadline(m);
        }
        if (m->step % 32 == 0) {
            check_wheel(m);
            check_next_deadline(m);
        }
    }
    check_wheel(m);
    check_next_deadline(m);
    sim_drain(m, m->nwaiting);
    sim_reset(m, 0);
    for (size_t k = 0; k < S_COUNT; k++) {
        MCHECK(m, m->stats[k] > 0, "never exercised: %s", stat_names[k]);
    }
    for (unsigned l = 0; l < WEFT__TIMER_LEVELS; l++) {
        MCHECK(m, m->expired_from[l] > 0, "no entry inserted in level %u expired", l);
    }
    free(m);
}

Test(timer_wheel, random_sequences_match_a_model) {
    static const uint64_t seeds[] = {1, 0x5eed, 20240611, 0xdeadbeefcafe};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        run_random(seeds[s], POOL, 200000);       /* crowded: many equal ticks, cascades */
        run_random(seeds[s] ^ 0x5a5a, 6, 100000); /* sparse: far timers, long jumps */
    }
}
