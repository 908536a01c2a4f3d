/*
 * stress.h: the harness of the stress tests (tests/stress/stress_*.c): plain executables,
 * so that they also run under ThreadSanitizer, which Criterion cannot.
 *
 * What it gives a test, so that every run can be replayed:
 *   - a seed: `--seed S` (or `--seed=S`) on the command line, else the environment
 *     variable WEFT_STRESS_SEED, else a fixed default (STRESS_DEFAULT_SEED), so that
 *     ctest runs the same choices every time; tools/stress passes a fresh one each round.
 *     Decimal or 0x-hex.
 *   - deterministic random numbers derived from the seed: stress_rng_for(stream) gives
 *     an independent generator per thread, per task or per round (stream = its index),
 *     so a task draws the same numbers whichever worker runs it and whenever.
 *   - sizes scaled by WEFT_TEST_SCALE (weft_test_size, weft_test.h), optionally capped
 *     (stress_size_capped) where memory or max_tasks would not follow.
 *   - exact checks: STRESS_CHECK(cond, fmt, ...) prints ONE line and exits 1:
 *         FAIL stress_storm seed=123 chaos=77 scale=4: <reason> [stress_storm.c:88: cond]
 *     chaos= is the value of WEFT_CHAOS (the runtime's chaos-scheduling seed, which the
 *     runtime reads itself) and is left out when that is unset; scale= likewise. With
 *     those three values the run can be repeated (tools/stress prints the command line).
 *   - counters (stress_count) for the summary line printed by stress_pass():
 *         PASS stress_storm seed=123 chaos=77 scale=4 time=2.31s tasks=.. joins=.. ...
 *     tools/stress adds up the tasks= of these lines.
 *   - a watchdog: a test still running after WEFT_STRESS_TIMEOUT seconds (default 200
 *     times the scale, 0 = none) prints a FAIL line with its seed and counters and
 *     exits, so a hang is reported with the seed that found it, before ctest's kill;
 *     and a FAIL line on SIGABRT (and, without a sanitizer, SIGSEGV and SIGBUS) before
 *     the signal's default action.
 *
 * Header-only: one test is one translation unit.
 */
#ifndef WEFT_STRESS_H
#define WEFT_STRESS_H

#include "weft_test.h"

#include "base/atomic.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STRESS_DEFAULT_SEED 20261125u

/* Counters for the summary line. Only those that were counted are printed, except
 * tasks, which always is. */
typedef enum stress_counter {
    STRESS_TASKS,         /* task functions run */
    STRESS_JOINS,         /* joins that returned a result */
    STRESS_DETACHES,      /* handles detached */
    STRESS_FOREIGN,       /* spawns from threads that are not workers */
    STRESS_REFUSED,       /* spawns or arms refused as documented (ESHUTDOWN, ...) */
    STRESS_TIMEOUTS,      /* deadline joins that returned -ETIMEDOUT */
    STRESS_SLEEPS,        /* sleeps completed */
    STRESS_TIMER_FIRES,   /* timer callbacks run */
    STRESS_TIMER_CANCELS, /* weft_timer_cancel calls that returned 1 */
    STRESS_RUNTIMES,      /* runtimes created and destroyed */
    STRESS_STEALS,        /* steals reported by weft_runtime_stats_get */
    STRESS_INLINE_JOINS,  /* inline joins reported by weft_runtime_stats_get */
    STRESS_COUNTERS
} stress_counter;

static const char *const stress_counter_names[STRESS_COUNTERS] = {
    "tasks",  "joins",       "detaches",      "foreign_spawns", "refused", "timeouts",
    "sleeps", "timer_fires", "timer_cancels", "runtimes",       "steals",  "inline_joins",
};

