/*
 * stress_deadlines.c: deadlines racing the events they wait for, across workers.
 *
 * 1. weft_join_until racing the completion of the joined task on another worker. A
 *    racer (one per worker but one, so that a worker is free to steal) spawns a child
 *    and, half the time, waits (spinning, so that another worker must steal it) until
 *    the child has started; the child spins or sleeps for D (0 to 300 us, from the
 *    seed) and the racer waits for it with a deadline of D + jitter from then, jitter
 *    from -100 to +100 us: the deadline falls on either side of the completion.
 *    Racers also run on threads that are not workers (a futex wait with a deadline).
 *    Checks: a join that succeeds returns the child's value; one that times out returns
 *    no earlier than its deadline and leaves a handle that a later join (plain, with
 *    deadlines in a loop, or a detach) consumes; every child ran exactly once.
 * 2. Timer handles racing their firing (weft_timer_*), each from another task than the
 *    arming one, so often another worker than the one whose wheel holds the arming:
 *    - cancel: armed at d, cancelled at d + jitter. Exactly one of: the callback ran
 *      (once), or the cancel returned 1 (and the callback never runs, which the
 *      timer's destroy makes final);
 *    - re-arm: armed at d1, re-armed to d2 near d1, cancelled 1 ms after d2. The first
 *      arming ends exactly one way (its callback ran, or the re-arm replaced it), and so
 *      does the second (its callback ran, or the cancel returned 1): the callback runs
 *      0 to 2 times, runs + cancel is 1 or 2, and each run is no earlier than the
 *      deadline of the arming it ran for;
 *    - destroy: armed at d, destroyed at d + jitter: when destroy returns no callback
 *      runs (none is inside it, none starts later), and it ran at most once;
 *    - the cancel race again from a thread that is not a worker (foreign arms are
 *      carried to a worker by a small task).
 *    No callback ever runs before the deadline of the arming it runs for.
 *
 *   stress_deadlines [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define US       1000ull
#define MS       1000000ull
#define PARALLEL 8

/* Spins, yielding, until weft_now() >= t (a sleep is too coarse for these races). From
 * a thread that is not a worker, weft_yield does nothing: it spins. */
static void spin_until(uint64_t t) {
    while (weft_now() < t)
        weft_yield();
}

/* Waits for a flag, yielding; fails after 10 s. */
static void wait_flag(weft__atomic_word *flag, AO_t value, const char *what) {
    uint64_t give_up = weft_now() + 10000 * MS;
    while (weft__atomic_load_acquire(flag) < value) {
        STRESS_CHECK(weft_now() < give_up, "%s: still waiting after 10 s", what);
        if (weft_runtime_current())
            weft_yield();
        else
            sched_yield();
    }
}

/* ---- 1. weft_join_until racing the completion ---------------------------------------- */

typedef struct child_ctx {
    weft__atomic_word started;
    weft__atomic_word ran;
    weft__atomic_word done; /* the child's last touch of this object */
    uint64_t busy_ns;      /* how long the child takes */
    bool sleeps;           /* by sleeping (a timer on its worker) rather than spinning */
    uint64_t value;
} child_ctx;

static weft__atomic_word join_completed, join_timed_out, stolen_children;

static void *child(void *arg) {
    child_ctx *c = arg;
    weft__atomic_fetch_add_full(&c->ran, 1);
    uint64_t end = weft_now() + c->busy_ns;
    weft__atomic_store_release(&c->started, 1);
    if (c->sleeps)
        STRESS_CHECK(weft_sleep_until(end) == 0, "sleep");
    else
        spin_until(end);
    uint64_t value = c->value;
    weft__atomic_store_release(&c->done, 1);
    return (void *)(uintptr_t)value;
}

