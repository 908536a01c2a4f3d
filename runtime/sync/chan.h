/*
 * chan.h: channels (chan.c) as select (select.c) sees them: the operations that run
 * under a channel's lock, and the claim that makes a select perform one case only.
 */
#ifndef WEFT__SYNC_CHAN_H
#define WEFT__SYNC_CHAN_H

#include "sync/waitq.h"

#include <stdbool.h>

/* A select in progress, on its task's (or thread's) stack: which case won. */
struct weft__select {
    weft__atomic_word winner; /* WEFT__SELECT_NONE, or the index of the case performed */
};
#define WEFT__SELECT_NONE ((AO_t)-1)
/* The outcome a waker delivers to a select's waiter whose select another case won. */
#define WEFT__SELECT_LOST (-0x7fffffff)

typedef struct weft__select weft__select;

struct weft_chan {
    /* A counted lock (sync/waitq.h): guards everything below, and counts the waiters
     * inside a call, which weft_chan_destroy waits out. */
    weft__atomic_word lock;
    size_t elem_size, capacity;
    size_t head, count; /* the ring: `count` elements from `head` */
    bool closed;
    weft__waiter_list senders, receivers;
    unsigned char *buffer; /* capacity * elem_size bytes; NULL when unbuffered */
};

/* Under ch->lock: sends elem now if it can (to a waiting receiver, into the buffer, or
 * not at all: closed gives -EPIPE). True if done (*rc: 0 or -EPIPE). Waiters it popped
 * go to `out` with their outcome, for delivery after the unlock. */
bool weft__chan_send_locked(weft_chan *ch, const void *elem, int *rc, weft__waiter_list *out,
                            weft__select *self);
/* Likewise for a receive into elem. `self`: the select calling, whose own queued cases
 * are skipped (NULL: none). */
bool weft__chan_recv_locked(weft_chan *ch, void *elem, int *rc, weft__waiter_list *out,
                            weft__select *self);

/* Claims select s for case `index`; true if this call won (the case may be performed). */
static inline bool weft__select_claim(weft__select *s, unsigned index) {
    /* Full: one winner among the wakers and the selecting task itself; the winner's
     * transfer is ordered after it. */
    return weft__atomic_cas_full(&s->winner, WEFT__SELECT_NONE, (AO_t)index) ==
           WEFT__SELECT_NONE;
}

#endif /* WEFT__SYNC_CHAN_H */
