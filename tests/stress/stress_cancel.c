/*
 * stress_cancel.c: cancellation (weft_cancel, sched/cancel.c, CANCEL-*) and task groups
 * (sync/group.c, GROUP-*) racing everything they can race, many rounds, with every count
 * checked exactly (under chaos seeds in tools/test and tools/stress).
 *
 *   part 1 cancel against completion: a child that returns at once, spins, sleeps 0-50
 *          us, yields, waits on a channel 0-50 us or (when a cancel is coming) 10 s,
 *          cancelled by its joiner, a helper task or a plain thread at a random moment
 *          (or not at all); the join always returns 0 and the child's own value; a
 *          point that said -ECANCELED is followed by another (sticky); the 10 s wait
 *          must end well before its deadline.
 *   part 2 cancel against a wake-up: values sent over a channel (unbuffered or buffered)
 *          by two senders that are never cancelled and received by two receivers that
 *          are never cancelled, while victims come and go, a receiver and a sender of
 *          its own slice of values at a time (recv/send and select over two channels),
 *          each cancelled 0-60 us after its spawn. Every value whose send returned 0 is
 *          received exactly once; no value whose send returned -ECANCELED is received
 *          (a cancelled recv took nothing, a cancelled send sent nothing).
 *   part 3 cancel against a deadline: acquirers take a semaphore with deadlines of
 *          0-200 us while their cancels land at 0-200 us, and releasers hand out permits:
 *          permits released == acquired + left. And weft_join_until(child, 0-150 us)
 *          with the joiner cancelled at 0-150 us and the child finishing at 0-150 us:
 *          0 with the child's value, or -ETIMEDOUT (never early) / -ECANCELED (then the
 *          joiner was cancelled) with the handle still valid: joined again, shielded.
 *   part 4 cancel against inline joins: a joiner spawns a child and joins it at once
 *          (the child runs inline when it can), and is cancelled from another task or a
 *          plain thread while the child sleeps, yields, waits on a channel (briefly, or
 *          10 s: then only the cancel, passed down the inline chain, can end it), spins,
 *          or itself runs a grandchild inline: the join returns the child's value, or
 *          -ECANCELED with the handle valid (the joiner then cancels the child and joins
 *          it shielded). The cancel walks the inline chain while the joiner frees it
 *          (CANCEL-I3/I4): ASan sees a late touch.
 *   part 5 groups: spawners (tasks and a plain thread) fill a group with a limit while
 *          consumers take results with deadlines; spawners, consumers and the group
 *          itself (weft_group_cancel) are cancelled at random moments; each round ends
 *          by draining (every member spawned comes out exactly once, none that a
 *          cancelled spawn refused ever ran, and no more than the limit ran at once) or
 *          by weft_group_destroy with members still running (which returns only when
 *          every member has run).
 *   part 6 duels: a task parks in a wait (chan recv, chan send, sem, group_next, join,
 *          cond_wait with a second waiter behind it) and, at one instant (two threads
 *          spinning on one flag, each after its own 0-2 us), the main thread cancels it
 *          while a helper thread makes its event (try_send, try_recv, release, the
 *          member's or child's end, a signal). Decided once: the event's maker and the
 *          waiter agree, and nothing is lost or doubled (the permit, the value, the
 *          member's result, the signal: the waiter behind must get it).
 *
 * Parts 4, 5 and 6 were seen to fail on a runtime with a bug put in on purpose
 * (docs/TESTING.md, "Cancellation and task groups").
 *
 *   stress_cancel [--seed S]   (sizes scale with WEFT_TEST_SCALE; smaller under TSan)
 */
#include "stress.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#define US 1000u

static weft_runtime *rt;

static weft__atomic_word stream_counter;
static uint64_t next_stream(void) {
    return weft__atomic_fetch_add_full(&stream_counter, 1);
}

static bool in_task(void) {
    return weft_current_id() != 0;
}

/* A short pause: none, a yield, a spin, or a sleep (a thread spins instead). */
static void pause_a_bit(stress_rng *r, uint64_t max_ns) {
    switch (stress_below(r, 4)) {
    case 0:
        break;
    case 1:
        if (in_task())
            weft_yield();
        else
            sched_yield();
        break;
    case 2:
        stress_spin_ns(stress_below(r, max_ns));
        break;
    default:
        if (in_task()) {
            int old = weft_cancel_shield(1); /* a pause, whoever is cancelled */
            weft_sleep_until(weft_now() + stress_below(r, max_ns));
            weft_cancel_shield(old);
        } else {
            stress_spin_ns(stress_below(r, max_ns));
        }
    }
}

static void check_not_early(int rc, uint64_t deadline, const char *what) {
    if (rc == -ETIMEDOUT) {
        uint64_t now = weft_now();
        STRESS_CHECK(now >= deadline, "%s returned -ETIMEDOUT %llu ns early", what,
                     (unsigned long long)(deadline - now));
        stress_count(STRESS_TIMEOUTS, 1);
    }
}

static weft_task *spawn_counted(weft_fn fn, void *arg) {
    weft_task *t = in_task() ? weft_spawn(fn, arg) : weft_spawn_on(rt, fn, arg);
    STRESS_CHECK(t, "spawn: %s", strerror(errno));
    stress_count(STRESS_TASKS, 1);
    return t;
}

static void join_expect(weft_task *t, void *want, const char *what) {
    void *r = NULL;
    int rc = weft_join(t, &r);
    STRESS_CHECK(rc == 0, "%s: join returned %d", what, rc);
    STRESS_CHECK(r == want, "%s: join returned %p, not %p", what, r, want);
    stress_count(STRESS_JOINS, 1);
}

/* After a point said -ECANCELED, the next one must too (the mark is sticky). */
static void check_sticky(int rc, const char *what) {
    if (rc != -ECANCELED)
        return;
    STRESS_CHECK(weft_cancelled() == 1, "%s said -ECANCELED but weft_cancelled() is 0", what);
    int again = weft_sleep_ms(0);
    STRESS_CHECK(again == -ECANCELED, "%s said -ECANCELED, the next point %d", what, again);
}

/* Outcomes, for the notes: that the races were met, not only survived. */
static weft__atomic_word seen_cancelled_points; /* part 1: a child's point said -ECANCELED */
static weft__atomic_word seen_cancelled_recvs, seen_cancelled_sends; /* part 2 */
static weft__atomic_word seen_join_cancelled, seen_join_timedout;    /* part 3 */
static weft__atomic_word seen_inline_cancelled; /* part 4: a child cancelled through its joiner */
static weft__atomic_word seen_join_ecanceled;   /* part 4: a joiner's join said -ECANCELED */
static weft__atomic_word seen_refused_spawns, seen_cancelled_nexts; /* part 5 */

static void seen(weft__atomic_word *w) {
    weft__atomic_fetch_add_relaxed(w, 1);
}

static unsigned long long seen_value(weft__atomic_word *w) {
    return (unsigned long long)weft__atomic_load_acquire(w);
}

/* A channel nobody ever sends on: a wait with a deadline that only a cancel ends early. */
static weft_chan *never;

/* Threads that cancel for the tasks (a cancel from outside any runtime): each takes
 * requests from a mailbox and answers once done. */
