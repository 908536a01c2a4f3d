/*
 * test_dump.c: weft_runtime_dump and the metrics (weft.h, "Metrics" and "Looking inside
 * a running program").
 *
 * - dump: tasks parked in every kind of wait (sleep, fd, channel, select, mutex, cond,
 *   semaphore, wait group, event, join, group next, blocking-pool call) each show their
 *   wait reason, and a frame of the function they parked in (this file is compiled with
 *   frame pointers; function names need libdw, or are checked only as frames without
 *   it); a task running inline shows its joiner; a worker stuck in a long task shows it
 *   running; a dump from a task and from a plain thread; WEFT_DUMP_SIGNAL dumps on a
 *   signal and the program goes on; errors (-EINVAL, a write error).
 * - dumps of a runtime whose tasks spawn, migrate and finish all the time (chaos seed),
 *   from a plain thread, over and over: no fault, no sanitizer report.
 * - metrics: when the runtime is quiet they add up (spawned = finished + the one task
 *   still running; the slice histogram's total is `slices`, the delay histogram's is
 *   `delay_samples`; the runtime's figures are the workers' sums); a task that spins
 *   longer than cfg.long_slice_us counts as a long slice; errors.
 *
 * Every test ends with its runtime destroyed and nothing leaked.
 */
#include "weft_criterion.h"

#include "sched/task.h" /* a handle's task id */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- Reading a dump -------------------------------------------------------------------- */

/* A dump of rt into memory (a memfd), NUL-terminated; free() it. */
static char *dump_to_string(weft_runtime *rt, int *rc) {
    int fd = memfd_create("weft-dump", MFD_CLOEXEC);
    cr_assert_geq(fd, 0);
    *rc = weft_runtime_dump(rt, fd);
    off_t size = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    cr_assert_not_null(text);
    cr_assert_eq(pread(fd, text, (size_t)size, 0), size);
    close(fd);
    return text;
}

/* The dump's line for task `id` and its frames (up to the next "task " line), copied. */
static char *task_section(const char *dump, uint64_t id) {
    char head[64];
    snprintf(head, sizeof head, "\ntask %llu", (unsigned long long)id);
    const char *p = dump;
    for (;;) {
        p = strstr(p, head);
        if (!p)
            return NULL;
        char next = p[strlen(head)];
        if (next == ':' || next == ' ')
            break;
        p++;
    }
    p++;
    const char *end = strstr(p, "\ntask ");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *s = calloc(1, n + 1);
    memcpy(s, p, n);
    return s;
}

/* ---- Tasks parked in each kind of wait ------------------------------------------------- */

typedef struct parked_world {
    int sv[2];
    int select_sv[2]; /* the select's fd case: one task per fd and event may wait */
    weft_chan *chan;
    weft_mutex mutex;
    weft_cond cond;
    weft_mutex cond_mutex;
    weft_sem sem;
    weft_waitgroup wg;
    weft_event event;
    weft_group *group;
    weft_task *sleeper;
    weft_task *holder; /* holds `mutex` until release_mutex is set */
    weft_event mutex_held;
    weft_event release_mutex;
    weft_event release_blocking;
} parked_world;

static parked_world world;

/* Each body is its own function, not inlined, so that its name is a frame of the dump. */
#define PARKED_BODY(name, ...)                                                                     \
    __attribute__((noinline)) void *name(void *arg) {                                              \
        (void)arg;                                                                                 \
        __VA_ARGS__;                                                                               \
        __asm__ volatile("" ::: "memory"); /* not a tail call: keep the frame */                   \
        return NULL;                                                                               \
    }

