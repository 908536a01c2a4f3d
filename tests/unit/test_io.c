/*
 * test_io.c: the I/O calls of weft.h ("I/O"), each against its documented contract,
 * over loopback only (socketpairs, pipes, TCP on 127.0.0.1 and ::1).
 *
 * Most bodies run three times (in_every_mode): in a task (the epoll path: the task parks),
 * on a plain thread with no runtime at all, and on a plain thread beside a running
 * runtime (both the poll(2) path). Each run ends with the runtimes destroyed, nothing
 * leaked (weft_stats_get) and as many fds open as before. What each test checks:
 *
 * - misuse: -EBADF for fd -1 and for a closed fd on every call; -EINVAL for bad events,
 *   a NULL buffer with a length, a NULL address, a bad iovcnt; -EBUSY for a second task
 *   waiting on the same fd and event (a waiter for the other event is not refused, and
 *   the slot is free again once the first waiter returns);
 * - deadlines: every call (fd_wait in and out, read, write, writev, accept, connect to a
 *   listener whose accept queue is full, so the SYN is dropped) returns -ETIMEDOUT never
 *   before its deadline and within a generous bound; a read that timed out took nothing;
 *   a deadline already past is a poll: -ETIMEDOUT at once when not ready, the result
 *   when ready;
 * - data: read/write/writev round trips of a megabyte on sockets and pipes, every byte
 *   checked; pipes are made O_NONBLOCK, sockets keep their flags; a write that the
 *   deadline stops after part was written returns that count, no earlier than the
 *   deadline, and exactly that many bytes reach the peer;
 * - the peer: half-close (SHUT_WR: the parked reader gets 0, twice), RST (SO_LINGER 0:
 *   -ECONNRESET or 0, then writes fail with -EPIPE/-ECONNRESET and never raise
 *   SIGPIPE, which this file leaves at its default action: it would kill the test);
 * - weft_fd_close: tasks parked on the fd (reader, writer, fd_wait; in two runtimes at
 *   once; closed from a task or a plain thread) wake with -ECANCELED, and the number,
 *   reused, works again (the ASan preset checks that nothing is freed twice);
 * - fd reuse after a plain close(2): the old file (kept open by a dup) made readable
 *   never makes weft_fd_wait on the new fd with that number report readiness, before or
 *   while it waits; waits on the new fd work;
 * - EMFILE: weft_accept with the fd table full returns -EMFILE before its deadline, the
 *   process then stays idle (no spinning on the queued connection: CPU time over
 *   300 ms), and once an fd is free the same connection is accepted;
 * - the reactor: readiness wakes tasks while every worker is parked, and while every
 *   worker is kept busy by tasks that yield in a loop (only yielded tasks to run: the
 *   direct switch between them must still let the worker poll), or that also spawn
 *   (the scheduler's loop polls every 61st round);
 * - weft_tcp_listen/connect/socket_port: port 0, 127.0.0.1, "localhost", ::1 (if the
 *   host has it), the flags of the fds they return (non-blocking, close-on-exec,
 *   SO_REUSEADDR, TCP_NODELAY), the address weft_accept fills, -EADDRINUSE,
 *   -ECONNREFUSED, -EADDRNOTAVAIL for a name under the reserved .invalid TLD (no network
 *   needed), -EINVAL for bad ports, backlogs and hosts, and socket_port's errors.
 *
 * Timing: never early, and upper bounds of seconds (the machine is shared and noisy).
 */
#include "weft_criterion.h"

#include "base/atomic.h"
#include "io_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MS      1000000ull
#define SECONDS 1000000000ull

/* How late a call may return after its deadline before the test calls it a hang. */
#define LATE_BOUND (10 * SECONDS)

/* ---- running a body in a task and on plain threads -------------------------------- */

static const char *mode = "?"; /* for messages: where the body runs */

typedef struct body {
    void (*fn)(void);
} body;

static void *body_task(void *arg) {
    ((body *)arg)->fn();
    return NULL;
}

static void run_in_task(void (*fn)(void), unsigned workers) {
    body b = {fn};
    mode = "task";
    cr_assert_eq(weft_run(&(weft_config){.workers = workers}, body_task, &b, NULL), 0,
                 "weft_run");
}

/* fn in a task of a 2-worker runtime, then on this (plain) thread with no runtime, then
 * on this thread while a runtime runs; nothing leaked after each. */
static void in_every_mode(void (*fn)(void)) {
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE must kill the test, not pass unseen */
    int fds = io_open_fd_count();
    run_in_task(fn, 2);
    WEFT_ASSERT_NO_LEAKS();
    cr_assert_eq(io_open_fd_count(), fds, "[task] fds open: %d before, %d after", fds,
                 io_open_fd_count());

    mode = "thread";
    fn();
    WEFT_ASSERT_NO_LEAKS();
    cr_assert_eq(io_open_fd_count(), fds, "[thread] fds open: %d before, %d after", fds,
                 io_open_fd_count());

    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0, "create");
    mode = "thread beside a runtime";
    fn();
    cr_assert_eq(weft_runtime_destroy(rt), 0, "destroy");
    WEFT_ASSERT_NO_LEAKS();
    cr_assert_eq(io_open_fd_count(), fds, "[beside] fds open: %d before, %d after", fds,
                 io_open_fd_count());
}

/* A body for tasks only (parking, -EBUSY, registration): on a runtime of `workers`. */
static void in_task_only(void (*fn)(void), unsigned workers) {
    signal(SIGPIPE, SIG_DFL);
    int fds = io_open_fd_count();
    run_in_task(fn, workers);
    WEFT_ASSERT_NO_LEAKS();
    cr_assert_eq(io_open_fd_count(), fds, "fds open: %d before, %d after", fds,
                 io_open_fd_count());
}

/* A helper that runs beside the body: a task when the body is in a task, else a thread. */
typedef struct peer {
    weft_task *task;
    pthread_t thread;
} peer;

static void peer_start(peer *p, weft_fn fn, void *arg) {
    if (weft_runtime_current()) {
        p->task = weft_spawn(fn, arg);
        cr_assert_not_null(p->task, "[%s] spawn: %s", mode, strerror(errno));
    } else {
        p->task = NULL;
        cr_assert_eq(pthread_create(&p->thread, NULL, fn, arg), 0, "pthread_create");
    }
}

static void *peer_join(peer *p) {
    void *r = NULL;
    if (p->task)
        cr_assert_eq(weft_join(p->task, &r), 0, "join");
    else
        cr_assert_eq(pthread_join(p->thread, &r), 0, "pthread_join");
    return r;
}

/* Sleeps the task or the thread. */
static void nap_ms(uint64_t ms) {
    if (weft_runtime_current())
        cr_assert_eq(weft_sleep_ms(ms), 0, "sleep");
    else
        weft_test_sleep_ms((long)ms);
}

static void sock_pair(int sv[2]) {
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0, "socketpair: %s",
                 strerror(errno));
}

static void tcp_pair(int sv[2]) {
    int e = io_tcp_pair(sv);
    cr_assert_eq(e, 0, "loopback TCP pair: %s", strerror(-e));
}

static void close_all(const int *fds, int n) {
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            cr_assert_eq(weft_fd_close(fds[i]), 0, "[%s] weft_fd_close(%d)", mode, fds[i]);
}

/* An fd number that is not open: F_DUPFD far above the fds in use, then closed. Nothing
 * else takes it (new fds get the lowest free number). */
static int closed_fd(void) {
    int fd = fcntl(0, F_DUPFD_CLOEXEC, 700);
    if (fd < 0) {
        int p[2];
        cr_assert_eq(pipe(p), 0, "pipe");
        fd = fcntl(p[0], F_DUPFD_CLOEXEC, 700);
        close(p[0]);
        close(p[1]);
    }
    cr_assert_geq(fd, 0, "F_DUPFD: %s", strerror(errno));
    close(fd);
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "fd %d still open", fd);
    return fd;
}

