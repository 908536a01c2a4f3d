/*
 * test_sync.c: weft_mutex, weft_cond, weft_sem, weft_waitgroup and weft_event (weft.h,
 * "Coordination between tasks"), each against its documented contract.
 *
 * Bodies that check one caller's view run in every mode (sync_modes.h: in a task, on a
 * plain thread alone, on a plain thread beside a runtime); tests of waiters use
 * "blockers" (sync_util.h: plain threads and tasks on a 1-worker runtime, mixed) and
 * wait until each is really parked (its thread asleep in the kernel), so that an order
 * of arrival, a -EBUSY "while waited on" or a wake-up "of every waiter" is certain, not
 * a guess from a sleep. Every test ends with its runtimes destroyed and nothing leaked.
 *
 * - mutex: lock/trylock/unlock from tasks and threads; trylock -EBUSY (the owner too);
 *   unlock -EPERM when never locked, by another task, by another thread, and by a task
 *   that runs on the owner's worker thread (the owner is the task, inline join or not);
 *   relock by the owner -EDEADLK (lock and lock_until); lock_until -ETIMEDOUT never
 *   early and holding nothing after, a past deadline a poll; a zeroed object is valid,
 *   _init zeroes a dirty one; destroy -EBUSY while held or waited on, 0 after (also after
 *   a waiter timed out); mutual exclusion with a plain counter under contention from
 *   tasks and threads (and TSan sees the hand-offs); a waiter is not starved by a holder
 *   that relocks in a loop (it gets the lock within a generous bound, task or thread on
 *   either side).
 * - cond: signal, broadcast; signal wakes exactly one waiter, the oldest, and no other
 *   wakes (no spurious wake-ups); wait returns holding the mutex on 0 and on -ETIMEDOUT
 *   (also when another holds it at the deadline: it returns after that one unlocks), and
 *   releases it while waiting; -EPERM when the mutex is not held (free, or another's);
 *   a producer/consumer with a predicate loop over many rounds (lost wake-ups hang it:
 *   waits carry a 30 s deadline that fails the test instead); destroy -EBUSY.
 * - sem: permits, try_acquire -EAGAIN, -EOVERFLOW, acquire with deadlines (-ETIMEDOUT
 *   never early and nothing taken, a past deadline a poll, a timed-out waiter does not
 *   swallow a later release); FIFO hand-off (a release goes to the oldest waiter and
 *   try_acquire right after it sees no permit); many waiters; destroy -EBUSY.
 * - waitgroup: add/done/wait, -EINVAL below 0 with the counter unchanged, wait at 0
 *   returns at once, waiters wake only after the last done, many waiters, reuse,
 *   destroy -EBUSY.
 * - event: set/clear/is_set, wait on a set event returns at once, a set wakes every
 *   waiter, a set followed at once by a clear still wakes every waiter that was waiting,
 *   deadlines, destroy -EBUSY.
 * - every call: -EINVAL on NULL.
 *
 * Timing: never early, and upper bounds of seconds (the machine is shared and noisy).
 */
#include "weft_criterion.h"

#include "sync_modes.h"

#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- misuse: NULL ------------------------------------------------------------------- */

