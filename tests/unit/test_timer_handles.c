/*
 * test_timer_handles.c: the public timer handles (weft_timer_*): firing never early,
 * cancel and re-arm (from the arming task, from another worker, from a thread that is
 * not a worker), a periodic timer re-arming itself, destroy from inside the callback and
 * destroy waiting for a callback running elsewhere, callbacks of one handle never
 * overlapping, the firing-versus-cancel race decided exactly once, shutdown, and every
 * argument error.
 */
#include "weft_criterion.h"

#include "base/atomic.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#define MS 1000000ull
#define US 1000ull

/* A callback's record: how often it ran, when, and whether two runs overlapped. */
typedef struct record {
    weft__atomic_word fired;
    weft__atomic_word inside;      /* callbacks running now */
    weft__atomic_word overlapped;  /* set if two ran at once */
    weft__atomic_word early;       /* set if one ran before its deadline */
    weft__atomic_word deadline;    /* the deadline of the latest arm */
    weft__atomic_word last_run_ns; /* weft_now() in the latest run */
    weft__atomic_word busy_ns;     /* each run spins this long (0: returns at once) */
    weft__atomic_word started;     /* set when a run begins */
    weft__atomic_word runtime_ok;  /* weft_runtime_current() was right in the callback */
    weft_runtime *runtime;
    weft_timer *timer; /* for tasks that re-arm it */
} record;

static void spin_for(uint64_t ns) {
    uint64_t end = weft_now() + ns;
    while (weft_now() < end)
        ;
}

static void on_fire(weft_timer *tm, void *arg) {
    (void)tm;
    record *r = arg;
    uint64_t now = weft_now();
    if (weft__atomic_fetch_add_full(&r->inside, 1) != 0)
        weft__atomic_store_release(&r->overlapped, 1);
    if (now < weft__atomic_load_acquire(&r->deadline))
        weft__atomic_store_release(&r->early, 1);
    if (weft_runtime_current() == r->runtime)
        weft__atomic_store_release(&r->runtime_ok, 1);
    weft__atomic_store_release(&r->started, 1);
    spin_for(weft__atomic_load_acquire(&r->busy_ns));
    weft__atomic_store_release(&r->last_run_ns, now);
    weft__atomic_fetch_add_full(&r->inside, (AO_t)-1);
    weft__atomic_fetch_add_full(&r->fired, 1);
}

static int arm_at(weft_timer *tm, record *r, uint64_t deadline) {
    weft__atomic_store_release(&r->deadline, deadline);
    return weft_timer_arm(tm, deadline);
}

static void wait_fired(record *r, AO_t count) {
    uint64_t give_up = weft_now() + 5000 * MS;
    while (weft__atomic_load_acquire(&r->fired) < count) {
        cr_assert(weft_now() < give_up, "fired %lu of %lu", (unsigned long)r->fired,
                   (unsigned long)count);
        if (weft_runtime_current())
            weft_sleep_ms(1);
        else
            weft_test_sleep_ms(1);
    }
}

/* ---- argument errors ------------------------------------------------------------ */

Test(timer_handles, errors) {
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 1}, &rt) == 0, "create");
    weft_timer *tm;
    record r = {.runtime = rt};
    cr_assert(weft_timer_create(NULL, on_fire, &r, &tm) == -EINVAL, "NULL runtime");
    cr_assert(weft_timer_create(rt, NULL, &r, &tm) == -EINVAL, "NULL callback");
    cr_assert(weft_timer_create(rt, on_fire, &r, NULL) == -EINVAL, "NULL out");
    cr_assert(weft_timer_arm(NULL, weft_now()) == -EINVAL, "arm NULL");
    cr_assert(weft_timer_cancel(NULL) == -EINVAL, "cancel NULL");
    cr_assert(weft_timer_destroy(NULL) == -EINVAL, "destroy NULL");
    cr_assert(weft_timer_create(rt, on_fire, &r, &tm) == 0, "create");
    cr_assert(weft_timer_arm(tm, WEFT_FOREVER) == -EINVAL, "arm forever");
    cr_assert(weft_timer_cancel(tm) == 0, "cancel of a timer never armed");
    cr_assert(weft_runtime_current() == NULL, "runtime_current on a plain thread");
    cr_assert(weft_timer_destroy(tm) == 0, "destroy");
    cr_assert(r.fired == 0, "fired without an arm");
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy runtime");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- from a task: fire, cancel, re-arm, periodic, destroy inside ------------------ */

