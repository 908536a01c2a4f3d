/*
 * stress_sync.c: lost-wake-up hunts in weft's sync primitives, channels and select (issue
 * 12). Many waiters, tasks and plain threads mixed, with deadlines of 0-200 us, so that
 * deadlines fire at the moment of the wake (under chaos seeds in tools/test and
 * tools/stress); every count must balance exactly, and every -ETIMEDOUT must come no
 * earlier than its deadline.
 *
 *   part 1 mutex: a plain counter under lock / lock_until(0-200 us) / trylock from tasks
 *          and threads; the counter equals the critical sections entered, nobody is
 *          ever inside with another, a timed-out lock_until holds nothing (unlock is
 *          -EPERM).
 *   part 2 semaphore: releasers hand out permits at random moments while acquirers take
 *          them with deadlines of 0-200 us (and give some back); at the end
 *          permits released == permits acquired + permits left (a permit handed to a
 *          waiter whose deadline fired at that moment must be neither lost nor doubled).
 *   part 3 condition: producers add items and signal once per item; consumers wait
 *          with a 30 s deadline, and "timed" waiters on the same condition wait 0-200 us
 *          and, when woken (0), pass the signal on. A signal swallowed by a waiter that
 *          returned -ETIMEDOUT strands an item: a consumer's 30 s wait then fails the
 *          test. Every item consumed exactly once; every wait returns holding the mutex.
 *   part 4 event and wait group, in rounds: long waiters must wake (0), timed waiters
 *          return 0 only after the set / the last done (they see its flag or count).
 *   part 5 channels, buffered and unbuffered: producers (tasks, threads) send with
 *          deadlines of 0-200 us (a timed-out send was not sent: it is sent again) or
 *          try_send; consumers recv with deadlines, try_recv or no deadline, until the
 *          close at the end: every value exactly once, each producer's values in order
 *          at every consumer.
 *   part 6 select over several channels: producers select SEND over all of them and
 *          consumers select RECV over all of them, both with deadlines of 0-200 us,
 *          racing sends and closes; every value exactly once.
 *
 *   stress_sync [--seed S]   (sizes scale with WEFT_TEST_SCALE; smaller under TSan)
 */
#include "stress.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#define US 1000u

static weft_runtime *rt;

/* ---- tasks and threads alike ------------------------------------------------------------ */

typedef struct actor {
    weft_task *task;
    pthread_t thread;
    bool is_thread;
} actor;

static void actor_start(actor *a, bool thread, weft_fn fn, void *arg) {
    a->is_thread = thread;
    if (thread) {
        STRESS_CHECK(pthread_create(&a->thread, NULL, fn, arg) == 0, "pthread_create");
        stress_count(STRESS_FOREIGN, 1);
    } else {
        a->task = weft_spawn_on(rt, fn, arg);
        STRESS_CHECK(a->task, "spawn: %s", strerror(errno));
        stress_count(STRESS_TASKS, 1);
    }
}

static void actor_join(actor *a) {
    if (a->is_thread)
        STRESS_CHECK(pthread_join(a->thread, NULL) == 0, "pthread_join");
    else
        STRESS_CHECK(weft_join(a->task, NULL) == 0, "join");
}

static bool in_task(void) {
    return weft_current_id() != 0;
}

/* A short pause: sleep, yield or spin, task or thread. */
static void pause_a_bit(stress_rng *r) {
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
        stress_spin_ns(stress_below(r, 20 * US));
        break;
    default:
        if (in_task())
            weft_sleep_until(weft_now() + stress_below(r, 100 * US));
        else
            stress_spin_ns(stress_below(r, 50 * US));
    }
}

/* A deadline 0-200 us away. */
static uint64_t short_deadline(stress_rng *r) {
    return weft_now() + stress_below(r, 200 * US);
}

static void check_not_early(int rc, uint64_t deadline, const char *what) {
    if (rc == -ETIMEDOUT) {
        uint64_t now = weft_now();
        STRESS_CHECK(now >= deadline, "%s returned -ETIMEDOUT %llu ns early", what,
                     (unsigned long long)(deadline - now));
        stress_count(STRESS_TIMEOUTS, 1);
    }
}

/* Streams for stress_rng_for: one per actor and part, so every run of a seed draws the
 * same numbers for the same actor (whichever thread runs it). */
