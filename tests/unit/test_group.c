/*
 * test_group.c: task groups (weft.h, "Task groups": weft_group_*) against their
 * contract.
 *
 * - misuse: NULL arguments -EINVAL (every call); weft_group_spawn outside a task -EPERM
 *   (nothing spawned); weft_group_wait and weft_group_destroy from a member -EDEADLK, and
 *   nothing changed; -EAGAIN at max_tasks (nothing spawned, the group intact); a member
 *   whose stack cannot be mapped comes out of weft_group_next as -ENOMEM with a NULL
 *   result (RLIMIT_AS; skipped under ASan, as test_api_errors.c's twin is).
 * - results: -ECHILD for an empty group, after weft_group_wait dropped the results, and
 *   once every result was read; weft_group_next in completion order (members released
 *   one by one in a shuffled order; members sleeping different times on one worker);
 *   a deadline: -ETIMEDOUT never early, nothing taken; weft_group_wait waits for every
 *   member and drops the results, and the group is usable after it.
 * - limits: set_limit bounds the members running at once (they wait at a gate: exactly
 *   the limit get in, and the spawner waits); spawns waiting for a slot are served first
 *   come, first served (threads and a task queued in a known order: their members start
 *   in that order); raising the limit lets waiting spawns go at once; lowering it stops
 *   no running member.
 * - cancel: weft_group_cancel cancels the running members (their sleeps end with
 *   -ECANCELED at once) and every member spawned after it starts cancelled (it still
 *   runs, and its first point says -ECANCELED).
 * - destroy: with members parked in every kind of wait (sleep, chan recv and send, fd
 *   read, select, cond, sem, event, wait group, mutex_lock_until, a join of another
 *   task, an inline join of its own child, a nested group's wait, next and spawn for a
 *   slot) it cancels them all and returns only when every one has finished (each counts
 *   itself last); waiters in weft_group_next and weft_group_wait on other threads are
 *   served (a result, -ECHILD, 0) before it frees the group (ASan checks the "before").
 * - nested groups: members owning groups; cancelling the outer group ends every inner
 *   member (through the members' own group calls and weft_group_destroy).
 * - threads and runtimes: weft_group_spawn_on from a plain thread, plain threads parked
 *   in weft_group_next and weft_group_wait, members on two runtimes at once.
 *
 * Timing: "promptly" is well under the long deadlines (PROMPT = 3 s against 30 s).
 */
#include "weft_criterion.h"

#include "sync_modes.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define LONG_WAIT (30 * SECONDS)
#define PROMPT    (3 * SECONDS)

static uint64_t far_deadline(void) {
    return weft_now() + LONG_WAIT;
}

static uint64_t soon(void) {
    return weft_now() + 10 * SECONDS;
}

static weft_group *group_new(void) {
    weft_group *g = NULL;
    cr_assert_eq(weft_group_create(&g), 0, "weft_group_create");
    cr_assert_not_null(g);
    return g;
}

static weft_runtime *runtime_new(unsigned workers, unsigned flags) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = workers, .flags = flags}, &rt), 0,
                 "runtime_create");
    return rt;
}

static void *identity(void *arg) {
    return arg;
}

static void *sleeps_long(void *arg) {
    (void)arg;
    return (void *)(intptr_t)weft_sleep_ms(LONG_WAIT / MS);
}

/* Waits until *word reaches want (napping, task or thread); fails after 10 s. */
static void await_count(weft__atomic_word *word, AO_t want, const char *what) {
    uint64_t give_up = soon();
    while (weft__atomic_load_acquire(word) < want) {
        cr_assert_lt(weft_now(), give_up, "%s: %lu of %lu within 10 s", what,
                     (unsigned long)weft__atomic_load_acquire(word), (unsigned long)want);
        nap_ms(1);
    }
}

/* The results left in g, as a bitmask of small integers, until -ECHILD. */
static uint64_t drain_mask(weft_group *g, size_t *count) {
    uint64_t mask = 0;
    size_t n = 0;
    void *r;
    int rc;
    while ((rc = weft_group_next(g, &r, soon())) == 0) {
        uintptr_t v = (uintptr_t)r;
        cr_assert_lt(v, 64, "a result %p out of range", r);
        cr_assert_not(mask & (1ull << v), "result %lu came out twice", (unsigned long)v);
        mask |= 1ull << v;
        n++;
    }
    cr_assert_eq(rc, -ECHILD, "weft_group_next returned %d", rc);
    if (count)
        *count = n;
    return mask;
}

/* ---- misuse ------------------------------------------------------------------------------ */

