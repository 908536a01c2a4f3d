/*
 * test_spawn_join.c: spawn, join, detach and shutdown, end to end, on real worker
 * threads. Every case checks its results exactly and ends with the runtime destroyed and
 * nothing leaked.
 */
#include "weft_criterion.h"

#include "base/atomic.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* ---- fib: recursive fork-join ---------------------------------------------------- */

static void *fib(void *arg) {
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return (void *)n;
    weft_task *t = weft_spawn(fib, (void *)(n - 1));
    cr_assert(t != NULL, "spawn failed: %s", strerror(errno));
    intptr_t b = (intptr_t)fib((void *)(n - 2));
    void *a = NULL;
    cr_assert(weft_join(t, &a) == 0, "join failed");
    return (void *)((intptr_t)a + b);
}

static void test_fib(unsigned workers) {
    intptr_t n = 25;
#if defined(WEFT__TSAN)
    n = 20;
#endif
    intptr_t expected[] = {[20] = 6765, [25] = 75025};
    weft_config cfg = {.workers = workers};
    void *result = NULL;
    cr_assert(weft_run(&cfg, fib, (void *)n, &result) == 0, "weft_run failed");
    cr_assert((intptr_t)result == expected[n], "fib(%ld) = %ld", (long)n, (long)(intptr_t)result);
    WEFT_ASSERT_NO_LEAKS();
}

Test(spawn_join, fib_one_worker) {
    test_fib(1);
}

Test(spawn_join, fib_two_workers) {
    test_fib(2);
}

/* ---- many tasks from one task, joined in order ------------------------------------ */

static void *identity(void *arg) {
    return arg;
}

static void *spawn_many(void *arg) {
    size_t n = (size_t)arg;
    weft_task **tasks = malloc(n * sizeof(*tasks));
    cr_assert(tasks != NULL, "malloc");
    for (size_t i = 0; i < n; i++) {
        tasks[i] = weft_spawn(identity, (void *)i);
        cr_assert(tasks[i] != NULL, "spawn %zu failed: %s", i, strerror(errno));
    }
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        void *r;
        cr_assert(weft_join(tasks[i], &r) == 0, "join %zu", i);
        cr_assert((size_t)r == i, "task %zu returned %zu", i, (size_t)r);
        sum += (size_t)r;
    }
    free(tasks);
    return (void *)sum;
}

Test(spawn_join, spawn_many) {
    size_t n = weft_test_size(100000, 2);
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &rt) == 0, "create");
    void *sum;
    cr_assert(weft_block_on(rt, spawn_many, (void *)n, &sum) == 0, "block_on");
    cr_assert((size_t)sum == n * (n - 1) / 2, "sum %zu", (size_t)sum);
    weft_runtime_stats st;
    cr_assert(weft_runtime_stats_get(rt, &st) == 0, "stats");
    cr_assert(st.tasks_spawned == n + 1, "spawned %llu", (unsigned long long)st.tasks_spawned);
    cr_assert(st.tasks_live == 0, "live %llu after every join", (unsigned long long)st.tasks_live);
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- threads that are not workers spawn and join ---------------------------------- */

struct foreign_job {
    weft_runtime *rt;
    size_t count;
    size_t base;
    weft_task **handles; /* spawned by this thread, joined by the next one */
    size_t sum;
};

static void *foreign_spawn(void *arg) {
    struct foreign_job *job = arg;
    for (size_t i = 0; i < job->count; i++) {
        job->handles[i] = weft_spawn_on(job->rt, identity, (void *)(job->base + i));
        cr_assert(job->handles[i] != NULL, "spawn_on: %s", strerror(errno));
    }
    return NULL;
}

static void *foreign_join(void *arg) {
    struct foreign_job *job = arg;
    for (size_t i = 0; i < job->count; i++) {
        void *r;
        cr_assert(weft_join(job->handles[i], &r) == 0, "foreign join");
        job->sum += (size_t)r;
    }
    return NULL;
}