typedef struct cancel_request {
    weft_task *t;
    uint64_t delay_ns;
    weft__atomic_word done;
} cancel_request;

#define CANCELLERS 2
static struct {
    pthread_t thread[CANCELLERS];
    weft_chan *requests; /* cancel_request *, unbuffered */
} cancellers;

static void *canceller_thread(void *arg) {
    (void)arg;
    for (;;) {
        cancel_request *q;
        int rc = weft_chan_recv(cancellers.requests, &q, WEFT_FOREVER);
        if (rc == -EPIPE)
            return NULL;
        STRESS_CHECK(rc == 0, "canceller: recv %d", rc);
        stress_spin_ns(q->delay_ns);
        STRESS_CHECK(weft_cancel(q->t) == 0, "weft_cancel from a thread");
        weft__atomic_store_release(&q->done, 1);
    }
}

/* Asks a canceller thread to cancel t after delay_ns; wait_cancelled waits for it (the
 * caller keeps t's handle until then). */
static void cancel_from_thread(cancel_request *q, weft_task *t, uint64_t delay_ns) {
    q->t = t;
    q->delay_ns = delay_ns;
    weft__atomic_store_release(&q->done, 0);
    STRESS_CHECK(weft_chan_send(cancellers.requests, &q, WEFT_FOREVER) == 0, "send a request");
}

static void wait_cancelled(cancel_request *q) {
    while (!weft__atomic_load_acquire(&q->done)) {
        if (in_task()) {
            int old = weft_cancel_shield(1);
            weft_sleep_until(weft_now() + 20 * US);
            weft_cancel_shield(old);
        } else {
            sched_yield();
        }
    }
}

/* A wait that only a cancel ends: 10 s on the silent channel. It must say -ECANCELED,
 * and well before its deadline (LONG_BOUND): a cancel that does not reach the waiter
 * (an inline child the canceller did not wake, say) shows as a FAIL here. */
#define LONG_WAIT  (10 * 1000000000ull)
#define LONG_BOUND (5 * 1000000000ull)

static int wait_for_the_cancel(const char *who) {
    uint64_t v, t0 = weft_now();
    int rc = weft_chan_recv(never, &v, t0 + LONG_WAIT);
    uint64_t took = weft_now() - t0;
    STRESS_CHECK(rc == -ECANCELED && took < LONG_BOUND,
                 "%s: a wait that only its cancel could end returned %d after %llu ms", who, rc,
                 (unsigned long long)(took / 1000000u));
    return rc;
}

/* ---- part 1: cancel against completion --------------------------------------------------- */

typedef struct p1_child {
    uint64_t stream;
    void *value;
    bool will_be_cancelled;
} p1_child;

static void *p1_child_main(void *arg) {
    p1_child *c = arg;
    stress_rng r = stress_rng_for(c->stream);
    int rc = 0;
    uint64_t v;
    switch (stress_below(&r, c->will_be_cancelled ? 6 : 5)) {
    case 0:
        break;
    case 1:
        stress_spin_ns(stress_below(&r, 20 * US));
        break;
    case 5:
        rc = wait_for_the_cancel("part 1: a child");
        break;
    case 2:
        rc = weft_sleep_until(weft_now() + stress_below(&r, 50 * US));
        STRESS_CHECK(rc == 0 || rc == -ECANCELED, "sleep: %d", rc);
        break;
    case 3:
        for (int i = 0; i < 3; i++)
            weft_yield();
        rc = weft_sleep_ms(0);
        STRESS_CHECK(rc == 0 || rc == -ECANCELED, "sleep(0): %d", rc);
        break;
    default: {
        uint64_t d = weft_now() + stress_below(&r, 50 * US);
        rc = weft_chan_recv(never, &v, d);
        STRESS_CHECK(rc == -ETIMEDOUT || rc == -ECANCELED, "recv on a silent channel: %d", rc);
        check_not_early(rc, d, "recv");
    }
    }
    check_sticky(rc, "a child's point");
    if (rc == -ECANCELED)
        seen(&seen_cancelled_points);
    return c->value;
}

static void *p1_canceller(void *arg) {
    weft_task *t = ((void **)arg)[0];
    stress_rng r = stress_rng_for((uint64_t)(uintptr_t)((void **)arg)[1]);
    pause_a_bit(&r, 30 * US);
    STRESS_CHECK(weft_cancel(t) == 0, "weft_cancel from a task");
    return NULL;
}

static void p1_round(uint64_t id) {
    stress_rng r = stress_rng_for(id);
    unsigned how = (unsigned)stress_below(&r, 4);
    p1_child c = {next_stream(), (void *)(uintptr_t)stress_hash(1, id), how < 3};
    weft_task *t = spawn_counted(p1_child_main, &c);
    cancel_request q;
    switch (how) {
    case 0: /* the joiner cancels */
        pause_a_bit(&r, 30 * US);
        STRESS_CHECK(weft_cancel(t) == 0, "weft_cancel");
        break;
    case 1: { /* a helper task */
        void *args[2] = {t, (void *)(uintptr_t)next_stream()};
        weft_task *k = spawn_counted(p1_canceller, args);
        join_expect(k, NULL, "the canceller");
        break;
    }
    case 2: /* a plain thread */
        cancel_from_thread(&q, t, stress_below(&r, 30 * US));
        wait_cancelled(&q);
        break;
    default: /* nobody */
        break;
    }
    join_expect(t, c.value, "part 1: a cancelled child");
}

typedef struct driver {
    void (*round)(uint64_t id);
    uint64_t first, rounds;
} driver;

static void *drive(void *arg) {
    driver *d = arg;
    for (uint64_t i = 0; i < d->rounds; i++)
        d->round(d->first + i);
    return NULL;
}

/* Runs `rounds` rounds split over `drivers` tasks and the main thread. */
static void run_drivers(void (*round)(uint64_t), size_t drivers, size_t rounds, uint64_t base) {
    driver *d = calloc(drivers + 1, sizeof *d);
    weft_task **t = calloc(drivers, sizeof *t);
    STRESS_CHECK(d && t, "out of memory");
    size_t per = rounds / (drivers + 1) + 1;
    for (size_t i = 0; i <= drivers; i++)
        d[i] = (driver){round, base + i * per, per};
    for (size_t i = 0; i < drivers; i++)
        t[i] = spawn_counted(drive, &d[i]);
    drive(&d[drivers]); /* the main thread: foreign spawns, cancels and joins */
    for (size_t i = 0; i < drivers; i++)
        join_expect(t[i], NULL, "a driver");
    free(t);
    free(d);
}

static void part_completion(size_t drivers, size_t rounds) {
    run_drivers(p1_round, drivers, rounds, 1u << 20);
    stress_note("completion: %zu rounds, %llu children saw -ECANCELED", rounds,
                seen_value(&seen_cancelled_points));
}

/* ---- part 2: cancel against a wake-up ---------------------------------------------------- */

/* Values [0, steady) are sent by senders that are never cancelled, [steady, nvalues) in
 * slices of P2_SLICE by victims, one slice each. */
#define P2_SLICE 4

typedef struct p2 {
    weft_chan *ch;
    size_t nvalues, steady, victims;
    weft__atomic_word *received; /* per value */
    uint8_t *sent;               /* per value: written by its one sender */
} p2;