/* One race; `stream` fixes its draws. */
static void join_race(uint64_t stream) {
    stress_rng r = stress_rng_for(stream);
    child_ctx c = {.busy_ns = stress_below(&r, 300 * US),
                   .sleeps = stress_chance(&r, 1, 2),
                   .value = stress_hash(stream, 7)};
    int64_t jitter = (int64_t)stress_below(&r, 200 * US) - (int64_t)(100 * US);
    weft_task *t = weft_spawn(child, &c);
    STRESS_CHECK(t != NULL, "spawn: %s", strerror(errno));
    if (stress_chance(&r, 1, 2)) {
        /* Spin (no yield) until another worker has taken the child; after 300 us, yield
         * and let this worker run it. The deadline is then counted from its start. */
        uint64_t stop_spinning = weft_now() + 300 * US;
        while (!weft__atomic_load_acquire(&c.started)) {
            if (weft_now() < stop_spinning)
                weft__cpu_relax();
            else
                weft_yield();
        }
        if (weft_now() < stop_spinning)
            weft__atomic_fetch_add_relaxed(&stolen_children, 1);
    } /* else wait at once: the child runs here once we park, unless it is stolen */
    uint64_t deadline = weft_now() + (uint64_t)((int64_t)c.busy_ns + jitter);
    void *v = NULL;
    int rc = weft_join_until(t, deadline, &v);
    if (rc == 0) {
        STRESS_CHECK((uint64_t)(uintptr_t)v == c.value, "join_until returned %p", v);
        weft__atomic_fetch_add_relaxed(&join_completed, 1);
    } else {
        uint64_t now = weft_now();
        STRESS_CHECK(rc == -ETIMEDOUT, "join_until returned %d", rc);
        STRESS_CHECK(now >= deadline, "join_until timed out %" PRIu64 " ns early", deadline - now);
        weft__atomic_fetch_add_relaxed(&join_timed_out, 1);
        switch (stress_below(&r, 3)) {
        case 0:
            STRESS_CHECK(weft_join(t, &v) == 0, "join after a timeout");
            break;
        case 1:
            while ((rc = weft_join_until(t, weft_now() + stress_below(&r, 50 * US), &v)) ==
                   -ETIMEDOUT)
                ;
            STRESS_CHECK(rc == 0, "join_until after a timeout: %d", rc);
            break;
        default: /* detach: the child runs to its end; c, on this stack, must outlive it */
            weft_detach(t);
            wait_flag(&c.done, 1, "a detached child");
            v = (void *)(uintptr_t)c.value;
            break;
        }
        STRESS_CHECK((uint64_t)(uintptr_t)v == c.value, "result after a timeout: %p", v);
    }
    STRESS_CHECK(weft__atomic_load_acquire(&c.ran) == 1, "the child ran %lu times",
                 (unsigned long)c.ran);
}

static size_t join_rounds;

static void *join_racer(void *arg) {
    uint64_t base = (uint64_t)(uintptr_t)arg;
    for (size_t i = 0; i < join_rounds; i++)
        join_race(base << 32 | i);
    return NULL;
}

/* One racer fewer than workers: a worker is left to steal the children. */
static unsigned join_racers;

static void *join_races_main(void *arg) {
    (void)arg;
    weft_task *racers[PARALLEL];
    for (uintptr_t k = 0; k < join_racers; k++) {
        racers[k] = weft_spawn(join_racer, (void *)(k + 1));
        STRESS_CHECK(racers[k] != NULL, "spawn of a racer");
    }
    for (unsigned k = 0; k < join_racers; k++)
        STRESS_CHECK(weft_join(racers[k], NULL) == 0, "join of a racer");
    return NULL;
}

static weft_runtime *foreign_rt;

static void *foreign_join_racer(void *arg) {
    uint64_t base = (uint64_t)(uintptr_t)arg;
    for (size_t i = 0; i < join_rounds / 4 + 1; i++) {
        stress_rng r = stress_rng_for(base << 32 | i);
        child_ctx c = {.busy_ns = stress_below(&r, 300 * US),
                       .sleeps = stress_chance(&r, 1, 2),
                       .value = stress_hash(base, i)};
        int64_t jitter = (int64_t)stress_below(&r, 200 * US) - (int64_t)(100 * US);
        weft_task *t = weft_spawn_on(foreign_rt, child, &c);
        STRESS_CHECK(t != NULL, "spawn_on: %s", strerror(errno));
        wait_flag(&c.started, 1, "foreign race child");
        uint64_t deadline = weft_now() + (uint64_t)((int64_t)c.busy_ns + jitter);
        void *v = NULL;
        int rc = weft_join_until(t, deadline, &v);
        if (rc == -ETIMEDOUT) {
            uint64_t now = weft_now();
            STRESS_CHECK(now >= deadline, "foreign join_until timed out %" PRIu64 " ns early",
                         deadline - now);
            weft__atomic_fetch_add_relaxed(&join_timed_out, 1);
            rc = weft_join(t, &v);
        } else {
            weft__atomic_fetch_add_relaxed(&join_completed, 1);
        }
        STRESS_CHECK(rc == 0 && (uint64_t)(uintptr_t)v == c.value, "foreign join: %d, %p", rc, v);
        wait_flag(&c.done, 1, "a foreign race's child");
        STRESS_CHECK(weft__atomic_load_acquire(&c.ran) == 1, "the child ran %lu times",
                     (unsigned long)c.ran);
    }
    return NULL;
}