static struct {
    const char *name;  /* the test's name, e.g. "stress_storm" */
    uint64_t seed;     /* the run's seed */
    const char *chaos; /* WEFT_CHAOS, or NULL */
    const char *scale; /* WEFT_TEST_SCALE, or NULL */
    uint64_t start_ns;
    weft__atomic_word counters[STRESS_COUNTERS];
    weft__atomic_word counted[STRESS_COUNTERS]; /* set once a counter was used */
    char crash_line[256];                      /* "FAIL <identity>: " for the signal handler */
} stress_g;

static inline uint64_t stress_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "seed=123 chaos=77 scale=4": what replays the run. */
static inline void stress_print_identity(FILE *f) {
    fprintf(f, "%s seed=%" PRIu64, stress_g.name ? stress_g.name : "stress", stress_g.seed);
    if (stress_g.chaos)
        fprintf(f, " chaos=%s", stress_g.chaos);
    if (stress_g.scale)
        fprintf(f, " scale=%s", stress_g.scale);
}

static inline void stress_print_counters(FILE *f) {
    for (int i = 0; i < STRESS_COUNTERS; i++)
        if (i == STRESS_TASKS || weft__atomic_load_acquire(&stress_g.counted[i]))
            fprintf(f, " %s=%lu", stress_counter_names[i],
                    (unsigned long)weft__atomic_load_acquire(&stress_g.counters[i]));
}

/* The failure line, then exit(1) without atexit handlers: other threads (workers, a
 * runtime in the middle of anything) may still run, and must not take part in the exit.
 * Callable from any thread, tasks and timer callbacks included. */
__attribute__((noreturn, format(printf, 3, 4))) static inline void
stress_fail_at(const char *where, const char *cond, const char *fmt, ...) {
    fflush(stdout);
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    flockfile(stderr);
    fputs("FAIL ", stderr);
    stress_print_identity(stderr);
    fprintf(stderr, ": %s [%s%s%s]\n", reason, where, cond ? ": " : "", cond ? cond : "");
    funlockfile(stderr);
    fflush(stderr);
    _Exit(1);
}

#if defined(__FILE_NAME__)
#define STRESS_FILE __FILE_NAME__
#else
#define STRESS_FILE __FILE__
#endif
#define STRESS_STR2(x) #x
#define STRESS_STR(x)  STRESS_STR2(x)
#define STRESS_WHERE   STRESS_FILE ":" STRESS_STR(__LINE__)

/* Fails the test with the formatted reason unless cond holds. */
#define STRESS_CHECK(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            stress_fail_at(STRESS_WHERE, #cond, __VA_ARGS__);                                      \
    } while (0)

#define STRESS_FAIL(...) stress_fail_at(STRESS_WHERE, NULL, __VA_ARGS__)

static inline void stress_count(stress_counter c, uint64_t n) {
    if (!weft__atomic_load_relaxed(&stress_g.counted[c]))
        weft__atomic_store_release(&stress_g.counted[c], 1);
    weft__atomic_fetch_add_relaxed(&stress_g.counters[c], (AO_t)n);
}

static inline uint64_t stress_counter_value(stress_counter c) {
    return weft__atomic_load_acquire(&stress_g.counters[c]);
}

/* ---- Random numbers ------------------------------------------------------------- */

/* splitmix64's finaliser: a bijection that mixes every bit. */
static inline uint64_t stress_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A value fixed by the seed and (a, b): for checks that recompute what a task returned. */
static inline uint64_t stress_hash(uint64_t a, uint64_t b) {
    return stress_mix(stress_mix(stress_g.seed ^ 0x6a09e667f3bcc909ull) ^ stress_mix(a) ^
                      stress_mix(b + 0x3c6ef372fe94f82bull));
}

typedef struct stress_rng {
    uint64_t state;
} stress_rng;

/* An independent generator for stream `stream` (a thread, a task, a round) of this seed. */
static inline stress_rng stress_rng_for(uint64_t stream) {
    return (stress_rng){stress_hash(stream, 0x5bd1e995u)};
}