static weft__atomic_word seed_counter;
static uint64_t next_stream(void) {
    return weft__atomic_fetch_add_full(&seed_counter, 1);
}

/* ---- part 1: mutex --------------------------------------------------------------------- */

typedef struct mutex_part {
    weft_mutex m;
    uint64_t counter; /* plain */
    int inside;       /* plain */
    size_t iterations;
    weft__atomic_word entered;
} mutex_part;

static void *mutex_worker(void *arg) {
    mutex_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (size_t i = 0; i < p->iterations; i++) {
        int rc;
        uint64_t d = 0;
        switch (stress_below(&r, 4)) {
        case 0: rc = weft_mutex_lock(&p->m); break;
        case 1: rc = weft_mutex_trylock(&p->m); break;
        default:
            d = short_deadline(&r);
            rc = weft_mutex_lock_until(&p->m, d);
        }
        if (rc == -EBUSY || rc == -ETIMEDOUT) {
            check_not_early(rc, d, "lock_until");
            STRESS_CHECK(weft_mutex_unlock(&p->m) == -EPERM,
                         "unlock after a failed lock (%d) did not say -EPERM", rc);
            continue;
        }
        STRESS_CHECK(rc == 0, "lock: %d", rc);
        STRESS_CHECK(p->inside++ == 0, "two callers inside the critical section");
        uint64_t v = p->counter;
        if (stress_chance(&r, 1, 16))
            pause_a_bit(&r);
        p->counter = v + 1;
        p->inside--;
        STRESS_CHECK(weft_mutex_unlock(&p->m) == 0, "unlock by the owner");
        weft__atomic_fetch_add_relaxed(&p->entered, 1);
        if (stress_chance(&r, 1, 8))
            pause_a_bit(&r);
    }
    return NULL;
}

static void part_mutex(size_t actors, size_t iterations) {
    mutex_part *p = calloc(1, sizeof *p);
    actor *a = calloc(actors, sizeof *a);
    STRESS_CHECK(p && a, "out of memory");
    p->iterations = iterations;
    for (size_t i = 0; i < actors; i++)
        actor_start(&a[i], i % 4 == 3, mutex_worker, p);
    for (size_t i = 0; i < actors; i++)
        actor_join(&a[i]);
    uint64_t entered = weft__atomic_load_acquire(&p->entered);
    STRESS_CHECK(p->counter == entered, "mutex: counter %llu after %llu critical sections",
                 (unsigned long long)p->counter, (unsigned long long)entered);
    STRESS_CHECK(weft_mutex_destroy(&p->m) == 0, "mutex_destroy");
    stress_note("mutex: %llu critical sections", (unsigned long long)entered);
    free(a);
    free(p);
}

/* ---- part 2: semaphore ------------------------------------------------------------------ */

typedef struct sem_part {
    weft_sem s;
    size_t per_releaser;
    weft__atomic_word released, acquired;
    weft__atomic_word releasers_left;
} sem_part;

static void *sem_releaser(void *arg) {
    sem_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (size_t i = 0; i < p->per_releaser; i++) {
        pause_a_bit(&r);
        weft__atomic_fetch_add_full(&p->released, 1);
        STRESS_CHECK(weft_sem_release(&p->s) == 0, "sem_release");
    }
    weft__atomic_fetch_add_full(&p->releasers_left, (AO_t)-1);
    return NULL;
}

static void *sem_acquirer(void *arg) {
    sem_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    /* Until the releasers are done and a wait finds nothing. */
    for (;;) {
        bool last = weft__atomic_load_acquire(&p->releasers_left) == 0;
        int rc;
        uint64_t d = 0;
        if (stress_chance(&r, 1, 4)) {
            rc = weft_sem_try_acquire(&p->s);
            STRESS_CHECK(rc == 0 || rc == -EAGAIN, "try_acquire: %d", rc);
        } else {
            d = short_deadline(&r);
            rc = weft_sem_acquire(&p->s, d);
            STRESS_CHECK(rc == 0 || rc == -ETIMEDOUT, "acquire: %d", rc);
            check_not_early(rc, d, "sem_acquire");
        }
        if (rc == 0) {
            weft__atomic_fetch_add_full(&p->acquired, 1);
            if (stress_chance(&r, 1, 4)) { /* give one back: more hand-offs */
                weft__atomic_fetch_add_full(&p->released, 1);
                STRESS_CHECK(weft_sem_release(&p->s) == 0, "sem_release");
            }
        } else if (last) {
            break;
        }
    }
    return NULL;
}

