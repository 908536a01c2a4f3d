/*
 * stress_sync_destroy.c: a destroy that returns 0 must mean no waiter will touch the
 * object again (weft.h: "afterwards the memory may be reused"). In each round four
 * tasks wait on a fresh object with a deadline of about 4 ms; once all four are queued
 * (the count in the object's lock word), just before the deadline, the main thread serves
 * them (release / set / done / send), then destroys the object until the
 * destroy returns 0, and at once fills it with 0xA5 bytes and frees it. A waiter whose
 * deadline fired just as it was served must not take the object's lock afterwards (the
 * bug this test was written for, found by a test helper: SYNC-Q3's withdraw after the
 * waker had delivered and destroy had returned 0). Under ASan that is a
 * heap-use-after-free; elsewhere the waiter spins on a lock word that reads "held"
 * (0xA5 has bit 0 set) and the watchdog fails the test.
 *
 *   stress_sync_destroy [--seed S]   (rounds scale with WEFT_TEST_SCALE)
 */
#include "stress.h"

#include "sync/chan.h"

#include <errno.h>
#include <string.h>

enum { SEM, EVENT, WAITGROUP, CHAN, KINDS };
static const char *const kind_names[KINDS] = {"sem", "event", "waitgroup", "chan"};

typedef struct round_state {
    int kind;
    void *object;
    uint64_t deadline;
    weft__atomic_word arrived;
} round_state;

static void *waiter(void *arg) {
    round_state *r = arg;
    weft__atomic_fetch_add_full(&r->arrived, 1);
    int rc;
    long value;
    switch (r->kind) {
    case SEM: rc = weft_sem_acquire(r->object, r->deadline); break;
    case EVENT: rc = weft_event_wait(r->object, r->deadline); break;
    case WAITGROUP: rc = weft_waitgroup_wait(r->object, r->deadline); break;
    default: rc = weft_chan_recv(r->object, &value, r->deadline); break;
    }
    STRESS_CHECK(rc == 0 || rc == -ETIMEDOUT, "%s waiter: %d", kind_names[r->kind], rc);
    return NULL;
}

/* How many waiters are inside a call on the object (the count in its lock word,
 * sync/waitq.h): the inline types keep their wait queue after one 8-byte word. */
static AO_t inside(round_state *r) {
    weft__atomic_word *lock = r->kind == CHAN ? &((weft_chan *)r->object)->lock
                                              : (weft__atomic_word *)((char *)r->object + 8);
    return weft__atomic_load_acquire(lock) / WEFT__QLOCK_INSIDE;
}

static int destroy(round_state *r) {
    switch (r->kind) {
    case SEM: return weft_sem_destroy(r->object);
    case EVENT: return weft_event_destroy(r->object);
    case WAITGROUP: return weft_waitgroup_destroy(r->object);
    default: return weft_chan_destroy(r->object);
    }
}

static void serve(round_state *r) {
    long value = 7;
    for (int i = 0; i < 4; i++) {
        switch (r->kind) {
        case SEM: weft_sem_release(r->object); break;
        case EVENT:
            if (i == 0)
                weft_event_set(r->object);
            break;
        case WAITGROUP:
            if (i == 0)
                weft_waitgroup_done(r->object);
            break;
        default: (void)weft_chan_try_send(r->object, &value); break;
        }
    }
}

int main(int argc, char **argv) {
    argc = stress_begin("stress_sync_destroy", argc, argv);
    (void)argc;
    weft_runtime *rt;
    weft_config cfg = {.workers = 2};
    STRESS_CHECK(weft_runtime_create(&cfg, &rt) == 0, "create");
    size_t rounds = stress_size(1000, 4);
    stress_rng rng = stress_rng_for(1);
    for (size_t n = 0; n < rounds; n++) {
        round_state r = {.kind = (int)(n % KINDS)};
        size_t size = r.kind == SEM ? sizeof(weft_sem) : r.kind == EVENT ? sizeof(weft_event)
                                                                        : sizeof(weft_waitgroup);
        if (r.kind == CHAN)
            STRESS_CHECK(weft_chan_create(sizeof(long), 0, (weft_chan **)&r.object) == 0, "chan");
        else
            STRESS_CHECK((r.object = calloc(1, size)) != NULL, "calloc");
        if (r.kind == WAITGROUP)
            weft_waitgroup_add(r.object, 1);
        /* The deadline is far enough for every waiter to be queued first (under TSan
         * too): serving a waiter that has not yet called would race the test's own
         * free, not weft. */
        r.deadline = weft_now() + 4000000 + stress_below(&rng, 64) * 1000;
        weft_task *t[4];
        for (int i = 0; i < 4; i++)
            STRESS_CHECK((t[i] = weft_spawn_on(rt, waiter, &r)) != NULL, "spawn");
        while (inside(&r) < 4 && weft_now() < r.deadline)
            ;
        if (inside(&r) < 4) { /* too slow to queue (a loaded machine): no race this round */
            for (int i = 0; i < 4; i++)
                STRESS_CHECK(weft_join(t[i], NULL) == 0, "join");
            int rc = destroy(&r);
            STRESS_CHECK(rc == 0, "%s destroy after every waiter returned: %d", kind_names[r.kind], rc);
            if (r.kind != CHAN)
                free(r.object);
            continue;
        }
        /* Serve within the last 30 us before the deadline, or just after it. */
        uint64_t at = r.deadline - 30000 + stress_below(&rng, 60) * 1000;
        while (weft_now() < at)
            ;
        serve(&r);
        int rc;
        while ((rc = destroy(&r)) == -EBUSY)
            ;
        STRESS_CHECK(rc == 0, "%s destroy: %d", kind_names[r.kind], rc);
        if (r.kind != CHAN) { /* the channel's memory is weft's own: freed by destroy */
            memset(r.object, 0xA5, size);
            free(r.object);
        }
        for (int i = 0; i < 4; i++)
            STRESS_CHECK(weft_join(t[i], NULL) == 0, "join");
        stress_count(STRESS_TASKS, 4);
    }
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy runtime");
    stress_count(STRESS_RUNTIMES, 1);
    char why[256];
    STRESS_CHECK(weft_test_leaks(why, sizeof(why)) == 0, "leak: %s", why);
    return stress_pass();
}