Test(sync, null_is_einval, .timeout = 30) {
    cr_assert_eq(weft_mutex_lock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_lock_until(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_mutex_trylock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_destroy(NULL), -EINVAL);

    weft_mutex m = {{0}};
    weft_cond c = {{0}};
    cr_assert_eq(weft_cond_wait(NULL, &m, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_cond_wait(&c, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_mutex_lock(&m), 0);
    cr_assert_eq(weft_cond_wait(NULL, &m, WEFT_FOREVER), -EINVAL, "NULL cond, mutex held");
    cr_assert_eq(weft_mutex_unlock(&m), 0, "a refused cond_wait left the mutex held");
    cr_assert_eq(weft_cond_signal(NULL), -EINVAL);
    cr_assert_eq(weft_cond_broadcast(NULL), -EINVAL);
    cr_assert_eq(weft_cond_destroy(NULL), -EINVAL);

    cr_assert_eq(weft_sem_acquire(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_sem_try_acquire(NULL), -EINVAL);
    cr_assert_eq(weft_sem_release(NULL), -EINVAL);
    cr_assert_eq(weft_sem_destroy(NULL), -EINVAL);

    cr_assert_eq(weft_waitgroup_add(NULL, 1), -EINVAL);
    cr_assert_eq(weft_waitgroup_done(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_wait(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_waitgroup_destroy(NULL), -EINVAL);

    cr_assert_eq(weft_event_set(NULL), -EINVAL);
    cr_assert_eq(weft_event_clear(NULL), -EINVAL);
    cr_assert_eq(weft_event_is_set(NULL), -EINVAL);
    cr_assert_eq(weft_event_wait(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_event_destroy(NULL), -EINVAL);

    cr_assert_eq(weft_mutex_destroy(&m), 0);
    cr_assert_eq(weft_cond_destroy(&c), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- mutex: one caller ---------------------------------------------------------------- */

static void mutex_basic_body(void) {
    weft_mutex m;
    memset(&m, 0, sizeof m); /* the zero value is an unlocked mutex */
    cr_assert_eq(weft_mutex_lock(&m), 0, "[%s] lock a zeroed mutex", mode);
    cr_assert_eq(weft_mutex_trylock(&m), -EBUSY, "[%s] trylock by the owner", mode);
    cr_assert_eq(weft_mutex_unlock(&m), 0, "[%s] unlock", mode);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "[%s] unlock of an unlocked mutex", mode);
    cr_assert_eq(weft_mutex_trylock(&m), 0, "[%s] trylock of a free mutex", mode);
    cr_assert_eq(weft_mutex_unlock(&m), 0, "[%s] unlock after trylock", mode);
    cr_assert_eq(weft_mutex_lock_until(&m, WEFT_FOREVER), 0, "[%s] lock_until(FOREVER)", mode);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    /* A deadline already past on a free mutex: it is taken (the wait never happens). */
    cr_assert_eq(weft_mutex_lock_until(&m, 1), 0, "[%s] lock_until(past) of a free mutex", mode);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_destroy(&m), 0, "[%s] destroy a free mutex", mode);

    /* _init zeroes whatever was there; destroyed memory may be initialised again. */
    memset(&m, 0xa5, sizeof m);
    weft_mutex_init(&m);
    cr_assert_eq(weft_mutex_lock(&m), 0, "[%s] lock after init over garbage", mode);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_destroy(&m), 0);

    weft_mutex *heap = calloc(1, sizeof *heap);
    cr_assert_not_null(heap);
    cr_assert_eq(weft_mutex_trylock(heap), 0, "[%s] trylock a calloc'ed mutex", mode);
    cr_assert_eq(weft_mutex_destroy(heap), -EBUSY, "[%s] destroy while held", mode);
    cr_assert_eq(weft_mutex_unlock(heap), 0, "[%s] a refused destroy changed the mutex", mode);
    cr_assert_eq(weft_mutex_destroy(heap), 0);
    free(heap);
}

Test(mutex, basic_and_zero_value, .timeout = 60) {
    in_every_mode(mutex_basic_body);
}

static void *trylock_expect_free(void *arg) {
    cr_assert_eq(weft_mutex_trylock(arg), 0, "[%s] the mutex is not free after one unlock", mode);
    cr_assert_eq(weft_mutex_unlock(arg), 0);
    return NULL;
}

static void mutex_relock_body(void) {
    weft_mutex m = {{0}};
    cr_assert_eq(weft_mutex_lock(&m), 0);
    cr_assert_eq(weft_mutex_lock(&m), -EDEADLK, "[%s] lock by the owner", mode);
    /* At once: a deadline far away must not be waited for. */
    uint64_t before = weft_now();
    cr_assert_eq(weft_mutex_lock_until(&m, weft_now() + 60 * SECONDS), -EDEADLK,
                 "[%s] lock_until by the owner", mode);
    cr_assert_eq(weft_mutex_lock_until(&m, 1), -EDEADLK, "[%s] lock_until(past) by the owner",
                 mode);
    cr_assert_lt(weft_now() - before, 10 * SECONDS, "[%s] -EDEADLK was not at once", mode);
    cr_assert_eq(weft_mutex_trylock(&m), -EBUSY, "[%s] trylock by the owner", mode);
    /* Not recursive: one unlock frees it, whatever the refused relocks. */
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "[%s] a second unlock", mode);
    peer p;
    peer_start(&p, trylock_expect_free, &m);
    peer_join(&p);
    cr_assert_eq(weft_mutex_destroy(&m), 0);
}

Test(mutex, relock_by_owner_is_edeadlk, .timeout = 60) {
    in_every_mode(mutex_relock_body);
}

static void mutex_never_locked_body(void) {
    weft_mutex m = {{0}};
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "[%s] unlock of a never-locked mutex", mode);
    cr_assert_eq(weft_mutex_lock(&m), 0, "[%s] lock after the refused unlock", mode);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_destroy(&m), 0);
}

Test(mutex, unlock_never_locked_is_eperm, .timeout = 60) {
    in_every_mode(mutex_never_locked_body);
}

/* ---- mutex: owners ---------------------------------------------------------------------- */

typedef struct owner_probe {
    weft_mutex *m;
    weft__atomic_word locked;  /* the holder holds it */
    weft__atomic_word release; /* the holder may unlock */
} owner_probe;

/* Another caller, while the mutex is held by someone else. */
static void *not_owner(void *arg) {
    weft_mutex *m = arg;
    cr_assert_eq(weft_mutex_unlock(m), -EPERM, "[%s] unlock by a %s that is not the owner", mode,
                 weft_current_id() ? "task" : "thread");
    cr_assert_eq(weft_mutex_trylock(m), -EBUSY, "[%s] trylock of another's mutex", mode);
    uint64_t d = weft_now() + 5 * MS;
    check_timed_out(weft_mutex_lock_until(m, d), d, "lock_until of another's mutex");
    return NULL;
}

static void *hold_until_released(void *arg) {
    owner_probe *o = arg;
    cr_assert_eq(weft_mutex_lock(o->m), 0);
    weft__atomic_store_release(&o->locked, 1);
    await_flag(&o->release, "release");
    cr_assert_eq(weft_mutex_unlock(o->m), 0, "[%s] unlock by the owner", mode);
    return NULL;
}

static void mutex_non_owner_body(void) {
    weft_mutex m = {{0}};
    /* The body holds it: a peer of its kind and a plain thread are refused. */
    cr_assert_eq(weft_mutex_lock(&m), 0);
    peer p;
    peer_start(&p, not_owner, &m);
    peer_join(&p);
    thread_start(&p, not_owner, &m);
    peer_join(&p);
    cr_assert_eq(weft_mutex_unlock(&m), 0, "[%s] the owner's unlock after refused ones", mode);

    /* A peer (of the body's kind, then a thread) holds it: the body is refused. */
    for (int kind = 0; kind < 2; kind++) {
        owner_probe o = {.m = &m};
        if (kind == 0)
            peer_start(&p, hold_until_released, &o);
        else
            thread_start(&p, hold_until_released, &o);
        await_flag(&o.locked, "the peer locks");
        cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "[%s] unlock of a %s's mutex", mode,
                     kind ? "thread" : "peer");
        cr_assert_eq(weft_mutex_trylock(&m), -EBUSY);
        weft__atomic_store_release(&o.release, 1);
        peer_join(&p);
    }
    cr_assert_eq(weft_mutex_destroy(&m), 0);
}

Test(mutex, unlock_by_non_owner_is_eperm, .timeout = 60) {
    in_every_mode(mutex_non_owner_body);
}

/* The owner is the task, not the worker thread it ran on: a task spawned and joined by
 * the owner (on a 1-worker runtime it runs on the same thread; by default it may even
 * run inline on the owner's stack) is not the owner. And the owner may unlock after
 * moving between workers. */
static void *child_not_owner(void *arg) {
    weft_mutex *m = arg;
    cr_assert_eq(weft_mutex_unlock(m), -EPERM, "unlock by a child task on the owner's worker");
    cr_assert_eq(weft_mutex_trylock(m), -EBUSY, "trylock by a child task");
    cr_assert_eq(weft_mutex_lock_until(m, 1), -ETIMEDOUT,
                 "lock_until(past) by a child task of the owner (not -EDEADLK: not the owner)");
    return NULL;
}

static void *owner_task(void *arg) {
    (void)arg;
    weft_mutex m = {{0}};
    cr_assert_eq(weft_mutex_lock(&m), 0);
    for (int i = 0; i < 20; i++) {
        weft_task *t = weft_spawn(child_not_owner, &m);
        cr_assert_not_null(t);
        cr_assert_eq(weft_join(t, NULL), 0);
        cr_assert_eq(weft_sleep_ms(i % 3), 0); /* may come back on another worker */
        weft_yield();
    }
    cr_assert_eq(weft_mutex_unlock(&m), 0, "the owner's unlock after sleeps and yields");
    cr_assert_eq(weft_mutex_destroy(&m), 0);
    return NULL;
}

Test(mutex, owner_is_the_task_not_the_thread, .timeout = 60) {
    unsigned flags[] = {0, WEFT_CONFIG_NO_INLINE_JOIN};
    for (unsigned workers = 1; workers <= 2; workers++)
        for (int f = 0; f < 2; f++)
            cr_assert_eq(weft_run(&(weft_config){.workers = workers, .flags = flags[f]},
                                  owner_task, NULL, NULL),
                         0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- mutex: deadlines ------------------------------------------------------------------ */

static void mutex_lock_until_body(void) {
    weft_mutex m = {{0}};
    owner_probe o = {.m = &m};
    peer p;
    peer_start(&p, hold_until_released, &o);
    await_flag(&o.locked, "the peer locks");

    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_mutex_lock_until(&m, d), d, "lock_until of a held mutex");
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "[%s] a timed-out lock_until holds it", mode);
    d = weft_now() - 1;
    check_timed_out(weft_mutex_lock_until(&m, d), d, "lock_until(past) of a held mutex");
    check_poll(weft_mutex_lock_until(&m, 1), "lock_until(1) of a held mutex");
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM);
    cr_assert_eq(weft_mutex_trylock(&m), -EBUSY, "[%s] the peer lost the mutex", mode);

    weft__atomic_store_release(&o.release, 1);
    cr_assert_eq(weft_mutex_lock_until(&m, weft_now() + 10 * SECONDS), 0,
                 "[%s] lock_until once the peer unlocks", mode);
    peer_join(&p);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_destroy(&m), 0);
}

