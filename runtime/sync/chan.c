/*
 * chan.c: weft_chan, Go's channels: a ring of elements, a FIFO of blocked senders and one
 * of blocked receivers, all under one spin lock per channel. Owns the channel object.
 *
 * A send hands its element straight to the oldest waiting receiver if there is one,
 * else puts it in the ring if there is room, else queues itself with a pointer to its
 * element (SYNC-Q1); a receive takes the ring's oldest element (and refills the ring
 * from the oldest waiting sender), else takes the oldest waiting sender's element, else
 * queues itself with a pointer to where the element goes. The copy is made by whoever
 * finds the partner waiting, under the lock, before the partner is delivered (SYNC-W1/
 * W2): a woken sender's element has been taken, a woken receiver's has arrived.
 *
 * Select: a waiter that is one case of a select (select.c) is served only if its select
 * has not been won by another case: the server claims it (weft__select_claim) under the
 * channel's lock before it copies; a loser is popped all the same and delivered
 * WEFT__SELECT_LOST (its select is being settled anyway), and the server moves on to
 * the next waiter.
 *
 * Close: under the lock, marks the channel closed and takes every waiter: all get
 * -EPIPE (a select's waiter only if it wins its select). Buffered elements stay for the
 * receivers.
 */
#include "sync/chan.h"

#include "base/memory.h"

#include <errno.h>
#include <string.h>

static unsigned char *slot(weft_chan *ch, size_t i) {
    return ch->buffer + ((ch->head + i) % ch->capacity) * ch->elem_size;
}

/* Pops waiters of `list` until one may be served (not a select another case won, and
 * not one of `self`'s own cases: a select never pairs with itself); the lost ones go to
 * `out`. */
static weft__waiter *pop_servable(weft__waiter_list *list, weft__waiter_list *out,
                                  weft__select *self) {
    weft__waiter *w = list->head;
    while (w) {
        weft__waiter *next = w->next;
        if (self && w->select == self) {
            w = next;
            continue;
        }
        weft__waiter_list_remove(list, w);
        if (!w->select || weft__select_claim(w->select, w->case_index))
            return w;
        w->outcome = WEFT__SELECT_LOST;
        weft__waiter_list_append_popped(out, w);
        w = next;
    }
    return NULL;
}

bool weft__chan_send_locked(weft_chan *ch, const void *elem, int *rc, weft__waiter_list *out,
                            weft__select *self) {
    if (ch->closed) {
        *rc = -EPIPE;
        return true;
    }
    weft__waiter *r = pop_servable(&ch->receivers, out, self);
    if (r) {
        memcpy(r->elem, elem, ch->elem_size);
        r->outcome = 0;
        weft__waiter_list_append_popped(out, r);
        *rc = 0;
        return true;
    }
    if (ch->count < ch->capacity) {
        memcpy(slot(ch, ch->count), elem, ch->elem_size);
        ch->count++;
        *rc = 0;
        return true;
    }
    return false;
}

bool weft__chan_recv_locked(weft_chan *ch, void *elem, int *rc, weft__waiter_list *out,
                            weft__select *self) {
    if (ch->count > 0) {
        memcpy(elem, slot(ch, 0), ch->elem_size);
        ch->head = (ch->head + 1) % ch->capacity;
        ch->count--;
        weft__waiter *s = pop_servable(&ch->senders, out, self); /* its element refills the ring */
        if (s) {
            memcpy(slot(ch, ch->count), s->elem, ch->elem_size);
            ch->count++;
            s->outcome = 0;
            weft__waiter_list_append_popped(out, s);
        }
        *rc = 0;
        return true;
    }
    weft__waiter *s = pop_servable(&ch->senders, out, self);
    if (s) {
        memcpy(elem, s->elem, ch->elem_size);
        s->outcome = 0;
        weft__waiter_list_append_popped(out, s);
        *rc = 0;
        return true;
    }
    if (ch->closed) {
        *rc = -EPIPE;
        return true;
    }
    return false;
}

WEFT_API int weft_chan_create(size_t elem_size, size_t capacity, weft_chan **out) {
    if (!out || elem_size == 0 || elem_size > WEFT_CHAN_ELEM_MAX || capacity > WEFT_CHAN_CAPACITY_MAX)
        return -EINVAL;
    size_t bytes;
    if (__builtin_mul_overflow(elem_size, capacity, &bytes))
        return -ENOMEM;
    weft_chan *ch = weft__alloc(sizeof(*ch), 64); /* zeroed: empty lists, unlocked */
    if (!ch)
        return -ENOMEM;
    if (capacity && !(ch->buffer = weft__alloc(bytes, 16))) {
        weft__free(ch, sizeof(*ch));
        return -ENOMEM;
    }
    ch->elem_size = elem_size;
    ch->capacity = capacity;
    *out = ch;
    return 0;
}

