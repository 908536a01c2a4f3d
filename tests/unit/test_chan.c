/*
 * test_chan.c: weft_chan (weft.h, "Channels and select"), each call against its
 * documented contract, buffered and unbuffered, from tasks and from plain threads.
 *
 * Bodies that check one caller's view run in every mode (sync_modes.h: in a task, on a
 * plain thread alone, on a plain thread beside a runtime); tests of waiters use
 * "blockers" (sync_util.h: plain threads and tasks on a 1-worker runtime) and wait until
 * each is really parked before acting, so that FIFO order among waiters, "every waiter
 * wakes" and -EBUSY "while waited on" are certain. What each test checks:
 *
 * - create: -EINVAL for elem_size 0 and above WEFT_CHAN_ELEM_MAX, out NULL, capacity
 *   above WEFT_CHAN_CAPACITY_MAX; the limits themselves work; every other call -EINVAL
 *   on a NULL channel or element (a refused send sent nothing);
 * - buffered: FIFO order through many wrap-arounds of the ring, elements copied exactly
 *   (odd sizes, bytes beyond elem_size untouched), try_send -EAGAIN when full, try_recv
 *   -EAGAIN when empty, deadlines (-ETIMEDOUT never early; a timed-out send delivered
 *   nothing, a timed-out recv took nothing; a past deadline is a poll);
 * - unbuffered: try_send/try_recv -EAGAIN with no partner, and 0 with a partner parked;
 *   a send returns only once a receiver took the value; deadlines as above;
 * - waiters: FIFO on each side (parked receivers get values in their order of arrival,
 *   parked senders deliver in theirs); a parked sender of a full buffered channel moves
 *   its value into the ring when a receiver makes room, behind the buffered ones;
 * - many producers and consumers (tasks and threads) on buffered and unbuffered
 *   channels: every value exactly once, each producer's values in order at every
 *   consumer, consumers stop at -EPIPE after close;
 * - close: send/try_send -EPIPE, recv drains the buffer then -EPIPE (also try_recv and
 *   with no deadline: no hang), double close -EPIPE; parked senders and receivers wake
 *   with -EPIPE, and the parked senders' values are not delivered;
 * - destroy: -EBUSY while a task or thread waits (nothing freed: the waiter then
 *   completes normally), 0 with values still buffered (ASan checks nothing leaks);
 * - large elements: WEFT_CHAN_ELEM_MAX bytes between a task and a thread.
 *
 * Timing: never early, and upper bounds of seconds (the machine is shared and noisy).
 */
#include "weft_criterion.h"

#include "sync_modes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
    uint64_t a;
    uint32_t b;
    unsigned char c[5]; /* an odd size: 17 bytes of payload, padded to 24 */
} item;

static item make_item(uint64_t i) {
    item it;
    memset(&it, 0, sizeof it);
    it.a = i * 0x9e3779b97f4a7c15ull;
    it.b = (uint32_t)i;
    for (int k = 0; k < 5; k++)
        it.c[k] = (unsigned char)(i + (uint64_t)k * 3);
    return it;
}

static void check_item(const item *it, uint64_t i, const char *what) {
    item want = make_item(i);
    cr_assert(it->a == want.a && it->b == want.b && memcmp(it->c, want.c, sizeof want.c) == 0,
              "[%s] %s: element %llu is not what was sent (b %u)", mode, what,
              (unsigned long long)i, it->b);
}

static weft_chan *chan_new(size_t elem, size_t cap) {
    weft_chan *ch = NULL;
    cr_assert_eq(weft_chan_create(elem, cap, &ch), 0, "chan_create(%zu, %zu)", elem, cap);
    cr_assert_not_null(ch);
    return ch;
}

/* ---- misuse ------------------------------------------------------------------------- */