Test(mutex, lock_until_times_out_holding_nothing, .timeout = 60) {
    in_every_mode(mutex_lock_until_body);
}

/* ---- mutex: destroy while held or waited on ---------------------------------------------- */

static int block_lock(sync_blocker *b) {
    sync_blocker_arrive(b);
    int rc = b->param ? weft_mutex_lock_until(b->ctx, weft_now() + (uint64_t)b->param * MS)
                      : weft_mutex_lock(b->ctx);
    if (rc == 0 && weft_mutex_unlock(b->ctx) != 0)
        return -1000; /* locked but could not unlock */
    return rc;
}

Test(mutex, destroy_is_ebusy_while_held_or_waited_on, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    weft_mutex m = {{0}};
    for (int kind = 0; kind < 2; kind++) {
        cr_assert_eq(weft_mutex_lock(&m), 0);
        cr_assert_eq(weft_mutex_destroy(&m), -EBUSY, "destroy while held");
        sync_blocker b;
        start_blocker(&b, kind ? rt : NULL, block_lock, &m, 0);
        await_parked(&b, "a lock() waiter");
        cr_assert_eq(weft_mutex_destroy(&m), -EBUSY, "destroy while held and waited on");
        cr_assert_not(sync_blocker_finished(&b), "a refused destroy woke the waiter");
        cr_assert_eq(weft_mutex_unlock(&m), 0);
        join_blocker(&b);
        cr_assert_eq(b.result, 0, "the waiter's lock after the refused destroy: %d", b.result);

        /* A waiter that timed out leaves nothing behind. */
        cr_assert_eq(weft_mutex_lock(&m), 0);
        start_blocker(&b, kind ? rt : NULL, block_lock, &m, 30);
        join_blocker(&b);
        cr_assert_eq(b.result, -ETIMEDOUT, "a lock_until(30 ms) waiter: %d", b.result);
        cr_assert_eq(weft_mutex_destroy(&m), -EBUSY, "destroy while held");
        cr_assert_eq(weft_mutex_unlock(&m), 0);
        cr_assert_eq(weft_mutex_destroy(&m), 0, "destroy after the timed-out waiter left");
        weft_mutex_init(&m);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- mutex: mutual exclusion under contention ------------------------------------------- */

typedef struct counter_ctx {
    weft_mutex m;
    uint64_t counter;          /* plain: only the mutex protects it */
    int inside;                /* plain: callers in the critical section */
    size_t iterations;
    weft__atomic_word entries; /* critical sections entered, counted outside */
    weft__atomic_word timeouts;
} counter_ctx;

static void *count_under_lock(void *arg) {
    counter_ctx *c = arg;
    bool task = weft_current_id() != 0;
    for (size_t i = 0; i < c->iterations; i++) {
        int rc;
        switch (i % 4) {
        case 0: rc = weft_mutex_lock(&c->m); break;
        case 1: rc = weft_mutex_lock_until(&c->m, WEFT_FOREVER); break;
        case 2: rc = weft_mutex_lock_until(&c->m, weft_now() + 50 * 1000); break;
        default:
            while ((rc = weft_mutex_trylock(&c->m)) == -EBUSY) {
                if (task)
                    weft_yield();
                else
                    sched_yield();
            }
        }
        if (rc == -ETIMEDOUT) {
            weft__atomic_fetch_add_relaxed(&c->timeouts, 1);
            continue;
        }
        cr_assert_eq(rc, 0, "lock: %d", rc);
        cr_assert_eq(c->inside++, 0, "two callers inside the critical section");
        uint64_t v = c->counter;
        if (i % 64 == 0) { /* widen the window: a second holder would lose an increment */
            if (task)
                weft_yield();
            else
                sched_yield();
        }
        c->counter = v + 1;
        c->inside--;
        cr_assert_eq(weft_mutex_unlock(&c->m), 0, "unlock");
        weft__atomic_fetch_add_relaxed(&c->entries, 1);
    }
    return NULL;
}

static void *spawn_counters(void *arg) {
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_not_null(t[i] = weft_spawn(count_under_lock, arg));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_join(t[i], NULL), 0);
    return NULL;
}

Test(mutex, mutual_exclusion_tasks_and_threads, .timeout = 120) {
    counter_ctx *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    c->iterations = weft_test_size(20000, 10);
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, count_under_lock, c), 0);
    cr_assert_eq(weft_block_on(rt, spawn_counters, c, NULL), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    uint64_t entries = weft__atomic_load_acquire(&c->entries);
    uint64_t timeouts = weft__atomic_load_acquire(&c->timeouts);
    cr_assert_eq(entries + timeouts, 6 * c->iterations);
    cr_assert_eq(c->counter, entries, "counter %llu after %llu critical sections",
                 (unsigned long long)c->counter, (unsigned long long)entries);
    cr_assert_eq(weft_mutex_destroy(&c->m), 0);
    free(c);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- mutex: no starvation ------------------------------------------------------------- */

typedef struct hog_ctx {
    weft_mutex m;
    weft__atomic_word rounds; /* lock/unlock rounds of the hog */
    weft__atomic_word stop;
} hog_ctx;

/* Holds the mutex ~20 us at a time and relocks at once, for at most 20 s. */
static void *hog(void *arg) {
    hog_ctx *h = arg;
    uint64_t give_up = weft_now() + 20 * SECONDS;
    while (!weft__atomic_load_acquire(&h->stop) && weft_now() < give_up) {
        cr_assert_eq(weft_mutex_lock(&h->m), 0);
        uint64_t until = weft_now() + 20 * 1000;
        while (weft_now() < until)
            weft__cpu_relax();
        cr_assert_eq(weft_mutex_unlock(&h->m), 0);
        weft__atomic_fetch_add_relaxed(&h->rounds, 1);
    }
    return NULL;
}

/* Waits for the hog to get going, then takes the lock once; returns the ns it took. */
static void *starving_waiter(void *arg) {
    hog_ctx *h = arg;
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (weft__atomic_load_acquire(&h->rounds) < 200) {
        cr_assert_lt(weft_now(), give_up, "the hog never ran");
        nap_ms(1);
    }
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_mutex_lock(&h->m), 0);
    uint64_t took = weft_now() - t0;
    cr_assert_eq(weft_mutex_unlock(&h->m), 0);
    weft__atomic_store_release(&h->stop, 1);
    return (void *)(uintptr_t)took;
}

