/*
 * test_blocking.c: the blocking pool (weft.h, "Blocking calls"): weft_spawn_blocking from
 * a task and weft_spawn_blocking_on from a plain thread, results joined; the call runs on
 * a plain thread (no current task or runtime there, weft_spawn refused with EPERM, while
 * weft_spawn_on, weft_join, weft_block_on, weft_sleep_ms and the fd calls work from it);
 * the argument errors (EPERM outside a task, EINVAL for a NULL fn or runtime, ESHUTDOWN
 * once destroy has begun, EAGAIN at max_tasks because each call is a live task, -EINVAL
 * for max_blocking_threads over WEFT_MAX_BLOCKING_THREADS); the pool at its cap
 * (max_blocking_threads = 2, 8 calls blocked on a latch: never more than 2 threads and
 * 2 calls running at once, and the stats say 2 busy and 6 queued while they wait; then
 * all complete); keep-alive (threads go back to 0 after 50 ms of
 * idleness, never before a 10 s default keep-alive, and the pool grows again); destroy
 * waits for detached calls, running and queued (each records that it finished; destroy
 * must not return before). Every test destroys its runtimes and checks that nothing
 * leaked. Bounds on waiting are generous (seconds); the only lower bound is "not before
 * the keep-alive".
 */
#include "weft_criterion.h"

#include "base/atomic.h"
#include "sched/runtime.h" /* rt->shutting_down, to know that destroy has begun */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS      1000000ull
#define SECONDS 1000000000ull

static void *twice(void *arg) {
    return (void *)((uintptr_t)arg * 2);
}

/* What a blocking call sees of its thread. */
typedef struct where {
    weft_runtime *current;
    uint64_t task_id;
    weft_task *spawned;
    int spawn_errno;
    weft_task *spawned_blocking;
    int spawn_blocking_errno;
    pthread_t thread;
} where;

static void *look_around(void *arg) {
    where *w = arg;
    w->current = weft_runtime_current();
    w->task_id = weft_current_id();
    errno = 0;
    w->spawned = weft_spawn(twice, NULL);
    w->spawn_errno = errno;
    errno = 0;
    w->spawned_blocking = weft_spawn_blocking(twice, NULL);
    w->spawn_blocking_errno = errno;
    w->thread = pthread_self();
    /* Block the thread for real: what the pool is for. */
    weft_test_sleep_ms(5);
    return (void *)(uintptr_t)0xb10c;
}

static void check_plain_thread(const where *w) {
    cr_assert_null(w->current, "a blocking call runs with a current runtime");
    cr_assert_eq(w->task_id, 0, "a blocking call runs as task %llu", (unsigned long long)w->task_id);
    cr_assert_null(w->spawned, "weft_spawn worked in a blocking call");
    cr_assert_eq(w->spawn_errno, EPERM, "weft_spawn there: errno %d", w->spawn_errno);
    cr_assert_null(w->spawned_blocking, "weft_spawn_blocking worked in a blocking call");
    cr_assert_eq(w->spawn_blocking_errno, EPERM, "weft_spawn_blocking there: errno %d",
                 w->spawn_blocking_errno);
}

static void *from_task(void *arg) {
    (void)arg;
    where w;
    memset(&w, 0, sizeof w);
    weft_task *t = weft_spawn_blocking(look_around, &w);
    cr_assert_not_null(t, "weft_spawn_blocking: %s", strerror(errno));
    void *r;
    cr_assert_eq(weft_join(t, &r), 0, "join");
    cr_assert_eq((uintptr_t)r, 0xb10c, "result %p", r);
    check_plain_thread(&w);
    cr_assert_not(pthread_equal(w.thread, pthread_self()),
                  "the blocking call ran on the joiner's worker thread");
    /* Many at once, joined in order. */
    enum { N = 16 };
    weft_task *many[N];
    for (uintptr_t i = 0; i < N; i++) {
        many[i] = weft_spawn_blocking(twice, (void *)i);
        cr_assert_not_null(many[i], "spawn_blocking %zu", (size_t)i);
    }
    for (uintptr_t i = 0; i < N; i++) {
        cr_assert_eq(weft_join(many[i], &r), 0);
        cr_assert_eq((uintptr_t)r, 2 * i, "call %zu returned %p", (size_t)i, r);
    }
    /* A deadline join: -ETIMEDOUT leaves the handle valid. */
    t = weft_spawn_blocking(look_around, &w);
    int rc = weft_join_until(t, 0, &r);
    cr_assert(rc == 0 || rc == -ETIMEDOUT, "join_until: %d", rc);
    if (rc == -ETIMEDOUT)
        cr_assert_eq(weft_join(t, &r), 0);
    cr_assert_eq((uintptr_t)r, 0xb10c);
    return NULL;
}

