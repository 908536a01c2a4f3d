/*
 * idle.c: idle workers. Owns the searching/unparked counts and the sleepers list; the
 * futex each worker sleeps on, and the queues, belong to worker.c.
 *
 * The rule (Go's "spinning" threads, Tokio's searching workers): at most one wake-up is
 * in flight for new work. New work wakes a sleeper only if no worker is searching;
 * a woken worker starts as a searcher; a searcher that finds work and was the last one
 * wakes another. So a burst of spawns wakes workers one after another, as fast as they
 * find work, instead of all at once (no thundering herd), and an idle runtime has every
 * worker asleep in the kernel (no CPU burnt).
 *
 * The lost-wake-up protocol, as two paired sequences:
 *
 *   submitter (spawn, wake)             worker running dry
 *   (IDLE-N1) make the task visible:    (IDLE-P1) full-barrier RMW on `state`: leave
 *        deque or injection queue            unparked (and searching); join the
 *        (release).                          sleepers.
 *   (IDLE-N2) full fence, then read     (IDLE-P2) re-read every deque and the injection
 *        `state`.                            queue; wake a worker (perhaps itself) if
 *   (IDLE-N3) if no searcher and not         any has work.
 *        everyone is unparked: claim a  (IDLE-P3) sleep on its own futex word until a
 *        sleeper, wake it.                   claimer sets it.
 *
 * N1-N2 and P1-P2 are each a store, a full barrier, then loads (Dekker): either N2's read
 * sees P1 (one fewer unparked worker, so with nobody searching N3 wakes a sleeper), or
 * P2's reads see N1's task and P2 wakes a worker for it. Hence P2 on every park.
 * Rejected: P2 only by the last searcher to park, as Tokio does. A worker that was not
 * searching (another was, so the cap kept it from joining) then parks without looking:
 * if N2 read `state` while that worker was still unparked (between its failed attempt to
 * search and P1) and the one searcher had already left, nobody looked after N1, and the
 * task sat in a busy worker's deque with the other worker asleep. Chaos scheduling
 * (chaos.h) found it: seed 21, the idle-steal case of the spawn/join unit tests, whose
 * parent spins until another worker runs its child. A P2 costs a read of every deque's
 * two indices, on a path that is about to sleep in the kernel anyway. (Within this
 * comment, N1..N3 and P1..P3 are IDLE-N1..IDLE-P3.)
 *
 * Designs not taken:
 * - Waking a worker for every new task: a spawn storm wakes every worker at once, and
 *   most find nothing (Go's runtime documents this as "excessive thread
 *   unparking/parking").
 * - Spinning idle workers without a futex: burns a core per worker while idle.
 * - A condition variable per runtime: wakes an arbitrary worker (not a chosen one) and
 *   takes a shared lock on every sleep and wake.
 */
#include "sched/idle.h"

#include <errno.h>
#include <stdlib.h>

#define SEARCHING_ONE ((AO_t)1)
#define UNPARKED_ONE  ((AO_t)1 << 32)
#define SEARCHING(s)  ((unsigned)((s)&0xffffffffu))
#define UNPARKED(s)   ((unsigned)((s) >> 32))

_Static_assert(sizeof(AO_t) == 8, "the idle state packs two 32-bit counts in a word");

int weft__idle_init(weft__idle *idle, unsigned worker_count) {
    idle->sleepers = calloc(worker_count, sizeof(*idle->sleepers));
    if (!idle->sleepers)
        return -ENOMEM;
    pthread_mutex_init(&idle->lock, NULL);
    idle->sleeper_count = 0;
    idle->worker_count = worker_count;
    /* Every worker starts unparked and not searching. */
    weft__atomic_store_relaxed(&idle->state, UNPARKED_ONE * worker_count);
    return 0;
}

void weft__idle_destroy(weft__idle *idle) {
    pthread_mutex_destroy(&idle->lock);
    free(idle->sleepers);
    idle->sleepers = NULL;
}

bool weft__idle_begin_searching(weft__idle *idle) {
    /* Relaxed: a heuristic cap; the RMW below is what the protocol relies on. */
    AO_t s = weft__atomic_load_relaxed(&idle->state);
    if (2 * SEARCHING(s) >= idle->worker_count)
        return false;
    /* Full: a searcher must be counted before it looks at the queues, so that a
     * submitter's IDLE-N2 that misses the work's claimer sees it. */
    weft__atomic_fetch_add_full(&idle->state, SEARCHING_ONE);
    return true;
}

bool weft__idle_end_searching(weft__idle *idle) {
    /* Full: pairs with IDLE-N2, as IDLE-P1 does. */
    AO_t prev = weft__atomic_fetch_add_full(&idle->state, (AO_t)0 - SEARCHING_ONE);
    return SEARCHING(prev) == 1;
}

void weft__idle_prepare_park(weft__idle *idle, unsigned index, bool searching) {
    pthread_mutex_lock(&idle->lock);
    /* (IDLE-P1) Full: pairs with IDLE-N2; the re-check (IDLE-P2) that follows reads the queues
     * after this barrier. */
    AO_t dec = UNPARKED_ONE + (searching ? SEARCHING_ONE : 0);
    weft__atomic_fetch_add_full(&idle->state, (AO_t)0 - dec);
    idle->sleepers[idle->sleeper_count++] = index;
    pthread_mutex_unlock(&idle->lock);
}

int weft__idle_claim_sleeper(weft__idle *idle) {
    /* (IDLE-N2) A full fence, then the read: the task made visible in IDLE-N1 is ordered before
     * it. The fence is on a private word (atomic.h): a full-barrier RMW of `state`
     * itself, as a first version did, bounced its cache line between workers on every
     * spawn and took a quarter of fib's time on 2 workers. */
    weft__atomic_fence_full();
    AO_t s = weft__atomic_load_acquire(&idle->state);
    if (SEARCHING(s) != 0 || UNPARKED(s) >= idle->worker_count)
        return -1;
    pthread_mutex_lock(&idle->lock);
    /* Re-check under the lock: another submitter may have claimed the sleeper we saw.
     * Relaxed: the lock orders this against other claimers and parkers. */
    s = weft__atomic_load_relaxed(&idle->state);
    int index = -1;
    if (SEARCHING(s) == 0 && idle->sleeper_count > 0) {
        index = (int)idle->sleepers[--idle->sleeper_count];
        /* (IDLE-N3) Full: the claimed worker is counted as unparked and searching before it
         * is woken, so no second submitter wakes another for the same work. */
        weft__atomic_fetch_add_full(&idle->state, UNPARKED_ONE + SEARCHING_ONE);
    }
    pthread_mutex_unlock(&idle->lock);
    return index;
}

bool weft__idle_unpark_self(weft__idle *idle, unsigned index) {
    bool found = false;
    pthread_mutex_lock(&idle->lock);
    for (unsigned i = 0; i < idle->sleeper_count; i++) {
        if (idle->sleepers[i] == index) {
            idle->sleepers[i] = idle->sleepers[--idle->sleeper_count];
            /* Full: as IDLE-N3, the count changes before we look at any queue. */
            weft__atomic_fetch_add_full(&idle->state, UNPARKED_ONE);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&idle->lock);
    return found;
}
