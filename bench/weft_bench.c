/*
 * weft-bench: the workloads of bench/WORKLOADS.md on
 * weft, each result checked, printed in the one-line format every runtime uses:
 *
 *   workload=<name> runtime=weft threads=<T> wall_ms=<float> result=<value> [extra=...]
 *
 *   weft-bench [--workload fib,skynet,...|all|list] [--threads T] [--runs R] [--size N]
 *              [--short] [--trace PATH]
 *
 * --threads: worker threads (default: online CPUs). yield and switch always use one.
 * --size overrides the workload's main parameter (fib n, skynet size (a power of 10),
 * spawn_many N, yield Y, sleepers S, timeouts K, switch count, chan_pingpong R,
 * chan_mpmc N (at least 8), mutex_contended and mutex_yield M, group_fanout N); --short
 * runs every workload once at small sizes (tools/demo's table). Each run prints one
 * line; a wrong result prints result=WRONG:<value> and the program exits 1.
 * chan_pingpong adds extra=ns_per_round_trip (wall / R).
 *
 * --trace PATH records a trace of each run (weft_trace_start before the workload's main
 * task, weft_trace_stop after it: the wall time includes the cost of recording, not the
 * JSON written at the stop) into PATH, PATH.2, PATH.3... for the second and later runs,
 * and says on stderr where each went, how many events it dropped and how long the stop
 * took (tools/trace). `switch` runs outside a runtime and is not traced.
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

/* ---- chan_pingpong ----------------------------------------------------------------- */

/* Two unbuffered channels: the pinger sends the counter on `there`, the ponger sends it
 * back plus one on `back`; R round trips, four channel operations and two hand-offs
 * each. */
typedef struct pingpong {
    weft_chan *there, *back;
    uint64_t rounds;
} pingpong;

static void *ponger(void *arg) {
    pingpong *pp = arg;
    for (uint64_t i = 0; i < pp->rounds; i++) {
        uint64_t v;
        if (weft_chan_recv(pp->there, &v, WEFT_FOREVER) != 0)
            abort();
        v++;
        if (weft_chan_send(pp->back, &v, WEFT_FOREVER) != 0)
            abort();
    }
    return NULL;
}

static void *pinger(void *arg) {
    pingpong *pp = arg;
    uint64_t counter = 0;
    for (uint64_t i = 0; i < pp->rounds; i++) {
        if (weft_chan_send(pp->there, &counter, WEFT_FOREVER) != 0 ||
            weft_chan_recv(pp->back, &counter, WEFT_FOREVER) != 0)
            abort();
    }
    return (void *)(uintptr_t)counter;
}

static void *chan_pingpong_main(void *arg) {
    run *r = arg;
    pingpong pp = {.rounds = r->size};
    if (weft_chan_create(sizeof(uint64_t), 0, &pp.there) != 0 ||
        weft_chan_create(sizeof(uint64_t), 0, &pp.back) != 0)
        abort();
    r->start_ns = now_ns();
    weft_task *pong = weft_spawn(ponger, &pp);
    weft_task *ping = weft_spawn(pinger, &pp);
    void *counter;
    if (!pong || !ping || weft_join(ping, &counter) != 0 || weft_join(pong, NULL) != 0)
        abort();
    r->end_ns = now_ns();
    r->result = (uint64_t)(uintptr_t)counter;
    snprintf(r->extra, sizeof r->extra, "ns_per_round_trip=%.1f",
             (double)(r->end_ns - r->start_ns) / (double)r->size);
    if (weft_chan_destroy(pp.there) != 0 || weft_chan_destroy(pp.back) != 0)
        abort();
    return NULL;
}

/* ---- chan_mpmc -------------------------------------------------------------------- */

enum { MPMC_PRODUCERS = 4, MPMC_CONSUMERS = 4, MPMC_CAPACITY = 1024 };

typedef struct mpmc {
    weft_chan *ch;
    uint64_t per_producer; /* N / P */
} mpmc;

static void *mpmc_producer(void *arg) {
    mpmc *m = arg;
    for (uint64_t i = 0; i < m->per_producer; i++)
        if (weft_chan_send(m->ch, &i, WEFT_FOREVER) != 0)
            abort();
    return NULL;
}

/* Receives until the channel is closed and drained (-EPIPE); returns the sum. */
static void *mpmc_consumer(void *arg) {
    mpmc *m = arg;
    uint64_t v, sum = 0;
    int rc;
    while ((rc = weft_chan_recv(m->ch, &v, WEFT_FOREVER)) == 0)
        sum += v;
    if (rc != -EPIPE)
        abort();
    return (void *)(uintptr_t)sum;
}