/* rc must be -ETIMEDOUT, returned no earlier than deadline and not absurdly late. */
static void check_timed_out(long rc, uint64_t deadline, const char *what) {
    uint64_t now = weft_now();
    cr_assert_eq(rc, -ETIMEDOUT, "[%s] %s returned %ld, not -ETIMEDOUT", mode, what, rc);
    cr_assert_geq(now, deadline, "[%s] %s timed out %llu ns early", mode, what,
                  (unsigned long long)(deadline - now));
    cr_assert_lt(now - deadline, LATE_BOUND, "[%s] %s returned %llu ms after its deadline",
                 mode, what, (unsigned long long)((now - deadline) / MS));
}

/* Reads exactly len bytes of stream `stream` from `from` with weft_read, checking each. */
static void read_exactly(int fd, size_t len, uint64_t stream, uint64_t from) {
    uint8_t buf[8192];
    size_t got = 0;
    uint64_t deadline = weft_now() + 30 * SECONDS;
    while (got < len) {
        size_t want = len - got < sizeof buf ? len - got : sizeof buf;
        ssize_t n = weft_read(fd, buf, want, deadline);
        cr_assert_gt(n, 0, "[%s] weft_read after %zu of %zu bytes: %zd", mode, got, len, n);
        cr_assert_leq((size_t)n, want, "weft_read returned more than asked");
        size_t bad = io_pattern_check(buf, (size_t)n, stream, from + got);
        cr_assert_eq(bad, (size_t)n, "[%s] byte %zu of the stream is wrong", mode,
                     (size_t)(from + got + bad));
        got += (size_t)n;
    }
}

/* ---- misuse ------------------------------------------------------------------------ */

static void bad_fds_body(void) {
    int closed = closed_fd();
    int fds[] = {-1, -7, closed};
    char buf[8] = "x";
    struct iovec iov = {buf, 1};
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(9),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        int fd = fds[i];
        /* WEFT_FOREVER: an error must come at once, not after a wait. */
        cr_assert_eq(weft_fd_wait(fd, WEFT_IN, WEFT_FOREVER), -EBADF, "[%s] fd_wait(%d)", mode, fd);
        cr_assert_eq(weft_fd_wait(fd, WEFT_OUT, WEFT_FOREVER), -EBADF, "[%s] fd_wait out(%d)",
                     mode, fd);
        cr_assert_eq(weft_read(fd, buf, sizeof buf, WEFT_FOREVER), -EBADF, "[%s] read(%d)", mode, fd);
        cr_assert_eq(weft_write(fd, buf, 1, WEFT_FOREVER), -EBADF, "[%s] write(%d)", mode, fd);
        cr_assert_eq(weft_writev(fd, &iov, 1, WEFT_FOREVER), -EBADF, "[%s] writev(%d)", mode, fd);
        cr_assert_eq(weft_accept(fd, NULL, NULL, WEFT_FOREVER), -EBADF, "[%s] accept(%d)", mode, fd);
        cr_assert_eq(weft_connect(fd, (struct sockaddr *)&addr, sizeof addr, WEFT_FOREVER), -EBADF,
                     "[%s] connect(%d)", mode, fd);
        cr_assert_eq(weft_fd_close(fd), -EBADF, "[%s] fd_close(%d)", mode, fd);
        cr_assert_eq(weft_socket_port(fd), -EBADF, "[%s] socket_port(%d)", mode, fd);
    }
}

Test(io, bad_fd_is_ebadf, .timeout = 60) {
    in_every_mode(bad_fds_body);
}

static void einval_body(void) {
    int sv[2];
    sock_pair(sv);
    char byte = 'q';
    cr_assert_eq(write(sv[1], &byte, 1), 1, "write");
    cr_assert_eq(weft_fd_wait(sv[0], 0, WEFT_FOREVER), -EINVAL, "[%s] events 0", mode);
    cr_assert_eq(weft_fd_wait(sv[0], 4, WEFT_FOREVER), -EINVAL, "[%s] events 4", mode);
    cr_assert_eq(weft_fd_wait(sv[0], WEFT_IN | 8u, WEFT_FOREVER), -EINVAL, "[%s] IN|8", mode);
    cr_assert_eq(weft_fd_wait(sv[0], ~0u, WEFT_FOREVER), -EINVAL, "[%s] events ~0", mode);
    cr_assert_eq(weft_read(sv[0], NULL, 16, WEFT_FOREVER), -EINVAL, "[%s] read NULL", mode);
    cr_assert_eq(weft_write(sv[0], NULL, 16, WEFT_FOREVER), -EINVAL, "[%s] write NULL", mode);
    struct iovec iov[1] = {{&byte, 1}};
    cr_assert_eq(weft_writev(sv[0], iov, -1, WEFT_FOREVER), -EINVAL, "[%s] iovcnt -1", mode);
    struct iovec *many = calloc(IOV_MAX + 1, sizeof *many);
    cr_assert_not_null(many);
    for (int i = 0; i <= IOV_MAX; i++)
        many[i] = (struct iovec){&byte, 1};
    cr_assert_eq(weft_writev(sv[0], many, IOV_MAX + 1, WEFT_FOREVER), -EINVAL,
                 "[%s] iovcnt IOV_MAX + 1", mode);
    free(many);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0, "socket");
    cr_assert_eq(weft_connect(s, NULL, sizeof(struct sockaddr_in), WEFT_FOREVER), -EINVAL,
                 "[%s] connect NULL", mode);
    /* None of the refused calls took the byte. */
    char got = 0;
    cr_assert_eq(weft_read(sv[0], &got, 1, WEFT_FOREVER), 1, "[%s] read after the errors", mode);
    cr_assert_eq(got, 'q');
    int all[] = {sv[0], sv[1], s};
    close_all(all, 3);
}

Test(io, bad_arguments_are_einval, .timeout = 60) {
    in_every_mode(einval_body);
}

/* ---- -EBUSY: one reader and one writer per fd ----------------------------------------- */

typedef struct waiter {
    int fd;
    unsigned events;
    uint64_t deadline;
    weft__atomic_word entering;
    weft__atomic_word returned;
} waiter;

static void *fd_waiter(void *arg) {
    waiter *w = arg;
    weft__atomic_store_release(&w->entering, 1);
    int rc = weft_fd_wait(w->fd, w->events, w->deadline);
    weft__atomic_store_release(&w->returned, 1);
    return (void *)(intptr_t)rc;
}

/* Once w has started and had time to park, probes its fd for the same events with short
 * waits until one returns -EBUSY; each probe before that must time out, and w must still
 * be waiting. Fails after 10 s. */
static void probe_until_busy(waiter *w) {
    uint64_t give_up = weft_now() + 10 * SECONDS;
    while (!weft__atomic_load_acquire(&w->entering)) {
        cr_assert_lt(weft_now(), give_up, "the waiter never started");
        cr_assert_eq(weft_sleep_ms(1), 0);
    }
    cr_assert_eq(weft_sleep_ms(20), 0); /* let it park first: else the probe is first */
    for (;;) {
        cr_assert_not(weft__atomic_load_acquire(&w->returned),
                      "the first waiter returned before any probe saw it busy");
        int rc = weft_fd_wait(w->fd, w->events, weft_now() + 10 * MS);
        if (rc == -EBUSY)
            return;
        cr_assert_eq(rc, -ETIMEDOUT, "a probe of a busy fd returned %d", rc);
        cr_assert_lt(weft_now(), give_up, "no -EBUSY for a second waiter within 10 s");
    }
}