static weft__atomic_word periodic_left;

static void on_periodic(weft_timer *tm, void *arg) {
    record *r = arg;
    on_fire(tm, arg);
    if (weft__atomic_fetch_add_full(&periodic_left, (AO_t)-1) > 1)
        cr_assert(arm_at(tm, r, weft_now() + 200 * US) == 0, "re-arm from the callback");
}

static void on_fire_destroy(weft_timer *tm, void *arg) {
    on_fire(tm, arg);
    cr_assert(weft_timer_destroy(tm) == 0, "destroy from inside the callback");
    cr_assert(weft_spawn(NULL, NULL) == NULL && errno == EPERM, "spawn in a callback");
}

static void *from_task(void *arg) {
    (void)arg;
    weft_runtime *rt = weft_runtime_current();
    cr_assert(rt != NULL, "runtime_current in a task");
    weft_timer *tm;

    /* Fires once, not before its deadline, with the right runtime current. */
    record a = {.runtime = rt};
    cr_assert(weft_timer_create(rt, on_fire, &a, &tm) == 0, "create");
    cr_assert(arm_at(tm, &a, weft_now() + 2 * MS) == 0, "arm");
    wait_fired(&a, 1);
    weft_sleep_ms(5);
    cr_assert(a.fired == 1 && !a.early && a.runtime_ok, "fired %lu early %lu rt %lu",
               (unsigned long)a.fired, (unsigned long)a.early, (unsigned long)a.runtime_ok);
    cr_assert(weft_timer_cancel(tm) == 0, "cancel after firing");

    /* A deadline already past fires at once. */
    cr_assert(arm_at(tm, &a, weft_now() - 1) == 0, "arm in the past");
    wait_fired(&a, 2);

    /* Cancel before the deadline: never fires. */
    cr_assert(arm_at(tm, &a, weft_now() + 20 * MS) == 0, "arm");
    cr_assert(weft_timer_cancel(tm) == 1, "cancel a pending firing");
    cr_assert(weft_timer_cancel(tm) == 0, "second cancel");
    weft_sleep_ms(30);
    cr_assert(a.fired == 2, "a cancelled timer fired");

    /* Re-arm replaces: one firing, at the later deadline. */
    uint64_t start = weft_now();
    cr_assert(arm_at(tm, &a, start + 5 * MS) == 0, "arm");
    cr_assert(arm_at(tm, &a, start + 15 * MS) == 0, "re-arm");
    wait_fired(&a, 3);
    cr_assert(a.last_run_ns >= start + 15 * MS, "fired at the replaced deadline");
    weft_sleep_ms(10);
    cr_assert(a.fired == 3 && !a.early, "re-arm doubled the firing");
    cr_assert(weft_timer_destroy(tm) == 0, "destroy");

    /* Periodic: the callback re-arms itself. */
    record p = {.runtime = rt};
    weft__atomic_store_release(&periodic_left, 20);
    cr_assert(weft_timer_create(rt, on_periodic, &p, &tm) == 0, "create");
    cr_assert(arm_at(tm, &p, weft_now() + 200 * US) == 0, "arm");
    wait_fired(&p, 20);
    weft_sleep_ms(5);
    cr_assert(p.fired == 20 && !p.early, "periodic fired %lu", (unsigned long)p.fired);
    cr_assert(weft_timer_destroy(tm) == 0, "destroy");

    /* Destroy from inside its own callback. */
    record d = {.runtime = rt};
    cr_assert(weft_timer_create(rt, on_fire_destroy, &d, &tm) == 0, "create");
    cr_assert(arm_at(tm, &d, weft_now() + MS) == 0, "arm");
    wait_fired(&d, 1);

    /* Left armed and never destroyed: weft_runtime_destroy frees it. */
    record left = {.runtime = rt};
    cr_assert(weft_timer_create(rt, on_fire, &left, &tm) == 0, "create");
    cr_assert(weft_timer_arm(tm, weft_now() + 3600 * 1000 * MS) == 0, "arm an hour away");
    return NULL;
}

