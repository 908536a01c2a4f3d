/*
 * fib.c: recursive fork-join, and the short benchmark table of tools/demo.
 *
 *     fib [n [runs]]      (default: n = 27, 3 runs)
 *
 * fib(n) spawns a task for fib(n-1), computes fib(n-2) itself and joins: about
 * 1.6 * fib(n) tasks. The table gives the median wall time over `runs` runs for 1, 2,
 * 4, ... workers up to the number of online CPUs, the speedup over one worker, and the
 * cost per spawn+join. The full comparison with other runtimes is bench/'s job.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>

static void *fib(void *arg) {
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return (void *)n;
    weft_task *t = weft_spawn(fib, (void *)(n - 1));
    if (!t)
        abort(); /* cannot happen below the default max_tasks for n <= 40 */
    intptr_t b = (intptr_t)fib((void *)(n - 2));
    void *a;
    weft_join(t, &a);
    return (void *)((intptr_t)a + b);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double tasks_for(intptr_t n) { /* spawns made by fib(n): S(n) = S(n-1) + S(n-2) + 1 */
    double a = 0, b = 0;              /* S(0), S(1) */
    for (intptr_t i = 2; i <= n; i++) {
        double c = a + b + 1;
        a = b;
        b = c;
    }
    return n < 2 ? 0 : b;
}

int main(int argc, char **argv) {
    intptr_t n = argc > 1 ? atoi(argv[1]) : 27;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (n < 0 || n > 40 || runs < 1 || runs > 100) {
        fprintf(stderr, "usage: fib [n (0..40) [runs (1..100)]]\n");
        return 2;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double spawns = tasks_for(n);
    printf("fib(%ld): %.0f spawns, median of %d runs\n", (long)n, spawns, runs);
    printf("%8s %12s %9s %14s\n", "workers", "wall ms", "speedup", "ns/spawn+join");
    double base = 0;
    for (long workers = 1; workers <= cpus; workers *= 2) {
        double times[100];
        for (int r = 0; r < runs; r++) {
            weft_runtime *rt;
            if (weft_runtime_create(&(weft_config){.workers = (unsigned)workers}, &rt) != 0)
                return 1;
            void *result;
            double start = now_seconds();
            int rc = weft_block_on(rt, fib, (void *)n, &result);
            times[r] = now_seconds() - start;
            weft_runtime_destroy(rt);
            if (rc != 0) {
                fprintf(stderr, "fib: weft_block_on failed (%d)\n", rc);
                return 1;
            }
            (void)result;
        }
        qsort(times, (size_t)runs, sizeof(double), compare);
        double median = times[runs / 2];
        if (workers == 1)
            base = median;
        printf("%8ld %12.2f %8.2fx %14.1f\n", workers, median * 1e3, base / median,
               spawns > 0 ? median * 1e9 / spawns : 0.0);
        if (workers < cpus && workers * 2 > cpus)
            workers = cpus / 2; /* end on the CPU count itself */
    }
    return 0;
}
