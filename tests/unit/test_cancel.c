/*
 * test_cancel.c: task cancellation (weft.h, "Cancellation": weft_cancel, weft_cancelled,
 * weft_cancel_shield) against its contract, at every cancellation point weft.h lists.
 *
 * - parked: for each cancellation point, a task parked in it (a "blocker" of
 *   sync_util.h on a 1-worker runtime, so that "parked" is known from /proc, not guessed
 *   from a sleep) is cancelled from a plain thread: the call returns -ECANCELED well
 *   before its 30 s deadline (within PROMPT), and has not happened: a recv took nothing
 *   and left no registration behind, a send sent nothing, a semaphore's permits are
 *   unchanged, a join left its handle valid (joined later), a cond_wait returns holding
 *   the mutex again (and released it while waiting), a lock_until holds nothing, a
 *   group_next took no result, a group_wait dropped none, a group_spawn spawned nothing;
 *   an fd wait leaves no waiter behind (a new reader is not refused with -EBUSY); a
 *   weft_write that had written part of its buffer returns the bytes written (a
 *   socketpair whose buffer fills), one that had written nothing -ECANCELED. The mark is
 *   sticky: the next cancellation point returns -ECANCELED too.
 * - early: a task cancelled before it first ran (its spawner cancels it before it can
 *   run, on a 1-worker runtime) still runs, and every cancellation point returns
 *   -ECANCELED at once, even where the call could complete without waiting (a buffered
 *   element, a free permit, a set event, a readable fd, a pending connection, a free
 *   mutex, an unread group result), and has not happened; weft_group_spawn is a point
 *   only when it must wait for a slot. With inline joins on and off.
 * - not points: weft_mutex_lock (parked in it, a cancel does not end it; it takes the
 *   lock once freed), weft_yield, the try_ calls, weft_group_destroy.
 * - threads: a plain thread's waits never return -ECANCELED (a join of a cancelled task
 *   returns its result, a group_next of a cancelled group a member's result, a
 *   blocking-pool call of a cancelled carrier sleeps and waits normally); outside a task
 *   weft_cancelled() is 0 and weft_cancel_shield -EPERM.
 * - shield: returns the previous setting and nests; a shielded task's points behave as
 *   if it had not been cancelled (a shielded sleep sleeps, a shielded wait that the
 *   cancel arrives during goes on waiting and completes); lifting the shield makes the
 *   next point return -ECANCELED; weft_cancelled() is 1 all along.
 * - handles: weft_cancel(NULL) and a detached handle are -EINVAL (and the detached task is
 *   not cancelled); a finished task: 0, harmless, its result joined as usual; a cancel
 *   twice, from a timer callback, from several threads at once.
 * - blocking pool: a cancelled weft_spawn_blocking call (while it runs, or before it
 *   started) runs to its end and its handle joins with the call's result; a joiner of
 *   such a call that is cancelled returns -ECANCELED and the handle stays valid (without
 *   inline joins). With inline joins a call spawned and joined at once has its carrier
 *   run inline: the join then ends with the call (see that test's comment; the outcome
 *   is logged).
 * - inline joins: a joiner cancelled while its child runs inline on its stack (the child
 *   spawned last and joined at once, 1 worker, chaos off, joins_inline checked) returns
 *   promptly and the child's sleep saw -ECANCELED, the join returning the child's result;
 *   a chain of two inline joins likewise; a shielded joiner's inline child is not
 *   cancelled; cancelling the inline child itself ends its sleep and leaves the joiner
 *   alone; with WEFT_CONFIG_NO_INLINE_JOIN the join returns -ECANCELED, the child is not
 *   cancelled and is joined later.
 *
 * Timing: "promptly" is well under the long deadline (PROMPT = 3 s against 30 s); every
 * other bound is a lower one (a shielded sleep never ends early) or "not within 10 s".
 */
#include "weft_criterion.h"

#include "io_util.h"
#include "sched/task.h" /* WEFT__TASK_COMPLETE: to know that a task has finished */
#include "sync_modes.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The deadline of a wait that a cancel must cut short, and what "promptly" means. */
#define LONG_WAIT (30 * SECONDS)
#define PROMPT    (3 * SECONDS)

#define DONE_MARK ((void *)(uintptr_t)0xd0e)

static uint64_t far_deadline(void) {
    return weft_now() + LONG_WAIT;
}

/* Everything a case may need; each test uses a part. */
typedef struct fx {
    weft_runtime *rt; /* one worker: the blockers' */
    int sv[2];
    int listener;
    struct sockaddr_in addr;
    int fillers[8];
    int nfillers;
    int sock;
    weft_chan *ch, *ch2;
    weft_mutex m;
    weft_cond c;
    weft_sem s;
    weft_waitgroup wg;
    weft_event ev;
    weft_group *g;
    sync_blocker child;
    uint8_t *buf;
    size_t len;
    int after;             /* the next cancellation point after the cancelled one */
    int after2;            /* another check the body made after its wait */
    int cancelled;         /* weft_cancelled() after the wait */
    weft__atomic_word ran; /* a spawned function ran */
} fx;

static void fx_start(fx *f) {
    memset(f, 0, sizeof *f);
    f->sv[0] = f->sv[1] = f->listener = f->sock = -1;
    f->rt = one_worker_runtime();
}

static void fx_end(fx *f) {
    cr_assert_eq(weft_runtime_destroy(f->rt), 0, "runtime_destroy");
    for (int i = 0; i < 2; i++)
        if (f->sv[i] >= 0)
            cr_assert_eq(weft_fd_close(f->sv[i]), 0);
    if (f->listener >= 0)
        cr_assert_eq(weft_fd_close(f->listener), 0);
    if (f->sock >= 0)
        cr_assert_eq(weft_fd_close(f->sock), 0);
    for (int i = 0; i < f->nfillers; i++)
        close(f->fillers[i]);
    free(f->buf);
    WEFT_ASSERT_NO_LEAKS();
}

static void fx_socketpair(fx *f) {
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->sv), 0, "socketpair");
}

/* b's task is parked in its call: cancel it; the call must return -ECANCELED promptly. */
static void cancel_parked(sync_blocker *b, const char *what) {
    await_parked(b, what);
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_cancel(b->task), 0, "%s: weft_cancel", what);
    cr_assert_eq(sync_blocker_await_finished(b, 10000), 0,
                 "%s: still waiting 10 s after its cancel", what);
    cr_assert_eq(b->result, -ECANCELED, "%s returned %d, not -ECANCELED", what, b->result);
    uint64_t took = b->returned_at > t0 ? b->returned_at - t0 : 0;
    cr_assert_lt(took, PROMPT, "%s returned %llu ms after its cancel", what,
                 (unsigned long long)(took / MS));
}

/* After a cancelled wait: the mark is sticky (the next point says -ECANCELED too). */
static void note_after(fx *f) {
    f->cancelled = weft_cancelled();
    f->after = weft_sleep_ms(0);
}

static void expect_sticky(fx *f, const char *what) {
    cr_expect_eq(f->cancelled, 1, "%s: weft_cancelled() after the cancel", what);
    cr_expect_eq(f->after, -ECANCELED, "%s: the next cancellation point returned %d", what,
                 f->after);
}

/* Nothing waits on `f->sv[0]` for reading any more: a new reader (a task, not cancelled)
 * gets the byte written now, instead of -EBUSY. */
static int read_one_body(sync_blocker *b) {
    fx *f = b->ctx;
    char c = 0;
    sync_blocker_arrive(b);
    ssize_t n = weft_read(f->sv[0], &c, 1, weft_now() + 10 * SECONDS);
    return n == 1 ? (int)(unsigned char)c : (int)n;
}

static void expect_fd_free_for_readers(fx *f, const char *what) {
    sync_blocker r;
    start_blocker(&r, f->rt, read_one_body, f, 0);
    cr_assert_eq(write(f->sv[1], "z", 1), 1);
    join_blocker(&r);
    cr_assert_eq(r.result, 'z', "%s: a new reader after the cancel got %d", what, r.result);
}

/* ---- parked: sleep ----------------------------------------------------------------------- */

static int sleep_until_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_sleep_until(far_deadline());
    note_after(f);
    return rc;
}

static int sleep_ms_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_sleep_ms(LONG_WAIT / MS);
    note_after(f);
    return rc;
}

Test(parked, sleep_until, .timeout = 60) {
    fx f;
    fx_start(&f);
    sync_blocker b;
    start_blocker(&b, f.rt, sleep_until_body, &f, 0);
    cancel_parked(&b, "weft_sleep_until");
    join_blocker(&b);
    expect_sticky(&f, "weft_sleep_until");
    fx_end(&f);
}

Test(parked, sleep_ms, .timeout = 60) {
    fx f;
    fx_start(&f);
    sync_blocker b;
    start_blocker(&b, f.rt, sleep_ms_body, &f, 0);
    cancel_parked(&b, "weft_sleep_ms");
    join_blocker(&b);
    expect_sticky(&f, "weft_sleep_ms");
    fx_end(&f);
}

/* ---- parked: join ------------------------------------------------------------------------ */

static int wait_event_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_event_wait(&f->ev, weft_now() + 20 * SECONDS);
    return rc == 0 ? 0x5eed : rc;
}