/* send (is_send) or receive, waiting until deadline_ns; `wait` false: try only. */
static int transfer(weft_chan *ch, void *elem, bool is_send, uint64_t deadline_ns, bool wait) {
    if (!ch || !elem)
        return -EINVAL;
    if (wait) {
        int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
        if (cancelled)
            return cancelled;
    }
    weft__waiter_list out = {NULL, NULL};
    int rc;
    weft__waiter w;
    weft__waiter_list *queue = is_send ? &ch->senders : &ch->receivers;
    /* (SYNC-Q1) */
    weft__qlock(&ch->lock);
    bool done = is_send ? weft__chan_send_locked(ch, elem, &rc, &out, NULL)
                        : weft__chan_recv_locked(ch, elem, &rc, &out, NULL);
    bool queued = false;
    if (!done && wait && (deadline_ns == WEFT_FOREVER || weft_now() < deadline_ns)) {
        weft__waiter_init(&w);
        w.wait.kind = is_send ? WEFT__WAITING_CHAN_SEND : WEFT__WAITING_CHAN_RECV; /* a dump's */
        w.wait.object = (uint64_t)(uintptr_t)ch;
        w.elem = elem;
        weft__waitq_push(&ch->lock, queue, &w);
        queued = true;
        WEFT__SYNC_CHAOS_POINT("SYNC-Q1"); /* queued, the lock still held */
    }
    weft__qunlock(&ch->lock);
    weft__waiter_list_deliver_outcomes(&out); /* (SYNC-W2) */
    if (done)
        return rc;
    if (!queued)
        return wait ? -ETIMEDOUT : -EAGAIN;
    /* (SYNC-Q2) */
    weft__waitq_site site = {&ch->lock, queue};
    return weft__waitq_block(&w, &site, deadline_ns);
}

WEFT_API int weft_chan_send(weft_chan *ch, const void *elem, uint64_t deadline_ns) {
    return transfer(ch, (void *)elem, true, deadline_ns, true);
}

WEFT_API int weft_chan_recv(weft_chan *ch, void *elem, uint64_t deadline_ns) {
    return transfer(ch, elem, false, deadline_ns, true);
}

WEFT_API int weft_chan_try_send(weft_chan *ch, const void *elem) {
    return transfer(ch, (void *)elem, true, 0, false);
}

WEFT_API int weft_chan_try_recv(weft_chan *ch, void *elem) {
    return transfer(ch, elem, false, 0, false);
}

/* (close) Takes every waiter of `list`: -EPIPE, or lost for a select another case won. */
static void take_all_closed(weft__waiter_list *list, weft__waiter_list *out) {
    weft__waiter *w;
    while ((w = weft__waiter_list_pop(list))) {
        bool serve = !w->select || weft__select_claim(w->select, w->case_index);
        w->outcome = serve ? -EPIPE : WEFT__SELECT_LOST;
        weft__waiter_list_append_popped(out, w);
    }
}

WEFT_API int weft_chan_close(weft_chan *ch) {
    if (!ch)
        return -EINVAL;
    weft__waiter_list out = {NULL, NULL};
    weft__qlock(&ch->lock);
    bool was_closed = ch->closed;
    if (!was_closed) {
        ch->closed = true;
        take_all_closed(&ch->senders, &out);
        take_all_closed(&ch->receivers, &out);
    }
    weft__qunlock(&ch->lock);
    weft__waiter_list_deliver_outcomes(&out);
    return was_closed ? -EPIPE : 0;
}

WEFT_API int weft_chan_destroy(weft_chan *ch) {
    if (!ch)
        return -EINVAL;
    weft__qlock(&ch->lock);
    bool busy = !weft__waiter_list_empty(&ch->senders) || !weft__waiter_list_empty(&ch->receivers) ||
                weft__qbusy(&ch->lock);
    weft__qunlock(&ch->lock);
    if (busy)
        return -EBUSY;
    if (ch->buffer)
        weft__free(ch->buffer, ch->elem_size * ch->capacity);
    weft__free(ch, sizeof(*ch));
    return 0;
}
