/*
 * test_limits.c: resource limits and a misbehaving task. When a limit is reached, spawn
 * fails cleanly with its documented error and the runtime goes on running the tasks it
 * has; once they finish, the room comes back. test_api_errors.c has the basic cases
 * (max_tasks = 4 from one task; one task whose stack cannot be mapped); this file adds:
 *
 * - max_tasks, exact (max_tasks < 1024 * workers): spawns from tasks and from other
 *   threads, weft_block_on and foreign timer arms all refused at the limit; detached
 *   tasks hold their slot until they finish; max_tasks = 1 leaves room only for the
 *   first task;
 * - max_tasks with a tree of tasks that falls back to running a child itself when spawn
 *   fails: every node runs exactly once, and never more than max_tasks at once;
 * - max_tasks, batched (max_tasks >= 1024 * workers, counted 64 at a time per worker):
 *   the number of spawns that succeed stays within the documented slack, round after
 *   round (no slot is lost);
 * - address space exhausted (RLIMIT_AS, in a child process): weft_runtime_create fails
 *   with -EAGAIN or -ENOMEM and leaves nothing behind, whichever allocation or thread
 *   creation fails; in a running runtime, tasks that cannot get a stack finish with
 *   -ENOMEM at their join (or spawn fails with ENOMEM) while the tasks that have one run
 *   on and finish, and everything works again once the limit is lifted;
 * - a task that blocks its worker thread in a plain nanosleep for a second slows only
 *   that worker: with 4 workers, the tasks it had spawned onto its own deque are stolen
 *   and completed, and a batch of tasks spawned meanwhile completes, with steals, in far
 *   less than that second.
 *
 * The batched case is skipped under TSan, and the RLIMIT_AS case under TSan, ASan and
 * valgrind, which reserve address space of their own. The RLIMIT_AS case relies on its
 * process never having started a thread before it (glibc keeps the stacks of exited
 * threads for reuse, and a cached stack would let thread creation succeed under any
 * RLIMIT_AS): Criterion, and weft_criterion.h's stand-in, run each test in a process of
 * its own.
 */
#include "weft_criterion.h"

#include "base/atomic.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

static void *identity(void *arg) {
    return arg;
}

static uint64_t ms_since(uint64_t t0) {
    return (weft_now() - t0) / 1000000;
}

/* ---- a gate that tasks wait at -------------------------------------------------------- */

static weft__atomic_word gate;
static weft__atomic_word waiting; /* tasks that reached the gate */
static weft__atomic_word passed;  /* tasks that went through it */

/* Waits at the gate, then returns its argument. Sleeps rather than yields, so that many
 * of them cost no CPU; falls back to yielding if a sleep has no memory for its timer. */
static void *gated(void *arg) {
    weft__atomic_fetch_add_full(&waiting, 1);
    while (!weft__atomic_load_acquire(&gate)) {
        if (weft_sleep_ms(1) != 0)
            weft_yield();
    }
    weft__atomic_fetch_add_full(&passed, 1);
    return arg;
}

static void gate_reset(void) {
    weft__atomic_store_release(&gate, 0);
    weft__atomic_store_release(&waiting, 0);
    weft__atomic_store_release(&passed, 0);
}

static void gate_open(void) {
    weft__atomic_store_release(&gate, 1);
}

static void wait_for_waiting(AO_t n) {
    uint64_t t0 = weft_now();
    while (weft__atomic_load_acquire(&waiting) < n) {
        cr_assert(ms_since(t0) < 10000, "only %lu of %lu tasks reached the gate",
                   (unsigned long)weft__atomic_load_acquire(&waiting), (unsigned long)n);
        weft_test_sleep_ms(1);
    }
}

/* ---- max_tasks, exact ----------------------------------------------------------------- */

static weft__atomic_word spawn_at_limit_errno;

/* Tries a spawn once every slot is taken (the test thread says when), then waits at the
 * gate like the others. */
