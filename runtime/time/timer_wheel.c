/*
 * timer_wheel.c - weft's hierarchical timing wheel (Varghese & Lauck, with
 * cascading), a pure data structure: no threads, no locks, no allocation.
 *
 * What it owns: the wheel's slot lists and bitmaps, and the links and state
 * of every entry armed in it. The caller owns the entries' memory and the
 * expired lists it passes to advance(). One wheel per worker; not
 * thread-safe (see timer_wheel.h).
 *
 * Model
 * -----
 * Time is counted in ticks of 2^10 ns (1.024 us). An entry with deadline d
 * (ns) has the expiry tick t = ceil(d / tick): the first tick at whose start
 * d has passed. It is due once the wheel's time now_tick = floor(now / tick)
 * reaches t, which makes it never early and less than one tick late.
 *
 * A tick is a 54-bit number read as nine base-64 digits. Level L has 64
 * slots, one per value of digit L (bits 6L .. 6L+5 of the tick), so a slot
 * of level L is 64^L ticks wide:
 *
 *   level  slot width (ticks)  slot width           level spans (64 slots)
 *   0      1                   2^10 ns = 1.024 us   2^16 ns = 65.5 us
 *   1      64                  2^16 ns = 65.5 us    2^22 ns = 4.19 ms
 *   2      64^2                2^22 ns = 4.19 ms    2^28 ns = 268 ms
 *   3      64^3                2^28 ns = 268 ms     2^34 ns = 17.2 s
 *   4      64^4                2^34 ns = 17.2 s     2^40 ns = 18.3 min
 *   5      64^5                2^40 ns = 18.3 min   2^46 ns = 19.5 h
 *   6      64^6                2^46 ns = 19.5 h     2^52 ns = 52.1 days
 *   7      64^7                2^52 ns = 52.1 days  2^58 ns = 9.13 years
 *   8      64^8                2^58 ns = 9.13 years 2^64 ns = 584 years
 *
 * Level 8 ends where uint64_t nanoseconds end, so there is no "too far"
 * case to clamp, except one: a deadline in the last partial tick,
 * (2^64 - 1024, 2^64 - 1), rounds up to tick 2^54, which no now_ns reaches.
 * Such entries wait, cancellable, on the `beyond` list and never expire, as
 * a 584-year timer would in practice. UINT64_MAX itself is refused.
 *
 * Invariants (weft__timer_wheel_check() verifies them all)
 * ----------
 * WHEEL-I1. now_tick only grows. After advance(now), no armed entry has
 *     t <= now_tick except those inserted since, already due.
 * WHEEL-I2. Placement is a function of (t, now_tick):
 *     - t <= now_tick (inserted already due): level 0, slot (now_tick & 63);
 *     - otherwise level L = the highest base-64 digit in which t and
 *       now_tick differ, slot = digit L of t; L = 9 (t = 2^54) is `beyond`.
 *     So the digits of t above L equal now_tick's and digit L of t is
 *     greater than now_tick's: a used slot of level L >= 1 is strictly after
 *     now_tick's own slot of that level, and no slot index ever wraps round.
 *     Every entry of level L is earlier than every entry of level L + 1
 *     (level L holds ticks inside now_tick's current 64^(L+1) block, level
 *     L + 1 ticks past it). Hence the next slot to process is the lowest
 *     set bit of the lowest non-empty level, found with one ctz per level.
 * WHEEL-I3. Bit s of occupied[L] is set iff slots[L][s] is non-empty.
 * WHEEL-I4. A placement stays correct while now_tick moves forward to any time
 *     before the start of its slot, so advance() only touches the slots
 *     whose start it reaches. At each, in time order, it sets now_tick to
 *     the slot's start and re-places (cascades) the slot's entries: those
 *     with t == start expire, the others fall to a lower level, since their
 *     digit L now equals now_tick's. Level 0 slots hold a single t, so all
 *     their entries expire. An entry moves at most once per level.
 * WHEEL-I5. Within a slot, entries with equal t are in insertion order: inserts
 *     append, cascades walk a slot from head to tail and append below, and
 *     by WHEEL-I2 two entries with equal t always share a slot, so no entry with
 *     the same t can already sit in the slot a cascade appends to. This is
 *     the FIFO guarantee for equal deadlines.
 * Entry states: idle (links NULL), armed (in a slot or `beyond`), expired
 * (in a caller's list, not armed). Only armed entries are the wheel's.
 *
 * Costs: insert and cancel O(1); next_deadline O(levels); advance
 * O(levels) per slot it processes plus O(1) per entry moved, whatever the
 * distance: an hour or a year is skipped by the bitmaps, not tick by tick.
 * Memory: 9 x 64 slot sentinels of 16 bytes, 9 KiB per wheel.
 *
 * Trade-offs chosen
 * -----------------
 * - Cascading. Linux's wheel (kernel/time/timer.c) never re-cascades: a
 *   timer fires at the granularity of the level it was queued in, late by
 *   up to about 1/8 of its timeout, which the kernel accepts because most
 *   of its timeouts are cancelled before they fire. Here most timers are
 *   sleeps and deadlines that a user measures, so they must fire on the
 *   tick. Cascading costs a move per level descended, paid only by entries
 *   that live that long; an entry cancelled early is O(1) in and out.
 * - Exact to the tick, not to the nanosecond. Firing at exactly d would
 *   mean scanning a slot's list on every advance inside a tick. A parked
 *   thread is woken tens of microseconds late anyway (Linux timer slack is
 *   50 us by default), so 1.024 us of rounding is invisible.
 * - next_deadline returns a slot's start for entries above level 0 (up to
 *   64^L ticks early) rather than their exact minimum: the exact minimum
 *   would take a walk of the slot, or per-slot minima that every cancel
 *   would have to repair. The price is at most one early wake-up per level
 *   a far timer descends, each at a moment the wheel must cascade anyway.
 * - Nine levels rather than Tokio's six: one more KiB of sentinels buys the
 *   whole uint64_t range at 1 us resolution, with no clamping of far
 *   deadlines.
 *
 * Rejected designs
 * ----------------
 * - A binary heap, as libuv's timers use: O(log n) insert and cancel, each
 *   step a likely cache miss, and removing an arbitrary node needs its heap
 *   position. weft arms a timer for nearly every blocking call that has a
 *   timeout and cancels most of them, so that pair must be O(1).
 * - A single-level wheel: one slot per tick over the whole range cannot be
 *   afforded at 1 us resolution, and hashing deadlines into a small wheel
 *   with a "rounds" count makes every pass walk every entry of each slot
 *   it crosses, and finding the next expiry a scan.
 * - A 1 ms tick, as in Tokio: a sleep is rounded up to the next millisecond
 *   and users see it. tokio-rs/tokio#5021 measures 1 ms sleeps about
 *   1.13 ms late on average on Linux; #6866 reports sleep_until waking 1 ms
 *   after a deadline even with time paused.
 * - Linux's non-cascading levels: imprecise by design, see above.
 */