static void part_sem(size_t releasers, size_t acquirers, size_t per_releaser) {
    sem_part *p = calloc(1, sizeof *p);
    actor *a = calloc(releasers + acquirers, sizeof *a);
    STRESS_CHECK(p && a, "out of memory");
    p->per_releaser = per_releaser;
    p->releasers_left = releasers;
    for (size_t i = 0; i < acquirers; i++)
        actor_start(&a[i], i % 3 == 2, sem_acquirer, p);
    for (size_t i = 0; i < releasers; i++)
        actor_start(&a[acquirers + i], i % 2 == 1, sem_releaser, p);
    for (size_t i = 0; i < releasers + acquirers; i++)
        actor_join(&a[i]);
    uint64_t left = 0;
    while (weft_sem_try_acquire(&p->s) == 0)
        left++;
    uint64_t released = weft__atomic_load_acquire(&p->released);
    uint64_t acquired = weft__atomic_load_acquire(&p->acquired);
    STRESS_CHECK(released == acquired + left,
                 "semaphore: %llu permits released, %llu acquired + %llu left = %llu",
                 (unsigned long long)released, (unsigned long long)acquired,
                 (unsigned long long)left, (unsigned long long)(acquired + left));
    STRESS_CHECK(weft_sem_destroy(&p->s) == 0, "sem_destroy");
    stress_note("semaphore: %llu released, %llu acquired, %llu left", (unsigned long long)released,
                (unsigned long long)acquired, (unsigned long long)left);
    free(a);
    free(p);
}

/* ---- part 3: condition ------------------------------------------------------------------- */

typedef struct cond_part {
    weft_mutex m;
    weft_cond c;
    uint64_t items;     /* under m: produced, not yet consumed */
    uint64_t consumed;  /* under m */
    bool done;          /* under m: every producer finished */
    size_t per_producer;
    int inside;         /* under m: must be 0 on entry (every wait returns holding m) */
} cond_part;

static void cond_enter(cond_part *p) {
    STRESS_CHECK(p->inside++ == 0, "a cond_wait returned without the mutex");
}

static void cond_leave(cond_part *p) {
    p->inside--;
}

static void *cond_producer(void *arg) {
    cond_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    for (size_t i = 0; i < p->per_producer; i++) {
        pause_a_bit(&r);
        STRESS_CHECK(weft_mutex_lock(&p->m) == 0, "lock");
        cond_enter(p);
        p->items++;
        STRESS_CHECK(weft_cond_signal(&p->c) == 0, "signal");
        cond_leave(p);
        STRESS_CHECK(weft_mutex_unlock(&p->m) == 0, "unlock");
    }
    return NULL;
}

static void *cond_consumer(void *arg) {
    cond_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    STRESS_CHECK(weft_mutex_lock(&p->m) == 0, "lock");
    cond_enter(p);
    for (;;) {
        while (p->items == 0 && !p->done) {
            cond_leave(p);
            uint64_t d = weft_now() + 30000000000ull;
            int rc = weft_cond_wait(&p->c, &p->m, d);
            cond_enter(p);
            STRESS_CHECK(rc == 0, "a consumer's 30 s cond_wait returned %d with %llu items waiting: "
                         "a lost wake-up", rc, (unsigned long long)p->items);
        }
        if (p->items == 0)
            break;
        p->items--;
        p->consumed++;
        if (stress_chance(&r, 1, 8)) {
            cond_leave(p);
            STRESS_CHECK(weft_mutex_unlock(&p->m) == 0, "unlock");
            pause_a_bit(&r);
            STRESS_CHECK(weft_mutex_lock(&p->m) == 0, "lock");
            cond_enter(p);
        }
    }
    cond_leave(p);
    STRESS_CHECK(weft_mutex_unlock(&p->m) == 0, "unlock");
    return NULL;
}