static void ebusy_body(void) {
    int sv[2];
    sock_pair(sv);
    io_small_buffers(sv[0]);
    io_small_buffers(sv[1]);

    /* A reader parks on sv[0]; a second reader is refused, by fd_wait and by read. */
    waiter r = {.fd = sv[0], .events = WEFT_IN, .deadline = weft_now() + 30 * SECONDS};
    weft_task *rt = weft_spawn(fd_waiter, &r);
    cr_assert_not_null(rt);
    probe_until_busy(&r);
    char buf[4];
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_now() + 10 * MS), -EBUSY,
                 "weft_read beside a parked reader");
    /* IN | OUT: the socket is writable, so that is an answer without a wait. */
    int both = weft_fd_wait(sv[0], WEFT_IN | WEFT_OUT, weft_now() + 10 * MS);
    cr_assert(both == -EBUSY || both == (int)WEFT_OUT, "fd_wait(IN | OUT) beside a parked reader: %d",
              both);
    /* A writer is not refused: the socket is writable. */
    cr_assert_eq(weft_fd_wait(sv[0], WEFT_OUT, weft_now() + 5 * SECONDS), (int)WEFT_OUT,
                 "fd_wait(OUT) beside a parked reader");
    cr_assert_eq(write(sv[1], "x", 1), 1, "write");
    void *res;
    cr_assert_eq(weft_join(rt, &res), 0);
    cr_assert_eq((intptr_t)res, (intptr_t)WEFT_IN, "the parked reader got %ld",
                 (long)(intptr_t)res);
    /* The reader's slot is free again. */
    cr_assert_eq(weft_fd_wait(sv[0], WEFT_IN, weft_now() + 5 * SECONDS), (int)WEFT_IN,
                 "fd_wait after the first reader returned");
    cr_assert_eq(read(sv[0], buf, 1), 1, "read");

    /* The same for writers, on a full socket. */
    uint64_t off = 0;
    cr_assert_eq(io_fill(sv[0], 1, &off), 0, "fill");
    waiter w = {.fd = sv[0], .events = WEFT_OUT, .deadline = weft_now() + 30 * SECONDS};
    weft_task *wt = weft_spawn(fd_waiter, &w);
    cr_assert_not_null(wt);
    probe_until_busy(&w);
    cr_assert_eq(weft_write(sv[0], "y", 1, weft_now() + 10 * MS), -EBUSY,
                 "weft_write beside a parked writer");
    cr_assert_eq(weft_fd_wait(sv[0], WEFT_IN | WEFT_OUT, weft_now() + 10 * MS), -EBUSY,
                 "fd_wait(IN | OUT) beside a parked writer, nothing ready");
    /* A reader is not refused (and times out: nothing to read). */
    uint64_t deadline = weft_now() + 20 * MS;
    check_timed_out(weft_fd_wait(sv[0], WEFT_IN, deadline), deadline, "fd_wait(IN) beside a writer");
    /* Drain the peer: the writer wakes. */
    uint8_t sink[4096];
    uint64_t drained = 0;
    while (drained < off) {
        ssize_t n = read(sv[1], sink, sizeof sink);
        cr_assert_gt(n, 0, "drain");
        drained += (uint64_t)n;
    }
    cr_assert_eq(weft_join(wt, &res), 0);
    cr_assert_eq((intptr_t)res, (intptr_t)WEFT_OUT, "the parked writer got %ld",
                 (long)(intptr_t)res);
    close_all(sv, 2);
}

Test(io, second_waiter_is_ebusy, .timeout = 120) {
    in_task_only(ebusy_body, 2);
}

/* ---- deadlines ------------------------------------------------------------------------ */

/* A listener whose accept queue is full (listen backlog 0, connections never accepted):
 * the kernel drops further SYNs, so a new connect stays in progress. *fillers gets the
 * connected clients, to close later. Returns the listener. */
static int full_listener(struct sockaddr_in *addr, int *fillers, int max_fillers, int *n) {
    int l = io_loopback_listener(0, addr);
    cr_assert_geq(l, 0, "listener: %s", strerror(-l));
    *n = 0;
    while (*n < max_fillers) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        cr_assert_geq(c, 0, "socket");
        int rc = connect(c, (struct sockaddr *)addr, sizeof *addr);
        cr_assert(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
        struct pollfd p = {c, POLLOUT, 0};
        int ready = poll(&p, 1, 200);
        if (ready == 0) { /* stuck: the queue is full */
            close(c);
            return l;
        }
        fillers[(*n)++] = c;
    }
    cr_assert_fail("the accept queue never filled (%d connections)", *n);
    return -1;
}

static void deadlines_body(void) {
    int sv[2];
    sock_pair(sv);
    io_small_buffers(sv[0]);
    io_small_buffers(sv[1]);
    char buf[64];
    uint64_t d;

    d = weft_now() + 30 * MS;
    check_timed_out(weft_fd_wait(sv[0], WEFT_IN, d), d, "fd_wait(IN) on an empty socket");
    d = weft_now() + 30 * MS;
    check_timed_out(weft_read(sv[0], buf, sizeof buf, d), d, "read of an empty socket");
    /* The read that timed out took nothing: a byte written now is the next one read. */
    cr_assert_eq(write(sv[1], "a", 1), 1);
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_now() + 5 * SECONDS), 1, "[%s] read", mode);
    cr_assert_eq(buf[0], 'a');

    uint64_t off = 0;
    cr_assert_eq(io_fill(sv[0], 2, &off), 0, "fill");
    d = weft_now() + 30 * MS;
    check_timed_out(weft_fd_wait(sv[0], WEFT_OUT, d), d, "fd_wait(OUT) on a full socket");
    d = weft_now() + 30 * MS;
    check_timed_out(weft_write(sv[0], "b", 1, d), d, "write to a full socket");
    struct iovec iov[2] = {{buf, 8}, {buf + 8, 8}};
    d = weft_now() + 30 * MS;
    check_timed_out(weft_writev(sv[0], iov, 2, d), d, "writev to a full socket");
    /* Nothing of those writes went through: the peer reads exactly the fill. */
    uint8_t sink[4096];
    uint64_t drained = 0;
    for (;;) {
        ssize_t n = recv(sv[1], sink, sizeof sink, MSG_DONTWAIT);
        if (n <= 0)
            break;
        cr_assert_eq(io_pattern_check(sink, (size_t)n, 2, drained), (size_t)n, "fill bytes");
        drained += (uint64_t)n;
    }
    cr_assert_eq(drained, off, "[%s] the peer got %llu bytes, %llu were filled", mode,
                 (unsigned long long)drained, (unsigned long long)off);

    struct sockaddr_in addr;
    int l = io_loopback_listener(4, &addr);
    cr_assert_geq(l, 0);
    d = weft_now() + 30 * MS;
    check_timed_out(weft_accept(l, NULL, NULL, d), d, "accept with no client");

    /* connect: the SYN is dropped while the accept queue is full. */
    int fillers[64], nfill;
    struct sockaddr_in full_addr;
    int full = full_listener(&full_addr, fillers, 64, &nfill);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(c, 0);
    d = weft_now() + 50 * MS;
    check_timed_out(weft_connect(c, (struct sockaddr *)&full_addr, sizeof full_addr, d), d,
                    "connect to a full accept queue");
    cr_assert_eq(weft_fd_close(c), 0);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    close(full);

    int all[] = {sv[0], sv[1], l};
    close_all(all, 3);
}

Test(io, every_call_times_out_never_early, .timeout = 120) {
    in_every_mode(deadlines_body);
}

/* A deadline already past: one try, no wait. */
static void check_prompt(uint64_t t0, const char *what) {
    cr_assert_lt(weft_now() - t0, 2 * SECONDS, "[%s] %s with a past deadline took %llu ms",
                 mode, what, (unsigned long long)((weft_now() - t0) / MS));
}

