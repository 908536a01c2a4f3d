/*
 * stuck.c: what weft shows of a program that seems stuck. A few "requests" wait on
 * things that never come (a socket nobody writes to, a lock somebody forgot, a slow
 * backend), and one task hogs its worker without ever yielding. The program then asks
 * weft what every task is doing (weft_runtime_dump: Go's SIGQUIT goroutine dump) and
 * how the workers fare (weft_runtime_stats_get), cancels everything and exits 0 (1 if a
 * call failed).
 *
 * The same dump can be had from any weft program without changing it: run it with
 * WEFT_DUMP_SIGNAL=QUIT in the environment and press Ctrl-\ (or `kill -QUIT pid`); it
 * dumps to stderr and goes on.
 *
 *   ./stuck             the dump on stdout, then a summary of the metrics
 */
#define _POSIX_C_SOURCE 200809L
#include <weft.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sockets[2];
static weft_mutex forgotten_lock;
static weft_event never_set;
static volatile int stop_hogging;

/* Each "request" is a function of its own, so that the dump's backtraces name it. */
static void *read_request(void *arg) {
    (void)arg;
    weft_set_name("read_request");
    char buffer[64];
    weft_read(sockets[0], buffer, sizeof(buffer), WEFT_FOREVER); /* the peer never writes */
    return NULL;
}

static void *update_account(void *arg) {
    (void)arg;
    weft_set_name("update_account");
    if (weft_mutex_lock_until(&forgotten_lock, WEFT_FOREVER) == 0) /* held by main */
        weft_mutex_unlock(&forgotten_lock);
    return NULL;
}

static void *call_backend(void *arg) {
    (void)arg;
    weft_set_name("call_backend");
    weft_sleep_ms(30000); /* a backend that takes 30 s */
    return NULL;
}

static void *await_config(void *arg) {
    (void)arg;
    weft_set_name("await_config");
    weft_event_wait(&never_set, WEFT_FOREVER);
    return NULL;
}

/* The bug users report most: a task that computes for long without yielding keeps every
 * other task (and timer) of its worker waiting. */
static void *hog(void *arg) {
    (void)arg;
    weft_set_name("hog");
    uint64_t until = weft_now() + 5000000000u; /* 5 s, at most */
    while (!stop_hogging && weft_now() < until)
        ;
    return NULL;
}

int main(void) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sockets) != 0)
        return 1;
    /* The program's own thread looks on, as an operator's signal handler would: from
     * outside the workers, so the hog cannot hold it up. */
    weft_config cfg = {.workers = 2};
    weft_runtime *rt;
    if (weft_runtime_create(&cfg, &rt) != 0)
        return 1;
    weft_mutex_lock(&forgotten_lock);
    weft_task *tasks[] = {weft_spawn_on(rt, read_request, NULL),
                          weft_spawn_on(rt, update_account, NULL),
                          weft_spawn_on(rt, call_backend, NULL),
                          weft_spawn_on(rt, await_config, NULL), weft_spawn_on(rt, hog, NULL)};
    enum { N = sizeof(tasks) / sizeof(tasks[0]) };
    int failed = 0;
    for (int i = 0; i < N; i++)
        failed |= tasks[i] == NULL;
    struct timespec pause = {0, 100000000};
    nanosleep(&pause, NULL); /* let them all get stuck */

    printf("--- weft_runtime_dump ---\n");
    fflush(stdout);
    failed |= weft_runtime_dump(rt, STDOUT_FILENO) != 0;

    stop_hogging = 1;
    weft_mutex_unlock(&forgotten_lock);
    for (int i = 0; i < N; i++) { /* asyncio: task.cancel() on every one */
        if (!tasks[i])
            continue;
        weft_cancel(tasks[i]);
        weft_join(tasks[i], NULL);
    }

    nanosleep(&pause, NULL); /* a run slice is counted once it has ended */
    weft_runtime_stats st;
    weft_runtime_stats_get(rt, &st);
    uint64_t slow_delays = 0; /* sampled delays of 1 ms or more (buckets 10 and up) */
    for (int b = 10; b < WEFT_HISTOGRAM_BUCKETS; b++)
        slow_delays += st.delay_histogram[b];
    printf("--- weft_runtime_stats ---\n"
           "tasks: %llu spawned, %llu finished; busy %.3f s in %llu run slices, %llu of "
           "them longer than 10 ms (the hog); %llu of %llu sampled scheduling delays "
           "were 1 ms or more\n",
           (unsigned long long)st.tasks_spawned, (unsigned long long)st.tasks_finished,
           (double)st.busy_ns / 1e9, (unsigned long long)st.slices,
           (unsigned long long)st.slices_long, (unsigned long long)slow_delays,
           (unsigned long long)st.delay_samples);
    failed |= weft_runtime_destroy(rt) != 0;
    close(sockets[0]);
    close(sockets[1]);
    weft_event_destroy(&never_set);
    weft_mutex_destroy(&forgotten_lock);
    return failed;
}