static inline uint64_t stress_next(stress_rng *r) { /* splitmix64 */
    return stress_mix(r->state += 0x9e3779b97f4a7c15ull);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t stress_below(stress_rng *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)stress_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t stress_between(stress_rng *r, uint64_t lo, uint64_t hi) {
    return lo + stress_below(r, hi - lo + 1);
}

/* True with probability num/den. */
static inline bool stress_chance(stress_rng *r, uint64_t num, uint64_t den) {
    return stress_below(r, den) < num;
}

/* ---- Sizes ------------------------------------------------------------------------ */

/* weft_test_size (WEFT_TEST_SCALE, shrunk by tsan_divisor under TSan). */
static inline size_t stress_size(size_t n, size_t tsan_divisor) {
    return weft_test_size(n, tsan_divisor);
}

/* The same, at most `cap`: for sizes that memory or max_tasks bound. */
static inline size_t stress_size_capped(size_t n, size_t tsan_divisor, size_t cap) {
    size_t s = weft_test_size(n, tsan_divisor);
    return s < cap ? s : cap;
}

static inline bool stress_under_tsan(void) {
#if defined(WEFT__TSAN)
    return true;
#else
    return false;
#endif
}

static inline bool stress_under_sanitizer(void) {
#if defined(WEFT__TSAN) || defined(WEFT__ASAN)
    return true;
#else
    return false;
#endif
}

/* ---- Start and end ---------------------------------------------------------------- */

static inline void *stress_watchdog(void *arg) {
    uint64_t seconds = (uint64_t)(uintptr_t)arg;
    uint64_t end = stress_g.start_ns + seconds * 1000000000u;
    while (stress_now_ns() < end)
        weft_test_sleep_ms(250);
    fflush(stdout);
    flockfile(stderr);
    fputs("FAIL ", stderr);
    stress_print_identity(stderr);
    fprintf(stderr, ": still running after %" PRIu64 " s (WEFT_STRESS_TIMEOUT); so far:", seconds);
    stress_print_counters(stderr);
    fputc('\n', stderr);
    funlockfile(stderr);
    fflush(stderr);
    _Exit(1);
}

/* A fatal signal (an abort from a failed assertion or weft's stack-overflow report, a
 * crash) still names the seed: the FAIL line, then the default action. Async-signal-safe:
 * the line was formatted by stress_begin. */
static inline void stress_on_fatal_signal(int sig) {
    const char *what = sig == SIGABRT   ? "aborted (SIGABRT); see the lines above\n"
                       : sig == SIGSEGV ? "crashed (SIGSEGV)\n"
                       : sig == SIGBUS  ? "crashed (SIGBUS)\n"
                                        : "killed by a signal\n";
    ssize_t r = write(2, stress_g.crash_line, strlen(stress_g.crash_line));
    r = write(2, what, strlen(what));
    (void)r;
    signal(sig, SIG_DFL);
    raise(sig);
}

static inline void stress_install_crash_handlers(void) {
    snprintf(stress_g.crash_line, sizeof stress_g.crash_line,
             "FAIL %s seed=%" PRIu64 "%s%s%s%s: ", stress_g.name, stress_g.seed,
             stress_g.chaos ? " chaos=" : "", stress_g.chaos ? stress_g.chaos : "",
             stress_g.scale ? " scale=" : "", stress_g.scale ? stress_g.scale : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stress_on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigaction(SIGABRT, &sa, NULL);
#if !defined(WEFT__ASAN) && !defined(WEFT__TSAN)
    /* Installed before any runtime: weft hands the faults that are not a task's stack
     * overflow on to it. (The sanitizers keep their own, which report better.) */
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
#endif
}

static inline uint64_t stress_parse_u64(const char *what, const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end != '\0') {
        fprintf(stderr, "%s: %s '%s' is not a number\n", stress_g.name, what, s);
        exit(2);
    }
    return (uint64_t)v;
}

/* Reads the seed (and strips `--seed S` from argv, so that a test may read positional
 * arguments of its own), starts the watchdog, prints the run's identity line. Returns
 * the new argc. */
static inline int stress_begin(const char *name, int argc, char **argv) {
    stress_g.name = name;
    stress_g.start_ns = stress_now_ns();
    stress_g.seed = STRESS_DEFAULT_SEED;
    const char *env = getenv("WEFT_STRESS_SEED");
    if (env && *env)
        stress_g.seed = stress_parse_u64("WEFT_STRESS_SEED", env);
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            stress_g.seed = stress_parse_u64("--seed", argv[++i]);
        else if (strncmp(argv[i], "--seed=", 7) == 0)
            stress_g.seed = stress_parse_u64("--seed", argv[i] + 7);
        else
            argv[kept++] = argv[i];
    }
    if (argc > 0)
        argv[kept] = NULL;
    const char *chaos = getenv("WEFT_CHAOS");
    stress_g.chaos = chaos && *chaos ? chaos : NULL;
    const char *scale = getenv("WEFT_TEST_SCALE");
    stress_g.scale = scale && *scale ? scale : NULL;
    stress_install_crash_handlers();

    double factor = scale ? atof(scale) : 1.0;
    if (factor < 1.0)
        factor = 1.0;
    uint64_t limit = (uint64_t)(200.0 * factor);
    const char *timeout = getenv("WEFT_STRESS_TIMEOUT");
    if (timeout && *timeout)
        limit = stress_parse_u64("WEFT_STRESS_TIMEOUT", timeout);
    if (limit) {
        pthread_t watchdog;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&watchdog, &attr, stress_watchdog, (void *)(uintptr_t)limit) != 0)
            fprintf(stderr, "%s: no watchdog thread (hangs go to ctest's timeout)\n", name);
        pthread_attr_destroy(&attr);
    }
    printf("START ");
    stress_print_identity(stdout);
    printf("%s\n", stress_under_tsan() ? " (tsan: sizes shrunk)" : "");
    fflush(stdout);
    return kept;
}

