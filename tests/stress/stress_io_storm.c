/*
 * stress_io_storm.c: a connection storm against an echo server made of tasks, then a
 * shutdown with tasks parked in I/O. Loopback TCP only (127.0.0.1).
 *
 * 1. The server: an acceptor task loops on weft_accept (WEFT_FOREVER) on a
 *    weft_tcp_listen(127.0.0.1, port 0) socket and spawns a detached echo task per
 *    connection, which reads and writes back until end of file or a reset, then
 *    weft_fd_close()s. -EMFILE/-ENFILE make the acceptor back off 2 ms (counted);
 *    -ECONNABORTED is accepted again.
 * 2. The storm: ROUNDS rounds (20 at scale 1, 6 under TSan, at most 40), each on a listener of its own
 *    (open_listener says why), of CLIENTS echo clients (2,000, 200 under TSan; at most
 *    5,000 per round at any scale), half of them tasks
 *    (all spawned at once, in waves that the fd limit allows), half on THREADS plain
 *    threads, each thread holding BATCH connections open at once (write all, then read
 *    all back). Each client connects (weft_tcp_connect, or socket + weft_connect: drawn),
 *    does 1 to 3 rounds of a random length (1 byte to 16 KiB) of a pattern fixed by its
 *    id and round (io_util.h), and checks every byte that comes back; then it ends with a
 *    half-close (and must read 0: the server closed after our end of file), or, one
 *    client in eight, with a reset (SO_LINGER 0), which the server must take as an end.
 * 3. Slow clients, a task and a thread: connected before the storm, they trickle one
 *    byte at a time (write it, read it back, check it, sleep 1 ms) until the storm is
 *    over: the storm must finish while they still trickle (their server tasks park
 *    between bytes; nobody waits for them).
 * 4. Shutdown with parked waiters: PARKED tasks park on socketpairs with WEFT_FOREVER
 *    (readers in weft_read, writers in weft_write on a full socket, and weft_fd_wait),
 *    each confirmed parked by a probe task that gets -EBUSY on its fd; the acceptor is
 *    parked in weft_accept. The main thread calls weft_runtime_destroy while another
 *    thread weft_fd_close()s every one of those fds, and the listener: every waiter wakes
 *    with -ECANCELED (a writer too: its socket is full, so it wrote nothing), destroy
 *    returns, every connection accepted had its server task finish, nothing leaked, and
 *    as many fds are open as before the runtime was created.
 * Every call has a deadline (30 s; a failure says what poll(2) sees of the socket then,
 * so a lost wake-up shows as such) except the parked ones of part 4, whose bound is the
 * watchdog. The summary counts task functions run; a note line gives the connections,
 * bytes echoed, resets and EMFILE back-offs.
 *
 *   stress_io_storm [--seed S]      (WEFT_STRESS_SEED, WEFT_TEST_SCALE, WEFT_CHAOS)
 */
#include "stress.h"

#include "io_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define MS          1000000ull
#define SECONDS     1000000000ull
#define CALL_BOUND  (30 * SECONDS)
#define MAX_MESSAGE (16u << 10)
#define BATCH       16

static weft_runtime *runtime;
static int listen_fd;
static unsigned port;
static struct sockaddr_in server_addr;

static weft__atomic_word accepted, handlers_done, echoed_bytes, resets, emfile_backoffs;
static weft__atomic_word clients_done, acceptor_canceled;
static weft__atomic_word storm_over;

static uint64_t deadline(void) {
    return weft_now() + CALL_BOUND;
}

/* For a failure message: what poll(2) says of fd now. */
static const char *readiness(int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT, 0};
    int n = poll(&p, 1, 0);
    if (n < 0)
        return "poll failed";
    if (n == 0)
        return "neither readable nor writable";
    if ((p.revents & POLLIN) && (p.revents & POLLOUT))
        return "readable and writable (a lost wake-up?)";
    if (p.revents & POLLIN)
        return "readable (a lost wake-up?)";
    return "writable, not readable";
}

/* ---- 1. the server ------------------------------------------------------------------- */