typedef struct p2_range {
    p2 *p;
    uint64_t from, to, step;
} p2_range;

static void *p2_sender(void *arg) {
    p2_range *g = arg;
    p2 *p = g->p;
    stress_rng r = stress_rng_for(next_stream());
    for (uint64_t v = g->from; v < g->to; v += g->step) {
        for (;;) {
            uint64_t d =
                stress_chance(&r, 1, 2) ? WEFT_FOREVER : weft_now() + stress_below(&r, 100 * US);
            int rc;
            if (stress_chance(&r, 1, 3)) {
                uint64_t in;
                weft_case c[2] = {{.kind = WEFT_CASE_SEND, .chan = p->ch, .elem = &v},
                                  {.kind = WEFT_CASE_RECV, .chan = never, .elem = &in}};
                rc = weft_select(c, 2, d);
                STRESS_CHECK(rc != 1, "select: a value on the silent channel");
                if (rc == 0)
                    rc = c[0].result;
            } else {
                rc = weft_chan_send(p->ch, &v, d);
            }
            if (rc == 0) {
                p->sent[v] = 1;
                break;
            }
            if (rc == -ECANCELED) {
                check_sticky(rc, "send");
                seen(&seen_cancelled_sends);
                return NULL;
            }
            STRESS_CHECK(rc == -ETIMEDOUT, "send: %d", rc);
            check_not_early(rc, d, "send");
        }
    }
    return NULL;
}

static void *p2_receiver(void *arg) {
    p2 *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (;;) {
        uint64_t v = UINT64_MAX;
        uint64_t d =
            stress_chance(&r, 1, 2) ? WEFT_FOREVER : weft_now() + stress_below(&r, 100 * US);
        int rc;
        if (stress_chance(&r, 1, 3)) {
            uint64_t in;
            weft_case c[2] = {{.kind = WEFT_CASE_RECV, .chan = never, .elem = &in},
                              {.kind = WEFT_CASE_RECV, .chan = p->ch, .elem = &v}};
            rc = weft_select(c, 2, d);
            STRESS_CHECK(rc != 0, "select: a value on the silent channel");
            if (rc == 1)
                rc = c[1].result;
        } else {
            rc = weft_chan_recv(p->ch, &v, d);
        }
        if (rc == 0) {
            STRESS_CHECK(v < p->nvalues, "received %llu, not a value sent", (unsigned long long)v);
            weft__atomic_fetch_add_full(&p->received[v], 1);
            continue;
        }
        if (rc == -EPIPE)
            return NULL;
        if (rc == -ECANCELED) {
            STRESS_CHECK(v == UINT64_MAX, "a cancelled recv stored %llu", (unsigned long long)v);
            check_sticky(rc, "recv");
            seen(&seen_cancelled_recvs);
            return (void *)1;
        }
        STRESS_CHECK(rc == -ETIMEDOUT, "recv: %d", rc);
        check_not_early(rc, d, "recv");
    }
}

typedef struct victims {
    weft_task *t[8];
    size_t n;
    uint64_t stream;
    uint64_t max_pause;
} victims;

/* Cancels each victim, in a random order, after a random pause. */
static void *cancel_victims(void *arg) {
    victims *v = arg;
    stress_rng r = stress_rng_for(v->stream);
    for (size_t i = v->n; i > 1; i--) { /* shuffle */
        size_t j = stress_below(&r, i);
        weft_task *x = v->t[i - 1];
        v->t[i - 1] = v->t[j];
        v->t[j] = x;
    }
    for (size_t i = 0; i < v->n; i++) {
        pause_a_bit(&r, v->max_pause);
        STRESS_CHECK(weft_cancel(v->t[i]) == 0, "weft_cancel of a victim");
    }
    return NULL;
}

/* Victims, two at a time (a receiver and a sender of its own slice), each cancelled
 * 0-60 us after its spawn while the steady senders and receivers go on. */
static void *p2_churn(void *arg) {
    p2 *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (size_t i = 0; i < p->victims; i++) {
        p2_range g = {p, p->steady + i * P2_SLICE, p->steady + (i + 1) * P2_SLICE, 1};
        weft_task *v[2] = {spawn_counted(p2_receiver, p), spawn_counted(p2_sender, &g)};
        bool sender_first = stress_chance(&r, 1, 2);
        for (int k = 0; k < 2; k++) {
            pause_a_bit(&r, 60 * US);
            STRESS_CHECK(weft_cancel(v[k ^ sender_first]) == 0, "weft_cancel of a victim");
        }
        join_expect(v[1], NULL, "part 2: a cancelled sender");
        void *res;
        STRESS_CHECK(weft_join(v[0], &res) == 0, "join a cancelled receiver");
    }
    return NULL;
}

static void *p2_round_task(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    stress_rng r = stress_rng_for(id);
    static const size_t capacities[] = {0, 0, 1, 3};
    p2 p = {.steady = 48 + stress_below(&r, 48), .victims = 12};
    p.nvalues = p.steady + p.victims * P2_SLICE;
    STRESS_CHECK(weft_chan_create(sizeof(uint64_t), capacities[stress_below(&r, 4)], &p.ch) == 0,
                 "chan_create");
    p.received = calloc(p.nvalues, sizeof *p.received);
    p.sent = calloc(p.nvalues, 1);
    STRESS_CHECK(p.received && p.sent, "out of memory");
    p2_range g[2] = {{&p, 0, p.steady, 2}, {&p, 1, p.steady, 2}};
    weft_task *receivers[2] = {spawn_counted(p2_receiver, &p), spawn_counted(p2_receiver, &p)};
    weft_task *senders[2] = {spawn_counted(p2_sender, &g[0]), spawn_counted(p2_sender, &g[1])};
    join_expect(spawn_counted(p2_churn, &p), NULL, "part 2: the victims");
    for (size_t i = 0; i < 2; i++)
        join_expect(senders[i], NULL, "part 2: a sender (never cancelled)");
    STRESS_CHECK(weft_chan_close(p.ch) == 0, "close");
    for (size_t i = 0; i < 2; i++)
        join_expect(receivers[i], NULL, "part 2: a receiver (never cancelled)");
    size_t sent = 0;
    for (size_t i = 0; i < p.nvalues; i++) {
        AO_t got = weft__atomic_load_acquire(&p.received[i]);
        STRESS_CHECK(got == p.sent[i], "value %zu: %s, received %lu times", i,
                     p.sent[i] ? "sent" : "not sent (its send was cancelled)", (unsigned long)got);
        STRESS_CHECK(p.sent[i] || i >= p.steady, "value %zu of a steady sender was not sent", i);
        sent += p.sent[i];
    }
    STRESS_CHECK(weft_chan_destroy(p.ch) == 0, "chan_destroy");
    free((void *)p.received);
    free(p.sent);
    return (void *)(uintptr_t)sent;
}

static void part_wakeup(size_t rounds, size_t parallel) {
    uint64_t values = 0;
    for (size_t i = 0; i < rounds; i += parallel) {
        weft_task *t[8];
        size_t n = rounds - i < parallel ? rounds - i : parallel;
        for (size_t j = 0; j < n; j++)
            t[j] = spawn_counted(p2_round_task, (void *)(uintptr_t)(2000000 + i + j));
        for (size_t j = 0; j < n; j++) {
            void *sent;
            STRESS_CHECK(weft_join(t[j], &sent) == 0, "join a round");
            values += (uint64_t)(uintptr_t)sent;
        }
    }
    stress_note("wake-up: %zu rounds, %llu values sent and received once; %llu recvs and %llu "
                "sends cancelled",
                rounds, (unsigned long long)values, seen_value(&seen_cancelled_recvs),
                seen_value(&seen_cancelled_sends));
}