typedef struct starve_case {
    bool hog_task, waiter_task;
} starve_case;

Test(mutex, waiter_not_starved_by_a_relocking_holder, .timeout = 240) {
    starve_case cases[] = {{true, true}, {false, true}, {true, false}, {false, false}};
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int round = 0; round < 3; round++) {
            hog_ctx h = {.stop = 0};
            pthread_t hog_thread, waiter_thread;
            weft_task *hog_task = NULL;
            if (cases[k].hog_task)
                cr_assert_not_null(hog_task = weft_spawn_on(rt, hog, &h));
            else
                cr_assert_eq(pthread_create(&hog_thread, NULL, hog, &h), 0);
            void *took;
            if (cases[k].waiter_task) {
                weft_task *w = weft_spawn_on(rt, starving_waiter, &h);
                cr_assert_not_null(w);
                cr_assert_eq(weft_join(w, &took), 0);
            } else {
                cr_assert_eq(pthread_create(&waiter_thread, NULL, starving_waiter, &h), 0);
                cr_assert_eq(pthread_join(waiter_thread, &took), 0);
            }
            if (hog_task)
                cr_assert_eq(weft_join(hog_task, NULL), 0);
            else
                cr_assert_eq(pthread_join(hog_thread, NULL), 0);
            uint64_t ns = (uint64_t)(uintptr_t)took;
            cr_assert_lt(ns, 5 * SECONDS,
                         "hog %s, waiter %s: the waiter waited %llu ms for a mutex that its "
                         "holder relocks in a loop (starvation mode promises a hand-off after "
                         "1 ms)",
                         cases[k].hog_task ? "task" : "thread",
                         cases[k].waiter_task ? "task" : "thread", (unsigned long long)(ns / MS));
            cr_assert_eq(weft_mutex_destroy(&h.m), 0);
        }
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- cond ---------------------------------------------------------------------------------- */

typedef struct flag_ctx {
    weft_mutex m;
    weft_cond c;
    int flag;    /* under m */
    int woken;   /* under m */
} flag_ctx;

static void *wait_for_flag(void *arg) {
    flag_ctx *f = arg;
    cr_assert_eq(weft_mutex_lock(&f->m), 0);
    while (!f->flag) {
        int rc = weft_cond_wait(&f->c, &f->m, weft_now() + 30 * SECONDS);
        cr_assert_eq(rc, 0, "[%s] cond_wait: %d (a lost wake-up if -ETIMEDOUT)", mode, rc);
    }
    f->woken++;
    cr_assert_eq(weft_mutex_unlock(&f->m), 0, "[%s] cond_wait returned without the mutex", mode);
    return NULL;
}

static void cond_signal_broadcast_body(void) {
    flag_ctx f = {.flag = 0};
    peer p;
    peer_start(&p, wait_for_flag, &f);
    nap_ms(20);
    cr_assert_eq(weft_mutex_lock(&f.m), 0);
    f.flag = 1;
    cr_assert_eq(weft_cond_signal(&f.c), 0);
    cr_assert_eq(weft_mutex_unlock(&f.m), 0);
    peer_join(&p);
    cr_assert_eq(f.woken, 1);

    /* Broadcast: peers of the body's kind and threads. */
    f.flag = 0;
    f.woken = 0;
    peer ps[6];
    for (int i = 0; i < 6; i++) {
        if (i % 2)
            thread_start(&ps[i], wait_for_flag, &f);
        else
            peer_start(&ps[i], wait_for_flag, &f);
    }
    nap_ms(20);
    cr_assert_eq(weft_mutex_lock(&f.m), 0);
    f.flag = 1;
    cr_assert_eq(weft_cond_broadcast(&f.c), 0);
    cr_assert_eq(weft_mutex_unlock(&f.m), 0);
    for (int i = 0; i < 6; i++)
        peer_join(&ps[i]);
    cr_assert_eq(f.woken, 6);
    /* Signal and broadcast with nobody waiting. */
    cr_assert_eq(weft_cond_signal(&f.c), 0);
    cr_assert_eq(weft_cond_broadcast(&f.c), 0);
    cr_assert_eq(weft_cond_destroy(&f.c), 0);
    cr_assert_eq(weft_mutex_destroy(&f.m), 0);
}

Test(cond, signal_and_broadcast_wake_waiters, .timeout = 60) {
    in_every_mode(cond_signal_broadcast_body);
}

/* Signal wakes exactly one waiter, the oldest; none of the others wakes before its
 * deadline. Order of arrival: each waiter takes a number under the mutex and then waits,
 * which releases the mutex; so once the test holds the mutex and sees N numbers taken,
 * all N wait, in that order. */
typedef struct queue_ctx {
    weft_mutex m;
    weft_cond c;
    int arrivals;    /* under m */
    uint64_t deadline;
    int order[8];    /* order[i]: blocker i's number */
    int unlock_rc[8];
} queue_ctx;

static int block_cond_wait(sync_blocker *b) {
    queue_ctx *q = b->ctx;
    int i = (int)b->param;
    if (weft_mutex_lock(&q->m) != 0)
        return -1000;
    q->order[i] = q->arrivals++;
    sync_blocker_arrive(b);
    int rc = weft_cond_wait(&q->c, &q->m, q->deadline);
    q->unlock_rc[i] = weft_mutex_unlock(&q->m);
    return rc;
}

