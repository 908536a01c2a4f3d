/*
 * test_select.c: weft_select (weft.h, "Channels and select") against its contract, from
 * tasks and from plain threads (sync_modes.h's in_every_mode), with parked selects
 * driven by "blockers" (sync_util.h) where a test needs the select to be waiting.
 *
 * - misuse: -EINVAL for cases NULL with n > 0, n 0 with no deadline, n above
 *   WEFT_SELECT_MAX, an unknown kind, a NULL chan or elem, a bad fd or events; a refused
 *   select performed no case (a ready value is still there); unused slots (kind 0) are
 *   skipped, whatever else they hold; n = WEFT_SELECT_MAX works;
 * - exactly one: with several ready cases one is performed (its elem and result set,
 *   the other channels untouched), for RECV and SEND cases; a parked select over two
 *   unbuffered channels takes one value, and a second try_send on the other channel
 *   finds no receiver (no stale registration is left behind; also after a timeout);
 * - fairness: two always-ready cases over 2000 rounds, and four (two SEND, two RECV)
 *   over 4000: each chosen at least 30% / 15% of the time (the means are 50% / 25%;
 *   those bounds are more than 15 standard deviations away);
 * - deadlines: a past deadline is a poll (-ETIMEDOUT at once when none is ready, the
 *   ready case when one is); -ETIMEDOUT never early, nothing performed; n = 0 with a
 *   deadline sleeps until it;
 * - closed channels: a RECV case is ready with -EPIPE once drained (its buffered values
 *   come first), a SEND case with -EPIPE (not sent); a close wakes a parked select;
 * - SEND and RECV mixed, with a peer making one of them ready later; a select on both
 *   ends of an unbuffered channel;
 * - WEFT_CASE_FD on a socketpair: ready at once when readable (or writable for OUT),
 *   ready when a peer writes while the select waits, from tasks and threads; -EBUSY
 *   when a task already waits on that fd for that event.
 *
 * Timing: never early, and upper bounds of seconds (the machine is shared and noisy).
 */
#include "weft_criterion.h"

#include "sync_modes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static weft_chan *chan_new(size_t cap) {
    weft_chan *ch = NULL;
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), cap, &ch), 0, "chan_create");
    return ch;
}

static weft_case recv_case(weft_chan *ch, uint64_t *into) {
    return (weft_case){.kind = WEFT_CASE_RECV, .chan = ch, .elem = into, .result = 12345};
}

static weft_case send_case(weft_chan *ch, uint64_t *from) {
    return (weft_case){.kind = WEFT_CASE_SEND, .chan = ch, .elem = from, .result = 12345};
}

static void put(weft_chan *ch, uint64_t v) {
    cr_assert_eq(weft_chan_try_send(ch, &v), 0, "[%s] try_send %llu", mode, (unsigned long long)v);
}

static uint64_t take(weft_chan *ch) {
    uint64_t v = 0;
    cr_assert_eq(weft_chan_try_recv(ch, &v), 0, "[%s] try_recv", mode);
    return v;
}

static void expect_empty(weft_chan *ch, const char *what) {
    uint64_t v;
    int rc = weft_chan_try_recv(ch, &v);
    cr_assert_eq(rc, -EAGAIN, "[%s] %s: try_recv %d (value %llu)", mode, what, rc,
                 (unsigned long long)v);
}

/* ---- misuse --------------------------------------------------------------------------- */