/* ---- part 3: cancel against a deadline --------------------------------------------------- */

typedef struct p3sem {
    weft_sem s;
    weft__atomic_word released, acquired;
    size_t per_releaser;
} p3sem;

static void *p3_acquirer(void *arg) {
    p3sem *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (;;) {
        uint64_t d = weft_now() + stress_below(&r, 200 * US);
        int rc = weft_sem_acquire(&p->s, d);
        if (rc == -ECANCELED) {
            check_sticky(rc, "sem_acquire");
            return NULL;
        }
        if (rc == -ETIMEDOUT) {
            check_not_early(rc, d, "sem_acquire");
            continue;
        }
        STRESS_CHECK(rc == 0, "sem_acquire: %d", rc);
        weft__atomic_fetch_add_full(&p->acquired, 1);
        if (stress_chance(&r, 1, 3)) { /* give one back: more hand-offs */
            weft__atomic_fetch_add_full(&p->released, 1);
            STRESS_CHECK(weft_sem_release(&p->s) == 0, "sem_release");
        }
    }
}

static void *p3_releaser(void *arg) {
    p3sem *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (size_t i = 0; i < p->per_releaser; i++) {
        pause_a_bit(&r, 100 * US);
        weft__atomic_fetch_add_full(&p->released, 1);
        STRESS_CHECK(weft_sem_release(&p->s) == 0, "sem_release");
    }
    return NULL;
}

static void *p3_sem_round(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    p3sem p = {.per_releaser = 40};
    weft_sem_init(&p.s, 2);
    weft__atomic_store_relaxed(&p.released, 2);
    victims v = {.stream = stress_hash(3, id), .max_pause = 200 * US};
    weft_task *rel[2];
    for (size_t i = 0; i < 6; i++)
        v.t[v.n++] = spawn_counted(p3_acquirer, &p);
    for (size_t i = 0; i < 2; i++)
        rel[i] = spawn_counted(p3_releaser, &p);
    weft_task *acq[6];
    memcpy(acq, v.t, sizeof acq);
    for (size_t i = 0; i < 2; i++) /* the releases come first, then the cancels */
        join_expect(rel[i], NULL, "part 3: a releaser");
    weft_task *k = spawn_counted(cancel_victims, &v);
    join_expect(k, NULL, "part 3: the canceller");
    for (size_t i = 0; i < 6; i++)
        join_expect(acq[i], NULL, "part 3: an acquirer");
    uint64_t left = 0;
    while (weft_sem_try_acquire(&p.s) == 0)
        left++;
    uint64_t released = weft__atomic_load_acquire(&p.released);
    uint64_t acquired = weft__atomic_load_acquire(&p.acquired);
    STRESS_CHECK(
        released == acquired + left, "semaphore: %llu permits released, %llu acquired + %llu left",
        (unsigned long long)released, (unsigned long long)acquired, (unsigned long long)left);
    STRESS_CHECK(weft_sem_destroy(&p.s) == 0, "sem_destroy: a cancelled waiter is counted");
    return NULL;
}

typedef struct p3join {
    uint64_t stream;
    void *value;
    uint64_t child_ns, deadline_ns;
} p3join;

static void *p3_child(void *arg) {
    p3join *j = arg;
    stress_spin_ns(j->child_ns / 4);
    int old = weft_cancel_shield(1);
    weft_sleep_until(weft_now() + j->child_ns);
    weft_cancel_shield(old);
    return j->value;
}

static void *p3_joiner(void *arg) {
    p3join *j = arg;
    weft_task *c = spawn_counted(p3_child, j);
    uint64_t d = weft_now() + j->deadline_ns;
    void *r = NULL;
    int rc = weft_join_until(c, d, &r);
    if (rc == 0) {
        STRESS_CHECK(r == j->value, "join_until returned %p, not %p", r, j->value);
        stress_count(STRESS_JOINS, 1);
        return NULL;
    }
    STRESS_CHECK(rc == -ETIMEDOUT || rc == -ECANCELED, "join_until: %d", rc);
    check_not_early(rc, d, "join_until");
    if (rc == -ECANCELED)
        STRESS_CHECK(weft_cancelled() == 1, "join_until said -ECANCELED to a task not cancelled");
    seen(rc == -ECANCELED ? &seen_join_cancelled : &seen_join_timedout);
    /* The handle is still valid. */
    int old = weft_cancel_shield(1);
    join_expect(c, j->value, "part 3: the child after a join_until that failed");
    weft_cancel_shield(old);
    return NULL;
}

static void p3_join_round(uint64_t id) {
    stress_rng r = stress_rng_for(id);
    p3join j = {next_stream(), (void *)(uintptr_t)stress_hash(3, id), stress_below(&r, 150 * US),
                stress_below(&r, 150 * US)};
    weft_task *t = spawn_counted(p3_joiner, &j);
    uint64_t cancel_at = stress_below(&r, 150 * US);
    if (stress_chance(&r, 1, 3)) {
        cancel_request q;
        cancel_from_thread(&q, t, cancel_at);
        wait_cancelled(&q);
    } else {
        stress_spin_ns(cancel_at);
        STRESS_CHECK(weft_cancel(t) == 0, "weft_cancel");
    }
    join_expect(t, NULL, "part 3: a joiner");
}

static void part_deadline(size_t sem_rounds, size_t drivers, size_t join_rounds) {
    for (size_t i = 0; i < sem_rounds; i += 4) {
        weft_task *t[4];
        size_t n = sem_rounds - i < 4 ? sem_rounds - i : 4;
        for (size_t j = 0; j < n; j++)
            t[j] = spawn_counted(p3_sem_round, (void *)(uintptr_t)(i + j));
        for (size_t j = 0; j < n; j++)
            join_expect(t[j], NULL, "part 3: a semaphore round");
    }
    run_drivers(p3_join_round, drivers, join_rounds, 3u << 20);
    stress_note("deadline: %zu semaphore rounds, %zu join_until rounds (%llu -ECANCELED, %llu "
                "-ETIMEDOUT)",
                sem_rounds, join_rounds, seen_value(&seen_join_cancelled),
                seen_value(&seen_join_timedout));
}

/* ---- part 4: cancel against inline joins ------------------------------------------------- */

typedef struct p4 {
    uint64_t stream;
    void *value;
    int depth; /* 0: the bottom */
    int rc;    /* the bottom's point */
} p4;