static void *chan_mpmc_main(void *arg) {
    run *r = arg;
    mpmc m = {.per_producer = r->size / MPMC_PRODUCERS};
    if (weft_chan_create(sizeof(uint64_t), MPMC_CAPACITY, &m.ch) != 0)
        abort();
    weft_task *producers[MPMC_PRODUCERS], *consumers[MPMC_CONSUMERS];
    r->start_ns = now_ns();
    for (int i = 0; i < MPMC_CONSUMERS; i++)
        if (!(consumers[i] = weft_spawn(mpmc_consumer, &m)))
            abort();
    for (int i = 0; i < MPMC_PRODUCERS; i++)
        if (!(producers[i] = weft_spawn(mpmc_producer, &m)))
            abort();
    for (int i = 0; i < MPMC_PRODUCERS; i++)
        if (weft_join(producers[i], NULL) != 0)
            abort();
    if (weft_chan_close(m.ch) != 0) /* the consumers drain what is left, then see -EPIPE */
        abort();
    uint64_t sum = 0;
    for (int i = 0; i < MPMC_CONSUMERS; i++) {
        void *v;
        if (weft_join(consumers[i], &v) != 0)
            abort();
        sum += (uint64_t)(uintptr_t)v;
    }
    r->end_ns = now_ns();
    r->result = sum;
    if (weft_chan_destroy(m.ch) != 0)
        abort();
    return NULL;
}

static uint64_t mpmc_expected(uint64_t n) {
    uint64_t k = n / MPMC_PRODUCERS;
    return MPMC_PRODUCERS * (k * (k - 1) / 2);
}

/* ---- mutex_contended, mutex_yield --------------------------------------------------- */

enum { MUTEX_TASKS = 8, MUTEX_YIELD_EVERY = 100 };

typedef struct counter {
    weft_mutex lock;
    uint64_t value; /* under lock */
    int yield_inside;
} counter;

typedef struct incrementer {
    counter *c;
    uint64_t count;
} incrementer;

static void *increment(void *arg) {
    incrementer *inc = arg;
    counter *c = inc->c;
    for (uint64_t i = 1; i <= inc->count; i++) {
        if (weft_mutex_lock(&c->lock) != 0)
            abort();
        c->value++;
        if (c->yield_inside && i % MUTEX_YIELD_EVERY == 0)
            weft_yield(); /* holding the lock: the others queue behind it */
        if (weft_mutex_unlock(&c->lock) != 0)
            abort();
    }
    return NULL;
}

static void run_counter(run *r, int yield_inside) {
    counter c = {.yield_inside = yield_inside};
    weft_mutex_init(&c.lock);
    incrementer incs[MUTEX_TASKS];
    weft_task *tasks[MUTEX_TASKS];
    r->start_ns = now_ns();
    for (int i = 0; i < MUTEX_TASKS; i++) {
        incs[i] = (incrementer){&c, r->size / MUTEX_TASKS + ((uint64_t)i < r->size % MUTEX_TASKS)};
        if (!(tasks[i] = weft_spawn(increment, &incs[i])))
            abort();
    }
    for (int i = 0; i < MUTEX_TASKS; i++)
        if (weft_join(tasks[i], NULL) != 0)
            abort();
    r->end_ns = now_ns();
    r->result = c.value;
    if (weft_mutex_destroy(&c.lock) != 0)
        abort();
}

static void *mutex_contended_main(void *arg) {
    run_counter(arg, 0);
    return NULL;
}

static void *mutex_yield_main(void *arg) {
    run_counter(arg, 1);
    return NULL;
}

/* ---- group_fanout ------------------------------------------------------------------ */

/* At most this many members run at once (WORKLOADS.md). */
enum { GROUP_LIMIT = 1000 };

/* Adds every result that is ready now to *sum, without waiting (a deadline of 0 is
 * already past: weft_group_next polls). */
static void take_finished(weft_group *g, uint64_t *sum) {
    void *v;
    int rc;
    while ((rc = weft_group_next(g, &v, 0)) == 0)
        *sum += (uint64_t)(uintptr_t)v;
    if (rc != -ETIMEDOUT && rc != -ECHILD)
        abort();
}

/* One task spawns N members (each returns its index) into a group limited to
 * GROUP_LIMIT running. Before each spawn it takes the results that are ready (so that
 * finished members do not pile up unread); a spawn that finds GROUP_LIMIT members
 * running waits for a slot (weft_group_spawn parks). Then it waits for the rest.
 * Results are summed in the order weft_group_next returns them: completion order. */