Test(blocking, spawn_blocking_from_a_task) {
    cr_assert_eq(weft_run(&(weft_config){.workers = 2}, from_task, NULL, NULL), 0, "run");
    WEFT_ASSERT_NO_LEAKS();
}

Test(blocking, spawn_blocking_on_from_a_thread) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    where w;
    memset(&w, 0, sizeof w);
    weft_task *t = weft_spawn_blocking_on(rt, look_around, &w);
    cr_assert_not_null(t, "weft_spawn_blocking_on: %s", strerror(errno));
    void *r;
    cr_assert_eq(weft_join(t, &r), 0);
    cr_assert_eq((uintptr_t)r, 0xb10c);
    check_plain_thread(&w);
    cr_assert_not(pthread_equal(w.thread, pthread_self()), "the call ran on the caller's thread");
    /* Detached, then destroy: it runs anyway (destroy waits, see below). */
    weft_detach(weft_spawn_blocking_on(rt, twice, (void *)1));
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- argument errors ------------------------------------------------------------------ */

static void *errors_in_task(void *arg) {
    (void)arg;
    errno = 0;
    cr_assert_null(weft_spawn_blocking(NULL, NULL), "NULL fn");
    cr_assert_eq(errno, EINVAL, "NULL fn: errno %d", errno);
    errno = 0;
    cr_assert_null(weft_spawn_blocking_on(weft_runtime_current(), NULL, NULL), "NULL fn (on)");
    cr_assert_eq(errno, EINVAL);
    return NULL;
}

Test(blocking, argument_errors) {
    errno = 0;
    cr_assert_null(weft_spawn_blocking(twice, NULL), "spawn_blocking outside a task");
    cr_assert_eq(errno, EPERM, "outside a task: errno %d", errno);
    errno = 0;
    cr_assert_null(weft_spawn_blocking_on(NULL, twice, NULL), "NULL runtime");
    cr_assert_eq(errno, EINVAL);
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1}, &rt), 0);
    errno = 0;
    cr_assert_null(weft_spawn_blocking_on(rt, NULL, NULL), "NULL fn");
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    /* Still outside a task while a runtime exists. */
    cr_assert_null(weft_spawn_blocking(twice, NULL), "spawn_blocking outside a task");
    cr_assert_eq(errno, EPERM);
    cr_assert_eq(weft_block_on(rt, errors_in_task, NULL, NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);

    cr_assert_eq(weft_runtime_create(&(weft_config){.max_blocking_threads =
                                                        WEFT_MAX_BLOCKING_THREADS + 1},
                                     &rt),
                 -EINVAL, "max_blocking_threads over the maximum");
    cr_assert_eq(weft_run(&(weft_config){.max_blocking_threads = WEFT_MAX_BLOCKING_THREADS + 1},
                          twice, NULL, NULL),
                 -EINVAL, "weft_run, max_blocking_threads over the maximum");
    WEFT_ASSERT_NO_LEAKS();
}

static weft__atomic_word gate;

static void *wait_gate(void *arg) {
    while (!weft__atomic_load_acquire(&gate))
        weft_sleep_ms(1);
    return arg;
}