static void await_arrivals(queue_ctx *q, int n) {
    uint64_t give_up = weft_now() + 10 * SECONDS;
    for (;;) {
        cr_assert_eq(weft_mutex_lock(&q->m), 0);
        int a = q->arrivals;
        cr_assert_eq(weft_mutex_unlock(&q->m), 0);
        if (a == n)
            return;
        cr_assert_lt(weft_now(), give_up, "only %d of %d waiters arrived", a, n);
        weft_test_sleep_ms(1);
    }
}

Test(cond, signal_wakes_the_oldest_waiter_only, .timeout = 60) {
    enum { N = 6 };
    weft_runtime *rt = one_worker_runtime();
    queue_ctx *q = calloc(1, sizeof *q);
    cr_assert_not_null(q);
    q->deadline = weft_now() + 2 * SECONDS;
    sync_blocker b[N];
    for (int i = 0; i < N; i++) {
        start_blocker(&b[i], i % 2 ? rt : NULL, block_cond_wait, q, i);
        await_arrivals(q, i + 1); /* in order: blocker i is number i */
    }
    cr_assert_eq(weft_mutex_lock(&q->m), 0);
    cr_assert_eq(weft_cond_signal(&q->c), 0);
    cr_assert_eq(weft_mutex_unlock(&q->m), 0);
    cr_assert_lt(weft_now() + 500 * MS, q->deadline, "too slow to test: signalled near the deadline");
    for (int i = 0; i < N; i++)
        join_blocker(&b[i]);
    int zeros = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(q->order[i], i);
        cr_assert_eq(q->unlock_rc[i], 0, "waiter %d returned %d without the mutex", i, b[i].result);
        if (b[i].result == 0) {
            zeros++;
            cr_assert_eq(i, 0, "the signal woke waiter %d, not the oldest (0)", i);
        } else {
            cr_assert_eq(b[i].result, -ETIMEDOUT, "waiter %d: %d", i, b[i].result);
            cr_assert_geq(b[i].returned_at, q->deadline, "waiter %d timed out early", i);
        }
    }
    cr_assert_eq(zeros, 1, "one signal, %d waiters returned 0", zeros);
    cr_assert_eq(weft_cond_destroy(&q->c), 0);
    cr_assert_eq(weft_mutex_destroy(&q->m), 0);
    free(q);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

typedef struct grab_ctx {
    weft_mutex *m;
    weft__atomic_word got;
    uint64_t released_at;
} grab_ctx;

/* Takes the mutex while the body waits on the cond (so the wait released it), holds it
 * 60 ms, past the body's deadline. */
static void *grab_during_wait(void *arg) {
    grab_ctx *g = arg;
    cr_assert_eq(weft_mutex_lock(g->m), 0);
    weft__atomic_store_release(&g->got, 1);
    nap_ms(60);
    g->released_at = weft_now();
    cr_assert_eq(weft_mutex_unlock(g->m), 0);
    return NULL;
}

static void cond_timeout_body(void) {
    weft_mutex m = {{0}};
    weft_cond c = {{0}};
    cr_assert_eq(weft_mutex_lock(&m), 0);
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_cond_wait(&c, &m, d), d, "cond_wait");
    cr_assert_eq(weft_mutex_trylock(&m), -EBUSY);
    check_poll(weft_cond_wait(&c, &m, 1), "cond_wait(past)");
    cr_assert_eq(weft_mutex_unlock(&m), 0, "[%s] cond_wait -ETIMEDOUT returned without the mutex",
                 mode);

    /* The wait releases the mutex; at its deadline another holds it: the wait returns
     * only once it has the mutex again. */
    grab_ctx g = {.m = &m};
    cr_assert_eq(weft_mutex_lock(&m), 0);
    peer p;
    peer_start(&p, grab_during_wait, &g);
    d = weft_now() + 20 * MS;
    int rc = weft_cond_wait(&c, &m, d);
    uint64_t back = weft_now();
    cr_assert(weft__atomic_load_acquire(&g.got), "[%s] the mutex was not free during the wait",
              mode);
    check_timed_out(rc, d, "cond_wait while another took the mutex");
    cr_assert_geq(back, g.released_at, "[%s] cond_wait returned before the other unlocked", mode);
    cr_assert_eq(weft_mutex_unlock(&m), 0, "[%s] cond_wait returned without the mutex", mode);
    peer_join(&p);
    cr_assert_eq(weft_cond_destroy(&c), 0);
    cr_assert_eq(weft_mutex_destroy(&m), 0);
}

Test(cond, wait_returns_holding_the_mutex, .timeout = 60) {
    in_every_mode(cond_timeout_body);
}

static void *cond_wait_on_other_held(void *arg) {
    owner_probe *o = arg;
    weft_cond c = {{0}};
    cr_assert_eq(weft_cond_wait(&c, o->m, WEFT_FOREVER), -EPERM,
                 "[%s] cond_wait with another's mutex", mode);
    cr_assert_eq(weft_cond_destroy(&c), 0, "[%s] a refused wait left a waiter", mode);
    return NULL;
}

static void cond_eperm_body(void) {
    weft_mutex m = {{0}};
    weft_cond c = {{0}};
    cr_assert_eq(weft_cond_wait(&c, &m, WEFT_FOREVER), -EPERM, "[%s] cond_wait, mutex free", mode);
    cr_assert_eq(weft_cond_wait(&c, &m, weft_now() + 10 * SECONDS), -EPERM);
    cr_assert_eq(weft_mutex_trylock(&m), 0, "[%s] a refused cond_wait took the mutex", mode);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_cond_destroy(&c), 0, "[%s] a refused cond_wait left a waiter", mode);

    /* Held by the body: a peer and a thread are refused, and the mutex stays the body's. */
    cr_assert_eq(weft_mutex_lock(&m), 0);
    owner_probe o = {.m = &m};
    peer p;
    peer_start(&p, cond_wait_on_other_held, &o);
    peer_join(&p);
    thread_start(&p, cond_wait_on_other_held, &o);
    peer_join(&p);
    cr_assert_eq(weft_mutex_unlock(&m), 0, "[%s] a refused cond_wait by another took the mutex",
                 mode);
    cr_assert_eq(weft_mutex_destroy(&m), 0);
}

Test(cond, wait_without_the_mutex_is_eperm, .timeout = 60) {
    in_every_mode(cond_eperm_body);
}