/* Waits 0-200 us at a time; a wake (0) is passed on, since this waiter consumes nothing. */
static void *cond_timed_waiter(void *arg) {
    cond_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    STRESS_CHECK(weft_mutex_lock(&p->m) == 0, "lock");
    cond_enter(p);
    while (!p->done) {
        cond_leave(p);
        uint64_t d = short_deadline(&r);
        int rc = weft_cond_wait(&p->c, &p->m, d);
        cond_enter(p);
        STRESS_CHECK(rc == 0 || rc == -ETIMEDOUT, "cond_wait: %d", rc);
        check_not_early(rc, d, "cond_wait");
        if (rc == 0)
            STRESS_CHECK(weft_cond_signal(&p->c) == 0, "signal");
        if (stress_chance(&r, 1, 4)) {
            cond_leave(p);
            STRESS_CHECK(weft_mutex_unlock(&p->m) == 0, "unlock");
            pause_a_bit(&r);
            STRESS_CHECK(weft_mutex_lock(&p->m) == 0, "lock");
            cond_enter(p);
        }
    }
    cond_leave(p);
    STRESS_CHECK(weft_mutex_unlock(&p->m) == 0, "unlock");
    return NULL;
}

static void part_cond(size_t producers, size_t consumers, size_t timed, size_t per_producer) {
    cond_part *p = calloc(1, sizeof *p);
    size_t n = producers + consumers + timed;
    actor *a = calloc(n, sizeof *a);
    STRESS_CHECK(p && a, "out of memory");
    p->per_producer = per_producer;
    size_t k = 0;
    for (size_t i = 0; i < consumers; i++, k++)
        actor_start(&a[k], i % 3 == 2, cond_consumer, p);
    for (size_t i = 0; i < timed; i++, k++)
        actor_start(&a[k], i % 3 == 1, cond_timed_waiter, p);
    for (size_t i = 0; i < producers; i++, k++)
        actor_start(&a[k], i % 2 == 1, cond_producer, p);
    for (size_t i = consumers + timed; i < n; i++)
        actor_join(&a[i]);
    STRESS_CHECK(weft_mutex_lock(&p->m) == 0, "lock");
    p->done = true;
    STRESS_CHECK(weft_cond_broadcast(&p->c) == 0, "broadcast");
    STRESS_CHECK(weft_mutex_unlock(&p->m) == 0, "unlock");
    for (size_t i = 0; i < consumers + timed; i++)
        actor_join(&a[i]);
    uint64_t total = producers * per_producer;
    STRESS_CHECK(p->consumed == total && p->items == 0, "condition: %llu consumed, %llu left, of %llu",
                 (unsigned long long)p->consumed, (unsigned long long)p->items,
                 (unsigned long long)total);
    STRESS_CHECK(weft_cond_destroy(&p->c) == 0 && weft_mutex_destroy(&p->m) == 0, "destroy");
    stress_note("condition: %llu items", (unsigned long long)total);
    free(a);
    free(p);
}

/* ---- part 4: event and wait group ------------------------------------------------------- */

typedef struct round_part {
    weft_event e;
    weft_waitgroup wg;
    weft__atomic_word set_issued; /* 1 just before event_set */
    weft__atomic_word dones;      /* counted just before each done */
    size_t doers;
    bool use_wg;
    uint64_t stream;
} round_part;

typedef struct round_waiter {
    round_part *p;
    bool timed;
    uint64_t stream;
} round_waiter;

static void *round_wait(void *arg) {
    round_waiter *w = arg;
    round_part *p = w->p;
    stress_rng r = stress_rng_for(w->stream);
    uint64_t d = w->timed ? short_deadline(&r) : weft_now() + 30000000000ull;
    int rc = p->use_wg ? weft_waitgroup_wait(&p->wg, d) : weft_event_wait(&p->e, d);
    STRESS_CHECK(rc == 0 || (w->timed && rc == -ETIMEDOUT), "%s waiter (%s): %d",
                 p->use_wg ? "wait group" : "event", w->timed ? "timed" : "30 s", rc);
    check_not_early(rc, d, p->use_wg ? "waitgroup_wait" : "event_wait");
    if (rc == 0) {
        if (p->use_wg)
            STRESS_CHECK(weft__atomic_load_acquire(&p->dones) == p->doers,
                         "a wait group wait returned after %lu of %zu dones",
                         (unsigned long)weft__atomic_load_acquire(&p->dones), p->doers);
        else
            STRESS_CHECK(weft__atomic_load_acquire(&p->set_issued),
                         "an event wait returned 0 before any set");
    }
    return NULL;
}