static void *destroy_in_thread(void *arg) {
    return (void *)(intptr_t)weft_runtime_destroy(arg);
}

Test(blocking, refused_once_destroy_began) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    weft__atomic_store_release(&gate, 0);
    weft_detach(weft_spawn_on(rt, wait_gate, NULL)); /* holds destroy open */
    pthread_t destroyer;
    cr_assert_eq(pthread_create(&destroyer, NULL, destroy_in_thread, rt), 0);
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (!weft__atomic_load_acquire(&rt->shutting_down)) {
        cr_assert_lt(weft_now(), give_up, "destroy never began");
        weft_test_sleep_ms(1);
    }
    errno = 0;
    cr_expect_null(weft_spawn_blocking_on(rt, twice, NULL), "spawn_blocking_on during destroy");
    cr_expect_eq(errno, ESHUTDOWN, "errno %d", errno);
    weft__atomic_store_release(&gate, 1);
    void *rc;
    pthread_join(destroyer, &rc);
    cr_assert_eq((intptr_t)rc, 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- the pool at its cap --------------------------------------------------------------- */

static pthread_mutex_t latch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t latch_cond = PTHREAD_COND_INITIALIZER;
static bool latch_open;
static int running_now, running_max, started_count;

static void latch_reset(void) {
    pthread_mutex_lock(&latch_lock);
    latch_open = false;
    running_now = running_max = started_count = 0;
    pthread_mutex_unlock(&latch_lock);
}

static void latch_release(void) {
    pthread_mutex_lock(&latch_lock);
    latch_open = true;
    pthread_cond_broadcast(&latch_cond);
    pthread_mutex_unlock(&latch_lock);
}

/* A blocking call: counts itself running, waits for the latch (at most 30 s). */
static void *blocked_on_latch(void *arg) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&latch_lock);
    started_count++;
    if (++running_now > running_max)
        running_max = running_now;
    int rc = 0;
    while (!latch_open && rc == 0)
        rc = pthread_cond_timedwait(&latch_cond, &latch_lock, &until);
    running_now--;
    pthread_mutex_unlock(&latch_lock);
    return (void *)((uintptr_t)arg + 1000);
}

enum { CAP = 2, CALLS = 8 };

/* Submits CALLS latch-blocked calls (from a task when in_task), waits until the stats
 * show CAP busy and CALLS - CAP queued, sampling blocking_threads meanwhile, releases,
 * joins. */
