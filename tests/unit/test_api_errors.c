/*
 * test_api_errors.c: every misuse of the public API that a caller can make by mistake
 * gets its documented error, and the runtime keeps working afterwards. Each test ends
 * with its runtimes destroyed and checks that nothing leaked.
 */
#include "weft_test.h"

#include "base/atomic.h"
#include "sched/runtime.h"

#include "weft_criterion.h"
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>

static void expect_no_leaks(void) {
    char why[160];
    cr_expect(!weft_test_leaks(why, sizeof why), "weft leaked: %s", why);
}

static void *identity(void *arg) {
    return arg;
}

Test(config, rejects_out_of_range_fields) {
    weft_runtime *rt = NULL;
    cr_expect_eq(weft_runtime_create(NULL, NULL), -EINVAL);
    cr_expect_eq(weft_runtime_create(&(weft_config){.workers = WEFT_MAX_WORKERS + 1}, &rt),
                 -EINVAL);
    cr_expect_eq(weft_runtime_create(&(weft_config){.stack_size = WEFT_MIN_STACK_SIZE - 1}, &rt),
                 -EINVAL);
    cr_expect_eq(weft_runtime_create(&(weft_config){.stack_size = WEFT_MAX_STACK_SIZE + 1}, &rt),
                 -EINVAL);
    cr_expect_eq(weft_runtime_create(&(weft_config){.max_tasks = WEFT_MAX_MAX_TASKS + 1}, &rt),
                 -EINVAL);
    cr_expect_eq(weft_run(&(weft_config){.workers = WEFT_MAX_WORKERS + 1}, identity, NULL, NULL),
                 -EINVAL);
    cr_expect_eq(weft_runtime_create(&(weft_config){.flags = 4u}, &rt), -EINVAL);
    cr_expect_null(rt);
    expect_no_leaks();
}

Test(config, zero_and_null_mean_defaults) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(NULL, &rt), 0);
    weft_runtime_stats st;
    cr_assert_eq(weft_runtime_stats_get(rt, &st), 0);
    cr_expect_geq(st.workers, 1);
    cr_expect_eq(weft_runtime_destroy(rt), 0);
    void *r = NULL;
    cr_expect_eq(weft_run(NULL, identity, (void *)7, &r), 0);
    cr_expect_eq((intptr_t)r, 7);
    cr_expect_eq(weft_run(&(weft_config){0}, identity, NULL, NULL), 0, "result may be NULL");
    expect_no_leaks();
}

Test(api, null_arguments) {
    errno = 0;
    cr_expect_null(weft_spawn_on(NULL, identity, NULL));
    cr_expect_eq(errno, EINVAL);
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1}, &rt), 0);
    errno = 0;
    cr_expect_null(weft_spawn_on(rt, NULL, NULL));
    cr_expect_eq(errno, EINVAL);
    cr_expect_eq(weft_block_on(NULL, identity, NULL, NULL), -EINVAL);
    cr_expect_eq(weft_block_on(rt, NULL, NULL, NULL), -EINVAL);
    cr_expect_eq(weft_run(NULL, NULL, NULL, NULL), -EINVAL);
    cr_expect_eq(weft_join(NULL, NULL), -EINVAL);
    weft_detach(NULL); /* ignored */
    cr_expect_eq(weft_runtime_destroy(NULL), -EINVAL);
    cr_expect_eq(weft_runtime_stats_get(NULL, &(weft_runtime_stats){0}), -EINVAL);
    cr_expect_eq(weft_runtime_stats_get(rt, NULL), -EINVAL);
    weft_stats_get(NULL); /* ignored */
    cr_expect_eq(weft_runtime_destroy(rt), 0);
    expect_no_leaks();
}

Test(api, outside_a_task) {
    errno = 0;
    cr_expect_null(weft_spawn(identity, NULL));
    cr_expect_eq(errno, EPERM);
    cr_expect_eq(weft_set_name("x"), -EPERM);
    cr_expect_eq(weft_current_id(), 0);
    weft_yield(); /* does nothing */
    expect_no_leaks();
}