static void *spawner_at_limit(void *arg) {
    weft__atomic_fetch_add_full(&waiting, 1);
    while (weft__atomic_load_acquire(&spawn_at_limit_errno) != 1)
        weft_sleep_ms(1);
    errno = 0;
    weft_task *t = weft_spawn(identity, NULL);
    weft__atomic_store_release(&spawn_at_limit_errno, t ? 0 : (AO_t)errno + 2);
    if (t)
        weft_join(t, NULL);
    while (!weft__atomic_load_acquire(&gate))
        weft_sleep_ms(1);
    return arg;
}

static void on_timer(weft_timer *tm, void *arg) {
    (void)tm;
    weft__atomic_fetch_add_full((weft__atomic_word *)arg, 1);
}

Test(limits, max_tasks_exact) {
    enum { LIMIT = 8, DETACHED = 2 };
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2, .max_tasks = LIMIT}, &rt) == 0,
               "create");
    gate_reset();
    weft__atomic_store_release(&spawn_at_limit_errno, 0);
    weft_task *tasks[LIMIT];
    tasks[0] = weft_spawn_on(rt, spawner_at_limit, (void *)0);
    cr_assert(tasks[0] != NULL, "spawn_on 0: %s", strerror(errno));
    for (intptr_t i = 1; i < LIMIT; i++) {
        tasks[i] = weft_spawn_on(rt, gated, (void *)i);
        cr_assert(tasks[i] != NULL, "spawn_on %ld of %d: %s", (long)i, LIMIT, strerror(errno));
    }
    for (int i = LIMIT - DETACHED; i < LIMIT; i++)
        weft_detach(tasks[i]); /* they still hold their slots until they finish */
    wait_for_waiting(LIMIT);

    /* Every slot is taken: a spawn from here, a block_on and a foreign timer arm (which
     * needs a small task to carry it to a worker) are refused. */
    errno = 0;
    cr_assert(weft_spawn_on(rt, identity, NULL) == NULL && errno == EAGAIN,
               "spawn_on past max_tasks: errno %d", errno);
    cr_assert(weft_block_on(rt, identity, NULL, NULL) == -EAGAIN, "block_on past max_tasks");
    weft_timer *tm;
    weft__atomic_word fired = 0;
    cr_assert(weft_timer_create(rt, on_timer, (void *)&fired, &tm) == 0, "timer_create");
    int arm_rc = weft_timer_arm(tm, weft_now());
    cr_assert(arm_rc == -EAGAIN, "foreign timer arm at the limit: %d, not -EAGAIN", arm_rc);
    /* And from a task. */
    weft__atomic_store_release(&spawn_at_limit_errno, 1);
    uint64_t t0 = weft_now();
    while (weft__atomic_load_acquire(&spawn_at_limit_errno) == 1) {
        cr_assert(ms_since(t0) < 10000, "the task never tried its spawn");
        weft_test_sleep_ms(1);
    }
    AO_t task_errno = weft__atomic_load_acquire(&spawn_at_limit_errno);
    cr_assert(task_errno == EAGAIN + 2, "weft_spawn at the limit from a task: %s",
               task_errno == 0 ? "succeeded" : strerror((int)task_errno - 2));

    /* The tasks that hold the slots run on and finish with their results. */
    gate_open();
    for (intptr_t i = 0; i < LIMIT - DETACHED; i++) {
        void *r = NULL;
        cr_assert(weft_join(tasks[i], &r) == 0, "join %ld", (long)i);
        cr_assert((intptr_t)r == i, "task %ld returned %ld", (long)i, (long)(intptr_t)r);
    }
    /* Room again once the detached ones have finished too: the whole limit. (They must
     * have gone through the gate before it closes again.) */
    t0 = weft_now();
    while (weft__atomic_load_acquire(&passed) < LIMIT - 1) {
        cr_assert(ms_since(t0) < 10000, "the detached tasks never finished");
        weft_test_sleep_ms(1);
    }
    gate_reset();
    for (intptr_t i = 0; i < LIMIT; i++) {
        t0 = weft_now();
        while (!(tasks[i] = weft_spawn_on(rt, gated, (void *)i))) {
            cr_assert(errno == EAGAIN, "spawn_on: %s", strerror(errno));
            cr_assert(ms_since(t0) < 10000, "slot %ld never came back", (long)i);
            weft_test_sleep_ms(1);
        }
    }
    errno = 0;
    cr_assert(weft_spawn_on(rt, identity, NULL) == NULL && errno == EAGAIN, "limit again");
    gate_open();
    for (intptr_t i = 0; i < LIMIT; i++) {
        void *r = NULL;
        cr_assert(weft_join(tasks[i], &r) == 0 && (intptr_t)r == i, "join %ld", (long)i);
    }
    /* The refused arm left the timer disarmed and usable. */
    cr_assert(weft_timer_cancel(tm) == 0, "a refused arm left the timer armed");
    t0 = weft_now();
    while ((arm_rc = weft_timer_arm(tm, weft_now())) == -EAGAIN)
        cr_assert(ms_since(t0) < 10000, "the timer arm task never found a slot");
    cr_assert(arm_rc == 0, "timer_arm: %d", arm_rc);
    t0 = weft_now();
    while (weft__atomic_load_acquire(&fired) == 0) {
        cr_assert(ms_since(t0) < 10000, "the timer never fired");
        weft_test_sleep_ms(1);
    }
    cr_assert(weft_timer_destroy(tm) == 0, "timer_destroy");
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}

