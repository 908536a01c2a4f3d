/*
 * stress_io_races.c: the I/O protocols of io/reactor.c and sched/wait.c, each race run
 * many times (under chaos seeds in tools/test and tools/stress):
 *
 *   part 1 readiness against deadlines (IO-E2 against IO-W4's withdraw, WAIT-D0
 *          against WAIT-B3): reader tasks read a socketpair with deadlines of 0-300 us
 *          while writer tasks (and plain threads) write numbered bytes at random
 *          moments; every byte must arrive exactly once and in order, no reader may
 *          hang, no -ETIMEDOUT may come early.
 *   part 2 close against waiters (IO-C1/IO-C2 against IO-W2/IO-W3): a task parks in
 *          weft_read (no deadline) on one end while another task (or a plain thread)
 *          weft_fd_close()s it at a random moment; the reader must return -ECANCELED
 *          (parked, or published just as the close ran) or -EBADF (the close came
 *          first), and nothing else: never hang, never read.
 *   part 3 a plain close(2) and a reuse of the number (IO-W1's re-registration, IO-E1's
 *          generation check): fd A is waited on, dup'ed to keep its file open, and
 *          closed with close(2); a new socketpair takes the number; data written to the
 *          OLD file must not show as readiness of the new one (weft_fd_wait times
 *          out), and a wait on the new one must see its own data.
 *
 *   part 4 a task that yields in a loop must not keep its worker from polling: one worker,
 *          a reader parked on a socketpair, a plain thread writes, and the yielder
 *          waits (yielding) for the reader (a cold review found it never woke).
 *
 *   stress_io_races [--seed S]     (rounds scale with WEFT_TEST_SCALE; smaller under TSan)
 */
#include "stress.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint64_t ms(uint64_t n) {
    return n * 1000000u;
}

/* ---- part 1 ---------------------------------------------------------------------------- */

typedef struct stream {
    int read_fd, write_fd;
    size_t bytes;
    uint64_t seed;
} stream;

static void *read_stream(void *arg) {
    stream *s = arg;
    stress_rng rng = stress_rng_for(s->seed);
    size_t got = 0;
    uint64_t give_up = weft_now() + ms(60000);
    while (got < s->bytes) {
        unsigned char buf[64];
        uint64_t before = weft_now();
        uint64_t deadline = before + stress_below(&rng, 300000);
        ssize_t n = weft_read(s->read_fd, buf, 1 + stress_below(&rng, sizeof(buf)), deadline);
        if (n == -ETIMEDOUT) {
            STRESS_CHECK(weft_now() >= deadline, "weft_read timed out early");
            stress_count(STRESS_TIMEOUTS, 1);
            STRESS_CHECK(weft_now() < give_up, "reader stuck at byte %zu of %zu", got, s->bytes);
            continue;
        }
        STRESS_CHECK(n > 0, "weft_read: %zd at byte %zu", n, got);
        for (ssize_t i = 0; i < n; i++, got++)
            STRESS_CHECK(buf[i] == (unsigned char)(got * 7 + s->seed), "byte %zu wrong", got);
    }
    return NULL;
}

static void write_stream_bytes(stream *s) {
    stress_rng rng = stress_rng_for(s->seed + 1);
    size_t sent = 0;
    while (sent < s->bytes) {
        unsigned char buf[32];
        size_t n = 1 + stress_below(&rng, sizeof(buf));
        if (n > s->bytes - sent)
            n = s->bytes - sent;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)((sent + i) * 7 + s->seed);
        ssize_t w = weft_write(s->write_fd, buf, n, WEFT_FOREVER);
        STRESS_CHECK(w == (ssize_t)n, "weft_write: %zd of %zu", w, n);
        sent += n;
        if (stress_chance(&rng, 1, 3)) {
            if (weft_current_id())
                weft_sleep_until(weft_now() + stress_below(&rng, 200000));
            else
                stress_spin_ns(stress_below(&rng, 200000));
        }
    }
}

static void *write_stream_task(void *arg) {
    write_stream_bytes(arg);
    return NULL;
}

static void *write_stream_thread(void *arg) {
    write_stream_bytes(arg);
    return NULL;
}

