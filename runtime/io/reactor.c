/*
 * reactor.c: readiness for tasks. Owns each runtime's reactor (its poller, poller.h, and
 * its table of fd slots), the workers' I/O drivers, and the protocols between a task
 * waiting on an fd, the worker that polls, and weft_fd_close.
 *
 * The model (Tokio's and Go's, without a separate I/O thread). The workers drive the
 * poller themselves: a worker that runs dry polls without waiting before it steals
 * (the driver's `poll`); a busy worker polls every 61st scheduling round (`fire_due`), so
 * a loaded runtime still sees I/O; an idle worker that takes the reactor's poller token
 * parks in the poller's wait (epoll_wait) instead of its futex, until its earliest timer,
 * an event, or a kick (the eventfd: a submitter that claims this worker, or shutdown).
 * One worker at a time holds the token; the others sleep on their futex as before. The
 * events a polling worker reads wake their tasks through the scheduler's wake function
 * onto that worker's own deque (the surplus overflows to the injection queue), and one
 * idle worker is woken per batch (WAIT-D4) to steal what this one cannot run.
 *
 * The fd table: one slot per fd number, in chunks of 1024 allocated on first use and
 * kept until the runtime is destroyed (type-stable: a late event or a stale waiter
 * finds a slot, never freed memory). A slot:
 *   waiter[IN], waiter[OUT]  0; a READY mark tagged with a generation (an edge came and
 *        nobody took it); or a weft__wait * (a task waits: sched/wait.h). Changed only by
 *        full-barrier CAS, by the waiting task, the poller and the slot lock's holder.
 *   generation  which registration of the fd number is current: bumped, under the slot
 *        lock, by a registration that finds the number new to the poller (a first use,
 *        or a reuse after a plain close(2)) and by weft_fd_close. Events carry the
 *        generation they were registered with (its low 32 bits, beside the fd).
 *   lock        a spin lock held around registration and close (a system call each):
 *        makes the generation and the poller's registration agree.
 *
 * The waiting task (weft__reactor_wait), after its system call said EAGAIN:
 *   (IO-W1) register, under the slot lock: add fd to the poller with generation g+1.
 *        The poller refuses an fd it already watches (EEXIST): then g stands. If it
 *        accepted, the number is new to it: any waiter left from the old file is woken
 *        with -ECANCELED and its marks cleared, then generation := g+1 (full RMW), then
 *        waits (not marks) are taken once more, for an old-file waiter that published
 *        in between. Every wait registers: only the poller knows whether a plain
 *        close(2) and a reuse of the number happened.
 *   (IO-W2) per direction: CAS the waiter word: a READY mark of the current generation
 *        -> 0 (consume it: return 0, the caller tries its system call again: the mark
 *        may be older than the caller's last try, so it reports nothing); 0 or a stale
 *        mark -> our weft__wait (WAIT-B1); another wait -> -EBUSY.
 *   (IO-W3) re-read the generation: changed since IO-W1 means weft_fd_close (or a new
 *        registration) ran meanwhile: withdraw and return -ECANCELED.
 *   (IO-W4) park (WAIT-B2), withdrawing by CAS our wait -> 0 at the deadline (WAIT-B3).
 *
 * The polling worker, per event (fd, g32, ready):
 *   (IO-E1) the slot's generation's low 32 bits != g32: a stale event of an earlier file
 *        under this number: dropped.
 *   (IO-E2) per ready direction: CAS the waiter word: a wait -> 0 (WAIT-D0: the wait is
 *        ours to deliver, the edge is its), else -> READY(g32).
 *   (IO-E3) deliver (WAIT-D1..D3) the direction's bit if the wait's generation is g32,
 *        else 0 ("look again": the event predates the waiter's registration). The idle
 *        worker's wake-up comes once per poll, after the last delivery (WAIT-D4).
 *
 * weft_fd_close (any thread), with the fd's slot locked in every runtime's reactor:
 *   (IO-C1) generation += 1 (full RMW): events in flight are stale from here (IO-E1).
 *   (IO-C2) CAS each waiter word -> 0; a wait found is delivered -ECANCELED.
 *   (IO-C3) remove fd from the poller; close(2) it; only then unlock the slots. (A
 *        first version unlocked before close(2): a waiter's IO-W1 in between added the
 *        still-open file to the poller again, published, passed IO-W3 with the new
 *        generation, and slept for ever once close(2) dropped the registration. The
 *        stress test stress_io_races, part 2, found it under chaos seed 3.)
 *
 * Pairings. IO-W2 against IO-E2, IO-C2 and IO-W4's withdraw: CASes on one word, so each
 * wait is taken by exactly one of them (WAIT-D0 against WAIT-B3). IO-W2/IO-W3 against
 * IO-C1/IO-C2 (Dekker: each side's full RMW, then a read of the other's word): either
 * the close sees the published wait and delivers -ECANCELED, or the waiter sees the new
 * generation and leaves. Without IO-W3 a task publishing just after IO-C2 would wait on
 * a closed fd until its deadline. IO-E1 against IO-C1: an event that passed IO-E1 just
 * before a close may still set a READY mark of the old generation, which IO-W2 ignores,
 * or reach a waiter of the new registration, which IO-E3 hands a 0 (it looks again).
 *
 * The poller token against a worker's wake-up (the driver's park and unpark):
 *   parker (holds the token)                 waker (weft__worker_unpark)
 *   (IO-K1) in_poller := 1; full fence;      (IO-K2) wake_word := 1 (release); full
 *        wake_word still 0? then wait in          fence; in_poller? kick the poller,
 *        the poller; in_poller := 0.              else futex-wake wake_word.
 * Dekker again: either the parker sees wake_word and does not wait, or the waker sees
 * in_poller and kicks (a kick before the wait makes it return at once).
 *
 * Rejected:
 * - A dedicated I/O thread (libuv's threadpool style, or a netpoller thread): every
 *   readiness would cost a cross-thread hand-off, and an idle runtime two sleeping
 *   threads per wake-up instead of one.
 * - Registering an fd once and trusting it afterwards (Go's and Tokio's way: their fds
 *   are closed only through their own objects): after a plain close(2) and a reuse of
 *   the number, the new file is not in the epoll set and a wait on it would never wake.
 *   The price is an epoll_ctl per park (EEXIST in the steady state).
 * - Level-triggered registration: every poll would report every readable socket whose
 *   task has not read yet (a busy server: most of them), and each would have to be
 *   re-armed or filtered.
 */