/* max_tasks = 1: the first task is the only one; its spawns all fail. */
static void *spawn_with_no_room(void *arg) {
    (void)arg;
    for (int i = 0; i < 100; i++) {
        errno = 0;
        cr_assert(weft_spawn(identity, NULL) == NULL && errno == EAGAIN, "spawn %d", i);
    }
    return (void *)7;
}

Test(limits, max_tasks_one) {
    void *r = NULL;
    cr_assert(
        weft_run(&(weft_config){.workers = 2, .max_tasks = 1}, spawn_with_no_room, NULL, &r) == 0 &&
            (intptr_t)r == 7,
        "weft_run with max_tasks = 1");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- max_tasks with a tree that runs a child itself when spawn fails ------------------ */

static weft__atomic_word tree_live, tree_max_live, tree_refused;
static size_t tree_limit;

static void *tree(void *arg) {
    intptr_t depth = (intptr_t)arg;
    AO_t live = weft__atomic_fetch_add_full(&tree_live, 1) + 1;
    AO_t seen = weft__atomic_load_acquire(&tree_max_live);
    while (live > seen) {
        AO_t was = weft__atomic_cas_full(&tree_max_live, seen, live);
        if (was == seen)
            break;
        seen = was;
    }
    intptr_t nodes = 1;
    if (depth > 0) {
        weft_task *kids[2];
        for (int k = 0; k < 2; k++) {
            kids[k] = weft_spawn(tree, (void *)(depth - 1));
            if (!kids[k]) {
                cr_assert(errno == EAGAIN, "spawn in the tree: %s", strerror(errno));
                weft__atomic_fetch_add_full(&tree_refused, 1);
            }
        }
        weft_yield(); /* let others fill the limit */
        for (int k = 0; k < 2; k++) {
            void *r;
            if (kids[k]) {
                cr_assert(weft_join(kids[k], &r) == 0, "join in the tree");
            } else {
                weft__atomic_fetch_add_full(&tree_live, (AO_t)-1); /* the child is us */
                r = tree((void *)(depth - 1));
                weft__atomic_fetch_add_full(&tree_live, 1);
            }
            nodes += (intptr_t)r;
        }
    }
    weft__atomic_fetch_add_full(&tree_live, (AO_t)-1);
    return (void *)nodes;
}

Test(limits, max_tasks_tree) {
    intptr_t depth = 10; /* 2047 nodes */
#if defined(WEFT__TSAN)
    depth = 7;
#endif
    tree_limit = 32;
    weft__atomic_store_release(&tree_live, 0);
    weft__atomic_store_release(&tree_max_live, 0);
    weft__atomic_store_release(&tree_refused, 0);
    void *r = NULL;
    cr_assert(weft_run(&(weft_config){.workers = 4, .max_tasks = tree_limit}, tree, (void *)depth,
                        &r) == 0,
               "weft_run");
    cr_assert((intptr_t)r == ((intptr_t)2 << depth) - 1, "the tree counted %ld nodes, not %ld",
               (long)(intptr_t)r, (long)(((intptr_t)2 << depth) - 1));
    cr_assert(weft__atomic_load_acquire(&tree_refused) > 0, "no spawn was refused");
    cr_assert(weft__atomic_load_acquire(&tree_max_live) <= tree_limit,
               "%lu tasks ran at once with max_tasks = %zu",
               (unsigned long)weft__atomic_load_acquire(&tree_max_live), tree_limit);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- max_tasks, batched ---------------------------------------------------------------- */

#if !defined(WEFT__TSAN) /* 2,048 stacks alive at once would cost a TSan fiber each */

struct batched_round {
    size_t limit;
    weft_task **tasks;
    size_t spawned;
};

static void *fill_to_the_limit(void *arg) {
    struct batched_round *b = arg;
    b->spawned = 0;
    for (;;) {
        cr_assert(b->spawned < b->limit, "more than max_tasks - 1 spawns succeeded");
        weft_task *t = weft_spawn(gated, (void *)b->spawned);
        if (!t) {
            cr_assert(errno == EAGAIN, "spawn: %s", strerror(errno));
            break;
        }
        b->tasks[b->spawned++] = t;
    }
    gate_open();
    for (size_t i = 0; i < b->spawned; i++) {
        void *r;
        cr_assert(weft_join(b->tasks[i], &r) == 0 && (size_t)r == i, "join %zu", i);
    }
    return NULL;
}

static void max_tasks_batched(void) {
    enum { WORKERS = 2, ROUNDS = 4 };
    struct batched_round b = {.limit = 1024 * WORKERS};
    b.tasks = malloc(b.limit * sizeof(*b.tasks));
    cr_assert(b.tasks != NULL, "malloc");
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = WORKERS, .max_tasks = b.limit}, &rt) ==
                   0,
               "create");
    /* Back to back: weft.h says "a spawn may fail while up to 128 slots per worker are held
     * unused by other workers", and the spawning task holds a slot itself. One more slot
     * may still be held by the previous round's first task: its worker gives its slot
     * back just after marking it complete, so the previous weft_block_on may have
     * returned a moment before. */
    size_t counts[ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        gate_reset();
        cr_assert(weft_block_on(rt, fill_to_the_limit, &b, NULL) == 0, "block_on");
        counts[round] = b.spawned;
        size_t low = b.limit - 1 - 128 * (WORKERS - 1) - 1;
        cr_assert(b.spawned >= low && b.spawned <= b.limit - 1,
                   "round %d: %zu spawns succeeded with max_tasks = %zu (expected %zu to %zu)",
                   round, b.spawned, b.limit, low, b.limit - 1);
    }
    /* Once the workers have gone idle (and so handed back every slot they held), every
     * slot is free again: no round lost any. */
    weft_test_sleep_ms(200);
    gate_reset();
    cr_assert(weft_block_on(rt, fill_to_the_limit, &b, NULL) == 0, "block_on");
    cr_assert(b.spawned == b.limit - 1,
               "after %d rounds and a pause, %zu spawns succeeded with max_tasks = %zu, not %zu",
               ROUNDS, b.spawned, b.limit, b.limit - 1);
    printf(
        "  max_tasks %zu: spawns that succeeded back to back %zu %zu %zu %zu, after a pause %zu\n",
        b.limit, counts[0], counts[1], counts[2], counts[3], b.spawned);
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    free(b.tasks);
    WEFT_ASSERT_NO_LEAKS();
}

