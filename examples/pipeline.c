/*
 * pipeline.c: a producer, a pool of stage tasks and a consumer, joined by bounded
 * channels; shut down by closing them, as Go pipelines are.
 *
 *     producer --jobs--> stage x4 --results--> consumer
 *
 * 1. The producer sends 1..N into `jobs` (capacity 8: it waits when the stages lag),
 *    then closes it.
 * 2. Each stage squares what it receives and sends it on; once `jobs` is closed and
 *    drained its receive returns -EPIPE, and the stage marks itself done in a wait group.
 * 3. A closer task waits for the wait group (every stage finished) and closes `results`:
 *    the close travels downstream. Closing it any earlier would cut off a stage that is
 *    still sending.
 * 4. The consumer sums until its receive returns -EPIPE.
 *
 * And asyncio.Event: the stages first wait on a weft_event that the main task sets once
 * the whole pipeline is wired up.
 *
 *     pipeline [workers]   (default: one per CPU)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

enum { ITEMS = 1000, STAGES = 4, BUFFER = 8 };

struct pipeline {
    weft_chan *jobs, *results;
    weft_waitgroup stages_running;
    weft_event start;
};

static void *producer(void *arg) {
    struct pipeline *p = arg;
    for (uint64_t i = 1; i <= ITEMS; i++)
        if (weft_chan_send(p->jobs, &i, WEFT_FOREVER) != 0)
            return (void *)1;
    weft_chan_close(p->jobs); /* no more jobs: the stages drain the buffer, then see -EPIPE */
    return NULL;
}

/* Returns how many items this stage handled. */
static void *stage(void *arg) {
    struct pipeline *p = arg;
    weft_event_wait(&p->start, WEFT_FOREVER); /* await start.wait() */
    uintptr_t handled = 0;
    uint64_t x;
    while (weft_chan_recv(p->jobs, &x, WEFT_FOREVER) == 0) {
        uint64_t square = x * x;
        if (weft_chan_send(p->results, &square, WEFT_FOREVER) != 0)
            break;
        handled++;
    }
    weft_waitgroup_done(&p->stages_running);
    return (void *)handled;
}

/* Forwards the close downstream once every stage has finished sending. */
static void *closer(void *arg) {
    struct pipeline *p = arg;
    weft_waitgroup_wait(&p->stages_running, WEFT_FOREVER);
    weft_chan_close(p->results);
    return NULL;
}

static void *consumer(void *arg) {
    struct pipeline *p = arg;
    uint64_t sum = 0, square;
    while (weft_chan_recv(p->results, &square, WEFT_FOREVER) == 0)
        sum += square;
    return (void *)(uintptr_t)sum;
}

/* The tasks share main_task's frame: a failed spawn ends the program. */
static weft_task *spawn(weft_fn fn, struct pipeline *p) {
    weft_task *t = weft_spawn(fn, p);
    if (!t) {
        perror("pipeline: weft_spawn");
        exit(1);
    }
    return t;
}

static void *main_task(void *arg) {
    (void)arg;
    struct pipeline p = {0}; /* zeroed wait group and event are valid */
    if (weft_chan_create(sizeof(uint64_t), BUFFER, &p.jobs) != 0 ||
        weft_chan_create(sizeof(uint64_t), BUFFER, &p.results) != 0)
        return (void *)1;
    weft_waitgroup_add(&p.stages_running, STAGES);

    weft_task *sink = spawn(consumer, &p);
    weft_task *stages[STAGES];
    for (int i = 0; i < STAGES; i++)
        stages[i] = spawn(stage, &p);
    weft_task *close_task = spawn(closer, &p);
    weft_task *source = spawn(producer, &p);
    printf("pipeline: producer -> %d stages -> consumer, buffers of %d\n", STAGES, BUFFER);
    weft_event_set(&p.start); /* start.set(): the stages begin */

    void *sum, *failed = NULL;
    uintptr_t handled = 0;
    weft_join(source, &failed);
    for (int i = 0; i < STAGES; i++) {
        void *n;
        weft_join(stages[i], &n);
        printf("stage %d squared %lu items\n", i, (unsigned long)(uintptr_t)n);
        handled += (uintptr_t)n;
    }
    weft_join(close_task, NULL);
    weft_join(sink, &sum);
    weft_chan_destroy(p.jobs);
    weft_chan_destroy(p.results);

    uint64_t want = (uint64_t)ITEMS * (ITEMS + 1) * (2 * ITEMS + 1) / 6;
    printf("sum of the squares of 1..%d: %lu (expected %lu), %lu items through the stages\n",
           ITEMS, (unsigned long)(uintptr_t)sum, (unsigned long)want, (unsigned long)handled);
    return (void *)(uintptr_t)(failed || (uint64_t)(uintptr_t)sum != want || handled != ITEMS);
}

int main(int argc, char **argv) {
    weft_config cfg = {.workers = argc > 1 ? (unsigned)atoi(argv[1]) : 0};
    void *failed;
    if (weft_run(&cfg, main_task, NULL, &failed) != 0 || failed) {
        fprintf(stderr, "pipeline: FAILED\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}