#include "io/reactor.h"

#include "base/chaos.h"
#include "base/futex.h"
#include "base/memory.h"
#include "base/spinlock.h"
#include "io/poller.h"
#include "sched/runtime.h"
#include "sched/wait.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#define WEFT__SLOTS_PER_CHUNK 1024
/* Fds the table can hold, at most (RLIMIT_NOFILE's hard limit, capped here). */
#define WEFT__MAX_FDS (1u << 24)
/* A busy worker polls every this many scheduling rounds (as Go's and Tokio's 61). */
#define WEFT__POLL_INTERVAL 61
#define WEFT__EVENTS_MAX    64

enum { WEFT__DIR_IN = 0, WEFT__DIR_OUT = 1 };

typedef struct weft__io_slot {
    weft__atomic_word waiter[2];
    weft__atomic_word generation;
    weft__atomic_word lock;
} weft__io_slot;

typedef struct weft__io_driver weft__io_driver;

struct weft__reactor {
    weft__poller poller;              /* immutable after create */
    weft_runtime *runtime;            /* immutable */
    weft__atomic_word token;          /* 1 while a worker polls (IO-K) */
    weft__atomic_word active;         /* 1 once any fd was registered: workers poll */
    size_t chunk_count;               /* immutable */
    weft__atomic_word *chunks;        /* weft__io_slot[1024] each, published with release */
    pthread_mutex_t grow_lock;        /* serialises chunk allocation */
    weft__io_driver **drivers;        /* one per worker, for statistics; set before start */
    weft__reactor *next, **prev_next; /* in the process's list (every_reactor), under its lock */
};

struct weft__io_driver {
    weft__driver driver; /* first: the worker parks on it */
    weft__driver *inner; /* the time driver */
    weft__reactor *reactor;
    weft__worker *worker;
    weft__atomic_u32 in_poller;   /* IO-K: shared with wakers */
    unsigned until_poll;          /* owner only: rounds left until the next busy poll */
    bool poll_due;                /* owner only: has_due promised a poll to fire_due */
    int pending_count;            /* owner only: events read in park, not yet delivered */
    weft__poll_event pending[WEFT__EVENTS_MAX];
    weft__atomic_word polls;      /* statistics: owner writes, anyone reads */
    weft__atomic_word events;
};

/* Every reactor of the process, for weft_fd_close, which does not know the runtime. A
 * read-write lock: closes share it; create and destroy take it alone. */
static pthread_rwlock_t every_reactor_lock = PTHREAD_RWLOCK_INITIALIZER;
static weft__reactor *every_reactor;

/* ---- The waiter word's values -------------------------------------------------------- */

#define WEFT__READY_BIT ((AO_t)1) /* waits are at least 8-byte aligned: bit 0 is free */

static AO_t ready_mark(uint32_t g32) {
    return ((AO_t)g32 << 1) | WEFT__READY_BIT;
}
static bool is_ready_mark(AO_t word) {
    return (word & WEFT__READY_BIT) != 0;
}
static uint32_t low32(AO_t generation) {
    return (uint32_t)generation;
}

/* ---- The table ----------------------------------------------------------------------- */