static void *echo(void *arg) {
    int fd = (int)(intptr_t)arg;
    stress_count(STRESS_TASKS, 1);
    uint8_t buf[MAX_MESSAGE];
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, deadline());
        if (n == 0)
            break;
        if (n == -ECONNRESET) {
            weft__atomic_fetch_add_relaxed(&resets, 1);
            break;
        }
        STRESS_CHECK(n > 0, "server read: %zd (%s); the socket now: %s", n, strerror((int)-n),
                     readiness(fd));
        ssize_t w = weft_write(fd, buf, (size_t)n, deadline());
        if (w == -ECONNRESET || w == -EPIPE) { /* a client that reset after its echo */
            weft__atomic_fetch_add_relaxed(&resets, 1);
            break;
        }
        STRESS_CHECK(w == n, "server write of %zd bytes: %zd", n, w);
        weft__atomic_fetch_add_relaxed(&echoed_bytes, (AO_t)n);
    }
    STRESS_CHECK(weft_fd_close(fd) == 0, "server close");
    weft__atomic_fetch_add_full(&handlers_done, 1);
    return NULL;
}

static void *acceptor(void *arg) {
    int lfd = (int)(intptr_t)arg;
    stress_count(STRESS_TASKS, 1);
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (fd >= 0) {
            weft__atomic_fetch_add_relaxed(&accepted, 1);
            weft_task *t = weft_spawn(echo, (void *)(intptr_t)fd);
            STRESS_CHECK(t != NULL, "spawn echo: %s", strerror(errno));
            weft_detach(t);
        } else if (fd == -ECANCELED) {
            weft__atomic_fetch_add_full(&acceptor_canceled, 1);
            return NULL; /* its listener was closed: the next round's, or part 4 */
        } else if (fd == -EMFILE || fd == -ENFILE) {
            weft__atomic_fetch_add_relaxed(&emfile_backoffs, 1);
            weft_sleep_ms(2);
        } else {
            STRESS_CHECK(fd == -ECONNABORTED, "accept: %d (%s)", fd, strerror(-fd));
        }
    }
}

/* A new listener (127.0.0.1, port 0) and its acceptor task. Each round of the storm has
 * its own: a connection closed by the client first leaves a TIME_WAIT entry for its
 * (port, server port) pair for a minute, and one server port would run out of client
 * ports (28,000 by default) at high scales. */
static void open_listener(void) {
    listen_fd = weft_tcp_listen("127.0.0.1", 0, 0);
    STRESS_CHECK(listen_fd >= 0, "tcp_listen: %d", listen_fd);
    int p = weft_socket_port(listen_fd);
    STRESS_CHECK(p > 0, "socket_port: %d", p);
    port = (unsigned)p;
    server_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)p),
                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    weft_task *acc = weft_spawn_on(runtime, acceptor, (void *)(intptr_t)listen_fd);
    STRESS_CHECK(acc != NULL, "spawn acceptor");
    weft_detach(acc);
}

/* ---- 2. clients ------------------------------------------------------------------------ */

typedef struct conn {
    uint64_t id;
    int fd;
    stress_rng rng;
    unsigned rounds;
    size_t len; /* this round's */
} conn;

static uint64_t stream_of(uint64_t id, unsigned round) {
    return stress_hash(id, round);
}

static void conn_open(conn *c, uint64_t id) {
    c->id = id;
    c->rng = stress_rng_for(id);
    c->rounds = (unsigned)stress_between(&c->rng, 1, 3);
    if (stress_chance(&c->rng, 1, 2)) {
        c->fd = weft_tcp_connect("127.0.0.1", port, deadline());
        STRESS_CHECK(c->fd >= 0, "client %" PRIu64 ": tcp_connect: %d (%s)", id, c->fd,
                     strerror(-c->fd));
    } else {
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        STRESS_CHECK(c->fd >= 0, "socket: %s", strerror(errno));
        int rc = weft_connect(c->fd, (struct sockaddr *)&server_addr, sizeof server_addr,
                              deadline());
        STRESS_CHECK(rc == 0, "client %" PRIu64 ": connect: %d (%s)", id, rc, strerror(-rc));
    }
}