Test(group, null_arguments_are_einval, .timeout = 60) {
    weft_runtime *rt = runtime_new(1, 0);
    weft_group *g = group_new();
    cr_assert_eq(weft_group_create(NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn(NULL, identity, NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn(g, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn_on(NULL, rt, identity, NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn_on(g, NULL, identity, NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn_on(g, rt, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_group_set_limit(NULL, 1), -EINVAL);
    cr_assert_eq(weft_group_next(NULL, NULL, 1), -EINVAL);
    cr_assert_eq(weft_group_wait(NULL, 1), -EINVAL);
    cr_assert_eq(weft_group_cancel(NULL), -EINVAL);
    cr_assert_eq(weft_group_destroy(NULL), -EINVAL);
    /* Outside a task: -EPERM, nothing spawned. */
    cr_assert_eq(weft_group_spawn(g, identity, NULL), -EPERM);
    cr_assert_eq(weft_group_next(g, NULL, 1), -ECHILD, "a refused spawn left a member");
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

typedef struct member_misuse {
    weft_group *g;
    int wait_rc, destroy_rc;
} member_misuse;

static void *misusing_member(void *arg) {
    member_misuse *m = arg;
    m->wait_rc = weft_group_wait(m->g, 1);
    m->destroy_rc = weft_group_destroy(m->g);
    return (void *)7;
}

Test(group, wait_and_destroy_from_a_member_are_edeadlk, .timeout = 60) {
    weft_runtime *rt = runtime_new(2, 0);
    member_misuse m = {group_new(), 0, 0};
    cr_assert_eq(weft_group_spawn_on(m.g, rt, misusing_member, &m), 0);
    void *r = NULL;
    cr_assert_eq(weft_group_next(m.g, &r, soon()), 0, "the group after a member's misuse");
    cr_assert_eq((intptr_t)r, 7);
    cr_assert_eq(m.wait_rc, -EDEADLK, "weft_group_wait from a member returned %d", m.wait_rc);
    cr_assert_eq(m.destroy_rc, -EDEADLK, "weft_group_destroy from a member returned %d",
                 m.destroy_rc);
    cr_assert_eq(weft_group_next(m.g, &r, soon()), -ECHILD);
    cr_assert_eq(weft_group_destroy(m.g), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static weft_event gate;

static void *waits_at_gate(void *arg) {
    int rc = weft_event_wait(&gate, soon());
    return rc == 0 ? arg : (void *)(intptr_t)rc;
}

Test(group, spawn_at_max_tasks_is_eagain, .timeout = 60) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1, .max_tasks = 2}, &rt), 0);
    weft_group *g = group_new();
    cr_assert_eq(weft_group_spawn_on(g, rt, waits_at_gate, (void *)1), 0);
    cr_assert_eq(weft_group_spawn_on(g, rt, waits_at_gate, (void *)2), 0);
    cr_assert_eq(weft_group_spawn_on(g, rt, identity, (void *)3), -EAGAIN);
    cr_assert_eq(weft_event_set(&gate), 0);
    size_t n;
    cr_assert_eq(drain_mask(g, &n), 0x6, "results of the two members");
    cr_assert_eq(n, 2);
    /* The slots are back. */
    cr_assert_eq(weft_group_spawn_on(g, rt, identity, (void *)3), 0);
    cr_assert_eq(drain_mask(g, NULL), 0x8);
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

Test(group, start_failure_is_enomem, .timeout = 60) {
#if defined(WEFT__ASAN)
    cr_skip_test("ASan reserves terabytes of address space: RLIMIT_AS cannot be lowered");
#elif defined(WEFT_TEST_UNDER_EMULATOR)
    cr_skip_test("under an emulator (qemu-user): RLIMIT_AS limits qemu's own reservations");
#else
    weft_runtime *rt = runtime_new(1, 0);
    weft_group *g = group_new();
    struct rlimit old;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    /* Room for the task object's chunk, not for a slab of stacks (as test_api_errors). */
    struct rlimit tight = {weft_test_proc_status_bytes("VmSize") + (512 << 10), old.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_AS, &tight), 0);
    int spawn_rc = weft_group_spawn_on(g, rt, identity, (void *)5);
    void *r = (void *)1;
    int next_rc = spawn_rc == 0 ? weft_group_next(g, &r, soon()) : spawn_rc;
    cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
    cr_assert_eq(spawn_rc, 0, "spawn under the tight limit: %d", spawn_rc);
    cr_assert_eq(next_rc, -ENOMEM, "a member that could not start: next returned %d", next_rc);
    cr_assert_null(r, "its result");
    cr_assert_eq(weft_group_next(g, &r, soon()), -ECHILD, "it was consumed");
    cr_assert_eq(weft_group_spawn_on(g, rt, identity, (void *)5), 0);
    cr_assert_eq(weft_group_next(g, &r, soon()), 0, "the group once memory is back");
    cr_assert_eq((intptr_t)r, 5);
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
#endif
}

/* ---- results ----------------------------------------------------------------------------- */

static void *echild_body(void *arg) {
    weft_runtime *rt = arg ? arg : weft_runtime_current();
    weft_group *g = group_new();
    void *r = (void *)1;
    cr_assert_eq(weft_group_next(g, &r, WEFT_FOREVER), -ECHILD, "[%s] next of a new group", mode);
    cr_assert_eq(weft_group_wait(g, WEFT_FOREVER), 0, "[%s] wait of an empty group", mode);
    for (uintptr_t i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn_on(g, rt, identity, (void *)i), 0);
    cr_assert_eq(weft_group_wait(g, soon()), 0);
    cr_assert_eq(weft_group_next(g, &r, WEFT_FOREVER), -ECHILD,
                 "[%s] next after wait dropped the results", mode);
    cr_assert_eq(r, (void *)1, "[%s] -ECHILD stored a result", mode);
    for (uintptr_t i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn_on(g, rt, identity, (void *)i), 0);
    cr_assert_eq(drain_mask(g, NULL), 0x7, "[%s] after a wait the group is usable", mode);
    cr_assert_eq(weft_group_next(g, &r, 1), -ECHILD, "[%s] once every result was read", mode);
    cr_assert_eq(weft_group_destroy(g), 0);
    return NULL;
}

Test(group, echild_when_nothing_is_left, .timeout = 60) {
    void *r;
    mode = "task";
    cr_assert_eq(weft_run(&(weft_config){.workers = 2}, echild_body, NULL, &r), 0);
    WEFT_ASSERT_NO_LEAKS();
    mode = "thread";
    weft_runtime *rt = runtime_new(2, 0);
    echild_body(rt);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static weft_event member_events[8];

static void *waits_own_event(void *arg) {
    uintptr_t i = (uintptr_t)arg;
    int rc = weft_event_wait(&member_events[i], soon());
    return rc == 0 ? arg : (void *)(intptr_t)rc;
}

Test(group, next_returns_members_in_completion_order, .timeout = 60) {
    static const uintptr_t order[8] = {5, 2, 7, 0, 3, 6, 1, 4};
    weft_runtime *rt = runtime_new(2, 0);
    weft_group *g = group_new();
    for (uintptr_t i = 0; i < 8; i++)
        cr_assert_eq(weft_group_spawn_on(g, rt, waits_own_event, (void *)i), 0);
    for (size_t k = 0; k < 8; k++) {
        void *r = (void *)99;
        if (k == 0) { /* nothing finished yet: a deadline, never early, takes nothing */
            uint64_t d = weft_now() + 20 * MS;
            check_timed_out(weft_group_next(g, &r, d), d, "next before any member finished");
            cr_assert_eq(r, (void *)99, "a timed-out next stored a result");
        }
        cr_assert_eq(weft_event_set(&member_events[order[k]]), 0);
        cr_assert_eq(weft_group_next(g, &r, soon()), 0);
        cr_assert_eq((uintptr_t)r, order[k], "next %zu returned member %lu, not %lu", k,
                     (unsigned long)(uintptr_t)r, (unsigned long)order[k]);
    }
    cr_assert_eq(weft_group_next(g, NULL, soon()), -ECHILD);
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static weft_event sleep_start;
static weft__atomic_word sleepers_ready;

static void *sleeps_by_index(void *arg) {
    uintptr_t i = (uintptr_t)arg;
    /* Every member first parks here, so that the sleeps start together (a fresh task's
     * start can take milliseconds under TSan). */
    weft__atomic_fetch_add_full(&sleepers_ready, 1);
    cr_assert_eq(weft_event_wait(&sleep_start, soon()), 0);
    cr_assert_eq(weft_sleep_ms(40 * (6 - i)), 0);
    return arg;
}

static void *sleep_order_body(void *arg) {
    (void)arg;
    weft_group *g = group_new();
    for (uintptr_t i = 0; i < 6; i++)
        cr_assert_eq(weft_group_spawn(g, sleeps_by_index, (void *)i), 0);
    await_count(&sleepers_ready, 6, "members ready");
    cr_assert_eq(weft_event_set(&sleep_start), 0);
    /* One worker: members finish strictly in the order of their deadlines. */
    for (uintptr_t k = 0; k < 6; k++) {
        void *r;
        cr_assert_eq(weft_group_next(g, &r, soon()), 0);
        cr_assert_eq((uintptr_t)r, 5 - k, "next %lu returned the member that slept %lu ms",
                     (unsigned long)k, (unsigned long)(40 * (6 - (uintptr_t)r)));
    }
    cr_assert_eq(weft_group_next(g, NULL, WEFT_FOREVER), -ECHILD);
    cr_assert_eq(weft_group_destroy(g), 0);
    return NULL;
}

Test(group, next_follows_sleeps, .timeout = 60) {
    cr_assert_eq(weft_run(&(weft_config){.workers = 1}, sleep_order_body, NULL, NULL), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static weft__atomic_word finished;

static void *sleeps_then_counts(void *arg) {
    weft_sleep_ms((uintptr_t)arg);
    weft__atomic_fetch_add_full(&finished, 1);
    return arg;
}

Test(group, wait_waits_for_every_member_and_drops_results, .timeout = 60) {
    weft_runtime *rt = runtime_new(2, 0);
    weft_group *g = group_new();
    for (uintptr_t i = 0; i < 6; i++)
        cr_assert_eq(weft_group_spawn_on(g, rt, sleeps_then_counts, (void *)(10 * i)), 0);
    uint64_t d = weft_now() + 5 * MS;
    check_timed_out(weft_group_wait(g, d), d, "wait with members sleeping 50 ms");
    cr_assert_eq(weft_group_wait(g, soon()), 0);
    cr_assert_eq(weft__atomic_load_acquire(&finished), 6, "wait returned before every member");
    cr_assert_eq(weft_group_next(g, NULL, 1), -ECHILD, "wait left results");
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- limits ------------------------------------------------------------------------------ */

static weft__atomic_word inside, max_inside, spawned;

static void enter_member(void) {
    AO_t now = weft__atomic_fetch_add_full(&inside, 1) + 1;
    AO_t seen = weft__atomic_load_acquire(&max_inside);
    while (now > seen && weft__atomic_cas_full(&max_inside, seen, now) != seen)
        seen = weft__atomic_load_acquire(&max_inside);
}

static void *gated_member(void *arg) {
    enter_member();
    int rc = weft_event_wait(&gate, soon());
    weft__atomic_fetch_add_full(&inside, (AO_t)-1);
    return rc == 0 ? arg : (void *)(intptr_t)rc;
}

typedef struct spawner {
    weft_group *g;
    size_t n;
    int rc;
} spawner;

static void *spawn_many(void *arg) {
    spawner *s = arg;
    for (uintptr_t i = 0; i < s->n; i++) {
        int rc = weft_group_spawn(s->g, gated_member, (void *)i);
        if (rc) {
            s->rc = rc;
            break;
        }
        weft__atomic_fetch_add_full(&spawned, 1);
    }
    return NULL;
}

Test(group, limit_bounds_members_running_at_once, .timeout = 60) {
    weft_runtime *rt = runtime_new(2, 0);
    spawner s = {group_new(), 12, 0};
    cr_assert_eq(weft_group_set_limit(s.g, 3), 0);
    weft_task *t = weft_spawn_on(rt, spawn_many, &s);
    cr_assert_not_null(t);
    await_count(&inside, 3, "members inside");
    weft_test_sleep_ms(50);
    cr_assert_eq(weft__atomic_load_acquire(&inside), 3, "more members than the limit ran");
    cr_assert_eq(weft__atomic_load_acquire(&spawned), 3, "the 4th spawn did not wait");
    cr_assert_eq(weft_event_set(&gate), 0);
    cr_assert_eq(weft_join(t, NULL), 0);
    cr_assert_eq(s.rc, 0, "a spawn failed: %d", s.rc);
    size_t n;
    cr_assert_eq(drain_mask(s.g, &n), 0xfff);
    cr_assert_eq(weft__atomic_load_acquire(&max_inside), 3, "at most 3 at once, and 3 did");
    cr_assert_eq(weft_group_destroy(s.g), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* Slot waiters: blockers (sync_util.h) that spawn into a full group. */
typedef struct fifo {
    weft_group *g;
    weft_runtime *rt; /* where the threads' members run */
    weft__atomic_word next_seq;
    AO_t seq_of[8]; /* the start order of each spawner's member */
} fifo;

static fifo *the_fifo;

static void *records_start(void *arg) {
    uintptr_t who = (uintptr_t)arg;
    the_fifo->seq_of[who] = weft__atomic_fetch_add_full(&the_fifo->next_seq, 1);
    return arg;
}

static int spawn_for_slot(sync_blocker *b) {
    fifo *f = b->ctx;
    sync_blocker_arrive(b);
    if (weft_current_id())
        return weft_group_spawn(f->g, records_start, (void *)(uintptr_t)b->param);
    return weft_group_spawn_on(f->g, f->rt, records_start, (void *)(uintptr_t)b->param);
}

Test(group, slot_waiters_are_served_first_come_first_served, .timeout = 60) {
    fifo f = {.g = group_new(), .rt = runtime_new(2, 0)};
    the_fifo = &f;
    weft_runtime *task_rt = runtime_new(1, 0);
    cr_assert_eq(weft_group_set_limit(f.g, 1), 0);
    cr_assert_eq(weft_group_spawn_on(f.g, f.rt, waits_at_gate, (void *)7), 0);
    /* Five spawners queue in a known order: threads and tasks mixed. */
    sync_blocker b[5];
    for (long i = 0; i < 5; i++) {
        start_blocker(&b[i], i % 2 ? task_rt : NULL, spawn_for_slot, &f, i);
        await_parked(&b[i], "a spawn waiting for a slot");
    }
    cr_assert_eq(weft__atomic_load_acquire(&f.next_seq), 0, "a spawn got past the limit");
    cr_assert_eq(weft_event_set(&gate), 0);
    for (int i = 0; i < 5; i++) {
        join_blocker(&b[i]);
        cr_assert_eq(b[i].result, 0, "spawner %d: %d", i, b[i].result);
    }
    cr_assert_eq(drain_mask(f.g, NULL), 0x9f);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(f.seq_of[i], (AO_t)i, "spawner %d's member started %luth", i,
                     (unsigned long)f.seq_of[i]);
    cr_assert_eq(weft_group_destroy(f.g), 0);
    cr_assert_eq(weft_runtime_destroy(task_rt), 0);
    cr_assert_eq(weft_runtime_destroy(f.rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static int spawn_gated_for_slot(sync_blocker *b) {
    fifo *f = b->ctx;
    sync_blocker_arrive(b);
    return weft_group_spawn_on(f->g, f->rt, gated_member, (void *)(uintptr_t)b->param);
}

Test(group, raising_the_limit_releases_waiting_spawns, .timeout = 60) {
    fifo f = {.g = group_new(), .rt = runtime_new(2, 0)};
    cr_assert_eq(weft_group_set_limit(f.g, 1), 0);
    cr_assert_eq(weft_group_spawn_on(f.g, f.rt, gated_member, (void *)0), 0);
    await_count(&inside, 1, "the first member");
    sync_blocker b[3];
    for (long i = 0; i < 3; i++) {
        start_blocker(&b[i], NULL, spawn_gated_for_slot, &f, i + 1);
        await_parked(&b[i], "a spawn waiting for a slot");
    }
    cr_assert_eq(weft_group_set_limit(f.g, 4), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sync_blocker_await_finished(&b[i], 10000), 0,
                     "spawner %d still waits after the limit was raised", i);
        cr_assert_eq(b[i].result, 0);
        join_blocker(&b[i]);
    }
    await_count(&inside, 4, "members inside after the raise");
    /* Lowering the limit stops nobody: the 4 go on; a new spawn waits until they end. */
    cr_assert_eq(weft_group_set_limit(f.g, 1), 0);
    sync_blocker late;
    start_blocker(&late, NULL, spawn_gated_for_slot, &f, 4);
    await_parked(&late, "a spawn above the lowered limit");
    cr_assert_eq(weft__atomic_load_acquire(&inside), 4, "lowering the limit stopped members");
    cr_assert_eq(weft_event_set(&gate), 0);
    join_blocker(&late);
    cr_assert_eq(late.result, 0);
    cr_assert_eq(drain_mask(f.g, NULL), 0x1f);
    cr_assert_eq(weft__atomic_load_acquire(&max_inside), 4);
    cr_assert_eq(weft_group_destroy(f.g), 0);
    cr_assert_eq(weft_runtime_destroy(f.rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- cancel ------------------------------------------------------------------------------ */

static void *starts_cancelled(void *arg) {
    (void)arg;
    int c = weft_cancelled();
    int rc = weft_sleep_ms(LONG_WAIT / MS);
    return (void *)(intptr_t)(c == 1 && rc == -ECANCELED ? 1 : -1000 - rc);
}

Test(group, cancel_reaches_running_and_later_members, .timeout = 60) {
    weft_runtime *rt = runtime_new(2, 0);
    weft_group *g = group_new();
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_group_spawn_on(g, rt, sleeps_long, NULL), 0);
    weft_test_sleep_ms(20);
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_group_cancel(g), 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        cr_assert_eq(weft_group_next(g, &r, soon()), 0);
        cr_assert_eq((intptr_t)r, -ECANCELED, "a member's sleep returned %ld", (long)(intptr_t)r);
    }
    cr_assert_lt(weft_now() - t0, PROMPT, "the cancelled members took long");
    /* Sticky: later members start cancelled, and still run. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn_on(g, rt, starts_cancelled, NULL), 0);
    for (int i = 0; i < 3; i++) {
        void *r = NULL;
        cr_assert_eq(weft_group_next(g, &r, soon()), 0);
        cr_assert_eq((intptr_t)r, 1, "a member spawned after the cancel: %ld", (long)(intptr_t)r);
    }
    cr_assert_eq(weft_group_cancel(g), 0, "a second cancel");
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- destroy with members in every kind of wait ------------------------------------------ */

enum kind {
    K_SLEEP,
    K_CHAN_RECV,
    K_CHAN_SEND,
    K_FD_READ,
    K_SELECT,
    K_COND,
    K_SEM,
    K_EVENT,
    K_WAITGROUP,
    K_LOCK_UNTIL,
    K_JOIN_OTHER,
    K_JOIN_CHILD,
    K_INNER_WAIT,
    K_INNER_NEXT,
    K_INNER_SPAWN,
    K_KINDS
};

static const char *const kind_names[K_KINDS] = {
    "sleep",
    "chan recv",
    "chan send",
    "fd read",
    "select",
    "cond",
    "sem",
    "event",
    "waitgroup",
    "mutex_lock_until",
    "a join",
    "inline join",
    "inner group wait",
    "inner next",
    "inner spawn (slot)",
};

static struct parked {
    weft_chan *ch, *ch2;
    int sv[2];
    weft_mutex m, held;
    weft_cond c;
    weft_sem s;
    weft_event ev;
    weft_waitgroup wg;
    sync_blocker other; /* a task that K_JOIN_OTHER joins */
    weft__atomic_word arrived, finished, inner_cancelled;
    weft__atomic_word tid;
    int rc[K_KINDS];
    int extra[K_KINDS]; /* a kind's own after-check: 0 when right */
} P;

static void *inner_sleeper(void *arg) {
    (void)arg;
    int rc = weft_sleep_ms(LONG_WAIT / MS);
    if (rc == -ECANCELED)
        weft__atomic_fetch_add_full(&P.inner_cancelled, 1);
    return NULL;
}

static void *child_sleeps(void *arg) {
    (void)arg;
    return (void *)(intptr_t)weft_sleep_ms(LONG_WAIT / MS);
}

static void arrive(void) {
    weft__atomic_store_release(&P.tid, (AO_t)sync_gettid());
    weft__atomic_fetch_add_full(&P.arrived, 1);
}

static void *parked_member(void *arg) {
    enum kind k = (enum kind)(uintptr_t)arg;
    uint64_t v = 0;
    void *r = NULL;
    int rc = 0;
    weft_group *inner = NULL;
    weft_task *child = NULL;
    if (k >= K_INNER_WAIT) {
        inner = group_new();
        cr_assert_eq(weft_group_spawn(inner, inner_sleeper, NULL), 0);
        if (k == K_INNER_SPAWN)
            cr_assert_eq(weft_group_set_limit(inner, 1), 0);
    }
    if (k == K_JOIN_CHILD)
        child = weft_spawn(child_sleeps, NULL);
    if (k == K_COND)
        cr_assert_eq(weft_mutex_lock(&P.m), 0);
    arrive();
    switch (k) {
    case K_SLEEP:
        rc = weft_sleep_until(far_deadline());
        break;
    case K_CHAN_RECV:
        rc = weft_chan_recv(P.ch, &v, far_deadline());
        break;
    case K_CHAN_SEND:
        v = 1;
        rc = weft_chan_send(P.ch2, &v, far_deadline());
        break;
    case K_FD_READ:
        rc = (int)weft_read(P.sv[0], &v, 1, far_deadline());
        break;
    case K_SELECT: {
        weft_case c[2] = {{.kind = WEFT_CASE_RECV, .chan = P.ch, .elem = &v},
                          {.kind = WEFT_CASE_FD, .fd = P.sv[1], .events = WEFT_IN}};
        rc = weft_select(c, 2, far_deadline());
        break;
    }
    case K_COND:
        rc = weft_cond_wait(&P.c, &P.m, far_deadline());
        P.extra[k] = weft_mutex_unlock(&P.m);
        break;
    case K_SEM:
        rc = weft_sem_acquire(&P.s, far_deadline());
        break;
    case K_EVENT:
        rc = weft_event_wait(&P.ev, far_deadline());
        break;
    case K_WAITGROUP:
        rc = weft_waitgroup_wait(&P.wg, far_deadline());
        break;
    case K_LOCK_UNTIL:
        rc = weft_mutex_lock_until(&P.held, far_deadline());
        break;
    case K_JOIN_OTHER:
        rc = weft_join_until(P.other.task, far_deadline(), NULL);
        break;
    case K_JOIN_CHILD:
        /* Inline or not, the child ends cancelled: inline it is part of our join; else
         * we cancel it ourselves, and join it shielded. */
        rc = weft_join(child, &r);
        if (rc == -ECANCELED) {
            cr_assert_eq(weft_cancel(child), 0);
            int old = weft_cancel_shield(1);
            rc = weft_join(child, &r);
            weft_cancel_shield(old);
        }
        P.extra[k] = rc;       /* the join: 0 */
        rc = (int)(intptr_t)r; /* the child's sleep */
        break;
    case K_INNER_WAIT:
        rc = weft_group_wait(inner, far_deadline());
        break;
    case K_INNER_NEXT:
        rc = weft_group_next(inner, &r, far_deadline());
        break;
    case K_INNER_SPAWN:
        rc = weft_group_spawn(inner, inner_sleeper, NULL);
        break;
    default:
        cr_assert_fail("kind %d", (int)k);
    }
    P.rc[k] = rc;
    if (inner) /* cancels the inner members, waits for them: not a cancellation point */
        P.extra[k] = weft_group_destroy(inner);
    weft__atomic_fetch_add_full(&P.finished, 1);
    return NULL;
}

static int other_waits(sync_blocker *b) {
    (void)b;
    sync_blocker_arrive(b);
    int rc = weft_event_wait(&P.ev, soon());
    return rc == 0 ? 0x07e : rc;
}

Test(group, destroy_cancels_members_in_every_kind_of_wait, .timeout = 60) {
    weft_runtime *rt = runtime_new(1, 0);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), 0, &P.ch), 0);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), 0, &P.ch2), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, P.sv), 0);
    cr_assert_eq(weft_waitgroup_add(&P.wg, 1), 0);
    cr_assert_eq(weft_mutex_lock(&P.held), 0);
    start_blocker(&P.other, rt, other_waits, NULL, 0);
    await_parked(&P.other, "the task to join");
    weft_group *g = group_new();
    for (uintptr_t k = 0; k < K_KINDS; k++)
        cr_assert_eq(weft_group_spawn_on(g, rt, parked_member, (void *)k), 0);
    await_count(&P.arrived, K_KINDS, "members at their waits");
    /* One worker: once it sleeps, every member (and inner member) is parked. */
    cr_assert_eq(sync_await_asleep((pid_t)weft__atomic_load_acquire(&P.tid), 10000), 0,
                 "the members did not park");
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_lt(weft_now() - t0, PROMPT, "destroy took long");
    cr_assert_eq(weft__atomic_load_acquire(&P.finished), K_KINDS,
                 "destroy returned before every member finished");
    for (int k = 0; k < K_KINDS; k++) {
        cr_expect_eq(P.rc[k], -ECANCELED, "a member in %s returned %d", kind_names[k], P.rc[k]);
        cr_expect_eq(P.extra[k], 0, "a member in %s: after-check %d", kind_names[k], P.extra[k]);
    }
    cr_assert_eq(weft__atomic_load_acquire(&P.inner_cancelled), 3,
                 "inner members cancelled by the inner groups' destroy");
    /* The joined task was not consumed by the cancelled join, and was cancelled by it
     * (weft.h: a join that returns -ECANCELED cancels the task it joins). */
    cr_assert_eq(weft_event_set(&P.ev), 0);
    join_blocker(&P.other);
    cr_assert_eq(P.other.result, -ECANCELED);
    cr_assert_eq(weft_mutex_unlock(&P.held), 0);
    cr_assert_eq(weft_waitgroup_done(&P.wg), 0);
    cr_assert_eq(weft_chan_destroy(P.ch), 0);
    cr_assert_eq(weft_chan_destroy(P.ch2), 0);
    cr_assert_eq(weft_fd_close(P.sv[0]), 0);
    cr_assert_eq(weft_fd_close(P.sv[1]), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    cr_assert_eq(weft_mutex_destroy(&P.m), 0);
    cr_assert_eq(weft_mutex_destroy(&P.held), 0);
    cr_assert_eq(weft_cond_destroy(&P.c), 0);
    cr_assert_eq(weft_sem_destroy(&P.s), 0);
    cr_assert_eq(weft_event_destroy(&P.ev), 0);
    cr_assert_eq(weft_waitgroup_destroy(&P.wg), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* Callers waiting on g when destroy runs: two nexts and one wait on plain threads, one
 * member (its result is its sleep's -ECANCELED). The member's result goes to one next,
 * the other gets -ECHILD, the wait 0; destroy frees g only after they are out (ASan
 * would see a late touch). */
static weft_group *waited;

static int next_body(sync_blocker *b) {
    void *r = NULL;
    sync_blocker_arrive(b);
    int rc = weft_group_next(waited, &r, far_deadline());
    return rc == 0 ? (int)(intptr_t)r : rc;
}

static int wait_body(sync_blocker *b) {
    sync_blocker_arrive(b);
    return weft_group_wait(waited, far_deadline());
}

Test(group, destroy_serves_waiting_callers_first, .timeout = 60) {
    weft_runtime *rt = runtime_new(2, 0);
    waited = group_new();
    cr_assert_eq(weft_group_spawn_on(waited, rt, sleeps_long, NULL), 0);
    sync_blocker b[3];
    start_blocker(&b[0], NULL, next_body, NULL, 0);
    start_blocker(&b[1], NULL, next_body, NULL, 0);
    start_blocker(&b[2], NULL, wait_body, NULL, 0);
    for (int i = 0; i < 3; i++)
        await_parked(&b[i], "a caller waiting on the group");
    cr_assert_eq(weft_group_destroy(waited), 0);
    for (int i = 0; i < 3; i++)
        join_blocker(&b[i]);
    int got = (b[0].result == -ECANCELED) + (b[1].result == -ECANCELED);
    int echild = (b[0].result == -ECHILD) + (b[1].result == -ECHILD);
    cr_assert(got == 1 && echild == 1, "the nexts returned %d and %d", b[0].result, b[1].result);
    cr_assert_eq(b[2].result, 0, "the wait returned %d", b[2].result);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- nested groups ----------------------------------------------------------------------- */

static weft__atomic_word inner_ended, outer_saw;

static void *inner_member(void *arg) {
    (void)arg;
    int rc = weft_sleep_ms(LONG_WAIT / MS);
    if (rc == -ECANCELED)
        weft__atomic_fetch_add_full(&inner_ended, 1);
    return (void *)(intptr_t)rc;
}

static void *outer_member(void *arg) {
    (void)arg;
    weft_group *inner = group_new();
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn(inner, inner_member, NULL), 0);
    void *r;
    int rc;
    while ((rc = weft_group_next(inner, &r, WEFT_FOREVER)) == 0)
        ;
    if (rc == -ECANCELED)
        weft__atomic_fetch_add_full(&outer_saw, 1);
    /* Our destroy cancels the inner members and waits for them. */
    cr_assert_eq(weft_group_destroy(inner), 0);
    return (void *)(intptr_t)rc;
}

Test(group, cancelling_the_outer_group_ends_the_inner_ones, .timeout = 60) {
    weft_runtime *rt = runtime_new(2, 0);
    weft_group *outer = group_new();
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_group_spawn_on(outer, rt, outer_member, NULL), 0);
    weft_test_sleep_ms(30);
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_group_cancel(outer), 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        cr_assert_eq(weft_group_next(outer, &r, soon()), 0);
        cr_assert_eq((intptr_t)r, -ECANCELED, "an outer member's inner next returned %ld",
                     (long)(intptr_t)r);
    }
    cr_assert_lt(weft_now() - t0, PROMPT);
    cr_assert_eq(weft__atomic_load_acquire(&outer_saw), 4);
    cr_assert_eq(weft__atomic_load_acquire(&inner_ended), 12, "inner members cancelled");
    cr_assert_eq(weft_group_destroy(outer), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- threads and runtimes ---------------------------------------------------------------- */

Test(group, plain_threads_spawn_and_wait, .timeout = 60) {
    weft_runtime *rt = runtime_new(2, 0);
    waited = group_new();
    for (uintptr_t i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn_on(waited, rt, waits_own_event, (void *)i), 0);
    sync_blocker b[2];
    start_blocker(&b[0], NULL, next_body, NULL, 0);
    start_blocker(&b[1], NULL, wait_body, NULL, 0);
    await_parked(&b[0], "a thread in weft_group_next");
    await_parked(&b[1], "a thread in weft_group_wait");
    cr_assert_eq(weft_event_set(&member_events[1]), 0);
    join_blocker(&b[0]);
    cr_assert_eq(b[0].result, 1, "the thread's next returned %d", b[0].result);
    cr_assert_not(sync_blocker_finished(&b[1]), "the thread's wait returned early");
    cr_assert_eq(weft_event_set(&member_events[0]), 0);
    cr_assert_eq(weft_event_set(&member_events[2]), 0);
    join_blocker(&b[1]);
    cr_assert_eq(b[1].result, 0);
    cr_assert_eq(weft_group_next(waited, NULL, 1), -ECHILD, "wait dropped the results");
    cr_assert_eq(weft_group_destroy(waited), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static void *where_am_i(void *arg) {
    weft_runtime **rts = arg;
    weft_runtime *rt = weft_runtime_current();
    int rc = weft_sleep_ms(1);
    return (void *)(uintptr_t)((rt == rts[0] ? 1 : rt == rts[1] ? 2 : 9) + (rc ? 100 : 0));
}

Test(group, members_on_two_runtimes, .timeout = 60) {
    weft_runtime *rts[2] = {runtime_new(1, 0), runtime_new(2, 0)};
    weft_group *g = group_new();
    for (int i = 0; i < 10; i++)
        cr_assert_eq(weft_group_spawn_on(g, rts[i % 2], where_am_i, rts), 0);
    int seen[3] = {0};
    void *r;
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(weft_group_next(g, &r, soon()), 0);
        uintptr_t v = (uintptr_t)r;
        cr_assert(v == 1 || v == 2, "a member ran on runtime %lu", (unsigned long)v);
        seen[v]++;
    }
    cr_assert(seen[1] == 5 && seen[2] == 5, "members per runtime: %d and %d", seen[1], seen[2]);
    /* A cancel reaches both; destroy waits for both. */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_group_spawn_on(g, rts[i % 2], sleeps_then_counts, (void *)50), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_group_spawn_on(g, rts[i % 2], sleeps_long, NULL), 0);
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft__atomic_load_acquire(&finished), 4, "destroy returned before the members");
    cr_assert_eq(weft_runtime_destroy(rts[0]), 0);
    cr_assert_eq(weft_runtime_destroy(rts[1]), 0);
    WEFT_ASSERT_NO_LEAKS();
}
