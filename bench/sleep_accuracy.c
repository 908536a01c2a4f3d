/*
 * weft-sleep-accuracy (bench/sleep_accuracy.c): how late weft_sleep_until wakes, for
 * sleeps from 1 ms to 1 s.
 *
 * K tasks (default 32) loop for the run's length: each draws a duration log-uniformly
 * in [1 ms, 1 s] from a fixed-seed generator, sleeps until now + duration, and records
 * the lateness (wake time - deadline). A wake before the deadline is a failure (exit 1).
 * The same is measured for a plain thread in clock_nanosleep(TIMER_ABSTIME) as the
 * machine's floor: a parked worker cannot wake sooner than the kernel wakes a thread.
 *
 *   weft-sleep-accuracy [--seconds S] [--tasks K] [--threads T] [--short]
 *
 * Prints, per runtime and per decade of duration and overall, one line in the format
 * of bench/WORKLOADS.md:
 *   workload=sleep_accuracy runtime=weft threads=2 range=1ms-1s samples=... wall_ms=...
 *   result=0 extra=median_us=..,p99_us=..,max_us=..
 * where result is the number of early wake-ups (always 0, or the run fails).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

typedef struct sample {
    uint64_t duration_ns, late_ns;
} sample;

typedef struct sampler {
    uint64_t seed;
    uint64_t until_ns; /* stop drawing new sleeps after this */
    sample *samples;
    size_t count, capacity;
    int early;
    int use_thread; /* clock_nanosleep instead of weft_sleep_until */
} sampler;

static uint64_t next_random(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Log-uniform in [1 ms, 1 s]. */
static uint64_t draw_duration(uint64_t *s) {
    double u = (double)(next_random(s) >> 11) / 9007199254740992.0;
    return (uint64_t)(1e6 * pow(1000.0, u));
}

static void sleep_thread_until(uint64_t deadline) {
    struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void *sample_loop(void *arg) {
    sampler *s = arg;
    while (weft_now() < s->until_ns && s->count < s->capacity) {
        uint64_t duration = draw_duration(&s->seed);
        uint64_t deadline = weft_now() + duration;
        if (s->use_thread)
            sleep_thread_until(deadline);
        else if (weft_sleep_until(deadline) != 0)
            abort();
        uint64_t now = weft_now();
        if (now < deadline) {
            s->early++;
            continue;
        }
        s->samples[s->count++] = (sample){duration, now - deadline};
    }
    return NULL;
}

typedef struct run_args {
    sampler *samplers;
    int count;
} run_args;

static void *weft_main(void *arg) {
    run_args *a = arg;
    weft_task *tasks[a->count];
    for (int i = 0; i < a->count; i++)
        if (!(tasks[i] = weft_spawn(sample_loop, &a->samplers[i])))
            abort();
    for (int i = 0; i < a->count; i++)
        weft_join(tasks[i], NULL);
    return NULL;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Prints one line for the samples with duration in [lo, hi). */
static void report(const char *runtime, unsigned threads, const char *range, sampler *ss, int k,
                   uint64_t lo, uint64_t hi, double wall_ms, int early) {
    size_t n = 0;
    for (int i = 0; i < k; i++)
        n += ss[i].count;
    uint64_t *late = malloc((n ? n : 1) * sizeof(*late));
    size_t m = 0;
    for (int i = 0; i < k; i++)
        for (size_t j = 0; j < ss[i].count; j++)
            if (ss[i].samples[j].duration_ns >= lo && ss[i].samples[j].duration_ns < hi)
                late[m++] = ss[i].samples[j].late_ns;
    if (m == 0) {
        free(late);
        return;
    }
    qsort(late, m, sizeof(*late), compare_u64);
    printf("workload=sleep_accuracy runtime=%s threads=%u range=%s samples=%zu wall_ms=%.1f "
           "result=%d extra=median_us=%.1f,p99_us=%.1f,max_us=%.1f\n",
           runtime, threads, range, m, wall_ms, early, late[m / 2] / 1e3, late[m * 99 / 100] / 1e3,
           late[m - 1] / 1e3);
    free(late);
}

static int measure(int use_thread, unsigned threads, int k, double seconds) {
    sampler *ss = calloc((size_t)k, sizeof(*ss));
    uint64_t start = weft_now();
    for (int i = 0; i < k; i++) {
        ss[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        ss[i].until_ns = start + (uint64_t)(seconds * 1e9);
        ss[i].capacity = (size_t)(seconds * 1000) + 16; /* at most one sleep per ms */
        ss[i].samples = calloc(ss[i].capacity, sizeof(sample));
        ss[i].use_thread = use_thread;
    }
    if (use_thread) {
        pthread_t th[k];
        for (int i = 0; i < k; i++)
            pthread_create(&th[i], NULL, sample_loop, &ss[i]);
        for (int i = 0; i < k; i++)
            pthread_join(th[i], NULL);
    } else {
        run_args a = {ss, k};
        weft_config cfg = {.workers = threads};
        int rc = weft_run(&cfg, weft_main, &a, NULL);
        if (rc != 0) {
            fprintf(stderr, "weft-sleep-accuracy: weft_run: %s\n", strerror(-rc));
            return 2;
        }
    }
    double wall_ms = (double)(weft_now() - start) / 1e6;
    int early = 0;
    for (int i = 0; i < k; i++)
        early += ss[i].early;
    const char *name = use_thread ? "thread" : "weft";
    unsigned t = use_thread ? (unsigned)k : threads;
    report(name, t, "1ms-10ms", ss, k, 1000000u, 10000000u, wall_ms, early);
    report(name, t, "10ms-100ms", ss, k, 10000000u, 100000000u, wall_ms, early);
    report(name, t, "100ms-1s", ss, k, 100000000u, 1000000001u, wall_ms, early);
    report(name, t, "1ms-1s", ss, k, 0, UINT64_MAX, wall_ms, early);
    for (int i = 0; i < k; i++)
        free(ss[i].samples);
    free(ss);
    if (early) {
        fprintf(stderr, "weft-sleep-accuracy: %s: %d sleeps woke early\n", name, early);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    double seconds = 10;
    int tasks = 32;
    unsigned threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--short"))
            seconds = 3;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tasks") && i + 1 < argc)
            tasks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: weft-sleep-accuracy [--seconds S] [--tasks K] [--threads T] "
                            "[--short]\n");
            return 2;
        }
    }
    if (seconds <= 0 || tasks < 1 || tasks > 1024) {
        fprintf(stderr, "weft-sleep-accuracy: bad --seconds or --tasks\n");
        return 2;
    }
    int rc = measure(0, threads, tasks, seconds);
    int rc_thread = measure(1, threads, tasks, seconds);
    return rc ? rc : rc_thread;
}