static void cap_scenario(weft_runtime *rt, bool in_task) {
    latch_reset();
    weft_task *t[CALLS];
    for (uintptr_t i = 0; i < CALLS; i++) {
        t[i] = in_task ? weft_spawn_blocking(blocked_on_latch, (void *)i)
                       : weft_spawn_blocking_on(rt, blocked_on_latch, (void *)i);
        cr_assert_not_null(t[i], "spawn_blocking %zu: %s", (size_t)i, strerror(errno));
    }
    uint64_t give_up = weft_now() + 20 * SECONDS;
    weft_runtime_stats s;
    for (;;) {
        cr_assert_eq(weft_runtime_stats_get(rt, &s), 0);
        cr_assert_leq(s.blocking_threads, CAP, "%llu pool threads, cap %d",
                      (unsigned long long)s.blocking_threads, CAP);
        cr_assert_leq(s.blocking_busy, CAP, "%llu busy", (unsigned long long)s.blocking_busy);
        if (s.blocking_busy == CAP && s.blocking_queued == CALLS - CAP)
            break;
        cr_assert_lt(weft_now(), give_up,
                     "after 20 s: threads %llu, busy %llu, queued %llu (want %d busy, %d queued)",
                     (unsigned long long)s.blocking_threads, (unsigned long long)s.blocking_busy,
                     (unsigned long long)s.blocking_queued, CAP, CALLS - CAP);
        if (in_task)
            weft_sleep_ms(1);
        else
            weft_test_sleep_ms(1);
    }
    cr_assert_eq(s.blocking_threads, CAP, "threads %llu", (unsigned long long)s.blocking_threads);
    /* Stays so while the latch is shut: nothing more starts. */
    if (in_task)
        weft_sleep_ms(30);
    else
        weft_test_sleep_ms(30);
    cr_assert_eq(weft_runtime_stats_get(rt, &s), 0);
    cr_assert(s.blocking_busy == CAP && s.blocking_queued == CALLS - CAP && s.blocking_threads == CAP,
              "30 ms later: threads %llu, busy %llu, queued %llu",
              (unsigned long long)s.blocking_threads, (unsigned long long)s.blocking_busy,
              (unsigned long long)s.blocking_queued);
    pthread_mutex_lock(&latch_lock);
    cr_assert_eq(started_count, CAP, "%d calls started before the release", started_count);
    pthread_mutex_unlock(&latch_lock);

    latch_release();
    for (uintptr_t i = 0; i < CALLS; i++) {
        void *r;
        cr_assert_eq(weft_join(t[i], &r), 0, "join %zu", (size_t)i);
        cr_assert_eq((uintptr_t)r, i + 1000, "call %zu returned %p", (size_t)i, r);
    }
    pthread_mutex_lock(&latch_lock);
    cr_assert_leq(running_max, CAP, "%d calls ran at once, cap %d", running_max, CAP);
    cr_assert_eq(started_count, CALLS);
    pthread_mutex_unlock(&latch_lock);
    cr_assert_eq(weft_runtime_stats_get(rt, &s), 0);
    cr_assert(s.blocking_busy == 0 && s.blocking_queued == 0, "after: busy %llu queued %llu",
              (unsigned long long)s.blocking_busy, (unsigned long long)s.blocking_queued);
}

static void *cap_in_task(void *arg) {
    (void)arg;
    cap_scenario(weft_runtime_current(), true);
    return NULL;
}

Test(blocking, pool_at_its_cap_queues) {
    weft_config cfg = {.workers = 2, .max_blocking_threads = CAP};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&cfg, &rt), 0);
    cr_assert_eq(weft_block_on(rt, cap_in_task, NULL, NULL), 0);
    cap_scenario(rt, false);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* Each queued call is a live task: at max_tasks, spawn_blocking fails with EAGAIN. */
static void *fill_max_tasks(void *arg) {
    (void)arg;
    latch_reset();
    weft_task *t[8];
    int n = 0;
    errno = 0;
    while (n < 8 && (t[n] = weft_spawn_blocking(blocked_on_latch, (void *)(uintptr_t)n)) != NULL)
        n++;
    int e = errno;
    /* max_tasks 4: this task and 3 calls. */
    cr_assert_eq(n, 3, "%d blocking calls accepted at max_tasks 4", n);
    cr_assert_eq(e, EAGAIN, "errno %d", e);
    latch_release();
    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_join(t[i], NULL), 0);
    /* Room again. */
    weft_task *again = weft_spawn_blocking(twice, (void *)4);
    cr_assert_not_null(again, "after the calls returned: %s", strerror(errno));
    void *r;
    cr_assert_eq(weft_join(again, &r), 0);
    cr_assert_eq((uintptr_t)r, 8);
    return NULL;
}