static int join_body(sync_blocker *b) {
    fx *f = b->ctx;
    void *r = (void *)1;
    sync_blocker_arrive(b);
    int rc = b->param ? weft_join_until(f->child.task, far_deadline(), &r)
                      : weft_join(f->child.task, &r);
    f->after2 = r == (void *)1; /* nothing stored */
    note_after(f);
    return rc;
}

/* The joined child waits on f->ev, and has run (so it cannot be run inline). */
static void join_case(long until) {
    fx f;
    fx_start(&f);
    const char *what = until ? "weft_join_until" : "weft_join";
    start_blocker(&f.child, f.rt, wait_event_body, &f, 0);
    await_parked(&f.child, "the child");
    sync_blocker b;
    start_blocker(&b, f.rt, join_body, &f, until);
    cancel_parked(&b, what);
    join_blocker(&b);
    expect_sticky(&f, what);
    cr_expect(f.after2, "%s: a cancelled join stored a result", what);
    /* The handle is still valid, and the cancel was carried on to the child (weft.h: a
     * join that returns -ECANCELED has cancelled the task it joins, inline or not). */
    cr_assert_eq(weft_join(f.child.task, NULL), 0, "%s: the handle after a cancelled join", what);
    cr_assert_eq(f.child.result, -ECANCELED, "%s: the child was not cancelled (%d)", what,
                 f.child.result);
    fx_end(&f);
}

Test(parked, join, .timeout = 60) {
    join_case(0);
}

Test(parked, join_until, .timeout = 60) {
    join_case(1);
}

/* ---- parked: fd calls -------------------------------------------------------------------- */

static int fd_wait_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_fd_wait(f->sv[0], WEFT_IN, far_deadline());
    note_after(f);
    return rc;
}

Test(parked, fd_wait, .timeout = 60) {
    fx f;
    fx_start(&f);
    fx_socketpair(&f);
    sync_blocker b;
    start_blocker(&b, f.rt, fd_wait_body, &f, 0);
    cancel_parked(&b, "weft_fd_wait");
    join_blocker(&b);
    expect_sticky(&f, "weft_fd_wait");
    expect_fd_free_for_readers(&f, "weft_fd_wait");
    fx_end(&f);
}

static int read_body(sync_blocker *b) {
    fx *f = b->ctx;
    char buf[16];
    sync_blocker_arrive(b);
    ssize_t n = weft_read(f->sv[0], buf, sizeof buf, far_deadline());
    note_after(f);
    return (int)n;
}

Test(parked, read, .timeout = 60) {
    fx f;
    fx_start(&f);
    fx_socketpair(&f);
    sync_blocker b;
    start_blocker(&b, f.rt, read_body, &f, 0);
    cancel_parked(&b, "weft_read");
    join_blocker(&b);
    expect_sticky(&f, "weft_read");
    expect_fd_free_for_readers(&f, "weft_read");
    fx_end(&f);
}

/* Everything the peer received, read without waiting: its length, and whether it is
 * stream 7's bytes from `from`. */
static size_t drain_checked(int fd, uint64_t from, const char *what) {
    uint8_t chunk[4096];
    size_t total = 0;
    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n <= 0) {
            cr_assert(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "%s: drain: %zd %s", what,
                      n, strerror(errno));
            return total;
        }
        cr_assert_eq(io_pattern_check(chunk, (size_t)n, 7, from + total), (size_t)n,
                     "%s: byte %zu received is not what was written", what, total);
        total += (size_t)n;
    }
}

static int write_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    ssize_t n;
    if (b->param == 2) { /* writev: a short header and the rest */
        struct iovec iov[2] = {{f->buf, 100}, {f->buf + 100, f->len - 100}};
        n = weft_writev(f->sv[0], iov, 2, far_deadline());
    } else {
        n = weft_write(f->sv[0], f->buf, f->len, far_deadline());
    }
    note_after(f);
    return n > INT32_MAX ? -1 : (int)n;
}

/* A write bigger than the socket's buffers writes part of it, then waits for room: a
 * cancel then returns the bytes written, and the peer received exactly those. */
static void write_partial_case(long writev_) {
    fx f;
    fx_start(&f);
    fx_socketpair(&f);
    io_small_buffers(f.sv[0]);
    io_small_buffers(f.sv[1]);
    f.len = 4u << 20;
    f.buf = malloc(f.len);
    cr_assert_not_null(f.buf);
    io_pattern_fill(f.buf, f.len, 7, 0);
    const char *what = writev_ ? "weft_writev" : "weft_write";
    sync_blocker b;
    start_blocker(&b, f.rt, write_body, &f, writev_ ? 2 : 1);
    await_parked(&b, what);
    cr_assert_eq(weft_cancel(b.task), 0);
    join_blocker(&b);
    cr_assert_gt(b.result, 0, "%s cancelled after a partial write returned %d", what, b.result);
    cr_assert_lt((size_t)b.result, f.len, "%s wrote everything into a small buffer?", what);
    size_t got = drain_checked(f.sv[1], 0, what);
    cr_assert_eq(got, (size_t)b.result, "%s returned %d but the peer received %zu bytes", what,
                 b.result, got);
    expect_sticky(&f, what);
    fx_end(&f);
}

Test(parked, write_partial_returns_bytes_written, .timeout = 60) {
    write_partial_case(0);
}

Test(parked, writev_partial_returns_bytes_written, .timeout = 60) {
    write_partial_case(1);
}

/* A write into a full buffer writes nothing before it waits: -ECANCELED, and the peer
 * has only what filled the buffer. */
Test(parked, write_nothing_written_is_ecanceled, .timeout = 60) {
    fx f;
    fx_start(&f);
    fx_socketpair(&f);
    io_small_buffers(f.sv[0]);
    io_small_buffers(f.sv[1]);
    uint64_t filled = 0;
    cr_assert_eq(io_fill(f.sv[0], 7, &filled), 0, "fill");
    f.len = 300;
    f.buf = malloc(f.len);
    cr_assert_not_null(f.buf);
    io_pattern_fill(f.buf, f.len, 7, filled);
    sync_blocker b;
    start_blocker(&b, f.rt, write_body, &f, 1);
    cancel_parked(&b, "weft_write into a full buffer");
    join_blocker(&b);
    cr_assert_eq(drain_checked(f.sv[1], 0, "weft_write"), filled,
                 "the cancelled write wrote something");
    expect_sticky(&f, "weft_write");
    f.len = 300; /* and writev likewise */
    filled = 0;
    cr_assert_eq(io_fill(f.sv[0], 7, &filled), 0, "fill");
    io_pattern_fill(f.buf, f.len, 7, filled);
    start_blocker(&b, f.rt, write_body, &f, 2);
    cancel_parked(&b, "weft_writev into a full buffer");
    join_blocker(&b);
    cr_assert_eq(drain_checked(f.sv[1], 0, "weft_writev"), filled,
                 "the cancelled writev wrote something");
    fx_end(&f);
}

static int accept_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_accept(f->listener, NULL, NULL, far_deadline());
    note_after(f);
    return rc;
}

Test(parked, accept, .timeout = 60) {
    fx f;
    fx_start(&f);
    f.listener = io_loopback_listener(4, &f.addr);
    cr_assert_geq(f.listener, 0, "listener: %s", strerror(-f.listener));
    sync_blocker b;
    start_blocker(&b, f.rt, accept_body, &f, 0);
    cancel_parked(&b, "weft_accept");
    join_blocker(&b);
    expect_sticky(&f, "weft_accept");
    /* The listener works, and nothing waits on it: a connection is accepted now. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(c, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&f.addr, sizeof f.addr), 0, "connect");
    int a = weft_accept(f.listener, NULL, NULL, weft_now() + 10 * SECONDS);
    cr_assert_geq(a, 0, "accept after the cancelled one: %s", strerror(-a));
    cr_assert_eq(weft_fd_close(a), 0);
    close(c);
    fx_end(&f);
}

/* A listener whose accept queue is full (backlog 0, one connection made and not
 * accepted): Linux drops the SYNs of further connects, which then stay in progress. */
static void fx_full_listener(fx *f) {
    f->listener = io_loopback_listener(0, &f->addr);
    cr_assert_geq(f->listener, 0, "listener: %s", strerror(-f->listener));
    for (;;) {
        cr_assert_lt(f->nfillers, 8, "no connect to a full backlog stayed in progress");
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        cr_assert_geq(c, 0);
        f->fillers[f->nfillers++] = c;
        int rc = connect(c, (struct sockaddr *)&f->addr, sizeof f->addr);
        cr_assert(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
        struct pollfd p = {.fd = c, .events = POLLOUT};
        if (rc != 0 && poll(&p, 1, 200) == 0)
            return; /* this one hangs: so will the next */
    }
}

static int connect_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_connect(f->sock, (struct sockaddr *)&f->addr, sizeof f->addr, far_deadline());
    note_after(f);
    return rc;
}

Test(parked, connect, .timeout = 60) {
    fx f;
    fx_start(&f);
    fx_full_listener(&f);
    f.sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(f.sock, 0);
    sync_blocker b;
    start_blocker(&b, f.rt, connect_body, &f, 0);
    cancel_parked(&b, "weft_connect");
    join_blocker(&b);
    expect_sticky(&f, "weft_connect");
    fx_end(&f);
}

/* ---- parked: channels and select --------------------------------------------------------- */

static int chan_send_body(sync_blocker *b) {
    fx *f = b->ctx;
    uint64_t v = (uint64_t)b->param;
    sync_blocker_arrive(b);
    int rc = weft_chan_send(f->ch, &v, far_deadline());
    note_after(f);
    return rc;
}

static int chan_recv_body(sync_blocker *b) {
    fx *f = b->ctx;
    uint64_t v = 0xbad;
    sync_blocker_arrive(b);
    int rc = weft_chan_recv(f->ch, &v, far_deadline());
    f->after2 = v == 0xbad; /* nothing stored */
    note_after(f);
    return rc;
}

static void expect_chan_empty(weft_chan *ch, const char *what) {
    uint64_t v = 0;
    int rc = weft_chan_try_recv(ch, &v);
    cr_assert_eq(rc, -EAGAIN, "%s: try_recv returned %d (value %llu)", what, rc,
                 (unsigned long long)v);
}

Test(parked, chan_send_unbuffered, .timeout = 60) {
    fx f;
    fx_start(&f);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), 0, &f.ch), 0);
    sync_blocker b;
    start_blocker(&b, f.rt, chan_send_body, &f, 41);
    cancel_parked(&b, "weft_chan_send (unbuffered)");
    join_blocker(&b);
    expect_sticky(&f, "weft_chan_send");
    /* Not sent, and no sender is left waiting. */
    expect_chan_empty(f.ch, "after a cancelled unbuffered send");
    cr_assert_eq(weft_chan_destroy(f.ch), 0, "a cancelled sender is still counted");
    fx_end(&f);
}

