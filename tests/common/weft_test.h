/*
 * weft_test.h: what every weft test shares, unit tests (which add weft_criterion.h) and
 * stress tests (stress.h) alike: the size scale, the leak check every test ends with
 * (WEFT_ASSERT_NO_LEAKS in weft_criterion.h, stress_pass in stress.h), and small helpers.
 */
#ifndef WEFT_TEST_H
#define WEFT_TEST_H

#include "base/sanitizer.h" /* WEFT__TSAN, WEFT__ASAN */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

/* Sizes scale with WEFT_TEST_SCALE (default 1; tools/stress raises it). Under TSan each
 * task stack alive at once costs a TSan fiber (a ~300 KB ThreadState, about 20 ms with
 * its page faults on this VM), so counts of tasks alive at once shrink by
 * `tsan_divisor`. */
static inline size_t weft_test_size(size_t n, size_t tsan_divisor) {
    const char *s = getenv("WEFT_TEST_SCALE");
    double scale = s ? atof(s) : 1.0;
    if (scale <= 0)
        scale = 1.0;
#if defined(WEFT__TSAN)
    n /= tsan_divisor ? tsan_divisor : 1;
#else
    (void)tsan_divisor;
#endif
    size_t scaled = (size_t)((double)n * scale);
    return scaled ? scaled : 1;
}

/* Every runtime destroyed, every stack unmapped, every runtime allocation freed. */
static inline int weft_test_leaks(char *why, size_t size) {
    weft_stats s;
    weft_stats_get(&s);
    snprintf(why, size, "runtimes %llu, stack bytes %llu, heap bytes %llu",
             (unsigned long long)s.runtimes, (unsigned long long)s.stack_bytes,
             (unsigned long long)s.heap_bytes);
    return s.runtimes != 0 || s.stack_bytes != 0 || s.heap_bytes != 0;
}

/* A "Field: N kB" line of /proc/self/status (VmSize, VmRSS, VmHWM...) in bytes, or 0 if
 * there is no such line. */
static inline size_t weft_test_proc_status_bytes(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0, len = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':' &&
            sscanf(line + len + 1, " %zu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib << 10;
}

static inline void weft_test_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif /* WEFT_TEST_H */
