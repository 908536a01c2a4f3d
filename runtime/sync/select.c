/*
 * select.c: weft_select: wait on several channel operations and fds at once, perform
 * exactly one. Owns nothing beyond one call: the select's state and its waiters live on
 * the caller's stack.
 *
 *   (SELECT-1) Poll: in a random order (Go's fairness among ready cases), try each case
 *        without waiting (a channel's lock; poll(2) for an fd). The first that can
 *        proceed is performed: done.
 *   (SELECT-2) Queue: in the same order, under each channel's lock, look again and, if
 *        the case can proceed now, claim the select for it and perform it (a waker may
 *        have claimed it first through a case queued earlier: then stop); else queue a
 *        waiter for the case (SYNC-Q1). An fd case publishes its waits (IO-W1..W3).
 *   (SELECT-3) Park until any waiter is delivered or the deadline (WAIT-B2), then settle
 *        every waiter (WAIT-B3: withdraw, or wait for the waker that took it).
 *   (SELECT-4) The winner: the case whose claim succeeded (a channel's waker performed
 *        it and delivered its result). No claim: an fd case that was delivered a
 *        readiness wins (nobody can claim any more: every waiter is settled); a
 *        readiness delivered to an fd case that lost goes back to its fd. Nothing at
 *        all: -ETIMEDOUT, or a spurious fd wake-up ("look again"), which starts over.
 *
 * The claim (chan.h, weft__select_claim) is one CAS on the select's `winner`: a channel
 * waker makes it under its channel's lock before it copies, so exactly one case is
 * performed; a waker that loses pops the waiter all the same and delivers it LOST.
 *
 * A plain thread has no reactor: its fd cases are polled every millisecond while it
 * sleeps on its channel waiters (documented in weft.h).
 */
#include "io/reactor.h"
#include "sched/runtime.h"
#include "sync/chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WEFT__THREAD_FD_POLL_NS 1000000u

static bool chan_case(const weft_case *c) {
    return c->kind == WEFT_CASE_SEND || c->kind == WEFT_CASE_RECV;
}

static int validate(const weft_case *cases, size_t n, uint64_t deadline_ns, size_t *used) {
    if (n > WEFT_SELECT_MAX || (!cases && n > 0))
        return -EINVAL;
    *used = 0;
    for (size_t i = 0; i < n; i++) {
        const weft_case *c = &cases[i];
        if (c->kind == 0)
            continue;
        if (chan_case(c)) {
            if (!c->chan || !c->elem)
                return -EINVAL;
        } else if (c->kind == WEFT_CASE_FD) {
            if (c->fd < 0 || c->events == 0 || (c->events & ~(WEFT_IN | WEFT_OUT)))
                return -EINVAL;
        } else {
            return -EINVAL;
        }
        (*used)++;
    }
    if (*used == 0 && deadline_ns == WEFT_FOREVER)
        return -EINVAL; /* nothing to wait for, for ever */
    return 0;
}

/* Under ch's lock: performs the case if it can now. */
static bool try_case_locked(weft_case *c, int *rc, weft__waiter_list *out, weft__select *self) {
    return c->kind == WEFT_CASE_SEND ? weft__chan_send_locked(c->chan, c->elem, rc, out, self)
                                     : weft__chan_recv_locked(c->chan, c->elem, rc, out, self);
}

/* (SELECT-1) */
static int poll_all(weft_case *cases, const unsigned *order, size_t used) {
    for (size_t k = 0; k < used; k++) {
        weft_case *c = &cases[order[k]];
        if (chan_case(c)) {
            weft__waiter_list out = {NULL, NULL};
            int rc;
            weft__qlock(&c->chan->lock);
            bool done = try_case_locked(c, &rc, &out, NULL);
            weft__qunlock(&c->chan->lock);
            weft__waiter_list_deliver_outcomes(&out);
            if (done) {
                c->result = rc;
                return (int)order[k];
            }
        } else {
            int ready = weft__fd_poll_once(c->fd, c->events);
            if (ready != 0) {
                c->result = ready; /* a mask, or -EBADF */
                return (int)order[k];
            }
        }
    }
    return -1;
}

/* What weft__wait_block_any's withdraw is given for each wait. */
typedef struct select_site {
    bool is_fd;
    weft__waitq_site queue; /* a channel case's */
    void *word;             /* an fd case's slot word */
} select_site;

/* Scratch of one case, and of one wait (a case has one, an fd case up to two). */
typedef struct select_slot {
    weft__waiter chan_waiter;
    weft__io_waits io;
} select_slot;
typedef struct select_wait {
    select_site site;
    weft__wait *wait;
    unsigned case_index;
} select_wait;
#define WEFT__SELECT_INLINE 4

static bool withdraw_any(weft__wait *wait, void *structure) {
    select_site *site = structure;
    return site->is_fd ? weft__reactor_withdraw(wait, site->word)
                       : weft__waitq_withdraw(wait, &site->queue);
}