static void *misuse_inside(void *arg) {
    weft_runtime *rt = arg;
    errno = 0;
    cr_expect_null(weft_spawn(NULL, NULL));
    cr_expect_eq(errno, EINVAL);
    cr_expect_eq(weft_set_name(NULL), -EINVAL);
    cr_expect_eq(weft_set_name("a name longer than thirty-one bytes, cut"), 0);
    cr_expect_neq(weft_current_id(), 0);
    /* Blocking a worker thread, or destroying the runtime from inside, would deadlock. */
    cr_expect_eq(weft_block_on(rt, identity, NULL, NULL), -EDEADLK);
    cr_expect_eq(weft_run(NULL, identity, NULL, NULL), -EDEADLK);
    cr_expect_eq(weft_runtime_destroy(rt), -EDEADLK);
    /* Joining yourself. */
    return NULL;
}

Test(api, misuse_inside_a_task) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    cr_expect_eq(weft_block_on(rt, misuse_inside, rt, NULL), 0);
    cr_expect_eq(weft_runtime_destroy(rt), 0);
    expect_no_leaks();
}

static weft_task *self_handle;
static weft__atomic_word self_handle_ready;

static void *join_self(void *arg) {
    (void)arg;
    while (!weft__atomic_load_acquire(&self_handle_ready))
        weft_yield();
    return (void *)(intptr_t)weft_join(self_handle, NULL);
}

Test(api, join_self_is_edeadlk) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1}, &rt), 0);
    self_handle = weft_spawn_on(rt, join_self, NULL);
    cr_assert_not_null(self_handle);
    /* The handle stays ours: the task's own join of it failed without consuming it. */
    weft_task *t = self_handle;
    weft__atomic_store_release(&self_handle_ready, 1);
    void *r;
    cr_expect_eq(weft_join(t, &r), 0);
    cr_expect_eq((intptr_t)r, -EDEADLK);
    cr_expect_eq(weft_runtime_destroy(rt), 0);
    expect_no_leaks();
}

/* A second join of a handle while the first waits. */
static weft__atomic_word gate;

static void *wait_for_gate(void *arg) {
    (void)arg;
    while (!weft__atomic_load_acquire(&gate))
        weft_yield();
    return (void *)42;
}

struct joiner_arg {
    weft_task *t;
    int rc;
    void *result;
};

static void *join_in_thread(void *arg) {
    struct joiner_arg *j = arg;
    j->rc = weft_join(j->t, &j->result);
    return NULL;
}

Test(api, second_joiner_is_einval_and_detach_is_ignored) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    weft__atomic_store_relaxed(&gate, 0);
    weft_task *t = weft_spawn_on(rt, wait_for_gate, NULL);
    struct joiner_arg first = {t, 1, NULL};
    pthread_t thread;
    pthread_create(&thread, NULL, join_in_thread, &first);
    /* Wait until the first joiner has registered (JOIN_WAITING is set). */
    while (!(weft__atomic_load_acquire(&t->state) & WEFT__TASK_JOIN_WAITING))
        weft_test_sleep_ms(1);
    cr_expect_eq(weft_join(t, NULL), -EINVAL);
    weft_detach(t); /* ignored: the waiting join consumes the handle */
    weft__atomic_store_release(&gate, 1);
    pthread_join(thread, NULL);
    cr_expect_eq(first.rc, 0);
    cr_expect_eq((intptr_t)first.result, 42);
    cr_expect_eq(weft_runtime_destroy(rt), 0);
    expect_no_leaks();
}

static void *spawn_past_limit(void *arg) {
    size_t limit = (size_t)arg;
    weft_task *tasks[8];
    weft__atomic_store_relaxed(&gate, 0);
    /* We are one live task; limit - 1 more fit. */
    for (size_t i = 0; i + 1 < limit; i++) {
        tasks[i] = weft_spawn(wait_for_gate, NULL);
        cr_assert_not_null(tasks[i], "spawn %zu of %zu", i, limit);
    }
    errno = 0;
    cr_expect_null(weft_spawn(identity, NULL));
    cr_expect_eq(errno, EAGAIN);
    weft__atomic_store_release(&gate, 1);
    for (size_t i = 0; i + 1 < limit; i++)
        cr_expect_eq(weft_join(tasks[i], NULL), 0);
    /* Room again. */
    weft_task *t = weft_spawn(identity, (void *)5);
    cr_assert_not_null(t);
    void *r;
    cr_expect_eq(weft_join(t, &r), 0);
    cr_expect_eq((intptr_t)r, 5);
    return NULL;
}

