/*
 * create_task.c: the asyncio create_task() tutorial, in C.
 *
 * The Python original simulates two API calls that take 3 seconds each:
 *
 *     async def call_api(message, result=1000, delay=3):
 *         print(message)
 *         await asyncio.sleep(delay)
 *         return result
 *
 * 1. "sequential": awaiting one call after the other takes 6 seconds.
 * 2. "tasks": starting both with create_task and then awaiting them takes 3 seconds,
 *    on a single worker thread too: sleeping parks the task, not the thread.
 * 3. "progress": a third task prints a progress line every second while the two calls
 *    run ("running other tasks while waiting").
 *
 *     create_task [sequential|tasks|progress] [workers]   (default: all three, 1 worker)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

struct api_call {
    const char *message;
    intptr_t result;
    uint64_t delay_ms;
};

static void *call_api(void *arg) {
    const struct api_call *call = arg;
    printf("%s\n", call->message);
    weft_sleep_ms(call->delay_ms); /* await asyncio.sleep(delay) */
    return (void *)call->result;
}

static const struct api_call goog = {"Get stock price of GOOG...", 300, 3000};
static const struct api_call appl = {"Get stock price of APPL...", 400, 3000};
static const struct api_call appl_300 = {"Get stock price of APPL...", 300, 3000};

static void report(uint64_t start) {
    double seconds = (double)(weft_now() - start) / 1e9;
    printf("It took %.1f second(s) to complete.\n", (double)(long)(seconds + 0.5));
}

/* await call_api(...); await call_api(...) */
static void *sequential(void *arg) {
    (void)arg;
    uint64_t start = weft_now();
    intptr_t price = (intptr_t)call_api((void *)&goog);
    printf("%ld\n", (long)price);
    price = (intptr_t)call_api((void *)&appl);
    printf("%ld\n", (long)price);
    report(start);
    return NULL;
}

/* asyncio.create_task(): weft_spawn, then let the new task start. weft runs the newest
 * runnable task first (LIFO: depth-first fork-join keeps memory low), where asyncio's
 * loop starts tasks in creation order; yielding right after each spawn starts them in
 * creation order, so the output matches the tutorial line for line. Without it the two
 * calls still overlap and take 3 seconds; APPL would just print before GOOG. */
static weft_task *create_task(weft_fn fn, const void *arg) {
    weft_task *t = weft_spawn(fn, (void *)arg);
    weft_yield();
    return t;
}

/* price = await task; print(price) */
static void await_and_print(weft_task *task) {
    void *price;
    weft_join(task, &price);
    printf("%ld\n", (long)(intptr_t)price);
}

/* task_1 = create_task(...); task_2 = create_task(...); await task_1; await task_2 */
static void *tasks(void *arg) {
    (void)arg;
    uint64_t start = weft_now();
    weft_task *task_1 = create_task(call_api, &goog);
    weft_task *task_2 = create_task(call_api, &appl_300);
    if (!task_1 || !task_2)
        return (void *)1;
    await_and_print(task_1);
    await_and_print(task_2);
    report(start);
    return NULL;
}

static void *show_message(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++) {
        weft_sleep_ms(1000);
        printf("API call is in progress...\n");
    }
    return NULL;
}

static void *progress(void *arg) {
    (void)arg;
    uint64_t start = weft_now();
    weft_task *message_task = create_task(show_message, NULL);
    weft_task *task_1 = create_task(call_api, &goog);
    weft_task *task_2 = create_task(call_api, &appl_300);
    if (!message_task || !task_1 || !task_2)
        return (void *)1;
    await_and_print(task_1);
    await_and_print(task_2);
    weft_join(message_task, NULL);
    report(start);
    return NULL;
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    weft_config cfg = {.workers = argc > 2 ? (unsigned)atoi(argv[2]) : 1};
    struct {
        const char *name;
        weft_fn fn;
    } programs[] = {{"sequential", sequential}, {"tasks", tasks}, {"progress", progress}};
    int ran = 0;
    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, programs[i].name) != 0)
            continue;
        if (ran++)
            printf("\n");
        printf("== %s (%u worker%s)\n", programs[i].name, cfg.workers, cfg.workers == 1 ? "" : "s");
        void *failed;
        if (weft_run(&cfg, programs[i].fn, NULL, &failed) != 0 || failed)
            return 1;
    }
    if (!ran) {
        fprintf(stderr, "usage: create_task [sequential|tasks|progress] [workers]\n");
        return 2;
    }
    return 0;
}