Test(parked, chan_send_buffered_full, .timeout = 60) {
    fx f;
    fx_start(&f);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), 1, &f.ch), 0);
    uint64_t v = 40;
    cr_assert_eq(weft_chan_try_send(f.ch, &v), 0);
    sync_blocker b;
    start_blocker(&b, f.rt, chan_send_body, &f, 41);
    cancel_parked(&b, "weft_chan_send (buffered, full)");
    join_blocker(&b);
    expect_sticky(&f, "weft_chan_send");
    cr_assert_eq(weft_chan_try_recv(f.ch, &v), 0);
    cr_assert_eq(v, 40);
    expect_chan_empty(f.ch, "after a cancelled buffered send");
    cr_assert_eq(weft_chan_destroy(f.ch), 0);
    fx_end(&f);
}

static void chan_recv_case(size_t capacity) {
    fx f;
    fx_start(&f);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), capacity, &f.ch), 0);
    sync_blocker b;
    start_blocker(&b, f.rt, chan_recv_body, &f, 0);
    cancel_parked(&b, capacity ? "weft_chan_recv (buffered)" : "weft_chan_recv (unbuffered)");
    join_blocker(&b);
    expect_sticky(&f, "weft_chan_recv");
    cr_expect(f.after2, "a cancelled recv stored a value");
    uint64_t v = 77;
    if (capacity == 0) {
        /* No receiver is left waiting: a try_send finds none. */
        cr_assert_eq(weft_chan_try_send(f.ch, &v), -EAGAIN, "a cancelled receiver still waits");
    } else {
        /* A value sent now is there for the next receiver. */
        cr_assert_eq(weft_chan_try_send(f.ch, &v), 0);
        v = 0;
        cr_assert_eq(weft_chan_try_recv(f.ch, &v), 0, "the cancelled receiver took the value");
        cr_assert_eq(v, 77);
    }
    cr_assert_eq(weft_chan_destroy(f.ch), 0, "a cancelled receiver is still counted");
    fx_end(&f);
}

Test(parked, chan_recv_unbuffered, .timeout = 60) {
    chan_recv_case(0);
}

Test(parked, chan_recv_buffered, .timeout = 60) {
    chan_recv_case(4);
}

static int select_body(sync_blocker *b) {
    fx *f = b->ctx;
    uint64_t in = 0xbad, out = 9;
    weft_case c[3] = {
        {.kind = WEFT_CASE_FD, .fd = f->sv[0], .events = WEFT_IN},
        {.kind = WEFT_CASE_RECV, .chan = f->ch, .elem = &in},
        {.kind = WEFT_CASE_SEND, .chan = f->ch2, .elem = &out},
    };
    sync_blocker_arrive(b);
    int rc = weft_select(c, b->param ? 3 : 1, far_deadline());
    f->after2 = in == 0xbad;
    note_after(f);
    return rc;
}

static void select_case(long with_chans) {
    fx f;
    fx_start(&f);
    fx_socketpair(&f);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), 0, &f.ch), 0);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), 0, &f.ch2), 0);
    sync_blocker b;
    start_blocker(&b, f.rt, select_body, &f, with_chans);
    cancel_parked(&b, with_chans ? "weft_select (chan and fd cases)" : "weft_select (an fd case)");
    join_blocker(&b);
    expect_sticky(&f, "weft_select");
    cr_expect(f.after2, "a cancelled select stored a value");
    /* Performed nothing, and no registration is left: no receiver on ch, no sender on
     * ch2, no reader on the fd. */
    uint64_t v = 5;
    cr_assert_eq(weft_chan_try_send(f.ch, &v), -EAGAIN, "a receiver is left on ch");
    expect_chan_empty(f.ch2, "a sender is left on ch2");
    expect_fd_free_for_readers(&f, "weft_select");
    cr_assert_eq(weft_chan_destroy(f.ch), 0);
    cr_assert_eq(weft_chan_destroy(f.ch2), 0);
    fx_end(&f);
}

Test(parked, select_chans_and_fd, .timeout = 60) {
    select_case(1);
}

Test(parked, select_fd, .timeout = 60) {
    select_case(0);
}

/* ---- parked: sync ------------------------------------------------------------------------ */

static int cond_body(sync_blocker *b) {
    fx *f = b->ctx;
    cr_assert_eq(weft_mutex_lock(&f->m), 0);
    sync_blocker_arrive(b);
    int rc = weft_cond_wait(&f->c, &f->m, far_deadline());
    f->after2 = weft_mutex_unlock(&f->m); /* 0: it held the mutex again */
    note_after(f);
    return rc;
}

Test(parked, cond_wait_returns_holding_the_mutex, .timeout = 60) {
    fx f;
    fx_start(&f);
    sync_blocker b;
    start_blocker(&b, f.rt, cond_body, &f, 0);
    await_parked(&b, "weft_cond_wait");
    /* It released the mutex while waiting; we hold it across the cancel: the wait can
     * return only once it has the mutex again. */
    cr_assert_eq(weft_mutex_trylock(&f.m), 0, "the waiter did not release the mutex");
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_cancel(b.task), 0);
    weft_test_sleep_ms(50);
    cr_assert_not(sync_blocker_finished(&b), "cond_wait returned without the mutex (rc %d)",
                  b.result);
    cr_assert_eq(weft_mutex_unlock(&f.m), 0);
    cr_assert_eq(sync_blocker_await_finished(&b, 10000), 0, "cond_wait did not return");
    cr_assert_eq(b.result, -ECANCELED, "cond_wait returned %d", b.result);
    cr_assert_lt(b.returned_at - t0, PROMPT);
    join_blocker(&b);
    cr_assert_eq(f.after2, 0, "after -ECANCELED the waiter did not hold the mutex (unlock %d)",
                 f.after2);
    expect_sticky(&f, "weft_cond_wait");
    /* No waiter is left queued: a signal now wakes nobody, and destroy is free. */
    cr_assert_eq(weft_cond_destroy(&f.c), 0, "a cancelled waiter is still counted");
    cr_assert_eq(weft_mutex_destroy(&f.m), 0);
    fx_end(&f);
}

static int sem_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_sem_acquire(&f->s, far_deadline());
    note_after(f);
    return rc;
}

Test(parked, sem_acquire, .timeout = 60) {
    fx f;
    fx_start(&f);
    weft_sem_init(&f.s, 0);
    sync_blocker b;
    start_blocker(&b, f.rt, sem_body, &f, 0);
    cancel_parked(&b, "weft_sem_acquire");
    join_blocker(&b);
    expect_sticky(&f, "weft_sem_acquire");
    /* The permit count is unchanged (0), and a release is not swallowed by the
     * withdrawn waiter. */
    cr_assert_eq(weft_sem_try_acquire(&f.s), -EAGAIN, "a cancelled acquire made a permit");
    cr_assert_eq(weft_sem_release(&f.s), 0);
    cr_assert_eq(weft_sem_try_acquire(&f.s), 0, "a release went to the cancelled waiter");
    cr_assert_eq(weft_sem_try_acquire(&f.s), -EAGAIN);
    cr_assert_eq(weft_sem_destroy(&f.s), 0);
    fx_end(&f);
}

static int waitgroup_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_waitgroup_wait(&f->wg, far_deadline());
    note_after(f);
    return rc;
}

Test(parked, waitgroup_wait, .timeout = 60) {
    fx f;
    fx_start(&f);
    cr_assert_eq(weft_waitgroup_add(&f.wg, 1), 0);
    sync_blocker b;
    start_blocker(&b, f.rt, waitgroup_body, &f, 0);
    cancel_parked(&b, "weft_waitgroup_wait");
    join_blocker(&b);
    expect_sticky(&f, "weft_waitgroup_wait");
    cr_assert_eq(weft_waitgroup_done(&f.wg), 0);
    cr_assert_eq(weft_waitgroup_destroy(&f.wg), 0, "a cancelled waiter is still counted");
    fx_end(&f);
}

