/*
 * chaos.c: the parts of chaos scheduling (chaos.h) that are not inline: reading
 * WEFT_CHAOS once per process, and the delays before parking.
 */
#include "chaos.h"

#include "atomic.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
    case 0: { /* spin up to ~20 us */
        uint64_t n = weft__chaos_below(c, 20000);
        for (uint64_t i = 0; i < n; i++)
            weft_cpu_relax();
        break;
    }
    case 1: { /* sleep up to 50 us: the OS runs someone else */
        struct timespec ts = {0, (long)weft__chaos_below(c, 50000)};
        nanosleep(&ts, NULL);
        break;
    }
    default:
        break;
    }
}