Test(timer_handles, from_task) {
    cr_assert(weft_run(&(weft_config){.workers = 2}, from_task, NULL, NULL) == 0, "run");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- the firing-versus-cancel race, across workers -------------------------------- */

typedef struct race {
    weft_timer *tm;
    record r;
    uint64_t deadline;
    uint64_t cancel_delay;
    int cancelled; /* what weft_timer_cancel returned */
} race;

static void *cancel_later(void *arg) {
    race *x = arg;
    uint64_t at = weft_now() + x->cancel_delay;
    while (weft_now() < at) /* spin: a sleep would be too coarse for this race */
        weft_yield();
    x->cancelled = weft_timer_cancel(x->tm);
    return NULL;
}

static void *far_then_rearm(void *arg) {
    race *x = arg;
    /* Another task re-arms what this one armed: the 10 s arming sits in the wheel of
     * whichever worker ran the arming task, and is revoked from wherever this runs. */
    cr_assert(arm_at(x->tm, &x->r, weft_now() + 200 * US) == 0, "re-arm");
    return NULL;
}

static void *race_rounds(void *arg) {
    size_t rounds = (size_t)arg;
    weft_runtime *rt = weft_runtime_current();
    enum { PARALLEL = 8 };
    race xs[PARALLEL];
    size_t fired = 0, cancelled = 0;
    uint64_t random = 0x9e3779b97f4a7c15ull;
    for (size_t round = 0; round < rounds; round++) {
        weft_task *cancellers[PARALLEL];
        for (int i = 0; i < PARALLEL; i++) {
            race *x = &xs[i];
            *x = (race){.r = {.runtime = rt}};
            random ^= random << 13, random ^= random >> 7, random ^= random << 17;
            x->deadline = weft_now() + 20 * US + random % (300 * US);
            x->cancel_delay = (random >> 20) % (300 * US);
            cr_assert(weft_timer_create(rt, on_fire, &x->r, &x->tm) == 0, "create");
            cr_assert(arm_at(x->tm, &x->r, x->deadline) == 0, "arm");
            cancellers[i] = weft_spawn(cancel_later, x);
            cr_assert(cancellers[i] != NULL, "spawn");
        }
        for (int i = 0; i < PARALLEL; i++)
            cr_assert(weft_join(cancellers[i], NULL) == 0, "join");
        weft_sleep_ms(1); /* a firing claimed before the cancel has finished by now */
        for (int i = 0; i < PARALLEL; i++) {
            race *x = &xs[i];
            /* Exactly one of: the callback ran, or the cancel stopped it. */
            cr_assert(x->r.fired + (AO_t)x->cancelled == 1, "round %zu: fired %lu, cancel %d",
                       round, (unsigned long)x->r.fired, x->cancelled);
            cr_assert(!x->r.early, "fired early");
            fired += x->r.fired;
            cancelled += (size_t)x->cancelled;
            cr_assert(weft_timer_destroy(x->tm) == 0, "destroy");
        }
    }
    printf("test_timer_handles: cancel race: %zu fired, %zu cancelled\n", fired, cancelled);

    /* Re-arm from another task, of an arming far away on some worker's wheel. */
    for (size_t round = 0; round < rounds; round++) {
        race *x = &xs[0];
        *x = (race){.r = {.runtime = rt}};
        cr_assert(weft_timer_create(rt, on_fire, &x->r, &x->tm) == 0, "create");
        cr_assert(arm_at(x->tm, &x->r, weft_now() + 10000 * MS) == 0, "arm far");
        weft_task *t = weft_spawn(far_then_rearm, x);
        cr_assert(t && weft_join(t, NULL) == 0, "re-arm task");
        wait_fired(&x->r, 1);
        cr_assert(weft_timer_destroy(x->tm) == 0 && x->r.fired == 1 && !x->r.early, "re-arm");
    }
    return NULL;
}

Test(timer_handles, cancel_race) {
    size_t rounds = weft_test_size(150, 5);
    cr_assert(weft_run(&(weft_config){.workers = 2}, race_rounds, (void *)rounds, NULL) == 0,
               "run");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- callbacks never overlap; destroy waits for a running callback ---------------- */

static void *rearm_while_running(void *arg) {
    record *r = arg;
    weft_timer *tm = r->timer;
    while (!weft__atomic_load_acquire(&r->started))
        weft_yield();
    /* The callback is busy on the other worker: this firing comes due meanwhile. */
    cr_assert(weft_timer_arm(tm, weft_now()) == 0, "re-arm while running");
    return NULL;
}

Test(timer_handles, overlap_and_destroy_wait) {
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &rt) == 0, "create");
    record r = {0};
    weft_timer *tm;
    cr_assert(weft_timer_create(rt, on_fire, &r, &tm) == 0, "create");
    weft__atomic_store_release(&r.busy_ns, 20 * MS);
    r.timer = tm;
    weft_task *t = weft_spawn_on(rt, rearm_while_running, &r);
    cr_assert(t != NULL, "spawn");
    /* From this thread, which is not a worker: carried by an arm task. */
    cr_assert(arm_at(tm, &r, weft_now() + MS) == 0, "arm from a foreign thread");
    cr_assert(weft_join(t, NULL) == 0, "join");
    wait_fired(&r, 2);
    cr_assert(!r.overlapped, "two callbacks of one handle ran at once");

    /* Destroy while the callback runs on a worker: waits for it to return. */
    weft__atomic_store_release(&r.started, 0);
    cr_assert(arm_at(tm, &r, weft_now()) == 0, "arm");
    while (!weft__atomic_load_acquire(&r.started))
        weft_test_sleep_ms(1);
    cr_assert(weft_timer_destroy(tm) == 0, "destroy");
    cr_assert(r.fired == 3 && r.inside == 0, "destroy returned while the callback ran");

    /* A foreign arm cancelled before or after its arm task ran: never fires. */
    record c = {0};
    cr_assert(weft_timer_create(rt, on_fire, &c, &tm) == 0, "create");
    for (int i = 0; i < 50; i++) {
        /* Far enough that a loaded machine's late wake-up from the 1 ms sleep cannot let
         * it fire first (5 ms did, under a load average of 9). */
        cr_assert(arm_at(tm, &c, weft_now() + 500 * MS) == 0, "foreign arm");
        if (i & 1)
            weft_test_sleep_ms(1);
        cr_assert(weft_timer_cancel(tm) == 1, "foreign cancel %d", i);
    }
    weft_test_sleep_ms(10);
    cr_assert(c.fired == 0, "a cancelled foreign arm fired");
    cr_assert(arm_at(tm, &c, weft_now() + MS) == 0, "foreign arm");
    wait_fired(&c, 1);
    cr_assert(weft_timer_destroy(tm) == 0, "destroy");
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy runtime");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- shutdown: a foreign arm is refused once destroy has begun --------------------- */

struct shutdown_ctx {
    weft_runtime *rt;
    weft__atomic_word gate;
};

static void *gated(void *arg) {
    struct shutdown_ctx *s = arg;
    while (!weft__atomic_load_acquire(&s->gate))
        weft_sleep_ms(1);
    return NULL;
}

static void *destroyer(void *arg) {
    struct shutdown_ctx *s = arg;
    cr_assert(weft_runtime_destroy(s->rt) == 0, "destroy");
    return NULL;
}

Test(timer_handles, shutdown) {
    struct shutdown_ctx s = {0};
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &s.rt) == 0, "create");
    record r = {0};
    weft_timer *tm;
    cr_assert(weft_timer_create(s.rt, on_fire, &r, &tm) == 0, "create");
    weft_task *t = weft_spawn_on(s.rt, gated, &s);
    cr_assert(t != NULL, "spawn");
    weft_detach(t);
    pthread_t thread;
    cr_assert(pthread_create(&thread, NULL, destroyer, &s) == 0, "thread");
    int rc;
    uint64_t give_up = weft_now() + 5000 * MS;
    while ((rc = weft_timer_arm(tm, weft_now() + 3600 * 1000 * MS)) == 0) {
        cr_assert(weft_now() < give_up, "destroy never began");
        weft_test_sleep_ms(1);
    }
    cr_assert(rc == -ESHUTDOWN, "arm during shutdown: %d", rc);
    weft__atomic_store_release(&s.gate, 1);
    pthread_join(thread, NULL); /* the handle, still armed, goes with the runtime */
    cr_assert(r.fired == 0, "fired");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- callbacks destroying each other's timers; nothing fires after destroy --------- */