static void *p4_child(void *arg) {
    p4 *c = arg;
    stress_rng r = stress_rng_for(c->stream);
    if (c->depth > 0) { /* run a grandchild inline, if it can */
        p4 g = {next_stream(), c->value, 0, 0};
        weft_task *t = spawn_counted(p4_child, &g);
        void *res = NULL;
        int rc = weft_join(t, &res);
        if (rc == -ECANCELED) {
            /* We were cancelled and the grandchild did not run inline: it is not, and
             * may wait for its cancel. */
            STRESS_CHECK(weft_cancel(t) == 0, "cancel the grandchild");
            int old = weft_cancel_shield(1);
            rc = weft_join(t, &res);
            weft_cancel_shield(old);
        }
        STRESS_CHECK(rc == 0 && res == c->value, "a grandchild's join: %d, %p", rc, res);
        return c->value;
    }
    int rc = 0;
    uint64_t v;
    switch (stress_below(&r, 5)) {
    case 4: /* every joiner is cancelled, and so then is this child, inline or not */
        rc = wait_for_the_cancel("part 4: a child");
        break;
    case 0:
        rc = weft_sleep_until(weft_now() + stress_below(&r, 100 * US));
        break;
    case 1:
        for (int i = 0; i < 4; i++)
            weft_yield();
        break;
    case 2: {
        uint64_t d = weft_now() + stress_below(&r, 100 * US);
        rc = weft_chan_recv(never, &v, d);
        STRESS_CHECK(rc == -ETIMEDOUT || rc == -ECANCELED, "recv on a silent channel: %d", rc);
        check_not_early(rc, d, "recv");
        break;
    }
    default:
        stress_spin_ns(stress_below(&r, 30 * US));
    }
    STRESS_CHECK(rc == 0 || rc == -ECANCELED || rc == -ETIMEDOUT, "child: %d", rc);
    c->rc = rc;
    return c->value;
}

static void *p4_joiner(void *arg) {
    p4 *c = arg;
    weft_task *t = spawn_counted(p4_child, c);
    void *res = NULL;
    int rc = weft_join(t, &res); /* inline, when the child is still at our deque's bottom */
    if (rc == 0 && c->depth == 0 && c->rc == -ECANCELED) /* nobody else cancels it */
        seen(&seen_inline_cancelled);
    if (rc == -ECANCELED) {
        STRESS_CHECK(weft_cancelled() == 1, "-ECANCELED to a joiner not cancelled");
        seen(&seen_join_ecanceled);
        /* The child did not run inline: it is not cancelled, and may wait for that. */
        STRESS_CHECK(weft_cancel(t) == 0, "cancel the child");
        int old = weft_cancel_shield(1);
        rc = weft_join(t, &res);
        weft_cancel_shield(old);
    }
    STRESS_CHECK(rc == 0, "join of the child: %d", rc);
    STRESS_CHECK(res == c->value, "join of the child returned %p, not %p", res, c->value);
    return c->value;
}

static void p4_round(uint64_t id) {
    stress_rng r = stress_rng_for(id);
    p4 c = {next_stream(), (void *)(uintptr_t)stress_hash(4, id), stress_chance(&r, 1, 4), 0};
    weft_task *t = spawn_counted(p4_joiner, &c);
    uint64_t delay = stress_below(&r, 80 * US);
    if (!in_task() || stress_chance(&r, 1, 3)) {
        cancel_request q;
        cancel_from_thread(&q, t, delay);
        wait_cancelled(&q);
    } else {
        /* A sleep lets the joiner run on this worker; a spin leaves it to a thief. */
        if (stress_chance(&r, 1, 2)) {
            weft_sleep_until(weft_now() + delay);
        } else {
            stress_spin_ns(delay);
        }
        STRESS_CHECK(weft_cancel(t) == 0, "weft_cancel of a joiner");
    }
    join_expect(t, c.value, "part 4: a joiner");
}

static void part_inline(size_t drivers, size_t rounds) {
    weft_runtime_stats before, after;
    STRESS_CHECK(weft_runtime_stats_get(rt, &before) == 0, "stats");
    run_drivers(p4_round, drivers, rounds, 4u << 20);
    STRESS_CHECK(weft_runtime_stats_get(rt, &after) == 0, "stats");
    stress_note("inline joins: %zu rounds, %llu joins ran inline, %llu inline children "
                "cancelled through their joiner, %llu joins said -ECANCELED",
                rounds, (unsigned long long)(after.joins_inline - before.joins_inline),
                seen_value(&seen_inline_cancelled), seen_value(&seen_join_ecanceled));
    stress_count(STRESS_INLINE_JOINS, after.joins_inline - before.joins_inline);
}

/* ---- part 5: groups ---------------------------------------------------------------------- */

#define P5_MAX_IDS 512

typedef struct p5 {
    weft_group *g;
    size_t limit;
    weft__atomic_word next_id;
    weft__atomic_word inside, max_inside;
    weft__atomic_word spawned_n, ran_n;
    uint8_t spawned[P5_MAX_IDS];         /* written by the id's one spawner */
    weft__atomic_word ran[P5_MAX_IDS];   /* by the member */
    weft__atomic_word taken[P5_MAX_IDS]; /* by whoever took its result */
    weft__atomic_word stop;              /* the spawners stop */
    weft__atomic_word thread_done;       /* the spawner thread returned */
    size_t per_spawner;
} p5;

typedef struct p5_member {
    p5 *p;
    uint64_t id;
} p5_member;

static void *p5_member_main(void *arg) {
    p5 *p = ((p5_member *)arg)->p;
    uint64_t id = ((p5_member *)arg)->id;
    free(arg);
    AO_t now = weft__atomic_fetch_add_full(&p->inside, 1) + 1;
    AO_t seen = weft__atomic_load_acquire(&p->max_inside);
    while (now > seen && weft__atomic_cas_full(&p->max_inside, seen, now) != seen)
        seen = weft__atomic_load_acquire(&p->max_inside);
    weft__atomic_fetch_add_full(&p->ran[id], 1);
    weft__atomic_fetch_add_full(&p->ran_n, 1);
    stress_rng r = stress_rng_for(stress_hash(5, id));
    uint64_t v;
    switch (stress_below(&r, 4)) {
    case 0:
        weft_sleep_until(weft_now() + stress_below(&r, 100 * US));
        break;
    case 1:
        weft_yield();
        break;
    case 2:
        weft_chan_recv(never, &v, weft_now() + stress_below(&r, 50 * US));
        break;
    default:
        break;
    }
    weft__atomic_fetch_add_full(&p->inside, (AO_t)-1);
    stress_count(STRESS_TASKS, 1);
    return (void *)(uintptr_t)(id + 1);
}

/* Spawns until told to stop or its share is done; -ECANCELED (it was cancelled while
 * waiting for a slot) ends it. */
static void *p5_spawner(void *arg) {
    p5 *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (size_t i = 0; i < p->per_spawner && !weft__atomic_load_acquire(&p->stop); i++) {
        uint64_t id = weft__atomic_fetch_add_full(&p->next_id, 1);
        STRESS_CHECK(id < P5_MAX_IDS, "too many members");
        p5_member *m = malloc(sizeof *m);
        STRESS_CHECK(m, "out of memory");
        *m = (p5_member){p, id};
        int rc = in_task() ? weft_group_spawn(p->g, p5_member_main, m)
                           : weft_group_spawn_on(p->g, rt, p5_member_main, m);
        if (rc == -ECANCELED) {
            seen(&seen_refused_spawns);
            free(m); /* still ours */
            check_sticky(rc, "group_spawn");
            return NULL;
        }
        STRESS_CHECK(rc == 0, "group_spawn: %d", rc);
        p->spawned[id] = 1;
        weft__atomic_fetch_add_full(&p->spawned_n, 1);
        if (stress_chance(&r, 1, 4))
            pause_a_bit(&r, 30 * US);
    }
    return NULL;
}

