/*
 * Shared harness for the C and C++ peers (Boost.Fiber, Boost.Context, oneTBB, OpenMP):
 * command line, monotonic clock, expected results, RSS, and the one output line.
 * The Go and Tokio peers implement the same rules in their own language.
 *
 * Command line:  --workload NAME --threads T [--size N]     (also --opt=value)
 *                --workload list   prints the supported workload names, one a line
 * Exit status:   0 ok, 1 wrong result, 2 usage error, 3 workload not supported by the peer.
 */
#ifndef WEFT_PEER_COMMON_H
#define WEFT_PEER_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

enum peer_workload {
    W_FIB, W_SKYNET, W_SPAWN_MANY, W_YIELD, W_SLEEPERS, W_TIMEOUTS, W_SWITCH,
    W_CHAN_PINGPONG, W_CHAN_MPMC, W_MUTEX_CONTENDED, W_MUTEX_YIELD, W_COUNT
};

static const char *const peer_workload_names[W_COUNT] = {
    "fib", "skynet", "spawn_many", "yield", "sleepers", "timeouts", "switch",
    "chan_pingpong", "chan_mpmc", "mutex_contended", "mutex_yield"
};

/* The main parameter of each workload as WORKLOADS.md sets it. */
static const uint64_t peer_default_size[W_COUNT] = {
    30, 1000000, 1000000, 5000000, 100000, 1000000, 10000000,
    1000000, 4000000, 4000000, 4000000
};

/* chan_mpmc's producers, consumers and capacity; the mutex workloads' tasks and how
 * often mutex_yield yields inside the critical section (WORKLOADS.md, round 2). */
enum {
    PEER_MPMC_PRODUCERS = 4, PEER_MPMC_CONSUMERS = 4, PEER_MPMC_CAPACITY = 1024,
    PEER_MUTEX_TASKS = 8, PEER_MUTEX_YIELD_EVERY = 100
};

struct peer_args {
    int workload;       /* enum peer_workload */
    const char *name;
    int threads;        /* worker threads T */
    uint64_t size;      /* main parameter */
};

static inline uint64_t peer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void peer_usage(const char *runtime)
{
    fprintf(stderr,
            "usage: peer-%s --workload NAME --threads T [--size N]\n"
            "       peer-%s --workload list\n", runtime, runtime);
    exit(2);
}

static inline int peer_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/*
 * Parses argv. supported[w] says whether this peer runs workload w; "--workload list"
 * prints those names and exits 0. An unsupported workload prints the skipped line
 * (with skip_reason[w]) and exits 3.
 */
static inline struct peer_args peer_parse(int argc, char **argv, const char *runtime,
                                          const int supported[W_COUNT],
                                          const char *const skip_reason[W_COUNT])
{
    struct peer_args a;
    const char *wl = NULL, *th = NULL, *sz = NULL;
    uint64_t v;
    int i;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], **slot = NULL, *val = NULL;
        size_t n = 0;
        if (!strncmp(arg, "--workload", n = 10)) slot = &wl;
        else if (!strncmp(arg, "--threads", n = 9)) slot = &th;
        else if (!strncmp(arg, "--size", n = 6)) slot = &sz;
        if (!slot) peer_usage(runtime);
        if (arg[n] == '=') val = arg + n + 1;
        else if (arg[n] == '\0' && i + 1 < argc) val = argv[++i];
        else peer_usage(runtime);
        *slot = val;
    }
    if (!wl)
        peer_usage(runtime);
    if (!strcmp(wl, "list")) {
        for (i = 0; i < W_COUNT; i++)
            if (supported[i])
                printf("%s\n", peer_workload_names[i]);
        exit(0);
    }
    a.workload = -1;
    for (i = 0; i < W_COUNT; i++)
        if (!strcmp(wl, peer_workload_names[i]))
            a.workload = i;
    if (a.workload < 0) {
        fprintf(stderr, "peer-%s: unknown workload '%s'\n", runtime, wl);
        exit(2);
    }
    a.name = peer_workload_names[a.workload];
    if (th) {
        if (peer_parse_u64(th, &v) || v < 1 || v > 4096) {
            fprintf(stderr, "peer-%s: bad --threads '%s'\n", runtime, th);
            exit(2);
        }
        a.threads = (int)v;
    } else {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        a.threads = n > 0 ? (int)n : 1;
    }
    a.size = peer_default_size[a.workload];
    if (sz) {
        if (peer_parse_u64(sz, &v) || v < 1) {
            fprintf(stderr, "peer-%s: bad --size '%s'\n", runtime, sz);
            exit(2);
        }
        a.size = v;
    }
    if (a.workload == W_FIB && a.size > 92) {
        fprintf(stderr, "peer-%s: fib n must be at most 92\n", runtime);
        exit(2);
    }
    if (a.workload == W_SKYNET) {
        uint64_t p = a.size;
        while (p % 10 == 0) p /= 10;
        if (p != 1) {
            fprintf(stderr, "peer-%s: skynet size must be a power of 10\n", runtime);
            exit(2);
        }
    }
    if (a.workload == W_CHAN_MPMC && a.size < 2 * PEER_MPMC_PRODUCERS) {
        fprintf(stderr, "peer-%s: chan_mpmc N must be at least %d\n", runtime,
                2 * PEER_MPMC_PRODUCERS);
        exit(2);
    }
    /* yield and the raw switch are single-thread workloads by definition. */
    if (a.workload == W_YIELD || a.workload == W_SWITCH)
        a.threads = 1;
    if (!supported[a.workload]) {
        printf("workload=%s runtime=%s skipped=%s\n", a.name, runtime,
               skip_reason[a.workload] ? skip_reason[a.workload] : "not supported");
        fflush(stdout);
        exit(3);
    }
    return a;
}