static void past_deadline_body(void) {
    uint64_t past[] = {0, weft_now() - 1};
    for (int k = 0; k < 2; k++) {
        uint64_t p = past[k], t0 = weft_now();
        int sv[2];
        sock_pair(sv);
        char buf[16];
        /* not ready: -ETIMEDOUT at once */
        cr_assert_eq(weft_fd_wait(sv[0], WEFT_IN, p), -ETIMEDOUT, "[%s] poll fd_wait(IN)", mode);
        cr_assert_eq(weft_read(sv[0], buf, sizeof buf, p), -ETIMEDOUT, "[%s] poll read", mode);
        check_prompt(t0, "fd_wait/read");
        /* ready: the result */
        cr_assert_eq(weft_fd_wait(sv[0], WEFT_OUT, p), (int)WEFT_OUT, "[%s] poll fd_wait(OUT)", mode);
        cr_assert_eq(weft_fd_wait(sv[0], WEFT_IN | WEFT_OUT, p), (int)WEFT_OUT,
                     "[%s] poll fd_wait(IN | OUT) of a writable, empty socket", mode);
        cr_assert_eq(weft_write(sv[1], "hello", 5, p), 5, "[%s] poll write", mode);
        t0 = weft_now();
        int ev = 0;
        /* The bytes are in sv[0]'s queue when write returns (AF_UNIX): readable now. */
        ev = weft_fd_wait(sv[0], WEFT_IN, p);
        cr_assert_eq(ev, (int)WEFT_IN, "[%s] poll fd_wait(IN) with data: %d", mode, ev);
        cr_assert_eq(weft_read(sv[0], buf, sizeof buf, p), 5, "[%s] poll read with data", mode);
        cr_assert_eq(memcmp(buf, "hello", 5), 0);
        struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
        cr_assert_eq(weft_writev(sv[1], iov, 2, p), 4, "[%s] poll writev", mode);
        cr_assert_eq(weft_read(sv[0], buf, sizeof buf, p), 4, "[%s] poll read of writev", mode);
        cr_assert_eq(memcmp(buf, "abcd", 4), 0);
        check_prompt(t0, "ready calls");

        struct sockaddr_in addr;
        int l = io_loopback_listener(4, &addr);
        cr_assert_geq(l, 0);
        t0 = weft_now();
        cr_assert_eq(weft_accept(l, NULL, NULL, p), -ETIMEDOUT, "[%s] poll accept, no client", mode);
        check_prompt(t0, "accept");
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(connect(c, (struct sockaddr *)&addr, sizeof addr), 0, "connect");
        struct pollfd pl = {l, POLLIN, 0}; /* until the kernel has queued it */
        cr_assert_eq(poll(&pl, 1, 10000), 1, "the connection never queued");
        t0 = weft_now();
        int a = weft_accept(l, NULL, NULL, p);
        cr_assert_geq(a, 0, "[%s] poll accept with a client queued: %d", mode, a);
        check_prompt(t0, "accept, queued");
        /* A connect polled: done or still in progress, both fine. */
        int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        t0 = weft_now();
        int rc = weft_connect(c2, (struct sockaddr *)&addr, sizeof addr, p);
        cr_assert(rc == 0 || rc == -ETIMEDOUT, "[%s] poll connect: %d", mode, rc);
        check_prompt(t0, "connect");
        int all[] = {sv[0], sv[1], l, c, a, c2};
        close_all(all, 6);
    }
}

Test(io, past_deadline_is_a_poll, .timeout = 60) {
    in_every_mode(past_deadline_body);
}

/* ---- data ------------------------------------------------------------------------------ */

enum { BULK = 1 << 20 };

typedef struct bulk {
    int fd;
    uint64_t stream;
    bool use_writev;
    bool close_after;
} bulk;

static void *bulk_writer(void *arg) {
    bulk *b = arg;
    uint8_t *buf = malloc(BULK);
    cr_assert_not_null(buf);
    io_pattern_fill(buf, BULK, b->stream, 0);
    ssize_t n;
    if (b->use_writev) { /* a header, the body in two, a trailer */
        struct iovec iov[4] = {{buf, 17}, {buf + 17, 100000}, {buf + 100017, BULK - 100017 - 5},
                               {buf + BULK - 5, 5}};
        n = weft_writev(b->fd, iov, 4, weft_now() + 30 * SECONDS);
    } else {
        n = weft_write(b->fd, buf, BULK, weft_now() + 30 * SECONDS);
    }
    cr_assert_eq(n, (ssize_t)BULK, "[%s] %s returned %zd", mode,
                 b->use_writev ? "writev" : "write", n);
    free(buf);
    if (b->close_after)
        cr_assert_eq(weft_fd_close(b->fd), 0, "fd_close by the writer");
    return NULL;
}

/* A megabyte from wfd to rfd (a peer writes it, then closes wfd), read and checked here,
 * then end of file; rfd is closed at the end. A socket keeps its flags; a pipe is made
 * non-blocking. */
static void roundtrip(int rfd, int wfd, uint64_t stream, bool use_writev, bool is_pipe) {
    int flags = io_fd_flags(rfd);
    cr_assert_eq(flags & O_NONBLOCK, 0, "the test's fds start blocking");
    bulk b = {.fd = wfd, .stream = stream, .use_writev = use_writev, .close_after = true};
    peer p;
    peer_start(&p, bulk_writer, &b);
    read_exactly(rfd, BULK, stream, 0);
    char c;
    cr_assert_eq(weft_read(rfd, &c, 1, weft_now() + 10 * SECONDS), 0,
                 "[%s] end of file after the writer closed", mode);
    peer_join(&p);
    if (is_pipe)
        cr_assert(io_fd_flags(rfd) & O_NONBLOCK, "[%s] weft left a pipe blocking", mode);
    else
        cr_assert_eq(io_fd_flags(rfd), flags, "[%s] weft changed a socket's flags", mode);
    cr_assert_eq(weft_fd_close(rfd), 0, "close the reader");
}

static void roundtrip_body(void) {
    int sv[2];
    sock_pair(sv);
    roundtrip(sv[0], sv[1], 10, false, false);
    sock_pair(sv);
    roundtrip(sv[0], sv[1], 11, true, false);
    tcp_pair(sv);
    roundtrip(sv[1], sv[0], 12, false, false);
    tcp_pair(sv);
    roundtrip(sv[0], sv[1], 13, true, false);
    cr_assert_eq(pipe2(sv, O_CLOEXEC), 0, "pipe");
    roundtrip(sv[0], sv[1], 14, false, true);
    cr_assert_eq(pipe2(sv, O_CLOEXEC), 0, "pipe");
    roundtrip(sv[0], sv[1], 15, true, true);
}

Test(io, read_write_writev_roundtrips, .timeout = 120) {
    in_every_mode(roundtrip_body);
}

/* A write stopped by its deadline after part was written returns that part. */
typedef struct drainer {
    int fd;
    uint64_t amount;
    weft__atomic_word go;
    uint64_t drained_at;
} drainer;

static void *drain_some(void *arg) {
    drainer *d = arg;
    uint64_t give_up = weft_now() + 20 * SECONDS;
    while (!weft__atomic_load_acquire(&d->go)) {
        cr_assert_lt(weft_now(), give_up, "the writer never started");
        nap_ms(1);
    }
    nap_ms(30);
    uint8_t sink[4096];
    uint64_t got = 0;
    while (got < d->amount) {
        size_t want = d->amount - got < sizeof sink ? d->amount - got : sizeof sink;
        ssize_t n = recv(d->fd, sink, want, MSG_DONTWAIT);
        cr_assert_gt(n, 0, "drain: %s", strerror(errno));
        got += (uint64_t)n;
    }
    d->drained_at = weft_now();
    return NULL;
}

static void partial_write_body(void) {
    enum { BIG = 8 << 20 };
    uint8_t *buf = malloc(BIG);
    cr_assert_not_null(buf);
    bool saw_partial = false;
    for (int attempt = 0; attempt < 5 && !saw_partial; attempt++) {
        int sv[2];
        sock_pair(sv);
        io_small_buffers(sv[0]);
        io_small_buffers(sv[1]);
        uint64_t off = 0;
        cr_assert_eq(io_fill(sv[0], 3, &off), 0, "fill");
        /* All of the fill: an AF_UNIX socket is writable again only once most of its
         * send buffer is free (a quarter in use, at most). */
        drainer d = {.fd = sv[1], .amount = off};
        peer p;
        peer_start(&p, drain_some, &d);
        io_pattern_fill(buf, BIG, 3, off);
        uint64_t deadline = weft_now() + 1000 * MS;
        weft__atomic_store_release(&d.go, 1);
        ssize_t n = weft_write(sv[0], buf, BIG, deadline);
        uint64_t now = weft_now();
        peer_join(&p);
        if (n == -ETIMEDOUT) {
            /* Allowed only if the drain came so late that the deadline won the race. */
            cr_assert_geq(d.drained_at + 200 * MS, deadline,
                          "[%s] write timed out with nothing written although the peer made "
                          "room %llu ms before the deadline",
                          mode, (unsigned long long)((deadline - d.drained_at) / MS));
        } else {
            cr_assert_gt(n, 0, "[%s] write returned %zd", mode, n);
            cr_assert_lt(n, (ssize_t)BIG, "[%s] 8 MiB written with nobody reading", mode);
            cr_assert_geq(now, deadline, "[%s] partial write returned %llu ns before its deadline",
                          mode, (unsigned long long)(deadline - now));
            cr_assert_lt(now - deadline, LATE_BOUND, "[%s] partial write returned late", mode);
            saw_partial = true;
            off += (uint64_t)n;
        }
        /* Exactly the bytes reported reached the peer, in order. */
        uint8_t sink[4096];
        uint64_t at = d.amount;
        for (;;) {
            ssize_t r = recv(sv[1], sink, sizeof sink, MSG_DONTWAIT);
            if (r <= 0)
                break;
            cr_assert_eq(io_pattern_check(sink, (size_t)r, 3, at), (size_t)r, "stream byte");
            at += (uint64_t)r;
        }
        cr_assert_eq(at, off, "[%s] the peer got %llu bytes, write accounted for %llu", mode,
                     (unsigned long long)at, (unsigned long long)off);
        close_all(sv, 2);
    }
    free(buf);
    cr_assert(saw_partial, "[%s] no partial write in 5 attempts", mode);
}