static void *p5_spawner_thread(void *arg) {
    p5 *p = arg;
    p5_spawner(p);
    weft__atomic_store_release(&p->thread_done, 1);
    return NULL;
}

static void take(p5 *p, void *res, const char *who) {
    uint64_t v = (uint64_t)(uintptr_t)res;
    STRESS_CHECK(v >= 1 && v <= P5_MAX_IDS, "%s took result %llu", who, (unsigned long long)v);
    AO_t n = weft__atomic_fetch_add_full(&p->taken[v - 1], 1);
    STRESS_CHECK(n == 0, "%s took member %llu's result a second time", who,
                 (unsigned long long)(v - 1));
}

/* Takes results with deadlines until -ECHILD after the spawners stopped, or a cancel. */
static void *p5_consumer(void *arg) {
    p5 *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (;;) {
        void *res = NULL;
        uint64_t d =
            stress_chance(&r, 1, 3) ? WEFT_FOREVER : weft_now() + stress_below(&r, 100 * US);
        int rc = weft_group_next(p->g, &res, d);
        if (rc == 0) {
            take(p, res, "a consumer");
            continue;
        }
        if (rc == -ECANCELED) {
            STRESS_CHECK(res == NULL, "a cancelled next stored a result");
            seen(&seen_cancelled_nexts);
            check_sticky(rc, "group_next");
            return NULL;
        }
        if (rc == -ECHILD) {
            if (weft__atomic_load_acquire(&p->stop))
                return NULL;
            pause_a_bit(&r, 20 * US);
            continue;
        }
        STRESS_CHECK(rc == -ETIMEDOUT, "group_next: %d", rc);
        check_not_early(rc, d, "group_next");
    }
}

static void *p5_round(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    stress_rng r = stress_rng_for(id);
    static const size_t limits[] = {0, 1, 2, 3, 5};
    p5 *p = calloc(1, sizeof *p);
    STRESS_CHECK(p, "out of memory");
    STRESS_CHECK(weft_group_create(&p->g) == 0, "group_create");
    p->limit = limits[stress_below(&r, 5)];
    p->per_spawner = 12 + stress_below(&r, 12);
    STRESS_CHECK(weft_group_set_limit(p->g, p->limit) == 0, "set_limit");
    bool by_destroy = stress_chance(&r, 1, 3);
    bool group_cancel = stress_chance(&r, 1, 3);
    weft_task *spawners[4], *consumers[3];
    victims v = {.stream = next_stream(), .max_pause = 100 * US};
    for (size_t i = 0; i < 4; i++) {
        spawners[i] = spawn_counted(p5_spawner, p);
        if (i % 2)
            v.t[v.n++] = spawners[i];
    }
    for (size_t i = 0; i < 3; i++) {
        consumers[i] = spawn_counted(p5_consumer, p);
        if (i == 0)
            v.t[v.n++] = consumers[i];
    }
    pthread_t thread;
    STRESS_CHECK(pthread_create(&thread, NULL, p5_spawner_thread, p) == 0, "pthread_create");
    stress_count(STRESS_FOREIGN, 1);
    weft_task *k = spawn_counted(cancel_victims, &v);
    if (group_cancel) {
        pause_a_bit(&r, 200 * US);
        STRESS_CHECK(weft_group_cancel(p->g) == 0, "group_cancel");
    }
    join_expect(k, NULL, "part 5: the canceller");
    /* The spawners end (their share done, or cancelled); none may call after destroy. */
    for (size_t i = 0; i < 4; i++)
        join_expect(spawners[i], NULL, "part 5: a spawner");
    /* Not pthread_join: that would block this worker, and the members the thread
     * waits for might need it. */
    while (!weft__atomic_load_acquire(&p->thread_done))
        STRESS_CHECK(weft_sleep_until(weft_now() + 50 * US) == 0, "sleep");
    STRESS_CHECK(pthread_join(thread, NULL) == 0, "pthread_join");
    weft__atomic_store_release(&p->stop, 1);
    if (by_destroy) {
        /* The consumers go first (no call may start after destroy): cancel them. */
        for (size_t i = 0; i < 3; i++) {
            STRESS_CHECK(weft_cancel(consumers[i]) == 0, "cancel a consumer");
            join_expect(consumers[i], NULL, "part 5: a consumer");
        }
        STRESS_CHECK(weft_group_destroy(p->g) == 0, "group_destroy");
        /* Every member spawned has run, and none that was refused. */
    } else {
        for (size_t i = 0; i < 3; i++)
            join_expect(consumers[i], NULL, "part 5: a consumer");
        int old = weft_cancel_shield(1);
        void *res;
        int rc;
        while ((rc = weft_group_next(p->g, &res, WEFT_FOREVER)) == 0)
            take(p, res, "the drain");
        weft_cancel_shield(old);
        STRESS_CHECK(rc == -ECHILD, "the drain's next: %d", rc);
        STRESS_CHECK(weft_group_destroy(p->g) == 0, "group_destroy");
    }
    uint64_t ids = weft__atomic_load_acquire(&p->next_id);
    for (uint64_t i = 0; i < ids; i++) {
        AO_t ran = weft__atomic_load_acquire(&p->ran[i]);
        AO_t taken = weft__atomic_load_acquire(&p->taken[i]);
        STRESS_CHECK(ran == p->spawned[i], "member %llu: spawn %s, ran %lu times",
                     (unsigned long long)i, p->spawned[i] ? "returned 0" : "was refused",
                     (unsigned long)ran);
        if (!by_destroy)
            STRESS_CHECK(taken == p->spawned[i], "member %llu: spawned %d, result taken %lu times",
                         (unsigned long long)i, p->spawned[i], (unsigned long)taken);
    }
    STRESS_CHECK(weft__atomic_load_acquire(&p->inside) == 0, "members inside after the end");
    if (p->limit)
        STRESS_CHECK(weft__atomic_load_acquire(&p->max_inside) <= p->limit,
                     "%lu members ran at once under a limit of %zu",
                     (unsigned long)weft__atomic_load_acquire(&p->max_inside), p->limit);
    uint64_t spawned = weft__atomic_load_acquire(&p->spawned_n);
    free(p);
    return (void *)(uintptr_t)spawned;
}

static void part_groups(size_t rounds) {
    uint64_t members = 0;
    for (size_t i = 0; i < rounds; i += 2) {
        weft_task *t[2];
        size_t n = rounds - i < 2 ? rounds - i : 2;
        for (size_t j = 0; j < n; j++)
            t[j] = spawn_counted(p5_round, (void *)(uintptr_t)(5000000 + i + j));
        for (size_t j = 0; j < n; j++) {
            void *m;
            STRESS_CHECK(weft_join(t[j], &m) == 0, "join a round");
            members += (uint64_t)(uintptr_t)m;
        }
    }
    stress_note("groups: %zu rounds, %llu members, %llu spawns and %llu nexts cancelled", rounds,
                (unsigned long long)members, seen_value(&seen_refused_spawns),
                seen_value(&seen_cancelled_nexts));
}

/* ---- part 6: duels: a cancel and the event at the same instant ------------------------------ */