Test(spawn_join, foreign_threads) {
    enum { THREADS = 4 };
    size_t per = weft_test_size(5000, 5);
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &rt) == 0, "create");
    struct foreign_job jobs[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct foreign_job){rt, per, i * per, malloc(per * sizeof(weft_task *)), 0};
        pthread_create(&threads[i], NULL, foreign_spawn, &jobs[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    /* Each handle is joined by a different thread than the one that spawned it. */
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, foreign_join, &jobs[(i + 1) % THREADS]);
    size_t total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < THREADS; i++) {
        total += jobs[i].sum;
        free(jobs[i].handles);
    }
    size_t n = THREADS * per;
    cr_assert(total == n * (n - 1) / 2, "foreign sum %zu", total);
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- destroy waits for detached tasks, and for what they spawn -------------------- */

static weft__atomic_word detached_ran;

static void *detached_leaf(void *arg) {
    (void)arg;
    weft_yield();
    weft__atomic_fetch_add_full(&detached_ran, 1);
    return NULL;
}

static void *detached_parent(void *arg) {
    size_t children = (size_t)arg;
    for (size_t i = 0; i < children; i++) {
        weft_task *t = weft_spawn(detached_leaf, NULL);
        cr_assert(t != NULL, "spawn");
        weft_detach(t);
    }
    weft__atomic_fetch_add_full(&detached_ran, 1);
    return NULL;
}

Test(spawn_join, destroy_waits_for_detached) {
    size_t parents = weft_test_size(1000, 25), children = 10;
    weft__atomic_store_relaxed(&detached_ran, 0);
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &rt) == 0, "create");
    for (size_t i = 0; i < parents; i++) {
        weft_task *t = weft_spawn_on(rt, detached_parent, (void *)children);
        cr_assert(t != NULL, "spawn_on");
        weft_detach(t);
    }
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    AO_t ran = weft__atomic_load_acquire(&detached_ran);
    cr_assert(ran == parents * (children + 1), "destroy returned after %lu of %zu tasks",
               (unsigned long)ran, parents * (children + 1));
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- a task of one runtime joins a task of another -------------------------------- */

static weft_runtime *other_runtime;

static void *join_other(void *arg) {
    weft_task *t = weft_spawn_on(other_runtime, fib, arg);
    cr_assert(t != NULL, "spawn_on other runtime");
    void *r;
    cr_assert(weft_join(t, &r) == 0, "join across runtimes");
    return r;
}

Test(spawn_join, cross_runtime) {
    weft_runtime *a;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 1}, &a) == 0, "create a");
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &other_runtime) == 0, "b");
    void *r;
    cr_assert(weft_block_on(a, join_other, (void *)15, &r) == 0, "block_on");
    cr_assert((intptr_t)r == 610, "fib(15) across runtimes = %ld", (long)(intptr_t)r);
    cr_assert(weft_runtime_destroy(other_runtime) == 0, "destroy b");
    cr_assert(weft_runtime_destroy(a) == 0, "destroy a");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- yield lets the worker's other runnable tasks run first ----------------------- */

static int order[8];
static int order_count;

static void *record(void *arg) {
    order[order_count++] = (int)(intptr_t)arg; /* one worker: no race */
    return NULL;
}

static void *yielder(void *arg) {
    (void)arg;
    weft_task *b = weft_spawn(record, (void *)2);
    weft_task *c = weft_spawn(record, (void *)3);
    order[order_count++] = 1;
    weft_yield(); /* b and c are runnable on this worker: both run before we go on */
    order[order_count++] = 4;
    weft_join(b, NULL);
    weft_join(c, NULL);
    return NULL;
}