static void *group_fanout_main(void *arg) {
    run *r = arg;
    weft_group *g;
    if (weft_group_create(&g) != 0 || weft_group_set_limit(g, GROUP_LIMIT) != 0)
        abort();
    uint64_t sum = 0;
    r->start_ns = now_ns();
    for (uint64_t i = 0; i < r->size; i++) {
        take_finished(g, &sum);
        if (weft_group_spawn(g, return_index, (void *)(uintptr_t)i) != 0)
            abort();
    }
    void *v;
    int rc;
    while ((rc = weft_group_next(g, &v, WEFT_FOREVER)) == 0)
        sum += (uint64_t)(uintptr_t)v;
    if (rc != -ECHILD)
        abort();
    r->end_ns = now_ns();
    r->result = sum;
    if (weft_group_destroy(g) != 0)
        abort();
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
    {"chan_pingpong", chan_pingpong_main, 1000000, 100000, same, 0},
    {"chan_mpmc", chan_mpmc_main, 4000000, 400000, mpmc_expected, 0},
    {"mutex_contended", mutex_contended_main, 4000000, 400000, same, 0},
    {"mutex_yield", mutex_yield_main, 4000000, 400000, same, 0},
    {"group_fanout", group_fanout_main, 1000000, 100000, triangle, 0},
};
enum { WORKLOAD_COUNT = sizeof workloads / sizeof workloads[0] };

/* weft_run's steps, with a trace around the workload (--trace). 0 or a negative errno. */
static int run_traced(const weft_config *cfg, const workload *wl, run *r, const char *path) {
    weft_runtime *rt;
    int rc = weft_runtime_create(cfg, &rt);
    if (rc != 0)
        return rc;
    if ((rc = weft_trace_start(rt, path)) != 0) {
        fprintf(stderr, "weft-bench: %s: weft_trace_start %s: %s\n", wl->name, path, strerror(-rc));
        weft_runtime_destroy(rt);
        return rc;
    }
    rc = weft_block_on(rt, wl->main, r, NULL);
    uint64_t stop_start = now_ns();
    int dropped = weft_trace_stop(rt);
    uint64_t stop_ns = now_ns() - stop_start;
    if (dropped < 0)
        fprintf(stderr, "weft-bench: %s: weft_trace_stop: %s\n", wl->name, strerror(-dropped));
    else
        fprintf(stderr, "weft-bench: %s: trace %s: %d events dropped, stop took %.1f ms\n",
                wl->name, path, dropped, (double)stop_ns / 1e6);
    int destroy_rc = weft_runtime_destroy(rt);
    return rc ? rc : dropped < 0 ? dropped : destroy_rc;
}

static int run_once(const workload *wl, unsigned threads, uint64_t size, const char *trace) {
    run r = {.threads = wl->one_thread ? 1 : threads, .size = size};
    if (wl->main) {
        weft_config cfg = {.workers = r.threads};
        if (size + 16 > WEFT_DEFAULT_MAX_TASKS)
            cfg.max_tasks = size + 16; /* spawn_many holds N handles at once */
        int rc = trace ? run_traced(&cfg, wl, &r, trace) : weft_run(&cfg, wl->main, &r, NULL);
        if (rc != 0) {
            fprintf(stderr, "weft-bench: %s: %s: %s\n", wl->name, trace ? "traced run" : "weft_run",
                    strerror(-rc));
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
                    "[--runs R] [--size N] [--short] [--trace PATH]\n");
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
    if (!strcmp(wl->name, "chan_mpmc"))
        return size >= 2 * MPMC_PRODUCERS && size <= (uint64_t)1 << 40;
    return size >= 1 && size <= (uint64_t)1 << 40;
}

int main(int argc, char **argv) {
    const char *names = "all";
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = online > 0 ? (unsigned)online : 1;
    unsigned runs = 1;
    uint64_t size = 0;
    int short_sizes = 0;
    const char *trace = NULL;
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
        else if (!strcmp(a, "--trace"))
            trace = v;
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
    unsigned traced = 0; /* runs traced so far: PATH, then PATH.2, PATH.3... */
    char trace_path[4096];
    for (int i = 0; i < count; i++) {
        uint64_t n = size ? size : short_sizes ? chosen[i]->short_size : chosen[i]->size;
        if (!valid_size(chosen[i], n)) {
            fprintf(stderr, "weft-bench: %s: bad --size %llu\n", chosen[i]->name,
                    (unsigned long long)n);
            return 2;
        }
        for (unsigned r = 0; r < runs; r++) {
            const char *path = NULL;
            if (trace && chosen[i]->main) {
                if (traced++ == 0)
                    snprintf(trace_path, sizeof(trace_path), "%s", trace);
                else
                    snprintf(trace_path, sizeof(trace_path), "%s.%u", trace, traced);
                path = trace_path;
            }
            failed |= run_once(chosen[i], threads, n, path);
        }
    }
    return failed;
}
