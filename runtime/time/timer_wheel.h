/*
 * timer_wheel.h - a hierarchical timing wheel: a pure data structure.
 *
 * Entries with absolute deadlines (nanoseconds of the monotonic clock) are
 * armed in a wheel and later reported, in a caller-owned list, by the
 * advance() call that first passes their deadline. No threads, no locks, no
 * allocation: the caller embeds a weft__timer_entry in its own struct and
 * gets back to it with container_of. The model, invariants and trade-offs
 * are described at the top of timer_wheel.c.
 *
 * Threading: the wheel is not thread-safe. Every function that takes a
 * wheel is for its owner thread only (in weft, the worker that owns the
 * wheel), and so are the lists it fills and the entries armed in it.
 *
 * Lifetime: the wheel and every list hold self-referencing sentinels, so
 * they must not be copied or moved after init. An entry must not be freed
 * or reused while it is armed or waiting in an expired list (cancel it or
 * pop it first); a zero-filled entry is idle, so `= {0}` is as good as
 * weft__timer_entry_init().
 */
#ifndef WEFT__TIME_TIMER_WHEEL_H
#define WEFT__TIME_TIMER_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The wheel's resolution: 1024 ns. A power of two so that ns -> tick is a
 * shift; about 1 us so that sleeps are exact to well under the ~50 us timer
 * slack a parked Linux thread gets anyway (see timer_wheel.c). */
#define WEFT__TIMER_TICK_SHIFT 10
#define WEFT__TIMER_TICK_NS    (UINT64_C(1) << WEFT__TIMER_TICK_SHIFT)

/* 9 levels of 64 slots: 10 + 9 * 6 = 64 bits, the whole uint64_t range. */
#define WEFT__TIMER_SLOT_BITS 6
#define WEFT__TIMER_SLOTS     (1 << WEFT__TIMER_SLOT_BITS)
#define WEFT__TIMER_LEVELS    9

_Static_assert(WEFT__TIMER_SLOTS == 64, "one uint64_t occupancy bitmap per level");
_Static_assert(WEFT__TIMER_TICK_SHIFT + WEFT__TIMER_LEVELS * WEFT__TIMER_SLOT_BITS == 64,
               "the levels must cover exactly the 64-bit nanosecond range");

/* A node of a circular doubly-linked list with a sentinel head. Private. */
typedef struct weft__timer_link {
    struct weft__timer_link *next;
    struct weft__timer_link *prev;
} weft__timer_link;

/* A timer, embedded by the caller in its own struct. */
typedef struct weft__timer_entry {
    /* private: the first member, so that a link in a list converts back to
     * its entry by a cast. Linked into a wheel slot while armed, into an
     * expired list while it waits there; unused (NULL) while idle. */
    weft__timer_link link;
    /* read-only: the deadline given to the last successful insert. Still
     * valid after expiry and cancel, so the caller can see how late it is. */
    uint64_t deadline_ns;
    /* private: idle, armed or expired (waiting in an expired list). */
    uint8_t state;
    /* private: where an armed entry is, so that cancel can clear the
     * slot's bitmap bit when it empties the slot. level == LEVELS means
     * the never-expiring tail (deadlines in the last partial tick). */
    uint8_t level;
    uint8_t slot;
} weft__timer_entry;

/* A list of expired entries, filled by advance() in expiry order and
 * drained by the caller with weft__timer_list_pop(). */
typedef struct weft__timer_list {
    weft__timer_link head; /* private: sentinel */
} weft__timer_list;

typedef struct weft__timer_wheel {
    /* private: the wheel's current time in ticks, floor(now_ns / tick) of
     * the latest init or advance. Never decreases. */
    uint64_t now_tick;
    /* private: bit s of occupied[l] is set iff slots[l][s] is non-empty. */
    uint64_t occupied[WEFT__TIMER_LEVELS];
    /* private: entries whose expiry tick (2^54) no uint64_t time reaches. */
    weft__timer_link beyond;
    /* private: list sentinels, one per slot. */
    weft__timer_link slots[WEFT__TIMER_LEVELS][WEFT__TIMER_SLOTS];
} weft__timer_wheel;

/* Makes an empty wheel whose current time is now_ns. Owner thread only. */
void weft__timer_wheel_init(weft__timer_wheel *w, uint64_t now_ns);

/* Makes e idle. Needed once before first use (or zero-fill the entry);
 * never on an entry that is armed or in an expired list. */