static void conn_send(conn *c, unsigned round, uint8_t *buf) {
    c->len = (size_t)stress_between(&c->rng, 1, MAX_MESSAGE);
    io_pattern_fill(buf, c->len, stream_of(c->id, round), 0);
    ssize_t w = weft_write(c->fd, buf, c->len, deadline());
    STRESS_CHECK(w == (ssize_t)c->len, "client %" PRIu64 " round %u: write of %zu: %zd", c->id,
                 round, c->len, w);
}

static void conn_receive(conn *c, unsigned round, uint8_t *buf) {
    size_t got = 0;
    while (got < c->len) {
        ssize_t n = weft_read(c->fd, buf, c->len - got, deadline());
        STRESS_CHECK(n > 0,
                     "client %" PRIu64 " round %u: read after %zu of %zu: %zd (server: %lu "
                     "accepted, %lu finished); the socket now: %s",
                     c->id, round, got, c->len, n,
                     (unsigned long)weft__atomic_load_acquire(&accepted),
                     (unsigned long)weft__atomic_load_acquire(&handlers_done), readiness(c->fd));
        size_t bad = io_pattern_check(buf, (size_t)n, stream_of(c->id, round), got);
        STRESS_CHECK(bad == (size_t)n, "client %" PRIu64 " round %u: byte %zu is wrong", c->id,
                     round, got + bad);
        got += (size_t)n;
    }
}

