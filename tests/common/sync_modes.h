/*
 * sync_modes.h: the scaffolding the unit tests of the sync primitives, channels and
 * select share (tests/unit/test_sync.c, test_chan.c, test_select.c). Criterion-based: for
 * unit tests only (after weft_criterion.h).
 *
 * in_every_mode(fn) runs a body three times, as test_io.c does: in a task of a 2-worker
 * runtime (the waits park the task), on a plain thread with no runtime at all, and on a
 * plain thread while a runtime runs (the waits block the thread); after each, every
 * runtime is destroyed and nothing leaked. peer_start() starts a helper of the body's own
 * kind (a task beside a task, a thread beside a thread); thread_start() always a thread,
 * for the cross-kind cases. check_timed_out() is the deadline check every file uses:
 * -ETIMEDOUT, never early, and not absurdly late.
 */
#ifndef WEFT_SYNC_MODES_H
#define WEFT_SYNC_MODES_H

#include "sync_util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define MS      1000000ull
#define SECONDS 1000000000ull

/* Every helper below is marked unused: a file need not use them all. */

/* How late a call may return after its deadline before the test calls it a hang: the
 * machine is shared and noisy. */
#define LATE_BOUND (10 * SECONDS)

static const char *mode = "?"; /* for messages: where the body runs */

typedef struct body {
    void (*fn)(void);
} body;

__attribute__((unused)) static void *body_task(void *arg) {
    ((body *)arg)->fn();
    return NULL;
}

__attribute__((unused)) static void in_task(void (*fn)(void), unsigned workers) {
    body b = {fn};
    mode = "task";
    cr_assert_eq(weft_run(&(weft_config){.workers = workers}, body_task, &b, NULL), 0,
                 "weft_run");
    WEFT_ASSERT_NO_LEAKS();
}

__attribute__((unused)) static void in_every_mode(void (*fn)(void)) {
    in_task(fn, 2);

    mode = "thread";
    fn();
    WEFT_ASSERT_NO_LEAKS();

    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0, "create");
    mode = "thread beside a runtime";
    fn();
    cr_assert_eq(weft_runtime_destroy(rt), 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
}

/* A helper that runs beside the body: a task when the body is in a task, else a thread.
 * A task joins a thread peer without blocking its worker (it naps until the thread is
 * done, then joins it): a worker blocked in pthread_join would hold up the tasks and
 * timers queued on it. */
typedef struct peer {
    weft_task *task;
    pthread_t thread;
    weft_fn fn;
    void *arg, *result;
    weft__atomic_word done;
} peer;

static void *peer_thread_main(void *arg) {
    peer *p = arg;
    p->result = p->fn(p->arg);
    weft__atomic_store_release(&p->done, 1);
    return NULL;
}

__attribute__((unused)) static void thread_start(peer *p, weft_fn fn, void *arg) {
    p->task = NULL;
    p->fn = fn;
    p->arg = arg;
    p->result = NULL;
    weft__atomic_store_release(&p->done, 0);
    cr_assert_eq(pthread_create(&p->thread, NULL, peer_thread_main, p), 0, "pthread_create");
}

__attribute__((unused)) static void peer_start(peer *p, weft_fn fn, void *arg) {
    if (weft_runtime_current()) {
        p->task = weft_spawn(fn, arg);
        cr_assert_not_null(p->task, "[%s] spawn: %s", mode, strerror(errno));
    } else {
        thread_start(p, fn, arg);
    }
}

__attribute__((unused)) static void *peer_join(peer *p) {
    void *r = NULL;
    if (p->task) {
        cr_assert_eq(weft_join(p->task, &r), 0, "join");
        return r;
    }
    if (weft_runtime_current())
        while (!weft__atomic_load_acquire(&p->done))
            cr_assert_eq(weft_sleep_ms(1), 0, "sleep");
    cr_assert_eq(pthread_join(p->thread, NULL), 0, "pthread_join");
    return p->result;
}

/* Sleeps the task or the thread. */
__attribute__((unused)) static void nap_ms(uint64_t ms) {
    if (weft_runtime_current())
        cr_assert_eq(weft_sleep_ms(ms), 0, "sleep");
    else
        weft_test_sleep_ms((long)ms);
}

/* Waits (napping) until *flag is non-zero; fails after 10 s. */
__attribute__((unused)) static void await_flag(weft__atomic_word *flag, const char *what) {
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (!weft__atomic_load_acquire(flag)) {
        cr_assert_lt(weft_now(), give_up, "[%s] %s: not within 10 s", mode, what);
        nap_ms(1);
    }
}

/* rc must be -ETIMEDOUT, returned no earlier than deadline and not absurdly late. */
__attribute__((unused)) static void check_timed_out(long rc, uint64_t deadline, const char *what) {
    uint64_t now = weft_now();
    cr_assert_eq(rc, -ETIMEDOUT, "[%s] %s returned %ld, not -ETIMEDOUT", mode, what, rc);
    cr_assert_geq(now, deadline, "[%s] %s timed out %llu ns early", mode, what,
                  (unsigned long long)(deadline - now));
    cr_assert_lt(now - deadline, LATE_BOUND, "[%s] %s returned %llu ms after its deadline",
                 mode, what, (unsigned long long)((now - deadline) / MS));
}

/* A deadline already past (1 ns) makes the call a poll: -ETIMEDOUT, and at once (within
 * the same generous bound). */
__attribute__((unused)) static void check_poll_at(long rc, uint64_t started, const char *what) {
    cr_assert_eq(rc, -ETIMEDOUT, "[%s] %s returned %ld, not -ETIMEDOUT", mode, what, rc);
    cr_assert_lt(weft_now() - started, LATE_BOUND, "[%s] %s (a poll) took %llu ms", mode, what,
                 (unsigned long long)((weft_now() - started) / MS));
}
#define check_poll(call, what)                                                                     \
    do {                                                                                           \
        uint64_t started_ = weft_now();                                                            \
        long rc_ = (call);                                                                         \
        check_poll_at(rc_, started_, what);                                                        \
    } while (0)

/* A runtime of ONE worker for blockers (sync_util.h: only then is "its worker sleeps"
 * the same as "the task is parked"). */
__attribute__((unused)) static weft_runtime *one_worker_runtime(void) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1}, &rt), 0, "create");
    return rt;
}

__attribute__((unused)) static void start_blocker(sync_blocker *b, weft_runtime *rt,
                                                  sync_block_fn fn, void *ctx, long param) {
    int rc = sync_blocker_start(b, rt, fn, ctx, param);
    cr_assert_eq(rc, 0, "start a %s blocker: %s", rt ? "task" : "thread", strerror(-rc));
}

__attribute__((unused)) static void await_parked(sync_blocker *b, const char *what) {
    int rc = sync_blocker_await_parked(b, 10000);
    cr_assert_eq(rc, 0, "%s (a %s) %s", what, b->task ? "task" : "thread",
                 rc == -EALREADY ? "returned instead of waiting" : "did not park within 10 s");
}

__attribute__((unused)) static void join_blocker(sync_blocker *b) {
    cr_assert_eq(sync_blocker_join(b), 0, "join a blocker");
}

#endif /* WEFT_SYNC_MODES_H */