Test(io, write_stopped_by_deadline_returns_the_count, .timeout = 120) {
    in_every_mode(partial_write_body);
}

/* ---- the peer: half-close and reset ------------------------------------------------- */

typedef struct reader_arg {
    int fd;
    weft__atomic_word entering;
} reader_arg;

static void *read_one(void *arg) {
    reader_arg *r = arg;
    char buf[16];
    weft__atomic_store_release(&r->entering, 1);
    return (void *)(intptr_t)weft_read(r->fd, buf, sizeof buf, weft_now() + 20 * SECONDS);
}

static void wait_entering(weft__atomic_word *flag) {
    uint64_t give_up = weft_now() + 20 * SECONDS;
    while (!weft__atomic_load_acquire(flag)) {
        cr_assert_lt(weft_now(), give_up, "the reader never started");
        nap_ms(1);
    }
    nap_ms(20); /* let it park (either order is right for these tests) */
}

static void half_close_one(int sv[2]) {
    char buf[16];
    cr_assert_eq(weft_write(sv[1], "abc", 3, weft_now() + 5 * SECONDS), 3, "write");
    cr_assert_eq(shutdown(sv[1], SHUT_WR), 0, "shutdown");
    ssize_t got = 0;
    while (got < 3) {
        ssize_t n = weft_read(sv[0], buf + got, sizeof buf - (size_t)got, weft_now() + 5 * SECONDS);
        cr_assert_gt(n, 0, "[%s] read before the end: %zd", mode, n);
        got += n;
    }
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_now() + 5 * SECONDS), 0, "[%s] EOF", mode);
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, weft_now() + 5 * SECONDS), 0, "[%s] EOF again",
                 mode);
    cr_assert(weft_fd_wait(sv[0], WEFT_IN, weft_now() + 5 * SECONDS) & WEFT_IN,
              "[%s] a hung-up socket is readable", mode);
    /* The other direction still works. */
    cr_assert_eq(weft_write(sv[0], "back", 4, weft_now() + 5 * SECONDS), 4, "write back");
    cr_assert_eq(weft_read(sv[1], buf, sizeof buf, weft_now() + 5 * SECONDS), 4, "read back");

}

static void half_close_parked(int sv[2]) {
    reader_arg r = {.fd = sv[0]};
    peer p;
    peer_start(&p, read_one, &r);
    wait_entering(&r.entering);
    cr_assert_eq(shutdown(sv[1], SHUT_WR), 0, "shutdown");
    intptr_t rc = (intptr_t)peer_join(&p);
    cr_assert_eq(rc, 0, "[%s] a parked reader got %ld at the peer's shutdown", mode, (long)rc);
}

static void half_close_body(void) {
    int sv[2];
    sock_pair(sv);
    half_close_one(sv);
    close_all(sv, 2);
    tcp_pair(sv);
    half_close_one(sv);
    close_all(sv, 2);
    sock_pair(sv);
    half_close_parked(sv);
    close_all(sv, 2);
    tcp_pair(sv);
    half_close_parked(sv);
    close_all(sv, 2);
}

Test(io, half_close_reads_zero, .timeout = 60) {
    in_every_mode(half_close_body);
}

static void reset_by(int fd) {
    struct linger lg = {1, 0};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0, "SO_LINGER");
    cr_assert_eq(close(fd), 0, "close");
}

static void check_write_fails(int fd) {
    /* The first write after a reset may be accepted by the kernel; within a few, it fails
     * with -EPIPE or -ECONNRESET, and never raises SIGPIPE (which would end the test). */
    ssize_t rc = 0;
    for (int i = 0; i < 10 && rc >= 0; i++) {
        rc = weft_write(fd, "zz", 2, weft_now() + 5 * SECONDS);
        if (rc >= 0)
            nap_ms(5);
    }
    cr_assert(rc == -EPIPE || rc == -ECONNRESET, "[%s] write to a reset socket: %zd", mode, rc);
}

static void reset_body(void) {
    int sv[2];
    char buf[16];
    /* Reset while the reader is parked. */
    tcp_pair(sv);
    reader_arg r = {.fd = sv[0]};
    peer p;
    peer_start(&p, read_one, &r);
    wait_entering(&r.entering);
    reset_by(sv[1]);
    intptr_t rc = (intptr_t)peer_join(&p);
    cr_assert(rc == -ECONNRESET || rc == 0, "[%s] a parked reader got %ld at a reset", mode,
              (long)rc);
    check_write_fails(sv[0]);
    cr_assert_eq(weft_fd_close(sv[0]), 0);

    /* Reset before the read. */
    tcp_pair(sv);
    reset_by(sv[1]);
    ssize_t n = weft_read(sv[0], buf, sizeof buf, weft_now() + 5 * SECONDS);
    cr_assert(n == -ECONNRESET || n == 0, "[%s] read after a reset: %zd", mode, n);
    cr_assert_eq(weft_fd_close(sv[0]), 0);

    /* A socketpair whose peer went away: -EPIPE, no SIGPIPE. */
    sock_pair(sv);
    cr_assert_eq(close(sv[1]), 0);
    cr_assert_eq(weft_write(sv[0], "x", 1, weft_now() + 5 * SECONDS), -EPIPE, "[%s] write, no peer",
                 mode);
    struct iovec iov = {"y", 1};
    cr_assert_eq(weft_writev(sv[0], &iov, 1, weft_now() + 5 * SECONDS), -EPIPE,
                 "[%s] writev, no peer", mode);
    cr_assert_eq(weft_fd_close(sv[0]), 0);
}

Test(io, reset_by_peer, .timeout = 60) {
    in_every_mode(reset_body);
}

/* ---- weft_fd_close wakes the waiters ---------------------------------------------------- */

typedef struct parked {
    int fd;
    int kind; /* 0 read, 1 write (the socket is full), 2 fd_wait(IN) */
    weft__atomic_word entering;
} parked;

static void *park_on(void *arg) {
    parked *p = arg;
    char buf[64] = {0};
    weft__atomic_store_release(&p->entering, 1);
    uint64_t d = weft_now() + 20 * SECONDS;
    switch (p->kind) {
    case 0:
        return (void *)(intptr_t)weft_read(p->fd, buf, sizeof buf, d);
    case 1:
        return (void *)(intptr_t)weft_write(p->fd, buf, sizeof buf, d);
    default:
        return (void *)(intptr_t)weft_fd_wait(p->fd, WEFT_IN, d);
    }
}

static void *close_from_task(void *arg) {
    return (void *)(intptr_t)weft_fd_close((int)(intptr_t)arg);
}

/* Parks a reader and a writer (on a full socket) on one fd, closes it (from another task,
 * or from this one, their parent), and checks that each wakes with -ECANCELED. An
 * outcome of -EBADF means that a waiter came after the close (the pause was too short on
 * a loaded machine); the caller retries with longer pauses. */