PARKED_BODY(dump_body_sleep, weft_sleep_ms(60000))
PARKED_BODY(dump_body_fd, {
    char b;
    weft_read(world.sv[0], &b, 1, WEFT_FOREVER);
})
PARKED_BODY(dump_body_chan, {
    int v;
    weft_chan_recv(world.chan, &v, WEFT_FOREVER);
})
PARKED_BODY(dump_body_select, {
    int v;
    weft_case cases[2] = {{.kind = WEFT_CASE_RECV, .chan = world.chan, .elem = &v},
                          {.kind = WEFT_CASE_FD, .fd = world.select_sv[0], .events = WEFT_IN}};
    weft_select(cases, 2, WEFT_FOREVER);
})
PARKED_BODY(dump_body_mutex, {
    weft_mutex_lock(&world.mutex);
    weft_mutex_unlock(&world.mutex);
})
PARKED_BODY(dump_body_cond, {
    weft_mutex_lock(&world.cond_mutex);
    weft_cond_wait(&world.cond, &world.cond_mutex, WEFT_FOREVER);
    weft_mutex_unlock(&world.cond_mutex);
})
PARKED_BODY(dump_body_sem, weft_sem_acquire(&world.sem, WEFT_FOREVER))
PARKED_BODY(dump_body_waitgroup, weft_waitgroup_wait(&world.wg, WEFT_FOREVER))
PARKED_BODY(dump_body_event, weft_event_wait(&world.event, WEFT_FOREVER))
PARKED_BODY(dump_body_join, weft_join(world.sleeper, NULL))
PARKED_BODY(dump_body_group, {
    void *r;
    weft_group_next(world.group, &r, WEFT_FOREVER);
})
PARKED_BODY(dump_blocking_call, weft_event_wait(&world.release_blocking, WEFT_FOREVER))
PARKED_BODY(dump_body_blocking, {
    weft_task *t = weft_spawn_blocking(dump_blocking_call, NULL);
    weft_join(t, NULL);
})
PARKED_BODY(dump_group_member, weft_sleep_ms(60000))
PARKED_BODY(dump_mutex_holder, {
    weft_mutex_lock(&world.mutex);
    weft_event_set(&world.mutex_held);
    weft_event_wait(&world.release_mutex, WEFT_FOREVER);
    weft_mutex_unlock(&world.mutex);
})

typedef struct expectation {
    weft_fn body;
    const char *function;
    const char *reason;
    weft_task *task;
} expectation;

static expectation expected[] = {
    {dump_body_sleep, "dump_body_sleep", "waiting for sleep until", NULL},
    {dump_body_fd, "dump_body_fd", "waiting for fd", NULL},
    {dump_body_chan, "dump_body_chan", "waiting for channel receive", NULL},
    {dump_body_select, "dump_body_select", "waiting for select of 2 cases", NULL},
    {dump_body_mutex, "dump_body_mutex", "waiting for mutex", NULL},
    {dump_body_cond, "dump_body_cond", "waiting for condition", NULL},
    {dump_body_sem, "dump_body_sem", "waiting for semaphore", NULL},
    {dump_body_waitgroup, "dump_body_waitgroup", "waiting for wait group", NULL},
    {dump_body_event, "dump_body_event", "waiting for event", NULL},
    {dump_body_join, "dump_body_join", "waiting for join of task", NULL},
    {dump_body_group, "dump_body_group", "waiting for group next", NULL},
    {dump_body_blocking, "dump_body_blocking", "blocking-pool call", NULL},
};
#define EXPECTED (sizeof(expected) / sizeof(expected[0]))

/* The blocking-pool call is run by a carrier task, which its joiner may run inline:
 * its line is looked for anywhere in the dump, not in the body's section. */
static bool is_blocking(const expectation *e) {
    return e->body == dump_body_blocking;
}

static bool all_waiting(const char *dump) {
    for (size_t i = 0; i < EXPECTED; i++) {
        if (is_blocking(&expected[i])) {
            if (!strstr(dump, "waiting for blocking-pool call"))
                return false;
            continue;
        }
        char *s = task_section(dump, expected[i].task->id);
        /* With inline joins on, the joiner may run the sleeper on its own stack. */
        bool ok =
            s && (strstr(s, expected[i].reason) || (expected[i].body == dump_body_join &&
                                                    strstr(s, "which runs inline on its stack")));
        free(s);
        if (!ok)
            return false;
    }
    return true;
}

static void world_init(void) {
    memset(&world, 0, sizeof(world));
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, world.sv), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, world.select_sv), 0);
    cr_assert_eq(weft_chan_create(sizeof(int), 0, &world.chan), 0);
    cr_assert_eq(weft_group_create(&world.group), 0);
}

static void world_release(void) {
    char b = 1;
    cr_assert_eq(write(world.sv[1], &b, 1), 1);
    weft_chan_close(world.chan);
    weft_event_set(&world.release_mutex);
    weft_mutex_lock(&world.cond_mutex);
    weft_cond_broadcast(&world.cond);
    weft_mutex_unlock(&world.cond_mutex);
    weft_sem_release(&world.sem);
    weft_waitgroup_done(&world.wg);
    weft_event_set(&world.event);
    weft_event_set(&world.release_blocking);
}

static void world_destroy(void) {
    cr_assert_eq(weft_chan_destroy(world.chan), 0);
    close(world.sv[0]);
    close(world.sv[1]);
    close(world.select_sv[0]);
    close(world.select_sv[1]);
}

typedef struct dump_case {
    bool from_task; /* dump from a task of the runtime, or from the test's thread */
} dump_case;