Test(spawn_join, yield_order) {
    order_count = 0;
    /* Exact order on one worker: no chaos scheduling (it adds yields at spawns). */
    cr_assert(weft_run(&(weft_config){.workers = 1, .flags = WEFT_CONFIG_NO_CHAOS}, yielder, NULL,
                        NULL) == 0,
               "run");
    cr_assert(order_count == 4, "%d entries", order_count);
    cr_assert(order[0] == 1 && order[3] == 4, "order %d %d %d %d", order[0], order[1], order[2],
               order[3]);
    cr_assert(order[1] + order[2] == 5, "b and c ran while yielding");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- an idle worker picks up work a busy worker spawned -------------------------- */

static weft__atomic_word child_ran;

static void *set_flag(void *arg) {
    (void)arg;
    weft__atomic_store_release(&child_ran, 1);
    return NULL;
}

/* Spins without yielding until its child has run: only another worker can run it, so
 * this hangs (and the test fails on its 5 s limit) if the idle worker is not woken. */
static void *busy_parent(void *arg) {
    (void)arg;
    weft__atomic_store_relaxed(&child_ran, 0);
    weft_task *t = weft_spawn(set_flag, NULL);
    cr_assert(t != NULL, "spawn");
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!weft__atomic_load_acquire(&child_ran)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        cr_assert(now.tv_sec - start.tv_sec < 5, "no idle worker ran the spawned task");
    }
    return (void *)(intptr_t)weft_join(t, NULL);
}

/* chaos_seed: 0, or a seed of chaos scheduling. Seed 21 found a lost wake-up here (a
 * worker that parked without re-checking the queues; park.c): kept as a regression. */
static void test_idle_worker_steals(uint64_t chaos_seed) {
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2, .chaos_seed = chaos_seed}, &rt) ==
                   0,
               "create");
    for (int i = 0; i < 200; i++) {
        void *rc;
        cr_assert(weft_block_on(rt, busy_parent, NULL, &rc) == 0 && rc == NULL, "round %d", i);
        if (i % 50 == 0)
            weft_test_sleep_ms(20); /* let both workers park between some rounds */
    }
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}

Test(spawn_join, idle_worker_steals) {
    test_idle_worker_steals(0);
}

Test(spawn_join, idle_worker_steals_chaos_seed_21) {
    test_idle_worker_steals(21);
}

/* ---- inline joins: the child is still itself ------------------------------------- */

struct identity_record {
    uint64_t parent_id, child_id, grandchild_id;
    char name[WEFT_NAME_MAX];
};

static void *grandchild(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)weft_current_id();
}

/* Runs inline in its joiner when it is not stolen first: it names itself, parks (a
 * sleep, a join of its own child) and yields, and may resume on the other worker. */
static void *inline_child(void *arg) {
    struct identity_record *rec = arg;
    rec->child_id = weft_current_id();
    cr_assert(weft_set_name("inline-child") == 0, "set_name");
    cr_assert(weft_sleep_ms(0) == 0 && weft_sleep_until(weft_now() + 20000) == 0, "sleep");
    weft_task *g = weft_spawn(grandchild, NULL);
    cr_assert(g != NULL, "spawn grandchild");
    void *gid;
    cr_assert(weft_join(g, &gid) == 0, "join grandchild");
    rec->grandchild_id = (uint64_t)(uintptr_t)gid;
    weft_yield();
    cr_assert(weft_current_id() == rec->child_id, "the child's id changed across parks");
    return (void *)(uintptr_t)0xc0ffee;
}

static void *inline_parent(void *arg) {
    size_t rounds = (size_t)arg;
    for (size_t i = 0; i < rounds; i++) {
        struct identity_record rec = {.parent_id = weft_current_id()};
        weft_task *t = weft_spawn(inline_child, &rec);
        cr_assert(t != NULL, "spawn");
        void *r;
        cr_assert(weft_join(t, &r) == 0 && (uintptr_t)r == 0xc0ffee, "join");
        cr_assert(weft_current_id() == rec.parent_id, "the joiner's id changed");
        cr_assert(rec.child_id != 0 && rec.child_id != rec.parent_id, "child id %llu",
                   (unsigned long long)rec.child_id);
        cr_assert(rec.grandchild_id != 0 && rec.grandchild_id != rec.child_id &&
                       rec.grandchild_id != rec.parent_id,
                   "grandchild id");
    }
    return NULL;
}