static void einval_body(void) {
    weft_chan *ready = chan_new(4);
    put(ready, 42);
    uint64_t v = 0;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

    cr_assert_eq(weft_select(NULL, 0, WEFT_FOREVER), -EINVAL, "[%s] n 0, no deadline", mode);
    cr_assert_eq(weft_select(NULL, 1, 1), -EINVAL, "[%s] cases NULL, n 1", mode);
    weft_case none[1] = {{.kind = 0}};
    cr_assert_eq(weft_select(none, 0, WEFT_FOREVER), -EINVAL, "[%s] n 0 (cases set), no deadline",
                 mode);

    weft_case bad[][2] = {
        {recv_case(ready, &v), {.kind = 7, .chan = ready, .elem = &v}},
        {recv_case(ready, &v), {.kind = -1, .chan = ready, .elem = &v}},
        {recv_case(ready, &v), {.kind = WEFT_CASE_RECV, .chan = NULL, .elem = &v}},
        {recv_case(ready, &v), {.kind = WEFT_CASE_RECV, .chan = ready, .elem = NULL}},
        {recv_case(ready, &v), {.kind = WEFT_CASE_SEND, .chan = NULL, .elem = &v}},
        {recv_case(ready, &v), {.kind = WEFT_CASE_SEND, .chan = ready, .elem = NULL}},
        {recv_case(ready, &v), {.kind = WEFT_CASE_FD, .fd = -1, .events = WEFT_IN}},
        {recv_case(ready, &v), {.kind = WEFT_CASE_FD, .fd = sv[0], .events = 0}},
        {recv_case(ready, &v), {.kind = WEFT_CASE_FD, .fd = sv[0], .events = 4}},
        {recv_case(ready, &v), {.kind = WEFT_CASE_FD, .fd = sv[0], .events = ~0u}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* The bad case first and second: a select must not perform the ready one. */
        cr_assert_eq(weft_select(bad[i], 2, WEFT_FOREVER), -EINVAL, "[%s] bad case %zu", mode, i);
        weft_case swapped[2] = {bad[i][1], bad[i][0]};
        cr_assert_eq(weft_select(swapped, 2, 1), -EINVAL, "[%s] bad case %zu first", mode, i);
    }
    weft_case *many = calloc(WEFT_SELECT_MAX + 1, sizeof *many);
    cr_assert_not_null(many);
    many[0] = recv_case(ready, &v);
    cr_assert_eq(weft_select(many, WEFT_SELECT_MAX + 1, 1), -EINVAL, "[%s] n MAX + 1", mode);
    cr_assert_eq(v, 0, "[%s] a refused select stored a value", mode);
    cr_assert_eq(take(ready), 42, "[%s] a refused select took the value", mode);

    /* n = MAX works; unused slots are skipped, whatever they hold. */
    put(ready, 43);
    for (size_t i = 0; i < WEFT_SELECT_MAX; i++)
        many[i] = (weft_case){.kind = 0, .chan = (weft_chan *)(uintptr_t)0x10, .elem = NULL,
                              .fd = -5, .events = 99};
    many[WEFT_SELECT_MAX - 1] = recv_case(ready, &v);
    cr_assert_eq(weft_select(many, WEFT_SELECT_MAX, 1), WEFT_SELECT_MAX - 1, "[%s] n MAX", mode);
    cr_assert_eq(many[WEFT_SELECT_MAX - 1].result, 0);
    cr_assert_eq(v, 43);
    free(many);
    cr_assert_eq(weft_chan_destroy(ready), 0);
    cr_assert_eq(weft_fd_close(sv[0]), 0);
    cr_assert_eq(weft_fd_close(sv[1]), 0);
}

Test(select, bad_arguments_are_einval_and_perform_nothing, .timeout = 60) {
    in_every_mode(einval_body);
}

/* ---- exactly one ------------------------------------------------------------------------ */

static void exactly_one_body(void) {
    weft_chan *a = chan_new(4), *b = chan_new(4);
    for (int round = 0; round < 50; round++) {
        put(a, 100 + (uint64_t)round);
        put(b, 200 + (uint64_t)round);
        uint64_t va = 1, vb = 1;
        weft_case c[3] = {recv_case(a, &va), {.kind = 0}, recv_case(b, &vb)};
        int i = weft_select(c, 3, WEFT_FOREVER);
        cr_assert(i == 0 || i == 2, "[%s] select returned %d", mode, i);
        cr_assert_eq(c[i].result, 0);
        if (i == 0) {
            cr_assert_eq(va, 100 + (uint64_t)round);
            cr_assert_eq(vb, 1, "[%s] the case not chosen stored a value", mode);
            cr_assert_eq(take(b), 200 + (uint64_t)round, "[%s] the other channel lost its value", mode);
        } else {
            cr_assert_eq(vb, 200 + (uint64_t)round);
            cr_assert_eq(va, 1, "[%s] the case not chosen stored a value", mode);
            cr_assert_eq(take(a), 100 + (uint64_t)round, "[%s] the other channel lost its value", mode);
        }
        expect_empty(a, "after one RECV");
        expect_empty(b, "after one RECV");

        /* Two SEND cases with room: exactly one value sent. */
        uint64_t sa = 300 + (uint64_t)round, sb = 400 + (uint64_t)round;
        weft_case s[2] = {send_case(a, &sa), send_case(b, &sb)};
        i = weft_select(s, 2, 1);
        cr_assert(i == 0 || i == 1, "[%s] select(SEND, SEND) returned %d", mode, i);
        cr_assert_eq(s[i].result, 0);
        cr_assert_eq(take(i == 0 ? a : b), i == 0 ? sa : sb);
        expect_empty(a, "after one SEND");
        expect_empty(b, "after one SEND");
    }
    cr_assert_eq(weft_chan_destroy(a), 0);
    cr_assert_eq(weft_chan_destroy(b), 0);
}

Test(select, performs_exactly_one_ready_case, .timeout = 60) {
    in_every_mode(exactly_one_body);
}

typedef struct sel_ctx {
    weft_chan *ch[2];
    uint64_t v[2];
    int index;
} sel_ctx;

static int block_select_recv(sync_blocker *b) {
    sel_ctx *s = b->ctx;
    weft_case c[2] = {recv_case(s->ch[0], &s->v[0]), recv_case(s->ch[1], &s->v[1])};
    uint64_t deadline = b->param ? weft_now() + (uint64_t)b->param * MS : weft_now() + 30 * SECONDS;
    sync_blocker_arrive(b);
    int i = weft_select(c, 2, deadline);
    if (i >= 0 && c[i].result != 0)
        return -2000 + c[i].result;
    return i;
}

/* A parked select over two unbuffered channels takes one value; the other channel then
 * has no receiver. After a select that timed out, neither has. */
Test(select, parked_select_takes_exactly_one_value, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    for (int round = 0; round < 8; round++) {
        sel_ctx s = {.ch = {chan_new(0), chan_new(0)}};
        sync_blocker b;
        start_blocker(&b, round % 2 ? rt : NULL, block_select_recv, &s, 0);
        await_parked(&b, "a select");
        int first = (round / 2) % 2;
        uint64_t v = 500 + (uint64_t)round;
        cr_assert_eq(weft_chan_try_send(s.ch[first], &v), 0, "try_send to a parked select");
        uint64_t w = 600;
        cr_assert_eq(weft_chan_try_send(s.ch[1 - first], &w), -EAGAIN,
                     "a select that already took a value accepted a second one");
        join_blocker(&b);
        cr_assert_eq(b.result, first, "the select returned %d", b.result);
        cr_assert_eq(s.v[first], v);

        /* A select that timed out leaves no receiver behind. */
        start_blocker(&b, round % 2 ? rt : NULL, block_select_recv, &s, 20);
        join_blocker(&b);
        cr_assert_eq(b.result, -ETIMEDOUT);
        cr_assert_eq(weft_chan_try_send(s.ch[0], &w), -EAGAIN, "a timed-out select still receives");
        cr_assert_eq(weft_chan_try_send(s.ch[1], &w), -EAGAIN, "a timed-out select still receives");
        cr_assert_eq(weft_chan_destroy(s.ch[0]), 0, "destroy after a select (a waiter left behind?)");
        cr_assert_eq(weft_chan_destroy(s.ch[1]), 0, "destroy after a select (a waiter left behind?)");
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- fairness ------------------------------------------------------------------------------- */

static void fairness_body(void) {
    enum { ROUNDS2 = 2000, ROUNDS4 = 4000 };
    weft_chan *a = chan_new(2), *b = chan_new(2);
    put(a, 1);
    put(b, 2);
    int chosen[4] = {0};
    for (int r = 0; r < ROUNDS2; r++) {
        uint64_t va, vb;
        weft_case c[2] = {recv_case(a, &va), recv_case(b, &vb)};
        int i = weft_select(c, 2, 1);
        cr_assert(i == 0 || i == 1, "[%s] round %d: %d", mode, r, i);
        chosen[i]++;
        put(i ? b : a, i ? 2 : 1); /* both stay ready */
    }
    for (int i = 0; i < 2; i++)
        cr_assert_geq(chosen[i], ROUNDS2 * 30 / 100,
                      "[%s] two always-ready cases: case %d chosen %d times of %d", mode, i,
                      chosen[i], ROUNDS2);

    /* Two SEND cases (channels with room) and two RECV cases (channels with values). */
    weft_chan *c3 = chan_new(2), *c4 = chan_new(2);
    memset(chosen, 0, sizeof chosen);
    for (int r = 0; r < ROUNDS4; r++) {
        uint64_t va, vb, s3 = 3, s4 = 4;
        weft_case c[4] = {recv_case(a, &va), send_case(c3, &s3), recv_case(b, &vb),
                          send_case(c4, &s4)};
        int i = weft_select(c, 4, WEFT_FOREVER);
        cr_assert(i >= 0 && i < 4, "[%s] round %d: %d", mode, r, i);
        cr_assert_eq(c[i].result, 0);
        chosen[i]++;
        if (i == 0)
            put(a, 1);
        else if (i == 2)
            put(b, 2);
        else
            cr_assert_eq(take(i == 1 ? c3 : c4), i == 1 ? 3u : 4u);
    }
    for (int i = 0; i < 4; i++)
        cr_assert_geq(chosen[i], ROUNDS4 * 15 / 100,
                      "[%s] four always-ready cases: case %d chosen %d times of %d", mode, i,
                      chosen[i], ROUNDS4);
    weft_chan *all[] = {a, b, c3, c4};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_chan_destroy(all[i]), 0);
}

Test(select, random_choice_is_fair, .timeout = 60) {
    in_every_mode(fairness_body);
}

/* ---- deadlines ------------------------------------------------------------------------------ */

static void deadline_body(void) {
    weft_chan *a = chan_new(1), *u = chan_new(0), *e = chan_new(1);
    uint64_t va = 7, vu = 7, ve = 7, s = 9;
    /* None ready: a past deadline is a poll. */
    put(a, 0);
    weft_case c[3] = {recv_case(u, &vu), send_case(a, &s), recv_case(e, &ve)};
    uint64_t before = weft_now();
    check_poll(weft_select(c, 3, 1), "select(past), none ready");
    cr_assert_lt(weft_now() - before, LATE_BOUND, "[%s] a poll waited", mode);
    /* Deadline in the future: never early, nothing performed. */
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_select(c, 3, d), d, "select, none ready");
    cr_assert_eq(ve, 7, "[%s] a timed-out select stored a value", mode);
    cr_assert_eq(vu, 7, "[%s] a timed-out select stored a value", mode);
    cr_assert_eq(take(a), 0, "[%s] a timed-out select sent its SEND case", mode);
    expect_empty(a, "after a timed-out select");
    cr_assert_eq(weft_chan_try_send(u, &s), -EAGAIN, "[%s] a timed-out select still receives", mode);
    expect_empty(e, "after a timed-out select");

    /* One ready: a past deadline returns it. */
    weft_case r[2] = {recv_case(u, &vu), recv_case(a, &va)};
    put(a, 77);
    cr_assert_eq(weft_select(r, 2, 1), 1, "[%s] select(past), one ready", mode);
    cr_assert_eq(va, 77);
    cr_assert_eq(weft_select(r, 2, weft_now() - 1), -ETIMEDOUT);

    /* n = 0 with a deadline sleeps until it. */
    d = weft_now() + 20 * MS;
    check_timed_out(weft_select(NULL, 0, d), d, "select(NULL, 0)");
    d = weft_now() + 20 * MS;
    check_timed_out(weft_select(c, 0, d), d, "select(cases, 0)");
    weft_case unused[2] = {{.kind = 0}, {.kind = 0}};
    d = weft_now() + 20 * MS;
    check_timed_out(weft_select(unused, 2, d), d, "select over unused slots only");
    cr_assert_eq(weft_chan_destroy(a), 0);
    cr_assert_eq(weft_chan_destroy(u), 0);
    cr_assert_eq(weft_chan_destroy(e), 0);
}

Test(select, deadlines_and_polls, .timeout = 60) {
    in_every_mode(deadline_body);
}

/* ---- closed channels ------------------------------------------------------------------------ */

static void closed_body(void) {
    weft_chan *open_ = chan_new(0), *closed = chan_new(2);
    put(closed, 5);
    cr_assert_eq(weft_chan_close(closed), 0);
    uint64_t v1 = 0, v2 = 0;
    weft_case c[2] = {recv_case(open_, &v1), recv_case(closed, &v2)};
    cr_assert_eq(weft_select(c, 2, WEFT_FOREVER), 1, "[%s] RECV on a closed channel with a value",
                 mode);
    cr_assert_eq(c[1].result, 0, "[%s] the buffered value comes before -EPIPE", mode);
    cr_assert_eq(v2, 5);
    c[1].result = 12345;
    cr_assert_eq(weft_select(c, 2, WEFT_FOREVER), 1, "[%s] RECV on a closed, drained channel", mode);
    cr_assert_eq(c[1].result, -EPIPE, "[%s] result %d", mode, c[1].result);
    cr_assert_eq(weft_select(c, 2, 1), 1, "[%s] RECV on a closed channel, as a poll", mode);
    cr_assert_eq(c[1].result, -EPIPE);

    uint64_t s = 8;
    weft_case w[2] = {recv_case(open_, &v1), send_case(closed, &s)};
    cr_assert_eq(weft_select(w, 2, WEFT_FOREVER), 1, "[%s] SEND on a closed channel", mode);
    cr_assert_eq(w[1].result, -EPIPE, "[%s] SEND on a closed channel: result %d", mode, w[1].result);
    cr_assert_eq(weft_chan_recv(closed, &v2, 1), -EPIPE, "[%s] a SEND to a closed channel sent", mode);
    cr_assert_eq(weft_chan_destroy(open_), 0);
    cr_assert_eq(weft_chan_destroy(closed), 0);
}

Test(select, closed_channel_cases_are_ready_with_epipe, .timeout = 60) {
    in_every_mode(closed_body);
}

Test(select, close_wakes_a_parked_select, .timeout = 60) {
    weft_runtime *rt = one_worker_runtime();
    for (int kind = 0; kind < 2; kind++) {
        sel_ctx s = {.ch = {chan_new(0), chan_new(3)}};
        sync_blocker b;
        start_blocker(&b, kind ? rt : NULL, block_select_recv, &s, 0);
        await_parked(&b, "a select");
        cr_assert_eq(weft_chan_close(s.ch[1]), 0);
        join_blocker(&b);
        cr_assert_eq(b.result, -2000 - EPIPE, "a select woken by a close: %d (want case 1, -EPIPE)",
                     b.result);
        cr_assert_eq(weft_chan_destroy(s.ch[0]), 0);
        cr_assert_eq(weft_chan_destroy(s.ch[1]), 0);
    }
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- SEND and RECV mixed -------------------------------------------------------------------- */

typedef struct later {
    weft_chan *ch;
    uint64_t v;
    int op; /* 0: recv into v; 1: send v; 2: select RECV into v */
} later;

static void *act_later(void *arg) {
    later *l = arg;
    nap_ms(20);
    if (l->op == 0) {
        cr_assert_eq(weft_chan_recv(l->ch, &l->v, weft_now() + 30 * SECONDS), 0);
    } else if (l->op == 1) {
        cr_assert_eq(weft_chan_send(l->ch, &l->v, weft_now() + 30 * SECONDS), 0);
    } else {
        weft_case c[1] = {recv_case(l->ch, &l->v)};
        cr_assert_eq(weft_select(c, 1, weft_now() + 30 * SECONDS), 0);
        cr_assert_eq(c[0].result, 0);
    }
    return NULL;
}

static void mixed_body(void) {
    weft_chan *full = chan_new(1), *empty = chan_new(1), *unbuf = chan_new(0);
    put(full, 1);
    peer p;

    /* A peer makes room in `full`: the SEND case is performed. */
    later l = {.ch = full, .op = 0};
    peer_start(&p, act_later, &l);
    uint64_t s = 2, r = 0;
    weft_case c[3] = {recv_case(empty, &r), send_case(full, &s), recv_case(unbuf, &r)};
    cr_assert_eq(weft_select(c, 3, weft_now() + 30 * SECONDS), 1, "[%s] SEND once room", mode);
    cr_assert_eq(c[1].result, 0);
    peer_join(&p);
    cr_assert_eq(l.v, 1);
    cr_assert_eq(take(full), 2, "[%s] the SEND case's value", mode);
    put(full, 1);

    /* A peer sends on `empty`: the RECV case is performed. */
    l = (later){.ch = empty, .v = 33, .op = 1};
    peer_start(&p, act_later, &l);
    cr_assert_eq(weft_select(c, 3, weft_now() + 30 * SECONDS), 0, "[%s] RECV once a value", mode);
    cr_assert_eq(r, 33);
    peer_join(&p);
    expect_empty(empty, "after the RECV case");
    cr_assert_eq(take(full), 1, "[%s] the SEND case was performed too", mode);

    /* Unbuffered SEND case; the peer receives, plainly and then by a select of its own. */
    for (int op = 0; op <= 2; op += 2) {
        l = (later){.ch = unbuf, .op = op};
        peer_start(&p, act_later, &l);
        s = 44 + (uint64_t)op;
        weft_case u[2] = {recv_case(empty, &r), send_case(unbuf, &s)};
        cr_assert_eq(weft_select(u, 2, weft_now() + 30 * SECONDS), 1, "[%s] unbuffered SEND", mode);
        cr_assert_eq(u[1].result, 0);
        peer_join(&p);
        cr_assert_eq(l.v, s, "[%s] the unbuffered SEND delivered %llu", mode,
                     (unsigned long long)l.v);
    }
    cr_assert_eq(weft_chan_destroy(full), 0);
    cr_assert_eq(weft_chan_destroy(empty), 0);
    cr_assert_eq(weft_chan_destroy(unbuf), 0);
}

Test(select, send_and_recv_cases_mixed, .timeout = 60) {
    in_every_mode(mixed_body);
}

/* ---- WEFT_CASE_FD ---------------------------------------------------------------------------- */

typedef struct writer {
    int fd;
} writer;

static void *write_later(void *arg) {
    writer *w = arg;
    nap_ms(20);
    cr_assert_eq(write(w->fd, "z", 1), 1);
    return NULL;
}

static void fd_body(void) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    weft_chan *empty = chan_new(1);
    uint64_t r = 0;

    /* Writable at once. */
    weft_case o[2] = {recv_case(empty, &r), {.kind = WEFT_CASE_FD, .fd = sv[0], .events = WEFT_OUT}};
    cr_assert_eq(weft_select(o, 2, weft_now() + 30 * SECONDS), 1, "[%s] FD OUT", mode);
    cr_assert(o[1].result & (int)WEFT_OUT, "[%s] FD OUT result %d", mode, o[1].result);

    /* Not readable: the FD IN case times out; then a peer writes while it waits. */
    weft_case c[2] = {recv_case(empty, &r), {.kind = WEFT_CASE_FD, .fd = sv[0], .events = WEFT_IN}};
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_select(c, 2, d), d, "select on FD IN, nothing written");
    writer w = {sv[1]};
    peer p;
    peer_start(&p, write_later, &w);
    cr_assert_eq(weft_select(c, 2, weft_now() + 30 * SECONDS), 1, "[%s] FD IN after a write", mode);
    cr_assert(c[1].result & (int)WEFT_IN, "[%s] FD IN result %d", mode, c[1].result);
    peer_join(&p);
    /* Readable already: at once, also as a poll. */
    cr_assert_eq(weft_select(c, 2, 1), 1, "[%s] FD IN, readable, as a poll", mode);
    char ch;
    cr_assert_eq(read(sv[0], &ch, 1), 1);
    cr_assert_eq(ch, 'z');
    /* A channel case and an fd case: the channel's value is taken when the fd is quiet. */
    put(empty, 3);
    cr_assert_eq(weft_select(c, 2, weft_now() + 30 * SECONDS), 0, "[%s] RECV beside a quiet fd", mode);
    cr_assert_eq(r, 3);
    cr_assert_eq(weft_chan_destroy(empty), 0);
    cr_assert_eq(weft_fd_close(sv[0]), 0);
    cr_assert_eq(weft_fd_close(sv[1]), 0);
}