static void *round_trigger(void *arg) {
    round_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    if (stress_chance(&r, 1, 2))
        stress_spin_ns(stress_below(&r, 300 * US));
    else
        pause_a_bit(&r);
    if (p->use_wg) {
        weft__atomic_fetch_add_full(&p->dones, 1);
        STRESS_CHECK(weft_waitgroup_done(&p->wg) == 0, "done");
    } else {
        weft__atomic_store_release(&p->set_issued, 1);
        STRESS_CHECK(weft_event_set(&p->e) == 0, "set");
    }
    return NULL;
}

static void part_rounds(size_t rounds, size_t waiters) {
    round_part *p = calloc(1, sizeof *p);
    round_waiter *w = calloc(waiters, sizeof *w);
    actor *a = calloc(waiters + 4, sizeof *a);
    STRESS_CHECK(p && w && a, "out of memory");
    stress_rng r = stress_rng_for(next_stream());
    for (size_t round = 0; round < rounds; round++) {
        p->use_wg = round % 2;
        p->doers = p->use_wg ? 1 + stress_below(&r, 4) : 1;
        weft__atomic_store_release(&p->dones, 0);
        weft__atomic_store_release(&p->set_issued, 0);
        if (p->use_wg)
            STRESS_CHECK(weft_waitgroup_add(&p->wg, (int64_t)p->doers) == 0, "add");
        for (size_t i = 0; i < waiters; i++) {
            w[i] = (round_waiter){p, stress_chance(&r, 1, 2), next_stream()};
            actor_start(&a[i], stress_chance(&r, 1, 4), round_wait, &w[i]);
        }
        for (size_t i = 0; i < p->doers; i++)
            actor_start(&a[waiters + i], stress_chance(&r, 1, 3), round_trigger, p);
        for (size_t i = 0; i < waiters + p->doers; i++)
            actor_join(&a[i]);
        if (p->use_wg) {
            STRESS_CHECK(weft_waitgroup_wait(&p->wg, 1) == 0, "the wait group is not at 0");
        } else {
            STRESS_CHECK(weft_event_is_set(&p->e) == 1, "event not set");
            STRESS_CHECK(weft_event_clear(&p->e) == 0, "clear");
        }
    }
    STRESS_CHECK(weft_event_destroy(&p->e) == 0 && weft_waitgroup_destroy(&p->wg) == 0, "destroy");
    stress_note("event and wait group: %zu rounds of %zu waiters", rounds, waiters);
    free(a);
    free(w);
    free(p);
}

/* ---- part 5: channels -------------------------------------------------------------------- */

enum { MAX_PRODUCERS = 16 };

typedef struct chan_part {
    weft_chan *ch[4];
    size_t nchans;
    size_t producers, per_producer;
    weft__atomic_word next_producer;
    weft__atomic_word *seen; /* per value: times received */
    weft__atomic_word received;
} chan_part;

static void record(chan_part *p, uint64_t v, uint64_t *last) {
    uint64_t prod = v >> 32, i = v & 0xffffffffu;
    STRESS_CHECK(prod < p->producers && i < p->per_producer, "a value never sent: %llx",
                 (unsigned long long)v);
    if (last) {
        STRESS_CHECK(last[prod] == UINT64_MAX || i > last[prod],
                     "producer %llu's value %llu after %llu at one consumer", (unsigned long long)prod,
                     (unsigned long long)i, (unsigned long long)last[prod]);
        last[prod] = i;
    }
    AO_t before = weft__atomic_fetch_add_full(&p->seen[prod * p->per_producer + i], 1);
    STRESS_CHECK(before == 0, "value %llu of producer %llu received twice", (unsigned long long)i,
                 (unsigned long long)prod);
    weft__atomic_fetch_add_relaxed(&p->received, 1);
}

static void *chan_producer(void *arg) {
    chan_part *p = arg;
    uint64_t id = weft__atomic_fetch_add_full(&p->next_producer, 1);
    stress_rng r = stress_rng_for(next_stream());
    for (uint64_t i = 0; i < p->per_producer; i++) {
        uint64_t v = (id << 32) | i;
        for (;;) {
            int rc;
            uint64_t d = 0;
            if (stress_chance(&r, 1, 4)) {
                rc = weft_chan_try_send(p->ch[0], &v);
                STRESS_CHECK(rc == 0 || rc == -EAGAIN, "try_send: %d", rc);
            } else if (stress_chance(&r, 1, 3)) {
                rc = weft_chan_send(p->ch[0], &v, WEFT_FOREVER);
            } else {
                d = short_deadline(&r);
                rc = weft_chan_send(p->ch[0], &v, d);
                check_not_early(rc, d, "chan_send");
            }
            if (rc == 0)
                break;
            STRESS_CHECK(rc == -EAGAIN || rc == -ETIMEDOUT, "send: %d", rc);
        }
        if (stress_chance(&r, 1, 16))
            pause_a_bit(&r);
    }
    return NULL;
}