static weft__io_slot *slot_of(weft__reactor *r, int fd, bool create) {
    if (fd < 0 || (size_t)fd / WEFT__SLOTS_PER_CHUNK >= r->chunk_count)
        return NULL;
    size_t index = (size_t)fd / WEFT__SLOTS_PER_CHUNK;
    /* Acquire: pairs with the release below; the chunk's zeroed slots are visible. */
    weft__io_slot *chunk = weft__atomic_load_ptr_acquire(&r->chunks[index]);
    if (!chunk && create) {
        pthread_mutex_lock(&r->grow_lock);
        chunk = weft__atomic_load_ptr_acquire(&r->chunks[index]);
        if (!chunk) {
            chunk = weft__alloc(sizeof(weft__io_slot) * WEFT__SLOTS_PER_CHUNK, 64); /* zeroed */
            if (chunk) /* Release: the zeroed slots before the pointer (see above). */
                weft__atomic_store_ptr_release(&r->chunks[index], chunk);
        }
        pthread_mutex_unlock(&r->grow_lock);
    }
    return chunk ? &chunk[fd % WEFT__SLOTS_PER_CHUNK] : NULL;
}

static void slot_lock(weft__io_slot *s) {
    weft__spinlock_lock(&s->lock);
}
static void slot_unlock(weft__io_slot *s) {
    weft__spinlock_unlock(&s->lock);
}

/* Takes whatever wait is published in `word` (WAIT-D0), leaving 0; if none is, leaves
 * `mark` (a READY mark, or 0) and returns NULL. */
static weft__wait *take_wait(weft__atomic_word *word, AO_t mark) {
    AO_t old = weft__atomic_load_acquire(word);
    for (;;) {
        if (old == 0 || is_ready_mark(old)) {
            if (old == mark)
                return NULL;
            /* Full: pairs with IO-W2's publishing CAS. */
            AO_t seen = weft__atomic_cas_full(word, old, mark);
            if (seen == old)
                return NULL;
            old = seen;
            continue;
        }
        /* Full: pairs with IO-W2 and with the waiter's withdraw: one of us has it. The
         * edge goes to the waiter, so no mark is left. */
        AO_t seen = weft__atomic_cas_full(word, old, 0);
        if (seen == old)
            return (weft__wait *)old;
        old = seen;
    }
}

/* (IO-E2) take_wait for an event of generation g32: gives up, leaving the word alone, as
 * soon as the slot's generation is another (a close or a re-registration came after
 * IO-E1: the event is stale, and a newer mark must not be overwritten with its old
 * one). The generation is read after the word: a mark of a newer generation is only
 * ever written after that generation was set (its own IO-E1 saw it), so reading the
 * mark and then an unchanged generation means the mark is not newer than g32. */
static weft__wait *take_wait_for_event(weft__io_slot *s, int d, uint32_t g32) {
    weft__atomic_word *word = &s->waiter[d];
    for (;;) {
        AO_t old = weft__atomic_load_acquire(word);
        /* Acquire: as IO-E1. */
        if (low32(weft__atomic_load_acquire(&s->generation)) != g32)
            return NULL;
        bool is_wait = old != 0 && !is_ready_mark(old);
        AO_t next = is_wait ? 0 : ready_mark(g32);
        if (old == next)
            return NULL;
        /* Full: pairs with IO-W2's CAS and the waiter's withdraw (IO-W4): one of us has
         * the wait. The edge goes to the waiter, so no mark is left for it. */
        if (weft__atomic_cas_full(word, old, next) == old)
            return is_wait ? (weft__wait *)old : NULL;
    }
}

/* (IO-C2, and IO-W1 after a reuse) Wakes both directions' waits with -ECANCELED. */
static void cancel_waits(weft__io_slot *s, weft__wake_batch *batch) {
    weft__atomic_fence_full(); /* the generation's RMW before our reads: see IO-W3 */
    for (int d = 0; d < 2; d++) {
        weft__wait *wait = take_wait(&s->waiter[d], 0);
        if (wait)
            weft__wait_deliver(wait, -ECANCELED, batch);
    }
}

/* (IO-W1, after the bump) Wakes the waits left in the slot with -ECANCELED, leaving any
 * READY mark alone. */
static void cancel_waits_only(weft__io_slot *s, weft__wake_batch *batch) {
    weft__atomic_fence_full(); /* the generation's RMW before our reads: see IO-W3 */
    for (int d = 0; d < 2; d++) {
        weft__atomic_word *word = &s->waiter[d];
        AO_t old = weft__atomic_load_acquire(word);
        /* Full: pairs with IO-W2's publishing CAS and the waiter's withdraw. */
        while (old != 0 && !is_ready_mark(old)) {
            AO_t seen = weft__atomic_cas_full(word, old, 0);
            if (seen == old) {
                weft__wait_deliver((weft__wait *)old, -ECANCELED, batch);
                break;
            }
            old = seen;
        }
    }
}