Test(cond, destroy_is_ebusy_while_waited_on, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    for (int kind = 0; kind < 2; kind++) {
        queue_ctx *q = calloc(1, sizeof *q);
        cr_assert_not_null(q);
        q->deadline = weft_now() + 30 * SECONDS;
        sync_blocker b;
        start_blocker(&b, kind ? rt : NULL, block_cond_wait, q, 0);
        await_parked(&b, "a cond_wait");
        cr_assert_eq(weft_cond_destroy(&q->c), -EBUSY, "cond_destroy while waited on");
        cr_assert_not(sync_blocker_finished(&b), "a refused destroy woke the waiter");
        cr_assert_eq(weft_cond_signal(&q->c), 0);
        join_blocker(&b);
        cr_assert_eq(b.result, 0, "the waiter after the refused destroy: %d", b.result);
        cr_assert_eq(weft_cond_destroy(&q->c), 0);
        cr_assert_eq(weft_mutex_destroy(&q->m), 0);
        free(q);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* A bounded buffer with a predicate loop, signal (not broadcast) on each side: every
 * item arrives exactly once, and a lost wake-up shows as a 30 s wait that fails. */
#define PC_CAP 4
typedef struct pc_ctx {
    weft_mutex m;
    weft_cond not_empty, not_full;
    uint64_t buf[PC_CAP];
    size_t head, count;      /* under m */
    size_t taken;            /* under m */
    size_t per_producer, total;
    weft__atomic_word next_producer;
    unsigned char *seen;     /* under m */
} pc_ctx;

static void *pc_produce(void *arg) {
    pc_ctx *p = arg;
    uint64_t id = weft__atomic_fetch_add_full(&p->next_producer, 1);
    for (size_t i = 0; i < p->per_producer; i++) {
        cr_assert_eq(weft_mutex_lock(&p->m), 0);
        while (p->count == PC_CAP) {
            int rc = weft_cond_wait(&p->not_full, &p->m, weft_now() + 30 * SECONDS);
            cr_assert_eq(rc, 0, "producer: cond_wait %d (a lost wake-up?)", rc);
        }
        p->buf[(p->head + p->count++) % PC_CAP] = id * p->per_producer + i;
        cr_assert_eq(weft_cond_signal(&p->not_empty), 0);
        cr_assert_eq(weft_mutex_unlock(&p->m), 0);
    }
    return NULL;
}

static void *pc_consume(void *arg) {
    pc_ctx *p = arg;
    cr_assert_eq(weft_mutex_lock(&p->m), 0);
    for (;;) {
        while (p->count == 0 && p->taken < p->total) {
            int rc = weft_cond_wait(&p->not_empty, &p->m, weft_now() + 30 * SECONDS);
            cr_assert_eq(rc, 0, "consumer: cond_wait %d (a lost wake-up?) at %zu of %zu", rc,
                         p->taken, p->total);
        }
        if (p->count == 0)
            break;
        uint64_t v = p->buf[p->head];
        p->head = (p->head + 1) % PC_CAP;
        p->count--;
        cr_assert_lt(v, p->total);
        cr_assert_eq(p->seen[v], 0, "item %llu received twice", (unsigned long long)v);
        p->seen[v] = 1;
        if (++p->taken == p->total)
            cr_assert_eq(weft_cond_broadcast(&p->not_empty), 0); /* the others may stop */
        cr_assert_eq(weft_cond_signal(&p->not_full), 0);
        if (p->taken % 16 == 0) { /* let the others in now and then */
            cr_assert_eq(weft_mutex_unlock(&p->m), 0);
            if (weft_current_id())
                weft_yield();
            cr_assert_eq(weft_mutex_lock(&p->m), 0);
        }
    }
    cr_assert_eq(weft_mutex_unlock(&p->m), 0);
    return NULL;
}

static void *pc_spawn(void *arg) {
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        cr_assert_not_null(t[i] = weft_spawn(i % 2 ? pc_consume : pc_produce, arg));
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_join(t[i], NULL), 0);
    return NULL;
}

Test(cond, producer_consumer_no_lost_wakeups, .timeout = 180) {
    pc_ctx *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    /* 3 producer tasks and 2 producer threads; 3 consumer tasks and 2 consumer threads. */
    p->per_producer = weft_test_size(20000, 20);
    p->total = 5 * p->per_producer;
    p->seen = calloc(p->total, 1);
    cr_assert_not_null(p->seen);
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, i % 2 ? pc_consume : pc_produce, p), 0);
    cr_assert_eq(weft_block_on(rt, pc_spawn, p, NULL), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    cr_assert_eq(p->taken, p->total);
    for (size_t i = 0; i < p->total; i++)
        cr_assert(p->seen[i], "item %zu never received", i);
    cr_assert_eq(weft_cond_destroy(&p->not_empty), 0);
    cr_assert_eq(weft_cond_destroy(&p->not_full), 0);
    cr_assert_eq(weft_mutex_destroy(&p->m), 0);
    free(p->seen);
    free(p);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- sem ------------------------------------------------------------------------------------ */

static void sem_permits_body(void) {
    weft_sem s = {{0}};
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN, "[%s] a zeroed sem has no permit", mode);
    cr_assert_eq(weft_sem_destroy(&s), 0);
    weft_sem_init(&s, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_sem_try_acquire(&s), 0, "[%s] permit %d of 3", mode, i);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN, "[%s] a fourth permit of 3", mode);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_sem_acquire(&s, WEFT_FOREVER), 0, "[%s] acquire with a permit", mode);
    cr_assert_eq(weft_sem_acquire(&s, 1), 0, "[%s] acquire(past) with a permit is a poll", mode);
    check_poll(weft_sem_acquire(&s, 1), "acquire(past), no permit");
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_sem_acquire(&s, d), d, "acquire, no permit");
    /* The timed-out acquires took nothing: one release is one permit. */
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), 0, "[%s] after timed-out acquires", mode);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
    cr_assert_eq(weft_sem_destroy(&s), 0);

    weft_sem_init(&s, (uint64_t)INT64_MAX);
    cr_assert_eq(weft_sem_release(&s), -EOVERFLOW, "[%s] release past 2^63 - 1", mode);
    cr_assert_eq(weft_sem_try_acquire(&s), 0);
    cr_assert_eq(weft_sem_release(&s), 0, "[%s] release back to 2^63 - 1", mode);
    cr_assert_eq(weft_sem_release(&s), -EOVERFLOW);
    cr_assert_eq(weft_sem_destroy(&s), 0, "[%s] destroy with permits (nobody waits)", mode);
}

Test(sem, permits_try_and_deadlines, .timeout = 60) {
    in_every_mode(sem_permits_body);
}

static int block_acquire(sync_blocker *b) {
    sync_blocker_arrive(b);
    return weft_sem_acquire(b->ctx, b->param ? weft_now() + (uint64_t)b->param * MS
                                             : weft_now() + 30 * SECONDS);
}