/* A progress or result line of the test, prefixed with its name. */
__attribute__((format(printf, 1, 2))) static inline void stress_note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    flockfile(stdout);
    printf("%s: ", stress_g.name);
    vprintf(fmt, ap);
    putchar('\n');
    funlockfile(stdout);
    va_end(ap);
    fflush(stdout);
}

/* Seconds since stress_begin. */
static inline double stress_elapsed_s(void) {
    return (double)(stress_now_ns() - stress_g.start_ns) / 1e9;
}

/* Checks that nothing leaked (every runtime destroyed), prints the summary line, and
 * returns the exit status for main. */
static inline int stress_pass(void) {
    char why[160];
    STRESS_CHECK(!weft_test_leaks(why, sizeof why), "weft leaked: %s", why);
    flockfile(stdout);
    fputs("PASS ", stdout);
    stress_print_identity(stdout);
    printf(" time=%.2fs", stress_elapsed_s());
    stress_print_counters(stdout);
    putchar('\n');
    funlockfile(stdout);
    fflush(stdout);
    return 0;
}

/* ---- Helpers many tests share ------------------------------------------------------- */

/* Spins (without yielding the worker) for about ns nanoseconds: work of a known length
 * that keeps its worker busy, so that others must steal. */
static inline void stress_spin_ns(uint64_t ns) {
    uint64_t end = stress_now_ns() + ns;
    while (stress_now_ns() < end)
        weft__cpu_relax();
}

/* The calling thread's identity among those that ran tasks: 0, 1, 2, ... in the order
 * the threads first asked. For tests that check which workers ran something. Not
 * inlined: a task may move to another thread at any park, and a thread-local address
 * computed before the park must not be reused after it. */
static _Thread_local int stress_thread_slot = -1;
static weft__atomic_word stress_thread_slots;

__attribute__((noinline, unused)) static int stress_thread_index(void) {
    if (stress_thread_slot < 0)
        stress_thread_slot = (int)weft__atomic_fetch_add_full(&stress_thread_slots, 1);
    return stress_thread_slot;
}

#endif /* WEFT_STRESS_H */