static void test_join_until(unsigned workers) {
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&(weft_config){.workers = workers}, &rt) == 0, "create");
    foreign_rt = rt;
    pthread_t threads[2];
    for (uintptr_t k = 0; k < 2; k++)
        STRESS_CHECK(pthread_create(&threads[k], NULL, foreign_join_racer, (void *)(100 + k)) == 0,
                     "thread");
    STRESS_CHECK(weft_block_on(rt, join_races_main, NULL, NULL) == 0, "block_on");
    for (int k = 0; k < 2; k++)
        STRESS_CHECK(pthread_join(threads[k], NULL) == 0, "pthread_join");
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");
    uint64_t completed = join_completed, timed_out = join_timed_out;
    stress_note("join_until: %" PRIu64 " completed, %" PRIu64 " timed out, %lu children stolen",
                completed, timed_out, (unsigned long)stolen_children);
    uint64_t races = (uint64_t)join_racers * join_rounds + 2 * (join_rounds / 4 + 1);
    STRESS_CHECK(completed + timed_out == races, "%" PRIu64 " outcomes of %" PRIu64 " races",
                 completed + timed_out, races);
    stress_count(STRESS_TASKS, races + join_racers + 1);
    stress_count(STRESS_JOINS, completed);
    stress_count(STRESS_TIMEOUTS, timed_out);
    stress_count(STRESS_RUNTIMES, 1);
}

/* ---- 2. timer handles racing their firing ------------------------------------------- */

/* A callback's record. */
typedef struct record {
    weft__atomic_word fired;
    weft__atomic_word inside;   /* callbacks running now */
    weft__atomic_word early;    /* a run before the deadline it ran for */
    weft__atomic_word overlap;  /* two runs at once */
    weft__atomic_word floor_ns; /* no run may come before this: the earliest pending deadline */
    weft__atomic_word run_ns[4];
} record;

static void on_fire(weft_timer *tm, void *arg) {
    (void)tm;
    record *x = arg;
    uint64_t now = weft_now();
    if (weft__atomic_fetch_add_full(&x->inside, 1) != 0)
        weft__atomic_store_release(&x->overlap, 1);
    uint64_t floor = weft__atomic_load_acquire(&x->floor_ns);
    if (now < floor)
        weft__atomic_store_release(&x->early, floor - now);
    AO_t k = weft__atomic_load_relaxed(&x->fired);
    if (k < 4)
        weft__atomic_store_release(&x->run_ns[k], now);
    weft__atomic_fetch_add_full(&x->inside, (AO_t)-1);
    weft__atomic_fetch_add_full(&x->fired, 1);
}

typedef enum race_kind { RACE_CANCEL, RACE_REARM, RACE_DESTROY, RACE_KINDS } race_kind;

typedef struct race {
    race_kind kind;
    weft_timer *tm;
    record x;
    uint64_t d1, d2; /* the deadline; the re-arm's */
    uint64_t act_at; /* when the other task acts */
    int cancelled;   /* what weft_timer_cancel returned */
    AO_t fired_at_destroy;
    AO_t inside_at_destroy;
} race;

static weft__atomic_word timer_outcomes[4]; /* fired, cancelled, re-armed first, destroyed first */

static void *actor(void *arg) {
    race *x = arg;
    spin_until(x->act_at);
    switch (x->kind) {
    case RACE_CANCEL:
        x->cancelled = weft_timer_cancel(x->tm);
        STRESS_CHECK(x->cancelled == 0 || x->cancelled == 1, "cancel returned %d", x->cancelled);
        break;
    case RACE_REARM:
        STRESS_CHECK(weft_timer_arm(x->tm, x->d2) == 0, "re-arm");
        break;
    default:
        STRESS_CHECK(weft_timer_destroy(x->tm) == 0, "destroy");
        x->fired_at_destroy = weft__atomic_load_acquire(&x->x.fired);
        x->inside_at_destroy = weft__atomic_load_acquire(&x->x.inside);
        x->tm = NULL;
        break;
    }
    return NULL;
}