static int event_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_event_wait(&f->ev, far_deadline());
    note_after(f);
    return rc;
}

Test(parked, event_wait, .timeout = 60) {
    fx f;
    fx_start(&f);
    sync_blocker b;
    start_blocker(&b, f.rt, event_body, &f, 0);
    cancel_parked(&b, "weft_event_wait");
    join_blocker(&b);
    expect_sticky(&f, "weft_event_wait");
    cr_assert_eq(weft_event_is_set(&f.ev), 0);
    cr_assert_eq(weft_event_destroy(&f.ev), 0, "a cancelled waiter is still counted");
    fx_end(&f);
}

static int lock_until_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_mutex_lock_until(&f->m, far_deadline());
    f->after2 = weft_mutex_unlock(&f->m); /* -EPERM: it holds nothing */
    note_after(f);
    return rc;
}

Test(parked, mutex_lock_until, .timeout = 60) {
    fx f;
    fx_start(&f);
    cr_assert_eq(weft_mutex_lock(&f.m), 0);
    sync_blocker b;
    start_blocker(&b, f.rt, lock_until_body, &f, 0);
    cancel_parked(&b, "weft_mutex_lock_until");
    join_blocker(&b);
    cr_assert_eq(f.after2, -EPERM, "a cancelled lock_until holds the mutex (unlock %d)", f.after2);
    expect_sticky(&f, "weft_mutex_lock_until");
    cr_assert_eq(weft_mutex_unlock(&f.m), 0, "the holder lost the mutex");
    cr_assert_eq(weft_mutex_destroy(&f.m), 0, "a cancelled waiter is still counted");
    fx_end(&f);
}

/* ---- parked: groups ---------------------------------------------------------------------- */

static void *member_waits_event(void *arg) {
    fx *f = arg;
    int rc = weft_event_wait(&f->ev, weft_now() + 20 * SECONDS);
    return (void *)(intptr_t)(rc == 0 ? 0x3e3 : rc);
}

static void *member_marks(void *arg) {
    fx *f = arg;
    weft__atomic_store_release(&f->ran, 1);
    return NULL;
}

static int group_next_body(sync_blocker *b) {
    fx *f = b->ctx;
    void *r = (void *)1;
    sync_blocker_arrive(b);
    int rc = weft_group_next(f->g, &r, far_deadline());
    f->after2 = r == (void *)1;
    note_after(f);
    return rc;
}

static int group_wait_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_group_wait(f->g, far_deadline());
    note_after(f);
    return rc;
}

static int group_spawn_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_group_spawn(f->g, member_marks, f);
    note_after(f);
    return rc;
}

/* The member's result is still there (not taken, not dropped), and it was the only one. */
static void expect_one_result(fx *f, const char *what) {
    void *r = NULL;
    cr_assert_eq(weft_event_set(&f->ev), 0);
    cr_assert_eq(weft_group_next(f->g, &r, weft_now() + 10 * SECONDS), 0,
                 "%s: the member's result is gone", what);
    cr_assert_eq((intptr_t)r, 0x3e3, "%s: result %p", what, r);
    cr_assert_eq(weft_group_next(f->g, &r, weft_now() + 10 * SECONDS), -ECHILD,
                 "%s: a second member?", what);
}

static void group_case(sync_block_fn body, size_t limit, const char *what) {
    fx f;
    fx_start(&f);
    cr_assert_eq(weft_group_create(&f.g), 0);
    cr_assert_eq(weft_group_set_limit(f.g, limit), 0);
    cr_assert_eq(weft_group_spawn_on(f.g, f.rt, member_waits_event, &f), 0);
    sync_blocker b;
    start_blocker(&b, f.rt, body, &f, 0);
    cancel_parked(&b, what);
    join_blocker(&b);
    expect_sticky(&f, what);
    expect_one_result(&f, what);
    cr_assert_eq(weft__atomic_load_acquire(&f.ran), 0, "%s: a refused spawn ran", what);
    cr_assert_eq(weft_group_destroy(f.g), 0);
    fx_end(&f);
}

Test(parked, group_next, .timeout = 60) {
    group_case(group_next_body, 0, "weft_group_next");
}

Test(parked, group_wait_drops_nothing, .timeout = 60) {
    group_case(group_wait_body, 0, "weft_group_wait");
}

Test(parked, group_spawn_waiting_for_a_slot, .timeout = 60) {
    group_case(group_spawn_body, 1, "weft_group_spawn (no slot)");
}

/* ---- early: cancelled before the call ---------------------------------------------------- */

typedef struct early {
    weft_fn fn;
    void *arg;
    void *result;
    int join_rc;
    int cancel_rc, cancel_again_rc;
} early;

/* Spawns fn on our 1-worker runtime, where it cannot run before we park, and cancels
 * it before that: it must still run, to its end. */
static void *early_starter(void *arg) {
    early *e = arg;
    weft_task *t = weft_spawn(e->fn, e->arg);
    cr_assert_not_null(t, "spawn: %s", strerror(errno));
    e->cancel_rc = weft_cancel(t);
    e->cancel_again_rc = weft_cancel(t);
    e->join_rc = weft_join(t, &e->result);
    return NULL;
}

static void run_cancelled(weft_fn fn, void *arg, unsigned flags) {
    early e = {fn, arg, NULL, 1, 1, 1};
    cr_assert_eq(weft_run(&(weft_config){.workers = 1, .flags = flags | WEFT_CONFIG_NO_CHAOS},
                          early_starter, &e, NULL),
                 0, "weft_run");
    cr_assert_eq(e.cancel_rc, 0, "weft_cancel of a task not yet started");
    cr_assert_eq(e.cancel_again_rc, 0, "a second weft_cancel");
    cr_assert_eq(e.join_rc, 0, "join of the cancelled task");
    cr_assert_eq(e.result, DONE_MARK, "the cancelled task did not run to its end");
}

/* Every point below returns -ECANCELED at once (and the whole body takes far less than
 * the long deadlines it uses). */
#define EXPECT_ECANCELED(call)                                                                     \
    do {                                                                                           \
        long rc_ = (long)(call);                                                                   \
        cr_assert_eq(rc_, -ECANCELED, "%s returned %ld in a cancelled task", #call, rc_);          \
    } while (0)

static void *identity(void *arg) {
    return arg;
}

/* Waits (yielding: not a cancellation point) until t has finished, without joining. */
static void yield_until_complete(weft_task *t) {
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (!(weft__atomic_load_acquire(&t->state) & WEFT__TASK_COMPLETE)) {
        cr_assert_lt(weft_now(), give_up, "the child did not finish");
        weft_yield();
    }
}

static void *early_sleep_join(void *arg) {
    (void)arg;
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_cancelled(), 1, "weft_cancelled() in a task cancelled before it ran");
    EXPECT_ECANCELED(weft_sleep_ms(0));
    EXPECT_ECANCELED(weft_sleep_until(1));
    EXPECT_ECANCELED(weft_sleep_ms(LONG_WAIT / MS));
    EXPECT_ECANCELED(weft_sleep_until(far_deadline()));
    /* A child that has finished: a join could complete without waiting. */
    weft_task *c = weft_spawn(identity, (void *)42);
    cr_assert_not_null(c);
    yield_until_complete(c);
    void *r = (void *)1;
    EXPECT_ECANCELED(weft_join(c, &r));
    EXPECT_ECANCELED(weft_join_until(c, far_deadline(), &r));
    EXPECT_ECANCELED(weft_join_until(c, 1, &r));
    cr_assert_eq(r, (void *)1, "a cancelled join stored a result");
    /* The handle is valid still. */
    cr_assert_eq(weft_cancel_shield(1), 0);
    cr_assert_eq(weft_join(c, &r), 0, "a shielded join of the handle");
    cr_assert_eq((intptr_t)r, 42);
    cr_assert_eq(weft_cancel_shield(0), 1);
    cr_assert_lt(weft_now() - t0, PROMPT, "the cancelled calls waited");
    return DONE_MARK;
}

Test(early, sleep_and_join, .timeout = 60) {
    run_cancelled(early_sleep_join, NULL, 0);
    run_cancelled(early_sleep_join, NULL, WEFT_CONFIG_NO_INLINE_JOIN);
    WEFT_ASSERT_NO_LEAKS();
}