/* (IO-W1) Makes sure the poller watches the file fd names now. Returns 0 and the
 * current generation, -EPERM (cannot be watched: always ready), or another -errno. */
static int register_fd(weft__reactor *r, weft__io_slot *s, int fd, AO_t *generation) {
    weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
    slot_lock(s);
    /* Relaxed: only lock holders write the generation. */
    AO_t g = weft__atomic_load_relaxed(&s->generation);
    int rc = weft__poller_add(&r->poller, fd, (uint64_t)(uint32_t)fd | (uint64_t)low32(g + 1) << 32);
    if (rc == 0) {
        /* Waits and marks of the file that had this number before go first, while the
         * generation is still theirs: once it is bumped, the poller may already be
         * marking this file's first edge in the word (reported from inside epoll_ctl),
         * and clearing the word then would lose that edge for ever (found by
         * stress_io_storm with 3 workers on 2 cores: a slot log showed the edge's mark
         * set, then gone before the reader published, with the bump in between). */
        cancel_waits(s, &batch);
        WEFT__CHAOS_POINT(r->runtime->chaos_seed, "IO-W1");
        /* Full: pairs with IO-W3's re-read, as IO-C1 does. */
        weft__atomic_fetch_add_full(&s->generation, 1);
        g++;
        /* And after the bump, the Dekker half of that pairing: a waiter of the old file
         * that published after the first pass (its IO-W3 read the old generation) is
         * taken now. Waits only: a mark here may already be the new file's first edge,
         * and no wait of the new generation can exist yet (its owner would need the slot
         * lock, which we hold). (A cold review found the pairing broken by the reorder.) */
        cancel_waits_only(s, &batch);
        /* Relaxed look, release store: `active` is a hint (poll_round says why that is
         * enough); the store is a release only so that its readers see a reactor whose
         * registration is in place. */
        if (!weft__atomic_load_relaxed(&r->active))
            weft__atomic_store_release(&r->active, 1);
    } else if (rc == -EEXIST) {
        rc = 0;
    }
    slot_unlock(s);
    weft__wake_batch_finish(&batch);
    *generation = g;
    return rc;
}

/* The withdraw of WAIT-B3 (IO-W4): CAS our wait -> 0. */
bool weft__reactor_withdraw(weft__wait *wait, void *structure) {
    weft__atomic_word *word = (weft__atomic_word *)structure;
    WEFT__CHAOS_POINT(weft__worker_current() ? weft__worker_current()->runtime->chaos_seed : 0,
                      "IO-W4");
    /* Full: pairs with IO-E2 and IO-C2 on the same word. */
    return weft__atomic_cas_full(word, (AO_t)wait, 0) == (AO_t)wait;
}

int weft__reactor_publish(weft__reactor *r, int fd, unsigned events, weft__io_waits *io) {
    io->count = 0;
    io->generation = 0;
    weft__io_slot *s = slot_of(r, fd, true);
    if (!s)
        return fd < 0 || (size_t)fd / WEFT__SLOTS_PER_CHUNK >= r->chunk_count ? -EBADF : -ENOMEM;
    uint64_t chaos = r->runtime->chaos_seed;
    (void)chaos;
    AO_t g;
    int rc = register_fd(r, s, fd, &g);
    if (rc == -EPERM)
        return (int)events; /* a regular file: always ready, as poll(2) says */
    if (rc < 0)
        return rc;
    WEFT__CHAOS_POINT(chaos, "IO-W1");
    io->generation = g;
    /* (IO-W2) */
    unsigned ready = 0, consumed = 0;
    bool busy = false;
    for (int d = 0; d < 2; d++) {
        unsigned bit = d == WEFT__DIR_IN ? WEFT_IN : WEFT_OUT;
        if (!(events & bit))
            continue;
        weft__wait *wait = &io->waits[d];
        weft__wait_init(wait);
        wait->kind = WEFT__WAITING_FD; /* for a dump */
        wait->object = (uint64_t)fd << 2 | events;
        wait->tag = g;
        wait->thread_word = io->thread_word;
        weft__atomic_word *word = &s->waiter[d];
        AO_t old = weft__atomic_load_acquire(word);
        for (;;) {
            AO_t next;
            if (old == ready_mark(low32(g)))
                next = 0; /* consume the edge */
            else if (old == 0 || is_ready_mark(old))
                next = (AO_t)wait; /* publish (WAIT-B1), over a stale mark */
            else {
                busy = true; /* another task's wait */
                break;
            }
            /* Full: pairs with IO-E2, IO-C2 and IO-C1 (then IO-W3's read). */
            AO_t seen = weft__atomic_cas_full(word, old, next);
            if (seen == old) {
                if (next == 0) {
                    ready |= bit;
                    consumed |= bit;
                } else {
                    io->published[io->count] = wait;
                    io->words[io->count++] = (void *)(uintptr_t)word;
                }
                break;
            }
            old = seen;
        }
    }
    WEFT__CHAOS_POINT(chaos, "IO-W2");
    /* (IO-W3) Dekker with IO-C1/IO-C2: our CAS above, then this read; their RMW, then
     * their read of our word. The fence makes "RMW, then load" a store-load order on
     * every architecture, not only where an acquire load is an RCsc LDAR (an LDAPR may
     * pass an earlier store-release; atomic.h). */
    weft__atomic_fence_full();
    bool closed = weft__atomic_load_acquire(&s->generation) != g;
    if (!busy && !ready && !closed && io->count > 0)
        return 0; /* published: the caller waits (IO-W4) */
    /* Take our waits back (or their deliveries, as a poll would). */
    size_t count = io->count;
    int delivered = count ? weft__wait_block_any(io->published, count, 0, weft__reactor_withdraw,
                                                 io->words)
                          : 0;
    io->count = 0;
    for (size_t i = 0; delivered > 0 && i < count; i++)
        if (weft__wait_delivered(io->published[i]) && io->published[i]->result > 0) {
            ready |= (unsigned)io->published[i]->result;
            consumed &= ~(unsigned)io->published[i]->result;
            if (busy || closed) /* not returned: leave the edge for the next wait */
                weft__reactor_keep_edge(io, i);
        }
    if (busy)
        return -EBUSY;
    if (ready & ~consumed)
        return (int)(ready & ~consumed);
    /* Nothing published: a consumed mark (it may predate the caller's try: "look
     * again", 0 with count 0), or closed. */
    return closed ? -ECANCELED : 0;
}