/* A task R parks in a wait; then the main thread cancels R while a helper thread, released
 * at the same moment (both spinning on `go`, each after its own 0-2 us offset), makes
 * the event R waits for. Whatever wins, it wins once: the event's maker and R agree
 * (a try_send that succeeded is R's value, a released permit is R's or still in the
 * semaphore, a finished member's result is R's or still in the group, a signal woke R
 * or the waiter behind it). */
enum duel_kind { D_RECV, D_SEND, D_SEM, D_NEXT, D_JOIN, D_COND, D_KINDS };

static struct {
    enum duel_kind kind;
    weft_chan *ch;
    weft_sem sem;
    weft_group *g;
    weft_event ev;
    weft_mutex m;
    weft_cond c;
    weft_task *joined;
    uint64_t offset_ns[2]; /* the main thread's, the helper's */
    /* R's side */
    weft__atomic_word arrived, w_arrived;
    int rc, w_rc, after;
    uint64_t value;
    void *result;
    /* the helper's side */
    weft_sem start;          /* the main thread releases it to arm the helper */
    weft__atomic_word ready; /* the helper spins on go */
    weft__atomic_word go;    /* act */
    weft__atomic_word done;  /* the helper acted */
    weft__atomic_word quit;
    int made; /* the helper's outcome: 0, or its call's error */
    uint64_t made_value;
} du;

static void *duel_waiter(void *arg) {
    (void)arg;
    uint64_t v = UINT64_MAX;
    int rc;
    switch (du.kind) {
    case D_RECV:
        weft__atomic_store_release(&du.arrived, 1);
        rc = weft_chan_recv(du.ch, &v, WEFT_FOREVER);
        break;
    case D_SEND:
        v = 0x5e4d;
        weft__atomic_store_release(&du.arrived, 1);
        rc = weft_chan_send(du.ch, &v, WEFT_FOREVER);
        break;
    case D_SEM:
        weft__atomic_store_release(&du.arrived, 1);
        rc = weft_sem_acquire(&du.sem, WEFT_FOREVER);
        break;
    case D_NEXT:
        weft__atomic_store_release(&du.arrived, 1);
        rc = weft_group_next(du.g, &du.result, WEFT_FOREVER);
        break;
    case D_JOIN:
        weft__atomic_store_release(&du.arrived, 1);
        rc = weft_join(du.joined, &du.result);
        break;
    default:
        STRESS_CHECK(weft_mutex_lock(&du.m) == 0, "lock");
        weft__atomic_store_release(&du.arrived, 1);
        rc = weft_cond_wait(&du.c, &du.m, WEFT_FOREVER);
        STRESS_CHECK(weft_mutex_unlock(&du.m) == 0, "cond_wait returned without the mutex");
    }
    du.value = v;
    du.rc = rc;
    du.after = weft_sleep_ms(0); /* sticky: -ECANCELED after a cancelled wait */
    return NULL;
}

/* The waiter behind R on the condition: never cancelled; 10 s is "a lost signal". */
static void *duel_second_waiter(void *arg) {
    (void)arg;
    STRESS_CHECK(weft_mutex_lock(&du.m) == 0, "lock");
    weft__atomic_store_release(&du.w_arrived, 1);
    du.w_rc = weft_cond_wait(&du.c, &du.m, weft_now() + LONG_WAIT);
    STRESS_CHECK(weft_mutex_unlock(&du.m) == 0, "cond_wait returned without the mutex");
    return NULL;
}

static void *duel_member(void *arg) {
    int rc = weft_event_wait(&du.ev, weft_now() + LONG_WAIT);
    /* Joined (D_JOIN), it is cancelled too when its joiner's cancel wins (weft.h: a join
     * that returns -ECANCELED cancels the joined task). */
    STRESS_CHECK(rc == 0 || (du.kind == D_JOIN && rc == -ECANCELED), "member: event_wait");
    return arg;
}

static void *duel_helper(void *arg) {
    (void)arg;
    for (;;) {
        STRESS_CHECK(weft_sem_acquire(&du.start, WEFT_FOREVER) == 0, "helper: acquire");
        if (weft__atomic_load_acquire(&du.quit))
            return NULL;
        AO_t gen = weft__atomic_load_acquire(&du.go) + 1;
        weft__atomic_store_release(&du.ready, gen);
        while (weft__atomic_load_acquire(&du.go) != gen)
            weft__cpu_relax();
        stress_spin_ns(du.offset_ns[1]);
        uint64_t v = 0x7a1;
        switch (du.kind) {
        case D_RECV:
            du.made = weft_chan_try_send(du.ch, &v);
            break;
        case D_SEND:
            du.made = weft_chan_try_recv(du.ch, &v);
            du.made_value = v;
            break;
        case D_SEM:
            du.made = weft_sem_release(&du.sem);
            break;
        case D_NEXT:
        case D_JOIN:
            du.made = weft_event_set(&du.ev);
            break;
        default:
            du.made = weft_cond_signal(&du.c);
        }
        weft__atomic_store_release(&du.done, gen);
    }
}

static void await_word(weft__atomic_word *w, AO_t want) {
    while (weft__atomic_load_acquire(w) != want)
        sched_yield();
}

