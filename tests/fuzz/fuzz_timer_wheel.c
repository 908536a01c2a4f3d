/*
 * fuzz_timer_wheel.c: a libFuzzer target for the hierarchical timing wheel of
 * runtime/timer_wheel.h.
 *
 * The input bytes are read as a program: a start time for the wheel, then a sequence of
 * operations (insert, cancel, advance, pop, drain, next_deadline, advance to the next
 * deadline, is-armed) on a handful of entries, each with its operands taken from the
 * following bytes. Every step is checked against a reference model that knows nothing of
 * levels or slots, only the header's contract:
 *
 * - an armed entry with deadline d is due at the first advance with
 *   floor(now / tick) >= ceil(d / tick): never early (d <= now), and never later than
 *   that advance (the count each advance returns is compared exactly);
 * - expired entries come out in order of expiry tick, equal ticks in insertion order, an
 *   entry inserted already due counting as due at the wheel's time then;
 * - an advance to an earlier tick than the wheel's does nothing;
 * - insert refuses UINT64_MAX and an armed entry with -EINVAL, leaving the entry as it was;
 *   re-inserting an entry that waits in an expired list takes it out of that list;
 * - cancel returns whether it stopped a delivery, also taking an entry out of the list;
 * - deadlines in the last partial tick never expire;
 * - next_deadline() is UINT64_MAX with nothing that can expire, else a multiple of the
 *   tick, the wheel's time if an entry was inserted already due, else after the last
 *   now, never after the earliest deadline rounded up to the tick, equal to it when that
 *   entry is in level 0, and exactly the start of the slot the documented placement gives;
 * - weft__timer_wheel_check() is NULL after every operation and counts the armed entries.
 *
 * Replay a crash with the binary and the crash file as its argument (tools/fuzz prints
 * the command).
 */
#define FUZZ_NAME "fuzz_timer_wheel"
#include "fuzz_input.h"
#include "time/timer_wheel.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK       WEFT__TIMER_TICK_NS
#define NEVER_TICK (UINT64_C(1) << (64 - WEFT__TIMER_TICK_SHIFT))
#define ENTRIES    6

#define CHECK FUZZ_CHECK

/* ---- the input, read as a stream of operands ------------------------------------------ */