static void *early_fd(void *arg) {
    fx *f = arg;
    uint64_t t0 = weft_now();
    char buf[8];
    struct iovec iov = {buf, 3};
    memcpy(buf, "xyz", 3);
    /* sv[0] is readable (the peer wrote "abc") and writable. */
    EXPECT_ECANCELED(weft_fd_wait(f->sv[0], WEFT_IN, far_deadline()));
    EXPECT_ECANCELED(weft_fd_wait(f->sv[0], WEFT_OUT, 1));
    EXPECT_ECANCELED(weft_read(f->sv[0], buf, sizeof buf, far_deadline()));
    EXPECT_ECANCELED(weft_read(f->sv[0], buf, sizeof buf, 1));
    EXPECT_ECANCELED(weft_write(f->sv[0], "xyz", 3, far_deadline()));
    EXPECT_ECANCELED(weft_writev(f->sv[0], &iov, 1, far_deadline()));
    /* A connection is pending on the listener. */
    EXPECT_ECANCELED(weft_accept(f->listener, NULL, NULL, far_deadline()));
    EXPECT_ECANCELED(
        weft_connect(f->sock, (struct sockaddr *)&f->addr, sizeof f->addr, far_deadline()));
    EXPECT_ECANCELED(weft_tcp_connect("127.0.0.1", ntohs(f->addr.sin_port), far_deadline()));
    cr_assert_lt(weft_now() - t0, PROMPT, "the cancelled calls waited");
    /* Nothing happened: the bytes are unread, the connection unaccepted (shielded now). */
    cr_assert_eq(recv(f->sv[0], buf, sizeof buf, MSG_DONTWAIT), 3, "the cancelled read read");
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_eq(weft_cancel_shield(1), 0);
    int a = weft_accept(f->listener, NULL, NULL, weft_now() + 10 * SECONDS);
    cr_assert_geq(a, 0, "shielded accept of the pending connection: %s", strerror(-a));
    cr_assert_eq(weft_fd_close(a), 0);
    return DONE_MARK;
}

Test(early, fd_calls, .timeout = 60) {
    fx f;
    memset(&f, 0, sizeof f);
    fx_socketpair(&f);
    cr_assert_eq(write(f.sv[1], "abc", 3), 3);
    f.listener = io_loopback_listener(4, &f.addr);
    cr_assert_geq(f.listener, 0);
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(client, (struct sockaddr *)&f.addr, sizeof f.addr), 0);
    f.sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(f.sock, 0);
    run_cancelled(early_fd, &f, 0);
    /* The cancelled writes wrote nothing, the cancelled connect did not connect. */
    char buf[8];
    cr_assert_eq(recv(f.sv[1], buf, sizeof buf, MSG_DONTWAIT), -1, "a cancelled write wrote");
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    cr_assert_eq(getpeername(f.sock, (struct sockaddr *)&peer, &len), -1,
                 "the cancelled connect connected");
    cr_assert_eq(weft_fd_close(f.sv[0]), 0);
    cr_assert_eq(weft_fd_close(f.sv[1]), 0);
    cr_assert_eq(weft_fd_close(f.listener), 0);
    cr_assert_eq(weft_fd_close(f.sock), 0);
    close(client);
    WEFT_ASSERT_NO_LEAKS();
}

static void *early_chan(void *arg) {
    fx *f = arg;
    uint64_t t0 = weft_now();
    uint64_t v = 0xbad, w = 12;
    /* ch (capacity 2) holds 11; ch2 is unbuffered. */
    EXPECT_ECANCELED(weft_chan_recv(f->ch, &v, far_deadline()));
    EXPECT_ECANCELED(weft_chan_recv(f->ch, &v, 1));
    EXPECT_ECANCELED(weft_chan_send(f->ch, &w, far_deadline()));
    EXPECT_ECANCELED(weft_chan_send(f->ch2, &w, 1));
    EXPECT_ECANCELED(weft_chan_recv(f->ch2, &v, far_deadline()));
    cr_assert_eq(v, 0xbad, "a cancelled recv stored a value");
    weft_case c[2] = {{.kind = WEFT_CASE_RECV, .chan = f->ch, .elem = &v},
                      {.kind = WEFT_CASE_FD, .fd = f->sv[0], .events = WEFT_OUT}};
    EXPECT_ECANCELED(weft_select(c, 2, far_deadline()));
    EXPECT_ECANCELED(weft_select(c, 1, 1));
    EXPECT_ECANCELED(weft_select(&c[1], 1, far_deadline()));
    EXPECT_ECANCELED(weft_select(NULL, 0, weft_now() + 10 * MS));
    cr_assert_eq(v, 0xbad, "a cancelled select stored a value");
    cr_assert_lt(weft_now() - t0, PROMPT, "the cancelled calls waited");
    /* try_ calls are no cancellation points: the one buffered value is there. */
    cr_assert_eq(weft_chan_try_recv(f->ch, &v), 0, "try_recv in a cancelled task");
    cr_assert_eq(v, 11);
    cr_assert_eq(weft_chan_try_recv(f->ch, &v), -EAGAIN, "a cancelled send sent");
    cr_assert_eq(weft_chan_try_send(f->ch, &w), 0, "try_send in a cancelled task");
    return DONE_MARK;
}