static void part_readiness(weft_runtime *rt, size_t streams, size_t bytes) {
    stream *s = calloc(streams, sizeof(*s));
    weft_task **readers = calloc(streams, sizeof(*readers));
    weft_task **writers = calloc(streams, sizeof(*writers));
    pthread_t *threads = calloc(streams, sizeof(*threads));
    STRESS_CHECK(s && readers && writers && threads, "out of memory");
    for (size_t i = 0; i < streams; i++) {
        int sv[2];
        STRESS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        s[i] = (stream){.read_fd = sv[0], .write_fd = sv[1], .bytes = bytes, .seed = i * 131 + 1};
        readers[i] = weft_spawn_on(rt, read_stream, &s[i]);
        STRESS_CHECK(readers[i], "spawn reader");
        if (i % 2 == 0) {
            writers[i] = weft_spawn_on(rt, write_stream_task, &s[i]);
            STRESS_CHECK(writers[i], "spawn writer");
        } else {
            STRESS_CHECK(pthread_create(&threads[i], NULL, write_stream_thread, &s[i]) == 0, "thread");
        }
    }
    for (size_t i = 0; i < streams; i++) {
        STRESS_CHECK(weft_join(readers[i], NULL) == 0, "join reader");
        if (i % 2 == 0)
            STRESS_CHECK(weft_join(writers[i], NULL) == 0, "join writer");
        else
            pthread_join(threads[i], NULL);
        STRESS_CHECK(weft_fd_close(s[i].read_fd) == 0 && weft_fd_close(s[i].write_fd) == 0, "close");
    }
    stress_count(STRESS_TASKS, streams + (streams + 1) / 2);
    free(s);
    free(readers);
    free(writers);
    free(threads);
}

/* ---- part 2 ---------------------------------------------------------------------------- */

typedef struct closing {
    int fd, peer;
    uint64_t delay_ns;
    weft__atomic_word started;
    int read_result;
} closing;

static void *park_reader(void *arg) {
    closing *c = arg;
    weft__atomic_store_release(&c->started, 1);
    char b;
    c->read_result = (int)weft_read(c->fd, &b, 1, WEFT_FOREVER);
    return NULL;
}

static void *close_later(void *arg) {
    closing *c = arg;
    if (weft_current_id())
        weft_sleep_until(weft_now() + c->delay_ns);
    else
        stress_spin_ns(c->delay_ns);
    STRESS_CHECK(weft_fd_close(c->fd) == 0, "weft_fd_close");
    return NULL;
}

static void part_close(weft_runtime *rt, size_t rounds, uint64_t seed) {
    stress_rng rng = stress_rng_for(seed);
    for (size_t round = 0; round < rounds; round++) {
        int sv[2];
        STRESS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        closing c = {.fd = sv[0], .peer = sv[1], .delay_ns = stress_below(&rng, 100000)};
        weft_task *reader = weft_spawn_on(rt, park_reader, &c);
        STRESS_CHECK(reader, "spawn reader");
        if (round % 2 == 0) {
            weft_task *closer = weft_spawn_on(rt, close_later, &c);
            STRESS_CHECK(closer && weft_join(closer, NULL) == 0, "closer");
        } else {
            close_later(&c); /* from this plain thread */
        }
        STRESS_CHECK(weft_join(reader, NULL) == 0, "join reader");
        STRESS_CHECK(c.read_result == -ECANCELED || c.read_result == -EBADF,
                     "round %zu: a reader of a closed fd got %d", round, c.read_result);
        close(sv[1]);
        stress_count(STRESS_TASKS, 2);
    }
}

/* ---- part 3 ---------------------------------------------------------------------------- */

typedef struct reuse {
    size_t rounds;
    uint64_t seed;
} reuse;