/* The correct result of workload w at size n (WORKLOADS.md). */
static inline uint64_t peer_expected(int w, uint64_t n)
{
    uint64_t a = 0, b = 1, t, i;
    switch (w) {
    case W_FIB:
        for (i = 0; i < n; i++) { t = a + b; a = b; b = t; }
        return a;
    case W_SKYNET: case W_SPAWN_MANY: case W_SLEEPERS:
        return n * (n - 1) / 2;
    case W_YIELD:
        return 2 * n;
    case W_CHAN_MPMC:
        t = n / PEER_MPMC_PRODUCERS;
        return PEER_MPMC_PRODUCERS * (t * (t - 1) / 2);
    default: /* timeouts: K cancelled timers; switch: N switches; chan_pingpong: R
              * round trips; mutex_*: M increments */
        return n;
    }
}

/* A "Vm..." line of /proc/self/status, in bytes (0 if unreadable). */
static inline uint64_t peer_proc_status_bytes(const char *key)
{
    char line[256];
    size_t klen = strlen(key);
    uint64_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            kb = strtoull(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}
static inline uint64_t peer_rss_now(void) { return peer_proc_status_bytes("VmRSS"); }
static inline uint64_t peer_rss_peak(void) { return peer_proc_status_bytes("VmHWM"); }

/*
 * Prints the result line; returns the exit status (0, or 1 for a wrong result).
 * extra may be NULL.
 */
static inline int peer_report(const struct peer_args *a, const char *runtime,
                              uint64_t t0_ns, uint64_t t1_ns, uint64_t result,
                              const char *extra)
{
    int ok = result == peer_expected(a->workload, a->size);
    printf("workload=%s runtime=%s threads=%d wall_ms=%.3f result=%s%llu%s%s\n", a->name,
           runtime, a->threads, (double)(t1_ns - t0_ns) / 1e6, ok ? "" : "WRONG:",
           (unsigned long long)result, extra ? " extra=" : "", extra ? extra : "");
    fflush(stdout);
    return ok ? 0 : 1;
}

/* extra=ns_per_switch=<float> */
static inline const char *peer_extra_ns_per_switch(char *buf, size_t n, uint64_t t0_ns,
                                                   uint64_t t1_ns, uint64_t switches)
{
    snprintf(buf, n, "ns_per_switch=%.2f",
             switches ? (double)(t1_ns - t0_ns) / (double)switches : 0.0);
    return buf;
}

/* extra=ns_per_round_trip=<float> (chan_pingpong) */
static inline const char *peer_extra_ns_per_round_trip(char *buf, size_t n, uint64_t t0_ns,
                                                       uint64_t t1_ns, uint64_t rounds)
{
    snprintf(buf, n, "ns_per_round_trip=%.1f",
             rounds ? (double)(t1_ns - t0_ns) / (double)rounds : 0.0);
    return buf;
}

/* extra=rss_bytes_per_task=<int>: (peak RSS - RSS before spawning) / tasks */
static inline const char *peer_extra_rss(char *buf, size_t n, uint64_t rss_before,
                                         uint64_t tasks)
{
    uint64_t peak = peer_rss_peak();
    uint64_t grown = peak > rss_before ? peak - rss_before : 0;
    snprintf(buf, n, "rss_bytes_per_task=%llu",
             (unsigned long long)(tasks ? grown / tasks : 0));
    return buf;
}

/* Task i of the sleepers workload sleeps this many milliseconds. */
static inline uint64_t peer_sleep_ms(uint64_t i) { return (i * 7919u) % 1000u; }

#ifdef __cplusplus
}
#endif

#endif