Test(sem, release_hands_off_to_the_oldest_waiter, .timeout = 120) {
    enum { N = 6 };
    weft_runtime *rt = one_worker_runtime();
    weft_sem s = {{0}};
    sync_blocker b[N];
    for (int i = 0; i < N; i++) {
        start_blocker(&b[i], i % 2 ? rt : NULL, block_acquire, &s, 0);
        await_parked(&b[i], "an acquire");
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(weft_sem_release(&s), 0);
        cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN,
                     "release %d with waiters: try_acquire took the permit meant for the oldest", i);
        cr_assert_eq(sync_blocker_await_finished(&b[i], 10000), 0,
                     "release %d did not wake waiter %d (the oldest) within 10 s", i, i);
        cr_assert_eq(b[i].result, 0, "waiter %d: %d", i, b[i].result);
        for (int j = i + 1; j < N; j++)
            cr_assert_not(sync_blocker_finished(&b[j]), "release %d woke waiter %d too", i, j);
    }
    for (int i = 0; i < N; i++)
        join_blocker(&b[i]);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN, "a permit left after %d hand-offs", N);
    cr_assert_eq(weft_sem_destroy(&s), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

Test(sem, timed_out_waiter_takes_nothing_and_destroy_is_ebusy, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    weft_sem s = {{0}};
    for (int kind = 0; kind < 2; kind++) {
        sync_blocker b;
        start_blocker(&b, kind ? rt : NULL, block_acquire, &s, 30);
        join_blocker(&b);
        cr_assert_eq(b.result, -ETIMEDOUT, "acquire(30 ms) with no permit: %d", b.result);
        /* The timed-out waiter left the queue: a release is a permit for anyone. */
        cr_assert_eq(weft_sem_release(&s), 0);
        cr_assert_eq(weft_sem_try_acquire(&s), 0, "a timed-out waiter swallowed a release");

        start_blocker(&b, kind ? rt : NULL, block_acquire, &s, 0);
        await_parked(&b, "an acquire");
        cr_assert_eq(weft_sem_destroy(&s), -EBUSY, "sem_destroy while waited on");
        cr_assert_not(sync_blocker_finished(&b), "a refused destroy woke the waiter");
        cr_assert_eq(weft_sem_release(&s), 0);
        join_blocker(&b);
        cr_assert_eq(b.result, 0);
        cr_assert_eq(weft_sem_destroy(&s), 0);
        weft_sem_init(&s, 0);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static void *acquire_forever(void *arg) {
    cr_assert_eq(weft_sem_acquire(arg, WEFT_FOREVER), 0);
    return NULL;
}

static void *release_n(void *arg) {
    weft_sem *s = arg;
    for (int i = 0; i < 8; i++) {
        nap_ms(1);
        cr_assert_eq(weft_sem_release(s), 0);
    }
    return NULL;
}

static void sem_many_body(void) {
    weft_sem s = {{0}};
    peer p[8], r;
    for (int i = 0; i < 8; i++) {
        if (i % 2)
            thread_start(&p[i], acquire_forever, &s);
        else
            peer_start(&p[i], acquire_forever, &s);
    }
    peer_start(&r, release_n, &s);
    for (int i = 0; i < 8; i++)
        peer_join(&p[i]);
    peer_join(&r);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN, "[%s] 8 releases, 8 acquires", mode);
    cr_assert_eq(weft_sem_destroy(&s), 0);
}

Test(sem, many_waiters, .timeout = 60) {
    in_every_mode(sem_many_body);
}

/* ---- waitgroup --------------------------------------------------------------------------- */

static void waitgroup_counter_body(void) {
    weft_waitgroup wg = {{0}};
    cr_assert_eq(weft_waitgroup_wait(&wg, WEFT_FOREVER), 0, "[%s] wait at 0", mode);
    cr_assert_eq(weft_waitgroup_wait(&wg, 1), 0, "[%s] wait(past) at 0", mode);
    cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL, "[%s] done at 0", mode);
    cr_assert_eq(weft_waitgroup_add(&wg, -1), -EINVAL, "[%s] add(-1) at 0", mode);
    cr_assert_eq(weft_waitgroup_wait(&wg, 1), 0, "[%s] the refused done changed the counter", mode);
    cr_assert_eq(weft_waitgroup_add(&wg, 0), 0, "[%s] add(0)", mode);
    cr_assert_eq(weft_waitgroup_add(&wg, 2), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, -3), -EINVAL, "[%s] add(-3) at 2", mode);
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_waitgroup_wait(&wg, d), d, "wait at 2");
    check_poll(weft_waitgroup_wait(&wg, 1), "wait(past) at 2");
    /* Still 2: two dones reach 0, a third is refused. */
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    check_poll(weft_waitgroup_wait(&wg, 1), "wait(past) at 1");
    cr_assert_eq(weft_waitgroup_add(&wg, -1), 0);
    cr_assert_eq(weft_waitgroup_wait(&wg, WEFT_FOREVER), 0, "[%s] wait at 0 again", mode);
    cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL);
    /* Reusable once at 0. */
    cr_assert_eq(weft_waitgroup_add(&wg, 5), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, -5), 0);
    cr_assert_eq(weft_waitgroup_wait(&wg, 1), 0);
    cr_assert_eq(weft_waitgroup_destroy(&wg), 0);
}

Test(waitgroup, counter_and_einval, .timeout = 60) {
    in_every_mode(waitgroup_counter_body);
}

typedef struct wg_ctx {
    weft_waitgroup wg;
    weft__atomic_word dones; /* counted before each done() */
    int n;
} wg_ctx;

static void *wg_wait_all(void *arg) {
    wg_ctx *w = arg;
    cr_assert_eq(weft_waitgroup_wait(&w->wg, weft_now() + 30 * SECONDS), 0, "[%s] wg wait", mode);
    cr_assert_eq((int)weft__atomic_load_acquire(&w->dones), w->n,
                 "[%s] the wait returned after %d of %d dones", mode,
                 (int)weft__atomic_load_acquire(&w->dones), w->n);
    return NULL;
}

static void *wg_do_done(void *arg) {
    wg_ctx *w = arg;
    nap_ms(5);
    weft__atomic_fetch_add_full(&w->dones, 1);
    cr_assert_eq(weft_waitgroup_done(&w->wg), 0);
    return NULL;
}