void weft__timer_entry_init(weft__timer_entry *e);

/* Arms e to expire at deadline_ns. O(1), allocates nothing.
 *
 * A deadline at or before the wheel's current time is legal: the entry is
 * reported by the next advance() (one with now_ns in the same tick as the
 * wheel's time included). An entry still waiting in an expired list is
 * taken out of that list and re-armed: that expiry is dropped.
 *
 * Returns 0, or -EINVAL (e untouched) if deadline_ns is UINT64_MAX ("never":
 * the caller does not arm at all) or e is already armed.
 * Owner thread only. */
int weft__timer_wheel_insert(weft__timer_wheel *w, weft__timer_entry *e, uint64_t deadline_ns);

/* Disarms e. O(1). Also takes e out of an expired list it waits in, so that
 * a timer cancelled while the caller drains that list is not delivered.
 * Idempotent: e is idle afterwards, whatever its state before.
 *
 * Returns true if e was armed or waiting in an expired list (this call
 * stopped a delivery), false if it was idle.
 * Owner thread only; w must be the wheel e was armed in. */
bool weft__timer_wheel_cancel(weft__timer_wheel *w, weft__timer_entry *e);

/* True if e is armed in a wheel (not idle, not waiting in an expired list).
 * Owner thread only. */
bool weft__timer_entry_armed(const weft__timer_entry *e);

/* When to call advance() next. O(levels): one bitmap word per level.
 *
 * Returns UINT64_MAX if no armed entry can ever expire (the wheel is empty,
 * or holds only deadlines in the last partial tick). Otherwise a time t,
 * a multiple of the tick:
 *   - if an entry was inserted already due (see insert), t is the wheel's
 *     current time, floor(last now_ns / tick) * tick, in the past: advance
 *     at once;
 *   - else t is after the last now_ns, no entry expires before t, and
 *     t <= ceil(d / tick) * tick for the earliest armed deadline d, so
 *     parking until t is never late.
 * In both cases advance(t) makes progress: it expires or cascades at least
 * one entry, after which next_deadline() returns a later time.
 * If the earliest entry sits in level 0 (its tick shares all digits but the
 * last with the wheel's time, so it is at most 63 ticks away), t is exactly
 * its deadline rounded up to the tick. If it sits in a higher level L, t is
 * the start of its slot, up to 64^L ticks early: the caller wakes there,
 * advances (which cascades the slot) and asks again, so a far timer costs
 * at most one early wake-up per level it descends, the last one within
 * 64 ticks (65.5 us) of the deadline. Owner thread only. */
uint64_t weft__timer_wheel_next_deadline(const weft__timer_wheel *w);

/* Moves the wheel's time forward to now_ns and appends every entry that is
 * due to *expired (which must be initialized; entries already there stay).
 * Returns how many it appended. Owner thread only.
 *
 * Due means: ceil(d / tick) <= floor(now_ns / tick). So an entry is never
 * early (d <= now_ns) and is reported by the first advance with now_ns >=
 * ceil(d / tick) * tick, less than one tick (1.024 us) late.
 *
 * Order: by expiry tick; entries with the same expiry tick (so all entries
 * with equal deadlines) in insertion order; an entry inserted already due
 * counts as due at the wheel's time then, ahead of everything else.
 *
 * The appended entries are no longer armed: the caller may re-insert them,
 * into this wheel too, while it drains the list (collect, then fire). An
 * advance with now_ns earlier than the wheel's current time does nothing.
 * The cost does not depend on the distance advanced: empty slots and levels
 * are skipped via the bitmaps; each entry cascades at most once per level. */
size_t weft__timer_wheel_advance(weft__timer_wheel *w, uint64_t now_ns, weft__timer_list *expired);

/* Debugging and tests: walks the whole wheel (O(entries + slots)) and checks
 * every invariant listed in timer_wheel.c. Returns NULL if all hold, else a
 * static string naming the first one broken. If armed is not NULL and the
 * wheel is sound, stores the number of armed entries in it. */
const char *weft__timer_wheel_check(const weft__timer_wheel *w, size_t *armed);

/* An empty list. */
void weft__timer_list_init(weft__timer_list *l);

/* True if l holds no entry. */
bool weft__timer_list_empty(const weft__timer_list *l);

/* Removes and returns the first entry of l, now idle, or NULL if l is
 * empty. */
weft__timer_entry *weft__timer_list_pop(weft__timer_list *l);

#endif /* WEFT__TIME_TIMER_WHEEL_H */
