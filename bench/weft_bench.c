/*
 * weft-bench: the workloads of bench/WORKLOADS.md on
 * weft, each result checked, printed in the one-line format every runtime uses:
 *
 *   workload=<name> runtime=weft threads=<T> wall_ms=<float> result=<value> [extra=...]
 *
 *   weft-bench [--workload fib,skynet,...|all|list] [--threads T] [--runs R] [--size N]
 *              [--short]
 *
 * --threads: worker threads (default: online CPUs). yield and switch always use one.
 * --size overrides the workload's main parameter (fib n, skynet size (a power of 10),
 * spawn_many N, yield Y, sleepers S, timeouts K, switch count); --short runs every
 * workload once at small sizes (tools/demo's table). Each run prints one line; a wrong
 * result prints result=WRONG:<value> and the program exits 1.
 *
 * Timing: wall_ms runs from just before the first spawn to just after the last join,
 * inside the runtime, as the peers (bench/peers) measure it: runtime start-up and
 * shutdown are not counted.
 *
 * `switch` is weft's raw stack switch (runtime/arch), the floor for `yield`: two
 * contexts ping-pong on their own stacks without a scheduler. It needs the internal
 * header, so weft-bench links the static library.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/context.h"
#include "weft.h"

typedef struct run {
    unsigned threads;
    uint64_t size;
    uint64_t start_ns, end_ns; /* the timed region, set by the workload */
    uint64_t result;
    char extra[96];
} run;

static uint64_t now_ns(void) {
    return weft_now();
}

/* ---- fib ------------------------------------------------------------------------ */

static void *fib_task(void *arg) {
    uint64_t n = (uint64_t)(uintptr_t)arg;
    if (n < 2)
        return arg;
    weft_task *t = weft_spawn(fib_task, (void *)(uintptr_t)(n - 1));
    if (!t)
        abort();
    uint64_t b = (uint64_t)(uintptr_t)fib_task((void *)(uintptr_t)(n - 2));
    void *a;
    if (weft_join(t, &a) != 0)
        abort();
    return (void *)(uintptr_t)((uint64_t)(uintptr_t)a + b);
}

static void *fib_main(void *arg) {
    run *r = arg;
    r->start_ns = now_ns();
    r->result = (uint64_t)(uintptr_t)fib_task((void *)(uintptr_t)r->size);
    r->end_ns = now_ns();
    return NULL;
}

static uint64_t fib_expected(uint64_t n) {
    uint64_t a = 0, b = 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t c = a + b;
        a = b;
        b = c;
    }
    return a;
}

/* ---- skynet ----------------------------------------------------------------------- */

/* The argument packs num (up to 2^56) and log10(size) (the low 8 bits): no allocation. */
static void *skynet_task(void *arg) {
    uint64_t packed = (uint64_t)(uintptr_t)arg;
    uint64_t num = packed >> 8;
    unsigned exponent = (unsigned)(packed & 0xff);
    if (exponent == 0)
        return (void *)(uintptr_t)num;
    uint64_t child_size = 1;
    for (unsigned i = 1; i < exponent; i++)
        child_size *= 10;
    weft_task *children[10];
    for (uint64_t i = 0; i < 10; i++) {
        uint64_t child = ((num + i * child_size) << 8) | (exponent - 1);
        if (!(children[i] = weft_spawn(skynet_task, (void *)(uintptr_t)child)))
            abort();
    }
    /* Newest first: a worker's deque is LIFO, so the child spawned last is the one a
     * join can run inline on this stack (weft.h, WEFT_CONFIG_NO_INLINE_JOIN); joining
     * in spawn order would park on child 0 while 1 to 9 wait behind it. */
    uint64_t sum = 0;
    for (int i = 9; i >= 0; i--) {
        void *v;
        if (weft_join(children[i], &v) != 0)
            abort();
        sum += (uint64_t)(uintptr_t)v;
    }
    return (void *)(uintptr_t)sum;
}

static void *skynet_main(void *arg) {
    run *r = arg;
    unsigned exponent = 0;
    for (uint64_t s = r->size; s > 1; s /= 10)
        exponent++;
    r->start_ns = now_ns();
    r->result = (uint64_t)(uintptr_t)skynet_task((void *)(uintptr_t)exponent);
    r->end_ns = now_ns();
    return NULL;
}

/* ---- spawn_many ------------------------------------------------------------------- */

static void *return_index(void *arg) {
    return arg;
}

/* Spawns fn(i) for i in [0, n), then joins them all in order: the sum of the results.
 * The timed region of r runs from the first spawn to the last join. */
static uint64_t spawn_then_join_all(run *r, weft_fn fn, uint64_t n) {
    weft_task **tasks = malloc(n * sizeof(*tasks));
    if (!tasks)
        abort();
    r->start_ns = now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (!(tasks[i] = weft_spawn(fn, (void *)(uintptr_t)i)))
            abort();
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        void *v;
        if (weft_join(tasks[i], &v) != 0)
            abort();
        sum += (uint64_t)(uintptr_t)v;
    }
    r->end_ns = now_ns();
    free(tasks);
    return sum;
}