static void *reuse_task(void *arg) {
    reuse *r = arg;
    for (size_t round = 0; round < r->rounds; round++) {
        int old_pair[2], new_pair[2];
        STRESS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, old_pair) == 0, "pair");
        int number = old_pair[0];
        /* Registered with the reactor: a wait that times out. */
        STRESS_CHECK(weft_fd_wait(number, WEFT_IN, weft_now() + 20000) == -ETIMEDOUT, "idle wait");
        int keep = dup(number); /* the old file stays open: its epoll entry stays too */
        STRESS_CHECK(keep >= 0, "dup");
        close(number); /* a plain close */
        STRESS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, new_pair) == 0, "pair 2");
        bool reused = new_pair[0] == number || new_pair[1] == number;
        int fresh = new_pair[0] == number ? new_pair[0] : new_pair[1];
        int fresh_peer = fresh == new_pair[0] ? new_pair[1] : new_pair[0];
        if (reused) {
            /* The old file becomes readable: its stale event must not reach `fresh`. */
            STRESS_CHECK(write(old_pair[1], "x", 1) == 1, "write old");
            int rc = weft_fd_wait(fresh, WEFT_IN, weft_now() + 200000);
            STRESS_CHECK(rc == -ETIMEDOUT, "round %zu: stale readiness %d on a reused fd", round, rc);
            STRESS_CHECK(write(fresh_peer, "y", 1) == 1, "write new");
            rc = weft_fd_wait(fresh, WEFT_IN, weft_now() + ms(5000));
            STRESS_CHECK(rc == WEFT_IN, "round %zu: the reused fd's own data: %d", round, rc);
            char b;
            STRESS_CHECK(weft_read(fresh, &b, 1, WEFT_FOREVER) == 1 && b == 'y', "read new");
            stress_count(STRESS_TASKS, 1);
        }
        weft_fd_close(new_pair[0]);
        weft_fd_close(new_pair[1]);
        weft_fd_close(keep);
        close(old_pair[1]);
    }
    return NULL;
}

/* ---- part 4 ---------------------------------------------------------------------------- */

typedef struct yielding {
    int fd, peer;
    weft__atomic_word read_done;
} yielding;

static void *yield_reader(void *arg) {
    yielding *y = arg;
    char b;
    ssize_t n = weft_read(y->fd, &b, 1, weft_now() + ms(30000));
    STRESS_CHECK(n == 1, "the reader behind a yielding task: %zd", n);
    weft__atomic_store_release(&y->read_done, 1);
    return NULL;
}

static void *yield_until_read(void *arg) {
    yielding *y = arg;
    weft_task *reader = weft_spawn(yield_reader, y);
    STRESS_CHECK(reader, "spawn");
    weft_yield(); /* let the reader park */
    while (!weft__atomic_load_acquire(&y->read_done))
        weft_yield();
    STRESS_CHECK(weft_join(reader, NULL) == 0, "join");
    return NULL;
}

static void *write_later(void *arg) {
    yielding *y = arg;
    weft_test_sleep_ms(5);
    STRESS_CHECK(write(y->peer, "z", 1) == 1, "write");
    return NULL;
}

static void part_yield(size_t rounds) {
    weft_config cfg = {.workers = 1};
    for (size_t round = 0; round < rounds; round++) {
        int sv[2];
        STRESS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        yielding y = {.fd = sv[0], .peer = sv[1]};
        pthread_t writer;
        STRESS_CHECK(pthread_create(&writer, NULL, write_later, &y) == 0, "thread");
        STRESS_CHECK(weft_run(&cfg, yield_until_read, &y, NULL) == 0, "run");
        pthread_join(writer, NULL);
        weft_fd_close(sv[0]);
        close(sv[1]);
        stress_count(STRESS_RUNTIMES, 1);
        stress_count(STRESS_TASKS, 2);
    }
}

int main(int argc, char **argv) {
    argc = stress_begin("stress_io_races", argc, argv);
    (void)argc;
    weft_config cfg = {.workers = 2};
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&cfg, &rt) == 0, "create");
    part_readiness(rt, stress_size_capped(32, 4, 256), stress_size_capped(20000, 10, 200000));
    part_close(rt, stress_size(2000, 10), 77);
    reuse r = {.rounds = stress_size(300, 5), .seed = 3};
    weft_task *t = weft_spawn_on(rt, reuse_task, &r);
    STRESS_CHECK(t && weft_join(t, NULL) == 0, "reuse part");
    weft_runtime_stats st;
    STRESS_CHECK(weft_runtime_stats_get(rt, &st) == 0, "stats");
    STRESS_CHECK(weft_runtime_destroy(rt) == 0, "destroy");
    stress_count(STRESS_RUNTIMES, 1);
    part_yield(stress_size(20, 4));
    char why[256];
    STRESS_CHECK(weft_test_leaks(why, sizeof(why)) == 0, "leak: %s", why);
    return stress_pass();
}