#include "time/timer_wheel.h"

#include <errno.h>

enum {
    ENTRY_IDLE = 0, /* zero, so that a zero-filled entry is idle */
    ENTRY_ARMED,
    ENTRY_EXPIRED,
};

#define TICK_MASK (WEFT__TIMER_TICK_NS - 1)
#define SLOT_MASK ((uint64_t)WEFT__TIMER_SLOTS - 1)
/* The level that level_for() returns for tick 2^54: the `beyond` list. */
#define LEVEL_BEYOND WEFT__TIMER_LEVELS

_Static_assert(offsetof(weft__timer_entry, link) == 0,
               "a list link converts back to its entry by a cast");

static void link_init(weft__timer_link *head) {
    head->next = head;
    head->prev = head;
}

static bool link_empty(const weft__timer_link *head) {
    return head->next == head;
}

/* Appends at the tail: this is what keeps equal deadlines FIFO (WHEEL-I5). */
static void link_append(weft__timer_link *head, weft__timer_link *node) {
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static void link_remove(weft__timer_link *node) {
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = NULL;
    node->prev = NULL;
}

static weft__timer_entry *entry_of(weft__timer_link *link) {
    return (weft__timer_entry *)link; /* link is the first member */
}

/* ceil(d / tick), written so that it cannot overflow near UINT64_MAX.
 * Ranges over [0, 2^54]. */
static uint64_t expiry_tick(uint64_t deadline_ns) {
    return (deadline_ns >> WEFT__TIMER_TICK_SHIFT) + ((deadline_ns & TICK_MASK) != 0);
}

/* WHEEL-I2: the highest base-64 digit in which t and now differ; t != now. */
static unsigned level_for(uint64_t now, uint64_t t) {
    return (unsigned)(63 - __builtin_clzll(now ^ t)) / WEFT__TIMER_SLOT_BITS;
}

static unsigned slot_for(uint64_t t, unsigned level) {
    return (unsigned)((t >> (level * WEFT__TIMER_SLOT_BITS)) & SLOT_MASK);
}

/* The first tick of slot `slot` of `level`, given the wheel's time: now's
 * digits above the level, `slot` at the level, zeros below (WHEEL-I2). The shift
 * is at most 54, so it is defined. */
static uint64_t slot_start(uint64_t now, unsigned level, unsigned slot) {
    unsigned shift = level * WEFT__TIMER_SLOT_BITS;
    unsigned above = shift + WEFT__TIMER_SLOT_BITS;

    return ((now >> above) << above) | ((uint64_t)slot << shift);
}

/* The next slot to process (WHEEL-I2): the lowest set bit of the lowest
 * non-empty level. False if every level is empty. */
static bool next_slot(const weft__timer_wheel *w, unsigned *level, unsigned *slot) {
    for (unsigned l = 0; l < WEFT__TIMER_LEVELS; l++) {
        if (w->occupied[l] != 0) {
            *level = l;
            *slot = (unsigned)__builtin_ctzll(w->occupied[l]);
            return true;
        }
    }
    return false;
}

/* Links an entry where WHEEL-I2 says it belongs for expiry tick t. */
static void place(weft__timer_wheel *w, weft__timer_entry *e, uint64_t t) {
    unsigned level = 0;
    unsigned slot = (unsigned)(w->now_tick & SLOT_MASK);

    if (t > w->now_tick) {
        level = level_for(w->now_tick, t);
        slot = level == LEVEL_BEYOND ? 0 : slot_for(t, level);
    }
    e->state = ENTRY_ARMED;
    e->level = (uint8_t)level;
    e->slot = (uint8_t)slot;
    if (level == LEVEL_BEYOND) {
        link_append(&w->beyond, &e->link);
        return;
    }
    link_append(&w->slots[level][slot], &e->link);
    w->occupied[level] |= UINT64_C(1) << slot;
}

static void expire(weft__timer_entry *e, weft__timer_list *expired) {
    e->state = ENTRY_EXPIRED;
    link_append(&expired->head, &e->link);
}

/* Empties one slot whose start is w->now_tick (WHEEL-I4): due entries go to the
 * caller's list, the rest cascade to lower levels, never back into this
 * slot, so popping from its head until it is empty visits each once. */
static size_t process_slot(weft__timer_wheel *w, unsigned level, unsigned slot,
                           weft__timer_list *expired) {
    weft__timer_link *head = &w->slots[level][slot];
    size_t n = 0;

    while (!link_empty(head)) {
        weft__timer_entry *e = entry_of(head->next);
        uint64_t t = expiry_tick(e->deadline_ns);

        link_remove(&e->link);
        if (t <= w->now_tick) {
            expire(e, expired);
            n++;
        } else {
            place(w, e, t);
        }
    }
    w->occupied[level] &= ~(UINT64_C(1) << slot);
    return n;
}

void weft__timer_wheel_init(weft__timer_wheel *w, uint64_t now_ns) {
    w->now_tick = now_ns >> WEFT__TIMER_TICK_SHIFT;
    link_init(&w->beyond);
    for (unsigned l = 0; l < WEFT__TIMER_LEVELS; l++) {
        w->occupied[l] = 0;
        for (unsigned s = 0; s < WEFT__TIMER_SLOTS; s++) {
            link_init(&w->slots[l][s]);
        }
    }
}

void weft__timer_entry_init(weft__timer_entry *e) {
    e->link.next = NULL;
    e->link.prev = NULL;
    e->deadline_ns = 0;
    e->state = ENTRY_IDLE;
    e->level = 0;
    e->slot = 0;
}

int weft__timer_wheel_insert(weft__timer_wheel *w, weft__timer_entry *e, uint64_t deadline_ns) {
    if (deadline_ns == UINT64_MAX || e->state == ENTRY_ARMED) {
        return -EINVAL;
    }
    if (e->state == ENTRY_EXPIRED) {
        link_remove(&e->link); /* re-armed before the caller popped it */
    }
    e->deadline_ns = deadline_ns;
    place(w, e, expiry_tick(deadline_ns));
    return 0;
}

bool weft__timer_wheel_cancel(weft__timer_wheel *w, weft__timer_entry *e) {
    if (e->state == ENTRY_IDLE) {
        return false;
    }
    link_remove(&e->link);
    if (e->state == ENTRY_ARMED && e->level != LEVEL_BEYOND &&
        link_empty(&w->slots[e->level][e->slot])) {
        w->occupied[e->level] &= ~(UINT64_C(1) << e->slot); /* keep WHEEL-I3 */
    }
    e->state = ENTRY_IDLE;
    return true;
}

bool weft__timer_entry_armed(const weft__timer_entry *e) {
    return e->state == ENTRY_ARMED;
}

uint64_t weft__timer_wheel_next_deadline(const weft__timer_wheel *w) {
    unsigned level, slot;

    if (!next_slot(w, &level, &slot)) {
        return UINT64_MAX;
    }
    /* A start is below 2^54 ticks, so the shift cannot overflow. */
    return slot_start(w->now_tick, level, slot) << WEFT__TIMER_TICK_SHIFT;
}

size_t weft__timer_wheel_advance(weft__timer_wheel *w, uint64_t now_ns, weft__timer_list *expired) {
    uint64_t target = now_ns >> WEFT__TIMER_TICK_SHIFT;
    unsigned level, slot;
    size_t n = 0;

    if (target < w->now_tick) {
        return 0;
    }
    /* One iteration per slot reached, in time order, never per tick: this
     * is what makes a jump of a year as cheap as a jump of one tick. */
    while (next_slot(w, &level, &slot)) {
        uint64_t start = slot_start(w->now_tick, level, slot);

        if (start > target) {
            break;
        }
        w->now_tick = start;
        n += process_slot(w, level, slot, expired);
    }
    /* Every slot left starts after target, so by WHEEL-I4 nothing moves. */
    w->now_tick = target;
    return n;
}

/* Checks one entry, found in the list of (level, slot), against WHEEL-I2. */
static const char *check_entry(const weft__timer_wheel *w, const weft__timer_entry *e,
                               unsigned level, unsigned slot) {
    uint64_t t = expiry_tick(e->deadline_ns);
    unsigned want_level = 0;
    unsigned want_slot = (unsigned)(w->now_tick & SLOT_MASK);

    if (e->state != ENTRY_ARMED) {
        return "an entry in the wheel is not in the armed state";
    }
    if (e->level != level || (level != LEVEL_BEYOND && e->slot != slot)) {
        return "an entry's level/slot fields disagree with the list it is in";
    }
    if (e->deadline_ns == UINT64_MAX) {
        return "an armed entry has the deadline UINT64_MAX";
    }
    if (t > w->now_tick) {
        want_level = level_for(w->now_tick, t);
        want_slot = want_level == LEVEL_BEYOND ? 0 : slot_for(t, want_level);
    }
    if (want_level != level || (level != LEVEL_BEYOND && want_slot != slot)) {
        return "an entry is not where its deadline and the wheel's time place it (WHEEL-I2)";
    }
    return NULL;
}

/* Walks one list, checking its links and its entries; adds to *count. */
static const char *check_list(const weft__timer_wheel *w, const weft__timer_link *head,
                              unsigned level, unsigned slot, size_t *count) {
    for (const weft__timer_link *p = head->next; p != head; p = p->next) {
        const char *err;

        if (p->next == NULL || p->next->prev != p) {
            return "a slot list is corrupt (next->prev != node)";
        }
        err = check_entry(w, (const weft__timer_entry *)p, level, slot);
        if (err != NULL) {
            return err;
        }
        (*count)++;
    }
    return NULL;
}

const char *weft__timer_wheel_check(const weft__timer_wheel *w, size_t *armed) {
    size_t count = 0;
    const char *err;

    if (w->now_tick >> (64 - WEFT__TIMER_TICK_SHIFT) != 0) {
        return "now_tick is beyond the range of uint64_t nanoseconds";
    }
    for (unsigned l = 0; l < WEFT__TIMER_LEVELS; l++) {
        for (unsigned s = 0; s < WEFT__TIMER_SLOTS; s++) {
            const weft__timer_link *head = &w->slots[l][s];
            bool bit = (w->occupied[l] >> s) & 1;

            if (head->next->prev != head || head->prev->next != head) {
                return "a slot sentinel is corrupt";
            }
            if (bit == link_empty(head)) {
                return "an occupancy bit disagrees with its slot (WHEEL-I3)";
            }
            err = check_list(w, head, l, s, &count);
            if (err != NULL) {
                return err;
            }
        }
    }
    err = check_list(w, &w->beyond, LEVEL_BEYOND, 0, &count);
    if (err != NULL) {
        return err;
    }
    if (armed != NULL) {
        *armed = count;
    }
    return NULL;
}

void weft__timer_list_init(weft__timer_list *l) {
    link_init(&l->head);
}

bool weft__timer_list_empty(const weft__timer_list *l) {
    return link_empty(&l->head);
}

weft__timer_entry *weft__timer_list_pop(weft__timer_list *l) {
    weft__timer_entry *e;

    if (link_empty(&l->head)) {
        return NULL;
    }
    e = entry_of(l->head.next);
    link_remove(&e->link);
    e->state = ENTRY_IDLE;
    return e;
}