Test(select, fd_case_on_a_socketpair, .timeout = 60) {
    in_every_mode(fd_body);
}

typedef struct fd_waiter {
    int fd;
    weft__atomic_word entering;
    int rc;
} fd_waiter;

static void *wait_fd_in(void *arg) {
    fd_waiter *w = arg;
    weft__atomic_store_release(&w->entering, 1);
    w->rc = weft_fd_wait(w->fd, WEFT_IN, weft_now() + 30 * SECONDS);
    return NULL;
}

static void fd_busy_body(void) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fd_waiter fw = {.fd = sv[0]};
    weft_task *t = weft_spawn(wait_fd_in, &fw);
    cr_assert_not_null(t);
    await_flag(&fw.entering, "the fd waiter starts");
    weft_chan *empty = chan_new(1);
    uint64_t r;
    weft_case c[2] = {recv_case(empty, &r), {.kind = WEFT_CASE_FD, .fd = sv[0], .events = WEFT_IN}};
    /* Until the waiter has parked, a select may get in first and time out. */
    uint64_t give_up = weft_now() + 10 * SECONDS;
    int rc;
    while ((rc = weft_select(c, 2, weft_now() + 5 * MS)) == -ETIMEDOUT)
        cr_assert_lt(weft_now(), give_up, "no -EBUSY beside a task waiting on the fd");
    cr_assert_eq(rc, -EBUSY, "select FD IN beside a task waiting for IN: %d", rc);
    /* An OUT case on that fd is not refused. */
    weft_case o[1] = {{.kind = WEFT_CASE_FD, .fd = sv[0], .events = WEFT_OUT}};
    cr_assert_eq(weft_select(o, 1, weft_now() + 30 * SECONDS), 0, "FD OUT beside an IN waiter");
    cr_assert_eq(write(sv[1], "y", 1), 1);
    cr_assert_eq(weft_join(t, NULL), 0);
    cr_assert_eq(fw.rc, (int)WEFT_IN);
    cr_assert_eq(weft_chan_destroy(empty), 0);
    cr_assert_eq(weft_fd_close(sv[0]), 0);
    cr_assert_eq(weft_fd_close(sv[1]), 0);
}

Test(select, fd_case_is_ebusy_beside_a_task_waiting, .timeout = 60) {
    in_task(fd_busy_body, 2);
}