Test(api, max_tasks_makes_spawn_fail_with_eagain) {
    cr_expect_eq(
        weft_run(&(weft_config){.workers = 2, .max_tasks = 4}, spawn_past_limit, (void *)4, NULL),
        0);
    expect_no_leaks();
}

/* Destroy in progress: a foreign spawn fails with ESHUTDOWN; a task may still spawn. */
static void *spawn_during_shutdown(void *arg) {
    (void)arg;
    while (!weft__atomic_load_acquire(&gate))
        weft_yield();
    weft_task *t = weft_spawn(identity, (void *)9);
    cr_assert_not_null(t, "a task may spawn while the runtime shuts down");
    void *r;
    cr_expect_eq(weft_join(t, &r), 0);
    cr_expect_eq((intptr_t)r, 9);
    return NULL;
}

static void *destroy_in_thread(void *arg) {
    return (void *)(intptr_t)weft_runtime_destroy(arg);
}

Test(api, shutdown_refuses_foreign_spawns_and_second_destroy) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    weft__atomic_store_relaxed(&gate, 0);
    weft_task *t = weft_spawn_on(rt, spawn_during_shutdown, NULL);
    weft_detach(t);
    pthread_t destroyer;
    pthread_create(&destroyer, NULL, destroy_in_thread, rt);
    /* Wait until destroy has begun, then check what it refuses. */
    while (!weft__atomic_load_acquire(&rt->shutting_down))
        weft_test_sleep_ms(1);
    errno = 0;
    cr_expect_null(weft_spawn_on(rt, identity, NULL));
    cr_expect_eq(errno, ESHUTDOWN);
    cr_expect_eq(weft_block_on(rt, identity, NULL, NULL), -ESHUTDOWN);
    cr_expect_eq(weft_runtime_destroy(rt), -EBUSY);
    weft__atomic_store_release(&gate, 1);
    void *rc;
    pthread_join(destroyer, &rc);
    cr_expect_eq((intptr_t)rc, 0);
    expect_no_leaks();
}

static void *named(void *arg) {
    (void)arg;
    weft_set_name("a name longer than thirty-one bytes, cut");
    weft__worker *w = weft__worker_current();
    return strdup(w->current->name);
}

Test(api, set_name_copies_and_cuts) {
    void *name;
    cr_assert_eq(weft_run(NULL, named, NULL, &name), 0);
    cr_expect_eq(strlen(name), WEFT_NAME_MAX - 1);
    cr_expect_eq(strncmp(name, "a name longer than thirty-one b", WEFT_NAME_MAX - 1), 0);
    free(name);
    expect_no_leaks();
}

/* Resource exhaustion: a task whose stack cannot be mapped finishes without running and
 * its join says -ENOMEM; the runtime keeps working once memory is back. */
Test(resources, unmappable_stack_fails_the_join_with_enomem) {
#if defined(WEFT__ASAN)
    cr_skip_test("ASan reserves terabytes of address space: RLIMIT_AS cannot be lowered");
#elif defined(WEFT_TEST_UNDER_EMULATOR)
    cr_skip_test("under an emulator (qemu-user): RLIMIT_AS limits qemu's own reservations");
#else
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1}, &rt), 0);
    struct rlimit old;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    /* Room for the task object's chunk, not for a slab of stacks (32 x 68 KiB). */
    struct rlimit tight = {weft_test_proc_status_bytes("VmSize") + (512 << 10), old.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_AS, &tight), 0);
    weft_task *t = weft_spawn_on(rt, identity, (void *)5);
    cr_assert_not_null(t);
    void *r = (void *)1;
    cr_expect_eq(weft_join(t, &r), -ENOMEM);
    cr_expect_null(r);
    cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
    t = weft_spawn_on(rt, identity, (void *)5);
    cr_assert_not_null(t);
    cr_expect_eq(weft_join(t, &r), 0);
    cr_expect_eq((intptr_t)r, 5);
    cr_expect_eq(weft_runtime_destroy(rt), 0);
    expect_no_leaks();
#endif
}