void weft__reactor_keep_edge(weft__io_waits *io, size_t i) {
    /* Full: as IO-E2; only over an empty word (a newer mark or wait stays). */
    (void)weft__atomic_cas_full((weft__atomic_word *)io->words[i], 0,
                                ready_mark(low32(io->generation)));
}

void weft__reactor_keep_ready(weft__reactor *r, int fd, const weft__io_waits *io,
                              unsigned ready) {
    weft__io_slot *s = slot_of(r, fd, false);
    for (int d = 0; s && d < 2; d++)
        if (ready & (d == WEFT__DIR_IN ? WEFT_IN : WEFT_OUT))
            /* Full: as IO-E2; only over an empty word (a newer mark or a wait stays). */
            (void)weft__atomic_cas_full(&s->waiter[d], 0, ready_mark(low32(io->generation)));
}

int weft__reactor_result(const weft__io_waits *io) {
    int result = 0;
    for (size_t i = 0; i < io->count; i++) {
        if (!weft__wait_delivered(io->published[i]))
            continue;
        int one = io->published[i]->result;
        if (one < 0)
            result = one; /* -ECANCELED: closed */
        else if (result >= 0)
            result |= one;
    }
    return result;
}

int weft__reactor_wait(weft__reactor *r, int fd, unsigned events, uint64_t deadline_ns) {
    weft__io_waits io;
    io.thread_word = NULL;
    int rc = weft__reactor_publish(r, fd, events, &io);
    if (rc != 0 || io.count == 0)
        return rc;
    /* (IO-W4) */
    rc = weft__wait_block_any(io.published, io.count, deadline_ns, weft__reactor_withdraw,
                              io.words);
    if (rc < 0)
        return rc;
    return weft__reactor_result(&io);
}

/* ---- The polling side ---------------------------------------------------------------- */

/* (IO-E1..E3) Delivers a poll's events. */
static void deliver_events(weft__reactor *r, const weft__poll_event *events, int n) {
    weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)events[i].data;
        uint32_t g32 = (uint32_t)(events[i].data >> 32);
        weft__io_slot *s = slot_of(r, fd, false);
        if (!s)
            continue;
        /* (IO-E1) Acquire: pairs with IO-C1 / IO-W1's RMW. A mismatch is confirmed under
         * the slot lock: a registration reports its first edge from inside epoll_ctl,
         * before it has bumped the generation (IO-W1 holds the lock from the add
         * through the bump), and that edge is the only one the task will get. */
        AO_t generation = weft__atomic_load_acquire(&s->generation);
        if (low32(generation) != g32) {
            /* Only a registration in progress (its add is in, its bump not yet) can
             * send an event one generation ahead; anything else is stale at once, and
             * waiting for the lock could mean waiting out weft_fd_close's close(2). */
            if (g32 != low32(generation + 1))
                continue;
            slot_lock(s);
            /* Relaxed: under the lock, which every writer of the generation holds. */
            bool stale = low32(weft__atomic_load_relaxed(&s->generation)) != g32;
            slot_unlock(s);
            if (stale)
                continue;
        }
        WEFT__CHAOS_POINT(r->runtime->chaos_seed, "IO-E1");
        for (int d = 0; d < 2; d++) {
            unsigned bit = d == WEFT__DIR_IN ? WEFT_IN : WEFT_OUT;
            if (!(events[i].ready & bit))
                continue;
            /* (IO-E2) */
            weft__wait *wait = take_wait_for_event(s, d, g32);
            if (!wait)
                continue;
            /* The wait is ours now (WAIT-D0): its tag may be read. */
            WEFT__CHAOS_POINT(r->runtime->chaos_seed, "IO-E2");
            /* (IO-E3) */
            weft__wait_deliver(wait, low32(wait->tag) == g32 ? (int)bit : 0, &batch);
        }
    }
    weft__wake_batch_finish(&batch);
}