static uint64_t next_random(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* One round of SELECT-2..4: the index of the case performed, or -1 (look again), or a
 * negative errno (-ETIMEDOUT, -EBUSY, -ENOMEM) encoded below -1. */
static int wait_round(weft_case *cases, const unsigned *order, size_t used, uint64_t deadline_ns,
                      weft__reactor *reactor) {
    weft__select self = {WEFT__SELECT_NONE};
    /* Scratch per case (in `order`'s positions) and per wait (at most two per case):
     * on the stack for a few cases, else in one heap block, so that a select in a task
     * with a small stack (16 KiB) costs about 2 KiB of it (a cold review found 20 KiB
     * with arrays for 64 cases). */
    select_slot inline_slots[WEFT__SELECT_INLINE];
    select_wait inline_waits[2 * WEFT__SELECT_INLINE];
    weft__wait *inline_wait_list[2 * WEFT__SELECT_INLINE];
    void *inline_structures[2 * WEFT__SELECT_INLINE];
    select_slot *slots = inline_slots;
    select_wait *wait_info = inline_waits;
    weft__wait **waits = inline_wait_list;
    void **structures = inline_structures;
    void *heap = NULL;
    if (used > WEFT__SELECT_INLINE) {
        size_t waits_max = 2 * used;
        heap = malloc(sizeof(*slots) * used + (sizeof(*wait_info) + sizeof(*waits) +
                                               sizeof(*structures)) * waits_max);
        if (!heap)
            return -ENOMEM - 1;
        slots = heap;
        wait_info = (select_wait *)(slots + used);
        waits = (weft__wait **)(wait_info + waits_max);
        structures = (void **)(waits + waits_max);
    }
    for (size_t k = 0; k < used; k++)
        slots[k].io.count = 0; /* fd cases SELECT-2 never reaches publish nothing */
    size_t count = 0;
    weft__atomic_u32 thread_word;
    weft__atomic_u32_store_release(&thread_word, 0); /* published with the waiters (lock) */
    bool is_task = weft__worker_current_task(NULL) != NULL;
    int performed = -1, error = 0;
    bool thread_has_fd = false, look_again = false;
    /* (SELECT-2) */
    for (size_t k = 0; k < used && performed < 0 && !error && !look_again; k++) {
        unsigned i = order[k];
        weft_case *c = &cases[i];
        if (chan_case(c)) {
            weft__waiter *w = &slots[k].chan_waiter;
            weft__waiter_init(w);
            w->wait.thread_word = is_task ? NULL : &thread_word;
            w->elem = c->elem;
            w->select = &self;
            w->case_index = i;
            weft__waiter_list *queue = c->kind == WEFT_CASE_SEND ? &c->chan->senders
                                                                 : &c->chan->receivers;
            weft__waiter_list out = {NULL, NULL};
            weft__qlock(&c->chan->lock);
            int rc;
            /* Can it proceed now? Only if we still may claim: then perform it. */
            /* Acquire: pairs with a waker's full claim CAS (what it copied is visible). */
            if (weft__atomic_load_acquire(&self.winner) != WEFT__SELECT_NONE) {
                weft__qunlock(&c->chan->lock);
                break; /* a waker won through an earlier case */
            }
            bool can = c->kind == WEFT_CASE_SEND
                           ? (c->chan->closed || c->chan->count < c->chan->capacity ||
                              !weft__waiter_list_empty(&c->chan->receivers))
                           : (c->chan->count > 0 || c->chan->closed ||
                              !weft__waiter_list_empty(&c->chan->senders));
            if (can && weft__select_claim(&self, i)) {
                if (try_case_locked(c, &rc, &out, &self)) {
                    c->result = rc;
                    performed = (int)i;
                } else {
                    /* Only our own waiters were there, or losers: undo the claim. */
                    weft__atomic_store_release(&self.winner, WEFT__SELECT_NONE);
                    can = false;
                }
            } else if (can) {
                weft__qunlock(&c->chan->lock);
                weft__waiter_list_deliver_outcomes(&out);
                break; /* a waker won meanwhile */
            }
            if (!can) {
                weft__waitq_push(&c->chan->lock, queue, w);
                WEFT__SYNC_CHAOS_POINT("SELECT-2");
                wait_info[count] = (select_wait){
                    .site = {.is_fd = false, .queue = {&c->chan->lock, queue}},
                    .wait = &w->wait,
                    .case_index = i};
                count++;
            }
            weft__qunlock(&c->chan->lock);
            weft__waiter_list_deliver_outcomes(&out);
        } else if (reactor) {
            /* Acquire: as above. */
            if (weft__atomic_load_acquire(&self.winner) != WEFT__SELECT_NONE)
                break; /* a waker won through an earlier case: publish nothing more */
            weft__io_waits *io = &slots[k].io;
            io->thread_word = NULL;
            int rc = weft__reactor_publish(reactor, c->fd, c->events, io);
            if (rc > 0 || rc == -ECANCELED || rc == -EBADF) {
                if (weft__select_claim(&self, i)) {
                    c->result = rc;
                    performed = (int)i;
                } else if (rc > 0) { /* a waker won: the readiness goes back to the fd */
                    weft__reactor_keep_ready(reactor, c->fd, io, (unsigned)rc);
                }
            } else if (rc < 0) {
                error = rc; /* -EBUSY, -ENOMEM */
            } else if (io->count == 0) {
                look_again = true; /* a consumed mark: look again from the poll */
            }
            for (size_t j = 0; j < io->count; j++) {
                wait_info[count] = (select_wait){.site = {.is_fd = true, .word = io->words[j]},
                                                 .wait = io->published[j],
                                                 .case_index = i};
                count++;
            }
        } else {
            thread_has_fd = true;
        }
    }
    for (size_t j = 0; j < count; j++) {
        waits[j] = wait_info[j].wait;
        structures[j] = &wait_info[j].site;
    }
    /* (SELECT-3) Park, unless the round already decided (then a poll settles the rest). */
    bool decided = performed >= 0 || error || look_again ||
                   weft__atomic_load_acquire(&self.winner) != WEFT__SELECT_NONE;
    uint64_t until = decided ? 0 : deadline_ns;
    if (thread_has_fd && !decided) { /* a thread polls its fd cases now and then */
        uint64_t soon = weft_now() + WEFT__THREAD_FD_POLL_NS;
        if (soon < until)
            until = soon;
    }
    if (count) { /* for a dump: the select, not its first case */
        waits[0]->kind = WEFT__WAITING_SELECT;
        waits[0]->object = used;
    }
    int rc = count ? weft__wait_block_any(waits, count, until, withdraw_any, structures) : 0;
    if (!count && !decided && until != WEFT_FOREVER) {
        /* Nothing queued (only a thread's fd cases, or none): a sleep, which a cancel
         * ends (the only error it can have here, with a deadline; -ENOMEM looks again). */
        if (weft_sleep_until(until) == -ECANCELED)
            rc = -ECANCELED;
    }
    for (size_t j = 0; j < count; j++) /* every waiter settled: leave their channels */
        if (!wait_info[j].site.is_fd)
            weft__qleave(wait_info[j].site.queue.lock);
    WEFT__SYNC_CHAOS_POINT("SELECT-3");
    /* (SELECT-4) */
    AO_t winner = weft__atomic_load_acquire(&self.winner);
    if (winner != WEFT__SELECT_NONE && performed < 0) {
        for (size_t j = 0; j < count; j++)
            if (wait_info[j].case_index == winner && !wait_info[j].site.is_fd &&
                weft__wait_delivered(wait_info[j].wait))
                cases[winner].result = wait_info[j].wait->result;
        performed = (int)winner;
    }
    /* fd cases: a readiness for the winner, or kept for the fd. */
    for (size_t k = 0; k < used; k++) {
        unsigned i = order[k];
        if (cases[i].kind != WEFT_CASE_FD || !reactor || slots[k].io.count == 0)
            continue;
        weft__io_waits *io = &slots[k].io;
        int result = weft__reactor_result(io);
        if (result != 0 && performed < 0) {
            performed = (int)i; /* every waiter is settled: nobody else can claim */
            cases[i].result = result;
            continue;
        }
        if (performed != (int)i)
            for (size_t j = 0; j < io->count; j++)
                if (weft__wait_delivered(io->published[j]) && io->published[j]->result > 0)
                    weft__reactor_keep_edge(io, j);
    }
    free(heap);
    if (performed >= 0)
        return performed;
    if (error < 0)
        return error - 1;
    if (rc < 0 && rc != -ETIMEDOUT)
        return rc - 1;
    /* Nothing performed: a consumed mark, a spurious fd wake-up (delivered, no winner),
     * or a thread's fd poll interval: look again; else the deadline passed. */
    if (look_again || rc > 0 ||
        (thread_has_fd && (deadline_ns == WEFT_FOREVER || weft_now() < deadline_ns)))
        return -1;
    return -ETIMEDOUT - 1;
}

WEFT_API int weft_select(weft_case *cases, size_t n, uint64_t deadline_ns) {
    size_t used;
    int rc = validate(cases, n, deadline_ns, &used);
    if (rc)
        return rc;
    if ((rc = weft__cancel_point()) != 0)
        return rc; /* a cancellation point: at once (weft.h) */
    unsigned order[WEFT_SELECT_MAX];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (cases[i].kind)
            order[m++] = (unsigned)i;
    static _Thread_local uint64_t random_state;
    if (!random_state)
        random_state = weft_now() | 1;
    for (size_t i = m; i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)(next_random(&random_state) % i);
        unsigned t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    weft__worker *w;
    weft_task *self = weft__worker_current_task(&w);
    weft__reactor *reactor = self ? w->runtime->reactor : NULL;
    for (;;) {
        int index = poll_all(cases, order, used); /* (SELECT-1) */
        if (index >= 0)
            return index;
        if (deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns)
            return -ETIMEDOUT;
        WEFT__SYNC_CHAOS_POINT("SELECT-1");
        int got = wait_round(cases, order, used, deadline_ns, reactor);
        if (got >= 0)
            return got;
        if (got < -1)
            return got + 1;
        /* -1: look again (from the poll). */
    }
}
