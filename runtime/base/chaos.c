/*
 * chaos.c: the parts of chaos scheduling (chaos.h) that are not inline: reading
 * WEFT_CHAOS once per process, the delays before parking, and chaos points.
 */
#include "base/chaos.h"

#include "base/atomic.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Spins for about ns nanoseconds, by the clock: a count of pause instructions would
 * not do (a pause takes 17 ns on the development VM, 2026-12-02, and far fewer cycles on
 * older cores). */
static void spin_ns(uint64_t ns) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t until = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ns;
    for (;;) {
        for (int i = 0; i < 8; i++)
            weft__cpu_relax();
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec >= until)
            return;
    }
}

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static uint64_t env_seed;

static void read_env(void) {
    const char *s = getenv("WEFT_CHAOS");
    if (!s || !*s)
        return;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end != '\0' || v == 0) {
        fprintf(stderr, "weft: WEFT_CHAOS=%s is not a non-zero number; chaos is off\n", s);
        return;
    }
    env_seed = v;
    /* Once per process, so that a failing run's log names its seed. */
    fprintf(stderr, "weft: chaos scheduling, seed %llu (WEFT_CHAOS)\n", v);
}

uint64_t weft__chaos_env_seed(void) {
    pthread_once(&env_once, read_env);
    return env_seed;
}

void weft__chaos_delay(weft__chaos *c) {
    if (!weft__chaos_on(c))
        return;
    switch (weft__chaos_below(c, 8)) {
    case 0: /* spin up to 20 us */
        spin_ns(weft__chaos_below(c, 20000));
        break;
    case 1: { /* sleep up to 50 us: the OS runs someone else */
        struct timespec ts = {0, (long)weft__chaos_below(c, 50000)};
        nanosleep(&ts, NULL);
        break;
    }
    default:
        break;
    }
}

/* Chaos points' generator, one per thread: `seed` is the runtime seed it was drawn from
 * (a new seed reseeds it), `state` the xorshift64* state (0: not seeded yet). */
static _Thread_local struct {
    uint64_t seed;
    uint64_t state;
} point_rng;
/* Distinguishes threads of one process in the seeding; relaxed: uniqueness only. */
static weft__atomic_word point_threads;

static uint64_t label_hash(const char *label) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *label; label++)
        h = (h ^ (unsigned char)*label) * 0x100000001b3ull;
    return h;
}

/* The calling thread's generator for chaos points, seeded on first use and whenever the
 * seed changes, mixed with the label. */
static weft__chaos point_generator(uint64_t seed, const char *label) {
    if (point_rng.seed != seed || point_rng.state == 0) {
        weft__chaos c;
        unsigned thread = (unsigned)weft__atomic_fetch_add_relaxed(&point_threads, 1);
        weft__chaos_init(&c, seed ^ 0x6368616f73ull /* "chaos" */, 1000u + thread);
        point_rng.seed = seed;
        point_rng.state = c.state;
    }
    weft__chaos c = {point_rng.state ^ label_hash(label)};
    if (c.state == 0)
        c.state = 1;
    return c;
}

void weft__chaos_point(uint64_t seed, const char *label) {
    weft__chaos c = point_generator(seed, label);
    /* The odds, per point: 1 in 32 spins (up to ~5 us), 1 in 4096 yields the CPU, 1 in
     * 4096 sleeps (up to 50 us). Points sit on every join, completion, park and timer,
     * so they run millions of times a stress round: a first version's 1 in 64 yields and
     * sleeps made stress_storm under chaos 30 times slower (4 s -> over 200 s) on a
     * loaded 2-core machine, where sched_yield gives up a whole time slice. Rare long
     * delays still land in every window over a round; frequent short spins do most of
     * the widening. Windows the other side crosses by a long path get
     * weft__chaos_point_long. */
    uint64_t draw = weft__chaos_below(&c, 4096);
    if (draw < 128) { /* 1 in 32: spin */
        spin_ns(weft__chaos_below(&c, 5000));
    } else if (draw == 128) { /* 1 in 4096: let the OS run another thread here */
        sched_yield();
    } else if (draw == 129) { /* 1 in 4096: sleep */
        struct timespec ts = {0, (long)weft__chaos_below(&c, 50000)};
        nanosleep(&ts, NULL);
    }
    point_rng.state = c.state;
}

void weft__chaos_point_long(uint64_t seed, const char *label) {
    weft__chaos c = point_generator(seed, label);
    /* 1 in 64: sleep up to 200 us, long enough for another thread to run a task to its
     * end, return from block_on and destroy a runtime (the use-after-free that JOIN-C4's
     * pin prevents was found with this, and not with 50 us sleeps at 1 in 4096). */
    if (weft__chaos_below(&c, 64) == 0) {
        struct timespec ts = {0, (long)weft__chaos_below(&c, 200000)};
        nanosleep(&ts, NULL);
        point_rng.state = c.state;
        return;
    }
    point_rng.state = c.state;
    weft__chaos_point(seed, label);
}