/* The token's values: free, held for a poll that does not wait, held by a worker parked
 * in the poller. */
enum { WEFT__TOKEN_FREE = 0, WEFT__TOKEN_POLLING = 1, WEFT__TOKEN_PARKED = 2 };

static bool take_token(weft__reactor *r) {
    /* Acquire: pairs with the release in drop_token; one poller at a time. */
    return weft__atomic_load_relaxed(&r->token) == WEFT__TOKEN_FREE &&
           weft__atomic_cas_acquire(&r->token, WEFT__TOKEN_FREE, WEFT__TOKEN_POLLING) ==
               WEFT__TOKEN_FREE;
}

/* A parking worker's try for the token. A worker that only polls holds it for a few
 * microseconds and then goes back to its tasks, perhaps to a long one: a parking worker
 * that gave up at once would sleep on its futex while nobody watched the poller (found
 * by a cold review). So it waits out such a holder (bounded), and gives up at once
 * only to a holder parked in the poller, which will be there when the events come.
 * What remains is Tokio's weakness too: a parked holder that is woken for work and
 * then runs a long task leaves the poller unwatched meanwhile (Go's sysmon thread
 * covers that; weft has none). */
static bool take_token_to_park(weft__reactor *r) {
    unsigned rounds = 0;
    for (int tries = 0; tries < 64; tries++) {
        if (take_token(r))
            return true;
        /* Relaxed: a hint; the CAS above decides. */
        if (weft__atomic_load_relaxed(&r->token) == WEFT__TOKEN_PARKED)
            return false;
        weft__spin_wait(&rounds);
    }
    return false;
}
static void drop_token(weft__reactor *r) {
    weft__atomic_store_release(&r->token, WEFT__TOKEN_FREE);
}

static void count_poll(weft__io_driver *io, int n) {
    /* Relaxed: owner-written statistics. */
    weft__atomic_store_relaxed(&io->polls, weft__atomic_load_relaxed(&io->polls) + 1);
    weft__atomic_store_relaxed(&io->events, weft__atomic_load_relaxed(&io->events) + (AO_t)n);
    if (n > 0)
        weft__worker_trace(io->worker, WEFT__TRACE_IO, 0, (uint64_t)n, 0);
}

/* A poll that does not wait, delivering what it finds. */
static void poll_now(weft__io_driver *io) {
    weft__reactor *r = io->reactor;
    if (!weft__atomic_load_relaxed(&r->active) || !take_token(r)) /* relaxed: a hint */
        return;
    weft__poll_event events[WEFT__EVENTS_MAX];
    int n = weft__poller_wait(&r->poller, events, WEFT__EVENTS_MAX, 0);
    drop_token(r);
    count_poll(io, n);
    if (n > 0)
        deliver_events(r, events, n);
}

static void deliver_pending(weft__io_driver *io) {
    if (io->pending_count == 0)
        return;
    int n = io->pending_count;
    io->pending_count = 0;
    deliver_events(io->reactor, io->pending, n);
}

/* Counts a scheduling round; true every WEFT__POLL_INTERVAL-th while the reactor is in
 * use (a countdown: no division on every round, nothing at all while no fd was ever
 * registered). */
static bool poll_round(weft__io_driver *io) {
    /* Relaxed: a hint. The worker that ran the registering task saw its own store (or
     * one ordered before it by the task's switch to this worker), and it is the one that
     * must start polling; others learn it at their next round. */
    if (!weft__atomic_load_relaxed(&io->reactor->active))
        return false;
    if (--io->until_poll > 0)
        return false;
    io->until_poll = WEFT__POLL_INTERVAL;
    return true;
}

/* (driver op fire_due) Timers; events read by the last park; a poll every 61 rounds. */
static void io_fire_due(weft__driver *d) {
    weft__io_driver *io = (weft__io_driver *)d;
    io->inner->ops->fire_due(io->inner);
    deliver_pending(io);
    if (io->poll_due || poll_round(io)) {
        io->poll_due = false;
        poll_now(io);
    }
}