static void check_race(race *x, size_t round) {
    record *rec = &x->x;
    STRESS_CHECK(!weft__atomic_load_acquire(&rec->early),
                 "round %zu: kind %d: a callback ran %lu ns before its deadline", round,
                 (int)x->kind, (unsigned long)rec->early);
    STRESS_CHECK(!weft__atomic_load_acquire(&rec->overlap),
                 "round %zu: two callbacks of one handle ran at once", round);
    switch (x->kind) {
    case RACE_CANCEL:
        if (x->cancelled == 0) /* the firing won: it has run, or runs soon */
            wait_flag(&rec->fired, 1, "a timer whose cancel returned 0");
        STRESS_CHECK(weft_timer_destroy(x->tm) == 0, "destroy");
        AO_t fired = weft__atomic_load_acquire(&rec->fired);
        STRESS_CHECK(fired + (AO_t)x->cancelled == 1,
                     "round %zu: the callback ran %lu times and cancel returned %d", round,
                     (unsigned long)fired, x->cancelled);
        weft__atomic_fetch_add_relaxed(&timer_outcomes[x->cancelled], 1);
        stress_count(x->cancelled ? STRESS_TIMER_CANCELS : STRESS_TIMER_FIRES, 1);
        break;
    case RACE_REARM: {
        /* Two armings: the first ends by its callback or by the re-arm; the second by its
         * callback or by a cancel issued here once its deadline is a millisecond past
         * (usually too late to stop it, but a late firing is no error). Destroy then
         * waits for a callback in progress, so the count is final. */
        spin_until((x->d2 > x->act_at ? x->d2 : x->act_at) + MS);
        int r = weft_timer_cancel(x->tm);
        STRESS_CHECK(r == 0 || r == 1, "cancel returned %d", r);
        STRESS_CHECK(weft_timer_destroy(x->tm) == 0, "destroy");
        AO_t f = weft__atomic_load_acquire(&rec->fired);
        STRESS_CHECK(f + (AO_t)r >= 1 && f + (AO_t)r <= 2,
                     "round %zu: armed, re-armed, cancelled: the callback ran %lu times and the "
                     "cancel returned %d",
                     round, (unsigned long)f, r);
        STRESS_CHECK(f < 2 || r == 0, "round %zu: both armings fired, yet the cancel stopped one",
                     round);
        /* Which run was whose: with two runs, the first arming's then the second's; with
         * one, the second's if nothing was cancelled, else the first's. */
        uint64_t run0 = weft__atomic_load_acquire(&rec->run_ns[0]);
        uint64_t run1 = weft__atomic_load_acquire(&rec->run_ns[1]);
        if (f == 2) {
            STRESS_CHECK(run0 >= x->d1, "round %zu: the first arming fired %" PRIu64 " ns early",
                         round, x->d1 - run0);
            STRESS_CHECK(run1 >= x->d2, "round %zu: the re-arming fired %" PRIu64 " ns early",
                         round, x->d2 - run1);
        } else if (f == 1 && r == 0) {
            STRESS_CHECK(run0 >= x->d2, "round %zu: the re-arming fired %" PRIu64 " ns early",
                         round, x->d2 - run0);
        } else if (f == 1) {
            STRESS_CHECK(run0 >= x->d1, "round %zu: the first arming fired %" PRIu64 " ns early",
                         round, x->d1 - run0);
        }
        weft__atomic_fetch_add_relaxed(&timer_outcomes[f == 2 ? 0 : 2], 1);
        stress_count(STRESS_TIMER_FIRES, f);
        stress_count(STRESS_TIMER_CANCELS, (uint64_t)r);
        break;
    }
    default:
        STRESS_CHECK(x->inside_at_destroy == 0,
                     "round %zu: weft_timer_destroy returned while the callback ran", round);
        STRESS_CHECK(x->fired_at_destroy <= 1, "round %zu: fired %lu times", round,
                     (unsigned long)x->fired_at_destroy);
        weft__atomic_fetch_add_relaxed(&timer_outcomes[x->fired_at_destroy ? 0 : 3], 1);
        stress_count(STRESS_TIMER_FIRES, x->fired_at_destroy);
        break;
    }
}