static void *chan_consumer(void *arg) {
    chan_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    uint64_t last[MAX_PRODUCERS];
    for (size_t i = 0; i < MAX_PRODUCERS; i++)
        last[i] = UINT64_MAX;
    for (;;) {
        uint64_t v, d = 0;
        int rc;
        if (stress_chance(&r, 1, 4)) {
            rc = weft_chan_try_recv(p->ch[0], &v);
            if (rc == -EAGAIN)
                continue;
        } else if (stress_chance(&r, 1, 3)) {
            rc = weft_chan_recv(p->ch[0], &v, WEFT_FOREVER);
        } else {
            d = short_deadline(&r);
            rc = weft_chan_recv(p->ch[0], &v, d);
            check_not_early(rc, d, "chan_recv");
            if (rc == -ETIMEDOUT)
                continue;
        }
        if (rc == -EPIPE)
            break;
        STRESS_CHECK(rc == 0, "recv: %d", rc);
        record(p, v, last);
        if (stress_chance(&r, 1, 16))
            pause_a_bit(&r);
    }
    return NULL;
}

static chan_part *chan_part_new(size_t nchans, size_t producers, size_t per_producer,
                                stress_rng *r) {
    chan_part *p = calloc(1, sizeof *p);
    STRESS_CHECK(p, "out of memory");
    p->nchans = nchans;
    p->producers = producers;
    p->per_producer = per_producer;
    p->seen = calloc(producers * per_producer, sizeof *p->seen);
    STRESS_CHECK(p->seen, "out of memory");
    for (size_t i = 0; i < nchans; i++) {
        size_t cap = stress_chance(r, 1, 2) ? 0 : 1 + stress_below(r, 16);
        STRESS_CHECK(weft_chan_create(sizeof(uint64_t), cap, &p->ch[i]) == 0, "chan_create");
    }
    return p;
}

static void chan_part_check_free(chan_part *p, const char *what) {
    uint64_t total = p->producers * p->per_producer;
    STRESS_CHECK(weft__atomic_load_acquire(&p->received) == total, "%s: %lu of %llu values received",
                 what, (unsigned long)weft__atomic_load_acquire(&p->received),
                 (unsigned long long)total);
    for (uint64_t v = 0; v < total; v++)
        STRESS_CHECK(weft__atomic_load_relaxed(&p->seen[v]) == 1, "%s: value %llu lost", what,
                     (unsigned long long)v);
    for (size_t i = 0; i < p->nchans; i++)
        STRESS_CHECK(weft_chan_destroy(p->ch[i]) == 0, "chan_destroy");
    free((void *)p->seen);
    free(p);
}

static void run_producers_consumers(chan_part *p, size_t consumers, weft_fn produce, weft_fn consume) {
    size_t n = p->producers + consumers;
    actor *a = calloc(n, sizeof *a);
    STRESS_CHECK(a, "out of memory");
    for (size_t i = 0; i < consumers; i++)
        actor_start(&a[i], i % 3 == 2, consume, p);
    for (size_t i = 0; i < p->producers; i++)
        actor_start(&a[consumers + i], i % 3 == 1, produce, p);
    for (size_t i = consumers; i < n; i++)
        actor_join(&a[i]);
    for (size_t i = 0; i < p->nchans; i++)
        STRESS_CHECK(weft_chan_close(p->ch[i]) == 0, "close");
    for (size_t i = 0; i < consumers; i++)
        actor_join(&a[i]);
    free(a);
}

static void part_chan(size_t rounds, size_t producers, size_t consumers, size_t per_producer) {
    stress_rng r = stress_rng_for(next_stream());
    uint64_t values = 0;
    for (size_t round = 0; round < rounds; round++) {
        chan_part *p = chan_part_new(1, producers, per_producer, &r);
        run_producers_consumers(p, consumers, chan_producer, chan_consumer);
        values += producers * per_producer;
        chan_part_check_free(p, "channel");
    }
    stress_note("channels: %llu values in %zu rounds", (unsigned long long)values, rounds);
}