static void close_wakes_body_once(bool from_task, bool *all_canceled, uint64_t pause_ms) {
    int sv[2];
    sock_pair(sv);
    io_small_buffers(sv[0]);
    uint64_t off = 0;
    cr_assert_eq(io_fill(sv[0], 4, &off), 0, "fill");
    parked rd = {.fd = sv[0], .kind = 0}, wr = {.fd = sv[0], .kind = 1};
    weft_task *tr = weft_spawn(park_on, &rd), *tw = weft_spawn(park_on, &wr);
    cr_assert(tr && tw, "spawn");
    wait_entering(&rd.entering);
    wait_entering(&wr.entering);
    cr_assert_eq(weft_sleep_ms(pause_ms), 0);
    int rc;
    if (from_task) {
        weft_task *c = weft_spawn(close_from_task, (void *)(intptr_t)sv[0]);
        void *r;
        cr_assert_eq(weft_join(c, &r), 0);
        rc = (int)(intptr_t)r;
    } else {
        rc = weft_fd_close(sv[0]);
    }
    cr_assert_eq(rc, 0, "weft_fd_close: %d", rc);
    void *r1, *r2;
    cr_assert_eq(weft_join(tr, &r1), 0);
    cr_assert_eq(weft_join(tw, &r2), 0);
    intptr_t a = (intptr_t)r1, b = (intptr_t)r2;
    cr_assert(a == -ECANCELED || a == -EBADF, "a reader parked at weft_fd_close got %ld", (long)a);
    cr_assert(b == -ECANCELED || b == -EBADF, "a writer parked at weft_fd_close got %ld", (long)b);
    *all_canceled = a == -ECANCELED && b == -ECANCELED;
    /* The number, reused, works. */
    int nv[2];
    sock_pair(nv);
    cr_assert_eq(write(nv[1], "n", 1), 1);
    char c;
    cr_assert_eq(weft_read(nv[0], &c, 1, weft_now() + 5 * SECONDS), 1, "read on a new fd");
    close_all(nv, 2);
    close(sv[1]);
}

static bool close_from_task_flag;

static void close_wakes_body(void) {
    bool ok = false;
    for (uint64_t pause = 20; pause <= 320 && !ok; pause *= 2)
        close_wakes_body_once(close_from_task_flag, &ok, pause);
    cr_assert(ok, "parked waiters never all woke with -ECANCELED (always -EBADF: parked late?)");

    /* An fd_wait parked, closed. */
    int sv[2];
    sock_pair(sv);
    parked w = {.fd = sv[0], .kind = 2};
    weft_task *t = weft_spawn(park_on, &w);
    wait_entering(&w.entering);
    cr_assert_eq(weft_sleep_ms(50), 0);
    cr_assert_eq(weft_fd_close(sv[0]), 0);
    void *r;
    cr_assert_eq(weft_join(t, &r), 0);
    cr_assert_eq((intptr_t)r, -ECANCELED, "an fd_wait parked at weft_fd_close got %ld",
                 (long)(intptr_t)r);
    close(sv[1]);
}

Test(io, fd_close_wakes_parked_tasks_from_a_task, .timeout = 120) {
    close_from_task_flag = true;
    in_task_only(close_wakes_body, 2);
}

Test(io, fd_close_by_the_parked_tasks_parent, .timeout = 120) {
    close_from_task_flag = false;
    in_task_only(close_wakes_body, 1);
}

Test(io, fd_close_from_a_thread_wakes_tasks_of_two_runtimes, .timeout = 120) {
    signal(SIGPIPE, SIG_DFL);
    int fds = io_open_fd_count();
    weft_runtime *a, *b;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1}, &a), 0);
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &b), 0);
    bool ok = false;
    for (long pause = 50; pause <= 800 && !ok; pause *= 2) {
        int sv[2];
        sock_pair(sv);
        io_small_buffers(sv[0]);
        uint64_t off = 0;
        cr_assert_eq(io_fill(sv[0], 5, &off), 0, "fill");
        parked rd = {.fd = sv[0], .kind = 0}, wr = {.fd = sv[0], .kind = 1};
        weft_task *tr = weft_spawn_on(a, park_on, &rd), *tw = weft_spawn_on(b, park_on, &wr);
        cr_assert(tr && tw, "spawn_on");
        while (!weft__atomic_load_acquire(&rd.entering) || !weft__atomic_load_acquire(&wr.entering))
            weft_test_sleep_ms(1);
        weft_test_sleep_ms(pause);
        cr_assert_eq(weft_fd_close(sv[0]), 0, "weft_fd_close from a thread");
        void *r1, *r2;
        cr_assert_eq(weft_join(tr, &r1), 0);
        cr_assert_eq(weft_join(tw, &r2), 0);
        intptr_t x = (intptr_t)r1, y = (intptr_t)r2;
        cr_assert(x == -ECANCELED || x == -EBADF, "runtime A's reader got %ld", (long)x);
        cr_assert(y == -ECANCELED || y == -EBADF, "runtime B's writer got %ld", (long)y);
        ok = x == -ECANCELED && y == -ECANCELED;
        close(sv[1]);
    }
    cr_assert(ok, "the parked waiters never all woke with -ECANCELED");
    cr_assert_eq(weft_runtime_destroy(a), 0);
    cr_assert_eq(weft_runtime_destroy(b), 0);
    WEFT_ASSERT_NO_LEAKS();
    cr_assert_eq(io_open_fd_count(), fds, "fds leaked");
}

/* ---- a stale readiness after fd reuse ---------------------------------------------------- */

/* Turns `number` into a new socketpair's end (dup2 onto the closed number), returning the
 * peer; the number must be closed. */
static int reuse_number(int number) {
    int nv[2];
    sock_pair(nv); /* new fds take the lowest free numbers: often `number` itself */
    if (nv[0] == number)
        return nv[1];
    if (nv[1] == number)
        return nv[0];
    cr_assert_eq(dup3(nv[0], number, O_CLOEXEC), number, "dup3");
    close(nv[0]);
    return nv[1];
}

static void *write_old_later(void *arg) {
    int fd = (int)(intptr_t)arg;
    cr_assert_eq(weft_sleep_ms(30), 0);
    cr_assert_eq(write(fd, "old", 3), 3, "write to the old file");
    return NULL;
}

static void stale_body(void) {
    for (int variant = 0; variant < 2; variant++) {
        int av[2];
        sock_pair(av);
        int a = av[0];
        /* Register a with the reactor: a wait that parks and is woken. */
        weft_task *w = weft_spawn(write_old_later, (void *)(intptr_t)av[1]);
        cr_assert_eq(weft_fd_wait(a, WEFT_IN, weft_now() + 10 * SECONDS), (int)WEFT_IN, "first wait");
        cr_assert_eq(weft_join(w, NULL), 0);
        char buf[16];
        cr_assert_eq(read(a, buf, sizeof buf), 3, "drain");
        cr_assert_eq(weft_read(a, buf, sizeof buf, weft_now() + 20 * MS), -ETIMEDOUT,
                     "nothing left");

        int keep = dup(a); /* the old file stays open, so its epoll registration lives */
        cr_assert_geq(keep, 0);
        cr_assert_eq(close(a), 0); /* a plain close */
        int peer_new = reuse_number(a);

        uint64_t d;
        if (variant == 0) {
            /* The old file becomes readable before anyone waits on the new fd; give the
             * reactor time to see its event. */
            cr_assert_eq(write(av[1], "OLD", 3), 3);
            cr_assert_eq(weft_sleep_ms(30), 0);
            d = weft_now() + 100 * MS;
            int rc = weft_fd_wait(a, WEFT_IN, d);
            check_timed_out(rc, d, "fd_wait on a reused number whose old file is readable");
        } else {
            /* ... while a task waits on the new fd. */
            w = weft_spawn(write_old_later, (void *)(intptr_t)av[1]);
            d = weft_now() + 200 * MS;
            int rc = weft_fd_wait(a, WEFT_IN, d);
            check_timed_out(rc, d, "fd_wait on a reused number while the old file becomes readable");
            cr_assert_eq(weft_join(w, NULL), 0);
        }
        d = weft_now() + 30 * MS;
        check_timed_out(weft_read(a, buf, sizeof buf, d), d, "read of the new, empty fd");

        /* Waits on the new fd work. */
        w = weft_spawn(write_old_later, (void *)(intptr_t)peer_new);
        cr_assert_eq(weft_fd_wait(a, WEFT_IN, weft_now() + 10 * SECONDS), (int)WEFT_IN,
                     "a wait on the new fd");
        cr_assert_eq(weft_join(w, NULL), 0);
        cr_assert_eq(weft_read(a, buf, sizeof buf, weft_now() + 5 * SECONDS), 3, "read new");
        cr_assert_eq(memcmp(buf, "old", 3), 0, "the new fd's bytes"); /* write_old_later wrote them */

        /* And the old file's bytes are still there for the dup. */
        ssize_t n = read(keep, buf, sizeof buf);
        cr_assert_geq(n, 3, "the old file's data");
        cr_assert_eq(weft_fd_close(a), 0);
        close(keep);
        close(av[1]);
        close(peer_new);
    }

    /* Without a dup: the old file is gone with the close (epoll drops it); a wait on the
     * new fd with the number must still see its readiness. */
    int av[2];
    sock_pair(av);
    int a = av[0];
    cr_assert_eq(weft_fd_wait(a, WEFT_IN, weft_now() + 20 * MS), -ETIMEDOUT, "register");
    cr_assert_eq(close(a), 0);
    int peer_new = reuse_number(a);
    weft_task *w = weft_spawn(write_old_later, (void *)(intptr_t)peer_new);
    cr_assert_eq(weft_fd_wait(a, WEFT_IN, weft_now() + 10 * SECONDS), (int)WEFT_IN,
                 "a wait on a reused number after a plain close");
    cr_assert_eq(weft_join(w, NULL), 0);
    cr_assert_eq(weft_fd_close(a), 0);
    close(av[1]);
    close(peer_new);
}

