/*
 * metrics.h: a worker's counters and histograms for weft_runtime_stats_get and
 * weft_worker_stats_get (weft.h, "Metrics"), cheap enough to stay on: each is written by
 * its worker's thread alone (a relaxed load and store, no RMW, no shared cache line:
 * the block sits in the worker object) and read relaxed by anyone for a report, so a
 * report taken while tasks run is approximate, and exact once the runtime is quiet.
 *
 * Timing uses base/ticks.h (rdtsc / cntvct), once per pass through the scheduler's
 * run(): a run slice is the time from the scheduler handing its thread to a task until
 * it hands it to the next one or runs dry (the scheduler's few instructions in between
 * included; tasks that yield to each other directly stay in one slice: the scheduler did
 * not get control, which is what a hogged worker means). Scheduling
 * delays (runnable to running) are sampled: one schedule in WEFT__DELAY_SAMPLE_EVERY on
 * each worker stamps the task, as Go samples its scheduling latencies, because a stamp
 * on every wake-up would cost a counter read on the waker's side of every wake.
 */
#ifndef WEFT__SCHED_METRICS_H
#define WEFT__SCHED_METRICS_H

#include "base/atomic.h"
#include "base/ticks.h"

#include "weft.h"

#include <stdint.h>

#define WEFT__DELAY_SAMPLE_EVERY 8

typedef struct weft__worker_metrics {
    weft__atomic_word busy_ticks;     /* in run slices */
    weft__atomic_word slices;         /* run slices */
    weft__atomic_word slices_long;    /* of which longer than the runtime's threshold */
    weft__atomic_word parks;          /* parks of the worker's thread (driver park) */
    weft__atomic_word steal_attempts; /* victims probed */
    weft__atomic_word delay_samples;  /* sampled scheduling delays */
    weft__atomic_word slice_histogram[WEFT_HISTOGRAM_BUCKETS];
    weft__atomic_word delay_histogram[WEFT_HISTOGRAM_BUCKETS];
} weft__worker_metrics;

/* Owner only: one more. */
static inline void weft__metric_add(weft__atomic_word *counter, AO_t n) {
    weft__atomic_store_relaxed(counter, weft__atomic_load_relaxed(counter) + n);
}

/* The bucket of a duration in ns (weft.h: WEFT_HISTOGRAM_BUCKETS). */
static inline unsigned weft__histogram_bucket(uint64_t ns) {
    if (ns < ((uint64_t)1 << 10))
        return 0;
    unsigned log2 = 63u - (unsigned)__builtin_clzll(ns);
    unsigned bucket = log2 - 9;
    return bucket < WEFT_HISTOGRAM_BUCKETS ? bucket : WEFT_HISTOGRAM_BUCKETS - 1;
}

#endif /* WEFT__SCHED_METRICS_H */