typedef struct pair {
    weft_timer *timer[2];
    weft__atomic_word armed; /* both arms have returned: the handles may go */
    weft__atomic_word done;
} pair;

static pair *pair_of_timer(weft_timer *tm, void *arg, int *which) {
    pair *p = arg;
    *which = p->timer[0] == tm ? 0 : 1;
    return p;
}

/* Both fire at once, on the two workers when they can: each spins a little, then
 * destroys the other's timer, which must not wait for the other callback. */
static void destroy_the_other(weft_timer *tm, void *arg) {
    int which;
    pair *p = pair_of_timer(tm, arg, &which);
    while (!weft__atomic_load_acquire(&p->armed)) /* the main thread may still be arming */
        ;
    spin_for(200 * US);
    cr_assert(weft_timer_destroy(p->timer[1 - which]) == 0, "destroy the other");
    weft__atomic_fetch_add_full(&p->done, 1);
}

static weft__atomic_word late_fires;

static void count_late(weft_timer *tm, void *arg) {
    (void)tm;
    (void)arg;
    weft__atomic_fetch_add_full(&late_fires, 1);
}

static void *arm_and_leave(void *arg) {
    (void)arg;
    weft_timer *tm;
    cr_assert(weft_timer_create(weft_runtime_current(), count_late, NULL, &tm) == 0, "create");
    cr_assert(weft_timer_arm(tm, weft_now() + 30 * MS) == 0, "arm");
    return NULL; /* the runtime shuts down before the deadline */
}