static uint64_t add_sat(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sub_sat(uint64_t a, uint64_t b) {
    return a < b ? 0 : a - b;
}

/* A time near `base`, shaped to hit the interesting places: small steps either way, every
 * power of two, the boundaries where the wheel's base-64 digits roll over, the last
 * partial tick, UINT64_MAX itself, and arbitrary values. */
static uint64_t in_time(input *in, uint64_t base) {
    uint8_t kind = in_u8(in);
    int64_t wiggle = (int64_t)(int8_t)in_u8(in); /* -128 .. 127 */
    uint64_t t;

    switch (kind % 10) {
    case 0:
        return add_sat(base, in_bytes(in, 2));
    case 1:
        return sub_sat(base, in_bytes(in, 2));
    case 2:
        t = add_sat(base, UINT64_C(1) << (in_u8(in) % 64));
        break;
    case 3: {
        /* The next boundary of digit k of the tick, at or after base. */
        unsigned k = in_u8(in) % (WEFT__TIMER_LEVELS + 1);
        unsigned shift = WEFT__TIMER_TICK_SHIFT + k * WEFT__TIMER_SLOT_BITS;
        uint64_t unit = shift >= 64 ? 0 : UINT64_C(1) << shift;
        if (unit == 0)
            return UINT64_MAX - (in_u8(in) % 4);
        t = add_sat(base / unit * unit, unit * (in_u8(in) % 3));
        break;
    }
    case 4:
        return in_bytes(in, 8);
    case 5:
        return UINT64_MAX - in_bytes(in, 2) % (2 * TICK);
    case 6:
        return UINT64_MAX;
    case 7:
        t = add_sat(base, in_bytes(in, 8) >> (in_u8(in) % 64));
        break;
    case 8:
        t = base;
        break;
    default:
        /* A multiple of the tick near base: exact tick boundaries. */
        t = add_sat(base, (uint64_t)(in_u8(in) % 80) * TICK) / TICK * TICK;
        break;
    }
    return wiggle < 0 ? sub_sat(t, (uint64_t)-wiggle) : add_sat(t, (uint64_t)wiggle);
}

/* ---- the reference model ---------------------------------------------------------------- */

enum { IDLE, ARMED, EXPIRED };

typedef struct model_entry {
    int state;
    uint64_t deadline;
    uint64_t seq;        /* of its last successful insert */
    uint64_t key;        /* expiry tick, or the wheel's tick at the insert if already due */
    bool inserted_due;   /* armed, and inserted already due */
    uint64_t expired_at; /* the now_ns of the advance that reported it */
} model_entry;

typedef struct model {
    uint64_t now_tick; /* the wheel's time in ticks */
    uint64_t last_now; /* now_ns of the latest init or advance that moved the wheel */
    uint64_t seq;
    model_entry e[ENTRIES];
    /* The expired list: entry indices in list order. An entry is in it at most once. */
    int list[ENTRIES];
    int list_len;
} model;

static uint64_t expiry_tick(uint64_t d) {
    return d / TICK + (d % TICK != 0);
}

static void list_remove(model *m, int i) {
    for (int k = 0; k < m->list_len; k++) {
        if (m->list[k] == i) {
            memmove(&m->list[k], &m->list[k + 1], sizeof(int) * (size_t)(m->list_len - k - 1));
            m->list_len--;
            return;
        }
    }
    CHECK(0, "model: entry %d not in the list", i);
}

static size_t model_armed(const model *m) {
    size_t n = 0;
    for (int i = 0; i < ENTRIES; i++)
        n += m->e[i].state == ARMED;
    return n;
}

/* The start (in ticks) of the slot the documented placement gives an entry with expiry
 * tick t > now_tick: now's digits above the highest digit L where they differ, t's digit
 * L, zeros below. */
static uint64_t model_slot_start(uint64_t now_tick, uint64_t t) {
    unsigned level = 0;
    for (unsigned l = WEFT__TIMER_LEVELS - 1; l > 0; l--) {
        if (t >> (WEFT__TIMER_SLOT_BITS * l) != now_tick >> (WEFT__TIMER_SLOT_BITS * l)) {
            level = l;
            break;
        }
    }
    unsigned shift = level * WEFT__TIMER_SLOT_BITS;
    return t >> shift << shift;
}

/* ---- the operations ----------------------------------------------------------------------- */

typedef struct state {
    weft__timer_wheel wheel;
    weft__timer_entry entries[ENTRIES];
    weft__timer_list list;
    model m;
} state;

static int index_of(state *s, weft__timer_entry *e) {
    for (int i = 0; i < ENTRIES; i++)
        if (e == &s->entries[i])
            return i;
    return -1;
}

/* weft__timer_wheel_check() walks all 576 slots: three quarters of the time of a run.
 * Long inputs run it after the first 32 operations, then after every 8th and at the end;
 * the cheap checks run after every operation. */
static void check_sound_full(state *s, bool full) {
    if (full) {
        size_t armed = SIZE_MAX;
        const char *err = weft__timer_wheel_check(&s->wheel, &armed);
        CHECK(err == NULL, "weft__timer_wheel_check: %s", err);
        CHECK(armed == model_armed(&s->m), "the wheel holds %zu armed entries, the model %zu",
              armed, model_armed(&s->m));
    }
    for (int i = 0; i < ENTRIES; i++) {
        CHECK(weft__timer_entry_armed(&s->entries[i]) == (s->m.e[i].state == ARMED),
              "entry %d: armed() is %d, model state %d", i, weft__timer_entry_armed(&s->entries[i]),
              s->m.e[i].state);
    }
    CHECK(weft__timer_list_empty(&s->list) == (s->m.list_len == 0),
          "list_empty() disagrees with the model (%d entries)", s->m.list_len);
}

static void check_sound(state *s) {
    check_sound_full(s, true);
}

static void op_insert(state *s, int i, uint64_t d) {
    model *m = &s->m;
    model_entry *me = &m->e[i];
    weft__timer_entry before = s->entries[i];
    int rc = weft__timer_wheel_insert(&s->wheel, &s->entries[i], d);

    if (d == UINT64_MAX || me->state == ARMED) {
        CHECK(rc == -EINVAL, "insert(%d, %llu) = %d, expected -EINVAL", i, (unsigned long long)d,
              rc);
        CHECK(memcmp(&before, &s->entries[i], sizeof before) == 0,
              "a refused insert changed the entry");
        return;
    }
    CHECK(rc == 0, "insert(%d, %llu) = %d", i, (unsigned long long)d, rc);
    CHECK(s->entries[i].deadline_ns == d, "deadline_ns %llu after insert(%llu)",
          (unsigned long long)s->entries[i].deadline_ns, (unsigned long long)d);
    if (me->state == EXPIRED)
        list_remove(m, i);
    uint64_t t = expiry_tick(d);
    me->state = ARMED;
    me->deadline = d;
    me->seq = m->seq++;
    me->inserted_due = t <= m->now_tick;
    me->key = me->inserted_due ? m->now_tick : t;
}

static void op_cancel(state *s, int i) {
    model_entry *me = &s->m.e[i];
    bool stopped = weft__timer_wheel_cancel(&s->wheel, &s->entries[i]);
    CHECK(stopped == (me->state != IDLE), "cancel(%d) = %d, model state %d", i, stopped, me->state);
    if (me->state == EXPIRED)
        list_remove(&s->m, i);
    me->state = IDLE;
    CHECK(s->entries[i].deadline_ns == me->deadline, "cancel changed deadline_ns");
}

static void op_advance(state *s, uint64_t now) {
    model *m = &s->m;
    uint64_t target = now >> WEFT__TIMER_TICK_SHIFT;
    int due[ENTRIES];
    int n_due = 0;

    if (target >= m->now_tick) {
        for (int i = 0; i < ENTRIES; i++) {
            if (m->e[i].state == ARMED && expiry_tick(m->e[i].deadline) <= target)
                due[n_due++] = i;
        }
        /* Insertion sort by (key, seq). */
        for (int a = 1; a < n_due; a++) {
            int x = due[a], b = a;
            while (b > 0 &&
                   (m->e[due[b - 1]].key > m->e[x].key ||
                    (m->e[due[b - 1]].key == m->e[x].key && m->e[due[b - 1]].seq > m->e[x].seq))) {
                due[b] = due[b - 1];
                b--;
            }
            due[b] = x;
        }
    }
    size_t got = weft__timer_wheel_advance(&s->wheel, now, &s->list);
    CHECK(got == (size_t)n_due,
          "advance(%llu) from tick %llu reported %zu entries, the model expects %d",
          (unsigned long long)now, (unsigned long long)m->now_tick, got, n_due);
    if (target < m->now_tick)
        return;
    for (int k = 0; k < n_due; k++) {
        model_entry *me = &m->e[due[k]];
        CHECK(me->deadline <= now, "entry %d (deadline %llu) is due early at %llu", due[k],
              (unsigned long long)me->deadline, (unsigned long long)now);
        me->state = EXPIRED;
        me->inserted_due = false;
        me->expired_at = now;
        m->list[m->list_len++] = due[k];
    }
    m->now_tick = target;
    m->last_now = now;
}

static void op_pop(state *s) {
    model *m = &s->m;
    weft__timer_entry *e = weft__timer_list_pop(&s->list);
    if (m->list_len == 0) {
        CHECK(e == NULL, "pop from a list the model says is empty gave entry %d", index_of(s, e));
        return;
    }
    int want = m->list[0];
    CHECK(e == &s->entries[want], "pop gave entry %d, the model expects %d (expiry order)",
          index_of(s, e), want);
    list_remove(m, want);
    model_entry *me = &m->e[want];
    CHECK(e->deadline_ns == me->deadline && me->deadline <= me->expired_at,
          "popped entry %d: deadline %llu, reported at %llu", want,
          (unsigned long long)e->deadline_ns, (unsigned long long)me->expired_at);
    CHECK(!weft__timer_entry_armed(e), "a popped entry is armed");
    me->state = IDLE;
}

/* next_deadline() against the contract, then against the exact placement. */
static uint64_t op_next_deadline(state *s) {
    model *m = &s->m;
    uint64_t nd = weft__timer_wheel_next_deadline(&s->wheel);
    bool any = false, due_now = false;
    uint64_t earliest = UINT64_MAX; /* the earliest expiry tick */
    uint64_t exact = UINT64_MAX;    /* the model's slot start, in ticks */

    for (int i = 0; i < ENTRIES; i++) {
        model_entry *me = &m->e[i];
        uint64_t t = expiry_tick(me->deadline);
        if (me->state != ARMED || t == NEVER_TICK)
            continue;
        any = true;
        if (me->inserted_due) {
            CHECK(t <= m->now_tick, "model: an entry inserted due is not due");
            due_now = true;
            continue;
        }
        CHECK(t > m->now_tick, "entry %d (tick %llu) is armed and overdue at tick %llu", i,
              (unsigned long long)t, (unsigned long long)m->now_tick);
        if (t < earliest)
            earliest = t;
        uint64_t start = model_slot_start(m->now_tick, t);
        if (start < exact)
            exact = start;
    }
    if (!any) {
        CHECK(nd == UINT64_MAX, "next_deadline() = %llu with nothing that can expire",
              (unsigned long long)nd);
        return nd;
    }
    CHECK(nd != UINT64_MAX && nd % TICK == 0, "next_deadline() = %llu", (unsigned long long)nd);
    if (due_now) {
        CHECK(nd == m->now_tick * TICK,
              "next_deadline() = %llu with an entry inserted due; the wheel's time is %llu",
              (unsigned long long)nd, (unsigned long long)(m->now_tick * TICK));
        return nd;
    }
    CHECK(nd > m->last_now, "next_deadline() = %llu is not after the last now %llu",
          (unsigned long long)nd, (unsigned long long)m->last_now);
    CHECK(nd <= earliest * TICK, "next_deadline() = %llu is after the earliest expiry %llu",
          (unsigned long long)nd, (unsigned long long)(earliest * TICK));
    if (earliest >> WEFT__TIMER_SLOT_BITS == m->now_tick >> WEFT__TIMER_SLOT_BITS)
        CHECK(nd == earliest * TICK, "next_deadline() = %llu, level-0 entry due at %llu",
              (unsigned long long)nd, (unsigned long long)(earliest * TICK));
    CHECK(nd == exact * TICK, "next_deadline() = %llu, the placement gives %llu",
          (unsigned long long)nd, (unsigned long long)(exact * TICK));
    return nd;
}

/* Advancing to next_deadline() makes progress: something expires or cascades, and the
 * next deadline afterwards is later (or there is none). */
static void op_advance_to_next(state *s, int offset) {
    uint64_t nd = op_next_deadline(s);
    if (nd == UINT64_MAX)
        return;
    if (offset == 0) {
        op_advance(s, nd);
        check_sound(s);
        uint64_t after = op_next_deadline(s);
        CHECK(after == UINT64_MAX || after > nd,
              "advance(next_deadline() = %llu) made no progress: next_deadline() is then %llu",
              (unsigned long long)nd, (unsigned long long)after);
    } else {
        op_advance(s, offset < 0 ? sub_sat(nd, (uint64_t)-offset) : add_sat(nd, (uint64_t)offset));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static state s; /* 9 KiB of sentinels: not on the stack */
    input in = {data, size};

    memset(&s, 0, sizeof s);
    uint64_t start;
    switch (in_u8(&in) % 4) {
    case 0:
        start = 0;
        break;
    case 1:
        start = in_bytes(&in, 4);
        break;
    case 2:
        start = in_bytes(&in, 8);
        break;
    default:
        start = UINT64_MAX - in_bytes(&in, 3);
        break;
    }
    weft__timer_wheel_init(&s.wheel, start);
    weft__timer_list_init(&s.list);
    for (int i = 0; i < ENTRIES; i++) {
        if (i % 2)
            weft__timer_entry_init(&s.entries[i]); /* the others stay zero-filled */
    }
    s.m.now_tick = start >> WEFT__TIMER_TICK_SHIFT;
    s.m.last_now = start;
    check_sound(&s);
    CHECK(weft__timer_wheel_next_deadline(&s.wheel) == UINT64_MAX, "a new wheel has a deadline");

    for (unsigned step = 0; in.left > 0; step++) {
        uint8_t op = in_u8(&in);
        int i = (op >> 4) % ENTRIES;
        switch (op % 10) {
        case 0:
        case 1:
            op_insert(&s, i, in_time(&in, s.m.last_now));
            break;
        case 2: {
            /* An insert at (or near) another entry's deadline: ties and FIFO order. */
            int j = in_u8(&in) % ENTRIES;
            int8_t delta = (int8_t)(in_u8(&in) % 3) - 1;
            uint64_t d = s.m.e[j].deadline;
            op_insert(&s, i, delta < 0 ? sub_sat(d, 1) : delta > 0 ? add_sat(d, 1) : d);
            break;
        }
        case 3:
            op_cancel(&s, i);
            break;
        case 4:
        case 5:
            op_advance(&s, in_time(&in, s.m.last_now));
            break;
        case 6:
            op_pop(&s);
            break;
        case 7:
            while (s.m.list_len > 0)
                op_pop(&s);
            op_pop(&s);
            break;
        case 8:
            op_next_deadline(&s);
            break;
        default: {
            /* Mostly exactly there; else up to 128 ns either side. */
            uint8_t how = in_u8(&in);
            op_advance_to_next(&s, how % 4 != 0 ? 0 : (int)(int8_t)in_u8(&in));
            break;
        }
        }
        check_sound_full(&s, step < 32 || step % 8 == 0);
    }
    /* Everything still in the list comes out in order. */
    while (s.m.list_len > 0)
        op_pop(&s);
    op_pop(&s);
    check_sound(&s);
    return 0;
}