Test(early, chan_and_select, .timeout = 60) {
    fx f;
    memset(&f, 0, sizeof f);
    fx_socketpair(&f);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), 2, &f.ch), 0);
    cr_assert_eq(weft_chan_create(sizeof(uint64_t), 0, &f.ch2), 0);
    uint64_t v = 11;
    cr_assert_eq(weft_chan_try_send(f.ch, &v), 0);
    run_cancelled(early_chan, &f, 0);
    cr_assert_eq(weft_chan_try_recv(f.ch, &v), 0);
    cr_assert_eq(v, 12);
    cr_assert_eq(weft_chan_destroy(f.ch), 0);
    cr_assert_eq(weft_chan_destroy(f.ch2), 0);
    cr_assert_eq(weft_fd_close(f.sv[0]), 0);
    cr_assert_eq(weft_fd_close(f.sv[1]), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static void *early_sync(void *arg) {
    fx *f = arg;
    uint64_t t0 = weft_now();
    /* cond: returns holding the mutex it was given. */
    cr_assert_eq(weft_mutex_lock(&f->m), 0, "weft_mutex_lock (no cancellation point)");
    EXPECT_ECANCELED(weft_cond_wait(&f->c, &f->m, far_deadline()));
    cr_assert_eq(weft_mutex_unlock(&f->m), 0, "cond_wait's -ECANCELED without the mutex");
    /* A free permit, a set event, a zero wait group, a free mutex. */
    EXPECT_ECANCELED(weft_sem_acquire(&f->s, far_deadline()));
    EXPECT_ECANCELED(weft_sem_acquire(&f->s, 1));
    EXPECT_ECANCELED(weft_event_wait(&f->ev, far_deadline()));
    EXPECT_ECANCELED(weft_waitgroup_wait(&f->wg, far_deadline()));
    EXPECT_ECANCELED(weft_mutex_lock_until(&f->m, far_deadline()));
    EXPECT_ECANCELED(weft_mutex_lock_until(&f->m, 1));
    cr_assert_eq(weft_mutex_unlock(&f->m), -EPERM, "a cancelled lock_until took the mutex");
    cr_assert_lt(weft_now() - t0, PROMPT, "the cancelled calls waited");
    /* Not cancellation points: */
    weft_yield();
    cr_assert_eq(weft_mutex_trylock(&f->m), 0);
    cr_assert_eq(weft_mutex_unlock(&f->m), 0);
    cr_assert_eq(weft_sem_try_acquire(&f->s), 0, "the cancelled acquire took the permit");
    cr_assert_eq(weft_sem_release(&f->s), 0);
    return DONE_MARK;
}

Test(early, sync, .timeout = 60) {
    fx f;
    memset(&f, 0, sizeof f);
    weft_sem_init(&f.s, 1);
    cr_assert_eq(weft_event_set(&f.ev), 0);
    run_cancelled(early_sync, &f, 0);
    cr_assert_eq(weft_sem_try_acquire(&f.s), 0);
    cr_assert_eq(weft_sem_try_acquire(&f.s), -EAGAIN, "permits changed");
    cr_assert_eq(weft_mutex_destroy(&f.m), 0);
    cr_assert_eq(weft_cond_destroy(&f.c), 0);
    cr_assert_eq(weft_sem_destroy(&f.s), 0);
    cr_assert_eq(weft_event_destroy(&f.ev), 0);
    cr_assert_eq(weft_waitgroup_destroy(&f.wg), 0);
    WEFT_ASSERT_NO_LEAKS();
}

static void *member_checks_not_cancelled(void *arg) {
    (void)arg;
    cr_assert_eq(weft_cancelled(), 0, "a member spawned by a cancelled task is cancelled");
    cr_assert_eq(weft_sleep_ms(1), 0);
    return (void *)0x3e3;
}

static void *member_sets_ran(void *arg) {
    fx *f = arg;
    void *r = member_checks_not_cancelled(NULL);
    weft__atomic_store_release(&f->ran, 2);
    return r;
}

static void *early_group_body(void *arg) {
    fx *f = arg;
    uint64_t t0 = weft_now();
    void *r = (void *)1;
    /* With a free slot (no limit), a spawn does not wait: no cancellation point. */
    cr_assert_eq(weft_group_spawn(f->g, member_sets_ran, f), 0,
                 "group_spawn with a free slot in a cancelled task");
    while (weft__atomic_load_acquire(&f->ran) != 2) {
        cr_assert_lt(weft_now() - t0, 10 * SECONDS, "the member did not run");
        weft_yield();
    }
    /* Its result is unread: next and wait could complete without waiting. */
    EXPECT_ECANCELED(weft_group_next(f->g, &r, far_deadline()));
    EXPECT_ECANCELED(weft_group_next(f->g, &r, 1));
    EXPECT_ECANCELED(weft_group_wait(f->g, far_deadline()));
    cr_assert_eq(r, (void *)1, "a cancelled next stored a result");
    /* With no slot free, a spawn is a cancellation point: -ECANCELED at once. */
    cr_assert_eq(weft_group_set_limit(f->g, 1), 0);
    cr_assert_eq(weft_group_spawn(f->g, member_waits_event, f), 0, "spawn into the free slot");
    EXPECT_ECANCELED(weft_group_spawn(f->g, member_marks, f));
    cr_assert_lt(weft_now() - t0, PROMPT, "the cancelled calls waited");
    /* The result was not taken (nor dropped by the cancelled wait): shielded, it is. */
    cr_assert_eq(weft_cancel_shield(1), 0);
    cr_assert_eq(weft_group_next(f->g, &r, weft_now() + 10 * SECONDS), 0, "the result is gone");
    cr_assert_eq((intptr_t)r, 0x3e3);
    cr_assert_eq(weft_cancel_shield(0), 1);
    /* weft_group_destroy is no cancellation point: it waits for the member. */
    cr_assert_eq(weft_event_set(&f->ev), 0);
    cr_assert_eq(weft_group_destroy(f->g), 0, "destroy from a cancelled task");
    return DONE_MARK;
}

Test(early, group, .timeout = 60) {
    fx f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(weft_group_create(&f.g), 0);
    run_cancelled(early_group_body, &f, 0);
    cr_assert_eq(weft__atomic_load_acquire(&f.ran), 2, "the refused spawn ran");
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- semantics: not cancellation points -------------------------------------------------- */

static int mutex_lock_body(sync_blocker *b) {
    fx *f = b->ctx;
    sync_blocker_arrive(b);
    int rc = weft_mutex_lock(&f->m);
    f->after2 = weft_mutex_unlock(&f->m);
    note_after(f);
    return rc;
}

Test(cancel, mutex_lock_is_not_a_cancellation_point, .timeout = 60) {
    fx f;
    fx_start(&f);
    cr_assert_eq(weft_mutex_lock(&f.m), 0);
    sync_blocker b;
    start_blocker(&b, f.rt, mutex_lock_body, &f, 0);
    await_parked(&b, "weft_mutex_lock");
    cr_assert_eq(weft_cancel(b.task), 0);
    weft_test_sleep_ms(100);
    cr_assert_not(sync_blocker_finished(&b), "weft_mutex_lock returned %d on a cancel", b.result);
    cr_assert_eq(weft_mutex_unlock(&f.m), 0);
    join_blocker(&b);
    cr_assert_eq(b.result, 0, "weft_mutex_lock of a cancelled task returned %d", b.result);
    cr_assert_eq(f.after2, 0, "it did not hold the mutex");
    expect_sticky(&f, "weft_mutex_lock");
    cr_assert_eq(weft_mutex_destroy(&f.m), 0);
    fx_end(&f);
}

/* ---- semantics: plain threads ------------------------------------------------------------ */

static void *sleeps_long(void *arg) {
    (void)arg;
    return (void *)(intptr_t)weft_sleep_ms(LONG_WAIT / MS);
}

static void *pool_call(void *arg) {
    fx *f = arg;
    weft__atomic_store_release(&f->ran, 1);
    /* A plain thread: its waits never return -ECANCELED, however its carrier fares. */
    uint64_t t0 = weft_now();
    f->after = weft_sleep_ms(200);
    f->after2 = weft_now() - t0 >= 200 * MS;
    f->cancelled = weft_cancelled() + 10 * weft_cancel_shield(1);
    weft__atomic_store_release(&f->ran, 2);
    return (void *)77;
}

static void expect_pool_call_done(fx *f) {
    cr_assert_eq(weft__atomic_load_acquire(&f->ran), 2, "the call did not run to its end");
    cr_assert_eq(f->after, 0, "a sleep in a blocking call returned %d", f->after);
    cr_assert(f->after2, "the sleep in the blocking call ended early");
    cr_assert_eq(f->cancelled, -10 * EPERM, "weft_cancelled / shield on a pool thread");
}

Test(cancel, plain_threads_never_see_ecanceled, .timeout = 60) {
    cr_assert_eq(weft_cancelled(), 0, "weft_cancelled() outside a task");
    cr_assert_eq(weft_cancel_shield(1), -EPERM, "weft_cancel_shield outside a task");
    cr_assert_eq(weft_cancel_shield(0), -EPERM);
    fx f;
    fx_start(&f);
    /* A thread joining a task that is cancelled gets the task's result. */
    weft_task *t = weft_spawn_on(f.rt, sleeps_long, NULL);
    cr_assert_not_null(t);
    weft_test_sleep_ms(20);
    cr_assert_eq(weft_cancel(t), 0);
    void *r = NULL;
    cr_assert_eq(weft_join_until(t, weft_now() + 10 * SECONDS, &r), 0, "the thread's join");
    cr_assert_eq((intptr_t)r, -ECANCELED, "the task's sleep returned %ld", (long)(intptr_t)r);
    /* A thread waiting in group_next on a cancelled group gets a member's result. */
    cr_assert_eq(weft_group_create(&f.g), 0);
    cr_assert_eq(weft_group_spawn_on(f.g, f.rt, sleeps_long, NULL), 0);
    cr_assert_eq(weft_group_cancel(f.g), 0);
    cr_assert_eq(weft_group_next(f.g, &r, weft_now() + 10 * SECONDS), 0, "the thread's next");
    cr_assert_eq((intptr_t)r, -ECANCELED);
    cr_assert_eq(weft_group_destroy(f.g), 0);
    /* The blocking pool's threads are plain threads. */
    weft_task *call = weft_spawn_blocking_on(f.rt, pool_call, &f);
    cr_assert_not_null(call);
    cr_assert_eq(weft_cancel(call), 0);
    cr_assert_eq(weft_join(call, &r), 0);
    cr_assert_eq((intptr_t)r, 77);
    expect_pool_call_done(&f);
    fx_end(&f);
}

/* ---- semantics: the blocking pool -------------------------------------------------------- */

typedef struct pool_fx {
    fx *f;
    int join_rc;
    void *result;
    weft_task *call;
} pool_fx;

static void *cancel_running_call(void *arg) {
    pool_fx *p = arg;
    weft_task *call = weft_spawn_blocking(pool_call, p->f);
    cr_assert_not_null(call);
    while (weft__atomic_load_acquire(&p->f->ran) == 0)
        cr_assert_eq(weft_sleep_ms(1), 0);
    cr_assert_eq(weft_cancel(call), 0);
    p->join_rc = weft_join(call, &p->result);
    return NULL;
}

static void *cancel_call_before_it_starts(void *arg) {
    pool_fx *p = arg;
    weft_task *call = weft_spawn_blocking(pool_call, p->f);
    cr_assert_not_null(call);
    cr_assert_eq(weft_cancel(call), 0);
    p->join_rc = weft_join(call, &p->result);
    return NULL;
}

/* The joiner of a call is the one cancelled: its join ends, the call does not. */
static void *join_call(void *arg) {
    pool_fx *p = arg;
    p->call = weft_spawn_blocking(pool_call, p->f);
    cr_assert_not_null(p->call);
    p->join_rc = weft_join(p->call, &p->result);
    return NULL;
}

Test(cancel, blocking_call_runs_to_its_end, .timeout = 60) {
    weft_fn starters[] = {cancel_running_call, cancel_call_before_it_starts};
    for (size_t i = 0; i < 2; i++) {
        fx f;
        memset(&f, 0, sizeof f);
        pool_fx p = {&f, 1, NULL, NULL};
        cr_assert_eq(weft_run(&(weft_config){.workers = 2}, starters[i], &p, NULL), 0);
        cr_assert_eq(p.join_rc, 0, "join of a cancelled blocking call (%zu)", i);
        cr_assert_eq((intptr_t)p.result, 77, "its result (%zu)", i);
        expect_pool_call_done(&f);
        WEFT_ASSERT_NO_LEAKS();
    }
}

/* The joiner of a call is cancelled while the call runs. */
static void cancelled_joiner_case(unsigned flags, weft_runtime_stats *st, pool_fx *p, fx *f) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(
                     &(weft_config){.workers = 1, .flags = flags | WEFT_CONFIG_NO_CHAOS}, &rt),
                 0);
    weft_task *j = weft_spawn_on(rt, join_call, p);
    cr_assert_not_null(j);
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (weft__atomic_load_acquire(&f->ran) == 0) {
        cr_assert_lt(weft_now(), give_up, "the blocking call did not start");
        weft_test_sleep_ms(1);
    }
    cr_assert_eq(weft_cancel(j), 0);
    cr_assert_eq(weft_join(j, NULL), 0);
    if (p->join_rc == -ECANCELED) { /* the handle is still valid */
        cr_assert_lt(weft__atomic_load_acquire(&f->ran), 2, "the join waited for the call");
        cr_assert_eq(weft_join(p->call, &p->result), 0, "the handle after the cancelled join");
    }
    cr_assert_eq((intptr_t)p->result, 77);
    expect_pool_call_done(f);
    cr_assert_eq(weft_runtime_stats_get(rt, st), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

/* Without inline joins the join is an ordinary wait: -ECANCELED at once, the call goes
 * on, and its handle stays valid. */
Test(cancel, blocking_call_cancelled_joiner, .timeout = 60) {
    fx f;
    memset(&f, 0, sizeof f);
    pool_fx p = {&f, 1, NULL, NULL};
    weft_runtime_stats st;
    cancelled_joiner_case(WEFT_CONFIG_NO_INLINE_JOIN, &st, &p, &f);
    cr_assert_eq(p.join_rc, -ECANCELED, "the cancelled joiner of a blocking call got %d",
                 p.join_rc);
}

/* With inline joins on (the default), a call spawned and joined at once: its carrier is
 * never run inline (its wait cannot be cancelled, so a joiner running it could not be),
 * and the cancelled joiner returns -ECANCELED at once (found by this test: the carrier
 * used to be inlined, and the join waited out the call). */
Test(cancel, blocking_call_cancelled_inline_joiner, .timeout = 60) {
    fx f;
    memset(&f, 0, sizeof f);
    pool_fx p = {&f, 1, NULL, NULL};
    weft_runtime_stats st;
    cancelled_joiner_case(0, &st, &p, &f);
    cr_assert_eq(st.joins_inline, 0, "a blocking-pool carrier ran inline");
    cr_assert_eq(p.join_rc, -ECANCELED, "the cancelled joiner got %d", p.join_rc);
}

/* ---- semantics: the shield --------------------------------------------------------------- */

static void *shield_basics(void *arg) {
    (void)arg;
    /* Not cancelled yet: the shield nests and reports the previous setting. */
    cr_assert_eq(weft_cancel_shield(1), 0);
    cr_assert_eq(weft_cancel_shield(7), 1, "a second shield");
    cr_assert_eq(weft_cancel_shield(1), 1);
    cr_assert_eq(weft_cancel_shield(0), 1);
    cr_assert_eq(weft_cancel_shield(0), 0);
    return DONE_MARK;
}

static void *shielded_when_cancelled(void *arg) {
    (void)arg;
    /* Cancelled before it ran: with the shield up, points behave as without a cancel. */
    int old = weft_cancel_shield(1);
    cr_assert_eq(old, 0);
    cr_assert_eq(weft_cancelled(), 1, "weft_cancelled() is 1 under the shield too");
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_sleep_ms(20), 0, "a shielded sleep");
    cr_assert_geq(weft_now() - t0, 20 * MS, "the shielded sleep ended early");
    weft_chan *ch;
    cr_assert_eq(weft_chan_create(sizeof(int), 1, &ch), 0);
    int v = 3;
    cr_assert_eq(weft_chan_send(ch, &v, WEFT_FOREVER), 0, "a shielded send");
    cr_assert_eq(weft_chan_recv(ch, &v, WEFT_FOREVER), 0, "a shielded recv");
    cr_assert_eq(weft_chan_recv(ch, &v, weft_now() + 5 * MS), -ETIMEDOUT,
                 "a shielded wait times out as usual");
    /* Nested: an inner shield and its release keep the outer one. */
    int inner = weft_cancel_shield(1);
    cr_assert_eq(inner, 1);
    cr_assert_eq(weft_cancel_shield(inner), 1);
    cr_assert_eq(weft_sleep_ms(0), 0, "still shielded after the inner release");
    /* Lifted: the next point. */
    cr_assert_eq(weft_cancel_shield(old), 1);
    EXPECT_ECANCELED(weft_chan_send(ch, &v, WEFT_FOREVER));
    EXPECT_ECANCELED(weft_sleep_ms(0));
    cr_assert_eq(weft_chan_destroy(ch), 0);
    return DONE_MARK;
}

Test(cancel, shield_returns_previous_and_nests, .timeout = 60) {
    cr_assert_eq(weft_cancel_shield(1), -EPERM, "outside a task");
    void *r = NULL;
    cr_assert_eq(weft_run(&(weft_config){.workers = 1}, shield_basics, NULL, &r), 0);
    cr_assert_eq(r, DONE_MARK);
    run_cancelled(shielded_when_cancelled, NULL, 0);
    run_cancelled(shielded_when_cancelled, NULL, WEFT_CONFIG_NO_INLINE_JOIN);
    WEFT_ASSERT_NO_LEAKS();
}

static int shielded_wait_body(sync_blocker *b) {
    fx *f = b->ctx;
    int old = weft_cancel_shield(1);
    sync_blocker_arrive(b);
    int rc = weft_event_wait(&f->ev, far_deadline());
    f->cancelled = weft_cancelled();
    f->after2 = weft_cancel_shield(old);
    f->after = weft_sleep_ms(0);
    return rc;
}

/* A cancel that arrives while a shielded task waits does not end the wait. */
Test(cancel, shielded_wait_completes_normally, .timeout = 60) {
    fx f;
    fx_start(&f);
    sync_blocker b;
    start_blocker(&b, f.rt, shielded_wait_body, &f, 0);
    await_parked(&b, "a shielded weft_event_wait");
    cr_assert_eq(weft_cancel(b.task), 0);
    weft_test_sleep_ms(100);
    cr_assert_not(sync_blocker_finished(&b), "a shielded wait returned %d on a cancel", b.result);
    /* It parks again (the cancel's wake-up is spurious to it). */
    cr_assert_eq(sync_await_asleep((pid_t)weft__atomic_load_acquire(&b.tid), 10000), 0);
    cr_assert_eq(weft_event_set(&f.ev), 0);
    join_blocker(&b);
    cr_assert_eq(b.result, 0, "the shielded wait returned %d", b.result);
    cr_assert_eq(f.cancelled, 1);
    cr_assert_eq(f.after2, 1, "shield(old) returned the shield's setting");
    cr_assert_eq(f.after, -ECANCELED, "the point after the shield was lifted returned %d", f.after);
    cr_assert_eq(weft_event_destroy(&f.ev), 0);
    fx_end(&f);
}

/* ---- semantics: handles ------------------------------------------------------------------ */

static void *count_and_return(void *arg) {
    fx *f = arg;
    weft__atomic_store_release(&f->ran, 1);
    return (void *)99;
}

Test(cancel, finished_null_and_detached_handles, .timeout = 60) {
    cr_assert_eq(weft_cancel(NULL), -EINVAL);
    fx f;
    fx_start(&f);
    /* A finished task: 0 and harmless. */
    weft_task *t = weft_spawn_on(f.rt, count_and_return, &f);
    cr_assert_not_null(t);
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (!(weft__atomic_load_acquire(&t->state) & WEFT__TASK_COMPLETE)) {
        cr_assert_lt(weft_now(), give_up, "the task did not finish");
        weft_test_sleep_ms(1);
    }
    cr_assert_eq(weft_cancel(t), 0, "cancel of a finished task");
    cr_assert_eq(weft_cancel(t), 0, "twice");
    void *r = NULL;
    cr_assert_eq(weft_join(t, &r), 0);
    cr_assert_eq((intptr_t)r, 99);
    /* A detached task (still running: waiting on ev): -EINVAL, and it is not cancelled. */
    sync_blocker b;
    start_blocker(&b, f.rt, wait_event_body, &f, 0);
    await_parked(&b, "the task to detach");
    weft_detach(b.task);
    cr_assert_eq(weft_cancel(b.task), -EINVAL, "cancel of a detached handle");
    weft_test_sleep_ms(50);
    cr_assert_not(sync_blocker_finished(&b), "the detached task was cancelled (%d)", b.result);
    cr_assert_eq(weft_event_set(&f.ev), 0);
    cr_assert_eq(sync_blocker_await_finished(&b, 10000), 0);
    cr_assert_eq(b.result, 0x5eed, "the detached task's wait returned %d", b.result);
    fx_end(&f);
}

static void cancel_from_timer(weft_timer *tm, void *arg) {
    (void)tm;
    sync_blocker *b = arg;
    cr_assert_eq(weft_cancel(b->task), 0, "weft_cancel from a timer callback");
}

Test(cancel, from_a_timer_callback, .timeout = 60) {
    fx f;
    fx_start(&f);
    sync_blocker b;
    start_blocker(&b, f.rt, sleep_ms_body, &f, 0);
    await_parked(&b, "weft_sleep_ms");
    weft_timer *tm;
    cr_assert_eq(weft_timer_create(f.rt, cancel_from_timer, &b, &tm), 0);
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_timer_arm(tm, weft_now() + 10 * MS), 0);
    join_blocker(&b);
    cr_assert_eq(b.result, -ECANCELED, "the sleep returned %d", b.result);
    cr_assert_lt(b.returned_at - t0, PROMPT);
    cr_assert_eq(weft_timer_destroy(tm), 0);
    fx_end(&f);
}