/* (driver op poll) The worker found nothing to run: look now. */
static void io_poll(weft__driver *d) {
    weft__io_driver *io = (weft__io_driver *)d;
    io->inner->ops->poll(io->inner);
    deliver_pending(io);
    poll_now(io);
}

/* (driver op has_due) Also true every 61st call while the reactor is in use: a task that
 * yields in a loop goes through the scheduler only when something is due (worker.c's
 * fast path), and must not keep its worker from polling (found by a cold review: a
 * reader on the same worker was never woken). */
static bool io_has_due(weft__driver *d) {
    weft__io_driver *io = (weft__io_driver *)d;
    if (io->pending_count > 0 || io->poll_due)
        return true;
    if (poll_round(io)) {
        io->poll_due = true;
        return true;
    }
    return io->inner->ops->has_due(io->inner);
}

static uint64_t io_next_deadline(weft__driver *d) {
    weft__io_driver *io = (weft__io_driver *)d;
    return io->inner->ops->next_deadline(io->inner);
}

/* (driver op park) In the poller if this worker can take the token, else on the futex. */
static void io_park(weft__driver *d, weft__atomic_u32 *wake_word, uint64_t deadline_ns) {
    weft__io_driver *io = (weft__io_driver *)d;
    weft__reactor *r = io->reactor;
    if (io->pending_count > 0 || io->poll_due)
        return; /* deliver (or poll) first */
    if (!weft__atomic_load_relaxed(&r->active) || !take_token_to_park(r)) { /* a hint */
        io->inner->ops->park(io->inner, wake_word, deadline_ns);
        return;
    }
    weft__atomic_store_relaxed(&r->token, WEFT__TOKEN_PARKED); /* ours: a hint for others */
    /* (IO-K1) */
    weft__atomic_u32_store_release(&io->in_poller, 1);
    weft__atomic_fence_full();
    WEFT__CHAOS_POINT(r->runtime->chaos_seed, "IO-K1");
    if (weft__atomic_u32_load_acquire(wake_word) == 0) {
        int n = weft__poller_wait(&r->poller, io->pending, WEFT__EVENTS_MAX, deadline_ns);
        count_poll(io, n);
        io->pending_count = n;
    }
    /* Release: a waker that still sees 1 kicks the eventfd, which is harmless (the next
     * wait returns at once and drains it); one that sees 0 futex-wakes wake_word. */
    weft__atomic_u32_store_release(&io->in_poller, 0);
    drop_token(r);
}

/* (driver op unpark) Any thread; the caller has set *wake_word (release). */
static void io_unpark(weft__driver *d, weft__atomic_u32 *wake_word) {
    weft__io_driver *io = (weft__io_driver *)d;
    /* (IO-K2) The fence orders the caller's store of wake_word before our read. */
    weft__atomic_fence_full();
    WEFT__CHAOS_POINT(io->reactor->runtime->chaos_seed, "IO-K2");
    if (weft__atomic_u32_load_acquire(&io->in_poller))
        weft__poller_kick(&io->reactor->poller);
    else
        io->inner->ops->unpark(io->inner, wake_word);
}

static void io_destroy(weft__driver *d) {
    weft__io_driver *io = (weft__io_driver *)d;
    io->inner->ops->destroy(io->inner);
    weft__free(io, sizeof(*io));
}

static const weft__driver_ops io_driver_ops = {
    .fire_due = io_fire_due,
    .poll = io_poll,
    .has_due = io_has_due,
    .next_deadline = io_next_deadline,
    .park = io_park,
    .unpark = io_unpark,
    .destroy = io_destroy,
};

weft__driver *weft__io_driver_create(weft__reactor *r, weft__worker *w, weft__driver *inner) {
    weft__io_driver *io = weft__alloc(sizeof(*io), 64); /* zeroed */
    if (!io)
        return NULL;
    io->driver.ops = &io_driver_ops;
    io->inner = inner;
    io->reactor = r;
    io->worker = w;
    io->until_poll = WEFT__POLL_INTERVAL;
    r->drivers[w->index] = io;
    return &io->driver;
}

/* ---- The reactor's life, and weft_fd_close ----------------------------------------- */