#endif /* !WEFT__TSAN */

Test(limits, max_tasks_batched) {
#if defined(WEFT__TSAN)
    cr_skip_test("under TSan: 2,048 stacks alive at once cost a TSan fiber each");
#else
    max_tasks_batched();
#endif
}

/* ---- address space exhausted, in a child process -------------------------------------- */

/* ASan and TSan reserve terabytes of address space; qemu-user reserves its own. */
#if !defined(WEFT__ASAN) && !defined(WEFT__TSAN) && !defined(WEFT_TEST_UNDER_EMULATOR)

static void set_address_space_limit(rlim_t bytes) {
    struct rlimit old;
    cr_assert(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit");
    struct rlimit lim = {bytes, old.rlim_max};
    cr_assert(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit(%llu)", (unsigned long long)bytes);
}

/* weft_runtime_create under limits that let it get more or less far: it succeeds or
 * fails with -EAGAIN/-ENOMEM, and a failure leaves nothing behind. */
static void child_create_under_limits(void) {
    static const size_t margins_kib[] = {0, 64, 256, 1024, 4096, 9000, 12000, 17000, 26000};
    int failures = 0, successes = 0;
    for (size_t i = 0; i < sizeof margins_kib / sizeof margins_kib[0]; i++) {
        size_t base = weft_test_proc_status_bytes("VmSize");
        set_address_space_limit(base + (margins_kib[i] << 10));
        weft_runtime *rt = NULL;
        int rc = weft_runtime_create(&(weft_config){.workers = 4}, &rt);
        cr_assert(rc == 0 || rc == -EAGAIN || rc == -ENOMEM,
                   "create with %zu KiB to spare: %d (%s)", margins_kib[i], rc, strerror(-rc));
        printf("  weft_runtime_create with %zu KiB of address space to spare: %s\n", margins_kib[i],
               rc == 0         ? "0"
               : rc == -EAGAIN ? "-EAGAIN"
                               : "-ENOMEM");
        if (rc == 0) {
            /* Whatever works, works correctly: a task runs, or fails to start. */
            void *r = NULL;
            int brc = weft_block_on(rt, identity, (void *)9, &r);
            cr_assert((brc == 0 && (intptr_t)r == 9) || brc == -ENOMEM || brc == -EAGAIN,
                       "block_on with %zu KiB to spare: %d", margins_kib[i], brc);
            cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
            successes++;
        } else {
            cr_assert(rt == NULL, "a failed create set *rt");
            failures++;
        }
        set_address_space_limit(RLIM_INFINITY);
        WEFT_ASSERT_NO_LEAKS();
    }
    cr_assert(failures > 0, "weft_runtime_create never failed under RLIMIT_AS");
    (void)successes;
}

struct holder {
    weft_task *t;
    int rc;
    void *result;
};

/* Tasks that got their stacks before the limit run to completion; tasks that need a new
 * slab of stacks after it finish with -ENOMEM (or are refused at spawn); the runtime then
 * works as before when the limit is lifted. */
static void child_stacks_exhausted(void) {
    enum { HOLDERS = 8, MORE = 200 };
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &rt) == 0, "create");
    gate_reset();
    struct holder holders[HOLDERS], more[MORE];
    for (intptr_t i = 0; i < HOLDERS; i++) {
        holders[i].t = weft_spawn_on(rt, gated, (void *)i);
        cr_assert(holders[i].t != NULL, "spawn_on holder %ld", (long)i);
    }
    wait_for_waiting(HOLDERS); /* they have their stacks and are parked at the gate */

    /* No room for another slab of stacks (32 x 68 KiB). */
    set_address_space_limit(weft_test_proc_status_bytes("VmSize") + (512 << 10));
    size_t refused = 0, failed = 0, ran = 0;
    for (intptr_t i = 0; i < MORE; i++) {
        errno = 0;
        more[i].t = weft_spawn_on(rt, gated, (void *)(HOLDERS + i));
        if (!more[i].t) {
            cr_assert(errno == ENOMEM, "spawn_on under RLIMIT_AS: %s", strerror(errno));
            refused++;
        }
    }
    /* Wait until each task is either at the gate or finished without a stack: a join with
     * a deadline already past says -ENOMEM for those and -ETIMEDOUT for the others. */
    uint64_t t0 = weft_now();
    for (;;) {
        size_t settled = 0;
        for (int i = 0; i < MORE; i++) {
            if (!more[i].t) {
                settled++;
                continue;
            }
            more[i].rc = weft_join_until(more[i].t, 0, &more[i].result);
            if (more[i].rc == -ENOMEM) {
                cr_assert(more[i].result == NULL, "a task that never ran has a result");
                more[i].t = NULL;
                failed++;
                settled++;
            } else {
                cr_assert(more[i].rc == -ETIMEDOUT, "join_until(0): %d", more[i].rc);
            }
        }
        if (settled + (weft__atomic_load_acquire(&waiting) - HOLDERS) >= MORE)
            break;
        cr_assert(ms_since(t0) < 20000, "%zu of %d tasks settled", settled, MORE);
        weft_test_sleep_ms(1);
    }
    ran = weft__atomic_load_acquire(&waiting) - HOLDERS;
    cr_assert(refused + failed > 0, "every one of %d tasks got a stack under RLIMIT_AS (%zu ran)",
               MORE, ran);
    cr_assert(ran + refused + failed == MORE, "%zu ran, %zu refused, %zu failed of %d", ran,
               refused, failed, MORE);

    /* The tasks that have stacks finish, with their results. */
    gate_open();
    for (intptr_t i = 0; i < HOLDERS; i++) {
        void *r = NULL;
        cr_assert(weft_join(holders[i].t, &r) == 0 && (intptr_t)r == i, "holder %ld", (long)i);
    }
    for (intptr_t i = 0; i < MORE; i++) {
        if (!more[i].t)
            continue;
        void *r = NULL;
        cr_assert(weft_join(more[i].t, &r) == 0 && (intptr_t)r == HOLDERS + i, "task %ld",
                   (long)i);
    }

    /* Limit lifted: as many tasks as we like again. */
    set_address_space_limit(RLIM_INFINITY);
    gate_reset();
    for (intptr_t i = 0; i < MORE; i++) {
        more[i].t = weft_spawn_on(rt, gated, (void *)i);
        cr_assert(more[i].t != NULL, "spawn_on after the limit: %s", strerror(errno));
    }
    wait_for_waiting(MORE);
    gate_open();
    for (intptr_t i = 0; i < MORE; i++) {
        void *r = NULL;
        cr_assert(weft_join(more[i].t, &r) == 0 && (intptr_t)r == i, "task %ld", (long)i);
    }
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
    printf("  RLIMIT_AS: %zu ran, %zu failed to start (-ENOMEM at join), %zu refused at spawn\n",
           ran, failed, refused);
}