Test(blocking, queue_bounded_by_max_tasks) {
    cr_assert_eq(weft_run(&(weft_config){.workers = 2, .max_tasks = 4, .max_blocking_threads = 1},
                          fill_max_tasks, NULL, NULL),
                 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- keep-alive -------------------------------------------------------------------------- */

static uint64_t pool_threads(weft_runtime *rt) {
    weft_runtime_stats s;
    cr_assert_eq(weft_runtime_stats_get(rt, &s), 0);
    return s.blocking_threads;
}

/* Runs CAP calls at once (so CAP threads start), joins them. */
static void burst(weft_runtime *rt) {
    latch_reset();
    weft_task *t[CAP];
    for (uintptr_t i = 0; i < CAP; i++)
        cr_assert_not_null(t[i] = weft_spawn_blocking_on(rt, blocked_on_latch, (void *)i));
    uint64_t give_up = weft_now() + 20 * SECONDS;
    for (;;) {
        pthread_mutex_lock(&latch_lock);
        int started = started_count;
        pthread_mutex_unlock(&latch_lock);
        if (started == CAP)
            break;
        cr_assert_lt(weft_now(), give_up, "only %d calls started", started);
        weft_test_sleep_ms(1);
    }
    latch_release();
    for (int i = 0; i < CAP; i++)
        cr_assert_eq(weft_join(t[i], NULL), 0);
}

Test(blocking, idle_threads_leave_after_keep_alive) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1, .max_blocking_threads = 4,
                                                    .blocking_keep_alive_ms = 50},
                                     &rt),
                 0);
    for (int round = 0; round < 2; round++) { /* the second: the pool grows again */
        burst(rt);
        uint64_t give_up = weft_now() + 20 * SECONDS;
        while (pool_threads(rt) != 0) {
            cr_assert_lt(weft_now(), give_up, "round %d: %llu threads still alive 20 s after a "
                         "50 ms keep-alive", round, (unsigned long long)pool_threads(rt));
            weft_test_sleep_ms(5);
        }
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

Test(blocking, idle_threads_stay_within_keep_alive) {
    weft_runtime *rt;
    /* The default keep-alive, 10 s: threads idle for 200 ms must all still be there. */
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1, .max_blocking_threads = 4}, &rt),
                 0);
    burst(rt);
    uint64_t t0 = weft_now();
    cr_assert_eq(pool_threads(rt), CAP, "threads right after the burst");
    while (weft_now() - t0 < 200 * MS) {
        uint64_t n = pool_threads(rt);
        cr_assert_eq(n, CAP, "a pool thread left after %llu ms of a 10 s keep-alive",
                     (unsigned long long)((weft_now() - t0) / MS));
        weft_test_sleep_ms(10);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0); /* destroy ends idle threads too */
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- destroy waits for the calls ---------------------------------------------------------- */

static weft__atomic_word finished_calls;

static void *sleep_then_mark(void *arg) {
    weft_test_sleep_ms((long)(uintptr_t)arg);
    weft__atomic_fetch_add_full(&finished_calls, 1);
    return NULL;
}

Test(blocking, destroy_waits_for_detached_calls) {
    weft__atomic_store_release(&finished_calls, 0);
    weft_runtime *rt;
    /* One thread: the second call waits in the queue while the first sleeps. */
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1, .max_blocking_threads = 1}, &rt), 0);
    weft_task *a = weft_spawn_blocking_on(rt, sleep_then_mark, (void *)100);
    weft_task *b = weft_spawn_blocking_on(rt, sleep_then_mark, (void *)50);
    weft_task *c = weft_spawn_blocking_on(rt, sleep_then_mark, (void *)10); /* never joined */
    cr_assert(a && b && c, "spawn_blocking_on");
    weft_detach(a);
    weft_detach(b);
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    AO_t done = weft__atomic_load_acquire(&finished_calls);
    cr_assert_eq(done, 3, "destroy returned with %lu of 3 blocking calls finished",
                 (unsigned long)done);
    cr_assert_geq(weft_now() - t0, 160 * MS, "destroy returned before the calls could finish");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- a blocking call that uses the runtime ------------------------------------------------ */

static void *child_of_pool(void *arg) {
    weft_sleep_ms(1); /* parks: a real task */
    return (void *)((uintptr_t)arg + 1);
}

