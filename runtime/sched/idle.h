/*
 * park.h: which workers are idle, and waking them: searching, parking and the
 * one-searcher-at-a-time wake-up rule. The protocol is written out in idle.c.
 */
#ifndef WEFT__SCHED_IDLE_H
#define WEFT__SCHED_IDLE_H

#include "base/atomic.h"

#include <pthread.h>
#include <stdbool.h>

typedef struct weft__idle {
    /* Low 32 bits: workers searching for work (stealing). High 32 bits: workers not
     * parked. Changed only by full-barrier RMWs; see idle.c. */
    weft__atomic_word state;
    pthread_mutex_t lock;
    unsigned *sleepers;     /* under lock: a stack of parked worker indices */
    unsigned sleeper_count; /* under lock */
    unsigned worker_count;  /* immutable */
} weft__idle;

int weft__idle_init(weft__idle *idle, unsigned worker_count);
void weft__idle_destroy(weft__idle *idle);

/* A worker that ran dry asks to search. False when half the workers already search
 * (more searchers would only contend on the same queues). */
bool weft__idle_begin_searching(weft__idle *idle);

/* A searcher that found work stops searching. True if it was the last searcher: then
 * the caller must wake a sleeper (weft__idle_claim_sleeper, then unpark the worker it
 * names) so that someone searches for the rest. */
bool weft__idle_end_searching(weft__idle *idle);

/* (IDLE-P1) A worker about to sleep: leaves the unparked (and searching) count and puts
 * itself on the sleepers list. The caller must then re-check every queue (IDLE-P2) and wake
 * a sleeper if it finds work. */
void weft__idle_prepare_park(weft__idle *idle, unsigned index, bool searching);

/* (IDLE-N2, IDLE-N3) After new work was made visible (IDLE-N1): if no worker searches and one
 * sleeps, takes one sleeper off the list, counts it as unparked and searching, and returns its
 * index (the caller then wakes it); else returns -1. */
int weft__idle_claim_sleeper(weft__idle *idle);

/* A parked worker that wakes on its own (its timers are due) takes itself off the
 * sleepers list and counts as unparked, not searching. False if a submitter claimed it
 * meanwhile: then its wake-up word is about to be set, and it counts as searching. */
bool weft__idle_unpark_self(weft__idle *idle, unsigned index);

#endif /* WEFT__SCHED_IDLE_H */