static void *dump_every_wait(void *arg) {
    dump_case *dc = arg;
    weft_runtime *rt = weft_runtime_current();
    world.holder = weft_spawn(dump_mutex_holder, NULL); /* dump_body_mutex waits for it */
    cr_assert_not_null(world.holder);
    cr_assert_eq(weft_event_wait(&world.mutex_held, WEFT_FOREVER), 0);
    weft_waitgroup_add(&world.wg, 1);
    world.sleeper = NULL;
    for (size_t i = 0; i < EXPECTED; i++) {
        if (expected[i].body == dump_body_join) {
            world.sleeper = weft_spawn(dump_body_sleep, NULL);
            cr_assert_not_null(world.sleeper);
        }
        expected[i].task = weft_spawn(expected[i].body, NULL);
        cr_assert_not_null(expected[i].task);
    }
    cr_assert_eq(weft_group_spawn(world.group, dump_group_member, NULL), 0);
    /* Dump until every task shows its wait (each parks within milliseconds). */
    char *dump = NULL;
    int rc = 0;
    for (int attempt = 0; attempt < 500; attempt++) {
        free(dump);
        if (dc->from_task) {
            dump = dump_to_string(rt, &rc);
        } else {
            dump = NULL; /* the test's thread dumps: see dump_from_thread below */
            break;
        }
        cr_assert_eq(rc, 0);
        if (all_waiting(dump))
            break;
        weft_sleep_ms(10);
    }
    if (dump) {
        cr_assert(all_waiting(dump), "not every task shows its wait:\n%s", dump);
        for (size_t i = 0; i < EXPECTED; i++) {
            /* A frame of the function it parked in. Names need libdw: without it (dladdr
             * names exported symbols only) at least a frame is there. */
#ifdef WEFT_HAVE_LIBDW
            cr_assert(strstr(dump, expected[i].function), "no frame of %s:\n%s",
                      expected[i].function, dump);
#endif
        }
        cr_assert(strstr(dump, "    #0 "), "no frames:\n%s", dump);
        cr_assert(strstr(dump, "worker 0: "), "%s", dump);
        free(dump);
    }
    return NULL;
}

static void *finish_world(void *arg) {
    (void)arg;
    world_release();
    /* The sleepers (and so the join of one, and the group member) end by a cancel. */
    cr_assert_eq(weft_cancel(expected[0].task), 0);
    cr_assert_eq(weft_cancel(world.sleeper), 0);
    cr_assert_eq(weft_group_cancel(world.group), 0);
    for (size_t i = 0; i < EXPECTED; i++) {
        int rc = weft_join_until(expected[i].task, weft_now() + 10000000000ull, NULL);
        if (rc != 0)
            weft_runtime_dump(weft_runtime_current(), STDERR_FILENO); /* what still waits */
        cr_assert_eq(rc, 0, "%s did not finish", expected[i].function);
    }
    cr_assert_eq(weft_join(world.holder, NULL), 0); /* (dump_body_join joined the sleeper) */
    cr_assert_eq(weft_group_destroy(world.group), 0);
    return NULL;
}