/* The destroyed timers' records are checked once more at the end: nothing ran after
 * destroy returned. */
static size_t timer_rounds;

static void *timer_races(void *arg) {
    (void)arg;
    weft_runtime *rt = weft_runtime_current();
    race *xs = calloc(PARALLEL, sizeof(*xs));
    STRESS_CHECK(xs != NULL, "calloc");
    for (size_t round = 0; round < timer_rounds; round++) {
        stress_rng r = stress_rng_for(0x7133ull << 32 | round);
        weft_task *actors[PARALLEL];
        for (int i = 0; i < PARALLEL; i++) {
            race *x = &xs[i];
            memset(x, 0, sizeof(*x));
            x->kind = (race_kind)stress_below(&r, RACE_KINDS);
            uint64_t now = weft_now();
            x->d1 = now + 20 * US + stress_below(&r, 300 * US);
            x->act_at = x->d1 - 100 * US + stress_below(&r, 200 * US);
            x->d2 = x->d1 - 100 * US + stress_below(&r, 300 * US);
            weft__atomic_store_release(&x->x.floor_ns,
                                      x->kind == RACE_REARM && x->d2 < x->d1 ? x->d2 : x->d1);
            STRESS_CHECK(weft_timer_create(rt, on_fire, &x->x, &x->tm) == 0, "create");
            STRESS_CHECK(weft_timer_arm(x->tm, x->d1) == 0, "arm");
            actors[i] = weft_spawn(actor, x);
            STRESS_CHECK(actors[i] != NULL, "spawn");
        }
        for (int i = 0; i < PARALLEL; i++)
            STRESS_CHECK(weft_join(actors[i], NULL) == 0, "join");
        for (int i = 0; i < PARALLEL; i++)
            check_race(&xs[i], round);
        /* The destroyed ones: still no further run, after their deadlines. */
        spin_until(weft_now() + 50 * US);
        for (int i = 0; i < PARALLEL; i++)
            if (xs[i].kind == RACE_DESTROY)
                STRESS_CHECK(weft__atomic_load_acquire(&xs[i].x.fired) == xs[i].fired_at_destroy,
                             "round %zu: a destroyed timer fired", round);
    }
    free(xs);
    return NULL;
}

/* The cancel race from a thread that is not a worker. */
static void foreign_timer_races(weft_runtime *rt, size_t rounds) {
    for (size_t round = 0; round < rounds; round++) {
        stress_rng r = stress_rng_for(0xf7ull << 32 | round);
        race x = {.kind = RACE_CANCEL};
        x.d1 = weft_now() + 100 * US + stress_below(&r, 400 * US);
        x.act_at = x.d1 - 150 * US + stress_below(&r, 300 * US);
        weft__atomic_store_release(&x.x.floor_ns, x.d1);
        STRESS_CHECK(weft_timer_create(rt, on_fire, &x.x, &x.tm) == 0, "create");
        STRESS_CHECK(weft_timer_arm(x.tm, x.d1) == 0, "foreign arm");
        actor(&x);
        check_race(&x, round);
    }
}

static void test_timers(unsigned workers) {
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&(weft_config){.workers = workers}, &rt) == 0, "create");
    STRESS_CHECK(weft_block_on(rt, timer_races, NULL, NULL) == 0, "block_on");
    foreign_timer_races(rt, timer_rounds);
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");
    stress_note("timers: %lu fired, %lu cancelled, %lu replaced by a re-arm, %lu destroyed "
                "before firing",
                (unsigned long)timer_outcomes[0], (unsigned long)timer_outcomes[1],
                (unsigned long)timer_outcomes[2], (unsigned long)timer_outcomes[3]);
    stress_count(STRESS_TASKS, timer_rounds * PARALLEL + 1);
    stress_count(STRESS_RUNTIMES, 1);
}

int main(int argc, char **argv) {
    stress_begin("stress_deadlines", argc, argv);
    stress_rng r = stress_rng_for(0);
    unsigned workers = (unsigned)stress_between(&r, 2, 4);
    join_racers = workers - 1;
    join_rounds = stress_size(2000, 1) / join_racers;
    timer_rounds = stress_size(1000, 1);
    stress_note("%u workers; %u racers x %zu join_until races, %d x %zu timer races", workers,
                join_racers, join_rounds, PARALLEL, timer_rounds);
    test_join_until(workers);
    test_timers(workers);
    return stress_pass();
}