static void duel(uint64_t id, weft__atomic_word *outcomes) {
    stress_rng r = stress_rng_for(stress_hash(6, id));
    du.kind = (enum duel_kind)stress_below(&r, D_KINDS);
    du.offset_ns[0] = stress_below(&r, 2 * US);
    du.offset_ns[1] = stress_below(&r, 2 * US);
    du.rc = du.w_rc = du.after = 1;
    du.result = NULL;
    du.made = 1;
    weft__atomic_store_release(&du.arrived, 0);
    weft__atomic_store_release(&du.w_arrived, 0);
    weft_task *member_or_child = NULL, *second = NULL;
    switch (du.kind) {
    case D_RECV:
    case D_SEND:
        STRESS_CHECK(weft_chan_create(sizeof(uint64_t), 0, &du.ch) == 0, "chan_create");
        break;
    case D_SEM:
        weft_sem_init(&du.sem, 0);
        break;
    case D_NEXT:
        weft_event_init(&du.ev);
        STRESS_CHECK(weft_group_create(&du.g) == 0, "group_create");
        STRESS_CHECK(weft_group_spawn_on(du.g, rt, duel_member, (void *)(uintptr_t)id) == 0,
                     "group_spawn_on");
        stress_count(STRESS_TASKS, 1);
        break;
    case D_JOIN:
        weft_event_init(&du.ev);
        du.joined = member_or_child = spawn_counted(duel_member, (void *)(uintptr_t)id);
        break;
    default:
        weft_mutex_init(&du.m);
        weft_cond_init(&du.c);
    }
    weft_task *t = spawn_counted(duel_waiter, NULL);
    await_word(&du.arrived, 1);
    if (du.kind == D_COND) {
        /* R and then W queued: each holds the mutex until its cond_wait queued it. */
        while (weft_mutex_trylock(&du.m) != 0)
            sched_yield();
        STRESS_CHECK(weft_mutex_unlock(&du.m) == 0, "unlock");
        second = spawn_counted(duel_second_waiter, NULL);
        await_word(&du.w_arrived, 1);
        while (weft_mutex_trylock(&du.m) != 0)
            sched_yield();
        STRESS_CHECK(weft_mutex_unlock(&du.m) == 0, "unlock");
    }
    stress_spin_ns(stress_below(&r, 20 * US)); /* R parks, or is about to */
    /* Arm the helper; go. */
    AO_t gen = weft__atomic_load_acquire(&du.go) + 1;
    STRESS_CHECK(weft_sem_release(&du.start) == 0, "release the helper");
    await_word(&du.ready, gen);
    weft__atomic_store_release(&du.go, gen);
    stress_spin_ns(du.offset_ns[0]);
    STRESS_CHECK(weft_cancel(t) == 0, "weft_cancel");
    await_word(&du.done, gen);
    join_expect(t, NULL, "part 6: the waiter");
    STRESS_CHECK(du.rc == 0 || du.rc == -ECANCELED, "duel %d: the wait returned %d", du.kind,
                 du.rc);
    /* (The event may also have won so early that R went past its next point before the
     * cancel came: then that point said 0.) */
    STRESS_CHECK(du.rc == 0 || du.after == -ECANCELED,
                 "duel %d: the point after a cancelled wait returned %d", du.kind, du.after);
    bool won = du.rc == 0; /* the event won */
    weft__atomic_fetch_add_relaxed(&outcomes[won], 1);
    void *res = NULL;
    uint64_t v;
    switch (du.kind) {
    case D_RECV:
        STRESS_CHECK(du.made == 0 || du.made == -EAGAIN, "try_send: %d", du.made);
        STRESS_CHECK(won == (du.made == 0), "recv %d but the try_send %d: a value %s", du.rc,
                     du.made, won ? "made up" : "lost");
        STRESS_CHECK(!won || du.value == 0x7a1, "recv stored %llx", (unsigned long long)du.value);
        STRESS_CHECK(weft_chan_try_recv(du.ch, &v) == -EAGAIN, "a value left in the channel");
        STRESS_CHECK(weft_chan_destroy(du.ch) == 0, "chan_destroy");
        break;
    case D_SEND:
        STRESS_CHECK(du.made == 0 || du.made == -EAGAIN, "try_recv: %d", du.made);
        STRESS_CHECK(won == (du.made == 0), "send %d but the try_recv %d: a value %s", du.rc,
                     du.made, won ? "lost" : "made up");
        STRESS_CHECK(!won || du.made_value == 0x5e4d, "try_recv got %llx",
                     (unsigned long long)du.made_value);
        STRESS_CHECK(weft_chan_destroy(du.ch) == 0, "chan_destroy");
        break;
    case D_SEM: {
        int left = 0;
        while (weft_sem_try_acquire(&du.sem) == 0)
            left++;
        STRESS_CHECK((int)won + left == 1, "one permit released: acquire %d, %d left", du.rc, left);
        STRESS_CHECK(weft_sem_destroy(&du.sem) == 0, "sem_destroy");
        break;
    }
    case D_NEXT: {
        int rc = weft_group_next(du.g, &res, weft_now() + LONG_WAIT);
        if (won) {
            STRESS_CHECK(du.result == (void *)(uintptr_t)id, "next returned %p", du.result);
            STRESS_CHECK(rc == -ECHILD, "the member's result came out twice (%d)", rc);
        } else {
            STRESS_CHECK(du.result == NULL, "a cancelled next stored %p", du.result);
            STRESS_CHECK(rc == 0 && res == (void *)(uintptr_t)id,
                         "a cancelled next took the result (%d, %p)", rc, res);
        }
        STRESS_CHECK(weft_group_destroy(du.g) == 0, "group_destroy");
        STRESS_CHECK(weft_event_destroy(&du.ev) == 0, "event_destroy");
        break;
    }
    case D_JOIN:
        if (won)
            STRESS_CHECK(du.result == (void *)(uintptr_t)id, "join returned %p", du.result);
        else
            join_expect(member_or_child, (void *)(uintptr_t)id, "part 6: the child");
        STRESS_CHECK(weft_event_destroy(&du.ev) == 0, "event_destroy");
        break;
    default:
        STRESS_CHECK(du.made == 0, "signal: %d", du.made);
        if (won) /* the signal was R's: W still waits for one */
            STRESS_CHECK(weft_cond_signal(&du.c) == 0, "signal");
        join_expect(second, NULL, "part 6: the second waiter");
        STRESS_CHECK(du.w_rc == 0, "the waiter behind a cancelled one returned %d: the signal %s",
                     du.w_rc, won ? "went to both" : "was lost");
        STRESS_CHECK(weft_cond_destroy(&du.c) == 0, "cond_destroy");
        STRESS_CHECK(weft_mutex_destroy(&du.m) == 0, "mutex_destroy");
    }
}

static void part_duels(size_t n) {
    pthread_t helper;
    weft_sem_init(&du.start, 0);
    STRESS_CHECK(pthread_create(&helper, NULL, duel_helper, NULL) == 0, "pthread_create");
    weft__atomic_word outcomes[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        duel(i, outcomes);
    weft__atomic_store_release(&du.quit, 1);
    STRESS_CHECK(weft_sem_release(&du.start) == 0, "release the helper");
    STRESS_CHECK(pthread_join(helper, NULL) == 0, "pthread_join");
    STRESS_CHECK(weft_sem_destroy(&du.start) == 0, "sem_destroy");
    stress_note("duels: %zu, the cancel won %llu, the event %llu", n,
                (unsigned long long)outcomes[0], (unsigned long long)outcomes[1]);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    stress_begin("stress_cancel", argc, argv);
    weft__atomic_store_release(&stream_counter, 1000);
    stress_rng r = stress_rng_for(0);
    unsigned workers = 2 + (unsigned)stress_below(&r, 3);
    STRESS_CHECK(weft_runtime_create(&(weft_config){.workers = workers}, &rt) == 0,
                 "runtime_create");
    stress_note("%u workers", workers);
    STRESS_CHECK(weft_chan_create(sizeof(uint64_t), 0, &never) == 0, "chan_create");
    STRESS_CHECK(weft_chan_create(sizeof(cancel_request *), 0, &cancellers.requests) == 0,
                 "chan_create");
    for (int i = 0; i < CANCELLERS; i++)
        STRESS_CHECK(pthread_create(&cancellers.thread[i], NULL, canceller_thread, NULL) == 0,
                     "pthread_create");

    part_completion(6, stress_size(6000, 4));
    part_wakeup(stress_size(120, 4), 4);
    part_deadline(stress_size(48, 4), 6, stress_size(4000, 4));
    part_inline(6, stress_size(6000, 4));
    part_groups(stress_size(80, 4));
    part_duels(stress_size(1500, 4));

    STRESS_CHECK(weft_chan_close(cancellers.requests) == 0, "close");
    for (int i = 0; i < CANCELLERS; i++)
        STRESS_CHECK(pthread_join(cancellers.thread[i], NULL) == 0, "pthread_join");
    STRESS_CHECK(weft_chan_destroy(cancellers.requests) == 0, "chan_destroy");
    STRESS_CHECK(weft_chan_destroy(never) == 0, "chan_destroy: a cancelled waiter is counted");
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "runtime_destroy");
    stress_count(STRESS_RUNTIMES, 1);
    return stress_pass();
}