Test(chan, create_and_null_are_einval, .timeout = 30) {
    weft_chan *ch = (weft_chan *)(uintptr_t)0x1;
    cr_assert_eq(weft_chan_create(0, 4, &ch), -EINVAL, "elem_size 0");
    cr_assert_eq(weft_chan_create(WEFT_CHAN_ELEM_MAX + 1, 0, &ch), -EINVAL, "elem_size MAX + 1");
    cr_assert_eq(weft_chan_create(SIZE_MAX, 0, &ch), -EINVAL, "elem_size SIZE_MAX");
    cr_assert_eq(weft_chan_create(8, 4, NULL), -EINVAL, "out NULL");
    cr_assert_eq(weft_chan_create(8, WEFT_CHAN_CAPACITY_MAX + 1, &ch), -EINVAL,
                 "capacity MAX + 1");
    cr_assert_eq(weft_chan_create(8, SIZE_MAX, &ch), -EINVAL, "capacity SIZE_MAX");

    /* The limits themselves are accepted. */
    ch = chan_new(WEFT_CHAN_ELEM_MAX, 0);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    ch = chan_new(1, 0);
    cr_assert_eq(weft_chan_destroy(ch), 0);

    ch = chan_new(sizeof(uint64_t), 2);
    uint64_t v = 7;
    cr_assert_eq(weft_chan_send(NULL, &v, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_chan_send(ch, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_chan_recv(NULL, &v, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_chan_try_send(NULL, &v), -EINVAL);
    cr_assert_eq(weft_chan_try_send(ch, NULL), -EINVAL);
    cr_assert_eq(weft_chan_try_recv(NULL, &v), -EINVAL);
    cr_assert_eq(weft_chan_close(NULL), -EINVAL);
    cr_assert_eq(weft_chan_destroy(NULL), -EINVAL);
    /* Nothing was sent by the refused calls. */
    cr_assert_eq(weft_chan_try_recv(ch, &v), -EAGAIN, "a refused send sent something");
    cr_assert_eq(weft_chan_send(ch, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_recv(ch, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_chan_try_recv(ch, NULL), -EINVAL);
    v = 0;
    cr_assert_eq(weft_chan_try_recv(ch, &v), 0, "a refused recv took the value");
    cr_assert_eq(v, 7);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- buffered ------------------------------------------------------------------------- */

static void buffered_body(void) {
    enum { CAP = 8 };
    weft_chan *ch = chan_new(sizeof(item), CAP);
    item it;
    for (uint64_t i = 0; i < CAP; i++) {
        it = make_item(i);
        cr_assert_eq(i % 2 ? weft_chan_try_send(ch, &it) : weft_chan_send(ch, &it, WEFT_FOREVER), 0,
                     "[%s] send %llu of %d", mode, (unsigned long long)i, CAP);
    }
    it = make_item(999);
    cr_assert_eq(weft_chan_try_send(ch, &it), -EAGAIN, "[%s] try_send when full", mode);
    check_poll(weft_chan_send(ch, &it, 1), "send(past) when full");
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_chan_send(ch, &it, d), d, "send when full");

    /* FIFO, exact copies; the timed-out sends delivered nothing. */
    for (uint64_t i = 0; i < CAP; i++) {
        unsigned char buf[sizeof(item) + 16];
        memset(buf, 0xee, sizeof buf);
        int rc = i % 3 == 0 ? weft_chan_try_recv(ch, buf)
                 : i % 3 == 1 ? weft_chan_recv(ch, buf, WEFT_FOREVER)
                              : weft_chan_recv(ch, buf, 1); /* a past deadline: a poll */
        cr_assert_eq(rc, 0, "[%s] recv %llu: %d", mode, (unsigned long long)i, rc);
        memcpy(&it, buf, sizeof it);
        check_item(&it, i, "buffered recv");
        for (size_t k = sizeof(item); k < sizeof buf; k++)
            cr_assert_eq(buf[k], 0xee, "[%s] recv wrote past elem_size", mode);
    }
    cr_assert_eq(weft_chan_try_recv(ch, &it), -EAGAIN, "[%s] try_recv when empty", mode);
    check_poll(weft_chan_recv(ch, &it, 1), "recv(past) when empty");
    d = weft_now() + 20 * MS;
    check_timed_out(weft_chan_recv(ch, &it, d), d, "recv when empty");
    /* A timed-out recv took nothing: the next value is there for the next recv. */
    it = make_item(41);
    cr_assert_eq(weft_chan_send(ch, &it, 1), 0, "[%s] send(past) with room is a poll", mode);
    memset(&it, 0, sizeof it);
    cr_assert_eq(weft_chan_recv(ch, &it, WEFT_FOREVER), 0);
    check_item(&it, 41, "after a timed-out recv");

    /* Many wrap-arounds of the ring, fill levels varying. */
    uint64_t sent = 1000, got = 1000;
    for (int round = 0; round < 500; round++) {
        int burst = 1 + (round * 7) % CAP;
        for (int k = 0; k < burst && sent - got < CAP; k++) {
            it = make_item(sent++);
            cr_assert_eq(weft_chan_try_send(ch, &it), 0);
        }
        int take = 1 + (round * 5) % CAP;
        for (int k = 0; k < take && got < sent; k++) {
            cr_assert_eq(weft_chan_try_recv(ch, &it), 0);
            check_item(&it, got++, "ring");
        }
    }
    while (got < sent) {
        cr_assert_eq(weft_chan_recv(ch, &it, WEFT_FOREVER), 0);
        check_item(&it, got++, "ring drain");
    }
    cr_assert_eq(weft_chan_try_recv(ch, &it), -EAGAIN);
    cr_assert_eq(weft_chan_destroy(ch), 0);
}

Test(chan, buffered_fifo_try_and_deadlines, .timeout = 60) {
    in_every_mode(buffered_body);
}

/* ---- unbuffered ------------------------------------------------------------------------ */

typedef struct rdv {
    weft_chan *ch;
    uint64_t n;
    uint64_t recv_started_at;
    weft__atomic_word ready;
} rdv;

static void *send_n(void *arg) {
    rdv *r = arg;
    for (uint64_t i = 0; i < r->n; i++) {
        item it = make_item(i);
        cr_assert_eq(weft_chan_send(r->ch, &it, WEFT_FOREVER), 0, "[%s] send %llu", mode,
                     (unsigned long long)i);
    }
    return NULL;
}

static void *recv_late(void *arg) {
    rdv *r = arg;
    nap_ms(30);
    r->recv_started_at = weft_now();
    item it;
    cr_assert_eq(weft_chan_recv(r->ch, &it, WEFT_FOREVER), 0);
    check_item(&it, 5, "unbuffered");
    return NULL;
}

static void unbuffered_body(void) {
    weft_chan *ch = chan_new(sizeof(item), 0);
    item it = make_item(1);
    cr_assert_eq(weft_chan_try_send(ch, &it), -EAGAIN, "[%s] try_send, no receiver", mode);
    cr_assert_eq(weft_chan_try_recv(ch, &it), -EAGAIN, "[%s] try_recv, no sender", mode);
    check_poll(weft_chan_send(ch, &it, 1), "unbuffered send(past), no receiver");
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_chan_send(ch, &it, d), d, "unbuffered send, no receiver");
    cr_assert_eq(weft_chan_try_recv(ch, &it), -EAGAIN, "[%s] a timed-out send was delivered", mode);
    d = weft_now() + 20 * MS;
    check_timed_out(weft_chan_recv(ch, &it, d), d, "unbuffered recv, no sender");

    /* A send returns only once the receiver took the value. */
    rdv r = {.ch = ch};
    peer p;
    peer_start(&p, recv_late, &r);
    it = make_item(5);
    cr_assert_eq(weft_chan_send(ch, &it, WEFT_FOREVER), 0);
    uint64_t sent_at = weft_now();
    peer_join(&p);
    cr_assert_geq(sent_at, r.recv_started_at, "[%s] an unbuffered send returned before any recv",
                  mode);

    /* One sender's values arrive in order; from a peer of the body's kind and a thread. */
    for (int kind = 0; kind < 2; kind++) {
        r.n = 500;
        if (kind)
            thread_start(&p, send_n, &r);
        else
            peer_start(&p, send_n, &r);
        for (uint64_t i = 0; i < r.n; i++) {
            cr_assert_eq(weft_chan_recv(ch, &it, weft_now() + 30 * SECONDS), 0);
            check_item(&it, i, "unbuffered stream");
        }
        peer_join(&p);
    }
    cr_assert_eq(weft_chan_try_recv(ch, &it), -EAGAIN);
    cr_assert_eq(weft_chan_destroy(ch), 0);
}

Test(chan, unbuffered_rendezvous_try_and_deadlines, .timeout = 60) {
    in_every_mode(unbuffered_body);
}

/* ---- waiters -------------------------------------------------------------------------- */

static int block_recv(sync_blocker *b) {
    item *out = (item *)b->ctx + 1 + b->param; /* ctx: [0] the channel, [1 + i] results */
    weft_chan *ch = *(weft_chan **)b->ctx;
    sync_blocker_arrive(b);
    return weft_chan_recv(ch, out, weft_now() + 30 * SECONDS);
}

static int block_send(sync_blocker *b) {
    weft_chan *ch = *(weft_chan **)b->ctx;
    item it = make_item(100 + (uint64_t)b->param);
    sync_blocker_arrive(b);
    return weft_chan_send(ch, &it, weft_now() + 30 * SECONDS);
}

/* ctx layout for blockers: slot 0 holds the channel pointer, slots 1.. the received items. */
typedef struct waiters_ctx {
    item slots[1 + 8];
} waiters_ctx;

static waiters_ctx *waiters_new(weft_chan *ch) {
    waiters_ctx *w = calloc(1, sizeof *w);
    cr_assert_not_null(w);
    memcpy(&w->slots[0], &ch, sizeof ch);
    return w;
}

Test(chan, try_succeeds_with_a_partner_parked, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    for (int kind = 0; kind < 2; kind++) {
        weft_runtime *on = kind ? rt : NULL;
        /* Unbuffered: a parked receiver makes try_send succeed. */
        weft_chan *ch = chan_new(sizeof(item), 0);
        waiters_ctx *w = waiters_new(ch);
        sync_blocker b;
        start_blocker(&b, on, block_recv, w, 0);
        await_parked(&b, "a recv");
        item it = make_item(77);
        cr_assert_eq(weft_chan_try_send(ch, &it), 0, "try_send with a receiver parked");
        join_blocker(&b);
        cr_assert_eq(b.result, 0);
        check_item(&w->slots[1], 77, "handed to a parked receiver");
        /* A parked sender makes try_recv succeed. */
        start_blocker(&b, on, block_send, w, 3);
        await_parked(&b, "a send");
        cr_assert_eq(weft_chan_try_recv(ch, &it), 0, "try_recv with a sender parked");
        check_item(&it, 103, "taken from a parked sender");
        join_blocker(&b);
        cr_assert_eq(b.result, 0);
        cr_assert_eq(weft_chan_destroy(ch), 0);
        free(w);

        /* Buffered and full, a sender parked: a recv takes the oldest buffered value, and
         * the sender's value goes in behind the others. */
        ch = chan_new(sizeof(item), 2);
        w = waiters_new(ch);
        for (uint64_t i = 0; i < 2; i++) {
            it = make_item(i);
            cr_assert_eq(weft_chan_try_send(ch, &it), 0);
        }
        start_blocker(&b, on, block_send, w, 0);
        await_parked(&b, "a send to a full channel");
        cr_assert_eq(weft_chan_try_recv(ch, &it), 0);
        check_item(&it, 0, "oldest buffered");
        join_blocker(&b);
        cr_assert_eq(b.result, 0, "the parked sender after a recv made room: %d", b.result);
        cr_assert_eq(weft_chan_try_recv(ch, &it), 0);
        check_item(&it, 1, "second buffered");
        cr_assert_eq(weft_chan_try_recv(ch, &it), 0);
        check_item(&it, 100, "the parked sender's");
        cr_assert_eq(weft_chan_try_recv(ch, &it), -EAGAIN);
        /* Buffered and empty, a receiver parked: try_send hands it over. */
        start_blocker(&b, on, block_recv, w, 0);
        await_parked(&b, "a recv on an empty channel");
        it = make_item(55);
        cr_assert_eq(weft_chan_try_send(ch, &it), 0);
        join_blocker(&b);
        cr_assert_eq(b.result, 0);
        check_item(&w->slots[1], 55, "buffered, to a parked receiver");
        cr_assert_eq(weft_chan_try_recv(ch, &it), -EAGAIN, "the value was also buffered");
        cr_assert_eq(weft_chan_destroy(ch), 0);
        free(w);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static void fifo_waiters(size_t cap) {
    enum { N = 6 };
    weft_runtime *rt = one_worker_runtime();
    weft_chan *ch = chan_new(sizeof(item), cap);
    waiters_ctx *w = waiters_new(ch);
    sync_blocker b[N];

    /* Receivers, parked in order: value i goes to receiver i. */
    for (int i = 0; i < N; i++) {
        start_blocker(&b[i], i % 2 ? rt : NULL, block_recv, w, i);
        await_parked(&b[i], "a recv");
    }
    for (uint64_t i = 0; i < N; i++) {
        item it = make_item(i);
        cr_assert_eq(weft_chan_send(ch, &it, weft_now() + 30 * SECONDS), 0);
    }
    for (int i = 0; i < N; i++) {
        join_blocker(&b[i]);
        cr_assert_eq(b[i].result, 0);
        cr_assert_eq(w->slots[1 + i].b, (uint32_t)i,
                     "capacity %zu: receiver %d (in order of arrival) got value %u", cap, i,
                     w->slots[1 + i].b);
    }

    /* Senders, parked in order (after filling the buffer): their values come out in it. */
    for (uint64_t i = 0; i < cap; i++) {
        item it = make_item(50 + i);
        cr_assert_eq(weft_chan_try_send(ch, &it), 0);
    }
    for (int i = 0; i < N; i++) {
        start_blocker(&b[i], i % 2 ? rt : NULL, block_send, w, i);
        await_parked(&b[i], "a send");
    }
    for (uint64_t i = 0; i < cap + N; i++) {
        item it;
        cr_assert_eq(weft_chan_recv(ch, &it, weft_now() + 30 * SECONDS), 0);
        check_item(&it, i < cap ? 50 + i : 100 + (i - cap), "senders in order of arrival");
    }
    for (int i = 0; i < N; i++) {
        join_blocker(&b[i]);
        cr_assert_eq(b[i].result, 0);
    }
    cr_assert_eq(weft_chan_destroy(ch), 0);
    free(w);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

Test(chan, waiters_are_fifo_unbuffered, .timeout = 60) {
    fifo_waiters(0);
}

Test(chan, waiters_are_fifo_buffered, .timeout = 60) {
    fifo_waiters(3);
}

/* ---- many producers and consumers ------------------------------------------------------- */

enum { MP_PRODUCERS = 5, MP_CONSUMERS = 5 };

typedef struct mpmc {
    weft_chan *ch;
    uint64_t per_producer;
    weft__atomic_word next_producer;
    weft__atomic_word *seen_count; /* per value: times received */
    weft__atomic_word received;
} mpmc;

static void *mp_produce(void *arg) {
    mpmc *m = arg;
    uint64_t id = weft__atomic_fetch_add_full(&m->next_producer, 1);
    for (uint64_t i = 0; i < m->per_producer; i++) {
        uint64_t v = (id << 32) | i;
        int rc;
        /* Some sends with short deadlines: a timed-out one was not sent, so send again. */
        if (i % 3 == 0)
            while ((rc = weft_chan_send(m->ch, &v, weft_now() + 20 * 1000)) == -ETIMEDOUT) {
            }
        else
            rc = weft_chan_send(m->ch, &v, WEFT_FOREVER);
        cr_assert_eq(rc, 0, "producer %llu: send %d", (unsigned long long)id, rc);
    }
    return NULL;
}

static void *mp_consume(void *arg) {
    mpmc *m = arg;
    uint64_t last[MP_PRODUCERS];
    for (int p = 0; p < MP_PRODUCERS; p++)
        last[p] = UINT64_MAX;
    for (uint64_t k = 0;; k++) {
        uint64_t v;
        int rc = k % 4 == 0 ? weft_chan_recv(m->ch, &v, weft_now() + 20 * 1000)
                            : weft_chan_recv(m->ch, &v, WEFT_FOREVER);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc == -EPIPE)
            break;
        cr_assert_eq(rc, 0, "recv: %d", rc);
        uint64_t p = v >> 32, i = v & 0xffffffffu;
        cr_assert_lt(p, MP_PRODUCERS);
        cr_assert_lt(i, m->per_producer);
        cr_assert(last[p] == UINT64_MAX || i > last[p],
                  "producer %llu's value %llu after %llu at one consumer", (unsigned long long)p,
                  (unsigned long long)i, (unsigned long long)last[p]);
        last[p] = i;
        cr_assert_eq(weft__atomic_fetch_add_full(&m->seen_count[p * m->per_producer + i], 1), 0,
                     "value %llu/%llu received twice", (unsigned long long)p, (unsigned long long)i);
        weft__atomic_fetch_add_relaxed(&m->received, 1);
    }
    return NULL;
}

static void mpmc_run(size_t cap) {
    mpmc *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    m->per_producer = weft_test_size(20000, 20);
    m->ch = chan_new(sizeof(uint64_t), cap);
    m->seen_count = calloc(MP_PRODUCERS * m->per_producer, sizeof *m->seen_count);
    cr_assert_not_null(m->seen_count);
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    /* 3 producer tasks, 2 producer threads; 3 consumer tasks, 2 consumer threads. */
    pthread_t prod[2], cons[2];
    weft_task *pt[3], *ct[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_not_null(pt[i] = weft_spawn_on(rt, mp_produce, m));
        cr_assert_not_null(ct[i] = weft_spawn_on(rt, mp_consume, m));
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&prod[i], NULL, mp_produce, m), 0);
        cr_assert_eq(pthread_create(&cons[i], NULL, mp_consume, m), 0);
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(pt[i], NULL), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_join(prod[i], NULL), 0);
    cr_assert_eq(weft_chan_close(m->ch), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(ct[i], NULL), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_join(cons[i], NULL), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    uint64_t total = MP_PRODUCERS * m->per_producer;
    cr_assert_eq(weft__atomic_load_acquire(&m->received), total, "capacity %zu: %llu of %llu received",
                 cap, (unsigned long long)weft__atomic_load_acquire(&m->received),
                 (unsigned long long)total);
    for (uint64_t v = 0; v < total; v++)
        cr_assert_eq(weft__atomic_load_relaxed(&m->seen_count[v]), 1, "value %llu lost",
                     (unsigned long long)v);
    cr_assert_eq(weft_chan_destroy(m->ch), 0);
    free((void *)m->seen_count);
    free(m);
    WEFT_ASSERT_NO_LEAKS();
}

Test(chan, mpmc_tasks_and_threads_buffered, .timeout = 180) {
    mpmc_run(16);
}

Test(chan, mpmc_tasks_and_threads_unbuffered, .timeout = 180) {
    mpmc_run(0);
}

/* ---- close ---------------------------------------------------------------------------- */

static void close_body(void) {
    weft_chan *ch = chan_new(sizeof(item), 4);
    item it;
    for (uint64_t i = 0; i < 3; i++) {
        it = make_item(i);
        cr_assert_eq(weft_chan_send(ch, &it, WEFT_FOREVER), 0);
    }
    cr_assert_eq(weft_chan_close(ch), 0, "[%s] close", mode);
    cr_assert_eq(weft_chan_close(ch), -EPIPE, "[%s] close twice", mode);
    it = make_item(9);
    cr_assert_eq(weft_chan_send(ch, &it, WEFT_FOREVER), -EPIPE, "[%s] send after close", mode);
    cr_assert_eq(weft_chan_try_send(ch, &it), -EPIPE, "[%s] try_send after close", mode);
    for (uint64_t i = 0; i < 3; i++) {
        cr_assert_eq(i == 1 ? weft_chan_try_recv(ch, &it) : weft_chan_recv(ch, &it, WEFT_FOREVER), 0,
                     "[%s] recv of a buffered value after close", mode);
        check_item(&it, i, "drained after close");
    }
    cr_assert_eq(weft_chan_recv(ch, &it, WEFT_FOREVER), -EPIPE, "[%s] recv, closed and drained",
                 mode);
    cr_assert_eq(weft_chan_recv(ch, &it, 1), -EPIPE, "[%s] recv(past), closed and drained", mode);
    cr_assert_eq(weft_chan_try_recv(ch, &it), -EPIPE, "[%s] try_recv, closed and drained", mode);
    cr_assert_eq(weft_chan_close(ch), -EPIPE);
    cr_assert_eq(weft_chan_destroy(ch), 0);

    ch = chan_new(sizeof(item), 0);
    cr_assert_eq(weft_chan_close(ch), 0);
    cr_assert_eq(weft_chan_send(ch, &it, WEFT_FOREVER), -EPIPE, "[%s] unbuffered send after close",
                 mode);
    cr_assert_eq(weft_chan_recv(ch, &it, WEFT_FOREVER), -EPIPE, "[%s] unbuffered recv after close",
                 mode);
    cr_assert_eq(weft_chan_try_send(ch, &it), -EPIPE);
    cr_assert_eq(weft_chan_try_recv(ch, &it), -EPIPE);
    cr_assert_eq(weft_chan_destroy(ch), 0);

    /* Destroyed with values buffered, never closed: nothing leaks (ASan). */
    ch = chan_new(sizeof(item), 4);
    cr_assert_eq(weft_chan_try_send(ch, &it), 0);
    cr_assert_eq(weft_chan_destroy(ch), 0);
}

Test(chan, close_semantics, .timeout = 60) {
    in_every_mode(close_body);
}

static void close_wakes(size_t cap, bool senders) {
    enum { N = 4 };
    weft_runtime *rt = one_worker_runtime();
    weft_chan *ch = chan_new(sizeof(item), cap);
    waiters_ctx *w = waiters_new(ch);
    if (senders)
        for (uint64_t i = 0; i < cap; i++) {
            item it = make_item(i);
            cr_assert_eq(weft_chan_try_send(ch, &it), 0);
        }
    sync_blocker b[N];
    for (int i = 0; i < N; i++) {
        start_blocker(&b[i], i % 2 ? rt : NULL, senders ? block_send : block_recv, w, i);
        await_parked(&b[i], senders ? "a send" : "a recv");
    }
    cr_assert_eq(weft_chan_close(ch), 0);
    for (int i = 0; i < N; i++) {
        join_blocker(&b[i]);
        cr_assert_eq(b[i].result, -EPIPE, "capacity %zu: parked %s %d woke with %d after close", cap,
                     senders ? "sender" : "receiver", i, b[i].result);
    }
    /* The buffered values are still there; the parked senders' are not. */
    item it;
    for (uint64_t i = 0; senders && i < cap; i++) {
        cr_assert_eq(weft_chan_recv(ch, &it, WEFT_FOREVER), 0);
        check_item(&it, i, "buffered before the close");
    }
    cr_assert_eq(weft_chan_recv(ch, &it, WEFT_FOREVER), -EPIPE,
                 "capacity %zu: a value of a sender woken by close was delivered", cap);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    free(w);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

Test(chan, close_wakes_parked_receivers, .timeout = 60) {
    close_wakes(0, false);
    close_wakes(3, false);
}

Test(chan, close_wakes_parked_senders, .timeout = 60) {
    close_wakes(0, true);
    close_wakes(2, true);
}

/* ---- destroy ------------------------------------------------------------------------- */

Test(chan, destroy_is_ebusy_while_waited_on, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    for (int kind = 0; kind < 2; kind++) {
        weft_runtime *on = kind ? rt : NULL;
        for (size_t cap = 0; cap < 2; cap++) {
            weft_chan *ch = chan_new(sizeof(item), cap);
            waiters_ctx *w = waiters_new(ch);
            sync_blocker b;
            /* A receiver waits. */
            start_blocker(&b, on, block_recv, w, 0);
            await_parked(&b, "a recv");
            cr_assert_eq(weft_chan_destroy(ch), -EBUSY, "destroy with a receiver waiting");
            cr_assert_not(sync_blocker_finished(&b), "a refused destroy woke the receiver");
            item it = make_item(8);
            cr_assert_eq(weft_chan_send(ch, &it, weft_now() + 30 * SECONDS), 0,
                         "send after a refused destroy");
            join_blocker(&b);
            cr_assert_eq(b.result, 0);
            check_item(&w->slots[1], 8, "after a refused destroy");
            /* A sender waits (unbuffered, or buffered and full). */
            if (cap) {
                it = make_item(0);
                cr_assert_eq(weft_chan_try_send(ch, &it), 0);
            }
            start_blocker(&b, on, block_send, w, 1);
            await_parked(&b, "a send");
            cr_assert_eq(weft_chan_destroy(ch), -EBUSY, "destroy with a sender waiting");
            cr_assert_not(sync_blocker_finished(&b), "a refused destroy woke the sender");
            if (cap) {
                cr_assert_eq(weft_chan_recv(ch, &it, weft_now() + 30 * SECONDS), 0);
                check_item(&it, 0, "buffered, after a refused destroy");
            }
            cr_assert_eq(weft_chan_recv(ch, &it, weft_now() + 30 * SECONDS), 0);
            check_item(&it, 101, "from the sender, after a refused destroy");
            join_blocker(&b);
            cr_assert_eq(b.result, 0);
            cr_assert_eq(weft_chan_destroy(ch), 0, "destroy once nobody waits");
            free(w);
        }
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- large elements -------------------------------------------------------------------- */

typedef struct big_ctx {
    weft_chan *ch;
    int n;
} big_ctx;

static void fill_big(unsigned char *b, int k) {
    for (size_t i = 0; i < WEFT_CHAN_ELEM_MAX; i++)
        b[i] = (unsigned char)(i * 31 + (size_t)k * 7 + (i >> 8));
}

static void *big_sender(void *arg) {
    big_ctx *c = arg;
    unsigned char *b = malloc(WEFT_CHAN_ELEM_MAX); /* not on a 64 KiB task stack */
    cr_assert_not_null(b);
    for (int k = 0; k < c->n; k++) {
        fill_big(b, k);
        cr_assert_eq(weft_chan_send(c->ch, b, weft_now() + 30 * SECONDS), 0);
    }
    free(b);
    return NULL;
}

static void *big_receiver(void *arg) {
    big_ctx *c = arg;
    unsigned char *b = malloc(WEFT_CHAN_ELEM_MAX), *want = malloc(WEFT_CHAN_ELEM_MAX);
    cr_assert(b && want);
    for (int k = 0; k < c->n; k++) {
        cr_assert_eq(weft_chan_recv(c->ch, b, weft_now() + 30 * SECONDS), 0);
        fill_big(want, k);
        cr_assert(memcmp(b, want, WEFT_CHAN_ELEM_MAX) == 0, "large element %d corrupted", k);
    }
    free(b);
    free(want);
    return NULL;
}

Test(chan, largest_elements_between_a_task_and_a_thread, .timeout = 60) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    for (size_t cap = 0; cap < 3; cap += 2) {
        for (int dir = 0; dir < 2; dir++) {
            big_ctx c = {.ch = chan_new(WEFT_CHAN_ELEM_MAX, cap), .n = 20};
            pthread_t th;
            weft_task *t = weft_spawn_on(rt, dir ? big_sender : big_receiver, &c);
            cr_assert_not_null(t);
            cr_assert_eq(pthread_create(&th, NULL, dir ? big_receiver : big_sender, &c), 0);
            cr_assert_eq(weft_join(t, NULL), 0);
            cr_assert_eq(pthread_join(th, NULL), 0);
            cr_assert_eq(weft_chan_destroy(c.ch), 0);
        }
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}