typedef struct hammer {
    weft_task *t;
    weft__atomic_word go;
    int bad;
} hammer;

static void *hammer_cancel(void *arg) {
    hammer *h = arg;
    while (!weft__atomic_load_acquire(&h->go))
        sched_yield();
    for (int i = 0; i < 2000; i++)
        if (weft_cancel(h->t) != 0)
            h->bad++;
    return NULL;
}

static void *sleeps_then_counts(void *arg) {
    (void)arg;
    int n = 0;
    for (int i = 0; i < 3; i++)
        n += weft_sleep_ms(LONG_WAIT / MS) == -ECANCELED;
    return (void *)(intptr_t)n;
}

/* Several threads cancel one task at once, and go on after it finished. */
Test(cancel, many_cancels_at_once, .timeout = 60) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    hammer h = {.t = weft_spawn_on(rt, sleeps_then_counts, NULL)};
    cr_assert_not_null(h.t);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, hammer_cancel, &h), 0);
    weft__atomic_store_release(&h.go, 1);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(h.bad, 0, "a weft_cancel failed");
    void *r = NULL;
    cr_assert_eq(weft_join_until(h.t, weft_now() + 10 * SECONDS, &r), 0);
    cr_assert_eq((intptr_t)r, 3, "the sleeps after the cancel: %ld cancelled", (long)(intptr_t)r);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
}