static void *uses_the_runtime(void *arg) {
    weft_runtime *rt = arg;
    /* weft_spawn_on and weft_join, as from any thread. */
    weft_task *t = weft_spawn_on(rt, child_of_pool, (void *)41);
    cr_assert_not_null(t, "spawn_on from a pool thread: %s", strerror(errno));
    void *r;
    cr_assert_eq(weft_join(t, &r), 0, "join from a pool thread");
    cr_assert_eq((uintptr_t)r, 42);
    /* weft_block_on: not a worker, so allowed. */
    cr_assert_eq(weft_block_on(rt, child_of_pool, (void *)1, &r), 0, "block_on from a pool thread");
    cr_assert_eq((uintptr_t)r, 2);
    /* Another blocking call, from the pool, joined here. */
    t = weft_spawn_blocking_on(rt, twice, (void *)21);
    cr_assert_not_null(t, "spawn_blocking_on from a pool thread");
    cr_assert_eq(weft_join(t, &r), 0);
    cr_assert_eq((uintptr_t)r, 42);
    /* A plain-thread sleep and the fd calls' poll(2) path. */
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_sleep_ms(2), 0);
    cr_assert_geq(weft_now() - t0, 2 * MS, "sleep returned early");
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_write(sv[1], "io", 2, weft_now() + 5 * SECONDS), 2);
    char buf[4];
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_now() + 5 * SECONDS), 2);
    uint64_t d = weft_now() + 10 * MS;
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, d), -ETIMEDOUT);
    cr_assert_geq(weft_now(), d, "read timed out early");
    cr_assert_eq(weft_fd_close(sv[0]), 0);
    cr_assert_eq(weft_fd_close(sv[1]), 0);
    return (void *)(uintptr_t)7;
}

static void *spawn_user(void *arg) {
    weft_task *t = weft_spawn_blocking(uses_the_runtime, arg);
    cr_assert_not_null(t);
    void *r;
    cr_assert_eq(weft_join(t, &r), 0);
    return r;
}

Test(blocking, a_blocking_call_uses_the_runtime) {
    weft_runtime *rt;
    /* Two pool threads: the nested blocking call needs a second one while the first
     * waits for it. */
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2, .max_blocking_threads = 2}, &rt), 0);
    void *r;
    cr_assert_eq(weft_block_on(rt, spawn_user, rt, &r), 0);
    cr_assert_eq((uintptr_t)r, 7);
    /* And from spawn_blocking_on on a thread. */
    weft_task *t = weft_spawn_blocking_on(rt, uses_the_runtime, rt);
    cr_assert_not_null(t);
    cr_assert_eq(weft_join(t, &r), 0);
    cr_assert_eq((uintptr_t)r, 7);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* A timer callback is not a task: weft_spawn_blocking is refused there, and
 * weft_spawn_blocking_on(weft_runtime_current(), ...) is the way. */
static weft__atomic_word timer_result; /* 1 + errno of spawn_blocking, or 0 before */
static weft_task *from_timer;

static void on_timer(weft_timer *tm, void *arg) {
    (void)tm;
    (void)arg;
    errno = 0;
    weft_task *t = weft_spawn_blocking(twice, NULL);
    int e = errno;
    if (t)
        weft_detach(t);
    from_timer = weft_spawn_blocking_on(weft_runtime_current(), twice, (void *)5);
    weft__atomic_store_release(&timer_result, (AO_t)(t ? 1000 : e + 1));
}

Test(blocking, from_a_timer_callback) {
    weft__atomic_store_release(&timer_result, 0);
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1}, &rt), 0);
    weft_timer *tm;
    cr_assert_eq(weft_timer_create(rt, on_timer, NULL, &tm), 0);
    cr_assert_eq(weft_timer_arm(tm, weft_now()), 0);
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (!weft__atomic_load_acquire(&timer_result)) {
        cr_assert_lt(weft_now(), give_up, "the timer never fired");
        weft_test_sleep_ms(1);
    }
    cr_assert_eq(weft__atomic_load_acquire(&timer_result), EPERM + 1,
                 "spawn_blocking in a timer callback: %lu",
                 (unsigned long)weft__atomic_load_acquire(&timer_result));
    cr_assert_not_null(from_timer, "spawn_blocking_on in a timer callback");
    void *r;
    cr_assert_eq(weft_join(from_timer, &r), 0);
    cr_assert_eq((uintptr_t)r, 10);
    cr_assert_eq(weft_timer_destroy(tm), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}