static void test_inline_join_identity(unsigned flags) {
    size_t rounds = weft_test_size(2000, 10);
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2, .flags = flags}, &rt) == 0,
               "create");
    cr_assert(weft_block_on(rt, inline_parent, (void *)rounds, NULL) == 0, "block_on");
    weft_runtime_stats st;
    cr_assert(weft_runtime_stats_get(rt, &st) == 0, "stats");
    if (flags & WEFT_CONFIG_NO_INLINE_JOIN)
        cr_assert(st.joins_inline == 0, "%llu inline joins with them turned off",
                   (unsigned long long)st.joins_inline);
    else /* most children are joined before the other worker can steal them */
        cr_assert(st.joins_inline > 0, "no join ran inline in %zu rounds", rounds);
    printf("test_spawn_join: inline joins %llu of %zu (flags %u)\n",
           (unsigned long long)st.joins_inline, 2 * rounds, flags);
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}

Test(spawn_join, inline_join_identity) {
    test_inline_join_identity(0);
}

Test(spawn_join, inline_join_identity_turned_off) {
    test_inline_join_identity(WEFT_CONFIG_NO_INLINE_JOIN);
}

/* ---- an inline-joined child is still protected by the join's registration --------- */

struct contested {
    weft_task *child;
    const char *parent_frame; /* an address in the parent's frame, on its stack */
    weft__atomic_word verdict; /* set by the child: 1 running inline, 2 not inline */
    weft__atomic_word done;    /* set by the interloper when it has tried its worst */
    int second_join;          /* what a second join of the child returned */
};

/* Runs inline in its joiner (then its frames are on the joiner's stack, just below the
 * joiner's frame) unless the other worker stole it first. It does not finish before the
 * interloper is done, so the handle stays valid for the interloper. */
static void *held_child(void *arg) {
    struct contested *c = arg;
    char here;
    ptrdiff_t distance = c->parent_frame - &here;
    bool inline_run = distance > 0 && distance < (ptrdiff_t)WEFT_DEFAULT_STACK_SIZE;
    weft__atomic_store_release(&c->verdict, inline_run ? 1 : 2);
    while (!weft__atomic_load_acquire(&c->done))
        weft_sleep_ms(1); /* parks while it runs inline on its joiner's stack */
    return (void *)(uintptr_t)77;
}

/* Meanwhile, another task tries to detach and to join the child. When the child runs
 * inline, its joiner registered first, so both must fail: the detach is ignored and the
 * join returns -EINVAL, and the child is freed once, by its joiner. */
static void *interloper(void *arg) {
    struct contested *c = arg;
    AO_t verdict;
    while ((verdict = weft__atomic_load_acquire(&c->verdict)) == 0)
        weft_yield();
    if (verdict == 1) {
        weft_detach(c->child);
        c->second_join = weft_join(c->child, NULL);
    }
    weft__atomic_store_release(&c->done, 1);
    return (void *)(uintptr_t)verdict;
}

static void *contested_parent(void *arg) {
    size_t rounds = (size_t)arg, inlined = 0;
    for (size_t i = 0; i < rounds; i++) {
        char frame;
        struct contested c = {.parent_frame = &frame};
        weft_task *d = weft_spawn(interloper, &c);
        c.child = weft_spawn(held_child, &c); /* the bottom of our deque: inlinable */
        cr_assert(d && c.child, "spawn");
        void *r, *verdict;
        cr_assert(weft_join(c.child, &r) == 0 && (uintptr_t)r == 77, "join");
        cr_assert(weft_join(d, &verdict) == 0, "join interloper");
        if ((uintptr_t)verdict == 1) {
            inlined++;
            cr_assert(c.second_join == -EINVAL, "a second join returned %d", c.second_join);
        }
    }
    cr_assert(inlined > 0, "the child never ran inline in %zu rounds", rounds);
    return NULL;
}

Test(spawn_join, inline_join_contested) {
    size_t rounds = weft_test_size(100, 4);
    cr_assert(weft_run(&(weft_config){.workers = 2}, contested_parent, (void *)rounds, NULL) == 0,
               "run");
    WEFT_ASSERT_NO_LEAKS();
}