Test(cancel, before_start_the_task_still_runs, .timeout = 60) {
    /* early_starter cancels before the task can run; run_cancelled checks it ran. */
    run_cancelled(shield_basics, NULL, 0);
    run_cancelled(shield_basics, NULL, WEFT_CONFIG_NO_INLINE_JOIN);
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- inline joins ------------------------------------------------------------------------ */

typedef struct chain {
    int depth;         /* tasks below the joiner: 1 (a child) or 2 (a child and a grandchild) */
    int shielded;      /* the joiner shields itself around its join */
    int cancel_child;  /* the test cancels the child (its handle, shared) instead */
    weft_task *child;  /* the joiner's child: set before its join */
    uint64_t sleep_ms; /* the bottom task's sleep */
    weft__atomic_word bottom_started;
    weft__atomic_word tid;
    int join_rc[2];
    void *join_result[2];
    int after_join[2]; /* the joiner's (and the child's) next point after its join */
    int bottom_sleep_rc;
    int bottom_cancelled;
    uint64_t bottom_returned_at, joined_at;
} chain;

static void *chain_level(void *arg);

static void *chain_bottom(void *arg) {
    chain *c = arg;
    weft__atomic_store_release(&c->tid, (AO_t)sync_gettid());
    weft__atomic_store_release(&c->bottom_started, 1);
    c->bottom_sleep_rc = weft_sleep_ms(c->sleep_ms);
    c->bottom_cancelled = weft_cancelled();
    c->bottom_returned_at = weft_now();
    return (void *)0xc0ffee;
}

/* Level 0 is the joiner; each level spawns the next and joins it at once. */
typedef struct level {
    chain *c;
    int n;
} level;

static void *chain_level(void *arg) {
    level *l = arg;
    chain *c = l->c;
    level next = {c, l->n + 1};
    weft_task *t =
        l->n + 1 < c->depth ? weft_spawn(chain_level, &next) : weft_spawn(chain_bottom, c);
    cr_assert_not_null(t);
    if (l->n == 0)
        c->child = t; /* published by the bottom's start flag (release) */
    int old = l->n == 0 && c->shielded ? weft_cancel_shield(1) : 0;
    c->join_rc[l->n] = weft_join(t, &c->join_result[l->n]);
    if (l->n == 0 && c->shielded)
        weft_cancel_shield(old);
    if (l->n == 0)
        c->joined_at = weft_now();
    c->after_join[l->n] = weft_sleep_ms(0);
    if (c->join_rc[l->n] == -ECANCELED)
        return t; /* the handle is still valid: the caller joins it */
    return l->n == 0 ? NULL : (void *)0xc0ffee;
}

/* Starts the chain on a 1-worker runtime without chaos (so the joins do run inline),
 * waits until the bottom task sleeps, cancels the joiner; returns its result. */
static void *run_chain(chain *c, unsigned flags, weft_runtime_stats *stats) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(
                     &(weft_config){.workers = 1, .flags = flags | WEFT_CONFIG_NO_CHAOS}, &rt),
                 0);
    level top = {c, 0};
    weft_task *j = weft_spawn_on(rt, chain_level, &top);
    cr_assert_not_null(j);
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (!weft__atomic_load_acquire(&c->bottom_started)) {
        cr_assert_lt(weft_now(), give_up, "the bottom task did not start");
        weft_test_sleep_ms(1);
    }
    cr_assert_eq(sync_await_asleep((pid_t)weft__atomic_load_acquire(&c->tid), 10000), 0,
                 "the bottom task did not park");
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_cancel(c->cancel_child ? c->child : j), 0);
    void *r = (void *)1;
    cr_assert_eq(weft_join_until(j, weft_now() + 10 * SECONDS, &r), 0, "the joiner did not end");
    if (!c->shielded)
        cr_assert_lt(c->joined_at - t0, PROMPT, "the cancelled joiner's join took %llu ms",
                     (unsigned long long)((c->joined_at - t0) / MS));
    if (r) { /* a child handle to join */
        void *cr = NULL;
        cr_assert_eq(weft_join_until((weft_task *)r, weft_now() + 10 * SECONDS, &cr), 0);
        cr_assert_eq(cr, (void *)0xc0ffee);
    }
    cr_assert_eq(weft_runtime_stats_get(rt, stats), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    WEFT_ASSERT_NO_LEAKS();
    return r;
}

Test(inline_join, cancelled_joiner_cancels_its_inline_child, .timeout = 60) {
    chain c = {.depth = 1, .sleep_ms = LONG_WAIT / MS};
    weft_runtime_stats st;
    cr_assert_null(run_chain(&c, 0, &st));
    cr_assert_eq(st.joins_inline, 1, "the child did not run inline (premise of the test)");
    cr_assert_eq(c.bottom_sleep_rc, -ECANCELED, "the inline child's sleep returned %d",
                 c.bottom_sleep_rc);
    cr_assert_eq(c.bottom_cancelled, 1, "weft_cancelled() in the inline child");
    cr_assert_eq(c.join_rc[0], 0, "the join returns once the child returned: %d", c.join_rc[0]);
    cr_assert_eq(c.join_result[0], (void *)0xc0ffee, "the join returns the child's result");
    cr_assert_eq(c.after_join[0], -ECANCELED, "the joiner's next point");
}

Test(inline_join, a_chain_of_inline_joins, .timeout = 60) {
    chain c = {.depth = 2, .sleep_ms = LONG_WAIT / MS};
    weft_runtime_stats st;
    cr_assert_null(run_chain(&c, 0, &st));
    cr_assert_eq(st.joins_inline, 2, "the chain did not run inline (premise of the test)");
    cr_assert_eq(c.bottom_sleep_rc, -ECANCELED, "the grandchild's sleep returned %d",
                 c.bottom_sleep_rc);
    cr_assert_eq(c.join_rc[1], 0);
    cr_assert_eq(c.join_result[1], (void *)0xc0ffee);
    cr_assert_eq(c.after_join[1], -ECANCELED, "the inline child's point after its join");
    cr_assert_eq(c.join_rc[0], 0);
    cr_assert_eq(c.join_result[0], (void *)0xc0ffee);
    cr_assert_eq(c.after_join[0], -ECANCELED);
}

Test(inline_join, shielded_joiner_leaves_its_inline_child_alone, .timeout = 60) {
    chain c = {.depth = 1, .shielded = 1, .sleep_ms = 300};
    weft_runtime_stats st;
    uint64_t t0 = weft_now();
    cr_assert_null(run_chain(&c, 0, &st));
    cr_assert_eq(st.joins_inline, 1, "the child did not run inline (premise of the test)");
    cr_assert_eq(c.bottom_sleep_rc, 0, "the shielded joiner's child was cancelled (%d)",
                 c.bottom_sleep_rc);
    cr_assert_geq(c.bottom_returned_at - t0, 300 * MS, "the child's sleep ended early");
    cr_assert_eq(c.join_rc[0], 0);
    cr_assert_eq(c.after_join[0], -ECANCELED, "the joiner's point after the shield was lifted");
}

/* Cancelling the inline child itself (a copy of its handle, while its joiner joins it):
 * the child's sleep ends, the joiner is not cancelled. */
Test(inline_join, cancelling_the_inline_child_itself, .timeout = 60) {
    chain c = {.depth = 1, .cancel_child = 1, .sleep_ms = LONG_WAIT / MS};
    weft_runtime_stats st;
    cr_assert_null(run_chain(&c, 0, &st));
    cr_assert_eq(st.joins_inline, 1, "the child did not run inline (premise of the test)");
    cr_assert_eq(c.bottom_sleep_rc, -ECANCELED, "the child's sleep returned %d", c.bottom_sleep_rc);
    cr_assert_eq(c.join_rc[0], 0);
    cr_assert_eq(c.join_result[0], (void *)0xc0ffee);
    cr_assert_eq(c.after_join[0], 0, "the joiner was cancelled with its child");
}

/* Not inline, the join returns -ECANCELED at once, and the child is cancelled all the same
 * (weft.h): whether a join ran inline changes no task's fate. */
Test(inline_join, without_inline_joins_the_child_is_cancelled_too, .timeout = 60) {
    chain c = {.depth = 1, .sleep_ms = 1000};
    weft_runtime_stats st;
    cr_assert_not_null(run_chain(&c, WEFT_CONFIG_NO_INLINE_JOIN, &st));
    cr_assert_eq(st.joins_inline, 0);
    cr_assert_eq(c.join_rc[0], -ECANCELED, "the cancelled joiner's join returned %d", c.join_rc[0]);
    cr_assert_eq(c.bottom_sleep_rc, -ECANCELED, "the child was not cancelled (%d)",
                 c.bottom_sleep_rc);
    cr_assert_eq(c.bottom_cancelled, 1);
    cr_assert_eq(c.after_join[0], -ECANCELED);
}