Test(timer_handles, mutual_destroy_and_after_destroy) {
    weft_runtime *rt;
    cr_assert(weft_runtime_create(&(weft_config){.workers = 2}, &rt) == 0, "create");
    size_t rounds = weft_test_size(100, 4);
    /* One pair per round, kept until the runtime is gone: a second callback of a round
     * may still be reading its pair when the next round starts. */
    pair *pairs = calloc(rounds, sizeof(*pairs));
    cr_assert(pairs != NULL, "calloc");
    for (size_t i = 0; i < rounds; i++) {
        pair *p = &pairs[i];
        cr_assert(weft_timer_create(rt, destroy_the_other, p, &p->timer[0]) == 0, "create");
        cr_assert(weft_timer_create(rt, destroy_the_other, p, &p->timer[1]) == 0, "create");
        uint64_t at = weft_now() + MS;
        /* From this thread: each arm goes to whichever worker runs its arm task. */
        cr_assert(weft_timer_arm(p->timer[0], at) == 0 && weft_timer_arm(p->timer[1], at) == 0,
                   "arm");
        weft__atomic_store_release(&p->armed, 1);
        uint64_t give_up = weft_now() + 5000 * MS;
        /* One or both run: the first to run destroys the other, which then never runs,
         * unless it was already running (then it destroys the first). */
        while (weft__atomic_load_acquire(&p->done) == 0)
            cr_assert(weft_now() < give_up, "no callback finished (round %zu)", i);
    }
    cr_assert(weft_runtime_destroy(rt) == 0, "destroy");
    free(pairs);
    WEFT_ASSERT_NO_LEAKS();

    /* An armed timer whose tasks are all done never fires after destroy returns. */
    weft__atomic_store_release(&late_fires, 0);
    cr_assert(weft_run(&(weft_config){.workers = 2}, arm_and_leave, NULL, NULL) == 0, "run");
    AO_t at_return = weft__atomic_load_acquire(&late_fires);
    weft_test_sleep_ms(60);
    cr_assert(weft__atomic_load_acquire(&late_fires) == at_return && at_return == 0,
               "a timer fired after weft_run returned");
    WEFT_ASSERT_NO_LEAKS();
}