static void *spawn_many_main(void *arg) {
    run *r = arg;
    r->result = spawn_then_join_all(r, return_index, r->size);
    return NULL;
}

/* ---- yield ------------------------------------------------------------------------ */

static void *yielder(void *arg) {
    uint64_t count = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < count; i++)
        weft_yield();
    return arg;
}

static void *yield_main(void *arg) {
    run *r = arg;
    r->start_ns = now_ns();
    weft_task *a = weft_spawn(yielder, (void *)(uintptr_t)r->size);
    weft_task *b = weft_spawn(yielder, (void *)(uintptr_t)r->size);
    if (!a || !b)
        abort();
    void *x, *y;
    if (weft_join(a, &x) != 0 || weft_join(b, &y) != 0)
        abort();
    r->end_ns = now_ns();
    r->result = (uint64_t)(uintptr_t)x + (uint64_t)(uintptr_t)y;
    snprintf(r->extra, sizeof r->extra, "ns_per_switch=%.2f",
             (double)(r->end_ns - r->start_ns) / (double)r->result);
    return NULL;
}

/* ---- sleepers --------------------------------------------------------------------- */

static void *sleeper(void *arg) {
    uint64_t i = (uint64_t)(uintptr_t)arg;
    if (weft_sleep_ms(i * 7919 % 1000) != 0)
        abort();
    return arg;
}

/* Resident set now (VmRSS) or at its peak (VmHWM), in bytes. */
static uint64_t rss_bytes(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kib = 0;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, len) && sscanf(line + len, " %llu", &kib) == 1)
            break;
    fclose(f);
    return (uint64_t)kib * 1024;
}

static void *sleepers_main(void *arg) {
    run *r = arg;
    uint64_t rss_before = rss_bytes("VmRSS:");
    r->result = spawn_then_join_all(r, sleeper, r->size);
    uint64_t peak = rss_bytes("VmHWM:");
    snprintf(r->extra, sizeof r->extra, "rss_bytes_per_task=%llu",
             (unsigned long long)(peak > rss_before ? (peak - rss_before) / r->size : 0));
    return NULL;
}

/* ---- timeouts --------------------------------------------------------------------- */

static void never_called(weft_timer *timer, void *arg) {
    (void)timer;
    (void)arg;
    abort(); /* every timer is cancelled 10 s before it could fire */
}

/* One task per worker: arm a 10 s timer, cancel it, count the cancels that stopped it. */
static void *arm_and_cancel(void *arg) {
    uint64_t count = (uint64_t)(uintptr_t)arg;
    weft_timer *timer;
    if (weft_timer_create(weft_runtime_current(), never_called, NULL, &timer) != 0)
        abort();
    uint64_t cancelled = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (weft_timer_arm(timer, weft_now() + 10000000000ull) != 0)
            abort();
        cancelled += (uint64_t)weft_timer_cancel(timer);
    }
    weft_timer_destroy(timer);
    return (void *)(uintptr_t)cancelled;
}

static void *timeouts_main(void *arg) {
    run *r = arg;
    weft_task *tasks[r->threads];
    r->start_ns = now_ns();
    for (unsigned i = 0; i < r->threads; i++) {
        uint64_t share = r->size / r->threads + (i < r->size % r->threads);
        if (!(tasks[i] = weft_spawn(arm_and_cancel, (void *)(uintptr_t)share)))
            abort();
    }
    uint64_t sum = 0;
    for (unsigned i = 0; i < r->threads; i++) {
        void *v;
        if (weft_join(tasks[i], &v) != 0)
            abort();
        sum += (uint64_t)(uintptr_t)v;
    }
    r->end_ns = now_ns();
    r->result = sum;
    return NULL;
}

/* ---- switch: the raw stack switch, no scheduler ------------------------------------ */

static weft__context main_context, ping_context;
static uint64_t switch_rounds;

static void ping_entry(void *value) {
    (void)value;
    for (;;)
        weft__context_switch(&ping_context, main_context, NULL);
}

static void run_switch(run *r) {
    size_t size = 64 << 10;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        abort();
    ping_context = weft__context_make((char *)stack + size, ping_entry);
    switch_rounds = r->size / 2; /* each round is two switches: there and back */
    r->start_ns = now_ns();
    for (uint64_t i = 0; i < switch_rounds; i++)
        weft__context_switch(&main_context, ping_context, NULL);
    r->end_ns = now_ns();
    r->result = switch_rounds * 2;
    snprintf(r->extra, sizeof r->extra, "ns_per_switch=%.2f",
             (double)(r->end_ns - r->start_ns) / (double)r->result);
    munmap(stack, size);
}

/* ---- driver ----------------------------------------------------------------------- */

typedef struct workload {
    const char *name;
    weft_fn main;                     /* NULL: runs outside a runtime */
    uint64_t size, short_size;        /* WORKLOADS.md's parameter, and --short's */
    uint64_t (*expected)(uint64_t n); /* the correct result for size n */
    int one_thread;                   /* always T = 1 */
} workload;