Test(io, no_stale_readiness_after_fd_reuse, .timeout = 120) {
    in_task_only(stale_body, 2);
    in_task_only(stale_body, 1);
}

/* ---- EMFILE ------------------------------------------------------------------------------ */

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void emfile_body(void) {
    struct sockaddr_in addr;
    int l = io_loopback_listener(8, &addr);
    cr_assert_geq(l, 0);
    /* Register the listener first (a wait that times out), as a server's loop would. */
    uint64_t d = weft_now() + 20 * MS;
    check_timed_out(weft_accept(l, NULL, NULL, d), d, "accept, nobody there");
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&addr, sizeof addr), 0, "connect");

    /* Fill the fd table: a limit just above the highest fd, and dups up to it. */
    struct rlimit old;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int top = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            top = fd;
    struct rlimit low = {(rlim_t)top + 16, old.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0, "setrlimit");
    enum { MAX_FILLERS = 4096 };
    int *fillers = malloc(MAX_FILLERS * sizeof *fillers), nfill = 0;
    cr_assert_not_null(fillers);
    while (nfill < MAX_FILLERS) {
        int fd = fcntl(c, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            cr_assert_eq(errno, EMFILE, "dup: %s", strerror(errno));
            break;
        }
        fillers[nfill++] = fd;
    }

    uint64_t t0 = weft_now();
    int rc = weft_accept(l, NULL, NULL, t0 + 5 * SECONDS);
    uint64_t took = weft_now() - t0;
    /* Let the runtime idle with the connection still queued: nothing may spin on it. */
    double cpu0 = cpu_seconds();
    nap_ms(300);
    double used = cpu_seconds() - cpu0;

    /* Undo the limit before any assertion can end the test with the table full. */
    close(fillers[--nfill]);
    int again = weft_accept(l, NULL, NULL, weft_now() + 5 * SECONDS);
    while (nfill > 0)
        close(fillers[--nfill]);
    free(fillers);
    setrlimit(RLIMIT_NOFILE, &old);

    cr_assert_eq(rc, -EMFILE, "[%s] weft_accept with no fd left: %d", mode, rc);
    cr_assert_lt(took, 4 * SECONDS, "[%s] -EMFILE took %llu ms: retried until the deadline?", mode,
                 (unsigned long long)(took / MS));
    cr_assert_lt(used, 0.15, "[%s] %.0f ms of CPU in 300 ms of idleness after -EMFILE: spinning?",
                 mode, used * 1e3);
    cr_assert_geq(again, 0, "[%s] accept once an fd was free: %d", mode, again);
    /* It is that client's connection. */
    cr_assert_eq(write(c, "!", 1), 1);
    char ch;
    cr_assert_eq(weft_read(again, &ch, 1, weft_now() + 5 * SECONDS), 1, "read");
    cr_assert_eq(ch, '!');
    int all[] = {l, c, again};
    close_all(all, 3);
}

Test(io, accept_emfile_returns_at_once, .timeout = 60) {
    in_every_mode(emfile_body);
}

/* ---- the reactor wakes tasks ----------------------------------------------------------- */

enum { READERS = 4 };

static void *write_each_later(void *arg) {
    int *fds = arg;
    weft_test_sleep_ms(50);
    for (int i = 0; i < READERS; i++)
        cr_assert_eq(write(fds[i], "w", 1), 1, "write");
    return NULL;
}

static void *read_byte(void *arg) {
    int fd = (int)(intptr_t)arg;
    char c = 0;
    ssize_t n = weft_read(fd, &c, 1, weft_now() + 20 * SECONDS);
    return (void *)(intptr_t)(n == 1 && c == 'w' ? 1 : n);
}

static void idle_wake_body(void) {
    int sv[READERS][2], writers[READERS];
    weft_task *t[READERS];
    for (int i = 0; i < READERS; i++) {
        sock_pair(sv[i]);
        writers[i] = sv[i][1];
        t[i] = weft_spawn(read_byte, (void *)(intptr_t)sv[i][0]);
        cr_assert_not_null(t[i]);
    }
    pthread_t th; /* a plain thread writes: only the reactor can wake the parked readers */
    cr_assert_eq(pthread_create(&th, NULL, write_each_later, writers), 0);
    for (int i = 0; i < READERS; i++) {
        void *r;
        cr_assert_eq(weft_join(t[i], &r), 0);
        cr_assert_eq((intptr_t)r, 1, "reader %d got %ld", i, (long)(intptr_t)r);
    }
    pthread_join(th, NULL);
    for (int i = 0; i < READERS; i++)
        close_all(sv[i], 2);
}

Test(io, readiness_wakes_tasks_while_workers_idle, .timeout = 60) {
    in_task_only(idle_wake_body, 1);
    in_task_only(idle_wake_body, 2);
}

static weft__atomic_word busy_stop;

static void *noop(void *arg) {
    return arg;
}

/* Keeps its worker busy until busy_stop: weft_yield in a loop, and with busy_spawns set,
 * a detached child spawned each round too (so the worker goes through its scheduler
 * loop, not only the direct switch between yielded tasks). */
static bool busy_spawns;

static void *busy_yielder(void *arg) {
    (void)arg;
    uint64_t give_up = weft_now() + 20 * SECONDS;
    while (!weft__atomic_load_acquire(&busy_stop)) {
        cr_assert_lt(weft_now(), give_up,
                     "the reader was never woken while workers were busy (%s)",
                     busy_spawns ? "yielding and spawning" : "yielding");
        if (busy_spawns)
            weft_detach(weft_spawn(noop, NULL));
        weft_yield();
    }
    return NULL;
}

static void *read_then_stop(void *arg) {
    intptr_t r = (intptr_t)read_byte(arg);
    weft__atomic_store_release(&busy_stop, 1);
    return (void *)r;
}

static void busy_wake_body(void) {
    weft__atomic_store_release(&busy_stop, 0);
    int sv[2];
    sock_pair(sv);
    weft_task *r = weft_spawn(read_then_stop, (void *)(intptr_t)sv[0]);
    weft_task *y1 = weft_spawn(busy_yielder, NULL), *y2 = weft_spawn(busy_yielder, NULL);
    cr_assert(r && y1 && y2);
    int w[READERS] = {sv[1], sv[1], sv[1], sv[1]};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, write_each_later, w), 0);
    busy_yielder(NULL); /* this task yields too */
    void *res;
    cr_assert_eq(weft_join(r, &res), 0);
    cr_assert_eq((intptr_t)res, 1, "the reader got %ld", (long)(intptr_t)res);
    cr_assert_eq(weft_join(y1, NULL), 0);
    cr_assert_eq(weft_join(y2, NULL), 0);
    pthread_join(th, NULL);
    close_all(sv, 2);
}

Test(io, readiness_wakes_tasks_while_workers_yield, .timeout = 60) {
    busy_spawns = false;
    in_task_only(busy_wake_body, 2);
    in_task_only(busy_wake_body, 1);
}