static void waitgroup_wait_body(void) {
    wg_ctx w = {.n = 4};
    cr_assert_eq(weft_waitgroup_add(&w.wg, w.n), 0);
    peer waiters[6], doers[4];
    for (int i = 0; i < 6; i++) {
        if (i % 2)
            thread_start(&waiters[i], wg_wait_all, &w);
        else
            peer_start(&waiters[i], wg_wait_all, &w);
    }
    uint64_t d = weft_now() + 10 * MS;
    check_timed_out(weft_waitgroup_wait(&w.wg, d), d, "wait before any done");
    for (int i = 0; i < w.n; i++) {
        if (i % 2)
            thread_start(&doers[i], wg_do_done, &w);
        else
            peer_start(&doers[i], wg_do_done, &w);
    }
    for (int i = 0; i < w.n; i++)
        peer_join(&doers[i]);
    for (int i = 0; i < 6; i++)
        peer_join(&waiters[i]);
    cr_assert_eq(weft_waitgroup_destroy(&w.wg), 0);
}

Test(waitgroup, waiters_wake_after_the_last_done, .timeout = 60) {
    in_every_mode(waitgroup_wait_body);
}

static int block_wg_wait(sync_blocker *b) {
    sync_blocker_arrive(b);
    return weft_waitgroup_wait(b->ctx, weft_now() + 30 * SECONDS);
}

Test(waitgroup, destroy_is_ebusy_while_waited_on, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    weft_waitgroup wg = {{0}};
    for (int kind = 0; kind < 2; kind++) {
        cr_assert_eq(weft_waitgroup_add(&wg, 1), 0);
        sync_blocker b;
        start_blocker(&b, kind ? rt : NULL, block_wg_wait, &wg, 0);
        await_parked(&b, "a waitgroup wait");
        cr_assert_eq(weft_waitgroup_destroy(&wg), -EBUSY, "waitgroup_destroy while waited on");
        cr_assert_not(sync_blocker_finished(&b), "a refused destroy woke the waiter");
        cr_assert_eq(weft_waitgroup_done(&wg), 0);
        join_blocker(&b);
        cr_assert_eq(b.result, 0);
        cr_assert_eq(weft_waitgroup_destroy(&wg), 0);
        weft_waitgroup_init(&wg);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- event -------------------------------------------------------------------------------- */

static void event_body(void) {
    weft_event e = {{0}};
    cr_assert_eq(weft_event_is_set(&e), 0, "[%s] a zeroed event is set", mode);
    check_poll(weft_event_wait(&e, 1), "event_wait(past), not set");
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_event_wait(&e, d), d, "event_wait, not set");
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_is_set(&e), 1);
    cr_assert_eq(weft_event_set(&e), 0, "[%s] set twice", mode);
    cr_assert_eq(weft_event_is_set(&e), 1);
    cr_assert_eq(weft_event_wait(&e, WEFT_FOREVER), 0, "[%s] wait on a set event", mode);
    cr_assert_eq(weft_event_wait(&e, 1), 0, "[%s] wait(past) on a set event", mode);
    cr_assert_eq(weft_event_is_set(&e), 1, "[%s] a wait cleared the event", mode);
    cr_assert_eq(weft_event_clear(&e), 0);
    cr_assert_eq(weft_event_is_set(&e), 0);
    cr_assert_eq(weft_event_clear(&e), 0, "[%s] clear twice", mode);
    d = weft_now() + 10 * MS;
    check_timed_out(weft_event_wait(&e, d), d, "event_wait after clear");
    cr_assert_eq(weft_event_destroy(&e), 0);
    weft_event_init(&e);
    cr_assert_eq(weft_event_is_set(&e), 0);
    cr_assert_eq(weft_event_destroy(&e), 0);
}

Test(event, set_clear_is_set_and_deadlines, .timeout = 60) {
    in_every_mode(event_body);
}

static int block_event_wait(sync_blocker *b) {
    sync_blocker_arrive(b);
    return weft_event_wait(b->ctx, weft_now() + 30 * SECONDS);
}

/* A set wakes every waiter; with clear_at_once, a clear right after the set still does
 * (weft.h: a set followed at once by a clear still wakes the waiters that were waiting). */
static void event_wakes_all(bool clear_at_once) {
    enum { N = 8 };
    weft_runtime *rt = one_worker_runtime();
    weft_event e = {{0}};
    sync_blocker b[N];
    for (int i = 0; i < N; i++)
        start_blocker(&b[i], i % 2 ? rt : NULL, block_event_wait, &e, 0);
    for (int i = 0; i < N; i++)
        await_parked(&b[i], "an event wait");
    cr_assert_eq(weft_event_set(&e), 0);
    if (clear_at_once)
        cr_assert_eq(weft_event_clear(&e), 0);
    for (int i = 0; i < N; i++) {
        join_blocker(&b[i]);
        cr_assert_eq(b[i].result, 0, "waiter %d of %d after a set%s: %d", i, N,
                     clear_at_once ? " and a clear" : "", b[i].result);
    }
    cr_assert_eq(weft_event_is_set(&e), clear_at_once ? 0 : 1);
    cr_assert_eq(weft_event_destroy(&e), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

Test(event, set_wakes_every_waiter, .timeout = 60) {
    event_wakes_all(false);
}

Test(event, set_then_clear_at_once_still_wakes_every_waiter, .timeout = 60) {
    event_wakes_all(true);
}

static void *event_wait_forever(void *arg) {
    cr_assert_eq(weft_event_wait(arg, WEFT_FOREVER), 0);
    return NULL;
}

static void event_many_body(void) {
    weft_event e = {{0}};
    peer p[8];
    for (int i = 0; i < 8; i++) {
        if (i % 2)
            thread_start(&p[i], event_wait_forever, &e);
        else
            peer_start(&p[i], event_wait_forever, &e);
    }
    nap_ms(10);
    cr_assert_eq(weft_event_set(&e), 0);
    for (int i = 0; i < 8; i++)
        peer_join(&p[i]);
    cr_assert_eq(weft_event_destroy(&e), 0);
}

Test(event, set_wakes_tasks_and_threads, .timeout = 60) {
    in_every_mode(event_many_body);
}

Test(event, destroy_is_ebusy_while_waited_on, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    weft_event e = {{0}};
    for (int kind = 0; kind < 2; kind++) {
        sync_blocker b;
        start_blocker(&b, kind ? rt : NULL, block_event_wait, &e, 0);
        await_parked(&b, "an event wait");
        cr_assert_eq(weft_event_destroy(&e), -EBUSY, "event_destroy while waited on");
        cr_assert_not(sync_blocker_finished(&b), "a refused destroy woke the waiter");
        cr_assert_eq(weft_event_set(&e), 0);
        join_blocker(&b);
        cr_assert_eq(b.result, 0);
        cr_assert_eq(weft_event_destroy(&e), 0, "destroy a set event nobody waits on");
        weft_event_init(&e);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}