#endif /* !WEFT__ASAN && !WEFT__TSAN && !WEFT_TEST_UNDER_EMULATOR */

Test(limits, address_space_exhausted) {
    setvbuf(stdout, NULL, _IOLBF, 0);
#if defined(WEFT__ASAN) || defined(WEFT__TSAN)
    cr_skip_test("the sanitizer reserves terabytes of address space");
#elif defined(WEFT_TEST_UNDER_EMULATOR)
    cr_skip_test("under an emulator (qemu-user): RLIMIT_AS limits qemu's own reservations");
#else
    if (RUNNING_ON_VALGRIND)
        cr_skip_test("under valgrind: it manages the address space itself");
    fflush(NULL);
    pid_t pid = fork(); /* no runtime exists now: no threads to lose */
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        child_create_under_limits();
        child_stacks_exhausted();
        fflush(NULL);
        _exit(0);
    }
    int status;
    cr_assert(waitpid(pid, &status, 0) == pid, "waitpid");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed (status %#x)",
               status);
#endif
}

/* ---- a task that blocks its worker thread ----------------------------------------------- */

enum { BLOCKER_CHILDREN = 8 };

static weft__atomic_word blocker_sleeping, blocker_woke, children_done;

static void *blocker_child(void *arg) {
    (void)arg;
    weft__atomic_fetch_add_full(&children_done, 1);
    return NULL;
}