Test(io, readiness_wakes_tasks_while_workers_spawn_and_yield, .timeout = 60) {
    busy_spawns = true;
    in_task_only(busy_wake_body, 1);
    in_task_only(busy_wake_body, 2);
}

/* ---- weft_tcp_listen / weft_tcp_connect / weft_socket_port ----------------------------- */

static int local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0, "getsockname");
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int sockopt_int(int fd, int level, int name) {
    int v = 0;
    socklen_t len = sizeof v;
    cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0, "getsockopt");
    return v;
}

static void check_nonblocking_cloexec(int fd, const char *what) {
    cr_assert(io_fd_flags(fd) & O_NONBLOCK, "[%s] %s is not non-blocking", mode, what);
    cr_assert(io_fd_cloexec(fd), "[%s] %s is not close-on-exec", mode, what);
}

/* listen on host, connect to connect_host, accept, exchange bytes both ways. */
static void listen_connect(const char *host, const char *connect_host, int family) {
    int l = weft_tcp_listen(host, 0, 0);
    cr_assert_geq(l, 0, "[%s] weft_tcp_listen(%s, 0): %d", mode, host, l);
    check_nonblocking_cloexec(l, "the listener");
    cr_assert(sockopt_int(l, SOL_SOCKET, SO_REUSEADDR), "[%s] no SO_REUSEADDR", mode);
    int port = weft_socket_port(l);
    cr_assert(port > 0 && port <= 65535, "[%s] socket_port of the listener: %d", mode, port);
    cr_assert_eq(port, local_port(l), "socket_port disagrees with getsockname");
    cr_assert_eq(weft_tcp_listen(host, (unsigned)port, 0), -EADDRINUSE, "[%s] listen twice on %d",
                 mode, port);

    int c = weft_tcp_connect(connect_host, (unsigned)port, weft_now() + 10 * SECONDS);
    cr_assert_geq(c, 0, "[%s] weft_tcp_connect(%s, %d): %d", mode, connect_host, port, c);
    check_nonblocking_cloexec(c, "the client");
    cr_assert(sockopt_int(c, IPPROTO_TCP, TCP_NODELAY), "[%s] no TCP_NODELAY", mode);
    cr_assert_eq(weft_socket_port(c), local_port(c), "socket_port of the client");

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len = sizeof ss;
    int a = weft_accept(l, (struct sockaddr *)&ss, &len, weft_now() + 10 * SECONDS);
    cr_assert_geq(a, 0, "[%s] weft_accept: %d", mode, a);
    check_nonblocking_cloexec(a, "the accepted fd");
    cr_assert_eq(ss.ss_family, family, "[%s] accept's address family", mode);
    cr_assert_eq(len, family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6),
                 "accept's addrlen");
    int peer_port = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                      : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    cr_assert_eq(peer_port, local_port(c), "accept's address is not the client's");
    cr_assert_eq(weft_write(c, "ping", 4, weft_now() + 5 * SECONDS), 4);
    char buf[8];
    ssize_t got = 0;
    while (got < 4) {
        ssize_t n = weft_read(a, buf + got, 4 - (size_t)got, weft_now() + 5 * SECONDS);
        cr_assert_gt(n, 0, "read ping");
        got += n;
    }
    cr_assert_eq(memcmp(buf, "ping", 4), 0);
    cr_assert_eq(weft_write(a, "pong", 4, weft_now() + 5 * SECONDS), 4);
    got = 0;
    while (got < 4) {
        ssize_t n = weft_read(c, buf + got, 4 - (size_t)got, weft_now() + 5 * SECONDS);
        cr_assert_gt(n, 0, "read pong");
        got += n;
    }
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    int all[] = {a, c, l};
    close_all(all, 3);
    cr_assert_eq(weft_fd_close(l), -EBADF, "[%s] weft_fd_close twice", mode);
}

static bool have_ipv6_loopback(void) {
    int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static void tcp_helpers_body(void) {
    listen_connect("127.0.0.1", "127.0.0.1", AF_INET);
    listen_connect("127.0.0.1", "localhost", AF_INET);
    /* "localhost" may bind ::1 or 127.0.0.1; connecting by the name tries each address. */
    int l = weft_tcp_listen("localhost", 0, 4);
    cr_assert_geq(l, 0, "[%s] weft_tcp_listen(localhost): %d", mode, l);
    int port = weft_socket_port(l);
    cr_assert_gt(port, 0);
    int c = weft_tcp_connect("localhost", (unsigned)port, weft_now() + 10 * SECONDS);
    cr_assert_geq(c, 0, "[%s] weft_tcp_connect(localhost): %d", mode, c);
    int a = weft_accept(l, NULL, NULL, weft_now() + 10 * SECONDS);
    cr_assert_geq(a, 0, "[%s] accept from localhost: %d", mode, a);
    int all[] = {a, c, l};
    close_all(all, 3);
    if (have_ipv6_loopback())
        listen_connect("::1", "::1", AF_INET6);

    /* A port nobody listens on: listen, note the port, close. */
    l = weft_tcp_listen("127.0.0.1", 0, 0);
    cr_assert_geq(l, 0);
    port = weft_socket_port(l);
    cr_assert_eq(weft_fd_close(l), 0);
    cr_assert_eq(weft_tcp_connect("127.0.0.1", (unsigned)port, weft_now() + 10 * SECONDS),
                 -ECONNREFUSED, "[%s] tcp_connect to a closed port", mode);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(weft_connect(s, (struct sockaddr *)&addr, sizeof addr, weft_now() + 10 * SECONDS),
                 -ECONNREFUSED, "[%s] connect to a closed port", mode);
    cr_assert_eq(weft_fd_close(s), 0);

    /* weft_connect on a blocking socket: connected, and left non-blocking. */
    l = weft_tcp_listen("127.0.0.1", 0, 0);
    addr.sin_port = htons((uint16_t)weft_socket_port(l));
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(weft_connect(s, (struct sockaddr *)&addr, sizeof addr, weft_now() + 10 * SECONDS), 0,
                 "[%s] weft_connect", mode);
    cr_assert(io_fd_flags(s) & O_NONBLOCK, "[%s] weft_connect left the socket blocking", mode);
    a = weft_accept(l, NULL, NULL, weft_now() + 10 * SECONDS);
    cr_assert_geq(a, 0);
    int more[] = {a, s, l};
    close_all(more, 3);

    /* Names that do not resolve (the .invalid TLD is reserved: RFC 2606). */
    uint64_t t0 = weft_now();
    cr_assert_eq(weft_tcp_connect("no-such-host.weft-test.invalid", 80, t0 + 30 * SECONDS),
                 -EADDRNOTAVAIL, "[%s] tcp_connect to an unresolvable name", mode);
    cr_assert_eq(weft_tcp_listen("no-such-host.weft-test.invalid", 0, 0), -EADDRNOTAVAIL,
                 "[%s] tcp_listen on an unresolvable name", mode);

    /* Argument errors. */
    cr_assert_eq(weft_tcp_listen("127.0.0.1", 65536, 0), -EINVAL, "[%s] listen port 65536", mode);
    cr_assert_eq(weft_tcp_listen("127.0.0.1", UINT32_MAX, 0), -EINVAL, "[%s] listen port ~0", mode);
    cr_assert_eq(weft_tcp_listen("127.0.0.1", 0, -1), -EINVAL, "[%s] backlog -1", mode);
    cr_assert_eq(weft_tcp_connect(NULL, 80, WEFT_FOREVER), -EINVAL, "[%s] connect NULL host", mode);
    cr_assert_eq(weft_tcp_connect("127.0.0.1", 0, WEFT_FOREVER), -EINVAL, "[%s] connect port 0", mode);
    cr_assert_eq(weft_tcp_connect("127.0.0.1", 65536, WEFT_FOREVER), -EINVAL,
                 "[%s] connect port 65536", mode);

    /* socket_port of what is not an IP socket. */
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(weft_socket_port(p[0]), -ENOTSOCK, "[%s] socket_port of a pipe", mode);
    int sv[2];
    sock_pair(sv);
    cr_assert_eq(weft_socket_port(sv[0]), -EAFNOSUPPORT, "[%s] socket_port of AF_UNIX", mode);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

Test(io, tcp_listen_connect_and_port, .timeout = 120) {
    in_every_mode(tcp_helpers_body);
}