Test(dump, every_wait_from_a_task, .timeout = 60) {
    world_init();
    /* No inline joins: the join's waiter must wait, not run the sleeper on its stack
     * (a joiner running a task inline is shown as such; see the blocking call). */
    weft_config cfg = {.workers = 2, .flags = WEFT_CONFIG_NO_CHAOS | WEFT_CONFIG_NO_INLINE_JOIN};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&cfg, &rt), 0);
    dump_case dc = {true};
    cr_assert_eq(weft_block_on(rt, dump_every_wait, &dc, NULL), 0);
    cr_assert_eq(weft_block_on(rt, finish_world, NULL, NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    world_destroy();
    WEFT_ASSERT_NO_LEAKS();
}

Test(dump, every_wait_from_a_thread, .timeout = 60) {
    world_init();
    weft_config cfg = {.workers = 2, .flags = WEFT_CONFIG_NO_CHAOS};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&cfg, &rt), 0);
    dump_case dc = {false};
    cr_assert_eq(weft_block_on(rt, dump_every_wait, &dc, NULL), 0);
    char *dump = NULL;
    int rc;
    for (int attempt = 0; attempt < 500; attempt++) {
        free(dump);
        dump = dump_to_string(rt, &rc);
        cr_assert_eq(rc, 0);
        if (all_waiting(dump))
            break;
        weft_test_sleep_ms(10);
    }
    cr_assert(all_waiting(dump), "not every task shows its wait:\n%s", dump);
    free(dump);
    cr_assert_eq(weft_block_on(rt, finish_world, NULL, NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    world_destroy();
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- A task that keeps its worker ------------------------------------------------------ */

static weft__atomic_word spin_stop; /* atomic.h's word: loads and stores through it */

__attribute__((noinline)) void *dump_spinner(void *arg) {
    (void)arg;
    while (!weft__atomic_load_acquire(&spin_stop))
        ;
    return NULL;
}

Test(dump, long_task_shows_running_and_counts_long, .timeout = 60) {
    weft_config cfg = {.workers = 2, .flags = WEFT_CONFIG_NO_CHAOS, .long_slice_us = 1000};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&cfg, &rt), 0);
    weft__atomic_store_release(&spin_stop, 0);
    weft_task *t = weft_spawn_on(rt, dump_spinner, NULL);
    cr_assert_not_null(t);
    char *dump = NULL;
    int rc;
    for (int attempt = 0; attempt < 500; attempt++) {
        free(dump);
        dump = dump_to_string(rt, &rc);
        cr_assert_eq(rc, 0);
        char *s = task_section(dump, t->id);
        bool running = s && strstr(s, ": running on worker ");
        free(s);
        if (running)
            break;
        weft_test_sleep_ms(5);
    }
    char *s = task_section(dump, t->id);
    cr_assert(s && strstr(s, ": running on worker "), "%s", dump);
    free(s);
    free(dump);
    weft_test_sleep_ms(20); /* longer than long_slice_us */
    weft__atomic_store_release(&spin_stop, 1);
    cr_assert_eq(weft_join(t, NULL), 0);
    /* The slice is counted when its worker moves on (runs dry, or runs another task). */
    weft_runtime_stats st;
    for (int attempt = 0; attempt < 200; attempt++) {
        cr_assert_eq(weft_runtime_stats_get(rt, &st), 0);
        if (st.slices_long >= 1)
            break;
        weft_test_sleep_ms(5);
    }
    cr_assert_geq(st.slices_long, 1);
    cr_assert_geq(st.busy_ns, 20000000ull);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- Errors ----------------------------------------------------------------------------- */

Test(dump, errors, .timeout = 30) {
    weft_config cfg = {.workers = 1};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&cfg, &rt), 0);
    cr_assert_eq(weft_runtime_dump(NULL, 1), -EINVAL);
    cr_assert_eq(weft_runtime_dump(rt, -1), -EINVAL);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(weft_runtime_dump(rt, p[1]), -EPIPE); /* a write error comes back */
    close(p[1]);
    weft_worker_stats ws;
    weft_runtime_stats st;
    cr_assert_eq(weft_worker_stats_get(NULL, 0, &ws), -EINVAL);
    cr_assert_eq(weft_worker_stats_get(rt, 1, &ws), -EINVAL);
    cr_assert_eq(weft_worker_stats_get(rt, 0, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_stats_get(rt, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_stats_get(NULL, &st), -EINVAL);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- Dumps while tasks spawn, migrate and finish ---------------------------------------- */

static void *churn_leaf(void *arg) {
    uintptr_t i = (uintptr_t)arg;
    if (i % 3 == 0)
        weft_yield();
    else if (i % 3 == 1)
        weft_sleep_ms(1);
    return arg;
}

static void *churn(void *arg) {
    weft__atomic_word *stop = arg;
    uintptr_t i = 0;
    while (!weft__atomic_load_acquire(stop)) {
        weft_task *ts[16];
        for (int k = 0; k < 16; k++)
            ts[k] = weft_spawn(churn_leaf, (void *)i++);
        for (int k = 0; k < 16; k++)
            if (ts[k])
                weft_join(ts[k], NULL);
    }
    return NULL;
}

Test(dump, while_tasks_churn, .timeout = 120) {
    weft_config cfg = {.workers = 2, .chaos_seed = 12345};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&cfg, &rt), 0);
    weft__atomic_word stop = 0;
    weft_task *churners[3];
    for (int k = 0; k < 3; k++)
        cr_assert_not_null(churners[k] = weft_spawn_on(rt, churn, (void *)&stop));
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    cr_assert_geq(devnull, 0);
    size_t rounds = weft_test_size(40, 4);
    for (size_t r = 0; r < rounds; r++)
        cr_assert_eq(weft_runtime_dump(rt, devnull), 0);
    close(devnull);
    weft__atomic_store_release(&stop, 1);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(weft_join(churners[k], NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- WEFT_DUMP_SIGNAL ------------------------------------------------------------------- */

Test(dump, on_signal, .timeout = 60) {
    /* The handler is installed once per process, at the first runtime created with the
     * variable set: Criterion runs each test in a process of its own. */
    setenv("WEFT_DUMP_SIGNAL", "USR1", 1);
    int err_pipe[2];
    cr_assert_eq(pipe2(err_pipe, O_CLOEXEC | O_NONBLOCK), 0);
    int saved_stderr = dup(STDERR_FILENO);
    cr_assert_eq(dup2(err_pipe[1], STDERR_FILENO), STDERR_FILENO);
    weft_config cfg = {.workers = 1};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&cfg, &rt), 0);
    weft_task *t = weft_spawn_on(rt, dump_body_sleep, NULL);
    cr_assert_not_null(t);
    weft_test_sleep_ms(50);
    cr_assert_eq(raise(SIGUSR1), 0);
    char text[65536] = {0};
    size_t got = 0;
    for (int attempt = 0; attempt < 500 && !strstr(text, "waiting for sleep"); attempt++) {
        ssize_t n = read(err_pipe[0], text + got, sizeof(text) - 1 - got);
        if (n > 0)
            got += (size_t)n;
        else
            weft_test_sleep_ms(10);
    }
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    cr_assert(strstr(text, "weft runtime ") && strstr(text, "waiting for sleep"),
              "no dump on SIGUSR1: %s", text);
    cr_assert_eq(weft_cancel(t), 0); /* the program went on: the sleeper is still there */
    cr_assert_eq(weft_join(t, NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    close(err_pipe[0]);
    close(err_pipe[1]);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- Metrics add up ------------------------------------------------------------------- */

static void *metrics_leaf(void *arg) {
    uintptr_t i = (uintptr_t)arg;
    if (i % 4 == 0)
        weft_sleep_ms(1);
    else if (i % 4 == 1)
        weft_yield();
    return arg;
}

static void *metrics_root(void *arg) {
    (void)arg;
    size_t n = weft_test_size(2000, 10);
    weft_task **ts = calloc(n, sizeof(*ts));
    for (size_t i = 0; i < n; i++)
        cr_assert_not_null(ts[i] = weft_spawn(metrics_leaf, (void *)(uintptr_t)i));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(weft_join(ts[i], NULL), 0);
    free(ts);
    weft_sleep_ms(20); /* the other worker's last slice is counted by now */
    weft_runtime *rt = weft_runtime_current();
    weft_runtime_stats st;
    cr_assert_eq(weft_runtime_stats_get(rt, &st), 0);
    /* Spawned = finished + this task, the one still running. */
    cr_assert_eq(st.tasks_spawned, st.tasks_finished + 1, "spawned %llu finished %llu",
                 (unsigned long long)st.tasks_spawned, (unsigned long long)st.tasks_finished);
    cr_assert_eq(st.tasks_live, 1);
    uint64_t slices = 0, delays = 0;
    for (unsigned b = 0; b < WEFT_HISTOGRAM_BUCKETS; b++) {
        slices += st.slice_histogram[b];
        delays += st.delay_histogram[b];
    }
    cr_assert_eq(slices, st.slices);
    cr_assert_eq(delays, st.delay_samples);
    cr_assert_gt(st.slices, n / 2);
    cr_assert_gt(st.delay_samples, 0);
    cr_assert_gt(st.busy_ns, 0);
    cr_assert_geq(st.timers_armed, n / 4);
    cr_assert_leq(st.timers_fired, st.timers_armed);
    /* The runtime's figures are the workers' sums. */
    uint64_t sum_slices = 0, sum_parks = 0, sum_armed = 0;
    for (unsigned i = 0; i < st.workers; i++) {
        weft_worker_stats ws;
        cr_assert_eq(weft_worker_stats_get(rt, i, &ws), 0);
        sum_slices += ws.slices;
        sum_parks += ws.parks;
        sum_armed += ws.timers_armed;
        uint64_t h = 0;
        for (unsigned b = 0; b < WEFT_HISTOGRAM_BUCKETS; b++)
            h += ws.slice_histogram[b];
        cr_assert_eq(h, ws.slices);
    }
    cr_assert_eq(sum_slices, st.slices);
    cr_assert_eq(sum_armed, st.timers_armed);
    cr_assert_leq(sum_parks, st.parks + 2); /* the other worker may park meanwhile */
    return NULL;
}

Test(metrics, add_up, .timeout = 60) {
    weft_config cfg = {.workers = 2};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&cfg, &rt), 0);
    cr_assert_eq(weft_block_on(rt, metrics_root, NULL, NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}
