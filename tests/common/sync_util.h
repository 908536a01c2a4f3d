/*
 * sync_util.h: helpers for the tests of weft's sync primitives, channels and select
 * (tests/unit/test_sync.c, test_chan.c, test_select.c, tests/stress/stress_sync.c).
 *
 * The one thing here that is not obvious: knowing that a waiter is really parked, not
 * merely about to call the waiting function. Tests of FIFO hand-off, of -EBUSY from a
 * destroy "while waited on" and of wake-ups that must reach every waiter need it, and a
 * fixed sleep would make them flaky on a loaded machine (or, for a destroy, let it free
 * memory that a late waiter then uses). So a waiter (a "blocker") is either a plain
 * thread or a task on a runtime of ONE worker, and announces itself (arrived = 1) right
 * before its blocking call; the test then waits until the thread that would run it (its
 * own, or that single worker) has been asleep in the kernel (state S or D in
 * /proc/self/task/<tid>/stat) for several samples in a row. A task is parked when its
 * only worker sleeps after the task arrived: the worker cannot sleep while the task
 * still runs (and a wait that blocked the worker instead of parking the task would be a
 * bug that other tests catch).
 *
 * Nothing here asserts: functions return 0 or a negative errno, so Criterion suites and
 * stress.h programs can both use it.
 */
#ifndef WEFT_SYNC_UTIL_H
#define WEFT_SYNC_UTIL_H

#include "weft_test.h"

#include "base/atomic.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static inline pid_t sync_gettid(void) {
    return (pid_t)syscall(SYS_gettid);
}

/* The state letter of thread tid of this process (R, S, D, ...), or 0 if unreadable. */
static inline char sync_thread_state(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    if (!close_paren || close_paren[1] != ' ')
        return 0;
    return close_paren[2];
}

/* Waits until thread tid has been asleep (S or D) in 4 samples 2 ms apart. 0, or
 * -ETIMEDOUT after timeout_ms. */
static inline int sync_await_asleep(pid_t tid, long timeout_ms) {
    uint64_t end = weft_now() + (uint64_t)timeout_ms * 1000000u;
    int in_a_row = 0;
    while (weft_now() < end) {
        char s = sync_thread_state(tid);
        in_a_row = (s == 'S' || s == 'D') ? in_a_row + 1 : 0;
        if (in_a_row >= 4)
            return 0;
        weft_test_sleep_ms(2);
    }
    return -ETIMEDOUT;
}

/* ---- blockers: a waiter on a plain thread or on a 1-worker runtime ------------------- */

typedef struct sync_blocker sync_blocker;
/* The blocking body: calls sync_blocker_arrive(b) right before its blocking call and
 * returns that call's result. */
typedef int (*sync_block_fn)(sync_blocker *b);

struct sync_blocker {
    sync_block_fn fn;
    void *ctx;   /* for the body */
    long param;  /* for the body */
    int result;  /* fn's return value */
    uint64_t returned_at; /* weft_now() when fn returned */
    weft__atomic_word tid;      /* the thread that runs the body */
    weft__atomic_word arrived;  /* 1: about to block */
    weft__atomic_word finished; /* 1: fn returned; result and returned_at are set */
    weft_task *task;            /* when started as a task */
    pthread_t thread;           /* else */
};

static inline void sync_blocker_arrive(sync_blocker *b) {
    weft__atomic_store_release(&b->arrived, 1);
}

static inline void *sync_blocker_main(void *arg) {
    sync_blocker *b = arg;
    weft__atomic_store_release(&b->tid, (AO_t)sync_gettid());
    b->result = b->fn(b);
    b->returned_at = weft_now();
    weft__atomic_store_release(&b->finished, 1);
    return NULL;
}

/* Starts fn as a task of rt (which must have ONE worker for sync_blocker_await_parked
 * to mean anything), or on a new plain thread when rt is NULL. 0 or a negative errno. */
static inline int sync_blocker_start(sync_blocker *b, weft_runtime *rt, sync_block_fn fn,
                                     void *ctx, long param) {
    b->fn = fn;
    b->ctx = ctx;
    b->param = param;
    b->result = 0x7eadbeef;
    b->returned_at = 0;
    weft__atomic_store_release(&b->tid, 0);
    weft__atomic_store_release(&b->arrived, 0);
    weft__atomic_store_release(&b->finished, 0);
    b->task = NULL;
    if (rt) {
        b->task = weft_spawn_on(rt, sync_blocker_main, b);
        return b->task ? 0 : -errno;
    }
    return -pthread_create(&b->thread, NULL, sync_blocker_main, b);
}

/* Waits until b has arrived at its blocking call and its thread sleeps: 0, or
 * -ETIMEDOUT after timeout_ms (then b may still be running, or already finished). */
static inline int sync_blocker_await_parked(sync_blocker *b, long timeout_ms) {
    uint64_t end = weft_now() + (uint64_t)timeout_ms * 1000000u;
    while (!weft__atomic_load_acquire(&b->arrived)) {
        if (weft_now() >= end)
            return -ETIMEDOUT;
        weft_test_sleep_ms(1);
    }
    if (weft__atomic_load_acquire(&b->finished))
        return -EALREADY; /* it did not block at all */
    return sync_await_asleep((pid_t)weft__atomic_load_acquire(&b->tid), timeout_ms);
}

static inline bool sync_blocker_finished(sync_blocker *b) {
    return weft__atomic_load_acquire(&b->finished) != 0;
}

/* Waits for b to end (joins the task or the thread). 0 or a negative errno. */
static inline int sync_blocker_join(sync_blocker *b) {
    if (b->task)
        return weft_join(b->task, NULL);
    return -pthread_join(b->thread, NULL);
}

/* Waits up to timeout_ms for b to finish, without joining: 0 or -ETIMEDOUT. */
static inline int sync_blocker_await_finished(sync_blocker *b, long timeout_ms) {
    uint64_t end = weft_now() + (uint64_t)timeout_ms * 1000000u;
    while (!sync_blocker_finished(b)) {
        if (weft_now() >= end)
            return -ETIMEDOUT;
        weft_test_sleep_ms(1);
    }
    return 0;
}

#endif /* WEFT_SYNC_UTIL_H */