/* ---- part 6: select ------------------------------------------------------------------------ */

static void *select_producer(void *arg) {
    chan_part *p = arg;
    uint64_t id = weft__atomic_fetch_add_full(&p->next_producer, 1);
    stress_rng r = stress_rng_for(next_stream());
    for (uint64_t i = 0; i < p->per_producer; i++) {
        uint64_t v = (id << 32) | i;
        weft_case c[4];
        for (size_t k = 0; k < p->nchans; k++)
            c[k] = (weft_case){.kind = WEFT_CASE_SEND, .chan = p->ch[k], .elem = &v};
        for (;;) {
            uint64_t d = stress_chance(&r, 1, 4) ? WEFT_FOREVER : short_deadline(&r);
            int rc = weft_select(c, p->nchans, d);
            if (rc >= 0) {
                STRESS_CHECK(c[rc].result == 0, "select SEND: case %d result %d", rc, c[rc].result);
                break;
            }
            STRESS_CHECK(rc == -ETIMEDOUT, "select SEND: %d", rc);
            check_not_early(rc, d, "select");
        }
        if (stress_chance(&r, 1, 16))
            pause_a_bit(&r);
    }
    return NULL;
}

static void *select_consumer(void *arg) {
    chan_part *p = arg;
    stress_rng r = stress_rng_for(next_stream());
    uint64_t v;
    weft_case c[4];
    size_t open_ = p->nchans;
    for (size_t k = 0; k < p->nchans; k++)
        c[k] = (weft_case){.kind = WEFT_CASE_RECV, .chan = p->ch[k], .elem = &v};
    while (open_ > 0) {
        uint64_t d = stress_chance(&r, 1, 4) ? WEFT_FOREVER : short_deadline(&r);
        int rc = weft_select(c, p->nchans, d);
        if (rc == -ETIMEDOUT) {
            check_not_early(rc, d, "select");
            continue;
        }
        STRESS_CHECK(rc >= 0 && (size_t)rc < p->nchans, "select RECV: %d", rc);
        if (c[rc].result == -EPIPE) {
            c[rc].kind = 0; /* closed and drained: an unused slot from now on */
            open_--;
            continue;
        }
        STRESS_CHECK(c[rc].result == 0, "select RECV: case %d result %d", rc, c[rc].result);
        record(p, v, NULL); /* values of one producer spread over channels: no order */
        if (stress_chance(&r, 1, 16))
            pause_a_bit(&r);
    }
    return NULL;
}

static void part_select(size_t rounds, size_t producers, size_t consumers, size_t per_producer) {
    stress_rng r = stress_rng_for(next_stream());
    uint64_t values = 0;
    for (size_t round = 0; round < rounds; round++) {
        chan_part *p = chan_part_new(2 + stress_below(&r, 3), producers, per_producer, &r);
        run_producers_consumers(p, consumers, select_producer, select_consumer);
        values += producers * per_producer;
        chan_part_check_free(p, "select");
    }
    stress_note("select: %llu values in %zu rounds", (unsigned long long)values, rounds);
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    stress_begin("stress_sync", argc, argv);
    weft__atomic_store_release(&seed_counter, 1000);
    stress_rng r = stress_rng_for(0);
    unsigned workers = 2 + (unsigned)stress_below(&r, 3);
    STRESS_CHECK(weft_runtime_create(&(weft_config){.workers = workers}, &rt) == 0,
                 "runtime_create");
    stress_note("%u workers", workers);

    /* About 8 s in release, 20 s under ASan, 6 s under TSan (2-core VM, 2026-12). */
    part_mutex(12, stress_size(20000, 8));
    part_sem(4, 12, stress_size(20000, 8));
    part_cond(4, 4, 8, stress_size(20000, 8));
    part_rounds(stress_size(600, 4), 12);
    part_chan(stress_size(6, 2), 6, 6, stress_size(15000, 5));
    part_select(stress_size(6, 2), 6, 6, stress_size(8000, 5));

    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "runtime_destroy");
    stress_count(STRESS_RUNTIMES, 1);
    return stress_pass();
}