static uint64_t triangle(uint64_t n) {
    return n * (n - 1) / 2;
}
static uint64_t twice(uint64_t n) {
    return 2 * n;
}
static uint64_t same(uint64_t n) {
    return n;
}
static uint64_t even(uint64_t n) {
    return n / 2 * 2;
}

static const workload workloads[] = {
    {"fib", fib_main, 30, 25, fib_expected, 0},
    {"skynet", skynet_main, 1000000, 100000, triangle, 0},
    {"spawn_many", spawn_many_main, 1000000, 100000, triangle, 0},
    {"yield", yield_main, 5000000, 500000, twice, 1},
    {"sleepers", sleepers_main, 100000, 10000, triangle, 0},
    {"timeouts", timeouts_main, 1000000, 100000, same, 0},
    {"switch", NULL, 10000000, 1000000, even, 1},
};
enum { WORKLOAD_COUNT = sizeof workloads / sizeof workloads[0] };

static int run_once(const workload *wl, unsigned threads, uint64_t size) {
    run r = {.threads = wl->one_thread ? 1 : threads, .size = size};
    if (wl->main) {
        weft_config cfg = {.workers = r.threads};
        if (size + 16 > WEFT_DEFAULT_MAX_TASKS)
            cfg.max_tasks = size + 16; /* spawn_many holds N handles at once */
        int rc = weft_run(&cfg, wl->main, &r, NULL);
        if (rc != 0) {
            fprintf(stderr, "weft-bench: %s: weft_run: %s\n", wl->name, strerror(-rc));
            return 1;
        }
    } else {
        run_switch(&r);
    }
    uint64_t want = wl->expected(size);
    int right = r.result == want;
    printf("workload=%s runtime=weft threads=%u wall_ms=%.3f result=%s%llu%s%s\n", wl->name,
           r.threads, (double)(r.end_ns - r.start_ns) / 1e6,
           right ? "" : "WRONG:", (unsigned long long)r.result, r.extra[0] ? " extra=" : "",
           r.extra);
    fflush(stdout);
    if (!right)
        fprintf(stderr, "weft-bench: %s: result %llu, expected %llu\n", wl->name,
                (unsigned long long)r.result, (unsigned long long)want);
    return right ? 0 : 1;
}

static int usage(void) {
    fprintf(stderr, "usage: weft-bench [--workload NAME[,NAME...]|all|list] [--threads T] "
                    "[--runs R] [--size N] [--short]\n");
    return 2;
}

static const workload *find(const char *name, size_t len) {
    for (int i = 0; i < WORKLOAD_COUNT; i++)
        if (strlen(workloads[i].name) == len && !strncmp(workloads[i].name, name, len))
            return &workloads[i];
    return NULL;
}

static int valid_size(const workload *wl, uint64_t size) {
    if (!strcmp(wl->name, "skynet")) {
        uint64_t s = size;
        while (s > 1 && s % 10 == 0)
            s /= 10;
        return size >= 1 && s == 1;
    }
    if (!strcmp(wl->name, "fib"))
        return size <= 90;
    return size >= 1 && size <= (uint64_t)1 << 40;
}

int main(int argc, char **argv) {
    const char *names = "all";
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = online > 0 ? (unsigned)online : 1;
    unsigned runs = 1;
    uint64_t size = 0;
    int short_sizes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--short")) {
            short_sizes = 1;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (!strcmp(a, "--workload"))
            names = v;
        else if (!strcmp(a, "--threads"))
            threads = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--runs"))
            runs = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--size"))
            size = strtoull(v, NULL, 10);
        else
            return usage();
    }
    if (!strcmp(names, "list")) {
        for (int i = 0; i < WORKLOAD_COUNT; i++)
            printf("%s\n", workloads[i].name);
        return 0;
    }
    if (threads < 1 || threads > 1024 || runs < 1)
        return usage();
    const workload *chosen[WORKLOAD_COUNT];
    int count = 0;
    if (!strcmp(names, "all")) {
        for (int i = 0; i < WORKLOAD_COUNT; i++)
            chosen[count++] = &workloads[i];
    } else {
        for (const char *p = names; *p;) {
            size_t len = strcspn(p, ",");
            const workload *wl = find(p, len);
            if (!wl || count == WORKLOAD_COUNT) {
                fprintf(stderr, "weft-bench: unknown workload '%.*s' (try --workload list)\n",
                        (int)len, p);
                return 2;
            }
            chosen[count++] = wl;
            p += len + (p[len] == ',');
        }
    }
    int failed = 0;
    for (int i = 0; i < count; i++) {
        uint64_t n = size ? size : short_sizes ? chosen[i]->short_size : chosen[i]->size;
        if (!valid_size(chosen[i], n)) {
            fprintf(stderr, "weft-bench: %s: bad --size %llu\n", chosen[i]->name,
                    (unsigned long long)n);
            return 2;
        }
        for (unsigned r = 0; r < runs; r++)
            failed |= run_once(chosen[i], threads, n);
    }
    return failed;
}