/* Spawns children onto its own worker's deque, then blocks that worker in nanosleep. */
static void *blocker(void *arg) {
    (void)arg;
    weft_task *kids[BLOCKER_CHILDREN];
    for (int i = 0; i < BLOCKER_CHILDREN; i++) {
        kids[i] = weft_spawn(blocker_child, NULL);
        cr_assert(kids[i] != NULL, "spawn");
    }
    uint64_t t0 = weft_now();
    weft__atomic_store_release(&blocker_sleeping, 1);
    struct timespec ts = {1, 0};
    while (nanosleep(&ts, &ts) != 0) {
    }
    weft__atomic_store_release(&blocker_woke, 1);
    for (int i = 0; i < BLOCKER_CHILDREN; i++)
        cr_assert(weft_join(kids[i], NULL) == 0, "join");
    return (void *)(uintptr_t)ms_since(t0);
}

static void *work_item(void *arg) {
    volatile uint64_t x = (uintptr_t)arg;
    for (int i = 0; i < 2000; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return (void *)(uintptr_t)(x | 1);
}

static void *batch(void *arg) {
    size_t n = (size_t)arg;
    weft_task **tasks = malloc(n * sizeof(*tasks));
    cr_assert(tasks != NULL, "malloc");
    for (size_t i = 0; i < n; i++) {
        tasks[i] = weft_spawn(work_item, (void *)i);
        cr_assert(tasks[i] != NULL, "spawn %zu: %s", i, strerror(errno));
    }
    for (size_t i = 0; i < n; i++) {
        void *r;
        cr_assert(weft_join(tasks[i], &r) == 0 && r != NULL, "join %zu", i);
    }
    free(tasks);
    return NULL;
}

Test(limits, blocked_worker) {
    size_t n = weft_test_size(2000, 4);
    weft__atomic_store_release(&blocker_sleeping, 0);
    weft__atomic_store_release(&blocker_woke, 0);
    weft__atomic_store_release(&children_done, 0);
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 4}, &rt) == 0, "create");
    weft_runtime_stats st;
    cr_assert(weft_runtime_stats_get(rt, &st) == 0, "stats");
    uint64_t steals_before = st.steals;

    weft_task *b = weft_spawn_on(rt, blocker, NULL);
    cr_assert(b != NULL, "spawn_on blocker");
    uint64_t t0 = weft_now();
    while (!weft__atomic_load_acquire(&blocker_sleeping)) {
        cr_assert(ms_since(t0) < 10000, "the blocker never ran");
        weft_test_sleep_ms(1);
    }
    /* Its children sit on the blocked worker's deque: only thieves can run them. */
    t0 = weft_now();
    while (weft__atomic_load_acquire(&children_done) < BLOCKER_CHILDREN &&
           !weft__atomic_load_acquire(&blocker_woke))
        weft_test_sleep_ms(1);
    uint64_t children_ms = ms_since(t0);
    cr_assert(!weft__atomic_load_acquire(&blocker_woke),
               "the blocked worker's children waited for it (%lu of %d done after %lu ms)",
               (unsigned long)weft__atomic_load_acquire(&children_done), BLOCKER_CHILDREN,
               (unsigned long)children_ms);

    /* A batch spawned meanwhile runs on the other workers. */
    t0 = weft_now();
    cr_assert(weft_block_on(rt, batch, (void *)n, NULL) == 0, "block_on batch");
    uint64_t batch_ms = ms_since(t0);
    bool still_blocked = !weft__atomic_load_acquire(&blocker_woke);
    cr_assert(weft_runtime_stats_get(rt, &st) == 0, "stats");
    uint64_t steals = st.steals - steals_before;

    void *r;
    cr_assert(weft_join(b, &r) == 0, "join blocker");
    printf("  blocked worker: children stolen and done in %lu ms, batch of %zu in %lu ms, "
           "%llu steals, blocker slept %lu ms\n",
           (unsigned long)children_ms, n, (unsigned long)batch_ms, (unsigned long long)steals,
           (unsigned long)(uintptr_t)r);
    cr_assert(still_blocked,
               "the batch of %zu tasks took %lu ms: it finished only after the "
               "blocked worker woke",
               n, (unsigned long)batch_ms);
#if !defined(WEFT__TSAN) && !defined(WEFT__ASAN)
    if (!RUNNING_ON_VALGRIND)
        cr_assert(batch_ms < 500, "the batch of %zu tasks took %lu ms", n,
                   (unsigned long)batch_ms);
#endif
    cr_assert(steals >= BLOCKER_CHILDREN,
               "%llu steals: the blocked worker's %d children "
               "cannot have run elsewhere without being stolen",
               (unsigned long long)steals, BLOCKER_CHILDREN);
    cr_assert((uintptr_t)r >= 1000, "the blocker slept %lu ms", (unsigned long)(uintptr_t)r);
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}
