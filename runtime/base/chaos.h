/*
 * chaos.h: seeded chaos scheduling, a debugging mode that perturbs the scheduler's
 * decisions so that races in weft (and in programs on it) show up in stress runs, and
 * show up again with the same seed.
 *
 * Turned on by weft_config.chaos_seed, or for every runtime of a process by the
 * environment variable WEFT_CHAOS=<seed> (a non-zero decimal or 0x-hex number). Off, it
 * costs one predictable branch at each decision point.
 *
 * What it perturbs, each decision drawn from the deciding worker's own generator
 * (xorshift64*, seeded from the seed and the worker's index):
 *   - the victim a searching worker steals from first (also random without chaos, but
 *     from a fixed seed);
 *   - steal sizes: how much of the injection queue a worker takes at once (1 up to its
 *     fair share);
 *   - extra yields: at spawn and at join, a task sometimes yields first;
 *   - preemption points: a join sometimes declines to run its child inline, and a
 *     yield sometimes goes through the scheduler instead of straight to the next task;
 *   - delays before parking: a worker running dry sometimes spins or sleeps a few
 *     microseconds first, widening the windows of the lost-wake-up protocols;
 *   - chaos points (WEFT__CHAOS_POINT): between the numbered steps of every protocol
 *     (join, completion, park/wake, timers, shutdown), the thread sometimes spins, yields
 *     its CPU or sleeps for a seeded while. Races live in exactly those windows, which
 *     are a few instructions wide without chaos: the join races of issue 9 (a stale
 *     joiner woken after a withdraw and a re-registration, a wake that touched a
 *     destroyed runtime, a detach between a join's check and its registration) slipped
 *     past 1.2 billion stress tasks under 14 chaos seeds before these points existed.
 *
 * Replay: the same seed gives every worker the same sequence of decisions. Which
 * decision meets which moment still depends on the OS's thread timing, so a failure
 * found with a seed reproduces often, not always; stress runs therefore loop each seed.
 *
 * Owner: every field of weft__chaos is the worker's own (its thread only). Chaos points
 * run on any thread (a foreign joiner, a detaching thread, a worker): their generator is
 * thread-local (chaos.c), seeded from the runtime's seed and a per-process thread count.
 *
 * Chaos points are compiled in when WEFT_CHAOS_POINTS is defined (CMake option of the
 * same name, ON by default so that every test build has them); a build without them has
 * no trace of them. Compiled in, a point with chaos off is one load and one predictable
 * branch.
 */
#ifndef WEFT__BASE_CHAOS_H
#define WEFT__BASE_CHAOS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct weft__chaos {
    uint64_t state; /* 0: chaos off */
} weft__chaos;

/* The process-wide seed from WEFT_CHAOS, read once; 0 if unset or invalid. */
uint64_t weft__chaos_env_seed(void);

static inline void weft__chaos_init(weft__chaos *c, uint64_t seed, unsigned worker_index) {
    if (seed == 0) {
        c->state = 0;
        return;
    }
    /* splitmix64 of (seed, index): distinct, never-zero states per worker. */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (worker_index + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    c->state = z ? z : 1;
}

static inline bool weft__chaos_on(const weft__chaos *c) {
    return c->state != 0;
}

/* A draw in [0, n), n > 0. Chaos must be on. */
static inline uint64_t weft__chaos_below(weft__chaos *c, uint64_t n) {
    uint64_t x = c->state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->state = x;
    return ((x * 0x2545f4914f6cdd1dull) >> 11) % n;
}

/* True with probability 1/n when chaos is on; never when it is off. */
static inline bool weft__chaos_one_in(weft__chaos *c, uint64_t n) {
    return weft__chaos_on(c) && weft__chaos_below(c, n) == 0;
}

/* Before parking: with chaos on, sometimes spin or sleep a few microseconds. */
void weft__chaos_delay(weft__chaos *c);

/* A chaos point: with a non-zero seed, sometimes spins (up to ~10 us), more rarely
 * yields the CPU or sleeps (up to ~50 us), drawn from the calling thread's generator. `label` names
 * the protocol step it follows (e.g. "JOIN-C2"); it is mixed into the draw so that points sharing a
 * thread do not fall into lockstep. Any thread; never blocks for long; takes no lock. */
void weft__chaos_point(uint64_t seed, const char *label);

/* A chaos point before a window that the other side crosses by a long path, not a few
 * instructions: after a last touch, before a call that still uses something the other
 * side may now free (the completer's wake of another runtime's idle worker, JOIN-C4,
 * while that joiner runs on, returns and its runtime is destroyed). 1 in 64 sleeps up to
 * 200 us there; otherwise as weft__chaos_point. */
void weft__chaos_point_long(uint64_t seed, const char *label);

#if defined(WEFT__CHAOS_POINTS)
/* `seed_expression` is evaluated only in builds with chaos points (usually
 * rt->chaos_seed). */
#define WEFT__CHAOS_POINT(seed_expression, label)                                                  \
    do {                                                                                           \
        uint64_t weft__chaos_seed_ = (seed_expression);                                            \
        if (__builtin_expect(weft__chaos_seed_ != 0, 0))                                           \
            weft__chaos_point(weft__chaos_seed_, label);                                           \
    } while (0)
#define WEFT__CHAOS_POINT_LONG(seed_expression, label)                                             \
    do {                                                                                           \
        uint64_t weft__chaos_seed_ = (seed_expression);                                            \
        if (__builtin_expect(weft__chaos_seed_ != 0, 0))                                           \
            weft__chaos_point_long(weft__chaos_seed_, label);                                      \
    } while (0)
#else
#define WEFT__CHAOS_POINT(seed_expression, label)      ((void)0)
#define WEFT__CHAOS_POINT_LONG(seed_expression, label) ((void)0)
#endif

#endif /* WEFT__BASE_CHAOS_H */