weft__reactor *weft__reactor_create(weft_runtime *rt) {
    weft__reactor *r = weft__alloc(sizeof(*r), 64);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    struct rlimit limit;
    size_t fds = WEFT__MAX_FDS;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY &&
        limit.rlim_max < fds)
        fds = (size_t)limit.rlim_max;
    r->chunk_count = (fds + WEFT__SLOTS_PER_CHUNK - 1) / WEFT__SLOTS_PER_CHUNK;
    r->runtime = rt;
    r->chunks = weft__alloc(sizeof(*r->chunks) * r->chunk_count, 64);
    r->drivers = weft__alloc(sizeof(*r->drivers) * rt->worker_count, 64);
    int rc = -ENOMEM;
    if (!r->chunks || !r->drivers || (rc = weft__poller_init(&r->poller)) != 0) {
        if (r->chunks)
            weft__free((void *)(uintptr_t)r->chunks, sizeof(*r->chunks) * r->chunk_count);
        if (r->drivers)
            weft__free(r->drivers, sizeof(*r->drivers) * rt->worker_count);
        weft__free(r, sizeof(*r));
        errno = -rc;
        return NULL;
    }
    pthread_mutex_init(&r->grow_lock, NULL);
    pthread_rwlock_wrlock(&every_reactor_lock);
    r->next = every_reactor;
    r->prev_next = &every_reactor;
    if (every_reactor)
        every_reactor->prev_next = &r->next;
    every_reactor = r;
    pthread_rwlock_unlock(&every_reactor_lock);
    return r;
}

void weft__reactor_destroy(weft__reactor *r) {
    /* Out of the list first: a weft_fd_close after this no longer reaches us, and one in
     * progress holds the read lock, which we wait for. */
    pthread_rwlock_wrlock(&every_reactor_lock);
    *r->prev_next = r->next;
    if (r->next)
        r->next->prev_next = r->prev_next;
    pthread_rwlock_unlock(&every_reactor_lock);
    for (size_t i = 0; i < r->chunk_count; i++) {
        void *chunk = weft__atomic_load_ptr_acquire(&r->chunks[i]);
        if (chunk)
            weft__free(chunk, sizeof(weft__io_slot) * WEFT__SLOTS_PER_CHUNK);
    }
    weft__free((void *)(uintptr_t)r->chunks, sizeof(*r->chunks) * r->chunk_count);
    weft__free(r->drivers, sizeof(*r->drivers) * r->runtime->worker_count);
    weft__poller_destroy(&r->poller);
    pthread_mutex_destroy(&r->grow_lock);
    weft__free(r, sizeof(*r));
}

int weft__reactor_close(int fd) {
    weft__io_slot *inline_slots[8], **slots = inline_slots;
    weft_runtime *inline_runtimes[8], **runtimes = inline_runtimes;
    size_t count = 0, capacity = 8;
    pthread_rwlock_rdlock(&every_reactor_lock);
    for (weft__reactor *r = every_reactor; r; r = r->next)
        count++;
    if (count > capacity) {
        slots = malloc(sizeof(*slots) * count);
        runtimes = malloc(sizeof(*runtimes) * count);
        if (!slots || !runtimes) { /* then one reactor at a time: the best we can do */
            free(slots);
            free(runtimes);
            slots = inline_slots;
            runtimes = inline_runtimes;
            count = 0;
        } else {
            capacity = count;
        }
    }
    /* (IO-C1) Every reactor's slot, locked before the close(2) below and released after
     * it: a registration that slipped in between would add the old file to the poller
     * anew (after IO-C3 removed it) and wait on it after it was closed, for ever. So
     * the slots are created if need be, and locked in the list's order (one order for
     * every closer; a registration holds one slot lock only). */
    size_t locked = 0;
    for (weft__reactor *r = every_reactor; r && locked < capacity; r = r->next) {
        weft__io_slot *s = slot_of(r, fd, true);
        if (!s)
            continue; /* beyond its table, or no memory: nothing of fd can be in it */
        slot_lock(s);
        slots[locked] = s;
        runtimes[locked++] = r->runtime;
        weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
        /* Full: pairs with IO-W3 (after IO-W2's CAS) and with IO-E1's acquire. */
        weft__atomic_fetch_add_full(&s->generation, 1);
        WEFT__CHAOS_POINT(r->runtime->chaos_seed, "IO-C1");
        /* (IO-C2) */
        cancel_waits(s, &batch);
        /* (IO-C3) */
        weft__poller_remove(&r->poller, fd);
        weft__wake_batch_finish(&batch);
    }
    int rc = close(fd) == 0 || errno == EINTR ? 0 : -errno; /* Linux: closed even on EINTR */
    WEFT__CHAOS_POINT(locked ? runtimes[0]->chaos_seed : 0, "IO-C3");
    for (size_t i = 0; i < locked; i++)
        slot_unlock(slots[i]);
    pthread_rwlock_unlock(&every_reactor_lock);
    if (slots != inline_slots) {
        free(slots);
        free(runtimes);
    }
    return rc;
}

void weft__reactor_worker_stats(weft__reactor *r, unsigned index, uint64_t *polls,
                                uint64_t *events) {
    *polls = *events = 0;
    if (!r->drivers[index])
        return;
    /* Relaxed: statistics. */
    *polls = weft__atomic_load_relaxed(&r->drivers[index]->polls);
    *events = weft__atomic_load_relaxed(&r->drivers[index]->events);
}