static void conn_close(conn *c) {
    if (stress_chance(&c->rng, 1, 8)) {
        struct linger lg = {1, 0}; /* a reset */
        STRESS_CHECK(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0, "SO_LINGER");
    } else {
        STRESS_CHECK(shutdown(c->fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
        char byte;
        ssize_t n = weft_read(c->fd, &byte, 1, deadline());
        STRESS_CHECK(n == 0, "client %" PRIu64 ": after its half-close read %zd, not 0", c->id, n);
    }
    STRESS_CHECK(weft_fd_close(c->fd) == 0, "client close");
    weft__atomic_fetch_add_relaxed(&clients_done, 1);
}

static void *task_client(void *arg) {
    stress_count(STRESS_TASKS, 1);
    uint8_t *buf = malloc(MAX_MESSAGE);
    STRESS_CHECK(buf != NULL, "malloc");
    conn c;
    conn_open(&c, (uint64_t)(uintptr_t)arg);
    for (unsigned round = 0; round < c.rounds; round++) {
        conn_send(&c, round, buf);
        conn_receive(&c, round, buf);
    }
    conn_close(&c);
    free(buf);
    return NULL;
}

typedef struct thread_clients {
    uint64_t first, count; /* client ids first .. first + count - 1 */
    pthread_t thread;
} thread_clients;

/* BATCH connections at a time, each round: every write, then every read. */
static void *thread_client_main(void *arg) {
    thread_clients *tc = arg;
    uint8_t *buf = malloc(MAX_MESSAGE);
    STRESS_CHECK(buf != NULL, "malloc");
    conn c[BATCH];
    for (uint64_t at = 0; at < tc->count; at += BATCH) {
        size_t n = tc->count - at < BATCH ? (size_t)(tc->count - at) : BATCH;
        unsigned most = 0;
        for (size_t i = 0; i < n; i++) {
            conn_open(&c[i], tc->first + at + i);
            if (c[i].rounds > most)
                most = c[i].rounds;
        }
        for (unsigned round = 0; round < most; round++) {
            for (size_t i = 0; i < n; i++)
                if (round < c[i].rounds)
                    conn_send(&c[i], round, buf);
            for (size_t i = 0; i < n; i++)
                if (round < c[i].rounds)
                    conn_receive(&c[i], round, buf);
        }
        for (size_t i = 0; i < n; i++)
            conn_close(&c[i]);
    }
    free(buf);
    return NULL;
}

typedef struct storm {
    uint64_t first, count, wave;
} storm;

static void *task_storm(void *arg) {
    storm *s = arg;
    stress_count(STRESS_TASKS, 1);
    weft_task **t = malloc(s->wave * sizeof *t);
    STRESS_CHECK(t != NULL, "malloc");
    for (uint64_t at = 0; at < s->count; at += s->wave) {
        uint64_t n = s->count - at < s->wave ? s->count - at : s->wave;
        for (uint64_t i = 0; i < n; i++) {
            t[i] = weft_spawn(task_client, (void *)(uintptr_t)(s->first + at + i));
            STRESS_CHECK(t[i] != NULL, "spawn client: %s", strerror(errno));
        }
        for (uint64_t i = 0; i < n; i++)
            STRESS_CHECK(weft_join(t[i], NULL) == 0, "join client");
    }
    free(t);
    return NULL;
}

/* ---- 3. slow clients ------------------------------------------------------------------- */

typedef struct slow {
    uint64_t id;
    uint64_t bytes;       /* echoed and checked */
    uint64_t at_storm_end; /* bytes when it saw the storm over */
    pthread_t thread;
} slow;

static void *slow_client(void *arg) {
    slow *s = arg;
    if (weft_runtime_current())
        stress_count(STRESS_TASKS, 1);
    int fd = weft_tcp_connect("127.0.0.1", port, deadline());
    STRESS_CHECK(fd >= 0, "slow client: connect %d", fd);
    uint64_t give_up = weft_now() + 150 * SECONDS;
    while (!weft__atomic_load_acquire(&storm_over)) {
        STRESS_CHECK(weft_now() < give_up, "slow client: the storm is not over after 150 s");
        uint8_t b = io_pattern(s->id, s->bytes), back = 0;
        STRESS_CHECK(weft_write(fd, &b, 1, deadline()) == 1, "slow client write");
        STRESS_CHECK(weft_read(fd, &back, 1, deadline()) == 1, "slow client read");
        STRESS_CHECK(back == b, "slow client: byte %" PRIu64 " came back wrong", s->bytes);
        s->bytes++;
        weft_sleep_ms(1);
    }
    s->at_storm_end = s->bytes;
    STRESS_CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
    char byte;
    STRESS_CHECK(weft_read(fd, &byte, 1, deadline()) == 0, "slow client: no end of file");
    STRESS_CHECK(weft_fd_close(fd) == 0, "slow close");
    return NULL;
}

/* ---- 4. parked waiters at shutdown ------------------------------------------------------ */

typedef struct parked {
    int fd, peer;
    int kind; /* 0 read, 1 write on a full socket, 2 fd_wait(IN) */
    weft__atomic_word entering;
    weft__atomic_word returned;
    intptr_t result;
} parked;

static void *park_forever(void *arg) {
    parked *p = arg;
    stress_count(STRESS_TASKS, 1);
    char buf[256] = {0};
    weft__atomic_store_release(&p->entering, 1);
    if (p->kind == 0)
        p->result = weft_read(p->fd, buf, sizeof buf, WEFT_FOREVER);
    else if (p->kind == 1)
        p->result = weft_write(p->fd, buf, sizeof buf, WEFT_FOREVER);
    else
        p->result = weft_fd_wait(p->fd, WEFT_IN, WEFT_FOREVER);
    weft__atomic_store_release(&p->returned, 1);
    return NULL;
}

/* A probe task: -EBUSY once p's waiter is registered on its fd (each try before that
 * times out). */
static void *probe_parked(void *arg) {
    parked *p = arg;
    stress_count(STRESS_TASKS, 1);
    unsigned ev = p->kind == 1 ? WEFT_OUT : WEFT_IN;
    uint64_t give_up = weft_now() + 30 * SECONDS;
    for (;;) {
        STRESS_CHECK(!weft__atomic_load_acquire(&p->returned), "a parked waiter returned %ld early",
                     (long)p->result);
        int rc = weft_fd_wait(p->fd, ev, weft_now() + 2 * MS);
        if (rc == -EBUSY)
            return NULL;
        STRESS_CHECK(rc == -ETIMEDOUT, "probe of a parked fd: %d", rc);
        STRESS_CHECK(weft_now() < give_up, "a waiter never showed as parked (-EBUSY)");
    }
}

typedef struct closer {
    parked *parked;
    size_t count;
} closer;

static void *close_everything(void *arg) {
    closer *c = arg;
    weft_test_sleep_ms(20); /* let destroy begin waiting */
    for (size_t i = 0; i < c->count; i++)
        STRESS_CHECK(weft_fd_close(c->parked[i].fd) == 0, "weft_fd_close of a parked fd");
    STRESS_CHECK(weft_fd_close(listen_fd) == 0, "weft_fd_close of the listener");
    return NULL;
}

/* ---- main ----------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    stress_begin("stress_io_storm", argc, argv);
    signal(SIGPIPE, SIG_DFL); /* weft must never raise it */
    stress_rng r = stress_rng_for(0x10);
    unsigned workers = (unsigned)stress_between(&r, 1, 3);
    /* Clients per round, capped (see open_listener); the scale multiplies rounds too. */
    size_t clients = stress_size_capped(2000, 10, 5000);
    size_t rounds = stress_size_capped(20, 3, 40);
    size_t threads = stress_under_tsan() ? 4 : 8;
    size_t parked_count = stress_size(64, 4);

    /* Fds: two per connection (both ends live here), plus the parked socketpairs. */
    struct rlimit lim;
    STRESS_CHECK(getrlimit(RLIMIT_NOFILE, &lim) == 0, "getrlimit");
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
    size_t task_clients = clients / 2, thread_client_count = clients - task_clients;
    size_t budget = lim.rlim_cur > 256 ? (size_t)lim.rlim_cur - 128 : 128;
    size_t thread_fds = 2 * threads * BATCH + 8;
    size_t wave = budget > thread_fds + 2 * parked_count + 64
                      ? (budget - thread_fds - 2 * parked_count) / 2
                      : 16;
    if (wave > task_clients)
        wave = task_clients ? task_clients : 1;
    stress_note("%u workers, %zu rounds of %zu clients (%zu tasks in waves of %zu, %zu on %zu "
                "threads), %zu parked waiters, fd limit %llu",
                workers, rounds, clients, task_clients, wave, thread_client_count, threads, parked_count,
                (unsigned long long)lim.rlim_cur);

    int fds_before = io_open_fd_count();
    STRESS_CHECK(weft_runtime_create(&(weft_config){.workers = workers}, &runtime) == 0, "create");
    open_listener();

    /* 3. slow clients first, so that they trickle through every round of the storm */
    slow slow_task = {.id = 1u << 30}, slow_thread = {.id = (1u << 30) + 1};
    weft_task *st = weft_spawn_on(runtime, slow_client, &slow_task);
    STRESS_CHECK(st != NULL, "spawn slow client");
    STRESS_CHECK(pthread_create(&slow_thread.thread, NULL, slow_client, &slow_thread) == 0, "thread");

    /* 2. the storm, round after round, each on a listener of its own */
    uint64_t t0 = weft_now();
    for (size_t round = 0; round < rounds; round++) {
        if (round > 0) {
            /* The last round's acceptor is parked in weft_accept: closing its listener
             * from this thread wakes it with -ECANCELED. */
            STRESS_CHECK(weft_fd_close(listen_fd) == 0, "close the listener");
            open_listener();
        }
        uint64_t first = round * 1000000ull;
        storm s = {.first = first, .count = task_clients, .wave = wave};
        weft_task *launcher = weft_spawn_on(runtime, task_storm, &s);
        STRESS_CHECK(launcher != NULL, "spawn the storm");
        thread_clients *tc = calloc(threads, sizeof *tc);
        STRESS_CHECK(tc != NULL, "calloc");
        for (size_t i = 0; i < threads; i++) {
            tc[i].first = first + task_clients + i * thread_client_count / threads;
            tc[i].count = first + task_clients + (i + 1) * thread_client_count / threads - tc[i].first;
            STRESS_CHECK(pthread_create(&tc[i].thread, NULL, thread_client_main, &tc[i]) == 0,
                         "pthread_create");
        }
        STRESS_CHECK(weft_join(launcher, NULL) == 0, "join the storm");
        for (size_t i = 0; i < threads; i++)
            pthread_join(tc[i].thread, NULL);
        free(tc);
    }
    uint64_t storm_ns = weft_now() - t0;
    weft__atomic_store_release(&storm_over, 1);
    STRESS_CHECK(weft_join(st, NULL) == 0, "join slow client");
    pthread_join(slow_thread.thread, NULL);
    STRESS_CHECK(weft__atomic_load_acquire(&clients_done) == clients * rounds,
                 "%lu of %zu clients done", (unsigned long)weft__atomic_load_acquire(&clients_done),
                 clients * rounds);
    /* The slow clients were served during the storm, not only after it. */
    STRESS_CHECK(slow_task.at_storm_end >= 2 && slow_thread.at_storm_end >= 2,
                 "slow clients echoed only %" PRIu64 " and %" PRIu64 " bytes during the storm",
                 slow_task.at_storm_end, slow_thread.at_storm_end);
    stress_note("storm: %zu connections in %.2f s, %lu bytes echoed, %lu resets, %lu EMFILE "
                "back-offs; slow clients trickled %" PRIu64 " and %" PRIu64 " bytes",
                clients * rounds, (double)storm_ns / 1e9,
                (unsigned long)weft__atomic_load_acquire(&echoed_bytes),
                (unsigned long)weft__atomic_load_acquire(&resets),
                (unsigned long)weft__atomic_load_acquire(&emfile_backoffs), slow_task.bytes,
                slow_thread.bytes);

    /* 4. parked waiters, then destroy while another thread closes their fds */
    parked *pk = calloc(parked_count, sizeof *pk);
    STRESS_CHECK(pk != NULL, "calloc");
    for (size_t i = 0; i < parked_count; i++) {
        int sv[2];
        STRESS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        pk[i].fd = sv[0];
        pk[i].peer = sv[1];
        pk[i].kind = (int)(i % 3);
        if (pk[i].kind == 1) {
            io_small_buffers(sv[0]);
            uint64_t off = 0;
            STRESS_CHECK(io_fill(sv[0], i, &off) == 0, "fill");
        }
        weft_task *t = weft_spawn_on(runtime, park_forever, &pk[i]);
        STRESS_CHECK(t != NULL, "spawn parked");
        weft_detach(t);
    }
    for (size_t i = 0; i < parked_count; i++) {
        while (!weft__atomic_load_acquire(&pk[i].entering))
            weft_test_sleep_ms(1);
        void *unused;
        weft_test_sleep_ms(1);
        STRESS_CHECK(weft_block_on(runtime, probe_parked, &pk[i], &unused) == 0, "probe");
    }
    closer cl = {pk, parked_count};
    pthread_t closer_thread;
    STRESS_CHECK(pthread_create(&closer_thread, NULL, close_everything, &cl) == 0, "closer");
    STRESS_CHECK(weft_runtime_destroy(runtime) == 0, "destroy");
    pthread_join(closer_thread, NULL);
    for (size_t i = 0; i < parked_count; i++) {
        STRESS_CHECK(weft__atomic_load_acquire(&pk[i].returned), "parked %zu never returned", i);
        STRESS_CHECK(pk[i].result == -ECANCELED, "parked waiter %zu (kind %d) got %ld, not -ECANCELED",
                     i, pk[i].kind, (long)pk[i].result);
        close(pk[i].peer);
    }
    free(pk);
    STRESS_CHECK(weft__atomic_load_acquire(&acceptor_canceled) == rounds,
                 "%lu of %zu acceptors woke with -ECANCELED",
                 (unsigned long)weft__atomic_load_acquire(&acceptor_canceled), rounds);
    AO_t acc_n = weft__atomic_load_acquire(&accepted), done = weft__atomic_load_acquire(&handlers_done);
    STRESS_CHECK(acc_n == clients * rounds + 2, "accepted %lu connections, %zu were made",
                 (unsigned long)acc_n, clients * rounds + 2);
    STRESS_CHECK(done == acc_n, "%lu of %lu server tasks finished", (unsigned long)done,
                 (unsigned long)acc_n);
    int fds_after = io_open_fd_count();
    STRESS_CHECK(fds_after == fds_before, "%d fds open before the runtime, %d after", fds_before,
                 fds_after);
    stress_count(STRESS_RUNTIMES, 1);
    return stress_pass();
}
